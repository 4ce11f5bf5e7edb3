/*
 * forward_internal.h - what the per-visit router's rooms (forward.c,
 * forward_rtcp.c, forward_bind.c, forward_tick.c) share among themselves.
 * Private to those files; the rest of media/ uses the tm__forward_* entry
 * points in media_internal.h. Everything here runs on the visit's worker.
 */
#ifndef TM_MEDIA_FORWARD_INTERNAL_H
#define TM_MEDIA_FORWARD_INTERNAL_H

#include "media_internal.h"

#define REMB_FRESH_MS 5000 /* a receiver's REMB older than this says nothing */

static inline void tm__forward_count(atomic_uint_fast64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* Protects and sends an RTCP packet built in buf (room left for the trailer). */
void tm__forward_send_rtcp(tm__peer *to, uint8_t *buf, size_t len);

/* Asks sender for a keyframe on s, paced: a second apart, or the join gap
 * when a receiver is joining or the stream is recovering (forward.c). */
void tm__forward_keyframe_request(tm__peer *sender, tm__in_stream *s, bool joining);

/* Once a second, as a sender: what each of p's layers carried. */
void tm__forward_meter_layers(tm__peer *p, int64_t now_ms);

/* Once a second, as a receiver: the layer of each simulcast source r gets. */
void tm__forward_choose_layers(tm__peer *r, int64_t now_ms);

#endif

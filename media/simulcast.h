/*
 * simulcast.h - the parts of forwarding that let a receiver's stream change
 * source without its decoder noticing, and the choice of a simulcast layer
 * per receiver. Pure functions on small caller-owned structs: forward*.c run
 * them per packet and per tick on the visit's worker; the unit tests run
 * them on synthetic RTP.
 *
 * A sender's simulcast m-line gives one in stream per layer (its own SSRC,
 * stats and loss tracking); each receiver's out stream holds a tm__layer_pick
 * and gets one layer at a time, switching only at a keyframe of the layer it
 * asked for, and a tm__rtp_rewrite that keeps SSRC, sequence numbers,
 * timestamps and the VP8 picture id / TL0PICIDX continuous across switches
 * (and across a sender's restart or a new binding).
 *
 * Private to media/, like rtp.h.
 */
#ifndef TELEMED_MEDIA_SIMULCAST_H
#define TELEMED_MEDIA_SIMULCAST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rtp.h"
#include "sdp.h"

#define TM__MAX_LAYERS TM_SDP_MAX_RIDS

/* ---- one continuous outgoing stream ---- */

typedef struct tm__rtp_rewrite {
    bool based, sent_any;
    uint32_t src_ssrc; /* the source the offsets are for */
    uint16_t base_seq; /* the source's seq at the rebase: older ones are dropped... */
    bool continued;    /* ...when the rebase continued an earlier source's numbers */
    uint16_t max_src;  /* highest source seq since the rebase */
    uint16_t seq_off, last_seq;
    uint32_t ts_off, last_ts;
    int64_t last_ms;
    bool have_pic, have_tl0;       /* VP8: a picture id / TL0PICIDX was sent */
    bool pic_pending, tl0_pending; /* rebased: the offset is set at the next one */
    uint16_t pic_off, last_pic;
    uint8_t tl0_off, last_tl0;
} tm__rtp_rewrite;

typedef enum {
    TM__RW_DROP = -1,   /* older than the source's first packet after a rebase */
    TM__RW_SAME = 0,    /* rewritten in the stream's current terms */
    TM__RW_REBASED = 1, /* a new source: the stream continues from its last packet */
} tm__rw_result;

/* Rewrites pkt (the caller's copy of a packet parsed as h) in place for the receiver:
 * SSRC out_ssrc, sequence numbers and timestamps (clock Hz) continuing the receiver's
 * stream whenever the source SSRC changes, and for VP8 (vp8 != NULL, the payload's parse)
 * the picture id and TL0PICIDX. No allocation. */
tm__rw_result tm__rtp_rewrite_packet(tm__rtp_rewrite *rw, uint8_t *pkt, const tm_rtp_header *h,
                                     const tm_vp8_info *vp8, uint32_t out_ssrc, uint32_t clock,
                                     int64_t now_ms);

/* ---- which layer a receiver gets ---- */

/* One layer as the sender sends it now. */
typedef struct tm__layer_info {
    bool active;            /* packets within the last second */
    unsigned width, height; /* of its last keyframe, 0 unknown */
    uint64_t bps;           /* what it carried over the last second */
} tm__layer_info;

/* The receiver's side: what it gets, what it asked for, and the upgrade back-off. */
typedef struct tm__layer_pick {
    int cur;    /* the layer forwarded now, -1 none yet */
    int target; /* the layer wanted; equal to cur when settled */
    int64_t changed_ms;
    int64_t hold_ms;                     /* before the next step up; doubles when a step up fails */
    bool went_up;                        /* the last change was a step up */
    uint8_t congested_ticks, room_ticks; /* in a row: a step needs a reason that lasts */
    uint64_t prev_est;
    int64_t asked_ms; /* when a keyframe of the target was last asked for */
} tm__layer_pick;

/* What limits a receiver: its bandwidth estimate (0 = none yet), whether its last
 * report said it loses over 10 %, and the size it renders the sender at. An
 * estimate the server measured itself (measured: bwe.h, loss already in it, able
 * to grow past what the receiver gets) lets a step up wait until the next layer
 * fits, and a step down comes as soon as the estimate is under the layer's
 * rate; a receiver's REMB grows only to ~1.5x what it gets, so with it a step
 * up is tried on that much room and undone when it fails. */
typedef struct tm__layer_limits {
    uint64_t est_bps;
    bool measured;
    bool lossy;
    bool view_set;
    unsigned view_w, view_h; /* 0x0 = hidden: the lowest layer */
} tm__layer_limits;

void tm__layer_pick_init(tm__layer_pick *lp);

/* Per packet of layer `layer`: true when it goes to this receiver. Moves to the
 * target layer at the first packet of one of its keyframes (keyframe_start); with no
 * target chosen yet (no figures before the first tick), the first keyframe of any
 * layer starts the stream. */
static inline bool tm__layer_accept(tm__layer_pick *lp, int layer, bool keyframe_start)
{
    if (lp->target < 0 && keyframe_start)
        lp->target = layer;
    if (layer == lp->target && layer != lp->cur && keyframe_start)
        lp->cur = layer;
    return layer == lp->cur;
}

/* Once a second: picks the target layer from the layers (n, indexed as in the offer)
 * and the receiver's limits. Steps down at once when the receiver is congested or
 * the view is smaller; steps up one layer at a time after hold_ms. Returns true when
 * the target changed (the caller asks the sender for a keyframe of it). */
bool tm__layer_choose(tm__layer_pick *lp, const tm__layer_info *layers, int n,
                      const tm__layer_limits *lim, int64_t now_ms);

/* True (once a second at most) while the target's keyframe has not come since it
 * was asked for: the caller asks the sender again (a lost request must not leave
 * the receiver waiting for a keyframe nobody sends). */
bool tm__layer_overdue(tm__layer_pick *lp, int64_t now_ms);

/* The best active layer (the recorder's), -1 when none is active. */
int tm__layer_best(const tm__layer_info *layers, int n);

#endif

/*
 * rtx_cache.h - the retransmission cache of one outgoing stream: the last N
 * packets as sent (after SSRC/PT/seq rewrite), by sequence number, so a NACK
 * from the receiver is answered without asking the sender.
 *
 * A ring of N fixed-size slots (N a power of two) indexed by seq & (N-1),
 * all memory allocated once in tm_rtx_cache_new: store and lookup never
 * allocate. A slot remembers its seq, so a lookup of a seq that has been
 * overwritten (older than N packets) or was never stored misses, and its store
 * time, so packets older than max_age_ms are not resent (they would arrive too
 * late to help and waste the receiver's bandwidth).
 *
 * Owned by the media worker that owns the stream; not thread-safe.
 */
#ifndef TELEMED_RTX_CACHE_H
#define TELEMED_RTX_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "telemed/common.h"

#define TM_RTX_SLOT_SIZE 1500 /* bytes per slot: the largest packet kept */

typedef struct tm_rtx_cache tm_rtx_cache;

/* New cache of n_slots (power of two, 16..32768) packets, max_age_ms > 0.
 * Returns NULL on bad arguments or no memory. Free with tm_rtx_cache_free. */
tm_rtx_cache *tm_rtx_cache_new(unsigned n_slots, int64_t max_age_ms);
void tm_rtx_cache_free(tm_rtx_cache *c);

/* Copy pkt (len <= TM_RTX_SLOT_SIZE) into the slot of seq, stamped now_ms
 * (monotonic). Returns 0 or TM_ETOOBIG / TM_EINVAL. */
int tm_rtx_cache_store(tm_rtx_cache *c, uint16_t seq, const uint8_t *pkt, size_t len,
                       int64_t now_ms);

/* Look up seq. On success returns 0 with *pkt borrowed from the cache (valid
 * until the next store or reset) and *len. TM_ENOTFOUND when never stored,
 * overwritten, or older than max age at now_ms. */
int tm_rtx_cache_get(const tm_rtx_cache *c, uint16_t seq, int64_t now_ms, const uint8_t **pkt,
                     size_t *len);

/* Forget everything (e.g. the sender's stream restarted). */
void tm_rtx_cache_reset(tm_rtx_cache *c);

unsigned tm_rtx_cache_slots(const tm_rtx_cache *c);

#endif

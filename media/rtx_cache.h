/*
 * rtx_cache.h - the retransmission cache of one outgoing stream: the packets
 * sent in about the last max_age_ms (after SSRC/PT/seq rewrite), by sequence
 * number, so a NACK from the receiver is answered without asking the sender.
 *
 * Packets are packed back to back into a byte ring, so the memory follows the
 * stream's bitrate instead of the largest packet (a 1500-byte slot per packet
 * held a 200-byte packet in 1500 bytes). A small index of n_slots entries
 * (seq & (n_slots-1)) says where each packet is. The ring is allocated at the
 * first store, at the start size, and grows by a quarter, up to max_bytes,
 * when a lap through it took less than max_age_ms (the packets about to be
 * overwritten would still be worth resending), once a lookup has shown that
 * the receiver asks for packets at all; it never shrinks. So a stream to a
 * receiver that never NACKs keeps the start size (about 130 ms at 1 Mbit/s),
 * a 1 Mbit/s stream that is NACKed settles at what max age holds (128 KiB for
 * a second), and store allocates only on those few steps, never per packet.
 *
 * A lookup misses when the seq was never stored, its index entry was taken by
 * a newer seq, its bytes were overwritten by newer packets, or it is older than
 * max_age_ms (it would arrive too late to help and waste the receiver's
 * bandwidth).
 *
 * Owned by the media worker that owns the stream; not thread-safe.
 *
 * Private to media/: the server's other modules go through telemed/media.h;
 * media's unit tests and fuzz targets include it through media.cmake.
 */
#ifndef TELEMED_MEDIA_RTX_CACHE_H
#define TELEMED_MEDIA_RTX_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "telemed/common.h"

#define TM_RTX_MAX_PACKET 1500       /* the largest packet kept */
#define TM_RTX_MIN_BYTES (16 * 1024) /* the ring's start size, and the least max_bytes */

typedef struct tm_rtx_cache tm_rtx_cache;

/* New cache: an index of n_slots (power of two, 16..32768) packets, a ring
 * growing up to max_bytes (TM_RTX_MIN_BYTES..64 MiB), max_age_ms > 0. Returns
 * NULL on bad arguments or no memory. Free with tm_rtx_cache_free. */
tm_rtx_cache *tm_rtx_cache_new(unsigned n_slots, size_t max_bytes, int64_t max_age_ms);
void tm_rtx_cache_free(tm_rtx_cache *c);

/* Copy pkt (len <= TM_RTX_MAX_PACKET) into the ring as seq, stamped now_ms
 * (monotonic, not going back). Returns 0 or TM_ETOOBIG / TM_EINVAL, or
 * TM_ENOMEM when the first store cannot allocate the ring. When the ring
 * should grow and cannot (no memory), it keeps its size and still stores. */
int tm_rtx_cache_store(tm_rtx_cache *c, uint16_t seq, const uint8_t *pkt, size_t len,
                       int64_t now_ms);

/* Look up seq. On success returns 0 with *pkt borrowed from the cache (valid
 * until the next store or reset) and *len. TM_ENOTFOUND when never stored,
 * overwritten, or older than max age at now_ms. Any lookup lets the ring grow. */
int tm_rtx_cache_get(tm_rtx_cache *c, uint16_t seq, int64_t now_ms, const uint8_t **pkt,
                     size_t *len);

/* Forget everything (e.g. the sender's stream restarted); keeps the ring's size. */
void tm_rtx_cache_reset(tm_rtx_cache *c);

unsigned tm_rtx_cache_slots(const tm_rtx_cache *c);
/* The ring's current size in bytes (what the cache holds besides its index);
 * 0 before the first store. */
size_t tm_rtx_cache_bytes(const tm_rtx_cache *c);

#endif

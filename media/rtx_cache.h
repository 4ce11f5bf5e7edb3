/*
 * rtx_cache.h - the retransmission cache of one outgoing stream: the packets
 * sent lately (after SSRC/PT/seq rewrite), by sequence number, so a NACK from
 * the receiver is answered without asking the sender.
 *
 * Packets are packed back to back into chunks of TM_RTX_CHUNK bytes taken
 * from a pool its media worker owns, so the memory follows the stream's
 * bitrate, and the cache holds only as long a history as its receiver's NACKs
 * have shown they use: until the first NACK two chunks (16 KiB, ~130 ms at
 * 1 Mbit/s); after it, the chunks whose packets are younger than the oldest
 * age its NACKs asked for in the last 10-20 s, plus 100 ms, at most
 * max_age_ms and max_bytes. That age is what a NACK can really use: the
 * receiver's RTT, its wait before it asks, and its retries; it shrinks again
 * when later NACKs come sooner. A chunk no longer needed is written over or
 * goes back to the pool, which keeps a few for every cache of the worker; so
 * a store takes memory only when a chunk fills (one in ~6 packets at
 * 1 Mbit/s), from the pool, never per packet.
 *
 * A small index of n_slots entries (seq & (n_slots-1)) says where each packet
 * is. A lookup misses when the seq was never stored, its index entry was taken
 * by a newer seq, its chunk was reused or given back, or it is older than
 * max_age_ms (it would arrive too late to help and waste the receiver's
 * bandwidth).
 *
 * A pool and its caches are owned by one media worker; not thread-safe.
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
#define TM_RTX_CHUNK (8 * 1024)      /* bytes a cache takes from its pool at a time */
#define TM_RTX_START_CHUNKS 2        /* what a cache holds until its first NACK */
#define TM_RTX_MIN_BYTES (16 * 1024) /* the least max_bytes: TM_RTX_START_CHUNKS chunks */

typedef struct tm_rtx_pool tm_rtx_pool;
typedef struct tm_rtx_cache tm_rtx_cache;

/* New pool that keeps up to keep_free unused chunks for its caches with their
 * pages; beyond that a chunk's pages go back to the kernel. Returns NULL on no
 * memory. Free with tm_rtx_pool_free once every cache made on it is freed. */
tm_rtx_pool *tm_rtx_pool_new(unsigned keep_free);
void tm_rtx_pool_free(tm_rtx_pool *p);
/* Bytes of the unused chunks the pool keeps. */
size_t tm_rtx_pool_idle_bytes(const tm_rtx_pool *p);

/* New cache on pool (borrowed; it must outlive the cache): an index of n_slots
 * (power of two, 16..32768) packets, at most max_bytes (TM_RTX_MIN_BYTES..
 * 64 MiB) of chunks, packets kept at most max_age_ms > 0. Returns NULL on bad
 * arguments or no memory. Free with tm_rtx_cache_free (its chunks go back to
 * the pool). */
tm_rtx_cache *tm_rtx_cache_new(tm_rtx_pool *pool, unsigned n_slots, size_t max_bytes,
                               int64_t max_age_ms);
void tm_rtx_cache_free(tm_rtx_cache *c);

/* Copy pkt (len <= TM_RTX_MAX_PACKET) into the cache as seq, stamped now_ms
 * (monotonic, not going back). Returns 0 or TM_ETOOBIG / TM_EINVAL, or
 * TM_ENOMEM when the cache holds no chunk and cannot get one. */
int tm_rtx_cache_store(tm_rtx_cache *c, uint16_t seq, const uint8_t *pkt, size_t len,
                       int64_t now_ms);

/* Look up seq (a receiver's NACK asks for it). On success returns 0 with *pkt
 * borrowed from the cache (valid until the next store or reset) and *len.
 * TM_ENOTFOUND when never stored, no longer kept, or older than max age at
 * now_ms. The age a lookup asks for sets how long the history is kept. */
int tm_rtx_cache_get(tm_rtx_cache *c, uint16_t seq, int64_t now_ms, const uint8_t **pkt,
                     size_t *len);

/* Forget every packet (e.g. the sender's stream restarted); keeps its chunks. */
void tm_rtx_cache_reset(tm_rtx_cache *c);

unsigned tm_rtx_cache_slots(const tm_rtx_cache *c);
/* Bytes of the chunks the cache holds now (besides its index); 0 before the
 * first store. */
size_t tm_rtx_cache_bytes(const tm_rtx_cache *c);
/* How long a history the cache keeps now, in ms: 0 until a lookup has come. */
int64_t tm_rtx_cache_window_ms(const tm_rtx_cache *c);

#endif

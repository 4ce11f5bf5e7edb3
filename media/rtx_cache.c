/*
 * rtx_cache.c - per outgoing stream history of sent packets for NACK answers:
 * a byte ring the packets are packed into, and an index by seq & mask saying
 * where each one is.
 *
 * The ring is written in laps: a packet goes at `head` if it fits before the
 * end, else a new lap starts at offset 0 (the tail of the old lap is left
 * unused, at most one packet's worth). An entry's bytes are intact while
 * nothing has been written over them: when it was written in the current lap,
 * or in the previous lap at an offset the current lap has not reached yet
 * (off >= head). That check replaces any eviction bookkeeping.
 *
 * Growth: when a lap ends less than max_age_ms after it started, the packets
 * about to be overwritten are still young enough to be asked for, so the ring
 * grows by a quarter (realloc keeps every offset, and the lap simply goes on
 * into the new space), up to max_bytes; but only once the receiver has asked
 * for a packet at all: a clean link never NACKs, and its ring stays at the
 * start size, allocated at the first store. store/get are otherwise a mask, a
 * compare and a memcpy. Owned by one media worker; not thread-safe.
 */
#include "rtx_cache.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BYTES_LIMIT ((size_t)64 * 1024 * 1024)

typedef struct rtx_entry {
    int64_t stored_ms;
    uint32_t lap; /* lap of the ring the bytes were written in */
    uint32_t off; /* where they start in the ring */
    uint16_t seq;
    uint16_t len; /* 0 = empty */
} rtx_entry;

struct tm_rtx_cache {
    unsigned mask;
    int64_t max_age_ms;
    uint8_t *ring;
    size_t cap, max_cap;
    size_t head;  /* where the next packet goes in the current lap */
    uint32_t lap; /* the current lap */
    bool started; /* lap_start_ms is set */
    bool asked;   /* a lookup came: the receiver's link loses packets */
    int64_t lap_start_ms;
    rtx_entry idx[]; /* mask + 1 of them */
};

tm_rtx_cache *tm_rtx_cache_new(unsigned n_slots, size_t max_bytes, int64_t max_age_ms)
{
    if (n_slots < 16 || n_slots > 32768 || (n_slots & (n_slots - 1)) != 0 || max_age_ms <= 0 ||
        max_bytes < TM_RTX_MIN_BYTES || max_bytes > MAX_BYTES_LIMIT)
        return NULL;
    tm_rtx_cache *c = calloc(1, sizeof(*c) + (size_t)n_slots * sizeof(rtx_entry));
    if (!c)
        return NULL;
    c->max_cap = max_bytes;
    c->mask = n_slots - 1;
    c->max_age_ms = max_age_ms;
    return c;
}

void tm_rtx_cache_free(tm_rtx_cache *c)
{
    if (!c)
        return;
    free(c->ring);
    free(c);
}

/* Grows the ring by a quarter (at least the start size), in whole pages, up
 * to max_cap; on no memory it stays as it is. Small steps, because the ring
 * settles at the first size past what max age needs: doubling would leave a
 * stream just over 128 KiB at 256 KiB. */
static void grow(tm_rtx_cache *c)
{
    size_t step = c->cap / 4 > TM_RTX_MIN_BYTES ? c->cap / 4 : TM_RTX_MIN_BYTES;
    size_t cap = (c->cap + step + 4095) & ~(size_t)4095;
    if (cap > c->max_cap)
        cap = c->max_cap;
    uint8_t *ring = realloc(c->ring, cap);
    if (!ring)
        return;
    c->ring = ring;
    c->cap = cap;
}

int tm_rtx_cache_store(tm_rtx_cache *c, uint16_t seq, const uint8_t *pkt, size_t len,
                       int64_t now_ms)
{
    if (!c || !pkt || len == 0)
        return TM_EINVAL;
    if (len > TM_RTX_MAX_PACKET)
        return TM_ETOOBIG;
    if (!c->ring) {
        c->ring = malloc(TM_RTX_MIN_BYTES);
        if (!c->ring)
            return TM_ENOMEM;
        c->cap = TM_RTX_MIN_BYTES;
    }
    if (!c->started) {
        c->started = true;
        c->lap_start_ms = now_ms;
    }
    if (c->head + len > c->cap) {
        if (c->asked && c->cap < c->max_cap && now_ms - c->lap_start_ms < c->max_age_ms)
            grow(c);
        if (c->head + len > c->cap) {
            c->lap++;
            c->head = 0;
            c->lap_start_ms = now_ms;
        }
    }
    memcpy(c->ring + c->head, pkt, len);
    rtx_entry *e = &c->idx[seq & c->mask];
    e->stored_ms = now_ms;
    e->lap = c->lap;
    e->off = (uint32_t)c->head;
    e->seq = seq;
    e->len = (uint16_t)len;
    c->head += len;
    return 0;
}

int tm_rtx_cache_get(tm_rtx_cache *c, uint16_t seq, int64_t now_ms, const uint8_t **pkt,
                     size_t *len)
{
    if (!c || !pkt || !len)
        return TM_EINVAL;
    c->asked = true;
    const rtx_entry *e = &c->idx[seq & c->mask];
    if (e->len == 0 || e->seq != seq || now_ms - e->stored_ms > c->max_age_ms)
        return TM_ENOTFOUND;
    bool intact = e->lap == c->lap || (e->lap == c->lap - 1u && e->off >= c->head);
    if (!intact)
        return TM_ENOTFOUND;
    *pkt = c->ring + e->off;
    *len = e->len;
    return 0;
}

void tm_rtx_cache_reset(tm_rtx_cache *c)
{
    if (!c)
        return;
    for (unsigned i = 0; i <= c->mask; i++)
        c->idx[i].len = 0;
}

unsigned tm_rtx_cache_slots(const tm_rtx_cache *c)
{
    return c ? c->mask + 1 : 0;
}

size_t tm_rtx_cache_bytes(const tm_rtx_cache *c)
{
    return c ? c->cap : 0;
}

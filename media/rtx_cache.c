/*
 * rtx_cache.c - per outgoing stream ring of the last N packets for NACK
 * answers. One allocation at creation (the slot headers and all packet
 * bytes in one block); store/get are a mask, a compare and a memcpy.
 * Owned by one media worker; not thread-safe.
 */
#include "telemed/rtx_cache.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct rtx_slot {
    int64_t stored_ms;
    uint16_t seq;
    uint16_t len; /* 0 = empty */
    uint8_t data[TM_RTX_SLOT_SIZE];
} rtx_slot;

struct tm_rtx_cache {
    unsigned mask;
    int64_t max_age_ms;
    rtx_slot slots[]; /* mask + 1 of them */
};

tm_rtx_cache *tm_rtx_cache_new(unsigned n_slots, int64_t max_age_ms)
{
    if (n_slots < 16 || n_slots > 32768 || (n_slots & (n_slots - 1)) != 0 || max_age_ms <= 0)
        return NULL;
    tm_rtx_cache *c = calloc(1, sizeof(*c) + (size_t)n_slots * sizeof(rtx_slot));
    if (!c)
        return NULL;
    c->mask = n_slots - 1;
    c->max_age_ms = max_age_ms;
    return c;
}

void tm_rtx_cache_free(tm_rtx_cache *c)
{
    free(c);
}

int tm_rtx_cache_store(tm_rtx_cache *c, uint16_t seq, const uint8_t *pkt, size_t len,
                       int64_t now_ms)
{
    if (!c || !pkt || len == 0)
        return TM_EINVAL;
    if (len > TM_RTX_SLOT_SIZE)
        return TM_ETOOBIG;
    rtx_slot *s = &c->slots[seq & c->mask];
    memcpy(s->data, pkt, len);
    s->len = (uint16_t)len;
    s->seq = seq;
    s->stored_ms = now_ms;
    return 0;
}

int tm_rtx_cache_get(const tm_rtx_cache *c, uint16_t seq, int64_t now_ms, const uint8_t **pkt,
                     size_t *len)
{
    if (!c || !pkt || !len)
        return TM_EINVAL;
    const rtx_slot *s = &c->slots[seq & c->mask];
    if (s->len == 0 || s->seq != seq || now_ms - s->stored_ms > c->max_age_ms)
        return TM_ENOTFOUND;
    *pkt = s->data;
    *len = s->len;
    return 0;
}

void tm_rtx_cache_reset(tm_rtx_cache *c)
{
    if (!c)
        return;
    for (unsigned i = 0; i <= c->mask; i++)
        c->slots[i].len = 0;
}

unsigned tm_rtx_cache_slots(const tm_rtx_cache *c)
{
    return c ? c->mask + 1 : 0;
}

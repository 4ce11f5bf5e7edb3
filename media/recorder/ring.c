/*
 * ring.c - the packet ring between the media worker and the recorder thread.
 *
 * Single producer (the worker, tm_recorder_push), single consumer (the
 * recorder thread, tm__rec_drain) over C11 atomics: head is written only by
 * the producer, tail only by the consumer, both counting bytes since the
 * start. The ring holds bytes, each packet behind a small header, so an
 * 80-byte Opus packet takes 96 bytes of it and not a 1.5 KiB slot. The
 * producer signals an eventfd only when a burst fills a quarter of the
 * ring: pushing costs no syscall and wakes no thread per packet.
 */
#include "recorder_internal.h"

#include "telemed/common.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

enum { REC_HDR = sizeof(tm_rec_hdr) };

static size_t rec_bytes(size_t len)
{
    return (REC_HDR + len + 7) & ~(size_t)7;
}

int64_t tm__rec_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int tm_recorder_push(tm_recorder *r, int track_index, const uint8_t *rtp, size_t len)
{
    return tm_recorder_push_at(r, track_index, rtp, len, tm__rec_mono_ns() / 1000);
}

int tm_recorder_push_at(tm_recorder *r, int track_index, const uint8_t *rtp, size_t len,
                        int64_t arrival_us)
{
    int rc;
    if (track_index < 0 || (size_t)track_index >= r->ntracks || len < TM_REC_RTP_HDR) {
        rc = TM_EINVAL;
        goto drop;
    }
    if (len > TM_RECORDER_SLOT_BYTES) {
        rc = TM_ETOOBIG;
        goto drop;
    }
    if (atomic_load_explicit(&r->failed, memory_order_relaxed) ||
        atomic_load_explicit(&r->closing, memory_order_relaxed)) {
        rc = TM_EIO;
        goto drop;
    }
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    size_t need = rec_bytes(len);
    size_t pos = (size_t)(head % TM_RECORDER_RING_BYTES);
    size_t to_end = TM_RECORDER_RING_BYTES - pos;
    /* A packet that would not fit before the end of the ring starts at its
     * beginning; the rest of the end is marked skipped (or left, when not
     * even a header fits there). */
    size_t skip = need <= to_end ? 0 : to_end;
    if (head - tail + skip + need > TM_RECORDER_RING_BYTES) {
        rc = TM_ERATE;
        goto drop;
    }
    if (skip) {
        if (skip >= REC_HDR)
            ((tm_rec_hdr *)(r->ring + pos))->skip = 1;
        pos = 0;
    }
    tm_rec_hdr *h = (tm_rec_hdr *)(r->ring + pos);
    h->len = (uint32_t)len;
    h->track = (uint16_t)track_index;
    h->skip = 0;
    h->arrival_ns = arrival_us * 1000;
    memcpy(r->ring + pos + REC_HDR, rtp, len);
    head += skip + need;
    atomic_store_explicit(&r->head, head, memory_order_release);
    atomic_fetch_add_explicit(&r->pushed, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->bytes, len, memory_order_relaxed);
    /* The recorder thread drains every TM_REC_BATCH_MS anyway; wake it
     * early only when a burst fills a quarter of the ring, once until it
     * has woken. */
    if (head - tail >= TM_RECORDER_RING_BYTES / 4 &&
        !atomic_load_explicit(&r->woken, memory_order_relaxed) &&
        !atomic_exchange_explicit(&r->woken, 1, memory_order_relaxed))
        tm__rec_wake(r);
    return 0;
drop:
    tm__rec_count_drop(r);
    return rc;
}

void tm_recorder_stats_get(const tm_recorder *r, tm_recorder_stats *out)
{
    tm_recorder *m = (tm_recorder *)r;
    out->pushed = atomic_load_explicit(&m->pushed, memory_order_relaxed);
    out->dropped = atomic_load_explicit(&m->dropped, memory_order_relaxed);
    out->bytes = atomic_load_explicit(&m->bytes, memory_order_relaxed);
}

void tm__rec_count_drop(tm_recorder *r)
{
    atomic_fetch_add_explicit(&r->dropped, 1, memory_order_relaxed);
}

void tm__rec_wake(tm_recorder *r)
{
    uint64_t one = 1;
    ssize_t n = write(r->efd, &one, sizeof(one)); /* nonblocking eventfd */
    (void)n;
}

/* The record at ring position *i, whose bytes start at base + (*i -
 * from), or NULL after moving *i past the gap the writer left at the end
 * of the ring. */
static const tm_rec_hdr *record_at(const uint8_t *base, uint64_t from, uint64_t *i)
{
    size_t to_end = TM_RECORDER_RING_BYTES - (size_t)(*i % TM_RECORDER_RING_BYTES);
    const tm_rec_hdr *h = (const tm_rec_hdr *)(base + (*i - from));
    if (to_end < REC_HDR || h->skip) {
        *i += to_end;
        return NULL;
    }
    return h;
}

/* What lies between tail and head is copied as it is, headers and all,
 * into one allocation (the arena, one or two memcpy), and the records are
 * read there: the worker's lines are read once, in order, and a batch
 * costs one malloc, not one per packet. The arena is freed with its last
 * packet. Out of memory, the batch is dropped and counted. */
void tm__rec_drain(tm_recorder *r)
{
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    while (tail != head) {
        gsize total = (gsize)(head - tail);
        tm_rec_arena *a = g_try_malloc(sizeof(tm_rec_arena) + total);
        size_t pos = (size_t)(tail % TM_RECORDER_RING_BYTES);
        size_t first = MIN(total, TM_RECORDER_RING_BYTES - pos);
        if (a) {
            a->refs = 1;
            a->size = total;
            /* records are 8-aligned in the ring and so in the arena */
            memcpy(a->data, r->ring + pos, first);
            memcpy(a->data + first, r->ring, total - first);
        }
        uint64_t from = tail;
        while (tail != head) {
            const tm_rec_hdr *h =
                a ? record_at(a->data, from, &tail)
                  : record_at(r->ring, tail - tail % TM_RECORDER_RING_BYTES, &tail);
            if (!h)
                continue;
            if (a)
                tm__rec_take_packet(r, h, a, (gsize)(tail - from) + REC_HDR);
            else
                tm__rec_count_drop(r);
            tail += rec_bytes(h->len);
        }
        if (a)
            tm__rec_arena_unref(a);
        atomic_store_explicit(&r->tail, tail, memory_order_release);
        head = atomic_load_explicit(&r->head, memory_order_acquire);
    }
}

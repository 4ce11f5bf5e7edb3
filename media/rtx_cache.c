/*
 * rtx_cache.c - per outgoing stream history of sent packets for NACK answers:
 * chunks of packets packed back to back, in the order they were filled, an
 * index by seq & mask saying where each packet is, and the worker's pool of
 * unused chunks (mapped by the pool itself, not malloc's).
 *
 * The chunks in use form a FIFO over a small array of chunk slots: packets go
 * into the newest one; when it is full, the oldest chunks the history no
 * longer needs are let go (the first of them is written over at once, the
 * rest go back to the pool) and, if none could go, a chunk comes from the
 * pool. Each fill of a slot gets a new generation number; an index entry
 * records the slot and generation its bytes were written in, so a packet is
 * intact while its slot still holds that generation. That check replaces any
 * eviction bookkeeping.
 *
 * How long a history is needed is learnt from the lookups: the age of the
 * packet each NACK asks for (hit or not, as long as its index entry is still
 * its own) goes into a histogram of 50 ms buckets, and the history is the
 * oldest bucket asked for, plus 100 ms. The counts halve every 10 s, so a
 * receiver that asked late once (starved for a moment) is forgotten within
 * 10-20 s, while one that keeps asking late keeps its history. Not a quantile:
 * the late asks are the ones at a party's joins, when receivers renegotiate,
 * and serving only 95 % of the asks froze the others' video there for seconds
 * (test_media_party; tests/bench/README.md, "Memory per visit"). Owned by one
 * media worker; not thread-safe.
 */
#include "rtx_cache.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define MAX_BYTES_LIMIT ((size_t)64 * 1024 * 1024)
#define AGE_BUCKET_MS 50     /* the histogram of asked ages */
#define AGE_BUCKETS 20       /* up to 1 s; older asks count in the last */
#define WINDOW_MARGIN_MS 100 /* on top of that age */
#define AGE_DECAY_MS 10000   /* the histogram's counts halve this often */

/* An unused chunk in the pool's warm list holds the link to the next. */
typedef struct free_chunk {
    struct free_chunk *next;
} free_chunk;

/* Chunks come from mappings of SLAB_CHUNKS, not from malloc: a chunk let go
 * beyond the warm ones has its pages handed back at once (madvise), where a
 * freed malloc chunk stayed resident in the worker's arena until a trim and
 * was split by other allocations meanwhile (tests/bench/README.md, "Memory
 * per visit"). A slab whose chunks are all cold is unmapped. */
#define SLAB_CHUNKS 32
#define SLAB_ALL_COLD UINT32_MAX

typedef struct rtx_slab {
    struct rtx_slab *next;
    uint8_t *mem;
    uint32_t cold; /* bit i: chunk i is unused and its pages were given back */
} rtx_slab;

struct tm_rtx_pool {
    free_chunk *free; /* warm: unused, pages kept */
    unsigned n_free, keep_free;
    rtx_slab *slabs;
};

typedef struct rtx_entry {
    int64_t stored_ms;
    uint32_t gen;  /* generation of the slot the bytes were written in */
    uint16_t slot; /* chunk slot */
    uint16_t off;  /* where they start in the chunk */
    uint16_t seq;
    uint16_t len; /* 0 = empty */
} rtx_entry;

typedef struct chunk_slot {
    uint8_t *mem;      /* NULL while not in use */
    uint32_t gen;      /* of its current fill */
    uint16_t fill;     /* bytes written */
    int64_t newest_ms; /* stamp of its last packet */
} chunk_slot;

struct tm_rtx_cache {
    tm_rtx_pool *pool;
    unsigned mask;
    int64_t max_age_ms;
    chunk_slot *slots; /* max_chunks of them, used as a FIFO from `first` */
    unsigned max_chunks, first, n_used;
    uint32_t gen;               /* last generation handed out; 0 is never one */
    bool asked;                 /* a lookup came: the receiver's link loses packets */
    int64_t need_ms;            /* upper edge of the oldest bucket asked for */
    int64_t decayed_ms;         /* when the histogram last halved */
    uint16_t ages[AGE_BUCKETS]; /* asks by the age of the packet asked for */
    rtx_entry idx[];            /* mask + 1 of them */
};

/* ---- the pool ---- */

tm_rtx_pool *tm_rtx_pool_new(unsigned keep_free)
{
    tm_rtx_pool *p = calloc(1, sizeof *p);
    if (p)
        p->keep_free = keep_free;
    return p;
}

void tm_rtx_pool_free(tm_rtx_pool *p)
{
    if (!p)
        return;
    while (p->slabs) {
        rtx_slab *s = p->slabs;
        p->slabs = s->next;
        munmap(s->mem, (size_t)SLAB_CHUNKS * TM_RTX_CHUNK);
        free(s);
    }
    free(p);
}

size_t tm_rtx_pool_idle_bytes(const tm_rtx_pool *p)
{
    return p ? (size_t)p->n_free * TM_RTX_CHUNK : 0;
}

static uint8_t *slab_new(tm_rtx_pool *p)
{
    rtx_slab *s = malloc(sizeof *s);
    if (!s)
        return NULL;
    void *mem = mmap(NULL, (size_t)SLAB_CHUNKS * TM_RTX_CHUNK, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        free(s);
        return NULL;
    }
    s->mem = mem;
    s->cold = SLAB_ALL_COLD & ~1u; /* chunk 0 is handed out */
    s->next = p->slabs;
    p->slabs = s;
    return s->mem;
}

static uint8_t *pool_take(tm_rtx_pool *p)
{
    if (p->free) {
        free_chunk *f = p->free;
        p->free = f->next;
        p->n_free--;
        return (uint8_t *)f;
    }
    for (rtx_slab *s = p->slabs; s; s = s->next)
        if (s->cold) {
            int i = __builtin_ctz(s->cold);
            s->cold &= ~(1u << i);
            return s->mem + (size_t)i * TM_RTX_CHUNK;
        }
    return slab_new(p);
}

static void pool_give(tm_rtx_pool *p, uint8_t *mem)
{
    if (p->n_free < p->keep_free) {
        free_chunk *f = (free_chunk *)(void *)mem;
        f->next = p->free;
        p->free = f;
        p->n_free++;
        return;
    }
    const size_t slab_bytes = (size_t)SLAB_CHUNKS * TM_RTX_CHUNK;
    for (rtx_slab **link = &p->slabs; *link; link = &(*link)->next) {
        rtx_slab *s = *link;
        if (mem < s->mem || mem >= s->mem + slab_bytes)
            continue;
        s->cold |= 1u << ((size_t)(mem - s->mem) / TM_RTX_CHUNK);
        if (s->cold == SLAB_ALL_COLD) {
            *link = s->next;
            munmap(s->mem, slab_bytes);
            free(s);
        } else {
            madvise(mem, TM_RTX_CHUNK, MADV_DONTNEED);
        }
        return;
    }
}

/* ---- the cache ---- */

tm_rtx_cache *tm_rtx_cache_new(tm_rtx_pool *pool, unsigned n_slots, size_t max_bytes,
                               int64_t max_age_ms)
{
    if (!pool || n_slots < 16 || n_slots > 32768 || (n_slots & (n_slots - 1)) != 0 ||
        max_age_ms <= 0 || max_bytes < TM_RTX_MIN_BYTES || max_bytes > MAX_BYTES_LIMIT)
        return NULL;
    tm_rtx_cache *c = calloc(1, sizeof(*c) + (size_t)n_slots * sizeof(rtx_entry));
    if (!c)
        return NULL;
    c->max_chunks = (unsigned)(max_bytes / TM_RTX_CHUNK);
    c->slots = calloc(c->max_chunks, sizeof *c->slots);
    if (!c->slots) {
        free(c);
        return NULL;
    }
    c->pool = pool;
    c->mask = n_slots - 1;
    c->max_age_ms = max_age_ms;
    return c;
}

void tm_rtx_cache_free(tm_rtx_cache *c)
{
    if (!c)
        return;
    for (unsigned i = 0; i < c->max_chunks; i++)
        if (c->slots[i].mem)
            pool_give(c->pool, c->slots[i].mem);
    free(c->slots);
    free(c);
}

int64_t tm_rtx_cache_window_ms(const tm_rtx_cache *c)
{
    if (!c || !c->asked)
        return 0;
    int64_t w = c->need_ms + WINDOW_MARGIN_MS;
    return w < c->max_age_ms ? w : c->max_age_ms;
}

/* Whether the oldest chunk may go before one more is filled. */
static bool oldest_unneeded(const tm_rtx_cache *c, int64_t now_ms)
{
    if (c->n_used == 0)
        return false;
    if (c->n_used + 1 > c->max_chunks)
        return true;
    if (!c->asked)
        return c->n_used + 1 > TM_RTX_START_CHUNKS;
    return now_ms - c->slots[c->first].newest_ms > tm_rtx_cache_window_ms(c);
}

/* Takes the oldest chunk out of use; its packets are gone. */
static uint8_t *release_oldest(tm_rtx_cache *c)
{
    chunk_slot *s = &c->slots[c->first];
    uint8_t *mem = s->mem;
    s->mem = NULL;
    s->gen = 0;
    c->first = (c->first + 1) % c->max_chunks;
    c->n_used--;
    return mem;
}

/* The upper edge of the oldest bucket with an ask in it. */
static void update_need(tm_rtx_cache *c)
{
    c->need_ms = 0;
    for (int b = AGE_BUCKETS - 1; b >= 0; b--)
        if (c->ages[b]) {
            c->need_ms = (int64_t)(b + 1) * AGE_BUCKET_MS;
            return;
        }
}

static void halve_ages(tm_rtx_cache *c)
{
    for (int b = 0; b < AGE_BUCKETS; b++)
        c->ages[b] /= 2;
    update_need(c);
}

static void note_age(tm_rtx_cache *c, int64_t age_ms)
{
    int b = (int)(age_ms / AGE_BUCKET_MS);
    if (b >= AGE_BUCKETS)
        b = AGE_BUCKETS - 1;
    if (c->ages[b] == UINT16_MAX)
        halve_ages(c);
    c->ages[b]++;
    update_need(c);
}

/* Starts a new chunk: the oldest ones no longer needed are let go (the first
 * is reused, the others go back to the pool), else one comes from the pool,
 * else (no memory) the oldest is reused anyway. */
static int next_chunk(tm_rtx_cache *c, int64_t now_ms)
{
    if (c->asked && now_ms - c->decayed_ms > AGE_DECAY_MS) {
        halve_ages(c);
        c->decayed_ms = now_ms;
    }
    uint8_t *mem = NULL;
    while (oldest_unneeded(c, now_ms)) {
        uint8_t *old = release_oldest(c);
        if (mem)
            pool_give(c->pool, old);
        else
            mem = old;
    }
    if (!mem)
        mem = pool_take(c->pool);
    if (!mem) {
        if (c->n_used == 0)
            return TM_ENOMEM;
        mem = release_oldest(c);
    }
    chunk_slot *s = &c->slots[(c->first + c->n_used) % c->max_chunks];
    c->n_used++;
    s->mem = mem;
    if (++c->gen == 0)
        c->gen = 1;
    s->gen = c->gen;
    s->fill = 0;
    s->newest_ms = now_ms;
    return 0;
}

int tm_rtx_cache_store(tm_rtx_cache *c, uint16_t seq, const uint8_t *pkt, size_t len,
                       int64_t now_ms)
{
    if (!c || !pkt || len == 0)
        return TM_EINVAL;
    if (len > TM_RTX_MAX_PACKET)
        return TM_ETOOBIG;
    unsigned cur = (c->first + c->n_used + c->max_chunks - 1) % c->max_chunks;
    if (c->n_used == 0 || c->slots[cur].fill + len > TM_RTX_CHUNK) {
        int rc = next_chunk(c, now_ms);
        if (rc != 0)
            return rc;
        cur = (c->first + c->n_used - 1) % c->max_chunks;
    }
    chunk_slot *s = &c->slots[cur];
    memcpy(s->mem + s->fill, pkt, len);
    rtx_entry *e = &c->idx[seq & c->mask];
    e->stored_ms = now_ms;
    e->gen = s->gen;
    e->slot = (uint16_t)cur;
    e->off = s->fill;
    e->seq = seq;
    e->len = (uint16_t)len;
    s->fill = (uint16_t)(s->fill + len);
    s->newest_ms = now_ms;
    return 0;
}

int tm_rtx_cache_get(tm_rtx_cache *c, uint16_t seq, int64_t now_ms, const uint8_t **pkt,
                     size_t *len)
{
    if (!c || !pkt || !len)
        return TM_EINVAL;
    const rtx_entry *e = &c->idx[seq & c->mask];
    if (!c->asked) {
        c->asked = true;
        c->decayed_ms = now_ms;
    }
    if (e->len == 0 || e->seq != seq)
        return TM_ENOTFOUND;
    int64_t age = now_ms - e->stored_ms;
    if (age > c->max_age_ms)
        return TM_ENOTFOUND;
    note_age(c, age);
    const chunk_slot *s = &c->slots[e->slot];
    if (!s->mem || s->gen != e->gen)
        return TM_ENOTFOUND;
    *pkt = s->mem + e->off;
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
    return c ? (size_t)c->n_used * TM_RTX_CHUNK : 0;
}

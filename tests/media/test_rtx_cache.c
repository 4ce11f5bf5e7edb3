/*
 * test_rtx_cache.c - the retransmission cache and its chunk pool: hits, misses
 * after index overwrite (including across the 16-bit sequence wrap) and after
 * a chunk is reused, packing of small packets, the start size until a lookup,
 * a history as long as the NACKs ask for (and shrinking when they ask less),
 * the size cap, the pool's limit, aging, reset, and a randomized check that a
 * hit is always the exact packet last stored under that seq.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "rtx_cache.h"
#include "tm_test.h"

static tm_rtx_pool *POOL; /* for the tests that do not look at the pool */

static void fill(uint8_t *p, size_t n, uint32_t key)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(key * 31u + i);
}

static void test_bad_args(void)
{
    CHECK(tm_rtx_cache_new(NULL, 16, 65536, 1000) == NULL);
    CHECK(tm_rtx_cache_new(POOL, 0, 65536, 1000) == NULL);
    CHECK(tm_rtx_cache_new(POOL, 100, 65536, 1000) == NULL); /* not a power of two */
    CHECK(tm_rtx_cache_new(POOL, 8, 65536, 1000) == NULL);
    CHECK(tm_rtx_cache_new(POOL, 65536, 65536, 1000) == NULL);
    CHECK(tm_rtx_cache_new(POOL, 512, 65536, 0) == NULL);
    CHECK(tm_rtx_cache_new(POOL, 512, TM_RTX_MIN_BYTES - 1, 1000) == NULL);
    tm_rtx_cache_free(NULL);
    tm_rtx_cache *c = tm_rtx_cache_new(POOL, 16, TM_RTX_MIN_BYTES, 1000);
    CHECK(c != NULL);
    CHECK_EQ_INT(tm_rtx_cache_slots(c), 16);
    CHECK_EQ_INT(tm_rtx_cache_bytes(c), 0); /* nothing stored: no chunk yet */
    uint8_t big[TM_RTX_MAX_PACKET + 1] = {0};
    CHECK_EQ_INT(tm_rtx_cache_store(c, 1, big, sizeof(big), 0), TM_ETOOBIG);
    CHECK_EQ_INT(tm_rtx_cache_store(c, 1, big, TM_RTX_MAX_PACKET, 0), 0);
    CHECK_EQ_INT(tm_rtx_cache_bytes(c), TM_RTX_CHUNK);
    CHECK_EQ_INT(tm_rtx_cache_store(c, 1, big, 0, 0), TM_EINVAL);
    tm_rtx_cache_free(c);
}

static void test_store_get_wrap(void)
{
    tm_rtx_cache *c = tm_rtx_cache_new(POOL, 512, 1024 * 1024, 1000);
    CHECK(c != NULL);
    const uint8_t *p;
    size_t len;
    CHECK_EQ_INT(tm_rtx_cache_get(c, 0, 0, &p, &len), TM_ENOTFOUND); /* empty entry */
    /* 1000 packets starting near the wrap: 65000 .. 464, all within one
     * millisecond after a lookup, so the cache keeps them all. */
    uint8_t pkt[1200];
    for (int i = 0; i < 1000; i++) {
        uint16_t seq = (uint16_t)(65000 + i);
        size_t n = 100 + (size_t)(i % 1000);
        fill(pkt, n, seq);
        CHECK_EQ_INT(tm_rtx_cache_store(c, seq, pkt, n, 10), 0);
    }
    /* The last 512 are there with their own bytes... */
    for (int i = 1000 - 512; i < 1000; i++) {
        uint16_t seq = (uint16_t)(65000 + i);
        CHECK_EQ_INT(tm_rtx_cache_get(c, seq, 20, &p, &len), 0);
        CHECK_EQ_INT(len, 100 + (size_t)(i % 1000));
        fill(pkt, len, seq);
        CHECK_EQ_INT(memcmp(p, pkt, len), 0);
    }
    /* ...older ones were overwritten: their entry now holds another seq. */
    for (int i = 0; i < 1000 - 512; i++)
        CHECK_EQ_INT(tm_rtx_cache_get(c, (uint16_t)(65000 + i), 20, &p, &len), TM_ENOTFOUND);
    /* The same entry under a newer seq not stored yet: a miss, not a false hit. */
    CHECK_EQ_INT(tm_rtx_cache_get(c, (uint16_t)(65000 + 999 + 512), 20, &p, &len), TM_ENOTFOUND);
    tm_rtx_cache_reset(c);
    CHECK_EQ_INT(tm_rtx_cache_get(c, (uint16_t)(65000 + 999), 20, &p, &len), TM_ENOTFOUND);
    tm_rtx_cache_free(c);
}

/* Small packets share a chunk: 200 audio-sized packets fit in the start size,
 * where 1500-byte slots would have needed 300 KB. */
static void test_packing(void)
{
    tm_rtx_cache *c = tm_rtx_cache_new(POOL, 256, TM_RTX_MIN_BYTES, 1000);
    uint8_t pkt[80];
    for (uint16_t s = 0; s < 200; s++) {
        fill(pkt, sizeof pkt, s);
        CHECK_EQ_INT(tm_rtx_cache_store(c, s, pkt, sizeof pkt, 100), 0);
    }
    for (uint16_t s = 0; s < 200; s++) {
        const uint8_t *p;
        size_t len;
        CHECK_EQ_INT(tm_rtx_cache_get(c, s, 200, &p, &len), 0);
        fill(pkt, sizeof pkt, s);
        CHECK_EQ_INT(len, sizeof pkt);
        CHECK_EQ_INT(memcmp(p, pkt, len), 0);
    }
    CHECK_EQ_INT(tm_rtx_cache_bytes(c), TM_RTX_MIN_BYTES);
    tm_rtx_cache_free(c);
}

/* A cache that may not grow keeps the newest chunks: packets whose chunk was
 * reused miss even though their index entry still names them. */
static void test_byte_overwrite(void)
{
    tm_rtx_cache *c = tm_rtx_cache_new(POOL, 64, TM_RTX_MIN_BYTES, 1000);
    uint8_t pkt[1000];
    for (uint16_t s = 0; s < 40; s++) {
        fill(pkt, sizeof pkt, s);
        CHECK_EQ_INT(tm_rtx_cache_store(c, s, pkt, sizeof pkt, 0), 0);
    }
    int hits = 0;
    for (uint16_t s = 0; s < 40; s++) {
        const uint8_t *p;
        size_t len;
        if (tm_rtx_cache_get(c, s, 0, &p, &len) != 0)
            continue;
        fill(pkt, sizeof pkt, s);
        CHECK_EQ_INT(memcmp(p, pkt, len), 0);
        hits++;
        CHECK(s >= 40 - TM_RTX_MIN_BYTES / 1000); /* only the newest survive */
    }
    /* 8 packets of 1000 bytes fit in a chunk; the newest two chunks are kept. */
    CHECK(hits >= 8 && hits <= TM_RTX_MIN_BYTES / 1000);
    for (uint16_t s = 40 - 8; s < 40; s++) {
        const uint8_t *p;
        size_t len;
        CHECK_EQ_INT(tm_rtx_cache_get(c, s, 0, &p, &len), 0);
    }
    tm_rtx_cache_free(c);
}

/* A receiver that never asks keeps the start size at 1 Mbit/s (1000 bytes
 * every 8 ms: the newest 16 packets, 128 ms, stay servable), as does audio. */
static void test_start_size_until_a_lookup(void)
{
    const uint8_t *p;
    size_t len;
    uint8_t pkt[1000] = {0};
    tm_rtx_pool *pool = tm_rtx_pool_new(4);
    tm_rtx_cache *c = tm_rtx_cache_new(pool, 256, 1024 * 1024, 1000);
    int64_t t = 0;
    uint32_t i = 0;
    for (; i < 500; i++, t += 8)
        CHECK_EQ_INT(tm_rtx_cache_store(c, (uint16_t)i, pkt, sizeof pkt, t), 0);
    CHECK_EQ_INT(tm_rtx_cache_bytes(c), TM_RTX_MIN_BYTES);
    CHECK_EQ_INT(tm_rtx_cache_window_ms(c), 0);
    tm_rtx_cache *a = tm_rtx_cache_new(pool, 256, 1024 * 1024, 1000);
    for (uint32_t k = 0; k < 1000; k++)
        CHECK_EQ_INT(tm_rtx_cache_store(a, (uint16_t)k, pkt, 100, (int64_t)k * 20), 0);
    CHECK_EQ_INT(tm_rtx_cache_bytes(a), TM_RTX_MIN_BYTES);
    tm_rtx_cache_free(a);
    CHECK_EQ_INT(tm_rtx_pool_idle_bytes(pool), TM_RTX_MIN_BYTES); /* its chunks went back */
    t -= 8;
    CHECK_EQ_INT(tm_rtx_cache_get(c, (uint16_t)(i - 8), t, &p, &len), 0);
    CHECK_EQ_INT(tm_rtx_cache_get(c, (uint16_t)(i - 100), t, &p, &len), TM_ENOTFOUND);
    tm_rtx_cache_free(c);
    tm_rtx_pool_free(pool);
}

/* Stores packets i.. at 1 Mbit/s (1000 bytes every 8 ms) until `until`;
 * leaves *t at the stamp of the last one. */
static void store_until(tm_rtx_cache *c, uint32_t *i, uint32_t until, int64_t *t)
{
    uint8_t pkt[1000];
    for (; *i < until; (*i)++) {
        *t += 8;
        fill(pkt, sizeof pkt, *i);
        CHECK_EQ_INT(tm_rtx_cache_store(c, (uint16_t)*i, pkt, sizeof pkt, *t), 0);
    }
}

/* 1 Mbit/s. A NACK for a packet 296 ms old misses (the start size holds
 * 128 ms), and the cache keeps 300 + 100 ms from then on: a NACK for a packet
 * 344 ms old hits. One asking 696 ms back stretches it to 800 ms, also while
 * 40 more come 16 ms back. With every ask that young for a minute the counts of
 * the old ones halve away, and the history shrinks to 50 + 100 ms, its chunks
 * back in the pool. */
static void test_window_follows_the_nacks(void)
{
    const uint8_t *p;
    size_t len;
    uint8_t want[1000];
    tm_rtx_pool *pool = tm_rtx_pool_new(64);
    tm_rtx_cache *c = tm_rtx_cache_new(pool, 512, 1024 * 1024, 1000);
    int64_t t = -8;
    uint32_t i = 0;
    store_until(c, &i, 200, &t);
    CHECK_EQ_INT(tm_rtx_cache_get(c, (uint16_t)(i - 1 - 37), t, &p, &len), TM_ENOTFOUND);
    CHECK_EQ_INT(tm_rtx_cache_window_ms(c), 400);
    store_until(c, &i, 600, &t);
    /* 400 ms is 50 packets, 7 chunks of 8 with the one being filled. */
    CHECK(tm_rtx_cache_bytes(c) >= 7 * TM_RTX_CHUNK && tm_rtx_cache_bytes(c) <= 8 * TM_RTX_CHUNK);
    uint32_t old = i - 1 - 43;
    CHECK_EQ_INT(tm_rtx_cache_get(c, (uint16_t)old, t, &p, &len), 0);
    fill(want, sizeof want, old);
    CHECK_EQ_INT(memcmp(p, want, len), 0);
    CHECK_EQ_INT(tm_rtx_cache_window_ms(c), 450);
    CHECK_EQ_INT(tm_rtx_cache_get(c, (uint16_t)(i - 1 - 87), t, &p, &len), TM_ENOTFOUND);
    CHECK_EQ_INT(tm_rtx_cache_window_ms(c), 800);
    for (int k = 0; k < 40; k++)
        CHECK_EQ_INT(tm_rtx_cache_get(c, (uint16_t)(i - 1 - 2), t, &p, &len), 0);
    CHECK_EQ_INT(tm_rtx_cache_window_ms(c), 800); /* the oldest ask still counts */
    store_until(c, &i, 800, &t);
    size_t before = tm_rtx_cache_bytes(c);
    /* 60 s, an ask 16 ms back every 400 ms. */
    for (int64_t end = t + 60000; t < end;) {
        store_until(c, &i, i + 50, &t);
        CHECK_EQ_INT(tm_rtx_cache_get(c, (uint16_t)(i - 1 - 2), t, &p, &len), 0);
    }
    CHECK_EQ_INT(tm_rtx_cache_window_ms(c), 150);
    CHECK(tm_rtx_cache_bytes(c) <= before / 2);
    CHECK(tm_rtx_pool_idle_bytes(pool) > 0);
    tm_rtx_cache_free(c);
    tm_rtx_pool_free(pool);
}

/* 4 Mbit/s with NACKs 900 ms late against a 64 KiB cap: the cap holds, the
 * newest 64 packets stay servable. */
static void test_cap(void)
{
    const uint8_t *p;
    size_t len;
    uint8_t pkt[1000] = {0};
    tm_rtx_pool *pool = tm_rtx_pool_new(4);
    tm_rtx_cache *c = tm_rtx_cache_new(pool, 1024, 64 * 1024, 1000);
    int64_t t = 0;
    for (uint32_t i = 0; i < 2000; i++, t += 2) {
        CHECK_EQ_INT(tm_rtx_cache_store(c, (uint16_t)i, pkt, sizeof pkt, t), 0);
        if (i == 1000)
            (void)tm_rtx_cache_get(c, (uint16_t)(i - 450), t, &p, &len);
    }
    t -= 2;
    CHECK_EQ_INT(tm_rtx_cache_window_ms(c), 1000);
    CHECK_EQ_INT(tm_rtx_cache_bytes(c), 64 * 1024);
    CHECK_EQ_INT(tm_rtx_cache_get(c, 1999, t, &p, &len), 0);
    CHECK_EQ_INT(tm_rtx_cache_get(c, 1999 - 55, t, &p, &len), 0);
    CHECK_EQ_INT(tm_rtx_cache_get(c, 1999 - 70, t, &p, &len), TM_ENOTFOUND);
    tm_rtx_cache_free(c);
    tm_rtx_pool_free(pool);
}

/* The pool keeps what it was made to keep and frees the rest. */
static void test_pool_keeps_its_limit(void)
{
    uint8_t pkt[1000] = {0};
    const uint8_t *p;
    size_t len;
    tm_rtx_pool *pool = tm_rtx_pool_new(3);
    tm_rtx_cache *c = tm_rtx_cache_new(pool, 256, 1024 * 1024, 1000);
    CHECK_EQ_INT(tm_rtx_cache_get(c, 0, 0, &p, &len), TM_ENOTFOUND);
    for (uint32_t i = 0; i < 100; i++) /* all at once: every chunk is in the window */
        CHECK_EQ_INT(tm_rtx_cache_store(c, (uint16_t)i, pkt, sizeof pkt, 1), 0);
    CHECK_EQ_INT(tm_rtx_cache_bytes(c), 13 * TM_RTX_CHUNK);
    tm_rtx_cache_free(c);
    CHECK_EQ_INT(tm_rtx_pool_idle_bytes(pool), 3 * TM_RTX_CHUNK);
    tm_rtx_pool_free(pool);
}

/* Whether the page holding addr is resident; an unmapped one counts as not. */
static bool resident(const void *addr)
{
    long page = sysconf(_SC_PAGESIZE);
    unsigned char vec = 0;
    void *start = (void *)((uintptr_t)addr & ~(uintptr_t)(page - 1));
    return mincore(start, (size_t)page, &vec) == 0 && (vec & 1);
}

/* A chunk let go beyond the warm ones gives its pages back at once; taken
 * again, it holds what is stored in it. */
static void test_pool_gives_pages_back(void)
{
    uint8_t pkt[1000];
    const uint8_t *p, *first;
    size_t len;
    tm_rtx_pool *pool = tm_rtx_pool_new(1);
    tm_rtx_cache *a = tm_rtx_cache_new(pool, 256, 1024 * 1024, 1000);
    tm_rtx_cache *b = tm_rtx_cache_new(pool, 256, 1024 * 1024, 1000);
    CHECK_EQ_INT(tm_rtx_cache_get(a, 0, 0, &p, &len), TM_ENOTFOUND);
    CHECK_EQ_INT(tm_rtx_cache_get(b, 0, 0, &p, &len), TM_ENOTFOUND);
    for (uint32_t i = 0; i < 100; i++) {
        memset(pkt, (int)i, sizeof pkt);
        CHECK_EQ_INT(tm_rtx_cache_store(a, (uint16_t)i, pkt, sizeof pkt, 1), 0);
        CHECK_EQ_INT(tm_rtx_cache_store(b, (uint16_t)i, pkt, sizeof pkt, 1), 0);
    }
    CHECK_EQ_INT(tm_rtx_cache_get(a, 50, 1, &first, &len), 0);
    CHECK(resident(first));
    tm_rtx_cache_free(a); /* b keeps its slab mapped */
    CHECK_EQ_INT(tm_rtx_pool_idle_bytes(pool), TM_RTX_CHUNK);
    CHECK(!resident(first));
    tm_rtx_cache *c = tm_rtx_cache_new(pool, 256, 1024 * 1024, 1000);
    CHECK_EQ_INT(tm_rtx_cache_get(c, 0, 0, &p, &len), TM_ENOTFOUND);
    for (uint32_t i = 0; i < 100; i++) {
        memset(pkt, (int)(i ^ 0x5a), sizeof pkt);
        CHECK_EQ_INT(tm_rtx_cache_store(c, (uint16_t)i, pkt, sizeof pkt, 2), 0);
    }
    for (uint32_t i = 0; i < 100; i++) {
        CHECK_EQ_INT(tm_rtx_cache_get(c, (uint16_t)i, 2, &p, &len), 0);
        CHECK_EQ_INT(len, sizeof pkt);
        CHECK(p[0] == (uint8_t)(i ^ 0x5a) && p[len - 1] == (uint8_t)(i ^ 0x5a));
        CHECK_EQ_INT(tm_rtx_cache_get(b, (uint16_t)i, 2, &p, &len), 0);
        CHECK(p[0] == (uint8_t)i && p[len - 1] == (uint8_t)i);
    }
    tm_rtx_cache_free(c);
    tm_rtx_cache_free(b);
    tm_rtx_pool_free(pool);
}

/* Random sizes, repeated and out-of-order seqs, uneven clock: a hit is always
 * the packet last stored under that seq, byte for byte, and never too old. */
static void test_random_model(void)
{
    enum { N_SEQ = 600 };
    static uint32_t key[N_SEQ];
    static uint16_t klen[N_SEQ];
    static int64_t kms[N_SEQ];
    memset(klen, 0, sizeof klen);
    tm_rtx_cache *c = tm_rtx_cache_new(POOL, 128, 96 * 1024, 300);
    uint8_t pkt[TM_RTX_MAX_PACKET], want[TM_RTX_MAX_PACKET];
    unsigned rnd = 12345;
    int64_t t = 0;
    int hits = 0;
    for (uint32_t k = 1; k < 40000; k++) {
        rnd = rnd * 1103515245u + 12345u;
        unsigned r = rnd >> 8;
        t += r % 3;
        uint16_t seq = (uint16_t)(65400 + (k / 2) % (N_SEQ - 4) + r % 5); /* wraps; repeats */
        size_t n = 1 + (r >> 4) % TM_RTX_MAX_PACKET;
        fill(pkt, n, k);
        CHECK_EQ_INT(tm_rtx_cache_store(c, seq, pkt, n, t), 0);
        unsigned slot = (uint16_t)(seq - 65400) % N_SEQ;
        key[slot] = k;
        klen[slot] = (uint16_t)n;
        kms[slot] = t;
        uint16_t ask = (uint16_t)(65400 + (r >> 12) % N_SEQ);
        const uint8_t *p;
        size_t len;
        if (tm_rtx_cache_get(c, ask, t, &p, &len) == 0) {
            unsigned a = (uint16_t)(ask - 65400) % N_SEQ;
            CHECK(klen[a] != 0);
            CHECK_EQ_INT(len, klen[a]);
            CHECK(t - kms[a] <= 300);
            fill(want, len, key[a]);
            CHECK_EQ_INT(memcmp(p, want, len), 0);
            hits++;
        }
    }
    CHECK(hits > 1000);
    tm_rtx_cache_free(c);
}

static void test_aging(void)
{
    tm_rtx_cache *c = tm_rtx_cache_new(POOL, 64, TM_RTX_MIN_BYTES, 1000);
    uint8_t pkt[20] = {1};
    const uint8_t *p;
    size_t len;
    CHECK_EQ_INT(tm_rtx_cache_store(c, 7, pkt, sizeof(pkt), 5000), 0);
    CHECK_EQ_INT(tm_rtx_cache_store(c, 8, pkt, sizeof(pkt), 5600), 0);
    CHECK_EQ_INT(tm_rtx_cache_get(c, 7, 6000, &p, &len), 0); /* exactly max age */
    CHECK_EQ_INT(tm_rtx_cache_get(c, 7, 6001, &p, &len), TM_ENOTFOUND);
    CHECK_EQ_INT(tm_rtx_cache_get(c, 8, 6001, &p, &len), 0);
    CHECK_EQ_INT(tm_rtx_cache_get(c, 8, 6601, &p, &len), TM_ENOTFOUND);
    /* A fresh store of the same seq is servable again. */
    CHECK_EQ_INT(tm_rtx_cache_store(c, 7, pkt, 3, 7000), 0);
    CHECK_EQ_INT(tm_rtx_cache_get(c, 7, 7100, &p, &len), 0);
    CHECK_EQ_INT(len, 3);
    tm_rtx_cache_free(c);
}

int main(void)
{
    POOL = tm_rtx_pool_new(16);
    CHECK(POOL != NULL);
    RUN(test_bad_args);
    RUN(test_store_get_wrap);
    RUN(test_packing);
    RUN(test_byte_overwrite);
    RUN(test_start_size_until_a_lookup);
    RUN(test_window_follows_the_nacks);
    RUN(test_cap);
    RUN(test_pool_keeps_its_limit);
    RUN(test_pool_gives_pages_back);
    RUN(test_random_model);
    RUN(test_aging);
    tm_rtx_pool_free(POOL);
    TEST_DONE();
}

/*
 * test_rtx_cache.c - the retransmission byte ring: hits, misses after index
 * overwrite (including across the 16-bit sequence wrap) and after byte
 * overwrite, packing of small packets, allocation at the first store, growth
 * with the bitrate up to the cap once a lookup has come, aging, size limits, reset, and a
 * randomized check that a hit is always the exact packet last stored under that seq.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rtx_cache.h"
#include "tm_test.h"

static void fill(uint8_t *p, size_t n, uint32_t key)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(key * 31u + i);
}

static void test_bad_args(void)
{
    CHECK(tm_rtx_cache_new(0, 65536, 1000) == NULL);
    CHECK(tm_rtx_cache_new(100, 65536, 1000) == NULL); /* not a power of two */
    CHECK(tm_rtx_cache_new(8, 65536, 1000) == NULL);
    CHECK(tm_rtx_cache_new(65536, 65536, 1000) == NULL);
    CHECK(tm_rtx_cache_new(512, 65536, 0) == NULL);
    CHECK(tm_rtx_cache_new(512, TM_RTX_MIN_BYTES - 1, 1000) == NULL);
    tm_rtx_cache_free(NULL);
    tm_rtx_cache *c = tm_rtx_cache_new(16, TM_RTX_MIN_BYTES, 1000);
    CHECK(c != NULL);
    CHECK_EQ_INT(tm_rtx_cache_slots(c), 16);
    CHECK_EQ_INT(tm_rtx_cache_bytes(c), 0); /* nothing stored: no ring yet */
    uint8_t big[TM_RTX_MAX_PACKET + 1] = {0};
    CHECK_EQ_INT(tm_rtx_cache_store(c, 1, big, sizeof(big), 0), TM_ETOOBIG);
    CHECK_EQ_INT(tm_rtx_cache_store(c, 1, big, TM_RTX_MAX_PACKET, 0), 0);
    CHECK_EQ_INT(tm_rtx_cache_bytes(c), TM_RTX_MIN_BYTES);
    CHECK_EQ_INT(tm_rtx_cache_store(c, 1, big, 0, 0), TM_EINVAL);
    tm_rtx_cache_free(c);
}

static void test_store_get_wrap(void)
{
    tm_rtx_cache *c = tm_rtx_cache_new(512, 1024 * 1024, 1000);
    CHECK(c != NULL);
    const uint8_t *p;
    size_t len;
    CHECK_EQ_INT(tm_rtx_cache_get(c, 0, 0, &p, &len), TM_ENOTFOUND); /* empty entry */
    /* 1000 packets starting near the wrap: 65000 .. 464, all within one
     * millisecond, so the ring grows to hold them. */
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

/* Small packets share the ring: 200 audio-sized packets fit in its start size,
 * where 1500-byte slots would have needed 300 KB. */
static void test_packing(void)
{
    tm_rtx_cache *c = tm_rtx_cache_new(256, TM_RTX_MIN_BYTES, 1000);
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

/* A ring that may not grow keeps the newest bytes: packets whose bytes were
 * written over miss even though their index entry still names them. */
static void test_byte_overwrite(void)
{
    tm_rtx_cache *c = tm_rtx_cache_new(64, TM_RTX_MIN_BYTES, 1000);
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
    /* 16 packets of 1000 bytes fit in 16 KiB; the newest lap holds 40 % 16. */
    CHECK(hits >= 8 && hits <= TM_RTX_MIN_BYTES / 1000);
    for (uint16_t s = 40 - 8; s < 40; s++) {
        const uint8_t *p;
        size_t len;
        CHECK_EQ_INT(tm_rtx_cache_get(c, s, 0, &p, &len), 0);
    }
    tm_rtx_cache_free(c);
}

/* Once the receiver has asked for a packet, the ring settles at the size that
 * holds max age at the stream's rate. */
static void test_growth(void)
{
    const uint8_t *p;
    size_t len;
    uint8_t pkt[1000];
    /* 1 Mbit/s: 1000 bytes every 8 ms. One second is 125 KB: 128 KiB. */
    tm_rtx_cache *c = tm_rtx_cache_new(256, 1024 * 1024, 1000);
    CHECK_EQ_INT(tm_rtx_cache_get(c, 9999, 0, &p, &len), TM_ENOTFOUND); /* a NACK came */
    int64_t t = 0;
    for (uint32_t i = 0; i < 500; i++, t += 8) {
        fill(pkt, sizeof pkt, i);
        CHECK_EQ_INT(tm_rtx_cache_store(c, (uint16_t)i, pkt, sizeof pkt, t), 0);
    }
    CHECK_EQ_INT(tm_rtx_cache_bytes(c), 128 * 1024);
    t -= 8;
    for (uint32_t i = 500 - 125; i < 500; i++) { /* the last second, all there */
        CHECK_EQ_INT(tm_rtx_cache_get(c, (uint16_t)i, t, &p, &len), 0);
        fill(pkt, sizeof pkt, i);
        CHECK_EQ_INT(memcmp(p, pkt, len), 0);
    }
    tm_rtx_cache_free(c);

    /* Audio rate (100 bytes every 20 ms) stays at the start size. */
    c = tm_rtx_cache_new(256, 1024 * 1024, 1000);
    t = 0;
    for (uint32_t i = 0; i < 1000; i++, t += 20)
        CHECK_EQ_INT(tm_rtx_cache_store(c, (uint16_t)i, pkt, 100, t), 0);
    CHECK_EQ_INT(tm_rtx_cache_bytes(c), TM_RTX_MIN_BYTES);
    tm_rtx_cache_free(c);

    /* 4 Mbit/s against a 64 KiB cap: the cap holds, the newest stay servable. */
    c = tm_rtx_cache_new(256, 64 * 1024, 1000);
    CHECK_EQ_INT(tm_rtx_cache_get(c, 9999, 0, &p, &len), TM_ENOTFOUND);
    t = 0;
    for (uint32_t i = 0; i < 2000; i++, t += 2)
        CHECK_EQ_INT(tm_rtx_cache_store(c, (uint16_t)i, pkt, sizeof pkt, t), 0);
    CHECK_EQ_INT(tm_rtx_cache_bytes(c), 64 * 1024);
    CHECK_EQ_INT(tm_rtx_cache_get(c, 1999, t, &p, &len), 0);
    CHECK_EQ_INT(tm_rtx_cache_get(c, 1999 - 60, t, &p, &len), 0);
    CHECK_EQ_INT(tm_rtx_cache_get(c, 1999 - 70, t, &p, &len), TM_ENOTFOUND);
    tm_rtx_cache_free(c);
}

/* A receiver that never asks keeps the start size at 1 Mbit/s (the newest
 * ~130 ms stay servable); its first NACK lets the ring grow to max age. */
static void test_growth_waits_for_a_lookup(void)
{
    const uint8_t *p;
    size_t len;
    uint8_t pkt[1000];
    tm_rtx_cache *c = tm_rtx_cache_new(256, 1024 * 1024, 1000);
    int64_t t = 0;
    uint32_t i = 0;
    for (; i < 500; i++, t += 8)
        CHECK_EQ_INT(tm_rtx_cache_store(c, (uint16_t)i, pkt, sizeof pkt, t), 0);
    CHECK_EQ_INT(tm_rtx_cache_bytes(c), TM_RTX_MIN_BYTES);
    CHECK_EQ_INT(tm_rtx_cache_get(c, (uint16_t)(i - 10), t, &p, &len), 0);
    CHECK_EQ_INT(tm_rtx_cache_get(c, (uint16_t)(i - 100), t, &p, &len), TM_ENOTFOUND);
    for (; i < 1000; i++, t += 8)
        CHECK_EQ_INT(tm_rtx_cache_store(c, (uint16_t)i, pkt, sizeof pkt, t), 0);
    CHECK_EQ_INT(tm_rtx_cache_bytes(c), 128 * 1024);
    CHECK_EQ_INT(tm_rtx_cache_get(c, (uint16_t)(i - 100), t, &p, &len), 0);
    tm_rtx_cache_free(c);
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
    tm_rtx_cache *c = tm_rtx_cache_new(128, 96 * 1024, 300);
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
    tm_rtx_cache *c = tm_rtx_cache_new(64, TM_RTX_MIN_BYTES, 1000);
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
    RUN(test_bad_args);
    RUN(test_store_get_wrap);
    RUN(test_packing);
    RUN(test_byte_overwrite);
    RUN(test_growth);
    RUN(test_growth_waits_for_a_lookup);
    RUN(test_random_model);
    RUN(test_aging);
    TEST_DONE();
}

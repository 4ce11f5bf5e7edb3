/*
 * test_rtx_cache.c - the retransmission ring: hits, misses after overwrite
 * (including across the 16-bit sequence wrap), aging, size limits, reset.
 */
#include <stdint.h>
#include <string.h>

#include "telemed/rtx_cache.h"
#include "tm_test.h"

static void fill(uint8_t *p, size_t n, uint16_t seq)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seq + i);
}

static void test_bad_args(void)
{
    CHECK(tm_rtx_cache_new(0, 1000) == NULL);
    CHECK(tm_rtx_cache_new(100, 1000) == NULL); /* not a power of two */
    CHECK(tm_rtx_cache_new(8, 1000) == NULL);
    CHECK(tm_rtx_cache_new(65536, 1000) == NULL);
    CHECK(tm_rtx_cache_new(512, 0) == NULL);
    tm_rtx_cache_free(NULL);
    tm_rtx_cache *c = tm_rtx_cache_new(16, 1000);
    CHECK(c != NULL);
    CHECK_EQ_INT(tm_rtx_cache_slots(c), 16);
    uint8_t big[TM_RTX_SLOT_SIZE + 1] = {0};
    CHECK_EQ_INT(tm_rtx_cache_store(c, 1, big, sizeof(big), 0), TM_ETOOBIG);
    CHECK_EQ_INT(tm_rtx_cache_store(c, 1, big, TM_RTX_SLOT_SIZE, 0), 0);
    CHECK_EQ_INT(tm_rtx_cache_store(c, 1, big, 0, 0), TM_EINVAL);
    tm_rtx_cache_free(c);
}

static void test_store_get_wrap(void)
{
    tm_rtx_cache *c = tm_rtx_cache_new(512, 1000);
    CHECK(c != NULL);
    const uint8_t *p;
    size_t len;
    CHECK_EQ_INT(tm_rtx_cache_get(c, 0, 0, &p, &len), TM_ENOTFOUND); /* empty slot */
    /* 1000 packets starting near the wrap: 65000 .. 464. */
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
    /* ...older ones were overwritten: their slot now holds another seq. */
    for (int i = 0; i < 1000 - 512; i++)
        CHECK_EQ_INT(tm_rtx_cache_get(c, (uint16_t)(65000 + i), 20, &p, &len), TM_ENOTFOUND);
    /* The same slot under a newer seq not stored yet: a miss, not a false hit. */
    CHECK_EQ_INT(tm_rtx_cache_get(c, (uint16_t)(65000 + 999 + 512), 20, &p, &len), TM_ENOTFOUND);
    tm_rtx_cache_reset(c);
    CHECK_EQ_INT(tm_rtx_cache_get(c, (uint16_t)(65000 + 999), 20, &p, &len), TM_ENOTFOUND);
    tm_rtx_cache_free(c);
}

static void test_aging(void)
{
    tm_rtx_cache *c = tm_rtx_cache_new(64, 1000);
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
    RUN(test_aging);
    TEST_DONE();
}

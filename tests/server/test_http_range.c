/*
 * test_http_range.c - Range header parsing for recording downloads: single
 * ranges, open-ended and suffix forms, clamping, every 416 case, headers we
 * ignore (200), and a header that is not NUL-terminated.
 */
#include "telemed/http_range.h"
#include "tm_test.h"

#include <stdint.h>

static int parse(const char *v, uint64_t size, uint64_t *a, uint64_t *b)
{
    *a = *b = 0xdeadbeef;
    return tm_http_range_parse(v, v ? strlen(v) : 0, size, a, b);
}

#define EXPECT_206(v, size, fa, fb)                                                                \
    do {                                                                                           \
        uint64_t a_, b_;                                                                           \
        CHECK_EQ_INT(parse(v, size, &a_, &b_), 206);                                               \
        CHECK_EQ_INT(a_, fa);                                                                      \
        CHECK_EQ_INT(b_, fb);                                                                      \
    } while (0)

#define EXPECT(v, size, status)                                                                    \
    do {                                                                                           \
        uint64_t a_, b_;                                                                           \
        CHECK_EQ_INT(parse(v, size, &a_, &b_), status);                                            \
    } while (0)

static void test_single_ranges(void)
{
    EXPECT_206("bytes=0-99", 1000, 0, 99);
    EXPECT_206("bytes=0-0", 1000, 0, 0);
    EXPECT_206("bytes=999-999", 1000, 999, 999);
    EXPECT_206("bytes=500-5000", 1000, 500, 999); /* last clamped to the end */
    EXPECT_206("Bytes=10-20", 1000, 10, 20);      /* unit is case-insensitive */
    EXPECT_206("  bytes= 10-20 ", 1000, 10, 20);
}

static void test_open_and_suffix(void)
{
    EXPECT_206("bytes=0-", 1000, 0, 999); /* what <video> sends first */
    EXPECT_206("bytes=990-", 1000, 990, 999);
    EXPECT_206("bytes=-100", 1000, 900, 999);
    EXPECT_206("bytes=-1000", 1000, 0, 999);
    EXPECT_206("bytes=-5000", 1000, 0, 999); /* longer suffix: the whole file */
    EXPECT_206("bytes=0-", 1, 0, 0);
}

static void test_unsatisfiable(void)
{
    EXPECT("bytes=1000-", 1000, 416);
    EXPECT("bytes=1000-1001", 1000, 416);
    EXPECT("bytes=5000-6000", 1000, 416);
    EXPECT("bytes=-0", 1000, 416);
    EXPECT("bytes=0-", 0, 416); /* empty file: nothing is satisfiable */
    EXPECT("bytes=-10", 0, 416);
    EXPECT("bytes=99999999999999999999999999-", 1000, 416); /* saturates, past the end */
    char buf[64];
    CHECK_STR(tm_http_content_range(416, 0, 0, 1000, buf, sizeof(buf)), "bytes */1000");
    CHECK_STR(tm_http_content_range(206, 0, 99, 1000, buf, sizeof(buf)), "bytes 0-99/1000");
    CHECK_STR(tm_http_content_range(206, 0, UINT64_MAX - 1, UINT64_MAX, buf, sizeof(buf)),
              "bytes 0-18446744073709551614/18446744073709551615");
}

static void test_ignored(void)
{
    EXPECT(NULL, 1000, 200);
    EXPECT("", 1000, 200);
    EXPECT("items=0-10", 1000, 200);
    EXPECT("bytes=", 1000, 200);
    EXPECT("bytes=-", 1000, 200);
    EXPECT("bytes=abc-", 1000, 200);
    EXPECT("bytes=20-10", 1000, 200); /* last < first: invalid, ignored */
    EXPECT("bytes=0-10,20-30", 1000, 200);
    EXPECT("bytes=0-10 x", 1000, 200);
    EXPECT("bytes 0-10", 1000, 200);
    EXPECT("byte=0-10", 1000, 200);
    EXPECT("bytes=+1-5", 1000, 200);
    EXPECT("bytes=1--5", 1000, 200);
}

static void test_length_is_respected(void)
{
    /* "bytes=0-99999" cut at 10 bytes is "bytes=0-9": nothing past len read. */
    const char v[] = "bytes=0-99999";
    uint64_t a, b;
    CHECK_EQ_INT(tm_http_range_parse(v, 9, 1000, &a, &b), 206);
    CHECK_EQ_INT(b, 9);
    CHECK_EQ_INT(tm_http_range_parse(v, 3, 1000, &a, &b), 200);
    /* An embedded NUL is junk, not an end. */
    const char nul[] = "bytes=0-9\0garbage";
    CHECK_EQ_INT(tm_http_range_parse(nul, sizeof(nul) - 1, 1000, &a, &b), 200);
}

int main(void)
{
    RUN(test_single_ranges);
    RUN(test_open_and_suffix);
    RUN(test_unsatisfiable);
    RUN(test_ignored);
    RUN(test_length_is_respected);
    TEST_DONE();
}

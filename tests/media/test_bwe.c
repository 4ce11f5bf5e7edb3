/*
 * test_bwe.c - the server's downlink estimate (bwe.c) driven by synthetic
 * links: packets stamped by tm__bwe_sent go through a modelled bottleneck
 * (a FIFO at a fixed rate, a base delay, seeded random loss), the receiving
 * side's arrivals become real transport-cc feedback bytes through the
 * server's own builder (congestion.c, checked against the draft in
 * test_congestion), which tm__twcc_fb_parse reads back for the estimator.
 * Also: malformed feedback, feedback for packets we never sent, and the
 * 16-bit sequence numbers wrapping.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bwe.h"
#include "congestion.h"
#include "rtcp.h"
#include "tm_test.h"

#define PKT_BYTES 1200
#define FB_EVERY_US 100000
#define BASE_DELAY_US 20000

/* ---- a link ---- */

typedef struct link {
    uint64_t capacity_bps;
    unsigned loss_pct;
    uint32_t rng;
    int64_t queue_free_us; /* when the bottleneck is free again */
} link;

static bool lost(link *l)
{
    l->rng = l->rng * 1103515245u + 12345u;
    return (l->rng >> 16) % 100 < l->loss_pct;
}

/* When a packet sent at send_us arrives, -1 when the link drops it. */
static int64_t through(link *l, int64_t send_us, size_t bytes)
{
    if (lost(l))
        return -1;
    int64_t start = send_us > l->queue_free_us ? send_us : l->queue_free_us;
    l->queue_free_us = start + (int64_t)(bytes * 8 * 1000000ull / l->capacity_bps);
    return l->queue_free_us + BASE_DELAY_US;
}

/* ---- a session: the server's side and the receiver's ---- */

typedef struct session {
    tm__bwe bwe;
    tm__twcc rx; /* the receiver's record of arrivals */
    tm__twcc_fb fb;
    link net;
    int64_t now_us, next_fb_us;
    unsigned feedbacks;
} session;

static session S; /* ~40 KiB: not on the stack */

static void session_start(uint64_t capacity_bps, unsigned loss_pct)
{
    memset(&S, 0, sizeof S);
    tm__bwe_init(&S.bwe);
    tm__twcc_configure(&S.rx, 3, true);
    S.net = (link){.capacity_bps = capacity_bps, .loss_pct = loss_pct, .rng = 7};
    S.now_us = 1000000;
    S.next_fb_us = S.now_us + FB_EVERY_US;
}

/* The receiver's feedback of what arrived by now, back to the server. */
static void deliver_feedback(void)
{
    uint8_t buf[1500];
    int n;
    while ((n = tm__twcc_build(&S.rx, buf, sizeof buf, 1, 2, S.now_us)) > 0) {
        CHECK_EQ_INT(tm__twcc_fb_parse(buf, (size_t)n, &S.fb), 0);
        tm__bwe_on_feedback(&S.bwe, &S.fb, S.now_us + BASE_DELAY_US);
        S.feedbacks++;
    }
    CHECK(n >= 0);
}

/* Sends for `seconds` at rate_bps, or at the estimate when rate_bps is 0 (a
 * sender that obeys the server); packets arrive through the link. */
static void run(double seconds, uint64_t rate_bps)
{
    int64_t end = S.now_us + (int64_t)(seconds * 1e6);
    /* Arrivals waiting for the receiver's clock to reach them. */
    static struct {
        uint16_t seq;
        int64_t at;
    } pending[4096];
    static unsigned n_pending;
    n_pending = 0;
    while (S.now_us < end) {
        uint64_t rate = rate_bps ? rate_bps : tm__bwe_estimate(&S.bwe);
        if (!rate)
            rate = TM__BWE_START_BPS;
        uint16_t seq = tm__bwe_sent(&S.bwe, PKT_BYTES, S.now_us);
        int64_t at = through(&S.net, S.now_us, PKT_BYTES);
        if (at >= 0 && n_pending < 4096) {
            pending[n_pending].seq = seq;
            pending[n_pending].at = at;
            n_pending++;
        }
        S.now_us += (int64_t)(PKT_BYTES * 8 * 1000000ull / rate);
        unsigned k = 0;
        for (unsigned i = 0; i < n_pending; i++) {
            if (pending[i].at <= S.now_us)
                tm__twcc_on_packet(&S.rx, pending[i].seq, pending[i].at);
            else
                pending[k++] = pending[i];
        }
        n_pending = k;
        if (S.now_us >= S.next_fb_us) {
            deliver_feedback();
            S.next_fb_us += FB_EVERY_US;
        }
    }
}

/* ---- feedback bytes ---- */

static void test_parse_round_trip(void)
{
    tm__twcc rx;
    tm__twcc_configure(&rx, 3, true);
    int64_t t0 = 5 * 1000000;
    /* 0..9 arrive 1 ms apart, 10..12 are lost, 13 comes 100 ms later (a large delta). */
    for (uint16_t s = 0; s < 10; s++)
        tm__twcc_on_packet(&rx, (uint16_t)(65530 + s), t0 + s * 1000);
    tm__twcc_on_packet(&rx, (uint16_t)(65530 + 13), t0 + 109000);
    uint8_t buf[512];
    int n = tm__twcc_build(&rx, buf, sizeof buf, 1, 2, t0 + 110000);
    CHECK(n > 0);
    tm__twcc_fb fb;
    CHECK_EQ_INT(tm__twcc_fb_parse(buf, (size_t)n, &fb), 0);
    CHECK_EQ_INT(fb.base_seq, 65530);
    CHECK_EQ_INT(fb.count, 14);
    for (unsigned i = 1; i < 10; i++)
        CHECK_EQ_INT(fb.arrival_us[i] - fb.arrival_us[i - 1], 1000);
    for (unsigned i = 10; i < 13; i++)
        CHECK(fb.arrival_us[i] == TM__TWCC_LOST);
    CHECK_EQ_INT(fb.arrival_us[13] - fb.arrival_us[9], 100000);
    CHECK_EQ_INT((int64_t)fb.ref * 64000 + fb.arrival_us[0], t0);

    /* Cut short, another feedback type, a reserved status: refused. */
    CHECK_EQ_INT(tm__twcc_fb_parse(buf, (size_t)n - 4, &fb), TM_EINVAL);
    CHECK_EQ_INT(fb.count, 0);
    CHECK_EQ_INT(tm__twcc_fb_parse(buf, 19, &fb), TM_EINVAL);
    uint8_t bad[512];
    memcpy(bad, buf, (size_t)n);
    bad[0] = (uint8_t)((bad[0] & 0xe0) | 1); /* a NACK's fmt */
    CHECK_EQ_INT(tm__twcc_fb_parse(bad, (size_t)n, &fb), TM_EINVAL);
    memcpy(bad, buf, (size_t)n);
    bad[20] = 0x60, bad[21] = 0x05; /* run length of symbol 3 */
    CHECK_EQ_INT(tm__twcc_fb_parse(bad, (size_t)n, &fb), TM_EINVAL);
    memcpy(bad, buf, (size_t)n);
    bad[14] = bad[15] = 0; /* no statuses */
    CHECK_EQ_INT(tm__twcc_fb_parse(bad, (size_t)n, &fb), TM_EINVAL);
}

/* ---- the estimate ---- */

/* A link with room: the estimate climbs past the start, held to the
 * headroom over what the receiver acknowledged (4x), without a cut. */
static void test_room_grows(void)
{
    session_start(3000000, 0);
    run(20, 500000);
    uint64_t est = tm__bwe_estimate(&S.bwe);
    printf("room: est=%llu after %u feedbacks\n", (unsigned long long)est, S.feedbacks);
    CHECK(S.feedbacks >= 150);
    CHECK(est > 1000000 && est <= 4 * 500000 + 20000);
    CHECK_EQ_INT(S.bwe.decreased_us, 0);
}

/* A sender that does not listen overruns a 300 kbit/s link at 1 Mbit/s: the
 * queue grows, the delay trend says overuse and the estimate falls under the
 * link's rate within a few seconds. */
static void test_overrun_cuts(void)
{
    session_start(300000, 0);
    run(1, 250000);
    run(4, 1000000);
    uint64_t est = tm__bwe_estimate(&S.bwe);
    printf("overrun: est=%llu\n", (unsigned long long)est);
    CHECK(S.bwe.decreased_us > 0);
    CHECK(est <= 300000);
}

/* A sender that follows the estimate over a 500 kbit/s link settles near it:
 * neither starved nor far over (the queue would grow without bound). */
static void test_follows_link(void)
{
    session_start(500000, 0);
    run(40, 0);
    uint64_t est = tm__bwe_estimate(&S.bwe);
    int64_t queue_ms = (S.net.queue_free_us - S.now_us) / 1000;
    printf("follow: est=%llu queue=%lld ms\n", (unsigned long long)est, (long long)queue_ms);
    CHECK(est >= 250000 && est <= 650000);
    CHECK(queue_ms < 500);
}

/* 20 % loss on a link with room: the loss bound brings the estimate down;
 * 1 % loss leaves it growing. */
static void test_loss(void)
{
    session_start(5000000, 20);
    run(10, 800000);
    uint64_t lossy = tm__bwe_estimate(&S.bwe);
    session_start(5000000, 1);
    run(10, 800000);
    uint64_t clean = tm__bwe_estimate(&S.bwe);
    printf("loss: 20%%=%llu 1%%=%llu\n", (unsigned long long)lossy, (unsigned long long)clean);
    CHECK(lossy < TM__BWE_START_BPS);
    CHECK(clean > 2 * lossy);
}

/* 5 % random loss on a link with room, the queue empty: loss that comes
 * without queueing delay is the link's, not ours, and the estimate grows as
 * on a clean link (it stayed at the start, 300 kbit/s, when the 2-10 % band
 * held the loss bound; REMB, which ignores loss, let the sender grow). */
static void test_random_loss_grows(void)
{
    session_start(3000000, 5);
    run(20, 500000);
    uint64_t est = tm__bwe_estimate(&S.bwe);
    printf("random loss 5%%: est=%llu\n", (unsigned long long)est);
    CHECK(est > 1000000);
}

/* The path gone for 3 s (every packet lost, as in an outage or while ICE
 * restarts) and back: the estimate is where it was, not cut to the floor. */
static void test_outage_is_not_congestion(void)
{
    session_start(3000000, 0);
    run(10, 500000);
    uint64_t before = tm__bwe_estimate(&S.bwe);
    S.net.loss_pct = 100;
    run(3, 500000);
    S.net.loss_pct = 0;
    run(2, 500000);
    uint64_t after = tm__bwe_estimate(&S.bwe);
    printf("outage: before=%llu after=%llu\n", (unsigned long long)before,
           (unsigned long long)after);
    CHECK(after * 10 >= before * 8);
}

/* Feedback naming packets we never sent (or long gone) changes nothing; a
 * feedback told twice counts once; numbers keep working across the wrap. */
static void test_unknown_and_wrap(void)
{
    tm__bwe b;
    tm__bwe_init(&b);
    CHECK_EQ_INT(tm__bwe_estimate(&b), 0);
    tm__twcc_fb fb = {.base_seq = 100, .ref = 10, .count = 3};
    fb.arrival_us[0] = 0, fb.arrival_us[1] = 1000, fb.arrival_us[2] = 2000;
    tm__bwe_on_feedback(&b, &fb, 1000000);
    CHECK_EQ_INT(b.received + b.lost, 0);

    b.next_seq = 65530; /* as after a long visit */
    for (int i = 0; i < 12; i++)
        tm__bwe_sent(&b, 1000, 2000000 + i * 1000);
    fb = (tm__twcc_fb){.base_seq = 65530, .ref = 20, .count = 12};
    for (int i = 0; i < 12; i++)
        fb.arrival_us[i] = i == 7 ? TM__TWCC_LOST : 30000 + i * 1000;
    tm__bwe_on_feedback(&b, &fb, 2100000);
    CHECK_EQ_INT(b.received, 11);
    CHECK_EQ_INT(b.lost, 1);
    CHECK_EQ_INT(b.acked_bps, 11000ll * 8 * 1000000 / 1100000); /* over the 1.1 s since the first */
    tm__bwe_on_feedback(&b, &fb, 2200000);
    CHECK_EQ_INT(b.received, 11);
    CHECK(tm__bwe_estimate(&b) > 0);
}

int main(void)
{
    RUN(test_parse_round_trip);
    RUN(test_room_grows);
    RUN(test_overrun_cuts);
    RUN(test_follows_link);
    RUN(test_loss);
    RUN(test_random_loss_grows);
    RUN(test_outage_is_not_congestion);
    RUN(test_unknown_and_wrap);
    TEST_DONE();
}

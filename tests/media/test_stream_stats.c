/*
 * test_stream_stats.c - loss, fraction lost, jitter, bitrate, frames,
 * freezes, report blocks and JSON against hand-computed values.
 */
#include <stdint.h>
#include <string.h>

#include "stream_stats.h"
#include "tm_test.h"

static void test_loss_and_fraction(void)
{
    tm_stream_stats *s = tm_stream_stats_new(42, 90000, true, 0);
    CHECK(s != NULL);
    tm_rtcp_report_block rb;
    CHECK_EQ_INT(tm_stream_stats_report_block(s, 0, &rb), TM_ENOTFOUND);
    /* Seqs 65530..3 across the wrap (10 expected), 65533 and 1 lost. */
    int64_t t = 1000000;
    for (int i = 0; i < 10; i++) {
        uint16_t seq = (uint16_t)(65530 + i);
        if (seq == 65533 || seq == 1)
            continue;
        tm_stream_stats_on_rtp(s, seq, (uint32_t)(i * 3000), true, 1000, t + i * 33333);
    }
    CHECK_EQ_INT(tm_stream_stats_report_block(s, t + 400000, &rb), 0);
    CHECK_EQ_INT(rb.ssrc, 42);
    CHECK_EQ_INT(rb.cumulative_lost, 2);
    CHECK_EQ_INT(rb.fraction_lost, (2 << 8) / 10); /* 51 */
    CHECK_EQ_INT(rb.highest_seq, 65536 + 3);
    CHECK_EQ_INT(rb.lsr, 0);
    CHECK_EQ_INT(rb.dlsr, 0);

    tm_stream_stats_snapshot n;
    tm_stream_stats_snapshot_take(s, t + 400000, &n);
    CHECK_EQ_INT(n.packets, 8);
    CHECK_EQ_INT(n.expected, 10);
    CHECK_EQ_INT(n.lost, 2);
    CHECK(n.fraction_lost > 0.199 && n.fraction_lost < 0.2); /* 51/256 */
    CHECK_EQ_INT(n.bytes, 8000);
    CHECK_EQ_INT(n.frames, 8);

    /* Next interval: 4..13 all arrive; the late 1 arrives too (a duplicate
     * of nothing: it fills the hole, so the interval shows negative loss -> 0). */
    for (int i = 4; i < 14; i++)
        tm_stream_stats_on_rtp(s, (uint16_t)i, (uint32_t)(i + 10) * 3000, true, 1000,
                               t + 500000 + i * 33333);
    tm_stream_stats_on_rtp(s, 1, 0, false, 1000, t + 990000);
    CHECK_EQ_INT(tm_stream_stats_report_block(s, t + 1000000, &rb), 0);
    CHECK_EQ_INT(rb.fraction_lost, 0);
    CHECK_EQ_INT(rb.cumulative_lost, 1);
    CHECK_EQ_INT(rb.highest_seq, 65536 + 13);
    tm_stream_stats_snapshot_take(s, t + 1000000, &n);
    CHECK_EQ_INT(n.fraction_lost * 256, 0);
    CHECK_EQ_INT(n.lost, 1);
    tm_stream_stats_free(s);
    tm_stream_stats_free(NULL);
}

static void test_jitter(void)
{
    /* Clock 1000 Hz: 1 unit = 1 ms. Transit 1000, 1160, 1000 ms: D = 160, 160.
     * RFC 3550 A.8: J1 = 160/16 = 10, J2 = 10 + (160 - 10)/16 = 19.375 -> 19. */
    tm_stream_stats *s = tm_stream_stats_new(1, 1000, false, 0);
    tm_stream_stats_on_rtp(s, 100, 0, false, 100, 1000000);
    tm_stream_stats_on_rtp(s, 101, 200, false, 100, 1360000);
    tm_rtcp_report_block rb;
    tm_stream_stats_report_block(s, 1360000, &rb);
    CHECK_EQ_INT(rb.jitter, 10);
    tm_stream_stats_on_rtp(s, 102, 400, false, 100, 1400000);
    tm_stream_stats_report_block(s, 1400000, &rb);
    CHECK_EQ_INT(rb.jitter, 19);
    tm_stream_stats_snapshot n;
    tm_stream_stats_snapshot_take(s, 1400000, &n);
    CHECK_EQ_INT(n.jitter, 19);
    CHECK(n.jitter_ms > 18.99 && n.jitter_ms < 19.01);
    tm_stream_stats_free(s);

    /* Perfectly paced 90 kHz video: 3000 units per 33.333 ms -> jitter stays ~0. */
    s = tm_stream_stats_new(2, 90000, true, 0);
    for (int i = 0; i < 300; i++)
        tm_stream_stats_on_rtp(s, (uint16_t)i, (uint32_t)(123456 + i * 3000), true, 1200,
                               5000000 + (int64_t)i * 100000 / 3);
    tm_stream_stats_report_block(s, 20000000, &rb);
    CHECK(rb.jitter <= 1);
    tm_stream_stats_free(s);
}

static void test_bitrate_fps(void)
{
    /* 50 audio packets of 125 bytes over one second (20 ms apart). */
    tm_stream_stats *s = tm_stream_stats_new(3, 48000, false, 0);
    for (int i = 0; i < 50; i++)
        tm_stream_stats_on_rtp(s, (uint16_t)i, (uint32_t)i * 960, false, 125,
                               10000000 + (int64_t)i * 20000);
    tm_stream_stats_snapshot n;
    tm_stream_stats_snapshot_take(s, 10000000 + 980000, &n);
    CHECK_EQ_INT(n.bitrate_bps, 50 * 125 * 8);
    CHECK(n.fps > 49.9 && n.fps < 50.1);
    /* Half a second later only the last 500 ms (25 packets) count; later still, none. */
    tm_stream_stats_snapshot_take(s, 10000000 + 1480000, &n);
    CHECK_EQ_INT(n.bitrate_bps, 25 * 125 * 8);
    tm_stream_stats_snapshot_take(s, 10000000 + 5000000, &n);
    CHECK_EQ_INT(n.bitrate_bps, 0);
    CHECK_EQ_INT(n.packets, 50);
    CHECK(!n.frozen); /* audio never freezes */
    tm_stream_stats_free(s);
}

static void test_keyframes_freeze_feedback(void)
{
    tm_stream_stats *s = tm_stream_stats_new(4, 90000, true, 500);
    /* Frames at 0, 33, 66 ms (two packets each, same timestamp). */
    uint16_t seq = 0;
    for (int f = 0; f < 3; f++) {
        int64_t at = 1000000 + f * 33000;
        tm_stream_stats_on_rtp(s, seq++, (uint32_t)f * 3000, false, 1000, at);
        if (f == 0)
            tm_stream_stats_on_keyframe(s, 640, 480);
        tm_stream_stats_on_rtp(s, seq++, (uint32_t)f * 3000, true, 1000, at + 1000);
    }
    tm_stream_stats_snapshot n;
    tm_stream_stats_snapshot_take(s, 1000000 + 300000, &n);
    CHECK_EQ_INT(n.frames, 3);
    CHECK_EQ_INT(n.keyframes, 1);
    CHECK_EQ_INT(n.width, 640);
    CHECK_EQ_INT(n.height, 480);
    CHECK(!n.frozen);
    CHECK_EQ_INT(n.freezes, 0);
    /* Nothing for a second: frozen, counted once across snapshots. */
    tm_stream_stats_snapshot_take(s, 2000000, &n);
    CHECK(n.frozen);
    CHECK_EQ_INT(n.freezes, 1);
    tm_stream_stats_snapshot_take(s, 2100000, &n);
    CHECK(n.frozen);
    CHECK_EQ_INT(n.freezes, 1);
    /* A frame 1134 ms after the last one ends it. */
    tm_stream_stats_on_rtp(s, seq++, 9000, true, 1000, 1066000 + 1134000);
    tm_stream_stats_snapshot_take(s, 1066000 + 1134000, &n);
    CHECK(!n.frozen);
    CHECK_EQ_INT(n.freezes, 1);
    CHECK_EQ_INT(n.frozen_ms_total, 1134);
    /* A keyframe without a size keeps the last resolution. */
    tm_stream_stats_on_keyframe(s, 0, 0);

    tm_stream_stats_on_nack_sent(s, 3);
    tm_stream_stats_on_nack_received(s, 5);
    tm_stream_stats_on_pli_sent(s);
    tm_stream_stats_on_pli_received(s);
    tm_stream_stats_on_pli_received(s);
    tm_stream_stats_on_fir(s);
    tm_stream_stats_on_retransmit(s);
    tm_stream_stats_set_rtt_us(s, 23600);
    tm_stream_stats_snapshot_take(s, 2300000, &n);
    CHECK_EQ_INT(n.keyframes, 2);
    CHECK_EQ_INT(n.width, 640);
    CHECK_EQ_INT(n.nacks_sent, 3);
    CHECK_EQ_INT(n.nacks_received, 5);
    CHECK_EQ_INT(n.plis_sent, 1);
    CHECK_EQ_INT(n.plis_received, 2);
    CHECK_EQ_INT(n.firs, 1);
    CHECK_EQ_INT(n.retransmits, 1);
    CHECK_EQ_INT(n.rtt_ms, 24);

    tm_stream_stats_set_rtt_us(s, -1);
    tm_stream_stats_snapshot_take(s, 2300000, &n);
    CHECK_EQ_INT(n.rtt_ms, -1);
    tm_stream_stats_free(s);
}

static void test_sr_lsr_dlsr(void)
{
    tm_stream_stats *s = tm_stream_stats_new(5, 90000, true, 0);
    tm_stream_stats_on_rtp(s, 1, 0, true, 100, 7000000);
    tm_stream_stats_on_sr(s, 0x0000123456789abcull, 7000000);
    tm_rtcp_report_block rb;
    CHECK_EQ_INT(tm_stream_stats_report_block(s, 7500000, &rb), 0);
    CHECK_EQ_INT(rb.lsr, 0x12345678u);
    CHECK_EQ_INT(rb.dlsr, 32768); /* 0.5 s in 1/65536 s */
    /* The sender computes RTT from it: arrival 0.5 s + 40 ms after its SR. */
    uint32_t arrival = rb.lsr + rb.dlsr + (uint32_t)(0.040 * 65536);
    int64_t rtt = (int64_t)(((uint64_t)(arrival - rb.lsr - rb.dlsr) * 1000000u) >> 16);
    CHECK(rtt > 39900 && rtt <= 40000);
    tm_stream_stats_free(s);
    CHECK(tm_stream_stats_new(1, 0, true, 0) == NULL);
}

int main(void)
{
    RUN(test_loss_and_fraction);
    RUN(test_jitter);
    RUN(test_bitrate_fps);
    RUN(test_keyframes_freeze_feedback);
    RUN(test_sr_lsr_dlsr);
    TEST_DONE();
}

/*
 * test_simulcast.c - simulcast forwarding on synthetic RTP: a receiver moves
 * to another layer only at a keyframe of it, and its stream stays one stream
 * (SSRC, sequence numbers, timestamps, VP8 picture id and TL0PICIDX) across
 * the switch; the layer choice follows the view size and the bandwidth
 * estimate, steps up one layer at a time and backs off after a failed step.
 */
#include <stdint.h>
#include <string.h>

#include "rtp.h"
#include "simulcast.h"
#include "tm_test.h"

#define OUT_SSRC 0xabcdef01u

/* An RTP packet of VP8 with a full descriptor: X, I (15-bit picture id), L, T. */
typedef struct pkt {
    uint8_t b[64];
    size_t len;
} pkt;

static pkt vp8_packet(uint32_t ssrc, uint16_t seq, uint32_t ts, uint16_t pic, uint8_t tl0,
                      bool frame_start, bool key)
{
    pkt p = {.len = 12 + 6 + 10};
    memset(p.b, 0, sizeof p.b);
    p.b[0] = 0x80;
    p.b[1] = 96;
    p.b[2] = (uint8_t)(seq >> 8);
    p.b[3] = (uint8_t)seq;
    for (int i = 0; i < 4; i++) {
        p.b[4 + i] = (uint8_t)(ts >> (24 - 8 * i));
        p.b[8 + i] = (uint8_t)(ssrc >> (24 - 8 * i));
    }
    uint8_t *d = p.b + 12;
    d[0] = (uint8_t)(0x80 | (frame_start ? 0x10 : 0)); /* X, S, PID 0 */
    d[1] = 0x80 | 0x40 | 0x20;                         /* I, L, T */
    d[2] = (uint8_t)(0x80 | (pic >> 8));
    d[3] = (uint8_t)pic;
    d[4] = tl0;
    d[5] = 0x00; /* TID 0 */
    uint8_t *f = d + 6;
    f[0] = key ? 0x00 : 0x01; /* frame tag: bit 0 = inter frame */
    if (key) {
        f[3] = 0x9d;
        f[4] = 0x01;
        f[5] = 0x2a;
        f[6] = 0x40; /* 320 */
        f[7] = 0x01;
        f[8] = 0xb4; /* 180 */
        f[9] = 0x00;
    }
    return p;
}

typedef struct out {
    uint32_t ssrc, ts;
    uint16_t seq, pic;
    uint8_t tl0;
} out;

/* Runs one packet through what forward.c does for a receiver; false when dropped. */
static bool forward(tm__layer_pick *lp, tm__rtp_rewrite *rw, int layer, pkt p, int64_t now_ms,
                    out *o)
{
    tm_rtp_header h;
    tm_vp8_info vi;
    CHECK_EQ_INT(tm_rtp_parse(p.b, p.len, &h), 0);
    CHECK_EQ_INT(tm_vp8_parse(p.b + h.payload_offset, h.payload_len, &vi), 0);
    if (!tm__layer_accept(lp, layer, vi.keyframe))
        return false;
    if (tm__rtp_rewrite_packet(rw, p.b, &h, &vi, OUT_SSRC, 90000, now_ms) == TM__RW_DROP)
        return false;
    CHECK_EQ_INT(tm_rtp_parse(p.b, p.len, &h), 0);
    CHECK_EQ_INT(tm_vp8_parse(p.b + h.payload_offset, h.payload_len, &vi), 0);
    *o = (out){.ssrc = h.ssrc,
               .ts = h.ts,
               .seq = h.seq,
               .pic = (uint16_t)vi.picture_id,
               .tl0 = p.b[h.payload_offset + 4]};
    return true;
}

static void test_switch_waits_for_keyframe(void)
{
    tm__layer_pick lp;
    tm__layer_pick_init(&lp);
    /* No target yet: the first keyframe of any layer starts the stream. */
    CHECK(!tm__layer_accept(&lp, 1, false));
    CHECK(tm__layer_accept(&lp, 1, true));
    CHECK_EQ_INT(lp.cur, 1);
    CHECK(tm__layer_accept(&lp, 1, false));
    CHECK(!tm__layer_accept(&lp, 0, true)); /* not asked for */
    lp.target = 2;
    CHECK(!tm__layer_accept(&lp, 2, false)); /* delta frames of the target: not yet */
    CHECK(tm__layer_accept(&lp, 1, false));  /* the old layer goes on meanwhile */
    CHECK(tm__layer_accept(&lp, 2, true));
    CHECK_EQ_INT(lp.cur, 2);
    CHECK(!tm__layer_accept(&lp, 1, false)); /* and stops at the switch */
    CHECK(tm__layer_accept(&lp, 2, false));
}

/* Three layers interleaved as a sender sends them, each its own SSRC, sequence,
 * timestamp base and picture ids; the receiver asks for layer 2, then layer 0. */
static void test_one_stream_across_switches(void)
{
    static const uint32_t ssrc[3] = {111, 222, 333};
    uint16_t seq[3] = {100, 30000, 65530}; /* the top layer wraps */
    uint32_t ts[3] = {1000, 7777777, 0xfffff000u};
    uint16_t pic[3] = {5, 20000, 32760}; /* 15 bits: the top one wraps too */
    uint8_t tl0[3] = {1, 100, 254};
    tm__layer_pick lp;
    tm__layer_pick_init(&lp);
    lp.target = 1;
    tm__rtp_rewrite rw = {0};
    out prev = {0}, o;
    int forwarded = 0, switches = 0, cur = -1;
    for (int frame = 0; frame < 60; frame++) {
        if (frame == 20)
            lp.target = 2;
        if (frame == 40)
            lp.target = 0;
        int64_t now = 1000 + frame * 33;
        for (int l = 0; l < 3; l++) {
            /* Keyframes: layer 1 at 0, layer 2 at 25 (the one asked for at 20), layer 0
             * at 30 (not asked for then) and 47. Two packets a frame. */
            bool key = (l == 1 && frame == 0) || (l == 2 && frame == 25) ||
                       (l == 0 && (frame == 30 || frame == 47));
            for (int k = 0; k < 2; k++) {
                pkt p = vp8_packet(ssrc[l], seq[l]++, ts[l], pic[l], tl0[l], k == 0, key && k == 0);
                if (!forward(&lp, &rw, l, p, now, &o))
                    continue;
                CHECK_EQ_INT(o.ssrc, OUT_SSRC);
                if (forwarded++) {
                    CHECK_EQ_INT(o.seq, (uint16_t)(prev.seq + 1));
                    CHECK(tm_ts_newer(o.ts, prev.ts) || (k == 1 && o.ts == prev.ts));
                    if (k == 0) {
                        CHECK_EQ_INT(o.pic, (uint16_t)((prev.pic + 1) & 0x7fff));
                        CHECK_EQ_INT(o.tl0, (uint8_t)(prev.tl0 + 1));
                    } else {
                        CHECK_EQ_INT(o.pic, prev.pic);
                    }
                }
                if (l != cur) {
                    switches++;
                    CHECK(key && k == 0); /* a switch lands on a keyframe's first packet */
                    CHECK_EQ_INT(frame, cur < 0 ? 0 : cur == 1 ? 25 : 47);
                    cur = l;
                }
                prev = o;
            }
            ts[l] += 3000;
            pic[l] = (uint16_t)((pic[l] + 1) & 0x7fff);
            tl0[l]++;
        }
    }
    CHECK_EQ_INT(switches, 3);
    /* Layer 1's frames 0..25 (its frame 25 goes out before layer 2's keyframe), layer
     * 2's 25..46, layer 0's 47..59; two packets each. */
    CHECK_EQ_INT(forwarded, 2 * (26 + 22 + 13));
}

static void test_late_packet_of_new_layer_dropped(void)
{
    /* A packet of the new layer from before its keyframe, arriving late (reordered),
     * would reuse a sequence number the receiver already had: it is dropped. */
    tm__layer_pick lp;
    tm__layer_pick_init(&lp);
    tm__rtp_rewrite rw = {0};
    out o;
    CHECK(forward(&lp, &rw, 0, vp8_packet(1, 10, 0, 1, 0, true, true), 0, &o));
    /* The stream's first source keeps its own numbers: a late packet is no duplicate. */
    CHECK(forward(&lp, &rw, 0, vp8_packet(1, 9, 0, 1, 0, false, false), 5, &o));
    CHECK_EQ_INT(o.seq, 9);
    CHECK(forward(&lp, &rw, 0, vp8_packet(1, 11, 3000, 2, 1, true, false), 33, &o));
    lp.target = 1;
    CHECK(forward(&lp, &rw, 1, vp8_packet(2, 500, 90000, 70, 9, true, true), 66, &o));
    CHECK_EQ_INT(o.seq, 12);
    CHECK(!forward(&lp, &rw, 1, vp8_packet(2, 499, 87000, 69, 8, false, false), 70, &o));
    CHECK(forward(&lp, &rw, 1, vp8_packet(2, 501, 90000, 70, 9, false, false), 70, &o));
    CHECK_EQ_INT(o.seq, 13);
    /* A retransmission inside the new source is still forwarded. */
    CHECK(forward(&lp, &rw, 1, vp8_packet(2, 502, 93000, 71, 10, true, false), 99, &o));
    CHECK(forward(&lp, &rw, 1, vp8_packet(2, 501, 90000, 70, 9, false, false), 120, &o));
    CHECK_EQ_INT(o.seq, 13);
}

/* ---- the choice ---- */

static tm__layer_info L[3] = {
    {.active = true, .width = 320, .height = 180, .bps = 150000},
    {.active = true, .width = 640, .height = 360, .bps = 500000},
    {.active = true, .width = 1280, .height = 720, .bps = 1500000},
};

/* Settles the pick on its target, as the keyframe would. */
static void land(tm__layer_pick *lp)
{
    lp->cur = lp->target;
}

/* The choice once a second, as the worker's tick makes it, from from_ms to to_ms:
 * when the target first changed (the pick is left there), -1 when it did not. */
static int64_t first_change(tm__layer_pick *lp, const tm__layer_info *l,
                            const tm__layer_limits *lim, int64_t from_ms, int64_t to_ms)
{
    for (int64_t t = from_ms; t <= to_ms; t += 1000)
        if (tm__layer_choose(lp, l, 3, lim, t))
            return t;
    return -1;
}

static void test_choice_by_view(void)
{
    tm__layer_pick lp;
    tm__layer_pick_init(&lp);
    tm__layer_limits lim = {0};
    CHECK(tm__layer_choose(&lp, L, 3, &lim, 0));
    CHECK_EQ_INT(lp.target, 2); /* nothing limits: the best */
    land(&lp);
    lim.view_set = true;
    lim.view_w = 320;
    lim.view_h = 180;
    CHECK(tm__layer_choose(&lp, L, 3, &lim, 1000));
    CHECK_EQ_INT(lp.target, 0); /* a smaller view steps down at once */
    land(&lp);
    lim.view_w = 300; /* within 10 % is still filled */
    lim.view_h = 190;
    CHECK(!tm__layer_choose(&lp, L, 3, &lim, 2000));
    lim.view_w = 0;
    lim.view_h = 0; /* hidden */
    CHECK(!tm__layer_choose(&lp, L, 3, &lim, 3000));
    /* A bigger view: one layer at a time, each after the hold. */
    lim.view_w = 1280;
    lim.view_h = 720;
    CHECK_EQ_INT(first_change(&lp, L, &lim, 4000, 20000), 5000); /* the hold since 1 s */
    CHECK_EQ_INT(lp.target, 1);
    land(&lp);
    CHECK_EQ_INT(first_change(&lp, L, &lim, 6000, 20000), 9000); /* the hold since 5 s */
    CHECK_EQ_INT(lp.target, 2);
    /* Sizes unknown (no keyframe seen): the offer's order ranks them. */
    tm__layer_info u[3] = {
        {.active = true, .bps = 1}, {.active = true, .bps = 1}, {.active = true, .bps = 1}};
    tm__layer_pick_init(&lp);
    lim.view_set = false;
    CHECK(tm__layer_choose(&lp, u, 3, &lim, 0));
    CHECK_EQ_INT(lp.target, 2);
    CHECK_EQ_INT(tm__layer_best(u, 3), 2);
    CHECK_EQ_INT(tm__layer_best(L, 3), 2);
}

static void test_choice_by_bandwidth(void)
{
    tm__layer_pick lp;
    tm__layer_pick_init(&lp);
    tm__layer_limits lim = {.est_bps = 2000000};
    CHECK(tm__layer_choose(&lp, L, 3, &lim, 0));
    CHECK_EQ_INT(lp.target, 2);
    land(&lp);
    /* The link is capped: the estimate falls under the layer's rate, and stays. */
    lim.est_bps = 1400000;
    CHECK(!tm__layer_choose(&lp, L, 3, &lim, 1000)); /* one tick is a wobble */
    lim.est_bps = 300000;
    CHECK(tm__layer_choose(&lp, L, 3, &lim, 2000));
    CHECK_EQ_INT(lp.target, 0); /* straight to what the estimate carries */
    land(&lp);
    /* A receiver's estimate grows only to ~1.5x what it gets: that counts as room
     * for one more layer, tried after the hold. */
    lim.est_bps = 235000;
    CHECK_EQ_INT(first_change(&lp, L, &lim, 3000, 20000), 6000);
    CHECK_EQ_INT(lp.target, 1);
    land(&lp);
    /* The step meets congestion (under half the layer): back down at once, and the
     * next try waits twice as long. */
    lim.est_bps = 200000;
    CHECK(tm__layer_choose(&lp, L, 3, &lim, 7000));
    CHECK_EQ_INT(lp.target, 0);
    land(&lp);
    lim.est_bps = 235000;
    CHECK_EQ_INT(first_change(&lp, L, &lim, 8000, 30000), 15000);
    CHECK_EQ_INT(lp.target, 1);
    land(&lp);
    /* Growing estimate while the step holds: no step down, and the next one comes. */
    lim.est_bps = 600000;
    CHECK(!tm__layer_choose(&lp, L, 3, &lim, 16000));
    lim.est_bps = 760000;
    CHECK_EQ_INT(first_change(&lp, L, &lim, 17000, 40000), 23000); /* the hold is 8 s now */
    CHECK_EQ_INT(lp.target, 2);
    CHECK_EQ_INT(lp.hold_ms, 4000); /* held 8 s: the hold resets too */
    land(&lp);
    /* Loss reported without a REMB: one layer down at once. */
    lim.est_bps = 0;
    lim.lossy = true;
    CHECK(tm__layer_choose(&lp, L, 3, &lim, 24000));
    CHECK_EQ_INT(lp.target, 1);
}

/* The server's own estimate: loss is in it, and a step up waits until the next
 * layer fits it rather than trying one on a little room (a thin link would see
 * every try fail, each with a keyframe it cannot carry). */
static void test_choice_by_measured_estimate(void)
{
    tm__layer_pick lp;
    tm__layer_pick_init(&lp);
    tm__layer_limits lim = {.est_bps = 300000, .measured = true};
    CHECK(tm__layer_choose(&lp, L, 3, &lim, 0));
    CHECK_EQ_INT(lp.target, 0);
    land(&lp);
    lim.est_bps = 235000; /* 1.5x the layer: room for a REMB receiver, not here */
    CHECK_EQ_INT(first_change(&lp, L, &lim, 1000, 10000), -1);
    lim.est_bps = 450000;
    CHECK_EQ_INT(first_change(&lp, L, &lim, 11000, 20000), -1);
    lim.est_bps = 520000;
    CHECK_EQ_INT(first_change(&lp, L, &lim, 21000, 30000), 23000);
    CHECK_EQ_INT(lp.target, 1);
    land(&lp);
    /* Under the layer's rate a second later: the try failed, down at once. */
    lim.est_bps = 480000;
    CHECK(tm__layer_choose(&lp, L, 3, &lim, 24000));
    CHECK_EQ_INT(lp.target, 0);
}

/* A loaded receiver's REMB wobbles by a fifth around the next layer's rate on a
 * link that does not change: the layer changes a few times a minute at most. */
static void test_choice_steady_under_wobble(void)
{
    tm__layer_pick lp;
    tm__layer_pick_init(&lp);
    tm__layer_limits lim = {.est_bps = 500000};
    CHECK(tm__layer_choose(&lp, L, 3, &lim, 0));
    land(&lp);
    static const uint64_t wobble[] = {520000, 430000, 610000, 470000, 560000, 410000, 590000};
    int changes = 0;
    for (int64_t t = 1000; t <= 120000; t += 1000) {
        lim.est_bps = wobble[(t / 1000) % (int64_t)(sizeof wobble / sizeof wobble[0])];
        if (tm__layer_choose(&lp, L, 3, &lim, t))
            changes++;
        land(&lp);
    }
    CHECK(changes <= 8); /* over two minutes */
}

static void test_choice_when_layer_stops(void)
{
    tm__layer_pick lp;
    tm__layer_pick_init(&lp);
    tm__layer_limits lim = {0};
    tm__layer_info l[3];
    memcpy(l, L, sizeof l);
    CHECK(tm__layer_choose(&lp, l, 3, &lim, 0));
    land(&lp);
    l[2].active = false; /* the sender dropped its top layer (its own uplink) */
    CHECK(tm__layer_choose(&lp, l, 3, &lim, 500));
    CHECK_EQ_INT(lp.target, 1);
    CHECK_EQ_INT(tm__layer_best(l, 3), 1);
    l[0].active = l[1].active = false;
    CHECK(!tm__layer_choose(&lp, l, 3, &lim, 600)); /* nothing to choose from */
    CHECK_EQ_INT(tm__layer_best(l, 3), -1);
}

static void test_choice_settles_and_reasks(void)
{
    tm__layer_pick lp;
    tm__layer_pick_init(&lp);
    tm__layer_limits lim = {.est_bps = 300000};
    CHECK(tm__layer_choose(&lp, L, 3, &lim, 0)); /* nothing yet: what the estimate carries */
    CHECK_EQ_INT(lp.target, 0);
    /* Until its keyframe comes the target is asked for again, once a second. */
    CHECK(!tm__layer_overdue(&lp, 500));
    CHECK(tm__layer_overdue(&lp, 1000));
    CHECK(!tm__layer_overdue(&lp, 1500));
    CHECK(tm__layer_overdue(&lp, 2100));
    land(&lp);
    CHECK(!tm__layer_overdue(&lp, 5000));
    CHECK_EQ_INT(first_change(&lp, L, &lim, 3000, 10000), 5000);
    CHECK_EQ_INT(lp.target, 1);
    land(&lp);
    /* Just after the step up the estimate still trails the new rate: a small dip
     * is no congestion... */
    lim.est_bps = 260000;
    CHECK(!tm__layer_choose(&lp, L, 3, &lim, 6000));
    lim.est_bps = 300000;
    CHECK(!tm__layer_choose(&lp, L, 3, &lim, 7000));
    /* ...once settled, a fall under the layer's rate that lasts is. */
    lim.est_bps = 265000;
    CHECK(!tm__layer_choose(&lp, L, 3, &lim, 9000));
    CHECK(tm__layer_choose(&lp, L, 3, &lim, 10000));
    CHECK_EQ_INT(lp.target, 0);
}

int main(void)
{
    RUN(test_switch_waits_for_keyframe);
    RUN(test_one_stream_across_switches);
    RUN(test_late_packet_of_new_layer_dropped);
    RUN(test_choice_by_view);
    RUN(test_choice_by_bandwidth);
    RUN(test_choice_by_measured_estimate);
    RUN(test_choice_when_layer_stops);
    RUN(test_choice_steady_under_wobble);
    RUN(test_choice_settles_and_reasks);
    TEST_DONE();
}

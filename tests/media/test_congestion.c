/*
 * test_congestion.c - transport-cc feedback from RTP packets as a browser
 * sends them (RFC 8285 one-byte extension with the transport-wide sequence
 * number), decoded here by a reader written from the draft's text rather
 * than from congestion.c: statuses, run-length and vector chunks, receive
 * deltas back to arrival times, padding, long gaps, reordering, wraps and a
 * restarted sender; the extension id from a real Chromium offer; the
 * receivers' loss folded into the RR to a sender; abs-send-time and the
 * server's own transport-wide numbers written into forwarded packets.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "congestion.h"
#include "rtcp.h"
#include "rtp.h"
#include "tm_test.h"

#define EXT_ID 3
#define SSRC_MEDIA 0x11223344u
#define SSRC_OURS 0x55667788u

/* An RTP packet with the transport-wide sequence number in a one-byte
 * header extension (id EXT_ID, two bytes), a few payload bytes. */
static size_t make_rtp(uint8_t *b, uint16_t rtp_seq, uint16_t twcc_seq)
{
    memset(b, 0, 40);
    b[0] = 0x90; /* V=2, X=1 */
    b[1] = 96;
    b[2] = (uint8_t)(rtp_seq >> 8);
    b[3] = (uint8_t)rtp_seq;
    b[8] = 0x11, b[9] = 0x22, b[10] = 0x33, b[11] = 0x44;
    b[12] = 0xBE, b[13] = 0xDE, b[14] = 0, b[15] = 1; /* one word of extensions */
    b[16] = (uint8_t)((EXT_ID << 4) | 1);             /* id, length - 1 */
    b[17] = (uint8_t)(twcc_seq >> 8);
    b[18] = (uint8_t)twcc_seq;
    b[19] = 0; /* padding */
    memcpy(b + 20, "payload!", 8);
    return 28;
}

/* Takes one packet the way the server does: parse, find the extension. */
static void arrive(tm__twcc *t, uint16_t twcc_seq, int64_t at_us)
{
    uint8_t pkt[64];
    size_t len = make_rtp(pkt, (uint16_t)(twcc_seq + 1000), twcc_seq);
    tm_rtp_header h;
    CHECK_EQ_INT(tm_rtp_parse(pkt, len, &h), 0);
    const uint8_t *d;
    CHECK_EQ_INT(tm_rtp_ext_find(pkt, &h, t->ext_id, &d), 2);
    tm__twcc_on_packet(t, (uint16_t)((d[0] << 8) | d[1]), at_us);
}

/* ---- a reader of transport-cc feedback, from the draft ---- */

typedef struct decoded {
    uint16_t base;
    unsigned count;
    uint8_t fb_count;
    int64_t ref_us;
    int received[TM__TWCC_MAX_PER_FB]; /* 0 lost, 1 small, 2 large */
    int64_t at_us[TM__TWCC_MAX_PER_FB];
} decoded;

static unsigned rd16(const uint8_t *p)
{
    return (unsigned)((p[0] << 8) | p[1]);
}

static void decode(const uint8_t *b, int len, decoded *out)
{
    CHECK(len >= 20);
    CHECK_EQ_INT(len % 4, 0);
    CHECK_EQ_INT(tm_rtcp_validate(b, (size_t)len), 0);
    tm_rtcp_iter it;
    tm_rtcp_pkt p;
    tm_rtcp_iter_init(&it, b, (size_t)len);
    CHECK_EQ_INT(tm_rtcp_next(&it, &p), 1);
    CHECK_EQ_INT(p.kind, TM_RTCP_K_TWCC);
    CHECK_EQ_INT(p.len, (size_t)len);
    size_t end = (size_t)len;
    if (p.padding) {
        CHECK(b[len - 1] > 0 && b[len - 1] < 4);
        end -= b[len - 1];
    }
    CHECK_EQ_INT(rd16(b + 4) << 16 | rd16(b + 6), SSRC_OURS);
    out->base = (uint16_t)rd16(b + 12);
    out->count = rd16(b + 14);
    CHECK(out->count <= TM__TWCC_MAX_PER_FB);
    int32_t ref = (int32_t)((unsigned)b[16] << 16 | (unsigned)b[17] << 8 | b[18]);
    out->ref_us = (int64_t)ref * 64000;
    out->fb_count = b[19];
    size_t off = 20;
    unsigned n = 0;
    while (n < out->count) {
        CHECK(off + 2 <= end);
        unsigned c = rd16(b + off);
        off += 2;
        if (!(c & 0x8000)) { /* run length */
            unsigned sym = (c >> 13) & 3, run = c & 0x1fff;
            CHECK(sym != 3 && run > 0);
            for (unsigned k = 0; k < run && n < out->count; k++)
                out->received[n++] = (int)sym;
        } else if (!(c & 0x4000)) { /* 14 one-bit symbols */
            for (int k = 13; k >= 0 && n < out->count; k--)
                out->received[n++] = (c >> k) & 1;
        } else { /* 7 two-bit symbols */
            for (int k = 6; k >= 0 && n < out->count; k--) {
                unsigned sym = (c >> (2 * k)) & 3;
                CHECK(sym != 3);
                out->received[n++] = (int)sym;
            }
        }
    }
    int64_t at = out->ref_us;
    for (unsigned i = 0; i < out->count; i++) {
        if (out->received[i] == 1) {
            CHECK(off + 1 <= end);
            at += (int64_t)b[off++] * 250;
        } else if (out->received[i] == 2) {
            CHECK(off + 2 <= end);
            at += (int64_t)(int16_t)rd16(b + off) * 250;
            off += 2;
        } else {
            out->at_us[i] = -1;
            continue;
        }
        out->at_us[i] = at;
    }
    CHECK(end - off < 4); /* nothing but alignment left */
}

static int build(tm__twcc *t, uint8_t *buf, size_t cap, int64_t now_us)
{
    return tm__twcc_build(t, buf, cap, SSRC_OURS, SSRC_MEDIA, now_us);
}

/* Arrival times come back within half a tick, accumulated without drift. */
static void check_time(int64_t got_us, int64_t want_us)
{
    int64_t d = got_us - want_us;
    if (d < -125 || d > 125) {
        fprintf(stderr, "arrival %lld, want %lld\n", (long long)got_us, (long long)want_us);
        CHECK(0);
    }
}

static tm__twcc fresh(void)
{
    tm__twcc t;
    memset(&t, 0, sizeof t);
    tm__twcc_configure(&t, EXT_ID, true);
    return t;
}

static void test_all_received(void)
{
    tm__twcc t = fresh();
    uint8_t buf[1500];
    decoded d;
    const int64_t t0 = 5000123;
    CHECK(!tm__twcc_due(&t, t0));
    for (int i = 0; i < 10; i++)
        arrive(&t, (uint16_t)(100 + i), t0 + i * 5333);
    CHECK(tm__twcc_due(&t, t0 + 50000));
    int n = build(&t, buf, sizeof buf, t0 + 50000);
    CHECK(n > 0);
    decode(buf, n, &d);
    CHECK_EQ_INT(d.base, 100);
    CHECK_EQ_INT(d.count, 10);
    CHECK_EQ_INT(d.fb_count, 0);
    CHECK(d.ref_us <= t0 && t0 - d.ref_us < 64000);
    for (int i = 0; i < 10; i++) {
        CHECK_EQ_INT(d.received[i], 1);
        check_time(d.at_us[i], t0 + i * 5333);
    }
    /* Reported once: nothing more until new packets, and not before 100 ms. */
    CHECK_EQ_INT(build(&t, buf, sizeof buf, t0 + 60000), 0);
    arrive(&t, 110, t0 + 60000);
    CHECK(!tm__twcc_due(&t, t0 + 60000));
    CHECK(tm__twcc_due(&t, t0 + 50000 + TM__TWCC_INTERVAL_US));
    n = build(&t, buf, sizeof buf, t0 + 160000);
    decode(buf, n, &d);
    CHECK_EQ_INT(d.base, 110);
    CHECK_EQ_INT(d.count, 1);
    CHECK_EQ_INT(d.fb_count, 1);
    check_time(d.at_us[0], t0 + 60000);
}

/* Two lost, then a run of 40 lost (a run-length chunk), then one more. */
static void test_losses(void)
{
    tm__twcc t = fresh();
    uint8_t buf[1500];
    decoded d;
    int64_t at = 1000000;
    for (int s = 0; s < 50; s++) {
        bool lost = s == 3 || s == 4 || (s >= 8 && s < 48);
        if (!lost)
            arrive(&t, (uint16_t)(7000 + s), at + s * 1000);
    }
    int n = build(&t, buf, sizeof buf, at + 60000);
    decode(buf, n, &d);
    CHECK_EQ_INT(d.base, 7000);
    CHECK_EQ_INT(d.count, 50);
    for (int s = 0; s < 50; s++) {
        bool lost = s == 3 || s == 4 || (s >= 8 && s < 48);
        CHECK_EQ_INT(d.received[s], lost ? 0 : 1);
        if (!lost)
            check_time(d.at_us[s], at + s * 1000);
    }
    /* The 40 lost fit one chunk: the feedback is short. */
    CHECK(n <= 20 + 2 * 4 + 10 + 4);
}

/* A packet overtaken by a later one has a negative delta (two bytes); a
 * packet later than its feedback stays reported as lost. */
static void test_reorder_and_late(void)
{
    tm__twcc t = fresh();
    uint8_t buf[1500];
    decoded d;
    int64_t at = 2000000;
    arrive(&t, 1, at);
    arrive(&t, 3, at + 1000);
    arrive(&t, 2, at + 3000);
    arrive(&t, 5, at + 4000);
    int n = build(&t, buf, sizeof buf, at + 100000);
    decode(buf, n, &d);
    CHECK_EQ_INT(d.count, 5);
    CHECK_EQ_INT(d.received[0], 1);
    CHECK_EQ_INT(d.received[1], 1);
    CHECK_EQ_INT(d.received[2], 2); /* 3, after 2's arrival: a step back */
    CHECK_EQ_INT(d.received[3], 0);
    check_time(d.at_us[1], at + 3000);
    check_time(d.at_us[2], at + 1000);
    check_time(d.at_us[4], at + 4000);
    arrive(&t, 4, at + 200000); /* too late */
    CHECK_EQ_INT(build(&t, buf, sizeof buf, at + 300000), 0);
}

/* Arrivals more than 8 s apart do not fit one delta: two feedbacks. */
static void test_long_gap(void)
{
    tm__twcc t = fresh();
    uint8_t buf[1500];
    decoded d;
    arrive(&t, 10, 1000000);
    arrive(&t, 11, 1000000 + 9000000);
    int n = build(&t, buf, sizeof buf, 11000000);
    decode(buf, n, &d);
    CHECK_EQ_INT(d.base, 10);
    CHECK_EQ_INT(d.count, 1);
    n = build(&t, buf, sizeof buf, 11000000);
    decode(buf, n, &d);
    CHECK_EQ_INT(d.base, 11);
    CHECK_EQ_INT(d.count, 1);
    check_time(d.at_us[0], 10000000);
    CHECK_EQ_INT(build(&t, buf, sizeof buf, 11000000), 0);
}

/* 65535 -> 0 is one step; a sender that starts numbering again from
 * elsewhere (a new transport) is followed, not ignored. */
static void test_wrap_and_restart(void)
{
    tm__twcc t = fresh();
    uint8_t buf[1500];
    decoded d;
    arrive(&t, 65534, 1000000);
    arrive(&t, 65535, 1001000);
    arrive(&t, 0, 1002000);
    arrive(&t, 1, 1003000);
    int n = build(&t, buf, sizeof buf, 1100000);
    decode(buf, n, &d);
    CHECK_EQ_INT(d.base, 65534);
    CHECK_EQ_INT(d.count, 4);
    for (int i = 0; i < 4; i++)
        CHECK_EQ_INT(d.received[i], 1);
    arrive(&t, 30000, 1200000);
    arrive(&t, 30001, 1201000);
    n = build(&t, buf, sizeof buf, 1300000);
    decode(buf, n, &d);
    CHECK_EQ_INT(d.base, 30000);
    CHECK_EQ_INT(d.count, 2);
    for (int s = 20; s < 25; s++)
        arrive(&t, (uint16_t)s, 1400000 + s * 100);
    n = build(&t, buf, sizeof buf, 1500000);
    decode(buf, n, &d);
    CHECK_EQ_INT(d.base, 20);
    CHECK_EQ_INT(d.count, 5);
}

/* A burst of more than one feedback holds comes out in several, each
 * within the MTU, none dropped; a buffer too small is refused. */
static void test_burst_and_cap(void)
{
    tm__twcc t = fresh();
    uint8_t buf[1500];
    decoded d;
    for (int s = 0; s < 250; s++)
        arrive(&t, (uint16_t)s, 3000000 + s * 40);
    uint8_t tiny[24];
    CHECK_EQ_INT(build(&t, tiny, sizeof tiny, 3100000), TM_ETOOBIG);
    unsigned total = 0;
    int n, feedbacks = 0;
    while ((n = build(&t, buf, sizeof buf, 3100000)) > 0) {
        CHECK(n <= 1200);
        decode(buf, n, &d);
        CHECK_EQ_INT(d.base, total);
        for (unsigned i = 0; i < d.count; i++)
            check_time(d.at_us[i], 3000000 + (int64_t)(total + i) * 40);
        total += d.count;
        feedbacks++;
    }
    CHECK_EQ_INT(total, 250);
    CHECK_EQ_INT(feedbacks, 2);
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    CHECK(f);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return buf;
}

/* Chromium offers the extension as id 3 with rtcp-fb transport-cc. */
static void test_offer_ext(void)
{
    const char *sdp = read_text(TM_SDP_DATA_DIR "/chrome_offer.sdp");
    tm_sdp_offer *offer = NULL;
    char *err = NULL;
    CHECK_EQ_INT(tm_sdp_parse_offer(sdp, strlen(sdp), &offer, &err), 0);
    CHECK_EQ_INT(tm__twcc_offer_ext(offer), 3);
    tm_sdp_offer_free(offer);
    /* Without rtcp-fb transport-cc the extension alone is not taken. */
    static char no_fb[65536];
    strcpy(no_fb, sdp);
    for (char *at = strstr(no_fb, " transport-cc"); at; at = strstr(at, " transport-cc"))
        memcpy(at, " transport-zz", 13);
    CHECK(!strstr(no_fb, "rtcp-fb:111 transport-cc"));
    CHECK_EQ_INT(tm_sdp_parse_offer(no_fb, strlen(no_fb), &offer, &err), 0);
    CHECK_EQ_INT(tm__twcc_offer_ext(offer), 0);
    tm_sdp_offer_free(offer);
    /* A new transport starts over; the same id on a renegotiation keeps state. */
    tm__twcc t = fresh();
    arrive(&t, 9, 1000);
    tm__twcc_configure(&t, EXT_ID, false);
    CHECK(t.started);
    tm__twcc_configure(&t, EXT_ID, true);
    CHECK(!t.started);
}

static void test_loss_fold(void)
{
    tm__loss_fold f = {0};
    tm_rtcp_report_block rb = {
        .ssrc = 1, .fraction_lost = 0, .cumulative_lost = 5, .highest_seq = 1000};
    tm__loss_fold_apply(&f, &rb, 64); /* first report: nothing to scale yet */
    CHECK_EQ_INT(rb.cumulative_lost, 5);
    rb = (tm_rtcp_report_block){
        .ssrc = 1, .fraction_lost = 0, .cumulative_lost = 5, .highest_seq = 2024};
    tm__loss_fold_apply(&f, &rb, 64); /* a quarter of 1024 lost downstream */
    CHECK_EQ_INT(rb.fraction_lost, 64);
    CHECK_EQ_INT(rb.cumulative_lost, 5 + 256);
    /* The server's own uplink is worse than any receiver: its own figures stand,
     * and the count never goes back. */
    rb = (tm_rtcp_report_block){
        .ssrc = 1, .fraction_lost = 100, .cumulative_lost = 300, .highest_seq = 3048};
    tm__loss_fold_apply(&f, &rb, 10);
    CHECK_EQ_INT(rb.fraction_lost, 100);
    CHECK_EQ_INT(rb.cumulative_lost, 300 + 256);
}

/* ---- abs-send-time stamped by the server ---- */

#define ABS_ID 2

static uint32_t abs_value(int64_t us)
{
    return (uint32_t)((((uint64_t)us << 18) / 1000000) & 0xffffff);
}

/* The packet parses, carries the stamp, and its payload (and RTP padding) is
 * what it was. */
static void check_stamped(const uint8_t *pkt, size_t len, int64_t us, const char *payload,
                          uint8_t padding)
{
    tm_rtp_header h;
    const uint8_t *d;
    CHECK_EQ_INT(tm_rtp_parse(pkt, len, &h), 0);
    CHECK_EQ_INT(h.ext_profile, TM_RTP_EXT_ONE_BYTE);
    CHECK_EQ_INT(tm_rtp_ext_find(pkt, &h, ABS_ID, &d), 3);
    CHECK_EQ_INT((uint32_t)(d[0] << 16 | d[1] << 8 | d[2]), abs_value(us));
    CHECK_EQ_INT(h.payload_len, strlen(payload));
    CHECK(memcmp(pkt + h.payload_offset, payload, h.payload_len) == 0);
    CHECK_EQ_INT(h.padding_len, padding);
}

static void test_abs_send_time(void)
{
    uint8_t pkt[128];
    const int64_t us = 12345678901;
    /* A browser's packet: transport-cc only (3 bytes and a pad byte): the
     * block grows by a word, the transport-cc element stays. */
    size_t len = make_rtp(pkt, 1, 0x0102);
    size_t n = tm__abs_send_time_put(pkt, len, sizeof pkt, ABS_ID, us);
    CHECK_EQ_INT(n, len + 4);
    check_stamped(pkt, n, us, "payload!", 0);
    tm_rtp_header h;
    const uint8_t *d;
    CHECK_EQ_INT(tm_rtp_parse(pkt, n, &h), 0);
    CHECK_EQ_INT(tm_rtp_ext_find(pkt, &h, EXT_ID, &d), 2);
    CHECK_EQ_INT(d[0] << 8 | d[1], 0x0102);
    /* Stamped again (a retransmission): in place. */
    CHECK_EQ_INT(tm__abs_send_time_put(pkt, n, sizeof pkt, ABS_ID, us + 5000), n);
    check_stamped(pkt, n, us + 5000, "payload!", 0);

    /* No extension at all, RTP padding at the end: a block is made. */
    memset(pkt, 0, sizeof pkt);
    pkt[0] = 0xa0; /* V=2, P=1 */
    pkt[1] = 96;
    memcpy(pkt + 12, "media", 5);
    pkt[17] = 0, pkt[18] = 0, pkt[19] = 3; /* three bytes of padding */
    n = tm__abs_send_time_put(pkt, 20, sizeof pkt, ABS_ID, us);
    CHECK_EQ_INT(n, 28);
    check_stamped(pkt, n, us, "media", 3);

    /* Room in the block's padding: no growth. */
    len = make_rtp(pkt, 1, 7);
    pkt[15] = 2; /* two words: the element, then five bytes of padding */
    memmove(pkt + 24, pkt + 20, 8);
    memset(pkt + 19, 0, 5);
    len += 4;
    CHECK_EQ_INT(tm__abs_send_time_put(pkt, len, sizeof pkt, ABS_ID, us), len);
    check_stamped(pkt, len, us, "payload!", 0);

    /* Two-byte extensions, no room, or a bad id: left as they were. */
    len = make_rtp(pkt, 1, 7);
    CHECK_EQ_INT(tm__abs_send_time_put(pkt, len, len + 3, ABS_ID, us), len);
    CHECK_EQ_INT(tm__abs_send_time_put(pkt, len, sizeof pkt, 15, us), len);
    pkt[12] = 0x10, pkt[13] = 0x00;
    uint8_t before[64];
    memcpy(before, pkt, len);
    CHECK_EQ_INT(tm__abs_send_time_put(pkt, len, sizeof pkt, ABS_ID, us), len);
    CHECK(memcmp(before, pkt, len) == 0);
}

/* The server's own transport-wide number on a packet it forwards: over the
 * sender's element of the same id, added to a packet with none, refused (and
 * the packet left alone) when it cannot go in. */
static void test_own_transport_seq(void)
{
    uint8_t pkt[128], before[128];
    const uint8_t ours[2] = {0x12, 0x34};
    size_t len = make_rtp(pkt, 1, 0x0102);
    CHECK_EQ_INT(tm__rtp_ext_put(pkt, len, sizeof pkt, EXT_ID, ours, 2), len);
    tm_rtp_header h;
    const uint8_t *d;
    CHECK_EQ_INT(tm_rtp_parse(pkt, len, &h), 0);
    CHECK_EQ_INT(tm_rtp_ext_find(pkt, &h, EXT_ID, &d), 2);
    CHECK_EQ_INT(d[0] << 8 | d[1], 0x1234);
    CHECK(memcmp(pkt + h.payload_offset, "payload!", 8) == 0);

    memset(pkt, 0, sizeof pkt);
    pkt[0] = 0x80;
    pkt[1] = 96;
    memcpy(pkt + 12, "media", 5);
    int n = tm__rtp_ext_put(pkt, 17, sizeof pkt, EXT_ID, ours, 2);
    CHECK_EQ_INT(n, 25);
    CHECK_EQ_INT(tm_rtp_parse(pkt, (size_t)n, &h), 0);
    CHECK_EQ_INT(tm_rtp_ext_find(pkt, &h, EXT_ID, &d), 2);
    CHECK_EQ_INT(d[0] << 8 | d[1], 0x1234);
    CHECK(memcmp(pkt + h.payload_offset, "media", 5) == 0);

    len = make_rtp(pkt, 1, 7);
    memcpy(before, pkt, len);
    CHECK_EQ_INT(tm__rtp_ext_put(pkt, len, sizeof pkt, EXT_ID, ours, 1), TM_EINVAL);
    CHECK_EQ_INT(tm__rtp_ext_put(pkt, len, len + 3, ABS_ID, ours, 2), TM_ETOOBIG);
    CHECK(memcmp(before, pkt, len) == 0);
}

int main(void)
{
    RUN(test_all_received);
    RUN(test_losses);
    RUN(test_reorder_and_late);
    RUN(test_long_gap);
    RUN(test_wrap_and_restart);
    RUN(test_burst_and_cap);
    RUN(test_offer_ext);
    RUN(test_loss_fold);
    RUN(test_abs_send_time);
    RUN(test_own_transport_seq);
    TEST_DONE();
}

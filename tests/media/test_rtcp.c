/*
 * test_rtcp.c - compound walk with bad lengths, every builder round-tripped
 * through the parser, NACK packing, SSRC rewrite, NTP and RTT arithmetic.
 */
#include <stdint.h>
#include <string.h>

#include "rtcp.h"
#include "tm_test.h"

static tm_rtcp_report_block block(uint32_t ssrc)
{
    tm_rtcp_report_block rb = {
        .ssrc = ssrc,
        .fraction_lost = 25,
        .cumulative_lost = -3,
        .highest_seq = 0x00012345,
        .jitter = 77,
        .lsr = 0xabcd1234,
        .dlsr = 65536,
    };
    return rb;
}

static void check_block(const tm_rtcp_report_block *rb, uint32_t ssrc)
{
    CHECK_EQ_INT(rb->ssrc, ssrc);
    CHECK_EQ_INT(rb->fraction_lost, 25);
    CHECK_EQ_INT(rb->cumulative_lost, -3);
    CHECK_EQ_INT(rb->highest_seq, 0x00012345);
    CHECK_EQ_INT(rb->jitter, 77);
    CHECK_EQ_INT(rb->lsr, 0xabcd1234u);
    CHECK_EQ_INT(rb->dlsr, 65536);
}

/* Builds a compound SR + SDES + PLI + NACK + FIR + REMB + RR + BYE. */
static size_t build_compound(uint8_t *b, size_t cap)
{
    size_t off = 0;
    int r;
    tm_rtcp_sr sr = {.ssrc = 1,
                     .ntp = 0x0102030405060708ull,
                     .rtp_ts = 9000,
                     .packet_count = 10,
                     .octet_count = 1000,
                     .n_reports = 2};
    sr.reports[0] = block(100);
    sr.reports[1] = block(101);
    r = tm_rtcp_build_sr(b + off, cap - off, &sr);
    CHECK_EQ_INT(r, 28 + 48);
    off += (size_t)r;
    r = tm_rtcp_build_sdes_cname(b + off, cap - off, 1, "abcdefgh");
    CHECK(r > 0 && r % 4 == 0);
    off += (size_t)r;
    r = tm_rtcp_build_pli(b + off, cap - off, 1, 100);
    CHECK_EQ_INT(r, 12);
    off += (size_t)r;
    const uint16_t lost[] = {1000, 1002, 1016, 1017, 1040};
    r = tm_rtcp_build_nack(b + off, cap - off, 1, 100, lost, TM_ARRAY_LEN(lost));
    CHECK_EQ_INT(r, 12 + 12); /* items 1000 (+1002, 1016), 1017, 1040 */
    off += (size_t)r;
    r = tm_rtcp_build_fir(b + off, cap - off, 1, 100, 7);
    CHECK_EQ_INT(r, 20);
    off += (size_t)r;
    const uint32_t ssrcs[] = {100, 101};
    r = tm_rtcp_build_remb(b + off, cap - off, 1, 1500000, ssrcs, 2);
    CHECK_EQ_INT(r, 28);
    off += (size_t)r;
    tm_rtcp_report_block rb = block(102);
    r = tm_rtcp_build_rr(b + off, cap - off, 2, &rb, 1);
    CHECK_EQ_INT(r, 32);
    off += (size_t)r;
    r = tm_rtcp_build_bye(b + off, cap - off, ssrcs, 2);
    CHECK_EQ_INT(r, 12);
    off += (size_t)r;
    return off;
}

static void test_compound_roundtrip(void)
{
    uint8_t b[1024];
    size_t n = build_compound(b, sizeof(b));
    CHECK_EQ_INT(tm_rtcp_validate(b, n), 0);
    tm_rtcp_iter it;
    tm_rtcp_pkt p;
    tm_rtcp_iter_init(&it, b, n);
    tm_rtcp_kind want[] = {TM_RTCP_K_SR,  TM_RTCP_K_SDES, TM_RTCP_K_PLI, TM_RTCP_K_NACK,
                           TM_RTCP_K_FIR, TM_RTCP_K_REMB, TM_RTCP_K_RR,  TM_RTCP_K_BYE};
    size_t i = 0;
    int r;
    while ((r = tm_rtcp_next(&it, &p)) == 1) {
        CHECK(i < TM_ARRAY_LEN(want));
        CHECK_EQ_INT(p.kind, want[i]);
        switch (p.kind) {
        case TM_RTCP_K_SR: {
            tm_rtcp_sr sr;
            CHECK_EQ_INT(tm_rtcp_parse_sr(&p, &sr), 0);
            CHECK_EQ_INT(sr.ssrc, 1);
            CHECK(sr.ntp == 0x0102030405060708ull);
            CHECK_EQ_INT(sr.rtp_ts, 9000);
            CHECK_EQ_INT(sr.packet_count, 10);
            CHECK_EQ_INT(sr.octet_count, 1000);
            CHECK_EQ_INT(sr.n_reports, 2);
            check_block(&sr.reports[0], 100);
            check_block(&sr.reports[1], 101);
            tm_rtcp_rr rr;
            CHECK_EQ_INT(tm_rtcp_parse_rr(&p, &rr), TM_EINVAL); /* wrong type */
            break;
        }
        case TM_RTCP_K_SDES: {
            tm_rtcp_sdes s;
            CHECK_EQ_INT(tm_rtcp_parse_sdes(&p, &s), 0);
            CHECK_EQ_INT(s.n, 1);
            CHECK_EQ_INT(s.chunks[0].ssrc, 1);
            CHECK_STR(s.chunks[0].cname, "abcdefgh");
            break;
        }
        case TM_RTCP_K_PLI: {
            tm_rtcp_fb fb;
            CHECK_EQ_INT(tm_rtcp_parse_fb(&p, &fb), 0);
            CHECK_EQ_INT(fb.pt, TM_RTCP_PSFB);
            CHECK_EQ_INT(fb.fmt, 1);
            CHECK_EQ_INT(fb.sender_ssrc, 1);
            CHECK_EQ_INT(fb.media_ssrc, 100);
            CHECK_EQ_INT(fb.fci_len, 0);
            break;
        }
        case TM_RTCP_K_NACK: {
            uint16_t seqs[32];
            uint32_t ms;
            int k = tm_rtcp_parse_nack(&p, &ms, seqs, 32);
            CHECK_EQ_INT(k, 5);
            CHECK_EQ_INT(ms, 100);
            CHECK_EQ_INT(seqs[0], 1000);
            CHECK_EQ_INT(seqs[1], 1002);
            CHECK_EQ_INT(seqs[2], 1016);
            CHECK_EQ_INT(seqs[3], 1017);
            CHECK_EQ_INT(seqs[4], 1040);
            break;
        }
        case TM_RTCP_K_FIR: {
            tm_rtcp_fir_entry e[4];
            CHECK_EQ_INT(tm_rtcp_parse_fir(&p, e, 4), 1);
            CHECK_EQ_INT(e[0].ssrc, 100);
            CHECK_EQ_INT(e[0].seq_nr, 7);
            tm_rtcp_fb fb;
            CHECK_EQ_INT(tm_rtcp_parse_fb(&p, &fb), 0);
            CHECK_EQ_INT(fb.media_ssrc, 0);
            break;
        }
        case TM_RTCP_K_REMB: {
            tm_rtcp_remb remb;
            CHECK_EQ_INT(tm_rtcp_parse_remb(&p, &remb), 0);
            CHECK_EQ_INT(remb.sender_ssrc, 1);
            /* 1500000 = 0b1_0110_1110_0011_0110_0000: 21 bits -> exp 3, rounded down. */
            CHECK_EQ_INT(remb.bitrate_bps, (1500000 >> 3) << 3);
            CHECK_EQ_INT(remb.n_ssrcs, 2);
            CHECK_EQ_INT(remb.ssrcs[1], 101);
            break;
        }
        case TM_RTCP_K_RR: {
            tm_rtcp_rr rr;
            CHECK_EQ_INT(tm_rtcp_parse_rr(&p, &rr), 0);
            CHECK_EQ_INT(rr.ssrc, 2);
            CHECK_EQ_INT(rr.n_reports, 1);
            check_block(&rr.reports[0], 102);
            break;
        }
        case TM_RTCP_K_BYE: {
            tm_rtcp_bye bye;
            CHECK_EQ_INT(tm_rtcp_parse_bye(&p, &bye), 0);
            CHECK_EQ_INT(bye.n, 2);
            CHECK_EQ_INT(bye.ssrcs[0], 100);
            break;
        }
        default:
            CHECK(0);
        }
        i++;
    }
    CHECK_EQ_INT(r, 0);
    CHECK_EQ_INT(i, TM_ARRAY_LEN(want));
}

static void test_walk_rejects_bad_lengths(void)
{
    uint8_t b[1024];
    size_t n = build_compound(b, sizeof(b));
    /* Every truncation of the compound: validate fails unless it ends on a
     * packet boundary, and the walk never reads past the cut. */
    size_t bounds[16], nb = 0;
    tm_rtcp_iter it;
    tm_rtcp_pkt p;
    tm_rtcp_iter_init(&it, b, n);
    while (tm_rtcp_next(&it, &p) == 1)
        bounds[nb++] = p.offset + p.len;
    for (size_t cut = 0; cut < n; cut++) {
        bool boundary = false;
        for (size_t k = 0; k < nb; k++)
            boundary |= bounds[k] == cut;
        CHECK_EQ_INT(tm_rtcp_validate(b, cut), boundary ? 0 : TM_EINVAL);
    }
    /* A length field pointing past the end. */
    uint8_t c[1024];
    memcpy(c, b, n);
    c[3] = 200;
    tm_rtcp_iter_init(&it, c, n);
    CHECK_EQ_INT(tm_rtcp_next(&it, &p), TM_EINVAL);
    CHECK_EQ_INT(tm_rtcp_next(&it, &p), 0);
    /* Wrong version. */
    memcpy(c, b, n);
    c[0] = (uint8_t)((c[0] & 0x3f) | 0x40);
    CHECK_EQ_INT(tm_rtcp_validate(c, n), TM_EINVAL);
    /* An SR whose report count exceeds its length. */
    memcpy(c, b, n);
    c[0] = 0x80 | 3;
    tm_rtcp_iter_init(&it, c, n);
    CHECK_EQ_INT(tm_rtcp_next(&it, &p), 1);
    tm_rtcp_sr sr;
    CHECK_EQ_INT(tm_rtcp_parse_sr(&p, &sr), TM_EINVAL);
    /* A NACK too short for its common header. */
    const uint8_t shortfb[] = {0x81, 205, 0x00, 0x01, 0, 0, 0, 1};
    tm_rtcp_iter_init(&it, shortfb, sizeof(shortfb));
    CHECK_EQ_INT(tm_rtcp_next(&it, &p), 1);
    uint16_t seqs[4];
    CHECK_EQ_INT(tm_rtcp_parse_nack(&p, NULL, seqs, 4), TM_EINVAL);
    /* SDES with an item running past the packet. */
    const uint8_t sdes[] = {0x81, 202, 0x00, 0x02, 0, 0, 0, 1, 1, 20, 'a', 'b'};
    tm_rtcp_iter_init(&it, sdes, sizeof(sdes));
    CHECK_EQ_INT(tm_rtcp_next(&it, &p), 1);
    tm_rtcp_sdes s;
    CHECK_EQ_INT(tm_rtcp_parse_sdes(&p, &s), TM_EINVAL);
    /* REMB claiming more SSRCs than it has. */
    uint8_t remb[64];
    const uint32_t one = 5;
    int r = tm_rtcp_build_remb(remb, sizeof(remb), 1, 1000, &one, 1);
    remb[16] = 9;
    tm_rtcp_iter_init(&it, remb, (size_t)r);
    CHECK_EQ_INT(tm_rtcp_next(&it, &p), 1);
    tm_rtcp_remb rm;
    CHECK_EQ_INT(tm_rtcp_parse_remb(&p, &rm), TM_EINVAL);
    CHECK_EQ_INT(tm_rtcp_validate(NULL, 0), TM_EINVAL);
    CHECK_EQ_INT(tm_rtcp_validate(b, 0), TM_EINVAL);
}

static void test_nack_packing(void)
{
    uint8_t b[256];
    tm_rtcp_iter it;
    tm_rtcp_pkt p;
    /* Unordered, duplicated, across the 16-bit wrap: 65534 is the oldest. */
    const uint16_t lost[] = {3, 65534, 0, 3, 65535, 14};
    int r = tm_rtcp_build_nack(b, sizeof(b), 9, 8, lost, TM_ARRAY_LEN(lost));
    CHECK_EQ_INT(r, 16); /* one item: pid 65534, blp bits for 65535, 0, 3, 14 */
    CHECK_EQ_INT(b[12], 0xff);
    CHECK_EQ_INT(b[13], 0xfe);
    /* 65535 -> bit 0, 0 -> bit 1, 3 -> bit 4, 14 -> bit 15. */
    uint16_t blp = (uint16_t)(b[14] << 8 | b[15]);
    CHECK_EQ_INT(blp, (1 << 0) | (1 << 1) | (1 << 4) | (1 << 15));
    tm_rtcp_iter_init(&it, b, (size_t)r);
    CHECK_EQ_INT(tm_rtcp_next(&it, &p), 1);
    uint16_t seqs[32];
    uint32_t ms;
    CHECK_EQ_INT(tm_rtcp_parse_nack(&p, &ms, seqs, 32), 5);
    CHECK_EQ_INT(ms, 8);
    CHECK_EQ_INT(seqs[0], 65534);
    CHECK_EQ_INT(seqs[4], 14);
    /* max truncates the expansion. */
    CHECK_EQ_INT(tm_rtcp_parse_nack(&p, &ms, seqs, 2), 2);

    /* 40 consecutive losses: items at 100, 117, 134. */
    uint16_t run[40];
    for (int i = 0; i < 40; i++)
        run[i] = (uint16_t)(100 + i);
    r = tm_rtcp_build_nack(b, sizeof(b), 9, 8, run, 40);
    CHECK_EQ_INT(r, 12 + 12);
    CHECK_EQ_INT(b[12] << 8 | b[13], 100);
    CHECK_EQ_INT(b[16] << 8 | b[17], 117);
    CHECK_EQ_INT(b[20] << 8 | b[21], 134);
    CHECK_EQ_INT(b[22] << 8 | b[23], 0x001f); /* 135..139 */
    tm_rtcp_iter_init(&it, b, (size_t)r);
    CHECK_EQ_INT(tm_rtcp_next(&it, &p), 1);
    CHECK_EQ_INT(tm_rtcp_parse_nack(&p, &ms, seqs, 32), 32);
    uint16_t all[64];
    CHECK_EQ_INT(tm_rtcp_parse_nack(&p, &ms, all, 64), 40);
    for (int i = 0; i < 40; i++)
        CHECK_EQ_INT(all[i], 100 + i);
    /* Too small a buffer, and nothing to NACK. */
    CHECK_EQ_INT(tm_rtcp_build_nack(b, 20, 9, 8, run, 40), TM_ETOOBIG);
    CHECK_EQ_INT(tm_rtcp_build_nack(b, sizeof(b), 9, 8, run, 0), TM_EINVAL);
}

static void test_builders_bounds(void)
{
    uint8_t b[64];
    tm_rtcp_sr sr = {.n_reports = 2};
    CHECK_EQ_INT(tm_rtcp_build_sr(b, 75, &sr), TM_ETOOBIG);
    sr.n_reports = 32;
    CHECK_EQ_INT(tm_rtcp_build_sr(b, sizeof(b), &sr), TM_EINVAL);
    CHECK_EQ_INT(tm_rtcp_build_rr(b, 7, 1, NULL, 0), TM_ETOOBIG);
    CHECK_EQ_INT(tm_rtcp_build_rr(b, 8, 1, NULL, 0), 8);
    CHECK_EQ_INT(tm_rtcp_build_pli(b, 11, 1, 2), TM_ETOOBIG);
    CHECK_EQ_INT(tm_rtcp_build_fir(b, 19, 1, 2, 0), TM_ETOOBIG);
    CHECK_EQ_INT(tm_rtcp_build_sdes_cname(b, sizeof(b), 1, ""), TM_EINVAL);
    /* header 4 + ssrc 4 + item 2+3 + end 1 = 14, padded to 16 */
    CHECK_EQ_INT(tm_rtcp_build_sdes_cname(b, 15, 1, "abc"), TM_ETOOBIG);
    CHECK_EQ_INT(tm_rtcp_build_sdes_cname(b, 16, 1, "abc"), 16);
    CHECK_EQ_INT(b[14], 0);
    CHECK_EQ_INT(b[15], 0);
}

static uint32_t swap_map(void *ud, tm_rtcp_ssrc_role role, uint8_t pt, uint32_t ssrc)
{
    int *calls = ud;
    (*calls)++;
    if (role == TM_RTCP_SSRC_MEDIA)
        return ssrc + 1000; /* receiver-side id -> sender's real SSRC */
    return ssrc == 1 ? 77 : ssrc;
}

static void test_rewrite_ssrcs(void)
{
    uint8_t b[1024];
    size_t n = build_compound(b, sizeof(b));
    int calls = 0;
    CHECK_EQ_INT(tm_rtcp_rewrite_ssrcs(b, n, swap_map, &calls), 0);
    /* SR: sender + 2 blocks; SDES 1; PLI 2; NACK 2; FIR sender + 1 entry;
     * REMB sender + 2; RR 1 + 1; BYE 2. (FIR and REMB carry 0 as media SSRC.) */
    CHECK_EQ_INT(calls, 3 + 1 + 2 + 2 + 2 + 3 + 2 + 2);
    tm_rtcp_iter it;
    tm_rtcp_pkt p;
    tm_rtcp_iter_init(&it, b, n);
    while (tm_rtcp_next(&it, &p) == 1) {
        if (p.kind == TM_RTCP_K_SR) {
            tm_rtcp_sr sr;
            CHECK_EQ_INT(tm_rtcp_parse_sr(&p, &sr), 0);
            CHECK_EQ_INT(sr.ssrc, 77);
            CHECK_EQ_INT(sr.reports[0].ssrc, 1100);
            CHECK_EQ_INT(sr.reports[0].jitter, 77); /* untouched */
        } else if (p.kind == TM_RTCP_K_SDES) {
            tm_rtcp_sdes s;
            CHECK_EQ_INT(tm_rtcp_parse_sdes(&p, &s), 0);
            CHECK_EQ_INT(s.chunks[0].ssrc, 77);
            CHECK_STR(s.chunks[0].cname, "abcdefgh");
        } else if (p.kind == TM_RTCP_K_PLI || p.kind == TM_RTCP_K_NACK) {
            tm_rtcp_fb fb;
            CHECK_EQ_INT(tm_rtcp_parse_fb(&p, &fb), 0);
            CHECK_EQ_INT(fb.sender_ssrc, 77);
            CHECK_EQ_INT(fb.media_ssrc, 1100);
        } else if (p.kind == TM_RTCP_K_FIR) {
            tm_rtcp_fir_entry e;
            CHECK_EQ_INT(tm_rtcp_parse_fir(&p, &e, 1), 1);
            CHECK_EQ_INT(e.ssrc, 1100);
            CHECK_EQ_INT(e.seq_nr, 7);
        } else if (p.kind == TM_RTCP_K_REMB) {
            tm_rtcp_remb r;
            CHECK_EQ_INT(tm_rtcp_parse_remb(&p, &r), 0);
            CHECK_EQ_INT(r.ssrcs[0], 1100);
            CHECK_EQ_INT(r.ssrcs[1], 1101);
        }
    }
    /* Malformed: error, and nothing past the bad packet is touched. */
    n = build_compound(b, sizeof(b));
    b[3] = 0xff;
    calls = 0;
    CHECK_EQ_INT(tm_rtcp_rewrite_ssrcs(b, n, swap_map, &calls), TM_EINVAL);
    CHECK_EQ_INT(calls, 0);
}

static void test_ntp_rtt(void)
{
    int64_t us = 1764072000123456; /* 2025-11-25T12:00:00.123456Z */
    uint64_t ntp = tm_ntp_from_unix_us(us);
    CHECK_EQ_INT(ntp >> 32, 1764072000ull + 2208988800ull);
    int64_t back = tm_ntp_to_unix_us(ntp);
    CHECK(back - us <= 1 && us - back <= 1);
    CHECK_EQ_INT(tm_ntp_mid32(0x0102030405060708ull), 0x03040506u);
    /* LSR at t=10 s, DLSR 0.25 s, arrival at 10.5 s: RTT 250 ms. */
    uint32_t lsr = 10u << 16, dlsr = 1u << 14, arrival = (10u << 16) + (1u << 15);
    CHECK_EQ_INT(tm_rtcp_rtt_us(arrival, lsr, dlsr), 250000);
    CHECK_EQ_INT(tm_rtcp_rtt_us(arrival, 0, dlsr), -1);
    CHECK_EQ_INT(tm_rtcp_rtt_us(lsr, lsr, dlsr), -1); /* negative: clocks disagree */
    /* Wrap of the 16.16 clock. */
    CHECK_EQ_INT(tm_rtcp_rtt_us(5u << 12, 0xffff0000u, 0),
                 (int64_t)((65536 + 20480) * 1000000ll >> 16));
}

int main(void)
{
    RUN(test_compound_roundtrip);
    RUN(test_walk_rejects_bad_lengths);
    RUN(test_nack_packing);
    RUN(test_builders_bounds);
    RUN(test_rewrite_ssrcs);
    RUN(test_ntp_rtt);
    TEST_DONE();
}

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

/* Packets a browser sends and the server only walks past or parses, made
 * here as fixtures: RFC 3550 SDES (one CNAME chunk) and BYE, RFC 5104 FIR. */
static void put_header(uint8_t *b, uint8_t count, uint8_t pt, size_t len)
{
    b[0] = (uint8_t)(0x80 | count);
    b[1] = pt;
    b[2] = (uint8_t)((len / 4 - 1) >> 8);
    b[3] = (uint8_t)(len / 4 - 1);
}

static void put32(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)(v >> 24);
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
}

static size_t fixture_sdes(uint8_t *b, uint32_t ssrc, const char *cname)
{
    size_t cl = strlen(cname), len = 4 + ((4 + 2 + cl + 1 + 3) & ~(size_t)3);
    memset(b, 0, len);
    put_header(b, 1, TM_RTCP_SDES, len);
    put32(b + 4, ssrc);
    b[8] = 1; /* CNAME */
    b[9] = (uint8_t)cl;
    memcpy(b + 10, cname, cl);
    return len;
}

static size_t fixture_bye(uint8_t *b, const uint32_t *ssrcs, size_t n)
{
    put_header(b, (uint8_t)n, TM_RTCP_BYE, 4 + 4 * n);
    for (size_t i = 0; i < n; i++)
        put32(b + 4 + 4 * i, ssrcs[i]);
    return 4 + 4 * n;
}

static size_t fixture_fir(uint8_t *b, uint32_t sender, uint32_t media, uint8_t seq_nr)
{
    put_header(b, TM_RTCP_FMT_FIR, TM_RTCP_PSFB, 20);
    put32(b + 4, sender);
    put32(b + 8, 0); /* RFC 5104 4.3.1.2: the target is in the entry */
    put32(b + 12, media);
    b[16] = seq_nr;
    b[17] = b[18] = b[19] = 0;
    return 20;
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
    off += fixture_sdes(b + off, 1, "abcdefgh");
    r = tm_rtcp_build_pli(b + off, cap - off, 1, 100);
    CHECK_EQ_INT(r, 12);
    off += (size_t)r;
    const uint16_t lost[] = {1000, 1002, 1016, 1017, 1040};
    r = tm_rtcp_build_nack(b + off, cap - off, 1, 100, lost, TM_ARRAY_LEN(lost));
    CHECK_EQ_INT(r, 12 + 12); /* items 1000 (+1002, 1016), 1017, 1040 */
    off += (size_t)r;
    off += fixture_fir(b + off, 1, 100, 7);
    const uint32_t ssrcs[] = {100, 101};
    r = tm_rtcp_build_remb(b + off, cap - off, 1, 1500000, ssrcs, 2);
    CHECK_EQ_INT(r, 28);
    off += (size_t)r;
    tm_rtcp_report_block rb = block(102);
    r = tm_rtcp_build_rr(b + off, cap - off, 2, &rb, 1);
    CHECK_EQ_INT(r, 32);
    off += (size_t)r;
    off += fixture_bye(b + off, ssrcs, 2);
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
        case TM_RTCP_K_SDES:
            CHECK_EQ_INT(p.len, 20);
            break;
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
        case TM_RTCP_K_BYE:
            CHECK_EQ_INT(p.count, 2);
            CHECK_EQ_INT(p.len, 12);
            break;
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
}

static void test_ntp_mid32(void)
{
    CHECK_EQ_INT(tm_ntp_mid32(0x0102030405060708ull), 0x03040506u);
}

int main(void)
{
    RUN(test_compound_roundtrip);
    RUN(test_walk_rejects_bad_lengths);
    RUN(test_nack_packing);
    RUN(test_builders_bounds);
    RUN(test_ntp_mid32);
    TEST_DONE();
}

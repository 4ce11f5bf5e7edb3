/*
 * rtcp.c - compound RTCP walk, message parsers, in-place SSRC rewrite and
 * builders for the messages the SFU sends (SR, RR, SDES, BYE, PLI, FIR,
 * NACK, REMB), plus NTP/RTT arithmetic.
 *
 * Hot-path code: caller buffers only, no allocation, no logging; every field
 * read is preceded by a length check against the packet's own length field,
 * which itself was checked against the datagram. Runs on the calling media
 * worker thread; no state of its own.
 */
#include "rtcp.h"

#include <string.h>

#include "rtp.h"

static inline uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}
static inline uint32_t rd32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* ---- Walking ---- */

static tm_rtcp_kind kind_of(const uint8_t *d, size_t len, uint8_t pt, uint8_t count)
{
    switch (pt) {
    case TM_RTCP_SR:
        return TM_RTCP_K_SR;
    case TM_RTCP_RR:
        return TM_RTCP_K_RR;
    case TM_RTCP_SDES:
        return TM_RTCP_K_SDES;
    case TM_RTCP_BYE:
        return TM_RTCP_K_BYE;
    case TM_RTCP_APP:
        return TM_RTCP_K_APP;
    case TM_RTCP_XR:
        return TM_RTCP_K_XR;
    case TM_RTCP_RTPFB:
        if (count == TM_RTCP_FMT_NACK)
            return TM_RTCP_K_NACK;
        if (count == TM_RTCP_FMT_TWCC)
            return TM_RTCP_K_TWCC;
        return TM_RTCP_K_OTHER_FB;
    case TM_RTCP_PSFB:
        if (count == TM_RTCP_FMT_PLI)
            return TM_RTCP_K_PLI;
        if (count == TM_RTCP_FMT_FIR)
            return TM_RTCP_K_FIR;
        if (count == TM_RTCP_FMT_AFB && len >= 16 && memcmp(d + 12, "REMB", 4) == 0)
            return TM_RTCP_K_REMB;
        return TM_RTCP_K_OTHER_FB;
    default:
        return TM_RTCP_K_UNKNOWN;
    }
}

void tm_rtcp_iter_init(tm_rtcp_iter *it, const uint8_t *buf, size_t len)
{
    it->buf = buf;
    it->len = buf ? len : 0;
    it->off = 0;
}

int tm_rtcp_next(tm_rtcp_iter *it, tm_rtcp_pkt *out)
{
    if (it->off >= it->len)
        return 0;
    size_t left = it->len - it->off;
    const uint8_t *d = it->buf + it->off;
    if (left < 4 || (d[0] >> 6) != 2) {
        it->off = it->len;
        return TM_EINVAL;
    }
    size_t plen = 4u * ((size_t)rd16(d + 2) + 1);
    if (plen > left) {
        it->off = it->len;
        return TM_EINVAL;
    }
    out->data = d;
    out->len = plen;
    out->offset = it->off;
    out->pt = d[1];
    out->count = d[0] & 0x1f;
    out->padding = (d[0] & 0x20) != 0;
    out->kind = kind_of(d, plen, out->pt, out->count);
    it->off += plen;
    return 1;
}

int tm_rtcp_validate(const uint8_t *buf, size_t len)
{
    tm_rtcp_iter it;
    tm_rtcp_pkt p;
    int r, n = 0;
    if (!buf || len < 4)
        return TM_EINVAL;
    tm_rtcp_iter_init(&it, buf, len);
    while ((r = tm_rtcp_next(&it, &p)) == 1)
        n++;
    return r == 0 && n > 0 ? 0 : TM_EINVAL;
}

/* ---- Parsers ---- */

static void read_block(const uint8_t *b, tm_rtcp_report_block *rb)
{
    rb->ssrc = rd32(b);
    rb->fraction_lost = b[4];
    int32_t lost = (int32_t)(((uint32_t)b[5] << 16) | ((uint32_t)b[6] << 8) | b[7]);
    if (lost & 0x800000)
        lost -= 0x1000000;
    rb->cumulative_lost = lost;
    rb->highest_seq = rd32(b + 8);
    rb->jitter = rd32(b + 12);
    rb->lsr = rd32(b + 16);
    rb->dlsr = rd32(b + 20);
}

int tm_rtcp_parse_sr(const tm_rtcp_pkt *p, tm_rtcp_sr *out)
{
    if (!p || !out || p->pt != TM_RTCP_SR || p->len < 28)
        return TM_EINVAL;
    if (28 + 24u * p->count > p->len)
        return TM_EINVAL;
    const uint8_t *d = p->data;
    out->ssrc = rd32(d + 4);
    out->ntp = ((uint64_t)rd32(d + 8) << 32) | rd32(d + 12);
    out->rtp_ts = rd32(d + 16);
    out->packet_count = rd32(d + 20);
    out->octet_count = rd32(d + 24);
    out->n_reports = p->count;
    for (unsigned i = 0; i < p->count; i++)
        read_block(d + 28 + 24 * i, &out->reports[i]);
    return 0;
}

int tm_rtcp_parse_rr(const tm_rtcp_pkt *p, tm_rtcp_rr *out)
{
    if (!p || !out || p->pt != TM_RTCP_RR || p->len < 8)
        return TM_EINVAL;
    if (8 + 24u * p->count > p->len)
        return TM_EINVAL;
    out->ssrc = rd32(p->data + 4);
    out->n_reports = p->count;
    for (unsigned i = 0; i < p->count; i++)
        read_block(p->data + 8 + 24 * i, &out->reports[i]);
    return 0;
}

/*
 * Walk SDES chunks: for each, call back with its ssrc offset and the CNAME
 * item (if any). Returns the number of chunks or TM_EINVAL.
 */
int tm_rtcp_parse_fb(const tm_rtcp_pkt *p, tm_rtcp_fb *out)
{
    if (!p || !out || (p->pt != TM_RTCP_RTPFB && p->pt != TM_RTCP_PSFB) || p->len < 12)
        return TM_EINVAL;
    out->pt = p->pt;
    out->fmt = p->count;
    out->sender_ssrc = rd32(p->data + 4);
    out->media_ssrc = rd32(p->data + 8);
    out->fci = p->data + 12;
    out->fci_len = p->len - 12;
    return 0;
}

int tm_rtcp_parse_nack(const tm_rtcp_pkt *p, uint32_t *media_ssrc, uint16_t *seqs, size_t max)
{
    tm_rtcp_fb fb;
    if (tm_rtcp_parse_fb(p, &fb) < 0 || p->kind != TM_RTCP_K_NACK)
        return TM_EINVAL;
    if (media_ssrc)
        *media_ssrc = fb.media_ssrc;
    size_t n = 0;
    for (size_t i = 0; i + 4 <= fb.fci_len; i += 4) {
        uint16_t pid = rd16(fb.fci + i), blp = rd16(fb.fci + i + 2);
        if (n < max && seqs)
            seqs[n] = pid;
        n++;
        for (int b = 0; b < 16; b++) {
            if (!(blp & (1u << b)))
                continue;
            if (n < max && seqs)
                seqs[n] = (uint16_t)(pid + b + 1);
            n++;
        }
    }
    return (int)(n < max ? n : max);
}

int tm_rtcp_parse_fir(const tm_rtcp_pkt *p, tm_rtcp_fir_entry *entries, size_t max)
{
    tm_rtcp_fb fb;
    if (tm_rtcp_parse_fb(p, &fb) < 0 || p->kind != TM_RTCP_K_FIR)
        return TM_EINVAL;
    size_t n = 0;
    for (size_t i = 0; i + 8 <= fb.fci_len && n < max; i += 8, n++) {
        entries[n].ssrc = rd32(fb.fci + i);
        entries[n].seq_nr = fb.fci[i + 4];
    }
    return (int)n;
}

int tm_rtcp_parse_remb(const tm_rtcp_pkt *p, tm_rtcp_remb *out)
{
    tm_rtcp_fb fb;
    if (!out || tm_rtcp_parse_fb(p, &fb) < 0 || p->kind != TM_RTCP_K_REMB || fb.fci_len < 8)
        return TM_EINVAL;
    unsigned num = fb.fci[4];
    if (8 + 4u * num > fb.fci_len)
        return TM_EINVAL;
    unsigned exp = fb.fci[5] >> 2;
    uint64_t mantissa = ((uint64_t)(fb.fci[5] & 0x03) << 16) | rd16(fb.fci + 6);
    out->sender_ssrc = fb.sender_ssrc;
    /* 18-bit mantissa: shifting by more than 46 would overflow; saturate. */
    out->bitrate_bps = exp > 46 && mantissa ? UINT64_MAX : mantissa << exp;
    out->n_ssrcs = num < TM_RTCP_REMB_MAX_SSRCS ? num : TM_RTCP_REMB_MAX_SSRCS;
    for (unsigned i = 0; i < out->n_ssrcs; i++)
        out->ssrcs[i] = rd32(fb.fci + 8 + 4 * i);
    return 0;
}

/* ---- Builders ---- */

static void put_header(uint8_t *b, uint8_t count, uint8_t pt, size_t len)
{
    b[0] = (uint8_t)(0x80 | (count & 0x1f));
    b[1] = pt;
    wr16(b + 2, (uint16_t)(len / 4 - 1));
}

static void write_block(uint8_t *b, const tm_rtcp_report_block *rb)
{
    int32_t lost = rb->cumulative_lost;
    if (lost > 0x7fffff)
        lost = 0x7fffff;
    if (lost < -0x800000)
        lost = -0x800000;
    uint32_t l24 = (uint32_t)lost & 0xffffff;
    wr32(b, rb->ssrc);
    b[4] = rb->fraction_lost;
    b[5] = (uint8_t)(l24 >> 16);
    b[6] = (uint8_t)(l24 >> 8);
    b[7] = (uint8_t)l24;
    wr32(b + 8, rb->highest_seq);
    wr32(b + 12, rb->jitter);
    wr32(b + 16, rb->lsr);
    wr32(b + 20, rb->dlsr);
}

int tm_rtcp_build_sr(uint8_t *buf, size_t cap, const tm_rtcp_sr *sr)
{
    if (!buf || !sr || sr->n_reports > TM_RTCP_MAX_REPORTS)
        return TM_EINVAL;
    size_t len = 28 + 24u * sr->n_reports;
    if (len > cap)
        return TM_ETOOBIG;
    put_header(buf, (uint8_t)sr->n_reports, TM_RTCP_SR, len);
    wr32(buf + 4, sr->ssrc);
    wr32(buf + 8, (uint32_t)(sr->ntp >> 32));
    wr32(buf + 12, (uint32_t)sr->ntp);
    wr32(buf + 16, sr->rtp_ts);
    wr32(buf + 20, sr->packet_count);
    wr32(buf + 24, sr->octet_count);
    for (unsigned i = 0; i < sr->n_reports; i++)
        write_block(buf + 28 + 24 * i, &sr->reports[i]);
    return (int)len;
}

int tm_rtcp_build_rr(uint8_t *buf, size_t cap, uint32_t ssrc, const tm_rtcp_report_block *rb,
                     size_t n)
{
    if (!buf || n > TM_RTCP_MAX_REPORTS || (n && !rb))
        return TM_EINVAL;
    size_t len = 8 + 24 * n;
    if (len > cap)
        return TM_ETOOBIG;
    put_header(buf, (uint8_t)n, TM_RTCP_RR, len);
    wr32(buf + 4, ssrc);
    for (size_t i = 0; i < n; i++)
        write_block(buf + 8 + 24 * i, &rb[i]);
    return (int)len;
}

static int build_fb(uint8_t *buf, size_t cap, uint8_t pt, uint8_t fmt, uint32_t sender,
                    uint32_t media, size_t fci_len)
{
    size_t len = 12 + fci_len;
    if (!buf)
        return TM_EINVAL;
    if (len > cap)
        return TM_ETOOBIG;
    put_header(buf, fmt, pt, len);
    wr32(buf + 4, sender);
    wr32(buf + 8, media);
    return (int)len;
}

int tm_rtcp_build_pli(uint8_t *buf, size_t cap, uint32_t sender_ssrc, uint32_t media_ssrc)
{
    return build_fb(buf, cap, TM_RTCP_PSFB, TM_RTCP_FMT_PLI, sender_ssrc, media_ssrc, 0);
}

/* Position of s relative to ref, so that wrap-around sorts right: seqs within
 * half the space after ref come after it. */
static inline uint32_t seq_key(uint16_t s, uint16_t ref)
{
    return (uint16_t)(s - ref + 0x8000);
}

int tm_rtcp_build_nack(uint8_t *buf, size_t cap, uint32_t sender_ssrc, uint32_t media_ssrc,
                       const uint16_t *seqs, size_t n)
{
    if (!buf || !seqs || n == 0)
        return TM_EINVAL;
    if (cap < 12)
        return TM_ETOOBIG;
    /* Greedy and optimal: each item starts at the oldest seq not yet covered
     * and takes every listed seq in the next 16. O(n * items), no scratch. */
    uint16_t ref = seqs[0];
    size_t off = 12;
    int64_t covered = -1; /* keys <= covered are in an item already */
    for (;;) {
        int64_t best = -1;
        for (size_t i = 0; i < n; i++) {
            int64_t k = seq_key(seqs[i], ref);
            if (k > covered && (best < 0 || k < best))
                best = k;
        }
        if (best < 0)
            break;
        uint16_t blp = 0;
        for (size_t i = 0; i < n; i++) {
            int64_t k = seq_key(seqs[i], ref);
            if (k > best && k <= best + 16)
                blp |= (uint16_t)(1u << (k - best - 1));
        }
        if (off + 4 > cap)
            return TM_ETOOBIG;
        if (off + 4 > 4 * 65536)
            return TM_EINVAL;
        wr16(buf + off, (uint16_t)(best + ref - 0x8000));
        wr16(buf + off + 2, blp);
        off += 4;
        covered = best + 16;
    }
    int r = build_fb(buf, cap, TM_RTCP_RTPFB, TM_RTCP_FMT_NACK, sender_ssrc, media_ssrc, off - 12);
    return r;
}

int tm_rtcp_build_remb(uint8_t *buf, size_t cap, uint32_t sender_ssrc, uint64_t bitrate_bps,
                       const uint32_t *ssrcs, size_t n)
{
    if (n > 255 || (n && !ssrcs))
        return TM_EINVAL;
    int len = build_fb(buf, cap, TM_RTCP_PSFB, TM_RTCP_FMT_AFB, sender_ssrc, 0, 8 + 4 * n);
    if (len < 0)
        return len;
    unsigned exp = 0;
    uint64_t m = bitrate_bps;
    while (m > 0x3ffff) {
        m >>= 1;
        exp++;
    }
    memcpy(buf + 12, "REMB", 4);
    buf[16] = (uint8_t)n;
    buf[17] = (uint8_t)((exp << 2) | (m >> 16));
    wr16(buf + 18, (uint16_t)m);
    for (size_t i = 0; i < n; i++)
        wr32(buf + 20 + 4 * i, ssrcs[i]);
    return len;
}

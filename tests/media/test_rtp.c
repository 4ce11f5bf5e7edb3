/*
 * test_rtp.c - RTP demux, header parse with CSRC/extension/padding, in-place
 * rewrites, RFC 8285 extension remap with truncated inputs, rtx unwrap, VP8 and H.264 keyframes on
 * hand-built payloads, sequence number helpers.
 */
#include <stdint.h>
#include <string.h>

#include "rtp.h"
#include "tm_test.h"

/* A packet: V=2, given flags, pt 96, seq 0x1234, ts 0xdeadbeef, ssrc 0x11223344. */
static size_t make_rtp(uint8_t *b, uint8_t b0_flags, const uint8_t *ext, size_t ext_len,
                       const uint8_t *payload, size_t plen)
{
    size_t off = 0;
    b[0] = 0x80 | b0_flags;
    b[1] = 0x80 | 96; /* marker set */
    b[2] = 0x12;
    b[3] = 0x34;
    b[4] = 0xde;
    b[5] = 0xad;
    b[6] = 0xbe;
    b[7] = 0xef;
    b[8] = 0x11;
    b[9] = 0x22;
    b[10] = 0x33;
    b[11] = 0x44;
    off = 12 + 4u * (b0_flags & 0x0f);
    memset(b + 12, 0xcc, off - 12);
    if (ext) {
        memcpy(b + off, ext, ext_len);
        off += ext_len;
    }
    memcpy(b + off, payload, plen);
    return off + plen;
}

/* The element id's data in an RFC 8285 block, found the plain way to check
 * what tm_rtp_ext_remap wrote. 0, TM_ENOTFOUND or TM_EINVAL. */
static int ext_find(const uint8_t *b, size_t len, uint8_t id, const uint8_t **data, size_t *dlen)
{
    tm_rtp_header h;
    if (tm_rtp_parse(b, len, &h) != 0)
        return TM_EINVAL;
    bool one = h.ext_profile == TM_RTP_EXT_ONE_BYTE;
    if (!h.extension || (!one && (h.ext_profile & 0xfff0) != TM_RTP_EXT_TWO_BYTE))
        return TM_ENOTFOUND;
    const uint8_t *d = b + h.ext_offset;
    for (size_t i = 0; i < h.ext_len;) {
        if (d[i] == 0) {
            i++;
            continue;
        }
        uint8_t eid = one ? d[i] >> 4 : d[i];
        size_t hdr = one ? 1 : 2;
        if (i + hdr > h.ext_len)
            return TM_EINVAL;
        size_t l = one ? (size_t)(d[i] & 0x0f) + 1 : d[i + 1];
        if (i + hdr + l > h.ext_len)
            return TM_EINVAL;
        if (eid == id) {
            *data = d + i + hdr;
            *dlen = l;
            return 0;
        }
        i += hdr + l;
    }
    return TM_ENOTFOUND;
}

/* Drops element id, as a receiver that did not negotiate it gets it. */
static int ext_drop(uint8_t *b, size_t len, uint8_t id)
{
    uint8_t map[256];
    for (int i = 0; i < 256; i++)
        map[i] = (uint8_t)i;
    map[id] = 0;
    return tm_rtp_ext_remap(b, len, map);
}

/* The rtx form of a packet (RFC 4588), as a sender makes it: rtx ssrc, pt and
 * seq, the original seq as the first two payload bytes, no padding. */
static int build_rtx(uint8_t *out, size_t cap, const uint8_t *pkt, size_t len, uint32_t ssrc,
                     uint8_t pt, uint16_t seq)
{
    tm_rtp_header h;
    if (tm_rtp_parse(pkt, len, &h) != 0)
        return TM_EINVAL;
    size_t total = h.header_len + 2 + h.payload_len;
    if (total > cap)
        return TM_ETOOBIG;
    memcpy(out, pkt, h.header_len);
    out[0] &= (uint8_t)~0x20;
    out[h.header_len] = (uint8_t)(h.seq >> 8);
    out[h.header_len + 1] = (uint8_t)h.seq;
    memcpy(out + h.header_len + 2, pkt + h.payload_offset, h.payload_len);
    tm_rtp_set_ssrc(out, ssrc);
    tm_rtp_set_pt(out, pt);
    tm_rtp_set_seq(out, seq);
    return (int)total;
}

static void test_demux(void)
{
    uint8_t stun[20] = {0x00, 0x01};
    uint8_t dtls[13] = {22, 0xfe, 0xfd};
    uint8_t rtp[12] = {0x80, 96};
    uint8_t rtcp[8] = {0x80, 200};
    uint8_t rtcp_fb[8] = {0x81, 205};
    uint8_t other[20] = {0x40};
    CHECK_EQ_INT(tm_packet_kind(stun, sizeof(stun)), TM_PKT_STUN);
    CHECK_EQ_INT(tm_packet_kind(stun, 19), TM_PKT_UNKNOWN);
    CHECK_EQ_INT(tm_packet_kind(dtls, sizeof(dtls)), TM_PKT_DTLS);
    CHECK_EQ_INT(tm_packet_kind(rtp, sizeof(rtp)), TM_PKT_RTP);
    CHECK_EQ_INT(tm_packet_kind(rtp, 11), TM_PKT_UNKNOWN);
    rtp[1] = 0x80 | 127; /* marker + pt 127 = 255: still RTP */
    CHECK_EQ_INT(tm_packet_kind(rtp, sizeof(rtp)), TM_PKT_RTP);
    CHECK_EQ_INT(tm_packet_kind(rtcp, sizeof(rtcp)), TM_PKT_RTCP);
    CHECK_EQ_INT(tm_packet_kind(rtcp_fb, sizeof(rtcp_fb)), TM_PKT_RTCP);
    rtcp[1] = 223;
    CHECK_EQ_INT(tm_packet_kind(rtcp, sizeof(rtcp)), TM_PKT_RTCP);
    rtcp[1] = 224;
    CHECK_EQ_INT(tm_packet_kind(rtcp, sizeof(rtcp)), TM_PKT_UNKNOWN); /* too short for RTP */
    CHECK_EQ_INT(tm_packet_kind(other, sizeof(other)), TM_PKT_UNKNOWN);
    CHECK_EQ_INT(tm_packet_kind(NULL, 0), TM_PKT_UNKNOWN);
    CHECK_EQ_INT(tm_packet_kind(rtp, 1), TM_PKT_UNKNOWN);
}

static void test_parse_plain_and_csrc(void)
{
    uint8_t b[64];
    const uint8_t pl[] = {1, 2, 3, 4, 5};
    size_t n = make_rtp(b, 0x02, NULL, 0, pl, sizeof(pl)); /* 2 CSRCs */
    tm_rtp_header h;
    CHECK_EQ_INT(tm_rtp_parse(b, n, &h), 0);
    CHECK_EQ_INT(h.version, 2);
    CHECK(h.marker);
    CHECK_EQ_INT(h.pt, 96);
    CHECK_EQ_INT(h.seq, 0x1234);
    CHECK_EQ_INT(h.ts, 0xdeadbeefu);
    CHECK_EQ_INT(h.ssrc, 0x11223344u);
    CHECK_EQ_INT(h.csrc_count, 2);
    CHECK_EQ_INT(h.header_len, 20);
    CHECK_EQ_INT(h.payload_offset, 20);
    CHECK_EQ_INT(h.payload_len, 5);
    /* Every truncation fails cleanly. */
    for (size_t i = 0; i < 20; i++)
        CHECK_EQ_INT(tm_rtp_parse(b, i, &h), TM_EINVAL);
    CHECK_EQ_INT(tm_rtp_parse(b, 20, &h), 0);
    CHECK_EQ_INT(h.payload_len, 0);
    b[0] = 0x40; /* version 1 */
    CHECK_EQ_INT(tm_rtp_parse(b, n, &h), TM_EINVAL);
}

static void test_parse_padding(void)
{
    uint8_t b[64];
    const uint8_t pl[] = {9, 9, 9, 0, 0, 3}; /* 3 payload bytes + 3 padding */
    size_t n = make_rtp(b, 0x20, NULL, 0, pl, sizeof(pl));
    tm_rtp_header h;
    CHECK_EQ_INT(tm_rtp_parse(b, n, &h), 0);
    CHECK(h.padding);
    CHECK_EQ_INT(h.padding_len, 3);
    CHECK_EQ_INT(h.payload_len, 3);
    b[n - 1] = 7; /* more padding than payload */
    CHECK_EQ_INT(tm_rtp_parse(b, n, &h), TM_EINVAL);
    b[n - 1] = 0;
    CHECK_EQ_INT(tm_rtp_parse(b, n, &h), TM_EINVAL);
    CHECK_EQ_INT(tm_rtp_parse(b, 12, &h), TM_EINVAL); /* P set, nothing after header */
}

/* One-byte extensions: mid (id 4, "1") and abs-send-time (id 2, 3 bytes). */
static const uint8_t EXT1[] = {0xbe, 0xde, 0x00, 0x02, 0x40, '1',
                               0x22, 0xaa, 0xbb, 0xcc, 0x00, 0x00};

static void test_ext_find(void)
{
    uint8_t b[64];
    const uint8_t pl[] = {1, 2, 3};
    size_t n = make_rtp(b, 0x10, EXT1, sizeof(EXT1), pl, sizeof(pl));
    tm_rtp_header h;
    CHECK_EQ_INT(tm_rtp_parse(b, n, &h), 0);
    CHECK(h.extension);
    CHECK_EQ_INT(h.ext_profile, 0xbede);
    CHECK_EQ_INT(h.ext_offset, 16);
    CHECK_EQ_INT(h.ext_len, 8);
    CHECK_EQ_INT(h.payload_offset, 24);
    CHECK_EQ_INT(h.payload_len, 3);
    const uint8_t *d;
    size_t dl;
    CHECK_EQ_INT(ext_find(b, n, 4, &d, &dl), 0);
    CHECK_EQ_INT(dl, 1);
    CHECK_EQ_INT(d[0], '1');
    CHECK_EQ_INT(ext_find(b, n, 2, &d, &dl), 0);
    CHECK_EQ_INT(dl, 3);
    CHECK_EQ_INT(d[0], 0xaa);
    CHECK_EQ_INT(d[2], 0xcc);
    CHECK_EQ_INT(ext_find(b, n, 5, &d, &dl), TM_ENOTFOUND);
    /* The library's reader agrees (the audio level is read so). */
    CHECK_EQ_INT(tm_rtp_ext_find(b, &h, 4, &d), 1);
    CHECK_EQ_INT(d[0], '1');
    CHECK_EQ_INT(tm_rtp_ext_find(b, &h, 2, &d), 3);
    CHECK_EQ_INT(d[0], 0xaa);
    CHECK_EQ_INT(tm_rtp_ext_find(b, &h, 5, &d), TM_ENOTFOUND);
    /* Extension length past the end. */
    for (size_t i = 12; i < 24; i++)
        CHECK(tm_rtp_parse(b, i, &h) == TM_EINVAL);
    /* An element past its block: the remap refuses it. */
    uint8_t bad[64], map[256] = {0};
    memcpy(bad, b, n);
    bad[16 + 6] = 0x2f; /* id 2 claims 16 bytes in an 8-byte block */
    CHECK_EQ_INT(tm_rtp_ext_remap(bad, n, map), TM_EINVAL);

    /* Two-byte form: id 20 with 2 bytes, then id 4 with 0 bytes. */
    const uint8_t ext2[] = {0x10, 0x00, 0x00, 0x02, 20, 2, 0x01, 0x02, 4, 0, 0, 0};
    n = make_rtp(b, 0x10, ext2, sizeof(ext2), pl, sizeof(pl));
    CHECK_EQ_INT(ext_find(b, n, 20, &d, &dl), 0);
    CHECK_EQ_INT(dl, 2);
    CHECK_EQ_INT(tm_rtp_parse(b, n, &h), 0);
    CHECK_EQ_INT(tm_rtp_ext_find(b, &h, 20, &d), 2);
    CHECK_EQ_INT(d[1], 0x02);
    CHECK_EQ_INT(d[1], 0x02);
    CHECK_EQ_INT(ext_find(b, n, 4, &d, &dl), 0);
    CHECK_EQ_INT(dl, 0);

    /* A non-RFC 8285 profile is not ours to read. */
    const uint8_t ext3[] = {0x12, 0x34, 0x00, 0x01, 0x40, 0x31, 0, 0};
    n = make_rtp(b, 0x10, ext3, sizeof(ext3), pl, sizeof(pl));
    CHECK_EQ_INT(ext_find(b, n, 4, &d, &dl), TM_ENOTFOUND);
    CHECK_EQ_INT(ext_drop(b, n, 4), (int)n);
}

static void test_rewrite_fields(void)
{
    uint8_t b[64];
    const uint8_t pl[] = {1, 2, 3};
    size_t n = make_rtp(b, 0x10, EXT1, sizeof(EXT1), pl, sizeof(pl));
    tm_rtp_set_ssrc(b, 0xcafebabe);
    tm_rtp_set_pt(b, 111);
    tm_rtp_set_seq(b, 65535);
    tm_rtp_set_ts(b, 42);
    tm_rtp_header h;
    CHECK_EQ_INT(tm_rtp_parse(b, n, &h), 0);
    CHECK_EQ_INT(h.ssrc, 0xcafebabeu);
    CHECK_EQ_INT(h.pt, 111);
    CHECK(h.marker); /* pt rewrite keeps the marker */
    CHECK_EQ_INT(h.seq, 65535);
    CHECK_EQ_INT(h.ts, 42);
    CHECK_EQ_INT(memcmp(b + h.payload_offset, pl, 3), 0);
}

static void test_ext_remove_and_remap(void)
{
    uint8_t b[64];
    const uint8_t pl[] = {1, 2, 3};
    size_t n = make_rtp(b, 0x10, EXT1, sizeof(EXT1), pl, sizeof(pl));
    /* Remap 4 -> 9 and 2 -> 3 in place. */
    uint8_t map[256] = {0};
    map[4] = 9;
    map[2] = 3;
    CHECK_EQ_INT(tm_rtp_ext_remap(b, n, map), (int)n);
    const uint8_t *d;
    size_t dl;
    CHECK_EQ_INT(ext_find(b, n, 9, &d, &dl), 0);
    CHECK_EQ_INT(d[0], '1');
    CHECK_EQ_INT(ext_find(b, n, 3, &d, &dl), 0);
    CHECK_EQ_INT(ext_find(b, n, 4, &d, &dl), TM_ENOTFOUND);
    /* Drop 9 (the receiver did not negotiate mid): the block shrinks to 4 bytes. */
    map[9] = 0;
    map[3] = 3;
    int r = tm_rtp_ext_remap(b, n, map);
    CHECK_EQ_INT(r, (int)n - 4);
    tm_rtp_header h;
    CHECK_EQ_INT(tm_rtp_parse(b, (size_t)r, &h), 0);
    CHECK_EQ_INT(h.ext_len, 4);
    CHECK_EQ_INT(memcmp(b + h.payload_offset, pl, 3), 0);
    /* Remove the last one: no extension at all. */
    r = ext_drop(b, (size_t)r, 3);
    CHECK_EQ_INT(r, 15);
    CHECK_EQ_INT(tm_rtp_parse(b, (size_t)r, &h), 0);
    CHECK(!h.extension);
    CHECK_EQ_INT(h.header_len, 12);
    CHECK_EQ_INT(memcmp(b + 12, pl, 3), 0);
    /* One-byte ids mapped above 14 take the two-byte form; it fits in the
     * padding of this block. */
    n = make_rtp(b, 0x10, EXT1, sizeof(EXT1), pl, sizeof(pl));
    memset(map, 0, sizeof(map));
    map[4] = 200;
    map[2] = 201;
    CHECK_EQ_INT(tm_rtp_ext_remap(b, n, map), (int)n);
    CHECK_EQ_INT(ext_find(b, n, 201, &d, &dl), 0);
    CHECK_EQ_INT(dl, 3);
    CHECK_EQ_INT(ext_find(b, n, 200, &d, &dl), 0);
    CHECK_EQ_INT(d[0], '1');
    /* A packed block would grow: refused, since the buffer may end at len. */
    const uint8_t packed[] = {0xbe, 0xde, 0, 2, 0x10, 'a', 0x20, 'b', 0x30, 'c', 0x40, 'd'};
    n = make_rtp(b, 0x10, packed, sizeof(packed), pl, sizeof(pl));
    for (int i = 1; i <= 4; i++)
        map[i] = (uint8_t)(100 + i);
    CHECK_EQ_INT(tm_rtp_ext_remap(b, n, map), TM_ETOOBIG);
    /* Truncated packets fail. */
    CHECK_EQ_INT(tm_rtp_ext_remap(b, 20, map), TM_EINVAL);
}

static void test_padding_kept_through_ext_edit(void)
{
    uint8_t b[64];
    const uint8_t pl[] = {7, 7, 0, 2};
    size_t n = make_rtp(b, 0x30, EXT1, sizeof(EXT1), pl, sizeof(pl));
    int r = ext_drop(b, n, 4);
    CHECK(r > 0);
    tm_rtp_header h;
    CHECK_EQ_INT(tm_rtp_parse(b, (size_t)r, &h), 0);
    CHECK_EQ_INT(h.padding_len, 2);
    CHECK_EQ_INT(h.payload_len, 2);
}

static void test_rtx(void)
{
    uint8_t b[64], rtx[64];
    const uint8_t pl[] = {1, 2, 3, 0, 2};
    size_t n = make_rtp(b, 0x20, NULL, 0, pl, sizeof(pl));
    int r = build_rtx(rtx, sizeof(rtx), b, n, 0xabcdef01, 97, 500);
    CHECK_EQ_INT(r, 12 + 2 + 3);
    tm_rtp_header h;
    CHECK_EQ_INT(tm_rtp_parse(rtx, (size_t)r, &h), 0);
    CHECK(!h.padding);
    CHECK_EQ_INT(h.ssrc, 0xabcdef01u);
    CHECK_EQ_INT(h.pt, 97);
    CHECK_EQ_INT(h.seq, 500);
    CHECK_EQ_INT(h.ts, 0xdeadbeefu);
    CHECK(h.marker);
    CHECK_EQ_INT(rtx[12], 0x12);
    CHECK_EQ_INT(rtx[13], 0x34);
    CHECK_EQ_INT(build_rtx(rtx, 16, b, n, 1, 97, 1), TM_ETOOBIG);
    r = tm_rtp_unwrap_rtx(rtx, (size_t)r, 0x11223344, 96);
    CHECK_EQ_INT(r, 15);
    CHECK_EQ_INT(tm_rtp_parse(rtx, (size_t)r, &h), 0);
    CHECK_EQ_INT(h.seq, 0x1234);
    CHECK_EQ_INT(h.pt, 96);
    CHECK_EQ_INT(h.ssrc, 0x11223344u);
    CHECK_EQ_INT(memcmp(rtx + 12, pl, 3), 0);
    CHECK_EQ_INT(tm_rtp_unwrap_rtx(rtx, 13, 1, 1), TM_EINVAL);
}

/* A VP8 keyframe start: frame tag (P=0), start code, 640x480. */
static const uint8_t VP8_KEY[] = {0x50, 0x01, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01, 0x00};

static void test_vp8(void)
{
    uint8_t p[64];
    tm_vp8_info vi;
    /* Minimal descriptor: S=1 PID=0. */
    p[0] = 0x10;
    memcpy(p + 1, VP8_KEY, sizeof(VP8_KEY));
    CHECK_EQ_INT(tm_vp8_parse(p, 1 + sizeof(VP8_KEY), &vi), 0);
    CHECK(vi.frame_start && vi.keyframe);
    CHECK_EQ_INT(vi.width, 640);
    CHECK_EQ_INT(vi.height, 480);
    CHECK_EQ_INT(vi.header_len, 1);
    CHECK_EQ_INT(vi.picture_id, -1);
    CHECK(tm_rtp_is_keyframe(TM_CODEC_VP8, p, 1 + sizeof(VP8_KEY)));

    /* Extended: X, I with 15-bit picture id, L, T/K. */
    p[0] = 0x90;
    p[1] = 0xf0;
    p[2] = 0x80 | 0x12;
    p[3] = 0x34;
    p[4] = 0x05; /* TL0PICIDX */
    p[5] = 0x40; /* TID/Y/KEYIDX */
    memcpy(p + 6, VP8_KEY, sizeof(VP8_KEY));
    size_t n = 6 + sizeof(VP8_KEY);
    CHECK_EQ_INT(tm_vp8_parse(p, n, &vi), 0);
    CHECK(vi.keyframe);
    CHECK_EQ_INT(vi.picture_id, 0x1234);
    CHECK_EQ_INT(vi.header_len, 6);
    CHECK_EQ_INT(vi.width, 640);
    /* 7-bit picture id. */
    p[2] = 0x12;
    memmove(p + 3, p + 4, n - 4);
    CHECK_EQ_INT(tm_vp8_parse(p, n - 1, &vi), 0);
    CHECK_EQ_INT(vi.picture_id, 0x12);
    CHECK(vi.keyframe);

    /* Interframe: P bit set. */
    p[0] = 0x10;
    memcpy(p + 1, VP8_KEY, sizeof(VP8_KEY));
    p[1] |= 0x01;
    CHECK_EQ_INT(tm_vp8_parse(p, 1 + sizeof(VP8_KEY), &vi), 0);
    CHECK(vi.frame_start && !vi.keyframe);
    /* Not the first partition, or no S bit: not a frame start. */
    memcpy(p + 1, VP8_KEY, sizeof(VP8_KEY));
    p[0] = 0x11;
    CHECK_EQ_INT(tm_vp8_parse(p, 1 + sizeof(VP8_KEY), &vi), 0);
    CHECK(!vi.frame_start && !vi.keyframe);
    p[0] = 0x00;
    CHECK_EQ_INT(tm_vp8_parse(p, 1 + sizeof(VP8_KEY), &vi), 0);
    CHECK(!vi.keyframe);
    /* Bad start code. */
    p[0] = 0x10;
    p[4] = 0x00;
    CHECK_EQ_INT(tm_vp8_parse(p, 1 + sizeof(VP8_KEY), &vi), 0);
    CHECK(!vi.keyframe);
    /* Truncated descriptors. */
    const uint8_t t1[] = {0x90};
    const uint8_t t2[] = {0x90, 0x80};
    const uint8_t t3[] = {0x90, 0x80, 0x80};
    const uint8_t t4[] = {0x90, 0x40};
    const uint8_t t5[] = {0x10};
    CHECK_EQ_INT(tm_vp8_parse(t1, sizeof(t1), &vi), TM_EINVAL);
    CHECK_EQ_INT(tm_vp8_parse(t2, sizeof(t2), &vi), TM_EINVAL);
    CHECK_EQ_INT(tm_vp8_parse(t3, sizeof(t3), &vi), TM_EINVAL);
    CHECK_EQ_INT(tm_vp8_parse(t4, sizeof(t4), &vi), TM_EINVAL);
    CHECK_EQ_INT(tm_vp8_parse(t5, sizeof(t5), &vi), TM_EINVAL);
    CHECK_EQ_INT(tm_vp8_parse(p, 0, &vi), TM_EINVAL);
    /* A keyframe tag cut before the size: a frame start but not a keyframe. */
    p[0] = 0x10;
    memcpy(p + 1, VP8_KEY, sizeof(VP8_KEY));
    CHECK_EQ_INT(tm_vp8_parse(p, 6, &vi), 0);
    CHECK(vi.frame_start && !vi.keyframe);
}

static void test_h264(void)
{
    const uint8_t idr[] = {0x65, 0x88, 0x80};
    const uint8_t sps[] = {0x67, 0x42, 0xe0, 0x1f};
    const uint8_t slice[] = {0x41, 0x9a};
    const uint8_t sei[] = {0x06, 0x05};
    CHECK(tm_h264_is_keyframe(idr, sizeof(idr)));
    CHECK(tm_h264_is_keyframe(sps, sizeof(sps)));
    CHECK(!tm_h264_is_keyframe(slice, sizeof(slice)));
    CHECK(!tm_h264_is_keyframe(sei, sizeof(sei)));
    CHECK(tm_rtp_is_keyframe(TM_CODEC_H264, idr, sizeof(idr)));
    CHECK(!tm_rtp_is_keyframe(TM_CODEC_OPUS, idr, sizeof(idr)));
    /* STAP-A with SEI then SPS. */
    const uint8_t stap[] = {0x78, 0x00, 0x02, 0x06, 0x05, 0x00, 0x04, 0x67, 0x42, 0xe0, 0x1f};
    CHECK(tm_h264_is_keyframe(stap, sizeof(stap)));
    const uint8_t stap_nokey[] = {0x78, 0x00, 0x02, 0x41, 0x9a};
    CHECK(!tm_h264_is_keyframe(stap_nokey, sizeof(stap_nokey)));
    /* STAP-A whose size runs past the end, or a zero size. */
    const uint8_t stap_bad[] = {0x78, 0x00, 0x09, 0x67, 0x42};
    CHECK(!tm_h264_is_keyframe(stap_bad, sizeof(stap_bad)));
    const uint8_t stap_zero[] = {0x78, 0x00, 0x00, 0x00, 0x01, 0x65};
    CHECK(!tm_h264_is_keyframe(stap_zero, sizeof(stap_zero)));
    /* FU-A: start of an IDR, middle of an IDR, start of a non-IDR slice. */
    const uint8_t fu_start[] = {0x7c, 0x85, 0x00};
    const uint8_t fu_mid[] = {0x7c, 0x05, 0x00};
    const uint8_t fu_slice[] = {0x7c, 0x81, 0x00};
    CHECK(tm_h264_is_keyframe(fu_start, sizeof(fu_start)));
    CHECK(!tm_h264_is_keyframe(fu_mid, sizeof(fu_mid)));
    CHECK(!tm_h264_is_keyframe(fu_slice, sizeof(fu_slice)));
    CHECK(!tm_h264_is_keyframe(fu_start, 1));
    CHECK(!tm_h264_is_keyframe(NULL, 0));
    CHECK_EQ_INT(tm_codec_from_name("opus"), TM_CODEC_OPUS);
    CHECK_EQ_INT(tm_codec_from_name("vp8"), TM_CODEC_VP8);
    CHECK_EQ_INT(tm_codec_from_name("H264"), TM_CODEC_H264);
    CHECK_EQ_INT(tm_codec_from_name("VP9"), TM_CODEC_UNKNOWN);
}

/* SPS from real encoders; the sizes are what GStreamer's h264parse reports. */
static void test_h264_sps_size(void)
{
    const uint8_t cb_1080[] = {0x67, 0x42, 0xc0, 0x28, 0x8c, 0x8d, 0x40, 0x3c,
                               0x01, 0x13, 0xf2, 0xc0, 0x3c, 0x22, 0x11, 0xa8}; /* openh264 */
    const uint8_t cb_720[] = {0x67, 0x42, 0xc0, 0x1f, 0x8c, 0x8d, 0x40, 0x28,
                              0x02, 0xdd, 0x00, 0xf0, 0x88, 0x46, 0xa0};
    const uint8_t cb_322[] = {0x67, 0x42, 0xc0, 0x0d, 0x8c, 0x8d, 0x40, 0xa8,
                              0x42, 0xc4, 0x44, 0x40, 0x3c, 0x22, 0x11, 0xa8};
    /* High profile (x264) with emulation prevention bytes. */
    const uint8_t high_1080[] = {0x67, 0x64, 0x00, 0x2a, 0xac, 0xd9, 0x40, 0x78, 0x02,
                                 0x27, 0xe5, 0xc0, 0x44, 0x00, 0x00, 0x03, 0x00, 0x04,
                                 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x60, 0xc6, 0x58};
    uint16_t w = 0, h = 0;
    CHECK_EQ_INT(tm_h264_sps_size(cb_1080, sizeof(cb_1080), &w, &h), 0);
    CHECK_EQ_INT(w, 1920);
    CHECK_EQ_INT(h, 1080);
    CHECK_EQ_INT(tm_h264_sps_size(cb_720, sizeof(cb_720), &w, &h), 0);
    CHECK_EQ_INT(w, 1280);
    CHECK_EQ_INT(h, 720);
    CHECK_EQ_INT(tm_h264_sps_size(cb_322, sizeof(cb_322), &w, &h), 0);
    CHECK_EQ_INT(w, 322);
    CHECK_EQ_INT(h, 242);
    CHECK_EQ_INT(tm_h264_sps_size(high_1080, sizeof(high_1080), &w, &h), 0);
    CHECK_EQ_INT(w, 1920);
    CHECK_EQ_INT(h, 1080);
    /* In a STAP-A after an SEI, as browsers send SPS+PPS+IDR. */
    uint8_t stap[64] = {0x78, 0x00, 0x02, 0x06, 0x05, 0x00, sizeof(cb_720)};
    memcpy(stap + 7, cb_720, sizeof(cb_720));
    CHECK_EQ_INT(tm_h264_sps_size(stap, 7 + sizeof(cb_720), &w, &h), 0);
    CHECK_EQ_INT(w, 1280);
    /* No SPS, or cut short. */
    const uint8_t idr[] = {0x65, 0x88, 0x80};
    CHECK_EQ_INT(tm_h264_sps_size(idr, sizeof(idr), &w, &h), TM_ENOTFOUND);
    for (size_t n = 1; n < 9; n++)
        CHECK_EQ_INT(tm_h264_sps_size(cb_720, n, &w, &h), TM_EINVAL);
    CHECK_EQ_INT(tm_h264_sps_size(stap, 7 + 4, &w, &h), TM_EINVAL);
}

static void test_seq(void)
{
    CHECK(tm_seq_newer(1, 0));
    CHECK(tm_seq_newer(0, 65535));
    CHECK(!tm_seq_newer(65535, 0));
    CHECK(!tm_seq_newer(5, 5));
    CHECK_EQ_INT(tm_seq_diff(2, 65534), 4);
    CHECK_EQ_INT(tm_seq_diff(65534, 2), -4);
    CHECK(tm_ts_newer(10, 0xfffffff0u));

    tm_seq_tracker t;
    tm_seq_tracker_init(&t);
    CHECK_EQ_INT(tm_seq_tracker_update(&t, 65534), 65534);
    CHECK_EQ_INT(tm_seq_tracker_update(&t, 65535), 65535);
    CHECK_EQ_INT(tm_seq_tracker_update(&t, 1), 65536 + 1); /* wrap, 0 lost */
    CHECK_EQ_INT(tm_seq_tracker_update(&t, 0), 65536 + 0); /* late */
    CHECK_EQ_INT(tm_seq_tracker_update(&t, 65533), 65533); /* very late, previous cycle */
    CHECK_EQ_INT(tm_seq_tracker_max(&t), 65537);
    CHECK_EQ_INT(t.base_seq, 65534);
    CHECK_EQ_INT(tm_seq_tracker_update(&t, 2), 65538);
}

int main(void)
{
    RUN(test_demux);
    RUN(test_parse_plain_and_csrc);
    RUN(test_parse_padding);
    RUN(test_ext_find);
    RUN(test_rewrite_fields);
    RUN(test_ext_remove_and_remap);
    RUN(test_padding_kept_through_ext_edit);
    RUN(test_rtx);
    RUN(test_vp8);
    RUN(test_h264);
    RUN(test_h264_sps_size);
    RUN(test_seq);
    TEST_DONE();
}

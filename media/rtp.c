/*
 * rtp.c - RTP header parse, in-place rewrite, RFC 8285 header extension
 * remap, rtx unwrapping, VP8/H.264 keyframe detection and sequence tracking.
 *
 * Hot-path code: no allocation, no logging, nothing trusted. A remap that
 * changes the block size works through a small stack copy of the new block
 * and one memmove of the payload, so it stays in the caller's buffer.
 * Runs on the calling media worker thread; no state of its own.
 */
#include "rtp.h"

#include <string.h>
#include <strings.h>

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

tm_packet_kind_t tm_packet_kind(const uint8_t *buf, size_t len)
{
    if (!buf || len < 1)
        return TM_PKT_UNKNOWN;
    uint8_t b = buf[0];
    if (b <= 3)
        return len >= 20 ? TM_PKT_STUN : TM_PKT_UNKNOWN;
    if (b >= 20 && b <= 63)
        return len >= 13 ? TM_PKT_DTLS : TM_PKT_UNKNOWN;
    if (b >= 128 && b <= 191) {
        if (len < 2)
            return TM_PKT_UNKNOWN;
        if (buf[1] >= 192 && buf[1] <= 223)
            return len >= 8 ? TM_PKT_RTCP : TM_PKT_UNKNOWN;
        return len >= TM_RTP_HEADER_MIN ? TM_PKT_RTP : TM_PKT_UNKNOWN;
    }
    return TM_PKT_UNKNOWN;
}

int tm_rtp_parse(const uint8_t *buf, size_t len, tm_rtp_header *out)
{
    if (!buf || !out || len < TM_RTP_HEADER_MIN)
        return TM_EINVAL;
    memset(out, 0, sizeof(*out));
    out->version = buf[0] >> 6;
    if (out->version != 2)
        return TM_EINVAL;
    out->padding = (buf[0] & 0x20) != 0;
    out->extension = (buf[0] & 0x10) != 0;
    out->csrc_count = buf[0] & 0x0f;
    out->marker = (buf[1] & 0x80) != 0;
    out->pt = buf[1] & 0x7f;
    out->seq = rd16(buf + 2);
    out->ts = rd32(buf + 4);
    out->ssrc = rd32(buf + 8);

    size_t off = TM_RTP_HEADER_MIN + 4u * out->csrc_count;
    if (off > len)
        return TM_EINVAL;
    if (out->extension) {
        if (off + 4 > len)
            return TM_EINVAL;
        out->ext_profile = rd16(buf + off);
        out->ext_len = 4u * rd16(buf + off + 2);
        out->ext_offset = off + 4;
        if (out->ext_len > len - out->ext_offset)
            return TM_EINVAL;
        off = out->ext_offset + out->ext_len;
    }
    out->header_len = off;
    out->payload_offset = off;
    if (out->padding) {
        if (len == off)
            return TM_EINVAL;
        out->padding_len = buf[len - 1];
        if (out->padding_len == 0 || out->padding_len > len - off)
            return TM_EINVAL;
    }
    out->payload_len = len - off - out->padding_len;
    return 0;
}

/* ---- Header extensions ---- */

typedef struct ext_el {
    uint8_t id;
    uint8_t len;
    size_t off; /* offset of the element's data in the packet */
} ext_el;

enum { EXT_NONE, EXT_ONE, EXT_TWO, EXT_OTHER };

static int ext_form(const tm_rtp_header *h)
{
    if (!h->extension)
        return EXT_NONE;
    if (h->ext_profile == TM_RTP_EXT_ONE_BYTE)
        return EXT_ONE;
    if ((h->ext_profile & 0xfff0) == TM_RTP_EXT_TWO_BYTE)
        return EXT_TWO;
    return EXT_OTHER;
}

/* List the elements of an RFC 8285 block. Returns the count or TM_EINVAL. */
static int ext_list(const uint8_t *buf, const tm_rtp_header *h, ext_el *els)
{
    int form = ext_form(h);
    if (form != EXT_ONE && form != EXT_TWO)
        return 0;
    const uint8_t *d = buf + h->ext_offset;
    size_t n = h->ext_len, i = 0;
    int count = 0;
    while (i < n) {
        if (d[i] == 0) { /* padding byte between or after elements */
            i++;
            continue;
        }
        uint8_t id, l;
        size_t hdr;
        if (form == EXT_ONE) {
            id = d[i] >> 4;
            l = (uint8_t)((d[i] & 0x0f) + 1);
            hdr = 1;
            if (id == 15) /* reserved: stop parsing, per RFC 8285 4.2 */
                break;
        } else {
            if (i + 1 >= n)
                return TM_EINVAL;
            id = d[i];
            l = d[i + 1];
            hdr = 2;
        }
        if (l > n - i - hdr)
            return TM_EINVAL;
        if (count >= TM_RTP_EXT_MAX_ELEMENTS)
            return TM_EINVAL;
        els[count].id = id;
        els[count].len = l;
        els[count].off = h->ext_offset + i + hdr;
        count++;
        i += hdr + l;
    }
    return count;
}

int tm_rtp_ext_find(const uint8_t *buf, const tm_rtp_header *h, int id, const uint8_t **data)
{
    ext_el els[TM_RTP_EXT_MAX_ELEMENTS];
    int n = id > 0 ? ext_list(buf, h, els) : 0;
    for (int i = 0; i < n; i++) {
        if (els[i].id == id) {
            *data = buf + els[i].off;
            return els[i].len;
        }
    }
    return n < 0 ? TM_EINVAL : TM_ENOTFOUND;
}

/* Largest extension block we rebuild; an RTP packet over UDP is smaller. */
#define EXT_TMP_MAX 2048

/* An element of the block to write: data points into the packet or the caller. */
typedef struct ext_out {
    uint8_t id;
    uint8_t len;
    const uint8_t *data;
} ext_out;

/*
 * Replace the packet's extension block by els (in one-byte form when every
 * element allows it), moving the payload. Returns the new length.
 */
static int ext_rewrite(uint8_t *buf, size_t len, size_t cap, const tm_rtp_header *h,
                       const ext_out *els, int n)
{
    uint8_t tmp[EXT_TMP_MAX];
    bool one = true;
    for (int i = 0; i < n; i++)
        if (els[i].id < 1 || els[i].id > 14 || els[i].len < 1 || els[i].len > 16)
            one = false;
    size_t bl = 0;
    for (int i = 0; i < n; i++) {
        size_t need = (one ? 1u : 2u) + els[i].len;
        if (bl + need > sizeof(tmp))
            return TM_ETOOBIG;
        if (one) {
            tmp[bl] = (uint8_t)((els[i].id << 4) | (els[i].len - 1));
            bl++;
        } else {
            tmp[bl] = els[i].id;
            tmp[bl + 1] = els[i].len;
            bl += 2;
        }
        memcpy(tmp + bl, els[i].data, els[i].len);
        bl += els[i].len;
    }
    while (bl % 4)
        tmp[bl++] = 0;

    size_t start = TM_RTP_HEADER_MIN + 4u * h->csrc_count; /* where the block begins */
    size_t old_hdr = h->header_len;
    size_t new_hdr = start + (n ? 4 + bl : 0);
    size_t tail = len - old_hdr;
    if (new_hdr + tail > cap)
        return TM_ETOOBIG;
    if (new_hdr + tail > 0x7fffffff)
        return TM_ETOOBIG;
    memmove(buf + new_hdr, buf + old_hdr, tail);
    if (n) {
        wr16(buf + start, one ? TM_RTP_EXT_ONE_BYTE : TM_RTP_EXT_TWO_BYTE);
        wr16(buf + start + 2, (uint16_t)(bl / 4));
        memcpy(buf + start + 4, tmp, bl);
        buf[0] |= 0x10;
    } else {
        buf[0] &= (uint8_t)~0x10;
    }
    return (int)(new_hdr + tail);
}

int tm_rtp_ext_remap(uint8_t *buf, size_t len, const uint8_t map[256])
{
    tm_rtp_header h;
    ext_el els[TM_RTP_EXT_MAX_ELEMENTS];
    ext_out outs[TM_RTP_EXT_MAX_ELEMENTS];
    if (!map || len > 0x7fffffff || tm_rtp_parse(buf, len, &h) < 0)
        return TM_EINVAL;
    int n = ext_list(buf, &h, els);
    if (n < 0)
        return n;
    int form = ext_form(&h);
    if (form != EXT_ONE && form != EXT_TWO)
        return (int)len;
    /* The common case: nothing dropped and the ids still fit the block's
     * form, so only the id bits change. */
    bool in_place = true;
    int m = 0;
    for (int i = 0; i < n; i++) {
        uint8_t nid = map[els[i].id];
        if (nid == 0 || (form == EXT_ONE && nid > 14)) {
            in_place = false;
        }
        if (nid == 0)
            continue;
        outs[m].id = nid;
        outs[m].len = els[i].len;
        outs[m].data = buf + els[i].off;
        m++;
    }
    if (in_place) {
        for (int i = 0; i < n; i++) {
            uint8_t nid = map[els[i].id];
            if (form == EXT_ONE) {
                uint8_t *b = buf + els[i].off - 1;
                *b = (uint8_t)((nid << 4) | (*b & 0x0f));
            } else {
                buf[els[i].off - 2] = nid;
            }
        }
        return (int)len;
    }
    /* The caller's buffer may end at len: a block that would grow (a one-byte
     * id mapped above 14) fails with TM_ETOOBIG rather than write past it. */
    return ext_rewrite(buf, len, len, &h, outs, m);
}

/* ---- rtx ---- */

int tm_rtp_unwrap_rtx(uint8_t *buf, size_t len, uint32_t media_ssrc, uint8_t media_pt)
{
    tm_rtp_header h;
    if (tm_rtp_parse(buf, len, &h) < 0 || h.payload_len < 2)
        return TM_EINVAL;
    uint16_t osn = rd16(buf + h.payload_offset);
    memmove(buf + h.payload_offset, buf + h.payload_offset + 2, h.payload_len - 2);
    buf[0] &= (uint8_t)~0x20;
    tm_rtp_set_ssrc(buf, media_ssrc);
    tm_rtp_set_pt(buf, media_pt);
    tm_rtp_set_seq(buf, osn);
    return (int)(h.header_len + h.payload_len - 2);
}

/* ---- Codecs ---- */

int tm_vp8_parse(const uint8_t *p, size_t len, tm_vp8_info *out)
{
    if (!p || !out || len < 1)
        return TM_EINVAL;
    memset(out, 0, sizeof(*out));
    out->picture_id = -1;
    size_t i = 0;
    uint8_t b0 = p[i++];
    out->start_of_partition = (b0 & 0x10) != 0;
    out->partition_index = b0 & 0x07;
    if (b0 & 0x80) { /* X: extended control bits */
        if (i >= len)
            return TM_EINVAL;
        uint8_t x = p[i++];
        if (x & 0x80) { /* I: picture id, 7 or 15 bits */
            if (i >= len)
                return TM_EINVAL;
            out->picture_id_off = i;
            if (p[i] & 0x80) {
                if (i + 1 >= len)
                    return TM_EINVAL;
                out->picture_id = ((p[i] & 0x7f) << 8) | p[i + 1];
                out->picture_id_long = true;
                i += 2;
            } else {
                out->picture_id = p[i] & 0x7f;
                i += 1;
            }
        }
        if (x & 0x40) { /* L: TL0PICIDX */
            if (i >= len)
                return TM_EINVAL;
            out->tl0picidx_off = i;
            i++;
        }
        if (x & 0x30) { /* T or K: TID/Y/KEYIDX byte */
            if (i >= len)
                return TM_EINVAL;
            i++;
        }
    }
    if (i >= len)
        return TM_EINVAL; /* a descriptor with no VP8 payload */
    out->header_len = i;
    out->frame_start = out->start_of_partition && out->partition_index == 0;
    if (!out->frame_start)
        return 0;
    /* VP8 frame tag (RFC 6386 9.1): 3 bytes, bit 0 = !keyframe; a keyframe
     * then has the start code 9d 01 2a and 14-bit width and height. */
    const uint8_t *f = p + i;
    size_t fl = len - i;
    if (f[0] & 0x01)
        return 0;
    if (fl >= 10 && f[3] == 0x9d && f[4] == 0x01 && f[5] == 0x2a) {
        out->keyframe = true;
        out->width = (uint16_t)((f[6] | (f[7] << 8)) & 0x3fff);
        out->height = (uint16_t)((f[8] | (f[9] << 8)) & 0x3fff);
    }
    return 0;
}

static bool h264_key_nal(uint8_t type)
{
    return type == 5 || type == 7;
}

bool tm_h264_is_keyframe(const uint8_t *p, size_t len)
{
    if (!p || len < 1)
        return false;
    uint8_t type = p[0] & 0x1f;
    if (type >= 1 && type <= 23)
        return h264_key_nal(type);
    if (type == 24) { /* STAP-A: (16-bit size, NAL)* */
        size_t i = 1;
        while (i + 2 <= len) {
            size_t sz = rd16(p + i);
            i += 2;
            if (sz == 0 || sz > len - i)
                return false;
            if (h264_key_nal(p[i] & 0x1f))
                return true;
            i += sz;
        }
        return false;
    }
    if (type == 28) { /* FU-A: indicator, header (S E R type) */
        if (len < 2)
            return false;
        return (p[1] & 0x80) && h264_key_nal(p[1] & 0x1f);
    }
    return false;
}

/* Exp-Golomb reader over an RBSP (emulation prevention bytes removed). */
typedef struct bitr {
    const uint8_t *p;
    size_t len_bits;
    size_t pos;
    bool err;
} bitr;

static uint32_t br_bit(bitr *b)
{
    if (b->pos >= b->len_bits) {
        b->err = true;
        return 0;
    }
    uint32_t v = (b->p[b->pos >> 3] >> (7 - (b->pos & 7))) & 1;
    b->pos++;
    return v;
}

static uint32_t br_bits(bitr *b, int n)
{
    uint32_t v = 0;
    while (n--)
        v = (v << 1) | br_bit(b);
    return v;
}

static uint32_t br_ue(bitr *b)
{
    int zeros = 0;
    while (!b->err && br_bit(b) == 0) {
        if (++zeros > 31) {
            b->err = true;
            return 0;
        }
    }
    if (b->err)
        return 0;
    return (uint32_t)((1ull << zeros) - 1 + br_bits(b, zeros));
}

static int32_t br_se(bitr *b)
{
    uint32_t k = br_ue(b);
    return (k & 1) ? (int32_t)((k + 1) / 2) : -(int32_t)(k / 2);
}

static void skip_scaling_list(bitr *b, int size)
{
    int32_t last = 8, next = 8;
    for (int j = 0; j < size && !b->err; j++) {
        if (next != 0) {
            int32_t delta = br_se(b);
            next = (last + delta + 256) % 256;
        }
        last = next == 0 ? last : next;
    }
}

/* ITU-T H.264 7.3.2.1.1, as far as the picture size. */
static int sps_size(const uint8_t *nal, size_t len, uint16_t *width, uint16_t *height)
{
    uint8_t rbsp[256];
    size_t n = 0, zeros = 0;
    for (size_t i = 1; i < len && n < sizeof(rbsp); i++) { /* skip the NAL header */
        if (zeros >= 2 && nal[i] == 3) {
            zeros = 0;
            continue;
        }
        zeros = nal[i] == 0 ? zeros + 1 : 0;
        rbsp[n++] = nal[i];
    }
    bitr b = {rbsp, n * 8, 0, false};
    uint32_t profile = br_bits(&b, 8);
    br_bits(&b, 16); /* constraint flags, level */
    br_ue(&b);       /* seq_parameter_set_id */
    uint32_t chroma = 1;
    if (profile == 100 || profile == 110 || profile == 122 || profile == 244 || profile == 44 ||
        profile == 83 || profile == 86 || profile == 118 || profile == 128 || profile == 138 ||
        profile == 139 || profile == 134 || profile == 135) {
        chroma = br_ue(&b);
        if (chroma > 3)
            return TM_EINVAL;
        if (chroma == 3)
            br_bit(&b); /* separate_colour_plane_flag */
        br_ue(&b);      /* bit_depth_luma_minus8 */
        br_ue(&b);      /* bit_depth_chroma_minus8 */
        br_bit(&b);     /* qpprime_y_zero_transform_bypass_flag */
        if (br_bit(&b)) /* seq_scaling_matrix_present_flag */
            for (int i = 0; i < (chroma != 3 ? 8 : 12) && !b.err; i++)
                if (br_bit(&b))
                    skip_scaling_list(&b, i < 6 ? 16 : 64);
    }
    br_ue(&b); /* log2_max_frame_num_minus4 */
    uint32_t poc_type = br_ue(&b);
    if (poc_type == 0) {
        br_ue(&b);
    } else if (poc_type == 1) {
        br_bit(&b);
        br_se(&b);
        br_se(&b);
        uint32_t cycle = br_ue(&b);
        if (cycle > 255)
            return TM_EINVAL;
        for (uint32_t i = 0; i < cycle && !b.err; i++)
            br_se(&b);
    } else if (poc_type != 2) {
        return TM_EINVAL;
    }
    br_ue(&b);  /* max_num_ref_frames */
    br_bit(&b); /* gaps_in_frame_num_value_allowed_flag */
    uint32_t w_mbs = br_ue(&b) + 1;
    uint32_t h_units = br_ue(&b) + 1;
    uint32_t frame_mbs_only = br_bit(&b);
    if (!frame_mbs_only)
        br_bit(&b); /* mb_adaptive_frame_field_flag */
    br_bit(&b);     /* direct_8x8_inference_flag */
    uint32_t cl = 0, cr = 0, ct = 0, cb = 0;
    if (br_bit(&b)) {
        cl = br_ue(&b);
        cr = br_ue(&b);
        ct = br_ue(&b);
        cb = br_ue(&b);
    }
    if (b.err || w_mbs > 1024 || h_units > 1024)
        return TM_EINVAL;
    /* Crop units (Table 6-1): 4:2:0 crops in pairs of luma samples. */
    uint32_t cux = (chroma == 1 || chroma == 2) ? 2 : 1;
    uint32_t cuy = (chroma == 1 ? 2 : 1) * (2 - frame_mbs_only);
    uint64_t w = (uint64_t)w_mbs * 16, h = (uint64_t)h_units * 16 * (2 - frame_mbs_only);
    uint64_t crop_w = (uint64_t)cux * (cl + cr), crop_h = (uint64_t)cuy * (ct + cb);
    if (crop_w >= w || crop_h >= h)
        return TM_EINVAL;
    *width = (uint16_t)(w - crop_w);
    *height = (uint16_t)(h - crop_h);
    return 0;
}

int tm_h264_sps_size(const uint8_t *p, size_t len, uint16_t *width, uint16_t *height)
{
    if (!p || !width || !height || len < 1)
        return TM_EINVAL;
    uint8_t type = p[0] & 0x1f;
    if (type == 7)
        return sps_size(p, len, width, height);
    if (type == 24) {
        size_t i = 1;
        while (i + 2 <= len) {
            size_t sz = rd16(p + i);
            i += 2;
            if (sz == 0 || sz > len - i)
                return TM_EINVAL;
            if ((p[i] & 0x1f) == 7)
                return sps_size(p + i, sz, width, height);
            i += sz;
        }
    }
    return TM_ENOTFOUND;
}

tm_codec_id tm_codec_from_name(const char *name)
{
    if (!name)
        return TM_CODEC_UNKNOWN;
    if (strcasecmp(name, "opus") == 0)
        return TM_CODEC_OPUS;
    if (strcasecmp(name, "VP8") == 0)
        return TM_CODEC_VP8;
    if (strcasecmp(name, "H264") == 0)
        return TM_CODEC_H264;
    return TM_CODEC_UNKNOWN;
}

bool tm_rtp_is_keyframe(tm_codec_id codec, const uint8_t *payload, size_t len)
{
    if (codec == TM_CODEC_VP8) {
        tm_vp8_info vi;
        return tm_vp8_parse(payload, len, &vi) == 0 && vi.keyframe;
    }
    if (codec == TM_CODEC_H264)
        return tm_h264_is_keyframe(payload, len);
    return false;
}

/* ---- Sequence numbers ---- */

uint32_t tm_seq_tracker_update(tm_seq_tracker *t, uint16_t seq)
{
    if (!t->started) {
        t->started = true;
        t->max_seq = seq;
        t->cycles = 0;
        t->base_seq = seq;
        return seq;
    }
    uint16_t delta = (uint16_t)(seq - t->max_seq);
    if (delta < 0x8000) {
        if (seq < t->max_seq)
            t->cycles += 0x10000;
        t->max_seq = seq;
        return t->cycles | seq;
    }
    /* Older than max: if numerically above max it belongs to the previous cycle. */
    if (seq > t->max_seq && t->cycles >= 0x10000)
        return (t->cycles - 0x10000) | seq;
    return t->cycles | seq;
}

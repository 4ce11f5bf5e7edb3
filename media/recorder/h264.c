/*
 * h264.c - H.264 access units out of RTP (RFC 6184, packetization-mode 1)
 * for the recorder's Matroska file: single NAL units, STAP-A and FU-A taken
 * apart into length-prefixed NAL units (4 bytes, as the avcC says), one
 * access unit per RTP timestamp (ended by the marker bit or the next
 * timestamp), a keyframe being a unit with an IDR slice. The latest SPS and
 * PPS give the track's avcC and picture size (rtp.c's SPS reader); they
 * also stay in the stream, where browsers send them before each IDR.
 *
 * Done here, not by rtph264depay ! h264parse, because those cost about 25
 * times the recorder's own path per packet (tests/bench/README.md, "H.264
 * in the recorder"), and so GStreamer is not linked into the server. As for
 * VP8, a unit with a packet missing or one that does not parse is dropped,
 * and so is every unit after it until a keyframe. A unit is built straight
 * into the track's fdata, one copy of each payload. Recorder thread.
 */
#include "h264.h"
#include "recorder_internal.h"

#include "telemed/common.h"
#include "../rtp.h"

#include <string.h>

enum { NAL_IDR = 5, NAL_SPS = 7, NAL_PPS = 8, NAL_STAP_A = 24, NAL_FU_A = 28 };

/* Far above any frame a browser sends: a unit that grows past it (one
 * timestamp and no marker, forever) is dropped, not held in memory. */
enum { MAX_UNIT_BYTES = 8 << 20 };

/* ---- parameter sets --------------------------------------------------- */

int tm__h264_avcc(const uint8_t *sps, size_t sps_len, const uint8_t *pps, size_t pps_len,
                  GByteArray *out)
{
    if (sps_len < 4 || sps_len > 0xffff || pps_len < 1 || pps_len > 0xffff)
        return TM_EINVAL;
    /* version 1, profile, compatibility, level, 4-byte lengths, one SPS */
    uint8_t head[8] = {
        1, sps[1], sps[2], sps[3], 0xff, 0xe1, (uint8_t)(sps_len >> 8), (uint8_t)sps_len};
    uint8_t mid[3] = {1, (uint8_t)(pps_len >> 8), (uint8_t)pps_len}; /* one PPS */
    g_byte_array_append(out, head, sizeof head);
    g_byte_array_append(out, sps, (guint)sps_len);
    g_byte_array_append(out, mid, sizeof mid);
    g_byte_array_append(out, pps, (guint)pps_len);
    return 0;
}

/* Keeps a copy of a parameter set when it differs from the one kept. */
static void keep_param(tm_rec_track *t, GBytes **kept, const uint8_t *nal, size_t n)
{
    if (*kept && g_bytes_get_size(*kept) == n && memcmp(g_bytes_get_data(*kept, NULL), nal, n) == 0)
        return;
    if (*kept)
        g_bytes_unref(*kept);
    *kept = g_bytes_new(nal, n);
    t->params_changed = true;
}

/* The track's avcC and picture size from its latest SPS and PPS. */
static void take_params(tm_rec_track *t)
{
    gsize sl, pl;
    const uint8_t *sps = g_bytes_get_data(t->sps, &sl), *pps = g_bytes_get_data(t->pps, &pl);
    GByteArray *avcc = g_byte_array_new();
    if (tm__h264_avcc(sps, sl, pps, pl, avcc) == 0) {
        if (t->codec_data)
            g_bytes_unref(t->codec_data);
        t->codec_data = g_byte_array_free_to_bytes(avcc);
    } else {
        g_byte_array_free(avcc, TRUE);
    }
    uint16_t w, h;
    if (tm_h264_sps_size(sps, sl, &w, &h) == 0) {
        t->width = w;
        t->height = h;
    }
    t->params_changed = false;
}

/* ---- access units ------------------------------------------------------ */

static void au_append(tm_rec_track *t, const uint8_t *d, size_t n)
{
    if (t->au_bad)
        return; /* it will be dropped: keep no more of it */
    if (t->au_len + n > MAX_UNIT_BYTES) {
        t->au_bad = true;
        return;
    }
    g_byte_array_append(t->fdata, d, (guint)n);
    t->au_len += (guint)n;
}

static void au_length(tm_rec_track *t, size_t n)
{
    uint8_t len[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    au_append(t, len, 4);
}

/* What a whole NAL unit of the unit says about it. */
static void note_nal(tm_rec_track *t, const uint8_t *nal, size_t n)
{
    switch (nal[0] & 0x1f) {
    case NAL_IDR:
        t->au_key = true;
        break;
    case NAL_SPS:
        keep_param(t, &t->sps, nal, n);
        break;
    case NAL_PPS:
        keep_param(t, &t->pps, nal, n);
        break;
    }
}

static void add_nal(tm_rec_track *t, const uint8_t *nal, size_t n)
{
    au_length(t, n);
    au_append(t, nal, n);
    note_nal(t, nal, n);
}

static void au_reset(tm_rec_track *t)
{
    t->au_len = 0;
    t->in_fu = t->au_key = t->au_bad = t->in_frame = false;
}

void tm__rec_h264_forget(tm_rec_track *t)
{
    g_byte_array_set_size(t->fdata, t->fdata->len - t->au_len);
    au_reset(t);
}

/* The unit is over: a frame in the track's queue, or dropped. */
static void au_end(tm_rec_track *t)
{
    bool whole = !t->au_bad && !t->in_fu;
    bool key = whole && t->au_key && t->sps && t->pps;
    if (!whole || t->au_len == 0 || (!key && t->want_key)) {
        t->want_key = t->want_key || !whole;
        tm__rec_h264_forget(t);
        return;
    }
    if (key) {
        t->want_key = false;
        if (t->params_changed || !t->codec_data)
            take_params(t);
    }
    tm_rec_frame f = {.pts = t->au_pts, .size = t->au_len, .key = key};
    g_array_append_val(t->frames, f);
    t->produced = true;
    au_reset(t);
}

static void fu_a(tm_rec_track *t, const uint8_t *p, size_t plen)
{
    if (plen < 3) {
        t->au_bad = true;
        return;
    }
    bool start = p[1] & 0x80, end = p[1] & 0x40;
    if (start) {
        if (t->in_fu)
            t->au_bad = true; /* the last one lost its end */
        t->in_fu = true;
        t->fu_at = t->au_len;
        au_length(t, 0);
        uint8_t hdr = (uint8_t)((p[0] & 0xe0) | (p[1] & 0x1f));
        au_append(t, &hdr, 1);
    } else if (!t->in_fu) {
        t->au_bad = true; /* its start was lost */
        return;
    }
    au_append(t, p + 2, plen - 2);
    if (!end)
        return;
    t->in_fu = false;
    if (t->au_bad)
        return;
    uint8_t *at = t->fdata->data + t->fdata->len - t->au_len + t->fu_at;
    size_t n = t->au_len - t->fu_at - 4;
    at[0] = (uint8_t)(n >> 24);
    at[1] = (uint8_t)(n >> 16);
    at[2] = (uint8_t)(n >> 8);
    at[3] = (uint8_t)n;
    note_nal(t, at + 4, n);
}

static void stap_a(tm_rec_track *t, const uint8_t *p, size_t plen)
{
    for (size_t i = 1; i < plen;) {
        size_t n = i + 2 <= plen ? (size_t)(p[i] << 8 | p[i + 1]) : 0;
        if (n == 0 || i + 2 + n > plen) {
            t->au_bad = true;
            return;
        }
        add_nal(t, p + i + 2, n);
        i += 2 + n;
    }
}

void tm__rec_h264_packet(tm_rec_track *t, const uint8_t *d, size_t off, size_t plen, uint64_t pts)
{
    uint32_t ts = (uint32_t)d[4] << 24 | (uint32_t)d[5] << 16 | (uint32_t)d[6] << 8 | d[7];
    bool marker = d[1] & 0x80;
    if (t->in_frame && ts != t->frame_rtp_ts)
        au_end(t); /* its marker packet was lost, or the sender sets none */
    if (!t->in_frame) {
        t->in_frame = true;
        t->frame_rtp_ts = ts;
        t->au_pts = pts;
    }
    const uint8_t *p = d + off;
    uint8_t type = plen ? p[0] & 0x1f : 0;
    if (plen == 0) {
        /* nothing in it; the marker still ends the unit */
    } else if (type >= 1 && type <= 23) {
        if (t->in_fu)
            t->au_bad = true;
        add_nal(t, p, plen);
    } else if (type == NAL_STAP_A) {
        stap_a(t, p, plen);
    } else if (type == NAL_FU_A) {
        fu_a(t, p, plen);
    } else {
        t->au_bad = true; /* STAP-B, MTAP, FU-B: not in packetization-mode 1 */
    }
    if (marker)
        au_end(t);
}

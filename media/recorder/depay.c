/*
 * depay.c - Opus and VP8 frames out of RTP, straight from the batch's arena
 * (H.264: h264.c).
 *
 * An Opus packet's payload is the frame (RFC 7587); a VP8 frame is the
 * payloads after the descriptor (RFC 7741) from the packet with S=1,
 * PartID=0 to the one with the marker bit. A frame is a list of payload
 * spans (no copy until the file), with the timestamps and keyframe flag
 * rtpopusdepay and rtpvp8depay gave; done here because those elements'
 * per-packet buffers were the larger half of the recorder's CPU. As
 * rtpvp8depay with wait-for-keyframe did, a VP8 frame with a packet missing
 * is dropped and so is every frame after it until a keyframe: a decoder
 * could not use them. Recorder thread.
 */
#include "recorder_internal.h"

/* Far above any frame a browser sends: a VP8 frame that never ends (one
 * timestamp and no marker, forever) is dropped, not held with its arenas. */
enum { MAX_FRAME_PACKETS = 4096 };

void tm__rec_track_init(tm_rec_track *t)
{
    t->want_key = t->codec != TM_REC_OPUS;
    t->channels = 2; /* as the SDP's opus/48000/2 says */
    t->frames = g_array_sized_new(FALSE, FALSE, sizeof(tm_rec_frame), 256);
    t->held = g_array_sized_new(FALSE, FALSE, sizeof(tm_rec_held), 64);
    if (t->codec == TM_REC_H264) {
        t->fdata = g_byte_array_sized_new(256 * 1024);
        return;
    }
    t->fparts = g_array_sized_new(FALSE, FALSE, sizeof(tm_rec_held), 512);
    if (t->codec == TM_REC_VP8)
        t->parts = g_array_sized_new(FALSE, FALSE, sizeof(tm_rec_held), 16);
}

/* The payload of an RTP packet (CSRCs, header extension and padding
 * skipped); false when it does not parse. */
static bool rtp_payload(const uint8_t *d, size_t len, size_t *off, size_t *plen)
{
    size_t hl = TM_REC_RTP_HDR + 4 * (size_t)(d[0] & 0x0f);
    if ((d[0] & 0x10) && len >= hl + 4)
        hl += 4 + 4 * (size_t)(d[hl + 2] << 8 | d[hl + 3]);
    size_t pad = (d[0] & 0x20) && len > 0 ? d[len - 1] : 0;
    if (hl + pad > len)
        return false;
    *off = hl;
    *plen = len - hl - pad;
    return true;
}

/* The payloads in parts, which make one frame of t, into its queue; takes
 * their arena references. */
static void queue_frame(tm_rec_track *t, const tm_rec_held *parts, guint n, uint64_t pts, bool key)
{
    tm_rec_frame f = {.pts = pts, .nparts = n, .key = key};
    for (guint i = 0; i < n; i++)
        f.size += parts[i].len;
    g_array_append_vals(t->fparts, parts, n);
    g_array_append_val(t->frames, f);
    t->produced = true;
}

static void vp8_forget_frame(tm_rec_track *t)
{
    for (guint i = 0; i < t->parts->len; i++)
        tm__rec_arena_unref(g_array_index(t->parts, tm_rec_held, i).arena);
    g_array_set_size(t->parts, 0);
    t->in_frame = false;
}

/* The payloads in t->parts make a whole frame: into the track's queue. */
static void vp8_emit(tm_rec_track *t, uint64_t pts)
{
    gsize size = 0;
    for (guint i = 0; i < t->parts->len; i++)
        size += g_array_index(t->parts, tm_rec_held, i).len;
    const tm_rec_held *first = &g_array_index(t->parts, tm_rec_held, 0);
    const uint8_t *f = first->arena->data + first->off;
    /* The frame tag (RFC 6386 9.1): bit 0 clear on a keyframe, whose first
     * partition starts with the start code and the picture size. */
    bool key = first->len >= 1 && !(f[0] & 0x01);
    if (key && (first->len < 10 || f[3] != 0x9d || f[4] != 0x01 || f[5] != 0x2a))
        key = false;
    if (size == 0 || (!key && t->want_key)) {
        vp8_forget_frame(t);
        return;
    }
    if (key) {
        t->want_key = false;
        /* The file's header gives the first keyframe's size; a later one
         * is in its keyframe, which is what decoders go by. */
        if (!t->width) {
            t->width = (f[6] | f[7] << 8) & 0x3fff;
            t->height = (f[8] | f[9] << 8) & 0x3fff;
        }
    }
    queue_frame(t, &g_array_index(t->parts, tm_rec_held, 0), t->parts->len, pts, key);
    g_array_set_size(t->parts, 0); /* their references went with them */
    t->in_frame = false;
}

/* One VP8 packet (the payload at off, plen of the packet h). Takes h's
 * arena reference. */
static void vp8_packet(tm_rec_track *t, tm_rec_held *h, const uint8_t *d, size_t off, size_t plen)
{
    const uint8_t *p = d + off;
    uint32_t ts = (uint32_t)d[4] << 24 | (uint32_t)d[5] << 16 | (uint32_t)d[6] << 8 | d[7];
    bool marker = d[1] & 0x80;
    /* The payload descriptor: X, S, PartID, then the optional I (picture
     * id, 7 or 15 bits), L (TL0PICIDX) and T/K bytes. */
    size_t dl = 1;
    if (plen >= 1 && (p[0] & 0x80)) {
        if (plen < 2)
            goto bad;
        uint8_t x = p[1];
        dl = 2;
        if (x & 0x80)
            dl += plen > dl && (p[dl] & 0x80) ? 2 : 1;
        if (x & 0x40)
            dl++;
        if (x & 0x30)
            dl++;
    }
    if (plen < dl)
        goto bad;
    bool start = (p[0] & 0x10) && (p[0] & 0x0f) == 0;
    if (t->in_frame && (start || ts != t->frame_rtp_ts)) {
        /* A new frame before the last one's marker: the last lost its end. */
        vp8_forget_frame(t);
        t->want_key = true;
    }
    if (start) {
        t->in_frame = true;
        t->frame_rtp_ts = ts;
    }
    if (!t->in_frame)
        goto bad; /* the frame's start was lost */
    if (t->parts->len >= MAX_FRAME_PACKETS) {
        vp8_forget_frame(t);
        t->want_key = true;
        goto bad;
    }
    h->off += (uint32_t)(off + dl);
    h->len = (uint32_t)(plen - dl);
    g_array_append_val(t->parts, *h);
    if (marker)
        vp8_emit(t, h->pts);
    return;
bad:
    tm__rec_arena_unref(h->arena);
}

void tm__rec_forget_frame(tm_rec_track *t)
{
    if (t->parts)
        vp8_forget_frame(t);
    else if (t->fdata)
        tm__rec_h264_forget(t);
}

void tm__rec_depay(tm_rec_track *t, tm_rec_held *h)
{
    const uint8_t *d = h->arena->data + h->off;
    size_t off, plen;
    bool gap = t->last_eseq && h->eseq != t->last_eseq + 1;
    t->last_eseq = h->eseq;
    if (!rtp_payload(d, h->len, &off, &plen)) {
        tm__rec_arena_unref(h->arena);
        return;
    }
    if (gap && t->codec != TM_REC_OPUS) {
        tm__rec_forget_frame(t); /* a packet is missing: no frame until a keyframe */
        t->want_key = true;
    }
    if (t->codec == TM_REC_VP8) {
        vp8_packet(t, h, d, off, plen);
        return;
    }
    if (t->codec == TM_REC_H264) {
        tm__rec_h264_packet(t, d, off, plen, h->pts);
        tm__rec_arena_unref(h->arena); /* the unit holds a copy */
        return;
    }
    if (plen == 0) {
        tm__rec_arena_unref(h->arena);
        return;
    }
    h->off += (uint32_t)off;
    h->len = (uint32_t)plen;
    queue_frame(t, h, 1, h->pts, true);
}

void tm__rec_track_free(tm_rec_track *t)
{
    g_free(t->name);
    if (t->held) {
        for (guint i = 0; i < t->held->len; i++)
            tm__rec_arena_unref(g_array_index(t->held, tm_rec_held, i).arena);
        g_array_free(t->held, TRUE);
    }
    tm__rec_forget_frame(t);
    tm__rec_clear_frames(t);
    if (t->parts)
        g_array_free(t->parts, TRUE);
    if (t->fdata)
        g_byte_array_free(t->fdata, TRUE);
    if (t->sps)
        g_bytes_unref(t->sps);
    if (t->pps)
        g_bytes_unref(t->pps);
    if (t->frames)
        g_array_free(t->frames, TRUE);
    if (t->fparts)
        g_array_free(t->fparts, TRUE);
    if (t->codec_data)
        g_bytes_unref(t->codec_data);
}

/*
 * fuzz_recorder.c - libFuzzer target for the recorder's path from packets to
 * Matroska bytes: RTP packets of an Opus, a VP8 and an H.264 track, in any
 * order, size and timing, through the reorder stage, the depayloaders, the
 * merge and the Matroska writer, in batches as the recorder thread runs
 * them. No thread, file or clock: the batches' bytes go to memory, and at
 * the end the stream must read back as whole EBML elements whose sizes add
 * up, with the Segment's patched size ending where the bytes end.
 *
 * The input is a list of packets, each: track and flags (1 byte), sequence
 * step (2), timestamp step (2), arrival step in ms (1), payload length (2),
 * then the payload.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "recorder_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { NTRACKS = 3, MAX_PAYLOAD = 1400 };

static const tm_recorder_codec codecs[NTRACKS] = {TM_REC_OPUS, TM_REC_VP8, TM_REC_H264};
static const uint8_t pts[NTRACKS] = {111, 96, 102};

typedef struct sender {
    uint16_t seq;
    uint32_t ts;
} sender;

/* The batch's bytes into the "file", whole clusters only. */
static void store(tm_recorder *r, GByteArray *file)
{
    tm__mkv_close_cluster(&r->mkv);
    if (r->out.oom)
        abort();
    g_byte_array_append(file, r->out.p, (guint)r->out.len);
    tm__mkv_consumed(&r->mkv);
}

/* One batch, as process() runs it: packets on, frames to the writer. */
static void batch(tm_recorder *r, int64_t now_ns, bool final, GByteArray *file)
{
    if (!r->first_arrival_ns)
        return;
    for (size_t i = 0; i < r->ntracks; i++)
        if (!r->tracks[i].ended)
            tm__rec_release(&r->tracks[i], now_ns - (int64_t)TM_REC_REORDER_MS * 1000000, final);
    tm__rec_close_window(r, now_ns, final);
    if (r->window_closed) {
        int64_t limit = now_ns - r->first_arrival_ns - (int64_t)TM_REC_MUX_LAG_MS * 1000000;
        tm__rec_mux_until(r, final ? TM_REC_NO_TIME : limit > 0 ? (uint64_t)limit : 0);
    }
    store(r, file);
}

static size_t vint(const uint8_t *p, size_t avail, uint64_t *v, bool marker)
{
    if (!avail || !p[0])
        return 0;
    size_t n = 1;
    while (!(p[0] & (0x80 >> (n - 1))))
        n++;
    if (n > avail)
        return 0;
    uint64_t x = marker ? p[0] : p[0] & (0xFF >> n);
    for (size_t i = 1; i < n; i++)
        x = x << 8 | p[i];
    *v = x;
    return n;
}

/* The elements of b[from, to) one after another, their sizes adding up. */
static void check_level(const uint8_t *b, size_t from, size_t to)
{
    size_t at = from;
    while (at < to) {
        uint64_t id, len;
        size_t in = vint(b + at, to - at, &id, true);
        size_t sn = in ? vint(b + at + in, to - at - in, &len, false) : 0;
        if (!in || !sn || len > to - at - in - sn)
            abort();
        at += in + sn + len;
    }
}

static void check_stream(const uint8_t *b, size_t len)
{
    uint64_t id, ebml, seg;
    size_t n = vint(b, len, &id, true), m;
    if (n != 4 || id != TM_MKV_EBML || !(m = vint(b + 4, len - 4, &ebml, false)))
        abort();
    size_t at = 4 + m + ebml;
    n = vint(b + at, len - at, &id, true);
    if (n != 4 || id != TM_MKV_SEGMENT || vint(b + at + 4, len - at - 4, &seg, false) != 8)
        abort();
    at += 12;
    if (seg != len - at) /* patched with the stream's true end */
        abort();
    check_level(b, at, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tm_recorder *r = g_new0(tm_recorder, 1);
    r->ntracks = NTRACKS;
    r->min_pts = r->max_end = TM_REC_NO_TIME;
    tm__mkv_init(&r->mkv, &r->out, true);
    sender s[NTRACKS];
    for (int i = 0; i < NTRACKS; i++) {
        tm_rec_track *t = &r->tracks[i];
        t->codec = codecs[i];
        t->pt = pts[i];
        t->clock_rate = i == 0 ? 48000 : 90000;
        t->last_pts = TM_REC_NO_TIME;
        tm__rec_track_init(t);
        s[i] = (sender){.seq = (uint16_t)(1000 * i), .ts = 5000u * (uint32_t)i};
    }
    GByteArray *file = g_byte_array_new();
    int64_t now = 1000000000;
    uint8_t pkt[12 + MAX_PAYLOAD];
    size_t at = 0;
    while (size - at >= 8) {
        const uint8_t *h = data + at;
        int ti = (h[0] & 0x03) % NTRACKS;
        sender *snd = &s[ti];
        snd->seq = (uint16_t)(snd->seq + (int16_t)(h[1] << 8 | h[2]));
        snd->ts += (uint32_t)(int16_t)(h[3] << 8 | h[4]) * 16u;
        now += (int64_t)h[5] * 1000000;
        size_t plen = (size_t)(h[6] << 8 | h[7]) % (MAX_PAYLOAD + 1);
        at += 8;
        if (plen > size - at)
            plen = size - at;
        pkt[0] = (h[0] & 0x04) ? 0x90 : 0x80; /* X: the payload starts with an extension */
        pkt[1] = (uint8_t)(((h[0] & 0x08) ? 0x80 : 0) | pts[ti]);
        pkt[2] = (uint8_t)(snd->seq >> 8);
        pkt[3] = (uint8_t)snd->seq;
        for (int k = 0; k < 4; k++)
            pkt[4 + k] = (uint8_t)(snd->ts >> (24 - 8 * k));
        memset(pkt + 8, (h[0] & 0x10) ? 0x77 : 0x42, 4); /* a new SSRC starts afresh */
        memcpy(pkt + 12, data + at, plen);
        at += plen;
        size_t len = 12 + plen;
        tm_rec_arena *a = g_malloc(sizeof(tm_rec_arena) + len);
        a->refs = 1;
        a->size = len;
        memcpy(a->data, pkt, len);
        tm_rec_hdr rh = {.len = (uint32_t)len, .track = (uint16_t)ti, .arrival_ns = now};
        tm__rec_take_packet(r, &rh, a, 0);
        tm__rec_arena_unref(a);
        if (h[0] & 0x20)
            batch(r, now, false, file);
    }
    batch(r, now, true, file);
    if (r->mkv.started) {
        tm_mkv_patch p[3];
        size_t np = 0;
        if (tm__mkv_finish(&r->mkv, 0, p, &np) < 0)
            abort();
        store(r, file);
        for (size_t i = 0; i < np; i++) {
            if (p[i].pos + p[i].len > file->len)
                abort();
            memcpy(file->data + p[i].pos, p[i].bytes, p[i].len);
        }
        check_stream(file->data, file->len);
    } else if (file->len) {
        abort(); /* bytes without a header */
    }
    for (int i = 0; i < NTRACKS; i++)
        tm__rec_track_free(&r->tracks[i]);
    tm__mkv_clear(&r->mkv);
    g_free(r->out.p);
    g_free(r);
    g_byte_array_free(file, TRUE);
    return 0;
}

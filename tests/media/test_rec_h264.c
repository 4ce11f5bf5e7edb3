/*
 * test_rec_h264.c - the recorder's H.264 depayloader (media/recorder/h264.c):
 * the avcC it makes from an SPS and a PPS byte for byte against the one
 * GStreamer's h264parse made for the same openh264 streams (and the
 * picture size the track takes from them), and RTP packets (single NAL
 * units, STAP-A, FU-A) into access units with their keyframe flags,
 * dropped on loss or bad packets until the next keyframe.
 * test_recorder's h264 case plays a whole recorded file.
 */
#include "h264.h"
#include "recorder_internal.h"
#include "telemed/common.h"
#include "rtp.h"
#include "tm_test.h"

#include <glib.h>

static GByteArray *unhex(const char *h)
{
    GByteArray *a = g_byte_array_new();
    for (; h[0] && h[1]; h += 2) {
        unsigned v;
        CHECK(sscanf(h, "%2x", &v) == 1);
        uint8_t b = (uint8_t)v;
        g_byte_array_append(a, &b, 1);
    }
    return a;
}

/* codec_data of openh264enc ! h264parse ! video/x-h264,stream-format=avc
 * (GStreamer 1.22, Debian 12), for each picture size. */
static const struct {
    int w, h;
    const char *avcc;
} from_h264parse[] = {
    {320, 240, "0142c00dffe1000e6742c00d8c8d40a0f900f08846a001000468ce3c80"},
    {1280, 720, "0142c01fffe1000f6742c01f8c8d402802dd00f08846a001000468ce3c80"},
    {1920, 1080, "0142c028ffe100106742c0288c8d403c0113f2c03c2211a801000468ce3c80"},
    {642, 362, "0142c01effe100106742c01e8c8d405217f112403c2211a801000468ce3c80"},
};

/* The SPS and PPS inside an avcC of one each. */
static void split_avcc(const GByteArray *avcc, const uint8_t **sps, size_t *sl, const uint8_t **pps,
                       size_t *pl)
{
    *sl = (size_t)(avcc->data[6] << 8 | avcc->data[7]);
    *sps = avcc->data + 8;
    *pl = (size_t)(avcc->data[8 + *sl + 1] << 8 | avcc->data[8 + *sl + 2]);
    *pps = avcc->data + 8 + *sl + 3;
}

static void test_avcc_and_size_as_h264parse(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(from_h264parse); i++) {
        GByteArray *want = unhex(from_h264parse[i].avcc);
        const uint8_t *sps, *pps;
        size_t sl, pl;
        split_avcc(want, &sps, &sl, &pps, &pl);
        GByteArray *got = g_byte_array_new();
        CHECK_EQ_INT(tm__h264_avcc(sps, sl, pps, pl, got), 0);
        CHECK_EQ_INT(got->len, want->len);
        CHECK(memcmp(got->data, want->data, want->len) == 0);
        uint16_t w = 0, h = 0;
        CHECK_EQ_INT(tm_h264_sps_size(sps, sl, &w, &h), 0);
        CHECK_EQ_INT(w, from_h264parse[i].w);
        CHECK_EQ_INT(h, from_h264parse[i].h);
        g_byte_array_free(got, TRUE);
        g_byte_array_free(want, TRUE);
    }
    const uint8_t short_sps[3] = {0x67, 0x42, 0xc0};
    GByteArray *out = g_byte_array_new();
    CHECK_EQ_INT(tm__h264_avcc(short_sps, sizeof short_sps, short_sps, 1, out), TM_EINVAL);
    CHECK_EQ_INT(out->len, 0);
    g_byte_array_free(out, TRUE);
}

/* ---- packets into access units --------------------------------------------- */

typedef struct feed {
    tm_rec_track t;
    uint16_t seq;
} feed;

/* One RTP packet of payload p (n bytes) with timestamp ts into the
 * depayloader, as reorder.c hands it on. */
static void packet(feed *f, uint32_t ts, bool marker, const uint8_t *p, size_t n)
{
    size_t len = 12 + n;
    tm_rec_arena *a = g_malloc(sizeof(tm_rec_arena) + len);
    a->refs = 1;
    a->size = len;
    uint8_t *d = a->data;
    d[0] = 0x80;
    d[1] = (uint8_t)((marker ? 0x80 : 0) | 102);
    d[2] = (uint8_t)(f->seq >> 8);
    d[3] = (uint8_t)f->seq;
    d[4] = (uint8_t)(ts >> 24);
    d[5] = (uint8_t)(ts >> 16);
    d[6] = (uint8_t)(ts >> 8);
    d[7] = (uint8_t)ts;
    memset(d + 8, 0x11, 4);
    memcpy(d + 12, p, n);
    tm_rec_held h = {.eseq = ((uint64_t)1 << 32) + f->seq,
                     .pts = (uint64_t)ts * 100000 / 9, /* ns of a 90 kHz clock */
                     .arena = a,
                     .off = 0,
                     .len = (uint32_t)len};
    f->seq++;
    tm__rec_depay(&f->t, &h);
}

#define PKT(f, ts, m, ...)                                                                         \
    do {                                                                                           \
        const uint8_t p_[] = {__VA_ARGS__};                                                        \
        packet(f, ts, m, p_, sizeof p_);                                                           \
    } while (0)

/* Frame i of the track: its bytes, checked against want. */
static void check_frame(feed *f, guint i, uint32_t ts, bool key, const uint8_t *want, size_t n)
{
    CHECK(i < f->t.frames->len);
    size_t at = 0;
    for (guint k = 0; k < i; k++)
        at += g_array_index(f->t.frames, tm_rec_frame, k).size;
    const tm_rec_frame *fr = &g_array_index(f->t.frames, tm_rec_frame, i);
    CHECK_EQ_INT(fr->pts, (uint64_t)ts * 100000 / 9);
    CHECK_EQ_INT(fr->key, key);
    CHECK_EQ_INT(fr->size, n);
    CHECK(memcmp(f->t.fdata->data + at, want, n) == 0);
}

#define FRAME(f, i, ts, key, ...)                                                                  \
    do {                                                                                           \
        const uint8_t w_[] = {__VA_ARGS__};                                                        \
        check_frame(f, i, ts, key, w_, sizeof w_);                                                 \
    } while (0)

static void feed_free(feed *f)
{
    tm__rec_track_free(&f->t);
}

/* The 320x240 stream's SPS and PPS. */
#define SPS 0x67, 0x42, 0xc0, 0x0d, 0x8c, 0x8d, 0x40, 0xa0, 0xf9, 0x00, 0xf0, 0x88, 0x46, 0xa0
#define PPS 0x68, 0xce, 0x3c, 0x80

static void test_access_units(void)
{
    feed f = {.t = {.codec = TM_REC_H264}, .seq = 1000};
    tm__rec_track_init(&f.t);

    /* 0: SPS and PPS in a STAP-A, then an IDR slice in three FU-As */
    PKT(&f, 1000, false, 0x78, 0x00, 0x0e, SPS, 0x00, 0x04, PPS);
    PKT(&f, 1000, false, 0x7c, 0x85, 0xa1, 0xa2);
    PKT(&f, 1000, false, 0x7c, 0x05, 0xa3);
    PKT(&f, 1000, true, 0x7c, 0x45, 0xa4, 0xa5);
    CHECK_EQ_INT(f.t.frames->len, 1);
    FRAME(&f, 0, 1000, true, 0, 0, 0, 14, SPS, 0, 0, 0, 4, PPS, 0, 0, 0, 6, 0x65, 0xa1, 0xa2, 0xa3,
          0xa4, 0xa5);
    CHECK(f.t.produced);
    GByteArray *want = unhex(from_h264parse[0].avcc);
    CHECK(f.t.codec_data && g_bytes_get_size(f.t.codec_data) == want->len);
    CHECK(memcmp(g_bytes_get_data(f.t.codec_data, NULL), want->data, want->len) == 0);
    g_byte_array_free(want, TRUE);
    CHECK_EQ_INT(f.t.width, 320);
    CHECK_EQ_INT(f.t.height, 240);

    /* 1, 2: a slice whose marker packet never says so ends at the next
     * timestamp */
    PKT(&f, 4000, false, 0x41, 0xb1);
    PKT(&f, 7000, true, 0x41, 0xb2, 0xb3);
    CHECK_EQ_INT(f.t.frames->len, 3);
    FRAME(&f, 1, 4000, false, 0, 0, 0, 2, 0x41, 0xb1);
    FRAME(&f, 2, 7000, false, 0, 0, 0, 3, 0x41, 0xb2, 0xb3);

    /* a STAP-A whose length runs past its end: dropped, and the next
     * slice too (no keyframe yet) */
    PKT(&f, 10000, true, 0x78, 0x00, 0x09, 0x41, 0xc1);
    PKT(&f, 13000, true, 0x41, 0xc2);
    CHECK_EQ_INT(f.t.frames->len, 3);

    /* 3: an IDR in one NAL unit: the parameter sets are already known */
    PKT(&f, 16000, true, 0x65, 0xd1);
    FRAME(&f, 3, 16000, true, 0, 0, 0, 2, 0x65, 0xd1);

    /* a lost packet: what follows waits for a keyframe */
    f.seq++;
    PKT(&f, 19000, true, 0x41, 0xe1);
    /* a FU-A that starts twice, and one whose start was lost */
    PKT(&f, 22000, false, 0x7c, 0x85, 0xe2);
    PKT(&f, 22000, true, 0x7c, 0x85, 0xe3);
    PKT(&f, 25000, true, 0x7c, 0x45, 0xe4);
    /* STAP-B and FU-B are not in packetization-mode 1 */
    PKT(&f, 28000, true, 0x79, 0x00, 0x00, 0x00, 0x02, 0x65, 0xe5);
    PKT(&f, 31000, true, 0x7d, 0x85, 0x00, 0x01, 0xe6);
    CHECK_EQ_INT(f.t.frames->len, 4);

    /* 4: a keyframe in FU-As again, with an SEI before it in a STAP-A */
    PKT(&f, 34000, false, 0x78, 0x00, 0x02, 0x06, 0xf0, 0x00, 0x03, 0x65, 0xf1, 0xf2);
    PKT(&f, 34000, false, 0x3c, 0x81, 0xf3);
    PKT(&f, 34000, true, 0x3c, 0x41, 0xf4);
    CHECK_EQ_INT(f.t.frames->len, 5);
    FRAME(&f, 4, 34000, true, 0, 0, 0, 2, 0x06, 0xf0, 0, 0, 0, 3, 0x65, 0xf1, 0xf2, 0, 0, 0, 3,
          0x21, 0xf3, 0xf4);

    /* a unit cut off by the end of the stream leaves nothing behind */
    guint len = f.t.fdata->len;
    PKT(&f, 37000, false, 0x7c, 0x85, 0xf5);
    CHECK(f.t.fdata->len > len);
    tm__rec_forget_frame(&f.t);
    CHECK_EQ_INT(f.t.fdata->len, len);
    feed_free(&f);
}

/* Nothing is a keyframe before the parameter sets came. */
static void test_no_keyframe_without_parameter_sets(void)
{
    feed f = {.t = {.codec = TM_REC_H264}, .seq = 7};
    tm__rec_track_init(&f.t);
    PKT(&f, 0, true, 0x65, 0x01);
    PKT(&f, 3000, true, 0x41, 0x02);
    CHECK_EQ_INT(f.t.frames->len, 0);
    CHECK(!f.t.produced);
    PKT(&f, 6000, true, 0x78, 0x00, 0x0e, SPS, 0x00, 0x04, PPS, 0x00, 0x02, 0x65, 0x03);
    CHECK_EQ_INT(f.t.frames->len, 1);
    FRAME(&f, 0, 6000, true, 0, 0, 0, 14, SPS, 0, 0, 0, 4, PPS, 0, 0, 0, 2, 0x65, 0x03);
    feed_free(&f);
}

/* A unit that never ends (one timestamp, no marker) is dropped once it
 * passes 8 MiB, not held; the next keyframe comes through. */
static void test_endless_unit_dropped(void)
{
    feed f = {.t = {.codec = TM_REC_H264}, .seq = 1};
    tm__rec_track_init(&f.t);
    PKT(&f, 0, false, 0x78, 0x00, 0x0e, SPS, 0x00, 0x04, PPS);
    uint8_t fu[1402] = {0x7c, 0x85};
    packet(&f, 0, false, fu, sizeof fu);
    fu[1] = 0x05;
    for (int i = 0; i < 7000; i++) { /* 9.8 MB */
        packet(&f, 0, false, fu, sizeof fu);
        CHECK(f.t.fdata->len <= (8u << 20));
    }
    fu[1] = 0x45;
    packet(&f, 0, true, fu, sizeof fu);
    CHECK_EQ_INT(f.t.frames->len, 0);
    CHECK_EQ_INT(f.t.fdata->len, 0);
    PKT(&f, 3000, true, 0x65, 0x01);
    CHECK_EQ_INT(f.t.frames->len, 1);
    FRAME(&f, 0, 3000, true, 0, 0, 0, 2, 0x65, 0x01);
    feed_free(&f);
}

/* VP8 has the same bound (depay.c): a frame that never ends is dropped
 * after 4096 packets, and their batches' memory with it. */
static void test_vp8_endless_frame_dropped(void)
{
    feed f = {.t = {.codec = TM_REC_VP8}, .seq = 1};
    tm__rec_track_init(&f.t);
    uint8_t start[12] = {0x10, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00, 0x00};
    uint8_t more[2] = {0x00, 0x00};
    packet(&f, 0, false, start, sizeof start);
    for (int i = 0; i < 5000; i++) {
        packet(&f, 0, false, more, sizeof more);
        CHECK(f.t.parts->len <= 4096);
    }
    packet(&f, 0, true, more, sizeof more);
    CHECK_EQ_INT(f.t.frames->len, 0);
    packet(&f, 3000, true, start, sizeof start); /* a whole keyframe in one packet */
    CHECK_EQ_INT(f.t.frames->len, 1);
    CHECK(g_array_index(f.t.frames, tm_rec_frame, 0).key);
    feed_free(&f);
}

int main(void)
{
    RUN(test_avcc_and_size_as_h264parse);
    RUN(test_access_units);
    RUN(test_no_keyframe_without_parameter_sets);
    RUN(test_endless_unit_dropped);
    RUN(test_vp8_endless_frame_dropped);
    TEST_DONE();
}

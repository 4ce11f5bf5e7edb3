/*
 * test_recorder.c - the per-visit recorder fed with real RTP: GStreamer
 * encodes and packetizes test video (VP8) and audio (Opus) into memory,
 * the test pushes those packets at their real pace through
 * tm_recorder_push() as the media worker would, and a player's view of
 * the result (GstDiscoverer, and a decode pipeline counting frames) is
 * checked: streams present, duration, SHA-256. Also: a recording process
 * killed with SIGKILL leaves a file that decodes, encrypted files do not
 * play until decrypted, a write error (file size limit, as a full disk)
 * fails the recording without blocking pushes, and silent tracks do not
 * stall the others.
 *
 * The crash and write-error cases run in a child process (this program
 * re-executed with a mode argument), so that nothing of GStreamer's
 * threads is inherited across fork.
 */
#include "telemed/common.h"
#include "telemed/rec_crypt.h"
#include "telemed/recorder.h"
#include "tm_gst_rtp.h"
#include "tm_test.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <gst/app/gstappsink.h>
#include <gst/gst.h>
#include <gst/pbutils/pbutils.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char *dir;
static const char *self_exe;

/* ---- real RTP, made by GStreamer ------------------------------------------ */

/* seconds of 320x240@30 video (VP8, or H.264 constrained baseline as
 * Safari sends it) and 48 kHz Opus, as RTP, merged in pts order. */
static GArray *make_rtp_codec(int seconds, bool h264)
{
    GArray *a = g_array_new(FALSE, FALSE, sizeof(pkt));
    char *v = g_strdup_printf(
        "videotestsrc num-buffers=%d pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1"
        " ! %s ! appsink name=out sync=false",
        seconds * 30,
        h264 ? "openh264enc gop-size=30 ! video/x-h264,profile=constrained-baseline"
               " ! rtph264pay pt=102 mtu=1200 config-interval=-1"
             : "vp8enc deadline=1 cpu-used=8 keyframe-max-dist=30 ! rtpvp8pay pt=96 mtu=1200");
    char *au = g_strdup_printf(
        "audiotestsrc num-buffers=%d samplesperbuffer=960 ! audio/x-raw,rate=48000,channels=1"
        " ! opusenc ! rtpopuspay pt=111 ! appsink name=out sync=false",
        seconds * 50);
    collect(v, 1, a);
    collect(au, 0, a);
    g_free(v);
    g_free(au);
    g_array_sort(a, by_pts);
    CHECK(a->len > (guint)seconds * 80);
    return a;
}

static GArray *make_rtp(int seconds)
{
    return make_rtp_codec(seconds, false);
}

static void free_rtp(GArray *a)
{
    for (guint i = 0; i < a->len; i++)
        g_bytes_unref(g_array_index(a, pkt, i).data);
    g_array_free(a, TRUE);
}

/* Sleeps until the packet's media time: packets reach the recorder at the
 * pace a sender's would. */
static void wait_for_pts(int64_t t0_us, GstClockTime pts)
{
    int64_t due = t0_us + (int64_t)(pts / 1000);
    int64_t now = g_get_monotonic_time();
    if (due > now)
        g_usleep((gulong)(due - now));
}

/* Pushes packets [from, to) at their media pace (as a sender's packets
 * would arrive) to the recorder(s): audio to track base+0, video to
 * base+1, for each base in bases. */
static void push_paced(tm_recorder **rs, int nr, GArray *a, guint from, guint to, const int *bases,
                       int nbases, int64_t t0_us)
{
    for (guint i = from; i < to && i < a->len; i++) {
        pkt *k = &g_array_index(a, pkt, i);
        wait_for_pts(t0_us, k->pts);
        gsize len;
        const uint8_t *d = g_bytes_get_data(k->data, &len);
        for (int j = 0; j < nr; j++)
            for (int b = 0; b < nbases; b++)
                CHECK_EQ_INT(tm_recorder_push(rs[j], bases[b] + k->track, d, len), 0);
    }
}

/* ---- waiting for results ---------------------------------------------------- */

typedef struct done {
    bool called;
    tm_recorder_result res;
    char failure[256];
    char path[512];
} done;

static void on_done(const tm_recorder_result *res, void *user)
{
    done *d = user;
    d->called = true;
    d->res = *res;
    snprintf(d->failure, sizeof(d->failure), "%s", res->failure ? res->failure : "");
    snprintf(d->path, sizeof(d->path), "%s", res->path);
    d->res.failure = NULL;
    d->res.path = d->path;
}

static void wait_for(bool *flag, int timeout_ms)
{
    int64_t end = g_get_monotonic_time() + (int64_t)timeout_ms * 1000;
    while (!*flag && g_get_monotonic_time() < end)
        g_main_context_iteration(NULL, FALSE) || (g_usleep(5000), 0);
    CHECK(*flag);
}

/* Finishes r (which it frees) and waits for its result. */
static void finish(tm_recorder *r, done *d)
{
    memset(d, 0, sizeof(*d));
    tm_recorder_finish(r, on_done, d);
    wait_for(&d->called, 30000);
}

/* Finishes r and checks that its file is complete. */
static void finish_ok(tm_recorder *r, done *d)
{
    finish(r, d);
    if (d->res.status)
        fprintf(stderr, "failure: %s\n", d->failure);
    CHECK_EQ_INT(d->res.status, 0);
}

/* ---- what a player sees ------------------------------------------------------ */

typedef struct seen {
    int audio_streams, video_streams;
    int64_t duration_ms;
    bool ok;
} seen;

static seen discover(const char *path)
{
    seen s = {0};
    GError *e = NULL;
    GstDiscoverer *dc = gst_discoverer_new(20 * GST_SECOND, &e);
    CHECK(dc != NULL);
    char *uri = gst_filename_to_uri(path, NULL);
    GstDiscovererInfo *info = gst_discoverer_discover_uri(dc, uri, &e);
    g_clear_error(&e);
    if (info && gst_discoverer_info_get_result(info) == GST_DISCOVERER_OK) {
        s.ok = true;
        GList *l = gst_discoverer_info_get_audio_streams(info);
        s.audio_streams = (int)g_list_length(l);
        gst_discoverer_stream_info_list_free(l);
        l = gst_discoverer_info_get_video_streams(info);
        s.video_streams = (int)g_list_length(l);
        gst_discoverer_stream_info_list_free(l);
        GstClockTime d = gst_discoverer_info_get_duration(info);
        s.duration_ms = GST_CLOCK_TIME_IS_VALID(d) ? (int64_t)(d / GST_MSECOND) : -1;
    }
    if (info)
        g_object_unref(info);
    g_free(uri);
    g_object_unref(dc);
    return s;
}

typedef struct counts {
    int video_frames, audio_buffers;
    bool error;
} counts;

static GstPadProbeReturn count_probe(GstPad *pad, GstPadProbeInfo *info, gpointer p)
{
    g_atomic_int_inc((gint *)p);
    return GST_PAD_PROBE_OK;
}

static void on_decoded_pad(GstElement *db, GstPad *pad, gpointer p)
{
    counts *c = p;
    GstCaps *caps = gst_pad_get_current_caps(pad);
    if (!caps)
        caps = gst_pad_query_caps(pad, NULL);
    const char *name = gst_structure_get_name(gst_caps_get_structure(caps, 0));
    gint *counter = g_str_has_prefix(name, "video/") ? &c->video_frames : &c->audio_buffers;
    gst_caps_unref(caps);
    GstElement *bin = GST_ELEMENT(gst_element_get_parent(db));
    GstElement *q = gst_element_factory_make("queue", NULL);
    GstElement *sink = gst_element_factory_make("fakesink", NULL);
    g_object_set(sink, "sync", FALSE, NULL);
    gst_bin_add_many(GST_BIN(bin), q, sink, NULL);
    gst_element_link(q, sink);
    gst_element_sync_state_with_parent(q);
    gst_element_sync_state_with_parent(sink);
    GstPad *qpad = gst_element_get_static_pad(q, "sink");
    gst_pad_link(pad, qpad);
    gst_object_unref(qpad);
    GstPad *spad = gst_element_get_static_pad(sink, "sink");
    gst_pad_add_probe(spad, GST_PAD_PROBE_TYPE_BUFFER, count_probe, counter, NULL);
    gst_object_unref(spad);
    gst_object_unref(bin);
}

/* Decodes the whole file (to raw video and audio) and counts what comes out. */
static counts decode(const char *path)
{
    counts c = {0};
    GstElement *p = gst_pipeline_new("decode");
    GstElement *src = gst_element_factory_make("filesrc", NULL);
    GstElement *db = gst_element_factory_make("decodebin", NULL);
    g_object_set(src, "location", path, NULL);
    gst_bin_add_many(GST_BIN(p), src, db, NULL);
    CHECK(gst_element_link(src, db));
    g_signal_connect(db, "pad-added", G_CALLBACK(on_decoded_pad), &c);
    gst_element_set_state(p, GST_STATE_PLAYING);
    GstBus *bus = gst_element_get_bus(p);
    GstMessage *m =
        gst_bus_timed_pop_filtered(bus, 30 * GST_SECOND, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
    CHECK(m != NULL); /* no answer in 30 s is a failure, not a pass */
    c.error = GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR;
    gst_message_unref(m);
    gst_object_unref(bus);
    gst_element_set_state(p, GST_STATE_NULL);
    gst_object_unref(p);
    return c;
}

static char *sha256_file(const char *path, int64_t *size)
{
    char *data;
    gsize len;
    CHECK(g_file_get_contents(path, &data, &len, NULL));
    char *h = g_compute_checksum_for_data(G_CHECKSUM_SHA256, (const guchar *)data, len);
    if (size)
        *size = (int64_t)len;
    g_free(data);
    return h;
}

static bool within(int64_t got, int64_t want, double frac)
{
    return got >= want * (1 - frac) && got <= want * (1 + frac);
}

static const tm_recorder_track two_senders[] = {
    {TM_REC_OPUS, 111, 48000, "patient-audio"},
    {TM_REC_VP8, 96, 90000, "patient-video"},
    {TM_REC_OPUS, 111, 48000, "doctor-audio"},
    {TM_REC_VP8, 96, 90000, "doctor-video"},
};

/* ---- tests -------------------------------------------------------------------- */

/* A two-party visit: both senders' audio and video in one playable file. */
static void test_two_senders(void)
{
    const int secs = 6;
    GArray *rtp = make_rtp(secs);
    char *path = NULL, *err = NULL;
    CHECK_EQ_INT(tm_recorder_make_path(dir, "visit-two", tm_now_ms(), false, &path, &err), 0);
    tm_recorder *r = tm_recorder_new(path, two_senders, 4, NULL, &err);
    if (!r)
        fprintf(stderr, "new: %s\n", err);
    CHECK(r != NULL);
    int bases[] = {0, 2};
    push_paced(&r, 1, rtp, 0, rtp->len, bases, 2, g_get_monotonic_time());
    tm_recorder_stats st;
    tm_recorder_stats_get(r, &st);
    CHECK_EQ_INT(st.pushed, 2 * rtp->len);
    done d;
    finish_ok(r, &d);
    CHECK_STR(d.res.path, path);
    CHECK(!d.res.encrypted);
    CHECK_EQ_INT(d.res.stats.pushed, 2 * rtp->len);
    CHECK_EQ_INT(d.res.stats.dropped, 0);
    int64_t size;
    char *sha = sha256_file(path, &size);
    CHECK_STR(d.res.sha256, sha);
    CHECK_EQ_INT(d.res.size_bytes, size);
    CHECK_STR(d.res.plain_sha256, "");
    printf("  recorded %lld bytes, %lld ms\n", (long long)size, (long long)d.res.duration_ms);
    CHECK(within(d.res.duration_ms, secs * 1000, 0.1));

    struct stat sb;
    CHECK(stat(path, &sb) == 0);
    CHECK_EQ_INT(sb.st_mode & 0777, 0600);
    char *day = g_path_get_dirname(path);
    CHECK(stat(day, &sb) == 0);
    CHECK_EQ_INT(sb.st_mode & 0777, 0700);
    g_free(day);

    seen s = discover(path);
    CHECK(s.ok);
    CHECK_EQ_INT(s.audio_streams, 2);
    CHECK_EQ_INT(s.video_streams, 2);
    printf("  discoverer: %lld ms\n", (long long)s.duration_ms);
    CHECK(within(s.duration_ms, secs * 1000, 0.1));
    counts c = decode(path);
    printf("  decoded %d video frames, %d audio buffers\n", c.video_frames, c.audio_buffers);
    CHECK(!c.error);
    CHECK(c.video_frames >= 2 * secs * 30 * 9 / 10);
    CHECK(c.audio_buffers > 0);
    g_free(sha);
    g_free(path);
    free_rtp(rtp);
}

/* A declared track that never sends and a track that goes silent for 3 s
 * must not hold the others: the file has what was sent, for its length. */
static void test_silent_tracks(void)
{
    const int secs = 8;
    GArray *rtp = make_rtp(secs);
    tm_recorder_track tracks[] = {
        {TM_REC_OPUS, 111, 0, "patient-audio"},
        {TM_REC_VP8, 96, 0, "patient-video"},
        {TM_REC_H264, 102, 0, "doctor-video-never"},
    };
    char *path = g_build_filename(dir, "silent.mkv", NULL), *err = NULL;
    tm_recorder *r = tm_recorder_new(path, tracks, 3, NULL, &err);
    CHECK(r != NULL);
    int64_t t0 = g_get_monotonic_time();
    int64_t size_early = -1, size_late = -1;
    struct stat sb;
    /* 0-2 s both; 2-5 s audio only (camera off); 5-8 s both again. */
    for (guint i = 0; i < rtp->len; i++) {
        pkt *k = &g_array_index(rtp, pkt, i);
        bool camera_off = k->pts >= 2 * GST_SECOND && k->pts < 5 * GST_SECOND;
        if (size_early < 0 && k->pts >= 3500 * GST_MSECOND && stat(path, &sb) == 0)
            size_early = sb.st_size;
        if (size_late < 0 && k->pts >= 4900 * GST_MSECOND && stat(path, &sb) == 0)
            size_late = sb.st_size;
        if (k->track == 1 && camera_off)
            continue;
        int base = 0;
        push_paced(&r, 1, rtp, i, i + 1, &base, 1, t0);
    }
    /* While the camera was off the patient's audio still reached the disk:
     * the silent video track did not hold the muxer. */
    printf("  file size at 3.5 s: %lld, at 4.9 s: %lld\n", (long long)size_early,
           (long long)size_late);
    CHECK(size_early > 0 && size_late > size_early + 5000);
    done d;
    finish_ok(r, &d);
    CHECK_EQ_INT(d.res.stats.dropped, 0);
    seen s = discover(path);
    CHECK(s.ok);
    CHECK_EQ_INT(s.audio_streams, 1);
    CHECK_EQ_INT(s.video_streams, 1);
    printf("  duration %lld ms (record %lld ms)\n", (long long)s.duration_ms,
           (long long)d.res.duration_ms);
    CHECK(within(s.duration_ms, secs * 1000, 0.1));
    counts c = decode(path);
    printf("  decoded %d video frames, %d audio buffers\n", c.video_frames, c.audio_buffers);
    CHECK(!c.error);
    CHECK(c.video_frames >= 5 * 30 * 9 / 10);
    CHECK(c.audio_buffers >= secs * 50 * 9 / 10);
    g_free(path);
    free_rtp(rtp);
}

/* A participant who reconnects comes back on a new PeerConnection: new
 * SSRC, sequence numbers and RTP timestamps on the same tracks. The file
 * carries on across the jump. */
static void test_reconnect(void)
{
    const int secs = 6;
    GArray *rtp = make_rtp(secs);
    char *path = g_build_filename(dir, "reconnect.mkv", NULL), *err = NULL;
    tm_recorder *r = tm_recorder_new(path, two_senders, 2, NULL, &err);
    CHECK(r != NULL);
    int64_t t0 = g_get_monotonic_time();
    for (guint i = 0; i < rtp->len; i++) {
        pkt *k = &g_array_index(rtp, pkt, i);
        wait_for_pts(t0, k->pts);
        gsize len;
        const uint8_t *d = g_bytes_get_data(k->data, &len);
        uint8_t copy[TM_RECORDER_SLOT_BYTES];
        CHECK(len <= sizeof(copy));
        memcpy(copy, d, len);
        if (k->pts >= 3 * GST_SECOND) { /* the second connection */
            uint16_t seq = (uint16_t)((copy[2] << 8 | copy[3]) + 20000);
            uint32_t ts = ((uint32_t)copy[4] << 24 | (uint32_t)copy[5] << 16 |
                           (uint32_t)copy[6] << 8 | copy[7]) +
                          0x40000000u;
            copy[2] = (uint8_t)(seq >> 8);
            copy[3] = (uint8_t)seq;
            for (int b = 0; b < 4; b++)
                copy[4 + b] = (uint8_t)(ts >> (24 - 8 * b));
            copy[8] ^= 0x5a; /* another SSRC */
        }
        CHECK_EQ_INT(tm_recorder_push(r, k->track, copy, len), 0);
    }
    done d;
    finish_ok(r, &d);
    seen s = discover(path);
    CHECK(s.ok);
    counts c = decode(path);
    printf("  reconnect: %d video frames, %d audio buffers, %lld ms\n", c.video_frames,
           c.audio_buffers, (long long)s.duration_ms);
    CHECK(!c.error);
    CHECK(within(s.duration_ms, secs * 1000, 0.1));
    /* Both halves are there (a keyframe or so lost at the switch at most). */
    CHECK(c.video_frames >= secs * 30 * 8 / 10);
    CHECK(c.audio_buffers >= secs * 50 * 8 / 10);
    g_free(path);
    free_rtp(rtp);
}

/* The network reorders and duplicates packets (and retransmissions come
 * again): the recorder puts each track back in sequence order and drops
 * the copies, so every frame still decodes. */
static void test_reorder(void)
{
    const int secs = 5;
    GArray *rtp = make_rtp(secs);
    char *path = g_build_filename(dir, "reorder.mkv", NULL), *err = NULL;
    tm_recorder *r = tm_recorder_new(path, two_senders, 2, NULL, &err);
    CHECK(r != NULL);
    int64_t t0 = g_get_monotonic_time();
    int pushes = 0, swapped = 0, dups = 0;
    for (guint i = 0; i < rtp->len; i++) {
        guint order[2] = {i, i};
        int n = 1;
        pkt *k = &g_array_index(rtp, pkt, i);
        if (i + 1 < rtp->len && i % 4 == 0 && g_array_index(rtp, pkt, i + 1).track == k->track) {
            order[0] = i + 1; /* the later packet overtakes this one */
            order[1] = i;
            n = 2;
            swapped++;
            i++;
        }
        pkt *last = &g_array_index(rtp, pkt, order[0] > order[1] ? order[0] : order[1]);
        wait_for_pts(t0, last->pts);
        for (int j = 0; j < n; j++) {
            pkt *q = &g_array_index(rtp, pkt, order[j]);
            gsize len;
            const uint8_t *d = g_bytes_get_data(q->data, &len);
            int copies = order[j] % 7 == 3 ? 2 : 1;
            dups += copies - 1;
            for (int c = 0; c < copies; c++, pushes++)
                CHECK_EQ_INT(tm_recorder_push(r, q->track, d, len), 0);
        }
    }
    done d;
    finish_ok(r, &d);
    printf("  reorder: %d pushes, %d pairs swapped, %d duplicates\n", pushes, swapped, dups);
    CHECK(swapped > 20 && dups > 20);
    CHECK_EQ_INT(d.res.stats.pushed, pushes);
    CHECK_EQ_INT(d.res.stats.dropped, 0);
    seen s = discover(path);
    CHECK(s.ok);
    CHECK(within(s.duration_ms, secs * 1000, 0.1));
    counts c = decode(path);
    printf("  decoded %d video frames, %d audio buffers\n", c.video_frames, c.audio_buffers);
    CHECK(!c.error);
    CHECK(c.video_frames >= secs * 30 * 95 / 100);
    CHECK(c.audio_buffers >= secs * 50 * 95 / 100);
    CHECK(c.audio_buffers <= secs * 50 + 2); /* no duplicate reached the file */
    g_free(path);
    free_rtp(rtp);
}

/* H.264 (packetization-mode 1) from a Safari-like sender. */
static void test_h264(void)
{
    const int secs = 5;
    GArray *rtp = make_rtp_codec(secs, true);
    tm_recorder_track tracks[] = {
        {TM_REC_OPUS, 111, 0, "patient-audio"},
        {TM_REC_H264, 102, 0, "patient-video"},
    };
    char *path = g_build_filename(dir, "h264.mkv", NULL), *err = NULL;
    tm_recorder *r = tm_recorder_new(path, tracks, 2, NULL, &err);
    CHECK(r != NULL);
    int base = 0;
    push_paced(&r, 1, rtp, 0, rtp->len, &base, 1, g_get_monotonic_time());
    done d;
    finish_ok(r, &d);
    seen s = discover(path);
    CHECK(s.ok);
    CHECK_EQ_INT(s.audio_streams, 1);
    CHECK_EQ_INT(s.video_streams, 1);
    CHECK(within(s.duration_ms, secs * 1000, 0.1));
    counts c = decode(path);
    printf("  h264: %d video frames, %d audio buffers, %lld ms\n", c.video_frames, c.audio_buffers,
           (long long)s.duration_ms);
    CHECK(!c.error);
    CHECK(c.video_frames >= secs * 30 * 9 / 10);
    g_free(path);
    free_rtp(rtp);
}

/* A visit that ends inside the start window, with one declared track that
 * never sent: the file still finishes and holds what was sent. */
static void test_short_visit(void)
{
    GArray *rtp = make_rtp(2);
    char *path = g_build_filename(dir, "short.mkv", NULL), *err = NULL;
    tm_recorder *r = tm_recorder_new(path, two_senders, 4, NULL, &err);
    CHECK(r != NULL);
    int base = 0;
    push_paced(&r, 1, rtp, 0, rtp->len, &base, 1, g_get_monotonic_time());
    done d;
    finish_ok(r, &d);
    seen s = discover(path);
    CHECK(s.ok);
    CHECK_EQ_INT(s.audio_streams, 1);
    CHECK_EQ_INT(s.video_streams, 1);
    counts c = decode(path);
    CHECK(!c.error);
    CHECK(c.video_frames >= 2 * 30 * 9 / 10);
    g_free(path);
    free_rtp(rtp);
}

/* A burst far faster than the recorder drains (a stalled recorder looks
 * the same to the worker): every push returns at once, accepted or
 * counted as dropped, and the recording still finishes. */
static void test_burst_drops(void)
{
    GArray *rtp = make_rtp(2);
    char *path = g_build_filename(dir, "burst.mkv", NULL), *err = NULL;
    tm_recorder *r = tm_recorder_new(path, two_senders, 2, NULL, &err);
    CHECK(r != NULL);
    const int total = 20000;
    int ok = 0, full = 0;
    for (int i = 0; i < total; i++) {
        pkt *k = &g_array_index(rtp, pkt, (guint)i % rtp->len);
        gsize len;
        const uint8_t *data = g_bytes_get_data(k->data, &len);
        int rc = tm_recorder_push(r, k->track, data, len);
        CHECK(rc == 0 || rc == TM_ERATE);
        rc == 0 ? ok++ : full++;
    }
    tm_recorder_stats st;
    tm_recorder_stats_get(r, &st);
    printf("  burst: %d accepted, %d dropped (ring of %d bytes)\n", ok, full,
           TM_RECORDER_RING_BYTES);
    CHECK(full > 0);
    CHECK_EQ_INT(st.pushed, ok);
    CHECK(st.dropped >= (uint64_t)full); /* plus any the recorder thread shed */
    done d;
    finish(r, &d);
    CHECK_EQ_INT(d.res.stats.pushed + d.res.stats.dropped, total);
    g_free(path);
    free_rtp(rtp);
}

static const uint8_t test_key[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                     12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                     23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

/* The same packets into a plain and an encrypted recorder: the encrypted
 * file does not play, decrypts to the stream the recorder hashed before
 * encrypting, and that stream plays like the plain one. */
static void test_encrypted(void)
{
    const int secs = 5;
    GArray *rtp = make_rtp(secs);
    char *plain = NULL, *enc = NULL, *err = NULL;
    CHECK_EQ_INT(tm_recorder_make_path(dir, "visit-plain", tm_now_ms(), false, &plain, &err), 0);
    CHECK_EQ_INT(tm_recorder_make_path(dir, "visit-enc", tm_now_ms(), true, &enc, &err), 0);
    CHECK(g_str_has_suffix(enc, ".mkv.enc"));
    tm_recorder *rs[2] = {tm_recorder_new(plain, two_senders, 2, NULL, &err),
                          tm_recorder_new(enc, two_senders, 2, test_key, &err)};
    CHECK(rs[0] && rs[1]);
    int base = 0;
    push_paced(rs, 2, rtp, 0, rtp->len, &base, 1, g_get_monotonic_time());
    done dp = {0}, de = {0};
    tm_recorder_finish(rs[0], on_done, &dp);
    tm_recorder_finish(rs[1], on_done, &de);
    wait_for(&dp.called, 30000);
    wait_for(&de.called, 30000);
    CHECK_EQ_INT(dp.res.status, 0);
    if (de.res.status)
        fprintf(stderr, "failure: %s\n", de.failure);
    CHECK_EQ_INT(de.res.status, 0);
    CHECK(de.res.encrypted);
    int64_t size;
    char *sha_enc = sha256_file(enc, &size);
    CHECK_STR(de.res.sha256, sha_enc);
    CHECK_EQ_INT(de.res.size_bytes, size);
    CHECK_EQ_INT(strlen(de.res.plain_sha256), 64);

    /* Not playable as stored. */
    seen s = discover(enc);
    CHECK(!s.ok || (s.audio_streams == 0 && s.video_streams == 0));
    counts c = decode(enc);
    CHECK(c.error);
    CHECK_EQ_INT(c.video_frames, 0);

    /* Decrypted: the hashed plain stream, playable. */
    char *dec = g_build_filename(dir, "decrypted.mkv", NULL);
    CHECK_EQ_INT(tm_rec_decrypt_file(enc, dec, test_key, &err), 0);
    char *sha_dec = sha256_file(dec, NULL);
    CHECK_STR(sha_dec, de.res.plain_sha256);
    /* Served decrypted on the fly (what a Range request reads): the same bytes. */
    tm_rec_reader *rd = tm_rec_reader_open(enc, test_key, &err);
    CHECK(rd != NULL);
    CHECK(tm_rec_reader_complete(rd));
    uint64_t plain_size = tm_rec_reader_size(rd);
    uint8_t *plain_bytes = g_malloc(plain_size);
    for (uint64_t at = 0; at < plain_size;) /* in HTTP-sized pieces */
        at += (uint64_t)tm_rec_reader_pread(rd, plain_bytes + at, 16384, at);
    char *sha_rd = g_compute_checksum_for_data(G_CHECKSUM_SHA256, plain_bytes, plain_size);
    CHECK_STR(sha_rd, de.res.plain_sha256);
    g_free(sha_rd);
    g_free(plain_bytes);
    tm_rec_reader_free(rd);
    s = discover(dec);
    CHECK(s.ok);
    CHECK_EQ_INT(s.audio_streams, 1);
    CHECK_EQ_INT(s.video_streams, 1);
    counts cd = decode(dec), cp = decode(plain);
    printf("  decrypted: %d video frames, %d audio; plain: %d, %d; durations %lld/%lld ms\n",
           cd.video_frames, cd.audio_buffers, cp.video_frames, cp.audio_buffers,
           (long long)de.res.duration_ms, (long long)dp.res.duration_ms);
    CHECK(!cd.error && !cp.error);
    /* Same packets in, same media out (arrival times differ by the two
     * recorders' scheduling only, so the muxed bytes need not match). */
    CHECK(cd.video_frames >= secs * 30 * 9 / 10);
    CHECK(abs(cd.video_frames - cp.video_frames) <= 3);
    CHECK(abs(cd.audio_buffers - cp.audio_buffers) <= 5);
    CHECK(within(de.res.duration_ms, secs * 1000, 0.1));
    g_free(sha_enc);
    g_free(sha_dec);
    g_free(dec);
    g_free(plain);
    g_free(enc);
    free_rtp(rtp);
}

/* Child: records (encrypted when asked) at real pace, says "ready" after 3 s
 * of media on stdout and keeps recording until killed. */
static int child_record(const char *path, bool encrypted)
{
    GArray *rtp = make_rtp(12);
    char *err = NULL;
    tm_recorder *r = tm_recorder_new(path, two_senders, 2, encrypted ? test_key : NULL, &err);
    if (!r) {
        fprintf(stderr, "child: %s\n", err);
        return 2;
    }
    int base = 0;
    int64_t t0 = g_get_monotonic_time();
    guint i = 0;
    for (; i < rtp->len && g_array_index(rtp, pkt, i).pts < 3 * GST_SECOND; i++)
        ;
    push_paced(&r, 1, rtp, 0, i, &base, 1, t0);
    printf("ready\n");
    fflush(stdout);
    push_paced(&r, 1, rtp, i, rtp->len, &base, 1, t0);
    g_usleep(60 * G_USEC_PER_SEC); /* the parent kills us long before */
    return 3;
}

static void kill_mid_recording(bool encrypted)
{
    char *path = g_build_filename(dir, encrypted ? "killed.mkv.enc" : "killed.mkv", NULL);
    char *argv[] = {(char *)self_exe, (char *)"--child-record", path,
                    (char *)(encrypted ? "enc" : "plain"), NULL};
    GPid pid;
    int out_fd;
    GError *e = NULL;
    CHECK(g_spawn_async_with_pipes(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &pid,
                                   NULL, &out_fd, NULL, &e));
    char buf[16] = {0};
    ssize_t n = read(out_fd, buf, sizeof(buf) - 1);
    CHECK(n > 0 && g_str_has_prefix(buf, "ready"));
    g_usleep(1500 * 1000); /* 4.5 s of media pushed */
    CHECK(kill(pid, SIGKILL) == 0);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    close(out_fd);

    const char *playable = path;
    char *dec = NULL, *err = NULL;
    if (encrypted) {
        dec = g_build_filename(dir, "killed-decrypted.mkv", NULL);
        CHECK_EQ_INT(tm_rec_decrypt_file(path, dec, test_key, &err), 1); /* cut short */
        g_free(err);
        playable = dec;
    }
    counts c = decode(playable);
    printf("  killed %s: decoded %d video frames, %d audio buffers%s\n",
           encrypted ? "encrypted" : "plain", c.video_frames, c.audio_buffers,
           c.error ? " (then an error at the cut)" : "");
    /* At least 2 of the ~4.5 s pushed before the kill are there. */
    CHECK(c.video_frames >= 2 * 30);
    CHECK(c.audio_buffers >= 2 * 50);
    g_free(dec);
    g_free(path);
}

static void test_kill9_plain(void)
{
    kill_mid_recording(false);
}

static void test_kill9_encrypted(void)
{
    kill_mid_recording(true);
}

static int failures_seen;
static char failure_reason[256];

static void on_failure(const char *reason, void *user)
{
    failures_seen++;
    snprintf(failure_reason, sizeof(failure_reason), "%s", reason);
}

/* Child: a 40 kB file size limit makes writes fail as a full disk would;
 * the recording fails, the callback says so, and pushes still return at
 * once (dropped) instead of blocking the media worker. */
static int child_write_error(const char *path)
{
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {40 * 1024, 40 * 1024};
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
        return 2;
    GArray *rtp = make_rtp(6);
    char *err = NULL;
    tm_recorder *r = tm_recorder_new(path, two_senders, 2, NULL, &err);
    CHECK(r != NULL);
    tm_recorder_on_failure(r, on_failure, NULL);
    int64_t t0 = g_get_monotonic_time();
    int refused = 0;
    for (guint i = 0; i < rtp->len; i++) {
        pkt *k = &g_array_index(rtp, pkt, i);
        int64_t due = t0 + (int64_t)(k->pts / 1000);
        while (g_get_monotonic_time() < due)
            g_main_context_iteration(NULL, FALSE) || (g_usleep(1000), 0);
        gsize len;
        const uint8_t *d = g_bytes_get_data(k->data, &len);
        if (tm_recorder_push(r, k->track, d, len) == TM_EIO)
            refused++;
    }
    for (int64_t end = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
         !failures_seen && g_get_monotonic_time() < end;)
        g_main_context_iteration(NULL, FALSE) || (g_usleep(5000), 0);
    CHECK_EQ_INT(failures_seen, 1);
    printf("  failure: %s; %d pushes refused\n", failure_reason, refused);
    CHECK(refused > 0);
    tm_recorder_stats st;
    tm_recorder_stats_get(r, &st);
    CHECK(st.dropped >= (uint64_t)refused);
    done d;
    finish(r, &d);
    CHECK(d.res.status < 0);
    CHECK(strlen(d.failure) > 0);
    CHECK_EQ_INT(failures_seen, 1);
    return 0;
}

static void test_write_error(void)
{
    char *path = g_build_filename(dir, "full.mkv", NULL);
    char *argv[] = {(char *)self_exe, (char *)"--child-write-error", path, NULL};
    int status = -1;
    GError *e = NULL;
    CHECK(g_spawn_sync(NULL, argv, NULL, G_SPAWN_CHILD_INHERITS_STDIN, NULL, NULL, NULL, NULL,
                       &status, &e));
    CHECK(g_spawn_check_wait_status(status, NULL));
    g_free(path);
}

static void test_bad_input(void)
{
    char *err = NULL, *path = NULL;
    CHECK_EQ_INT(tm_recorder_make_path(dir, "../escape", 0, false, &path, &err), TM_EINVAL);
    g_free(err);
    err = NULL;
    CHECK_EQ_INT(tm_recorder_make_path(dir, "a/b", 0, false, &path, &err), TM_EINVAL);
    g_free(err);
    err = NULL;
    CHECK_EQ_INT(tm_recorder_make_path(dir, "v-1", 0, false, &path, &err), 0);
    char *want = g_build_filename(dir, "1970", "01", "01", "v-1.mkv", NULL);
    CHECK_STR(path, want);
    g_free(want);

    CHECK(tm_recorder_new(path, two_senders, 0, NULL, &err) == NULL);
    g_free(err);
    err = NULL;
    tm_recorder *r = tm_recorder_new(path, two_senders, 2, NULL, &err);
    CHECK(r != NULL);
    /* The file exists now: a second recorder on it is refused. */
    CHECK(tm_recorder_new(path, two_senders, 2, NULL, &err) == NULL);
    g_free(err);
    uint8_t big[TM_RECORDER_SLOT_BYTES + 1] = {0x80};
    CHECK_EQ_INT(tm_recorder_push(r, 5, big, 100), TM_EINVAL);
    CHECK_EQ_INT(tm_recorder_push(r, -1, big, 100), TM_EINVAL);
    CHECK_EQ_INT(tm_recorder_push(r, 0, big, 11), TM_EINVAL);
    CHECK_EQ_INT(tm_recorder_push(r, 0, big, sizeof(big)), TM_ETOOBIG);
    tm_recorder_stats st;
    tm_recorder_stats_get(r, &st);
    CHECK_EQ_INT(st.dropped, 4);
    CHECK_EQ_INT(st.pushed, 0);
    /* Nothing received: finishing reports a failed (empty) recording. */
    done d;
    finish(r, &d);
    CHECK(d.res.status < 0);
    CHECK_STR(d.failure, "no media was received");
    CHECK(!g_file_test(path, G_FILE_TEST_EXISTS)); /* no empty file left */
    tm_recorder_free(NULL);
    g_free(path);
}

int main(int argc, char **argv)
{
    gst_init(NULL, NULL);
    self_exe = argv[0];
    if (argc == 4 && strcmp(argv[1], "--child-record") == 0)
        return child_record(argv[2], strcmp(argv[3], "enc") == 0);
    if (argc == 3 && strcmp(argv[1], "--child-write-error") == 0)
        return child_write_error(argv[2]);
    dir = g_dir_make_tmp("tm-recorder-XXXXXX", NULL);
    CHECK(dir != NULL);
    /* One case per ctest entry (argv[1] names it), each well under 60 s;
     * no argument runs them all. */
    static const struct {
        const char *name;
        void (*fn)(void);
    } cases[] = {
        {"bad_input", test_bad_input},         {"two_senders", test_two_senders},
        {"silent_tracks", test_silent_tracks}, {"encrypted", test_encrypted},
        {"kill9_plain", test_kill9_plain},     {"kill9_encrypted", test_kill9_encrypted},
        {"write_error", test_write_error},     {"h264", test_h264},
        {"short_visit", test_short_visit},     {"reconnect", test_reconnect},
        {"burst_drops", test_burst_drops},     {"reorder", test_reorder},
    };
    int ran = 0;
    for (size_t i = 0; i < TM_ARRAY_LEN(cases); i++) {
        if (argc > 1 && strcmp(argv[1], cases[i].name) != 0)
            continue;
        cases[i].fn();
        printf("ok %s\n", cases[i].name);
        ran++;
    }
    CHECK(ran > 0);
    char *cmd = g_strdup_printf("rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    g_free(cmd);
    TEST_DONE();
}

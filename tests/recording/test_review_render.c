/*
 * test_review_render.c - the review render child on recordings made with the
 * recorder's own API (tm_recorder_*), as a visit whose sender set grew
 * would leave them: part 1 with two senders (patient 440 Hz, doctor
 * 1000 Hz), part 2 begun 4 s later with a third (nurse 1500 Hz), encrypted
 * at rest. `telemed-server render-review` renders both into one WebM; the
 * independent judge (review_probe) must hear every sender, the nurse only
 * in the second half and from the moment of the nurse's first packet (not
 * the part's row time, which the job also gives), and see a grid of five
 * tiles' worth of frames. Each
 * sender's picture is one flat colour, so the only detail in a tile is its
 * label: every tile shown has one along its bottom and none elsewhere, and
 * its width follows the length of that sender's role ("nurse" < "patient" <
 * "attending"), so no tile carries another's.
 *
 *   test_review_render SERVER_BIN REVIEW_PROBE
 *   test_review_render SERVER_BIN REVIEW_PROBE --bench SECONDS   (by hand)
 *
 * GStreamer makes the RTP (as test_recorder.c does); the recorder is pushed
 * at the senders' real pace, since it stamps arrival times itself.
 */
#include "telemed/common.h"
#include "telemed/recorder.h"
#include "tm_gst_rtp.h"
#include "tm_test.h"

#include <gio/gio.h>
#include <glib.h>
#include <gst/app/gstappsink.h>
#include <gst/gst.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECS 4
/* How much earlier than its first packet a part's row says it began (part
 * 1's row is written when the visit starts, before ICE and DTLS). */
#define ROW_LEAD_MS 1500
/* An onset is judged in the probe's 100 ms blocks, behind Opus's look-ahead
 * and the mixer's latency. */
#define ONSET_TOLERANCE_MS 300

static const uint8_t key[32] = {7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
                                7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7};

/* The video each sender sends: small in the test, a real visit's in --bench. */
static struct {
    int width, height, fps;
} sent = {320, 240, 15};

/* Each sender's picture: one dark flat colour (ARGB), told apart in a tile. */
static const uint32_t colours[] = {0xff802020, 0xff208020, 0xff202080, 0xff707020};

/* One sender's audio (a sine of hz) to track 2i and video to track 2i+1. */
static void add_sender(GArray *a, int i, int hz, int secs)
{
    char *au = g_strdup_printf("audiotestsrc num-buffers=%d samplesperbuffer=960 freq=%d ! "
                               "audio/x-raw,rate=48000,channels=1 ! opusenc ! rtpopuspay pt=111 ! "
                               "appsink name=out sync=false",
                               secs * 50, hz);
    char *v = g_strdup_printf(
        "videotestsrc num-buffers=%d pattern=solid-color foreground-color=%u ! "
        "video/x-raw,width=%d,height=%d,framerate=%d/1"
        " ! vp8enc deadline=1 cpu-used=8 keyframe-max-dist=%d target-bitrate=600000 ! "
        "rtpvp8pay pt=96 mtu=1200 ! appsink name=out sync=false",
        secs * sent.fps, colours[i], sent.width, sent.height, sent.fps, sent.fps);
    collect(au, 2 * i, a);
    collect(v, 2 * i + 1, a);
    g_free(au);
    g_free(v);
}

static void on_done(const tm_recorder_result *res, void *user)
{
    int *status = user;
    *status = res->status == 0 ? 1 : -1;
}

/* One part's packets, n senders (tones hz[]) in time order, made before
 * anything is recorded so parts can follow each other without a gap. */
static GArray *prepare_part(int n, const int *hz, int secs)
{
    GArray *a = g_array_new(FALSE, FALSE, sizeof(pkt));
    for (int i = 0; i < n; i++)
        add_sender(a, i, hz[i], secs);
    g_array_sort(a, by_pts);
    return a;
}

static tm_recorder *start_part(const char *path, int n, const uint8_t *k)
{
    static const char *const roles[] = {"patient", "attending", "nurse", "interpreter"};
    static char names[8][48];
    tm_recorder_track tracks[8];
    for (int i = 0; i < n; i++) {
        snprintf(names[2 * i], sizeof names[0], "%s-audio", roles[i]);
        snprintf(names[2 * i + 1], sizeof names[0], "%s-video", roles[i]);
        tracks[2 * i] = (tm_recorder_track){TM_REC_OPUS, 111, 48000, names[2 * i]};
        tracks[2 * i + 1] = (tm_recorder_track){TM_REC_VP8, 96, 90000, names[2 * i + 1]};
    }
    char *err = NULL;
    tm_recorder *r = tm_recorder_new(path, tracks, (size_t)(2 * n), k, &err);
    if (!r)
        fprintf(stderr, "recorder: %s\n", err);
    CHECK(r != NULL);
    return r;
}

/* Pushes a's packets (freed) into r at the senders' pace; returns the
 * monotonic time of the first push, the part's first packet. */
static int64_t play_part(tm_recorder *r, GArray *a)
{
    int64_t t0 = g_get_monotonic_time();
    for (guint i = 0; i < a->len; i++) {
        pkt *p = &g_array_index(a, pkt, i);
        int64_t due = t0 + (int64_t)(p->pts / 1000);
        int64_t now = g_get_monotonic_time();
        if (due > now)
            g_usleep((gulong)(due - now));
        gsize len;
        const uint8_t *d = g_bytes_get_data(p->data, &len);
        CHECK_EQ_INT(tm_recorder_push(r, p->track, d, len), 0);
        g_bytes_unref(p->data);
    }
    g_array_free(a, TRUE);
    return t0;
}

/* Waits for the recorders' results (status 1 each). */
static void wait_done(const int *status, int n)
{
    int64_t end = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;
    for (int i = 0; i < n; i++) {
        while (!status[i] && g_get_monotonic_time() < end)
            g_main_context_iteration(NULL, FALSE) || (g_usleep(5000), 0);
        CHECK_EQ_INT(status[i], 1);
    }
}

/* Records one part of n senders (tones hz[]) at path through the recorder. */
static void record_part(const char *path, int n, const int *hz, const uint8_t *k, int secs)
{
    GArray *a = prepare_part(n, hz, secs);
    tm_recorder *r = start_part(path, n, k);
    play_part(r, a);
    int status = 0;
    tm_recorder_finish(r, on_done, &status);
    wait_done(&status, 1);
}

/* Runs argv with stdin_text; returns its stdout (g_free) and exit status. */
static char *run(const char *const *argv, const char *stdin_text, int *status)
{
    GError *e = NULL;
    GSubprocess *p =
        g_subprocess_newv(argv, G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE, &e);
    CHECK(p != NULL);
    char *out = NULL;
    CHECK(g_subprocess_communicate_utf8(p, stdin_text, NULL, &out, NULL, &e));
    *status = g_subprocess_get_exit_status(p);
    g_object_unref(p);
    return out;
}

static double field(const char *text, const char *line_start, const char *key_eq)
{
    const char *l = strstr(text, line_start);
    CHECK(l != NULL);
    const char *k = strstr(l, key_eq);
    CHECK(k != NULL);
    return atof(k + strlen(key_eq));
}

/* By hand (tests/bench/README.md): what a rendition costs per minute of a
 * visit of k senders sending 640x360@30, rendered as the server does. */
static void bench(const char *server, int secs)
{
    static const int hz[] = {440, 1000, 1500, 2000};
    sent.width = 640;
    sent.height = 360;
    sent.fps = 30;
    char *dir = g_dir_make_tmp("tm-review-bench-XXXXXX", NULL);
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", key[i]);
    for (int k = 2; k <= 4; k++) {
        char *in = g_strdup_printf("%s/k%d.mkv.enc", dir, k);
        char *out = g_strdup_printf("%s/k%d.review.webm.enc", dir, k);
        record_part(in, k, hz, key, secs);
        json_t *job = json_pack("{s:s, s:s, s:b, s:i, s:i, s:i, s:i, s:i, s:[{s:s, s:b, s:i}]}",
                                "out", out, "key", hex, "encrypt", 1, "width", 640, "height", 360,
                                "fps", 15, "video_kbps", 500, "audio_kbps", 48, "parts", "path", in,
                                "encrypted", 1, "offset_ms", 0);
        char *text = json_dumps(job, JSON_COMPACT);
        json_decref(job);
        const char *argv[] = {server, "render-review", NULL};
        int status = -1;
        char *res_text = run(argv, text, &status);
        json_t *res = json_loads(res_text, JSON_DISABLE_EOF_CHECK, NULL);
        CHECK(json_is_true(json_object_get(res, "ok")));
        double media_s = (double)json_integer_value(json_object_get(res, "duration_ms")) / 1000;
        double cpu_s = (double)json_integer_value(json_object_get(res, "cpu_ms")) / 1000;
        double wall_s = (double)json_integer_value(json_object_get(res, "wall_ms")) / 1000;
        double mb = (double)json_integer_value(json_object_get(res, "size_bytes")) / 1e6;
        printf("review_bench senders=%d media_s=%.1f cpu_s=%.2f wall_s=%.2f size_mb=%.2f | per "
               "minute of visit: cpu_s=%.2f wall_s=%.2f size_mb=%.2f\n",
               k, media_s, cpu_s, wall_s, mb, cpu_s * 60 / media_s, wall_s * 60 / media_s,
               mb * 60 / media_s);
        fflush(stdout);
        json_decref(res);
        g_free(res_text);
        free(text);
        g_free(in);
        g_free(out);
    }
    char *cmd = g_strdup_printf("rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    g_free(cmd);
    g_free(dir);
}

/* The rendition's first picture at or after at_ms, as RGB rows of stride
 * bytes (g_free). */
static guint8 *frame_at(const char *webm, int64_t at_ms, int *w, int *h, int *stride)
{
    char *desc =
        g_strdup_printf("filesrc location=\"%s\" ! matroskademux ! vp8dec ! videoconvert ! "
                        "video/x-raw,format=RGB ! appsink name=out sync=false",
                        webm);
    GstElement *p = gst_parse_launch(desc, NULL);
    g_free(desc);
    CHECK(p != NULL);
    GstElement *sink = gst_bin_get_by_name(GST_BIN(p), "out");
    CHECK(gst_element_set_state(p, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
    guint8 *rgb = NULL;
    GstSample *s;
    while (!rgb && (s = gst_app_sink_pull_sample(GST_APP_SINK(sink)))) {
        GstBuffer *b = gst_sample_get_buffer(s);
        GstStructure *st = gst_caps_get_structure(gst_sample_get_caps(s), 0);
        if (GST_BUFFER_PTS(b) >= (GstClockTime)at_ms * GST_MSECOND &&
            gst_structure_get_int(st, "width", w) && gst_structure_get_int(st, "height", h)) {
            GstMapInfo map;
            CHECK(gst_buffer_map(b, &map, GST_MAP_READ));
            *stride = (*w * 3 + 3) & ~3;
            CHECK(map.size >= (gsize)(*stride * *h));
            rgb = g_memdup2(map.data, (gsize)(*stride * *h));
            gst_buffer_unmap(b, &map);
        }
        gst_sample_unref(s);
    }
    gst_element_set_state(p, GST_STATE_NULL);
    gst_object_unref(sink);
    gst_object_unref(p);
    CHECK(rgb != NULL);
    return rgb;
}

/* What one tile of the grid shows: whose colour fills it (-1: none of
 * theirs, an empty tile), and the label's extent: bright pixels along its
 * bottom quarter (text_px, the rightmost at text_right), and elsewhere. */
typedef struct tile_look {
    int sender, text_px, text_right, stray_px;
} tile_look;

static tile_look look_at_tile(const guint8 *rgb, int stride, int x0, int y0, int tw, int th)
{
    tile_look t = {-1, 0, -1, 0};
    const guint8 *c = rgb + (y0 + th / 3) * stride + (x0 + tw - 8) * 3; /* right, above the label */
    for (int i = 0; i < (int)G_N_ELEMENTS(colours); i++) {
        int d = 0;
        for (int k = 0; k < 3; k++)
            d += abs((int)c[k] - (int)((colours[i] >> (16 - 8 * k)) & 0xff));
        if (d < 60)
            t.sender = i;
    }
    for (int y = y0 + 2; y < y0 + th - 2; y++)
        for (int x = x0 + 2; x < x0 + tw - 2; x++) {
            const guint8 *px = rgb + y * stride + x * 3;
            if (px[0] < 200 || px[1] < 200 || px[2] < 200)
                continue;
            if (y >= y0 + th * 3 / 4) {
                t.text_px++;
                t.text_right = x - x0 > t.text_right ? x - x0 : t.text_right;
            } else {
                t.stray_px++;
            }
        }
    return t;
}

/* At at_ms the senders in want[] (n of them) each fill one tile, labelled
 * with their role: the label widths in role-length order. */
static void check_labels(const char *webm, int64_t at_ms, const int *want, int n)
{
    int w, h, stride;
    guint8 *rgb = frame_at(webm, at_ms, &w, &h, &stride);
    const int cols = 3, rows = 2; /* five tiles */
    int right[G_N_ELEMENTS(colours)] = {0}, seen = 0;
    for (int i = 0; i < cols * rows; i++) {
        tile_look t = look_at_tile(rgb, stride, (i % cols) * (w / cols), (i / cols) * (h / rows),
                                   w / cols, h / rows);
        printf("labels at_ms=%lld tile=%d sender=%d text_px=%d text_right=%d stray_px=%d\n",
               (long long)at_ms, i, t.sender, t.text_px, t.text_right, t.stray_px);
        CHECK(t.stray_px < 10);
        if (t.sender < 0)
            continue;
        CHECK(t.text_px > 30);
        right[t.sender] = t.text_right;
        seen++;
    }
    CHECK_EQ_INT(seen, n);
    /* patient (0) 7 letters, attending (1) 9, nurse (2) 5. */
    for (int i = 0; i < n; i++)
        CHECK(right[want[i]] > 0);
    CHECK(right[1] > right[0]);
    if (n > 2)
        CHECK(right[2] < right[0]);
    g_free(rgb);
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[3], "--bench") == 0) {
        gst_init(NULL, NULL);
        bench(argv[1], atoi(argv[4]) > 0 ? atoi(argv[4]) : 60);
        return 0;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: test_review_render SERVER_BIN REVIEW_PROBE [--bench SECONDS]\n");
        return 2;
    }
    gst_init(NULL, NULL);
    char *dir = g_dir_make_tmp("tm-review-XXXXXX", NULL);
    CHECK(dir != NULL);
    char *part1 = g_build_filename(dir, "v-grow.mkv.enc", NULL);
    char *part2 = g_build_filename(dir, "v-grow.part2.mkv.enc", NULL);
    char *out = g_build_filename(dir, "v-grow.review.webm.enc", NULL);
    /* As in a visit: part 2 begins with the nurse's first packet, as part 1
     * ends; the parts' rows, which the job's offsets come from, were written
     * before (part 1's before any media flowed), and must not place it. */
    const int two[] = {440, 1000}, three[] = {440, 1000, 1500};
    GArray *a1 = prepare_part(2, two, SECS), *a2 = prepare_part(3, three, SECS);
    tm_recorder *r1 = start_part(part1, 2, key);
    int64_t first1 = play_part(r1, a1);
    tm_recorder *r2 = start_part(part2, 3, key);
    int status_parts[2] = {0, 0};
    tm_recorder_finish(r1, on_done, &status_parts[0]);
    int64_t first2 = play_part(r2, a2);
    tm_recorder_finish(r2, on_done, &status_parts[1]);
    wait_done(status_parts, 2);
    int64_t joined_ms = (first2 - first1) / 1000;
    int64_t row_offset_ms = joined_ms + ROW_LEAD_MS;

    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", key[i]);
    json_t *job =
        json_pack("{s:s, s:s, s:b, s:i, s:i, s:i, s:i, s:i, s:[{s:s, s:b, s:i}, {s:s, s:b, s:i}]}",
                  "out", out, "key", hex, "encrypt", 1, "width", 640, "height", 360, "fps", 15,
                  "video_kbps", 500, "audio_kbps", 48, "parts", "path", part1, "encrypted", 1,
                  "offset_ms", 0, "path", part2, "encrypted", 1, "offset_ms", (int)row_offset_ms);
    char *job_text = json_dumps(job, JSON_COMPACT);
    json_decref(job);
    int status = -1;
    const char *render_argv[] = {argv[1], "render-review", NULL};
    char *res_text = run(render_argv, job_text, &status);
    printf("render: %s", res_text);
    CHECK_EQ_INT(status, 0);
    json_t *res = json_loads(res_text, JSON_DISABLE_EOF_CHECK, NULL);
    CHECK(json_is_true(json_object_get(res, "ok")));
    CHECK_STR(json_string_value(json_object_get(res, "placed_by")), "first_packet");
    /* Encrypted like the evidence: decrypted before it is played. */
    CHECK(json_string_value(json_object_get(res, "plain_sha256")) != NULL);
    int64_t dur = json_integer_value(json_object_get(res, "duration_ms"));
    CHECK(dur >= 2 * SECS * 1000 - 1000);

    char *plain = g_build_filename(dir, "plain.webm", NULL);
    const char *dec_argv[] = {argv[1], "decrypt-recording", out, plain, "--key-file", NULL, NULL};
    char *key_file = g_build_filename(dir, "key", NULL);
    CHECK(g_file_set_contents(key_file, hex, -1, NULL));
    dec_argv[5] = key_file;
    char *dec_out = run(dec_argv, "", &status);
    CHECK_EQ_INT(status, 0);

    const char *probe_argv[] = {argv[2], plain, "440,1000,1500,700", "120", NULL};
    char *probe = run(probe_argv, "", &status);
    printf("%s", probe);
    CHECK_EQ_INT(status, 0);
    CHECK(field(probe, "video ", "frames=") >= SECS * 15);
    for (int i = 0; i < 3; i++) {
        char line[32];
        snprintf(line, sizeof line, "tone hz=%d ", three[i]);
        CHECK(field(probe, line, "share=") > 0.03);
    }
    /* The nurse joined in part 2: heard in about its half of the blocks. */
    double of = field(probe, "tone hz=1500 ", "of=");
    double nurse = field(probe, "tone hz=1500 ", "blocks=");
    CHECK(nurse >= of * 0.35 && nurse <= of * 0.65);
    CHECK(field(probe, "tone hz=440 ", "blocks=") >= of * 0.8);
    /* The nurse is heard from when the nurse's first packet came, not from
     * the part's row time (ROW_LEAD_MS later); everyone else from the start. */
    double onset = field(probe, "tone hz=1500 ", "first_ms=");
    printf("nurse onset %.0f ms, first packet %lld ms after part 1's, row time %lld ms\n", onset,
           (long long)joined_ms, (long long)row_offset_ms);
    CHECK(onset >= (double)(joined_ms - ONSET_TOLERANCE_MS) &&
          onset <= (double)(joined_ms + ONSET_TOLERANCE_MS));
    CHECK(field(probe, "tone hz=440 ", "first_ms=") <= ONSET_TOLERANCE_MS);
    CHECK(field(probe, "tone hz=1000 ", "first_ms=") <= ONSET_TOLERANCE_MS);
    CHECK(field(probe, "tone hz=700 ", "share=") < 0.01);

    const int first[] = {0, 1}, second[] = {0, 1, 2};
    check_labels(plain, SECS * 1000 / 2, first, 2);
    check_labels(plain, SECS * 1000 * 3 / 2, second, 3);

    g_free(probe);
    g_free(dec_out);
    g_free(key_file);
    g_free(plain);
    g_free(res_text);
    json_decref(res);
    free(job_text);
    char *cmd = g_strdup_printf("rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    g_free(cmd);
    g_free(out);
    g_free(part1);
    g_free(part2);
    g_free(dir);
    TEST_DONE();
}

/*
 * test_media_record_party.c - the recording of a visit of three, one of whom
 * joins after the recording started. Each member sends its own tone. The
 * file holds the senders known when it started; the late joiner's first
 * packet ends that part and starts the next with all three. The test
 * decodes every part the way a player would (matroskademux, opusdec) and
 * finds each member's tone on a track named after that member's label, so
 * everyone who spoke is in the evidence.
 */
#include <gst/gst.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "media_test_peer.h"
#include "telemed/media.h"
#include "telemed/recorder.h"

#define VISIT "v-rec-party"
#define N 3
#define MAX_PARTS 4

static test_peer *peers[N];
static const char *const ids[N] = {"patient:p-1", "doctor:d-li", "doctor:d-wu"};
static const char *const labels[N] = {"patient p-1", "attending d-li", "consulting d-wu"};

typedef struct part {
    bool started, done; /* part_cb came; its result came */
    bool started_before_done;
    char path[4096];
    tm_recorder_result res;
} part;
static part parts[MAX_PARTS + 1];
static int results;

static void on_event(const tm_media_event *ev, void *user)
{
    test_peer_on_event(peers, N, ev);
}

static void on_part(const char *visit_id, int n, const char *path, void *user)
{
    printf("part %d started: %s\n", n, path);
    if (n < 2 || n > MAX_PARTS || strcmp(visit_id, VISIT) != 0)
        FAIL("part %d of %s", n, visit_id);
    parts[n].started = true;
    g_strlcpy(parts[n].path, path, sizeof parts[n].path);
}

static void on_recording(const char *visit_id, const tm_recorder_result *res, void *user)
{
    printf("part %d: status %d %s, %lld bytes, %lld ms, last %d\n", res->part, res->status,
           res->failure ? res->failure : "", (long long)res->size_bytes,
           (long long)res->duration_ms, res->last);
    if (res->part < 1 || res->part > MAX_PARTS || parts[res->part].done)
        FAIL("result of part %d", res->part);
    part *pt = &parts[res->part];
    pt->done = true;
    pt->started_before_done = res->part == 1 || pt->started;
    pt->res = *res;
    pt->res.failure = NULL;
    if (res->part > 1 && strcmp(pt->path, res->path) != 0)
        FAIL("part %d result path %s, started as %s", res->part, res->path, pt->path);
    g_strlcpy(pt->path, res->path, sizeof pt->path);
    results++;
}

static bool decoding(void *u)
{
    int want = *(int *)u;
    for (int i = 0; i < N; i++)
        if (peers[i] && g_atomic_int_get(&peers[i]->video_frames) < want)
            return false;
    return true;
}

static bool part_started(void *u)
{
    return parts[*(int *)u].started;
}

static bool all_results(void *u)
{
    return results >= *(int *)u;
}

/* ---- reading a part back ---- */

typedef struct track {
    char name[128];
    bool audio;
    double energy[TEST_N_TONES];
    guint64 buffers;
} track;

typedef struct reading {
    GstElement *pipeline;
    GMutex lock;
    int n;
    track tracks[TM_RECORDER_MAX_TRACKS];
} reading;

static GstPadProbeReturn on_tags(GstPad *pad, GstPadProbeInfo *info, gpointer user)
{
    track *t = user;
    GstEvent *ev = GST_PAD_PROBE_INFO_EVENT(info);
    if (GST_EVENT_TYPE(ev) == GST_EVENT_TAG) {
        GstTagList *tags = NULL;
        gchar *title = NULL;
        gst_event_parse_tag(ev, &tags);
        if (tags && gst_tag_list_get_string(tags, GST_TAG_TITLE, &title)) {
            g_strlcpy(t->name, title, sizeof t->name);
            g_free(title);
        }
    }
    return GST_PAD_PROBE_OK;
}

static void on_pcm(GstElement *sink, GstBuffer *buf, GstPad *pad, gpointer user)
{
    track *t = user;
    GstMapInfo map;
    if (!t->audio) {
        t->buffers++;
        return;
    }
    if (!gst_buffer_map(buf, &map, GST_MAP_READ))
        return;
    for (int k = 0; k < TEST_N_TONES; k++)
        t->energy[k] += test_goertzel((const int16_t *)map.data, map.size / 2, test_tones[k]);
    t->buffers++;
    gst_buffer_unmap(buf, &map);
}

static void on_demux_pad(GstElement *demux, GstPad *pad, gpointer user)
{
    reading *r = user;
    g_mutex_lock(&r->lock);
    track *t = r->n < TM_RECORDER_MAX_TRACKS ? &r->tracks[r->n++] : NULL;
    g_mutex_unlock(&r->lock);
    if (!t)
        return;
    gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, on_tags, t, NULL);
    t->audio = g_str_has_prefix(GST_PAD_NAME(pad), "audio");
    const char *desc = t->audio ? "queue ! opusdec ! audioconvert ! audioresample ! "
                                  "audio/x-raw,format=S16LE,channels=1,rate=48000 ! "
                                  "fakesink name=sink sync=false signal-handoffs=true"
                                : "queue ! fakesink name=sink sync=false signal-handoffs=true";
    GstElement *bin = gst_parse_bin_from_description(desc, TRUE, NULL);
    if (!bin)
        FAIL("cannot make the decoder of %s", GST_PAD_NAME(pad));
    GstElement *sink = gst_bin_get_by_name(GST_BIN(bin), "sink");
    g_signal_connect(sink, "handoff", G_CALLBACK(on_pcm), t);
    gst_object_unref(sink);
    gst_bin_add(GST_BIN(r->pipeline), bin);
    gst_element_sync_state_with_parent(bin);
    GstPad *sinkpad = gst_element_get_static_pad(bin, "sink");
    gst_pad_link(pad, sinkpad);
    gst_object_unref(sinkpad);
}

/* Decodes a part; returns a bit per member whose tone is the one tone of an
 * audio track named after that member's label, and the video tracks that
 * have frames in *videos. */
static unsigned tones_in(const char *path, int *videos)
{
    reading r = {0};
    g_mutex_init(&r.lock);
    r.pipeline = gst_pipeline_new(NULL);
    GstElement *src = gst_element_factory_make("filesrc", NULL);
    GstElement *demux = gst_element_factory_make("matroskademux", NULL);
    g_object_set(src, "location", path, NULL);
    gst_bin_add_many(GST_BIN(r.pipeline), src, demux, NULL);
    if (!gst_element_link(src, demux))
        FAIL("filesrc ! matroskademux");
    g_signal_connect(demux, "pad-added", G_CALLBACK(on_demux_pad), &r);
    gst_element_set_state(r.pipeline, GST_STATE_PLAYING);
    GstBus *bus = gst_element_get_bus(r.pipeline);
    GstMessage *msg =
        gst_bus_timed_pop_filtered(bus, 60 * GST_SECOND, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
    if (!msg || GST_MESSAGE_TYPE(msg) != GST_MESSAGE_EOS)
        FAIL("%s does not play to the end", path);
    gst_message_unref(msg);
    gst_object_unref(bus);
    gst_element_set_state(r.pipeline, GST_STATE_NULL);
    gst_object_unref(r.pipeline);
    unsigned found = 0;
    *videos = 0;
    for (int i = 0; i < r.n; i++) {
        track *t = &r.tracks[i];
        *videos += !t->audio && t->buffers > 0;
        double sum = 0;
        int best = 0;
        for (int k = 0; k < TEST_N_TONES; k++) {
            sum += t->energy[k];
            if (t->energy[k] > t->energy[best])
                best = k;
        }
        bool clear = t->audio && sum > 0 && t->energy[best] > 0.8 * sum;
        printf("  track %d \"%s\" %s buffers=%llu tone=%d\n", i, t->name,
               t->audio ? "audio" : "video", (unsigned long long)t->buffers, clear ? best : -1);
        if (!clear || best >= N)
            continue;
        if (!g_str_has_prefix(t->name, labels[best]))
            FAIL("member %d's tone is on track \"%s\", want \"%s audio\"", best, t->name,
                 labels[best]);
        found |= 1u << best;
    }
    g_mutex_clear(&r.lock);
    return found;
}

int main(int argc, char **argv)
{
    gst_init(&argc, &argv);
    setvbuf(stdout, NULL, _IOLBF, 0);
    GMainContext *ctx = g_main_context_default();
    char *dir = g_dir_make_tmp("tm-media-rec-party-XXXXXX", NULL);
    char *path = NULL, *err = NULL;
    if (!dir || tm_recorder_make_path(dir, VISIT, g_get_real_time() / 1000, false, &path, &err))
        FAIL("recording path: %s", err ? err : "");
    tm_media_options opts = {.workers = 1, .addresses = "127.0.0.1"};
    test_media_options(&opts);
    tm_media *m = tm_media_new(&opts, ctx, on_event, NULL, &err);
    if (!m)
        FAIL("tm_media_new: %s", err);
    if (tm_media_visit_record(m, VISIT, path, NULL, 2, on_recording, NULL) != 0 ||
        tm_media_visit_record_parts(m, VISIT, on_part) != 0)
        FAIL("tm_media_visit_record");
    if (tm_media_set_label(m, VISIT, ids[0],
                           "patient p-1 with a label far too long to be a label "
                           "of ids and roles") != TM_EINVAL)
        FAIL("a label over 63 bytes was taken");
    for (int i = 0; i < N; i++)
        if (tm_media_set_label(m, VISIT, ids[i], labels[i]) != 0)
            FAIL("tm_media_set_label");

    peers[0] = test_peer_new_party(m, VISIT, ids[0], 320, 240, 0, 0.3, 1);
    peers[1] = test_peer_new_party(m, VISIT, ids[1], 352, 240, 1, 0.3, 1);
    int want = 45;
    if (!peers[0] || !peers[1] || !test_wait(ctx, 30000, decoding, &want))
        FAIL("the first two members did not get going");

    /* The consulting doctor joins the recorded visit late (the two have a free
     * recvonly pair for it already). */
    peers[2] = test_peer_new_party(m, VISIT, ids[2], 384, 240, 2, 0.3, 1);
    int two = 2;
    if (!peers[2] || !test_wait(ctx, 30000, part_started, &two))
        FAIL("no second part when a member joined late");
    want = g_atomic_int_get(&peers[2]->video_frames) + 45;
    if (!test_wait(ctx, 30000, decoding, &want))
        FAIL("the visit of three did not go on");
    tm_media_visit_close(m, VISIT);
    if (!test_wait(ctx, 30000, all_results, &two))
        FAIL("want two part results, got %d", results);

    for (int n = 1; n <= 2; n++) {
        part *pt = &parts[n];
        if (pt->res.status != 0 || pt->res.part != n || pt->res.last != (n == 2))
            FAIL("part %d: status %d last %d", n, pt->res.status, pt->res.last);
        if (!pt->started_before_done)
            FAIL("part %d's result came before it was announced", n);
        gchar *data = NULL;
        gsize len = 0;
        if (!g_file_get_contents(pt->path, &data, &len, NULL) || (gint64)len != pt->res.size_bytes)
            FAIL("part %d: file size does not match", n);
        gchar *sum = g_compute_checksum_for_data(G_CHECKSUM_SHA256, (const guchar *)data, len);
        if (strcmp(sum, pt->res.sha256) != 0)
            FAIL("part %d: sha256 does not match the file", n);
        g_free(sum);
        g_free(data);
    }
    char *want_path2 = g_strdup(path);
    *strstr(want_path2, ".mkv") = '\0';
    char *p2 = g_strdup_printf("%s-part2.mkv", want_path2);
    if (strcmp(parts[2].path, p2) != 0)
        FAIL("part 2 at %s, want %s", parts[2].path, p2);

    printf("part 1 (%s):\n", parts[1].path);
    int videos1, videos2;
    unsigned first = tones_in(parts[1].path, &videos1);
    printf("part 2 (%s):\n", parts[2].path);
    unsigned second = tones_in(parts[2].path, &videos2);
    if (first != 0x3 || videos1 != 2)
        FAIL("part 1 should hold the first two members' tones and videos (tones %x, %d videos)",
             first, videos1);
    if (second != 0x7 || videos2 != 3)
        FAIL("part 2 should hold all three members' tones and videos (tones %x, %d videos)", second,
             videos2);

    for (int i = 0; i < N; i++)
        test_peer_free(peers[i]);
    tm_media_free(m);
    if (!g_getenv("TEST_KEEP_FILES")) {
        remove(parts[1].path);
        remove(parts[2].path);
    }
    g_free(p2);
    g_free(want_path2);
    g_free(path);
    printf("ok media record party\n");
    return 0;
}

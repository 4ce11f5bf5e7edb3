/*
 * test_media_record.c - a 1:1 visit recorded through the media core: the
 * workers feed every sender's decrypted RTP to the visit's recorder, and
 * closing the visit finishes the file and reports it (status, size, duration,
 * SHA-256 of the file as stored) on the control context. Also Safari's
 * codec: an H.264 visit recorded as H.264 tracks of the senders' sizes.
 */
#include <gst/gst.h>
#include <gst/pbutils/pbutils.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "media_test_peer.h"
#include "telemed/media.h"
#include "telemed/recorder.h"

static test_peer *peers[2];
static bool done;
static const char *recording_visit = "v-rec";
static tm_recorder_result result;
static char result_path[4096], result_failure[256];

static void on_event(const tm_media_event *ev, void *user)
{
    test_peer_on_event(peers, 2, ev);
}

static void on_recording(const char *visit_id, const tm_recorder_result *res, void *user)
{
    if (strcmp(visit_id, recording_visit) != 0)
        FAIL("recording result for %s", visit_id);
    result = *res;
    g_strlcpy(result_path, res->path ? res->path : "", sizeof result_path);
    g_strlcpy(result_failure, res->failure ? res->failure : "", sizeof result_failure);
    done = true;
}

static bool decoding(void *u)
{
    int want = *(int *)u;
    return g_atomic_int_get(&peers[0]->video_frames) >= want &&
           g_atomic_int_get(&peers[1]->video_frames) >= want;
}

static bool patient_sending(void *u)
{
    return strcmp(peers[0]->state, "connected") == 0;
}

/* The patient alone, after its packets have flowed for a while. */
static bool patient_recorded(void *u)
{
    return strcmp(peers[0]->state, "connected") == 0 &&
           g_atomic_int_get(&peers[0]->video_frames) == 0 &&
           peers[0]->stats_events >= *(int *)u / 10;
}

static bool finished(void *u)
{
    return done;
}

/* Both senders on H.264 (constrained baseline, openh264 through webrtcbin's
 * payloader): the file holds two H.264 tracks at the senders' sizes, which
 * the recorder took from their SPS. */
static void record_h264(tm_media *m, GMainContext *ctx, const char *path)
{
    GstElementFactory *f = gst_element_factory_find("openh264enc");
    if (!f) {
        printf("openh264 not installed: H.264 recording not tested\n");
        return;
    }
    gst_object_unref(f);
    done = false;
    recording_visit = "v-rec-h264";
    if (tm_media_visit_record(m, "v-rec-h264", path, NULL, 2, on_recording, NULL) != 0)
        FAIL("H.264 recording");
    peers[0] = test_peer_new_codec(m, "v-rec-h264", "patient", 320, 240, "H264");
    peers[1] = test_peer_new_codec(m, "v-rec-h264", "doctor", 352, 288, "H264");
    int want = 90;
    if (!peers[0] || !peers[1] || !test_wait(ctx, 30000, decoding, &want))
        FAIL("H.264 visit did not run");
    tm_media_visit_close(m, "v-rec-h264");
    if (!test_wait(ctx, 20000, finished, NULL))
        FAIL("no H.264 recording result");
    printf("H.264 recording: status %d %s, %lld bytes, %lld ms, pushed %llu dropped %llu\n",
           result.status, result_failure, (long long)result.size_bytes,
           (long long)result.duration_ms, (unsigned long long)result.stats.pushed,
           (unsigned long long)result.stats.dropped);
    if (result.status != 0 || result.duration_ms < 2000)
        FAIL("H.264 recording failed or short: %s", result_failure);
    GstDiscoverer *disc = gst_discoverer_new(10 * GST_SECOND, NULL);
    char *uri = g_filename_to_uri(path, NULL, NULL);
    GstDiscovererInfo *info = disc ? gst_discoverer_discover_uri(disc, uri, NULL) : NULL;
    if (!info)
        FAIL("the H.264 file does not play");
    GList *v = gst_discoverer_info_get_video_streams(info);
    int sizes = 0;
    for (GList *l = v; l; l = l->next) {
        GstDiscovererVideoInfo *vi = l->data;
        GstCaps *caps = gst_discoverer_stream_info_get_caps(l->data);
        const char *codec = gst_structure_get_name(gst_caps_get_structure(caps, 0));
        unsigned w = gst_discoverer_video_info_get_width(vi);
        unsigned h = gst_discoverer_video_info_get_height(vi);
        printf("H.264 file: %s %ux%u\n", codec, w, h);
        if (strcmp(codec, "video/x-h264") != 0)
            FAIL("video track is %s", codec);
        sizes |= (w == 320 && h == 240) ? 1 : (w == 352 && h == 288) ? 2 : 4;
        gst_caps_unref(caps);
    }
    if (g_list_length(v) != 2 || sizes != 3)
        FAIL("want two H.264 tracks, 320x240 and 352x288");
    gst_discoverer_stream_info_list_free(v);
    gst_discoverer_info_unref(info);
    g_object_unref(disc);
    g_free(uri);
    test_peer_free(peers[0]);
    test_peer_free(peers[1]);
    remove(path);
    recording_visit = "v-rec";
}

int main(int argc, char **argv)
{
    gst_init(&argc, &argv);
    GMainContext *ctx = g_main_context_default();
    char *dir = g_dir_make_tmp("tm-media-rec-XXXXXX", NULL);
    char *path = NULL, *err = NULL;
    if (!dir || tm_recorder_make_path(dir, "v-rec", g_get_real_time() / 1000, false, &path, &err))
        FAIL("recording path: %s", err ? err : "");
    tm_media_options opts = {.workers = 1, .addresses = "127.0.0.1"};
    test_media_options(&opts);
    tm_media *m = tm_media_new(&opts, ctx, on_event, NULL, &err);
    if (!m)
        FAIL("tm_media_new: %s", err);
    if (tm_media_visit_record(m, "v-rec", path, NULL, 2, on_recording, NULL) != 0)
        FAIL("tm_media_visit_record");
    if (tm_media_visit_record(m, "v-rec", path, NULL, 2, on_recording, NULL) != TM_ECONFLICT)
        FAIL("a second recording of the same visit was accepted");
    /* The doctor comes 1.5 s after the patient is already sending: the
     * recording waits for both senders and holds both sides. */
    peers[0] = test_peer_new(m, "v-rec", "patient", 320, 240);
    int one = 10;
    if (!peers[0] || !test_wait(ctx, 20000, patient_sending, &one))
        FAIL("patient not connected");
    g_usleep(1500000);
    peers[1] = test_peer_new(m, "v-rec", "doctor", 352, 288);
    int want = 60;
    if (!peers[0] || !peers[1] || !test_wait(ctx, 30000, decoding, &want))
        FAIL("visit did not run");
    /* A participant leaving does not end the recording; closing the visit does. */
    tm_media_peer_close(m, "v-rec", "patient");
    test_wait(ctx, 300, finished, NULL);
    if (done)
        FAIL("the recording ended when one participant left");
    tm_media_visit_close(m, "v-rec");
    if (!test_wait(ctx, 20000, finished, NULL))
        FAIL("no recording result");
    printf("recording: status %d %s, %lld bytes, %lld ms, pushed %llu dropped %llu, sha256 %s\n",
           result.status, result_failure, (long long)result.size_bytes,
           (long long)result.duration_ms, (unsigned long long)result.stats.pushed,
           (unsigned long long)result.stats.dropped, result.sha256);
    if (result.status != 0)
        FAIL("recording failed: %s", result_failure);
    if (strcmp(result_path, path) != 0)
        FAIL("path %s, want %s", result_path, path);
    gchar *data = NULL;
    gsize len = 0;
    if (!g_file_get_contents(path, &data, &len, NULL) || (gint64)len != result.size_bytes)
        FAIL("file size does not match the result");
    gchar *sum = g_compute_checksum_for_data(G_CHECKSUM_SHA256, (const guchar *)data, len);
    if (strcmp(sum, result.sha256) != 0)
        FAIL("sha256 %s, file has %s", result.sha256, sum);
    if (result.duration_ms < 3000 || result.stats.pushed < 300)
        FAIL("recording too short");
    /* What a player sees: both senders' audio and video. */
    GstDiscoverer *disc = gst_discoverer_new(10 * GST_SECOND, NULL);
    char *uri = g_filename_to_uri(path, NULL, NULL);
    GstDiscovererInfo *info = disc ? gst_discoverer_discover_uri(disc, uri, NULL) : NULL;
    if (!info)
        FAIL("the file does not play");
    GList *a = gst_discoverer_info_get_audio_streams(info);
    GList *v = gst_discoverer_info_get_video_streams(info);
    printf("file has %u audio and %u video tracks\n", g_list_length(a), g_list_length(v));
    if (g_list_length(a) != 2 || g_list_length(v) != 2)
        FAIL("want both senders' audio and video in the file");
    gst_discoverer_stream_info_list_free(a);
    gst_discoverer_stream_info_list_free(v);
    gst_discoverer_info_unref(info);
    g_object_unref(disc);
    g_free(uri);
    if (result.stats.dropped > result.stats.pushed / 20)
        FAIL("too many packets dropped on the way to the recorder");

    g_free(sum);
    g_free(data);
    test_peer_free(peers[0]);
    test_peer_free(peers[1]);
    remove(path);

    record_h264(m, ctx, path);

    /* Shutdown right after a visit ends (server stopping): the file is still
     * finished before tm_media_free returns. */
    done = false;
    if (tm_media_visit_record(m, "v-rec2", path, NULL, 1, on_recording, NULL) != 0)
        FAIL("second recording");
    peers[0] = test_peer_new(m, "v-rec2", "patient", 320, 240);
    peers[1] = NULL;
    int frames = 30;
    if (!peers[0] || !test_wait(ctx, 20000, patient_recorded, &frames))
        FAIL("second visit did not run");
    tm_media_visit_close(m, "v-rec2");
    tm_media_free(m);
    if (!g_file_get_contents(path, &data, &len, NULL) || len < 1000)
        FAIL("no finished file after close + free");
    g_free(data);
    test_peer_free(peers[0]);
    remove(path);
    g_free(path);
    printf("ok media record\n");
    return 0;
}

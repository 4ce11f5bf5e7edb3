/*
 * test_media_record_fail.c - a recording that fails during a visit (issue 4,
 * a full disk): the visit goes on, the control context gets exactly one
 * TM_MEDIA_EV_RECORDING_FAILED (visit id, reason) per failed recording, and
 * closing the visit reports the recording as failed.
 *
 * A full disk is made with RLIMIT_FSIZE on this process (the recorder's own
 * write_error test does the same): the file may not grow past 40 kB, so the
 * recorder's write fails with EFBIG a second or so into the visit. SIGXFSZ is
 * ignored so the write returns the error instead of killing the process. The
 * limit is set after gst_init, which may write GStreamer's registry cache.
 * A second visit records into a directory that does not exist, so the
 * recording fails when it starts; that, too, is one event.
 */
#include <glib/gstdio.h>
#include <gst/gst.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "media_test_peer.h"
#include "telemed/media.h"
#include "telemed/recorder.h"

static test_peer *peers[2];
static int rec_failed_events;
static char rec_failed_visit[64], rec_failed_reason[512];
static bool rec_failed_had_peer;
static bool done;
static tm_recorder_result result;
static char result_failure[512];

static void on_event(const tm_media_event *ev, void *user)
{
    if (ev->type == TM_MEDIA_EV_RECORDING_FAILED) {
        rec_failed_events++;
        g_strlcpy(rec_failed_visit, ev->visit_id ? ev->visit_id : "", sizeof rec_failed_visit);
        g_strlcpy(rec_failed_reason, ev->message ? ev->message : "", sizeof rec_failed_reason);
        rec_failed_had_peer = ev->peer_id != NULL;
        printf("recording failed event: visit %s: %s\n", rec_failed_visit, rec_failed_reason);
        return;
    }
    test_peer_on_event(peers, 2, ev);
}

static void on_recording(const char *visit_id, const tm_recorder_result *res, void *user)
{
    result = *res;
    g_strlcpy(result_failure, res->failure ? res->failure : "", sizeof result_failure);
    done = true;
}

static bool decoding(void *u)
{
    int want = *(int *)u;
    return g_atomic_int_get(&peers[0]->video_frames) >= want &&
           g_atomic_int_get(&peers[1]->video_frames) >= want;
}

static bool failed_events(void *u)
{
    return rec_failed_events >= *(int *)u;
}

static bool finished(void *u)
{
    return done;
}

static bool patient_connected(void *u)
{
    return strcmp(peers[0]->state, "connected") == 0;
}

int main(int argc, char **argv)
{
    gst_init(&argc, &argv);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {40 * 1024, 40 * 1024};
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
        FAIL("setrlimit");
    GMainContext *ctx = g_main_context_default();
    char *dir = g_dir_make_tmp("tm-media-recfail-XXXXXX", NULL);
    char *path = NULL, *err = NULL;
    if (!dir || tm_recorder_make_path(dir, "v-full", g_get_real_time() / 1000, false, &path, &err))
        FAIL("recording path: %s", err ? err : "");
    tm_media_options opts = {.workers = 1, .addresses = "127.0.0.1"};
    test_media_options(&opts);
    tm_media *m = tm_media_new(&opts, ctx, on_event, NULL, &err);
    if (!m)
        FAIL("tm_media_new: %s", err);

    /* 1. The disk fills while the visit runs. */
    if (tm_media_visit_record(m, "v-full", path, NULL, 2, on_recording, NULL) != 0)
        FAIL("tm_media_visit_record");
    peers[0] = test_peer_new(m, "v-full", "patient", 320, 240);
    peers[1] = test_peer_new(m, "v-full", "doctor", 320, 240);
    int want = 30;
    if (!peers[0] || !peers[1] || !test_wait(ctx, 30000, decoding, &want))
        FAIL("visit did not run");
    int one = 1;
    if (!test_wait(ctx, 30000, failed_events, &one))
        FAIL("no recording-failed event although the file cannot grow");
    if (strcmp(rec_failed_visit, "v-full") != 0)
        FAIL("event for visit %s", rec_failed_visit);
    if (!rec_failed_reason[0])
        FAIL("the event has no reason");
    if (rec_failed_had_peer)
        FAIL("a visit-wide event names a peer");
    /* The visit continues: both sides keep decoding after the failure. */
    int frames0 = g_atomic_int_get(&peers[0]->video_frames);
    int frames1 = g_atomic_int_get(&peers[1]->video_frames);
    want = (frames0 > frames1 ? frames0 : frames1) + 30;
    if (!test_wait(ctx, 30000, decoding, &want))
        FAIL("media stopped after the recording failed");
    if (rec_failed_events != 1)
        FAIL("%d recording-failed events, want 1", rec_failed_events);
    tm_media_visit_close(m, "v-full");
    if (!test_wait(ctx, 20000, finished, NULL))
        FAIL("no recording result");
    printf("result: status %d (%s)\n", result.status, result_failure);
    if (result.status >= 0 || !result_failure[0])
        FAIL("the recording result does not say it failed");
    if (rec_failed_events != 1)
        FAIL("%d recording-failed events after close, want 1", rec_failed_events);
    test_peer_free(peers[0]);
    test_peer_free(peers[1]);
    peers[0] = peers[1] = NULL;
    remove(path);
    g_free(path);

    /* 2. The recording cannot even start (no such directory): one event too. */
    char *bad = g_build_filename(dir, "missing", "v-nodir.mkv", NULL);
    if (tm_media_visit_record(m, "v-nodir", bad, NULL, 1, on_recording, NULL) != 0)
        FAIL("tm_media_visit_record (bad path)");
    peers[0] = test_peer_new(m, "v-nodir", "patient", 320, 240);
    int two = 2;
    if (!peers[0] || !test_wait(ctx, 20000, patient_connected, NULL) ||
        !test_wait(ctx, 20000, failed_events, &two))
        FAIL("no recording-failed event for a recording that cannot start");
    if (strcmp(rec_failed_visit, "v-nodir") != 0 || !rec_failed_reason[0])
        FAIL("start failure event: visit %s reason '%s'", rec_failed_visit, rec_failed_reason);
    test_wait(ctx, 1000, failed_events, &(int){3});
    if (rec_failed_events != 2)
        FAIL("%d recording-failed events, want 2", rec_failed_events);
    tm_media_visit_close(m, "v-nodir");
    tm_media_free(m);
    test_peer_free(peers[0]);
    g_free(bad);
    g_rmdir(dir);
    g_free(dir);
    printf("ok media record fail\n");
    return 0;
}

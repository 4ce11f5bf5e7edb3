/*
 * test_media_reconnect.c - a participant drops and comes back. The patient's
 * whole WebRTC stack is torn down without telling the media core (as a
 * network change or a reload would), then a new one offers for the same peer
 * id (new ICE credentials). Meanwhile the patient is reported
 * "disconnected"; afterwards "connected" again. The doctor must keep receiving the patient's video
 * on the same track (SSRC unchanged, as the answer it already holds says)
 * and the new patient must receive the doctor's.
 */
#include <gst/gst.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "media_test_peer.h"
#include "telemed/media.h"

static test_peer *peers[2];
static char patient_state[32];

static void on_event(const tm_media_event *ev, void *user)
{
    if (ev->type == TM_MEDIA_EV_STATE && strcmp(ev->peer_id, "patient") == 0)
        g_strlcpy(patient_state, ev->state, sizeof patient_state);
    test_peer_on_event(peers, 2, ev);
}

static bool patient_disconnected(void *u)
{
    return strcmp(patient_state, "disconnected") == 0;
}

static bool decoding(void *u)
{
    int *want = u;
    return g_atomic_int_get(&peers[0]->video_frames) >= want[0] &&
           g_atomic_int_get(&peers[1]->video_frames) >= want[1];
}

static bool answered(void *u)
{
    return peers[0]->answers > 0;
}

int main(int argc, char **argv)
{
    gst_init(&argc, &argv);
    GMainContext *ctx = g_main_context_default();
    tm_media_options opts = {.workers = 1, .addresses = "127.0.0.1"};
    test_media_options(&opts);
    char *err = NULL;
    tm_media *m = tm_media_new(&opts, ctx, on_event, NULL, &err);
    if (!m)
        FAIL("tm_media_new: %s", err);
    peers[0] = test_peer_new(m, "v-re", "patient", 320, 240);
    peers[1] = test_peer_new(m, "v-re", "doctor", 352, 288);
    int want[2] = {20, 20};
    if (!peers[0] || !peers[1] || !test_wait(ctx, 30000, decoding, want))
        FAIL("visit did not start");
    char *doctor_answer = g_strdup(peers[1]->answer);

    /* The patient vanishes and comes back with a new stack. */
    test_peer_free(peers[0]);
    peers[0] = NULL;
    /* The media core notices the silence long before consent expires. */
    if (!test_wait(ctx, 12000, patient_disconnected, NULL))
        FAIL("patient not reported disconnected (state %s)", patient_state);
    peers[0] = test_peer_new(m, "v-re", "patient", 320, 240);
    if (!peers[0] || !test_wait(ctx, 10000, answered, NULL))
        FAIL("no answer to the returning patient");
    want[0] = 30;
    want[1] = g_atomic_int_get(&peers[1]->video_frames) + 30;
    if (!test_wait(ctx, 20000, decoding, want))
        FAIL("media did not resume: patient %d frames, doctor %d (state %s)",
             peers[0]->video_frames, peers[1]->video_frames, peers[0]->state);
    if (strcmp(patient_state, "connected") != 0)
        FAIL("patient state %s after coming back", patient_state);
    if (peers[1]->rx_width != 320)
        FAIL("doctor sees %d wide, want 320", peers[1]->rx_width);
    if (peers[1]->answers != 1 || strcmp(doctor_answer, peers[1]->answer) != 0)
        FAIL("the doctor needed a new negotiation");
    printf("resumed: patient %d frames, doctor %d frames\n", peers[0]->video_frames,
           peers[1]->video_frames);

    tm_media_visit_close(m, "v-re");
    g_free(doctor_answer);
    test_peer_free(peers[0]);
    test_peer_free(peers[1]);
    tm_media_free(m);
    printf("ok media reconnect\n");
    return 0;
}

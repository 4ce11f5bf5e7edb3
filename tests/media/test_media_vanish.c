/*
 * test_media_vanish.c - a participant that vanishes (its WebRTC stack gone,
 * nothing said on signaling) is reported "disconnected" within seconds and,
 * once ICE consent checks fail (RFC 7675: at the latest 30 s; sooner when the
 * host answers with ICMP), "failed"; the failed peer is kept (with its DTLS
 * session, for the ICE restart of a participant who comes back) until its
 * visit is closed, and the other participant's peer stays.
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
    if (ev->type == TM_MEDIA_EV_STATE && strcmp(ev->peer_id, "patient") == 0) {
        g_strlcpy(patient_state, ev->state, sizeof patient_state);
        printf("%.1f s: patient %s\n", (double)g_get_monotonic_time() / 1e6, ev->state);
    }
    test_peer_on_event(peers, 2, ev);
}

static bool decoding(void *u)
{
    return g_atomic_int_get(&peers[0]->video_frames) >= 20 &&
           g_atomic_int_get(&peers[1]->video_frames) >= 20;
}

static bool state_is(void *u)
{
    return strcmp(patient_state, (const char *)u) == 0;
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
    peers[0] = test_peer_new(m, "v-gone", "patient", 320, 240);
    peers[1] = test_peer_new(m, "v-gone", "doctor", 320, 240);
    if (!peers[0] || !peers[1] || !test_wait(ctx, 30000, decoding, NULL))
        FAIL("visit did not start");
    gint64 t0 = g_get_monotonic_time();
    test_peer_free(peers[0]);
    peers[0] = NULL;
    if (!test_wait(ctx, 12000, state_is, "disconnected"))
        FAIL("not disconnected: %s", patient_state);
    if (!test_wait(ctx, 75000, state_is, "failed"))
        FAIL("not failed after consent expiry: %s", patient_state);
    printf("failed %.1f s after the patient vanished\n",
           (double)(g_get_monotonic_time() - t0) / 1e6);
    tm_media_counters c;
    tm_media_get_counters(m, &c);
    if (c.peers != 2 || c.visits != 1)
        FAIL("after the failure: peers=%llu visits=%llu, want 2 and 1", (unsigned long long)c.peers,
             (unsigned long long)c.visits);
    tm_media_visit_close(m, "v-gone");
    test_wait(ctx, 500, state_is, "never");
    tm_media_get_counters(m, &c);
    if (c.peers != 0 || c.visits != 0)
        FAIL("visit not freed");
    test_peer_free(peers[1]);
    tm_media_free(m);
    printf("ok media vanish\n");
    return 0;
}

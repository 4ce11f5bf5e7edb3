/*
 * test_media_nack.c - loss repaired by NACK. A 1:1 visit of two webrtcbin
 * peers (which NACK lost packets, as browsers do) runs while the media core
 * drops every 8th forwarded video packet (tm_media_set_test_drop). The
 * receivers' NACKs must be answered from the retransmission cache and both
 * sides must keep decoding frames. Then every 8th video packet is dropped on
 * the way in (tm_media_set_test_drop_in): the server must NACK the senders
 * and forward what they resend (rtx), again without the receivers stalling.
 */
#include <gst/gst.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "media_test_peer.h"
#include "telemed/media.h"

static test_peer *peers[2];

static void on_event(const tm_media_event *ev, void *user)
{
    test_peer_on_event(peers, 2, ev);
}

static bool both_decoding(void *u)
{
    int want = *(int *)u;
    return g_atomic_int_get(&peers[0]->video_frames) >= want &&
           g_atomic_int_get(&peers[1]->video_frames) >= want;
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
    tm_media_set_test_drop(m, 8);
    peers[0] = test_peer_new(m, "v-nack", "patient", 320, 240);
    peers[1] = test_peer_new(m, "v-nack", "doctor", 320, 240);
    if (!peers[0] || !peers[1])
        FAIL("cannot start webrtcbin peers");
    int want = 10;
    if (!test_wait(ctx, 30000, both_decoding, &want))
        FAIL("not decoding under loss: %d %d", peers[0]->video_frames, peers[1]->video_frames);

    /* Over 6 s at 15 fps, with 1 in 8 video packets lost on the way out. */
    tm_media_counters c0, c1;
    tm_media_get_counters(m, &c0);
    int f0 = g_atomic_int_get(&peers[0]->video_frames),
        f1 = g_atomic_int_get(&peers[1]->video_frames);
    gint64 end = g_get_monotonic_time() + 6 * G_USEC_PER_SEC;
    while (g_get_monotonic_time() < end) {
        g_main_context_iteration(ctx, FALSE);
        g_usleep(2000);
    }
    tm_media_get_counters(m, &c1);
    int d0 = g_atomic_int_get(&peers[0]->video_frames) - f0;
    int d1 = g_atomic_int_get(&peers[1]->video_frames) - f1;
    unsigned long long nacked = (unsigned long long)(c1.nacks_answered - c0.nacks_answered);
    unsigned long long plis = (unsigned long long)(c1.plis_forwarded - c0.plis_forwarded);
    printf("6 s under loss: decoded %d / %d frames, %llu retransmissions, %llu PLIs\n", d0, d1,
           nacked, plis);
    printf("stats: %s\n", peers[0]->last_stats ? peers[0]->last_stats : "");
    /* About 2 directions x 6 s x 14 video packets/s / 8 = 21 are dropped; how
     * many depends on the encoder's packet rate, so ask for half of them. A
     * cache that answers nothing fails here; the frame count below is what
     * shows the repair. */
    if (nacked < 10)
        FAIL("NACKs were not answered from the cache (%llu)", nacked);
    /* Without repair VP8 stops at the first lost packet until the next
     * keyframe; with it nearly every frame decodes. */
    if (d0 < 60 || d1 < 60)
        FAIL("video not repaired: %d and %d frames in 6 s", d0, d1);

    /* Loss on the way in: the server must NACK the senders itself and get the
     * packets back (as rtx) before the receivers notice. */
    tm_media_set_test_drop(m, 0);
    tm_media_set_test_drop_in(m, 8);
    tm_media_get_counters(m, &c0);
    f0 = g_atomic_int_get(&peers[0]->video_frames);
    f1 = g_atomic_int_get(&peers[1]->video_frames);
    end = g_get_monotonic_time() + 6 * G_USEC_PER_SEC;
    while (g_get_monotonic_time() < end) {
        g_main_context_iteration(ctx, FALSE);
        g_usleep(2000);
    }
    tm_media_get_counters(m, &c1);
    d0 = g_atomic_int_get(&peers[0]->video_frames) - f0;
    d1 = g_atomic_int_get(&peers[1]->video_frames) - f1;
    unsigned long long asked = (unsigned long long)(c1.nacks_sent - c0.nacks_sent);
    unsigned long long back = (unsigned long long)(c1.rtx_received - c0.rtx_received);
    printf(
        "6 s under inbound loss: decoded %d / %d frames, asked senders for %llu, got %llu back\n",
        d0, d1, asked, back);
    if (asked < 20 || back < asked / 2)
        FAIL("upstream loss not repaired by the server's NACKs");
    if (d0 < 60 || d1 < 60)
        FAIL("video not repaired under inbound loss: %d and %d frames in 6 s", d0, d1);

    tm_media_visit_close(m, "v-nack");
    test_peer_free(peers[0]);
    test_peer_free(peers[1]);
    tm_media_free(m);
    printf("ok media nack\n");
    return 0;
}

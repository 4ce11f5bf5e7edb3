/*
 * test_media_h264.c - the Safari path: both participants offer only H.264
 * constrained baseline (42e01f, packetization-mode 1) + Opus; the media core
 * must negotiate H.264, forward it (PT rewrite, no transcoding) and each side
 * must decode the other's picture at its size; the server's stats must see
 * H.264 keyframes with the size from the SPS.
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

static bool decoding(void *u)
{
    return g_atomic_int_get(&peers[0]->video_frames) >= 45 &&
           g_atomic_int_get(&peers[1]->video_frames) >= 45 && peers[0]->rx_width &&
           peers[1]->rx_width && peers[0]->stats_events > 1;
}

int main(int argc, char **argv)
{
    gst_init(&argc, &argv);
    GstElementFactory *f = gst_element_factory_find("openh264enc");
    if (!f) {
        printf("openh264 not installed: skipped\n");
        return 77;
    }
    gst_object_unref(f);
    GMainContext *ctx = g_main_context_default();
    tm_media_options opts = {.workers = 1, .addresses = "127.0.0.1"};
    test_media_options(&opts);
    char *err = NULL;
    tm_media *m = tm_media_new(&opts, ctx, on_event, NULL, &err);
    if (!m)
        FAIL("tm_media_new: %s", err);
    peers[0] = test_peer_new_codec(m, "v-h264", "patient", 320, 240, "H264");
    peers[1] = test_peer_new_codec(m, "v-h264", "doctor", 352, 288, "H264");
    if (!peers[0] || !peers[1])
        FAIL("cannot start the peers");
    if (!test_wait(ctx, 30000, decoding, NULL))
        FAIL("not decoding H.264: %d / %d frames, states %s %s", peers[0]->video_frames,
             peers[1]->video_frames, peers[0]->state, peers[1]->state);
    if (!strstr(peers[0]->answer, "H264/90000") || !strstr(peers[0]->answer, "42e01f"))
        FAIL("answer did not choose H.264 42e01f:\n%s", peers[0]->answer);
    if (peers[0]->rx_width != 352 || peers[0]->rx_height != 288 || peers[1]->rx_width != 320 ||
        peers[1]->rx_height != 240)
        FAIL("sizes: patient sees %dx%d, doctor %dx%d", peers[0]->rx_width, peers[0]->rx_height,
             peers[1]->rx_width, peers[1]->rx_height);
    printf("stats patient: %s\n", peers[0]->last_stats);
    if (!strstr(peers[0]->last_stats, "\"width\":320,\"height\":240"))
        FAIL("server stats lack the H.264 picture size");
    tm_media_visit_close(m, "v-h264");
    test_peer_free(peers[0]);
    test_peer_free(peers[1]);
    tm_media_free(m);
    printf("ok media h264\n");
    return 0;
}

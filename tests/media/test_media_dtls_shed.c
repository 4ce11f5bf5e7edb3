/*
 * test_media_dtls_shed.c - a visit goes on after the media core freed its
 * peers' DTLS state (tm_media_options.keep_dtls off): renegotiation and an
 * ICE restart of each side still carry media both ways on the session's
 * SRTP, and a participant who comes back with a new PeerConnection (GStreamer
 * keeps its certificate, so a new handshake on the same peer) gets media
 * again, after which its new session is shed too. With keep_dtls
 * (TELEMED_MEDIA_DTLS_SHED=false, the _stock run) nothing is shed.
 */
#include <gst/gst.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "media_test_peer.h"
#include "telemed/media.h"

static test_peer *peers[2];
static tm_media *media;

static void on_event(const tm_media_event *ev, void *user)
{
    test_peer_on_event(peers, 2, ev);
}

static bool decoding(void *u)
{
    int *want = u;
    return g_atomic_int_get(&peers[0]->video_frames) >= want[0] &&
           g_atomic_int_get(&peers[1]->video_frames) >= want[1];
}

static bool shed_at_least(void *u)
{
    tm_media_counters c;
    tm_media_get_counters(media, &c);
    return c.dtls_shed >= *(uint64_t *)u;
}

static bool answered(void *u)
{
    int *want = u;
    return peers[want[0]]->answers >= want[1];
}

static uint64_t shed_count(void)
{
    tm_media_counters c;
    tm_media_get_counters(media, &c);
    return c.dtls_shed;
}

/* Both sides decode `more` further frames within 20 s. */
static void media_flows(GMainContext *ctx, int more, const char *after)
{
    int want[2] = {g_atomic_int_get(&peers[0]->video_frames) + more,
                   g_atomic_int_get(&peers[1]->video_frames) + more};
    if (!test_wait(ctx, 20000, decoding, want))
        FAIL("no media after %s: patient %d/%d frames, doctor %d/%d", after, peers[0]->video_frames,
             want[0], peers[1]->video_frames, want[1]);
}

static void renegotiate(GMainContext *ctx, int who, bool restart)
{
    int want[2] = {who, peers[who]->answers + 1};
    test_peer_renegotiate(peers[who], restart);
    if (!test_wait(ctx, 10000, answered, want))
        FAIL("no answer to %s's %s", peers[who]->peer_id, restart ? "ICE restart" : "offer");
    media_flows(ctx, 30, restart ? "an ICE restart" : "a renegotiation");
}

int main(int argc, char **argv)
{
    gst_init(&argc, &argv);
    GMainContext *ctx = g_main_context_default();
    tm_media_options opts = {.workers = 1, .addresses = "127.0.0.1"};
    test_media_options(&opts);
    char *err = NULL;
    media = tm_media_new(&opts, ctx, on_event, NULL, &err);
    if (!media)
        FAIL("tm_media_new: %s", err);
    peers[0] = test_peer_new(media, "v-shed", "patient", 320, 240);
    peers[1] = test_peer_new(media, "v-shed", "doctor", 352, 288);
    int want[2] = {20, 20};
    if (!peers[0] || !peers[1] || !test_wait(ctx, 30000, decoding, want))
        FAIL("visit did not start");
    uint64_t two = 2;
    if (!opts.keep_dtls && !test_wait(ctx, 20000, shed_at_least, &two))
        FAIL("DTLS state not shed: %llu", (unsigned long long)shed_count());

    renegotiate(ctx, 0, false);
    renegotiate(ctx, 0, true);
    renegotiate(ctx, 1, true);

    /* The patient's new PeerConnection handshakes again on the shed peer. */
    test_peer_free(peers[0]);
    peers[0] = NULL;
    peers[0] = test_peer_new(media, "v-shed", "patient", 320, 240);
    if (!peers[0])
        FAIL("no new patient");
    media_flows(ctx, 30, "a new PeerConnection");
    uint64_t three = 3;
    if (!opts.keep_dtls && !test_wait(ctx, 20000, shed_at_least, &three))
        FAIL("the new session was not shed: %llu", (unsigned long long)shed_count());
    media_flows(ctx, 20, "the new session's shed");
    if (opts.keep_dtls && shed_count() != 0)
        FAIL("keep_dtls shed %llu sessions", (unsigned long long)shed_count());
    printf("shed %llu DTLS sessions; patient %d frames, doctor %d\n",
           (unsigned long long)shed_count(), peers[0]->video_frames, peers[1]->video_frames);

    tm_media_visit_close(media, "v-shed");
    test_peer_free(peers[0]);
    test_peer_free(peers[1]);
    tm_media_free(media);
    printf("ok media dtls shed\n");
    return 0;
}

/*
 * test_media_loopback.c - a 1:1 visit through tm_media with two real,
 * independent WebRTC peers (GStreamer webrtcbin) in-process: each sends VP8 +
 * Opus, and each must decode the other's video at the other's size and
 * receive audio for at least 5 s. Then the visit is closed and every peer
 * must report "closed" with the media core back to zero peers.
 *
 * Exits non-zero on failure; bounded by a 60 s overall deadline.
 */
#include <gst/gst.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtls_srtp_internal.h"
#include "media_test_peer.h"
#include "telemed/log.h"
#include "telemed/media.h"

static test_peer *peers[2];

static void on_event(const tm_media_event *ev, void *user)
{
    test_peer_on_event(peers, 2, ev);
}

static bool both_answered(void *u)
{
    return peers[0]->answers > 0 && peers[1]->answers > 0;
}

static bool both_connected(void *u)
{
    return strcmp(peers[0]->state, "connected") == 0 && strcmp(peers[1]->state, "connected") == 0;
}

static bool both_decoding(void *u)
{
    for (int i = 0; i < 2; i++)
        if (g_atomic_int_get(&peers[i]->video_frames) < 10 ||
            g_atomic_int_get(&peers[i]->audio_buffers) < 10)
            return false;
    return true;
}

static bool audio_5s(void *u)
{
    gint64 now = g_get_monotonic_time();
    for (int i = 0; i < 2; i++)
        if (!peers[i]->first_audio_us || now - peers[i]->first_audio_us < 5500000)
            return false;
    return true;
}

static bool both_closed(void *u)
{
    return strcmp(peers[0]->state, "closed") == 0 && strcmp(peers[1]->state, "closed") == 0;
}

static bool stats_seen(void *u)
{
    return peers[0]->stats_events >= 2 && peers[1]->stats_events >= 2;
}

int main(int argc, char **argv)
{
    gst_init(&argc, &argv);
    if (g_getenv("TEST_DEBUG"))
        tm_log_set_level(TM_LOG_DEBUG);
    GMainContext *ctx = g_main_context_default();
    tm_media_options opts = {.workers = 2, .addresses = "127.0.0.1"};
    test_media_options(&opts);
    char *err = NULL;
    tm_media *m = tm_media_new(&opts, ctx, on_event, NULL, &err);
    if (!m)
        FAIL("tm_media_new: %s", err);
    if (!tm_media_fingerprint(m) || strlen(tm_media_fingerprint(m)) != 95)
        FAIL("fingerprint");

    peers[0] = test_peer_new(m, "v-loop", "patient", 320, 240);
    peers[1] = test_peer_new(m, "v-loop", "doctor", 352, 288);
    if (!peers[0] || !peers[1])
        FAIL("cannot start webrtcbin peers (gst plugins missing?)");

    if (!test_wait(ctx, 15000, both_answered, NULL))
        FAIL("no answers (offer failed: %d %d)", peers[0]->offer_failed, peers[1]->offer_failed);
    int ports[8];
    if (test_answer_ports(peers[0]->answer, ports, 8) < 1)
        FAIL("answer has no 127.0.0.1 host candidate:\n%s", peers[0]->answer);
    if (!strstr(peers[0]->answer, tm_media_fingerprint(m)))
        FAIL("answer lacks our fingerprint");
    if (!test_wait(ctx, 15000, both_connected, NULL))
        FAIL("not connected: patient=%s doctor=%s", peers[0]->state, peers[1]->state);
    if (!test_wait(ctx, 15000, both_decoding, NULL))
        FAIL("not decoding: patient video=%d audio=%d, doctor video=%d audio=%d",
             peers[0]->video_frames, peers[0]->audio_buffers, peers[1]->video_frames,
             peers[1]->audio_buffers);
    int v0 = g_atomic_int_get(&peers[0]->video_frames);
    int v1 = g_atomic_int_get(&peers[1]->video_frames);
    if (!test_wait(ctx, 15000, audio_5s, NULL))
        FAIL("audio did not last 5 s");
    if (g_atomic_int_get(&peers[0]->video_frames) < v0 + 30 ||
        g_atomic_int_get(&peers[1]->video_frames) < v1 + 30)
        FAIL("video stalled: patient %d -> %d, doctor %d -> %d", v0, peers[0]->video_frames, v1,
             peers[1]->video_frames);
    /* Each side sees the other's picture size. */
    if (peers[0]->rx_width != 352 || peers[0]->rx_height != 288)
        FAIL("patient decoded %dx%d, want 352x288", peers[0]->rx_width, peers[0]->rx_height);
    if (peers[1]->rx_width != 320 || peers[1]->rx_height != 240)
        FAIL("doctor decoded %dx%d, want 320x240", peers[1]->rx_width, peers[1]->rx_height);
    if (!test_wait(ctx, 5000, stats_seen, NULL))
        FAIL("no stats events");
    if (!strstr(peers[0]->last_stats, "\"kind\":\"video\"") ||
        !strstr(peers[0]->last_stats, "\"direction\":\"in\"") ||
        !strstr(peers[0]->last_stats, "\"direction\":\"out\""))
        FAIL("stats lack streams: %s", peers[0]->last_stats);
    printf("stats patient: %s\n", peers[0]->last_stats);

    tm_media_counters c;
    tm_media_get_counters(m, &c);
    printf("counters: peers=%llu visits=%llu rx=%llu tx=%llu malformed=%llu unknown=%llu "
           "nacks=%llu plis=%llu\n",
           (unsigned long long)c.peers, (unsigned long long)c.visits,
           (unsigned long long)c.rx_packets, (unsigned long long)c.tx_packets,
           (unsigned long long)c.dropped_malformed, (unsigned long long)c.dropped_unknown_source,
           (unsigned long long)c.nacks_answered, (unsigned long long)c.plis_forwarded);
    if (c.peers != 2 || c.visits != 1 || c.rx_packets < 200 || c.tx_packets < 200)
        FAIL("counters");
    /* The media took the path asked for: beside libnice or through it, on our
     * ciphers or on libsrtp's own. */
    if (opts.stock_io ? c.rx_direct != 0 : c.rx_direct == 0)
        FAIL("rx_direct=%llu with stock_io=%d", (unsigned long long)c.rx_direct, opts.stock_io);
    if (opts.stock_io || opts.send_each ? c.tx_batched != 0 : c.tx_batched < 200)
        FAIL("tx_batched=%llu with stock_io=%d send_each=%d", (unsigned long long)c.tx_batched,
             opts.stock_io, opts.send_each);
    int ours = tm__srtp_crypto_live_objects();
    if (opts.stock_srtp ? ours != 0 : ours == 0)
        FAIL("%d of our SRTP cipher objects alive with stock_srtp=%d", ours, opts.stock_srtp);
    tm_media_latency lat;
    tm_media_get_latency(m, &lat);
    printf("forwarding latency: %llu packets, p50 %.0f us, p99 %.0f us, max %.0f us\n",
           (unsigned long long)lat.samples, lat.p50_us, lat.p99_us, lat.max_us);
    if (lat.samples < 200 || lat.p50_us <= 0 || lat.p99_us < lat.p50_us)
        FAIL("latency histogram");

    tm_media_visit_close(m, "v-loop");
    if (!test_wait(ctx, 5000, both_closed, NULL))
        FAIL("not closed: %s %s", peers[0]->state, peers[1]->state);
    tm_media_get_counters(m, &c);
    if (c.peers != 0 || c.visits != 0)
        FAIL("peers=%llu visits=%llu after close", (unsigned long long)c.peers,
             (unsigned long long)c.visits);

    test_peer_free(peers[0]);
    test_peer_free(peers[1]);
    tm_media_free(m);
    printf("ok media loopback: patient got %d frames, doctor %d frames\n", v0, v1);
    return 0;
}

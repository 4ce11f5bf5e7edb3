/*
 * media_test_peer.h - a GStreamer webrtcbin peer for the media-core tests: it
 * sends an encoded test pattern (VP8) and tone (Opus) to tm_media and decodes
 * what comes back, counting decoded frames and audio buffers. It is the
 * independent WebRTC stack: it shares no code with media/.
 *
 * Threads: webrtcbin calls back on its own threads; everything that touches
 * tm_media is marshalled to the test's main context (the media core's control
 * context). Counters are atomics read from the main thread.
 */
#ifndef TM_MEDIA_TEST_PEER_H
#define TM_MEDIA_TEST_PEER_H

#include <gst/gst.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "media_testing.h"
#include "telemed/media.h"

/* The media tests' way out: says why on stderr and fails the program. */
#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "FAIL: " __VA_ARGS__);                                                     \
        fprintf(stderr, "\n");                                                                     \
        exit(1);                                                                                   \
    } while (0)

#define TEST_MAX_PADS 8
#define TEST_N_TONES 8
/* The tones party peers send (Hz): peer i of a test sends test_tones[i]. */
extern const double test_tones[TEST_N_TONES];

typedef struct test_peer {
    tm_media *media;
    char *visit_id, *peer_id;
    bool send;
    int width, height; /* what this peer sends */
    GstElement *pipeline, *webrtc;
    /* Filled from webrtcbin threads. */
    gint video_frames, audio_buffers;
    gint sent_frames; /* video frames out of our encoder */
    gint rx_width, rx_height;
    gint64 first_audio_us;
    /* Per decoded video stream, in pad order (a supervisor has several). */
    gint n_video_pads;
    gint vframes[TEST_MAX_PADS], vwidth[TEST_MAX_PADS], vheight[TEST_MAX_PADS];
    gint64 vfirst_us[TEST_MAX_PADS];
    /* Longest time between two decoded frames of a pad since test_peer_gap_reset. */
    gint64 vlast_us[TEST_MAX_PADS], vmaxgap_us[TEST_MAX_PADS];
    /* Per decoded audio stream: buffers, and the energy at each of test_tones[]. */
    gint n_audio_pads;
    gint abuffers[TEST_MAX_PADS];
    double tone_energy[TEST_MAX_PADS][TEST_N_TONES];
    GMutex tone_lock;
    /* Filled on the main thread. */
    char *answer;   /* last answer SDP */
    char state[32]; /* last TM_MEDIA_EV_STATE */
    int answers, stats_events;
    char *last_stats;
    int bindings_events;
    char *last_bindings; /* "<mid>=<src peer or ->" per receiving m-line, space-separated */
    bool offer_failed;
} test_peer;

/* A peer sending width x height VP8 + Opus (send=true), or receive-only with
 * n_recv_audio/n_recv_video recvonly transceivers. Every transceiver NACKs lost
 * packets (do-nack), as browsers do. Starts the pipeline; the
 * offer goes to tm_media from the main context once webrtcbin makes it. */
test_peer *test_peer_new(tm_media *m, const char *visit_id, const char *peer_id, int width,
                         int height);
/* The same with video_codec "VP8" or "H264" (constrained baseline 42e01f, openh264). */
test_peer *test_peer_new_codec(tm_media *m, const char *visit_id, const char *peer_id, int width,
                               int height, const char *video_codec);
test_peer *test_peer_new_recvonly(tm_media *m, const char *visit_id, const char *peer_id,
                                  int n_audio, int n_video);
/* A party member: sends width x height VP8 and test_tones[tone] at volume (0..1) in Opus with
 * RFC 6464 audio levels, and receives on its sendrecv pair plus n_recv recvonly audio+video
 * pairs (a visit of n_recv + 2). */
test_peer *test_peer_new_party(tm_media *m, const char *visit_id, const char *peer_id, int width,
                               int height, int tone, double volume, int n_recv);
/* Adds n recvonly audio+video pairs; webrtcbin then renegotiates (a new offer, same ICE). */
void test_peer_add_recv(test_peer *p, int n);
/* Sets the sent tone's volume (0..1). */
void test_peer_set_volume(test_peer *p, double volume);
/* Starts the gap measurement of every video pad anew. */
void test_peer_gap_reset(test_peer *p);
/* The tone (index into test_tones) loudest on audio pad `pad`, -1 when too quiet to tell. */
int test_peer_pad_tone(test_peer *p, int pad);
void test_peer_free(test_peer *p);
/* Make a new offer (with ice-restart when restart is true) and submit it. */
void test_peer_renegotiate(test_peer *p, bool restart);

/* Route a media event to the peer it names (call from the tm_media callback). */
void test_peer_on_event(test_peer **peers, int n, const tm_media_event *ev);

/* Sets the stock-path switches of *o from the environment, under the server's own
 * names: TELEMED_MEDIA_DIRECT_IO=false -> stock_io, TELEMED_MEDIA_SRTP_NETTLE=false ->
 * stock_srtp (ctest runs each media test so once more, as <name>_stock),
 * TELEMED_MEDIA_SEND_BATCH=false -> send_each (test_media_loopback_send_each),
 * TELEMED_MEDIA_DTLS_SHED=false -> keep_dtls; and TELEMED_MEDIA_RX_EPOLL=true -> rx_epoll
 * (test_media_loopback_rx_epoll). */
void test_media_options(tm_media_options *o);

/* The energy at hz of n mono 48 kHz samples (Goertzel), per sample. */
double test_goertzel(const int16_t *x, size_t n, double hz);

/* Iterate ctx until cond(user) or timeout_ms; returns cond's last value. */
bool test_wait(GMainContext *ctx, int timeout_ms, bool (*cond)(void *), void *user);

/* Host candidate ports (UDP, 127.0.0.1) in an answer; returns how many (<= max). */
int test_answer_ports(const char *sdp, int *ports, int max);

#endif

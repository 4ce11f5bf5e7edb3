/*
 * media.h - the media core: a WebRTC SFU on libnice (ICE), OpenSSL (DTLS-SRTP)
 * and libsrtp2, forwarding RTP/RTCP between the peers of a visit.
 *
 * Threads: tm_media_new/free and every tm_media_* call below run on the
 * control thread (the one iterating `control`). Peers live on media worker
 * threads (each its own GMainContext); all peers of one visit share a worker
 * so forwarding takes no lock. Calls become messages to the visit's worker;
 * events come back to the control context through the callback.
 */
#ifndef TELEMED_MEDIA_H
#define TELEMED_MEDIA_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "telemed/common.h"

typedef struct tm_media tm_media;

typedef struct tm_media_options {
    int workers;            /* 0 = one per core */
    const char *addresses;  /* comma-separated local IPs for host candidates, e.g. "127.0.0.1" */
    const char *public_ip;  /* NULL or NAT 1:1 address to advertise instead */
    int port_min, port_max; /* 0 = any */
    /* The stock paths beside our measured bypasses (false = the bypass, the default):
     * stock_io sends and receives every datagram through libnice, not on the selected
     * pair's own socket; stock_srtp keeps libsrtp's own ciphers (process-wide, chosen by
     * the latest tm_media_new) instead of ours on Nettle and OpenSSL. */
    bool stock_io, stock_srtp;
    /* Negotiate transport-cc with senders that offer it and feed their own estimator
     * (media/congestion.c); off, senders estimate from REMB and receiver reports. Off by
     * default: through the server it held receivers' bitrate to a third of what REMB gives. */
    bool transport_cc;
    /* send_each: one sendto per datagram on the direct path, instead of one sendmmsg for
     * what a receive batch sends to one peer. */
    bool send_each;
    /* keep_dtls: keep a peer's OpenSSL DTLS state for its whole session, instead of
     * freeing it 5 s after the peer's first SRTP (only its close_notify is read after). */
    bool keep_dtls;
    /* rx_epoll: on the direct path, a worker's media sockets in one epoll set that GLib
     * polls as one fd, instead of a GSource per socket. Off by default: it adds an
     * epoll_wait per wake-up and showed no gain at up to 8 visits (tests/bench/README.md). */
    bool rx_epoll;
    /* Remote ICE candidates: at most max_candidates per peer and ICE session (0 = 20);
     * addresses outside the scopes of `addresses` and of candidate_networks (comma-separated
     * CIDRs, NULL = none) are refused; ice_pacing_ms spaces a peer's checks (0 = 50). */
    int max_candidates;
    const char *candidate_networks;
    int ice_pacing_ms;
} tm_media_options;

typedef enum {
    TM_MEDIA_EV_ANSWER,
    TM_MEDIA_EV_CANDIDATE,
    TM_MEDIA_EV_STATE,
    TM_MEDIA_EV_STATS,
    TM_MEDIA_EV_ERROR,
    /* A visit's recording failed (disk full, write error, or it could not
     * start): the visit's media goes on unrecorded. Once per failed recording;
     * visit_id and message (the reason) set, peer_id NULL. The result of
     * tm_media_visit_record's cb (when the file had started) still follows at
     * tm_media_visit_close, with status < 0. */
    TM_MEDIA_EV_RECORDING_FAILED,
    /* What a receiver's receiving m-lines carry now: peer_id = the receiver, bindings /
     * n_bindings = every one of its receiving m-lines, in m-line order. Posted after its
     * answer and after every rebind (a join, a leave, a renegotiation) that changes them. */
    TM_MEDIA_EV_BINDINGS,
    /* The visit's active speaker changed: visit_id, peer_id = the new speaker. Chosen from
     * the senders' RFC 6464 audio levels; a sender must be the loudest for 1.5 s before it
     * takes over, so a cough does not switch the view. */
    TM_MEDIA_EV_SPEAKER,
    /* The visit's video codec became H.264 (a peer, such as a phone browser, offered no VP8):
     * peer_id, whose answer took VP8, must send a new offer to see and be seen. The SFU
     * forwards and does not transcode, so a visit has one video codec. */
    TM_MEDIA_EV_RENEGOTIATE
} tm_media_event_type;

/* One receiving m-line of a receiver and whose stream it carries. */
typedef struct tm_media_binding {
    const char *mid;
    bool video;              /* else audio */
    const char *src_peer_id; /* the sender whose stream it carries, NULL = none */
} tm_media_binding;

/* One stream's figures over the last second, as the worker hands them over. */
typedef struct tm_media_stream_stats {
    bool out;   /* false: the peer sends it to us; true: we send it to the peer */
    bool video; /* else audio */
    uint32_t ssrc;
    uint64_t packets, bytes, bitrate_bps;
    double loss_pct, jitter_ms;
    int64_t rtt_ms; /* -1 unknown */
    uint64_t keyframes, nacks, plis;
    unsigned width, height; /* in: of the last keyframe, 0 unknown */
    uint32_t freeze_count;  /* in */
    int64_t frozen_ms;      /* in, video: how long no frame has come, 0 while frames flow */
    uint64_t frames;        /* in */
    double fps;             /* in */
    uint64_t retransmits;   /* out: NACKs answered from the cache */
    uint64_t remb_bps;      /* the bandwidth estimate sent (in) or received (out), 0 none */
    int audio_level;        /* in, audio: the sender's smoothed RFC 6464 level in -dBov,
                               0 (loudest) .. 127 (silence); -1 when it sends no levels */
} tm_media_stream_stats;

typedef struct tm_media_event {
    tm_media_event_type type;
    const char *visit_id, *peer_id;
    const char *sdp;             /* ANSWER */
    bool new_transport;          /* ANSWER: a new DTLS session; an ICE-restart offer cannot resume
                                    over it, the client needs a new PeerConnection */
    const char *offer_ufrag;     /* ANSWER: the ice-ufrag of the offer it answers */
    const char *candidate, *mid; /* CANDIDATE ("" = end of candidates) */
    int mline_index;             /* CANDIDATE */
    const char *state; /* STATE: "connecting","connected","disconnected","failed","closed";
                          after "failed" (ICE gave up or consent lost) the peer and its DTLS
                          session are kept for an ICE restart until closed */
    const tm_media_stream_stats *streams; /* STATS: every stream of this peer */
    size_t n_streams;                     /* STATS */
    int err;                              /* ERROR */
    const char *message;                  /* ERROR, RECORDING_FAILED (the reason) */
    const tm_media_binding *bindings;     /* BINDINGS */
    size_t n_bindings;                    /* BINDINGS */
    /* STATS: ms since anything (RTP or RTCP) last came from the peer, -1 never;
     * RTCP while no RTP comes is a peer that sends nothing on purpose. */
    int64_t heard_ago_ms;
} tm_media_event;

/* Called on the control GMainContext; the event and its strings are borrowed for the call. */
typedef void (*tm_media_event_cb)(const tm_media_event *ev, void *user);

/* Starts the worker threads and makes the DTLS certificate. `control` is
 * borrowed (referenced) for the lifetime of the media core. Returns NULL with
 * *err set (new string, g_free) on failure. */
tm_media *tm_media_new(const tm_media_options *opts, GMainContext *control, tm_media_event_cb cb,
                       void *user, char **err);
/* Stops workers, frees every peer; accepts NULL. No events are delivered after it returns. */
void tm_media_free(tm_media *m);

/* Submit a peer's SDP offer. Validation (parse, BUNDLE, rtcp-mux, codec) happens synchronously:
 * TM_EINVAL with *err (new string, g_free) and nothing changes. Otherwise the peer is created on
 * the visit's worker (all peers of a visit on one worker) and the answer arrives as
 * TM_MEDIA_EV_ANSWER. Every peer receives the other senders' streams on its receiving m-lines of
 * the same kind: a stream keeps its m-line while its sender is in the visit, new senders take free
 * m-lines in join order (TM_MEDIA_EV_BINDINGS says which). send=false for receive-only peers
 * (supervisors). An offer for an existing peer_id is a renegotiation/ICE restart (new ice-ufrag)
 * that keeps the peer's outgoing SSRCs and bindings, so the other side's streams continue.
 * Strings are copied. */
int tm_media_offer(tm_media *m, const char *visit_id, const char *peer_id, bool send,
                   const char *sdp, size_t len, char **err);
/* A trickled remote candidate ("candidate:..." with or without the "a=" prefix; "" or NULL = end
 * of candidates). Returns 0; TM_EINVAL (not a candidate); TM_EUNSUPPORTED (an address the server
 * sends no checks to: unspecified, multicast, or a family or scope - loopback, link-local,
 * private - that its media addresses and candidate_networks do not serve); TM_ETOOBIG (the
 * peer gave max_candidates already). Refused candidates change nothing; an unknown peer is
 * ignored on the worker. tm_media_candidate_error names the refusal for the sender. */
int tm_media_add_candidate(tm_media *m, const char *visit_id, const char *peer_id,
                           const char *candidate, const char *mid);
/* Why tm_media_add_candidate returned rc, for the participant (static string). */
const char *tm_media_candidate_error(int rc);
/* Simulcast: the size (CSS pixels times the device pixel ratio) at which receiver peer_id
 * renders src_peer_id's video; 0x0 = hidden. A sender that sends simulcast layers then
 * reaches this receiver in the smallest layer that fills that size (within 10 %), or a
 * smaller one when the receiver's bandwidth estimate says so; without a view, the largest
 * its bandwidth carries. Kept for the receiver's connection (and its renegotiations).
 * Returns 0; TM_EINVAL (missing ids, a side over TM_MEDIA_VIEW_MAX); TM_ENOTFOUND (no
 * media for that receiver yet: send it after media.offer). */
#define TM_MEDIA_VIEW_MAX 16384
int tm_media_set_view(tm_media *m, const char *visit_id, const char *peer_id,
                      const char *src_peer_id, unsigned width, unsigned height);
/* Tear down one peer / every peer of a visit; each peer reports STATE "closed". Returns 0 or
 * TM_EINVAL. */
int tm_media_peer_close(tm_media *m, const char *visit_id, const char *peer_id);
int tm_media_visit_close(tm_media *m, const char *visit_id);

/* Counters for /metrics and tests. dropped_malformed: datagrams that failed parsing or SRTP
 * authentication; dropped_unknown_source: SRTP/DTLS arriving on a peer before its DTLS handshake
 * finished (libnice itself already discards anything from an address that did not pass ICE). */
typedef struct tm_media_counters {
    uint64_t peers, visits, rx_packets, tx_packets, dropped_malformed, dropped_unknown_source,
        nacks_answered, plis_forwarded;
    uint64_t nacks_sent;    /* sequence numbers the server asked senders to resend */
    uint64_t rtx_received;  /* retransmissions that came back from senders */
    uint64_t rtx_redundant; /* of them, of packets the server had: padding, not forwarded */
    uint64_t rx_direct;     /* datagrams read beside libnice (stays 0 with stock_io) */
    uint64_t tx_batched;    /* datagrams sent by sendmmsg (stays 0 with stock_io or send_each) */
    uint64_t dtls_shed;     /* DTLS sessions whose OpenSSL state was freed (0 with keep_dtls) */
    uint64_t rtx_bytes; /* retransmission history held now, pools included (each worker's tick) */
} tm_media_counters;
void tm_media_get_counters(tm_media *m, tm_media_counters *out); /* approximate, atomics */

/* ---- Recording (include/telemed/recorder.h does the file) ---- */

struct tm_recorder_result;
/* Called on the control context when a visit's recording is finished; res and its strings
 * are borrowed for the call. */
typedef void (*tm_media_record_cb)(const char *visit_id, const struct tm_recorder_result *res,
                                   void *user);
/* Record the visit: every sender's decrypted RTP (no decoding) into one Matroska file at path
 * (which must not exist; see tm_recorder_make_path), encrypted at rest when key32 (32 bytes,
 * copied) is not NULL. Call it when the visit becomes active, before the offers. The file's
 * tracks are fixed when it starts, so it starts with the first RTP packet once expect_senders
 * sending peers (2 for a 1:1 visit) have offered, or 5 s after the visit's first packet with
 * the senders known then, whichever comes first. The visit's media state is kept until
 * tm_media_visit_close, which finishes the file; cb then gets the result (also when it failed).
 * tm_media_free waits up to 10 s for files of visits closed before it to be finished (their
 * results are not delivered then) and leaves recordings of visits still open as a crash would.
 * Returns 0, TM_EINVAL, or TM_ECONFLICT when the visit is already being recorded. */
int tm_media_visit_record(tm_media *m, const char *visit_id, const char *path, const uint8_t *key32,
                          int expect_senders, tm_media_record_cb cb, void *user);

/* Late joiners. A file's tracks are fixed when it starts, so when a sender whose streams the
 * running file does not hold starts sending, the media core finishes that part (cb gets its
 * result, with res->part) and starts the next one, holding every sender's streams, at
 * "<path>" with "-part<N>" before its ".mkv" (part 1 is path itself). part_cb (may be NULL)
 * is told each further part's number and path on the control context before the part's
 * result can arrive (so the record can hold a row for it); user is the one given to
 * tm_media_visit_record. The last part's result comes at tm_media_visit_close with
 * res->last set. Call it after tm_media_visit_record. Returns 0 or TM_EINVAL. */
typedef void (*tm_media_record_part_cb)(const char *visit_id, int part, const char *path,
                                        void *user);
int tm_media_visit_record_parts(tm_media *m, const char *visit_id, tm_media_record_part_cb part_cb);

/* The recorder's track name for peer_id's streams: "<label> audio" / "<label> video", e.g.
 * "attending d-li video". Ids and roles only, never a person's name. Applies to files (parts)
 * started afterwards; without a label the track is named by the peer id. Copied. Returns 0 or
 * TM_EINVAL (missing ids, a label over 63 bytes). */
int tm_media_set_label(tm_media *m, const char *visit_id, const char *peer_id, const char *label);

/* Time a packet spends inside the server: from the worker taking the datagram off the ICE
 * socket to the last forwarded copy handed back to it (all receivers), over every RTP packet
 * since start. Percentiles are read from 2 us buckets (values above 2 ms count as 2 ms). */
typedef struct tm_media_latency {
    uint64_t samples;
    double p50_us, p99_us, max_us;
} tm_media_latency;
void tm_media_get_latency(tm_media *m, tm_media_latency *out); /* approximate, atomics */

#endif

/*
 * media_internal.h - the media core's private structures: the media object
 * (control thread), workers (one thread + GMainContext each), visits and
 * peers (owned by one worker), and the functions the media/ files share.
 *
 * Ownership: tm_media owns the workers; a worker owns its visits (hash by id);
 * a visit owns its peers (array in join order). Nothing here is touched by two
 * threads except the counters (relaxed atomics) and the event sink (refcount).
 */
#ifndef TELEMED_MEDIA_INTERNAL_H
#define TELEMED_MEDIA_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include <agent.h>
#include <gio/gio.h>
#include <glib.h>
#include <openssl/ssl.h>

#include "dtls_srtp_internal.h"
#include "bwe.h"
#include "congestion.h"
#include "ice_policy.h"
#include "telemed/media.h"
#include "telemed/recorder.h"
#include "rtcp.h"
#include "rtp.h"
#include "rtx_cache.h"
#include "sdp.h"
#include "simulcast.h"
#include "stream_stats.h"

#define TM__MAX_STREAMS TM_SDP_MAX_MLINES
#define TM__MAX_BOUND 16          /* receivers of one incoming stream */
#define TM__PKT_CAP 2048          /* forwarding scratch: MTU + SRTP trailer + room */
#define TM__RX_BATCH 8            /* datagrams per recvmmsg on a peer's media socket (ice.c) */
#define TM__RX_SET_EVENTS 32      /* ready media sockets taken per epoll_wait (ice.c) */
#define TM__TX_BATCH 16           /* datagrams per sendmmsg to one peer (ice.c) */
#define TM__REMB_CAP_BPS 2500000u /* what senders may use when no receiver says less */
#define TM__REMB_MIN_BPS 100000u
#define TM__PLI_INTERVAL_MS 1000
#define TM__RENEGOTIATED_MS 3000 /* a receiver's keyframe requests count as a join's this long */
#define TM__RESUMED_MS 1000      /* heard again after this long: its path was broken */
#define TM__SILENT_MS                                                                              \
    6000 /* nothing received this long: "disconnected" (RTCP-only receivers report every <= 5 s)   \
          */
#define TM__RTX_SLOTS_VIDEO 256        /* index entries: ~2 s of packets at 1 Mbit/s, 6 KiB */
#define TM__RTX_MAX_BYTES (256 * 1024) /* 1 s at 2 Mbit/s */
#define TM__RTX_MAX_AGE_MS 1000
#define TM__RTX_POOL_KEEP 16 /* unused retransmission chunks a worker keeps: 128 KiB */
#define TM__MISSING_MAX 64   /* upstream losses tracked per incoming video stream */
#define TM__NACK_RETRIES 3
#define TM__NACK_RETRY_MS 40
#define TM__NACK_GIVE_UP_MS 1000

#define TM__REC_NAME_LEN 96 /* a recorder track's name */

#define TM__LATENCY_BUCKETS 1024
#define TM__LATENCY_STEP_US 2

/* Counters, one set per worker so increments never share a cache line. */
typedef struct tm__counters {
    _Alignas(64) atomic_uint_fast64_t rx_packets;
    atomic_uint_fast64_t tx_packets, dropped_malformed, dropped_unknown_source, nacks_answered,
        plis_forwarded, nacks_sent, rtx_received, rtx_redundant, rx_direct, tx_batched, dtls_shed;
    atomic_int_fast64_t peers, visits;
    atomic_uint_fast64_t rtx_bytes; /* chunks held by the worker's retransmission caches and pool */
    atomic_uint_fast64_t latency_max_us;
    atomic_uint_fast32_t latency[TM__LATENCY_BUCKETS]; /* TM__LATENCY_STEP_US each */
} tm__counters;

/* Where events go; shared by the media object and queued event messages, so an
 * event still in the control queue after tm_media_free is dropped safely. */
typedef struct tm__sink {
    gint refs;
    bool alive; /* control thread only */
    tm_media_event_cb cb;
    void *user;
    GMainContext *control;
} tm__sink;

typedef struct tm__worker tm__worker;
typedef struct tm__peer_cc tm__peer_cc;
typedef struct tm__visit tm__visit;
typedef struct tm__peer tm__peer;

struct tm_media {
    tm__sink *sink;
    int n_workers;
    tm__worker **workers;
    EVP_PKEY *key;
    X509 *cert;
    SSL_CTX *ssl_ctx;
    char fingerprint[TM__DTLS_FP_MAX];
    char **addresses; /* NULL-terminated */
    char *public_ip;
    int port_min, port_max;
    bool stock_io;          /* tm_media_options.stock_io: no socket beside libnice */
    bool transport_cc;      /* tm_media_options.transport_cc */
    bool send_each;         /* tm_media_options.send_each: a sendto per datagram */
    bool rx_epoll;          /* tm_media_options.rx_epoll: one epoll set of media sockets */
    bool keep_dtls;         /* tm_media_options.keep_dtls: no tm__dtls_shed */
    int ice_pacing_ms;      /* libnice's Ta */
    int max_candidates;     /* remote candidates per peer and ICE session */
    tm__ice_policy *policy; /* which remote addresses get connectivity checks */
    GHashTable *visits;     /* control thread: visit id -> tm__visit_home */
    GSource *test_stall;    /* test builds (TM_TEST_HOOKS): test_stall.c's signal */
};

/* test_stall.c, compiled in test builds only (TM_TEST_HOOKS). */
void tm__test_stall_start(tm_media *m);
void tm__test_stall_stop(tm_media *m);

/* Control-thread bookkeeping of one peer: its remote candidates this ICE session. */
typedef struct tm__peer_home {
    char ice_ufrag[TM_SDP_TOKEN_LEN]; /* of its latest offer; a new one is an ICE restart */
    int n_candidates;
    bool video_vp8; /* its latest offer's answer took VP8 video */
} tm__peer_home;

/* Control-thread bookkeeping of where a visit lives. */
typedef struct tm__visit_home {
    int worker;
    GHashTable *peers;  /* peer id -> tm__peer_home */
    GHashTable *labels; /* peer id -> recorder label (tm_media_set_label) */
    bool recording;     /* keeps the visit (and its worker) until tm_media_visit_close */
    bool h264;          /* the visit's video is H.264: a peer offered no VP8 */
} tm__visit_home;

struct tm__worker {
    tm_media *media;
    int index;
    GThread *thread;
    GMainContext *ctx;
    GMainLoop *loop;
    GHashTable *visits; /* visit id -> tm__visit */
    GSource *tick;      /* once a second: RR, REMB, stats; only while there are visits */
    int64_t tick_ms;    /* when it last ran, 0 = not since it started */
    tm__counters counters;
    tm_rtx_pool *rtx_pool; /* chunks of its out streams' retransmission caches */
    uint64_t next_join_seq;
    unsigned test_drop, test_drop_n;       /* tm_media_set_test_drop */
    unsigned test_drop_in, test_drop_in_n; /* tm_media_set_test_drop_in */
    bool stopping;   /* tm_media_free: recordings still running are not finalised */
    int rec_pending; /* recordings finishing (tm_recorder_finish called, no result yet) */
    /* Forwarding scratch; one packet at a time on this thread. */
    uint8_t pkt[TM__PKT_CAP];
    uint8_t rtcp[TM__PKT_CAP];
    tm__twcc_fb twcc_fb; /* a receiver's transport-cc feedback, decoded (congestion.c) */
    /* The epoll set of its peers' media sockets and its GSource (ice.c);
     * NULL rx_set until the first socket, or without rx_epoll. */
    GSource *rx_set;
    int rx_epfd;
    /* Receive batch of the media sockets (ice.c), one peer's at a time. */
    struct mmsghdr rx_msg[TM__RX_BATCH];
    struct iovec rx_iov[TM__RX_BATCH];
    struct sockaddr_in rx_from[TM__RX_BATCH];
    uint8_t rx_buf[TM__RX_BATCH][TM__PKT_CAP];
    /* Sends queued while a receive batch is forwarded, all to one socket,
     * flushed with one sendmmsg (ice.c). */
    bool tx_queueing;
    int tx_n, tx_fd;
    unsigned lat_pending; /* packets of the batch forwarded, not yet timed */
    struct mmsghdr tx_msg[TM__TX_BATCH];
    struct iovec tx_iov[TM__TX_BATCH];
    struct sockaddr_storage tx_to[TM__TX_BATCH];
    uint8_t tx_buf[TM__TX_BATCH][TM__PKT_CAP];
};

/* A stream a sender peer sends to us (one m-line). */
typedef struct tm__in_stream {
    int mline;
    tm_media_kind kind;
    tm_codec_id codec;
    int pt;     /* the sender's payload type of the codec */
    int rtx_pt; /* -1 none */
    uint32_t clock;
    uint32_t ssrc; /* 0 until known (SDP or first packet) */
    uint32_t rtx_ssrc;
    int ext_mid, ext_abs; /* the sender's extension ids, 0 = none */
    int ext_level;        /* RFC 6464 audio level id, 0 = none */
    /* Loudness (127 - the RFC 6464 level, so higher is louder) smoothed over
     * ~8 packets, in 1/256ths; level_ms = when a level last came, 0 = never. */
    int32_t loud_q8;
    int64_t level_ms;
    tm_stream_stats *stats;
    int64_t last_pli_ms;
    int64_t key_ms;    /* when its last keyframe began, 0 = none yet */
    bool join_pli_due; /* a joining receiver's request waits out the gap */
    /* keyframe.c: requests still due after a peer's media resumed, until a
     * keyframe of this stream goes through; receivers' own requests pass
     * with the short gap until kf_until_ms */
    uint8_t kf_tries;
    int64_t kf_next_ms, kf_until_ms;
    uint8_t fir_seq;
    int rec_track1;          /* recorder track + 1 in the running part; 0 = not in it (a new
                                part is due when it sends), -1 = cannot be recorded */
    uint64_t remb_bps;       /* last REMB we sent for it */
    tm__loss_fold loss_fold; /* its receivers' loss in our RR to the sender (congestion.c) */
    /* Upstream loss: sequence numbers we have not seen, for our NACKs to the sender. */
    bool have_seq;
    uint16_t max_seq;
    int n_missing;
    struct {
        uint16_t seq;
        uint8_t tries;
        int64_t first_ms, last_ms;
    } missing[TM__MISSING_MAX];
    /* Simulcast (simulcast.h): each layer of an m-line is an in stream of its own; the
     * first (layer 0) is the head, the one receivers bind to and the recorder records.
     * n_layers = 0: a plain stream. */
    int n_layers;
    int layer; /* in a=simulcast order */
    int head;  /* index of the head in the peer's in[] */
    char rid[TM_SDP_RID_LEN];
    int ext_rid, ext_rrid;
    tm__layer_info meter;    /* what the layer carries, updated once a second */
    uint64_t meter_bytes;    /* since the last update */
    int64_t meter_rx_ms;     /* last packet */
    tm__layer_pick rec_pick; /* head: the recorder takes the best layer */
    tm__rtp_rewrite rec_rw;
    /* Receivers: (peer, out index) pairs, rebuilt when membership changes. */
    int n_bound;
    tm__peer *bound_peer[TM__MAX_BOUND];
    int bound_out[TM__MAX_BOUND];
} tm__in_stream;

/* Outgoing stats of one stream we send, from our counters and the receiver's RR. */
typedef struct tm__out_stats {
    uint64_t packets, bytes, last_bytes, bitrate_bps, nacks, plis, retransmits;
    uint8_t fraction_lost;
    int32_t cumulative_lost;
    uint32_t jitter;
    int64_t rtt_ms;
    int64_t rr_ms; /* when the receiver last reported on it, 0 = never */
} tm__out_stats;

/* A stream we send to a peer (one of its receiving m-lines). */
typedef struct tm__out_stream {
    int mline;
    tm_media_kind kind;
    tm_codec_id codec;
    int pt; /* the receiver's payload type for the codec */
    uint32_t clock;
    uint32_t ssrc;        /* ours, kept across renegotiation */
    int ext_mid, ext_abs; /* the receiver's extension ids */
    int ext_level;
    char mid[TM_SDP_TOKEN_LEN];
    int ordinal; /* index among this peer's out streams of the same kind */
    /* Source bound now (NULL = none): sender peer and its in-stream index. */
    tm__peer *src_peer;
    int src_in;
    uint64_t told_src_seq1; /* source's join_seq + 1 in the last BINDINGS event, 0 = none */
    tm__rtp_rewrite rw;     /* one continuous stream whatever its source */
    tm__layer_pick pick;    /* a simulcast source: the layer this receiver gets */
    uint64_t remb_bps;      /* from this receiver, 0 = none */
    int64_t remb_ms;
    /* SRs we forwarded: NTP middle 32 -> when, for RTT from the receiver's RR. */
    uint32_t sr_mid[4];
    int64_t sr_ms[4];
    unsigned sr_next;
    tm_rtx_cache *rtx;
    tm__out_stats st;
    uint8_t ext_map[256]; /* sender's extension id -> ours for this receiver, 0 = drop */
} tm__out_stream;

/* The size a receiver renders a sender at (tm_media_set_view). */
typedef struct tm__view {
    char *src_peer_id;
    unsigned width, height;
} tm__view;
#define TM__MAX_VIEWS 16

struct tm__peer {
    tm__visit *visit;
    tm__worker *w;
    char *id;
    char *label; /* the recorder's name for its tracks (tm_media_set_label), NULL = id */
    bool send;
    uint64_t join_seq;
    bool closing;
    bool bindings_due; /* its answer went out: the next rebind tells it its bindings */
    bool video_mixed;  /* it gets video of more than one sender (forward_bind.c) */
    int64_t offer_ms;  /* monotonic time of its latest offer's answer */
    /* ICE */
    NiceAgent *agent;
    guint stream_id;
    char *local_ufrag, *local_pwd;
    char remote_ufrag[TM_SDP_TOKEN_LEN];
    char remote_fp[TM_SDP_FINGERPRINT_LEN];
    bool dtls_server;
    bool ice_ready;
    bool gathering_done;
    int consent_renewals;       /* in a row, with no answer between (ice.c) */
    int64_t consent_renewed_ms; /* monotonic time of the last one */
    /* Direct send (ice.c): the selected pair's own UDP socket and the remote
     * address, while the component is READY/CONNECTED on a non-relayed UDP
     * pair; NULL tx_sock = send through libnice. */
    GSocket *tx_sock;
    int tx_fd;
    socklen_t tx_addrlen;
    struct sockaddr_storage tx_addr;
    /* Media receive (ice.c): our socket beside the selected pair's, which the
     * kernel hands the RTP/RTCP from tx_addr; !rx_on = libnice receives all. */
    bool rx_on;
    GSource *rx_src; /* without rx_epoll; with it rx_fd is in the worker's epoll set */
    int rx_fd;
    int rx_nice_fd; /* the libnice socket it sits beside */
    uint32_t rx_ip; /* the remote it takes media from (network order) */
    uint16_t rx_port;
    int64_t rx_pair_ms; /* monotonic time it last delivered an authenticated packet */
    /* DTLS / SRTP */
    tm__dtls *dtls;
    GSource *dtls_timer;
    tm__srtp *srtp;
    const char *state;  /* last state reported (static string) */
    int64_t last_rx_ms; /* monotonic time of the last SRTP/SRTCP packet authenticated */
    /* The first SRTP/SRTCP of its that authenticated (0 = none yet): it has our
     * last flight, so its DTLS state can go once stray retransmissions are over. */
    int64_t srtp_heard_ms;
    bool dtls_kept;     /* its suite cannot be shed: the SSL stays */
    uint32_t rtcp_ssrc; /* our sender SSRC in RTCP to this peer */
    uint64_t session_version;
    /* Streams: arrays of n_in / n_out, sized to the offer (peer.c), not to
     * TM__MAX_STREAMS: a 1:1 visit has 2 m-lines, and 16 of each cost ~38 KiB. */
    int n_in, n_out;
    tm__in_stream *in;
    tm__out_stream *out;
    int n_views;
    tm__view views[TM__MAX_VIEWS];
    /* transport-cc feedback to it and its downlink estimate (congestion.c),
     * ~20 KB: NULL until it negotiates transport-cc. */
    tm__peer_cc *cc;
};

struct tm__visit {
    char *id;
    tm__worker *w;
    GPtrArray *peers; /* tm__peer*, join order */
    bool closing;     /* being torn down: no rebinding */
    /* Recording (tm_media_visit_record): configured, then started on the first packet. */
    char *rec_path;
    uint8_t rec_key[32];
    bool rec_has_key, rec_failed;
    int rec_expect;       /* sending peers to wait for before starting */
    int64_t rec_first_ms; /* the visit's first RTP packet while waiting */
    tm_media_record_cb rec_cb;
    tm_media_record_part_cb rec_part_cb;
    void *rec_user;
    tm_recorder *rec;
    int rec_part; /* the running (or last) part's number, 0 before the first */
    /* Active speaker (forward.c): the current one, the sender loudest since
     * cand_since_ms that may take over, and when to look again. */
    tm__peer *speaker, *speaker_cand;
    int64_t cand_since_ms, speaker_eval_ms;
};

/* ---- media.c ---- */
/* Post an event to the control thread (copies every string). Any thread. */
void tm__media_post(tm__worker *w, const tm_media_event *ev);
/* Hand a finished recording's result (copied) to cb on the control thread. */
void tm__media_post_recording(tm__worker *w, const char *visit_id, tm_media_record_cb cb,
                              void *user, const tm_recorder_result *res);
/* Tell cb (may be NULL) on the control thread that part (>= 2) of the visit's recording starts
 * at path (copied). */
void tm__media_post_part(tm__worker *w, const char *visit_id, tm_media_record_part_cb cb,
                         void *user, int part, const char *path);

/* ---- worker.c ---- */
tm__worker *tm__worker_new(tm_media *m, int index, char **err);
void tm__worker_free(tm__worker *w); /* stops the thread, frees its visits */
tm__visit *tm__worker_visit(tm__worker *w, const char *visit_id, bool create);
void tm__worker_visit_free(tm__worker *w, tm__visit *v);
/* Frees v when no peer is left and nothing (a recording) holds it. */
void tm__worker_visit_release(tm__worker *w, tm__visit *v);
/* Gives the arenas' free pages back to the kernel in 2 s (coalesced): after
 * work that frees much, never on the packet path. */
void tm__worker_trim_later(tm__worker *w);
/* Starts v's recorder with the sending streams known now, once the expected
 * senders have offered or 5 s after the first packet. Called per packet until
 * it has started (or failed). */
void tm__visit_record_maybe_start(tm__visit *v, int64_t now_ms);
/* A sender the running file does not hold has started sending: finishes this
 * part and starts the next with every sender's streams. */
void tm__visit_record_next_part(tm__visit *v);
tm__peer *tm__visit_peer(tm__visit *v, const char *peer_id);

/* ---- peer.c ---- */
/* Creates or renegotiates a peer from a validated offer (borrowed) and posts the answer. */
void tm__peer_offer(tm__worker *w, const char *visit_id, const char *peer_id, bool send,
                    const tm_sdp_offer *offer, const char *label);
void tm__peer_add_candidate(tm__peer *p, const char *candidate);
/* Frees the peer and removes it from its visit; reports state (e.g. "closed"). */
void tm__peer_close(tm__peer *p, const char *state);
void tm__peer_set_state(tm__peer *p, const char *state);
/* From ice.c: a DTLS datagram arrived; the ICE component changed state. */
void tm__peer_dtls_input(tm__peer *p, const uint8_t *buf, size_t len);
void tm__peer_ice_state(tm__peer *p, guint state);
/* Once a second: frees the DTLS state of a peer whose SRTP has flowed for a while. */
void tm__peer_dtls_tick(tm__peer *p, int64_t now_ms);
/* Media arrived at now_ms (after a silence it reports "connected" again). Hot path: cheap. */
void tm__peer_media_seen(tm__peer *p, int64_t now_ms);
/* Closes p from the worker's main loop soon (safe inside libnice callbacks). */
void tm__peer_close_later(tm__peer *p, const char *state);
/* Sends a datagram on the peer's ICE transport (no-op before a pair exists). */
void tm__peer_send(tm__peer *p, const uint8_t *buf, size_t len);

/* ---- keyframe.c ---- */
/* p's media resumed (heard again after a silence, ICE ready again, DTLS done):
 * every video it receives and every video it sends restart with a keyframe. */
void tm__keyframe_recover(tm__peer *p, int64_t now_ms);
/* Per packet of a stream with kf_tries set, after forwarding it: asks again
 * when due, and stops once a keyframe went through. */
void tm__keyframe_pace(tm__peer *sender, tm__in_stream *s, bool keyframe, int64_t now_ms);
/* Whether s is in a recovery (its receivers' PLIs then pass at once). */
static inline bool tm__keyframe_recovering(const tm__in_stream *s, int64_t now_ms)
{
    return now_ms < s->kf_until_ms;
}

/* ---- congestion.c ---- */
/* Per RTP packet from p (parsed, decrypted): notes its transport-wide sequence
 * number and sends p the feedback when due. Hot path: no allocation. */
void tm__congestion_on_rtp(tm__peer *p, const uint8_t *buf, const tm_rtp_header *h, int64_t now_us);
/* The worst loss fraction (of 256) that receivers of p's stream s reported
 * lately; of a simulcast layer, the receivers that get that layer. */
uint8_t tm__congestion_receivers_lost(const tm__peer *p, const tm__in_stream *s, int64_t now_ms);
/* Takes p's transport-cc extension id from its offer (0 = none); a new
 * transport or another id starts its feedback and its downlink estimate over.
 * Their state is allocated at the first id; without memory p goes without
 * transport-cc. */
void tm__congestion_configure(tm__peer *p, int ext_id, bool new_transport);
/* p's transport-cc extension id, 0 = none. */
int tm__congestion_ext(const tm__peer *p);
/* Frees p's congestion state (peer teardown). */
void tm__congestion_free(tm__peer *p);
/* Per packet to receiver r on its out stream o, before SRTP: our own
 * transport-wide sequence number when r does transport-cc (its feedback then
 * measures this leg, bwe.c), else abs-send-time when o's source is a
 * transport-cc sender; returns the new length. */
size_t tm__congestion_stamp(tm__peer *r, const tm__out_stream *o, uint8_t *pkt, size_t len,
                            size_t cap, int64_t now_us);
/* A transport-cc feedback from a receiver, for the packets we sent it. */
void tm__congestion_on_feedback(tm__peer *from, const tm_rtcp_pkt *pkt, int64_t now_us);
/* The server's estimate of r's downlink in bit/s, 0 = none (no transport-cc,
 * or no feedback yet). */
uint64_t tm__congestion_downlink_bps(const tm__peer *r);

/* ---- ice.c ---- */
int tm__ice_start(tm__peer *p, const tm_sdp_offer *offer);
int tm__ice_restart(tm__peer *p, const tm_sdp_offer *offer);
void tm__ice_stop(tm__peer *p);
/* The worker's epoll set of media sockets, once its peers are gone. */
void tm__ice_worker_clear(tm__worker *w);
void tm__ice_add_remote(tm__peer *p, const char *candidate); /* "" = end of candidates */
/* Sends one datagram on the selected pair. Hot path: no lock, no allocation. */
void tm__ice_send(tm__peer *p, const uint8_t *buf, size_t len);
/* Local candidates as "candidate:..." strings (new array, g_strfreev). */
char **tm__ice_local_candidates(tm__peer *p);

/* ---- forward.c, forward_rtcp.c, forward_bind.c, forward_tick.c: the per-visit router ---- */
/* now_us: g_get_monotonic_time() when the datagram was taken in (one clock
 * read per datagram, shared by forwarding, stats and the peer's liveness). */
/* Each returns whether the packet authenticated (it may still be dropped). */
bool tm__forward_rtp(tm__peer *from, uint8_t *buf, size_t len, int64_t now_us);
bool tm__forward_rtcp(tm__peer *from, uint8_t *buf, size_t len, int64_t now_us);
/* Adds n packets taken in at since_us and sent by now to the latency histogram. */
void tm__forward_note_latency(tm__worker *w, int64_t since_us, unsigned n);
/* Rebinds every receiver's out streams to the visit's senders (join order). */
void tm__forward_rebind(tm__visit *v);
/* Sends a PLI for s to its sender now, outside the rate limit. 0, or TM_ENOTFOUND
 * (no SRTP session, closing, SSRC unknown) or TM_EINVAL. */
int tm__forward_pli(tm__peer *sender, tm__in_stream *s, int64_t now_ms);
/* Ask every video sender of the visit for a keyframe now (a new recording part starts). */
void tm__forward_keyframes_all(tm__visit *v);
/* Once a second per peer: RR + REMB to senders, stats event. */
void tm__forward_tick(tm__peer *p, int64_t now_ms);
/* Drops every reference to p from other peers' bindings (before freeing p). */
void tm__forward_unbind(tm__visit *v, tm__peer *p);
/* Sets the size receiver p renders src_peer_id at (0x0 = hidden); copies the id. */
void tm__forward_set_view(tm__peer *p, const char *src_peer_id, unsigned width, unsigned height);

#endif

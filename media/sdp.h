/*
 * sdp.h - the browser's SDP offer in, the server's SDP answer out.
 *
 * Pure text processing: no sockets, no threads, no GLib. The offer is parsed
 * into a read-only struct (tm_sdp_offer) whose fields media-core reads
 * directly; the answer is printed from that struct plus the server's own
 * transport facts (tm_sdp_answer_params). Runs on whichever thread calls it
 * (the control loop in practice); every function is reentrant.
 *
 * What we accept (DESIGN.md "Media"): Unified Plan, one BUNDLE group,
 * rtcp-mux, Opus 48000/2 audio, VP8 video, or H.264 constrained baseline
 * (profile-level-id 42e01f, packetization-mode=1) when VP8 is not offered,
 * each with its rtx payload type if offered. Data channel m-lines are
 * rejected in the answer (port 0), as are m-lines outside the BUNDLE group or
 * without a usable codec; an offer with no usable audio or video at all is
 * refused.
 *
 * Limits (bounded parse of untrusted text): TM_SDP_MAX_INPUT bytes in,
 * TM_SDP_MAX_MLINES m-lines, per-array caps below; a known attribute longer
 * than its field is an error, unknown attributes are skipped.
 *
 * Private to media/: the server's other modules go through telemed/media.h;
 * media's unit tests and fuzz targets include it through media.cmake.
 */
#ifndef TELEMED_MEDIA_SDP_H
#define TELEMED_MEDIA_SDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "telemed/common.h"

#define TM_SDP_MAX_INPUT (64 * 1024)
#define TM_SDP_MAX_LINE 4096 /* one line, any attribute */
#define TM_SDP_MAX_MLINES 16
#define TM_SDP_MAX_CODECS 64 /* payload types per m-line */
#define TM_SDP_MAX_FB 12     /* rtcp-fb values per codec */
#define TM_SDP_MAX_EXTMAPS 24
#define TM_SDP_MAX_SSRCS 16
#define TM_SDP_MAX_SSRC_GROUPS 8
#define TM_SDP_MAX_CANDIDATES 32 /* per m-line, in the offer */
#define TM_SDP_MAX_RIDS 4        /* simulcast layers per m-line (Chrome sends 3) */

/* Field sizes include the NUL. */
#define TM_SDP_TOKEN_LEN 64        /* mid, ufrag, cname, codec name, ... */
#define TM_SDP_PWD_LEN 257         /* ice-pwd: RFC 8839 allows 22..256 chars */
#define TM_SDP_FINGERPRINT_LEN 200 /* "AB:CD:..." up to sha-512 */
#define TM_SDP_FMTP_LEN 256
#define TM_SDP_FB_LEN 40 /* "nack pli", "ccm fir", "goog-remb", ... */
#define TM_SDP_URI_LEN 160
#define TM_SDP_MSID_LEN 140 /* "<stream id> <track id>" */
#define TM_SDP_ADDR_LEN 64  /* IPv4/IPv6 literal or mDNS .local name */
#define TM_SDP_RID_LEN 17   /* RFC 8851 rid-id; 16 bytes is what an RTP header element holds */

/* Well-known header extension URIs (RFC 8843 mid; Google's abs-send-time;
 * transport-wide cc draft). */
#define TM_SDP_EXT_MID "urn:ietf:params:rtp-hdrext:sdes:mid"
#define TM_SDP_EXT_AUDIO_LEVEL "urn:ietf:params:rtp-hdrext:ssrc-audio-level" /* RFC 6464 */
#define TM_SDP_EXT_ABS_SEND_TIME "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
#define TM_SDP_EXT_TWCC "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
/* RFC 8852: which simulcast layer (rid) a packet, or a retransmission, belongs to. */
#define TM_SDP_EXT_RID "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
#define TM_SDP_EXT_RRID "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"

typedef enum {
    TM_MEDIA_AUDIO,
    TM_MEDIA_VIDEO,
    TM_MEDIA_APPLICATION,
    TM_MEDIA_OTHER,
} tm_media_kind;

typedef enum {
    TM_DIR_SENDRECV, /* also the default when the offer says nothing */
    TM_DIR_SENDONLY,
    TM_DIR_RECVONLY,
    TM_DIR_INACTIVE,
} tm_sdp_direction;

typedef enum {
    TM_SETUP_NONE, /* attribute absent */
    TM_SETUP_ACTPASS,
    TM_SETUP_ACTIVE,
    TM_SETUP_PASSIVE,
} tm_sdp_setup;

typedef enum { TM_CAND_UDP, TM_CAND_TCP } tm_cand_transport;
typedef enum { TM_CAND_HOST, TM_CAND_SRFLX, TM_CAND_PRFLX, TM_CAND_RELAY } tm_cand_type;
typedef enum {
    TM_TCP_NONE, /* UDP candidate, or TCP without tcptype */
    TM_TCP_ACTIVE,
    TM_TCP_PASSIVE,
    TM_TCP_SO,
} tm_cand_tcptype;

/* One ICE candidate (RFC 8839 section 5.1). */
typedef struct tm_sdp_candidate {
    char foundation[33]; /* 1..32 ice-chars */
    unsigned component;  /* 1 = RTP (the only one with rtcp-mux) */
    tm_cand_transport transport;
    uint32_t priority;
    char address[TM_SDP_ADDR_LEN];
    uint16_t port;
    tm_cand_type type;
    char raddr[TM_SDP_ADDR_LEN]; /* "" when absent */
    uint16_t rport;              /* 0 when absent */
    tm_cand_tcptype tcptype;
} tm_sdp_candidate;

/* One payload type from the m= line, with its rtpmap/fmtp/rtcp-fb. */
typedef struct tm_sdp_codec {
    int pt;                      /* 0..127 */
    char name[TM_SDP_TOKEN_LEN]; /* as written ("opus", "VP8", "H264", "rtx"); "" if no rtpmap */
    uint32_t clock;              /* clock rate, 0 if no rtpmap */
    unsigned channels;           /* audio channels, 1 when not given */
    char fmtp[TM_SDP_FMTP_LEN];  /* "" when absent */
    int apt;                     /* rtx: the payload type it repairs (fmtp apt=), else -1 */
    unsigned n_fb;
    char fb[TM_SDP_MAX_FB][TM_SDP_FB_LEN]; /* "nack", "nack pli", "ccm fir", "goog-remb",
                                              "transport-cc" (plus a=rtcp-fb:* ones) */
} tm_sdp_codec;

typedef struct tm_sdp_extmap {
    int id;                     /* 1..255 (1..14 one-byte, 1..255 two-byte) */
    tm_sdp_direction direction; /* "a=extmap:3/sendonly uri" -> SENDONLY; default SENDRECV */
    char uri[TM_SDP_URI_LEN];
} tm_sdp_extmap;

typedef struct tm_sdp_ssrc {
    uint32_t ssrc;
    char cname[TM_SDP_TOKEN_LEN]; /* "" when not given */
    char msid[TM_SDP_MSID_LEN];   /* from "a=ssrc:N msid:..." (Plan B style), "" when not given */
} tm_sdp_ssrc;

typedef struct tm_sdp_ssrc_group {
    char semantics[16]; /* "FID" (rtx pair), "SIM", "FEC-FR", ... */
    unsigned n;
    uint32_t ssrcs[4]; /* FID: [0] = media, [1] = rtx */
} tm_sdp_ssrc_group;

/* One a=rid line (RFC 8851): "a=rid:<id> send|recv [restrictions]"; restrictions are
 * not kept (the layers' sizes are read from the packets). */
typedef struct tm_sdp_rid {
    char id[TM_SDP_RID_LEN];
    bool send; /* "send"; false = "recv" */
} tm_sdp_rid;

/* The fingerprint of the peer's DTLS certificate (a=fingerprint). */
typedef struct tm_sdp_fingerprint {
    char algorithm[16];                 /* "sha-256" (lower case as written), "" when absent */
    char value[TM_SDP_FINGERPRINT_LEN]; /* "AB:CD:..." as written */
} tm_sdp_fingerprint;

/* One m-line of the offer. The ICE/DTLS fields are the EFFECTIVE ones:
 * media-level if present, else inherited from the session level. */
typedef struct tm_sdp_mline {
    tm_media_kind kind;
    char media[16];              /* "audio", "video", "application", ... as written */
    uint16_t port;               /* 0 = the offerer disabled this m-line */
    char proto[32];              /* "UDP/TLS/RTP/SAVPF", "UDP/DTLS/SCTP", ... */
    char fmt0[TM_SDP_TOKEN_LEN]; /* first format token of the m= line ("111",
                                    "webrtc-datachannel"), for rejecting it */
    char mid[TM_SDP_TOKEN_LEN];  /* "" when absent (then it cannot be in BUNDLE) */
    tm_sdp_direction direction;
    bool rtcp_mux;
    bool rtcp_rsize;
    bool bundle_only;           /* a=bundle-only */
    bool in_bundle;             /* mid is listed in the offer's BUNDLE group */
    char msid[TM_SDP_MSID_LEN]; /* media-level a=msid ("<stream> <track>"), "" when absent */

    char ice_ufrag[TM_SDP_TOKEN_LEN];
    char ice_pwd[TM_SDP_PWD_LEN];
    tm_sdp_fingerprint fingerprint;
    tm_sdp_setup setup;

    unsigned n_codecs;
    tm_sdp_codec *codecs; /* n_codecs entries, in m= line order (owned by the offer) */
    unsigned n_extmaps;
    tm_sdp_extmap extmaps[TM_SDP_MAX_EXTMAPS];
    unsigned n_ssrcs;
    tm_sdp_ssrc ssrcs[TM_SDP_MAX_SSRCS];
    unsigned n_ssrc_groups;
    tm_sdp_ssrc_group ssrc_groups[TM_SDP_MAX_SSRC_GROUPS];
    unsigned n_candidates;
    tm_sdp_candidate *candidates; /* n_candidates entries (owned by the offer), often 0 (trickle) */
    bool end_of_candidates;
    unsigned n_rids;
    tm_sdp_rid rids[TM_SDP_MAX_RIDS];
    /* a=simulcast:send (RFC 8853): the first alternative of each stream, in order, paused
     * ("~") ones included, without the "~". */
    unsigned n_sim_send;
    char sim_send[TM_SDP_MAX_RIDS][TM_SDP_RID_LEN];

    /* --- The negotiation result, filled by tm_sdp_parse_offer. --- */
    bool accepted; /* will be answered with a real port (audio/video, codec
                      found, port != 0, in BUNDLE, rtcp-mux) */
    int codec;     /* index into codecs[] of the chosen codec, -1 if none */
    int rtx;       /* index into codecs[] of its rtx (apt = chosen pt), -1 if none */
    /* The offer's ids for the extensions the server understands, 0 = not offered. */
    int ext_mid;
    int ext_audio_level; /* RFC 6464, audio m-lines only */
    int ext_abs_send_time;
    int ext_twcc;
    int ext_rid, ext_rrid;
    /* Simulcast taken: the offerer sends n_layers layers (2..TM_SDP_MAX_RIDS) named
     * layers[] (a=simulcast:send order, each declared "a=rid:<id> send"), told apart by
     * the rid header extension (ext_rid > 0). 0 = one plain stream. The answer receives
     * them with "a=rid:<id> recv" and "a=simulcast:recv". */
    unsigned n_layers;
    char layers[TM_SDP_MAX_RIDS][TM_SDP_RID_LEN];
    /* The sender's SSRCs on this m-line (what the browser will send), 0 = none/unknown:
     * the first SSRC of a FID group (or the first a=ssrc) and its FID rtx partner. */
    uint32_t remote_ssrc;
    uint32_t remote_rtx_ssrc;
    const char *remote_cname; /* points into this offer's ssrcs[] (or a static ""), never
                                 NULL: copy the string, not the pointer, to keep it */
} tm_sdp_mline;

/* A parsed offer. Read-only for callers; free with tm_sdp_offer_free.
 * It is a few KB per m-line plus the codec lists: copy what you need and free
 * it once the answer is built rather than keeping it per peer. */
typedef struct tm_sdp_offer {
    uint64_t session_id; /* from the o= line */
    uint64_t session_version;
    char ice_ufrag[TM_SDP_TOKEN_LEN]; /* effective session-wide (from the first accepted m-line
                                         when only media-level ones exist) */
    char ice_pwd[TM_SDP_PWD_LEN];
    bool ice_trickle;               /* a=ice-options contains "trickle" */
    bool ice_lite;                  /* the OFFERER is ice-lite */
    tm_sdp_fingerprint fingerprint; /* effective (same rule as ice_ufrag) */
    tm_sdp_setup setup;             /* effective */
    unsigned n_bundle;
    char bundle[TM_SDP_MAX_MLINES][TM_SDP_TOKEN_LEN]; /* mids of the BUNDLE group, in order */
    unsigned n_mlines;
    tm_sdp_mline mlines[TM_SDP_MAX_MLINES];
} tm_sdp_offer;

/*
 * Parse and check an offer (len bytes, need not be NUL-terminated; CRLF or LF).
 * On success returns 0 and *out is a new offer (caller frees with
 * tm_sdp_offer_free). On failure returns TM_EINVAL (or TM_ETOOBIG for input
 * over TM_SDP_MAX_INPUT, TM_ENOMEM), *out is NULL and, if err is not NULL,
 * *err is a new human message (caller frees with g_free()), such as
 * "not an SDP", "offer has no BUNDLE group", "rtcp-mux is required",
 * "no supported audio or video codec", "missing ice-ufrag/ice-pwd",
 * "missing DTLS fingerprint", "line 12: attribute too long".
 */
int tm_sdp_parse_offer(const char *sdp, size_t len, tm_sdp_offer **out, char **err);
void tm_sdp_offer_free(tm_sdp_offer *offer);

/* The DTLS role the answer takes (RFC 5763/8842): PASSIVE (the server is the
 * DTLS server and waits for the ClientHello) when the offer is actpass or
 * active, ACTIVE when the offer is passive. */
tm_sdp_setup tm_sdp_answer_setup(const tm_sdp_offer *offer);

/* The chosen codec and rtx of an m-line, or NULL. Borrowed from the offer. */
const tm_sdp_codec *tm_sdp_mline_codec(const tm_sdp_mline *m);
const tm_sdp_codec *tm_sdp_mline_rtx(const tm_sdp_mline *m);
/* Chooses H.264 for a video m-line that offers it (a visit whose video is
 * H.264, media.c), else keeps the usual choice; true when H.264 is chosen. */
bool tm_sdp_mline_prefer_h264(tm_sdp_mline *m);

/* The answer direction for an offered one, given whether the server will send
 * on the m-line (RFC 3264 6.1): sendrecv -> sendrecv or recvonly,
 * recvonly -> sendonly (or inactive if !server_sends), sendonly -> recvonly,
 * inactive -> inactive. */
tm_sdp_direction tm_sdp_answer_direction(tm_sdp_direction offered, bool server_sends);

/* What the server sends on one m-line of the answer. Borrowed strings. */
typedef struct tm_sdp_answer_media {
    bool send;               /* the server sends media on this m-line */
    uint32_t ssrc;           /* server's SSRC when sending (0 = do not list) */
    uint32_t rtx_ssrc;       /* its rtx SSRC (FID group), 0 = none; ignored without an rtx pt */
    const char *cname;       /* NULL -> "telemed" */
    const char *msid_stream; /* NULL -> no a=msid (then a=msid:- <track> is not written) */
    const char *msid_track;  /* NULL -> "<kind>-<ssrc>" */
} tm_sdp_answer_media;

/* The server's facts for the answer. All strings borrowed for the call. */
typedef struct tm_sdp_answer_params {
    const char *ice_ufrag;    /* required, 4..256 ice-chars */
    const char *ice_pwd;      /* required, 22..256 ice-chars */
    const char *fingerprint;  /* required, sha-256 "AB:CD:..." of the server certificate */
    bool ice_lite;            /* write a=ice-lite (the server is an ICE-lite agent) */
    bool transport_cc;        /* the server sends transport-cc feedback: answer the twcc
                                 extmap and rtcp-fb transport-cc; otherwise neither */
    bool remb;                /* answer rtcp-fb goog-remb on video (the server sends REMB) */
    uint64_t session_id;      /* o= id; 0 -> derived from the offer's */
    uint64_t session_version; /* o= version; bump on renegotiation */
    /* Candidate attribute values ("candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host"),
     * with or without the leading "a="; may be empty when trickling. Written into the
     * first accepted m-line (the BUNDLE tag). Each must pass tm_sdp_parse_candidate, or
     * the answer is refused (NULL): nothing unchecked reaches the peer. */
    const char *const *candidates;
    size_t n_candidates;
    bool end_of_candidates; /* write a=end-of-candidates (gathering done) */
    /* Per offer m-line (index = m-line index); n_media may be shorter than the offer,
     * missing entries mean "the server does not send". */
    const tm_sdp_answer_media *media;
    size_t n_media;
} tm_sdp_answer_params;

/*
 * Print the answer for an offer that tm_sdp_parse_offer accepted. Returns a
 * new NUL-terminated string with CRLF line ends (caller frees with free()),
 * or NULL when a required param is missing or invalid or memory runs out.
 * Every offered m-line is answered in order; rejected ones get port 0.
 */
char *tm_sdp_build_answer(const tm_sdp_offer *offer, const tm_sdp_answer_params *p);

/*
 * Parse one candidate: "candidate:..." with or without a leading "a=" and
 * trailing CR/LF (the form that trickles in signaling). Returns 0 or
 * TM_EINVAL (malformed, field too long, unknown type/transport).
 * Unknown extension attributes (generation, ufrag, network-id, ...) are skipped.
 */
int tm_sdp_parse_candidate(const char *line, tm_sdp_candidate *out);
/*
 * Format c as "candidate:<foundation> <comp> <udp|tcp> <prio> <addr> <port> typ <type>
 * [raddr <a> rport <p>] [tcptype <t>]" (no "a=", no CRLF) into buf.
 * Returns the length written (excluding NUL) or TM_ETOOBIG / TM_EINVAL.
 */
int tm_sdp_format_candidate(const tm_sdp_candidate *c, char *buf, size_t len);

const char *tm_sdp_direction_str(tm_sdp_direction d); /* "sendrecv", ... */

/* Shared by the parser and the answer writer: s is min..max ICE characters
 * (RFC 8839 ice-char: ALPHA / DIGIT / "+" / "/"). */
bool tm__sdp_is_ice_chars(const char *s, size_t min, size_t max);

/* The bounded text helpers of the SDP parsers (sdp.c). tm__sdp_next_token copies
 * the next space-separated token of *p into out (cap bytes with the NUL): its
 * length, 0 when none is left, -1 when it does not fit. tm__sdp_parse_u64 and
 * _uint: unsigned decimal without sign or spaces, at most max. tm__sdp_copy_str:
 * false when src does not fit in cap. tm__sdp_is_token: RFC 4566 token
 * characters only, safe to echo into the answer. */
int tm__sdp_next_token(const char **p, char *out, size_t cap);
bool tm__sdp_parse_u64(const char *s, uint64_t max, uint64_t *out);
bool tm__sdp_parse_uint(const char *s, unsigned max, unsigned *out);
bool tm__sdp_copy_str(char *dst, size_t cap, const char *src);
bool tm__sdp_is_token(const char *s);

#endif

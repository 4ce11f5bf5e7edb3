/*
 * webrtc_client.c - the independent reference WebRTC peer for telemed's tests.
 *
 * A patient, doctor or supervisor that speaks telemed.v1 over WSS (libsoup 3)
 * and does WebRTC with GStreamer's webrtcbin. It deliberately shares no code
 * with the server's media core (it does not link the telemed library): a bug
 * in our SDP, ICE, DTLS or RTP code must not be mirrored by the peer that is
 * meant to catch it.
 *
 * It sends a live VP8 test pattern and Opus tone, decodes what the server
 * forwards, and exits 0 only if it decoded the other side's video at the
 * expected size and enough audio within the run time. In a visit of more
 * than two it offers --recv-pairs more receive-only audio+video m-lines for
 * the others; a doctor can --invite a colleague as consulting doctor, and a
 * doctor run with --accept-invite joins the visit it is invited to. The last lines on
 * stdout are machine-readable (`result ...`, `stream ...`) for the test
 * drivers; progress lines start with `event=`.
 *
 * Threads: the GLib main loop owns the WebSocket, the protocol state and the
 * decision to exit. webrtcbin's callbacks (promises, ICE candidates, new
 * pads) and the streaming threads run elsewhere; they hand work to the main
 * loop with g_main_context_invoke() and update counters under stats_lock.
 *
 * Tests only: it accepts any TLS certificate.
 */
#include <gst/gst.h>
#include <gst/sdp/sdp.h>
#define GST_USE_UNSTABLE_API
#include <gst/webrtc/webrtc.h>
#include <jansson.h>
#include <libsoup/soup.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STREAMS 8
#define AUDIO_CAPS                                                                                 \
    "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000,"               \
    "encoding-params=(string)2"
#define VIDEO_CAPS "application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000"

enum phase {
    PH_CONNECTING,
    PH_HELLO,
    PH_WAIT_VISIT, /* patient: waiting in the queue; doctor: waiting for an offer */
    PH_MEDIA,      /* visit active (or watching): offer sent, media flowing */
    PH_DONE,
};

static const char *phase_name[] = {"connecting", "hello", "wait_visit", "media", "done"};

/* One decoded incoming stream, filled by streaming threads. */
struct in_stream {
    int video;         /* 1 video, 0 audio */
    guint64 frames;    /* video frames decoded */
    int width, height; /* negotiated raw video size */
    guint64 audio_ns;  /* decoded audio duration */
    gint64 first_us;   /* monotonic time of the first decoded buffer, 0 = none */
};

struct opts {
    char *url, *token, *role, *dept, *kind, *watch, *local_ip, *ua, *pattern;
    int tone_hz;
    gboolean urgent, recv_only, verbose, no_audio_send;
    int duration, timeout, width, height, fps, min_frames, kf_dist, bitrate;
    int expect_w, expect_h; /* size the other side's video must decode at */
    double min_audio_s, end_after;
    int expect_video, expect_audio; /* how many incoming streams must pass */
    int drop_every;                 /* loss hook: drop every Nth incoming video RTP packet */
    int recv_pairs;                 /* receive-only audio+video m-lines beyond the sendrecv ones */
    char *invite;                   /* doctor: invite this doctor as consulting once active */
    gboolean accept_invite;         /* doctor: accept a visit.invited and join as invited */
    int latency_ms;                 /* webrtcbin jitterbuffer */
};

struct app {
    struct opts o;
    GMainLoop *loop;
    SoupSession *session;
    SoupWebsocketConnection *ws;
    GstElement *pipe, *webrtc;
    enum phase phase;
    int next_id;
    char *visit_id;
    char *session_id;
    char *mids[MAX_STREAMS]; /* mid per m-line of our offer */
    int n_mids;
    gboolean offer_sent;
    GSList *pending_local_cands;  /* json_t*, sent once the offer is out */
    GSList *pending_remote_cands; /* json_t*, applied once the answer is set */
    gboolean answer_set;
    gint64 t_start_us, t_active_us, t_offer_us, t_answer_us, t_connected_us;
    char *fail_reason;
    int exit_code;
    guint run_timer, end_timer, tail_timer;
    guint64 frames_at_tail; /* video frames decoded when the last 3 s began */
    gboolean tail_marked;
    gboolean visit_ended;

    GMutex stats_lock;
    struct in_stream streams[MAX_STREAMS];
    int n_streams;
    /* loss hook counters (stats_lock) */
    guint64 dropped, repaired, repaired_rtx;
    GHashTable *dropped_seqs;     /* seq -> (ms after connect << 1) | seen again */
    guint32 drop_ssrc;            /* the one video stream the hook drops from */
    gint64 drop_until_us;         /* no drops once a repair could not come in time */
    int video_pt, audio_pt;       /* from the answer, atomic; -1 until known */
    int other_pt_packets;         /* atomic: RTP with neither PT (e.g. RTX) */
    guint audio_ssrc, video_ssrc; /* what we send */
};

static struct app A;

/* A printable stand-in for a missing string. */
static const char *or_q(const char *s)
{
    return s ? s : "?";
}

static void finish(const char *reason);

static double ms_since(gint64 t0_us, gint64 t_us)
{
    if (!t0_us || !t_us)
        return -1;
    return (double)(t_us - t0_us) / 1000.0;
}

/* ---------------------------------------------------------------- signaling */

/* Sends obj (stolen) as a text frame; returns the id it used. */
static int ws_send(json_t *obj, gboolean with_id)
{
    int id = 0;
    if (with_id) {
        id = ++A.next_id;
        char idbuf[16];
        g_snprintf(idbuf, sizeof idbuf, "%d", id);
        json_object_set_new(obj, "id", json_string(idbuf));
    }
    char *text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (!text)
        return -1;
    if (A.o.verbose)
        g_printerr("-> %.8000s\n", text);
    if (A.ws && soup_websocket_connection_get_state(A.ws) == SOUP_WEBSOCKET_STATE_OPEN)
        soup_websocket_connection_send_text(A.ws, text);
    free(text);
    return id;
}

static void send_candidate(json_t *c)
{
    json_t *m = json_pack("{s:s, s:s, s:O, s:O, s:O}", "type", "media.candidate", "visit_id",
                          A.visit_id, "candidate", json_object_get(c, "candidate"), "sdpMid",
                          json_object_get(c, "sdpMid"), "sdpMLineIndex",
                          json_object_get(c, "sdpMLineIndex"));
    ws_send(m, TRUE);
}

/* ------------------------------------------------------------ media: stats */

static int stream_new(int video)
{
    g_mutex_lock(&A.stats_lock);
    int i = A.n_streams < MAX_STREAMS ? A.n_streams++ : -1;
    if (i >= 0) {
        memset(&A.streams[i], 0, sizeof A.streams[i]);
        A.streams[i].video = video;
    }
    g_mutex_unlock(&A.stats_lock);
    return i;
}

static GstPadProbeReturn on_decoded(GstPad *pad, GstPadProbeInfo *info, gpointer ud)
{
    int i = GPOINTER_TO_INT(ud);
    GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
    struct in_stream *s = &A.streams[i];
    gboolean first = FALSE;
    g_mutex_lock(&A.stats_lock);
    if (!s->first_us) {
        s->first_us = g_get_monotonic_time();
        first = TRUE;
    }
    if (s->video) {
        s->frames++;
        if (!s->width) {
            GstCaps *caps = gst_pad_get_current_caps(pad);
            if (caps) {
                GstStructure *st = gst_caps_get_structure(caps, 0);
                gst_structure_get_int(st, "width", &s->width);
                gst_structure_get_int(st, "height", &s->height);
                gst_caps_unref(caps);
            }
        }
    } else if (GST_BUFFER_DURATION_IS_VALID(buf)) {
        s->audio_ns += GST_BUFFER_DURATION(buf);
    }
    g_mutex_unlock(&A.stats_lock);
    if (first)
        g_print("event=first_%s stream=%d ms_since_connected=%.0f ms_since_offer=%.0f\n",
                s->video ? "video" : "audio", i, ms_since(A.t_connected_us, s->first_us),
                ms_since(A.t_offer_us, s->first_us));
    return GST_PAD_PROBE_OK;
}

/* Loss hook: drop every Nth packet of one incoming video stream on its
 * first arrival, while it is still SRTP (the RTP header is in the clear),
 * so that neither the SRTP replay window nor the jitterbuffer has seen it:
 * exactly like loss on the wire. No drops in the run's last 1.5 s, where a
 * repair could not arrive before we stop counting. A dropped sequence
 * number that comes back, plainly (here) or inside RTX (on_srtp_out),
 * counts as repaired. */
static GstPadProbeReturn on_srtp_in(GstPad *pad, GstPadProbeInfo *info, gpointer ud)
{
    GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
    static guint64 count;
    guint8 hdr[12];
    if (!buf || gst_buffer_extract(buf, 0, hdr, sizeof hdr) != sizeof hdr || (hdr[0] >> 6) != 2)
        return GST_PAD_PROBE_OK;
    guint8 pt = hdr[1] & 0x7f;
    guint16 seq = (guint16)((hdr[2] << 8) | hdr[3]);
    guint32 ssrc =
        ((guint32)hdr[8] << 24) | ((guint32)hdr[9] << 16) | ((guint32)hdr[10] << 8) | hdr[11];
    int vpt = g_atomic_int_get(&A.video_pt);
    if (vpt < 0 || pt != vpt) {
        if (vpt >= 0 && pt != g_atomic_int_get(&A.audio_pt) && pt >= 96)
            g_atomic_int_inc(&A.other_pt_packets); /* RTX and the like */
        return GST_PAD_PROBE_OK;
    }
    gint64 now = g_get_monotonic_time();
    gpointer key = GUINT_TO_POINTER((guint)seq);
    GstPadProbeReturn ret = GST_PAD_PROBE_OK;
    g_mutex_lock(&A.stats_lock);
    if (!A.drop_ssrc)
        A.drop_ssrc = ssrc;
    gpointer v;
    if (ssrc != A.drop_ssrc) {
        /* another stream: never dropped from */
    } else if (g_hash_table_lookup_extended(A.dropped_seqs, key, NULL, &v)) {
        if (!(GPOINTER_TO_UINT(v) & 1)) {
            g_hash_table_insert(A.dropped_seqs, key, GUINT_TO_POINTER(GPOINTER_TO_UINT(v) | 1));
            A.repaired++;
        }
    } else if (++count % (guint64)A.o.drop_every == 0 && A.drop_until_us && now < A.drop_until_us) {
        guint ms = (guint)MAX(0, (now - A.t_connected_us) / 1000);
        g_hash_table_insert(A.dropped_seqs, key, GUINT_TO_POINTER(ms << 1));
        A.dropped++;
        ret = GST_PAD_PROBE_DROP;
    }
    g_mutex_unlock(&A.stats_lock);
    return ret;
}

/* After decryption: an RTX packet (RFC 4588) carries the original
 * sequence number in the first two bytes of its payload. */
static GstPadProbeReturn on_srtp_out(GstPad *pad, GstPadProbeInfo *info, gpointer ud)
{
    GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
    guint8 h[64];
    gsize n = buf ? gst_buffer_extract(buf, 0, h, sizeof h) : 0;
    if (n < 14 || (h[0] >> 6) != 2)
        return GST_PAD_PROBE_OK;
    guint8 pt = h[1] & 0x7f;
    int vpt = g_atomic_int_get(&A.video_pt);
    if (vpt < 0 || pt < 96 || pt == vpt || pt == g_atomic_int_get(&A.audio_pt))
        return GST_PAD_PROBE_OK;
    gsize off = 12 + 4u * (h[0] & 0x0f);
    if ((h[0] & 0x10) && off + 4 <= n)
        off += 4 + 4u * ((h[off + 2] << 8) | h[off + 3]);
    gsize payload = gst_buffer_get_size(buf);
    if ((h[0] & 0x20) && payload > 0) { /* padding: its last byte says how much */
        guint8 pad_len = 0;
        gst_buffer_extract(buf, payload - 1, &pad_len, 1);
        payload = payload >= pad_len ? payload - pad_len : 0;
    }
    if (off + 2 > n || off + 2 > payload) /* padding-only probes carry no OSN */
        return GST_PAD_PROBE_OK;
    gpointer key = GUINT_TO_POINTER((guint)((h[off] << 8) | h[off + 1]));
    gpointer v;
    g_mutex_lock(&A.stats_lock);
    if (g_hash_table_lookup_extended(A.dropped_seqs, key, NULL, &v) && !(GPOINTER_TO_UINT(v) & 1)) {
        g_hash_table_insert(A.dropped_seqs, key, GUINT_TO_POINTER(GPOINTER_TO_UINT(v) | 1));
        A.repaired++;
        A.repaired_rtx++;
    }
    g_mutex_unlock(&A.stats_lock);
    return GST_PAD_PROBE_OK;
}

/* -------------------------------------------------------- media: incoming */

static void set_if_exists(GstElement *e, const char *prop, gboolean v)
{
    if (g_object_class_find_property(G_OBJECT_GET_CLASS(e), prop))
        g_object_set(e, prop, v, NULL);
}

static void on_pad_added(GstElement *webrtc, GstPad *pad, gpointer ud)
{
    if (GST_PAD_DIRECTION(pad) != GST_PAD_SRC)
        return;
    GstCaps *caps = gst_pad_get_current_caps(pad);
    if (!caps)
        caps = gst_pad_query_caps(pad, NULL);
    GstStructure *st = gst_caps_get_structure(caps, 0);
    const char *media = gst_structure_get_string(st, "media");
    const char *enc = gst_structure_get_string(st, "encoding-name");
    int video = media && strcmp(media, "video") == 0;
    g_print("event=incoming_pad pad=%s media=%s encoding=%s\n", GST_PAD_NAME(pad),
            media ? media : "?", enc ? enc : "?");
    GstElement *bin = NULL;
    GError *err = NULL;
    if (video && enc && g_ascii_strcasecmp(enc, "VP8") == 0)
        bin = gst_parse_bin_from_description(
            "queue name=q ! rtpvp8depay name=depay ! vp8dec name=dec ! videoconvert ! "
            "fakesink name=sink sync=false async=false",
            TRUE, &err);
    else if (!video && enc && g_ascii_strcasecmp(enc, "OPUS") == 0)
        bin = gst_parse_bin_from_description(
            "queue name=q ! rtpopusdepay ! opusdec name=dec ! fakesink name=sink sync=false "
            "async=false",
            TRUE, &err);
    else
        bin = gst_parse_bin_from_description("fakesink sync=false async=false", TRUE, &err);
    gst_caps_unref(caps);
    if (!bin) {
        g_printerr("pipeline error: %s\n", err ? err->message : "?");
        g_clear_error(&err);
        return;
    }
    if (video) {
        GstElement *depay = gst_bin_get_by_name(GST_BIN(bin), "depay");
        if (depay) {
            /* Ask for a keyframe (PLI) when it starts mid-GOP or sees loss. */
            set_if_exists(depay, "request-keyframe", TRUE);
            set_if_exists(depay, "wait-for-keyframe", TRUE);
            gst_object_unref(depay);
        }
    }
    GstElement *dec = gst_bin_get_by_name(GST_BIN(bin), "dec");
    if (dec) {
        if (video && g_object_class_find_property(G_OBJECT_GET_CLASS(dec), "max-errors"))
            g_object_set(dec, "max-errors", -1, NULL);
        int idx = stream_new(video);
        if (idx >= 0) {
            GstPad *src = gst_element_get_static_pad(dec, "src");
            gst_pad_add_probe(src, GST_PAD_PROBE_TYPE_BUFFER, on_decoded, GINT_TO_POINTER(idx),
                              NULL);
            gst_object_unref(src);
        }
        gst_object_unref(dec);
    }
    gst_bin_add(GST_BIN(A.pipe), bin);
    gst_element_sync_state_with_parent(bin);
    GstPad *sink = gst_element_get_static_pad(bin, "sink");
    if (gst_pad_link(pad, sink) != GST_PAD_LINK_OK)
        g_printerr("could not link incoming %s pad\n", media ? media : "?");
    gst_object_unref(sink);
}

/* ---------------------------------------------------------- media: offer */

struct cand_msg {
    guint mline;
    char *cand;
};

static gboolean local_candidate_main(gpointer ud)
{
    struct cand_msg *m = ud;
    const char *mid = (int)m->mline < A.n_mids && A.mids[m->mline] ? A.mids[m->mline] : "0";
    json_t *c = json_pack("{s:s, s:s, s:i}", "candidate", m->cand, "sdpMid", mid, "sdpMLineIndex",
                          (int)m->mline);
    if (A.offer_sent)
        send_candidate(c), json_decref(c);
    else
        A.pending_local_cands = g_slist_append(A.pending_local_cands, c);
    g_free(m->cand);
    g_free(m);
    return G_SOURCE_REMOVE;
}

static void on_ice_candidate(GstElement *webrtc, guint mline, gchar *cand, gpointer ud)
{
    struct cand_msg *m = g_new0(struct cand_msg, 1);
    m->mline = mline;
    m->cand = g_strdup(cand ? cand : "");
    g_main_context_invoke(NULL, local_candidate_main, m);
}

static gboolean gathering_done_main(gpointer ud)
{
    /* End of candidates, so the server need not wait for more. */
    struct cand_msg *m = g_new0(struct cand_msg, 1);
    m->cand = g_strdup("");
    return local_candidate_main(m);
}

static void on_gathering_state(GObject *obj, GParamSpec *p, gpointer ud)
{
    GstWebRTCICEGatheringState st;
    g_object_get(obj, "ice-gathering-state", &st, NULL);
    if (st == GST_WEBRTC_ICE_GATHERING_STATE_COMPLETE)
        g_main_context_invoke(NULL, gathering_done_main, NULL);
}

static gboolean connected_main(gpointer ud)
{
    int st = GPOINTER_TO_INT(ud);
    g_print("event=pc_state state=%d ms_since_offer=%.0f\n", st,
            ms_since(A.t_offer_us, g_get_monotonic_time()));
    if (st == GST_WEBRTC_PEER_CONNECTION_STATE_CONNECTED && !A.t_connected_us)
        A.t_connected_us = g_get_monotonic_time();
    if (st == GST_WEBRTC_PEER_CONNECTION_STATE_FAILED)
        finish("peer connection failed (ICE or DTLS)");
    return G_SOURCE_REMOVE;
}

static void on_pc_state(GObject *obj, GParamSpec *p, gpointer ud)
{
    GstWebRTCPeerConnectionState st;
    g_object_get(obj, "connection-state", &st, NULL);
    g_main_context_invoke(NULL, connected_main, GINT_TO_POINTER((int)st));
}

static gboolean offer_ready_main(gpointer ud)
{
    char *sdp = ud;
    A.t_offer_us = g_get_monotonic_time();
    ws_send(json_pack("{s:s, s:s, s:s}", "type", "media.offer", "visit_id", A.visit_id, "sdp", sdp),
            TRUE);
    g_free(sdp);
    A.offer_sent = TRUE;
    for (GSList *l = A.pending_local_cands; l; l = l->next) {
        send_candidate(l->data);
        json_decref(l->data);
    }
    g_slist_free(A.pending_local_cands);
    A.pending_local_cands = NULL;
    g_print("event=offer_sent visit=%s\n", A.visit_id);
    return G_SOURCE_REMOVE;
}

static gboolean offer_failed_main(gpointer ud)
{
    finish("webrtcbin could not create an offer");
    return G_SOURCE_REMOVE;
}

static void on_local_set(GstPromise *promise, gpointer ud)
{
    char *text = ud;
    const GstStructure *reply = gst_promise_get_reply(promise);
    GError *err = NULL;
    if (reply && gst_structure_get(reply, "error", G_TYPE_ERROR, &err, NULL) && err) {
        g_printerr("set-local-description: %s\n", err->message);
        g_clear_error(&err);
        g_free(text);
        gst_promise_unref(promise);
        g_main_context_invoke(NULL, offer_failed_main, NULL);
        return;
    }
    gst_promise_unref(promise);
    g_main_context_invoke(NULL, offer_ready_main, text);
}

static void on_offer_created(GstPromise *promise, gpointer ud)
{
    GstWebRTCSessionDescription *offer = NULL;
    const GstStructure *reply = gst_promise_get_reply(promise);
    if (reply)
        gst_structure_get(reply, "offer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &offer, NULL);
    gst_promise_unref(promise);
    if (!offer) {
        g_main_context_invoke(NULL, offer_failed_main, NULL);
        return;
    }
    /* Remember each m-line's mid before candidates (which name it) appear.
     * Only the main loop reads mids, and only after this invoke is queued. */
    int n = (int)gst_sdp_message_medias_len(offer->sdp);
    char *mids[MAX_STREAMS] = {0};
    for (int i = 0; i < n && i < MAX_STREAMS; i++) {
        const char *mid =
            gst_sdp_media_get_attribute_val(gst_sdp_message_get_media(offer->sdp, i), "mid");
        mids[i] = g_strdup(mid ? mid : "");
    }
    char *text = gst_sdp_message_as_text(offer->sdp);
    for (int i = 0; i < A.n_mids; i++)
        g_free(A.mids[i]);
    memcpy(A.mids, mids, sizeof mids);
    A.n_mids = n < MAX_STREAMS ? n : MAX_STREAMS;
    /* Send the offer only once webrtcbin has applied it: an answer that
     * came back sooner would find webrtcbin still "stable" and be refused. */
    GstPromise *p = gst_promise_new_with_change_func(on_local_set, text, NULL);
    g_signal_emit_by_name(A.webrtc, "set-local-description", offer, p);
    gst_webrtc_session_description_free(offer);
}

static GstElement *add_sender(const char *desc, GError **err)
{
    GstElement *bin = gst_parse_bin_from_description(desc, TRUE, err);
    if (!bin)
        return NULL;
    gst_bin_add(GST_BIN(A.pipe), bin);
    GstPad *src = gst_element_get_static_pad(bin, "src");
    GstPad *sink = gst_element_request_pad_simple(A.webrtc, "sink_%u");
    GstPadLinkReturn lr = gst_pad_link(src, sink);
    gst_object_unref(src);
    gst_object_unref(sink);
    if (lr != GST_PAD_LINK_OK) {
        g_set_error(err, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION, "link to webrtcbin: %d", lr);
        return NULL;
    }
    return bin;
}

static void add_recv_transceiver(const char *caps_str)
{
    GstCaps *caps = gst_caps_from_string(caps_str);
    GstWebRTCRTPTransceiver *t = NULL;
    g_signal_emit_by_name(A.webrtc, "add-transceiver",
                          GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_RECVONLY, caps, &t);
    gst_caps_unref(caps);
    if (t) {
        g_object_set(t, "do-nack", strstr(caps_str, "media=video") != NULL, NULL);
        gst_object_unref(t);
    }
}

/* webrtcbin makes its transport (and in it the srtpdec) when the offer
 * is set, so catch the element as it is added anywhere in the pipeline. */
static void on_deep_element_added(GstBin *bin, GstBin *sub, GstElement *e, gpointer ud)
{
    GstElementFactory *f = gst_element_get_factory(e);
    if (!f || strcmp(GST_OBJECT_NAME(f), "srtpdec") != 0)
        return;
    GstPad *sp = gst_element_get_static_pad(e, "rtp_sink");
    if (!sp)
        return;
    gst_pad_add_probe(sp, GST_PAD_PROBE_TYPE_BUFFER, on_srtp_in, NULL, NULL);
    gst_object_unref(sp);
    GstPad *out = gst_element_get_static_pad(e, "rtp_src");
    if (out) {
        gst_pad_add_probe(out, GST_PAD_PROBE_TYPE_BUFFER, on_srtp_out, NULL, NULL);
        gst_object_unref(out);
    }
    g_print("event=loss_hook element=%s every=%d\n", GST_ELEMENT_NAME(e), A.o.drop_every);
}

/* Browsers send NACK and PLI at once; GStreamer's session sends feedback
 * "early" only under RFC 4585's rules (not before its first regular RTCP,
 * then rate limited) and otherwise waits up to its 5 s regular interval,
 * past any retransmission deadline. A short minimum interval makes its
 * feedback as timely as a browser's, so the tests judge the server. */
static void tune_rtcp(void)
{
    GstIterator *it = gst_bin_iterate_recurse(GST_BIN(A.webrtc));
    GValue v = G_VALUE_INIT;
    while (gst_iterator_next(it, &v) == GST_ITERATOR_OK) {
        GstElement *e = g_value_get_object(&v);
        GstElementFactory *f = gst_element_get_factory(e);
        if (f && strcmp(GST_OBJECT_NAME(f), "rtpbin") == 0) {
            GObject *sess = NULL;
            g_signal_emit_by_name(e, "get-internal-session", 0u, &sess);
            if (sess) {
                if (g_object_class_find_property(G_OBJECT_GET_CLASS(sess), "rtcp-min-interval"))
                    g_object_set(sess, "rtcp-min-interval", (guint64)(100 * GST_MSECOND), NULL);
                g_object_unref(sess);
            }
        }
        g_value_reset(&v);
    }
    gst_iterator_free(it);
}

static gboolean run_timer_cb(gpointer ud);
static gboolean end_timer_cb(gpointer ud);
static gboolean tail_timer_cb(gpointer ud);

static int start_media(void)
{
    GError *err = NULL;
    A.pipe = gst_pipeline_new("client");
    A.webrtc = gst_element_factory_make("webrtcbin", "webrtc");
    if (!A.webrtc) {
        finish("no webrtcbin element");
        return -1;
    }
    /* A browser's jitter buffer on loopback holds a few ms; webrtcbin's
     * default 200 ms would eat a fifth of the 1 s keyframe budget. */
    g_object_set(A.webrtc, "bundle-policy", GST_WEBRTC_BUNDLE_POLICY_MAX_BUNDLE, "latency",
                 (guint)A.o.latency_ms, NULL);
    gst_bin_add(GST_BIN(A.pipe), A.webrtc);
    if (A.o.local_ip && *A.o.local_ip) {
        /* Gather on loopback only: the tests may only talk to 127.0.0.1/::1. */
        GstWebRTCICE *ice = NULL;
        g_object_get(A.webrtc, "ice-agent", &ice, NULL);
        if (ice) {
            gboolean ok = FALSE;
            char **ips = g_strsplit(A.o.local_ip, ",", -1);
            for (char **ip = ips; *ip; ip++)
                g_signal_emit_by_name(ice, "add-local-ip-address", *ip, &ok);
            g_strfreev(ips);
            gst_object_unref(ice);
        }
    }
    if (A.o.drop_every > 0)
        g_signal_connect(A.pipe, "deep-element-added", G_CALLBACK(on_deep_element_added), NULL);
    g_signal_connect(A.webrtc, "on-ice-candidate", G_CALLBACK(on_ice_candidate), NULL);
    g_signal_connect(A.webrtc, "pad-added", G_CALLBACK(on_pad_added), NULL);
    g_signal_connect(A.webrtc, "notify::ice-gathering-state", G_CALLBACK(on_gathering_state), NULL);
    g_signal_connect(A.webrtc, "notify::connection-state", G_CALLBACK(on_pc_state), NULL);

    if (A.o.recv_only) {
        for (int i = 0; i < A.o.expect_audio; i++)
            add_recv_transceiver(AUDIO_CAPS);
        for (int i = 0; i < A.o.expect_video; i++)
            add_recv_transceiver(VIDEO_CAPS);
    } else {
        char *adesc = g_strdup_printf(
            "audiotestsrc is-live=true wave=sine freq=%d ! audioconvert ! audioresample ! "
            "audio/x-raw,rate=48000,channels=2 ! queue ! opusenc ! rtpopuspay pt=111 ssrc=%u",
            A.o.tone_hz, A.audio_ssrc);
        char *vdesc = g_strdup_printf(
            "videotestsrc is-live=true pattern=%s ! video/x-raw,width=%d,height=%d,"
            "framerate=%d/1 ! videoconvert ! queue ! vp8enc deadline=1 cpu-used=8 "
            "error-resilient=default keyframe-max-dist=%d target-bitrate=%d ! rtpvp8pay pt=96 "
            "picture-id-mode=15-bit ssrc=%u",
            A.o.pattern, A.o.width, A.o.height, A.o.fps, A.o.kf_dist, A.o.bitrate, A.video_ssrc);
        gboolean ok = add_sender(adesc, &err) && add_sender(vdesc, &err);
        g_free(adesc);
        g_free(vdesc);
        if (!ok) {
            g_printerr("sender pipeline: %s\n", err ? err->message : "?");
            g_clear_error(&err);
            finish("could not build the sending pipeline");
            return -1;
        }
        GArray *ts = NULL;
        g_signal_emit_by_name(A.webrtc, "get-transceivers", &ts);
        for (guint i = 0; ts && i < ts->len; i++) {
            GstWebRTCRTPTransceiver *t = g_array_index(ts, GstWebRTCRTPTransceiver *, i);
            /* Codec preferences let create-offer describe the m-lines
             * before the encoders have negotiated caps on our pads. */
            GstCaps *prefs = gst_caps_from_string(i == 0 ? AUDIO_CAPS : VIDEO_CAPS);
            /* and an a=ssrc line per m-line, as browsers send. */
            gst_caps_set_simple(prefs, "ssrc", G_TYPE_UINT, i == 0 ? A.audio_ssrc : A.video_ssrc,
                                NULL);
            /* NACK/RTX for video only, as browsers do (Chrome refuses an
             * audio m-line with an RTX ssrc-group). */
            g_object_set(t, "direction", GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDRECV, "do-nack",
                         i != 0, "codec-preferences", prefs, NULL);
            gst_caps_unref(prefs);
        }
        if (ts)
            g_array_unref(ts);
        /* After the sendrecv pair, so its m-lines stay first. */
        for (int i = 0; i < A.o.recv_pairs; i++) {
            add_recv_transceiver(AUDIO_CAPS);
            add_recv_transceiver(VIDEO_CAPS);
        }
    }
    if (gst_element_set_state(A.pipe, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
        finish("pipeline would not start");
        return -1;
    }
    GstPromise *p = gst_promise_new_with_change_func(on_offer_created, NULL, NULL);
    g_signal_emit_by_name(A.webrtc, "create-offer", NULL, p);
    A.run_timer = g_timeout_add((guint)A.o.duration * 1000, run_timer_cb, NULL);
    g_mutex_lock(&A.stats_lock);
    A.drop_until_us = g_get_monotonic_time() + (gint64)A.o.duration * G_USEC_PER_SEC - 1500000;
    g_mutex_unlock(&A.stats_lock);
    if (A.o.duration > 3)
        A.tail_timer = g_timeout_add((guint)(A.o.duration - 3) * 1000, tail_timer_cb, NULL);
    if (A.o.end_after > 0)
        A.end_timer = g_timeout_add((guint)(A.o.end_after * 1000), end_timer_cb, NULL);
    return 0;
}

/* --------------------------------------------------------- media: answer */

static void apply_remote_candidate(json_t *c)
{
    const char *cand = json_string_value(json_object_get(c, "candidate"));
    json_int_t ml = json_integer_value(json_object_get(c, "sdpMLineIndex"));
    if (!cand || !*cand)
        return; /* end of candidates: webrtcbin needs nothing */
    g_signal_emit_by_name(A.webrtc, "add-ice-candidate", (guint)ml, cand);
}

static void on_answer(const char *sdp_text)
{
    GstSDPMessage *sdp = NULL;
    if (gst_sdp_message_new_from_text(sdp_text, &sdp) != GST_SDP_OK || !sdp) {
        finish("server answer is not parsable SDP");
        return;
    }
    /* The first format of each kind is what the server sends us. */
    for (guint i = 0; i < gst_sdp_message_medias_len(sdp); i++) {
        const GstSDPMedia *md = gst_sdp_message_get_media(sdp, i);
        const char *fmt = gst_sdp_media_formats_len(md) ? gst_sdp_media_get_format(md, 0) : NULL;
        const char *kind = gst_sdp_media_get_media(md);
        if (!fmt || !kind)
            continue;
        if (strcmp(kind, "video") == 0 && g_atomic_int_get(&A.video_pt) < 0)
            g_atomic_int_set(&A.video_pt, atoi(fmt));
        else if (strcmp(kind, "audio") == 0 && g_atomic_int_get(&A.audio_pt) < 0)
            g_atomic_int_set(&A.audio_pt, atoi(fmt));
    }
    GstWebRTCSessionDescription *ans =
        gst_webrtc_session_description_new(GST_WEBRTC_SDP_TYPE_ANSWER, sdp);
    GstPromise *p = gst_promise_new();
    g_signal_emit_by_name(A.webrtc, "set-remote-description", ans, p);
    gst_promise_wait(p);
    const GstStructure *reply = gst_promise_get_reply(p);
    GError *err = NULL;
    if (reply && gst_structure_get(reply, "error", G_TYPE_ERROR, &err, NULL) && err) {
        g_printerr("set-remote-description: %s\n", err->message);
        g_clear_error(&err);
        gst_promise_unref(p);
        gst_webrtc_session_description_free(ans);
        finish("webrtcbin rejected the server answer");
        return;
    }
    gst_promise_unref(p);
    gst_webrtc_session_description_free(ans);
    A.t_answer_us = g_get_monotonic_time();
    A.answer_set = TRUE;
    tune_rtcp();
    g_print("event=answer_applied ms_since_offer=%.0f\n", ms_since(A.t_offer_us, A.t_answer_us));
    for (GSList *l = A.pending_remote_cands; l; l = l->next) {
        apply_remote_candidate(l->data);
        json_decref(l->data);
    }
    g_slist_free(A.pending_remote_cands);
    A.pending_remote_cands = NULL;
}

/* ---------------------------------------------------------------- protocol */

static void on_visit_state(json_t *m)
{
    const char *state = json_string_value(json_object_get(m, "state"));
    const char *vid = json_string_value(json_object_get(m, "visit_id"));
    if (!state || !vid)
        return;
    if (A.visit_id && strcmp(vid, A.visit_id) != 0)
        return;
    g_print("event=visit_state visit=%s state=%s\n", vid, state);
    if (strcmp(state, "active") == 0 && A.phase == PH_WAIT_VISIT) {
        if (!A.visit_id)
            A.visit_id = g_strdup(vid);
        A.phase = PH_MEDIA;
        A.t_active_us = g_get_monotonic_time();
        if (start_media() == 0 && A.o.invite) {
            g_print("event=invite user=%s\n", A.o.invite);
            ws_send(json_pack("{s:s, s:s, s:s, s:s}", "type", "visit.invite", "visit_id",
                              A.visit_id, "user_id", A.o.invite, "role", "consulting"),
                    TRUE);
        }
    } else if (strcmp(state, "ended") == 0 || strcmp(state, "cancelled") == 0) {
        A.visit_ended = TRUE;
        if (A.phase == PH_MEDIA)
            finish(NULL);
        else
            finish("visit ended before media started");
    }
}

static void on_result(json_t *m)
{
    json_t *data = json_object_get(m, "data");
    if (A.phase == PH_HELLO) {
        const char *sess = json_string_value(json_object_get(data, "session"));
        A.session_id = g_strdup(sess ? sess : "");
        g_print("event=hello_ok sub=%s role=%s\n",
                or_q(json_string_value(json_object_get(data, "sub"))), A.o.role);
        if (A.o.watch) {
            A.visit_id = g_strdup(A.o.watch);
            ws_send(json_pack("{s:s, s:s}", "type", "visit.watch", "visit_id", A.visit_id), TRUE);
            A.phase = PH_MEDIA;
            A.t_active_us = g_get_monotonic_time();
            start_media();
        } else if (strcmp(A.o.role, "patient") == 0) {
            ws_send(json_pack("{s:s, s:s, s:s, s:b}", "type", "checkin", "dept", A.o.dept, "kind",
                              A.o.kind, "urgent", A.o.urgent),
                    TRUE);
            A.phase = PH_WAIT_VISIT;
        } else if (strcmp(A.o.role, "doctor") == 0) {
            ws_send(json_pack("{s:s, s:s}", "type", "doctor.status", "status", "available"), TRUE);
            A.phase = PH_WAIT_VISIT;
        } else {
            finish("role needs --watch VISIT_ID");
        }
        return;
    }
    const char *vid = json_string_value(json_object_get(data, "visit_id"));
    /* The invite accepted: the answer is the visit as it is, active. */
    if (vid && A.o.accept_invite && !A.visit_id && json_object_get(data, "visit")) {
        A.visit_id = g_strdup(vid);
        g_print("event=joined visit=%s role=%s\n", vid,
                or_q(json_string_value(json_object_get(data, "role"))));
        on_visit_state(json_object_get(data, "visit"));
        return;
    }
    if (vid && !A.visit_id && strcmp(A.o.role, "patient") == 0) {
        A.visit_id = g_strdup(vid);
        g_print("event=checked_in visit=%s position=%lld\n", vid,
                (long long)json_integer_value(json_object_get(data, "position")));
    }
}

static void on_message(SoupWebsocketConnection *ws, gint type, GBytes *msg, gpointer ud)
{
    if (type != SOUP_WEBSOCKET_DATA_TEXT)
        return;
    gsize len = 0;
    const char *data = g_bytes_get_data(msg, &len);
    if (A.o.verbose)
        g_printerr("<- %.*s\n", (int)MIN(len, 8000), data);
    json_error_t jerr;
    json_t *m = json_loadb(data, len, 0, &jerr);
    if (!m || !json_is_object(m)) {
        json_decref(m);
        finish("server sent a frame that is not a JSON object");
        return;
    }
    const char *t = json_string_value(json_object_get(m, "type"));
    if (!t) {
        /* ignore */
    } else if (strcmp(t, "result") == 0) {
        on_result(m);
    } else if (strcmp(t, "error") == 0) {
        char *why = g_strdup_printf("server error re=%s code=%s message=%s",
                                    or_q(json_string_value(json_object_get(m, "re"))),
                                    or_q(json_string_value(json_object_get(m, "code"))),
                                    or_q(json_string_value(json_object_get(m, "message"))));
        finish(why);
        g_free(why);
    } else if (strcmp(t, "visit.invited") == 0 && A.o.accept_invite && A.phase == PH_WAIT_VISIT &&
               !A.visit_id) {
        const char *inv = json_string_value(json_object_get(m, "invite_id"));
        g_print("event=invited invite=%s\n", or_q(inv));
        if (inv)
            ws_send(json_pack("{s:s, s:s, s:b}", "type", "visit.invite_answer", "invite_id", inv,
                              "accept", 1),
                    TRUE);
    } else if (strcmp(t, "visit.offer") == 0 && A.phase == PH_WAIT_VISIT && !A.visit_id &&
               !A.o.accept_invite) {
        const char *vid = json_string_value(json_object_get(m, "visit_id"));
        if (vid) {
            A.visit_id = g_strdup(vid);
            g_print("event=visit_offer visit=%s\n", vid);
            ws_send(json_pack("{s:s, s:s}", "type", "visit.accept", "visit_id", vid), TRUE);
        }
    } else if (strcmp(t, "visit.state") == 0) {
        on_visit_state(m);
    } else if (strcmp(t, "media.answer") == 0 && A.phase == PH_MEDIA) {
        const char *sdp = json_string_value(json_object_get(m, "sdp"));
        if (sdp)
            on_answer(sdp);
    } else if (strcmp(t, "media.candidate") == 0 && A.phase == PH_MEDIA) {
        if (A.answer_set)
            apply_remote_candidate(m);
        else
            A.pending_remote_cands = g_slist_append(A.pending_remote_cands, json_incref(m));
    } else if (strcmp(t, "media.state") == 0) {
        g_print("event=media_state state=%s\n",
                or_q(json_string_value(json_object_get(m, "state"))));
    } else if (strcmp(t, "queue.position") == 0) {
        g_print("event=queue_position position=%lld\n",
                (long long)json_integer_value(json_object_get(m, "position")));
    }
    json_decref(m);
}

static void on_closed(SoupWebsocketConnection *ws, gpointer ud)
{
    if (A.phase != PH_DONE) {
        char *why =
            g_strdup_printf("websocket closed by server (code %u) in phase %s",
                            soup_websocket_connection_get_close_code(ws), phase_name[A.phase]);
        finish(A.visit_ended ? NULL : why);
        g_free(why);
    }
}

static gboolean accept_any_cert(SoupMessage *msg, GTlsCertificate *cert,
                                GTlsCertificateFlags errors, gpointer ud)
{
    return TRUE; /* tests only: the server makes a self-signed certificate */
}

static void on_ws_connected(GObject *src, GAsyncResult *res, gpointer ud)
{
    GError *err = NULL;
    A.ws = soup_session_websocket_connect_finish(SOUP_SESSION(src), res, &err);
    if (!A.ws) {
        char *why = g_strdup_printf("websocket connect failed: %s", err ? err->message : "?");
        g_clear_error(&err);
        finish(why);
        g_free(why);
        return;
    }
    soup_websocket_connection_set_max_incoming_payload_size(A.ws, 1 << 20);
    g_signal_connect(A.ws, "message", G_CALLBACK(on_message), NULL);
    g_signal_connect(A.ws, "closed", G_CALLBACK(on_closed), NULL);
    A.phase = PH_HELLO;
    ws_send(json_pack("{s:s, s:s, s:s}", "type", "hello", "token", A.o.token, "ua", A.o.ua), TRUE);
}

/* ------------------------------------------------------------------ ending */

/* Returns NULL if the run passed, else a static reason. */
static const char *evaluate(void)
{
    static char why[256];
    int good_video = 0, good_audio = 0, seen_video = 0;
    guint64 min_audio_ns = (guint64)(A.o.min_audio_s * 1e9);
    g_mutex_lock(&A.stats_lock);
    for (int i = 0; i < A.n_streams; i++) {
        struct in_stream *s = &A.streams[i];
        if (s->video) {
            seen_video += s->frames > 0;
            if (s->frames >= (guint64)A.o.min_frames &&
                (!A.o.expect_w || s->width == A.o.expect_w) &&
                (!A.o.expect_h || s->height == A.o.expect_h))
                good_video++;
            else if (s->frames > 0)
                g_snprintf(
                    why, sizeof why,
                    "video stream %d: %" G_GUINT64_FORMAT " frames at %dx%d, want >= %d at %dx%d",
                    i, s->frames, s->width, s->height, A.o.min_frames, A.o.expect_w, A.o.expect_h);
        } else if (s->audio_ns >= min_audio_ns && s->audio_ns > 0) {
            good_audio++;
        }
    }
    g_mutex_unlock(&A.stats_lock);
    if (good_video < A.o.expect_video) {
        if (!seen_video)
            g_snprintf(why, sizeof why, "no video decoded (%d of %d streams good)", good_video,
                       A.o.expect_video);
        else if (!why[0])
            g_snprintf(why, sizeof why, "only %d of %d video streams good", good_video,
                       A.o.expect_video);
        return why;
    }
    if (A.o.min_audio_s > 0 && good_audio < A.o.expect_audio) {
        g_snprintf(why, sizeof why, "only %d of %d audio streams reached %.1f s", good_audio,
                   A.o.expect_audio, A.o.min_audio_s);
        return why;
    }
    return NULL;
}

static void print_summary(void)
{
    guint64 frames = 0, audio_ns = 0;
    int w = 0, h = 0;
    gint64 first_video = 0;
    g_mutex_lock(&A.stats_lock);
    for (int i = 0; i < A.n_streams; i++) {
        struct in_stream *s = &A.streams[i];
        g_print("stream index=%d kind=%s frames=%" G_GUINT64_FORMAT " width=%d height=%d "
                "audio_ms=%" G_GUINT64_FORMAT " first_ms_since_connected=%.0f\n",
                i, s->video ? "video" : "audio", s->frames, s->width, s->height,
                s->audio_ns / 1000000, ms_since(A.t_connected_us, s->first_us));
        if (s->video) {
            frames += s->frames;
            if (!w)
                w = s->width, h = s->height;
            if (s->first_us && (!first_video || s->first_us < first_video))
                first_video = s->first_us;
        } else {
            audio_ns = MAX(audio_ns, s->audio_ns);
        }
    }
    guint64 dropped = A.dropped, repaired = A.repaired, repaired_rtx = A.repaired_rtx;
    GString *unrepaired = g_string_new(NULL);
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, A.dropped_seqs);
    while (g_hash_table_iter_next(&it, &k, &v))
        if (!(GPOINTER_TO_UINT(v) & 1))
            g_string_append_printf(unrepaired, "%s%u@%ums", unrepaired->len ? "," : "",
                                   GPOINTER_TO_UINT(k), GPOINTER_TO_UINT(v) >> 1);
    g_mutex_unlock(&A.stats_lock);
    if (unrepaired->len)
        g_print("loss unrepaired=%s\n", unrepaired->str); /* seq@ms after connect */
    g_string_free(unrepaired, TRUE);
    g_print("result ok=%d role=%s visit=%s video_frames=%" G_GUINT64_FORMAT
            " width=%d height=%d audio_ms=%" G_GUINT64_FORMAT " join_ms=%.0f "
            "connect_ms=%.0f first_frame_after_connect_ms=%.0f dropped=%" G_GUINT64_FORMAT
            " repaired=%" G_GUINT64_FORMAT " repaired_rtx=%" G_GUINT64_FORMAT
            " other_pt_packets=%d tail_frames=%" G_GINT64_FORMAT "\n",
            A.exit_code == 0, A.o.role, A.visit_id ? A.visit_id : "-", frames, w, h,
            audio_ns / 1000000, ms_since(A.t_active_us, first_video),
            ms_since(A.t_offer_us, A.t_connected_us), ms_since(A.t_connected_us, first_video),
            dropped, repaired, repaired_rtx, g_atomic_int_get(&A.other_pt_packets),
            A.tail_marked ? (gint64)(frames - A.frames_at_tail) : (gint64)-1);
    if (A.fail_reason)
        g_print("fail reason=\"%s\"\n", A.fail_reason);
}

static gboolean quit_cb(gpointer ud)
{
    g_main_loop_quit(A.loop);
    return G_SOURCE_REMOVE;
}

/* Ends the run: reason NULL means "time is up or visit over, judge the
 * media"; a reason is a failure. Runs once. */
static void finish(const char *reason)
{
    if (A.phase == PH_DONE)
        return;
    enum phase was = A.phase;
    A.phase = PH_DONE;
    if (!reason && was != PH_MEDIA)
        reason = "ended before media started";
    if (!reason)
        reason = evaluate();
    A.exit_code = reason ? 1 : 0;
    A.fail_reason = reason ? g_strdup(reason) : NULL;
    print_summary();
    if (A.ws && soup_websocket_connection_get_state(A.ws) == SOUP_WEBSOCKET_STATE_OPEN)
        soup_websocket_connection_close(A.ws, SOUP_WEBSOCKET_CLOSE_NORMAL, "done");
    /* Give the close frame a moment to leave, then stop. */
    g_timeout_add(200, quit_cb, NULL);
}

static gboolean run_timer_cb(gpointer ud)
{
    A.run_timer = 0;
    finish(NULL);
    return G_SOURCE_REMOVE;
}

/* Marks the start of the run's last 3 s: frames decoded after it show
 * that video keeps flowing to the end, not only that it once started. */
static gboolean tail_timer_cb(gpointer ud)
{
    A.tail_timer = 0;
    guint64 frames = 0;
    g_mutex_lock(&A.stats_lock);
    for (int i = 0; i < A.n_streams; i++)
        if (A.streams[i].video)
            frames += A.streams[i].frames;
    g_mutex_unlock(&A.stats_lock);
    A.frames_at_tail = frames;
    A.tail_marked = TRUE;
    return G_SOURCE_REMOVE;
}

/* Whether every expected audio stream has decoded margin_s more than
 * --min-audio-s: the other side's media started within a moment of ours, so
 * by then it has its minimum too, however late a loaded machine connected. */
static gboolean audio_past_minimum(double margin_s)
{
    guint64 want_ns = (guint64)((A.o.min_audio_s + margin_s) * 1e9);
    int good = 0;
    g_mutex_lock(&A.stats_lock);
    for (int i = 0; i < A.n_streams; i++)
        good += !A.streams[i].video && A.streams[i].audio_ns >= want_ns;
    g_mutex_unlock(&A.stats_lock);
    return good >= A.o.expect_audio;
}

static gboolean end_timer_cb(gpointer ud)
{
    /* Not before the media the run is judged on has flowed: a count, not a
     * wall-clock window (the run's --duration still caps it). */
    if (A.phase == PH_MEDIA && !audio_past_minimum(2.0)) {
        A.end_timer = g_timeout_add(250, end_timer_cb, NULL);
        return G_SOURCE_REMOVE;
    }
    A.end_timer = 0;
    if (A.visit_id && A.phase == PH_MEDIA) {
        g_print("event=visit_end_sent visit=%s\n", A.visit_id);
        ws_send(json_pack("{s:s, s:s, s:s}", "type", "visit.end", "visit_id", A.visit_id, "reason",
                          "completed"),
                TRUE);
    }
    return G_SOURCE_REMOVE;
}

static gboolean global_timeout_cb(gpointer ud)
{
    char *why =
        g_strdup_printf("global timeout (%d s) in phase %s", A.o.timeout, phase_name[A.phase]);
    if (A.phase == PH_MEDIA)
        finish(NULL); /* judge what arrived */
    else
        finish(why);
    g_free(why);
    return G_SOURCE_REMOVE;
}

static gboolean hard_exit_cb(gpointer ud)
{
    /* Last resort if teardown itself hangs. */
    g_printerr("hard exit: teardown did not finish\n");
    _exit(2);
    return G_SOURCE_REMOVE;
}

/* -------------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    struct opts *o = &A.o;
    o->role = "patient";
    o->dept = "cardiology";
    o->kind = "follow_up";
    o->duration = 8;
    o->timeout = 0;
    o->width = 320;
    o->height = 240;
    o->fps = 30;
    o->min_frames = 10;
    o->kf_dist = 128;
    o->bitrate = 400000;
    o->min_audio_s = 5;
    o->local_ip = "127.0.0.1";
    o->ua = "telemed-webrtc-client/1.0";
    o->pattern = "ball";
    o->tone_hz = 440;
    o->latency_ms = 100;
    o->expect_video = -1;
    o->expect_audio = -1;
    o->expect_w = 320;
    o->expect_h = 240;
    GOptionEntry entries[] = {
        {"url", 0, 0, G_OPTION_ARG_STRING, &o->url, "wss://HOST:PORT/ws", "URL"},
        {"token", 0, 0, G_OPTION_ARG_STRING, &o->token, "JWT bearer token", "JWT"},
        {"role", 0, 0, G_OPTION_ARG_STRING, &o->role, "patient|doctor|supervisor", "ROLE"},
        {"dept", 0, 0, G_OPTION_ARG_STRING, &o->dept, "department to check in to", "DEPT"},
        {"kind", 0, 0, G_OPTION_ARG_STRING, &o->kind, "visit kind (follow_up)", "KIND"},
        {"urgent", 0, 0, G_OPTION_ARG_NONE, &o->urgent, "check in as urgent", NULL},
        {"duration", 0, 0, G_OPTION_ARG_INT, &o->duration, "seconds of media after the offer", "S"},
        {"timeout", 0, 0, G_OPTION_ARG_INT, &o->timeout,
         "global limit in seconds (default duration+60)", "S"},
        {"width", 0, 0, G_OPTION_ARG_INT, &o->width, "width of the video we send", "PX"},
        {"height", 0, 0, G_OPTION_ARG_INT, &o->height, "height of the video we send", "PX"},
        {"fps", 0, 0, G_OPTION_ARG_INT, &o->fps, "frame rate we send", "N"},
        {"bitrate", 0, 0, G_OPTION_ARG_INT, &o->bitrate, "VP8 target bitrate (bit/s)", "BPS"},
        {"kf-dist", 0, 0, G_OPTION_ARG_INT, &o->kf_dist,
         "max frames between keyframes we send (large: only on request)", "N"},
        {"expect-width", 0, 0, G_OPTION_ARG_INT, &o->expect_w,
         "width the other side's video must have", "PX"},
        {"expect-height", 0, 0, G_OPTION_ARG_INT, &o->expect_h,
         "height the other side's video must have", "PX"},
        {"min-frames", 0, 0, G_OPTION_ARG_INT, &o->min_frames, "video frames to decode per stream",
         "N"},
        {"min-audio-s", 0, 0, G_OPTION_ARG_DOUBLE, &o->min_audio_s,
         "seconds of audio to receive per stream", "S"},
        {"expect-video-streams", 0, 0, G_OPTION_ARG_INT, &o->expect_video,
         "incoming video streams that must pass (default 1, recv-only 2)", "N"},
        {"expect-audio-streams", 0, 0, G_OPTION_ARG_INT, &o->expect_audio,
         "incoming audio streams that must pass (default 1, recv-only 2)", "N"},
        {"end-after", 0, 0, G_OPTION_ARG_DOUBLE, &o->end_after,
         "doctor: send visit.end after S seconds, once --min-audio-s (+2 s) of audio arrived", "S"},
        {"recv-only", 0, 0, G_OPTION_ARG_NONE, &o->recv_only, "receive only (supervisor)", NULL},
        {"watch", 0, 0, G_OPTION_ARG_STRING, &o->watch, "visit to watch (supervisor)", "VISIT"},
        {"local-ip", 0, 0, G_OPTION_ARG_STRING, &o->local_ip,
         "comma-separated ICE gathering addresses ('' = all)", "IP"},
        {"recv-pairs", 0, 0, G_OPTION_ARG_INT, &o->recv_pairs,
         "receive-only audio+video m-line pairs for the others in a visit of more than two", "N"},
        {"invite", 0, 0, G_OPTION_ARG_STRING, &o->invite,
         "doctor: invite this doctor as consulting once the visit is active", "ID"},
        {"accept-invite", 0, 0, G_OPTION_ARG_NONE, &o->accept_invite,
         "doctor: join the visit one is invited to (not offered patients)", NULL},
        {"drop-every", 0, 0, G_OPTION_ARG_INT, &o->drop_every,
         "loss hook: drop every Nth incoming RTP packet once", "N"},
        {"latency", 0, 0, G_OPTION_ARG_INT, &o->latency_ms, "jitterbuffer latency (ms, 100)", "MS"},
        {"pattern", 0, 0, G_OPTION_ARG_STRING, &o->pattern,
         "videotestsrc pattern we send (ball; snow makes many packets per frame)", "P"},
        {"tone", 0, 0, G_OPTION_ARG_INT, &o->tone_hz,
         "frequency of the sine we send (440; tells senders apart in a mix)", "HZ"},
        {"ua", 0, 0, G_OPTION_ARG_STRING, &o->ua, "user agent sent in hello", "UA"},
        {"verbose", 'v', 0, G_OPTION_ARG_NONE, &o->verbose, "log signaling frames to stderr", NULL},
        {NULL}};
    GError *err = NULL;
    GOptionContext *ctx = g_option_context_new("- telemed reference WebRTC peer (tests)");
    g_option_context_add_main_entries(ctx, entries, NULL);
    g_option_context_add_group(ctx, gst_init_get_option_group());
    if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
        g_printerr("%s\n", err->message);
        return 2;
    }
    g_option_context_free(ctx);
    if (!o->url || !o->token) {
        g_printerr("--url and --token are required\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    gst_init(NULL, NULL);
    if (o->duration <= 0 || o->fps <= 0 || o->width <= 0 || o->height <= 0 || o->latency_ms < 0) {
        g_printerr("bad numbers\n");
        return 2;
    }
    if (o->recv_only && !o->watch) {
        g_printerr("--recv-only needs --watch VISIT_ID\n");
        return 2;
    }
    if (o->expect_video < 0)
        o->expect_video = o->recv_only ? 2 : 1;
    if (o->expect_audio < 0)
        o->expect_audio = o->recv_only ? 2 : 1;
    if (!o->timeout)
        o->timeout = o->duration + 60;
    g_mutex_init(&A.stats_lock);
    A.dropped_seqs = g_hash_table_new(g_direct_hash, g_direct_equal);
    A.video_pt = A.audio_pt = -1;
    A.audio_ssrc = g_random_int_range(1, G_MAXINT32);
    A.video_ssrc = g_random_int_range(1, G_MAXINT32);

    A.loop = g_main_loop_new(NULL, FALSE);
    A.t_start_us = g_get_monotonic_time();
    g_timeout_add_seconds((guint)o->timeout, global_timeout_cb, NULL);
    g_timeout_add_seconds((guint)o->timeout + 15, hard_exit_cb, NULL);

    A.session = soup_session_new_with_options("timeout", 10, "idle-timeout", 0, NULL);
    SoupMessage *msg = soup_message_new("GET", o->url);
    if (!msg) {
        g_printerr("bad --url\n");
        return 2;
    }
    g_signal_connect(msg, "accept-certificate", G_CALLBACK(accept_any_cert), NULL);
    const char *protocols[] = {"telemed.v1", NULL};
    soup_session_websocket_connect_async(A.session, msg, NULL, (char **)protocols,
                                         G_PRIORITY_DEFAULT, NULL, on_ws_connected, NULL);
    g_object_unref(msg);

    g_main_loop_run(A.loop);
    int rc = A.exit_code;
    if (A.pipe) {
        gst_element_set_state(A.pipe, GST_STATE_NULL);
        gst_object_unref(A.pipe);
    }
    if (A.ws)
        g_object_unref(A.ws);
    g_object_unref(A.session);
    g_main_loop_unref(A.loop);
    return rc;
}

/*
 * peer.c - one participant's PeerConnection with the server: applies an offer
 * (new peer, renegotiation, ICE restart, or a new transport when the
 * participant came back with a new DTLS certificate), builds the answer,
 * drives the DTLS handshake over ICE and keys SRTP from it, reports states,
 * and tears everything down.
 *
 * Owns: the peer's ICE agent (ice.c), DTLS endpoint, DTLS timer, SRTP session,
 * stream tables and their stats/rtx caches. Runs on the visit's worker.
 */
#include <stdlib.h>
#include <string.h>

#include "media_internal.h"
#include "telemed/log.h"

static void post_state(tm__peer *p, const char *state)
{
    tm_media_event ev = {
        .type = TM_MEDIA_EV_STATE, .visit_id = p->visit->id, .peer_id = p->id, .state = state};
    tm__media_post(p->w, &ev);
}

void tm__peer_set_state(tm__peer *p, const char *state)
{
    if (p->state && strcmp(p->state, state) == 0)
        return;
    p->state = state;
    post_state(p, state);
}

static void post_error(tm__worker *w, const char *visit_id, const char *peer_id, int err,
                       const char *message)
{
    tm_media_event ev = {.type = TM_MEDIA_EV_ERROR,
                         .visit_id = visit_id,
                         .peer_id = peer_id,
                         .err = err,
                         .message = message};
    tm__media_post(w, &ev);
}

void tm__peer_send(tm__peer *p, const uint8_t *buf, size_t len)
{
    if (!p->agent || p->closing)
        return;
    tm__ice_send(p, buf, len);
}

void tm__peer_media_seen(tm__peer *p, int64_t now)
{
    /* Work only after a silence. A peer heard again after one had its path
     * broken, likely both ways: what it receives and what it sends restart
     * with a keyframe rather than waiting for a decoder to ask. */
    if (p->last_rx_ms && now - p->last_rx_ms > TM__RESUMED_MS && p->srtp) {
        tm__keyframe_recover(p, now);
        if (now - p->last_rx_ms > TM__SILENT_MS)
            tm__peer_set_state(p, "connected");
    }
    p->last_rx_ms = now;
}

/* ---- DTLS ---- */

static void dtls_send(const uint8_t *buf, size_t len, void *user)
{
    tm__peer_send(user, buf, len);
}

static void dtls_arm_timer(tm__peer *p);

static gboolean dtls_timer_fired(gpointer data)
{
    tm__peer *p = data;
    g_source_unref(p->dtls_timer);
    p->dtls_timer = NULL;
    if (tm__dtls_handle_timeout(p->dtls) == TM__DTLS_FAILED) {
        tm_warn("media.dtls_timeout", "visit=%s peer=%s", p->visit->id, p->id);
        tm__peer_close_later(p, "failed");
        return G_SOURCE_REMOVE;
    }
    dtls_arm_timer(p);
    return G_SOURCE_REMOVE;
}

static void dtls_arm_timer(tm__peer *p)
{
    if (p->dtls_timer) {
        g_source_destroy(p->dtls_timer);
        g_source_unref(p->dtls_timer);
        p->dtls_timer = NULL;
    }
    int64_t ms = tm__dtls_timeout_ms(p->dtls);
    if (ms < 0)
        return;
    p->dtls_timer = g_timeout_source_new((guint)(ms < 1 ? 1 : ms));
    g_source_set_callback(p->dtls_timer, dtls_timer_fired, p, NULL);
    g_source_attach(p->dtls_timer, p->w->ctx);
}

/* Long enough for a stray retransmission of either side's last flight to have
 * come and gone once the peer's SRTP shows it has ours. */
#define DTLS_SHED_AFTER_MS 5000

void tm__peer_dtls_tick(tm__peer *p, int64_t now_ms)
{
    if (!p->dtls || !p->srtp_heard_ms || now_ms - p->srtp_heard_ms < DTLS_SHED_AFTER_MS ||
        p->dtls_kept || p->w->media->keep_dtls || tm__dtls_is_shed(p->dtls))
        return;
    int rc = tm__dtls_shed(p->dtls);
    if (rc != 0) {
        p->dtls_kept = true;
        tm_info("media.dtls_kept", "visit=%s peer=%s err=%d", p->visit->id, p->id, rc);
        return;
    }
    atomic_fetch_add_explicit(&p->w->counters.dtls_shed, 1, memory_order_relaxed);
    tm__worker_trim_later(p->w);
    tm_debug("media.dtls_shed", "visit=%s peer=%s", p->visit->id, p->id);
}

static void dtls_reset(tm__peer *p, tm__dtls *fresh)
{
    tm__dtls_free(p->dtls);
    p->dtls = fresh;
    tm__srtp_free(p->srtp);
    p->srtp = NULL;
    p->srtp_heard_ms = 0;
    p->dtls_kept = false;
}

static void dtls_connected(tm__peer *p)
{
    tm__srtp_keys keys;
    if (tm__dtls_srtp_keys(p->dtls, &keys) != 0 || !(p->srtp = tm__srtp_new(&keys))) {
        tm_warn("media.srtp_failed", "visit=%s peer=%s profile=%d", p->visit->id, p->id,
                (int)keys.profile);
        tm__peer_close_later(p, "failed");
        return;
    }
    memset(&keys, 0, sizeof keys);
    tm__worker_trim_later(p->w); /* the handshake's temporaries are free now */
    tm__peer_set_state(p, "connected");
    tm_info("media.connected", "visit=%s peer=%s", p->visit->id, p->id);
    /* A receiver that just (re)connected needs a keyframe to show anything. */
    tm__keyframe_recover(p, tm_mono_ms());
}

void tm__peer_dtls_input(tm__peer *p, const uint8_t *buf, size_t len)
{
    if (!p->dtls) {
        atomic_fetch_add_explicit(&p->w->counters.dropped_unknown_source, 1, memory_order_relaxed);
        return;
    }
    tm__dtls_state before = tm__dtls_get_state(p->dtls);
    /* A ClientHello (epoch 0) after our handshake completed is the client
     * starting over: a new PeerConnection that kept its certificate (GStreamer
     * shares one per process), after an ICE restart. Start a new session. */
    if (before == TM__DTLS_CONNECTED && p->dtls_server && len > 13 && buf[0] == 22 && buf[3] == 0 &&
        buf[4] == 0 && buf[13] == 1) {
        tm__dtls *fresh = tm__dtls_new(p->w->media->ssl_ctx, true, p->remote_fp, dtls_send, p);
        if (fresh) {
            tm_info("media.dtls_restart", "visit=%s peer=%s", p->visit->id, p->id);
            dtls_reset(p, fresh);
            before = TM__DTLS_NEW;
        }
    }
    bool dropped = false;
    tm__dtls_state st = tm__dtls_input(p->dtls, buf, len, &dropped);
    if (dropped)
        atomic_fetch_add_explicit(&p->w->counters.dropped_malformed, 1, memory_order_relaxed);
    if (st == TM__DTLS_CONNECTED && before != TM__DTLS_CONNECTED)
        dtls_connected(p);
    else if (st == TM__DTLS_FAILED && before != TM__DTLS_FAILED) {
        tm_info("media.dtls_failed", "visit=%s peer=%s", p->visit->id, p->id);
        tm__peer_close_later(p, "failed");
    } else if (st == TM__DTLS_CLOSED && before != TM__DTLS_CLOSED)
        tm__peer_close_later(p, "closed");
    dtls_arm_timer(p);
}

void tm__peer_ice_state(tm__peer *p, guint state)
{
    tm_debug("media.ice_state", "visit=%s peer=%s state=%s", p->visit->id, p->id,
             nice_component_state_to_string(state));
    switch (state) {
    case NICE_COMPONENT_STATE_CONNECTED:
    case NICE_COMPONENT_STATE_READY: {
        bool was_ready = p->ice_ready;
        p->ice_ready = true;
        if (p->dtls && tm__dtls_get_state(p->dtls) == TM__DTLS_NEW) {
            tm__dtls_start(p->dtls);
            dtls_arm_timer(p);
        }
        if (p->srtp)
            tm__peer_set_state(p, "connected");
        /* Back after an outage: its video both ways resumes with a keyframe. */
        if (p->srtp && !was_ready)
            tm__keyframe_recover(p, tm_mono_ms());
        break;
    }
    case NICE_COMPONENT_STATE_FAILED:
        /* ICE gave up, or consent to send was lost (RFC 7675). The peer and
         * its DTLS session stay: the page answers "failed" with an ICE
         * restart, which only resumes media if we still hold the session
         * (a browser does not handshake again after a restart). */
        tm_info("media.ice_failed", "visit=%s peer=%s", p->visit->id, p->id);
        p->ice_ready = false;
        tm__peer_set_state(p, "failed");
        break;
    case NICE_COMPONENT_STATE_DISCONNECTED:
        if (p->ice_ready)
            tm__peer_set_state(p, "disconnected");
        break;
    default:
        break;
    }
}

/* ---- teardown ---- */

static void transport_free(tm__peer *p)
{
    if (p->dtls_timer) {
        g_source_destroy(p->dtls_timer);
        g_source_unref(p->dtls_timer);
        p->dtls_timer = NULL;
    }
    tm__ice_stop(p);
    dtls_reset(p, NULL);
    g_free(p->local_ufrag);
    g_free(p->local_pwd);
    p->local_ufrag = p->local_pwd = NULL;
}

static void in_stream_clear(tm__in_stream *s)
{
    tm_stream_stats_free(s->stats);
    memset(s, 0, sizeof *s);
}

static void out_stream_clear(tm__out_stream *o)
{
    tm_rtx_cache_free(o->rtx);
    memset(o, 0, sizeof *o);
}

void tm__peer_close(tm__peer *p, const char *state)
{
    tm__visit *v = p->visit;
    p->closing = true;
    tm__forward_unbind(v, p);
    g_ptr_array_remove(v->peers, p);
    transport_free(p);
    for (int i = 0; i < p->n_in; i++)
        in_stream_clear(&p->in[i]);
    for (int i = 0; i < p->n_out; i++)
        out_stream_clear(&p->out[i]);
    g_free(p->in);
    g_free(p->out);
    for (int i = 0; i < p->n_views; i++)
        g_free(p->views[i].src_peer_id);
    /* Counted out before "closed" is posted, so whoever hears it sees the count too. */
    atomic_fetch_sub_explicit(&p->w->counters.peers, 1, memory_order_relaxed);
    post_state(p, state);
    tm_info("media.peer_closed", "visit=%s peer=%s state=%s", v->id, p->id, state);
    if (!v->closing)
        tm__forward_rebind(v);
    tm__congestion_free(p);
    g_free(p->label);
    g_free(p->id);
    g_free(p);
}

typedef struct close_later {
    tm__worker *w;
    char *visit_id, *peer_id;
    NiceAgent *agent; /* identifies this incarnation of the peer */
    const char *state;
} close_later;

static void close_later_free(gpointer data)
{
    close_later *c = data;
    g_free(c->visit_id);
    g_free(c->peer_id);
    g_free(c);
}

static gboolean close_later_run(gpointer data)
{
    close_later *c = data;
    tm__visit *v = tm__worker_visit(c->w, c->visit_id, false);
    tm__peer *p = v ? tm__visit_peer(v, c->peer_id) : NULL;
    if (p && p->agent == c->agent) {
        tm__peer_close(p, c->state);
        tm__worker_visit_release(c->w, v);
    }
    return G_SOURCE_REMOVE;
}

void tm__peer_close_later(tm__peer *p, const char *state)
{
    if (p->closing)
        return;
    p->closing = true; /* stop sending and forwarding at once */
    close_later *c = g_new0(close_later, 1);
    c->w = p->w;
    c->visit_id = g_strdup(p->visit->id);
    c->peer_id = g_strdup(p->id);
    c->agent = p->agent;
    c->state = state;
    GSource *src = g_idle_source_new();
    g_source_set_callback(src, close_later_run, c, close_later_free);
    g_source_attach(src, p->w->ctx);
    g_source_unref(src);
}

/* ---- offers ---- */

static uint32_t new_ssrc(tm__peer *p)
{
    for (;;) {
        uint32_t s = g_random_int();
        if (s == 0)
            continue;
        bool used = false;
        for (int i = 0; i < p->n_out; i++)
            used = used || p->out[i].ssrc == s;
        if (!used)
            return s;
    }
}

/* Whether m-line m gives p an in stream (it sends to us) and an out stream
 * (it receives from us); false for m-lines we do not carry. */
static bool mline_streams(const tm__peer *p, const tm_sdp_mline *m, bool *in, bool *out)
{
    const tm_sdp_codec *c = tm_sdp_mline_codec(m);
    if (!m->accepted || !c || (m->kind != TM_MEDIA_AUDIO && m->kind != TM_MEDIA_VIDEO))
        return false;
    *in = p->send && (m->direction == TM_DIR_SENDRECV || m->direction == TM_DIR_SENDONLY);
    *out = m->direction == TM_DIR_SENDRECV || m->direction == TM_DIR_RECVONLY;
    return true;
}

/* In streams an m-line gives a sending peer: one per simulcast layer, or one. */
static int layer_count(const tm_sdp_mline *m)
{
    return m->n_layers ? (int)m->n_layers : 1;
}

/* A simulcast layer keeps what it learned (its SSRCs, figures, loss tracking) over a
 * renegotiation that names it again; the rest comes from the offer. */
static void init_layer(tm__in_stream *s, const tm_sdp_mline *m, int mline, int layer, int head)
{
    bool kept = s->n_layers != 0;
    s->mline = mline;
    s->kind = TM_MEDIA_VIDEO;
    s->n_layers = (int)m->n_layers;
    s->layer = layer;
    s->head = head;
    g_strlcpy(s->rid, m->layers[layer], sizeof s->rid);
    s->ext_rid = m->ext_rid;
    s->ext_rrid = m->ext_rrid;
    if (!kept) {
        s->ssrc = s->rtx_ssrc = 0;
        tm__layer_pick_init(&s->rec_pick);
    }
}

/* Rebuild the stream tables from the offer, keeping what a renegotiation must
 * keep: our SSRCs per m-line (so the receiver's tracks continue) and the
 * sender's stream state per m-line. */
static void apply_streams(tm__peer *p, const tm_sdp_offer *offer)
{
    tm__in_stream *old_in = p->in;
    tm__out_stream *old_out = p->out;
    int n_old_in = p->n_in, n_old_out = p->n_out;
    unsigned n_mlines = offer->n_mlines < TM__MAX_STREAMS ? offer->n_mlines : TM__MAX_STREAMS;
    size_t want_in = 0, want_out = 0;
    for (unsigned i = 0; i < n_mlines; i++) {
        bool in, out;
        if (mline_streams(p, &offer->mlines[i], &in, &out)) {
            want_in += in ? layer_count(&offer->mlines[i]) : 0;
            want_out += out;
        }
    }
    p->in = want_in ? g_new0(tm__in_stream, want_in) : NULL;
    p->out = want_out ? g_new0(tm__out_stream, want_out) : NULL;
    p->n_in = p->n_out = 0;
    int ordinal[2] = {0, 0};

    for (unsigned i = 0; i < n_mlines; i++) {
        const tm_sdp_mline *m = &offer->mlines[i];
        bool peer_sends, peer_recvs;
        if (!mline_streams(p, m, &peer_sends, &peer_recvs))
            continue;
        const tm_sdp_codec *c = tm_sdp_mline_codec(m);
        const tm_sdp_codec *rtx = tm_sdp_mline_rtx(m);
        int head = p->n_in;
        for (int layer = 0; peer_sends && layer < layer_count(m); layer++) {
            tm__in_stream *s = &p->in[p->n_in++];
            for (int k = 0; k < n_old_in; k++) {
                if (old_in[k].mline == (int)i && old_in[k].kind == m->kind &&
                    old_in[k].layer == layer && old_in[k].n_layers == (int)m->n_layers &&
                    (!m->n_layers || strcmp(old_in[k].rid, m->layers[layer]) == 0)) {
                    *s = old_in[k];
                    old_in[k].stats = NULL;
                    break;
                }
            }
            if (m->n_layers) {
                init_layer(s, m, (int)i, layer, head);
                s->rtx_pt = rtx ? rtx->pt : -1;
                s->codec = tm_codec_from_name(c->name);
                s->pt = c->pt;
                s->clock = c->clock ? c->clock : 90000;
                s->ext_mid = m->ext_mid;
                s->ext_abs = m->ext_abs_send_time;
                s->n_bound = 0;
                continue;
            }
            s->mline = (int)i;
            s->kind = m->kind;
            s->codec = tm_codec_from_name(c->name);
            s->pt = c->pt;
            s->rtx_pt = rtx ? rtx->pt : -1;
            s->clock = c->clock ? c->clock : (m->kind == TM_MEDIA_AUDIO ? 48000 : 90000);
            if (m->remote_ssrc && m->remote_ssrc != s->ssrc) {
                tm_stream_stats_free(s->stats);
                s->stats = NULL;
                s->ssrc = m->remote_ssrc;
            }
            s->rtx_ssrc = m->remote_rtx_ssrc;
            s->ext_mid = m->ext_mid;
            s->ext_abs = m->ext_abs_send_time;
            s->ext_level = m->ext_audio_level;
            s->n_bound = 0;
        }
        if (peer_recvs) {
            tm__out_stream *o = &p->out[p->n_out++];
            for (int k = 0; k < n_old_out; k++) {
                if (old_out[k].mline == (int)i && old_out[k].kind == m->kind) {
                    *o = old_out[k];
                    old_out[k].rtx = NULL;
                    break;
                }
            }
            o->mline = (int)i;
            o->kind = m->kind;
            o->codec = tm_codec_from_name(c->name);
            o->pt = c->pt;
            o->clock = c->clock ? c->clock : (m->kind == TM_MEDIA_AUDIO ? 48000 : 90000);
            o->ext_mid = m->ext_mid;
            o->ext_abs = m->ext_abs_send_time;
            o->ext_level = m->ext_audio_level;
            g_strlcpy(o->mid, m->mid, sizeof o->mid);
            o->ordinal = ordinal[m->kind == TM_MEDIA_VIDEO]++;
            if (!o->ssrc) {
                o->ssrc = new_ssrc(p);
                tm__layer_pick_init(&o->pick);
            }
            if (m->kind == TM_MEDIA_VIDEO && !o->rtx)
                o->rtx = tm_rtx_cache_new(p->w->rtx_pool, TM__RTX_SLOTS_VIDEO, TM__RTX_MAX_BYTES,
                                          TM__RTX_MAX_AGE_MS);
        }
    }
    for (int k = 0; k < n_old_in; k++)
        tm_stream_stats_free(old_in[k].stats);
    for (int k = 0; k < n_old_out; k++)
        tm_rtx_cache_free(old_out[k].rtx);
    g_free(old_in);
    g_free(old_out);
}

static char *build_answer(tm__peer *p, const tm_sdp_offer *offer)
{
    char **cands = tm__ice_local_candidates(p);
    tm_sdp_answer_media media[TM_SDP_MAX_MLINES];
    char streams[TM_SDP_MAX_MLINES][32];
    memset(media, 0, sizeof media);
    for (int i = 0; i < p->n_out; i++) {
        tm__out_stream *o = &p->out[i];
        tm_sdp_answer_media *am = &media[o->mline];
        g_snprintf(streams[o->mline], sizeof streams[0], "telemed-%d", o->ordinal);
        am->send = true;
        am->ssrc = o->ssrc;
        am->cname = "telemed";
        am->msid_stream = streams[o->mline];
    }
    tm_sdp_answer_params ap = {
        .ice_ufrag = p->local_ufrag,
        .ice_pwd = p->local_pwd,
        .fingerprint = p->w->media->fingerprint,
        .remb = true,
        .transport_cc = tm__congestion_ext(p) != 0,
        .session_version = ++p->session_version,
        .candidates = (const char *const *)cands,
        .n_candidates = g_strv_length(cands),
        .end_of_candidates = true,
        .media = media,
        .n_media = offer->n_mlines,
    };
    char *answer = tm_sdp_build_answer(offer, &ap);
    g_strfreev(cands);
    return answer;
}

static int transport_new(tm__peer *p, const tm_sdp_offer *offer)
{
    g_strlcpy(p->remote_fp, offer->fingerprint.value, sizeof p->remote_fp);
    p->dtls_server = tm_sdp_answer_setup(offer) != TM_SETUP_ACTIVE;
    p->dtls = tm__dtls_new(p->w->media->ssl_ctx, p->dtls_server, p->remote_fp, dtls_send, p);
    if (!p->dtls)
        return TM_ENOMEM;
    return tm__ice_start(p, offer);
}

/* The video codecs a peer sends and receives, one bit each. */
static unsigned video_codecs(const tm__peer *p)
{
    unsigned mask = 0;
    for (int i = 0; i < p->n_in; i++)
        if (p->in[i].kind == TM_MEDIA_VIDEO)
            mask |= 1u << p->in[i].codec;
    for (int i = 0; i < p->n_out; i++)
        if (p->out[i].kind == TM_MEDIA_VIDEO)
            mask |= 1u << p->out[i].codec;
    return mask;
}

void tm__peer_offer(tm__worker *w, const char *visit_id, const char *peer_id, bool send,
                    const tm_sdp_offer *offer, const char *label)
{
    tm__visit *v = tm__worker_visit(w, visit_id, true);
    tm__peer *p = tm__visit_peer(v, peer_id);
    int rc = 0;
    const char *what = "offer";
    if (p && p->closing) {
        /* A failure is being torn down; this offer starts over. */
        tm__peer_close(p, "closed");
        p = NULL;
    }
    if (!p) {
        p = g_new0(tm__peer, 1);
        p->visit = v;
        p->w = w;
        p->id = g_strdup(peer_id);
        p->join_seq = w->next_join_seq++;
        p->rtcp_ssrc = g_random_int() | 1;
        g_ptr_array_add(v->peers, p);
        atomic_fetch_add_explicit(&w->counters.peers, 1, memory_order_relaxed);
    }
    p->send = send;
    if (label) {
        g_free(p->label);
        p->label = g_strdup(label);
    }
    unsigned codecs_before = video_codecs(p);
    apply_streams(p, offer);
    bool codec_changed = video_codecs(p) != codecs_before;
    if (p->dtls && g_ascii_strcasecmp(p->remote_fp, offer->fingerprint.value) != 0) {
        /* The participant came back with a new PeerConnection. */
        what = "new transport";
        tm__forward_unbind(v, p);
        transport_free(p);
        p->state = NULL;
    }
    bool new_transport = !p->dtls;
    tm__congestion_configure(p, w->media->transport_cc ? tm__twcc_offer_ext(offer) : 0,
                             new_transport);
    if (new_transport) {
        rc = transport_new(p, offer);
        tm__peer_set_state(p, "connecting");
    } else if (strcmp(p->remote_ufrag, offer->ice_ufrag) != 0) {
        what = "ice restart";
        p->ice_ready = false; /* so READY again asks for a keyframe */
        rc = tm__ice_restart(p, offer);
    }
    char *answer = rc == 0 ? build_answer(p, offer) : NULL;
    if (!answer) {
        post_error(w, visit_id, peer_id, rc ? rc : TM_EIO, "cannot set up the media transport");
        tm__peer_close(p, "failed");
        tm__worker_visit_release(w, v);
        return;
    }
    tm_media_event ev = {.type = TM_MEDIA_EV_ANSWER,
                         .visit_id = visit_id,
                         .peer_id = peer_id,
                         .sdp = answer,
                         .new_transport = new_transport,
                         .offer_ufrag = offer->ice_ufrag};
    tm__media_post(w, &ev);
    free(answer);
    /* The answer carries our candidates; trickling them too serves clients
     * that only take candidates from signaling. */
    const char *mid = offer->n_bundle ? offer->bundle[0] : "";
    int mline = 0;
    for (unsigned i = 0; i < offer->n_mlines; i++) {
        if (strcmp(offer->mlines[i].mid, mid) == 0) {
            mline = (int)i;
            break;
        }
    }
    char **cands = tm__ice_local_candidates(p);
    for (char **c = cands; *c; c++) {
        tm_media_event ce = {.type = TM_MEDIA_EV_CANDIDATE,
                             .visit_id = visit_id,
                             .peer_id = peer_id,
                             .candidate = *c,
                             .mid = mid,
                             .mline_index = mline};
        tm__media_post(w, &ce);
    }
    g_strfreev(cands);
    tm_media_event end = {.type = TM_MEDIA_EV_CANDIDATE,
                          .visit_id = visit_id,
                          .peer_id = peer_id,
                          .candidate = "",
                          .mid = mid,
                          .mline_index = mline};
    tm__media_post(w, &end);
    tm_info("media.offer", "visit=%s peer=%s kind=%s in=%d out=%d", visit_id, peer_id, what,
            p->n_in, p->n_out);
    p->bindings_due = true;
    p->offer_ms = tm_mono_ms();
    tm__forward_rebind(v);
    /* A renegotiation that keeps the codecs (m-lines added for a joiner) keeps
     * the decoders of a browser: keyframes asked for now only cost every
     * sender an encode, and reach a client that restarts its depacketizers
     * before it applies our answer (it asks itself, as urgently as a join;
     * tests/bench/README.md). After an ICE restart READY asks. */
    if (p->srtp && p->ice_ready && codec_changed)
        tm__keyframe_recover(p, tm_mono_ms());
}

void tm__peer_add_candidate(tm__peer *p, const char *candidate)
{
    if (!p->closing)
        tm__ice_add_remote(p, candidate);
}

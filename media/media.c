/*
 * media.c - the media core's public API (include/telemed/media.h): validates
 * offers on the caller's (control) thread, picks the visit's worker, and turns
 * every call into a message to that worker; carries events back to the control
 * context.
 *
 * Owns: the workers, the DTLS certificate and SSL_CTX, the control-side map of
 * visit -> worker. Runs on the control thread, except tm__media_post (workers).
 */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "media_internal.h"
#include "media_testing.h"
#include "telemed/certs.h"
#include "telemed/log.h"

#include <openssl/crypto.h>

/* ---- events to the control thread ---- */

static tm__sink *sink_ref(tm__sink *s)
{
    g_atomic_int_inc(&s->refs);
    return s;
}

static void sink_unref(tm__sink *s)
{
    if (g_atomic_int_dec_and_test(&s->refs)) {
        g_main_context_unref(s->control);
        g_free(s);
    }
}

typedef struct event_msg {
    tm__sink *sink;
    tm_media_event ev;
    char *visit_id, *peer_id, *sdp, *offer_ufrag, *candidate, *mid, *state, *message;
    tm_media_stream_stats *streams;
    tm_media_binding *bindings;
    char **binding_strs; /* the bindings' mids and peer ids, NULL-terminated */
} event_msg;

static void event_msg_free(gpointer data)
{
    event_msg *e = data;
    sink_unref(e->sink);
    g_free(e->visit_id);
    g_free(e->peer_id);
    g_free(e->sdp);
    g_free(e->offer_ufrag);
    g_free(e->candidate);
    g_free(e->mid);
    g_free(e->state);
    g_free(e->streams);
    g_free(e->message);
    g_free(e->bindings);
    g_strfreev(e->binding_strs);
    g_free(e);
}

static gboolean event_deliver(gpointer data)
{
    event_msg *e = data;
    if (e->sink->alive && e->sink->cb)
        e->sink->cb(&e->ev, e->sink->user);
    return G_SOURCE_REMOVE;
}

void tm__media_post(tm__worker *w, const tm_media_event *ev)
{
    event_msg *e = g_new0(event_msg, 1);
    e->sink = sink_ref(w->media->sink);
    e->ev = *ev;
    e->ev.visit_id = e->visit_id = g_strdup(ev->visit_id);
    e->ev.peer_id = e->peer_id = g_strdup(ev->peer_id);
    e->ev.sdp = e->sdp = g_strdup(ev->sdp);
    e->ev.offer_ufrag = e->offer_ufrag = g_strdup(ev->offer_ufrag);
    e->ev.candidate = e->candidate = g_strdup(ev->candidate);
    e->ev.mid = e->mid = g_strdup(ev->mid);
    e->ev.state = e->state = g_strdup(ev->state);
    e->ev.streams = e->streams = g_memdup2(ev->streams, ev->n_streams * sizeof(*ev->streams));
    e->ev.message = e->message = g_strdup(ev->message);
    if (ev->n_bindings) {
        e->bindings = g_new0(tm_media_binding, ev->n_bindings);
        e->binding_strs = g_new0(char *, 2 * ev->n_bindings + 1);
        size_t n_strs = 0;
        for (size_t i = 0; i < ev->n_bindings; i++) {
            const tm_media_binding *b = &ev->bindings[i];
            e->bindings[i].video = b->video;
            e->bindings[i].mid = e->binding_strs[n_strs++] = g_strdup(b->mid ? b->mid : "");
            if (b->src_peer_id)
                e->bindings[i].src_peer_id = e->binding_strs[n_strs++] = g_strdup(b->src_peer_id);
        }
    }
    e->ev.bindings = e->bindings;
    g_main_context_invoke_full(e->sink->control, G_PRIORITY_DEFAULT, event_deliver, e,
                               event_msg_free);
}

/* A finished recording, copied off the worker for the control thread. */
typedef struct record_msg {
    tm__sink *sink;
    tm_media_record_cb cb;
    void *user;
    char *visit_id, *failure, *path;
    tm_recorder_result res;
} record_msg;

static void record_msg_free(gpointer data)
{
    record_msg *r = data;
    sink_unref(r->sink);
    g_free(r->visit_id);
    g_free(r->failure);
    g_free(r->path);
    g_free(r);
}

static gboolean record_deliver(gpointer data)
{
    record_msg *r = data;
    if (r->sink->alive && r->cb)
        r->cb(r->visit_id, &r->res, r->user);
    return G_SOURCE_REMOVE;
}

void tm__media_post_recording(tm__worker *w, const char *visit_id, tm_media_record_cb cb,
                              void *user, const tm_recorder_result *res)
{
    record_msg *r = g_new0(record_msg, 1);
    r->sink = sink_ref(w->media->sink);
    r->cb = cb;
    r->user = user;
    r->visit_id = g_strdup(visit_id);
    r->res = *res;
    r->res.failure = r->failure = g_strdup(res->failure);
    r->res.path = r->path = g_strdup(res->path);
    g_main_context_invoke_full(r->sink->control, G_PRIORITY_DEFAULT, record_deliver, r,
                               record_msg_free);
}

/* A further part of a visit's recording, for the control thread. */
typedef struct part_msg {
    tm__sink *sink;
    tm_media_record_part_cb cb;
    void *user;
    char *visit_id, *path;
    int part;
} part_msg;

static void part_msg_free(gpointer data)
{
    part_msg *pm = data;
    sink_unref(pm->sink);
    g_free(pm->visit_id);
    g_free(pm->path);
    g_free(pm);
}

static gboolean part_deliver(gpointer data)
{
    part_msg *pm = data;
    if (pm->sink->alive && pm->cb)
        pm->cb(pm->visit_id, pm->part, pm->path, pm->user);
    return G_SOURCE_REMOVE;
}

void tm__media_post_part(tm__worker *w, const char *visit_id, tm_media_record_part_cb cb,
                         void *user, int part, const char *path)
{
    if (!cb)
        return;
    part_msg *pm = g_new0(part_msg, 1);
    pm->sink = sink_ref(w->media->sink);
    pm->cb = cb;
    pm->user = user;
    pm->visit_id = g_strdup(visit_id);
    pm->path = g_strdup(path);
    pm->part = part;
    g_main_context_invoke_full(pm->sink->control, G_PRIORITY_DEFAULT, part_deliver, pm,
                               part_msg_free);
}

/* ---- control-side bookkeeping ---- */

static void home_free(gpointer data)
{
    tm__visit_home *h = data;
    g_hash_table_unref(h->peers);
    g_hash_table_unref(h->labels);
    g_free(h);
}

/* Visits go to the worker with the fewest visits, so load spreads by visit. */
static int pick_worker(tm_media *m)
{
    int *load = g_new0(int, m->n_workers);
    GHashTableIter it;
    gpointer val;
    g_hash_table_iter_init(&it, m->visits);
    while (g_hash_table_iter_next(&it, NULL, &val))
        load[((tm__visit_home *)val)->worker]++;
    int best = 0;
    for (int i = 1; i < m->n_workers; i++)
        if (load[i] < load[best])
            best = i;
    g_free(load);
    return best;
}

/* ---- messages to workers ---- */

typedef enum {
    MSG_OFFER,
    MSG_CANDIDATE,
    MSG_PEER_CLOSE,
    MSG_VISIT_CLOSE,
    MSG_RECORD,
    MSG_RECORD_PARTS,
    MSG_LABEL,
    MSG_VIEW
} msg_type;

typedef struct worker_msg {
    msg_type type;
    tm__worker *w;
    char *visit_id, *peer_id, *candidate, *label;
    bool send;
    tm_sdp_offer *offer;
    /* MSG_RECORD */
    char *path;
    uint8_t key[32];
    bool has_key;
    int expect;
    tm_media_record_cb cb;
    void *user;
    tm_media_record_part_cb part_cb; /* MSG_RECORD_PARTS */
    /* MSG_VIEW: peer_id renders src_peer_id at width x height */
    char *src_peer_id;
    unsigned width, height;
} worker_msg;

static void worker_msg_free(gpointer data)
{
    worker_msg *msg = data;
    g_free(msg->visit_id);
    g_free(msg->peer_id);
    g_free(msg->candidate);
    g_free(msg->label);
    g_free(msg->path);
    g_free(msg->src_peer_id);
    tm_sdp_offer_free(msg->offer);
    OPENSSL_cleanse(msg->key, sizeof msg->key);
    g_free(msg);
}

static gboolean worker_msg_run(gpointer data)
{
    worker_msg *msg = data;
    tm__worker *w = msg->w;
    tm__visit *v = tm__worker_visit(w, msg->visit_id, false);
    tm__peer *p = v && msg->peer_id ? tm__visit_peer(v, msg->peer_id) : NULL;
    switch (msg->type) {
    case MSG_OFFER:
        tm__peer_offer(w, msg->visit_id, msg->peer_id, msg->send, msg->offer, msg->label);
        break;
    case MSG_CANDIDATE:
        if (p)
            tm__peer_add_candidate(p, msg->candidate);
        break;
    case MSG_PEER_CLOSE:
        if (p) {
            tm__peer_close(p, "closed");
            tm__worker_visit_release(w, v);
        }
        break;
    case MSG_VISIT_CLOSE:
        if (v)
            tm__worker_visit_free(w, v);
        break;
    case MSG_VIEW:
        if (p)
            tm__forward_set_view(p, msg->src_peer_id, msg->width, msg->height);
        break;
    case MSG_RECORD:
        v = tm__worker_visit(w, msg->visit_id, true);
        if (!v->rec_path) {
            v->rec_path = g_strdup(msg->path);
            v->rec_has_key = msg->has_key;
            memcpy(v->rec_key, msg->key, sizeof v->rec_key);
            v->rec_cb = msg->cb;
            v->rec_user = msg->user;
            v->rec_expect = msg->expect;
        }
        break;
    case MSG_RECORD_PARTS:
        if (v)
            v->rec_part_cb = msg->part_cb;
        break;
    case MSG_LABEL:
        if (p) {
            g_free(p->label);
            p->label = g_strdup(msg->label);
        }
        break;
    }
    return G_SOURCE_REMOVE;
}

static void send_msg(tm_media *m, int worker, worker_msg *msg)
{
    msg->w = m->workers[worker];
    g_main_context_invoke_full(msg->w->ctx, G_PRIORITY_DEFAULT, worker_msg_run, msg,
                               worker_msg_free);
}

static tm__visit_home *home_get(tm_media *m, const char *visit_id)
{
    tm__visit_home *h = g_hash_table_lookup(m->visits, visit_id);
    if (!h) {
        h = g_new0(tm__visit_home, 1);
        h->worker = pick_worker(m);
        h->peers = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        h->labels = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        g_hash_table_insert(m->visits, g_strdup(visit_id), h);
    }
    return h;
}

static bool id_ok(const char *s)
{
    return s && *s && strlen(s) < 256;
}

/* ---- remote candidates ----
 *
 * Each one is an address the server will send STUN checks to, named by a
 * participant: it must pass the address policy (ice_policy.h) and the peer's
 * budget of max_candidates per ICE session (offer and trickle together), and
 * libnice paces the checks (ice_pacing_ms). */

static tm__peer_home *peer_home_get(tm__visit_home *h, const char *peer_id, const char *ufrag)
{
    tm__peer_home *ph = g_hash_table_lookup(h->peers, peer_id);
    if (!ph) {
        ph = g_new0(tm__peer_home, 1);
        g_hash_table_insert(h->peers, g_strdup(peer_id), ph);
    }
    if (strcmp(ph->ice_ufrag, ufrag) != 0) { /* a new ICE session: a new budget */
        g_strlcpy(ph->ice_ufrag, ufrag, sizeof ph->ice_ufrag);
        ph->n_candidates = 0;
    }
    return ph;
}

/* libnice checks UDP candidates of component 1 only; the rest cost nothing. */
static bool candidate_checked(const tm_sdp_candidate *c)
{
    return c->transport == TM_CAND_UDP && c->component == 1;
}

static int candidate_admit(tm_media *m, tm__peer_home *ph, const tm_sdp_candidate *c)
{
    if (!candidate_checked(c))
        return 0;
    if (c->port == 0 || tm__ice_policy_check(m->policy, c->address) != 0)
        return TM_EUNSUPPORTED;
    if (ph->n_candidates >= m->max_candidates)
        return TM_ETOOBIG;
    ph->n_candidates++;
    return 0;
}

/* Drops the offer's candidates that candidate_admit refuses. */
static void offer_admit_candidates(tm_media *m, tm__peer_home *ph, tm_sdp_offer *offer)
{
    for (unsigned i = 0; i < offer->n_mlines; i++) {
        tm_sdp_mline *ml = &offer->mlines[i];
        unsigned kept = 0;
        for (unsigned k = 0; k < ml->n_candidates; k++)
            if (candidate_admit(m, ph, &ml->candidates[k]) == 0)
                ml->candidates[kept++] = ml->candidates[k];
        ml->n_candidates = kept;
    }
}

const char *tm_media_candidate_error(int rc)
{
    switch (rc) {
    case 0:
        return "ok";
    case TM_EUNSUPPORTED:
        return "candidate refused: the server sends no checks to this address (unspecified, "
               "multicast, a host name, or a family or scope - loopback, link-local, private - "
               "its media network does not serve)";
    case TM_ETOOBIG:
        return "candidate refused: this peer has given the most candidates allowed for one ICE "
               "session";
    default:
        return "candidate refused: not a valid ICE candidate";
    }
}

/* ---- public API ---- */

tm_media *tm_media_new(const tm_media_options *opts, GMainContext *control, tm_media_event_cb cb,
                       void *user, char **err)
{
    /* Every peer gets two 64 KiB receive buffers from libnice (UDP datagrams
     * and RFC 4571 framing, which UDP-only ICE never touches) and each video
     * receiver a NACK ring of up to 256 KiB. From a malloc arena those pages
     * get dirtied by later small allocations and stay with the arena after
     * the peer is gone; mapped on their own they cost only the pages really
     * written and go back to the kernel when freed. A fixed threshold also
     * stops glibc from raising it after such a block is freed. Process-wide,
     * set before any worker runs; only blocks of 64 KiB and more are affected. */
    mallopt(M_MMAP_THRESHOLD, 64 * 1024);
    tm_media *m = g_new0(tm_media, 1);
    m->sink = g_new0(tm__sink, 1);
    m->sink->refs = 1;
    m->sink->alive = true;
    m->sink->cb = cb;
    m->sink->user = user;
    m->sink->control = g_main_context_ref(control ? control : g_main_context_default());
    m->visits = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, home_free);

    const char *addrs = opts && opts->addresses && *opts->addresses ? opts->addresses : "127.0.0.1";
    m->addresses = g_strsplit(addrs, ",", -1);
    for (char **a = m->addresses; *a; a++)
        g_strstrip(*a);
    m->public_ip = opts && opts->public_ip && *opts->public_ip ? g_strdup(opts->public_ip) : NULL;
    m->port_min = opts ? opts->port_min : 0;
    m->port_max = opts ? opts->port_max : 0;
    m->stock_io = opts && opts->stock_io;
    m->send_each = opts && opts->send_each;
    m->keep_dtls = opts && opts->keep_dtls;
    m->rx_epoll = opts && opts->rx_epoll;
    m->max_candidates = opts && opts->max_candidates > 0 ? opts->max_candidates : 20;
    m->ice_pacing_ms = opts && opts->ice_pacing_ms > 0 ? opts->ice_pacing_ms : 50;
    m->transport_cc = opts && opts->transport_cc;
    if (m->port_min < 0 || m->port_max < 0 || m->port_min > 65535 || m->port_max > 65535 ||
        (m->port_max && m->port_max < m->port_min)) {
        if (err)
            *err = g_strdup("bad media port range");
        goto fail;
    }

    char *perr = NULL;
    m->policy = tm__ice_policy_new(m->addresses, m->public_ip,
                                   opts ? opts->candidate_networks : NULL, &perr);
    if (!m->policy) {
        if (err)
            *err = g_strdup_printf("bad candidate networks: %s", perr);
        g_free(perr);
        goto fail;
    }
    /* Before any worker makes an SRTP session. */
    tm__srtp_use_library_ciphers(opts && opts->stock_srtp);

    if (tm_certs_make_self_signed("telemed", 365, &m->key, &m->cert) != 0 ||
        tm__dtls_cert_fingerprint(m->cert, m->fingerprint, sizeof m->fingerprint) != 0) {
        if (err)
            *err = g_strdup("cannot make the DTLS certificate");
        goto fail;
    }
    m->ssl_ctx = tm__dtls_ctx_new(m->key, m->cert);
    if (!m->ssl_ctx) {
        if (err)
            *err = g_strdup("cannot set up DTLS");
        goto fail;
    }
    /* WebRTC never resumes a DTLS session (every PeerConnection makes a new
     * handshake), so the server neither caches sessions (each would hold the
     * browser's certificate for 5 minutes after its visit ended) nor issues
     * tickets (a handshake message and its encryption for nothing). */
    SSL_CTX_set_session_cache_mode(m->ssl_ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(m->ssl_ctx, SSL_OP_NO_TICKET);

    int n = opts && opts->workers > 0 ? opts->workers : (int)g_get_num_processors();
    if (n < 1)
        n = 1;
    if (n > 256)
        n = 256;
    m->workers = g_new0(tm__worker *, n);
    for (int i = 0; i < n; i++) {
        m->workers[i] = tm__worker_new(m, i, err);
        if (!m->workers[i])
            goto fail;
        m->n_workers = i + 1;
    }
    tm_info("media.started", "workers=%d io=%s send=%s srtp=%s max_candidates=%d ice_pacing_ms=%d",
            n, m->stock_io ? "libnice" : "direct", m->send_each ? "each" : "batch",
            opts && opts->stock_srtp ? "libsrtp" : "ours", m->max_candidates, m->ice_pacing_ms);
#ifdef TM_TEST_HOOKS
    tm__test_stall_start(m);
#endif
    return m;
fail:
    tm_media_free(m);
    return NULL;
}

void tm_media_free(tm_media *m)
{
    if (!m)
        return;
    m->sink->alive = false;
#ifdef TM_TEST_HOOKS
    tm__test_stall_stop(m);
#endif
    for (int i = 0; i < m->n_workers; i++)
        tm__worker_free(m->workers[i]);
    g_free(m->workers);
    sink_unref(m->sink);
    g_hash_table_unref(m->visits);
    SSL_CTX_free(m->ssl_ctx);
    X509_free(m->cert);
    EVP_PKEY_free(m->key);
    g_strfreev(m->addresses);
    g_free(m->public_ip);
    tm__ice_policy_free(m->policy);
    g_free(m);
}

/* ---- one video codec per visit ----
 *
 * The SFU forwards and does not transcode, so everyone in a visit sends and
 * receives the same video codec: VP8 while every peer offers it (simulcast
 * is VP8's), H.264 from the first peer that offers only H.264 (a phone's
 * in-app browser) on. Peers whose answer already took VP8 are asked for a new
 * offer, which then gets H.264. A peer that offers only VP8 in an H.264 visit
 * keeps VP8 and sees no video from the others: there is no transcoder.
 *
 * An H.264 m-line is answered without simulcast, so the browser sends one
 * full-size stream that follows its receivers' REMB: Chromium's H.264 layers
 * (an OpenH264 encoder each) do not grow in rate with their size (the
 * quarter layer sent 680 kbit/s, the full one 470, tests/web/codec.test.mjs),
 * so a layer chosen by a receiver's bandwidth stays on the smallest picture
 * and a phone's uplink carries three streams for it. */

static bool video_codec_is(const tm_sdp_mline *ml, const char *name)
{
    const tm_sdp_codec *c = tm_sdp_mline_codec(ml);
    return ml->kind == TM_MEDIA_VIDEO && ml->accepted && c &&
           g_ascii_strcasecmp(c->name, name) == 0;
}

static void fit_video_codec(tm_media *m, tm__visit_home *h, const char *visit_id,
                            const char *peer_id, tm__peer_home *ph, tm_sdp_offer *offer)
{
    bool turned = false;
    for (unsigned i = 0; i < offer->n_mlines && !h->h264; i++)
        turned = h->h264 = video_codec_is(&offer->mlines[i], "H264");
    ph->video_vp8 = false;
    for (unsigned i = 0; i < offer->n_mlines; i++) {
        tm_sdp_mline *ml = &offer->mlines[i];
        if (h->h264 && ml->kind == TM_MEDIA_VIDEO && ml->accepted && tm_sdp_mline_prefer_h264(ml))
            ml->n_layers = 0; /* answered without a=simulcast: one layer */
        ph->video_vp8 = ph->video_vp8 || video_codec_is(ml, "VP8");
    }
    if (!turned)
        return;
    tm_info("media.codec", "visit=%s video=H264 by=%s", visit_id, peer_id);
    GHashTableIter it;
    gpointer key, value;
    g_hash_table_iter_init(&it, h->peers);
    while (g_hash_table_iter_next(&it, &key, &value)) {
        tm__peer_home *other = value;
        if (other == ph || !other->video_vp8)
            continue;
        tm_media_event ev = {.type = TM_MEDIA_EV_RENEGOTIATE, .visit_id = visit_id, .peer_id = key};
        tm__media_post(m->workers[h->worker], &ev);
    }
}

int tm_media_offer(tm_media *m, const char *visit_id, const char *peer_id, bool send,
                   const char *sdp, size_t len, char **err)
{
    if (!m || !id_ok(visit_id) || !id_ok(peer_id) || !sdp) {
        if (err)
            *err = g_strdup("missing visit, peer or sdp");
        return TM_EINVAL;
    }
    tm_sdp_offer *offer = NULL;
    char *perr = NULL;
    int rc = tm_sdp_parse_offer(sdp, len, &offer, &perr);
    if (rc != 0) {
        if (err)
            *err = g_strdup(perr ? perr : "bad offer");
        g_free(perr);
        return rc == TM_ETOOBIG ? TM_ETOOBIG : TM_EINVAL;
    }
    g_free(perr);
    const char *why = NULL;
    if (g_ascii_strcasecmp(offer->fingerprint.algorithm, "sha-256") != 0)
        why = "the DTLS fingerprint must be sha-256";
    else if (!offer->ice_ufrag[0] || !offer->ice_pwd[0])
        why = "missing ice-ufrag/ice-pwd";
    else if (offer->ice_lite)
        why = "an ice-lite offerer is not supported";
    if (why) {
        if (err)
            *err = g_strdup(why);
        tm_sdp_offer_free(offer);
        return TM_EINVAL;
    }

    if (!send) {
        /* A receive-only peer (supervisor) that offered sendrecv gets a sendonly
         * answer, so its browser does not send media nobody forwards. */
        for (unsigned i = 0; i < offer->n_mlines; i++)
            if (offer->mlines[i].direction == TM_DIR_SENDRECV)
                offer->mlines[i].direction = TM_DIR_RECVONLY;
            else if (offer->mlines[i].direction == TM_DIR_SENDONLY)
                offer->mlines[i].direction = TM_DIR_INACTIVE;
    }
    tm__visit_home *h = home_get(m, visit_id);
    tm__peer_home *ph = peer_home_get(h, peer_id, offer->ice_ufrag);
    offer_admit_candidates(m, ph, offer);
    fit_video_codec(m, h, visit_id, peer_id, ph, offer);

    worker_msg *msg = g_new0(worker_msg, 1);
    msg->type = MSG_OFFER;
    msg->visit_id = g_strdup(visit_id);
    msg->peer_id = g_strdup(peer_id);
    msg->send = send;
    msg->offer = offer;
    msg->label = g_strdup(g_hash_table_lookup(h->labels, peer_id));
    send_msg(m, h->worker, msg);
    return 0;
}

int tm_media_visit_record(tm_media *m, const char *visit_id, const char *path, const uint8_t *key32,
                          int expect_senders, tm_media_record_cb cb, void *user)
{
    if (!m || !id_ok(visit_id) || !path || !*path || expect_senders < 0 ||
        expect_senders > TM_RECORDER_MAX_TRACKS)
        return TM_EINVAL;
    tm__visit_home *h = home_get(m, visit_id);
    if (h->recording)
        return TM_ECONFLICT;
    h->recording = true;
    worker_msg *msg = g_new0(worker_msg, 1);
    msg->type = MSG_RECORD;
    msg->visit_id = g_strdup(visit_id);
    msg->path = g_strdup(path);
    if (key32) {
        memcpy(msg->key, key32, sizeof msg->key);
        msg->has_key = true;
    }
    msg->cb = cb;
    msg->user = user;
    msg->expect = expect_senders;
    send_msg(m, h->worker, msg);
    return 0;
}

int tm_media_visit_record_parts(tm_media *m, const char *visit_id, tm_media_record_part_cb part_cb)
{
    tm__visit_home *h = m && id_ok(visit_id) ? g_hash_table_lookup(m->visits, visit_id) : NULL;
    if (!h || !h->recording)
        return TM_EINVAL;
    worker_msg *msg = g_new0(worker_msg, 1);
    msg->type = MSG_RECORD_PARTS;
    msg->visit_id = g_strdup(visit_id);
    msg->part_cb = part_cb;
    send_msg(m, h->worker, msg);
    return 0;
}

int tm_media_set_label(tm_media *m, const char *visit_id, const char *peer_id, const char *label)
{
    if (!m || !id_ok(visit_id) || !id_ok(peer_id) || !label || strlen(label) > 63)
        return TM_EINVAL;
    /* Kept here too: the label usually comes before the peer's first offer. */
    tm__visit_home *h = home_get(m, visit_id);
    g_hash_table_replace(h->labels, g_strdup(peer_id), g_strdup(label));
    worker_msg *msg = g_new0(worker_msg, 1);
    msg->type = MSG_LABEL;
    msg->visit_id = g_strdup(visit_id);
    msg->peer_id = g_strdup(peer_id);
    msg->label = g_strdup(label);
    send_msg(m, h->worker, msg);
    return 0;
}

int tm_media_set_view(tm_media *m, const char *visit_id, const char *peer_id,
                      const char *src_peer_id, unsigned width, unsigned height)
{
    if (!m || !id_ok(visit_id) || !id_ok(peer_id) || !id_ok(src_peer_id) ||
        width > TM_MEDIA_VIEW_MAX || height > TM_MEDIA_VIEW_MAX)
        return TM_EINVAL;
    tm__visit_home *h = g_hash_table_lookup(m->visits, visit_id);
    if (!h || !g_hash_table_lookup(h->peers, peer_id))
        return TM_ENOTFOUND;
    worker_msg *msg = g_new0(worker_msg, 1);
    msg->type = MSG_VIEW;
    msg->visit_id = g_strdup(visit_id);
    msg->peer_id = g_strdup(peer_id);
    msg->src_peer_id = g_strdup(src_peer_id);
    msg->width = width;
    msg->height = height;
    send_msg(m, h->worker, msg);
    return 0;
}

int tm_media_add_candidate(tm_media *m, const char *visit_id, const char *peer_id,
                           const char *candidate, const char *mid)
{
    if (!m || !id_ok(visit_id) || !id_ok(peer_id))
        return TM_EINVAL;
    tm_sdp_candidate c;
    bool end = !candidate || !*candidate;
    if (!end && tm_sdp_parse_candidate(candidate, &c) != 0)
        return TM_EINVAL;
    tm__visit_home *h = g_hash_table_lookup(m->visits, visit_id);
    if (!h)
        return 0; /* the visit's media is gone; a late candidate is harmless */
    tm__peer_home *ph = g_hash_table_lookup(h->peers, peer_id);
    if (!ph)
        return 0; /* no offer yet: the worker has no peer to give it to */
    if (!end) {
        int rc = candidate_admit(m, ph, &c);
        if (rc != 0) {
            tm_debug("media.candidate_refused", "visit=%s peer=%s rc=%d", visit_id, peer_id, rc);
            return rc;
        }
        if (!candidate_checked(&c))
            return 0;
    }
    worker_msg *msg = g_new0(worker_msg, 1);
    msg->type = MSG_CANDIDATE;
    msg->visit_id = g_strdup(visit_id);
    msg->peer_id = g_strdup(peer_id);
    msg->candidate = g_strdup(candidate ? candidate : "");
    send_msg(m, h->worker, msg);
    return 0;
}

int tm_media_peer_close(tm_media *m, const char *visit_id, const char *peer_id)
{
    if (!m || !id_ok(visit_id) || !id_ok(peer_id))
        return TM_EINVAL;
    tm__visit_home *h = g_hash_table_lookup(m->visits, visit_id);
    if (!h)
        return 0;
    worker_msg *msg = g_new0(worker_msg, 1);
    msg->type = MSG_PEER_CLOSE;
    msg->visit_id = g_strdup(visit_id);
    msg->peer_id = g_strdup(peer_id);
    send_msg(m, h->worker, msg);
    g_hash_table_remove(h->peers, peer_id);
    if (g_hash_table_size(h->peers) == 0 && !h->recording)
        g_hash_table_remove(m->visits, visit_id);
    return 0;
}

int tm_media_visit_close(tm_media *m, const char *visit_id)
{
    if (!m || !id_ok(visit_id))
        return TM_EINVAL;
    tm__visit_home *h = g_hash_table_lookup(m->visits, visit_id);
    if (!h)
        return 0;
    worker_msg *msg = g_new0(worker_msg, 1);
    msg->type = MSG_VISIT_CLOSE;
    msg->visit_id = g_strdup(visit_id);
    send_msg(m, h->worker, msg);
    g_hash_table_remove(m->visits, visit_id);
    return 0;
}

void tm_media_get_counters(tm_media *m, tm_media_counters *out)
{
    memset(out, 0, sizeof *out);
    if (!m)
        return;
    for (int i = 0; i < m->n_workers; i++) {
        tm__counters *c = &m->workers[i]->counters;
        out->peers += (uint64_t)atomic_load_explicit(&c->peers, memory_order_relaxed);
        out->visits += (uint64_t)atomic_load_explicit(&c->visits, memory_order_relaxed);
        out->rx_packets += atomic_load_explicit(&c->rx_packets, memory_order_relaxed);
        out->tx_packets += atomic_load_explicit(&c->tx_packets, memory_order_relaxed);
        out->dropped_malformed += atomic_load_explicit(&c->dropped_malformed, memory_order_relaxed);
        out->dropped_unknown_source +=
            atomic_load_explicit(&c->dropped_unknown_source, memory_order_relaxed);
        out->nacks_answered += atomic_load_explicit(&c->nacks_answered, memory_order_relaxed);
        out->plis_forwarded += atomic_load_explicit(&c->plis_forwarded, memory_order_relaxed);
        out->nacks_sent += atomic_load_explicit(&c->nacks_sent, memory_order_relaxed);
        out->rtx_received += atomic_load_explicit(&c->rtx_received, memory_order_relaxed);
        out->rtx_redundant += atomic_load_explicit(&c->rtx_redundant, memory_order_relaxed);
        out->rx_direct += atomic_load_explicit(&c->rx_direct, memory_order_relaxed);
        out->tx_batched += atomic_load_explicit(&c->tx_batched, memory_order_relaxed);
        out->dtls_shed += atomic_load_explicit(&c->dtls_shed, memory_order_relaxed);
        out->rtx_bytes += atomic_load_explicit(&c->rtx_bytes, memory_order_relaxed);
    }
}

typedef struct drop_msg {
    tm__worker *w;
    unsigned n;
    bool in;
} drop_msg;

static gboolean drop_msg_run(gpointer data)
{
    drop_msg *d = data;
    if (d->in) {
        d->w->test_drop_in = d->n;
        d->w->test_drop_in_n = 0;
    } else {
        d->w->test_drop = d->n;
        d->w->test_drop_n = 0;
    }
    return G_SOURCE_REMOVE;
}

static void set_drop(tm_media *m, unsigned n, bool in)
{
    if (!m)
        return;
    for (int i = 0; i < m->n_workers; i++) {
        drop_msg *d = g_new0(drop_msg, 1);
        d->w = m->workers[i];
        d->n = n;
        d->in = in;
        g_main_context_invoke_full(d->w->ctx, G_PRIORITY_DEFAULT, drop_msg_run, d, g_free);
    }
}

void tm_media_set_test_drop(tm_media *m, unsigned every_nth_video)
{
    set_drop(m, every_nth_video, false);
}

void tm_media_set_test_drop_in(tm_media *m, unsigned every_nth_video)
{
    set_drop(m, every_nth_video, true);
}

void tm_media_get_latency(tm_media *m, tm_media_latency *out)
{
    memset(out, 0, sizeof *out);
    if (!m)
        return;
    uint64_t *sum = g_new0(uint64_t, TM__LATENCY_BUCKETS);
    uint64_t total = 0, max = 0;
    for (int i = 0; i < m->n_workers; i++) {
        tm__counters *c = &m->workers[i]->counters;
        for (int b = 0; b < TM__LATENCY_BUCKETS; b++) {
            uint64_t v = atomic_load_explicit(&c->latency[b], memory_order_relaxed);
            sum[b] += v;
            total += v;
        }
        uint64_t mx = atomic_load_explicit(&c->latency_max_us, memory_order_relaxed);
        max = mx > max ? mx : max;
    }
    out->samples = total;
    out->max_us = (double)max;
    uint64_t seen = 0;
    bool have50 = false;
    for (int b = 0; b < TM__LATENCY_BUCKETS && total; b++) {
        seen += sum[b];
        /* Report the bucket's upper edge: a conservative figure. */
        double edge = (double)(b + 1) * TM__LATENCY_STEP_US;
        if (!have50 && seen * 2 >= total) {
            out->p50_us = edge;
            have50 = true;
        }
        if (seen * 100 >= total * 99) {
            out->p99_us = edge;
            break;
        }
    }
    g_free(sum);
}

const char *tm_media_fingerprint(tm_media *m)
{
    return m ? m->fingerprint : NULL;
}

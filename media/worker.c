/*
 * worker.c - one media worker: a thread running its own GMainContext and
 * GMainLoop, owning the visits assigned to it and their peers, plus a
 * once-a-second tick for RTCP reports, REMB and statistics, which runs only
 * while the worker has visits (an idle worker sleeps in poll() for good).
 *
 * Owns: its visits (hash by id) and, through them, every peer and each
 * visit's recorder (include/telemed/recorder.h), which it feeds decrypted RTP
 * from forward.c and finishes when the visit is closed. Everything in
 * here runs on the worker thread except tm__worker_new/free (control thread),
 * which only start and join it.
 */
#include <malloc.h>
#include <string.h>

#include <openssl/crypto.h>

#include "media_internal.h"
#include "telemed/log.h"

/* ---- warm-up ----
 *
 * Before it takes visits, each worker pays what a first visit would pay that
 * is not the visit's (malloc arena, OpenSSL's per-thread state, libsrtp's and
 * libnice's first objects): a DTLS handshake over memory, SRTP both ways and
 * an ICE check between two agents on its own context. tests/bench/README.md. */

#define WARM_PKTS 16

typedef struct warm_wire {
    uint8_t *pkt[WARM_PKTS];
    size_t len[WARM_PKTS];
    int n;
} warm_wire;

static void warm_to_wire(const uint8_t *buf, size_t len, void *user)
{
    warm_wire *wi = user;
    if (wi->n < WARM_PKTS) {
        wi->pkt[wi->n] = g_memdup2(buf, len);
        wi->len[wi->n++] = len;
    }
}

static void warm_deliver(warm_wire *wi, tm__dtls *to)
{
    int n = wi->n;
    wi->n = 0;
    for (int i = 0; i < n; i++) {
        bool dropped;
        if (to)
            tm__dtls_input(to, wi->pkt[i], wi->len[i], &dropped);
        g_free(wi->pkt[i]);
    }
}

static void warm_srtp(const tm__srtp_keys *a, const tm__srtp_keys *b)
{
    tm__srtp *sa = tm__srtp_new(a), *sb = tm__srtp_new(b);
    if (sa && sb) {
        uint8_t pkt[300] = {0x80, 96, 0, 1, 0, 0, 0, 1, 0x12, 0x34, 0x56, 0x78};
        size_t len = 200;
        if (tm__srtp_protect_rtp(sa, pkt, &len) == 0)
            (void)tm__srtp_unprotect_rtp(sb, pkt, &len);
        uint8_t rtcp[300] = {0x80, 200, 0, 6, 0x12, 0x34, 0x56, 0x78};
        len = 28;
        if (tm__srtp_protect_rtcp(sa, rtcp, &len) == 0)
            (void)tm__srtp_unprotect_rtcp(sb, rtcp, &len);
    }
    tm__srtp_free(sa);
    tm__srtp_free(sb);
}

static void warm_dtls_srtp(tm__worker *w)
{
    tm_media *m = w->media;
    warm_wire c2s = {0}, s2c = {0};
    tm__dtls *client = tm__dtls_new(m->ssl_ctx, false, m->fingerprint, warm_to_wire, &c2s);
    tm__dtls *server = tm__dtls_new(m->ssl_ctx, true, m->fingerprint, warm_to_wire, &s2c);
    if (client && server && tm__dtls_start(server) == 0 && tm__dtls_start(client) == 0) {
        for (int round = 0; round < 10 && (c2s.n || s2c.n); round++) {
            warm_deliver(&c2s, server);
            warm_deliver(&s2c, client);
        }
        tm__srtp_keys ck, sk;
        if (tm__dtls_srtp_keys(client, &ck) == 0 && tm__dtls_srtp_keys(server, &sk) == 0)
            warm_srtp(&ck, &sk);
        else
            tm_warn("media.warm_up_failed", "worker=%d what=dtls", w->index);
        OPENSSL_cleanse(&ck, sizeof ck);
        OPENSSL_cleanse(&sk, sizeof sk);
    }
    warm_deliver(&c2s, NULL); /* frees what is left */
    warm_deliver(&s2c, NULL);
    tm__dtls_free(client);
    tm__dtls_free(server);
}

static void warm_recv(NiceAgent *agent, guint stream_id, guint component_id, guint len, gchar *buf,
                      gpointer data)
{
    (*(int *)data)++;
}

static NiceAgent *warm_agent(tm__worker *w, bool controlling, guint *stream, int *received)
{
    NiceAgent *a =
        nice_agent_new_full(w->ctx, NICE_COMPATIBILITY_RFC5245,
                            NICE_AGENT_OPTION_ICE_TRICKLE | NICE_AGENT_OPTION_CONSENT_FRESHNESS);
    if (!a)
        return NULL;
    g_object_set(a, "controlling-mode", controlling, "ice-tcp", FALSE, "ice-udp", TRUE, NULL);
    if (g_object_class_find_property(G_OBJECT_GET_CLASS(a), "upnp"))
        g_object_set(a, "upnp", FALSE, NULL);
    for (char **addr = w->media->addresses; *addr; addr++) {
        NiceAddress na;
        nice_address_init(&na);
        if (**addr && nice_address_set_from_string(&na, *addr))
            nice_agent_add_local_address(a, &na);
    }
    *stream = nice_agent_add_stream(a, 1);
    if (!*stream || !nice_agent_gather_candidates(a, *stream) ||
        !nice_agent_attach_recv(a, *stream, 1, w->ctx, warm_recv, received)) {
        g_object_unref(a);
        return NULL;
    }
    return a;
}

static void warm_pair(NiceAgent *from, guint from_sid, NiceAgent *to, guint to_sid)
{
    gchar *ufrag = NULL, *pwd = NULL;
    nice_agent_get_local_credentials(from, from_sid, &ufrag, &pwd);
    nice_agent_set_remote_credentials(to, to_sid, ufrag, pwd);
    g_free(ufrag);
    g_free(pwd);
    GSList *cands = nice_agent_get_local_candidates(from, from_sid, 1);
    nice_agent_set_remote_candidates(to, to_sid, 1, cands);
    g_slist_free_full(cands, (GDestroyNotify)nice_candidate_free);
}

static void warm_ice(tm__worker *w)
{
    guint sa = 0, sb = 0;
    int got_a = 0, got_b = 0;
    NiceAgent *a = warm_agent(w, true, &sa, &got_a);
    NiceAgent *b = a ? warm_agent(w, false, &sb, &got_b) : NULL;
    if (a && b) {
        warm_pair(a, sa, b, sb);
        warm_pair(b, sb, a, sa);
        static const char probe[] = "\x80warm-up";
        gint64 until = g_get_monotonic_time() + G_USEC_PER_SEC;
        while (got_b == 0 && g_get_monotonic_time() < until) {
            if (nice_agent_get_component_state(a, sa, 1) == NICE_COMPONENT_STATE_READY)
                nice_agent_send(a, sa, 1, sizeof probe, probe);
            if (!g_main_context_iteration(w->ctx, FALSE))
                g_usleep(2000);
        }
        if (got_b == 0)
            tm_warn("media.warm_up_failed", "worker=%d what=ice", w->index);
    }
    if (a)
        nice_agent_attach_recv(a, sa, 1, w->ctx, NULL, NULL);
    if (b)
        nice_agent_attach_recv(b, sb, 1, w->ctx, NULL, NULL);
    if (a)
        g_object_unref(a);
    if (b)
        g_object_unref(b);
    /* Let libnice's sources close the sockets. */
    while (g_main_context_iteration(w->ctx, FALSE))
        ;
}

static void warm_up(tm__worker *w)
{
    gint64 t0 = g_get_monotonic_time();
    warm_dtls_srtp(w);
    warm_ice(w);
    malloc_trim(0);
    tm_debug("media.warm_up", "worker=%d us=%" G_GINT64_FORMAT, w->index,
             g_get_monotonic_time() - t0);
}

/* Handed from tm__worker_new to the new thread: it warms up, then says so. */
typedef struct worker_start {
    tm__worker *w;
    GMutex lock;
    GCond cond;
    bool ready;
} worker_start;

static gpointer worker_main(gpointer data)
{
    worker_start *st = data;
    tm__worker *w = st->w;
    g_main_context_push_thread_default(w->ctx);
    warm_up(w);
    g_mutex_lock(&st->lock);
    st->ready = true;
    g_cond_signal(&st->cond);
    g_mutex_unlock(&st->lock); /* st is gone from here on */
    g_main_loop_run(w->loop);
    g_main_context_pop_thread_default(w->ctx);
    return NULL;
}

/* A tick this late means the worker was busy with something else that long:
 * every peer's media waited too, and the figures show a gap in all of them. */
#define TICK_LATE_MS 1500

static gboolean worker_tick(gpointer data)
{
    tm__worker *w = data;
    int64_t now = tm_mono_ms();
    if (w->tick_ms && now - w->tick_ms > TICK_LATE_MS)
        tm_info("media.worker_late", "worker=%d since_tick_ms=%" G_GINT64_FORMAT, w->index,
                now - w->tick_ms);
    w->tick_ms = now;
    size_t rtx_bytes = tm_rtx_pool_idle_bytes(w->rtx_pool);
    GHashTableIter it;
    gpointer val;
    g_hash_table_iter_init(&it, w->visits);
    while (g_hash_table_iter_next(&it, NULL, &val)) {
        tm__visit *v = val;
        for (guint i = 0; i < v->peers->len; i++) {
            tm__peer *p = g_ptr_array_index(v->peers, i);
            tm__peer_dtls_tick(p, now);
            tm__forward_tick(p, now);
            for (int k = 0; k < p->n_out; k++)
                rtx_bytes += tm_rtx_cache_bytes(p->out[k].rtx);
        }
    }
    atomic_store_explicit(&w->counters.rtx_bytes, rtx_bytes, memory_order_relaxed);
    return G_SOURCE_CONTINUE;
}

/* The tick starts with a worker's first visit and stops with its last, so an
 * idle worker has no timer at all. On the worker thread. */
static void tick_start(tm__worker *w)
{
    if (w->tick || w->stopping)
        return;
    w->tick = g_timeout_source_new(1000);
    g_source_set_callback(w->tick, worker_tick, w, NULL);
    g_source_attach(w->tick, w->ctx);
}

static void tick_stop(tm__worker *w)
{
    if (!w->tick)
        return;
    g_source_destroy(w->tick);
    g_source_unref(w->tick);
    w->tick = NULL;
    w->tick_ms = 0;
    atomic_store_explicit(&w->counters.rtx_bytes, tm_rtx_pool_idle_bytes(w->rtx_pool),
                          memory_order_relaxed);
}

/* ---- recording ---- */

typedef struct rec_done_ctx {
    tm__worker *w;
    char *visit_id;
    tm_media_record_cb cb;
    void *user;
    int part;
    bool last;
} rec_done_ctx;

/* On this worker's context (the recorder's callback context). */
static void rec_done(const tm_recorder_result *res, void *user)
{
    rec_done_ctx *c = user;
    tm_info("media.recording_done",
            "visit=%s part=%d status=%d bytes=%" G_GINT64_FORMAT " duration_ms=%" G_GINT64_FORMAT
            " dropped=%" G_GUINT64_FORMAT,
            c->visit_id, c->part, res->status, res->size_bytes, res->duration_ms,
            res->stats.dropped);
    tm_recorder_result r = *res;
    r.part = c->part;
    r.last = c->last;
    tm__media_post_recording(c->w, c->visit_id, c->cb, c->user, &r);
    c->w->rec_pending--;
    g_free(c->visit_id);
    g_free(c);
}

/* Issue 4: the visit goes on, but supervisors must hear that it is no
 * longer being recorded, so the control thread gets one event per failed
 * recording (the recorder reports only its first failure; rec_failed guards
 * the start path, which has no recorder to do so). */
static void post_rec_failed(tm__visit *v, const char *reason)
{
    tm_media_event ev = {.type = TM_MEDIA_EV_RECORDING_FAILED,
                         .visit_id = v->id,
                         .message = reason && *reason ? reason : "recording failed"};
    tm__media_post(v->w, &ev);
}

/* On this worker's context; never after tm_recorder_finish/free, so v is alive. */
static void rec_failed(const char *reason, void *user)
{
    tm__visit *v = user;
    tm_warn("media.recording_failed", "visit=%s", v->id);
    if (!v->rec_failed) {
        v->rec_failed = true;
        post_rec_failed(v, reason);
    }
}

static bool rec_codec(tm_codec_id c, tm_recorder_codec *out)
{
    switch (c) {
    case TM_CODEC_OPUS:
        *out = TM_REC_OPUS;
        return true;
    case TM_CODEC_VP8:
        *out = TM_REC_VP8;
        return true;
    case TM_CODEC_H264:
        *out = TM_REC_H264;
        return true;
    default:
        return false;
    }
}

#define REC_WAIT_MS 5000

/* Part 1 is rec_path itself; part N puts "-partN" before the ".mkv" of its name. New string. */
static char *part_path(const char *path, int part)
{
    if (part <= 1)
        return g_strdup(path);
    const char *base = strrchr(path, '/');
    const char *ext = strstr(base ? base : path, ".mkv");
    size_t head = ext ? (size_t)(ext - path) : strlen(path);
    return g_strdup_printf("%.*s-part%d%s", (int)head, path, part, ext ? ext : "");
}

/* Every sending stream of the visit becomes a track of the new file; one that
 * cannot be (codec, too many tracks) is marked -1 so it never asks for a part. */
static size_t record_tracks(tm__visit *v, tm_recorder_track *tracks, char names[][TM__REC_NAME_LEN])
{
    size_t n = 0;
    for (guint i = 0; i < v->peers->len; i++) {
        tm__peer *p = g_ptr_array_index(v->peers, i);
        for (int k = 0; k < p->n_in; k++) {
            tm__in_stream *s = &p->in[k];
            s->rec_track1 = -1;
            /* A simulcast m-line is one track (its head's): forward.c feeds it the best layer. */
            if ((s->n_layers && s->layer != 0) || n == TM_RECORDER_MAX_TRACKS ||
                !rec_codec(s->codec, &tracks[n].codec))
                continue;
            const char *kind = s->kind == TM_MEDIA_VIDEO ? "video" : "audio";
            if (p->label)
                g_snprintf(names[n], TM__REC_NAME_LEN, "%s %s", p->label, kind);
            else
                g_snprintf(names[n], TM__REC_NAME_LEN, "%s-%s%d", p->id, kind, k);
            tracks[n].payload_type = (uint8_t)s->pt;
            tracks[n].clock_rate = s->clock;
            tracks[n].name = names[n];
            s->rec_track1 = (int)n + 1;
            n++;
        }
    }
    return n;
}

static void record_start(tm__visit *v)
{
    tm_recorder_track tracks[TM_RECORDER_MAX_TRACKS];
    char names[TM_RECORDER_MAX_TRACKS][TM__REC_NAME_LEN];
    size_t n = record_tracks(v, tracks, names);
    v->rec_part++;
    char *path = part_path(v->rec_path, v->rec_part);
    if (v->rec_part > 1)
        tm__media_post_part(v->w, v->id, v->rec_part_cb, v->rec_user, v->rec_part, path);
    char *err = NULL;
    v->rec = n ? tm_recorder_new(path, tracks, n, v->rec_has_key ? v->rec_key : NULL, &err) : NULL;
    g_free(path);
    if (!v->rec) {
        v->rec_failed = true;
        tm_warn("media.recording_failed", "visit=%s part=%d tracks=%zu", v->id, v->rec_part, n);
        post_rec_failed(v, err ? err : "no stream to record");
        g_free(err);
        return;
    }
    tm_recorder_on_failure(v->rec, rec_failed, v);
    /* A new file's video tracks start at a keyframe, and the senders
     * already there may not send one for minutes. */
    if (v->rec_part > 1)
        tm__forward_keyframes_all(v);
    tm_info("media.recording_started", "visit=%s part=%d tracks=%zu", v->id, v->rec_part, n);
}

void tm__visit_record_maybe_start(tm__visit *v, int64_t now_ms)
{
    if (!v->rec_first_ms)
        v->rec_first_ms = now_ms;
    int senders = 0;
    for (guint i = 0; i < v->peers->len; i++)
        senders += ((tm__peer *)g_ptr_array_index(v->peers, i))->n_in > 0;
    if (senders >= v->rec_expect || now_ms - v->rec_first_ms >= REC_WAIT_MS)
        record_start(v);
}

static void record_finish_part(tm__visit *v, bool last)
{
    if (v->w->stopping) {
        tm_recorder_free(v->rec);
    } else {
        rec_done_ctx *c = g_new0(rec_done_ctx, 1);
        c->w = v->w;
        c->visit_id = g_strdup(v->id);
        c->cb = v->rec_cb;
        c->user = v->rec_user;
        c->part = v->rec_part;
        c->last = last;
        v->w->rec_pending++;
        tm_recorder_finish(v->rec, rec_done, c);
    }
    v->rec = NULL;
}

void tm__visit_record_next_part(tm__visit *v)
{
    record_finish_part(v, false);
    record_start(v);
}

static void record_end(tm__visit *v)
{
    if (v->rec)
        record_finish_part(v, true);
    g_free(v->rec_path);
    v->rec_path = NULL;
    OPENSSL_cleanse(v->rec_key, sizeof v->rec_key);
}

/* ---- giving memory back ----
 *
 * glibc keeps freed memory in the arena of the thread that used it, so two
 * seconds after a visit ends (its sockets closed) or a peer's DTLS handshake
 * completes (its temporaries freed), coalesced over those close together,
 * malloc_trim hands every arena's free pages back, never on the packet path.
 * tests/bench/README.md. */

#define TRIM_DELAY_MS 2000

static _Thread_local bool trim_pending; /* this worker thread has one scheduled */

static gboolean trim_run(gpointer data)
{
    trim_pending = false;
    malloc_trim(0);
    return G_SOURCE_REMOVE;
}

void tm__worker_trim_later(tm__worker *w)
{
    if (trim_pending || w->stopping)
        return;
    trim_pending = true;
    GSource *src = g_timeout_source_new(TRIM_DELAY_MS);
    g_source_set_callback(src, trim_run, NULL, NULL);
    g_source_attach(src, w->ctx);
    g_source_unref(src);
}

static void visit_destroy(gpointer data)
{
    tm__visit *v = data;
    /* Nobody is left to rebind for; counted out before the peers' "closed". */
    v->closing = true;
    atomic_fetch_sub_explicit(&v->w->counters.visits, 1, memory_order_relaxed);
    /* Peers close last-joined first so each unbind finds fewer receivers. */
    while (v->peers->len > 0)
        tm__peer_close(g_ptr_array_index(v->peers, v->peers->len - 1), "closed");
    record_end(v);
    g_ptr_array_unref(v->peers);
    tm__worker_trim_later(v->w);
    g_free(v->id);
    g_free(v);
}

tm__worker *tm__worker_new(tm_media *m, int index, char **err)
{
    tm__worker *w = g_new0(tm__worker, 1);
    w->media = m;
    w->index = index;
    w->ctx = g_main_context_new();
    w->loop = g_main_loop_new(w->ctx, FALSE);
    w->visits = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, visit_destroy);
    w->rtx_pool = tm_rtx_pool_new(TM__RTX_POOL_KEEP);
    if (!w->rtx_pool) {
        if (err)
            *err = g_strdup("cannot start media worker: no memory");
        g_hash_table_unref(w->visits);
        g_main_loop_unref(w->loop);
        g_main_context_unref(w->ctx);
        g_free(w);
        return NULL;
    }
    char name[32];
    g_snprintf(name, sizeof name, "tm-media-%d", index);
    GError *gerr = NULL;
    worker_start st = {.w = w};
    g_mutex_init(&st.lock);
    g_cond_init(&st.cond);
    w->thread = g_thread_try_new(name, worker_main, &st, &gerr);
    if (w->thread) {
        /* Visits go to a worker only once it has warmed up. */
        g_mutex_lock(&st.lock);
        while (!st.ready)
            g_cond_wait(&st.cond, &st.lock);
        g_mutex_unlock(&st.lock);
    }
    g_mutex_clear(&st.lock);
    g_cond_clear(&st.cond);
    if (!w->thread) {
        if (err)
            *err = g_strdup_printf("cannot start media worker: %s", gerr->message);
        g_error_free(gerr);
        w->loop = (g_main_loop_unref(w->loop), NULL);
        g_hash_table_unref(w->visits);
        tm_rtx_pool_free(w->rtx_pool);
        g_main_context_unref(w->ctx);
        g_free(w);
        return NULL;
    }
    return w;
}

static gboolean worker_stop(gpointer data)
{
    tm__worker *w = data;
    w->stopping = true;
    g_hash_table_remove_all(w->visits);
    tick_stop(w);
    g_main_loop_quit(w->loop);
    return G_SOURCE_REMOVE;
}

void tm__worker_free(tm__worker *w)
{
    if (!w)
        return;
    g_main_context_invoke(w->ctx, worker_stop, w);
    g_thread_join(w->thread);
    /* Let libnice finish what its sources still hold (closing sockets), and
     * let recordings of visits closed just before finish their files (their
     * results go nowhere now), for at most 10 s. */
    while (g_main_context_iteration(w->ctx, FALSE))
        ;
    gint64 until = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    while (w->rec_pending > 0 && g_get_monotonic_time() < until) {
        g_main_context_iteration(w->ctx, FALSE);
        g_usleep(5000);
    }
    tm__ice_worker_clear(w);
    g_hash_table_unref(w->visits);
    tm_rtx_pool_free(w->rtx_pool); /* after the visits: their caches give chunks back */
    g_main_loop_unref(w->loop);
    g_main_context_unref(w->ctx);
    g_free(w);
}

tm__visit *tm__worker_visit(tm__worker *w, const char *visit_id, bool create)
{
    tm__visit *v = g_hash_table_lookup(w->visits, visit_id);
    if (v || !create)
        return v;
    v = g_new0(tm__visit, 1);
    v->id = g_strdup(visit_id);
    v->w = w;
    v->peers = g_ptr_array_new();
    g_hash_table_insert(w->visits, v->id, v);
    tick_start(w);
    atomic_fetch_add_explicit(&w->counters.visits, 1, memory_order_relaxed);
    return v;
}

void tm__worker_visit_free(tm__worker *w, tm__visit *v)
{
    g_hash_table_remove(w->visits, v->id);
    if (g_hash_table_size(w->visits) == 0)
        tick_stop(w);
}

void tm__worker_visit_release(tm__worker *w, tm__visit *v)
{
    if (v->peers->len == 0 && !v->rec_path)
        tm__worker_visit_free(w, v);
}

tm__peer *tm__visit_peer(tm__visit *v, const char *peer_id)
{
    for (guint i = 0; i < v->peers->len; i++) {
        tm__peer *p = g_ptr_array_index(v->peers, i);
        if (strcmp(p->id, peer_id) == 0)
            return p;
    }
    return NULL;
}

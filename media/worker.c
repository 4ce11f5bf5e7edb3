/*
 * worker.c - one media worker: a thread running its own GMainContext and
 * GMainLoop, owning the visits assigned to it and their peers, plus a
 * once-a-second tick for RTCP reports, REMB and statistics.
 *
 * Owns: its visits (hash by id) and, through them, every peer and each
 * visit's recorder (include/telemed/recorder.h), which it feeds decrypted RTP
 * from forward.c and finishes when the visit is closed. Everything in
 * here runs on the worker thread except tm__worker_new/free (control thread),
 * which only start and join it.
 */
#include <string.h>

#include <openssl/crypto.h>

#include "media_internal.h"
#include "telemed/log.h"

static gpointer worker_main(gpointer data)
{
    tm__worker *w = data;
    g_main_context_push_thread_default(w->ctx);
    g_main_loop_run(w->loop);
    g_main_context_pop_thread_default(w->ctx);
    return NULL;
}

static gboolean worker_tick(gpointer data)
{
    tm__worker *w = data;
    int64_t now = tm_mono_ms();
    GHashTableIter it;
    gpointer val;
    g_hash_table_iter_init(&it, w->visits);
    while (g_hash_table_iter_next(&it, NULL, &val)) {
        tm__visit *v = val;
        for (guint i = 0; i < v->peers->len; i++)
            tm__forward_tick(g_ptr_array_index(v->peers, i), now);
    }
    return G_SOURCE_CONTINUE;
}

/* ---- recording ---- */

typedef struct rec_done_ctx {
    tm__worker *w;
    char *visit_id;
    tm_media_record_cb cb;
    void *user;
} rec_done_ctx;

/* On this worker's context (the recorder's callback context). */
static void rec_done(const tm_recorder_result *res, void *user)
{
    rec_done_ctx *c = user;
    tm_info("media.recording_done",
            "visit=%s status=%d bytes=%" G_GINT64_FORMAT " duration_ms=%" G_GINT64_FORMAT
            " dropped=%" G_GUINT64_FORMAT,
            c->visit_id, res->status, res->size_bytes, res->duration_ms, res->stats.dropped);
    tm__media_post_recording(c->w, c->visit_id, c->cb, c->user, res);
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

static void record_start(tm__visit *v)
{
    tm_recorder_track tracks[TM_RECORDER_MAX_TRACKS];
    char names[TM_RECORDER_MAX_TRACKS][96];
    size_t n = 0;
    for (guint i = 0; i < v->peers->len; i++) {
        tm__peer *p = g_ptr_array_index(v->peers, i);
        for (int k = 0; k < p->n_in && n < TM_RECORDER_MAX_TRACKS; k++) {
            tm__in_stream *s = &p->in[k];
            if (!rec_codec(s->codec, &tracks[n].codec))
                continue;
            g_snprintf(names[n], sizeof names[n], "%s-%s%d", p->id,
                       s->kind == TM_MEDIA_VIDEO ? "video" : "audio", k);
            tracks[n].payload_type = (uint8_t)s->pt;
            tracks[n].clock_rate = s->clock;
            tracks[n].name = names[n];
            s->rec_track1 = (int)n + 1;
            n++;
        }
    }
    char *err = NULL;
    v->rec = n ? tm_recorder_new(v->rec_path, tracks, n, v->rec_has_key ? v->rec_key : NULL, &err)
               : NULL;
    if (!v->rec) {
        v->rec_failed = true;
        tm_warn("media.recording_failed", "visit=%s tracks=%zu", v->id, n);
        post_rec_failed(v, err ? err : "no stream to record");
        g_free(err);
        return;
    }
    tm_recorder_on_failure(v->rec, rec_failed, v);
    tm_info("media.recording_started", "visit=%s tracks=%zu", v->id, n);
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

static void record_end(tm__visit *v)
{
    if (v->rec) {
        if (v->w->stopping) {
            tm_recorder_free(v->rec);
        } else {
            rec_done_ctx *c = g_new0(rec_done_ctx, 1);
            c->w = v->w;
            c->visit_id = g_strdup(v->id);
            c->cb = v->rec_cb;
            c->user = v->rec_user;
            v->w->rec_pending++;
            tm_recorder_finish(v->rec, rec_done, c);
        }
        v->rec = NULL;
    }
    g_free(v->rec_path);
    v->rec_path = NULL;
    OPENSSL_cleanse(v->rec_key, sizeof v->rec_key);
}

static void visit_destroy(gpointer data)
{
    tm__visit *v = data;
    /* Peers close last-joined first so each unbind finds fewer receivers. */
    while (v->peers->len > 0)
        tm__peer_close(g_ptr_array_index(v->peers, v->peers->len - 1), "closed");
    record_end(v);
    g_ptr_array_unref(v->peers);
    atomic_fetch_sub_explicit(&v->w->counters.visits, 1, memory_order_relaxed);
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
    w->tick = g_timeout_source_new(1000);
    g_source_set_callback(w->tick, worker_tick, w, NULL);
    g_source_attach(w->tick, w->ctx);
    char name[32];
    g_snprintf(name, sizeof name, "tm-media-%d", index);
    GError *gerr = NULL;
    w->thread = g_thread_try_new(name, worker_main, w, &gerr);
    if (!w->thread) {
        if (err)
            *err = g_strdup_printf("cannot start media worker: %s", gerr->message);
        g_error_free(gerr);
        w->loop = (g_main_loop_unref(w->loop), NULL);
        g_source_destroy(w->tick);
        g_source_unref(w->tick);
        g_hash_table_unref(w->visits);
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
    g_source_destroy(w->tick);
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
    g_source_unref(w->tick);
    g_hash_table_unref(w->visits);
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
    atomic_fetch_add_explicit(&w->counters.visits, 1, memory_order_relaxed);
    return v;
}

void tm__worker_visit_free(tm__worker *w, tm__visit *v)
{
    g_hash_table_remove(w->visits, v->id);
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

/*
 * worker.c - one media worker: a thread running its own GMainContext and
 * GMainLoop, owning the visits assigned to it and their peers, plus a
 * once-a-second tick for RTCP reports, REMB and statistics.
 *
 * Owns: its visits (hash by id) and, through them, every peer. Everything in
 * here runs on the worker thread except tm__worker_new/free (control thread),
 * which only start and join it.
 */
#include <string.h>

#include "media_internal.h"

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

static void visit_destroy(gpointer data)
{
    tm__visit *v = data;
    /* Peers close last-joined first so each unbind finds fewer receivers. */
    while (v->peers->len > 0)
        tm__peer_close(g_ptr_array_index(v->peers, v->peers->len - 1), "closed");
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
    /* Let libnice finish what its sources still hold (closing sockets). */
    while (g_main_context_iteration(w->ctx, FALSE))
        ;
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

tm__peer *tm__visit_peer(tm__visit *v, const char *peer_id)
{
    for (guint i = 0; i < v->peers->len; i++) {
        tm__peer *p = g_ptr_array_index(v->peers, i);
        if (strcmp(p->id, peer_id) == 0)
            return p;
    }
    return NULL;
}

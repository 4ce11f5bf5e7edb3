/*
 * store_queue.c - the store thread: visit steps run off the control loop
 * (telemed/store_queue.h).
 *
 * On PostgreSQL a step waits 2-3 network round trips even pipelined
 * (store_pg.c); run on the loop, every other client's message waits behind
 * it. So the queue owns a thread with its own connection: the loop posts a
 * job, the thread runs its work and hands it back, and the loop runs the
 * completion. One thread and one FIFO each way keep jobs in the order
 * posted. Completions are drained by one source on the loop's context,
 * woken the way media workers wake it (g_main_context_wakeup), so they too
 * run in order. Nothing is shared but the two GAsyncQueues.
 *
 * On SQLite the work runs inline on the loop's handle: one local file with
 * one writer, where a step costs an fsync and no round trip, and callers
 * keep exactly the synchronous behaviour they had.
 */
#include "store_internal.h"
#include "telemed/common.h"
#include "telemed/store_queue.h"

#include <glib.h>
#include <string.h>

typedef struct job {
    tm_store_work_fn work; /* NULL: the thread stops */
    tm_store_done_fn done;
    void *data;
    GDestroyNotify free_data;
    int rc;
    char errmsg[256];
} job;

typedef struct done_source {
    GSource base;
    tm_store_queue *q;
} done_source;

struct tm_store_queue {
    tm_store *loop_store; /* SQLite: jobs run on it, inline */
    tm_store *own;        /* PostgreSQL: the thread's handle */
    GThread *thread;
    GAsyncQueue *todo; /* job *, loop -> thread */
    GAsyncQueue *done; /* job *, thread -> loop */
    GMainContext *ctx;
    GSource *src;
    unsigned pending; /* posted, not yet completed (loop only) */
};

static void job_free(job *j)
{
    if (j->free_data)
        j->free_data(j->data);
    g_free(j);
}

static void job_run(job *j, tm_store *s)
{
    j->rc = j->work(s, j->data);
    if (j->rc < 0)
        g_strlcpy(j->errmsg, tm_store_errmsg(s), sizeof(j->errmsg));
}

static gpointer store_thread(gpointer data)
{
    tm_store_queue *q = data;
    for (;;) {
        job *j = g_async_queue_pop(q->todo);
        if (!j->work) {
            g_free(j);
            return NULL;
        }
        job_run(j, q->own);
        g_async_queue_push(q->done, j);
        g_main_context_wakeup(q->ctx);
    }
}

/* ---- completions on the loop ----------------------------------------- */

static gboolean done_ready(GSource *src, gint *timeout)
{
    if (timeout)
        *timeout = -1;
    return g_async_queue_length(((done_source *)src)->q->done) > 0;
}

static gboolean done_check(GSource *src)
{
    return done_ready(src, NULL);
}

static gboolean done_dispatch(GSource *src, GSourceFunc cb, gpointer data)
{
    (void)cb;
    (void)data;
    tm_store_queue *q = ((done_source *)src)->q;
    job *j;
    while ((j = g_async_queue_try_pop(q->done))) {
        q->pending--;
        j->done(j->data, j->rc, j->errmsg);
        job_free(j);
    }
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs done_funcs = {
    .prepare = done_ready,
    .check = done_check,
    .dispatch = done_dispatch,
};

/* ---- the queue -------------------------------------------------------- */

tm_store_queue *tm_store_queue_new(tm_store *s, GMainContext *ctx, char **err)
{
    tm_store_queue *q = g_new0(tm_store_queue, 1);
    char *why = NULL;
    q->own = tm__store_open_twin(s, &why);
    if (!q->own) {
        if (why) {
            *err = g_strdup_printf("store thread: %s", why);
            g_free(why);
            g_free(q);
            return NULL;
        }
        q->loop_store = s;
        return q;
    }
    q->ctx = g_main_context_ref(ctx ? ctx : g_main_context_default());
    q->todo = g_async_queue_new();
    q->done = g_async_queue_new();
    q->src = g_source_new(&done_funcs, sizeof(done_source));
    ((done_source *)q->src)->q = q;
    g_source_attach(q->src, q->ctx);
    q->thread = g_thread_new("tm-store", store_thread, q);
    return q;
}

void tm_store_queue_post(tm_store_queue *q, tm_store_work_fn work, tm_store_done_fn done,
                         void *data, GDestroyNotify free_data)
{
    TM_ASSERT(work && done);
    job *j = g_new0(job, 1);
    *j = (job){.work = work, .done = done, .data = data, .free_data = free_data};
    if (q->loop_store) {
        job_run(j, q->loop_store);
        done(data, j->rc, j->errmsg);
        job_free(j);
        return;
    }
    q->pending++;
    g_async_queue_push(q->todo, j);
}

bool tm_store_queue_deferred(const tm_store_queue *q)
{
    return q->thread != NULL;
}

unsigned tm_store_queue_pending(const tm_store_queue *q)
{
    return q->pending;
}

void tm_store_queue_free(tm_store_queue *q)
{
    if (!q)
        return;
    if (q->thread) {
        g_async_queue_push(q->todo, g_new0(job, 1));
        g_thread_join(q->thread);
        job *j;
        while ((j = g_async_queue_try_pop(q->done)))
            job_free(j);
        g_source_destroy(q->src);
        g_source_unref(q->src);
        g_async_queue_unref(q->todo);
        g_async_queue_unref(q->done);
        g_main_context_unref(q->ctx);
    }
    tm_store_free(q->own);
    g_free(q);
}

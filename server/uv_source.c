/*
 * uv_source.c - a GSource that runs a libuv loop: GLib polls libuv's epoll
 * fd and sleeps until libuv's next timer; when either is due, one
 * non-blocking uv_run() serves whatever is ready.
 */
#include "uv_source.h"

typedef struct {
    GSource base;
    uv_loop_t *loop;
    gpointer fd_tag;
    tm_uv_after_run_fn after_run;
    void *after_run_data;
} uv_gsource;

/* Milliseconds until the loop has work that no fd will announce, -1 if none. */
static int uv_due_in_ms(uv_loop_t *loop)
{
    if (!uv_loop_alive(loop))
        return -1; /* uv_backend_timeout says 0 then, which would spin */
    /* Timers count from the time of the last uv_run. The answer is also 0
     * while libuv has fds whose watching started outside uv_run (a frame
     * queued from a GLib timer, say): those reach its epoll set only in its
     * next run, so we must not sleep on that set before it (libuv >= 1.44;
     * test_uv_source checks it). */
    uv_update_time(loop);
    return uv_backend_timeout(loop);
}

static gboolean uv_gsource_prepare(GSource *source, gint *timeout)
{
    uv_gsource *s = (uv_gsource *)source;
    *timeout = uv_due_in_ms(s->loop);
    return *timeout == 0;
}

static gboolean uv_gsource_check(GSource *source)
{
    uv_gsource *s = (uv_gsource *)source;
    if (g_source_query_unix_fd(source, s->fd_tag) & G_IO_IN)
        return TRUE;
    return uv_due_in_ms(s->loop) == 0;
}

static gboolean uv_gsource_dispatch(GSource *source, GSourceFunc callback, gpointer user_data)
{
    uv_gsource *s = (uv_gsource *)source;
    uv_run(s->loop, UV_RUN_NOWAIT);
    if (s->after_run)
        s->after_run(s->after_run_data);
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs uv_gsource_funcs = {
    .prepare = uv_gsource_prepare,
    .check = uv_gsource_check,
    .dispatch = uv_gsource_dispatch,
};

GSource *tm_uv_source_new(uv_loop_t *loop, tm_uv_after_run_fn after_run, void *data)
{
    GSource *source = g_source_new(&uv_gsource_funcs, sizeof(uv_gsource));
    uv_gsource *s = (uv_gsource *)source;
    s->loop = loop;
    s->after_run = after_run;
    s->after_run_data = data;
    s->fd_tag = g_source_add_unix_fd(source, uv_backend_fd(loop), G_IO_IN);
    g_source_set_name(source, "libuv");
    return source;
}

bool tm_uv_drain(uv_loop_t *loop, unsigned timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    while (uv_loop_alive(loop)) {
        uv_run(loop, UV_RUN_NOWAIT);
        if (!uv_loop_alive(loop))
            break;
        if (g_get_monotonic_time() >= deadline)
            return false;
        g_usleep(1000);
    }
    return true;
}

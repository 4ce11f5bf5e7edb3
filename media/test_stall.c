/*
 * test_stall.c - test builds only (TM_TEST_HOOKS): SIGUSR2 to the server
 * blocks media worker 0 (where a server's first visit lives) for
 * TELEMED_TEST_STALL_MS (default 5500), as a starved machine did to it, so
 * the net tests can show a peer recovers from a worker that could not run.
 *
 * Owns: the signal's GSource on the control context; the stall itself runs
 * on the worker.
 */
#include <signal.h>
#include <stdlib.h>

#include <glib-unix.h>

#include "media_internal.h"
#include "telemed/log.h"

#define STALL_DEFAULT_MS 5500
#define STALL_MAX_MS 60000

static gboolean stall_run(gpointer data)
{
    tm__worker *w = data;
    const char *env = g_getenv("TELEMED_TEST_STALL_MS");
    long ms = env ? strtol(env, NULL, 10) : STALL_DEFAULT_MS;
    ms = CLAMP(ms, 0, STALL_MAX_MS);
    tm_info("media.test_stall", "worker=%d ms=%ld", w->index, ms);
    g_usleep((gulong)ms * 1000);
    tm_info("media.test_stall_end", "worker=%d", w->index);
    return G_SOURCE_REMOVE;
}

static gboolean on_sigusr2(gpointer data)
{
    tm_media *m = data;
    if (m->n_workers > 0)
        g_main_context_invoke(m->workers[0]->ctx, stall_run, m->workers[0]);
    return G_SOURCE_CONTINUE;
}

void tm__test_stall_start(tm_media *m)
{
    m->test_stall = g_unix_signal_source_new(SIGUSR2);
    g_source_set_callback(m->test_stall, on_sigusr2, m, NULL);
    g_source_attach(m->test_stall, m->sink->control);
    tm_info("media.test_hooks", "stall_signal=SIGUSR2");
}

void tm__test_stall_stop(tm_media *m)
{
    if (!m->test_stall)
        return;
    g_source_destroy(m->test_stall);
    g_source_unref(m->test_stall);
    m->test_stall = NULL;
}

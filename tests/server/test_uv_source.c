/*
 * test_uv_source.c - a libuv loop run by a GLib main loop: a uv timer fires
 * through GLib and not early; an fd watched from a GLib callback (outside
 * uv_run, so not yet in libuv's epoll set) is still served at once; the
 * after-run hook runs; an idle loop costs no wake-ups; draining stops when
 * the handles are closed and gives up on a loop that stays busy.
 */
#include "server/uv_source.h"
#include "tm_test.h"

#include <unistd.h>

typedef struct {
    GMainLoop *glib;
    uv_loop_t uv;
    GSource *src;
    int after_runs;
    int fired;
    gint64 fired_at_us;
} fixture;

static void after_run(void *data)
{
    ((fixture *)data)->after_runs++;
}

static void setup(fixture *f)
{
    memset(f, 0, sizeof(*f));
    f->glib = g_main_loop_new(NULL, FALSE);
    CHECK_EQ_INT(uv_loop_init(&f->uv), 0);
    f->src = tm_uv_source_new(&f->uv, after_run, f);
    g_source_attach(f->src, NULL);
}

static void teardown(fixture *f)
{
    CHECK(tm_uv_drain(&f->uv, 1000));
    g_source_destroy(f->src);
    g_source_unref(f->src);
    CHECK_EQ_INT(uv_loop_close(&f->uv), 0);
    g_main_loop_unref(f->glib);
}

static gboolean give_up(gpointer data)
{
    fixture *f = data;
    f->fired = -1;
    g_main_loop_quit(f->glib);
    return G_SOURCE_REMOVE;
}

/* Runs the GLib loop until a test callback quits it, or 2 s pass. */
static void run_glib(fixture *f)
{
    guint guard = g_timeout_add(2000, give_up, f);
    g_main_loop_run(f->glib);
    if (f->fired != -1)
        g_source_remove(guard);
}

static void on_timer(uv_timer_t *t)
{
    fixture *f = t->data;
    f->fired++;
    f->fired_at_us = g_get_monotonic_time();
    g_main_loop_quit(f->glib);
}

static void test_timer_fires_through_glib(void)
{
    fixture f;
    setup(&f);
    uv_timer_t t;
    uv_timer_init(&f.uv, &t);
    t.data = &f;
    uv_update_time(&f.uv); /* libuv counts timers from its cached time */
    gint64 start = g_get_monotonic_time();
    uv_timer_start(&t, on_timer, 50, 0);
    run_glib(&f);
    CHECK_EQ_INT(f.fired, 1);
    /* libuv's clock is CLOCK_MONOTONIC_COARSE, a tick (up to 4 ms) behind. */
    CHECK(f.fired_at_us - start >= 45 * 1000);
    CHECK(f.after_runs >= 1);
    uv_close((uv_handle_t *)&t, NULL);
    teardown(&f);
}

typedef struct {
    fixture *f;
    uv_poll_t poll, quiet;
    int fds[2], quiet_fds[2];
} pipe_case;

static void on_readable(uv_poll_t *p, int status, int events)
{
    pipe_case *c = p->data;
    char b;
    CHECK_EQ_INT(status, 0);
    CHECK(events & UV_READABLE);
    CHECK_EQ_INT(read(c->fds[0], &b, 1), 1);
    c->f->fired++;
    g_main_loop_quit(c->f->glib);
}

/* From GLib, outside uv_run: libuv queues the new watcher and would add it
 * to epoll only on its next run. The source must not sleep meanwhile. */
static gboolean watch_and_write(gpointer data)
{
    pipe_case *c = data;
    uv_poll_start(&c->poll, UV_READABLE, on_readable);
    CHECK_EQ_INT(write(c->fds[1], "x", 1), 1);
    return G_SOURCE_REMOVE;
}

static void test_fd_watched_outside_uv_run(void)
{
    fixture f;
    setup(&f);
    pipe_case c = {.f = &f};
    CHECK_EQ_INT(pipe(c.fds), 0);
    CHECK_EQ_INT(pipe(c.quiet_fds), 0);
    CHECK_EQ_INT(uv_poll_init(&f.uv, &c.poll, c.fds[0]), 0);
    c.poll.data = &c;
    /* A loop that is alive and has run, its epoll set up to date, like lws
     * with its listening socket; then a new fd is watched from GLib. */
    CHECK_EQ_INT(uv_poll_init(&f.uv, &c.quiet, c.quiet_fds[0]), 0);
    uv_poll_start(&c.quiet, UV_READABLE, on_readable);
    uv_run(&f.uv, UV_RUN_NOWAIT);
    g_idle_add(watch_and_write, &c);
    run_glib(&f);
    CHECK_EQ_INT(f.fired, 1); /* not -1: served before the 2 s guard */
    uv_close((uv_handle_t *)&c.poll, NULL);
    uv_close((uv_handle_t *)&c.quiet, NULL);
    teardown(&f);
    for (int i = 0; i < 2; i++) {
        close(c.fds[i]);
        close(c.quiet_fds[i]);
    }
}

static gboolean quit_later(gpointer data)
{
    g_main_loop_quit(((fixture *)data)->glib);
    return G_SOURCE_REMOVE;
}

static void test_idle_loop_does_not_spin(void)
{
    fixture f;
    setup(&f);
    /* An empty loop (no handles), then one with a timer an hour away. */
    g_timeout_add(200, quit_later, &f);
    g_main_loop_run(f.glib);
    CHECK_EQ_INT(f.after_runs, 0);
    uv_timer_t t;
    uv_timer_init(&f.uv, &t);
    t.data = &f;
    uv_timer_start(&t, on_timer, 3600 * 1000, 0);
    g_timeout_add(200, quit_later, &f);
    g_main_loop_run(f.glib);
    CHECK(f.after_runs <= 1); /* at most the run that armed it */
    CHECK_EQ_INT(f.fired, 0);
    uv_close((uv_handle_t *)&t, NULL);
    teardown(&f);
}

static void never(uv_timer_t *t)
{
    CHECK(t == NULL);
}

static void test_drain_gives_up_on_a_busy_loop(void)
{
    uv_loop_t uv;
    CHECK_EQ_INT(uv_loop_init(&uv), 0);
    uv_timer_t t;
    uv_timer_init(&uv, &t);
    uv_timer_start(&t, never, 3600 * 1000, 0);
    gint64 start = g_get_monotonic_time();
    CHECK(!tm_uv_drain(&uv, 50));
    CHECK(g_get_monotonic_time() - start >= 50 * 1000);
    uv_close((uv_handle_t *)&t, NULL);
    CHECK(tm_uv_drain(&uv, 1000));
    CHECK_EQ_INT(uv_loop_close(&uv), 0);
}

int main(void)
{
    RUN(test_timer_fires_through_glib);
    RUN(test_fd_watched_outside_uv_run);
    RUN(test_idle_loop_does_not_spin);
    RUN(test_drain_gives_up_on_a_busy_loop);
    TEST_DONE();
}

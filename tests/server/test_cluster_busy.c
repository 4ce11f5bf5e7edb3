/*
 * test_cluster_busy.c - a busy node is not a dead node (issue 19, beat19).
 *
 * Two nodes on a PostgreSQL the test starts (tests/support/pg.sh): node-a
 * runs in a child process (this program again, with --node), node-b in
 * this one. node-a's control loop is blocked for 15 s by a command the
 * child reads on that very loop (its other threads run on, as under a
 * real burst of work): node-b must not take its visit over, and must see
 * it as slow with its loop lag. Then node-a is killed with SIGKILL: node-b
 * takes the visit over once the dead time has passed, not before. A node
 * whose loop is blocked longer than its hung_after_ms is taken over while
 * still blocked: a loop stuck for good is noticed.
 */
#include "telemed/cluster.h"
#include "telemed/common.h"
#include "pg_fixture.h"
#include "tm_spin.h"
#include "store_visits.h"
#include "tm_test.h"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <glib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define BEAT_MS 200
#define DEAD_AFTER_MS 2000
#define BLOCK_MS 15000

static tm_cluster *node_on(const char *id, tm_store *store, const char *url, int hung_after_ms)
{
    char public_url[128];
    g_snprintf(public_url, sizeof(public_url), "https://%s.test:8443", id);
    char *err = NULL;
    tm_cluster *c = tm_cluster_new(&(tm_cluster_options){.node_id = id,
                                                         .public_url = public_url,
                                                         .store = store,
                                                         .bus_url = url,
                                                         .heartbeat_ms = BEAT_MS,
                                                         .dead_after_ms = DEAD_AFTER_MS,
                                                         .hung_after_ms = hung_after_ms},
                                   &err);
    if (!c)
        fprintf(stderr, "cluster %s: %s\n", id, err);
    CHECK(c != NULL);
    return c;
}

/* ---- the child: node-a, whose loop obeys "block <ms>" on stdin ---------- */

static gboolean on_command(gint fd, GIOCondition cond, gpointer loop)
{
    (void)cond;
    char line[64];
    ssize_t n = read(fd, line, sizeof(line) - 1);
    if (n <= 0) {
        g_main_loop_quit(loop);
        return G_SOURCE_REMOVE;
    }
    line[n] = '\0';
    int ms = 0;
    if (sscanf(line, "block %d", &ms) == 1) {
        printf("blocking\n");
        fflush(stdout);
        g_usleep((gulong)ms * 1000); /* this loop only: the process's threads go on */
        printf("unblocked\n");
        fflush(stdout);
    }
    return G_SOURCE_CONTINUE;
}

static int run_node(const char *url, const char *id, int hung_after_ms)
{
    char *err = NULL;
    tm_store *s = tm_store_open(url, "hosp-1", &err);
    if (!s) {
        fprintf(stderr, "store: %s\n", err);
        return 1;
    }
    tm_cluster *c = node_on(id, s, url, hung_after_ms);
    GMainLoop *loop = g_main_loop_new(NULL, FALSE);
    g_unix_fd_add(STDIN_FILENO, G_IO_IN | G_IO_HUP, on_command, loop);
    printf("ready\n");
    fflush(stdout);
    g_main_loop_run(loop);
    g_main_loop_unref(loop);
    tm_cluster_free(c);
    tm_store_free(s);
    return 0;
}

/* ---- the parent: node-b, watching ----------------------------------------- */

typedef struct child {
    GPid pid;
    int in, out;
    GString *said; /* everything it printed */
} child;

static void child_start(child *ch, const char *self, const char *url, const char *hung_after_ms)
{
    char *argv[] = {(char *)self,     (char *)"--node",      (char *)url,
                    (char *)"node-a", (char *)hung_after_ms, NULL};
    GError *e = NULL;
    gboolean ok = g_spawn_async_with_pipes(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL,
                                           &ch->pid, &ch->in, &ch->out, NULL, &e);
    if (!ok)
        fprintf(stderr, "spawn: %s\n", e->message);
    CHECK(ok);
    CHECK(fcntl(ch->out, F_SETFL, O_NONBLOCK) == 0);
    ch->said = g_string_new(NULL);
}

static bool child_said(child *ch, const char *line)
{
    char buf[256];
    ssize_t n;
    while ((n = read(ch->out, buf, sizeof(buf))) > 0)
        g_string_append_len(ch->said, buf, n);
    return strstr(ch->said->str, line) != NULL;
}

typedef struct watch {
    child *ch;
    tm_store *store;
    tm_cluster *b;
    const char *visit_id;
    const char *until; /* the child's line that ends the watch */
    bool moved;        /* the visit left node-a while watched */
    int64_t worst_lag; /* node-a's loop lag, as node-b read it */
    bool metrics_said; /* node-b's /metrics text named node-a slow */
} watch;

static int64_t lag_of(tm_cluster *b, const char *id)
{
    tm_node_info *live = NULL;
    size_t n = 0;
    int64_t lag = -1;
    if (tm_cluster_live_nodes(b, &live, &n) == 0)
        for (size_t i = 0; i < n; i++)
            if (strcmp(live[i].id, id) == 0)
                lag = live[i].loop_lag_ms;
    g_free(live);
    return lag;
}

static bool watched(void *data)
{
    watch *w = data;
    char at[64];
    CHECK_EQ_INT(tm_store_visit_media_node(w->store, w->visit_id, at), 0);
    if (strcmp(at, "node-a") != 0)
        w->moved = true;
    w->worst_lag = MAX(w->worst_lag, lag_of(w->b, "node-a"));
    GString *m = g_string_new(NULL);
    tm_cluster_metrics(w->b, m);
    const char *line = strstr(m->str, "telemed_cluster_peer_loop_lag_ms{peer=\"node-a\"} ");
    if (line && atoll(strchr(line, ' ') + 1) >= 5000)
        w->metrics_said = true;
    g_string_free(m, TRUE);
    return w->moved || child_said(w->ch, w->until);
}

typedef struct released {
    tm_store *store;
    const char *visit_id;
} released;

static bool visit_released(void *data)
{
    released *r = data;
    char at[64];
    CHECK_EQ_INT(tm_store_visit_media_node(r->store, r->visit_id, at), 0);
    return at[0] == '\0';
}

static bool said_ready(void *data)
{
    return child_said(data, "ready\n");
}

static void test_busy_not_dead_killed_is(const char *self)
{
    char *url = pg_fixture_url("busy");
    char *err = NULL;
    tm_store *s = tm_store_open(url, "hosp-1", &err);
    CHECK(s != NULL);
    CHECK_EQ_INT(tm_store_dept_put(s, "cardio", "Cardiology"), 0);
    CHECK_EQ_INT(tm_store_doctor_put(s, "d1", "Dr One", "cardio", NULL, NULL), 0);

    child ch = {0};
    child_start(&ch, self, url, "0");
    CHECK(spin_until(said_ready, &ch));
    tm_cluster *b = node_on("node-b", s, url, 0);
    tm_visit v;
    visit_on(s, "p-busy", "node-a", &v);

    /* node-a's loop stops for 15 s, seven times the dead time. */
    CHECK(write(ch.in, "block 15000\n", 12) == 12);
    watch w = {.ch = &ch, .store = s, .b = b, .visit_id = v.id, .until = "unblocked\n"};
    int64_t blocked_at = tm_now_ms();
    CHECK(spin_until(watched, &w));
    CHECK(!w.moved);
    CHECK(tm_now_ms() - blocked_at >= BLOCK_MS - 1000);
    CHECK(w.worst_lag >= 10000);
    CHECK(w.metrics_said);
    tm_cluster_stats st;
    tm_cluster_stats_get(b, &st);
    CHECK(st.thread_beats > 0);

    /* Now it dies: taken over once its last beat is DEAD_AFTER_MS old. */
    int64_t killed_at = tm_now_ms();
    CHECK(kill(ch.pid, SIGKILL) == 0);
    CHECK(waitpid(ch.pid, NULL, 0) == ch.pid);
    released r = {s, v.id};
    CHECK(spin_until(visit_released, &r));
    CHECK(tm_now_ms() - killed_at >= DEAD_AFTER_MS - BEAT_MS - 100);
    CHECK_EQ_INT((int)lag_of(b, "node-a"), -1);

    tm_cluster_free(b);
    close(ch.in);
    close(ch.out);
    g_string_free(ch.said, TRUE);
    tm_store_free(s);
    g_free(url);
}

/* A loop late by more than hung_after_ms is stuck, not busy: the node stops
 * beating and is taken over while its loop is still blocked. */
static void test_hung_taken_over(const char *self)
{
    char *url = pg_fixture_url("hung");
    char *err = NULL;
    tm_store *s = tm_store_open(url, "hosp-1", &err);
    CHECK(s != NULL);
    CHECK_EQ_INT(tm_store_dept_put(s, "cardio", "Cardiology"), 0);
    CHECK_EQ_INT(tm_store_doctor_put(s, "d1", "Dr One", "cardio", NULL, NULL), 0);
    child ch = {0};
    child_start(&ch, self, url, "4000");
    CHECK(spin_until(said_ready, &ch));
    tm_cluster *b = node_on("node-b", s, url, 0);
    tm_visit v;
    visit_on(s, "p-hung", "node-a", &v);

    CHECK(write(ch.in, "block 15000\n", 12) == 12);
    int64_t blocked_at = tm_now_ms();
    watch w = {.ch = &ch, .store = s, .b = b, .visit_id = v.id, .until = "unblocked\n"};
    CHECK(spin_until(watched, &w));
    CHECK(w.moved);
    CHECK(!child_said(&ch, "unblocked\n"));
    CHECK(tm_now_ms() - blocked_at >= 4000);

    CHECK(kill(ch.pid, SIGKILL) == 0);
    CHECK(waitpid(ch.pid, NULL, 0) == ch.pid);
    tm_cluster_free(b);
    close(ch.in);
    close(ch.out);
    g_string_free(ch.said, TRUE);
    tm_store_free(s);
    g_free(url);
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--node") == 0)
        return run_node(argv[2], argv[3], atoi(argv[4]));
    signal(SIGPIPE, SIG_IGN);
    pg_fixture_start();
    test_busy_not_dead_killed_is(argv[0]);
    test_hung_taken_over(argv[0]);
    printf("test_cluster_busy: ok\n");
    return 0;
}

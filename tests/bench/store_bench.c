/*
 * store_bench.c - the cost of a visit step on PostgreSQL against SQLite in
 * the same run (issue 19): N visits through check-in, offer, accept, end
 * and rating on each engine, timing every store call. A store call runs on
 * the control loop and blocks it for its whole duration, so each figure is
 * also how long the loop waits for that step; a node's heartbeat tick is
 * timed too. Run by hand; prints a table.
 *
 *   store_bench [--visits N] [--pg-delay-ms X]
 *
 * --visits: default 500. --pg-delay-ms: PostgreSQL is reached through a
 * loopback relay (delay_relay.h) that holds every chunk X ms (0..100,
 * fractions allowed) each way, as a network would, and counts the round
 * trips of each step.
 *
 * SQLite: a file in a temporary directory (WAL, synchronous=FULL, as the
 * server runs it). PostgreSQL: tests/support/pg.sh in a temporary
 * directory (fsync off there: the figures are the engine's and the round
 * trips', not the disk's).
 */
#include "delay_relay.h"
#include "telemed/common.h"
#include "telemed/store.h"

#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { STEP_CHECKIN, STEP_OFFER, STEP_ACCEPT, STEP_END, STEP_RATE, STEP_HEARTBEAT, NSTEPS };
enum { VISIT_STEPS = STEP_HEARTBEAT };
static const char *const step_names[NSTEPS] = {"checkin", "offer", "accept",
                                               "end",     "rate",  "heartbeat"};

/* The relay in front of PostgreSQL, when there is one: its round trips. */
static delay_relay *relay;

static uint64_t round_trips(void)
{
    return relay ? delay_relay_round_trips(relay) : 0;
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double quantile(double *v, int n, double q)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    int i = (int)(q * (n - 1) + 0.5);
    return v[i];
}

static void die(const char *what, tm_store *s)
{
    fprintf(stderr, "store_bench: %s: %s\n", what, s ? tm_store_errmsg(s) : "");
    exit(1);
}

/* The store calls of a node's heartbeat tick (server/cluster.c): its row,
 * the live nodes, the takeover of what dead ones held. */
static void heartbeat(tm_store *s, int i)
{
    tm_node_info me = {.id = "bench-node", .public_url = "https://127.0.0.1:1/"};
    int64_t now = tm_now_ms();
    me.started_at_ms = me.heartbeat_ms = now;
    me.visits = i % 7;
    tm_node_info *nodes = NULL;
    size_t n = 0;
    json_t *released = NULL;
    int leases = 0;
    if (tm_store_node_heartbeat(s, &me) < 0 || tm_store_nodes_live(s, now, 6000, &nodes, &n) < 0 ||
        tm_store_node_takeover(s, now, 6000, &released, &leases) < 0)
        die("heartbeat", s);
    g_free(nodes);
    json_decref(released);
}

/* n visits on s; lat[step][i] in microseconds, rts[step] the round trips
 * summed over the visits. */
static void run_visits(tm_store *s, int n, double *lat[NSTEPS], uint64_t rts[NSTEPS])
{
    if (tm_store_dept_put(s, "cardio", "Cardiology") < 0 ||
        tm_store_doctor_put(s, "d1", "Dr One", "cardio", "LIC1", NULL) < 0)
        die("seed", s);
    for (int i = 0; i < n; i++) {
        tm_visit v = {0};
        snprintf(v.patient_id, sizeof(v.patient_id), "p-%d", i);
        g_strlcpy(v.dept_id, "cardio", sizeof(v.dept_id));
        g_strlcpy(v.kind, "follow_up", sizeof(v.kind));
        v.checkin_ms = tm_now_ms();
        double t[NSTEPS + 1];
        uint64_t rt[NSTEPS + 1];
        rt[0] = round_trips();
        t[0] = now_us();
        if (tm_store_visit_checkin(s, &v, "bench") < 0)
            die("checkin", s);
        t[1] = now_us();
        rt[1] = round_trips();
        if (tm_store_visit_offer(s, v.id, "d1", tm_now_ms()) < 0)
            die("offer", s);
        t[2] = now_us();
        rt[2] = round_trips();
        if (tm_store_visit_accept(s, v.id, "d1", "bench", tm_now_ms()) < 0)
            die("accept", s);
        t[3] = now_us();
        rt[3] = round_trips();
        if (tm_store_visit_end(s, v.id, "completed", "d1", tm_now_ms()) < 0)
            die("end", s);
        t[4] = now_us();
        rt[4] = round_trips();
        if (tm_store_rating_add(s, v.id, v.patient_id, 5, NULL, tm_now_ms()) < 0)
            die("rate", s);
        t[5] = now_us();
        rt[5] = round_trips();
        heartbeat(s, i);
        t[6] = now_us();
        rt[6] = round_trips();
        for (int k = 0; k < NSTEPS; k++) {
            lat[k][i] = t[k + 1] - t[k];
            rts[k] += rt[k + 1] - rt[k];
        }
    }
}

static void report(const char *engine, double *lat[NSTEPS], const uint64_t rts[NSTEPS], int n,
                   bool counted)
{
    double visit_total = 0, visit_rts = 0;
    for (int k = 0; k < NSTEPS; k++) {
        double sum = 0, max = 0;
        for (int i = 0; i < n; i++) {
            sum += lat[k][i];
            max = lat[k][i] > max ? lat[k][i] : max;
        }
        if (k < VISIT_STEPS) {
            visit_total += sum / n;
            visit_rts += (double)rts[k] / n;
        }
        printf("%-10s %-9s p50 %8.0f us  p99 %8.0f us  max %8.0f us  mean %8.0f us", engine,
               step_names[k], quantile(lat[k], n, 0.5), quantile(lat[k], n, 0.99), max, sum / n);
        if (counted)
            printf("  round trips %5.1f", (double)rts[k] / n);
        printf("\n");
    }
    printf("%-10s visit     mean %8.0f us for the five steps", engine, visit_total);
    if (counted)
        printf(", %.1f round trips", visit_rts);
    printf("\n");
}

static char *pg_sh(const char *cmd, const char *dir)
{
    char *argv[] = {(char *)"/bin/sh", (char *)TM_PG_SH, (char *)cmd, (char *)dir, NULL};
    char *out = NULL;
    int status = 0;
    if (!g_spawn_sync(NULL, argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, NULL, &status, NULL) ||
        !g_spawn_check_wait_status(status, NULL)) {
        g_free(out);
        return NULL;
    }
    return g_strstrip(out);
}

static void bench(const char *engine, const char *db, int n, bool counted)
{
    char *err = NULL;
    tm_store *s = tm_store_open(db, "bench", &err);
    if (!s) {
        fprintf(stderr, "store_bench: open %s: %s\n", engine, err);
        exit(1);
    }
    double *lat[NSTEPS];
    uint64_t rts[NSTEPS] = {0};
    for (int k = 0; k < NSTEPS; k++)
        lat[k] = g_new0(double, n);
    run_visits(s, n, lat, rts);
    report(engine, lat, rts, n, counted);
    for (int k = 0; k < NSTEPS; k++)
        g_free(lat[k]);
    tm_store_free(s);
}

/* The URL of pg.sh (postgresql://telemed@127.0.0.1:PORT/telemed) through
 * a relay adding delay_ms each way. */
static char *relayed_url(const char *url, double delay_ms)
{
    const char *at = strstr(url, "@127.0.0.1:");
    int port = at ? atoi(at + strlen("@127.0.0.1:")) : 0, relay_port = 0;
    relay = delay_relay_start(port, (int64_t)(delay_ms * 1000), &relay_port);
    if (!relay)
        return NULL;
    const char *path = strchr(at + 1, '/');
    return g_strdup_printf("%.*s@127.0.0.1:%d%s", (int)(at - url), url, relay_port,
                           path ? path : "");
}

int main(int argc, char **argv)
{
    int n = 500;
    double delay_ms = -1;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--visits") == 0 && i + 1 < argc)
            n = atoi(argv[++i]);
        else if (strcmp(argv[i], "--pg-delay-ms") == 0 && i + 1 < argc)
            delay_ms = g_ascii_strtod(argv[++i], NULL);
        else
            n = 0;
    if (n < 1 || n > 100000 || (delay_ms != -1 && (delay_ms < 0 || delay_ms > 100))) {
        fprintf(stderr, "usage: store_bench [--visits 1..100000] [--pg-delay-ms 0..100]\n");
        return 2;
    }
    char *dir = g_dir_make_tmp("tm-store-bench-XXXXXX", NULL);
    char *file = g_build_filename(dir, "bench.db", NULL);
    char *url = pg_sh("start", dir);
    if (!url) {
        fprintf(stderr, "store_bench: cannot start PostgreSQL (tests/support/pg.sh)\n");
        return 1;
    }
    char *pg_url = delay_ms >= 0 ? relayed_url(url, delay_ms) : g_strdup(url);
    if (!pg_url)
        return 1;
    printf("%d visits per engine, times per store call (the control loop waits as long)\n", n);
    if (relay)
        printf("postgresql through a relay adding %.2f ms each way\n", delay_ms);
    bench("sqlite", file, n, false);
    bench("postgresql", pg_url, n, relay != NULL);
    delay_relay_stop(relay);
    g_free(pg_url);
    g_free(pg_sh("stop", dir));
    char *cmd = g_strdup_printf("rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "store_bench: cannot remove %s\n", dir);
    g_free(cmd);
    g_free(url);
    g_free(file);
    g_free(dir);
    return 0;
}

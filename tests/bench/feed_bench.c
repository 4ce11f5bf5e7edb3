/*
 * feed_bench.c - how fast the regulator feed delivers, run by hand:
 *
 *   build-x/feed_bench [telemed config flags, e.g. --feed-batch 200]
 *
 * Starts the stand-in regulator (node tests/feed/regulator.mjs) on a free
 * loopback port unless --feed-url is given (then that endpoint must offer
 * the same /__admin/state), opens a fresh store in a temp directory and
 * runs the real feed on a GMainLoop. Two figures:
 *
 *  1. throughput: BENCH_EVENTS (20000) outbox rows of BENCH_EVENTS/5 visits
 *     already queued (a backlog after an outage), time until all delivered;
 *     target >= 5,000 events/s.
 *  2. delay: a steady BENCH_RATE (100) full visits per second for
 *     BENCH_SECONDS (10) s through the store API (5 steps, 5 events each);
 *     delay = regulator's receive time - the event's occurred_at, p50/p99;
 *     target p99 < 1 s.
 *
 * Environment: BENCH_EVENTS, BENCH_RATE, BENCH_SECONDS. Prints figures; the
 * exit code says only whether the run worked, never whether it was fast.
 */
#include "telemed/common.h"
#include "telemed/config.h"
#include "telemed/feed.h"
#include "telemed/log.h"
#include "telemed/store.h"

#include <curl/curl.h>
#include <signal.h>
#include <glib.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef TM_SRC_DIR
#define TM_SRC_DIR "."
#endif

typedef struct bench {
    tm_store *store;
    tm_feed *feed;
    GMainLoop *loop;
    int64_t target_delivered;
    int visits_left;
    int64_t visit_no;
    int64_t done_at;
    int64_t made_at; /* when the last steady visit was written */
    int64_t phase_start, made, rate;
} bench;

static int env_int(const char *name, int dflt)
{
    const char *v = getenv(name);
    return v && *v ? atoi(v) : dflt;
}

static int64_t delivered(bench *b)
{
    tm_outbox_stats st;
    return tm_outbox_stats_get(b->store, &st) == 0 ? st.delivered : -1;
}

static gboolean on_check(gpointer user)
{
    bench *b = user;
    int64_t pending = -1;
    /* count(pending) walks the (state, ...) index: cheap, unlike full stats. */
    if (b->visits_left == 0 && tm_store_outbox_count(b->store, "pending", &pending) == 0 &&
        pending == 0 && delivered(b) >= b->target_delivered) {
        b->done_at = tm_mono_ms();
        g_main_loop_quit(b->loop);
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

static void full_visit(bench *b)
{
    tm_visit v;
    memset(&v, 0, sizeof(v));
    snprintf(v.patient_id, sizeof(v.patient_id), "pat-%lld", (long long)++b->visit_no);
    snprintf(v.dept_id, sizeof(v.dept_id), "cardio");
    snprintf(v.kind, sizeof(v.kind), "follow_up");
    v.checkin_ms = tm_now_ms();
    if (tm_store_visit_checkin(b->store, &v, "bench") < 0 ||
        tm_store_visit_offer(b->store, v.id, "doc-1", tm_now_ms()) < 0 ||
        tm_store_visit_accept(b->store, v.id, "doc-1", "bench", tm_now_ms()) < 0 ||
        tm_store_visit_end(b->store, v.id, "completed", "doc-1", tm_now_ms()) < 0 ||
        tm_store_note_save(b->store, v.id, "doc-1", "n", "I10", true, tm_now_ms()) < 0 ||
        tm_store_rating_add(b->store, v.id, v.patient_id, 5, NULL, tm_now_ms()) < 0) {
        fprintf(stderr, "feed_bench: store: %s\n", tm_store_errmsg(b->store));
        exit(1);
    }
    tm_feed_kick(b->feed);
}

/* Keeps the visit rate steady: each tick makes the visits owed by the
 * clock since the phase started, so timer drift does not lower the rate. */
static gboolean on_visit_tick(gpointer user)
{
    bench *b = user;
    int64_t owed = (tm_mono_ms() - b->phase_start) * b->rate / 1000 - b->made;
    /* At most two per tick: the loop must stay free for the feed, as the
     * server's loop is between visit steps. */
    if (owed > 2)
        owed = 2;
    while (owed-- > 0 && b->visits_left > 0) {
        b->visits_left--;
        b->made++;
        full_visit(b);
    }
    if (b->visits_left > 0)
        return G_SOURCE_CONTINUE;
    b->made_at = tm_mono_ms();
    return G_SOURCE_REMOVE;
}

/* A backlog: n rows of n/5 visits with a real payload, in one transaction
 * on a connection of the bench's own (a backlog is not something the store
 * makes in one go). */
static void fill_backlog(bench *b, const char *db_path, int n)
{
    char *payload = NULL;
    {
        tm_visit v;
        memset(&v, 0, sizeof(v));
        snprintf(v.patient_id, sizeof(v.patient_id), "pat-template");
        snprintf(v.dept_id, sizeof(v.dept_id), "cardio");
        snprintf(v.kind, sizeof(v.kind), "follow_up");
        v.checkin_ms = tm_now_ms();
        tm_store_visit_checkin(b->store, &v, "bench");
        tm_store_visit_offer(b->store, v.id, "doc-1", tm_now_ms());
        tm_store_visit_accept(b->store, v.id, "doc-1", "bench", tm_now_ms());
        tm_store_visit_end(b->store, v.id, "completed", "doc-1", tm_now_ms());
        tm_outbox_event *ev = NULL;
        size_t got = 0;
        tm_outbox_next_batch(b->store, tm_now_ms(), 1000, &ev, &got);
        for (size_t i = 0; i < got; i++)
            if (strcmp(ev[i].visit_id, v.id) == 0 && strcmp(ev[i].type, "visit.ended") == 0)
                payload = strdup(ev[i].payload);
        tm_outbox_events_free(ev, got);
    }
    sqlite3 *db = NULL;
    sqlite3_open(db_path, &db);
    static const char *const types[] = {"visit.checked_in", "visit.started", "visit.ended",
                                        "visit.note_signed", "visit.rated"};
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(db,
                       "INSERT INTO outbox(event_id, type, visit_id, occurred_at, payload)"
                       " VALUES(?1, ?2, ?3, ?4, ?5)",
                       -1, &st, NULL);
    for (int i = 0; i < n; i++) {
        char id[37], visit[64];
        tm_uuid4(id);
        snprintf(visit, sizeof(visit), "v-backlog-%d", i / 5);
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, types[i % 5], -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, visit, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 4, tm_now_ms());
        sqlite3_bind_text(st, 5, payload, -1, SQLITE_STATIC);
        sqlite3_step(st);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(db);
    free(payload);
}

static size_t collect(char *p, size_t size, size_t nmemb, void *user)
{
    g_string_append_len(user, p, (gssize)(size * nmemb));
    return size * nmemb;
}

static int64_t parse_rfc3339_ms(const char *s)
{
    struct tm tm;
    int ms = 0;
    memset(&tm, 0, sizeof(tm));
    if (sscanf(s, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Delay figures of the events of the visits made by the steady phase. */
static void report_delays(const char *state_url)
{
    GString *body = g_string_new(NULL);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, state_url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    json_t *st = rc == CURLE_OK ? json_loadb(body->str, body->len, 0, NULL) : NULL;
    g_string_free(body, TRUE);
    json_t *events = json_object_get(st, "events");
    size_t n = 0, i;
    int64_t *d = g_new0(int64_t, json_array_size(events) + 1);
    json_t *ev;
    json_array_foreach(events, i, ev)
    {
        const char *visit = json_string_value(json_object_get(ev, "visit_id"));
        if (!visit || strncmp(visit, "v-backlog", 9) == 0)
            continue;
        int64_t occurred = parse_rfc3339_ms(json_string_value(json_object_get(ev, "occurred_at")));
        int64_t received = json_integer_value(json_object_get(ev, "received_at"));
        if (occurred && received)
            d[n++] = received - occurred;
    }
    qsort(d, n, sizeof(*d), cmp_i64);
    if (n)
        printf("delay: events=%zu p50=%lld ms p99=%lld ms max=%lld ms (target p99 < 1000 ms)\n", n,
               (long long)d[n / 2], (long long)d[(n * 99) / 100], (long long)d[n - 1]);
    else
        printf("delay: no events found at %s\n", state_url);
    g_free(d);
    json_decref(st);
}

int main(int argc, char **argv)
{
    tm_config cfg;
    char *err = NULL;
    int first;
    if (tm_config_load(&cfg, argc, argv, &first, &err) < 0) {
        fprintf(stderr, "feed_bench: %s\n", err);
        return 2;
    }
    tm_log_set_level(TM_LOG_ERROR);
    char *dir = g_dir_make_tmp("tm-feed-bench-XXXXXX", NULL);
    g_free(cfg.data_dir);
    cfg.data_dir = g_strdup(dir);
    g_free(cfg.db);
    cfg.db = NULL;
    tm_config_resolve_paths(&cfg);

    GPid reg_pid = 0;
    char *state_url = NULL;
    if (!cfg.feed_url) {
        char *script = g_build_filename(TM_SRC_DIR, "tests", "feed", "regulator.mjs", NULL);
        char *rargv[] = {"node", script, "--port", "0", "--secret", "bench", NULL};
        int out_fd = -1;
        if (!g_spawn_async_with_pipes(NULL, rargv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &reg_pid,
                                      NULL, &out_fd, NULL, NULL)) {
            fprintf(stderr, "feed_bench: cannot start node %s\n", script);
            return 1;
        }
        char line[512];
        FILE *fp = fdopen(out_fd, "r");
        if (!fp || !fgets(line, sizeof(line), fp)) {
            fprintf(stderr, "feed_bench: regulator did not start\n");
            return 1;
        }
        json_t *j = json_loads(line, 0, NULL);
        cfg.feed_url = g_strdup(json_string_value(json_object_get(j, "url")));
        state_url = g_strdup(json_string_value(json_object_get(j, "admin")));
        json_decref(j);
        g_free(cfg.feed_secret);
        cfg.feed_secret = g_strdup("bench");
        g_free(script);
    } else {
        state_url = g_strdup_printf("%.*s/__admin/state",
                                    (int)(strrchr(cfg.feed_url, '/') - cfg.feed_url), cfg.feed_url);
    }

    bench b = {0};
    b.store = tm_store_open(cfg.db, "bench-hospital", &err);
    if (!b.store) {
        fprintf(stderr, "feed_bench: %s\n", err);
        return 1;
    }
    tm_store_dept_put(b.store, "cardio", "Cardiology");
    tm_store_doctor_put(b.store, "doc-1", "Doctor", "cardio", "LIC-1", "attending");
    b.loop = g_main_loop_new(NULL, FALSE);

    int n_events = env_int("BENCH_EVENTS", 20000);
    int rate = env_int("BENCH_RATE", 100);
    int seconds = env_int("BENCH_SECONDS", 10);
    printf("feed_bench: endpoint %s batch %d\n", cfg.feed_url, cfg.feed_batch);

    /* 1: backlog throughput */
    fill_backlog(&b, cfg.db, n_events);
    int64_t base = delivered(&b);
    b.target_delivered = base + n_events + 3; /* + the template visit's 3 events */
    int64_t t0 = tm_mono_ms();
    b.feed = tm_feed_new(b.store, &cfg, NULL, NULL, &err);
    if (!b.feed) {
        fprintf(stderr, "feed_bench: %s\n", err);
        return 1;
    }
    g_timeout_add(20, on_check, &b);
    g_main_loop_run(b.loop);
    double secs = (double)(b.done_at - t0) / 1000.0;
    printf("throughput: %d events in %.2f s = %.0f events/s (target >= 5000)\n", n_events, secs,
           (double)n_events / secs);

    /* 2: steady visits, end-to-end delay */
    b.visits_left = rate * seconds;
    b.target_delivered = delivered(&b) + (int64_t)b.visits_left * 5;
    int64_t t1 = tm_mono_ms();
    b.phase_start = t1;
    b.rate = rate > 0 ? rate : 1;
    g_timeout_add(5, on_visit_tick, &b);
    g_timeout_add(20, on_check, &b);
    g_main_loop_run(b.loop);
    double made_s = (double)(b.made_at - t1) / 1000.0;
    printf("steady: asked %d visits/s for %d s; the store wrote %d visits (%d events) in %.2f s"
           " = %.0f visits/s; queue drained %.2f s after the start\n",
           rate, seconds, rate * seconds, rate * seconds * 5, made_s,
           (double)(rate * seconds) / made_s, (double)(b.done_at - t1) / 1000.0);
    report_delays(state_url);

    json_t *status = tm_feed_status(b.feed);
    char *s = json_dumps(status, JSON_COMPACT);
    printf("status: %s\n", s);
    free(s);
    json_decref(status);

    tm_feed_free(b.feed);
    tm_store_free(b.store);
    if (reg_pid)
        kill(reg_pid, SIGTERM);
    char *cmd = g_strdup_printf("rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "feed_bench: cleanup of %s failed\n", dir);
    g_free(cmd);
    g_free(dir);
    g_free(state_url);
    tm_config_clear(&cfg);
    return 0;
}

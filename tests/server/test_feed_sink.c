/*
 * test_feed_sink.c - the feed's NDJSON file sink and its C API on a real
 * store and a real GMainContext: lines written, counters and metrics, a
 * corrupt row dead-lettered and replayed, the torn-tail repair, and
 * tm_feed_free leaving undelivered rows pending.
 */
#include "tm_test.h"

#include "telemed/common.h"
#include "telemed/config.h"
#include "telemed/feed.h"
#include "telemed/store.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <glib.h>
#include <jansson.h>
#include <sqlite3.h>
#include <unistd.h>

static char *tmpdir;
static tm_store *store;
static GMainContext *ctx;
static tm_config cfg;

static void full_visit(const char *patient)
{
    tm_visit v;
    memset(&v, 0, sizeof(v));
    snprintf(v.patient_id, sizeof(v.patient_id), "%s", patient);
    snprintf(v.dept_id, sizeof(v.dept_id), "cardio");
    snprintf(v.kind, sizeof(v.kind), "follow_up");
    int64_t t = tm_now_ms();
    v.checkin_ms = t;
    CHECK_EQ_INT(tm_store_visit_checkin(store, &v, "t"), 0);
    CHECK_EQ_INT(tm_store_visit_offer(store, v.id, "doc-1", t + 1), 0);
    CHECK_EQ_INT(tm_store_visit_accept(store, v.id, "doc-1", "t", t + 2), 0);
    CHECK_EQ_INT(tm_store_visit_end(store, v.id, "completed", "doc-1", t + 3), 0);
}

static int64_t pending(void)
{
    int64_t n = -1;
    CHECK_EQ_INT(tm_store_outbox_count(store, "pending", &n), 0);
    return n;
}

/* Runs ctx until nothing is pending; the bound is a hang guard, not a
 * timing assertion. */
static void run_until_drained(void)
{
    int64_t give_up = tm_mono_ms() + 30000;
    while (pending() > 0 && tm_mono_ms() < give_up)
        g_main_context_iteration(ctx, TRUE);
    CHECK_EQ_INT(pending(), 0);
}

/* Every line of every day's file (a run may cross midnight UTC). */
static char *read_sink(size_t *lines)
{
    char *feed_dir = g_build_filename(cfg.data_dir, "feed", NULL);
    GDir *d = g_dir_open(feed_dir, 0, NULL);
    CHECK(d != NULL);
    GString *all = g_string_new(NULL);
    const char *entry;
    while ((entry = g_dir_read_name(d))) {
        CHECK(g_str_has_prefix(entry, "events-") && g_str_has_suffix(entry, ".ndjson"));
        char *name = g_build_filename(feed_dir, entry, NULL), *text = NULL;
        CHECK(g_file_get_contents(name, &text, NULL, NULL));
        CHECK(text[0] == '\0' || text[strlen(text) - 1] == '\n');
        g_string_append(all, text);
        g_free(text);
        g_free(name);
    }
    g_dir_close(d);
    g_free(feed_dir);
    *lines = 0;
    for (const char *p = all->str; *p; p++)
        if (*p == '\n')
            (*lines)++;
    return g_string_free(all, FALSE);
}

static void test_file_sink_writes_every_event(void)
{
    char *err = NULL;
    full_visit("pat-1");
    full_visit("pat-2");
    tm_feed *f = tm_feed_new(store, &cfg, NULL, ctx, &err);
    CHECK(f != NULL);
    run_until_drained();

    size_t lines = 0;
    char *text = read_sink(&lines);
    CHECK_EQ_INT(lines, 6);
    CHECK(text[strlen(text) - 1] == '\n');
    char **parts = g_strsplit(text, "\n", -1);
    for (size_t i = 0; i < lines; i++) {
        json_t *ev = json_loads(parts[i], 0, NULL);
        CHECK(json_is_object(ev));
        CHECK_EQ_INT(json_integer_value(json_object_get(ev, "schema_version")), 1);
        CHECK_STR(json_string_value(json_object_get(ev, "hospital_id")), "hosp-sink");
        CHECK(json_is_object(json_object_get(ev, "data")));
        json_decref(ev);
    }
    g_strfreev(parts);
    g_free(text);

    json_t *st = tm_feed_status(f);
    CHECK_STR(json_string_value(json_object_get(st, "sink")), "file");
    CHECK_EQ_INT(json_integer_value(json_object_get(st, "delivered")), 6);
    CHECK_EQ_INT(json_integer_value(json_object_get(st, "queue_depth")), 0);
    json_decref(st);
    GString *m = g_string_new(NULL);
    CHECK_EQ_INT(tm_feed_metrics(f, m), 0);
    CHECK(strstr(m->str, "\ntelemed_feed_delivered_total 6\n") != NULL);
    CHECK(strstr(m->str, "\ntelemed_feed_queue_depth 0\n") != NULL);
    CHECK(strstr(m->str, "# TYPE telemed_feed_failed_attempts_total counter\n") != NULL);
    g_string_free(m, TRUE);
    tm_feed_free(f);
}

static void test_corrupt_row_dead_and_replay(void)
{
    char *err = NULL;
    /* A row no server writes (a bad repair by hand), through a connection
     * of its own as an operator's sqlite3 shell would. */
    char *path = g_build_filename(tmpdir, "telemed.db", NULL);
    sqlite3 *db = NULL;
    CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    CHECK_EQ_INT(sqlite3_exec(db,
                              "INSERT INTO outbox(event_id, type, visit_id, occurred_at, payload)"
                              " VALUES('bad-1', 'visit.ended', 'v-x', 1, '[1,2')",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    sqlite3_close(db);
    g_free(path);
    full_visit("pat-3");
    tm_feed *f = tm_feed_new(store, &cfg, NULL, ctx, &err);
    CHECK(f != NULL);
    tm_feed_kick(f);
    run_until_drained();
    json_t *dead = tm_feed_dead_letters(f, 10);
    CHECK_EQ_INT(json_array_size(dead), 1);
    int64_t seq = json_integer_value(json_object_get(json_array_get(dead, 0), "seq"));
    CHECK(strstr(json_string_value(json_object_get(json_array_get(dead, 0), "last_error")),
                 "corrupt") != NULL);
    json_decref(dead);
    size_t lines = 0;
    g_free(read_sink(&lines));
    CHECK_EQ_INT(lines, 9); /* the good visit went through */

    CHECK_EQ_INT(tm_feed_replay(f, seq + 1), TM_ECONFLICT); /* delivered, not dead */
    CHECK_EQ_INT(tm_feed_replay(f, 424242), TM_ENOTFOUND);
    CHECK_EQ_INT(tm_feed_replay(f, seq), 0);
    json_t *st = tm_feed_status(f);
    CHECK_EQ_INT(json_integer_value(json_object_get(st, "dead")), 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(st, "queue_depth")), 1);
    json_decref(st);
    /* Still corrupt: it comes back as a dead letter, with a second attempt. */
    run_until_drained();
    st = tm_feed_status(f);
    CHECK_EQ_INT(json_integer_value(json_object_get(st, "dead")), 1);
    CHECK_EQ_INT(json_integer_value(json_object_get(st, "failed_attempts")), 2);
    json_decref(st);
    tm_feed_free(f);
}

static void test_free_leaves_rows_pending(void)
{
    char *err = NULL;
    tm_feed *f = tm_feed_new(store, &cfg, NULL, ctx, &err);
    CHECK(f != NULL);
    full_visit("pat-4");
    tm_feed_kick(f);
    tm_feed_free(f); /* before the loop ran: nothing was delivered, nothing lost */
    CHECK_EQ_INT(pending(), 3);
    f = tm_feed_new(store, &cfg, NULL, ctx, &err);
    run_until_drained();
    tm_feed_free(f);
}

static void test_bad_url_refused_at_start(void)
{
    tm_config c = cfg;
    char *err = NULL;
    c.feed_url = (char *)"ftp://127.0.0.1/events";
    CHECK(tm_feed_new(store, &c, NULL, ctx, &err) == NULL);
    CHECK(err != NULL && strstr(err, "feed_url") != NULL);
    g_free(err);
}

/* An endpoint that accepts and never answers: tm_feed_free cancels the
 * request in flight, and its events stay pending for the next start. */
static void test_free_cancels_in_flight(void)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    CHECK(lfd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ_INT(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    CHECK_EQ_INT(listen(lfd, 4), 0);
    socklen_t len = sizeof(sa);
    CHECK_EQ_INT(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/events", ntohs(sa.sin_port));

    full_visit("pat-5");
    tm_config c = cfg;
    c.feed_url = url;
    c.feed_timeout_ms = 60000;
    char *err = NULL;
    tm_feed *f = tm_feed_new(store, &c, NULL, ctx, &err);
    CHECK(f != NULL);
    int cfd = -1;
    int64_t give_up = tm_mono_ms() + 30000;
    while (cfd < 0 && tm_mono_ms() < give_up) {
        g_main_context_iteration(ctx, FALSE);
        cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0)
            g_usleep(1000);
    }
    CHECK(cfd >= 0);
    /* Let the request go out, then stop while it waits for an answer. */
    char buf[4096];
    give_up = tm_mono_ms() + 30000;
    while (recv(cfd, buf, sizeof(buf), 0) <= 0 && tm_mono_ms() < give_up) {
        g_main_context_iteration(ctx, FALSE);
        g_usleep(1000);
    }
    json_t *st = tm_feed_status(f);
    CHECK_EQ_INT(json_integer_value(json_object_get(st, "in_flight")), 3);
    json_decref(st);
    tm_feed_free(f);
    CHECK_EQ_INT(pending(), 3);
    close(cfd);
    close(lfd);
    f = tm_feed_new(store, &cfg, NULL, ctx, &err); /* the file sink takes them */
    run_until_drained();
    tm_feed_free(f);
}

static void write_file(const char *path, const char *text)
{
    CHECK(g_file_set_contents(path, text, -1, NULL));
}

static char *repaired(const char *path)
{
    int fd = open(path, O_RDWR);
    CHECK(fd >= 0);
    CHECK_EQ_INT(tm__feed_repair_tail(fd), 0);
    close(fd);
    char *text = NULL;
    CHECK(g_file_get_contents(path, &text, NULL, NULL));
    return text;
}

static void test_repair_tail(void)
{
    char *path = g_build_filename(tmpdir, "tail.ndjson", NULL);
    write_file(path, "{\"a\":1}\n{\"b\":2}\n{\"c\":");
    char *t = repaired(path);
    CHECK_STR(t, "{\"a\":1}\n{\"b\":2}\n");
    g_free(t);
    t = repaired(path); /* whole lines stay */
    CHECK_STR(t, "{\"a\":1}\n{\"b\":2}\n");
    g_free(t);
    write_file(path, "{\"only\":\"torn");
    t = repaired(path);
    CHECK_STR(t, "");
    g_free(t);
    /* A torn line longer than the repair's read buffer. */
    GString *big = g_string_new("{\"x\":1}\n{\"y\":\"");
    for (int i = 0; i < 10000; i++)
        g_string_append_c(big, 'y');
    write_file(path, big->str);
    t = repaired(path);
    CHECK_STR(t, "{\"x\":1}\n");
    g_free(t);
    g_string_free(big, TRUE);
    g_free(path);
}

int main(void)
{
    tmpdir = g_dir_make_tmp("tm-feed-sink-XXXXXX", NULL);
    char *db = g_build_filename(tmpdir, "telemed.db", NULL);
    char *err = NULL;
    store = tm_store_open(db, "hosp-sink", &err);
    CHECK(store != NULL);
    CHECK_EQ_INT(tm_store_dept_put(store, "cardio", "Cardiology"), 0);
    CHECK_EQ_INT(tm_store_doctor_put(store, "doc-1", "D", "cardio", "LIC-1", "x"), 0);
    memset(&cfg, 0, sizeof(cfg));
    cfg.data_dir = g_strdup(tmpdir);
    cfg.hospital_id = g_strdup("hosp-sink");
    cfg.feed_batch = 4; /* several batches per drain */
    cfg.feed_timeout_ms = 1000;
    cfg.feed_backoff_base_ms = 10;
    cfg.feed_backoff_max_ms = 100;
    ctx = g_main_context_new();

    RUN(test_file_sink_writes_every_event);
    RUN(test_corrupt_row_dead_and_replay);
    RUN(test_free_leaves_rows_pending);
    RUN(test_repair_tail);
    RUN(test_bad_url_refused_at_start);
    RUN(test_free_cancels_in_flight);

    g_main_context_unref(ctx);
    tm_store_free(store);
    g_free(cfg.data_dir);
    g_free(cfg.hospital_id);
    char *cmd = g_strdup_printf("rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", tmpdir);
    g_free(cmd);
    g_free(db);
    g_free(tmpdir);
    TEST_DONE();
}

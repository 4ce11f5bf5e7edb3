/*
 * test_store_pg.c - the store on PostgreSQL: a throwaway server started by
 * tests/support/pg.sh in a temporary directory (127.0.0.1, a free port),
 * the backend-neutral suite (store_suite.c) against it, then what only a
 * networked engine has: the server killed and restarted under the store
 * (the step in flight fails with a clear error, nothing half-written, the
 * same handle serves again), and a database from a newer server refused.
 */
#include "pg_fixture.h"
#include "store_suite.h"

#include "telemed/common.h"
#include "telemed/store.h"
#include "tm_test.h"

#include <glib.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <unistd.h>

static tm_store *open_pg(const char *name)
{
    char *url = pg_fixture_url(name), *err = NULL;
    tm_store *s = tm_store_open(url, "hosp-1", &err);
    if (!s)
        fprintf(stderr, "open %s: %s\n", url, err);
    CHECK(s != NULL);
    g_free(url);
    return s;
}

/* The first column of the first row of sql on database name, read on a
 * connection of its own; -1 if there is none. */
static long long scalar(const char *name, const char *sql)
{
    char *url = pg_fixture_url(name);
    PGconn *c = PQconnectdb(url);
    CHECK(PQstatus(c) == CONNECTION_OK);
    PGresult *r = PQexec(c, sql);
    CHECK(PQresultStatus(r) == PGRES_TUPLES_OK);
    long long v = PQntuples(r) > 0 ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;
    PQclear(r);
    PQfinish(c);
    g_free(url);
    return v;
}
static void age_heartbeat(const char *name, const char *node_id, int64_t ms)
{
    char *sql = g_strdup_printf("UPDATE nodes SET heartbeat_at = heartbeat_at - %lld"
                                " WHERE id = '%s'",
                                (long long)ms, node_id);
    char *url = pg_fixture_url(name);
    pg_fixture_exec(url, sql);
    g_free(url);
    g_free(sql);
}

static void age_leases(const char *name, int64_t ms)
{
    static const char *const tables[] = {"outbox", "messaging_outbox", "routed_outbox",
                                         "upload_records", "upload_days"};
    char *url = pg_fixture_url(name);
    for (size_t i = 0; i < TM_ARRAY_LEN(tables); i++) {
        char *sql = g_strdup_printf("UPDATE %s SET lease_until = lease_until - %lld"
                                    " WHERE lease_until IS NOT NULL",
                                    tables[i], (long long)ms);
        pg_fixture_exec(url, sql);
        g_free(sql);
    }
    g_free(url);
}

static tm_visit new_visit(const char *patient)
{
    tm_visit v = {0};
    g_strlcpy(v.patient_id, patient, sizeof(v.patient_id));
    g_strlcpy(v.dept_id, "cardio", sizeof(v.dept_id));
    g_strlcpy(v.kind, "follow_up", sizeof(v.kind));
    v.checkin_ms = tm_now_ms();
    return v;
}

static void seed_dept(tm_store *s)
{
    CHECK_EQ_INT(tm_store_dept_put(s, "cardio", "Cardiology"), 0);
}

/* PostgreSQL killed under an idle handle: the next step fails with a clear
 * error and writes nothing; once the server is back the same handle
 * serves again, with no reopen. */
static void test_server_restart(void)
{
    tm_store *s = open_pg("restart");
    seed_dept(s);
    tm_visit a = new_visit("p-before");
    CHECK_EQ_INT(tm_store_visit_checkin(s, &a, "ua"), 0);

    char *url = pg_fixture_sh("kill");
    g_free(url);
    tm_visit b = new_visit("p-down");
    CHECK_EQ_INT(tm_store_visit_checkin(s, &b, "ua"), TM_EIO);
    CHECK(strstr(tm_store_errmsg(s), "PostgreSQL") != NULL);
    /* Refused at once: the next step tries again. */
    CHECK_EQ_INT(tm_store_visit_checkin(s, &b, "ua"), TM_EIO);
    CHECK(strstr(tm_store_errmsg(s), "PostgreSQL unreachable") != NULL);
    /* A server on its port that never answers: one step waits for the
     * connect timeout, the steps after it fail at once until the next try. */
    int silent = pg_fixture_silent_listener();
    CHECK_EQ_INT(tm_store_visit_checkin(s, &b, "ua"), TM_EIO);
    CHECK_EQ_INT(tm_store_visit_checkin(s, &b, "ua"), TM_EIO);
    CHECK(strstr(tm_store_errmsg(s), "next try in") != NULL);
    close(silent);

    url = pg_fixture_sh("restart");
    CHECK(url != NULL);
    g_free(url);
    tm_visit c = new_visit("p-after");
    int rc = TM_EIO;
    for (int i = 0; i < 600 && rc == TM_EIO; i++) {
        rc = tm_store_visit_checkin(s, &c, "ua");
        if (rc == TM_EIO)
            g_usleep(100 * 1000); /* the next try is 1 s after the silent one */
    }
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(scalar("restart", "SELECT count(*) FROM visits WHERE patient_id = 'p-down'"), 0);
    CHECK_EQ_INT(scalar("restart", "SELECT count(*) FROM visits"), 2);
    CHECK_EQ_INT(scalar("restart", "SELECT count(*) FROM outbox"), 2);
    tm_store_free(s);
}

/* Two nodes write one visit's events at once (participants joining and
 * leaving through each): every event still links to the one before it,
 * so the chain verifies; without a lock both would link to one. */
#define CHAIN_ROUNDS 60

typedef struct chain_writer {
    const char *visit_id, *user;
    int failures;
} chain_writer;

static gpointer write_events(gpointer data)
{
    chain_writer *w = data;
    tm_store *s = open_pg("chain");
    for (int i = 0; i < CHAIN_ROUNDS; i++) {
        int64_t t = tm_now_ms();
        w->failures += tm_store_party_join(s, w->visit_id, w->user, "nurse", "ua", true, t) != 0;
        w->failures += tm_store_party_leave(s, w->visit_id, w->user, "left", t + 1) != 0;
    }
    tm_store_free(s);
    return NULL;
}

static void test_chain_two_writers(void)
{
    tm_store *s = open_pg("chain");
    seed_dept(s);
    CHECK_EQ_INT(tm_store_doctor_put(s, "d1", "Dr One", "cardio", "LIC1", NULL), 0);
    tm_visit v = new_visit("p-chain");
    CHECK_EQ_INT(tm_store_visit_checkin(s, &v, "ua"), 0);
    CHECK_EQ_INT(tm_store_visit_offer(s, v.id, "d1", tm_now_ms()), 0);
    CHECK_EQ_INT(tm_store_visit_accept(s, v.id, "d1", "ua", tm_now_ms()), 0);
    chain_writer a = {v.id, "n-a", 0}, b = {v.id, "n-b", 0};
    GThread *ta = g_thread_new("chain-a", write_events, &a);
    GThread *tb = g_thread_new("chain-b", write_events, &b);
    g_thread_join(ta);
    g_thread_join(tb);
    CHECK_EQ_INT(a.failures + b.failures, 0);
    json_t *chain = tm_store_visit_chain(s, v.id);
    if (!json_is_true(json_object_get(chain, "ok")))
        fprintf(stderr, "%zu events do not link to the one before\n",
                json_array_size(json_object_get(chain, "problems")));
    CHECK(json_is_true(json_object_get(chain, "ok")));
    json_decref(chain);
    tm_store_free(s);
}

/* The child of test_stalled_lock_holder: a node writing a visit's events
 * until it is killed (bounded, should nobody kill it). */
static int write_events_forever(const char *url, const char *visit_id)
{
    char *err = NULL;
    tm_store *s = tm_store_open(url, "hosp-1", &err);
    if (!s)
        return 1;
    for (int i = 0; i < 200000; i++) {
        int64_t t = tm_now_ms();
        tm_store_party_join(s, visit_id, "n-stalled", "nurse", "ua", true, t);
        tm_store_party_leave(s, visit_id, "n-stalled", "left", t + 1);
    }
    tm_store_free(s);
    return 0;
}

/* The outbox lock of store_chain.c (a bigint advisory key). */
static bool outbox_lock_held(void)
{
    return scalar("stalled",
                  "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                  " AND (classid::bigint << 32 | objid::bigint) = hashtextextended('outbox', 0)") >
           0;
}

/* A node stopped inside a transaction (frozen, or cut off with its socket
 * still open) holds the outbox lock that every node's event writes take:
 * PostgreSQL ends that session once it sits idle in the transaction, so
 * the other nodes' steps go on after a few failed ones, not never. The
 * stopped node is a child process, stopped while it holds the lock. */
static const char *self_exe;

static void test_stalled_lock_holder(void)
{
    tm_store *s = open_pg("stalled");
    seed_dept(s);
    CHECK_EQ_INT(tm_store_doctor_put(s, "d1", "Dr One", "cardio", "LIC1", NULL), 0);
    tm_visit v = new_visit("p-stalled");
    CHECK_EQ_INT(tm_store_visit_checkin(s, &v, "ua"), 0);
    CHECK_EQ_INT(tm_store_visit_offer(s, v.id, "d1", tm_now_ms()), 0);
    CHECK_EQ_INT(tm_store_visit_accept(s, v.id, "d1", "ua", tm_now_ms()), 0);
    char *url = pg_fixture_url("stalled");
    char *argv[] = {(char *)self_exe, "--write-events", url, v.id, NULL};
    GPid child;
    CHECK(g_spawn_async(NULL, argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &child, NULL));
    bool stalled = false;
    for (int i = 0; i < 1000 && !stalled; i++) {
        kill(child, SIGCONT);
        g_usleep(1000 + (i % 7) * 700);
        kill(child, SIGSTOP);
        /* Held twice, 100 ms apart, by a process that cannot run. */
        stalled = outbox_lock_held() && (g_usleep(100 * 1000), outbox_lock_held());
    }
    int rc = TM_EIO;
    for (int i = 0; i < 6 && stalled && rc != 0; i++)
        rc = tm_store_party_join(s, v.id, "n-live", "nurse", "ua", true, tm_now_ms());
    kill(child, SIGKILL);
    g_spawn_close_pid(child);
    CHECK(stalled);
    CHECK_EQ_INT(rc, 0);
    g_free(url);
    tm_store_free(s);
}

static const int64_t HOUR = 3600000;

static tm_node_info node_at(const char *id, int64_t heartbeat_ms)
{
    tm_node_info n = {.started_at_ms = heartbeat_ms, .heartbeat_ms = heartbeat_ms};
    g_strlcpy(n.id, id, sizeof(n.id));
    g_snprintf(n.public_url, sizeof(n.public_url), "https://%s.test", id);
    return n;
}

static bool has_id(json_t *ids, const char *id)
{
    for (size_t i = 0; i < json_array_size(ids); i++)
        if (strcmp(json_string_value(json_array_get(ids, i)), id) == 0)
            return true;
    return false;
}

/* Nodes on machines whose clocks are an hour apart: the database's clock
 * judges them, so a beating node an hour behind is live to a reader an
 * hour ahead (its visits stay), and a node an hour ahead that stopped
 * beating is dead once dead_after has passed on the database. */
static void test_nodes_on_database_clock(void)
{
    tm_store *s = open_pg("node_clock");
    seed_dept(s);
    CHECK_EQ_INT(tm_store_doctor_put(s, "d1", "Dr One", "cardio", "LIC1", NULL), 0);
    tm_node_info behind = node_at("node-behind", tm_now_ms() - HOUR);
    CHECK_EQ_INT(tm_store_node_heartbeat(s, &behind), 0);
    CHECK_EQ_INT(tm_store_node_duty_set(s, "node-behind", "cardio", 2), 0);
    tm_visit v = new_visit("p-behind");
    CHECK_EQ_INT(tm_store_visit_checkin(s, &v, "ua"), 0);
    CHECK_EQ_INT(tm_store_visit_place_media(s, v.id, NULL, "node-behind"), 0);

    int64_t ahead = tm_now_ms() + HOUR;
    tm_node_info *live = NULL;
    size_t n = 0;
    CHECK_EQ_INT(tm_store_nodes_live(s, ahead, 10000, &live, &n), 0);
    CHECK_EQ_INT((int)n, 1);
    CHECK_STR(live[0].id, "node-behind");
    g_free(live);
    int doctors = 0;
    CHECK_EQ_INT(tm_store_node_duty_elsewhere(s, "node-me", "cardio", ahead, 10000, &doctors), 0);
    CHECK_EQ_INT(doctors, 2);
    json_t *list = tm_store_node_list(s, ahead, 10000);
    CHECK(json_is_true(json_object_get(json_array_get(list, 0), "alive")));
    json_decref(list);
    json_t *released = NULL;
    CHECK_EQ_INT(tm_store_node_takeover(s, ahead, 10000, &released, NULL), 0);
    CHECK_EQ_INT((int)json_array_size(released), 0);
    json_decref(released);

    tm_node_info fast = node_at("node-ahead", tm_now_ms() + HOUR);
    CHECK_EQ_INT(tm_store_node_heartbeat(s, &fast), 0);
    tm_visit w = new_visit("p-ahead");
    CHECK_EQ_INT(tm_store_visit_checkin(s, &w, "ua"), 0);
    CHECK_EQ_INT(tm_store_visit_place_media(s, w.id, NULL, "node-ahead"), 0);
    g_usleep(800 * 1000); /* both stop beating: longer than dead_after below */
    CHECK_EQ_INT(tm_store_nodes_live(s, tm_now_ms(), 500, &live, &n), 0);
    CHECK(live == NULL && n == 0);
    CHECK_EQ_INT(tm_store_node_takeover(s, tm_now_ms(), 500, &released, NULL), 0);
    CHECK(has_id(released, w.id) && has_id(released, v.id));
    json_decref(released);
    tm_store_free(s);
}

static void test_newer_schema_refused(void)
{
    tm_store *s = open_pg("newer");
    tm_store_free(s);
    char *url = pg_fixture_url("newer");
    PGconn *c = PQconnectdb(url);
    PQclear(PQexec(c, "UPDATE tm_schema_version SET version = 9999"));
    PQfinish(c);
    char *err = NULL;
    CHECK(tm_store_open(url, "h", &err) == NULL);
    CHECK(err && strstr(err, "newer") != NULL);
    g_free(err);
    g_free(url);
}

static void test_unreachable(void)
{
    char *err = NULL;
    CHECK(tm_store_open("postgresql://telemed@127.0.0.1:1/telemed", "h", &err) == NULL);
    CHECK(err && strstr(err, "PostgreSQL") != NULL);
    g_free(err);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--write-events") == 0)
        return write_events_forever(argv[2], argv[3]);
    pg_fixture_start();
    store_suite_run(&(store_backend){"postgresql", open_pg, age_heartbeat, age_leases});
    RUN(test_nodes_on_database_clock);
    RUN(test_newer_schema_refused);
    RUN(test_unreachable);
    RUN(test_chain_two_writers);
    self_exe = argv[0];
    RUN(test_stalled_lock_holder);
    RUN(test_server_restart);
    TEST_DONE();
}

/*
 * test_cluster.c - the cluster module (include/telemed/cluster.h) on a real
 * GLib loop: bus payloads parsed or refused, the in-process bus of one node,
 * the heartbeat in a real SQLite store with a dead node's visit released,
 * and the PostgreSQL bus against a PostgreSQL the test starts
 * (tests/support/pg.sh): events between two nodes and from an outside
 * connection, and after PostgreSQL is killed and restarted both nodes
 * reconnect, are told to resync, and send what was published meanwhile;
 * a server that accepts the bus's connection and never answers is given
 * up at the connect deadline and the real one is reached once it is back.
 */
#include "telemed/cluster.h"
#include "telemed/common.h"
#include "pg_fixture.h"
#include "tm_spin.h"
#include "store_visits.h"
#include "tm_test.h"

#include <glib.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

static char *test_dir;

/* ---- helpers -------------------------------------------------------- */

typedef struct recorder {
    GPtrArray *events; /* "queue:x", "resync", ... */
    int resyncs;
} recorder;

static const char *const kind_name[] = {[TM_BUS_QUEUE] = "queue",
                                        [TM_BUS_VISIT] = "visit",
                                        [TM_BUS_NODE] = "node",
                                        [TM_BUS_SHIFTS] = "shifts",
                                        [TM_BUS_RESYNC] = "resync"};

static void on_event(tm_bus_kind kind, const char *id, void *user)
{
    recorder *r = user;
    if (kind == TM_BUS_RESYNC)
        r->resyncs++;
    g_ptr_array_add(r->events, g_strdup_printf("%s:%s", kind_name[kind], id));
}

static recorder *recorder_new(void)
{
    recorder *r = g_new0(recorder, 1);
    r->events = g_ptr_array_new_with_free_func(g_free);
    return r;
}

static void recorder_free(recorder *r)
{
    g_ptr_array_free(r->events, TRUE);
    g_free(r);
}

static bool saw(const recorder *r, const char *event)
{
    for (guint i = 0; i < r->events->len; i++)
        if (strcmp(r->events->pdata[i], event) == 0)
            return true;
    return false;
}

static int index_of(const recorder *r, const char *event)
{
    for (guint i = 0; i < r->events->len; i++)
        if (strcmp(r->events->pdata[i], event) == 0)
            return (int)i;
    return -1;
}

static int last_index_of(const recorder *r, const char *event)
{
    for (guint i = r->events->len; i-- > 0;)
        if (strcmp(r->events->pdata[i], event) == 0)
            return (int)i;
    return -1;
}

typedef struct want {
    recorder *r;
    const char *event;
} want;

static bool got_event(void *data)
{
    want *w = data;
    return saw(w->r, w->event);
}

static void wait_event(recorder *r, const char *event)
{
    want w = {r, event};
    if (!spin_until(got_event, &w)) {
        fprintf(stderr, "never got %s\n", event);
        CHECK(false);
    }
}

static tm_cluster *node_on(const char *id, tm_store *store, const char *bus_url, recorder *r)
{
    char url[128];
    g_snprintf(url, sizeof(url), "https://%s.test:8443", id);
    char *err = NULL;
    tm_cluster *c = tm_cluster_new(&(tm_cluster_options){.node_id = id,
                                                         .public_url = url,
                                                         .store = store,
                                                         .bus_url = bus_url,
                                                         .heartbeat_ms = 50,
                                                         .reconnect_max_ms = 500},
                                   &err);
    if (!c)
        fprintf(stderr, "cluster %s: %s\n", id, err);
    CHECK(c != NULL);
    tm_cluster_set_event_handler(c, on_event, r);
    return c;
}

/* ---- parsing --------------------------------------------------------- */

static void test_parse_event(void)
{
    tm_bus_kind k;
    char id[64];
    CHECK_EQ_INT(tm_cluster_parse_event("queue:cardio", 12, &k, id, sizeof(id)), 0);
    CHECK(k == TM_BUS_QUEUE);
    CHECK_STR(id, "cardio");
    CHECK_EQ_INT(tm_cluster_parse_event("visit:v-1.a_b", 13, &k, id, sizeof(id)), 0);
    CHECK(k == TM_BUS_VISIT);
    CHECK_STR(id, "v-1.a_b");
    CHECK_EQ_INT(tm_cluster_parse_event("node:n1", 7, &k, id, sizeof(id)), 0);
    CHECK(k == TM_BUS_NODE);
    CHECK_EQ_INT(tm_cluster_parse_event("shifts:node-2", 13, &k, id, sizeof(id)), 0);
    CHECK(k == TM_BUS_SHIFTS);
    CHECK_STR(id, "node-2");

    const char *bad[] = {"",          "queue:",    "queue",   "resync:x", "queue:a b",
                         "queue:x;y", "visit:v'1", "QUEUE:x", ":x"};
    for (size_t i = 0; i < TM_ARRAY_LEN(bad); i++)
        CHECK_EQ_INT(tm_cluster_parse_event(bad[i], strlen(bad[i]), &k, id, sizeof(id)), TM_EINVAL);
    /* The length is the payload's, not up to a NUL inside it. */
    CHECK_EQ_INT(tm_cluster_parse_event("queue:a\0b", 9, &k, id, sizeof(id)), TM_EINVAL);
    char longest[6 + 64 + 1];
    memcpy(longest, "queue:", 6);
    memset(longest + 6, 'a', 64);
    longest[70] = '\0';
    CHECK_EQ_INT(tm_cluster_parse_event(longest, 70, &k, id, sizeof(id)), TM_EINVAL);
    CHECK_EQ_INT(tm_cluster_parse_event(longest, 69, &k, id, sizeof(id)), 0);
    CHECK_EQ_INT((int)strlen(id), 63);
}

static void test_bad_options(void)
{
    char *err = NULL;
    CHECK(tm_cluster_new(&(tm_cluster_options){.node_id = "a b", .public_url = "https://x"},
                         &err) == NULL);
    CHECK(err && strstr(err, "node_id"));
    g_free(err);
    err = NULL;
    CHECK(tm_cluster_new(&(tm_cluster_options){.node_id = "a"}, &err) == NULL);
    CHECK(err && strstr(err, "public_url"));
    g_free(err);
    err = NULL;
    CHECK(tm_cluster_new(&(tm_cluster_options){.node_id = "a",
                                               .public_url = "https://x",
                                               .bus_url = "mysql://x"},
                         &err) == NULL);
    CHECK(err && strstr(err, "postgresql://"));
    g_free(err);
    err = NULL;
    CHECK(tm_cluster_new(&(tm_cluster_options){.node_id = "a",
                                               .public_url = "https://x",
                                               .connect_timeout_ms = -1},
                         &err) == NULL);
    CHECK(err && strstr(err, "negative"));
    g_free(err);
    tm_cluster_free(NULL);
}

/* ---- one node, in-process -------------------------------------------- */

typedef struct echo {
    tm_cluster *c;
    recorder *r;
} echo;

/* A handler that publishes again: its event comes in a later round. */
static void on_event_echo(tm_bus_kind kind, const char *id, void *user)
{
    echo *e = user;
    on_event(kind, id, e->r);
    if (kind == TM_BUS_QUEUE && strcmp(id, "cardio") == 0)
        CHECK_EQ_INT(tm_cluster_publish(e->c, TM_BUS_VISIT, "from-handler"), 0);
}

static void test_in_process_bus(void)
{
    recorder *r = recorder_new();
    tm_cluster *c = node_on("solo", NULL, NULL, r);
    echo e = {c, r};
    tm_cluster_set_event_handler(c, on_event_echo, &e);
    CHECK(tm_cluster_bus_ready(c));
    CHECK_EQ_INT(tm_cluster_publish(c, TM_BUS_QUEUE, "cardio"), 0);
    CHECK_EQ_INT(tm_cluster_publish(c, TM_BUS_QUEUE, "cardio"), 0); /* coalesced */
    CHECK_EQ_INT(tm_cluster_publish(c, TM_BUS_NODE, "solo"), 0);
    CHECK_EQ_INT(tm_cluster_publish(c, TM_BUS_RESYNC, "x"), TM_EINVAL);
    CHECK_EQ_INT(tm_cluster_publish(c, TM_BUS_QUEUE, ""), TM_EINVAL);
    CHECK_EQ_INT(tm_cluster_publish(c, TM_BUS_QUEUE, "a;b"), TM_EINVAL);
    CHECK_EQ_INT((int)r->events->len, 0); /* never inside the caller's stack */
    wait_event(r, "visit:from-handler");
    CHECK_EQ_INT((int)r->events->len, 3);
    CHECK_STR(r->events->pdata[0], "queue:cardio");
    CHECK_STR(r->events->pdata[1], "node:solo");
    CHECK_STR(r->events->pdata[2], "visit:from-handler");
    tm_cluster_stats st;
    tm_cluster_stats_get(c, &st);
    CHECK_EQ_INT((int)st.published, 3);
    CHECK_EQ_INT((int)st.received, 3);
    CHECK_EQ_INT((int)st.heartbeats, 0);
    tm_cluster_free(c);
    recorder_free(r);
}

/* ---- the heartbeat ---------------------------------------------------- */

static void load_of(tm_node_info *load, void *user)
{
    (void)user;
    load->visits = 2;
    load->waiting = 3;
    load->peers = 4;
}

typedef struct beats {
    tm_cluster *c;
    uint64_t at_least;
} beats;

static bool beaten(void *data)
{
    beats *b = data;
    tm_cluster_stats st;
    tm_cluster_stats_get(b->c, &st);
    return st.heartbeats >= b->at_least;
}

static tm_store *open_store(const char *name)
{
    char *path = g_strdup_printf("%s/%s.db", test_dir, name), *err = NULL;
    tm_store *s = tm_store_open(path, "hosp-1", &err);
    if (!s)
        fprintf(stderr, "store %s: %s\n", path, err);
    CHECK(s != NULL);
    g_free(path);
    return s;
}

static void test_heartbeat(void)
{
    tm_store *s = open_store("beat");
    CHECK_EQ_INT(tm_store_dept_put(s, "cardio", "Cardiology"), 0);
    CHECK_EQ_INT(tm_store_doctor_put(s, "d1", "Dr One", "cardio", NULL, NULL), 0);
    CHECK_EQ_INT(
        tm_store_shift_add(s, "d1", "cardio", tm_now_ms() - 1000, tm_now_ms() + 3600000, 4, NULL),
        0);
    /* A node that died a minute ago with a live visit. */
    tm_node_info gone = {.id = "node-gone",
                         .public_url = "https://gone.test",
                         .started_at_ms = tm_now_ms() - 120000,
                         .heartbeat_ms = tm_now_ms() - 60000};
    CHECK_EQ_INT(tm_store_node_heartbeat(s, &gone), 0);
    tm_visit orphan;
    visit_on(s, "p-orphan", "node-gone", &orphan);

    /* node-a crashed with two doctors on duty and starts again. */
    CHECK_EQ_INT(tm_store_node_duty_set(s, "node-a", "cardio", 2), 0);

    recorder *r = recorder_new();
    tm_cluster *c = node_on("node-a", s, NULL, r);
    tm_cluster_set_load_source(c, load_of, NULL);
    CHECK_STR(tm_cluster_node_id(c), "node-a");
    int doctors = -1;
    CHECK_EQ_INT(tm_store_node_duty_elsewhere(s, "node-x", "cardio", tm_now_ms(), 10000, &doctors),
                 0);
    CHECK_EQ_INT(doctors, 0);

    char want_visit[96];
    g_snprintf(want_visit, sizeof(want_visit), "visit:%s", orphan.id);
    wait_event(r, want_visit);
    char at[64];
    CHECK_EQ_INT(tm_store_visit_media_node(s, orphan.id, at), 0);
    CHECK_STR(at, "");

    beats b = {c, 3};
    CHECK(spin_until(beaten, &b));
    tm_node_info *live = NULL;
    size_t n = 0;
    CHECK_EQ_INT(tm_cluster_live_nodes(c, &live, &n), 0);
    CHECK_EQ_INT((int)n, 1);
    CHECK_STR(live[0].id, "node-a");
    CHECK_STR(live[0].public_url, "https://node-a.test:8443");
    CHECK_EQ_INT(live[0].visits, 2);
    CHECK_EQ_INT(live[0].waiting, 3);
    CHECK_EQ_INT(live[0].peers, 4);
    CHECK(live[0].heartbeat_ms > tm_now_ms() - 10000);
    g_free(live);

    /* Another node comes up: an event; its visit is not taken over. */
    tm_node_info other = {.id = "node-b", .public_url = "https://b.test"};
    other.started_at_ms = other.heartbeat_ms = tm_now_ms() + 5000;
    CHECK_EQ_INT(tm_store_node_heartbeat(s, &other), 0);
    tm_visit on_b;
    visit_on(s, "p-b", "node-b", &on_b);
    wait_event(r, "node:node-b");
    b.at_least += 3;
    CHECK(spin_until(beaten, &b));
    CHECK_EQ_INT(tm_store_visit_media_node(s, on_b.id, at), 0);
    CHECK_STR(at, "node-b");
    g_snprintf(want_visit, sizeof(want_visit), "visit:%s", on_b.id);
    CHECK(!saw(r, want_visit));

    tm_cluster_free(c); /* leaves: its row goes */
    json_t *nodes = tm_store_node_list(s, tm_now_ms(), 10000);
    CHECK_EQ_INT((int)json_array_size(nodes), 2);
    for (size_t i = 0; i < json_array_size(nodes); i++)
        CHECK(strcmp(json_string_value(json_object_get(json_array_get(nodes, i), "id")),
                     "node-a") != 0);
    json_decref(nodes);
    recorder_free(r);
    tm_store_free(s);
}

/* ---- the PostgreSQL bus ----------------------------------------------- */

static PGconn *pg_connect(const char *url)
{
    PGconn *pg = PQconnectdb(url);
    if (PQstatus(pg) != CONNECTION_OK)
        fprintf(stderr, "connect: %s\n", PQerrorMessage(pg));
    CHECK(PQstatus(pg) == CONNECTION_OK);
    return pg;
}

static void pg_exec(PGconn *pg, const char *sql)
{
    PGresult *res = PQexec(pg, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        fprintf(stderr, "%s: %s\n", sql, PQerrorMessage(pg));
    CHECK(PQresultStatus(res) == PGRES_COMMAND_OK);
    PQclear(res);
}

typedef struct pair {
    tm_cluster *a, *b;
    recorder *ra, *rb;
    int resyncs;
} pair;

static bool both_ready(void *data)
{
    pair *p = data;
    return tm_cluster_bus_ready(p->a) && tm_cluster_bus_ready(p->b) &&
           p->ra->resyncs >= p->resyncs && p->rb->resyncs >= p->resyncs;
}

static bool both_down(void *data)
{
    pair *p = data;
    return !tm_cluster_bus_ready(p->a) && !tm_cluster_bus_ready(p->b);
}

typedef struct outside {
    PGconn *pg;
    const char *payload;
    bool seen;
} outside;

/* An outside listener's notifications, read without blocking. */
static bool outside_saw(void *data)
{
    outside *o = data;
    PQconsumeInput(o->pg);
    PGnotify *n;
    while ((n = PQnotifies(o->pg)) != NULL) {
        if (strcmp(n->extra, o->payload) == 0)
            o->seen = true;
        PQfreemem(n);
    }
    return o->seen;
}

static void test_pg_bus(void)
{
    pg_fixture_start();
    char *url = pg_fixture_url("bus");

    pair p = {.ra = recorder_new(), .rb = recorder_new(), .resyncs = 1};
    p.a = node_on("node-a", NULL, url, p.ra);
    p.b = node_on("node-b", NULL, url, p.rb);
    CHECK(spin_until(both_ready, &p));

    /* From an outside connection: refused payloads are dropped, events in
     * order reach both nodes. */
    PGconn *out = pg_connect(url);
    pg_exec(out, "NOTIFY telemed, 'queue:cardio'");
    pg_exec(out, "NOTIFY telemed, 'garbage'");
    pg_exec(out, "NOTIFY telemed, 'queue:x;DROP TABLE y'");
    pg_exec(out, "NOTIFY other_channel, 'queue:elsewhere'");
    pg_exec(out, "NOTIFY telemed, 'visit:v-2'");
    wait_event(p.ra, "visit:v-2");
    wait_event(p.rb, "visit:v-2");
    CHECK(index_of(p.ra, "queue:cardio") >= 0);
    CHECK(index_of(p.ra, "queue:cardio") < index_of(p.ra, "visit:v-2"));
    CHECK(!saw(p.ra, "queue:elsewhere"));
    tm_cluster_stats st;
    tm_cluster_stats_get(p.a, &st);
    CHECK_EQ_INT((int)st.rejected, 2);

    /* Published by a node: every node (itself too) and any listener. */
    pg_exec(out, "LISTEN telemed");
    CHECK_EQ_INT(tm_cluster_publish(p.a, TM_BUS_QUEUE, "derm"), 0);
    wait_event(p.rb, "queue:derm");
    wait_event(p.ra, "queue:derm");
    outside o = {out, "queue:derm", false};
    CHECK(spin_until(outside_saw, &o));
    PQfinish(out);

    /* PostgreSQL dies: both buses go down; once it is back both are told to
     * resync, and an event published meanwhile is sent. */
    pg_fixture_kill();
    CHECK(spin_until(both_down, &p));
    CHECK_EQ_INT(tm_cluster_publish(p.a, TM_BUS_QUEUE, "during-outage"), 0);
    pg_fixture_restart();
    p.resyncs = 2;
    CHECK(spin_until(both_ready, &p));
    /* Sent on the new connection after its LISTEN, so the sender hears it
     * (a node that came back later learns of it by its resync instead). */
    wait_event(p.ra, "queue:during-outage");
    CHECK(index_of(p.ra, "queue:during-outage") > last_index_of(p.ra, "resync:"));
    tm_cluster_stats_get(p.b, &st);
    CHECK_EQ_INT((int)st.reconnects, 1);

    out = pg_connect(url);
    pg_exec(out, "NOTIFY telemed, 'node:after-restart'");
    wait_event(p.ra, "node:after-restart");
    wait_event(p.rb, "node:after-restart");
    PQfinish(out);

    tm_cluster_free(p.a);
    tm_cluster_free(p.b);
    recorder_free(p.ra);
    recorder_free(p.rb);
    g_free(url);
}

typedef struct silent {
    int listener;
    int conn; /* the bus's connection, once accepted */
} silent;

/* The bus's connection to the silent server was closed by the bus: what it
 * sent is read and dropped, end of stream means it gave up. */
static bool bus_hung_up(void *data)
{
    silent *s = data;
    if (s->conn < 0)
        s->conn = accept4(s->listener, NULL, NULL, SOCK_NONBLOCK);
    if (s->conn < 0)
        return false;
    char buf[512];
    ssize_t n;
    while ((n = recv(s->conn, buf, sizeof(buf), 0)) > 0)
        ;
    return n == 0;
}

typedef struct ready {
    tm_cluster *c;
    recorder *r;
} ready;

static bool bus_ready(void *data)
{
    ready *w = data;
    return tm_cluster_bus_ready(w->c) && w->r->resyncs >= 1;
}

/* PostgreSQL's port taken by a server that accepts and never answers: the
 * bus gives the connect up at its deadline (libpq alone would wait for
 * minutes), and once PostgreSQL is back there it listens and is told to
 * resync. */
static void test_pg_bus_silent_server(void)
{
    char *url = pg_fixture_url("silent");
    pg_fixture_kill();
    silent s = {pg_fixture_silent_listener(), -1};
    recorder *r = recorder_new();
    char *err = NULL;
    tm_cluster *c = tm_cluster_new(&(tm_cluster_options){.node_id = "node-s",
                                                         .public_url = "https://node-s.test",
                                                         .bus_url = url,
                                                         .reconnect_max_ms = 200,
                                                         .connect_timeout_ms = 300},
                                   &err);
    CHECK(c != NULL);
    tm_cluster_set_event_handler(c, on_event, r);
    CHECK(spin_until(bus_hung_up, &s));
    CHECK(!tm_cluster_bus_ready(c));
    close(s.conn);
    close(s.listener);

    pg_fixture_restart();
    ready w = {c, r};
    CHECK(spin_until(bus_ready, &w));
    CHECK_EQ_INT(tm_cluster_publish(c, TM_BUS_QUEUE, "after-silence"), 0);
    wait_event(r, "queue:after-silence");
    tm_cluster_free(c);
    recorder_free(r);
    g_free(url);
}

int main(void)
{
    test_dir = g_dir_make_tmp("tm-cluster-XXXXXX", NULL);
    CHECK(test_dir != NULL);
    RUN(test_parse_event);
    RUN(test_bad_options);
    RUN(test_in_process_bus);
    RUN(test_heartbeat);
    RUN(test_pg_bus);
    RUN(test_pg_bus_silent_server);
    char *cmd = g_strdup_printf("rm -rf '%s'", test_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", test_dir);
    g_free(cmd);
    g_free(test_dir);
    TEST_DONE();
}

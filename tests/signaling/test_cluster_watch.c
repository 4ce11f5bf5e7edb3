/*
 * test_cluster_watch.c - a supervisor's visit.watch of a visit another node
 * holds (signaling/supervision.c): two tm_signaling instances, each with
 * its own store connection and tm_cluster, on one PostgreSQL this test
 * starts (tests/support/pg.sh), driven through sessions without a socket.
 *
 * A visit of the core hospital's cardiology runs on node B. Through node
 * A, a supervisor scoped to another institution is refused as on one node
 * (forbidden, audited as denied) and not sent anywhere; a supervisor of the
 * whole alliance is sent to B, and that move is audited too.
 */
#include "signaling_testing.h"
#include "telemed/cluster.h"
#include "telemed/common.h"
#include "telemed/config.h"
#include "telemed/jwt.h"
#include "telemed/log.h"
#include "telemed/store.h"

#include <glib.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "pg_fixture.h"
#include "tm_spin.h"
#include "tm_test.h"

#define SECRET "test-cluster-watch-secret-0123456789abcdef"

static tm_config cfg;
static char *dir;

#include "cluster_nodes.h"

/* The core hospital's cardiology with a doctor on shift, and a county
 * hospital, west, with a department of its own. */
static void seed(const char *url)
{
    char *err = NULL;
    tm_store *st = tm_store_open(url, cfg.hospital_id, &err);
    CHECK(st != NULL);
    int64_t now = tm_now_ms();
    CHECK_EQ_INT(tm_store_dept_put(st, "cardiology", "Cardiology"), 0);
    CHECK_EQ_INT(tm_store_doctor_put(st, "d-li", "Dr. Li", "cardiology", "110100000000001", NULL),
                 0);
    CHECK_EQ_INT(
        tm_store_shift_add(st, "d-li", "cardiology", now - 3600000, now + 3600000, 1, NULL), 0);
    tm_institution west = {.id = "west", .name = "West County Hospital", .kind = "hospital"};
    CHECK_EQ_INT(tm_store_institution_put(st, &west), 0);
    CHECK_EQ_INT(tm_store_dept_put(st, "west-im", "Internal Medicine"), 0);
    CHECK_EQ_INT(tm_store_dept_set_institution(st, "west-im", "west"), 0);
    tm_store_free(st);
}

/* ---- sessions -------------------------------------------------------- */

typedef struct wait_frame {
    client *c;
    const char *type, *re; /* re NULL: any */
    json_t *found;
} wait_frame;

static bool got_frame(void *data)
{
    wait_frame *w = data;
    pump(w->c);
    for (guint i = 0; i < w->c->frames->len && !w->found; i++) {
        json_t *m = w->c->frames->pdata[i];
        if (g_strcmp0(json_string_value(json_object_get(m, "type")), w->type) == 0 &&
            (!w->re || g_strcmp0(json_string_value(json_object_get(m, "re")), w->re) == 0))
            w->found = m;
    }
    return w->found != NULL;
}

/* The first frame of type answering re (NULL: any); borrowed. */
static json_t *wait_for(client *c, const char *type, const char *re)
{
    wait_frame w = {c, type, re, NULL};
    if (!spin_until(got_frame, &w))
        fprintf(stderr, "never got %s re=%s\n", type, re ? re : "");
    CHECK(w.found != NULL);
    return w.found;
}

static int frames_of(client *c, const char *type)
{
    pump(c);
    int n = 0;
    for (guint i = 0; i < c->frames->len; i++)
        n += g_strcmp0(json_string_value(json_object_get(c->frames->pdata[i], "type")), type) == 0;
    return n;
}

/* ---- the visit on B --------------------------------------------------- */

typedef struct listed_live {
    node *n;
    const char *visit_id;
} listed_live;

/* Whether n's overview lists visit_id as live on another node. */
static bool listed_remote(void *data)
{
    listed_live *l = data;
    json_t *o = tm_signaling_overview(l->n->sig);
    bool found = false;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(o, "visits"), i, v)
    {
        found |= g_strcmp0(json_string_value(json_object_get(v, "id")), l->visit_id) == 0 &&
                 json_is_true(json_object_get(v, "remote"));
    }
    json_decref(o);
    return found;
}

/* A patient and the doctor on b start a visit of cardiology; its id into
 * visit_id, the two sessions into p and d. */
static void visit_on(node *b, char visit_id[64], client **p, client **d)
{
    *p = connect_as(b, "p-1", TM_ROLE_PATIENT);
    wait_for(*p, "result", "h");
    send_text(*p, "{\"type\":\"checkin\",\"id\":\"c\",\"dept\":\"cardiology\",\"kind\":"
                  "\"follow_up\"}");
    json_t *data = json_object_get(wait_for(*p, "result", "c"), "data");
    g_strlcpy(visit_id, json_string_value(json_object_get(data, "visit_id")), 64);
    *d = connect_as(b, "d-li", TM_ROLE_DOCTOR);
    wait_for(*d, "result", "h");
    send_text(*d, "{\"type\":\"doctor.status\",\"id\":\"s\",\"status\":\"available\"}");
    wait_for(*d, "result", "s");
    wait_for(*d, "visit.offer", NULL);
    char accept[160];
    g_snprintf(accept, sizeof(accept),
               "{\"type\":\"visit.accept\",\"id\":\"acc\",\"visit_id\":\"%s\"}", visit_id);
    send_text(*d, accept);
    wait_for(*d, "result", "acc");
}

/* The visit.watch audit rows of actor on visit_id, newest first. */
static json_t *watch_audit(tm_store *s, const char *visit_id, const char *actor)
{
    json_t *rows = tm_store_audit_list(s, visit_id, actor, 0, 100);
    json_t *out = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        if (g_strcmp0(json_string_value(json_object_get(row, "action")), "visit.watch") == 0)
            json_array_append(out, row);
    }
    json_decref(rows);
    return out;
}

static const char *field(json_t *row, const char *key)
{
    return json_string_value(json_object_get(row, key));
}

static void test_watch_elsewhere_checks_scope_first(void)
{
    char *url = pg_fixture_url(__func__);
    seed(url);
    node nodes[2] = {node_start("node-a", url, url), node_start("node-b", url, url)};
    node *a = &nodes[0], *b = &nodes[1];
    CHECK(spin_until(buses_ready, nodes));
    char visit[64];
    client *patient, *doctor;
    visit_on(b, visit, &patient, &doctor);
    listed_live live = {a, visit};
    CHECK(spin_until(listed_remote, &live));
    char watch[200];
    g_snprintf(watch, sizeof(watch), "{\"type\":\"visit.watch\",\"id\":\"w\",\"visit_id\":\"%s\"}",
               visit);

    /* West's supervisor through A: refused in the one-node words, not moved. */
    client *west = connect_in(a, "s-west", TM_ROLE_SUPERVISOR, "west");
    wait_for(west, "result", "h");
    send_text(west, watch);
    json_t *refused = wait_for(west, "error", "w");
    CHECK_STR(field(refused, "code"), "forbidden");
    CHECK_STR(field(refused, "message"), "the visit belongs to another institution");
    CHECK_EQ_INT(frames_of(west, "session.move"), 0);
    json_t *rows = watch_audit(a->store, visit, "s-west");
    CHECK_EQ_INT((int)json_array_size(rows), 1);
    CHECK_STR(field(json_array_get(rows, 0), "outcome"), "denied");
    CHECK_STR(field(json_array_get(rows, 0), "detail"), "another institution");
    json_decref(rows);

    /* The alliance's supervisor through A: sent to B, and that is audited. */
    client *all = connect_as(a, "s-all", TM_ROLE_SUPERVISOR);
    wait_for(all, "result", "h");
    send_text(all, watch);
    json_t *elsewhere = wait_for(all, "error", "w");
    CHECK_STR(field(elsewhere, "code"), "conflict");
    CHECK_STR(field(elsewhere, "reason"), "visit_elsewhere");
    json_t *move = wait_for(all, "session.move", NULL);
    CHECK_STR(field(move, "url"), "wss://node-b.test:8443/ws");
    CHECK_STR(field(move, "visit_id"), visit);
    rows = watch_audit(a->store, visit, "s-all");
    CHECK_EQ_INT((int)json_array_size(rows), 1);
    CHECK_STR(field(json_array_get(rows, 0), "outcome"), "moved");
    CHECK_STR(field(json_array_get(rows, 0), "detail"), "held by node-b");
    json_decref(rows);

    client *cs[] = {all, west, doctor, patient};
    for (size_t i = 0; i < TM_ARRAY_LEN(cs); i++)
        client_close(cs[i]);
    node_stop(b);
    node_stop(a);
    g_free(url);
}

int main(void)
{
    tm_log_set_level(TM_LOG_WARN);
    dir = g_dir_make_tmp("test-cluster-watch-XXXXXX", NULL);
    CHECK(dir != NULL);
    char *argv[] = {"test_cluster_watch", "--data-dir", dir, "--fanout-threads=1",
                    "--no-consent-required"};
    char *err = NULL;
    if (tm_config_load(&cfg, (int)TM_ARRAY_LEN(argv), argv, NULL, &err) != 0)
        fprintf(stderr, "config: %s\n", err);
    CHECK(err == NULL);
    pg_fixture_start();
    RUN(test_watch_elsewhere_checks_scope_first);
    tm_config_clear(&cfg);
    char *rm[] = {"rm", "-rf", dir, NULL};
    g_spawn_sync(NULL, rm, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, NULL, NULL);
    g_free(dir);
    TEST_DONE();
}

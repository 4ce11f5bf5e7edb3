/*
 * store_suite_node.c - the cluster part of the store contract (issue 19),
 * through telemed/store.h only: nodes registering with a heartbeat and
 * their load, which nodes are live and in what order a new visit prefers
 * them, placing a visit's media on one node, and releasing what a dead node
 * held exactly once when two nodes take over at the same time.
 */
#include "store_suite.h"

#include "telemed/common.h"
#include "tm_test.h"

#include <glib.h>
#include <stdio.h>
#include <string.h>

static const int64_t NOW = 1764072000000LL; /* 2025-11-25T12:00:00Z */
static const int64_t DEAD_AFTER = 10000;

static tm_node_info node(const char *id, int64_t heartbeat_ms, int visits, int peers)
{
    tm_node_info n = {0};
    g_strlcpy(n.id, id, sizeof(n.id));
    g_snprintf(n.public_url, sizeof(n.public_url), "https://%s.test:8443", id);
    n.started_at_ms = NOW - 60000;
    n.heartbeat_ms = heartbeat_ms;
    n.visits = visits;
    n.peers = peers;
    return n;
}

/* Registers n as dead: its own old heartbeat_ms says so where the caller's
 * times are stored; where the database's clock judges, its row is aged. */
static void beat_dead(const store_backend *b, tm_store *s, const char *db, tm_node_info *n)
{
    CHECK_EQ_INT(tm_store_node_heartbeat(s, n), 0);
    if (b->age_heartbeat)
        b->age_heartbeat(db, n->id, DEAD_AFTER + 1000);
}

static void seed(tm_store *s)
{
    CHECK_EQ_INT(tm_store_dept_put(s, "cardio", "Cardiology"), 0);
    CHECK_EQ_INT(tm_store_doctor_put(s, "d1", "Dr One", "cardio", "LIC1", NULL), 0);
    CHECK_EQ_INT(
        tm_store_shift_add(s, "d1", "cardio", tm_now_ms() - 1000, tm_now_ms() + 3600000, 4, NULL),
        0);
}

static void waiting_visit(tm_store *s, tm_visit *v, const char *patient)
{
    memset(v, 0, sizeof(*v));
    g_strlcpy(v->patient_id, patient, sizeof(v->patient_id));
    g_strlcpy(v->dept_id, "cardio", sizeof(v->dept_id));
    g_strlcpy(v->kind, "follow_up", sizeof(v->kind));
    static int64_t later; /* check-ins strictly in call order */
    v->checkin_ms = tm_now_ms() - 5000 + later++;
    CHECK_EQ_INT(tm_store_visit_checkin(s, v, "ua/1"), 0);
}

static void active_visit(tm_store *s, tm_visit *v, const char *patient)
{
    waiting_visit(s, v, patient);
    CHECK_EQ_INT(tm_store_visit_offer(s, v->id, "d1", tm_now_ms()), 0);
    CHECK_EQ_INT(tm_store_visit_accept(s, v->id, "d1", "ua/d", tm_now_ms()), 0);
}

static const char *ids_of(const tm_node_info *n, size_t count, char *buf, size_t len)
{
    buf[0] = '\0';
    for (size_t i = 0; i < count; i++) {
        g_strlcat(buf, i ? "," : "", len);
        g_strlcat(buf, n[i].id, len);
    }
    return buf;
}

static json_t *node_in(json_t *list, const char *id)
{
    size_t i;
    json_t *o;
    json_array_foreach(list, i, o) if (strcmp(json_string_value(json_object_get(o, "id")), id) ==
                                       0) return o;
    return NULL;
}

/* Live nodes come least loaded first, draining ones last, dead ones not at
 * all; a heartbeat replaces every figure; a node leaving removes its row. */
static void t_node_registry(const store_backend *b)
{
    tm_store *s = b->open("nodes");
    tm_node_info a = node("node-a", NOW - 1000, 3, 6);
    tm_node_info bn = node("node-b", NOW - 2000, 1, 2);
    tm_node_info c = node("node-c", NOW - 500, 0, 0);
    c.draining = true;
    tm_node_info dead = node("node-dead", NOW - DEAD_AFTER - 1, 0, 0);
    CHECK_EQ_INT(tm_store_node_heartbeat(s, &a), 0);
    CHECK_EQ_INT(tm_store_node_heartbeat(s, &bn), 0);
    CHECK_EQ_INT(tm_store_node_heartbeat(s, &c), 0);
    beat_dead(b, s, "nodes", &dead);

    tm_node_info *live = NULL;
    size_t n = 0;
    char buf[256];
    CHECK_EQ_INT(tm_store_nodes_live(s, NOW, DEAD_AFTER, &live, &n), 0);
    CHECK_STR(ids_of(live, n, buf, sizeof(buf)), "node-b,node-a,node-c");
    CHECK_STR(live[1].public_url, "https://node-a.test:8443");
    CHECK_EQ_INT(live[1].visits, 3);
    CHECK_EQ_INT(live[1].peers, 6);
    CHECK(live[2].draining);
    g_free(live);

    /* node-b takes two more visits: node-a, now lighter, comes first. */
    bn.visits = 5;
    bn.heartbeat_ms = NOW;
    CHECK_EQ_INT(tm_store_node_heartbeat(s, &bn), 0);
    CHECK_EQ_INT(tm_store_nodes_live(s, NOW, DEAD_AFTER, &live, &n), 0);
    CHECK_STR(ids_of(live, n, buf, sizeof(buf)), "node-a,node-b,node-c");
    g_free(live);

    json_t *list = tm_store_node_list(s, NOW, DEAD_AFTER);
    CHECK_EQ_INT((int)json_array_size(list), 4);
    CHECK(json_is_false(json_object_get(node_in(list, "node-dead"), "alive")));
    CHECK(json_is_true(json_object_get(node_in(list, "node-c"), "alive")));
    CHECK(json_is_true(json_object_get(node_in(list, "node-c"), "draining")));
    CHECK_EQ_INT((int)json_integer_value(json_object_get(node_in(list, "node-b"), "visits")), 5);
    json_decref(list);

    /* Long after, nobody is live; where the database's clock judges, a
     * reader whose clock is an hour ahead sees what the database sees. */
    CHECK_EQ_INT(tm_store_nodes_live(s, NOW + 3600000, DEAD_AFTER, &live, &n), 0);
    if (b->age_heartbeat)
        CHECK_STR(ids_of(live, n, buf, sizeof(buf)), "node-a,node-b,node-c");
    else
        CHECK(live == NULL && n == 0);
    g_free(live);

    tm_node_info bad = node("", NOW, 0, 0);
    CHECK_EQ_INT(tm_store_node_heartbeat(s, &bad), TM_EINVAL);
    bad = node("node-x", NOW, 0, 0);
    bad.public_url[0] = '\0';
    CHECK_EQ_INT(tm_store_node_heartbeat(s, &bad), TM_EINVAL);

    CHECK_EQ_INT(tm_store_node_remove(s, "node-c"), 0);
    CHECK_EQ_INT(tm_store_node_remove(s, "node-c"), TM_ENOTFOUND);
    list = tm_store_node_list(s, NOW, DEAD_AFTER);
    CHECK_EQ_INT((int)json_array_size(list), 3);
    json_decref(list);
    tm_store_free(s);
}

/* A visit's media goes to one node: the first placement wins, a move names
 * the node it moves from, and a visit that is over stays where it was. */
static void t_node_media_placement(const store_backend *b)
{
    tm_store *s = b->open("media_node");
    seed(s);
    tm_visit v;
    active_visit(s, &v, "p1");
    char at[64];
    CHECK_EQ_INT(tm_store_visit_media_node(s, v.id, at), 0);
    CHECK_STR(at, "");
    CHECK_EQ_INT(tm_store_visit_place_media(s, v.id, NULL, "node-a"), 0);
    CHECK_EQ_INT(tm_store_visit_place_media(s, v.id, NULL, "node-b"), TM_ECONFLICT);
    CHECK(strlen(tm_store_errmsg(s)) > 0);
    CHECK_EQ_INT(tm_store_visit_place_media(s, v.id, "node-c", "node-b"), TM_ECONFLICT);
    CHECK_EQ_INT(tm_store_visit_media_node(s, v.id, at), 0);
    CHECK_STR(at, "node-a");
    CHECK_EQ_INT(tm_store_visit_place_media(s, v.id, "node-a", "node-b"), 0);
    CHECK_EQ_INT(tm_store_visit_media_node(s, v.id, at), 0);
    CHECK_STR(at, "node-b");

    CHECK_EQ_INT(tm_store_visit_end(s, v.id, "completed", "d1", tm_now_ms()), 0);
    CHECK_EQ_INT(tm_store_visit_place_media(s, v.id, "node-b", "node-a"), TM_ECONFLICT);
    CHECK_EQ_INT(tm_store_visit_media_node(s, v.id, at), 0);
    CHECK_STR(at, "node-b");

    CHECK_EQ_INT(tm_store_visit_place_media(s, "no-visit", NULL, "node-a"), TM_ENOTFOUND);
    CHECK_EQ_INT(tm_store_visit_media_node(s, "no-visit", at), TM_ENOTFOUND);
    CHECK_EQ_INT(tm_store_visit_place_media(s, v.id, NULL, ""), TM_EINVAL);
    tm_store_free(s);
}

/* The accept that places the visit: the node comes with the accept, and a
 * refused accept places nothing. */
static void t_node_accept_places(const store_backend *b)
{
    tm_store *s = b->open("accept_on");
    seed(s);
    CHECK_EQ_INT(tm_store_doctor_put(s, "d2", "Dr Two", "cardio", "LIC2", NULL), 0);
    tm_visit v;
    waiting_visit(s, &v, "p1");
    CHECK_EQ_INT(tm_store_visit_place_media(s, v.id, NULL, "node-a"), 0);
    CHECK_EQ_INT(tm_store_visit_offer(s, v.id, "d1", tm_now_ms()), 0);
    CHECK_EQ_INT(tm_store_visit_accept_on(s, v.id, "d2", "ua", NULL, "node-b", tm_now_ms()),
                 TM_EPERM);
    char at[64];
    CHECK_EQ_INT(tm_store_visit_media_node(s, v.id, at), 0);
    CHECK_STR(at, "node-a");
    CHECK_EQ_INT(tm_store_visit_accept_on(s, v.id, "d1", "ua", NULL, "node-b", tm_now_ms()), 0);
    CHECK_EQ_INT(tm_store_visit_media_node(s, v.id, at), 0);
    CHECK_STR(at, "node-b");
    tm_visit row;
    CHECK_EQ_INT(tm_store_visit_get(s, v.id, &row), 0);
    CHECK_STR(row.state, "active");
    tm_store_free(s);
}

/* The holder withdraws one offer: that doctor's, made at that time, while
 * it stands; never another one, nor one already over. */
static void t_node_withdraw_offer(const store_backend *b)
{
    tm_store *s = b->open("withdraw_offer");
    seed(s);
    tm_visit v;
    waiting_visit(s, &v, "p1");
    int64_t at = tm_now_ms();
    CHECK_EQ_INT(tm_store_visit_offer(s, v.id, "d1", at), 0);
    CHECK_EQ_INT(tm_store_visit_withdraw_offer(s, v.id, "d2", at, tm_now_ms()), TM_ECONFLICT);
    CHECK_EQ_INT(tm_store_visit_withdraw_offer(s, v.id, "d1", at - 1, tm_now_ms()), TM_ECONFLICT);
    tm_visit row;
    CHECK_EQ_INT(tm_store_visit_get(s, v.id, &row), 0);
    CHECK_STR(row.state, "offered");
    CHECK_EQ_INT(tm_store_visit_withdraw_offer(s, v.id, "d1", at, tm_now_ms()), 0);
    CHECK_EQ_INT(tm_store_visit_get(s, v.id, &row), 0);
    CHECK_STR(row.state, "waiting");
    CHECK_STR(row.doctor_id, "");
    json_t *q = tm_store_dept_queue(s, "cardio");
    CHECK(json_is_null(json_object_get(json_array_get(q, 0), "offered_ms")));
    json_decref(q);
    /* Withdrawn once; an accept of it comes too late. */
    CHECK_EQ_INT(tm_store_visit_withdraw_offer(s, v.id, "d1", at, tm_now_ms()), TM_ECONFLICT);
    CHECK_EQ_INT(tm_store_visit_accept(s, v.id, "d1", "ua", tm_now_ms()), TM_ECONFLICT);
    /* A new offer is listed with its time, and is not the old one's to end. */
    CHECK_EQ_INT(tm_store_visit_offer(s, v.id, "d1", at + 5), 0);
    q = tm_store_dept_queue(s, "cardio");
    CHECK(json_integer_value(json_object_get(json_array_get(q, 0), "offered_ms")) == at + 5);
    json_decref(q);
    CHECK_EQ_INT(tm_store_visit_withdraw_offer(s, v.id, "d1", at, tm_now_ms()), TM_ECONFLICT);
    CHECK_EQ_INT(tm_store_visit_accept(s, v.id, "d1", "ua", tm_now_ms()), 0);
    tm_store_free(s);
}

/* node-b dies with two live visits and a waiting patient; node-a lives with one. Two nodes take
 * over at once (two handles on one database): the dead node's visits are
 * released once, to one of them; the live node's visit and the ended one
 * are untouched; a released visit can be placed again. */
static void t_node_takeover(const store_backend *b)
{
    tm_store *s = b->open("takeover");
    tm_store *other = b->open("takeover");
    seed(s);
    int64_t now = tm_now_ms();
    tm_node_info a = node("node-a", now, 1, 2);
    tm_node_info dead = node("node-b", now - DEAD_AFTER - 1, 2, 4);
    CHECK_EQ_INT(tm_store_node_heartbeat(s, &a), 0);
    beat_dead(b, s, "takeover", &dead);

    tm_visit on_a, on_b1, on_b2, ended;
    active_visit(s, &on_a, "p-a");
    active_visit(s, &on_b1, "p-b1");
    active_visit(s, &on_b2, "p-b2");
    active_visit(s, &ended, "p-ended");
    CHECK_EQ_INT(tm_store_visit_place_media(s, on_a.id, NULL, "node-a"), 0);
    CHECK_EQ_INT(tm_store_visit_place_media(s, on_b1.id, NULL, "node-b"), 0);
    CHECK_EQ_INT(tm_store_visit_place_media(s, on_b2.id, NULL, "node-b"), 0);
    CHECK_EQ_INT(tm_store_visit_place_media(s, ended.id, NULL, "node-b"), 0);
    CHECK_EQ_INT(tm_store_visit_end(s, ended.id, "completed", "d1", now), 0);
    tm_visit waiting_b; /* a patient waiting through node-b */
    waiting_visit(s, &waiting_b, "p-wb");
    CHECK_EQ_INT(tm_store_visit_place_media(s, waiting_b.id, NULL, "node-b"), 0);

    json_t *mine = NULL, *theirs = NULL;
    int leases = -1;
    CHECK_EQ_INT(tm_store_node_takeover(s, now, DEAD_AFTER, &mine, &leases), 0);
    CHECK_EQ_INT(tm_store_node_takeover(other, now, DEAD_AFTER, &theirs, NULL), 0);
    CHECK_EQ_INT((int)json_array_size(mine) + (int)json_array_size(theirs), 3);
    CHECK_EQ_INT((int)json_array_size(theirs), 0);
    CHECK_EQ_INT(leases, 0);
    const char *want[] = {on_b1.id, on_b2.id, waiting_b.id};
    for (size_t k = 0; k < TM_ARRAY_LEN(want); k++) {
        bool found = false;
        for (size_t j = 0; j < json_array_size(mine); j++)
            found |= strcmp(json_string_value(json_array_get(mine, j)), want[k]) == 0;
        CHECK(found);
    }

    char at[64];
    CHECK_EQ_INT(tm_store_visit_media_node(s, on_a.id, at), 0);
    CHECK_STR(at, "node-a");
    CHECK_EQ_INT(tm_store_visit_media_node(s, ended.id, at), 0);
    CHECK_STR(at, "node-b");
    CHECK_EQ_INT(tm_store_visit_media_node(s, on_b1.id, at), 0);
    CHECK_STR(at, "");
    CHECK_EQ_INT(tm_store_visit_place_media(other, on_b1.id, NULL, "node-a"), 0);
    CHECK_EQ_INT(tm_store_visit_place_media(s, on_b1.id, NULL, "node-c"), TM_ECONFLICT);
    json_decref(mine);
    json_decref(theirs);

    /* Nothing more to release. */
    CHECK_EQ_INT(tm_store_node_takeover(s, now, DEAD_AFTER, &mine, NULL), 0);
    CHECK_EQ_INT((int)json_array_size(mine), 0);
    json_decref(mine);
    tm_store_free(other);
    tm_store_free(s);
}

/* What every node reloads on queue:<dept>: the waiting and offered visits
 * of that department, oldest first, and nothing active, ended or elsewhere. */
static void t_dept_queue(const store_backend *b)
{
    tm_store *s = b->open("dept_queue");
    seed(s);
    CHECK_EQ_INT(tm_store_dept_put(s, "derm", "Dermatology"), 0);
    tm_visit first, offered, active, ended, elsewhere;
    waiting_visit(s, &first, "p1");
    waiting_visit(s, &offered, "p2");
    CHECK_EQ_INT(tm_store_visit_offer(s, offered.id, "d1", tm_now_ms()), 0);
    active_visit(s, &active, "p3");
    active_visit(s, &ended, "p4");
    CHECK_EQ_INT(tm_store_visit_end(s, ended.id, "completed", "d1", tm_now_ms()), 0);
    memset(&elsewhere, 0, sizeof(elsewhere));
    g_strlcpy(elsewhere.patient_id, "p5", sizeof(elsewhere.patient_id));
    g_strlcpy(elsewhere.dept_id, "derm", sizeof(elsewhere.dept_id));
    g_strlcpy(elsewhere.kind, "follow_up", sizeof(elsewhere.kind));
    elsewhere.checkin_ms = tm_now_ms() - 60000;
    CHECK_EQ_INT(tm_store_visit_checkin(s, &elsewhere, "ua"), 0);

    json_t *q = tm_store_dept_queue(s, "cardio");
    CHECK_EQ_INT((int)json_array_size(q), 2);
    json_t *row = json_array_get(q, 0);
    CHECK_STR(json_string_value(json_object_get(row, "id")), first.id);
    CHECK_STR(json_string_value(json_object_get(row, "state")), "waiting");
    row = json_array_get(q, 1);
    CHECK_STR(json_string_value(json_object_get(row, "id")), offered.id);
    CHECK_STR(json_string_value(json_object_get(row, "state")), "offered");
    json_decref(q);
    q = tm_store_dept_queue(s, "nodept");
    CHECK_EQ_INT((int)json_array_size(q), 0);
    json_decref(q);
    tm_store_free(s);
}

static int queue_away(tm_store *s, const char *visit_id)
{
    json_t *q = tm_store_dept_queue(s, "cardio");
    int away = -1;
    size_t i;
    json_t *row;
    json_array_foreach(q, i, row)
    {
        if (strcmp(json_string_value(json_object_get(row, "id")), visit_id) == 0)
            away = (int)json_integer_value(json_object_get(row, "patient_away"));
    }
    json_decref(q);
    return away;
}

/* A patient in their grace period on the node holding their visit is
 * offered by no node (the offer refused, the queue says so) until they are
 * back; once no node holds the visit (its node died) the offer is made. */
static void t_node_offer_skips_away_patient(const store_backend *b)
{
    tm_store *s = b->open("away");
    seed(s);
    tm_visit v, orphan;
    waiting_visit(s, &v, "p1");
    CHECK_EQ_INT(tm_store_visit_place_media(s, v.id, NULL, "node-a"), 0);
    CHECK_EQ_INT(queue_away(s, v.id), 0);
    CHECK_EQ_INT(tm_store_visit_patient_away(s, v.id, tm_now_ms()), 0);
    CHECK_EQ_INT(queue_away(s, v.id), 1);
    CHECK_EQ_INT(tm_store_visit_offer(s, v.id, "d1", tm_now_ms()), TM_ECONFLICT);
    CHECK(strstr(tm_store_errmsg(s), "away") != NULL);
    tm_visit row;
    CHECK_EQ_INT(tm_store_visit_get(s, v.id, &row), 0);
    CHECK_STR(row.state, "waiting");
    CHECK_EQ_INT(tm_store_visit_patient_away(s, v.id, 0), 0);
    CHECK_EQ_INT(queue_away(s, v.id), 0);
    CHECK_EQ_INT(tm_store_visit_offer(s, v.id, "d1", tm_now_ms()), 0);

    waiting_visit(s, &orphan, "p2");
    CHECK_EQ_INT(tm_store_visit_patient_away(s, orphan.id, tm_now_ms()), 0);
    CHECK_EQ_INT(queue_away(s, orphan.id), 0);
    CHECK_EQ_INT(tm_store_visit_offer(s, orphan.id, "d1", tm_now_ms()), 0);
    CHECK_EQ_INT(tm_store_visit_patient_away(s, "no-visit", tm_now_ms()), TM_ENOTFOUND);
    CHECK_EQ_INT(tm_store_visit_offer(s, "no-visit", "d1", tm_now_ms()), TM_ENOTFOUND);
    tm_store_free(s);
}

/* The away mark belongs to one holder's one wait: a new holder starts
 * without it (the same node placing the visit again, as at a restart,
 * keeps it), and an accept ends it, so a transfer back to waiting is
 * offered. */
static void t_node_away_mark_ends(const store_backend *b)
{
    tm_store *s = b->open("away-ends");
    seed(s);
    tm_visit v;
    waiting_visit(s, &v, "p1");
    CHECK_EQ_INT(tm_store_visit_place_media(s, v.id, NULL, "node-a"), 0);
    CHECK_EQ_INT(tm_store_visit_patient_away(s, v.id, tm_now_ms()), 0);
    CHECK_EQ_INT(tm_store_visit_place_media(s, v.id, "node-a", "node-a"), 0);
    CHECK_EQ_INT(queue_away(s, v.id), 1);
    CHECK_EQ_INT(tm_store_visit_place_media(s, v.id, "node-a", "node-b"), 0);
    CHECK_EQ_INT(queue_away(s, v.id), 0);

    CHECK_EQ_INT(tm_store_visit_offer(s, v.id, "d1", tm_now_ms()), 0);
    CHECK_EQ_INT(tm_store_visit_patient_away(s, v.id, tm_now_ms()), 0); /* dropped while offered */
    CHECK_EQ_INT(tm_store_visit_accept(s, v.id, "d1", "ua/d", tm_now_ms()), 0);
    CHECK_EQ_INT(tm_store_visit_transfer(s, v.id, "d1", "cardio", NULL, "x", tm_now_ms(), NULL), 0);
    CHECK_EQ_INT(queue_away(s, v.id), 0);
    CHECK_EQ_INT(tm_store_visit_offer(s, v.id, "d1", tm_now_ms()), 0);
    tm_store_free(s);
}

/* ---- two nodes racing to offer one patient --------------------------- */

#define RACES 200

typedef struct racer {
    tm_store *s;
    const char *doctor;
    const char *visit_id;
    gint *go;
    int rc;
} racer;

static gpointer race_offer(gpointer data)
{
    racer *r = data;
    while (!g_atomic_int_get(r->go))
        g_thread_yield();
    r->rc = tm_store_visit_offer(r->s, r->visit_id, r->doctor, tm_now_ms());
    return NULL;
}

/* Two nodes (two handles, two threads started together) offer the same
 * waiting patient to their own doctor, RACES times: every time exactly one
 * offer is recorded and the other is refused as a conflict. */
static void t_node_offer_race(const store_backend *b)
{
    tm_store *s = b->open("offer_race");
    seed(s);
    CHECK_EQ_INT(tm_store_doctor_put(s, "d2", "Dr Two", "cardio", "LIC2", NULL), 0);
    CHECK_EQ_INT(
        tm_store_shift_add(s, "d2", "cardio", tm_now_ms() - 1000, tm_now_ms() + 3600000, 4, NULL),
        0);
    tm_store *node_a = b->open("offer_race"), *node_b = b->open("offer_race");
    int wins_a = 0, wins_b = 0;
    for (int i = 0; i < RACES; i++) {
        tm_visit v;
        char patient[32];
        g_snprintf(patient, sizeof(patient), "p-race-%d", i);
        waiting_visit(s, &v, patient);
        gint go = 0;
        racer ra = {node_a, "d1", v.id, &go, 1}, rb = {node_b, "d2", v.id, &go, 1};
        GThread *ta = g_thread_new("node-a", race_offer, &ra);
        GThread *tb = g_thread_new("node-b", race_offer, &rb);
        g_atomic_int_set(&go, 1);
        g_thread_join(ta);
        g_thread_join(tb);
        CHECK((ra.rc == 0) != (rb.rc == 0));
        CHECK(ra.rc == 0 || ra.rc == TM_ECONFLICT);
        CHECK(rb.rc == 0 || rb.rc == TM_ECONFLICT);
        tm_visit after;
        CHECK_EQ_INT(tm_store_visit_get(s, v.id, &after), 0);
        CHECK_STR(after.state, "offered");
        CHECK_STR(after.doctor_id, ra.rc == 0 ? "d1" : "d2");
        json_t *rec = tm_store_visit_record(s, v.id);
        CHECK_EQ_INT((int)json_array_size(json_object_get(rec, "offers")), 1);
        json_decref(rec);
        wins_a += ra.rc == 0;
        wins_b += rb.rc == 0;
    }
    CHECK_EQ_INT(wins_a + wins_b, RACES);
    printf("# offer races: node-a won %d, node-b %d\n", wins_a, wins_b);
    tm_store_free(node_a);
    tm_store_free(node_b);
    tm_store_free(s);
}

void store_suite_nodes(const store_backend *b, const char *dir)
{
    (void)dir;
    t_node_registry(b);
    t_dept_queue(b);
    t_node_media_placement(b);
    t_node_accept_places(b);
    t_node_withdraw_offer(b);
    t_node_takeover(b);
    t_node_offer_race(b);
    t_node_offer_skips_away_patient(b);
    t_node_away_mark_ends(b);
}

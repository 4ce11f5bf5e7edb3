/*
 * test_cluster_sync.c - two nodes' waiting rooms kept in step
 * (signaling/cluster_sync.c): two tm_signaling instances, each with its own
 * store connection and its own tm_cluster (registry and LISTEN/NOTIFY bus)
 * on one PostgreSQL this test starts (tests/support/pg.sh), driven through
 * sessions without a socket (signaling_testing.h).
 *
 * A patient checked in on node A is counted ahead of one checked in later
 * on node B, and both nodes' overviews list both; when A's doctor accepts
 * A's patient, B's patient is pushed position 1 by B; a patient leaving on
 * B leaves A's queue too; A's busy doctor is not offered B's patient. A
 * doctor on B is offered a patient waiting on A, and the visit runs on
 * the doctor's node (the patient is sent there) or, when B is busier, on
 * the patient's node (the doctor is sent there), also when the doctor's
 * hello there is quicker than the bus event of the accept. A guest, an
 * invited doctor and a watching supervisor who reach the node that does
 * not hold the visit are sent to the one that does. A patient in their
 * grace period on their node is offered by no node until they are back,
 * also across a restart of that node. A node that misses a bus event, wins
 * a dead holder's visit while offering it, or restarts while another node
 * could place its visits, still leaves every visit with one node that
 * runs or ends it.
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

#define SECRET "test-cluster-sync-secret-0123456789abcdef"

static tm_config cfg;
static char *dir;

#include "cluster_nodes.h"

/* ---- sessions -------------------------------------------------------- */

typedef struct wait_frame {
    client *c;
    const char *type, *key, *value; /* value NULL: any */
    int int_value;                  /* when value is NULL and int_key is set */
    const char *int_key;
    json_t *found;
} wait_frame;

static bool frame_matches(json_t *m, const wait_frame *w)
{
    if (g_strcmp0(json_string_value(json_object_get(m, "type")), w->type) != 0)
        return false;
    if (w->key && g_strcmp0(json_string_value(json_object_get(m, w->key)), w->value) != 0)
        return false;
    if (w->int_key && json_integer_value(json_object_get(m, w->int_key)) != w->int_value)
        return false;
    return true;
}

static bool got_frame(void *data)
{
    wait_frame *w = data;
    pump(w->c);
    for (guint i = 0; i < w->c->frames->len; i++)
        if (frame_matches(w->c->frames->pdata[i], w)) {
            w->found = w->c->frames->pdata[i];
            return true;
        }
    return false;
}

/* The first frame of type whose key is value (key NULL: any) and whose
 * int_key is int_value (int_key NULL: any); borrowed. */
static json_t *wait_for(client *c, const char *type, const char *key, const char *value,
                        const char *int_key, int int_value)
{
    wait_frame w = {c, type, key, value, int_value, int_key, NULL};
    if (!spin_until(got_frame, &w)) {
        fprintf(stderr, "never got %s %s=%s %s=%d; got:\n", type, key ? key : "",
                value ? value : "", int_key ? int_key : "", int_value);
        for (guint i = 0; i < c->frames->len; i++) {
            char *t = json_dumps(c->frames->pdata[i], 0);
            fprintf(stderr, "  %s\n", t);
            free(t);
        }
    }
    CHECK(w.found != NULL);
    return w.found;
}

static json_t *answer(client *c, const char *re)
{
    return wait_for(c, "result", "re", re, NULL, 0);
}

/* ---- the overview ---------------------------------------------------- */

typedef struct listed {
    node *n;
    const char *visit_id;
    bool want; /* listed (true) or not (false) */
} listed;

static bool overview_lists(void *data)
{
    listed *l = data;
    json_t *o = tm_signaling_overview(l->n->sig);
    bool found = false;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(o, "visits"), i,
                       v) if (g_strcmp0(json_string_value(json_object_get(v, "id")), l->visit_id) ==
                              0) found = true;
    json_decref(o);
    return found == l->want;
}

static void wait_listed(node *n, const char *visit_id, bool want)
{
    listed l = {n, visit_id, want};
    CHECK(spin_until(overview_lists, &l));
}

static void seed_hospital(const char *db)
{
    /* A PostgreSQL URL as it is; anything else a file in the test's dir. */
    char *path =
        g_str_has_prefix(db, "postgresql://") ? g_strdup(db) : g_build_filename(dir, db, NULL);
    char *err = NULL;
    tm_store *st = tm_store_open(path, cfg.hospital_id, &err);
    g_free(path);
    CHECK(st != NULL);
    int64_t now = tm_now_ms();
    CHECK_EQ_INT(tm_store_dept_put(st, "cardiology", "Cardiology"), 0);
    CHECK_EQ_INT(tm_store_doctor_put(st, "d-li", "Dr. Li", "cardiology", "110100000000001", NULL),
                 0);
    CHECK_EQ_INT(
        tm_store_shift_add(st, "d-li", "cardiology", now - 3600000, now + 3600000, 1, NULL), 0);
    tm_store_free(st);
}

static bool bus_ready(void *data)
{
    return tm_cluster_bus_ready(data);
}

typedef struct mirror_state {
    node *n;
    const char *visit_id, *state;
} mirror_state;

/* Whether n's overview shows visit_id in state. */
static bool mirror_in_state(void *data)
{
    mirror_state *m = data;
    json_t *o = tm_signaling_overview(m->n->sig);
    bool found = false;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(o, "visits"), i, v)
    {
        if (g_strcmp0(json_string_value(json_object_get(v, "id")), m->visit_id) == 0 &&
            g_strcmp0(json_string_value(json_object_get(v, "state")), m->state) == 0)
            found = true;
    }
    json_decref(o);
    return found;
}

static void test_two_nodes_one_waiting_room(void)
{
    char *url = pg_fixture_url(__func__);
    seed_hospital(url);
    node nodes[2] = {node_start("node-a", url, url), node_start("node-b", url, url)};
    node *a = &nodes[0], *b = &nodes[1];
    CHECK(spin_until(buses_ready, nodes));

    client *pa = connect_as(a, "p-on-a", TM_ROLE_PATIENT);
    answer(pa, "h");
    send_text(pa, "{\"type\":\"checkin\",\"id\":\"c\",\"dept\":\"cardiology\",\"kind\":"
                  "\"follow_up\"}");
    json_t *res = answer(pa, "c");
    char va[64];
    g_strlcpy(va, json_string_value(json_object_get(json_object_get(res, "data"), "visit_id")),
              sizeof(va));
    CHECK(va[0] != '\0');
    CHECK_EQ_INT((int)json_integer_value(json_object_get(json_object_get(res, "data"), "position")),
                 1);
    /* B learns of A's patient from the bus and the store. */
    wait_listed(b, va, true);

    client *pb = connect_as(b, "p-on-b", TM_ROLE_PATIENT);
    answer(pb, "h");
    send_text(pb, "{\"type\":\"checkin\",\"id\":\"c\",\"dept\":\"cardiology\",\"kind\":"
                  "\"follow_up\"}");
    res = answer(pb, "c");
    char vb[64];
    g_strlcpy(vb, json_string_value(json_object_get(json_object_get(res, "data"), "visit_id")),
              sizeof(vb));
    /* Second in the one waiting room, behind the patient on node A. */
    CHECK_EQ_INT((int)json_integer_value(json_object_get(json_object_get(res, "data"), "position")),
                 2);
    CHECK_EQ_INT((int)json_integer_value(json_object_get(json_object_get(res, "data"), "waiting")),
                 2);
    wait_listed(a, vb, true);

    /* A's doctor is offered A's patient, first in line, and accepts. */
    client *doc = connect_as(a, "d-li", TM_ROLE_DOCTOR);
    answer(doc, "h");
    send_text(doc, "{\"type\":\"doctor.status\",\"id\":\"s\",\"status\":\"available\"}");
    answer(doc, "s");
    json_t *offer = wait_for(doc, "visit.offer", "visit_id", va, NULL, 0);
    CHECK_STR(json_string_value(json_object_get(offer, "visit_id")), va);
    char accept[160];
    g_snprintf(accept, sizeof(accept),
               "{\"type\":\"visit.accept\",\"id\":\"acc\",\"visit_id\":\"%s\"}", va);
    send_text(doc, accept);
    answer(doc, "acc");

    /* B's patient moves up to 1, pushed by node B. */
    json_t *pos = wait_for(pb, "queue.position", "visit_id", vb, "position", 1);
    CHECK_EQ_INT((int)json_integer_value(json_object_get(pos, "waiting")), 1);
    /* B's supervisors see it live on A. */
    mirror_state live_on_a = {b, va, "active"};
    CHECK(spin_until(mirror_in_state, &live_on_a));

    /* B's patient leaves: A's mirror goes, and A's doctor was never offered it. */
    char leave[160];
    g_snprintf(leave, sizeof(leave), "{\"type\":\"queue.leave\",\"id\":\"l\",\"visit_id\":\"%s\"}",
               vb);
    send_text(pb, leave);
    answer(pb, "l");
    wait_listed(a, vb, false);
    pump(doc);
    for (guint i = 0; i < doc->frames->len; i++) {
        json_t *m = doc->frames->pdata[i];
        if (g_strcmp0(json_string_value(json_object_get(m, "type")), "visit.offer") == 0)
            CHECK_STR(json_string_value(json_object_get(m, "visit_id")), va);
    }

    client_close(doc);
    client_close(pb);
    client_close(pa);
    node_stop(b);
    node_stop(a);
    g_free(url);
}

/* A patient on n checked in to cardiology; its visit id into visit_id. */
static client *checked_in(node *n, const char *sub, char visit_id[64], int *position)
{
    client *c = connect_as(n, sub, TM_ROLE_PATIENT);
    answer(c, "h");
    send_text(c, "{\"type\":\"checkin\",\"id\":\"c\",\"dept\":\"cardiology\",\"kind\":"
                 "\"follow_up\"}");
    json_t *data = json_object_get(answer(c, "c"), "data");
    g_strlcpy(visit_id, json_string_value(json_object_get(data, "visit_id")), 64);
    *position = (int)json_integer_value(json_object_get(data, "position"));
    return c;
}

static json_t *hello_state(client *c)
{
    json_t *data = json_object_get(answer(c, "h"), "data");
    CHECK(json_is_true(json_object_get(data, "resumed")));
    return json_object_get(data, "state");
}

typedef struct visit_state {
    tm_store *s;
    const char *visit_id, *state;
} visit_state;

static bool visit_in_state(void *data)
{
    visit_state *w = data;
    tm_visit v;
    return tm_store_visit_get(w->s, w->visit_id, &v) == 0 && strcmp(v.state, w->state) == 0;
}

static bool never(void *data)
{
    (void)data;
    return false;
}

/* Runs the loop for ms: for what must NOT happen in that time (a grace
 * period running out); a slow machine can only make it pass, never fail. */
static void run_for(int ms)
{
    int64_t end = g_get_monotonic_time() + (int64_t)ms * 1000;
    guint tick = g_timeout_add(20, tm_spin_wake, NULL);
    while (g_get_monotonic_time() < end)
        g_main_context_iteration(NULL, TRUE);
    g_source_remove(tick);
    (void)never;
}

/* Three patients wait on node A, one on node B. One of A's patients comes
 * back through node B: B takes the visit over from A in its place (A stops
 * that patient's grace). Node A goes away while its doctor is offered its
 * first patient: that patient comes back through B, the dead node's offer
 * is withdrawn and they are first again; the third never comes back, is
 * released by B's takeover and ends when its grace runs out there.
 * Everyone else keeps their place. */
static void test_patients_keep_places_when_nodes_change(void)
{
    char *url = pg_fixture_url(__func__);
    seed_hospital(url);
    node nodes[2] = {node_start("node-a", url, url), node_start("node-b", url, url)};
    node *a = &nodes[0], *b = &nodes[1];
    CHECK(spin_until(buses_ready, nodes));
    char v1[64], v2[64], v3[64], vb[64];
    int pos;
    client *p1 = checked_in(a, "p-1", v1, &pos);
    CHECK_EQ_INT(pos, 1);
    client *p2 = checked_in(a, "p-2", v2, &pos);
    client *p3 = checked_in(a, "p-3", v3, &pos);
    CHECK_EQ_INT(pos, 3);
    wait_listed(b, v3, true);
    client *pb = checked_in(b, "p-b", vb, &pos);
    CHECK_EQ_INT(pos, 4);
    char at[64];
    CHECK_EQ_INT(tm_store_visit_media_node(a->store, v2, at), 0);
    CHECK_STR(at, "node-a");

    /* p-2's connection to A drops; p-2 comes back through B, second still. */
    client_close(p2);
    p2 = connect_as(b, "p-2", TM_ROLE_PATIENT);
    json_t *state = hello_state(p2);
    CHECK_EQ_INT((int)json_integer_value(json_object_get(state, "position")), 2);
    CHECK_EQ_INT(tm_store_visit_media_node(b->store, v2, at), 0);
    CHECK_STR(at, "node-b");
    /* Longer than A's grace: A handed the visit on, so it did not end it. */
    run_for(cfg.grace_s * 1000 + 1000);
    visit_state still = {b->store, v2, "waiting"};
    CHECK(visit_in_state(&still));

    /* Node A offers p-1 to its doctor (as its dispatcher does, through the
     * store) and dies before the doctor answers: nobody ends that offer on
     * A, as after kill -9. B sees the offer. */
    CHECK_EQ_INT(tm_store_visit_offer(a->store, v1, "d-li", tm_now_ms()), 0);
    CHECK_EQ_INT(tm_cluster_publish(a->cluster, TM_BUS_QUEUE, "cardiology"), 0);
    mirror_state offered = {b, v1, "offered"};
    CHECK(spin_until(mirror_in_state, &offered));
    /* A's offer is not B's to finish: B would drain at once. */
    CHECK_EQ_INT(tm_signaling_live_visits(b->sig), 0);
    client_close(p1);
    client_close(p3);
    node_stop(a);
    /* p-1 comes back through B: the dead node's offer is withdrawn, p-1 is
     * first again. */
    p1 = connect_as(b, "p-1", TM_ROLE_PATIENT);
    answer(p1, "h");
    wait_for(p1, "queue.position", "visit_id", v1, "position", 1);
    visit_state back = {b->store, v1, "waiting"};
    CHECK(visit_in_state(&back));
    /* p-3 does not come back: released by B's takeover, its grace ends it
     * on B (a visit that never started is cancelled). */
    visit_state gone = {b->store, v3, "cancelled"};
    CHECK(spin_until(visit_in_state, &gone));
    wait_for(pb, "queue.position", "visit_id", vb, "position", 3);
    CHECK(visit_in_state(&still));
    CHECK(visit_in_state(&back));

    client_close(p1);
    client_close(p2);
    client_close(pb);
    node_stop(b);
    g_free(url);
}

/* Node B starts (or restarts, as in an upgrade one node at a time) while
 * patients wait on node A and one of A's doctors is offered a patient: B
 * counts them but takes none of them as its own, so no grace period runs
 * out for them on B and A's offer stands. */
static void test_node_starting_leaves_others_visits(void)
{
    char *url = pg_fixture_url(__func__);
    seed_hospital(url);
    node a = node_start("node-a", url, url);
    char v1[64], v2[64];
    int pos;
    client *p1 = checked_in(&a, "p-1", v1, &pos);
    client *p2 = checked_in(&a, "p-2", v2, &pos);
    CHECK_EQ_INT(pos, 2);
    CHECK_EQ_INT(tm_store_visit_offer(a.store, v1, "d-li", tm_now_ms()), 0);

    node b = node_start("node-b", url, url);
    node both[2] = {a, b};
    CHECK(spin_until(buses_ready, both));
    wait_listed(&b, v2, true);
    CHECK_EQ_INT(tm_signaling_live_visits(b.sig), 0);
    run_for(cfg.grace_s * 1000 + 1000);
    visit_state offered = {a.store, v1, "offered"}, waiting = {a.store, v2, "waiting"};
    CHECK(visit_in_state(&offered));
    CHECK(visit_in_state(&waiting));
    char at[64];
    CHECK_EQ_INT(tm_store_visit_media_node(b.store, v2, at), 0);
    CHECK_STR(at, "node-a");

    client_close(p1);
    client_close(p2);
    node_stop(&b);
    node_stop(&a);
    g_free(url);
}

static void seed_doctor(const char *db, const char *id, const char *licence)
{
    char *err = NULL;
    tm_store *st = tm_store_open(db, cfg.hospital_id, &err);
    CHECK(st != NULL);
    int64_t now = tm_now_ms();
    CHECK_EQ_INT(tm_store_doctor_put(st, id, id, "cardiology", licence, NULL), 0);
    CHECK_EQ_INT(tm_store_shift_add(st, id, "cardiology", now - 3600000, now + 3600000, 1, NULL),
                 0);
    tm_store_free(st);
}

/* A doctor on duty on n, away: counted in every estimate, offered nobody
 * (an available one would be offered the patients waiting on any node). */
static client *doctor_away(node *n, const char *sub)
{
    client *d = connect_as(n, sub, TM_ROLE_DOCTOR);
    answer(d, "h");
    send_text(d, "{\"type\":\"doctor.status\",\"id\":\"s\",\"status\":\"away\"}");
    answer(d, "s");
    return d;
}

/* The next queue.position push for visit_id with this estimate (frames
 * seen before are dropped: an earlier push may have said the same). */
static void wait_estimate(client *p, const char *visit_id, int estimated_wait_s)
{
    pump(p);
    g_ptr_array_set_size(p->frames, 0);
    wait_for(p, "queue.position", "visit_id", visit_id, "estimated_wait_s", estimated_wait_s);
}

typedef struct dept_figure {
    node *n;
    const char *key;
    int want;
} dept_figure;

static bool overview_dept_says(void *data)
{
    dept_figure *f = data;
    json_t *o = tm_signaling_overview(f->n->sig);
    json_t *d = json_array_get(json_object_get(o, "departments"), 0);
    bool ok = json_integer_value(json_object_get(d, f->key)) == f->want;
    json_decref(o);
    return ok;
}

/* The overview's entry for visit_id on n (a new reference), or NULL. */
static json_t *overview_visit(node *n, const char *visit_id)
{
    json_t *o = tm_signaling_overview(n->sig), *found = NULL;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(o, "visits"), i, v)
    {
        if (g_strcmp0(json_string_value(json_object_get(v, "id")), visit_id) == 0)
            found = json_incref(v);
    }
    json_decref(o);
    return found;
}

/* Doctors on duty on node B count in the estimates of the patients waiting
 * on node A, coming and going; node A's supervisors see a visit live on
 * node B, which node, and no longer once it ended. */
static void test_doctors_and_live_visits_span_nodes(void)
{
    char *url = pg_fixture_url(__func__);
    seed_hospital(url);
    seed_doctor(url, "d-wang", "110100000000002");
    node nodes[2] = {node_start("node-a", url, url), node_start("node-b", url, url)};
    node *a = &nodes[0], *b = &nodes[1];
    CHECK(spin_until(buses_ready, nodes));
    char v1[64], v2[64], v3[64], vb[64];
    int pos;
    client *p1 = checked_in(a, "p-1", v1, &pos);
    client *p2 = checked_in(a, "p-2", v2, &pos);
    client *p3 = checked_in(a, "p-3", v3, &pos);
    CHECK_EQ_INT(pos, 3);
    wait_listed(b, v3, true);
    int avg = cfg.avg_visit_s;

    /* Third in line with one doctor (on B): two visits ahead, then half of one. */
    client *li = doctor_away(b, "d-li");
    wait_estimate(p3, v3, 2 * avg + avg / 2);
    client *wang = doctor_away(b, "d-wang");
    wait_estimate(p3, v3, avg + avg / 2);
    dept_figure two = {a, "doctors_on_duty", 2};
    CHECK(spin_until(overview_dept_says, &two));
    client_close(wang);
    wait_estimate(p3, v3, 2 * avg + avg / 2);

    /* An urgent patient on B, first in line, is offered to B's doctor (now
     * available), who accepts: live on B. */
    client *pb = connect_as(b, "p-b", TM_ROLE_PATIENT);
    answer(pb, "h");
    send_text(pb, "{\"type\":\"checkin\",\"id\":\"c\",\"dept\":\"cardiology\",\"kind\":"
                  "\"follow_up\",\"urgent\":true}");
    json_t *ci = json_object_get(answer(pb, "c"), "data");
    g_strlcpy(vb, json_string_value(json_object_get(ci, "visit_id")), sizeof(vb));
    CHECK_EQ_INT((int)json_integer_value(json_object_get(ci, "position")), 1);
    send_text(li, "{\"type\":\"doctor.status\",\"id\":\"s2\",\"status\":\"available\"}");
    answer(li, "s2");
    wait_for(li, "visit.offer", "visit_id", vb, NULL, 0);
    char msg[256];
    g_snprintf(msg, sizeof(msg), "{\"type\":\"visit.accept\",\"id\":\"acc\",\"visit_id\":\"%s\"}",
               vb);
    send_text(li, msg);
    answer(li, "acc");
    mirror_state live = {a, vb, "active"};
    CHECK(spin_until(mirror_in_state, &live));
    json_t *o = overview_visit(a, vb);
    CHECK(json_is_true(json_object_get(o, "remote")));
    CHECK_STR(json_string_value(json_object_get(o, "node")), "node-b");
    CHECK_STR(json_string_value(json_object_get(o, "doctor_id")), "d-li");
    CHECK_STR(json_string_value(json_object_get(o, "patient_id")), "p-b");
    CHECK(json_is_true(json_object_get(o, "urgent")));
    CHECK(json_is_string(json_object_get(o, "accepted_at")));
    CHECK(json_integer_value(json_object_get(o, "duration_s")) < 600);
    json_decref(o);
    dept_figure one_live = {a, "in_visit", 1};
    CHECK(spin_until(overview_dept_says, &one_live));
    /* B lists its own visit once, from its live state. */
    o = overview_visit(b, vb);
    CHECK(o != NULL && json_object_get(o, "remote") == NULL);
    json_decref(o);

    g_snprintf(msg, sizeof(msg),
               "{\"type\":\"visit.note\",\"id\":\"n\",\"visit_id\":\"%s\",\"text\":\"n\","
               "\"diagnosis_code\":\"I10\",\"sign\":true}",
               vb);
    send_text(li, msg);
    answer(li, "n");
    g_snprintf(msg, sizeof(msg),
               "{\"type\":\"visit.end\",\"id\":\"e\",\"visit_id\":\"%s\",\"reason\":"
               "\"completed\"}",
               vb);
    send_text(li, msg);
    answer(li, "e");
    wait_listed(a, vb, false);
    dept_figure none_live = {a, "in_visit", 0};
    CHECK(spin_until(overview_dept_says, &none_live));

    client_close(pb);
    client_close(li);
    client_close(p3);
    client_close(p2);
    client_close(p1);
    node_stop(b);
    node_stop(a);
    g_free(url);
}

/* Stands for a bus that is slow to bring node A the news: A hears nothing
 * while it is installed. */
static int late_events;
static void bus_late(tm_bus_kind kind, const char *id, void *user)
{
    (void)kind;
    (void)id;
    (void)user;
    late_events++;
}

/* A doctor on n, available (offered the next patient). */
static client *doctor_available(node *n, const char *sub)
{
    client *d = connect_as(n, sub, TM_ROLE_DOCTOR);
    answer(d, "h");
    send_text(d, "{\"type\":\"doctor.status\",\"id\":\"s\",\"status\":\"available\"}");
    answer(d, "s");
    return d;
}

/* The patient waits on node A; node B offers them to its doctor (B's
 * dispatcher's very store step and announcement) and dies before anyone
 * answers. A still lives, so no takeover releases the visit: A, which
 * holds it, withdraws that offer after the offer timeout, and its own
 * doctor is offered the patient. */
static void test_offer_of_a_dead_node_withdrawn(void)
{
    char *url = pg_fixture_url(__func__);
    seed_hospital(url);
    seed_doctor(url, "d-wang", "110100000000002");
    node nodes[2] = {node_start("node-a", url, url), node_start("node-b", url, url)};
    node *a = &nodes[0], *b = &nodes[1];
    a->cfg->offer_timeout_s = 5;
    CHECK(spin_until(buses_ready, nodes));
    char va[64];
    int pos;
    client *pa = checked_in(a, "p-a", va, &pos);
    wait_listed(b, va, true);
    CHECK_EQ_INT(tm_store_visit_offer(b->store, va, "d-li", tm_now_ms()), 0);
    CHECK_EQ_INT(tm_cluster_publish(b->cluster, TM_BUS_QUEUE, "cardiology"), 0);
    wait_for(pa, "visit.state", "state", "offered", NULL, 0);
    node_stop(b);

    client *wang = doctor_available(a, "d-wang");
    wait_for(pa, "visit.state", "state", "waiting", NULL, 0);
    wait_for(wang, "visit.offer", "visit_id", va, NULL, 0);
    tm_visit row;
    CHECK_EQ_INT(tm_store_visit_get(a->store, va, &row), 0);
    CHECK_STR(row.state, "offered");
    CHECK_STR(row.doctor_id, "d-wang");

    client_close(wang);
    client_close(pa);
    node_stop(a);
    g_free(url);
}

/* Node B's doctor is offered the patient waiting on node A, and B's offer
 * runs longer than A waits for it (B late, as a node that restarted): A
 * withdraws it; B hears it, tells its doctor the offer is withdrawn, and
 * offers the patient again. */
static void test_offer_withdrawn_by_holder_ends_on_offering_node(void)
{
    char *url = pg_fixture_url(__func__);
    seed_hospital(url);
    node nodes[2] = {node_start("node-a", url, url), node_start("node-b", url, url)};
    node *a = &nodes[0], *b = &nodes[1];
    a->cfg->offer_timeout_s = 5;
    b->cfg->offer_timeout_s = 600;
    CHECK(spin_until(buses_ready, nodes));
    char va[64];
    int pos;
    client *pa = checked_in(a, "p-a", va, &pos);
    wait_listed(b, va, true);
    client *doc = doctor_available(b, "d-li");
    wait_for(doc, "visit.offer", "visit_id", va, NULL, 0);
    json_t *cancelled = wait_for(doc, "visit.offer_cancelled", "visit_id", va, NULL, 0);
    CHECK_STR(json_string_value(json_object_get(cancelled, "reason")), "withdrawn");
    /* Free again: offered the same patient anew, and this offer holds. */
    pump(doc);
    g_ptr_array_set_size(doc->frames, 0);
    wait_for(doc, "visit.offer", "visit_id", va, NULL, 0);
    char accept[160];
    g_snprintf(accept, sizeof(accept),
               "{\"type\":\"visit.accept\",\"id\":\"acc\",\"visit_id\":\"%s\"}", va);
    send_text(doc, accept);
    answer(doc, "acc");
    visit_state active = {a->store, va, "active"};
    CHECK(spin_until(visit_in_state, &active));

    client_close(doc);
    client_close(pa);
    node_stop(b);
    node_stop(a);
    g_free(url);
}

/* Node A missed the bus event of another node's offer of its patient: its
 * own offer of that patient loses in the store. A follows the row (the
 * patient is told "offered") and its doctor, free, is offered the next
 * patient, instead of being spent on the same stale visit every second. */
static void test_offer_lost_follows_store(void)
{
    char *url = pg_fixture_url(__func__);
    seed_hospital(url);
    seed_doctor(url, "d-wang", "110100000000002");
    node a = node_start("node-a", url, url);
    CHECK(spin_until(bus_ready, a.cluster));
    char v1[64], v2[64];
    int pos;
    client *p1 = checked_in(&a, "p-1", v1, &pos);
    client *p2 = checked_in(&a, "p-2", v2, &pos);
    CHECK_EQ_INT(pos, 2);
    /* Another node's offer, whose announcement never reached A: A hears
     * nothing more, or any queue event would set it right. */
    tm_cluster_set_event_handler(a.cluster, bus_late, NULL);
    CHECK_EQ_INT(tm_store_visit_offer(a.store, v1, "d-li", tm_now_ms()), 0);
    client *wang = doctor_available(&a, "d-wang");
    wait_for(p1, "visit.state", "state", "offered", NULL, 0);
    wait_for(wang, "visit.offer", "visit_id", v2, NULL, 0);

    client_close(wang);
    client_close(p2);
    client_close(p1);
    node_stop(&a);
    g_free(url);
}

static bool frame_seen(client *c, const char *type)
{
    pump(c);
    for (guint i = 0; i < c->frames->len; i++)
        if (g_strcmp0(json_string_value(json_object_get(c->frames->pdata[i], "type")), type) == 0)
            return true;
    return false;
}

/* The only doctor is on node B, the patient waits on node A: B offers the
 * mirrored patient (one offer in the store), A tells its patient; the
 * doctor accepts on B, which now holds the visit; A sends the patient
 * session.move to B, where their hello resumes the active visit. A later
 * hello through A is sent to B (holder_changed) before it is refused
 * (visit_elsewhere). The doctor ends the visit on B. */
static void test_doctor_on_other_node(void)
{
    char *url = pg_fixture_url(__func__);
    seed_hospital(url);
    node nodes[2] = {node_start("node-a", url, url), node_start("node-b", url, url)};
    node *a = &nodes[0], *b = &nodes[1];
    CHECK(spin_until(buses_ready, nodes));
    char va[64];
    int pos;
    client *pa = checked_in(a, "p-a", va, &pos);
    wait_listed(b, va, true);

    client *doc = connect_as(b, "d-li", TM_ROLE_DOCTOR);
    answer(doc, "h");
    send_text(doc, "{\"type\":\"doctor.status\",\"id\":\"s\",\"status\":\"available\"}");
    answer(doc, "s");
    wait_for(doc, "visit.offer", "visit_id", va, NULL, 0);
    wait_for(pa, "visit.state", "state", "offered", NULL, 0);
    tm_visit row;
    CHECK_EQ_INT(tm_store_visit_get(a->store, va, &row), 0);
    CHECK_STR(row.doctor_id, "d-li");

    char accept[160];
    g_snprintf(accept, sizeof(accept),
               "{\"type\":\"visit.accept\",\"id\":\"acc\",\"visit_id\":\"%s\"}", va);
    send_text(doc, accept);
    answer(doc, "acc");
    char at[64];
    CHECK_EQ_INT(tm_store_visit_media_node(b->store, va, at), 0);
    CHECK_STR(at, "node-b");
    json_t *move = wait_for(pa, "session.move", "visit_id", va, NULL, 0);
    CHECK_STR(json_string_value(json_object_get(move, "url")), "wss://node-b.test:8443/ws");
    CHECK_STR(json_string_value(json_object_get(move, "reason")), "visit_placed");
    client_close(pa);
    client *pb = connect_as(b, "p-a", TM_ROLE_PATIENT);
    json_t *state = hello_state(pb);
    CHECK_STR(json_string_value(json_object_get(json_object_get(state, "visit"), "state")),
              "active");
    wait_for(doc, "visit.participant", "role", "patient", NULL, 0);
    /* Longer than A's grace: A ended nothing when the page left it. */
    run_for(cfg.grace_s * 1000 + 1000);
    visit_state active = {b->store, va, "active"};
    CHECK(visit_in_state(&active));

    /* The patient's page comes back through A (a reload) while B holds the
     * live visit: sent to B first, then refused (cluster_failover.c); A
     * takes nothing. */
    client *again = connect_as(a, "p-a", TM_ROLE_PATIENT);
    json_t *refused = wait_for(again, "error", "re", "h", NULL, 0);
    CHECK_STR(json_string_value(json_object_get(refused, "reason")), "visit_elsewhere");
    json_t *sent = again->frames->pdata[0];
    CHECK_STR(json_string_value(json_object_get(sent, "type")), "session.move");
    CHECK_STR(json_string_value(json_object_get(sent, "url")), "wss://node-b.test:8443/ws");
    CHECK_STR(json_string_value(json_object_get(sent, "visit_id")), va);
    CHECK_STR(json_string_value(json_object_get(sent, "reason")), "holder_changed");
    client_close(again);
    CHECK_EQ_INT(tm_store_visit_media_node(a->store, va, at), 0);
    CHECK_STR(at, "node-b");

    char end[200];
    g_snprintf(end, sizeof(end),
               "{\"type\":\"visit.end\",\"id\":\"e\",\"visit_id\":\"%s\","
               "\"reason\":\"completed\"}",
               va);
    send_text(doc, end);
    answer(doc, "e");
    wait_for(pb, "visit.state", "state", "ended", NULL, 0);
    CHECK(!frame_seen(doc, "session.move"));

    client_close(pb);
    client_close(doc);
    node_stop(b);
    node_stop(a);
    g_free(url);
}

/* A doctor on n, available; the offer it gets is accepted and its visit
 * id returned in visit_id. */
static client *doctor_takes_one(node *n, const char *sub, char visit_id[64])
{
    client *d = connect_as(n, sub, TM_ROLE_DOCTOR);
    answer(d, "h");
    send_text(d, "{\"type\":\"doctor.status\",\"id\":\"s\",\"status\":\"available\"}");
    answer(d, "s");
    json_t *offer = wait_for(d, "visit.offer", NULL, NULL, NULL, 0);
    g_strlcpy(visit_id, json_string_value(json_object_get(offer, "visit_id")), 64);
    char accept[160];
    g_snprintf(accept, sizeof(accept),
               "{\"type\":\"visit.accept\",\"id\":\"acc\",\"visit_id\":\"%s\"}", visit_id);
    send_text(d, accept);
    answer(d, "acc");
    return d;
}

typedef struct load_seen {
    tm_store *store;
    const char *node;
    int visits;
} load_seen;

static bool node_has_visits(void *data)
{
    load_seen *l = data;
    tm_node_info *nodes = NULL;
    size_t n = 0;
    bool seen = false;
    if (tm_store_nodes_live(l->store, tm_now_ms(), 10000, &nodes, &n) == 0)
        for (size_t i = 0; i < n; i++)
            seen |= strcmp(nodes[i].id, l->node) == 0 && nodes[i].visits >= l->visits;
    g_free(nodes);
    return seen;
}

/* Node B carries two live visits, node A none: B's doctor accepts A's
 * patient, and the visit runs on A, the patient's node; B sends the doctor
 * session.move to A, whose hello there resumes it. With late, the doctor's
 * hello reaches A before the bus event of the accept (under load, a page
 * moves quicker than the bus): it still resumes the visit, A starts it
 * then, and the late event changes nothing. */
static void visit_on_less_loaded_node(bool late)
{
    char *url = pg_fixture_url(late ? "hello_before_the_bus" : "less_loaded_node");
    seed_hospital(url);
    char *err = NULL;
    tm_store *st = tm_store_open(url, cfg.hospital_id, &err);
    CHECK(st != NULL);
    int64_t now = tm_now_ms();
    for (int i = 2; i <= 3; i++) {
        char id[16], lic[32];
        g_snprintf(id, sizeof(id), "d-%d", i);
        g_snprintf(lic, sizeof(lic), "11010000000000%d", i);
        CHECK_EQ_INT(tm_store_doctor_put(st, id, id, "cardiology", lic, NULL), 0);
        CHECK_EQ_INT(
            tm_store_shift_add(st, id, "cardiology", now - 3600000, now + 3600000, 1, NULL), 0);
    }
    tm_store_free(st);
    node nodes[2] = {node_start("node-a", url, url), node_start("node-b", url, url)};
    node *a = &nodes[0], *b = &nodes[1];
    CHECK(spin_until(buses_ready, nodes));
    char vx[64], vy[64], ox[64], oy[64], va[64];
    int pos;
    client *px = checked_in(b, "p-x", vx, &pos);
    client *dx = doctor_takes_one(b, "d-2", ox);
    client *py = checked_in(b, "p-y", vy, &pos);
    client *dy = doctor_takes_one(b, "d-3", oy);
    CHECK_STR(ox, vx);
    CHECK_STR(oy, vy);
    load_seen busy = {a->store, "node-b", 2};
    CHECK(spin_until(node_has_visits, &busy));

    client *pa = checked_in(a, "p-a", va, &pos);
    wait_listed(b, va, true);
    if (late)
        tm_cluster_set_event_handler(a->cluster, bus_late, NULL);
    char got[64];
    client *doc = doctor_takes_one(b, "d-li", got);
    CHECK_STR(got, va);
    json_t *move = wait_for(doc, "session.move", "visit_id", va, NULL, 0);
    CHECK_STR(json_string_value(json_object_get(move, "url")), "wss://node-a.test:8443/ws");
    CHECK_STR(json_string_value(json_object_get(move, "reason")), "visit_placed");
    char at[64];
    CHECK_EQ_INT(tm_store_visit_media_node(a->store, va, at), 0);
    CHECK_STR(at, "node-a");
    if (!late)
        wait_for(pa, "visit.state", "state", "active", NULL, 0);

    client_close(doc);
    doc = connect_as(a, "d-li", TM_ROLE_DOCTOR);
    json_t *state = hello_state(doc);
    CHECK(json_array_size(json_object_get(state, "visits")) == 1);
    CHECK_STR(json_string_value(json_array_get(json_object_get(state, "visits"), 0)), va);
    if (late) {
        wait_for(pa, "visit.state", "state", "active", NULL, 0);
        /* The bus catches up: its events reach A, the accept's among them. */
        tm_signaling_set_cluster(a->sig, a->cluster);
        CHECK_EQ_INT(tm_cluster_publish(b->cluster, TM_BUS_VISIT, va), 0);
        run_for(500);
    }
    CHECK(!frame_seen(pa, "session.move"));
    wait_for(pa, "visit.participant", "role", "doctor", NULL, 0);
    char end[200];
    g_snprintf(end, sizeof(end),
               "{\"type\":\"visit.end\",\"id\":\"e\",\"visit_id\":\"%s\","
               "\"reason\":\"completed\"}",
               va);
    send_text(doc, end);
    answer(doc, "e");
    wait_for(pa, "visit.state", "state", "ended", NULL, 0);

    client *cs[] = {doc, pa, dy, py, dx, px};
    for (size_t i = 0; i < TM_ARRAY_LEN(cs); i++)
        client_close(cs[i]);
    node_stop(b);
    node_stop(a);
    g_free(url);
}

/* Every committed (state, media_node) of a visit row, in visit_commits: a
 * deferred trigger reads the row as its transaction commits it, so what
 * other nodes could ever read is on record, not a step inside one. */
static void note_visit_commits(const char *url)
{
    pg_fixture_exec(url,
                    "CREATE TABLE visit_commits(id TEXT, state TEXT, media_node TEXT);"
                    "CREATE FUNCTION note_visit_commit() RETURNS trigger LANGUAGE plpgsql AS $$"
                    " BEGIN INSERT INTO visit_commits SELECT id, state, media_node FROM visits"
                    " WHERE id = NEW.id; RETURN NULL; END $$;"
                    "CREATE CONSTRAINT TRIGGER note_visit_commit AFTER UPDATE ON visits"
                    " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION"
                    " note_visit_commit()");
}

/* How many commits of visit_id were active with media_node other than node_id. */
static int active_commits_not_on(const char *url, const char *visit_id, const char *node_id)
{
    PGconn *c = PQconnectdb(url);
    CHECK(PQstatus(c) == CONNECTION_OK);
    const char *params[] = {visit_id, node_id};
    PGresult *r = PQexecParams(c,
                               "SELECT count(*) FILTER (WHERE media_node IS DISTINCT FROM $2),"
                               " count(*) FROM visit_commits WHERE id = $1 AND state = 'active'",
                               2, NULL, params, NULL, NULL, 0);
    CHECK(PQresultStatus(r) == PGRES_TUPLES_OK);
    int elsewhere = atoi(PQgetvalue(r, 0, 0)), all = atoi(PQgetvalue(r, 0, 1));
    PQclear(r);
    PQfinish(c);
    CHECK(all > 0);
    return elsewhere;
}

static bool no_live_visits(void *data)
{
    node *n = data;
    return tm_signaling_live_visits(n->sig) == 0;
}

/* The doctor on node B accepts the patient waiting on node A, and the
 * visit runs on B: the accept itself commits B as its node. Were the
 * visit active with A still its node for one commit, A would start it on
 * the patient's hello in that moment and B too: each with one of them.
 * The patient's hello through A, before A hears of the accept on the bus,
 * is sent to B. */
static void test_accept_commits_the_node(void)
{
    char *url = pg_fixture_url(__func__);
    seed_hospital(url);
    node nodes[2] = {node_start("node-a", url, url), node_start("node-b", url, url)};
    node *a = &nodes[0], *b = &nodes[1];
    CHECK(spin_until(buses_ready, nodes));
    note_visit_commits(url);
    char va[64];
    int pos;
    client *pa = checked_in(a, "p-a", va, &pos);
    wait_listed(b, va, true);
    client *doc = doctor_available(b, "d-li");
    wait_for(doc, "visit.offer", "visit_id", va, NULL, 0);
    wait_for(pa, "visit.state", "state", "offered", NULL, 0);
    tm_cluster_set_event_handler(a->cluster, bus_late, NULL);
    char accept[160];
    g_snprintf(accept, sizeof(accept),
               "{\"type\":\"visit.accept\",\"id\":\"acc\",\"visit_id\":\"%s\"}", va);
    send_text(doc, accept);
    answer(doc, "acc");
    CHECK_EQ_INT(active_commits_not_on(url, va, "node-b"), 0);

    client_close(pa);
    pa = connect_as(a, "p-a", TM_ROLE_PATIENT);
    json_t *move = wait_for(pa, "session.move", "visit_id", va, NULL, 0);
    CHECK_STR(json_string_value(json_object_get(move, "url")), "wss://node-b.test:8443/ws");
    visit_state active = {a->store, va, "active"};
    CHECK(visit_in_state(&active));
    /* The bus catches up: A keeps nothing of the visit. */
    tm_signaling_set_cluster(a->sig, a->cluster);
    CHECK_EQ_INT(tm_cluster_publish(b->cluster, TM_BUS_VISIT, va), 0);
    CHECK(spin_until(no_live_visits, a));

    client_close(pa);
    client_close(doc);
    node_stop(b);
    node_stop(a);
    g_free(url);
}

/* url with the role limited_node, made once with every right on the
 * tables (not a superuser: a REVOKE binds it). */
static char *limited_url(const char *url)
{
    pg_fixture_exec(url, "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles"
                         " WHERE rolname = 'limited_node') THEN CREATE ROLE limited_node LOGIN;"
                         " END IF; END $$;"
                         "GRANT CREATE, USAGE ON SCHEMA public TO limited_node;"
                         "GRANT ALL ON ALL TABLES IN SCHEMA public TO limited_node;"
                         "GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO limited_node");
    const char *at = strchr(url, '@');
    CHECK(at != NULL);
    return g_strdup_printf("postgresql://limited_node%s", at);
}

/* A visit live on node A, which goes away; the patient's hello reaches
 * node B while B cannot read the visit (its role may not read
 * appointments, which a visit's row is read with). B takes nothing: no
 * node holds the visit without running it. Once B can read again, the
 * next hello takes the visit over and resumes it. B still mirrors the
 * visit offered throughout (the bus never told it of the accept): a
 * mirror is not the visit held here. */
static void test_failed_takeover_takes_nothing(void)
{
    char *url = pg_fixture_url(__func__);
    seed_hospital(url);
    node a = node_start("node-a", url, url);
    char *limited = limited_url(url);
    node b = node_start("node-b", limited, limited);
    node both[2] = {a, b};
    CHECK(spin_until(buses_ready, both));
    char va[64];
    int pos;
    client *pa = checked_in(&a, "p-a", va, &pos);
    client *doc = doctor_available(&a, "d-li");
    wait_for(doc, "visit.offer", "visit_id", va, NULL, 0);
    mirror_state offered = {&b, va, "offered"};
    CHECK(spin_until(mirror_in_state, &offered));
    tm_cluster_set_event_handler(b.cluster, bus_late, NULL);
    char accept[160];
    g_snprintf(accept, sizeof(accept),
               "{\"type\":\"visit.accept\",\"id\":\"acc\",\"visit_id\":\"%s\"}", va);
    send_text(doc, accept);
    answer(doc, "acc");
    char at[64];
    CHECK_EQ_INT(tm_store_visit_media_node(b.store, va, at), 0);
    CHECK_STR(at, "node-a");
    client_close(doc);
    client_close(pa);
    node_stop(&a);

    pg_fixture_exec(url, "REVOKE SELECT ON appointments FROM limited_node");
    client *p = connect_as(&b, "p-a", TM_ROLE_PATIENT);
    wait_for(p, "error", "re", "h", NULL, 0);
    CHECK_EQ_INT(tm_store_visit_media_node(b.store, va, at), 0);
    CHECK(strcmp(at, "node-b") != 0);
    CHECK_EQ_INT(tm_signaling_live_visits(b.sig), 0);
    client_close(p);

    pg_fixture_exec(url, "GRANT SELECT ON appointments TO limited_node");
    p = connect_as(&b, "p-a", TM_ROLE_PATIENT);
    json_t *state = hello_state(p);
    CHECK_STR(json_string_value(json_object_get(json_object_get(state, "visit"), "state")),
              "active");
    CHECK_EQ_INT(tm_store_visit_media_node(b.store, va, at), 0);
    CHECK_STR(at, "node-b");
    CHECK_EQ_INT(tm_signaling_live_visits(b.sig), 1);
    mirror_state live = {&b, va, "active"};
    CHECK(mirror_in_state(&live));

    client_close(p);
    node_stop(&b);
    g_free(limited);
    g_free(url);
}

static void test_visit_runs_on_less_loaded_node(void)
{
    visit_on_less_loaded_node(false);
}

static void test_doctor_hello_before_the_bus(void)
{
    visit_on_less_loaded_node(true);
}

/* A hello of s on n with a guest's code or resume secret (field). */
static client *guest_hello(node *n, const char *field, const char *secret)
{
    client *c = g_new0(client, 1);
    c->frames = g_ptr_array_new_with_free_func((GDestroyNotify)json_decref);
    c->s = tm_signaling_session_open(n->sig, "127.0.0.1");
    char *hello = g_strdup_printf("{\"type\":\"hello\",\"id\":\"h\",\"%s\":\"%s\"}", field, secret);
    send_text(c, hello);
    g_free(hello);
    return c;
}

/* c was sent to node-b for visit_id before its request re was refused
 * with visit_elsewhere; the connection is left for the page to close. */
static void sent_to_b(client *c, const char *re, const char *visit_id)
{
    json_t *refused = wait_for(c, "error", "re", re, NULL, 0);
    CHECK_STR(json_string_value(json_object_get(refused, "code")), "conflict");
    CHECK_STR(json_string_value(json_object_get(refused, "reason")), "visit_elsewhere");
    json_t *move = wait_for(c, "session.move", "visit_id", visit_id, NULL, 0);
    CHECK_STR(json_string_value(json_object_get(move, "url")), "wss://node-b.test:8443/ws");
    CHECK_STR(json_string_value(json_object_get(move, "reason")), "holder_changed");
    CHECK_EQ_INT(tm_signaling_session_close_code(c->s), 0);
}

/* A visit lives on node B with a guest and an invited doctor. Everyone
 * else who reaches node A for it is sent to B, not refused or forgotten:
 * the guest's link (not used up by A), the guest's resume secret, the
 * invited doctor's hello and a supervisor's visit.watch; on B each goes
 * on. A takes nothing over. */
static void test_every_participant_sent_to_the_holder(void)
{
    char *url = pg_fixture_url(__func__);
    seed_hospital(url);
    seed_doctor(url, "d-wang", "110100000000002");
    node nodes[2] = {node_start("node-a", url, url), node_start("node-b", url, url)};
    node *a = &nodes[0], *b = &nodes[1];
    CHECK(spin_until(buses_ready, nodes));
    char vb[64], got[64];
    int pos;
    client *pb = checked_in(b, "p-b", vb, &pos);
    client *wang = doctor_away(b, "d-wang");
    client *li = doctor_takes_one(b, "d-li", got);
    CHECK_STR(got, vb);
    char msg[300];

    /* The guest's link, opened through A: sent to B, where it still works. */
    g_snprintf(msg, sizeof(msg),
               "{\"type\":\"guest.link_create\",\"id\":\"gl\",\"visit_id\":\"%s\","
               "\"name\":\"daughter\"}",
               vb);
    send_text(pb, msg);
    char code[64];
    g_strlcpy(code,
              json_string_value(json_object_get(json_object_get(answer(pb, "gl"), "data"), "code")),
              sizeof(code));
    client *ga = guest_hello(a, "guest_code", code);
    sent_to_b(ga, "h", vb);
    client_close(ga);
    client *gb = guest_hello(b, "guest_code", code);
    json_t *joined = json_object_get(answer(gb, "h"), "data");
    char resume[64];
    g_strlcpy(resume, json_string_value(json_object_get(joined, "resume")), sizeof(resume));
    /* Back through A (a reload the balancer sent there): sent to B again. */
    ga = guest_hello(a, "guest_resume", resume);
    sent_to_b(ga, "h", vb);
    client_close(ga);

    /* The invited doctor's hello through A. */
    g_snprintf(msg, sizeof(msg),
               "{\"type\":\"visit.invite\",\"id\":\"i\",\"visit_id\":\"%s\",\"user_id\":"
               "\"d-wang\",\"role\":\"consulting\"}",
               vb);
    send_text(li, msg);
    const char *invite =
        json_string_value(json_object_get(json_object_get(answer(li, "i"), "data"), "invite_id"));
    g_snprintf(msg, sizeof(msg),
               "{\"type\":\"visit.invite_answer\",\"id\":\"ia\",\"invite_id\":\"%s\","
               "\"accept\":true}",
               invite);
    send_text(wang, msg);
    answer(wang, "ia");
    client *wa = connect_as(a, "d-wang", TM_ROLE_DOCTOR);
    sent_to_b(wa, "h", vb);
    client_close(wa);

    /* A supervisor on A watches the visit B holds: sent to B, watched there. */
    client *sa = connect_as(a, "s-1", TM_ROLE_SUPERVISOR);
    answer(sa, "h");
    mirror_state live = {a, vb, "active"};
    CHECK(spin_until(mirror_in_state, &live));
    g_snprintf(msg, sizeof(msg), "{\"type\":\"visit.watch\",\"id\":\"w\",\"visit_id\":\"%s\"}", vb);
    send_text(sa, msg);
    sent_to_b(sa, "w", vb);
    client_close(sa);
    client *sb = connect_as(b, "s-1", TM_ROLE_SUPERVISOR);
    answer(sb, "h");
    send_text(sb, msg);
    answer(sb, "w");

    char at[64];
    CHECK_EQ_INT(tm_store_visit_media_node(a->store, vb, at), 0);
    CHECK_STR(at, "node-b");
    visit_state active = {b->store, vb, "active"};
    CHECK(visit_in_state(&active));
    client *cs[] = {sb, gb, li, wang, pb};
    for (size_t i = 0; i < TM_ARRAY_LEN(cs); i++)
        client_close(cs[i]);
    node_stop(b);
    node_stop(a);
    g_free(url);
}

typedef struct away_seen {
    tm_store *s;
    const char *visit_id;
    int want;
} away_seen;

/* Whether the store's waiting room says visit_id's patient is away (want). */
static bool store_says_away(void *data)
{
    away_seen *w = data;
    json_t *q = tm_store_dept_queue(w->s, "cardiology");
    bool seen = false;
    size_t i;
    json_t *row;
    json_array_foreach(q, i, row)
    {
        if (g_strcmp0(json_string_value(json_object_get(row, "id")), w->visit_id) == 0)
            seen = json_integer_value(json_object_get(row, "patient_away")) == w->want;
    }
    json_decref(q);
    return seen;
}

typedef struct connected_seen {
    node *n;
    const char *visit_id;
    bool want;
} connected_seen;

/* Whether n's overview says visit_id's patient is connected (want). */
static bool overview_says_connected(void *data)
{
    connected_seen *w = data;
    json_t *o = tm_signaling_overview(w->n->sig);
    bool seen = false;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(o, "visits"), i, v)
    {
        if (g_strcmp0(json_string_value(json_object_get(v, "id")), w->visit_id) == 0)
            seen = json_is_true(json_object_get(v, "patient_connected")) == w->want;
    }
    json_decref(o);
    return seen;
}

/* The patient first in line on node A drops (their grace period runs on
 * A), the second stays: the only doctor, on node B, goes available and is
 * offered the second, passed over the first (who is not offered); the
 * doctor declines, the first comes back on A and B offers them at once. */
static void test_patient_in_grace_offered_by_no_node(void)
{
    int grace = cfg.grace_s;
    cfg.grace_s = 60; /* the patient's place outlives the whole test */
    char *url = pg_fixture_url(__func__);
    seed_hospital(url);
    node nodes[2] = {node_start("node-a", url, url), node_start("node-b", url, url)};
    node *a = &nodes[0], *b = &nodes[1];
    CHECK(spin_until(buses_ready, nodes));
    char va[64], v2[64];
    int pos;
    client *pa = checked_in(a, "p-a", va, &pos);
    client *p2 = checked_in(a, "p-2", v2, &pos);
    connected_seen there = {b, va, true};
    CHECK(spin_until(overview_says_connected, &there));
    wait_listed(b, v2, true);
    client_close(pa);
    away_seen away = {a->store, va, 1};
    CHECK(spin_until(store_says_away, &away));
    connected_seen gone = {b, va, false};
    CHECK(spin_until(overview_says_connected, &gone));

    client *doc = connect_as(b, "d-li", TM_ROLE_DOCTOR);
    answer(doc, "h");
    send_text(doc, "{\"type\":\"doctor.status\",\"id\":\"s\",\"status\":\"available\"}");
    answer(doc, "s");
    /* The offer of the second is the round that passed over the first. */
    wait_for(doc, "visit.offer", "visit_id", v2, NULL, 0);
    for (guint i = 0; i < doc->frames->len; i++)
        CHECK(g_strcmp0(json_string_value(json_object_get(doc->frames->pdata[i], "visit_id")),
                        va) != 0);
    visit_state waiting = {a->store, va, "waiting"};
    CHECK(visit_in_state(&waiting));
    char msg[160];
    g_snprintf(msg, sizeof(msg), "{\"type\":\"visit.decline\",\"id\":\"dc\",\"visit_id\":\"%s\"}",
               v2);
    send_text(doc, msg);
    answer(doc, "dc");

    pa = connect_as(a, "p-a", TM_ROLE_PATIENT);
    hello_state(pa);
    wait_for(doc, "visit.offer", "visit_id", va, NULL, 0);
    away_seen back = {a->store, va, 0};
    CHECK(store_says_away(&back));

    client_close(doc);
    client_close(p2);
    client_close(pa);
    node_stop(b);
    node_stop(a);
    g_free(url);
    cfg.grace_s = grace;
}

/* The patient waiting on node A drops (A marks them away) and A restarts
 * with the same id, as in a rolling upgrade: the restored visit knows
 * nothing of that mark, yet the patient's hello on A clears it, and the
 * only doctor, on node B, is offered them. */
static void test_patient_back_after_restart_offered(void)
{
    int grace = cfg.grace_s;
    cfg.grace_s = 60; /* the patient's place outlives the restart */
    char *url = pg_fixture_url(__func__);
    seed_hospital(url);
    node nodes[2] = {node_start("node-a", url, url), node_start("node-b", url, url)};
    node *b = &nodes[1];
    CHECK(spin_until(buses_ready, nodes));
    char va[64];
    int pos;
    client *pa = checked_in(&nodes[0], "p-a", va, &pos);
    wait_listed(b, va, true);
    client_close(pa);
    away_seen away = {b->store, va, 1};
    CHECK(spin_until(store_says_away, &away));
    node_stop(&nodes[0]);
    nodes[0] = node_start("node-a", url, url);
    CHECK(spin_until(buses_ready, nodes));

    client *doc = doctor_available(b, "d-li");
    pa = connect_as(&nodes[0], "p-a", TM_ROLE_PATIENT);
    hello_state(pa);
    wait_for(doc, "visit.offer", "visit_id", va, NULL, 0);
    away_seen back = {b->store, va, 0};
    CHECK(store_says_away(&back));

    client_close(doc);
    client_close(pa);
    node_stop(b);
    node_stop(&nodes[0]);
    g_free(url);
    cfg.grace_s = grace;
}

/* The store refuses to offer the patient at the head of node A's queue
 * (it says they are away, which A does not know): A's free doctor is
 * offered the next patient, not spent on the refused one at every pass. */
static void test_refused_head_leaves_doctor_free(void)
{
    char *url = pg_fixture_url(__func__);
    seed_hospital(url);
    node a = node_start("node-a", url, url);
    CHECK(spin_until(bus_ready, a.cluster));
    char v1[64], v2[64];
    int pos;
    client *p1 = checked_in(&a, "p-1", v1, &pos);
    client *p2 = checked_in(&a, "p-2", v2, &pos);
    CHECK_EQ_INT(pos, 2);
    CHECK_EQ_INT(tm_store_visit_patient_away(a.store, v1, tm_now_ms()), 0);
    client *doc = doctor_available(&a, "d-li");
    wait_for(doc, "visit.offer", "visit_id", v2, NULL, 0);
    visit_state waiting = {a.store, v1, "waiting"};
    CHECK(visit_in_state(&waiting));

    client_close(doc);
    client_close(p2);
    client_close(p1);
    node_stop(&a);
    g_free(url);
}

/* Node A's write that its patient dropped fails (the database refuses it
 * for a while): A writes it again until it holds, or other nodes would
 * offer a patient who is not there. */
static void test_failed_away_write_retried(void)
{
    int grace = cfg.grace_s;
    cfg.grace_s = 60; /* the visit waits for the write */
    char *url = pg_fixture_url(__func__);
    seed_hospital(url);
    node a = node_start("node-a", url, url);
    CHECK(spin_until(bus_ready, a.cluster));
    char va[64];
    int pos;
    client *pa = checked_in(&a, "p-a", va, &pos);
    pg_fixture_exec(url, "CREATE FUNCTION refuse_away() RETURNS trigger LANGUAGE plpgsql AS $$"
                         " BEGIN RAISE EXCEPTION 'away refused for the test'; END $$;"
                         "CREATE TRIGGER refuse_away BEFORE UPDATE OF patient_away_at ON visits"
                         " FOR EACH ROW WHEN (NEW.patient_away_at IS NOT NULL)"
                         " EXECUTE FUNCTION refuse_away()");
    client_close(pa);
    away_seen not_yet = {a.store, va, 0};
    CHECK(store_says_away(&not_yet));
    pg_fixture_exec(url, "DROP TRIGGER refuse_away ON visits");
    away_seen away = {a.store, va, 1};
    CHECK(spin_until(store_says_away, &away));

    node_stop(&a);
    g_free(url);
    cfg.grace_s = grace;
}

/* Node B holds a waiting patient and node A's doctor is offered them (A's
 * own offer, its timer running on A) when B dies, the patient's page
 * losing it too: A wins the released visit and holds it with the offer
 * open. The offer lapses, the patient never comes back, and their grace on
 * A cancels the visit. */
static bool media_node_is(void *data)
{
    const char **w = data;
    char at[64];
    return tm_store_visit_media_node((tm_store *)(void *)w[0], w[1], at) == 0 &&
           strcmp(at, w[2]) == 0;
}

static void test_offer_open_when_holder_dies(void)
{
    char *url = pg_fixture_url(__func__);
    seed_hospital(url);
    node nodes[2] = {node_start("node-a", url, url), node_start("node-b", url, url)};
    node *a = &nodes[0], *b = &nodes[1];
    a->cfg->offer_timeout_s = 5;
    CHECK(spin_until(buses_ready, nodes));
    char vb[64];
    int pos;
    client *pb = checked_in(b, "p-b", vb, &pos);
    wait_listed(a, vb, true);
    client *doc = doctor_available(a, "d-li");
    wait_for(doc, "visit.offer", "visit_id", vb, NULL, 0);
    client_close(pb); /* the patient's page loses B with B */
    node_stop(b);
    const char *on_a[3] = {(const char *)(void *)a->store, vb, "node-a"};
    CHECK(spin_until(media_node_is, on_a));
    visit_state cancelled = {a->store, vb, "cancelled"};
    CHECK(spin_until(visit_in_state, &cancelled));
    wait_listed(a, vb, false); /* nor counted in any position */

    client_close(doc);
    node_stop(a);
    g_free(url);
}

/* Node A saw node B offer A's patient, then hears nothing more (a lost
 * visit:<id> event); B's doctor accepts and the visit runs on B. A's
 * backstop finds the offer over: the row is active on B, so A sends its
 * patient there instead of keeping them "offered" until their grace. */
static void test_missed_accept_found_by_backstop(void)
{
    int grace = cfg.grace_s;
    cfg.grace_s = 60; /* the patient is sent before B ends the visit */
    char *url = pg_fixture_url(__func__);
    seed_hospital(url);
    node nodes[2] = {node_start("node-a", url, url), node_start("node-b", url, url)};
    node *a = &nodes[0], *b = &nodes[1];
    a->cfg->offer_timeout_s = 5;
    CHECK(spin_until(buses_ready, nodes));
    char va[64];
    int pos;
    client *pa = checked_in(a, "p-a", va, &pos);
    wait_listed(b, va, true);
    client *doc = doctor_available(b, "d-li");
    wait_for(doc, "visit.offer", "visit_id", va, NULL, 0);
    wait_for(pa, "visit.state", "state", "offered", NULL, 0);
    tm_cluster_set_event_handler(a->cluster, bus_late, NULL);
    char accept[160];
    g_snprintf(accept, sizeof(accept),
               "{\"type\":\"visit.accept\",\"id\":\"acc\",\"visit_id\":\"%s\"}", va);
    send_text(doc, accept);
    answer(doc, "acc");
    const char *on_b[3] = {(const char *)(void *)b->store, va, "node-b"};
    CHECK(media_node_is(on_b));
    json_t *move = wait_for(pa, "session.move", "visit_id", va, NULL, 0);
    CHECK_STR(json_string_value(json_object_get(move, "url")), "wss://node-b.test:8443/ws");

    client_close(doc);
    client_close(pa);
    node_stop(b);
    node_stop(a);
    g_free(url);
    cfg.grace_s = grace;
}

/* Stands for node A's bus losing events until it has lost B's "marker"
 * (B publishes it last, and one node's events arrive in order). */
static bool marker_lost;
static void bus_late_to_marker(tm_bus_kind kind, const char *id, void *user)
{
    (void)user;
    if (kind == TM_BUS_SHIFTS && strcmp(id, "marker") == 0)
        marker_lost = true;
}

static bool lost_marker(void *data)
{
    (void)data;
    return marker_lost;
}

/* Node A hears nothing while node B offers A's patient and B's doctor
 * accepts; then A hears again (as after its bus reconnects and resyncs):
 * the next queue event shows A's patient gone from the waiting room, and
 * A sends them to B where the visit runs. */
static void test_missed_accept_found_by_queue_sync(void)
{
    int grace = cfg.grace_s;
    cfg.grace_s = 60; /* the patient is sent before B ends the visit */
    char *url = pg_fixture_url(__func__);
    seed_hospital(url);
    node nodes[2] = {node_start("node-a", url, url), node_start("node-b", url, url)};
    node *a = &nodes[0], *b = &nodes[1];
    CHECK(spin_until(buses_ready, nodes));
    char va[64];
    int pos;
    client *pa = checked_in(a, "p-a", va, &pos);
    wait_listed(b, va, true);
    marker_lost = false;
    tm_cluster_set_event_handler(a->cluster, bus_late_to_marker, NULL);
    client *doc = doctor_available(b, "d-li");
    wait_for(doc, "visit.offer", "visit_id", va, NULL, 0);
    char accept[160];
    g_snprintf(accept, sizeof(accept),
               "{\"type\":\"visit.accept\",\"id\":\"acc\",\"visit_id\":\"%s\"}", va);
    send_text(doc, accept);
    answer(doc, "acc");
    CHECK_EQ_INT(tm_cluster_publish(b->cluster, TM_BUS_SHIFTS, "marker"), 0);
    CHECK(spin_until(lost_marker, NULL));
    tm_signaling_set_cluster(a->sig, a->cluster); /* A hears again */
    CHECK_EQ_INT(tm_cluster_publish(b->cluster, TM_BUS_QUEUE, "cardiology"), 0);
    json_t *move = wait_for(pa, "session.move", "visit_id", va, NULL, 0);
    CHECK_STR(json_string_value(json_object_get(move, "url")), "wss://node-b.test:8443/ws");

    client_close(doc);
    client_close(pa);
    node_stop(b);
    node_stop(a);
    g_free(url);
    cfg.grace_s = grace;
}

/* An active visit whose holder died is released by a takeover (no node
 * holds it) when two nodes start: exactly one of them restores and runs it,
 * the one whose claim of the row came first; the other leaves it. */
static void test_released_visit_restored_by_one_node(void)
{
    char *url = pg_fixture_url(__func__);
    seed_hospital(url);
    node a = node_start("node-a", url, url);
    CHECK(spin_until(bus_ready, a.cluster));
    char va[64];
    int pos;
    client *pa = checked_in(&a, "p-a", va, &pos);
    client *doc = doctor_available(&a, "d-li");
    wait_for(doc, "visit.offer", "visit_id", va, NULL, 0);
    char accept[160];
    g_snprintf(accept, sizeof(accept),
               "{\"type\":\"visit.accept\",\"id\":\"acc\",\"visit_id\":\"%s\"}", va);
    send_text(doc, accept);
    answer(doc, "acc");
    client_close(doc);
    client_close(pa);
    node_stop(&a);
    pg_fixture_exec(url, "UPDATE visits SET media_node = NULL"); /* as a takeover releases */

    node c = node_start("node-c", url, url);
    node b = node_start("node-b", url, url);
    CHECK_EQ_INT(tm_signaling_live_visits(c.sig), 1);
    CHECK_EQ_INT(tm_signaling_live_visits(b.sig), 0);
    const char *on_c[3] = {(const char *)(void *)c.store, va, "node-c"};
    CHECK(media_node_is(on_c));

    node_stop(&b);
    node_stop(&c);
    g_free(url);
}

/* ---- positions across nodes ------------------------------------------ */

#define SPREAD_MAX 32

typedef struct spread {
    client *c[SPREAD_MAX];
    char visit[SPREAD_MAX][64];
    int n;
} spread;

/* The position c was last told for visit_id: its check-in answer's or its
 * resumed hello's, or the last queue.position push after it. */
static int last_position(client *c, const char *visit_id)
{
    pump(c);
    int pos = 0;
    for (guint i = 0; i < c->frames->len; i++) {
        json_t *m = c->frames->pdata[i];
        const char *type = json_string_value(json_object_get(m, "type"));
        const char *re = json_string_value(json_object_get(m, "re"));
        json_t *data = json_object_get(m, "data");
        if (g_strcmp0(type, "result") == 0 && g_strcmp0(re, "c") == 0)
            pos = (int)json_integer_value(json_object_get(data, "position"));
        else if (g_strcmp0(type, "result") == 0 && g_strcmp0(re, "h") == 0 &&
                 json_object_get(json_object_get(data, "state"), "position"))
            pos = (int)json_integer_value(
                json_object_get(json_object_get(data, "state"), "position"));
        else if (g_strcmp0(type, "queue.position") == 0 &&
                 g_strcmp0(json_string_value(json_object_get(m, "visit_id")), visit_id) == 0)
            pos = (int)json_integer_value(json_object_get(m, "position"));
    }
    return pos;
}

/* Whether the patients were last told exactly the positions 1..n. */
static bool positions_one_to_n(void *data)
{
    spread *sp = data;
    bool seen[SPREAD_MAX + 1] = {false};
    for (int i = 0; i < sp->n; i++) {
        int pos = last_position(sp->c[i], sp->visit[i]);
        if (pos < 1 || pos > sp->n || seen[pos])
            return false;
        seen[pos] = true;
    }
    return true;
}

static void print_positions(spread *sp)
{
    for (int i = 0; i < sp->n; i++)
        fprintf(stderr, "  %s told %d\n", sp->visit[i], last_position(sp->c[i], sp->visit[i]));
}

/* A waiting visit of patient, checked in at checkin_ms and held by holder,
 * written as that node wrote it before it was killed. */
static void waiting_on(tm_store *st, const char *patient, int64_t checkin_ms, const char *holder,
                       char visit_id[64])
{
    tm_visit rec = {0};
    g_strlcpy(rec.patient_id, patient, sizeof(rec.patient_id));
    g_strlcpy(rec.dept_id, "cardiology", sizeof(rec.dept_id));
    g_strlcpy(rec.kind, "follow_up", sizeof(rec.kind));
    rec.checkin_ms = checkin_ms;
    CHECK_EQ_INT(tm_store_visit_checkin(st, &rec, "test"), 0);
    CHECK_EQ_INT(tm_store_visit_place_media(st, rec.id, NULL, holder), 0);
    g_strlcpy(visit_id, rec.id, 64);
}

/* Six patients checked in within one millisecond, three held by each node
 * (both nodes restart with them): each node put its own three first, the
 * order it heard of them, and told both sets 1..3. Then patients check in
 * on A and B in turn. However the nodes heard of whom, every patient ends
 * up told one place of 1..n, and no two the same. */
static void test_positions_one_to_n_across_nodes(void)
{
    int grace = cfg.grace_s;
    cfg.grace_s = 60; /* the restored patients' places outlive the test */
    char *url = pg_fixture_url(__func__);
    seed_hospital(url);
    char *err = NULL;
    tm_store *st = tm_store_open(url, cfg.hospital_id, &err);
    CHECK(st != NULL);
    spread *sp = g_new0(spread, 1);
    char subs[6][16];
    int64_t t = tm_now_ms() - 60000;
    for (int i = 0; i < 6; i++) {
        g_snprintf(subs[i], sizeof(subs[i]), "p-tie-%d", i);
        waiting_on(st, subs[i], t, i % 2 ? "node-b" : "node-a", sp->visit[i]);
    }
    tm_store_free(st);

    node nodes[2] = {node_start("node-a", url, url), node_start("node-b", url, url)};
    CHECK(spin_until(buses_ready, nodes));
    for (int i = 0; i < 6; i++) {
        sp->c[i] = connect_as(&nodes[i % 2], subs[i], TM_ROLE_PATIENT);
        hello_state(sp->c[i]);
    }
    sp->n = 6;
    for (int k = 0; k < 4; k++) {
        for (int j = 0; j < 2; j++) {
            char sub[32];
            g_snprintf(sub, sizeof(sub), "p-%c-%d", 'a' + j, k);
            int pos;
            sp->c[sp->n] = checked_in(&nodes[j], sub, sp->visit[sp->n], &pos);
            sp->n++;
        }
    }
    if (!spin_until(positions_one_to_n, sp))
        print_positions(sp);
    CHECK(positions_one_to_n(sp));

    for (int i = 0; i < sp->n; i++)
        client_close(sp->c[i]);
    g_free(sp);
    node_stop(&nodes[1]);
    node_stop(&nodes[0]);
    g_free(url);
    cfg.grace_s = grace;
}

/* Node A was killed with p-r waiting on it (the row says so: A holds it,
 * nobody marked the patient away) and starts again; p-r does not come
 * back. A marks them away, as after a live drop: B's doctor is offered the
 * patient behind them, not them, until p-r says hello on A. */
static void test_restored_patient_away_until_back(void)
{
    int grace = cfg.grace_s;
    cfg.grace_s = 60; /* the patient's place outlives the whole test */
    char *url = pg_fixture_url(__func__);
    seed_hospital(url);
    char *err = NULL;
    tm_store *st = tm_store_open(url, cfg.hospital_id, &err);
    CHECK(st != NULL);
    char vr[64];
    waiting_on(st, "p-r", tm_now_ms(), "node-a", vr);
    tm_store_free(st);

    node nodes[2] = {node_start("node-a", url, url), node_start("node-b", url, url)};
    node *a = &nodes[0], *b = &nodes[1];
    CHECK(spin_until(buses_ready, nodes));
    wait_listed(b, vr, true);
    away_seen away = {a->store, vr, 1};
    CHECK(spin_until(store_says_away, &away));
    char v2[64];
    int pos;
    client *p2 = checked_in(a, "p-2", v2, &pos);
    CHECK_EQ_INT(pos, 2);
    wait_listed(b, v2, true);

    client *doc = connect_as(b, "d-li", TM_ROLE_DOCTOR);
    answer(doc, "h");
    send_text(doc, "{\"type\":\"doctor.status\",\"id\":\"s\",\"status\":\"available\"}");
    answer(doc, "s");
    /* The offer of the second is the round that passed over the first. */
    wait_for(doc, "visit.offer", "visit_id", v2, NULL, 0);
    for (guint i = 0; i < doc->frames->len; i++)
        CHECK(g_strcmp0(json_string_value(json_object_get(doc->frames->pdata[i], "visit_id")),
                        vr) != 0);
    char msg[160];
    g_snprintf(msg, sizeof(msg), "{\"type\":\"visit.decline\",\"id\":\"dc\",\"visit_id\":\"%s\"}",
               v2);
    send_text(doc, msg);
    answer(doc, "dc");

    client *pr = connect_as(a, "p-r", TM_ROLE_PATIENT);
    hello_state(pr);
    wait_for(doc, "visit.offer", "visit_id", vr, NULL, 0);

    client_close(doc);
    client_close(p2);
    client_close(pr);
    node_stop(b);
    node_stop(a);
    g_free(url);
    cfg.grace_s = grace;
}

int main(void)
{
    tm_log_set_level(TM_LOG_WARN);
    dir = g_dir_make_tmp("test-cluster-sync-XXXXXX", NULL);
    CHECK(dir != NULL);
    char *argv[] = {"test_cluster_sync",     "--data-dir", dir, "--fanout-threads=1",
                    "--no-consent-required", "--grace-s=2"};
    char *err = NULL;
    if (tm_config_load(&cfg, (int)TM_ARRAY_LEN(argv), argv, NULL, &err) != 0)
        fprintf(stderr, "config: %s\n", err);
    CHECK(err == NULL);
    pg_fixture_start();
    RUN(test_two_nodes_one_waiting_room);
    RUN(test_positions_one_to_n_across_nodes);
    RUN(test_patients_keep_places_when_nodes_change);
    RUN(test_node_starting_leaves_others_visits);
    RUN(test_doctors_and_live_visits_span_nodes);
    RUN(test_doctor_on_other_node);
    RUN(test_visit_runs_on_less_loaded_node);
    RUN(test_doctor_hello_before_the_bus);
    RUN(test_every_participant_sent_to_the_holder);
    RUN(test_patient_in_grace_offered_by_no_node);
    RUN(test_restored_patient_away_until_back);
    RUN(test_offer_of_a_dead_node_withdrawn);
    RUN(test_offer_withdrawn_by_holder_ends_on_offering_node);
    RUN(test_offer_lost_follows_store);
    RUN(test_accept_commits_the_node);
    RUN(test_failed_takeover_takes_nothing);
    RUN(test_patient_back_after_restart_offered);
    RUN(test_refused_head_leaves_doctor_free);
    RUN(test_failed_away_write_retried);
    RUN(test_offer_open_when_holder_dies);
    RUN(test_missed_accept_found_by_backstop);
    RUN(test_missed_accept_found_by_queue_sync);
    RUN(test_released_visit_restored_by_one_node);
    tm_config_clear(&cfg);
    char *rm[] = {"rm", "-rf", dir, NULL};
    g_spawn_sync(NULL, rm, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, NULL, NULL);
    g_free(dir);
    TEST_DONE();
}

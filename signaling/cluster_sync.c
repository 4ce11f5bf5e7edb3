/*
 * cluster_sync.c - this node's waiting room kept in step with the other
 * nodes' through the store and the cluster bus (telemed/cluster.h).
 *
 * Control loop. Every queue change here is published as queue:<dept>. On
 * queue:<dept> (from any node, this one included) the department's waiting
 * and offered visits are read from the store, the store being the truth:
 * a visit checked in on another node enters this node's tm_queue as a
 * mirror (live_visit.remote: no user here, never offered by this node's
 * dispatcher, since its patient signals elsewhere), and a mirror no longer
 * waiting or offered in the store leaves. Positions and estimates are then
 * pushed to this node's patients, who count everyone ahead of them on every
 * node, and this node's free doctors are dispatched. A resync (the bus was
 * down) does this for every department.
 *
 * A waiting visit is held by one node at a time (visits.media_node): the
 * node its patient checked in on, until the patient says hello on another
 * node, which takes it over by a conditional update (the old holder, on
 * visit:<id>, makes its copy a mirror and stops the patient's grace), or
 * until the holder dies and a takeover releases it to exactly one node,
 * where the patient has the grace period to come back. Either way the
 * visit keeps its place: its row never stops waiting.
 */
#include "signaling_internal.h"
#include "telemed/cluster.h"
#include "telemed/log.h"
#include "telemed/node.h"

#include <string.h>

void tm__cluster_queue_changed(tm_signaling *sig, const char *dept)
{
    if (sig->cluster && !sig->syncing)
        tm_cluster_publish(sig->cluster, TM_BUS_QUEUE, dept);
}

void tm__cluster_shifts_changed(tm_signaling *sig)
{
    if (sig->cluster && tm_cluster_shared(sig->cluster))
        tm_cluster_publish(sig->cluster, TM_BUS_SHIFTS, tm_cluster_node_id(sig->cluster));
}

/* Another node changed shifts: who is on duty here changes too. */
static void reload_shifts(tm_signaling *sig, const char *node)
{
    if (strcmp(node, tm_cluster_node_id(sig->cluster)) == 0)
        return;
    if (tm__shifts_load(sig->shifts, sig->store, tm_now_ms()) < 0)
        tm_warn("cluster.shifts_reload_failed", "error=\"%s\"", tm_store_errmsg(sig->store));
    tm_signaling_kick(sig);
    tm__tick(sig); /* estimates count the doctors on duty */
}

/* A visit checked in on another node, as a mirror in this node's queue. */
static bool add_mirror(tm_signaling *sig, const char *id)
{
    tm_visit rec;
    if (tm_store_visit_get(sig->store, id, &rec) < 0)
        return false;
    /* This node's own check-in, in the store before its completion ran
     * here (store_steps.c): the completion adds it. */
    user *p = tm__find_user(sig, TM_ROLE_PATIENT, rec.patient_id);
    if (p && p->checkin_pending)
        return false;
    live_visit *v = tm__live_visit_add(sig, &rec);
    v->remote = true;
    if (tm__queue_add(sig, v) < 0) {
        g_hash_table_remove(sig->visits, v->id);
        return false;
    }
    return true;
}

/* A mirror this node offered to its doctor is gone from the store (its
 * patient left on their node): the doctor is free again and told so. */
static void withdraw_own_offer(tm_signaling *sig, live_visit *v)
{
    if (!v->offer_timer)
        return;
    user *d = tm__visit_doctor(sig, v);
    if (d && strcmp(d->offer_visit, v->id) == 0) {
        d->offer_visit[0] = '\0';
        tm__send_to_user(d, json_pack("{s:s, s:s, s:s}", "type", "visit.offer_cancelled",
                                      "visit_id", v->id, "reason", "withdrawn"));
    }
}

/* The mirror v leaves this node's queue and is freed. */
static void drop_mirror(tm_signaling *sig, live_visit *v)
{
    withdraw_own_offer(sig, v);
    tm_queue_remove(sig->queue, v->id);
    g_hash_table_remove(sig->visits, v->id);
}

void tm__cluster_drop_mirror(tm_signaling *sig, live_visit *v)
{
    char dept[sizeof(v->dept)];
    g_strlcpy(dept, v->dept, sizeof(dept));
    drop_mirror(sig, v);
    sig->syncing = true; /* the store's change, not this node's to announce */
    tm__mark_dept_dirty(sig, dept);
    sig->syncing = false;
    tm__dispatch_dept(sig, dept);
    tm__flush_positions(sig);
}

/* The ids (new strings) of dept's visits, mirrors (remote) or this node's,
 * that the store no longer has waiting or offered. */
static GPtrArray *gone_from_store(tm_signaling *sig, const char *dept, GHashTable *in_store,
                                  bool remote)
{
    GPtrArray *gone = g_ptr_array_new_with_free_func(g_free);
    size_t len = tm_queue_length(sig->queue, dept);
    if (len == 0)
        return gone;
    const char **ids = g_new(const char *, len);
    size_t n = tm_queue_ordered(sig->queue, dept, tm_now_ms(), ids, len);
    for (size_t i = 0; i < n; i++) {
        live_visit *v = g_hash_table_lookup(sig->visits, ids[i]);
        /* One being accepted here left the store's queue by that accept:
         * its completion moves it (store_steps.c). */
        if (v && v->remote == remote && !v->accepting && !g_hash_table_contains(in_store, v->id))
            g_ptr_array_add(gone, g_strdup(v->id));
    }
    g_free(ids);
    return gone;
}

/* Mirrors of dept that the store no longer has waiting or offered leave. */
static bool drop_gone_mirrors(tm_signaling *sig, const char *dept, GHashTable *in_store)
{
    GPtrArray *gone = gone_from_store(sig, dept, in_store, true);
    for (guint i = 0; i < gone->len; i++)
        drop_mirror(sig, g_hash_table_lookup(sig->visits, gone->pdata[i]));
    bool any = gone->len > 0;
    g_ptr_array_free(gone, TRUE);
    return any;
}

static void sync_visit(tm_signaling *sig, const char *id);

/* This node's visits of dept that left the store's waiting room unseen here
 * (a lost visit:<id> event: accepted on another node) follow their row:
 * their patient is sent where the visit runs. */
static void follow_gone_locals(tm_signaling *sig, const char *dept, GHashTable *in_store)
{
    GPtrArray *gone = gone_from_store(sig, dept, in_store, false);
    for (guint i = 0; i < gone->len; i++)
        sync_visit(sig, gone->pdata[i]);
    g_ptr_array_free(gone, TRUE);
}

/* ---- offers another node made -------------------------------------- */

/* An offer is ended by the node that made it (decline, timeout, its doctor
 * gone). One that died or restarted does not, and the takeover releases
 * only what dead nodes hold, not the offered visit of a live holder: so the
 * holder withdraws that very offer this much later than the offering
 * node's own timer would have run out, counted from when it saw the offer
 * (no other node's clock is read). The row lock decides against a late
 * accept: whichever loses follows the row. */
#define OFFER_BACKSTOP_MARGIN_S 5

static gboolean offer_backstop_due(gpointer data);

static void stop_offer_backstop(live_visit *v)
{
    if (v->offer_backstop) {
        g_source_remove(v->offer_backstop);
        v->offer_backstop = 0;
    }
}

static void start_offer_backstop(live_visit *v, guint secs)
{
    stop_offer_backstop(v);
    v->offer_backstop = g_timeout_add_seconds(secs, offer_backstop_due, v);
}

/* The offer this node made of v is over in the store (the holder withdrew
 * it, or another offer replaced it): its doctor is told, and free again. */
static void end_own_offer(tm_signaling *sig, live_visit *v)
{
    g_source_remove(v->offer_timer);
    v->offer_timer = 0;
    user *d = tm__visit_doctor(sig, v);
    if (d && strcmp(d->offer_visit, v->id) == 0) {
        d->offer_visit[0] = '\0';
        tm__send_to_user(d, json_pack("{s:s, s:s, s:s}", "type", "visit.offer_cancelled",
                                      "visit_id", v->id, "reason", "withdrawn"));
    }
    tm_info("cluster.own_offer_ended", "visit=%s doctor=%s", v->id, v->doctor_id);
}

/* A visit follows its row between waiting and offered when another node
 * made the change: a mirror (the overview shows it), or this node's patient
 * offered to another node's doctor (the patient hears it from here; this
 * node, the holder, withdraws that offer if nobody ends it). An offer this
 * node made (its timer runs here) is this node's to end while the row
 * still shows it. */
static bool follow_row(tm_signaling *sig, live_visit *v, const char *state, const char *doctor,
                       int64_t offered_ms)
{
    tm_visit_state now;
    if (tm_visit_state_parse(state, &now) < 0 || (now != TM_VS_WAITING && now != TM_VS_OFFERED) ||
        (v->state != TM_VS_WAITING && v->state != TM_VS_OFFERED))
        return false;
    if (!doctor)
        doctor = "";
    bool same = now == v->state && (now == TM_VS_WAITING || (strcmp(v->doctor_id, doctor) == 0 &&
                                                             v->offered_ms == offered_ms));
    if (same)
        return false;
    if (v->offer_timer)
        end_own_offer(sig, v);
    if (now == TM_VS_OFFERED) {
        g_strlcpy(v->doctor_id, doctor, sizeof(v->doctor_id));
        v->offered_ms = offered_ms;
        if (!v->remote)
            start_offer_backstop(v, (guint)(sig->cfg->offer_timeout_s + OFFER_BACKSTOP_MARGIN_S));
    } else {
        /* Declined, lapsed or withdrawn: back to the head, as on the offering node. */
        stop_offer_backstop(v);
        v->doctor_id[0] = '\0';
        v->last_position = -1;
        tm_queue_return_to_head(sig->queue, v->id);
    }
    v->state = now;
    tm__push_visit_state(sig, v, v->id, v->remote ? NULL : tm__visit_patient(sig, v), NULL);
    return true;
}

/* A mirror's patient dropped or came back on their node: a patient who is
 * away is offered by no node (tm__dispatch_dept skips the mirror). */
static bool follow_away(tm_signaling *sig, const char *id, bool away)
{
    live_visit *v = g_hash_table_lookup(sig->visits, id);
    if (!v || !v->remote || v->patient_away == away)
        return false;
    v->patient_away = away;
    return true;
}

static bool follow_visit_row(tm_signaling *sig, live_visit *v, const tm_visit *row)
{
    return follow_row(sig, v, row->state, row->doctor_id, row->offered_ms);
}

void tm__cluster_follow_store(tm_signaling *sig, live_visit *v)
{
    tm_visit row;
    if (!sig->cluster || !tm_cluster_shared(sig->cluster))
        return;
    if (tm_store_visit_get(sig->store, v->id, &row) < 0) {
        tm_warn("cluster.visit_reread_failed", "visit=%s error=\"%s\"", v->id,
                tm_store_errmsg(sig->store));
        return;
    }
    if (follow_visit_row(sig, v, &row))
        tm__mark_dept_dirty(sig, v->dept);
}

static gboolean offer_backstop_due(gpointer data)
{
    live_visit *v = data; /* the visit removes this timer when it goes */
    tm_signaling *sig = v->sig;
    v->offer_backstop = 0;
    if (v->state != TM_VS_OFFERED || v->offer_timer || v->remote)
        return G_SOURCE_REMOVE;
    int rc =
        tm_store_visit_withdraw_offer(sig->store, v->id, v->doctor_id, v->offered_ms, tm_now_ms());
    if (rc < 0 && rc != TM_ECONFLICT) { /* the store is away: try again */
        tm_warn("cluster.offer_withdraw_failed", "visit=%s error=\"%s\"", v->id,
                tm_store_errmsg(sig->store));
        start_offer_backstop(v, OFFER_BACKSTOP_MARGIN_S);
        return G_SOURCE_REMOVE;
    }
    char dept[sizeof(v->dept)];
    g_strlcpy(dept, v->dept, sizeof(dept));
    if (rc == 0) {
        tm_info("cluster.offer_withdrawn", "visit=%s doctor=%s", v->id, v->doctor_id);
        follow_row(sig, v, "waiting", NULL, 0);
        tm__mark_dept_dirty(sig, dept);
    } else { /* accepted, declined or replaced meanwhile */
        char id[sizeof(v->id)];
        g_strlcpy(id, v->id, sizeof(id));
        tm__cluster_follow_store(sig, v);
        sync_visit(sig, id); /* accepted: its patient goes where it runs (v may go) */
    }
    tm__dispatch_dept(sig, dept);
    tm__flush_positions(sig);
    return G_SOURCE_REMOVE;
}

/* ---- doctors on duty across nodes ------------------------------------ */

static bool shared(tm_signaling *sig)
{
    return sig->cluster && tm_cluster_shared(sig->cluster);
}

static const char *my_node(tm_signaling *sig)
{
    return tm_cluster_node_id(sig->cluster);
}

void tm__cluster_publish_duty(tm_signaling *sig)
{
    if (!shared(sig))
        return;
    GHashTable *now = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    if (!sig->draining) /* a draining node takes no new patients */
        tm__count_doctors_on_duty(sig, now);
    /* Departments whose doctors all left count 0 now, so their row goes. */
    GHashTableIter it;
    gpointer key, val;
    g_hash_table_iter_init(&it, sig->duty_here);
    while (g_hash_table_iter_next(&it, &key, NULL))
        if (!g_hash_table_contains(now, key))
            g_hash_table_insert(now, g_strdup(key), GINT_TO_POINTER(0));
    g_hash_table_iter_init(&it, now);
    while (g_hash_table_iter_next(&it, &key, &val)) {
        gpointer before;
        bool known = g_hash_table_lookup_extended(sig->duty_here, key, NULL, &before);
        int n = GPOINTER_TO_INT(val);
        if ((known && GPOINTER_TO_INT(before) == n) || (!known && n == 0))
            continue;
        if (tm_cluster_set_doctors(sig->cluster, key, n) < 0) {
            tm_warn("cluster.duty_write_failed", "dept=%s error=\"%s\"", (const char *)key,
                    tm_store_errmsg(sig->store));
            continue; /* tried again at the next tick */
        }
        if (n)
            g_hash_table_replace(sig->duty_here, g_strdup(key), val);
        else
            g_hash_table_remove(sig->duty_here, key);
    }
    g_hash_table_destroy(now);
}

int tm__cluster_doctors_elsewhere(tm_signaling *sig, const char *dept)
{
    return GPOINTER_TO_INT(g_hash_table_lookup(sig->duty_elsewhere, dept));
}

/* Rereads dept's doctors on the other nodes; true when the count moved. */
static bool reread_duty_elsewhere(tm_signaling *sig, const char *dept)
{
    int n;
    if (!shared(sig) || tm_cluster_doctors_elsewhere(sig->cluster, dept, &n) < 0)
        return false;
    if (n == tm__cluster_doctors_elsewhere(sig, dept))
        return false;
    if (n)
        g_hash_table_replace(sig->duty_elsewhere, g_strdup(dept), GINT_TO_POINTER(n));
    else
        g_hash_table_remove(sig->duty_elsewhere, dept);
    return true;
}

/* ---- live visits on other nodes, for the supervisors ------------------ */

json_t *tm__cluster_live_elsewhere(tm_signaling *sig, const char *dept)
{
    return g_hash_table_lookup(sig->live_elsewhere, dept);
}

/* A visit this node holds itself is listed from its live state, not twice.
 * A mirror of one another node runs is stale (its queue row was read before
 * that accept committed): it goes, unless this node's own accept of it is
 * with the store, whose completion decides. */
static json_t *drop_held_here(tm_signaling *sig, json_t *rows)
{
    json_t *out = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        live_visit *v =
            g_hash_table_lookup(sig->visits, json_string_value(json_object_get(row, "id")));
        if (v && v->remote && !v->accepting) {
            tm__cluster_drop_mirror(sig, v);
            v = NULL;
        }
        if (!v)
            json_array_append(out, row);
    }
    json_decref(rows);
    return out;
}

/* Rereads dept's live visits on the other nodes (an accept or an end there
 * announced queue:<dept>); the overview is pushed again when they moved. */
static void reread_live_elsewhere(tm_signaling *sig, const char *dept)
{
    if (!shared(sig))
        return;
    json_t *rows = tm_store_dept_live_elsewhere(sig->store, dept, my_node(sig));
    if (!rows) {
        tm_warn("cluster.live_reload_failed", "dept=%s error=\"%s\"", dept,
                tm_store_errmsg(sig->store));
        return;
    }
    rows = drop_held_here(sig, rows);
    json_t *before = tm__cluster_live_elsewhere(sig, dept);
    if (json_array_size(rows) == 0 && !before) {
        json_decref(rows);
        return;
    }
    if (before && json_equal(before, rows)) {
        json_decref(rows);
        return;
    }
    if (json_array_size(rows))
        g_hash_table_replace(sig->live_elsewhere, g_strdup(dept), rows);
    else {
        g_hash_table_remove(sig->live_elsewhere, dept);
        json_decref(rows);
    }
    tm__mark_overview_dirty(sig);
}

static void sync_dept(tm_signaling *sig, const char *dept)
{
    json_t *rows = tm_store_dept_queue(sig->store, dept);
    if (!rows) {
        tm_warn("cluster.queue_reload_failed", "dept=%s error=\"%s\"", dept,
                tm_store_errmsg(sig->store));
        return;
    }
    GHashTable *in_store = g_hash_table_new(g_str_hash, g_str_equal);
    bool changed = false;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        const char *id = json_string_value(json_object_get(row, "id"));
        g_hash_table_add(in_store, (gpointer)id);
        live_visit *v = g_hash_table_lookup(sig->visits, id);
        if (!v)
            changed |= add_mirror(sig, id);
        else
            changed |= follow_row(sig, v, json_string_value(json_object_get(row, "state")),
                                  json_string_value(json_object_get(row, "doctor_id")),
                                  json_integer_value(json_object_get(row, "offered_ms")));
        changed |= follow_away(sig, id, json_integer_value(json_object_get(row, "patient_away")));
    }
    changed |= drop_gone_mirrors(sig, dept, in_store);
    follow_gone_locals(sig, dept, in_store);
    changed |= reread_duty_elsewhere(sig, dept);
    reread_live_elsewhere(sig, dept);
    g_hash_table_destroy(in_store);
    json_decref(rows);
    if (!changed)
        return;
    sig->syncing = true; /* what the store said is not a change to announce */
    tm__mark_dept_dirty(sig, dept);
    sig->syncing = false;
    tm__dispatch_dept(sig, dept);
    tm__flush_positions(sig);
}

/* ---- a waiting patient's node ---------------------------------------- */

#define AWAY_RETRY_S 2

static gboolean away_retry_due(gpointer data);

/* Writes v->patient_away to the store and announces it; on failure it is
 * written again later, or other nodes would go on offering a patient who
 * is not there (or never offer one who is back). */
static void save_away(tm_signaling *sig, live_visit *v)
{
    if (tm_store_visit_patient_away(sig->store, v->id, v->patient_away ? tm_now_ms() : 0) < 0) {
        tm_warn("cluster.away_write_failed", "visit=%s error=\"%s\"", v->id,
                tm_store_errmsg(sig->store));
        if (!v->away_retry)
            v->away_retry = g_timeout_add_seconds(AWAY_RETRY_S, away_retry_due, v);
        return;
    }
    tm__cluster_queue_changed(sig, v->dept);
}

static gboolean away_retry_due(gpointer data)
{
    live_visit *v = data; /* the visit removes this timer when it goes */
    v->away_retry = 0;
    if (!v->remote && (v->state == TM_VS_WAITING || v->state == TM_VS_OFFERED))
        save_away(v->sig, v);
    return G_SOURCE_REMOVE;
}

/* A patient back is always written: the store may still say away from
 * before this node restarted (a restored visit starts not away) or from a
 * write that failed. Away twice is written once. */
void tm__cluster_patient_away(tm_signaling *sig, const char *visit_id, bool away)
{
    live_visit *v = g_hash_table_lookup(sig->visits, visit_id);
    if (!shared(sig) || !v || v->remote || (away && v->patient_away) ||
        (v->state != TM_VS_WAITING && v->state != TM_VS_OFFERED))
        return;
    v->patient_away = away;
    if (!v->away_retry)
        save_away(sig, v);
}

void tm__cluster_hosts(tm_signaling *sig, live_visit *v)
{
    if (!sig->cluster || !tm_cluster_shared(sig->cluster))
        return;
    if (tm_store_visit_place_media(sig->store, v->id, NULL, my_node(sig)) < 0)
        tm_warn("cluster.host_failed", "visit=%s error=\"%s\"", v->id, tm_store_errmsg(sig->store));
}

/* The mirror v is this node's now: its patient has a user here that holds
 * it. With grace, the patient has the grace period to come back (to any
 * node); without, their hello is on its way and resumes it. */
static void adopt(tm_signaling *sig, live_visit *v, bool grace)
{
    v->remote = false;
    v->last_position = -1;
    v->patient_away = false; /* as placing it left the row */
    user *p = tm__find_user(sig, TM_ROLE_PATIENT, v->patient_sub);
    if (!p)
        p = tm__user_new(sig, TM_ROLE_PATIENT, v->patient_sub);
    g_strlcpy(p->visit_id, v->id, sizeof(p->visit_id));
    if (grace && !p->sess && !p->grace_timer)
        tm__user_start_grace(sig, p);
    else if (!grace)
        p->grace_pending = true;
    /* Placed here while its patient is gone: no node offers them until
     * they are back (their hello clears it). */
    if (grace && !p->sess)
        tm__cluster_patient_away(sig, v->id, true);
    tm_info("cluster.visit_adopted", "visit=%s node=%s grace=%d", v->id, my_node(sig), grace);
    tm_cluster_publish(sig->cluster, TM_BUS_VISIT, v->id);
    tm__mark_dept_dirty(sig, v->dept);
}

/* Another node took this node's waiting visit (its patient went there):
 * it is a mirror here from now on, and its patient's grace here is over. */
static void demote(tm_signaling *sig, live_visit *v)
{
    v->remote = true;
    user *p = tm__visit_patient(sig, v);
    if (p && strcmp(p->visit_id, v->id) == 0) {
        p->visit_id[0] = '\0';
        if (p->grace_timer && !p->sess) {
            g_source_remove(p->grace_timer);
            p->grace_timer = 0;
        }
        tm__maybe_forget_user(sig, p);
    }
    tm_info("cluster.visit_moved", "visit=%s from=%s", v->id, my_node(sig));
}

static bool waiting_mirror_of(tm_signaling *sig, const char *patient, live_visit **out)
{
    GHashTableIter it;
    gpointer val;
    g_hash_table_iter_init(&it, sig->visits);
    while (g_hash_table_iter_next(&it, NULL, &val)) {
        live_visit *v = val;
        if (v->remote && v->state == TM_VS_WAITING && strcmp(v->patient_sub, patient) == 0) {
            *out = v;
            return true;
        }
    }
    return false;
}

void tm__cluster_adopt_patient(tm_signaling *sig, const char *patient)
{
    live_visit *v;
    if (!sig->cluster || !tm_cluster_shared(sig->cluster) ||
        tm__find_user(sig, TM_ROLE_PATIENT, patient) || !waiting_mirror_of(sig, patient, &v))
        return;
    char holder[64];
    if (tm_store_visit_media_node(sig->store, v->id, holder) < 0)
        return;
    /* From the node that holds it (alive or not) to this one, or not at all. */
    if (tm_store_visit_place_media(sig->store, v->id, holder[0] ? holder : NULL, my_node(sig)) == 0)
        adopt(sig, v, false);
}

/* Whether a visit accepted here, its patient's page on patient_node,
 * runs here: yes unless the patient's node is live, takes new visits and
 * carries clearly less (PLACE_MARGIN live visits fewer). Either way one
 * page moves; close loads keep the visit with the doctor who took it. */
#define PLACE_MARGIN 2
static bool runs_here(tm_signaling *sig, const char *patient_node)
{
    tm_node_info *nodes = NULL;
    size_t n = 0;
    if (!patient_node[0] || tm_cluster_live_nodes(sig->cluster, &nodes, &n) < 0)
        return true;
    const tm_node_info *here = NULL, *there = NULL;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(nodes[i].id, my_node(sig)) == 0)
            here = &nodes[i];
        else if (strcmp(nodes[i].id, patient_node) == 0)
            there = &nodes[i];
    }
    bool stay = !here || !there || there->draining || there->visits + PLACE_MARGIN > here->visits;
    g_free(nodes);
    return stay;
}

void tm__cluster_accept_node(tm_signaling *sig, live_visit *v, char node[64])
{
    char holder[64];
    node[0] = '\0';
    if (!v->remote || !shared(sig) || tm_store_visit_media_node(sig->store, v->id, holder) < 0)
        return;
    if (runs_here(sig, holder))
        g_strlcpy(node, my_node(sig), 64);
}

bool tm__cluster_visit_started(tm_signaling *sig, live_visit *v, const char *node)
{
    if (!v->remote)
        return true;
    if (!shared(sig) || strcmp(node, my_node(sig)) != 0)
        return false;
    adopt(sig, v, true);
    return true;
}

void tm__cluster_hand_over(tm_signaling *sig, live_visit *v, user *d)
{
    char holder[64] = "", id[64], dept[64];
    g_strlcpy(id, v->id, sizeof(id));
    g_strlcpy(dept, v->dept, sizeof(dept));
    tm_store_visit_media_node(sig->store, id, holder);
    tm__cluster_move_user(sig, d, id, holder, "visit_placed");
    tm_queue_remove(sig->queue, id);
    g_hash_table_remove(sig->visits, id);
    tm_cluster_publish(sig->cluster, TM_BUS_VISIT, id);
    tm__mark_dept_dirty(sig, dept);
    tm__flush_positions(sig);
}

/* This node's waiting visit v was accepted by a doctor connected to
 * another node, which left it here (runs_here): it starts here, and the
 * doctor, sent here by their node, has the grace period to arrive. */
static void started_here(tm_signaling *sig, live_visit *v, const tm_visit *row)
{
    v->state = TM_VS_ACTIVE;
    g_strlcpy(v->doctor_id, row->doctor_id, sizeof(v->doctor_id));
    v->accepted_ms = row->accepted_ms;
    user *d = tm__find_user(sig, TM_ROLE_DOCTOR, row->doctor_id);
    if (!d)
        d = tm__user_new(sig, TM_ROLE_DOCTOR, row->doctor_id);
    /* They were available to be offered the visit, and are after it. */
    d->status = DOC_AVAILABLE;
    d->idle_since_ms = tm_now_ms();
    if (!d->sess && !d->grace_timer)
        tm__user_start_grace(sig, d);
    tm_info("cluster.visit_started_here", "visit=%s doctor=%s node=%s", v->id, d->sub,
            my_node(sig));
    tm__visit_begin(sig, v, d);
    tm__visit_announce(sig, v, d);
}

bool tm__cluster_send_to_holder(tm_signaling *sig, user *u)
{
    if (!sig->cluster || !tm_cluster_shared(sig->cluster) ||
        (u->role != TM_ROLE_PATIENT && u->role != TM_ROLE_DOCTOR))
        return false;
    char visit_id[64], holder[64];
    if (tm_store_visit_held_for(sig->store, tm_role_name(u->role), u->sub, visit_id, holder) < 0 ||
        strcmp(holder, my_node(sig)) == 0 || g_hash_table_contains(sig->visits, visit_id))
        return false;
    return tm__cluster_move_user(sig, u, visit_id, holder, "holder_changed");
}

/* A released visit that a dead node had offered to its doctor: nobody holds
 * that offer now, so it goes back to the head of the queue, as after a
 * restart. */
static void withdraw_dead_offer(tm_signaling *sig, live_visit *v)
{
    if (v->state != TM_VS_OFFERED || v->offer_timer) /* this node's own offer stands */
        return;
    int rc = tm_store_visit_unoffer(sig->store, v->id, "withdrawn", tm_now_ms());
    tm_visit row;
    if (rc < 0 &&
        (tm_store_visit_get(sig->store, v->id, &row) < 0 || !follow_visit_row(sig, v, &row))) {
        tm_warn("cluster.withdraw_failed", "visit=%s error=\"%s\"", v->id,
                tm_store_errmsg(sig->store));
        return;
    }
    if (rc == 0) { /* this node withdrew it; otherwise the row was already back */
        v->state = TM_VS_WAITING;
        tm_queue_return_to_head(sig->queue, v->id);
    }
    v->doctor_id[0] = '\0';
}

void tm__cluster_node_ws_url(tm_signaling *sig, const char *node_id, char *ws_url, size_t len)
{
    ws_url[0] = '\0';
    tm_node_info *nodes = NULL;
    size_t n = 0;
    if (tm_cluster_live_nodes(sig->cluster, &nodes, &n) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(nodes[i].id, node_id) != 0)
            continue;
        json_t *urls = tm_node_cluster_ws_urls(nodes[i].public_url);
        const char *url = json_string_value(json_array_get(urls, 0));
        g_strlcpy(ws_url, url ? url : "", len);
        json_decref(urls);
    }
    g_free(nodes);
}

bool tm__cluster_move_user(tm_signaling *sig, user *u, const char *visit_id, const char *holder,
                           const char *reason)
{
    char url[300];
    tm__cluster_node_ws_url(sig, holder, url, sizeof(url));
    if (!url[0] || !u->sess) {
        tm_warn("cluster.move_impossible", "visit=%s user=%s holder=%s connected=%d", visit_id,
                u->key, holder, u->sess != NULL);
        return false;
    }
    tm__send_to_user(u, json_pack("{s:s, s:s, s:s, s:s}", "type", "session.move", "url", url,
                                  "visit_id", visit_id, "reason", reason));
    u->moved_away = true;
    tm_info("cluster.user_moved", "visit=%s user=%s to=%s reason=%s", visit_id, u->key, holder,
            reason);
    return true;
}

/* This node's waiting visit v started on another node (holder), with a
 * doctor there: its patient is sent there, and this node keeps nothing of
 * it (its patient's page leaves, ending nothing). */
static void started_elsewhere(tm_signaling *sig, live_visit *v, const char *holder)
{
    user *p = tm__visit_patient(sig, v);
    if (p && strcmp(p->visit_id, v->id) == 0) {
        tm__cluster_move_user(sig, p, v->id, holder, "visit_placed");
        p->visit_id[0] = '\0';
        if (p->grace_timer && !p->sess) {
            g_source_remove(p->grace_timer);
            p->grace_timer = 0;
        }
    }
    char dept[sizeof(v->dept)];
    g_strlcpy(dept, v->dept, sizeof(dept));
    tm_queue_remove(sig->queue, v->id);
    g_hash_table_remove(sig->visits, v->id);
    if (p)
        tm__maybe_forget_user(sig, p);
    tm__mark_dept_dirty(sig, dept);
}

static void sync_visit(tm_signaling *sig, const char *id)
{
    live_visit *v = g_hash_table_lookup(sig->visits, id);
    char holder[64];
    tm_visit row;
    /* An accept with the store here decides that visit itself (store_steps.c). */
    if (!v || v->accepting || (v->state != TM_VS_WAITING && v->state != TM_VS_OFFERED) ||
        !tm_cluster_shared(sig->cluster) || tm_store_visit_media_node(sig->store, id, holder) < 0)
        return;
    if (v->remote && !holder[0]) {
        /* Released by a takeover: the store gives it to exactly one node,
         * which holds it from then on, its own offer of it still open: when
         * that offer ends, the patient's grace here decides. */
        if (tm_store_visit_place_media(sig->store, id, NULL, my_node(sig)) == 0) {
            withdraw_dead_offer(sig, v);
            adopt(sig, v, true);
        }
    } else if (!v->remote && holder[0] && tm_store_visit_get(sig->store, id, &row) == 0) {
        bool active = strcmp(row.state, "active") == 0;
        if (strcmp(holder, my_node(sig)) == 0) {
            if (active)
                started_here(sig, v, &row);
        } else if (active) {
            started_elsewhere(sig, v, holder);
        } else if (v->state == TM_VS_WAITING) {
            demote(sig, v);
        }
    }
    tm__flush_positions(sig);
}

void tm__cluster_sync_visit(tm_signaling *sig, const char *id)
{
    sync_visit(sig, id);
}

static void sync_all(tm_signaling *sig)
{
    json_t *depts = tm_store_dept_list(sig->store);
    size_t i;
    json_t *d;
    json_array_foreach(depts, i, d) sync_dept(sig, json_string_value(json_object_get(d, "id")));
    json_decref(depts);
}

/* ---- one reload per burst of events ---------------------------------- */

/* A busy department's changes arrive as bursts of queue:<dept> (every
 * check-in, offer and accept on every node), each a hint to read the whole
 * department again. The events of one read of the bus are gathered and each
 * department is read once after them: the last read sees every change the
 * burst announced, so positions stay exact, and a burst of n costs one read
 * instead of n, which at thousands waiting put seconds between a change on
 * one node and the pushes on another. */
static gboolean run_due_syncs(gpointer data)
{
    tm_signaling *sig = data;
    sig->sync_idle = 0;
    GHashTable *due = sig->sync_due;
    sig->sync_due = NULL;
    GHashTableIter it;
    gpointer dept;
    g_hash_table_iter_init(&it, due);
    while (g_hash_table_iter_next(&it, &dept, NULL))
        sync_dept(sig, dept);
    g_hash_table_destroy(due);
    return G_SOURCE_REMOVE;
}

static void sync_dept_soon(tm_signaling *sig, const char *dept)
{
    if (!sig->sync_due)
        sig->sync_due = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_hash_table_add(sig->sync_due, g_strdup(dept));
    /* The loop's own priority, not idle: a node busy with its sockets must
     * not starve what other nodes' patients wait for. */
    if (!sig->sync_idle)
        sig->sync_idle = g_idle_add_full(G_PRIORITY_DEFAULT, run_due_syncs, sig, NULL);
}

void tm__cluster_sync_stop(tm_signaling *sig)
{
    if (sig->sync_idle)
        g_source_remove(sig->sync_idle);
    sig->sync_idle = 0;
    if (sig->sync_due)
        g_hash_table_destroy(sig->sync_due);
    sig->sync_due = NULL;
}

static void on_bus_event(tm_bus_kind kind, const char *id, void *data)
{
    tm_signaling *sig = data;
    if (kind == TM_BUS_QUEUE)
        sync_dept_soon(sig, id);
    else if (kind == TM_BUS_VISIT) {
        sync_visit(sig, id);
        tm__cluster_visit_released(sig, id);
    } else if (kind == TM_BUS_SHIFTS) {
        reload_shifts(sig, id);
    } else if (kind == TM_BUS_RESYNC || kind == TM_BUS_NODE) {
        tm__cluster_sync_stop(sig); /* every department is read now */
        sync_all(sig);              /* a node that came or went brings or takes its doctors */
    }
}

/* This node's share of the work: its own live visits and waiting patients
 * (mirrors are other nodes'), its media peers, and whether it drains
 * (drain.c), so that no node places new work on it. */
static void node_load(tm_node_info *load, void *data)
{
    tm_signaling *sig = data;
    load->draining = sig->draining;
    GHashTableIter it;
    gpointer val;
    g_hash_table_iter_init(&it, sig->visits);
    while (g_hash_table_iter_next(&it, NULL, &val)) {
        live_visit *v = val;
        if (v->remote)
            continue;
        if (v->state == TM_VS_ACTIVE)
            load->visits++;
        else if (v->state == TM_VS_WAITING || v->state == TM_VS_OFFERED)
            load->waiting++;
    }
    if (sig->media) {
        tm_media_counters mc;
        tm_media_get_counters(sig->media, &mc);
        load->peers = (int)MIN(mc.peers, (uint64_t)G_MAXINT);
    }
}

void tm_signaling_set_cluster(tm_signaling *sig, tm_cluster *cluster)
{
    tm__cluster_sync_stop(sig);
    if (sig->cluster) {
        tm_cluster_set_event_handler(sig->cluster, NULL, NULL);
        tm_cluster_set_load_source(sig->cluster, NULL, NULL);
    }
    sig->cluster = cluster;
    if (!cluster)
        return;
    tm_cluster_set_event_handler(cluster, on_bus_event, sig);
    tm_cluster_set_load_source(cluster, node_load, sig);
}

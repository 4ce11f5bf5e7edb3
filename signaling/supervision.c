/*
 * supervision.c - what supervisors see and do: the live overview of every
 * department, visit and doctor with its alerts, and watching live visits
 * as a receive-only observer (audited, participants told), a few at once
 * for the supervisor's video wall.
 *
 * Control loop. Changes mark the overview dirty; a 200 ms timer coalesces a
 * burst of them into one push to every subscriber. Alerts about past events
 * (an offer that lapsed, a recording that failed) are kept for ten minutes.
 */
#include "signaling_internal.h"
#include "telemed/log.h"

#include <stdio.h>
#include <string.h>

/* How long an alert about a past event stays on the supervisors' screen. */
#define RECENT_ALERT_MS (10 * 60 * 1000)

/* Keeps an alert about something that happened (steals it). */
void tm__remember_alert(tm_signaling *sig, json_t *alert)
{
    int64_t now = tm_now_ms();
    json_object_set_new(alert, "at", tm__time_json(now));
    json_object_set_new(alert, "at_ms", json_integer(now));
    json_array_append_new(sig->recent_alerts, alert);
    while (json_array_size(sig->recent_alerts) > 100)
        json_array_remove(sig->recent_alerts, 0);
    tm__mark_overview_dirty(sig);
}

/* Where visit_id sits in u's watched visits, or -1. */
static int watch_index(const user *u, const char *visit_id)
{
    for (guint i = 0; visit_id && i < u->watching->len; i++)
        if (strcmp(g_ptr_array_index(u->watching, i), visit_id) == 0)
            return (int)i;
    return -1;
}

bool tm__user_watches(const user *u, const char *visit_id)
{
    return watch_index(u, visit_id) >= 0;
}

void tm__watchers_notify_end(tm_signaling *sig, live_visit *v)
{
    for (guint i = 0; i < v->watchers->len; i++) {
        user *w = g_hash_table_lookup(sig->users, g_ptr_array_index(v->watchers, i));
        int at = w ? watch_index(w, v->id) : -1;
        if (at >= 0) {
            g_ptr_array_remove_index(w->watching, (guint)at);
            tm_store_audit(sig->store, w->sub, tm__audit_role(w), "visit.unwatch", v->id, "ok",
                           "visit ended");
        }
    }
}

/* Poor quality: a sender's video (judged per sender, its simulcast layers
 * together, in media_quality.c) that lost more than alert_loss_pct or froze in
 * the last ten seconds, or another stream losing more than alert_loss_pct in
 * the latest second of figures. */
static void add_quality_alerts(tm_signaling *sig, live_visit *v, json_t *alerts, int64_t now)
{
    double loss = 0;
    bool froze = false;
    const char *kind = "video";
    if (!tm__media_health_poor_video(sig, v, now, &loss, &froze)) {
        const char *key;
        json_t *acc;
        kind = NULL;
        json_object_foreach(v->summary, key, acc)
        {
            json_t *last = json_object_get(acc, "last");
            bool in_video = strstr(key, "|in|video|") != NULL;
            loss = json_number_value(json_object_get(last, "loss_pct"));
            if (!in_video && loss > sig->cfg->alert_loss_pct) {
                kind = json_string_value(json_object_get(last, "kind"));
                break;
            }
        }
        if (!kind)
            return;
    }
    json_array_append_new(alerts,
                          json_pack("{s:s, s:s, s:s, s:f, s:b}", "kind", "poor_quality", "visit_id",
                                    v->id, "stream_kind", kind, "loss_pct", loss, "frozen", froze));
}

/* ---- an institution's part (issue 18) -------------------------------- */

/* The departments of institution as a set (dept id -> itself); NULL for the
 * whole alliance. Taken from the department list the overview reads anyway. */
static GHashTable *scope_depts(json_t *depts, const char *institution)
{
    if (!institution || !*institution)
        return NULL;
    GHashTable *set = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    size_t i;
    json_t *d;
    json_array_foreach(depts, i, d)
    {
        const char *inst = json_string_value(json_object_get(d, "institution_id"));
        if (inst && strcmp(inst, institution) == 0)
            g_hash_table_add(set, g_strdup(json_string_value(json_object_get(d, "id"))));
    }
    return set;
}

static bool dept_in(GHashTable *scope, const char *dept)
{
    return !scope || g_hash_table_contains(scope, dept);
}

/* Whether supervisor u may see a visit of dept: a supervisor scoped to an
 * institution sees its departments only. */
static bool user_sees_dept(tm_signaling *sig, const user *u, const char *dept)
{
    if (!u->institution[0])
        return true;
    char inst[64];
    return tm_store_dept_institution(sig->store, dept, inst) == 0 &&
           strcmp(inst, u->institution) == 0;
}

/* An alert kept about a past event is shown in scope when its visit is. */
static bool alert_in(tm_signaling *sig, GHashTable *scope, json_t *alert)
{
    if (!scope)
        return true;
    const char *visit_id = json_string_value(json_object_get(alert, "visit_id"));
    if (!visit_id)
        return false; /* the deployment's own (the feed's): the alliance's supervisors */
    live_visit *v = g_hash_table_lookup(sig->visits, visit_id);
    tm_visit rec;
    if (v)
        return dept_in(scope, v->dept);
    return tm_store_visit_get(sig->store, visit_id, &rec) == 0 && dept_in(scope, rec.dept_id);
}

/* A time column of a store row (RFC 3339 text) in epoch ms; 0 when absent. */
static int64_t row_ms(json_t *row, const char *key)
{
    const char *text = json_string_value(json_object_get(row, key));
    GDateTime *t = text ? g_date_time_new_from_iso8601(text, NULL) : NULL;
    if (!t)
        return 0;
    int64_t ms = g_date_time_to_unix(t) * 1000 + g_date_time_get_microsecond(t) / 1000;
    g_date_time_unref(t);
    return ms;
}

/* The live visits of depts (the overview's, in scope) that other nodes
 * hold, with the node that holds each (null: its node died); watching one
 * is for a supervisor on that node. */
static void add_live_elsewhere(tm_signaling *sig, json_t *depts, json_t *visits, int64_t now)
{
    size_t i, j;
    json_t *d, *row;
    json_array_foreach(depts, i, d)
    {
        const char *dept = json_string_value(json_object_get(d, "id"));
        json_array_foreach(tm__cluster_live_elsewhere(sig, dept), j, row)
        {
            int64_t checkin = row_ms(row, "checkin_at");
            int64_t accepted = row_ms(row, "accepted_at");
            json_t *o = json_pack(
                "{s:O, s:s, s:s, s:O, s:O, s:O, s:b, s:b, s:i}", "id", json_object_get(row, "id"),
                "dept", dept, "state", "active", "patient_id", json_object_get(row, "patient_id"),
                "doctor_id", json_object_get(row, "doctor_id"), "kind",
                json_object_get(row, "kind"), "urgent",
                json_is_true(json_object_get(row, "urgent")), "remote", 1, "watchers", 0);
            json_object_set_new(o, "node", json_deep_copy(json_object_get(row, "media_node")));
            json_object_set_new(o, "checkin_at", tm__time_json(checkin));
            json_object_set_new(o, "accepted_at", tm__time_json(accepted));
            json_object_set_new(o, "waited_s", json_integer((accepted - checkin) / 1000));
            json_object_set_new(o, "duration_s", json_integer((now - accepted) / 1000));
            json_array_append_new(visits, o);
        }
    }
}

json_t *tm_signaling_overview(tm_signaling *sig)
{
    return tm_signaling_overview_in(sig, NULL);
}

json_t *tm_signaling_overview_in(tm_signaling *sig, const char *institution)
{
    int64_t now = tm_now_ms();
    json_t *depts = tm_store_dept_list(sig->store);
    GHashTable *scope = scope_depts(depts, institution);
    if (scope) {
        json_t *mine = json_array();
        size_t j;
        json_t *dep;
        json_array_foreach(depts, j, dep)
        {
            if (dept_in(scope, json_string_value(json_object_get(dep, "id"))))
                json_array_append(mine, dep);
        }
        json_decref(depts);
        depts = mine;
    }
    size_t i;
    json_t *d;
    json_array_foreach(depts, i, d)
    {
        const char *id = json_string_value(json_object_get(d, "id"));
        int in_visit = 0;
        GHashTableIter it;
        gpointer k, val;
        g_hash_table_iter_init(&it, sig->visits);
        while (g_hash_table_iter_next(&it, &k, &val)) {
            live_visit *v = val;
            if (v->state == TM_VS_ACTIVE && strcmp(v->dept, id) == 0)
                in_visit++;
        }
        json_object_set_new(d, "waiting",
                            json_integer((json_int_t)tm_queue_length(sig->queue, id)));
        json_t *elsewhere = tm__cluster_live_elsewhere(sig, id);
        in_visit += (int)json_array_size(elsewhere);
        json_object_set_new(d, "in_visit", json_integer(in_visit));
        json_object_set_new(d, "doctors_on_duty", json_integer(tm__doctors_for_estimate(sig, id)));
        json_object_set_new(d, "longest_wait_s",
                            json_integer(tm_queue_longest_wait_ms(sig->queue, id, now) / 1000));
        json_object_del(d, "created_at");
    }
    json_t *visits = json_array();
    json_t *alerts = json_array();
    GHashTableIter it;
    gpointer k, val;
    g_hash_table_iter_init(&it, sig->visits);
    while (g_hash_table_iter_next(&it, &k, &val)) {
        live_visit *v = val;
        if (!dept_in(scope, v->dept))
            continue;
        user *p = tm__visit_patient(sig, v);
        /* A mirror's patient is connected to their own node unless in
         * their grace period there. */
        bool connected = v->remote ? !v->patient_away : p && p->sess;
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:b}", "id", v->id, "dept", v->dept,
                              "state", tm_visit_state_name(v->state), "patient_id", v->patient_sub,
                              "kind", v->kind, "urgent", v->urgent, "patient_connected", connected);
        json_object_set_new(o, "doctor_id",
                            v->doctor_id[0] ? json_string(v->doctor_id) : json_null());
        json_object_set_new(o, "checkin_at", tm__time_json(v->checkin_ms));
        json_object_set_new(o, "accepted_at", tm__time_json(v->accepted_ms));
        json_object_set_new(
            o, "waited_s",
            json_integer(((v->accepted_ms ? v->accepted_ms : now) - v->checkin_ms) / 1000));
        if (v->accepted_ms)
            json_object_set_new(o, "duration_s", json_integer((now - v->accepted_ms) / 1000));
        json_object_set_new(o, "watchers", json_integer(v->watchers->len));
        if (v->state == TM_VS_ACTIVE) {
            /* Who else is in a visit of more than two: ids and roles, no names. */
            json_t *party = json_array();
            for (guint j = 0; j < v->party->len; j++) {
                const party_member *m = g_ptr_array_index(v->party, j);
                user *u = g_hash_table_lookup(sig->users, m->key);
                json_array_append_new(party, json_pack("{s:s, s:s, s:b}", "id", m->sub, "role",
                                                       tm__visit_role_name(m->role), "connected",
                                                       u && u->sess));
            }
            json_object_set_new(o, "party", party);
        }
        if (v->quality) {
            json_object_set(o, "quality", v->quality);
            add_quality_alerts(sig, v, alerts, now);
        }
        tm__media_health_alerts(v, alerts, now);
        if (v->state == TM_VS_WAITING || v->state == TM_VS_OFFERED) {
            if (now - v->checkin_ms > (int64_t)sig->cfg->wait_alert_s * 1000)
                json_array_append_new(
                    alerts, json_pack("{s:s, s:s, s:I}", "kind", "long_wait", "visit_id", v->id,
                                      "waited_s", (json_int_t)((now - v->checkin_ms) / 1000)));
            if (v->urgent)
                json_array_append_new(alerts,
                                      json_pack("{s:s, s:s}", "kind", "urgent", "visit_id", v->id));
        }
        json_array_append_new(visits, o);
    }
    add_live_elsewhere(sig, depts, visits, now);
    json_t *doctors = json_array();
    g_hash_table_iter_init(&it, sig->staff);
    while (g_hash_table_iter_next(&it, &k, &val)) {
        user *u = val;
        if (u->role != TM_ROLE_DOCTOR || (scope && strcmp(u->institution, institution) != 0))
            continue;
        json_t *o = json_pack("{s:s, s:s, s:b, s:i}", "id", u->sub, "status",
                              tm__doctor_status_names[u->status], "connected", u->sess != NULL,
                              "visits", (int)u->visits->len);
        json_object_set_new(o, "offer",
                            u->offer_visit[0] ? json_string(u->offer_visit) : json_null());
        json_array_append_new(doctors, o);
    }
    while (
        json_array_size(sig->recent_alerts) &&
        now - json_integer_value(json_object_get(json_array_get(sig->recent_alerts, 0), "at_ms")) >
            RECENT_ALERT_MS)
        json_array_remove(sig->recent_alerts, 0);
    size_t a;
    json_t *alert;
    json_array_foreach(sig->recent_alerts, a, alert)
    {
        if (alert_in(sig, scope, alert))
            json_array_append(alerts, alert);
    }
    /* The feed is the deployment's: the alliance's supervisors watch it. */
    json_t *feed = sig->feed && !scope ? tm_feed_status(sig->feed) : NULL;
    /* A regulator feed more than a minute behind is the hospital's problem
     * to know about now, not at the next inspection. */
    if (feed && json_integer_value(json_object_get(feed, "oldest_undelivered_age_s")) > 60)
        json_array_append_new(alerts, json_pack("{s:s, s:O, s:O}", "kind", "feed_backlog",
                                                "queue_depth", json_object_get(feed, "queue_depth"),
                                                "oldest_undelivered_age_s",
                                                json_object_get(feed, "oldest_undelivered_age_s")));
    json_t *ov = json_pack("{s:s, s:o, s:o, s:o, s:o}", "type", "overview", "departments", depts,
                           "visits", visits, "doctors", doctors, "alerts", alerts);
    json_object_set_new(ov, "at", tm__time_json(now));
    json_object_set_new(ov, "institution", scope ? json_string(institution) : json_null());
    if (feed)
        json_object_set_new(ov, "feed", feed);
    if (scope)
        g_hash_table_unref(scope);
    return ov;
}

/* One overview built per scope ("" the alliance, else an institution) and
 * sent to every subscriber of that scope. */
static void push_overview(tm_signaling *sig)
{
    GHashTable *by_scope =
        g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify)json_decref);
    GHashTableIter it;
    gpointer k, val;
    g_hash_table_iter_init(&it, sig->staff);
    while (g_hash_table_iter_next(&it, &k, &val)) {
        user *u = val;
        if (!u->overview || !u->sess)
            continue;
        json_t *ov = g_hash_table_lookup(by_scope, u->institution);
        if (!ov) {
            ov = tm_signaling_overview_in(sig, u->institution);
            g_hash_table_insert(by_scope, u->institution, ov);
        }
        u->overview_pushes++;
        tm__send_msg(u->sess, json_incref(ov));
    }
    g_hash_table_unref(by_scope);
}

static void push_overview_if_dirty(tm_signaling *sig)
{
    if (sig->overview_dirty) {
        sig->overview_dirty = false;
        push_overview(sig);
    }
}

static gboolean overview_fire(gpointer data)
{
    tm_signaling *sig = data;
    sig->overview_timer = 0;
    push_overview_if_dirty(sig);
    return G_SOURCE_REMOVE;
}

/* The push the timer waits for goes now, and its timer with it: a timer sig
 * no longer knows of would outlive tm_signaling_free. */
void tm__overview_push_now(tm_signaling *sig)
{
    if (sig->overview_timer) {
        g_source_remove(sig->overview_timer);
        sig->overview_timer = 0;
    }
    push_overview_if_dirty(sig);
}

void tm__mark_overview_dirty(tm_signaling *sig)
{
    sig->overview_dirty = true;
    /* Coalesce bursts (a check-in moves many positions) into one push. */
    if (!sig->overview_timer)
        sig->overview_timer = g_timeout_add(200, overview_fire, sig);
}

/* The overview lists patients, so a subscription is a read of patient data:
 * its start and its end (with how many pushes it carried) are audited, not
 * each push, which would write a row per supervisor every second. */
void tm__overview_end(tm_signaling *sig, user *u, const char *why)
{
    if (!u->overview)
        return;
    u->overview = false;
    char detail[80];
    snprintf(detail, sizeof(detail), "%s; pushes=%" G_GUINT64_FORMAT, why, u->overview_pushes);
    tm_store_audit(sig->store, u->sub, tm__audit_role(u), "overview.unsubscribe",
                   sig->cfg->hospital_id, "ok", detail);
}

static void handle_overview(request *r, bool on)
{
    if (!tm__need_role(r, TM_ROLE_SUPERVISOR, TM_ROLE_ADMIN))
        return;
    if (on && !r->u->overview) {
        r->u->overview = true;
        r->u->overview_pushes = 0;
        tm_store_audit(r->sig->store, r->u->sub, tm__audit_role(r->u), "overview.subscribe",
                       r->sig->cfg->hospital_id, "ok", NULL);
    } else if (!on) {
        tm__overview_end(r->sig, r->u, "requested");
    }
    tm__reply_ok(r->s, r->id, NULL);
    if (on) {
        r->u->overview_pushes++;
        tm__send_msg(r->s, tm_signaling_overview_in(r->sig, r->u->institution));
    }
}

static void handle_overview_on(request *r)
{
    handle_overview(r, true);
}

static void handle_overview_off(request *r)
{
    handle_overview(r, false);
}

/* A visit another live node holds is watched there: a supervisor in scope
 * is sent to that node (session.move) and the watch here refused with
 * visit_elsewhere, the connection left open for the wall's other watches.
 * Scope and audit come first: one out of scope is refused, not moved.
 * True when answered; mirror is this node's copy of the visit, if any. */
static bool watch_elsewhere(request *r, const char *visit_id, const live_visit *mirror)
{
    tm_signaling *sig = r->sig;
    char holder[64], url[300], detail[100];
    if (!tm__cluster_held_elsewhere(sig, visit_id, holder, url, sizeof(url)))
        return false;
    tm_visit rec;
    const char *dept = mirror                                                ? mirror->dept
                       : tm_store_visit_get(sig->store, visit_id, &rec) == 0 ? rec.dept_id
                                                                             : "";
    if (!user_sees_dept(sig, r->u, dept)) {
        tm_store_audit(sig->store, r->u->sub, tm__audit_role(r->u), "visit.watch", visit_id,
                       "denied", "another institution");
        tm__reply_err(r->s, r->id, TM_EPERM, "the visit belongs to another institution");
        return true;
    }
    snprintf(detail, sizeof(detail), "held by %s", holder);
    tm_store_audit(sig->store, r->u->sub, tm__audit_role(r->u), "visit.watch", visit_id, "moved",
                   detail);
    tm__send_msg(r->s, json_pack("{s:s, s:s, s:s, s:s}", "type", "session.move", "url", url,
                                 "visit_id", visit_id, "reason", "holder_changed"));
    tm_info("cluster.user_moved", "visit=%s user=%s to=%s reason=watch", visit_id, r->u->key,
            holder);
    tm__reply_err_reason(r->s, r->id, TM_ECONFLICT,
                         "the visit goes on on another server; watch it there", "visit_elsewhere");
    return true;
}

static void handle_watch(request *r)
{
    tm_signaling *sig = r->sig;
    const char *visit_id = tm__jstr(r->msg, "visit_id");
    if (r->u->role != TM_ROLE_SUPERVISOR) {
        tm_store_audit(sig->store, r->u->sub, tm__audit_role(r->u), "visit.watch", visit_id,
                       "denied", "not a supervisor");
        tm__reply_err(r->s, r->id, TM_EPERM, "only supervisors may watch visits");
        return;
    }
    live_visit *v = visit_id ? g_hash_table_lookup(sig->visits, visit_id) : NULL;
    if (visit_id && (!v || v->remote) && watch_elsewhere(r, visit_id, v))
        return;
    if (!v || v->state != TM_VS_ACTIVE) {
        tm_visit rec;
        int rc = !visit_id                                            ? TM_EINVAL
                 : tm_store_visit_get(sig->store, visit_id, &rec) < 0 ? TM_ENOTFOUND
                                                                      : TM_ECONFLICT;
        tm_store_audit(sig->store, r->u->sub, tm__audit_role(r->u), "visit.watch", visit_id,
                       "denied", rc == TM_ECONFLICT ? "visit not live" : "no such visit");
        tm__reply_err(r->s, r->id, rc, rc == TM_ECONFLICT ? "the visit is not live" : NULL);
        return;
    }
    if (!user_sees_dept(sig, r->u, v->dept)) {
        tm_store_audit(sig->store, r->u->sub, tm__audit_role(r->u), "visit.watch", v->id, "denied",
                       "another institution");
        tm__reply_err(r->s, r->id, TM_EPERM, "the visit belongs to another institution");
        return;
    }
    bool again = tm__user_watches(r->u, v->id);
    if (!again && r->u->watching->len >= TM_WATCH_MAX) {
        tm__reply_err(r->s, r->id, TM_ECONFLICT, "watching too many visits at once");
        return;
    }
    if (!again) {
        g_ptr_array_add(r->u->watching, g_strdup(v->id));
        g_ptr_array_add(v->watchers, g_strdup(r->u->key));
        tm_store_audit(sig->store, r->u->sub, tm__audit_role(r->u), "visit.watch", v->id, "ok",
                       NULL);
        tm_info("visit.watch", "visit=%s supervisor=%s", v->id, r->u->sub);
        if (sig->cfg->supervisor_notice) {
            json_t *m = json_pack("{s:s, s:s, s:b, s:i}", "type", "visit.supervisor", "visit_id",
                                  v->id, "present", true, "count", (int)v->watchers->len);
            tm__party_send_members(sig, v, m);
        }
    }
    tm__reply_ok(r->s, r->id,
                 json_pack("{s:s, s:s, s:s}", "visit_id", v->id, "patient_id", v->patient_sub,
                           "doctor_id", v->doctor_id));
    tm__send_to_user(r->u, json_pack("{s:s, s:s, s:o}", "type", "visit.participants", "visit_id",
                                     v->id, "participants", tm__party_json(sig, v)));
    tm__mark_overview_dirty(sig);
}

static void stop_watching_one(tm_signaling *sig, user *u, guint at, const char *why)
{
    char *visit_id = g_ptr_array_steal_index(u->watching, at);
    live_visit *v = g_hash_table_lookup(sig->visits, visit_id);
    tm_store_audit(sig->store, u->sub, tm__audit_role(u), "visit.unwatch", visit_id, "ok", why);
    if (sig->media)
        tm_media_peer_close(sig->media, visit_id, u->key);
    if (v) {
        for (guint i = 0; i < v->watchers->len; i++) {
            if (strcmp(g_ptr_array_index(v->watchers, i), u->key) == 0) {
                g_ptr_array_remove_index(v->watchers, i);
                break;
            }
        }
        if (sig->cfg->supervisor_notice) {
            json_t *m =
                json_pack("{s:s, s:s, s:b, s:i}", "type", "visit.supervisor", "visit_id", v->id,
                          "present", v->watchers->len > 0, "count", (int)v->watchers->len);
            tm__party_send_members(sig, v, m);
        }
    }
    g_free(visit_id);
}

void tm__stop_watching(tm_signaling *sig, user *u, const char *visit_id, const char *why)
{
    if (visit_id) {
        int at = watch_index(u, visit_id);
        if (at >= 0)
            stop_watching_one(sig, u, (guint)at, why);
    } else {
        while (u->watching->len)
            stop_watching_one(sig, u, u->watching->len - 1, why);
    }
    tm__mark_overview_dirty(sig);
}

static void handle_unwatch(request *r)
{
    if (!tm__need_role(r, TM_ROLE_SUPERVISOR, TM_ROLE_SUPERVISOR))
        return;
    /* Without a visit_id every watch ends (a page that watches one visit). */
    const char *visit_id = tm__jstr(r->msg, "visit_id");
    if (visit_id ? !tm__user_watches(r->u, visit_id) : !r->u->watching->len) {
        tm__reply_err(r->s, r->id, TM_ECONFLICT, "not watching");
        return;
    }
    tm__stop_watching(r->sig, r->u, visit_id, "requested");
    tm__reply_ok(r->s, r->id, NULL);
}

void tm__recording_failed_alert(const char *visit_id, const char *reason, void *sig)
{
    tm__remember_alert(sig, json_pack("{s:s, s:s, s:s}", "kind", "recording_failed", "visit_id",
                                      visit_id, "reason", reason ? reason : "failed"));
}

const tm__handler tm__supervision_handlers[] = {
    {"overview.subscribe", handle_overview_on},
    {"overview.unsubscribe", handle_overview_off},
    {"visit.watch", handle_watch},
    {"visit.unwatch", handle_unwatch},
    {NULL, NULL},
};

/*
 * consult.c - consultation requests (issue 18) on the live side: pushes to
 * the people a request concerns when it changes over REST, and the visit a
 * scheduled consultation becomes. The patient checks in with the
 * consultation's appointment like any follow-up; when the requester (or a
 * colleague of the requesting department) accepts that visit, it is the
 * consultation's: the specialist, and the requester if someone else
 * attends, are told to join, and join it as consulting doctors the way an
 * invited colleague does (party.c).
 *
 * Control loop. The store holds every request and its state; this room
 * keeps nothing of its own.
 */
#include "signaling_internal.h"
#include "telemed/log.h"

#include <string.h>

static const char *field(json_t *row, const char *key)
{
    const char *v = json_string_value(json_object_get(row, key));
    return v ? v : "";
}

/* Sends m (stolen) to the doctor sub once, remembering who had it in sent. */
static void send_once(tm_signaling *sig, GHashTable *sent, const char *sub, json_t *m)
{
    user *u = sub[0] ? tm__find_user(sig, TM_ROLE_DOCTOR, sub) : NULL;
    if (u && u->sess && !g_hash_table_contains(sent, u->key)) {
        g_hash_table_add(sent, u->key);
        tm__send_to_user(u, json_incref(m));
    }
    json_decref(m);
}

void tm_signaling_consult_push(tm_signaling *sig, const char *event, json_t *row)
{
    json_t *m = json_pack("{s:s, s:s, s:O}", "type", "consultation.updated", "event", event,
                          "consultation", row);
    GHashTable *sent = g_hash_table_new(g_str_hash, g_str_equal);
    send_once(sig, sent, field(row, "requester_id"), json_incref(m));
    send_once(sig, sent, field(row, "specialist_id"), json_incref(m));
    send_once(sig, sent, field(row, "proposed_specialist_id"), json_incref(m));
    /* The receiving department's doctors on duty decide on new requests; the
     * registry says whose department it is (a token's dept is optional). */
    GHashTableIter it;
    gpointer k, val;
    tm_doctor_info d;
    g_hash_table_iter_init(&it, sig->staff);
    while (g_hash_table_iter_next(&it, &k, &val)) {
        user *u = val;
        if (u->role == TM_ROLE_DOCTOR && u->sess && u->status != DOC_OFF_DUTY &&
            tm_store_doctor_get(sig->store, u->sub, &d) == 0 &&
            strcmp(d.dept_id, field(row, "dept_id")) == 0)
            send_once(sig, sent, u->sub, json_incref(m));
    }
    g_hash_table_destroy(sent);
    json_decref(m);
}

static json_t *started_msg(json_t *row, const char *visit_id)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "consultation.started", "consultation_id",
                     field(row, "consultation_id"), "visit_id", visit_id, "patient_id",
                     field(row, "patient_id"), "role", "consulting");
}

void tm__consult_visit_started(tm_signaling *sig, live_visit *v)
{
    if (!v->has_appt)
        return;
    json_t *row = NULL;
    int rc = tm_store_consult_visit_started(sig->store, v->id, &row);
    if (rc < 0) {
        tm_error("consult.start_failed", "visit=%s err=%s", v->id, tm_store_errmsg(sig->store));
        return;
    }
    if (!row)
        return;
    const char *id = field(row, "consultation_id");
    tm_info("consult.started", "consultation=%s visit=%s", id, v->id);
    tm_store_audit(sig->store, "system", "system", "consultation.start", id, "ok", v->id);
    GHashTable *sent = g_hash_table_new(g_str_hash, g_str_equal);
    user *attending = tm__visit_doctor(sig, v);
    if (attending)
        g_hash_table_add(sent, attending->key);
    send_once(sig, sent, field(row, "specialist_id"), started_msg(row, v->id));
    send_once(sig, sent, field(row, "requester_id"), started_msg(row, v->id));
    g_hash_table_destroy(sent);
    tm_signaling_consult_push(sig, "in_progress", row);
    json_decref(row);
}

/* The consultation r names, in progress in a live active visit, of which
 * the sender is the specialist or the requester; otherwise answered. */
static live_visit *consult_visit(request *r, json_t **row_out)
{
    const char *id = tm__jstr(r->msg, "consultation_id");
    json_t *row = id ? tm_store_consult_get(r->sig->store, id) : NULL;
    *row_out = NULL;
    if (!id) {
        tm__reply_err(r->s, r->id, TM_EINVAL, "consultation_id is required");
        return NULL;
    }
    if (!row || (strcmp(field(row, "specialist_id"), r->u->sub) != 0 &&
                 strcmp(field(row, "requester_id"), r->u->sub) != 0)) {
        json_decref(row);
        tm__reply_err(r->s, r->id, TM_ENOTFOUND, "no consultation of yours with this id");
        return NULL;
    }
    live_visit *v = g_hash_table_lookup(r->sig->visits, field(row, "visit_id"));
    if (strcmp(field(row, "state"), "in_progress") != 0 || !v || v->state != TM_VS_ACTIVE) {
        json_decref(row);
        tm__reply_err(r->s, r->id, TM_ECONFLICT, "the consultation is not taking place now");
        return NULL;
    }
    if (tm__party_role(r->sig, v, r->u) != TM_VR_NONE) {
        json_decref(row);
        tm__reply_err(r->s, r->id, TM_ECONFLICT, "already in the visit");
        return NULL;
    }
    *row_out = row;
    return v;
}

/* Proved who they are (doctor_check.c), as a consulting doctor does. */
static void join_checked(request *r, const tm_doctor_check *check)
{
    (void)check;
    json_t *row;
    live_visit *v = consult_visit(r, &row);
    if (!v)
        return;
    int64_t now = tm_now_ms();
    int rc =
        tm_store_party_join(r->sig->store, v->id, r->u->sub, "consulting", r->s->ua, true, now);
    if (rc < 0) {
        tm__reply_err(r->s, r->id, rc, "joining the visit failed");
    } else {
        tm_store_audit(r->sig->store, r->u->sub, tm__audit_role(r->u), "consultation.join",
                       field(row, "consultation_id"), "ok", v->id);
        if (r->sig->feed)
            tm_feed_kick(r->sig->feed);
        tm__party_joined(r, v, TM_VR_CONSULTING, now, field(row, "consultation_id"));
    }
    json_decref(row);
}

static void handle_join(request *r)
{
    if (!tm__need_role(r, TM_ROLE_DOCTOR, TM_ROLE_DOCTOR))
        return;
    json_t *row;
    live_visit *v = consult_visit(r, &row);
    json_decref(row);
    if (v)
        tm__doctor_check(r, v, join_checked);
}

const tm__handler tm__consult_handlers[] = {
    {"consultation.join", handle_join},
    {NULL, NULL},
};

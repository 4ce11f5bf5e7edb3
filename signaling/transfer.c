/*
 * transfer.c - the attending doctor hands a live visit on (issue 18): to
 * another department, where the patient waits at the head of the queue, or
 * to a named doctor, who is offered the visit first (declined or lapsed, it
 * goes to the head of that doctor's department like any offer).
 *
 * Control loop. The visit state machine moves the visit (TRANSFER: active
 * -> waiting, then OFFER for a named doctor); the store closes the first
 * doctor's part with its event before anything is pushed. The patient's
 * WebSocket and media connection stay: only the leaving doctor's media peer
 * closes, and the next doctor's streams start the recording's next part.
 * Invited participants (a consulting doctor, an interpreter, a nurse, a
 * guest) stay with the patient, as on a ward round the colleague stays at
 * the bedside while the next doctor comes; open invites stay open and are
 * answered once the next doctor has joined.
 * Referrals are REST's (server/api_referral.c); their pushes to doctors
 * leave from the end of this file.
 */
#include "signaling_internal.h"
#include "telemed/log.h"

#include <string.h>

/* The target a visit.transfer names, checked. */
typedef struct transfer_target {
    char dept[64];
    const char *doctor_id; /* NULL: the department's queue */
    user *doctor;          /* the named doctor, connected */
} transfer_target;

/* A department doctor d works in: the one registered, or one of a shift. */
static bool doctor_works_in(request *r, const tm_doctor_info *d, const char *dept)
{
    return strcmp(d->dept_id, dept) == 0 || tm__shifts_has_dept(r->sig->shifts, d->id, dept);
}

/* Doctors other than me on duty for dept now. */
static int others_on_duty(tm_signaling *sig, const char *dept, const user *me)
{
    int n = tm__doctors_on_duty(sig, dept);
    return tm__doctor_on_duty(sig, me, dept) ? n - 1 : n;
}

/* The named doctor: registered, a doctor, not me, connected and free to be
 * offered; their department the one given or their shift's or their own. */
static bool named_target(request *r, const char *dept, const char *doctor_id, transfer_target *t)
{
    tm_doctor_info d;
    if (tm_store_doctor_get(r->sig->store, doctor_id, &d) < 0 || !d.active ||
        strcmp(d.kind, "doctor") != 0) {
        tm__reply_err_reason(r->s, r->id, TM_ENOTFOUND, "no such doctor", "unknown_target");
        return false;
    }
    if (strcmp(doctor_id, r->u->sub) == 0) {
        tm__reply_err(r->s, r->id, TM_EINVAL, "you attend this visit already");
        return false;
    }
    if (dept && !doctor_works_in(r, &d, dept)) {
        tm__reply_err(r->s, r->id, TM_EINVAL, "the doctor does not work in that department");
        return false;
    }
    user *u = tm__find_user(r->sig, TM_ROLE_DOCTOR, doctor_id);
    if (!u || !u->sess || u->status == DOC_OFF_DUTY || u->offer_visit[0]) {
        tm__reply_err_reason(r->s, r->id, TM_ECONFLICT,
                             "the doctor is not free to take the patient now", "doctor_busy");
        return false;
    }
    const tm__shift *sh = tm__shifts_current(r->sig->shifts, doctor_id, NULL, tm_now_ms());
    g_strlcpy(t->dept, dept ? dept : sh ? sh->dept : d.dept_id, sizeof(t->dept));
    t->doctor_id = doctor_id;
    t->doctor = u;
    return true;
}

/* Parses and checks where the visit goes; otherwise answers and false. */
static bool parse_target(request *r, transfer_target *t)
{
    const char *dept = tm__jstr(r->msg, "dept");
    const char *doctor_id = tm__jstr(r->msg, "doctor_id");
    if ((json_object_get(r->msg, "dept") && !dept) ||
        (json_object_get(r->msg, "doctor_id") && !doctor_id) || (!dept && !doctor_id)) {
        tm__reply_err(r->s, r->id, TM_EINVAL, "visit.transfer needs dept or doctor_id (strings)");
        return false;
    }
    if (dept && !tm_store_dept_exists(r->sig->store, dept)) {
        tm__reply_err_reason(r->s, r->id, TM_ENOTFOUND, "no such department", "unknown_target");
        return false;
    }
    memset(t, 0, sizeof(*t));
    if (doctor_id)
        return named_target(r, dept, doctor_id, t);
    g_strlcpy(t->dept, dept, sizeof(t->dept));
    /* Handing the patient to one's own department with nobody else there
     * would only bring them back to the same chair, or to none. */
    if (others_on_duty(r->sig, t->dept, r->u) == 0) {
        tm__reply_err_reason(r->s, r->id, TM_ECONFLICT,
                             "no other doctor is on duty in that department", "nobody_on_duty");
        return false;
    }
    return true;
}

/* Who may transfer, and when; otherwise answers and false. */
static bool may_transfer(request *r, live_visit *v, const char **reason)
{
    if (tm__party_role(r->sig, v, r->u) != TM_VR_ATTENDING) {
        tm__reply_err(r->s, r->id, TM_EPERM, "only the attending doctor transfers the visit");
        return false;
    }
    *reason = tm__jstr(r->msg, "reason");
    if (!*reason || !**reason || strlen(*reason) > TM_TRANSFER_REASON_MAX) {
        tm__reply_err(r->s, r->id, TM_EINVAL, "a transfer needs a reason (1 to 500 bytes)");
        return false;
    }
    if (!tm__advance(v, TM_VEV_TRANSFER, false)) {
        tm__reply_err(r->s, r->id, TM_ECONFLICT, "the visit is not live");
        return false;
    }
    return true;
}

/* The leaving doctor is free again and out of the visit's media. */
static void release_doctor(tm_signaling *sig, live_visit *v, user *d)
{
    for (guint i = 0; i < d->visits->len; i++) {
        if (strcmp(g_ptr_array_index(d->visits, i), v->id) == 0) {
            g_ptr_array_remove_index(d->visits, i);
            break;
        }
    }
    d->idle_since_ms = tm_now_ms();
    if (sig->media)
        tm_media_peer_close(sig->media, v->id, d->key);
}

/* The visit waits in its new department, at the head of the queue. */
static void requeue(tm_signaling *sig, live_visit *v, const transfer_target *t, const char *reason)
{
    tm__advance(v, TM_VEV_TRANSFER, true);
    g_strlcpy(v->transferred_from, v->doctor_id, sizeof(v->transferred_from));
    g_strlcpy(v->transfer_reason, reason, sizeof(v->transfer_reason));
    v->transfers++;
    g_strlcpy(v->dept, t->dept, sizeof(v->dept));
    v->doctor_id[0] = 0;
    v->offered_ms = 0;
    v->last_position = -1;
    v->last_estimate_s = -2;
    tm__queue_add(sig, v);
    tm_queue_return_to_head(sig->queue, v->id);
}

static json_t *transferred_msg(tm_signaling *sig, live_visit *v, const transfer_target *t)
{
    json_t *m = json_pack("{s:s, s:s, s:s}", "type", "visit.transferred", "visit_id", v->id, "dept",
                          t->dept);
    json_object_set_new(m, "doctor_id", t->doctor_id ? json_string(t->doctor_id) : json_null());
    json_object_set_new(m, "doctors_on_duty", json_integer(tm__doctors_on_duty(sig, t->dept)));
    return m;
}

static void handle_transfer(request *r)
{
    if (!tm__need_role(r, TM_ROLE_DOCTOR, TM_ROLE_DOCTOR))
        return;
    tm_signaling *sig = r->sig;
    live_visit *v = tm__requested_visit(r);
    const char *reason = NULL;
    transfer_target t;
    if (!v || !may_transfer(r, v, &reason) || !parse_target(r, &t))
        return;
    char transfer_id[64], from_dept[64];
    g_strlcpy(from_dept, v->dept, sizeof(from_dept));
    int rc = tm_store_visit_transfer(sig->store, v->id, r->u->sub, t.dept, t.doctor_id, reason,
                                     tm_now_ms(), transfer_id);
    if (rc < 0) {
        tm__reply_err(r->s, r->id, rc, tm_store_errmsg(sig->store));
        return;
    }
    tm_info("visit.transferred", "visit=%s transfer=%s from=%s dept=%s to=%s", v->id, transfer_id,
            r->u->sub, t.dept, t.doctor_id ? t.doctor_id : "-");
    release_doctor(sig, v, r->u);
    requeue(sig, v, &t, reason);
    if (v->party->len)
        tm__party_push(sig, v); /* without the doctor who left */
    if (sig->feed)
        tm_feed_kick(sig->feed);
    user *p = tm__visit_patient(sig, v);
    tm__send_to_user(p, transferred_msg(sig, v, &t));
    if (t.doctor)
        tm__offer_visit(sig, v, t.doctor);
    else
        tm__push_visit_state(sig, v, v->id, p, NULL);
    json_t *data = transferred_msg(sig, v, &t);
    json_object_del(data, "type");
    json_object_set_new(data, "transfer_id", json_string(transfer_id));
    tm__reply_ok(r->s, r->id, data);
    tm__mark_dept_dirty(sig, v->dept);
    tm__dispatch_dept(sig, v->dept);
    tm__dispatch_dept(sig, from_dept);
    tm__flush_positions(sig);
}

void tm__transfer_restore(tm_signaling *sig, live_visit *v)
{
    json_t *rows = tm_store_visit_transfers(sig->store, v->id);
    size_t n = json_array_size(rows);
    json_t *last = json_array_get(rows, n - 1);
    if (last) {
        v->transfers = (int)n;
        const char *from = json_string_value(json_object_get(last, "from_doctor_id"));
        const char *why = json_string_value(json_object_get(last, "reason"));
        g_strlcpy(v->transferred_from, from ? from : "", sizeof(v->transferred_from));
        g_strlcpy(v->transfer_reason, why ? why : "", sizeof(v->transfer_reason));
        if (v->state == TM_VS_WAITING && json_is_null(json_object_get(last, "accepted_at")))
            tm_queue_return_to_head(sig->queue, v->id);
    }
    json_decref(rows);
}

const tm__handler tm__transfer_handlers[] = {
    {"visit.transfer", handle_transfer},
    {NULL, NULL},
};

/* ---- referral pushes (REST makes referrals; doctors hear of them here) ---- */

static const char *text_of(json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : "";
}

int tm_signaling_referral_received(tm_signaling *sig, json_t *rf)
{
    json_t *m =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "type", "referral.received", "referral_id",
                  text_of(rf, "id"), "direction", text_of(rf, "direction"), "to_dept_id",
                  text_of(rf, "to_dept_id"), "from_doctor_id", text_of(rf, "from_doctor_id"),
                  "version", json_integer_value(json_object_get(rf, "version")));
    int n = 0;
    GHashTableIter it;
    gpointer key, val;
    g_hash_table_iter_init(&it, sig->staff);
    while (g_hash_table_iter_next(&it, &key, &val)) {
        user *u = val;
        if (u->role == TM_ROLE_DOCTOR && tm__doctor_on_duty(sig, u, text_of(rf, "to_dept_id"))) {
            tm__send_to_user(u, json_incref(m));
            n++;
        }
    }
    json_decref(m);
    return n;
}

int tm_signaling_referral_answered(tm_signaling *sig, json_t *rf)
{
    user *u = tm__find_user(sig, TM_ROLE_DOCTOR, text_of(rf, "from_doctor_id"));
    if (!u || !u->sess)
        return 0;
    json_t *reason = json_object_get(rf, "decline_reason");
    tm__send_to_user(u, json_pack("{s:s, s:s, s:s, s:O}", "type", "referral.answered",
                                  "referral_id", text_of(rf, "id"), "state", text_of(rf, "state"),
                                  "decline_reason", reason ? reason : json_null()));
    return 1;
}

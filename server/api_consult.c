/*
 * api_consult.c - consultation requests (远程会诊) as a REST resource:
 * /api/v1/consultations. A doctor requests; the receiving department's
 * doctors (or a supervisor or admin) schedule, propose another time or
 * decline; the requester accepts or declines a proposal, or cancels; the
 * specialist signs the opinion once the consultation has taken place.
 *
 * Every step goes to the store first (with its regulator event), then the
 * audit log, then a push to the people concerned (tm_signaling_consult_push)
 * and a kick of the feed. Control loop thread only.
 */
#include "http_internal.h"
#include "telemed/common.h"
#include "telemed/log.h"
#include "telemed/store.h"

#include <string.h>

/* The caller's department ("" when not a registered doctor). */
static void my_dept(http_req *r, char out[64])
{
    tm_doctor_info d;
    out[0] = 0;
    if (r->who.role == TM_ROLE_DOCTOR && tm_store_doctor_get(r->app->store, r->who.sub, &d) == 0)
        g_strlcpy(out, d.dept_id, 64);
}

static const char *field(json_t *row, const char *key)
{
    const char *v = json_string_value(json_object_get(row, key));
    return v ? v : "";
}

static bool is_requester(http_req *r, json_t *row)
{
    return r->who.role == TM_ROLE_DOCTOR && strcmp(field(row, "requester_id"), r->who.sub) == 0;
}

/* The receiving side: its department's doctors, supervisors and admins
 * (of its institution, when scoped to one). */
static bool is_receiver(http_req *r, json_t *row)
{
    if (tm__is_staff(r))
        return tm__scope_has_dept(r, field(row, "dept_id"));
    char dept[64];
    my_dept(r, dept);
    return dept[0] && strcmp(dept, field(row, "dept_id")) == 0;
}

static bool may_read(http_req *r, json_t *row)
{
    return is_requester(r, row) || is_receiver(r, row) ||
           (tm__is_staff(r) && tm__scope_has_dept(r, field(row, "requester_dept_id"))) ||
           (r->who.role == TM_ROLE_DOCTOR && strcmp(field(row, "specialist_id"), r->who.sub) == 0);
}

/* After a step: audit, push, feed; answers with the row as it is now. */
static void stepped(http_req *r, const char *id, const char *action, const char *event, int status)
{
    tm__audit(r, action, id, "ok");
    json_t *row = tm_store_consult_get(r->app->store, id);
    if (!row) {
        tm__respond_err(r->p, TM_EIO, tm_store_errmsg(r->app->store));
        return;
    }
    tm_info("consult.step", "consultation=%s step=%s by=%s", id, event, r->who.sub);
    if (r->app->sig)
        tm_signaling_consult_push(r->app->sig, event, row);
    if (r->app->feed)
        tm_feed_kick(r->app->feed);
    tm__respond_json(r->p, status, row);
}

static void refused(http_req *r, const char *action, const char *id, int rc)
{
    tm_store_audit(r->app->store, r->who.sub, tm_role_name(r->who.role), action, id, "refused",
                   tm_store_errmsg(r->app->store));
    tm__respond_err(r->p, rc, tm_store_errmsg(r->app->store));
}

static void create(http_req *r)
{
    if (!tm__need(r, r->who.role == TM_ROLE_DOCTOR))
        return;
    bool bad = false;
    tm_consult_request c = {0};
    const char *patient = tm__body_str(r->body, "patient_id", 127, true, &bad);
    const char *dept = tm__body_str(r->body, "dept_id", 63, true, &bad);
    const char *specialist = tm__body_str(r->body, "specialist_id", 63, false, &bad);
    const char *visit = tm__body_str(r->body, "visit_id", 63, false, &bad);
    const char *urgency = tm__body_str(r->body, "urgency", 15, false, &bad);
    c.reason = tm__body_str(r->body, "reason", TM_CONSULT_TEXT_MAX, true, &bad);
    c.question = tm__body_str(r->body, "question", TM_CONSULT_TEXT_MAX, true, &bad);
    c.attachments = json_object_get(r->body, "attachments");
    c.window_start_ms = tm__body_time(r->body, "window_start", &bad);
    c.window_end_ms = tm__body_time(r->body, "window_end", &bad);
    if (bad || !c.window_start_ms || !c.window_end_ms) {
        tm__respond_err(r->p, TM_EINVAL,
                        "a consultation request needs patient_id, dept_id, reason, question, "
                        "window_start and window_end (RFC 3339); specialist_id, visit_id, "
                        "urgency and attachments optional");
        return;
    }
    /* From a live visit, the patient is that visit's and the visit the
     * requester's; otherwise the requester must be one who may see them. */
    if (visit) {
        tm_visit v;
        if (tm_store_visit_get(r->app->store, visit, &v) < 0 ||
            strcmp(v.doctor_id, r->who.sub) != 0 || strcmp(v.patient_id, patient) != 0) {
            tm__respond_err(r->p, TM_EPERM, "not a visit of yours with this patient");
            return;
        }
    } else {
        /* "" matches no department: only a visit of theirs with the patient counts. */
        if (!tm__doctor_may_see(r, "", patient)) {
            tm__respond_err(r->p, TM_EPERM, "not a patient of yours");
            return;
        }
    }
    g_strlcpy(c.patient_id, patient, sizeof(c.patient_id));
    g_strlcpy(c.requester_id, r->who.sub, sizeof(c.requester_id));
    g_strlcpy(c.origin_visit_id, visit ? visit : "", sizeof(c.origin_visit_id));
    g_strlcpy(c.dept_id, dept, sizeof(c.dept_id));
    g_strlcpy(c.specialist_id, specialist ? specialist : "", sizeof(c.specialist_id));
    g_strlcpy(c.urgency, urgency ? urgency : "routine", sizeof(c.urgency));
    int rc = tm_store_consult_create(r->app->store, &c, tm_now_ms());
    if (rc < 0) {
        refused(r, "consultation.request", dept, rc);
        return;
    }
    stepped(r, c.id, "consultation.request", "requested", 201);
}

static void list(http_req *r)
{
    char side_buf[32], state_buf[32], dept_buf[80], mine[64];
    const char *side = tm__arg(r, "side", side_buf, sizeof(side_buf));
    const char *state = tm__arg(r, "state", state_buf, sizeof(state_buf));
    const char *dept = tm__arg(r, "dept", dept_buf, sizeof(dept_buf));
    if (!side)
        side = tm__is_staff(r) ? "incoming" : "outgoing";
    bool incoming = strcmp(side, "incoming") == 0;
    if (!incoming && strcmp(side, "outgoing") != 0) {
        tm__respond_err(r->p, TM_EINVAL, "side is incoming or outgoing");
        return;
    }
    json_t *rows;
    if (tm__is_staff(r)) {
        /* Staff of one institution: the requests it received or sent,
         * read at the store's cap so the scope keeps the newest 100. */
        rows = tm_store_consult_list(r->app->store, NULL, dept, state,
                                     r->who.institution[0] ? 500 : 0);
        rows = tm__scope_rows(r, rows, "dept_id", "requester_dept_id", 100);
    } else if (r->who.role == TM_ROLE_DOCTOR) {
        my_dept(r, mine);
        if (incoming && !mine[0]) {
            tm__respond_err(r->p, TM_EPERM, "not a doctor of a department");
            return;
        }
        rows = incoming ? tm_store_consult_list(r->app->store, NULL, mine, state, 0)
                        : tm_store_consult_list(r->app->store, r->who.sub, NULL, state, 0);
    } else {
        tm__need(r, false);
        return;
    }
    if (!rows) {
        tm__respond_err(r->p, TM_EIO, NULL);
        return;
    }
    tm__audit_list(r, "consultation.list", NULL);
    tm__respond_json(r->p, 200, json_pack("{s:o}", "consultations", rows));
}

static int64_t slot_of(http_req *r, bool *bad)
{
    int64_t t = tm__body_time(r->body, "slot_at", bad);
    if (!t)
        *bad = true;
    return t;
}

/* POST /consultations/{id}/{step}: who may take it and what it needs. */
static void step(http_req *r, json_t *row, const char *id, const char *what)
{
    tm_store *st = r->app->store;
    int64_t now = tm_now_ms();
    bool bad = false;
    int rc;
    if (strcmp(what, "schedule") == 0 || strcmp(what, "propose") == 0) {
        if (!tm__need(r, is_receiver(r, row)))
            return;
        const char *specialist = tm__body_str(r->body, "specialist_id", 63, true, &bad);
        int64_t slot = slot_of(r, &bad);
        if (bad) {
            tm__respond_err(r->p, TM_EINVAL, "needs specialist_id and slot_at (RFC 3339)");
            return;
        }
        bool schedule = what[0] == 's';
        rc = schedule ? tm_store_consult_schedule(st, id, r->who.sub, specialist, slot, now)
                      : tm_store_consult_propose(st, id, r->who.sub, specialist, slot, now);
        if (rc < 0)
            refused(r, schedule ? "consultation.schedule" : "consultation.propose", id, rc);
        else if (schedule)
            stepped(r, id, "consultation.schedule", "scheduled", 200);
        else
            stepped(r, id, "consultation.propose", "proposed", 200);
        return;
    }
    if (strcmp(what, "decline") == 0) {
        /* The department declines a request; the requester declines a proposal. */
        bool proposed = strcmp(field(row, "state"), "proposed") == 0;
        if (!tm__need(r, proposed ? is_requester(r, row) : is_receiver(r, row)))
            return;
        const char *reason = tm__body_str(r->body, "reason", TM_CONSULT_TEXT_MAX, true, &bad);
        if (bad) {
            tm__respond_err(r->p, TM_EINVAL, "a decline needs a reason (1 to 4000 bytes)");
            return;
        }
        if ((rc = tm_store_consult_decline(st, id, r->who.sub, reason, now)) < 0)
            refused(r, "consultation.decline", id, rc);
        else
            stepped(r, id, "consultation.decline", "declined", 200);
        return;
    }
    if (strcmp(what, "accept-proposal") == 0) {
        if (!tm__need(r, is_requester(r, row)))
            return;
        if ((rc = tm_store_consult_accept_proposal(st, id, r->who.sub, now)) < 0)
            refused(r, "consultation.accept_proposal", id, rc);
        else
            stepped(r, id, "consultation.accept_proposal", "scheduled", 200);
        return;
    }
    if (strcmp(what, "cancel") == 0) {
        if (!tm__need(r, is_requester(r, row) || tm__is_admin(r)))
            return;
        if ((rc = tm_store_consult_cancel(st, id, r->who.sub, now)) < 0)
            refused(r, "consultation.cancel", id, rc);
        else
            stepped(r, id, "consultation.cancel", "cancelled", 200);
        return;
    }
    if (strcmp(what, "opinion") == 0) {
        if (!tm__need(r, r->who.role == TM_ROLE_DOCTOR))
            return;
        const char *body = tm__body_str(r->body, "body", TM_CONSULT_TEXT_MAX, true, &bad);
        const char *code = tm__body_str(r->body, "diagnosis_code", 31, false, &bad);
        json_t *sign = json_object_get(r->body, "sign");
        if (bad || (sign && !json_is_boolean(sign))) {
            tm__respond_err(r->p, TM_EINVAL,
                            "an opinion needs body; diagnosis_code and sign (boolean) optional");
            return;
        }
        rc = tm_store_consult_opinion(st, id, r->who.sub, body, code, json_is_true(sign), now);
        if (rc < 0)
            refused(r, "consultation.opinion", id, rc);
        else
            stepped(r, id,
                    json_is_true(sign) ? "consultation.opinion_sign" : "consultation.opinion",
                    json_is_true(sign) ? "opinion_signed" : "opinion_saved", 200);
        return;
    }
    tm__respond_err(r->p, TM_ENOTFOUND, "no such route");
}

void tm__api_consultations(http_req *r)
{
    bool post = r->p->method == LWSHUMETH_POST;
    if (r->nseg == 1 && post) {
        create(r);
        return;
    }
    if (r->nseg == 1 && r->p->method == LWSHUMETH_GET) {
        list(r);
        return;
    }
    if (r->nseg < 2 || r->nseg > 3 || (r->nseg == 2) == post) {
        tm__respond_err(r->p, TM_ENOTFOUND, "no such route");
        return;
    }
    json_t *row = tm__id_ok(r->seg[1]) ? tm_store_consult_get(r->app->store, r->seg[1]) : NULL;
    if (!row || !may_read(r, row)) {
        tm__respond_err(r->p, row ? TM_EPERM : TM_ENOTFOUND,
                        row ? "not a consultation of yours" : "no such consultation");
        json_decref(row);
        return;
    }
    if (r->nseg == 2) {
        tm__audit(r, "consultation.read", r->seg[1], "ok");
        tm__respond_json(r->p, 200, row);
        return;
    }
    step(r, row, r->seg[1], r->seg[2]);
    json_decref(row);
}

/*
 * api_referral.c - referrals as REST resources (issue 18): a doctor refers
 * the patient of a visit of theirs up or down the alliance; doctors of the
 * receiving department accept or decline; a declined referral is re-sent
 * as a new version; each one is exported as an R4 ServiceRequest with its
 * Encounter. The receiving department's doctors on duty hear of new
 * referrals, and the referring doctor of the answer, as pushes.
 *
 *   POST /referrals                 create from a visit (doctor)
 *   GET  /referrals                 list (staff; a doctor: theirs, or their department's)
 *   GET  /referrals/{id}[/fhir]     one (staff, the referring doctor, the receiving side)
 *   POST /referrals/{id}/accept     (a doctor of the receiving department)
 *   POST /referrals/{id}/decline    {reason}
 *   POST /referrals/{id}/resend     {direction, to_dept_id, reason, summary, appointment_id}
 *
 * Control loop thread only.
 */
#include "http_internal.h"
#include "telemed/common.h"
#include "telemed/fhir.h"
#include "telemed/log.h"
#include "telemed/signaling.h"
#include "telemed/store.h"

#include <stdlib.h>
#include <string.h>

/* Whether the caller (a doctor) works in dept: registered there or with a
 * shift in it. */
static bool works_in(http_req *r, const char *dept)
{
    tm_doctor_info d;
    if (tm_store_doctor_get(r->app->store, r->who.sub, &d) == 0 && strcmp(d.dept_id, dept) == 0)
        return true;
    json_t *shifts = tm_store_shift_list(r->app->store, r->who.sub, dept, 0, 0);
    bool yes = json_array_size(shifts) > 0;
    json_decref(shifts);
    return yes;
}

static bool is_doctor(http_req *r)
{
    return r->who.role == TM_ROLE_DOCTOR;
}

static const char *text_of(json_t *rf, const char *key)
{
    const char *v = json_string_value(json_object_get(rf, key));
    return v ? v : "";
}

/* The request's fields; for a re-send every one is optional. *bad when a
 * field is of the wrong type or too long. */
static void parse_req(http_req *r, tm_referral_req *q, bool required, bool *bad)
{
    memset(q, 0, sizeof(*q));
    q->visit_id = tm__body_str(r->body, "visit_id", 63, required, bad);
    q->direction = tm__body_str(r->body, "direction", 8, required, bad);
    q->to_dept_id = tm__body_str(r->body, "to_dept_id", 63, required, bad);
    q->reason = tm__body_str(r->body, "reason", TM_REFERRAL_REASON_MAX, required, bad);
    q->summary = tm__body_str(r->body, "summary", TM_REFERRAL_SUMMARY_MAX, required, bad);
    q->appointment_id = tm__body_str(r->body, "appointment_id", 63, false, bad);
    q->from_doctor_id = r->who.sub;
}

static void respond_referral(http_req *r, int status, const char *id)
{
    json_t *rf = tm_store_referral_get(r->app->store, id);
    if (!rf) {
        tm__respond_err(r->p, TM_EIO, NULL);
        return;
    }
    if (status == 201)
        tm_signaling_referral_received(r->app->sig, rf);
    else if (strcmp(text_of(rf, "state"), "requested") != 0)
        tm_signaling_referral_answered(r->app->sig, rf);
    tm__respond_json(r->p, status, rf);
}

/* A store refusal, with the level rule's reason word when that rule was
 * what refused (tm_store_referral_levels says so again, in the same words),
 * for the page to put in the doctor's language. */
static void refuse(http_req *r, int rc, const char *direction, const char *from_dept,
                   const char *to_dept)
{
    char *said = g_strdup(tm_store_errmsg(r->app->store));
    const char *why = NULL;
    if (rc == TM_EINVAL && direction && from_dept && to_dept &&
        tm_store_referral_levels(r->app->store, direction, from_dept, to_dept, &why) < 0 && why &&
        strcmp(tm_store_errmsg(r->app->store), said) != 0)
        why = NULL;
    tm__respond_err_reason(r->p, rc, said, why);
    g_free(said);
}

static void create(http_req *r)
{
    if (!tm__need(r, is_doctor(r)))
        return;
    bool bad = false;
    tm_referral_req q;
    parse_req(r, &q, true, &bad);
    if (bad) {
        tm__respond_err(r->p, TM_EINVAL,
                        "a referral needs visit_id, direction (up|down), to_dept_id, reason "
                        "(1-500 bytes), summary (1-8000 bytes), optional appointment_id");
        return;
    }
    char id[64];
    int rc = tm_store_referral_create(r->app->store, &q, tm_now_ms(), id);
    if (rc < 0) {
        tm_doctor_info d;
        bool known = tm_store_doctor_get(r->app->store, r->who.sub, &d) == 0;
        refuse(r, rc, q.direction, known ? d.dept_id : NULL, q.to_dept_id);
        return;
    }
    tm_info("referral.created", "referral=%s visit=%s doctor=%s to=%s", id, q.visit_id, r->who.sub,
            q.to_dept_id);
    tm__audit(r, "referral.create", id, "ok");
    respond_referral(r, 201, id);
}

static void list(http_req *r)
{
    char visit[64], to[64], from[64], state[16], lim[16];
    const char *to_dept = tm__arg(r, "to_dept", to, sizeof(to));
    const char *from_doctor = tm__arg(r, "from_doctor", from, sizeof(from));
    if (is_doctor(r)) {
        /* A doctor lists what they sent, or what came to a department of theirs. */
        if (to_dept && !works_in(r, to_dept)) {
            tm__respond_err(r->p, TM_EPERM, "not a department of yours");
            return;
        }
        if (!to_dept)
            from_doctor = r->who.sub;
    } else if (!tm__need(r, tm__is_staff(r))) {
        return;
    }
    const char *l = tm__arg(r, "limit", lim, sizeof(lim));
    int want = l && atoi(l) >= 1 && atoi(l) <= 500 ? atoi(l) : 100;
    /* Staff of one institution: referrals sent from or to it, read at the
     * store's cap so the scope keeps `want` of theirs. */
    bool scoped = !is_doctor(r) && r->who.institution[0];
    json_t *rows = tm_store_referral_list(
        r->app->store, tm__arg(r, "visit_id", visit, sizeof(visit)), to_dept, from_doctor,
        tm__arg(r, "state", state, sizeof(state)), scoped ? 500 : want);
    if (!rows) {
        tm__respond_err(r->p, TM_EIO, NULL);
        return;
    }
    if (scoped)
        rows = tm__scope_rows(r, rows, "to_dept_id", "from_dept_id", want);
    tm__audit_list(r, "referral.list", "*");
    tm__respond_json(r->p, 200, json_pack("{s:o}", "referrals", rows));
}

/* The referral, if the caller may read it: staff, the referring doctor, a
 * doctor of the receiving department. Otherwise answered and NULL. */
static json_t *readable(http_req *r, const char *id)
{
    json_t *rf = tm_store_referral_get(r->app->store, id);
    if (!rf) {
        tm__respond_err(r->p, TM_ENOTFOUND, "no such referral");
        return NULL;
    }
    bool ok = (tm__is_staff(r) && (tm__scope_has_dept(r, text_of(rf, "to_dept_id")) ||
                                   tm__scope_has_dept(r, text_of(rf, "from_dept_id")))) ||
              (is_doctor(r) && (strcmp(text_of(rf, "from_doctor_id"), r->who.sub) == 0 ||
                                works_in(r, text_of(rf, "to_dept_id"))));
    if (!ok) {
        tm__audit(r, "referral.read", id, "denied");
        tm__respond_err(r->p, TM_EPERM, "not allowed for this role");
        json_decref(rf);
        return NULL;
    }
    return rf;
}

static void get_one(http_req *r, bool fhir)
{
    json_t *rf = readable(r, r->seg[1]);
    if (!rf)
        return;
    tm__audit(r, fhir ? "referral.export_fhir" : "referral.read", r->seg[1], "ok");
    if (!fhir) {
        tm__respond_json(r->p, 200, rf);
        return;
    }
    char inst_id[64];
    tm_institution inst;
    if (tm_store_dept_institution(r->app->store, text_of(rf, "to_dept_id"), inst_id) == 0) {
        bool named = tm_store_institution_get(r->app->store, inst_id, &inst) == 0;
        json_object_set_new(rf, "to_institution",
                            json_pack("{s:s, s:s?}", "id", inst_id, "name",
                                      named && inst.name[0] ? inst.name : NULL));
    }
    json_t *rec = tm_store_visit_record(r->app->store, text_of(rf, "visit_id"));
    json_t *enc = rec ? tm_fhir_encounter(rec, r->app->cfg.hospital_id) : NULL;
    json_t *bundle = tm_fhir_referral(rf, enc, r->app->cfg.hospital_id);
    json_decref(rec);
    json_decref(enc);
    json_decref(rf);
    if (!bundle) {
        tm__respond_err(r->p, TM_EIO, "the referral cannot be exported");
        return;
    }
    tm__respond_json(r->p, 200, bundle);
}

static void decide(http_req *r, bool accept)
{
    if (!tm__need(r, is_doctor(r)))
        return;
    json_t *rf = tm_store_referral_get(r->app->store, r->seg[1]);
    if (!rf) {
        tm__respond_err(r->p, TM_ENOTFOUND, "no such referral");
        return;
    }
    bool mine = works_in(r, text_of(rf, "to_dept_id"));
    json_decref(rf);
    if (!mine) {
        tm__respond_err(r->p, TM_EPERM, "only a doctor of the receiving department answers");
        return;
    }
    bool bad = false;
    const char *reason = tm__body_str(r->body, "reason", TM_REFERRAL_REASON_MAX, !accept, &bad);
    if (bad) {
        tm__respond_err(r->p, TM_EINVAL, "a decline needs a reason (1-500 bytes)");
        return;
    }
    int rc =
        tm_store_referral_decide(r->app->store, r->seg[1], accept, r->who.sub, reason, tm_now_ms());
    if (rc < 0) {
        tm__respond_err(r->p, rc, tm_store_errmsg(r->app->store));
        return;
    }
    tm_info(accept ? "referral.accepted" : "referral.declined", "referral=%s doctor=%s", r->seg[1],
            r->who.sub);
    tm__audit(r, accept ? "referral.accept" : "referral.decline", r->seg[1], "ok");
    respond_referral(r, 200, r->seg[1]);
}

static void resend(http_req *r)
{
    if (!tm__need(r, is_doctor(r)))
        return;
    bool bad = false;
    tm_referral_req q;
    parse_req(r, &q, false, &bad);
    if (bad || json_object_get(r->body, "visit_id")) {
        tm__respond_err(r->p, TM_EINVAL,
                        "a re-send may change direction, to_dept_id, reason, summary and "
                        "appointment_id (strings), not the visit");
        return;
    }
    char id[64];
    int rc = tm_store_referral_resend(r->app->store, r->seg[1], r->who.sub, &q, tm_now_ms(), id);
    if (rc < 0) {
        json_t *old = tm_store_referral_get(r->app->store, r->seg[1]);
        refuse(r, rc, q.direction ? q.direction : text_of(old, "direction"),
               old ? text_of(old, "from_dept_id") : NULL,
               q.to_dept_id ? q.to_dept_id : text_of(old, "to_dept_id"));
        json_decref(old);
        return;
    }
    tm_info("referral.resent", "referral=%s replaces=%s doctor=%s", id, r->seg[1], r->who.sub);
    tm__audit(r, "referral.resend", id, "ok");
    respond_referral(r, 201, id);
}

void tm__api_referrals(http_req *r)
{
    int m = r->p->method;
    if (m == LWSHUMETH_POST && r->nseg == 1)
        create(r);
    else if (m == LWSHUMETH_GET && r->nseg == 1)
        list(r);
    else if (m == LWSHUMETH_GET && r->nseg == 2)
        get_one(r, false);
    else if (m == LWSHUMETH_GET && r->nseg == 3 && strcmp(r->seg[2], "fhir") == 0)
        get_one(r, true);
    else if (m == LWSHUMETH_POST && r->nseg == 3 && strcmp(r->seg[2], "accept") == 0)
        decide(r, true);
    else if (m == LWSHUMETH_POST && r->nseg == 3 && strcmp(r->seg[2], "decline") == 0)
        decide(r, false);
    else if (m == LWSHUMETH_POST && r->nseg == 3 && strcmp(r->seg[2], "resend") == 0)
        resend(r);
    else
        tm__respond_err(r->p, TM_ENOTFOUND, "no such route");
}

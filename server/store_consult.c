/*
 * store_consult.c - the SQLite backend's side of consultation requests
 * (include/telemed/store.h, "consultation requests"): a doctor's request to
 * a department, its scheduling, proposal, decline or cancel, the visit it
 * becomes and the specialist's signed opinion. Each step changes the row
 * and writes its consultation.* event in one transaction.
 *
 * Control loop thread only, on the store's connection (store_internal.h).
 * The request's words (reason, question, opinion) stay in the hospital: the
 * events carry ids, times and states only, and the decline reason, which the
 * department gives the requester and the regulator asks for.
 */
#include "store_internal.h"
#include "telemed/common.h"

#include <glib.h>
#include <string.h>

#define CONSULT_COLUMNS                                                                            \
    "SELECT id AS consultation_id, patient_id, requester_id, requester_dept_id,"                   \
    " origin_visit_id, dept_id, specialist_id, reason, question, attachments, window_start_at,"    \
    " window_end_at, urgency, state, proposed_slot_at, proposed_specialist_id, proposed_by,"       \
    " slot_at, scheduled_by, scheduled_at, appointment_id, visit_id, declined_by,"                 \
    " decline_reason, cancelled_by, opinion, opinion_diagnosis_code, opinion_signed_at,"           \
    " created_at, updated_at FROM consultations"

static bool text_ok(const char *t)
{
    return t && *t && strlen(t) <= TM_CONSULT_TEXT_MAX;
}

static bool urgency_valid(const char *u)
{
    return strcmp(u, "routine") == 0 || strcmp(u, "urgent") == 0 || strcmp(u, "emergency") == 0;
}

static bool attachments_valid(json_t *a)
{
    if (!a)
        return true;
    if (!json_is_array(a) || json_array_size(a) > 20)
        return false;
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 512)
            return false;
    }
    return true;
}

/* An active doctor (staff kind doctor) of dept_id, when dept_id is given. */
static bool doctor_of(tm_store *s, const char *doctor_id, const char *dept_id, tm_doctor_info *d)
{
    if (!doctor_id || !*doctor_id || tm_store_doctor_get(s, doctor_id, d) < 0)
        return false;
    return d->active && (!d->kind[0] || strcmp(d->kind, "doctor") == 0) &&
           (!dept_id || strcmp(d->dept_id, dept_id) == 0);
}

/* The row as JSON with its attachments parsed, or NULL when none. */
static json_t *consult_row(tm_store *s, const char *sql, const char *key)
{
    json_t *rows = tm__store_rows_json(s, tm__store_query(s, sql, "s", key));
    json_t *row = json_incref(json_array_get(rows, 0));
    json_decref(rows);
    if (row) {
        json_t *a = json_loads(json_string_value(json_object_get(row, "attachments")), 0, NULL);
        json_object_set_new(row, "attachments", a ? a : json_array());
    }
    return row;
}

json_t *tm_store_consult_get(tm_store *s, const char *id)
{
    return consult_row(s, CONSULT_COLUMNS " WHERE id = ?1", id);
}

json_t *tm_store_consult_of_visit(tm_store *s, const char *visit_id)
{
    json_t *row = consult_row(s, CONSULT_COLUMNS " WHERE visit_id = ?1", visit_id);
    return row ? row : json_null();
}

bool tm_store_consult_involves(tm_store *s, const char *doctor_id, const char *patient_id)
{
    tm__stmt *st = tm__store_query(s,
                                   "SELECT 1 FROM consultations WHERE patient_id = ?2 AND"
                                   " (requester_id = ?1 OR specialist_id = ?1"
                                   "  OR proposed_specialist_id = ?1) LIMIT 1",
                                   "ss", doctor_id, patient_id);
    bool yes = st && tm__store_step(s, st) == 1;
    if (st)
        tm__stmt_reset(st);
    return yes;
}

json_t *tm_store_consult_list(tm_store *s, const char *requester_id, const char *dept_id,
                              const char *state, int limit)
{
    if (limit < 1 || limit > 500)
        limit = 100;
    json_t *rows = tm__store_rows_json(
        s, tm__store_query(s,
                           CONSULT_COLUMNS " WHERE (?1 IS NULL OR requester_id = ?1)"
                                           " AND (?2 IS NULL OR dept_id = ?2)"
                                           " AND (?3 IS NULL OR state = ?3)"
                                           " ORDER BY created_at DESC, id LIMIT ?4",
                           "sssi", requester_id, dept_id, state, limit));
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        json_t *a = json_loads(json_string_value(json_object_get(row, "attachments")), 0, NULL);
        json_object_set_new(row, "attachments", a ? a : json_array());
    }
    return rows;
}

/* What the regulator hears of a request: ids, times, states; never its words. */
static json_t *event_data(const json_t *row, const char *by)
{
    static const char *const keys[] = {
        "consultation_id",
        "patient_id",
        "requester_id",
        "requester_dept_id",
        "origin_visit_id",
        "dept_id",
        "specialist_id",
        "urgency",
        "state",
        "window_start_at",
        "window_end_at",
        "proposed_slot_at",
        "proposed_specialist_id",
        "slot_at",
        "appointment_id",
        "visit_id",
        "declined_by",
        "decline_reason",
        "created_at",
    };
    json_t *o = json_object();
    for (size_t i = 0; i < TM_ARRAY_LEN(keys); i++) {
        json_t *v = json_object_get(row, keys[i]);
        json_object_set(o, keys[i], v ? v : json_null());
    }
    json_object_set_new(o, "by", by ? json_string(by) : json_null());
    return o;
}

/* The request's event as its row now reads, inside the caller's transaction. */
static int consult_event(tm_store *s, const char *type, const char *id, const char *by,
                         int64_t now_ms)
{
    json_t *row = tm_store_consult_get(s, id);
    if (!row)
        return tm__store_refuse(s, TM_ENOTFOUND, "no such consultation");
    json_t *data = event_data(row, by);
    int rc = tm__store_outbox_append_data(s, type, id, now_ms, data);
    json_decref(data);
    json_decref(row);
    return rc;
}

int tm_store_consult_create(tm_store *s, tm_consult_request *c, int64_t now_ms)
{
    tm_doctor_info requester, specialist;
    if (!c->patient_id[0] || !text_ok(c->reason) || !text_ok(c->question) ||
        !urgency_valid(c->urgency) || !attachments_valid(c->attachments) ||
        c->window_end_ms <= c->window_start_ms || c->window_end_ms <= now_ms)
        return tm__store_refuse(s, TM_EINVAL,
                                "a consultation request needs patient, reason, question, a "
                                "window not yet over, urgency and attachment references");
    if (!tm_store_dept_exists(s, c->dept_id))
        return tm__store_refuse(s, TM_ENOTFOUND, "no such department");
    if (!doctor_of(s, c->requester_id, NULL, &requester))
        return tm__store_refuse(s, TM_EINVAL, "the requester is not an active doctor");
    if (c->specialist_id[0] && !doctor_of(s, c->specialist_id, c->dept_id, &specialist))
        return tm__store_refuse(s, TM_EINVAL,
                                "the specialist is not an active doctor of the department");
    int rc = tm__store_begin(s);
    if (rc < 0)
        return rc;
    json_t *none = json_array();
    char *attachments = json_dumps(c->attachments ? c->attachments : none, JSON_COMPACT);
    json_decref(none);
    tm__store_make_id("cr", c->id, sizeof(c->id));
    rc = tm__store_run(s,
                       "INSERT INTO consultations(id, patient_id, requester_id, requester_dept_id,"
                       " origin_visit_id, dept_id, specialist_id, reason, question, attachments,"
                       " window_start_at, window_end_at, urgency, state, created_at, updated_at)"
                       " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,'requested',?14,?14)",
                       "ssssssssssIIsI", c->id, c->patient_id, c->requester_id, requester.dept_id,
                       c->origin_visit_id, c->dept_id, c->specialist_id, c->reason, c->question,
                       attachments, c->window_start_ms, c->window_end_ms, c->urgency, now_ms);
    free(attachments);
    if (rc == 0)
        rc = consult_event(s, "consultation.requested", c->id, c->requester_id, now_ms);
    return tm__store_finish(s, rc);
}

/* The request's state (16 bytes) or TM_ENOTFOUND. */
static int consult_state(tm_store *s, const char *id, char state[16])
{
    tm__stmt *st = tm__store_query(s, "SELECT state FROM consultations WHERE id = ?1", "s", id);
    int rc = tm__store_step(s, st);
    if (rc == 1)
        tm__store_col_text(st, 0, state, 16);
    tm__stmt_reset(st);
    if (rc == 0)
        return tm__store_refuse(s, TM_ENOTFOUND, "no such consultation");
    return rc < 0 ? rc : 0;
}

/* A slot and a specialist the department offers, checked before writing. */
static int slot_check(tm_store *s, const char *id, const char *specialist_id, int64_t slot_ms,
                      int64_t now_ms)
{
    json_t *row = tm_store_consult_get(s, id);
    if (!row)
        return tm__store_refuse(s, TM_ENOTFOUND, "no such consultation");
    tm_doctor_info d;
    const char *dept = json_string_value(json_object_get(row, "dept_id"));
    bool ok = doctor_of(s, specialist_id, dept, &d);
    json_decref(row);
    if (slot_ms <= now_ms)
        return tm__store_refuse(s, TM_EINVAL, "the consultation time has passed");
    if (!ok)
        return tm__store_refuse(s, TM_EINVAL,
                                "the specialist is not an active doctor of the department");
    return 0;
}

/* The patient's appointment for the consultation: with the requester, in
 * the requester's department, so the patient checks in as for a follow-up
 * and the visit reaches the requester first. Inside the caller's
 * transaction. */
static int schedule_in_tx(tm_store *s, const char *id, const char *by, const char *specialist_id,
                          int64_t slot_ms, int64_t now_ms)
{
    json_t *row = tm_store_consult_get(s, id);
    if (!row)
        return tm__store_refuse(s, TM_ENOTFOUND, "no such consultation");
    tm_appointment a = {.slot_ms = slot_ms};
    g_strlcpy(a.patient_id, json_string_value(json_object_get(row, "patient_id")),
              sizeof(a.patient_id));
    g_strlcpy(a.dept_id, json_string_value(json_object_get(row, "requester_dept_id")),
              sizeof(a.dept_id));
    g_strlcpy(a.doctor_id, json_string_value(json_object_get(row, "requester_id")),
              sizeof(a.doctor_id));
    g_strlcpy(a.kind, "follow_up", sizeof(a.kind));
    json_decref(row);
    char appt_id[64];
    int rc = tm_store_appt_create(s, &a, appt_id);
    if (rc == 0)
        rc = tm__store_run(s,
                           "UPDATE consultations SET state = 'scheduled', specialist_id = ?2,"
                           " slot_at = ?3, scheduled_by = ?4, scheduled_at = ?5,"
                           " appointment_id = ?6, updated_at = ?5 WHERE id = ?1",
                           "ssIsIs", id, specialist_id, slot_ms, by, now_ms, appt_id);
    if (rc == 0)
        rc = consult_event(s, "consultation.scheduled", id, by, now_ms);
    return rc;
}

static int need_state(tm_store *s, const char *id, const char *want, const char *why)
{
    char state[16];
    int rc = consult_state(s, id, state);
    if (rc == 0 && strcmp(state, want) != 0)
        rc = tm__store_refuse(s, TM_ECONFLICT, why);
    return rc;
}

int tm_store_consult_schedule(tm_store *s, const char *id, const char *by,
                              const char *specialist_id, int64_t slot_ms, int64_t now_ms)
{
    int rc = slot_check(s, id, specialist_id, slot_ms, now_ms);
    if (rc == 0)
        rc = tm__store_begin(s);
    if (rc < 0)
        return rc;
    rc = need_state(s, id, "requested", "the consultation is no longer waiting for an answer");
    if (rc == 0)
        rc = schedule_in_tx(s, id, by, specialist_id, slot_ms, now_ms);
    return tm__store_finish(s, rc);
}

int tm_store_consult_propose(tm_store *s, const char *id, const char *by, const char *specialist_id,
                             int64_t slot_ms, int64_t now_ms)
{
    int rc = slot_check(s, id, specialist_id, slot_ms, now_ms);
    if (rc == 0)
        rc = tm__store_begin(s);
    if (rc < 0)
        return rc;
    rc = need_state(s, id, "requested", "the consultation is no longer waiting for an answer");
    if (rc == 0)
        rc = tm__store_run(s,
                           "UPDATE consultations SET state = 'proposed', proposed_slot_at = ?2,"
                           " proposed_specialist_id = ?3, proposed_by = ?4, updated_at = ?5"
                           " WHERE id = ?1",
                           "sIssI", id, slot_ms, specialist_id, by, now_ms);
    if (rc == 0)
        rc = consult_event(s, "consultation.proposed", id, by, now_ms);
    return tm__store_finish(s, rc);
}

int tm_store_consult_accept_proposal(tm_store *s, const char *id, const char *by, int64_t now_ms)
{
    int rc = tm__store_begin(s);
    if (rc < 0)
        return rc;
    rc = need_state(s, id, "proposed", "no proposal is open");
    tm__stmt *st = rc < 0 ? NULL
                          : tm__store_query(s,
                                            "SELECT proposed_slot_at, proposed_specialist_id"
                                            " FROM consultations WHERE id = ?1",
                                            "s", id);
    int64_t slot = 0;
    char specialist[64] = "";
    if (st && (rc = tm__store_step(s, st)) == 1) {
        slot = tm__col_int64(st, 0);
        tm__store_col_text(st, 1, specialist, sizeof(specialist));
        rc = 0;
    }
    if (st)
        tm__stmt_reset(st);
    if (rc == 0 && slot <= now_ms)
        rc = tm__store_refuse(s, TM_ECONFLICT, "the proposed time has passed");
    if (rc == 0)
        rc = schedule_in_tx(s, id, by, specialist, slot, now_ms);
    return tm__store_finish(s, rc);
}

int tm_store_consult_decline(tm_store *s, const char *id, const char *by, const char *reason,
                             int64_t now_ms)
{
    if (!text_ok(reason))
        return tm__store_refuse(s, TM_EINVAL, "a decline needs a reason (1 to 4000 bytes)");
    int rc = tm__store_begin(s);
    if (rc < 0)
        return rc;
    rc = tm__store_run_one(s,
                           "UPDATE consultations SET state = 'declined', declined_by = ?2,"
                           " decline_reason = ?3, updated_at = ?4"
                           " WHERE id = ?1 AND state IN ('requested','proposed')",
                           "ssbI", id, by, reason, now_ms);
    if (rc == TM_ENOTFOUND) {
        char state[16];
        rc = consult_state(s, id, state);
        if (rc == 0)
            rc = tm__store_refuse(s, TM_ECONFLICT, "the consultation can no longer be declined");
    }
    if (rc == 0)
        rc = consult_event(s, "consultation.declined", id, by, now_ms);
    return tm__store_finish(s, rc);
}

int tm_store_consult_cancel(tm_store *s, const char *id, const char *by, int64_t now_ms)
{
    int rc = tm__store_begin(s);
    if (rc < 0)
        return rc;
    rc = tm__store_run_one(s,
                           "UPDATE consultations SET state = 'cancelled', cancelled_by = ?2,"
                           " updated_at = ?3"
                           " WHERE id = ?1 AND state IN ('requested','proposed','scheduled')",
                           "ssI", id, by, now_ms);
    if (rc == TM_ENOTFOUND) {
        char state[16];
        rc = consult_state(s, id, state);
        if (rc == 0)
            rc = tm__store_refuse(s, TM_ECONFLICT, "the consultation can no longer be cancelled");
    }
    if (rc == 0)
        rc = tm__store_run(s,
                           "UPDATE appointments SET status = 'cancelled', updated_at = ?2"
                           " WHERE id = (SELECT appointment_id FROM consultations WHERE id = ?1)"
                           " AND status = 'booked'",
                           "sI", id, now_ms);
    return tm__store_finish(s, rc);
}

int tm_store_consult_visit_started(tm_store *s, const char *visit_id, json_t **out)
{
    *out = NULL;
    int rc = tm__store_begin(s);
    if (rc < 0)
        return rc;
    rc = tm__store_run(s,
                       "UPDATE consultations SET state = 'in_progress', visit_id = ?1,"
                       " updated_at = ?2 WHERE state = 'scheduled' AND appointment_id ="
                       " (SELECT appointment_id FROM visits WHERE id = ?1)",
                       "sI", visit_id, tm_now_ms());
    bool started = rc == 0 && tm__store_changes(s) > 0;
    rc = tm__store_finish(s, rc);
    if (rc == 0 && started) {
        json_t *row = tm_store_consult_of_visit(s, visit_id);
        *out = json_is_object(row) ? row : NULL;
        if (!*out) {
            json_decref(row);
            rc = TM_EIO;
        }
    }
    return rc;
}

/* The opinion as the specialist's note of the visit, signed with it: the
 * visit record and its export read notes. Inside the caller's transaction. */
static int opinion_note_in_tx(tm_store *s, const char *visit_id, const char *specialist_id,
                              const char *body, const char *diagnosis_code, int64_t now_ms)
{
    int rc = tm__store_run(s,
                           "UPDATE notes SET body = ?3, diagnosis_code = ?4, signed = 1,"
                           " updated_at = ?5 WHERE visit_id = ?1 AND doctor_id = ?2"
                           " AND signed = 0",
                           "sssbI", visit_id, specialist_id, body, diagnosis_code, now_ms);
    if (rc == 0 && tm__store_changes(s) == 0)
        rc = tm__store_run(s,
                           "INSERT INTO notes(visit_id, doctor_id, body, diagnosis_code, signed,"
                           " created_at, updated_at) VALUES(?1, ?2, ?3, ?4, 1, ?5, ?5)",
                           "ssbsI", visit_id, specialist_id, body, diagnosis_code, now_ms);
    return rc;
}

int tm_store_consult_opinion(tm_store *s, const char *id, const char *specialist_id,
                             const char *body, const char *diagnosis_code, bool sign,
                             int64_t now_ms)
{
    if (!text_ok(body) || (diagnosis_code && strlen(diagnosis_code) > 31))
        return tm__store_refuse(s, TM_EINVAL,
                                "an opinion needs a body of 1 to 4000 bytes (diagnosis code "
                                "optional)");
    json_t *row = tm_store_consult_get(s, id);
    if (!row)
        return tm__store_refuse(s, TM_ENOTFOUND, "no such consultation");
    char visit_id[64], state[16];
    g_strlcpy(visit_id, json_string_value(json_object_get(row, "visit_id")) ?: "",
              sizeof(visit_id));
    g_strlcpy(state, json_string_value(json_object_get(row, "state")), sizeof(state));
    bool mine =
        g_strcmp0(json_string_value(json_object_get(row, "specialist_id")), specialist_id) == 0;
    json_decref(row);
    if (!mine)
        return tm__store_refuse(s, TM_EPERM,
                                "only the consultation's specialist gives the opinion");
    if (strcmp(state, "completed") == 0)
        return tm__store_refuse(s, TM_ECONFLICT, "the opinion is signed already");
    if (strcmp(state, "in_progress") != 0)
        return tm__store_refuse(s, TM_ECONFLICT, "the consultation has not taken place");
    if (tm__store_visit_sealed(s, visit_id))
        return tm__store_refuse(s, TM_ECONFLICT, "the visit record is sealed");
    int rc = tm__store_begin(s);
    if (rc < 0)
        return rc;
    rc =
        tm__store_run_one(s,
                          "UPDATE consultations SET opinion = ?2, opinion_diagnosis_code = ?3,"
                          " opinion_signed_at = ?4, state = CASE WHEN ?5 THEN 'completed'"
                          " ELSE state END, updated_at = ?6"
                          " WHERE id = ?1 AND state = 'in_progress'",
                          "sbstiI", id, body, diagnosis_code, sign ? now_ms : 0, (int)sign, now_ms);
    if (rc == 0 && sign)
        rc = opinion_note_in_tx(s, visit_id, specialist_id, body, diagnosis_code, now_ms);
    if (rc == 0 && sign) {
        json_t *now_row = tm_store_consult_get(s, id);
        json_t *data = now_row ? event_data(now_row, specialist_id) : NULL;
        if (data) {
            json_t *opinion = json_object();
            json_object_set_new(opinion, "doctor_id", json_string(specialist_id));
            json_object_set(opinion, "diagnosis_code",
                            json_object_get(now_row, "opinion_diagnosis_code"));
            json_object_set(opinion, "signed_at", json_object_get(now_row, "opinion_signed_at"));
            json_object_set_new(data, "opinion", opinion);
            rc = tm__store_outbox_append_with(s, "consultation.opinion_signed", visit_id, now_ms,
                                              "consultation", data);
        } else {
            rc = TM_EIO;
        }
        json_decref(data);
        json_decref(now_row);
    }
    return tm__store_finish(s, rc);
}

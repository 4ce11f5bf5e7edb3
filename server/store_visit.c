/*
 * store_visit.c - the SQLite backend's visit side of include/telemed/store.h:
 * the visit steps (check-in, offer, accept, end) each with its outbox row in
 * one transaction, participants, chat, notes, ratings, stream statistics,
 * the visit record, and the facts a regulator event is built from.
 *
 * Control loop thread only, on the store's connection (store_internal.h).
 */
#include "store_internal.h"
#include "telemed/common.h"

#include <glib.h>
#include <stdio.h>
#include <string.h>

/* ---- visits -------------------------------------------------------- */

#define VISIT_COLUMNS                                                                              \
    "SELECT v.id, v.patient_id, v.dept_id, v.appointment_id, v.doctor_id, v.kind, v.urgent,"       \
    " v.state, v.checkin_at, v.offered_at, v.accepted_at, v.ended_at, a.slot_at, v.end_reason,"    \
    " v.recording_consent"                                                                         \
    " FROM visits v LEFT JOIN appointments a ON a.id = v.appointment_id"

static void visit_from_row(tm__stmt *st, tm_visit *v)
{
    memset(v, 0, sizeof(*v));
    tm__store_col_text(st, 0, v->id, sizeof(v->id));
    tm__store_col_text(st, 1, v->patient_id, sizeof(v->patient_id));
    tm__store_col_text(st, 2, v->dept_id, sizeof(v->dept_id));
    tm__store_col_text(st, 3, v->appointment_id, sizeof(v->appointment_id));
    tm__store_col_text(st, 4, v->doctor_id, sizeof(v->doctor_id));
    tm__store_col_text(st, 5, v->kind, sizeof(v->kind));
    v->urgent = tm__col_int(st, 6) != 0;
    tm__store_col_text(st, 7, v->state, sizeof(v->state));
    v->checkin_ms = tm__col_int64(st, 8);
    v->offered_ms = tm__col_int64(st, 9);
    v->accepted_ms = tm__col_int64(st, 10);
    v->ended_ms = tm__col_int64(st, 11);
    v->slot_ms = tm__col_int64(st, 12);
    tm__store_col_text(st, 13, v->end_reason, sizeof(v->end_reason));
    if (!tm__col_is_null(st, 14))
        v->recording_consent = tm__col_int(st, 14) ? 1 : -1;
}

static const char visit_by_id_sql[] = VISIT_COLUMNS " WHERE v.id = ?1";

int tm_store_visit_get(tm_store *s, const char *id, tm_visit *out)
{
    tm__stmt *st = tm__store_query(s, visit_by_id_sql, "s", id);
    int rc = tm__store_step(s, st);
    if (rc == 0)
        rc = tm__store_refuse(s, TM_ENOTFOUND, "no such visit");
    if (rc == 1) {
        visit_from_row(st, out);
        rc = 0;
    }
    tm__stmt_reset(st);
    return rc;
}

int tm_store_visit_foreach_state(tm_store *s, const char *state,
                                 void (*fn)(const tm_visit *v, void *user), void *user)
{
    tm__stmt *st =
        tm__store_query(s, VISIT_COLUMNS " WHERE v.state = ?1 ORDER BY v.checkin_at", "s", state);
    /* Collect first: fn may call back into the store, which would reset st. */
    GArray *rows = g_array_new(FALSE, FALSE, sizeof(tm_visit));
    int rc;
    while ((rc = tm__store_step(s, st)) == 1) {
        tm_visit v;
        visit_from_row(st, &v);
        g_array_append_val(rows, v);
    }
    tm__stmt_reset(st);
    for (guint i = 0; rc == 0 && i < rows->len; i++)
        fn(&g_array_index(rows, tm_visit, i), user);
    g_array_free(rows, TRUE);
    return rc;
}

/* role is the token role; the patient and the doctor who accepts hold the
 * visit roles patient and attending, a watching supervisor none. */
static int participant_insert(tm_store *s, const char *visit_id, const char *user_id,
                              const char *role, const char *user_agent, int64_t now_ms)
{
    const char *visit_role = strcmp(role, "patient") == 0  ? "patient"
                             : strcmp(role, "doctor") == 0 ? "attending"
                                                           : NULL;
    return tm__store_run_later(
        s,
        "INSERT INTO participants(visit_id, user_id, role, visit_role, user_agent,"
        " joined_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
        "sssssI", visit_id, user_id, role, visit_role, user_agent, now_ms);
}

static bool consent_kind_valid(const char *kind)
{
    return strcmp(kind, "patient") == 0 || strcmp(kind, "guest") == 0 ||
           strcmp(kind, "interpreter") == 0;
}

static int consent_insert(tm_store *s, const char *visit_id, const tm_consent *c)
{
    if (!consent_kind_valid(c->kind) || !c->user_id[0] || !c->version[0] || !c->role[0])
        return tm__store_refuse(s, TM_EINVAL, "a consent needs kind, user, role and version");
    return tm__store_run_later(
        s,
        "INSERT INTO consents(visit_id, kind, user_id, role, version, recording,"
        " session_id, accepted_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        "sssssisI", visit_id, c->kind, c->user_id, c->role, c->version, (int)c->recording,
        c->session_id, c->accepted_ms);
}

/* The patient's consent as check-in gives it. */
static int patient_consent_insert(tm_store *s, const tm_visit *v)
{
    tm_consent c = {.kind = "patient",
                    .role = "patient",
                    .recording = v->recording_consent > 0,
                    .accepted_ms = v->checkin_ms};
    g_strlcpy(c.user_id, v->patient_id, sizeof(c.user_id));
    g_strlcpy(c.version, v->consent_version, sizeof(c.version));
    g_strlcpy(c.session_id, v->consent_session, sizeof(c.session_id));
    return consent_insert(s, v->id, &c);
}

int tm_store_consent_add(tm_store *s, const char *visit_id, const tm_consent *c)
{
    return consent_insert(s, visit_id, c);
}

int tm_store_consent_given(tm_store *s, const char *visit_id, const char *user_id, const char *kind,
                           char version[32])
{
    tm__stmt *st = tm__store_query(s,
                                   "SELECT version FROM consents WHERE visit_id = ?1"
                                   " AND user_id = ?2 AND kind = ?3 ORDER BY id DESC LIMIT 1",
                                   "sss", visit_id, user_id, kind);
    int rc = tm__store_step(s, st);
    if (rc == 1)
        tm__store_col_text(st, 0, version, 32);
    if (st)
        tm__stmt_reset(st);
    return rc;
}

int tm_store_visit_checkin(tm_store *s, tm_visit *v, const char *user_agent)
{
    if (!v->patient_id[0] || !v->dept_id[0] || !tm__store_kind_valid(v->kind))
        return tm__store_refuse(s, TM_EINVAL, "check-in needs patient, department and kind");
    tm__store_make_id("v", v->id, sizeof(v->id));
    snprintf(v->state, sizeof(v->state), "waiting");
    int rc = tm__store_begin(s);
    if (rc < 0)
        return rc;
    rc = tm__store_run_later(
        s,
        "INSERT INTO visits(id, patient_id, dept_id, appointment_id, kind, urgent, state,"
        " checkin_at, updated_at, recording_consent)"
        " VALUES(?1, ?2, ?3, ?4, ?5, ?6, 'waiting', ?7, ?7,"
        " CASE ?8 WHEN 1 THEN 1 WHEN -1 THEN 0 END)",
        "sssssiIi", v->id, v->patient_id, v->dept_id, v->appointment_id, v->kind, (int)v->urgent,
        v->checkin_ms, v->recording_consent);
    if (rc == 0 && v->appointment_id[0])
        rc = tm__store_run_later(
            s, "UPDATE appointments SET status = 'arrived', updated_at = ?2 WHERE id = ?1", "sI",
            v->appointment_id, v->checkin_ms);
    if (rc == 0)
        rc = participant_insert(s, v->id, v->patient_id, "patient", user_agent, v->checkin_ms);
    if (rc == 0 && v->consent_version[0])
        rc = patient_consent_insert(s, v);
    if (rc == 0)
        rc = tm__store_outbox_append(s, "visit.checked_in", v->id, v->checkin_ms);
    return tm__store_finish(s, rc);
}

static const char set_state_sql[] =
    "UPDATE visits SET state = ?3, updated_at = ?4 WHERE id = ?1 AND state = ?2";

/* Changes state only if the visit is in from_state; TM_ECONFLICT otherwise. */
static int visit_set_state(tm_store *s, const char *visit_id, const char *from_state,
                           const char *to_state, int64_t now_ms)
{
    int rc = tm__store_run_one(s, set_state_sql, "sssI", visit_id, from_state, to_state, now_ms);
    if (rc == TM_ENOTFOUND) {
        tm_visit v;
        tm__store_set_error(s, "visit is not %s", from_state);
        return tm_store_visit_get(s, visit_id, &v) == TM_ENOTFOUND ? TM_ENOTFOUND : TM_ECONFLICT;
    }
    return rc;
}

/* A waiting visit is offered unless the node holding it has its patient
 * away (tm_store_visit_patient_away): the doctor would wait for nobody. */
static int offer_if_there(tm_store *s, const char *visit_id, int64_t now_ms)
{
    int rc = tm__store_run_one(s,
                               "UPDATE visits SET state = 'offered', updated_at = ?2"
                               " WHERE id = ?1 AND state = 'waiting'"
                               " AND (patient_away_at IS NULL OR media_node IS NULL)",
                               "sI", visit_id, now_ms);
    if (rc != TM_ENOTFOUND)
        return rc;
    tm_visit v;
    if (tm_store_visit_get(s, visit_id, &v) == TM_ENOTFOUND)
        return tm__store_refuse(s, TM_ENOTFOUND, "no such visit");
    return tm__store_refuse(s, TM_ECONFLICT,
                            strcmp(v.state, "waiting") == 0
                                ? "the patient is away (in their grace period on their node)"
                                : "visit is not waiting");
}

int tm_store_visit_offer(tm_store *s, const char *visit_id, const char *doctor_id, int64_t now_ms)
{
    int rc = tm__store_begin(s);
    if (rc < 0)
        return rc;
    rc = offer_if_there(s, visit_id, now_ms);
    if (rc == 0)
        rc = tm__store_run_later(
            s,
            "UPDATE visits SET doctor_id = ?2, offered_at = ?3, offers = offers + 1"
            " WHERE id = ?1",
            "ssI", visit_id, doctor_id, now_ms);
    if (rc == 0)
        rc = tm__store_run_later(
            s, "INSERT INTO offers(visit_id, doctor_id, offered_at) VALUES(?1, ?2, ?3)", "ssI",
            visit_id, doctor_id, now_ms);
    return tm__store_finish(s, rc);
}

static int offer_decide(tm_store *s, const char *visit_id, const char *outcome, int64_t now_ms)
{
    return tm__store_run_later(s,
                               "UPDATE offers SET outcome = ?2, decided_at = ?3"
                               " WHERE visit_id = ?1 AND outcome IS NULL",
                               "ssI", visit_id, outcome, now_ms);
}

int tm_store_visit_unoffer(tm_store *s, const char *visit_id, const char *outcome, int64_t now_ms)
{
    int rc = tm__store_begin(s);
    if (rc < 0)
        return rc;
    rc = visit_set_state(s, visit_id, "offered", "waiting", now_ms);
    if (rc == 0)
        rc = tm__store_run(s, "UPDATE visits SET doctor_id = NULL, offered_at = NULL WHERE id = ?1",
                           "s", visit_id);
    if (rc == 0)
        rc = offer_decide(s, visit_id, outcome, now_ms);
    return tm__store_finish(s, rc);
}

int tm_store_visit_withdraw_offer(tm_store *s, const char *visit_id, const char *doctor_id,
                                  int64_t offered_ms, int64_t now_ms)
{
    int rc = tm__store_begin(s);
    if (rc < 0)
        return rc;
    /* That one offer only: the row lock decides against its doctor's accept
     * and against the offering node's own decline or timeout. */
    rc = tm__store_run_one(s,
                           "UPDATE visits SET state = 'waiting', updated_at = ?4, doctor_id = NULL,"
                           " offered_at = NULL WHERE id = ?1 AND state = 'offered'"
                           " AND doctor_id = ?2 AND offered_at = ?3",
                           "ssII", visit_id, doctor_id, offered_ms, now_ms);
    if (rc == TM_ENOTFOUND)
        rc = tm__store_refuse(s, TM_ECONFLICT, "that offer is over");
    if (rc == 0)
        rc = offer_decide(s, visit_id, "withdrawn", now_ms);
    return tm__store_finish(s, rc);
}

int tm_store_visit_accept(tm_store *s, const char *visit_id, const char *doctor_id,
                          const char *user_agent, int64_t now_ms)
{
    return tm_store_visit_accept_checked(s, visit_id, doctor_id, user_agent, NULL, now_ms);
}

/* After a transfer the visit keeps its first accept (the call's start, the
 * first doctor's response); the transfer row gets this one. A patient's
 * away mark ends with the wait: a transfer back to waiting starts clean. */
static const char accept_times_sql[] = "UPDATE visits SET accepted_at = COALESCE(accepted_at, ?3),"
                                       " queue_wait_ms = COALESCE(queue_wait_ms, ?3 - checkin_at),"
                                       " response_ms = COALESCE(response_ms, ?3 - checkin_at),"
                                       " patient_away_at = NULL"
                                       " WHERE id = ?1 AND doctor_id = ?2";

int tm_store_visit_accept_checked(tm_store *s, const char *visit_id, const char *doctor_id,
                                  const char *user_agent, const tm_doctor_check *check,
                                  int64_t now_ms)
{
    return tm_store_visit_accept_on(s, visit_id, doctor_id, user_agent, check, NULL, now_ms);
}

int tm_store_visit_accept_on(tm_store *s, const char *visit_id, const char *doctor_id,
                             const char *user_agent, const tm_doctor_check *check,
                             const char *media_node, int64_t now_ms)
{
    int rc = tm__store_begin(s);
    if (rc < 0)
        return rc;
    /* Sent together: a visit not offered, or offered to another doctor,
     * rolls the whole transaction back anyway. */
    tm__store_prefetch(s, set_state_sql, "sssI", visit_id, "offered", "active", now_ms);
    tm__store_prefetch(s, accept_times_sql, "ssI", visit_id, doctor_id, now_ms);
    tm__store_transfer_prefetch(s, visit_id);
    rc = visit_set_state(s, visit_id, "offered", "active", now_ms);
    if (rc == 0) {
        rc = tm__store_run_one(s, accept_times_sql, "ssI", visit_id, doctor_id, now_ms);
        if (rc == TM_ENOTFOUND)
            rc = tm__store_refuse(s, TM_EPERM, "visit is offered to another doctor");
    }
    if (rc == 0 && media_node)
        rc = tm__store_run_later(s, "UPDATE visits SET media_node = ?2 WHERE id = ?1", "ss",
                                 visit_id, media_node);
    if (rc == 0 && check)
        rc = tm__store_run_later(
            s,
            "UPDATE visits SET doctor_verify_method = ?2, doctor_verify_amr = ?3,"
            " doctor_verified_at = ?4 WHERE id = ?1",
            "ssst", visit_id, check->method, check->amr, check->verified_ms);
    if (rc == 0)
        rc = offer_decide(s, visit_id, "accepted", now_ms);
    if (rc == 0)
        rc = participant_insert(s, visit_id, doctor_id, "doctor", user_agent, now_ms);
    json_t *transfer = NULL;
    if (rc == 0 &&
        (rc = tm__store_transfer_accepted(s, visit_id, doctor_id, now_ms, &transfer)) > 0)
        rc = 0;
    if (rc == 0)
        rc = tm__store_outbox_append_with(s, "visit.started", visit_id, now_ms,
                                          transfer ? "transfer" : NULL, transfer);
    json_decref(transfer);
    return tm__store_finish(s, rc);
}

static int visit_end(tm_store *s, const char *visit_id, const char *reason, const char *by,
                     const char *advice, int64_t now_ms);

/* What an ended visit means for its appointment. */
static const char *appointment_outcome(const char *visit_state, const char *reason)
{
    if (strcmp(visit_state, "ended") == 0)
        return "fulfilled";
    return strcmp(reason, "no_show") == 0 ? "noshow" : "booked";
}

int tm_store_visit_end(tm_store *s, const char *visit_id, const char *reason, const char *by,
                       int64_t now_ms)
{
    return visit_end(s, visit_id, reason, by, NULL, now_ms);
}

int tm_store_visit_refer(tm_store *s, const char *visit_id, const char *by, const char *advice,
                         int64_t now_ms)
{
    if (!advice || !advice[0] || strlen(advice) > TM_REFERRAL_ADVICE_MAX)
        return tm__store_refuse(s, TM_EINVAL, "referral advice is 1 to 2000 bytes");
    return visit_end(s, visit_id, "terminate_and_refer", by, advice, now_ms);
}

/* The state an end moves v to, or a refusal. */
static int end_state(tm_store *s, const tm_visit *v, const char *advice, const char **to)
{
    if (strcmp(v->state, "active") == 0)
        *to = "ended";
    else if (strcmp(v->state, "waiting") == 0 || strcmp(v->state, "offered") == 0)
        *to = "cancelled";
    else
        return tm__store_refuse(s, TM_ECONFLICT, "visit is over already");
    if (advice && strcmp(*to, "ended") != 0)
        return tm__store_refuse(s, TM_ECONFLICT, "only an active visit is referred");
    return 0;
}

static int visit_end(tm_store *s, const char *visit_id, const char *reason, const char *by,
                     const char *advice, int64_t now_ms)
{
    int rc = tm__store_begin(s);
    if (rc < 0)
        return rc;
    /* Most visits end active: that update goes out right after the read,
     * and decides the step when the read finds the visit active (a visit
     * in another state changes no row with it). */
    tm__store_prefetch(s, visit_by_id_sql, "s", visit_id);
    tm__store_prefetch(s, set_state_sql, "sssI", visit_id, "active", "ended", now_ms);
    tm__store_party_close_prefetch(s, visit_id);
    tm_visit v;
    const char *to = NULL;
    rc = tm_store_visit_get(s, visit_id, &v);
    if (rc == 0)
        rc = end_state(s, &v, advice, &to);
    if (rc < 0)
        return tm__store_finish(s, rc);
    rc = visit_set_state(s, visit_id, v.state, to, now_ms);
    if (rc == 0 && advice)
        rc = tm__store_run_later(s, "UPDATE visits SET referral_advice = ?2 WHERE id = ?1", "sb",
                                 visit_id, advice);
    if (rc == 0)
        rc = tm__store_run_later(
            s,
            "UPDATE visits SET ended_at = ?2, end_reason = ?3, ended_by = ?4,"
            " patient_away_at = NULL,"
            " duration_ms = CASE WHEN accepted_at IS NULL THEN NULL ELSE ?2 - accepted_at END,"
            " queue_wait_ms = COALESCE(queue_wait_ms, ?2 - checkin_at) WHERE id = ?1",
            "sIss", visit_id, now_ms, reason, by);
    if (rc == 0 && strcmp(v.state, "offered") == 0)
        rc = offer_decide(s, visit_id, "withdrawn", now_ms);
    if (rc == 0)
        rc = tm__store_run_later(s,
                                 "UPDATE participants SET left_at = ?2, leave_reason = ?3"
                                 " WHERE visit_id = ?1 AND left_at IS NULL",
                                 "sIs", visit_id, now_ms, reason);
    if (rc == 0)
        rc = tm__store_party_close(s, visit_id, now_ms);
    if (rc == 0 && v.appointment_id[0])
        rc = tm__store_run_later(
            s, "UPDATE appointments SET status = ?2, updated_at = ?3 WHERE id = ?1", "ssI",
            v.appointment_id, appointment_outcome(to, reason), now_ms);
    if (rc == 0)
        rc = tm__store_outbox_append(s, "visit.ended", visit_id, now_ms);
    return tm__store_finish(s, rc);
}

int tm_store_participant_join(tm_store *s, const char *visit_id, const char *user_id,
                              const char *role, const char *user_agent, int64_t now_ms)
{
    int rc = participant_insert(s, visit_id, user_id, role, user_agent, now_ms);
    return rc == TM_ECONFLICT ? TM_EINVAL : rc;
}

int tm_store_participant_leave(tm_store *s, const char *visit_id, const char *user_id,
                               const char *reason, int64_t now_ms)
{
    return tm__store_run(s,
                         "UPDATE participants SET left_at = ?3, leave_reason = ?4"
                         " WHERE visit_id = ?1 AND user_id = ?2 AND left_at IS NULL",
                         "ssIs", visit_id, user_id, now_ms, reason);
}

int tm_store_chat_add(tm_store *s, const char *visit_id, const char *sender_id,
                      const char *sender_role, const char *body, int64_t now_ms, int64_t *id_out)
{
    tm__stmt *st =
        tm__store_query(s,
                        "INSERT INTO chat_messages(visit_id, sender_id, sender_role, body, sent_at)"
                        " VALUES(?1, ?2, ?3, ?4, ?5) RETURNING id",
                        "sssbI", visit_id, sender_id, sender_role, body, now_ms);
    int rc = tm__store_step(s, st);
    if (rc == 1 && id_out)
        *id_out = tm__col_int64(st, 0);
    if (st)
        tm__stmt_reset(st);
    return rc == 1 ? 0 : rc == 0 ? TM_EIO : rc;
}

json_t *tm_store_chat_recent(tm_store *s, const char *visit_id, int limit)
{
    return tm__store_rows_json(
        s, tm__store_query(s,
                           "SELECT * FROM (SELECT id, sender_id, sender_role, body, sent_at FROM"
                           " chat_messages WHERE visit_id = ?1 ORDER BY id DESC LIMIT ?2) AS recent"
                           " ORDER BY id",
                           "si", visit_id, limit >= 1 && limit <= 1000 ? limit : 1000));
}

/* A signed note is never rewritten, so its last update is its signing. */
json_t *tm_store_notes_signed(tm_store *s, const char *visit_id)
{
    return tm__store_rows_json(
        s, tm__store_query(s,
                           "SELECT doctor_id, body, diagnosis_code, updated_at AS signed_at FROM"
                           " notes WHERE visit_id = ?1 AND signed = 1 ORDER BY id",
                           "s", visit_id));
}

/* The doctor's note on the visit: its row id (0 if none) and whether it is signed. */
static int note_find(tm_store *s, const char *visit_id, const char *doctor_id, int64_t *id,
                     bool *is_signed)
{
    tm__stmt *st =
        tm__store_query(s, "SELECT id, signed FROM notes WHERE visit_id = ?1 AND doctor_id = ?2",
                        "ss", visit_id, doctor_id);
    *id = 0;
    *is_signed = false;
    int rc = tm__store_step(s, st);
    if (rc == 1) {
        *id = tm__col_int64(st, 0);
        *is_signed = tm__col_int(st, 1) != 0;
    }
    tm__stmt_reset(st);
    return rc < 0 ? rc : 0;
}

/* A sealed record is final (store.h, "the visit seal"). */
bool tm__store_visit_sealed(tm_store *s, const char *visit_id)
{
    tm__stmt *st = tm__store_query(
        s, "SELECT 1 FROM visits WHERE id = ?1 AND sealed_at IS NOT NULL", "s", visit_id);
    bool sealed = st && tm__store_step(s, st) == 1;
    if (st)
        tm__stmt_reset(st);
    return sealed;
}

int tm_store_note_save(tm_store *s, const char *visit_id, const char *doctor_id, const char *body,
                       const char *diagnosis_code, bool sign, int64_t now_ms)
{
    int rc = tm__store_begin(s);
    if (rc < 0)
        return rc;
    int64_t note_id = 0;
    bool was_signed = false;
    rc = note_find(s, visit_id, doctor_id, &note_id, &was_signed);
    if (rc == 0 && tm__store_visit_sealed(s, visit_id))
        rc = tm__store_refuse(s, TM_ECONFLICT, "the visit record is sealed");
    else if (rc == 0 && was_signed) {
        /* A signed note is part of the medical record: it is not rewritten. */
        rc = tm__store_refuse(s, TM_ECONFLICT, "note already signed");
    }
    if (rc == 0 && note_id)
        rc = tm__store_run(
            s,
            "UPDATE notes SET body = ?2, diagnosis_code = ?3, signed = ?4, updated_at = ?5"
            " WHERE id = ?1",
            "IbsiI", note_id, body, diagnosis_code, (int)sign, now_ms);
    else if (rc == 0)
        rc = tm__store_run(s,
                           "INSERT INTO notes(visit_id, doctor_id, body, diagnosis_code, signed,"
                           " created_at, updated_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                           "ssbsiI", visit_id, doctor_id, body, diagnosis_code, (int)sign, now_ms);
    if (rc == 0 && sign)
        rc = tm__store_outbox_append(s, "visit.note_signed", visit_id, now_ms);
    return tm__store_finish(s, rc);
}

int tm_store_rating_add(tm_store *s, const char *visit_id, const char *patient_id, int score,
                        const char *comment, int64_t now_ms)
{
    if (score < 1 || score > 5 || (comment && strlen(comment) > TM_RATING_COMMENT_MAX))
        return tm__store_refuse(s, TM_EINVAL,
                                "a rating is 1 to 5 with a comment of at most 2000 bytes");
    int rc = tm__store_begin(s);
    if (rc < 0)
        return rc;
    rc = tm__store_run_later(s,
                             "INSERT INTO ratings(visit_id, patient_id, score, comment, created_at)"
                             " VALUES(?1, ?2, ?3, ?4, ?5)",
                             "ssisI", visit_id, patient_id, score, comment, now_ms);
    if (rc == 0)
        rc = tm__store_outbox_append(s, "visit.rated", visit_id, now_ms);
    return tm__store_finish(s, rc);
}

int tm_store_stats_add(tm_store *s, const char *visit_id, const char *user_id,
                       const char *direction, const char *kind, const char *summary_json,
                       int64_t now_ms)
{
    return tm__store_run(s,
                         "INSERT INTO stream_stats(visit_id, user_id, direction, kind, summary,"
                         " recorded_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                         "sssssI", visit_id, user_id, direction, kind, summary_json, now_ms);
}

int tm_store_interruption_add(tm_store *s, const char *visit_id, const char *user_id,
                              const char *role, int64_t started_ms, int64_t ended_ms)
{
    if (!user_id || !*user_id || !role || !*role || (ended_ms && ended_ms < started_ms))
        return tm__store_refuse(s, TM_EINVAL,
                                "an interruption needs who and a start before its end");
    return tm__store_run(s,
                         "INSERT INTO media_interruptions(visit_id, user_id, role, started_at,"
                         " ended_at) VALUES(?1, ?2, ?3, ?4, ?5)",
                         "sssIt", visit_id, user_id, role, started_ms, ended_ms);
}

static json_t *query_rows(tm_store *s, const char *sql, const char *id)
{
    return tm__store_rows_json(s, tm__store_query(s, sql, "s", id));
}

/* Sets key of rec to value (stolen); false when value is NULL (a read failed). */
static bool set_rows(json_t *rec, const char *key, json_t *value)
{
    return value && json_object_set_new(rec, key, value) == 0;
}

/* {method, amr, verified_at} of the doctor's check, json null when the
 * doctor was not checked; NULL when the read failed. */
static json_t *doctor_verification(tm_store *s, const char *id)
{
    json_t *rows = query_rows(s,
                              "SELECT doctor_verify_method AS method, doctor_verify_amr AS amr,"
                              " doctor_verified_at AS verified_at FROM visits"
                              " WHERE id = ?1 AND doctor_verify_method IS NOT NULL",
                              id);
    if (!rows)
        return NULL;
    json_t *check = json_array_size(rows) ? json_incref(json_array_get(rows, 0)) : json_null();
    json_decref(rows);
    return check;
}

json_t *tm_store_visit_record(tm_store *s, const char *id)
{
    json_t *visits = query_rows(
        s,
        "SELECT v.id, v.patient_id, v.dept_id, d.name AS dept_name, v.appointment_id,"
        " v.doctor_id, v.kind, v.urgent, v.state, v.checkin_at, v.offered_at, v.accepted_at,"
        " v.ended_at, v.end_reason, v.ended_by, v.queue_wait_ms, v.response_ms, v.duration_ms,"
        " v.offers, v.recording_consent, v.referral_advice"
        " FROM visits v JOIN departments d ON d.id = v.dept_id"
        " WHERE v.id = ?1",
        id);
    json_t *rec = json_incref(json_array_get(visits, 0));
    json_decref(visits);
    if (!rec)
        return NULL;
    json_t *ratings =
        query_rows(s, "SELECT score, comment, created_at FROM ratings WHERE visit_id = ?1", id);
    json_t *stats = query_rows(s,
                               "SELECT user_id, direction, kind, summary, recorded_at FROM"
                               " stream_stats WHERE visit_id = ?1 ORDER BY id",
                               id);
    size_t i;
    json_t *row;
    json_array_foreach(stats, i, row)
    {
        json_t *summary = json_loads(json_string_value(json_object_get(row, "summary")), 0, NULL);
        json_object_set_new(row, "summary", summary ? summary : json_null());
    }
    bool ok =
        ratings &&
        set_rows(rec, "participants",
                 query_rows(s,
                            "SELECT user_id, role, visit_role, user_agent, joined_at, left_at,"
                            " leave_reason FROM participants WHERE visit_id = ?1 ORDER BY id",
                            id)) &&
        set_rows(rec, "invites",
                 query_rows(s,
                            "SELECT id AS invite_id, inviter_id, invitee_id, role, created_at,"
                            " expires_at, outcome, decided_at FROM invites WHERE visit_id = ?1"
                            " ORDER BY created_at, id",
                            id)) &&
        set_rows(rec, "guest_links", tm_store_guest_links(s, id, tm_now_ms())) &&
        set_rows(rec, "timeline", tm_store_visit_timeline(s, id)) &&
        set_rows(rec, "consultation", tm_store_consult_of_visit(s, id)) &&
        set_rows(rec, "transfers", tm_store_visit_transfers(s, id)) &&
        set_rows(rec, "parts", tm_store_visit_parts(s, id)) &&
        set_rows(rec, "offers",
                 query_rows(s,
                            "SELECT doctor_id, offered_at, outcome, decided_at FROM offers"
                            " WHERE visit_id = ?1 ORDER BY id",
                            id)) &&
        set_rows(rec, "notes",
                 query_rows(s,
                            "SELECT doctor_id, body, diagnosis_code, signed, created_at,"
                            " updated_at FROM notes WHERE visit_id = ?1 ORDER BY id",
                            id)) &&
        set_rows(rec, "chat",
                 query_rows(s,
                            "SELECT id, sender_id, sender_role, body, sent_at FROM"
                            " chat_messages WHERE visit_id = ?1 ORDER BY id",
                            id)) &&
        set_rows(rec, "rating",
                 json_array_size(ratings) ? json_incref(json_array_get(ratings, 0))
                                          : json_null()) &&
        set_rows(rec, "recordings",
                 query_rows(s,
                            "SELECT id, segment, node_id, part, path, format, state, size_bytes,"
                            " duration_ms, sha256, plain_sha256, encrypted, failure,"
                            " dropped_packets, started_at, finished_at, deleted_at,"
                            " deleted_by_policy FROM recordings WHERE visit_id = ?1"
                            " ORDER BY started_at, segment, part, id",
                            id)) &&
        set_rows(rec, "renditions",
                 query_rows(s,
                            "SELECT id, path, format, state, size_bytes, duration_ms, sha256,"
                            " plain_sha256, encrypted, error, parts, cpu_ms, queued_at,"
                            " started_at, finished_at, deleted_at FROM renditions"
                            " WHERE visit_id = ?1 ORDER BY queued_at, id",
                            id)) &&
        set_rows(rec, "stream_stats", json_incref(stats)) &&
        set_rows(rec, "consents",
                 query_rows(s,
                            "SELECT kind, user_id, role, version, recording, session_id,"
                            " accepted_at FROM consents WHERE visit_id = ?1 ORDER BY id",
                            id)) &&
        set_rows(rec, "doctor_verification", doctor_verification(s, id)) &&
        set_rows(rec, "interruptions",
                 query_rows(s,
                            "SELECT user_id, role, started_at, ended_at, ended_at - started_at"
                            " AS duration_ms FROM media_interruptions WHERE visit_id = ?1"
                            " ORDER BY started_at, id",
                            id));
    json_decref(ratings);
    json_decref(stats);
    if (!ok) {
        json_decref(rec);
        return NULL;
    }
    return rec;
}

json_t *tm_store_visit_list(tm_store *s, const char *state, const char *dept_id,
                            const char *doctor_id, const char *patient_id, int64_t from_ms,
                            int64_t to_ms, int limit, int offset)
{
    tm__stmt *st = tm__store_query(
        s,
        "SELECT v.id, v.patient_id, v.dept_id, v.doctor_id, v.kind, v.urgent, v.state,"
        " v.checkin_at, v.accepted_at, v.ended_at, v.end_reason, v.queue_wait_ms,"
        " v.response_ms, v.duration_ms, r.score AS rating"
        " FROM visits v LEFT JOIN ratings r ON r.visit_id = v.id"
        " WHERE (?1 IS NULL OR v.state = ?1) AND (?2 IS NULL OR v.dept_id = ?2)"
        " AND (?3 IS NULL OR v.doctor_id = ?3) AND (?4 IS NULL OR v.patient_id = ?4)"
        " AND (?5 IS NULL OR v.checkin_at >= ?5) AND (?6 IS NULL OR v.checkin_at < ?6)"
        " ORDER BY v.checkin_at DESC LIMIT ?7 OFFSET ?8",
        "ssssttii", state, dept_id, doctor_id, patient_id, from_ms, to_ms,
        limit > 0 && limit <= 1000 ? limit : 100, offset > 0 ? offset : 0);
    return tm__store_rows_json(s, st);
}

int tm_store_visit_counts(tm_store *s, int64_t since_ms, json_t **out)
{
    tm__stmt *st = tm__store_query(s,
                                   "SELECT state, count(*) FROM visits WHERE checkin_at >= ?1"
                                   " GROUP BY state",
                                   "I", since_ms);
    json_t *o = json_object();
    int rc;
    while ((rc = tm__store_step(s, st)) == 1)
        json_object_set_new(o, tm__col_text(st, 0), json_integer(tm__col_int64(st, 1)));
    tm__stmt_reset(st);
    if (rc < 0) {
        json_decref(o);
        return rc;
    }
    *out = o;
    return 0;
}

int tm_store_doctor_figures(tm_store *s, const char *doctor_id, int64_t since_ms, json_t **out)
{
    tm__stmt *st = tm__store_query(s,
                                   "SELECT count(*) AS visits,"
                                   " CAST(avg(v.response_ms) AS INTEGER) AS avg_response_ms,"
                                   " avg(r.score) AS avg_rating, count(r.score) AS ratings"
                                   " FROM visits v LEFT JOIN ratings r ON r.visit_id = v.id"
                                   " WHERE v.doctor_id = ?1 AND v.accepted_at >= ?2",
                                   "sI", doctor_id, since_ms);
    if (!st)
        return TM_EIO;
    json_t *rows = tm__store_rows_json(s, st);
    *out = json_incref(json_array_get(rows, 0));
    json_decref(rows);
    return *out ? 0 : TM_EIO;
}

/* ---- what the regulator hears of a visit --------------------------- */

static int64_t col_int_or(tm__stmt *st, int i, int64_t none)
{
    return tm__col_is_null(st, i) ? none : tm__col_int64(st, i);
}

static const char facts_visit_sql[] =
    "SELECT d.name, doc.licence_no, v.ended_by, v.queue_wait_ms, v.response_ms,"
    "       v.duration_ms, v.offers, v.doctor_verify_method,"
    "       v.doctor_verify_amr, v.doctor_verified_at, v.referral_advice,"
    "       coalesce(d.institution_id, ?2), i.name, i.org_code"
    "  FROM visits v"
    "  LEFT JOIN departments d ON d.id = v.dept_id"
    "  LEFT JOIN doctors doc ON doc.id = v.doctor_id"
    "  LEFT JOIN institutions i ON i.id = coalesce(d.institution_id, ?2)"
    " WHERE v.id = ?1";

static int facts_visit(tm_store *s, const char *visit_id, tm_visit_facts *f)
{
    tm__stmt *st = tm__store_query(s, facts_visit_sql, "ss", visit_id, tm_store_hospital_id(s));
    int rc = tm__store_step(s, st);
    if (rc == 1) {
        tm__store_col_text(st, 0, f->dept_name, sizeof(f->dept_name));
        tm__store_col_text(st, 1, f->doctor_licence_no, sizeof(f->doctor_licence_no));
        tm__store_col_text(st, 2, f->ended_by, sizeof(f->ended_by));
        f->queue_wait_ms = col_int_or(st, 3, -1);
        f->response_ms = col_int_or(st, 4, -1);
        f->duration_ms = col_int_or(st, 5, -1);
        f->offers = (int)col_int_or(st, 6, 0);
        tm__store_col_text(st, 7, f->doctor_check.method, sizeof(f->doctor_check.method));
        tm__store_col_text(st, 8, f->doctor_check.amr, sizeof(f->doctor_check.amr));
        f->doctor_check.verified_ms = col_int_or(st, 9, 0);
        tm__store_col_text(st, 10, f->referral_advice, sizeof(f->referral_advice));
        tm__store_col_text(st, 11, f->institution_id, sizeof(f->institution_id));
        tm__store_col_text(st, 12, f->institution_name, sizeof(f->institution_name));
        tm__store_col_text(st, 13, f->institution_org_code, sizeof(f->institution_org_code));
    }
    tm__stmt_reset(st);
    return rc == 0 ? TM_ENOTFOUND : rc < 0 ? rc : 0;
}

static const char facts_recording_sql[] =
    "SELECT id, sha256, size_bytes, duration_ms, format, state, encrypted"
    "  FROM recordings WHERE visit_id = ?1 AND state IN ('complete','incomplete')"
    " ORDER BY coalesce(finished_at, started_at) DESC, part DESC, id DESC LIMIT 1";

/* The newest finished recording (a visit may restart its recording after a
 * worker failure; the last one is the one announced). */
static int facts_recording(tm_store *s, const char *visit_id, tm_visit_facts *f)
{
    tm__stmt *st = tm__store_query(s, facts_recording_sql, "s", visit_id);
    int rc = tm__store_step(s, st);
    f->has_recording = rc == 1;
    if (rc == 1) {
        tm__store_col_text(st, 0, f->recording.id, sizeof(f->recording.id));
        tm__store_col_text(st, 1, f->recording.sha256, sizeof(f->recording.sha256));
        f->recording.size_bytes = col_int_or(st, 2, -1);
        f->recording.duration_ms = col_int_or(st, 3, -1);
        tm__store_col_text(st, 4, f->recording.format, sizeof(f->recording.format));
        f->recording.complete = strcmp(tm__col_text(st, 5), "complete") == 0;
        f->recording.encrypted = tm__col_int(st, 6) != 0;
    }
    tm__stmt_reset(st);
    return rc < 0 ? rc : 0;
}

static const char facts_consent_sql[] = "SELECT version, session_id, recording, accepted_at"
                                        "  FROM consents WHERE visit_id = ?1 AND kind = 'patient'"
                                        " ORDER BY id DESC LIMIT 1";

static int facts_consent(tm_store *s, const char *visit_id, tm_visit_facts *f)
{
    tm__stmt *st = tm__store_query(s, facts_consent_sql, "s", visit_id);
    int rc = tm__store_step(s, st);
    f->has_consent = rc == 1;
    if (rc == 1) {
        tm__store_col_text(st, 0, f->consent.version, sizeof(f->consent.version));
        tm__store_col_text(st, 1, f->consent.session_id, sizeof(f->consent.session_id));
        f->consent.recording = tm__col_int(st, 2) != 0;
        f->consent.accepted_ms = tm__col_int64(st, 3);
    }
    tm__stmt_reset(st);
    return rc < 0 ? rc : 0;
}

static const char facts_rating_sql[] =
    "SELECT score, comment, created_at FROM ratings WHERE visit_id = ?1";

static int facts_rating(tm_store *s, const char *visit_id, tm_visit_facts *f)
{
    tm__stmt *st = tm__store_query(s, facts_rating_sql, "s", visit_id);
    int rc = tm__store_step(s, st);
    f->has_rating = rc == 1;
    if (rc == 1) {
        f->rating.score = tm__col_int(st, 0);
        tm__store_col_text(st, 1, f->rating.comment, sizeof(f->rating.comment));
        f->rating.rated_ms = tm__col_int64(st, 2);
    }
    tm__stmt_reset(st);
    return rc < 0 ? rc : 0;
}

static const char facts_note_sql[] = "SELECT doctor_id, diagnosis_code, updated_at FROM notes"
                                     " WHERE visit_id = ?1 AND signed = 1"
                                     " ORDER BY updated_at DESC, id DESC LIMIT 1";

static int facts_signed_note(tm_store *s, const char *visit_id, tm_visit_facts *f)
{
    tm__stmt *st = tm__store_query(s, facts_note_sql, "s", visit_id);
    int rc = tm__store_step(s, st);
    f->has_signed_note = rc == 1;
    if (rc == 1) {
        tm__store_col_text(st, 0, f->note.doctor_id, sizeof(f->note.doctor_id));
        tm__store_col_text(st, 1, f->note.diagnosis_code, sizeof(f->note.diagnosis_code));
        f->note.signed_ms = tm__col_int64(st, 2);
    }
    tm__stmt_reset(st);
    return rc < 0 ? rc : 0;
}

static const char facts_doctors_sql[] =
    "SELECT p.user_id, p.visit_role, max(d.licence_no) FROM participants p"
    "  LEFT JOIN doctors d ON d.id = p.user_id"
    " WHERE p.visit_id = ?1 AND p.visit_role IN ('attending','consulting')"
    " GROUP BY p.user_id, p.visit_role ORDER BY min(p.id)";

/* Every doctor who took part, attending or consulting, by first join. */
static int facts_doctors(tm_store *s, const char *visit_id, tm_visit_facts *f)
{
    tm__stmt *st = tm__store_query(s, facts_doctors_sql, "s", visit_id);
    int rc;
    while ((rc = tm__store_step(s, st)) == 1 && f->n_doctors < TM_ARRAY_LEN(f->doctors)) {
        size_t i = f->n_doctors++;
        tm__store_col_text(st, 0, f->doctors[i].doctor_id, sizeof(f->doctors[i].doctor_id));
        tm__store_col_text(st, 1, f->doctors[i].role, sizeof(f->doctors[i].role));
        tm__store_col_text(st, 2, f->doctors[i].licence_no, sizeof(f->doctors[i].licence_no));
    }
    tm__stmt_reset(st);
    return rc < 0 ? rc : 0;
}

/* Inside a transaction on PostgreSQL the facts' reads go out together: one
 * round trip for all of them. */
static void facts_prefetch(tm_store *s, const char *visit_id)
{
    tm__store_prefetch(s, visit_by_id_sql, "s", visit_id);
    tm__store_prefetch(s, facts_visit_sql, "ss", visit_id, tm_store_hospital_id(s));
    tm__store_prefetch(s, facts_recording_sql, "s", visit_id);
    tm__store_prefetch(s, facts_consent_sql, "s", visit_id);
    tm__store_prefetch(s, facts_rating_sql, "s", visit_id);
    tm__store_prefetch(s, facts_note_sql, "s", visit_id);
    tm__store_prefetch(s, facts_doctors_sql, "s", visit_id);
    tm__store_facts_participants_prefetch(s, visit_id);
}

int tm_store_visit_facts(tm_store *s, const char *visit_id, tm_visit_facts *out)
{
    memset(out, 0, sizeof(*out));
    facts_prefetch(s, visit_id);
    int rc = tm_store_visit_get(s, visit_id, &out->visit);
    if (rc == 0)
        rc = facts_visit(s, visit_id, out);
    if (rc == 0)
        rc = facts_recording(s, visit_id, out);
    if (rc == 0)
        rc = facts_consent(s, visit_id, out);
    if (rc == 0)
        rc = facts_rating(s, visit_id, out);
    if (rc == 0)
        rc = facts_signed_note(s, visit_id, out);
    if (rc == 0)
        rc = facts_doctors(s, visit_id, out);
    if (rc == 0)
        rc = tm__store_facts_participants(s, visit_id, out);
    return rc;
}

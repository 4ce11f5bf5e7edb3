/*
 * store_referral.c - the SQLite backend's referrals (include/telemed/store.h,
 * "referral"): a patient sent up or down the alliance from a visit, the
 * receiving side's answer, and a declined one sent again as a new version.
 * Each step writes its referral.* event with the visit as subject in the
 * same transaction.
 *
 * Control loop thread only, on the store's connection (store_internal.h).
 */
#include "store_internal.h"
#include "telemed/common.h"

#include <glib.h>
#include <string.h>

#define REFERRAL_COLUMNS                                                                           \
    "SELECT r.id, r.visit_id, r.patient_id, r.from_doctor_id, r.from_dept_id, r.direction,"        \
    " r.to_dept_id, r.reason, r.appointment_id, r.version, r.replaces,"                            \
    " (SELECT n.id FROM referrals n WHERE n.replaces = r.id) AS replaced_by, r.state,"             \
    " r.decided_by, r.decided_at, r.decline_reason, r.created_at"

static bool text_ok(const char *t, size_t max)
{
    return t && t[0] && strlen(t) <= max;
}

/* The referral as its events carry it: identifiers, the reason and the
 * answer; the clinical summary stays at the hospitals. New reference. */
static json_t *event_json(tm_store *s, const char *id)
{
    json_t *rows = tm__store_rows_json(
        s, tm__store_query(s, REFERRAL_COLUMNS " FROM referrals r WHERE r.id = ?1", "s", id));
    json_t *row = json_incref(json_array_get(rows, 0));
    json_decref(rows);
    if (!row)
        return NULL;
    json_object_del(row, "patient_id"); /* the visit's data names the patient */
    return row;
}

static int append_event(tm_store *s, const char *type, const char *visit_id, const char *id,
                        int64_t now_ms)
{
    json_t *r = event_json(s, id);
    if (!r)
        return TM_EIO;
    int rc = tm__store_outbox_append_with(s, type, visit_id, now_ms, "referral", r);
    json_decref(r);
    return rc;
}

/* Whether doctor_id attended the visit, in any of its parts. */
static bool attended(tm_store *s, const char *visit_id, const char *doctor_id)
{
    tm__stmt *st = tm__store_query(s,
                                   "SELECT 1 FROM participants WHERE visit_id = ?1 AND"
                                   " user_id = ?2 AND visit_role = 'attending'",
                                   "ss", visit_id, doctor_id);
    bool yes = st && tm__store_step(s, st) == 1;
    if (st)
        tm__stmt_reset(st);
    return yes;
}

static int check_appointment(tm_store *s, const char *appt_id, const char *patient_id,
                             const char *to_dept_id)
{
    if (!appt_id || !appt_id[0])
        return 0;
    tm_appointment a;
    if (tm_store_appt_get(s, appt_id, &a) < 0)
        return tm__store_refuse(s, TM_ENOTFOUND, "no such appointment");
    if (strcmp(a.patient_id, patient_id) != 0 || strcmp(a.dept_id, to_dept_id) != 0 ||
        strcmp(a.status, "booked") != 0)
        return tm__store_refuse(s, TM_EINVAL,
                                "the appointment must be the patient's, booked, in the receiving "
                                "department");
    return 0;
}

/* ---- levels ----------------------------------------------------------- */

/* A level as a number that orders institutions: the grade (1-3) times ten
 * plus 3/2/1 for A/B/C (甲/乙/丙), so 3A > 3B > 2A > 1C > 1; community care
 * (a community clinic, 社区) below every graded hospital; -1 not known. */
static int level_rank(const char *level)
{
    static const char *const grades[][2] = {{"1", "一"}, {"2", "二"}, {"3", "三"}};
    static const char *const subs[][2] = {{"C", "丙"}, {"B", "乙"}, {"A", "甲"}};
    if (!level || !level[0])
        return -1;
    if (g_ascii_strcasecmp(level, "community") == 0 || g_str_has_prefix(level, "社区"))
        return 5;
    int rank = -1;
    const char *p = level;
    for (int g = 0; g < 3 && rank < 0; g++)
        for (int form = 0; form < 2 && rank < 0; form++)
            if (g_str_has_prefix(p, grades[g][form])) {
                rank = (g + 1) * 10;
                p += strlen(grades[g][form]);
            }
    if (rank < 0)
        return -1;
    if (g_str_has_prefix(p, "级"))
        p += strlen("级");
    for (int x = 0; x < 3; x++)
        for (int form = 0; form < 2; form++)
            if (g_ascii_strncasecmp(p, subs[x][form], strlen(subs[x][form])) == 0)
                return rank + x + 1;
    return rank;
}

static int institution_of(tm_store *s, const char *dept_id, tm_institution *out)
{
    char id[64];
    int rc = tm_store_dept_institution(s, dept_id, id);
    if (rc < 0)
        return tm__store_refuse(s, TM_ENOTFOUND, "no such department");
    if (tm_store_institution_get(s, id, out) < 0) {
        memset(out, 0, sizeof(*out)); /* the core before its row is written */
        g_strlcpy(out->id, id, sizeof(out->id));
    }
    return 0;
}

int tm_store_referral_levels(tm_store *s, const char *direction, const char *from_dept_id,
                             const char *to_dept_id, const char **why)
{
    tm_institution from, to;
    const char *w = NULL;
    int rc = institution_of(s, from_dept_id, &from);
    if (rc == 0)
        rc = institution_of(s, to_dept_id, &to);
    if (rc < 0)
        return rc;
    bool up = direction && strcmp(direction, "up") == 0;
    int a = level_rank(from.level), b = level_rank(to.level);
    char msg[512];
    if (strcmp(from.id, to.id) == 0) {
        w = "same_institution";
        snprintf(msg, sizeof(msg),
                 "a referral goes to another member of the alliance: %s is the referring "
                 "doctor's own institution (transfer the patient or ask for a consultation)",
                 to.id);
    } else if (a < 0 || b < 0) {
        w = "level_unknown";
        snprintf(msg, sizeof(msg),
                 "the level of institution %s is not known, so up or down cannot "
                 "be checked: an admin sets it (hospital_level, institutions)",
                 a < 0 ? from.id : to.id);
    } else if (up && b <= a) {
        w = "not_higher";
        snprintf(msg, sizeof(msg),
                 "a referral up goes to a higher level: %s (level %s) is not above %s (level %s)",
                 to.id, to.level, from.id, from.level);
    } else if (!up && b >= a) {
        w = "not_lower";
        snprintf(msg, sizeof(msg),
                 "a referral down goes to a lower level: %s (level %s) is not below %s (level %s)",
                 to.id, to.level, from.id, from.level);
    }
    if (why)
        *why = w;
    return w ? tm__store_refuse(s, TM_EINVAL, msg) : 0;
}

/* Everything a new referral (or version) must satisfy; fills *from_dept. */
static int check_request(tm_store *s, const tm_referral_req *r, const tm_visit *v,
                         char from_dept[64])
{
    if (!r->direction || (strcmp(r->direction, "up") != 0 && strcmp(r->direction, "down") != 0))
        return tm__store_refuse(s, TM_EINVAL, "direction is up or down");
    if (!text_ok(r->reason, TM_REFERRAL_REASON_MAX) ||
        !text_ok(r->summary, TM_REFERRAL_SUMMARY_MAX) || !r->to_dept_id || !r->to_dept_id[0])
        return tm__store_refuse(s, TM_EINVAL,
                                "a referral needs to_dept_id, a reason (1-500 bytes) and a "
                                "summary (1-8000 bytes)");
    if (!tm_store_dept_exists(s, r->to_dept_id))
        return tm__store_refuse(s, TM_ENOTFOUND, "no such department");
    tm_doctor_info d;
    if (tm_store_doctor_get(s, r->from_doctor_id, &d) < 0)
        return tm__store_refuse(s, TM_EPERM, "not a doctor of the hospital");
    if (strcmp(d.dept_id, r->to_dept_id) == 0)
        return tm__store_refuse(s, TM_EINVAL, "a referral goes to another department");
    g_strlcpy(from_dept, d.dept_id, 64);
    int rc = tm_store_referral_levels(s, r->direction, d.dept_id, r->to_dept_id, NULL);
    if (rc < 0)
        return rc;
    return check_appointment(s, r->appointment_id, v->patient_id, r->to_dept_id);
}

static int insert(tm_store *s, const char *id, const tm_referral_req *r, const tm_visit *v,
                  const char *from_dept, int version, const char *replaces, int64_t now_ms)
{
    return tm__store_run(s,
                         "INSERT INTO referrals(id, visit_id, patient_id, from_doctor_id,"
                         " from_dept_id, direction, to_dept_id, reason, summary, appointment_id,"
                         " version, replaces, created_at)"
                         " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                         "ssssssssbsisI", id, v->id, v->patient_id, r->from_doctor_id, from_dept,
                         r->direction, r->to_dept_id, r->reason, r->summary, r->appointment_id,
                         version, replaces, now_ms);
}

int tm_store_referral_create(tm_store *s, const tm_referral_req *r, int64_t now_ms, char *id_out)
{
    tm_visit v;
    if (!r->visit_id || !r->from_doctor_id)
        return tm__store_refuse(s, TM_EINVAL, "a referral needs its visit and doctor");
    int rc = tm_store_visit_get(s, r->visit_id, &v);
    if (rc < 0)
        return rc;
    if (!attended(s, v.id, r->from_doctor_id))
        return tm__store_refuse(s, TM_EPERM, "only a doctor who attended the visit refers");
    if (strcmp(v.state, "active") != 0 && strcmp(v.state, "ended") != 0)
        return tm__store_refuse(s, TM_ECONFLICT, "the visit has not been held");
    char from_dept[64];
    if ((rc = check_request(s, r, &v, from_dept)) < 0)
        return rc;
    char id[64];
    tm__store_make_id("rf", id, sizeof(id));
    if ((rc = tm__store_begin(s)) < 0)
        return rc;
    rc = insert(s, id, r, &v, from_dept, 1, NULL, now_ms);
    if (rc == 0)
        rc = append_event(s, "referral.created", v.id, id, now_ms);
    rc = tm__store_finish(s, rc);
    if (rc == 0 && id_out)
        g_strlcpy(id_out, id, 64);
    return rc;
}

/* The stored request of referral id, to check and copy from. */
typedef struct stored_referral {
    char visit_id[64], from_doctor_id[64], direction[8], to_dept_id[64], appointment_id[64];
    char state[16];
    char *reason, *summary;
    int version;
} stored_referral;

static int stored_get(tm_store *s, const char *id, stored_referral *out)
{
    memset(out, 0, sizeof(*out));
    tm__stmt *st = tm__store_query(s,
                                   "SELECT visit_id, from_doctor_id, direction, to_dept_id,"
                                   " appointment_id, state, reason, summary, version"
                                   " FROM referrals WHERE id = ?1",
                                   "s", id);
    int rc = tm__store_step(s, st);
    if (rc == 1) {
        tm__store_col_text(st, 0, out->visit_id, sizeof(out->visit_id));
        tm__store_col_text(st, 1, out->from_doctor_id, sizeof(out->from_doctor_id));
        tm__store_col_text(st, 2, out->direction, sizeof(out->direction));
        tm__store_col_text(st, 3, out->to_dept_id, sizeof(out->to_dept_id));
        tm__store_col_text(st, 4, out->appointment_id, sizeof(out->appointment_id));
        tm__store_col_text(st, 5, out->state, sizeof(out->state));
        out->reason = g_strdup(tm__col_text(st, 6));
        out->summary = g_strdup(tm__col_text(st, 7));
        out->version = tm__col_int(st, 8);
        rc = 0;
    } else if (rc == 0) {
        rc = tm__store_refuse(s, TM_ENOTFOUND, "no such referral");
    }
    tm__stmt_reset(st);
    return rc;
}

static void stored_clear(stored_referral *r)
{
    g_free(r->reason);
    g_free(r->summary);
}

int tm_store_referral_decide(tm_store *s, const char *id, bool accept, const char *by,
                             const char *decline_reason, int64_t now_ms)
{
    if (!accept && !text_ok(decline_reason, TM_REFERRAL_REASON_MAX))
        return tm__store_refuse(s, TM_EINVAL, "a decline needs a reason (1-500 bytes)");
    stored_referral old;
    int rc = stored_get(s, id, &old);
    if (rc < 0)
        return rc;
    if (strcmp(old.state, "requested") != 0)
        rc = tm__store_refuse(s, TM_ECONFLICT, "the referral was answered already");
    if (rc == 0)
        rc = tm__store_begin(s);
    if (rc == 0) {
        rc = tm__store_run_one(s,
                               "UPDATE referrals SET state = ?2, decided_by = ?3, decided_at = ?4,"
                               " decline_reason = ?5 WHERE id = ?1 AND state = 'requested'",
                               "sssIs", id, accept ? "accepted" : "declined", by, now_ms,
                               accept ? NULL : decline_reason);
        if (rc == 0)
            rc = append_event(s, accept ? "referral.accepted" : "referral.declined", old.visit_id,
                              id, now_ms);
        rc = tm__store_finish(s, rc);
    }
    stored_clear(&old);
    return rc;
}

int tm_store_referral_resend(tm_store *s, const char *id, const char *by, const tm_referral_req *r,
                             int64_t now_ms, char *id_out)
{
    stored_referral old;
    int rc = stored_get(s, id, &old);
    if (rc < 0)
        return rc;
    tm_visit v;
    char from_dept[64], new_id[64];
    tm_referral_req next = {
        .visit_id = old.visit_id,
        .from_doctor_id = old.from_doctor_id,
        .direction = r->direction ? r->direction : old.direction,
        .to_dept_id = r->to_dept_id ? r->to_dept_id : old.to_dept_id,
        .reason = r->reason ? r->reason : old.reason,
        .summary = r->summary ? r->summary : old.summary,
        .appointment_id = r->appointment_id ? r->appointment_id : old.appointment_id,
    };
    if (strcmp(old.from_doctor_id, by) != 0)
        rc = tm__store_refuse(s, TM_EPERM, "only the referring doctor re-sends a referral");
    else if (strcmp(old.state, "declined") != 0)
        rc = tm__store_refuse(s, TM_ECONFLICT, "only a declined referral is re-sent");
    if (rc == 0)
        rc = tm_store_visit_get(s, old.visit_id, &v);
    if (rc == 0)
        rc = check_request(s, &next, &v, from_dept);
    if (rc == 0)
        rc = tm__store_begin(s);
    if (rc == 0) {
        tm__store_make_id("rf", new_id, sizeof(new_id));
        rc = tm__store_run_one(
            s, "UPDATE referrals SET state = 'resent' WHERE id = ?1 AND state = 'declined'", "s",
            id);
        if (rc == 0)
            rc = insert(s, new_id, &next, &v, from_dept, old.version + 1, id, now_ms);
        if (rc == 0)
            rc = append_event(s, "referral.created", v.id, new_id, now_ms);
        rc = tm__store_finish(s, rc);
        if (rc == 0 && id_out)
            g_strlcpy(id_out, new_id, 64);
    }
    stored_clear(&old);
    return rc;
}

json_t *tm_store_referral_get(tm_store *s, const char *id)
{
    json_t *rows = tm__store_rows_json(
        s, tm__store_query(s,
                           REFERRAL_COLUMNS ", r.summary, v.accepted_at AS encounter_accepted_at,"
                                            " v.ended_at AS encounter_ended_at, v.state AS"
                                            " encounter_state FROM referrals r JOIN visits v ON"
                                            " v.id = r.visit_id WHERE r.id = ?1",
                           "s", id));
    json_t *row = json_incref(json_array_get(rows, 0));
    json_decref(rows);
    if (!row)
        return NULL;
    json_t *enc = json_object();
    static const char *const keys[][2] = {{"encounter_accepted_at", "accepted_at"},
                                          {"encounter_ended_at", "ended_at"},
                                          {"encounter_state", "state"}};
    for (size_t i = 0; i < TM_ARRAY_LEN(keys); i++) {
        json_object_set(enc, keys[i][1], json_object_get(row, keys[i][0]));
        json_object_del(row, keys[i][0]);
    }
    json_object_set_new(row, "encounter", enc);
    return row;
}

json_t *tm_store_referral_list(tm_store *s, const char *visit_id, const char *to_dept_id,
                               const char *from_doctor_id, const char *state, int limit)
{
    return tm__store_rows_json(s, tm__store_query(s,
                                                  REFERRAL_COLUMNS
                                                  " FROM referrals r"
                                                  " WHERE (?1 IS NULL OR r.visit_id = ?1)"
                                                  " AND (?2 IS NULL OR r.to_dept_id = ?2)"
                                                  " AND (?3 IS NULL OR r.from_doctor_id = ?3)"
                                                  " AND (?4 IS NULL OR r.state = ?4)"
                                                  " ORDER BY r.created_at DESC, r.id DESC LIMIT ?5",
                                                  "ssssi", visit_id, to_dept_id, from_doctor_id,
                                                  state, limit >= 1 && limit <= 500 ? limit : 100));
}

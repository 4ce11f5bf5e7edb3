/*
 * store_upload.c - the SQLite backend's batch-upload side of
 * include/telemed/store.h: stages a day's records for a batch delivery
 * profile (a provincial platform's nightly upload) and keeps their state.
 *
 * The facts snapshot is built by SQLite's json_object() from the visit, its
 * signed note, its rating and the regulator identifiers, so staging a day
 * is one INSERT ... SELECT per kind and costs no round trip per visit.
 */
#include "store_internal.h"
#include "telemed/common.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REG_ID(kind, col, local)                                                                   \
    "(SELECT " col " FROM regulator_ids WHERE kind = '" kind "' AND local_id = " local ")"

/* The alliance member of visit v's department when it is not the core
 * (issue 18): a platform files the visit under the member's own code. */
#define MEMBER(col)                                                                                \
    "(SELECT i." col " FROM departments d JOIN institutions i ON i.id = d.institution_id"          \
    " WHERE d.id = v.dept_id)"
#define MEMBER_FACTS "'member_org_code', " MEMBER("org_code") ", 'member_name', " MEMBER("name") ","

/* The facts of visit v (joined with its doctor doc). */
#define VISIT_SOURCE                                                                               \
    "json_object(" MEMBER_FACTS                                                                    \
    " 'visit_id', v.id, 'patient_id', v.patient_id, 'dept_id', v.dept_id,"                         \
    " 'doctor_id', v.doctor_id, 'visit_kind', v.kind, 'state', v.state,"                           \
    " 'checked_in_at', v.checkin_at, 'accepted_at', v.accepted_at, 'ended_at', v.ended_at,"        \
    " 'end_reason', v.end_reason, 'doctor_licence_no', doc.licence_no,"                            \
    " 'diagnosis_code', (SELECT diagnosis_code FROM notes n WHERE n.visit_id = v.id"               \
    "   AND n.signed = 1 ORDER BY n.updated_at DESC, n.id DESC LIMIT 1),"                          \
    " 'doctor_cert_id', " REG_ID(                                                                  \
        "doctor", "code",                                                                          \
        "v.doctor_id") ","                                                                         \
                       " 'patient_cert_type', " REG_ID(                                            \
                           "patient", "cert_type",                                                 \
                           "v.patient_id") ","                                                     \
                                           " 'patient_cert_id', " REG_ID(                          \
                                               "patient", "code",                                  \
                                               "v.patient_id") ","                                 \
                                                               " 'dept_code', " REG_ID(            \
                                                                   "dept", "code",                 \
                                                                   "v.dept_id") ")"

/* The facts of rating r of visit v. */
#define RATING_SOURCE                                                                              \
    "json_object(" MEMBER_FACTS                                                                    \
    " 'visit_id', r.visit_id, 'score', r.score, 'rated_at', r.created_at,"                         \
    " 'doctor_id', v.doctor_id, 'dept_id', v.dept_id,"                                             \
    " 'doctor_cert_id', " REG_ID(                                                                  \
        "doctor", "code", "v.doctor_id") ","                                                       \
                                         " 'dept_code', " REG_ID("dept", "code", "v.dept_id") ")"

/* Stages one kind: an INSERT ... SELECT bound to profile, day, the window,
 * now and whether unanswered visits go too. */
static int stage_kind(tm_store *s, const char *sql, const char *profile, const char *day,
                      int64_t from_ms, int64_t to_ms, int64_t now_ms, bool unanswered,
                      const char *institution, int *added)
{
    int rc = tm__store_run(s, sql, "ssIIIis", profile, day, from_ms, to_ms, now_ms, unanswered,
                           institution);
    if (rc == 0)
        *added += tm__store_changes(s);
    return rc;
}

/* Whether visit v is in the stager's scope, ?7: that member's own (a
 * department of institution ?7), or with ?7 NULL the deployment's (not a
 * department of a member routed to its own profile, store_route.c). */
#define IN_SCOPE                                                                                   \
    " AND (CASE WHEN ?7 IS NULL THEN NOT EXISTS (SELECT 1 FROM departments rd"                     \
    "   JOIN feed_routes rr ON rr.institution_id = rd.institution_id WHERE rd.id = v.dept_id)"     \
    "  ELSE EXISTS (SELECT 1 FROM departments rd WHERE rd.id = v.dept_id"                          \
    "   AND rd.institution_id = ?7) END)"

int tm_upload_stage_day(tm_store *s, const char *profile, const char *day, int64_t from_ms,
                        int64_t to_ms, bool unanswered, int64_t now_ms, int *staged)
{
    return tm_upload_stage_day_in(s, profile, NULL, day, from_ms, to_ms, unanswered, now_ms,
                                  staged);
}

int tm_upload_stage_day_in(tm_store *s, const char *profile, const char *institution,
                           const char *day, int64_t from_ms, int64_t to_ms, bool unanswered,
                           int64_t now_ms, int *staged)
{
    int added = 0;
    int rc = tm__store_begin(s);
    if (rc < 0)
        return rc;
    rc = stage_kind(s,
                    "INSERT INTO upload_records"
                    "(profile, kind, buss_id, visit_id, day, source, staged_at)"
                    " SELECT ?1, 'visit', v.id, v.id, ?2, " VISIT_SOURCE ", ?5"
                    "   FROM visits v LEFT JOIN doctors doc ON doc.id = v.doctor_id"
                    "  WHERE v.ended_at >= ?3 AND v.ended_at < ?4"
                    "    AND v.state IN ('ended','cancelled')"
                    "    AND (?6 <> 0 OR v.accepted_at IS NOT NULL)" IN_SCOPE
                    "  ORDER BY v.ended_at ON CONFLICT DO NOTHING",
                    profile, day, from_ms, to_ms, now_ms, unanswered, institution, &added);
    if (rc == 0)
        rc = stage_kind(
            s,
            "INSERT INTO upload_records"
            "(profile, kind, buss_id, visit_id, day, source, staged_at)"
            " SELECT ?1, 'rating', r.visit_id, r.visit_id, ?2, " RATING_SOURCE ", ?5"
            "   FROM ratings r JOIN visits v ON v.id = r.visit_id"
            "  WHERE r.created_at >= ?3 AND r.created_at < ?4 AND ?6 IS NOT NULL" IN_SCOPE
            "  ORDER BY r.created_at ON CONFLICT DO NOTHING",
            profile, day, from_ms, to_ms, now_ms, unanswered, institution, &added);
    if (rc == 0)
        rc = tm__store_run(s,
                           "INSERT INTO upload_days(profile, day, staged_at, records)"
                           " VALUES (?1, ?2, ?3, ?4) ON CONFLICT(profile, day)"
                           " DO UPDATE SET records = upload_days.records + excluded.records",
                           "ssIi", profile, day, now_ms, added);
    rc = tm__store_finish(s, rc);
    if (rc == 0 && staged)
        *staged = added;
    return rc;
}

/* A one-row, one-text-column query bound to profile, into out. */
static int one_text(tm_store *s, const char *sql, const char *profile, char *out, size_t outlen)
{
    tm__stmt *st = tm__store_query(s, sql, "s", profile);
    int rc = tm__store_step(s, st);
    int ret = rc < 0 ? rc : TM_ENOTFOUND;
    if (rc == 1 && !tm__col_is_null(st, 0)) {
        tm__store_col_text(st, 0, out, outlen);
        ret = 0;
    }
    if (st)
        tm__stmt_reset(st);
    return ret;
}

int tm_upload_last_day(tm_store *s, const char *profile, char day[16])
{
    return one_text(s, "SELECT max(day) FROM upload_days WHERE profile = ?1", profile, day, 16);
}

/* Whether a row of table alias A is free for holder H at time NOW: nobody
 * leases it, H does, or the lease has expired. */
#define CLAIMABLE(A, H, NOW)                                                                       \
    " AND (" A ".leased_by IS NULL OR " A ".leased_by = " H " OR " A ".lease_until <= " NOW ")"

/* Leases are on the database's clock, as the outbox's (store_outbox.c):
 * the lease's "now" for a caller whose own clock says now_ms. */
static int lease_now(tm_store *s, int64_t now_ms, int64_t *out)
{
    *out = now_ms;
    return tm__store_clock_ms(s, out);
}

static int64_t lease_until(tm_store *s, int64_t now_ms)
{
    int64_t lease = tm__store_lease_ms(s);
    return now_ms > INT64_MAX - lease ? INT64_MAX : now_ms + lease;
}

/* Leases r's records to the handle's holder in one transaction, in id
 * order, and keeps those it got (another node may have claimed some since
 * they were read). */
static int claim_records(tm_store *s, tm_upload_record *r, size_t *n, int64_t now_ms)
{
    bool *got = g_new0(bool, *n);
    int rc = tm__store_begin(s);
    for (size_t i = 0; rc == 0 && i < *n; i++) {
        rc = tm__store_run(
            s,
            "UPDATE upload_records SET leased_by = ?2, lease_until = ?3"
            " WHERE id = ?1 AND state = 'pending'" CLAIMABLE("upload_records", "?2", "?4"),
            "IsII", r[i].id, tm__store_lease_holder(s), lease_until(s, now_ms), now_ms);
        got[i] = rc == 0 && tm__store_changes(s) == 1;
    }
    rc = tm__store_finish(s, rc);
    if (rc == 0) {
        size_t kept = 0;
        for (size_t i = 0; i < *n; i++) {
            if (got[i])
                r[kept++] = r[i];
            else
                g_free(r[i].source);
        }
        *n = kept;
    }
    g_free(got);
    return rc;
}

/* One outcome for n records in one transaction: ?1 the record, ?2 at[i]
 * (at_all when at is NULL), ?3 status, ?4 the lease holder, ?5 error. */
static int mark_records(tm_store *s, const char *sql, const char *types, const int64_t *ids,
                        size_t n, const int64_t *at, int64_t at_all, int status, const char *error)
{
    if (n == 0)
        return 0;
    int rc = tm__store_begin(s);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = tm__store_run(s, sql, types, ids[i], at ? at[i] : at_all, status,
                           tm__store_lease_holder(s), error);
    return tm__store_finish(s, rc);
}

int tm_upload_next_batch(tm_store *s, const char *profile, const char *kind, int64_t now_ms,
                         int limit, tm_upload_record **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (limit <= 0)
        return tm__store_refuse(s, TM_EINVAL, "batch limit must be at least 1");
    int64_t lease_at;
    int rc = lease_now(s, now_ms, &lease_at);
    if (rc < 0)
        return rc;
    tm__stmt *st = tm__store_query(
        s,
        "SELECT u.id, u.kind, u.buss_id, u.day, u.attempts, u.source"
        "  FROM upload_records u"
        " WHERE u.profile = ?1 AND u.state = 'pending' AND u.kind = ?2"
        "   AND u.next_attempt_at <= ?3" CLAIMABLE(
            "u", "?5", "?6") "   AND (u.kind <> 'rating' OR EXISTS (SELECT 1 FROM upload_records p"
                             "        WHERE p.profile = u.profile AND p.kind = 'visit'"
                             "          AND p.buss_id = u.buss_id AND p.state = 'delivered'))"
                             " ORDER BY u.id LIMIT ?4",
        "ssIisI", profile, kind, now_ms, limit, tm__store_lease_holder(s), lease_at);
    if (!st)
        return TM_EIO;
    tm_upload_record *r = g_new0(tm_upload_record, (size_t)limit);
    size_t count = 0;
    while ((rc = tm__store_step(s, st)) == 1) {
        tm_upload_record *e = &r[count++];
        e->id = tm__col_int64(st, 0);
        tm__store_col_text(st, 1, e->kind, sizeof(e->kind));
        tm__store_col_text(st, 2, e->buss_id, sizeof(e->buss_id));
        tm__store_col_text(st, 3, e->day, sizeof(e->day));
        e->attempts = tm__col_int(st, 4);
        e->source = g_strdup(tm__col_text(st, 5));
    }
    tm__stmt_reset(st);
    if (rc == 0 && count > 0)
        rc = claim_records(s, r, &count, lease_at);
    if (rc < 0 || count == 0) {
        tm_upload_records_free(r, count);
        return rc < 0 ? rc : 0;
    }
    *out = r;
    *n = count;
    return 0;
}

void tm_upload_records_free(tm_upload_record *r, size_t n)
{
    if (!r)
        return;
    for (size_t i = 0; i < n; i++)
        g_free(r[i].source);
    g_free(r);
}

int tm_upload_next_due(tm_store *s, const char *profile, int64_t *due_ms)
{
    char buf[32];
    int rc = one_text(s,
                      "SELECT min(next_attempt_at) FROM upload_records"
                      " WHERE profile = ?1 AND state = 'pending'",
                      profile, buf, sizeof(buf));
    if (rc == 0)
        *due_ms = g_ascii_strtoll(buf, NULL, 10);
    return rc;
}

int tm_upload_mark_delivered(tm_store *s, const int64_t *ids, size_t n, int status, int64_t now_ms)
{
    return mark_records(s,
                        "UPDATE upload_records SET state = 'delivered', delivered_at = ?2,"
                        " last_status = ?3, last_error = NULL, last_response = NULL," TM__UNLEASE
                        " WHERE id = ?1 AND state = 'pending'" TM__UNLEASED_OR("?4"),
                        "IIis", ids, n, NULL, now_ms, status, NULL);
}

int tm_upload_retry(tm_store *s, const int64_t *ids, const int64_t *next_at, size_t n, int status,
                    const char *error)
{
    return mark_records(s,
                        "UPDATE upload_records SET attempts = attempts + 1,"
                        " next_attempt_at = ?2, last_status = ?3, last_error = ?5," TM__UNLEASE
                        " WHERE id = ?1 AND state = 'pending'" TM__UNLEASED_OR("?4"),
                        "IIisb", ids, n, next_at, 0, status, error);
}

int tm_upload_dead_letter(tm_store *s, int64_t id, int status, const char *error,
                          const char *response)
{
    return tm__store_run_one(s,
                             "UPDATE upload_records SET state = 'dead', attempts = attempts + 1,"
                             " last_status = ?2, last_error = ?3, last_response = ?4," TM__UNLEASE
                             " WHERE id = ?1 AND state = 'pending'" TM__UNLEASED_OR("?5"),
                             "Iibss", id, status, error, response, tm__store_lease_holder(s));
}

int tm_upload_replay(tm_store *s, const char *profile, int64_t id, int64_t now_ms)
{
    (void)now_ms;
    char state[16];
    tm__stmt *st = tm__store_query(
        s, "SELECT state FROM upload_records WHERE id = ?1 AND profile = ?2", "Is", id, profile);
    int rc = tm__store_step(s, st);
    if (rc == 1)
        tm__store_col_text(st, 0, state, sizeof(state));
    if (st)
        tm__stmt_reset(st);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return tm__store_refuse(s, TM_ENOTFOUND, "no such upload record");
    if (strcmp(state, "dead") != 0)
        return tm__store_refuse(s, TM_ECONFLICT, "not a dead letter");
    /* The facts again: the usual cause of a dead record is missing data
     * that a person has since put right. */
    return tm__store_run_one(s,
                             "UPDATE upload_records SET state = 'pending', next_attempt_at = 0,"
                             " source = CASE kind"
                             "  WHEN 'visit' THEN (SELECT " VISIT_SOURCE " FROM visits v"
                             "    LEFT JOIN doctors doc ON doc.id = v.doctor_id"
                             "    WHERE v.id = upload_records.visit_id)"
                             "  ELSE (SELECT " RATING_SOURCE " FROM ratings r"
                             "    JOIN visits v ON v.id = r.visit_id"
                             "    WHERE r.visit_id = upload_records.visit_id) END"
                             " WHERE id = ?1 AND state = 'dead'",
                             "I", id);
}

static json_t *col_json_text(tm__stmt *st, int i)
{
    const char *t = tm__col_text(st, i);
    json_t *j = t ? json_string((const char *)t) : NULL;
    return j ? j : json_null();
}

json_t *tm_upload_dead_list(tm_store *s, const char *profile, int limit)
{
    tm__stmt *st =
        tm__store_query(s,
                        "SELECT id, kind, buss_id, day, attempts, last_status, last_error,"
                        " last_response FROM upload_records"
                        " WHERE profile = ?1 AND state = 'dead' ORDER BY id DESC LIMIT ?2",
                        "si", profile, limit > 0 ? limit : 100);
    if (!st)
        return NULL;
    json_t *arr = json_array();
    int rc;
    while ((rc = tm__store_step(s, st)) == 1) {
        json_t *o = json_object();
        int status = tm__col_int(st, 5);
        json_object_set_new(o, "id", json_integer(tm__col_int64(st, 0)));
        json_object_set_new(o, "kind", col_json_text(st, 1));
        json_object_set_new(o, "buss_id", col_json_text(st, 2));
        json_object_set_new(o, "day", col_json_text(st, 3));
        json_object_set_new(o, "attempts", json_integer(tm__col_int(st, 4)));
        /* 0: refused before sending, by the profile's own checks */
        json_object_set_new(o, "last_status", status ? json_integer(status) : json_null());
        json_object_set_new(o, "last_error", col_json_text(st, 6));
        json_object_set_new(o, "last_response", col_json_text(st, 7));
        json_array_append_new(arr, o);
    }
    tm__stmt_reset(st);
    if (rc < 0) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

int tm_upload_checkin_next(tm_store *s, const char *profile, int64_t now_ms, char day[16])
{
    int rc = lease_now(s, now_ms, &now_ms);
    if (rc < 0)
        return rc;
    tm__stmt *st = tm__store_query(
        s,
        "SELECT min(day) FROM upload_days"
        " WHERE profile = ?1 AND checkin_at IS NULL" CLAIMABLE("upload_days", "?2", "?3"),
        "ssI", profile, tm__store_lease_holder(s), now_ms);
    rc = tm__store_step(s, st);
    int ret = rc < 0 ? rc : TM_ENOTFOUND;
    if (rc == 1 && !tm__col_is_null(st, 0)) {
        tm__store_col_text(st, 0, day, 16);
        ret = 0;
    }
    if (st)
        tm__stmt_reset(st);
    if (ret < 0)
        return ret;
    /* Another node may take the day between the read and this update: then
     * it changes nothing and this node has no check-in to send. */
    ret = tm__store_run_one(s,
                            "UPDATE upload_days SET leased_by = ?3, lease_until = ?4"
                            " WHERE profile = ?1 AND day = ?2 AND checkin_at IS NULL" CLAIMABLE(
                                "upload_days", "?3", "?5"),
                            "sssII", profile, day, tm__store_lease_holder(s),
                            lease_until(s, now_ms), now_ms);
    return ret;
}

int tm_upload_checkin_done(tm_store *s, const char *profile, const char *day, int64_t now_ms)
{
    return tm__store_run(s,
                         "UPDATE upload_days SET checkin_at = ?3," TM__UNLEASE
                         " WHERE profile = ?1 AND day = ?2 AND checkin_at IS NULL",
                         "ssI", profile, day, now_ms);
}

int tm_upload_counts_get(tm_store *s, const char *profile, tm_upload_counts *out)
{
    memset(out, 0, sizeof(*out));
    tm__stmt *st = tm__store_query(
        s,
        "SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = "
        "'delivered'),"
        " count(*) FILTER (WHERE state = 'dead'),"
        " (SELECT count(*) FROM upload_days WHERE profile = ?1),"
        " (SELECT count(checkin_at) FROM upload_days WHERE profile = ?1),"
        " count(*) FILTER (WHERE state = 'pending' AND kind = 'rating' AND NOT EXISTS ("
        "   SELECT 1 FROM upload_records p WHERE p.profile = ?1 AND p.kind = 'visit'"
        "    AND p.buss_id = upload_records.buss_id AND p.state = 'delivered'))"
        " FROM upload_records WHERE profile = ?1",
        "s", profile);
    int rc = tm__store_step(s, st);
    if (rc == 1) {
        out->pending = tm__col_int64(st, 0);
        out->delivered = tm__col_int64(st, 1);
        out->dead = tm__col_int64(st, 2);
        out->days = tm__col_int64(st, 3);
        out->checkins = tm__col_int64(st, 4);
        out->held = tm__col_int64(st, 5);
    }
    if (st)
        tm__stmt_reset(st);
    return rc == 1 ? 0 : rc < 0 ? rc : TM_EIO;
}

/* Dead records of profile by day and reason, onto the report's days. */
static int add_dead_reasons(tm_store *s, const char *profile, json_t *days)
{
    tm__stmt *st = tm__store_query(s,
                                   "SELECT day, coalesce(last_error, 'unknown'), count(*)"
                                   "  FROM upload_records WHERE profile = ?1 AND state = 'dead'"
                                   " GROUP BY day, last_error",
                                   "s", profile);
    int rc;
    while ((rc = tm__store_step(s, st)) == 1) {
        const char *day = tm__col_text(st, 0);
        size_t i;
        json_t *d;
        json_array_foreach(days, i, d)
        {
            if (strcmp(json_string_value(json_object_get(d, "day")), day) == 0)
                json_object_set_new(json_object_get(d, "dead_by_reason"), tm__col_text(st, 1),
                                    json_integer(tm__col_int64(st, 2)));
        }
    }
    if (st)
        tm__stmt_reset(st);
    return rc;
}

json_t *tm_upload_day_report(tm_store *s, const char *profile, int limit)
{
    json_t *days = tm__store_rows_json(
        s, tm__store_query(
               s,
               "SELECT d.day, d.staged_at AS staged_ms, d.checkin_at AS checkin_ms,"
               " count(*) FILTER (WHERE r.kind = 'visit') AS visits,"
               " count(*) FILTER (WHERE r.kind = 'rating') AS ratings,"
               " count(*) FILTER (WHERE r.state = 'delivered') AS delivered,"
               " count(*) FILTER (WHERE r.state = 'pending') AS pending,"
               " count(*) FILTER (WHERE r.state = 'dead') AS dead,"
               " max(r.delivered_at) AS last_delivered_ms"
               " FROM upload_days d LEFT JOIN upload_records r"
               "   ON r.profile = d.profile AND r.day = d.day"
               " WHERE d.profile = ?1 GROUP BY d.profile, d.day ORDER BY d.day DESC LIMIT ?2",
               "si", profile, limit > 0 ? limit : 30));
    if (!days)
        return NULL;
    size_t i;
    json_t *d;
    json_array_foreach(days, i, d) json_object_set_new(d, "dead_by_reason", json_object());
    if (add_dead_reasons(s, profile, days) < 0) {
        json_decref(days);
        return NULL;
    }
    return days;
}

int tm_store_regulator_id_put(tm_store *s, const char *kind, const char *local_id,
                              const char *cert_type, const char *code)
{
    if (!kind || !local_id || !*local_id || !code || !*code)
        return tm__store_refuse(s, TM_EINVAL, "regulator id needs a kind, an id and a code");
    int rc = tm__store_run(s,
                           "INSERT INTO regulator_ids(kind, local_id, cert_type, code, updated_at)"
                           " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(kind, local_id) DO UPDATE SET"
                           " cert_type = excluded.cert_type, code = excluded.code,"
                           " updated_at = excluded.updated_at",
                           "ssssI", kind, local_id, cert_type, code, tm_now_ms());
    if (rc == TM_ECONFLICT) /* the kind is outside the CHECK list */
        return tm__store_refuse(s, TM_EINVAL, "regulator id kind must be doctor, patient or dept");
    return rc;
}

/*
 * store_upload.c - the SQLite side of include/telemed/store_upload.h: stages
 * a day's records for a batch upload profile and keeps their delivery state.
 *
 * The facts snapshot is built by SQLite's json_object() from the visit, its
 * signed note, its rating and the regulator identifiers, so staging a day
 * is one INSERT ... SELECT per kind and costs no round trip per visit.
 */
#include "store_internal.h"
#include "telemed/common.h"
#include "telemed/store_upload.h"

#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REG_ID(kind, col, local)                                                                   \
    "(SELECT " col " FROM regulator_ids WHERE kind = '" kind "' AND local_id = " local ")"

/* The facts of visit v (joined with its doctor doc). */
#define VISIT_SOURCE                                                                               \
    "json_object('visit_id', v.id, 'patient_id', v.patient_id, 'dept_id', v.dept_id,"              \
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
    "json_object('visit_id', r.visit_id, 'score', r.score, 'rated_at', r.created_at,"              \
    " 'doctor_id', v.doctor_id, 'dept_id', v.dept_id,"                                             \
    " 'doctor_cert_id', " REG_ID(                                                                  \
        "doctor", "code", "v.doctor_id") ","                                                       \
                                         " 'dept_code', " REG_ID("dept", "code", "v.dept_id") ")"

static int exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : TM_EIO;
}

static sqlite3_stmt *prepare(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return NULL;
    return st;
}

/* Runs st to completion and finalizes it; adds its changes to *changes. */
static int run_stmt(sqlite3 *db, sqlite3_stmt *st, int *changes)
{
    if (!st)
        return TM_EIO;
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return TM_EIO;
    if (changes)
        *changes += sqlite3_changes(db);
    return 0;
}

static sqlite3_stmt *bind_stage(sqlite3_stmt *st, const char *profile, const char *day,
                                int64_t from_ms, int64_t to_ms, int64_t now_ms, bool unanswered)
{
    if (!st)
        return NULL;
    sqlite3_bind_int(st, 6, unanswered);
    sqlite3_bind_text(st, 1, profile, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, day, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, from_ms);
    sqlite3_bind_int64(st, 4, to_ms);
    sqlite3_bind_int64(st, 5, now_ms);
    return st;
}

int tm_upload_stage_day(tm_store *s, const char *profile, const char *day, int64_t from_ms,
                        int64_t to_ms, bool unanswered, int64_t now_ms, int *staged)
{
    sqlite3 *db = tm__store_db(s);
    int added = 0;
    if (exec(db, "BEGIN IMMEDIATE") < 0)
        return TM_EIO;
    int rc = run_stmt(
        db,
        bind_stage(prepare(db, "INSERT OR IGNORE INTO upload_records"
                               "(profile, kind, buss_id, visit_id, day, source, staged_at)"
                               " SELECT ?1, 'visit', v.id, v.id, ?2, " VISIT_SOURCE ", ?5"
                               "   FROM visits v LEFT JOIN doctors doc ON doc.id = v.doctor_id"
                               "  WHERE v.ended_at >= ?3 AND v.ended_at < ?4"
                               "    AND v.state IN ('ended','cancelled')"
                               "    AND (?6 OR v.accepted_at IS NOT NULL)"
                               "  ORDER BY v.ended_at"),
                   profile, day, from_ms, to_ms, now_ms, unanswered),
        &added);
    if (rc == 0)
        rc = run_stmt(
            db,
            bind_stage(prepare(db,
                               "INSERT OR IGNORE INTO upload_records"
                               "(profile, kind, buss_id, visit_id, day, source,"
                               " staged_at)"
                               " SELECT ?1, 'rating', r.visit_id, r.visit_id, ?2, " RATING_SOURCE
                               ", ?5"
                               "   FROM ratings r JOIN visits v ON v.id = r.visit_id"
                               "  WHERE r.created_at >= ?3 AND r.created_at < ?4"
                               "    AND ?6 IS NOT NULL"
                               "  ORDER BY r.created_at"),
                       profile, day, from_ms, to_ms, now_ms, unanswered),
            &added);
    if (rc == 0) {
        sqlite3_stmt *st = prepare(db, "INSERT INTO upload_days(profile, day, staged_at, records)"
                                       " VALUES (?1, ?2, ?3, ?4) ON CONFLICT(profile, day)"
                                       " DO UPDATE SET records = records + excluded.records");
        if (st) {
            sqlite3_bind_text(st, 1, profile, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, day, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 3, now_ms);
            sqlite3_bind_int(st, 4, added);
        }
        rc = run_stmt(db, st, NULL);
    }
    if (rc == 0)
        rc = exec(db, "COMMIT");
    if (rc < 0) {
        exec(db, "ROLLBACK");
        return rc;
    }
    if (staged)
        *staged = added;
    return 0;
}

/* Runs a one-row, one-text-column query bound to profile into out. */
static int one_text(sqlite3 *db, const char *sql, const char *profile, char *out, size_t outlen)
{
    sqlite3_stmt *st = prepare(db, sql);
    if (!st)
        return TM_EIO;
    sqlite3_bind_text(st, 1, profile, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    int ret = TM_ENOTFOUND;
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        snprintf(out, outlen, "%s", (const char *)sqlite3_column_text(st, 0));
        ret = 0;
    } else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        ret = TM_EIO;
    }
    sqlite3_finalize(st);
    return ret;
}

int tm_upload_last_day(tm_store *s, const char *profile, char day[16])
{
    return one_text(tm__store_db(s), "SELECT max(day) FROM upload_days WHERE profile = ?1", profile,
                    day, 16);
}

int tm_upload_next_batch(tm_store *s, const char *profile, const char *kind, int64_t now_ms,
                         int limit, tm_upload_record **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (limit <= 0)
        return TM_EINVAL;
    sqlite3 *db = tm__store_db(s);
    sqlite3_stmt *st =
        prepare(db, "SELECT u.id, u.kind, u.buss_id, u.day, u.attempts, u.source"
                    "  FROM upload_records u"
                    " WHERE u.profile = ?1 AND u.state = 'pending' AND u.kind = ?2"
                    "   AND u.next_attempt_at <= ?3"
                    "   AND (u.kind <> 'rating' OR EXISTS (SELECT 1 FROM upload_records p"
                    "        WHERE p.profile = u.profile AND p.kind = 'visit'"
                    "          AND p.buss_id = u.buss_id AND p.state = 'delivered'))"
                    " ORDER BY u.id LIMIT ?4");
    if (!st)
        return TM_EIO;
    sqlite3_bind_text(st, 1, profile, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now_ms);
    sqlite3_bind_int(st, 4, limit);
    tm_upload_record *r = g_new0(tm_upload_record, (size_t)limit);
    size_t count = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        tm_upload_record *e = &r[count++];
        e->id = sqlite3_column_int64(st, 0);
        snprintf(e->kind, sizeof(e->kind), "%s", (const char *)sqlite3_column_text(st, 1));
        snprintf(e->buss_id, sizeof(e->buss_id), "%s", (const char *)sqlite3_column_text(st, 2));
        snprintf(e->day, sizeof(e->day), "%s", (const char *)sqlite3_column_text(st, 3));
        e->attempts = sqlite3_column_int(st, 4);
        e->source = g_strdup((const char *)sqlite3_column_text(st, 5));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE || count == 0) {
        tm_upload_records_free(r, count);
        return rc == SQLITE_DONE ? 0 : TM_EIO;
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
    int rc = one_text(tm__store_db(s),
                      "SELECT min(next_attempt_at) FROM upload_records"
                      " WHERE profile = ?1 AND state = 'pending'",
                      profile, buf, sizeof(buf));
    if (rc == 0)
        *due_ms = g_ascii_strtoll(buf, NULL, 10);
    return rc;
}

/* Runs sql once per id (bound as ?1, with bind() adding the rest) in one transaction. */
static int each_id(tm_store *s, const char *sql, const int64_t *ids, size_t n,
                   void (*bind)(sqlite3_stmt *st, size_t i, const void *ctx), const void *ctx)
{
    if (n == 0)
        return 0;
    sqlite3 *db = tm__store_db(s);
    sqlite3_stmt *st = prepare(db, sql);
    if (!st)
        return TM_EIO;
    int ret = exec(db, "BEGIN IMMEDIATE");
    for (size_t i = 0; ret == 0 && i < n; i++) {
        sqlite3_bind_int64(st, 1, ids[i]);
        bind(st, i, ctx);
        if (sqlite3_step(st) != SQLITE_DONE)
            ret = TM_EIO;
        sqlite3_reset(st);
    }
    if (ret == 0)
        ret = exec(db, "COMMIT");
    if (ret < 0)
        exec(db, "ROLLBACK");
    sqlite3_finalize(st);
    return ret;
}

typedef struct outcome {
    const int64_t *next_at;
    int64_t now_ms;
    int status;
    const char *error;
} outcome;

static void bind_delivered(sqlite3_stmt *st, size_t i, const void *ctx)
{
    (void)i;
    const outcome *o = ctx;
    sqlite3_bind_int64(st, 2, o->now_ms);
    sqlite3_bind_int(st, 3, o->status);
}

int tm_upload_mark_delivered(tm_store *s, const int64_t *ids, size_t n, int status, int64_t now_ms)
{
    outcome o = {NULL, now_ms, status, NULL};
    return each_id(s,
                   "UPDATE upload_records SET state = 'delivered', delivered_at = ?2,"
                   " last_status = ?3, last_error = NULL, last_response = NULL"
                   " WHERE id = ?1 AND state = 'pending'",
                   ids, n, bind_delivered, &o);
}

static void bind_retry(sqlite3_stmt *st, size_t i, const void *ctx)
{
    const outcome *o = ctx;
    sqlite3_bind_int64(st, 2, o->next_at[i]);
    if (o->status)
        sqlite3_bind_int(st, 3, o->status);
    else
        sqlite3_bind_null(st, 3);
    sqlite3_bind_text(st, 4, o->error ? o->error : "", -1, SQLITE_STATIC);
}

int tm_upload_retry(tm_store *s, const int64_t *ids, const int64_t *next_at, size_t n, int status,
                    const char *error)
{
    outcome o = {next_at, 0, status, error};
    return each_id(s,
                   "UPDATE upload_records SET attempts = attempts + 1, next_attempt_at = ?2,"
                   " last_status = ?3, last_error = ?4 WHERE id = ?1 AND state = 'pending'",
                   ids, n, bind_retry, &o);
}

int tm_upload_dead_letter(tm_store *s, int64_t id, int status, const char *error,
                          const char *response)
{
    sqlite3 *db = tm__store_db(s);
    sqlite3_stmt *st = prepare(db, "UPDATE upload_records SET state = 'dead',"
                                   " attempts = attempts + 1, last_status = ?2, last_error = ?3,"
                                   " last_response = ?4 WHERE id = ?1 AND state = 'pending'");
    if (!st)
        return TM_EIO;
    sqlite3_bind_int64(st, 1, id);
    if (status)
        sqlite3_bind_int(st, 2, status);
    else
        sqlite3_bind_null(st, 2);
    sqlite3_bind_text(st, 3, error ? error : "", -1, SQLITE_STATIC);
    if (response)
        sqlite3_bind_text(st, 4, response, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 4);
    int changed = 0;
    int rc = run_stmt(db, st, &changed);
    if (rc < 0)
        return rc;
    return changed == 1 ? 0 : TM_ENOTFOUND;
}

int tm_upload_replay(tm_store *s, const char *profile, int64_t id, int64_t now_ms)
{
    (void)now_ms;
    sqlite3 *db = tm__store_db(s);
    char state[16];
    sqlite3_stmt *st =
        prepare(db, "SELECT state FROM upload_records WHERE id = ?1 AND profile = ?2");
    if (!st)
        return TM_EIO;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, profile, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        snprintf(state, sizeof(state), "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        return TM_ENOTFOUND;
    if (rc != SQLITE_ROW)
        return TM_EIO;
    if (strcmp(state, "dead") != 0)
        return TM_ECONFLICT;
    /* The facts again: the usual cause of a dead record is missing data
     * that a person has since put right. */
    st = prepare(db, "UPDATE upload_records SET state = 'pending', next_attempt_at = 0,"
                     " source = CASE kind"
                     "  WHEN 'visit' THEN (SELECT " VISIT_SOURCE " FROM visits v"
                     "    LEFT JOIN doctors doc ON doc.id = v.doctor_id"
                     "    WHERE v.id = upload_records.visit_id)"
                     "  ELSE (SELECT " RATING_SOURCE " FROM ratings r"
                     "    JOIN visits v ON v.id = r.visit_id"
                     "    WHERE r.visit_id = upload_records.visit_id) END"
                     " WHERE id = ?1 AND state = 'dead'");
    if (st)
        sqlite3_bind_int64(st, 1, id);
    return run_stmt(db, st, NULL);
}

static json_t *col_json_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    json_t *j = t ? json_string((const char *)t) : NULL;
    return j ? j : json_null();
}

json_t *tm_upload_dead_list(tm_store *s, const char *profile, int limit)
{
    sqlite3_stmt *st = prepare(tm__store_db(s),
                               "SELECT id, kind, buss_id, day, attempts, last_status, last_error,"
                               " last_response FROM upload_records"
                               " WHERE profile = ?1 AND state = 'dead' ORDER BY id DESC LIMIT ?2");
    if (!st)
        return NULL;
    sqlite3_bind_text(st, 1, profile, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, limit > 0 ? limit : 100);
    json_t *arr = json_array();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *o = json_object();
        json_object_set_new(o, "id", json_integer(sqlite3_column_int64(st, 0)));
        json_object_set_new(o, "kind", col_json_text(st, 1));
        json_object_set_new(o, "buss_id", col_json_text(st, 2));
        json_object_set_new(o, "day", col_json_text(st, 3));
        json_object_set_new(o, "attempts", json_integer(sqlite3_column_int(st, 4)));
        json_object_set_new(o, "last_status",
                            sqlite3_column_type(st, 5) == SQLITE_NULL
                                ? json_null()
                                : json_integer(sqlite3_column_int(st, 5)));
        json_object_set_new(o, "last_error", col_json_text(st, 6));
        json_object_set_new(o, "last_response", col_json_text(st, 7));
        json_array_append_new(arr, o);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

int tm_upload_checkin_next(tm_store *s, const char *profile, char day[16])
{
    return one_text(tm__store_db(s),
                    "SELECT min(day) FROM upload_days WHERE profile = ?1 AND checkin_at IS NULL",
                    profile, day, 16);
}

int tm_upload_checkin_done(tm_store *s, const char *profile, const char *day, int64_t now_ms)
{
    sqlite3 *db = tm__store_db(s);
    sqlite3_stmt *st = prepare(db, "UPDATE upload_days SET checkin_at = ?3"
                                   " WHERE profile = ?1 AND day = ?2 AND checkin_at IS NULL");
    if (st) {
        sqlite3_bind_text(st, 1, profile, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, day, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, now_ms);
    }
    return run_stmt(db, st, NULL);
}

int tm_upload_counts_get(tm_store *s, const char *profile, tm_upload_counts *out)
{
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *st =
        prepare(tm__store_db(s),
                "SELECT coalesce(sum(state = 'pending'), 0), coalesce(sum(state = 'delivered'), 0),"
                " coalesce(sum(state = 'dead'), 0),"
                " (SELECT count(*) FROM upload_days WHERE profile = ?1),"
                " (SELECT count(checkin_at) FROM upload_days WHERE profile = ?1),"
                " coalesce(sum(state = 'pending' AND kind = 'rating' AND NOT EXISTS ("
                "   SELECT 1 FROM upload_records p WHERE p.profile = ?1 AND p.kind = 'visit'"
                "    AND p.buss_id = upload_records.buss_id AND p.state = 'delivered')), 0)"
                " FROM upload_records WHERE profile = ?1");
    if (!st)
        return TM_EIO;
    sqlite3_bind_text(st, 1, profile, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        out->pending = sqlite3_column_int64(st, 0);
        out->delivered = sqlite3_column_int64(st, 1);
        out->dead = sqlite3_column_int64(st, 2);
        out->days = sqlite3_column_int64(st, 3);
        out->checkins = sqlite3_column_int64(st, 4);
        out->held = sqlite3_column_int64(st, 5);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : TM_EIO;
}

int tm_store_regulator_id_put(tm_store *s, const char *kind, const char *local_id,
                              const char *cert_type, const char *code)
{
    if (!kind || !local_id || !*local_id || !code || !*code)
        return TM_EINVAL;
    sqlite3 *db = tm__store_db(s);
    sqlite3_stmt *st = prepare(db, "INSERT INTO regulator_ids(kind, local_id, cert_type, code,"
                                   " updated_at) VALUES (?1, ?2, ?3, ?4, ?5)"
                                   " ON CONFLICT(kind, local_id) DO UPDATE SET"
                                   " cert_type = excluded.cert_type, code = excluded.code,"
                                   " updated_at = excluded.updated_at");
    if (!st)
        return TM_EIO;
    sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, local_id, -1, SQLITE_STATIC);
    if (cert_type)
        sqlite3_bind_text(st, 3, cert_type, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 3);
    sqlite3_bind_text(st, 4, code, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, tm_now_ms());
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_CONSTRAINT || (rc & 0xff) == SQLITE_CONSTRAINT)
        return TM_EINVAL; /* kind outside the CHECK list */
    return rc == SQLITE_DONE ? 0 : TM_EIO;
}

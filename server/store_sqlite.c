/*
 * store_sqlite.c - the SQLite backend of include/telemed/store.h.
 *
 * One connection, WAL mode, owned by the control loop (the only writer).
 * Statements are prepared once and cached by their SQL text. Every visit
 * state change runs in one transaction with its outbox row, so the
 * regulator feed can never miss a step that happened.
 */
#include "store_internal.h"
#include "store_schema.h"
#include "telemed/common.h"

#include <glib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tm_store {
    sqlite3 *db;
    GHashTable *stmts; /* const char *sql (static) -> sqlite3_stmt * */
    char hospital[64];
    char errmsg[256];
};

sqlite3 *tm__store_db(tm_store *s)
{
    return s->db;
}

const char *tm__store_hospital(tm_store *s)
{
    return s->hospital;
}

const char *tm_store_errmsg(tm_store *s)
{
    return s->errmsg;
}

static int fail_db(tm_store *s, int rc)
{
    snprintf(s->errmsg, sizeof(s->errmsg), "%s", sqlite3_errmsg(s->db));
    if (rc == SQLITE_CONSTRAINT || (rc & 0xff) == SQLITE_CONSTRAINT)
        return TM_ECONFLICT;
    return TM_EIO;
}

/* Returns the cached statement for sql, reset and with bindings cleared.
 * sql is the key by address: pass a string literal. */
static sqlite3_stmt *stmt(tm_store *s, const char *sql)
{
    sqlite3_stmt *st = g_hash_table_lookup(s->stmts, sql);
    if (st) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return st;
    }
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        snprintf(s->errmsg, sizeof(s->errmsg), "prepare: %s", sqlite3_errmsg(s->db));
        return NULL;
    }
    g_hash_table_insert(s->stmts, (gpointer)sql, st);
    return st;
}

sqlite3_stmt *tm__store_stmt(tm_store *s, const char *sql)
{
    return stmt(s, sql);
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v && *v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

/* Binds the arguments in order, one letter of types each:
 *   s  text; NULL or "" bind NULL (ids, optional fields)
 *   b  text that may be empty (bodies typed by people)
 *   i  int
 *   I  int64
 *   t  time in epoch ms; 0 binds NULL ("not yet", "no filter") */
static void bind_args(sqlite3_stmt *st, const char *types, va_list ap)
{
    for (int i = 1; *types; types++, i++) {
        switch (*types) {
        case 's':
            bind_text(st, i, va_arg(ap, const char *));
            break;
        case 'b':
            sqlite3_bind_text(st, i, va_arg(ap, const char *), -1, SQLITE_TRANSIENT);
            break;
        case 'i':
            sqlite3_bind_int(st, i, va_arg(ap, int));
            break;
        case 'I':
            sqlite3_bind_int64(st, i, va_arg(ap, int64_t));
            break;
        case 't': {
            int64_t v = va_arg(ap, int64_t);
            if (v)
                sqlite3_bind_int64(st, i, v);
            else
                sqlite3_bind_null(st, i);
            break;
        }
        default:
            TM_ASSERT(!"unknown bind type");
        }
    }
}

static sqlite3_stmt *vquery(tm_store *s, const char *sql, const char *types, va_list ap)
{
    sqlite3_stmt *st = stmt(s, sql);
    if (st)
        bind_args(st, types, ap);
    return st;
}

/* The cached statement for sql with its arguments bound, ready to step;
 * NULL if it cannot be prepared. */
static sqlite3_stmt *query(tm_store *s, const char *sql, const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    sqlite3_stmt *st = vquery(s, sql, types, ap);
    va_end(ap);
    return st;
}

/* Runs a statement that returns no rows. */
static int exec_step(tm_store *s, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return fail_db(s, rc);
    return 0;
}

/* Prepares (once), binds and runs a statement that returns no rows. */
static int run(tm_store *s, const char *sql, const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    sqlite3_stmt *st = vquery(s, sql, types, ap);
    va_end(ap);
    return st ? exec_step(s, st) : TM_EIO;
}

/* Like run(), for statements that change exactly the rows named: 0 rows
 * changed is TM_ENOTFOUND. */
static int run_one(tm_store *s, const char *sql, const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    sqlite3_stmt *st = vquery(s, sql, types, ap);
    va_end(ap);
    int rc = st ? exec_step(s, st) : TM_EIO;
    if (rc == 0 && sqlite3_changes(s->db) == 0)
        return TM_ENOTFOUND;
    return rc;
}

static void copy_col(sqlite3_stmt *st, int i, char *out, size_t outlen)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(out, outlen, "%s", t ? (const char *)t : "");
}

static int exec_sql(tm_store *s, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(s->errmsg, sizeof(s->errmsg), "%s", msg ? msg : "exec failed");
        sqlite3_free(msg);
        return TM_EIO;
    }
    return 0;
}

static int begin(tm_store *s)
{
    return run(s, "BEGIN IMMEDIATE", "");
}

static int commit(tm_store *s)
{
    return run(s, "COMMIT", "");
}

static void rollback(tm_store *s)
{
    run(s, "ROLLBACK", "");
}

/* Ends a transaction: commits when rc is 0, rolls back otherwise. */
static int finish(tm_store *s, int rc)
{
    if (rc == 0 && (rc = commit(s)) == 0)
        return 0;
    rollback(s);
    return rc;
}

static void make_id(const char *prefix, char *out, size_t outlen)
{
    char uuid[37];
    tm_uuid4(uuid);
    snprintf(out, outlen, "%s-%s", prefix, uuid);
}

/* ---- open, migrate ------------------------------------------------- */

static int migrate(tm_store *s)
{
    sqlite3_stmt *st = NULL;
    int version = 0;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return fail_db(s, SQLITE_ERROR);
    if (sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);

    int target = (int)TM_ARRAY_LEN(tm_store_migrations);
    if (version > target) {
        snprintf(s->errmsg, sizeof(s->errmsg),
                 "database schema version %d is newer than this server (%d)", version, target);
        return TM_EUNSUPPORTED;
    }
    for (int v = version; v < target; v++) {
        char pragma[64];
        snprintf(pragma, sizeof(pragma), "PRAGMA user_version=%d;", v + 1);
        if (exec_sql(s, "BEGIN IMMEDIATE") < 0)
            return TM_EIO;
        if (exec_sql(s, tm_store_migrations[v]) < 0 || exec_sql(s, pragma) < 0) {
            char keep[256];
            memcpy(keep, s->errmsg, sizeof(keep));
            exec_sql(s, "ROLLBACK");
            snprintf(s->errmsg, sizeof(s->errmsg), "migration %d: %.200s", v + 1, keep);
            return TM_EIO;
        }
        if (exec_sql(s, "COMMIT") < 0)
            return TM_EIO;
    }
    return 0;
}

static void finalize_stmt(gpointer p)
{
    sqlite3_finalize(p);
}

tm_store *tm_store_open(const char *path, const char *hospital_id, char **err)
{
    tm_store *s = calloc(1, sizeof(*s));
    if (!s) {
        *err = strdup("out of memory");
        return NULL;
    }
    snprintf(s->hospital, sizeof(s->hospital), "%s", hospital_id ? hospital_id : "");
    s->stmts = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, finalize_stmt);
    int rc = sqlite3_open_v2(path, &s->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(s->errmsg, sizeof(s->errmsg), "open %s: %s", path,
                 s->db ? sqlite3_errmsg(s->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(s->db, 5000);
    sqlite3_extended_result_codes(s->db, 1);
    /* WAL: readers (reports, exports) never block the control loop's writes;
     * synchronous=NORMAL in WAL is durable across process crashes (kill -9),
     * and FULL makes it durable across power loss too: a visit step that the
     * regulator must see is worth the fsync. */
    if (exec_sql(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;") < 0)
        goto fail;
    if (migrate(s) < 0)
        goto fail;
    return s;
fail:
    *err = strdup(s->errmsg[0] ? s->errmsg : "cannot open store");
    tm_store_free(s);
    return NULL;
}

void tm_store_free(tm_store *s)
{
    if (!s)
        return;
    if (s->stmts)
        g_hash_table_destroy(s->stmts);
    if (s->db)
        sqlite3_close(s->db);
    free(s);
}

int tm_store_schema_version(tm_store *s)
{
    sqlite3_stmt *st = stmt(s, "PRAGMA user_version");
    int v = -1;
    if (st && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    if (st)
        sqlite3_reset(st);
    return v;
}

/* ---- generic row -> JSON ------------------------------------------- */

static bool is_flag_column(const char *name)
{
    static const char *const flags[] = {"urgent", "active", "signed", "encrypted",
                                        "recording_consent"};
    for (size_t i = 0; i < TM_ARRAY_LEN(flags); i++)
        if (strcmp(name, flags[i]) == 0)
            return true;
    return false;
}

/* Converts the current row into an object keyed by column names. Columns
 * named "at" or ending in "_at" hold epoch ms and come out as RFC 3339
 * text; flag columns come out as booleans. */
static json_t *row_to_json(sqlite3_stmt *st)
{
    json_t *o = json_object();
    int n = sqlite3_column_count(st);
    for (int i = 0; i < n; i++) {
        const char *name = sqlite3_column_name(st, i);
        switch (sqlite3_column_type(st, i)) {
        case SQLITE_INTEGER: {
            int64_t v = sqlite3_column_int64(st, i);
            size_t len = strlen(name);
            if (is_flag_column(name)) {
                json_object_set_new(o, name, json_boolean(v != 0));
            } else if ((len > 3 && strcmp(name + len - 3, "_at") == 0) || strcmp(name, "at") == 0) {
                char ts[40];
                json_object_set_new(o, name, json_string(tm_rfc3339(v, ts, sizeof(ts))));
            } else {
                json_object_set_new(o, name, json_integer(v));
            }
            break;
        }
        case SQLITE_FLOAT:
            json_object_set_new(o, name, json_real(sqlite3_column_double(st, i)));
            break;
        case SQLITE_TEXT:
            json_object_set_new(o, name, json_string((const char *)sqlite3_column_text(st, i)));
            break;
        default:
            json_object_set_new(o, name, json_null());
        }
    }
    return o;
}

/* Steps st to the end, collecting rows into a new array. */
static json_t *rows_to_json(sqlite3_stmt *st)
{
    json_t *a = json_array();
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(a, row_to_json(st));
    sqlite3_reset(st);
    return a;
}

/* ---- departments, doctors, shifts ---------------------------------- */

int tm_store_dept_put(tm_store *s, const char *id, const char *name)
{
    return run(s, "INSERT INTO departments(id, name, created_at) VALUES(?1, ?2, ?3)"
                  " ON CONFLICT(id) DO UPDATE SET name = excluded.name",
               "ssI", id, name, tm_now_ms());
}

bool tm_store_dept_exists(tm_store *s, const char *id)
{
    sqlite3_stmt *st = query(s, "SELECT 1 FROM departments WHERE id = ?1", "s", id);
    if (!st)
        return false;
    bool found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_reset(st);
    return found;
}

json_t *tm_store_dept_list(tm_store *s)
{
    sqlite3_stmt *st = query(s, "SELECT id, name, created_at FROM departments ORDER BY id", "");
    return st ? rows_to_json(st) : NULL;
}

int tm_store_dept_delete(tm_store *s, const char *id)
{
    return run_one(s, "DELETE FROM departments WHERE id = ?1", "s", id);
}

int tm_store_doctor_put(tm_store *s, const char *id, const char *name, const char *dept_id,
                        const char *licence_no, const char *title)
{
    int rc = run(s, "INSERT INTO doctors(id, name, dept_id, licence_no, title, created_at)"
                    " VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(id) DO UPDATE SET"
                    " name = excluded.name, dept_id = excluded.dept_id,"
                    " licence_no = excluded.licence_no, title = excluded.title",
                 "sssssI", id, name, dept_id, licence_no, title, tm_now_ms());
    return rc == TM_ECONFLICT ? TM_EINVAL : rc; /* unknown department */
}

int tm_store_doctor_get(tm_store *s, const char *id, tm_doctor_info *out)
{
    sqlite3_stmt *st = query(s, "SELECT id, dept_id, licence_no, active FROM doctors WHERE id = ?1",
                             "s", id);
    if (!st)
        return TM_EIO;
    int rc = TM_ENOTFOUND;
    if (sqlite3_step(st) == SQLITE_ROW) {
        copy_col(st, 0, out->id, sizeof(out->id));
        copy_col(st, 1, out->dept_id, sizeof(out->dept_id));
        copy_col(st, 2, out->licence_no, sizeof(out->licence_no));
        out->active = sqlite3_column_int(st, 3) != 0;
        rc = 0;
    }
    sqlite3_reset(st);
    return rc;
}

json_t *tm_store_doctor_list(tm_store *s, const char *dept_id)
{
    sqlite3_stmt *st = query(s, "SELECT id, name, dept_id, licence_no, title, active, created_at"
                                " FROM doctors WHERE ?1 IS NULL OR dept_id = ?1 ORDER BY id",
                             "s", dept_id);
    return st ? rows_to_json(st) : NULL;
}

int tm_store_shift_add(tm_store *s, const char *doctor_id, const char *dept_id, int64_t start_ms,
                       int64_t end_ms, int capacity, char *id_out)
{
    if (end_ms <= start_ms || capacity < 1)
        return TM_EINVAL;
    char id[64];
    make_id("shift", id, sizeof(id));
    int rc = run(s, "INSERT INTO shifts(id, doctor_id, dept_id, start_at, end_at, capacity,"
                    " created_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                 "sssIIiI", id, doctor_id, dept_id, start_ms, end_ms, capacity, tm_now_ms());
    if (rc == TM_ECONFLICT)
        return TM_EINVAL; /* unknown doctor or department */
    if (rc == 0 && id_out)
        strcpy(id_out, id);
    return rc;
}

int tm_store_shift_delete(tm_store *s, const char *id)
{
    return run_one(s, "DELETE FROM shifts WHERE id = ?1", "s", id);
}

json_t *tm_store_shift_list(tm_store *s, const char *doctor_id, const char *dept_id,
                            int64_t from_ms, int64_t to_ms)
{
    sqlite3_stmt *st =
        query(s, "SELECT id, doctor_id, dept_id, start_at, end_at, capacity FROM shifts"
                 " WHERE (?1 IS NULL OR doctor_id = ?1) AND (?2 IS NULL OR dept_id = ?2)"
                 " AND (?3 IS NULL OR end_at > ?3) AND (?4 IS NULL OR start_at < ?4)"
                 " ORDER BY start_at, doctor_id",
              "sstt", doctor_id, dept_id, from_ms, to_ms);
    return st ? rows_to_json(st) : NULL;
}

int tm_store_shift_current(tm_store *s, const char *doctor_id, const char *dept_id,
                           int64_t now_ms, char *dept_out, int *capacity, int64_t *end_ms)
{
    sqlite3_stmt *st =
        query(s, "SELECT dept_id, capacity, end_at FROM shifts WHERE doctor_id = ?1"
                 " AND (?2 IS NULL OR dept_id = ?2) AND start_at <= ?3 AND end_at > ?3"
                 " ORDER BY end_at DESC LIMIT 1",
              "ssI", doctor_id, dept_id, now_ms);
    if (!st)
        return TM_EIO;
    int rc = TM_ENOTFOUND;
    if (sqlite3_step(st) == SQLITE_ROW) {
        if (dept_out)
            copy_col(st, 0, dept_out, 64);
        if (capacity)
            *capacity = sqlite3_column_int(st, 1);
        if (end_ms)
            *end_ms = sqlite3_column_int64(st, 2);
        rc = 0;
    }
    sqlite3_reset(st);
    return rc;
}

/* ---- appointments -------------------------------------------------- */

static bool kind_valid(const char *kind)
{
    return kind && (strcmp(kind, "follow_up") == 0 || strcmp(kind, "first") == 0);
}

int tm_store_appt_create(tm_store *s, const tm_appointment *a, char *id_out)
{
    if (!a->patient_id[0] || !a->dept_id[0] || a->slot_ms <= 0 || !kind_valid(a->kind))
        return TM_EINVAL;
    char id[64];
    if (a->id[0])
        snprintf(id, sizeof(id), "%s", a->id);
    else
        make_id("apt", id, sizeof(id));
    int rc = run(s, "INSERT INTO appointments(id, patient_id, dept_id, doctor_id, slot_at, kind,"
                    " status, created_at, updated_at)"
                    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, 'booked', ?7, ?7)",
                 "ssssIsI", id, a->patient_id, a->dept_id, a->doctor_id, a->slot_ms, a->kind,
                 tm_now_ms());
    if (rc == 0 && id_out)
        snprintf(id_out, 64, "%s", id);
    return rc;
}

int tm_store_appt_get(tm_store *s, const char *id, tm_appointment *out)
{
    sqlite3_stmt *st = query(s, "SELECT id, patient_id, dept_id, doctor_id, slot_at, kind, status"
                                " FROM appointments WHERE id = ?1",
                             "s", id);
    if (!st)
        return TM_EIO;
    int rc = TM_ENOTFOUND;
    if (sqlite3_step(st) == SQLITE_ROW) {
        copy_col(st, 0, out->id, sizeof(out->id));
        copy_col(st, 1, out->patient_id, sizeof(out->patient_id));
        copy_col(st, 2, out->dept_id, sizeof(out->dept_id));
        copy_col(st, 3, out->doctor_id, sizeof(out->doctor_id));
        out->slot_ms = sqlite3_column_int64(st, 4);
        copy_col(st, 5, out->kind, sizeof(out->kind));
        copy_col(st, 6, out->status, sizeof(out->status));
        rc = 0;
    }
    sqlite3_reset(st);
    return rc;
}

int tm_store_appt_update(tm_store *s, const tm_appointment *a)
{
    static const char *const statuses[] = {"booked", "arrived", "fulfilled", "cancelled", "noshow"};
    bool ok = false;
    for (size_t i = 0; i < TM_ARRAY_LEN(statuses); i++)
        ok |= strcmp(a->status, statuses[i]) == 0;
    if (!ok || a->slot_ms <= 0 || !kind_valid(a->kind))
        return TM_EINVAL;
    int rc = run_one(s, "UPDATE appointments SET slot_at = ?2, doctor_id = ?3, status = ?4,"
                        " kind = ?5, dept_id = ?6, updated_at = ?7 WHERE id = ?1",
                     "sIssssI", a->id, a->slot_ms, a->doctor_id, a->status, a->kind, a->dept_id,
                     tm_now_ms());
    return rc == TM_ECONFLICT ? TM_EINVAL : rc;
}

json_t *tm_store_appt_list(tm_store *s, const char *patient_id, const char *dept_id,
                           const char *status, int64_t from_ms, int64_t to_ms, int limit)
{
    sqlite3_stmt *st =
        query(s, "SELECT id, patient_id, dept_id, doctor_id, slot_at, kind, status, created_at,"
                 " updated_at FROM appointments"
                 " WHERE (?1 IS NULL OR patient_id = ?1) AND (?2 IS NULL OR dept_id = ?2)"
                 " AND (?3 IS NULL OR status = ?3) AND (?4 IS NULL OR slot_at >= ?4)"
                 " AND (?5 IS NULL OR slot_at < ?5) ORDER BY slot_at LIMIT ?6",
              "ssstti", patient_id, dept_id, status, from_ms, to_ms, limit > 0 ? limit : 500);
    return st ? rows_to_json(st) : NULL;
}

/* ---- visits -------------------------------------------------------- */

/* Appends the outbox event for a visit step. Must run inside a transaction. */
static int outbox_append(tm_store *s, const char *type, const char *visit_id, int64_t now_ms)
{
    char *payload = tm__feed_event_payload(s->db, s->hospital, type, visit_id);
    if (!payload) {
        snprintf(s->errmsg, sizeof(s->errmsg), "cannot build %s event", type);
        return TM_EIO;
    }
    char event_id[37];
    tm_uuid4(event_id);
    int rc = run(s, "INSERT INTO outbox(event_id, type, visit_id, occurred_at, payload)"
                    " VALUES(?1, ?2, ?3, ?4, ?5)",
                 "sssIb", event_id, type, visit_id, now_ms, payload);
    free(payload);
    return rc;
}

#define VISIT_COLUMNS                                                                         \
    "SELECT v.id, v.patient_id, v.dept_id, v.appointment_id, v.doctor_id, v.kind, v.urgent,"  \
    " v.state, v.checkin_at, v.offered_at, v.accepted_at, v.ended_at, a.slot_at, v.end_reason" \
    " FROM visits v LEFT JOIN appointments a ON a.id = v.appointment_id"

static void visit_from_row(sqlite3_stmt *st, tm_visit *v)
{
    memset(v, 0, sizeof(*v));
    copy_col(st, 0, v->id, sizeof(v->id));
    copy_col(st, 1, v->patient_id, sizeof(v->patient_id));
    copy_col(st, 2, v->dept_id, sizeof(v->dept_id));
    copy_col(st, 3, v->appointment_id, sizeof(v->appointment_id));
    copy_col(st, 4, v->doctor_id, sizeof(v->doctor_id));
    copy_col(st, 5, v->kind, sizeof(v->kind));
    v->urgent = sqlite3_column_int(st, 6) != 0;
    copy_col(st, 7, v->state, sizeof(v->state));
    v->checkin_ms = sqlite3_column_int64(st, 8);
    v->offered_ms = sqlite3_column_int64(st, 9);
    v->accepted_ms = sqlite3_column_int64(st, 10);
    v->ended_ms = sqlite3_column_int64(st, 11);
    v->slot_ms = sqlite3_column_int64(st, 12);
    copy_col(st, 13, v->end_reason, sizeof(v->end_reason));
}

int tm_store_visit_get(tm_store *s, const char *id, tm_visit *out)
{
    sqlite3_stmt *st = query(s, VISIT_COLUMNS " WHERE v.id = ?1", "s", id);
    if (!st)
        return TM_EIO;
    int rc = TM_ENOTFOUND;
    if (sqlite3_step(st) == SQLITE_ROW) {
        visit_from_row(st, out);
        rc = 0;
    }
    sqlite3_reset(st);
    return rc;
}

int tm_store_visit_foreach_state(tm_store *s, const char *state,
                                 void (*fn)(const tm_visit *v, void *user), void *user)
{
    sqlite3_stmt *st = query(s, VISIT_COLUMNS " WHERE v.state = ?1 ORDER BY v.checkin_at", "s", state);
    if (!st)
        return TM_EIO;
    /* Collect first: fn may call back into the store, which would reset st. */
    GArray *rows = g_array_new(FALSE, FALSE, sizeof(tm_visit));
    while (sqlite3_step(st) == SQLITE_ROW) {
        tm_visit v;
        visit_from_row(st, &v);
        g_array_append_val(rows, v);
    }
    sqlite3_reset(st);
    for (guint i = 0; i < rows->len; i++)
        fn(&g_array_index(rows, tm_visit, i), user);
    g_array_free(rows, TRUE);
    return 0;
}

static int participant_insert(tm_store *s, const char *visit_id, const char *user_id,
                              const char *role, const char *user_agent, int64_t now_ms)
{
    return run(s, "INSERT INTO participants(visit_id, user_id, role, user_agent, joined_at)"
                  " VALUES(?1, ?2, ?3, ?4, ?5)",
               "ssssI", visit_id, user_id, role, user_agent, now_ms);
}

int tm_store_visit_checkin(tm_store *s, tm_visit *v, const char *user_agent)
{
    if (!v->patient_id[0] || !v->dept_id[0] || !kind_valid(v->kind))
        return TM_EINVAL;
    make_id("v", v->id, sizeof(v->id));
    snprintf(v->state, sizeof(v->state), "waiting");
    int rc = begin(s);
    if (rc < 0)
        return rc;
    rc = run(s, "INSERT INTO visits(id, patient_id, dept_id, appointment_id, kind, urgent, state,"
                " checkin_at, updated_at, recording_consent)"
                " VALUES(?1, ?2, ?3, ?4, ?5, ?6, 'waiting', ?7, ?7,"
                " CASE ?8 WHEN 1 THEN 1 WHEN -1 THEN 0 END)",
             "sssssiIi", v->id, v->patient_id, v->dept_id, v->appointment_id, v->kind,
             (int)v->urgent, v->checkin_ms, v->recording_consent);
    if (rc == 0 && v->appointment_id[0])
        rc = run(s, "UPDATE appointments SET status = 'arrived', updated_at = ?2 WHERE id = ?1",
                 "sI", v->appointment_id, v->checkin_ms);
    if (rc == 0)
        rc = participant_insert(s, v->id, v->patient_id, "patient", user_agent, v->checkin_ms);
    if (rc == 0)
        rc = outbox_append(s, "visit.checked_in", v->id, v->checkin_ms);
    return finish(s, rc);
}

/* Changes state only if the visit is in from_state; TM_ECONFLICT otherwise. */
static int visit_set_state(tm_store *s, const char *visit_id, const char *from_state,
                           const char *to_state, int64_t now_ms)
{
    int rc = run_one(s, "UPDATE visits SET state = ?3, updated_at = ?4 WHERE id = ?1 AND state = ?2",
                     "sssI", visit_id, from_state, to_state, now_ms);
    if (rc == TM_ENOTFOUND) {
        tm_visit v;
        snprintf(s->errmsg, sizeof(s->errmsg), "visit is not %s", from_state);
        return tm_store_visit_get(s, visit_id, &v) == TM_ENOTFOUND ? TM_ENOTFOUND : TM_ECONFLICT;
    }
    return rc;
}

int tm_store_visit_offer(tm_store *s, const char *visit_id, const char *doctor_id, int64_t now_ms)
{
    int rc = begin(s);
    if (rc < 0)
        return rc;
    rc = visit_set_state(s, visit_id, "waiting", "offered", now_ms);
    if (rc == 0)
        rc = run(s, "UPDATE visits SET doctor_id = ?2, offered_at = ?3, offers = offers + 1"
                    " WHERE id = ?1",
                 "ssI", visit_id, doctor_id, now_ms);
    if (rc == 0)
        rc = run(s, "INSERT INTO offers(visit_id, doctor_id, offered_at) VALUES(?1, ?2, ?3)", "ssI",
                 visit_id, doctor_id, now_ms);
    return finish(s, rc);
}

static int offer_decide(tm_store *s, const char *visit_id, const char *outcome, int64_t now_ms)
{
    return run(s, "UPDATE offers SET outcome = ?2, decided_at = ?3"
                  " WHERE visit_id = ?1 AND outcome IS NULL",
               "ssI", visit_id, outcome, now_ms);
}

int tm_store_visit_unoffer(tm_store *s, const char *visit_id, const char *outcome, int64_t now_ms)
{
    int rc = begin(s);
    if (rc < 0)
        return rc;
    rc = visit_set_state(s, visit_id, "offered", "waiting", now_ms);
    if (rc == 0)
        rc = run(s, "UPDATE visits SET doctor_id = NULL, offered_at = NULL WHERE id = ?1", "s",
                 visit_id);
    if (rc == 0)
        rc = offer_decide(s, visit_id, outcome, now_ms);
    return finish(s, rc);
}

int tm_store_visit_accept(tm_store *s, const char *visit_id, const char *doctor_id,
                          const char *user_agent, int64_t now_ms)
{
    int rc = begin(s);
    if (rc < 0)
        return rc;
    rc = visit_set_state(s, visit_id, "offered", "active", now_ms);
    if (rc == 0) {
        rc = run_one(s, "UPDATE visits SET accepted_at = ?3, queue_wait_ms = ?3 - checkin_at,"
                        " response_ms = ?3 - checkin_at WHERE id = ?1 AND doctor_id = ?2",
                     "ssI", visit_id, doctor_id, now_ms);
        if (rc == TM_ENOTFOUND)
            rc = TM_EPERM; /* offered to another doctor */
    }
    if (rc == 0)
        rc = offer_decide(s, visit_id, "accepted", now_ms);
    if (rc == 0)
        rc = participant_insert(s, visit_id, doctor_id, "doctor", user_agent, now_ms);
    if (rc == 0)
        rc = outbox_append(s, "visit.started", visit_id, now_ms);
    return finish(s, rc);
}

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
    tm_visit v;
    int rc = tm_store_visit_get(s, visit_id, &v);
    if (rc < 0)
        return rc;
    const char *to;
    if (strcmp(v.state, "active") == 0)
        to = "ended";
    else if (strcmp(v.state, "waiting") == 0 || strcmp(v.state, "offered") == 0)
        to = "cancelled";
    else
        return TM_ECONFLICT;
    if ((rc = begin(s)) < 0)
        return rc;
    rc = visit_set_state(s, visit_id, v.state, to, now_ms);
    if (rc == 0)
        rc = run(s, "UPDATE visits SET ended_at = ?2, end_reason = ?3, ended_by = ?4,"
                    " duration_ms = CASE WHEN accepted_at IS NULL THEN NULL ELSE ?2 - accepted_at END,"
                    " queue_wait_ms = COALESCE(queue_wait_ms, ?2 - checkin_at) WHERE id = ?1",
                 "sIss", visit_id, now_ms, reason, by);
    if (rc == 0 && strcmp(v.state, "offered") == 0)
        rc = offer_decide(s, visit_id, "withdrawn", now_ms);
    if (rc == 0)
        rc = run(s, "UPDATE participants SET left_at = ?2, leave_reason = ?3"
                    " WHERE visit_id = ?1 AND left_at IS NULL",
                 "sIs", visit_id, now_ms, reason);
    if (rc == 0 && v.appointment_id[0])
        rc = run(s, "UPDATE appointments SET status = ?2, updated_at = ?3 WHERE id = ?1", "ssI",
                 v.appointment_id, appointment_outcome(to, reason), now_ms);
    if (rc == 0)
        rc = outbox_append(s, "visit.ended", visit_id, now_ms);
    return finish(s, rc);
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
    return run(s, "UPDATE participants SET left_at = ?3, leave_reason = ?4"
                  " WHERE visit_id = ?1 AND user_id = ?2 AND left_at IS NULL",
               "ssIs", visit_id, user_id, now_ms, reason);
}

int tm_store_chat_add(tm_store *s, const char *visit_id, const char *sender_id,
                      const char *sender_role, const char *body, int64_t now_ms, int64_t *id_out)
{
    int rc = run(s, "INSERT INTO chat_messages(visit_id, sender_id, sender_role, body, sent_at)"
                    " VALUES(?1, ?2, ?3, ?4, ?5)",
                 "sssbI", visit_id, sender_id, sender_role, body, now_ms);
    if (rc == 0 && id_out)
        *id_out = sqlite3_last_insert_rowid(s->db);
    return rc;
}

/* The doctor's note on the visit: its row id (0 if none) and whether it is signed. */
static int note_find(tm_store *s, const char *visit_id, const char *doctor_id, int64_t *id,
                     bool *is_signed)
{
    sqlite3_stmt *st = query(s, "SELECT id, signed FROM notes WHERE visit_id = ?1 AND doctor_id = ?2",
                             "ss", visit_id, doctor_id);
    if (!st)
        return TM_EIO;
    *id = 0;
    *is_signed = false;
    if (sqlite3_step(st) == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        *is_signed = sqlite3_column_int(st, 1) != 0;
    }
    sqlite3_reset(st);
    return 0;
}

int tm_store_note_save(tm_store *s, const char *visit_id, const char *doctor_id,
                       const char *body, const char *diagnosis_code, bool sign, int64_t now_ms)
{
    int rc = begin(s);
    if (rc < 0)
        return rc;
    int64_t note_id = 0;
    bool was_signed = false;
    rc = note_find(s, visit_id, doctor_id, &note_id, &was_signed);
    if (rc == 0 && was_signed) {
        /* A signed note is part of the medical record: it is not rewritten. */
        snprintf(s->errmsg, sizeof(s->errmsg), "note already signed");
        rc = TM_ECONFLICT;
    }
    if (rc == 0 && note_id)
        rc = run(s, "UPDATE notes SET body = ?2, diagnosis_code = ?3, signed = ?4, updated_at = ?5"
                    " WHERE id = ?1",
                 "IbsiI", note_id, body, diagnosis_code, (int)sign, now_ms);
    else if (rc == 0)
        rc = run(s, "INSERT INTO notes(visit_id, doctor_id, body, diagnosis_code, signed,"
                    " created_at, updated_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                 "ssbsiI", visit_id, doctor_id, body, diagnosis_code, (int)sign, now_ms);
    if (rc == 0 && sign)
        rc = outbox_append(s, "visit.note_signed", visit_id, now_ms);
    return finish(s, rc);
}

int tm_store_rating_add(tm_store *s, const char *visit_id, const char *patient_id, int score,
                        const char *comment, int64_t now_ms)
{
    if (score < 1 || score > 5)
        return TM_EINVAL;
    int rc = begin(s);
    if (rc < 0)
        return rc;
    rc = run(s, "INSERT INTO ratings(visit_id, patient_id, score, comment, created_at)"
                " VALUES(?1, ?2, ?3, ?4, ?5)",
             "ssisI", visit_id, patient_id, score, comment, now_ms);
    if (rc == 0)
        rc = outbox_append(s, "visit.rated", visit_id, now_ms);
    return finish(s, rc);
}

int tm_store_stats_add(tm_store *s, const char *visit_id, const char *user_id,
                       const char *direction, const char *kind, const char *summary_json,
                       int64_t now_ms)
{
    return run(s, "INSERT INTO stream_stats(visit_id, user_id, direction, kind, summary,"
                  " recorded_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
               "sssssI", visit_id, user_id, direction, kind, summary_json, now_ms);
}

static json_t *query_rows(tm_store *s, const char *sql, const char *id)
{
    sqlite3_stmt *st = query(s, sql, "s", id);
    return st ? rows_to_json(st) : json_array();
}

json_t *tm_store_visit_record(tm_store *s, const char *id)
{
    json_t *visits = query_rows(
        s, "SELECT v.id, v.patient_id, v.dept_id, d.name AS dept_name, v.appointment_id,"
           " v.doctor_id, v.kind, v.urgent, v.state, v.checkin_at, v.offered_at, v.accepted_at,"
           " v.ended_at, v.end_reason, v.ended_by, v.queue_wait_ms, v.response_ms, v.duration_ms,"
           " v.offers, v.recording_consent FROM visits v JOIN departments d ON d.id = v.dept_id"
           " WHERE v.id = ?1",
        id);
    json_t *rec = json_incref(json_array_get(visits, 0));
    json_decref(visits);
    if (!rec)
        return NULL;
    json_object_set_new(rec, "participants",
                        query_rows(s, "SELECT user_id, role, user_agent, joined_at, left_at,"
                                      " leave_reason FROM participants WHERE visit_id = ?1 ORDER BY id",
                                   id));
    json_object_set_new(rec, "offers",
                        query_rows(s, "SELECT doctor_id, offered_at, outcome, decided_at FROM offers"
                                      " WHERE visit_id = ?1 ORDER BY id",
                                   id));
    json_object_set_new(rec, "notes",
                        query_rows(s, "SELECT doctor_id, body, diagnosis_code, signed, created_at,"
                                      " updated_at FROM notes WHERE visit_id = ?1 ORDER BY id",
                                   id));
    json_object_set_new(rec, "chat",
                        query_rows(s, "SELECT id, sender_id, sender_role, body, sent_at FROM"
                                      " chat_messages WHERE visit_id = ?1 ORDER BY id",
                                   id));
    json_t *ratings = query_rows(s, "SELECT score, comment, created_at FROM ratings WHERE visit_id = ?1", id);
    json_object_set(rec, "rating", json_array_size(ratings) ? json_array_get(ratings, 0) : json_null());
    json_decref(ratings);
    json_object_set_new(rec, "recordings",
                        query_rows(s, "SELECT id, path, format, state, size_bytes, duration_ms, sha256,"
                                      " plain_sha256, encrypted, failure, dropped_packets, started_at, finished_at,"
                                      " deleted_at, deleted_by_policy FROM recordings WHERE visit_id = ?1"
                                      " ORDER BY started_at",
                                   id));
    json_t *stats = query_rows(s, "SELECT user_id, direction, kind, summary, recorded_at FROM"
                                  " stream_stats WHERE visit_id = ?1 ORDER BY id",
                               id);
    size_t i;
    json_t *row;
    json_array_foreach(stats, i, row) {
        json_t *summary = json_loads(json_string_value(json_object_get(row, "summary")), 0, NULL);
        json_object_set_new(row, "summary", summary ? summary : json_null());
    }
    json_object_set_new(rec, "stream_stats", stats);
    return rec;
}

json_t *tm_store_visit_list(tm_store *s, const char *state, const char *dept_id,
                            const char *doctor_id, const char *patient_id, int64_t from_ms,
                            int64_t to_ms, int limit, int offset)
{
    sqlite3_stmt *st = query(
        s, "SELECT v.id, v.patient_id, v.dept_id, v.doctor_id, v.kind, v.urgent, v.state,"
           " v.checkin_at, v.accepted_at, v.ended_at, v.end_reason, v.queue_wait_ms,"
           " v.response_ms, v.duration_ms, r.score AS rating"
           " FROM visits v LEFT JOIN ratings r ON r.visit_id = v.id"
           " WHERE (?1 IS NULL OR v.state = ?1) AND (?2 IS NULL OR v.dept_id = ?2)"
           " AND (?3 IS NULL OR v.doctor_id = ?3) AND (?4 IS NULL OR v.patient_id = ?4)"
           " AND (?5 IS NULL OR v.checkin_at >= ?5) AND (?6 IS NULL OR v.checkin_at < ?6)"
           " ORDER BY v.checkin_at DESC LIMIT ?7 OFFSET ?8",
        "ssssttii", state, dept_id, doctor_id, patient_id, from_ms, to_ms,
        limit > 0 && limit <= 1000 ? limit : 100, offset > 0 ? offset : 0);
    return st ? rows_to_json(st) : NULL;
}

int tm_store_visit_counts(tm_store *s, int64_t since_ms, json_t **out)
{
    sqlite3_stmt *st = query(s, "SELECT state, count(*) FROM visits WHERE checkin_at >= ?1"
                                " GROUP BY state",
                             "I", since_ms);
    if (!st)
        return TM_EIO;
    json_t *o = json_object();
    while (sqlite3_step(st) == SQLITE_ROW)
        json_object_set_new(o, (const char *)sqlite3_column_text(st, 0),
                            json_integer(sqlite3_column_int64(st, 1)));
    sqlite3_reset(st);
    *out = o;
    return 0;
}

int tm_store_doctor_figures(tm_store *s, const char *doctor_id, int64_t since_ms, json_t **out)
{
    sqlite3_stmt *st = query(s, "SELECT count(*) AS visits,"
                                " CAST(avg(v.response_ms) AS INTEGER) AS avg_response_ms,"
                                " avg(r.score) AS avg_rating, count(r.score) AS ratings"
                                " FROM visits v LEFT JOIN ratings r ON r.visit_id = v.id"
                                " WHERE v.doctor_id = ?1 AND v.accepted_at >= ?2",
                             "sI", doctor_id, since_ms);
    if (!st)
        return TM_EIO;
    json_t *rows = rows_to_json(st);
    *out = json_incref(json_array_get(rows, 0));
    json_decref(rows);
    return *out ? 0 : TM_EIO;
}

/* ---- audit log ----------------------------------------------------- */

int tm_store_audit(tm_store *s, const char *actor_id, const char *actor_role, const char *action,
                   const char *target, const char *outcome, const char *detail)
{
    return run(s, "INSERT INTO audit_log(at, actor_id, actor_role, action, target, outcome, detail)"
                  " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
               "Issssss", tm_now_ms(), actor_id && *actor_id ? actor_id : "-",
               actor_role && *actor_role ? actor_role : "none", action, target,
               outcome ? outcome : "ok", detail);
}

json_t *tm_store_audit_list(tm_store *s, const char *target, const char *actor_id,
                            int64_t from_ms, int limit)
{
    sqlite3_stmt *st = query(s, "SELECT id, at, actor_id, actor_role, action, target, outcome, detail"
                                " FROM audit_log WHERE (?1 IS NULL OR target = ?1)"
                                " AND (?2 IS NULL OR actor_id = ?2) AND (?3 IS NULL OR at >= ?3)"
                                " ORDER BY id DESC LIMIT ?4",
                             "ssti", target, actor_id, from_ms,
                             limit > 0 && limit <= 1000 ? limit : 100);
    return st ? rows_to_json(st) : NULL;
}

int tm_store_outbox_count(tm_store *s, const char *state, int64_t *count)
{
    sqlite3_stmt *st = query(s, "SELECT count(*) FROM outbox WHERE state = ?1", "s", state);
    if (!st)
        return TM_EIO;
    *count = 0;
    if (sqlite3_step(st) == SQLITE_ROW)
        *count = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return 0;
}

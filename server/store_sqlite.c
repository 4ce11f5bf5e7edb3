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

/* Returns the cached statement for sql, reset and with bindings cleared. */
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

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v && *v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

static void bind_time(sqlite3_stmt *st, int i, int64_t v)
{
    if (v)
        sqlite3_bind_int64(st, i, v);
    else
        sqlite3_bind_null(st, i);
}

static void copy_col(sqlite3_stmt *st, int i, char *out, size_t outlen)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(out, outlen, "%s", t ? (const char *)t : "");
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
    sqlite3_stmt *st = stmt(s, "BEGIN IMMEDIATE");
    return st ? exec_step(s, st) : TM_EIO;
}

static int commit(tm_store *s)
{
    sqlite3_stmt *st = stmt(s, "COMMIT");
    return st ? exec_step(s, st) : TM_EIO;
}

static void rollback(tm_store *s)
{
    sqlite3_stmt *st = stmt(s, "ROLLBACK");
    if (st)
        exec_step(s, st);
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
    static const char *const flags[] = {"urgent", "active", "signed", "encrypted"};
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
    sqlite3_stmt *st = stmt(s, "INSERT INTO departments(id, name, created_at) VALUES(?1, ?2, ?3)"
                               " ON CONFLICT(id) DO UPDATE SET name = excluded.name");
    if (!st)
        return TM_EIO;
    bind_text(st, 1, id);
    bind_text(st, 2, name);
    sqlite3_bind_int64(st, 3, tm_now_ms());
    return exec_step(s, st);
}

bool tm_store_dept_exists(tm_store *s, const char *id)
{
    sqlite3_stmt *st = stmt(s, "SELECT 1 FROM departments WHERE id = ?1");
    if (!st)
        return false;
    bind_text(st, 1, id);
    bool found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_reset(st);
    return found;
}

json_t *tm_store_dept_list(tm_store *s)
{
    sqlite3_stmt *st = stmt(s, "SELECT id, name, created_at FROM departments ORDER BY id");
    return st ? rows_to_json(st) : NULL;
}

int tm_store_dept_delete(tm_store *s, const char *id)
{
    sqlite3_stmt *st = stmt(s, "DELETE FROM departments WHERE id = ?1");
    if (!st)
        return TM_EIO;
    bind_text(st, 1, id);
    int rc = exec_step(s, st);
    if (rc == 0 && sqlite3_changes(s->db) == 0)
        return TM_ENOTFOUND;
    return rc;
}

int tm_store_doctor_put(tm_store *s, const char *id, const char *name, const char *dept_id,
                        const char *licence_no, const char *title)
{
    sqlite3_stmt *st = stmt(
        s, "INSERT INTO doctors(id, name, dept_id, licence_no, title, created_at)"
           " VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(id) DO UPDATE SET name = excluded.name,"
           " dept_id = excluded.dept_id, licence_no = excluded.licence_no, title = excluded.title");
    if (!st)
        return TM_EIO;
    bind_text(st, 1, id);
    bind_text(st, 2, name);
    bind_text(st, 3, dept_id);
    bind_text(st, 4, licence_no);
    bind_text(st, 5, title);
    sqlite3_bind_int64(st, 6, tm_now_ms());
    int rc = exec_step(s, st);
    return rc == TM_ECONFLICT ? TM_EINVAL : rc; /* unknown department */
}

int tm_store_doctor_get(tm_store *s, const char *id, tm_doctor_info *out)
{
    sqlite3_stmt *st = stmt(s, "SELECT id, dept_id, licence_no, active FROM doctors WHERE id = ?1");
    if (!st)
        return TM_EIO;
    bind_text(st, 1, id);
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
    sqlite3_stmt *st = stmt(s, "SELECT id, name, dept_id, licence_no, title, active, created_at"
                               " FROM doctors WHERE ?1 IS NULL OR dept_id = ?1 ORDER BY id");
    if (!st)
        return NULL;
    bind_text(st, 1, dept_id);
    return rows_to_json(st);
}

int tm_store_shift_add(tm_store *s, const char *doctor_id, const char *dept_id, int64_t start_ms,
                       int64_t end_ms, int capacity, char *id_out)
{
    if (end_ms <= start_ms || capacity < 1)
        return TM_EINVAL;
    sqlite3_stmt *st = stmt(s, "INSERT INTO shifts(id, doctor_id, dept_id, start_at, end_at,"
                               " capacity, created_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    if (!st)
        return TM_EIO;
    char id[64];
    make_id("shift", id, sizeof(id));
    bind_text(st, 1, id);
    bind_text(st, 2, doctor_id);
    bind_text(st, 3, dept_id);
    sqlite3_bind_int64(st, 4, start_ms);
    sqlite3_bind_int64(st, 5, end_ms);
    sqlite3_bind_int(st, 6, capacity);
    sqlite3_bind_int64(st, 7, tm_now_ms());
    int rc = exec_step(s, st);
    if (rc == TM_ECONFLICT)
        return TM_EINVAL; /* unknown doctor or department */
    if (rc == 0 && id_out)
        strcpy(id_out, id);
    return rc;
}

int tm_store_shift_delete(tm_store *s, const char *id)
{
    sqlite3_stmt *st = stmt(s, "DELETE FROM shifts WHERE id = ?1");
    if (!st)
        return TM_EIO;
    bind_text(st, 1, id);
    int rc = exec_step(s, st);
    if (rc == 0 && sqlite3_changes(s->db) == 0)
        return TM_ENOTFOUND;
    return rc;
}

json_t *tm_store_shift_list(tm_store *s, const char *doctor_id, const char *dept_id,
                            int64_t from_ms, int64_t to_ms)
{
    sqlite3_stmt *st = stmt(s, "SELECT id, doctor_id, dept_id, start_at, end_at, capacity FROM shifts"
                               " WHERE (?1 IS NULL OR doctor_id = ?1) AND (?2 IS NULL OR dept_id = ?2)"
                               " AND (?3 IS NULL OR end_at > ?3) AND (?4 IS NULL OR start_at < ?4)"
                               " ORDER BY start_at, doctor_id");
    if (!st)
        return NULL;
    bind_text(st, 1, doctor_id);
    bind_text(st, 2, dept_id);
    bind_time(st, 3, from_ms);
    bind_time(st, 4, to_ms);
    return rows_to_json(st);
}

int tm_store_shift_current(tm_store *s, const char *doctor_id, const char *dept_id,
                           int64_t now_ms, char *dept_out, int *capacity, int64_t *end_ms)
{
    sqlite3_stmt *st = stmt(s, "SELECT dept_id, capacity, end_at FROM shifts WHERE doctor_id = ?1"
                               " AND (?2 IS NULL OR dept_id = ?2) AND start_at <= ?3 AND end_at > ?3"
                               " ORDER BY end_at DESC LIMIT 1");
    if (!st)
        return TM_EIO;
    bind_text(st, 1, doctor_id);
    bind_text(st, 2, dept_id);
    sqlite3_bind_int64(st, 3, now_ms);
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
    sqlite3_stmt *st = stmt(s, "INSERT INTO appointments(id, patient_id, dept_id, doctor_id, slot_at,"
                               " kind, status, created_at, updated_at)"
                               " VALUES(?1, ?2, ?3, ?4, ?5, ?6, 'booked', ?7, ?7)");
    if (!st)
        return TM_EIO;
    char id[64];
    if (a->id[0])
        snprintf(id, sizeof(id), "%s", a->id);
    else
        make_id("apt", id, sizeof(id));
    bind_text(st, 1, id);
    bind_text(st, 2, a->patient_id);
    bind_text(st, 3, a->dept_id);
    bind_text(st, 4, a->doctor_id);
    sqlite3_bind_int64(st, 5, a->slot_ms);
    bind_text(st, 6, a->kind);
    sqlite3_bind_int64(st, 7, tm_now_ms());
    int rc = exec_step(s, st);
    if (rc == 0 && id_out)
        snprintf(id_out, 64, "%s", id);
    return rc;
}

int tm_store_appt_get(tm_store *s, const char *id, tm_appointment *out)
{
    sqlite3_stmt *st = stmt(s, "SELECT id, patient_id, dept_id, doctor_id, slot_at, kind, status"
                               " FROM appointments WHERE id = ?1");
    if (!st)
        return TM_EIO;
    bind_text(st, 1, id);
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
    sqlite3_stmt *st = stmt(s, "UPDATE appointments SET slot_at = ?2, doctor_id = ?3, status = ?4,"
                               " kind = ?5, dept_id = ?6, updated_at = ?7 WHERE id = ?1");
    if (!st)
        return TM_EIO;
    bind_text(st, 1, a->id);
    sqlite3_bind_int64(st, 2, a->slot_ms);
    bind_text(st, 3, a->doctor_id);
    bind_text(st, 4, a->status);
    bind_text(st, 5, a->kind);
    bind_text(st, 6, a->dept_id);
    sqlite3_bind_int64(st, 7, tm_now_ms());
    int rc = exec_step(s, st);
    if (rc == 0 && sqlite3_changes(s->db) == 0)
        return TM_ENOTFOUND;
    return rc == TM_ECONFLICT ? TM_EINVAL : rc;
}

json_t *tm_store_appt_list(tm_store *s, const char *patient_id, const char *dept_id,
                           const char *status, int64_t from_ms, int64_t to_ms, int limit)
{
    sqlite3_stmt *st = stmt(s, "SELECT id, patient_id, dept_id, doctor_id, slot_at, kind, status,"
                               " created_at, updated_at FROM appointments"
                               " WHERE (?1 IS NULL OR patient_id = ?1) AND (?2 IS NULL OR dept_id = ?2)"
                               " AND (?3 IS NULL OR status = ?3) AND (?4 IS NULL OR slot_at >= ?4)"
                               " AND (?5 IS NULL OR slot_at < ?5) ORDER BY slot_at LIMIT ?6");
    if (!st)
        return NULL;
    bind_text(st, 1, patient_id);
    bind_text(st, 2, dept_id);
    bind_text(st, 3, status);
    bind_time(st, 4, from_ms);
    bind_time(st, 5, to_ms);
    sqlite3_bind_int(st, 6, limit > 0 ? limit : 500);
    return rows_to_json(st);
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
    sqlite3_stmt *st = stmt(s, "INSERT INTO outbox(event_id, type, visit_id, occurred_at, payload)"
                               " VALUES(?1, ?2, ?3, ?4, ?5)");
    if (!st) {
        free(payload);
        return TM_EIO;
    }
    char event_id[37];
    tm_uuid4(event_id);
    bind_text(st, 1, event_id);
    bind_text(st, 2, type);
    bind_text(st, 3, visit_id);
    sqlite3_bind_int64(st, 4, now_ms);
    sqlite3_bind_text(st, 5, payload, -1, free);
    return exec_step(s, st);
}

static const char visit_columns[] =
    "SELECT v.id, v.patient_id, v.dept_id, v.appointment_id, v.doctor_id, v.kind, v.urgent,"
    " v.state, v.checkin_at, v.offered_at, v.accepted_at, v.ended_at, a.slot_at, v.end_reason"
    " FROM visits v LEFT JOIN appointments a ON a.id = v.appointment_id";

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
    static const char *sql = NULL;
    static char buf[sizeof(visit_columns) + 32];
    if (!sql) {
        snprintf(buf, sizeof(buf), "%s WHERE v.id = ?1", visit_columns);
        sql = buf;
    }
    sqlite3_stmt *st = stmt(s, sql);
    if (!st)
        return TM_EIO;
    bind_text(st, 1, id);
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
    static const char *sql = NULL;
    static char buf[sizeof(visit_columns) + 64];
    if (!sql) {
        snprintf(buf, sizeof(buf), "%s WHERE v.state = ?1 ORDER BY v.checkin_at", visit_columns);
        sql = buf;
    }
    sqlite3_stmt *st = stmt(s, sql);
    if (!st)
        return TM_EIO;
    bind_text(st, 1, state);
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
    sqlite3_stmt *st = stmt(s, "INSERT INTO participants(visit_id, user_id, role, user_agent,"
                               " joined_at) VALUES(?1, ?2, ?3, ?4, ?5)");
    if (!st)
        return TM_EIO;
    bind_text(st, 1, visit_id);
    bind_text(st, 2, user_id);
    bind_text(st, 3, role);
    bind_text(st, 4, user_agent);
    sqlite3_bind_int64(st, 5, now_ms);
    return exec_step(s, st);
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
    sqlite3_stmt *st = stmt(s, "INSERT INTO visits(id, patient_id, dept_id, appointment_id, kind,"
                               " urgent, state, checkin_at, updated_at)"
                               " VALUES(?1, ?2, ?3, ?4, ?5, ?6, 'waiting', ?7, ?7)");
    if (!st) {
        rc = TM_EIO;
        goto fail;
    }
    bind_text(st, 1, v->id);
    bind_text(st, 2, v->patient_id);
    bind_text(st, 3, v->dept_id);
    bind_text(st, 4, v->appointment_id);
    bind_text(st, 5, v->kind);
    sqlite3_bind_int(st, 6, v->urgent);
    sqlite3_bind_int64(st, 7, v->checkin_ms);
    if ((rc = exec_step(s, st)) < 0)
        goto fail;
    if (v->appointment_id[0]) {
        st = stmt(s, "UPDATE appointments SET status = 'arrived', updated_at = ?2 WHERE id = ?1");
        if (!st) {
            rc = TM_EIO;
            goto fail;
        }
        bind_text(st, 1, v->appointment_id);
        sqlite3_bind_int64(st, 2, v->checkin_ms);
        if ((rc = exec_step(s, st)) < 0)
            goto fail;
    }
    if ((rc = participant_insert(s, v->id, v->patient_id, "patient", user_agent, v->checkin_ms)) < 0)
        goto fail;
    if ((rc = outbox_append(s, "visit.checked_in", v->id, v->checkin_ms)) < 0)
        goto fail;
    if ((rc = commit(s)) < 0)
        goto fail;
    return 0;
fail:
    rollback(s);
    return rc;
}

/* Changes state only if the visit is in from_state; TM_ECONFLICT otherwise. */
static int visit_set_state(tm_store *s, const char *visit_id, const char *from_state,
                           const char *to_state, int64_t now_ms)
{
    sqlite3_stmt *st = stmt(s, "UPDATE visits SET state = ?3, updated_at = ?4"
                               " WHERE id = ?1 AND state = ?2");
    if (!st)
        return TM_EIO;
    bind_text(st, 1, visit_id);
    bind_text(st, 2, from_state);
    bind_text(st, 3, to_state);
    sqlite3_bind_int64(st, 4, now_ms);
    int rc = exec_step(s, st);
    if (rc == 0 && sqlite3_changes(s->db) == 0) {
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
    if ((rc = visit_set_state(s, visit_id, "waiting", "offered", now_ms)) < 0)
        goto fail;
    sqlite3_stmt *st = stmt(s, "UPDATE visits SET doctor_id = ?2, offered_at = ?3,"
                               " offers = offers + 1 WHERE id = ?1");
    if (!st) {
        rc = TM_EIO;
        goto fail;
    }
    bind_text(st, 1, visit_id);
    bind_text(st, 2, doctor_id);
    sqlite3_bind_int64(st, 3, now_ms);
    if ((rc = exec_step(s, st)) < 0)
        goto fail;
    st = stmt(s, "INSERT INTO offers(visit_id, doctor_id, offered_at) VALUES(?1, ?2, ?3)");
    if (!st) {
        rc = TM_EIO;
        goto fail;
    }
    bind_text(st, 1, visit_id);
    bind_text(st, 2, doctor_id);
    sqlite3_bind_int64(st, 3, now_ms);
    if ((rc = exec_step(s, st)) < 0)
        goto fail;
    return commit(s);
fail:
    rollback(s);
    return rc;
}

static int offer_decide(tm_store *s, const char *visit_id, const char *outcome, int64_t now_ms)
{
    sqlite3_stmt *st = stmt(s, "UPDATE offers SET outcome = ?2, decided_at = ?3"
                               " WHERE visit_id = ?1 AND outcome IS NULL");
    if (!st)
        return TM_EIO;
    bind_text(st, 1, visit_id);
    bind_text(st, 2, outcome);
    sqlite3_bind_int64(st, 3, now_ms);
    return exec_step(s, st);
}

int tm_store_visit_unoffer(tm_store *s, const char *visit_id, const char *outcome, int64_t now_ms)
{
    int rc = begin(s);
    if (rc < 0)
        return rc;
    if ((rc = visit_set_state(s, visit_id, "offered", "waiting", now_ms)) < 0)
        goto fail;
    sqlite3_stmt *st = stmt(s, "UPDATE visits SET doctor_id = NULL, offered_at = NULL WHERE id = ?1");
    if (!st) {
        rc = TM_EIO;
        goto fail;
    }
    bind_text(st, 1, visit_id);
    if ((rc = exec_step(s, st)) < 0 || (rc = offer_decide(s, visit_id, outcome, now_ms)) < 0)
        goto fail;
    return commit(s);
fail:
    rollback(s);
    return rc;
}

int tm_store_visit_accept(tm_store *s, const char *visit_id, const char *doctor_id,
                          const char *user_agent, int64_t now_ms)
{
    int rc = begin(s);
    if (rc < 0)
        return rc;
    if ((rc = visit_set_state(s, visit_id, "offered", "active", now_ms)) < 0)
        goto fail;
    sqlite3_stmt *st = stmt(s, "UPDATE visits SET accepted_at = ?3, queue_wait_ms = ?3 - checkin_at,"
                               " response_ms = ?3 - checkin_at WHERE id = ?1 AND doctor_id = ?2");
    if (!st) {
        rc = TM_EIO;
        goto fail;
    }
    bind_text(st, 1, visit_id);
    bind_text(st, 2, doctor_id);
    sqlite3_bind_int64(st, 3, now_ms);
    if ((rc = exec_step(s, st)) < 0)
        goto fail;
    if (sqlite3_changes(s->db) == 0) {
        rc = TM_EPERM; /* offered to another doctor */
        goto fail;
    }
    if ((rc = offer_decide(s, visit_id, "accepted", now_ms)) < 0 ||
        (rc = participant_insert(s, visit_id, doctor_id, "doctor", user_agent, now_ms)) < 0 ||
        (rc = outbox_append(s, "visit.started", visit_id, now_ms)) < 0)
        goto fail;
    return commit(s);
fail:
    rollback(s);
    return rc;
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
    if ((rc = visit_set_state(s, visit_id, v.state, to, now_ms)) < 0)
        goto fail;
    sqlite3_stmt *st = stmt(s, "UPDATE visits SET ended_at = ?2, end_reason = ?3, ended_by = ?4,"
                               " duration_ms = CASE WHEN accepted_at IS NULL THEN NULL"
                               " ELSE ?2 - accepted_at END,"
                               " queue_wait_ms = COALESCE(queue_wait_ms, ?2 - checkin_at)"
                               " WHERE id = ?1");
    if (!st) {
        rc = TM_EIO;
        goto fail;
    }
    bind_text(st, 1, visit_id);
    sqlite3_bind_int64(st, 2, now_ms);
    bind_text(st, 3, reason);
    bind_text(st, 4, by);
    if ((rc = exec_step(s, st)) < 0)
        goto fail;
    if (strcmp(v.state, "offered") == 0 && (rc = offer_decide(s, visit_id, "withdrawn", now_ms)) < 0)
        goto fail;
    st = stmt(s, "UPDATE participants SET left_at = ?2, leave_reason = ?3"
                 " WHERE visit_id = ?1 AND left_at IS NULL");
    if (!st) {
        rc = TM_EIO;
        goto fail;
    }
    bind_text(st, 1, visit_id);
    sqlite3_bind_int64(st, 2, now_ms);
    bind_text(st, 3, reason);
    if ((rc = exec_step(s, st)) < 0)
        goto fail;
    if (v.appointment_id[0]) {
        st = stmt(s, "UPDATE appointments SET status = ?2, updated_at = ?3 WHERE id = ?1");
        if (!st) {
            rc = TM_EIO;
            goto fail;
        }
        bind_text(st, 1, v.appointment_id);
        bind_text(st, 2, strcmp(to, "ended") == 0 ? "fulfilled"
                         : strcmp(reason, "no_show") == 0 ? "noshow" : "booked");
        sqlite3_bind_int64(st, 3, now_ms);
        if ((rc = exec_step(s, st)) < 0)
            goto fail;
    }
    if ((rc = outbox_append(s, "visit.ended", visit_id, now_ms)) < 0)
        goto fail;
    return commit(s);
fail:
    rollback(s);
    return rc;
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
    sqlite3_stmt *st = stmt(s, "UPDATE participants SET left_at = ?3, leave_reason = ?4"
                               " WHERE visit_id = ?1 AND user_id = ?2 AND left_at IS NULL");
    if (!st)
        return TM_EIO;
    bind_text(st, 1, visit_id);
    bind_text(st, 2, user_id);
    sqlite3_bind_int64(st, 3, now_ms);
    bind_text(st, 4, reason);
    return exec_step(s, st);
}

int tm_store_chat_add(tm_store *s, const char *visit_id, const char *sender_id,
                      const char *sender_role, const char *body, int64_t now_ms, int64_t *id_out)
{
    sqlite3_stmt *st = stmt(s, "INSERT INTO chat_messages(visit_id, sender_id, sender_role, body,"
                               " sent_at) VALUES(?1, ?2, ?3, ?4, ?5)");
    if (!st)
        return TM_EIO;
    bind_text(st, 1, visit_id);
    bind_text(st, 2, sender_id);
    bind_text(st, 3, sender_role);
    sqlite3_bind_text(st, 4, body, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 5, now_ms);
    int rc = exec_step(s, st);
    if (rc == 0 && id_out)
        *id_out = sqlite3_last_insert_rowid(s->db);
    return rc;
}

int tm_store_note_save(tm_store *s, const char *visit_id, const char *doctor_id,
                       const char *body, const char *diagnosis_code, bool sign, int64_t now_ms)
{
    int rc = begin(s);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = stmt(s, "SELECT id, signed FROM notes WHERE visit_id = ?1 AND doctor_id = ?2");
    if (!st) {
        rc = TM_EIO;
        goto fail;
    }
    bind_text(st, 1, visit_id);
    bind_text(st, 2, doctor_id);
    int64_t note_id = 0;
    bool was_signed = false;
    if (sqlite3_step(st) == SQLITE_ROW) {
        note_id = sqlite3_column_int64(st, 0);
        was_signed = sqlite3_column_int(st, 1) != 0;
    }
    sqlite3_reset(st);
    if (was_signed) {
        /* A signed note is part of the medical record: it is not rewritten. */
        snprintf(s->errmsg, sizeof(s->errmsg), "note already signed");
        rc = TM_ECONFLICT;
        goto fail;
    }
    if (note_id) {
        st = stmt(s, "UPDATE notes SET body = ?2, diagnosis_code = ?3, signed = ?4, updated_at = ?5"
                     " WHERE id = ?1");
        if (!st) {
            rc = TM_EIO;
            goto fail;
        }
        sqlite3_bind_int64(st, 1, note_id);
    } else {
        st = stmt(s, "INSERT INTO notes(visit_id, doctor_id, body, diagnosis_code, signed,"
                     " created_at, updated_at) VALUES(?6, ?7, ?2, ?3, ?4, ?5, ?5)");
        if (!st) {
            rc = TM_EIO;
            goto fail;
        }
        bind_text(st, 6, visit_id);
        bind_text(st, 7, doctor_id);
    }
    sqlite3_bind_text(st, 2, body, -1, SQLITE_TRANSIENT);
    bind_text(st, 3, diagnosis_code);
    sqlite3_bind_int(st, 4, sign);
    sqlite3_bind_int64(st, 5, now_ms);
    if ((rc = exec_step(s, st)) < 0)
        goto fail;
    if (sign && (rc = outbox_append(s, "visit.note_signed", visit_id, now_ms)) < 0)
        goto fail;
    return commit(s);
fail:
    rollback(s);
    return rc;
}

int tm_store_rating_add(tm_store *s, const char *visit_id, const char *patient_id, int score,
                        const char *comment, int64_t now_ms)
{
    if (score < 1 || score > 5)
        return TM_EINVAL;
    int rc = begin(s);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = stmt(s, "INSERT INTO ratings(visit_id, patient_id, score, comment, created_at)"
                               " VALUES(?1, ?2, ?3, ?4, ?5)");
    if (!st) {
        rc = TM_EIO;
        goto fail;
    }
    bind_text(st, 1, visit_id);
    bind_text(st, 2, patient_id);
    sqlite3_bind_int(st, 3, score);
    bind_text(st, 4, comment);
    sqlite3_bind_int64(st, 5, now_ms);
    if ((rc = exec_step(s, st)) < 0)
        goto fail;
    if ((rc = outbox_append(s, "visit.rated", visit_id, now_ms)) < 0)
        goto fail;
    return commit(s);
fail:
    rollback(s);
    return rc;
}

int tm_store_stats_add(tm_store *s, const char *visit_id, const char *user_id,
                       const char *direction, const char *kind, const char *summary_json,
                       int64_t now_ms)
{
    sqlite3_stmt *st = stmt(s, "INSERT INTO stream_stats(visit_id, user_id, direction, kind, summary,"
                               " recorded_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6)");
    if (!st)
        return TM_EIO;
    bind_text(st, 1, visit_id);
    bind_text(st, 2, user_id);
    bind_text(st, 3, direction);
    bind_text(st, 4, kind);
    bind_text(st, 5, summary_json);
    sqlite3_bind_int64(st, 6, now_ms);
    return exec_step(s, st);
}

static json_t *query_rows(tm_store *s, const char *sql, const char *id)
{
    sqlite3_stmt *st = stmt(s, sql);
    if (!st)
        return json_array();
    bind_text(st, 1, id);
    return rows_to_json(st);
}

json_t *tm_store_visit_record(tm_store *s, const char *id)
{
    sqlite3_stmt *st = stmt(s, "SELECT v.id, v.patient_id, v.dept_id, d.name AS dept_name,"
                               " v.appointment_id, v.doctor_id, v.kind, v.urgent, v.state,"
                               " v.checkin_at, v.offered_at, v.accepted_at, v.ended_at, v.end_reason,"
                               " v.ended_by, v.queue_wait_ms, v.response_ms, v.duration_ms, v.offers"
                               " FROM visits v JOIN departments d ON d.id = v.dept_id WHERE v.id = ?1");
    if (!st)
        return NULL;
    bind_text(st, 1, id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_reset(st);
        return NULL;
    }
    json_t *rec = row_to_json(st);
    sqlite3_reset(st);
    json_object_set_new(rec, "participants",
                        query_rows(s, "SELECT user_id, role, user_agent, joined_at, left_at,"
                                      " leave_reason FROM participants WHERE visit_id = ?1 ORDER BY id", id));
    json_object_set_new(rec, "offers",
                        query_rows(s, "SELECT doctor_id, offered_at, outcome, decided_at FROM offers"
                                      " WHERE visit_id = ?1 ORDER BY id", id));
    json_object_set_new(rec, "notes",
                        query_rows(s, "SELECT doctor_id, body, diagnosis_code, signed, created_at,"
                                      " updated_at FROM notes WHERE visit_id = ?1 ORDER BY id", id));
    json_object_set_new(rec, "chat",
                        query_rows(s, "SELECT id, sender_id, sender_role, body, sent_at FROM chat_messages"
                                      " WHERE visit_id = ?1 ORDER BY id", id));
    json_t *ratings = query_rows(s, "SELECT score, comment, created_at FROM ratings WHERE visit_id = ?1", id);
    json_object_set(rec, "rating", json_array_size(ratings) ? json_array_get(ratings, 0) : json_null());
    json_decref(ratings);
    json_object_set_new(rec, "recordings",
                        query_rows(s, "SELECT id, path, format, state, size_bytes, duration_ms, sha256,"
                                      " encrypted, failure, dropped_packets, started_at, finished_at,"
                                      " deleted_at, deleted_by_policy FROM recordings WHERE visit_id = ?1"
                                      " ORDER BY started_at", id));
    json_t *stats = query_rows(s, "SELECT user_id, direction, kind, summary, recorded_at FROM stream_stats"
                                  " WHERE visit_id = ?1 ORDER BY id", id);
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
    sqlite3_stmt *st = stmt(s, "SELECT v.id, v.patient_id, v.dept_id, v.doctor_id, v.kind, v.urgent,"
                               " v.state, v.checkin_at, v.accepted_at, v.ended_at, v.end_reason,"
                               " v.queue_wait_ms, v.response_ms, v.duration_ms, r.score AS rating"
                               " FROM visits v LEFT JOIN ratings r ON r.visit_id = v.id"
                               " WHERE (?1 IS NULL OR v.state = ?1) AND (?2 IS NULL OR v.dept_id = ?2)"
                               " AND (?3 IS NULL OR v.doctor_id = ?3) AND (?4 IS NULL OR v.patient_id = ?4)"
                               " AND (?5 IS NULL OR v.checkin_at >= ?5) AND (?6 IS NULL OR v.checkin_at < ?6)"
                               " ORDER BY v.checkin_at DESC LIMIT ?7 OFFSET ?8");
    if (!st)
        return NULL;
    bind_text(st, 1, state);
    bind_text(st, 2, dept_id);
    bind_text(st, 3, doctor_id);
    bind_text(st, 4, patient_id);
    bind_time(st, 5, from_ms);
    bind_time(st, 6, to_ms);
    sqlite3_bind_int(st, 7, limit > 0 && limit <= 1000 ? limit : 100);
    sqlite3_bind_int(st, 8, offset > 0 ? offset : 0);
    return rows_to_json(st);
}

int tm_store_visit_counts(tm_store *s, int64_t since_ms, json_t **out)
{
    sqlite3_stmt *st = stmt(s, "SELECT state, count(*) FROM visits WHERE checkin_at >= ?1 GROUP BY state");
    if (!st)
        return TM_EIO;
    sqlite3_bind_int64(st, 1, since_ms);
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
    sqlite3_stmt *st = stmt(s, "SELECT count(*), avg(v.response_ms), avg(r.score), count(r.score)"
                               " FROM visits v LEFT JOIN ratings r ON r.visit_id = v.id"
                               " WHERE v.doctor_id = ?1 AND v.accepted_at >= ?2");
    if (!st)
        return TM_EIO;
    bind_text(st, 1, doctor_id);
    sqlite3_bind_int64(st, 2, since_ms);
    json_t *o = json_object();
    if (sqlite3_step(st) == SQLITE_ROW) {
        json_object_set_new(o, "visits", json_integer(sqlite3_column_int64(st, 0)));
        json_object_set_new(o, "avg_response_ms", sqlite3_column_type(st, 1) == SQLITE_NULL
                                                      ? json_null()
                                                      : json_integer((json_int_t)sqlite3_column_double(st, 1)));
        json_object_set_new(o, "avg_rating", sqlite3_column_type(st, 2) == SQLITE_NULL
                                                 ? json_null()
                                                 : json_real(sqlite3_column_double(st, 2)));
        json_object_set_new(o, "ratings", json_integer(sqlite3_column_int64(st, 3)));
    }
    sqlite3_reset(st);
    *out = o;
    return 0;
}

/* ---- audit log ----------------------------------------------------- */

int tm_store_audit(tm_store *s, const char *actor_id, const char *actor_role, const char *action,
                   const char *target, const char *outcome, const char *detail)
{
    sqlite3_stmt *st = stmt(s, "INSERT INTO audit_log(at, actor_id, actor_role, action, target,"
                               " outcome, detail) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    if (!st)
        return TM_EIO;
    sqlite3_bind_int64(st, 1, tm_now_ms());
    bind_text(st, 2, actor_id && *actor_id ? actor_id : "-");
    bind_text(st, 3, actor_role && *actor_role ? actor_role : "none");
    bind_text(st, 4, action);
    bind_text(st, 5, target);
    bind_text(st, 6, outcome ? outcome : "ok");
    bind_text(st, 7, detail);
    return exec_step(s, st);
}

json_t *tm_store_audit_list(tm_store *s, const char *target, const char *actor_id,
                            int64_t from_ms, int limit)
{
    sqlite3_stmt *st = stmt(s, "SELECT id, at, actor_id, actor_role, action, target, outcome, detail"
                               " FROM audit_log WHERE (?1 IS NULL OR target = ?1)"
                               " AND (?2 IS NULL OR actor_id = ?2) AND (?3 IS NULL OR at >= ?3)"
                               " ORDER BY id DESC LIMIT ?4");
    if (!st)
        return NULL;
    bind_text(st, 1, target);
    bind_text(st, 2, actor_id);
    bind_time(st, 3, from_ms);
    sqlite3_bind_int(st, 4, limit > 0 && limit <= 1000 ? limit : 100);
    return rows_to_json(st);
}

int tm_store_outbox_count(tm_store *s, const char *state, int64_t *count)
{
    sqlite3_stmt *st = stmt(s, "SELECT count(*) FROM outbox WHERE state = ?1");
    if (!st)
        return TM_EIO;
    bind_text(st, 1, state);
    *count = 0;
    if (sqlite3_step(st) == SQLITE_ROW)
        *count = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return 0;
}

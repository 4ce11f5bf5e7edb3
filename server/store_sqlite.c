/*
 * store_sqlite.c - the SQLite backend of include/telemed/store.h: the
 * connection, its schema migrations, the statement helpers every backend
 * file uses (store_internal.h), transactions and the outbox row writer.
 *
 * One connection, WAL mode, owned by the control loop (the only writer).
 * Statements are prepared once per handle and cached by their SQL's
 * address. Every visit step runs in one transaction with its outbox row, so
 * the regulator feed can never miss a step that happened. The rest of the
 * backend: store_schedule.c, store_visit.c, store_outbox.c and
 * recording_store.c.
 */
#include "feed_event.h"
#include "store_internal.h"
#include "store_schema.h"
#include "telemed/common.h"
#include "telemed/visit_chain.h"

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct tm_store {
    sqlite3 *db;
    GHashTable *stmts; /* const char *sql (static) -> sqlite3_stmt * */
    char hospital[64];
    char errmsg[256];
};

const char *tm_store_errmsg(tm_store *s)
{
    return s->errmsg;
}

const char *tm_store_hospital_id(tm_store *s)
{
    return s->hospital;
}

int tm__store_fail(tm_store *s, int rc)
{
    snprintf(s->errmsg, sizeof(s->errmsg), "%s", sqlite3_errmsg(s->db));
    return (rc & 0xff) == SQLITE_CONSTRAINT ? TM_ECONFLICT : TM_EIO;
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

static void bind_args(sqlite3_stmt *st, const char *types, va_list ap)
{
    for (int i = 1; *types; types++, i++) {
        switch (*types) {
        case 's':
            bind_text(st, i, va_arg(ap, const char *));
            break;
        case 'b': {
            const char *v = va_arg(ap, const char *);
            sqlite3_bind_text(st, i, v ? v : "", -1, SQLITE_TRANSIENT);
            break;
        }
        case 'n': {
            const char *v = va_arg(ap, const char *);
            size_t len = va_arg(ap, size_t);
            if (v && len > 0 && len <= INT32_MAX)
                sqlite3_bind_text(st, i, v, (int)len, SQLITE_TRANSIENT);
            else
                sqlite3_bind_null(st, i);
            break;
        }
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

sqlite3_stmt *tm__store_query(tm_store *s, const char *sql, const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    sqlite3_stmt *st = vquery(s, sql, types, ap);
    va_end(ap);
    return st;
}

int tm__store_step_done(tm_store *s, sqlite3_stmt *st)
{
    if (!st)
        return TM_EIO;
    int rc = sqlite3_step(st);
    int ret = rc == SQLITE_DONE ? 0 : tm__store_fail(s, rc);
    sqlite3_reset(st);
    return ret;
}

int tm__store_run(tm_store *s, const char *sql, const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    sqlite3_stmt *st = vquery(s, sql, types, ap);
    va_end(ap);
    return tm__store_step_done(s, st);
}

int tm__store_run_one(tm_store *s, const char *sql, const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    sqlite3_stmt *st = vquery(s, sql, types, ap);
    va_end(ap);
    int rc = tm__store_step_done(s, st);
    if (rc == 0 && sqlite3_changes(s->db) == 0)
        return tm__store_refuse(s, TM_ENOTFOUND, "no such row in that state");
    return rc;
}

int tm__store_step(tm_store *s, sqlite3_stmt *st)
{
    if (!st)
        return TM_EIO;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        return 1;
    return rc == SQLITE_DONE ? 0 : tm__store_fail(s, rc);
}

int tm__store_changes(tm_store *s)
{
    return sqlite3_changes(s->db);
}

int64_t tm__store_last_rowid(tm_store *s)
{
    return sqlite3_last_insert_rowid(s->db);
}

void tm__store_set_error(tm_store *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof(s->errmsg), fmt, ap);
    va_end(ap);
}

int tm__store_refuse(tm_store *s, int code, const char *why)
{
    snprintf(s->errmsg, sizeof(s->errmsg), "%s", why);
    return code;
}

void tm__store_make_id(const char *prefix, char *out, size_t outlen)
{
    char uuid[37];
    tm_uuid4(uuid);
    snprintf(out, outlen, "%s-%s", prefix, uuid);
}

void tm__store_col_text(sqlite3_stmt *st, int i, char *out, size_t outlen)
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

int tm__store_begin(tm_store *s)
{
    return tm__store_run(s, "BEGIN IMMEDIATE", "");
}

/* A failed statement may have rolled the transaction back already (SQLite
 * does on SQLITE_FULL and SQLITE_IOERR); only roll back what is open. The
 * errmsg of the first failure is kept: it is the one worth reading. */
int tm__store_finish(tm_store *s, int rc)
{
    if (rc == 0 && (rc = tm__store_run(s, "COMMIT", "")) == 0)
        return 0;
    if (!sqlite3_get_autocommit(s->db)) {
        char keep[sizeof(s->errmsg)];
        memcpy(keep, s->errmsg, sizeof(keep));
        tm__store_run(s, "ROLLBACK", "");
        memcpy(s->errmsg, keep, sizeof(keep));
    }
    return rc;
}

/* The arguments after types are always passed; types takes the first three
 * or all four, as sql needs them. */
int tm__store_mark_rows(tm_store *s, const char *sql, const char *types, const int64_t *keys,
                        size_t n, const int64_t *at, int64_t at_all, int status, const char *error)
{
    if (n == 0)
        return 0;
    int rc = tm__store_begin(s);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = tm__store_run(s, sql, types, keys[i], at ? at[i] : at_all, status, error);
    return tm__store_finish(s, rc);
}

/* One outbox row of subject visit_id with payload (borrowed; NULL: it
 * could not be built), chained to the subject's last row. */
static int outbox_insert(tm_store *s, const char *type, const char *visit_id, int64_t now_ms,
                         const char *payload)
{
    if (!payload) {
        snprintf(s->errmsg, sizeof(s->errmsg), "cannot build %s event", type);
        return TM_ENOMEM;
    }
    char event_id[37], chain[65];
    tm_uuid4(event_id);
    tm_chain_event ev = {event_id, type, visit_id, now_ms, payload, strlen(payload)};
    int rc = tm__store_chain_next(s, &ev, chain);
    if (rc == 0)
        rc = tm__store_run(s,
                           "INSERT INTO outbox(event_id, type, visit_id, occurred_at, payload,"
                           " chain_hash) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                           "sssIbs", event_id, type, visit_id, now_ms, payload, chain);
    return rc;
}

int tm__store_outbox_append(tm_store *s, const char *type, const char *visit_id, int64_t now_ms)
{
    return tm__store_outbox_append_with(s, type, visit_id, now_ms, NULL, NULL);
}

int tm__store_outbox_append_with(tm_store *s, const char *type, const char *visit_id,
                                 int64_t now_ms, const char *key, json_t *extra)
{
    tm_visit_facts facts;
    int rc = tm_store_visit_facts(s, visit_id, &facts);
    if (rc < 0)
        return rc;
    char *payload = tm__feed_event_payload_with(&facts, type, key, extra);
    rc = outbox_insert(s, type, visit_id, now_ms, payload);
    free(payload);
    return rc;
}

int tm__store_outbox_append_data(tm_store *s, const char *type, const char *subject_id,
                                 int64_t now_ms, json_t *data)
{
    char *payload = json_dumps(data, JSON_COMPACT | JSON_PRESERVE_ORDER);
    int rc = outbox_insert(s, type, subject_id, now_ms, payload);
    free(payload);
    return rc;
}

/* ---- open, migrate ------------------------------------------------- */

static int migrate(tm_store *s)
{
    sqlite3_stmt *st = NULL;
    int version = 0;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return tm__store_fail(s, SQLITE_ERROR);
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

/* The database holds patient data: it is made 0600, and an existing one
 * (or -wal/-shm left by an older server) loses any group or other access.
 * SQLite creates -wal and -shm with the database file's mode. */
static int make_private(tm_store *s, const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || fchmod(fd, 0600) < 0) {
        snprintf(s->errmsg, sizeof(s->errmsg), "open %s: %s", path, g_strerror(errno));
        if (fd >= 0)
            close(fd);
        return TM_EIO;
    }
    close(fd);
    static const char *const sides[] = {"-wal", "-shm"};
    for (size_t i = 0; i < TM_ARRAY_LEN(sides); i++) {
        char *side = g_strconcat(path, sides[i], NULL);
        int rc = chmod(side, 0600);
        int e = errno;
        g_free(side);
        if (rc < 0 && e != ENOENT) {
            snprintf(s->errmsg, sizeof(s->errmsg), "chmod %s%s: %s", path, sides[i], g_strerror(e));
            return TM_EIO;
        }
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
        if (err)
            *err = g_strdup("out of memory");
        return NULL;
    }
    snprintf(s->hospital, sizeof(s->hospital), "%s", hospital_id ? hospital_id : "");
    s->stmts = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, finalize_stmt);
    if (make_private(s, path) < 0)
        goto fail;
    int rc = sqlite3_open_v2(
        path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(s->errmsg, sizeof(s->errmsg), "open %s: %s", path,
                 s->db ? sqlite3_errmsg(s->db) : "out of memory");
        goto fail;
    }
    /* Only another process (an operator's shell, a backup) takes the write
     * lock; the control loop waits for it at most 5 s, then the step is
     * refused with TM_EIO and "database is locked". */
    sqlite3_busy_timeout(s->db, 5000);
    sqlite3_extended_result_codes(s->db, 1);
    /* WAL: readers (reports, exports) never block the control loop's writes;
     * synchronous=NORMAL in WAL is durable across process crashes (kill -9),
     * and FULL makes it durable across power loss too: a visit step that the
     * regulator must see is worth the fsync. */
    if (exec_sql(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;") <
        0)
        goto fail;
    if (migrate(s) < 0)
        goto fail;
    return s;
fail:
    if (err)
        *err = g_strdup(s->errmsg[0] ? s->errmsg : "cannot open store");
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
    int v = TM_EIO;
    if (st && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    if (st)
        sqlite3_reset(st);
    return v;
}

/* ---- generic row -> JSON ------------------------------------------- */

static bool is_flag_column(const char *name)
{
    static const char *const flags[] = {
        "urgent", "active", "signed", "encrypted", "recording_consent", "recording"};
    for (size_t i = 0; i < TM_ARRAY_LEN(flags); i++)
        if (strcmp(name, flags[i]) == 0)
            return true;
    return false;
}

static bool is_time_column(const char *name)
{
    size_t len = strlen(name);
    return (len > 3 && strcmp(name + len - 3, "_at") == 0) || strcmp(name, "at") == 0;
}

json_t *tm__store_row_json(sqlite3_stmt *st)
{
    json_t *o = json_object();
    int n = sqlite3_column_count(st);
    for (int i = 0; i < n; i++) {
        const char *name = sqlite3_column_name(st, i);
        switch (sqlite3_column_type(st, i)) {
        case SQLITE_INTEGER: {
            int64_t v = sqlite3_column_int64(st, i);
            if (is_flag_column(name)) {
                json_object_set_new(o, name, json_boolean(v != 0));
            } else if (is_time_column(name)) {
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

json_t *tm__store_rows_json(tm_store *s, sqlite3_stmt *st)
{
    if (!st)
        return NULL;
    json_t *a = json_array();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(a, tm__store_row_json(st));
    if (rc != SQLITE_DONE) {
        tm__store_fail(s, rc);
        json_decref(a);
        a = NULL;
    }
    sqlite3_reset(st);
    return a;
}

/*
 * store_sqlite.c - the SQLite engine of the store (store_engine.h): one
 * connection, WAL mode, owned by the control loop (the only writer); the
 * schema migrations; its statements behind the tm__stmt layer.
 */
#include "store_engine.h"
#include "store_schema.h"
#include "telemed/common.h"

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct lite_stmt {
    tm__stmt base;
    sqlite3_stmt *st;
} lite_stmt;

static sqlite3 *db_of(tm_store *s)
{
    return s->conn;
}

static sqlite3_stmt *raw(tm__stmt *st)
{
    return ((lite_stmt *)st)->st;
}

/* Records the connection's message for a failed step and maps the code:
 * constraint -> TM_ECONFLICT, anything else -> TM_EIO. */
static int lite_fail(tm_store *s, int rc)
{
    snprintf(s->errmsg, sizeof(s->errmsg), "%s", sqlite3_errmsg(db_of(s)));
    if (rc == SQLITE_NOMEM)
        return TM_ENOMEM;
    return (rc & 0xff) == SQLITE_CONSTRAINT ? TM_ECONFLICT : TM_EIO;
}

static const tm__engine lite_engine;

static tm__stmt *lite_prepare(tm_store *s, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(db_of(s), sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        snprintf(s->errmsg, sizeof(s->errmsg), "prepare: %s", sqlite3_errmsg(db_of(s)));
        return NULL;
    }
    lite_stmt *l = g_new0(lite_stmt, 1);
    l->base.eng = &lite_engine;
    l->st = st;
    return &l->base;
}

static void lite_finalize(tm__stmt *st)
{
    sqlite3_finalize(raw(st));
    g_free(st);
}

static void lite_bind(tm__stmt *stmt, const tm__arg *args, int n)
{
    sqlite3_stmt *st = raw(stmt);
    for (int i = 0; i < n; i++) {
        const tm__arg *a = &args[i];
        if (a->kind == TM__ARG_TEXT)
            sqlite3_bind_text(st, i + 1, a->text, (int)a->len, SQLITE_TRANSIENT);
        else if (a->kind == TM__ARG_INT)
            sqlite3_bind_int64(st, i + 1, a->i);
        else
            sqlite3_bind_null(st, i + 1);
    }
}

static int lite_step(tm_store *s, tm__stmt *st)
{
    int rc = sqlite3_step(raw(st));
    if (rc == SQLITE_ROW)
        return 1;
    return rc == SQLITE_DONE ? 0 : lite_fail(s, rc);
}

static void lite_reset(tm__stmt *st)
{
    sqlite3_reset(raw(st));
    sqlite3_clear_bindings(raw(st));
}

static int lite_col_count(tm__stmt *st)
{
    return sqlite3_column_count(raw(st));
}

static const char *lite_col_name(tm__stmt *st, int i)
{
    return sqlite3_column_name(raw(st), i);
}

static tm__col_type lite_col_kind(tm__stmt *st, int i)
{
    switch (sqlite3_column_type(raw(st), i)) {
    case SQLITE_INTEGER:
        return TM__COL_INT;
    case SQLITE_FLOAT:
        return TM__COL_REAL;
    case SQLITE_TEXT:
        return TM__COL_TEXT;
    case SQLITE_BLOB:
        return TM__COL_BLOB;
    default:
        return TM__COL_NULL;
    }
}

static int64_t lite_col_int64(tm__stmt *st, int i)
{
    return sqlite3_column_int64(raw(st), i);
}

static double lite_col_double(tm__stmt *st, int i)
{
    return sqlite3_column_double(raw(st), i);
}

static const char *lite_col_text(tm__stmt *st, int i)
{
    return (const char *)sqlite3_column_text(raw(st), i);
}

static const void *lite_col_blob(tm__stmt *st, int i)
{
    return sqlite3_column_blob(raw(st), i);
}

static int lite_col_bytes(tm__stmt *st, int i)
{
    return sqlite3_column_bytes(raw(st), i);
}

static int lite_changes(tm_store *s)
{
    return sqlite3_changes(db_of(s));
}

static int exec_sql(tm_store *s, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db_of(s), sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(s->errmsg, sizeof(s->errmsg), "%s", msg ? msg : "exec failed");
        sqlite3_free(msg);
        return TM_EIO;
    }
    return 0;
}

/* BEGIN IMMEDIATE takes the write lock now, so a busy database fails
 * here, before anything is written. */
static int lite_begin(tm_store *s)
{
    return tm__store_run(s, "BEGIN IMMEDIATE", "");
}

static bool lite_in_transaction(tm_store *s)
{
    return !sqlite3_get_autocommit(db_of(s));
}

/* A failed statement may have rolled the transaction back already (SQLite
 * does on SQLITE_FULL and SQLITE_IOERR); only roll back what is open. The
 * errmsg of the first failure is kept: it is the one worth reading. */
static int lite_finish(tm_store *s, int rc)
{
    if (rc == 0 && (rc = tm__store_run(s, "COMMIT", "")) == 0)
        return 0;
    if (lite_in_transaction(s)) {
        char keep[sizeof(s->errmsg)];
        memcpy(keep, s->errmsg, sizeof(keep));
        tm__store_run(s, "ROLLBACK", "");
        memcpy(s->errmsg, keep, sizeof(keep));
    }
    return rc;
}

static int lite_schema_version(tm_store *s)
{
    tm__stmt *st = tm__store_stmt(s, "PRAGMA user_version");
    int v = TM_EIO;
    if (st && lite_step(s, st) == 1)
        v = (int)lite_col_int64(st, 0);
    if (st)
        lite_reset(st);
    return v;
}

static void lite_close(tm_store *s)
{
    if (s->conn)
        sqlite3_close(db_of(s));
    s->conn = NULL;
}

static const tm__engine lite_engine = {
    .prepare = lite_prepare,
    .finalize = lite_finalize,
    .bind = lite_bind,
    .step = lite_step,
    .reset = lite_reset,
    .col_count = lite_col_count,
    .col_name = lite_col_name,
    .col_kind = lite_col_kind,
    .col_int64 = lite_col_int64,
    .col_double = lite_col_double,
    .col_text = lite_col_text,
    .col_blob = lite_col_blob,
    .col_bytes = lite_col_bytes,
    .changes = lite_changes,
    .begin = lite_begin,
    .finish = lite_finish,
    .in_transaction = lite_in_transaction,
    .schema_version = lite_schema_version,
    .lock_key = NULL,
    .clock_ms = NULL,
    .close = lite_close,
};

/* ---- open, migrate ------------------------------------------------- */

static int migrate(tm_store *s)
{
    int version = lite_schema_version(s);
    if (version < 0)
        return version;
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

int tm__sqlite_open(tm_store *s, const char *path)
{
    if (make_private(s, path) < 0)
        return TM_EIO;
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(
        path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    s->eng = &lite_engine;
    s->conn = db;
    if (rc != SQLITE_OK) {
        snprintf(s->errmsg, sizeof(s->errmsg), "open %s: %s", path,
                 db ? sqlite3_errmsg(db) : "out of memory");
        return TM_EIO;
    }
    /* Only another process (an operator's shell, a backup) takes the write
     * lock; the control loop waits for it at most 5 s, then the step is
     * refused with TM_EIO and "database is locked". */
    sqlite3_busy_timeout(db, 5000);
    sqlite3_extended_result_codes(db, 1);
    /* WAL: readers (reports, exports) never block the control loop's writes;
     * synchronous=NORMAL in WAL is durable across process crashes (kill -9),
     * and FULL makes it durable across power loss too: a visit step that the
     * regulator must see is worth the fsync. */
    if (exec_sql(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;") <
        0)
        return TM_EIO;
    return migrate(s);
}

/*
 * store_engine.h - the database engines under the store's statement layer
 * (store_internal.h): SQLite (store_sqlite.c) and PostgreSQL (store_pg.c).
 * store_core.c holds what does not depend on the engine: the statement
 * cache, argument decoding, errors, the outbox writer and row -> JSON.
 * Only those three files include this header.
 */
#ifndef TELEMED_STORE_ENGINE_H
#define TELEMED_STORE_ENGINE_H

#include "store_internal.h"

#include <glib.h>
#include <stddef.h>
#include <stdint.h>

/* One decoded argument of a statement (the type letters of
 * tm__store_query, store_internal.h): NULL, text with its length, or an
 * integer. */
typedef enum { TM__ARG_NULL, TM__ARG_TEXT, TM__ARG_INT } tm__arg_kind;
typedef struct tm__arg {
    tm__arg_kind kind;
    char type; /* its letter: an engine that types parameters reads it */
    const char *text;
    size_t len;
    int64_t i;
} tm__arg;

#define TM__MAX_ARGS 32

/* Every engine's statement starts with this header, so the column
 * accessors find the engine from the statement alone. */
struct tm__stmt {
    const struct tm__engine *eng;
};

typedef struct tm__engine {
    /* Prepares sql (static; the cache keys on its address): NULL with
     * errmsg set on failure. finalize frees what prepare made. */
    tm__stmt *(*prepare)(tm_store *s, const char *sql);
    void (*finalize)(tm__stmt *st);
    /* Binds n arguments to a reset statement: ?1 is args[0]. */
    void (*bind)(tm__stmt *st, const tm__arg *args, int n);
    /* 1 on a row, 0 at the end, or a TM_E* code with errmsg set. */
    int (*step)(tm_store *s, tm__stmt *st);
    void (*reset)(tm__stmt *st);
    int (*col_count)(tm__stmt *st);
    const char *(*col_name)(tm__stmt *st, int i);
    tm__col_type (*col_kind)(tm__stmt *st, int i);
    int64_t (*col_int64)(tm__stmt *st, int i);
    double (*col_double)(tm__stmt *st, int i);
    const char *(*col_text)(tm__stmt *st, int i);
    const void *(*col_blob)(tm__stmt *st, int i);
    int (*col_bytes)(tm__stmt *st, int i);
    /* Rows changed by the last statement that ran (a new row id: RETURNING). */
    int (*changes)(tm_store *s);
    /* A write transaction and its end (store_internal.h's contract). */
    int (*begin)(tm_store *s);
    int (*finish)(tm_store *s, int rc);
    bool (*in_transaction)(tm_store *s);
    int (*schema_version)(tm_store *s);
    /* tm__store_lock_key, or NULL where a transaction's write lock
     * already serialises every writer (SQLite). */
    int (*lock_key)(tm_store *s, const char *key);
    /* tm__store_clock_ms: the database server's time, or NULL where the
     * store's only writer is this process (SQLite: the caller's now). */
    int (*clock_ms)(tm_store *s, int64_t *now_ms);
    /* Sends a bound statement inside the open transaction without waiting
     * for its answer (PostgreSQL's pipeline): 0, 1 when the engine runs it
     * only at its step (no transaction, or NULL: SQLite), or a TM_E* code.
     * keep: its answer is kept for its step (sent_with matches it);
     * otherwise only a failure counts, failing the transaction. */
    int (*send)(tm_store *s, tm__stmt *st, bool keep);
    bool (*sent_with)(tm__stmt *st, const tm__arg *args, int n);
    void (*close)(tm_store *s);
} tm__engine;

struct tm_store {
    const tm__engine *eng;
    void *conn;        /* the engine's connection */
    char *where;       /* the path or URL it was opened with (tm__store_open_twin) */
    GHashTable *stmts; /* const char *sql (static) -> tm__stmt * */
    char hospital[64];
    /* Who claims outbox rows through this handle, and for how long
     * (tm_store_set_lease). */
    char lease_holder[64];
    int64_t lease_ms;
    char errmsg[256];
};

/* Engine openers: 0, or a TM_E* code with s->errmsg set. */
int tm__sqlite_open(tm_store *s, const char *path);
int tm__pg_open(tm_store *s, const char *url);

/* Core services for the engines (store_core.c). */
tm__stmt *tm__store_stmt(tm_store *s, const char *sql);
#endif

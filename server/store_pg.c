/*
 * store_pg.c - the PostgreSQL engine of the store (store_engine.h), over
 * libpq: one connection owned by the control loop. Statements are prepared
 * on the server once per connection (their ?N become $N), parameters go as
 * text, a result is held whole and stepped row by row.
 *
 * A write transaction runs in libpq's pipeline mode: BEGIN and the
 * statements whose answers the step does not wait for (tm__store_prefetch,
 * tm__store_run_later) are sent without waiting, and the first statement
 * the step waits for collects them all in one round trip. The first
 * failure in the pipeline fails the transaction; COMMIT is sent only when
 * every answer before it was a success, and its own answer is awaited.
 *
 * A lost connection fails the statement with TM_EIO and is reopened at the
 * next one; a transaction that was open when it was lost fails all the way
 * to its finish (reported failed, never half-acknowledged), since the
 * server rolled it back. Constraint violations (SQLSTATE class 23) are
 * TM_ECONFLICT, as SQLite's are.
 *
 * The schema is the shared migration list (store_schema.h) with its type
 * words translated (pg_type_words); the version lives in tm_schema_version.
 */
#include "store_engine.h"
#include "store_schema.h"
#include "telemed/common.h"

#include <ctype.h>
#include <glib.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* PostgreSQL type oids (catalog/pg_type.h, stable across versions). */
enum {
    OID_BOOL = 16,
    OID_INT8 = 20,
    OID_TEXT = 25,
    OID_INT2 = 21,
    OID_INT4 = 23,
    OID_OID = 26,
    OID_FLOAT4 = 700,
    OID_FLOAT8 = 701,
    OID_NUMERIC = 1700,
};

/* Serializes concurrent migrations of several nodes starting at once. */
#define MIGRATION_LOCK_KEY 1952805748

typedef struct pg_stmt pg_stmt;

/* What an answer in the pipeline belongs to, in the order sent. */
typedef enum { SENT_PREPARE, SENT_QUERY, SENT_COMMIT, SENT_SYNC } sent_kind;
typedef struct sent {
    sent_kind kind;
    pg_stmt *st; /* the statement that wants the answer; NULL: only its failure counts */
} sent;

typedef struct pg_conn {
    PGconn *pg;
    unsigned gen;        /* bumps at every (re)connect: prepared statements die with it */
    unsigned names;      /* statement names handed out */
    int changes;         /* rows of the last statement */
    bool in_tx;          /* BEGIN sent, finish not yet run */
    bool tx_lost;        /* the connection went away inside that transaction */
    int64_t retry_at_ms; /* monotonic: no reconnect before this, after one failed */
    int64_t backoff_ms;  /* the wait after the next failed reconnect */
    GQueue sent;         /* sent * awaiting answers (pipeline mode, inside a transaction) */
    bool unsynced;       /* sent since the last Sync: the server holds those answers */
    int pipe_rc;         /* the first failure in the pipeline, or 0 */
    unsigned txn;        /* bumps at every BEGIN: an answer kept is its transaction's only */
    /* The server's clock as an offset from this process's monotonic one,
     * read on connection clock_gen at clock_read_ms (pg_clock_ms). */
    unsigned clock_gen;
    int64_t clock_read_ms, clock_offset_ms;
} pg_conn;

/* A server that does not answer must not hold the control loop on every
 * step: after a reconnect that failed slowly (no answer until the connect
 * timeout), steps fail at once until the next try. One refused at once
 * (PostgreSQL down, its host up) is tried again at the next step, so a
 * restarted server is used as soon as it is back. */
/* Session settings for every connection (tm__pg_open says why). */
#define SESSION_OPTIONS                                                                            \
    "-c statement_timeout=15000 -c lock_timeout=5000"                                              \
    " -c idle_in_transaction_session_timeout=10000 -c tcp_keepalives_idle=5"                       \
    " -c tcp_keepalives_interval=2 -c tcp_keepalives_count=3 -c tcp_user_timeout=10000"

#define RECONNECT_SLOW_MS 100
#define RECONNECT_BACKOFF_MIN_MS 1000
#define RECONNECT_BACKOFF_MAX_MS 10000

struct pg_stmt {
    tm__stmt base;
    char *sql; /* with $N placeholders */
    int nparams;
    char name[16];
    unsigned gen; /* connection generation it is prepared on; 0: none */
    char *vals[TM__MAX_ARGS];
    char types[TM__MAX_ARGS];
    int nbound;
    PGresult *res;
    int row, nrows;
    int changes;
    bool ran;
    bool queued;  /* sent in the pipeline with its answer kept for its step */
    unsigned txn; /* the transaction it was sent in */
    pg_conn *conn;
};

static pg_conn *conn_of(tm_store *s)
{
    return s->conn;
}

static pg_stmt *pst(tm__stmt *st)
{
    return (pg_stmt *)st;
}

static const tm__engine pg_engine;

/* ---- errors and the connection ----------------------------------------- */

static void set_message(tm_store *s, const char *what, const char *msg)
{
    size_t len = strlen(msg);
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
        len--;
    snprintf(s->errmsg, sizeof(s->errmsg), "%s%.*s", what, (int)len, msg);
}

/* The connection is gone: whatever transaction was open died with it. */
static int lost(tm_store *s, const char *msg)
{
    pg_conn *c = conn_of(s);
    if (c->in_tx)
        c->tx_lost = true;
    set_message(s, "PostgreSQL connection lost: ", msg);
    return TM_EIO;
}

static int fail_result(tm_store *s, PGresult *r)
{
    pg_conn *c = conn_of(s);
    if (PQstatus(c->pg) != CONNECTION_OK)
        return lost(s, PQerrorMessage(c->pg));
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    set_message(s, "", primary ? primary : PQerrorMessage(c->pg));
    if (state && strncmp(state, "23", 2) == 0)
        return TM_ECONFLICT;
    return TM_EIO;
}

/* Before a statement: a transaction that lost its connection fails until
 * its finish; outside one, a lost connection is reopened now. */
static int ready(tm_store *s)
{
    pg_conn *c = conn_of(s);
    if (c->tx_lost) {
        snprintf(s->errmsg, sizeof(s->errmsg), "PostgreSQL connection lost during the transaction");
        return TM_EIO;
    }
    /* A connection the server closed while it sat idle (a restart) is
     * noticed here, without a round trip, and reopened: a handle used
     * rarely (the store thread's, store_queue.c) does not fail its next
     * step for an outage that is over. Twice: a shutdown's notice comes
     * before the close, and a read that got data does not look further. */
    for (int i = 0; i < 2 && !c->in_tx && PQstatus(c->pg) == CONNECTION_OK; i++)
        PQconsumeInput(c->pg);
    if (PQstatus(c->pg) == CONNECTION_OK)
        return 0;
    int64_t now = tm_mono_ms();
    if (now < c->retry_at_ms) {
        snprintf(s->errmsg, sizeof(s->errmsg), "PostgreSQL unreachable (next try in %lld ms)",
                 (long long)(c->retry_at_ms - now));
        return TM_EIO;
    }
    PQreset(c->pg);
    if (PQstatus(c->pg) != CONNECTION_OK) {
        set_message(s, "PostgreSQL unreachable: ", PQerrorMessage(c->pg));
        int64_t after = tm_mono_ms();
        if (after - now >= RECONNECT_SLOW_MS) {
            c->retry_at_ms = after + c->backoff_ms;
            c->backoff_ms = MIN(c->backoff_ms * 2, RECONNECT_BACKOFF_MAX_MS);
        }
        return TM_EIO;
    }
    c->backoff_ms = RECONNECT_BACKOFF_MIN_MS;
    c->gen++;
    return 0;
}

/* A command with no parameters and no rows (BEGIN, migrations). */
static int exec_simple(tm_store *s, const char *sql)
{
    PGresult *r = PQexec(conn_of(s)->pg, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : fail_result(s, r);
    PQclear(r);
    return rc;
}

/* ---- statements -------------------------------------------------------- */

/* The few SQLite functions the store's SQL uses that PostgreSQL names
 * otherwise, with the same arguments and meaning. */
static const struct {
    const char *sqlite, *pg;
} renamed[] = {
    {"json_object(", "json_build_object("},
};

static bool word_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

/* SQLite's planner hint "INDEXED BY name": PostgreSQL plans by itself. */
static size_t hint_at(const char *p)
{
    static const char hint[] = "INDEXED BY ";
    if (strncmp(p, hint, sizeof(hint) - 1) != 0)
        return 0;
    size_t n = sizeof(hint) - 1;
    while (word_char(p[n]))
        n++;
    return n;
}

static size_t renamed_at(const char *p, const char *start, GString *out)
{
    if (p > start && word_char(p[-1]))
        return 0;
    size_t hint = hint_at(p);
    if (hint)
        return hint;
    for (size_t i = 0; i < TM_ARRAY_LEN(renamed); i++) {
        size_t n = strlen(renamed[i].sqlite);
        if (strncmp(p, renamed[i].sqlite, n) == 0) {
            g_string_append(out, renamed[i].pg);
            return n;
        }
    }
    return 0;
}

/* The store's SQL in PostgreSQL's words: ?N -> $N and ? -> the next $N,
 * the renamed functions, no planner hints, outside quoted text. Sets *nparams to the
 * highest number used. */
static char *pg_sql(const char *sql, int *nparams)
{
    GString *out = g_string_sized_new(strlen(sql) + 16);
    int next = 0, high = 0;
    char quote = 0;
    for (const char *p = sql; *p; p++) {
        if (quote) {
            if (*p == quote)
                quote = 0;
            g_string_append_c(out, *p);
            continue;
        }
        if (*p == '\'' || *p == '"') {
            quote = *p;
            g_string_append_c(out, *p);
            continue;
        }
        size_t skip = renamed_at(p, sql, out);
        if (skip) {
            p += skip - 1;
            continue;
        }
        if (*p != '?') {
            g_string_append_c(out, *p);
            continue;
        }
        int n = 0;
        if (isdigit((unsigned char)p[1])) {
            while (isdigit((unsigned char)p[1]))
                n = n * 10 + (*++p - '0');
        } else {
            n = ++next;
        }
        if (n > high)
            high = n;
        g_string_append_printf(out, "$%d", n);
    }
    *nparams = high;
    return g_string_free(out, FALSE);
}

static tm__stmt *pg_prepare(tm_store *s, const char *sql)
{
    pg_conn *c = conn_of(s);
    pg_stmt *st = g_new0(pg_stmt, 1);
    st->base.eng = &pg_engine;
    st->sql = pg_sql(sql, &st->nparams);
    if (st->nparams > TM__MAX_ARGS) {
        snprintf(s->errmsg, sizeof(s->errmsg), "prepare: %d parameters", st->nparams);
        g_free(st->sql);
        g_free(st);
        return NULL;
    }
    snprintf(st->name, sizeof(st->name), "tm%u", ++c->names);
    st->conn = c;
    return &st->base;
}

/* The answers sent for st are no longer its: a reset statement is bound anew. */
static void forget_sent(pg_conn *c, pg_stmt *st, bool prepares_too)
{
    for (GList *l = c->sent.head; l; l = l->next) {
        sent *e = l->data;
        if (e->st == st && (prepares_too || e->kind != SENT_PREPARE))
            e->st = NULL;
    }
}

static void pg_reset(tm__stmt *stmt)
{
    pg_stmt *st = pst(stmt);
    if (st->queued)
        forget_sent(st->conn, st, false);
    st->queued = false;
    for (int i = 0; i < st->nbound; i++) {
        g_free(st->vals[i]);
        st->vals[i] = NULL;
    }
    st->nbound = 0;
    PQclear(st->res);
    st->res = NULL;
    st->ran = false;
    st->row = -1;
    st->nrows = 0;
    st->changes = 0;
}

static void pg_finalize(tm__stmt *stmt)
{
    pg_reset(stmt);
    forget_sent(pst(stmt)->conn, pst(stmt), true);
    g_free(pst(stmt)->sql);
    g_free(stmt);
}

/* PostgreSQL text holds UTF-8 without NUL; bytes from outside (a
 * receiver's response body) are kept readable, the rest replaced. */
static char *utf8_text(const char *v, size_t len)
{
    if (g_utf8_validate_len(v, len, NULL))
        return g_strndup(v, len);
    return g_utf8_make_valid(v, (gssize)len);
}

static void pg_bind(tm__stmt *stmt, const tm__arg *args, int n)
{
    pg_stmt *st = pst(stmt);
    for (int i = 0; i < n; i++) {
        const tm__arg *a = &args[i];
        if (a->kind == TM__ARG_TEXT)
            st->vals[i] = utf8_text(a->text, a->len);
        else if (a->kind == TM__ARG_INT)
            st->vals[i] = g_strdup_printf("%" PRId64, a->i);
        st->types[i] = a->type;
    }
    st->nbound = n;
}

/* Every parameter is typed by its letter: a use such as `?1 IS NULL`
 * gives the server nothing to infer a type from. */
static void param_types(const pg_stmt *st, Oid types[TM__MAX_ARGS])
{
    for (int i = 0; i < st->nparams && i < st->nbound; i++)
        if (st->types[i] == 'i' || st->types[i] == 'I' || st->types[i] == 't')
            types[i] = OID_INT8;
        else
            types[i] = OID_TEXT;
}

static int prepare_on_server(tm_store *s, pg_stmt *st)
{
    pg_conn *c = conn_of(s);
    Oid types[TM__MAX_ARGS] = {0};
    param_types(st, types);
    PGresult *r = PQprepare(c->pg, st->name, st->sql, st->nparams, types);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : fail_result(s, r);
    PQclear(r);
    if (rc == 0)
        st->gen = c->gen;
    else if (rc != TM_EIO || PQstatus(c->pg) == CONNECTION_OK)
        tm__store_set_error(s, "prepare: %.200s", tm_store_errmsg(s));
    return rc;
}

static void bound_values(const pg_stmt *st, const char *vals[TM__MAX_ARGS])
{
    for (int i = 0; i < st->nparams; i++)
        vals[i] = i < st->nbound ? st->vals[i] : NULL;
}

/* ---- the pipeline of a write transaction ------------------------------- */

static void expect(pg_conn *c, sent_kind kind, pg_stmt *st)
{
    sent *e = g_new(sent, 1);
    *e = (sent){kind, st};
    g_queue_push_tail(&c->sent, e);
    if (kind != SENT_SYNC)
        c->unsynced = true;
}

/* The first failure is the transaction's: later answers are only the
 * pipeline's abort of what followed it. */
static void pipe_failed(tm_store *s, PGresult *r)
{
    pg_conn *c = conn_of(s);
    if (c->pipe_rc == 0)
        c->pipe_rc = fail_result(s, r);
    else if (PQstatus(c->pg) != CONNECTION_OK)
        c->tx_lost = true;
}

static void drop_sent(pg_conn *c)
{
    sent *e;
    while ((e = g_queue_pop_head(&c->sent)))
        g_free(e);
    c->unsynced = false;
}

static void keep_answer(pg_stmt *st, PGresult *r)
{
    PQclear(st->res);
    const char *n = PQcmdTuples(r);
    st->changes = n && *n ? atoi(n) : 0;
    st->res = r;
    st->nrows = PQntuples(r);
    st->row = -1;
}

static bool answer_ok(const sent *e, PGresult *r)
{
    ExecStatusType status = PQresultStatus(r);
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK)
        return false;
    /* COMMIT of a transaction the server had already failed answers ROLLBACK. */
    return e->kind != SENT_COMMIT || strcmp(PQcmdStatus(r), "COMMIT") == 0;
}

/* Reads the answer of the oldest entry. false when the connection is gone
 * (every entry is dropped then). */
static bool take_answer(tm_store *s)
{
    pg_conn *c = conn_of(s);
    sent *e = g_queue_pop_head(&c->sent);
    PGresult *r = PQgetResult(c->pg);
    bool ok =
        r && (e->kind == SENT_SYNC ? PQresultStatus(r) == PGRES_PIPELINE_SYNC : answer_ok(e, r));
    if (!ok) {
        if (r && c->pipe_rc == 0 && PQresultStatus(r) == PGRES_COMMAND_OK)
            c->pipe_rc = tm__store_refuse(s, TM_EIO, "the transaction was rolled back");
        else
            pipe_failed(s, r);
        if (e->kind == SENT_PREPARE && e->st)
            e->st->gen = 0;
    }
    if (ok && e->kind == SENT_QUERY && e->st)
        keep_answer(e->st, r);
    else
        PQclear(r);
    /* A command's answer ends with NULL; a Sync's is alone. */
    if (r && e->kind != SENT_SYNC)
        PQclear(PQgetResult(c->pg));
    g_free(e);
    if (!r || PQstatus(c->pg) != CONNECTION_OK) {
        if (c->pipe_rc == 0)
            c->pipe_rc = lost(s, PQerrorMessage(c->pg));
        c->tx_lost = true;
        drop_sent(c);
        return false;
    }
    return true;
}

/* Asks for the answers sent so far: the server holds them until a Sync
 * (which, inside BEGIN, ends nothing). */
static int pipe_sync(tm_store *s)
{
    pg_conn *c = conn_of(s);
    if (!c->unsynced)
        return 0;
    if (!PQpipelineSync(c->pg))
        return lost(s, PQerrorMessage(c->pg));
    expect(c, SENT_SYNC, NULL);
    c->unsynced = false;
    return 0;
}

/* Reads answers until st has its own (st NULL: all of them). */
static int pipe_collect(tm_store *s, pg_stmt *st)
{
    pg_conn *c = conn_of(s);
    int rc = pipe_sync(s);
    if (rc < 0)
        return rc;
    while (!g_queue_is_empty(&c->sent) && !(st && st->res))
        if (!take_answer(s))
            break;
    if (c->pipe_rc < 0)
        return c->pipe_rc;
    return !st || st->res ? 0 : lost(s, "no answer");
}

/* Sends st in the pipeline; its answer is kept for its step when keep. */
static int pipe_send(tm_store *s, pg_stmt *st, bool keep)
{
    pg_conn *c = conn_of(s);
    if (c->tx_lost || c->pipe_rc < 0)
        return c->pipe_rc < 0 ? c->pipe_rc : TM_EIO;
    if (st->gen != c->gen) {
        Oid types[TM__MAX_ARGS] = {0};
        param_types(st, types);
        if (!PQsendPrepare(c->pg, st->name, st->sql, st->nparams, types))
            return lost(s, PQerrorMessage(c->pg));
        expect(c, SENT_PREPARE, st);
        st->gen = c->gen;
    }
    const char *vals[TM__MAX_ARGS];
    bound_values(st, vals);
    if (!PQsendQueryPrepared(c->pg, st->name, st->nparams, vals, NULL, NULL, 0))
        return lost(s, PQerrorMessage(c->pg));
    expect(c, SENT_QUERY, keep ? st : NULL);
    st->queued = keep;
    st->txn = c->txn;
    return 0;
}

static int pg_send(tm_store *s, tm__stmt *stmt, bool keep)
{
    pg_conn *c = conn_of(s);
    if (!c->in_tx)
        return 1;
    return pipe_send(s, pst(stmt), keep);
}

/* A statement of a transaction: its answer, and every one sent before it. */
static int run_piped(tm_store *s, pg_stmt *st)
{
    pg_conn *c = conn_of(s);
    if (c->pipe_rc < 0 || c->tx_lost)
        return c->pipe_rc < 0 ? c->pipe_rc : TM_EIO;
    int rc = st->queued ? 0 : pipe_send(s, st, true);
    if (rc == 0 && !st->res)
        rc = pipe_collect(s, st);
    if (rc < 0)
        return rc;
    c->changes = st->changes;
    return 0;
}

/* Whether st was sent with these arguments: its step takes that answer. */
static bool pg_sent_with(tm__stmt *stmt, const tm__arg *args, int n)
{
    pg_stmt *st = pst(stmt);
    if (!st->queued || st->ran || !st->conn->in_tx || st->txn != st->conn->txn || st->nbound != n)
        return false;
    for (int i = 0; i < n; i++) {
        const tm__arg *a = &args[i];
        const char *v = st->vals[i];
        char num[24];
        if (a->kind == TM__ARG_NULL) {
            if (v)
                return false;
            continue;
        }
        if (!v || a->type != st->types[i])
            return false;
        if (a->kind == TM__ARG_INT) {
            snprintf(num, sizeof(num), "%" PRId64, a->i);
            if (strcmp(v, num) != 0)
                return false;
        } else if (strlen(v) != a->len || memcmp(v, a->text, a->len) != 0) {
            return false;
        }
    }
    return true;
}

static int execute(tm_store *s, pg_stmt *st)
{
    pg_conn *c = conn_of(s);
    if (c->in_tx)
        return run_piped(s, st);
    int rc = ready(s);
    if (rc == 0 && st->gen != c->gen)
        rc = prepare_on_server(s, st);
    if (rc < 0)
        return rc;
    const char *vals[TM__MAX_ARGS];
    bound_values(st, vals);
    PGresult *r = PQexecPrepared(c->pg, st->name, st->nparams, vals, NULL, NULL, 0);
    ExecStatusType status = PQresultStatus(r);
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
        rc = fail_result(s, r);
        PQclear(r);
        return rc;
    }
    const char *n = PQcmdTuples(r);
    c->changes = n && *n ? atoi(n) : 0;
    st->res = r;
    st->nrows = PQntuples(r);
    st->row = -1;
    return 0;
}

static int pg_step(tm_store *s, tm__stmt *stmt)
{
    pg_stmt *st = pst(stmt);
    if (!st->ran) {
        int rc = execute(s, st);
        if (rc < 0)
            return rc;
        st->ran = true;
    }
    if (st->row < st->nrows)
        st->row++;
    return st->row < st->nrows ? 1 : 0;
}

/* ---- columns ----------------------------------------------------------- */

static bool has_row(pg_stmt *st, int i)
{
    return st->res && st->row >= 0 && st->row < st->nrows && i >= 0 && i < PQnfields(st->res);
}

static int pg_col_count(tm__stmt *stmt)
{
    pg_stmt *st = pst(stmt);
    return st->res ? PQnfields(st->res) : 0;
}

static const char *pg_col_name(tm__stmt *stmt, int i)
{
    pg_stmt *st = pst(stmt);
    return st->res ? PQfname(st->res, i) : NULL;
}

static const char *pg_col_text(tm__stmt *stmt, int i)
{
    pg_stmt *st = pst(stmt);
    if (!has_row(st, i) || PQgetisnull(st->res, st->row, i))
        return NULL;
    return PQgetvalue(st->res, st->row, i);
}

static tm__col_type pg_col_kind(tm__stmt *stmt, int i)
{
    pg_stmt *st = pst(stmt);
    const char *v = pg_col_text(stmt, i);
    if (!v)
        return TM__COL_NULL;
    switch (PQftype(st->res, i)) {
    case OID_BOOL:
    case OID_INT8:
    case OID_INT2:
    case OID_INT4:
    case OID_OID:
        return TM__COL_INT;
    case OID_NUMERIC: /* sum() of integers is numeric: whole ones stay integers */
        return strchr(v, '.') ? TM__COL_REAL : TM__COL_INT;
    case OID_FLOAT4:
    case OID_FLOAT8:
        return TM__COL_REAL;
    default:
        return TM__COL_TEXT;
    }
}

static int64_t pg_col_int64(tm__stmt *stmt, int i)
{
    const char *v = pg_col_text(stmt, i);
    if (!v)
        return 0;
    if (PQftype(pst(stmt)->res, i) == OID_BOOL)
        return *v == 't';
    return strtoll(v, NULL, 10);
}

static double pg_col_double(tm__stmt *stmt, int i)
{
    const char *v = pg_col_text(stmt, i);
    return v ? g_ascii_strtod(v, NULL) : 0.0;
}

static const void *pg_col_blob(tm__stmt *stmt, int i)
{
    return pg_col_text(stmt, i);
}

static int pg_col_bytes(tm__stmt *stmt, int i)
{
    pg_stmt *st = pst(stmt);
    if (!has_row(st, i) || PQgetisnull(st->res, st->row, i))
        return 0;
    return PQgetlength(st->res, st->row, i);
}

static int pg_changes(tm_store *s)
{
    return conn_of(s)->changes;
}

/* ---- transactions ------------------------------------------------------ */

/* BEGIN goes out with the transaction's first statement. */
static int pg_begin(tm_store *s)
{
    pg_conn *c = conn_of(s);
    int rc = ready(s);
    if (rc < 0)
        return rc;
    if (!PQenterPipelineMode(c->pg))
        return lost(s, PQerrorMessage(c->pg));
    if (!PQsendQueryParams(c->pg, "BEGIN", 0, NULL, NULL, NULL, NULL, 0)) {
        rc = lost(s, PQerrorMessage(c->pg));
        PQexitPipelineMode(c->pg);
        return rc;
    }
    expect(c, SENT_QUERY, NULL);
    c->in_tx = true;
    c->pipe_rc = 0;
    c->txn++;
    return 0;
}

/* Sends sql (COMMIT or ROLLBACK) and reads every answer: 0 or the first failure. */
static int pipe_end(tm_store *s, const char *sql, sent_kind kind)
{
    pg_conn *c = conn_of(s);
    if (!PQsendQueryParams(c->pg, sql, 0, NULL, NULL, NULL, NULL, 0))
        return lost(s, PQerrorMessage(c->pg));
    expect(c, kind, NULL);
    return pipe_collect(s, NULL);
}

/* Back to one statement at a time; a lost connection's reopening does it. */
static void pipe_leave(pg_conn *c)
{
    drop_sent(c);
    c->pipe_rc = 0;
    if (PQstatus(c->pg) == CONNECTION_OK)
        PQexitPipelineMode(c->pg);
}

static bool pg_in_transaction(tm_store *s)
{
    return conn_of(s)->in_tx;
}

/* The errmsg of the first failure is kept: it is the one worth reading.
 * A COMMIT whose answer was lost is a failure: the step is not
 * acknowledged, whatever the server did with it. */
static int pg_finish(tm_store *s, int rc)
{
    pg_conn *c = conn_of(s);
    if (!c->in_tx)
        return rc;
    if (c->tx_lost) {
        if (rc == 0)
            rc = ready(s);
        if (rc == 0)
            rc = TM_EIO;
    } else if (rc == 0 && (rc = c->pipe_rc) == 0) {
        rc = pipe_end(s, "COMMIT", SENT_COMMIT);
        if (rc < 0 && c->tx_lost)
            rc = TM_EIO;
    }
    if (rc < 0 && !c->tx_lost && PQstatus(c->pg) == CONNECTION_OK) {
        char keep[sizeof(s->errmsg)];
        memcpy(keep, s->errmsg, sizeof(keep));
        pipe_collect(s, NULL);
        c->pipe_rc = 0;
        pipe_end(s, "ROLLBACK", SENT_QUERY);
        memcpy(s->errmsg, keep, sizeof(keep));
    }
    pipe_leave(c);
    c->in_tx = false;
    c->tx_lost = false;
    return rc;
}

/* Sent without waiting: the statements behind it in the pipeline wait on
 * the server for the lock. */
static int pg_lock_key(tm_store *s, const char *key)
{
    return tm__store_run_later(s, "SELECT pg_advisory_xact_lock(hashtextextended(?1, 0))", "s",
                               key);
}

/* The server's clock is read once a minute and on each new connection
 * (a round trip per heartbeat step would undo the pipeline's savings); in
 * between it runs on the monotonic clock. clock_timestamp(), not now():
 * inside a transaction now() is its start. */
#define CLOCK_REREAD_MS 60000

static int pg_clock_ms(tm_store *s, int64_t *now_ms)
{
    pg_conn *c = s->conn;
    int64_t mono_ms = g_get_monotonic_time() / 1000;
    if (c->clock_gen != c->gen || mono_ms - c->clock_read_ms >= CLOCK_REREAD_MS) {
        tm__stmt *st = tm__store_query(
            s, "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint", "", NULL);
        int rc = tm__store_step(s, st);
        if (rc == 1) {
            mono_ms = g_get_monotonic_time() / 1000;
            c->clock_offset_ms = tm__col_int64(st, 0) - mono_ms;
            c->clock_read_ms = mono_ms;
            c->clock_gen = c->gen;
        }
        if (st)
            tm__stmt_reset(st);
        if (rc != 1)
            return rc < 0 ? rc : TM_EIO;
    }
    *now_ms = mono_ms + c->clock_offset_ms;
    return 0;
}

/* ---- schema ------------------------------------------------------------ */

static int pg_schema_version(tm_store *s)
{
    tm__stmt *st = tm__store_stmt(s, "SELECT coalesce(max(version), 0) FROM tm_schema_version");
    int v = TM_EIO;
    if (st && pg_step(s, st) == 1)
        v = (int)pg_col_int64(st, 0);
    if (st)
        pg_reset(st);
    return v;
}

static bool word_at(const char *p, const char *start, const char *word)
{
    size_t n = strlen(word);
    return strncmp(p, word, n) == 0 && (p == start || !word_char(p[-1])) && !word_char(p[n]);
}

/* The migrations are written once, in SQL both engines take, except for
 * these type words (outside quoted text):
 *   INTEGER PRIMARY KEY [AUTOINCREMENT] -> BIGINT GENERATED BY DEFAULT AS
 *                                          IDENTITY PRIMARY KEY
 *   INTEGER -> BIGINT, REAL -> DOUBLE PRECISION, BLOB -> BYTEA
 * (SQLite's INTEGER is 64-bit; ids and epoch ms need PostgreSQL's BIGINT.) */
static char *pg_type_words(const char *sql)
{
    static const struct {
        const char *from, *to;
    } words[] = {
        {"INTEGER PRIMARY KEY AUTOINCREMENT",
         "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"},
        {"INTEGER PRIMARY KEY", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"},
        {"INTEGER", "BIGINT"},
        {"REAL", "DOUBLE PRECISION"},
        {"BLOB", "BYTEA"},
    };
    GString *out = g_string_sized_new(strlen(sql) + 256);
    char quote = 0;
    for (const char *p = sql; *p;) {
        if (quote || *p == '\'') {
            if (quote && *p == quote)
                quote = 0;
            else if (!quote)
                quote = *p;
            g_string_append_c(out, *p++);
            continue;
        }
        size_t i = 0;
        while (i < TM_ARRAY_LEN(words) && !word_at(p, sql, words[i].from))
            i++;
        if (i < TM_ARRAY_LEN(words)) {
            g_string_append(out, words[i].to);
            p += strlen(words[i].from);
        } else {
            g_string_append_c(out, *p++);
        }
    }
    return g_string_free(out, FALSE);
}

/* One transaction under an advisory lock: two nodes starting together
 * migrate once, and a failed migration leaves the schema as it was. The
 * session's lock and statement timeouts are for the steps of visits: a
 * migration of a large database, and a node starting beside it, take as
 * long as that takes. */
static int migrate(tm_store *s)
{
    int rc = exec_simple(s, "BEGIN");
    if (rc == 0)
        rc = exec_simple(s, "SET LOCAL lock_timeout = 0");
    if (rc == 0)
        rc = exec_simple(s, "SET LOCAL statement_timeout = 0");
    if (rc == 0)
        rc = exec_simple(s, "SELECT pg_advisory_xact_lock(" G_STRINGIFY(MIGRATION_LOCK_KEY) ")");
    if (rc == 0)
        rc =
            exec_simple(s, "CREATE TABLE IF NOT EXISTS tm_schema_version(version BIGINT NOT NULL)");
    int version = rc == 0 ? pg_schema_version(s) : rc;
    int target = (int)TM_ARRAY_LEN(tm_store_migrations);
    if (version > target) {
        snprintf(s->errmsg, sizeof(s->errmsg),
                 "database schema version %d is newer than this server (%d)", version, target);
        exec_simple(s, "ROLLBACK");
        return TM_EUNSUPPORTED;
    }
    rc = version < 0 ? version : 0;
    for (int v = version; rc == 0 && v < target; v++) {
        char *sql = pg_type_words(tm_store_migrations[v]);
        rc = exec_simple(s, sql);
        g_free(sql);
        if (rc < 0) {
            char keep[sizeof(s->errmsg)];
            memcpy(keep, s->errmsg, sizeof(keep));
            snprintf(s->errmsg, sizeof(s->errmsg), "migration %d: %.200s", v + 1, keep);
        }
    }
    if (rc == 0 && version < target) {
        char sql[96];
        snprintf(sql, sizeof(sql),
                 "DELETE FROM tm_schema_version; INSERT INTO tm_schema_version VALUES(%d)", target);
        rc = exec_simple(s, sql);
    }
    if (rc == 0)
        return exec_simple(s, "COMMIT");
    char keep[sizeof(s->errmsg)];
    memcpy(keep, s->errmsg, sizeof(keep));
    exec_simple(s, "ROLLBACK");
    memcpy(s->errmsg, keep, sizeof(keep));
    return rc;
}

static void pg_close(tm_store *s)
{
    pg_conn *c = conn_of(s);
    if (!c)
        return;
    drop_sent(c);
    PQfinish(c->pg);
    g_free(c);
    s->conn = NULL;
}

static const tm__engine pg_engine = {
    .prepare = pg_prepare,
    .finalize = pg_finalize,
    .bind = pg_bind,
    .step = pg_step,
    .reset = pg_reset,
    .col_count = pg_col_count,
    .col_name = pg_col_name,
    .col_kind = pg_col_kind,
    .col_int64 = pg_col_int64,
    .col_double = pg_col_double,
    .col_text = pg_col_text,
    .col_blob = pg_col_blob,
    .col_bytes = pg_col_bytes,
    .changes = pg_changes,
    .begin = pg_begin,
    .finish = pg_finish,
    .in_transaction = pg_in_transaction,
    .schema_version = pg_schema_version,
    .lock_key = pg_lock_key,
    .clock_ms = pg_clock_ms,
    .send = pg_send,
    .sent_with = pg_sent_with,
    .close = pg_close,
};

/* Server notices (a shutdown's warning) are not the store's errors, and
 * libpq would print them to stderr. */
static void drop_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

int tm__pg_open(tm_store *s, const char *url)
{
    pg_conn *c = g_new0(pg_conn, 1);
    s->eng = &pg_engine;
    s->conn = c;
    c->gen = 1;
    c->backoff_ms = RECONNECT_BACKOFF_MIN_MS;
    /* A server that does not answer must not hold the control loop for
     * the system's TCP timeout: connecting gives up after 5 s, and a
     * connection whose peer went silent is given up after 10 s (unacked
     * data, or keepalives unanswered), and a statement after 15 s, unless
     * the URL says otherwise. A node that stops (frozen, cut off) inside a
     * transaction would hold the outbox lock every node's steps take:
     * PostgreSQL ends its session after 10 s idle in the transaction or
     * its client's silence, and a step waits at most 5 s for a lock. */
    const char *const keys[] = {"connect_timeout",
                                "keepalives",
                                "keepalives_idle",
                                "keepalives_interval",
                                "keepalives_count",
                                "tcp_user_timeout",
                                "options",
                                "dbname",
                                NULL};
    const char *const values[] = {"5", "1", "5", "2", "3", "10000", SESSION_OPTIONS, url, NULL};
    c->pg = PQconnectdbParams(keys, values, 1);
    if (PQstatus(c->pg) != CONNECTION_OK) {
        set_message(s, "PostgreSQL: ", PQerrorMessage(c->pg));
        return TM_EIO;
    }
    PQsetNoticeProcessor(c->pg, drop_notice, NULL);
    int rc = exec_simple(s, "SET client_min_messages = warning");
    return rc < 0 ? rc : migrate(s);
}

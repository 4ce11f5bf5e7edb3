/*
 * store_core.c - the engine-neutral half of the store's statement layer
 * (store_internal.h): the statement cache, argument decoding, errors,
 * transactions with their held notifications, the outbox row writer and
 * row -> JSON. The engines (store_engine.h) do the database's own part:
 * SQLite in store_sqlite.c, PostgreSQL in store_pg.c.
 *
 * Every visit step runs in one transaction with its outbox row, so the
 * regulator feed can never miss a step that happened.
 */
#include "feed_event.h"
#include "store_engine.h"
#include "telemed/common.h"
#include "telemed/visit_chain.h"

#include <glib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *tm_store_errmsg(tm_store *s)
{
    return s->errmsg;
}

const char *tm_store_hospital_id(tm_store *s)
{
    return s->hospital;
}

/* ---- columns --------------------------------------------------------- */

int64_t tm__col_int64(tm__stmt *st, int i)
{
    return st->eng->col_int64(st, i);
}

int tm__col_int(tm__stmt *st, int i)
{
    return (int)st->eng->col_int64(st, i);
}

double tm__col_double(tm__stmt *st, int i)
{
    return st->eng->col_double(st, i);
}

const char *tm__col_text(tm__stmt *st, int i)
{
    return st->eng->col_text(st, i);
}

const void *tm__col_blob(tm__stmt *st, int i)
{
    return st->eng->col_blob(st, i);
}

int tm__col_bytes(tm__stmt *st, int i)
{
    return st->eng->col_bytes(st, i);
}

bool tm__col_is_null(tm__stmt *st, int i)
{
    return st->eng->col_kind(st, i) == TM__COL_NULL;
}

tm__col_type tm__col_kind(tm__stmt *st, int i)
{
    return st->eng->col_kind(st, i);
}

const char *tm__col_name(tm__stmt *st, int i)
{
    return st->eng->col_name(st, i);
}

int tm__col_count(tm__stmt *st)
{
    return st->eng->col_count(st);
}

void tm__stmt_reset(tm__stmt *st)
{
    /* NULL is a failed query's statement; callers reset unconditionally, as
     * sqlite3_reset(NULL) allowed. */
    if (st)
        st->eng->reset(st);
}

void tm__store_col_text(tm__stmt *st, int i, char *out, size_t outlen)
{
    const char *t = tm__col_text(st, i);
    snprintf(out, outlen, "%s", t ? t : "");
}

/* ---- statements ------------------------------------------------------ */

tm__stmt *tm__store_stmt(tm_store *s, const char *sql)
{
    tm__stmt *st = g_hash_table_lookup(s->stmts, sql);
    if (st) {
        s->eng->reset(st);
        return st;
    }
    st = s->eng->prepare(s, sql);
    if (st)
        g_hash_table_insert(s->stmts, (gpointer)sql, st);
    return st;
}

static void text_arg(tm__arg *a, const char *v, size_t len)
{
    *a = (tm__arg){.kind = TM__ARG_TEXT, .text = v, .len = len};
}

static void int_arg(tm__arg *a, int64_t v)
{
    *a = (tm__arg){.kind = TM__ARG_INT, .i = v};
}

static int decode_args(const char *types, va_list ap, tm__arg *args)
{
    int n = 0;
    for (; *types; types++, n++) {
        TM_ASSERT(n < TM__MAX_ARGS);
        tm__arg *a = &args[n];
        *a = (tm__arg){.kind = TM__ARG_NULL};
        switch (*types) {
        case 's': {
            const char *v = va_arg(ap, const char *);
            if (v && *v)
                text_arg(a, v, strlen(v));
            break;
        }
        case 'b': {
            const char *v = va_arg(ap, const char *);
            text_arg(a, v ? v : "", v ? strlen(v) : 0);
            break;
        }
        case 'n': {
            const char *v = va_arg(ap, const char *);
            size_t len = va_arg(ap, size_t);
            if (v && len > 0 && len <= INT32_MAX)
                text_arg(a, v, len);
            break;
        }
        case 'i':
            int_arg(a, va_arg(ap, int));
            break;
        case 'I':
            int_arg(a, va_arg(ap, int64_t));
            break;
        case 't': {
            int64_t v = va_arg(ap, int64_t);
            if (v)
                int_arg(a, v);
            break;
        }
        default:
            TM_ASSERT(!"unknown bind type");
        }
        a->type = *types;
    }
    return n;
}

static tm__stmt *vquery(tm_store *s, const char *sql, const char *types, va_list ap)
{
    tm__arg args[TM__MAX_ARGS];
    int n = decode_args(types, ap, args);
    tm__stmt *st = g_hash_table_lookup(s->stmts, sql);
    if (st && s->eng->sent_with && s->eng->sent_with(st, args, n))
        return st;
    st = tm__store_stmt(s, sql);
    if (st)
        s->eng->bind(st, args, n);
    return st;
}

tm__stmt *tm__store_query(tm_store *s, const char *sql, const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    tm__stmt *st = vquery(s, sql, types, ap);
    va_end(ap);
    return st;
}

int tm__store_step(tm_store *s, tm__stmt *st)
{
    if (!st)
        return TM_EIO;
    return s->eng->step(s, st);
}

int tm__store_step_done(tm_store *s, tm__stmt *st)
{
    if (!st)
        return TM_EIO;
    int rc = s->eng->step(s, st);
    s->eng->reset(st);
    return rc > 0 ? 0 : rc;
}

int tm__store_run(tm_store *s, const char *sql, const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    tm__stmt *st = vquery(s, sql, types, ap);
    va_end(ap);
    return tm__store_step_done(s, st);
}

void tm__store_prefetch(tm_store *s, const char *sql, const char *types, ...)
{
    if (!s->eng->send || !s->eng->in_transaction(s))
        return;
    tm__arg args[TM__MAX_ARGS];
    va_list ap;
    va_start(ap, types);
    int n = decode_args(types, ap, args);
    va_end(ap);
    tm__stmt *st = g_hash_table_lookup(s->stmts, sql);
    if (st && s->eng->sent_with(st, args, n))
        return;
    /* A failure to send shows at the step that wants the answer. */
    if ((st = tm__store_stmt(s, sql))) {
        s->eng->bind(st, args, n);
        s->eng->send(s, st, true);
    }
}

int tm__store_run_later(tm_store *s, const char *sql, const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    tm__stmt *st = vquery(s, sql, types, ap);
    va_end(ap);
    int rc = st && s->eng->send ? s->eng->send(s, st, false) : 1;
    if (rc == 1)
        return tm__store_step_done(s, st);
    s->eng->reset(st);
    return rc;
}

int tm__store_run_one(tm_store *s, const char *sql, const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    tm__stmt *st = vquery(s, sql, types, ap);
    va_end(ap);
    int rc = tm__store_step_done(s, st);
    if (rc == 0 && s->eng->changes(s) == 0)
        return tm__store_refuse(s, TM_ENOTFOUND, "no such row in that state");
    return rc;
}

int tm__store_changes(tm_store *s)
{
    return s->eng->changes(s);
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

/* ---- transactions ------------------------------------------------------ */

int tm__store_begin(tm_store *s)
{
    return s->eng->begin(s);
}

int tm__store_finish(tm_store *s, int rc)
{
    return s->eng->finish(s, rc);
}

int tm__store_lock_key(tm_store *s, const char *key)
{
    return s->eng->lock_key ? s->eng->lock_key(s, key) : 0;
}

int tm__store_clock_ms(tm_store *s, int64_t *now_ms)
{
    return s->eng->clock_ms ? s->eng->clock_ms(s, now_ms) : 0;
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

/* ---- the outbox row -------------------------------------------------- */

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
        rc =
            tm__store_run_later(s,
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
    tm__store_chain_prefetch(s, visit_id);
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

/* ---- open ------------------------------------------------------------ */

static void finalize_stmt(gpointer p)
{
    tm__stmt *st = p;
    st->eng->finalize(st);
}

static bool is_pg_url(const char *path)
{
    return g_str_has_prefix(path, "postgresql://") || g_str_has_prefix(path, "postgres://");
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
    snprintf(s->lease_holder, sizeof(s->lease_holder), "%s", TM_STORE_LEASE_HOLDER);
    s->lease_ms = TM_STORE_LEASE_MS;
    s->stmts = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, finalize_stmt);
    s->where = g_strdup(path);
    int rc = is_pg_url(path) ? tm__pg_open(s, path) : tm__sqlite_open(s, path);
    if (rc < 0)
        goto fail;
    return s;
fail:
    if (err)
        *err = g_strdup(s->errmsg[0] ? s->errmsg : "cannot open store");
    tm_store_free(s);
    return NULL;
}

tm_store *tm__store_open_twin(tm_store *s, char **err)
{
    if (!is_pg_url(s->where))
        return NULL;
    tm_store *twin = tm_store_open(s->where, s->hospital, err);
    if (twin) {
        snprintf(twin->lease_holder, sizeof(twin->lease_holder), "%s", s->lease_holder);
        twin->lease_ms = s->lease_ms;
    }
    return twin;
}

int tm_store_set_lease(tm_store *s, const char *holder, int64_t lease_ms)
{
    if (!holder || !*holder || strlen(holder) >= sizeof(s->lease_holder) || lease_ms < 1)
        return tm__store_refuse(s, TM_EINVAL, "lease holder must be 1-63 bytes, lease >= 1 ms");
    snprintf(s->lease_holder, sizeof(s->lease_holder), "%s", holder);
    s->lease_ms = lease_ms;
    return 0;
}

const char *tm__store_lease_holder(tm_store *s)
{
    return s->lease_holder;
}

int64_t tm__store_lease_ms(tm_store *s)
{
    return s->lease_ms;
}

void tm_store_free(tm_store *s)
{
    if (!s)
        return;
    if (s->stmts)
        g_hash_table_destroy(s->stmts);
    if (s->eng)
        s->eng->close(s);
    g_free(s->where);
    free(s);
}

int tm_store_schema_version(tm_store *s)
{
    return s->eng->schema_version(s);
}

/* ---- generic row -> JSON --------------------------------------------- */

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

static json_t *int_json(const char *name, int64_t v)
{
    if (is_flag_column(name))
        return json_boolean(v != 0);
    if (is_time_column(name)) {
        char ts[40];
        return json_string(tm_rfc3339(v, ts, sizeof(ts)));
    }
    return json_integer(v);
}

json_t *tm__store_row_json(tm__stmt *st)
{
    json_t *o = json_object();
    int n = tm__col_count(st);
    for (int i = 0; i < n; i++) {
        const char *name = tm__col_name(st, i);
        json_t *v;
        switch (tm__col_kind(st, i)) {
        case TM__COL_INT:
            v = int_json(name, tm__col_int64(st, i));
            break;
        case TM__COL_REAL:
            v = json_real(tm__col_double(st, i));
            break;
        case TM__COL_TEXT:
            v = json_string(tm__col_text(st, i));
            break;
        default:
            v = json_null();
        }
        json_object_set_new(o, name, v);
    }
    return o;
}

json_t *tm__store_rows_json(tm_store *s, tm__stmt *st)
{
    if (!st)
        return NULL;
    json_t *a = json_array();
    int rc;
    while ((rc = tm__store_step(s, st)) == 1)
        json_array_append_new(a, tm__store_row_json(st));
    if (rc < 0) {
        json_decref(a);
        a = NULL;
    }
    tm__stmt_reset(st);
    return a;
}

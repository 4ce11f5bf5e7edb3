/*
 * store_outbox.c - the outbox delivery side of include/telemed/store.h, on
 * either engine: reads the regulator outbox in per-visit order and
 * records delivery outcomes. (Rows are written by tm__store_outbox_append,
 * inside each visit step's transaction.) Rows handed out are leased to the
 * handle's holder first, so nodes sharing a database never deliver one row
 * both (store.h, "the regulator outbox").
 *
 * Control loop thread only, on the store's connection (store_internal.h),
 * between the store's own transactions. Writes that touch several rows run
 * in one transaction: with synchronous=FULL every commit is an fsync, and a
 * batch of 100 marks must cost one, not a hundred.
 */
#include "store_internal.h"
#include "telemed/common.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The oldest pending row of every visit (its "head"). A visit's chain is due
 * when its head is due; the rows behind the head wait for it. */
#define HEADS_SQL                                                                                  \
    "SELECT visit_id, min(seq) AS head FROM outbox WHERE state = 'pending' GROUP BY visit_id"

static const tm__delivery outbox_table = TM__DELIVERY("outbox", "outbox row");

int tm_outbox_next_batch(tm_store *s, int64_t now_ms, int limit, tm_outbox_event **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (limit <= 0)
        return tm__store_refuse(s, TM_EINVAL, "batch limit must be at least 1");
    /* "state || ''" (an expression, so no index on it) keeps SQLite's
     * planner on the rowid range instead of the (state, visit_id, seq)
     * index plus a sort of every pending row; PostgreSQL takes it too.
     * Cached: the feed runs this every second even when nothing is due. */
    tm__stmt *st =
        tm__store_query(s,
                        "SELECT seq, event_id, type, visit_id, occurred_at, attempts,"
                        "       next_attempt_at, payload, leased_by, lease_until"
                        "  FROM outbox"
                        " WHERE seq >= (SELECT min(seq) FROM outbox WHERE state = 'pending')"
                        "   AND state || '' = 'pending'"
                        " ORDER BY seq",
                        "");
    return tm__store_outbox_walk(s, &outbox_table, st, now_ms, limit, out, n);
}

/* Whether another holder's lease on st's current row (columns 8, 9) still
 * runs at now_ms (the database's clock). */
static bool leased_elsewhere(tm_store *s, tm__stmt *st, int64_t now_ms)
{
    const char *by = tm__col_text(st, 8);
    return by && strcmp(by, tm__store_lease_holder(s)) != 0 && tm__col_int64(st, 9) > now_ms;
}

/* Leases ev's rows to s's holder in one transaction, in seq order (the
 * order every node takes row locks in, so two claims cannot deadlock), and
 * keeps those it got. A visit with a row another node got first loses its
 * later rows here too: they must not overtake that one. */
static int claim_rows(tm_store *s, const tm__delivery *d, tm_outbox_event *ev, size_t *n,
                      int64_t now_ms)
{
    int64_t lease = tm__store_lease_ms(s);
    int64_t until = now_ms > INT64_MAX - lease ? INT64_MAX : now_ms + lease;
    bool *got = g_new0(bool, *n);
    GHashTable *lost = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    int rc = tm__store_begin(s);
    for (size_t i = 0; rc == 0 && i < *n; i++) {
        if (g_hash_table_contains(lost, ev[i].visit_id))
            continue;
        rc =
            tm__store_run(s, d->claim, "IsII", ev[i].seq, tm__store_lease_holder(s), until, now_ms);
        got[i] = rc == 0 && tm__store_changes(s) == 1;
        if (rc == 0 && !got[i])
            g_hash_table_add(lost, g_strdup(ev[i].visit_id));
    }
    rc = tm__store_finish(s, rc);
    if (rc == 0) {
        size_t kept = 0;
        for (size_t i = 0; i < *n; i++) {
            if (got[i])
                ev[kept++] = ev[i];
            else
                free(ev[i].payload);
        }
        *n = kept;
    }
    g_hash_table_destroy(lost);
    g_free(got);
    return rc;
}

/* Walks the pending rows in seq order from the oldest one (a rowid range,
 * no sort, so a pass costs about the batch, not the backlog). The first
 * pending row met of a visit is its head: if it is due and no other holder
 * leases it, the visit's rows are taken as they come, up to one another
 * holder leases; if not, all of them are skipped. The scan stops when the
 * batch is full; the rows taken are then claimed.
 *
 * Leases are judged and written on the database's clock (lease_now): two
 * nodes whose clocks differ would otherwise both hold a row (the one behind
 * writes leases already over) or neither (the one ahead, leases that run
 * long after it died). Due times stay on now_ms, the caller's own schedule. */
int tm__store_outbox_walk(tm_store *s, const tm__delivery *d, tm__stmt *st, int64_t now_ms,
                          int limit, tm_outbox_event **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!st)
        return TM_EIO;
    /* st is bound, not run yet: the clock's own query may go first. */
    int64_t lease_now = now_ms;
    int clock_rc = tm__store_clock_ms(s, &lease_now);
    if (clock_rc < 0) {
        tm__stmt_reset(st);
        return clock_rc;
    }
    tm_outbox_event *ev = calloc((size_t)limit, sizeof(*ev));
    /* visit_id -> GINT_TO_POINTER(1 due, 2 waiting) */
    GHashTable *visits = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    size_t count = 0;
    int rc = 0;
    if (!ev || !visits) {
        rc = TM_ENOMEM;
        goto done;
    }
    while (count < (size_t)limit && (rc = tm__store_step(s, st)) == 1) {
        const char *visit = tm__col_text(st, 3);
        if (!visit)
            visit = "";
        int verdict = GPOINTER_TO_INT(g_hash_table_lookup(visits, visit));
        bool foreign = leased_elsewhere(s, st, lease_now);
        if (!verdict || (verdict == 1 && foreign)) {
            verdict = tm__col_int64(st, 6) <= now_ms && !foreign ? 1 : 2;
            g_hash_table_insert(visits, g_strdup(visit), GINT_TO_POINTER(verdict));
        }
        if (verdict != 1)
            continue;
        tm_outbox_event *e = &ev[count];
        e->seq = tm__col_int64(st, 0);
        tm__store_col_text(st, 1, e->event_id, sizeof(e->event_id));
        tm__store_col_text(st, 2, e->type, sizeof(e->type));
        snprintf(e->visit_id, sizeof(e->visit_id), "%s", visit);
        e->occurred_at = tm__col_int64(st, 4);
        e->attempts = tm__col_int(st, 5);
        /* Whatever the column holds (text, blob, NULL after a bad repair):
         * copy it with its length; the feed judges whether it is JSON. */
        const void *p = tm__col_blob(st, 7);
        int len = tm__col_bytes(st, 7);
        e->payload = malloc((size_t)len + 1);
        if (!e->payload) {
            rc = TM_ENOMEM;
            break;
        }
        if (len > 0)
            memcpy(e->payload, p, (size_t)len);
        e->payload[len] = '\0';
        e->payload_len = (size_t)len;
        count++;
    }
    if (rc == 1)
        rc = 0; /* stopped because the batch is full */
done:
    tm__stmt_reset(st);
    if (visits)
        g_hash_table_destroy(visits);
    if (rc == 0 && count > 0)
        rc = claim_rows(s, d, ev, &count, lease_now);
    if (rc < 0) {
        if (rc == TM_ENOMEM)
            tm__store_set_error(s, "out of memory");
        tm_outbox_events_free(ev, count);
        return rc;
    }
    if (count == 0) {
        free(ev);
        return 0;
    }
    *out = ev;
    *n = count;
    return 0;
}

void tm_outbox_events_free(tm_outbox_event *ev, size_t n)
{
    if (!ev)
        return;
    for (size_t i = 0; i < n; i++)
        free(ev[i].payload);
    free(ev);
}

int tm__delivery_next_due(tm_store *s, const tm__delivery *d, int64_t *due_ms)
{
    tm__stmt *st = tm__store_query(s, d->next_due, "s", tm__store_lease_holder(s));
    int rc = tm__store_step(s, st);
    int ret = rc < 0 ? rc : TM_ENOTFOUND;
    if (rc == 1 && !tm__col_is_null(st, 0)) {
        *due_ms = tm__col_int64(st, 0);
        ret = 0;
    }
    if (st)
        tm__stmt_reset(st);
    return ret;
}

/* One outcome for n rows in one write transaction (one fsync for a batch
 * on SQLite): ?1 the row, ?2 at[i] (at_all when at is NULL), ?3 status,
 * ?4 the lease holder, ?5 error. */
static int mark_rows(tm_store *s, const char *sql, const char *types, const int64_t *seqs, size_t n,
                     const int64_t *at, int64_t at_all, int status, const char *error)
{
    if (n == 0)
        return 0;
    int rc = tm__store_begin(s);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = tm__store_run(s, sql, types, seqs[i], at ? at[i] : at_all, status,
                           tm__store_lease_holder(s), error);
    return tm__store_finish(s, rc);
}

int tm__delivery_mark_delivered(tm_store *s, const tm__delivery *d, const int64_t *seqs, size_t n,
                                int status, int64_t now_ms)
{
    return mark_rows(s, d->delivered, "IIis", seqs, n, NULL, now_ms, status, NULL);
}

/* status 0 (no HTTP answer) is stored as NULL. */
int tm__delivery_retry(tm_store *s, const tm__delivery *d, const int64_t *seqs,
                       const int64_t *next_at, size_t n, int status, const char *error)
{
    return mark_rows(s, d->retry, "IIisb", seqs, n, next_at, 0, status > 0 ? status : 0, error);
}

int tm__delivery_retry_now(tm_store *s, const tm__delivery *d, int64_t now_ms)
{
    int rc = tm__store_run(s, d->retry_now, "I", now_ms);
    return rc < 0 ? rc : tm__store_changes(s);
}

/* The response is kept as text for people to read; bytes that are not
 * UTF-8 are stored as they came (SQLite does not check), and the JSON view
 * replaces them. */
int tm__delivery_dead_letter(tm_store *s, const tm__delivery *d, int64_t seq, int status,
                             const char *error, const char *response, size_t response_len)
{
    return tm__store_run_one(s, d->dead, "Iibns", seq, status > 0 ? status : 0, error, response,
                             response ? response_len : 0, tm__store_lease_holder(s));
}

int tm__delivery_replay(tm_store *s, const tm__delivery *d, int64_t seq)
{
    tm__stmt *st = tm__store_query(s, d->state_of, "I", seq);
    int rc = tm__store_step(s, st);
    if (rc == 0)
        rc = tm__store_refuse(s, TM_ENOTFOUND, d->no_row);
    else if (rc == 1 && strcmp(tm__col_text(st, 0), "dead") != 0)
        rc = tm__store_refuse(s, TM_ECONFLICT, d->not_dead);
    else if (rc == 1)
        rc = 0;
    if (st)
        tm__stmt_reset(st);
    if (rc < 0)
        return rc;
    /* attempts stay: they are history (and feed a monotonic counter); the
     * backoff of a replayed row starts from there, which is fine because a
     * replay is a person's decision, made after the cause was fixed. */
    return tm__store_run(s, d->replay, "I", seq);
}

int tm_outbox_next_due(tm_store *s, int64_t *due_ms)
{
    return tm__delivery_next_due(s, &outbox_table, due_ms);
}

int tm_outbox_mark_delivered(tm_store *s, const int64_t *seqs, size_t n, int status, int64_t now_ms)
{
    return tm__delivery_mark_delivered(s, &outbox_table, seqs, n, status, now_ms);
}

int tm_outbox_retry(tm_store *s, const int64_t *seqs, const int64_t *next_at, size_t n, int status,
                    const char *error)
{
    return tm__delivery_retry(s, &outbox_table, seqs, next_at, n, status, error);
}

int tm_outbox_retry_now(tm_store *s, int64_t now_ms)
{
    return tm__delivery_retry_now(s, &outbox_table, now_ms);
}

int tm_outbox_dead_letter(tm_store *s, int64_t seq, int status, const char *error,
                          const char *response, size_t response_len)
{
    return tm__delivery_dead_letter(s, &outbox_table, seq, status, error, response, response_len);
}

int tm_outbox_replay(tm_store *s, int64_t seq)
{
    return tm__delivery_replay(s, &outbox_table, seq);
}

/* Text that may hold bytes which are not UTF-8 (a response body): jansson
 * refuses those, so fall back to a lossy copy. */
static json_t *json_text_lossy(const char *t, int len)
{
    if (!t)
        return json_null();
    json_t *j = json_stringn(t, (size_t)len);
    if (j)
        return j;
    char *copy = malloc((size_t)len + 1);
    if (!copy)
        return json_null();
    for (int i = 0; i < len; i++)
        copy[i] = (t[i] >= 0x20 && t[i] < 0x7f) || t[i] == '\n' ? t[i] : '?';
    copy[len] = '\0';
    j = json_string(copy);
    free(copy);
    return j ? j : json_null();
}

json_t *tm_outbox_dead_list(tm_store *s, int limit)
{
    return tm__store_dead_rows_json(
        s, tm__store_query(s,
                           "SELECT seq, event_id, type, visit_id, occurred_at, attempts,"
                           " last_status, last_error, last_response FROM outbox"
                           " WHERE state = 'dead' ORDER BY seq DESC LIMIT ?1",
                           "i", limit > 0 ? limit : 100));
}

json_t *tm__store_dead_rows_json(tm_store *s, tm__stmt *st)
{
    if (!st)
        return NULL;
    json_t *arr = json_array();
    int rc;
    while ((rc = tm__store_step(s, st)) == 1) {
        char when[40];
        json_t *o = json_object();
        json_object_set_new(o, "seq", json_integer(tm__col_int64(st, 0)));
        json_object_set_new(o, "event_id",
                            json_text_lossy(tm__col_text(st, 1), tm__col_bytes(st, 1)));
        json_object_set_new(o, "type", json_text_lossy(tm__col_text(st, 2), tm__col_bytes(st, 2)));
        json_object_set_new(o, "visit_id",
                            json_text_lossy(tm__col_text(st, 3), tm__col_bytes(st, 3)));
        json_object_set_new(o, "occurred_at",
                            json_string(tm_rfc3339(tm__col_int64(st, 4), when, sizeof(when))));
        json_object_set_new(o, "attempts", json_integer(tm__col_int64(st, 5)));
        json_object_set_new(o, "last_status",
                            tm__col_is_null(st, 6) ? json_null()
                                                   : json_integer(tm__col_int(st, 6)));
        json_object_set_new(o, "last_error",
                            json_text_lossy(tm__col_text(st, 7), tm__col_bytes(st, 7)));
        json_object_set_new(o, "last_response",
                            json_text_lossy(tm__col_text(st, 8), tm__col_bytes(st, 8)));
        json_array_append_new(arr, o);
    }
    tm__stmt_reset(st);
    if (rc < 0) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

int tm_outbox_stats_get(tm_store *s, tm_outbox_stats *out)
{
    memset(out, 0, sizeof(*out));
    tm__stmt *st = tm__store_query(
        s,
        "SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = "
        "'delivered'),"
        " count(*) FILTER (WHERE state = 'dead'), coalesce(sum(attempts), 0),"
        " (SELECT min(occurred_at) FROM outbox WHERE state = 'pending') FROM outbox",
        "");
    int rc = tm__store_step(s, st);
    if (rc == 1) {
        out->pending = tm__col_int64(st, 0);
        out->delivered = tm__col_int64(st, 1);
        out->dead = tm__col_int64(st, 2);
        out->failed_attempts = tm__col_int64(st, 3);
        out->oldest_pending_at = tm__col_int64(st, 4);
    }
    tm__stmt_reset(st);
    return rc < 0 ? rc : 0;
}

int tm_outbox_queue(tm_store *s, int64_t *pending, int64_t *oldest_pending_at)
{
    tm__stmt *st = tm__store_query(s,
                                   "SELECT count(*), coalesce(min(occurred_at), 0)"
                                   " FROM outbox WHERE state = 'pending'",
                                   "");
    int rc = tm__store_step(s, st);
    if (rc == 1) {
        *pending = tm__col_int64(st, 0);
        *oldest_pending_at = tm__col_int64(st, 1);
    }
    tm__stmt_reset(st);
    return rc < 0 ? rc : 0;
}

int tm_store_outbox_count(tm_store *s, const char *state, int64_t *count)
{
    tm__stmt *st = tm__store_query(s, "SELECT count(*) FROM outbox WHERE state = ?1", "s", state);
    int rc = tm__store_step(s, st);
    *count = rc == 1 ? tm__col_int64(st, 0) : 0;
    tm__stmt_reset(st);
    return rc < 0 ? rc : 0;
}

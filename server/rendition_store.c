/*
 * rendition_store.c - the SQLite backend's renditions table (the review
 * rendition part of include/telemed/store.h), on the store's connection
 * (store_internal.h). Control loop thread only.
 *
 * The table is also the render queue: server/review.c takes the oldest
 * queued row when a render slot is free, so the queue survives restarts
 * without a second copy of it in memory. No regulator event: a rendition
 * is a convenience copy derived from the evidence, not a visit step.
 */
#include "store_internal.h"
#include "telemed/common.h"

#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The longest wait before another attempt at a failed rendition. */
#define RETRY_WAIT_MAX_MS (24LL * 3600 * 1000)

static bool is_sha256_hex(const char *h)
{
    if (!h || strlen(h) != 64)
        return false;
    for (int i = 0; i < 64; i++)
        if (!g_ascii_isxdigit(h[i]) || g_ascii_isupper(h[i]))
            return false;
    return true;
}

/* Visits over whose recordings are all finished and that have no rendition
 * row yet; ?1 NULL looks at every visit, ?2 at those ended since (the
 * ended_at index keeps the minute's sweep off the whole history). */
#define MISSING_SQL                                                                                \
    "SELECT v.id FROM visits v WHERE v.ended_at >= ?2 AND v.state IN ('ended','cancelled')"        \
    " AND (?1 IS NULL OR v.id = ?1)"                                                               \
    " AND EXISTS (SELECT 1 FROM recordings r WHERE r.visit_id = v.id"                              \
    "             AND r.state IN ('complete','incomplete'))"                                       \
    " AND NOT EXISTS (SELECT 1 FROM recordings r WHERE r.visit_id = v.id"                          \
    "                 AND r.state = 'recording')"                                                  \
    " AND NOT EXISTS (SELECT 1 FROM renditions q WHERE q.visit_id = v.id)"                         \
    " ORDER BY v.ended_at"

int tm_rendition_requeue(tm_store *s, const char *visit_id, int64_t ended_since_ms, int64_t now_ms,
                         int *queued)
{
    if (queued)
        *queued = 0;
    int rc = tm__store_begin(s);
    if (rc < 0)
        return rc;
    int n = 0;
    if (!visit_id && ended_since_ms == 0) {
        rc = tm__store_run(s,
                           "UPDATE renditions SET state = 'queued', started_at = NULL"
                           " WHERE state = 'rendering'",
                           "");
        n += rc == 0 ? tm__store_changes(s) : 0;
    }
    GPtrArray *ids = g_ptr_array_new_with_free_func(g_free);
    tm__stmt *st = rc == 0 ? tm__store_query(s, MISSING_SQL, "sI", visit_id, ended_since_ms) : NULL;
    if (rc == 0 && !st)
        rc = TM_EIO;
    int step;
    while (st && (step = tm__store_step(s, st)) == 1)
        g_ptr_array_add(ids, g_strdup(tm__col_text(st, 0)));
    if (st) {
        if (step < 0)
            rc = step;
        tm__stmt_reset(st);
    }
    for (guint i = 0; rc == 0 && i < ids->len; i++) {
        char id[TM_RENDITION_ID_LEN];
        tm__store_make_id("ren", id, sizeof(id));
        rc = tm__store_run(s,
                           "INSERT INTO renditions(id, visit_id, state, queued_at)"
                           " VALUES(?1, ?2, 'queued', ?3)",
                           "ssI", id, (const char *)ids->pdata[i], now_ms);
        n++;
    }
    g_ptr_array_free(ids, TRUE);
    rc = tm__store_finish(s, rc);
    if (rc == 0 && queued)
        *queued = n;
    return rc;
}

/* The wait before attempt failures + 1: base, then four times as long each
 * time, at most a day. */
static int64_t retry_wait_ms(int64_t base_ms, int failures)
{
    int64_t wait = base_ms;
    for (int i = 1; i < failures && wait < RETRY_WAIT_MAX_MS; i++)
        wait *= 4;
    return wait < RETRY_WAIT_MAX_MS ? wait : RETRY_WAIT_MAX_MS;
}

int tm_rendition_retry(tm_store *s, int max_attempts, int64_t base_ms, int64_t now_ms, int *queued,
                       int64_t *next_due_ms)
{
    if (queued)
        *queued = 0;
    if (next_due_ms)
        *next_due_ms = 0;
    if (max_attempts < 1 || base_ms < 1)
        return tm__store_refuse(s, TM_EINVAL, "max_attempts and base_ms are at least 1");
    /* Visits whose every attempt failed (none queued, rendering, complete or
     * deleted), with how many and when the latest ended. */
    GPtrArray *rows = tm__store_collect_rows(
        s,
        tm__store_query(
            s,
            "SELECT visit_id, count(*), max(finished_at) FROM renditions"
            " WHERE visit_id IN (SELECT visit_id FROM renditions WHERE state = 'failed')"
            " GROUP BY visit_id HAVING count(*) FILTER (WHERE state <> 'failed') = 0 AND count(*) "
            "< ?1",
            "i", max_attempts),
        3);
    if (!rows)
        return TM_EIO;
    int rc = tm__store_begin(s), n = 0;
    for (guint i = 0; rc == 0 && i + 2 < rows->len; i += 3) {
        int failures = atoi(rows->pdata[i + 1]);
        int64_t due = g_ascii_strtoll(rows->pdata[i + 2] ? rows->pdata[i + 2] : "0", NULL, 10) +
                      retry_wait_ms(base_ms, failures);
        if (due > now_ms) {
            if (next_due_ms && (!*next_due_ms || due < *next_due_ms))
                *next_due_ms = due;
            continue;
        }
        char id[TM_RENDITION_ID_LEN];
        tm__store_make_id("ren", id, sizeof(id));
        rc = tm__store_run(s,
                           "INSERT INTO renditions(id, visit_id, state, queued_at)"
                           " VALUES(?1, ?2, 'queued', ?3)",
                           "ssI", id, (const char *)rows->pdata[i], now_ms);
        n++;
    }
    g_ptr_array_free(rows, TRUE);
    rc = tm__store_finish(s, rc);
    if (rc == 0 && queued)
        *queued = n;
    return rc;
}

int tm_rendition_next(tm_store *s, char id[TM_RENDITION_ID_LEN], char visit_id[64])
{
    tm__stmt *st = tm__store_query(s,
                                   "SELECT id, visit_id FROM renditions WHERE state = 'queued'"
                                   " ORDER BY queued_at, id LIMIT 1",
                                   "");
    int rc = tm__store_step(s, st);
    if (rc == 1) {
        tm__store_col_text(st, 0, id, TM_RENDITION_ID_LEN);
        tm__store_col_text(st, 1, visit_id, 64);
    }
    if (st)
        tm__stmt_reset(st);
    return rc == 1 ? 0 : rc == 0 ? TM_ENOTFOUND : rc;
}

json_t *tm_rendition_sources(tm_store *s, const char *visit_id)
{
    return tm__store_rows_json(
        s, tm__store_query(s,
                           "SELECT id, path, encrypted, state, started_at AS started_at_ms"
                           " FROM recordings WHERE visit_id = ?1"
                           " AND state IN ('complete','incomplete') ORDER BY started_at, part, id",
                           "s", visit_id));
}

/* The row's state into state (16 bytes). 0, TM_ENOTFOUND or TM_EIO. */
static int row_state(tm_store *s, const char *id, char state[16])
{
    tm__stmt *st = tm__store_query(s, "SELECT state FROM renditions WHERE id = ?1", "s", id);
    int rc = tm__store_step(s, st);
    if (rc == 1)
        tm__store_col_text(st, 0, state, 16);
    if (st)
        tm__stmt_reset(st);
    return rc == 0 ? tm__store_refuse(s, TM_ENOTFOUND, "no such rendition") : rc < 0 ? rc : 0;
}

int tm_rendition_begin(tm_store *s, const char *id, const char *path, bool encrypted, int parts,
                       int64_t now_ms)
{
    if (!id || !path)
        return tm__store_refuse(s, TM_EINVAL, "a rendition needs id and path");
    char state[16];
    int rc = row_state(s, id, state);
    if (rc == 0 && strcmp(state, "queued") != 0)
        rc = tm__store_refuse(s, TM_ECONFLICT, "rendition is not queued");
    if (rc == 0)
        rc = tm__store_run(s,
                           "UPDATE renditions SET state = 'rendering', path = ?2, encrypted = ?3,"
                           " parts = ?4, started_at = ?5 WHERE id = ?1",
                           "ssiiI", id, path, encrypted ? 1 : 0, parts, now_ms);
    return rc;
}

int tm_rendition_finish(tm_store *s, const char *id, int64_t size_bytes, int64_t duration_ms,
                        const char *sha256, const char *plain_sha256, int64_t cpu_ms,
                        int64_t now_ms)
{
    if (!id || !is_sha256_hex(sha256) || (plain_sha256 && !is_sha256_hex(plain_sha256)) ||
        size_bytes < 0 || duration_ms < 0)
        return tm__store_refuse(s, TM_EINVAL, "bad rendition id, sha256, size or duration");
    char state[16];
    int rc = row_state(s, id, state);
    if (rc == 0 && strcmp(state, "rendering") != 0)
        rc = tm__store_refuse(s, TM_ECONFLICT, "rendition is not rendering");
    if (rc == 0)
        rc = tm__store_run(s,
                           "UPDATE renditions SET state = 'complete', size_bytes = ?2,"
                           " duration_ms = ?3, sha256 = ?4, plain_sha256 = ?5, cpu_ms = ?6,"
                           " finished_at = ?7 WHERE id = ?1",
                           "sIIssII", id, size_bytes, duration_ms, sha256, plain_sha256, cpu_ms,
                           now_ms);
    return rc;
}

int tm_rendition_fail(tm_store *s, const char *id, const char *error, int64_t cpu_ms,
                      int64_t now_ms)
{
    if (!id)
        return tm__store_refuse(s, TM_EINVAL, "no rendition id");
    char state[16];
    int rc = row_state(s, id, state);
    if (rc == 0 && strcmp(state, "queued") != 0 && strcmp(state, "rendering") != 0)
        rc = tm__store_refuse(s, TM_ECONFLICT, "rendition is over already");
    if (rc == 0)
        rc = tm__store_run(s,
                           "UPDATE renditions SET state = 'failed', error = ?2, cpu_ms = ?3,"
                           " finished_at = ?4 WHERE id = ?1",
                           "ssII", id, error && *error ? error : "unknown", cpu_ms, now_ms);
    return rc;
}

json_t *tm_rendition_get(tm_store *s, const char *id)
{
    tm__stmt *st = tm__store_query(s,
                                   "SELECT id, visit_id, path, format, state, size_bytes,"
                                   " duration_ms, sha256, plain_sha256, encrypted, error,"
                                   " parts, cpu_ms, queued_at, started_at, finished_at,"
                                   " deleted_at FROM renditions WHERE id = ?1",
                                   "b", id);
    json_t *o = tm__store_step(s, st) == 1 ? tm__store_row_json(st) : NULL;
    if (st)
        tm__stmt_reset(st);
    return o;
}

int tm_rendition_count(tm_store *s, const char *state, int64_t *count)
{
    tm__stmt *st =
        tm__store_query(s, "SELECT count(*) FROM renditions WHERE state = ?1", "s", state);
    int rc = tm__store_step(s, st);
    if (rc == 1)
        *count = tm__col_int64(st, 0);
    if (st)
        tm__stmt_reset(st);
    return rc == 1 ? 0 : rc == 0 ? TM_EIO : rc;
}

/* Marks one rendition deleted by policy, with its audit row, in one
 * transaction. */
static int mark_deleted(tm_store *s, const char *id, const char *policy, int64_t now_ms)
{
    int rc = tm__store_begin(s);
    if (rc < 0)
        return rc;
    rc = tm__store_run(s, "UPDATE renditions SET state = 'deleted', deleted_at = ?2 WHERE id = ?1",
                       "sI", id, now_ms);
    if (rc == 0)
        rc = tm_store_audit(s, "system", "system", "rendition.delete", id, "ok", policy);
    return tm__store_finish(s, rc);
}

int tm_rendition_retention_sweep(tm_store *s, int retention_days, int64_t now_ms, int *deleted,
                                 int *failed)
{
    if (deleted)
        *deleted = 0;
    if (failed)
        *failed = 0;
    if (retention_days < 1)
        return tm__store_refuse(s, TM_EINVAL, "retention is at least one day");
    int64_t cutoff = now_ms - (int64_t)retention_days * 86400000;
    char policy[64];
    snprintf(policy, sizeof(policy), "retention_recordings_days=%d", retention_days);
    GPtrArray *rows = tm__store_collect_rows(s,
                                             tm__store_query(s,
                                                             "SELECT id, path FROM renditions"
                                                             " WHERE state IN ('complete','failed')"
                                                             " AND queued_at < ?1",
                                                             "I", cutoff),
                                             2);
    if (!rows)
        return TM_EIO;
    return tm__store_delete_files(s, rows, "rendition.delete", policy, now_ms, mark_deleted,
                                  deleted, failed);
}

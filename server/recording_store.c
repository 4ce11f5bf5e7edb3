/*
 * recording_store.c - the SQLite backend's recordings table (the recording
 * part of include/telemed/store.h), on the store's connection
 * (store_internal.h). Control loop thread only.
 *
 * State changes that the regulator must hear of (complete, incomplete)
 * write their outbox row in the same transaction (tm__store_outbox_append),
 * as every visit step does.
 */
#include "store_internal.h"
#include "telemed/common.h"

#include <errno.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Reads a row's visit id and state. 0, TM_ENOTFOUND or TM_EIO. */
static int row_state(tm_store *s, const char *rec_id, char visit[128], char state[16])
{
    tm__stmt *st =
        tm__store_query(s, "SELECT visit_id, state FROM recordings WHERE id = ?1", "s", rec_id);
    int rc = tm__store_step(s, st);
    if (rc == 1) {
        tm__store_col_text(st, 0, visit, 128);
        tm__store_col_text(st, 1, state, 16);
    }
    tm__stmt_reset(st);
    return rc == 0 ? tm__store_refuse(s, TM_ENOTFOUND, "no such recording") : rc < 0 ? rc : 0;
}

int tm_recording_start(tm_store *s, const char *visit_id, const char *path, const char *format,
                       bool encrypted, int64_t now_ms, char id_out[TM_RECORDING_ID_LEN])
{
    if (!visit_id || !path || !format)
        return tm__store_refuse(s, TM_EINVAL, "a recording needs visit, path and format");
    tm_visit v;
    int rc = tm_store_visit_get(s, visit_id, &v);
    if (rc < 0)
        return rc;
    char id[TM_RECORDING_ID_LEN];
    tm__store_make_id("rec", id, sizeof(id));
    rc = tm__store_run(s,
                       "INSERT INTO recordings(id, visit_id, path, format, state, encrypted,"
                       " started_at) VALUES(?1, ?2, ?3, ?4, 'recording', ?5, ?6)",
                       "ssssiI", id, visit_id, path, format, encrypted ? 1 : 0, now_ms);
    if (rc == 0)
        memcpy(id_out, id, sizeof(id));
    return rc;
}

int tm_recording_set_part(tm_store *s, const char *rec_id, int part)
{
    if (!rec_id || part < 1 || part > 1000)
        return tm__store_refuse(s, TM_EINVAL, "bad recording id or part");
    return tm__store_run_one(s, "UPDATE recordings SET part = ?2 WHERE id = ?1", "si", rec_id,
                             part);
}

int tm_recording_set_segment(tm_store *s, const char *rec_id, const char *node_id, int segment)
{
    if (!rec_id || !node_id || !node_id[0] || segment < 1 || segment > 1000)
        return tm__store_refuse(s, TM_EINVAL, "bad recording id, node or segment");
    return tm__store_run_one(s, "UPDATE recordings SET node_id = ?2, segment = ?3 WHERE id = ?1",
                             "ssi", rec_id, node_id, segment);
}

int tm_recording_last_segment(tm_store *s, const char *visit_id, int *segment)
{
    *segment = 0;
    tm__stmt *st = tm__store_query(
        s, "SELECT coalesce(max(segment), 0) FROM recordings WHERE visit_id = ?1", "s", visit_id);
    int rc = tm__store_step(s, st);
    if (rc == 1)
        *segment = tm__col_int(st, 0);
    if (st)
        tm__stmt_reset(st);
    return rc < 0 ? rc : 0;
}

static bool is_sha256_hex(const char *h)
{
    if (!h || strlen(h) != 64)
        return false;
    for (int i = 0; i < 64; i++)
        if (!g_ascii_isxdigit(h[i]) || g_ascii_isupper(h[i]))
            return false;
    return true;
}

int tm_recording_finish(tm_store *s, const char *rec_id, int64_t size_bytes, int64_t duration_ms,
                        const char *sha256, int64_t dropped_packets, int64_t now_ms)
{
    if (!rec_id || !is_sha256_hex(sha256) || size_bytes < 0 || duration_ms < 0)
        return tm__store_refuse(s, TM_EINVAL, "bad recording id, sha256, size or duration");
    char visit[128], state[16];
    int rc = tm__store_begin(s);
    if (rc < 0)
        return rc;
    rc = row_state(s, rec_id, visit, state);
    if (rc == 0 && strcmp(state, "recording") != 0)
        rc = tm__store_refuse(s, TM_ECONFLICT, "recording is over already");
    if (rc == 0)
        rc = tm__store_run(s,
                           "UPDATE recordings SET state = 'complete', size_bytes = ?2,"
                           " duration_ms = ?3, sha256 = ?4, dropped_packets = ?5,"
                           " finished_at = ?6 WHERE id = ?1",
                           "sIIsII", rec_id, size_bytes, duration_ms, sha256, dropped_packets,
                           now_ms);
    if (rc == 0)
        rc = tm__store_outbox_append(s, "recording.available", visit, now_ms);
    return tm__store_finish(s, rc);
}

int tm_recording_fail(tm_store *s, const char *rec_id, const char *reason, int64_t dropped_packets,
                      int64_t now_ms)
{
    if (!rec_id)
        return tm__store_refuse(s, TM_EINVAL, "no recording id");
    char visit[128], state[16];
    int rc = row_state(s, rec_id, visit, state);
    if (rc < 0)
        return rc;
    if (strcmp(state, "recording") != 0)
        return tm__store_refuse(s, TM_ECONFLICT, "recording is over already");
    return tm__store_run(s,
                         "UPDATE recordings SET state = 'failed', failure = ?2,"
                         " dropped_packets = ?3, finished_at = ?4"
                         " WHERE id = ?1 AND state = 'recording'",
                         "ssII", rec_id, reason && *reason ? reason : "unknown", dropped_packets,
                         now_ms);
}

/* Collects the rows of a two- or three-column query as strings, for loops
 * that then write per row (a cached statement cannot stay open across
 * them). Returns a new array of ncols * rows strings, or NULL (errmsg set). */
GPtrArray *tm__store_collect_rows(tm_store *s, tm__stmt *st, int ncols)
{
    GPtrArray *rows = g_ptr_array_new_with_free_func(g_free);
    int rc;
    while ((rc = tm__store_step(s, st)) == 1)
        for (int i = 0; i < ncols; i++)
            g_ptr_array_add(rows, g_strdup(tm__col_text(st, i)));
    tm__stmt_reset(st);
    if (rc < 0) {
        g_ptr_array_free(rows, TRUE);
        return NULL;
    }
    return rows;
}

/* One row cut short by a crash, in its own transaction. A file this node
 * cannot read is failed, or left recording when keep_unread (it may be on
 * another node's disk). */
static int recover_row(tm_store *s, const char *id, const char *visit, const char *path,
                       bool keep_unread, int64_t now_ms)
{
    int64_t size = 0;
    char sha[65];
    int h = tm_sha256_file(path, &size, sha);
    if (h < 0 && keep_unread)
        return TM_ENOTFOUND;
    int rc = tm__store_begin(s);
    if (rc < 0)
        return rc;
    if (h == 0) {
        rc = tm__store_run(s,
                           "UPDATE recordings SET state = 'incomplete', size_bytes = ?2,"
                           " sha256 = ?3, failure = 'server stopped while recording',"
                           " finished_at = ?4 WHERE id = ?1 AND state = 'recording'",
                           "sIsI", id, size, sha, now_ms);
        if (rc == 0)
            rc = tm__store_outbox_append(s, "recording.available", visit, now_ms);
    } else {
        rc = tm__store_run(s,
                           "UPDATE recordings SET state = 'failed', failure = ?2, finished_at = ?3"
                           " WHERE id = ?1 AND state = 'recording'",
                           "ssI", id,
                           h == TM_ENOTFOUND ? "server stopped; file missing"
                                             : "server stopped; file unreadable",
                           now_ms);
    }
    return tm__store_finish(s, rc);
}

/* Closes the rows (id, visit_id, path) of st, each in its own transaction,
 * so one bad file cannot hold back the others. */
static int recover_rows(tm_store *s, tm__stmt *st, bool keep_unread, int64_t now_ms, int *count)
{
    if (count)
        *count = 0;
    GPtrArray *rows = st ? tm__store_collect_rows(s, st, 3) : NULL;
    if (!rows)
        return TM_EIO;
    int rc = 0, changed = 0;
    for (guint i = 0; i + 2 < rows->len; i += 3) {
        int r = recover_row(s, rows->pdata[i], rows->pdata[i + 1], rows->pdata[i + 2], keep_unread,
                            now_ms);
        if (r == 0)
            changed++;
        else if (rc == 0 && !(keep_unread && r == TM_ENOTFOUND))
            rc = r;
    }
    g_ptr_array_free(rows, TRUE);
    if (count)
        *count = changed;
    return rc;
}

int tm_recording_recover(tm_store *s, int64_t now_ms, int *count)
{
    return recover_rows(s,
                        tm__store_query(s,
                                        "SELECT id, visit_id, path FROM recordings"
                                        " WHERE state = 'recording' ORDER BY started_at",
                                        ""),
                        false, now_ms, count);
}

int tm_recording_recover_node(tm_store *s, const char *node_id, int64_t now_ms, int *count)
{
    /* A row from before migration 20 has no node: whichever node starts first closes it. */
    return recover_rows(s,
                        tm__store_query(s,
                                        "SELECT id, visit_id, path FROM recordings"
                                        " WHERE state = 'recording'"
                                        " AND coalesce(node_id, ?1) = ?1 ORDER BY started_at",
                                        "s", node_id),
                        false, now_ms, count);
}

int tm_recording_close_others(tm_store *s, const char *visit_id, const char *node_id,
                              int64_t now_ms, int *count)
{
    return recover_rows(s,
                        tm__store_query(s,
                                        "SELECT id, visit_id, path FROM recordings"
                                        " WHERE visit_id = ?1 AND state = 'recording'"
                                        " AND coalesce(node_id, '') <> ?2 ORDER BY started_at",
                                        "ss", visit_id, node_id),
                        true, now_ms, count);
}

/* Marks one recording deleted by policy, with its evidence (the chained
 * recording.deleted event, store_retention.c) and its audit row, in one
 * transaction. */
static int mark_deleted(tm_store *s, const char *id, const char *policy, int64_t now_ms)
{
    char detail[160];
    int rc = tm__store_begin(s);
    if (rc < 0)
        return rc;
    rc = tm__store_recording_deletion_evidence(s, id, policy, now_ms, detail, sizeof(detail));
    if (rc == 0)
        rc = tm__store_run(s,
                           "UPDATE recordings SET state = 'deleted', deleted_at = ?2,"
                           " deleted_by_policy = ?3 WHERE id = ?1",
                           "sIs", id, now_ms, policy);
    if (rc == 0)
        rc = tm_store_audit(s, "system", "system", "recording.delete", id, "ok", detail);
    return tm__store_finish(s, rc);
}

int tm__store_delete_files(tm_store *s, GPtrArray *rows, const char *action, const char *policy,
                           int64_t now_ms, tm__store_mark_deleted_fn mark, int *deleted,
                           int *failed)
{
    int rc = 0, n_deleted = 0, n_failed = 0;
    for (guint i = 0; i + 1 < rows->len; i += 2) {
        const char *id = rows->pdata[i], *path = rows->pdata[i + 1];
        /* The file goes first: a row that says "deleted" while the file is
         * still there would keep medical video past its policy unseen. */
        if (path && unlink(path) != 0 && errno != ENOENT) {
            char detail[160];
            snprintf(detail, sizeof(detail), "%s; unlink: %s", policy, g_strerror(errno));
            tm_store_audit(s, "system", "system", action, id, "error", detail);
            n_failed++;
            continue;
        }
        int r = mark(s, id, policy, now_ms);
        if (r == 0)
            n_deleted++;
        else if (rc == 0)
            rc = r;
    }
    g_ptr_array_free(rows, TRUE);
    if (deleted)
        *deleted = n_deleted;
    if (failed)
        *failed = n_failed;
    return rc;
}

int tm_recording_retention_sweep(tm_store *s, int retention_days, int64_t now_ms, int *deleted,
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
    GPtrArray *rows =
        tm__store_collect_rows(s,
                               tm__store_query(s,
                                               "SELECT id, path FROM recordings WHERE state IN"
                                               " ('complete','incomplete','failed')"
                                               " AND started_at < ?1 ORDER BY started_at",
                                               "I", cutoff),
                               2);
    if (!rows)
        return TM_EIO;
    return tm__store_delete_files(s, rows, "recording.delete", policy, now_ms, mark_deleted,
                                  deleted, failed);
}

int tm_recording_set_plain_sha256(tm_store *s, const char *rec_id, const char *plain_sha256)
{
    if (!rec_id || !is_sha256_hex(plain_sha256))
        return tm__store_refuse(s, TM_EINVAL, "bad recording id or sha256");
    return tm__store_run_one(s, "UPDATE recordings SET plain_sha256 = ?2 WHERE id = ?1", "ss",
                             rec_id, plain_sha256);
}

json_t *tm_recording_get(tm_store *s, const char *rec_id)
{
    tm__stmt *st = tm__store_query(s,
                                   "SELECT id, visit_id, part, path, format, state, size_bytes,"
                                   " duration_ms, sha256, plain_sha256, encrypted, failure,"
                                   " dropped_packets, started_at, finished_at, deleted_at,"
                                   " deleted_by_policy FROM recordings WHERE id = ?1",
                                   "b", rec_id);
    json_t *o = tm__store_step(s, st) == 1 ? tm__store_row_json(st) : NULL;
    tm__stmt_reset(st);
    return o;
}

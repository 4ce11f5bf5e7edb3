/*
 * recording_store.c - the SQLite side of include/telemed/recording_store.h,
 * on the store's own connection (tm__store_db). Control loop thread only.
 *
 * State changes that the regulator must hear of (complete, incomplete)
 * write their outbox row in the same transaction, as every visit step in
 * store_sqlite.c does, with the payload built from the rows as they are
 * inside that transaction.
 */
#include "store_internal.h"
#include "telemed/common.h"
#include "telemed/recording_store.h"

#include <errno.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : TM_EIO;
}

static sqlite3_stmt *prep(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return NULL;
    return st;
}

/* Runs a statement that returns no rows and finalizes it. */
static int run(sqlite3_stmt *st)
{
    if (!st)
        return TM_EIO;
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : TM_EIO;
}

static void bind_opt_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

/* The outbox row for recording.available of visit_id; inside a transaction. */
static int emit_available(tm_store *s, const char *visit_id, int64_t now_ms)
{
    sqlite3 *db = tm__store_db(s);
    char *payload =
        tm__feed_event_payload(db, tm__store_hospital(s), "recording.available", visit_id);
    if (!payload)
        return TM_EIO;
    sqlite3_stmt *st = prep(db, "INSERT INTO outbox(event_id, type, visit_id, occurred_at, payload)"
                                " VALUES(?1, 'recording.available', ?2, ?3, ?4)");
    if (!st) {
        free(payload);
        return TM_EIO;
    }
    char event_id[37];
    tm_uuid4(event_id);
    sqlite3_bind_text(st, 1, event_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, visit_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, now_ms);
    sqlite3_bind_text(st, 4, payload, -1, free);
    return run(st);
}

/* Reads a row's visit id and state. 0, TM_ENOTFOUND or TM_EIO. */
static int row_state(sqlite3 *db, const char *rec_id, char visit[128], char state[16])
{
    sqlite3_stmt *st = prep(db, "SELECT visit_id, state FROM recordings WHERE id = ?1");
    if (!st)
        return TM_EIO;
    sqlite3_bind_text(st, 1, rec_id, -1, SQLITE_TRANSIENT);
    int rc = TM_ENOTFOUND;
    if (sqlite3_step(st) == SQLITE_ROW) {
        snprintf(visit, 128, "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(state, 16, "%s", (const char *)sqlite3_column_text(st, 1));
        rc = 0;
    }
    sqlite3_finalize(st);
    return rc;
}

int tm_recording_start(tm_store *s, const char *visit_id, const char *path, const char *format,
                       bool encrypted, int64_t now_ms, char id_out[TM_RECORDING_ID_LEN])
{
    sqlite3 *db = tm__store_db(s);
    if (!visit_id || !path || !format)
        return TM_EINVAL;
    sqlite3_stmt *st = prep(db, "SELECT 1 FROM visits WHERE id = ?1");
    if (!st)
        return TM_EIO;
    sqlite3_bind_text(st, 1, visit_id, -1, SQLITE_TRANSIENT);
    bool found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    if (!found)
        return TM_ENOTFOUND;
    char uuid[37];
    tm_uuid4(uuid);
    snprintf(id_out, TM_RECORDING_ID_LEN, "rec-%s", uuid);
    st = prep(db, "INSERT INTO recordings(id, visit_id, path, format, state, encrypted, started_at)"
                  " VALUES(?1, ?2, ?3, ?4, 'recording', ?5, ?6)");
    if (!st)
        return TM_EIO;
    sqlite3_bind_text(st, 1, id_out, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, visit_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, path, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, format, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 5, encrypted ? 1 : 0);
    sqlite3_bind_int64(st, 6, now_ms);
    return run(st);
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
    sqlite3 *db = tm__store_db(s);
    if (!rec_id || !is_sha256_hex(sha256) || size_bytes < 0 || duration_ms < 0)
        return TM_EINVAL;
    char visit[128], state[16];
    if (exec(db, "BEGIN IMMEDIATE") < 0)
        return TM_EIO;
    int rc = row_state(db, rec_id, visit, state);
    if (rc == 0 && strcmp(state, "recording") != 0)
        rc = TM_ECONFLICT;
    if (rc == 0) {
        sqlite3_stmt *st = prep(db, "UPDATE recordings SET state = 'complete', size_bytes = ?2,"
                                    " duration_ms = ?3, sha256 = ?4, dropped_packets = ?5,"
                                    " finished_at = ?6 WHERE id = ?1");
        if (st) {
            sqlite3_bind_text(st, 1, rec_id, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(st, 2, size_bytes);
            sqlite3_bind_int64(st, 3, duration_ms);
            sqlite3_bind_text(st, 4, sha256, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(st, 5, dropped_packets);
            sqlite3_bind_int64(st, 6, now_ms);
        }
        rc = run(st);
    }
    if (rc == 0)
        rc = emit_available(s, visit, now_ms);
    if (rc == 0 && exec(db, "COMMIT") == 0)
        return 0;
    exec(db, "ROLLBACK");
    return rc ? rc : TM_EIO;
}

int tm_recording_fail(tm_store *s, const char *rec_id, const char *reason, int64_t dropped_packets,
                      int64_t now_ms)
{
    sqlite3 *db = tm__store_db(s);
    if (!rec_id)
        return TM_EINVAL;
    char visit[128], state[16];
    int rc = row_state(db, rec_id, visit, state);
    if (rc < 0)
        return rc;
    if (strcmp(state, "recording") != 0)
        return TM_ECONFLICT;
    sqlite3_stmt *st = prep(db, "UPDATE recordings SET state = 'failed', failure = ?2,"
                                " dropped_packets = ?3, finished_at = ?4"
                                " WHERE id = ?1 AND state = 'recording'");
    if (!st)
        return TM_EIO;
    sqlite3_bind_text(st, 1, rec_id, -1, SQLITE_TRANSIENT);
    bind_opt_text(st, 2, reason && *reason ? reason : "unknown");
    sqlite3_bind_int64(st, 3, dropped_packets);
    sqlite3_bind_int64(st, 4, now_ms);
    return run(st);
}

/* SHA-256 and size of a file, streamed. 0, TM_ENOTFOUND or TM_EIO. */
static int hash_file(const char *path, int64_t *size, char hex[65])
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? TM_ENOTFOUND : TM_EIO;
    GChecksum *c = g_checksum_new(G_CHECKSUM_SHA256);
    guchar buf[65536];
    size_t n;
    int64_t total = 0;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
        g_checksum_update(c, buf, n);
        total += (int64_t)n;
    }
    int rc = ferror(f) ? TM_EIO : 0;
    fclose(f);
    snprintf(hex, 65, "%s", g_checksum_get_string(c));
    g_checksum_free(c);
    *size = total;
    return rc;
}

int tm_recording_recover(tm_store *s, int64_t now_ms, int *count)
{
    sqlite3 *db = tm__store_db(s);
    int changed = 0, rc = 0;
    if (count)
        *count = 0;
    /* Collect first: each row then gets its own transaction, so one bad
     * file cannot hold back the others. */
    sqlite3_stmt *st =
        prep(db, "SELECT id, visit_id, path FROM recordings WHERE state = 'recording'"
                 " ORDER BY started_at");
    if (!st)
        return TM_EIO;
    GPtrArray *rows = g_ptr_array_new_with_free_func(g_free);
    while (sqlite3_step(st) == SQLITE_ROW)
        for (int i = 0; i < 3; i++)
            g_ptr_array_add(rows, g_strdup((const char *)sqlite3_column_text(st, i)));
    sqlite3_finalize(st);

    for (guint i = 0; i + 2 < rows->len; i += 3) {
        const char *id = rows->pdata[i], *visit = rows->pdata[i + 1], *path = rows->pdata[i + 2];
        int64_t size = 0;
        char sha[65];
        int h = hash_file(path, &size, sha);
        if (exec(db, "BEGIN IMMEDIATE") < 0) {
            rc = TM_EIO;
            break;
        }
        int r;
        if (h == 0) {
            st =
                prep(db, "UPDATE recordings SET state = 'incomplete', size_bytes = ?2, sha256 = ?3,"
                         " failure = 'server stopped while recording', finished_at = ?4"
                         " WHERE id = ?1 AND state = 'recording'");
            if (st) {
                sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
                sqlite3_bind_int64(st, 2, size);
                sqlite3_bind_text(st, 3, sha, -1, SQLITE_TRANSIENT);
                sqlite3_bind_int64(st, 4, now_ms);
            }
            r = run(st);
            if (r == 0)
                r = emit_available(s, visit, now_ms);
        } else {
            st = prep(db, "UPDATE recordings SET state = 'failed', failure = ?2, finished_at = ?3"
                          " WHERE id = ?1 AND state = 'recording'");
            if (st) {
                sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
                sqlite3_bind_text(st, 2,
                                  h == TM_ENOTFOUND ? "server stopped; file missing"
                                                    : "server stopped; file unreadable",
                                  -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 3, now_ms);
            }
            r = run(st);
        }
        if (r == 0 && exec(db, "COMMIT") == 0) {
            changed++;
        } else {
            exec(db, "ROLLBACK");
            rc = TM_EIO;
        }
    }
    g_ptr_array_free(rows, TRUE);
    if (count)
        *count = changed;
    return rc;
}

int tm_recording_retention_sweep(tm_store *s, int retention_days, int64_t now_ms, int *deleted,
                                 int *failed)
{
    sqlite3 *db = tm__store_db(s);
    if (deleted)
        *deleted = 0;
    if (failed)
        *failed = 0;
    if (retention_days < 1)
        return TM_EINVAL;
    int64_t cutoff = now_ms - (int64_t)retention_days * 86400000;
    char policy[64];
    snprintf(policy, sizeof(policy), "retention_recordings_days=%d", retention_days);
    sqlite3_stmt *st = prep(db, "SELECT id, path FROM recordings WHERE state IN"
                                " ('complete','incomplete','failed') AND started_at < ?1"
                                " ORDER BY started_at");
    if (!st)
        return TM_EIO;
    sqlite3_bind_int64(st, 1, cutoff);
    GPtrArray *rows = g_ptr_array_new_with_free_func(g_free);
    while (sqlite3_step(st) == SQLITE_ROW)
        for (int i = 0; i < 2; i++)
            g_ptr_array_add(rows, g_strdup((const char *)sqlite3_column_text(st, i)));
    sqlite3_finalize(st);

    int rc = 0, n_deleted = 0, n_failed = 0;
    for (guint i = 0; i + 1 < rows->len; i += 2) {
        const char *id = rows->pdata[i], *path = rows->pdata[i + 1];
        /* The file goes first: a row that says "deleted" while the file is
         * still there would keep medical video past its policy unseen. */
        if (unlink(path) != 0 && errno != ENOENT) {
            char detail[160];
            snprintf(detail, sizeof(detail), "%s; unlink: %s", policy, g_strerror(errno));
            tm_store_audit(s, "system", "system", "recording.delete", id, "error", detail);
            n_failed++;
            continue;
        }
        if (exec(db, "BEGIN IMMEDIATE") < 0) {
            rc = TM_EIO;
            break;
        }
        st = prep(db, "UPDATE recordings SET state = 'deleted', deleted_at = ?2,"
                      " deleted_by_policy = ?3 WHERE id = ?1");
        if (st) {
            sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(st, 2, now_ms);
            sqlite3_bind_text(st, 3, policy, -1, SQLITE_TRANSIENT);
        }
        int r = run(st);
        if (r == 0)
            r = tm_store_audit(s, "system", "system", "recording.delete", id, "ok", policy);
        if (r == 0 && exec(db, "COMMIT") == 0) {
            n_deleted++;
        } else {
            exec(db, "ROLLBACK");
            rc = TM_EIO;
        }
    }
    g_ptr_array_free(rows, TRUE);
    if (deleted)
        *deleted = n_deleted;
    if (failed)
        *failed = n_failed;
    return rc;
}

int tm_recording_set_plain_sha256(tm_store *s, const char *rec_id, const char *plain_sha256)
{
    if (!rec_id || !is_sha256_hex(plain_sha256))
        return TM_EINVAL;
    sqlite3_stmt *st = prep(tm__store_db(s), "UPDATE recordings SET plain_sha256 = ?2 WHERE id = ?1");
    if (st) {
        sqlite3_bind_text(st, 1, rec_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, plain_sha256, -1, SQLITE_TRANSIENT);
    }
    return run(st);
}

json_t *tm_recording_get(tm_store *s, const char *rec_id)
{
    sqlite3 *db = tm__store_db(s);
    sqlite3_stmt *st = prep(db, "SELECT id, visit_id, path, format, state, size_bytes, duration_ms,"
                                " sha256, plain_sha256, encrypted, failure, dropped_packets,"
                                " started_at, finished_at, deleted_at, deleted_by_policy"
                                " FROM recordings WHERE id = ?1");
    if (!st)
        return NULL;
    sqlite3_bind_text(st, 1, rec_id ? rec_id : "", -1, SQLITE_TRANSIENT);
    json_t *o = NULL;
    if (sqlite3_step(st) == SQLITE_ROW) {
        o = json_object();
        int n = sqlite3_column_count(st);
        for (int i = 0; i < n; i++) {
            const char *name = sqlite3_column_name(st, i);
            size_t len = strlen(name);
            json_t *v;
            if (sqlite3_column_type(st, i) == SQLITE_NULL) {
                v = json_null();
            } else if (strcmp(name, "encrypted") == 0) {
                v = json_boolean(sqlite3_column_int(st, i) != 0);
            } else if (len > 3 && strcmp(name + len - 3, "_at") == 0) {
                char ts[40];
                v = json_string(tm_rfc3339(sqlite3_column_int64(st, i), ts, sizeof(ts)));
            } else if (sqlite3_column_type(st, i) == SQLITE_INTEGER) {
                v = json_integer(sqlite3_column_int64(st, i));
            } else {
                v = json_string((const char *)sqlite3_column_text(st, i));
            }
            json_object_set_new(o, name, v);
        }
    }
    sqlite3_finalize(st);
    return o;
}

/*
 * store_retention.c - the evidence the retention sweep leaves of what it
 * deleted (store.h, "recordings"): a recording.deleted event on the
 * recording's visit, chained like every other event of that visit (so the
 * chain, and a seal made before, still verify) and delivered by the feed,
 * naming the file's hashes, the policy and the time; and the audit row's
 * detail with the same hash.
 *
 * Control loop thread only, inside the transaction that marks the row.
 */
#include "store_internal.h"
#include "telemed/common.h"

#include <stdio.h>

int tm__store_recording_deletion_evidence(tm_store *s, const char *id, const char *policy,
                                          int64_t now_ms, char *detail, size_t detail_len)
{
    tm__stmt *st =
        tm__store_query(s,
                        "SELECT visit_id, part, sha256, plain_sha256, size_bytes, format,"
                        " encrypted, started_at, finished_at FROM recordings WHERE id = ?1",
                        "s", id);
    int rc = tm__store_step(s, st);
    json_t *row = rc == 1 ? tm__store_row_json(st) : NULL;
    if (st)
        tm__stmt_reset(st);
    if (rc <= 0)
        return rc < 0 ? rc : tm__store_refuse(s, TM_ENOTFOUND, "no such recording");
    const char *visit_id = json_string_value(json_object_get(row, "visit_id"));
    const char *sha = json_string_value(json_object_get(row, "sha256"));
    char at[40];
    json_t *what =
        json_pack("{s:s, s:O, s:O, s:O, s:O, s:O, s:b, s:s, s:s}", "recording_id", id, "part",
                  json_object_get(row, "part"), "sha256", json_object_get(row, "sha256"),
                  "plain_sha256", json_object_get(row, "plain_sha256"), "size",
                  json_object_get(row, "size_bytes"), "format", json_object_get(row, "format"),
                  "encrypted", json_is_true(json_object_get(row, "encrypted")), "policy", policy,
                  "deleted_at", tm_rfc3339(now_ms, at, sizeof(at)));
    rc = what && visit_id ? tm__store_outbox_append_with(s, "recording.deleted", visit_id, now_ms,
                                                         "deletion", what)
                          : TM_ENOMEM;
    snprintf(detail, detail_len, "%s sha256=%s", policy, sha ? sha : "none");
    json_decref(what);
    json_decref(row);
    return rc;
}

/*
 * recording_store.h - the recordings table of the visit record: a row per
 * recording from its first packet to its deletion by retention policy.
 *
 * Part of the store interface (backend-neutral, plain values and jansson
 * out); the SQLite backend is server/recording_store.c on the store's
 * connection. Control loop thread only, like every store function.
 *
 * Life of a row:  recording -> complete    (tm_recording_finish)
 *                           -> failed      (tm_recording_fail: disk full, muxer error)
 *                           -> incomplete  (tm_recording_recover at start: the server died)
 *                 complete | incomplete | failed -> deleted (tm_recording_retention_sweep)
 * complete and incomplete rows each emit `recording.available` into the
 * regulator outbox in the same transaction that sets the state.
 */
#ifndef TELEMED_RECORDING_STORE_H
#define TELEMED_RECORDING_STORE_H

#include "telemed/store.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define TM_RECORDING_ID_LEN 64

/* A recording starts for visit_id (which must exist) at path. format names
 * the container ("matroska"). Writes id_out ("rec-<uuid>"). 0, TM_ENOTFOUND
 * (no such visit), TM_EIO. */
int tm_recording_start(tm_store *s, const char *visit_id, const char *path, const char *format,
                       bool encrypted, int64_t now_ms, char id_out[TM_RECORDING_ID_LEN]);

/* The file is final: state complete with its size, duration and SHA-256
 * (64 lowercase hex), plus the recorder's dropped-packet count, and the
 * visit's recording.available event, in one transaction. 0, TM_ENOTFOUND,
 * TM_ECONFLICT (not in state recording), TM_EINVAL (bad sha256), TM_EIO. */
int tm_recording_finish(tm_store *s, const char *rec_id, int64_t size_bytes, int64_t duration_ms,
                        const char *sha256, int64_t dropped_packets, int64_t now_ms);

/* For a recording encrypted at rest: the SHA-256 (64 lowercase hex) of the
 * Matroska stream before encryption, which a decrypted copy hashes to. Set
 * before tm_recording_finish. 0, TM_EINVAL or TM_EIO. */
int tm_recording_set_plain_sha256(tm_store *s, const char *rec_id, const char *plain_sha256);

/* The recording failed (reason: short, no personal data, e.g. the
 * recorder's "filesink0: ... No space left on device"). The visit goes
 * on; no event is emitted. 0, TM_ENOTFOUND, TM_ECONFLICT, TM_EIO. */
int tm_recording_fail(tm_store *s, const char *rec_id, const char *reason, int64_t dropped_packets,
                      int64_t now_ms);

/* At start-up, before any recorder runs: every row still 'recording' was
 * cut short by a crash. Each becomes 'incomplete' with the size and SHA-256
 * of what is on disk (failed with "file missing" if nothing is) and its
 * recording.available event. *count (may be NULL) gets how many rows
 * changed. 0 or TM_EIO. */
int tm_recording_recover(tm_store *s, int64_t now_ms, int *count);

/* Deletes the files of recordings started more than retention_days ago
 * and marks their rows 'deleted' with deleted_at and deleted_by_policy
 * ("retention_recordings_days=N"); each deletion is in the audit log
 * (actor "system", action "recording.delete"). A file that cannot be
 * removed (other than already gone) keeps its row, is audited with outcome
 * "error", and counts in *failed. retention_days >= 1. 0, TM_EINVAL or
 * TM_EIO. */
int tm_recording_retention_sweep(tm_store *s, int retention_days, int64_t now_ms, int *deleted,
                                 int *failed);

/* One recording row as an object (id, visit_id, path, format, state,
 * size_bytes, duration_ms, sha256, encrypted, failure, dropped_packets,
 * started_at, finished_at, deleted_at, deleted_by_policy) for
 * GET /api/v1/recordings/{id}; NULL when not found. Caller json_decref()s. */
json_t *tm_recording_get(tm_store *s, const char *rec_id);

#endif

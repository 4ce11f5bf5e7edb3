/*
 * feed_tianjin.h - the `tianjin` delivery profile: the previous day's
 * finished visits and their ratings uploaded nightly to the Tianjin
 * internet-hospital supervision platform, plus a daily check-in.
 *
 * Contract with the platform (headers, SM3 signature, SM4-CBC body, the
 * field mapping, answers and retries): docs/regulator-feed.md.
 *
 * Each business id goes out once: records are staged in the store
 * (store.h, "batch uploads") under a unique key and marked delivered only after the
 * platform accepted them, so a crash repeats a record with the same bussID
 * but never makes a new one. Every record is checked against the profile's
 * required fields first; one that fails becomes a dead letter naming the
 * field. A batch the platform rejects is split in halves until the refused
 * record is alone, so good records are never held back by a bad one.
 *
 * Threading: every function runs on the thread that runs ctx (the control
 * loop); the upload is driven by libcurl's multi interface from ctx's
 * sources, so the night's batch never blocks the loop on the network.
 */
#ifndef TELEMED_FEED_TIANJIN_H
#define TELEMED_FEED_TIANJIN_H

#include "telemed/config.h"
#include "telemed/store.h"

#include <glib.h>
#include <jansson.h>
#include <stdint.h>

typedef struct tm_tianjin tm_tianjin;

/* Starts the profile on ctx (NULL = default context) with the tianjin_*
 * settings, feed_timeout_ms and feed_backoff_* of cfg (copied). Borrows
 * store, which must outlive it. NULL with *err (new string, g_free) when a
 * setting is missing or bad. */
tm_tianjin *tm_tianjin_new(tm_store *store, const tm_config *cfg, GMainContext *ctx, char **err);
/* reg16b: an alliance member's own instance, named "tianjin@<institution>":
 * only the visits of institution's departments (tm_upload_stage_day_in),
 * with the tianjin_* settings of cfg (the caller puts the member's URL and
 * credentials there) and its own records, days and dead letters. The
 * instance tm_tianjin_new starts ("tianjin") leaves such members' visits out. */
tm_tianjin *tm_tianjin_member_new(tm_store *store, const tm_config *cfg, const char *institution,
                                  GMainContext *ctx, char **err);
/* Cancels the request in flight (its records stay pending). NULL is fine. */
void tm_tianjin_free(tm_tianjin *t);

/* The nightly run now: stages day (YYYY-MM-DD; NULL = the previous day in
 * the platform's time zone) and sends what is due. Staging is idempotent.
 * Returns the number of new records, or TM_EINVAL (bad day) / TM_EIO. */
int tm_tianjin_run(tm_tianjin *t, const char *day);

/* For the admin API: profile, endpoint, upload_at, next_run_at,
 * last_staged_day, pending, delivered, dead, held (ratings waiting for
 * their visit to be accepted: a dead visit record holds its rating back),
 * days, checkins, in_flight, bisecting, retrying, held_for_ms, last_status,
 * last_error, last_error_at, last_success_at. New reference or NULL. */
json_t *tm_tianjin_status(tm_tianjin *t);
/* Dead records, newest first: id, kind, buss_id, day, attempts,
 * last_status, last_error, last_response. New reference or NULL. */
json_t *tm_tianjin_dead_letters(tm_tianjin *t, int limit);
/* A dead record back to pending with its facts read again. TM_ENOTFOUND,
 * TM_ECONFLICT (not dead) or TM_EIO. The caller audits who did it. */
int tm_tianjin_replay(tm_tianjin *t, int64_t id);
/* Appends telemed_upload_{pending,delivered_total,dead_letters,checkins_total,
 * deadline_missed} with label profile="tianjin". 0 or TM_EIO. */
int tm_tianjin_metrics(tm_tianjin *t, GString *out);
/* The compliance figures per business day, newest first (at most limit):
 * {profile, deadline_h, yesterday: the previous day's entry (deadline "open"
 * with no records while it is not staged), days: [{day, visits, ratings,
 * accepted, pending, dead, dead_by_reason, checkin_at, deadline_at,
 * complete_at, deadline: "met" | "missed" | "open"}]}. A day is complete
 * when every record is accepted and the day checked in. New reference or
 * NULL. */
json_t *tm_tianjin_compliance(tm_tianjin *t, int limit);

/* ---- internals, exposed for the unit tests ------------------------- */

/* The signed headers for one request: the string signed (sorted
 * "lowercase-name:value" joined by "&") into sign_str, its SM3 into sig.
 * content_sm3 is the SM3 of the hex body (X-Content-MD5). */
int tm__tianjin_sign(const char *service_id, const char *method, const char *app_key,
                     const char *nonce, const char *timestamp_ms, const char *content_sm3,
                     GString *sign_str, char sig[65]);
/* Maps one record's facts (source: JSON text from the store) to the
 * platform's object by the profile's one mapping table. kind "visit" or
 * "rating". On missing or invalid required fields returns TM_EINVAL with
 * *why (new string, g_free) naming every such platform field. */
int tm__tianjin_map(const tm_config *cfg, const char *kind, const char *source, int64_t now_ms,
                    json_t **out, char **why);
/* Row i of the mapping table as "kind | field | from | when[, check]", the
 * form of the table in docs/regulator-feed.md, into buf; NULL past the end. */
const char *tm__tianjin_mapping_row(size_t i, char *buf, size_t len);
/* "YYYY-MM-DD HH:MM:SS" of epoch_ms at utc_offset_min (the platform's format). */
void tm__tianjin_time(int64_t epoch_ms, int utc_offset_min, char out[20]);

#endif

/*
 * feed.h - the regulator feed: delivers the store's outbox events, in order
 * per visit, to the regulator's HTTPS endpoint (signed JSON batches) or,
 * with no endpoint configured, to an NDJSON file in data_dir/feed/.
 *
 * Contract with the regulator (envelope, fields, signature, retries):
 * docs/regulator-feed.md.
 *
 * Delivery is at least once: an event is marked delivered only after the
 * endpoint answered 2xx (or the file sink fsync'd it), so a crash can repeat
 * an event but never lose one; receivers de-duplicate by event id. Every
 * outcome is written to the outbox, so retries survive restarts.
 *
 * Threading: every function runs on the thread that runs ctx (the control
 * loop). One batch is in flight at a time; its HTTP transfer is driven by
 * libcurl's multi interface from ctx's sources, so nothing blocks the loop
 * except the SQLite statements and, for the file sink, one write+fsync.
 */
#ifndef TELEMED_FEED_H
#define TELEMED_FEED_H

#include "telemed/config.h"
#include "telemed/store.h"

#include <glib.h>
#include <jansson.h>
#include <stdint.h>

struct lws_context;
typedef struct tm_feed tm_feed;

/* Starts delivering store's outbox on ctx (NULL = the global default
 * context). Reads feed_url, feed_secret, feed_ca, feed_client_cert,
 * feed_client_key, feed_timeout_ms, feed_batch, feed_backoff_base_ms,
 * feed_backoff_max_ms, data_dir and hospital_id from cfg (copied; cfg may go
 * away). lws is unused (the HTTP client is libcurl) and may be NULL. The
 * first delivery pass runs soon after ctx iterates. Borrows store, which
 * must outlive the feed. Returns NULL with *err (new string, g_free) when
 * the file sink's directory cannot be made or libcurl cannot start. */
tm_feed *tm_feed_new(tm_store *store, const tm_config *cfg, struct lws_context *lws,
                     GMainContext *ctx, char **err);
/* followup18: the hospital's messaging system, a second consumer of the
 * same outbox rows (store.h, "the messaging queue": appointment.*,
 * consultation.*, referral.*) with its own delivery state, delivered by
 * this same engine: signed JSON batches to messaging_url with
 * messaging_secret (and messaging_ca), the feed's timeout, batch and
 * backoff; every other function below works on it as on the feed. Call
 * when messaging_url is set; NULL with *err (new string) otherwise or when
 * libcurl cannot start. */
tm_feed *tm_messaging_new(tm_store *store, const tm_config *cfg, GMainContext *ctx, char **err);
/* reg16b: an alliance member's own webhook (institution_feeds): the outbox
 * rows routed to institution (store.h, "routes by institution"), signed
 * JSON batches to url with secret (may be NULL: unsigned), with the feed's
 * CA, client certificate, timeout, batch and backoff; every function below
 * works on it as on the feed, its metrics labelled institution="...". NULL
 * with *err (new string) when url is missing or libcurl cannot start. */
tm_feed *tm_feed_member_new(tm_store *store, const tm_config *cfg, const char *institution,
                            const char *url, const char *secret, GMainContext *ctx, char **err);
/* Routes the outbox by institution (tm_route_new) before each batch of f,
 * so the deployment's webhook never sends a row a member's profile owns.
 * Call once, before the loop runs, when members have profiles. */
void tm_feed_route_first(tm_feed *f);

/* tm_feed_kick(f) kicks other too (may be NULL; borrowed, and cleared
 * before other is freed). */
void tm_feed_also_kick(tm_feed *f, tm_feed *other);

/* Cancels the request in flight (its events stay pending and go out again
 * at the next start) and frees everything. NULL is fine. */
void tm_feed_free(tm_feed *f);

/* The store has written a new event: deliver soon. Calls within a few
 * milliseconds are coalesced so that busy periods form batches. */
void tm_feed_kick(tm_feed *f);

/* For /api/v1/feed: sink ("http" or "file"), endpoint (URL without
 * credentials or query) or path, queue_depth, oldest_undelivered_age_s,
 * delivered, failed_attempts, dead, in_flight, last_status, last_error,
 * last_error_at, last_success_at, retrying (bool), held_for_ms (sends held
 * while the endpoint fails). New reference, or NULL
 * when the store cannot be read. */
json_t *tm_feed_status(tm_feed *f);
/* Dead letters, newest first, at most limit (<= 0: 100): seq, event_id,
 * type, visit_id, occurred_at, attempts, last_status, last_error,
 * last_response. New reference or NULL. */
json_t *tm_feed_dead_letters(tm_feed *f, int limit);
/* A dead letter goes back to pending and is delivered soon. TM_ENOTFOUND
 * (no such seq), TM_ECONFLICT (not a dead letter) or TM_EIO. The caller
 * writes the audit record (who replayed what). */
int tm_feed_replay(tm_feed *f, int64_t seq);
/* Appends the feed's Prometheus text lines (HELP, TYPE, value) to out:
 * telemed_feed_queue_depth, telemed_feed_oldest_undelivered_seconds,
 * telemed_feed_delivered_total, telemed_feed_failed_attempts_total,
 * telemed_feed_dead_letters. Returns 0 or TM_EIO. */
int tm_feed_metrics(tm_feed *f, GString *out);

/* ---- internals, exposed for the unit tests ------------------------- */

/* min(max_ms, base_ms * 2^(attempts-1)), without overflow: the cap the
 * jittered delay below is drawn under. */
int64_t tm__feed_backoff_cap(int base_ms, int max_ms, int attempts);
/* Delay before the next attempt after `attempts` failed ones (>= 1):
 * "full jitter", a uniform pick in [0, min(max_ms, base_ms * 2^(attempts-1))]
 * drawn from rnd, but never sooner than retry_after_ms (the endpoint's
 * Retry-After, 0 if none; honoured up to one day). */
int64_t tm__feed_backoff_ms(int base_ms, int max_ms, int attempts, int64_t retry_after_ms,
                            uint32_t rnd);
/* "sha256=" + lowercase hex HMAC-SHA256(secret, ts + "." + body) into out
 * (>= 72 bytes). The exact signed string is documented in
 * docs/regulator-feed.md. */
void tm__feed_sign(const char *secret, size_t secret_len, const char *ts, const char *body,
                   size_t body_len, char out[72]);
/* Truncates an NDJSON file after its last newline so that a line torn by a
 * crash never precedes the next append. Returns 0 or TM_EIO. */
int tm__feed_repair_tail(int fd);

#endif

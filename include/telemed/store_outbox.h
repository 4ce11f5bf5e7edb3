/*
 * store_outbox.h - the delivery side of the regulator-feed outbox.
 *
 * The store writes outbox rows in the same transaction as the visit step
 * they report (store.h); the feed (feed.h) reads them here, in order per
 * visit, and records what became of each delivery attempt. Every state
 * lives in the database, so retries survive restarts and kill -9.
 *
 * Row states: pending (to deliver; next_attempt_at says when) -> delivered,
 * or -> dead (a permanent rejection or an unreadable row; kept with the
 * status, error and response) -> pending again by replay.
 *
 * Order: a visit's pending rows form a chain in seq order; only the chain's
 * head decides when the chain is due, so no event of a visit is handed out
 * while an earlier one of the same visit is still pending. Different visits
 * overtake each other freely.
 *
 * Threading: the control loop only, like the rest of the store.
 */
#ifndef TELEMED_STORE_OUTBOX_H
#define TELEMED_STORE_OUTBOX_H

#include "telemed/store.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* One outbox row handed to the delivery task. */
typedef struct tm_outbox_event {
    int64_t seq;
    char event_id[64];
    char type[48];
    char visit_id[64];
    int64_t occurred_at; /* epoch ms */
    int attempts;        /* failed attempts so far */
    char *payload;       /* the event's data as JSON text, NUL-terminated; owned by the array */
    size_t payload_len;  /* bytes before the NUL (the row may hold anything) */
} tm_outbox_event;

/* Up to limit pending events that may be sent at now_ms: the rows of every
 * visit whose oldest pending row is due, oldest seq first, each visit's rows
 * in seq order. *out gets a new array (free with tm_outbox_events_free), *n
 * its length (0 and *out NULL when nothing is due). */
int tm_outbox_next_batch(tm_store *s, int64_t now_ms, int limit, tm_outbox_event **out, size_t *n);
void tm_outbox_events_free(tm_outbox_event *ev, size_t n);

/* The earliest time (epoch ms) at which some visit's oldest pending row is
 * due, in *due_ms. TM_ENOTFOUND when nothing is pending. */
int tm_outbox_next_due(tm_store *s, int64_t *due_ms);

/* Marks rows delivered at now_ms with the endpoint's status (0 for the file
 * sink), in one transaction. */
int tm_outbox_mark_delivered(tm_store *s, const int64_t *seqs, size_t n, int status,
                             int64_t now_ms);

/* Counts one failed attempt for each row and sets its next_attempt_at
 * (next_at[i], epoch ms), last_status (0 = no HTTP answer) and last_error,
 * in one transaction. Rows that are no longer pending are left alone. */
int tm_outbox_retry(tm_store *s, const int64_t *seqs, const int64_t *next_at, size_t n, int status,
                    const char *error);

/* Makes every pending row that waits for a retry due now (the endpoint
 * answered again after failing: no reason to wait out each row's backoff).
 * Returns the number of rows changed, or a negative TM_E* code. */
int tm_outbox_retry_now(tm_store *s, int64_t now_ms);

/* Moves a pending row to dead letters, counting the attempt and keeping
 * status, error and the first response_len bytes of response (may be NULL). */
int tm_outbox_dead_letter(tm_store *s, int64_t seq, int status, const char *error,
                          const char *response, size_t response_len);

/* Dead letter -> pending, due now. TM_ENOTFOUND if no such row,
 * TM_ECONFLICT if the row is not dead. The caller audits who did it. */
int tm_outbox_replay(tm_store *s, int64_t seq);

/* Dead letters, newest first, at most limit (<= 0: 100). Each element:
 * seq, event_id, type, visit_id, occurred_at (RFC 3339), attempts,
 * last_status, last_error, last_response. Returns a new reference or NULL. */
json_t *tm_outbox_dead_list(tm_store *s, int limit);

typedef struct tm_outbox_stats {
    int64_t pending; /* queue depth */
    int64_t delivered;
    int64_t dead;
    int64_t failed_attempts;   /* sum of attempts over all rows */
    int64_t oldest_pending_at; /* occurred_at of the oldest pending row, 0 if none */
} tm_outbox_stats;

/* Every figure; scans the whole table (the feed runs it once at start). */
int tm_outbox_stats_get(tm_store *s, tm_outbox_stats *out);
/* Only the queue: pending count and the oldest pending occurred_at (0 if
 * none). Costs O(pending) through the outbox_pending index, so it is cheap
 * enough for every /metrics scrape. */
int tm_outbox_queue(tm_store *s, int64_t *pending, int64_t *oldest_pending_at);

#endif

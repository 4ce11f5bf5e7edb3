/*
 * store_internal.h - what the store's own files share: one statement layer
 * over the database engine (SQLite or PostgreSQL, store_engine.h) and the
 * one function that writes an outbox row. Not part of the store contract:
 * only server/store_*.c, recording_store.c and rendition_store.c include it.
 *
 * Statements are prepared once per store handle and cached by the address
 * of their SQL (pass a string literal); each use resets the statement and
 * clears its bindings first. A caller that steps a statement itself resets
 * it when done (tm__stmt_reset), so that it holds no read snapshot or
 * result until its next use. Parameters are written ?1..?N (or ?) in every
 * engine's SQL.
 *
 * Control loop thread only, like the store.
 */
#ifndef TELEMED_STORE_INTERNAL_H
#define TELEMED_STORE_INTERNAL_H

#include "telemed/store.h"

#include <glib.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A prepared statement of the store's engine; its columns are read with
 * tm__col_* while a step has returned a row (columns count from 0). Text
 * and blob pointers stay valid until the next step or reset. */
typedef struct tm__stmt tm__stmt;
typedef enum { TM__COL_NULL, TM__COL_INT, TM__COL_REAL, TM__COL_TEXT, TM__COL_BLOB } tm__col_type;

int64_t tm__col_int64(tm__stmt *st, int i);
int tm__col_int(tm__stmt *st, int i);
double tm__col_double(tm__stmt *st, int i);
/* NULL for a NULL column. */
const char *tm__col_text(tm__stmt *st, int i);
const void *tm__col_blob(tm__stmt *st, int i);
int tm__col_bytes(tm__stmt *st, int i);
bool tm__col_is_null(tm__stmt *st, int i);
tm__col_type tm__col_kind(tm__stmt *st, int i);
const char *tm__col_name(tm__stmt *st, int i);
int tm__col_count(tm__stmt *st);
/* Ends st's current use: its rows are dropped, it is ready to bind again. */
void tm__stmt_reset(tm__stmt *st);

/* The cached statement for sql with its arguments bound, ready to step, or
 * NULL (the store's errmsg says why). types has one letter per argument:
 *   s  text; NULL or "" bind NULL (ids, optional fields)
 *   b  text that may be empty (bodies typed by people); NULL binds ""
 *   n  text with a length (const char *, size_t); NULL or 0 bind NULL
 *   i  int
 *   I  int64
 *   t  time in epoch ms (int64); 0 binds NULL ("not yet", "no filter") */
tm__stmt *tm__store_query(tm_store *s, const char *sql, const char *types, ...);

/* Prepares (once), binds and runs a statement that returns no rows.
 * 0, TM_ECONFLICT (a constraint) or TM_EIO; errmsg set on failure. */
int tm__store_run(tm_store *s, const char *sql, const char *types, ...);
/* Like tm__store_run, for statements that must change a row: 0 rows
 * changed is TM_ENOTFOUND. */
int tm__store_run_one(tm_store *s, const char *sql, const char *types, ...);
/* Round trips (PostgreSQL): inside a write transaction, prefetch sends a
 * query now without waiting; the next tm__store_query of the same sql with
 * the same arguments takes its answer, so queries sent together cost one
 * round trip. run_later sends a statement that returns no rows and whose
 * outcome the step does not read: its failure fails the transaction (at
 * the next statement that waits, or at the commit). Outside a transaction,
 * and on SQLite, prefetch does nothing and run_later is tm__store_run. */
void tm__store_prefetch(tm_store *s, const char *sql, const char *types, ...);
int tm__store_run_later(tm_store *s, const char *sql, const char *types, ...);
/* Steps st, which returns no rows, and resets it. Same results as
 * tm__store_run. */
int tm__store_step_done(tm_store *s, tm__stmt *st);
/* Steps a statement that returns rows: 1 on a row, 0 at the end, or a
 * negative TM_E* code (errmsg set). The caller resets st when done. */
int tm__store_step(tm_store *s, tm__stmt *st);
/* Rows changed by the last statement that ran (a new row id: RETURNING). */
int tm__store_changes(tm_store *s);
/* Sets the message tm_store_errmsg() returns (printf format). */
void tm__store_set_error(tm_store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A refusal: sets the message why and returns code (a TM_E* value). */
int tm__store_refuse(tm_store *s, int code, const char *why);
/* A new id "<prefix>-<uuid4>" into out. */
void tm__store_make_id(const char *prefix, char *out, size_t outlen);

/* A write transaction: begin takes the write lock now (BEGIN IMMEDIATE),
 * so a busy database fails here, before anything is written. finish
 * commits when rc is 0 and rolls back otherwise; it returns rc, or the
 * commit's failure. */
int tm__store_begin(tm_store *s);
int tm__store_finish(tm_store *s, int rc);

/* Serialises, until the open transaction ends, the steps of every node
 * that take the same key (the outbox writer: store_chain.c). SQLite's
 * write lock does this already; PostgreSQL takes an advisory lock. */
int tm__store_lock_key(tm_store *s, const char *key);

/* Replaces *now_ms with the database server's clock where nodes on other
 * machines share the database (PostgreSQL), so times nodes compare with
 * each other's come from one clock; SQLite keeps the caller's. 0 or a
 * TM_E* code. */
int tm__store_clock_ms(tm_store *s, int64_t *now_ms);

/* A second handle on s's database for a thread of its own (store_queue.c),
 * with s's hospital and lease holder: on PostgreSQL a new connection; NULL
 * with nothing set on SQLite, whose one file has one writer, the loop. NULL
 * with *err set (caller g_free()s) when the connection cannot be made. */
tm_store *tm__store_open_twin(tm_store *s, char **err);

/* Every row of st's result as ncols strings in a row (NULL columns as NULL);
 * resets st. NULL when the query or a step failed. */
GPtrArray *tm__store_collect_rows(tm_store *s, tm__stmt *st, int ncols);
/* Retention: for each (id, path) pair of rows (taken and freed), removes the
 * file (a NULL path has none) and then marks the row deleted with mark, in its
 * own transaction; a file that cannot be removed keeps its row and gets an
 * `action` audit row "error". Returns 0 or the first mark's failure. */
typedef int (*tm__store_mark_deleted_fn)(tm_store *s, const char *id, const char *policy,
                                         int64_t now_ms);
int tm__store_delete_files(tm_store *s, GPtrArray *rows, const char *action, const char *policy,
                           int64_t now_ms, tm__store_mark_deleted_fn mark, int *deleted,
                           int *failed);

/* One delivery outcome for n rows of a delivery table (the outbox, the
 * batch uploads), in one write transaction: with synchronous=FULL a batch
 * of marks costs one fsync, not one per row. sql is run once per row, bound
 * by types ("IIi" or "IIib") to ?1 keys[i], ?2 at[i] (at_all when at is
 * NULL), ?3 status and ?4 error. 0 when n is 0. */
int tm__store_mark_rows(tm_store *s, const char *sql, const char *types, const int64_t *keys,
                        size_t n, const int64_t *at, int64_t at_all, int status, const char *error);

/* The handle's outbox lease holder and lease time (tm_store_set_lease). */
const char *tm__store_lease_holder(tm_store *s);
int64_t tm__store_lease_ms(tm_store *s);

/* A delivery table (the outbox; the messaging and routed queues beside
 * it): the same delivery columns (seq, visit_id, state, attempts,
 * next_attempt_at, delivered_at, last_status, last_error, last_response,
 * leased_by, lease_until) and transitions, so one set of functions serves
 * them all. TM__DELIVERY writes a table's SQL; the statement cache is keyed
 * by the text's address, so each table has one static instance.
 *
 * Leases (store.h, "the regulator outbox"): claim takes a pending row for
 * ?2 until ?3 when nobody holds it at ?4 (free, ?2's own, or expired); the
 * outcomes touch rows of the holder (?H below) or of nobody, and free them.
 * A head another holder leases is due when its lease ends, so a node does
 * not poll rows it cannot take. */
typedef struct tm__delivery {
    const char *next_due, *claim, *delivered, *retry, *retry_now, *dead, *state_of, *replay;
    const char *no_row, *not_dead; /* refusals of a replay */
} tm__delivery;

#define TM__UNLEASED_OR(H) " AND (leased_by IS NULL OR leased_by = " H ")"
#define TM__UNLEASE " leased_by = NULL, lease_until = NULL"

#define TM__DELIVERY(T, WHAT)                                                                      \
    {                                                                                              \
        .next_due =                                                                                \
            "WITH heads AS (SELECT min(seq) AS head FROM " T                                       \
            " WHERE state = 'pending' GROUP BY visit_id)"                                          \
            " SELECT min(CASE WHEN hd.leased_by <> ?1 AND hd.lease_until > hd.next_attempt_at"     \
            "  THEN hd.lease_until ELSE hd.next_attempt_at END)"                                   \
            " FROM heads h JOIN " T " hd ON hd.seq = h.head",                                      \
        .claim = "UPDATE " T " SET leased_by = ?2, lease_until = ?3"                               \
                 " WHERE seq = ?1 AND state = 'pending'"                                           \
                 " AND (leased_by IS NULL OR leased_by = ?2 OR lease_until <= ?4)",                \
        .delivered = "UPDATE " T " SET state = 'delivered', delivered_at = ?2,"                    \
                     " last_status = ?3, last_error = NULL, last_response = NULL," TM__UNLEASE     \
                     " WHERE seq = ?1 AND state = 'pending'" TM__UNLEASED_OR("?4"),                \
        .retry = "UPDATE " T " SET attempts = attempts + 1, next_attempt_at = ?2,"                 \
                 " last_status = nullif(?3, 0), last_error = ?5," TM__UNLEASE                      \
                 " WHERE seq = ?1 AND state = 'pending'" TM__UNLEASED_OR("?4"),                    \
        .retry_now = "UPDATE " T " SET next_attempt_at = 0"                                        \
                     " WHERE state = 'pending' AND next_attempt_at > ?1",                          \
        .dead = "UPDATE " T " SET state = 'dead', attempts = attempts + 1,"                        \
                " last_status = nullif(?2, 0), last_error = ?3, last_response = ?4," TM__UNLEASE   \
                " WHERE seq = ?1 AND state = 'pending'" TM__UNLEASED_OR("?5"),                     \
        .state_of = "SELECT state FROM " T " WHERE seq = ?1",                                      \
        .replay = "UPDATE " T " SET state = 'pending', next_attempt_at = 0," TM__UNLEASE           \
                  " WHERE seq = ?1 AND state = 'dead'",                                            \
        .no_row = "no such " WHAT, .not_dead = WHAT " is not a dead letter",                       \
    }

/* The tm_outbox_* delivery steps of store.h, on table d (store_outbox.c). */
int tm__delivery_next_due(tm_store *s, const tm__delivery *d, int64_t *due_ms);
int tm__delivery_mark_delivered(tm_store *s, const tm__delivery *d, const int64_t *seqs, size_t n,
                                int status, int64_t now_ms);
int tm__delivery_retry(tm_store *s, const tm__delivery *d, const int64_t *seqs,
                       const int64_t *next_at, size_t n, int status, const char *error);
int tm__delivery_retry_now(tm_store *s, const tm__delivery *d, int64_t now_ms);
int tm__delivery_dead_letter(tm_store *s, const tm__delivery *d, int64_t seq, int status,
                             const char *error, const char *response, size_t response_len);
int tm__delivery_replay(tm_store *s, const tm__delivery *d, int64_t seq);

/* Appends the regulator event `type` of visit_id to the outbox, its
 * payload built from the rows as they are in the current transaction
 * (tm_store_visit_facts, server/feed_event.c). Must run inside one. */
int tm__store_outbox_append(tm_store *s, const char *type, const char *visit_id, int64_t now_ms);
/* The same with one more member of the event's data: key = extra (borrowed;
 * key NULL adds nothing). */
int tm__store_outbox_append_with(tm_store *s, const char *type, const char *visit_id,
                                 int64_t now_ms, const char *key, json_t *extra);
/* An event whose subject is not a visit (a consultation request "cr-..."):
 * data (borrowed) is its whole payload. Must run inside a transaction. */
int tm__store_outbox_append_data(tm_store *s, const char *type, const char *subject_id,
                                 int64_t now_ms, json_t *data);

/* Inside the transaction that marks recording id deleted by policy: its
 * recording.deleted event on its visit (hashes, policy, time) and, in
 * detail, the audit row's text (store_retention.c). */
int tm__store_recording_deletion_evidence(tm_store *s, const char *id, const char *policy,
                                          int64_t now_ms, char *detail, size_t detail_len);
/* Fills out's participants of visit_id (store_facts_people.c). */
int tm__store_facts_participants(tm_store *s, const char *visit_id, tm_visit_facts *out);

/* tm__store_prefetch of the reads a step makes later, so they share a round
 * trip with what is sent before that step waits: the participants of the
 * facts, the open transfer of tm__store_transfer_accepted, the open invites
 * of tm__store_party_close, the chain link of a new outbox row. */
void tm__store_facts_participants_prefetch(tm_store *s, const char *visit_id);
void tm__store_transfer_prefetch(tm_store *s, const char *visit_id);
void tm__store_party_close_prefetch(tm_store *s, const char *visit_id);
void tm__store_chain_prefetch(tm_store *s, const char *visit_id);

/* The delivery side shared by the outbox's consumers (store_outbox.c): the
 * regulator feed's rows, the messaging system's (store_messaging.c) and
 * the routed members' (store_route.c). walk takes st (stepped, then reset),
 * whose columns are seq, event_id, type, visit_id, occurred_at, attempts,
 * next_attempt_at, payload, leased_by, lease_until of the pending rows of
 * table d in seq order, and claims and hands out up to limit due ones as
 * tm_outbox_next_batch does. dead_rows_json makes the dead-letter list of
 * st's rows (seq, event_id, type, visit_id, occurred_at, attempts,
 * last_status, last_error, last_response) and resets st; NULL on failure. */
int tm__store_outbox_walk(tm_store *s, const tm__delivery *d, tm__stmt *st, int64_t now_ms,
                          int limit, tm_outbox_event **out, size_t *n);
json_t *tm__store_dead_rows_json(tm_store *s, tm__stmt *st);

/* Inside the transaction that ends visit_id: its open invites end with
 * outcome visit_ended (with their events) and its open guest links are
 * revoked. server/store_party.c. */
int tm__store_party_close(tm_store *s, const char *visit_id, int64_t now_ms);

/* Whether visit_id's record is sealed: its notes are final. */
bool tm__store_visit_sealed(tm_store *s, const char *visit_id);
/* Inside the accept's transaction: the open transfer of visit_id (if any)
 * is taken by doctor_id at now_ms. 1 and *transfer (new reference, the
 * row as visit.transferred carries it) when there was one, 0 when not, or
 * a TM_E* code. server/store_transfer.c. */
int tm__store_transfer_accepted(tm_store *s, const char *visit_id, const char *doctor_id,
                                int64_t now_ms, json_t **transfer);

/* A visit or appointment kind the schema accepts (follow_up, first). */
bool tm__store_kind_valid(const char *kind);

/* Column i of st's current row into out ("" for NULL). */
void tm__store_col_text(tm__stmt *st, int i, char *out, size_t outlen);
/* The current row as an object keyed by column names: columns named "at"
 * or ending in "_at" (epoch ms) come out as RFC 3339 text, flag columns as
 * booleans, NULL as null. New reference. */
json_t *tm__store_row_json(tm__stmt *st);
/* Steps st to its end collecting rows into a new array, and resets it.
 * NULL when st is NULL or a step fails (errmsg set). */
json_t *tm__store_rows_json(tm_store *s, tm__stmt *st);

/* The chain hash of a new outbox row of ev->visit_id (visit_chain.h): linked
 * to the visit's last chained row, or to the chain's start. Run inside the
 * transaction that writes the row. 0 or a TM_E* code. server/store_chain.c. */
struct tm_chain_event;
int tm__store_chain_next(tm_store *s, const struct tm_chain_event *ev, char out[65]);

/* 0 when doctor_id's department and dept_id belong to the same institution
 * (or either is unknown: the caller's foreign keys say so), else TM_EINVAL
 * with the reason: a doctor works in their own institution's queues.
 * server/store_institution.c. */
int tm__store_same_institution(tm_store *s, const char *doctor_id, const char *dept_id);

/* Whom a no-show counts for, as SQL over appointments a LEFT JOIN
 * followups f: the appointment's doctor, else (a follow-up booked for any
 * doctor of the department) the doctor who booked it; NULL for an
 * appointment the hospital booked for the department. The figures and
 * tm_store_noshow_counts both count by it (docs/api.md, "no_shows"). */
#define TM__NOSHOW_DOCTOR "coalesce(nullif(a.doctor_id, ''), f.booked_by)"
#endif

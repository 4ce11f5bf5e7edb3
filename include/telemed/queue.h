/*
 * queue.h - the waiting patients of every department, and the order in which
 * doctors are offered them.
 *
 * The queue owns copies of the ids it is given and nothing else: it does not
 * know about sockets, offers or the store. The signaling layer decides when a
 * patient enters, leaves or goes back to the head; this module only keeps
 * them in order and answers "who is next" and "where am I".
 *
 * Order within a department at time now_ms:
 *   0. returned-to-head entries (order of first return)
 *   1. urgent, by check-in time
 *   2. appointments whose slot has come (slot_ms <= now_ms), by slot, then check-in
 *   3. walk-ins, by check-in time
 *   4. appointments whose slot has not come yet, by slot, then check-in (they can
 *      still be served early when nobody else waits)
 * Remaining ties are broken by visit id, as the store lists them, so that
 * nodes sharing one waiting room order it alike. An urgent entry with an
 * appointment is urgent. Classes 2 and 4 depend on now_ms, so the order is
 * computed at query time; position lookups are O(log n), ordered listings O(n).
 *
 * Thread: the control loop only; no locking.
 */
#ifndef TELEMED_QUEUE_H
#define TELEMED_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "telemed/common.h"

typedef struct tm_queue tm_queue;

typedef struct tm_queue_entry {
    const char *visit_id; /* copied */
    const char *dept_id;  /* copied */
    bool urgent;
    bool has_appointment;
    int64_t slot_ms;    /* appointment slot start (epoch ms), when has_appointment */
    int64_t checkin_ms; /* epoch ms */
} tm_queue_entry;

/* A new empty queue; free with tm_queue_free (accepts NULL). */
tm_queue *tm_queue_new(void);
void tm_queue_free(tm_queue *q);

/* Adds a copy of e. TM_EINVAL when visit_id or dept_id is NULL or empty,
 * TM_ECONFLICT if the visit is already queued (in any department). */
int tm_queue_add(tm_queue *q, const tm_queue_entry *e);
/* TM_ENOTFOUND when the visit is not queued. Invalidates borrowed ids. */
int tm_queue_remove(tm_queue *q, const char *visit_id);

/* The patient's offer timed out or was declined: they go back to the HEAD of
 * their department's queue, ahead of everyone not also returned. Several
 * returned patients keep their relative order of first return: returning an
 * already returned visit again is a no-op that keeps its place (returns 0).
 * The visit must still be queued (an offered patient stays queued and is
 * skipped through tm_queue_head's callback); TM_ENOTFOUND otherwise. */
int tm_queue_return_to_head(tm_queue *q, const char *visit_id);

bool tm_queue_contains(const tm_queue *q, const char *visit_id);

/* 1-based position of the visit in its department at now_ms; 0 if absent. O(log n). */
int tm_queue_position(tm_queue *q, const char *visit_id, int64_t now_ms);

/* Fills out[] with up to max visit ids of the department in order at now_ms
 * and returns the count written. The ids are borrowed: valid until the next
 * add, remove or free. Unknown department: 0. */
size_t tm_queue_ordered(tm_queue *q, const char *dept_id, int64_t now_ms, const char **out,
                        size_t max);

/* Entries in the department; dept_id NULL = all departments. */
size_t tm_queue_length(const tm_queue *q, const char *dept_id);

/* Head of the department at now_ms, skipping visit ids for which
 * skip(visit_id, user) returns true (a patient currently disconnected or
 * already offered); skip may be NULL. NULL if none. Borrowed like
 * tm_queue_ordered's ids. skip must not mutate the queue. */
const char *tm_queue_head(tm_queue *q, const char *dept_id, int64_t now_ms,
                          bool (*skip)(const char *visit_id, void *user), void *user);

/* Longest current wait in ms in a department (now - oldest check-in, never
 * negative), 0 when empty or unknown. Counts every queued entry, including
 * appointments whose slot has not come. */
int64_t tm_queue_longest_wait_ms(const tm_queue *q, const char *dept_id, int64_t now_ms);

/* Calls fn for every department id that has at least one entry (borrowed id).
 * fn must not mutate the queue. */
void tm_queue_foreach_dept(const tm_queue *q, void (*fn)(const char *dept_id, void *user),
                           void *user);

/* Estimated wait in ms for the patient at 1-based `position` with
 * `doctors_on_duty` doctors each taking avg_visit_ms per visit.
 *
 *   estimate = (floor((position - 1) / d) + 0.5) * avg_visit_ms
 *
 * Why: the position - 1 patients ahead are shared among the d doctors, so
 * floor((position - 1) / d) whole rounds of visits must finish before a doctor
 * is free for us; the doctor who will take us is on average half-way through
 * a visit already, hence + 0.5 rather than + 1 (a doctor sitting idle would
 * already have been offered the head, so "idle now" is not the usual case).
 * Returns -1 (unknown) when no doctor is on duty, when position < 1 or when
 * avg_visit_ms <= 0 (no history yet). Saturates at INT64_MAX. */
int64_t tm_queue_estimate_wait_ms(int position, int doctors_on_duty, int64_t avg_visit_ms);

#endif

/*
 * store_queue.h - store work run off the control loop, in order.
 *
 * A job is work run against a store handle plus a completion run on the
 * control loop with the work's result. On PostgreSQL the work runs on the
 * queue's own thread with its own connection to the same database, so the
 * loop serves other clients while a step waits for its round trips; the
 * loop's handle stays the loop's. On SQLite (one node, a local file) the
 * work runs at once on the loop's handle and its completion before
 * tm_store_queue_post returns: exactly the synchronous call it replaces.
 *
 * Jobs run and complete in the order posted (a visit's steps never
 * reorder). Control loop thread only, apart from the work functions.
 */
#ifndef TELEMED_STORE_QUEUE_H
#define TELEMED_STORE_QUEUE_H

#include "telemed/store.h"

#include <glib.h>
#include <stdbool.h>

typedef struct tm_store_queue tm_store_queue;

/* Runs on the store thread (or inline): uses only s and data, touches no
 * state of the loop. Returns 0 or a TM_E* code, as store.h's calls do. */
typedef int (*tm_store_work_fn)(tm_store *s, void *data);
/* Runs on the control loop with work's result; errmsg is the store's
 * message on failure ("" on success), borrowed for the call. data stays
 * the job's: free_data frees it after done returns. */
typedef void (*tm_store_done_fn)(void *data, int rc, const char *errmsg);

/* A queue whose jobs work on s's database: on PostgreSQL a new connection
 * and thread (completions run on ctx, NULL the default context); on SQLite
 * s itself, inline. s is borrowed and must outlive the queue. NULL with
 * *err set (caller g_free()s) when the connection cannot be made. */
tm_store_queue *tm_store_queue_new(tm_store *s, GMainContext *ctx, char **err);
/* Posts a job; takes data (free_data may be NULL). */
void tm_store_queue_post(tm_store_queue *q, tm_store_work_fn work, tm_store_done_fn done,
                         void *data, GDestroyNotify free_data);
/* Whether completions run later than their post (the work is off the loop). */
bool tm_store_queue_deferred(const tm_store_queue *q);
/* Jobs posted and not yet completed. */
unsigned tm_store_queue_pending(const tm_store_queue *q);
/* Runs the work already posted to its end (a step is committed or not,
 * never cut), drops the completions not yet run (their data is freed),
 * closes the connection. NULL is fine. */
void tm_store_queue_free(tm_store_queue *q);

#endif

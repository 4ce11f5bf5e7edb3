/*
 * review.h - the review rendition of a visit's recording: after the visit,
 * its recording parts are rendered into one WebM (every video in a grid,
 * every voice mixed) that any player plays, so a reviewer hears everyone.
 * The multi-track recording stays the evidence; the rendition is derived
 * from it, hashed and listed in the record (store.h, "review renditions"),
 * but not sealed: it can always be made again from the sealed evidence.
 *
 * The queue is the store's renditions table; at most review_render_max
 * renders run at once, each in its own child process (`telemed-server
 * render-review`, server/review_render.c) at nice 19 and SCHED_IDLE, so
 * neither the control loop nor a media worker ever does the work.
 *
 * Threading: control loop only; the children are watched from its context.
 */
#ifndef TELEMED_REVIEW_H
#define TELEMED_REVIEW_H

#include "telemed/config.h"
#include "telemed/store.h"

#include <glib.h>
#include <stdint.h>

typedef struct tm_review tm_review;

/* Borrows cfg and store for its lifetime; exe is the server binary to run
 * as the render child (copied). Queues what a stopped server left undone
 * (rows left rendering, finished visits without a rendition) and starts
 * renders on ctx. Returns NULL when review_render_max is 0 (off). */
tm_review *tm_review_new(const tm_config *cfg, tm_store *store, const char *exe, GMainContext *ctx);
/* Stops the running children (their rows are queued again at the next
 * start) and frees. Accepts NULL. */
void tm_review_free(tm_review *rv);
/* Recordings are read, and renditions written, with this AES-256 key
 * (copied); without it encrypted recordings cannot be rendered and
 * renditions are stored plain. */
void tm_review_set_key(tm_review *rv, const uint8_t key[32], bool encrypt_output);
/* A recording of visit_id finished: queue its rendition if the visit is
 * over and none of its recordings is still being written. Accepts NULL rv. */
void tm_review_recording_done(tm_review *rv, const char *visit_id);

typedef struct tm_review_stats {
    int running;      /* children now */
    int running_peak; /* most children at once since start */
    uint64_t done, failed;
} tm_review_stats;

void tm_review_stats_get(const tm_review *rv, tm_review_stats *out);

#endif

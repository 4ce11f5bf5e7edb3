/*
 * visit_record.h - the recording's part of the visit record: starts a
 * visit's recording when the visit becomes active, and puts its outcome
 * (file, size, duration, hashes, or why it failed) into the store and the
 * regulator feed.
 *
 * Threading: control loop only; the media core's recording results arrive
 * there.
 */
#ifndef TELEMED_VISIT_RECORD_H
#define TELEMED_VISIT_RECORD_H

#include "telemed/config.h"
#include "telemed/store.h"

#include <stdint.h>

typedef struct tm_visit_record tm_visit_record;
struct tm_media;
struct tm_feed;
struct tm_review;

/* A visit's recording failed (at start, during the visit or at its end);
 * visit_id and reason are borrowed for the call. */
typedef void (*tm_visit_record_failed_cb)(const char *visit_id, const char *reason, void *user);

/* Borrows cfg and store for its lifetime. Free it after the media core, whose
 * recording results it receives. */
tm_visit_record *tm_visit_record_new(const tm_config *cfg, tm_store *store);
void tm_visit_record_free(tm_visit_record *vr);

/* Borrowed; without media nothing is recorded. */
void tm_visit_record_set_media(tm_visit_record *vr, struct tm_media *media);
void tm_visit_record_set_feed(tm_visit_record *vr, struct tm_feed *feed);
/* Borrowed: told of each finished recording, to queue the review rendition. */
void tm_visit_record_set_review(tm_visit_record *vr, struct tm_review *review);
/* Recordings are encrypted at rest with this AES-256 key (copied). */
void tm_visit_record_set_key(tm_visit_record *vr, const uint8_t key[32]);
/* Who hears of failures (NULL to stop). */
void tm_visit_record_on_failure(tm_visit_record *vr, tm_visit_record_failed_cb cb, void *user);

/* The visit became active: record it from its first packet. A recording
 * that cannot start is on record as failed and reported; the visit goes on. */
void tm_visit_record_start(tm_visit_record *vr, const char *visit_id);
/* The live visit resumed on this node after the node that held it died: the
 * dead node's segment is closed when this node can read its file
 * (tm_recording_close_others) and the recording goes on here as the next
 * segment (docs/cluster.md). Nothing when the visit records here already. */
void tm_visit_record_resume(tm_visit_record *vr, const char *visit_id);
/* The media core reports that the visit's recording broke during the visit. */
void tm_visit_record_failed(tm_visit_record *vr, const char *visit_id, const char *reason);

#endif

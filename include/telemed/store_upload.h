/*
 * store_upload.h - the store side of batch upload profiles (a provincial
 * platform that takes a day's finished visits in one nightly upload).
 *
 * A day is "staged" once: every visit that ended in it and every rating
 * given in it becomes one record per profile, keyed (profile, kind,
 * buss_id) so that staging again, after a crash or for a day already done,
 * adds nothing. Each record keeps a snapshot of the facts (JSON text, keys
 * listed in docs/regulator-feed.md) and its delivery state: pending ->
 * delivered, or -> dead (kept with the reason) -> pending again by replay.
 * Every state lives in the database, so restarts and kill -9 lose nothing.
 *
 * Threading: the control loop only, like the rest of the store.
 */
#ifndef TELEMED_STORE_UPLOAD_H
#define TELEMED_STORE_UPLOAD_H

#include "telemed/store.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tm_upload_record {
    int64_t id;
    char kind[16];    /* "visit" or "rating" */
    char buss_id[64]; /* the visit id: the platform's business id */
    char day[16];     /* YYYY-MM-DD, the profile's business day */
    int attempts;
    char *source; /* facts as JSON text; owned by the array */
} tm_upload_record;

/* Stages day (YYYY-MM-DD) = [from_ms, to_ms): visits that ended (state
 * ended or cancelled; with unanswered false only those a doctor accepted)
 * and ratings created in the window, and records the day with its record
 * count, in one transaction. *staged (may be NULL) gets the number of new
 * records. Staging a day again adds only what is new. */
int tm_upload_stage_day(tm_store *s, const char *profile, const char *day, int64_t from_ms,
                        int64_t to_ms, bool unanswered, int64_t now_ms, int *staged);
/* The latest staged day into day (16 bytes). TM_ENOTFOUND if none. */
int tm_upload_last_day(tm_store *s, const char *profile, char day[16]);

/* Up to limit pending records of kind due at now_ms, oldest first. Ratings
 * are only handed out once their visit's record is delivered (a platform
 * refuses a rating whose visit it has not accepted). *out is new (free with
 * tm_upload_records_free), *n its length. */
int tm_upload_next_batch(tm_store *s, const char *profile, const char *kind, int64_t now_ms,
                         int limit, tm_upload_record **out, size_t *n);
void tm_upload_records_free(tm_upload_record *r, size_t n);
/* Earliest next_attempt_at of a pending record. TM_ENOTFOUND if none. */
int tm_upload_next_due(tm_store *s, const char *profile, int64_t *due_ms);

/* Outcomes, each in one transaction; rows no longer pending are left alone. */
int tm_upload_mark_delivered(tm_store *s, const int64_t *ids, size_t n, int status, int64_t now_ms);
int tm_upload_retry(tm_store *s, const int64_t *ids, const int64_t *next_at, size_t n, int status,
                    const char *error);
int tm_upload_dead_letter(tm_store *s, int64_t id, int status, const char *error,
                          const char *response);
/* Dead -> pending, due now, with the facts snapshot taken again (the cause
 * was fixed in the hospital's data). TM_ENOTFOUND, TM_ECONFLICT (not dead). */
int tm_upload_replay(tm_store *s, const char *profile, int64_t id, int64_t now_ms);
/* Dead records newest first (<= limit, <= 0: 100): id, kind, buss_id, day,
 * attempts, last_status, last_error, last_response. New reference or NULL. */
json_t *tm_upload_dead_list(tm_store *s, const char *profile, int limit);

/* The oldest staged day not yet checked in. TM_ENOTFOUND if none. */
int tm_upload_checkin_next(tm_store *s, const char *profile, char day[16]);
int tm_upload_checkin_done(tm_store *s, const char *profile, const char *day, int64_t now_ms);

typedef struct tm_upload_counts {
    int64_t pending, delivered, dead, days, checkins;
    int64_t held; /* pending ratings whose visit the platform has not accepted (yet) */
} tm_upload_counts;
int tm_upload_counts_get(tm_store *s, const char *profile, tm_upload_counts *out);

/* Identifiers owned by the hospital's identity system that a platform asks
 * for: kind "doctor" (code: the doctor's certificate number), "patient"
 * (cert_type and code: the patient's certificate), "dept" (code: the
 * platform's department code). cert_type may be NULL. Upserts. */
int tm_store_regulator_id_put(tm_store *s, const char *kind, const char *local_id,
                              const char *cert_type, const char *code);

#endif

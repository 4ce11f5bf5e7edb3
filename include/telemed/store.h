/*
 * store.h - the persistent state of a hospital: schedules, visits, their
 * records, the audit log and the regulator outbox.
 *
 * The interface is backend-neutral: no SQLite type appears here, results
 * come back as plain values or jansson objects, so a PostgreSQL backend can
 * implement the same functions when media nodes scale out (DESIGN.md). The
 * SQLite backend (server/store_sqlite.c) is the only one today.
 *
 * Threading: one writer. Only the control loop calls these functions.
 *
 * Every function that changes a visit's state writes the visit row and its
 * regulator-feed outbox event in one transaction: either both exist or
 * neither does.
 */
#ifndef TELEMED_STORE_H
#define TELEMED_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct tm_store tm_store;

/* Opens (creating if needed) the database at path and migrates it forward.
 * hospital_id is stamped on feed events. Returns NULL with *err (new string,
 * caller frees with free()) on failure. */
tm_store *tm_store_open(const char *path, const char *hospital_id, char **err);
void tm_store_free(tm_store *s);
/* The schema version after migrations. */
int tm_store_schema_version(tm_store *s);
/* A message for the last failure of this store (borrowed). */
const char *tm_store_errmsg(tm_store *s);

/* ---- departments, doctors, shifts ---------------------------------- */

typedef struct tm_doctor_info {
    char id[64];
    char dept_id[64];
    char licence_no[64];
    bool active;
} tm_doctor_info;

int tm_store_dept_put(tm_store *s, const char *id, const char *name);
bool tm_store_dept_exists(tm_store *s, const char *id);
json_t *tm_store_dept_list(tm_store *s);                     /* new ref */
int tm_store_dept_delete(tm_store *s, const char *id);       /* TM_ECONFLICT if referenced */

int tm_store_doctor_put(tm_store *s, const char *id, const char *name, const char *dept_id,
                        const char *licence_no, const char *title);
int tm_store_doctor_get(tm_store *s, const char *id, tm_doctor_info *out);
json_t *tm_store_doctor_list(tm_store *s, const char *dept_id); /* new ref; dept NULL = all */

/* Creates a shift; *id_out (>= 40 bytes) receives its id. */
int tm_store_shift_add(tm_store *s, const char *doctor_id, const char *dept_id, int64_t start_ms,
                       int64_t end_ms, int capacity, char *id_out);
int tm_store_shift_delete(tm_store *s, const char *id);
json_t *tm_store_shift_list(tm_store *s, const char *doctor_id, const char *dept_id,
                            int64_t from_ms, int64_t to_ms);  /* new ref */
/* The doctor's shift that contains now_ms in dept (dept NULL = any): fills
 * dept_out (64 bytes, may be NULL), *capacity and *end_ms. TM_ENOTFOUND if none. */
int tm_store_shift_current(tm_store *s, const char *doctor_id, const char *dept_id,
                           int64_t now_ms, char *dept_out, int *capacity, int64_t *end_ms);

/* ---- appointments -------------------------------------------------- */

typedef struct tm_appointment {
    char id[64];
    char patient_id[128];
    char dept_id[64];
    char doctor_id[64];   /* "" if any doctor of the department */
    int64_t slot_ms;
    char kind[16];        /* follow_up | first */
    char status[16];      /* booked | arrived | fulfilled | cancelled | noshow */
} tm_appointment;

/* id may be NULL or "" to have one made; id_out (>= 64 bytes) gets it. */
int tm_store_appt_create(tm_store *s, const tm_appointment *a, char *id_out);
int tm_store_appt_get(tm_store *s, const char *id, tm_appointment *out);
/* Changes slot, doctor or status of a booked appointment. */
int tm_store_appt_update(tm_store *s, const tm_appointment *a);
json_t *tm_store_appt_list(tm_store *s, const char *patient_id, const char *dept_id,
                           const char *status, int64_t from_ms, int64_t to_ms, int limit);

/* ---- visits -------------------------------------------------------- */

typedef struct tm_visit {
    char id[64];
    char patient_id[128];
    char dept_id[64];
    char appointment_id[64]; /* "" for walk-ins */
    char doctor_id[64];      /* "" until offered */
    char kind[16];
    bool urgent;
    char state[16];
    int64_t checkin_ms, offered_ms, accepted_ms, ended_ms; /* 0 when not yet */
    int64_t slot_ms;         /* appointment slot, 0 for walk-ins */
    char end_reason[32];
    int recording_consent;   /* check-in: 1 agreed, -1 refused, 0 not asked */
} tm_visit;

/* Check-in: creates the visit in state waiting, marks the appointment
 * arrived, writes the participant row and the visit.checked_in event.
 * v->id is filled with the new id. */
int tm_store_visit_checkin(tm_store *s, tm_visit *v, const char *user_agent);
int tm_store_visit_get(tm_store *s, const char *id, tm_visit *out);
/* waiting -> offered to doctor_id. */
int tm_store_visit_offer(tm_store *s, const char *visit_id, const char *doctor_id, int64_t now_ms);
/* offered -> waiting; outcome "declined", "timeout" or "withdrawn". */
int tm_store_visit_unoffer(tm_store *s, const char *visit_id, const char *outcome, int64_t now_ms);
/* offered -> active: stores response time and queue wait, the doctor's
 * participant row and the visit.started event. */
int tm_store_visit_accept(tm_store *s, const char *visit_id, const char *doctor_id,
                          const char *user_agent, int64_t now_ms);
/* active -> ended, or waiting/offered -> cancelled; visit.ended event. */
int tm_store_visit_end(tm_store *s, const char *visit_id, const char *reason, const char *by,
                       int64_t now_ms);
/* Visits in the given state (waiting, offered, active) for rebuilding memory at start. */
int tm_store_visit_foreach_state(tm_store *s, const char *state,
                                 void (*fn)(const tm_visit *v, void *user), void *user);
/* Full record: visit, participants, offers, notes, chat, rating, recording, stats. */
json_t *tm_store_visit_record(tm_store *s, const char *id);
/* Filtered list; any filter may be NULL/0. */
json_t *tm_store_visit_list(tm_store *s, const char *state, const char *dept_id,
                            const char *doctor_id, const char *patient_id, int64_t from_ms,
                            int64_t to_ms, int limit, int offset);
/* Counts by state, for /metrics and the overview. */
int tm_store_visit_counts(tm_store *s, int64_t since_ms, json_t **out);

int tm_store_participant_join(tm_store *s, const char *visit_id, const char *user_id,
                              const char *role, const char *user_agent, int64_t now_ms);
int tm_store_participant_leave(tm_store *s, const char *visit_id, const char *user_id,
                               const char *reason, int64_t now_ms);

/* Stores a chat message; *id_out gets its row id. */
int tm_store_chat_add(tm_store *s, const char *visit_id, const char *sender_id,
                      const char *sender_role, const char *body, int64_t now_ms, int64_t *id_out);
/* Saves (or replaces) the doctor's note; signed notes emit visit.note_signed. */
int tm_store_note_save(tm_store *s, const char *visit_id, const char *doctor_id,
                       const char *body, const char *diagnosis_code, bool sign, int64_t now_ms);
/* One rating per visit; visit.rated event. TM_ECONFLICT if already rated. */
int tm_store_rating_add(tm_store *s, const char *visit_id, const char *patient_id, int score,
                        const char *comment, int64_t now_ms);
/* Per-stream statistics summary for the visit record (JSON text). */
int tm_store_stats_add(tm_store *s, const char *visit_id, const char *user_id,
                       const char *direction, const char *kind, const char *summary_json,
                       int64_t now_ms);

/* Doctor's figures since since_ms: visits, average response ms, average rating. */
int tm_store_doctor_figures(tm_store *s, const char *doctor_id, int64_t since_ms, json_t **out);

/* ---- audit log ----------------------------------------------------- */

int tm_store_audit(tm_store *s, const char *actor_id, const char *actor_role, const char *action,
                   const char *target, const char *outcome, const char *detail);
json_t *tm_store_audit_list(tm_store *s, const char *target, const char *actor_id,
                            int64_t from_ms, int limit);

/* ---- outbox (write side; delivery is in store_outbox.h) ------------ */

/* Outbox rows by state, for /metrics. */
int tm_store_outbox_count(tm_store *s, const char *state, int64_t *count);

#endif

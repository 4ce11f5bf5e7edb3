/*
 * store.h - the persistent state of a hospital: schedules, visits and their
 * records, recordings, the audit log and the regulator outbox. This header
 * is the whole contract of a store backend. One set of store files
 * (server/store_*.c, recording_store.c, rendition_store.c) runs on either
 * engine: SQLite (a file, one node) or PostgreSQL (a server, several nodes),
 * through the statement layer of server/store_internal.h. The
 * test suite (tests/server/store_suite.h) is written against this header
 * only and runs against any backend's opener.
 *
 * Backend-neutral: no engine type or code crosses this interface. Results
 * are plain values, caller-allocated structs or jansson objects.
 *
 * Threading: one writer. Every function runs on the control loop thread;
 * a store handle is never shared with another thread. Functions block for
 * the statement they run (local disk for SQLite, a round trip to the
 * server for PostgreSQL).
 *
 * Errors: a function returning int gives 0 (or a count where it says so) or
 * a negative TM_E* code (telemed/common.h):
 *   TM_EINVAL     the arguments break this contract (bad kind, score, hash);
 *   TM_ENOTFOUND  the object named does not exist;
 *   TM_ECONFLICT  the state does not allow it (visit not offered, already
 *                 rated, note signed, still referenced);
 *   TM_EPERM      the visit is offered to another doctor;
 *   TM_EUNSUPPORTED  the database is newer than this server;
 *   TM_ENOMEM, TM_EIO  the backend failed (disk full, I/O error, database
 *                 locked by another process). Nothing of the call is
 *                 written, and the store keeps serving later calls.
 * Functions returning json_t * give NULL for not found or failure;
 * bool functions give false on failure. After any failure,
 * tm_store_errmsg() says why in words for a log line (no personal data
 * beyond ids).
 *
 * `char **err` out-parameters (only tm_store_open has one): set only when
 * the call fails, to a new string the caller frees with g_free(); err may be
 * NULL. Returned json_t * are new references the caller json_decref()s.
 * Strings passed in are borrowed for the call. Fixed-size id buffers are
 * NUL-terminated; a value longer than its field is cut.
 *
 * Atomicity: every visit step (check-in, offer, unoffer, accept, end, a
 * signed note, a rating, a finished or recovered recording) writes its rows
 * and, where it reports to the regulator, its outbox row in one
 * transaction: either all of it exists afterwards or none of it does.
 */
#ifndef TELEMED_STORE_H
#define TELEMED_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tm_store tm_store;

/* ---- the handle ---------------------------------------------------- */

/* Opens (creating if needed) the database at path and migrates it
 * forward. A path starting postgresql:// or postgres:// is a PostgreSQL
 * connection URL (libpq's; the database must exist, its tables are made);
 * anything else is an SQLite file. The database file and its side files
 * are created 0600, and an existing one's mode is narrowed to 0600: they
 * hold patient data. On PostgreSQL a lost connection fails the call in
 * flight (TM_EIO) and is reopened by the next one. hospital_id is copied. Returns NULL with *err
 * set on failure (TM_EUNSUPPORTED's case: "database schema version N is newer ..."). */
tm_store *tm_store_open(const char *path, const char *hospital_id, char **err);
/* Closes the handle; NULL is fine. */
void tm_store_free(tm_store *s);
/* The schema version after migrations (> 0), or TM_EIO. */
int tm_store_schema_version(tm_store *s);
/* The message of the last failure on this handle; borrowed, valid until
 * the next call on the handle. "" if nothing failed yet. */
const char *tm_store_errmsg(tm_store *s);
/* The hospital_id given at open; borrowed for the handle's life. */
const char *tm_store_hospital_id(tm_store *s);

/* ---- departments, doctors, shifts ---------------------------------- */

typedef struct tm_doctor_info {
    char id[64];
    char dept_id[64];
    char licence_no[64];
    bool active;
    char name[128];
    char title[64];
    char kind[16]; /* doctor | nurse | interpreter (staff kind) */
} tm_doctor_info;

/* Creates or renames a department. 0 or TM_EIO. */
int tm_store_dept_put(tm_store *s, const char *id, const char *name);
bool tm_store_dept_exists(tm_store *s, const char *id);
/* 1 when department id exists, 0 when it does not, TM_EIO when the store
 * could not tell (a caller facing a person says "try again", not "no such
 * department"). */
int tm_store_dept_lookup(tm_store *s, const char *id);
/* [{id, name, institution_id, created_at}] by id (institution_id: the
 * department's, or the hospital_id). */
json_t *tm_store_dept_list(tm_store *s);
/* TM_ENOTFOUND, or TM_ECONFLICT while doctors, shifts or visits refer to it. */
int tm_store_dept_delete(tm_store *s, const char *id);

/* Creates or updates a doctor; licence_no and title may be NULL.
 * TM_EINVAL if dept_id does not exist. */
int tm_store_doctor_put(tm_store *s, const char *id, const char *name, const char *dept_id,
                        const char *licence_no, const char *title);
/* Sets the staff kind of a registered doctor row: "doctor" (the default),
 * "nurse" or "interpreter". TM_EINVAL (other kind), TM_ENOTFOUND. */
int tm_store_doctor_set_kind(tm_store *s, const char *id, const char *kind);
/* Fills *out. TM_ENOTFOUND. */
int tm_store_doctor_get(tm_store *s, const char *id, tm_doctor_info *out);
/* [{id, name, dept_id, institution_id, licence_no, title, kind, active,
 * created_at}] by id; dept_id NULL = all departments. */
json_t *tm_store_doctor_list(tm_store *s, const char *dept_id);

/* Creates a shift; id_out (>= 64 bytes, may be NULL) receives its id.
 * TM_EINVAL when end_ms <= start_ms, capacity < 1, or the doctor or
 * department does not exist. */
int tm_store_shift_add(tm_store *s, const char *doctor_id, const char *dept_id, int64_t start_ms,
                       int64_t end_ms, int capacity, char *id_out);
/* TM_ENOTFOUND if no such shift. */
int tm_store_shift_delete(tm_store *s, const char *id);
/* [{id, doctor_id, dept_id, start_at, end_at, capacity}] overlapping
 * [from_ms, to_ms) by start; NULL ids and 0 times do not filter. */
json_t *tm_store_shift_list(tm_store *s, const char *doctor_id, const char *dept_id,
                            int64_t from_ms, int64_t to_ms);
/* The doctor's shift that contains now_ms in dept (dept NULL = any), the
 * one ending last: fills dept_out (64 bytes), *capacity and *end_ms (each
 * may be NULL). TM_ENOTFOUND if none. */
int tm_store_shift_current(tm_store *s, const char *doctor_id, const char *dept_id, int64_t now_ms,
                           char *dept_out, int *capacity, int64_t *end_ms);

/* ---- institutions (issue 18) --------------------------------------- */
/*
 * The deployment serves one alliance (医联体): a core hospital and the county
 * hospitals and community clinics around it. Departments belong to an
 * institution (a doctor to their department's); a department with none
 * belongs to the core institution, whose id is the store's hospital_id.
 */

typedef struct tm_institution {
    char id[64];
    char name[256];
    char org_code[64]; /* unified organisation code, "" unknown */
    char level[32];    /* e.g. "3A", "2B", "community"; "" unknown */
    char kind[16];     /* core | hospital | clinic */
} tm_institution;

/* Creates or updates an institution. TM_EINVAL: empty id or name, a kind
 * other than core/hospital/clinic, or core for an id that is not the
 * hospital_id (and the reverse). */
int tm_store_institution_put(tm_store *s, const tm_institution *in);
/* Fills *out. TM_ENOTFOUND. */
int tm_store_institution_get(tm_store *s, const char *id, tm_institution *out);
/* [{id, name, org_code, level, kind, departments (count), created_at}], the
 * core first, then by id. */
json_t *tm_store_institution_list(tm_store *s);
/* Moves a department to institution_id (NULL or the hospital_id: the core).
 * TM_ENOTFOUND (no such department), TM_EINVAL (no such institution). */
int tm_store_dept_set_institution(tm_store *s, const char *dept_id, const char *institution_id);
/* The institution of dept_id into out (64 bytes): its own, or the
 * hospital_id. TM_ENOTFOUND. */
int tm_store_dept_institution(tm_store *s, const char *dept_id, char out[64]);
/* The ids of the departments of institution_id, as a new array of strings. */
json_t *tm_store_institution_depts(tm_store *s, const char *institution_id);
/* tm_store_visit_list restricted to the visits of institution_id's
 * departments. */
json_t *tm_store_visit_list_in(tm_store *s, const char *institution_id, const char *state,
                               const char *dept_id, const char *doctor_id, const char *patient_id,
                               int64_t from_ms, int64_t to_ms, int limit, int offset);

/* Copies the shifts starting in the week [from_ms, from_ms + 7 days) (of
 * dept_id and of institution_id's departments when not NULL) to the week
 * after, in one transaction. A shift already there (same doctor,
 * department, start and end) is skipped, so copying twice adds nothing.
 * TM_ECONFLICT when a copy would overlap another shift of its doctor: then
 * nothing is written and tm_store_errmsg names the doctor, the time and
 * the shift in the way. *copied and *skipped may be NULL. */
int tm_store_shift_copy_week(tm_store *s, int64_t from_ms, const char *dept_id,
                             const char *institution_id, int *copied, int *skipped);
/* The department of a shift into dept_out (64 bytes). TM_ENOTFOUND. */
int tm_store_shift_dept(tm_store *s, const char *shift_id, char dept_out[64]);

/* ---- appointments -------------------------------------------------- */

typedef struct tm_appointment {
    char id[64];
    char patient_id[128];
    char dept_id[64];
    char doctor_id[64]; /* "" if any doctor of the department */
    int64_t slot_ms;
    char kind[16];   /* follow_up | first */
    char status[16]; /* booked | arrived | fulfilled | cancelled | noshow */
} tm_appointment;

/* Books a->... in status booked; a->id "" has one made. id_out (>= 64
 * bytes, may be NULL) gets the id. TM_EINVAL for a missing patient or
 * department, slot <= 0 or a bad kind; TM_ECONFLICT if the id exists or the
 * department or doctor does not. */
int tm_store_appt_create(tm_store *s, const tm_appointment *a, char *id_out);
/* Fills *out. TM_ENOTFOUND. */
int tm_store_appt_get(tm_store *s, const char *id, tm_appointment *out);
/* Replaces slot, doctor, department, kind and status of appointment a->id.
 * TM_EINVAL (bad status, kind, slot or unknown department/doctor),
 * TM_ENOTFOUND. */
int tm_store_appt_update(tm_store *s, const tm_appointment *a);
/* [{id, patient_id, dept_id, doctor_id, slot_at, kind, status, created_at,
 * updated_at}] by slot, at most limit (<= 0: 500); NULL/0 do not filter.
 * institution_id keeps the bookings of that institution's departments. */
json_t *tm_store_appt_list(tm_store *s, const char *institution_id, const char *patient_id,
                           const char *dept_id, const char *status, int64_t from_ms, int64_t to_ms,
                           int limit);

/* ---- visits -------------------------------------------------------- */

typedef struct tm_visit {
    char id[64];
    char patient_id[128];
    char dept_id[64];
    char appointment_id[64]; /* "" for walk-ins */
    char doctor_id[64];      /* "" until offered */
    char kind[16];           /* follow_up | first */
    bool urgent;
    char state[16]; /* waiting | offered | active | ended | cancelled */
    int64_t checkin_ms, offered_ms, accepted_ms, ended_ms; /* 0 when not yet */
    int64_t slot_ms;                                       /* appointment slot, 0 for walk-ins */
    char end_reason[32];
    int recording_consent; /* check-in: 1 agreed, -1 refused, 0 not asked */
    /* check-in: the consent text version the patient accepted ("" none) and
     * the connection it came from */
    char consent_version[32];
    char consent_session[64];
} tm_visit;

/* An informed consent as given: kind patient (at check-in), guest or
 * interpreter (their notice, when they join a visit). */
typedef struct tm_consent {
    char kind[16];
    char user_id[128];
    char role[16];
    char version[32];
    bool recording;
    char session_id[64];
    int64_t accepted_ms;
} tm_consent;

/* How a doctor proved who they are before accepting a visit (细则 Art. 13):
 * method "token" (the identity system's auth_time) or "endpoint" (the
 * hospital's verification endpoint asked at accept time), amr the methods
 * used ("face", ...; "" unknown), verified_ms when the proof was made. */
typedef struct tm_doctor_check {
    char method[16];
    char amr[64];
    int64_t verified_ms;
} tm_doctor_check;

/* The longest advice a doctor gives with terminate_and_refer, in bytes. */
#define TM_REFERRAL_ADVICE_MAX 2000

/* Check-in: creates the visit in state waiting from v's patient_id,
 * dept_id, appointment_id, kind, urgent, checkin_ms and recording_consent;
 * marks the appointment arrived, writes the patient's participant row, the
 * patient's consents row when consent_version is set (recording as
 * recording_consent > 0, from consent_session, at checkin_ms) and the
 * visit.checked_in event. Fills v->id and v->state. TM_EINVAL (missing
 * patient or department, bad kind), TM_ECONFLICT (unknown department or
 * appointment), TM_EIO. */
int tm_store_visit_checkin(tm_store *s, tm_visit *v, const char *user_agent);
/* Fills *out. TM_ENOTFOUND. */
int tm_store_visit_get(tm_store *s, const char *id, tm_visit *out);
/* waiting -> offered to doctor_id (the offer is recorded). TM_ENOTFOUND,
 * TM_ECONFLICT if not waiting. */
int tm_store_visit_offer(tm_store *s, const char *visit_id, const char *doctor_id, int64_t now_ms);
/* offered -> waiting; outcome "declined", "timeout" or "withdrawn" closes
 * the offer. TM_ENOTFOUND, TM_ECONFLICT if not offered. */
int tm_store_visit_unoffer(tm_store *s, const char *visit_id, const char *outcome, int64_t now_ms);
/* The offer of visit_id made to doctor_id at offered_ms (the row's
 * offered_at), if it still stands, goes back to waiting and is closed as
 * "withdrawn": how a visit's holder ends an offer another node made and no
 * longer ends itself. TM_ECONFLICT when that offer is over (accepted,
 * declined, timed out) or another one stands. */
int tm_store_visit_withdraw_offer(tm_store *s, const char *visit_id, const char *doctor_id,
                                  int64_t offered_ms, int64_t now_ms);
/* offered -> active: response time and queue wait, the offer accepted, the
 * doctor's participant row and the visit.started event. TM_ENOTFOUND,
 * TM_ECONFLICT if not offered, TM_EPERM if offered to another doctor. */
int tm_store_visit_accept(tm_store *s, const char *visit_id, const char *doctor_id,
                          const char *user_agent, int64_t now_ms);
/* The same, with how the doctor proved who they are (check may be NULL: not
 * checked) kept on the visit and so in visit.started. */
int tm_store_visit_accept_checked(tm_store *s, const char *visit_id, const char *doctor_id,
                                  const char *user_agent, const tm_doctor_check *check,
                                  int64_t now_ms);
/* The same, placing the visit's media on media_node (NULL: where it is) in
 * the accept's transaction: when the visit is active its node is known, so
 * no other node can start it in between (docs/cluster.md). */
int tm_store_visit_accept_on(tm_store *s, const char *visit_id, const char *doctor_id,
                             const char *user_agent, const tm_doctor_check *check,
                             const char *media_node, int64_t now_ms);
/* active -> ended, or waiting/offered -> cancelled, with reason and by
 * (who ended it); open offers are withdrawn, participants leave, the
 * appointment becomes fulfilled (ended), noshow (reason "no_show") or
 * booked again; open invitations end (visit_ended, each with its event) and
 * open guest links are revoked; visit.ended event. TM_ENOTFOUND, TM_ECONFLICT if already
 * over. */
int tm_store_visit_end(tm_store *s, const char *visit_id, const char *reason, const char *by,
                       int64_t now_ms);
/* Ends an active visit with terminate_and_refer and the advice the doctor
 * gave the patient (where to go and why: 1..TM_REFERRAL_ADVICE_MAX bytes,
 * else TM_EINVAL), kept on the visit and in visit.ended. Otherwise as
 * tm_store_visit_end. */
int tm_store_visit_refer(tm_store *s, const char *visit_id, const char *by, const char *advice,
                         int64_t now_ms);
/* Adds a consent given for visit_id (kind guest or interpreter: their notice
 * on joining; patient: one given after check-in). TM_EINVAL (bad kind, empty
 * user or version), TM_ECONFLICT (unknown visit). */
int tm_store_consent_add(tm_store *s, const char *visit_id, const tm_consent *c);
/* Whether user_id gave a consent of kind for visit_id: 1 (with the newest
 * version into version), 0 none, TM_EIO. */
int tm_store_consent_given(tm_store *s, const char *visit_id, const char *user_id, const char *kind,
                           char version[32]);
/* Calls fn for each visit in state (waiting, offered, active), oldest
 * check-in first, for rebuilding memory at start. The rows are read before
 * the first call, so fn may call the store. 0 or TM_EIO (then fn was not
 * called). */
int tm_store_visit_foreach_state(tm_store *s, const char *state,
                                 void (*fn)(const tm_visit *v, void *user), void *user);
/* The full record: the visit's columns (dept_name, ended_by, queue_wait_ms,
 * response_ms, duration_ms, offers, recording_consent, referral_advice ...),
 * participants, offers, notes, chat, rating (object or null), recordings,
 * renditions (the review copies, as tm_rendition_get without visit_id),
 * stream_stats (summary parsed), consents, doctor_verification (object or
 * null), interruptions (user_id, role, started_at, ended_at, duration_ms;
 * the last two null when media never came back), invites, guest_links,
 * timeline (tm_store_visit_timeline), transfers and parts
 * (tm_store_visit_transfers, tm_store_visit_parts). NULL if not found. */
json_t *tm_store_visit_record(tm_store *s, const char *id);
/* Newest check-in first: [{id, patient_id, dept_id, doctor_id, kind,
 * urgent, state, checkin_at, accepted_at, ended_at, end_reason,
 * queue_wait_ms, response_ms, duration_ms, rating}]; NULL/0 filters do not
 * filter; limit 1..1000 (else 100), offset >= 0. */
json_t *tm_store_visit_list(tm_store *s, const char *state, const char *dept_id,
                            const char *doctor_id, const char *patient_id, int64_t from_ms,
                            int64_t to_ms, int limit, int offset);
/* *out = {state: count} of visits checked in since since_ms (states with
 * no visit are absent), for /metrics and the overview. */
int tm_store_visit_counts(tm_store *s, int64_t since_ms, json_t **out);

/* A participant row (role patient, doctor or supervisor) joining now: the
 * patient and the attending doctor (visit roles patient and attending) or
 * a watching supervisor (no visit role); tm_store_party_join for the
 * others. TM_EINVAL for an unknown visit or role. */
int tm_store_participant_join(tm_store *s, const char *visit_id, const char *user_id,
                              const char *role, const char *user_agent, int64_t now_ms);
/* Closes user_id's open participant rows of the visit; 0 also when there
 * is none. */
int tm_store_participant_leave(tm_store *s, const char *visit_id, const char *user_id,
                               const char *reason, int64_t now_ms);

/* ---- transfer during a visit (issue 18, transfer18) ----------------- */
/*
 * The attending doctor hands a live visit on: to a department (the patient
 * waits at the head of its queue) or to a named doctor of it (offered the
 * visit first). The visit stays one row and goes active -> waiting; the
 * part that ends is a visit_transfers row, the doctor's participant row
 * closes with leave_reason "transferred", and the next doctor's accept
 * (tm_store_visit_accept*) completes the transfer row and emits
 * visit.started again with the "transfer" it completes. accepted_at,
 * response_ms and queue_wait_ms stay the first doctor's.
 */

/* The longest transfer reason, in bytes. */
#define TM_TRANSFER_REASON_MAX 500

/* Transfers the active visit from its attending doctor from_doctor_id to
 * to_dept_id (and to_doctor_id, may be NULL or "", a doctor of the hospital
 * other than from_doctor_id), with reason (1..TM_TRANSFER_REASON_MAX
 * bytes): visit active -> waiting in to_dept_id with no doctor, the
 * transfer row, the participant row closed, visit.transferred event, one
 * transaction. id_out (>= 64 bytes, may be NULL) gets the transfer id
 * ("tr-..."). TM_EINVAL (reason, missing department, to self),
 * TM_ENOTFOUND (visit, department, doctor), TM_ECONFLICT (not active),
 * TM_EPERM (not the attending doctor). */
int tm_store_visit_transfer(tm_store *s, const char *visit_id, const char *from_doctor_id,
                            const char *to_dept_id, const char *to_doctor_id, const char *reason,
                            int64_t now_ms, char *id_out);
/* [{id, part, from_doctor_id, from_dept_id, part_started_at, to_dept_id,
 * to_doctor_id, reason, transferred_at, accepted_by, accepted_at}] by part.
 * NULL on failure. */
json_t *tm_store_visit_transfers(tm_store *s, const char *visit_id);
/* The visit's parts, one per attending doctor in turn: [{part, doctor_id,
 * dept_id, started_at, ended_at (null while running), ended_by ("transfer"
 * or the visit's end reason), transfer {id, reason, to_dept_id,
 * to_doctor_id} (parts that ended by a transfer)}]; [] for a visit never
 * accepted. NULL when not found or on failure. */
json_t *tm_store_visit_parts(tm_store *s, const char *visit_id);

/* ---- referral (issue 18, transfer18) --------------------------------- */
/*
 * A doctor refers the patient of a visit of theirs up (to a higher-level
 * institution) or down (to community care): a department to receive them,
 * a reason and a summary, optionally an appointment already booked there.
 * The receiving side accepts or declines (with a reason); a declined
 * referral may be re-sent as a new version naming the one it replaces.
 * States: requested -> accepted | declined; declined -> resent (its new
 * version is requested). Events referral.created (also for a new version),
 * referral.accepted, referral.declined, each with the visit as subject and
 * the referral in "referral", written with the rows.
 */

#define TM_REFERRAL_REASON_MAX 500
#define TM_REFERRAL_SUMMARY_MAX 8000

typedef struct tm_referral_req {
    const char *visit_id;
    const char *from_doctor_id; /* an attending doctor of the visit (any part) */
    const char *direction;      /* up | down */
    const char *to_dept_id;
    const char *reason;         /* 1..TM_REFERRAL_REASON_MAX bytes */
    const char *summary;        /* 1..TM_REFERRAL_SUMMARY_MAX bytes */
    const char *appointment_id; /* NULL/"": none; else booked, the patient's, in to_dept_id */
} tm_referral_req;

/* Whether a referral in direction (up | down) from from_dept_id's
 * institution to to_dept_id's fits their levels (hospital_level, a member's
 * level: 3A > 3B > 2A > ... > community): up goes to a higher level, down to
 * a lower one, and always to another institution. 0; TM_EINVAL with
 * tm_store_errmsg naming both and *why (may be NULL) a stable word:
 * same_institution, level_unknown, not_higher, not_lower; TM_ENOTFOUND (a
 * department). */
int tm_store_referral_levels(tm_store *s, const char *direction, const char *from_dept_id,
                             const char *to_dept_id, const char **why);
/* Creates a referral in state requested (version 1). id_out (>= 64 bytes)
 * gets its id ("rf-..."). TM_EINVAL (direction, texts, the same department,
 * the levels (tm_store_referral_levels),
 * an appointment not the patient's, not booked or elsewhere), TM_ENOTFOUND
 * (visit, department, appointment), TM_EPERM (not an attending doctor of
 * the visit), TM_ECONFLICT (the visit has not started). */
int tm_store_referral_create(tm_store *s, const tm_referral_req *r, int64_t now_ms, char *id_out);
/* requested -> accepted (accept) or declined (with decline_reason,
 * 1..TM_REFERRAL_REASON_MAX bytes) by doctor by. TM_ENOTFOUND, TM_ECONFLICT
 * (not requested), TM_EINVAL (no decline reason). */
int tm_store_referral_decide(tm_store *s, const char *id, bool accept, const char *by,
                             const char *decline_reason, int64_t now_ms);
/* A declined referral re-sent by its doctor as version + 1 (replaces = id),
 * with r's non-NULL fields replacing the old ones (visit_id and
 * from_doctor_id are ignored); the old one becomes resent. TM_ENOTFOUND,
 * TM_ECONFLICT (not declined), TM_EPERM (another doctor's), TM_EINVAL. */
int tm_store_referral_resend(tm_store *s, const char *id, const char *by, const tm_referral_req *r,
                             int64_t now_ms, char *id_out);
/* {id, visit_id, patient_id, from_doctor_id, from_dept_id, direction,
 * to_dept_id, reason, summary, appointment_id, version, replaces,
 * replaced_by, state, decided_by, decided_at, decline_reason, created_at,
 * encounter {accepted_at, ended_at, state} of the visit}. NULL not found. */
json_t *tm_store_referral_get(tm_store *s, const char *id);
/* Newest first, NULL filters do not filter: [{as tm_store_referral_get
 * without summary and encounter}]; limit 1..500 (else 100). */
json_t *tm_store_referral_list(tm_store *s, const char *visit_id, const char *to_dept_id,
                               const char *from_doctor_id, const char *state, int limit);

/* ---- visits of more than two ---------------------------------------- */
/*
 * Beside the patient and the attending doctor (the one who accepted), a
 * visit may hold up to six more participants, each with a visit role:
 * consulting (an invited doctor), interpreter, nurse (invited staff) or
 * guest (family, by a one-time link). Their participant rows carry the
 * visit role; a row closed with leave_reason "disconnected" is a drop, not a
 * leave: the participant is still in the visit (restored after a restart).
 * Joins and final leaves of these participants, invitations and their
 * outcomes, and guest links are regulator events (docs/regulator-feed.md),
 * each written with its rows in one transaction.
 */

/* A participant (visit_role consulting, interpreter, nurse or guest) joins:
 * a participant row, and with first (not a reconnect) the
 * visit.participant_joined event. TM_EINVAL (unknown visit or role). */
int tm_store_party_join(tm_store *s, const char *visit_id, const char *user_id,
                        const char *visit_role, const char *user_agent, bool first, int64_t now_ms);
/* The participant leaves the visit for good (reason "left", "removed",
 * "grace_expired"): open rows closed, visit.participant_left event.
 * TM_ENOTFOUND when user_id never joined the visit. */
int tm_store_party_leave(tm_store *s, const char *visit_id, const char *user_id, const char *reason,
                         int64_t now_ms);
/* Who is in the visit now beyond patient and attending, by first join:
 * [{user_id, visit_role, joined_at}] (a dropped one included). NULL on
 * failure. */
json_t *tm_store_party_members(tm_store *s, const char *visit_id);
/* The visit role user_id held last in the visit (16 bytes). TM_ENOTFOUND. */
int tm_store_party_role(tm_store *s, const char *visit_id, const char *user_id, char role[16]);

typedef struct tm_invite {
    char id[64];
    char visit_id[64];
    char inviter_id[64];
    char invitee_id[64];
    char role[16]; /* consulting | interpreter | nurse */
    int64_t created_ms, expires_ms;
} tm_invite;

/* Records an invitation (inv->id is made and filled) and its visit.invite
 * event. TM_EINVAL (bad role, unknown visit). */
int tm_store_invite_create(tm_store *s, tm_invite *inv);
/* Ends an open invitation with outcome accepted, declined, timeout,
 * cancelled or visit_ended, and its visit.invite_ended event.
 * TM_ENOTFOUND, TM_ECONFLICT (already ended), TM_EINVAL (outcome). */
int tm_store_invite_end(tm_store *s, const char *invite_id, const char *outcome, int64_t now_ms);
/* The invitee accepts an open invitation: it ends accepted and the invitee
 * joins with the invite's role, both events, in one transaction.
 * TM_ENOTFOUND, TM_ECONFLICT (already ended). */
int tm_store_invite_accept(tm_store *s, const char *invite_id, const char *user_agent,
                           int64_t now_ms);
/* At start: every invitation still open ends with outcome (nobody holds its
 * push any more); *count (may be NULL) gets how many. */
int tm_store_invites_end_open(tm_store *s, const char *outcome, int64_t now_ms, int *count);

typedef struct tm_guest_link {
    char id[64];
    char visit_id[64];
    char name[256]; /* what the patient calls the guest; never logged or reported */
    char created_by[128];
    int64_t created_ms, expires_ms;
    char state[16];    /* open | used | revoked | expired (open past expires_ms) */
    char guest_id[64]; /* "" until used */
} tm_guest_link;

/* Records a link of l->visit_id named l->name by l->created_by (role
 * creator_role) expiring at l->expires_ms, keyed by the SHA-256 (hex) of its
 * code; fills l->id and its visit.guest_link event. TM_EINVAL, TM_ECONFLICT
 * (the code hash exists). */
int tm_store_guest_link_create(tm_store *s, tm_guest_link *l, const char *code_sha256,
                               const char *creator_role, int64_t now_ms);
/* Uses the link whose code hashes to code_sha256, once: it becomes used by
 * guest_id, with the SHA-256 of the guest's resume secret, and guest_id
 * joins the visit as a guest, with the visit.guest_link and
 * visit.participant_joined events, in one transaction. *out is filled on success and on refusal.
 * TM_ENOTFOUND (unknown code), TM_ECONFLICT (out->state: used, revoked or
 * expired). */
int tm_store_guest_link_redeem(tm_store *s, const char *code_sha256, const char *guest_id,
                               const char *resume_sha256, int64_t now_ms, tm_guest_link *out);
/* Revokes an open link (by: who). TM_ENOTFOUND, TM_ECONFLICT (not open;
 * out->state says what it is). *out (may be NULL) gets the link. */
int tm_store_guest_link_revoke(tm_store *s, const char *link_id, const char *by, int64_t now_ms,
                               tm_guest_link *out);
/* Which key tm_store_guest_link_get looks a link up by. */
typedef enum {
    TM_GUEST_LINK_BY_ID,
    TM_GUEST_LINK_BY_CODE,   /* SHA-256 (hex) of the link's code */
    TM_GUEST_LINK_BY_RESUME, /* SHA-256 (hex) of the guest's resume secret */
    TM_GUEST_LINK_BY_GUEST   /* the guest id it was used by */
} tm_guest_link_key;
/* Fills *out with the link whose key is value. TM_ENOTFOUND. */
int tm_store_guest_link_get(tm_store *s, tm_guest_link_key by, const char *value,
                            tm_guest_link *out);
/* The visit's links, oldest first: [{link_id, name, created_by, expires_at,
 * state, used_at}]. NULL on failure. */
json_t *tm_store_guest_links(tm_store *s, const char *visit_id, int64_t now_ms);
/* The visit's timeline, oldest first: [{at, event, user_id, visit_role,
 * by?, reason?, invite_id?, link_id?}] with event joined, left, invited,
 * invite_<outcome>, guest_link_created, guest_link_used,
 * guest_link_revoked. NULL on failure. */
json_t *tm_store_visit_timeline(tm_store *s, const char *visit_id);

/* Stores a chat message; *id_out (may be NULL) gets its id, increasing
 * within the store. TM_ECONFLICT for an unknown visit. */
int tm_store_chat_add(tm_store *s, const char *visit_id, const char *sender_id,
                      const char *sender_role, const char *body, int64_t now_ms, int64_t *id_out);
/* The visit's last `limit` (1..1000) chat messages, oldest first: [{id,
 * sender_id, sender_role, body, sent_at}]. NULL when the read failed. */
json_t *tm_store_chat_recent(tm_store *s, const char *visit_id, int limit);
/* The visit's signed notes, the ones its patient may read, oldest first:
 * [{doctor_id, body, diagnosis_code, signed_at}]. NULL when the read failed. */
json_t *tm_store_notes_signed(tm_store *s, const char *visit_id);
/* Saves (or replaces) the doctor's note; a signed note emits
 * visit.note_signed and is never rewritten (TM_ECONFLICT). */
int tm_store_note_save(tm_store *s, const char *visit_id, const char *doctor_id, const char *body,
                       const char *diagnosis_code, bool sign, int64_t now_ms);

/* The longest rating comment the store keeps, in bytes. */
#define TM_RATING_COMMENT_MAX 2000
/* One rating per visit (score 1..5, comment may be NULL); visit.rated
 * event. TM_EINVAL (score, comment too long), TM_ECONFLICT (already rated
 * or unknown visit). */
int tm_store_rating_add(tm_store *s, const char *visit_id, const char *patient_id, int score,
                        const char *comment, int64_t now_ms);
/* Per-stream statistics summary (JSON object text) for the visit record.
 * TM_ECONFLICT for an unknown visit. */
int tm_store_stats_add(tm_store *s, const char *visit_id, const char *user_id,
                       const char *direction, const char *kind, const char *summary_json,
                       int64_t now_ms);

/* A gap in user_id's media (role names it: patient, doctor ...): nothing
 * arrived from started_ms to ended_ms (0: not back when the visit ended).
 * TM_EINVAL (no user or role, ended before started), TM_ECONFLICT for an
 * unknown visit. */
int tm_store_interruption_add(tm_store *s, const char *visit_id, const char *user_id,
                              const char *role, int64_t started_ms, int64_t ended_ms);

/* *out = {visits, avg_response_ms, avg_rating, ratings} of the doctor's
 * visits accepted since since_ms (averages null when there are none). */
int tm_store_doctor_figures(tm_store *s, const char *doctor_id, int64_t since_ms, json_t **out);

/* What a regulator event of a visit says (docs/regulator-feed.md): the
 * visit and the rows around it as the current transaction sees them.
 * Text absent is "", amounts unknown are -1, times not yet are 0. */
typedef struct tm_visit_facts {
    tm_visit visit;
    char dept_name[256];
    /* The institution of the visit's department (issue 18); "" when it has
     * no row (a database the server has not declared its core in). */
    char institution_id[64];
    char institution_name[256];
    char institution_org_code[64];
    char doctor_licence_no[64];
    char ended_by[128];
    int64_t queue_wait_ms, response_ms, duration_ms;
    int offers;
    bool has_recording; /* the newest complete or incomplete recording */
    struct {
        char id[64];
        char sha256[65];
        int64_t size_bytes, duration_ms;
        char format[16];
        bool complete, encrypted;
    } recording;
    bool has_rating;
    struct {
        int score;
        char comment[TM_RATING_COMMENT_MAX + 1];
        int64_t rated_ms;
    } rating;
    bool has_consent; /* the patient's consent at check-in */
    struct {
        char version[32];
        char session_id[64];
        bool recording;
        int64_t accepted_ms;
    } consent;
    tm_doctor_check doctor_check; /* method "" when the doctor was not checked */
    char referral_advice[TM_REFERRAL_ADVICE_MAX + 1];
    /* Every doctor who took part (attending, consulting), by first join. */
    size_t n_doctors;
    struct {
        char doctor_id[64];
        char role[16];
        char licence_no[64];
    } doctors[8];
    /* Everyone who took part in the visit (not supervisors, who watch), by
     * first join: the visit role, and for doctors (attending, consulting)
     * their id and licence; nobody else is named. left_ms 0: still in. */
    size_t n_participants;
    struct {
        char role[16];
        char doctor_id[64];
        char licence_no[64];
        int64_t joined_ms, left_ms;
    } participants[16];
    bool has_signed_note; /* the newest signed note */
    struct {
        char doctor_id[64];
        char diagnosis_code[32];
        int64_t signed_ms;
    } note;
} tm_visit_facts;

/* Fills *out (about 5 KB). TM_ENOTFOUND. A backend calls it inside each
 * visit step's transaction and builds the outbox payload from it with
 * server/feed_event.h, so every backend's events read the same. */
int tm_store_visit_facts(tm_store *s, const char *visit_id, tm_visit_facts *out);

/* ---- doctor and department figures (issue 18) ----------------------- */
/*
 * The facts the figures (figures.h) count, read in one pass over a bounded
 * range: visits a doctor accepted (with the check-in -> accept wait and the
 * patient's rating), appointments that became no-shows, and the network's
 * steps as the outbox holds them (consultation.requested, .scheduled,
 * .opinion_signed, referral.created, visit.transferred). Every read is an
 * index range on time.
 */
typedef enum {
    TM_FACT_VISIT,             /* at: accept; wait: check-in -> accept */
    TM_FACT_NO_SHOW,           /* at: the appointment's slot */
    TM_FACT_CONSULT_REQUESTED, /* at: the request; by the requesting doctor */
    TM_FACT_CONSULT_SCHEDULED, /* at: scheduled; wait: request -> scheduled */
    TM_FACT_CONSULT_GIVEN,     /* at: the opinion signed; by the specialist */
    TM_FACT_REFERRAL,          /* at: created; by the referring doctor */
    TM_FACT_TRANSFER           /* at: the transfer; by the doctor who handed over */
} tm_figure_fact_kind;

typedef struct tm_figure_fact {
    tm_figure_fact_kind kind;
    int64_t at_ms;
    const char *doctor_id; /* "" when no doctor is named */
    const char *dept_id;   /* "" when the fact names none (then the doctor's) */
    bool follow_up;        /* a visit or appointment of kind follow_up */
    int64_t wait_ms;       /* -1 when the fact has none */
    int score;             /* the visit's rating 1..5, 0 when not rated */
    bool comment;          /* the rating came with a comment */
} tm_figure_fact;

/* Calls fn for every fact whose time is in [from_ms, to_ms); the strings are
 * borrowed until fn returns. 0, TM_EINVAL (to_ms <= from_ms) or TM_EIO. */
int tm_store_figure_facts(tm_store *s, int64_t from_ms, int64_t to_ms,
                          void (*fn)(const tm_figure_fact *f, void *user), void *user);
/* Calls fn for every institution (parent ""), department (parent: its
 * institution, "" for the core one) and doctor (parent: the department),
 * kind "institution", "department" or "doctor"; strings borrowed for the
 * call. 0 or TM_EIO. */
typedef void (*tm_store_name_fn)(const char *kind, const char *id, const char *name,
                                 const char *parent, void *user);
int tm_store_figure_names(tm_store *s, tm_store_name_fn fn, void *user);
/* The ratings with a comment of the visits accepted in [from_ms, to_ms),
 * newest accept first, at most limit (1..1000): fn gets the visit, its
 * doctor and department, the score, the comment and when it was given;
 * strings borrowed for the call. 0 or TM_EIO. */
typedef void (*tm_store_comment_fn)(const char *visit_id, const char *doctor_id,
                                    const char *dept_id, int score, const char *comment,
                                    int64_t rated_ms, void *user);
int tm_store_figure_comments(tm_store *s, int64_t from_ms, int64_t to_ms, int limit,
                             tm_store_comment_fn fn, void *user);

/* ---- recordings ---------------------------------------------------- */
/*
 * A row per recording from its first packet to its deletion by policy:
 *   recording -> complete    (tm_recording_finish)
 *             -> failed      (tm_recording_fail: disk full, muxer error)
 *             -> incomplete  (tm_recording_recover at start: the server died)
 *   complete | incomplete | failed -> deleted (tm_recording_retention_sweep)
 * complete and incomplete rows each emit recording.available in the same
 * transaction that sets the state.
 */

#define TM_RECORDING_ID_LEN 64

/* A recording starts for visit_id at path; format names the container
 * ("matroska"). Writes id_out ("rec-<uuid>"). TM_EINVAL (NULL argument),
 * TM_ENOTFOUND (no such visit). */
int tm_recording_start(tm_store *s, const char *visit_id, const char *path, const char *format,
                       bool encrypted, int64_t now_ms, char id_out[TM_RECORDING_ID_LEN]);
/* Which part of its visit's recording the row is (1, the default, .. 1000): a visit whose
 * senders grow while it is recorded has a file per part. TM_EINVAL, TM_ENOTFOUND. */
int tm_recording_set_part(tm_store *s, const char *rec_id, int part);
/* Which node wrote the row (its node_id, copied) and which segment of its visit's recording
 * it is (1, the default, .. 1000): a live visit whose node died resumes on another node, where
 * its recording goes on as the next segment. TM_EINVAL, TM_ENOTFOUND. */
int tm_recording_set_segment(tm_store *s, const char *rec_id, const char *node_id, int segment);
/* The highest segment of visit_id's recording rows into *segment (0 when it has none). */
int tm_recording_last_segment(tm_store *s, const char *visit_id, int *segment);
/* A node took over the live visit visit_id: rows of it still recording that another node
 * wrote (the node that held it, found dead) are closed as tm_recording_recover closes them,
 * incomplete with the size and SHA-256 of the file, when this node can read the file (a
 * recording_dir every node mounts); a file it cannot read is left recording, for its own
 * node's start to recover. *count (may be NULL) gets how many rows were closed. */
int tm_recording_close_others(tm_store *s, const char *visit_id, const char *node_id,
                              int64_t now_ms, int *count);
/* The file is final: complete with its size, duration, SHA-256 (64
 * lowercase hex) and the recorder's dropped-packet count, plus the visit's
 * recording.available event. TM_EINVAL (bad sha256, negative size or
 * duration), TM_ENOTFOUND, TM_ECONFLICT (not recording). */
int tm_recording_finish(tm_store *s, const char *rec_id, int64_t size_bytes, int64_t duration_ms,
                        const char *sha256, int64_t dropped_packets, int64_t now_ms);
/* For a recording encrypted at rest: the SHA-256 (64 lowercase hex) of the
 * Matroska stream before encryption, which a decrypted copy hashes to. Set
 * before tm_recording_finish. TM_EINVAL, TM_ENOTFOUND. */
int tm_recording_set_plain_sha256(tm_store *s, const char *rec_id, const char *plain_sha256);
/* The recording failed (reason: short, no personal data; NULL or ""
 * stores "unknown"). The visit goes on; no event. TM_ENOTFOUND,
 * TM_ECONFLICT (not recording). */
int tm_recording_fail(tm_store *s, const char *rec_id, const char *reason, int64_t dropped_packets,
                      int64_t now_ms);
/* At start-up, before any recorder runs: every row still recording was cut
 * short by a crash. Each becomes incomplete with the size and SHA-256 of
 * what is on disk and its recording.available event, or failed ("file
 * missing"/"file unreadable"), each in its own transaction. *count (may be
 * NULL) gets how many rows changed; the first failure is returned after
 * the other rows were tried. */
int tm_recording_recover(tm_store *s, int64_t now_ms, int *count);
/* The same for one node of several sharing the store: only the rows node_id wrote (the
 * others' are being written by their live nodes). */
int tm_recording_recover_node(tm_store *s, const char *node_id, int64_t now_ms, int *count);
/* Deletes the files of recordings (complete, incomplete, failed) started
 * more than retention_days (>= 1, else TM_EINVAL) ago and marks their rows
 * deleted with deleted_at and deleted_by_policy
 * ("retention_recordings_days=N"), each with an audit row (actor "system",
 * action "recording.delete"). A file that cannot be removed (other than
 * already gone) keeps its row, is audited with outcome "error", and counts
 * in *failed. *deleted and *failed may be NULL. */
int tm_recording_retention_sweep(tm_store *s, int retention_days, int64_t now_ms, int *deleted,
                                 int *failed);
/* {id, visit_id, path, format, state, size_bytes, duration_ms, sha256,
 * plain_sha256, encrypted, failure, dropped_packets, started_at,
 * finished_at, deleted_at, deleted_by_policy}; NULL when not found. */
json_t *tm_recording_get(tm_store *s, const char *rec_id);

/* ---- review renditions --------------------------------------------- */
/*
 * A review rendition is one WebM made after the visit from all its
 * recording parts (server/review.c): every video in a grid, every voice
 * mixed, so a reviewer hears everyone in any player. It is derived from the
 * evidence and can be made again from it; the recordings stay the evidence.
 * The rows are the render queue, so it survives restarts, and one row is
 * one attempt, so every failure stays on record:
 *   queued -> rendering (tm_rendition_begin) -> complete | failed
 *   rendering -> queued again (tm_rendition_requeue at start: server died)
 *   failed -> a new queued row for the visit (tm_rendition_retry, bounded)
 *   complete | failed -> deleted (tm_recording_retention_sweep, with the
 *   recordings it was made from)
 */

#define TM_RENDITION_ID_LEN 64

/* Queues a rendition of every visit that needs one: over (ended or
 * cancelled) at or after ended_since_ms, with at least one complete or
 * incomplete recording, none still recording, and no rendition row at all
 * (a failed one stays failed). With visit_id (may be NULL) only that visit
 * is looked at. With neither visit_id nor ended_since_ms (the call at
 * start) rows left rendering by a server that stopped are queued again
 * first. *queued (may be NULL) gets how many rows became queued. */
int tm_rendition_requeue(tm_store *s, const char *visit_id, int64_t ended_since_ms, int64_t now_ms,
                         int *queued);
/* Queues another attempt for every visit whose rendition attempts all
 * failed, fewer than max_attempts of them, once the latest failed at least
 * base_ms * 4^(failures - 1) ago (at most a day). *queued (may be NULL) gets
 * how many rows became queued; *next_due_ms (may be NULL) the earliest time
 * a retry not yet due will be, 0 when none waits. */
int tm_rendition_retry(tm_store *s, int max_attempts, int64_t base_ms, int64_t now_ms, int *queued,
                       int64_t *next_due_ms);
/* The oldest queued rendition: its id and visit id into the buffers.
 * TM_ENOTFOUND when the queue is empty. */
int tm_rendition_next(tm_store *s, char id[TM_RENDITION_ID_LEN], char visit_id[64]);
/* The recordings a rendition of visit_id is made from, oldest first:
 * [{id, path, encrypted, state, started_at_ms}] of the complete and
 * incomplete ones. New reference, or NULL (errmsg). */
json_t *tm_rendition_sources(tm_store *s, const char *visit_id);
/* queued -> rendering into path, from parts recordings. TM_ENOTFOUND,
 * TM_ECONFLICT (not queued). */
int tm_rendition_begin(tm_store *s, const char *id, const char *path, bool encrypted, int parts,
                       int64_t now_ms);
/* rendering -> complete with size, duration, SHA-256 of the file as stored
 * (64 lowercase hex), plain_sha256 (the WebM before encryption; NULL when
 * not encrypted) and the CPU it cost. TM_EINVAL, TM_ENOTFOUND, TM_ECONFLICT
 * (not rendering). */
int tm_rendition_finish(tm_store *s, const char *id, int64_t size_bytes, int64_t duration_ms,
                        const char *sha256, const char *plain_sha256, int64_t cpu_ms,
                        int64_t now_ms);
/* queued | rendering -> failed with error (short, ids only; NULL stores
 * "unknown") and the CPU spent (0 unknown). TM_ENOTFOUND, TM_ECONFLICT. */
int tm_rendition_fail(tm_store *s, const char *id, const char *error, int64_t cpu_ms,
                      int64_t now_ms);
/* {id, visit_id, path, format, state, size_bytes, duration_ms, sha256,
 * plain_sha256, encrypted, error, parts, cpu_ms, queued_at, started_at,
 * finished_at, deleted_at}; NULL when not found. */
json_t *tm_rendition_get(tm_store *s, const char *id);
/* Deletes the files of renditions (complete, failed) queued more than
 * retention_days (>= 1) ago, as tm_recording_retention_sweep does for the
 * recordings they were made from: rows become deleted, each audited as
 * "rendition.delete"; a file that cannot be removed keeps its row and
 * counts in *failed. *deleted and *failed may be NULL. */
int tm_rendition_retention_sweep(tm_store *s, int retention_days, int64_t now_ms, int *deleted,
                                 int *failed);
/* How many renditions are in state (queued, rendering, ...), in *count. */
int tm_rendition_count(tm_store *s, const char *state, int64_t *count);

/* ---- audit log ----------------------------------------------------- */

/* Appends an audit row at the current time; actor_id NULL/"" is stored as
 * "-", actor_role as "none", outcome NULL as "ok". */
int tm_store_audit(tm_store *s, const char *actor_id, const char *actor_role, const char *action,
                   const char *target, const char *outcome, const char *detail);
/* Newest first: [{id, at, actor_id, actor_role, action, target, outcome,
 * detail}]; NULL/0 do not filter; limit 1..1000 (else 100). */
json_t *tm_store_audit_list(tm_store *s, const char *target, const char *actor_id, int64_t from_ms,
                            int limit);

/* ---- consultation requests (issue 18) ------------------------------ */
/*
 * A doctor asks a department, or a named specialist of it, for a remote
 * consultation (远程会诊) about a patient. States: requested -> scheduled
 * (a slot and a specialist), proposed (another slot; the requester accepts
 * it -> scheduled, or declines it -> declined), declined (with a reason) or
 * cancelled (by the requester); scheduled -> in_progress (the patient
 * checked in with the consultation's appointment and the visit started) ->
 * completed (the specialist signed the opinion). Each step but the cancel
 * writes its regulator event (consultation.*) in its transaction; the event's
 * subject is the request's id until it has a visit.
 *
 * Rows come out as {consultation_id, patient_id, requester_id,
 * requester_dept_id, origin_visit_id, dept_id, specialist_id, reason,
 * question, attachments (array), window_start_at, window_end_at, urgency,
 * state, proposed_slot_at, proposed_specialist_id, proposed_by, slot_at,
 * scheduled_by, scheduled_at, appointment_id, visit_id, declined_by,
 * decline_reason, cancelled_by, opinion, opinion_diagnosis_code, opinion_signed_at,
 * created_at, updated_at}.
 */

/* The longest reason, question, opinion and decline reason, in bytes. */
#define TM_CONSULT_TEXT_MAX 4000

typedef struct tm_consult_request {
    char id[64]; /* filled by tm_store_consult_create: "cr-<uuid>" */
    char patient_id[128];
    char requester_id[64];    /* a doctor; their department is the requesting side */
    char origin_visit_id[64]; /* the visit it was asked from, "" none */
    char dept_id[64];         /* the receiving department */
    char specialist_id[64];   /* a named specialist of dept_id, "" any */
    const char *reason;       /* borrowed */
    const char *question;     /* borrowed */
    json_t *attachments;      /* borrowed array of reference strings, NULL none */
    int64_t window_start_ms, window_end_ms;
    char urgency[16]; /* routine | urgent | emergency */
} tm_consult_request;

/* Records a request in state requested with its consultation.requested
 * event; fills c->id. TM_EINVAL (missing or too long text, window empty or
 * over, bad urgency, attachments not strings, the requester not a doctor,
 * the specialist not an active doctor of the department), TM_ENOTFOUND
 * (unknown department). */
int tm_store_consult_create(tm_store *s, tm_consult_request *c, int64_t now_ms);
/* The row, or NULL (not found or failure). */
json_t *tm_store_consult_get(tm_store *s, const char *id);
/* Newest first, at most limit (1..500, else 100): the requests of
 * requester_id, or those addressed to dept_id, in state; NULL does not
 * filter. NULL on failure. */
json_t *tm_store_consult_list(tm_store *s, const char *requester_id, const char *dept_id,
                              const char *state, int limit);
/* requested -> scheduled by `by` at slot_ms (after now_ms) with
 * specialist_id (an active doctor of the department): books the patient's
 * appointment with the requester in the requester's department at the slot
 * and writes consultation.scheduled. TM_ENOTFOUND, TM_ECONFLICT (not
 * requested), TM_EINVAL (slot past, bad specialist). */
int tm_store_consult_schedule(tm_store *s, const char *id, const char *by,
                              const char *specialist_id, int64_t slot_ms, int64_t now_ms);
/* requested -> proposed: another slot (after now_ms) with specialist_id;
 * consultation.proposed. Errors as tm_store_consult_schedule. */
int tm_store_consult_propose(tm_store *s, const char *id, const char *by, const char *specialist_id,
                             int64_t slot_ms, int64_t now_ms);
/* proposed -> scheduled at the proposed slot, as tm_store_consult_schedule;
 * TM_ECONFLICT when not proposed or the slot has passed. */
int tm_store_consult_accept_proposal(tm_store *s, const char *id, const char *by, int64_t now_ms);
/* requested (by the department) or proposed (by the requester, who turns
 * the proposal down) -> declined with reason (1..TM_CONSULT_TEXT_MAX
 * bytes); consultation.declined. TM_EINVAL, TM_ENOTFOUND, TM_ECONFLICT. */
int tm_store_consult_decline(tm_store *s, const char *id, const char *by, const char *reason,
                             int64_t now_ms);
/* requested, proposed or scheduled -> cancelled; a booked appointment is
 * cancelled too. No regulator event: nothing took place. TM_ENOTFOUND,
 * TM_ECONFLICT. */
int tm_store_consult_cancel(tm_store *s, const char *id, const char *by, int64_t now_ms);
/* The visit visit_id started: when its appointment is a scheduled
 * consultation's, that one becomes in_progress with the visit and *out gets
 * its row (new reference). 0 with *out NULL when the visit is no
 * consultation's. */
int tm_store_consult_visit_started(tm_store *s, const char *visit_id, json_t **out);
/* The specialist's opinion of an in_progress consultation: saved as a
 * draft, or signed (sign): then it is final, the consultation completed,
 * the opinion is also the specialist's signed note of the visit, and
 * consultation.opinion_signed (subject the visit) is written.
 * TM_EINVAL (empty or too long body), TM_ENOTFOUND, TM_EPERM (not its
 * specialist), TM_ECONFLICT (not in progress, already signed, visit
 * sealed). */
int tm_store_consult_opinion(tm_store *s, const char *id, const char *specialist_id,
                             const char *body, const char *diagnosis_code, bool sign,
                             int64_t now_ms);
/* Whether doctor_id requested, or is (or was proposed as) the specialist
 * of, a consultation about patient_id: the patient is theirs to read. */
bool tm_store_consult_involves(tm_store *s, const char *doctor_id, const char *patient_id);
/* The consultation held in visit_id (a row), or JSON null when none. NULL
 * on failure. */
json_t *tm_store_consult_of_visit(tm_store *s, const char *visit_id);

/* ---- the regulator outbox ------------------------------------------ */
/*
 * Rows are written by the visit steps above. The feed (feed.h) reads them
 * here, in order per visit, and records what became of each delivery
 * attempt; every state lives in the database, so retries survive restarts
 * and kill -9.
 *
 * Row states: pending (to deliver; its next attempt time says when) ->
 * delivered, or -> dead (a permanent rejection or an unreadable row; kept
 * with the status, error and response) -> pending again by replay.
 *
 * Order: a visit's pending rows form a chain in seq order; only the chain's
 * head decides when the chain is due, so no event of a visit is handed out
 * while an earlier one of the same visit is still pending. Different visits
 * overtake each other freely. seq increases with every row written.
 *
 * Leases (several nodes on one database, docs/cluster.md): the next_batch
 * calls of every consumer (this outbox, the messaging queue, the routed
 * queues) claim the rows they hand out for the handle's lease holder until
 * now + its lease time (tm_store_set_lease), each row by one conditional
 * update, so two nodes never get one row. A row another holder leases
 * until later than now is not handed out, nor is any later row of its
 * visit (order per visit holds across nodes). An expired lease is anyone's:
 * a holder that died mid-delivery loses its rows once its lease time has
 * passed. The outcome calls (mark delivered, retry, dead letter) change only
 * rows this holder leases or nobody does, and release the lease. "now" of a
 * lease is the database's clock where it has one (PostgreSQL), not the
 * caller's now_ms, so nodes whose clocks differ agree on who holds a row;
 * whether a row is due stays judged by the caller's now_ms.
 */

#define TM_STORE_LEASE_HOLDER "local" /* until tm_store_set_lease */
#define TM_STORE_LEASE_MS 60000

/* Who claims outbox rows through s (the node id, copied) and for how long
 * a claim holds: longer than the longest delivery request, or another node
 * may take rows still being delivered. TM_EINVAL for a holder that is
 * empty or longer than 63 bytes, or lease_ms < 1. */
int tm_store_set_lease(tm_store *s, const char *holder, int64_t lease_ms);

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

/* Rows in state (pending, delivered, dead) in *count. */
int tm_store_outbox_count(tm_store *s, const char *state, int64_t *count);

/* Up to limit (>= 1, else TM_EINVAL) pending events that may be sent at
 * now_ms: the rows of every visit whose oldest pending row is due, oldest
 * seq first, each visit's rows in seq order. *out gets a new array (free
 * with tm_outbox_events_free), *n its length (0 and *out NULL when nothing
 * is due). */
int tm_outbox_next_batch(tm_store *s, int64_t now_ms, int limit, tm_outbox_event **out, size_t *n);
/* Frees an array from tm_outbox_next_batch; NULL is fine. */
void tm_outbox_events_free(tm_outbox_event *ev, size_t n);

/* The earliest time (epoch ms) at which some visit's oldest pending row is
 * due, in *due_ms. TM_ENOTFOUND when nothing is pending. */
int tm_outbox_next_due(tm_store *s, int64_t *due_ms);

/* Marks pending rows delivered at now_ms with the endpoint's status (0 for
 * the file sink), in one transaction. Rows not pending are left alone. */
int tm_outbox_mark_delivered(tm_store *s, const int64_t *seqs, size_t n, int status,
                             int64_t now_ms);

/* Counts one failed attempt for each pending row and sets its next attempt
 * time (next_at[i], epoch ms), last status (0 = no HTTP answer) and last
 * error, in one transaction. Rows not pending are left alone. */
int tm_outbox_retry(tm_store *s, const int64_t *seqs, const int64_t *next_at, size_t n, int status,
                    const char *error);

/* Makes every pending row that waits for a retry due now (the endpoint
 * answered again after failing: no reason to wait out each row's backoff).
 * Returns the number of rows changed, or a negative TM_E* code. */
int tm_outbox_retry_now(tm_store *s, int64_t now_ms);

/* Moves a pending row to dead letters, counting the attempt and keeping
 * status, error and the first response_len bytes of response (may be
 * NULL). TM_ENOTFOUND if no pending row has that seq. */
int tm_outbox_dead_letter(tm_store *s, int64_t seq, int status, const char *error,
                          const char *response, size_t response_len);

/* Dead letter -> pending, due now. TM_ENOTFOUND if no such row,
 * TM_ECONFLICT if the row is not dead. The caller audits who did it. */
int tm_outbox_replay(tm_store *s, int64_t seq);

/* Dead letters, newest first, at most limit (<= 0: 100): [{seq, event_id,
 * type, visit_id, occurred_at (RFC 3339), attempts, last_status,
 * last_error, last_response}], bytes that are not UTF-8 replaced. */
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
 * none). Costs O(pending), cheap enough for every /metrics scrape. */
int tm_outbox_queue(tm_store *s, int64_t *pending, int64_t *oldest_pending_at);

/* ---- follow-ups, no-shows, the patient's course (issue 18, followup18) -- */
/*
 * A follow-up is an appointment (kind follow_up) booked by a doctor from
 * inside a visit, linked to that visit. Every appointment step writes its
 * event in the step's transaction: appointment.booked, appointment.moved,
 * appointment.due (the sweep, once per slot), appointment.no_show (the
 * sweep). Its subject (the outbox visit_id) is the visit the appointment
 * was booked in, else the appointment's own id (docs/regulator-feed.md).
 */
typedef struct tm_followup {
    char visit_id[64];     /* the visit it is booked in */
    char booked_by[64];    /* the doctor who books it */
    char dept_id[64];      /* "" = the visit's department */
    char doctor_id[64];    /* "" = any doctor of the department */
    int64_t slot_ms;       /* the slot, or the first moment of a date window */
    int64_t window_end_ms; /* 0 = a slot; else the window's last moment (> slot_ms) */
} tm_followup;

/* Books the follow-up of f->visit_id's patient in one transaction: the
 * appointment (status booked), its link to the visit and its
 * appointment.booked event; id_out (64 bytes, may be NULL) gets its id.
 * TM_EINVAL (no slot, window ending before it), TM_ENOTFOUND (no such
 * visit), TM_ECONFLICT (unknown department or doctor). */
int tm_store_followup_book(tm_store *s, const tm_followup *f, int64_t now_ms, char id_out[64]);
/* A booked appointment gets a new slot (or, a follow-up, a new window), its
 * appointment.moved event, and will be told due again. TM_EINVAL,
 * TM_ENOTFOUND, TM_ECONFLICT (not booked any more). */
int tm_store_appt_move(tm_store *s, const char *appt_id, int64_t slot_ms, int64_t window_end_ms,
                       int64_t now_ms);
/* An appointment booked by the hospital's systems (REST): as
 * tm_store_appt_create, with its appointment.booked event in the same
 * transaction. */
int tm_store_appt_book(tm_store *s, const tm_appointment *a, int64_t now_ms, char *id_out);
/* As tm_store_appt_update, with appointment.moved (and told due again) when
 * the slot of an appointment that stays booked changes, and
 * appointment.cancelled when a booked one is cancelled. */
int tm_store_appt_change(tm_store *s, const tm_appointment *a, int64_t now_ms);
/* {id, patient_id, department_id, doctor_id, kind, status, slot_at,
 * window_end_at, booked_in_visit, booked_by}, the shape of an appointment
 * event's `appointment`; NULL when not found or on failure. */
json_t *tm_store_appt_json(tm_store *s, const char *appt_id);
/* The follow-ups booked in visit_id, by slot, each as tm_store_appt_json. */
json_t *tm_store_followups_of_visit(tm_store *s, const char *visit_id);
/* The sweeps (the control loop runs them on a timer). due: booked
 * appointments whose slot is within before_ms from now_ms and not yet told,
 * each marked told with its appointment.due event. noshow: booked
 * appointments whose slot (a window's end) passed more than after_ms ago
 * become noshow with their appointment.no_show event. At most max (<= 0:
 * 100) per call, in one transaction; *count (may be NULL) gets how many. */
int tm_store_appt_sweep_due(tm_store *s, int64_t now_ms, int64_t before_ms, int max, int *count);
int tm_store_appt_sweep_noshow(tm_store *s, int64_t now_ms, int64_t after_ms, int max, int *count);
/* No-shows of appointments whose slot is in [from_ms, to_ms) (0: open),
 * by "doctor" ([{doctor_id, no_shows}]: the appointment's doctor, else the
 * doctor who booked it) or "dept" ([{dept_id, no_shows}]); NULL for
 * another `by` (TM_EINVAL in errmsg) or on failure. */
json_t *tm_store_noshow_counts(tm_store *s, const char *by, int64_t from_ms, int64_t to_ms);
/* The patient's whole course, oldest first: {patient_id, items: [...]},
 * each item with kind and at: "visit" (visit_id, dept_id, dept_name,
 * doctor_id, doctor_name, visit_kind, state, ended_at, end_reason, notes:
 * the signed ones [{doctor_id, body, diagnosis_code, signed_at}],
 * diagnosis_codes), "appointment" (appointment_id, slot_at, window_end_at,
 * appointment_kind, status, dept_id, dept_name, doctor_id, doctor_name,
 * booked_in_visit, booked_by) and, where those tables exist,
 * "consultation" and "referral" (their columns). patient_view: only what
 * the patient reads (visits with released notes, appointments still
 * ahead at now_ms). NULL on failure. */
json_t *tm_store_patient_timeline(tm_store *s, const char *patient_id, bool patient_view,
                                  int64_t now_ms);
/* Whether doctor_id has been the patient's doctor (attending or joined
 * one of their visits as a doctor) or has an appointment with them. */
bool tm_store_doctor_knows_patient(tm_store *s, const char *doctor_id, const char *patient_id);

/* ---- the messaging queue (issue 18, followup18) --------------------- */
/*
 * The hospital's messaging system (SMS, WeChat) is a second consumer of the
 * outbox rows above: the rows of types appointment.*, consultation.* and
 * referral.*, with their own delivery state, in the same order per subject
 * and with the same outcomes as tm_outbox_* (same contracts, same rows'
 * seq and event ids). A row written before the queue first looked is
 * taken too: the queue starts at the outbox's first row.
 */
int tm_msgq_next_batch(tm_store *s, int64_t now_ms, int limit, tm_outbox_event **out, size_t *n);
int tm_msgq_next_due(tm_store *s, int64_t *due_ms);
int tm_msgq_mark_delivered(tm_store *s, const int64_t *seqs, size_t n, int status, int64_t now_ms);
int tm_msgq_retry(tm_store *s, const int64_t *seqs, const int64_t *next_at, size_t n, int status,
                  const char *error);
int tm_msgq_retry_now(tm_store *s, int64_t now_ms);
int tm_msgq_dead_letter(tm_store *s, int64_t seq, int status, const char *error,
                        const char *response, size_t response_len);
int tm_msgq_replay(tm_store *s, int64_t seq);
json_t *tm_msgq_dead_list(tm_store *s, int limit);
int tm_msgq_stats_get(tm_store *s, tm_outbox_stats *out);
int tm_msgq_queue(tm_store *s, int64_t *pending, int64_t *oldest_pending_at);

/* ---- routes by institution (reg16b) ---------------------------------- */
/*
 * An alliance member may have a delivery profile of its own
 * (institution_feeds): its visits' events go there and no longer to the
 * deployment's profiles. A row's institution is its visit's department's
 * at the time it is routed; rows whose subject is no visit are never routed.
 */
/* Replaces the routes: member institutions[i] to profiles[i] ("webhook",
 * "tianjin"), in one transaction. */
int tm_route_set(tm_store *s, const char *const *institutions, const char *const *profiles,
                 size_t n);
/* Routes the outbox rows written since the last call: a routed member's
 * pending rows leave the outbox's own queue (delivered, last_error
 * "routed"), and those of a member routed to a webhook enter its queue
 * below. The deployment webhook calls it before each batch when routes
 * exist, so it never sends a routed row. */
int tm_route_new(tm_store *s, int64_t now_ms);
/* A member's webhook queue: tm_msgq_*'s contracts, for one institution
 * (routing first, in next_batch). A replay of another member's row is
 * TM_ENOTFOUND. */
int tm_routeq_next_batch(tm_store *s, const char *institution, int64_t now_ms, int limit,
                         tm_outbox_event **out, size_t *n);
int tm_routeq_next_due(tm_store *s, int64_t *due_ms);
int tm_routeq_mark_delivered(tm_store *s, const int64_t *seqs, size_t n, int status,
                             int64_t now_ms);
int tm_routeq_retry(tm_store *s, const int64_t *seqs, const int64_t *next_at, size_t n, int status,
                    const char *error);
int tm_routeq_retry_now(tm_store *s, int64_t now_ms);
int tm_routeq_dead_letter(tm_store *s, int64_t seq, int status, const char *error,
                          const char *response, size_t response_len);
int tm_routeq_replay(tm_store *s, const char *institution, int64_t seq);
json_t *tm_routeq_dead_list(tm_store *s, const char *institution, int limit);
int tm_routeq_stats_get(tm_store *s, const char *institution, tm_outbox_stats *out);
int tm_routeq_queue(tm_store *s, const char *institution, int64_t *pending,
                    int64_t *oldest_pending_at);

/* ---- batch uploads (provincial platforms) ---------------------------- */
/*
 * A batch delivery profile (feed_profile.h; the Tianjin platform's nightly
 * upload) takes a day's finished business at once. A day is "staged" once:
 * every visit that ended in it and every rating given in it becomes one
 * record per profile, keyed (profile, kind, buss_id) so that staging again,
 * after a crash or for a day already done, adds nothing. Each record keeps
 * a snapshot of the facts (JSON text, keys listed in docs/regulator-feed.md)
 * and its delivery state: pending -> delivered, or -> dead (kept with the
 * reason) -> pending again by replay.
 */

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
/* The same for one alliance member's own profile (institution, its id):
 * only that member's visits and ratings. tm_upload_stage_day (institution
 * NULL) stages every visit but those of members routed to their own
 * profile (tm_route_set). */
int tm_upload_stage_day_in(tm_store *s, const char *profile, const char *institution,
                           const char *day, int64_t from_ms, int64_t to_ms, bool unanswered,
                           int64_t now_ms, int *staged);
/* The latest staged day into day (16 bytes). TM_ENOTFOUND if none. */
int tm_upload_last_day(tm_store *s, const char *profile, char day[16]);

/* Up to limit pending records of kind due at now_ms, oldest first. Ratings
 * are only handed out once their visit's record is delivered (a platform
 * refuses a rating whose visit it has not accepted). Like the outbox's
 * batches they are leased to the handle's holder first (see "the regulator
 * outbox"): a record another holder leases until after now_ms is not handed
 * out, and the outcomes below change only records this holder leases or
 * nobody does, freeing them. *out is new (free with tm_upload_records_free),
 * *n its length. */
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

/* The oldest staged day not yet checked in, leased to the handle's holder
 * at now_ms (so one node sends its check-in). TM_ENOTFOUND if none, or if
 * another holder leases it. */
int tm_upload_checkin_next(tm_store *s, const char *profile, int64_t now_ms, char day[16]);
int tm_upload_checkin_done(tm_store *s, const char *profile, const char *day, int64_t now_ms);

typedef struct tm_upload_counts {
    int64_t pending, delivered, dead, days, checkins;
    int64_t held; /* pending ratings whose visit the platform has not accepted (yet) */
} tm_upload_counts;
int tm_upload_counts_get(tm_store *s, const char *profile, tm_upload_counts *out);
/* Each staged day of profile, newest first, at most limit (<= 0: 30), for
 * the compliance figures: [{day, staged_ms, checkin_ms (null until checked
 * in), visits, ratings, delivered, pending, dead, last_delivered_ms (null
 * if none), dead_by_reason: {last_error: count}}]. New reference or NULL. */
json_t *tm_upload_day_report(tm_store *s, const char *profile, int limit);

/* Identifiers owned by the hospital's identity system that a platform asks
 * for: kind "doctor" (code: the doctor's certificate number), "patient"
 * (cert_type and code: the patient's certificate), "dept" (code: the
 * platform's department code). cert_type may be NULL. Upserts. */
int tm_store_regulator_id_put(tm_store *s, const char *kind, const char *local_id,
                              const char *cert_type, const char *code);

/* ---- the visit hash chain ------------------------------------------ */

/* Walks the visit's outbox events in seq order and checks each stored chain
 * hash (visit_chain.h): {visit_id, events, chained, unchained_before_start
 * (rows older than the chain), head (the last stored hash, or null), ok,
 * problems: [{seq, event_id, type, problem}]}. New reference, or NULL when
 * the store cannot be read. */
json_t *tm_store_visit_chain(tm_store *s, const char *visit_id);

/* ---- the visit seal ------------------------------------------------ */
/*
 * A visit's record is sealed (visit_seal.h) once it can no longer change:
 * the visit is over (ended or cancelled), and either none of its recordings
 * is still being written and its note is signed (or it was cancelled: no
 * doctor could write one), or seal_after_ms passed since its end. A row
 * still "recording" by then never got a file (no media reached the server)
 * or its recorder is stuck: the seal closes it as failed ("not finished
 * when the record was sealed"). From the seal on the
 * note is final (tm_store_note_save refuses with TM_ECONFLICT). Events
 * after the seal (a late rating) extend the chain but are not covered by it.
 *
 * The statement a seal signs is a JSON object, stored as the exact text
 * signed (compact, keys sorted): {format "telemed-seal-v1", hospital_id,
 * visit_id, sealed_at (epoch ms), visit {state, patient_id, doctor_id,
 * checkin_at, accepted_at, ended_at (epoch ms or null), end_reason,
 * ended_by}, chain {events (rows up to last_seq, chained or not), last_seq,
 * head (the chain recomputed from the rows' content, not their stored
 * hashes; null without chained rows)}, note (null or {doctor_id, signed_at,
 * sha256: tm_seal_note_hash}), recordings [{id, state, encrypted,
 * size_bytes, sha256, plain_sha256}] by start}.
 */

/* Up to max visits due for their seal at now_ms by the rule above, the
 * earliest end first: ids into ids[i] (64 bytes each), *n the count. */
int tm_store_seal_due(tm_store *s, int64_t now_ms, int64_t seal_after_ms, char (*ids)[64],
                      size_t max, size_t *n);

/* The statement of the visit as its rows are now, with sealed_at as given
 * and the chain taken up to upto_seq (0: up to the visit's last event).
 * Verification builds it again with the seal's own sealed_at and last_seq
 * and compares. New reference, or NULL (no such visit, or a failure). */
json_t *tm_store_seal_statement(tm_store *s, const char *visit_id, int64_t upto_seq,
                                int64_t sealed_at);

/* Signs statement (len bytes, not NUL-terminated in general): returns the
 * signature as text (a new string, g_free), or NULL when it cannot. */
typedef char *(*tm_store_sign_fn)(const char *statement, size_t len, void *user);

/* Seals the visit in one transaction: builds its statement (sealed_at =
 * now_ms), has sign sign it, stores statement, signature, algorithm and
 * key_id, marks the visit sealed and appends its visit.sealed event.
 * TM_ENOTFOUND, TM_ECONFLICT (already sealed, or not over), TM_EIO (sign
 * gave nothing). */
int tm_store_visit_seal(tm_store *s, const char *visit_id, const char *algorithm,
                        const char *key_id, tm_store_sign_fn sign, void *user, int64_t now_ms);

/* {visit_id, sealed_at (epoch ms), algorithm, key_id, statement (the text
 * signed), signature}. New reference, or NULL when the visit is not sealed
 * (or the store cannot be read). */
json_t *tm_store_visit_seal_get(tm_store *s, const char *visit_id);

/* Whether the visit was ever sealed by the marks a seal leaves beside its
 * row (visits.sealed_at, a visit.sealed event): true with *sealed_at (may
 * be NULL; 0 when only the event is left) even when the seal row itself
 * is gone. */
bool tm_store_visit_seal_marked(tm_store *s, const char *visit_id, int64_t *sealed_at);

/* How many visits are sealed, in *count. */
int tm_store_seal_count(tm_store *s, int64_t *count);

/* ---- cluster nodes (issue 19, cluster19) ----------------------------- */
/*
 * Several telemed nodes share one database. Each registers itself and
 * refreshes its heartbeat and load every few seconds (server/cluster.c); a
 * node whose heartbeat is older than the caller's dead_after_ms is dead. A
 * visit lives on one node (media_node: its patient's node while waiting,
 * then the node of its media); when that node dies its
 * visits and its expired outbox leases are released for another to take.
 * Races between nodes are decided by conditional updates: of two nodes
 * releasing or placing the same visit, exactly one changes the row.
 */
typedef struct tm_node_info {
    char id[64];
    char public_url[256];
    int64_t started_at_ms; /* this run of the node */
    int64_t heartbeat_ms;  /* the last heartbeat */
    int visits;            /* live visits whose media it hosts */
    int waiting;           /* waiting patients connected to it */
    int peers;             /* media peers */
    bool draining;         /* takes no new visits */
    /* How late its control loop was at its last heartbeat: read only here;
     * the node's heartbeat thread writes it (tm_store_node_beat). */
    int64_t loop_lag_ms;
} tm_node_info;

/* Registers n->id or refreshes it: every field of n but loop_lag_ms is
 * stored, heartbeat_ms being the time of this heartbeat (the database's
 * clock where it has one). TM_EINVAL without id or public_url. */
int tm_store_node_heartbeat(tm_store *s, const tm_node_info *n);
/* The heartbeat alone, from a thread beside the control loop on its own
 * handle: refreshes registered node id's heartbeat (the database's clock)
 * and stores how late its loop is. TM_ENOTFOUND when id is not registered
 * (it left, or has not registered yet): a beat never registers a node. */
int tm_store_node_beat(tm_store *s, const char *id, int64_t loop_lag_ms);
/* A node leaving on purpose removes its row (and its doctors on duty);
 * TM_ENOTFOUND when absent. */
int tm_store_node_remove(tm_store *s, const char *id);
/* Node node_id has `doctors` doctors on duty in dept_id now (0 removes the
 * row). */
int tm_store_node_duty_set(tm_store *s, const char *node_id, const char *dept_id, int doctors);
/* Forgets node_id's doctors on duty in every department: a node starting
 * counts them afresh, whatever it wrote before it crashed. */
int tm_store_node_duty_clear(tm_store *s, const char *node_id);
/* The doctors on duty in dept_id on the live nodes (heartbeat newer than
 * now_ms - dead_after_ms) other than node_id, into *doctors. */
int tm_store_node_duty_elsewhere(tm_store *s, const char *node_id, const char *dept_id,
                                 int64_t now_ms, int64_t dead_after_ms, int *doctors);
/* The live nodes at now_ms (heartbeat newer than now_ms - dead_after_ms)
 * into *out (a new array, g_free; NULL when none) and *n, the node best
 * placed for a new visit first: not draining, then fewest visits, fewest
 * peers, id. */
int tm_store_nodes_live(tm_store *s, int64_t now_ms, int64_t dead_after_ms, tm_node_info **out,
                        size_t *n);
/* Every registered node as [{id, public_url, started_at, heartbeat_at,
 * visits, waiting, peers, draining, alive, loop_lag_ms}], by id. NULL on
 * failure. */
json_t *tm_store_node_list(tm_store *s, int64_t now_ms, int64_t dead_after_ms);
/* Releases what dead nodes held, in one transaction: the waiting, offered or
 * active visits whose media_node is not live lose it (their ids appended to
 * *visits, a new array, which only this caller got: another node's
 * concurrent takeover gets the others), and pending outbox rows leased by a
 * dead node whose lease_until has passed are unleased (*leases, may be
 * NULL). */
int tm_store_node_takeover(tm_store *s, int64_t now_ms, int64_t dead_after_ms, json_t **visits,
                           int *leases);
/* Places visit_id's media on node_id when it has no media node yet or its
 * node is expected_node (NULL: none): TM_ECONFLICT when another node placed
 * it first or the visit is over, TM_ENOTFOUND when there is no such visit.
 * A new holder starts with the patient not away (it says so itself); the
 * same node placing it again keeps the mark. */
int tm_store_visit_place_media(tm_store *s, const char *visit_id, const char *expected_node,
                               const char *node_id);
/* The node holding visit_id says its patient dropped at away_ms (their
 * grace period runs there) or is back (0). While a node holds a visit whose
 * patient is away, tm_store_visit_offer refuses it (TM_ECONFLICT), so no
 * doctor on another node is offered someone who is not there; a visit no
 * node holds (its node died) is offered as before. Placing the visit, its
 * accept and its end clear the mark. TM_ENOTFOUND: no such visit. */
int tm_store_visit_patient_away(tm_store *s, const char *visit_id, int64_t away_ms);
/* The node hosting visit_id's media into out ("" when none). */
int tm_store_visit_media_node(tm_store *s, const char *visit_id, char out[64]);
/* The active visits whose patient is user_id, or (doctor) whose attending
 * or invited doctor (a party member still in it, or dropped) user_id is, as
 * [{id, media_node}] (media_node "" when none holds it). NULL on failure. */
json_t *tm_store_active_visits_of(tm_store *s, bool doctor, const char *user_id);
/* The newest offered or active visit of a patient (role "patient"), or
 * active visit of a doctor ("doctor"), that a node holds: its id and that
 * node. TM_ENOTFOUND when there is none, TM_EINVAL for another role. */
int tm_store_visit_held_for(tm_store *s, const char *role, const char *sub, char visit_id[64],
                            char node_id[64]);
/* A department's waiting room as every node sees it: its waiting and
 * offered visits as [{id, state, doctor_id, offered_ms, patient_away}]
 * (doctor_id and offered_ms, the offer's time in ms, null while waiting;
 * patient_away 1 while the node holding it has the patient in their grace
 * period, tm_store_visit_patient_away), oldest check-in
 * first. NULL on failure. */
json_t *tm_store_dept_queue(tm_store *s, const char *dept_id);
/* A department's live visits held by nodes other than node_id (or by none,
 * their node having died), for the supervisors of every node: [{id,
 * patient_id, doctor_id, kind, urgent (boolean), checkin_at, accepted_at
 * (RFC 3339 text), media_node}], earliest accepted first. NULL on failure. */
json_t *tm_store_dept_live_elsewhere(tm_store *s, const char *dept_id, const char *node_id);

#endif

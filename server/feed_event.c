/*
 * feed_event.c - the `data` object of a regulator feed event (schema v1).
 *
 * The store calls tm__feed_event_payload() inside the transaction that
 * changes a visit, so the payload shows the visit exactly as that step left
 * it; the outbox keeps it as text and the delivery task (feed.c) wraps it in
 * the envelope (id, seq, type, occurred_at, schema_version, hospital_id).
 * docs/regulator-feed.md is the contract for every field made here.
 *
 * Identifiers only: no patient or doctor names, no note text, no chat. The
 * rating comment is the one free text, because the regulator asks for it.
 *
 * Thread: the control loop (the store's only thread).
 */
#include "store_internal.h"
#include "telemed/common.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static json_t *col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    if (!t || sqlite3_column_type(st, i) == SQLITE_NULL || !*t)
        return json_null();
    return json_string((const char *)t);
}

static json_t *col_int(sqlite3_stmt *st, int i)
{
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return json_null();
    return json_integer(sqlite3_column_int64(st, i));
}

static json_t *col_time(sqlite3_stmt *st, int i)
{
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return json_null();
    char buf[40];
    return json_string(tm_rfc3339(sqlite3_column_int64(st, i), buf, sizeof(buf)));
}

/* Runs sql bound to visit_id and returns the statement on its first row, or
 * NULL (no row or error); the caller finalizes a non-NULL result. */
static sqlite3_stmt *first_row(sqlite3 *db, const char *sql, const char *visit_id)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_text(st, 1, visit_id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return NULL;
    }
    return st;
}

static const char visit_sql[] =
    "SELECT v.id, v.patient_id, v.dept_id, d.name, v.doctor_id, doc.licence_no, v.kind,"
    "       v.urgent, v.state, v.appointment_id, v.checkin_at, v.offered_at, v.accepted_at,"
    "       v.ended_at, v.end_reason, v.ended_by, v.queue_wait_ms, v.response_ms,"
    "       v.duration_ms, v.offers, v.recording_consent"
    "  FROM visits v"
    "  LEFT JOIN departments d ON d.id = v.dept_id"
    "  LEFT JOIN doctors doc ON doc.id = v.doctor_id"
    " WHERE v.id = ?1";

static int add_visit(json_t *data, sqlite3 *db, const char *visit_id)
{
    sqlite3_stmt *st = first_row(db, visit_sql, visit_id);
    if (!st)
        return TM_ENOTFOUND;
    json_t *times = json_object();
    json_object_set_new(data, "visit_id", col_text(st, 0));
    json_object_set_new(data, "patient_id", col_text(st, 1));
    json_object_set_new(data, "department_id", col_text(st, 2));
    json_object_set_new(data, "department_name", col_text(st, 3));
    json_object_set_new(data, "doctor_id", col_text(st, 4));
    json_object_set_new(data, "doctor_licence_no", col_text(st, 5));
    json_object_set_new(data, "visit_kind", col_text(st, 6));
    json_object_set_new(data, "channel", json_string("video"));
    json_object_set_new(data, "urgent", json_boolean(sqlite3_column_int(st, 7) != 0));
    json_object_set_new(data, "state", col_text(st, 8));
    json_object_set_new(data, "appointment_id", col_text(st, 9));
    json_object_set_new(times, "checked_in_at", col_time(st, 10));
    json_object_set_new(times, "offered_at", col_time(st, 11));
    json_object_set_new(times, "accepted_at", col_time(st, 12));
    /* The visit is live from the doctor's accept: that is when the call
     * starts for both sides (the regulator's startDate). */
    json_object_set_new(times, "started_at", col_time(st, 12));
    json_object_set_new(times, "ended_at", col_time(st, 13));
    json_object_set_new(data, "times", times);
    json_object_set_new(data, "end_reason", col_text(st, 14));
    json_object_set_new(data, "ended_by", col_text(st, 15));
    json_object_set_new(data, "queue_wait_ms", col_int(st, 16));
    json_object_set_new(data, "response_ms", col_int(st, 17));
    json_object_set_new(data, "duration_ms", col_int(st, 18));
    json_object_set_new(data, "offers", col_int(st, 19));
    /* Informed consent to recording as given at check-in; null: not asked. */
    json_object_set_new(data, "recording_consent",
                        sqlite3_column_type(st, 20) == SQLITE_NULL
                            ? json_null()
                            : json_boolean(sqlite3_column_int(st, 20) != 0));
    sqlite3_finalize(st);
    return 0;
}

/* The newest finished recording of the visit (a visit may restart its
 * recording after a worker failure; the last one is the one announced). */
static const char recording_sql[] =
    "SELECT id, sha256, size_bytes, duration_ms, format, state, encrypted"
    "  FROM recordings WHERE visit_id = ?1 AND state IN ('complete','incomplete')"
    " ORDER BY coalesce(finished_at, started_at) DESC, rowid DESC LIMIT 1";

static json_t *recording(sqlite3 *db, const char *visit_id)
{
    sqlite3_stmt *st = first_row(db, recording_sql, visit_id);
    if (!st)
        return json_null();
    json_t *r = json_object();
    json_object_set_new(r, "id", col_text(st, 0));
    json_object_set_new(r, "sha256", col_text(st, 1));
    json_object_set_new(r, "size", col_int(st, 2));
    json_object_set_new(r, "duration_ms", col_int(st, 3));
    json_object_set_new(r, "format", col_text(st, 4));
    json_object_set_new(
        r, "complete",
        json_boolean(strcmp((const char *)sqlite3_column_text(st, 5), "complete") == 0));
    json_object_set_new(r, "encrypted", json_boolean(sqlite3_column_int(st, 6) != 0));
    sqlite3_finalize(st);
    return r;
}

static json_t *rating(sqlite3 *db, const char *visit_id)
{
    sqlite3_stmt *st = first_row(
        db, "SELECT score, comment, created_at FROM ratings WHERE visit_id = ?1", visit_id);
    if (!st)
        return json_null();
    json_t *r = json_object();
    json_object_set_new(r, "score", col_int(st, 0));
    json_t *comment = col_text(st, 1);
    if (json_is_string(comment))
        json_object_set_new(r, "comment", comment);
    else
        json_decref(comment);
    json_object_set_new(r, "rated_at", col_time(st, 2));
    sqlite3_finalize(st);
    return r;
}

/* The signed note: who signed, when, the diagnosis code. The note text is
 * the medical record and stays at the hospital. */
static json_t *note(sqlite3 *db, const char *visit_id)
{
    sqlite3_stmt *st = first_row(db,
                                 "SELECT doctor_id, diagnosis_code, updated_at FROM notes"
                                 " WHERE visit_id = ?1 AND signed = 1"
                                 " ORDER BY updated_at DESC, id DESC LIMIT 1",
                                 visit_id);
    if (!st)
        return json_null();
    json_t *n = json_object();
    json_object_set_new(n, "doctor_id", col_text(st, 0));
    json_object_set_new(n, "diagnosis_code", col_text(st, 1));
    json_object_set_new(n, "signed_at", col_time(st, 2));
    sqlite3_finalize(st);
    return n;
}

char *tm__feed_event_payload(sqlite3 *db, const char *hospital_id, const char *type,
                             const char *visit_id)
{
    (void)hospital_id; /* in the envelope, made at delivery */
    if (!db || !type || !visit_id)
        return NULL;
    char *out = NULL;
    json_t *data = json_object();
    if (!data)
        return NULL;
    if (add_visit(data, db, visit_id) < 0)
        goto done;
    if (strcmp(type, "recording.available") == 0)
        json_object_set_new(data, "recording", recording(db, visit_id));
    else if (strcmp(type, "visit.rated") == 0)
        json_object_set_new(data, "rating", rating(db, visit_id));
    else if (strcmp(type, "visit.note_signed") == 0)
        json_object_set_new(data, "note", note(db, visit_id));
    out = json_dumps(data, JSON_COMPACT | JSON_PRESERVE_ORDER);
done:
    json_decref(data);
    return out;
}

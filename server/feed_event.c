/*
 * feed_event.c - the `data` object of a regulator feed event (schema v1).
 *
 * The store calls tm__feed_event_payload() inside the transaction that
 * changes a visit, with the visit's facts as that transaction sees them;
 * the outbox keeps the payload as text and the delivery task (feed.c) wraps
 * it in the envelope (id, seq, type, occurred_at, schema_version,
 * hospital_id). docs/regulator-feed.md is the contract for every field
 * made here.
 *
 * Identifiers only: no patient or doctor names, no note text, no chat. The
 * rating comment and a referral's advice are the free text, because the
 * regulator asks for them.
 *
 * Pure: it reads only the facts it is given, so every store backend shares it.
 */
#include "feed_event.h"
#include "telemed/common.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* "" is null: the store hands absent text as an empty string. */
static json_t *text(const char *t)
{
    return t && *t ? json_string(t) : json_null();
}

/* Negative is null: the store hands unknown amounts as -1. */
static json_t *amount(int64_t v)
{
    return v < 0 ? json_null() : json_integer(v);
}

/* 0 is null: the store hands "not yet" times as 0. */
static json_t *when(int64_t epoch_ms)
{
    if (!epoch_ms)
        return json_null();
    char buf[40];
    return json_string(tm_rfc3339(epoch_ms, buf, sizeof(buf)));
}

/* The informed consent the patient accepted at check-in: which text, when,
 * from which connection, and whether to recording. */
static json_t *consent(const tm_visit_facts *f)
{
    if (!f->has_consent)
        return json_null();
    json_t *c = json_object();
    json_object_set_new(c, "version", text(f->consent.version));
    json_object_set_new(c, "recording", json_boolean(f->consent.recording));
    json_object_set_new(c, "accepted_at", when(f->consent.accepted_ms));
    json_object_set_new(c, "session_id", text(f->consent.session_id));
    return c;
}

/* Everyone in the visit by role; only doctors are named (id, licence), a
 * patient, guest or interpreter never is. */
static json_t *participants(const tm_visit_facts *f)
{
    json_t *all = json_array();
    for (size_t i = 0; i < f->n_participants; i++) {
        json_t *p = json_object();
        json_object_set_new(p, "role", json_string(f->participants[i].role));
        if (f->participants[i].doctor_id[0]) {
            json_object_set_new(p, "doctor_id", json_string(f->participants[i].doctor_id));
            json_object_set_new(p, "licence_no", text(f->participants[i].licence_no));
        }
        json_object_set_new(p, "joined_at", when(f->participants[i].joined_ms));
        json_object_set_new(p, "left_at", when(f->participants[i].left_ms));
        json_array_append_new(all, p);
    }
    return all;
}

/* How the doctor proved who they were before accepting (细则 Art. 13). */
static json_t *doctor_verification(const tm_visit_facts *f)
{
    if (!f->doctor_check.method[0])
        return json_null();
    json_t *d = json_object();
    json_object_set_new(d, "method", text(f->doctor_check.method));
    json_object_set_new(d, "amr", text(f->doctor_check.amr));
    json_object_set_new(d, "verified_at", when(f->doctor_check.verified_ms));
    return d;
}

/* The alliance member whose department held the visit (issue 18): the
 * regulator files a visit under the organisation that gave it. */
static json_t *institution(const tm_visit_facts *f)
{
    if (!f->institution_id[0])
        return json_null();
    return json_pack("{s:o, s:o, s:o}", "id", text(f->institution_id), "name",
                     text(f->institution_name), "org_code", text(f->institution_org_code));
}

static void add_visit(json_t *data, const tm_visit_facts *f)
{
    const tm_visit *v = &f->visit;
    json_object_set_new(data, "visit_id", text(v->id));
    json_object_set_new(data, "patient_id", text(v->patient_id));
    json_object_set_new(data, "department_id", text(v->dept_id));
    json_object_set_new(data, "department_name", text(f->dept_name));
    json_object_set_new(data, "institution", institution(f));
    json_object_set_new(data, "doctor_id", text(v->doctor_id));
    json_object_set_new(data, "doctor_licence_no", text(f->doctor_licence_no));
    json_object_set_new(data, "visit_kind", text(v->kind));
    json_object_set_new(data, "channel", json_string("video"));
    json_object_set_new(data, "urgent", json_boolean(v->urgent));
    json_object_set_new(data, "state", text(v->state));
    json_object_set_new(data, "appointment_id", text(v->appointment_id));
    json_t *times = json_object();
    json_object_set_new(times, "checked_in_at", when(v->checkin_ms));
    json_object_set_new(times, "offered_at", when(v->offered_ms));
    json_object_set_new(times, "accepted_at", when(v->accepted_ms));
    /* The visit is live from the doctor's accept: that is when the call
     * starts for both sides (the regulator's startDate). */
    json_object_set_new(times, "started_at", when(v->accepted_ms));
    json_object_set_new(times, "ended_at", when(v->ended_ms));
    json_object_set_new(data, "times", times);
    json_object_set_new(data, "end_reason", text(v->end_reason));
    json_object_set_new(data, "ended_by", text(f->ended_by));
    json_object_set_new(data, "queue_wait_ms", amount(f->queue_wait_ms));
    json_object_set_new(data, "response_ms", amount(f->response_ms));
    json_object_set_new(data, "duration_ms", amount(f->duration_ms));
    json_object_set_new(data, "offers", json_integer(f->offers));
    /* A consultation reports every doctor who took part (issue 17): the
     * attending and each consulting doctor, with their licence numbers. */
    json_t *doctors = json_array();
    for (size_t i = 0; i < f->n_doctors; i++)
        json_array_append_new(
            doctors, json_pack("{s:s, s:s, s:o}", "doctor_id", f->doctors[i].doctor_id, "role",
                               f->doctors[i].role, "licence_no", text(f->doctors[i].licence_no)));
    json_object_set_new(data, "doctors", doctors);
    json_object_set_new(data, "participants", participants(f));
    /* Informed consent to recording as given at check-in; null: not asked. */
    json_object_set_new(data, "recording_consent",
                        v->recording_consent == 0 ? json_null()
                                                  : json_boolean(v->recording_consent > 0));
    json_object_set_new(data, "consent", consent(f));
    json_object_set_new(data, "doctor_verification", doctor_verification(f));
    /* The doctor's advice on terminate_and_refer: where the patient goes and
     * why, which the rules ask the hospital to show it gave. */
    json_object_set_new(data, "referral_advice", text(f->referral_advice));
}

static json_t *recording(const tm_visit_facts *f)
{
    if (!f->has_recording)
        return json_null();
    json_t *r = json_object();
    json_object_set_new(r, "id", text(f->recording.id));
    json_object_set_new(r, "sha256", text(f->recording.sha256));
    json_object_set_new(r, "size", amount(f->recording.size_bytes));
    json_object_set_new(r, "duration_ms", amount(f->recording.duration_ms));
    json_object_set_new(r, "format", text(f->recording.format));
    json_object_set_new(r, "complete", json_boolean(f->recording.complete));
    json_object_set_new(r, "encrypted", json_boolean(f->recording.encrypted));
    return r;
}

static json_t *rating(const tm_visit_facts *f)
{
    if (!f->has_rating)
        return json_null();
    json_t *r = json_object();
    json_object_set_new(r, "score", json_integer(f->rating.score));
    if (f->rating.comment[0])
        json_object_set_new(r, "comment", json_string(f->rating.comment));
    json_object_set_new(r, "rated_at", when(f->rating.rated_ms));
    return r;
}

/* The signed note: who signed, when, the diagnosis code. The note text is
 * the medical record and stays at the hospital. */
static json_t *note(const tm_visit_facts *f)
{
    if (!f->has_signed_note)
        return json_null();
    json_t *n = json_object();
    json_object_set_new(n, "doctor_id", text(f->note.doctor_id));
    json_object_set_new(n, "diagnosis_code", text(f->note.diagnosis_code));
    json_object_set_new(n, "signed_at", when(f->note.signed_ms));
    return n;
}

char *tm__feed_event_payload(const tm_visit_facts *f, const char *type)
{
    return tm__feed_event_payload_with(f, type, NULL, NULL);
}

char *tm__feed_event_payload_with(const tm_visit_facts *f, const char *type, const char *key,
                                  json_t *extra)
{
    json_t *data = json_object();
    if (!data)
        return NULL;
    add_visit(data, f);
    if (strcmp(type, "recording.available") == 0)
        json_object_set_new(data, "recording", recording(f));
    else if (strcmp(type, "visit.rated") == 0)
        json_object_set_new(data, "rating", rating(f));
    else if (strcmp(type, "visit.note_signed") == 0)
        json_object_set_new(data, "note", note(f));
    if (key)
        json_object_set(data, key, extra);
    char *out = json_dumps(data, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(data);
    return out;
}

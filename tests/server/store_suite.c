/*
 * store_suite.c - the store contract (include/telemed/store.h) tested
 * through its functions only: schedules, appointments, the visit life cycle
 * with one outbox event per reported step, refusals that write nothing,
 * recordings, the audit log, the outbox's delivery side, batch uploads and
 * the visit chain and seal. What a test
 * reads back it reads through the contract (events through
 * tm_outbox_next_batch, rows through the record and list functions), so the
 * same suite judges every backend.
 */
#include "store_suite.h"

#include "telemed/common.h"
#include "tm_test.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

static const int64_t T0 = 1764072000000LL; /* 2025-11-25T12:00:00Z */
static const char sha_a[] = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/* ---- helpers -------------------------------------------------------- */

/* Pending events of type (NULL: any) for visit_id (NULL: any), whatever
 * their retry time. */
static int count_events(tm_store *s, const char *type, const char *visit_id)
{
    tm_outbox_event *ev = NULL;
    size_t n = 0;
    CHECK_EQ_INT(tm_outbox_next_batch(s, INT64_MAX, 100000, &ev, &n), 0);
    int count = 0;
    for (size_t i = 0; i < n; i++)
        if ((!type || strcmp(ev[i].type, type) == 0) &&
            (!visit_id || strcmp(ev[i].visit_id, visit_id) == 0))
            count++;
    tm_outbox_events_free(ev, n);
    return count;
}

/* The payload of the newest pending event of type for visit_id. */
static json_t *event_payload(tm_store *s, const char *type, const char *visit_id)
{
    tm_outbox_event *ev = NULL;
    size_t n = 0;
    CHECK_EQ_INT(tm_outbox_next_batch(s, INT64_MAX, 100000, &ev, &n), 0);
    json_t *found = NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(ev[i].type, type) == 0 && strcmp(ev[i].visit_id, visit_id) == 0) {
            json_decref(found);
            found = json_loadb(ev[i].payload, ev[i].payload_len, 0, NULL);
        }
    tm_outbox_events_free(ev, n);
    CHECK(json_is_object(found));
    return found;
}

static void seed(tm_store *s)
{
    CHECK_EQ_INT(tm_store_dept_put(s, "cardio", "Cardiology"), 0);
    CHECK_EQ_INT(tm_store_doctor_put(s, "d1", "Dr One", "cardio", "LIC1", NULL), 0);
    char shift[64];
    int64_t now = tm_now_ms();
    CHECK_EQ_INT(tm_store_shift_add(s, "d1", "cardio", now - 1000, now + 3600000, 2, shift), 0);
}

static void checkin(tm_store *s, tm_visit *v, const char *patient, int64_t at)
{
    memset(v, 0, sizeof(*v));
    g_strlcpy(v->patient_id, patient, sizeof(v->patient_id));
    g_strlcpy(v->dept_id, "cardio", sizeof(v->dept_id));
    g_strlcpy(v->kind, "follow_up", sizeof(v->kind));
    v->checkin_ms = at;
    CHECK_EQ_INT(tm_store_visit_checkin(s, v, "ua/1"), 0);
}

/* An active visit: checked in, offered to d1, accepted. */
static void active_visit(tm_store *s, tm_visit *v, const char *patient)
{
    checkin(s, v, patient, tm_now_ms() - 5000);
    CHECK_EQ_INT(tm_store_visit_offer(s, v->id, "d1", tm_now_ms()), 0);
    CHECK_EQ_INT(tm_store_visit_accept(s, v->id, "d1", "ua/d", tm_now_ms()), 0);
}

static json_t *field(json_t *o, const char *key)
{
    return json_object_get(o, key);
}

/* ---- the handle ----------------------------------------------------- */

static void t_handle(const store_backend *b, const char *dir)
{
    tm_store *s = b->open("handle");
    int v = tm_store_schema_version(s);
    CHECK(v >= 1);
    CHECK(tm_store_hospital_id(s) != NULL);
    CHECK_STR(tm_store_errmsg(s), "");
    tm_store_free(s);
    s = b->open("handle"); /* reopening migrates nothing and keeps the version */
    CHECK_EQ_INT(tm_store_schema_version(s), v);
    /* A refusal leaves a message that says why, each its own. */
    CHECK(tm_store_note_save(s, "no-visit", "d1", "x", NULL, false, T0) < 0);
    char said[256];
    g_strlcpy(said, tm_store_errmsg(s), sizeof(said));
    CHECK(said[0] != '\0');
    tm_doctor_info d;
    CHECK_EQ_INT(tm_store_doctor_get(s, "nobody", &d), TM_ENOTFOUND);
    CHECK(strcmp(said, tm_store_errmsg(s)) != 0);
    g_strlcpy(said, tm_store_errmsg(s), sizeof(said));
    CHECK_EQ_INT(tm_store_shift_add(s, "nobody", "nodept", 5, 2, 1, NULL), TM_EINVAL);
    CHECK(strcmp(said, tm_store_errmsg(s)) != 0);
    g_strlcpy(said, tm_store_errmsg(s), sizeof(said));
    CHECK_EQ_INT(tm_store_rating_add(s, "no-visit", "p1", 9, NULL, T0), TM_EINVAL);
    CHECK(strcmp(said, tm_store_errmsg(s)) != 0);
    tm_store_free(s);
    tm_store_free(NULL);
}

/* ---- departments, doctors, shifts ----------------------------------- */

static void t_schedule(const store_backend *b, const char *dir)
{
    tm_store *s = b->open("schedule");
    seed(s);
    CHECK(tm_store_dept_exists(s, "cardio"));
    CHECK(!tm_store_dept_exists(s, "nodept"));
    CHECK(tm_store_dept_lookup(s, "cardio") == 1 && tm_store_dept_lookup(s, "nodept") == 0);
    CHECK_EQ_INT(tm_store_dept_put(s, "endo", "Endocrinology"), 0);
    CHECK_EQ_INT(tm_store_dept_put(s, "endo", "Endocrinology and Diabetes"), 0); /* rename */
    json_t *depts = tm_store_dept_list(s);
    CHECK_EQ_INT(json_array_size(depts), 2);
    CHECK_STR(json_string_value(field(json_array_get(depts, 0), "id")), "cardio");
    CHECK_STR(json_string_value(field(json_array_get(depts, 1), "name")),
              "Endocrinology and Diabetes");
    json_decref(depts);

    tm_doctor_info d;
    CHECK_EQ_INT(tm_store_doctor_get(s, "d1", &d), 0);
    CHECK_STR(d.dept_id, "cardio");
    CHECK_STR(d.licence_no, "LIC1");
    CHECK(d.active);
    CHECK_EQ_INT(tm_store_doctor_get(s, "nobody", &d), TM_ENOTFOUND);
    CHECK_EQ_INT(tm_store_doctor_put(s, "d2", "Dr Two", "endo", NULL, "attending"), 0);
    CHECK_EQ_INT(tm_store_doctor_put(s, "d3", "Dr Three", "nodept", NULL, NULL), TM_EINVAL);
    json_t *docs = tm_store_doctor_list(s, "endo");
    CHECK_EQ_INT(json_array_size(docs), 1);
    CHECK_STR(json_string_value(field(json_array_get(docs, 0), "id")), "d2");
    json_decref(docs);
    docs = tm_store_doctor_list(s, NULL);
    CHECK_EQ_INT(json_array_size(docs), 2);
    json_decref(docs);

    char dept[64], shift[64];
    int cap = 0;
    int64_t end = 0, now = tm_now_ms();
    CHECK_EQ_INT(tm_store_shift_current(s, "d1", NULL, now, dept, &cap, &end), 0);
    CHECK_STR(dept, "cardio");
    CHECK_EQ_INT(cap, 2);
    CHECK(end > now);
    CHECK_EQ_INT(tm_store_shift_current(s, "d1", "other", now, NULL, NULL, NULL), TM_ENOTFOUND);
    CHECK_EQ_INT(tm_store_shift_current(s, "d1", NULL, now + 7200000, NULL, NULL, NULL),
                 TM_ENOTFOUND);
    CHECK_EQ_INT(tm_store_shift_add(s, "nobody", "cardio", 1, 2, 1, shift), TM_EINVAL);
    CHECK_EQ_INT(tm_store_shift_add(s, "d1", "cardio", 5, 2, 1, shift), TM_EINVAL);
    CHECK_EQ_INT(tm_store_shift_add(s, "d1", "cardio", 1, 2, 0, shift), TM_EINVAL);
    CHECK_EQ_INT(tm_store_shift_add(s, "d2", "endo", now + 86400000, now + 90000000, 1, shift), 0);
    json_t *shifts = tm_store_shift_list(s, NULL, NULL, 0, 0);
    CHECK_EQ_INT(json_array_size(shifts), 2);
    json_decref(shifts);
    shifts = tm_store_shift_list(s, "d2", NULL, now, 0);
    CHECK_EQ_INT(json_array_size(shifts), 1);
    CHECK_STR(json_string_value(field(json_array_get(shifts, 0), "id")), shift);
    json_decref(shifts);
    shifts = tm_store_shift_list(s, NULL, "endo", 0, now + 3600000); /* ends before it starts */
    CHECK_EQ_INT(json_array_size(shifts), 0);
    json_decref(shifts);
    CHECK_EQ_INT(tm_store_shift_delete(s, shift), 0);
    CHECK_EQ_INT(tm_store_shift_delete(s, shift), TM_ENOTFOUND);
    shifts = tm_store_shift_list(s, "d2", NULL, 0, 0);
    CHECK_EQ_INT(json_array_size(shifts), 0);
    json_decref(shifts);

    CHECK_EQ_INT(tm_store_dept_delete(s, "cardio"), TM_ECONFLICT); /* doctors refer to it */
    CHECK_EQ_INT(tm_store_dept_delete(s, "nodept"), TM_ENOTFOUND);
    CHECK_EQ_INT(tm_store_dept_put(s, "empty", "Empty"), 0);
    CHECK_EQ_INT(tm_store_dept_delete(s, "empty"), 0);
    CHECK(!tm_store_dept_exists(s, "empty"));
    tm_store_free(s);
}

/* ---- appointments --------------------------------------------------- */

static void t_appointments(const store_backend *b, const char *dir)
{
    tm_store *s = b->open("appointments");
    seed(s);
    tm_appointment a = {0};
    g_strlcpy(a.patient_id, "p1", sizeof(a.patient_id));
    g_strlcpy(a.dept_id, "cardio", sizeof(a.dept_id));
    g_strlcpy(a.kind, "follow_up", sizeof(a.kind));
    a.slot_ms = T0;
    char id[64];
    CHECK_EQ_INT(tm_store_appt_create(s, &a, id), 0);
    CHECK(id[0]);
    tm_appointment bad = a;
    g_strlcpy(bad.kind, "sometime", sizeof(bad.kind));
    CHECK_EQ_INT(tm_store_appt_create(s, &bad, NULL), TM_EINVAL);
    tm_appointment got;
    CHECK_EQ_INT(tm_store_appt_get(s, id, &got), 0);
    CHECK_STR(got.status, "booked");
    CHECK_EQ_INT(got.slot_ms, T0);
    CHECK_STR(got.doctor_id, "");
    CHECK_EQ_INT(tm_store_appt_get(s, "no-appt", &got), TM_ENOTFOUND);

    got.slot_ms = T0 + 3600000;
    g_strlcpy(got.doctor_id, "d1", sizeof(got.doctor_id));
    CHECK_EQ_INT(tm_store_appt_update(s, &got), 0);
    tm_appointment again;
    CHECK_EQ_INT(tm_store_appt_get(s, id, &again), 0);
    CHECK_EQ_INT(again.slot_ms, T0 + 3600000);
    CHECK_STR(again.doctor_id, "d1");
    g_strlcpy(got.status, "lost", sizeof(got.status));
    CHECK_EQ_INT(tm_store_appt_update(s, &got), TM_EINVAL);
    g_strlcpy(got.status, "cancelled", sizeof(got.status));
    g_strlcpy(got.id, "no-appt", sizeof(got.id));
    CHECK_EQ_INT(tm_store_appt_update(s, &got), TM_ENOTFOUND);

    g_strlcpy(a.id, "apt-own", sizeof(a.id)); /* hospitals bring their own ids */
    g_strlcpy(a.patient_id, "p2", sizeof(a.patient_id));
    CHECK_EQ_INT(tm_store_appt_create(s, &a, id), 0);
    CHECK_STR(id, "apt-own");
    CHECK_EQ_INT(tm_store_appt_create(s, &a, id), TM_ECONFLICT);
    json_t *list = tm_store_appt_list(s, NULL, NULL, "cardio", "booked", 0, 0, 0);
    CHECK_EQ_INT(json_array_size(list), 2);
    json_decref(list);
    list = tm_store_appt_list(s, NULL, "p2", NULL, NULL, 0, 0, 0);
    CHECK_EQ_INT(json_array_size(list), 1);
    CHECK_STR(json_string_value(field(json_array_get(list, 0), "id")), "apt-own");
    json_decref(list);
    list = tm_store_appt_list(s, NULL, NULL, NULL, NULL, T0 + 1, 0, 0);
    CHECK_EQ_INT(json_array_size(list), 1); /* the moved one */
    json_decref(list);
    /* By institution: cardio is the core's (no institution of its own). */
    list = tm_store_appt_list(s, tm_store_hospital_id(s), NULL, NULL, NULL, 0, 0, 0);
    CHECK_EQ_INT(json_array_size(list), 2);
    json_decref(list);
    list = tm_store_appt_list(s, "county-x", NULL, NULL, NULL, 0, 0, 0);
    CHECK_EQ_INT(json_array_size(list), 0);
    json_decref(list);
    tm_store_free(s);
}

/* ---- visits --------------------------------------------------------- */

static void t_visit_lifecycle(const store_backend *b, const char *dir)
{
    tm_store *s = b->open("lifecycle");
    seed(s);
    tm_appointment a = {0};
    g_strlcpy(a.patient_id, "p1", sizeof(a.patient_id));
    g_strlcpy(a.dept_id, "cardio", sizeof(a.dept_id));
    g_strlcpy(a.kind, "follow_up", sizeof(a.kind));
    a.slot_ms = tm_now_ms();
    char appt[64];
    CHECK_EQ_INT(tm_store_appt_create(s, &a, appt), 0);

    tm_visit v = {0};
    g_strlcpy(v.patient_id, "p1", sizeof(v.patient_id));
    g_strlcpy(v.dept_id, "cardio", sizeof(v.dept_id));
    g_strlcpy(v.appointment_id, appt, sizeof(v.appointment_id));
    g_strlcpy(v.kind, "follow_up", sizeof(v.kind));
    v.recording_consent = 1;
    v.checkin_ms = tm_now_ms() - 5000;
    CHECK_EQ_INT(tm_store_visit_checkin(s, &v, "ua/1"), 0);
    CHECK(v.id[0]);
    CHECK_STR(v.state, "waiting");
    CHECK_EQ_INT(count_events(s, "visit.checked_in", v.id), 1);
    tm_appointment got_a;
    CHECK_EQ_INT(tm_store_appt_get(s, appt, &got_a), 0);
    CHECK_STR(got_a.status, "arrived");
    tm_visit got;
    CHECK_EQ_INT(tm_store_visit_get(s, v.id, &got), 0);
    CHECK_EQ_INT(got.recording_consent, 1);
    CHECK_EQ_INT(got.slot_ms, a.slot_ms);

    /* Accepting an offer that was never made is refused and writes nothing. */
    CHECK_EQ_INT(tm_store_visit_accept(s, v.id, "d1", "ua", tm_now_ms()), TM_ECONFLICT);
    CHECK_EQ_INT(count_events(s, NULL, NULL), 1);
    CHECK_EQ_INT(tm_store_visit_unoffer(s, v.id, "declined", tm_now_ms()), TM_ECONFLICT);
    CHECK_EQ_INT(tm_store_visit_offer(s, "no-visit", "d1", tm_now_ms()), TM_ENOTFOUND);
    CHECK_EQ_INT(tm_store_visit_offer(s, v.id, "d1", tm_now_ms()), 0);
    CHECK_EQ_INT(tm_store_visit_offer(s, v.id, "d1", tm_now_ms()), TM_ECONFLICT);
    CHECK_EQ_INT(tm_store_visit_unoffer(s, v.id, "declined", tm_now_ms()), 0);
    CHECK_EQ_INT(tm_store_visit_offer(s, v.id, "d1", tm_now_ms()), 0);
    /* Another doctor cannot take an offer made to d1. */
    CHECK_EQ_INT(tm_store_visit_accept(s, v.id, "d9", "ua", tm_now_ms()), TM_EPERM);
    CHECK_EQ_INT(tm_store_visit_get(s, v.id, &got), 0);
    CHECK_STR(got.state, "offered");
    CHECK_STR(got.doctor_id, "d1");
    CHECK_EQ_INT(tm_store_visit_accept(s, v.id, "d1", "ua/d", tm_now_ms()), 0);
    CHECK_EQ_INT(count_events(s, "visit.started", v.id), 1);

    /* A supervisor watches; participants come and go. */
    CHECK_EQ_INT(tm_store_participant_join(s, v.id, "s1", "supervisor", "ua/s", tm_now_ms()), 0);
    CHECK_EQ_INT(tm_store_participant_join(s, v.id, "s1", "janitor", "ua/s", tm_now_ms()),
                 TM_EINVAL);
    CHECK_EQ_INT(tm_store_participant_join(s, "no-visit", "s1", "supervisor", NULL, tm_now_ms()),
                 TM_EINVAL);
    CHECK_EQ_INT(tm_store_participant_leave(s, v.id, "s1", "left", tm_now_ms()), 0);
    CHECK_EQ_INT(tm_store_participant_leave(s, v.id, "nobody", "left", tm_now_ms()), 0);

    int64_t msg = 0, msg2 = 0;
    CHECK_EQ_INT(tm_store_chat_add(s, v.id, "p1", "patient", "hello doctor", tm_now_ms(), &msg), 0);
    CHECK_EQ_INT(tm_store_chat_add(s, v.id, "d1", "doctor", "", tm_now_ms(), &msg2), 0);
    CHECK(msg > 0 && msg2 > msg);
    CHECK(tm_store_chat_add(s, "no-visit", "p1", "patient", "x", tm_now_ms(), NULL) < 0);
    CHECK_EQ_INT(tm_store_note_save(s, v.id, "d1", "draft", NULL, false, tm_now_ms()), 0);
    CHECK_EQ_INT(count_events(s, "visit.note_signed", v.id), 0);
    json_t *released = tm_store_notes_signed(s, v.id);
    CHECK_EQ_INT(json_array_size(released), 0); /* a draft is not the patient's */
    json_decref(released);
    CHECK_EQ_INT(tm_store_note_save(s, v.id, "d1", "final", "I10", true, tm_now_ms()), 0);
    released = tm_store_notes_signed(s, v.id);
    CHECK_EQ_INT(json_array_size(released), 1);
    CHECK_STR(json_string_value(field(json_array_get(released, 0), "body")), "final");
    CHECK_STR(json_string_value(field(json_array_get(released, 0), "diagnosis_code")), "I10");
    CHECK(json_is_string(field(json_array_get(released, 0), "signed_at")));
    json_decref(released);
    /* The newest messages, oldest first. */
    json_t *recent = tm_store_chat_recent(s, v.id, 1);
    CHECK_EQ_INT(json_array_size(recent), 1);
    CHECK(json_integer_value(field(json_array_get(recent, 0), "id")) == msg2);
    json_decref(recent);
    recent = tm_store_chat_recent(s, v.id, 200);
    CHECK_EQ_INT(json_array_size(recent), 2);
    CHECK_STR(json_string_value(field(json_array_get(recent, 0), "body")), "hello doctor");
    json_decref(recent);
    CHECK_EQ_INT(tm_store_note_save(s, v.id, "d1", "rewrite", NULL, true, tm_now_ms()),
                 TM_ECONFLICT);
    CHECK_EQ_INT(count_events(s, "visit.note_signed", v.id), 1);
    CHECK_EQ_INT(tm_store_stats_add(s, v.id, "p1", "in", "video", "{\"packets\":1200,\"lost\":3}",
                                    tm_now_ms()),
                 0);
    CHECK(tm_store_stats_add(s, "no-visit", "p1", "in", "video", "{}", tm_now_ms()) < 0);
    /* Gaps in the media: one that came back, one that never did; bad ones refused. */
    int64_t gap_at = tm_now_ms();
    CHECK_EQ_INT(tm_store_interruption_add(s, v.id, "p1", "patient", gap_at, gap_at + 12000), 0);
    CHECK_EQ_INT(tm_store_interruption_add(s, v.id, "d1", "doctor", gap_at + 20000, 0), 0);
    CHECK_EQ_INT(tm_store_interruption_add(s, v.id, "p1", "patient", gap_at, gap_at - 1),
                 TM_EINVAL);
    CHECK_EQ_INT(tm_store_interruption_add(s, v.id, "", "patient", gap_at, 0), TM_EINVAL);
    CHECK_EQ_INT(tm_store_interruption_add(s, "no-visit", "p1", "patient", gap_at, 0),
                 TM_ECONFLICT);

    CHECK_EQ_INT(tm_store_visit_end(s, v.id, "completed", "d1", tm_now_ms()), 0);
    CHECK_EQ_INT(tm_store_visit_end(s, v.id, "completed", "d1", tm_now_ms()), TM_ECONFLICT);
    CHECK_EQ_INT(tm_store_visit_end(s, "no-visit", "completed", "d1", tm_now_ms()), TM_ENOTFOUND);
    CHECK_EQ_INT(count_events(s, "visit.ended", v.id), 1);
    CHECK_EQ_INT(tm_store_appt_get(s, appt, &got_a), 0);
    CHECK_STR(got_a.status, "fulfilled");

    char long_comment[TM_RATING_COMMENT_MAX + 2];
    memset(long_comment, 'x', sizeof(long_comment) - 1);
    long_comment[sizeof(long_comment) - 1] = '\0';
    CHECK_EQ_INT(tm_store_rating_add(s, v.id, "p1", 6, NULL, tm_now_ms()), TM_EINVAL);
    CHECK_EQ_INT(tm_store_rating_add(s, v.id, "p1", 5, long_comment, tm_now_ms()), TM_EINVAL);
    CHECK_EQ_INT(tm_store_rating_add(s, v.id, "p1", 5, "great", tm_now_ms()), 0);
    CHECK_EQ_INT(tm_store_rating_add(s, v.id, "p1", 4, NULL, tm_now_ms()), TM_ECONFLICT);
    CHECK_EQ_INT(count_events(s, "visit.rated", v.id), 1);

    json_t *rec = tm_store_visit_record(s, v.id);
    CHECK(rec != NULL);
    CHECK_STR(json_string_value(field(rec, "state")), "ended");
    CHECK_STR(json_string_value(field(rec, "dept_name")), "Cardiology");
    CHECK_STR(json_string_value(field(rec, "ended_by")), "d1");
    CHECK(json_integer_value(field(rec, "response_ms")) >= 5000);
    json_t *parts = field(rec, "participants");
    CHECK_EQ_INT(json_array_size(parts), 3);
    for (size_t i = 0; i < json_array_size(parts); i++)
        CHECK(json_is_string(field(json_array_get(parts, i), "left_at")));
    json_t *offers = field(rec, "offers");
    CHECK_EQ_INT(json_array_size(offers), 2);
    CHECK_STR(json_string_value(field(json_array_get(offers, 0), "outcome")), "declined");
    CHECK_STR(json_string_value(field(json_array_get(offers, 1), "outcome")), "accepted");
    json_t *notes = field(rec, "notes");
    CHECK_EQ_INT(json_array_size(notes), 1);
    CHECK_STR(json_string_value(field(json_array_get(notes, 0), "body")), "final");
    CHECK(json_is_true(field(json_array_get(notes, 0), "signed")));
    CHECK_EQ_INT(json_array_size(field(rec, "chat")), 2);
    CHECK_EQ_INT(json_integer_value(field(field(rec, "rating"), "score")), 5);
    json_t *stats = field(rec, "stream_stats");
    CHECK_EQ_INT(json_array_size(stats), 1);
    CHECK_EQ_INT(json_integer_value(field(field(json_array_get(stats, 0), "summary"), "lost")), 3);
    json_t *gaps = field(rec, "interruptions");
    CHECK_EQ_INT(json_array_size(gaps), 2);
    CHECK_STR(json_string_value(field(json_array_get(gaps, 0), "user_id")), "p1");
    CHECK_STR(json_string_value(field(json_array_get(gaps, 0), "role")), "patient");
    CHECK_EQ_INT(json_integer_value(field(json_array_get(gaps, 0), "duration_ms")), 12000);
    CHECK(json_is_null(field(json_array_get(gaps, 1), "ended_at")));
    CHECK(json_is_null(field(json_array_get(gaps, 1), "duration_ms")));
    json_decref(rec);
    CHECK(tm_store_visit_record(s, "no-visit") == NULL);

    json_t *fig = NULL;
    CHECK_EQ_INT(tm_store_doctor_figures(s, "d1", 0, &fig), 0);
    CHECK_EQ_INT(json_integer_value(field(fig, "visits")), 1);
    CHECK_EQ_INT(json_integer_value(field(fig, "ratings")), 1);
    json_decref(fig);

    /* Every event carries a JSON object and a distinct event id. */
    tm_outbox_event *ev = NULL;
    size_t n = 0;
    CHECK_EQ_INT(tm_outbox_next_batch(s, INT64_MAX, 100, &ev, &n), 0);
    CHECK_EQ_INT(n, 5);
    for (size_t i = 0; i < n; i++) {
        json_t *p = json_loadb(ev[i].payload, ev[i].payload_len, 0, NULL);
        CHECK(json_is_object(p));
        json_decref(p);
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(ev[i].event_id, ev[j].event_id) != 0);
    }
    tm_outbox_events_free(ev, n);
    tm_store_free(s);
}

static void count_visit(const tm_visit *v, void *user)
{
    (void)v;
    (*(int *)user)++;
}

/* What a step leaves when it fails is nothing, however its statements were
 * sent (on PostgreSQL in one pipeline), and a refused step's answers are
 * its own: the next step with the same arguments runs afresh. */
static void t_failed_steps_leave_nothing(const store_backend *b, const char *dir)
{
    (void)dir;
    tm_store *s = b->open("failed_steps");
    seed(s);
    tm_visit v = {0};
    g_strlcpy(v.patient_id, "p-nodept", sizeof(v.patient_id));
    g_strlcpy(v.dept_id, "no-such-dept", sizeof(v.dept_id));
    g_strlcpy(v.kind, "follow_up", sizeof(v.kind));
    v.checkin_ms = tm_now_ms();
    CHECK_EQ_INT(tm_store_visit_checkin(s, &v, "ua/1"), TM_ECONFLICT);
    CHECK_EQ_INT(count_events(s, NULL, NULL), 0);
    int waiting = 0;
    CHECK_EQ_INT(tm_store_visit_foreach_state(s, "waiting", count_visit, &waiting), 0);
    CHECK_EQ_INT(waiting, 0);

    checkin(s, &v, "p-repeat", tm_now_ms() - 5000);
    int64_t at = tm_now_ms();
    CHECK_EQ_INT(tm_store_visit_accept(s, v.id, "d1", "ua/d", at), TM_ECONFLICT);
    CHECK_EQ_INT(tm_store_visit_offer(s, v.id, "d1", at), 0);
    CHECK_EQ_INT(tm_store_visit_accept(s, v.id, "d1", "ua/d", at), 0);
    tm_visit got;
    CHECK_EQ_INT(tm_store_visit_get(s, v.id, &got), 0);
    CHECK_STR(got.state, "active");
    CHECK(got.accepted_ms == at);
    CHECK_EQ_INT(count_events(s, "visit.started", v.id), 1);
    tm_store_free(s);
}

/* The facts a regulator event is built from, as the contract states them. */
/* Counts visit facts; the one expected is d1's rated visit of t_visit_facts. */
static void first_visit_fact(const tm_figure_fact *f, void *user)
{
    if (f->kind != TM_FACT_VISIT)
        return;
    CHECK_STR(f->doctor_id, "d1");
    CHECK_EQ_INT(f->wait_ms, 61000);
    CHECK_EQ_INT(f->score, 4);
    CHECK(f->comment);
    (*(int *)user)++;
}

static void t_visit_facts(const store_backend *b, const char *dir)
{
    tm_store *s = b->open("facts");
    seed(s);
    tm_visit v;
    checkin(s, &v, "p1", T0);
    tm_visit_facts f;
    CHECK_EQ_INT(tm_store_visit_facts(s, "no-visit", &f), TM_ENOTFOUND);
    CHECK_EQ_INT(tm_store_visit_facts(s, v.id, &f), 0);
    CHECK_STR(f.visit.state, "waiting");
    CHECK_STR(f.dept_name, "Cardiology");
    CHECK_STR(f.doctor_licence_no, "");
    CHECK_EQ_INT(f.response_ms, -1);
    CHECK_EQ_INT(f.duration_ms, -1);
    CHECK_EQ_INT(f.visit.recording_consent, 0);
    CHECK(!f.has_recording && !f.has_rating && !f.has_signed_note);

    CHECK_EQ_INT(tm_store_visit_offer(s, v.id, "d1", T0 + 1000), 0);
    CHECK_EQ_INT(tm_store_visit_accept(s, v.id, "d1", "ua", T0 + 61000), 0);
    CHECK_EQ_INT(tm_store_visit_end(s, v.id, "completed", "d1", T0 + 661000), 0);
    CHECK_EQ_INT(tm_store_note_save(s, v.id, "d1", "text", "I10", true, T0 + 700000), 0);
    CHECK_EQ_INT(tm_store_rating_add(s, v.id, "p1", 4, "fine", T0 + 710000), 0);
    char rec[TM_RECORDING_ID_LEN];
    CHECK_EQ_INT(tm_recording_start(s, v.id, "/r.mkv", "matroska", true, T0 + 61000, rec), 0);
    CHECK_EQ_INT(tm_recording_finish(s, rec, 4096, 600000, sha_a, 0, T0 + 662000), 0);
    CHECK_EQ_INT(tm_store_visit_facts(s, v.id, &f), 0);
    CHECK_STR(f.visit.state, "ended");
    CHECK_STR(f.doctor_licence_no, "LIC1");
    CHECK_STR(f.ended_by, "d1");
    CHECK_EQ_INT(f.response_ms, 61000);
    CHECK_EQ_INT(f.queue_wait_ms, 61000);
    CHECK_EQ_INT(f.duration_ms, 600000);
    CHECK_EQ_INT(f.offers, 1);
    CHECK(f.has_recording && f.recording.complete && f.recording.encrypted);
    CHECK_STR(f.recording.id, rec);
    CHECK_STR(f.recording.sha256, sha_a);
    CHECK_EQ_INT(f.recording.size_bytes, 4096);
    CHECK(f.has_rating);
    CHECK_EQ_INT(f.rating.score, 4);
    CHECK_STR(f.rating.comment, "fine");
    CHECK_EQ_INT(f.rating.rated_ms, T0 + 710000);
    CHECK(f.has_signed_note);
    CHECK_STR(f.note.diagnosis_code, "I10");
    CHECK_EQ_INT(f.note.signed_ms, T0 + 700000);

    /* The same visit as the figures count it. */
    int facts = 0;
    CHECK_EQ_INT(tm_store_figure_facts(s, T0, T0 + 86400000, first_visit_fact, &facts), 0);
    CHECK_EQ_INT(facts, 1);
    tm_store_free(s);
}

/* The evidence around a visit: the patient's consent at check-in, a
 * guest's notice, the doctor's identity check at accept and the advice of a
 * terminate_and_refer, each kept on the record and in the facts. */
static void t_visit_evidence(const store_backend *b, const char *dir)
{
    tm_store *s = b->open("evidence");
    seed(s);
    tm_visit v = {0};
    g_strlcpy(v.patient_id, "p1", sizeof(v.patient_id));
    g_strlcpy(v.dept_id, "cardio", sizeof(v.dept_id));
    g_strlcpy(v.kind, "follow_up", sizeof(v.kind));
    g_strlcpy(v.consent_version, "2026.1", sizeof(v.consent_version));
    g_strlcpy(v.consent_session, "ws-1", sizeof(v.consent_session));
    v.recording_consent = 1;
    v.checkin_ms = T0;
    CHECK_EQ_INT(tm_store_visit_checkin(s, &v, "ua/1"), 0);
    tm_visit_facts *f = g_new0(tm_visit_facts, 1);
    CHECK_EQ_INT(tm_store_visit_facts(s, v.id, f), 0);
    CHECK(f->has_consent && f->consent.recording);
    CHECK_STR(f->consent.version, "2026.1");
    CHECK_STR(f->consent.session_id, "ws-1");
    CHECK_EQ_INT(f->consent.accepted_ms, T0);
    CHECK_STR(f->doctor_check.method, "");

    tm_consent guest = {.kind = "guest",
                        .user_id = "g1",
                        .role = "guest",
                        .version = "2026.1",
                        .recording = true,
                        .session_id = "ws-2",
                        .accepted_ms = T0 + 90000};
    CHECK_EQ_INT(tm_store_consent_add(s, v.id, &guest), 0);
    tm_consent bad = guest;
    g_strlcpy(bad.kind, "bystander", sizeof(bad.kind));
    CHECK_EQ_INT(tm_store_consent_add(s, v.id, &bad), TM_EINVAL);
    bad = guest;
    bad.version[0] = 0;
    CHECK_EQ_INT(tm_store_consent_add(s, v.id, &bad), TM_EINVAL);

    tm_doctor_check check = {.method = "token", .amr = "face", .verified_ms = T0 - 600000};
    CHECK_EQ_INT(tm_store_visit_offer(s, v.id, "d1", T0 + 1000), 0);
    CHECK_EQ_INT(tm_store_visit_accept_checked(s, v.id, "d1", "ua/d", &check, T0 + 2000), 0);
    CHECK_EQ_INT(tm_store_visit_refer(s, v.id, "d1", "", T0 + 3000), TM_EINVAL);
    CHECK_EQ_INT(tm_store_visit_refer(s, v.id, "d1", "Cardiology clinic, building 2: ECG today",
                                      T0 + 600000),
                 0);
    CHECK_EQ_INT(tm_store_visit_refer(s, v.id, "d1", "again", T0 + 600001), TM_ECONFLICT);
    CHECK_EQ_INT(tm_store_visit_facts(s, v.id, f), 0);
    CHECK_STR(f->visit.end_reason, "terminate_and_refer");
    CHECK_STR(f->referral_advice, "Cardiology clinic, building 2: ECG today");
    CHECK_STR(f->doctor_check.method, "token");
    CHECK_STR(f->doctor_check.amr, "face");
    CHECK_EQ_INT(f->doctor_check.verified_ms, T0 - 600000);

    json_t *rec = tm_store_visit_record(s, v.id);
    CHECK(rec != NULL);
    CHECK_STR(json_string_value(field(rec, "referral_advice")),
              "Cardiology clinic, building 2: ECG today");
    json_t *consents = field(rec, "consents");
    CHECK_EQ_INT(json_array_size(consents), 2);
    CHECK_STR(json_string_value(field(json_array_get(consents, 0), "kind")), "patient");
    CHECK_STR(json_string_value(field(json_array_get(consents, 0), "session_id")), "ws-1");
    CHECK_STR(json_string_value(field(json_array_get(consents, 1), "kind")), "guest");
    json_t *dv = field(rec, "doctor_verification");
    CHECK_STR(json_string_value(field(dv, "method")), "token");
    json_decref(rec);

    /* A waiting visit is not referred: it has no doctor yet. */
    tm_visit w;
    checkin(s, &w, "p2", T0);
    CHECK_EQ_INT(tm_store_visit_refer(s, w.id, "d1", "advice", T0 + 1000), TM_ECONFLICT);
    CHECK_EQ_INT(tm_store_visit_facts(s, w.id, f), 0);
    CHECK(!f->has_consent);
    CHECK_STR(f->visit.state, "waiting");
    rec = tm_store_visit_record(s, w.id);
    CHECK(json_is_null(field(rec, "doctor_verification")));
    CHECK_EQ_INT(json_array_size(field(rec, "consents")), 0);
    json_decref(rec);
    g_free(f);
    tm_store_free(s);
}

static void expect_waiting(const tm_visit *v, void *user)
{
    CHECK_STR(v->state, "waiting");
    (*(int *)user)++;
}

static void t_refusals_and_restore(const store_backend *b, const char *dir)
{
    tm_store *s = b->open("refusals");
    seed(s);
    tm_visit v;
    checkin(s, &v, "p2", tm_now_ms());
    tm_visit bad = v;
    g_strlcpy(bad.dept_id, "nodept", sizeof(bad.dept_id));
    CHECK(tm_store_visit_checkin(s, &bad, NULL) < 0); /* unknown department: nothing written */
    g_strlcpy(bad.kind, "urgent-ish", sizeof(bad.kind));
    CHECK_EQ_INT(tm_store_visit_checkin(s, &bad, NULL), TM_EINVAL);
    json_t *all = tm_store_visit_list(s, NULL, NULL, NULL, NULL, 0, 0, 0, 0);
    CHECK_EQ_INT(json_array_size(all), 1);
    json_decref(all);
    CHECK_EQ_INT(count_events(s, NULL, NULL), 1);

    tm_visit w;
    active_visit(s, &w, "p3");
    int n = 0;
    CHECK_EQ_INT(tm_store_visit_foreach_state(s, "waiting", expect_waiting, &n), 0);
    CHECK_EQ_INT(n, 1);
    json_t *counts = NULL;
    CHECK_EQ_INT(tm_store_visit_counts(s, 0, &counts), 0);
    CHECK_EQ_INT(json_integer_value(field(counts, "waiting")), 1);
    CHECK_EQ_INT(json_integer_value(field(counts, "active")), 1);
    CHECK(field(counts, "ended") == NULL);
    json_decref(counts);
    CHECK_EQ_INT(tm_store_visit_counts(s, tm_now_ms() + 60000, &counts), 0);
    CHECK_EQ_INT(json_object_size(counts), 0);
    json_decref(counts);

    CHECK_EQ_INT(tm_store_visit_end(s, v.id, "patient_left", "p2", tm_now_ms()), 0);
    tm_visit got;
    CHECK_EQ_INT(tm_store_visit_get(s, v.id, &got), 0);
    CHECK_STR(got.state, "cancelled");
    CHECK_STR(got.end_reason, "patient_left");
    CHECK_EQ_INT(tm_store_visit_get(s, "nope", &got), TM_ENOTFOUND);

    json_t *list = tm_store_visit_list(s, "cancelled", "cardio", NULL, "p2", 0, 0, 10, 0);
    CHECK_EQ_INT(json_array_size(list), 1);
    CHECK_STR(json_string_value(field(json_array_get(list, 0), "id")), v.id);
    json_decref(list);
    list = tm_store_visit_list(s, NULL, NULL, "d1", NULL, 0, 0, 10, 0);
    CHECK_EQ_INT(json_array_size(list), 1);
    CHECK_STR(json_string_value(field(json_array_get(list, 0), "id")), w.id);
    json_decref(list);
    list = tm_store_visit_list(s, NULL, NULL, NULL, NULL, 0, 0, 10, 1); /* offset */
    CHECK_EQ_INT(json_array_size(list), 1);
    json_decref(list);
    tm_store_free(s);
}

/* ---- recordings ----------------------------------------------------- */

static void t_recording_start_finish(const store_backend *b, const char *dir)
{
    tm_store *s = b->open("rec-finish");
    seed(s);
    tm_visit v;
    active_visit(s, &v, "p1");
    char rec[TM_RECORDING_ID_LEN];
    CHECK_EQ_INT(tm_recording_start(s, "no-such-visit", "/x.mkv", "matroska", false, 1, rec),
                 TM_ENOTFOUND);
    int64_t t0 = tm_now_ms();
    CHECK_EQ_INT(tm_recording_start(s, v.id, "/rec/v.mkv", "matroska", true, t0, rec), 0);
    CHECK(g_str_has_prefix(rec, "rec-"));

    /* Refusals change nothing and emit nothing. */
    CHECK_EQ_INT(tm_recording_finish(s, rec, 10, 10, "ABC", 0, t0), TM_EINVAL);
    CHECK_EQ_INT(tm_recording_finish(s, "rec-none", 10, 10, sha_a, 0, t0), TM_ENOTFOUND);
    CHECK_EQ_INT(tm_recording_set_plain_sha256(s, rec, "not-hex"), TM_EINVAL);
    CHECK_EQ_INT(tm_recording_set_plain_sha256(s, "rec-none", sha_a), TM_ENOTFOUND);
    CHECK_EQ_INT(count_events(s, "recording.available", NULL), 0);

    const char plain[] = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";
    CHECK_EQ_INT(tm_recording_set_plain_sha256(s, rec, plain), 0);
    CHECK_EQ_INT(tm_recording_finish(s, rec, 123456, 600000, sha_a, 7, t0 + 600000), 0);
    CHECK_EQ_INT(count_events(s, "recording.available", v.id), 1);
    /* The event carries the recording as it is in the same transaction. */
    json_t *payload = event_payload(s, "recording.available", v.id);
    json_t *r = field(payload, "recording");
    CHECK_STR(json_string_value(field(r, "sha256")), sha_a);
    CHECK_EQ_INT(json_integer_value(field(r, "size")), 123456);
    CHECK(json_is_true(field(r, "complete")));
    CHECK(json_is_true(field(r, "encrypted")));
    json_decref(payload);

    /* Twice is a conflict, and still one event. */
    CHECK_EQ_INT(tm_recording_finish(s, rec, 1, 1, sha_a, 0, t0), TM_ECONFLICT);
    CHECK_EQ_INT(tm_recording_fail(s, rec, "late", 0, t0), TM_ECONFLICT);
    CHECK_EQ_INT(count_events(s, "recording.available", v.id), 1);

    json_t *got = tm_recording_get(s, rec);
    CHECK(got != NULL);
    CHECK_STR(json_string_value(field(got, "state")), "complete");
    CHECK_STR(json_string_value(field(got, "visit_id")), v.id);
    CHECK_STR(json_string_value(field(got, "path")), "/rec/v.mkv");
    CHECK_STR(json_string_value(field(got, "plain_sha256")), plain);
    CHECK_EQ_INT(json_integer_value(field(got, "duration_ms")), 600000);
    CHECK_EQ_INT(json_integer_value(field(got, "dropped_packets")), 7);
    CHECK(json_is_true(field(got, "encrypted")));
    CHECK(json_is_string(field(got, "finished_at")));
    CHECK(json_is_null(field(got, "deleted_at")));
    json_decref(got);
    CHECK(tm_recording_get(s, "rec-none") == NULL);

    json_t *vr = tm_store_visit_record(s, v.id);
    CHECK_EQ_INT(json_array_size(field(vr, "recordings")), 1);
    CHECK_EQ_INT(json_integer_value(field(json_array_get(field(vr, "recordings"), 0), "part")), 1);
    json_decref(vr);

    /* A late joiner's part is a row of its own, numbered. */
    char rec2[TM_RECORDING_ID_LEN];
    CHECK_EQ_INT(tm_recording_start(s, v.id, "/rec/v-part2.mkv", "matroska", true, t0 + 1, rec2),
                 0);
    CHECK_EQ_INT(tm_recording_set_part(s, rec2, 0), TM_EINVAL);
    CHECK_EQ_INT(tm_recording_set_part(s, "rec-none", 2), TM_ENOTFOUND);
    CHECK_EQ_INT(tm_recording_set_part(s, rec2, 2), 0);
    got = tm_recording_get(s, rec2);
    CHECK_EQ_INT(json_integer_value(field(got, "part")), 2);
    json_decref(got);
    vr = tm_store_visit_record(s, v.id);
    CHECK_EQ_INT(json_array_size(field(vr, "recordings")), 2);
    CHECK_EQ_INT(json_integer_value(field(json_array_get(field(vr, "recordings"), 1), "part")), 2);
    json_decref(vr);
    tm_store_free(s);
}

static void t_recording_fail(const store_backend *b, const char *dir)
{
    tm_store *s = b->open("rec-fail");
    seed(s);
    tm_visit v;
    active_visit(s, &v, "p1");
    char rec[TM_RECORDING_ID_LEN];
    CHECK_EQ_INT(tm_recording_start(s, v.id, "/rec/f.mkv", "matroska", false, tm_now_ms(), rec), 0);
    CHECK_EQ_INT(tm_recording_fail(s, rec, "filesink0: No space left on device", 42, tm_now_ms()),
                 0);
    json_t *got = tm_recording_get(s, rec);
    CHECK_STR(json_string_value(field(got, "state")), "failed");
    CHECK(strstr(json_string_value(field(got, "failure")), "No space"));
    CHECK_EQ_INT(json_integer_value(field(got, "dropped_packets")), 42);
    json_decref(got);
    CHECK_EQ_INT(count_events(s, "recording.available", NULL), 0);
    CHECK_EQ_INT(tm_recording_fail(s, "rec-none", "x", 0, 0), TM_ENOTFOUND);
    tm_store_free(s);
}

/* Rows a crash left recording become incomplete at the next start, with
 * the partial file's size and hash and an event; a missing file makes the
 * row failed instead. */
static void t_recording_recover(const store_backend *b, const char *dir)
{
    tm_store *s = b->open("rec-recover");
    seed(s);
    tm_visit v, v2;
    active_visit(s, &v, "p1");
    active_visit(s, &v2, "p2");
    char rec1[TM_RECORDING_ID_LEN], rec2[TM_RECORDING_ID_LEN], rec3[TM_RECORDING_ID_LEN];
    char *partial = g_build_filename(dir, "partial.mkv", NULL);
    char *gone = g_build_filename(dir, "gone.mkv", NULL);
    const char content[] = "partial matroska bytes";
    CHECK(g_file_set_contents(partial, content, sizeof(content) - 1, NULL));
    CHECK_EQ_INT(tm_recording_start(s, v.id, partial, "matroska", false, tm_now_ms(), rec1), 0);
    CHECK_EQ_INT(tm_recording_start(s, v2.id, gone, "matroska", false, tm_now_ms(), rec2), 0);
    CHECK_EQ_INT(tm_recording_start(s, v2.id, "/x.mkv", "matroska", false, tm_now_ms(), rec3), 0);
    CHECK_EQ_INT(tm_recording_finish(s, rec3, 1, 1, sha_a, 0, tm_now_ms()), 0);
    tm_store_free(s); /* "the server died" */

    s = b->open("rec-recover");
    int n = -1;
    CHECK_EQ_INT(tm_recording_recover(s, tm_now_ms(), &n), 0);
    CHECK_EQ_INT(n, 2);
    json_t *r1 = tm_recording_get(s, rec1), *r2 = tm_recording_get(s, rec2),
           *r3 = tm_recording_get(s, rec3);
    CHECK_STR(json_string_value(field(r1, "state")), "incomplete");
    char *want = g_compute_checksum_for_string(G_CHECKSUM_SHA256, content, -1);
    CHECK_STR(json_string_value(field(r1, "sha256")), want);
    CHECK_EQ_INT(json_integer_value(field(r1, "size_bytes")), sizeof(content) - 1);
    CHECK_STR(json_string_value(field(r2, "state")), "failed");
    CHECK_STR(json_string_value(field(r3, "state")), "complete"); /* untouched */
    json_t *payload = event_payload(s, "recording.available", v.id);
    CHECK(json_is_false(field(field(payload, "recording"), "complete")));
    json_decref(payload);
    CHECK_EQ_INT(count_events(s, "recording.available", v2.id), 1); /* rec3's only */
    /* Nothing left to recover the second time. */
    CHECK_EQ_INT(tm_recording_recover(s, tm_now_ms(), NULL), 0);
    CHECK_EQ_INT(tm_recording_recover(s, tm_now_ms(), &n), 0);
    CHECK_EQ_INT(n, 0);
    json_decref(r1);
    json_decref(r2);
    json_decref(r3);
    g_free(want);
    g_free(partial);
    g_free(gone);
    tm_store_free(s);
}

static const char *state_of(tm_store *s, const char *rec, char out[16])
{
    json_t *o = tm_recording_get(s, rec);
    g_strlcpy(out, json_string_value(field(o, "state")), 16);
    json_decref(o);
    return out;
}

/* A live visit whose node died goes on on another node (docs/cluster.md):
 * the dead node's segment is closed there when its file can be read, the
 * next segment is the new node's, and each node's start recovers only the
 * rows it wrote. */
static void t_recording_segments(const store_backend *b, const char *dir)
{
    tm_store *s = b->open("rec-segments");
    seed(s);
    tm_visit v, v2;
    active_visit(s, &v, "p1");
    active_visit(s, &v2, "p2");
    char a1[TM_RECORDING_ID_LEN], a2[TM_RECORDING_ID_LEN], other[TM_RECORDING_ID_LEN],
        b1[TM_RECORDING_ID_LEN];
    char *on_a = g_build_filename(dir, "seg-a.mkv", NULL);
    char *on_b = g_build_filename(dir, "seg-b.mkv", NULL);
    char *unread = g_build_filename(dir, "on-a-disk-only.mkv", NULL);
    const char content[] = "segment one";
    CHECK(g_file_set_contents(on_a, content, sizeof(content) - 1, NULL));
    CHECK(g_file_set_contents(on_b, "two", 3, NULL));
    int last = -1;
    CHECK_EQ_INT(tm_recording_last_segment(s, v.id, &last), 0);
    CHECK_EQ_INT(last, 0);
    CHECK_EQ_INT(tm_recording_start(s, v.id, on_a, "matroska", false, T0 + 1, a1), 0);
    CHECK_EQ_INT(tm_recording_set_segment(s, a1, "node-a", 1), 0);
    CHECK_EQ_INT(tm_recording_start(s, v.id, unread, "matroska", false, T0 + 2, a2), 0);
    CHECK_EQ_INT(tm_recording_set_part(s, a2, 2), 0);
    CHECK_EQ_INT(tm_recording_set_segment(s, a2, "node-a", 1), 0);
    CHECK_EQ_INT(tm_recording_start(s, v2.id, on_a, "matroska", false, T0 + 3, other), 0);
    CHECK_EQ_INT(tm_recording_set_segment(s, other, "node-a", 1), 0);
    CHECK_EQ_INT(tm_recording_set_segment(s, a1, "", 1), TM_EINVAL);
    CHECK_EQ_INT(tm_recording_set_segment(s, a1, "node-a", 0), TM_EINVAL);
    CHECK_EQ_INT(tm_recording_set_segment(s, "rec-none", "node-a", 1), TM_ENOTFOUND);
    CHECK_EQ_INT(tm_recording_last_segment(s, v.id, &last), 0);
    CHECK_EQ_INT(last, 1);

    /* node-b takes v over: a1 closed with its hash, a2 (unreadable here)
     * left for node-a's start, v2's row untouched. */
    int n = -1;
    char st[16];
    CHECK_EQ_INT(tm_recording_close_others(s, v.id, "node-b", T0 + 10, &n), 0);
    CHECK_EQ_INT(n, 1);
    json_t *r = tm_recording_get(s, a1);
    CHECK_STR(json_string_value(field(r, "state")), "incomplete");
    char *want = g_compute_checksum_for_string(G_CHECKSUM_SHA256, content, -1);
    CHECK_STR(json_string_value(field(r, "sha256")), want);
    json_decref(r);
    CHECK_STR(state_of(s, a2, st), "recording");
    CHECK_STR(state_of(s, other, st), "recording");
    CHECK_EQ_INT(count_events(s, "recording.available", v.id), 1);
    CHECK_EQ_INT(tm_recording_start(s, v.id, on_b, "matroska", false, T0 + 20, b1), 0);
    CHECK_EQ_INT(tm_recording_set_segment(s, b1, "node-b", 2), 0);
    CHECK_EQ_INT(tm_recording_last_segment(s, v.id, &last), 0);
    CHECK_EQ_INT(last, 2);
    CHECK_EQ_INT(tm_recording_close_others(s, v.id, "node-b", T0 + 21, &n), 0);
    CHECK_EQ_INT(n, 0); /* its own row is node-b's to finish */

    json_t *vr = tm_store_visit_record(s, v.id);
    json_t *recs = field(vr, "recordings");
    CHECK_EQ_INT(json_array_size(recs), 3);
    CHECK_EQ_INT(json_integer_value(field(json_array_get(recs, 0), "segment")), 1);
    CHECK_STR(json_string_value(field(json_array_get(recs, 0), "node_id")), "node-a");
    CHECK_EQ_INT(json_integer_value(field(json_array_get(recs, 2), "segment")), 2);
    CHECK_STR(json_string_value(field(json_array_get(recs, 2), "node_id")), "node-b");
    json_decref(vr);

    /* Each node's start recovers its own rows only. */
    CHECK_EQ_INT(tm_recording_recover_node(s, "node-b", T0 + 30, &n), 0);
    CHECK_EQ_INT(n, 1);
    CHECK_STR(state_of(s, b1, st), "incomplete");
    CHECK_STR(state_of(s, a2, st), "recording");
    CHECK_STR(state_of(s, other, st), "recording");
    CHECK_EQ_INT(tm_recording_recover_node(s, "node-a", T0 + 40, &n), 0);
    CHECK_EQ_INT(n, 2);
    CHECK_STR(state_of(s, a2, st), "failed");
    CHECK_STR(state_of(s, other, st), "incomplete");
    g_free(want);
    g_free(on_a);
    g_free(on_b);
    g_free(unread);
    tm_store_free(s);
}

static int audit_rows(tm_store *s, const char *action, const char *outcome)
{
    json_t *rows = tm_store_audit_list(s, NULL, NULL, 0, 1000);
    int n = 0;
    for (size_t i = 0; i < json_array_size(rows); i++) {
        json_t *r = json_array_get(rows, i);
        n += strcmp(json_string_value(field(r, "action")), action) == 0 &&
             strcmp(json_string_value(field(r, "outcome")), outcome) == 0;
    }
    json_decref(rows);
    return n;
}

static void t_recording_retention(const store_backend *b, const char *dir)
{
    tm_store *s = b->open("rec-retention");
    seed(s);
    tm_visit v;
    active_visit(s, &v, "p1");
    char old1[TM_RECORDING_ID_LEN], old2[TM_RECORDING_ID_LEN], fresh[TM_RECORDING_ID_LEN],
        stuck[TM_RECORDING_ID_LEN], live[TM_RECORDING_ID_LEN], st[16];
    int64_t now = tm_now_ms(), day = 86400000;
    char *f_old1 = g_build_filename(dir, "old1.mkv", NULL);
    char *f_fresh = g_build_filename(dir, "fresh.mkv", NULL);
    CHECK(g_file_set_contents(f_old1, "x", 1, NULL));
    CHECK(g_file_set_contents(f_fresh, "y", 1, NULL));
    /* A path that cannot be unlinked, even by root: a directory. */
    char *f_stuck = g_build_filename(dir, "stuck.mkv", NULL);
    CHECK(g_mkdir(f_stuck, 0700) == 0);

    CHECK_EQ_INT(tm_recording_start(s, v.id, f_old1, "matroska", false, now - 40 * day, old1), 0);
    CHECK_EQ_INT(tm_recording_finish(s, old1, 1, 1, sha_a, 0, now - 40 * day), 0);
    CHECK_EQ_INT(tm_recording_start(s, v.id, "/nonexistent/old2.mkv", "matroska", false,
                                    now - 31 * day, old2),
                 0);
    CHECK_EQ_INT(tm_recording_fail(s, old2, "x", 0, now - 31 * day), 0);
    CHECK_EQ_INT(tm_recording_start(s, v.id, f_fresh, "matroska", false, now - 29 * day, fresh), 0);
    CHECK_EQ_INT(tm_recording_finish(s, fresh, 1, 1, sha_a, 0, now - 29 * day), 0);
    CHECK_EQ_INT(tm_recording_start(s, v.id, f_stuck, "matroska", true, now - 50 * day, stuck), 0);
    CHECK_EQ_INT(tm_recording_finish(s, stuck, 1, 1, sha_a, 0, now - 50 * day), 0);
    /* Still recording (a visit in progress) is never swept. */
    CHECK_EQ_INT(tm_recording_start(s, v.id, "/live.mkv", "matroska", false, now - 60 * day, live),
                 0);

    int deleted = -1, failed = -1;
    CHECK_EQ_INT(tm_recording_retention_sweep(s, 0, now, &deleted, &failed), TM_EINVAL);
    CHECK_EQ_INT(tm_recording_retention_sweep(s, 30, now, &deleted, &failed), 0);
    CHECK_EQ_INT(deleted, 2);
    CHECK_EQ_INT(failed, 1);
    CHECK(!g_file_test(f_old1, G_FILE_TEST_EXISTS));
    CHECK(g_file_test(f_fresh, G_FILE_TEST_EXISTS));
    json_t *o = tm_recording_get(s, old1);
    CHECK_STR(json_string_value(field(o, "state")), "deleted");
    CHECK_STR(json_string_value(field(o, "deleted_by_policy")), "retention_recordings_days=30");
    CHECK(json_is_string(field(o, "deleted_at")));
    json_decref(o);
    CHECK_STR(state_of(s, fresh, st), "complete");
    CHECK_STR(state_of(s, live, st), "recording");
    CHECK_STR(state_of(s, stuck, st), "complete");
    CHECK_EQ_INT(audit_rows(s, "recording.delete", "ok"), 2);
    CHECK_EQ_INT(audit_rows(s, "recording.delete", "error"), 1);
    /* Each deletion is evidence in the visit's chain: what went (its hash),
     * under which policy, when; the chain still verifies. */
    CHECK_EQ_INT(count_events(s, "recording.deleted", v.id), 2);
    json_t *ev = event_payload(s, "recording.deleted", v.id);
    json_t *del = field(ev, "deletion"); /* the newest: old2, which failed, so no hash */
    CHECK_STR(json_string_value(field(del, "recording_id")), old2);
    CHECK(json_is_null(field(del, "sha256")));
    CHECK(json_is_false(field(del, "encrypted")));
    CHECK_STR(json_string_value(field(del, "policy")), "retention_recordings_days=30");
    CHECK(json_is_string(field(del, "deleted_at")));
    json_decref(ev);
    json_t *chain = tm_store_visit_chain(s, v.id);
    CHECK(json_is_true(field(chain, "ok")));
    json_decref(chain);
    /* Once it can go, the next sweep takes it, and only it. */
    CHECK(g_rmdir(f_stuck) == 0);
    CHECK(g_file_set_contents(f_stuck, "z", 1, NULL));
    CHECK_EQ_INT(tm_recording_retention_sweep(s, 30, now, NULL, NULL), 0);
    CHECK_STR(state_of(s, stuck, st), "deleted");
    CHECK_EQ_INT(count_events(s, "recording.deleted", v.id), 3);
    ev = event_payload(s, "recording.deleted", v.id);
    CHECK_STR(json_string_value(field(field(ev, "deletion"), "recording_id")), stuck);
    CHECK_STR(json_string_value(field(field(ev, "deletion"), "sha256")), sha_a);
    CHECK(json_is_true(field(field(ev, "deletion"), "encrypted")));
    json_decref(ev);
    CHECK_EQ_INT(tm_recording_retention_sweep(s, 30, now, &deleted, &failed), 0);
    CHECK_EQ_INT(deleted, 0);
    CHECK_EQ_INT(failed, 0);
    g_free(f_old1);
    g_free(f_fresh);
    g_free(f_stuck);
    tm_store_free(s);
}

/* ---- audit log ------------------------------------------------------ */

static void t_audit(const store_backend *b, const char *dir)
{
    tm_store *s = b->open("audit");
    CHECK_EQ_INT(tm_store_audit(s, "s1", "supervisor", "visit.watch", "v-1", "ok", NULL), 0);
    CHECK_EQ_INT(tm_store_audit(s, NULL, NULL, "auth.fail", NULL, "refused", "bad token"), 0);
    CHECK_EQ_INT(tm_store_audit(s, "a1", "admin", "visit.read", "v-1", NULL, NULL), 0);
    json_t *rows = tm_store_audit_list(s, "v-1", NULL, 0, 10);
    CHECK_EQ_INT(json_array_size(rows), 2);
    CHECK_STR(json_string_value(field(json_array_get(rows, 0), "actor_id")), "a1"); /* newest */
    CHECK_STR(json_string_value(field(json_array_get(rows, 0), "outcome")), "ok");
    json_decref(rows);
    rows = tm_store_audit_list(s, NULL, "-", 0, 10);
    CHECK_EQ_INT(json_array_size(rows), 1);
    CHECK_STR(json_string_value(field(json_array_get(rows, 0), "actor_role")), "none");
    CHECK_STR(json_string_value(field(json_array_get(rows, 0), "detail")), "bad token");
    json_decref(rows);
    rows = tm_store_audit_list(s, NULL, NULL, tm_now_ms() + 60000, 10);
    CHECK_EQ_INT(json_array_size(rows), 0);
    json_decref(rows);
    tm_store_free(s);
}

/* ---- the outbox's delivery side ------------------------------------- */

static void t_outbox_order_and_retry(const store_backend *b, const char *dir)
{
    tm_store *s = b->open("outbox-order");
    seed(s);
    tm_visit a, c;
    checkin(s, &a, "pat-a", T0);
    checkin(s, &c, "pat-c", T0 + 1);
    CHECK_EQ_INT(tm_store_visit_offer(s, a.id, "d1", T0 + 2), 0);
    CHECK_EQ_INT(tm_store_visit_accept(s, a.id, "d1", "ua", T0 + 3), 0);
    tm_outbox_event *ev = NULL;
    size_t n = 0;
    CHECK_EQ_INT(tm_outbox_next_batch(s, T0, 0, &ev, &n), TM_EINVAL);
    CHECK_EQ_INT(tm_outbox_next_batch(s, tm_now_ms(), 10, &ev, &n), 0);
    CHECK_EQ_INT(n, 3);
    CHECK_STR(ev[0].visit_id, a.id);
    CHECK(ev[0].seq < ev[1].seq && ev[1].seq < ev[2].seq);
    int64_t a_head = ev[0].seq, c_head = ev[1].seq, a_second = ev[2].seq;
    CHECK_EQ_INT(ev[1].occurred_at, T0 + 1);
    CHECK_EQ_INT(ev[0].attempts, 0);
    tm_outbox_events_free(ev, n);
    int64_t pending = 0, oldest = 0;
    CHECK_EQ_INT(tm_outbox_queue(s, &pending, &oldest), 0);
    CHECK_EQ_INT(pending, 3);
    CHECK_EQ_INT(oldest, T0);

    /* A's head failed and waits an hour: its chain waits, C overtakes. */
    int64_t later = tm_now_ms() + 3600 * 1000;
    CHECK_EQ_INT(tm_outbox_retry(s, &a_head, &later, 1, 503, "status 503"), 0);
    CHECK_EQ_INT(tm_outbox_next_batch(s, tm_now_ms(), 10, &ev, &n), 0);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(ev[0].seq, c_head);
    tm_outbox_events_free(ev, n);
    CHECK_EQ_INT(tm_outbox_mark_delivered(s, &c_head, 1, 200, tm_now_ms()), 0);
    int64_t due = 0;
    CHECK_EQ_INT(tm_outbox_next_due(s, &due), 0);
    CHECK_EQ_INT(due, later);
    CHECK_EQ_INT(tm_outbox_next_batch(s, tm_now_ms(), 10, &ev, &n), 0);
    CHECK_EQ_INT(n, 0);
    CHECK(ev == NULL);

    /* The endpoint answers again: the waiting rows are due at once. */
    CHECK_EQ_INT(tm_outbox_retry_now(s, tm_now_ms()), 1);
    CHECK_EQ_INT(tm_outbox_retry_now(s, tm_now_ms()), 0);
    /* A limit cuts a chain, never reorders it. */
    CHECK_EQ_INT(tm_outbox_next_batch(s, tm_now_ms(), 1, &ev, &n), 0);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(ev[0].seq, a_head);
    CHECK_EQ_INT(ev[0].attempts, 1);
    tm_outbox_events_free(ev, n);
    int64_t both[2] = {a_head, a_second};
    CHECK_EQ_INT(tm_outbox_mark_delivered(s, both, 2, 200, tm_now_ms()), 0);
    CHECK_EQ_INT(tm_outbox_next_due(s, &due), TM_ENOTFOUND);
    int64_t count = -1;
    CHECK_EQ_INT(tm_store_outbox_count(s, "delivered", &count), 0);
    CHECK_EQ_INT(count, 3);
    CHECK_EQ_INT(tm_store_outbox_count(s, "pending", &count), 0);
    CHECK_EQ_INT(count, 0);
    /* Marks touch only pending rows. */
    CHECK_EQ_INT(tm_outbox_retry(s, &a_head, &later, 1, 0, "late"), 0);
    CHECK_EQ_INT(tm_outbox_dead_letter(s, a_head, 400, "late", NULL, 0), TM_ENOTFOUND);
    tm_outbox_stats stats;
    CHECK_EQ_INT(tm_outbox_stats_get(s, &stats), 0);
    CHECK_EQ_INT(stats.delivered, 3);
    CHECK_EQ_INT(stats.failed_attempts, 1);
    CHECK_EQ_INT(stats.pending, 0);
    CHECK_EQ_INT(stats.oldest_pending_at, 0);
    tm_outbox_events_free(NULL, 0);
    tm_store_free(s);
}

static void t_outbox_dead_letters(const store_backend *b, const char *dir)
{
    tm_store *s = b->open("outbox-dead");
    seed(s);
    tm_visit v;
    checkin(s, &v, "pat-d", T0);
    CHECK_EQ_INT(tm_store_visit_offer(s, v.id, "d1", T0 + 2), 0);
    CHECK_EQ_INT(tm_store_visit_accept(s, v.id, "d1", "ua", T0 + 3), 0);
    tm_outbox_event *ev = NULL;
    size_t n = 0;
    CHECK_EQ_INT(tm_outbox_next_batch(s, tm_now_ms(), 10, &ev, &n), 0);
    CHECK_EQ_INT(n, 2);
    int64_t head = ev[0].seq, second = ev[1].seq;
    tm_outbox_events_free(ev, n);

    const char resp[] = "{\"error\":\"missing field\"}\xff";
    CHECK_EQ_INT(
        tm_outbox_dead_letter(s, head, 400, "rejected with status 400", resp, sizeof(resp) - 1), 0);
    /* Dead does not block the visit's later events. */
    CHECK_EQ_INT(tm_outbox_next_batch(s, tm_now_ms(), 10, &ev, &n), 0);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(ev[0].seq, second);
    tm_outbox_events_free(ev, n);
    json_t *dead = tm_outbox_dead_list(s, 0);
    CHECK_EQ_INT(json_array_size(dead), 1);
    json_t *d0 = json_array_get(dead, 0);
    CHECK_EQ_INT(json_integer_value(field(d0, "seq")), head);
    CHECK_EQ_INT(json_integer_value(field(d0, "last_status")), 400);
    CHECK_EQ_INT(json_integer_value(field(d0, "attempts")), 1);
    CHECK_STR(json_string_value(field(d0, "visit_id")), v.id);
    CHECK_STR(json_string_value(field(d0, "type")), "visit.checked_in");
    CHECK(g_str_has_prefix(json_string_value(field(d0, "last_response")), "{\"error\""));
    CHECK_STR(json_string_value(field(d0, "occurred_at")), "2025-11-25T12:00:00.000Z");
    json_decref(dead);
    /* A late answer cannot make a dead letter delivered. */
    CHECK_EQ_INT(tm_outbox_mark_delivered(s, &head, 1, 200, tm_now_ms()), 0);
    int64_t count = 0;
    CHECK_EQ_INT(tm_store_outbox_count(s, "dead", &count), 0);
    CHECK_EQ_INT(count, 1);
    tm_outbox_stats stats;
    CHECK_EQ_INT(tm_outbox_stats_get(s, &stats), 0);
    CHECK_EQ_INT(stats.dead, 1);
    CHECK_EQ_INT(stats.pending, 1);
    CHECK_EQ_INT(stats.delivered, 0);
    CHECK_EQ_INT(stats.failed_attempts, 1);
    CHECK_EQ_INT(stats.oldest_pending_at, T0 + 3);

    CHECK_EQ_INT(tm_outbox_replay(s, second), TM_ECONFLICT); /* pending, not dead */
    CHECK_EQ_INT(tm_outbox_replay(s, 999999), TM_ENOTFOUND);
    CHECK_EQ_INT(tm_outbox_replay(s, head), 0);
    CHECK_EQ_INT(tm_outbox_replay(s, head), TM_ECONFLICT);
    CHECK_EQ_INT(tm_outbox_next_batch(s, tm_now_ms(), 10, &ev, &n), 0);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(ev[0].seq, head);
    tm_outbox_events_free(ev, n);
    dead = tm_outbox_dead_list(s, 10);
    CHECK_EQ_INT(json_array_size(dead), 0);
    json_decref(dead);
    tm_store_free(s);
}

/* A finished visit at `at`: accepted by d1, ended, note signed, rated 4. */
static void finished_visit(tm_store *s, const char *patient, int64_t at, tm_visit *v)
{
    memset(v, 0, sizeof(*v));
    snprintf(v->patient_id, sizeof(v->patient_id), "%s", patient);
    snprintf(v->dept_id, sizeof(v->dept_id), "cardio");
    snprintf(v->kind, sizeof(v->kind), "follow_up");
    v->checkin_ms = at;
    CHECK_EQ_INT(tm_store_visit_checkin(s, v, "test"), 0);
    CHECK_EQ_INT(tm_store_visit_offer(s, v->id, "d1", at + 1000), 0);
    CHECK_EQ_INT(tm_store_visit_accept(s, v->id, "d1", "test", at + 2000), 0);
    CHECK_EQ_INT(tm_store_visit_end(s, v->id, "completed", "d1", at + 60000), 0);
    CHECK_EQ_INT(tm_store_note_save(s, v->id, "d1", "note", "I10", true, at + 61000), 0);
    CHECK_EQ_INT(tm_store_rating_add(s, v->id, patient, 4, NULL, at + 62000), 0);
}

/* ---- batch uploads --------------------------------------------------- */

static void t_uploads(const store_backend *b, const char *dir)
{
    (void)dir;
    tm_store *s = b->open("uploads");
    seed(s);
    CHECK_EQ_INT(tm_store_regulator_id_put(s, "doctor", "d1", NULL, "120101198001010011"), 0);
    CHECK_EQ_INT(tm_store_regulator_id_put(s, "dept", "cardio", NULL, "03"), 0);
    CHECK_EQ_INT(tm_store_regulator_id_put(s, "nurse", "x", NULL, "1"), TM_EINVAL);

    tm_visit va, vb, later;
    finished_visit(s, "pat-a", T0, &va);
    finished_visit(s, "pat-b", T0 + 1000, &vb);
    finished_visit(s, "pat-c", T0 + 2 * 86400000LL, &later); /* another day */
    int staged = -1;
    CHECK_EQ_INT(tm_upload_stage_day(s, "tianjin", "2025-11-25", T0 - 3600000, T0 + 3600000, true,
                                     T0, &staged),
                 0);
    CHECK_EQ_INT(staged, 4); /* two visits, two ratings */
    CHECK_EQ_INT(tm_upload_stage_day(s, "tianjin", "2025-11-25", T0 - 3600000, T0 + 3600000, true,
                                     T0, &staged),
                 0);
    CHECK_EQ_INT(staged, 0); /* once per business id */

    tm_upload_record *r = NULL;
    size_t n = 0;
    CHECK_EQ_INT(tm_upload_next_batch(s, "tianjin", "rating", tm_now_ms(), 10, &r, &n), 0);
    CHECK_EQ_INT(n, 0); /* no rating before its visit is accepted */
    CHECK_EQ_INT(tm_upload_next_batch(s, "tianjin", "visit", tm_now_ms(), 10, &r, &n), 0);
    CHECK_EQ_INT(n, 2);
    CHECK_STR(r[0].buss_id, va.id);
    json_t *src = json_loads(r[0].source, 0, NULL);
    CHECK_STR(json_string_value(json_object_get(src, "diagnosis_code")), "I10");
    CHECK_STR(json_string_value(json_object_get(src, "doctor_cert_id")), "120101198001010011");
    CHECK_STR(json_string_value(json_object_get(src, "dept_code")), "03");
    CHECK(json_is_null(json_object_get(src, "patient_cert_id")));
    json_decref(src);
    int64_t first = r[0].id, second = r[1].id;
    CHECK_EQ_INT(tm_upload_mark_delivered(s, &first, 1, 200, T0), 0);
    tm_upload_records_free(r, n);
    CHECK_EQ_INT(tm_upload_next_batch(s, "tianjin", "rating", tm_now_ms(), 10, &r, &n), 0);
    CHECK_EQ_INT(n, 1);
    CHECK_STR(r[0].buss_id, va.id);
    tm_upload_records_free(r, n);

    /* Dead, fixed, replayed with fresh facts. */
    CHECK_EQ_INT(tm_upload_dead_letter(s, second, 0, "missing field patientCertID", NULL), 0);
    json_t *dead = tm_upload_dead_list(s, "tianjin", 10);
    CHECK_EQ_INT(json_array_size(dead), 1);
    CHECK_STR(json_string_value(json_object_get(json_array_get(dead, 0), "last_error")),
              "missing field patientCertID");
    json_decref(dead);
    CHECK_EQ_INT(tm_store_regulator_id_put(s, "patient", "pat-b", "1", "120101199001010022"), 0);
    CHECK_EQ_INT(tm_upload_replay(s, "tianjin", second, T0), 0);
    CHECK_EQ_INT(tm_upload_replay(s, "tianjin", second, T0), TM_ECONFLICT);
    CHECK_EQ_INT(tm_upload_replay(s, "tianjin", 999999, T0), TM_ENOTFOUND);
    CHECK_EQ_INT(tm_upload_next_batch(s, "tianjin", "visit", tm_now_ms(), 10, &r, &n), 0);
    CHECK_EQ_INT(n, 1);
    src = json_loads(r[0].source, 0, NULL);
    CHECK_STR(json_string_value(json_object_get(src, "patient_cert_id")), "120101199001010022");
    json_decref(src);
    int64_t next[1] = {tm_now_ms() + 60000};
    CHECK_EQ_INT(tm_upload_retry(s, &r[0].id, next, 1, 503, "status 503"), 0);
    tm_upload_records_free(r, n);
    CHECK_EQ_INT(tm_upload_next_batch(s, "tianjin", "visit", tm_now_ms(), 10, &r, &n), 0);
    CHECK_EQ_INT(n, 0); /* backing off */
    int64_t due = 0;
    CHECK_EQ_INT(tm_upload_next_due(s, "tianjin", &due), 0);
    CHECK_EQ_INT(due, 0); /* the rating of the accepted visit is due now */

    char day[16];
    CHECK_EQ_INT(tm_upload_last_day(s, "tianjin", day), 0);
    CHECK_STR(day, "2025-11-25");
    CHECK_EQ_INT(tm_upload_checkin_next(s, "tianjin", tm_now_ms(), day), 0);
    CHECK_EQ_INT(tm_upload_checkin_done(s, "tianjin", day, T0), 0);
    CHECK_EQ_INT(tm_upload_checkin_next(s, "tianjin", tm_now_ms(), day), TM_ENOTFOUND);
    tm_upload_counts counts;
    CHECK_EQ_INT(tm_upload_counts_get(s, "tianjin", &counts), 0);
    CHECK_EQ_INT(counts.delivered, 1);
    CHECK_EQ_INT(counts.pending, 3);
    CHECK_EQ_INT(counts.days, 1);
    CHECK_EQ_INT(counts.checkins, 1);
    /* The day's report, as the compliance figures read it. */
    CHECK_EQ_INT(tm_upload_dead_letter(s, second, 400, "missing field deptID", NULL), 0);
    json_t *rep = tm_upload_day_report(s, "tianjin", 0);
    CHECK_EQ_INT(json_array_size(rep), 1);
    json_t *d0 = json_array_get(rep, 0);
    CHECK_STR(json_string_value(json_object_get(d0, "day")), "2025-11-25");
    CHECK_EQ_INT(json_integer_value(json_object_get(d0, "visits")), 2);
    CHECK_EQ_INT(json_integer_value(json_object_get(d0, "ratings")), 2);
    CHECK_EQ_INT(json_integer_value(json_object_get(d0, "delivered")), 1);
    CHECK_EQ_INT(json_integer_value(json_object_get(d0, "checkin_ms")), T0);
    CHECK_EQ_INT(json_integer_value(json_object_get(d0, "last_delivered_ms")), T0);
    CHECK_EQ_INT(json_integer_value(json_object_get(d0, "pending")), 2);
    CHECK_EQ_INT(json_integer_value(json_object_get(d0, "dead")), 1);
    CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(d0, "dead_by_reason"),
                                                    "missing field deptID")),
                 1);
    json_decref(rep);
    rep = tm_upload_day_report(s, "other", 0);
    CHECK_EQ_INT(json_array_size(rep), 0);
    json_decref(rep);
    /* Another profile sees none of it. */
    CHECK_EQ_INT(tm_upload_last_day(s, "other", day), TM_ENOTFOUND);

    /* Unanswered visits stay out when the profile says so. */
    tm_visit w;
    memset(&w, 0, sizeof(w));
    snprintf(w.patient_id, sizeof(w.patient_id), "pat-w");
    snprintf(w.dept_id, sizeof(w.dept_id), "cardio");
    snprintf(w.kind, sizeof(w.kind), "follow_up");
    w.checkin_ms = T0 + 5 * 86400000LL;
    CHECK_EQ_INT(tm_store_visit_checkin(s, &w, "test"), 0);
    CHECK_EQ_INT(tm_store_visit_end(s, w.id, "patient_left", "pat-w", w.checkin_ms + 1000), 0);
    CHECK_EQ_INT(tm_upload_stage_day(s, "tianjin", "2025-11-30", w.checkin_ms - 1000,
                                     w.checkin_ms + 3600000, false, T0, &staged),
                 0);
    CHECK_EQ_INT(staged, 0);
    CHECK_EQ_INT(tm_upload_stage_day(s, "tianjin", "2025-11-30", w.checkin_ms - 1000,
                                     w.checkin_ms + 3600000, true, T0, &staged),
                 0);
    CHECK_EQ_INT(staged, 1);

    tm_store_free(s);
}

/* ---- the visit chain ------------------------------------------------- */

static void t_visit_chain(const store_backend *b, const char *dir)
{
    (void)dir;
    tm_store *s = b->open("chain");
    seed(s);
    tm_visit v;
    finished_visit(s, "pat-chain", T0, &v);
    json_t *r = tm_store_visit_chain(s, v.id);
    CHECK(r != NULL);
    CHECK(json_is_true(field(r, "ok")));
    CHECK_EQ_INT(json_integer_value(field(r, "events")), 5);
    CHECK_EQ_INT(json_integer_value(field(r, "chained")), 5);
    CHECK_EQ_INT(json_array_size(field(r, "problems")), 0);
    CHECK_EQ_INT(strlen(json_string_value(field(r, "head"))), 64);
    json_decref(r);
    r = tm_store_visit_chain(s, "no-such-visit");
    CHECK_EQ_INT(json_integer_value(field(r, "events")), 0);
    CHECK(json_is_null(field(r, "head")));
    json_decref(r);
    tm_store_free(s);
}

/* ---- the visit seal -------------------------------------------------- */

/* The store only hands the statement to its signer and keeps the answer:
 * a digest stands in for the key's signature here (test_visit_seal signs). */
static char *digest_signer(const char *statement, size_t len, void *user)
{
    (*(int *)user)++;
    return g_compute_checksum_for_data(G_CHECKSUM_SHA256, (const guchar *)statement, len);
}

static void t_visit_seal(const store_backend *b, const char *dir)
{
    (void)dir;
    tm_store *s = b->open("seal");
    seed(s);
    tm_visit v;
    finished_visit(s, "pat-seal", T0, &v);
    char ids[8][64];
    size_t n = 0;
    CHECK_EQ_INT(tm_store_seal_due(s, T0 + 63000, 86400000, ids, 8, &n), 0);
    CHECK_EQ_INT(n, 1);
    CHECK_STR(ids[0], v.id);
    CHECK(!tm_store_visit_seal_marked(s, v.id, NULL));
    int calls = 0;
    CHECK_EQ_INT(
        tm_store_visit_seal(s, v.id, "ecdsa-p256", "key-1", digest_signer, &calls, T0 + 63000), 0);
    CHECK_EQ_INT(calls, 1);
    CHECK_EQ_INT(
        tm_store_visit_seal(s, v.id, "ecdsa-p256", "key-1", digest_signer, &calls, T0 + 64000),
        TM_ECONFLICT);
    CHECK_EQ_INT(tm_store_seal_due(s, T0 + 64000, 86400000, ids, 8, &n), 0);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(tm_store_note_save(s, v.id, "d1", "late", NULL, true, T0 + 65000), TM_ECONFLICT);
    int64_t at = 0, count = 0;
    CHECK(tm_store_visit_seal_marked(s, v.id, &at));
    CHECK_EQ_INT(at, T0 + 63000);
    CHECK_EQ_INT(tm_store_seal_count(s, &count), 0);
    CHECK_EQ_INT(count, 1);

    /* The statement kept is the one signed, and the rows still build it. */
    json_t *seal = tm_store_visit_seal_get(s, v.id);
    CHECK(seal != NULL);
    const char *text = json_string_value(field(seal, "statement"));
    char *want = g_compute_checksum_for_string(G_CHECKSUM_SHA256, text, -1);
    CHECK_STR(json_string_value(field(seal, "signature")), want);
    CHECK_STR(json_string_value(field(seal, "key_id")), "key-1");
    g_free(want);
    json_t *sealed = json_loads(text, 0, NULL);
    CHECK_STR(json_string_value(field(sealed, "format")), "telemed-seal-v1");
    CHECK_EQ_INT(json_integer_value(field(field(sealed, "chain"), "events")), 5);
    CHECK_EQ_INT(strlen(json_string_value(field(field(sealed, "note"), "sha256"))), 64);
    json_t *now = tm_store_seal_statement(
        s, v.id, json_integer_value(field(field(sealed, "chain"), "last_seq")), T0 + 63000);
    CHECK(json_equal(sealed, now));
    json_decref(now);
    json_decref(sealed);
    json_decref(seal);
    CHECK(tm_store_visit_seal_get(s, "no-such-visit") == NULL);
    CHECK_EQ_INT(
        tm_store_visit_seal(s, "no-such-visit", "ecdsa-p256", "key-1", digest_signer, &calls, T0),
        TM_ENOTFOUND);
    tm_store_free(s);
}

/* ---- the table ------------------------------------------------------ */

/* ---- visits of more than two ----------------------------------------- */

static void t_party_staff_and_members(const store_backend *b, const char *dir)
{
    (void)dir;
    tm_store *s = b->open("party_members");
    seed(s);
    CHECK_EQ_INT(tm_store_doctor_put(s, "d2", "Dr Two", "cardio", "LIC2", NULL), 0);
    CHECK_EQ_INT(tm_store_doctor_put(s, "n1", "Nurse One", "cardio", NULL, NULL), 0);
    CHECK_EQ_INT(tm_store_doctor_set_kind(s, "n1", "nurse"), 0);
    CHECK_EQ_INT(tm_store_doctor_set_kind(s, "n1", "janitor"), TM_EINVAL);
    CHECK_EQ_INT(tm_store_doctor_set_kind(s, "nobody", "nurse"), TM_ENOTFOUND);
    tm_doctor_info info;
    CHECK_EQ_INT(tm_store_doctor_get(s, "n1", &info), 0);
    CHECK_STR(info.kind, "nurse");
    CHECK_STR(info.name, "Nurse One");
    CHECK_EQ_INT(tm_store_doctor_get(s, "d2", &info), 0);
    CHECK_STR(info.kind, "doctor"); /* the default */

    tm_visit v;
    active_visit(s, &v, "p1");
    int64_t t = tm_now_ms();
    CHECK_EQ_INT(tm_store_party_join(s, v.id, "d2", "consulting", "ua/2", true, t), 0);
    CHECK_EQ_INT(tm_store_party_join(s, v.id, "n1", "nurse", "ua/n", true, t + 1), 0);
    CHECK_EQ_INT(tm_store_party_join(s, v.id, "x", "attending", NULL, true, t), TM_EINVAL);
    CHECK_EQ_INT(tm_store_party_join(s, "no-visit", "x", "nurse", NULL, true, t), TM_EINVAL);
    CHECK_EQ_INT(count_events(s, "visit.participant_joined", v.id), 2);
    /* A drop is no leave: the nurse is still a member, and comes back. */
    CHECK_EQ_INT(tm_store_participant_leave(s, v.id, "n1", "disconnected", t + 2), 0);
    json_t *m = tm_store_party_members(s, v.id);
    CHECK_EQ_INT(json_array_size(m), 2);
    CHECK_STR(json_string_value(field(json_array_get(m, 0), "user_id")), "d2");
    CHECK_STR(json_string_value(field(json_array_get(m, 1), "visit_role")), "nurse");
    json_decref(m);
    CHECK_EQ_INT(tm_store_party_join(s, v.id, "n1", "nurse", "ua/n", false, t + 3), 0);
    CHECK_EQ_INT(count_events(s, "visit.participant_joined", v.id), 2);
    char role[16];
    CHECK_EQ_INT(tm_store_party_role(s, v.id, "d1", role), 0);
    CHECK_STR(role, "attending");
    CHECK_EQ_INT(tm_store_party_role(s, v.id, "p1", role), 0);
    CHECK_STR(role, "patient");
    CHECK_EQ_INT(tm_store_party_role(s, v.id, "zz", role), TM_ENOTFOUND);

    /* Leaving for good: out of the members, one event with the reason. */
    CHECK_EQ_INT(tm_store_participant_leave(s, v.id, "n1", "disconnected", t + 4), 0);
    CHECK_EQ_INT(tm_store_party_leave(s, v.id, "n1", "grace_expired", t + 5), 0);
    CHECK_EQ_INT(tm_store_party_leave(s, v.id, "zz", "left", t + 5), TM_ENOTFOUND);
    m = tm_store_party_members(s, v.id);
    CHECK_EQ_INT(json_array_size(m), 1);
    json_decref(m);
    json_t *left = event_payload(s, "visit.participant_left", v.id);
    json_t *who = field(left, "participant");
    CHECK_STR(json_string_value(field(who, "user_id")), "n1");
    CHECK_STR(json_string_value(field(who, "reason")), "grace_expired");
    json_decref(left);

    /* Every doctor who took part is in the facts and the events, with licence. */
    tm_visit_facts f;
    CHECK_EQ_INT(tm_store_visit_facts(s, v.id, &f), 0);
    CHECK_EQ_INT((int)f.n_doctors, 2);
    CHECK_STR(f.doctors[0].doctor_id, "d1");
    CHECK_STR(f.doctors[0].role, "attending");
    CHECK_STR(f.doctors[1].licence_no, "LIC2");
    CHECK_STR(f.doctors[1].role, "consulting");
    CHECK_EQ_INT(tm_store_visit_end(s, v.id, "completed", "d1", t + 10), 0);
    json_t *ended = event_payload(s, "visit.ended", v.id);
    json_t *docs = field(ended, "doctors");
    CHECK_EQ_INT(json_array_size(docs), 2);
    CHECK_STR(json_string_value(field(json_array_get(docs, 1), "licence_no")), "LIC2");
    json_decref(ended);
    /* Nobody is in a visit that is over. */
    m = tm_store_party_members(s, v.id);
    CHECK_EQ_INT(json_array_size(m), 0);
    json_decref(m);
    tm_store_free(s);
}

static void t_party_invites(const store_backend *b, const char *dir)
{
    (void)dir;
    tm_store *s = b->open("party_invites");
    seed(s);
    tm_visit v;
    active_visit(s, &v, "p1");
    int64_t t = tm_now_ms();
    tm_invite a = {.created_ms = t, .expires_ms = t + 60000};
    g_strlcpy(a.visit_id, v.id, sizeof(a.visit_id));
    g_strlcpy(a.inviter_id, "d1", sizeof(a.inviter_id));
    g_strlcpy(a.invitee_id, "d2", sizeof(a.invitee_id));
    g_strlcpy(a.role, "consulting", sizeof(a.role));
    tm_invite bad = a;
    g_strlcpy(bad.role, "guest", sizeof(bad.role));
    CHECK_EQ_INT(tm_store_invite_create(s, &bad), TM_EINVAL);
    tm_invite gone = a;
    g_strlcpy(gone.visit_id, "no-visit", sizeof(gone.visit_id));
    CHECK_EQ_INT(tm_store_invite_create(s, &gone), TM_EINVAL);
    CHECK_EQ_INT(tm_store_invite_create(s, &a), 0);
    CHECK(g_str_has_prefix(a.id, "inv-"));
    tm_invite c = a;
    CHECK_EQ_INT(tm_store_invite_create(s, &c), 0);
    tm_invite d = a;
    CHECK_EQ_INT(tm_store_invite_create(s, &d), 0);
    CHECK_EQ_INT(count_events(s, "visit.invite", v.id), 3);
    CHECK_EQ_INT(tm_store_invite_end(s, a.id, "declined", t + 1), 0);
    CHECK_EQ_INT(tm_store_invite_end(s, a.id, "accepted", t + 2), TM_ECONFLICT);
    CHECK_EQ_INT(tm_store_invite_end(s, a.id, "maybe", t + 2), TM_EINVAL);
    CHECK_EQ_INT(tm_store_invite_end(s, "inv-nope", "declined", t + 2), TM_ENOTFOUND);
    json_t *ev = event_payload(s, "visit.invite_ended", v.id);
    CHECK_STR(json_string_value(field(field(ev, "invite"), "outcome")), "declined");
    CHECK_STR(json_string_value(field(field(ev, "invite"), "invitee_id")), "d2");
    json_decref(ev);
    /* A restart ends what is open; the visit's end ends the rest. */
    int n = -1;
    CHECK_EQ_INT(tm_store_invite_end(s, d.id, "timeout", t + 3), 0);
    /* Accepting ends the invite and makes the invitee a member, in one step. */
    tm_invite f = a;
    g_strlcpy(f.invitee_id, "d3", sizeof(f.invitee_id));
    CHECK_EQ_INT(tm_store_invite_create(s, &f), 0);
    CHECK_EQ_INT(tm_store_invite_accept(s, f.id, "ua/3", t + 3), 0);
    CHECK_EQ_INT(tm_store_invite_accept(s, f.id, "ua/3", t + 3), TM_ECONFLICT);
    CHECK_EQ_INT(tm_store_invite_accept(s, "inv-nope", "ua/3", t + 3), TM_ENOTFOUND);
    char role[16];
    CHECK_EQ_INT(tm_store_party_role(s, v.id, "d3", role), 0);
    CHECK_STR(role, "consulting");
    CHECK_EQ_INT(count_events(s, "visit.participant_joined", v.id), 1);
    CHECK_EQ_INT(tm_store_invites_end_open(s, "cancelled", t + 4, &n), 0);
    CHECK_EQ_INT(n, 1);
    tm_invite e = a;
    e.created_ms = t + 4;
    CHECK_EQ_INT(tm_store_invite_create(s, &e), 0);
    CHECK_EQ_INT(tm_store_visit_end(s, v.id, "completed", "d1", t + 5), 0);
    json_t *rec = tm_store_visit_record(s, v.id);
    json_t *invites = field(rec, "invites");
    CHECK_EQ_INT(json_array_size(invites), 5);
    CHECK_STR(json_string_value(field(json_array_get(invites, 4), "outcome")), "visit_ended");
    json_t *tl = field(rec, "timeline");
    size_t i;
    json_t *row;
    int invited = 0, ended = 0;
    json_array_foreach(tl, i, row)
    {
        const char *e2 = json_string_value(field(row, "event"));
        invited += strcmp(e2, "invited") == 0;
        ended += g_str_has_prefix(e2, "invite_");
    }
    CHECK_EQ_INT(invited, 5);
    CHECK_EQ_INT(ended, 5);
    json_decref(rec);
    tm_store_free(s);
}

static void t_party_guest_links(const store_backend *b, const char *dir)
{
    (void)dir;
    tm_store *s = b->open("party_links");
    seed(s);
    tm_visit v, w;
    active_visit(s, &v, "p1");
    int64_t t = tm_now_ms();
    tm_guest_link l = {.expires_ms = t + 900000};
    g_strlcpy(l.visit_id, v.id, sizeof(l.visit_id));
    g_strlcpy(l.name, "daughter", sizeof(l.name));
    g_strlcpy(l.created_by, "p1", sizeof(l.created_by));
    CHECK_EQ_INT(tm_store_guest_link_create(s, &l, "short", "patient", t), TM_EINVAL);
    CHECK_EQ_INT(tm_store_guest_link_create(s, &l, sha_a, "patient", t), 0);
    CHECK_STR(l.state, "open");
    tm_guest_link dup = l;
    CHECK_EQ_INT(tm_store_guest_link_create(s, &dup, sha_a, "patient", t), TM_ECONFLICT);

    tm_guest_link out;
    static const char resume[] = "1111111111111111111111111111111111111111111111111111111111111111";
    CHECK_EQ_INT(tm_store_guest_link_redeem(s, sha_a, "g-1", resume, t + 1, &out), 0);
    CHECK_STR(out.state, "used");
    CHECK_STR(out.guest_id, "g-1");
    CHECK_STR(out.visit_id, v.id);
    char role[16];
    CHECK_EQ_INT(tm_store_party_role(s, v.id, "g-1", role), 0);
    CHECK_STR(role, "guest");
    CHECK_EQ_INT(count_events(s, "visit.participant_joined", v.id), 1);
    CHECK_EQ_INT(tm_store_guest_link_redeem(s, sha_a, "g-2", resume, t + 2, &out), TM_ECONFLICT);
    CHECK_STR(out.state, "used");
    static const char unknown[] =
        "2222222222222222222222222222222222222222222222222222222222222222";
    CHECK_EQ_INT(tm_store_guest_link_redeem(s, unknown, "g-3", NULL, t, &out), TM_ENOTFOUND);
    CHECK_EQ_INT(tm_store_guest_link_get(s, TM_GUEST_LINK_BY_RESUME, resume, &out), 0);
    CHECK_STR(out.guest_id, "g-1");
    CHECK_EQ_INT(tm_store_guest_link_get(s, TM_GUEST_LINK_BY_GUEST, "g-1", &out), 0);
    CHECK_STR(out.name, "daughter");

    /* Expired: refused at the time it passes, and listed so. */
    static const char code2[] = "3333333333333333333333333333333333333333333333333333333333333333";
    tm_guest_link l2 = l;
    l2.expires_ms = t + 10;
    CHECK_EQ_INT(tm_store_guest_link_create(s, &l2, code2, "patient", t), 0);
    CHECK_EQ_INT(tm_store_guest_link_redeem(s, code2, "g-4", NULL, t + 10, &out), TM_ECONFLICT);
    CHECK_STR(out.state, "expired");
    /* Revoked: only an open link; then refused. */
    static const char code3[] = "4444444444444444444444444444444444444444444444444444444444444444";
    tm_guest_link l3 = l;
    CHECK_EQ_INT(tm_store_guest_link_create(s, &l3, code3, "attending", t), 0);
    CHECK_EQ_INT(tm_store_guest_link_revoke(s, l3.id, "d1", t + 3, &out), 0);
    CHECK_STR(out.state, "revoked");
    CHECK_EQ_INT(tm_store_guest_link_revoke(s, l3.id, "d1", t + 4, &out), TM_ECONFLICT);
    CHECK_EQ_INT(tm_store_guest_link_revoke(s, l.id, "d1", t + 4, &out), TM_ECONFLICT);
    CHECK_EQ_INT(tm_store_guest_link_revoke(s, "gl-nope", "d1", t + 4, NULL), TM_ENOTFOUND);
    CHECK_EQ_INT(tm_store_guest_link_redeem(s, code3, "g-5", NULL, t + 5, &out), TM_ECONFLICT);
    CHECK_STR(out.state, "revoked");
    json_t *links = tm_store_guest_links(s, v.id, t + 20);
    CHECK_EQ_INT(json_array_size(links), 3);
    size_t i;
    json_t *row;
    json_array_foreach(links, i, row)
    {
        const char *id = json_string_value(field(row, "link_id"));
        const char *want = strcmp(id, l.id) == 0    ? "used"
                           : strcmp(id, l2.id) == 0 ? "expired"
                                                    : "revoked";
        CHECK_STR(json_string_value(field(row, "state")), want);
    }
    json_decref(links);
    CHECK_EQ_INT(count_events(s, "visit.guest_link", v.id), 5); /* 3 created, 1 used, 1 revoked */
    json_t *ev = event_payload(s, "visit.guest_link", v.id);
    char *text = json_dumps(ev, 0);
    CHECK(strstr(text, "daughter") == NULL); /* ids only to the regulator */
    CHECK_STR(json_string_value(field(field(ev, "guest_link"), "event")), "revoked");
    free(text);
    json_decref(ev);

    /* An open link of another visit dies with that visit. */
    active_visit(s, &w, "p2");
    static const char code4[] = "5555555555555555555555555555555555555555555555555555555555555555";
    tm_guest_link l4 = l;
    g_strlcpy(l4.visit_id, w.id, sizeof(l4.visit_id));
    CHECK_EQ_INT(tm_store_guest_link_create(s, &l4, code4, "patient", t), 0);
    CHECK_EQ_INT(tm_store_visit_end(s, w.id, "completed", "d1", t + 30), 0);
    CHECK_EQ_INT(tm_store_guest_link_redeem(s, code4, "g-6", NULL, t + 31, &out), TM_ECONFLICT);
    CHECK_STR(out.state, "revoked");
    tm_store_free(s);
}

/* ---- review renditions ------------------------------------------------ */

/* The renditions table is the render queue: a visit is queued once it is
 * over and none of its recordings is still written, once; a row left
 * rendering by a stopped server is queued again; the states move only
 * forward; the sources are the finished parts, oldest first. */
static void t_renditions(const store_backend *b, const char *dir)
{
    tm_store *s = b->open("renditions");
    seed(s);
    tm_visit v;
    active_visit(s, &v, "p1");
    int64_t t0 = tm_now_ms();
    char rec1[TM_RECORDING_ID_LEN], rec2[TM_RECORDING_ID_LEN];
    CHECK_EQ_INT(tm_recording_start(s, v.id, "/rec/v.mkv.enc", "matroska", true, t0, rec1), 0);
    CHECK_EQ_INT(
        tm_recording_start(s, v.id, "/rec/v.p2.mkv.enc", "matroska", true, t0 + 5000, rec2), 0);
    int n = -1;
    char id[TM_RENDITION_ID_LEN], visit[64];
    /* Still active, still recording: nothing to render. */
    CHECK_EQ_INT(tm_rendition_requeue(s, NULL, 0, t0, &n), 0);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(tm_recording_finish(s, rec1, 10, 5000, sha_a, 0, t0 + 5000), 0);
    CHECK_EQ_INT(tm_store_visit_end(s, v.id, "completed", "d1", t0 + 9000), 0);
    /* Over, but part 2 is still being written. */
    CHECK_EQ_INT(tm_rendition_requeue(s, v.id, 0, t0 + 9000, &n), 0);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(tm_rendition_next(s, id, visit), TM_ENOTFOUND);
    CHECK_EQ_INT(tm_recording_finish(s, rec2, 20, 4000, sha_a, 0, t0 + 9500), 0);
    CHECK_EQ_INT(tm_rendition_requeue(s, v.id, 0, t0 + 9500, &n), 0);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(tm_rendition_requeue(s, NULL, 0, t0 + 9600, &n), 0);
    CHECK_EQ_INT(n, 0); /* once */
    CHECK_EQ_INT(tm_rendition_next(s, id, visit), 0);
    CHECK_STR(visit, v.id);
    CHECK(g_str_has_prefix(id, "ren-"));

    json_t *src = tm_rendition_sources(s, v.id);
    CHECK_EQ_INT(json_array_size(src), 2);
    CHECK_STR(json_string_value(field(json_array_get(src, 0), "path")), "/rec/v.mkv.enc");
    CHECK_EQ_INT(json_integer_value(field(json_array_get(src, 1), "started_at_ms")), t0 + 5000);
    CHECK(json_is_true(field(json_array_get(src, 1), "encrypted")));
    json_decref(src);

    CHECK_EQ_INT(tm_rendition_finish(s, id, 1, 1, sha_a, NULL, 1, t0), TM_ECONFLICT);
    CHECK_EQ_INT(tm_rendition_begin(s, "ren-none", "/x", true, 2, t0), TM_ENOTFOUND);
    CHECK_EQ_INT(tm_rendition_begin(s, id, "/rec/v.review.webm.enc", true, 2, t0 + 10000), 0);
    CHECK_EQ_INT(tm_rendition_begin(s, id, "/rec/v.review.webm.enc", true, 2, t0), TM_ECONFLICT);
    CHECK_EQ_INT(tm_rendition_next(s, id, visit), TM_ENOTFOUND);
    int64_t count = -1;
    CHECK_EQ_INT(tm_rendition_count(s, "rendering", &count), 0);
    CHECK_EQ_INT(count, 1);
    /* The server stopped while rendering: queued again at the next start. */
    CHECK_EQ_INT(tm_rendition_requeue(s, NULL, 0, t0 + 11000, &n), 0);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(tm_rendition_next(s, id, visit), 0);
    CHECK_EQ_INT(tm_rendition_begin(s, id, "/rec/v.review.webm.enc", true, 2, t0 + 12000), 0);
    CHECK_EQ_INT(tm_rendition_finish(s, id, 100, 9000, "XYZ", NULL, 5, t0), TM_EINVAL);
    CHECK_EQ_INT(tm_rendition_finish(s, id, 100, 9000, sha_a, sha_a, 1234, t0 + 20000), 0);
    CHECK_EQ_INT(tm_rendition_fail(s, id, "late", 0, t0), TM_ECONFLICT);
    json_t *got = tm_rendition_get(s, id);
    CHECK_STR(json_string_value(field(got, "state")), "complete");
    CHECK_STR(json_string_value(field(got, "plain_sha256")), sha_a);
    CHECK_EQ_INT(json_integer_value(field(got, "parts")), 2);
    CHECK_EQ_INT(json_integer_value(field(got, "cpu_ms")), 1234);
    CHECK(json_is_true(field(got, "encrypted")));
    json_decref(got);
    json_t *vr = tm_store_visit_record(s, v.id);
    CHECK_EQ_INT(json_array_size(field(vr, "renditions")), 1);
    json_decref(vr);

    /* A failure is kept with its reason and not queued again. */
    tm_visit w;
    active_visit(s, &w, "p2");
    CHECK_EQ_INT(tm_recording_start(s, w.id, "/rec/w.mkv", "matroska", false, t0, rec1), 0);
    CHECK_EQ_INT(tm_recording_finish(s, rec1, 10, 5000, sha_a, 0, t0 + 5000), 0);
    CHECK_EQ_INT(tm_store_visit_end(s, w.id, "completed", "d1", t0 + 6000), 0);
    CHECK_EQ_INT(tm_rendition_requeue(s, NULL, 0, t0 + 7000, &n), 0);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(tm_rendition_next(s, id, visit), 0);
    CHECK_EQ_INT(tm_rendition_fail(s, id, "evidence part 1 ends early", 50, t0 + 8000), 0);
    CHECK_EQ_INT(tm_rendition_requeue(s, NULL, 0, t0 + 9000, &n), 0);
    CHECK_EQ_INT(n, 0);
    got = tm_rendition_get(s, id);
    CHECK_STR(json_string_value(field(got, "error")), "evidence part 1 ends early");
    json_decref(got);

    /* Retries: a new row each, after base, then four times as long; bounded;
     * none once an attempt is complete. */
    int64_t due = -1;
    CHECK_EQ_INT(tm_rendition_retry(s, 0, 1000, t0 + 8500, &n, &due), TM_EINVAL);
    CHECK_EQ_INT(tm_rendition_retry(s, 3, 1000, t0 + 8500, &n, &due), 0);
    CHECK_EQ_INT(n, 0);
    CHECK(due == t0 + 9000);
    CHECK_EQ_INT(tm_rendition_retry(s, 3, 1000, t0 + 9000, &n, &due), 0);
    CHECK_EQ_INT(n, 1);
    CHECK(due == 0);
    char first[TM_RENDITION_ID_LEN];
    g_strlcpy(first, id, sizeof first);
    CHECK_EQ_INT(tm_rendition_next(s, id, visit), 0);
    CHECK_STR(visit, w.id);
    CHECK(strcmp(id, first) != 0);
    CHECK_EQ_INT(tm_rendition_retry(s, 3, 1000, t0 + 99000, &n, &due), 0);
    CHECK_EQ_INT(n, 0); /* one is queued already */
    CHECK_EQ_INT(tm_rendition_begin(s, id, "/rec/w.review.webm", false, 1, t0 + 9500), 0);
    CHECK_EQ_INT(tm_rendition_fail(s, id, "evidence part 1 ends early", 50, t0 + 10000), 0);
    CHECK_EQ_INT(tm_rendition_retry(s, 3, 1000, t0 + 13999, &n, &due), 0);
    CHECK_EQ_INT(n, 0);
    CHECK(due == t0 + 14000);
    CHECK_EQ_INT(tm_rendition_retry(s, 3, 1000, t0 + 14000, &n, &due), 0);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(tm_rendition_next(s, id, visit), 0);
    CHECK_EQ_INT(tm_rendition_fail(s, id, "evidence part 1 ends early", 50, t0 + 15000), 0);
    CHECK_EQ_INT(tm_rendition_retry(s, 3, 1000, t0 + 900000000, &n, &due), 0);
    CHECK_EQ_INT(n, 0); /* three tries, all failed: it stays failed */
    CHECK(due == 0);
    CHECK_EQ_INT(tm_rendition_retry(s, 4, 1000, t0 + 30999, &n, &due), 0);
    CHECK(n == 0 && due == t0 + 31000);
    CHECK_EQ_INT(tm_rendition_retry(s, 4, 1000, t0 + 31000, &n, &due), 0);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(tm_rendition_next(s, id, visit), 0);
    CHECK_EQ_INT(tm_rendition_begin(s, id, "/rec/w.review.webm", false, 1, t0 + 31500), 0);
    CHECK_EQ_INT(tm_rendition_finish(s, id, 1, 5000, sha_a, NULL, 1, t0 + 32000), 0);
    CHECK_EQ_INT(tm_rendition_retry(s, 10, 1000, t0 + 900000000, &n, &due), 0);
    CHECK(n == 0 && due == 0);
    json_t *wr = tm_store_visit_record(s, w.id);
    CHECK_EQ_INT(json_array_size(field(wr, "renditions")), 4);
    json_decref(wr);

    /* Retention: the file goes, the row says so, the sweep is audited. */
    char *file = g_build_filename(dir, "old.review.webm", NULL);
    CHECK(g_file_set_contents(file, "x", 1, NULL));
    tm_visit x;
    active_visit(s, &x, "p3");
    int64_t old = t0 - 40LL * 86400000;
    CHECK_EQ_INT(tm_recording_start(s, x.id, "/rec/x.mkv", "matroska", false, old, rec1), 0);
    CHECK_EQ_INT(tm_recording_finish(s, rec1, 10, 5000, sha_a, 0, old), 0);
    CHECK_EQ_INT(tm_store_visit_end(s, x.id, "completed", "d1", old + 1), 0);
    CHECK_EQ_INT(tm_rendition_requeue(s, NULL, t0 - 3600000, t0, &n), 0);
    CHECK_EQ_INT(n, 0); /* the minute's sweep looks at the last hour only */
    CHECK_EQ_INT(tm_rendition_requeue(s, x.id, 0, old + 2, &n), 0);
    CHECK_EQ_INT(tm_rendition_next(s, id, visit), 0);
    CHECK_STR(visit, x.id);
    CHECK_EQ_INT(tm_rendition_begin(s, id, file, false, 1, old + 3), 0);
    CHECK_EQ_INT(tm_rendition_finish(s, id, 1, 5000, sha_a, NULL, 1, old + 4), 0);
    int deleted = -1, failed = -1;
    CHECK_EQ_INT(tm_rendition_retention_sweep(s, 30, t0, &deleted, &failed), 0);
    CHECK_EQ_INT(deleted, 1);
    CHECK_EQ_INT(failed, 0);
    CHECK(!g_file_test(file, G_FILE_TEST_EXISTS));
    got = tm_rendition_get(s, id);
    CHECK_STR(json_string_value(field(got, "state")), "deleted");
    json_decref(got);
    g_free(file);
    tm_store_free(s);
}

void store_suite_run(const store_backend *b)
{
    char *dir = g_dir_make_tmp("tm-store-suite-XXXXXX", NULL);
    CHECK(dir != NULL);
    static const struct {
        const char *name;
        void (*fn)(const store_backend *b, const char *dir); /* dir: for recording files */
    } tests[] = {
        {"handle", t_handle},
        {"schedule", t_schedule},
        {"appointments", t_appointments},
        {"visit_lifecycle", t_visit_lifecycle},
        {"failed_steps_leave_nothing", t_failed_steps_leave_nothing},
        {"visit_facts", t_visit_facts},
        {"visit_evidence", t_visit_evidence},
        {"refusals_and_restore", t_refusals_and_restore},
        {"recording_start_finish", t_recording_start_finish},
        {"recording_fail", t_recording_fail},
        {"audit", t_audit},
        {"outbox_order_and_retry", t_outbox_order_and_retry},
        {"outbox_dead_letters", t_outbox_dead_letters},
        {"recording_recover", t_recording_recover},
        {"recording_segments", t_recording_segments},
        {"recording_retention", t_recording_retention},
        {"uploads", t_uploads},
        {"visit_chain", t_visit_chain},
        {"visit_seal", t_visit_seal},
        {"party_staff_and_members", t_party_staff_and_members},
        {"party_invites", t_party_invites},
        {"party_guest_links", t_party_guest_links},
        {"renditions", t_renditions},
        {"institutions", store_suite_institutions},
        {"nodes", store_suite_nodes},
        {"leases", store_suite_leases},
    };
    for (size_t i = 0; i < TM_ARRAY_LEN(tests); i++) {
        tests[i].fn(b, dir);
        printf("ok %s/%s\n", b->name, tests[i].name);
    }
    char *cmd = g_strdup_printf("rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", dir);
    g_free(cmd);
    g_free(dir);
}

/*
 * test_fhir.c - the FHIR R4 Encounter export from real visit records: a
 * finished visit with notes (ICD-10), chat and a recording, built through
 * the real SQLite store; a waiting visit; a cancelled one. Checks the
 * required Encounter shape (status, class) and that every code comes from
 * the right system, and that contained resources are referenced.
 */
#include "telemed/common.h"
#include "telemed/fhir.h"
#include "telemed/store.h"
#include "tm_test.h"

#include <glib.h>

static char *dir;

static tm_store *open_store(void)
{
    char *path = g_build_filename(dir, "fhir.db", NULL), *err = NULL;
    tm_store *s = tm_store_open(path, "hosp-1", &err);
    CHECK(s != NULL);
    g_free(path);
    return s;
}

static const char *sget(json_t *o, const char *path)
{
    /* "a.b.0.c": objects by key, arrays by index. */
    char **parts = g_strsplit(path, ".", -1);
    json_t *cur = o;
    for (int i = 0; parts[i] && cur; i++) {
        if (json_is_array(cur))
            cur = json_array_get(cur, (size_t)g_ascii_strtoull(parts[i], NULL, 10));
        else
            cur = json_object_get(cur, parts[i]);
    }
    g_strfreev(parts);
    return json_string_value(cur);
}

static json_t *jget(json_t *o, const char *path)
{
    char **parts = g_strsplit(path, ".", -1);
    json_t *cur = o;
    for (int i = 0; parts[i] && cur; i++) {
        if (json_is_array(cur))
            cur = json_array_get(cur, (size_t)g_ascii_strtoull(parts[i], NULL, 10));
        else
            cur = json_object_get(cur, parts[i]);
    }
    g_strfreev(parts);
    return cur;
}

static json_t *contained(json_t *enc, const char *type, int nth)
{
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(enc, "contained"), i, r)
    {
        if (strcmp(sget(r, "resourceType"), type) == 0 && nth-- == 0)
            return r;
    }
    return NULL;
}

/* Every "#x" reference anywhere must name a contained resource (or "#",
 * the Encounter itself): FHIR's dom-3/ref-1 for contained resources. */
static void check_refs(json_t *enc, json_t *node)
{
    if (json_is_object(node)) {
        const char *k;
        json_t *v;
        json_object_foreach(node, k, v)
        {
            if (strcmp(k, "reference") == 0 && json_is_string(v) &&
                json_string_value(v)[0] == '#') {
                const char *id = json_string_value(v) + 1;
                bool found = *id == '\0';
                size_t i;
                json_t *r;
                json_array_foreach(json_object_get(enc, "contained"), i, r)
                {
                    found = found || strcmp(sget(r, "id"), id) == 0;
                }
                if (!found)
                    fprintf(stderr, "dangling reference #%s\n", id);
                CHECK(found);
            }
            check_refs(enc, v);
        }
    } else if (json_is_array(node)) {
        size_t i;
        json_t *v;
        json_array_foreach(node, i, v)
        {
            check_refs(enc, v);
        }
    }
}

static void check_required_shape(json_t *e)
{
    CHECK_STR(sget(e, "resourceType"), "Encounter");
    CHECK(sget(e, "status") != NULL);
    /* R4: class is one Coding from v3-ActCode; VR is "virtual". */
    CHECK(json_is_object(json_object_get(e, "class")));
    CHECK_STR(sget(e, "class.system"), "http://terminology.hl7.org/CodeSystem/v3-ActCode");
    CHECK_STR(sget(e, "class.code"), "VR");
    CHECK_STR(sget(e, "subject.reference"), "#patient");
    json_t *pat = contained(e, "Patient", 0);
    CHECK(pat != NULL);
    CHECK(sget(pat, "identifier.0.system") != NULL);
    CHECK(json_object_get(pat, "name") == NULL); /* ids only */
    CHECK(sget(e, "serviceProvider.identifier.value") != NULL);
    check_refs(e, e);
    /* It survives a round trip through text. */
    char *text = json_dumps(e, JSON_COMPACT);
    json_t *back = json_loads(text, 0, NULL);
    CHECK(back != NULL && json_equal(back, e));
    json_decref(back);
    free(text);
}

static void seed(tm_store *s)
{
    CHECK_EQ_INT(tm_store_dept_put(s, "cardio", "Cardiology"), 0);
    CHECK_EQ_INT(tm_store_doctor_put(s, "d1", "Dr One", "cardio", "LIC1", NULL), 0);
    char shift[64];
    int64_t now = tm_now_ms();
    CHECK_EQ_INT(tm_store_shift_add(s, "d1", "cardio", now - 3600000, now + 3600000, 5, shift), 0);
}

static void checkin(tm_store *s, tm_visit *v, const char *appt, bool urgent, int64_t at)
{
    memset(v, 0, sizeof(*v));
    g_strlcpy(v->patient_id, "p-42", sizeof(v->patient_id));
    g_strlcpy(v->dept_id, "cardio", sizeof(v->dept_id));
    if (appt)
        g_strlcpy(v->appointment_id, appt, sizeof(v->appointment_id));
    g_strlcpy(v->kind, "follow_up", sizeof(v->kind));
    v->urgent = urgent;
    v->checkin_ms = at;
    CHECK_EQ_INT(tm_store_visit_checkin(s, v, "ua/p"), 0);
}

static void test_finished_visit(void)
{
    tm_store *s = open_store();
    seed(s);
    tm_appointment a = {0};
    g_strlcpy(a.patient_id, "p-42", sizeof(a.patient_id));
    g_strlcpy(a.dept_id, "cardio", sizeof(a.dept_id));
    g_strlcpy(a.kind, "follow_up", sizeof(a.kind));
    a.slot_ms = tm_now_ms();
    char appt[64];
    CHECK_EQ_INT(tm_store_appt_create(s, &a, appt), 0);
    int64_t t0 = tm_now_ms() - 20 * 60000;
    tm_visit v;
    checkin(s, &v, appt, false, t0);
    CHECK_EQ_INT(tm_store_visit_offer(s, v.id, "d1", t0 + 60000), 0);
    CHECK_EQ_INT(tm_store_visit_accept(s, v.id, "d1", "ua/d", t0 + 120000), 0);
    int64_t msg;
    CHECK_EQ_INT(
        tm_store_chat_add(s, v.id, "p-42", "patient", "my chest hurts less", t0 + 180000, &msg), 0);
    CHECK_EQ_INT(
        tm_store_chat_add(s, v.id, "d1", "doctor", "good, keep the dose", t0 + 200000, &msg), 0);
    CHECK_EQ_INT(
        tm_store_note_save(s, v.id, "d1", "stable angina, continue", "I20.8", true, t0 + 600000),
        0);
    char rec[TM_RECORDING_ID_LEN];
    CHECK_EQ_INT(tm_recording_start(s, v.id, "/r/v.mkv", "matroska", false, t0 + 120000, rec), 0);
    CHECK_EQ_INT(
        tm_recording_finish(s, rec, 5000000, 15 * 60000,
                            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", 0,
                            t0 + 17 * 60000),
        0);
    CHECK_EQ_INT(tm_store_visit_end(s, v.id, "completed", "d1", t0 + 17 * 60000), 0);
    /* Its review copy, made after the visit. */
    char ren[TM_RENDITION_ID_LEN], ren_visit[64];
    int queued = 0;
    CHECK_EQ_INT(tm_rendition_requeue(s, v.id, 0, t0 + 17 * 60000, &queued), 0);
    CHECK_EQ_INT(queued, 1);
    CHECK_EQ_INT(tm_rendition_next(s, ren, ren_visit), 0);
    CHECK_EQ_INT(tm_rendition_begin(s, ren, "/r/v.review.webm", false, 1, t0 + 18 * 60000), 0);
    CHECK_EQ_INT(
        tm_rendition_finish(s, ren, 900000, 15 * 60000,
                            "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
                            NULL, 120000, t0 + 19 * 60000),
        0);

    json_t *record = tm_store_visit_record(s, v.id);
    CHECK(record != NULL);
    json_t *e = tm_fhir_encounter(record, "hosp-1");
    CHECK(e != NULL);
    check_required_shape(e);
    CHECK_STR(sget(e, "id"), v.id);
    CHECK_STR(sget(e, "identifier.0.value"), v.id);
    CHECK_STR(sget(e, "status"), "finished");
    CHECK_STR(sget(e, "class.display"), "virtual");
    CHECK_STR(sget(e, "priority.coding.0.system"),
              "http://terminology.hl7.org/CodeSystem/v3-ActPriority");
    CHECK_STR(sget(e, "priority.coding.0.code"), "R");

    /* The doctor attends, coded from v3-ParticipationType. */
    CHECK_EQ_INT(json_array_size(json_object_get(e, "participant")), 1);
    CHECK_STR(sget(e, "participant.0.type.0.coding.0.system"),
              "http://terminology.hl7.org/CodeSystem/v3-ParticipationType");
    CHECK_STR(sget(e, "participant.0.type.0.coding.0.code"), "ATND");
    CHECK_STR(sget(e, "participant.0.individual.reference"), "#doctor");
    CHECK_STR(sget(e, "participant.0.period.start"), sget(record, "accepted_at"));
    json_t *doc = contained(e, "Practitioner", 0);
    CHECK(doc != NULL);
    CHECK_STR(sget(doc, "identifier.0.value"), "d1");

    /* Period and length (UCUM minutes) agree with the record. */
    CHECK_STR(sget(e, "period.start"), sget(record, "accepted_at"));
    CHECK_STR(sget(e, "period.end"), sget(record, "ended_at"));
    CHECK_STR(sget(e, "length.unit"), "min");
    CHECK_STR(sget(e, "length.system"), "http://unitsofmeasure.org");
    CHECK_STR(sget(e, "length.code"), "min");
    CHECK(json_real_value(jget(e, "length.value")) > 14.9 &&
          json_real_value(jget(e, "length.value")) < 15.1);

    CHECK_STR(sget(e, "reasonCode.0.coding.0.system"), "http://hl7.org/fhir/sid/icd-10");
    CHECK_STR(sget(e, "reasonCode.0.coding.0.code"), "I20.8");
    char *appt_ref = g_strdup_printf("Appointment/%s", appt);
    CHECK_STR(sget(e, "appointment.0.reference"), appt_ref);
    g_free(appt_ref);
    CHECK_STR(sget(e, "serviceProvider.identifier.value"), "hosp-1");
    CHECK_STR(sget(e, "extension.0.valueString"), "completed");

    /* The recording as Media: link, size, SHA-256 in its extension. */
    json_t *m = contained(e, "Media", 0);
    CHECK(m != NULL);
    CHECK_STR(sget(m, "status"), "completed");
    CHECK_STR(sget(m, "type.coding.0.system"), "http://terminology.hl7.org/CodeSystem/media-type");
    CHECK_STR(sget(m, "type.coding.0.code"), "video");
    CHECK_STR(sget(m, "encounter.reference"), "#");
    char *url = g_strdup_printf("/api/v1/recordings/%s", rec);
    CHECK_STR(sget(m, "content.url"), url);
    g_free(url);
    CHECK_EQ_INT(json_integer_value(jget(m, "content.size")), 5000000);
    CHECK(jget(m, "content.hash") == NULL);
    CHECK_STR(sget(m, "content.extension.0.url"), TM_FHIR_EXT_SHA256);
    CHECK_STR(sget(m, "content.extension.0.valueString"),
              "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
    CHECK(json_real_value(jget(m, "duration")) > 899.0);

    /* The review copy as a second Media, the WebM served by its own route. */
    json_t *review = contained(e, "Media", 1);
    CHECK(review != NULL);
    CHECK_STR(sget(review, "id"), "review1");
    CHECK_STR(sget(review, "content.contentType"), "video/webm");
    url = g_strdup_printf("/api/v1/renditions/%s", ren);
    CHECK_STR(sget(review, "content.url"), url);
    g_free(url);
    CHECK_STR(sget(review, "content.extension.0.valueString"),
              "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae");
    CHECK(contained(e, "Media", 2) == NULL);

    /* Chat as Communications, senders resolved to the contained resources. */
    json_t *c0 = contained(e, "Communication", 0), *c1 = contained(e, "Communication", 1);
    CHECK(c0 && c1);
    CHECK_STR(sget(c0, "sender.reference"), "#patient");
    CHECK_STR(sget(c1, "sender.reference"), "#doctor");
    CHECK_STR(sget(c1, "payload.0.contentString"), "good, keep the dose");
    CHECK(contained(e, "Communication", 2) == NULL);

    json_decref(e);
    json_decref(record);
    tm_store_free(s);
}

static void test_waiting_and_cancelled(void)
{
    tm_store *s = open_store();
    tm_visit v;
    int64_t t0 = tm_now_ms() - 60000;
    checkin(s, &v, NULL, true, t0);
    json_t *record = tm_store_visit_record(s, v.id);
    json_t *e = tm_fhir_encounter(record, "hosp-1");
    check_required_shape(e);
    CHECK_STR(sget(e, "status"), "arrived");
    CHECK_STR(sget(e, "priority.coding.0.code"), "UR");
    CHECK_STR(sget(e, "period.start"), sget(record, "checkin_at"));
    CHECK(jget(e, "period.end") == NULL);
    CHECK(jget(e, "length") == NULL);
    CHECK(jget(e, "participant") == NULL);
    CHECK(jget(e, "reasonCode") == NULL);
    CHECK(jget(e, "appointment") == NULL);
    CHECK(contained(e, "Practitioner", 0) == NULL);
    json_decref(e);
    json_decref(record);

    CHECK_EQ_INT(tm_store_visit_end(s, v.id, "patient_left", "p-42", t0 + 30000), 0);
    record = tm_store_visit_record(s, v.id);
    e = tm_fhir_encounter(record, "hosp-1");
    check_required_shape(e);
    CHECK_STR(sget(e, "status"), "cancelled");
    json_decref(e);

    /* A record without its essentials is refused, not guessed. */
    json_object_del(record, "patient_id");
    CHECK(tm_fhir_encounter(record, "hosp-1") == NULL);
    CHECK(tm_fhir_encounter(json_null(), "hosp-1") == NULL);
    json_decref(record);
    tm_store_free(s);
}

/* A consultation request (issue 18) held as a visit, through the real
 * store's steps: the Encounter is basedOn a contained ServiceRequest with
 * the requester, the specialist, the question and the signed opinion, and
 * the opinion is the specialist's signed note of the visit. */
static void test_consultation(void)
{
    tm_store *s = open_store();
    seed(s);
    CHECK_EQ_INT(tm_store_dept_put(s, "gp", "General practice"), 0);
    CHECK_EQ_INT(tm_store_doctor_put(s, "dreq", "Dr Req", "gp", "LIC9", NULL), 0);
    int64_t now = tm_now_ms();
    json_t *refs = json_pack("[s]", "ecg:001");
    tm_consult_request c = {.reason = "AF on ECG",
                            .question = "Anticoagulate?",
                            .attachments = refs,
                            .window_start_ms = now,
                            .window_end_ms = now + 86400000};
    g_strlcpy(c.patient_id, "p-42", sizeof(c.patient_id));
    g_strlcpy(c.requester_id, "dreq", sizeof(c.requester_id));
    g_strlcpy(c.dept_id, "cardio", sizeof(c.dept_id));
    g_strlcpy(c.urgency, "emergency", sizeof(c.urgency));
    CHECK_EQ_INT(tm_store_consult_create(s, &c, now), 0);
    json_decref(refs);
    /* Refusals write nothing: a time past, a specialist of another department. */
    CHECK_EQ_INT(tm_store_consult_schedule(s, c.id, "d1", "d1", now - 1000, now), TM_EINVAL);
    CHECK_EQ_INT(tm_store_consult_schedule(s, c.id, "d1", "dreq", now + 60000, now), TM_EINVAL);
    CHECK_EQ_INT(tm_store_consult_opinion(s, c.id, "d1", "x", NULL, true, now), TM_EPERM);
    CHECK_EQ_INT(tm_store_consult_schedule(s, c.id, "d1", "d1", now + 60000, now), 0);
    CHECK_EQ_INT(tm_store_consult_schedule(s, c.id, "d1", "d1", now + 90000, now), TM_ECONFLICT);
    json_t *row = tm_store_consult_get(s, c.id);
    tm_visit v;
    checkin(s, &v, NULL, false, now);
    /* A visit of another appointment is no consultation's. */
    json_t *none = NULL;
    CHECK_EQ_INT(tm_store_visit_offer(s, v.id, "d1", now + 1), 0);
    CHECK_EQ_INT(tm_store_visit_accept(s, v.id, "d1", "ua/d", now + 2), 0);
    CHECK_EQ_INT(tm_store_consult_visit_started(s, v.id, &none), 0);
    CHECK(none == NULL);
    CHECK_EQ_INT(tm_store_visit_end(s, v.id, "completed", "d1", now + 3), 0);

    memset(&v, 0, sizeof(v));
    g_strlcpy(v.patient_id, "p-42", sizeof(v.patient_id));
    g_strlcpy(v.dept_id, "gp", sizeof(v.dept_id));
    g_strlcpy(v.appointment_id, json_string_value(json_object_get(row, "appointment_id")),
              sizeof(v.appointment_id));
    g_strlcpy(v.kind, "follow_up", sizeof(v.kind));
    v.checkin_ms = now + 10;
    CHECK_EQ_INT(tm_store_visit_checkin(s, &v, "ua/p"), 0);
    CHECK_EQ_INT(tm_store_visit_offer(s, v.id, "dreq", now + 11), 0);
    CHECK_EQ_INT(tm_store_visit_accept(s, v.id, "dreq", "ua/r", now + 12), 0);
    json_t *started = NULL;
    CHECK_EQ_INT(tm_store_consult_visit_started(s, v.id, &started), 0);
    CHECK_STR(sget(started, "state"), "in_progress");
    CHECK_EQ_INT(tm_store_party_join(s, v.id, "d1", "consulting", "ua/s", true, now + 13), 0);
    CHECK_EQ_INT(tm_store_consult_opinion(s, c.id, "d1", "Start a DOAC.", "I48.0", true, now + 14),
                 0);
    CHECK_EQ_INT(tm_store_consult_opinion(s, c.id, "d1", "Again.", NULL, true, now + 15),
                 TM_ECONFLICT);

    json_t *record = tm_store_visit_record(s, v.id);
    CHECK_STR(sget(record, "consultation.state"), "completed");
    CHECK_STR(sget(record, "notes.0.doctor_id"), "d1");
    CHECK_STR(sget(record, "notes.0.body"), "Start a DOAC.");
    json_t *e = tm_fhir_encounter(record, "hosp-1");
    check_required_shape(e);
    CHECK_STR(sget(e, "basedOn.0.reference"), "#consultation");
    json_t *sr = contained(e, "ServiceRequest", 0);
    CHECK(sr != NULL);
    CHECK_STR(sget(sr, "status"), "completed");
    CHECK_STR(sget(sr, "priority"), "stat");
    CHECK_STR(sget(sr, "category.0.coding.0.code"), "11429006");
    CHECK_STR(sget(sr, "requester.identifier.value"), "dreq");
    CHECK_STR(sget(sr, "performer.0.identifier.value"), "d1");
    CHECK_STR(sget(sr, "identifier.0.value"), c.id);
    CHECK_STR(sget(sr, "reasonCode.0.text"), "AF on ECG");
    CHECK_STR(sget(sr, "supportingInfo.0.display"), "ecg:001");
    CHECK_STR(sget(sr, "note.0.text"), "Anticoagulate?");
    CHECK_STR(sget(sr, "note.1.text"), "Start a DOAC.");
    CHECK_STR(sget(sr, "note.1.authorReference.identifier.value"), "d1");
    CHECK_STR(sget(e, "reasonCode.0.coding.0.code"), "I48.0");
    json_decref(e);
    json_decref(record);
    json_decref(started);
    json_decref(row);
    tm_store_free(s);
}

/* Appointments from the store as R4 Appointments: status codes, start and
 * end (R4 wants both once booked), v2-0276 types, participants. */
static void test_appointments(void)
{
    tm_store *s = open_store();
    tm_appointment a = {0};
    g_strlcpy(a.patient_id, "p-7", sizeof(a.patient_id));
    g_strlcpy(a.dept_id, "cardio", sizeof(a.dept_id));
    g_strlcpy(a.doctor_id, "d1", sizeof(a.doctor_id));
    g_strlcpy(a.kind, "follow_up", sizeof(a.kind));
    a.slot_ms = 1795680000000; /* 2026-11-26T08:00:00Z */
    char id1[64], id2[64];
    CHECK_EQ_INT(tm_store_appt_create(s, &a, id1), 0);
    tm_appointment b = a;
    b.doctor_id[0] = '\0';
    g_strlcpy(b.kind, "first", sizeof(b.kind));
    b.slot_ms += 3600000;
    CHECK_EQ_INT(tm_store_appt_create(s, &b, id2), 0);
    CHECK_EQ_INT(tm_store_appt_get(s, id2, &b), 0);
    g_strlcpy(b.status, "cancelled", sizeof(b.status));
    CHECK_EQ_INT(tm_store_appt_update(s, &b), 0);

    json_t *rows = tm_store_appt_list(s, NULL, "p-7", NULL, NULL, 0, 0, 10);
    CHECK_EQ_INT(json_array_size(rows), 2);
    json_t *x = tm_fhir_appointment(json_array_get(rows, 0), "hosp-1", 20);
    json_t *y = tm_fhir_appointment(json_array_get(rows, 1), "hosp-1", 20);
    CHECK(x && y);
    CHECK_STR(sget(x, "resourceType"), "Appointment");
    CHECK_STR(sget(x, "id"), id1);
    CHECK_STR(sget(x, "status"), "booked");
    CHECK_STR(sget(x, "start"), "2026-11-26T08:00:00.000Z");
    CHECK_STR(sget(x, "end"), "2026-11-26T08:20:00.000Z");
    CHECK_EQ_INT(json_integer_value(jget(x, "minutesDuration")), 20);
    CHECK_STR(sget(x, "appointmentType.coding.0.system"),
              "http://terminology.hl7.org/CodeSystem/v2-0276");
    CHECK_STR(sget(x, "appointmentType.coding.0.code"), "FOLLOWUP");
    CHECK_EQ_INT(json_array_size(json_object_get(x, "participant")), 2);
    CHECK_STR(sget(x, "participant.0.actor.type"), "Patient");
    CHECK_STR(sget(x, "participant.0.actor.identifier.value"), "p-7");
    CHECK_STR(sget(x, "participant.0.status"), "accepted");
    CHECK_STR(sget(x, "participant.1.actor.type"), "Practitioner");
    CHECK_STR(sget(x, "participant.1.actor.identifier.value"), "d1");
    CHECK_STR(sget(y, "status"), "cancelled");
    CHECK_STR(sget(y, "appointmentType.coding.0.code"), "ROUTINE");
    CHECK_EQ_INT(json_array_size(json_object_get(y, "participant")), 1);
    json_decref(x);
    json_decref(y);

    json_object_del(json_array_get(rows, 0), "slot_at");
    CHECK(tm_fhir_appointment(json_array_get(rows, 0), "hosp-1", 20) == NULL);
    json_decref(rows);
    tm_store_free(s);
}

int main(void)
{
    dir = g_dir_make_tmp("tm-fhir-XXXXXX", NULL);
    CHECK(dir != NULL);
    RUN(test_finished_visit);
    RUN(test_waiting_and_cancelled);
    RUN(test_appointments);
    RUN(test_consultation);
    char *cmd = g_strdup_printf("rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    g_free(cmd);
    g_free(dir);
    TEST_DONE();
}

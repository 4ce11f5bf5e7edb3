/*
 * test_feed_outbox.c - what the regulator receives, against a real SQLite
 * file made by tm_store_open: the event payloads of a whole visit as the
 * store writes them; and the feed's pure helpers (backoff, signature). The
 * outbox's delivery side (order per visit, retries, dead letters, replay)
 * is in the store suite (store_suite.c).
 */
#include "tm_test.h"

#include "telemed/common.h"
#include "telemed/feed.h"
#include "telemed/store.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <jansson.h>

static char *tmpdir;
static tm_store *store;
static const int64_t T0 = 1764072000000LL; /* 2025-11-25T12:00:00Z */

static void open_store(void)
{
    tmpdir = g_dir_make_tmp("tm-feed-outbox-XXXXXX", NULL);
    char *path = g_build_filename(tmpdir, "telemed.db", NULL);
    char *err = NULL;
    store = tm_store_open(path, "hosp-1", &err);
    if (!store)
        fprintf(stderr, "open: %s\n", err ? err : "?");
    CHECK(store != NULL);
    g_free(path);
    CHECK_EQ_INT(tm_store_dept_put(store, "cardio", "Cardiology"), 0);
    CHECK_EQ_INT(tm_store_doctor_put(store, "doc-1", "Dr A", "cardio", "LIC-123", "attending"), 0);
}

static void checkin(tm_visit *v, const char *patient, int64_t at)
{
    memset(v, 0, sizeof(*v));
    snprintf(v->patient_id, sizeof(v->patient_id), "%s", patient);
    snprintf(v->dept_id, sizeof(v->dept_id), "cardio");
    snprintf(v->kind, sizeof(v->kind), "follow_up");
    v->checkin_ms = at;
    CHECK_EQ_INT(tm_store_visit_checkin(store, v, "test"), 0);
}

static void start(const char *visit_id, int64_t at)
{
    CHECK_EQ_INT(tm_store_visit_offer(store, visit_id, "doc-1", at), 0);
    CHECK_EQ_INT(tm_store_visit_accept(store, visit_id, "doc-1", "test", at + 1000), 0);
}

/* Everything pending now, in the order the feed would send it. */
static size_t due_now(tm_outbox_event **ev)
{
    size_t n = 0;
    CHECK_EQ_INT(tm_outbox_next_batch(store, tm_now_ms(), 1000, ev, &n), 0);
    return n;
}

static json_t *payload_of(const tm_outbox_event *e)
{
    json_t *j = json_loadb(e->payload, e->payload_len, 0, NULL);
    CHECK(json_is_object(j));
    return j;
}

static void deliver_all(void)
{
    tm_outbox_event *ev;
    size_t n = due_now(&ev);
    for (size_t i = 0; i < n; i++)
        CHECK_EQ_INT(tm_outbox_mark_delivered(store, &ev[i].seq, 1, 200, tm_now_ms()), 0);
    tm_outbox_events_free(ev, n);
}

static void test_full_visit_payloads(void)
{
    tm_visit v;
    checkin(&v, "pat-1", T0);
    start(v.id, T0 + 60000);
    CHECK_EQ_INT(tm_store_visit_end(store, v.id, "completed", "doc-1", T0 + 661000), 0);
    CHECK_EQ_INT(
        tm_store_note_save(store, v.id, "doc-1", "private note text", "I10", true, T0 + 700000), 0);
    CHECK_EQ_INT(tm_store_rating_add(store, v.id, "pat-1", 5, "very good", T0 + 710000), 0);

    tm_outbox_event *ev;
    size_t n = due_now(&ev);
    CHECK_EQ_INT(n, 5);
    CHECK_STR(ev[0].type, "visit.checked_in");
    CHECK_STR(ev[1].type, "visit.started");
    CHECK_STR(ev[2].type, "visit.ended");
    CHECK_STR(ev[3].type, "visit.note_signed");
    CHECK_STR(ev[4].type, "visit.rated");
    for (size_t i = 0; i < n; i++) {
        CHECK_STR(ev[i].visit_id, v.id);
        CHECK_EQ_INT(strlen(ev[i].event_id), 36);
        if (i)
            CHECK(ev[i].seq > ev[i - 1].seq);
    }

    json_t *d = payload_of(&ev[0]);
    CHECK_STR(json_string_value(json_object_get(d, "visit_id")), v.id);
    CHECK_STR(json_string_value(json_object_get(d, "patient_id")), "pat-1");
    CHECK_STR(json_string_value(json_object_get(d, "department_id")), "cardio");
    CHECK_STR(json_string_value(json_object_get(d, "visit_kind")), "follow_up");
    CHECK_STR(json_string_value(json_object_get(d, "channel")), "video");
    CHECK_STR(json_string_value(json_object_get(d, "state")), "waiting");
    CHECK(json_is_null(json_object_get(d, "doctor_id")));
    CHECK(json_is_null(json_object_get(d, "recording_consent"))); /* not asked */
    CHECK_EQ_INT(json_integer_value(json_object_get(d, "offers")), 0);
    CHECK_STR(json_string_value(json_object_get(json_object_get(d, "times"), "checked_in_at")),
              "2025-11-25T12:00:00.000Z");
    json_decref(d);

    d = payload_of(&ev[1]);
    CHECK_STR(json_string_value(json_object_get(d, "state")), "active");
    CHECK_STR(json_string_value(json_object_get(d, "doctor_id")), "doc-1");
    CHECK_STR(json_string_value(json_object_get(d, "doctor_licence_no")), "LIC-123");
    CHECK_EQ_INT(json_integer_value(json_object_get(d, "response_ms")), 61000);
    CHECK_EQ_INT(json_integer_value(json_object_get(d, "queue_wait_ms")), 61000);
    CHECK_STR(json_string_value(json_object_get(json_object_get(d, "times"), "started_at")),
              "2025-11-25T12:01:01.000Z");
    json_decref(d);

    d = payload_of(&ev[2]);
    CHECK_STR(json_string_value(json_object_get(d, "state")), "ended");
    CHECK_STR(json_string_value(json_object_get(d, "end_reason")), "completed");
    CHECK_EQ_INT(json_integer_value(json_object_get(d, "duration_ms")), 600000);
    json_decref(d);

    d = payload_of(&ev[3]);
    json_t *note = json_object_get(d, "note");
    CHECK_STR(json_string_value(json_object_get(note, "diagnosis_code")), "I10");
    CHECK(strstr(ev[3].payload, "private note text") == NULL); /* the record stays home */
    json_decref(d);

    d = payload_of(&ev[4]);
    json_t *rating = json_object_get(d, "rating");
    CHECK_EQ_INT(json_integer_value(json_object_get(rating, "score")), 5);
    CHECK_STR(json_string_value(json_object_get(rating, "comment")), "very good");
    json_decref(d);
    tm_outbox_events_free(ev, n);
    deliver_all();
}

static void test_payload_recording_consent(void)
{
    const int given[2] = {1, -1};
    for (int i = 0; i < 2; i++) {
        tm_visit v;
        memset(&v, 0, sizeof(v));
        snprintf(v.patient_id, sizeof(v.patient_id), "pat-c%d", i);
        snprintf(v.dept_id, sizeof(v.dept_id), "cardio");
        snprintf(v.kind, sizeof(v.kind), "follow_up");
        v.checkin_ms = T0;
        v.recording_consent = given[i];
        CHECK_EQ_INT(tm_store_visit_checkin(store, &v, "test"), 0);
        tm_outbox_event *ev;
        size_t n = due_now(&ev);
        CHECK_EQ_INT(n, (size_t)i + 1);
        CHECK_STR(ev[i].visit_id, v.id);
        json_t *d = payload_of(&ev[i]);
        CHECK(json_is_boolean(json_object_get(d, "recording_consent")));
        CHECK_EQ_INT(json_is_true(json_object_get(d, "recording_consent")), given[i] == 1);
        json_decref(d);
        tm_outbox_events_free(ev, n);
    }
    deliver_all();
}

/* The evidence: consent at check-in, the doctor's check at visit.started,
 * the advice at visit.ended; null where there is none. */
static void test_payload_evidence(void)
{
    tm_visit v;
    memset(&v, 0, sizeof(v));
    snprintf(v.patient_id, sizeof(v.patient_id), "pat-e");
    snprintf(v.dept_id, sizeof(v.dept_id), "cardio");
    snprintf(v.kind, sizeof(v.kind), "follow_up");
    snprintf(v.consent_version, sizeof(v.consent_version), "2026.1");
    snprintf(v.consent_session, sizeof(v.consent_session), "ws-abc");
    v.checkin_ms = T0;
    v.recording_consent = 1;
    CHECK_EQ_INT(tm_store_visit_checkin(store, &v, "test"), 0);
    tm_doctor_check check = {.method = "endpoint", .amr = "face", .verified_ms = T0 + 500};
    CHECK_EQ_INT(tm_store_visit_offer(store, v.id, "doc-1", T0 + 1000), 0);
    CHECK_EQ_INT(tm_store_visit_accept_checked(store, v.id, "doc-1", "t", &check, T0 + 2000), 0);
    CHECK_EQ_INT(tm_store_visit_refer(store, v.id, "doc-1", "ER now: chest pain", T0 + 9000), 0);
    tm_outbox_event *ev;
    size_t n = due_now(&ev);
    CHECK_EQ_INT(n, 3);
    json_t *in = payload_of(&ev[0]), *started = payload_of(&ev[1]), *ended = payload_of(&ev[2]);
    json_t *consent = json_object_get(in, "consent");
    CHECK_STR(json_string_value(json_object_get(consent, "version")), "2026.1");
    CHECK_STR(json_string_value(json_object_get(consent, "session_id")), "ws-abc");
    CHECK_STR(json_string_value(json_object_get(consent, "accepted_at")),
              "2025-11-25T12:00:00.000Z");
    CHECK(json_is_true(json_object_get(consent, "recording")));
    CHECK(json_is_null(json_object_get(in, "doctor_verification")));
    CHECK(json_is_null(json_object_get(in, "referral_advice")));
    json_t *dv = json_object_get(started, "doctor_verification");
    CHECK_STR(json_string_value(json_object_get(dv, "method")), "endpoint");
    CHECK_STR(json_string_value(json_object_get(dv, "amr")), "face");
    CHECK_STR(json_string_value(json_object_get(dv, "verified_at")), "2025-11-25T12:00:00.500Z");
    CHECK_STR(json_string_value(json_object_get(ended, "end_reason")), "terminate_and_refer");
    CHECK_STR(json_string_value(json_object_get(ended, "referral_advice")), "ER now: chest pain");
    json_decref(in);
    json_decref(started);
    json_decref(ended);
    tm_outbox_events_free(ev, n);
    deliver_all();
}

/* A step on a visit that does not exist writes no event. */
static void test_no_event_for_missing_visit(void)
{
    CHECK_EQ_INT(tm_store_visit_end(store, "nope", "completed", "doc-1", T0), TM_ENOTFOUND);
    tm_outbox_event *ev;
    CHECK_EQ_INT(due_now(&ev), 0);
}

static void test_backoff(void)
{
    /* First retry: within [0, base]. */
    CHECK_EQ_INT(tm__feed_backoff_ms(1000, 300000, 1, 0, 0), 0);
    CHECK_EQ_INT(tm__feed_backoff_ms(1000, 300000, 1, 0, 1000), 1000);
    CHECK_EQ_INT(tm__feed_backoff_ms(1000, 300000, 1, 0, 1001), 0);
    /* Doubling: attempt 4 spans [0, 8000]. */
    CHECK_EQ_INT(tm__feed_backoff_ms(1000, 300000, 4, 0, 8000), 8000);
    CHECK_EQ_INT(tm__feed_backoff_ms(1000, 300000, 4, 0, 8001), 0);
    /* Capped, also for absurd attempt counts (no overflow). */
    for (uint32_t r = 0; r < 2000000; r += 99991) {
        int64_t d = tm__feed_backoff_ms(1000, 300000, 1000000, 0, r);
        CHECK(d >= 0 && d <= 300000);
    }
    CHECK_EQ_INT(tm__feed_backoff_ms(1000, 300000, 60, 0, 300000), 300000);
    /* Retry-After is a floor, up to a day. */
    CHECK_EQ_INT(tm__feed_backoff_ms(1000, 300000, 1, 5000, 10), 5000);
    CHECK_EQ_INT(tm__feed_backoff_ms(1000, 2000, 1, 600000, 10), 600000);
    CHECK_EQ_INT(tm__feed_backoff_ms(1000, 2000, 1, 10LL * 86400 * 1000, 10), 86400LL * 1000);
}

static void test_signature(void)
{
    const char body[] = "{\"schema_version\":1,\"events\":[]}";
    char sig[72];
    tm__feed_sign("topsecret", 9, "1700000000", body, strlen(body), sig);
    /* python3: hmac.new(b"topsecret", b"1700000000." + body, sha256) */
    CHECK_STR(sig, "sha256=f5f5120e91d9181164469ed2379074e085901ed53c1f255e349713e0451f459e");
}

int main(void)
{
    open_store();
    RUN(test_full_visit_payloads);
    RUN(test_payload_recording_consent);
    RUN(test_payload_evidence);
    RUN(test_no_event_for_missing_visit);
    RUN(test_backoff);
    RUN(test_signature);
    tm_store_free(store);
    char *cmd = g_strdup_printf("rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", tmpdir);
    g_free(cmd);
    g_free(tmpdir);
    TEST_DONE();
}

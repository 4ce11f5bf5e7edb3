/*
 * test_store_followup.c - follow-ups, the appointment sweeps, no-show
 * counts, the patient's timeline and the messaging queue, on a real SQLite
 * file through include/telemed/store.h only (issue 18, followup18).
 */
#include "telemed/common.h"
#include "telemed/store.h"
#include "tm_test.h"
#ifdef TM_STORE_PG
#include "pg_fixture.h"
#endif

#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>

#define MIN_MS (60LL * 1000)
#define HOUR_MS (60 * MIN_MS)

static char tmpdir[] = "/tmp/tm-followup-XXXXXX";
static int64_t t0;

/* The database of one test, with two departments and a doctor in each. */
static tm_store *open_store(const char *name)
{
    char *file = g_strconcat(name, ".db", NULL), *err = NULL;
#ifdef TM_STORE_PG
    char *path = pg_fixture_url(file);
#else
    char *path = g_build_filename(tmpdir, file, NULL);
#endif
    tm_store *s = tm_store_open(path, "hosp-1", &err);
    if (!s)
        fprintf(stderr, "open: %s\n", err);
    CHECK(s != NULL);
    g_free(path);
    g_free(file);
    CHECK_EQ_INT(tm_store_dept_put(s, "cardio", "Cardiology"), 0);
    CHECK_EQ_INT(tm_store_dept_put(s, "endo", "Endocrinology"), 0);
    CHECK_EQ_INT(tm_store_doctor_put(s, "d1", "Dr One", "cardio", "L1", NULL), 0);
    CHECK_EQ_INT(tm_store_doctor_put(s, "d2", "Dr Two", "endo", "L2", NULL), 0);
    return s;
}

/* An active visit of patient with d1 in cardio; its id into id. */
static void active_visit(tm_store *s, const char *patient, char id[64])
{
    tm_visit v = {0};
    g_strlcpy(v.patient_id, patient, sizeof(v.patient_id));
    g_strlcpy(v.dept_id, "cardio", sizeof(v.dept_id));
    g_strlcpy(v.kind, "follow_up", sizeof(v.kind));
    v.checkin_ms = t0;
    CHECK_EQ_INT(tm_store_visit_checkin(s, &v, "ua"), 0);
    CHECK_EQ_INT(tm_store_visit_offer(s, v.id, "d1", t0 + 1000), 0);
    CHECK_EQ_INT(tm_store_visit_accept(s, v.id, "d1", "ua", t0 + 2000), 0);
    g_strlcpy(id, v.id, 64);
}

static tm_followup followup(const char *visit, int64_t slot, int64_t window_end)
{
    tm_followup f = {0};
    g_strlcpy(f.visit_id, visit, sizeof(f.visit_id));
    g_strlcpy(f.booked_by, "d1", sizeof(f.booked_by));
    f.slot_ms = slot;
    f.window_end_ms = window_end;
    return f;
}

static const char *str(json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : "";
}

static long long count_of(json_t *rows, const char *key, const char *id)
{
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r) if (strcmp(str(r, key), id) == 0) return (
        long long)json_integer_value(json_object_get(r, "no_shows"));
    return 0;
}

/* Drains the messaging queue's due rows, marking them delivered; returns
 * their types joined by ','. */
static char *drain_messaging(tm_store *s, int64_t now)
{
    GString *types = g_string_new(NULL);
    tm_outbox_event *ev;
    size_t n;
    CHECK_EQ_INT(tm_msgq_next_batch(s, now, 100, &ev, &n), 0);
    for (size_t i = 0; i < n; i++) {
        g_string_append_printf(types, "%s%s", i ? "," : "", ev[i].type);
        CHECK_EQ_INT(tm_msgq_mark_delivered(s, &ev[i].seq, 1, 200, now), 0);
    }
    tm_outbox_events_free(ev, n);
    return g_string_free(types, FALSE);
}

static void test_book_and_refuse(void)
{
    tm_store *s = open_store("book");
    char visit[64], appt[64];
    active_visit(s, "p1", visit);
    tm_followup f = followup(visit, t0 + HOUR_MS, 0);
    CHECK_EQ_INT(tm_store_followup_book(s, &f, t0 + 3000, appt), 0);
    json_t *a = tm_store_appt_json(s, appt);
    CHECK_STR(str(a, "booked_in_visit"), visit);
    CHECK_STR(str(a, "department_id"), "cardio");
    CHECK_STR(str(a, "kind"), "follow_up");
    CHECK_STR(str(a, "patient_id"), "p1");
    json_decref(a);

    tm_followup bad = followup(visit, t0 + HOUR_MS, t0 + MIN_MS);
    CHECK_EQ_INT(tm_store_followup_book(s, &bad, t0, NULL), TM_EINVAL);
    bad = followup("v-none", t0 + HOUR_MS, 0);
    CHECK_EQ_INT(tm_store_followup_book(s, &bad, t0, NULL), TM_ENOTFOUND);
    bad = followup(visit, t0 + HOUR_MS, 0);
    g_strlcpy(bad.dept_id, "nope", sizeof(bad.dept_id));
    CHECK_EQ_INT(tm_store_followup_book(s, &bad, t0, NULL), TM_ECONFLICT);
    json_t *all = tm_store_followups_of_visit(s, visit);
    CHECK_EQ_INT(json_array_size(all), 1); /* the refused ones left nothing */
    json_decref(all);
    tm_store_free(s);
}

/* Due once per slot, again after a move; no-show after the slot, or after
 * a window's end; counted per doctor (the booking one when none is named)
 * and per department. */
static void test_sweeps_and_counts(void)
{
    tm_store *s = open_store("sweeps");
    char visit[64], slot_appt[64], window_appt[64], rest_appt[64];
    active_visit(s, "p2", visit);
    tm_followup f = followup(visit, t0 + HOUR_MS, 0);
    CHECK_EQ_INT(tm_store_followup_book(s, &f, t0, slot_appt), 0);
    f = followup(visit, t0 + 2 * HOUR_MS, t0 + 5 * HOUR_MS);
    CHECK_EQ_INT(tm_store_followup_book(s, &f, t0, window_appt), 0);
    tm_appointment a = {0};
    g_strlcpy(a.patient_id, "p3", sizeof(a.patient_id));
    g_strlcpy(a.dept_id, "endo", sizeof(a.dept_id));
    g_strlcpy(a.doctor_id, "d2", sizeof(a.doctor_id));
    g_strlcpy(a.kind, "first", sizeof(a.kind));
    a.slot_ms = t0 + HOUR_MS;
    CHECK_EQ_INT(tm_store_appt_create(s, &a, rest_appt), 0);

    int n = -1;
    CHECK_EQ_INT(tm_store_appt_sweep_due(s, t0, 90 * MIN_MS, 0, &n), 0);
    CHECK_EQ_INT(n, 2); /* the slot and the REST one; the window starts later */
    CHECK_EQ_INT(tm_store_appt_sweep_due(s, t0 + MIN_MS, 90 * MIN_MS, 0, &n), 0);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(tm_store_appt_move(s, slot_appt, t0 + 80 * MIN_MS, 0, t0 + 2 * MIN_MS), 0);
    CHECK_EQ_INT(tm_store_appt_sweep_due(s, t0 + 3 * MIN_MS, 90 * MIN_MS, 0, &n), 0);
    CHECK_EQ_INT(n, 1);

    /* 30 minutes after the slots: the slots are no-shows, the window is not over. */
    int64_t later = t0 + 80 * MIN_MS + 30 * MIN_MS;
    CHECK_EQ_INT(tm_store_appt_sweep_noshow(s, later, 30 * MIN_MS, 0, &n), 0);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(tm_store_appt_sweep_noshow(s, later, 30 * MIN_MS, 0, &n), 0);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(tm_store_appt_sweep_noshow(s, t0 + 5 * HOUR_MS + 30 * MIN_MS, 30 * MIN_MS, 0, &n),
                 0);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(tm_store_appt_move(s, window_appt, t0 + 9 * HOUR_MS, 0, t0), TM_ECONFLICT);

    json_t *by_doc = tm_store_noshow_counts(s, "doctor", 0, 0);
    json_t *by_dept = tm_store_noshow_counts(s, "dept", 0, 0);
    CHECK(by_doc && by_dept);
    CHECK_EQ_INT(count_of(by_doc, "doctor_id", "d1"), 2);
    CHECK_EQ_INT(count_of(by_doc, "doctor_id", "d2"), 1);
    CHECK_EQ_INT(count_of(by_dept, "dept_id", "cardio"), 2);
    CHECK_EQ_INT(count_of(by_dept, "dept_id", "endo"), 1);
    json_decref(by_doc);
    json_decref(by_dept);
    /* Only slots in the range count. */
    json_t *early = tm_store_noshow_counts(s, "dept", t0, t0 + 90 * MIN_MS);
    CHECK_EQ_INT(count_of(early, "dept_id", "cardio"), 1);
    json_decref(early);
    CHECK(tm_store_noshow_counts(s, "weekday", 0, 0) == NULL);
    tm_store_free(s);
}

/* The messaging queue takes only appointment, consultation and referral
 * rows, from the first row on, and its cursor survives a reopen. */
static void test_messaging_queue(void)
{
    tm_store *s = open_store("messaging");
    char visit[64], appt[64];
    active_visit(s, "p4", visit);
    tm_followup f = followup(visit, t0 + HOUR_MS, 0);
    CHECK_EQ_INT(tm_store_followup_book(s, &f, t0, appt), 0);
    int n;
    CHECK_EQ_INT(tm_store_appt_sweep_noshow(s, t0 + 2 * HOUR_MS, 0, 0, &n), 0);
    char *types = drain_messaging(s, t0 + 10 * HOUR_MS);
    CHECK_STR(types, "appointment.booked,appointment.no_show");
    g_free(types);
    types = drain_messaging(s, t0 + 10 * HOUR_MS);
    CHECK_STR(types, "");
    g_free(types);
    tm_store_free(s);

    s = open_store("messaging");
    f = followup(visit, t0 + 3 * HOUR_MS, 0);
    CHECK_EQ_INT(tm_store_followup_book(s, &f, t0, NULL), 0);
    types = drain_messaging(s, t0 + 10 * HOUR_MS);
    CHECK_STR(types, "appointment.booked");
    g_free(types);
    tm_outbox_stats st;
    CHECK_EQ_INT(tm_msgq_stats_get(s, &st), 0);
    CHECK_EQ_INT(st.pending, 0);
    CHECK_EQ_INT(st.delivered, 3);
    tm_store_free(s);
}

static void test_timeline(void)
{
    tm_store *s = open_store("timeline");
    char visit[64];
    active_visit(s, "p5", visit);
    CHECK_EQ_INT(tm_store_note_save(s, visit, "d1", "Stable.", "I10", true, t0 + 4000), 0);
    char gone[64];
    tm_followup f = followup(visit, t0 + HOUR_MS, 0);
    CHECK_EQ_INT(tm_store_followup_book(s, &f, t0, gone), 0);
    f = followup(visit, t0 + 2 * HOUR_MS, 0);
    CHECK_EQ_INT(tm_store_followup_book(s, &f, t0, NULL), 0);
    int n;
    CHECK_EQ_INT(tm_store_appt_sweep_noshow(s, t0 + 90 * MIN_MS, 0, 0, &n), 0);
    CHECK_EQ_INT(n, 1);

    json_t *t = tm_store_patient_timeline(s, "p5", false, t0);
    json_t *items = json_object_get(t, "items");
    CHECK_EQ_INT(json_array_size(items), 3);
    json_t *v = json_array_get(items, 0);
    CHECK_STR(str(v, "kind"), "visit");
    CHECK_STR(str(v, "visit_id"), visit);
    CHECK_STR(json_string_value(json_array_get(json_object_get(v, "diagnosis_codes"), 0)), "I10");
    CHECK_STR(str(json_array_get(json_object_get(v, "notes"), 0), "body"), "Stable.");
    CHECK_STR(str(json_array_get(items, 1), "appointment_id"), gone);
    CHECK_STR(str(json_array_get(items, 1), "status"), "noshow");
    CHECK_STR(str(json_array_get(items, 2), "status"), "booked");
    json_decref(t);

    /* The patient's view: the visit and the appointment still ahead, not
     * the no-show. */
    t = tm_store_patient_timeline(s, "p5", true, t0);
    CHECK_EQ_INT(json_array_size(json_object_get(t, "items")), 2);
    json_decref(t);
    CHECK(tm_store_doctor_knows_patient(s, "d1", "p5"));
    CHECK(!tm_store_doctor_knows_patient(s, "d2", "p5"));
    tm_store_free(s);
}

int main(void)
{
    CHECK(g_mkdtemp(tmpdir) != NULL);
#ifdef TM_STORE_PG
    pg_fixture_start();
#endif
    t0 = tm_now_ms();
    RUN(test_book_and_refuse);
    RUN(test_sweeps_and_counts);
    RUN(test_messaging_queue);
    RUN(test_timeline);
    char *cmd = g_strdup_printf("rm -rf %s", tmpdir);
    CHECK(system(cmd) == 0);
    g_free(cmd);
    TEST_DONE();
}

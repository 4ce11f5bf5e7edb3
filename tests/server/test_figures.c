/*
 * test_figures.c - the doctor and department figures (figures.h) from a
 * real SQLite store: periods that start at local midnight across a daylight
 * saving change, ISO weeks across a new year, nearest-rank percentiles and
 * rating means over visits made through the store's own steps, the
 * network's outbox events (one unreadable), a transferred visit's two parts,
 * the range bound, the time parser and the CSV's quoting.
 */
#include "telemed/common.h"
#include "telemed/figures.h"
#include "telemed/store.h"
#include "tm_test.h"

#include <glib.h>
#include <sqlite3.h>

static char *dir;

static int64_t at(const char *rfc3339)
{
    GDateTime *t = g_date_time_new_from_iso8601(rfc3339, NULL);
    CHECK(t != NULL);
    int64_t ms = g_date_time_to_unix(t) * 1000;
    g_date_time_unref(t);
    return ms;
}

static tm_store *open_store(const char *name)
{
    char *path = g_build_filename(dir, name, NULL), *err = NULL;
    tm_store *s = tm_store_open(path, "hosp-1", &err);
    CHECK(s != NULL);
    g_free(path);
    CHECK_EQ_INT(tm_store_dept_put(s, "cardio", "Cardiology"), 0);
    CHECK_EQ_INT(tm_store_dept_put(s, "endo", "Endocrinology"), 0);
    CHECK_EQ_INT(tm_store_doctor_put(s, "d1", "=Li, \"the elder\"", "cardio", NULL, NULL), 0);
    CHECK_EQ_INT(tm_store_doctor_put(s, "d2", "Wang", "endo", NULL, NULL), 0);
    return s;
}

/* A visit of doctor's department checked in at checkin_ms and accepted
 * wait_ms later, ended, and rated score (0: not rated). */
static void visit(tm_store *s, const char *doctor, int64_t checkin_ms, int64_t wait_ms, int score,
                  const char *comment)
{
    tm_doctor_info d;
    CHECK_EQ_INT(tm_store_doctor_get(s, doctor, &d), 0);
    tm_visit v = {.checkin_ms = checkin_ms};
    g_strlcpy(v.patient_id, "p", sizeof(v.patient_id));
    g_strlcpy(v.dept_id, d.dept_id, sizeof(v.dept_id));
    g_strlcpy(v.kind, "follow_up", sizeof(v.kind));
    CHECK_EQ_INT(tm_store_visit_checkin(s, &v, "ua"), 0);
    CHECK_EQ_INT(tm_store_visit_offer(s, v.id, doctor, checkin_ms), 0);
    CHECK_EQ_INT(tm_store_visit_accept(s, v.id, doctor, "ua", checkin_ms + wait_ms), 0);
    CHECK_EQ_INT(tm_store_visit_end(s, v.id, "completed", doctor, checkin_ms + wait_ms + 1000), 0);
    if (score)
        CHECK_EQ_INT(tm_store_rating_add(s, v.id, "p", score, comment, checkin_ms + wait_ms + 2000),
                     0);
}

static json_t *figures(tm_store *s, tm_figures_by by, tm_figures_period period, const char *tz,
                       int64_t from, int64_t to)
{
    tm_figures_query q = {.by = by,
                          .period = period,
                          .from_ms = from,
                          .to_ms = to,
                          .time_zone = tz,
                          .core_id = "hosp-1",
                          .core_name = "Hospital One"};
    int rc = 0;
    json_t *f = tm_figures_compute(s, &q, &rc);
    CHECK(f != NULL);
    CHECK_EQ_INT(rc, 0);
    return f;
}

static json_t *row(json_t *f, size_t i)
{
    return json_array_get(json_object_get(f, "rows"), i);
}

static json_int_t member(json_t *r, const char *axis, const char *key)
{
    return json_integer_value(json_object_get(axis ? json_object_get(r, axis) : r, key));
}

/* Berlin moves its clocks on 2026-03-29: that day is 23 hours long, and its
 * periods still start at local midnight. */
static void test_days_across_dst(void)
{
    tm_store *s = open_store("dst.db");
    visit(s, "d1", at("2026-03-29T00:30:00+01:00"), 1000, 0, NULL);
    visit(s, "d1", at("2026-03-29T23:30:00+02:00"), 1000, 0, NULL);
    visit(s, "d1", at("2026-03-30T00:30:00+02:00"), 1000, 0, NULL);
    json_t *f = figures(s, TM_FIGURES_BY_DOCTOR, TM_FIGURES_DAY, "Europe/Berlin",
                        at("2026-03-28T00:00:00+01:00"), at("2026-04-01T00:00:00+02:00"));
    CHECK_EQ_INT(json_array_size(json_object_get(f, "rows")), 2);
    CHECK_STR(json_string_value(json_object_get(row(f, 0), "period")), "2026-03-29");
    CHECK_STR(json_string_value(json_object_get(row(f, 0), "period_start")),
              "2026-03-29T00:00:00+01:00");
    CHECK_EQ_INT(member(row(f, 0), "workload", "visits"), 2);
    CHECK_STR(json_string_value(json_object_get(row(f, 1), "period_start")),
              "2026-03-30T00:00:00+02:00");
    CHECK_EQ_INT(member(row(f, 1), "workload", "visits"), 1);
    json_decref(f);
    /* The same facts in Shanghai: the first is still 28 March there. */
    f = figures(s, TM_FIGURES_BY_DOCTOR, TM_FIGURES_MONTH, "Asia/Shanghai",
                at("2026-03-01T00:00:00+08:00"), at("2026-04-01T00:00:00+08:00"));
    CHECK_STR(json_string_value(json_object_get(row(f, 0), "period")), "2026-03");
    CHECK_EQ_INT(member(row(f, 0), "workload", "visits"), 3);
    json_decref(f);
    tm_store_free(s);
}

/* ISO weeks: 31 Dec 2026 and 3 Jan 2027 are both in 2026-W53. */
static void test_iso_weeks(void)
{
    tm_store *s = open_store("weeks.db");
    visit(s, "d2", at("2026-12-31T12:00:00+08:00"), 1000, 0, NULL);
    visit(s, "d2", at("2027-01-03T12:00:00+08:00"), 1000, 0, NULL);
    visit(s, "d2", at("2027-01-04T12:00:00+08:00"), 1000, 0, NULL);
    json_t *f = figures(s, TM_FIGURES_BY_DEPARTMENT, TM_FIGURES_WEEK, "Asia/Shanghai",
                        at("2026-12-20T00:00:00+08:00"), at("2027-01-20T00:00:00+08:00"));
    CHECK_STR(json_string_value(json_object_get(row(f, 0), "period")), "2026-W53");
    CHECK_STR(json_string_value(json_object_get(row(f, 0), "period_start")),
              "2026-12-28T00:00:00+08:00");
    CHECK_STR(json_string_value(json_object_get(row(f, 0), "id")), "endo");
    CHECK_STR(json_string_value(json_object_get(row(f, 0), "name")), "Endocrinology");
    CHECK_EQ_INT(member(row(f, 0), "workload", "visits"), 2);
    CHECK_STR(json_string_value(json_object_get(row(f, 1), "period")), "2027-W01");
    CHECK_EQ_INT(member(row(f, 1), "workload", "visits"), 1);
    json_decref(f);
    tm_store_free(s);
}

static void outbox_row(const char *db, const char *type, const char *subject, int64_t when,
                       const char *payload)
{
    char *path = g_build_filename(dir, db, NULL);
    sqlite3 *h;
    CHECK_EQ_INT(sqlite3_open(path, &h), SQLITE_OK);
    char *sql = sqlite3_mprintf("INSERT INTO outbox(event_id, type, visit_id, occurred_at, payload)"
                                " VALUES(lower(hex(randomblob(16))), %Q, %Q, %lld, %Q)",
                                type, subject, (long long)when, payload);
    CHECK_EQ_INT(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_free(sql);
    sqlite3_close(h);
    g_free(path);
}

/* Ten visits waiting 10..100 s: p50 is 50 s, p90 90 s (nearest rank); five
 * rated 1..5, two with a comment. The network's steps from the outbox: an
 * unreadable event counts for nobody, a visit step's event for nothing. */
static void test_axes(void)
{
    tm_store *s = open_store("axes.db");
    int64_t day = at("2026-12-07T09:00:00+08:00");
    for (int i = 1; i <= 10; i++)
        visit(s, "d2", day + i * 600000, i * 10000, i <= 5 ? i : 0, i <= 2 ? "thank you" : NULL);
    tm_appointment a = {.slot_ms = day + 3600000};
    g_strlcpy(a.patient_id, "p9", sizeof(a.patient_id));
    g_strlcpy(a.dept_id, "endo", sizeof(a.dept_id));
    g_strlcpy(a.kind, "follow_up", sizeof(a.kind));
    char id[64];
    CHECK_EQ_INT(tm_store_appt_create(s, &a, id), 0);
    CHECK_EQ_INT(tm_store_appt_get(s, id, &a), 0);
    g_strlcpy(a.status, "noshow", sizeof(a.status));
    CHECK_EQ_INT(tm_store_appt_update(s, &a), 0);
    outbox_row("axes.db", "consultation.requested", "cr-1", day,
               "{\"requester_id\":\"d2\",\"requester_dept_id\":\"endo\"}");
    outbox_row("axes.db", "consultation.scheduled", "cr-1", day + 45000,
               "{\"specialist_id\":\"d1\",\"dept_id\":\"cardio\"}");
    outbox_row("axes.db", "referral.created", "v-x", day, "not json");
    outbox_row("axes.db", "referral.created", "v-y", day,
               "{\"referral\":{\"from_doctor_id\":\"d2\"}}");

    json_t *f = figures(s, TM_FIGURES_BY_DOCTOR, TM_FIGURES_DAY, "Asia/Shanghai",
                        at("2026-12-07T00:00:00+08:00"), at("2026-12-08T00:00:00+08:00"));
    CHECK_EQ_INT(json_array_size(json_object_get(f, "rows")), 2);
    json_t *d1 = row(f, 0), *d2 = row(f, 1);
    CHECK_STR(json_string_value(json_object_get(d1, "id")), "d1");
    CHECK_EQ_INT(member(d1, "response", "scheduled"), 1);
    CHECK_EQ_INT(member(d1, "response", "schedule_p90_ms"), 45000);
    CHECK_EQ_INT(member(d1, "workload", "visits"), 0);
    CHECK_EQ_INT(member(d2, "workload", "visits"), 10);
    CHECK_EQ_INT(member(d2, "workload", "follow_up_visits"), 10);
    CHECK_EQ_INT(member(d2, "workload", "consultations_requested"), 1);
    CHECK_EQ_INT(member(d2, "workload", "referrals"), 1);
    CHECK_EQ_INT(member(d2, "response", "accept_p50_ms"), 50000);
    CHECK_EQ_INT(member(d2, "response", "accept_p90_ms"), 90000);
    CHECK_EQ_INT(member(d2, "satisfaction", "ratings"), 5);
    CHECK_EQ_INT(member(d2, "satisfaction", "comments"), 2);
    CHECK(json_real_value(json_object_get(json_object_get(d2, "satisfaction"), "rating_mean")) ==
          3.0);
    CHECK_EQ_INT(member(d2, NULL, "no_shows"), 0); /* booked with no doctor: the department's */
    CHECK_STR(json_string_value(json_object_get(d2, "department_name")), "Endocrinology");
    /* The two comments, the visit accepted last first. */
    json_t *comments = json_object_get(f, "comments");
    CHECK_EQ_INT(json_array_size(comments), 2);
    json_t *last = json_array_get(comments, 0);
    CHECK_STR(json_string_value(json_object_get(last, "comment")), "thank you");
    CHECK_STR(json_string_value(json_object_get(last, "doctor_name")), "Wang");
    CHECK_EQ_INT(json_integer_value(json_object_get(last, "score")), 2);
    CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(comments, 1), "score")), 1);
    char *csv = tm_figures_csv(f);
    CHECK(strstr(csv, ",\"'=Li, \"\"the elder\"\"\",cardio,hosp-1,0,") != NULL);
    CHECK(strstr(csv, ",,4.50,") == NULL && strstr(csv, ",3.00,2,0\r\n") != NULL);
    g_free(csv);
    json_decref(f);

    f = figures(s, TM_FIGURES_BY_INSTITUTION, TM_FIGURES_DAY, "Asia/Shanghai",
                at("2026-12-07T00:00:00+08:00"), at("2026-12-08T00:00:00+08:00"));
    CHECK_EQ_INT(json_array_size(json_object_get(f, "rows")), 1);
    CHECK_STR(json_string_value(json_object_get(row(f, 0), "name")), "Hospital One");
    CHECK_EQ_INT(member(row(f, 0), NULL, "no_shows"), 1);
    CHECK_EQ_INT(member(row(f, 0), "workload", "referrals"), 1);
    json_decref(f);
    tm_store_free(s);
}

static void sql(const char *db, const char *text)
{
    char *path = g_build_filename(dir, db, NULL);
    sqlite3 *h;
    CHECK_EQ_INT(sqlite3_open(path, &h), SQLITE_OK);
    CHECK_EQ_INT(sqlite3_exec(h, text, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    g_free(path);
}

/* A visit d1 accepts and hands to d2 (the rows a transfer leaves: the visit
 * row moved to d2 and endo, the visit.transferred event, d2's attending row
 * and visit.started when d2 takes it): each doctor counts their part with
 * their own wait, the rating goes to d2 who finished, the transfer to d1. */
static void test_transfer(void)
{
    tm_store *s = open_store("transfer.db");
    int64_t t = at("2026-12-07T10:00:00+08:00");
    tm_visit v = {.checkin_ms = t};
    g_strlcpy(v.patient_id, "p", sizeof(v.patient_id));
    g_strlcpy(v.dept_id, "cardio", sizeof(v.dept_id));
    g_strlcpy(v.kind, "follow_up", sizeof(v.kind));
    CHECK_EQ_INT(tm_store_visit_checkin(s, &v, "ua"), 0);
    CHECK_EQ_INT(tm_store_visit_offer(s, v.id, "d1", t), 0);
    CHECK_EQ_INT(tm_store_visit_accept(s, v.id, "d1", "ua", t + 10000), 0);
    char *moved = sqlite3_mprintf(
        "UPDATE visits SET doctor_id = 'd2', dept_id = 'endo' WHERE id = %Q;"
        "INSERT INTO outbox(event_id, type, visit_id, occurred_at, payload) VALUES('e1',"
        " 'visit.transferred', %Q, %lld, '{\"transfer\":{\"from_doctor_id\":\"d1\","
        "\"from_department_id\":\"cardio\"}}');"
        "INSERT INTO participants(visit_id, user_id, role, visit_role, joined_at)"
        " VALUES(%Q, 'd2', 'doctor', 'attending', %lld);"
        "INSERT INTO outbox(event_id, type, visit_id, occurred_at, payload) VALUES('e2',"
        " 'visit.started', %Q, %lld, '{\"doctor_id\":\"d2\",\"department_id\":\"endo\","
        "\"visit_kind\":\"follow_up\"}');",
        v.id, v.id, (long long)(t + 60000), v.id, (long long)(t + 90000), v.id,
        (long long)(t + 90000));
    sql("transfer.db", moved);
    sqlite3_free(moved);
    CHECK_EQ_INT(tm_store_visit_end(s, v.id, "completed", "d2", t + 200000), 0);
    CHECK_EQ_INT(tm_store_rating_add(s, v.id, "p", 4, "good", t + 210000), 0);

    json_t *f = figures(s, TM_FIGURES_BY_DOCTOR, TM_FIGURES_DAY, "Asia/Shanghai",
                        at("2026-12-07T00:00:00+08:00"), at("2026-12-08T00:00:00+08:00"));
    CHECK_EQ_INT(json_array_size(json_object_get(f, "rows")), 2);
    json_t *d1 = row(f, 0), *d2 = row(f, 1);
    CHECK_STR(json_string_value(json_object_get(d1, "department_id")), "cardio");
    CHECK_EQ_INT(member(d1, "workload", "visits"), 1);
    CHECK_EQ_INT(member(d1, "workload", "transfers"), 1);
    CHECK_EQ_INT(member(d1, "response", "accept_p50_ms"), 10000);
    CHECK_EQ_INT(member(d1, "satisfaction", "ratings"), 0);
    CHECK_STR(json_string_value(json_object_get(d2, "department_id")), "endo");
    CHECK_EQ_INT(member(d2, "workload", "visits"), 1);
    CHECK_EQ_INT(member(d2, "workload", "follow_up_visits"), 1);
    CHECK_EQ_INT(member(d2, "response", "accept_p50_ms"), 30000);
    CHECK_EQ_INT(member(d2, "satisfaction", "ratings"), 1);
    CHECK_EQ_INT(member(d2, "satisfaction", "comments"), 1);
    json_decref(f);
    tm_store_free(s);
}

static void test_bad_queries(void)
{
    tm_store *s = open_store("bad.db");
    int64_t from = at("2026-01-01T00:00:00Z");
    tm_figures_query q = {.from_ms = from,
                          .to_ms = from + TM_FIGURES_MAX_DAYS * 86400000LL,
                          .time_zone = "Asia/Shanghai",
                          .core_id = "hosp-1",
                          .core_name = "H"};
    int rc = 1;
    json_t *f = tm_figures_compute(s, &q, &rc);
    CHECK(f != NULL && rc == 0);
    json_decref(f);
    q.to_ms++;
    CHECK(tm_figures_compute(s, &q, &rc) == NULL && rc == TM_EINVAL);
    q.to_ms = from;
    CHECK(tm_figures_compute(s, &q, &rc) == NULL && rc == TM_EINVAL);
    q.to_ms = from + 1;
    q.time_zone = "Mars/Olympus";
    CHECK(tm_figures_compute(s, &q, &rc) == NULL && rc == TM_EINVAL);
    tm_store_free(s);

    int64_t t = 0;
    CHECK_EQ_INT(tm_figures_time_parse("2026-03-29", "Europe/Berlin", &t), 0);
    CHECK_EQ_INT(t, at("2026-03-28T23:00:00Z"));
    CHECK_EQ_INT(tm_figures_time_parse("2026-03-29T12:00:00Z", "Europe/Berlin", &t), 0);
    CHECK_EQ_INT(t, at("2026-03-29T12:00:00Z"));
    CHECK_EQ_INT(tm_figures_time_parse("1700000000000", "UTC", &t), 0);
    CHECK_EQ_INT(t, 1700000000000LL);
    CHECK_EQ_INT(tm_figures_time_parse("2026-02-30", "UTC", &t), TM_EINVAL);
    CHECK_EQ_INT(tm_figures_time_parse("yesterday", "UTC", &t), TM_EINVAL);
    CHECK_EQ_INT(tm_figures_time_parse("", "UTC", &t), TM_EINVAL);
    tm_figures_by by;
    tm_figures_period period;
    CHECK_EQ_INT(tm_figures_by_parse("institution", &by), 0);
    CHECK_EQ_INT(by, TM_FIGURES_BY_INSTITUTION);
    CHECK_EQ_INT(tm_figures_by_parse("patient", &by), TM_EINVAL);
    CHECK_EQ_INT(tm_figures_period_parse("week", &period), 0);
    CHECK_EQ_INT(tm_figures_period_parse("year", &period), TM_EINVAL);
    CHECK(tm_figures_time_zone_valid("Asia/Shanghai"));
    CHECK(!tm_figures_time_zone_valid("Mars/Olympus"));
    CHECK_EQ_INT(tm_figures_day_start("Asia/Shanghai", at("2026-12-07T23:59:00+08:00")),
                 at("2026-12-07T00:00:00+08:00"));
}

/* The no-shows of a rows array ({id or doctor_id or dept_id, no_shows}),
 * as "id=n;" in order, for the figures and the store's counts to be
 * compared. New string. */
static char *no_show_list(json_t *rows, const char *id_key)
{
    GString *out = g_string_new(NULL);
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r)
    {
        json_int_t n = json_integer_value(json_object_get(r, "no_shows"));
        if (n)
            g_string_append_printf(out, "%s=%lld;", json_string_value(json_object_get(r, id_key)),
                                   (long long)n);
    }
    return g_string_free(out, FALSE);
}

/* One rule for whom a no-show counts: the appointment's doctor, else the
 * doctor who booked the follow-up for any doctor, else the department
 * alone; the figures and tm_store_noshow_counts give the same numbers. */
static void test_noshow_one_rule(void)
{
    tm_store *s = open_store("noshow.db");
    int64_t day = at("2026-12-07T09:00:00+08:00");
    visit(s, "d1", day, 1000, 0, NULL);
    json_t *vs = tm_store_visit_list(s, NULL, NULL, "d1", NULL, 0, 0, 1, 0);
    tm_followup fu = {.slot_ms = day + 3600000};
    g_strlcpy(fu.visit_id, json_string_value(json_object_get(json_array_get(vs, 0), "id")),
              sizeof(fu.visit_id));
    json_decref(vs);
    g_strlcpy(fu.booked_by, "d1", sizeof(fu.booked_by));
    g_strlcpy(fu.dept_id, "endo", sizeof(fu.dept_id)); /* d1 books it in endo, any doctor */
    CHECK_EQ_INT(tm_store_followup_book(s, &fu, day, NULL), 0);
    const char *doctors[] = {"d2", ""}; /* the hospital's: for d2, and for endo alone */
    for (size_t i = 0; i < TM_ARRAY_LEN(doctors); i++) {
        tm_appointment a = {.slot_ms = day + 7200000};
        g_strlcpy(a.patient_id, "p9", sizeof(a.patient_id));
        g_strlcpy(a.dept_id, "endo", sizeof(a.dept_id));
        g_strlcpy(a.doctor_id, doctors[i], sizeof(a.doctor_id));
        g_strlcpy(a.kind, "follow_up", sizeof(a.kind));
        CHECK_EQ_INT(tm_store_appt_create(s, &a, NULL), 0);
    }
    int marked = 0;
    CHECK_EQ_INT(tm_store_appt_sweep_noshow(s, day + 86400000, 0, 0, &marked), 0);
    CHECK_EQ_INT(marked, 3);

    int64_t from = at("2026-12-07T00:00:00+08:00"), to = at("2026-12-08T00:00:00+08:00");
    json_t *f = figures(s, TM_FIGURES_BY_DOCTOR, TM_FIGURES_DAY, "Asia/Shanghai", from, to);
    json_t *counts = tm_store_noshow_counts(s, "doctor", from, to);
    char *a = no_show_list(json_object_get(f, "rows"), "id"),
         *b = no_show_list(counts, "doctor_id");
    CHECK_STR(a, "d1=1;d2=1;");
    CHECK_STR(b, a);
    g_free(a);
    g_free(b);
    json_decref(f);
    json_decref(counts);
    f = figures(s, TM_FIGURES_BY_DEPARTMENT, TM_FIGURES_DAY, "Asia/Shanghai", from, to);
    counts = tm_store_noshow_counts(s, "dept", from, to);
    a = no_show_list(json_object_get(f, "rows"), "id");
    b = no_show_list(counts, "dept_id");
    CHECK_STR(a, "endo=3;");
    CHECK_STR(b, a);
    g_free(a);
    g_free(b);
    json_decref(f);
    json_decref(counts);
    tm_store_free(s);
}

int main(void)
{
    dir = g_dir_make_tmp("tm-figures-XXXXXX", NULL);
    CHECK(dir != NULL);
    RUN(test_days_across_dst);
    RUN(test_iso_weeks);
    RUN(test_axes);
    RUN(test_noshow_one_rule);
    RUN(test_transfer);
    RUN(test_bad_queries);
    char *cmd = g_strdup_printf("rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    g_free(cmd);
    g_free(dir);
    TEST_DONE();
}

/*
 * test_store.c - the SQLite store on a real file: migrations, the visit
 * life cycle with its outbox rows in the same transaction, refusals that
 * change nothing, appointments, notes, ratings and the audit log.
 */
#include "telemed/common.h"
#include "telemed/store.h"
#include "tm_test.h"
#include "store_test.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <sqlite3.h>

static void seed(tm_store *s)
{
    CHECK_EQ_INT(tm_store_dept_put(s, "cardio", "Cardiology"), 0);
    CHECK_EQ_INT(tm_store_doctor_put(s, "d1", "Dr One", "cardio", "LIC1", NULL), 0);
    char shift[64];
    int64_t now = tm_now_ms();
    CHECK_EQ_INT(tm_store_shift_add(s, "d1", "cardio", now - 1000, now + 3600000, 2, shift), 0);
}

static void test_migrations(void)
{
    tm_store *s = open_store("m.db");
    int v = tm_store_schema_version(s);
    CHECK(v >= 1);
    tm_store_free(s);
    s = open_store("m.db"); /* reopening migrates nothing and keeps the version */
    CHECK_EQ_INT(tm_store_schema_version(s), v);
    tm_store_free(s);
    CHECK_EQ_INT(scalar("m.db", "SELECT count(*) FROM pragma_journal_mode WHERE journal_mode='wal'"), 1);
    /* A database from a newer server is refused, not damaged. */
    char *path = test_path("m.db");
    sqlite3 *db;
    sqlite3_open(path, &db);
    sqlite3_exec(db, "PRAGMA user_version=999", NULL, NULL, NULL);
    sqlite3_close(db);
    char *err = NULL;
    CHECK(tm_store_open(path, "h", &err) == NULL);
    CHECK(err && strstr(err, "newer"));
    free(err);
    g_free(path);
}

static void test_schedule(void)
{
    tm_store *s = open_store("sched.db");
    seed(s);
    char dept[64];
    int cap = 0;
    int64_t end = 0;
    CHECK_EQ_INT(tm_store_shift_current(s, "d1", NULL, tm_now_ms(), dept, &cap, &end), 0);
    CHECK_STR(dept, "cardio");
    CHECK_EQ_INT(cap, 2);
    CHECK_EQ_INT(tm_store_shift_current(s, "d1", "other", tm_now_ms(), NULL, NULL, NULL), TM_ENOTFOUND);
    CHECK_EQ_INT(tm_store_shift_current(s, "d1", NULL, tm_now_ms() + 7200000, NULL, NULL, NULL),
                 TM_ENOTFOUND);
    char id[64];
    CHECK_EQ_INT(tm_store_shift_add(s, "nobody", "cardio", 1, 2, 1, id), TM_EINVAL);
    CHECK_EQ_INT(tm_store_shift_add(s, "d1", "cardio", 5, 2, 1, id), TM_EINVAL);
    CHECK_EQ_INT(tm_store_doctor_put(s, "d2", "Dr Two", "nodept", NULL, NULL), TM_EINVAL);
    CHECK_EQ_INT(tm_store_dept_delete(s, "cardio"), TM_ECONFLICT); /* doctors refer to it */
    tm_store_free(s);
}

static void test_visit_lifecycle(void)
{
    tm_store *s = open_store("v.db");
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
    v.checkin_ms = tm_now_ms() - 5000;
    CHECK_EQ_INT(tm_store_visit_checkin(s, &v, "ua/1"), 0);
    CHECK(v.id[0]);
    CHECK_EQ_INT(scalar("v.db", "SELECT count(*) FROM outbox WHERE type='visit.checked_in'"), 1);
    CHECK_EQ_INT(scalar("v.db", "SELECT count(*) FROM appointments WHERE status='arrived'"), 1);

    /* Accepting an offer that was never made is refused and writes nothing. */
    CHECK_EQ_INT(tm_store_visit_accept(s, v.id, "d1", "ua", tm_now_ms()), TM_ECONFLICT);
    CHECK_EQ_INT(scalar("v.db", "SELECT count(*) FROM outbox"), 1);
    CHECK_EQ_INT(tm_store_visit_offer(s, v.id, "d1", tm_now_ms()), 0);
    CHECK_EQ_INT(tm_store_visit_unoffer(s, v.id, "declined", tm_now_ms()), 0);
    CHECK_EQ_INT(tm_store_visit_offer(s, v.id, "d1", tm_now_ms()), 0);
    /* Another doctor cannot take an offer made to d1. */
    CHECK_EQ_INT(tm_store_visit_accept(s, v.id, "d9", "ua", tm_now_ms()), TM_EPERM);
    CHECK_EQ_INT(scalar("v.db", "SELECT count(*) FROM visits WHERE state='offered'"), 1);
    CHECK_EQ_INT(tm_store_visit_accept(s, v.id, "d1", "ua/d", tm_now_ms()), 0);
    CHECK_EQ_INT(scalar("v.db", "SELECT count(*) FROM outbox WHERE type='visit.started'"), 1);
    CHECK(scalar("v.db", "SELECT response_ms FROM visits") >= 5000);
    CHECK_EQ_INT(scalar("v.db", "SELECT count(*) FROM offers WHERE outcome='declined'"), 1);
    CHECK_EQ_INT(scalar("v.db", "SELECT count(*) FROM offers WHERE outcome='accepted'"), 1);

    int64_t msg = 0;
    CHECK_EQ_INT(tm_store_chat_add(s, v.id, "p1", "patient", "hello doctor", tm_now_ms(), &msg), 0);
    CHECK(msg > 0);
    CHECK_EQ_INT(tm_store_note_save(s, v.id, "d1", "draft", NULL, false, tm_now_ms()), 0);
    CHECK_EQ_INT(tm_store_note_save(s, v.id, "d1", "final", "I10", true, tm_now_ms()), 0);
    CHECK_EQ_INT(tm_store_note_save(s, v.id, "d1", "rewrite", NULL, true, tm_now_ms()), TM_ECONFLICT);
    CHECK_EQ_INT(scalar("v.db", "SELECT count(*) FROM notes WHERE body='final' AND signed=1"), 1);
    CHECK_EQ_INT(scalar("v.db", "SELECT count(*) FROM outbox WHERE type='visit.note_signed'"), 1);

    CHECK_EQ_INT(tm_store_visit_end(s, v.id, "completed", "d1", tm_now_ms()), 0);
    CHECK_EQ_INT(tm_store_visit_end(s, v.id, "completed", "d1", tm_now_ms()), TM_ECONFLICT);
    CHECK_EQ_INT(scalar("v.db", "SELECT count(*) FROM outbox WHERE type='visit.ended'"), 1);
    CHECK_EQ_INT(scalar("v.db", "SELECT count(*) FROM appointments WHERE status='fulfilled'"), 1);
    CHECK_EQ_INT(scalar("v.db", "SELECT count(*) FROM participants WHERE left_at IS NULL"), 0);

    CHECK_EQ_INT(tm_store_rating_add(s, v.id, "p1", 6, NULL, tm_now_ms()), TM_EINVAL);
    CHECK_EQ_INT(tm_store_rating_add(s, v.id, "p1", 5, "great", tm_now_ms()), 0);
    CHECK_EQ_INT(tm_store_rating_add(s, v.id, "p1", 4, NULL, tm_now_ms()), TM_ECONFLICT);
    CHECK_EQ_INT(scalar("v.db", "SELECT count(*) FROM outbox WHERE type='visit.rated'"), 1);

    json_t *rec = tm_store_visit_record(s, v.id);
    CHECK(rec != NULL);
    CHECK_STR(json_string_value(json_object_get(rec, "state")), "ended");
    CHECK_EQ_INT(json_array_size(json_object_get(rec, "participants")), 2);
    CHECK_EQ_INT(json_array_size(json_object_get(rec, "chat")), 1);
    CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(rec, "rating"), "score")), 5);
    json_decref(rec);

    json_t *fig = NULL;
    CHECK_EQ_INT(tm_store_doctor_figures(s, "d1", 0, &fig), 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(fig, "visits")), 1);
    json_decref(fig);

    /* Every outbox row carries a JSON payload and a distinct event id. */
    CHECK_EQ_INT(scalar("v.db", "SELECT count(*) FROM outbox WHERE json_valid(payload)"), 5);
    CHECK_EQ_INT(scalar("v.db", "SELECT count(DISTINCT event_id) FROM outbox"), 5);
    tm_store_free(s);
}

static void count_visit(const tm_visit *v, void *user)
{
    CHECK_STR(v->state, "waiting");
    (*(int *)user)++;
}

static void test_cancel_and_restore(void)
{
    tm_store *s = open_store("c.db");
    seed(s);
    tm_visit v = {0};
    g_strlcpy(v.patient_id, "p2", sizeof(v.patient_id));
    g_strlcpy(v.dept_id, "cardio", sizeof(v.dept_id));
    g_strlcpy(v.kind, "follow_up", sizeof(v.kind));
    v.checkin_ms = tm_now_ms();
    CHECK_EQ_INT(tm_store_visit_checkin(s, &v, NULL), 0);
    tm_visit bad = v;
    g_strlcpy(bad.dept_id, "nodept", sizeof(bad.dept_id));
    CHECK(tm_store_visit_checkin(s, &bad, NULL) < 0); /* foreign key: nothing written */
    CHECK_EQ_INT(scalar("c.db", "SELECT count(*) FROM visits"), 1);
    CHECK_EQ_INT(scalar("c.db", "SELECT count(*) FROM outbox"), 1);
    int n = 0;
    CHECK_EQ_INT(tm_store_visit_foreach_state(s, "waiting", count_visit, &n), 0);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(tm_store_visit_end(s, v.id, "patient_left", "p2", tm_now_ms()), 0);
    tm_visit got;
    CHECK_EQ_INT(tm_store_visit_get(s, v.id, &got), 0);
    CHECK_STR(got.state, "cancelled");
    CHECK_STR(got.end_reason, "patient_left");
    CHECK_EQ_INT(tm_store_visit_get(s, "nope", &got), TM_ENOTFOUND);
    CHECK_EQ_INT(tm_store_audit(s, "s1", "supervisor", "visit.watch", v.id, "ok", NULL), 0);
    json_t *audit = tm_store_audit_list(s, v.id, NULL, 0, 10);
    CHECK_EQ_INT(json_array_size(audit), 1);
    json_decref(audit);
    tm_store_free(s);
}

int main(void)
{
    store_test_dir = g_dir_make_tmp("tm-store-XXXXXX", NULL);
    CHECK(store_test_dir != NULL);
    RUN(test_migrations);
    RUN(test_schedule);
    RUN(test_visit_lifecycle);
    RUN(test_cancel_and_restore);
    char *cmd = g_strdup_printf("rm -rf '%s'", store_test_dir);
    CHECK(system(cmd) == 0);
    g_free(cmd);
    g_free(store_test_dir);
    TEST_DONE();
}

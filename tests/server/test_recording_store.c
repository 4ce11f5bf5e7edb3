/*
 * test_recording_store.c - the recordings table on a real SQLite file:
 * start/finish with its recording.available outbox row in the same
 * transaction (and nothing on refusal), failure with a reason, recovery of
 * rows a crash left 'recording' (hash of the partial file), and the
 * retention sweep (files removed, rows marked, audit rows, undeletable
 * files kept and audited).
 */
#include "telemed/common.h"
#include "telemed/recording_store.h"
#include "telemed/store.h"
#include "tm_test.h"
#include "store_test.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <sqlite3.h>
#include <sys/stat.h>

/* An active visit: checked in, offered, accepted. */
static void make_visit(tm_store *s, char visit_id[64])
{
    if (!tm_store_dept_exists(s, "cardio")) {
        CHECK_EQ_INT(tm_store_dept_put(s, "cardio", "Cardiology"), 0);
        CHECK_EQ_INT(tm_store_doctor_put(s, "d1", "Dr One", "cardio", "LIC1", NULL), 0);
        char shift[64];
        int64_t now = tm_now_ms();
        CHECK_EQ_INT(tm_store_shift_add(s, "d1", "cardio", now - 1000, now + 3600000, 5, shift), 0);
    }
    tm_visit v = {0};
    g_strlcpy(v.patient_id, "p1", sizeof(v.patient_id));
    g_strlcpy(v.dept_id, "cardio", sizeof(v.dept_id));
    g_strlcpy(v.kind, "follow_up", sizeof(v.kind));
    v.checkin_ms = tm_now_ms() - 5000;
    CHECK_EQ_INT(tm_store_visit_checkin(s, &v, "ua"), 0);
    CHECK_EQ_INT(tm_store_visit_offer(s, v.id, "d1", tm_now_ms()), 0);
    CHECK_EQ_INT(tm_store_visit_accept(s, v.id, "d1", "ua", tm_now_ms()), 0);
    g_strlcpy(visit_id, v.id, 64);
}

static const char sha_a[] = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

static void test_start_finish(void)
{
    tm_store *s = open_store("a.db");
    char visit[64], rec[TM_RECORDING_ID_LEN];
    make_visit(s, visit);
    CHECK_EQ_INT(tm_recording_start(s, "no-such-visit", "/x.mkv", "matroska", false, 1, rec),
                 TM_ENOTFOUND);
    int64_t t0 = tm_now_ms();
    CHECK_EQ_INT(tm_recording_start(s, visit, "/rec/v.mkv", "matroska", true, t0, rec), 0);
    CHECK(g_str_has_prefix(rec, "rec-"));
    CHECK_EQ_INT(scalar("a.db", "SELECT count(*) FROM recordings WHERE state='recording'"), 1);

    /* Refusals change nothing and emit nothing. */
    CHECK_EQ_INT(tm_recording_finish(s, rec, 10, 10, "ABC", 0, t0), TM_EINVAL);
    CHECK_EQ_INT(tm_recording_finish(s, "rec-none", 10, 10, sha_a, 0, t0), TM_ENOTFOUND);
    CHECK_EQ_INT(scalar("a.db", "SELECT count(*) FROM outbox WHERE type='recording.available'"), 0);

    CHECK_EQ_INT(tm_recording_finish(s, rec, 123456, 600000, sha_a, 7, t0 + 600000), 0);
    CHECK_EQ_INT(scalar("a.db", "SELECT count(*) FROM outbox WHERE type='recording.available'"), 1);
    /* The event carries the recording as it is in the same transaction. */
    char *path = test_path("a.db");
    sqlite3 *db;
    CHECK(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
    sqlite3_stmt *st;
    CHECK(sqlite3_prepare_v2(
              db, "SELECT payload, visit_id FROM outbox WHERE type='recording.available'", -1, &st,
              NULL) == SQLITE_OK);
    CHECK(sqlite3_step(st) == SQLITE_ROW);
    json_t *payload = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
    CHECK_STR((const char *)sqlite3_column_text(st, 1), visit);
    sqlite3_finalize(st);
    sqlite3_close(db);
    g_free(path);
    CHECK(payload != NULL);
    json_t *r = json_object_get(payload, "recording");
    if (!r) /* the payload may wrap the data */
        r = json_object_get(json_object_get(payload, "data"), "recording");
    CHECK(r != NULL);
    CHECK_STR(json_string_value(json_object_get(r, "sha256")), sha_a);
    CHECK_EQ_INT(json_integer_value(json_object_get(r, "size")), 123456);
    CHECK(json_is_true(json_object_get(r, "complete")));
    CHECK(json_is_true(json_object_get(r, "encrypted")));
    json_decref(payload);

    /* Twice is a conflict, and still one event. */
    CHECK_EQ_INT(tm_recording_finish(s, rec, 1, 1, sha_a, 0, t0), TM_ECONFLICT);
    CHECK_EQ_INT(tm_recording_fail(s, rec, "late", 0, t0), TM_ECONFLICT);
    CHECK_EQ_INT(scalar("a.db", "SELECT count(*) FROM outbox WHERE type='recording.available'"), 1);

    json_t *got = tm_recording_get(s, rec);
    CHECK(got != NULL);
    CHECK_STR(json_string_value(json_object_get(got, "state")), "complete");
    CHECK_STR(json_string_value(json_object_get(got, "visit_id")), visit);
    CHECK_STR(json_string_value(json_object_get(got, "path")), "/rec/v.mkv");
    CHECK_EQ_INT(json_integer_value(json_object_get(got, "duration_ms")), 600000);
    CHECK_EQ_INT(json_integer_value(json_object_get(got, "dropped_packets")), 7);
    CHECK(json_is_true(json_object_get(got, "encrypted")));
    CHECK(json_is_string(json_object_get(got, "finished_at")));
    CHECK(json_is_null(json_object_get(got, "deleted_at")));
    json_decref(got);
    CHECK(tm_recording_get(s, "rec-none") == NULL);

    /* The visit record shows it. */
    json_t *vr = tm_store_visit_record(s, visit);
    CHECK_EQ_INT(json_array_size(json_object_get(vr, "recordings")), 1);
    json_decref(vr);
    tm_store_free(s);
}

static void test_fail(void)
{
    tm_store *s = open_store("f.db");
    char visit[64], rec[TM_RECORDING_ID_LEN];
    make_visit(s, visit);
    CHECK_EQ_INT(tm_recording_start(s, visit, "/rec/f.mkv", "matroska", false, tm_now_ms(), rec),
                 0);
    CHECK_EQ_INT(tm_recording_fail(s, rec, "filesink0: No space left on device", 42, tm_now_ms()),
                 0);
    CHECK_EQ_INT(scalar("f.db", "SELECT count(*) FROM recordings WHERE state='failed'"
                                " AND failure LIKE '%No space%' AND dropped_packets=42"),
                 1);
    CHECK_EQ_INT(scalar("f.db", "SELECT count(*) FROM outbox WHERE type='recording.available'"), 0);
    CHECK_EQ_INT(tm_recording_fail(s, "rec-none", "x", 0, 0), TM_ENOTFOUND);
    tm_store_free(s);
}

/* Rows a crash left in 'recording' become incomplete at the next start,
 * with the partial file's size and hash and an event; a missing file
 * makes the row failed instead. */
static void test_recover(void)
{
    tm_store *s = open_store("r.db");
    char visit[64], visit2[64], rec1[TM_RECORDING_ID_LEN], rec2[TM_RECORDING_ID_LEN],
        rec3[TM_RECORDING_ID_LEN];
    make_visit(s, visit);
    make_visit(s, visit2);
    char *partial = test_path("partial.mkv"), *gone = test_path("gone.mkv");
    const char content[] = "partial matroska bytes";
    CHECK(g_file_set_contents(partial, content, sizeof(content) - 1, NULL));
    CHECK_EQ_INT(tm_recording_start(s, visit, partial, "matroska", false, tm_now_ms(), rec1), 0);
    CHECK_EQ_INT(tm_recording_start(s, visit2, gone, "matroska", false, tm_now_ms(), rec2), 0);
    CHECK_EQ_INT(tm_recording_start(s, visit2, "/x.mkv", "matroska", false, tm_now_ms(), rec3), 0);
    CHECK_EQ_INT(tm_recording_finish(s, rec3, 1, 1, sha_a, 0, tm_now_ms()), 0);
    tm_store_free(s); /* "the server died" */

    s = open_store("r.db");
    int n = -1;
    CHECK_EQ_INT(tm_recording_recover(s, tm_now_ms(), &n), 0);
    CHECK_EQ_INT(n, 2);
    json_t *r1 = tm_recording_get(s, rec1), *r2 = tm_recording_get(s, rec2),
           *r3 = tm_recording_get(s, rec3);
    CHECK_STR(json_string_value(json_object_get(r1, "state")), "incomplete");
    char *want = g_compute_checksum_for_string(G_CHECKSUM_SHA256, content, -1);
    CHECK_STR(json_string_value(json_object_get(r1, "sha256")), want);
    CHECK_EQ_INT(json_integer_value(json_object_get(r1, "size_bytes")), sizeof(content) - 1);
    CHECK_STR(json_string_value(json_object_get(r2, "state")), "failed");
    CHECK_STR(json_string_value(json_object_get(r3, "state")), "complete"); /* untouched */
    CHECK_EQ_INT(scalar("r.db", "SELECT count(*) FROM outbox WHERE type='recording.available'"
                                " AND payload LIKE '%\"complete\":false%'"),
                 1);
    /* Nothing left to recover the second time. */
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

static void test_retention(void)
{
    tm_store *s = open_store("t.db");
    char visit[64], old1[TM_RECORDING_ID_LEN], old2[TM_RECORDING_ID_LEN],
        fresh[TM_RECORDING_ID_LEN], stuck[TM_RECORDING_ID_LEN], live[TM_RECORDING_ID_LEN];
    make_visit(s, visit);
    int64_t now = tm_now_ms(), day = 86400000;
    char *f_old1 = test_path("old1.mkv"), *f_fresh = test_path("fresh.mkv");
    CHECK(g_file_set_contents(f_old1, "x", 1, NULL));
    CHECK(g_file_set_contents(f_fresh, "y", 1, NULL));
    /* A path that cannot be unlinked, even by root: a directory. */
    char *f_stuck = test_path("stuck.mkv");
    CHECK(g_mkdir(f_stuck, 0700) == 0);

    CHECK_EQ_INT(tm_recording_start(s, visit, f_old1, "matroska", false, now - 40 * day, old1), 0);
    CHECK_EQ_INT(tm_recording_finish(s, old1, 1, 1, sha_a, 0, now - 40 * day), 0);
    CHECK_EQ_INT(tm_recording_start(s, visit, "/nonexistent/old2.mkv", "matroska", false,
                                    now - 31 * day, old2),
                 0);
    CHECK_EQ_INT(tm_recording_fail(s, old2, "x", 0, now - 31 * day), 0);
    CHECK_EQ_INT(tm_recording_start(s, visit, f_fresh, "matroska", false, now - 29 * day, fresh),
                 0);
    CHECK_EQ_INT(tm_recording_finish(s, fresh, 1, 1, sha_a, 0, now - 29 * day), 0);
    CHECK_EQ_INT(tm_recording_start(s, visit, f_stuck, "matroska", false, now - 50 * day, stuck),
                 0);
    CHECK_EQ_INT(tm_recording_finish(s, stuck, 1, 1, sha_a, 0, now - 50 * day), 0);
    /* Still recording (a visit in progress) is never swept. */
    CHECK_EQ_INT(tm_recording_start(s, visit, "/live.mkv", "matroska", false, now - 60 * day, live),
                 0);

    int deleted = -1, failed = -1;
    CHECK_EQ_INT(tm_recording_retention_sweep(s, 0, now, &deleted, &failed), TM_EINVAL);
    CHECK_EQ_INT(tm_recording_retention_sweep(s, 30, now, &deleted, &failed), 0);
    CHECK_EQ_INT(deleted, 2);
    CHECK_EQ_INT(failed, 1);
    CHECK(!g_file_test(f_old1, G_FILE_TEST_EXISTS));
    CHECK(g_file_test(f_fresh, G_FILE_TEST_EXISTS));
    json_t *o = tm_recording_get(s, old1);
    CHECK_STR(json_string_value(json_object_get(o, "state")), "deleted");
    CHECK_STR(json_string_value(json_object_get(o, "deleted_by_policy")),
              "retention_recordings_days=30");
    CHECK(json_is_string(json_object_get(o, "deleted_at")));
    json_decref(o);
    o = tm_recording_get(s, fresh);
    CHECK_STR(json_string_value(json_object_get(o, "state")), "complete");
    json_decref(o);
    o = tm_recording_get(s, live);
    CHECK_STR(json_string_value(json_object_get(o, "state")), "recording");
    json_decref(o);
    o = tm_recording_get(s, stuck);
    CHECK_STR(json_string_value(json_object_get(o, "state")), "complete");
    json_decref(o);
    CHECK_EQ_INT(scalar("t.db", "SELECT count(*) FROM audit_log WHERE action='recording.delete'"
                                " AND actor_id='system' AND outcome='ok'"),
                 2);
    CHECK_EQ_INT(scalar("t.db", "SELECT count(*) FROM audit_log WHERE action='recording.delete'"
                                " AND outcome='error'"),
                 1);
    /* Once it can go, the next sweep takes it, and only it. */
    CHECK(g_rmdir(f_stuck) == 0);
    CHECK(g_file_set_contents(f_stuck, "z", 1, NULL));
    CHECK_EQ_INT(tm_recording_retention_sweep(s, 30, now, &deleted, &failed), 0);
    CHECK_EQ_INT(deleted, 1);
    CHECK_EQ_INT(failed, 0);
    g_free(f_old1);
    g_free(f_fresh);
    g_free(f_stuck);
    tm_store_free(s);
}

int main(void)
{
    store_test_dir = g_dir_make_tmp("tm-recstore-XXXXXX", NULL);
    CHECK(store_test_dir != NULL);
    RUN(test_start_finish);
    RUN(test_fail);
    RUN(test_recover);
    RUN(test_retention);
    char *cmd = g_strdup_printf("rm -rf '%s'", store_test_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    g_free(cmd);
    g_free(store_test_dir);
    TEST_DONE();
}

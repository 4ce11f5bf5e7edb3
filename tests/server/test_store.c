/*
 * test_store.c - the SQLite backend on real files: the backend-neutral
 * suite (store_suite.c), then what only SQLite has: the database and its
 * -wal/-shm made 0600, a database from a newer server refused, the
 * migration of visits of more than two on old rows, and writes
 * that fail (disk full, I/O error, locked by another process) refusing the
 * visit step with a clear message, leaving nothing half-written, and the
 * store serving again afterwards.
 *
 * Failures are real SQLite failures: a VFS registered here as the default
 * passes everything to the real one and fails writes on demand with
 * SQLITE_FULL or SQLITE_IOERR_WRITE; "locked" is a second connection
 * holding the write lock.
 */
#include "store_suite.h"

#include "telemed/common.h"
#include "telemed/store.h"
#include "tm_test.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/stat.h>

static char *test_dir;

static char *db_path(const char *name)
{
    char *file = g_strconcat(name, ".db", NULL);
    char *path = g_build_filename(test_dir, file, NULL);
    g_free(file);
    return path;
}

static tm_store *open_sqlite(const char *name)
{
    char *path = db_path(name), *err = NULL;
    tm_store *s = tm_store_open(path, "hosp-1", &err);
    if (!s)
        fprintf(stderr, "open %s: %s\n", path, err);
    CHECK(s != NULL);
    g_free(path);
    return s;
}

/* The first column of the first row of sql, read by an outside reader (a
 * report, an auditor) on a connection of its own; -1 if there is none. */
static long long scalar(const char *name, const char *sql)
{
    char *path = db_path(name);
    sqlite3 *db;
    CHECK(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
    sqlite3_stmt *st;
    CHECK(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK);
    long long v = -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    g_free(path);
    return v;
}

/* ---- a VFS that fails writes on demand ------------------------------ */

static int fail_writes_with;  /* 0: pass; else the SQLite code failing writes return */
static int writes_until_fail; /* writes that still pass before the failures start */
static int failed_writes;
static sqlite3_vfs *real_vfs;

typedef struct shim_file {
    sqlite3_file base;
    sqlite3_file *real; /* allocated right after this struct */
} shim_file;

#define REAL(f) (((shim_file *)(f))->real)

static int shim_close(sqlite3_file *f)
{
    int rc = REAL(f)->pMethods ? REAL(f)->pMethods->xClose(REAL(f)) : SQLITE_OK;
    return rc;
}
static int shim_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
    return REAL(f)->pMethods->xRead(REAL(f), p, n, off);
}
static int shim_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
    if (fail_writes_with && writes_until_fail-- <= 0) {
        failed_writes++;
        return fail_writes_with;
    }
    return REAL(f)->pMethods->xWrite(REAL(f), p, n, off);
}
static int shim_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int shim_sync(sqlite3_file *f, int flags)
{
    return REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int shim_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}
static int shim_lock(sqlite3_file *f, int l)
{
    return REAL(f)->pMethods->xLock(REAL(f), l);
}
static int shim_unlock(sqlite3_file *f, int l)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), l);
}
static int shim_check_lock(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int shim_control(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int shim_sector(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int shim_caps(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int shim_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, pgsz, extend, pp);
}
static int shim_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}
static void shim_shm_barrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int shim_shm_unmap(sqlite3_file *f, int del)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

/* Version 2: no memory-mapped I/O, so every write goes through xWrite. */
static const sqlite3_io_methods shim_io = {
    2,         shim_close,   shim_read,     shim_write,       shim_truncate,  shim_sync,
    shim_size, shim_lock,    shim_unlock,   shim_check_lock,  shim_control,   shim_sector,
    shim_caps, shim_shm_map, shim_shm_lock, shim_shm_barrier, shim_shm_unmap, NULL,
    NULL,
};

static int shim_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out)
{
    shim_file *sf = (shim_file *)f;
    sf->real = (sqlite3_file *)(sf + 1);
    int rc = real_vfs->xOpen(real_vfs, name, sf->real, flags, out);
    f->pMethods = sf->real->pMethods ? &shim_io : NULL;
    return rc;
}
static int shim_delete(sqlite3_vfs *vfs, const char *name, int sync)
{
    return real_vfs->xDelete(real_vfs, name, sync);
}
static int shim_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    return real_vfs->xAccess(real_vfs, name, flags, out);
}
static int shim_full_path(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    return real_vfs->xFullPathname(real_vfs, name, n, out);
}
static int shim_random(sqlite3_vfs *vfs, int n, char *out)
{
    return real_vfs->xRandomness(real_vfs, n, out);
}
static int shim_sleep(sqlite3_vfs *vfs, int us)
{
    return real_vfs->xSleep(real_vfs, us);
}
static int shim_time(sqlite3_vfs *vfs, double *out)
{
    return real_vfs->xCurrentTime(real_vfs, out);
}
static int shim_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    return real_vfs->xGetLastError(real_vfs, n, out);
}
static int shim_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

static sqlite3_vfs shim_vfs;

/* Makes the shim the default VFS: every store opened afterwards uses it. */
static void install_shim(void)
{
    real_vfs = sqlite3_vfs_find(NULL);
    CHECK(real_vfs != NULL);
    shim_vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)sizeof(shim_file) + real_vfs->szOsFile,
        .mxPathname = real_vfs->mxPathname,
        .zName = "tm-fail-writes",
        .xOpen = shim_open,
        .xDelete = shim_delete,
        .xAccess = shim_access,
        .xFullPathname = shim_full_path,
        .xRandomness = shim_random,
        .xSleep = shim_sleep,
        .xCurrentTime = shim_time,
        .xGetLastError = shim_last_error,
        .xCurrentTimeInt64 = shim_time64,
    };
    CHECK_EQ_INT(sqlite3_vfs_register(&shim_vfs, 1), SQLITE_OK);
}

/* ---- SQLite's own checks -------------------------------------------- */

static void test_newer_schema_refused(void)
{
    tm_store *s = open_sqlite("newer");
    tm_store_free(s);
    char *path = db_path("newer");
    sqlite3 *db;
    CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    CHECK_EQ_INT(sqlite3_exec(db, "PRAGMA user_version=999", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    /* A database from a newer server is refused, not damaged. */
    char *err = NULL;
    CHECK(tm_store_open(path, "h", &err) == NULL);
    CHECK(err && strstr(err, "newer"));
    g_free(err);
    CHECK(tm_store_open(path, "h", NULL) == NULL); /* err may be NULL */
    CHECK_EQ_INT(scalar("newer", "PRAGMA user_version"), 999);
    CHECK_EQ_INT(
        scalar("newer", "SELECT count(*) FROM pragma_journal_mode WHERE journal_mode='wal'"), 1);
    g_free(path);
}

/* Migration 10 (visits of more than two) on a database of the schema
 * before it, with rows: the participant table is rebuilt with each row's
 * visit role, doctors get the kind doctor, nothing is lost. */
static void test_party_migration(void)
{
    tm_store *s = open_sqlite("v9");
    int newest = tm_store_schema_version(s);
    tm_store_free(s);
    char *path = db_path("v9");
    sqlite3 *db;
    CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    /* Back to the shape of version 9, as a server before issue 17 left it. */
    static const char *const v9 =
        "DROP TABLE renditions; DROP TABLE invites; DROP TABLE guest_links;"
        "DROP TABLE consultations;"
        "DROP TABLE visit_transfers; DROP TABLE referrals;"
        "ALTER TABLE departments DROP COLUMN institution_id; DROP TABLE institutions;"
        "DROP TABLE followups; DROP TABLE appointment_notices;"
        "DROP TABLE messaging_outbox; DROP TABLE messaging_cursor;"
        "DROP TABLE feed_routes; DROP TABLE routed_outbox; DROP TABLE routed_cursor;"
        "DROP TABLE node_duty; DROP TABLE nodes; DROP INDEX visits_by_media_node;"
        "ALTER TABLE visits DROP COLUMN media_node; ALTER TABLE visits DROP COLUMN patient_away_at;"
        "ALTER TABLE outbox DROP COLUMN leased_by; ALTER TABLE outbox DROP COLUMN lease_until;"
        "ALTER TABLE recordings DROP COLUMN node_id; ALTER TABLE recordings DROP COLUMN segment;"
        "ALTER TABLE upload_records DROP COLUMN leased_by;"
        "ALTER TABLE upload_records DROP COLUMN lease_until;"
        "ALTER TABLE upload_days DROP COLUMN leased_by; ALTER TABLE upload_days DROP COLUMN "
        "lease_until;"
        "DROP TABLE participants;"
        "ALTER TABLE doctors DROP COLUMN kind;"
        "CREATE TABLE participants(id INTEGER PRIMARY KEY,"
        "  visit_id TEXT NOT NULL REFERENCES visits(id), user_id TEXT NOT NULL,"
        "  role TEXT NOT NULL CHECK(role IN ('patient','doctor','supervisor')),"
        "  user_agent TEXT, joined_at INTEGER NOT NULL, left_at INTEGER, leave_reason TEXT);"
        "INSERT INTO departments VALUES('cardio', 'Cardiology', 1);"
        "INSERT INTO doctors(id, name, dept_id, licence_no, created_at)"
        "  VALUES('d1', 'Dr One', 'cardio', 'LIC1', 1);"
        "INSERT INTO visits(id, patient_id, dept_id, doctor_id, kind, state, checkin_at,"
        "  updated_at) VALUES('v1', 'p1', 'cardio', 'd1', 'follow_up', 'ended', 1, 1);"
        "INSERT INTO participants(visit_id, user_id, role, joined_at, left_at, leave_reason)"
        "  VALUES('v1', 'p1', 'patient', 1, 9, 'completed'), ('v1', 'd1', 'doctor', 2, 9,"
        "  'completed'), ('v1', 's1', 'supervisor', 3, 4, 'left');"
        "PRAGMA user_version=9;";
    char *msg = NULL;
    CHECK_EQ_INT(sqlite3_exec(db, v9, NULL, NULL, &msg), SQLITE_OK);
    sqlite3_close(db);
    s = open_sqlite("v9");
    CHECK_EQ_INT(tm_store_schema_version(s), newest);
    char role[16];
    CHECK_EQ_INT(tm_store_party_role(s, "v1", "d1", role), 0);
    CHECK_STR(role, "attending");
    CHECK_EQ_INT(tm_store_party_role(s, "v1", "p1", role), 0);
    CHECK_STR(role, "patient");
    CHECK_EQ_INT(tm_store_party_role(s, "v1", "s1", role), TM_ENOTFOUND); /* a watcher */
    tm_doctor_info info;
    CHECK_EQ_INT(tm_store_doctor_get(s, "d1", &info), 0);
    CHECK_STR(info.kind, "doctor");
    json_t *rec = tm_store_visit_record(s, "v1");
    CHECK_EQ_INT(json_array_size(json_object_get(rec, "participants")), 3);
    CHECK_EQ_INT(json_array_size(json_object_get(rec, "invites")), 0);
    json_decref(rec);
    tm_store_free(s);
    g_free(path);
}

static int mode_of(const char *path)
{
    struct stat st;
    CHECK_EQ_INT(stat(path, &st), 0);
    return (int)(st.st_mode & 0777);
}

/* Patient data: the database and its side files are the server's alone,
 * also when the process umask would allow more, and an old database made
 * 0644 is narrowed at open. */
static void test_files_are_private(void)
{
    mode_t old = umask(022);
    tm_store *s = open_sqlite("modes");
    CHECK_EQ_INT(tm_store_dept_put(s, "cardio", "Cardiology"), 0); /* -wal and -shm exist now */
    char *path = db_path("modes");
    char *wal = g_strconcat(path, "-wal", NULL), *shm = g_strconcat(path, "-shm", NULL);
    CHECK_EQ_INT(mode_of(path), 0600);
    CHECK_EQ_INT(mode_of(wal), 0600);
    CHECK_EQ_INT(mode_of(shm), 0600);
    tm_store_free(s);

    char *legacy = db_path("legacy");
    sqlite3 *db;
    CHECK_EQ_INT(sqlite3_open(legacy, &db), SQLITE_OK);
    CHECK_EQ_INT(sqlite3_exec(db, "CREATE TABLE t(x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    CHECK_EQ_INT(chmod(legacy, 0644), 0);
    s = open_sqlite("legacy");
    CHECK_EQ_INT(mode_of(legacy), 0600);
    tm_store_free(s);
    umask(old);
    g_free(path);
    g_free(wal);
    g_free(shm);
    g_free(legacy);
}

static void seed(tm_store *s)
{
    CHECK_EQ_INT(tm_store_dept_put(s, "cardio", "Cardiology"), 0);
    CHECK_EQ_INT(tm_store_doctor_put(s, "d1", "Dr One", "cardio", "LIC1", NULL), 0);
}

static tm_visit new_visit(const char *patient)
{
    tm_visit v = {0};
    g_strlcpy(v.patient_id, patient, sizeof(v.patient_id));
    g_strlcpy(v.dept_id, "cardio", sizeof(v.dept_id));
    g_strlcpy(v.kind, "follow_up", sizeof(v.kind));
    v.checkin_ms = tm_now_ms();
    return v;
}

static long long rows_of(const char *name, const char *table, const char *visit_id)
{
    char *sql = g_strdup_printf("SELECT count(*) FROM %s WHERE %s = '%s'", table,
                                strcmp(table, "visits") == 0 ? "id" : "visit_id", visit_id);
    long long n = scalar(name, sql);
    g_free(sql);
    return n;
}

/* With writes failing (code), check-in and accept are refused with a
 * message, and neither the visit change nor its outbox row is there; once
 * the disk is back the same store takes both steps. */
static void expect_refused_then_served(const char *name, int code, const char *words)
{
    tm_store *s = open_sqlite(name);
    seed(s);
    tm_visit v = new_visit("p-ok");
    CHECK_EQ_INT(tm_store_visit_checkin(s, &v, "ua"), 0);
    CHECK_EQ_INT(tm_store_visit_offer(s, v.id, "d1", tm_now_ms()), 0);

    fail_writes_with = code;
    writes_until_fail = 0;
    failed_writes = 0;
    tm_visit lost = new_visit("p-lost");
    CHECK_EQ_INT(tm_store_visit_checkin(s, &lost, "ua"), TM_EIO);
    CHECK(strstr(tm_store_errmsg(s), words) != NULL);
    CHECK_EQ_INT(tm_store_visit_accept(s, v.id, "d1", "ua", tm_now_ms()), TM_EIO);
    CHECK(strstr(tm_store_errmsg(s), words) != NULL);
    CHECK(failed_writes > 0);
    fail_writes_with = 0;

    /* Nothing half-written: read by the store and by an outside reader. */
    tm_visit got;
    CHECK_EQ_INT(tm_store_visit_get(s, lost.id, &got), TM_ENOTFOUND);
    CHECK_EQ_INT(rows_of(name, "visits", lost.id), 0);
    CHECK_EQ_INT(rows_of(name, "outbox", lost.id), 0);
    CHECK_EQ_INT(rows_of(name, "participants", lost.id), 0);
    CHECK_EQ_INT(tm_store_visit_get(s, v.id, &got), 0);
    CHECK_STR(got.state, "offered");
    CHECK_EQ_INT(scalar(name, "SELECT count(*) FROM outbox WHERE type = 'visit.started'"), 0);
    int64_t pending = 0;
    CHECK_EQ_INT(tm_store_outbox_count(s, "pending", &pending), 0);
    CHECK_EQ_INT(pending, 1);

    /* And it keeps serving. */
    CHECK_EQ_INT(tm_store_visit_accept(s, v.id, "d1", "ua", tm_now_ms()), 0);
    tm_visit again = new_visit("p-again");
    CHECK_EQ_INT(tm_store_visit_checkin(s, &again, "ua"), 0);
    CHECK_EQ_INT(rows_of(name, "outbox", again.id), 1);
    CHECK_EQ_INT(scalar(name, "SELECT count(*) FROM outbox WHERE type = 'visit.started'"), 1);
    tm_store_free(s);
    /* The file is whole: it opens and passes SQLite's own check. */
    s = open_sqlite(name);
    tm_store_free(s);
    char *path = db_path(name);
    sqlite3 *db;
    CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    CHECK_EQ_INT(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    CHECK_EQ_INT(sqlite3_step(st), SQLITE_ROW);
    CHECK_STR((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    sqlite3_close(db);
    g_free(path);
}

/* SQLite's fault simulation, for a visit step: the disk fails at the
 * first write, then at the second, and so on until the step gets through.
 * Whatever write fails, the visit and its event are both there or both
 * absent: one transaction, never two. */
static void test_fault_at_every_write(void)
{
    tm_store *s = open_sqlite("faultsim");
    seed(s);
    bool done = false;
    for (int k = 0; k < 200 && !done; k++) {
        tm_visit v = new_visit("p-fault");
        fail_writes_with = SQLITE_IOERR_WRITE;
        writes_until_fail = k;
        int rc = tm_store_visit_checkin(s, &v, "ua");
        fail_writes_with = 0;
        done = rc == 0;
        long long visits = rows_of("faultsim", "visits", v.id);
        CHECK_EQ_INT(rows_of("faultsim", "outbox", v.id), visits);
        CHECK_EQ_INT(visits, done ? 1 : 0);
        if (!done) {
            CHECK_EQ_INT(rc, TM_EIO);
            CHECK(tm_store_errmsg(s)[0] != '\0');
        }
    }
    CHECK(done);
    tm_store_free(s);
}

static void test_disk_full(void)
{
    expect_refused_then_served("full", SQLITE_FULL, "full");
}

static void test_io_error(void)
{
    expect_refused_then_served("ioerr", SQLITE_IOERR_WRITE, "I/O error");
}

/* Another process holds the write lock past the busy timeout (5 s): the
 * step is refused before anything is written. */
static void test_locked(void)
{
    tm_store *s = open_sqlite("locked");
    seed(s);
    char *path = db_path("locked");
    sqlite3 *other;
    CHECK_EQ_INT(sqlite3_open(path, &other), SQLITE_OK);
    CHECK_EQ_INT(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    tm_visit lost = new_visit("p-lost");
    CHECK_EQ_INT(tm_store_visit_checkin(s, &lost, "ua"), TM_EIO);
    CHECK(strstr(tm_store_errmsg(s), "locked") != NULL);
    CHECK_EQ_INT(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    tm_visit got;
    CHECK_EQ_INT(tm_store_visit_get(s, lost.id, &got), TM_ENOTFOUND);
    CHECK_EQ_INT(rows_of("locked", "visits", lost.id), 0);
    CHECK_EQ_INT(rows_of("locked", "outbox", lost.id), 0);
    tm_visit v = new_visit("p-ok");
    CHECK_EQ_INT(tm_store_visit_checkin(s, &v, "ua"), 0);
    CHECK_EQ_INT(rows_of("locked", "outbox", v.id), 1);
    tm_store_free(s);
    g_free(path);
}

/* Outbox leases (migration 18) as the outbox's consumer writes them on
 * several nodes: a takeover frees only the expired leases of nodes that are
 * dead; a live node's lease and a dead node's unexpired one stay. */
static void test_dead_node_leases(void)
{
    tm_store *s = open_sqlite("leases");
    seed(s);
    tm_visit v = new_visit("p-lease");
    CHECK_EQ_INT(tm_store_visit_checkin(s, &v, "ua"), 0);
    int64_t now = tm_now_ms();
    tm_node_info live = {.id = "node-live", .public_url = "https://live.test"};
    live.started_at_ms = live.heartbeat_ms = now;
    tm_node_info dead = {.id = "node-dead", .public_url = "https://dead.test"};
    dead.started_at_ms = dead.heartbeat_ms = now - 60000;
    CHECK_EQ_INT(tm_store_node_heartbeat(s, &live), 0);
    CHECK_EQ_INT(tm_store_node_heartbeat(s, &dead), 0);
    tm_store_free(s);

    char *path = db_path("leases");
    sqlite3 *db;
    CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    char *sql = g_strdup_printf(
        "INSERT INTO outbox(event_id, type, visit_id, occurred_at, payload, leased_by, lease_until)"
        " VALUES('e-dead-expired', 't', 'v', 1, '{}', 'node-dead', %lld),"
        " ('e-dead-held', 't', 'v', 1, '{}', 'node-dead', %lld),"
        " ('e-live-expired', 't', 'v', 1, '{}', 'node-live', %lld)",
        (long long)(now - 1000), (long long)(now + 60000), (long long)(now - 1000));
    CHECK_EQ_INT(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    g_free(sql);
    sqlite3_close(db);
    g_free(path);

    s = open_sqlite("leases");
    json_t *visits = NULL;
    int leases = -1;
    CHECK_EQ_INT(tm_store_node_takeover(s, now, 10000, &visits, &leases), 0);
    CHECK_EQ_INT(leases, 1);
    CHECK_EQ_INT((int)json_array_size(visits), 0);
    json_decref(visits);
    tm_store_free(s);
    CHECK_EQ_INT(scalar("leases", "SELECT count(*) FROM outbox WHERE leased_by IS NULL"
                                  " AND event_id = 'e-dead-expired'"),
                 1);
    CHECK_EQ_INT(scalar("leases", "SELECT count(*) FROM outbox WHERE leased_by IS NOT NULL"), 2);
}

int main(void)
{
    test_dir = g_dir_make_tmp("tm-store-XXXXXX", NULL);
    CHECK(test_dir != NULL);
    install_shim();
    store_suite_run(&(store_backend){"sqlite", open_sqlite, NULL, NULL});
    RUN(test_newer_schema_refused);
    RUN(test_party_migration);
    RUN(test_dead_node_leases);
    RUN(test_files_are_private);
    RUN(test_disk_full);
    RUN(test_io_error);
    RUN(test_locked);
    RUN(test_fault_at_every_write);
    char *cmd = g_strdup_printf("rm -rf '%s'", test_dir);
    CHECK(system(cmd) == 0);
    g_free(cmd);
    g_free(test_dir);
    TEST_DONE();
}

/*
 * test_store_pg.c - the store on PostgreSQL: a throwaway server started by
 * tests/support/pg.sh in a temporary directory (127.0.0.1, a free port),
 * the backend-neutral suite (store_suite.c) against it, then what only a
 * networked engine has: the server killed and restarted under the store
 * (the step in flight fails with a clear error, nothing half-written, the
 * same handle serves again), and a database from a newer server refused.
 */
#include "pg_fixture.h"
#include "store_suite.h"

#include "telemed/common.h"
#include "telemed/store.h"
#include "tm_test.h"

#include <glib.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tm_store *open_pg(const char *name)
{
    char *url = pg_fixture_url(name), *err = NULL;
    tm_store *s = tm_store_open(url, "hosp-1", &err);
    if (!s)
        fprintf(stderr, "open %s: %s\n", url, err);
    CHECK(s != NULL);
    g_free(url);
    return s;
}

/* The first column of the first row of sql on database name, read on a
 * connection of its own; -1 if there is none. */
static long long scalar(const char *name, const char *sql)
{
    char *url = pg_fixture_url(name);
    PGconn *c = PQconnectdb(url);
    CHECK(PQstatus(c) == CONNECTION_OK);
    PGresult *r = PQexec(c, sql);
    CHECK(PQresultStatus(r) == PGRES_TUPLES_OK);
    long long v = PQntuples(r) > 0 ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;
    PQclear(r);
    PQfinish(c);
    g_free(url);
    return v;
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

static void seed_dept(tm_store *s)
{
    CHECK_EQ_INT(tm_store_dept_put(s, "cardio", "Cardiology"), 0);
}

/* PostgreSQL killed under an idle handle: the next step fails with a clear
 * error and writes nothing; once the server is back the same handle
 * serves again, with no reopen. */
static void test_server_restart(void)
{
    tm_store *s = open_pg("restart");
    seed_dept(s);
    tm_visit a = new_visit("p-before");
    CHECK_EQ_INT(tm_store_visit_checkin(s, &a, "ua"), 0);

    char *url = pg_fixture_sh("kill");
    g_free(url);
    tm_visit b = new_visit("p-down");
    CHECK_EQ_INT(tm_store_visit_checkin(s, &b, "ua"), TM_EIO);
    CHECK(strstr(tm_store_errmsg(s), "PostgreSQL") != NULL);

    url = pg_fixture_sh("restart");
    CHECK(url != NULL);
    g_free(url);
    tm_visit c = new_visit("p-after");
    CHECK_EQ_INT(tm_store_visit_checkin(s, &c, "ua"), 0);
    CHECK_EQ_INT(scalar("restart", "SELECT count(*) FROM visits WHERE patient_id = 'p-down'"), 0);
    CHECK_EQ_INT(scalar("restart", "SELECT count(*) FROM visits"), 2);
    CHECK_EQ_INT(scalar("restart", "SELECT count(*) FROM outbox"), 2);
    tm_store_free(s);
}

static void test_newer_schema_refused(void)
{
    tm_store *s = open_pg("newer");
    tm_store_free(s);
    char *url = pg_fixture_url("newer");
    PGconn *c = PQconnectdb(url);
    PQclear(PQexec(c, "UPDATE tm_schema_version SET version = 9999"));
    PQfinish(c);
    char *err = NULL;
    CHECK(tm_store_open(url, "h", &err) == NULL);
    CHECK(err && strstr(err, "newer") != NULL);
    g_free(err);
    g_free(url);
}

static void test_unreachable(void)
{
    char *err = NULL;
    CHECK(tm_store_open("postgresql://telemed@127.0.0.1:1/telemed", "h", &err) == NULL);
    CHECK(err && strstr(err, "PostgreSQL") != NULL);
    g_free(err);
}

int main(void)
{
    pg_fixture_start();
    store_suite_run(&(store_backend){"postgresql", open_pg});
    RUN(test_newer_schema_refused);
    RUN(test_unreachable);
    RUN(test_server_restart);
    TEST_DONE();
}

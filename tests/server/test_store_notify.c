/*
 * test_store_notify.c - the cluster's events out of the store
 * (tm__store_notify, server/store_internal.h): delivered once its step's
 * transaction commits, never for a step rolled back. On SQLite through the
 * in-process hook (tm_store_on_notify); on a test-started PostgreSQL as a
 * NOTIFY that another connection LISTENing on the channel receives.
 */
#include "pg_fixture.h"
#include "store_internal.h"
#include "telemed/common.h"
#include "telemed/store.h"
#include "tm_test.h"

#include <glib.h>
#include <libpq-fe.h>
#include <poll.h>
#include <string.h>

static GPtrArray *heard; /* "channel payload" */

static void on_notify(const char *channel, const char *payload, void *user)
{
    (void)user;
    g_ptr_array_add(heard, g_strdup_printf("%s %s", channel, payload));
}

/* One step: a transaction that notifies payload and ends with rc. */
static void step(tm_store *s, const char *payload, int rc)
{
    CHECK_EQ_INT(tm__store_begin(s), 0);
    CHECK_EQ_INT(tm__store_notify(s, "telemed", payload), 0);
    CHECK_EQ_INT(heard->len, 0); /* nothing before the commit */
    CHECK_EQ_INT(tm__store_finish(s, rc), rc);
}

static void test_sqlite_in_process(void)
{
    char *dir = g_dir_make_tmp("tm-notify-XXXXXX", NULL);
    char *path = g_build_filename(dir, "n.db", NULL);
    tm_store *s = tm_store_open(path, "h", NULL);
    CHECK(s != NULL);
    tm_store_on_notify(s, on_notify, NULL);

    step(s, "queue:cardio", 0);
    CHECK_EQ_INT(heard->len, 1);
    CHECK_STR(g_ptr_array_index(heard, 0), "telemed queue:cardio");
    g_ptr_array_set_size(heard, 0);

    step(s, "visit:v-rolled-back", TM_ECONFLICT);
    CHECK_EQ_INT(heard->len, 0);

    CHECK_EQ_INT(tm__store_notify(s, "telemed", "node:n1"), 0); /* no transaction: at once */
    CHECK_EQ_INT(heard->len, 1);
    g_ptr_array_set_size(heard, 0);
    tm_store_free(s);
    char *cmd = g_strdup_printf("rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    g_free(cmd);
    g_free(path);
    g_free(dir);
}

/* The notifications l has received within wait_ms, as "channel payload". */
static void drain(PGconn *l, int wait_ms, GPtrArray *out)
{
    struct pollfd p = {.fd = PQsocket(l), .events = POLLIN};
    while (poll(&p, 1, wait_ms) > 0) {
        CHECK(PQconsumeInput(l) == 1);
        PGnotify *n;
        while ((n = PQnotifies(l)) != NULL) {
            g_ptr_array_add(out, g_strdup_printf("%s %s", n->relname, n->extra));
            PQfreemem(n);
        }
        wait_ms = 200; /* a little longer for any that follow */
    }
}

static void test_pg_notify(void)
{
    pg_fixture_start();
    char *url = pg_fixture_url("notify");
    tm_store *s = tm_store_open(url, "h", NULL);
    CHECK(s != NULL);
    tm_store_on_notify(s, on_notify, NULL); /* not called on PostgreSQL */
    PGconn *l = PQconnectdb(url);
    CHECK(PQstatus(l) == CONNECTION_OK);
    PQclear(PQexec(l, "LISTEN telemed"));

    GPtrArray *got = g_ptr_array_new_with_free_func(g_free);
    step(s, "visit:v-rolled-back", TM_ECONFLICT);
    step(s, "queue:cardio", 0);
    drain(l, 5000, got);
    CHECK_EQ_INT(got->len, 1);
    CHECK_STR(g_ptr_array_index(got, 0), "telemed queue:cardio");
    CHECK_EQ_INT(heard->len, 0);

    g_ptr_array_free(got, TRUE);
    PQfinish(l);
    tm_store_free(s);
    g_free(url);
}

int main(void)
{
    heard = g_ptr_array_new_with_free_func(g_free);
    RUN(test_sqlite_in_process);
    RUN(test_pg_notify);
    g_ptr_array_free(heard, TRUE);
    TEST_DONE();
}

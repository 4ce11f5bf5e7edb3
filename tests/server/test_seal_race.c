/*
 * test_seal_race.c - two nodes seal the same visit (issue 19, beat19), on a
 * PostgreSQL the test starts (tests/support/pg.sh).
 *
 * Two sealers, each on its own store handle as on two nodes, both find the
 * same visits due. An outside connection holds visit_seals locked until
 * both have reached their seal's INSERT (counted in pg_locks), so the race
 * happens every run, not by chance: one wins each visit, the other finds
 * it sealed and goes on. Every visit is sealed exactly once (one seal row,
 * one visit.sealed event), neither pass fails, and no error is logged.
 */
#include "telemed/common.h"
#include "telemed/record_seal.h"
#include "telemed/store.h"
#include "pg_fixture.h"
#include "store_visits.h"
#include "tm_test.h"

#include <glib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define VISITS 3

static char *url, *dir;

static tm_store *open_store(void)
{
    char *err = NULL;
    tm_store *s = tm_store_open(url, "hosp-1", &err);
    if (!s)
        fprintf(stderr, "store: %s\n", err);
    CHECK(s != NULL);
    return s;
}

/* A visit checked in and left by its patient: over, due for its seal. */
static void ended_visit(tm_store *s, const char *patient)
{
    tm_visit v;
    visit_checked_in(s, patient, &v);
    CHECK_EQ_INT(tm_store_visit_end(s, v.id, "patient_left", patient, tm_now_ms()), 0);
}

static int64_t count_of(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    CHECK(PQresultStatus(r) == PGRES_TUPLES_OK);
    int64_t n = g_ascii_strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return n;
}

static void exec_ok(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fprintf(stderr, "%s: %s", sql, PQresultErrorMessage(r));
    CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
    PQclear(r);
}

typedef struct node {
    tm_store *store;
    tm_sealer *sealer;
    GMainContext *ctx; /* the sealer's timer's, never run: passes are the test's */
    GThread *thread;
    int sealed;
} node;

static gpointer one_pass(gpointer data)
{
    node *n = data;
    n->sealed = tm_sealer_run(n->sealer, tm_now_ms());
    return NULL;
}

static void node_start(node *n, const tm_seal_key *key)
{
    n->store = open_store();
    n->ctx = g_main_context_new();
    n->sealer = tm_sealer_new(n->store, key, 3600, n->ctx);
    n->thread = g_thread_new("sealer", one_pass, n);
}

static void node_join(node *n)
{
    g_thread_join(n->thread);
    tm_sealer_free(n->sealer);
    g_main_context_unref(n->ctx);
    tm_store_free(n->store);
}

/* stderr into a file for the race, to read what was logged at which level. */
static int log_to(const char *path)
{
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    CHECK(dup2(fileno(f), STDERR_FILENO) >= 0);
    fclose(f);
    return saved;
}

static char *log_back(int saved, const char *path)
{
    fflush(stderr);
    CHECK(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    char *text = NULL;
    CHECK(g_file_get_contents(path, &text, NULL, NULL));
    fputs(text, stderr);
    return text;
}

static void test_two_nodes_seal_once(void)
{
    tm_store *s = open_store();
    CHECK_EQ_INT(tm_store_dept_put(s, "cardio", "Cardiology"), 0);
    char patient[16];
    for (int i = 0; i < VISITS; i++) {
        g_snprintf(patient, sizeof(patient), "p-%d", i);
        ended_visit(s, patient);
    }
    char *key_path = g_build_filename(dir, "seal.key", NULL), *err = NULL;
    tm_seal_key *key = tm_seal_key_load(key_path, TM_SEAL_ECDSA_P256, true, NULL, &err);
    CHECK(key != NULL);

    PGconn *gate = PQconnectdb(url);
    CHECK(PQstatus(gate) == CONNECTION_OK);
    exec_ok(gate, "BEGIN");
    exec_ok(gate, "LOCK TABLE visit_seals IN EXCLUSIVE MODE");

    char *log_path = g_build_filename(dir, "race.log", NULL);
    int saved = log_to(log_path);
    node a = {0}, b = {0};
    node_start(&a, key);
    node_start(&b, key);
    /* Both stand at their INSERT into visit_seals, waiting for the gate. */
    PGconn *watch = PQconnectdb(url);
    CHECK(PQstatus(watch) == CONNECTION_OK);
    int64_t cap = tm_now_ms() + 90000;
    while (count_of(watch, "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                           " WHERE c.relname = 'visit_seals' AND NOT l.granted") < 2 &&
           tm_now_ms() < cap)
        g_usleep(20 * 1000);
    exec_ok(gate, "COMMIT");
    node_join(&a);
    node_join(&b);
    char *logged = log_back(saved, log_path);

    CHECK(a.sealed >= 0 && b.sealed >= 0);
    CHECK_EQ_INT(a.sealed + b.sealed, VISITS);
    CHECK(strstr(logged, "ev=visit.sealed_elsewhere") != NULL);
    CHECK(strstr(logged, "level=error") == NULL);
    CHECK_EQ_INT((int)count_of(watch, "SELECT count(*) FROM visit_seals"), VISITS);
    CHECK_EQ_INT((int)count_of(watch, "SELECT count(*) FROM outbox WHERE type = 'visit.sealed'"),
                 VISITS);
    CHECK_EQ_INT((int)count_of(watch, "SELECT count(*) FROM visits WHERE sealed_at IS NULL"), 0);

    PQfinish(watch);
    PQfinish(gate);
    g_free(logged);
    g_free(log_path);
    tm_seal_key_free(key);
    g_free(key_path);
    tm_store_free(s);
}

int main(void)
{
    dir = g_dir_make_tmp("tm-seal-race-XXXXXX", NULL);
    CHECK(dir != NULL);
    pg_fixture_start();
    url = pg_fixture_url("seal_race");
    test_two_nodes_seal_once();
    g_free(url);
    char *cmd = g_strdup_printf("rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    g_free(cmd);
    printf("test_seal_race: ok\n");
    return 0;
}

/*
 * pg_fixture.h - a throwaway PostgreSQL for a C test: tests/support/pg.sh
 * (its path in TM_PG_SH) starts one in a temporary directory on 127.0.0.1
 * and a free port; it is stopped and removed when the test exits, even
 * after a failed check, and by a watcher (pg.sh guard) when the test is
 * killed. Each name a test asks for is its own database.
 * pg_fixture_kill and pg_fixture_restart take it away (kill -9) and bring
 * it back on the same port, for tests of a database that fails.
 * Header-only: one test program includes it once.
 */
#ifndef TM_PG_FIXTURE_H
#define TM_PG_FIXTURE_H

#include "tm_test.h"

#include <arpa/inet.h>
#include <glib.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char *pg_fixture_dir;
static char *pg_fixture_admin; /* postgresql://telemed@127.0.0.1:PORT/telemed */
static GHashTable *pg_fixture_made;

/* Runs pg.sh cmd on the fixture's directory; its output (the URL) or NULL. */
static char *pg_fixture_sh(const char *cmd)
{
    char *argv[] = {(char *)"/bin/sh", (char *)TM_PG_SH, (char *)cmd, pg_fixture_dir, NULL};
    char *out = NULL, *err = NULL;
    int status = 0;
    gboolean ok =
        g_spawn_sync(NULL, argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, &err, &status, NULL);
    if (!ok || !g_spawn_check_wait_status(status, NULL)) {
        fprintf(stderr, "pg.sh %s: %s\n", cmd, err ? err : "");
        g_free(out);
        out = NULL;
    }
    g_free(err);
    return out ? g_strstrip(out) : NULL;
}

static void pg_fixture_stop(void)
{
    g_free(pg_fixture_sh("stop"));
    char *cmd = g_strdup_printf("rm -rf '%s'", pg_fixture_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", pg_fixture_dir);
    g_free(cmd);
}

static void pg_fixture_start(void)
{
    pg_fixture_dir = g_dir_make_tmp("tm-pg-XXXXXX", NULL);
    CHECK(pg_fixture_dir != NULL);
    pg_fixture_made = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    atexit(pg_fixture_stop);
    /* The exit handler does not run when the test is killed (a ctest
     * timeout): a watcher then stops the server. */
    char pid[16];
    g_snprintf(pid, sizeof(pid), "%d", (int)getpid());
    char *argv[] = {
        (char *)"/bin/sh", (char *)TM_PG_SH, (char *)"guard", pg_fixture_dir, pid, NULL};
    int status = 0;
    CHECK(g_spawn_sync(NULL, argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL | G_SPAWN_STDERR_TO_DEV_NULL,
                       NULL, NULL, NULL, NULL, &status, NULL) &&
          g_spawn_check_wait_status(status, NULL));
    pg_fixture_admin = pg_fixture_sh("start");
    CHECK(pg_fixture_admin != NULL);
}

/* PostgreSQL killed as a crash would (its children too). */
static inline void pg_fixture_kill(void)
{
    char *out = pg_fixture_sh("kill");
    CHECK(out != NULL);
    g_free(out);
}

/* PostgreSQL started again on its old data directory and port. */
static inline void pg_fixture_restart(void)
{
    char *again = pg_fixture_sh("restart");
    CHECK(again != NULL);
    CHECK_STR(again, pg_fixture_admin);
    g_free(again);
}

/* The port PostgreSQL listens on (from its URL). */
static inline int pg_fixture_port(void)
{
    const char *at = strrchr(pg_fixture_admin, ':');
    CHECK(at != NULL);
    return atoi(at + 1);
}

/* A socket on PostgreSQL's port (once it is killed) that takes
 * connections and never answers: a server that hangs. Non-blocking. */
static inline int pg_fixture_silent_listener(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    CHECK(fd >= 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)pg_fixture_port())};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    CHECK(listen(fd, 16) == 0);
    return fd;
}

/* Runs sql, which returns no rows, on the database at url. */
static void pg_fixture_exec(const char *url, const char *sql)
{
    PGconn *c = PQconnectdb(url);
    CHECK(PQstatus(c) == CONNECTION_OK);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fprintf(stderr, "%s: %s", sql, PQresultErrorMessage(r));
    CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(c);
}

/* The URL of database name (new string), created empty the first time. */
static char *pg_fixture_url(const char *name)
{
    char db[64] = "t_";
    for (size_t i = 2, j = 0; i < sizeof(db) - 1 && name[j]; i++, j++)
        db[i] = g_ascii_isalnum(name[j]) ? g_ascii_tolower(name[j]) : '_';
    if (!g_hash_table_contains(pg_fixture_made, db)) {
        char *sql = g_strdup_printf("CREATE DATABASE %s", db);
        pg_fixture_exec(pg_fixture_admin, sql);
        g_free(sql);
        g_hash_table_add(pg_fixture_made, g_strdup(db));
    }
    const char *slash = strrchr(pg_fixture_admin, '/');
    return g_strdup_printf("%.*s/%s", (int)(slash - pg_fixture_admin), pg_fixture_admin, db);
}
#endif

/*
 * store_test.h - what the tests of the SQLite store share: a temporary
 * directory, opening a store in it, and reading one value back through a
 * separate connection, as an outside reader (a report, an auditor) would.
 * Include after tm_test.h; set store_test_dir in main.
 */
#ifndef TM_STORE_TEST_H
#define TM_STORE_TEST_H

#include "telemed/store.h"
#include "tm_test.h"

#include <glib.h>
#include <sqlite3.h>

static char *store_test_dir;

/* A new path in the test directory; g_free it. */
static char *test_path(const char *name)
{
    return g_build_filename(store_test_dir, name, NULL);
}

static tm_store *open_store(const char *name)
{
    char *path = test_path(name), *err = NULL;
    tm_store *s = tm_store_open(path, "hosp-1", &err);
    if (!s)
        fprintf(stderr, "open: %s\n", err);
    CHECK(s != NULL);
    g_free(path);
    return s;
}

/* The first column of the first row of sql, -1 if there is none. */
static long long scalar(const char *db_name, const char *sql)
{
    char *path = test_path(db_name);
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

#endif

/*
 * visit_fixture.h - what the tests of the visit's record (test_visit_chain.c,
 * test_visit_seal.c) share: a store on a real SQLite file, SQL run behind the
 * store's back (as an operator's sqlite3 shell would), and a visit taken
 * through check-in, offer, accept and end. Include after tm_test.h.
 */
#ifndef TM_VISIT_FIXTURE_H
#define TM_VISIT_FIXTURE_H

#include "telemed/store.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

static inline tm_store *fixture_open_store(const char *path)
{
    char *err = NULL;
    tm_store *s = tm_store_open(path, "hosp-1", &err);
    if (!s)
        fprintf(stderr, "open: %s\n", err);
    CHECK(s != NULL);
    return s;
}

static inline void fixture_raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fprintf(stderr, "raw: %s\n", msg);
    sqlite3_free(msg);
    sqlite3_close(db);
    CHECK_EQ_INT(rc, SQLITE_OK);
}

/* pat-1 checked in to cardio at t0, offered to and accepted by doc-1, ended
 * with reason at t0 + 60 s; no note yet. */
static inline void fixture_ended_visit(tm_store *s, tm_visit *v, const char *reason, int64_t t0)
{
    memset(v, 0, sizeof(*v));
    snprintf(v->patient_id, sizeof(v->patient_id), "pat-1");
    snprintf(v->dept_id, sizeof(v->dept_id), "cardio");
    snprintf(v->kind, sizeof(v->kind), "follow_up");
    v->checkin_ms = t0;
    CHECK_EQ_INT(tm_store_visit_checkin(s, v, "test"), 0);
    CHECK_EQ_INT(tm_store_visit_offer(s, v->id, "doc-1", t0 + 1000), 0);
    CHECK_EQ_INT(tm_store_visit_accept(s, v->id, "doc-1", "test", t0 + 2000), 0);
    CHECK_EQ_INT(tm_store_visit_end(s, v->id, reason, "doc-1", t0 + 60000), 0);
}

#endif

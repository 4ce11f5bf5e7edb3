/*
 * store_suite.h - the store test suite, written against telemed/store.h
 * only, so that it runs against any backend. A backend's test program gives
 * an opener and calls store_suite_run (tests/server/test_store.c does for
 * SQLite).
 */
#ifndef TM_STORE_SUITE_H
#define TM_STORE_SUITE_H

#include "telemed/store.h"

typedef struct store_backend {
    const char *name;
    /* A store on the database called db_name: new and empty the first
     * time, the same database when opened again. Never NULL. */
    tm_store *(*open)(const char *db_name);
    /* Where the database's clock judges nodes (PostgreSQL: a heartbeat is
     * stored at the server's time, whatever the node says): moves node_id's
     * heartbeat on db_name back by ms, as if it had stopped beating then.
     * NULL where the times a caller gives are stored as given (SQLite). */
    void (*age_heartbeat)(const char *db_name, const char *node_id, int64_t ms);
    /* Where the database's clock judges leases (PostgreSQL): moves every
     * lease on db_name back by ms, as if that much time had passed since it
     * was taken. NULL where leases take the caller's times (SQLite). */
    void (*age_leases)(const char *db_name, int64_t ms);
} store_backend;

/* Runs every test of the suite; a failed check exits the program. */
void store_suite_run(const store_backend *b);

/* The institutions part (issue 18; tests/server/store_suite_institution.c). */
void store_suite_institutions(const store_backend *b, const char *dir);

/* The cluster part (issue 19; tests/server/store_suite_node.c). */
void store_suite_nodes(const store_backend *b, const char *dir);

/* Outbox leases between nodes (issue 19; tests/server/store_suite_lease.c). */
void store_suite_leases(const store_backend *b, const char *dir);

#endif

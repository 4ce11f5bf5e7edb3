/*
 * store_internal.h - what the SQLite backend's own files share. Not part
 * of the store interface: only server/store_*.c include it.
 */
#ifndef TELEMED_STORE_INTERNAL_H
#define TELEMED_STORE_INTERNAL_H

#include "telemed/store.h"
#include <sqlite3.h>

/* The connection of an open store (borrowed). Control loop thread only. */
sqlite3 *tm__store_db(tm_store *s);
const char *tm__store_hospital(tm_store *s);

/* The store's cached statement for sql (a string literal: cached by its
 * address), reset and unbound; borrowed. Reset it when done rather than
 * finalize it, so it holds no read snapshot until its next use. */
sqlite3_stmt *tm__store_stmt(tm_store *s, const char *sql);

/* Builds the regulator event payload (data object, schema v1) for a visit
 * step from the rows as they are inside the current transaction. Returns a
 * new string (free()) or NULL. Lives in server/feed_event.c. */
char *tm__feed_event_payload(sqlite3 *db, const char *hospital_id, const char *type,
                             const char *visit_id);

#endif

/*
 * store_chain.c - the SQLite side of the visit hash chain
 * (include/telemed/visit_chain.h): the SQL functions the outbox trigger
 * calls, so that every outbox row gets its link in the transaction that
 * writes it whichever code writes it, and the walk that verifies a visit.
 *
 * Control loop thread only, on the store's connection.
 */
#include "store_internal.h"
#include "telemed/common.h"
#include "telemed/visit_chain.h"

#include <glib.h>
#include <string.h>

static const char *text_arg(sqlite3_value *v)
{
    const unsigned char *t = sqlite3_value_text(v);
    return t ? (const char *)t : "";
}

/* tm_chain_start(visit_id) */
static void sql_chain_start(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    char out[TM_CHAIN_HEX_LEN + 1];
    tm_chain_start(text_arg(argv[0]), out);
    sqlite3_result_text(ctx, out, TM_CHAIN_HEX_LEN, SQLITE_TRANSIENT);
}

/* tm_chain_link(prev, event_id, type, visit_id, occurred_at, payload) */
static void sql_chain_link(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    tm_chain_event ev = {
        .event_id = text_arg(argv[1]),
        .type = text_arg(argv[2]),
        .visit_id = text_arg(argv[3]),
        .occurred_at = sqlite3_value_int64(argv[4]),
        .payload = (const char *)sqlite3_value_blob(argv[5]),
        .payload_len = (size_t)sqlite3_value_bytes(argv[5]),
    };
    char out[TM_CHAIN_HEX_LEN + 1];
    if (tm_chain_link(text_arg(argv[0]), &ev, out) < 0) {
        sqlite3_result_error(ctx, "tm_chain_link: previous hash is not 64 lowercase hex digits",
                             -1);
        return;
    }
    sqlite3_result_text(ctx, out, TM_CHAIN_HEX_LEN, SQLITE_TRANSIENT);
}

int tm__store_chain_register(sqlite3 *db)
{
    int flags = SQLITE_UTF8 | SQLITE_DETERMINISTIC;
    if (sqlite3_create_function_v2(db, "tm_chain_start", 1, flags, NULL, sql_chain_start, NULL,
                                   NULL, NULL) != SQLITE_OK ||
        sqlite3_create_function_v2(db, "tm_chain_link", 6, flags, NULL, sql_chain_link, NULL, NULL,
                                   NULL) != SQLITE_OK)
        return TM_EIO;
    return 0;
}

static void add_problem(json_t *problems, sqlite3_stmt *st, const char *what)
{
    json_array_append_new(
        problems, json_pack("{s:I, s:s, s:s, s:s}", "seq", (json_int_t)sqlite3_column_int64(st, 0),
                            "event_id", (const char *)sqlite3_column_text(st, 1), "type",
                            (const char *)sqlite3_column_text(st, 2), "problem", what));
}

json_t *tm_store_visit_chain(tm_store *s, const char *visit_id)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(tm__store_db(s),
                           "SELECT seq, event_id, type, visit_id, occurred_at, payload, chain_hash"
                           "  FROM outbox WHERE visit_id = ?1 ORDER BY seq",
                           -1, &st, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_text(st, 1, visit_id, -1, SQLITE_STATIC);
    char prev[TM_CHAIN_HEX_LEN + 1], link[TM_CHAIN_HEX_LEN + 1];
    tm_chain_start(visit_id, prev);
    json_t *problems = json_array();
    int events = 0, chained = 0, before_start = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        events++;
        const char *stored = (const char *)sqlite3_column_text(st, 6);
        if (!stored) {
            /* Rows written before the chain existed (schema 5) start it late. */
            if (chained)
                add_problem(problems, st, "no chain hash after the chain began");
            else
                before_start++;
            continue;
        }
        tm_chain_event ev = {
            .event_id = (const char *)sqlite3_column_text(st, 1),
            .type = (const char *)sqlite3_column_text(st, 2),
            .visit_id = (const char *)sqlite3_column_text(st, 3),
            .occurred_at = sqlite3_column_int64(st, 4),
            .payload = (const char *)sqlite3_column_blob(st, 5),
            .payload_len = (size_t)sqlite3_column_bytes(st, 5),
        };
        chained++;
        if (tm_chain_link(prev, &ev, link) < 0 || strcmp(link, stored) != 0)
            add_problem(problems, st,
                        "hash does not match: this event was changed, or one before it was "
                        "changed or removed");
        /* Go on from the stored hash: each later event is judged on its own. */
        snprintf(prev, sizeof(prev), "%s", stored);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        json_decref(problems);
        return NULL;
    }
    return json_pack("{s:s, s:i, s:i, s:i, s:s?, s:b, s:o}", "visit_id", visit_id, "events", events,
                     "chained", chained, "unchained_before_start", before_start, "head",
                     chained ? prev : NULL, "ok", json_array_size(problems) == 0, "problems",
                     problems);
}

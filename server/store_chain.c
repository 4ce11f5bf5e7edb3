/*
 * store_chain.c - the store's side of the visit hash chain
 * (include/telemed/visit_chain.h): the link of a new outbox row, computed
 * by tm__store_outbox_append inside the transaction that writes it, and
 * the walk that verifies a visit. A row written around the store (an
 * operator's shell) has no link and is reported.
 *
 * Control loop thread only, on the store's connection (store_internal.h).
 */
#include "store_internal.h"
#include "telemed/common.h"
#include "telemed/visit_chain.h"

#include <glib.h>
#include <string.h>

static const char last_link_sql[] = "SELECT chain_hash FROM outbox WHERE visit_id = ?1"
                                    "   AND chain_hash IS NOT NULL ORDER BY seq DESC LIMIT 1";

/* Every outbox write of every node takes one lock until its transaction
 * ends, so that rows commit in seq order: the chain's read of a visit's
 * last link then sees the link before it, and the queues that take new rows
 * by a cursor over seq (messaging, routing) never pass a row that commits
 * later. SQLite's write lock gives both already. */
#define OUTBOX_LOCK "outbox"

/* The lock goes out first: the read behind it waits there for another
 * node's link to commit. */
void tm__store_chain_prefetch(tm_store *s, const char *visit_id)
{
    if (tm__store_lock_key(s, OUTBOX_LOCK) == 0)
        tm__store_prefetch(s, last_link_sql, "s", visit_id);
}

int tm__store_chain_next(tm_store *s, const tm_chain_event *ev, char out[TM_CHAIN_HEX_LEN + 1])
{
    char prev[TM_CHAIN_HEX_LEN + 1];
    int rc = tm__store_lock_key(s, OUTBOX_LOCK);
    if (rc < 0)
        return rc;
    tm__stmt *st = tm__store_query(s, last_link_sql, "s", ev->visit_id);
    rc = tm__store_step(s, st);
    if (rc == 1)
        tm__store_col_text(st, 0, prev, sizeof(prev));
    if (st)
        tm__stmt_reset(st);
    if (rc < 0)
        return rc;
    if (rc == 0)
        tm_chain_start(ev->visit_id, prev);
    if (tm_chain_link(prev, ev, out) < 0)
        return tm__store_refuse(s, TM_EIO, "the visit's last chain hash is not a hash");
    return 0;
}

static void add_problem(json_t *problems, tm__stmt *st, const char *what)
{
    json_array_append_new(problems,
                          json_pack("{s:I, s:s, s:s, s:s}", "seq", (json_int_t)tm__col_int64(st, 0),
                                    "event_id", tm__col_text(st, 1), "type", tm__col_text(st, 2),
                                    "problem", what));
}

json_t *tm_store_visit_chain(tm_store *s, const char *visit_id)
{
    tm__stmt *st =
        tm__store_query(s,
                        "SELECT seq, event_id, type, visit_id, occurred_at, payload, chain_hash"
                        "  FROM outbox WHERE visit_id = ?1 ORDER BY seq",
                        "s", visit_id);
    if (!st)
        return NULL;
    char prev[TM_CHAIN_HEX_LEN + 1], link[TM_CHAIN_HEX_LEN + 1];
    tm_chain_start(visit_id, prev);
    json_t *problems = json_array();
    int events = 0, chained = 0, before_start = 0, rc;
    while ((rc = tm__store_step(s, st)) == 1) {
        events++;
        const char *stored = tm__col_text(st, 6);
        if (!stored) {
            /* Rows written before the chain existed (schema 5) start it late. */
            if (chained)
                add_problem(problems, st, "no chain hash after the chain began");
            else
                before_start++;
            continue;
        }
        tm_chain_event ev = {
            .event_id = tm__col_text(st, 1),
            .type = tm__col_text(st, 2),
            .visit_id = tm__col_text(st, 3),
            .occurred_at = tm__col_int64(st, 4),
            .payload = (const char *)tm__col_blob(st, 5),
            .payload_len = (size_t)tm__col_bytes(st, 5),
        };
        chained++;
        if (tm_chain_link(prev, &ev, link) < 0 || strcmp(link, stored) != 0)
            add_problem(problems, st,
                        "hash does not match: this event was changed, or one before it was "
                        "changed or removed");
        /* Go on from the stored hash: each later event is judged on its own. */
        snprintf(prev, sizeof(prev), "%s", stored);
    }
    tm__stmt_reset(st);
    if (rc < 0) {
        json_decref(problems);
        return NULL;
    }
    return json_pack("{s:s, s:i, s:i, s:i, s:s?, s:b, s:o}", "visit_id", visit_id, "events", events,
                     "chained", chained, "unchained_before_start", before_start, "head",
                     chained ? prev : NULL, "ok", json_array_size(problems) == 0, "problems",
                     problems);
}

/*
 * store_route.c - the SQLite backend's routing of outbox rows by
 * institution (include/telemed/store.h, "routes by institution"): an
 * alliance member with a delivery profile of its own gets its visits'
 * events there, and the deployment's profiles no longer see them.
 *
 * A row's institution is its visit's department's (a visit moved to another
 * member's department goes with its new one from then on); rows whose
 * subject is not a visit stay with the deployment. Routing walks the outbox
 * from routed_cursor in one transaction: rows of a member routed to a
 * webhook are taken into routed_outbox (their own delivery state, handed
 * out by store_outbox.c's walk, in order per visit), and every routed row
 * leaves the deployment webhook's queue as delivered with last_error
 * "routed", so no event goes to two receivers and none is skipped by a
 * restart. A member routed to a batch profile (tianjin) is picked up by its
 * staging (store_upload.c), which reads feed_routes too.
 *
 * Control loop thread only, on the store's connection (store_internal.h).
 */
#include "store_internal.h"
#include "telemed/common.h"

#include <string.h>

static const tm__delivery routed_table = TM__DELIVERY("routed_outbox", "routed row");

/* The rows of visits whose department belongs to a routed member. */
#define ROUTED_VISIT                                                                               \
    " SELECT v.id FROM visits v JOIN departments d ON d.id = v.dept_id"                            \
    "   JOIN feed_routes r ON r.institution_id = d.institution_id"

int tm_route_set(tm_store *s, const char *const *institutions, const char *const *profiles,
                 size_t n)
{
    int rc = tm__store_begin(s);
    if (rc == 0)
        rc = tm__store_run(s, "DELETE FROM feed_routes", "");
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = tm__store_run(s, "INSERT INTO feed_routes(institution_id, profile) VALUES (?1, ?2)",
                           "ss", institutions[i], profiles[i]);
    return tm__store_finish(s, rc);
}

int tm_route_new(tm_store *s, int64_t now_ms)
{
    tm__stmt *st = tm__store_query(s,
                                   "SELECT (SELECT last_seq FROM routed_cursor WHERE id = 1),"
                                   " (SELECT max(seq) FROM outbox),"
                                   " (SELECT count(*) FROM feed_routes)",
                                   "");
    int rc = tm__store_step(s, st);
    int64_t cursor = rc == 1 ? tm__col_int64(st, 0) : 0;
    int64_t last = rc == 1 ? tm__col_int64(st, 1) : 0;
    int64_t routes = rc == 1 ? tm__col_int64(st, 2) : 0;
    if (st)
        tm__stmt_reset(st);
    if (rc < 0)
        return rc;
    if (last <= cursor)
        return 0;
    rc = tm__store_begin(s);
    if (rc == 0 && routes > 0)
        rc = tm__store_run(s,
                           "INSERT INTO routed_outbox(seq, institution_id, visit_id)"
                           " SELECT o.seq, r.institution_id, o.visit_id FROM outbox o"
                           "   JOIN visits v ON v.id = o.visit_id"
                           "   JOIN departments d ON d.id = v.dept_id"
                           "   JOIN feed_routes r ON r.institution_id = d.institution_id"
                           "  WHERE o.seq > ?1 AND o.seq <= ?2 AND o.state = 'pending'"
                           "    AND r.profile = 'webhook'"
                           " ON CONFLICT (seq) DO NOTHING",
                           "II", cursor, last);
    if (rc == 0 && routes > 0)
        rc = tm__store_run(s,
                           "UPDATE outbox SET state = 'delivered', delivered_at = ?3,"
                           " last_status = NULL, last_error = 'routed'"
                           " WHERE seq > ?1 AND seq <= ?2 AND state = 'pending'"
                           "   AND visit_id IN (" ROUTED_VISIT ")",
                           "III", cursor, last, now_ms);
    if (rc == 0)
        rc = tm__store_run(s, "UPDATE routed_cursor SET last_seq = ?1 WHERE id = 1", "I", last);
    return tm__store_finish(s, rc);
}

int tm_routeq_next_batch(tm_store *s, const char *institution, int64_t now_ms, int limit,
                         tm_outbox_event **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (limit <= 0)
        return tm__store_refuse(s, TM_EINVAL, "batch limit must be at least 1");
    int rc = tm_route_new(s, now_ms);
    if (rc < 0)
        return rc;
    tm__stmt *st =
        tm__store_query(s,
                        "SELECT m.seq, o.event_id, o.type, m.visit_id, o.occurred_at, m.attempts,"
                        "       m.next_attempt_at, o.payload, m.leased_by, m.lease_until"
                        "  FROM routed_outbox m JOIN outbox o ON o.seq = m.seq"
                        " WHERE m.institution_id = ?1 AND m.state = 'pending'"
                        " ORDER BY m.seq",
                        "s", institution);
    return tm__store_outbox_walk(s, &routed_table, st, now_ms, limit, out, n);
}

int tm_routeq_next_due(tm_store *s, int64_t *due_ms)
{
    return tm__delivery_next_due(s, &routed_table, due_ms);
}

int tm_routeq_mark_delivered(tm_store *s, const int64_t *seqs, size_t n, int status, int64_t now_ms)
{
    return tm__delivery_mark_delivered(s, &routed_table, seqs, n, status, now_ms);
}

int tm_routeq_retry(tm_store *s, const int64_t *seqs, const int64_t *next_at, size_t n, int status,
                    const char *error)
{
    return tm__delivery_retry(s, &routed_table, seqs, next_at, n, status, error);
}

int tm_routeq_retry_now(tm_store *s, int64_t now_ms)
{
    return tm__delivery_retry_now(s, &routed_table, now_ms);
}

int tm_routeq_dead_letter(tm_store *s, int64_t seq, int status, const char *error,
                          const char *response, size_t response_len)
{
    return tm__delivery_dead_letter(s, &routed_table, seq, status, error, response, response_len);
}

int tm_routeq_replay(tm_store *s, const char *institution, int64_t seq)
{
    tm__stmt *st =
        tm__store_query(s, "SELECT 1 FROM routed_outbox WHERE seq = ?1 AND institution_id = ?2",
                        "Is", seq, institution);
    int rc = tm__store_step(s, st);
    if (st)
        tm__stmt_reset(st);
    if (rc == 0)
        return tm__store_refuse(s, TM_ENOTFOUND, "no such routed row");
    if (rc < 0)
        return rc;
    return tm__delivery_replay(s, &routed_table, seq);
}

json_t *tm_routeq_dead_list(tm_store *s, const char *institution, int limit)
{
    return tm__store_dead_rows_json(
        s, tm__store_query(s,
                           "SELECT m.seq, o.event_id, o.type, m.visit_id, o.occurred_at,"
                           " m.attempts, m.last_status, m.last_error, m.last_response"
                           " FROM routed_outbox m JOIN outbox o ON o.seq = m.seq"
                           " WHERE m.institution_id = ?1 AND m.state = 'dead'"
                           " ORDER BY m.seq DESC LIMIT ?2",
                           "si", institution, limit > 0 ? limit : 100));
}

int tm_routeq_stats_get(tm_store *s, const char *institution, tm_outbox_stats *out)
{
    memset(out, 0, sizeof(*out));
    tm__stmt *st =
        tm__store_query(s,
                        "SELECT coalesce(sum(CASE WHEN state = 'pending' THEN 1 ELSE 0 END), 0),"
                        " coalesce(sum(CASE WHEN state = 'delivered' THEN 1 ELSE 0 END), 0),"
                        " coalesce(sum(CASE WHEN state = 'dead' THEN 1 ELSE 0 END), 0),"
                        " coalesce(sum(attempts), 0) FROM routed_outbox WHERE institution_id = ?1",
                        "s", institution);
    int rc = tm__store_step(s, st);
    if (rc == 1) {
        out->pending = tm__col_int64(st, 0);
        out->delivered = tm__col_int64(st, 1);
        out->dead = tm__col_int64(st, 2);
        out->failed_attempts = tm__col_int64(st, 3);
    }
    if (st)
        tm__stmt_reset(st);
    if (rc < 0)
        return rc;
    int64_t pending;
    return tm_routeq_queue(s, institution, &pending, &out->oldest_pending_at);
}

int tm_routeq_queue(tm_store *s, const char *institution, int64_t *pending,
                    int64_t *oldest_pending_at)
{
    tm__stmt *st = tm__store_query(s,
                                   "SELECT count(*), coalesce(min(o.occurred_at), 0)"
                                   " FROM routed_outbox m JOIN outbox o ON o.seq = m.seq"
                                   " WHERE m.institution_id = ?1 AND m.state = 'pending'",
                                   "s", institution);
    int rc = tm__store_step(s, st);
    if (rc == 1) {
        *pending = tm__col_int64(st, 0);
        *oldest_pending_at = tm__col_int64(st, 1);
    }
    if (st)
        tm__stmt_reset(st);
    return rc < 0 ? rc : 0;
}

/*
 * store_messaging.c - the SQLite backend's messaging queue
 * (include/telemed/store.h, "the messaging queue"): the hospital's
 * messaging system is a second consumer of the outbox rows, with its own
 * delivery state in messaging_outbox beside them.
 *
 * A cursor (messaging_cursor) says up to which outbox row the queue has
 * looked; each batch first takes the rows written since, of the types the
 * messaging system hears of, into the queue and moves the cursor in the
 * same transaction, so a restart neither skips nor repeats a row. Handing
 * out in order per subject is store_outbox.c's walk, shared.
 *
 * Control loop thread only, on the store's connection (store_internal.h).
 */
#include "store_internal.h"
#include "telemed/common.h"

#include <string.h>

static const tm__delivery messaging_table = TM__DELIVERY("messaging_outbox", "messaging row");

/* Takes the outbox rows written since the cursor into the queue. Costs one
 * read when nothing is new, so an idle pass writes (and fsyncs) nothing. */
static int enqueue_new(tm_store *s)
{
    tm__stmt *st = tm__store_query(s,
                                   "SELECT (SELECT last_seq FROM messaging_cursor"
                                   " WHERE id = 1), (SELECT max(seq) FROM outbox)",
                                   "");
    int rc = tm__store_step(s, st);
    int64_t cursor = rc == 1 ? tm__col_int64(st, 0) : 0;
    int64_t last = rc == 1 ? tm__col_int64(st, 1) : 0;
    if (st)
        tm__stmt_reset(st);
    if (rc < 0)
        return rc;
    if (last <= cursor)
        return 0;
    rc = tm__store_begin(s);
    if (rc == 0)
        rc = tm__store_run(s,
                           "INSERT INTO messaging_outbox(seq, visit_id)"
                           " SELECT seq, visit_id FROM outbox WHERE seq > ?1 AND seq <= ?2"
                           " AND (type LIKE 'appointment.%' OR type LIKE 'consultation.%'"
                           " OR type LIKE 'referral.%') ON CONFLICT DO NOTHING",
                           "II", cursor, last);
    if (rc == 0)
        rc = tm__store_run(s, "UPDATE messaging_cursor SET last_seq = ?1 WHERE id = 1", "I", last);
    return tm__store_finish(s, rc);
}

int tm_msgq_next_batch(tm_store *s, int64_t now_ms, int limit, tm_outbox_event **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (limit <= 0)
        return tm__store_refuse(s, TM_EINVAL, "batch limit must be at least 1");
    int rc = enqueue_new(s);
    if (rc < 0)
        return rc;
    tm__stmt *st =
        tm__store_query(s,
                        "SELECT m.seq, o.event_id, o.type, m.visit_id, o.occurred_at, m.attempts,"
                        "       m.next_attempt_at, o.payload, m.leased_by, m.lease_until"
                        "  FROM messaging_outbox m JOIN outbox o ON o.seq = m.seq"
                        " WHERE m.seq >= (SELECT min(seq) FROM messaging_outbox"
                        "                  WHERE state = 'pending')"
                        "   AND m.state || '' = 'pending'"
                        " ORDER BY m.seq",
                        "");
    return tm__store_outbox_walk(s, &messaging_table, st, now_ms, limit, out, n);
}

int tm_msgq_next_due(tm_store *s, int64_t *due_ms)
{
    return tm__delivery_next_due(s, &messaging_table, due_ms);
}

int tm_msgq_mark_delivered(tm_store *s, const int64_t *seqs, size_t n, int status, int64_t now_ms)
{
    return tm__delivery_mark_delivered(s, &messaging_table, seqs, n, status, now_ms);
}

int tm_msgq_retry(tm_store *s, const int64_t *seqs, const int64_t *next_at, size_t n, int status,
                  const char *error)
{
    return tm__delivery_retry(s, &messaging_table, seqs, next_at, n, status, error);
}

int tm_msgq_retry_now(tm_store *s, int64_t now_ms)
{
    return tm__delivery_retry_now(s, &messaging_table, now_ms);
}

int tm_msgq_dead_letter(tm_store *s, int64_t seq, int status, const char *error,
                        const char *response, size_t response_len)
{
    return tm__delivery_dead_letter(s, &messaging_table, seq, status, error, response,
                                    response_len);
}

int tm_msgq_replay(tm_store *s, int64_t seq)
{
    return tm__delivery_replay(s, &messaging_table, seq);
}

json_t *tm_msgq_dead_list(tm_store *s, int limit)
{
    return tm__store_dead_rows_json(
        s, tm__store_query(s,
                           "SELECT m.seq, o.event_id, o.type, m.visit_id, o.occurred_at,"
                           " m.attempts, m.last_status, m.last_error, m.last_response"
                           " FROM messaging_outbox m JOIN outbox o ON o.seq = m.seq"
                           " WHERE m.state = 'dead' ORDER BY m.seq DESC LIMIT ?1",
                           "i", limit > 0 ? limit : 100));
}

int tm_msgq_stats_get(tm_store *s, tm_outbox_stats *out)
{
    memset(out, 0, sizeof(*out));
    tm__stmt *st = tm__store_query(
        s,
        "SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = "
        "'delivered'),"
        " count(*) FILTER (WHERE state = 'dead'), coalesce(sum(attempts), 0) FROM messaging_outbox",
        "");
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
    return tm_msgq_queue(s, &pending, &out->oldest_pending_at);
}

int tm_msgq_queue(tm_store *s, int64_t *pending, int64_t *oldest_pending_at)
{
    tm__stmt *st = tm__store_query(s,
                                   "SELECT count(*), coalesce(min(o.occurred_at), 0)"
                                   " FROM messaging_outbox m JOIN outbox o ON o.seq = m.seq"
                                   " WHERE m.state = 'pending'",
                                   "");
    int rc = tm__store_step(s, st);
    if (rc == 1) {
        *pending = tm__col_int64(st, 0);
        *oldest_pending_at = tm__col_int64(st, 1);
    }
    if (st)
        tm__stmt_reset(st);
    return rc < 0 ? rc : 0;
}

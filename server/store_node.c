/*
 * store_node.c - the cluster side of include/telemed/store.h (issue 19):
 * the node registry with heartbeats and load, which node hosts a visit's
 * media, and the takeover of what a dead node held.
 *
 * Written in SQL both engines run (no rowid, no engine functions). Every
 * change another node may race is a conditional update whose changed-row
 * count decides the winner, so it needs no lock beyond the row's own.
 * Heartbeats are written and judged by the database's clock
 * (tm__store_clock_ms), so a node whose own clock is off is neither taken
 * for dead while it serves nor kept alive after it stopped.
 *
 * Control loop thread only, on the store's connection (store_internal.h).
 */
#include "store_internal.h"
#include "telemed/common.h"

#include <string.h>

#define NODE_COLUMNS "id, public_url, started_at, heartbeat_at, visits, waiting, peers, draining"
#define NODE_READ_COLUMNS NODE_COLUMNS ", loop_lag_ms"

int tm_store_node_heartbeat(tm_store *s, const tm_node_info *n)
{
    if (!n->id[0] || !n->public_url[0])
        return tm__store_refuse(s, TM_EINVAL, "a node needs an id and a public_url");
    int64_t heartbeat_ms = n->heartbeat_ms;
    int rc = tm__store_clock_ms(s, &heartbeat_ms);
    if (rc < 0)
        return rc;
    return tm__store_run(s,
                         "INSERT INTO nodes(" NODE_COLUMNS ")"
                         " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(id) DO UPDATE SET"
                         " public_url = excluded.public_url, started_at = excluded.started_at,"
                         " heartbeat_at = excluded.heartbeat_at, visits = excluded.visits,"
                         " waiting = excluded.waiting, peers = excluded.peers,"
                         " draining = excluded.draining",
                         "ssIIiiii", n->id, n->public_url, n->started_at_ms, heartbeat_ms,
                         n->visits, n->waiting, n->peers, (int)n->draining);
}

int tm_store_node_beat(tm_store *s, const char *id, int64_t loop_lag_ms)
{
    int64_t now_ms = tm_now_ms();
    int rc = tm__store_clock_ms(s, &now_ms);
    if (rc < 0)
        return rc;
    return tm__store_run_one(s,
                             "UPDATE nodes SET heartbeat_at = ?2, loop_lag_ms = ?3 WHERE id = ?1",
                             "sII", id, now_ms, loop_lag_ms);
}

int tm_store_node_remove(tm_store *s, const char *id)
{
    int rc = tm_store_node_duty_clear(s, id);
    return rc < 0 ? rc : tm__store_run_one(s, "DELETE FROM nodes WHERE id = ?1", "s", id);
}

int tm_store_node_duty_clear(tm_store *s, const char *node_id)
{
    return tm__store_run(s, "DELETE FROM node_duty WHERE node_id = ?1", "s", node_id);
}

int tm_store_node_duty_set(tm_store *s, const char *node_id, const char *dept_id, int doctors)
{
    if (doctors <= 0)
        return tm__store_run(s, "DELETE FROM node_duty WHERE node_id = ?1 AND dept_id = ?2", "ss",
                             node_id, dept_id);
    return tm__store_run(s,
                         "INSERT INTO node_duty(node_id, dept_id, doctors) VALUES(?1, ?2, ?3)"
                         " ON CONFLICT(node_id, dept_id) DO UPDATE SET doctors = excluded.doctors",
                         "ssi", node_id, dept_id, doctors);
}

int tm_store_node_duty_elsewhere(tm_store *s, const char *node_id, const char *dept_id,
                                 int64_t now_ms, int64_t dead_after_ms, int *doctors)
{
    *doctors = 0;
    int rc = tm__store_clock_ms(s, &now_ms);
    if (rc < 0)
        return rc;
    tm__stmt *st = tm__store_query(s,
                                   "SELECT coalesce(sum(d.doctors), 0) FROM node_duty d"
                                   " JOIN nodes n ON n.id = d.node_id"
                                   " WHERE d.dept_id = ?1 AND d.node_id <> ?2"
                                   " AND n.heartbeat_at > ?3",
                                   "ssI", dept_id, node_id, now_ms - dead_after_ms);
    rc = tm__store_step(s, st);
    if (rc == 1)
        *doctors = tm__col_int(st, 0);
    if (st)
        tm__stmt_reset(st);
    return rc < 0 ? rc : 0;
}

static void read_node(tm__stmt *st, tm_node_info *n)
{
    memset(n, 0, sizeof(*n));
    tm__store_col_text(st, 0, n->id, sizeof(n->id));
    tm__store_col_text(st, 1, n->public_url, sizeof(n->public_url));
    n->started_at_ms = tm__col_int64(st, 2);
    n->heartbeat_ms = tm__col_int64(st, 3);
    n->visits = tm__col_int(st, 4);
    n->waiting = tm__col_int(st, 5);
    n->peers = tm__col_int(st, 6);
    n->draining = tm__col_int(st, 7) != 0;
    n->loop_lag_ms = tm__col_int64(st, 8);
}

int tm_store_nodes_live(tm_store *s, int64_t now_ms, int64_t dead_after_ms, tm_node_info **out,
                        size_t *n)
{
    *out = NULL;
    *n = 0;
    int rc = tm__store_clock_ms(s, &now_ms);
    if (rc < 0)
        return rc;
    tm__stmt *st = tm__store_query(s,
                                   "SELECT " NODE_READ_COLUMNS " FROM nodes WHERE heartbeat_at > ?1"
                                   " ORDER BY draining, visits, peers, id",
                                   "I", now_ms - dead_after_ms);
    GArray *nodes = g_array_new(FALSE, TRUE, sizeof(tm_node_info));
    while ((rc = tm__store_step(s, st)) == 1) {
        tm_node_info node;
        read_node(st, &node);
        g_array_append_val(nodes, node);
    }
    if (st)
        tm__stmt_reset(st);
    if (rc < 0 || nodes->len == 0) {
        g_array_free(nodes, TRUE);
        return rc;
    }
    *n = nodes->len;
    *out = (tm_node_info *)(void *)g_array_free(nodes, FALSE);
    return 0;
}

json_t *tm_store_node_list(tm_store *s, int64_t now_ms, int64_t dead_after_ms)
{
    if (tm__store_clock_ms(s, &now_ms) < 0)
        return NULL;
    tm__stmt *st =
        tm__store_query(s, "SELECT " NODE_READ_COLUMNS " FROM nodes ORDER BY id", "", NULL);
    json_t *list = json_array();
    int rc;
    while ((rc = tm__store_step(s, st)) == 1) {
        tm_node_info n;
        read_node(st, &n);
        json_array_append_new(
            list, json_pack("{ss ss sI sI si si si sb sb sI}", "id", n.id, "public_url",
                            n.public_url, "started_at", (json_int_t)n.started_at_ms, "heartbeat_at",
                            (json_int_t)n.heartbeat_ms, "visits", n.visits, "waiting", n.waiting,
                            "peers", n.peers, "draining", n.draining, "alive",
                            n.heartbeat_ms > now_ms - dead_after_ms, "loop_lag_ms",
                            (json_int_t)n.loop_lag_ms));
    }
    if (st)
        tm__stmt_reset(st);
    if (rc < 0) {
        json_decref(list);
        return NULL;
    }
    return list;
}

/* The visits whose media node is not live at now_ms, as (id, media_node)
 * pairs in one flat array, collected before the conditional updates that
 * release them. */
static GPtrArray *orphaned_visits(tm_store *s, int64_t live_since)
{
    tm__stmt *st = tm__store_query(
        s,
        "SELECT id, media_node FROM visits WHERE media_node IS NOT NULL"
        " AND state IN ('waiting', 'offered', 'active')"
        " AND media_node NOT IN (SELECT id FROM nodes WHERE heartbeat_at > ?1) ORDER BY id",
        "I", live_since);
    return st ? tm__store_collect_rows(s, st, 2) : NULL;
}

int tm_store_node_takeover(tm_store *s, int64_t now_ms, int64_t dead_after_ms, json_t **visits,
                           int *leases)
{
    *visits = NULL;
    /* Liveness and leases are both on the database's clock (store_outbox.c). */
    int64_t db_now_ms = now_ms;
    int rc = tm__store_clock_ms(s, &db_now_ms);
    if (rc < 0)
        return rc;
    int64_t live_since = db_now_ms - dead_after_ms;
    rc = tm__store_begin(s);
    if (rc < 0)
        return rc;
    json_t *released = json_array();
    GPtrArray *rows = orphaned_visits(s, live_since);
    if (!rows) {
        rc = TM_EIO;
        goto done;
    }
    for (guint i = 0; i + 1 < rows->len && rc == 0; i += 2) {
        const char *id = rows->pdata[i], *node = rows->pdata[i + 1];
        /* Only the node whose update changes the row releases the visit. */
        rc = tm__store_run(s,
                           "UPDATE visits SET media_node = NULL WHERE id = ?1 AND media_node = ?2",
                           "ss", id, node);
        if (rc == 0 && tm__store_changes(s) == 1)
            json_array_append_new(released, json_string(id));
    }
    g_ptr_array_free(rows, TRUE);
    if (rc == 0)
        rc =
            tm__store_run(s,
                          "UPDATE outbox SET leased_by = NULL, lease_until = NULL"
                          " WHERE state = 'pending' AND leased_by IS NOT NULL AND lease_until <= ?1"
                          " AND leased_by NOT IN (SELECT id FROM nodes WHERE heartbeat_at > ?2)",
                          "II", db_now_ms, live_since);
    if (rc == 0 && leases)
        *leases = tm__store_changes(s);
done:
    rc = tm__store_finish(s, rc);
    if (rc < 0) {
        json_decref(released);
        return rc;
    }
    *visits = released;
    return 0;
}

int tm_store_visit_place_media(tm_store *s, const char *visit_id, const char *expected_node,
                               const char *node_id)
{
    if (!node_id || !node_id[0])
        return tm__store_refuse(s, TM_EINVAL, "a media node needs an id");
    int rc = tm__store_run(s,
                           "UPDATE visits SET media_node = ?2,"
                           " patient_away_at = CASE WHEN media_node = ?2 THEN patient_away_at END"
                           " WHERE id = ?1"
                           " AND state IN ('waiting', 'offered', 'active')"
                           " AND coalesce(media_node, '') = coalesce(?3, '')",
                           "sss", visit_id, node_id, expected_node);
    if (rc < 0 || tm__store_changes(s) == 1)
        return rc;
    char current[64];
    rc = tm_store_visit_media_node(s, visit_id, current);
    return rc < 0 ? rc : tm__store_refuse(s, TM_ECONFLICT, "the visit is placed or over");
}

int tm_store_visit_media_node(tm_store *s, const char *visit_id, char out[64])
{
    out[0] = '\0';
    tm__stmt *st = tm__store_query(s, "SELECT media_node FROM visits WHERE id = ?1", "s", visit_id);
    int rc = tm__store_step(s, st);
    if (rc == 0)
        rc = tm__store_refuse(s, TM_ENOTFOUND, "no such visit");
    if (rc == 1) {
        tm__store_col_text(st, 0, out, 64);
        rc = 0;
    }
    if (st)
        tm__stmt_reset(st);
    return rc;
}

json_t *tm_store_dept_live_elsewhere(tm_store *s, const char *dept_id, const char *node_id)
{
    tm__stmt *st = tm__store_query(
        s,
        "SELECT id, patient_id, doctor_id, kind, urgent, checkin_at, accepted_at, media_node"
        " FROM visits WHERE dept_id = ?1 AND state = 'active'"
        " AND (media_node IS NULL OR media_node <> ?2) ORDER BY accepted_at, id",
        "ss", dept_id, node_id);
    return tm__store_rows_json(s, st);
}

json_t *tm_store_dept_queue(tm_store *s, const char *dept_id)
{
    tm__stmt *st = tm__store_query(s,
                                   "SELECT id, state, doctor_id, offered_at AS offered_ms,"
                                   " CASE WHEN patient_away_at IS NOT NULL AND media_node IS NOT"
                                   " NULL THEN 1 ELSE 0 END AS patient_away"
                                   " FROM visits WHERE dept_id = ?1"
                                   " AND state IN ('waiting', 'offered')"
                                   " ORDER BY checkin_at, id",
                                   "s", dept_id);
    return tm__store_rows_json(s, st);
}

int tm_store_visit_patient_away(tm_store *s, const char *visit_id, int64_t away_ms)
{
    if (away_ms)
        return tm__store_run_one(s, "UPDATE visits SET patient_away_at = ?2 WHERE id = ?1", "sI",
                                 visit_id, away_ms);
    return tm__store_run_one(s, "UPDATE visits SET patient_away_at = NULL WHERE id = ?1", "s",
                             visit_id);
}

json_t *tm_store_active_visits_of(tm_store *s, bool doctor, const char *user_id)
{
    /* Two statements, not a column chosen by a parameter: each keeps its
     * index. A doctor's visits are few active ones (visits_by_state), each
     * checked for an invited doctor still in it (participants_by_visit). */
    tm__stmt *st =
        tm__store_query(s,
                        doctor ? "SELECT id, coalesce(media_node, '') AS media_node FROM visits v"
                                 " WHERE state = 'active' AND (doctor_id = ?1 OR EXISTS("
                                 "  SELECT 1 FROM participants p WHERE p.visit_id = v.id"
                                 "   AND p.user_id = ?1"
                                 "   AND p.visit_role IN ('consulting','interpreter','nurse')"
                                 "   AND p.id = (SELECT max(id) FROM participants r"
                                 "    WHERE r.visit_id = v.id AND r.user_id = ?1)"
                                 "   AND (p.left_at IS NULL OR p.leave_reason = 'disconnected')))"
                                 " ORDER BY id"
                               : "SELECT id, coalesce(media_node, '') AS media_node FROM visits"
                                 " WHERE patient_id = ?1 AND state = 'active' ORDER BY id",
                        "s", user_id);
    return tm__store_rows_json(s, st);
}

int tm_store_visit_held_for(tm_store *s, const char *role, const char *sub, char visit_id[64],
                            char node_id[64])
{
    visit_id[0] = node_id[0] = '\0';
    bool patient = strcmp(role, "patient") == 0;
    if (!patient && strcmp(role, "doctor") != 0)
        return tm__store_refuse(s, TM_EINVAL, "role must be patient or doctor");
    tm__stmt *st =
        tm__store_query(s,
                        patient ? "SELECT id, media_node FROM visits WHERE patient_id = ?1"
                                  " AND state IN ('offered', 'active') AND media_node IS NOT NULL"
                                  " ORDER BY checkin_at DESC, id LIMIT 1"
                                : "SELECT id, media_node FROM visits WHERE doctor_id = ?1"
                                  " AND state = 'active' AND media_node IS NOT NULL"
                                  " ORDER BY checkin_at DESC, id LIMIT 1",
                        "s", sub);
    int rc = tm__store_step(s, st);
    if (rc == 0)
        rc = TM_ENOTFOUND;
    if (rc == 1) {
        tm__store_col_text(st, 0, visit_id, 64);
        tm__store_col_text(st, 1, node_id, 64);
        rc = 0;
    }
    if (st)
        tm__stmt_reset(st);
    return rc;
}

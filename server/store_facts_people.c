/*
 * store_facts_people.c - who took part in a visit, as the regulator feed's
 * facts carry it (store.h, tm_visit_facts.participants): one entry per
 * person and visit role, by first join, with doctors named by id and
 * licence and everyone else by role alone.
 *
 * Control loop thread only, inside the caller's transaction when there is
 * one (the event is built from the rows as that transaction sees them).
 */
#include "store_internal.h"
#include "telemed/common.h"

#include <stdbool.h>
#include <string.h>

/* A rejoin is one person: first join, and the last leave only once every
 * row of theirs has left (count(left_at) skips the open one). */
static const char participants_sql[] =
    "SELECT p.visit_role, p.user_id, max(d.licence_no), min(p.joined_at),"
    "       CASE WHEN count(*) = count(p.left_at) THEN max(p.left_at) END"
    "  FROM participants p LEFT JOIN doctors d ON d.id = p.user_id"
    " WHERE p.visit_id = ?1 AND p.visit_role IS NOT NULL"
    " GROUP BY p.user_id, p.visit_role ORDER BY min(p.id)";

void tm__store_facts_participants_prefetch(tm_store *s, const char *visit_id)
{
    tm__store_prefetch(s, participants_sql, "s", visit_id);
}

int tm__store_facts_participants(tm_store *s, const char *visit_id, tm_visit_facts *out)
{
    tm__stmt *st = tm__store_query(s, participants_sql, "s", visit_id);
    int rc;
    while ((rc = tm__store_step(s, st)) == 1 &&
           out->n_participants < TM_ARRAY_LEN(out->participants)) {
        size_t i = out->n_participants++;
        char *role = out->participants[i].role;
        tm__store_col_text(st, 0, role, sizeof(out->participants[i].role));
        if (strcmp(role, "attending") == 0 || strcmp(role, "consulting") == 0) {
            tm__store_col_text(st, 1, out->participants[i].doctor_id,
                               sizeof(out->participants[i].doctor_id));
            tm__store_col_text(st, 2, out->participants[i].licence_no,
                               sizeof(out->participants[i].licence_no));
        }
        out->participants[i].joined_ms = tm__col_int64(st, 3);
        out->participants[i].left_ms = tm__col_int64(st, 4);
    }
    if (st)
        tm__stmt_reset(st);
    return rc < 0 ? rc : 0;
}

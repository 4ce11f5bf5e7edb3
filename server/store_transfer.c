/*
 * store_transfer.c - the SQLite backend's transfers (include/telemed/store.h,
 * "transfer during a visit"): the attending doctor hands a live visit to
 * another department or doctor; the part that ends, the participant row
 * that closes and the visit.transferred event are one transaction, and the
 * next doctor's accept fills in the transfer row.
 *
 * A visit stays one row through its transfers: the parts of the record
 * (tm_store_visit_parts) are read back from visit_transfers and the visit
 * row, so nothing else in the store needs to know about them.
 *
 * Control loop thread only, on the store's connection (store_internal.h).
 */
#include "store_internal.h"
#include "telemed/common.h"

#include <glib.h>
#include <string.h>

/* The part now running: its number and since when (the first accept, or
 * the accept after the last transfer). */
static int current_part(tm_store *s, const char *visit_id, int *part, int64_t *since_ms)
{
    tm__stmt *st = tm__store_query(s,
                                   "SELECT part, accepted_at FROM visit_transfers"
                                   " WHERE visit_id = ?1 ORDER BY part DESC LIMIT 1",
                                   "s", visit_id);
    int rc = tm__store_step(s, st);
    if (rc == 1) {
        *part = tm__col_int(st, 0) + 1;
        *since_ms = tm__col_int64(st, 1);
    }
    tm__stmt_reset(st);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    st = tm__store_query(s, "SELECT accepted_at FROM visits WHERE id = ?1", "s", visit_id);
    rc = tm__store_step(s, st);
    *part = 1;
    *since_ms = rc == 1 ? tm__col_int64(st, 0) : 0;
    tm__stmt_reset(st);
    return rc < 0 ? rc : 0;
}

/* The transfer row as the event's "transfer" member. New reference. */
static json_t *transfer_json(tm_store *s, const char *transfer_id)
{
    json_t *rows = tm__store_rows_json(
        s, tm__store_query(s,
                           "SELECT id, part, from_doctor_id, from_dept_id AS from_department_id,"
                           " to_dept_id AS to_department_id, to_doctor_id, reason,"
                           " part_started_at, transferred_at, accepted_by, accepted_at"
                           " FROM visit_transfers WHERE id = ?1",
                           "s", transfer_id));
    json_t *row = json_incref(json_array_get(rows, 0));
    json_decref(rows);
    return row;
}

static int check_target(tm_store *s, const tm_visit *v, const char *from_doctor_id,
                        const char *to_dept_id, const char *to_doctor_id, const char *reason)
{
    if (!reason || !reason[0] || strlen(reason) > TM_TRANSFER_REASON_MAX || !to_dept_id ||
        !to_dept_id[0])
        return tm__store_refuse(s, TM_EINVAL, "a transfer needs a department and a reason");
    if (strcmp(v->state, "active") != 0)
        return tm__store_refuse(s, TM_ECONFLICT, "only a live visit is transferred");
    if (strcmp(v->doctor_id, from_doctor_id) != 0)
        return tm__store_refuse(s, TM_EPERM, "only the attending doctor transfers a visit");
    if (!tm_store_dept_exists(s, to_dept_id))
        return tm__store_refuse(s, TM_ENOTFOUND, "no such department");
    if (to_doctor_id && to_doctor_id[0]) {
        tm_doctor_info d;
        if (tm_store_doctor_get(s, to_doctor_id, &d) < 0 || !d.active ||
            strcmp(d.kind, "doctor") != 0)
            return tm__store_refuse(s, TM_ENOTFOUND, "no such doctor");
        if (strcmp(to_doctor_id, from_doctor_id) == 0)
            return tm__store_refuse(s, TM_EINVAL, "a doctor does not transfer to themselves");
    }
    return 0;
}

int tm_store_visit_transfer(tm_store *s, const char *visit_id, const char *from_doctor_id,
                            const char *to_dept_id, const char *to_doctor_id, const char *reason,
                            int64_t now_ms, char *id_out)
{
    tm_visit v;
    int rc = tm_store_visit_get(s, visit_id, &v);
    if (rc < 0)
        return rc;
    if ((rc = check_target(s, &v, from_doctor_id, to_dept_id, to_doctor_id, reason)) < 0)
        return rc;
    char id[64];
    tm__store_make_id("tr", id, sizeof(id));
    if ((rc = tm__store_begin(s)) < 0)
        return rc;
    int part = 1;
    int64_t since = 0;
    rc = current_part(s, visit_id, &part, &since);
    if (rc == 0)
        rc =
            tm__store_run_one(s,
                              "UPDATE visits SET state = 'waiting', dept_id = ?2, doctor_id = NULL,"
                              " offered_at = NULL, updated_at = ?3 WHERE id = ?1 AND state ="
                              " 'active'",
                              "ssI", visit_id, to_dept_id, now_ms);
    if (rc == 0)
        rc = tm__store_run(s,
                           "INSERT INTO visit_transfers(id, visit_id, part, from_doctor_id,"
                           " from_dept_id, part_started_at, to_dept_id, to_doctor_id, reason,"
                           " transferred_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                           "ssissIssbI", id, visit_id, part, from_doctor_id, v.dept_id, since,
                           to_dept_id, to_doctor_id, reason, now_ms);
    if (rc == 0)
        rc = tm__store_run(s,
                           "UPDATE participants SET left_at = ?3, leave_reason = 'transferred'"
                           " WHERE visit_id = ?1 AND user_id = ?2 AND left_at IS NULL",
                           "ssI", visit_id, from_doctor_id, now_ms);
    json_t *t = rc == 0 ? transfer_json(s, id) : NULL;
    if (rc == 0 && !t)
        rc = TM_EIO;
    if (rc == 0)
        rc = tm__store_outbox_append_with(s, "visit.transferred", visit_id, now_ms, "transfer", t);
    json_decref(t);
    rc = tm__store_finish(s, rc);
    if (rc == 0 && id_out)
        g_strlcpy(id_out, id, 64);
    return rc;
}

static const char open_transfer_sql[] =
    "SELECT id FROM visit_transfers WHERE visit_id = ?1 AND accepted_at IS NULL";

void tm__store_transfer_prefetch(tm_store *s, const char *visit_id)
{
    tm__store_prefetch(s, open_transfer_sql, "s", visit_id);
}

int tm__store_transfer_accepted(tm_store *s, const char *visit_id, const char *doctor_id,
                                int64_t now_ms, json_t **transfer)
{
    *transfer = NULL;
    tm__stmt *st = tm__store_query(s, open_transfer_sql, "s", visit_id);
    char id[64] = "";
    int rc = tm__store_step(s, st);
    if (rc == 1)
        tm__store_col_text(st, 0, id, sizeof(id));
    tm__stmt_reset(st);
    if (rc <= 0)
        return rc;
    rc = tm__store_run(
        s, "UPDATE visit_transfers SET accepted_by = ?2, accepted_at = ?3 WHERE id = ?1", "ssI", id,
        doctor_id, now_ms);
    if (rc < 0)
        return rc;
    *transfer = transfer_json(s, id);
    return *transfer ? 1 : TM_EIO;
}

json_t *tm_store_visit_transfers(tm_store *s, const char *visit_id)
{
    return tm__store_rows_json(
        s, tm__store_query(s,
                           "SELECT id, part, from_doctor_id, from_dept_id, part_started_at,"
                           " to_dept_id, to_doctor_id, reason, transferred_at, accepted_by,"
                           " accepted_at FROM visit_transfers WHERE visit_id = ?1 ORDER BY part",
                           "s", visit_id));
}

static json_t *get(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return v ? json_incref(v) : json_null();
}

/* One part as the record shows it: who, where, from when to when, and how
 * it ended (a transfer with its reason and target, or the visit's end). */
static json_t *part_json(int n, json_t *doctor, json_t *dept, json_t *from, json_t *to,
                         json_t *ended_by)
{
    return json_pack("{s:i, s:o, s:o, s:o, s:o, s:o}", "part", n, "doctor_id", doctor, "dept_id",
                     dept, "started_at", from, "ended_at", to, "ended_by", ended_by);
}

json_t *tm_store_visit_parts(tm_store *s, const char *visit_id)
{
    json_t *transfers = tm_store_visit_transfers(s, visit_id);
    json_t *visits = tm__store_rows_json(
        s, tm__store_query(s,
                           "SELECT doctor_id, dept_id, accepted_at, ended_at, end_reason, state"
                           " FROM visits WHERE id = ?1",
                           "s", visit_id));
    json_t *v = json_array_get(visits, 0);
    if (!transfers || !v) {
        json_decref(transfers);
        json_decref(visits);
        return NULL;
    }
    json_t *parts = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(transfers, i, t)
    {
        json_t *p =
            part_json((int)i + 1, get(t, "from_doctor_id"), get(t, "from_dept_id"),
                      get(t, "part_started_at"), get(t, "transferred_at"), json_string("transfer"));
        json_object_set_new(p, "transfer",
                            json_pack("{s:o, s:o, s:o, s:o}", "id", get(t, "id"), "reason",
                                      get(t, "reason"), "to_dept_id", get(t, "to_dept_id"),
                                      "to_doctor_id", get(t, "to_doctor_id")));
        json_array_append_new(parts, p);
    }
    /* The part running now or last: after a transfer it starts at the next
     * doctor's accept; with none it is the visit's own accept to end. */
    json_t *last = json_array_get(transfers, json_array_size(transfers) - 1);
    json_t *since = last ? json_object_get(last, "accepted_at") : json_object_get(v, "accepted_at");
    if (since && !json_is_null(since))
        json_array_append_new(parts,
                              part_json((int)json_array_size(parts) + 1,
                                        get(last ? last : v, last ? "accepted_by" : "doctor_id"),
                                        get(v, "dept_id"), json_incref(since), get(v, "ended_at"),
                                        get(v, "end_reason")));
    json_decref(transfers);
    json_decref(visits);
    return parts;
}

/*
 * store_institution.c - the SQLite backend's institutions side of
 * include/telemed/store.h (issue 18): the alliance's members, which
 * department belongs to which, and the visit list of one institution for a
 * supervisor scoped to it.
 *
 * A department whose institution_id is NULL belongs to the core
 * institution, whose id is the store's hospital_id: every query maps NULL
 * to it with coalesce(), so a database from before institutions reads as a
 * one-member alliance.
 *
 * Control loop thread only, on the store's connection (store_internal.h).
 */
#include "store_internal.h"
#include "telemed/common.h"

#include <string.h>

static bool kind_valid(const char *kind)
{
    return strcmp(kind, "core") == 0 || strcmp(kind, "hospital") == 0 ||
           strcmp(kind, "clinic") == 0;
}

int tm_store_institution_put(tm_store *s, const tm_institution *in)
{
    if (!in->id[0] || !in->name[0] || !kind_valid(in->kind))
        return tm__store_refuse(s, TM_EINVAL,
                                "an institution needs id, name and kind core, hospital or clinic");
    /* The core is the hospital this deployment reports as: one, and only it. */
    bool is_core = strcmp(in->id, tm_store_hospital_id(s)) == 0;
    if (is_core != (strcmp(in->kind, "core") == 0))
        return tm__store_refuse(s, TM_EINVAL,
                                "kind core is the hospital_id's institution and only its");
    return tm__store_run(s,
                         "INSERT INTO institutions(id, name, org_code, level, kind, created_at)"
                         " VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(id) DO UPDATE SET"
                         " name = excluded.name, org_code = excluded.org_code,"
                         " level = excluded.level, kind = excluded.kind",
                         "sssssI", in->id, in->name, in->org_code, in->level, in->kind,
                         tm_now_ms());
}

int tm_store_institution_get(tm_store *s, const char *id, tm_institution *out)
{
    tm__stmt *st = tm__store_query(
        s, "SELECT id, name, org_code, level, kind FROM institutions WHERE id = ?1", "s", id);
    int rc = tm__store_step(s, st);
    if (rc == 0)
        rc = tm__store_refuse(s, TM_ENOTFOUND, "no such institution");
    if (rc == 1) {
        tm__store_col_text(st, 0, out->id, sizeof(out->id));
        tm__store_col_text(st, 1, out->name, sizeof(out->name));
        tm__store_col_text(st, 2, out->org_code, sizeof(out->org_code));
        tm__store_col_text(st, 3, out->level, sizeof(out->level));
        tm__store_col_text(st, 4, out->kind, sizeof(out->kind));
        rc = 0;
    }
    tm__stmt_reset(st);
    return rc;
}

json_t *tm_store_institution_list(tm_store *s)
{
    tm__stmt *st = tm__store_query(
        s,
        "SELECT i.id, i.name, i.org_code, i.level, i.kind,"
        " (SELECT count(*) FROM departments d WHERE coalesce(d.institution_id, ?1) = i.id)"
        " AS departments, i.created_at FROM institutions i"
        " ORDER BY i.kind != 'core', i.id",
        "s", tm_store_hospital_id(s));
    return tm__store_rows_json(s, st);
}

int tm_store_dept_set_institution(tm_store *s, const char *dept_id, const char *institution_id)
{
    if (institution_id && strcmp(institution_id, tm_store_hospital_id(s)) == 0)
        institution_id = NULL;
    tm_institution known;
    if (institution_id && tm_store_institution_get(s, institution_id, &known) < 0)
        return tm__store_refuse(s, TM_EINVAL, "no such institution");
    int rc = tm__store_run_one(s, "UPDATE departments SET institution_id = ?2 WHERE id = ?1", "ss",
                               dept_id, institution_id);
    if (rc == TM_ENOTFOUND)
        return tm__store_refuse(s, TM_ENOTFOUND, "no such department");
    return rc;
}

int tm_store_dept_institution(tm_store *s, const char *dept_id, char out[64])
{
    tm__stmt *st =
        tm__store_query(s, "SELECT coalesce(institution_id, ?2) FROM departments WHERE id = ?1",
                        "ss", dept_id, tm_store_hospital_id(s));
    int rc = tm__store_step(s, st);
    if (rc == 0)
        rc = tm__store_refuse(s, TM_ENOTFOUND, "no such department");
    if (rc == 1) {
        tm__store_col_text(st, 0, out, 64);
        rc = 0;
    }
    tm__stmt_reset(st);
    return rc;
}

json_t *tm_store_institution_depts(tm_store *s, const char *institution_id)
{
    tm__stmt *st = tm__store_query(s,
                                   "SELECT id FROM departments"
                                   " WHERE coalesce(institution_id, ?2) = ?1 ORDER BY id",
                                   "ss", institution_id, tm_store_hospital_id(s));
    json_t *ids = json_array();
    int rc;
    while ((rc = tm__store_step(s, st)) == 1)
        json_array_append_new(ids, json_string(tm__col_text(st, 0)));
    tm__stmt_reset(st);
    if (rc < 0) {
        json_decref(ids);
        return NULL;
    }
    return ids;
}

json_t *tm_store_visit_list_in(tm_store *s, const char *institution_id, const char *state,
                               const char *dept_id, const char *doctor_id, const char *patient_id,
                               int64_t from_ms, int64_t to_ms, int limit, int offset)
{
    tm__stmt *st = tm__store_query(
        s,
        "SELECT v.id, v.patient_id, v.dept_id, v.doctor_id, v.kind, v.urgent, v.state,"
        " v.checkin_at, v.accepted_at, v.ended_at, v.end_reason, v.queue_wait_ms,"
        " v.response_ms, v.duration_ms, r.score AS rating"
        " FROM visits v LEFT JOIN ratings r ON r.visit_id = v.id"
        " JOIN departments d ON d.id = v.dept_id AND coalesce(d.institution_id, ?10) = ?9"
        " WHERE (?1 IS NULL OR v.state = ?1) AND (?2 IS NULL OR v.dept_id = ?2)"
        " AND (?3 IS NULL OR v.doctor_id = ?3) AND (?4 IS NULL OR v.patient_id = ?4)"
        " AND (?5 IS NULL OR v.checkin_at >= ?5) AND (?6 IS NULL OR v.checkin_at < ?6)"
        " ORDER BY v.checkin_at DESC LIMIT ?7 OFFSET ?8",
        "ssssttiiss", state, dept_id, doctor_id, patient_id, from_ms, to_ms,
        limit > 0 && limit <= 1000 ? limit : 100, offset > 0 ? offset : 0, institution_id,
        tm_store_hospital_id(s));
    return tm__store_rows_json(s, st);
}

int tm__store_same_institution(tm_store *s, const char *doctor_id, const char *dept_id)
{
    tm__stmt *st = tm__store_query(
        s,
        "SELECT coalesce(home.institution_id, ?3) = coalesce(shift.institution_id, ?3)"
        "  FROM doctors doc JOIN departments home ON home.id = doc.dept_id,"
        "       departments shift"
        " WHERE doc.id = ?1 AND shift.id = ?2",
        "sss", doctor_id, dept_id, tm_store_hospital_id(s));
    int rc = tm__store_step(s, st);
    bool other = rc == 1 && tm__col_int(st, 0) == 0;
    tm__stmt_reset(st);
    if (rc < 0)
        return rc;
    return other ? tm__store_refuse(s, TM_EINVAL,
                                    "the department belongs to another institution than the "
                                    "doctor's")
                 : 0;
}

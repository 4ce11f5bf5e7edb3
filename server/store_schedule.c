/*
 * store_schedule.c - the SQLite backend's schedule side of
 * include/telemed/store.h: departments, doctors, shifts, appointments, and
 * the audit log. Single-row writes with no outbox row: none of these is a
 * visit step the regulator hears of.
 *
 * Control loop thread only, on the store's connection (store_internal.h).
 */
#include "store_internal.h"
#include "telemed/common.h"

#include <stdio.h>
#include <string.h>

/* ---- departments, doctors, shifts ---------------------------------- */

int tm_store_dept_put(tm_store *s, const char *id, const char *name)
{
    return tm__store_run(s,
                         "INSERT INTO departments(id, name, created_at) VALUES(?1, ?2, ?3)"
                         " ON CONFLICT(id) DO UPDATE SET name = excluded.name",
                         "ssI", id, name, tm_now_ms());
}

int tm_store_dept_lookup(tm_store *s, const char *id)
{
    tm__stmt *st = tm__store_query(s, "SELECT 1 FROM departments WHERE id = ?1", "s", id);
    int rc = tm__store_step(s, st);
    tm__stmt_reset(st);
    return rc < 0 ? TM_EIO : rc;
}

bool tm_store_dept_exists(tm_store *s, const char *id)
{
    return tm_store_dept_lookup(s, id) == 1;
}

json_t *tm_store_dept_list(tm_store *s)
{
    tm__stmt *st = tm__store_query(s,
                                   "SELECT id, name, coalesce(institution_id, ?1) AS"
                                   " institution_id, created_at FROM departments ORDER BY id",
                                   "s", tm_store_hospital_id(s));
    return tm__store_rows_json(s, st);
}

int tm_store_dept_delete(tm_store *s, const char *id)
{
    return tm__store_run_one(s, "DELETE FROM departments WHERE id = ?1", "s", id);
}

int tm_store_doctor_put(tm_store *s, const char *id, const char *name, const char *dept_id,
                        const char *licence_no, const char *title)
{
    int rc = tm__store_run(s,
                           "INSERT INTO doctors(id, name, dept_id, licence_no, title, created_at)"
                           " VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(id) DO UPDATE SET"
                           " name = excluded.name, dept_id = excluded.dept_id,"
                           " licence_no = excluded.licence_no, title = excluded.title",
                           "sssssI", id, name, dept_id, licence_no, title, tm_now_ms());
    return rc == TM_ECONFLICT ? TM_EINVAL : rc; /* unknown department */
}

int tm_store_doctor_set_kind(tm_store *s, const char *id, const char *kind)
{
    if (!kind || (strcmp(kind, "doctor") != 0 && strcmp(kind, "nurse") != 0 &&
                  strcmp(kind, "interpreter") != 0))
        return tm__store_refuse(s, TM_EINVAL, "kind must be doctor, nurse or interpreter");
    return tm__store_run_one(s, "UPDATE doctors SET kind = ?2 WHERE id = ?1", "ss", id, kind);
}

int tm_store_doctor_get(tm_store *s, const char *id, tm_doctor_info *out)
{
    tm__stmt *st = tm__store_query(
        s, "SELECT id, dept_id, licence_no, active, name, title, kind FROM doctors WHERE id = ?1",
        "s", id);
    int rc = tm__store_step(s, st);
    if (rc == 0)
        rc = tm__store_refuse(s, TM_ENOTFOUND, "no such doctor");
    if (rc == 1) {
        tm__store_col_text(st, 0, out->id, sizeof(out->id));
        tm__store_col_text(st, 1, out->dept_id, sizeof(out->dept_id));
        tm__store_col_text(st, 2, out->licence_no, sizeof(out->licence_no));
        out->active = tm__col_int(st, 3) != 0;
        tm__store_col_text(st, 4, out->name, sizeof(out->name));
        tm__store_col_text(st, 5, out->title, sizeof(out->title));
        tm__store_col_text(st, 6, out->kind, sizeof(out->kind));
        rc = 0;
    }
    tm__stmt_reset(st);
    return rc;
}

json_t *tm_store_doctor_list(tm_store *s, const char *dept_id)
{
    tm__stmt *st =
        tm__store_query(s,
                        "SELECT d.id, d.name, d.dept_id,"
                        " coalesce(p.institution_id, ?2) AS institution_id, d.licence_no,"
                        " d.title, d.kind, d.active, d.created_at FROM doctors d"
                        " LEFT JOIN departments p ON p.id = d.dept_id"
                        " WHERE ?1 IS NULL OR d.dept_id = ?1 ORDER BY d.id",
                        "ss", dept_id, tm_store_hospital_id(s));
    return tm__store_rows_json(s, st);
}

int tm_store_shift_add(tm_store *s, const char *doctor_id, const char *dept_id, int64_t start_ms,
                       int64_t end_ms, int capacity, char *id_out)
{
    if (end_ms <= start_ms || capacity < 1)
        return tm__store_refuse(s, TM_EINVAL, "a shift ends after it starts and has capacity >= 1");
    int same = tm__store_same_institution(s, doctor_id, dept_id);
    if (same < 0)
        return same;
    char id[64];
    tm__store_make_id("shift", id, sizeof(id));
    int rc =
        tm__store_run(s,
                      "INSERT INTO shifts(id, doctor_id, dept_id, start_at, end_at, capacity,"
                      " created_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                      "sssIIiI", id, doctor_id, dept_id, start_ms, end_ms, capacity, tm_now_ms());
    if (rc == TM_ECONFLICT)
        return tm__store_refuse(s, TM_EINVAL, "unknown doctor or department");
    if (rc == 0 && id_out)
        strcpy(id_out, id);
    return rc;
}

int tm_store_shift_delete(tm_store *s, const char *id)
{
    return tm__store_run_one(s, "DELETE FROM shifts WHERE id = ?1", "s", id);
}

json_t *tm_store_shift_list(tm_store *s, const char *doctor_id, const char *dept_id,
                            int64_t from_ms, int64_t to_ms)
{
    tm__stmt *st =
        tm__store_query(s,
                        "SELECT id, doctor_id, dept_id, start_at, end_at, capacity FROM shifts"
                        " WHERE (?1 IS NULL OR doctor_id = ?1) AND (?2 IS NULL OR dept_id = ?2)"
                        " AND (?3 IS NULL OR end_at > ?3) AND (?4 IS NULL OR start_at < ?4)"
                        " ORDER BY start_at, doctor_id",
                        "sstt", doctor_id, dept_id, from_ms, to_ms);
    return tm__store_rows_json(s, st);
}

int tm_store_shift_current(tm_store *s, const char *doctor_id, const char *dept_id, int64_t now_ms,
                           char *dept_out, int *capacity, int64_t *end_ms)
{
    tm__stmt *st =
        tm__store_query(s,
                        "SELECT dept_id, capacity, end_at FROM shifts WHERE doctor_id = ?1"
                        " AND (?2 IS NULL OR dept_id = ?2) AND start_at <= ?3 AND end_at > ?3"
                        " ORDER BY end_at DESC LIMIT 1",
                        "ssI", doctor_id, dept_id, now_ms);
    int rc = tm__store_step(s, st);
    if (rc == 0)
        rc = tm__store_refuse(s, TM_ENOTFOUND, "no shift now");
    if (rc == 1) {
        if (dept_out)
            tm__store_col_text(st, 0, dept_out, 64);
        if (capacity)
            *capacity = tm__col_int(st, 1);
        if (end_ms)
            *end_ms = tm__col_int64(st, 2);
        rc = 0;
    }
    tm__stmt_reset(st);
    return rc;
}

/* ---- appointments -------------------------------------------------- */

bool tm__store_kind_valid(const char *kind)
{
    return kind && (strcmp(kind, "follow_up") == 0 || strcmp(kind, "first") == 0);
}

int tm_store_appt_create(tm_store *s, const tm_appointment *a, char *id_out)
{
    if (!a->patient_id[0] || !a->dept_id[0] || a->slot_ms <= 0 || !tm__store_kind_valid(a->kind))
        return tm__store_refuse(s, TM_EINVAL,
                                "an appointment needs patient, department, slot and kind");
    char id[64];
    if (a->id[0])
        snprintf(id, sizeof(id), "%s", a->id);
    else
        tm__store_make_id("apt", id, sizeof(id));
    int rc = tm__store_run(
        s,
        "INSERT INTO appointments(id, patient_id, dept_id, doctor_id, slot_at, kind,"
        " status, created_at, updated_at)"
        " VALUES(?1, ?2, ?3, ?4, ?5, ?6, 'booked', ?7, ?7)",
        "ssssIsI", id, a->patient_id, a->dept_id, a->doctor_id, a->slot_ms, a->kind, tm_now_ms());
    if (rc == 0 && id_out)
        snprintf(id_out, 64, "%s", id);
    return rc;
}

int tm_store_appt_get(tm_store *s, const char *id, tm_appointment *out)
{
    tm__stmt *st =
        tm__store_query(s,
                        "SELECT id, patient_id, dept_id, doctor_id, slot_at, kind, status"
                        " FROM appointments WHERE id = ?1",
                        "s", id);
    int rc = tm__store_step(s, st);
    if (rc == 0)
        rc = tm__store_refuse(s, TM_ENOTFOUND, "no such appointment");
    if (rc == 1) {
        tm__store_col_text(st, 0, out->id, sizeof(out->id));
        tm__store_col_text(st, 1, out->patient_id, sizeof(out->patient_id));
        tm__store_col_text(st, 2, out->dept_id, sizeof(out->dept_id));
        tm__store_col_text(st, 3, out->doctor_id, sizeof(out->doctor_id));
        out->slot_ms = tm__col_int64(st, 4);
        tm__store_col_text(st, 5, out->kind, sizeof(out->kind));
        tm__store_col_text(st, 6, out->status, sizeof(out->status));
        rc = 0;
    }
    tm__stmt_reset(st);
    return rc;
}

int tm_store_appt_update(tm_store *s, const tm_appointment *a)
{
    static const char *const statuses[] = {"booked", "arrived", "fulfilled", "cancelled", "noshow"};
    bool ok = false;
    for (size_t i = 0; i < TM_ARRAY_LEN(statuses); i++)
        ok |= strcmp(a->status, statuses[i]) == 0;
    if (!ok || a->slot_ms <= 0 || !tm__store_kind_valid(a->kind))
        return tm__store_refuse(s, TM_EINVAL, "bad appointment status, slot or kind");
    int rc = tm__store_run_one(s,
                               "UPDATE appointments SET slot_at = ?2, doctor_id = ?3, status = ?4,"
                               " kind = ?5, dept_id = ?6, updated_at = ?7 WHERE id = ?1",
                               "sIssssI", a->id, a->slot_ms, a->doctor_id, a->status, a->kind,
                               a->dept_id, tm_now_ms());
    return rc == TM_ECONFLICT ? TM_EINVAL : rc;
}

json_t *tm_store_appt_list(tm_store *s, const char *institution_id, const char *patient_id,
                           const char *dept_id, const char *status, int64_t from_ms, int64_t to_ms,
                           int limit)
{
    tm__stmt *st = tm__store_query(
        s,
        "SELECT id, patient_id, dept_id, doctor_id, slot_at, kind, status, created_at,"
        " updated_at FROM appointments"
        " WHERE (?1 IS NULL OR patient_id = ?1) AND (?2 IS NULL OR dept_id = ?2)"
        " AND (?3 IS NULL OR status = ?3) AND (?4 IS NULL OR slot_at >= ?4)"
        " AND (?5 IS NULL OR slot_at < ?5)"
        " AND (?7 IS NULL OR dept_id IN (SELECT id FROM departments"
        "                                WHERE coalesce(institution_id, ?8) = ?7))"
        " ORDER BY slot_at LIMIT ?6",
        "sssttiss", patient_id, dept_id, status, from_ms, to_ms, limit > 0 ? limit : 500,
        institution_id, tm_store_hospital_id(s));
    return tm__store_rows_json(s, st);
}

/* ---- audit log ----------------------------------------------------- */

int tm_store_audit(tm_store *s, const char *actor_id, const char *actor_role, const char *action,
                   const char *target, const char *outcome, const char *detail)
{
    return tm__store_run(
        s,
        "INSERT INTO audit_log(at, actor_id, actor_role, action, target, outcome, detail)"
        " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        "Issssss", tm_now_ms(), actor_id && *actor_id ? actor_id : "-",
        actor_role && *actor_role ? actor_role : "none", action, target, outcome ? outcome : "ok",
        detail);
}

json_t *tm_store_audit_list(tm_store *s, const char *target, const char *actor_id, int64_t from_ms,
                            int limit)
{
    tm__stmt *st = tm__store_query(
        s,
        "SELECT id, at, actor_id, actor_role, action, target, outcome, detail"
        " FROM audit_log WHERE (?1 IS NULL OR target = ?1)"
        " AND (?2 IS NULL OR actor_id = ?2) AND (?3 IS NULL OR at >= ?3)"
        " ORDER BY id DESC LIMIT ?4",
        "ssti", target, actor_id, from_ms, limit > 0 && limit <= 1000 ? limit : 100);
    return tm__store_rows_json(s, st);
}

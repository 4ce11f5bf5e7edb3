/*
 * api_schedule.c - the hospital's schedule as REST resources: departments,
 * doctors, shifts and appointments. Everyone signed in reads; admins write.
 *
 * Control loop thread only.
 */
#include "http_internal.h"
#include "telemed/common.h"
#include "telemed/store.h"

#include <stdlib.h>
#include <string.h>

void tm__api_departments(http_req *r)
{
    tm_store *st = r->app->store;
    if (r->p->method == LWSHUMETH_GET && r->nseg == 1) {
        tm__respond_json(r->p, 200, json_pack("{s:o}", "departments", tm_store_dept_list(st)));
        return;
    }
    if (!tm__need(r, tm__is_admin(r)))
        return;
    if (r->p->method == LWSHUMETH_POST && r->nseg == 1) {
        bool bad = false;
        const char *id = tm__body_str(r->body, "id", 63, true, &bad);
        const char *name = tm__body_str(r->body, "name", 200, true, &bad);
        const char *inst = tm__body_str(r->body, "institution_id", 63, false, &bad);
        if (bad || !tm__id_ok(id)) {
            tm__respond_err(r->p, TM_EINVAL,
                            "department needs id ([A-Za-z0-9._-]{1,63}) and name; "
                            "institution_id optional");
            return;
        }
        /* An admin of one institution manages its departments only (issue 18). */
        if (!inst)
            inst = r->who.institution[0] ? r->who.institution : r->app->cfg.hospital_id;
        tm_institution member;
        if (strcmp(inst, r->app->cfg.hospital_id) != 0 &&
            tm_store_institution_get(st, inst, &member) < 0) {
            tm__respond_err(r->p, TM_EINVAL, "unknown institution_id");
            return;
        }
        bool mine = !r->who.institution[0] ||
                    (strcmp(inst, r->who.institution) == 0 &&
                     (!tm_store_dept_exists(st, id) || tm__scope_has_dept(r, id)));
        if (!tm__need(r, mine))
            return;
        int rc = tm_store_dept_put(st, id, name);
        if (rc == 0)
            rc = tm_store_dept_set_institution(st, id, inst);
        if (rc < 0) {
            tm__respond_err(r->p, rc, NULL);
            return;
        }
        tm__audit(r, "department.put", id, "ok");
        tm__respond_json(
            r->p, 201,
            json_pack("{s:s, s:s, s:s}", "id", id, "name", name, "institution_id", inst));
        return;
    }
    if (r->p->method == LWSHUMETH_DELETE && r->nseg == 2) {
        int rc = tm_store_dept_delete(st, r->seg[1]);
        if (rc < 0) {
            tm__respond_err(r->p, rc, rc == TM_ECONFLICT ? "department is in use" : NULL);
            return;
        }
        tm__audit(r, "department.delete", r->seg[1], "ok");
        tm__respond_json(r->p, 200, json_pack("{s:s}", "deleted", r->seg[1]));
        return;
    }
    tm__respond_err(r->p, TM_ENOTFOUND, "no such route");
}

void tm__api_doctors(http_req *r)
{
    tm_store *st = r->app->store;
    if (r->p->method == LWSHUMETH_GET && r->nseg == 1) {
        char dept[64];
        tm__respond_json(
            r->p, 200,
            json_pack("{s:o}", "doctors",
                      tm_store_doctor_list(st, tm__arg(r, "dept", dept, sizeof(dept)))));
        return;
    }
    if (!tm__need(r, tm__is_admin(r)))
        return;
    if (r->p->method == LWSHUMETH_POST && r->nseg == 1) {
        bool bad = false;
        const char *id = tm__body_str(r->body, "id", 63, true, &bad);
        const char *name = tm__body_str(r->body, "name", 200, true, &bad);
        const char *dept = tm__body_str(r->body, "dept_id", 63, true, &bad);
        const char *licence = tm__body_str(r->body, "licence_no", 63, false, &bad);
        const char *title = tm__body_str(r->body, "title", 100, false, &bad);
        const char *kind = tm__body_str(r->body, "kind", 15, false, &bad);
        if (!kind)
            kind = "doctor";
        if (bad || !tm__id_ok(id) ||
            (strcmp(kind, "doctor") != 0 && strcmp(kind, "nurse") != 0 &&
             strcmp(kind, "interpreter") != 0)) {
            tm__respond_err(r->p, TM_EINVAL,
                            "doctor needs id, name, dept_id; licence_no, title and kind "
                            "(doctor, nurse, interpreter) optional");
            return;
        }
        int rc = tm_store_doctor_put(st, id, name, dept, licence, title);
        if (rc < 0) {
            tm__respond_err(r->p, rc, rc == TM_EINVAL ? "unknown department" : NULL);
            return;
        }
        if ((rc = tm_store_doctor_set_kind(st, id, kind)) < 0) {
            tm__respond_err(r->p, rc, NULL);
            return;
        }
        tm__audit(r, "doctor.put", id, "ok");
        tm__respond_json(r->p, 201,
                         json_pack("{s:s, s:s, s:s}", "id", id, "dept_id", dept, "kind", kind));
        return;
    }
    tm__respond_err(r->p, TM_ENOTFOUND, "no such route");
}

/* POST /api/v1/shifts/copy-week {from, dept_id?}: the week starting at
 * from copied to the week after (issue 18); idempotent, all or nothing. */
static void copy_week(http_req *r)
{
    bool bad = false;
    int64_t from = tm__body_time(r->body, "from", &bad);
    const char *dept = tm__body_str(r->body, "dept_id", 63, false, &bad);
    if (bad || !from) {
        tm__respond_err(r->p, TM_EINVAL,
                        "copy-week needs from (the first day of the week to copy, RFC 3339 or "
                        "epoch ms) and optional dept_id");
        return;
    }
    if (dept && !tm__scope_has_dept(r, dept)) {
        tm__respond_err(r->p, TM_EPERM, "the department belongs to another institution");
        return;
    }
    int copied = 0, skipped = 0;
    int rc = tm_store_shift_copy_week(r->app->store, from, dept,
                                      r->who.institution[0] ? r->who.institution : NULL, &copied,
                                      &skipped);
    if (rc < 0) {
        tm__audit(r, "shift.copy_week", dept ? dept : "*", "denied");
        tm__respond_err(r->p, rc, rc == TM_ECONFLICT ? tm_store_errmsg(r->app->store) : NULL);
        return;
    }
    tm__audit(r, "shift.copy_week", dept ? dept : "*", "ok");
    if (copied)
        tm_signaling_shifts_changed(r->app->sig);
    tm__respond_json(r->p, 200, json_pack("{s:i, s:i}", "copied", copied, "skipped", skipped));
}

void tm__api_shifts(http_req *r)
{
    tm_store *st = r->app->store;
    if (r->p->method == LWSHUMETH_GET && r->nseg == 1) {
        char doctor[64], dept[64];
        bool bad = false;
        const char *doc = tm__arg(r, "doctor", doctor, sizeof(doctor));
        if (r->who.role == TM_ROLE_DOCTOR)
            doc = r->who.sub; /* a doctor sees their own schedule */
        else if (!tm__need(r, tm__is_staff(r)))
            return;
        int64_t from = tm__arg_time(r, "from", &bad), to = tm__arg_time(r, "to", &bad);
        if (bad) {
            tm__respond_err(r->p, TM_EINVAL, "from/to must be RFC 3339 or epoch ms");
            return;
        }
        json_t *rows =
            tm_store_shift_list(st, doc, tm__arg(r, "dept", dept, sizeof(dept)), from, to);
        /* A supervisor or admin of one institution reads its rota only. */
        tm__respond_json(r->p, 200,
                         json_pack("{s:o}", "shifts", tm__scope_rows(r, rows, "dept_id", NULL, 0)));
        return;
    }
    /* Supervisors and admins manage the rota (issue 18, the scheduling page);
     * one scoped to an institution, its departments' only. */
    if (!tm__need(r, tm__is_staff(r)))
        return;
    if (r->p->method == LWSHUMETH_POST && r->nseg == 2 && strcmp(r->seg[1], "copy-week") == 0) {
        copy_week(r);
        return;
    }
    if (r->p->method == LWSHUMETH_POST && r->nseg == 1) {
        bool bad = false;
        const char *doctor = tm__body_str(r->body, "doctor_id", 63, true, &bad);
        const char *dept = tm__body_str(r->body, "dept_id", 63, true, &bad);
        int64_t start = tm__body_time(r->body, "start", &bad),
                end = tm__body_time(r->body, "end", &bad);
        json_t *cap = json_object_get(r->body, "capacity");
        if (cap &&
            (!json_is_integer(cap) || json_integer_value(cap) < 1 || json_integer_value(cap) > 100))
            bad = true;
        if (bad || !start || !end || end <= start) {
            tm__respond_err(r->p, TM_EINVAL,
                            "shift needs doctor_id, dept_id, start < end (RFC 3339 "
                            "or epoch ms) and optional capacity 1-100");
            return;
        }
        if (!tm__scope_has_dept(r, dept)) {
            tm__respond_err(r->p, TM_EPERM, "the department belongs to another institution");
            return;
        }
        char id[64];
        int rc = tm_store_shift_add(st, doctor, dept, start, end,
                                    cap ? (int)json_integer_value(cap) : 1, id);
        if (rc < 0) {
            /* The store says which: unknown doctor or department, or another institution's. */
            tm__respond_err(r->p, rc, rc == TM_EINVAL ? tm_store_errmsg(st) : NULL);
            return;
        }
        tm__audit(r, "shift.add", id, "ok");
        tm_signaling_shifts_changed(r->app->sig);
        tm__respond_json(r->p, 201, json_pack("{s:s}", "id", id));
        return;
    }
    if (r->p->method == LWSHUMETH_DELETE && r->nseg == 2) {
        char dept[64];
        int rc = tm_store_shift_dept(st, r->seg[1], dept);
        if (rc == 0 && !tm__scope_has_dept(r, dept)) {
            tm__respond_err(r->p, TM_EPERM, "the shift belongs to another institution");
            return;
        }
        if (rc == 0)
            rc = tm_store_shift_delete(st, r->seg[1]);
        if (rc < 0) {
            tm__respond_err(r->p, rc, NULL);
            return;
        }
        tm__audit(r, "shift.delete", r->seg[1], "ok");
        tm_signaling_shifts_changed(r->app->sig);
        tm__respond_json(r->p, 200, json_pack("{s:s}", "deleted", r->seg[1]));
        return;
    }
    tm__respond_err(r->p, TM_ENOTFOUND, "no such route");
}

static json_t *appt_json(const tm_appointment *a)
{
    char ts[40];
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "id", a->id, "patient_id", a->patient_id,
                  "dept_id", a->dept_id, "slot_at", tm_rfc3339(a->slot_ms, ts, sizeof(ts)), "kind",
                  a->kind, "status", a->status);
    json_object_set_new(o, "doctor_id", a->doctor_id[0] ? json_string(a->doctor_id) : json_null());
    return o;
}

void tm__api_appointments(http_req *r)
{
    tm_store *st = r->app->store;
    int m = r->p->method;
    if (m == LWSHUMETH_GET && r->nseg == 1) {
        if (!tm__need(r, tm__is_staff(r) || r->who.role == TM_ROLE_DOCTOR ||
                             r->who.role == TM_ROLE_PATIENT))
            return;
        char patient[128], dept[64], status[16], limit[16];
        bool bad = false;
        const char *pat = tm__arg(r, "patient", patient, sizeof(patient));
        const char *dep = tm__arg(r, "dept", dept, sizeof(dept));
        tm_doctor_info doc;
        if (r->who.role == TM_ROLE_PATIENT)
            pat = r->who.sub; /* patients see their own bookings only */
        if (r->who.role == TM_ROLE_DOCTOR) {
            /* a doctor sees the bookings of their own department */
            if (tm_store_doctor_get(r->app->store, r->who.sub, &doc) < 0) {
                tm__respond_err(r->p, TM_EPERM, "this doctor is not registered at the hospital");
                return;
            }
            dep = doc.dept_id;
        }
        int64_t from = tm__arg_time(r, "from", &bad), to = tm__arg_time(r, "to", &bad);
        if (bad) {
            tm__respond_err(r->p, TM_EINVAL, "from/to must be RFC 3339 or epoch ms");
            return;
        }
        const char *lim = tm__arg(r, "limit", limit, sizeof(limit));
        int want = lim && atoi(lim) > 0 ? atoi(lim) : 500;
        /* Staff of one institution read its departments' bookings only. */
        const char *inst = tm__is_staff(r) && r->who.institution[0] ? r->who.institution : NULL;
        json_t *rows = tm_store_appt_list(
            st, inst, pat, dep, tm__arg(r, "status", status, sizeof(status)), from, to, want);
        tm__audit_list(r, "appointment.list", pat);
        tm__respond_json(r->p, 200, json_pack("{s:o}", "appointments", rows));
        return;
    }
    if (m == LWSHUMETH_GET && r->nseg == 2) {
        tm_appointment a;
        int rc = tm_store_appt_get(st, r->seg[1], &a);
        if (rc == 0 && r->who.role == TM_ROLE_PATIENT && strcmp(a.patient_id, r->who.sub) != 0)
            rc = TM_ENOTFOUND;
        if (rc == 0 &&
            !(tm__is_staff(r) || r->who.role == TM_ROLE_DOCTOR || r->who.role == TM_ROLE_PATIENT))
            rc = TM_EPERM;
        if (rc == 0 && r->who.role == TM_ROLE_DOCTOR &&
            !tm__doctor_may_see(r, a.dept_id, a.patient_id))
            rc = TM_EPERM;
        tm__audit(r, "appointment.read", r->seg[1],
                  rc == 0              ? "ok"
                  : rc == TM_ENOTFOUND ? "not_found"
                                       : "denied");
        if (rc < 0)
            tm__respond_err(r->p, rc, rc == TM_EPERM ? "not a patient of your department" : NULL);
        else
            tm__respond_json(r->p, 200, appt_json(&a));
        return;
    }
    if (!tm__need(r, tm__is_admin(r)))
        return;
    if (m == LWSHUMETH_POST && r->nseg == 1) {
        bool bad = false;
        tm_appointment a = {0};
        const char *id = tm__body_str(r->body, "id", 63, false, &bad);
        const char *patient = tm__body_str(r->body, "patient_id", 127, true, &bad);
        const char *dept = tm__body_str(r->body, "dept_id", 63, true, &bad);
        const char *doctor = tm__body_str(r->body, "doctor_id", 63, false, &bad);
        const char *kind = tm__body_str(r->body, "kind", 15, false, &bad);
        a.slot_ms = tm__body_time(r->body, "slot", &bad);
        if (bad || !a.slot_ms || (id && !tm__id_ok(id))) {
            tm__respond_err(r->p, TM_EINVAL,
                            "appointment needs patient_id, dept_id, slot (RFC 3339 or "
                            "epoch ms); optional id, doctor_id, kind");
            return;
        }
        g_strlcpy(a.id, id ? id : "", sizeof(a.id));
        g_strlcpy(a.patient_id, patient, sizeof(a.patient_id));
        g_strlcpy(a.dept_id, dept, sizeof(a.dept_id));
        g_strlcpy(a.doctor_id, doctor ? doctor : "", sizeof(a.doctor_id));
        g_strlcpy(a.kind, kind ? kind : "follow_up", sizeof(a.kind));
        if (!tm_store_dept_exists(st, a.dept_id)) {
            tm__respond_err(r->p, TM_EINVAL, "unknown department");
            return;
        }
        char new_id[64];
        int rc = tm_store_appt_book(st, &a, tm_now_ms(), new_id); /* followup18: + its event */
        if (rc < 0) {
            tm__respond_err(r->p, rc,
                            rc == TM_ECONFLICT ? "appointment id exists or unknown doctor"
                                               : "kind must be follow_up or first");
            return;
        }
        tm__audit(r, "appointment.create", new_id, "ok");
        if (r->app->feed)
            tm_feed_kick(r->app->feed);
        tm_store_appt_get(st, new_id, &a);
        tm__respond_json(r->p, 201, appt_json(&a));
        return;
    }
    if ((m == LWSHUMETH_PATCH || m == LWSHUMETH_PUT || m == LWSHUMETH_DELETE) && r->nseg == 2) {
        tm_appointment a;
        int rc = tm_store_appt_get(st, r->seg[1], &a);
        if (rc < 0) {
            tm__respond_err(r->p, rc, NULL);
            return;
        }
        if (strcmp(a.status, "booked") != 0) {
            tm__respond_err(r->p, TM_ECONFLICT, "only booked appointments can change");
            return;
        }
        if (m == LWSHUMETH_DELETE) {
            g_strlcpy(a.status, "cancelled", sizeof(a.status));
        } else {
            bool bad = false;
            int64_t slot = tm__body_time(r->body, "slot", &bad);
            const char *doctor = tm__body_str(r->body, "doctor_id", 63, false, &bad);
            const char *status = tm__body_str(r->body, "status", 15, false, &bad);
            const char *kind = tm__body_str(r->body, "kind", 15, false, &bad);
            if (bad) {
                tm__respond_err(r->p, TM_EINVAL, "slot, doctor_id, status or kind malformed");
                return;
            }
            if (slot)
                a.slot_ms = slot;
            if (doctor)
                g_strlcpy(a.doctor_id, doctor, sizeof(a.doctor_id));
            if (status)
                g_strlcpy(a.status, status, sizeof(a.status));
            if (kind)
                g_strlcpy(a.kind, kind, sizeof(a.kind));
        }
        /* + appointment.moved or appointment.cancelled, for the messaging system */
        rc = tm_store_appt_change(st, &a, tm_now_ms());
        if (rc < 0) {
            tm__respond_err(r->p, rc,
                            rc == TM_EINVAL ? "invalid status, kind, slot or doctor" : NULL);
            return;
        }
        if (r->app->feed)
            tm_feed_kick(r->app->feed);
        tm__audit(r, m == LWSHUMETH_DELETE ? "appointment.cancel" : "appointment.update", a.id,
                  "ok");
        tm__respond_json(r->p, 200, appt_json(&a));
        return;
    }
    tm__respond_err(r->p, TM_ENOTFOUND, "no such route");
}

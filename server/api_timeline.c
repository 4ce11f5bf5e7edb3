/*
 * api_timeline.c - the REST resource of the patient's whole course (issue
 * 18, followup18): GET /api/v1/patients/{id}/timeline, the patient's
 * visits (diagnosis codes, signed notes), appointments and follow-ups, and
 * the consultations and referrals where the store has them
 * (tm_store_patient_timeline). Every read is audited, a refused one too.
 *
 * Who reads it: supervisors and admins (of one institution: its patients'); a doctor who has seen
 * the patient or whose department has (beside the live visit); the patient their own, in the
 * patient's view (visits, released notes, appointments ahead).
 *
 * Control loop thread only.
 */
#include "http_internal.h"
#include "telemed/common.h"

#include <string.h>

static bool doctor_may_read(http_req *r, const char *patient_id)
{
    if (tm_store_doctor_knows_patient(r->app->store, r->who.sub, patient_id))
        return true;
    tm_doctor_info doc;
    if (tm_store_doctor_get(r->app->store, r->who.sub, &doc) < 0)
        return false;
    json_t *seen =
        tm_store_visit_list(r->app->store, NULL, doc.dept_id, NULL, patient_id, 0, 0, 1, 0);
    bool ok = json_array_size(seen) > 0;
    json_decref(seen);
    return ok;
}

/* Staff of one institution read the course of its own patients: those
 * with a visit in one of its departments (the course then shows all of
 * it, as the alliance shares it); staff of the alliance, anyone's. */
static bool staff_may_read(http_req *r, const char *patient_id)
{
    if (!r->who.institution[0])
        return true;
    json_t *seen = tm_store_visit_list_in(r->app->store, r->who.institution, NULL, NULL, NULL,
                                          patient_id, 0, 0, 1, 0);
    bool ok = json_array_size(seen) > 0;
    json_decref(seen);
    return ok;
}

void tm__api_patients(http_req *r)
{
    if (r->p->method != LWSHUMETH_GET || r->nseg != 3 || strcmp(r->seg[2], "timeline") != 0) {
        tm__respond_err(r->p, TM_ENOTFOUND, "no such route");
        return;
    }
    const char *patient_id = r->seg[1];
    if (!tm__id_ok(patient_id)) {
        tm__respond_err(r->p, TM_EINVAL, "bad patient id");
        return;
    }
    bool own = r->who.role == TM_ROLE_PATIENT && strcmp(r->who.sub, patient_id) == 0;
    bool ok = (tm__is_staff(r) && staff_may_read(r, patient_id)) || own ||
              (r->who.role == TM_ROLE_DOCTOR && doctor_may_read(r, patient_id));
    if (!ok) {
        tm__audit(r, "patient.timeline", patient_id, "denied");
        tm__need(r, false);
        return;
    }
    json_t *t = tm_store_patient_timeline(r->app->store, patient_id, own, tm_now_ms());
    if (!t) {
        tm__audit(r, "patient.timeline", patient_id, "failed");
        tm__respond_err(r->p, TM_EIO, NULL);
        return;
    }
    tm__audit(r, "patient.timeline", patient_id, "ok");
    json_object_set_new(t, "view", json_string(own ? "patient" : "staff"));
    tm__respond_json(r->p, 200, t);
}

/*
 * fhir_referral.c - a referral -> FHIR R4 ServiceRequest, bundled with the
 * Encounter it came from (include/telemed/fhir.h, tm_fhir_referral).
 *
 * A Bundle rather than a contained Encounter: R4 forbids contained
 * resources to contain others (dom-2), and the Encounter carries its own.
 * People and departments are referenced by the hospital's identifiers, as
 * the Encounter does, so no names appear. Pure; any thread.
 */
#include "telemed/fhir.h"
#include "telemed/common.h"

#include <glib.h>
#include <stdbool.h>
#include <string.h>

#define SYS_SNOMED "http://snomed.info/sct"

static const char *str(json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v && *v ? v : NULL;
}

/* A logical reference: the resource type and the hospital's identifier. */
static json_t *by_identifier(const char *type, const char *hospital, const char *kind,
                             const char *value)
{
    char *system = g_strdup_printf(TM_FHIR_BASE "/%s/%s", hospital, kind);
    json_t *r = json_pack("{s:s, s:{s:s, s:s}}", "type", type, "identifier", "system", system,
                          "value", value);
    g_free(system);
    return r;
}

static json_t *plain_ref(const char *type, const char *id)
{
    char *r = g_strdup_printf("%s/%s", type, id);
    json_t *o = json_pack("{s:s}", "reference", r);
    g_free(r);
    return o;
}

/* Requested and accepted referrals are live requests; a declined one (and
 * one replaced by a new version) no longer authorises anything. */
static const char *request_status(const char *state)
{
    if (strcmp(state, "requested") == 0 || strcmp(state, "accepted") == 0)
        return "active";
    if (strcmp(state, "declined") == 0 || strcmp(state, "resent") == 0)
        return "revoked";
    return "unknown";
}

static json_t *extensions(json_t *rf, const char *state)
{
    json_t *ext = json_pack("[{s:s, s:s}]", "url", TM_FHIR_EXT_REFERRAL_STATE, "valueCode", state);
    if (str(rf, "decline_reason"))
        json_array_append_new(ext, json_pack("{s:s, s:s}", "url", TM_FHIR_EXT_DECLINE_REASON,
                                             "valueString", str(rf, "decline_reason")));
    return ext;
}

/* Who is asked to act: the receiving institution (an alliance member is
 * an Organization of its own) and its department, as two performers. */
static json_t *performers(json_t *rf, const char *hospital)
{
    json_t *list = json_array();
    json_t *inst = json_object_get(rf, "to_institution");
    if (str(inst, "id")) {
        json_t *org = by_identifier("Organization", hospital, "institution", str(inst, "id"));
        if (str(inst, "name"))
            json_object_set_new(org, "display", json_string(str(inst, "name")));
        json_array_append_new(list, org);
    }
    if (str(rf, "to_dept_id"))
        json_array_append_new(list, by_identifier("HealthcareService", hospital, "department",
                                                  str(rf, "to_dept_id")));
    return list;
}

static json_t *service_request(json_t *rf, const char *hospital)
{
    const char *id = str(rf, "id"), *state = str(rf, "state");
    const char *direction = str(rf, "direction");
    bool up = direction && strcmp(direction, "up") == 0;
    char *system = g_strdup_printf(TM_FHIR_BASE "/%s/referral", hospital);
    json_t *sr = json_pack(
        "{s:s, s:s, s:[{s:s, s:s}], s:s, s:s, s:[{s:[{s:s, s:s, s:s}]}], s:{s:s}}", "resourceType",
        "ServiceRequest", "id", id, "identifier", "system", system, "value", id, "status",
        request_status(state), "intent", "order", "category", "coding", "system", SYS_SNOMED,
        "code", "3457005", "display", "Patient referral", "code", "text",
        up ? "referral up to a higher-level institution" : "referral down to community care");
    g_free(system);
    json_object_set_new(sr, "extension", extensions(rf, state));
    if (str(rf, "replaces"))
        json_object_set_new(sr, "replaces",
                            json_pack("[o]", plain_ref("ServiceRequest", str(rf, "replaces"))));
    json_object_set_new(sr, "subject",
                        by_identifier("Patient", hospital, "patient", str(rf, "patient_id")));
    json_object_set_new(sr, "encounter", plain_ref("Encounter", str(rf, "visit_id")));
    if (str(rf, "created_at"))
        json_object_set_new(sr, "authoredOn", json_string(str(rf, "created_at")));
    if (str(rf, "from_doctor_id"))
        json_object_set_new(
            sr, "requester",
            by_identifier("Practitioner", hospital, "doctor", str(rf, "from_doctor_id")));
    json_object_set_new(sr, "performer", performers(rf, hospital));
    if (str(rf, "reason"))
        json_object_set_new(sr, "reasonCode", json_pack("[{s:s}]", "text", str(rf, "reason")));
    if (str(rf, "appointment_id"))
        json_object_set_new(sr, "supportingInfo",
                            json_pack("[o]", plain_ref("Appointment", str(rf, "appointment_id"))));
    if (str(rf, "summary"))
        json_object_set_new(sr, "note", json_pack("[{s:s}]", "text", str(rf, "summary")));
    return sr;
}

static json_t *entry(const char *type, const char *id, json_t *resource)
{
    char *url = g_strdup_printf(TM_FHIR_BASE "/%s/%s", type, id);
    json_t *e = json_pack("{s:s, s:o}", "fullUrl", url, "resource", resource);
    g_free(url);
    return e;
}

json_t *tm_fhir_referral(json_t *rf, json_t *encounter, const char *hospital_id)
{
    if (!json_is_object(rf) || !str(rf, "id") || !str(rf, "visit_id") || !str(rf, "patient_id") ||
        !str(rf, "state"))
        return NULL;
    const char *hospital = hospital_id && *hospital_id ? hospital_id : "hospital";
    json_t *entries =
        json_pack("[o]", entry("ServiceRequest", str(rf, "id"), service_request(rf, hospital)));
    if (encounter)
        json_array_append_new(entries,
                              entry("Encounter", str(rf, "visit_id"), json_incref(encounter)));
    return json_pack("{s:s, s:s, s:o}", "resourceType", "Bundle", "type", "collection", "entry",
                     entries);
}

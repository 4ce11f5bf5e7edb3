/*
 * fhir.c - visit record -> FHIR R4 Encounter (include/telemed/fhir.h).
 *
 * Reads only the fields tm_store_visit_record() produces; a field that is
 * missing or null is left out of the resource rather than invented. Owns
 * nothing beyond the JSON it returns.
 */
#include "telemed/fhir.h"
#include "telemed/common.h"

#include <glib.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define SYS_ACT_CODE "http://terminology.hl7.org/CodeSystem/v3-ActCode"
#define SYS_PARTICIPATION "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
#define SYS_PRIORITY "http://terminology.hl7.org/CodeSystem/v3-ActPriority"
#define SYS_MEDIA_TYPE "http://terminology.hl7.org/CodeSystem/media-type"
#define SYS_UCUM "http://unitsofmeasure.org"
#define SYS_ICD10 "http://hl7.org/fhir/sid/icd-10"
#define SYS_APPT_TYPE "http://terminology.hl7.org/CodeSystem/v2-0276"
#define SYS_SNOMED "http://snomed.info/sct"

static const char *str(json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v && *v ? v : NULL;
}

static bool has_int(json_t *o, const char *key)
{
    return json_is_integer(json_object_get(o, key));
}

static json_int_t num(json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

static json_t *coding(const char *system, const char *code, const char *display)
{
    json_t *c = json_pack("{s:s, s:s}", "system", system, "code", code);
    if (display)
        json_object_set_new(c, "display", json_string(display));
    return c;
}

static json_t *concept(const char *system, const char *code, const char *display)
{
    return json_pack("{s:[o]}", "coding", coding(system, code, display));
}

/* An identifier scoped to the hospital: urn-style system so it never
 * resolves to anything by accident. */
static json_t *identifier(const char *hospital, const char *kind, const char *value)
{
    char *system = g_strdup_printf(TM_FHIR_BASE "/%s/%s", hospital, kind);
    json_t *id = json_pack("{s:s, s:s}", "system", system, "value", value);
    g_free(system);
    return id;
}

static json_t *ref(const char *local_id)
{
    char *r = g_strdup_printf("#%s", local_id);
    json_t *o = json_pack("{s:s}", "reference", r);
    g_free(r);
    return o;
}

static json_t *period(const char *start, const char *end)
{
    json_t *p = json_object();
    if (start)
        json_object_set_new(p, "start", json_string(start));
    if (end)
        json_object_set_new(p, "end", json_string(end));
    return p;
}

/* R4 Encounter.status from the visit state. A visit row exists only from
 * check-in, so "planned" (booked, not arrived) is an Appointment's state,
 * not ours; waiting and offered are "arrived". */
static const char *encounter_status(const char *state)
{
    if (strcmp(state, "waiting") == 0 || strcmp(state, "offered") == 0)
        return "arrived";
    if (strcmp(state, "active") == 0)
        return "in-progress";
    if (strcmp(state, "ended") == 0)
        return "finished";
    if (strcmp(state, "cancelled") == 0)
        return "cancelled";
    return "unknown";
}

/* FHIR ids are [A-Za-z0-9-.]{1,64}; ours usually are too. */
static bool fhir_id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!g_ascii_isalnum(id[i]) && id[i] != '-' && id[i] != '.')
            return false;
    return true;
}

static json_t *media(json_t *rec, int n, const char *hospital)
{
    char local[32];
    snprintf(local, sizeof(local), "rec%d", n);
    const char *state = str(rec, "state") ? str(rec, "state") : "";
    const char *status = strcmp(state, "complete") == 0     ? "completed"
                         : strcmp(state, "recording") == 0  ? "in-progress"
                         : strcmp(state, "incomplete") == 0 ? "stopped"
                         : strcmp(state, "failed") == 0     ? "not-done"
                         : strcmp(state, "deleted") == 0    ? "completed"
                                                            : "unknown";
    json_t *m =
        json_pack("{s:s, s:s, s:s, s:o, s:o, s:o}", "resourceType", "Media", "id", local, "status",
                  status, "type", concept(SYS_MEDIA_TYPE, "video", "Video"), "subject",
                  ref("patient"), "encounter", json_pack("{s:s}", "reference", "#"));
    if (str(rec, "id"))
        json_object_set_new(m, "identifier",
                            json_pack("[o]", identifier(hospital, "recording", str(rec, "id"))));
    if (str(rec, "started_at"))
        json_object_set_new(m, "createdPeriod",
                            period(str(rec, "started_at"), str(rec, "finished_at")));
    if (has_int(rec, "duration_ms"))
        json_object_set_new(m, "duration", json_real((double)num(rec, "duration_ms") / 1000.0));

    json_t *content = json_pack("{s:s}", "contentType", "video/x-matroska");
    json_t *ext = json_array();
    bool deleted = strcmp(state, "deleted") == 0;
    if (deleted) {
        char *title = g_strdup_printf(
            "deleted %s by %s", str(rec, "deleted_at") ? str(rec, "deleted_at") : "",
            str(rec, "deleted_by_policy") ? str(rec, "deleted_by_policy") : "policy");
        json_object_set_new(content, "title", json_string(title));
        g_free(title);
    } else if (str(rec, "id")) {
        char *url = g_strdup_printf("/api/v1/recordings/%s", str(rec, "id"));
        json_object_set_new(content, "url", json_string(url));
        g_free(url);
    }
    /* Attachment.size is an unsignedInt (31 bits) in R4. */
    if (!deleted && has_int(rec, "size_bytes") && num(rec, "size_bytes") >= 0 &&
        num(rec, "size_bytes") <= 2147483647)
        json_object_set_new(content, "size", json_integer(num(rec, "size_bytes")));
    if (!deleted && str(rec, "sha256"))
        json_array_append_new(ext, json_pack("{s:s, s:s}", "url", TM_FHIR_EXT_SHA256, "valueString",
                                             str(rec, "sha256")));
    json_t *enc = json_object_get(rec, "encrypted");
    if (json_is_boolean(enc) || json_is_integer(enc))
        json_array_append_new(ext,
                              json_pack("{s:s, s:b}", "url", TM_FHIR_EXT_ENCRYPTED, "valueBoolean",
                                        json_is_true(enc) || json_integer_value(enc) != 0));
    if (json_array_size(ext))
        json_object_set_new(content, "extension", ext);
    else
        json_decref(ext);
    json_object_set_new(m, "content", content);
    if (str(rec, "failure"))
        json_object_set_new(m, "note", json_pack("[{s:s}]", "text", str(rec, "failure")));
    return m;
}

/* The review copy (review.h): a Media like the recording's, titled as what
 * it is, derived from the evidence for listening, not the evidence. Only a
 * complete one is worth listing. */
static json_t *review_media(json_t *ren, int n, const char *hospital)
{
    char local[32];
    snprintf(local, sizeof(local), "review%d", n);
    json_t *m =
        json_pack("{s:s, s:s, s:s, s:o, s:o, s:o}", "resourceType", "Media", "id", local, "status",
                  "completed", "type", concept(SYS_MEDIA_TYPE, "video", "Video"), "subject",
                  ref("patient"), "encounter", json_pack("{s:s}", "reference", "#"));
    json_object_set_new(m, "identifier",
                        json_pack("[o]", identifier(hospital, "rendition", str(ren, "id"))));
    if (has_int(ren, "duration_ms"))
        json_object_set_new(m, "duration", json_real((double)num(ren, "duration_ms") / 1000.0));
    char *url = g_strdup_printf("/api/v1/renditions/%s", str(ren, "id"));
    json_t *content = json_pack("{s:s, s:s, s:s}", "contentType", "video/webm", "url", url, "title",
                                "review copy: every participant, grid and mix");
    g_free(url);
    if (has_int(ren, "size_bytes") && num(ren, "size_bytes") >= 0 &&
        num(ren, "size_bytes") <= 2147483647)
        json_object_set_new(content, "size", json_integer(num(ren, "size_bytes")));
    if (str(ren, "sha256"))
        json_object_set_new(content, "extension",
                            json_pack("[{s:s, s:s}]", "url", TM_FHIR_EXT_SHA256, "valueString",
                                      str(ren, "sha256")));
    json_object_set_new(m, "content", content);
    return m;
}

static json_t *communication(json_t *msg, int n, const char *hospital, const char *doctor_id)
{
    char local[32];
    snprintf(local, sizeof(local), "msg%d", n);
    json_t *c = json_pack("{s:s, s:s, s:s, s:o, s:o}", "resourceType", "Communication", "id", local,
                          "status", "completed", "subject", ref("patient"), "encounter",
                          json_pack("{s:s}", "reference", "#"));
    if (str(msg, "sent_at"))
        json_object_set_new(c, "sent", json_string(str(msg, "sent_at")));
    const char *role = str(msg, "sender_role") ? str(msg, "sender_role") : "";
    const char *sender = str(msg, "sender_id");
    if (strcmp(role, "patient") == 0)
        json_object_set_new(c, "sender", ref("patient"));
    else if (strcmp(role, "doctor") == 0 && doctor_id && sender && strcmp(sender, doctor_id) == 0)
        json_object_set_new(c, "sender", ref("doctor"));
    else if (sender)
        json_object_set_new(c, "sender",
                            json_pack("{s:o}", "identifier", identifier(hospital, "user", sender)));
    json_object_set_new(
        c, "payload",
        json_pack("[{s:s}]", "contentString", str(msg, "body") ? str(msg, "body") : ""));
    return c;
}

/* The participants beyond patient and attending (issue 17), each once, in
 * the order they first joined: calls fn with the user's id, visit role,
 * first join, last leave (NULL while in the visit) and its index. */
static void foreach_party(json_t *rec,
                          void (*fn)(const char *, const char *, const char *, const char *, int,
                                     void *),
                          void *data)
{
    static const char *const roles[] = {"consulting", "interpreter", "nurse", "guest"};
    GPtrArray *done = g_ptr_array_new();
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(rec, "participants"), i, p)
    {
        const char *u = str(p, "user_id"), *vr = str(p, "visit_role");
        bool party = false;
        for (size_t k = 0; vr && k < TM_ARRAY_LEN(roles); k++)
            party = party || strcmp(vr, roles[k]) == 0;
        bool seen = false;
        for (guint k = 0; u && k < done->len; k++)
            seen = seen || strcmp(g_ptr_array_index(done, k), u) == 0;
        if (!u || !party || seen)
            continue;
        g_ptr_array_add(done, (gpointer)u);
        const char *left = NULL;
        size_t j;
        json_t *q;
        json_array_foreach(json_object_get(rec, "participants"), j, q)
        {
            if (str(q, "user_id") && strcmp(str(q, "user_id"), u) == 0)
                left = str(q, "left_at");
        }
        fn(u, vr, str(p, "joined_at"), left, (int)done->len, data);
    }
    g_ptr_array_free(done, TRUE);
}

static void party_participant(const char *user, const char *visit_role, const char *joined,
                              const char *left, int n, void *data)
{
    (void)user;
    json_t *list = data;
    char local[16];
    snprintf(local, sizeof(local), "party%d", n);
    /* v3 ParticipationType: a consultant, a translator, anyone else a participant. */
    json_t *type = strcmp(visit_role, "consulting") == 0
                       ? concept(SYS_PARTICIPATION, "CON", "consultant")
                   : strcmp(visit_role, "interpreter") == 0
                       ? concept(SYS_PARTICIPATION, "TRANS", "Translator")
                       : concept(SYS_PARTICIPATION, "PART", "Participation");
    json_object_set_new(type, "text", json_string(visit_role));
    json_t *part = json_pack("{s:[o], s:o}", "type", type, "individual", ref(local));
    if (joined)
        json_object_set_new(part, "period", period(joined, left));
    json_array_append_new(list, part);
}

static void add_party(json_t *e, json_t *rec)
{
    json_t *list = json_object_get(e, "participant");
    bool fresh = list == NULL;
    if (fresh)
        list = json_array();
    foreach_party(rec, party_participant, list);
    if (fresh && json_array_size(list))
        json_object_set_new(e, "participant", list);
    else if (fresh)
        json_decref(list);
}

typedef struct party_ctx {
    json_t *contained;
    const char *hospital;
} party_ctx;

static void party_resource(const char *user, const char *visit_role, const char *joined,
                           const char *left, int n, void *data)
{
    (void)joined;
    (void)left;
    party_ctx *c = data;
    char local[16];
    snprintf(local, sizeof(local), "party%d", n);
    bool guest = strcmp(visit_role, "guest") == 0;
    /* A guest is family (RelatedPerson, known to the patient by name only
     * in the record); staff are Practitioners of the hospital's registry. */
    json_t *o = json_pack("{s:s, s:s, s:[o]}", "resourceType",
                          guest ? "RelatedPerson" : "Practitioner", "id", local, "identifier",
                          identifier(c->hospital, guest ? "guest" : "doctor", user));
    if (guest)
        json_object_set_new(o, "patient", ref("patient"));
    json_array_append_new(c->contained, o);
}

static void add_party_resources(json_t *contained, json_t *rec, const char *hospital)
{
    party_ctx c = {.contained = contained, .hospital = hospital};
    foreach_party(rec, party_resource, &c);
}

/* The consultation request the visit was held for (issue 18) as a
 * ServiceRequest: who asked whom, why and when, with the question and the
 * specialist's signed opinion as its notes. The Encounter is basedOn it. */
static json_t *consultation_request(json_t *c, const char *hospital)
{
    const char *state = str(c, "state") ? str(c, "state") : "";
    const char *urgency = str(c, "urgency") ? str(c, "urgency") : "routine";
    json_t *sr =
        json_pack("{s:s, s:s, s:[o], s:s, s:s, s:[o], s:s, s:o}", "resourceType", "ServiceRequest",
                  "id", "consultation", "identifier",
                  identifier(hospital, "consultation", str(c, "consultation_id") ?: ""), "status",
                  strcmp(state, "completed") == 0 ? "completed" : "active", "intent", "order",
                  "category", concept(SYS_SNOMED, "11429006", "Consultation"), "priority",
                  strcmp(urgency, "emergency") == 0 ? "stat" : urgency, "subject", ref("patient"));
    if (str(c, "requester_id"))
        json_object_set_new(sr, "requester",
                            json_pack("{s:o}", "identifier",
                                      identifier(hospital, "doctor", str(c, "requester_id"))));
    if (str(c, "specialist_id"))
        json_object_set_new(sr, "performer",
                            json_pack("[{s:o}]", "identifier",
                                      identifier(hospital, "doctor", str(c, "specialist_id"))));
    if (str(c, "created_at"))
        json_object_set_new(sr, "authoredOn", json_string(str(c, "created_at")));
    if (str(c, "slot_at"))
        json_object_set_new(sr, "occurrenceDateTime", json_string(str(c, "slot_at")));
    if (str(c, "reason"))
        json_object_set_new(sr, "reasonCode", json_pack("[{s:s}]", "text", str(c, "reason")));
    json_t *info = json_array();
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(c, "attachments"), i, a)
    {
        if (json_is_string(a))
            json_array_append_new(info, json_pack("{s:O}", "display", a));
    }
    if (json_array_size(info))
        json_object_set_new(sr, "supportingInfo", info);
    else
        json_decref(info);
    json_t *notes = json_array();
    if (str(c, "question"))
        json_array_append_new(notes, json_pack("{s:o, s:s}", "authorReference",
                                               json_pack("{s:o}", "identifier",
                                                         identifier(hospital, "doctor",
                                                                    str(c, "requester_id") ?: "")),
                                               "text", str(c, "question")));
    if (str(c, "opinion") && str(c, "opinion_signed_at"))
        json_array_append_new(
            notes,
            json_pack("{s:o, s:s, s:s}", "authorReference",
                      json_pack("{s:o}", "identifier",
                                identifier(hospital, "doctor", str(c, "specialist_id") ?: "")),
                      "time", str(c, "opinion_signed_at"), "text", str(c, "opinion")));
    json_object_set_new(sr, "note", notes);
    return sr;
}

/* A visit handed on (issue 18): the parts before the last, each doctor an
 * attender for their own part, in front of the doctor attending last; the
 * contained Practitioners "doctor-part<n>" with them. */
static void add_earlier_parts(json_t *e, json_t *contained, json_t *rec, const char *hospital)
{
    json_t *parts = json_object_get(rec, "parts");
    size_t n = json_array_size(parts);
    json_t *list = json_object_get(e, "participant");
    for (size_t i = 0; n > 1 && i + 1 < n; i++) {
        json_t *p = json_array_get(parts, i);
        const char *doc = str(p, "doctor_id");
        if (!doc)
            continue;
        char local[32];
        snprintf(local, sizeof(local), "doctor-part%zu", i + 1);
        json_t *part = json_pack(
            "{s:[o], s:o, s:o}", "type", concept(SYS_PARTICIPATION, "ATND", "attender"),
            "individual", ref(local), "period", period(str(p, "started_at"), str(p, "ended_at")));
        if (!list) {
            list = json_array();
            json_object_set_new(e, "participant", list);
        }
        json_array_insert_new(list, i, part);
        json_array_append_new(contained,
                              json_pack("{s:s, s:s, s:[o]}", "resourceType", "Practitioner", "id",
                                        local, "identifier", identifier(hospital, "doctor", doc)));
    }
}

/* When the doctor attending last began: their part's start after a
 * transfer, else the visit's accept. */
static const char *last_part_start(json_t *rec)
{
    json_t *parts = json_object_get(rec, "parts");
    size_t n = json_array_size(parts);
    if (n > 1 && str(json_array_get(parts, n - 1), "started_at"))
        return str(json_array_get(parts, n - 1), "started_at");
    return str(rec, "accepted_at");
}

json_t *tm_fhir_encounter(json_t *rec, const char *hospital_id)
{
    const char *id = str(rec, "id"), *patient = str(rec, "patient_id"), *state = str(rec, "state");
    if (!json_is_object(rec) || !id || !patient || !state)
        return NULL;
    const char *hospital = hospital_id && *hospital_id ? hospital_id : "hospital";
    const char *doctor = str(rec, "doctor_id");

    json_t *e = json_pack("{s:s}", "resourceType", "Encounter");
    if (fhir_id_ok(id))
        json_object_set_new(e, "id", json_string(id));
    json_object_set_new(e, "identifier", json_pack("[o]", identifier(hospital, "visit", id)));
    json_object_set_new(e, "status", json_string(encounter_status(state)));
    /* class is a single Coding in R4 (a CodeableConcept only from R5). */
    json_object_set_new(e, "class", coding(SYS_ACT_CODE, "VR", "virtual"));
    const char *kind = str(rec, "kind");
    if (kind)
        json_object_set_new(
            e, "type",
            json_pack("[{s:s}]", "text",
                      strcmp(kind, "follow_up") == 0 ? "follow-up visit" : "first visit"));
    if (str(rec, "dept_name") || str(rec, "dept_id"))
        json_object_set_new(
            e, "serviceType",
            json_pack("{s:s}", "text",
                      str(rec, "dept_name") ? str(rec, "dept_name") : str(rec, "dept_id")));
    bool urgent = json_is_true(json_object_get(rec, "urgent"));
    json_object_set_new(e, "priority",
                        urgent ? concept(SYS_PRIORITY, "UR", "urgent")
                               : concept(SYS_PRIORITY, "R", "routine"));
    json_object_set_new(e, "subject", ref("patient"));

    /* The doctor attended from acceptance to the end (or their leaving). */
    if (doctor) {
        const char *left = NULL;
        size_t i;
        json_t *p;
        json_array_foreach(json_object_get(rec, "participants"), i, p)
        {
            const char *u = str(p, "user_id"), *role = str(p, "role");
            if (u && role && strcmp(u, doctor) == 0 && strcmp(role, "doctor") == 0 &&
                str(p, "left_at"))
                left = str(p, "left_at");
        }
        json_t *part =
            json_pack("{s:[o], s:o}", "type", concept(SYS_PARTICIPATION, "ATND", "attender"),
                      "individual", ref("doctor"));
        if (last_part_start(rec))
            json_object_set_new(part, "period",
                                period(last_part_start(rec), left ? left : str(rec, "ended_at")));
        json_object_set_new(e, "participant", json_pack("[o]", part));
    }
    add_party(e, rec);

    /* The consultation runs from the doctor's acceptance to the end; a
     * visit never accepted spans its waiting time. */
    const char *start = str(rec, "accepted_at") ? str(rec, "accepted_at") : str(rec, "checkin_at");
    if (start)
        json_object_set_new(e, "period", period(start, str(rec, "ended_at")));
    if (has_int(rec, "duration_ms") && num(rec, "duration_ms") >= 0) {
        double minutes = (double)num(rec, "duration_ms") / 60000.0;
        json_object_set_new(e, "length",
                            json_pack("{s:f, s:s, s:s, s:s}", "value",
                                      ((json_int_t)(minutes * 10 + 0.5)) / 10.0, "unit", "min",
                                      "system", SYS_UCUM, "code", "min"));
    }

    /* reasonCode: each distinct ICD-10 code the doctor's notes carry. */
    json_t *reasons = json_array();
    GHashTable *seen = g_hash_table_new(g_str_hash, g_str_equal);
    size_t i;
    json_t *note;
    json_array_foreach(json_object_get(rec, "notes"), i, note)
    {
        const char *code = str(note, "diagnosis_code");
        if (code && !g_hash_table_contains(seen, code)) {
            g_hash_table_add(seen, (gpointer)code);
            json_array_append_new(reasons, concept(SYS_ICD10, code, NULL));
        }
    }
    g_hash_table_destroy(seen);
    if (json_array_size(reasons))
        json_object_set_new(e, "reasonCode", reasons);
    else
        json_decref(reasons);

    if (str(rec, "appointment_id")) {
        char *a = g_strdup_printf("Appointment/%s", str(rec, "appointment_id"));
        json_object_set_new(e, "appointment", json_pack("[{s:s}]", "reference", a));
        g_free(a);
    }
    json_object_set_new(e, "serviceProvider",
                        json_pack("{s:{s:s, s:s}}", "identifier", "system",
                                  TM_FHIR_BASE "/hospital", "value", hospital));
    if (str(rec, "end_reason"))
        json_object_set_new(e, "extension",
                            json_pack("[{s:s, s:s}]", "url", TM_FHIR_EXT_END_REASON, "valueString",
                                      str(rec, "end_reason")));

    json_t *contained = json_array();
    json_array_append_new(contained,
                          json_pack("{s:s, s:s, s:[o]}", "resourceType", "Patient", "id", "patient",
                                    "identifier", identifier(hospital, "patient", patient)));
    if (doctor)
        json_array_append_new(contained, json_pack("{s:s, s:s, s:[o]}", "resourceType",
                                                   "Practitioner", "id", "doctor", "identifier",
                                                   identifier(hospital, "doctor", doctor)));
    add_party_resources(contained, rec, hospital);
    json_t *consult = json_object_get(rec, "consultation");
    if (json_is_object(consult)) {
        json_array_append_new(contained, consultation_request(consult, hospital));
        json_object_set_new(e, "basedOn", json_pack("[{s:s}]", "reference", "#consultation"));
    }
    add_earlier_parts(e, contained, rec, hospital);
    json_t *item;
    json_array_foreach(json_object_get(rec, "recordings"), i, item)
        json_array_append_new(contained, media(item, (int)i + 1, hospital));
    int reviews = 0;
    json_array_foreach(json_object_get(rec, "renditions"), i, item)
    {
        const char *ren_state = str(item, "state");
        if (ren_state && strcmp(ren_state, "complete") == 0 && str(item, "id"))
            json_array_append_new(contained, review_media(item, ++reviews, hospital));
    }
    json_array_foreach(json_object_get(rec, "chat"), i, item)
        json_array_append_new(contained, communication(item, (int)i + 1, hospital, doctor));
    json_object_set_new(e, "contained", contained);
    return e;
}

/* Parses the store's RFC 3339 UTC text ("2026-11-25T12:00:00.000Z") back
 * to epoch ms; -1 if it is not that. */
static int64_t parse_time(const char *t)
{
    if (!t)
        return -1;
    GDateTime *dt = g_date_time_new_from_iso8601(t, NULL);
    if (!dt)
        return -1;
    int64_t ms = g_date_time_to_unix(dt) * 1000 + g_date_time_get_microsecond(dt) / 1000;
    g_date_time_unref(dt);
    return ms;
}

json_t *tm_fhir_appointment(json_t *a, const char *hospital_id, int slot_minutes)
{
    const char *id = str(a, "id"), *patient = str(a, "patient_id"), *status = str(a, "status");
    int64_t start_ms = parse_time(str(a, "slot_at"));
    if (!json_is_object(a) || !id || !patient || !status || start_ms < 0)
        return NULL;
    const char *hospital = hospital_id && *hospital_id ? hospital_id : "hospital";
    json_t *o = json_pack("{s:s}", "resourceType", "Appointment");
    if (fhir_id_ok(id))
        json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "identifier", json_pack("[o]", identifier(hospital, "appointment", id)));
    /* The store's statuses are R4 codes already; anything else is "booked"
     * at worst, which the checks below would catch in a test. */
    static const char *const r4[] = {"booked", "arrived", "fulfilled", "cancelled", "noshow"};
    const char *code = "booked";
    for (size_t i = 0; i < sizeof(r4) / sizeof(r4[0]); i++)
        if (strcmp(status, r4[i]) == 0)
            code = r4[i];
    json_object_set_new(o, "status", json_string(code));
    const char *kind = str(a, "kind");
    if (kind)
        json_object_set_new(o, "appointmentType",
                            strcmp(kind, "follow_up") == 0
                                ? concept(SYS_APPT_TYPE, "FOLLOWUP",
                                          "A follow up visit from a previous appointment")
                                : concept(SYS_APPT_TYPE, "ROUTINE", "Routine appointment"));
    if (str(a, "dept_id"))
        json_object_set_new(o, "serviceType", json_pack("[{s:s}]", "text", str(a, "dept_id")));
    char start[40], end[40];
    tm_rfc3339(start_ms, start, sizeof(start));
    tm_rfc3339(start_ms + (int64_t)(slot_minutes > 0 ? slot_minutes : 15) * 60000, end,
               sizeof(end));
    json_object_set_new(o, "start", json_string(start));
    json_object_set_new(o, "end", json_string(end));
    json_object_set_new(o, "minutesDuration", json_integer(slot_minutes > 0 ? slot_minutes : 15));
    if (str(a, "created_at"))
        json_object_set_new(o, "created", json_string(str(a, "created_at")));
    json_t *parts = json_array();
    json_array_append_new(parts, json_pack("{s:{s:s, s:o}, s:s}", "actor", "type", "Patient",
                                           "identifier", identifier(hospital, "patient", patient),
                                           "status", "accepted"));
    if (str(a, "doctor_id"))
        json_array_append_new(parts, json_pack("{s:{s:s, s:o}, s:s}", "actor", "type",
                                               "Practitioner", "identifier",
                                               identifier(hospital, "doctor", str(a, "doctor_id")),
                                               "status", "accepted"));
    json_object_set_new(o, "participant", parts);
    return o;
}

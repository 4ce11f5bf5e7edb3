/*
 * store_suite_institution.c - the institutions part of the store contract
 * (issue 18), through telemed/store.h only: the alliance's members, which
 * department belongs to which (none = the core, the store's hospital_id),
 * shifts kept inside a doctor's own institution, the visit list of one
 * institution and the institution in every regulator event.
 */
#include "store_suite.h"

#include "telemed/common.h"
#include "tm_test.h"

#include <glib.h>
#include <string.h>

static tm_institution member(const char *id, const char *name, const char *org_code,
                             const char *kind)
{
    tm_institution in = {0};
    g_strlcpy(in.id, id, sizeof(in.id));
    g_strlcpy(in.name, name, sizeof(in.name));
    g_strlcpy(in.org_code, org_code, sizeof(in.org_code));
    g_strlcpy(in.level, "2A", sizeof(in.level));
    g_strlcpy(in.kind, kind, sizeof(in.kind));
    return in;
}

static const char *str_of(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* The core and a county hospital, cardio in the core and west-im in the
 * county hospital, with a doctor each. */
static void seed_alliance(tm_store *s)
{
    tm_institution core = member(tm_store_hospital_id(s), "Core Hospital", "ORG-CORE", "core");
    tm_institution west = member("west", "County West", "ORG-WEST", "hospital");
    CHECK_EQ_INT(tm_store_institution_put(s, &core), 0);
    CHECK_EQ_INT(tm_store_institution_put(s, &west), 0);
    CHECK_EQ_INT(tm_store_dept_put(s, "cardio", "Cardiology"), 0);
    CHECK_EQ_INT(tm_store_dept_put(s, "west-im", "Internal Medicine"), 0);
    CHECK_EQ_INT(tm_store_dept_set_institution(s, "west-im", "west"), 0);
    CHECK_EQ_INT(tm_store_doctor_put(s, "d-core", "Dr Core", "cardio", "LIC1", NULL), 0);
    CHECK_EQ_INT(tm_store_doctor_put(s, "d-west", "Dr West", "west-im", "LIC2", NULL), 0);
}

static void t_institution_members(const store_backend *b)
{
    tm_store *s = b->open("institutions");
    const char *core_id = tm_store_hospital_id(s);
    /* The core is the hospital_id's, and only it is core. */
    tm_institution bad = member(core_id, "Core", "", "clinic");
    CHECK_EQ_INT(tm_store_institution_put(s, &bad), TM_EINVAL);
    bad = member("west", "County West", "", "core");
    CHECK_EQ_INT(tm_store_institution_put(s, &bad), TM_EINVAL);
    bad = member("west", "", "", "hospital");
    CHECK_EQ_INT(tm_store_institution_put(s, &bad), TM_EINVAL);
    bad = member("west", "County West", "", "pharmacy");
    CHECK_EQ_INT(tm_store_institution_put(s, &bad), TM_EINVAL);
    tm_institution got;
    CHECK_EQ_INT(tm_store_institution_get(s, "west", &got), TM_ENOTFOUND);

    seed_alliance(s);
    tm_institution renamed =
        member("west", "County West People's Hospital", "ORG-WEST", "hospital");
    CHECK_EQ_INT(tm_store_institution_put(s, &renamed), 0);
    CHECK_EQ_INT(tm_store_institution_get(s, "west", &got), 0);
    CHECK_STR(got.name, "County West People's Hospital");
    CHECK_STR(got.org_code, "ORG-WEST");
    CHECK_STR(got.level, "2A");
    CHECK_STR(got.kind, "hospital");

    json_t *list = tm_store_institution_list(s);
    CHECK_EQ_INT(json_array_size(list), 2);
    CHECK_STR(str_of(json_array_get(list, 0), "id"), core_id); /* the core first */
    CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(list, 0), "departments")), 1);
    CHECK_STR(str_of(json_array_get(list, 1), "id"), "west");
    CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(list, 1), "departments")), 1);
    json_decref(list);
    tm_store_free(s);
}

static void t_institution_departments(const store_backend *b)
{
    tm_store *s = b->open("institution_depts");
    seed_alliance(s);
    char inst[64];
    CHECK_EQ_INT(tm_store_dept_institution(s, "cardio", inst), 0);
    CHECK_STR(inst, tm_store_hospital_id(s)); /* none of its own: the core's */
    CHECK_EQ_INT(tm_store_dept_institution(s, "west-im", inst), 0);
    CHECK_STR(inst, "west");
    CHECK_EQ_INT(tm_store_dept_institution(s, "nodept", inst), TM_ENOTFOUND);
    CHECK_EQ_INT(tm_store_dept_set_institution(s, "cardio", "nowhere"), TM_EINVAL);
    CHECK_EQ_INT(tm_store_dept_set_institution(s, "nodept", "west"), TM_ENOTFOUND);
    CHECK_EQ_INT(tm_store_dept_institution(s, "cardio", inst), 0); /* the refusal changed nothing */
    CHECK_STR(inst, tm_store_hospital_id(s));

    json_t *depts = tm_store_dept_list(s);
    CHECK_STR(str_of(json_array_get(depts, 0), "institution_id"), tm_store_hospital_id(s));
    CHECK_STR(str_of(json_array_get(depts, 1), "institution_id"), "west");
    json_decref(depts);
    json_t *docs = tm_store_doctor_list(s, NULL);
    CHECK_STR(str_of(json_array_get(docs, 0), "id"), "d-core");
    CHECK_STR(str_of(json_array_get(docs, 0), "institution_id"), tm_store_hospital_id(s));
    CHECK_STR(str_of(json_array_get(docs, 1), "institution_id"), "west");
    json_decref(docs);
    json_t *ids = tm_store_institution_depts(s, "west");
    CHECK_EQ_INT(json_array_size(ids), 1);
    CHECK_STR(json_string_value(json_array_get(ids, 0)), "west-im");
    json_decref(ids);

    /* Moved back to the core by naming it. */
    CHECK_EQ_INT(tm_store_dept_set_institution(s, "west-im", tm_store_hospital_id(s)), 0);
    CHECK_EQ_INT(tm_store_dept_institution(s, "west-im", inst), 0);
    CHECK_STR(inst, tm_store_hospital_id(s));
    tm_store_free(s);
}

/* A doctor works in their own institution's queues: a shift in another
 * institution's department is refused and nothing is written. */
static void t_institution_shifts(const store_backend *b)
{
    tm_store *s = b->open("institution_shifts");
    seed_alliance(s);
    int64_t now = tm_now_ms();
    char id[64];
    CHECK_EQ_INT(tm_store_shift_add(s, "d-core", "west-im", now, now + 3600000, 1, id), TM_EINVAL);
    CHECK(strstr(tm_store_errmsg(s), "another institution") != NULL);
    json_t *shifts = tm_store_shift_list(s, "d-core", NULL, 0, 0);
    CHECK_EQ_INT(json_array_size(shifts), 0);
    json_decref(shifts);
    CHECK_EQ_INT(tm_store_shift_add(s, "d-west", "west-im", now, now + 3600000, 1, id), 0);
    CHECK_EQ_INT(tm_store_shift_add(s, "d-core", "cardio", now, now + 3600000, 1, id), 0);
    tm_store_free(s);
}

static void checkin(tm_store *s, tm_visit *v, const char *patient, const char *dept, int64_t at)
{
    memset(v, 0, sizeof(*v));
    g_strlcpy(v->patient_id, patient, sizeof(v->patient_id));
    g_strlcpy(v->dept_id, dept, sizeof(v->dept_id));
    g_strlcpy(v->kind, "first", sizeof(v->kind));
    v->checkin_ms = at;
    CHECK_EQ_INT(tm_store_visit_checkin(s, v, "ua/1"), 0);
}

/* The regulator event of a visit carries its institution. */
static void check_event_institution(tm_store *s, const char *visit_id, const char *id,
                                    const char *name, const char *org_code)
{
    tm_outbox_event *ev = NULL;
    size_t n = 0;
    CHECK_EQ_INT(tm_outbox_next_batch(s, INT64_MAX, 1000, &ev, &n), 0);
    json_t *data = NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(ev[i].visit_id, visit_id) == 0 && strcmp(ev[i].type, "visit.checked_in") == 0)
            data = json_loadb(ev[i].payload, ev[i].payload_len, 0, NULL);
    tm_outbox_events_free(ev, n);
    json_t *inst = json_object_get(data, "institution");
    CHECK(json_is_object(inst));
    CHECK_STR(str_of(inst, "id"), id);
    CHECK_STR(str_of(inst, "name"), name);
    CHECK_STR(str_of(inst, "org_code"), org_code);
    json_decref(data);
}

static void t_institution_visits(const store_backend *b)
{
    tm_store *s = b->open("institution_visits");
    seed_alliance(s);
    int64_t t0 = 1764072000000LL;
    tm_visit core_visit, west_visit;
    checkin(s, &core_visit, "p1", "cardio", t0);
    checkin(s, &west_visit, "p2", "west-im", t0 + 1000);

    json_t *west = tm_store_visit_list_in(s, "west", NULL, NULL, NULL, NULL, 0, 0, 0, 0);
    CHECK_EQ_INT(json_array_size(west), 1);
    CHECK_STR(str_of(json_array_get(west, 0), "id"), west_visit.id);
    json_decref(west);
    json_t *core =
        tm_store_visit_list_in(s, tm_store_hospital_id(s), NULL, NULL, NULL, NULL, 0, 0, 0, 0);
    CHECK_EQ_INT(json_array_size(core), 1);
    CHECK_STR(str_of(json_array_get(core, 0), "id"), core_visit.id);
    json_decref(core);
    /* The other filters still apply inside the institution. */
    json_t *none = tm_store_visit_list_in(s, "west", NULL, NULL, NULL, "p1", 0, 0, 0, 0);
    CHECK_EQ_INT(json_array_size(none), 0);
    json_decref(none);

    check_event_institution(s, west_visit.id, "west", "County West", "ORG-WEST");
    check_event_institution(s, core_visit.id, tm_store_hospital_id(s), "Core Hospital", "ORG-CORE");
    tm_store_free(s);
}

void store_suite_institutions(const store_backend *b, const char *dir)
{
    (void)dir;
    t_institution_members(b);
    t_institution_departments(b);
    t_institution_shifts(b);
    t_institution_visits(b);
}

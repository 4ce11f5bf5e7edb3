/*
 * test_transfer_store.c - transfer during a visit and referrals (issue 18)
 * through the real SQLite store and the FHIR export: a visit handed from one
 * doctor to another keeps its first accept, closes the first part with its
 * event, and reads back as parts and as an Encounter with an attender per
 * part; every refused transfer or referral writes nothing; a referral
 * declined, re-sent and accepted, and its ServiceRequest bundle.
 */
#include "telemed/common.h"
#include "telemed/fhir.h"
#include "telemed/store.h"
#include "tm_test.h"
#ifdef TM_STORE_PG
#include "pg_fixture.h"
#endif

#include <glib.h>

static char *dir;
static int64_t t0;

static tm_store *open_store(const char *name)
{
#ifdef TM_STORE_PG
    char *path = pg_fixture_url(name), *err = NULL;
#else
    char *path = g_build_filename(dir, name, NULL), *err = NULL;
#endif
    tm_store *s = tm_store_open(path, "hosp-1", &err);
    CHECK(s != NULL);
    g_free(path);
    return s;
}

static void seed(tm_store *s)
{
    CHECK_EQ_INT(tm_store_dept_put(s, "cardio", "Cardiology"), 0);
    CHECK_EQ_INT(tm_store_dept_put(s, "neuro", "Neurology"), 0);
    CHECK_EQ_INT(tm_store_doctor_put(s, "d1", "Dr One", "cardio", "LIC1", NULL), 0);
    CHECK_EQ_INT(tm_store_doctor_put(s, "d2", "Dr Two", "neuro", "LIC2", NULL), 0);
    CHECK_EQ_INT(tm_store_doctor_put(s, "n1", "Nurse", "neuro", NULL, NULL), 0);
    CHECK_EQ_INT(tm_store_doctor_set_kind(s, "n1", "nurse"), 0);
}

/* A visit of p-1 in cardio accepted by d1 at t0 + 1 s. */
static void live_visit(tm_store *s, tm_visit *v)
{
    memset(v, 0, sizeof(*v));
    g_strlcpy(v->patient_id, "p-1", sizeof(v->patient_id));
    g_strlcpy(v->dept_id, "cardio", sizeof(v->dept_id));
    g_strlcpy(v->kind, "follow_up", sizeof(v->kind));
    v->checkin_ms = t0;
    CHECK_EQ_INT(tm_store_visit_checkin(s, v, "ua/p"), 0);
    CHECK_EQ_INT(tm_store_visit_offer(s, v->id, "d1", t0 + 500), 0);
    CHECK_EQ_INT(tm_store_visit_accept(s, v->id, "d1", "ua/d1", t0 + 1000), 0);
}

static int64_t outbox_rows(tm_store *s)
{
    int64_t n = 0;
    CHECK_EQ_INT(tm_store_outbox_count(s, "pending", &n), 0);
    return n;
}

static size_t transfers(tm_store *s, const char *visit_id)
{
    json_t *t = tm_store_visit_transfers(s, visit_id);
    CHECK(t != NULL);
    size_t n = json_array_size(t);
    json_decref(t);
    return n;
}

/* The newest outbox event of type, as its payload object (new reference). */
static json_t *last_event(tm_store *s, const char *type)
{
    tm_outbox_event *ev = NULL;
    size_t n = 0;
    CHECK_EQ_INT(tm_outbox_next_batch(s, tm_now_ms() + 1000, 1000, &ev, &n), 0);
    json_t *found = NULL;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(ev[i].type, type) == 0) {
            json_decref(found);
            found = json_loads(ev[i].payload, 0, NULL);
        }
    }
    tm_outbox_events_free(ev, n);
    CHECK(found != NULL);
    return found;
}

static const char *str(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static void test_refused_transfers_write_nothing(void)
{
    tm_store *s = open_store("refused.db");
    seed(s);
    tm_visit v;
    live_visit(s, &v);
    int64_t rows = outbox_rows(s);
    const int64_t now = t0 + 2000;
    char big[TM_TRANSFER_REASON_MAX + 2];
    memset(big, 'r', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    CHECK_EQ_INT(tm_store_visit_transfer(s, v.id, "d2", "neuro", NULL, "x", now, NULL), TM_EPERM);
    CHECK_EQ_INT(tm_store_visit_transfer(s, v.id, "d1", "nowhere", NULL, "x", now, NULL),
                 TM_ENOTFOUND);
    CHECK_EQ_INT(tm_store_visit_transfer(s, v.id, "d1", "neuro", "d-none", "x", now, NULL),
                 TM_ENOTFOUND);
    CHECK_EQ_INT(tm_store_visit_transfer(s, v.id, "d1", "neuro", "n1", "x", now, NULL),
                 TM_ENOTFOUND); /* a nurse takes no patients */
    CHECK_EQ_INT(tm_store_visit_transfer(s, v.id, "d1", "cardio", "d1", "x", now, NULL), TM_EINVAL);
    CHECK_EQ_INT(tm_store_visit_transfer(s, v.id, "d1", "neuro", NULL, "", now, NULL), TM_EINVAL);
    CHECK_EQ_INT(tm_store_visit_transfer(s, v.id, "d1", "neuro", NULL, big, now, NULL), TM_EINVAL);
    CHECK_EQ_INT(tm_store_visit_transfer(s, "v-none", "d1", "neuro", NULL, "x", now, NULL),
                 TM_ENOTFOUND);
    CHECK_EQ_INT(outbox_rows(s), rows);
    CHECK_EQ_INT(transfers(s, v.id), 0);
    tm_visit now_v;
    CHECK_EQ_INT(tm_store_visit_get(s, v.id, &now_v), 0);
    CHECK_STR(now_v.state, "active");
    /* An ended visit is not transferred. */
    CHECK_EQ_INT(tm_store_visit_end(s, v.id, "completed", "d1", now), 0);
    rows = outbox_rows(s);
    CHECK_EQ_INT(tm_store_visit_transfer(s, v.id, "d1", "neuro", NULL, "x", now + 1, NULL),
                 TM_ECONFLICT);
    CHECK_EQ_INT(outbox_rows(s), rows);
    tm_store_free(s);
}

static void test_transfer_parts_and_encounter(void)
{
    tm_store *s = open_store("parts.db");
    seed(s);
    tm_visit v;
    live_visit(s, &v);
    char tr[64];
    CHECK_EQ_INT(
        tm_store_visit_transfer(s, v.id, "d1", "neuro", "d2", "stroke signs", t0 + 5000, tr), 0);
    CHECK(g_str_has_prefix(tr, "tr-"));
    tm_visit w;
    CHECK_EQ_INT(tm_store_visit_get(s, v.id, &w), 0);
    CHECK_STR(w.state, "waiting");
    CHECK_STR(w.dept_id, "neuro");
    CHECK_STR(w.doctor_id, "");
    CHECK(w.accepted_ms == t0 + 1000);
    json_t *ev = last_event(s, "visit.transferred");
    json_t *t = json_object_get(ev, "transfer");
    CHECK_STR(str(t, "id"), tr);
    CHECK_STR(str(t, "from_doctor_id"), "d1");
    CHECK_STR(str(t, "from_department_id"), "cardio");
    CHECK_STR(str(t, "to_department_id"), "neuro");
    CHECK_STR(str(t, "to_doctor_id"), "d2");
    CHECK_STR(str(t, "reason"), "stroke signs");
    CHECK(json_is_null(json_object_get(t, "accepted_by")));
    CHECK_STR(str(ev, "state"), "waiting");
    json_decref(ev);
    /* The second accept: the transfer is taken, the visit keeps its start. */
    CHECK_EQ_INT(tm_store_visit_offer(s, v.id, "d2", t0 + 6000), 0);
    CHECK_EQ_INT(tm_store_visit_accept(s, v.id, "d2", "ua/d2", t0 + 7000), 0);
    CHECK_EQ_INT(tm_store_visit_get(s, v.id, &w), 0);
    CHECK(w.accepted_ms == t0 + 1000);
    ev = last_event(s, "visit.started");
    CHECK_STR(str(json_object_get(ev, "transfer"), "accepted_by"), "d2");
    CHECK_STR(str(ev, "doctor_id"), "d2");
    json_decref(ev);
    CHECK_EQ_INT(tm_store_visit_end(s, v.id, "completed", "d2", t0 + 9000), 0);

    json_t *rec = tm_store_visit_record(s, v.id);
    CHECK(rec != NULL);
    json_t *parts = json_object_get(rec, "parts");
    CHECK_EQ_INT(json_array_size(parts), 2);
    json_t *p1 = json_array_get(parts, 0), *p2 = json_array_get(parts, 1);
    CHECK_STR(str(p1, "doctor_id"), "d1");
    CHECK_STR(str(p1, "dept_id"), "cardio");
    CHECK_STR(str(p1, "ended_by"), "transfer");
    CHECK_STR(str(json_object_get(p1, "transfer"), "reason"), "stroke signs");
    CHECK_STR(str(p2, "doctor_id"), "d2");
    CHECK_STR(str(p2, "dept_id"), "neuro");
    CHECK_STR(str(p2, "ended_by"), "completed");
    CHECK_STR(str(p1, "ended_at"),
              str(json_array_get(json_object_get(rec, "transfers"), 0), "transferred_at"));
    /* The first doctor's row left as transferred. */
    size_t i;
    json_t *row;
    int transferred = 0;
    json_array_foreach(json_object_get(rec, "participants"), i, row)
    {
        if (strcmp(str(row, "user_id"), "d1") == 0)
            transferred += strcmp(str(row, "leave_reason"), "transferred") == 0;
    }
    CHECK_EQ_INT(transferred, 1);

    json_t *enc = tm_fhir_encounter(rec, "hosp-1");
    CHECK(enc != NULL);
    json_t *list = json_object_get(enc, "participant");
    CHECK_EQ_INT(json_array_size(list), 2);
    json_t *a1 = json_array_get(list, 0), *a2 = json_array_get(list, 1);
    CHECK_STR(str(json_object_get(a1, "individual"), "reference"), "#doctor-part1");
    CHECK_STR(str(json_object_get(a2, "individual"), "reference"), "#doctor");
    CHECK_STR(str(json_object_get(a1, "period"), "start"), str(p1, "started_at"));
    CHECK_STR(str(json_object_get(a1, "period"), "end"), str(p1, "ended_at"));
    CHECK_STR(str(json_object_get(a2, "period"), "start"), str(p2, "started_at"));
    bool found = false;
    json_array_foreach(json_object_get(enc, "contained"), i, row)
    {
        if (str(row, "id") && strcmp(str(row, "id"), "doctor-part1") == 0) {
            found = true;
            CHECK_STR(str(json_array_get(json_object_get(row, "identifier"), 0), "value"), "d1");
        }
    }
    CHECK(found);
    json_decref(enc);
    json_decref(rec);
    tm_store_free(s);
}

/* The alliance of the referral tests: the core (2A) with cardio, a 3A
 * hospital with neuro, a community clinic with gp, each named by level. */
static void alliance(tm_store *s, const char *core_level)
{
    static const struct {
        const char *id, *level, *kind, *dept;
    } members[] = {{"top", "3A", "hospital", "neuro"}, {"east", "community", "clinic", "gp"}};
    tm_institution in = {.id = "hosp-1", .name = "Core", .kind = "core"};
    g_strlcpy(in.level, core_level, sizeof(in.level));
    CHECK_EQ_INT(tm_store_institution_put(s, &in), 0);
    CHECK_EQ_INT(tm_store_dept_put(s, "gp", "General practice"), 0);
    for (size_t i = 0; i < TM_ARRAY_LEN(members); i++) {
        tm_institution m = {.name = "Member"};
        g_strlcpy(m.id, members[i].id, sizeof(m.id));
        g_strlcpy(m.level, members[i].level, sizeof(m.level));
        g_strlcpy(m.kind, members[i].kind, sizeof(m.kind));
        CHECK_EQ_INT(tm_store_institution_put(s, &m), 0);
        CHECK_EQ_INT(tm_store_dept_set_institution(s, members[i].dept, members[i].id), 0);
    }
}

/* Up goes to a higher level, down to a lower, never inside one
 * institution; levels in either spelling (3A, 三级甲等); none known: refused. */
static void test_referral_levels(void)
{
    tm_store *s = open_store("levels.db");
    seed(s);
    CHECK_EQ_INT(tm_store_dept_put(s, "derm", "Dermatology"), 0);
    const char *why = NULL;
    CHECK_EQ_INT(tm_store_referral_levels(s, "up", "cardio", "derm", &why), TM_EINVAL);
    CHECK_STR(why, "same_institution");
    alliance(s, "");
    CHECK_EQ_INT(tm_store_referral_levels(s, "up", "cardio", "neuro", &why), TM_EINVAL);
    CHECK_STR(why, "level_unknown");
    CHECK(strstr(tm_store_errmsg(s), "hosp-1") != NULL);
    alliance(s, "二级甲等");
    static const struct {
        const char *direction, *from, *to, *why;
    } cases[] = {
        {"up", "cardio", "neuro", NULL},         {"down", "cardio", "neuro", "not_lower"},
        {"down", "cardio", "gp", NULL},          {"up", "cardio", "gp", "not_higher"},
        {"down", "neuro", "cardio", NULL},       {"up", "gp", "cardio", NULL},
        {"up", "neuro", "cardio", "not_higher"},
    };
    for (size_t i = 0; i < TM_ARRAY_LEN(cases); i++) {
        why = NULL;
        int rc = tm_store_referral_levels(s, cases[i].direction, cases[i].from, cases[i].to, &why);
        CHECK_EQ_INT(rc, cases[i].why ? TM_EINVAL : 0);
        if (cases[i].why)
            CHECK_STR(why, cases[i].why);
    }
    alliance(s, "3B"); /* 3A is still above 3B */
    CHECK_EQ_INT(tm_store_referral_levels(s, "up", "cardio", "neuro", NULL), 0);
    CHECK_EQ_INT(tm_store_referral_levels(s, "up", "cardio", "nowhere", NULL), TM_ENOTFOUND);
    tm_store_free(s);
}

static void test_referral_round(void)
{
    tm_store *s = open_store("referral.db");
    seed(s);
    alliance(s, "2A");
    tm_visit v;
    live_visit(s, &v);
    tm_appointment a = {0};
    g_strlcpy(a.patient_id, "p-1", sizeof(a.patient_id));
    g_strlcpy(a.dept_id, "neuro", sizeof(a.dept_id));
    g_strlcpy(a.kind, "follow_up", sizeof(a.kind));
    a.slot_ms = t0 + 86400000;
    char appt[64];
    CHECK_EQ_INT(tm_store_appt_create(s, &a, appt), 0);
    tm_referral_req r = {.visit_id = v.id,
                         .from_doctor_id = "d1",
                         .direction = "up",
                         .to_dept_id = "neuro",
                         .reason = "suspected TIA",
                         .summary = "two episodes",
                         .appointment_id = appt};
    int64_t rows = outbox_rows(s);
    char id[64], id2[64];
    /* Refusals first: nothing written. */
    tm_referral_req bad = r;
    bad.direction = "sideways";
    CHECK_EQ_INT(tm_store_referral_create(s, &bad, t0, id), TM_EINVAL);
    bad = r;
    bad.to_dept_id = "cardio";
    CHECK_EQ_INT(tm_store_referral_create(s, &bad, t0, id), TM_EINVAL);
    bad = r;
    bad.from_doctor_id = "d2";
    CHECK_EQ_INT(tm_store_referral_create(s, &bad, t0, id), TM_EPERM);
    bad = r;
    bad.summary = "";
    CHECK_EQ_INT(tm_store_referral_create(s, &bad, t0, id), TM_EINVAL);
    bad = r;
    bad.appointment_id = "a-none";
    CHECK_EQ_INT(tm_store_referral_create(s, &bad, t0, id), TM_ENOTFOUND);
    bad = r;
    bad.direction = "down"; /* neuro's 3A is above the core's 2A */
    CHECK_EQ_INT(tm_store_referral_create(s, &bad, t0, id), TM_EINVAL);
    CHECK_EQ_INT(outbox_rows(s), rows);

    CHECK_EQ_INT(tm_store_referral_create(s, &r, t0 + 10000, id), 0);
    CHECK_EQ_INT(tm_store_referral_resend(s, id, "d1", &(tm_referral_req){0}, t0, id2),
                 TM_ECONFLICT); /* not declined */
    CHECK_EQ_INT(tm_store_referral_decide(s, id, false, "d2", "", t0 + 11000), TM_EINVAL);
    CHECK_EQ_INT(tm_store_referral_decide(s, id, false, "d2", "no bed", t0 + 11000), 0);
    CHECK_EQ_INT(tm_store_referral_decide(s, id, true, "d2", NULL, t0 + 11500), TM_ECONFLICT);
    CHECK_EQ_INT(tm_store_referral_resend(s, id, "d2", &(tm_referral_req){0}, t0, id2), TM_EPERM);
    CHECK_EQ_INT(tm_store_referral_resend(s, id, "d1", &(tm_referral_req){.reason = "TIA, Monday"},
                                          t0 + 12000, id2),
                 0);
    CHECK_EQ_INT(tm_store_referral_decide(s, id2, true, "d2", NULL, t0 + 13000), 0);
    json_t *old = tm_store_referral_get(s, id), *now = tm_store_referral_get(s, id2);
    CHECK_STR(str(old, "state"), "resent");
    CHECK_STR(str(old, "replaced_by"), id2);
    CHECK_STR(str(old, "decline_reason"), "no bed");
    CHECK_STR(str(now, "state"), "accepted");
    CHECK_STR(str(now, "replaces"), id);
    CHECK_STR(str(now, "reason"), "TIA, Monday");
    CHECK_STR(str(now, "summary"), "two episodes");
    CHECK_STR(str(now, "appointment_id"), appt);
    CHECK_EQ_INT(json_integer_value(json_object_get(now, "version")), 2);
    json_t *ev = last_event(s, "referral.accepted");
    CHECK_STR(str(json_object_get(ev, "referral"), "id"), id2);
    CHECK_STR(str(json_object_get(ev, "referral"), "to_dept_id"), "neuro");
    CHECK(json_object_get(json_object_get(ev, "referral"), "summary") == NULL);
    json_decref(ev);
    json_t *list = tm_store_referral_list(s, NULL, "neuro", NULL, NULL, 0);
    CHECK_EQ_INT(json_array_size(list), 2);
    CHECK_STR(str(json_array_get(list, 0), "id"), id2);
    json_decref(list);

    /* The ServiceRequest with the Encounter it came from. */
    json_t *rec = tm_store_visit_record(s, v.id);
    json_t *enc = tm_fhir_encounter(rec, "hosp-1");
    json_t *b = tm_fhir_referral(now, enc, "hosp-1");
    CHECK(b != NULL);
    CHECK_STR(str(b, "resourceType"), "Bundle");
    CHECK_STR(str(b, "type"), "collection");
    json_t *sr = json_object_get(json_array_get(json_object_get(b, "entry"), 0), "resource");
    CHECK_STR(str(sr, "resourceType"), "ServiceRequest");
    CHECK_STR(str(sr, "status"), "active");
    CHECK_STR(str(sr, "intent"), "order");
    CHECK(json_object_get(sr, "subject") != NULL); /* R4: 1..1 */
    char *want = g_strdup_printf("ServiceRequest/%s", id);
    CHECK_STR(str(json_array_get(json_object_get(sr, "replaces"), 0), "reference"), want);
    g_free(want);
    /* ServiceRequest.encounter resolves to the bundle's second entry. */
    json_t *e2 = json_array_get(json_object_get(b, "entry"), 1);
    char *url =
        g_strdup_printf(TM_FHIR_BASE "/%s", str(json_object_get(sr, "encounter"), "reference"));
    CHECK_STR(str(e2, "fullUrl"), url);
    g_free(url);
    CHECK_STR(str(json_object_get(e2, "resource"), "id"), v.id);
    json_t *b_old = tm_fhir_referral(old, NULL, "hosp-1");
    CHECK_STR(str(json_object_get(json_array_get(json_object_get(b_old, "entry"), 0), "resource"),
                  "status"),
              "revoked");
    json_t *empty = json_object();
    CHECK(tm_fhir_referral(empty, NULL, "hosp-1") == NULL);
    json_decref(empty);
    json_decref(b_old);
    json_decref(b);
    json_decref(enc);
    json_decref(rec);
    json_decref(old);
    json_decref(now);
    tm_store_free(s);
}

int main(void)
{
    dir = g_dir_make_tmp("telemed-transfer-XXXXXX", NULL);
    CHECK(dir != NULL);
#ifdef TM_STORE_PG
    pg_fixture_start();
#endif
    t0 = tm_now_ms() - 3600000;
    RUN(test_refused_transfers_write_nothing);
    RUN(test_transfer_parts_and_encounter);
    RUN(test_referral_levels);
    RUN(test_referral_round);
    char *cmd = g_strdup_printf("rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    g_free(cmd);
    g_free(dir);
    TEST_DONE();
}

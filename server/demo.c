/*
 * demo.c - the demo alliance of `telemed-server --demo`: the core hospital
 * with two departments, four doctors, a nurse and an interpreter, a county
 * hospital and a community clinic with a department and a doctor each
 * (issue 18), shifts covering now, and ready-made tokens and links, so a
 * newcomer sees a full visit within a minute on one machine.
 */
#include "app.h"
#include "telemed/common.h"
#include "telemed/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The alliance's other members (the core is the configured hospital). */
static const tm_institution demo_members[] = {
    {"county-west", "西县人民医院 County West Hospital", "12110000MB0000001X", "2A", "hospital"},
    {"clinic-east", "东街社区卫生服务中心 East Street Community Clinic", "12110000MB0000002X",
     "community", "clinic"},
};

static const struct {
    const char *id, *name, *institution; /* NULL: the core */
} demo_depts[] = {
    {"cardiology", "心内科 Cardiology", NULL},
    {"endocrinology", "内分泌科 Endocrinology", NULL},
    {"west-internal", "内科 Internal Medicine (County West)", "county-west"},
    {"east-general", "全科 General Practice (East Clinic)", "clinic-east"},
};

static const struct {
    const char *id, *name, *dept, *licence, *kind;
} demo_doctors[] = {
    {"d-li", "李医生 Dr. Li", "cardiology", "110100000000001", "doctor"},
    {"d-wang", "王医生 Dr. Wang", "cardiology", "110100000000002", "doctor"},
    {"d-zhang", "张医生 Dr. Zhang", "endocrinology", "110100000000003", "doctor"},
    {"d-chen", "陈医生 Dr. Chen", "endocrinology", "110100000000004", "doctor"},
    /* Staff the doctors can invite into a visit (issue 17); never offered patients. */
    {"n-zhao", "赵护士 Nurse Zhao", "cardiology", NULL, "nurse"},
    {"i-liu", "刘翻译 Interpreter Liu", "cardiology", NULL, "interpreter"},
    {"d-zhou", "周医生 Dr. Zhou", "west-internal", "110100000000005", "doctor"},
    {"d-sun", "孙医生 Dr. Sun", "east-general", "110100000000006", "doctor"},
};

/* The institution of a demo department: its own, or the core's id. */
static const char *dept_institution(tm_app *app, const char *dept)
{
    for (size_t i = 0; i < TM_ARRAY_LEN(demo_depts); i++)
        if (strcmp(demo_depts[i].id, dept) == 0 && demo_depts[i].institution)
            return demo_depts[i].institution;
    return app->cfg.hospital_id;
}

int tm_demo_seed(tm_app *app)
{
    tm_store *st = app->store;
    int64_t now = tm_now_ms();
    int rc;
    /* Members the config file declares keep their own names and codes. */
    tm_institution known;
    for (size_t i = 0; i < TM_ARRAY_LEN(demo_members); i++)
        if (tm_store_institution_get(st, demo_members[i].id, &known) == TM_ENOTFOUND &&
            (rc = tm_store_institution_put(st, &demo_members[i])) < 0)
            return rc;
    /* The core is a 3A hospital unless hospital_level says otherwise, so the
     * demo's referrals up and down have levels to follow. */
    if (tm_store_institution_get(st, app->cfg.hospital_id, &known) == 0 && !known.level[0]) {
        g_strlcpy(known.level, "3A", sizeof(known.level));
        if ((rc = tm_store_institution_put(st, &known)) < 0)
            return rc;
    }
    for (size_t i = 0; i < TM_ARRAY_LEN(demo_depts); i++)
        if ((rc = tm_store_dept_put(st, demo_depts[i].id, demo_depts[i].name)) < 0 ||
            (rc = tm_store_dept_set_institution(st, demo_depts[i].id, demo_depts[i].institution)) <
                0)
            return rc;
    for (size_t i = 0; i < TM_ARRAY_LEN(demo_doctors); i++) {
        if ((rc = tm_store_doctor_put(st, demo_doctors[i].id, demo_doctors[i].name,
                                      demo_doctors[i].dept, demo_doctors[i].licence, NULL)) < 0 ||
            (rc = tm_store_doctor_set_kind(st, demo_doctors[i].id, demo_doctors[i].kind)) < 0)
            return rc;
        /* A 12-hour shift from an hour ago, unless one already covers now. */
        if (tm_store_shift_current(st, demo_doctors[i].id, demo_doctors[i].dept, now, NULL, NULL,
                                   NULL) == 0)
            continue;
        char id[64];
        if ((rc = tm_store_shift_add(st, demo_doctors[i].id, demo_doctors[i].dept,
                                     now - 3600 * 1000, now + 12 * 3600 * 1000, 1, id)) < 0)
            return rc;
    }
    tm_info("demo.seeded", "institutions=%zu departments=%zu doctors=%zu",
            TM_ARRAY_LEN(demo_members) + 1, TM_ARRAY_LEN(demo_depts), TM_ARRAY_LEN(demo_doctors));
    return 0;
}

static char *mint(tm_app *app, const char *sub, tm_role role, const char *name, const char *dept,
                  const char *institution)
{
    tm_identity id = {0};
    g_strlcpy(id.sub, sub, sizeof(id.sub));
    id.role = role;
    g_strlcpy(id.name, name, sizeof(id.name));
    g_strlcpy(id.dept, dept ? dept : "", sizeof(id.dept));
    g_strlcpy(id.institution, institution ? institution : "", sizeof(id.institution));
    id.iat = tm_now_ms() / 1000;
    id.exp = id.iat + 12 * 3600;
    /* The demo's login stands in for the hospital's identity check. */
    id.auth_time = id.iat;
    return tm_jwt_mint_hs256(app->jwt_secret, &id);
}

static void print_link(tm_app *app, const char *label, const char *page, char *token)
{
    const char *host = strcmp(app->cfg.listen, "0.0.0.0") == 0 || strcmp(app->cfg.listen, "::") == 0
                           ? "localhost"
                           : app->cfg.listen;
    printf("  %-28s https://%s:%d/%s#token=%s\n", label, host, app->port, page,
           token ? token : "?");
    free(token);
}

void tm_demo_print(tm_app *app)
{
    printf(
        "\ntelemed demo hospital is running (self-signed TLS: accept the browser warning once)\n");
    printf("Patients (open in a phone or desktop browser):\n");
    print_link(app, "patient p-demo-1", "patient.html",
               mint(app, "p-demo-1", TM_ROLE_PATIENT, "患者一 Patient One", NULL, NULL));
    print_link(app, "patient p-demo-2", "patient.html",
               mint(app, "p-demo-2", TM_ROLE_PATIENT, "患者二 Patient Two", NULL, NULL));
    printf("Doctors, a nurse and an interpreter (consult workstation):\n");
    for (size_t i = 0; i < TM_ARRAY_LEN(demo_doctors); i++) {
        char label[64];
        snprintf(label, sizeof(label), "%s %s (%s)", demo_doctors[i].kind, demo_doctors[i].id,
                 demo_doctors[i].dept);
        print_link(app, label, "doctor.html",
                   mint(app, demo_doctors[i].id, TM_ROLE_DOCTOR, demo_doctors[i].name,
                        demo_doctors[i].dept, dept_institution(app, demo_doctors[i].dept)));
    }
    printf("Supervisors (the whole alliance; the county hospital only):\n");
    print_link(app, "supervisor s-demo", "supervisor.html",
               mint(app, "s-demo", TM_ROLE_SUPERVISOR, "督导 Supervisor", NULL, NULL));
    print_link(app, "supervisor s-west (county-west)", "supervisor.html",
               mint(app, "s-west", TM_ROLE_SUPERVISOR, "西县督导 County West Supervisor", NULL,
                    "county-west"));
    char *admin = mint(app, "a-demo", TM_ROLE_ADMIN, "Admin", NULL, NULL);
    printf("Admin REST token (curl -k -H 'Authorization: Bearer ...' "
           "https://localhost:%d/api/v1/visits):\n  %s\n\n",
           app->port, admin ? admin : "?");
    free(admin);
    fflush(stdout);
}

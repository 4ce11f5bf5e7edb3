/*
 * feed_tianjin_map.c - the tianjin profile's one mapping table: telemed's
 * facts of a visit or a rating to the Tianjin platform's record, with the
 * local checks a record passes before it may leave (feed_tianjin.h).
 *
 * docs/regulator-feed.md carries the same table; test_feed_tianjin checks
 * the two row by row. Pure functions; any thread.
 */
#include "telemed/common.h"
#include "telemed/feed_tianjin.h"

#include <glib.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

typedef enum {
    FROM_FACT,     /* the source fact named by `from`, as a string */
    FROM_TIME,     /* the source fact `from` (epoch ms) as platform time */
    FROM_CONST,    /* `from` itself */
    FROM_CONFIG,   /* a tianjin_* setting, see config_value() */
    FROM_ANSWERED, /* "1" when the doctor accepted, else "0" */
    FROM_SCORE,    /* the fact `from` as an integer 1..5 */
    FROM_NOW,      /* the time of sending */
    FROM_MEMBER,   /* the visit's alliance member's fact (issue 18), else the tianjin_* setting */
} map_from;

typedef enum {
    WHEN_ALWAYS,     /* required */
    WHEN_ANSWERED,   /* required when the doctor accepted, else left out */
    WHEN_UNANSWERED, /* required when nobody accepted, else left out */
    WHEN_IF_SET,     /* sent when there is a value */
} map_when;

typedef bool (*field_check)(const char *value);

typedef struct field_map {
    const char *kind;  /* "visit" (uploadReferralIndicators) or "rating" */
    const char *field; /* the platform's field name */
    map_from from_kind;
    const char *from;
    map_when when;
    field_check check; /* NULL: any non-empty value */
} field_map;

static bool is_icd10(const char *v);
static bool is_digits(const char *v);

/* THE mapping of telemed's facts to the platform's records; the same table
 * is in docs/regulator-feed.md ("tianjin: field mapping"). Keep them equal. */
static const field_map mapping[] = {
    {"visit", "organID", FROM_MEMBER, "organ_id", WHEN_ALWAYS, NULL},
    {"visit", "organName", FROM_MEMBER, "organ_name", WHEN_IF_SET, NULL},
    {"visit", "unitID", FROM_CONFIG, "unit_id", WHEN_IF_SET, NULL},
    {"visit", "bussID", FROM_FACT, "visit_id", WHEN_ALWAYS, NULL},
    {"visit", "returnVisitType", FROM_CONST, "3", WHEN_ALWAYS, NULL},
    {"visit", "deptID", FROM_FACT, "dept_code", WHEN_ALWAYS, NULL},
    {"visit", "doctorId", FROM_FACT, "doctor_id", WHEN_ANSWERED, NULL},
    {"visit", "doctorCertID", FROM_FACT, "doctor_cert_id", WHEN_ANSWERED, NULL},
    {"visit", "patientCertType", FROM_FACT, "patient_cert_type", WHEN_ALWAYS, is_digits},
    {"visit", "patientCertID", FROM_FACT, "patient_cert_id", WHEN_ALWAYS, NULL},
    {"visit", "mainDiagnoseCode", FROM_FACT, "diagnosis_code", WHEN_ANSWERED, is_icd10},
    {"visit", "applyDate", FROM_TIME, "checked_in_at", WHEN_ALWAYS, NULL},
    {"visit", "startDate", FROM_TIME, "accepted_at", WHEN_ANSWERED, NULL},
    {"visit", "endDate", FROM_TIME, "ended_at", WHEN_ALWAYS, NULL},
    {"visit", "answerFlag", FROM_ANSWERED, NULL, WHEN_ALWAYS, NULL},
    {"visit", "refuseTime", FROM_TIME, "ended_at", WHEN_UNANSWERED, NULL},
    {"visit", "refuseReason", FROM_FACT, "end_reason", WHEN_UNANSWERED, NULL},
    {"visit", "updateTime", FROM_NOW, NULL, WHEN_ALWAYS, NULL},
    {"rating", "organID", FROM_MEMBER, "organ_id", WHEN_ALWAYS, NULL},
    {"rating", "organName", FROM_MEMBER, "organ_name", WHEN_IF_SET, NULL},
    {"rating", "unitID", FROM_CONFIG, "unit_id", WHEN_IF_SET, NULL},
    {"rating", "evaluateID", FROM_FACT, "visit_id", WHEN_ALWAYS, NULL},
    {"rating", "bussID", FROM_FACT, "visit_id", WHEN_ALWAYS, NULL},
    {"rating", "businessType", FROM_CONFIG, "business_type", WHEN_ALWAYS, NULL},
    {"rating", "deptID", FROM_FACT, "dept_code", WHEN_ALWAYS, NULL},
    {"rating", "doctorId", FROM_FACT, "doctor_id", WHEN_ALWAYS, NULL},
    {"rating", "doctorCertID", FROM_FACT, "doctor_cert_id", WHEN_ALWAYS, NULL},
    {"rating", "satisfaction", FROM_SCORE, "score", WHEN_ALWAYS, NULL},
    {"rating", "evaluationTime", FROM_TIME, "rated_at", WHEN_ALWAYS, NULL},
    {"rating", "updateTime", FROM_NOW, NULL, WHEN_ALWAYS, NULL},
};

/* ICD-10: a letter, two digits, optionally "." and up to 4 more characters. */
static bool is_icd10(const char *v)
{
    size_t n = strlen(v);
    if (n < 3 || !g_ascii_isupper(v[0]) || !g_ascii_isdigit(v[1]) || !g_ascii_isdigit(v[2]))
        return false;
    if (n == 3)
        return true;
    if (v[3] != '.' || n > 8 || n == 4)
        return false;
    for (size_t i = 4; i < n; i++)
        if (!g_ascii_isalnum(v[i]))
            return false;
    return true;
}

static bool is_digits(const char *v)
{
    for (const char *p = v; *p; p++)
        if (!g_ascii_isdigit(*p))
            return false;
    return *v != '\0';
}

void tm__tianjin_time(int64_t epoch_ms, int utc_offset_min, char out[20])
{
    time_t s = (time_t)(epoch_ms / 1000) + (time_t)utc_offset_min * 60;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, 20, "%Y-%m-%d %H:%M:%S", &tm);
}

static const char *config_value(const tm_config *cfg, const char *name)
{
    if (strcmp(name, "organ_id") == 0)
        return cfg->tianjin_organ_id;
    if (strcmp(name, "organ_name") == 0)
        return cfg->tianjin_organ_name;
    if (strcmp(name, "unit_id") == 0)
        return cfg->tianjin_unit_id;
    if (strcmp(name, "business_type") == 0)
        return cfg->tianjin_business_type;
    return NULL;
}

static json_t *config_json(const tm_config *cfg, const char *name)
{
    const char *v = config_value(cfg, name);
    return v && *v ? json_string(v) : NULL;
}

/* The snapshot's fact that stands in for setting name when the visit's
 * department belongs to an alliance member other than the core. */
static const char *member_fact(const char *name)
{
    return strcmp(name, "organ_id") == 0 ? "member_org_code" : "member_name";
}

/* One field's value as the platform wants it, or NULL when there is none. */
static json_t *field_value(const field_map *m, const tm_config *cfg, json_t *src, bool answered,
                           int64_t now_ms)
{
    char when[20];
    json_t *fact = m->from_kind == FROM_MEMBER ? json_object_get(src, member_fact(m->from))
                   : m->from && m->from_kind != FROM_CONST && m->from_kind != FROM_CONFIG
                       ? json_object_get(src, m->from)
                       : NULL;
    switch (m->from_kind) {
    case FROM_FACT:
        if (json_is_string(fact) && *json_string_value(fact))
            return json_string(json_string_value(fact));
        if (json_is_integer(fact))
            return json_sprintf("%lld", (long long)json_integer_value(fact));
        return NULL;
    case FROM_TIME:
        if (!json_is_integer(fact))
            return NULL;
        tm__tianjin_time(json_integer_value(fact), cfg->tianjin_utc_offset_min, when);
        return json_string(when);
    case FROM_CONST:
        return json_string(m->from);
    case FROM_MEMBER:
        if (json_is_string(fact) && *json_string_value(fact))
            return json_string(json_string_value(fact));
        return config_json(cfg, m->from); /* the core's are the settings */
    case FROM_CONFIG:
        return config_json(cfg, m->from);
    case FROM_ANSWERED:
        return json_string(answered ? "1" : "0");
    case FROM_SCORE:
        return json_is_integer(fact) ? json_integer(json_integer_value(fact)) : NULL;
    case FROM_NOW:
        tm__tianjin_time(now_ms, cfg->tianjin_utc_offset_min, when);
        return json_string(when);
    }
    return NULL;
}

const char *tm__tianjin_mapping_row(size_t i, char *buf, size_t len)
{
    if (i >= TM_ARRAY_LEN(mapping))
        return NULL;
    const field_map *m = &mapping[i];
    static const char *const when[] = {"always", "answered", "unanswered", "if set"};
    char from[64];
    switch (m->from_kind) {
    case FROM_FACT:
        snprintf(from, sizeof(from), "fact %s", m->from);
        break;
    case FROM_TIME:
        snprintf(from, sizeof(from), "time %s", m->from);
        break;
    case FROM_CONST:
        snprintf(from, sizeof(from), "\"%s\"", m->from);
        break;
    case FROM_CONFIG:
        snprintf(from, sizeof(from), "setting tianjin_%s", m->from);
        break;
    case FROM_ANSWERED:
        snprintf(from, sizeof(from), "answered");
        break;
    case FROM_SCORE:
        snprintf(from, sizeof(from), "score %s", m->from);
        break;
    case FROM_NOW:
        snprintf(from, sizeof(from), "now");
        break;
    case FROM_MEMBER:
        snprintf(from, sizeof(from), "fact %s, else setting tianjin_%s", member_fact(m->from),
                 m->from);
        break;
    }
    snprintf(buf, len, "%s | %s | %s | %s%s", m->kind, m->field, from, when[m->when],
             m->check == is_icd10         ? ", ICD-10"
             : m->check == is_digits      ? ", digits"
             : m->from_kind == FROM_SCORE ? ", 1-5"
                                          : "");
    return buf;
}

static bool value_ok(const field_map *m, json_t *v)
{
    if (m->from_kind == FROM_SCORE)
        return json_integer_value(v) >= 1 && json_integer_value(v) <= 5;
    return !m->check || m->check(json_string_value(v));
}

int tm__tianjin_map(const tm_config *cfg, const char *kind, const char *source, int64_t now_ms,
                    json_t **out, char **why)
{
    *out = NULL;
    *why = NULL;
    json_t *src = json_loads(source ? source : "", 0, NULL);
    if (!json_is_object(src)) {
        json_decref(src);
        *why = g_strdup("facts snapshot is not a JSON object");
        return TM_EINVAL;
    }
    bool answered = json_is_integer(json_object_get(src, "accepted_at"));
    json_t *rec = json_object();
    GString *bad = g_string_new(NULL); /* every failing field, so one fix covers them all */
    for (size_t i = 0; i < TM_ARRAY_LEN(mapping); i++) {
        const field_map *m = &mapping[i];
        if (strcmp(m->kind, kind) != 0)
            continue;
        if ((m->when == WHEN_ANSWERED && !answered) || (m->when == WHEN_UNANSWERED && answered))
            continue;
        json_t *v = field_value(m, cfg, src, answered, now_ms);
        if (!v && m->when == WHEN_IF_SET)
            continue;
        if (v && value_ok(m, v)) {
            json_object_set_new(rec, m->field, v);
            continue;
        }
        g_string_append_printf(bad, "%s%s field %s (from %s)", bad->len ? ", " : "",
                               v ? "invalid" : "missing", m->field,
                               m->from ? m->from : "the visit");
        json_decref(v);
    }
    json_decref(src);
    if (bad->len) {
        json_decref(rec);
        *why = g_string_free(bad, FALSE);
        return TM_EINVAL;
    }
    g_string_free(bad, TRUE);
    *out = rec;
    return 0;
}

/*
 * api.c - what every REST resource goes through: the route table, the body
 * parsed as a JSON object, the bearer token checked (a refusal is logged and
 * audited), and the helpers resources read arguments, check roles and audit
 * with.
 *
 * Every API call carries a bearer token; admins write, supervisors read,
 * doctors read what concerns them. Bodies are JSON objects, validated
 * field by field; a bad request changes nothing and says why with the same
 * stable codes as signaling.
 *
 * Control loop thread only.
 */
#include "http_internal.h"
#include "telemed/common.h"
#include "telemed/log.h"
#include "telemed/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- request parsing helpers ---------------------------------------- */

/* As lws_get_urlarg_by_name: the first argument named so, and none once an
 * argument too long for buf comes before it. */
const char *tm__arg(http_req *r, const char *name, char *buf, size_t len)
{
    char key[64];
    snprintf(key, sizeof(key), "%s=", name);
    size_t kl = strlen(key);
    for (guint i = 0; r->p->args && i < r->p->args->len; i++) {
        const char *a = g_ptr_array_index(r->p->args, i);
        size_t al = strlen(a);
        if (al >= len)
            return NULL;
        if (strncmp(a, key, kl) == 0) {
            memcpy(buf, a, al + 1);
            return buf[kl] ? buf + kl : NULL;
        }
    }
    return NULL;
}

/* Accepts epoch ms (integer) or RFC 3339 text. 0 when absent, -1 when bad. */
static int64_t parse_time_str(const char *s)
{
    if (!s || !*s)
        return 0;
    char *endp;
    long long v = strtoll(s, &endp, 10);
    if (*endp == 0 && v > 0)
        return v;
    GDateTime *dt = g_date_time_new_from_iso8601(s, NULL);
    if (!dt)
        return -1;
    int64_t ms = g_date_time_to_unix(dt) * 1000 + g_date_time_get_microsecond(dt) / 1000;
    g_date_time_unref(dt);
    return ms;
}

int64_t tm__arg_time(http_req *r, const char *name, bool *bad)
{
    char buf[64];
    int64_t t = parse_time_str(tm__arg(r, name, buf, sizeof(buf)));
    if (t < 0)
        *bad = true;
    return t < 0 ? 0 : t;
}

int64_t tm__body_time(json_t *body, const char *key, bool *bad)
{
    json_t *v = json_object_get(body, key);
    if (!v)
        return 0;
    if (json_is_integer(v) && json_integer_value(v) > 0)
        return json_integer_value(v);
    if (json_is_string(v)) {
        int64_t t = parse_time_str(json_string_value(v));
        if (t > 0)
            return t;
    }
    *bad = true;
    return 0;
}

/* A string field: required ones must be present, every one must be a
 * string of 1..max bytes. */
const char *tm__body_str(json_t *body, const char *key, size_t max, bool required, bool *bad)
{
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v)) {
        if (required)
            *bad = true;
        return NULL;
    }
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max) {
        *bad = true;
        return NULL;
    }
    return json_string_value(v);
}

bool tm__id_ok(const char *id)
{
    if (!id || !*id || strlen(id) > 63)
        return false;
    for (const char *c = id; *c; c++)
        if (!g_ascii_isalnum(*c) && *c != '-' && *c != '_' && *c != '.')
            return false;
    return true;
}

/* A refused credential is an access attempt on patient data: it is logged
 * and audited with the route and the reason, never with the token. */
static void note_auth_refused(http_req *r, const char *why)
{
    tm_warn("http.auth_refused", "route=%s reason=%s peer=%s", r->seg[0], why, r->p->peer_ip);
    tm_store_audit(r->app->store, r->who.sub[0] ? r->who.sub : NULL, NULL, "api.auth", r->seg[0],
                   "denied", why);
}

/* ---- institutions (issue 18) ----------------------------------------- */

/* The caller's institution into r->who.institution, as signaling's hello
 * does: a doctor's department's (an `inst` naming another is refused), a
 * supervisor's or admin's claim if it names a member, none for a patient. */
static bool resolve_institution(http_req *r)
{
    tm_identity *who = &r->who;
    char message[256];
    if (who->role == TM_ROLE_PATIENT) {
        who->institution[0] = 0;
        return true;
    }
    if (who->role == TM_ROLE_DOCTOR) {
        tm_doctor_info info;
        char home[64];
        if (tm_store_doctor_get(r->app->store, who->sub, &info) < 0 ||
            tm_store_dept_institution(r->app->store, info.dept_id, home) < 0)
            return true;
        if (who->institution[0] && strcmp(who->institution, home) != 0) {
            note_auth_refused(r, "other_institution");
            snprintf(message, sizeof(message),
                     "token is for institution %s, but department %s belongs to %s",
                     who->institution, info.dept_id, home);
            tm__respond_err(r->p, TM_EPERM, message);
            return false;
        }
        g_strlcpy(who->institution, home, sizeof(who->institution));
        return true;
    }
    tm_institution known;
    if (who->institution[0] &&
        tm_store_institution_get(r->app->store, who->institution, &known) < 0) {
        note_auth_refused(r, "unknown_institution");
        snprintf(message, sizeof(message), "token names institution %s, not a member here",
                 who->institution);
        tm__respond_err(r->p, TM_EPERM, message);
        return false;
    }
    return true;
}

bool tm__scope_has_dept(http_req *r, const char *dept_id)
{
    if (!r->who.institution[0])
        return true;
    char inst[64];
    return dept_id && tm_store_dept_institution(r->app->store, dept_id, inst) == 0 &&
           strcmp(inst, r->who.institution) == 0;
}

bool tm__scope_has_visit(http_req *r, const char *visit_id)
{
    tm_visit v;
    if (!visit_id || tm_store_visit_get(r->app->store, visit_id, &v) < 0)
        return false;
    return tm__scope_has_dept(r, v.dept_id);
}

/* The departments of the caller's institution as a set (object keys), or
 * NULL for a caller who sees the whole alliance. New reference. */
static json_t *scope_dept_set(http_req *r)
{
    if (!r->who.institution[0])
        return NULL;
    json_t *ids = tm_store_institution_depts(r->app->store, r->who.institution);
    json_t *set = json_object();
    size_t i;
    json_t *id;
    json_array_foreach(ids, i, id) json_object_set_new(set, json_string_value(id), json_true());
    json_decref(ids);
    return set;
}

json_t *tm__scope_rows(http_req *r, json_t *rows, const char *dept_key, const char *other_key,
                       int limit)
{
    json_t *set = scope_dept_set(r);
    if (!rows || (!set && (limit <= 0 || json_array_size(rows) <= (size_t)limit))) {
        json_decref(set);
        return rows;
    }
    json_t *kept = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        if (limit > 0 && json_array_size(kept) >= (size_t)limit)
            break;
        const char *a = json_string_value(json_object_get(row, dept_key));
        const char *b = other_key ? json_string_value(json_object_get(row, other_key)) : NULL;
        if (!set || (a && json_object_get(set, a)) || (b && json_object_get(set, b)))
            json_array_append(kept, row);
    }
    json_decref(set);
    json_decref(rows);
    return kept;
}

static bool authenticate(http_req *r)
{
    const char *h = r->p->auth;
    if (strncmp(h, "Bearer ", 7) != 0) {
        note_auth_refused(r, "no_token");
        tm__respond_err(r->p, TM_EAUTH, "Authorization: Bearer <token> is required");
        return false;
    }
    const char *why = NULL;
    if (tm_jwt_verify(r->app->jwt, h + 7, strlen(h + 7), tm_now_ms() / 1000,
                      r->app->cfg.jwt_leeway_s, &r->who, &why) < 0) {
        char msg[96];
        snprintf(msg, sizeof(msg), "token refused: %s", why ? why : "invalid");
        note_auth_refused(r, why ? why : "invalid");
        tm__respond_err(r->p, TM_EAUTH, msg);
        return false;
    }
    if (r->who.hospital[0] && strcmp(r->who.hospital, r->app->cfg.hospital_id) != 0) {
        note_auth_refused(r, "other_hospital");
        tm__respond_err(r->p, TM_EPERM, "token is for another hospital");
        return false;
    }
    if (!resolve_institution(r))
        return false;
    tm_conn_limit_authenticated(r->app->conn_limit, r->p->sock_fd);
    return true;
}

bool tm__need(http_req *r, bool ok)
{
    if (!ok)
        tm__respond_err(r->p, TM_EPERM, "not allowed for this role");
    return ok;
}

bool tm__is_admin(http_req *r)
{
    return r->who.role == TM_ROLE_ADMIN;
}

bool tm__is_staff(http_req *r)
{
    return r->who.role == TM_ROLE_ADMIN || r->who.role == TM_ROLE_SUPERVISOR;
}

void tm__audit(http_req *r, const char *action, const char *target, const char *outcome)
{
    tm_store_audit(r->app->store, r->who.sub, tm_role_name(r->who.role), action, target, outcome,
                   NULL);
}

/* A list read of patient data: the target is the patient asked for (or "*"
 * for a list over many), the query string goes into the detail. */
void tm__audit_list(http_req *r, const char *action, const char *patient)
{
    const char *query = r->p->query;
    tm_store_audit(r->app->store, r->who.sub, tm_role_name(r->who.role), action,
                   patient ? patient : "*", "ok", query[0] ? query : NULL);
}

/* Doctors read the patients of their own department, and those a visit of
 * theirs (a consultation, transfer or referral) brought to them. */
bool tm__doctor_may_see(http_req *r, const char *dept_id, const char *patient_id)
{
    tm_doctor_info doc;
    if (tm_store_doctor_get(r->app->store, r->who.sub, &doc) == 0 &&
        strcmp(doc.dept_id, dept_id) == 0)
        return true;
    json_t *mine =
        tm_store_visit_list(r->app->store, NULL, NULL, r->who.sub, patient_id, 0, 0, 1, 0);
    bool seen = json_array_size(mine) > 0;
    json_decref(mine);
    /* issue 18: the specialist and the requester of a consultation */
    return seen || tm_store_consult_involves(r->app->store, r->who.sub, patient_id);
}

/* ---- routing -------------------------------------------------------- */

static const struct {
    const char *name;
    void (*fn)(http_req *r);
} routes[] = {
    {"departments", tm__api_departments},
    {"doctors", tm__api_doctors},
    {"shifts", tm__api_shifts},
    {"appointments", tm__api_appointments},
    {"visits", tm__api_visits},
    {"audit", tm__api_audit},
    {"overview", tm__api_overview},
    {"feed", tm__api_feed},
    {"me", tm__api_me},
    {"recordings", tm__api_recordings},
    {"renditions", tm__api_renditions},
    {"regulator-ids", tm__api_regulator_ids},
    /* issue 18: figures */
    {"figures", tm__api_figures},
    /* issue 18, consultation requests */
    {"consultations", tm__api_consultations},
    /* issue 18 (transfer18) */
    {"referrals", tm__api_referrals},
    {"institutions", tm__api_institutions},
    /* followup18 */
    {"patients", tm__api_patients},
    {"messaging", tm__api_messaging},
    /* issue 19 */
    {"admin", tm__api_admin},
};

void tm__route_api(http_req *r, const char *rest)
{
    r->seg = g_strsplit(rest, "/", 16);
    r->nseg = (int)g_strv_length(r->seg);
    while (r->nseg > 0 && r->seg[r->nseg - 1][0] == 0) { /* trailing slash */
        g_free(r->seg[r->nseg - 1]);
        r->seg[--r->nseg] = NULL;
    }
    if (r->nseg == 0) {
        tm__respond_err(r->p, TM_ENOTFOUND, "no such route");
        return;
    }
    if (r->p->body && r->p->body->len) {
        json_error_t jerr;
        r->body = json_loadb((const char *)r->p->body->data, r->p->body->len,
                             JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(r->body)) {
            char msg[200];
            snprintf(msg, sizeof(msg), "body must be a JSON object: %s", r->body ? "" : jerr.text);
            tm__respond_err(r->p, TM_EINVAL, msg);
            return;
        }
    } else if (r->p->method == LWSHUMETH_POST || r->p->method == LWSHUMETH_PUT ||
               r->p->method == LWSHUMETH_PATCH) {
        r->body = json_object();
    }
    if (!authenticate(r))
        return;
    for (size_t i = 0; i < TM_ARRAY_LEN(routes); i++) {
        if (strcmp(r->seg[0], routes[i].name) == 0) {
            routes[i].fn(r);
            return;
        }
    }
    tm__respond_err(r->p, TM_ENOTFOUND, "no such route");
}

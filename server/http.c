/*
 * http.c - the REST API under /api/v1/, /healthz and /metrics, on the same
 * libwebsockets server (and GLib loop) as signaling. The web client's files
 * are served by an lws file mount, not here.
 *
 * Every API call carries a bearer token; admins write, supervisors read,
 * doctors read what concerns them. Bodies are JSON objects, validated
 * field by field; a bad request changes nothing and says why with the same
 * stable codes as signaling.
 */
#include "app.h"
#include "telemed/common.h"
#include "telemed/fhir.h"
#include "telemed/http_range.h"
#include "telemed/log.h"
#include "telemed/rec_crypt.h"
#include "telemed/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Largest request body accepted. */
#define MAX_BODY (256 * 1024)
#define CHUNK 16384
/* A body must arrive whole within this long of its headers (a trickling
 * client must not hold a connection). */
#define BODY_DEADLINE_MS 20000

typedef struct http_pss {
    int method;
    char path[512];
    char auth[TM_JWT_MAX_LEN + 16];
    GByteArray *body;
    bool body_too_big;
    int64_t body_deadline_ms;
    /* A request that carried a body is answered with "connection: close" and
     * the connection closes after it: no request is read behind a body
     * (RFC 9112 §9.6), which is where lws 4.1 re-entered body completion in
     * a loop that never wrote the reply. */
    bool close_after;
    bool has_body;
    char range[128];
    char content_range[64]; /* a 416's "bytes * /size" (without the space) */
    /* response */
    bool responded; /* headers are out: a late body completion must not answer again */
    int status;
    const char *ctype;
    GString *resp;
    size_t sent;
    /* or a recording streamed from disk: bytes [pos, end) of a plain file
     * (fd) or of an encrypted one read through its decrypting reader */
    bool streaming;
    bool have_fd;
    int fd;
    tm_rec_reader *reader;
    uint64_t pos, end, total;
} http_pss;

typedef struct http_req {
    tm_app *app;
    struct lws *wsi;
    http_pss *p;
    gchar **seg; /* path segments after /api/v1 */
    int nseg;
    json_t *body; /* parsed body or NULL */
    tm_identity who;
} http_req;

size_t tm_http_pss_size(void)
{
    return sizeof(http_pss);
}

static tm_app *app_of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

/* ---- responses ----------------------------------------------------- */

static void respond_text(http_pss *p, int status, const char *ctype, GString *body)
{
    p->status = status;
    p->ctype = ctype;
    if (p->resp)
        g_string_free(p->resp, TRUE);
    p->resp = body;
    p->sent = 0;
}

/* Steals data. */
static void respond_json(http_pss *p, int status, json_t *data)
{
    char *text = json_dumps(data, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(data);
    GString *body = g_string_new(text ? text : "{}");
    g_string_append_c(body, '\n');
    free(text);
    respond_text(p, status, "application/json", body);
}

static int http_status_of(int err)
{
    switch (err) {
    case TM_EINVAL:
    case TM_ETOOBIG:
    case TM_EUNSUPPORTED:
        return 400;
    case TM_EAUTH:
        return 401;
    case TM_EPERM:
        return 403;
    case TM_ENOTFOUND:
        return 404;
    case TM_ECONFLICT:
        return 409;
    case TM_ERATE:
        return 429;
    default:
        return 500;
    }
}

static void respond_err(http_pss *p, int err, const char *message)
{
    respond_json(p, http_status_of(err),
                 json_pack("{s:{s:s, s:s}}", "error", "code", tm_error_code(err), "message",
                           message ? message : tm_strerror(err)));
}

static int add_header(struct lws *wsi, const char *name, const char *value, unsigned char **ptr,
                      unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                       (const unsigned char *)value, (int)strlen(value), ptr, end);
}

static int send_headers(struct lws *wsi, http_pss *p)
{
    unsigned char buf[LWS_PRE + 1024];
    unsigned char *start = buf + LWS_PRE, *ptr = start, *end = buf + sizeof(buf) - 1;
    uint64_t length = p->streaming ? p->end - p->pos : p->resp->len;
    if (lws_add_http_common_headers(wsi, (unsigned int)p->status, p->ctype, length, &ptr, end))
        return -1;
    if (p->streaming) {
        char cr[96];
        if (add_header(wsi, "accept-ranges:", "bytes", &ptr, end))
            return -1;
        if (p->status == 206 &&
            add_header(wsi, "content-range:",
                       tm_http_content_range(206, p->pos, p->end - 1, p->total, cr, sizeof(cr)),
                       &ptr, end))
            return -1;
    }
    if (p->content_range[0] && add_header(wsi, "content-range:", p->content_range, &ptr, end))
        return -1;
    if (lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)"no-store", 8, &ptr, end))
        return -1;
    if (add_header(wsi, "x-content-type-options:", "nosniff", &ptr, end))
        return -1;
    if (p->close_after && add_header(wsi, "connection:", "close", &ptr, end))
        return -1;
    if (lws_finalize_write_http_header(wsi, start, &ptr, end))
        return -1;
    lws_callback_on_writable(wsi);
    return 0;
}

/* ---- request parsing helpers --------------------------------------- */

static const char *arg(http_req *r, const char *name, char *buf, size_t len)
{
    char key[64];
    snprintf(key, sizeof(key), "%s=", name);
    const char *v = lws_get_urlarg_by_name(r->wsi, key, buf, (int)len);
    return v && *v ? v : NULL;
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

static int64_t arg_time(http_req *r, const char *name, bool *bad)
{
    char buf[64];
    int64_t t = parse_time_str(arg(r, name, buf, sizeof(buf)));
    if (t < 0)
        *bad = true;
    return t < 0 ? 0 : t;
}

static int64_t body_time(json_t *body, const char *key, bool *bad)
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
static const char *body_str(json_t *body, const char *key, size_t max, bool required, bool *bad)
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

static bool id_ok(const char *id)
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
    char ip[64] = "";
    lws_get_peer_simple(r->wsi, ip, sizeof(ip));
    tm_warn("http.auth_refused", "route=%s reason=%s peer=%s", r->seg[0], why, ip);
    tm_store_audit(r->app->store, r->who.sub[0] ? r->who.sub : NULL, NULL, "api.auth", r->seg[0],
                   "denied", why);
}

static bool authenticate(http_req *r)
{
    const char *h = r->p->auth;
    if (strncmp(h, "Bearer ", 7) != 0) {
        note_auth_refused(r, "no_token");
        respond_err(r->p, TM_EAUTH, "Authorization: Bearer <token> is required");
        return false;
    }
    const char *why = NULL;
    if (tm_jwt_verify(r->app->jwt, h + 7, strlen(h + 7), tm_now_ms() / 1000,
                      r->app->cfg.jwt_leeway_s, &r->who, &why) < 0) {
        char msg[96];
        snprintf(msg, sizeof(msg), "token refused: %s", why ? why : "invalid");
        note_auth_refused(r, why ? why : "invalid");
        respond_err(r->p, TM_EAUTH, msg);
        return false;
    }
    if (r->who.hospital[0] && strcmp(r->who.hospital, r->app->cfg.hospital_id) != 0) {
        note_auth_refused(r, "other_hospital");
        respond_err(r->p, TM_EPERM, "token is for another hospital");
        return false;
    }
    tm_conn_limit_authenticated(r->app->conn_limit, lws_get_socket_fd(r->wsi));
    return true;
}

static bool need(http_req *r, bool ok)
{
    if (!ok)
        respond_err(r->p, TM_EPERM, "not allowed for this role");
    return ok;
}

static bool is_admin(http_req *r)
{
    return r->who.role == TM_ROLE_ADMIN;
}

static bool is_staff(http_req *r)
{
    return r->who.role == TM_ROLE_ADMIN || r->who.role == TM_ROLE_SUPERVISOR;
}

static void audit(http_req *r, const char *action, const char *target, const char *outcome)
{
    tm_store_audit(r->app->store, r->who.sub, tm_role_name(r->who.role), action, target, outcome,
                   NULL);
}

/* A list read of patient data: the target is the patient asked for (or "*"
 * for a list over many), the query string goes into the detail. */
static void audit_list(http_req *r, const char *action, const char *patient)
{
    char query[256] = "";
    int n = lws_hdr_copy(r->wsi, query, sizeof(query), WSI_TOKEN_HTTP_URI_ARGS);
    tm_store_audit(r->app->store, r->who.sub, tm_role_name(r->who.role), action,
                   patient ? patient : "*", "ok", n > 0 ? query : NULL);
}

/* Doctors read the patients of their own department, and those a visit of
 * theirs (a consultation, transfer or referral) brought to them. */
static bool doctor_may_see(http_req *r, const char *dept_id, const char *patient_id)
{
    tm_doctor_info doc;
    if (tm_store_doctor_get(r->app->store, r->who.sub, &doc) == 0 &&
        strcmp(doc.dept_id, dept_id) == 0)
        return true;
    json_t *mine =
        tm_store_visit_list(r->app->store, NULL, NULL, r->who.sub, patient_id, 0, 0, 1, 0);
    bool seen = json_array_size(mine) > 0;
    json_decref(mine);
    return seen;
}

/* ---- resources ----------------------------------------------------- */

static void api_departments(http_req *r)
{
    tm_store *st = r->app->store;
    if (r->p->method == LWSHUMETH_GET && r->nseg == 1) {
        respond_json(r->p, 200, json_pack("{s:o}", "departments", tm_store_dept_list(st)));
        return;
    }
    if (!need(r, is_admin(r)))
        return;
    if (r->p->method == LWSHUMETH_POST && r->nseg == 1) {
        bool bad = false;
        const char *id = body_str(r->body, "id", 63, true, &bad);
        const char *name = body_str(r->body, "name", 200, true, &bad);
        if (bad || !id_ok(id)) {
            respond_err(r->p, TM_EINVAL, "department needs id ([A-Za-z0-9._-]{1,63}) and name");
            return;
        }
        int rc = tm_store_dept_put(st, id, name);
        if (rc < 0) {
            respond_err(r->p, rc, NULL);
            return;
        }
        audit(r, "department.put", id, "ok");
        respond_json(r->p, 201, json_pack("{s:s, s:s}", "id", id, "name", name));
        return;
    }
    if (r->p->method == LWSHUMETH_DELETE && r->nseg == 2) {
        int rc = tm_store_dept_delete(st, r->seg[1]);
        if (rc < 0) {
            respond_err(r->p, rc, rc == TM_ECONFLICT ? "department is in use" : NULL);
            return;
        }
        audit(r, "department.delete", r->seg[1], "ok");
        respond_json(r->p, 200, json_pack("{s:s}", "deleted", r->seg[1]));
        return;
    }
    respond_err(r->p, TM_ENOTFOUND, "no such route");
}

static void api_doctors(http_req *r)
{
    tm_store *st = r->app->store;
    if (r->p->method == LWSHUMETH_GET && r->nseg == 1) {
        char dept[64];
        respond_json(r->p, 200,
                     json_pack("{s:o}", "doctors",
                               tm_store_doctor_list(st, arg(r, "dept", dept, sizeof(dept)))));
        return;
    }
    if (!need(r, is_admin(r)))
        return;
    if (r->p->method == LWSHUMETH_POST && r->nseg == 1) {
        bool bad = false;
        const char *id = body_str(r->body, "id", 63, true, &bad);
        const char *name = body_str(r->body, "name", 200, true, &bad);
        const char *dept = body_str(r->body, "dept_id", 63, true, &bad);
        const char *licence = body_str(r->body, "licence_no", 63, false, &bad);
        const char *title = body_str(r->body, "title", 100, false, &bad);
        if (bad || !id_ok(id)) {
            respond_err(r->p, TM_EINVAL,
                        "doctor needs id, name, dept_id; licence_no and title optional");
            return;
        }
        int rc = tm_store_doctor_put(st, id, name, dept, licence, title);
        if (rc < 0) {
            respond_err(r->p, rc, rc == TM_EINVAL ? "unknown department" : NULL);
            return;
        }
        audit(r, "doctor.put", id, "ok");
        respond_json(r->p, 201, json_pack("{s:s, s:s}", "id", id, "dept_id", dept));
        return;
    }
    respond_err(r->p, TM_ENOTFOUND, "no such route");
}

static void api_shifts(http_req *r)
{
    tm_store *st = r->app->store;
    if (r->p->method == LWSHUMETH_GET && r->nseg == 1) {
        char doctor[64], dept[64];
        bool bad = false;
        const char *doc = arg(r, "doctor", doctor, sizeof(doctor));
        if (r->who.role == TM_ROLE_DOCTOR)
            doc = r->who.sub; /* a doctor sees their own schedule */
        else if (!need(r, is_staff(r)))
            return;
        int64_t from = arg_time(r, "from", &bad), to = arg_time(r, "to", &bad);
        if (bad) {
            respond_err(r->p, TM_EINVAL, "from/to must be RFC 3339 or epoch ms");
            return;
        }
        respond_json(
            r->p, 200,
            json_pack("{s:o}", "shifts",
                      tm_store_shift_list(st, doc, arg(r, "dept", dept, sizeof(dept)), from, to)));
        return;
    }
    if (!need(r, is_admin(r)))
        return;
    if (r->p->method == LWSHUMETH_POST && r->nseg == 1) {
        bool bad = false;
        const char *doctor = body_str(r->body, "doctor_id", 63, true, &bad);
        const char *dept = body_str(r->body, "dept_id", 63, true, &bad);
        int64_t start = body_time(r->body, "start", &bad), end = body_time(r->body, "end", &bad);
        json_t *cap = json_object_get(r->body, "capacity");
        if (cap &&
            (!json_is_integer(cap) || json_integer_value(cap) < 1 || json_integer_value(cap) > 100))
            bad = true;
        if (bad || !start || !end || end <= start) {
            respond_err(r->p, TM_EINVAL,
                        "shift needs doctor_id, dept_id, start < end (RFC 3339 "
                        "or epoch ms) and optional capacity 1-100");
            return;
        }
        char id[64];
        int rc = tm_store_shift_add(st, doctor, dept, start, end,
                                    cap ? (int)json_integer_value(cap) : 1, id);
        if (rc < 0) {
            respond_err(r->p, rc, rc == TM_EINVAL ? "unknown doctor or department" : NULL);
            return;
        }
        audit(r, "shift.add", id, "ok");
        tm_signaling_shifts_changed(r->app->sig);
        respond_json(r->p, 201, json_pack("{s:s}", "id", id));
        return;
    }
    if (r->p->method == LWSHUMETH_DELETE && r->nseg == 2) {
        int rc = tm_store_shift_delete(st, r->seg[1]);
        if (rc < 0) {
            respond_err(r->p, rc, NULL);
            return;
        }
        audit(r, "shift.delete", r->seg[1], "ok");
        tm_signaling_shifts_changed(r->app->sig);
        respond_json(r->p, 200, json_pack("{s:s}", "deleted", r->seg[1]));
        return;
    }
    respond_err(r->p, TM_ENOTFOUND, "no such route");
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

static void api_appointments(http_req *r)
{
    tm_store *st = r->app->store;
    int m = r->p->method;
    if (m == LWSHUMETH_GET && r->nseg == 1) {
        if (!need(r,
                  is_staff(r) || r->who.role == TM_ROLE_DOCTOR || r->who.role == TM_ROLE_PATIENT))
            return;
        char patient[128], dept[64], status[16], limit[16];
        bool bad = false;
        const char *pat = arg(r, "patient", patient, sizeof(patient));
        const char *dep = arg(r, "dept", dept, sizeof(dept));
        tm_doctor_info doc;
        if (r->who.role == TM_ROLE_PATIENT)
            pat = r->who.sub; /* patients see their own bookings only */
        if (r->who.role == TM_ROLE_DOCTOR) {
            /* a doctor sees the bookings of their own department */
            if (tm_store_doctor_get(r->app->store, r->who.sub, &doc) < 0) {
                respond_err(r->p, TM_EPERM, "this doctor is not registered at the hospital");
                return;
            }
            dep = doc.dept_id;
        }
        int64_t from = arg_time(r, "from", &bad), to = arg_time(r, "to", &bad);
        if (bad) {
            respond_err(r->p, TM_EINVAL, "from/to must be RFC 3339 or epoch ms");
            return;
        }
        const char *lim = arg(r, "limit", limit, sizeof(limit));
        audit_list(r, "appointment.list", pat);
        respond_json(
            r->p, 200,
            json_pack("{s:o}", "appointments",
                      tm_store_appt_list(st, pat, dep, arg(r, "status", status, sizeof(status)),
                                         from, to, lim ? atoi(lim) : 0)));
        return;
    }
    if (m == LWSHUMETH_GET && r->nseg == 2) {
        tm_appointment a;
        int rc = tm_store_appt_get(st, r->seg[1], &a);
        if (rc == 0 && r->who.role == TM_ROLE_PATIENT && strcmp(a.patient_id, r->who.sub) != 0)
            rc = TM_ENOTFOUND;
        if (rc == 0 &&
            !(is_staff(r) || r->who.role == TM_ROLE_DOCTOR || r->who.role == TM_ROLE_PATIENT))
            rc = TM_EPERM;
        if (rc == 0 && r->who.role == TM_ROLE_DOCTOR && !doctor_may_see(r, a.dept_id, a.patient_id))
            rc = TM_EPERM;
        audit(r, "appointment.read", r->seg[1],
              rc == 0              ? "ok"
              : rc == TM_ENOTFOUND ? "not_found"
                                   : "denied");
        if (rc < 0)
            respond_err(r->p, rc, rc == TM_EPERM ? "not a patient of your department" : NULL);
        else
            respond_json(r->p, 200, appt_json(&a));
        return;
    }
    if (!need(r, is_admin(r)))
        return;
    if (m == LWSHUMETH_POST && r->nseg == 1) {
        bool bad = false;
        tm_appointment a = {0};
        const char *id = body_str(r->body, "id", 63, false, &bad);
        const char *patient = body_str(r->body, "patient_id", 127, true, &bad);
        const char *dept = body_str(r->body, "dept_id", 63, true, &bad);
        const char *doctor = body_str(r->body, "doctor_id", 63, false, &bad);
        const char *kind = body_str(r->body, "kind", 15, false, &bad);
        a.slot_ms = body_time(r->body, "slot", &bad);
        if (bad || !a.slot_ms || (id && !id_ok(id))) {
            respond_err(r->p, TM_EINVAL,
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
            respond_err(r->p, TM_EINVAL, "unknown department");
            return;
        }
        char new_id[64];
        int rc = tm_store_appt_create(st, &a, new_id);
        if (rc < 0) {
            respond_err(r->p, rc,
                        rc == TM_ECONFLICT ? "appointment id exists or unknown doctor"
                                           : "kind must be follow_up or first");
            return;
        }
        audit(r, "appointment.create", new_id, "ok");
        tm_store_appt_get(st, new_id, &a);
        respond_json(r->p, 201, appt_json(&a));
        return;
    }
    if ((m == LWSHUMETH_PATCH || m == LWSHUMETH_PUT || m == LWSHUMETH_DELETE) && r->nseg == 2) {
        tm_appointment a;
        int rc = tm_store_appt_get(st, r->seg[1], &a);
        if (rc < 0) {
            respond_err(r->p, rc, NULL);
            return;
        }
        if (strcmp(a.status, "booked") != 0) {
            respond_err(r->p, TM_ECONFLICT, "only booked appointments can change");
            return;
        }
        if (m == LWSHUMETH_DELETE) {
            g_strlcpy(a.status, "cancelled", sizeof(a.status));
        } else {
            bool bad = false;
            int64_t slot = body_time(r->body, "slot", &bad);
            const char *doctor = body_str(r->body, "doctor_id", 63, false, &bad);
            const char *status = body_str(r->body, "status", 15, false, &bad);
            const char *kind = body_str(r->body, "kind", 15, false, &bad);
            if (bad) {
                respond_err(r->p, TM_EINVAL, "slot, doctor_id, status or kind malformed");
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
        rc = tm_store_appt_update(st, &a);
        if (rc < 0) {
            respond_err(r->p, rc, rc == TM_EINVAL ? "invalid status, kind, slot or doctor" : NULL);
            return;
        }
        audit(r, m == LWSHUMETH_DELETE ? "appointment.cancel" : "appointment.update", a.id, "ok");
        respond_json(r->p, 200, appt_json(&a));
        return;
    }
    respond_err(r->p, TM_ENOTFOUND, "no such route");
}

/* GET /api/v1/visits/{id}/chain: the hash chain over the visit's regulator
 * events checked again (visit_chain.h). */
static void api_visit_chain(http_req *r)
{
    if (!need(r, is_staff(r)))
        return;
    json_t *report = tm_store_visit_chain(r->app->store, r->seg[1]);
    if (!report) {
        respond_err(r->p, TM_EIO, NULL);
        return;
    }
    if (json_integer_value(json_object_get(report, "events")) == 0) {
        json_decref(report);
        respond_err(r->p, TM_ENOTFOUND, "no such visit");
        return;
    }
    bool ok = json_is_true(json_object_get(report, "ok"));
    audit(r, "visit.chain", r->seg[1], ok ? "ok" : "failed");
    respond_json(r->p, 200, report);
}

/* GET /api/v1/visits/{id}/verify: the record checked end to end, seal,
 * chain, note and recording files (record_seal.h). */
static void api_visit_verify(http_req *r)
{
    if (!need(r, is_staff(r)))
        return;
    int rc = 0;
    json_t *report = tm_record_verify(r->app->store, r->seg[1], r->app->seal_key,
                                      r->app->have_rec_key ? r->app->rec_key : NULL, &rc);
    if (!report) {
        respond_err(r->p, rc, rc == TM_ENOTFOUND ? "no such visit" : NULL);
        return;
    }
    bool ok = json_is_true(json_object_get(report, "ok"));
    audit(r, "visit.verify", r->seg[1], ok ? "ok" : "failed");
    respond_json(r->p, 200, report);
}

static void api_visits(http_req *r)
{
    tm_store *st = r->app->store;
    if (r->p->method != LWSHUMETH_GET) {
        respond_err(r->p, TM_ENOTFOUND, "no such route");
        return;
    }
    if (r->nseg == 1) {
        char state[16], dept[64], doctor[64], patient[128], limit[16], offset[16];
        const char *doc = arg(r, "doctor", doctor, sizeof(doctor));
        if (r->who.role == TM_ROLE_DOCTOR)
            doc = r->who.sub;
        else if (!need(r, is_staff(r)))
            return;
        bool bad = false;
        int64_t from = arg_time(r, "from", &bad), to = arg_time(r, "to", &bad);
        if (bad) {
            respond_err(r->p, TM_EINVAL, "from/to must be RFC 3339 or epoch ms");
            return;
        }
        const char *lim = arg(r, "limit", limit, sizeof(limit));
        const char *off = arg(r, "offset", offset, sizeof(offset));
        const char *pat = arg(r, "patient", patient, sizeof(patient));
        audit_list(r, "visit.list", pat);
        json_t *list = tm_store_visit_list(st, arg(r, "state", state, sizeof(state)),
                                           arg(r, "dept", dept, sizeof(dept)), doc, pat, from, to,
                                           lim ? atoi(lim) : 0, off ? atoi(off) : 0);
        respond_json(r->p, 200, json_pack("{s:o}", "visits", list ? list : json_array()));
        return;
    }
    if (r->nseg == 3 && strcmp(r->seg[2], "chain") == 0) {
        api_visit_chain(r);
        return;
    }
    if (r->nseg == 3 && strcmp(r->seg[2], "verify") == 0) {
        api_visit_verify(r);
        return;
    }
    if (r->nseg == 2 || (r->nseg == 3 && strcmp(r->seg[2], "fhir") == 0)) {
        json_t *rec = tm_store_visit_record(st, r->seg[1]);
        if (!rec) {
            audit(r, "visit.read", r->seg[1], "not_found");
            respond_err(r->p, TM_ENOTFOUND, "no such visit");
            return;
        }
        const char *doctor = json_string_value(json_object_get(rec, "doctor_id"));
        bool own = r->who.role == TM_ROLE_DOCTOR && doctor && strcmp(doctor, r->who.sub) == 0;
        if (!is_staff(r) && !own) {
            json_decref(rec);
            audit(r, "visit.read", r->seg[1], "denied");
            respond_err(r->p, TM_EPERM, "not allowed for this role");
            return;
        }
        /* Reading a medical record is an access worth a trace. */
        audit(r, r->nseg == 3 ? "visit.export_fhir" : "visit.read", r->seg[1], "ok");
        if (r->nseg == 3) {
            json_t *enc = tm_fhir_encounter(rec, r->app->cfg.hospital_id);
            json_decref(rec);
            if (!enc) {
                respond_err(r->p, TM_EIO, "cannot export this visit");
                return;
            }
            respond_json(r->p, 200, enc);
            r->p->ctype = "application/fhir+json";
            return;
        }
        respond_json(r->p, 200, rec);
        return;
    }
    respond_err(r->p, TM_ENOTFOUND, "no such route");
}

/* GET /api/v1/recordings/{id}: the file, with byte ranges so a player can
 * seek; encrypted recordings are decrypted on the fly. Every fetch is in
 * the audit log, with the range asked for. */
static void api_recordings(http_req *r)
{
    if (r->p->method != LWSHUMETH_GET || r->nseg != 2) {
        respond_err(r->p, TM_ENOTFOUND, "no such route");
        return;
    }
    if (!is_staff(r)) {
        audit(r, "recording.fetch", r->seg[1], "denied");
        respond_err(r->p, TM_EPERM, "recordings are for supervisors and admins");
        return;
    }
    json_t *rec = tm_recording_get(r->app->store, r->seg[1]);
    if (!rec) {
        audit(r, "recording.fetch", r->seg[1], "not_found");
        respond_err(r->p, TM_ENOTFOUND, "no such recording");
        return;
    }
    const char *state = json_string_value(json_object_get(rec, "state"));
    const char *path = json_string_value(json_object_get(rec, "path"));
    bool encrypted = json_is_true(json_object_get(rec, "encrypted"));
    http_pss *p = r->p;
    char *err = NULL;
    if (state && strcmp(state, "deleted") == 0) {
        audit(r, "recording.fetch", r->seg[1], "gone");
        respond_json(p, 410,
                     json_pack("{s:{s:s, s:s}}", "error", "code", "not_found", "message",
                               "deleted under the retention policy"));
        goto done;
    }
    if (encrypted) {
        if (!r->app->have_rec_key) {
            audit(r, "recording.fetch", r->seg[1], "failed");
            respond_err(p, TM_EUNSUPPORTED, "the recording key is not configured");
            goto done;
        }
        if (!(p->reader = tm_rec_reader_open(path, r->app->rec_key, &err))) {
            audit(r, "recording.fetch", r->seg[1], "failed");
            respond_err(p, TM_EIO, "the recording cannot be read");
            goto done;
        }
        p->total = tm_rec_reader_size(p->reader);
    } else {
        struct stat sb;
        p->fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
        p->have_fd = p->fd >= 0;
        if (!p->have_fd || fstat(p->fd, &sb) < 0) {
            audit(r, "recording.fetch", r->seg[1], "failed");
            respond_err(p, TM_EIO, "the recording file is missing");
            goto done;
        }
        p->total = (uint64_t)sb.st_size;
    }
    uint64_t first = 0, last = p->total ? p->total - 1 : 0;
    int status = tm_http_range_parse(p->range[0] ? p->range : NULL, strlen(p->range), p->total,
                                     &first, &last);
    tm_store_audit(r->app->store, r->who.sub, tm_role_name(r->who.role), "recording.fetch",
                   r->seg[1], status == 416 ? "denied" : "ok", p->range[0] ? p->range : NULL);
    if (status == 416) {
        tm_http_content_range(416, 0, 0, p->total, p->content_range, sizeof(p->content_range));
        respond_json(p, 416,
                     json_pack("{s:{s:s, s:s}}", "error", "code", "bad_request", "message",
                               p->content_range));
        goto done;
    }
    p->streaming = true;
    p->status = status;
    p->ctype = "video/x-matroska";
    p->pos = status == 206 ? first : 0;
    p->end = status == 206 ? last + 1 : p->total;
    if (p->end == p->pos) { /* an empty file: nothing to stream */
        p->streaming = false;
        respond_text(p, 200, "video/x-matroska", g_string_new(NULL));
    }
done:
    g_free(err);
    json_decref(rec);
}

static void api_audit(http_req *r)
{
    if (!need(r, is_staff(r)))
        return;
    if (r->p->method != LWSHUMETH_GET || r->nseg != 1) {
        respond_err(r->p, TM_ENOTFOUND, "no such route");
        return;
    }
    char target[128], actor[128], limit[16];
    bool bad = false;
    int64_t from = arg_time(r, "from", &bad);
    if (bad) {
        respond_err(r->p, TM_EINVAL, "from must be RFC 3339 or epoch ms");
        return;
    }
    const char *lim = arg(r, "limit", limit, sizeof(limit));
    /* Reading who read what is itself a read worth a trace; the row is
     * written first, so the answer shows it too. */
    audit_list(r, "audit.read", arg(r, "target", target, sizeof(target)));
    respond_json(r->p, 200,
                 json_pack("{s:o}", "audit",
                           tm_store_audit_list(
                               r->app->store, arg(r, "target", target, sizeof(target)),
                               arg(r, "actor", actor, sizeof(actor)), from, lim ? atoi(lim) : 0)));
}

static void api_overview(http_req *r)
{
    if (!need(r, is_staff(r)))
        return;
    if (r->p->method != LWSHUMETH_GET) {
        respond_err(r->p, TM_ENOTFOUND, "no such route");
        return;
    }
    audit(r, "overview.read", "*", "ok");
    respond_json(r->p, 200, tm_signaling_overview(r->app->sig));
}

static void respond_profile_rc(http_req *r, int rc)
{
    respond_err(r->p, rc,
                rc == TM_ENOTFOUND   ? "no such profile or dead letter"
                : rc == TM_EINVAL    ? "day must be YYYY-MM-DD"
                : rc == TM_ECONFLICT ? "not a dead letter"
                                     : NULL);
}

/* /feed/profiles[/{name}[/run | /dead-letters/{id}/replay]]: the batch
 * delivery profiles (feed_profile.h). */
static void api_feed_profiles(http_req *r)
{
    tm_feed_profiles *set = r->app->profiles;
    int m = r->p->method;
    if (m == LWSHUMETH_GET && r->nseg == 2) {
        respond_json(r->p, 200, json_pack("{s:o}", "profiles", tm_feed_profiles_list(set)));
        return;
    }
    if (m == LWSHUMETH_GET && r->nseg == 3) {
        int rc = 0;
        json_t *st = tm_feed_profiles_status(set, r->seg[2], 100, &rc);
        if (!st)
            respond_profile_rc(r, rc);
        else
            respond_json(r->p, 200, st);
        return;
    }
    if (m != LWSHUMETH_POST) {
        respond_err(r->p, TM_ENOTFOUND, "no such route");
        return;
    }
    if (!need(r, is_admin(r)))
        return;
    if (r->nseg == 4 && strcmp(r->seg[3], "run") == 0) {
        bool bad = false;
        const char *day = body_str(r->body, "day", 10, false, &bad);
        if (bad) {
            respond_err(r->p, TM_EINVAL, "day must be YYYY-MM-DD");
            return;
        }
        int rc = tm_feed_profiles_run(set, r->seg[2], day);
        audit(r, "feed.profile_run", r->seg[2], rc >= 0 ? "ok" : "failed");
        if (rc < 0)
            respond_profile_rc(r, rc);
        else
            respond_json(r->p, 200, json_pack("{s:s, s:i}", "profile", r->seg[2], "staged", rc));
        return;
    }
    if (r->nseg == 6 && strcmp(r->seg[3], "dead-letters") == 0 &&
        strcmp(r->seg[5], "replay") == 0) {
        char *endp;
        long long id = strtoll(r->seg[4], &endp, 10);
        if (*endp || id <= 0) {
            respond_err(r->p, TM_EINVAL, "id must be a positive integer");
            return;
        }
        int rc = tm_feed_profiles_replay(set, r->seg[2], id);
        audit(r, "feed.profile_replay", r->seg[4], rc == 0 ? "ok" : "failed");
        if (rc < 0)
            respond_profile_rc(r, rc);
        else
            respond_json(r->p, 200,
                         json_pack("{s:I, s:s}", "id", (json_int_t)id, "state", "pending"));
        return;
    }
    respond_err(r->p, TM_ENOTFOUND, "no such route");
}

/* PUT /regulator-ids/{doctor|patient|dept}/{id} {"code", "cert_type"?}:
 * identifiers the hospital's identity system owns and a platform asks for. */
static void api_regulator_ids(http_req *r)
{
    if (!need(r, is_admin(r)))
        return;
    if (r->p->method != LWSHUMETH_PUT || r->nseg != 3) {
        respond_err(r->p, TM_ENOTFOUND, "no such route");
        return;
    }
    bool bad = false;
    const char *code = body_str(r->body, "code", 64, true, &bad);
    const char *cert_type = body_str(r->body, "cert_type", 8, false, &bad);
    if (bad || !id_ok(r->seg[2])) {
        respond_err(r->p, TM_EINVAL, "code (1-64 chars) required; cert_type optional");
        return;
    }
    int rc = tm_store_regulator_id_put(r->app->store, r->seg[1], r->seg[2], cert_type, code);
    audit(r, "regulator_id.put", r->seg[2], rc == 0 ? "ok" : "failed");
    if (rc < 0)
        respond_err(r->p, rc, rc == TM_EINVAL ? "kind must be doctor, patient or dept" : NULL);
    else
        respond_json(r->p, 200, json_pack("{s:s, s:s}", "kind", r->seg[1], "id", r->seg[2]));
}

static void api_feed(http_req *r)
{
    tm_feed *f = r->app->feed;
    if (!need(r, is_staff(r)))
        return;
    if (r->nseg >= 2 && strcmp(r->seg[1], "profiles") == 0) {
        api_feed_profiles(r);
        return;
    }
    if (!f) {
        respond_err(r->p, TM_EUNSUPPORTED, "the regulator feed is not running");
        return;
    }
    if (r->p->method == LWSHUMETH_GET && r->nseg == 1) {
        json_t *status = tm_feed_status(f);
        json_t *dead = tm_feed_dead_letters(f, 100);
        if (!status) {
            json_decref(dead);
            respond_err(r->p, TM_EIO, NULL);
            return;
        }
        json_object_set_new(status, "dead_letters", dead ? dead : json_array());
        respond_json(r->p, 200, status);
        return;
    }
    if (r->p->method == LWSHUMETH_GET && r->nseg == 2 && strcmp(r->seg[1], "dead-letters") == 0) {
        respond_json(r->p, 200, json_pack("{s:o}", "dead_letters", tm_feed_dead_letters(f, 1000)));
        return;
    }
    if (r->p->method == LWSHUMETH_POST && r->nseg == 4 && strcmp(r->seg[1], "dead-letters") == 0 &&
        strcmp(r->seg[3], "replay") == 0) {
        if (!need(r, is_admin(r)))
            return;
        char *endp;
        long long seq = strtoll(r->seg[2], &endp, 10);
        if (*endp || seq <= 0) {
            respond_err(r->p, TM_EINVAL, "seq must be a positive integer");
            return;
        }
        int rc = tm_feed_replay(f, seq);
        audit(r, "feed.replay", r->seg[2], rc == 0 ? "ok" : "failed");
        if (rc < 0)
            respond_err(r->p, rc, rc == TM_ECONFLICT ? "not a dead letter" : NULL);
        else
            respond_json(r->p, 200,
                         json_pack("{s:I, s:s}", "seq", (json_int_t)seq, "state", "pending"));
        return;
    }
    respond_err(r->p, TM_ENOTFOUND, "no such route");
}

static void api_me(http_req *r)
{
    if (r->p->method != LWSHUMETH_GET) {
        respond_err(r->p, TM_ENOTFOUND, "no such route");
        return;
    }
    json_t *o = json_pack("{s:s, s:s, s:s}", "sub", r->who.sub, "role", tm_role_name(r->who.role),
                          "dept", r->who.dept);
    if (r->who.role == TM_ROLE_DOCTOR) {
        json_t *fig = NULL;
        GDateTime *now = g_date_time_new_now_local();
        GDateTime *midnight =
            g_date_time_new_local(g_date_time_get_year(now), g_date_time_get_month(now),
                                  g_date_time_get_day_of_month(now), 0, 0, 0);
        if (tm_store_doctor_figures(r->app->store, r->who.sub, g_date_time_to_unix(midnight) * 1000,
                                    &fig) == 0)
            json_object_set_new(o, "today", fig);
        g_date_time_unref(midnight);
        g_date_time_unref(now);
    }
    respond_json(r->p, 200, o);
}

static const struct {
    const char *name;
    void (*fn)(http_req *r);
} routes[] = {
    {"departments", api_departments},
    {"doctors", api_doctors},
    {"shifts", api_shifts},
    {"appointments", api_appointments},
    {"visits", api_visits},
    {"audit", api_audit},
    {"overview", api_overview},
    {"feed", api_feed},
    {"me", api_me},
    {"recordings", api_recordings},
    {"regulator-ids", api_regulator_ids},
};

static void route_api(http_req *r, const char *rest)
{
    r->seg = g_strsplit(rest, "/", 16);
    r->nseg = (int)g_strv_length(r->seg);
    while (r->nseg > 0 && r->seg[r->nseg - 1][0] == 0) { /* trailing slash */
        g_free(r->seg[r->nseg - 1]);
        r->seg[--r->nseg] = NULL;
    }
    if (r->nseg == 0) {
        respond_err(r->p, TM_ENOTFOUND, "no such route");
        return;
    }
    if (r->p->body && r->p->body->len) {
        json_error_t jerr;
        r->body = json_loadb((const char *)r->p->body->data, r->p->body->len,
                             JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(r->body)) {
            char msg[200];
            snprintf(msg, sizeof(msg), "body must be a JSON object: %s", r->body ? "" : jerr.text);
            respond_err(r->p, TM_EINVAL, msg);
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
    respond_err(r->p, TM_ENOTFOUND, "no such route");
}

static void route_metrics(tm_app *app, http_pss *p)
{
    GString *out =
        g_string_new("# HELP telemed_up The server is running.\n# TYPE telemed_up gauge\n"
                     "telemed_up 1\n");
    g_string_append_printf(out,
                           "# TYPE telemed_uptime_seconds gauge\ntelemed_uptime_seconds %lld\n",
                           (long long)((tm_now_ms() - app->started_ms) / 1000));
    tm_signaling_metrics(app->sig, out);
    g_string_append_printf(
        out,
        "# TYPE telemed_connections_refused_total counter\n"
        "telemed_connections_refused_total{why=\"unauthenticated_per_addr\"} %llu\n",
        (unsigned long long)app->conns_refused);
    if (app->feed)
        tm_feed_metrics(app->feed, out);
    tm_feed_profiles_metrics(app->profiles, out);
    if (app->media) {
        tm_media_counters c;
        tm_media_get_counters(app->media, &c);
        g_string_append_printf(out,
                               "# TYPE telemed_media_peers gauge\ntelemed_media_peers %llu\n"
                               "# TYPE telemed_media_visits gauge\ntelemed_media_visits %llu\n"
                               "# TYPE telemed_media_rx_packets_total counter\n"
                               "telemed_media_rx_packets_total %llu\n"
                               "# TYPE telemed_media_tx_packets_total counter\n"
                               "telemed_media_tx_packets_total %llu\n"
                               "# TYPE telemed_media_dropped_packets_total counter\n"
                               "telemed_media_dropped_packets_total{why=\"malformed\"} %llu\n"
                               "telemed_media_dropped_packets_total{why=\"unknown_source\"} %llu\n",
                               (unsigned long long)c.peers, (unsigned long long)c.visits,
                               (unsigned long long)c.rx_packets, (unsigned long long)c.tx_packets,
                               (unsigned long long)c.dropped_malformed,
                               (unsigned long long)c.dropped_unknown_source);
        tm_media_latency lat;
        tm_media_get_latency(app->media, &lat);
        g_string_append_printf(
            out,
            "# HELP telemed_media_forward_latency_us Receive to last send inside "
            "the server, per RTP packet.\n"
            "# TYPE telemed_media_forward_latency_us summary\n"
            "telemed_media_forward_latency_us{quantile=\"0.5\"} %.1f\n"
            "telemed_media_forward_latency_us{quantile=\"0.99\"} %.1f\n"
            "telemed_media_forward_latency_us{quantile=\"1\"} %.1f\n"
            "telemed_media_forward_latency_us_count %llu\n"
            "# TYPE telemed_media_nacks_sent_total counter\n"
            "telemed_media_nacks_sent_total %llu\n"
            "# TYPE telemed_media_rtx_received_total counter\n"
            "telemed_media_rtx_received_total %llu\n",
            lat.p50_us, lat.p99_us, lat.max_us, (unsigned long long)lat.samples,
            (unsigned long long)c.nacks_sent, (unsigned long long)c.rtx_received);
    }
    respond_text(p, 200, "text/plain; version=0.0.4", out);
}

static void route_health(tm_app *app, http_pss *p)
{
    int version = tm_store_schema_version(app->store);
    bool ok = version > 0;
    respond_json(p, ok ? 200 : 503,
                 json_pack("{s:s, s:i, s:I}", "status", ok ? "ok" : "degraded", "schema_version",
                           version, "uptime_s",
                           (json_int_t)((tm_now_ms() - app->started_ms) / 1000)));
}

static bool route_takes_body(const http_pss *p)
{
    return (p->method == LWSHUMETH_POST || p->method == LWSHUMETH_PUT ||
            p->method == LWSHUMETH_PATCH) &&
           strncmp(p->path, "/api/v1/", 8) == 0;
}

/* Routes a complete request and starts the response. */
static int handle_request(struct lws *wsi, http_pss *p)
{
    tm_app *app = app_of(wsi);
    if (p->responded)
        return 0;
    p->responded = true;
    if (p->body_too_big) {
        respond_err(p, TM_ETOOBIG, "request body over 256 KiB");
    } else if (p->has_body && !route_takes_body(p)) {
        respond_json(p, 405,
                     json_pack("{s:{s:s, s:s}}", "error", "code", tm_error_code(TM_EINVAL),
                               "message", "this route takes no request body"));
    } else if (strcmp(p->path, "/healthz") == 0) {
        route_health(app, p);
    } else if (strcmp(p->path, "/metrics") == 0) {
        route_metrics(app, p);
    } else if (strncmp(p->path, "/api/v1/", 8) == 0) {
        http_req r = {.app = app, .wsi = wsi, .p = p};
        route_api(&r, p->path + 8);
        g_strfreev(r.seg);
        json_decref(r.body);
    } else {
        respond_err(p, TM_ENOTFOUND, "no such route");
    }
    if (!p->resp && !p->streaming) /* a route that forgot to answer is a bug, not a crash */
        respond_err(p, TM_EIO, "no response");
    return send_headers(wsi, p);
}

static void pss_clear(http_pss *p)
{
    if (p->body)
        g_byte_array_free(p->body, TRUE);
    if (p->resp)
        g_string_free(p->resp, TRUE);
    if (p->have_fd)
        close(p->fd);
    p->have_fd = false;
    tm_rec_reader_free(p->reader);
    p->body = NULL;
    p->resp = NULL;
    p->reader = NULL;
    p->streaming = false;
}

/* The reply is out: wait for the next request, or close after one that
 * carried a body (once lws has flushed what it buffered). */
static int finish_response(struct lws *wsi, http_pss *p)
{
    bool close = p->close_after;
    pss_clear(p);
    if (close)
        return lws_raw_transaction_completed(wsi);
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* Sends the next piece of a recording; the last one completes the reply. */
static int write_recording_chunk(struct lws *wsi, http_pss *p)
{
    unsigned char buf[LWS_PRE + CHUNK];
    uint64_t left = p->end - p->pos;
    size_t want = left > CHUNK ? CHUNK : (size_t)left;
    int64_t n = p->reader ? tm_rec_reader_pread(p->reader, buf + LWS_PRE, want, p->pos)
                          : (int64_t)pread(p->fd, buf + LWS_PRE, want, (off_t)p->pos);
    if (n <= 0)
        return -1; /* the file shrank or a chunk failed authentication: cut the reply */
    bool last = (uint64_t)n == left;
    if (lws_write(wsi, buf + LWS_PRE, (size_t)n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) !=
        (int)n)
        return -1;
    p->pos += (uint64_t)n;
    if (!last) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    pss_clear(p);
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* ---- request framing -------------------------------------------- */

typedef enum { FRAMING_NONE, FRAMING_LENGTH, FRAMING_BAD_REQUEST, FRAMING_NEEDS_LENGTH } framing;

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* RFC 9112 §6.3: a body whose length a proxy in front could read otherwise
 * is refused, not guessed: Content-Length with Transfer-Encoding, repeated
 * or signed lengths. Chunked bodies are not taken at all (411). */
static framing request_framing(struct lws *wsi, uint64_t *length, const char **why)
{
    *length = 0;
    bool te = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0;
    int cl = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
    if (te && cl > 0) {
        *why = "Content-Length and Transfer-Encoding together";
        return FRAMING_BAD_REQUEST;
    }
    if (te) {
        *why = "Transfer-Encoding is not accepted on requests; send Content-Length";
        return FRAMING_NEEDS_LENGTH;
    }
    if (cl <= 0)
        return FRAMING_NONE;
    char text[24];
    if (lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, 1) > 0 ||
        cl >= (int)sizeof(text) ||
        lws_hdr_copy_fragment(wsi, text, sizeof(text), WSI_TOKEN_HTTP_CONTENT_LENGTH, 0) < 0 ||
        !all_digits(text) || strlen(text) > 15) {
        *why = "Content-Length must be one decimal number";
        return FRAMING_BAD_REQUEST;
    }
    *length = g_ascii_strtoull(text, NULL, 10);
    return *length ? FRAMING_LENGTH : FRAMING_NONE;
}

/* Answers before the body is read and closes: the framing is not to be
 * trusted, so neither is anything behind it. The reply is written at once
 * because lws goes on to read the body it believes in. */
static int refuse_framing(struct lws *wsi, http_pss *p, int status, const char *why)
{
    tm_info("http.bad_framing", "status=%d", status);
    p->responded = true;
    p->close_after = true;
    respond_json(
        p, status,
        json_pack("{s:{s:s, s:s}}", "error", "code", tm_error_code(TM_EINVAL), "message", why));
    if (send_headers(wsi, p))
        return -1;
    unsigned char buf[LWS_PRE + 512];
    size_t n = p->resp->len < 512 ? p->resp->len : 512;
    memcpy(buf + LWS_PRE, p->resp->str, n);
    if (lws_write(wsi, buf + LWS_PRE, n, LWS_WRITE_HTTP_FINAL) != (int)n)
        return -1;
    pss_clear(p);
    return lws_raw_transaction_completed(wsi);
}

static int start_request(struct lws *wsi, http_pss *p)
{
    pss_clear(p);
    memset(p, 0, sizeof(*p));
    const char *uri = NULL;
    int ulen = 0;
    p->method = lws_http_get_uri_and_method(wsi, (char **)&uri, &ulen);
    if (p->method < 0 || ulen <= 0 || ulen >= (int)sizeof(p->path)) {
        lws_return_http_status(wsi, 414, NULL);
        return -1;
    }
    memcpy(p->path, uri, (size_t)ulen);
    p->path[ulen] = 0;
    if (lws_hdr_copy(wsi, p->auth, sizeof(p->auth), WSI_TOKEN_HTTP_AUTHORIZATION) < 0)
        p->auth[0] = 0;
    if (lws_hdr_copy(wsi, p->range, sizeof(p->range), WSI_TOKEN_HTTP_RANGE) < 0)
        p->range[0] = 0;
    uint64_t length;
    const char *why = NULL;
    switch (request_framing(wsi, &length, &why)) {
    case FRAMING_BAD_REQUEST:
        return refuse_framing(wsi, p, 400, why);
    case FRAMING_NEEDS_LENGTH:
        return refuse_framing(wsi, p, 411, why);
    case FRAMING_NONE:
        return handle_request(wsi, p);
    case FRAMING_LENGTH:
        break;
    }
    p->close_after = true;
    p->has_body = true;
    p->body_deadline_ms = tm_now_ms() + BODY_DEADLINE_MS;
    if (length > MAX_BODY)
        p->body_too_big = true;
    else if (route_takes_body(p))
        p->body = g_byte_array_sized_new((guint)length);
    return 0; /* the body comes in LWS_CALLBACK_HTTP_BODY */
}

/* Keeps the body of a route that takes one; a body elsewhere is read and
 * dropped so the refusal reaches the client. */
static int take_body(http_pss *p, const void *in, size_t len)
{
    if (!p->has_body)
        return 0;
    if (tm_now_ms() > p->body_deadline_ms) {
        tm_info("http.body_timeout", "path_len=%zu", strlen(p->path));
        return -1;
    }
    if (p->responded || !p->body)
        return 0;
    if (p->body->len + len > MAX_BODY)
        p->body_too_big = true;
    else
        g_byte_array_append(p->body, in, (guint)len);
    return 0;
}

/* At accept, before TLS: one address may hold only so many connections
 * that have not authenticated. Refusals are counted; the log gets one line
 * a second at most, so that a flood cannot fill the disk. */
static int filter_connection(struct lws *wsi, int fd)
{
    tm_app *app = app_of(wsi);
    if (!app->conn_limit || tm_conn_limit_admit(app->conn_limit, fd) != TM_ERATE)
        return 0;
    app->conns_refused++;
    int64_t now = tm_mono_ms();
    if (now - app->conns_refused_logged_ms >= 1000) {
        app->conns_refused_logged_ms = now;
        tm_warn("http.conn_refused", "reason=unauthenticated_per_addr max=%d refused_total=%llu",
                app->cfg.max_unauth_per_addr, (unsigned long long)app->conns_refused);
    }
    return -1;
}

int tm_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len)
{
    if (reason == LWS_CALLBACK_FILTER_NETWORK_CONNECTION) /* in: the accepted fd */
        return filter_connection(wsi, (int)(intptr_t)in);
    http_pss *p = user;
    if (!p) /* not (or no longer) one of our requests */
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return start_request(wsi, p) ? -1 : 0;
    case LWS_CALLBACK_HTTP_BODY:
        return take_body(p, in, len) ? -1 : 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return handle_request(wsi, p) ? -1 : 0;
    case LWS_CALLBACK_HTTP_WRITEABLE: {
        if (p->streaming)
            return write_recording_chunk(wsi, p);
        if (!p->resp)
            return 0;
        size_t left = p->resp->len - p->sent;
        size_t n = left > CHUNK ? CHUNK : left;
        unsigned char buf[LWS_PRE + CHUNK];
        memcpy(buf + LWS_PRE, p->resp->str + p->sent, n);
        bool last = n == left;
        if (lws_write(wsi, buf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) !=
            (int)n)
            return -1;
        p->sent += n;
        if (!last) {
            lws_callback_on_writable(wsi);
            return 0;
        }
        return finish_response(wsi, p);
    }
    case LWS_CALLBACK_CLOSED_HTTP:
        pss_clear(p);
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/*
 * api_records.c - the patient record as REST resources: visits (with the
 * FHIR export, the hash chain and the end-to-end verify), recordings
 * streamed with byte ranges, the audit log, the live overview and the
 * caller's own identity (me). Every read of patient data is audited.
 *
 * Control loop thread only, but for the verify's file hashing (a GTask on
 * GLib's worker pool, touching only its own check).
 */
#include "http_internal.h"
#include "telemed/common.h"
#include "telemed/fhir.h"
#include "telemed/figures.h"
#include "telemed/http_range.h"
#include "telemed/rec_crypt.h"
#include "telemed/record_seal.h"
#include "telemed/signaling.h"
#include "telemed/store.h"

#include <fcntl.h>
#include <gio/gio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* GET /api/v1/visits/{id}/chain: the hash chain over the visit's regulator
 * events checked again (visit_chain.h). */
/* A staff read of one visit outside the caller's institution: refused and
 * audited as action (issue 18). */
static bool visit_in_scope(http_req *r, const char *action)
{
    if (!r->who.institution[0] || tm__scope_has_visit(r, r->seg[1]))
        return true;
    tm__audit(r, action, r->seg[1], "denied");
    tm__respond_err(r->p, TM_EPERM, "the visit belongs to another institution");
    return false;
}

static void api_visit_chain(http_req *r)
{
    if (!tm__need(r, tm__is_staff(r)) || !visit_in_scope(r, "visit.chain"))
        return;
    json_t *report = tm_store_visit_chain(r->app->store, r->seg[1]);
    if (!report) {
        tm__respond_err(r->p, TM_EIO, NULL);
        return;
    }
    if (json_integer_value(json_object_get(report, "events")) == 0) {
        json_decref(report);
        tm__respond_err(r->p, TM_ENOTFOUND, "no such visit");
        return;
    }
    bool ok = json_is_true(json_object_get(report, "ok"));
    tm__audit(r, "visit.chain", r->seg[1], ok ? "ok" : "failed");
    tm__respond_json(r->p, 200, report);
}

/* GET /api/v1/visits/{id}/verify: the record checked end to end, seal,
 * chain, note and recording files (record_seal.h). The store's part runs
 * here; the files, which may be gigabytes, are hashed on a worker thread
 * while the request waits parked (http_internal.h), so signaling and every
 * other request go on meanwhile. */
typedef struct verify_job {
    tm_app *app;
    tm__http_later *later;
    tm_record_check *check;
    char visit_id[128];
    char sub[128];
    tm_role role;
} verify_job;

/* Each verify may hash gigabytes on GLib's shared thread pool: a few at
 * once keep the disk and the pool for the rest of the server. */
#define VERIFY_MAX_RUNNING 2

static void verify_files(GTask *task, gpointer source, gpointer data, GCancellable *cancel)
{
    (void)source, (void)cancel;
    verify_job *job = data;
    tm_record_check_files(job->check);
    g_task_return_boolean(task, TRUE);
}

/* Back on the control loop: the report, its audit row, the answer. */
static void verify_done(GObject *source, GAsyncResult *result, gpointer data)
{
    (void)source, (void)result;
    verify_job *job = data;
    int rc = 0;
    json_t *report = tm_record_check_finish(job->check, &rc);
    bool ok = report && json_is_true(json_object_get(report, "ok"));
    tm_store_audit(job->app->store, job->sub, tm_role_name(job->role), "visit.verify",
                   job->visit_id, ok ? "ok" : "failed", NULL);
    http_pss *p = tm__http_later_pss(job->later);
    if (p && report)
        tm__respond_json(p, 200, report);
    else if (p)
        tm__respond_err(p, rc, NULL);
    else
        json_decref(report);
    tm__http_later_done(job->later);
    job->app->verifies_running--;
    g_free(job);
}

static void api_visit_verify(http_req *r)
{
    if (!tm__need(r, tm__is_staff(r)) || !visit_in_scope(r, "visit.verify"))
        return;
    if (r->app->verifies_running >= VERIFY_MAX_RUNNING) {
        tm__respond_err(r->p, TM_ERATE,
                        "other verifications are running; try again when one has finished");
        return;
    }
    int rc = 0;
    tm_record_check *check =
        tm_record_check_begin(r->app->store, r->seg[1], r->app->seal_key,
                              r->app->have_rec_key ? r->app->rec_key : NULL, &rc);
    if (!check) {
        tm__respond_err(r->p, rc, rc == TM_ENOTFOUND ? "no such visit" : NULL);
        return;
    }
    verify_job *job = g_new0(verify_job, 1);
    job->app = r->app;
    job->check = check;
    g_strlcpy(job->visit_id, r->seg[1], sizeof(job->visit_id));
    g_strlcpy(job->sub, r->who.sub, sizeof(job->sub));
    job->role = r->who.role;
    job->later = tm__http_defer(r->p);
    r->app->verifies_running++;
    GTask *task = g_task_new(NULL, NULL, verify_done, job);
    g_task_set_task_data(task, job, NULL);
    g_task_run_in_thread(task, verify_files);
    g_object_unref(task);
}

void tm__api_visits(http_req *r)
{
    tm_store *st = r->app->store;
    if (r->p->method != LWSHUMETH_GET) {
        tm__respond_err(r->p, TM_ENOTFOUND, "no such route");
        return;
    }
    if (r->nseg == 1) {
        char state[16], dept[64], doctor[64], patient[128], limit[16], offset[16];
        const char *doc = tm__arg(r, "doctor", doctor, sizeof(doctor));
        if (r->who.role == TM_ROLE_DOCTOR)
            doc = r->who.sub;
        else if (!tm__need(r, tm__is_staff(r)))
            return;
        bool bad = false;
        int64_t from = tm__arg_time(r, "from", &bad), to = tm__arg_time(r, "to", &bad);
        if (bad) {
            tm__respond_err(r->p, TM_EINVAL, "from/to must be RFC 3339 or epoch ms");
            return;
        }
        const char *lim = tm__arg(r, "limit", limit, sizeof(limit));
        const char *off = tm__arg(r, "offset", offset, sizeof(offset));
        const char *pat = tm__arg(r, "patient", patient, sizeof(patient));
        tm__audit_list(r, "visit.list", pat);
        const char *st_arg = tm__arg(r, "state", state, sizeof(state));
        const char *dept_arg = tm__arg(r, "dept", dept, sizeof(dept));
        /* A supervisor scoped to an institution lists its visits only. */
        json_t *list =
            tm__is_staff(r) && r->who.institution[0]
                ? tm_store_visit_list_in(st, r->who.institution, st_arg, dept_arg, doc, pat, from,
                                         to, lim ? atoi(lim) : 0, off ? atoi(off) : 0)
                : tm_store_visit_list(st, st_arg, dept_arg, doc, pat, from, to, lim ? atoi(lim) : 0,
                                      off ? atoi(off) : 0);
        tm__respond_json(r->p, 200, json_pack("{s:o}", "visits", list ? list : json_array()));
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
            tm__audit(r, "visit.read", r->seg[1], "not_found");
            tm__respond_err(r->p, TM_ENOTFOUND, "no such visit");
            return;
        }
        const char *doctor = json_string_value(json_object_get(rec, "doctor_id"));
        bool own = r->who.role == TM_ROLE_DOCTOR && doctor && strcmp(doctor, r->who.sub) == 0;
        /* A consulting doctor and a nurse of the visit read its record and
         * notes too (the permission table); an interpreter does not. */
        char role[16];
        if (!own && r->who.role == TM_ROLE_DOCTOR &&
            tm_store_party_role(st, r->seg[1], r->who.sub, role) == 0)
            own = tm_signaling_role_reads_notes(role);
        if (!tm__is_staff(r) && !own) {
            json_decref(rec);
            tm__audit(r, "visit.read", r->seg[1], "denied");
            tm__respond_err(r->p, TM_EPERM, "not allowed for this role");
            return;
        }
        if (tm__is_staff(r) &&
            !visit_in_scope(r, r->nseg == 3 ? "visit.export_fhir" : "visit.read")) {
            json_decref(rec);
            return;
        }
        /* Reading a medical record is an access worth a trace. */
        tm__audit(r, r->nseg == 3 ? "visit.export_fhir" : "visit.read", r->seg[1], "ok");
        if (r->nseg == 3) {
            json_t *enc = tm_fhir_encounter(rec, r->app->cfg.hospital_id);
            json_decref(rec);
            if (!enc) {
                tm__respond_err(r->p, TM_EIO, "cannot export this visit");
                return;
            }
            tm__respond_json(r->p, 200, enc);
            r->p->ctype = "application/fhir+json";
            return;
        }
        /* followup18: the follow-ups booked in the visit belong to its record. */
        json_t *followups = tm_store_followups_of_visit(st, r->seg[1]);
        json_object_set_new(rec, "followups", followups ? followups : json_array());
        tm__respond_json(r->p, 200, rec);
        return;
    }
    tm__respond_err(r->p, TM_ENOTFOUND, "no such route");
}

/* Streams a recording's or rendition's file (row as tm_recording_get or
 * tm_rendition_get give it) with byte ranges so a player can seek; an
 * encrypted file is decrypted on the fly. Every fetch is in the audit log
 * as action, with the range asked for. */
static void serve_file(http_req *r, json_t *row, const char *action, const char *ctype)
{
    const char *state = json_string_value(json_object_get(row, "state"));
    const char *path = json_string_value(json_object_get(row, "path"));
    bool encrypted = json_is_true(json_object_get(row, "encrypted"));
    http_pss *p = r->p;
    char *err = NULL;
    if (state && strcmp(state, "deleted") == 0) {
        tm__audit(r, action, r->seg[1], "gone");
        tm__respond_json(p, 410,
                         json_pack("{s:{s:s, s:s}}", "error", "code", "not_found", "message",
                                   "deleted under the retention policy"));
        goto done;
    }
    if (encrypted) {
        if (!r->app->have_rec_key) {
            tm__audit(r, action, r->seg[1], "failed");
            tm__respond_err(p, TM_EUNSUPPORTED, "the recording key is not configured");
            goto done;
        }
        if (!path || !(p->reader = tm_rec_reader_open(path, r->app->rec_key, &err))) {
            tm__audit(r, action, r->seg[1], "failed");
            tm__respond_err(p, TM_EIO, "the file cannot be read");
            goto done;
        }
        p->total = tm_rec_reader_size(p->reader);
    } else {
        struct stat sb;
        p->fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
        p->have_fd = p->fd >= 0;
        if (!p->have_fd || fstat(p->fd, &sb) < 0) {
            tm__audit(r, action, r->seg[1], "failed");
            tm__respond_err(p, TM_EIO, "the file is missing");
            goto done;
        }
        p->total = (uint64_t)sb.st_size;
    }
    uint64_t first = 0, last = p->total ? p->total - 1 : 0;
    int status = tm_http_range_parse(p->range[0] ? p->range : NULL, strlen(p->range), p->total,
                                     &first, &last);
    tm_store_audit(r->app->store, r->who.sub, tm_role_name(r->who.role), action, r->seg[1],
                   status == 416 ? "denied" : "ok", p->range[0] ? p->range : NULL);
    if (status == 416) {
        tm_http_content_range(416, 0, 0, p->total, p->content_range, sizeof(p->content_range));
        tm__respond_json(p, 416,
                         json_pack("{s:{s:s, s:s}}", "error", "code", "bad_request", "message",
                                   p->content_range));
        goto done;
    }
    p->streaming = true;
    p->status = status;
    p->ctype = ctype;
    p->pos = status == 206 ? first : 0;
    p->end = status == 206 ? last + 1 : p->total;
    if (p->end == p->pos) { /* an empty file: nothing to stream */
        p->streaming = false;
        tm__respond_text(p, 200, ctype, g_string_new(NULL));
    }
done:
    g_free(err);
}

/* A recording or rendition of a visit outside the caller's institution:
 * refused and audited (issue 18). */
static bool file_in_scope(http_req *r, json_t *row, const char *action)
{
    if (!r->who.institution[0] ||
        tm__scope_has_visit(r, json_string_value(json_object_get(row, "visit_id"))))
        return true;
    tm__audit(r, action, r->seg[1], "denied");
    tm__respond_err(r->p, TM_EPERM, "the visit belongs to another institution");
    return false;
}

/* GET /api/v1/recordings/{id}: the evidence, as recorded. */
void tm__api_recordings(http_req *r)
{
    if (r->p->method != LWSHUMETH_GET || r->nseg != 2) {
        tm__respond_err(r->p, TM_ENOTFOUND, "no such route");
        return;
    }
    if (!tm__is_staff(r)) {
        tm__audit(r, "recording.fetch", r->seg[1], "denied");
        tm__respond_err(r->p, TM_EPERM, "recordings are for supervisors and admins");
        return;
    }
    json_t *rec = tm_recording_get(r->app->store, r->seg[1]);
    if (!rec) {
        tm__audit(r, "recording.fetch", r->seg[1], "not_found");
        tm__respond_err(r->p, TM_ENOTFOUND, "no such recording");
        return;
    }
    if (!file_in_scope(r, rec, "recording.fetch")) {
        json_decref(rec);
        return;
    }
    serve_file(r, rec, "recording.fetch", "video/x-matroska");
    json_decref(rec);
}

/* GET /api/v1/renditions/{id}: the review copy (review.h), once complete. */
void tm__api_renditions(http_req *r)
{
    if (r->p->method != LWSHUMETH_GET || r->nseg != 2) {
        tm__respond_err(r->p, TM_ENOTFOUND, "no such route");
        return;
    }
    if (!tm__is_staff(r)) {
        tm__audit(r, "rendition.fetch", r->seg[1], "denied");
        tm__respond_err(r->p, TM_EPERM, "recordings are for supervisors and admins");
        return;
    }
    json_t *ren = tm_rendition_get(r->app->store, r->seg[1]);
    const char *state = ren ? json_string_value(json_object_get(ren, "state")) : NULL;
    if (!ren || !state || (strcmp(state, "complete") != 0 && strcmp(state, "deleted") != 0)) {
        tm__audit(r, "rendition.fetch", r->seg[1], "not_found");
        tm__respond_err(r->p, ren ? TM_ECONFLICT : TM_ENOTFOUND,
                        ren ? "the rendition is not ready" : "no such rendition");
        json_decref(ren);
        return;
    }
    if (!file_in_scope(r, ren, "rendition.fetch")) {
        json_decref(ren);
        return;
    }
    serve_file(r, ren, "rendition.fetch", "video/webm");
    json_decref(ren);
}

void tm__api_audit(http_req *r)
{
    if (!tm__need(r, tm__is_staff(r)))
        return;
    if (r->p->method != LWSHUMETH_GET || r->nseg != 1) {
        tm__respond_err(r->p, TM_ENOTFOUND, "no such route");
        return;
    }
    char target[128], actor[128], limit[16];
    bool bad = false;
    int64_t from = tm__arg_time(r, "from", &bad);
    if (bad) {
        tm__respond_err(r->p, TM_EINVAL, "from must be RFC 3339 or epoch ms");
        return;
    }
    const char *lim = tm__arg(r, "limit", limit, sizeof(limit));
    /* The audit log is the deployment's: a supervisor of one institution
     * reads the trail of its own visits, one visit at a time. */
    const char *tgt = tm__arg(r, "target", target, sizeof(target));
    if (r->who.institution[0] && !tm__scope_has_visit(r, tgt)) {
        tm__audit(r, "audit.read", tgt ? tgt : "*", "denied");
        tm__respond_err(r->p, TM_EPERM,
                        "a supervisor of one institution reads the audit of its own visits: "
                        "give target=<visit id>");
        return;
    }
    /* Reading who read what is itself a read worth a trace; the row is
     * written first, so the answer shows it too. */
    tm__audit_list(r, "audit.read", tm__arg(r, "target", target, sizeof(target)));
    tm__respond_json(
        r->p, 200,
        json_pack("{s:o}", "audit",
                  tm_store_audit_list(r->app->store, tm__arg(r, "target", target, sizeof(target)),
                                      tm__arg(r, "actor", actor, sizeof(actor)), from,
                                      lim ? atoi(lim) : 0)));
}

void tm__api_overview(http_req *r)
{
    if (!tm__need(r, tm__is_staff(r)))
        return;
    if (r->p->method != LWSHUMETH_GET) {
        tm__respond_err(r->p, TM_ENOTFOUND, "no such route");
        return;
    }
    tm__audit(r, "overview.read", "*", "ok");
    tm__respond_json(r->p, 200, tm_signaling_overview_in(r->app->sig, r->who.institution));
}

void tm__api_me(http_req *r)
{
    if (r->p->method != LWSHUMETH_GET) {
        tm__respond_err(r->p, TM_ENOTFOUND, "no such route");
        return;
    }
    json_t *o = json_pack("{s:s, s:s, s:s}", "sub", r->who.sub, "role", tm_role_name(r->who.role),
                          "dept", r->who.dept);
    json_object_set_new(o, "institution",
                        r->who.institution[0] ? json_string(r->who.institution) : json_null());
    if (r->who.role == TM_ROLE_DOCTOR) {
        /* Today as the figures count days: from midnight in the hospital's
         * time zone, not the server's. */
        json_t *fig = NULL;
        int64_t midnight = tm_figures_day_start(r->app->cfg.figures_time_zone, tm_now_ms());
        if (tm_store_doctor_figures(r->app->store, r->who.sub, midnight, &fig) == 0)
            json_object_set_new(o, "today", fig);
    }
    tm__respond_json(r->p, 200, o);
}

/*
 * http_internal.h - what the REST API's own files share: the per-request
 * state (http_pss, one per lws connection, owned by http.c), the parsed
 * request a resource works on (http_req), responses and the request helpers.
 * Not part of any contract: only server/http.c and server/api*.c include it.
 *
 * Control loop thread only.
 */
#ifndef TELEMED_HTTP_INTERNAL_H
#define TELEMED_HTTP_INTERNAL_H

#include "app.h"
#include "telemed/rec_crypt.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tm__http_later tm__http_later;

typedef struct http_pss {
    struct lws *wsi; /* the connection this request came on */
    int method;
    char path[512];
    char auth[TM_JWT_MAX_LEN + 16];
    /* what the resources read of the request besides its headers, copied
     * from lws when it starts: the query's arguments as lws splits and
     * decodes them ("name=value" each), the query joined with '&' ("" when
     * absent or 256 bytes or longer), the peer's address and socket */
    GPtrArray *args;
    char query[256];
    char peer_ip[64];
    int sock_fd;
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
    char accept[256];       /* the Accept header ("" when absent or longer) */
    char content_range[64]; /* a 416's "bytes * /size" (without the space) */
    /* response */
    bool responded;             /* headers are out: a late body completion must not answer again */
    tm__http_later *later;      /* parked: its answer comes from tm__http_later_done */
    bool headers_when_writable; /* the parked answer is in: write its headers */
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
    http_pss *p;
    gchar **seg; /* path segments after /api/v1 */
    int nseg;
    json_t *body; /* parsed body or NULL */
    tm_identity who;
} http_req;

/* How a request's body is framed (RFC 9112 §6.3), from its headers as lws
 * holds them: Transfer-Encoding present, Content-Length's total length, the
 * length of a second Content-Length, and the first one's text (NULL when it
 * could not be copied). Sets *length for TM_HTTP_FRAMING_LENGTH and *why
 * (static) for the refusals. */
typedef enum {
    TM_HTTP_FRAMING_NONE,
    TM_HTTP_FRAMING_LENGTH,
    TM_HTTP_FRAMING_BAD_REQUEST,
    TM_HTTP_FRAMING_NEEDS_LENGTH
} tm__http_framing;
tm__http_framing tm__http_framing_of(bool transfer_encoding, int cl_total, int cl_second,
                                     const char *cl_text, uint64_t *length, const char **why);

/* A body of length bytes follows the headers (TM_HTTP_FRAMING_LENGTH): the
 * connection closes after the reply, the body has a deadline, and only a
 * route that takes a body keeps it. */
void tm__http_expect_body(http_pss *p, uint64_t length);
/* A piece of the body; -1 when its deadline has passed (close). */
int tm__http_take_body(http_pss *p, const void *in, size_t len);

/* Routes a complete request (p filled in from lws, the body in p->body) and
 * leaves its response in p: p->resp, or a recording to stream. No socket is
 * touched; http.c writes the response. */
void tm__http_route(tm_app *app, http_pss *p);
/* Frees what a request holds (body, response, open recording, args). */
void tm__http_pss_clear(http_pss *p);

/* A response given later: a resource whose work must not run on the
 * control loop (hashing a recording) parks its request with defer and
 * returns without answering; the connection waits. When the work is done,
 * back on the loop, it takes the request with later_pss (NULL when the
 * client has gone meanwhile: drop the answer), puts the answer in it as
 * usual, and calls later_done, which sends it and frees l. */
tm__http_later *tm__http_defer(http_pss *p);
http_pss *tm__http_later_pss(tm__http_later *l);
void tm__http_later_done(tm__http_later *l);

/* Responses (http.c). respond_json steals data; respond_text steals body. */
void tm__respond_text(http_pss *p, int status, const char *ctype, GString *body);
void tm__respond_json(http_pss *p, int status, json_t *data);
void tm__respond_err(http_pss *p, int err, const char *message);
/* An error with a stable reason word beside the code (error.reason), for a
 * refusal the pages put in the user's language, as signaling's errors do. */
void tm__respond_err_reason(http_pss *p, int err, const char *message, const char *reason);

/* Request helpers (api.c). */
const char *tm__arg(http_req *r, const char *name, char *buf, size_t len);
int64_t tm__arg_time(http_req *r, const char *name, bool *bad);
int64_t tm__body_time(json_t *body, const char *key, bool *bad);
const char *tm__body_str(json_t *body, const char *key, size_t max, bool required, bool *bad);
bool tm__id_ok(const char *id);
bool tm__need(http_req *r, bool ok);
bool tm__is_admin(http_req *r);
bool tm__is_staff(http_req *r);
void tm__audit(http_req *r, const char *action, const char *target, const char *outcome);
void tm__audit_list(http_req *r, const char *action, const char *patient);
bool tm__doctor_may_see(http_req *r, const char *dept_id, const char *patient_id);
/* Institutions (issue 18). r->who.institution is the caller's after
 * authentication: a doctor's department's, a supervisor's or admin's scope
 * ("" = the whole alliance). Whether that scope takes in dept_id, and in
 * the visit visit_id (false also when there is no such visit). */
bool tm__scope_has_dept(http_req *r, const char *dept_id);
bool tm__scope_has_visit(http_req *r, const char *visit_id);
/* A list read by a caller scoped to an institution keeps the rows whose
 * dept_key department (or other_key's, when not NULL) is the institution's;
 * then at most limit rows (<= 0: all) stay. Steals and returns rows. Lists
 * capped by the store are read at their cap first, so the scope does not
 * starve them. */
json_t *tm__scope_rows(http_req *r, json_t *rows, const char *dept_key, const char *other_key,
                       int limit);

/* Parses rest (the path after /api/v1/) and the body into r, checks the
 * token and runs the resource; every outcome leaves a response in r->p. */
void tm__route_api(http_req *r, const char *rest);

/* Resources, one per first path segment (api_schedule.c, api_records.c,
 * api_feed.c). */
void tm__api_departments(http_req *r);
void tm__api_doctors(http_req *r);
void tm__api_shifts(http_req *r);
void tm__api_appointments(http_req *r);
void tm__api_visits(http_req *r);
void tm__api_recordings(http_req *r);
void tm__api_renditions(http_req *r);
void tm__api_audit(http_req *r);
void tm__api_overview(http_req *r);
void tm__api_me(http_req *r);
void tm__api_feed(http_req *r);
void tm__api_regulator_ids(http_req *r);
/* Issue 18: the doctor and department figures (api_figures.c). */
void tm__api_figures(http_req *r);
/* issue 18, consultation requests (api_consult.c) */
void tm__api_consultations(http_req *r);
/* issue 18 (transfer18): api_referral.c */
void tm__api_referrals(http_req *r);
void tm__api_institutions(http_req *r);
/* followup18: api_timeline.c, api_feed.c */
void tm__api_patients(http_req *r);
void tm__api_messaging(http_req *r);
/* issue 19: POST /admin/drain (api_node.c) */
void tm__api_admin(http_req *r);

#endif

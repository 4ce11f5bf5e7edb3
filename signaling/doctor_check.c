/*
 * doctor_check.c - a doctor's proof of identity before each visit (细则
 * Art. 13: the doctor's real-name identity is checked before the visit, and
 * no one else stands in). A doctor may accept a visit when the identity
 * system says it checked them recently: the token's auth_time within
 * doctor_verify_window_s (and one of doctor_verify_amr's methods, when set).
 * Otherwise, when the hospital runs a verification endpoint, it is asked at
 * accept time (docs/config.md says what it receives and answers); no
 * answer within doctor_verify_timeout_ms refuses the accept.
 *
 * Control loop. The endpoint is asked through libcurl's multi interface on
 * the control loop's context (curl_glib.h), so a slow hospital never holds
 * up signaling. A pending check names its session, user and visit by id and
 * finds them again when the answer comes: any may be gone by then.
 */
#include "signaling_internal.h"
#include "telemed/curl_glib.h"
#include "telemed/log.h"

#include <string.h>

/* The largest answer read from the endpoint, in bytes. */
#define MAX_ANSWER_BYTES 16384

typedef void (*check_done_fn)(request *r, const tm_doctor_check *check);

typedef struct pending_check {
    tm__doctor_checker *checker;
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    GByteArray *answer;
    char user_key[200];
    char session_id[48];
    char visit_id[64];
    char *request_id;
    json_t *msg;
    check_done_fn done;
} pending_check;

struct tm__doctor_checker {
    tm_signaling *sig;
    tm_curl_loop *curl; /* NULL without doctor_verify_url */
    GPtrArray *pending; /* of pending_check * */
};

static void pending_free(pending_check *p)
{
    if (p->easy) {
        tm_curl_loop_remove(p->checker->curl, p->easy);
        curl_easy_cleanup(p->easy);
    }
    curl_slist_free_all(p->headers);
    g_free(p->body);
    g_byte_array_free(p->answer, TRUE);
    g_free(p->request_id);
    json_decref(p->msg);
    g_free(p);
}

/* Why a doctor may not accept, as a stable reason the page shows in words. */
static void refuse(request *r, const char *reason, const char *message)
{
    tm_info("visit.accept_refused", "doctor=%s visit=%s reason=%s", r->u->sub,
            tm__jstr(r->msg, "visit_id"), reason);
    tm__reply_err_reason(r->s, r->id, TM_EPERM, message, reason);
}

/* Whether any of the token's amr methods is one the hospital accepts. */
static bool amr_accepted(const char *wanted_csv, const char *amr_csv)
{
    if (!wanted_csv || !*wanted_csv)
        return true;
    char **wanted = g_strsplit(wanted_csv, ",", -1);
    char **have = g_strsplit(amr_csv, ",", -1);
    bool ok = false;
    for (char **w = wanted; *w && !ok; w++)
        for (char **h = have; *h && !ok; h++)
            ok = **h && strcmp(g_strstrip(*w), *h) == 0;
    g_strfreev(wanted);
    g_strfreev(have);
    return ok;
}

/* NULL when the token proves the doctor recently enough, else the reason. */
static const char *token_shortfall(const tm_config *cfg, const session *s, int64_t now_s)
{
    if (!s->auth_time_s)
        return "identity_missing";
    if (s->auth_time_s > now_s + cfg->jwt_leeway_s ||
        now_s - s->auth_time_s > cfg->doctor_verify_window_s)
        return "identity_expired";
    if (!amr_accepted(cfg->doctor_verify_amr, s->amr))
        return "identity_method";
    return NULL;
}

static const char *shortfall_message(const char *reason)
{
    if (strcmp(reason, "identity_missing") == 0)
        return "your sign-in does not say when your identity was checked: sign in again";
    if (strcmp(reason, "identity_expired") == 0)
        return "your identity check is too old to accept a visit: sign in again";
    return "your sign-in did not use an identity check this hospital accepts (e.g. face)";
}

/* ---- asking the hospital's endpoint ---------------------------------- */

static size_t on_answer(char *data, size_t size, size_t n, void *pending)
{
    pending_check *p = pending;
    size_t len = size * n;
    if (p->answer->len + len > MAX_ANSWER_BYTES)
        return 0; /* too long: the transfer fails, the accept is refused */
    g_byte_array_append(p->answer, (const guint8 *)data, (guint)len);
    return len;
}

/* The endpoint's amr: a string or an array of strings, joined by ','. */
static void answer_amr(json_t *amr, char *out, size_t outlen)
{
    out[0] = 0;
    if (json_is_string(amr)) {
        g_strlcpy(out, json_string_value(amr), outlen);
        return;
    }
    size_t i;
    json_t *m;
    json_array_foreach(amr, i, m)
    {
        if (!json_is_string(m))
            continue;
        if (out[0])
            g_strlcat(out, ",", outlen);
        g_strlcat(out, json_string_value(m), outlen);
    }
}

/* Reads the endpoint's answer into *check; NULL when it verifies the doctor
 * recently enough, else the refusal's reason. */
static const char *judge_answer(const tm_config *cfg, long status, const GByteArray *body,
                                int64_t now_ms, tm_doctor_check *check)
{
    if (status != 200)
        return "identity_unavailable";
    json_t *a = json_loadb((const char *)body->data, body->len, 0, NULL);
    const char *why = NULL;
    json_t *at = json_object_get(a, "verified_at");
    if (!json_is_object(a) || !json_is_boolean(json_object_get(a, "verified")) ||
        (at && !json_is_integer(at)))
        why = "identity_unavailable";
    else if (!json_is_true(json_object_get(a, "verified")))
        why = "identity_refused";
    else {
        int64_t at_ms = at ? (int64_t)json_integer_value(at) * 1000 : now_ms;
        if (at_ms > now_ms + (int64_t)cfg->jwt_leeway_s * 1000 ||
            now_ms - at_ms > (int64_t)cfg->doctor_verify_window_s * 1000)
            why = "identity_expired";
        g_strlcpy(check->method, "endpoint", sizeof(check->method));
        answer_amr(json_object_get(a, "amr"), check->amr, sizeof(check->amr));
        check->verified_ms = at_ms;
    }
    json_decref(a);
    return why;
}

static void on_endpoint_done(CURL *easy, CURLcode result, void *data)
{
    tm__doctor_checker *c = data;
    pending_check *p = NULL;
    for (guint i = 0; i < c->pending->len && !p; i++)
        if (((pending_check *)g_ptr_array_index(c->pending, i))->easy == easy)
            p = g_ptr_array_index(c->pending, i);
    if (!p)
        return;
    g_ptr_array_remove_fast(c->pending, p);
    long status = 0;
    if (result == CURLE_OK)
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    tm_signaling *sig = c->sig;
    user *u = g_hash_table_lookup(sig->users, p->user_key);
    if (!u || !u->sess || strcmp(u->sess->id, p->session_id) != 0) {
        /* The doctor's connection is gone: nobody waits for this answer. */
        tm_info("visit.accept_abandoned", "visit=%s user=%s", p->visit_id, p->user_key);
        pending_free(p);
        return;
    }
    request r = {.sig = sig, .s = u->sess, .u = u, .msg = p->msg, .id = p->request_id};
    tm_doctor_check check;
    memset(&check, 0, sizeof(check));
    const char *why = result == CURLE_OK
                          ? judge_answer(sig->cfg, status, p->answer, tm_now_ms(), &check)
                          : "identity_unavailable";
    if (result != CURLE_OK)
        tm_warn("doctor.verify_failed", "visit=%s doctor=%s curl=%d", p->visit_id, u->sub,
                (int)result);
    if (!why)
        p->done(&r, &check);
    else if (strcmp(why, "identity_unavailable") == 0)
        refuse(&r, why, "the hospital's identity check did not answer in time: try again");
    else if (strcmp(why, "identity_refused") == 0)
        refuse(&r, why, "the hospital's identity check did not confirm you");
    else
        refuse(&r, why, "the hospital's identity check is too old to accept a visit");
    pending_free(p);
}

static bool check_pending(tm__doctor_checker *c, const char *visit_id)
{
    for (guint i = 0; i < c->pending->len; i++)
        if (strcmp(((pending_check *)g_ptr_array_index(c->pending, i))->visit_id, visit_id) == 0)
            return true;
    return false;
}

static int ask_endpoint(tm__doctor_checker *c, request *r, live_visit *v, check_done_fn done)
{
    const tm_config *cfg = c->sig->cfg;
    pending_check *p = g_new0(pending_check, 1);
    p->checker = c;
    p->answer = g_byte_array_new();
    g_strlcpy(p->user_key, r->u->key, sizeof(p->user_key));
    g_strlcpy(p->session_id, r->s->id, sizeof(p->session_id));
    g_strlcpy(p->visit_id, v->id, sizeof(p->visit_id));
    p->request_id = g_strdup(r->id);
    p->msg = json_incref(r->msg);
    p->done = done;
    json_t *q = json_pack("{s:s, s:s, s:s}", "hospital_id", cfg->hospital_id, "doctor_id",
                          r->u->sub, "visit_id", v->id);
    json_object_set_new(q, "auth_time",
                        r->s->auth_time_s ? json_integer(r->s->auth_time_s) : json_null());
    p->body = json_dumps(q, JSON_COMPACT);
    json_decref(q);
    p->headers = curl_slist_append(NULL, "Content-Type: application/json");
    p->easy = curl_easy_init();
    if (!p->easy || !p->body || !p->headers) {
        pending_free(p);
        return TM_ENOMEM;
    }
    CURL *e = p->easy;
    curl_easy_setopt(e, CURLOPT_URL, cfg->doctor_verify_url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, p->body);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, p->headers);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "telemed-doctor-check/1");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)cfg->doctor_verify_timeout_ms);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_answer);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, p);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    if (cfg->doctor_verify_ca)
        curl_easy_setopt(e, CURLOPT_CAINFO, cfg->doctor_verify_ca);
    if (tm_curl_loop_add(c->curl, e) < 0) {
        curl_easy_cleanup(p->easy);
        p->easy = NULL;
        pending_free(p);
        return TM_EIO;
    }
    g_ptr_array_add(c->pending, p);
    return 0;
}

/* ---- the check ------------------------------------------------------- */

void tm__doctor_check(request *r, live_visit *v, check_done_fn done)
{
    const tm_config *cfg = r->sig->cfg;
    tm__doctor_checker *c = r->sig->doctor_check;
    if (cfg->doctor_verify_window_s == 0) {
        done(r, NULL);
        return;
    }
    int64_t now_s = tm_now_ms() / 1000;
    const char *why = token_shortfall(cfg, r->s, now_s);
    if (!why) {
        tm_doctor_check check = {.method = "token", .verified_ms = r->s->auth_time_s * 1000};
        g_strlcpy(check.amr, r->s->amr, sizeof(check.amr));
        done(r, &check);
        return;
    }
    if (!c->curl) {
        refuse(r, why, shortfall_message(why));
        return;
    }
    if (check_pending(c, v->id)) {
        tm__reply_err(r->s, r->id, TM_ECONFLICT, "your identity check for this visit is under way");
        return;
    }
    if (ask_endpoint(c, r, v, done) < 0)
        refuse(r, "identity_unavailable", "the hospital's identity check could not be asked");
    else
        tm_info("doctor.verify_asked", "visit=%s doctor=%s token=%s", v->id, r->u->sub, why);
}

tm__doctor_checker *tm__doctor_checker_new(tm_signaling *sig, char **err)
{
    tm__doctor_checker *c = g_new0(tm__doctor_checker, 1);
    c->sig = sig;
    c->pending = g_ptr_array_new();
    if (sig->cfg->doctor_verify_url && sig->cfg->doctor_verify_window_s > 0) {
        c->curl = tm_curl_loop_new(NULL, on_endpoint_done, c);
        if (!c->curl) {
            *err = g_strdup("cannot start the client of doctor_verify_url");
            tm__doctor_checker_free(c);
            return NULL;
        }
    }
    return c;
}

void tm__doctor_checker_free(tm__doctor_checker *c)
{
    if (!c)
        return;
    for (guint i = 0; i < c->pending->len; i++)
        pending_free(g_ptr_array_index(c->pending, i));
    g_ptr_array_free(c->pending, TRUE);
    tm_curl_loop_free(c->curl);
    g_free(c);
}

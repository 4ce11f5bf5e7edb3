/*
 * fuzz_http.c - requests as a client writes them, through what of the HTTP
 * side runs without a socket: the body framing checks (Content-Length,
 * Transfer-Encoding), the body's deadline and size, and the routing of
 * /healthz, /metrics and every REST resource under /api/v1/ with its query
 * arguments, token and JSON body, over a real SQLite store holding the demo
 * hospital, a live signaling module and the regulator feed writing its
 * NDJSON files. lws' own request parser is not ours
 * and is left out: this target splits the request itself.
 *
 * An input is one or more requests separated by a line "%%". Each is a
 * request line ("METHOD /path?query"), header lines, a blank line and the
 * body. An Authorization value "@a", "@s", "@d" or "@p" becomes a good
 * token of an admin, a supervisor, the cardiology doctor or a patient; in
 * the path and body "@i" stands for the newest "id" the server has answered
 * with (an appointment, a shift, a department).
 *
 * Every answer must have a status and, when it says JSON, parse as JSON;
 * anything else aborts. Each input starts from a fresh copy of the seeded
 * database. FUZZ_HTTP_TRACE=1 prints each request's answer.
 */
#include "fuzz_hospital.h"
#include "http_internal.h"
#include "telemed/visit_seal.h"

#include <glib.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_REQUESTS 8

static tm_app app;
static char *tokens[4]; /* admin, supervisor, doctor, patient */
static char last_id[128];
static bool trace; /* FUZZ_HTTP_TRACE set: each request's status on stderr */

/* The config, keys and tokens, once. */
static void setup_once(void)
{
    trace = getenv("FUZZ_HTTP_TRACE") != NULL;
    fuzz_hospital_setup("fuzz_http", &app.cfg, trace);
    char *seal = g_build_filename(app.cfg.data_dir, "seal.key", NULL), *err = NULL;
    app.seal_key = tm_seal_key_load(seal, TM_SEAL_ECDSA_P256, true, NULL, &err);
    g_free(seal);
    if (!app.seal_key)
        fuzz_fail("seal key", err);
    app.jwt = tm_jwt_verifier_new(FUZZ_HOSPITAL_SECRET);
    tm_jwt_verifier_set_max_lifetime(app.jwt, app.cfg.jwt_max_lifetime_s);
    memset(app.rec_key, 0x42, sizeof(app.rec_key));
    app.have_rec_key = true;
    app.started_ms = tm_now_ms();
    app.node = tm_node_new(&app.cfg, 8443, NULL);
    tokens[0] = fuzz_hospital_token("a-fuzz", TM_ROLE_ADMIN, NULL);
    tokens[1] = fuzz_hospital_token("s-fuzz", TM_ROLE_SUPERVISOR, NULL);
    tokens[2] = fuzz_hospital_token("d-li", TM_ROLE_DOCTOR, "cardiology");
    tokens[3] = fuzz_hospital_token("p-fuzz", TM_ROLE_PATIENT, NULL);
}

static int method_of(const char *m, size_t len)
{
    static const struct {
        const char *name;
        int method;
    } methods[] = {{"GET", LWSHUMETH_GET},       {"POST", LWSHUMETH_POST},
                   {"PUT", LWSHUMETH_PUT},       {"PATCH", LWSHUMETH_PATCH},
                   {"DELETE", LWSHUMETH_DELETE}, {"OPTIONS", LWSHUMETH_OPTIONS},
                   {"HEAD", LWSHUMETH_HEAD}};
    for (size_t i = 0; i < TM_ARRAY_LEN(methods); i++)
        if (strlen(methods[i].name) == len && memcmp(methods[i].name, m, len) == 0)
            return methods[i].method;
    return -1;
}

/* text with "@i" replaced by the newest id answered (new string). */
static GString *expand(const char *text, size_t len)
{
    GString *out = g_string_sized_new(len + 16);
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '@' && i + 1 < len && text[i + 1] == 'i') {
            g_string_append(out, last_id);
            i++;
        } else {
            g_string_append_c(out, text[i]);
        }
    }
    return out;
}

static int hexval(char c)
{
    return g_ascii_isxdigit(c) ? g_ascii_xdigit_value(c) : -1;
}

/* The query's arguments as lws hands them over: split at '&', with %XX
 * and '+' decoded. */
static void split_query(http_pss *p, const char *q)
{
    p->args = g_ptr_array_new_with_free_func(g_free);
    if (!*q)
        return;
    char **parts = g_strsplit(q, "&", 32);
    for (char **a = parts; *a; a++) {
        GString *d = g_string_new(NULL);
        for (const char *c = *a; *c; c++) {
            if (*c == '%' && hexval(c[1]) >= 0 && hexval(c[2]) >= 0) {
                g_string_append_c(d, (char)(hexval(c[1]) * 16 + hexval(c[2])));
                c += 2;
            } else {
                g_string_append_c(d, *c == '+' ? ' ' : *c);
            }
        }
        g_ptr_array_add(p->args, g_string_free(d, FALSE));
    }
    g_strfreev(parts);
    if (strlen(q) < sizeof(p->query))
        g_strlcpy(p->query, q, sizeof(p->query));
}

/* The answer must be one the transport can send. */
static void check_answer(const http_pss *p)
{
    if (p->streaming) {
        if (p->pos > p->end || p->end > p->total)
            fuzz_fail("a recording range outside the file", p->path);
        return;
    }
    if (!p->resp || p->status < 100 || p->status > 599 || !p->ctype)
        fuzz_fail("no answer", p->path);
    if (strcmp(p->ctype, "application/json") == 0) {
        json_error_t jerr;
        json_t *j = json_loadb(p->resp->str, p->resp->len, 0, &jerr);
        if (!json_is_object(j))
            fuzz_fail("an answer that is not a JSON object", p->resp->str);
        json_t *data = json_object_get(j, "id");
        if (json_is_string(data))
            g_strlcpy(last_id, json_string_value(data), sizeof(last_id));
        json_decref(j);
    }
}

struct header {
    int te;
    int cl_count;
    char cl[64];
    int cl_total;
    int cl_second;
};

static void read_header(http_pss *p, struct header *h, const char *line)
{
    const char *colon = strchr(line, ':');
    if (!colon)
        return;
    size_t nlen = (size_t)(colon - line);
    const char *v = colon + 1;
    while (*v == ' ')
        v++;
    if (nlen == 13 && g_ascii_strncasecmp(line, "authorization", nlen) == 0) {
        static const char roles[] = "asdp";
        const char *r = v[0] == '@' && v[1] && !v[2] ? strchr(roles, v[1]) : NULL;
        if (r)
            g_snprintf(p->auth, sizeof(p->auth), "Bearer %s", tokens[r - roles]);
        else
            g_strlcpy(p->auth, v, sizeof(p->auth));
    } else if (nlen == 5 && g_ascii_strncasecmp(line, "range", nlen) == 0) {
        g_strlcpy(p->range, v, sizeof(p->range));
    } else if (nlen == 17 && g_ascii_strncasecmp(line, "transfer-encoding", nlen) == 0) {
        h->te = 1;
    } else if (nlen == 14 && g_ascii_strncasecmp(line, "content-length", nlen) == 0) {
        /* lws keeps a repeated header as fragments of one */
        size_t vl = strlen(v);
        h->cl_total += (h->cl_count ? 1 : 0) + (int)vl;
        if (h->cl_count == 0)
            g_strlcpy(h->cl, v, sizeof(h->cl));
        else if (h->cl_count == 1)
            h->cl_second = (int)vl;
        h->cl_count++;
    }
}

static void run_request(const char *req, size_t len)
{
    const char *head_end = g_strstr_len(req, (gssize)len, "\n\n");
    size_t head_len = head_end ? (size_t)(head_end - req) : len;
    const char *body = head_end ? head_end + 2 : req + len;
    size_t body_len = (size_t)(req + len - body);
    char *head = g_strndup(req, head_len);
    char **lines = g_strsplit(head, "\n", 64);
    g_free(head);
    const char *sp = lines[0] ? strchr(lines[0], ' ') : NULL;
    int method = sp ? method_of(lines[0], (size_t)(sp - lines[0])) : -1;
    GString *target = sp ? expand(sp + 1, strlen(sp + 1)) : NULL;
    http_pss p = {.method = method, .sock_fd = -1};
    if (method < 0 || !target->len || target->str[0] != '/' || target->len >= sizeof(p.path))
        goto done; /* lws answers these itself (or 414) */
    char *q = strchr(target->str, '?');
    if (q)
        *q++ = 0;
    g_strlcpy(p.path, target->str, sizeof(p.path));
    split_query(&p, q ? q : "");
    g_strlcpy(p.peer_ip, "127.0.0.1", sizeof(p.peer_ip));
    struct header h = {0};
    for (char **l = lines + 1; *l; l++)
        read_header(&p, &h, *l);
    uint64_t length = 0;
    const char *why = NULL;
    tm__http_framing f =
        tm__http_framing_of(h.te, h.cl_total, h.cl_second, h.cl_count ? h.cl : NULL, &length, &why);
    if (f == TM_HTTP_FRAMING_BAD_REQUEST || f == TM_HTTP_FRAMING_NEEDS_LENGTH) {
        if (!why)
            fuzz_fail("a refused framing without a reason", p.path);
        goto done;
    }
    if (f == TM_HTTP_FRAMING_LENGTH) {
        tm__http_expect_body(&p, length);
        GString *b = expand(body, body_len);
        size_t n = b->len < length ? b->len : (size_t)length;
        /* lws hands a body over in pieces */
        for (size_t off = 0; off < n; off += 1000)
            tm__http_take_body(&p, b->str + off, n - off < 1000 ? n - off : 1000);
        g_string_free(b, TRUE);
    }
    p.responded = true;
    tm__http_route(&app, &p);
    while (p.later) /* a parked answer (a verify hashing on a worker) comes back on the loop */
        g_main_context_iteration(NULL, TRUE);
    if (trace)
        fprintf(stderr, "%s %s -> %d %.200s\n", lines[0], p.has_body ? "(body)" : "", p.status,
                p.resp ? p.resp->str : "(stream)");
    check_answer(&p);
done:
    tm__http_pss_clear(&p);
    if (target)
        g_string_free(target, TRUE);
    g_strfreev(lines);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        setup_once();
        ready = true;
    }
    last_id[0] = 0;
    char *err = NULL;
    app.store = fuzz_hospital_open(&app.cfg);
    app.sig = tm_signaling_new(&app.cfg, app.store, app.jwt, &err);
    app.profiles = app.sig ? tm_feed_profiles_start(app.store, &app.cfg, NULL, &err) : NULL;
    app.feed = app.profiles ? tm_feed_profiles_webhook(app.profiles) : NULL;
    if (!app.feed)
        fuzz_fail("start", err);
    const char *p = (const char *)data, *end = p + size;
    for (int n = 0; p < end && n < MAX_REQUESTS; n++) {
        const char *sep = g_strstr_len(p, end - p, "\n%%\n");
        size_t len = sep ? (size_t)(sep - p) : (size_t)(end - p);
        run_request(p, len);
        while (g_main_context_iteration(NULL, FALSE))
            ;
        p += len + (sep ? 4 : 0);
    }
    tm_feed_profiles_free(app.profiles); /* the webhook, app.feed, among them */
    tm_signaling_free(app.sig);
    tm_store_free(app.store);
    app.feed = NULL;
    app.profiles = NULL;
    app.sig = NULL;
    app.store = NULL;
    return 0;
}

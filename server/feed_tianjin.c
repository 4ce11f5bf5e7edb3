/*
 * feed_tianjin.c - the `tianjin` delivery profile (include/telemed/feed_tianjin.h).
 *
 * Owns: the copy of its settings, its libcurl loop (curl_glib.h) with the
 * one request in flight, and the stack of halves of a rejected batch still
 * to try. Everything durable is in the store (store.h, "batch uploads"):
 * which days were staged and checked in, and each record's state.
 *
 * A pass (pump): stage the days whose upload time has passed; then send,
 * in this order, a half of a rejected batch, due visit records, due rating
 * records (only those whose visit the platform accepted), the check-in of
 * a staged day. One request is in flight at a time; its outcome is written
 * before the next pass. The platform answers HTTP 200 with {code, body:
 * {msgCode, msg}}; see classify() for what each answer means here. The
 * record's fields come from the one mapping table in feed_tianjin_map.c.
 */
#include "telemed/feed_tianjin.h"
#include "telemed/common.h"
#include "telemed/curl_glib.h"
#include "telemed/feed.h"
#include "telemed/log.h"
#include "telemed/sm_crypto.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROFILE "tianjin"
#define DAY_MS (24LL * 3600 * 1000)
#define IDLE_POLL_MS 1000 /* re-check due records and the upload time */
#define RESPONSE_KEEP 4096

typedef enum { SEND_NONE, SEND_RECORDS, SEND_CHECKIN } send_kind;

/* A set of records sent together, and what they were sent as. */
typedef struct batch {
    tm_upload_record *r;
    size_t n;
} batch;

struct tm_tianjin {
    tm_store *store;
    GMainContext *ctx;
    tm_config cfg;     /* the tianjin_* strings are copies owned here; others unused */
    char name[80];     /* "tianjin", or "tianjin@<institution>" for a member's own */
    char *institution; /* the member whose visits alone it uploads; NULL: the deployment's */
    uint8_t key[TM_SM4_KEY_LEN], iv[TM_SM4_KEY_LEN];
    tm_sm4_padding pad;
    int upload_s; /* seconds after local midnight */
    int timeout_ms, backoff_base_ms, backoff_max_ms;

    tm_curl_loop *curl;
    CURL *easy; /* the request in flight, or NULL */
    struct curl_slist *headers;
    char *body;
    GString *response;
    GSource *wake;
    int64_t wake_at;

    send_kind sending;
    batch inflight;
    char checkin_day[16];
    GPtrArray *halves; /* batch *, a stack: halves of a rejected batch to try */

    int fail_streak;
    int64_t hold_until; /* monotonic ms: the platform fails, hold every send */
    int last_status;
    char last_error[256];
    int64_t last_error_at, last_success_at;
    int64_t warned_day; /* the last day whose missed deadline was logged */
};

static void schedule(tm_tianjin *t, int64_t delay_ms);

/* ---- signing ---------------------------------------------------------- */

typedef struct header_kv {
    char name[32]; /* lowercase */
    const char *value;
} header_kv;

static int header_cmp(const void *a, const void *b)
{
    return strcmp(((const header_kv *)a)->name, ((const header_kv *)b)->name);
}

int tm__tianjin_sign(const char *service_id, const char *method, const char *app_key,
                     const char *nonce, const char *timestamp_ms, const char *content_sm3,
                     GString *sign_str, char sig[65])
{
    header_kv h[] = {
        {"x-service-id", service_id},
        {"x-service-method", method},
        {"x-ca-key", app_key},
        {"x-ca-nonce", nonce},
        {"x-ca-timestamp", timestamp_ms},
        {"x-content-md5", content_sm3},
    };
    qsort(h, TM_ARRAY_LEN(h), sizeof(h[0]), header_cmp);
    g_string_truncate(sign_str, 0);
    for (size_t i = 0; i < TM_ARRAY_LEN(h); i++)
        g_string_append_printf(sign_str, "%s%s:%s", i ? "&" : "", h[i].name,
                               h[i].value ? h[i].value : "");
    return tm_sm3_hex(sign_str->str, sign_str->len, sig);
}

/* ---- days and the upload time ---------------------------------------- */

static int64_t offset_ms(const tm_tianjin *t)
{
    return (int64_t)t->cfg.tianjin_utc_offset_min * 60 * 1000;
}

static void day_name(int64_t day_no, char out[16])
{
    time_t s = (time_t)(day_no * 86400);
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, 16, "%Y-%m-%d", &tm);
}

static int day_parse(const char *day, int64_t *day_no)
{
    int y, m, d, used = 0;
    if (!day || sscanf(day, "%4d-%2d-%2d%n", &y, &m, &d, &used) != 3 || day[used] || m < 1 ||
        m > 12 || d < 1 || d > 31)
        return TM_EINVAL;
    GDate *g = g_date_new();
    g_date_set_dmy(g, (GDateDay)1, (GDateMonth)1, 1970);
    if (!g_date_valid_dmy((GDateDay)d, (GDateMonth)m, (GDateYear)y)) {
        g_date_free(g);
        return TM_EINVAL;
    }
    GDate *g2 = g_date_new_dmy((GDateDay)d, (GDateMonth)m, (GDateYear)y);
    *day_no = g_date_days_between(g, g2);
    g_date_free(g);
    g_date_free(g2);
    return 0;
}

/* The newest day whose upload time has passed at now_ms. */
static int64_t due_day(const tm_tianjin *t, int64_t now_ms)
{
    int64_t local = now_ms + offset_ms(t);
    int64_t today = local / DAY_MS;
    int64_t into = (local % DAY_MS) / 1000;
    return into >= t->upload_s ? today - 1 : today - 2;
}

/* Epoch ms of the next upload time after now_ms. */
static int64_t next_run_at(const tm_tianjin *t, int64_t now_ms)
{
    int64_t local = now_ms + offset_ms(t);
    int64_t at = (local / DAY_MS) * DAY_MS + (int64_t)t->upload_s * 1000;
    if (at <= local)
        at += DAY_MS;
    return at - offset_ms(t);
}

static int stage(tm_tianjin *t, int64_t day_no, int64_t now_ms)
{
    char day[16];
    day_name(day_no, day);
    int64_t from = day_no * DAY_MS - offset_ms(t);
    int added = 0;
    int rc = tm_upload_stage_day_in(t->store, t->name, t->institution, day, from, from + DAY_MS,
                                    t->cfg.tianjin_send_unanswered, now_ms, &added);
    if (rc < 0) {
        tm_error("tianjin.stage_failed", "day=%s rc=%d", day, rc);
        return rc;
    }
    tm_info("tianjin.staged", "day=%s records=%d", day, added);
    return added;
}

/* Stages every day whose upload time has passed and that is not staged
 * yet: after a stop, the missed days up to tianjin_catchup_days; on the
 * very first start only the previous day (older visits predate the profile). */
static void stage_due_days(tm_tianjin *t, int64_t now_ms)
{
    int64_t due = due_day(t, now_ms);
    char last[16];
    int64_t first = due;
    int64_t last_no;
    if (tm_upload_last_day(t->store, t->name, last) == 0 && day_parse(last, &last_no) == 0) {
        if (last_no >= due)
            return;
        first = last_no + 1;
        if (first < due - t->cfg.tianjin_catchup_days + 1)
            first = due - t->cfg.tianjin_catchup_days + 1;
    }
    for (int64_t d = first; d <= due; d++)
        if (stage(t, d, now_ms) < 0)
            return;
}

/* ---- outcomes ---------------------------------------------------------- */

static void note_error(tm_tianjin *t, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void note_error(tm_tianjin *t, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_vsnprintf(t->last_error, sizeof(t->last_error), fmt, ap);
    va_end(ap);
    t->last_status = status;
    t->last_error_at = tm_now_ms();
}

static int64_t *batch_ids(const batch *b)
{
    int64_t *ids = g_new(int64_t, b->n ? b->n : 1);
    for (size_t i = 0; i < b->n; i++)
        ids[i] = b->r[i].id;
    return ids;
}

static void batch_free(batch *b)
{
    tm_upload_records_free(b->r, b->n);
    b->r = NULL;
    b->n = 0;
}

static void halves_clear(tm_tianjin *t)
{
    while (t->halves->len) {
        batch *b = g_ptr_array_steal_index(t->halves, t->halves->len - 1);
        batch_free(b);
        g_free(b);
    }
}

static void retry_records(tm_tianjin *t, batch *b, int status)
{
    int64_t *ids = batch_ids(b);
    int64_t *next = g_new(int64_t, b->n ? b->n : 1);
    for (size_t i = 0; i < b->n; i++)
        next[i] = tm_now_ms() + tm__feed_backoff_ms(t->backoff_base_ms, t->backoff_max_ms,
                                                    b->r[i].attempts + 1, 0, g_random_int());
    if (tm_upload_retry(t->store, ids, next, b->n, status, t->last_error) < 0)
        tm_error("tianjin.store_failed", "op=retry");
    g_free(ids);
    g_free(next);
}

/* Splits a rejected batch into two halves on the stack, the first half on
 * top; the batch's records move into them. */
static void bisect(tm_tianjin *t, batch *b)
{
    size_t left = b->n / 2;
    batch *hi = g_new0(batch, 1), *lo = g_new0(batch, 1);
    hi->n = b->n - left;
    hi->r = g_new0(tm_upload_record, hi->n);
    memcpy(hi->r, b->r + left, hi->n * sizeof(*b->r));
    lo->n = left;
    lo->r = g_new0(tm_upload_record, left);
    memcpy(lo->r, b->r, left * sizeof(*b->r));
    g_free(b->r); /* the sources now belong to the halves */
    b->r = NULL;
    b->n = 0;
    g_ptr_array_add(t->halves, hi);
    g_ptr_array_add(t->halves, lo);
}

typedef enum { ANSWER_OK, ANSWER_RETRY, ANSWER_REJECTED } answer;

/* What the platform's answer means. HTTP 200 carries {code, body: {msgCode,
 * msg}}: code 200 and msgCode 200 is success; code -1 (busy), 40004 (key),
 * 40010 (signature) and 40011 (timestamp expired) are the platform's or our
 * configuration's trouble, not the data's: retried. 40001 and a msgCode
 * other than 200 reject the data. Without an answer, 408, 429 and 5xx:
 * retried; any other HTTP 4xx rejects the batch. */
static answer classify(long status, CURLcode res, const char *body, char *msg, size_t msglen)
{
    snprintf(msg, msglen, "status %ld", status);
    if (res != CURLE_OK) {
        snprintf(msg, msglen, "%s", curl_easy_strerror(res));
        return ANSWER_RETRY;
    }
    if (status == 408 || status == 429 || status >= 500 || status < 200)
        return ANSWER_RETRY;
    if (status >= 300)
        return status < 400 ? ANSWER_RETRY : ANSWER_REJECTED;
    json_t *j = json_loads(body, 0, NULL);
    json_t *inner = json_object_get(j, "body");
    long long code = json_integer_value(json_object_get(j, "code"));
    long long msg_code = json_integer_value(json_object_get(inner, "msgCode"));
    const char *text = json_string_value(json_object_get(inner, "msg"));
    if (!text)
        text = json_string_value(json_object_get(j, "msg"));
    snprintf(msg, msglen, "code %lld msgCode %lld: %s", code, msg_code, text ? text : "");
    answer a = ANSWER_REJECTED;
    if (!j)
        a = ANSWER_RETRY; /* an answer we cannot read says nothing about the data */
    else if (code == 200 && msg_code == 200)
        a = ANSWER_OK;
    else if (code == -1 || code == 40004 || code == 40010 || code == 40011)
        a = ANSWER_RETRY;
    json_decref(j);
    return a;
}

static void hold_after_failure(tm_tianjin *t)
{
    t->fail_streak++;
    int64_t hold = tm__feed_backoff_ms(t->backoff_base_ms, t->backoff_max_ms, t->fail_streak, 0,
                                       g_random_int());
    if (hold < t->backoff_base_ms / 2)
        hold = t->backoff_base_ms / 2;
    t->hold_until = tm_mono_ms() + hold;
}

static void records_done(tm_tianjin *t, answer a, int status, const char *msg)
{
    batch *b = &t->inflight;
    if (a == ANSWER_OK) {
        int64_t *ids = batch_ids(b);
        if (tm_upload_mark_delivered(t->store, ids, b->n, status, tm_now_ms()) < 0)
            tm_error("tianjin.store_failed", "op=mark_delivered");
        g_free(ids);
        tm_info("tianjin.delivered", "records=%zu kind=%s", b->n, b->r[0].kind);
    } else if (a == ANSWER_RETRY) {
        halves_clear(t); /* the records stay pending and form new batches */
        retry_records(t, b, status);
        hold_after_failure(t);
        tm_warn("tianjin.retry", "records=%zu status=%d", b->n, status);
    } else if (b->n > 1) {
        tm_warn("tianjin.batch_rejected", "records=%zu status=%d", b->n, status);
        bisect(t, b);
    } else {
        int rc = tm_upload_dead_letter(t->store, b->r[0].id, status, msg, t->response->str);
        tm_warn("tianjin.dead_letter", "id=%lld kind=%s rc=%d", (long long)b->r[0].id, b->r[0].kind,
                rc);
    }
    batch_free(b);
}

static void checkin_done(tm_tianjin *t, answer a)
{
    if (a == ANSWER_OK) {
        if (tm_upload_checkin_done(t->store, t->name, t->checkin_day, tm_now_ms()) < 0)
            tm_error("tianjin.store_failed", "op=checkin_done");
        tm_info("tianjin.checked_in", "day=%s", t->checkin_day);
    } else {
        /* A refused check-in is not the data's fault (it carries none). */
        hold_after_failure(t);
        tm_warn("tianjin.checkin_retry", "day=%s", t->checkin_day);
    }
}

/* ---- the request ------------------------------------------------------ */

static size_t on_response_body(char *ptr, size_t size, size_t nmemb, void *user)
{
    tm_tianjin *t = user;
    size_t len = size * nmemb;
    if (t->response->len < RESPONSE_KEEP) {
        size_t room = RESPONSE_KEEP - t->response->len;
        g_string_append_len(t->response, ptr, (gssize)(len < room ? len : room));
    }
    return len;
}

static void transfer_release(tm_tianjin *t)
{
    if (t->easy) {
        tm_curl_loop_remove(t->curl, t->easy);
        curl_easy_cleanup(t->easy);
        t->easy = NULL;
    }
    curl_slist_free_all(t->headers);
    t->headers = NULL;
    g_free(t->body);
    t->body = NULL;
    g_string_truncate(t->response, 0);
    batch_free(&t->inflight);
    t->sending = SEND_NONE;
}

static void http_done(CURL *easy, CURLcode res, void *user)
{
    tm_tianjin *t = user;
    if (easy != t->easy)
        return;
    long status = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    char msg[200];
    answer a = classify(status, res, t->response->str, msg, sizeof(msg));
    if (a != ANSWER_RETRY) { /* the platform is up and answering */
        t->fail_streak = 0;
        t->hold_until = 0;
    }
    if (a == ANSWER_OK)
        t->last_success_at = tm_now_ms();
    else
        note_error(t, (int)status, "%s", msg);
    if (t->sending == SEND_RECORDS)
        records_done(t, a, (int)status, msg);
    else
        checkin_done(t, a);
    transfer_release(t);
    schedule(t, 0);
}

static void add_header(tm_tianjin *t, const char *name, const char *value)
{
    char *line = g_strdup_printf("%s: %s", name, value);
    t->headers = curl_slist_append(t->headers, line);
    g_free(line);
}

/* Encrypts, signs and starts the POST of the JSON array `plain` to method. */
static int http_send(tm_tianjin *t, const char *method, const char *plain)
{
    size_t hex_len = 0;
    int rc =
        tm_sm4_cbc_encrypt_hex(t->key, t->iv, t->pad, plain, strlen(plain), &t->body, &hex_len);
    if (rc < 0)
        return rc;
    char content_sm3[65], sig[65], nonce[37], ts[24];
    tm_uuid4(nonce);
    snprintf(ts, sizeof(ts), "%lld", (long long)tm_now_ms());
    GString *sign_str = g_string_new(NULL);
    if ((rc = tm_sm3_hex(t->body, hex_len, content_sm3)) == 0)
        rc = tm__tianjin_sign(t->cfg.tianjin_service_id, method, t->cfg.tianjin_app_key, nonce, ts,
                              content_sm3, sign_str, sig);
    g_string_free(sign_str, TRUE);
    if (rc < 0)
        return rc;
    add_header(t, "Content-Type", "application/json");
    t->headers = curl_slist_append(t->headers, "Expect:"); /* no 100-continue round trip */
    add_header(t, "X-Service-Id", t->cfg.tianjin_service_id);
    add_header(t, "X-Service-Method", method);
    add_header(t, "X-Ca-Key", t->cfg.tianjin_app_key);
    add_header(t, "X-Ca-Nonce", nonce);
    add_header(t, "X-Ca-Timestamp", ts);
    add_header(t, "X-Content-MD5", content_sm3);
    add_header(t, "X-Ca-Signature-Headers",
               "x-ca-key,x-ca-nonce,x-ca-timestamp,x-content-md5,x-service-id,x-service-method");
    add_header(t, "X-Ca-Signature", sig);
    if (!t->headers)
        return TM_ENOMEM;
    CURL *e = curl_easy_init();
    if (!e)
        return TM_ENOMEM;
    curl_easy_setopt(e, CURLOPT_URL, t->cfg.tianjin_url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)hex_len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "telemed-feed/1");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)t->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)t->timeout_ms);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_response_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    if (t->cfg.tianjin_ca)
        curl_easy_setopt(e, CURLOPT_CAINFO, t->cfg.tianjin_ca);
    t->easy = e;
    if (tm_curl_loop_add(t->curl, e) < 0) {
        t->easy = NULL;
        curl_easy_cleanup(e);
        return TM_EIO;
    }
    return 0;
}

/* ---- the pass ---------------------------------------------------------- */

/* Maps every record; those that fail the profile's checks become dead
 * letters naming the field and leave the batch. Returns the JSON array of
 * the rest (new string) or NULL when none is left. */
static char *build_array(tm_tianjin *t, batch *b)
{
    json_t *arr = json_array();
    size_t kept = 0;
    int64_t now = tm_now_ms();
    for (size_t i = 0; i < b->n; i++) {
        json_t *rec = NULL;
        char *why = NULL;
        if (tm__tianjin_map(&t->cfg, b->r[i].kind, b->r[i].source, now, &rec, &why) < 0) {
            int rc = tm_upload_dead_letter(t->store, b->r[i].id, 0, why, NULL);
            tm_warn("tianjin.invalid_record", "id=%lld kind=%s rc=%d", (long long)b->r[i].id,
                    b->r[i].kind, rc);
            g_free(why);
            g_free(b->r[i].source);
            continue;
        }
        json_array_append_new(arr, rec);
        b->r[kept++] = b->r[i];
    }
    b->n = kept;
    char *out = kept ? json_dumps(arr, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(arr);
    return out;
}

/* The next records to send: a pending half of a rejected batch, else due
 * visit records, else due ratings. False when there is nothing. */
static bool next_records(tm_tianjin *t, batch *b)
{
    if (t->halves->len) {
        batch *h = g_ptr_array_steal_index(t->halves, t->halves->len - 1);
        *b = *h;
        g_free(h);
        return true;
    }
    int64_t now = tm_now_ms();
    static const char *const kinds[] = {"visit", "rating"};
    for (size_t k = 0; k < TM_ARRAY_LEN(kinds); k++) {
        if (tm_upload_next_batch(t->store, t->name, kinds[k], now, t->cfg.tianjin_batch, &b->r,
                                 &b->n) < 0)
            return false;
        if (b->n)
            return true;
    }
    return false;
}

static const char *method_of(const tm_tianjin *t, const char *kind)
{
    return strcmp(kind, "rating") == 0 ? t->cfg.tianjin_rating_method : t->cfg.tianjin_visit_method;
}

static void start_failed(tm_tianjin *t, int rc)
{
    note_error(t, 0, "cannot start request: %s", tm_strerror(rc));
    if (t->sending == SEND_RECORDS)
        retry_records(t, &t->inflight, 0);
    transfer_release(t);
    hold_after_failure(t);
    schedule(t, t->backoff_base_ms);
}

/* Sends one batch of records or one check-in; true if a request started. */
static bool send_next(tm_tianjin *t)
{
    batch b = {0};
    while (next_records(t, &b)) {
        char *plain = build_array(t, &b);
        if (!plain) {
            batch_free(&b);
            continue; /* every record was invalid: look again */
        }
        t->inflight = b;
        t->sending = SEND_RECORDS;
        int rc = http_send(t, method_of(t, b.r[0].kind), plain);
        free(plain);
        if (rc < 0)
            start_failed(t, rc);
        return true;
    }
    if (tm_upload_checkin_next(t->store, t->name, tm_now_ms(), t->checkin_day) == 0) {
        t->sending = SEND_CHECKIN;
        int rc = http_send(t, t->cfg.tianjin_checkin_method, "[]");
        if (rc < 0)
            start_failed(t, rc);
        return true;
    }
    return false;
}

static void pump(tm_tianjin *t)
{
    int64_t now = tm_now_ms();
    /* Staging is local: it happens on time even while the platform is down. */
    stage_due_days(t, now);
    if (t->easy)
        return;
    int64_t held = t->hold_until - tm_mono_ms();
    if (held > 0) {
        schedule(t, held < IDLE_POLL_MS ? held : IDLE_POLL_MS);
        return;
    }
    if (send_next(t))
        return;
    int64_t delay = IDLE_POLL_MS, due = 0;
    if (tm_upload_next_due(t->store, t->name, &due) == 0 && due - now < delay)
        delay = due - now;
    schedule(t, delay);
}

static gboolean on_wake(gpointer user)
{
    tm_tianjin *t = user;
    g_source_unref(t->wake);
    t->wake = NULL;
    pump(t);
    return G_SOURCE_REMOVE;
}

static void schedule(tm_tianjin *t, int64_t delay_ms)
{
    if (delay_ms < 0)
        delay_ms = 0;
    int64_t at = tm_mono_ms() + delay_ms;
    if (t->wake && t->wake_at <= at)
        return;
    if (t->wake) {
        g_source_destroy(t->wake);
        g_source_unref(t->wake);
    }
    t->wake = g_timeout_source_new((guint)delay_ms);
    g_source_set_callback(t->wake, on_wake, t, NULL);
    g_source_attach(t->wake, t->ctx);
    t->wake_at = at;
}

/* ---- public -------------------------------------------------------------- */

static void copy_settings(tm_config *dst, const tm_config *src)
{
    dst->tianjin_url = g_strdup(src->tianjin_url);
    dst->tianjin_app_key = g_strdup(src->tianjin_app_key);
    dst->tianjin_service_id = g_strdup(src->tianjin_service_id);
    dst->tianjin_visit_method = g_strdup(src->tianjin_visit_method);
    dst->tianjin_rating_method = g_strdup(src->tianjin_rating_method);
    dst->tianjin_checkin_method = g_strdup(src->tianjin_checkin_method);
    dst->tianjin_organ_id = g_strdup(src->tianjin_organ_id);
    dst->tianjin_organ_name = g_strdup(src->tianjin_organ_name);
    dst->tianjin_unit_id = g_strdup(src->tianjin_unit_id);
    dst->tianjin_business_type = g_strdup(src->tianjin_business_type);
    dst->tianjin_upload_at = g_strdup(src->tianjin_upload_at);
    dst->tianjin_ca = g_strdup(src->tianjin_ca);
    dst->tianjin_utc_offset_min = src->tianjin_utc_offset_min;
    dst->tianjin_catchup_days = src->tianjin_catchup_days > 0 ? src->tianjin_catchup_days : 7;
    dst->tianjin_batch = src->tianjin_batch > 0 ? src->tianjin_batch : 100;
    dst->tianjin_deadline_h = src->tianjin_deadline_h > 0 ? src->tianjin_deadline_h : 24;
    dst->tianjin_send_unanswered = src->tianjin_send_unanswered;
}

static void free_settings(tm_config *c)
{
    g_free(c->tianjin_url);
    g_free(c->tianjin_app_key);
    g_free(c->tianjin_service_id);
    g_free(c->tianjin_visit_method);
    g_free(c->tianjin_rating_method);
    g_free(c->tianjin_checkin_method);
    g_free(c->tianjin_organ_id);
    g_free(c->tianjin_organ_name);
    g_free(c->tianjin_unit_id);
    g_free(c->tianjin_business_type);
    g_free(c->tianjin_upload_at);
    g_free(c->tianjin_ca);
}

static int parse_clock(const char *s, int *secs)
{
    int h = 0, m = 0, sec = 0, used = 0;
    if (!s || sscanf(s, "%2d:%2d%n:%2d%n", &h, &m, &used, &sec, &used) < 2 || s[used] || h > 23 ||
        m > 59 || sec > 59 || h < 0 || m < 0 || sec < 0)
        return TM_EINVAL;
    *secs = h * 3600 + m * 60 + sec;
    return 0;
}

static const char *missing_setting(const tm_config *c)
{
    if (!c->tianjin_url || !*c->tianjin_url)
        return "tianjin_url";
    if (!c->tianjin_app_key || !*c->tianjin_app_key)
        return "tianjin_app_key";
    if (!c->tianjin_organ_id || !*c->tianjin_organ_id)
        return "tianjin_organ_id";
    if (!c->tianjin_service_id || !c->tianjin_visit_method || !c->tianjin_rating_method ||
        !c->tianjin_checkin_method || !c->tianjin_business_type)
        return "tianjin_service_id";
    return NULL;
}

tm_tianjin *tm_tianjin_new(tm_store *store, const tm_config *cfg, GMainContext *ctx, char **err)
{
    return tm_tianjin_member_new(store, cfg, NULL, ctx, err);
}

tm_tianjin *tm_tianjin_member_new(tm_store *store, const tm_config *cfg, const char *institution,
                                  GMainContext *ctx, char **err)
{
    const char *missing = missing_setting(cfg);
    if (missing) {
        *err = g_strdup_printf("%s: required by the tianjin profile", missing);
        return NULL;
    }
    tm_tianjin *t = g_new0(tm_tianjin, 1);
    t->store = store;
    t->institution = g_strdup(institution);
    if (institution)
        snprintf(t->name, sizeof(t->name), "%s@%s", PROFILE, institution);
    else
        snprintf(t->name, sizeof(t->name), "%s", PROFILE);
    t->ctx = g_main_context_ref(ctx ? ctx : g_main_context_default());
    t->response = g_string_new(NULL);
    t->halves = g_ptr_array_new();
    copy_settings(&t->cfg, cfg);
    t->timeout_ms = cfg->feed_timeout_ms > 0 ? cfg->feed_timeout_ms : 10000;
    t->backoff_base_ms = cfg->feed_backoff_base_ms > 0 ? cfg->feed_backoff_base_ms : 1000;
    t->backoff_max_ms = cfg->feed_backoff_max_ms > 0 ? cfg->feed_backoff_max_ms : 300000;
    if (tm_sm4_key_parse(cfg->tianjin_app_secret, t->key) < 0) {
        *err = g_strdup("tianjin_app_secret: must be 32 hex characters");
        goto fail;
    }
    if (tm_sm4_key_parse(cfg->tianjin_iv ? cfg->tianjin_iv : "abcd0863ef9087ced675985321bedf67",
                         t->iv) < 0) {
        *err = g_strdup("tianjin_iv: must be 32 hex characters");
        goto fail;
    }
    if (tm_sm4_padding_parse(cfg->tianjin_padding ? cfg->tianjin_padding : "iso7816", &t->pad) <
        0) {
        *err = g_strdup("tianjin_padding: must be iso7816 or pkcs7");
        goto fail;
    }
    if (parse_clock(t->cfg.tianjin_upload_at ? t->cfg.tianjin_upload_at : "02:00", &t->upload_s) <
        0) {
        *err = g_strdup("tianjin_upload_at: must be HH:MM or HH:MM:SS");
        goto fail;
    }
    if (g_ascii_strncasecmp(t->cfg.tianjin_url, "https://", 8) != 0 &&
        g_ascii_strncasecmp(t->cfg.tianjin_url, "http://", 7) != 0) {
        *err = g_strdup("tianjin_url: must start with https:// (or http:// for a local gateway)");
        goto fail;
    }
    t->curl = tm_curl_loop_new(t->ctx, http_done, t);
    if (!t->curl) {
        *err = g_strdup("tianjin: cannot start libcurl");
        goto fail;
    }
    if (g_ascii_strncasecmp(t->cfg.tianjin_url, "http://", 7) == 0)
        tm_warn("tianjin.plaintext", "reason=http_url");
    tm_info("tianjin.start", "upload_at=%s utc_offset_min=%d", t->cfg.tianjin_upload_at,
            t->cfg.tianjin_utc_offset_min);
    schedule(t, 0);
    return t;
fail:
    tm_tianjin_free(t);
    return NULL;
}

void tm_tianjin_free(tm_tianjin *t)
{
    if (!t)
        return;
    if (t->wake) {
        g_source_destroy(t->wake);
        g_source_unref(t->wake);
    }
    transfer_release(t);
    tm_curl_loop_free(t->curl);
    halves_clear(t);
    g_ptr_array_free(t->halves, TRUE);
    g_string_free(t->response, TRUE);
    OPENSSL_cleanse(t->key, sizeof(t->key));
    free_settings(&t->cfg);
    g_free(t->institution);
    g_main_context_unref(t->ctx);
    g_free(t);
}

int tm_tianjin_run(tm_tianjin *t, const char *day)
{
    int64_t now = tm_now_ms();
    int64_t day_no = (now + offset_ms(t)) / DAY_MS - 1;
    if (day && day_parse(day, &day_no) < 0)
        return TM_EINVAL;
    int rc = stage(t, day_no, now);
    schedule(t, 0);
    return rc;
}

static json_t *time_or_null(int64_t ms)
{
    char buf[40];
    return ms ? json_string(tm_rfc3339(ms, buf, sizeof(buf))) : json_null();
}

json_t *tm_tianjin_status(tm_tianjin *t)
{
    tm_upload_counts c;
    if (tm_upload_counts_get(t->store, t->name, &c) < 0)
        return NULL;
    char last[16];
    bool have_last = tm_upload_last_day(t->store, t->name, last) == 0;
    int64_t held = t->hold_until - tm_mono_ms();
    json_t *o = json_object();
    json_object_set_new(o, "profile", json_string(t->name));
    json_object_set_new(o, "endpoint", json_string(t->cfg.tianjin_url));
    json_object_set_new(o, "upload_at", json_string(t->cfg.tianjin_upload_at));
    json_object_set_new(o, "next_run_at", time_or_null(next_run_at(t, tm_now_ms())));
    json_object_set_new(o, "last_staged_day", have_last ? json_string(last) : json_null());
    json_object_set_new(o, "pending", json_integer(c.pending));
    json_object_set_new(o, "delivered", json_integer(c.delivered));
    json_object_set_new(o, "dead", json_integer(c.dead));
    json_object_set_new(o, "held", json_integer(c.held));
    json_object_set_new(o, "days", json_integer(c.days));
    json_object_set_new(o, "checkins", json_integer(c.checkins));
    json_object_set_new(o, "in_flight", json_integer((json_int_t)t->inflight.n));
    json_object_set_new(o, "bisecting", json_boolean(t->halves->len > 0));
    json_object_set_new(o, "retrying", json_boolean(t->fail_streak > 0));
    json_object_set_new(o, "held_for_ms", json_integer(held > 0 ? held : 0));
    json_object_set_new(o, "last_status",
                        t->last_status ? json_integer(t->last_status) : json_null());
    json_object_set_new(o, "last_error",
                        t->last_error[0] ? json_string(t->last_error) : json_null());
    json_object_set_new(o, "last_error_at", time_or_null(t->last_error_at));
    json_object_set_new(o, "last_success_at", time_or_null(t->last_success_at));
    return o;
}

json_t *tm_tianjin_dead_letters(tm_tianjin *t, int limit)
{
    return tm_upload_dead_list(t->store, t->name, limit);
}

int tm_tianjin_replay(tm_tianjin *t, int64_t id)
{
    int rc = tm_upload_replay(t->store, t->name, id, tm_now_ms());
    if (rc == 0)
        schedule(t, 0);
    return rc;
}

/* ---- compliance: did each day go up in time ---------------------------- */

static int64_t json_ms(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

/* One day's figures from its report row (NULL: not staged yet). */
static json_t *day_compliance(const tm_tianjin *t, int64_t day_no, json_t *row, int64_t now_ms)
{
    char day[16];
    day_name(day_no, day);
    int64_t deadline = (day_no + 1) * DAY_MS - offset_ms(t) + t->cfg.tianjin_deadline_h * 3600000LL;
    int64_t pending = json_ms(row, "pending"), dead = json_ms(row, "dead");
    int64_t checkin = json_ms(row, "checkin_ms"), last = json_ms(row, "last_delivered_ms");
    int64_t complete = row && pending == 0 && dead == 0 && checkin ? MAX(checkin, last) : 0;
    const char *verdict = complete ? (complete <= deadline ? "met" : "missed")
                                   : (now_ms > deadline ? "missed" : "open");
    json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}", "day", day, "visits",
                          (json_int_t)json_ms(row, "visits"), "ratings",
                          (json_int_t)json_ms(row, "ratings"), "accepted",
                          (json_int_t)json_ms(row, "delivered"), "pending", (json_int_t)pending,
                          "dead", (json_int_t)dead);
    json_t *reasons = json_object_get(row, "dead_by_reason");
    json_object_set_new(o, "dead_by_reason", reasons ? json_incref(reasons) : json_object());
    json_object_set_new(o, "staged", json_boolean(row != NULL));
    json_object_set_new(o, "checkin_at", time_or_null(checkin));
    json_object_set_new(o, "deadline_at", time_or_null(deadline));
    json_object_set_new(o, "complete_at", time_or_null(complete));
    json_object_set_new(o, "deadline", json_string(verdict));
    return o;
}

/* The report row of day_no, borrowed, or NULL. */
static json_t *report_row(json_t *report, int64_t day_no)
{
    char day[16];
    day_name(day_no, day);
    size_t i;
    json_t *row;
    json_array_foreach(report, i, row)
    {
        if (strcmp(json_string_value(json_object_get(row, "day")), day) == 0)
            return row;
    }
    return NULL;
}

json_t *tm_tianjin_compliance(tm_tianjin *t, int limit)
{
    json_t *report = tm_upload_day_report(t->store, t->name, limit);
    if (!report)
        return NULL;
    int64_t now = tm_now_ms();
    int64_t yesterday = (now + offset_ms(t)) / DAY_MS - 1;
    json_t *days = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(report, i, row)
    {
        int64_t day_no;
        if (day_parse(json_string_value(json_object_get(row, "day")), &day_no) == 0)
            json_array_append_new(days, day_compliance(t, day_no, row, now));
    }
    json_t *y = day_compliance(t, yesterday, report_row(report, yesterday), now);
    if (strcmp(json_string_value(json_object_get(y, "deadline")), "missed") == 0 &&
        t->warned_day != yesterday) {
        /* Once per day: the hospital is now on the list of late uploaders. */
        t->warned_day = yesterday;
        tm_warn("tianjin.deadline_missed", "day=%s pending=%lld dead=%lld",
                json_string_value(json_object_get(y, "day")),
                (long long)json_integer_value(json_object_get(y, "pending")),
                (long long)json_integer_value(json_object_get(y, "dead")));
    }
    json_decref(report);
    return json_pack("{s:s, s:i, s:o, s:o}", "profile", t->name, "deadline_h",
                     t->cfg.tianjin_deadline_h, "yesterday", y, "days", days);
}

/* The family's HELP and TYPE once: with the deployment's instance, or
 * with none when only members' instances run (their samples untyped). */
static void metric_head(const tm_tianjin *t, GString *out, const char *name, const char *type,
                        const char *help)
{
    if (!t->institution)
        g_string_append_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metric(const tm_tianjin *t, GString *out, const char *name, const char *type,
                   const char *help, long long value)
{
    metric_head(t, out, name, type, help);
    g_string_append_printf(out, "%s{profile=\"%s\"} %lld\n", name, t->name, value);
}

int tm_tianjin_metrics(tm_tianjin *t, GString *out)
{
    tm_upload_counts c;
    if (tm_upload_counts_get(t->store, t->name, &c) < 0)
        return TM_EIO;
    json_t *comp = tm_tianjin_compliance(t, 2);
    if (!comp)
        return TM_EIO;
    const char *verdict =
        json_string_value(json_object_get(json_object_get(comp, "yesterday"), "deadline"));
    metric(t, out, "telemed_upload_deadline_missed", "gauge",
           "Whether the previous day's upload missed its deadline (1) or not (0).",
           strcmp(verdict, "missed") == 0);
    json_decref(comp);
    metric(t, out, "telemed_upload_pending", "gauge", "Batch-profile records waiting for upload.",
           (long long)c.pending);
    metric(t, out, "telemed_upload_delivered_total", "counter",
           "Batch-profile records the platform accepted.", (long long)c.delivered);
    metric(t, out, "telemed_upload_dead_letters", "gauge",
           "Batch-profile records waiting for a person.", (long long)c.dead);
    metric(t, out, "telemed_upload_checkins_total", "counter",
           "Daily check-ins the platform accepted.", (long long)c.checkins);
    return 0;
}

/*
 * feed.c - the regulator feed's delivery task (include/telemed/feed.h).
 *
 * Owns: its libcurl loop (curl_glib.h) and the one transfer in flight on
 * it, the NDJSON file of the file sink. Runs on the control loop's
 * GMainContext; nothing here blocks on the network.
 *
 * The loop: a pass (pump) takes the next batch of due events from the
 * outbox (store_outbox.c hands them out in order per visit), wraps each in
 * its envelope and sends the batch; the outcome is written back to the
 * outbox before the next pass. Only one batch is in flight, so a visit's
 * later event can never overtake an earlier one that is being retried.
 *
 * Why libcurl and not the lws client: the feed must verify the endpoint
 * against its own CA and present its own client certificate, honour
 * Retry-After (HTTP-date or seconds), time out whole requests and reuse
 * connections. libcurl does each of these with one option and is driven
 * from GLib by curl_glib.c, independent of the lifetime of the server's
 * lws vhosts. It costs one Debian package (libcurl4-openssl-dev, same
 * OpenSSL as the rest).
 *
 * Outcomes: 2xx delivered; 408, 429, 5xx, 1xx/3xx, timeouts, connection and
 * TLS failures are retried with exponential backoff and full jitter; any
 * other 4xx is a permanent rejection: a batch of one becomes a dead letter,
 * a larger batch is retried one event at a time so only the bad event dies
 * (a regulator may reject a whole batch for one bad record). A row whose
 * payload is not a JSON object is dead-lettered before sending.
 *
 * One engine, two consumers of the same outbox rows: the regulator feed
 * (tm_feed_new) and the hospital's messaging system (tm_messaging_new,
 * docs/regulator-feed.md "Messaging outbox"). They differ only in where
 * their delivery state lives (a delivery_queue: the outbox rows' own
 * columns, or the messaging queue beside them), their endpoint and secret,
 * and the names in logs and metrics.
 */
#include "telemed/feed.h"
#include "telemed/common.h"
#include "telemed/curl_glib.h"
#include "telemed/log.h"
#include "telemed/store.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SCHEMA_VERSION 1
#define RESPONSE_KEEP 4096 /* bytes of a rejection's body kept with the dead letter */
#define KICK_DELAY_MS 5    /* lets a burst of steps form one batch */
#define IDLE_POLL_MS 1000  /* re-check even without a kick (rows written elsewhere) */

/* Where a consumer's delivery state lives (store.h: the regulator outbox,
 * the messaging queue, an alliance member's routed queue); each function
 * has tm_outbox_*'s contract. scope is the member's institution id for the
 * routed queue and unused by the others. */
typedef struct delivery_queue {
    const char *name;       /* log events and metric names: feed, messaging */
    const char *depth_help; /* the help lines of two metrics */
    const char *delivered_help;
    const char *user_agent; /* of the HTTP requests */
    int (*next_batch)(tm_store *s, const char *scope, int64_t now_ms, int limit,
                      tm_outbox_event **out, size_t *n);
    int (*next_due)(tm_store *s, int64_t *due_ms);
    int (*mark_delivered)(tm_store *s, const int64_t *seqs, size_t n, int status, int64_t now_ms);
    int (*retry)(tm_store *s, const int64_t *seqs, const int64_t *next_at, size_t n, int status,
                 const char *error);
    int (*retry_now)(tm_store *s, int64_t now_ms);
    int (*dead_letter)(tm_store *s, int64_t seq, int status, const char *error,
                       const char *response, size_t response_len);
    int (*replay)(tm_store *s, const char *scope, int64_t seq);
    json_t *(*dead_list)(tm_store *s, const char *scope, int limit);
    int (*stats_get)(tm_store *s, const char *scope, tm_outbox_stats *out);
    int (*queue)(tm_store *s, const char *scope, int64_t *pending, int64_t *oldest_pending_at);
} delivery_queue;

/* The unscoped queues' steps with the scoped signature. */
#define UNSCOPED(prefix)                                                                           \
    static int prefix##_batch(tm_store *s, const char *scope, int64_t now_ms, int limit,           \
                              tm_outbox_event **out, size_t *n)                                    \
    {                                                                                              \
        (void)scope;                                                                               \
        return tm_##prefix##_next_batch(s, now_ms, limit, out, n);                                 \
    }                                                                                              \
    static int prefix##_replay(tm_store *s, const char *scope, int64_t seq)                        \
    {                                                                                              \
        (void)scope;                                                                               \
        return tm_##prefix##_replay(s, seq);                                                       \
    }                                                                                              \
    static json_t *prefix##_dead(tm_store *s, const char *scope, int limit)                        \
    {                                                                                              \
        (void)scope;                                                                               \
        return tm_##prefix##_dead_list(s, limit);                                                  \
    }                                                                                              \
    static int prefix##_stats(tm_store *s, const char *scope, tm_outbox_stats *out)                \
    {                                                                                              \
        (void)scope;                                                                               \
        return tm_##prefix##_stats_get(s, out);                                                    \
    }                                                                                              \
    static int prefix##_queue(tm_store *s, const char *scope, int64_t *pending, int64_t *oldest)   \
    {                                                                                              \
        (void)scope;                                                                               \
        return tm_##prefix##_queue(s, pending, oldest);                                            \
    }
UNSCOPED(outbox)
UNSCOPED(msgq)

static const delivery_queue regulator_queue = {
    "feed",
    "Regulator feed events waiting for delivery.",
    "Events delivered to the regulator sink.",
    "telemed-feed/1",
    outbox_batch,
    tm_outbox_next_due,
    tm_outbox_mark_delivered,
    tm_outbox_retry,
    tm_outbox_retry_now,
    tm_outbox_dead_letter,
    outbox_replay,
    outbox_dead,
    outbox_stats,
    outbox_queue,
};

/* An alliance member's own webhook (tm_feed_member_new): its metrics are
 * the feed's with an institution label, so they carry no HELP/TYPE here. */
static const delivery_queue member_queue = {
    "feed",
    NULL,
    NULL,
    "telemed-feed/1",
    tm_routeq_next_batch,
    tm_routeq_next_due,
    tm_routeq_mark_delivered,
    tm_routeq_retry,
    tm_routeq_retry_now,
    tm_routeq_dead_letter,
    tm_routeq_replay,
    tm_routeq_dead_list,
    tm_routeq_stats_get,
    tm_routeq_queue,
};

static const delivery_queue messaging_queue = {
    "messaging",
    "Messaging events waiting for delivery.",
    "Events delivered to the hospital's messaging system.",
    "telemed-messaging/1",
    msgq_batch,
    tm_msgq_next_due,
    tm_msgq_mark_delivered,
    tm_msgq_retry,
    tm_msgq_retry_now,
    tm_msgq_dead_letter,
    msgq_replay,
    msgq_dead,
    msgq_stats,
    msgq_queue,
};

struct tm_feed {
    const delivery_queue *q;
    char *scope;      /* the member's institution id (member_queue), else NULL */
    bool route_first; /* route the outbox by institution before each batch */
    tm_feed *also;    /* kicked with this one (the messaging consumer), or NULL */
    tm_store *store;
    GMainContext *ctx;
    char hospital[128];
    int batch;
    int timeout_ms;
    int backoff_base_ms;
    int backoff_max_ms;

    /* http sink */
    char *url;
    char *url_shown; /* without credentials or query, for status */
    char *secret;
    char *ca, *client_cert, *client_key;
    tm_curl_loop *curl;
    CURL *easy; /* the transfer in flight, or NULL */
    struct curl_slist *headers;
    char *body;
    GString *response;

    /* file sink */
    char *feed_dir;
    char *file_path;
    char file_day[16];
    int fd;

    /* the batch in flight (http) */
    tm_outbox_event *ev;
    size_t n;

    GSource *wake;
    int64_t wake_at;           /* monotonic ms */
    int64_t isolate_until_seq; /* after a batch-wide 4xx: send these one by one */

    /* Delivered, failed-attempt and dead counts: read from the table once at
     * start, then kept here as the feed changes rows (it is the only one
     * that does), so status and metrics never scan the whole outbox. */
    int64_t n_delivered, n_failed, n_dead;
    bool store_failed; /* an outcome could not be written: slow down */

    int last_status;
    char last_error[256];
    int64_t last_error_at, last_success_at; /* epoch ms, 0 = never */
    bool retrying;                          /* the last attempt failed */

    /* The endpoint itself is failing (refused, timeout, 5xx, 429, TLS):
     * hold every send until hold_until (monotonic ms), growing with the
     * streak of such failures. Without it each new event, being the head
     * of a new visit and so due at once, would cost a request to an
     * endpoint that is down; with it a kick during an outage costs nothing. */
    int fail_streak;
    int64_t hold_until;
    /* Set at start and by every endpoint failure: the next 2xx makes all
     * rows that wait for a retry due at once, so a backlog drains at full
     * speed when the endpoint is back instead of trickling out over each
     * row's backoff (up to feed_backoff_max_ms). */
    bool retry_now_on_success;
};

static void schedule(tm_feed *f, int64_t delay_ms);
static int out_dead(tm_feed *f, const tm_outbox_event *e, int status, const char *why,
                    const char *resp, size_t resp_len);

/* ---- status bookkeeping ---------------------------------------------- */

static void note_error(tm_feed *f, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void note_error(tm_feed *f, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->last_error, sizeof(f->last_error), fmt, ap);
    va_end(ap);
    f->last_status = status;
    f->last_error_at = tm_now_ms();
    f->retrying = true;
}

static void note_success(tm_feed *f, int status)
{
    f->last_status = status;
    f->last_success_at = tm_now_ms();
    f->retrying = false;
}

/* ---- envelopes ------------------------------------------------------- */

/* Appends the envelope of one outbox row to out as compact JSON, or
 * returns -1 with why when the row is unreadable (its payload is not a JSON
 * object, or a column is not text); the caller dead-letters it.
 *
 * The payload is parsed to validate it but not re-serialised: it was
 * written compact by tm__feed_event_payload and goes out as stored, which
 * halves the JSON work per event. Only a payload holding a line break (a
 * row edited by hand) is re-serialised, since NDJSON needs one line. */
static int envelope(tm_feed *f, const tm_outbox_event *e, GString *out, char *why, size_t whylen)
{
    json_error_t jerr;
    json_t *data = json_loadb(e->payload, e->payload_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!data || !json_is_object(data)) {
        snprintf(why, whylen, "corrupt outbox row: payload is not a JSON object (%s)",
                 data ? "other JSON value" : jerr.text);
        json_decref(data);
        return -1;
    }
    char when[40];
    json_t *env = json_object();
    json_object_set_new(env, "id", json_string(e->event_id));
    json_object_set_new(env, "seq", json_integer(e->seq));
    json_object_set_new(env, "type", json_string(e->type));
    json_object_set_new(env, "occurred_at",
                        json_string(tm_rfc3339(e->occurred_at, when, sizeof(when))));
    json_object_set_new(env, "schema_version", json_integer(SCHEMA_VERSION));
    json_object_set_new(env, "hospital_id", json_string(f->hospital));
    json_object_set_new(env, "visit_id", json_string(e->visit_id));
    /* Columns that are not valid UTF-8 make json_string fail: treat as corrupt. */
    if (!json_object_get(env, "id") || !json_object_get(env, "type") ||
        !json_object_get(env, "visit_id") || !e->event_id[0] || !e->type[0]) {
        snprintf(why, whylen, "corrupt outbox row: bad id, type or visit_id column");
        json_decref(env);
        json_decref(data);
        return -1;
    }
    char *head = json_dumps(env, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(env);
    char *redone = NULL;
    if (memchr(e->payload, '\n', e->payload_len) || memchr(e->payload, '\r', e->payload_len))
        redone = json_dumps(data, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(data);
    if (!head || (!redone && (memchr(e->payload, '\n', e->payload_len) ||
                              memchr(e->payload, '\r', e->payload_len)))) {
        free(head);
        snprintf(why, whylen, "out of memory");
        return -2;
    }
    size_t hl = strlen(head); /* "{...}": reopen it to add data last */
    g_string_append_len(out, head, (gssize)(hl - 1));
    g_string_append(out, ",\"data\":");
    if (redone)
        g_string_append(out, redone);
    else
        g_string_append_len(out, e->payload, (gssize)e->payload_len);
    g_string_append_c(out, '}');
    free(head);
    free(redone);
    return 0;
}

/* Writes the batch to out: NDJSON lines (file sink) or the HTTP body
 * {"schema_version":1,"events":[...]}. Unreadable rows are dead-lettered
 * and dropped from ev, whose count *n is updated. */
static void build_events(tm_feed *f, tm_outbox_event *ev, size_t *n, GString *out, bool ndjson)
{
    size_t kept = 0;
    if (!ndjson)
        g_string_append_printf(out, "{\"schema_version\":%d,\"events\":[", SCHEMA_VERSION);
    for (size_t i = 0; i < *n; i++) {
        char why[256];
        gsize mark = out->len;
        if (kept > 0 && !ndjson)
            g_string_append_c(out, ',');
        int rc = envelope(f, &ev[i], out, why, sizeof(why));
        if (rc < 0) {
            g_string_truncate(out, mark);
            if (rc == -1)
                out_dead(f, &ev[i], 0, why, NULL, 0);
            free(ev[i].payload); /* out of memory: stays pending for a later pass */
            continue;
        }
        if (ndjson)
            g_string_append_c(out, '\n');
        if (kept != i)
            ev[kept] = ev[i];
        kept++;
    }
    if (!ndjson)
        g_string_append(out, "]}");
    *n = kept;
}

/* The outbox writes, with the counters and the store_failed flag kept. */
static int out_retry(tm_feed *f, const int64_t *seqs, const int64_t *next, size_t n, int status)
{
    int rc = f->q->retry(f->store, seqs, next, n, status, f->last_error);
    if (rc < 0) {
        f->store_failed = true;
        tm_error("feed.store_failed", "op=retry rc=%d", rc);
    } else {
        f->n_failed += (int64_t)n;
    }
    return rc;
}

static int out_dead(tm_feed *f, const tm_outbox_event *e, int status, const char *why,
                    const char *resp, size_t resp_len)
{
    int rc = f->q->dead_letter(f->store, e->seq, status, why, resp, resp_len);
    tm_warn("feed.dead_letter", "queue=%s seq=%lld visit=%s status=%d rc=%d", f->q->name,
            (long long)e->seq, e->visit_id, status, rc);
    if (rc < 0) {
        f->store_failed = true;
    } else {
        f->n_failed++;
        f->n_dead++;
    }
    return rc;
}

/* The next pass: at once, unless the store just failed to record an
 * outcome; then resending at once would repeat the batch in a tight loop. */
static void next_pass(tm_feed *f)
{
    schedule(f, f->store_failed ? f->backoff_base_ms : 0);
    f->store_failed = false;
}

static int64_t now_plus_backoff(tm_feed *f, int attempts, int64_t retry_after_ms)
{
    return tm_now_ms() + tm__feed_backoff_ms(f->backoff_base_ms, f->backoff_max_ms, attempts,
                                             retry_after_ms, g_random_int());
}

/* Every row of the batch gets its own jittered time, so after an outage
 * the retries spread out and re-form different batches. */
static void retry_batch(tm_feed *f, tm_outbox_event *ev, size_t n, int status,
                        int64_t retry_after_ms)
{
    int64_t *seqs = g_new(int64_t, n);
    int64_t *next = g_new(int64_t, n);
    for (size_t i = 0; i < n; i++) {
        seqs[i] = ev[i].seq;
        next[i] = now_plus_backoff(f, ev[i].attempts + 1, retry_after_ms);
    }
    out_retry(f, seqs, next, n, status);
    g_free(seqs);
    g_free(next);
}

static int mark_delivered(tm_feed *f, tm_outbox_event *ev, size_t n, int status)
{
    int64_t *seqs = g_new(int64_t, n);
    for (size_t i = 0; i < n; i++)
        seqs[i] = ev[i].seq;
    int rc = f->q->mark_delivered(f->store, seqs, n, status, tm_now_ms());
    g_free(seqs);
    if (rc < 0) {
        f->store_failed = true;
        tm_error("feed.store_failed", "op=mark_delivered rc=%d", rc);
    } else {
        f->n_delivered += (int64_t)n;
    }
    return rc;
}

/* ---- file sink ------------------------------------------------------- */

static int file_open_today(tm_feed *f)
{
    char day[16];
    time_t now = (time_t)(tm_now_ms() / 1000);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(day, sizeof(day), "%Y-%m-%d", &tm);
    if (f->fd >= 0 && strcmp(day, f->file_day) == 0)
        return 0;
    if (f->fd >= 0) {
        close(f->fd);
        f->fd = -1;
    }
    char name[64];
    snprintf(name, sizeof(name), "events-%s.ndjson", day);
    g_free(f->file_path);
    f->file_path = g_build_filename(f->feed_dir, name, NULL);
    /* Read access too: the tail repair reads back the last line. */
    int fd = open(f->file_path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        note_error(f, 0, "open %s: %s", name, strerror(errno));
        return TM_EIO;
    }
    /* A crash mid-write may have left half a line; it was never marked
     * delivered, so dropping it loses nothing and the next line starts clean. */
    if (tm__feed_repair_tail(fd) < 0) {
        note_error(f, 0, "repair %s: %s", name, strerror(errno));
        close(fd);
        return TM_EIO;
    }
    /* Make the new directory entry itself durable. */
    int dfd = open(f->feed_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    f->fd = fd;
    snprintf(f->file_day, sizeof(f->file_day), "%s", day);
    return 0;
}

/* Appends the batch as complete lines with one write and fsyncs it; only
 * then are the rows marked delivered. */
static void file_deliver(tm_feed *f, tm_outbox_event *ev, size_t n, GString *buf)
{
    if (file_open_today(f) < 0)
        goto retry;
    struct stat stbuf;
    if (fstat(f->fd, &stbuf) < 0) {
        note_error(f, 0, "stat: %s", strerror(errno));
        goto retry;
    }
    if (tm_write_all(f->fd, buf->str, buf->len) < 0) {
        note_error(f, 0, "write: %s", strerror(errno));
        /* Never leave part of a batch behind a later append. */
        if (ftruncate(f->fd, stbuf.st_size) < 0)
            tm_error("feed.file_truncate_failed", "errno=%d", errno);
        goto retry;
    }
    if (fsync(f->fd) < 0) {
        note_error(f, 0, "fsync: %s", strerror(errno));
        goto retry;
    }
    if (mark_delivered(f, ev, n, 0) == 0)
        note_success(f, 0);
    return;
retry:
    tm_warn("feed.retry", "sink=file events=%zu", n);
    retry_batch(f, ev, n, 0, 0);
}

/* ---- http sink: one POST at a time on the libcurl loop (curl_glib.h) ---- */

static size_t on_response_body(char *ptr, size_t size, size_t nmemb, void *user)
{
    tm_feed *f = user;
    size_t len = size * nmemb;
    if (f->response->len < RESPONSE_KEEP) {
        size_t room = RESPONSE_KEEP - f->response->len;
        g_string_append_len(f->response, ptr, (gssize)(len < room ? len : room));
    }
    return len;
}

static void transfer_release(tm_feed *f)
{
    if (f->easy) {
        tm_curl_loop_remove(f->curl, f->easy);
        curl_easy_cleanup(f->easy);
        f->easy = NULL;
    }
    curl_slist_free_all(f->headers);
    f->headers = NULL;
    g_free(f->body);
    f->body = NULL;
    g_string_truncate(f->response, 0);
    tm_outbox_events_free(f->ev, f->n);
    f->ev = NULL;
    f->n = 0;
}

static bool permanent_rejection(long status)
{
    return status >= 400 && status < 500 && status != 408 && status != 429;
}

static void http_done(tm_feed *f, CURLcode res)
{
    long status = 0;
    curl_off_t retry_after = 0;
    curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(f->easy, CURLINFO_RETRY_AFTER, &retry_after);
    tm_outbox_event *ev = f->ev;
    size_t n = f->n;

    if (res == CURLE_OK && status >= 200 && status < 300) {
        if (mark_delivered(f, ev, n, (int)status) == 0)
            note_success(f, (int)status);
        f->fail_streak = 0;
        f->hold_until = 0;
        if (f->retry_now_on_success) {
            f->retry_now_on_success = false;
            int changed = f->q->retry_now(f->store, tm_now_ms());
            if (changed > 0)
                tm_info("feed.recovered", "retry_now=%d", changed);
        }
        tm_debug("feed.delivered", "events=%zu status=%ld", n, status);
    } else if (res == CURLE_OK && permanent_rejection(status) && n > 1) {
        /* Which event did it reject? Ask one at a time. */
        note_error(f, (int)status, "batch of %zu rejected with %ld; retrying one by one", n,
                   status);
        f->isolate_until_seq = ev[n - 1].seq;
        int64_t *seqs = g_new(int64_t, n), *next = g_new(int64_t, n);
        for (size_t i = 0; i < n; i++) {
            seqs[i] = ev[i].seq;
            next[i] = 0;
        }
        out_retry(f, seqs, next, n, (int)status);
        g_free(seqs);
        g_free(next);
        tm_warn("feed.batch_rejected", "status=%ld events=%zu", status, n);
    } else if (res == CURLE_OK && permanent_rejection(status)) {
        note_error(f, (int)status, "rejected with status %ld", status);
        out_dead(f, &ev[0], (int)status, f->last_error, f->response->str, f->response->len);
    } else {
        int64_t ra_ms = status == 429 || status == 503 ? (int64_t)retry_after * 1000 : 0;
        if (res != CURLE_OK)
            note_error(f, (int)status, "%s", curl_easy_strerror(res));
        else
            note_error(f, (int)status, "status %ld", status);
        tm_warn("feed.retry", "queue=%s sink=http events=%zu status=%ld curl=%d", f->q->name, n,
                status, (int)res);
        retry_batch(f, ev, n, (int)status, ra_ms);
        /* The hold is at least half the current cap ("equal jitter"): one
         * sender gains nothing from full jitter, and a down endpoint should
         * see requests thin out for sure, not on average. */
        f->fail_streak++;
        f->retry_now_on_success = true;
        int64_t hold = tm__feed_backoff_ms(f->backoff_base_ms, f->backoff_max_ms, f->fail_streak,
                                           ra_ms, g_random_int());
        int64_t half =
            tm__feed_backoff_cap(f->backoff_base_ms, f->backoff_max_ms, f->fail_streak) / 2;
        f->hold_until = tm_mono_ms() + (hold > half ? hold : half);
    }
    transfer_release(f);
    next_pass(f);
}

static void on_transfer_done(CURL *easy, CURLcode res, void *user)
{
    tm_feed *f = user;
    if (easy == f->easy) /* only the batch in flight has an outcome to write */
        http_done(f, res);
}

/* Starts the POST of body (taken over: freed with the transfer). */
static int http_send(tm_feed *f, GString *body)
{
    size_t body_len = body->len;
    f->body = g_string_free(body, FALSE);
    char ts[32], hdr[128];
    snprintf(ts, sizeof(ts), "%lld", (long long)(tm_now_ms() / 1000));
    f->headers = curl_slist_append(f->headers, "Content-Type: application/json");
    f->headers = curl_slist_append(f->headers, "Expect:"); /* no 100-continue round trip */
    snprintf(hdr, sizeof(hdr), "X-Telemed-Timestamp: %s", ts);
    f->headers = curl_slist_append(f->headers, hdr);
    if (f->secret) {
        char sig[72];
        tm__feed_sign(f->secret, strlen(f->secret), ts, f->body, body_len, sig);
        snprintf(hdr, sizeof(hdr), "X-Telemed-Signature: %s", sig);
        f->headers = curl_slist_append(f->headers, hdr);
    }
    if (!f->headers)
        return TM_ENOMEM;

    CURL *e = curl_easy_init();
    if (!e)
        return TM_ENOMEM;
    curl_easy_setopt(e, CURLOPT_URL, f->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, f->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, f->headers);
    curl_easy_setopt(e, CURLOPT_USERAGENT, f->q->user_agent);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)f->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)f->timeout_ms);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_response_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    if (f->ca)
        curl_easy_setopt(e, CURLOPT_CAINFO, f->ca);
    if (f->client_cert)
        curl_easy_setopt(e, CURLOPT_SSLCERT, f->client_cert);
    if (f->client_key)
        curl_easy_setopt(e, CURLOPT_SSLKEY, f->client_key);
    f->easy = e;
    if (tm_curl_loop_add(f->curl, e) < 0) {
        f->easy = NULL;
        curl_easy_cleanup(e);
        return TM_EIO;
    }
    return 0;
}

/* ---- the pass ---------------------------------------------------------- */

static void pump(tm_feed *f)
{
    if (f->easy)
        return; /* in flight; its completion schedules the next pass */
    int64_t held = f->hold_until - tm_mono_ms();
    if (held > 0) {
        schedule(f, held);
        return;
    }
    tm_outbox_event *ev = NULL;
    size_t n = 0;
    int rc = f->route_first ? tm_route_new(f->store, tm_now_ms()) : 0;
    if (rc == 0)
        rc = f->q->next_batch(f->store, f->scope, tm_now_ms(), f->batch, &ev, &n);
    if (rc < 0) {
        note_error(f, 0, "outbox read failed: %s", tm_strerror(rc));
        schedule(f, f->backoff_base_ms);
        return;
    }
    if (n == 0) {
        int64_t due = 0;
        int64_t delay = IDLE_POLL_MS;
        if (f->q->next_due(f->store, &due) == 0) {
            delay = due - tm_now_ms();
            if (delay < 0)
                delay = 0;
            if (delay > IDLE_POLL_MS)
                delay = IDLE_POLL_MS;
        }
        schedule(f, delay);
        return;
    }
    if (f->isolate_until_seq) {
        if (ev[0].seq <= f->isolate_until_seq) {
            for (size_t i = 1; i < n; i++)
                free(ev[i].payload);
            n = 1;
        } else {
            f->isolate_until_seq = 0;
        }
    }
    GString *out = g_string_sized_new(n * 1024);
    build_events(f, ev, &n, out, f->url == NULL);
    if (n == 0) {
        free(ev);
        g_string_free(out, TRUE);
        next_pass(f);
        return;
    }
    if (!f->url) {
        file_deliver(f, ev, n, out);
        g_string_free(out, TRUE);
        tm_outbox_events_free(ev, n);
        next_pass(f);
        return;
    }
    f->ev = ev;
    f->n = n;
    rc = http_send(f, out);
    if (rc < 0) {
        note_error(f, 0, "cannot start request: %s", tm_strerror(rc));
        retry_batch(f, ev, n, 0, 0);
        transfer_release(f);
        schedule(f, f->backoff_base_ms);
    }
}

static gboolean on_wake(gpointer user)
{
    tm_feed *f = user;
    g_source_unref(f->wake);
    f->wake = NULL;
    pump(f);
    return G_SOURCE_REMOVE;
}

/* Runs a pass in delay_ms unless one is already due sooner. */
static void schedule(tm_feed *f, int64_t delay_ms)
{
    if (delay_ms < 0)
        delay_ms = 0;
    int64_t at = tm_mono_ms() + delay_ms;
    if (f->wake && f->wake_at <= at)
        return;
    if (f->wake) {
        g_source_destroy(f->wake);
        g_source_unref(f->wake);
    }
    f->wake = g_timeout_source_new((guint)delay_ms);
    g_source_set_callback(f->wake, on_wake, f, NULL);
    g_source_attach(f->wake, f->ctx);
    f->wake_at = at;
}

/* ---- public -------------------------------------------------------------- */

/* The URL without user info or query, which may carry credentials. */
static char *shown_url(const char *url)
{
    CURLU *u = curl_url();
    char *out = NULL, *tmp = NULL;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK) {
        curl_url_set(u, CURLUPART_USER, NULL, 0);
        curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);
        curl_url_set(u, CURLUPART_QUERY, NULL, 0);
        if (curl_url_get(u, CURLUPART_URL, &tmp, 0) == CURLUE_OK)
            out = g_strdup(tmp);
        curl_free(tmp);
    }
    curl_url_cleanup(u);
    return out ? out : g_strdup("(unparseable url)");
}

/* The endpoint a consumer posts to, as configured (borrowed). */
typedef struct endpoint {
    const char *key; /* the config key named in errors */
    const char *url, *secret, *ca, *client_cert, *client_key;
} endpoint;

static int start_http(tm_feed *f, const endpoint *ep, char **err)
{
    /* A typo here would otherwise only show as an endless retry. */
    if (g_ascii_strncasecmp(ep->url, "https://", 8) != 0 &&
        g_ascii_strncasecmp(ep->url, "http://", 7) != 0) {
        *err = g_strdup_printf("%s: must start with https:// (or http:// for a local gateway)",
                               ep->key);
        return TM_EINVAL;
    }
    /* First: it initialises libcurl, which shown_url already uses. */
    f->curl = tm_curl_loop_new(f->ctx, on_transfer_done, f);
    if (!f->curl) {
        *err = g_strdup_printf("%s: cannot start libcurl", f->q->name);
        return TM_EIO;
    }
    f->url = g_strdup(ep->url);
    f->url_shown = shown_url(f->url);
    f->secret = g_strdup(ep->secret);
    f->ca = g_strdup(ep->ca);
    f->client_cert = g_strdup(ep->client_cert);
    f->client_key = g_strdup(ep->client_key);
    if (!f->secret)
        tm_warn("feed.unsigned", "queue=%s reason=no_secret", f->q->name);
    if (g_ascii_strncasecmp(f->url, "http://", 7) == 0)
        tm_warn("feed.plaintext", "queue=%s reason=http_url", f->q->name);
    return 0;
}

static int start_file(tm_feed *f, const tm_config *cfg, char **err)
{
    f->feed_dir = g_build_filename(cfg->data_dir ? cfg->data_dir : ".", "feed", NULL);
    if (g_mkdir_with_parents(f->feed_dir, 0700) < 0) {
        *err = g_strdup_printf("feed: cannot create %s: %s", f->feed_dir, g_strerror(errno));
        return TM_EIO;
    }
    if (file_open_today(f) < 0) {
        *err = g_strdup_printf("feed: %s", f->last_error);
        return TM_EIO;
    }
    return 0;
}

/* One consumer of the outbox: q's rows to ep's URL, or to the NDJSON file
 * sink when ep has none. The timing knobs are the feed's for both. */
static tm_feed *engine_new(tm_store *store, const delivery_queue *q, const char *scope,
                           const tm_config *cfg, const endpoint *ep, GMainContext *ctx, char **err)
{
    tm_feed *f = g_new0(tm_feed, 1);
    f->q = q;
    f->scope = g_strdup(scope);
    f->store = store;
    f->ctx = g_main_context_ref(ctx ? ctx : g_main_context_default());
    f->fd = -1;
    snprintf(f->hospital, sizeof(f->hospital), "%s",
             cfg->hospital_id ? cfg->hospital_id : tm_store_hospital_id(store));
    f->batch = cfg->feed_batch > 0 ? cfg->feed_batch : 100;
    f->timeout_ms = cfg->feed_timeout_ms > 0 ? cfg->feed_timeout_ms : 10000;
    f->backoff_base_ms = cfg->feed_backoff_base_ms > 0 ? cfg->feed_backoff_base_ms : 1000;
    f->backoff_max_ms = cfg->feed_backoff_max_ms > 0 ? cfg->feed_backoff_max_ms : 300000;
    f->response = g_string_new(NULL);
    f->retry_now_on_success = true; /* rows may wait from before a restart */
    int rc = ep->url && *ep->url ? start_http(f, ep, err) : start_file(f, cfg, err);
    if (rc < 0)
        goto fail;
    tm_outbox_stats st;
    if (q->stats_get(store, f->scope, &st) == 0) {
        f->n_delivered = st.delivered;
        f->n_failed = st.failed_attempts;
        f->n_dead = st.dead;
    }
    schedule(f, 0);
    return f;
fail:
    tm_feed_free(f);
    return NULL;
}

tm_feed *tm_feed_new(tm_store *store, const tm_config *cfg, struct lws_context *lws,
                     GMainContext *ctx, char **err)
{
    (void)lws;
    endpoint ep = {"feed_url",   cfg->feed_url,         cfg->feed_secret,
                   cfg->feed_ca, cfg->feed_client_cert, cfg->feed_client_key};
    return engine_new(store, &regulator_queue, NULL, cfg, &ep, ctx, err);
}

tm_feed *tm_feed_member_new(tm_store *store, const tm_config *cfg, const char *institution,
                            const char *url, const char *secret, GMainContext *ctx, char **err)
{
    if (!url || !*url) {
        *err = g_strdup_printf("institution_feeds: %s: a webhook needs a URL", institution);
        return NULL;
    }
    endpoint ep = {"institution_feeds", url, secret, cfg->feed_ca, cfg->feed_client_cert,
                   cfg->feed_client_key};
    return engine_new(store, &member_queue, institution, cfg, &ep, ctx, err);
}

void tm_feed_route_first(tm_feed *f)
{
    f->route_first = true;
}

tm_feed *tm_messaging_new(tm_store *store, const tm_config *cfg, GMainContext *ctx, char **err)
{
    if (!cfg->messaging_url || !*cfg->messaging_url) {
        *err = g_strdup("messaging_url: not set");
        return NULL;
    }
    endpoint ep = {
        "messaging_url", cfg->messaging_url, cfg->messaging_secret, cfg->messaging_ca, NULL, NULL};
    return engine_new(store, &messaging_queue, NULL, cfg, &ep, ctx, err);
}

void tm_feed_also_kick(tm_feed *f, tm_feed *other)
{
    if (f)
        f->also = other;
}

void tm_feed_free(tm_feed *f)
{
    if (!f)
        return;
    if (f->wake) {
        g_source_destroy(f->wake);
        g_source_unref(f->wake);
        f->wake = NULL;
    }
    /* The batch in flight stays pending in the outbox: nothing is written. */
    transfer_release(f);
    tm_curl_loop_free(f->curl);
    if (f->fd >= 0)
        close(f->fd);
    if (f->response)
        g_string_free(f->response, TRUE);
    g_free(f->url);
    g_free(f->url_shown);
    if (f->secret)
        OPENSSL_cleanse(f->secret, strlen(f->secret));
    g_free(f->secret);
    g_free(f->ca);
    g_free(f->client_cert);
    g_free(f->client_key);
    g_free(f->feed_dir);
    g_free(f->file_path);
    g_free(f->scope);
    g_main_context_unref(f->ctx);
    g_free(f);
}

void tm_feed_kick(tm_feed *f)
{
    if (!f)
        return;
    schedule(f, KICK_DELAY_MS);
    if (f->also)
        schedule(f->also, KICK_DELAY_MS);
}

static int feed_stats(tm_feed *f, tm_outbox_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (f->q->queue(f->store, f->scope, &st->pending, &st->oldest_pending_at) < 0)
        return TM_EIO;
    st->delivered = f->n_delivered;
    st->failed_attempts = f->n_failed;
    st->dead = f->n_dead;
    return 0;
}

json_t *tm_feed_status(tm_feed *f)
{
    tm_outbox_stats st;
    if (feed_stats(f, &st) < 0)
        return NULL;
    char when[40];
    int64_t now = tm_now_ms();
    json_t *o = json_object();
    json_object_set_new(o, "sink", json_string(f->url ? "http" : "file"));
    if (f->url)
        json_object_set_new(o, "endpoint", json_string(f->url_shown));
    else
        json_object_set_new(o, "path", f->file_path ? json_string(f->file_path) : json_null());
    json_object_set_new(o, "queue_depth", json_integer(st.pending));
    json_object_set_new(
        o, "oldest_undelivered_age_s",
        json_integer(st.oldest_pending_at ? (now - st.oldest_pending_at) / 1000 : 0));
    json_object_set_new(o, "delivered", json_integer(st.delivered));
    json_object_set_new(o, "failed_attempts", json_integer(st.failed_attempts));
    json_object_set_new(o, "dead", json_integer(st.dead));
    json_object_set_new(o, "in_flight", json_integer((json_int_t)f->n));
    json_object_set_new(o, "retrying", json_boolean(f->retrying));
    int64_t held = f->hold_until - tm_mono_ms();
    json_object_set_new(o, "held_for_ms", json_integer(held > 0 ? held : 0));
    json_object_set_new(o, "last_status",
                        f->last_status ? json_integer(f->last_status) : json_null());
    json_object_set_new(o, "last_error",
                        f->last_error[0] ? json_string(f->last_error) : json_null());
    json_object_set_new(o, "last_error_at",
                        f->last_error_at
                            ? json_string(tm_rfc3339(f->last_error_at, when, sizeof(when)))
                            : json_null());
    json_object_set_new(o, "last_success_at",
                        f->last_success_at
                            ? json_string(tm_rfc3339(f->last_success_at, when, sizeof(when)))
                            : json_null());
    return o;
}

json_t *tm_feed_dead_letters(tm_feed *f, int limit)
{
    return f->q->dead_list(f->store, f->scope, limit);
}

int tm_feed_replay(tm_feed *f, int64_t seq)
{
    int rc = f->q->replay(f->store, f->scope, seq);
    if (rc == 0) {
        f->n_dead--;
        tm_feed_kick(f);
    }
    return rc;
}

/* A member's webhook: the feed's samples labelled with its institution.
 * The family's HELP and TYPE come once, with the deployment's webhook. */
static void member_metrics(tm_feed *f, const tm_outbox_stats *st, double age, GString *out)
{
    const char *in = f->scope;
    g_string_append_printf(out,
                           "telemed_feed_queue_depth{institution=\"%s\"} %lld\n"
                           "telemed_feed_oldest_undelivered_seconds{institution=\"%s\"} %.3f\n"
                           "telemed_feed_delivered_total{institution=\"%s\"} %lld\n"
                           "telemed_feed_failed_attempts_total{institution=\"%s\"} %lld\n"
                           "telemed_feed_dead_letters{institution=\"%s\"} %lld\n",
                           in, (long long)st->pending, in, age, in, (long long)st->delivered, in,
                           (long long)st->failed_attempts, in, (long long)st->dead);
}

int tm_feed_metrics(tm_feed *f, GString *out)
{
    tm_outbox_stats st;
    if (feed_stats(f, &st) < 0)
        return TM_EIO;
    double age = st.oldest_pending_at ? (double)(tm_now_ms() - st.oldest_pending_at) / 1000.0 : 0;
    if (age < 0)
        age = 0;
    if (f->scope) {
        member_metrics(f, &st, age, out);
        return 0;
    }
    const char *m = f->q->name;
    g_string_append_printf(
        out,
        "# HELP telemed_%s_queue_depth %s\n"
        "# TYPE telemed_%s_queue_depth gauge\n"
        "telemed_%s_queue_depth %lld\n"
        "# HELP telemed_%s_oldest_undelivered_seconds Age of the oldest undelivered event.\n"
        "# TYPE telemed_%s_oldest_undelivered_seconds gauge\n"
        "telemed_%s_oldest_undelivered_seconds %.3f\n"
        "# HELP telemed_%s_delivered_total %s\n"
        "# TYPE telemed_%s_delivered_total counter\n"
        "telemed_%s_delivered_total %lld\n"
        "# HELP telemed_%s_failed_attempts_total Failed delivery attempts (retries and "
        "rejections).\n"
        "# TYPE telemed_%s_failed_attempts_total counter\n"
        "telemed_%s_failed_attempts_total %lld\n"
        "# HELP telemed_%s_dead_letters Events rejected permanently, waiting for an admin.\n"
        "# TYPE telemed_%s_dead_letters gauge\n"
        "telemed_%s_dead_letters %lld\n",
        m, f->q->depth_help, m, m, (long long)st.pending, m, m, m, age < 0 ? 0.0 : age, m,
        f->q->delivered_help, m, m, (long long)st.delivered, m, m, m, (long long)st.failed_attempts,
        m, m, m, (long long)st.dead);
    return 0;
}

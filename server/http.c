/*
 * http.c - the HTTP side of the REST API under /api/v1/, /healthz and
 * /metrics, on the same libwebsockets server (and GLib loop) as signaling:
 * per-request state, framing, bodies, responses and the lws callback. The
 * resources themselves live in api*.c (http_internal.h); the web client's
 * files are served by an lws file mount, not here.
 *
 * Control loop thread only.
 */
#include "http_internal.h"
#include "telemed/cluster.h"
#include "telemed/common.h"
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

size_t tm_http_pss_size(void)
{
    return sizeof(http_pss);
}

static tm_app *app_of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

/* ---- responses ----------------------------------------------------- */

void tm__respond_text(http_pss *p, int status, const char *ctype, GString *body)
{
    p->status = status;
    p->ctype = ctype;
    if (p->resp)
        g_string_free(p->resp, TRUE);
    p->resp = body;
    p->sent = 0;
}

/* Steals data. */
void tm__respond_json(http_pss *p, int status, json_t *data)
{
    char *text = json_dumps(data, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(data);
    GString *body = g_string_new(text ? text : "{}");
    g_string_append_c(body, '\n');
    free(text);
    tm__respond_text(p, status, "application/json", body);
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
    case TM_EDRAINING:
        return 503;
    default:
        return 500;
    }
}

void tm__respond_err(http_pss *p, int err, const char *message)
{
    tm__respond_err_reason(p, err, message, NULL);
}

void tm__respond_err_reason(http_pss *p, int err, const char *message, const char *reason)
{
    json_t *e = json_pack("{s:s, s:s}", "code", tm_error_code(err), "message",
                          message ? message : tm_strerror(err));
    if (reason)
        json_object_set_new(e, "reason", json_string(reason));
    tm__respond_json(p, http_status_of(err), json_pack("{s:o}", "error", e));
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

/* ---- responses given later ------------------------------------------- */

struct tm__http_later {
    http_pss *p; /* NULL once the connection closed */
};

tm__http_later *tm__http_defer(http_pss *p)
{
    tm__http_later *l = g_new0(tm__http_later, 1);
    l->p = p;
    p->later = l;
    /* The wait is the work's, not an idle client's. */
    if (p->wsi)
        lws_set_timeout(p->wsi, NO_PENDING_TIMEOUT, 0);
    return l;
}

http_pss *tm__http_later_pss(tm__http_later *l)
{
    return l->p;
}

/* The headers go out from the next writable callback, as every answer's
 * body does: lws writes only from inside its own callbacks. */
void tm__http_later_done(tm__http_later *l)
{
    http_pss *p = l->p;
    g_free(l);
    if (!p)
        return;
    p->later = NULL;
    if (!p->resp && !p->streaming)
        tm__respond_err(p, TM_EIO, "no response");
    p->headers_when_writable = true;
    if (p->wsi) /* NULL: a request routed without a connection (the fuzz harness) */
        lws_callback_on_writable(p->wsi);
}

/* ---- routing: /healthz, /metrics, /api/v1/ -------------------------- */

static void route_metrics(tm_app *app, http_pss *p)
{
    GString *out =
        g_string_new("# HELP telemed_up The server is running.\n# TYPE telemed_up gauge\n"
                     "telemed_up 1\n");
    g_string_append_printf(
        out,
        "# HELP telemed_draining The node takes no new visits (docs/cluster.md).\n"
        "# TYPE telemed_draining gauge\ntelemed_draining %d\n",
        tm_node_draining(app->node));
    g_string_append_printf(out,
                           "# TYPE telemed_uptime_seconds gauge\ntelemed_uptime_seconds %lld\n",
                           (long long)((tm_now_ms() - app->started_ms) / 1000));
    tm_signaling_metrics(app->sig, out);
    g_string_append_printf(
        out,
        "# TYPE telemed_connections_refused_total counter\n"
        "telemed_connections_refused_total{why=\"unauthenticated_per_addr\"} %llu\n",
        (unsigned long long)app->conns_refused);
    if (app->messaging)
        tm_feed_metrics(app->messaging, out);
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
            "# HELP telemed_media_nacks_answered_total Packets resent from the retransmission "
            "history on a receiver's NACK.\n"
            "# TYPE telemed_media_nacks_answered_total counter\n"
            "telemed_media_nacks_answered_total %llu\n"
            "# TYPE telemed_media_nacks_sent_total counter\n"
            "telemed_media_nacks_sent_total %llu\n"
            "# TYPE telemed_media_rtx_received_total counter\n"
            "telemed_media_rtx_received_total %llu\n"
            "# HELP telemed_media_rtx_redundant_total Retransmissions of packets the server "
            "had (a sender's padding), not forwarded.\n"
            "# TYPE telemed_media_rtx_redundant_total counter\n"
            "telemed_media_rtx_redundant_total %llu\n"
            "# HELP telemed_media_dtls_shed_total DTLS sessions whose OpenSSL state was "
            "freed once SRTP flowed.\n"
            "# TYPE telemed_media_dtls_shed_total counter\n"
            "telemed_media_dtls_shed_total %llu\n"
            "# HELP telemed_media_rtx_bytes Bytes of retransmission history held, unused "
            "pooled chunks included.\n"
            "# TYPE telemed_media_rtx_bytes gauge\n"
            "telemed_media_rtx_bytes %llu\n",
            lat.p50_us, lat.p99_us, lat.max_us, (unsigned long long)lat.samples,
            (unsigned long long)c.nacks_answered, (unsigned long long)c.nacks_sent,
            (unsigned long long)c.rtx_received, (unsigned long long)c.rtx_redundant,
            (unsigned long long)c.dtls_shed, (unsigned long long)c.rtx_bytes);
    }
    if (app->review) {
        tm_review_stats rs;
        tm_review_stats_get(app->review, &rs);
        int64_t queued = 0;
        tm_rendition_count(app->store, "queued", &queued);
        g_string_append_printf(
            out,
            "# TYPE telemed_review_renders gauge\ntelemed_review_renders %d\n"
            "# HELP telemed_review_renders_peak Most renders at once since start.\n"
            "# TYPE telemed_review_renders_peak gauge\ntelemed_review_renders_peak %d\n"
            "# TYPE telemed_review_queued gauge\ntelemed_review_queued %lld\n"
            "# TYPE telemed_review_renditions_total counter\n"
            "telemed_review_renditions_total{outcome=\"complete\"} %llu\n"
            "telemed_review_renditions_total{outcome=\"failed\"} %llu\n",
            rs.running, rs.running_peak, (long long)queued, (unsigned long long)rs.done,
            (unsigned long long)rs.failed);
    }
    if (app->cluster)
        tm_cluster_metrics(app->cluster, out);
    tm_node_label_metrics(out, tm_node_id(app->node));
    tm__respond_text(p, 200, "text/plain; version=0.0.4", out);
}

/* 503 while draining takes the node out of the balancer's rotation for new
 * connections; the balancer leaves established ones alone. */
static void route_health(tm_app *app, http_pss *p)
{
    int status = 200;
    json_t *h = tm_node_health(app->node, tm_store_schema_version(app->store),
                               (tm_now_ms() - app->started_ms) / 1000, &status);
    tm__respond_json(p, status, h);
}

static bool route_takes_body(const http_pss *p)
{
    return (p->method == LWSHUMETH_POST || p->method == LWSHUMETH_PUT ||
            p->method == LWSHUMETH_PATCH) &&
           strncmp(p->path, "/api/v1/", 8) == 0;
}

void tm__http_route(tm_app *app, http_pss *p)
{
    if (p->body_too_big) {
        tm__respond_err(p, TM_ETOOBIG, "request body over 256 KiB");
    } else if (p->has_body && !route_takes_body(p)) {
        tm__respond_json(p, 405,
                         json_pack("{s:{s:s, s:s}}", "error", "code", tm_error_code(TM_EINVAL),
                                   "message", "this route takes no request body"));
    } else if (strcmp(p->path, "/healthz") == 0) {
        route_health(app, p);
    } else if (strcmp(p->path, "/metrics") == 0) {
        route_metrics(app, p);
    } else if (strncmp(p->path, "/api/v1/", 8) == 0) {
        http_req r = {.app = app, .p = p};
        tm__route_api(&r, p->path + 8);
        g_strfreev(r.seg);
        json_decref(r.body);
    } else {
        tm__respond_err(p, TM_ENOTFOUND, "no such route");
    }
    /* a route that forgot to answer is a bug, not a crash */
    if (!p->resp && !p->streaming && !p->later)
        tm__respond_err(p, TM_EIO, "no response");
}

/* Routes a complete request and starts the response. */
static int handle_request(struct lws *wsi, http_pss *p)
{
    if (p->responded)
        return 0;
    p->responded = true;
    tm__http_route(app_of(wsi), p);
    return p->later ? 0 : send_headers(wsi, p);
}

void tm__http_pss_clear(http_pss *p)
{
    if (p->later) /* its work goes on; its answer has nowhere to go */
        p->later->p = NULL;
    p->later = NULL;
    p->headers_when_writable = false;
    if (p->body)
        g_byte_array_free(p->body, TRUE);
    if (p->resp)
        g_string_free(p->resp, TRUE);
    if (p->have_fd)
        close(p->fd);
    p->have_fd = false;
    tm_rec_reader_free(p->reader);
    if (p->args)
        g_ptr_array_free(p->args, TRUE);
    p->body = NULL;
    p->resp = NULL;
    p->reader = NULL;
    p->args = NULL;
    p->streaming = false;
}

/* The reply is out: wait for the next request, or close after one that
 * carried a body (once lws has flushed what it buffered). */
static int finish_response(struct lws *wsi, http_pss *p)
{
    bool close = p->close_after;
    tm__http_pss_clear(p);
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
    tm__http_pss_clear(p);
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* ---- request framing -------------------------------------------- */

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
tm__http_framing tm__http_framing_of(bool transfer_encoding, int cl_total, int cl_second,
                                     const char *cl_text, uint64_t *length, const char **why)
{
    *length = 0;
    if (transfer_encoding && cl_total > 0) {
        *why = "Content-Length and Transfer-Encoding together";
        return TM_HTTP_FRAMING_BAD_REQUEST;
    }
    if (transfer_encoding) {
        *why = "Transfer-Encoding is not accepted on requests; send Content-Length";
        return TM_HTTP_FRAMING_NEEDS_LENGTH;
    }
    if (cl_total <= 0)
        return TM_HTTP_FRAMING_NONE;
    if (cl_second > 0 || cl_total >= 24 || !cl_text || !all_digits(cl_text) ||
        strlen(cl_text) > 15) {
        *why = "Content-Length must be one decimal number";
        return TM_HTTP_FRAMING_BAD_REQUEST;
    }
    *length = g_ascii_strtoull(cl_text, NULL, 10);
    return *length ? TM_HTTP_FRAMING_LENGTH : TM_HTTP_FRAMING_NONE;
}

static tm__http_framing request_framing(struct lws *wsi, uint64_t *length, const char **why)
{
    bool te = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0;
    int cl = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
    char text[24];
    bool copied =
        cl > 0 && cl < (int)sizeof(text) &&
        lws_hdr_copy_fragment(wsi, text, sizeof(text), WSI_TOKEN_HTTP_CONTENT_LENGTH, 0) >= 0;
    return tm__http_framing_of(
        te, cl, cl > 0 ? lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, 1) : 0,
        copied ? text : NULL, length, why);
}

/* The query's arguments, joined query and peer, as the resources read them
 * (http_internal.h). lws keeps the arguments split and decoded. */
static void copy_request_context(struct lws *wsi, http_pss *p)
{
    p->args = g_ptr_array_new_with_free_func(g_free);
    for (int i = 0;; i++) {
        int len = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i);
        char *arg = g_malloc((gsize)len + 1);
        /* -1: there is no argument i (an empty one copies as "") */
        if (lws_hdr_copy_fragment(wsi, arg, len + 1, WSI_TOKEN_HTTP_URI_ARGS, i) < 0) {
            g_free(arg);
            break;
        }
        g_ptr_array_add(p->args, arg);
    }
    if (lws_hdr_copy(wsi, p->query, sizeof(p->query), WSI_TOKEN_HTTP_URI_ARGS) <= 0)
        p->query[0] = 0;
    lws_get_peer_simple(wsi, p->peer_ip, sizeof(p->peer_ip));
    p->sock_fd = lws_get_socket_fd(wsi);
}

/* Answers before the body is read and closes: the framing is not to be
 * trusted, so neither is anything behind it. The reply is written at once
 * because lws goes on to read the body it believes in. */
static int refuse_framing(struct lws *wsi, http_pss *p, int status, const char *why)
{
    tm_info("http.bad_framing", "status=%d", status);
    p->responded = true;
    p->close_after = true;
    tm__respond_json(
        p, status,
        json_pack("{s:{s:s, s:s}}", "error", "code", tm_error_code(TM_EINVAL), "message", why));
    if (send_headers(wsi, p))
        return -1;
    unsigned char buf[LWS_PRE + 512];
    size_t n = p->resp->len < 512 ? p->resp->len : 512;
    memcpy(buf + LWS_PRE, p->resp->str, n);
    if (lws_write(wsi, buf + LWS_PRE, n, LWS_WRITE_HTTP_FINAL) != (int)n)
        return -1;
    tm__http_pss_clear(p);
    return lws_raw_transaction_completed(wsi);
}

static int start_request(struct lws *wsi, http_pss *p)
{
    tm__http_pss_clear(p);
    memset(p, 0, sizeof(*p));
    const char *uri = NULL;
    int ulen = 0;
    p->wsi = wsi;
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
    if (lws_hdr_copy(wsi, p->accept, sizeof(p->accept), WSI_TOKEN_HTTP_ACCEPT) < 0)
        p->accept[0] = 0;
    uint64_t length;
    const char *why = NULL;
    copy_request_context(wsi, p);
    switch (request_framing(wsi, &length, &why)) {
    case TM_HTTP_FRAMING_BAD_REQUEST:
        return refuse_framing(wsi, p, 400, why);
    case TM_HTTP_FRAMING_NEEDS_LENGTH:
        return refuse_framing(wsi, p, 411, why);
    case TM_HTTP_FRAMING_NONE:
        return handle_request(wsi, p);
    case TM_HTTP_FRAMING_LENGTH:
        break;
    }
    tm__http_expect_body(p, length);
    return 0; /* the body comes in LWS_CALLBACK_HTTP_BODY */
}

void tm__http_expect_body(http_pss *p, uint64_t length)
{
    p->close_after = true;
    p->has_body = true;
    p->body_deadline_ms = tm_now_ms() + BODY_DEADLINE_MS;
    if (length > MAX_BODY)
        p->body_too_big = true;
    else if (route_takes_body(p))
        p->body = g_byte_array_sized_new((guint)length);
}

/* Keeps the body of a route that takes one; a body elsewhere is read and
 * dropped so the refusal reaches the client. */
int tm__http_take_body(http_pss *p, const void *in, size_t len)
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
        return tm__http_take_body(p, in, len) ? -1 : 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return handle_request(wsi, p) ? -1 : 0;
    case LWS_CALLBACK_HTTP_WRITEABLE: {
        if (p->later)
            return 0; /* parked: nothing to write yet */
        if (p->headers_when_writable) {
            p->headers_when_writable = false;
            return send_headers(wsi, p) ? -1 : 0;
        }
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
        tm__http_pss_clear(p);
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

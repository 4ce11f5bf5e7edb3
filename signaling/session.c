/*
 * session.c - one WebSocket of telemed.v1: frames in (reassembled, size- and
 * rate-limited), the dispatch of a request to its room's handler, and the
 * queue of frames out.
 *
 * Runs in the libwebsockets callback on the control loop. A session is the
 * socket; the user behind it (visit.c) outlives it for the grace period, so
 * nothing here holds visit state. Pushes are queued per session and written
 * when lws says the socket has room; a session that falls MAX_OUTQ_BYTES
 * behind is closed rather than buffered without end. A session without a
 * socket (signaling_testing.h, for the fuzz target) runs the same path from
 * a whole frame on and keeps what it would send queued.
 */
#include "signaling_internal.h"
#include "signaling_testing.h"
#include "telemed/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *tm__jstr(json_t *msg, const char *key)
{
    json_t *v = json_object_get(msg, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

json_t *tm__time_json(int64_t ms)
{
    char ts[40];
    return ms ? json_string(tm_rfc3339(ms, ts, sizeof(ts))) : json_null();
}

/* Asks lws for a write slot; a session without a socket (signaling_testing.h)
 * keeps its frames queued for the caller to read. */
static void want_write(session *s)
{
    if (s->wsi)
        lws_callback_on_writable(s->wsi);
}

/* Queues a copy of text (one JSON message) and asks lws for a write slot. */
void tm__send_text(session *s, const char *text, size_t len)
{
    if (!s || s->closing)
        return;
    if (s->outq_bytes + len > MAX_OUTQ_BYTES) {
        tm_warn("ws.slow_consumer", "user=%s queued=%zu", s->u ? s->u->key : "-", s->outq_bytes);
        tm__session_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too slow to keep up");
        return;
    }
    unsigned char *buf = malloc(LWS_PRE + len + 1);
    if (!buf)
        return;
    memcpy(buf + LWS_PRE, text, len);
    buf[LWS_PRE + len] = 0;
    g_queue_push_tail(&s->outq, buf);
    g_queue_push_tail(&s->outlen, GSIZE_TO_POINTER(len));
    s->outq_bytes += len;
    s->sig->msgs_out++;
    want_write(s);
}

/* Queues msg (stolen) for the session. */
void tm__send_msg(session *s, json_t *msg)
{
    if (!s || s->closing) {
        json_decref(msg);
        return;
    }
    char *text = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (text)
        tm__send_text(s, text, strlen(text));
    free(text);
}

void tm__send_to_user(user *u, json_t *msg)
{
    if (u && u->sess)
        tm__send_msg(u->sess, msg);
    else
        json_decref(msg);
}

void tm__reply_ok(session *s, const char *re, json_t *data)
{
    json_t *m = json_pack("{s:s, s:s, s:o}", "type", "result", "re", re ? re : "", "data",
                          data ? data : json_object());
    tm__send_msg(s, m);
}

void tm__reply_err(session *s, const char *re, int err, const char *message)
{
    tm__reply_err_reason(s, re, err, message, NULL);
}

void tm__reply_err_reason(session *s, const char *re, int err, const char *message,
                          const char *reason)
{
    s->sig->errors_total++;
    json_t *m = json_pack("{s:s, s:s, s:s}", "type", "error", "code", tm_error_code(err), "message",
                          message ? message : tm_strerror(err));
    if (re)
        json_object_set_new(m, "re", json_string(re));
    else
        json_object_set_new(m, "re", json_null());
    if (reason)
        json_object_set_new(m, "reason", json_string(reason));
    tm__send_msg(s, m);
}

static bool write_one(session *s)
{
    unsigned char *buf = g_queue_pop_head(&s->outq);
    if (!buf)
        return true;
    size_t len = GPOINTER_TO_SIZE(g_queue_pop_head(&s->outlen));
    s->outq_bytes -= len;
    int n = lws_write(s->wsi, buf + LWS_PRE, len, LWS_WRITE_TEXT);
    free(buf);
    return n >= (int)len;
}

void tm__session_close(session *s, int code, const char *reason)
{
    if (s->closing)
        return;
    s->closing = true;
    s->close_code = code;
    g_strlcpy(s->close_reason, reason ? reason : "", sizeof(s->close_reason));
    want_write(s);
}

const char *tm__audit_role(const user *u)
{
    return u->admin ? "admin" : tm_role_name(u->role);
}

bool tm__need_role(request *r, tm_role a, tm_role b)
{
    if (r->u->role == a || r->u->role == b)
        return true;
    tm__reply_err(r->s, r->id, TM_EPERM, "this message is not for your role");
    return false;
}

static void handle_ping(request *r)
{
    tm__reply_ok(r->s, r->id, json_pack("{s:o}", "server_time", tm__time_json(tm_now_ms())));
}

static const tm__handler session_handlers[] = {
    {"ping", handle_ping},
    {NULL, NULL},
};

/* Every message type, by room; each room keeps its own table. */
static const tm__handler *const rooms[] = {
    session_handlers,         tm__auth_handlers,    tm__lobby_handlers,    tm__visit_handlers,
    tm__supervision_handlers, tm__media_handlers,   tm__consent_handlers,  tm__party_handlers,
    tm__guest_link_handlers,  tm__consult_handlers, tm__transfer_handlers, tm__followup_handlers,
};

static const tm__handler *find_handler(const char *type)
{
    for (size_t r = 0; r < TM_ARRAY_LEN(rooms); r++)
        for (const tm__handler *h = rooms[r]; h->type; h++)
            if (strcmp(type, h->type) == 0)
                return h;
    return NULL;
}

/* Token bucket: rate_msgs_per_s sustained, rate_burst at once. */
static bool rate_ok(tm_signaling *sig, session *s)
{
    int64_t now = tm_mono_ms();
    s->tokens += (double)(now - s->tokens_ms) * sig->cfg->rate_msgs_per_s / 1000.0;
    if (s->tokens > sig->cfg->rate_burst)
        s->tokens = sig->cfg->rate_burst;
    s->tokens_ms = now;
    if (s->tokens < 1.0)
        return false;
    s->tokens -= 1.0;
    return true;
}

static void handle_frame(tm_signaling *sig, session *s, const char *buf, size_t len)
{
    sig->msgs_in++;
    if (!rate_ok(sig, s)) {
        sig->rate_limited++;
        if (++s->strikes > sig->cfg->rate_burst) {
            /* A client that keeps flooding after being told is cut off. */
            tm_warn("ws.flood", "user=%s ip=%s", s->u ? s->u->key : "-", s->peer_ip);
            tm__session_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too many messages");
            return;
        }
        tm__reply_err(s, NULL, TM_ERATE, "slow down");
        return;
    }
    s->strikes = 0;
    json_error_t jerr;
    json_t *msg = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!msg || !json_is_object(msg)) {
        char message[200];
        snprintf(message, sizeof(message), "malformed JSON: %s", msg ? "not an object" : jerr.text);
        tm__reply_err(s, NULL, TM_EINVAL, message);
        json_decref(msg);
        return;
    }
    const char *type = tm__jstr(msg, "type");
    json_t *idv = json_object_get(msg, "id");
    const char *id = json_is_string(idv) ? json_string_value(idv) : NULL;
    if (!type || !id || strlen(id) > 64) {
        tm__reply_err(s, id, TM_EINVAL,
                      "every request needs a string type and a string id (<= 64)");
        goto done;
    }
    if (strcmp(type, "hello") == 0) {
        tm__handle_hello(sig, s, msg, id);
        goto done;
    }
    if (!s->u) {
        tm__reply_err(s, id, TM_EAUTH, "say hello with a token first");
        goto done;
    }
    const tm__handler *h = find_handler(type);
    if (h) {
        request r = {.sig = sig, .s = s, .u = s->u, .msg = msg, .id = id};
        h->fn(&r);
        goto done;
    }
    tm__reply_err(s, id, TM_EINVAL, "unknown message type");
done:
    json_decref(msg);
}

/* A whole frame, timed from its arrival for the queue-push latency. */
static void receive_frame(tm_signaling *sig, session *s, const char *buf, size_t len)
{
    sig->frame_us = g_get_monotonic_time();
    handle_frame(sig, s, buf, len);
    sig->frame_us = 0;
}

typedef struct pss {
    session *s;
} pss;

size_t tm_signaling_pss_size(void)
{
    return sizeof(pss);
}

/* The session removes this timer when it goes, so it is still here. */
static gboolean hello_timed_out(gpointer data)
{
    session *s = data;
    s->hello_timer = 0;
    tm_info("ws.hello_timeout", "ip=%s", s->peer_ip);
    tm__session_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "no hello in time");
    return G_SOURCE_REMOVE;
}

void tm__session_authenticated(session *s)
{
    if (s->hello_timer) {
        g_source_remove(s->hello_timer);
        s->hello_timer = 0;
    }
}

/* A new connection has hello_timeout_s to authenticate. (How many one
 * address may hold meanwhile is decided at accept: server/conn_limit.c.) */
static session *session_new(tm_signaling *sig, struct lws *wsi, const char *peer_ip)
{
    session *s = g_new0(session, 1);
    s->sig = sig;
    s->wsi = wsi;
    s->tokens = sig->cfg->rate_burst;
    s->tokens_ms = tm_mono_ms();
    g_queue_init(&s->outq);
    g_queue_init(&s->outlen);
    g_strlcpy(s->peer_ip, peer_ip, sizeof(s->peer_ip));
    sig->connections++;
    sig->connections_total++;
    s->hello_timer = g_timeout_add_seconds((guint)sig->cfg->hello_timeout_s, hello_timed_out, s);
    return s;
}

static void session_free(session *s)
{
    tm__session_authenticated(s);
    unsigned char *buf;
    while ((buf = g_queue_pop_head(&s->outq)))
        free(buf);
    g_queue_clear(&s->outlen);
    if (s->rx)
        g_byte_array_free(s->rx, TRUE);
    g_free(s);
}

/* The connection is gone: its user, if any, starts the grace period. */
static void session_closed(tm_signaling *sig, session *s)
{
    sig->connections--;
    if (s->u && s->u->sess == s) {
        char visit_id[64] = "";
        if (s->u->role == TM_ROLE_PATIENT)
            g_strlcpy(visit_id, s->u->visit_id, sizeof(visit_id));
        tm__user_detach(sig, s->u);
        if (visit_id[0])
            tm__cluster_patient_away(sig, visit_id, true);
    }
    tm__flush_positions(sig);
    session_free(s);
}

/* lws' own opcode for a close frame (lws-write.h leaves it out of the enum
 * but lws_write() takes it; lws uses it so for its own close frames). */
#define TM_LWS_WRITE_CLOSE ((enum lws_write_protocol)4)

/* Writes the close frame with its code and reason and gives the client five
 * seconds to answer it; lws ends the connection on the answer. Not by
 * lws_close_reason() and returning -1 (or a kill timeout): lws takes those
 * for a dead socket and drops it unsent, and the client sees 1006. */
static int send_close(session *s)
{
    unsigned char buf[LWS_PRE + 2 + sizeof(s->close_reason)];
    size_t len = 2 + strlen(s->close_reason);
    buf[LWS_PRE] = (unsigned char)(s->close_code >> 8);
    buf[LWS_PRE + 1] = (unsigned char)(s->close_code & 0xff);
    memcpy(buf + LWS_PRE + 2, s->close_reason, len - 2);
    s->close_sent = true;
    if (lws_write(s->wsi, buf + LWS_PRE, len, TM_LWS_WRITE_CLOSE) < (int)len)
        return -1;
    lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_ACK, 5);
    return 0;
}

static tm_signaling *sig_of(struct lws *wsi)
{
    return lws_get_protocol(wsi) ? (tm_signaling *)lws_get_protocol(wsi)->user : NULL;
}

int tm_signaling_lws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user_data,
                              void *in, size_t len)
{
    pss *p = user_data;
    tm_signaling *sig = sig_of(wsi);
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED: {
        if (!sig || sig->connections >= (uint64_t)sig->cfg->max_connections)
            return -1;
        char peer_ip[64];
        lws_get_peer_simple(wsi, peer_ip, sizeof(peer_ip));
        p->s = session_new(sig, wsi, peer_ip);
        break;
    }
    case LWS_CALLBACK_RECEIVE: {
        session *s = p->s;
        if (!s || s->closing)
            break;
        bool final = lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0;
        size_t have = s->rx ? s->rx->len : 0;
        if (!s->rx_too_big && have + len > (size_t)sig->cfg->max_frame_bytes) {
            s->rx_too_big = true;
            if (s->rx)
                g_byte_array_set_size(s->rx, 0);
        }
        if (s->rx_too_big) {
            if (final) {
                s->rx_too_big = false;
                tm__reply_err(s, NULL, TM_ETOOBIG, "frame larger than the server accepts");
            }
            break;
        }
        if (lws_frame_is_binary(wsi)) {
            if (final)
                tm__reply_err(s, NULL, TM_EINVAL, "binary frames are not part of telemed.v1");
            break;
        }
        if (final && have == 0) {
            receive_frame(sig, s, in, len);
            break;
        }
        if (!s->rx)
            s->rx = g_byte_array_new();
        g_byte_array_append(s->rx, in, (guint)len);
        if (final) {
            receive_frame(sig, s, (const char *)s->rx->data, s->rx->len);
            g_byte_array_set_size(s->rx, 0);
        }
        break;
    }
    case LWS_CALLBACK_SERVER_WRITEABLE: {
        session *s = p->s;
        if (!s)
            break;
        if (!g_queue_is_empty(&s->outq)) {
            /* As much as the socket takes now: every writable event costs a
             * trip through the event loop, so one trip should carry all. */
            do {
                if (!write_one(s))
                    return -1;
            } while (!g_queue_is_empty(&s->outq) && !lws_send_pipe_choked(wsi));
            if (!g_queue_is_empty(&s->outq) || s->closing)
                lws_callback_on_writable(wsi);
            break;
        }
        if (s->closing && !s->close_sent)
            return send_close(s);
        break;
    }
    case LWS_CALLBACK_CLOSED: {
        session *s = p->s;
        if (!s)
            break;
        p->s = NULL;
        session_closed(sig, s);
        break;
    }
    default:
        break;
    }
    return 0;
}

/* ---- a session without a socket (signaling_testing.h) -------------- */

tm_signaling_session *tm_signaling_session_open(tm_signaling *sig, const char *peer_ip)
{
    return session_new(sig, NULL, peer_ip);
}

void tm_signaling_session_frame(tm_signaling_session *s, const char *text, size_t len)
{
    if (!s->closing)
        receive_frame(s->sig, s, text, len);
}

char *tm_signaling_session_pop(tm_signaling_session *s)
{
    unsigned char *buf = g_queue_pop_head(&s->outq);
    if (!buf)
        return NULL;
    size_t len = GPOINTER_TO_SIZE(g_queue_pop_head(&s->outlen));
    s->outq_bytes -= len;
    char *text = g_strndup((const char *)buf + LWS_PRE, len);
    free(buf);
    return text;
}

int tm_signaling_session_close_code(const tm_signaling_session *s)
{
    return s->closing ? s->close_code : 0;
}

void tm_signaling_session_closed(tm_signaling_session *s)
{
    session_closed(s->sig, s);
}

/*
 * signaling.c - telemed.v1 over WebSocket: sessions, waiting room, pairing
 * and the visit state machine at run time.
 *
 * Owns, on the control loop:
 *   - sessions: one per WebSocket, with its outgoing queue and rate limit;
 *   - users: one per identity (role + sub); a user outlives its session for
 *     the grace period so that a dropped participant can resume;
 *   - live visits (not yet ended): their offer timers, watchers and the
 *     waiting-room queue (tm_queue).
 * The store is the record; memory is rebuilt from it at start. Every visit
 * step goes to the store first (with its regulator event in the same
 * transaction) and is pushed to the participants only once it is durable.
 */
#include "telemed/signaling.h"
#include "telemed/common.h"
#include "telemed/log.h"
#include "telemed/media.h"
#include "telemed/pairing.h"
#include "telemed/queue.h"
#include "telemed/visit_fsm.h"
#include "telemed/fanout.h"
#include "telemed/feed.h"
#include "telemed/recorder.h"
#include "telemed/store.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum doctor_status { DOC_OFF_DUTY, DOC_AVAILABLE, DOC_AWAY };
static const char *const doctor_status_names[] = {"off_duty", "available", "away"};

/* Longest chat message and note, in bytes. */
#define MAX_CHAT_BYTES 4000
#define MAX_NOTE_BYTES 32000
/* A session whose unsent pushes exceed this is too slow to keep. */
#define MAX_OUTQ_BYTES (1 << 20)
/* Patients considered per department and dispatch round. */
#define DISPATCH_SCAN 256

typedef struct user user;
typedef struct session session;

struct session {
    tm_signaling *sig;
    struct lws *wsi;
    user *u;               /* NULL until hello succeeds */
    char ua[160];
    char peer_ip[64];
    GQueue outq;           /* of unsigned char * (LWS_PRE + len + NUL), length in outlen */
    GQueue outlen;
    size_t outq_bytes;
    GByteArray *rx;        /* fragments of the frame being received */
    bool rx_too_big;
    double tokens;         /* rate limit bucket */
    int64_t tokens_ms;
    int strikes;           /* rate-limited messages in a row */
    bool closing;
};

struct user {
    char key[200];          /* "role:sub" */
    tm_role role;
    char sub[128];
    char name[128];         /* shown to the doctor; never logged */
    char dept[64];
    session *sess;
    guint grace_timer;
    bool grace_pending;     /* restored at start: grace begins when the server listens */
    int64_t disconnected_ms;
    /* patient */
    char visit_id[64];      /* live visit, "" if none */
    char last_visit_id[64]; /* the visit to rate */
    /* doctor */
    enum doctor_status status;
    GPtrArray *visits;      /* active visit ids (char *) */
    char offer_visit[64];   /* the one outstanding offer, "" if none */
    int64_t idle_since_ms;
    /* supervisor */
    bool overview;
    char watching[64];
};

typedef struct live_visit {
    char id[64];
    char dept[64];
    char patient_sub[128];
    char doctor_id[64];
    char kind[16];
    tm_visit_state state;
    bool urgent;
    bool has_appt;
    int64_t checkin_ms, slot_ms, offered_ms, accepted_ms;
    guint offer_timer;
    GHashTable *declined;    /* doctor id -> (gint64 *) when */
    GPtrArray *watchers;     /* supervisor user keys (char *) */
    int last_position;       /* last pushed, to push only changes */
    int64_t last_estimate_s;
    json_t *quality;         /* latest per-peer stats from media, for the overview */
    json_t *summary;         /* per stream: running figures for the visit record */
} live_visit;

struct tm_signaling {
    const tm_config *cfg;
    tm_store *store;
    tm_jwt_verifier *jwt;
    tm_media *media;
    tm_feed *feed;
    tm_signaling_auth_cb on_authenticated; /* optional: a session said who it is */
    void *on_authenticated_user;
    tm_queue *queue;
    GHashTable *users;       /* key -> user * */
    GHashTable *staff;       /* key -> user *, doctors and supervisors (borrowed from users) */
    GHashTable *visits;      /* id -> live_visit * */
    GHashTable *avg_ms;      /* dept -> (double *) moving average of visit length */
    GHashTable *dirty_depts; /* dept -> 1: positions to push */
    tm_fanout *fanout;
    tm_fanout_item *fan_items; /* the batch being built by flush_positions */
    size_t fan_n, fan_cap;
    int64_t frame_us;  /* monotonic: when the frame being handled arrived, or 0 */
    int64_t change_us; /* monotonic: when the queue change being pushed began, or 0 */
    json_t *recent_alerts;   /* alerts about past events (offer timeouts), newest last */
    GHashTable *recordings;  /* visit id -> recording id, until the recorder reports */
    uint8_t rec_key[32];     /* encryption at rest, when rec_key_set */
    bool rec_key_set;
    guint tick;
    guint overview_timer;
    bool overview_dirty;
    /* metrics */
    uint64_t connections, connections_total, msgs_in, msgs_out, errors_total, rate_limited;
    uint64_t resp_buckets[10], resp_count;
    double resp_sum_s;
    uint64_t push_buckets[15], push_count;
    double push_sum_s;
};

static const double resp_bounds_s[] = {5, 10, 30, 60, 120, 300, 600, 1200, 1800};
static const double push_bounds_s[] = {0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05,
                                       0.075, 0.1,    0.15,  0.2,  0.3,  0.5,  1};

/* ---- small helpers ------------------------------------------------- */

static const char *jstr(json_t *msg, const char *key)
{
    json_t *v = json_object_get(msg, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static json_t *time_json(int64_t ms)
{
    char ts[40];
    return ms ? json_string(tm_rfc3339(ms, ts, sizeof(ts))) : json_null();
}

/* "role:sub", cut to outlen as snprintf would. Joined by hand: a fan-out
 * looks up every waiting patient, and snprintf was a fifth of that. */
static void user_key(tm_role role, const char *sub, char *out, size_t outlen)
{
    size_t o = g_strlcpy(out, tm_role_name(role), outlen);
    if (o + 1 >= outlen)
        return;
    out[o++] = ':';
    g_strlcpy(out + o, sub, outlen - o);
}

static user *find_user(tm_signaling *sig, tm_role role, const char *sub)
{
    char key[200];
    user_key(role, sub, key, sizeof(key));
    return g_hash_table_lookup(sig->users, key);
}

static bool doc_has_visit(const user *d, const char *visit_id)
{
    for (guint i = 0; i < d->visits->len; i++)
        if (strcmp(g_ptr_array_index(d->visits, i), visit_id) == 0)
            return true;
    return false;
}

static void doc_remove_visit(user *d, const char *visit_id)
{
    for (guint i = 0; i < d->visits->len; i++) {
        if (strcmp(g_ptr_array_index(d->visits, i), visit_id) == 0) {
            g_ptr_array_remove_index(d->visits, i);
            return;
        }
    }
}

/* ---- sending ------------------------------------------------------- */

/* Queues a copy of text (one JSON message) and asks lws for a write slot. */
static void send_text(session *s, const char *text, size_t len)
{
    if (!s || s->closing)
        return;
    if (s->outq_bytes + len > MAX_OUTQ_BYTES) {
        tm_warn("ws.slow_consumer", "user=%s queued=%zu", s->u ? s->u->key : "-", s->outq_bytes);
        s->closing = true;
        lws_callback_on_writable(s->wsi);
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
    lws_callback_on_writable(s->wsi);
}

/* Queues msg (stolen) for the session. */
static void send_msg(session *s, json_t *msg)
{
    if (!s || s->closing) {
        json_decref(msg);
        return;
    }
    char *text = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (text)
        send_text(s, text, strlen(text));
    free(text);
}

static void send_to_user(user *u, json_t *msg)
{
    if (u && u->sess)
        send_msg(u->sess, msg);
    else
        json_decref(msg);
}

static void reply_ok(session *s, const char *re, json_t *data)
{
    json_t *m = json_pack("{s:s, s:s, s:o}", "type", "result", "re", re ? re : "",
                          "data", data ? data : json_object());
    send_msg(s, m);
}

static void reply_err(session *s, const char *re, int err, const char *message)
{
    s->sig->errors_total++;
    json_t *m = json_pack("{s:s, s:s, s:s}", "type", "error", "code", tm_error_code(err),
                          "message", message ? message : tm_strerror(err));
    if (re)
        json_object_set_new(m, "re", json_string(re));
    else
        json_object_set_new(m, "re", json_null());
    send_msg(s, m);
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

/* ---- visits in memory ---------------------------------------------- */

static void live_visit_free(gpointer p)
{
    live_visit *v = p;
    if (v->offer_timer)
        g_source_remove(v->offer_timer);
    g_hash_table_destroy(v->declined);
    g_ptr_array_free(v->watchers, TRUE);
    json_decref(v->quality);
    json_decref(v->summary);
    g_free(v);
}

static live_visit *live_visit_add(tm_signaling *sig, const tm_visit *rec)
{
    live_visit *v = g_new0(live_visit, 1);
    g_strlcpy(v->id, rec->id, sizeof(v->id));
    g_strlcpy(v->dept, rec->dept_id, sizeof(v->dept));
    g_strlcpy(v->patient_sub, rec->patient_id, sizeof(v->patient_sub));
    g_strlcpy(v->doctor_id, rec->doctor_id, sizeof(v->doctor_id));
    g_strlcpy(v->kind, rec->kind, sizeof(v->kind));
    tm_visit_state_parse(rec->state, &v->state);
    v->urgent = rec->urgent;
    v->has_appt = rec->appointment_id[0] != 0;
    v->checkin_ms = rec->checkin_ms;
    v->slot_ms = rec->slot_ms;
    v->offered_ms = rec->offered_ms;
    v->accepted_ms = rec->accepted_ms;
    v->declined = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    v->watchers = g_ptr_array_new_with_free_func(g_free);
    v->last_position = -1;
    v->last_estimate_s = -2;
    g_hash_table_insert(sig->visits, v->id, v);
    return v;
}

/* The visit state machine decides which steps a live visit may take; the
 * store enforces the same rule on the row. */
static bool advance(live_visit *v, tm_visit_event ev, bool apply)
{
    tm_visit_state next;
    if (tm_visit_transition(v->state, ev, &next) < 0)
        return false;
    if (apply)
        v->state = next;
    return true;
}

static int queue_add(tm_signaling *sig, live_visit *v)
{
    tm_queue_entry e = {
        .visit_id = v->id,
        .dept_id = v->dept,
        .urgent = v->urgent,
        .has_appointment = v->has_appt,
        .slot_ms = v->slot_ms,
        .checkin_ms = v->checkin_ms,
    };
    return tm_queue_add(sig->queue, &e);
}

static user *visit_patient(tm_signaling *sig, live_visit *v)
{
    return find_user(sig, TM_ROLE_PATIENT, v->patient_sub);
}

static user *visit_doctor(tm_signaling *sig, live_visit *v)
{
    return v->doctor_id[0] ? find_user(sig, TM_ROLE_DOCTOR, v->doctor_id) : NULL;
}

static json_t *visit_state_msg(tm_signaling *sig, const char *visit_id)
{
    tm_visit rec;
    if (tm_store_visit_get(sig->store, visit_id, &rec) < 0)
        return NULL;
    json_t *m = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b}", "type", "visit.state", "visit_id",
                          rec.id, "state", rec.state, "patient_id", rec.patient_id, "dept",
                          rec.dept_id, "kind", rec.kind, "urgent", rec.urgent);
    json_object_set_new(m, "doctor_id", rec.doctor_id[0] ? json_string(rec.doctor_id) : json_null());
    json_object_set_new(m, "checkin_at", time_json(rec.checkin_ms));
    json_object_set_new(m, "offered_at", time_json(rec.offered_ms));
    json_object_set_new(m, "accepted_at", time_json(rec.accepted_ms));
    json_object_set_new(m, "ended_at", time_json(rec.ended_ms));
    json_object_set_new(m, "end_reason", rec.end_reason[0] ? json_string(rec.end_reason) : json_null());
    return m;
}

static void push_visit_state(tm_signaling *sig, live_visit *v, const char *visit_id,
                             user *patient, user *doctor)
{
    json_t *m = visit_state_msg(sig, visit_id);
    if (!m)
        return;
    if (patient)
        send_to_user(patient, json_incref(m));
    if (doctor)
        send_to_user(doctor, json_incref(m));
    if (v) {
        for (guint i = 0; i < v->watchers->len; i++)
            send_to_user(g_hash_table_lookup(sig->users, g_ptr_array_index(v->watchers, i)),
                         json_incref(m));
    }
    json_decref(m);
}

static void mark_overview_dirty(tm_signaling *sig);
/* The position pushes that follow are timed from here: from the arrival of
 * the frame that changed the queue, or from now for a timer. */
static void note_queue_change(tm_signaling *sig)
{
    if (!sig->change_us)
        sig->change_us = sig->frame_us ? sig->frame_us : g_get_monotonic_time();
}

static void mark_dept_dirty(tm_signaling *sig, const char *dept)
{
    note_queue_change(sig);
    g_hash_table_add(sig->dirty_depts, g_strdup(dept));
    mark_overview_dirty(sig);
}

/* ---- doctors: shifts and eligibility ------------------------------- */

/* Whether the doctor is inside a shift of dept now, and its capacity. */
static bool doctor_in_shift(tm_signaling *sig, const user *d, const char *dept, int *capacity)
{
    int cap = 1;
    if (tm_store_shift_current(sig->store, d->sub, dept, tm_now_ms(), NULL, &cap, NULL) < 0)
        return false;
    if (capacity)
        *capacity = cap;
    return true;
}

static int doctors_on_duty(tm_signaling *sig, const char *dept)
{
    int n = 0;
    GHashTableIter it;
    gpointer key, val;
    g_hash_table_iter_init(&it, sig->staff);
    while (g_hash_table_iter_next(&it, &key, &val)) {
        user *u = val;
        if (u->role == TM_ROLE_DOCTOR && u->sess && u->status == DOC_AVAILABLE &&
            doctor_in_shift(sig, u, dept, NULL))
            n++;
    }
    return n;
}

int64_t tm_signaling_avg_visit_ms(tm_signaling *sig, const char *dept_id)
{
    double *avg = g_hash_table_lookup(sig->avg_ms, dept_id);
    return avg ? (int64_t)*avg : (int64_t)sig->cfg->avg_visit_s * 1000;
}

static void learn_visit_length(tm_signaling *sig, const char *dept, int64_t duration_ms)
{
    if (duration_ms <= 0)
        return;
    double *avg = g_hash_table_lookup(sig->avg_ms, dept);
    if (!avg) {
        avg = g_new(double, 1);
        *avg = (double)sig->cfg->avg_visit_s * 1000;
        g_hash_table_insert(sig->avg_ms, g_strdup(dept), avg);
    }
    /* An exponential moving average: recent visits say most about today's pace. */
    *avg = 0.8 * *avg + 0.2 * (double)duration_ms;
}

/* ---- waiting room positions ---------------------------------------- */

/* Whether a new wait estimate is worth telling the patient: a place in the
 * queue always is, but every finished visit nudges the average visit
 * length and so every estimate; a patient gains nothing from a push that
 * moves "about 20 minutes" by seconds, and 5,000 of them cost the server. */
static bool estimate_moved(int64_t old_s, int64_t new_s)
{
    if ((old_s < 0) != (new_s < 0))
        return true; /* known <-> unknown */
    int64_t diff = old_s > new_s ? old_s - new_s : new_s - old_s;
    return diff >= 60 || diff * 5 >= (old_s > 0 ? old_s : 1);
}

/* buckets has n_bounds + 1 counts, the last for values above every bound. */
static void histogram_observe(const double *bounds, size_t n_bounds, uint64_t *buckets,
                              double *sum, uint64_t *count, double value)
{
    size_t b = 0;
    while (b < n_bounds && value > bounds[b])
        b++;
    buckets[b]++;
    (*count)++;
    *sum += value;
}

/* By default one writer per core, up to four: the fan-out is bound by kernel
 * time per write, and more threads than cores only adds switching. */
static unsigned fanout_threads(const tm_config *cfg)
{
    if (cfg->fanout_threads > 0)
        return (unsigned)cfg->fanout_threads;
    unsigned n = g_get_num_processors();
    return n < 1 ? 1 : n > 4 ? 4 : n;
}

/* Adds a frame for s to the batch that write_fanout() sends in parallel.
 * A session with frames already queued gets this one queued behind them. */
static void add_to_fanout(tm_signaling *sig, session *s, const char *text, size_t len)
{
    if (!s || s->closing)
        return;
    if (!g_queue_is_empty(&s->outq) || len > TM_FANOUT_MAX_TEXT) {
        send_text(s, text, len);
        return;
    }
    if (sig->fan_n == sig->fan_cap) {
        size_t cap = sig->fan_cap ? sig->fan_cap * 2 : 256;
        tm_fanout_item *items = realloc(sig->fan_items, cap * sizeof(*items));
        if (!items) {
            send_text(s, text, len);
            return;
        }
        sig->fan_items = items;
        sig->fan_cap = cap;
    }
    tm_fanout_item_set(&sig->fan_items[sig->fan_n++], s->wsi, s, text, len);
}

static void count_push_latency(tm_signaling *sig, int64_t done_us)
{
    double s = sig->change_us && done_us > sig->change_us ? (done_us - sig->change_us) / 1e6 : 0;
    histogram_observe(push_bounds_s, TM_ARRAY_LEN(push_bounds_s), sig->push_buckets,
                      &sig->push_sum_s, &sig->push_count, s);
}

/* Writes the batch straight to the sockets (no queue, no writable event and
 * so no trip through the event loop per socket, which for 5,000 patients is
 * 5,000 epoll events and callbacks), then queues what a socket refused and
 * closes what failed. */
static void write_fanout(tm_signaling *sig)
{
    tm_fanout_write(sig->fanout, sig->fan_items, sig->fan_n);
    for (size_t i = 0; i < sig->fan_n; i++) {
        tm_fanout_item *it = &sig->fan_items[i];
        session *s = it->user;
        switch (it->result) {
        case TM_FANOUT_SENT:
            sig->msgs_out++;
            count_push_latency(sig, it->done_us);
            break;
        case TM_FANOUT_CHOKED:
            send_text(s, (const char *)it->buf + LWS_PRE, it->len);
            break;
        default:
            sig->msgs_out++;
            s->closing = true;
            lws_callback_on_writable(s->wsi);
            break;
        }
    }
    sig->fan_n = 0;
}

/* Appends v in decimal at p; returns the end. */
static char *put_int(char *p, int64_t v)
{
    char tmp[24];
    size_t n = 0;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *p++ = '-';
    while (n)
        *p++ = tmp[--n];
    return p;
}

static char *put_str(char *p, const char *s, size_t len)
{
    memcpy(p, s, len);
    return p + len;
}

/* One queue.position push per waiting patient whose position or estimate
 * moved. Formatted by hand, and this is the fan-out's serial part: the
 * writers wait for it, so it costs every push its time. Only visit id,
 * position and estimate differ between patients; "waiting" and
 * "doctors_on_duty" are formatted once per department. Visit ids are
 * server-made ([a-z0-9-]), so no escaping. The bytes are those of
 * {"type":"queue.position","visit_id":..,"position":..,"waiting":..,
 * "estimated_wait_s":..,"doctors_on_duty":..}, as documented. */
static void push_positions(tm_signaling *sig, const char *dept)
{
    int64_t now = tm_now_ms();
    size_t len = tm_queue_length(sig->queue, dept);
    if (len == 0)
        return;
    const char **ids = g_new(const char *, len);
    size_t n = tm_queue_ordered(sig->queue, dept, now, ids, len);
    int doctors = doctors_on_duty(sig, dept);
    int64_t avg = tm_signaling_avg_visit_ms(sig, dept);
    static const char head[] = "{\"type\":\"queue.position\",\"visit_id\":\"";
    static const char at[] = "\",\"position\":";
    char mid[64], tail[48];
    int mid_len = snprintf(mid, sizeof(mid), ",\"waiting\":%d,\"estimated_wait_s\":", (int)n);
    int tail_len = snprintf(tail, sizeof(tail), ",\"doctors_on_duty\":%d}", doctors);
    for (size_t i = 0; i < n; i++) {
        live_visit *v = g_hash_table_lookup(sig->visits, ids[i]);
        if (!v || v->state != TM_VS_WAITING)
            continue;
        int position = (int)i + 1;
        int64_t est = tm_queue_estimate_wait_ms(position, doctors, avg);
        int64_t est_s = est < 0 ? -1 : (est + 999) / 1000;
        if (position == v->last_position && !estimate_moved(v->last_estimate_s, est_s))
            continue;
        user *p = visit_patient(sig, v);
        if (!p || !p->sess)
            continue;
        v->last_position = position;
        v->last_estimate_s = est_s;
        char text[256];
        size_t id_len = strnlen(v->id, sizeof(v->id));
        if (sizeof(head) + id_len + sizeof(at) + (size_t)mid_len + (size_t)tail_len + 48 >
            sizeof(text))
            continue; /* cannot happen: ids are < 64 bytes */
        char *o = put_str(text, head, sizeof(head) - 1);
        o = put_str(o, v->id, id_len);
        o = put_str(o, at, sizeof(at) - 1);
        o = put_int(o, position);
        o = put_str(o, mid, (size_t)mid_len);
        o = est_s < 0 ? put_str(o, "null", 4) : put_int(o, est_s);
        o = put_str(o, tail, (size_t)tail_len);
        add_to_fanout(sig, p->sess, text, (size_t)(o - text));
    }
    g_free(ids);
}

static void flush_positions(tm_signaling *sig)
{
    GHashTableIter it;
    gpointer key;
    g_hash_table_iter_init(&it, sig->dirty_depts);
    while (g_hash_table_iter_next(&it, &key, NULL))
        push_positions(sig, key);
    g_hash_table_remove_all(sig->dirty_depts);
    write_fanout(sig);
    sig->change_us = 0;
}

/* ---- pairing ------------------------------------------------------- */

static gboolean offer_timed_out(gpointer data);

typedef struct candidate_doc {
    user *u;
    tm_doctor_slot slot;
} candidate_doc;

static void offer_visit(tm_signaling *sig, live_visit *v, user *d)
{
    int64_t now = tm_now_ms();
    if (!advance(v, TM_VEV_OFFER, false))
        return;
    int rc = tm_store_visit_offer(sig->store, v->id, d->sub, now);
    if (rc < 0) {
        tm_error("visit.offer_failed", "visit=%s doctor=%s err=%s", v->id, d->sub, tm_strerror(rc));
        return;
    }
    advance(v, TM_VEV_OFFER, true);
    g_strlcpy(v->doctor_id, d->sub, sizeof(v->doctor_id));
    v->offered_ms = now;
    g_strlcpy(d->offer_visit, v->id, sizeof(d->offer_visit));
    guint secs = (guint)sig->cfg->offer_timeout_s;
    v->offer_timer = g_timeout_add_seconds_full(G_PRIORITY_DEFAULT, secs, offer_timed_out,
                                                g_strdup(v->id), g_free);
    user *p = visit_patient(sig, v);
    json_t *m = json_pack("{s:s, s:s, s:s, s:s, s:b, s:I, s:i}", "type", "visit.offer", "visit_id",
                          v->id, "dept", v->dept, "kind", v->kind, "urgent", v->urgent, "waited_s",
                          (json_int_t)((now - v->checkin_ms) / 1000), "expires_in_s", (int)secs);
    json_object_set_new(m, "patient", json_pack("{s:s, s:s}", "id", v->patient_sub, "name",
                                                p && p->name[0] ? p->name : ""));
    json_object_set_new(m, "appointment", json_boolean(v->has_appt));
    send_to_user(d, m);
    push_visit_state(sig, v, v->id, p, NULL);
    tm_info("visit.offered", "visit=%s doctor=%s dept=%s", v->id, d->sub, v->dept);
    mark_dept_dirty(sig, v->dept);
}

static bool declined_recently(tm_signaling *sig, live_visit *v, const char *doctor_id)
{
    gint64 *when = g_hash_table_lookup(v->declined, doctor_id);
    /* A doctor who declined is not asked about the same patient again for a
     * while, or a lone doctor's decline would bounce straight back. */
    return when && tm_now_ms() - *when < (int64_t)sig->cfg->offer_timeout_s * 2000;
}

/* Offers waiting patients of dept to free doctors, in queue order. */
static void dispatch_dept(tm_signaling *sig, const char *dept)
{
    GArray *docs = g_array_new(FALSE, FALSE, sizeof(candidate_doc));
    GHashTableIter it;
    gpointer key, val;
    g_hash_table_iter_init(&it, sig->staff);
    while (g_hash_table_iter_next(&it, &key, &val)) {
        user *u = val;
        if (u->role != TM_ROLE_DOCTOR || !u->sess || u->status != DOC_AVAILABLE || u->offer_visit[0])
            continue;
        int capacity = 1;
        if (!doctor_in_shift(sig, u, dept, &capacity))
            continue;
        candidate_doc c = {.u = u};
        c.slot.doctor_id = u->sub;
        c.slot.connected = true;
        c.slot.available = true;
        c.slot.in_shift = true;
        c.slot.capacity = capacity;
        c.slot.load = (int)u->visits->len;
        c.slot.idle_since_ms = u->idle_since_ms;
        if (c.slot.load < capacity)
            g_array_append_val(docs, c);
    }
    if (docs->len == 0) {
        g_array_free(docs, TRUE);
        return;
    }
    const char *ids[DISPATCH_SCAN];
    size_t n = tm_queue_ordered(sig->queue, dept, tm_now_ms(), ids, DISPATCH_SCAN);
    /* Copy the ids: offering changes nothing in the queue, but be safe. */
    char(*order)[64] = g_malloc(64 * (n ? n : 1));
    for (size_t i = 0; i < n; i++)
        g_strlcpy(order[i], ids[i], 64);
    tm_doctor_slot *slots = g_new(tm_doctor_slot, docs->len);
    for (size_t i = 0; i < n && docs->len > 0; i++) {
        live_visit *v = g_hash_table_lookup(sig->visits, order[i]);
        if (!v || v->state != TM_VS_WAITING)
            continue;
        user *p = visit_patient(sig, v);
        if (!p || !p->sess)
            continue; /* keeps the place, but no doctor waits for someone not there */
        for (guint k = 0; k < docs->len; k++) {
            slots[k] = g_array_index(docs, candidate_doc, k).slot;
            if (declined_recently(sig, v, slots[k].doctor_id))
                slots[k].available = false;
        }
        int pick = tm_pairing_pick(slots, docs->len);
        if (pick < 0)
            continue;
        user *d = g_array_index(docs, candidate_doc, pick).u;
        g_array_remove_index(docs, (guint)pick);
        offer_visit(sig, v, d);
    }
    g_free(slots);
    g_free(order);
    g_array_free(docs, TRUE);
}

static void collect_dept(const char *dept, void *array)
{
    g_ptr_array_add(array, g_strdup(dept));
}

static void dispatch_all(tm_signaling *sig)
{
    /* Collect first: dispatching does not mutate departments, but a copy
     * keeps the iteration independent of the queue's internals. */
    GPtrArray *depts = g_ptr_array_new_with_free_func(g_free);
    tm_queue_foreach_dept(sig->queue, collect_dept, depts);
    for (guint i = 0; i < depts->len; i++)
        dispatch_dept(sig, g_ptr_array_index(depts, i));
    g_ptr_array_free(depts, TRUE);
}

/* ---- visit transitions --------------------------------------------- */

/* The offer of v is over (declined, timed out or withdrawn): back to the
 * head of the queue. */
static void unoffer(tm_signaling *sig, live_visit *v, const char *outcome)
{
    tm_visit_event ev = strcmp(outcome, "timeout") == 0 ? TM_VEV_OFFER_TIMEOUT : TM_VEV_DECLINE;
    if (!advance(v, ev, false))
        return;
    int rc = tm_store_visit_unoffer(sig->store, v->id, outcome, tm_now_ms());
    if (rc < 0) {
        tm_error("visit.unoffer_failed", "visit=%s err=%s", v->id, tm_strerror(rc));
        return;
    }
    if (v->offer_timer) {
        g_source_remove(v->offer_timer);
        v->offer_timer = 0;
    }
    user *d = visit_doctor(sig, v);
    if (d && strcmp(d->offer_visit, v->id) == 0)
        d->offer_visit[0] = 0;
    gint64 *when = g_new(gint64, 1);
    *when = tm_now_ms();
    g_hash_table_replace(v->declined, g_strdup(v->doctor_id), when);
    if (d)
        send_to_user(d, json_pack("{s:s, s:s, s:s}", "type", "visit.offer_cancelled", "visit_id",
                                  v->id, "reason", outcome));
    tm_info("visit.unoffered", "visit=%s doctor=%s outcome=%s", v->id, v->doctor_id, outcome);
    advance(v, ev, true);
    v->doctor_id[0] = 0;
    v->last_position = -1;
    tm_queue_return_to_head(sig->queue, v->id);
    user *p = visit_patient(sig, v);
    push_visit_state(sig, v, v->id, p, NULL);
    mark_dept_dirty(sig, v->dept);
}

/* How long an alert about a past event stays on the supervisors' screen. */
#define RECENT_ALERT_MS (10 * 60 * 1000)

/* Keeps an alert about something that happened (steals it). */
static void remember_alert(tm_signaling *sig, json_t *alert)
{
    int64_t now = tm_now_ms();
    json_object_set_new(alert, "at", time_json(now));
    json_object_set_new(alert, "at_ms", json_integer(now));
    json_array_append_new(sig->recent_alerts, alert);
    while (json_array_size(sig->recent_alerts) > 100)
        json_array_remove(sig->recent_alerts, 0);
    mark_overview_dirty(sig);
}

static gboolean offer_timed_out(gpointer data)
{
    /* The timer's data is the visit id; the visit may be gone. */
    extern tm_signaling *tm__signaling_instance;
    tm_signaling *sig = tm__signaling_instance;
    live_visit *v = sig ? g_hash_table_lookup(sig->visits, (const char *)data) : NULL;
    if (!v)
        return G_SOURCE_REMOVE;
    v->offer_timer = 0;
    user *d = visit_doctor(sig, v);
    remember_alert(sig, json_pack("{s:s, s:s, s:s}", "kind", "offer_timeout", "visit_id", v->id,
                                  "doctor_id", v->doctor_id));
    unoffer(sig, v, "timeout");
    /* A doctor who lets an offer lapse is probably not at the desk: set
     * them away so the next patient is not offered to an empty chair. */
    if (d && d->status == DOC_AVAILABLE) {
        d->status = DOC_AWAY;
        send_to_user(d, json_pack("{s:s, s:s, s:s}", "type", "doctor.status", "status", "away",
                                  "reason", "offer_timeout"));
    }
    dispatch_dept(sig, v->dept);
    flush_positions(sig);
    return G_SOURCE_REMOVE;
}

tm_signaling *tm__signaling_instance;

static void watchers_notify_end(tm_signaling *sig, live_visit *v)
{
    for (guint i = 0; i < v->watchers->len; i++) {
        user *w = g_hash_table_lookup(sig->users, g_ptr_array_index(v->watchers, i));
        if (w && strcmp(w->watching, v->id) == 0) {
            w->watching[0] = 0;
            tm_store_audit(sig->store, w->sub, tm_role_name(w->role), "visit.unwatch", v->id, "ok",
                           "visit ended");
        }
    }
}

static void maybe_forget_user(tm_signaling *sig, user *u);
static void store_stats_summary(tm_signaling *sig, live_visit *v, int64_t now);

/* Ends (active) or cancels (waiting/offered) a live visit. */
static int finish_visit(tm_signaling *sig, live_visit *v, const char *reason, const char *by)
{
    int64_t now = tm_now_ms();
    if (!advance(v, v->state == TM_VS_ACTIVE ? TM_VEV_END : TM_VEV_CANCEL, false))
        return TM_ECONFLICT;
    int rc = tm_store_visit_end(sig->store, v->id, reason, by, now);
    if (rc < 0)
        return rc;
    char id[64], dept[64];
    g_strlcpy(id, v->id, sizeof(id));
    g_strlcpy(dept, v->dept, sizeof(dept));
    if (v->offer_timer) {
        g_source_remove(v->offer_timer);
        v->offer_timer = 0;
    }
    user *p = visit_patient(sig, v);
    user *d = visit_doctor(sig, v);
    if (d) {
        if (strcmp(d->offer_visit, id) == 0) {
            d->offer_visit[0] = 0;
            send_to_user(d, json_pack("{s:s, s:s, s:s}", "type", "visit.offer_cancelled",
                                      "visit_id", id, "reason", reason));
        }
        if (doc_has_visit(d, id)) {
            doc_remove_visit(d, id);
            d->idle_since_ms = now;
        }
    }
    if (v->state == TM_VS_ACTIVE)
        learn_visit_length(sig, dept, now - v->accepted_ms);
    store_stats_summary(sig, v, now);
    if (p && strcmp(p->visit_id, id) == 0) {
        p->visit_id[0] = 0;
        g_strlcpy(p->last_visit_id, id, sizeof(p->last_visit_id));
    }
    tm_queue_remove(sig->queue, id);
    push_visit_state(sig, v, id, p, v->state == TM_VS_ACTIVE ? d : NULL);
    watchers_notify_end(sig, v);
    if (sig->media)
        tm_media_visit_close(sig->media, id);
    tm_info("visit.finished", "visit=%s reason=%s by=%s", id, reason, by);
    g_hash_table_remove(sig->visits, id);
    if (sig->feed)
        tm_feed_kick(sig->feed);
    if (p)
        maybe_forget_user(sig, p);
    if (d)
        maybe_forget_user(sig, d);
    mark_dept_dirty(sig, dept);
    dispatch_dept(sig, dept);
    return 0;
}

/* ---- users and grace ----------------------------------------------- */

static void user_free(gpointer p)
{
    user *u = p;
    if (u->grace_timer)
        g_source_remove(u->grace_timer);
    if (u->visits)
        g_ptr_array_free(u->visits, TRUE);
    g_free(u);
}

static user *user_new(tm_signaling *sig, tm_role role, const char *sub)
{
    user *u = g_new0(user, 1);
    user_key(role, sub, u->key, sizeof(u->key));
    u->role = role;
    g_strlcpy(u->sub, sub, sizeof(u->sub));
    u->visits = g_ptr_array_new_with_free_func(g_free);
    g_hash_table_insert(sig->users, u->key, u);
    if (role != TM_ROLE_PATIENT)
        g_hash_table_insert(sig->staff, u->key, u);
    return u;
}

/* A user who dropped: they have the grace period to come back. */
static void user_start_grace(tm_signaling *sig, user *u);

/* Drops a user who has nothing left to come back to. */
static void maybe_forget_user(tm_signaling *sig, user *u)
{
    if (u->sess || u->grace_timer || u->visit_id[0] || u->offer_visit[0] ||
        (u->visits && u->visits->len) || u->last_visit_id[0])
        return;
    g_hash_table_remove(sig->staff, u->key);
    g_hash_table_remove(sig->users, u->key);
}

static gboolean grace_expired(gpointer data)
{
    tm_signaling *sig = tm__signaling_instance;
    user *u = sig ? g_hash_table_lookup(sig->users, (const char *)data) : NULL;
    if (!u)
        return G_SOURCE_REMOVE;
    u->grace_timer = 0;
    if (u->sess)
        return G_SOURCE_REMOVE;
    tm_info("user.grace_expired", "user=%s", u->key);
    if (u->role == TM_ROLE_PATIENT && u->visit_id[0]) {
        live_visit *v = g_hash_table_lookup(sig->visits, u->visit_id);
        if (v)
            finish_visit(sig, v, "grace_expired", "system");
    } else if (u->role == TM_ROLE_DOCTOR) {
        while (u->visits->len) {
            live_visit *v = g_hash_table_lookup(sig->visits, g_ptr_array_index(u->visits, 0));
            if (!v) {
                g_ptr_array_remove_index(u->visits, 0);
                continue;
            }
            finish_visit(sig, v, "grace_expired", "system");
        }
        u->status = DOC_OFF_DUTY;
    }
    u->last_visit_id[0] = 0;
    flush_positions(sig);
    maybe_forget_user(sig, u);
    return G_SOURCE_REMOVE;
}

static void user_start_grace(tm_signaling *sig, user *u)
{
    u->disconnected_ms = tm_now_ms();
    u->grace_timer = g_timeout_add_seconds_full(G_PRIORITY_DEFAULT, (guint)sig->cfg->grace_s,
                                                grace_expired, g_strdup(u->key), g_free);
}

static void notify_peer_presence(tm_signaling *sig, live_visit *v, user *who, bool connected)
{
    json_t *m = json_pack("{s:s, s:s, s:s, s:s, s:b}", "type", "visit.participant", "visit_id",
                          v->id, "role", tm_role_name(who->role), "id", who->sub, "connected",
                          connected);
    if (!connected)
        json_object_set_new(m, "grace_s", json_integer(sig->cfg->grace_s));
    user *other = who->role == TM_ROLE_PATIENT ? visit_doctor(sig, v) : visit_patient(sig, v);
    send_to_user(other, m);
}

static void stop_watching(tm_signaling *sig, user *u, const char *why);

/* The user's socket went away: hold their place for the grace period. */
static void user_detach(tm_signaling *sig, user *u)
{
    int64_t now = tm_now_ms();
    u->sess = NULL;
    u->disconnected_ms = now;
    if (u->overview)
        u->overview = false;
    if (u->watching[0])
        stop_watching(sig, u, "disconnected");
    if (u->role == TM_ROLE_DOCTOR && u->offer_visit[0]) {
        /* Nobody answers an offer to a dropped doctor; give the patient back. */
        live_visit *v = g_hash_table_lookup(sig->visits, u->offer_visit);
        if (v)
            unoffer(sig, v, "withdrawn");
        u->offer_visit[0] = 0;
    }
    bool holds = (u->role == TM_ROLE_PATIENT && u->visit_id[0]) ||
                 (u->role == TM_ROLE_DOCTOR && u->visits->len);
    if (holds) {
        if (u->role == TM_ROLE_PATIENT) {
            live_visit *v = g_hash_table_lookup(sig->visits, u->visit_id);
            if (v && v->state == TM_VS_ACTIVE) {
                tm_store_participant_leave(sig->store, v->id, u->sub, "disconnected", now);
                notify_peer_presence(sig, v, u, false);
            }
        } else {
            for (guint i = 0; i < u->visits->len; i++) {
                live_visit *v = g_hash_table_lookup(sig->visits, g_ptr_array_index(u->visits, i));
                if (v) {
                    tm_store_participant_leave(sig->store, v->id, u->sub, "disconnected", now);
                    notify_peer_presence(sig, v, u, false);
                }
            }
        }
        user_start_grace(sig, u);
        tm_info("user.disconnected", "user=%s grace_s=%d", u->key, sig->cfg->grace_s);
    } else {
        if (u->role == TM_ROLE_DOCTOR)
            u->status = DOC_OFF_DUTY;
        /* A patient whose visit just ended may come back to rate it. */
        if (u->last_visit_id[0])
            user_start_grace(sig, u);
    }
    mark_overview_dirty(sig);
    maybe_forget_user(sig, u);
}

/* ---- the overview -------------------------------------------------- */

/* Poor quality: a stream losing more than alert_loss_pct in the latest
 * second of figures, or video that froze in the last ten seconds. */
static void add_quality_alerts(tm_signaling *sig, live_visit *v, json_t *alerts, int64_t now)
{
    const char *key;
    json_t *acc;
    json_object_foreach(v->summary, key, acc) {
        json_t *last = json_object_get(acc, "last");
        double loss = json_number_value(json_object_get(last, "loss_pct"));
        int64_t froze_at = (int64_t)json_number_value(json_object_get(acc, "froze_at_ms"));
        bool froze = froze_at && now - froze_at < 10000;
        if (loss <= sig->cfg->alert_loss_pct && !froze)
            continue;
        const char *kind = json_string_value(json_object_get(last, "kind"));
        json_array_append_new(alerts, json_pack("{s:s, s:s, s:s, s:f, s:b}", "kind", "poor_quality",
                                                "visit_id", v->id, "stream_kind", kind ? kind : "?",
                                                "loss_pct", loss, "frozen", froze));
        return;
    }
}

json_t *tm_signaling_overview(tm_signaling *sig)
{
    int64_t now = tm_now_ms();
    json_t *depts = tm_store_dept_list(sig->store);
    size_t i;
    json_t *d;
    json_array_foreach(depts, i, d) {
        const char *id = json_string_value(json_object_get(d, "id"));
        int in_visit = 0;
        GHashTableIter it;
        gpointer k, val;
        g_hash_table_iter_init(&it, sig->visits);
        while (g_hash_table_iter_next(&it, &k, &val)) {
            live_visit *v = val;
            if (v->state == TM_VS_ACTIVE && strcmp(v->dept, id) == 0)
                in_visit++;
        }
        json_object_set_new(d, "waiting", json_integer((json_int_t)tm_queue_length(sig->queue, id)));
        json_object_set_new(d, "in_visit", json_integer(in_visit));
        json_object_set_new(d, "doctors_on_duty", json_integer(doctors_on_duty(sig, id)));
        json_object_set_new(d, "longest_wait_s",
                            json_integer(tm_queue_longest_wait_ms(sig->queue, id, now) / 1000));
        json_object_del(d, "created_at");
    }
    json_t *visits = json_array();
    json_t *alerts = json_array();
    GHashTableIter it;
    gpointer k, val;
    g_hash_table_iter_init(&it, sig->visits);
    while (g_hash_table_iter_next(&it, &k, &val)) {
        live_visit *v = val;
        user *p = visit_patient(sig, v);
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:b}", "id", v->id, "dept", v->dept,
                              "state", tm_visit_state_name(v->state), "patient_id", v->patient_sub,
                              "kind", v->kind, "urgent", v->urgent, "patient_connected",
                              p && p->sess);
        json_object_set_new(o, "doctor_id", v->doctor_id[0] ? json_string(v->doctor_id) : json_null());
        json_object_set_new(o, "checkin_at", time_json(v->checkin_ms));
        json_object_set_new(o, "accepted_at", time_json(v->accepted_ms));
        json_object_set_new(o, "waited_s", json_integer(((v->accepted_ms ? v->accepted_ms : now) -
                                                         v->checkin_ms) / 1000));
        if (v->accepted_ms)
            json_object_set_new(o, "duration_s", json_integer((now - v->accepted_ms) / 1000));
        json_object_set_new(o, "watchers", json_integer(v->watchers->len));
        if (v->quality) {
            json_object_set(o, "quality", v->quality);
            add_quality_alerts(sig, v, alerts, now);
        }
        if (v->state == TM_VS_WAITING || v->state == TM_VS_OFFERED) {
            if (now - v->checkin_ms > (int64_t)sig->cfg->wait_alert_s * 1000)
                json_array_append_new(alerts, json_pack("{s:s, s:s, s:I}", "kind", "long_wait",
                                                        "visit_id", v->id, "waited_s",
                                                        (json_int_t)((now - v->checkin_ms) / 1000)));
            if (v->urgent)
                json_array_append_new(alerts, json_pack("{s:s, s:s}", "kind", "urgent", "visit_id",
                                                        v->id));
        }
        json_array_append_new(visits, o);
    }
    json_t *doctors = json_array();
    g_hash_table_iter_init(&it, sig->staff);
    while (g_hash_table_iter_next(&it, &k, &val)) {
        user *u = val;
        if (u->role != TM_ROLE_DOCTOR)
            continue;
        json_t *o = json_pack("{s:s, s:s, s:b, s:i}", "id", u->sub, "status",
                              doctor_status_names[u->status], "connected", u->sess != NULL,
                              "visits", (int)u->visits->len);
        json_object_set_new(o, "offer", u->offer_visit[0] ? json_string(u->offer_visit) : json_null());
        json_array_append_new(doctors, o);
    }
    while (json_array_size(sig->recent_alerts) &&
           now - json_integer_value(json_object_get(json_array_get(sig->recent_alerts, 0), "at_ms")) >
               RECENT_ALERT_MS)
        json_array_remove(sig->recent_alerts, 0);
    json_array_extend(alerts, sig->recent_alerts);
    json_t *feed = sig->feed ? tm_feed_status(sig->feed) : NULL;
    /* A regulator feed more than a minute behind is the hospital's problem
     * to know about now, not at the next inspection. */
    if (feed && json_integer_value(json_object_get(feed, "oldest_undelivered_age_s")) > 60)
        json_array_append_new(alerts, json_pack("{s:s, s:O, s:O}", "kind", "feed_backlog",
                                                "queue_depth", json_object_get(feed, "queue_depth"),
                                                "oldest_undelivered_age_s",
                                                json_object_get(feed, "oldest_undelivered_age_s")));
    json_t *ov = json_pack("{s:s, s:o, s:o, s:o, s:o}", "type", "overview", "departments", depts,
                           "visits", visits, "doctors", doctors, "alerts", alerts);
    json_object_set_new(ov, "at", time_json(now));
    if (feed)
        json_object_set_new(ov, "feed", feed);
    return ov;
}

static void push_overview(tm_signaling *sig)
{
    json_t *ov = NULL;
    GHashTableIter it;
    gpointer k, val;
    g_hash_table_iter_init(&it, sig->staff);
    while (g_hash_table_iter_next(&it, &k, &val)) {
        user *u = val;
        if (!u->overview || !u->sess)
            continue;
        if (!ov)
            ov = tm_signaling_overview(sig);
        send_msg(u->sess, json_incref(ov));
    }
    json_decref(ov);
}

static gboolean overview_fire(gpointer data)
{
    tm_signaling *sig = data;
    sig->overview_timer = 0;
    if (sig->overview_dirty) {
        sig->overview_dirty = false;
        push_overview(sig);
    }
    return G_SOURCE_REMOVE;
}

static void mark_overview_dirty(tm_signaling *sig)
{
    sig->overview_dirty = true;
    /* Coalesce bursts (a check-in moves many positions) into one push. */
    if (!sig->overview_timer)
        sig->overview_timer = g_timeout_add(200, overview_fire, sig);
}

/* Once a second: slots that have come, shifts that began, quality figures. */
static gboolean tick(gpointer data)
{
    tm_signaling *sig = data;
    dispatch_all(sig);
    GPtrArray *depts = g_ptr_array_new_with_free_func(g_free);
    tm_queue_foreach_dept(sig->queue, collect_dept, depts);
    note_queue_change(sig);
    for (guint i = 0; i < depts->len; i++)
        g_hash_table_add(sig->dirty_depts, g_strdup(g_ptr_array_index(depts, i)));
    g_ptr_array_free(depts, TRUE);
    flush_positions(sig);
    sig->overview_dirty = true;
    overview_fire(sig);
    return G_SOURCE_CONTINUE;
}

/* ---- message handlers ---------------------------------------------- */

typedef struct request {
    tm_signaling *sig;
    session *s;
    user *u;
    json_t *msg;
    const char *id;
} request;

static live_visit *member_visit(request *r, const char *visit_id, int *err)
{
    if (!visit_id) {
        *err = TM_EINVAL;
        return NULL;
    }
    live_visit *v = g_hash_table_lookup(r->sig->visits, visit_id);
    if (!v) {
        tm_visit rec;
        *err = tm_store_visit_get(r->sig->store, visit_id, &rec) == 0 ? TM_ECONFLICT : TM_ENOTFOUND;
        if (*err == TM_ECONFLICT &&
            !((r->u->role == TM_ROLE_PATIENT && strcmp(rec.patient_id, r->u->sub) == 0) ||
              (r->u->role == TM_ROLE_DOCTOR && strcmp(rec.doctor_id, r->u->sub) == 0)))
            *err = TM_EPERM;
        return NULL;
    }
    bool member = (r->u->role == TM_ROLE_PATIENT && strcmp(v->patient_sub, r->u->sub) == 0) ||
                  (r->u->role == TM_ROLE_DOCTOR && strcmp(v->doctor_id, r->u->sub) == 0 &&
                   v->state == TM_VS_ACTIVE);
    if (!member) {
        *err = TM_EPERM;
        return NULL;
    }
    return v;
}

/* The live visit the request names, if the sender is one of its
 * participants; otherwise the error is answered and NULL returned. */
static live_visit *requested_visit(request *r)
{
    int err = 0;
    live_visit *v = member_visit(r, jstr(r->msg, "visit_id"), &err);
    if (!v)
        reply_err(r->s, r->id, err, NULL);
    return v;
}

static bool need_role(request *r, tm_role a, tm_role b)
{
    if (r->u->role == a || r->u->role == b)
        return true;
    reply_err(r->s, r->id, TM_EPERM, "this message is not for your role");
    return false;
}

static void handle_ping(request *r)
{
    reply_ok(r->s, r->id, json_pack("{s:o}", "server_time", time_json(tm_now_ms())));
}

static void handle_checkin(request *r)
{
    if (!need_role(r, TM_ROLE_PATIENT, TM_ROLE_PATIENT))
        return;
    tm_signaling *sig = r->sig;
    user *u = r->u;
    if (u->visit_id[0]) {
        reply_err(r->s, r->id, TM_ECONFLICT, "already checked in");
        return;
    }
    tm_visit v = {0};
    g_strlcpy(v.patient_id, u->sub, sizeof(v.patient_id));
    v.checkin_ms = tm_now_ms();
    json_t *urgent = json_object_get(r->msg, "urgent");
    if (urgent && !json_is_boolean(urgent)) {
        reply_err(r->s, r->id, TM_EINVAL, "urgent must be a boolean");
        return;
    }
    v.urgent = json_is_true(urgent);
    json_t *consent = json_object_get(r->msg, "consent_recording");
    if (consent && !json_is_boolean(consent)) {
        reply_err(r->s, r->id, TM_EINVAL, "consent_recording must be a boolean");
        return;
    }
    v.recording_consent = !consent ? 0 : json_is_true(consent) ? 1 : -1;
    const char *appt_id = jstr(r->msg, "appointment_id");
    if (appt_id) {
        tm_appointment a;
        if (tm_store_appt_get(sig->store, appt_id, &a) < 0 || strcmp(a.patient_id, u->sub) != 0) {
            reply_err(r->s, r->id, TM_ENOTFOUND, "no such appointment for this patient");
            return;
        }
        if (strcmp(a.status, "booked") != 0) {
            reply_err(r->s, r->id, TM_ECONFLICT, "appointment is not booked");
            return;
        }
        g_strlcpy(v.appointment_id, a.id, sizeof(v.appointment_id));
        g_strlcpy(v.dept_id, a.dept_id, sizeof(v.dept_id));
        g_strlcpy(v.kind, a.kind, sizeof(v.kind));
        v.slot_ms = a.slot_ms;
    } else {
        const char *dept = jstr(r->msg, "dept");
        const char *kind = jstr(r->msg, "kind");
        if (!dept) {
            reply_err(r->s, r->id, TM_EINVAL, "checkin needs appointment_id or dept");
            return;
        }
        if (!tm_store_dept_exists(sig->store, dept)) {
            reply_err(r->s, r->id, TM_ENOTFOUND, "no such department");
            return;
        }
        if (json_object_get(r->msg, "kind") && !kind) {
            reply_err(r->s, r->id, TM_EINVAL, "kind must be a string");
            return;
        }
        g_strlcpy(v.dept_id, dept, sizeof(v.dept_id));
        g_strlcpy(v.kind, kind ? kind : "follow_up", sizeof(v.kind));
        if (strcmp(v.kind, "follow_up") != 0 && strcmp(v.kind, "first") != 0) {
            reply_err(r->s, r->id, TM_EINVAL, "kind must be follow_up or first");
            return;
        }
    }
    if (strcmp(v.kind, "first") == 0 && !sig->cfg->allow_first_visits) {
        /* Internet diagnosis is for follow-ups of a diagnosis made in person. */
        reply_err(r->s, r->id, TM_EPERM, "first visits are not allowed online at this hospital");
        return;
    }
    int rc = tm_store_visit_checkin(sig->store, &v, r->s->ua);
    if (rc < 0) {
        reply_err(r->s, r->id, rc, "check-in failed");
        return;
    }
    live_visit *lv = live_visit_add(sig, &v);
    queue_add(sig, lv);
    g_strlcpy(u->visit_id, v.id, sizeof(u->visit_id));
    u->last_visit_id[0] = 0;
    tm_info("visit.checked_in", "visit=%s patient=%s dept=%s urgent=%d appt=%d", v.id, u->sub,
            v.dept_id, v.urgent, lv->has_appt);
    if (sig->feed)
        tm_feed_kick(sig->feed);
    int64_t now = tm_now_ms();
    int position = tm_queue_position(sig->queue, v.id, now);
    int64_t est = tm_queue_estimate_wait_ms(position, doctors_on_duty(sig, v.dept_id),
                                            tm_signaling_avg_visit_ms(sig, v.dept_id));
    json_t *data = json_pack("{s:s, s:s, s:i}", "visit_id", v.id, "dept", v.dept_id, "position",
                             position);
    json_object_set_new(data, "estimated_wait_s", est < 0 ? json_null() : json_integer((est + 999) / 1000));
    reply_ok(r->s, r->id, data);
    lv->last_position = position;
    lv->last_estimate_s = est < 0 ? -1 : (est + 999) / 1000;
    mark_dept_dirty(sig, v.dept_id);
    dispatch_dept(sig, v.dept_id);
    flush_positions(sig);
}

static void handle_queue_leave(request *r)
{
    if (!need_role(r, TM_ROLE_PATIENT, TM_ROLE_PATIENT))
        return;
    live_visit *v = requested_visit(r);
    if (!v)
        return;
    if (v->state == TM_VS_ACTIVE) {
        reply_err(r->s, r->id, TM_ECONFLICT, "the visit has started; end it instead");
        return;
    }
    int rc = finish_visit(r->sig, v, "patient_left", r->u->sub);
    if (rc < 0)
        reply_err(r->s, r->id, rc, NULL);
    else
        reply_ok(r->s, r->id, NULL);
    flush_positions(r->sig);
}

static json_t *doctor_state_json(tm_signaling *sig, user *d)
{
    json_t *visits = json_array();
    for (guint i = 0; i < d->visits->len; i++)
        json_array_append_new(visits, json_string(g_ptr_array_index(d->visits, i)));
    char dept[64] = "";
    int capacity = 0;
    int64_t end_ms = 0;
    json_t *shift = json_null();
    if (tm_store_shift_current(sig->store, d->sub, NULL, tm_now_ms(), dept, &capacity, &end_ms) == 0)
        shift = json_pack("{s:s, s:i, s:o}", "dept", dept, "capacity", capacity, "ends_at",
                          time_json(end_ms));
    json_t *o = json_pack("{s:s, s:o, s:o}", "status", doctor_status_names[d->status], "visits",
                          visits, "shift", shift);
    json_object_set_new(o, "offer", d->offer_visit[0] ? json_string(d->offer_visit) : json_null());
    return o;
}

static void handle_doctor_status(request *r)
{
    if (!need_role(r, TM_ROLE_DOCTOR, TM_ROLE_DOCTOR))
        return;
    const char *status = jstr(r->msg, "status");
    int st = -1;
    for (int i = 0; status && i < (int)TM_ARRAY_LEN(doctor_status_names); i++)
        if (strcmp(status, doctor_status_names[i]) == 0)
            st = i;
    if (st < 0) {
        reply_err(r->s, r->id, TM_EINVAL, "status must be available, away or off_duty");
        return;
    }
    tm_doctor_info info;
    if (tm_store_doctor_get(r->sig->store, r->u->sub, &info) < 0) {
        reply_err(r->s, r->id, TM_EPERM, "this doctor is not registered at the hospital");
        return;
    }
    user *d = r->u;
    enum doctor_status old = d->status;
    d->status = (enum doctor_status)st;
    if (d->status == DOC_AVAILABLE && old != DOC_AVAILABLE)
        d->idle_since_ms = tm_now_ms();
    if (d->status != DOC_AVAILABLE && d->offer_visit[0]) {
        live_visit *v = g_hash_table_lookup(r->sig->visits, d->offer_visit);
        if (v)
            unoffer(r->sig, v, "withdrawn");
    }
    tm_info("doctor.status", "doctor=%s status=%s", d->sub, doctor_status_names[st]);
    json_t *data = doctor_state_json(r->sig, d);
    json_object_set_new(data, "in_shift", json_boolean(!json_is_null(json_object_get(data, "shift"))));
    reply_ok(r->s, r->id, data);
    mark_overview_dirty(r->sig);
    dispatch_all(r->sig);
    /* Doctors on duty changed: every estimate changes. */
    tick(r->sig);
}

static live_visit *offered_to_me(request *r)
{
    const char *visit_id = jstr(r->msg, "visit_id");
    live_visit *v = visit_id ? g_hash_table_lookup(r->sig->visits, visit_id) : NULL;
    if (!visit_id) {
        reply_err(r->s, r->id, TM_EINVAL, "visit_id is required");
        return NULL;
    }
    if (!v || !advance(v, TM_VEV_ACCEPT, false) || strcmp(v->doctor_id, r->u->sub) != 0) {
        reply_err(r->s, r->id, v ? TM_ECONFLICT : TM_ENOTFOUND, "no open offer of this visit for you");
        return NULL;
    }
    return v;
}

static void recording_failed_alert(tm_signaling *sig, const char *visit_id, const char *reason)
{
    tm_error("recording.failed", "visit=%s", visit_id);
    remember_alert(sig, json_pack("{s:s, s:s, s:s}", "kind", "recording_failed", "visit_id",
                                  visit_id, "reason", reason ? reason : "failed"));
}

/* The recording broke while the visit goes on (a full disk): on record and
 * in front of the supervisors now, not when the visit ends. */
static void on_recording_failed(tm_signaling *sig, const char *visit_id, const char *reason)
{
    const char *rec_id = g_hash_table_lookup(sig->recordings, visit_id);
    if (rec_id && tm_recording_fail(sig->store, rec_id, reason ? reason : "failed", 0, tm_now_ms()) == 0)
        recording_failed_alert(sig, visit_id, reason);
}

/* The recorder finished the visit's file (or gave up): the record gets its
 * size, duration and hash and the regulator its recording.available. */
static void on_recording_done(const char *visit_id, const struct tm_recorder_result *res,
                              void *user_data)
{
    tm_signaling *sig = user_data;
    const char *rec_id = g_hash_table_lookup(sig->recordings, visit_id);
    if (!rec_id)
        return;
    int64_t now = tm_now_ms();
    int rc;
    if (res->status == 0) {
        if (res->encrypted && res->plain_sha256[0])
            tm_recording_set_plain_sha256(sig->store, rec_id, res->plain_sha256);
        rc = tm_recording_finish(sig->store, rec_id, res->size_bytes, res->duration_ms, res->sha256,
                                 (int64_t)res->stats.dropped, now);
        tm_info("recording.available", "visit=%s recording=%s bytes=%lld duration_ms=%lld dropped=%llu",
                visit_id, rec_id, (long long)res->size_bytes, (long long)res->duration_ms,
                (unsigned long long)res->stats.dropped);
    } else {
        rc = tm_recording_fail(sig->store, rec_id, res->failure ? res->failure : "failed",
                               (int64_t)res->stats.dropped, now);
        if (rc == TM_ECONFLICT)
            rc = 0; /* already on record: it failed during the visit */
        else
            recording_failed_alert(sig, visit_id, res->failure);
    }
    if (rc < 0)
        tm_error("recording.store_failed", "visit=%s err=%s", visit_id, tm_strerror(rc));
    if (sig->feed)
        tm_feed_kick(sig->feed);
    g_hash_table_remove(sig->recordings, visit_id);
}

/* Every consultation is recorded from its first packet (DESIGN.md). A
 * recording that cannot start is on record as failed; the visit goes on. */
static void start_recording(tm_signaling *sig, live_visit *v)
{
    if (!sig->cfg->recording || !sig->media)
        return;
    int64_t now = tm_now_ms();
    char *path = NULL, *err = NULL;
    char rec_id[TM_RECORDING_ID_LEN];
    int rc = tm_recorder_make_path(sig->cfg->recording_dir, v->id, now, sig->rec_key_set, &path, &err);
    if (rc < 0) {
        /* No file (a full or unwritable disk): the record still says the
         * visit was to be recorded, and why it was not. */
        char *where = g_build_filename(sig->cfg->recording_dir, v->id, NULL);
        if (tm_recording_start(sig->store, v->id, where, "matroska", sig->rec_key_set, now, rec_id) == 0)
            tm_recording_fail(sig->store, rec_id, err ? err : tm_strerror(rc), 0, now);
        g_free(where);
    }
    if (rc == 0)
        rc = tm_recording_start(sig->store, v->id, path, "matroska", sig->rec_key_set, now, rec_id);
    if (rc == 0) {
        g_hash_table_replace(sig->recordings, g_strdup(v->id), g_strdup(rec_id));
        rc = tm_media_visit_record(sig->media, v->id, path, sig->rec_key_set ? sig->rec_key : NULL, 2,
                                   on_recording_done, sig);
        if (rc < 0) {
            tm_recording_fail(sig->store, rec_id, "recorder did not start", 0, now);
            g_hash_table_remove(sig->recordings, v->id);
        }
    }
    if (rc < 0) {
        tm_error("recording.start_failed", "visit=%s err=%s", v->id, tm_strerror(rc));
        remember_alert(sig, json_pack("{s:s, s:s, s:s}", "kind", "recording_failed", "visit_id",
                                      v->id, "reason", err ? err : tm_strerror(rc)));
    }
    g_free(err);
    g_free(path);
}

static void handle_visit_accept(request *r)
{
    if (!need_role(r, TM_ROLE_DOCTOR, TM_ROLE_DOCTOR))
        return;
    live_visit *v = offered_to_me(r);
    if (!v)
        return;
    tm_signaling *sig = r->sig;
    int64_t now = tm_now_ms();
    int rc = tm_store_visit_accept(sig->store, v->id, r->u->sub, r->s->ua, now);
    if (rc < 0) {
        reply_err(r->s, r->id, rc, "accept failed");
        return;
    }
    if (v->offer_timer) {
        g_source_remove(v->offer_timer);
        v->offer_timer = 0;
    }
    advance(v, TM_VEV_ACCEPT, true);
    v->accepted_ms = now;
    r->u->offer_visit[0] = 0;
    g_ptr_array_add(r->u->visits, g_strdup(v->id));
    tm_queue_remove(sig->queue, v->id);
    histogram_observe(resp_bounds_s, TM_ARRAY_LEN(resp_bounds_s), sig->resp_buckets,
                      &sig->resp_sum_s, &sig->resp_count, (double)(now - v->checkin_ms) / 1000.0);
    tm_info("visit.started", "visit=%s doctor=%s response_ms=%lld", v->id, r->u->sub,
            (long long)(now - v->checkin_ms));
    if (sig->feed)
        tm_feed_kick(sig->feed);
    start_recording(sig, v);
    reply_ok(r->s, r->id, json_pack("{s:s}", "visit_id", v->id));
    push_visit_state(sig, v, v->id, visit_patient(sig, v), r->u);
    mark_dept_dirty(sig, v->dept);
    flush_positions(sig);
}

static void handle_visit_decline(request *r)
{
    if (!need_role(r, TM_ROLE_DOCTOR, TM_ROLE_DOCTOR))
        return;
    live_visit *v = offered_to_me(r);
    if (!v)
        return;
    unoffer(r->sig, v, "declined");
    reply_ok(r->s, r->id, NULL);
    dispatch_dept(r->sig, v->dept);
    flush_positions(r->sig);
}

static void handle_visit_end(request *r)
{
    if (!need_role(r, TM_ROLE_DOCTOR, TM_ROLE_PATIENT))
        return;
    live_visit *v = requested_visit(r);
    if (!v)
        return;
    const char *reason = jstr(r->msg, "reason");
    if (!reason)
        reason = r->u->role == TM_ROLE_DOCTOR ? "completed" : "patient_left";
    if (!tm_visit_end_reason_valid(reason)) {
        reply_err(r->s, r->id, TM_EINVAL, "unknown end reason");
        return;
    }
    if (v->state != TM_VS_ACTIVE) {
        reply_err(r->s, r->id, TM_ECONFLICT, "the visit is not active");
        return;
    }
    char id[64];
    g_strlcpy(id, v->id, sizeof(id));
    int rc = finish_visit(r->sig, v, reason, r->u->sub);
    if (rc < 0)
        reply_err(r->s, r->id, rc, NULL);
    else
        reply_ok(r->s, r->id, json_pack("{s:s}", "visit_id", id));
    flush_positions(r->sig);
}

static void handle_chat(request *r)
{
    if (!need_role(r, TM_ROLE_DOCTOR, TM_ROLE_PATIENT))
        return;
    live_visit *v = requested_visit(r);
    if (!v)
        return;
    const char *text = jstr(r->msg, "text");
    if (!text || !*text || strlen(text) > MAX_CHAT_BYTES) {
        reply_err(r->s, r->id, TM_EINVAL, "text must be 1 to 4000 bytes");
        return;
    }
    if (v->state != TM_VS_ACTIVE) {
        reply_err(r->s, r->id, TM_ECONFLICT, "chat is open during the visit");
        return;
    }
    int64_t now = tm_now_ms(), msg_id = 0;
    int rc = tm_store_chat_add(r->sig->store, v->id, r->u->sub, tm_role_name(r->u->role), text, now,
                               &msg_id);
    if (rc < 0) {
        reply_err(r->s, r->id, rc, NULL);
        return;
    }
    reply_ok(r->s, r->id, json_pack("{s:I}", "message_id", (json_int_t)msg_id));
    json_t *m = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:o}", "type", "chat.message", "visit_id",
                          v->id, "message_id", (json_int_t)msg_id, "from", r->u->sub, "from_role",
                          tm_role_name(r->u->role), "text", text, "at", time_json(now));
    send_to_user(visit_patient(r->sig, v), json_incref(m));
    send_to_user(visit_doctor(r->sig, v), json_incref(m));
    for (guint i = 0; i < v->watchers->len; i++)
        send_to_user(g_hash_table_lookup(r->sig->users, g_ptr_array_index(v->watchers, i)),
                     json_incref(m));
    json_decref(m);
}

/* Visits a doctor may write about: their live visit, or one they ended. */
static int doctor_visit(request *r, const char *visit_id, tm_visit *rec)
{
    if (!visit_id)
        return TM_EINVAL;
    int rc = tm_store_visit_get(r->sig->store, visit_id, rec);
    if (rc < 0)
        return rc;
    if (strcmp(rec->doctor_id, r->u->sub) != 0)
        return TM_EPERM;
    if (strcmp(rec->state, "active") != 0 && strcmp(rec->state, "ended") != 0)
        return TM_ECONFLICT;
    return 0;
}

static void handle_note(request *r)
{
    if (!need_role(r, TM_ROLE_DOCTOR, TM_ROLE_DOCTOR))
        return;
    tm_visit rec;
    int rc = doctor_visit(r, jstr(r->msg, "visit_id"), &rec);
    if (rc < 0) {
        reply_err(r->s, r->id, rc, NULL);
        return;
    }
    const char *text = jstr(r->msg, "text");
    const char *code = jstr(r->msg, "diagnosis_code");
    json_t *sign = json_object_get(r->msg, "sign");
    if (!text || strlen(text) > MAX_NOTE_BYTES || (sign && !json_is_boolean(sign)) ||
        (code && strlen(code) > 16)) {
        reply_err(r->s, r->id, TM_EINVAL, "note needs text (up to 32000 bytes), optional "
                                          "diagnosis_code (ICD-10) and sign (boolean)");
        return;
    }
    rc = tm_store_note_save(r->sig->store, rec.id, r->u->sub, text, code, json_is_true(sign),
                            tm_now_ms());
    if (rc < 0) {
        reply_err(r->s, r->id, rc, rc == TM_ECONFLICT ? "the note is signed and final" : NULL);
        return;
    }
    if (json_is_true(sign) && r->sig->feed)
        tm_feed_kick(r->sig->feed);
    reply_ok(r->s, r->id, json_pack("{s:s, s:b}", "visit_id", rec.id, "signed", json_is_true(sign)));
}

static void handle_rate(request *r)
{
    if (!need_role(r, TM_ROLE_PATIENT, TM_ROLE_PATIENT))
        return;
    const char *visit_id = jstr(r->msg, "visit_id");
    json_t *score = json_object_get(r->msg, "score");
    const char *comment = jstr(r->msg, "comment");
    if (!visit_id || !json_is_integer(score) || json_integer_value(score) < 1 ||
        json_integer_value(score) > 5 || (comment && strlen(comment) > 2000)) {
        reply_err(r->s, r->id, TM_EINVAL, "rate needs visit_id, score 1-5 and an optional comment");
        return;
    }
    tm_visit rec;
    int rc = tm_store_visit_get(r->sig->store, visit_id, &rec);
    if (rc == 0 && strcmp(rec.patient_id, r->u->sub) != 0)
        rc = TM_EPERM;
    if (rc == 0 && strcmp(rec.state, "ended") != 0)
        rc = TM_ECONFLICT;
    if (rc == 0)
        rc = tm_store_rating_add(r->sig->store, visit_id, r->u->sub,
                                 (int)json_integer_value(score), comment, tm_now_ms());
    if (rc < 0) {
        reply_err(r->s, r->id, rc, rc == TM_ECONFLICT ? "visit not ended or already rated" : NULL);
        return;
    }
    if (strcmp(r->u->last_visit_id, visit_id) == 0)
        r->u->last_visit_id[0] = 0;
    if (r->sig->feed)
        tm_feed_kick(r->sig->feed);
    reply_ok(r->s, r->id, json_pack("{s:s}", "visit_id", visit_id));
}

static void handle_overview(request *r, bool on)
{
    if (!need_role(r, TM_ROLE_SUPERVISOR, TM_ROLE_ADMIN))
        return;
    r->u->overview = on;
    reply_ok(r->s, r->id, NULL);
    if (on)
        send_msg(r->s, tm_signaling_overview(r->sig));
}

static void handle_doctor_queue(request *r)
{
    if (!need_role(r, TM_ROLE_DOCTOR, TM_ROLE_SUPERVISOR))
        return;
    const char *dept = jstr(r->msg, "dept");
    char shift_dept[64] = "";
    if (!dept && r->u->role == TM_ROLE_DOCTOR &&
        tm_store_shift_current(r->sig->store, r->u->sub, NULL, tm_now_ms(), shift_dept, NULL, NULL) == 0)
        dept = shift_dept;
    if (!dept) {
        reply_err(r->s, r->id, TM_EINVAL, "dept is required outside a shift");
        return;
    }
    static const char *ids[1000];
    int64_t now = tm_now_ms();
    size_t n = tm_queue_ordered(r->sig->queue, dept, now, ids, TM_ARRAY_LEN(ids));
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        live_visit *v = g_hash_table_lookup(r->sig->visits, ids[i]);
        if (!v)
            continue;
        user *p = visit_patient(r->sig, v);
        json_t *o = json_pack("{s:s, s:i, s:s, s:s, s:b, s:b, s:I, s:b}", "visit_id", v->id,
                              "position", (int)i + 1, "state", tm_visit_state_name(v->state),
                              "kind", v->kind, "urgent", v->urgent, "appointment", v->has_appt,
                              "waited_s", (json_int_t)((now - v->checkin_ms) / 1000), "connected",
                              p && p->sess);
        json_object_set_new(o, "slot_at", time_json(v->slot_ms));
        json_array_append_new(list, o);
    }
    json_t *figures = NULL;
    if (r->u->role == TM_ROLE_DOCTOR) {
        GDateTime *today = g_date_time_new_now_local();
        GDateTime *midnight = g_date_time_new_local(g_date_time_get_year(today),
                                                    g_date_time_get_month(today),
                                                    g_date_time_get_day_of_month(today), 0, 0, 0);
        tm_store_doctor_figures(r->sig->store, r->u->sub, g_date_time_to_unix(midnight) * 1000,
                                &figures);
        g_date_time_unref(midnight);
        g_date_time_unref(today);
    }
    json_t *data = json_pack("{s:s, s:o}", "dept", dept, "queue", list);
    if (figures)
        json_object_set_new(data, "today", figures);
    reply_ok(r->s, r->id, data);
}

/* ---- supervisor watch and media ------------------------------------ */

static void handle_watch(request *r)
{
    tm_signaling *sig = r->sig;
    const char *visit_id = jstr(r->msg, "visit_id");
    if (r->u->role != TM_ROLE_SUPERVISOR) {
        tm_store_audit(sig->store, r->u->sub, tm_role_name(r->u->role), "visit.watch",
                       visit_id, "denied", "not a supervisor");
        reply_err(r->s, r->id, TM_EPERM, "only supervisors may watch visits");
        return;
    }
    live_visit *v = visit_id ? g_hash_table_lookup(sig->visits, visit_id) : NULL;
    if (!v || v->state != TM_VS_ACTIVE) {
        tm_visit rec;
        int rc = !visit_id ? TM_EINVAL
                 : tm_store_visit_get(sig->store, visit_id, &rec) < 0 ? TM_ENOTFOUND
                                                                      : TM_ECONFLICT;
        tm_store_audit(sig->store, r->u->sub, "supervisor", "visit.watch", visit_id, "denied",
                       rc == TM_ECONFLICT ? "visit not live" : "no such visit");
        reply_err(r->s, r->id, rc, rc == TM_ECONFLICT ? "the visit is not live" : NULL);
        return;
    }
    if (r->u->watching[0] && strcmp(r->u->watching, v->id) != 0) {
        reply_err(r->s, r->id, TM_ECONFLICT, "already watching another visit");
        return;
    }
    if (!r->u->watching[0]) {
        g_strlcpy(r->u->watching, v->id, sizeof(r->u->watching));
        g_ptr_array_add(v->watchers, g_strdup(r->u->key));
        tm_store_audit(sig->store, r->u->sub, "supervisor", "visit.watch", v->id, "ok", NULL);
        tm_info("visit.watch", "visit=%s supervisor=%s", v->id, r->u->sub);
        if (sig->cfg->supervisor_notice) {
            json_t *m = json_pack("{s:s, s:s, s:b, s:i}", "type", "visit.supervisor", "visit_id",
                                  v->id, "present", true, "count", (int)v->watchers->len);
            send_to_user(visit_patient(sig, v), json_incref(m));
            send_to_user(visit_doctor(sig, v), m);
        }
    }
    reply_ok(r->s, r->id, json_pack("{s:s, s:s, s:s}", "visit_id", v->id, "patient_id",
                                    v->patient_sub, "doctor_id", v->doctor_id));
    mark_overview_dirty(sig);
}

static void stop_watching(tm_signaling *sig, user *u, const char *why)
{
    live_visit *v = g_hash_table_lookup(sig->visits, u->watching);
    tm_store_audit(sig->store, u->sub, "supervisor", "visit.unwatch", u->watching, "ok", why);
    if (sig->media)
        tm_media_peer_close(sig->media, u->watching, u->key);
    if (v) {
        for (guint i = 0; i < v->watchers->len; i++) {
            if (strcmp(g_ptr_array_index(v->watchers, i), u->key) == 0) {
                g_ptr_array_remove_index(v->watchers, i);
                break;
            }
        }
        if (sig->cfg->supervisor_notice) {
            json_t *m = json_pack("{s:s, s:s, s:b, s:i}", "type", "visit.supervisor", "visit_id",
                                  v->id, "present", v->watchers->len > 0, "count",
                                  (int)v->watchers->len);
            send_to_user(visit_patient(sig, v), json_incref(m));
            send_to_user(visit_doctor(sig, v), m);
        }
    }
    u->watching[0] = 0;
    mark_overview_dirty(sig);
}

static void handle_unwatch(request *r)
{
    if (!need_role(r, TM_ROLE_SUPERVISOR, TM_ROLE_SUPERVISOR))
        return;
    if (!r->u->watching[0]) {
        reply_err(r->s, r->id, TM_ECONFLICT, "not watching");
        return;
    }
    stop_watching(r->sig, r->u, "requested");
    reply_ok(r->s, r->id, NULL);
}

/* The visit a user may exchange media for: their active visit, or the one
 * they watch. */
static live_visit *media_visit(request *r, bool *send)
{
    const char *visit_id = jstr(r->msg, "visit_id");
    if (!visit_id) {
        reply_err(r->s, r->id, TM_EINVAL, "visit_id is required");
        return NULL;
    }
    if (!r->sig->media) {
        reply_err(r->s, r->id, TM_EUNSUPPORTED, "media is not enabled on this server");
        return NULL;
    }
    if (r->u->role == TM_ROLE_SUPERVISOR) {
        live_visit *v = g_hash_table_lookup(r->sig->visits, visit_id);
        if (!v || strcmp(r->u->watching, visit_id) != 0) {
            reply_err(r->s, r->id, TM_EPERM, "watch the visit first");
            return NULL;
        }
        *send = false;
        return v;
    }
    int err = 0;
    live_visit *v = member_visit(r, visit_id, &err);
    if (!v) {
        reply_err(r->s, r->id, err, NULL);
        return NULL;
    }
    if (v->state != TM_VS_ACTIVE) {
        reply_err(r->s, r->id, TM_ECONFLICT, "media starts when the visit is active");
        return NULL;
    }
    *send = true;
    return v;
}

static void handle_media_offer(request *r)
{
    bool send = false;
    live_visit *v = media_visit(r, &send);
    if (!v)
        return;
    const char *sdp = jstr(r->msg, "sdp");
    if (!sdp) {
        reply_err(r->s, r->id, TM_EINVAL, "sdp is required");
        return;
    }
    char *err = NULL;
    int rc = tm_media_offer(r->sig->media, v->id, r->u->key, send, sdp, strlen(sdp), &err);
    if (rc < 0) {
        reply_err(r->s, r->id, rc, err ? err : "offer refused");
        g_free(err);
        return;
    }
    reply_ok(r->s, r->id, NULL);
}

static void handle_media_candidate(request *r)
{
    bool send = false;
    live_visit *v = media_visit(r, &send);
    if (!v)
        return;
    const char *cand = jstr(r->msg, "candidate");
    const char *mid = jstr(r->msg, "sdpMid");
    if (!cand) {
        reply_err(r->s, r->id, TM_EINVAL, "candidate is required");
        return;
    }
    int rc = tm_media_add_candidate(r->sig->media, v->id, r->u->key, cand, mid);
    if (rc < 0)
        reply_err(r->s, r->id, rc, "candidate refused");
    else
        reply_ok(r->s, r->id, NULL);
}

static double num(json_t *o, const char *key)
{
    return json_number_value(json_object_get(o, key));
}

static void keep_max(json_t *acc, const char *key, double v)
{
    if (v > num(acc, key))
        json_object_set_new(acc, key, json_real(v));
}

/* Folds one second of a peer's stream figures into the visit's summary:
 * average and peak bitrate, worst loss, jitter and RTT, the last totals. */
static void summarize_stats(live_visit *v, const char *peer, json_t *streams)
{
    if (!v->summary)
        v->summary = json_object();
    size_t i;
    json_t *st;
    json_array_foreach(streams, i, st) {
        char key[256];
        const char *dir = json_string_value(json_object_get(st, "direction"));
        const char *kind = json_string_value(json_object_get(st, "kind"));
        snprintf(key, sizeof(key), "%s|%s|%s|%lld", peer, dir ? dir : "?", kind ? kind : "?",
                 (long long)json_integer_value(json_object_get(st, "ssrc")));
        json_t *acc = json_object_get(v->summary, key);
        if (!acc) {
            acc = json_object();
            json_object_set_new(v->summary, key, acc);
        }
        double samples = num(acc, "samples") + 1, bps = num(st, "bitrate_bps");
        json_object_set_new(acc, "samples", json_real(samples));
        json_object_set_new(acc, "bitrate_avg_bps",
                            json_real(num(acc, "bitrate_avg_bps") + (bps - num(acc, "bitrate_avg_bps")) / samples));
        keep_max(acc, "bitrate_max_bps", bps);
        keep_max(acc, "loss_max_pct", num(st, "loss_pct"));
        keep_max(acc, "jitter_max_ms", num(st, "jitter_ms"));
        keep_max(acc, "rtt_max_ms", num(st, "rtt_ms"));
        if (num(st, "freeze_count") > num(acc, "freezes")) {
            json_object_set_new(acc, "freezes", json_real(num(st, "freeze_count")));
            json_object_set_new(acc, "froze_at_ms", json_real((double)tm_now_ms()));
        }
        json_object_set(acc, "last", st);
    }
}

/* Writes the visit's stream summaries into its record. */
static void store_stats_summary(tm_signaling *sig, live_visit *v, int64_t now)
{
    const char *key;
    json_t *acc;
    json_object_foreach(v->summary, key, acc) {
        gchar **parts = g_strsplit(key, "|", 4);
        if (g_strv_length(parts) == 4) {
            char *text = json_dumps(acc, JSON_COMPACT);
            tm_store_stats_add(sig->store, v->id, parts[0], parts[1], parts[2], text, now);
            free(text);
        }
        g_strfreev(parts);
    }
}

void tm_signaling_on_media_event(const void *event, void *user_data)
{
    const tm_media_event *ev = event;
    tm_signaling *sig = user_data;
    user *u = ev->peer_id ? g_hash_table_lookup(sig->users, ev->peer_id) : NULL;
    live_visit *v = ev->visit_id ? g_hash_table_lookup(sig->visits, ev->visit_id) : NULL;
    json_t *m = NULL;
    switch (ev->type) {
    case TM_MEDIA_EV_ANSWER:
        m = json_pack("{s:s, s:s, s:s, s:b}", "type", "media.answer", "visit_id", ev->visit_id,
                      "sdp", ev->sdp, "new_transport", ev->new_transport);
        break;
    case TM_MEDIA_EV_CANDIDATE:
        m = json_pack("{s:s, s:s, s:s, s:s, s:i}", "type", "media.candidate", "visit_id",
                      ev->visit_id, "candidate", ev->candidate ? ev->candidate : "", "sdpMid",
                      ev->mid ? ev->mid : "0", "sdpMLineIndex", ev->mline_index);
        break;
    case TM_MEDIA_EV_STATE:
        m = json_pack("{s:s, s:s, s:s}", "type", "media.state", "visit_id", ev->visit_id, "state",
                      ev->state);
        tm_info("media.state", "visit=%s peer=%s state=%s", ev->visit_id, ev->peer_id, ev->state);
        break;
    case TM_MEDIA_EV_STATS:
        if (v && ev->stats_json) {
            json_t *stats = json_loads(ev->stats_json, 0, NULL);
            if (stats) {
                if (!v->quality)
                    v->quality = json_object();
                summarize_stats(v, ev->peer_id, stats);
                json_object_set_new(v->quality, ev->peer_id, stats);
                mark_overview_dirty(sig);
            }
        }
        return;
    case TM_MEDIA_EV_RECORDING_FAILED:
        on_recording_failed(sig, ev->visit_id, ev->message);
        return;
    case TM_MEDIA_EV_ERROR:
        m = json_pack("{s:s, s:s, s:s, s:s}", "type", "media.error", "visit_id", ev->visit_id,
                      "code", tm_error_code(ev->err), "message", ev->message ? ev->message : "");
        break;
    }
    send_to_user(u, m);
}

/* ---- ICE servers ---------------------------------------------------- */

static void add_urls(json_t *servers, const char *csv, const char *username, const char *credential)
{
    if (!csv || !*csv)
        return;
    json_t *urls = json_array();
    gchar **parts = g_strsplit(csv, ",", -1);
    for (gchar **u = parts; *u; u++) {
        g_strstrip(*u);
        if (**u)
            json_array_append_new(urls, json_string(*u));
    }
    g_strfreev(parts);
    json_t *o = json_pack("{s:o}", "urls", urls);
    if (username) {
        json_object_set_new(o, "username", json_string(username));
        json_object_set_new(o, "credential", json_string(credential));
    }
    json_array_append_new(servers, o);
}

/* STUN/TURN servers for the client. TURN credentials follow the TURN REST
 * convention coturn's use-auth-secret checks: username "expiry:user",
 * password base64(HMAC-SHA1(secret, username)), valid until expiry. */
static json_t *ice_servers_json(const tm_config *cfg, const char *user_id)
{
    json_t *servers = json_array();
    add_urls(servers, cfg->stun_urls, NULL, NULL);
    if (cfg->turn_urls && cfg->turn_secret) {
        char username[256];
        snprintf(username, sizeof(username), "%lld:%s",
                 (long long)(tm_now_ms() / 1000 + cfg->turn_ttl_s), user_id);
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int maclen = 0;
        HMAC(EVP_sha1(), cfg->turn_secret, (int)strlen(cfg->turn_secret),
             (const unsigned char *)username, strlen(username), mac, &maclen);
        gchar *password = g_base64_encode(mac, maclen);
        add_urls(servers, cfg->turn_urls, username, password);
        g_free(password);
    }
    return servers;
}

/* ---- hello: authentication and resume ------------------------------ */

static json_t *resume_state(tm_signaling *sig, user *u)
{
    if (u->role == TM_ROLE_PATIENT) {
        json_t *o = json_object();
        if (u->visit_id[0]) {
            json_t *st = visit_state_msg(sig, u->visit_id);
            if (st)
                json_object_set_new(o, "visit", st);
            int pos = tm_queue_position(sig->queue, u->visit_id, tm_now_ms());
            if (pos > 0)
                json_object_set_new(o, "position", json_integer(pos));
        }
        if (u->last_visit_id[0])
            json_object_set_new(o, "to_rate", json_string(u->last_visit_id));
        return o;
    }
    if (u->role == TM_ROLE_DOCTOR)
        return doctor_state_json(sig, u);
    return json_object();
}

static void handle_hello(tm_signaling *sig, session *s, json_t *msg, const char *id)
{
    if (s->u) {
        reply_err(s, id, TM_ECONFLICT, "already authenticated");
        return;
    }
    const char *token = jstr(msg, "token");
    const char *ua = jstr(msg, "ua");
    if (ua)
        g_strlcpy(s->ua, ua, sizeof(s->ua));
    if (!token) {
        reply_err(s, id, TM_EAUTH, "hello needs a token");
        return;
    }
    tm_identity ident;
    const char *why = NULL;
    int rc = tm_jwt_verify(sig->jwt, token, strlen(token), tm_now_ms() / 1000,
                           sig->cfg->jwt_leeway_s, &ident, &why);
    if (rc < 0) {
        tm_info("ws.auth_failed", "ip=%s reason=%s", s->peer_ip, why ? why : "-");
        char message[96];
        snprintf(message, sizeof(message), "token refused: %s", why ? why : "invalid");
        reply_err(s, id, TM_EAUTH, message);
        return;
    }
    if (ident.hospital[0] && strcmp(ident.hospital, sig->cfg->hospital_id) != 0) {
        reply_err(s, id, TM_EPERM, "token is for another hospital");
        return;
    }
    if (ident.role == TM_ROLE_ADMIN) {
        /* Admins use the REST API; their live view is the supervisor's. */
        ident.role = TM_ROLE_SUPERVISOR;
    }
    user *u = find_user(sig, ident.role, ident.sub);
    bool resumed = false, rejoined = false;
    if (!u) {
        u = user_new(sig, ident.role, ident.sub);
    } else {
        resumed = u->grace_timer != 0 || u->grace_pending || u->visit_id[0] || u->visits->len;
        u->grace_pending = false;
        /* Back after a drop, as opposed to a second tab taking over a live session. */
        rejoined = resumed && !u->sess;
        if (u->sess) {
            /* The same person opened a new connection: it replaces the old one. */
            session *old = u->sess;
            send_msg(old, json_pack("{s:s}", "type", "session.replaced"));
            old->u = NULL;
            old->closing = true;
            lws_callback_on_writable(old->wsi);
        }
    }
    g_strlcpy(u->name, ident.name, sizeof(u->name));
    g_strlcpy(u->dept, ident.dept, sizeof(u->dept));
    if (u->grace_timer) {
        g_source_remove(u->grace_timer);
        u->grace_timer = 0;
    }
    u->sess = s;
    s->u = u;
    if (sig->on_authenticated)
        sig->on_authenticated(s->wsi, sig->on_authenticated_user);
    int64_t now = tm_now_ms();
    if (rejoined) {
        tm_info("user.resumed", "user=%s away_ms=%lld", u->key,
                (long long)(u->disconnected_ms ? now - u->disconnected_ms : 0));
        if (u->role == TM_ROLE_PATIENT && u->visit_id[0]) {
            live_visit *v = g_hash_table_lookup(sig->visits, u->visit_id);
            if (v && v->state == TM_VS_ACTIVE) {
                tm_store_participant_join(sig->store, v->id, u->sub, "patient", s->ua, now);
                notify_peer_presence(sig, v, u, true);
            }
        } else if (u->role == TM_ROLE_DOCTOR) {
            for (guint i = 0; i < u->visits->len; i++) {
                live_visit *v = g_hash_table_lookup(sig->visits, g_ptr_array_index(u->visits, i));
                if (v) {
                    tm_store_participant_join(sig->store, v->id, u->sub, "doctor", s->ua, now);
                    notify_peer_presence(sig, v, u, true);
                }
            }
        }
    }
    tm_info("ws.hello", "user=%s resumed=%d", u->key, resumed);
    json_t *data = json_pack("{s:s, s:s, s:s, s:o, s:b}", "sub", u->sub, "role",
                             tm_role_name(u->role), "protocol", "telemed.v1", "server_time",
                             time_json(now), "resumed", resumed);
    json_object_set_new(data, "state", resume_state(sig, u));
    json_object_set_new(data, "hospital", json_pack("{s:s, s:s}", "id", sig->cfg->hospital_id,
                                                    "name", sig->cfg->hospital_name));
    json_object_set_new(data, "ice_servers", ice_servers_json(sig->cfg, u->key));
    reply_ok(s, id, data);
    if (u->role == TM_ROLE_PATIENT && u->visit_id[0]) {
        live_visit *v = g_hash_table_lookup(sig->visits, u->visit_id);
        if (v) {
            v->last_position = -1;
            mark_dept_dirty(sig, v->dept);
            dispatch_dept(sig, v->dept);
            flush_positions(sig);
        }
    }
    mark_overview_dirty(sig);
}

/* ---- dispatch of one frame ----------------------------------------- */

typedef struct handler {
    const char *type;
    void (*fn)(request *r);
} handler;

static void handle_overview_on(request *r)
{
    handle_overview(r, true);
}

static void handle_overview_off(request *r)
{
    handle_overview(r, false);
}

static const handler handlers[] = {
    {"ping", handle_ping},
    {"checkin", handle_checkin},
    {"queue.leave", handle_queue_leave},
    {"doctor.status", handle_doctor_status},
    {"doctor.queue", handle_doctor_queue},
    {"visit.accept", handle_visit_accept},
    {"visit.decline", handle_visit_decline},
    {"visit.end", handle_visit_end},
    {"visit.note", handle_note},
    {"visit.rate", handle_rate},
    {"chat.send", handle_chat},
    {"overview.subscribe", handle_overview_on},
    {"overview.unsubscribe", handle_overview_off},
    {"visit.watch", handle_watch},
    {"visit.unwatch", handle_unwatch},
    {"media.offer", handle_media_offer},
    {"media.candidate", handle_media_candidate},
};

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
            s->closing = true;
            lws_callback_on_writable(s->wsi);
            return;
        }
        reply_err(s, NULL, TM_ERATE, "slow down");
        return;
    }
    s->strikes = 0;
    json_error_t jerr;
    json_t *msg = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!msg || !json_is_object(msg)) {
        char message[200];
        snprintf(message, sizeof(message), "malformed JSON: %s", msg ? "not an object" : jerr.text);
        reply_err(s, NULL, TM_EINVAL, message);
        json_decref(msg);
        return;
    }
    const char *type = jstr(msg, "type");
    json_t *idv = json_object_get(msg, "id");
    const char *id = json_is_string(idv) ? json_string_value(idv) : NULL;
    if (!type || !id || strlen(id) > 64) {
        reply_err(s, id, TM_EINVAL, "every request needs a string type and a string id (<= 64)");
        goto done;
    }
    if (strcmp(type, "hello") == 0) {
        handle_hello(sig, s, msg, id);
        goto done;
    }
    if (!s->u) {
        reply_err(s, id, TM_EAUTH, "say hello with a token first");
        goto done;
    }
    for (size_t i = 0; i < TM_ARRAY_LEN(handlers); i++) {
        if (strcmp(type, handlers[i].type) == 0) {
            request r = {.sig = sig, .s = s, .u = s->u, .msg = msg, .id = id};
            handlers[i].fn(&r);
            goto done;
        }
    }
    reply_err(s, id, TM_EINVAL, "unknown message type");
done:
    json_decref(msg);
}

/* ---- libwebsockets ------------------------------------------------- */

typedef struct pss {
    session *s;
} pss;

size_t tm_signaling_pss_size(void)
{
    return sizeof(pss);
}

static void session_free(session *s)
{
    unsigned char *buf;
    while ((buf = g_queue_pop_head(&s->outq)))
        free(buf);
    g_queue_clear(&s->outlen);
    if (s->rx)
        g_byte_array_free(s->rx, TRUE);
    g_free(s);
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
        session *s = g_new0(session, 1);
        s->sig = sig;
        s->wsi = wsi;
        s->tokens = sig->cfg->rate_burst;
        s->tokens_ms = tm_mono_ms();
        g_queue_init(&s->outq);
        g_queue_init(&s->outlen);
        lws_get_peer_simple(wsi, s->peer_ip, sizeof(s->peer_ip));
        p->s = s;
        sig->connections++;
        sig->connections_total++;
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
                reply_err(s, NULL, TM_ETOOBIG, "frame larger than the server accepts");
            }
            break;
        }
        if (lws_frame_is_binary(wsi)) {
            if (final)
                reply_err(s, NULL, TM_EINVAL, "binary frames are not part of telemed.v1");
            break;
        }
        if (final && have == 0) {
            sig->frame_us = g_get_monotonic_time();
            handle_frame(sig, s, in, len);
            sig->frame_us = 0;
            break;
        }
        if (!s->rx)
            s->rx = g_byte_array_new();
        g_byte_array_append(s->rx, in, (guint)len);
        if (final) {
            sig->frame_us = g_get_monotonic_time();
            handle_frame(sig, s, (const char *)s->rx->data, s->rx->len);
            sig->frame_us = 0;
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
        if (s->closing) {
            lws_close_reason(wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION, NULL, 0);
            return -1;
        }
        break;
    }
    case LWS_CALLBACK_CLOSED: {
        session *s = p->s;
        if (!s)
            break;
        p->s = NULL;
        sig->connections--;
        if (s->u && s->u->sess == s)
            user_detach(sig, s->u);
        flush_positions(sig);
        session_free(s);
        break;
    }
    default:
        break;
    }
    return 0;
}

/* ---- life cycle ---------------------------------------------------- */

static void restore_visit(const tm_visit *rec, void *data)
{
    tm_signaling *sig = data;
    live_visit *v = live_visit_add(sig, rec);
    if (v->state == TM_VS_OFFERED) {
        /* The server restarted mid-offer; nobody holds that offer now. */
        if (tm_store_visit_unoffer(sig->store, v->id, "withdrawn", tm_now_ms()) == 0)
            advance(v, TM_VEV_DECLINE, true);
        v->doctor_id[0] = 0;
    }
    if (v->state == TM_VS_WAITING) {
        queue_add(sig, v);
        if (v->state == TM_VS_WAITING && rec->offered_ms)
            tm_queue_return_to_head(sig->queue, v->id);
    }
    /* The participants have the grace period to come back, as after a drop. */
    if (!find_user(sig, TM_ROLE_PATIENT, v->patient_sub)) {
        user *p = user_new(sig, TM_ROLE_PATIENT, v->patient_sub);
        g_strlcpy(p->visit_id, v->id, sizeof(p->visit_id));
        p->grace_pending = true;
    }
    if (v->state == TM_VS_ACTIVE && v->doctor_id[0]) {
        user *d = find_user(sig, TM_ROLE_DOCTOR, v->doctor_id);
        if (!d) {
            d = user_new(sig, TM_ROLE_DOCTOR, v->doctor_id);
            d->status = DOC_AVAILABLE; /* they were at work when the server stopped */
            d->grace_pending = true;
        }
        g_ptr_array_add(d->visits, g_strdup(v->id));
    }
}

tm_signaling *tm_signaling_new(const tm_config *cfg, tm_store *store, tm_jwt_verifier *jwt,
                               char **err)
{
    tm_signaling *sig = g_new0(tm_signaling, 1);
    sig->cfg = cfg;
    sig->store = store;
    sig->jwt = jwt;
    sig->queue = tm_queue_new();
    sig->users = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, user_free);
    sig->staff = g_hash_table_new(g_str_hash, g_str_equal);
    sig->visits = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, live_visit_free);
    sig->avg_ms = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    sig->dirty_depts = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    sig->fanout = tm_fanout_new(fanout_threads(cfg));
    if (!sig->fanout) {
        *err = g_strdup("cannot start the fan-out threads");
        tm_signaling_free(sig);
        return NULL;
    }
    sig->recent_alerts = json_array();
    sig->recordings = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    tm__signaling_instance = sig;
    static const char *const live_states[] = {"waiting", "offered", "active"};
    for (size_t i = 0; i < TM_ARRAY_LEN(live_states); i++) {
        if (tm_store_visit_foreach_state(store, live_states[i], restore_visit, sig) < 0) {
            *err = g_strdup_printf("cannot restore visits: %s", tm_store_errmsg(store));
            tm_signaling_free(sig);
            return NULL;
        }
    }
    sig->tick = g_timeout_add_seconds(1, tick, sig);
    tm_info("signaling.restored", "live_visits=%u waiting=%zu", g_hash_table_size(sig->visits),
            tm_queue_length(sig->queue, NULL));
    return sig;
}

void tm_signaling_free(tm_signaling *sig)
{
    if (!sig)
        return;
    if (sig->tick)
        g_source_remove(sig->tick);
    if (sig->overview_timer)
        g_source_remove(sig->overview_timer);
    g_hash_table_destroy(sig->visits);
    g_hash_table_destroy(sig->staff);
    g_hash_table_destroy(sig->users);
    g_hash_table_destroy(sig->avg_ms);
    g_hash_table_destroy(sig->dirty_depts);
    tm_fanout_free(sig->fanout);
    free(sig->fan_items);
    json_decref(sig->recent_alerts);
    g_hash_table_destroy(sig->recordings);
    tm_queue_free(sig->queue);
    if (tm__signaling_instance == sig)
        tm__signaling_instance = NULL;
    g_free(sig);
}

void tm_signaling_set_media(tm_signaling *sig, struct tm_media *media)
{
    sig->media = media;
}

void tm_signaling_set_recording_key(tm_signaling *sig, const uint8_t key[32])
{
    memcpy(sig->rec_key, key, 32);
    sig->rec_key_set = true;
}

void tm_signaling_set_on_authenticated(tm_signaling *sig, tm_signaling_auth_cb cb, void *data)
{
    sig->on_authenticated = cb;
    sig->on_authenticated_user = data;
}

void tm_signaling_set_feed(tm_signaling *sig, struct tm_feed *feed)
{
    sig->feed = feed;
}

void tm_signaling_ready(tm_signaling *sig)
{
    GHashTableIter it;
    gpointer key, val;
    g_hash_table_iter_init(&it, sig->users);
    while (g_hash_table_iter_next(&it, &key, &val)) {
        user *u = val;
        if (u->grace_pending && !u->sess && !u->grace_timer)
            user_start_grace(sig, u);
        u->grace_pending = false;
    }
}

void tm_signaling_kick(tm_signaling *sig)
{
    dispatch_all(sig);
    flush_positions(sig);
    mark_overview_dirty(sig);
}

/* buckets has n_bounds + 1 counts, the last for values above every bound. */
static void append_histogram(GString *out, const char *name, const char *help,
                             const double *bounds, size_t n_bounds, const uint64_t *buckets,
                             double sum, uint64_t count)
{
    g_string_append_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (size_t b = 0; b < n_bounds; b++) {
        cum += buckets[b];
        g_string_append_printf(out, "%s_bucket{le=\"%g\"} %" G_GUINT64_FORMAT "\n", name, bounds[b],
                               cum);
    }
    cum += buckets[n_bounds];
    g_string_append_printf(out,
                           "%s_bucket{le=\"+Inf\"} %" G_GUINT64_FORMAT "\n%s_sum %.3f\n"
                           "%s_count %" G_GUINT64_FORMAT "\n",
                           name, cum, name, sum, name, count);
}

void tm_signaling_metrics(tm_signaling *sig, GString *out)
{
    g_string_append_printf(out,
                           "# HELP telemed_ws_connections Open signaling WebSocket connections.\n"
                           "# TYPE telemed_ws_connections gauge\n"
                           "telemed_ws_connections %" G_GUINT64_FORMAT "\n"
                           "# TYPE telemed_ws_connections_total counter\n"
                           "telemed_ws_connections_total %" G_GUINT64_FORMAT "\n"
                           "# TYPE telemed_ws_messages_in_total counter\n"
                           "telemed_ws_messages_in_total %" G_GUINT64_FORMAT "\n"
                           "# TYPE telemed_ws_messages_out_total counter\n"
                           "telemed_ws_messages_out_total %" G_GUINT64_FORMAT "\n"
                           "# TYPE telemed_ws_errors_total counter\n"
                           "telemed_ws_errors_total %" G_GUINT64_FORMAT "\n"
                           "# TYPE telemed_ws_rate_limited_total counter\n"
                           "telemed_ws_rate_limited_total %" G_GUINT64_FORMAT "\n",
                           sig->connections, sig->connections_total, sig->msgs_in, sig->msgs_out,
                           sig->errors_total, sig->rate_limited);
    g_string_append(out, "# HELP telemed_queue_length Patients waiting per department.\n"
                         "# TYPE telemed_queue_length gauge\n");
    json_t *depts = tm_store_dept_list(sig->store);
    size_t i;
    json_t *d;
    json_array_foreach(depts, i, d) {
        const char *id = json_string_value(json_object_get(d, "id"));
        g_string_append_printf(out, "telemed_queue_length{dept=\"%s\"} %zu\n", id,
                               tm_queue_length(sig->queue, id));
    }
    json_decref(depts);
    int counts[5] = {0};
    GHashTableIter it;
    gpointer k, val;
    g_hash_table_iter_init(&it, sig->visits);
    while (g_hash_table_iter_next(&it, &k, &val))
        counts[((live_visit *)val)->state]++;
    g_string_append(out, "# HELP telemed_visits Live visits by state.\n# TYPE telemed_visits gauge\n");
    for (int s = TM_VS_WAITING; s <= TM_VS_ACTIVE; s++)
        g_string_append_printf(out, "telemed_visits{state=\"%s\"} %d\n",
                               tm_visit_state_name((tm_visit_state)s), counts[s]);
    append_histogram(out, "telemed_response_seconds", "Check-in to doctor accept.", resp_bounds_s,
                     TM_ARRAY_LEN(resp_bounds_s), sig->resp_buckets, sig->resp_sum_s,
                     sig->resp_count);
    append_histogram(out, "telemed_queue_push_seconds",
                     "Queue change (frame arrival) to the queue.position push written to its socket.",
                     push_bounds_s, TM_ARRAY_LEN(push_bounds_s), sig->push_buckets,
                     sig->push_sum_s, sig->push_count);
}

/*
 * lobby.c - the waiting room: check-in, each patient's place and estimated
 * wait, doctors going on and off duty, and the offers that pair the next
 * patient with a free doctor.
 *
 * Control loop. The order is tm_queue's; who is on duty comes from the
 * shifts in memory (shifts.c) and the connected doctors. A queue change
 * marks its department dirty; flush_positions then pushes queue.position to
 * every patient whose place or estimate moved, written in parallel by the
 * fan-out (fanout.h) with text from position_text.c. An offer runs a timer
 * that carries its visit: the visit's end removes the timer.
 */
#include "signaling_internal.h"
#include "position_text.h"
#include "telemed/log.h"
#include "telemed/pairing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Patients considered per department and dispatch round. */
#define DISPATCH_SCAN 256

int tm__queue_add(tm_signaling *sig, live_visit *v)
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

/* The position pushes that follow are timed from here: from the arrival of
 * the frame that changed the queue, or from now for a timer. */
static void note_queue_change(tm_signaling *sig)
{
    if (!sig->change_us)
        sig->change_us = sig->frame_us ? sig->frame_us : g_get_monotonic_time();
}

void tm__mark_dept_dirty(tm_signaling *sig, const char *dept)
{
    note_queue_change(sig);
    g_hash_table_add(sig->dirty_depts, g_strdup(dept));
    tm__mark_overview_dirty(sig);
    tm__cluster_queue_changed(sig, dept);
}

/* Whether the doctor is inside a shift of dept now, and its capacity. */
static bool doctor_in_shift(tm_signaling *sig, const user *d, const char *dept, int *capacity)
{
    const tm__shift *sh = tm__shifts_current(sig->shifts, d->sub, dept, tm_now_ms());
    if (sh && capacity)
        *capacity = sh->capacity;
    return sh != NULL;
}

/* Nurses and interpreters are invited into visits; only doctors take patients. */
static bool takes_patients(const user *u)
{
    return u->role == TM_ROLE_DOCTOR && (!u->kind[0] || strcmp(u->kind, "doctor") == 0);
}

/* On duty for the waiting room: connected, inside a shift of dept, and at
 * work, available or away. An away doctor (writing up a visit, or set away
 * by one lapsed offer) comes back to the queue; leaving them out would turn
 * every waiting patient's estimate into "no doctor" for a coffee break. */
bool tm__doctor_on_duty(tm_signaling *sig, const user *u, const char *dept)
{
    return takes_patients(u) && u->sess && (u->status == DOC_AVAILABLE || u->status == DOC_AWAY) &&
           doctor_in_shift(sig, u, dept, NULL);
}

int tm__doctors_on_duty(tm_signaling *sig, const char *dept)
{
    int n = 0;
    GHashTableIter it;
    gpointer key, val;
    g_hash_table_iter_init(&it, sig->staff);
    while (g_hash_table_iter_next(&it, &key, &val))
        if (tm__doctor_on_duty(sig, val, dept))
            n++;
    return n;
}

static void count_dept(const char *dept, void *data)
{
    GHashTable *counts = data;
    gpointer n = g_hash_table_lookup(counts, dept);
    g_hash_table_replace(counts, g_strdup(dept), GINT_TO_POINTER(GPOINTER_TO_INT(n) + 1));
}

void tm__count_doctors_on_duty(tm_signaling *sig, GHashTable *counts)
{
    int64_t now = tm_now_ms();
    GHashTableIter it;
    gpointer val;
    g_hash_table_iter_init(&it, sig->staff);
    while (g_hash_table_iter_next(&it, NULL, &val)) {
        const user *u = val;
        if (takes_patients(u) && u->sess && (u->status == DOC_AVAILABLE || u->status == DOC_AWAY))
            tm__shifts_current_depts(sig->shifts, u->sub, now, count_dept, counts);
    }
}

int tm__doctors_for_estimate(tm_signaling *sig, const char *dept)
{
    return tm__doctors_on_duty(sig, dept) + tm__cluster_doctors_elsewhere(sig, dept);
}

int64_t tm_signaling_avg_visit_ms(tm_signaling *sig, const char *dept_id)
{
    double *avg = g_hash_table_lookup(sig->avg_ms, dept_id);
    return avg ? (int64_t)*avg : (int64_t)sig->cfg->avg_visit_s * 1000;
}

void tm__learn_visit_length(tm_signaling *sig, const char *dept, int64_t duration_ms)
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

/* By default one writer per core, up to four: the fan-out is bound by kernel
 * time per write, and more threads than cores only adds switching. */
unsigned tm__fanout_threads(const tm_config *cfg)
{
    if (cfg->fanout_threads > 0)
        return (unsigned)cfg->fanout_threads;
    unsigned n = g_get_num_processors();
    return n < 1 ? 1 : n > 4 ? 4 : n;
}

/* Adds a frame for s to the batch that write_fanout() sends in parallel.
 * A session with frames already queued gets this one queued behind them, as
 * does one without a socket (signaling_testing.h). */
static void add_to_fanout(tm_signaling *sig, session *s, const char *text, size_t len)
{
    if (!s || s->closing)
        return;
    if (!s->wsi || !g_queue_is_empty(&s->outq) || len > TM_FANOUT_MAX_TEXT) {
        tm__send_text(s, text, len);
        return;
    }
    if (sig->fan_n == sig->fan_cap) {
        size_t cap = sig->fan_cap ? sig->fan_cap * 2 : 256;
        tm_fanout_item *items = realloc(sig->fan_items, cap * sizeof(*items));
        if (!items) {
            tm__send_text(s, text, len);
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
    tm__histogram_observe(tm__push_bounds_s, TM_ARRAY_LEN(tm__push_bounds_s), sig->push_buckets,
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
            tm__send_text(s, (const char *)it->buf + LWS_PRE, it->len);
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

/* One queue.position push per waiting patient whose position or estimate
 * moved (position_text.h says why by hand). */
static void push_positions(tm_signaling *sig, const char *dept)
{
    int64_t now = tm_now_ms();
    size_t len = tm_queue_length(sig->queue, dept);
    if (len == 0)
        return;
    const char **ids = g_new(const char *, len);
    size_t n = tm_queue_ordered(sig->queue, dept, now, ids, len);
    int doctors = tm__doctors_for_estimate(sig, dept);
    int64_t avg = tm_signaling_avg_visit_ms(sig, dept);
    tm__position_dept pd;
    tm__position_dept_init(&pd, (int)n, doctors,
                           tm__shifts_dept_next_start(sig->shifts, dept, now));
    for (size_t i = 0; i < n; i++) {
        live_visit *v = g_hash_table_lookup(sig->visits, ids[i]);
        if (!v || v->state != TM_VS_WAITING)
            continue;
        int position = (int)i + 1;
        int64_t est = tm_queue_estimate_wait_ms(position, doctors, avg);
        int64_t est_s = est < 0 ? -1 : (est + 999) / 1000;
        if (position == v->last_position && !estimate_moved(v->last_estimate_s, est_s))
            continue;
        user *p = tm__visit_patient(sig, v);
        if (!p || !p->sess)
            continue;
        v->last_position = position;
        v->last_estimate_s = est_s;
        char text[512];
        size_t text_len = tm__position_format(&pd, v->id, position, est_s, text, sizeof(text));
        if (text_len == 0) {
            tm_warn("queue.position_unformattable", "visit=%s", v->id);
            continue;
        }
        add_to_fanout(sig, p->sess, text, text_len);
    }
    g_free(ids);
}

void tm__flush_positions(tm_signaling *sig)
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

static gboolean offer_timed_out(gpointer data);

typedef struct candidate_doc {
    user *u;
    tm_doctor_slot slot;
} candidate_doc;

/* What the doctor offered a transferred visit learns: who handed it on and why. */
static json_t *transfer_of(const live_visit *v)
{
    if (!v->transferred_from[0])
        return json_null();
    return json_pack("{s:s, s:s}", "from_doctor_id", v->transferred_from, "reason",
                     v->transfer_reason);
}

int tm__offer_visit(tm_signaling *sig, live_visit *v, user *d)
{
    int64_t now = tm_now_ms();
    if (!tm__advance(v, TM_VEV_OFFER, false))
        return TM_ECONFLICT;
    int rc = tm_store_visit_offer(sig->store, v->id, d->sub, now);
    if (rc == TM_ECONFLICT) { /* another node offered it first */
        tm_info("visit.offer_lost", "visit=%s doctor=%s", v->id, d->sub);
        tm__cluster_follow_store(sig, v); /* or this node missed that news */
        return rc;
    }
    if (rc < 0) {
        tm_error("visit.offer_failed", "visit=%s doctor=%s err=%s", v->id, d->sub, tm_strerror(rc));
        return rc;
    }
    tm__advance(v, TM_VEV_OFFER, true);
    g_strlcpy(v->doctor_id, d->sub, sizeof(v->doctor_id));
    v->offered_ms = now;
    g_strlcpy(d->offer_visit, v->id, sizeof(d->offer_visit));
    guint secs = (guint)sig->cfg->offer_timeout_s;
    v->offer_timer = g_timeout_add_seconds(secs, offer_timed_out, v);
    user *p = tm__visit_patient(sig, v);
    json_t *m = json_pack("{s:s, s:s, s:s, s:s, s:b, s:I, s:i}", "type", "visit.offer", "visit_id",
                          v->id, "dept", v->dept, "kind", v->kind, "urgent", v->urgent, "waited_s",
                          (json_int_t)((now - v->checkin_ms) / 1000), "expires_in_s", (int)secs);
    json_object_set_new(
        m, "patient",
        json_pack("{s:s, s:s}", "id", v->patient_sub, "name", p && p->name[0] ? p->name : ""));
    json_object_set_new(m, "appointment", json_boolean(v->has_appt));
    json_object_set_new(m, "transfer", transfer_of(v));
    tm__send_to_user(d, m);
    tm__push_visit_state(sig, v, v->id, p, NULL);
    tm_info("visit.offered", "visit=%s doctor=%s dept=%s", v->id, d->sub, v->dept);
    tm__mark_dept_dirty(sig, v->dept);
    return 0;
}

static bool declined_recently(tm_signaling *sig, live_visit *v, const char *doctor_id)
{
    gint64 *when = g_hash_table_lookup(v->declined, doctor_id);
    /* A doctor who declined is not asked about the same patient again for a
     * while, or a lone doctor's decline would bounce straight back. */
    return when && tm_now_ms() - *when < (int64_t)sig->cfg->offer_timeout_s * 2000;
}

/* Offers waiting patients of dept to free doctors, in queue order; none
 * on a draining node, which starts no visit. */
void tm__dispatch_dept(tm_signaling *sig, const char *dept)
{
    if (sig->draining)
        return;
    GArray *docs = g_array_new(FALSE, FALSE, sizeof(candidate_doc));
    GHashTableIter it;
    gpointer key, val;
    g_hash_table_iter_init(&it, sig->staff);
    while (g_hash_table_iter_next(&it, &key, &val)) {
        user *u = val;
        if (!takes_patients(u) || !u->sess || u->status != DOC_AVAILABLE || u->offer_visit[0] ||
            u->moved_away)
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
        /* A mirror's patient is connected to another node (cluster_sync.c);
         * the store's conditional offer decides if two nodes offer at once. */
        user *p = v->remote ? NULL : tm__visit_patient(sig, v);
        if ((!v->remote && (!p || !p->sess)) || (v->remote && v->patient_away))
            continue; /* keeps the place, but no doctor waits for someone not there */
        for (guint k = 0; k < docs->len; k++) {
            slots[k] = g_array_index(docs, candidate_doc, k).slot;
            if (declined_recently(sig, v, slots[k].doctor_id) ||
                strcmp(v->transferred_from, slots[k].doctor_id) == 0)
                slots[k].available = false;
        }
        int pick = tm_pairing_pick(slots, docs->len);
        if (pick < 0)
            continue;
        /* A doctor offered nothing (the store refused this visit) stays
         * free for the next one, or a stuck head would use them up. */
        if (tm__offer_visit(sig, v, g_array_index(docs, candidate_doc, pick).u) == 0)
            g_array_remove_index(docs, (guint)pick);
    }
    g_free(slots);
    g_free(order);
    g_array_free(docs, TRUE);
}

static void collect_dept(const char *dept, void *array)
{
    g_ptr_array_add(array, g_strdup(dept));
}

void tm__dispatch_all(tm_signaling *sig)
{
    /* Collect first: dispatching does not mutate departments, but a copy
     * keeps the iteration independent of the queue's internals. */
    GPtrArray *depts = g_ptr_array_new_with_free_func(g_free);
    tm_queue_foreach_dept(sig->queue, collect_dept, depts);
    for (guint i = 0; i < depts->len; i++)
        tm__dispatch_dept(sig, g_ptr_array_index(depts, i));
    g_ptr_array_free(depts, TRUE);
}

/* The offer of v is over (declined, timed out or withdrawn): back to the
 * head of the queue. */
void tm__unoffer(tm_signaling *sig, live_visit *v, const char *outcome)
{
    tm_visit_event ev = strcmp(outcome, "timeout") == 0 ? TM_VEV_OFFER_TIMEOUT : TM_VEV_DECLINE;
    /* The doctor's accept is with the store: it decides (accept_done). */
    if (v->accepting || !tm__advance(v, ev, false))
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
    user *d = tm__visit_doctor(sig, v);
    if (d && strcmp(d->offer_visit, v->id) == 0)
        d->offer_visit[0] = 0;
    gint64 *when = g_new(gint64, 1);
    *when = tm_now_ms();
    g_hash_table_replace(v->declined, g_strdup(v->doctor_id), when);
    if (d)
        tm__send_to_user(d, json_pack("{s:s, s:s, s:s}", "type", "visit.offer_cancelled",
                                      "visit_id", v->id, "reason", outcome));
    tm_info("visit.unoffered", "visit=%s doctor=%s outcome=%s", v->id, v->doctor_id, outcome);
    tm__advance(v, ev, true);
    v->doctor_id[0] = 0;
    v->last_position = -1;
    tm_queue_return_to_head(sig->queue, v->id);
    user *p = tm__visit_patient(sig, v);
    tm__push_visit_state(sig, v, v->id, p, NULL);
    tm__mark_dept_dirty(sig, v->dept);
    /* Waiting again on a draining node, which offers nobody: move on. */
    if (p && p->sess)
        tm__drain_turn_away(sig, p->sess);
}

static gboolean offer_timed_out(gpointer data)
{
    /* The visit removes this timer when it goes, so it is still here. */
    live_visit *v = data;
    tm_signaling *sig = v->sig;
    if (v->accepting) /* the accept came in time: its completion stops this */
        return G_SOURCE_CONTINUE;
    v->offer_timer = 0;
    user *d = tm__visit_doctor(sig, v);
    tm__remember_alert(sig, json_pack("{s:s, s:s, s:s}", "kind", "offer_timeout", "visit_id", v->id,
                                      "doctor_id", v->doctor_id));
    tm__unoffer(sig, v, "timeout");
    /* A doctor who lets an offer lapse is probably not at the desk: set
     * them away so the next patient is not offered to an empty chair. */
    if (d && d->status == DOC_AVAILABLE) {
        d->status = DOC_AWAY;
        tm__send_to_user(d, json_pack("{s:s, s:s, s:s}", "type", "doctor.status", "status", "away",
                                      "reason", "offer_timeout"));
    }
    tm__dispatch_dept(sig, v->dept);
    tm__flush_positions(sig);
    return G_SOURCE_REMOVE;
}

/* Once a second: expired tokens, slots that have come, shifts that began,
 * quality figures. */
gboolean tm__tick(gpointer data)
{
    tm_signaling *sig = data;
    tm__auth_expire_sessions(sig, tm_now_ms());
    tm__cluster_publish_duty(sig);
    tm__dispatch_all(sig);
    GPtrArray *depts = g_ptr_array_new_with_free_func(g_free);
    tm_queue_foreach_dept(sig->queue, collect_dept, depts);
    note_queue_change(sig);
    for (guint i = 0; i < depts->len; i++)
        g_hash_table_add(sig->dirty_depts, g_strdup(g_ptr_array_index(depts, i)));
    g_ptr_array_free(depts, TRUE);
    tm__flush_positions(sig);
    tm__media_health_tick(sig, tm_now_ms());
    sig->overview_dirty = true;
    tm__overview_push_now(sig);
    return G_SOURCE_CONTINUE;
}

/* The checkin result carries what a queue.position push would, so the
 * waiting room shows every figure at once. *est_s gets the estimate (-1
 * when unknown). */
static json_t *checkin_result(tm_signaling *sig, const tm_visit *v, int position, int64_t *est_s)
{
    int64_t now = tm_now_ms();
    int doctors = tm__doctors_for_estimate(sig, v->dept_id);
    int64_t est =
        tm_queue_estimate_wait_ms(position, doctors, tm_signaling_avg_visit_ms(sig, v->dept_id));
    *est_s = est < 0 ? -1 : (est + 999) / 1000;
    json_t *data = json_pack(
        "{s:s, s:s, s:i, s:i, s:i}", "visit_id", v->id, "dept", v->dept_id, "position", position,
        "waiting", (int)tm_queue_length(sig->queue, v->dept_id), "doctors_on_duty", doctors);
    json_object_set_new(data, "estimated_wait_s", *est_s < 0 ? json_null() : json_integer(*est_s));
    int64_t next = tm__shifts_dept_next_start(sig->shifts, v->dept_id, now);
    json_object_set_new(data, "next_shift_at", tm__time_json(next));
    return data;
}

/* A check-in with the store (store_queue.h): the visit is created off the
 * loop, and joins the queue here when the store has it. */
typedef struct checkin_step {
    tm_signaling *sig;
    tm__waiter w;
    tm_visit v;
    char ua[160];
} checkin_step;

static void checkin_step_free(gpointer p)
{
    checkin_step *c = p;
    tm__waiter_clear(&c->w);
    g_free(c);
}

static int checkin_work(tm_store *s, void *data)
{
    checkin_step *c = data;
    return tm_store_visit_checkin(s, &c->v, c->ua);
}

static void checkin_done(void *data, int rc, const char *errmsg)
{
    (void)errmsg;
    checkin_step *c = data;
    tm_signaling *sig = c->sig;
    request req;
    request *r = &req;
    user *u = tm__waiter_done(sig, &c->w, r);
    u->checkin_pending = false;
    if (rc < 0) {
        tm__step_reply_err(r, rc, "check-in failed");
        tm__maybe_forget_user(sig, u);
        return;
    }
    tm_visit v = c->v;
    live_visit *lv = tm__live_visit_add(sig, &v);
    tm__queue_add(sig, lv);
    tm__cluster_hosts(sig, lv);
    g_strlcpy(u->visit_id, v.id, sizeof(u->visit_id));
    u->last_visit_id[0] = 0;
    tm_info("visit.checked_in", "visit=%s patient=%s dept=%s urgent=%d appt=%d consent=%s", v.id,
            u->sub, v.dept_id, v.urgent, lv->has_appt,
            v.consent_version[0] ? v.consent_version : "-");
    if (sig->feed)
        tm_feed_kick(sig->feed);
    int position = tm_queue_position(sig->queue, v.id, tm_now_ms());
    int64_t est_s = -1;
    tm__step_reply_ok(r, checkin_result(sig, &v, position, &est_s));
    lv->last_position = position;
    lv->last_estimate_s = est_s;
    /* A patient who left while the store worked has the grace period to
     * come back, as one who leaves after check-in. */
    if (!u->sess && !u->grace_timer)
        tm__user_start_grace(sig, u);
    tm__mark_dept_dirty(sig, v.dept_id);
    tm__dispatch_dept(sig, v.dept_id);
    tm__flush_positions(sig);
}

static void handle_checkin(request *r)
{
    if (!tm__need_role(r, TM_ROLE_PATIENT, TM_ROLE_PATIENT))
        return;
    tm_signaling *sig = r->sig;
    user *u = r->u;
    if (sig->draining) { /* the page moves to another node (docs/protocol.md) */
        tm__reply_err(r->s, r->id, TM_EDRAINING, NULL);
        return;
    }
    if (u->visit_id[0] || u->checkin_pending) {
        tm__reply_err(r->s, r->id, TM_ECONFLICT, "already checked in");
        return;
    }
    tm_visit v = {0};
    g_strlcpy(v.patient_id, u->sub, sizeof(v.patient_id));
    v.checkin_ms = tm_now_ms();
    json_t *urgent = json_object_get(r->msg, "urgent");
    if (urgent && !json_is_boolean(urgent)) {
        tm__reply_err(r->s, r->id, TM_EINVAL, "urgent must be a boolean");
        return;
    }
    v.urgent = json_is_true(urgent);
    const char *appt_id = tm__jstr(r->msg, "appointment_id");
    if (appt_id) {
        tm_appointment a;
        if (tm_store_appt_get(sig->store, appt_id, &a) < 0 || strcmp(a.patient_id, u->sub) != 0) {
            tm__reply_err(r->s, r->id, TM_ENOTFOUND, "no such appointment for this patient");
            return;
        }
        if (strcmp(a.status, "booked") != 0) {
            tm__reply_err(r->s, r->id, TM_ECONFLICT, "appointment is not booked");
            return;
        }
        g_strlcpy(v.appointment_id, a.id, sizeof(v.appointment_id));
        g_strlcpy(v.dept_id, a.dept_id, sizeof(v.dept_id));
        g_strlcpy(v.kind, a.kind, sizeof(v.kind));
        v.slot_ms = a.slot_ms;
    } else {
        const char *dept = tm__jstr(r->msg, "dept");
        const char *kind = tm__jstr(r->msg, "kind");
        if (!dept) {
            tm__reply_err(r->s, r->id, TM_EINVAL, "checkin needs appointment_id or dept");
            return;
        }
        int found = tm_store_dept_lookup(sig->store, dept);
        if (found <= 0) {
            tm__reply_err(r->s, r->id, found < 0 ? TM_EIO : TM_ENOTFOUND,
                          found < 0 ? NULL : "no such department");
            return;
        }
        if (json_object_get(r->msg, "kind") && !kind) {
            tm__reply_err(r->s, r->id, TM_EINVAL, "kind must be a string");
            return;
        }
        g_strlcpy(v.dept_id, dept, sizeof(v.dept_id));
        g_strlcpy(v.kind, kind ? kind : "follow_up", sizeof(v.kind));
        if (strcmp(v.kind, "follow_up") != 0 && strcmp(v.kind, "first") != 0) {
            tm__reply_err(r->s, r->id, TM_EINVAL, "kind must be follow_up or first");
            return;
        }
    }
    if (strcmp(v.kind, "first") == 0 && !sig->cfg->allow_first_visits) {
        /* Internet diagnosis is for follow-ups of a diagnosis made in person. */
        tm__reply_err(r->s, r->id, TM_EPERM,
                      "first visits are not allowed online at this hospital");
        return;
    }
    if (!tm__consent_checkin(r, &v))
        return;
    checkin_step *c = g_new0(checkin_step, 1);
    c->sig = sig;
    tm__waiter_init(&c->w, r);
    c->v = v;
    g_strlcpy(c->ua, r->s->ua, sizeof(c->ua));
    u->checkin_pending = true;
    tm_store_queue_post(sig->steps, checkin_work, checkin_done, c, checkin_step_free);
}

static void handle_queue_leave(request *r)
{
    if (!tm__need_role(r, TM_ROLE_PATIENT, TM_ROLE_PATIENT))
        return;
    live_visit *v = tm__requested_visit(r);
    if (!v)
        return;
    if (v->state == TM_VS_ACTIVE) {
        tm__reply_err(r->s, r->id, TM_ECONFLICT, "the visit has started; end it instead");
        return;
    }
    int rc = tm__finish_visit(r->sig, v, "patient_left", r->u->sub);
    if (rc < 0)
        tm__reply_err(r->s, r->id, rc, NULL);
    else
        tm__reply_ok(r->s, r->id, NULL);
    tm__flush_positions(r->sig);
}

json_t *tm__doctor_state_json(tm_signaling *sig, user *d)
{
    json_t *visits = json_array();
    for (guint i = 0; i < d->visits->len; i++)
        json_array_append_new(visits, json_string(g_ptr_array_index(d->visits, i)));
    json_t *shift = json_null();
    const tm__shift *sh = tm__shifts_current(sig->shifts, d->sub, NULL, tm_now_ms());
    if (sh)
        shift = json_pack("{s:s, s:i, s:o}", "dept", sh->dept, "capacity", sh->capacity, "ends_at",
                          tm__time_json(sh->end_ms));
    json_t *o = json_pack("{s:s, s:o, s:o}", "status", tm__doctor_status_names[d->status], "visits",
                          visits, "shift", shift);
    json_object_set_new(o, "offer", d->offer_visit[0] ? json_string(d->offer_visit) : json_null());
    return o;
}

static void handle_doctor_status(request *r)
{
    if (!tm__need_role(r, TM_ROLE_DOCTOR, TM_ROLE_DOCTOR))
        return;
    const char *status = tm__jstr(r->msg, "status");
    int st = -1;
    for (int i = 0; status && i < (int)TM_ARRAY_LEN(tm__doctor_status_names); i++)
        if (strcmp(status, tm__doctor_status_names[i]) == 0)
            st = i;
    if (st < 0) {
        tm__reply_err(r->s, r->id, TM_EINVAL, "status must be available, away or off_duty");
        return;
    }
    tm_doctor_info info;
    if (tm_store_doctor_get(r->sig->store, r->u->sub, &info) < 0) {
        tm__reply_err(r->s, r->id, TM_EPERM, "this doctor is not registered at the hospital");
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
            tm__unoffer(r->sig, v, "withdrawn");
    }
    tm_info("doctor.status", "doctor=%s status=%s", d->sub, tm__doctor_status_names[st]);
    json_t *data = tm__doctor_state_json(r->sig, d);
    json_object_set_new(data, "in_shift",
                        json_boolean(!json_is_null(json_object_get(data, "shift"))));
    tm__reply_ok(r->s, r->id, data);
    tm__mark_overview_dirty(r->sig);
    tm__dispatch_all(r->sig);
    /* Doctors on duty changed: every estimate changes. */
    tm__tick(r->sig);
}

/* A doctor sees the waiting room of their own departments: the one they are
 * registered in and those they have shifts in. Otherwise answers and false. */
static bool doctor_may_see(request *r, const char *dept)
{
    tm_doctor_info info;
    if (tm_store_doctor_get(r->sig->store, r->u->sub, &info) < 0) {
        tm__reply_err(r->s, r->id, TM_EPERM, "this doctor is not registered at the hospital");
        return false;
    }
    if (strcmp(info.dept_id, dept) == 0 || tm__shifts_has_dept(r->sig->shifts, r->u->sub, dept))
        return true;
    tm__reply_err(r->s, r->id, TM_EPERM, "not a department of yours");
    return false;
}

static void handle_doctor_queue(request *r)
{
    if (!tm__need_role(r, TM_ROLE_DOCTOR, TM_ROLE_SUPERVISOR))
        return;
    const char *dept = tm__jstr(r->msg, "dept");
    const tm__shift *sh = NULL;
    if (!dept && r->u->role == TM_ROLE_DOCTOR &&
        (sh = tm__shifts_current(r->sig->shifts, r->u->sub, NULL, tm_now_ms())))
        dept = sh->dept;
    if (!dept) {
        tm__reply_err(r->s, r->id, TM_EINVAL, "dept is required outside a shift");
        return;
    }
    if (r->u->role == TM_ROLE_DOCTOR && !doctor_may_see(r, dept))
        return;
    static const char *ids[1000];
    int64_t now = tm_now_ms();
    size_t n = tm_queue_ordered(r->sig->queue, dept, now, ids, TM_ARRAY_LEN(ids));
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        live_visit *v = g_hash_table_lookup(r->sig->visits, ids[i]);
        if (!v)
            continue;
        user *p = tm__visit_patient(r->sig, v);
        json_t *o =
            json_pack("{s:s, s:i, s:s, s:s, s:b, s:b, s:I, s:b}", "visit_id", v->id, "position",
                      (int)i + 1, "state", tm_visit_state_name(v->state), "kind", v->kind, "urgent",
                      v->urgent, "appointment", v->has_appt, "waited_s",
                      (json_int_t)((now - v->checkin_ms) / 1000), "connected", p && p->sess);
        json_object_set_new(o, "slot_at", tm__time_json(v->slot_ms));
        json_array_append_new(list, o);
    }
    json_t *figures = NULL;
    if (r->u->role == TM_ROLE_DOCTOR) {
        GDateTime *today = g_date_time_new_now_local();
        GDateTime *midnight =
            g_date_time_new_local(g_date_time_get_year(today), g_date_time_get_month(today),
                                  g_date_time_get_day_of_month(today), 0, 0, 0);
        tm_store_doctor_figures(r->sig->store, r->u->sub, g_date_time_to_unix(midnight) * 1000,
                                &figures);
        g_date_time_unref(midnight);
        g_date_time_unref(today);
    }
    json_t *data = json_pack("{s:s, s:o}", "dept", dept, "queue", list);
    if (figures)
        json_object_set_new(data, "today", figures);
    tm__reply_ok(r->s, r->id, data);
}

const tm__handler tm__lobby_handlers[] = {
    {"checkin", handle_checkin},
    {"queue.leave", handle_queue_leave},
    {"doctor.status", handle_doctor_status},
    {"doctor.queue", handle_doctor_queue},
    {NULL, NULL},
};

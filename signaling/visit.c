/*
 * visit.c - the people and the visits at run time: users (one per role and
 * sub, kept through a drop for the grace period), live visits and their
 * steps (accept, decline, end), and what happens inside a visit (chat, the
 * doctor's note, the patient's rating).
 *
 * Control loop. Every step goes to the store first (with its regulator event
 * in the same transaction) and is pushed to the participants only once it is
 * durable. A grace timer carries its user; the user's end removes it.
 */
#include "signaling_internal.h"
#include "telemed/log.h"

#include <stdio.h>
#include <string.h>

/* Longest chat message and note, in bytes. */
#define MAX_CHAT_BYTES 4000
#define MAX_NOTE_BYTES 32000

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

user *tm__find_user(tm_signaling *sig, tm_role role, const char *sub)
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

void tm__live_visit_free(gpointer p)
{
    live_visit *v = p;
    if (v->offer_timer)
        g_source_remove(v->offer_timer);
    if (v->offer_backstop)
        g_source_remove(v->offer_backstop);
    if (v->away_retry)
        g_source_remove(v->away_retry);
    g_hash_table_destroy(v->declined);
    g_ptr_array_free(v->watchers, TRUE);
    json_decref(v->quality);
    json_decref(v->summary);
    if (v->health)
        g_hash_table_destroy(v->health);
    g_ptr_array_free(v->party, TRUE);
    g_free(v);
}

live_visit *tm__live_visit_add(tm_signaling *sig, const tm_visit *rec)
{
    live_visit *v = g_new0(live_visit, 1);
    v->sig = sig;
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
    v->party = g_ptr_array_new_with_free_func(g_free);
    v->last_position = -1;
    v->last_estimate_s = -2;
    g_hash_table_insert(sig->visits, v->id, v);
    return v;
}

/* The visit state machine decides which steps a live visit may take; the
 * store enforces the same rule on the row. */
bool tm__advance(live_visit *v, tm_visit_event ev, bool apply)
{
    tm_visit_state next;
    if (tm_visit_transition(v->state, ev, &next) < 0)
        return false;
    if (apply)
        v->state = next;
    return true;
}

user *tm__visit_patient(tm_signaling *sig, live_visit *v)
{
    return tm__find_user(sig, TM_ROLE_PATIENT, v->patient_sub);
}

user *tm__visit_doctor(tm_signaling *sig, live_visit *v)
{
    return v->doctor_id[0] ? tm__find_user(sig, TM_ROLE_DOCTOR, v->doctor_id) : NULL;
}

/* The advice of a terminate_and_refer end, for the patient's end screen. */
static json_t *referral_advice_of(tm_signaling *sig, const tm_visit *rec)
{
    if (strcmp(rec->end_reason, "terminate_and_refer") != 0)
        return json_null();
    tm_visit_facts *f = g_new(tm_visit_facts, 1);
    json_t *advice = tm_store_visit_facts(sig->store, rec->id, f) == 0 && f->referral_advice[0]
                         ? json_string(f->referral_advice)
                         : json_null();
    g_free(f);
    return advice;
}

json_t *tm__visit_state_msg(tm_signaling *sig, const char *visit_id)
{
    tm_visit rec;
    if (tm_store_visit_get(sig->store, visit_id, &rec) < 0)
        return NULL;
    json_t *m = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b}", "type", "visit.state", "visit_id",
                          rec.id, "state", rec.state, "patient_id", rec.patient_id, "dept",
                          rec.dept_id, "kind", rec.kind, "urgent", rec.urgent);
    json_object_set_new(m, "doctor_id",
                        rec.doctor_id[0] ? json_string(rec.doctor_id) : json_null());
    json_object_set_new(m, "checkin_at", tm__time_json(rec.checkin_ms));
    json_object_set_new(m, "offered_at", tm__time_json(rec.offered_ms));
    json_object_set_new(m, "accepted_at", tm__time_json(rec.accepted_ms));
    json_object_set_new(m, "ended_at", tm__time_json(rec.ended_ms));
    json_object_set_new(m, "end_reason",
                        rec.end_reason[0] ? json_string(rec.end_reason) : json_null());
    json_object_set_new(m, "referral_advice", referral_advice_of(sig, &rec));
    return m;
}

void tm__push_visit_state(tm_signaling *sig, live_visit *v, const char *visit_id, user *patient,
                          user *doctor)
{
    json_t *m = tm__visit_state_msg(sig, visit_id);
    if (!m)
        return;
    if (patient)
        tm__send_to_user(patient, json_incref(m));
    if (doctor)
        tm__send_to_user(doctor, json_incref(m));
    if (v) {
        for (guint i = 0; i < v->watchers->len; i++)
            tm__send_to_user(g_hash_table_lookup(sig->users, g_ptr_array_index(v->watchers, i)),
                             json_incref(m));
        for (guint i = 0; i < v->party->len; i++)
            tm__send_to_user(g_hash_table_lookup(
                                 sig->users, ((party_member *)g_ptr_array_index(v->party, i))->key),
                             json_incref(m));
    }
    json_decref(m);
}

/* Ends (active) or cancels (waiting/offered) a live visit. */
int tm__finish_visit(tm_signaling *sig, live_visit *v, const char *reason, const char *by)
{
    return tm__finish_visit_with(sig, v, reason, by, NULL);
}

int tm__finish_visit_with(tm_signaling *sig, live_visit *v, const char *reason, const char *by,
                          const char *advice)
{
    int64_t now = tm_now_ms();
    if (!tm__advance(v, v->state == TM_VS_ACTIVE ? TM_VEV_END : TM_VEV_CANCEL, false))
        return TM_ECONFLICT;
    int rc = advice ? tm_store_visit_refer(sig->store, v->id, by, advice, now)
                    : tm_store_visit_end(sig->store, v->id, reason, by, now);
    if (rc < 0)
        return rc;
    char id[64], dept[64];
    g_strlcpy(id, v->id, sizeof(id));
    g_strlcpy(dept, v->dept, sizeof(dept));
    if (v->offer_timer) {
        g_source_remove(v->offer_timer);
        v->offer_timer = 0;
    }
    user *p = tm__visit_patient(sig, v);
    user *d = tm__visit_doctor(sig, v);
    if (d) {
        if (strcmp(d->offer_visit, id) == 0) {
            d->offer_visit[0] = 0;
            tm__send_to_user(d, json_pack("{s:s, s:s, s:s}", "type", "visit.offer_cancelled",
                                          "visit_id", id, "reason", reason));
        }
        if (doc_has_visit(d, id)) {
            doc_remove_visit(d, id);
            d->idle_since_ms = now;
        }
    }
    if (v->state == TM_VS_ACTIVE)
        tm__learn_visit_length(sig, dept, now - v->accepted_ms);
    tm__store_stats_summary(sig, v, now);
    tm__media_health_finish(sig, v, now);
    if (p && strcmp(p->visit_id, id) == 0) {
        p->visit_id[0] = 0;
        g_strlcpy(p->last_visit_id, id, sizeof(p->last_visit_id));
    }
    tm_queue_remove(sig->queue, id);
    tm__push_visit_state(sig, v, id, p, v->state == TM_VS_ACTIVE ? d : NULL);
    tm__party_visit_ended(sig, v);
    tm__watchers_notify_end(sig, v);
    if (sig->media)
        tm_media_visit_close(sig->media, id);
    tm_info("visit.finished", "visit=%s reason=%s by=%s", id, reason, by);
    g_hash_table_remove(sig->visits, id);
    if (sig->feed)
        tm_feed_kick(sig->feed);
    if (p)
        tm__maybe_forget_user(sig, p);
    if (d)
        tm__maybe_forget_user(sig, d);
    tm__mark_dept_dirty(sig, dept);
    tm__dispatch_dept(sig, dept);
    return 0;
}

void tm__user_free(gpointer p)
{
    user *u = p;
    if (u->grace_timer)
        g_source_remove(u->grace_timer);
    if (u->visits)
        g_ptr_array_free(u->visits, TRUE);
    if (u->watching)
        g_ptr_array_free(u->watching, TRUE);
    g_free(u);
}

user *tm__user_new(tm_signaling *sig, tm_role role, const char *sub)
{
    user *u = g_new0(user, 1);
    u->sig = sig;
    user_key(role, sub, u->key, sizeof(u->key));
    u->role = role;
    g_strlcpy(u->sub, sub, sizeof(u->sub));
    u->visits = g_ptr_array_new_with_free_func(g_free);
    u->watching = g_ptr_array_new_with_free_func(g_free);
    g_hash_table_insert(sig->users, u->key, u);
    if (role != TM_ROLE_PATIENT)
        g_hash_table_insert(sig->staff, u->key, u);
    return u;
}

/* Drops a user who has nothing left to come back to. */
void tm__maybe_forget_user(tm_signaling *sig, user *u)
{
    if (u->sess || u->grace_timer || u->visit_id[0] || u->offer_visit[0] ||
        (u->visits && u->visits->len) || u->last_visit_id[0] || u->steps_pending)
        return;
    g_hash_table_remove(sig->staff, u->key);
    g_hash_table_remove(sig->users, u->key);
}

static gboolean grace_expired(gpointer data)
{
    /* The user removes this timer when it goes, so it is still here. The
     * timer stays set until the end: it keeps the visits' ends below from
     * forgetting this user while we still use it. */
    user *u = data;
    tm_signaling *sig = u->sig;
    if (u->sess) {
        u->grace_timer = 0;
        return G_SOURCE_REMOVE;
    }
    tm_info("user.grace_expired", "user=%s", u->key);
    if (u->role == TM_ROLE_PATIENT && u->visit_id[0]) {
        live_visit *v = g_hash_table_lookup(sig->visits, u->visit_id);
        /* A patient a drain sent on keeps their wait: the nodes sharing the
         * store serve it, and this one offers nobody (drain.c). */
        bool sent_on = sig->draining && v && v->state == TM_VS_WAITING;
        if (v && !sent_on)
            tm__finish_visit(sig, v, "grace_expired", "system");
    } else if (u->role == TM_ROLE_GUEST && u->visit_id[0]) {
        live_visit *v = g_hash_table_lookup(sig->visits, u->visit_id);
        if (!v || tm__party_leave(sig, v, u, "grace_expired") < 0)
            u->visit_id[0] = 0;
    } else if (u->role == TM_ROLE_DOCTOR) {
        /* The attending doctor's absence ends the visit; an invited one's
         * only takes them out of it. */
        while (u->visits->len) {
            live_visit *v = g_hash_table_lookup(sig->visits, g_ptr_array_index(u->visits, 0));
            if (v && tm__party_member(v, u)) {
                if (tm__party_leave(sig, v, u, "grace_expired") == 0)
                    continue;
                v = NULL;
            }
            if (!v) {
                g_ptr_array_remove_index(u->visits, 0);
                continue;
            }
            tm__finish_visit(sig, v, "grace_expired", "system");
        }
        u->status = DOC_OFF_DUTY;
    }
    u->last_visit_id[0] = 0;
    u->grace_timer = 0;
    tm__flush_positions(sig);
    tm__maybe_forget_user(sig, u);
    return G_SOURCE_REMOVE;
}

void tm__user_start_grace(tm_signaling *sig, user *u)
{
    u->disconnected_ms = tm_now_ms();
    u->grace_timer = g_timeout_add_seconds((guint)sig->cfg->grace_s, grace_expired, u);
}

/* visit.participant (kept from two-party visits) to every other
 * participant, then the whole list to everyone. */
void tm__notify_peer_presence(tm_signaling *sig, live_visit *v, user *who, bool connected)
{
    json_t *m =
        json_pack("{s:s, s:s, s:s, s:s, s:b}", "type", "visit.participant", "visit_id", v->id,
                  "role", tm_role_name(who->role), "id", who->sub, "connected", connected);
    if (!connected)
        json_object_set_new(m, "grace_s", json_integer(sig->cfg->grace_s));
    user *p = tm__visit_patient(sig, v), *d = tm__visit_doctor(sig, v);
    if (p != who)
        tm__send_to_user(p, json_incref(m));
    if (d != who)
        tm__send_to_user(d, json_incref(m));
    for (guint i = 0; i < v->party->len; i++) {
        user *u =
            g_hash_table_lookup(sig->users, ((party_member *)g_ptr_array_index(v->party, i))->key);
        if (u != who)
            tm__send_to_user(u, json_incref(m));
    }
    json_decref(m);
    if (v->state == TM_VS_ACTIVE)
        tm__party_push(sig, v);
}

/* The user's socket went away: hold their place for the grace period. */
void tm__user_detach(tm_signaling *sig, user *u)
{
    int64_t now = tm_now_ms();
    u->sess = NULL;
    u->disconnected_ms = now;
    tm__overview_end(sig, u, "disconnected");
    if (u->watching->len)
        tm__stop_watching(sig, u, NULL, "disconnected");
    if (u->role == TM_ROLE_DOCTOR && u->offer_visit[0]) {
        /* Nobody answers an offer to a dropped doctor; give the patient back. */
        live_visit *v = g_hash_table_lookup(sig->visits, u->offer_visit);
        if (v)
            tm__unoffer(sig, v, "withdrawn");
        u->offer_visit[0] = 0;
    }
    bool holds = ((u->role == TM_ROLE_PATIENT || u->role == TM_ROLE_GUEST) && u->visit_id[0]) ||
                 (u->role == TM_ROLE_DOCTOR && u->visits->len);
    if (holds) {
        if (u->role == TM_ROLE_GUEST) {
            live_visit *v = g_hash_table_lookup(sig->visits, u->visit_id);
            if (v)
                tm__party_presence(sig, v, u, false);
        } else if (u->role == TM_ROLE_PATIENT) {
            live_visit *v = g_hash_table_lookup(sig->visits, u->visit_id);
            if (v && v->state == TM_VS_ACTIVE) {
                tm_store_participant_leave(sig->store, v->id, u->sub, "disconnected", now);
                tm__notify_peer_presence(sig, v, u, false);
            }
        } else {
            for (guint i = 0; i < u->visits->len; i++) {
                live_visit *v = g_hash_table_lookup(sig->visits, g_ptr_array_index(u->visits, i));
                if (v && tm__party_member(v, u)) {
                    tm__party_presence(sig, v, u, false);
                } else if (v) {
                    tm_store_participant_leave(sig->store, v->id, u->sub, "disconnected", now);
                    tm__notify_peer_presence(sig, v, u, false);
                }
            }
        }
        tm__user_start_grace(sig, u);
        tm_info("user.disconnected", "user=%s grace_s=%d", u->key, sig->cfg->grace_s);
    } else {
        if (u->role == TM_ROLE_DOCTOR)
            u->status = DOC_OFF_DUTY;
        /* A patient whose visit just ended may come back to rate it. */
        if (u->last_visit_id[0])
            tm__user_start_grace(sig, u);
    }
    tm__mark_overview_dirty(sig);
    tm__maybe_forget_user(sig, u);
}

live_visit *tm__member_visit(request *r, const char *visit_id, int *err)
{
    if (!visit_id) {
        *err = TM_EINVAL;
        return NULL;
    }
    live_visit *v = g_hash_table_lookup(r->sig->visits, visit_id);
    if (!v) {
        tm_visit rec;
        *err = tm_store_visit_get(r->sig->store, visit_id, &rec) == 0 ? TM_ECONFLICT : TM_ENOTFOUND;
        char role[16];
        if (*err == TM_ECONFLICT &&
            !((r->u->role == TM_ROLE_PATIENT && strcmp(rec.patient_id, r->u->sub) == 0) ||
              (r->u->role == TM_ROLE_DOCTOR && strcmp(rec.doctor_id, r->u->sub) == 0) ||
              (r->u->role != TM_ROLE_PATIENT &&
               tm_store_party_role(r->sig->store, visit_id, r->u->sub, role) == 0)))
            *err = TM_EPERM;
        return NULL;
    }
    if (tm__party_role(r->sig, v, r->u) == TM_VR_NONE) {
        *err = TM_EPERM;
        return NULL;
    }
    return v;
}

/* The live visit the request names, if the sender is one of its
 * participants; otherwise the error is answered and NULL returned. */
live_visit *tm__requested_visit(request *r)
{
    int err = 0;
    live_visit *v = tm__member_visit(r, tm__jstr(r->msg, "visit_id"), &err);
    if (!v)
        tm__reply_err(r->s, r->id, err, NULL);
    return v;
}

static live_visit *offered_to_me(request *r)
{
    const char *visit_id = tm__jstr(r->msg, "visit_id");
    live_visit *v = visit_id ? g_hash_table_lookup(r->sig->visits, visit_id) : NULL;
    if (!visit_id) {
        tm__reply_err(r->s, r->id, TM_EINVAL, "visit_id is required");
        return NULL;
    }
    if (!v || !tm__advance(v, TM_VEV_ACCEPT, false) || strcmp(v->doctor_id, r->u->sub) != 0) {
        tm__reply_err(r->s, r->id, v ? TM_ECONFLICT : TM_ENOTFOUND,
                      "no open offer of this visit for you");
        return NULL;
    }
    if (v->accepting) {
        tm__reply_err(r->s, r->id, TM_ECONFLICT, "your accept of this visit is under way");
        return NULL;
    }
    return v;
}

/* An accept with the store (store_queue.h): the visit starts off the loop,
 * and here once the store has it. */
typedef struct accept_step {
    tm_signaling *sig;
    tm__waiter w;
    char visit_id[64];
    char doctor_id[128];
    char ua[160];
    tm_doctor_check check;
    bool checked;
    char node[64]; /* the node that runs the visit, "" this one's choice */
    int64_t now;
} accept_step;

static void accept_step_free(gpointer p)
{
    accept_step *a = p;
    tm__waiter_clear(&a->w);
    g_free(a);
}

static int accept_work(tm_store *s, void *data)
{
    accept_step *a = data;
    return tm_store_visit_accept_on(s, a->visit_id, a->doctor_id, a->ua,
                                    a->checked ? &a->check : NULL, a->node[0] ? a->node : NULL,
                                    a->now);
}

/* The accept failed: the offer stands, unless its doctor went away or
 * offline while the store worked (tm__unoffer waited for this answer). */
static void accept_refused(tm_signaling *sig, live_visit *v, user *d)
{
    if (!v || v->state != TM_VS_OFFERED || strcmp(v->doctor_id, d->sub) != 0)
        return;
    if (d->sess && d->status == DOC_AVAILABLE)
        return;
    tm__unoffer(sig, v, "withdrawn");
    tm__dispatch_dept(sig, v->dept);
    tm__flush_positions(sig);
}

static void accept_done(void *data, int rc, const char *errmsg)
{
    (void)errmsg;
    accept_step *a = data;
    tm_signaling *sig = a->sig;
    request req;
    request *r = &req;
    user *u = tm__waiter_done(sig, &a->w, r);
    live_visit *v = g_hash_table_lookup(sig->visits, a->visit_id);
    if (v)
        v->accepting = false;
    if (rc < 0) {
        tm__step_reply_err(r, rc, "accept failed");
        accept_refused(sig, v, u);
        tm__maybe_forget_user(sig, u);
        return;
    }
    if (!v || v->state != TM_VS_OFFERED || strcmp(v->doctor_id, u->sub) != 0) {
        /* Ended here while the store started it (the patient left): the
         * end found it active and ended it, so there is no visit to join. */
        tm__step_reply_err(r, TM_ECONFLICT, "the visit ended");
        tm__maybe_forget_user(sig, u);
        return;
    }
    int64_t now = a->now;
    const tm_doctor_check *check = a->checked ? &a->check : NULL;
    if (v->offer_timer) {
        g_source_remove(v->offer_timer);
        v->offer_timer = 0;
    }
    tm__advance(v, TM_VEV_ACCEPT, true);
    v->accepted_ms = now;
    u->offer_visit[0] = 0;
    tm__histogram_observe(tm__resp_bounds_s, TM_ARRAY_LEN(tm__resp_bounds_s), sig->resp_buckets,
                          &sig->resp_sum_s, &sig->resp_count,
                          (double)(now - v->checkin_ms) / 1000.0);
    tm_info("visit.started", "visit=%s doctor=%s response_ms=%lld verified=%s", v->id, u->sub,
            (long long)(now - v->checkin_ms), check ? check->method : "off");
    if (sig->feed)
        tm_feed_kick(sig->feed);
    /* A doctor who left while the store worked has the grace period to
     * come back, as one who leaves during a visit. */
    if (!u->sess && !u->grace_timer)
        tm__user_start_grace(sig, u);
    if (!tm__cluster_visit_started(sig, v, a->node)) {
        /* It runs on its patient's node: the doctor goes there. */
        tm__step_reply_ok(r, json_pack("{s:s}", "visit_id", v->id));
        tm__cluster_hand_over(sig, v, u);
        return;
    }
    tm__visit_begin(sig, v, u);
    tm__step_reply_ok(r, json_pack("{s:s}", "visit_id", v->id));
    tm__visit_announce(sig, v, u);
}

/* The doctor proved who they are (check, NULL when checks are off): the
 * visit starts, if it is still offered to them. */
static void accept_checked(request *r, const tm_doctor_check *check)
{
    live_visit *v = offered_to_me(r);
    if (!v)
        return;
    accept_step *a = g_new0(accept_step, 1);
    a->sig = r->sig;
    tm__waiter_init(&a->w, r);
    g_strlcpy(a->visit_id, v->id, sizeof(a->visit_id));
    g_strlcpy(a->doctor_id, r->u->sub, sizeof(a->doctor_id));
    g_strlcpy(a->ua, r->s->ua, sizeof(a->ua));
    if (check) {
        a->check = *check;
        a->checked = true;
    }
    tm__cluster_accept_node(r->sig, v, a->node);
    a->now = tm_now_ms();
    v->accepting = true;
    tm_store_queue_post(r->sig->steps, accept_work, accept_done, a, accept_step_free);
}

void tm__visit_begin(tm_signaling *sig, live_visit *v, user *d)
{
    g_ptr_array_add(d->visits, g_strdup(v->id));
    tm_queue_remove(sig->queue, v->id);
    /* After a transfer the recording runs on: the new doctor's streams
     * start its next part (media.h, late joiners). */
    if (!v->transfers)
        tm_visit_record_start(sig->record, v->id);
    char key[200];
    snprintf(key, sizeof(key), "patient:%s", v->patient_sub);
    tm__party_label(sig, v, key, TM_VR_PATIENT);
    tm__party_label(sig, v, d->key, TM_VR_ATTENDING);
}

void tm__visit_announce(tm_signaling *sig, live_visit *v, user *d)
{
    tm__push_visit_state(sig, v, v->id, tm__visit_patient(sig, v), d);
    if (v->party->len)
        tm__party_push(sig, v); /* after a transfer: the party meets its new attending */
    tm__consult_visit_started(sig, v);
    tm__mark_dept_dirty(sig, v->dept);
    tm__flush_positions(sig);
}

static void handle_visit_accept(request *r)
{
    if (!tm__need_role(r, TM_ROLE_DOCTOR, TM_ROLE_DOCTOR))
        return;
    live_visit *v = offered_to_me(r);
    if (v)
        tm__doctor_check(r, v, accept_checked);
}

static void handle_visit_decline(request *r)
{
    if (!tm__need_role(r, TM_ROLE_DOCTOR, TM_ROLE_DOCTOR))
        return;
    live_visit *v = offered_to_me(r);
    if (!v)
        return;
    tm__unoffer(r->sig, v, "declined");
    tm__reply_ok(r->s, r->id, NULL);
    tm__dispatch_dept(r->sig, v->dept);
    tm__flush_positions(r->sig);
}

/* terminate_and_refer ends the online visit and sends the patient to be
 * seen in person (诊疗管理办法 Art. 16): only the attending doctor may, and
 * only with advice saying where and why; other reasons take no advice.
 * Sets *advice (borrowed from the message, NULL for other reasons), or
 * answers the error and returns false. */
static bool referral_advice(request *r, const char *reason, const char **advice)
{
    json_t *a = json_object_get(r->msg, "advice");
    *advice = NULL;
    if (strcmp(reason, "terminate_and_refer") != 0) {
        if (a)
            tm__reply_err(r->s, r->id, TM_EINVAL, "advice goes with terminate_and_refer only");
        return !a;
    }
    if (r->u->role != TM_ROLE_DOCTOR) {
        tm__reply_err(r->s, r->id, TM_EPERM, "only the doctor terminates and refers a visit");
        return false;
    }
    const char *text = json_string_value(a);
    if (!text || !text[0] || strlen(text) > TM_REFERRAL_ADVICE_MAX) {
        tm__reply_err(r->s, r->id, TM_EINVAL,
                      "terminate_and_refer needs advice: where to be seen and why (1 to 2000 "
                      "bytes)");
        return false;
    }
    *advice = text;
    return true;
}

static void handle_visit_end(request *r)
{
    live_visit *v = tm__requested_visit(r);
    if (!v)
        return;
    if (!tm__party_may(tm__party_role(r->sig, v, r->u), TM_ACT_END)) {
        tm__reply_err(r->s, r->id, TM_EPERM, "your role in this visit does not allow it");
        return;
    }
    const char *reason = tm__jstr(r->msg, "reason");
    if (!reason)
        reason = r->u->role == TM_ROLE_DOCTOR ? "completed" : "patient_left";
    if (!tm_visit_end_reason_valid(reason)) {
        tm__reply_err(r->s, r->id, TM_EINVAL, "unknown end reason");
        return;
    }
    const char *advice;
    if (!referral_advice(r, reason, &advice))
        return;
    if (v->state != TM_VS_ACTIVE) {
        tm__reply_err(r->s, r->id, TM_ECONFLICT, "the visit is not active");
        return;
    }
    char id[64];
    g_strlcpy(id, v->id, sizeof(id));
    int rc = tm__finish_visit_with(r->sig, v, reason, r->u->sub, advice);
    if (rc < 0)
        tm__reply_err(r->s, r->id, rc, NULL);
    else
        tm__reply_ok(r->s, r->id, json_pack("{s:s}", "visit_id", id));
    tm__flush_positions(r->sig);
}

static void handle_chat(request *r)
{
    live_visit *v = tm__requested_visit(r);
    if (!v)
        return;
    if (!tm__party_may(tm__party_role(r->sig, v, r->u), TM_ACT_CHAT)) {
        tm__reply_err(r->s, r->id, TM_EPERM, "your role in this visit does not allow it");
        return;
    }
    const char *text = tm__jstr(r->msg, "text");
    if (!text || !*text || strlen(text) > MAX_CHAT_BYTES) {
        tm__reply_err(r->s, r->id, TM_EINVAL, "text must be 1 to 4000 bytes");
        return;
    }
    if (v->state != TM_VS_ACTIVE) {
        tm__reply_err(r->s, r->id, TM_ECONFLICT, "chat is open during the visit");
        return;
    }
    int64_t now = tm_now_ms(), msg_id = 0;
    int rc = tm_store_chat_add(r->sig->store, v->id, r->u->sub, tm_role_name(r->u->role), text, now,
                               &msg_id);
    if (rc < 0) {
        tm__reply_err(r->s, r->id, rc, NULL);
        return;
    }
    tm__reply_ok(r->s, r->id, json_pack("{s:I}", "message_id", (json_int_t)msg_id));
    json_t *m = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:o}", "type", "chat.message", "visit_id",
                          v->id, "message_id", (json_int_t)msg_id, "from", r->u->sub, "from_role",
                          tm_role_name(r->u->role), "text", text, "at", tm__time_json(now));
    tm__party_send_all(r->sig, v, m);
}

/* Visits a doctor may write about: their live visit, or one they ended. */
static int doctor_visit(request *r, const char *visit_id, tm_visit *rec)
{
    if (!visit_id)
        return TM_EINVAL;
    int rc = tm_store_visit_get(r->sig->store, visit_id, rec);
    if (rc < 0)
        return rc;
    char role[16] = "";
    /* The attending writes the note; a consulting doctor their own addendum;
     * a doctor who attended before a transfer the note of their part. */
    bool attends = strcmp(rec->doctor_id, r->u->sub) == 0;
    if (!attends && !(tm_store_party_role(r->sig->store, visit_id, r->u->sub, role) == 0 &&
                      (strcmp(role, "consulting") == 0 || strcmp(role, "attending") == 0)))
        return TM_EPERM;
    bool handed_on = !attends && strcmp(role, "attending") == 0;
    if (!handed_on && strcmp(rec->state, "active") != 0 && strcmp(rec->state, "ended") != 0)
        return TM_ECONFLICT;
    return 0;
}

/* One released note as the patient reads it. */
static json_t *released_note_json(const char *doctor_id, const char *text, const char *code,
                                  json_t *signed_at)
{
    json_t *o =
        json_pack("{s:s, s:s, s:o}", "doctor_id", doctor_id, "text", text, "signed_at", signed_at);
    json_object_set_new(o, "diagnosis_code", code ? json_string(code) : json_null());
    return o;
}

static void release_note(tm_signaling *sig, const tm_visit *rec, const char *doctor_id,
                         const char *text, const char *code, int64_t at)
{
    json_t *m = json_pack("{s:s, s:s}", "type", "visit.note_released", "visit_id", rec->id);
    json_t *note = released_note_json(doctor_id, text, code, tm__time_json(at));
    json_object_update(m, note);
    json_decref(note);
    tm__send_to_user(tm__find_user(sig, TM_ROLE_PATIENT, rec->patient_id), m);
}

static void handle_note(request *r)
{
    if (!tm__need_role(r, TM_ROLE_DOCTOR, TM_ROLE_DOCTOR))
        return;
    tm_visit rec;
    int rc = doctor_visit(r, tm__jstr(r->msg, "visit_id"), &rec);
    if (rc < 0) {
        tm__reply_err(r->s, r->id, rc, NULL);
        return;
    }
    const char *text = tm__jstr(r->msg, "text");
    const char *code = tm__jstr(r->msg, "diagnosis_code");
    json_t *sign = json_object_get(r->msg, "sign");
    if (!text || strlen(text) > MAX_NOTE_BYTES || (sign && !json_is_boolean(sign)) ||
        (code && strlen(code) > 16)) {
        tm__reply_err(r->s, r->id, TM_EINVAL,
                      "note needs text (up to 32000 bytes), optional "
                      "diagnosis_code (ICD-10) and sign (boolean)");
        return;
    }
    int64_t now = tm_now_ms();
    rc = tm_store_note_save(r->sig->store, rec.id, r->u->sub, text, code, json_is_true(sign), now);
    if (rc < 0) {
        tm__reply_err(r->s, r->id, rc, rc == TM_ECONFLICT ? "the note is signed and final" : NULL);
        return;
    }
    if (json_is_true(sign) && r->sig->feed)
        tm_feed_kick(r->sig->feed);
    tm__reply_ok(r->s, r->id,
                 json_pack("{s:s, s:b}", "visit_id", rec.id, "signed", json_is_true(sign)));
    if (json_is_true(sign))
        release_note(r->sig, &rec, r->u->sub, text, code, now);
}

/* A patient reads the notes released to them (the signed ones) of a visit
 * of theirs, live or over: the end screen shows them after a reload. */
static void handle_visit_notes(request *r)
{
    if (!tm__need_role(r, TM_ROLE_PATIENT, TM_ROLE_PATIENT))
        return;
    const char *visit_id = tm__jstr(r->msg, "visit_id");
    tm_visit rec;
    int rc = visit_id ? tm_store_visit_get(r->sig->store, visit_id, &rec) : TM_EINVAL;
    if (rc == 0 && strcmp(rec.patient_id, r->u->sub) != 0)
        rc = TM_EPERM;
    json_t *rows = rc == 0 ? tm_store_notes_signed(r->sig->store, rec.id) : NULL;
    if (rc == 0 && !rows)
        rc = TM_EIO;
    if (rc < 0) {
        tm__reply_err(r->s, r->id, rc, rc == TM_EINVAL ? "visit_id is required" : NULL);
        return;
    }
    json_t *notes = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) json_array_append_new(
        notes, released_note_json(json_string_value(json_object_get(row, "doctor_id")),
                                  json_string_value(json_object_get(row, "body")),
                                  json_string_value(json_object_get(row, "diagnosis_code")),
                                  json_incref(json_object_get(row, "signed_at"))));
    json_decref(rows);
    tm__reply_ok(r->s, r->id, json_pack("{s:s, s:o}", "visit_id", rec.id, "notes", notes));
}

/* A rating with the store (store_queue.h): read, checked and written off
 * the loop. */
typedef struct rate_step {
    tm_signaling *sig;
    tm__waiter w;
    char *visit_id;
    char patient_id[128];
    int score;
    char *comment;
} rate_step;

static void rate_step_free(gpointer p)
{
    rate_step *s = p;
    tm__waiter_clear(&s->w);
    g_free(s->visit_id);
    g_free(s->comment);
    g_free(s);
}

static int rate_work(tm_store *s, void *data)
{
    rate_step *st = data;
    tm_visit rec;
    int rc = tm_store_visit_get(s, st->visit_id, &rec);
    if (rc == 0 && strcmp(rec.patient_id, st->patient_id) != 0)
        rc = TM_EPERM;
    if (rc == 0 && strcmp(rec.state, "ended") != 0)
        rc = TM_ECONFLICT;
    if (rc == 0)
        rc = tm_store_rating_add(s, st->visit_id, st->patient_id, st->score, st->comment,
                                 tm_now_ms());
    return rc;
}

static void rate_done(void *data, int rc, const char *errmsg)
{
    (void)errmsg;
    rate_step *st = data;
    request req;
    request *r = &req;
    user *u = tm__waiter_done(st->sig, &st->w, r);
    if (rc < 0) {
        tm__step_reply_err(r, rc, rc == TM_ECONFLICT ? "visit not ended or already rated" : NULL);
        tm__maybe_forget_user(st->sig, u);
        return;
    }
    if (strcmp(u->last_visit_id, st->visit_id) == 0)
        u->last_visit_id[0] = 0;
    if (st->sig->feed)
        tm_feed_kick(st->sig->feed);
    tm__step_reply_ok(r, json_pack("{s:s}", "visit_id", st->visit_id));
    tm__maybe_forget_user(st->sig, u);
}

static void handle_rate(request *r)
{
    if (!tm__need_role(r, TM_ROLE_PATIENT, TM_ROLE_PATIENT))
        return;
    const char *visit_id = tm__jstr(r->msg, "visit_id");
    json_t *score = json_object_get(r->msg, "score");
    const char *comment = tm__jstr(r->msg, "comment");
    if (!visit_id || !json_is_integer(score) || json_integer_value(score) < 1 ||
        json_integer_value(score) > 5 || (comment && strlen(comment) > 2000)) {
        tm__reply_err(r->s, r->id, TM_EINVAL,
                      "rate needs visit_id, score 1-5 and an optional comment");
        return;
    }
    rate_step *st = g_new0(rate_step, 1);
    st->sig = r->sig;
    tm__waiter_init(&st->w, r);
    st->visit_id = g_strdup(visit_id);
    g_strlcpy(st->patient_id, r->u->sub, sizeof(st->patient_id));
    st->score = (int)json_integer_value(score);
    st->comment = g_strdup(comment);
    tm_store_queue_post(r->sig->steps, rate_work, rate_done, st, rate_step_free);
}

const tm__handler tm__visit_handlers[] = {
    {"visit.accept", handle_visit_accept},
    {"visit.decline", handle_visit_decline},
    {"visit.end", handle_visit_end},
    {"visit.note", handle_note},
    {"visit.notes", handle_visit_notes},
    {"visit.rate", handle_rate},
    {"chat.send", handle_chat},
    {NULL, NULL},
};

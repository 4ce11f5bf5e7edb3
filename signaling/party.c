/*
 * party.c - visits of more than two: the permission table (who may do what
 * by visit role), the participants beyond patient and attending doctor
 * (consulting doctors, interpreters and nurses by invitation, family by a
 * one-time guest link), their joining, leaving and removal, and the
 * visit.participants push that tells everyone who is in the visit.
 *
 * Control loop. Every change goes to the store first (with its regulator
 * event) and is pushed once durable; an invite's timer carries the invite,
 * and the invite's end removes it. The patient and the attending doctor
 * stay where visit.c keeps them (the visit row); this room adds the rest.
 */
#include "signaling_internal.h"
#include "telemed/log.h"

#include <stdio.h>
#include <string.h>

static const char *const role_names[TM_VR_COUNT] = {
    "patient", "attending", "consulting", "interpreter", "nurse", "guest",
};

/* The permission table of docs/protocol.md, one row per action; columns:
 * patient, attending, consulting, interpreter, nurse, guest. Writing notes
 * is the consulting doctor's own addendum; the card is name, age and
 * complaint (everyone sees the patient's name). */
static const bool may[TM_ACT_COUNT][TM_VR_COUNT] = {
    /*                        pat    att    cons   interp nurse  guest */
    [TM_ACT_INVITE] = {false, true, false, false, false, false},
    [TM_ACT_INVITE_CANCEL] = {false, true, false, false, false, false},
    [TM_ACT_GUEST_LINK] = {true, true, false, false, false, false},
    [TM_ACT_REMOVE] = {false, true, false, false, false, false},
    [TM_ACT_LEAVE] = {false, false, true, true, true, true},
    [TM_ACT_END] = {true, true, false, false, false, false},
    [TM_ACT_CHAT] = {true, true, true, true, true, true},
    [TM_ACT_NOTE_READ] = {false, true, true, false, true, false},
    [TM_ACT_NOTE_WRITE] = {false, true, true, false, false, false},
    [TM_ACT_PATIENT_CARD] = {true, true, true, false, true, false},
    [TM_ACT_MEDIA] = {true, true, true, true, true, true},
};

typedef struct party_invite {
    char id[64];
    tm_signaling *sig;
    char visit_id[64];
    char inviter[64];
    char invitee[64];
    tm__visit_role role;
    int64_t expires_ms;
    guint timer;
} party_invite;

/* Longest guest name, in characters, and guest link lifetime, seconds. */

const char *tm__visit_role_name(tm__visit_role r)
{
    return r > TM_VR_NONE && r < TM_VR_COUNT ? role_names[r] : "none";
}

static tm__visit_role visit_role_parse(const char *name)
{
    for (int i = 0; name && i < TM_VR_COUNT; i++)
        if (strcmp(name, role_names[i]) == 0)
            return (tm__visit_role)i;
    return TM_VR_NONE;
}

bool tm__party_may(tm__visit_role r, tm__party_action a)
{
    return r > TM_VR_NONE && r < TM_VR_COUNT && a >= 0 && a < TM_ACT_COUNT && may[a][r];
}

bool tm_signaling_role_reads_notes(const char *visit_role)
{
    return tm__party_may(visit_role_parse(visit_role), TM_ACT_NOTE_READ);
}

party_member *tm__party_member(live_visit *v, const user *u)
{
    for (guint i = 0; u && i < v->party->len; i++) {
        party_member *m = g_ptr_array_index(v->party, i);
        if (strcmp(m->key, u->key) == 0)
            return m;
    }
    return NULL;
}

static party_member *member_by_sub(live_visit *v, const char *sub)
{
    for (guint i = 0; i < v->party->len; i++) {
        party_member *m = g_ptr_array_index(v->party, i);
        if (strcmp(m->sub, sub) == 0)
            return m;
    }
    return NULL;
}

tm__visit_role tm__party_role(tm_signaling *sig, live_visit *v, const user *u)
{
    (void)sig;
    if (!u)
        return TM_VR_NONE;
    if (u->role == TM_ROLE_PATIENT && strcmp(u->sub, v->patient_sub) == 0)
        return TM_VR_PATIENT;
    if (u->role == TM_ROLE_DOCTOR && v->state == TM_VS_ACTIVE && strcmp(u->sub, v->doctor_id) == 0)
        return TM_VR_ATTENDING;
    party_member *m = tm__party_member(v, u);
    return m ? m->role : TM_VR_NONE;
}

/* Everyone in the visit now plus open invites: what max_participants caps. */
int tm__party_size(tm_signaling *sig, live_visit *v)
{
    int n = 2 + (int)v->party->len;
    GHashTableIter it;
    gpointer k, val;
    g_hash_table_iter_init(&it, sig->invites);
    while (g_hash_table_iter_next(&it, &k, &val)) {
        const party_invite *inv = val;
        if (strcmp(inv->visit_id, v->id) == 0)
            n++;
    }
    return n;
}

static user *user_by_key(tm_signaling *sig, const char *key)
{
    return g_hash_table_lookup(sig->users, key);
}

void tm__party_send_members(tm_signaling *sig, live_visit *v, json_t *m)
{
    tm__send_to_user(tm__visit_patient(sig, v), json_incref(m));
    if (v->state == TM_VS_ACTIVE)
        tm__send_to_user(tm__visit_doctor(sig, v), json_incref(m));
    for (guint i = 0; i < v->party->len; i++)
        tm__send_to_user(user_by_key(sig, ((party_member *)g_ptr_array_index(v->party, i))->key),
                         json_incref(m));
    json_decref(m);
}

void tm__party_send_all(tm_signaling *sig, live_visit *v, json_t *m)
{
    tm__party_send_members(sig, v, json_incref(m));
    for (guint i = 0; i < v->watchers->len; i++)
        tm__send_to_user(user_by_key(sig, g_ptr_array_index(v->watchers, i)), json_incref(m));
    json_decref(m);
}

/* The registry name of a staff member ("" if unregistered). */
static void staff_name(tm_signaling *sig, const char *sub, char *out, size_t len)
{
    tm_doctor_info info;
    out[0] = 0;
    if (tm_store_doctor_get(sig->store, sub, &info) == 0)
        g_strlcpy(out, info.name, len);
}

static json_t *participant_json(const char *id, tm__visit_role role, const char *name,
                                bool connected, int64_t joined_ms)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:b}", "id", id, "role", tm__visit_role_name(role),
                          "name", name, "connected", connected);
    json_object_set_new(o, "joined_at", tm__time_json(joined_ms));
    return o;
}

json_t *tm__party_json(tm_signaling *sig, live_visit *v)
{
    json_t *list = json_array();
    user *p = tm__visit_patient(sig, v);
    json_array_append_new(list, participant_json(v->patient_sub, TM_VR_PATIENT, p ? p->name : "",
                                                 p && p->sess,
                                                 v->accepted_ms ? v->accepted_ms : v->checkin_ms));
    if (v->state == TM_VS_ACTIVE && v->doctor_id[0]) {
        user *d = tm__visit_doctor(sig, v);
        char name[128];
        staff_name(sig, v->doctor_id, name, sizeof(name));
        if (!name[0] && d)
            g_strlcpy(name, d->name, sizeof(name));
        json_array_append_new(list, participant_json(v->doctor_id, TM_VR_ATTENDING, name,
                                                     d && d->sess, v->accepted_ms));
    }
    for (guint i = 0; i < v->party->len; i++) {
        party_member *m = g_ptr_array_index(v->party, i);
        user *u = user_by_key(sig, m->key);
        json_array_append_new(
            list, participant_json(m->sub, m->role, m->name, u && u->sess, m->joined_ms));
    }
    return list;
}

void tm__party_push(tm_signaling *sig, live_visit *v)
{
    json_t *m = json_pack("{s:s, s:s, s:o}", "type", "visit.participants", "visit_id", v->id,
                          "participants", tm__party_json(sig, v));
    tm__party_send_all(sig, v, m);
    tm__mark_overview_dirty(sig);
}

void tm__party_add_visit_to(user *u, const char *visit_id)
{
    if (u->role == TM_ROLE_DOCTOR)
        g_ptr_array_add(u->visits, g_strdup(visit_id));
    else
        g_strlcpy(u->visit_id, visit_id, sizeof(u->visit_id));
}

static void remove_visit_from(user *u, const char *visit_id)
{
    if (u->role != TM_ROLE_DOCTOR) {
        if (strcmp(u->visit_id, visit_id) == 0)
            u->visit_id[0] = 0;
        return;
    }
    for (guint i = 0; i < u->visits->len; i++) {
        if (strcmp(g_ptr_array_index(u->visits, i), visit_id) == 0) {
            g_ptr_array_remove_index(u->visits, i);
            u->idle_since_ms = tm_now_ms();
            return;
        }
    }
}

party_member *tm__party_member_add(live_visit *v, const user *u, tm__visit_role role,
                                   const char *name, int64_t joined_ms)
{
    party_member *m = g_new0(party_member, 1);
    g_strlcpy(m->key, u->key, sizeof(m->key));
    g_strlcpy(m->sub, u->sub, sizeof(m->sub));
    m->role = role;
    g_strlcpy(m->name, name, sizeof(m->name));
    m->joined_ms = joined_ms;
    g_ptr_array_add(v->party, m);
    return m;
}

void tm__party_label(tm_signaling *sig, live_visit *v, const char *key, tm__visit_role role)
{
    if (!sig->media)
        return;
    /* Ids and roles only: the recording's track names are read by reviewers and tools. */
    const char *colon = strchr(key, ':');
    char *label = g_strdup_printf("%s %s", tm__visit_role_name(role), colon ? colon + 1 : key);
    tm_media_set_label(sig->media, v->id, key, label);
    g_free(label);
}

void tm__party_presence(tm_signaling *sig, live_visit *v, user *u, bool connected)
{
    party_member *m = tm__party_member(v, u);
    if (!m)
        return;
    int64_t now = tm_now_ms();
    if (connected)
        tm_store_party_join(sig->store, v->id, u->sub, tm__visit_role_name(m->role),
                            u->sess ? u->sess->ua : NULL, false, now);
    else
        tm_store_participant_leave(sig->store, v->id, u->sub, "disconnected", now);
    tm__notify_peer_presence(sig, v, u, connected);
}

int tm__party_leave(tm_signaling *sig, live_visit *v, user *u, const char *reason)
{
    party_member *m = tm__party_member(v, u);
    if (!m)
        return TM_ENOTFOUND;
    int rc = tm_store_party_leave(sig->store, v->id, u->sub, reason, tm_now_ms());
    if (rc < 0) {
        tm_error("party.leave_failed", "visit=%s user=%s err=%s", v->id, u->key,
                 tm_store_errmsg(sig->store));
        return rc;
    }
    tm_info("party.left", "visit=%s user=%s role=%s reason=%s", v->id, u->key,
            tm__visit_role_name(m->role), reason);
    if (strcmp(reason, "grace_expired") == 0)
        tm_store_audit(sig->store, "system", "system", "visit.leave", v->id, "ok", u->sub);
    if (sig->media)
        tm_media_peer_close(sig->media, v->id, u->key);
    g_ptr_array_remove(v->party, m);
    remove_visit_from(u, v->id);
    if (sig->feed)
        tm_feed_kick(sig->feed);
    tm__party_push(sig, v);
    return 0;
}

/* ---- invites ------------------------------------------------------- */

int tm__party_open_invites(tm_signaling *sig, const char *visit_id)
{
    int n = 0;
    GHashTableIter it;
    gpointer k, val;
    g_hash_table_iter_init(&it, sig->invites);
    while (g_hash_table_iter_next(&it, &k, &val))
        n += strcmp(((const party_invite *)val)->visit_id, visit_id) == 0;
    return n;
}

void tm__invite_free(gpointer p)
{
    party_invite *inv = p;
    if (inv->timer)
        g_source_remove(inv->timer);
    g_free(inv);
}

static void push_invite_ended(tm_signaling *sig, const party_invite *inv, const char *outcome)
{
    json_t *m =
        json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "visit.invite_ended", "invite_id", inv->id,
                  "visit_id", inv->visit_id, "user_id", inv->invitee, "outcome", outcome);
    tm__send_to_user(tm__find_user(sig, TM_ROLE_DOCTOR, inv->inviter), json_incref(m));
    tm__send_to_user(tm__find_user(sig, TM_ROLE_DOCTOR, inv->invitee), m);
}

/* Ends inv with outcome in the store, tells inviter and invitee and forgets
 * it. The store's refusal (already ended) is returned and nothing changes. */
static int invite_end(tm_signaling *sig, party_invite *inv, const char *outcome, bool store)
{
    if (store) {
        int rc = tm_store_invite_end(sig->store, inv->id, outcome, tm_now_ms());
        if (rc < 0)
            return rc;
    }
    tm_info("party.invite_ended", "invite=%s visit=%s invitee=%s outcome=%s", inv->id,
            inv->visit_id, inv->invitee, outcome);
    tm_store_audit(sig->store, inv->inviter, "doctor", "visit.invite_ended", inv->visit_id, "ok",
                   outcome);
    push_invite_ended(sig, inv, outcome);
    if (sig->feed)
        tm_feed_kick(sig->feed);
    g_hash_table_remove(sig->invites, inv->id);
    return 0;
}

static gboolean invite_timed_out(gpointer data)
{
    /* The invite removes this timer when it goes, so it is still here. */
    party_invite *inv = data;
    inv->timer = 0;
    tm_signaling *sig = inv->sig;
    if (invite_end(sig, inv, "timeout", true) < 0) {
        /* The store has it ended already, or cannot say: either way it no
         * longer holds a place in the visit. */
        tm_warn("party.invite_timeout_failed", "invite=%s err=%s", inv->id,
                tm_store_errmsg(sig->store));
        g_hash_table_remove(sig->invites, inv->id);
    }
    return G_SOURCE_REMOVE;
}

/* Which visit role fits which staff kind: a doctor consults, a nurse nurses. */
static bool role_fits_kind(tm__visit_role role, const char *kind)
{
    const char *want = role == TM_VR_CONSULTING    ? "doctor"
                       : role == TM_VR_INTERPRETER ? "interpreter"
                       : role == TM_VR_NURSE       ? "nurse"
                                                   : NULL;
    return want && strcmp(want, kind[0] ? kind : "doctor") == 0;
}

/* The live, active visit the request names, if the sender may do a in it;
 * otherwise the error is answered and NULL returned. */
live_visit *tm__party_visit_for(request *r, tm__party_action a)
{
    live_visit *v = tm__requested_visit(r);
    if (!v)
        return NULL;
    if (!tm__party_may(tm__party_role(r->sig, v, r->u), a)) {
        tm__reply_err(r->s, r->id, TM_EPERM, "your role in this visit does not allow it");
        return NULL;
    }
    /* Between two doctors after a transfer the party stays, and may leave. */
    bool handed_on = v->transfers > 0 && (v->state == TM_VS_WAITING || v->state == TM_VS_OFFERED);
    if (v->state != TM_VS_ACTIVE && !(a == TM_ACT_LEAVE && handed_on)) {
        tm__reply_err(r->s, r->id, TM_ECONFLICT, "the visit is not active");
        return NULL;
    }
    return v;
}

static party_invite *open_invite_of(tm_signaling *sig, const char *visit_id, const char *invitee)
{
    GHashTableIter it;
    gpointer k, val;
    g_hash_table_iter_init(&it, sig->invites);
    while (g_hash_table_iter_next(&it, &k, &val)) {
        party_invite *inv = val;
        if (strcmp(inv->visit_id, visit_id) == 0 && strcmp(inv->invitee, invitee) == 0)
            return inv;
    }
    return NULL;
}

static void handle_invite(request *r)
{
    tm_signaling *sig = r->sig;
    live_visit *v = tm__party_visit_for(r, TM_ACT_INVITE);
    if (!v)
        return;
    const char *user_id = tm__jstr(r->msg, "user_id");
    tm__visit_role role = visit_role_parse(tm__jstr(r->msg, "role"));
    if (!user_id ||
        (role != TM_VR_CONSULTING && role != TM_VR_INTERPRETER && role != TM_VR_NURSE)) {
        tm__reply_err(r->s, r->id, TM_EINVAL,
                      "visit.invite needs user_id and role consulting, interpreter or nurse");
        return;
    }
    tm_doctor_info info;
    if (tm_store_doctor_get(sig->store, user_id, &info) < 0 || !info.active) {
        tm__reply_err(r->s, r->id, TM_ENOTFOUND, "no such staff member");
        return;
    }
    if (!role_fits_kind(role, info.kind)) {
        tm__reply_err(r->s, r->id, TM_EINVAL, "the role does not fit the staff member's kind");
        return;
    }
    user *invitee = tm__find_user(sig, TM_ROLE_DOCTOR, user_id);
    if (!invitee || !invitee->sess ||
        (invitee->status != DOC_AVAILABLE && invitee->status != DOC_AWAY)) {
        tm__reply_err(r->s, r->id, TM_ECONFLICT, "not signed in or not on duty");
        return;
    }
    if (tm__party_role(sig, v, invitee) != TM_VR_NONE) {
        tm__reply_err(r->s, r->id, TM_ECONFLICT, "already in the visit");
        return;
    }
    if (open_invite_of(sig, v->id, user_id)) {
        tm__reply_err(r->s, r->id, TM_ECONFLICT, "already invited");
        return;
    }
    if (tm__party_size(sig, v) >= sig->cfg->max_participants) {
        tm__reply_err(r->s, r->id, TM_ECONFLICT, "the visit is full");
        return;
    }
    int64_t now = tm_now_ms();
    tm_invite rec = {.created_ms = now, .expires_ms = now + sig->cfg->invite_timeout_s * 1000LL};
    g_strlcpy(rec.visit_id, v->id, sizeof(rec.visit_id));
    g_strlcpy(rec.inviter_id, r->u->sub, sizeof(rec.inviter_id));
    g_strlcpy(rec.invitee_id, user_id, sizeof(rec.invitee_id));
    g_strlcpy(rec.role, tm__visit_role_name(role), sizeof(rec.role));
    int rc = tm_store_invite_create(sig->store, &rec);
    if (rc < 0) {
        tm__reply_err(r->s, r->id, rc, "invite failed");
        return;
    }
    party_invite *inv = g_new0(party_invite, 1);
    inv->sig = sig;
    g_strlcpy(inv->id, rec.id, sizeof(inv->id));
    g_strlcpy(inv->visit_id, v->id, sizeof(inv->visit_id));
    g_strlcpy(inv->inviter, r->u->sub, sizeof(inv->inviter));
    g_strlcpy(inv->invitee, user_id, sizeof(inv->invitee));
    inv->role = role;
    inv->expires_ms = rec.expires_ms;
    inv->timer = g_timeout_add_seconds((guint)sig->cfg->invite_timeout_s, invite_timed_out, inv);
    g_hash_table_insert(sig->invites, inv->id, inv);
    tm_store_audit(sig->store, r->u->sub, tm__audit_role(r->u), "visit.invite", v->id, "ok",
                   user_id);
    tm_info("party.invited", "invite=%s visit=%s invitee=%s role=%s", inv->id, v->id, user_id,
            rec.role);
    if (sig->feed)
        tm_feed_kick(sig->feed);
    tm__reply_ok(r->s, r->id,
                 json_pack("{s:s, s:o}", "invite_id", inv->id, "expires_at",
                           tm__time_json(inv->expires_ms)));
    char from_name[128];
    staff_name(sig, r->u->sub, from_name, sizeof(from_name));
    json_t *m =
        json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s}, s:s, s:s, s:o}", "type", "visit.invited",
                  "invite_id", inv->id, "visit_id", v->id, "role", rec.role, "from", "id",
                  r->u->sub, "name", from_name[0] ? from_name : r->u->name, "dept", v->dept, "kind",
                  v->kind, "expires_at", tm__time_json(inv->expires_ms));
    tm__send_to_user(invitee, m);
}

/* The open invite the request names, if the sender is its invitee (or its
 * inviter, for a cancel); otherwise answered and NULL. */
static party_invite *requested_invite(request *r, bool as_inviter)
{
    const char *invite_id = tm__jstr(r->msg, "invite_id");
    party_invite *inv = invite_id ? g_hash_table_lookup(r->sig->invites, invite_id) : NULL;
    if (!invite_id) {
        tm__reply_err(r->s, r->id, TM_EINVAL, "invite_id is required");
        return NULL;
    }
    const char *who = inv ? (as_inviter ? inv->inviter : inv->invitee) : NULL;
    /* An invite outlives a transfer: the visit's attending now answers for it. */
    live_visit *v = inv && as_inviter ? g_hash_table_lookup(r->sig->visits, inv->visit_id) : NULL;
    bool attending = v && tm__party_role(r->sig, v, r->u) == TM_VR_ATTENDING;
    if (!inv || r->u->role != TM_ROLE_DOCTOR || (strcmp(who, r->u->sub) != 0 && !attending)) {
        tm__reply_err(r->s, r->id, TM_ENOTFOUND, "no open invite of yours with this id");
        return NULL;
    }
    return inv;
}

static void invite_accept_checked(request *r, const tm_doctor_check *check);

static void handle_invite_answer(request *r)
{
    tm_signaling *sig = r->sig;
    party_invite *inv = requested_invite(r, false);
    if (!inv)
        return;
    json_t *accept = json_object_get(r->msg, "accept");
    if (!json_is_boolean(accept)) {
        tm__reply_err(r->s, r->id, TM_EINVAL, "accept must be true or false");
        return;
    }
    live_visit *v = g_hash_table_lookup(sig->visits, inv->visit_id);
    if (json_is_true(accept) && v && v->state != TM_VS_ACTIVE && v->transfers > 0) {
        /* Handed on, waiting for its next doctor: the invite stays open. */
        tm__reply_err_reason(r->s, r->id, TM_ECONFLICT,
                             "the visit waits for its next doctor: accept once they have joined",
                             "awaiting_doctor");
        return;
    }
    if (!json_is_true(accept) || !v || v->state != TM_VS_ACTIVE) {
        int rc = invite_end(sig, inv, v ? "declined" : "visit_ended", true);
        if (rc < 0)
            tm__reply_err(r->s, r->id, rc, NULL);
        else if (v)
            tm__reply_ok(r->s, r->id, NULL);
        else
            tm__reply_err(r->s, r->id, TM_ECONFLICT, "the visit has ended");
        return;
    }
    /* A consulting doctor proves who they are as the attending did to
     * accept the visit (doctor_check.c); staff who do not treat do not. */
    if (inv->role == TM_VR_CONSULTING)
        tm__doctor_check(r, v, invite_accept_checked);
    else
        invite_accept_checked(r, NULL);
}

static void invite_accept_checked(request *r, const tm_doctor_check *check)
{
    (void)check;
    tm_signaling *sig = r->sig;
    party_invite *inv = requested_invite(r, false);
    if (!inv)
        return;
    live_visit *v = g_hash_table_lookup(sig->visits, inv->visit_id);
    if (!v || v->state != TM_VS_ACTIVE) {
        tm__reply_err(r->s, r->id, TM_ECONFLICT, "the visit has ended");
        return;
    }
    int64_t now = tm_now_ms();
    char visit_id[64], invite_id[64];
    g_strlcpy(visit_id, v->id, sizeof(visit_id));
    g_strlcpy(invite_id, inv->id, sizeof(invite_id));
    tm__visit_role role = inv->role;
    int rc = tm_store_invite_accept(sig->store, inv->id, r->s->ua, now);
    if (rc < 0) {
        tm__reply_err(r->s, r->id, rc, "joining the visit failed");
        return;
    }
    invite_end(sig, inv, "accepted", false);
    tm__party_joined(r, v, role, now, invite_id);
}

void tm__party_joined(request *r, live_visit *v, tm__visit_role role, int64_t now_ms,
                      const char *via)
{
    tm_signaling *sig = r->sig;
    char name[128];
    staff_name(sig, r->u->sub, name, sizeof(name));
    tm__party_member_add(v, r->u, role, name[0] ? name : r->u->name, now_ms);
    tm__party_add_visit_to(r->u, v->id);
    tm__party_label(sig, v, r->u->key, role);
    tm_store_audit(sig->store, r->u->sub, tm__audit_role(r->u), "visit.join", v->id, "ok",
                   tm__visit_role_name(role));
    tm_info("party.joined", "visit=%s user=%s role=%s via=%s", v->id, r->u->key,
            tm__visit_role_name(role), via);
    json_t *data = json_pack("{s:s, s:s}", "visit_id", v->id, "role", tm__visit_role_name(role));
    json_t *st = tm__visit_state_msg(sig, v->id);
    json_object_set_new(data, "visit", st ? st : json_null());
    json_object_set_new(data, "participants", tm__party_json(sig, v));
    tm__reply_ok(r->s, r->id, data);
    tm__party_push(sig, v);
}

static void handle_invite_cancel(request *r)
{
    party_invite *inv = requested_invite(r, true);
    if (!inv)
        return;
    int rc = invite_end(r->sig, inv, "cancelled", true);
    if (rc < 0)
        tm__reply_err(r->s, r->id, rc, NULL);
    else
        tm__reply_ok(r->s, r->id, NULL);
}

/* What someone inviting sees of a colleague: on duty, in a visit, or not. */
static const char *staff_status(tm_signaling *sig, const char *id)
{
    user *u = tm__find_user(sig, TM_ROLE_DOCTOR, id);
    if (!u || !u->sess)
        return "off_duty";
    if (u->visits->len)
        return "in_visit";
    return tm__doctor_status_names[u->status];
}

static void handle_staff_list(request *r)
{
    if (!tm__need_role(r, TM_ROLE_DOCTOR, TM_ROLE_DOCTOR))
        return;
    const char *dept = tm__jstr(r->msg, "dept");
    const char *kind = tm__jstr(r->msg, "kind");
    if ((json_object_get(r->msg, "dept") && !dept) ||
        (kind && strcmp(kind, "doctor") != 0 && strcmp(kind, "nurse") != 0 &&
         strcmp(kind, "interpreter") != 0)) {
        tm__reply_err(r->s, r->id, TM_EINVAL,
                      "dept is a string; kind doctor, nurse or interpreter");
        return;
    }
    json_t *rows = tm_store_doctor_list(r->sig->store, dept);
    if (!rows) {
        tm__reply_err(r->s, r->id, TM_EIO, NULL);
        return;
    }
    json_t *staff = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        const char *id = json_string_value(json_object_get(row, "id"));
        const char *k = json_string_value(json_object_get(row, "kind"));
        if (!json_is_true(json_object_get(row, "active")) || strcmp(id, r->u->sub) == 0 ||
            (kind && strcmp(kind, k) != 0))
            continue;
        json_t *o = json_pack("{s:s, s:O, s:O, s:s, s:s}", "id", id, "name",
                              json_object_get(row, "name"), "dept", json_object_get(row, "dept_id"),
                              "kind", k, "status", staff_status(r->sig, id));
        json_object_set(o, "title", json_object_get(row, "title"));
        json_array_append_new(staff, o);
    }
    json_decref(rows);
    tm__reply_ok(r->s, r->id, json_pack("{s:o}", "staff", staff));
}

/* ---- removal and leaving ------------------------------------------- */

static void handle_remove(request *r)
{
    live_visit *v = tm__party_visit_for(r, TM_ACT_REMOVE);
    if (!v)
        return;
    const char *user_id = tm__jstr(r->msg, "user_id");
    party_member *m = user_id ? member_by_sub(v, user_id) : NULL;
    if (!user_id) {
        tm__reply_err(r->s, r->id, TM_EINVAL, "user_id is required");
        return;
    }
    if (!m) {
        bool core = strcmp(user_id, v->patient_sub) == 0 || strcmp(user_id, v->doctor_id) == 0;
        tm__reply_err(r->s, r->id, core ? TM_EPERM : TM_ENOTFOUND,
                      core ? "the patient and the attending doctor cannot be removed"
                           : "no such participant");
        return;
    }
    user *u = user_by_key(r->sig, m->key);
    if (!u) {
        tm__reply_err(r->s, r->id, TM_ENOTFOUND, "no such participant");
        return;
    }
    char visit_id[64];
    g_strlcpy(visit_id, v->id, sizeof(visit_id));
    int rc = tm__party_leave(r->sig, v, u, "removed");
    if (rc < 0) {
        tm__reply_err(r->s, r->id, rc, NULL);
        return;
    }
    tm_store_audit(r->sig->store, r->u->sub, tm__audit_role(r->u), "visit.remove", visit_id, "ok",
                   u->sub);
    tm__reply_ok(r->s, r->id, NULL);
    tm__send_to_user(u, json_pack("{s:s, s:s, s:s}", "type", "visit.removed", "visit_id", visit_id,
                                  "by_role", "attending"));
    tm__maybe_forget_user(r->sig, u);
}

static void handle_leave(request *r)
{
    live_visit *v = tm__party_visit_for(r, TM_ACT_LEAVE);
    if (!v)
        return;
    char visit_id[64];
    g_strlcpy(visit_id, v->id, sizeof(visit_id));
    int rc = tm__party_leave(r->sig, v, r->u, "left");
    if (rc < 0) {
        tm__reply_err(r->s, r->id, rc, NULL);
        return;
    }
    tm_store_audit(r->sig->store, r->u->sub, tm__audit_role(r->u), "visit.leave", visit_id, "ok",
                   NULL);
    tm__reply_ok(r->s, r->id, json_pack("{s:s}", "visit_id", visit_id));
}

void tm__party_visit_ended(tm_signaling *sig, live_visit *v)
{
    GHashTableIter it;
    gpointer k, val;
    GPtrArray *ended = g_ptr_array_new();
    g_hash_table_iter_init(&it, sig->invites);
    while (g_hash_table_iter_next(&it, &k, &val))
        if (strcmp(((party_invite *)val)->visit_id, v->id) == 0)
            g_ptr_array_add(ended, val);
    /* The store ended them with the visit, in the same transaction. */
    for (guint i = 0; i < ended->len; i++)
        invite_end(sig, g_ptr_array_index(ended, i), "visit_ended", false);
    g_ptr_array_free(ended, TRUE);
    while (v->party->len) {
        party_member *m = g_ptr_array_index(v->party, v->party->len - 1);
        user *u = user_by_key(sig, m->key);
        g_ptr_array_remove_index(v->party, v->party->len - 1);
        if (u) {
            remove_visit_from(u, v->id);
            tm__maybe_forget_user(sig, u);
        }
    }
}

/* ---- restart ------------------------------------------------------- */

void tm__party_restore(tm_signaling *sig, live_visit *v)
{
    json_t *rows = tm_store_party_members(sig->store, v->id);
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        const char *sub = json_string_value(json_object_get(row, "user_id"));
        tm__visit_role role =
            visit_role_parse(json_string_value(json_object_get(row, "visit_role")));
        if (!sub || role == TM_VR_NONE)
            continue;
        tm_role token_role = role == TM_VR_GUEST ? TM_ROLE_GUEST : TM_ROLE_DOCTOR;
        user *u = tm__find_user(sig, token_role, sub);
        if (!u) {
            u = tm__user_new(sig, token_role, sub);
            u->grace_pending = true;
        }
        char name[256] = "";
        tm_guest_link l;
        if (role == TM_VR_GUEST &&
            tm_store_guest_link_get(sig->store, TM_GUEST_LINK_BY_GUEST, sub, &l) == 0)
            g_strlcpy(name, l.name, sizeof(name));
        else if (role != TM_VR_GUEST)
            staff_name(sig, sub, name, sizeof(name));
        g_strlcpy(u->name, name, sizeof(u->name));
        tm__party_add_visit_to(u, v->id);
        GDateTime *joined = g_date_time_new_from_iso8601(
            json_string_value(json_object_get(row, "joined_at")), NULL);
        party_member *m = tm__party_member_add(
            v, u, role, name,
            joined ? g_date_time_to_unix(joined) * 1000 + g_date_time_get_microsecond(joined) / 1000
                   : tm_now_ms());
        char version[32];
        m->notice_accepted =
            tm_store_consent_given(sig->store, v->id, sub, role_names[role], version) == 1;
        if (joined)
            g_date_time_unref(joined);
    }
    json_decref(rows);
}

const tm__handler tm__party_handlers[] = {
    {"visit.invite", handle_invite},
    {"visit.invite_answer", handle_invite_answer},
    {"visit.invite_cancel", handle_invite_cancel},
    {"staff.list", handle_staff_list},
    {"visit.remove", handle_remove},
    {"visit.leave", handle_leave},
    {NULL, NULL},
};

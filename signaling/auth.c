/*
 * auth.c - who is on the other end of a session: hello with a token, the
 * resume of a user who comes back within the grace period, and the STUN/TURN
 * servers (with TURN credentials) the client gets on the way in.
 *
 * Control loop. A token is checked against the configured verifier; the
 * user it names (role + sub) is found or made in visit.c, so a second tab
 * replaces the first and a dropped participant resumes where they were.
 */
#include "signaling_internal.h"
#include "telemed/log.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

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

/* Who is in the visit, for the hello result of a participant of a live visit. */
static json_t *participants_of(tm_signaling *sig, const char *visit_id)
{
    live_visit *v = g_hash_table_lookup(sig->visits, visit_id);
    return v && v->state == TM_VS_ACTIVE ? tm__party_json(sig, v) : NULL;
}

/* How many chat messages a patient resuming a visit gets back: a visit's
 * whole conversation in practice, and a bound on the hello's size. */
#define RESUME_CHAT_MAX 200

/* The visit's chat so far, as chat.message pushes carry it, so a page that
 * reloads mid-visit shows the conversation. An empty list when the store
 * cannot read it: the visit goes on. */
static json_t *chat_history_json(tm_signaling *sig, const char *visit_id)
{
    json_t *rows = tm_store_chat_recent(sig->store, visit_id, RESUME_CHAT_MAX);
    json_t *out = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        json_t *m = json_pack("{s:O, s:O, s:O, s:O, s:O}", "message_id", json_object_get(row, "id"),
                              "from", json_object_get(row, "sender_id"), "from_role",
                              json_object_get(row, "sender_role"), "text",
                              json_object_get(row, "body"), "at", json_object_get(row, "sent_at"));
        if (m)
            json_array_append_new(out, m);
    }
    json_decref(rows);
    return out;
}

static json_t *resume_state(tm_signaling *sig, user *u)
{
    if (u->role == TM_ROLE_PATIENT || u->role == TM_ROLE_GUEST) {
        json_t *o = json_object();
        if (u->visit_id[0]) {
            json_t *st = tm__visit_state_msg(sig, u->visit_id);
            if (st)
                json_object_set_new(o, "visit", st);
            int pos = tm_queue_position(sig->queue, u->visit_id, tm_now_ms());
            if (pos > 0)
                json_object_set_new(o, "position", json_integer(pos));
            json_t *party = participants_of(sig, u->visit_id);
            if (party)
                json_object_set_new(o, "participants", party);
            live_visit *v = g_hash_table_lookup(sig->visits, u->visit_id);
            if (v && v->state == TM_VS_ACTIVE)
                json_object_set_new(o, "chat", chat_history_json(sig, v->id));
        }
        if (u->last_visit_id[0])
            json_object_set_new(o, "to_rate", json_string(u->last_visit_id));
        return o;
    }
    if (u->role == TM_ROLE_DOCTOR) {
        json_t *o = tm__doctor_state_json(sig, u);
        json_t *by_visit = json_object();
        for (guint i = 0; i < u->visits->len; i++) {
            const char *visit_id = g_ptr_array_index(u->visits, i);
            json_t *party = participants_of(sig, visit_id);
            if (party)
                json_object_set_new(by_visit, visit_id, party);
        }
        json_object_set_new(o, "participants", by_visit);
        return o;
    }
    return json_object();
}

/* Copies a client's text cut to fit on a UTF-8 character boundary, so a
 * long user agent is shortened, never made invalid (the store and every JSON
 * reader refuse a broken character). src is valid UTF-8 (jansson checks). */
static void copy_utf8(char *dst, size_t size, const char *src)
{
    g_strlcpy(dst, src, size);
    const char *end = NULL;
    if (!g_utf8_validate(dst, -1, &end))
        dst[end - dst] = 0;
}

/* The institution a token's holder acts for (issue 18), into
 * ident->institution: a doctor's or staff member's is their department's,
 * and an `inst` claim naming another is refused; a supervisor's or admin's
 * is the claim, which must name a member ("" = the whole alliance); a
 * patient has none. On refusal answers the request and returns false. */
static bool check_institution(tm_signaling *sig, session *s, const char *id, tm_identity *ident)
{
    char message[256];
    if (ident->role == TM_ROLE_PATIENT) {
        ident->institution[0] = 0;
        return true;
    }
    if (ident->role == TM_ROLE_DOCTOR) {
        tm_doctor_info info;
        char home[64];
        if (tm_store_doctor_get(sig->store, ident->sub, &info) < 0 ||
            tm_store_dept_institution(sig->store, info.dept_id, home) < 0)
            return true; /* not registered: the lobby refuses them, as before */
        if (ident->institution[0] && strcmp(ident->institution, home) != 0) {
            tm_info("ws.auth_failed", "ip=%s reason=other_institution", s->peer_ip);
            snprintf(message, sizeof(message),
                     "token is for institution %s, but department %s belongs to %s",
                     ident->institution, info.dept_id, home);
            tm__reply_err(s, id, TM_EPERM, message);
            return false;
        }
        g_strlcpy(ident->institution, home, sizeof(ident->institution));
        return true;
    }
    tm_institution known;
    if (ident->institution[0] &&
        tm_store_institution_get(sig->store, ident->institution, &known) < 0) {
        tm_info("ws.auth_failed", "ip=%s reason=unknown_institution", s->peer_ip);
        snprintf(message, sizeof(message), "token names institution %s, not a member here",
                 ident->institution);
        tm__reply_err(s, id, TM_EPERM, message);
        return false;
    }
    return true;
}

/* Checks a token for this server; on failure answers the request and
 * returns false. An admin's token becomes a supervisor's identity with
 * *admin set. */
static bool verify_token(tm_signaling *sig, session *s, const char *id, const char *token,
                         tm_identity *ident, bool *admin)
{
    if (!token) {
        tm__reply_err(s, id, TM_EAUTH, "a token is required");
        return false;
    }
    const char *why = NULL;
    int rc = tm_jwt_verify(sig->jwt, token, strlen(token), tm_now_ms() / 1000,
                           sig->cfg->jwt_leeway_s, ident, &why);
    if (rc < 0) {
        tm_info("ws.auth_failed", "ip=%s reason=%s", s->peer_ip, why ? why : "-");
        char message[96];
        snprintf(message, sizeof(message), "token refused: %s", why ? why : "invalid");
        tm__reply_err(s, id, TM_EAUTH, message);
        return false;
    }
    if (ident->hospital[0] && strcmp(ident->hospital, sig->cfg->hospital_id) != 0) {
        tm__reply_err(s, id, TM_EPERM, "token is for another hospital");
        return false;
    }
    if (!check_institution(sig, s, id, ident))
        return false;
    *admin = ident->role == TM_ROLE_ADMIN;
    if (*admin) {
        /* Admins use the REST API; their live view is the supervisor's. */
        ident->role = TM_ROLE_SUPERVISOR;
    }
    return true;
}

/* When the session's token stops being good: exp plus the leeway its
 * verification allowed. */
static int64_t session_ends_ms(const session *s)
{
    return (s->exp_s + s->sig->cfg->jwt_leeway_s) * 1000;
}

/* Swept by the once-a-second tick, not a timer per session: GLib walks
 * every source on each loop iteration, and a timer per waiting patient
 * doubled the idle server's CPU (tests/bench/README.md, issue 13). */
void tm__auth_expire_sessions(tm_signaling *sig, int64_t now_ms)
{
    GHashTableIter it;
    gpointer key, val;
    g_hash_table_iter_init(&it, sig->users);
    while (g_hash_table_iter_next(&it, &key, &val)) {
        session *s = ((user *)val)->sess;
        /* A guest signs in without a token (exp_s 0): the visit's end is theirs. */
        if (!s || s->closing || !s->exp_s || now_ms < session_ends_ms(s))
            continue;
        tm_info("ws.token_expired", "user=%s", s->u->key);
        tm__session_close(s, TM_WS_CLOSE_TOKEN_EXPIRED, "token expired");
    }
}

static json_t *expires_json(const session *s)
{
    return tm__time_json(s->exp_s * 1000);
}

/* What the session needs of its token later: when it ends, and when and
 * how its holder last proved who they are (a doctor's accept checks it). */
static void keep_token_facts(session *s, const tm_identity *ident)
{
    s->exp_s = ident->exp;
    s->auth_time_s = ident->auth_time;
    g_strlcpy(s->amr, ident->amr, sizeof(s->amr));
}

/* The new session s takes over u's (a second tab, or back after a drop). */
static void take_over(session *s, user *u)
{
    if (u->sess) {
        /* The same person opened a new connection: it replaces the old one. */
        session *old = u->sess;
        tm__send_msg(old, json_pack("{s:s}", "type", "session.replaced"));
        old->u = NULL;
        tm__session_close(old, LWS_CLOSE_STATUS_POLICY_VIOLATION, "session replaced");
    }
    if (u->grace_timer) {
        g_source_remove(u->grace_timer);
        u->grace_timer = 0;
    }
    u->moved_away = false;
    u->grace_pending = false;
    u->sess = s;
    s->u = u;
}

/* hello with a guest link's code (first use) or a guest's resume secret
 * instead of a token: the session becomes the guest participant. A guest
 * has no token, so nothing expires the session but the visit's end. */
static void guest_hello(tm_signaling *sig, session *s, json_t *msg, const char *id)
{
    const char *code = tm__jstr(msg, "guest_code");
    const char *resume = code ? NULL : tm__jstr(msg, "guest_resume");
    if ((code && strlen(code) > 64) || (resume && strlen(resume) > 64)) {
        tm__reply_err(s, id, TM_EAUTH,
                      code ? "guest link refused: unknown" : "guest resume refused");
        return;
    }
    /* A guest whose visit another live node holds is sent there before
     * the link is used, so the code still works on the holder. */
    char visit_id[64], guest_id[64];
    if (tm__guest_link_visit(sig, code, resume, visit_id, guest_id) &&
        !tm__cluster_resume_guest(sig, s, id, visit_id, guest_id))
        return;
    char secret[32] = "";
    const char *why = NULL;
    int err = 0;
    user *u = tm__guest_redeem(sig, code, resume, secret, sizeof(secret), &why, &err);
    if (!u) {
        tm_info("ws.guest_refused", "ip=%s reason=%s", s->peer_ip, why);
        tm__reply_err(s, id, err, why);
        return;
    }
    tm__session_authenticated(s);
    char *uuid = g_uuid_string_random();
    snprintf(s->id, sizeof(s->id), "ws-%s", uuid);
    g_free(uuid);
    bool rejoined = resume && !u->sess;
    take_over(s, u);
    if (sig->on_authenticated)
        sig->on_authenticated(s->wsi, sig->on_authenticated_user);
    live_visit *v = g_hash_table_lookup(sig->visits, u->visit_id);
    int64_t now = tm_now_ms();
    tm_info("ws.hello", "user=%s resumed=%d", u->key, resume != NULL);
    json_t *data =
        json_pack("{s:s, s:s, s:s, s:o, s:b}", "sub", u->sub, "role", "guest", "protocol",
                  "telemed.v1", "server_time", tm__time_json(now), "resumed", resume != NULL);
    if (secret[0])
        json_object_set_new(data, "resume", json_string(secret));
    json_object_set_new(data, "expires_at", json_null());
    json_object_set_new(data, "state", resume_state(sig, u));
    json_object_set_new(
        data, "hospital",
        json_pack("{s:s, s:s}", "id", sig->cfg->hospital_id, "name", sig->cfg->hospital_name));
    json_object_set_new(data, "ice_servers", ice_servers_json(sig->cfg, u->key));
    json_object_set_new(data, "node", json_string(sig->cfg->node_id ? sig->cfg->node_id : ""));
    json_object_set_new(data, "nodes", tm__drain_nodes(sig));
    tm__reply_ok(s, id, data);
    if (tm__drain_turn_away(sig, s))
        return;
    if (v && rejoined)
        tm__party_presence(sig, v, u, true);
    else if (v)
        tm__party_push(sig, v);
}

void tm__handle_hello(tm_signaling *sig, session *s, json_t *msg, const char *id)
{
    if (s->u) {
        tm__reply_err(s, id, TM_ECONFLICT, "already authenticated");
        return;
    }
    const char *ua = tm__jstr(msg, "ua");
    if (ua)
        copy_utf8(s->ua, sizeof(s->ua), ua);
    if (!json_object_get(msg, "token") &&
        (json_object_get(msg, "guest_code") || json_object_get(msg, "guest_resume"))) {
        guest_hello(sig, s, msg, id);
        return;
    }
    tm_identity ident;
    bool admin = false;
    if (!verify_token(sig, s, id, tm__jstr(msg, "token"), &ident, &admin))
        return;
    char *uuid = g_uuid_string_random();
    snprintf(s->id, sizeof(s->id), "ws-%s", uuid);
    g_free(uuid);
    keep_token_facts(s, &ident);
    if (ident.role == TM_ROLE_PATIENT)
        tm__cluster_adopt_patient(sig, ident.sub);
    /* A session sent to the node holding the visit has not said a hello
     * that counts: the hello timeout closes it if it does not leave. */
    if (!tm__cluster_resume_active(sig, s, id, ident.role, ident.sub))
        return;
    tm__session_authenticated(s);
    user *u = tm__find_user(sig, ident.role, ident.sub);
    bool resumed = false, rejoined = false;
    if (!u) {
        u = tm__user_new(sig, ident.role, ident.sub);
    } else {
        resumed = u->grace_timer != 0 || u->grace_pending || u->visit_id[0] || u->visits->len;
        u->grace_pending = false;
        /* Back after a drop, as opposed to a second tab taking over a live session. */
        rejoined = resumed && !u->sess;
    }
    take_over(s, u);
    if (u->role == TM_ROLE_PATIENT && u->visit_id[0])
        tm__cluster_patient_away(sig, u->visit_id, false);
    u->admin = admin;
    g_strlcpy(u->name, ident.name, sizeof(u->name));
    g_strlcpy(u->dept, ident.dept, sizeof(u->dept));
    g_strlcpy(u->institution, ident.institution, sizeof(u->institution));
    tm_doctor_info info;
    if (u->role == TM_ROLE_DOCTOR && tm_store_doctor_get(sig->store, u->sub, &info) == 0)
        g_strlcpy(u->kind, info.kind, sizeof(u->kind));
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
                tm__notify_peer_presence(sig, v, u, true);
            }
        } else if (u->role == TM_ROLE_DOCTOR) {
            for (guint i = 0; i < u->visits->len; i++) {
                live_visit *v = g_hash_table_lookup(sig->visits, g_ptr_array_index(u->visits, i));
                if (v && tm__party_member(v, u)) {
                    tm__party_presence(sig, v, u, true);
                } else if (v) {
                    tm_store_participant_join(sig->store, v->id, u->sub, "doctor", s->ua, now);
                    tm__notify_peer_presence(sig, v, u, true);
                }
            }
        }
    }
    tm_info("ws.hello", "user=%s session=%s resumed=%d", u->key, s->id, resumed);
    json_t *data =
        json_pack("{s:s, s:s, s:s, s:o, s:b}", "sub", u->sub, "role", tm_role_name(u->role),
                  "protocol", "telemed.v1", "server_time", tm__time_json(now), "resumed", resumed);
    json_object_set_new(data, "expires_at", expires_json(s));
    json_object_set_new(data, "state", resume_state(sig, u));
    json_object_set_new(
        data, "hospital",
        json_pack("{s:s, s:s}", "id", sig->cfg->hospital_id, "name", sig->cfg->hospital_name));
    json_object_set_new(data, "ice_servers", ice_servers_json(sig->cfg, u->key));
    json_object_set_new(data, "institution",
                        u->institution[0] ? json_string(u->institution) : json_null());
    json_object_set_new(data, "node", json_string(sig->cfg->node_id ? sig->cfg->node_id : ""));
    json_object_set_new(data, "nodes", tm__drain_nodes(sig));
    tm__reply_ok(s, id, data);
    if (!resumed && tm__cluster_send_to_holder(sig, u))
        return;
    if (tm__drain_turn_away(sig, s))
        return;
    if (u->role == TM_ROLE_PATIENT && u->visit_id[0]) {
        live_visit *v = g_hash_table_lookup(sig->visits, u->visit_id);
        if (v) {
            v->last_position = -1;
            tm__mark_dept_dirty(sig, v->dept);
            tm__dispatch_dept(sig, v->dept);
            tm__flush_positions(sig);
        }
    }
    tm__mark_overview_dirty(sig);
}

/* A fresh token for the same person over the same connection: the session
 * lives on until the new token expires. */
static void handle_renew(request *r)
{
    tm_identity ident;
    bool admin = false;
    if (!verify_token(r->sig, r->s, r->id, tm__jstr(r->msg, "token"), &ident, &admin))
        return;
    if (ident.role != r->u->role || admin != r->u->admin || strcmp(ident.sub, r->u->sub) != 0 ||
        strcmp(ident.institution, r->u->institution) != 0) {
        tm__reply_err(r->s, r->id, TM_EPERM, "the token is for someone else");
        return;
    }
    keep_token_facts(r->s, &ident);
    tm_info("ws.renewed", "user=%s", r->u->key);
    tm__reply_ok(r->s, r->id, json_pack("{s:o}", "expires_at", expires_json(r->s)));
}

const tm__handler tm__auth_handlers[] = {
    {"auth.renew", handle_renew},
    {NULL, NULL},
};

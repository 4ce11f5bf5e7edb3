/*
 * guest_links.c - a family member or caregiver joins by a one-time link:
 * the attending doctor or the patient makes one for this visit (named by
 * them, expiring, revocable), the guest's page redeems it once, and a
 * resume secret brings the same guest back after a reload or a drop.
 *
 * Control loop. The store keeps only hashes of codes and secrets; who may
 * manage links is party.c's permission table (TM_ACT_GUEST_LINK).
 */
#include "signaling_internal.h"
#include "telemed/log.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#define MAX_GUEST_NAME_CHARS 64
#define MAX_GUEST_LINK_TTL_S 3600

/* n random bytes as base64url without padding into out (>= 4n/3 + 1). */
static int random_b64url(size_t n, char *out, size_t outlen)
{
    unsigned char bytes[32];
    if (n > sizeof(bytes) || RAND_bytes(bytes, (int)n) != 1)
        return TM_EIO;
    gchar *b64 = g_base64_encode(bytes, n);
    size_t j = 0;
    for (size_t i = 0; b64[i] && b64[i] != '=' && j + 1 < outlen; i++)
        out[j++] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
    out[j] = 0;
    g_free(b64);
    return 0;
}

/* The SHA-256 (hex) the store keeps instead of a secret. */
static void secret_hash(const char *secret, char out[65])
{
    gchar *hex = g_compute_checksum_for_string(G_CHECKSUM_SHA256, secret, -1);
    g_strlcpy(out, hex, 65);
    g_free(hex);
}

static void handle_link_create(request *r)
{
    tm_signaling *sig = r->sig;
    live_visit *v = tm__party_visit_for(r, TM_ACT_GUEST_LINK);
    if (!v)
        return;
    const char *name = tm__jstr(r->msg, "name");
    json_t *ttl = json_object_get(r->msg, "ttl_s");
    long chars = name ? g_utf8_strlen(name, -1) : 0;
    if (chars < 1 || chars > MAX_GUEST_NAME_CHARS ||
        (ttl && (!json_is_integer(ttl) || json_integer_value(ttl) < 1 ||
                 json_integer_value(ttl) > MAX_GUEST_LINK_TTL_S))) {
        tm__reply_err(r->s, r->id, TM_EINVAL,
                      "guest.link_create needs name (1-64 characters) and optional ttl_s "
                      "(1-3600)");
        return;
    }
    int64_t now = tm_now_ms();
    int64_t ttl_s = ttl ? json_integer_value(ttl) : sig->cfg->guest_link_ttl_s;
    char code[32], hash[65];
    if (random_b64url(16, code, sizeof(code)) < 0) {
        tm__reply_err(r->s, r->id, TM_EIO, NULL);
        return;
    }
    secret_hash(code, hash);
    tm_guest_link l = {.expires_ms = now + ttl_s * 1000};
    g_strlcpy(l.visit_id, v->id, sizeof(l.visit_id));
    g_strlcpy(l.name, name, sizeof(l.name));
    g_strlcpy(l.created_by, r->u->sub, sizeof(l.created_by));
    int rc = tm_store_guest_link_create(sig->store, &l, hash,
                                        tm__visit_role_name(tm__party_role(sig, v, r->u)), now);
    if (rc < 0) {
        tm__reply_err(r->s, r->id, rc, NULL);
        return;
    }
    tm_store_audit(sig->store, r->u->sub, tm__audit_role(r->u), "guest_link.create", v->id, "ok",
                   l.id);
    tm_info("party.guest_link", "visit=%s link=%s by=%s ttl_s=%lld", v->id, l.id, r->u->key,
            (long long)ttl_s);
    if (sig->feed)
        tm_feed_kick(sig->feed);
    char url[64];
    snprintf(url, sizeof(url), "/guest.html#code=%s", code);
    tm__reply_ok(r->s, r->id,
                 json_pack("{s:s, s:s, s:s, s:o}", "link_id", l.id, "code", code, "url", url,
                           "expires_at", tm__time_json(l.expires_ms)));
}

/* The live visit of a link, if the sender may manage its links. */
static live_visit *link_visit(request *r, const tm_guest_link *l)
{
    live_visit *v = g_hash_table_lookup(r->sig->visits, l->visit_id);
    if (!v || !tm__party_may(tm__party_role(r->sig, v, r->u), TM_ACT_GUEST_LINK)) {
        tm__reply_err(r->s, r->id, v ? TM_EPERM : TM_ECONFLICT,
                      v ? "your role in this visit does not allow it" : "the visit is over");
        return NULL;
    }
    return v;
}

static void handle_link_revoke(request *r)
{
    const char *link_id = tm__jstr(r->msg, "link_id");
    tm_guest_link l;
    if (!link_id) {
        tm__reply_err(r->s, r->id, TM_EINVAL, "link_id is required");
        return;
    }
    if (tm_store_guest_link_get(r->sig->store, TM_GUEST_LINK_BY_ID, link_id, &l) < 0) {
        tm__reply_err(r->s, r->id, TM_ENOTFOUND, "no such guest link");
        return;
    }
    if (!link_visit(r, &l))
        return;
    int rc = tm_store_guest_link_revoke(r->sig->store, link_id, r->u->sub, tm_now_ms(), &l);
    if (rc < 0) {
        char why[64];
        snprintf(why, sizeof(why), "the link is %s", l.state);
        tm__reply_err(r->s, r->id, rc, rc == TM_ECONFLICT ? why : NULL);
        return;
    }
    tm_store_audit(r->sig->store, r->u->sub, tm__audit_role(r->u), "guest_link.revoke", l.visit_id,
                   "ok", link_id);
    if (r->sig->feed)
        tm_feed_kick(r->sig->feed);
    tm__reply_ok(r->s, r->id, NULL);
}

static void handle_links(request *r)
{
    live_visit *v = tm__requested_visit(r);
    if (!v)
        return;
    if (!tm__party_may(tm__party_role(r->sig, v, r->u), TM_ACT_GUEST_LINK)) {
        tm__reply_err(r->s, r->id, TM_EPERM, "your role in this visit does not allow it");
        return;
    }
    json_t *links = tm_store_guest_links(r->sig->store, v->id, tm_now_ms());
    if (!links) {
        tm__reply_err(r->s, r->id, TM_EIO, NULL);
        return;
    }
    tm__reply_ok(r->s, r->id, json_pack("{s:o}", "links", links));
}

bool tm__guest_link_visit(tm_signaling *sig, const char *code, const char *resume,
                          char visit_id[64], char guest_id[64])
{
    char hash[65];
    tm_guest_link l;
    if (!code && !resume)
        return false;
    secret_hash(code ? code : resume, hash);
    if (tm_store_guest_link_get(sig->store, code ? TM_GUEST_LINK_BY_CODE : TM_GUEST_LINK_BY_RESUME,
                                hash, &l) < 0)
        return false;
    g_strlcpy(visit_id, l.visit_id, 64);
    g_strlcpy(guest_id, l.guest_id, 64);
    return true;
}

/* A guest link's code or a guest's resume secret: the user behind it, made
 * a party member on first use; NULL with *why (static) when refused. */
user *tm__guest_redeem(tm_signaling *sig, const char *code, const char *resume, char *resume_out,
                       size_t resume_len, const char **why, int *err)
{
    char hash[65];
    tm_guest_link l;
    *err = TM_EAUTH;
    secret_hash(code ? code : resume, hash);
    if (resume) {
        user *u = NULL;
        if (tm_store_guest_link_get(sig->store, TM_GUEST_LINK_BY_RESUME, hash, &l) == 0)
            u = tm__find_user(sig, TM_ROLE_GUEST, l.guest_id);
        live_visit *v = u ? g_hash_table_lookup(sig->visits, u->visit_id) : NULL;
        if (!v || !tm__party_member(v, u)) {
            *why = "guest resume refused";
            return NULL;
        }
        return u;
    }
    int rc = tm_store_guest_link_get(sig->store, TM_GUEST_LINK_BY_CODE, hash, &l);
    if (rc < 0 || strcmp(l.state, "open") != 0) {
        *why = rc < 0                            ? "guest link refused: unknown"
               : strcmp(l.state, "used") == 0    ? "guest link refused: used"
               : strcmp(l.state, "expired") == 0 ? "guest link refused: expired"
                                                 : "guest link refused: revoked";
        return NULL;
    }
    live_visit *v = g_hash_table_lookup(sig->visits, l.visit_id);
    if (!v || v->state != TM_VS_ACTIVE) {
        *why = "guest link refused: revoked";
        return NULL;
    }
    if (tm__party_size(sig, v) >= sig->cfg->max_participants) {
        *err = TM_ECONFLICT;
        *why = "the visit is full";
        return NULL;
    }
    char uuid[37], guest_id[64], resume_hash[65];
    tm_uuid4(uuid);
    snprintf(guest_id, sizeof(guest_id), "g-%s", uuid);
    if (random_b64url(16, resume_out, resume_len) < 0) {
        *err = TM_EIO;
        *why = "no randomness";
        return NULL;
    }
    secret_hash(resume_out, resume_hash);
    int64_t now = tm_now_ms();
    rc = tm_store_guest_link_redeem(sig->store, hash, guest_id, resume_hash, now, &l);
    if (rc < 0) {
        *err = rc == TM_ECONFLICT ? TM_EAUTH : rc;
        *why = rc == TM_ECONFLICT ? "guest link refused: used" : "guest link failed";
        return NULL;
    }
    user *u = tm__user_new(sig, TM_ROLE_GUEST, guest_id);
    g_strlcpy(u->name, l.name, sizeof(u->name));
    tm__party_add_visit_to(u, v->id);
    tm__party_member_add(v, u, TM_VR_GUEST, l.name, now);
    tm__party_label(sig, v, u->key, TM_VR_GUEST);
    tm_store_audit(sig->store, guest_id, "guest", "guest_link.use", v->id, "ok", l.id);
    tm_info("party.joined", "visit=%s user=%s role=guest link=%s", v->id, u->key, l.id);
    if (sig->feed)
        tm_feed_kick(sig->feed);
    return u;
}

const tm__handler tm__guest_link_handlers[] = {
    {"guest.link_create", handle_link_create},
    {"guest.link_revoke", handle_link_revoke},
    {"guest.links", handle_links},
    {NULL, NULL},
};

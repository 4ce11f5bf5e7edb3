/*
 * store_party.c - the SQLite backend's side of visits of more than two
 * (include/telemed/store.h, "visits of more than two"): participants beyond
 * patient and attending, invitations and guest links, each change with its
 * regulator event in one transaction, and the visit's timeline built from
 * those rows.
 *
 * Control loop thread only, on the store's connection (store_internal.h).
 * Guest link codes and resume secrets arrive here hashed; the store never
 * sees them in the clear.
 */
#include "store_internal.h"
#include "telemed/common.h"

#include <glib.h>
#include <string.h>

static bool party_role_valid(const char *r)
{
    static const char *const roles[] = {"consulting", "interpreter", "nurse", "guest"};
    for (size_t i = 0; r && i < TM_ARRAY_LEN(roles); i++)
        if (strcmp(r, roles[i]) == 0)
            return true;
    return false;
}

/* The token role a visit role is held under (guests have no token). */
static const char *token_role_of(const char *visit_role)
{
    if (strcmp(visit_role, "patient") == 0)
        return "patient";
    return strcmp(visit_role, "guest") == 0 ? "guest" : "doctor";
}

static json_t *party_event_data(const char *user_id, const char *visit_role, const char *reason)
{
    json_t *o = json_pack("{s:s, s:s}", "user_id", user_id, "visit_role", visit_role);
    if (reason)
        json_object_set_new(o, "reason", json_string(reason));
    return o;
}

/* The participant row, and with first its event, inside the caller's transaction. */
static int party_join_in_tx(tm_store *s, const char *visit_id, const char *user_id,
                            const char *visit_role, const char *user_agent, bool first,
                            int64_t now_ms)
{
    int rc = tm__store_run(
        s,
        "INSERT INTO participants(visit_id, user_id, role, visit_role, user_agent,"
        " joined_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
        "sssssI", visit_id, user_id, token_role_of(visit_role), visit_role, user_agent, now_ms);
    if (rc == TM_ECONFLICT)
        rc = tm__store_refuse(s, TM_EINVAL, "unknown visit");
    if (rc == 0 && first) {
        json_t *who = party_event_data(user_id, visit_role, NULL);
        rc = tm__store_outbox_append_with(s, "visit.participant_joined", visit_id, now_ms,
                                          "participant", who);
        json_decref(who);
    }
    return rc;
}

int tm_store_party_join(tm_store *s, const char *visit_id, const char *user_id,
                        const char *visit_role, const char *user_agent, bool first, int64_t now_ms)
{
    if (!party_role_valid(visit_role) || !user_id || !*user_id)
        return tm__store_refuse(s, TM_EINVAL, "unknown visit role");
    int rc = tm__store_begin(s);
    if (rc < 0)
        return rc;
    rc = party_join_in_tx(s, visit_id, user_id, visit_role, user_agent, first, now_ms);
    return tm__store_finish(s, rc);
}

int tm_store_party_leave(tm_store *s, const char *visit_id, const char *user_id, const char *reason,
                         int64_t now_ms)
{
    char role[16];
    int rc = tm_store_party_role(s, visit_id, user_id, role);
    if (rc < 0)
        return rc;
    if ((rc = tm__store_begin(s)) < 0)
        return rc;
    rc = tm__store_run(s,
                       "UPDATE participants SET left_at = ?3, leave_reason = ?4"
                       " WHERE visit_id = ?1 AND user_id = ?2 AND left_at IS NULL",
                       "ssIs", visit_id, user_id, now_ms, reason);
    /* A dropped participant's row is closed already; its last reason turns
     * from "disconnected" into the final one. */
    if (rc == 0)
        rc = tm__store_run(s,
                           "UPDATE participants SET leave_reason = ?3 WHERE id = (SELECT max(id)"
                           " FROM participants WHERE visit_id = ?1 AND user_id = ?2)",
                           "sss", visit_id, user_id, reason);
    if (rc == 0) {
        json_t *who = party_event_data(user_id, role, reason);
        rc = tm__store_outbox_append_with(s, "visit.participant_left", visit_id, now_ms,
                                          "participant", who);
        json_decref(who);
    }
    return tm__store_finish(s, rc);
}

json_t *tm_store_party_members(tm_store *s, const char *visit_id)
{
    /* A member's latest row is open, or closed by a drop. */
    return tm__store_rows_json(
        s, tm__store_query(s,
                           "SELECT p.user_id, p.visit_role,"
                           "  (SELECT min(joined_at) FROM participants q WHERE q.visit_id = ?1"
                           "    AND q.user_id = p.user_id) AS joined_at"
                           " FROM participants p WHERE p.visit_id = ?1"
                           "  AND p.visit_role IN ('consulting','interpreter','nurse','guest')"
                           "  AND p.id = (SELECT max(id) FROM participants r"
                           "    WHERE r.visit_id = ?1 AND r.user_id = p.user_id)"
                           "  AND (p.left_at IS NULL OR p.leave_reason = 'disconnected')"
                           " ORDER BY joined_at",
                           "s", visit_id));
}

int tm_store_party_role(tm_store *s, const char *visit_id, const char *user_id, char role[16])
{
    tm__stmt *st = tm__store_query(s,
                                   "SELECT visit_role FROM participants WHERE visit_id = ?1"
                                   " AND user_id = ?2 AND visit_role IS NOT NULL"
                                   " ORDER BY id DESC LIMIT 1",
                                   "ss", visit_id, user_id);
    int rc = tm__store_step(s, st);
    if (rc == 1)
        tm__store_col_text(st, 0, role, 16);
    tm__stmt_reset(st);
    if (rc == 0)
        return tm__store_refuse(s, TM_ENOTFOUND, "not a participant of the visit");
    return rc < 0 ? rc : 0;
}

/* ---- invitations --------------------------------------------------- */

static json_t *invite_json(tm_store *s, const char *invite_id, char *visit_id, size_t len)
{
    tm__stmt *st = tm__store_query(s,
                                   "SELECT id AS invite_id, visit_id, inviter_id, invitee_id,"
                                   " role, created_at, expires_at, outcome, decided_at"
                                   " FROM invites WHERE id = ?1",
                                   "s", invite_id);
    int rc = tm__store_step(s, st);
    json_t *o = NULL;
    if (rc == 1) {
        tm__store_col_text(st, 1, visit_id, len);
        o = tm__store_row_json(st);
        json_object_del(o, "visit_id");
    }
    tm__stmt_reset(st);
    return o;
}

static int invite_event(tm_store *s, const char *type, const char *invite_id, int64_t now_ms)
{
    char visit_id[64];
    json_t *inv = invite_json(s, invite_id, visit_id, sizeof(visit_id));
    if (!inv)
        return tm__store_refuse(s, TM_ENOTFOUND, "no such invite");
    int rc = tm__store_outbox_append_with(s, type, visit_id, now_ms, "invite", inv);
    json_decref(inv);
    return rc;
}

int tm_store_invite_create(tm_store *s, tm_invite *inv)
{
    if (!party_role_valid(inv->role) || strcmp(inv->role, "guest") == 0 || !inv->invitee_id[0])
        return tm__store_refuse(s, TM_EINVAL,
                                "invite role must be consulting, interpreter or nurse");
    tm__store_make_id("inv", inv->id, sizeof(inv->id));
    int rc = tm__store_begin(s);
    if (rc < 0)
        return rc;
    rc = tm__store_run(s,
                       "INSERT INTO invites(id, visit_id, inviter_id, invitee_id, role, created_at,"
                       " expires_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                       "sssssII", inv->id, inv->visit_id, inv->inviter_id, inv->invitee_id,
                       inv->role, inv->created_ms, inv->expires_ms);
    if (rc == TM_ECONFLICT)
        rc = tm__store_refuse(s, TM_EINVAL, "unknown visit");
    if (rc == 0)
        rc = invite_event(s, "visit.invite", inv->id, inv->created_ms);
    return tm__store_finish(s, rc);
}

static bool outcome_valid(const char *o)
{
    static const char *const outcomes[] = {"accepted", "declined", "timeout", "cancelled",
                                           "visit_ended"};
    for (size_t i = 0; o && i < TM_ARRAY_LEN(outcomes); i++)
        if (strcmp(o, outcomes[i]) == 0)
            return true;
    return false;
}

int tm_store_invite_end(tm_store *s, const char *invite_id, const char *outcome, int64_t now_ms)
{
    if (!outcome_valid(outcome))
        return tm__store_refuse(s, TM_EINVAL, "unknown invite outcome");
    int rc = tm__store_begin(s);
    if (rc < 0)
        return rc;
    rc = tm__store_run_one(s,
                           "UPDATE invites SET outcome = ?2, decided_at = ?3"
                           " WHERE id = ?1 AND outcome IS NULL",
                           "ssI", invite_id, outcome, now_ms);
    if (rc == TM_ENOTFOUND) {
        char visit_id[64];
        json_t *inv = invite_json(s, invite_id, visit_id, sizeof(visit_id));
        rc = inv ? tm__store_refuse(s, TM_ECONFLICT, "the invite has ended") : TM_ENOTFOUND;
        json_decref(inv);
    }
    if (rc == 0)
        rc = invite_event(s, "visit.invite_ended", invite_id, now_ms);
    return tm__store_finish(s, rc);
}

int tm_store_invite_accept(tm_store *s, const char *invite_id, const char *user_agent,
                           int64_t now_ms)
{
    int rc = tm__store_begin(s);
    if (rc < 0)
        return rc;
    rc = tm__store_run_one(s,
                           "UPDATE invites SET outcome = 'accepted', decided_at = ?2"
                           " WHERE id = ?1 AND outcome IS NULL",
                           "sI", invite_id, now_ms);
    char visit_id[64];
    json_t *inv = invite_json(s, invite_id, visit_id, sizeof(visit_id));
    if (rc == TM_ENOTFOUND && inv)
        rc = tm__store_refuse(s, TM_ECONFLICT, "the invite has ended");
    if (rc == 0) {
        const char *invitee = json_string_value(json_object_get(inv, "invitee_id"));
        const char *role = json_string_value(json_object_get(inv, "role"));
        rc = tm__store_outbox_append_with(s, "visit.invite_ended", visit_id, now_ms, "invite", inv);
        if (rc == 0)
            rc = party_join_in_tx(s, visit_id, invitee, role, user_agent, true, now_ms);
    }
    json_decref(inv);
    return tm__store_finish(s, rc);
}

/* Ends every open invite (of visit_id, or of every visit when NULL) inside
 * the caller's transaction. */
static const char open_invites_sql[] = "SELECT id FROM invites WHERE outcome IS NULL"
                                       " AND (?1 IS NULL OR visit_id = ?1) ORDER BY created_at";

static int invites_end_open_in_tx(tm_store *s, const char *visit_id, const char *outcome,
                                  int64_t now_ms, int *count)
{
    tm__stmt *st = tm__store_query(s, open_invites_sql, "s", visit_id);
    GPtrArray *ids = g_ptr_array_new_with_free_func(g_free);
    int rc;
    while ((rc = tm__store_step(s, st)) == 1)
        g_ptr_array_add(ids, g_strdup(tm__col_text(st, 0)));
    tm__stmt_reset(st);
    for (guint i = 0; rc == 0 && i < ids->len; i++) {
        rc = tm__store_run(s, "UPDATE invites SET outcome = ?2, decided_at = ?3 WHERE id = ?1",
                           "ssI", g_ptr_array_index(ids, i), outcome, now_ms);
        if (rc == 0)
            rc = invite_event(s, "visit.invite_ended", g_ptr_array_index(ids, i), now_ms);
    }
    if (count)
        *count = rc == 0 ? (int)ids->len : 0;
    g_ptr_array_free(ids, TRUE);
    return rc;
}

int tm_store_invites_end_open(tm_store *s, const char *outcome, int64_t now_ms, int *count)
{
    if (!outcome_valid(outcome))
        return tm__store_refuse(s, TM_EINVAL, "unknown invite outcome");
    int rc = tm__store_begin(s);
    if (rc < 0)
        return rc;
    rc = invites_end_open_in_tx(s, NULL, outcome, now_ms, count);
    return tm__store_finish(s, rc);
}

/* ---- guest links --------------------------------------------------- */

#define LINK_COLUMNS                                                                               \
    "SELECT id, visit_id, name, created_by, created_at, expires_at, state, guest_id FROM "         \
    "guest_links"

static void link_from_row(tm__stmt *st, tm_guest_link *l, int64_t now_ms)
{
    memset(l, 0, sizeof(*l));
    tm__store_col_text(st, 0, l->id, sizeof(l->id));
    tm__store_col_text(st, 1, l->visit_id, sizeof(l->visit_id));
    tm__store_col_text(st, 2, l->name, sizeof(l->name));
    tm__store_col_text(st, 3, l->created_by, sizeof(l->created_by));
    l->created_ms = tm__col_int64(st, 4);
    l->expires_ms = tm__col_int64(st, 5);
    tm__store_col_text(st, 6, l->state, sizeof(l->state));
    tm__store_col_text(st, 7, l->guest_id, sizeof(l->guest_id));
    if (now_ms && strcmp(l->state, "open") == 0 && now_ms >= l->expires_ms)
        g_strlcpy(l->state, "expired", sizeof(l->state));
}

/* One link by the column the SQL names as ?1. */
static int link_find(tm_store *s, const char *sql, const char *key, int64_t now_ms,
                     tm_guest_link *out)
{
    tm__stmt *st = tm__store_query(s, sql, "s", key);
    int rc = tm__store_step(s, st);
    if (rc == 1)
        link_from_row(st, out, now_ms);
    tm__stmt_reset(st);
    if (rc == 0)
        return tm__store_refuse(s, TM_ENOTFOUND, "no such guest link");
    return rc < 0 ? rc : 0;
}

static int link_event(tm_store *s, const tm_guest_link *l, const char *what, const char *by,
                      int64_t now_ms)
{
    /* Ids only: the name the patient gave stays in the hospital. */
    json_t *o = json_pack("{s:s, s:s}", "link_id", l->id, "event", what);
    if (l->guest_id[0])
        json_object_set_new(o, "guest_id", json_string(l->guest_id));
    if (by)
        json_object_set_new(o, "by", json_string(by));
    int rc =
        tm__store_outbox_append_with(s, "visit.guest_link", l->visit_id, now_ms, "guest_link", o);
    json_decref(o);
    return rc;
}

int tm_store_guest_link_create(tm_store *s, tm_guest_link *l, const char *code_sha256,
                               const char *creator_role, int64_t now_ms)
{
    if (!code_sha256 || strlen(code_sha256) != 64 || !l->name[0] || !l->created_by[0] ||
        l->expires_ms <= now_ms)
        return tm__store_refuse(s, TM_EINVAL, "a guest link needs code hash, name and expiry");
    tm__store_make_id("gl", l->id, sizeof(l->id));
    l->created_ms = now_ms;
    g_strlcpy(l->state, "open", sizeof(l->state));
    l->guest_id[0] = 0;
    int rc = tm__store_begin(s);
    if (rc < 0)
        return rc;
    rc = tm__store_run(s,
                       "INSERT INTO guest_links(id, visit_id, code_sha256, name, created_by,"
                       " created_by_role, created_at, expires_at) VALUES(?1,?2,?3,?4,?5,?6,?7,?8)",
                       "ssssssII", l->id, l->visit_id, code_sha256, l->name, l->created_by,
                       creator_role, now_ms, l->expires_ms);
    if (rc == 0)
        rc = link_event(s, l, "created", l->created_by, now_ms);
    return tm__store_finish(s, rc);
}

int tm_store_guest_link_redeem(tm_store *s, const char *code_sha256, const char *guest_id,
                               const char *resume_sha256, int64_t now_ms, tm_guest_link *out)
{
    int rc = link_find(s, LINK_COLUMNS " WHERE code_sha256 = ?1", code_sha256, now_ms, out);
    if (rc < 0)
        return rc;
    if (strcmp(out->state, "open") != 0)
        return tm__store_refuse(s, TM_ECONFLICT, "guest link not open");
    if ((rc = tm__store_begin(s)) < 0)
        return rc;
    rc = tm__store_run_one(s,
                           "UPDATE guest_links SET state = 'used', used_at = ?2, guest_id = ?3,"
                           " resume_sha256 = ?4 WHERE id = ?1 AND state = 'open'",
                           "sIss", out->id, now_ms, guest_id, resume_sha256);
    if (rc == 0) {
        g_strlcpy(out->state, "used", sizeof(out->state));
        g_strlcpy(out->guest_id, guest_id, sizeof(out->guest_id));
        rc = link_event(s, out, "used", NULL, now_ms);
    }
    if (rc == 0)
        rc = party_join_in_tx(s, out->visit_id, guest_id, "guest", NULL, true, now_ms);
    return tm__store_finish(s, rc);
}

int tm_store_guest_link_revoke(tm_store *s, const char *link_id, const char *by, int64_t now_ms,
                               tm_guest_link *out)
{
    tm_guest_link l;
    int rc = link_find(s, LINK_COLUMNS " WHERE id = ?1", link_id, now_ms, &l);
    if (out && rc == 0)
        *out = l;
    if (rc < 0)
        return rc;
    if (strcmp(l.state, "open") != 0)
        return tm__store_refuse(s, TM_ECONFLICT, "guest link not open");
    if ((rc = tm__store_begin(s)) < 0)
        return rc;
    rc = tm__store_run(s,
                       "UPDATE guest_links SET state = 'revoked', revoked_at = ?2, revoked_by = ?3"
                       " WHERE id = ?1",
                       "sIs", link_id, now_ms, by);
    if (rc == 0)
        rc = link_event(s, &l, "revoked", by, now_ms);
    if (rc == 0 && out)
        g_strlcpy(out->state, "revoked", sizeof(out->state));
    return tm__store_finish(s, rc);
}

int tm_store_guest_link_get(tm_store *s, tm_guest_link_key by, const char *value,
                            tm_guest_link *out)
{
    switch (by) {
    case TM_GUEST_LINK_BY_ID:
        return link_find(s, LINK_COLUMNS " WHERE id = ?1", value, tm_now_ms(), out);
    case TM_GUEST_LINK_BY_CODE:
        return link_find(s, LINK_COLUMNS " WHERE code_sha256 = ?1", value, tm_now_ms(), out);
    case TM_GUEST_LINK_BY_RESUME:
        return link_find(s, LINK_COLUMNS " WHERE resume_sha256 = ?1", value, tm_now_ms(), out);
    case TM_GUEST_LINK_BY_GUEST:
        return link_find(s, LINK_COLUMNS " WHERE guest_id = ?1", value, tm_now_ms(), out);
    }
    return tm__store_refuse(s, TM_EINVAL, "unknown guest link key");
}

json_t *tm_store_guest_links(tm_store *s, const char *visit_id, int64_t now_ms)
{
    return tm__store_rows_json(
        s, tm__store_query(s,
                           "SELECT id AS link_id, name, created_by, expires_at,"
                           " CASE WHEN state = 'open' AND expires_at <= ?2 THEN 'expired'"
                           " ELSE state END AS state, used_at"
                           " FROM guest_links WHERE visit_id = ?1 ORDER BY created_at, id",
                           "sI", visit_id, now_ms));
}

/* Inside tm_store_visit_end's transaction: nothing opens the visit again. */
void tm__store_party_close_prefetch(tm_store *s, const char *visit_id)
{
    tm__store_prefetch(s, open_invites_sql, "s", visit_id);
}

int tm__store_party_close(tm_store *s, const char *visit_id, int64_t now_ms)
{
    int rc = invites_end_open_in_tx(s, visit_id, "visit_ended", now_ms, NULL);
    if (rc == 0)
        rc = tm__store_run_later(
            s,
            "UPDATE guest_links SET state = 'revoked', revoked_at = ?2,"
            " revoked_by = 'visit_ended' WHERE visit_id = ?1 AND state = 'open'",
            "sI", visit_id, now_ms);
    return rc;
}

json_t *tm_store_visit_timeline(tm_store *s, const char *visit_id)
{
    /* The rows of three tables as one list of happenings, in time order. A
     * drop and its return are not in it: the participants rows show them. */
    return tm__store_rows_json(
        s, tm__store_query(
               s,
               "SELECT at, event, user_id, visit_role, \"by\", reason, invite_id, link_id FROM ("
               " SELECT min(joined_at) AS at, 'joined' AS event, user_id, visit_role,"
               "  NULL AS \"by\","
               "  NULL AS reason, NULL AS invite_id, NULL AS link_id, min(id) AS k"
               "  FROM participants WHERE visit_id = ?1 AND visit_role IS NOT NULL"
               "  GROUP BY user_id, visit_role"
               " UNION ALL SELECT left_at, 'left', user_id, visit_role, NULL, leave_reason, NULL,"
               "  NULL, id FROM participants WHERE visit_id = ?1 AND visit_role IS NOT NULL"
               "  AND left_at IS NOT NULL AND leave_reason <> 'disconnected'"
               " UNION ALL SELECT created_at, 'invited', invitee_id, role, inviter_id, NULL, id,"
               "  NULL, 0 FROM invites WHERE visit_id = ?1"
               " UNION ALL SELECT decided_at, 'invite_' || outcome, invitee_id, role, NULL, NULL,"
               "  id, NULL, 0 FROM invites WHERE visit_id = ?1 AND outcome IS NOT NULL"
               " UNION ALL SELECT created_at, 'guest_link_created', NULL, 'guest', created_by,"
               "  NULL, NULL, id, 0 FROM guest_links WHERE visit_id = ?1"
               " UNION ALL SELECT used_at, 'guest_link_used', guest_id, 'guest', NULL, NULL, NULL,"
               "  id, 0 FROM guest_links WHERE visit_id = ?1 AND used_at IS NOT NULL"
               " UNION ALL SELECT revoked_at, 'guest_link_revoked', NULL, 'guest', revoked_by,"
               "  NULL, NULL, id, 0 FROM guest_links WHERE visit_id = ?1 AND revoked_at IS NOT NULL"
               ") AS happenings ORDER BY at, k",
               "s", visit_id));
}

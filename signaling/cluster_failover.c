/*
 * cluster_failover.c - a live visit whose node died goes on on this node
 * (issue 19, docs/cluster.md "What happens on failure").
 *
 * Control loop. An active visit is held by one node (visits.media_node).
 * When that node dies its pages reconnect through another node. The first
 * participant who says hello here while the holder is dead (or, once the
 * takeover released it, none) takes the visit over: a conditional update
 * from the old holder to this node decides against every other node, the
 * visit is rebuilt from the store as after a restart, its recording goes on
 * as the next segment, and the other participants have the grace period to
 * come back (the page tries the nodes in turn; a node that still sees this
 * one alive sends them here). A released visit nobody came back
 * for yet is placed on exactly one node by the same update, where its
 * participants' grace period runs: if nobody comes back within it the
 * visit ends as any visit does ("grace_expired", visit.c).
 *
 * A visit held by another node that the registry still shows alive (it
 * died less than dead_after ago, or is alive and the page came here by the
 * load balancer) is not taken: the page is sent to the holder
 * (session.move, holder_changed) and closes this connection itself; only
 * when the holder's URL is unknown is the hello refused with 4409, and the
 * page tries the next node, until the holder answers or is dead.
 */
#include "signaling_internal.h"
#include "telemed/cluster.h"
#include "telemed/log.h"

#include <string.h>

#define CLOSE_VISIT_ELSEWHERE 4409

static const char *my_node(tm_signaling *sig)
{
    return tm_cluster_node_id(sig->cluster);
}

static bool node_live(tm_signaling *sig, const char *node_id)
{
    tm_node_info *nodes = NULL;
    size_t n = 0;
    bool live = false;
    if (tm_cluster_live_nodes(sig->cluster, &nodes, &n) < 0)
        return true; /* the registry cannot say: taking it could split the visit */
    for (size_t i = 0; i < n && !live; i++)
        live = strcmp(nodes[i].id, node_id) == 0;
    g_free(nodes);
    return live;
}

/* The recorder names tracks by visit role, as at accept (visit.c). */
static void label_tracks(tm_signaling *sig, live_visit *v)
{
    char key[200];
    snprintf(key, sizeof(key), "patient:%s", v->patient_sub);
    tm__party_label(sig, v, key, TM_VR_PATIENT);
    if (v->doctor_id[0]) {
        snprintf(key, sizeof(key), "doctor:%s", v->doctor_id);
        tm__party_label(sig, v, key, TM_VR_ATTENDING);
    }
}

/* This node's own live visit id (NULL: none, or only a mirror of another
 * node's, which the bus has not yet said started there). */
static live_visit *held_here(tm_signaling *sig, const char *id)
{
    live_visit *v = g_hash_table_lookup(sig->visits, id);
    return v && !v->remote ? v : NULL;
}

/* The visit id, held by holder ("" none), becomes this node's: NULL when
 * another node took it first, it is no longer active, or the store cannot
 * say. The row is read before the update that takes it: once that update
 * wins, nothing may fail before the visit runs here, or this node would
 * hold a visit nobody runs. A mirror of it still waiting here is stale:
 * it goes. */
static live_visit *take_over(tm_signaling *sig, const char *id, const char *holder)
{
    tm_visit rec;
    live_visit *mirror = g_hash_table_lookup(sig->visits, id);
    /* A mirror being accepted here: that accept's completion decides. */
    if ((mirror && (!mirror->remote || mirror->accepting)) ||
        tm_store_visit_get(sig->store, id, &rec) < 0 || strcmp(rec.state, "active") != 0)
        return NULL;
    if (tm_store_visit_place_media(sig->store, id, holder[0] ? holder : NULL, my_node(sig)) < 0)
        return NULL;
    if (mirror)
        tm__cluster_drop_mirror(sig, mirror);
    live_visit *v = tm__visit_restore(sig, &rec);
    label_tracks(sig, v);
    tm_visit_record_resume(sig->record, v->id);
    tm_cluster_publish(sig->cluster, TM_BUS_VISIT, v->id);
    tm__mark_overview_dirty(sig);
    tm_info("cluster.visit_resumed", "visit=%s node=%s from=%s", v->id, my_node(sig),
            holder[0] ? holder : "-");
    return v;
}

static void start_grace_if_away(tm_signaling *sig, user *u, const user *hello)
{
    if (!u || u == hello || !u->grace_pending || u->sess || u->grace_timer)
        return;
    u->grace_pending = false;
    tm__user_start_grace(sig, u);
}

/* Everyone of v but the user saying hello (NULL: nobody) has the grace
 * period from now to come back to this node. */
static void start_grace_of_absent(tm_signaling *sig, live_visit *v, const user *hello)
{
    start_grace_if_away(sig, tm__visit_patient(sig, v), hello);
    start_grace_if_away(sig, tm__visit_doctor(sig, v), hello);
    for (guint i = 0; i < v->party->len; i++) {
        party_member *m = g_ptr_array_index(v->party, i);
        start_grace_if_away(sig, g_hash_table_lookup(sig->users, m->key), hello);
    }
}

/* The hello on s cannot go on here: a visit of the user's is held by
 * holder, another live node. The page is sent there when holder's URL is
 * known; the hello is answered either way (every request is), and only
 * without a URL does this node close the connection. */
static void turn_away(tm_signaling *sig, session *s, const char *re, const char *visit_id,
                      const char *holder, const char *user_key)
{
    char url[300] = "";
    if (holder[0])
        tm__cluster_node_ws_url(sig, holder, url, sizeof(url));
    if (url[0]) {
        tm__send_msg(s, json_pack("{s:s, s:s, s:s, s:s}", "type", "session.move", "url", url,
                                  "visit_id", visit_id, "reason", "holder_changed"));
        tm_info("cluster.user_moved", "visit=%s user=%s to=%s reason=holder_changed", visit_id,
                user_key, holder);
    } else {
        tm_info("cluster.hello_elsewhere", "user=%s node=%s", user_key, my_node(sig));
    }
    tm__reply_err_reason(s, re, TM_ECONFLICT, "your visit goes on on another server; try again",
                         "visit_elsewhere");
    if (!url[0])
        tm__session_close(s, CLOSE_VISIT_ELSEWHERE, "visit_elsewhere");
}

/* Where the active visit id, held by holder in the store, goes on for a
 * user saying hello here (hello: their user, once the visit is here):
 * true when here (held here, or taken over now); false when the user must
 * go to away_holder (a live node; "" when unknown). */
static bool resume_here(tm_signaling *sig, const char *id, const char *holder, tm_role role,
                        const char *sub, char away_holder[64])
{
    away_holder[0] = '\0';
    if (strcmp(holder, my_node(sig)) == 0) {
        /* Sent here by the node that took the visit, the user can be
         * quicker than its bus event: the visit starts now, so this
         * hello resumes it and the page's media.offer finds it. */
        tm__cluster_sync_visit(sig, id);
        return true;
    }
    if (holder[0] && node_live(sig, holder)) {
        g_strlcpy(away_holder, holder, 64);
        return false;
    }
    live_visit *v = take_over(sig, id, holder);
    if (v) {
        start_grace_of_absent(sig, v, tm__find_user(sig, role, sub));
        return true;
    }
    if (held_here(sig, id))
        return true;
    /* another node took it first, or the store cannot say */
    if (tm_store_visit_media_node(sig->store, id, away_holder) < 0)
        away_holder[0] = '\0';
    return false;
}

static bool shared(tm_signaling *sig)
{
    return sig->cluster && tm_cluster_shared(sig->cluster);
}

bool tm__cluster_resume_active(tm_signaling *sig, session *s, const char *re, tm_role role,
                               const char *sub)
{
    if (!shared(sig) || (role != TM_ROLE_PATIENT && role != TM_ROLE_DOCTOR))
        return true;
    json_t *rows = tm_store_active_visits_of(sig->store, role == TM_ROLE_DOCTOR, sub);
    char away_id[64] = "", away_holder[64] = "";
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        const char *id = json_string_value(json_object_get(row, "id"));
        const char *holder = json_string_value(json_object_get(row, "media_node"));
        char to[64];
        if (!id || !holder || resume_here(sig, id, holder, role, sub, to))
            continue;
        g_strlcpy(away_id, id, sizeof(away_id));
        g_strlcpy(away_holder, to, sizeof(away_holder));
    }
    json_decref(rows);
    if (!away_id[0])
        return true;
    char key[200];
    snprintf(key, sizeof(key), "%s:%s", tm_role_name(role), sub);
    turn_away(sig, s, re, away_id, away_holder, key);
    return false;
}

bool tm__cluster_resume_guest(tm_signaling *sig, session *s, const char *re, const char *visit_id,
                              const char *guest_id)
{
    tm_visit rec;
    char holder[64], away[64];
    /* A mirror (the bus has not yet said the visit started elsewhere) is
     * not this node's: the store says where it runs. */
    if (!shared(sig) || held_here(sig, visit_id) ||
        tm_store_visit_get(sig->store, visit_id, &rec) < 0 || strcmp(rec.state, "active") != 0 ||
        tm_store_visit_media_node(sig->store, visit_id, holder) < 0 ||
        resume_here(sig, visit_id, holder, TM_ROLE_GUEST, guest_id, away))
        return true;
    char key[200];
    snprintf(key, sizeof(key), "guest:%s", guest_id[0] ? guest_id : "-");
    turn_away(sig, s, re, visit_id, away, key);
    return false;
}

bool tm__cluster_held_elsewhere(tm_signaling *sig, const char *visit_id, char holder[64], char *url,
                                size_t url_len)
{
    tm_visit rec;
    url[0] = '\0';
    if (!shared(sig) || tm_store_visit_get(sig->store, visit_id, &rec) < 0 ||
        strcmp(rec.state, "active") != 0 ||
        tm_store_visit_media_node(sig->store, visit_id, holder) < 0 || !holder[0] ||
        strcmp(holder, my_node(sig)) == 0 || !node_live(sig, holder))
        return false;
    tm__cluster_node_ws_url(sig, holder, url, url_len);
    return url[0] != '\0';
}

void tm__cluster_visit_released(tm_signaling *sig, const char *id)
{
    tm_visit rec;
    char holder[64];
    if (held_here(sig, id) || !shared(sig) || tm_store_visit_get(sig->store, id, &rec) < 0 ||
        strcmp(rec.state, "active") != 0 || tm_store_visit_media_node(sig->store, id, holder) < 0 ||
        holder[0])
        return;
    live_visit *v = take_over(sig, id, "");
    if (v)
        start_grace_of_absent(sig, v, NULL);
}

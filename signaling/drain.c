/*
 * drain.c - signaling on a node that drains (issue 19, server/node.c):
 * check-ins are refused with node_draining and nobody is offered, while
 * visits already offered or active go on to their end. Whoever is in no
 * such visit (a waiting patient, an idle doctor, a supervisor who watches
 * nothing) is told server.draining, with the other nodes' URLs, and their
 * session is closed so their page moves on; one who comes back here is
 * turned away the same way right after hello.
 *
 * Control loop only.
 */
#include "signaling_internal.h"
#include "telemed/log.h"
#include "telemed/node.h"

#include <string.h>

json_t *tm__drain_nodes(tm_signaling *sig)
{
    return tm_node_cluster_ws_urls(sig->cfg->cluster_urls);
}

static bool visit_is_live(tm_signaling *sig, const char *visit_id)
{
    live_visit *v = visit_id[0] ? g_hash_table_lookup(sig->visits, visit_id) : NULL;
    return v && (v->state == TM_VS_OFFERED || v->state == TM_VS_ACTIVE);
}

static bool user_in_live_visit(tm_signaling *sig, const user *u)
{
    switch (u->role) {
    case TM_ROLE_PATIENT:
    case TM_ROLE_GUEST:
        return visit_is_live(sig, u->visit_id);
    case TM_ROLE_DOCTOR:
        return (u->visits && u->visits->len > 0) || u->offer_visit[0];
    case TM_ROLE_SUPERVISOR:
    case TM_ROLE_ADMIN:
        return u->watching && u->watching->len > 0;
    default:
        return false;
    }
}

bool tm__drain_turn_away(tm_signaling *sig, session *s)
{
    if (!sig->draining || !s->u || s->closing || user_in_live_visit(sig, s->u))
        return false;
    json_t *m = json_pack("{s:s, s:s, s:o}", "type", "server.draining", "node", sig->cfg->node_id,
                          "nodes", tm__drain_nodes(sig));
    tm__send_msg(s, m);
    tm__session_close(s, TM_WS_CLOSE_DRAINING, "draining");
    tm_info("ws.turned_away", "user=%s session=%s reason=draining", s->u->key, s->id);
    return true;
}

void tm_signaling_drain(tm_signaling *sig)
{
    if (sig->draining)
        return;
    sig->draining = true;
    GHashTableIter it;
    gpointer key, val;
    int told = 0;
    g_hash_table_iter_init(&it, sig->users);
    while (g_hash_table_iter_next(&it, &key, &val)) {
        user *u = val;
        if (u->sess && tm__drain_turn_away(sig, u->sess))
            told++;
    }
    tm_info("signaling.draining", "turned_away=%d live_visits=%d", told,
            tm_signaling_live_visits(sig));
}

int tm_signaling_live_visits(tm_signaling *sig)
{
    int n = 0;
    GHashTableIter it;
    gpointer key, val;
    g_hash_table_iter_init(&it, sig->visits);
    while (g_hash_table_iter_next(&it, &key, &val)) {
        const live_visit *v = val;
        /* Mirrors of other nodes' visits are theirs to finish. */
        n += !v->remote && (v->state == TM_VS_OFFERED || v->state == TM_VS_ACTIVE);
    }
    return n;
}

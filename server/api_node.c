/*
 * api_node.c - this node's operations over REST (issue 19):
 *
 *   GET  /api/v1/admin/drain   whether the node drains, since when, until when
 *   POST /api/v1/admin/drain   start draining (idempotent): no new visits here,
 *                              live ones finish, then the process exits 0
 *
 * Draining takes a node out of service for the whole platform, so it is an
 * admin's call, or a supervisor's of the whole alliance; a supervisor scoped
 * to one member, a doctor or a patient gets 403. Control loop only.
 */
#include "http_internal.h"
#include "telemed/common.h"
#include "telemed/node.h"

#include <string.h>

static bool may_drain(http_req *r)
{
    return r->who.role == TM_ROLE_ADMIN ||
           (r->who.role == TM_ROLE_SUPERVISOR && !r->who.institution[0]);
}

static void api_drain(http_req *r)
{
    int m = r->p->method;
    if (m == LWSHUMETH_GET) {
        if (tm__need(r, tm__is_staff(r)))
            tm__respond_json(r->p, 200, tm_node_drain_json(r->app->node));
        return;
    }
    if (m != LWSHUMETH_POST) {
        tm__respond_err(r->p, TM_ENOTFOUND, "no such route");
        return;
    }
    if (!may_drain(r)) {
        tm__audit(r, "node.drain", tm_node_id(r->app->node), "denied");
        tm__respond_err(r->p, TM_EPERM, "draining a node is for admins and alliance supervisors");
        return;
    }
    char why[160];
    snprintf(why, sizeof(why), "%s:%s", tm_role_name(r->who.role), r->who.sub);
    bool started = tm_node_drain(r->app->node, why) == 0;
    tm__audit(r, "node.drain", tm_node_id(r->app->node), started ? "ok" : "already_draining");
    json_t *state = tm_node_drain_json(r->app->node);
    json_object_set_new(state, "started", json_boolean(started));
    tm__respond_json(r->p, 202, state);
}

void tm__api_admin(http_req *r)
{
    if (r->nseg == 2 && strcmp(r->seg[1], "drain") == 0)
        api_drain(r);
    else
        tm__respond_err(r->p, TM_ENOTFOUND, "no such route");
}

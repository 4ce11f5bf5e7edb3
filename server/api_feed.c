/*
 * api_feed.c - the regulator feed as REST resources: the live feed's state
 * and retries, the batch delivery profiles with their dead letters, and the
 * regulator identifiers the hospital's identity system owns.
 *
 * Control loop thread only.
 */
#include "http_internal.h"
#include "telemed/common.h"
#include "telemed/store.h"

#include <stdlib.h>
#include <string.h>

static void respond_profile_rc(http_req *r, int rc)
{
    tm__respond_err(r->p, rc,
                    rc == TM_ENOTFOUND   ? "no such profile or dead letter"
                    : rc == TM_EINVAL    ? "day must be YYYY-MM-DD"
                    : rc == TM_ECONFLICT ? "not a dead letter"
                                         : NULL);
}

/* /feed/profiles[/{name}[/run | /dead-letters/{id}/replay]]: the
 * delivery profiles, the deployment's and the alliance members' own
 * (feed_profile.h). */
static void api_feed_profiles(http_req *r)
{
    tm_feed_profiles *set = r->app->profiles;
    int m = r->p->method;
    if (m == LWSHUMETH_GET && r->nseg == 2) {
        tm__respond_json(r->p, 200,
                         json_pack("{s:o, s:o}", "profiles", tm_feed_profiles_list(set),
                                   "instances", tm_feed_profiles_instances(set)));
        return;
    }
    if (m == LWSHUMETH_GET && r->nseg == 3) {
        int rc = 0;
        json_t *st = tm_feed_profiles_status(set, r->seg[2], 100, &rc);
        if (!st)
            respond_profile_rc(r, rc);
        else
            tm__respond_json(r->p, 200, st);
        return;
    }
    if (m != LWSHUMETH_POST) {
        tm__respond_err(r->p, TM_ENOTFOUND, "no such route");
        return;
    }
    if (!tm__need(r, tm__is_admin(r)))
        return;
    if (r->nseg == 4 && strcmp(r->seg[3], "run") == 0) {
        bool bad = false;
        const char *day = tm__body_str(r->body, "day", 10, false, &bad);
        if (bad) {
            tm__respond_err(r->p, TM_EINVAL, "day must be YYYY-MM-DD");
            return;
        }
        int rc = tm_feed_profiles_run(set, r->seg[2], day);
        tm__audit(r, "feed.profile_run", r->seg[2], rc >= 0 ? "ok" : "failed");
        if (rc < 0)
            respond_profile_rc(r, rc);
        else
            tm__respond_json(r->p, 200,
                             json_pack("{s:s, s:i}", "profile", r->seg[2], "staged", rc));
        return;
    }
    if (r->nseg == 6 && strcmp(r->seg[3], "dead-letters") == 0 &&
        strcmp(r->seg[5], "replay") == 0) {
        char *endp;
        long long id = strtoll(r->seg[4], &endp, 10);
        if (*endp || id <= 0) {
            tm__respond_err(r->p, TM_EINVAL, "id must be a positive integer");
            return;
        }
        int rc = tm_feed_profiles_replay(set, r->seg[2], id);
        tm__audit(r, "feed.profile_replay", r->seg[4], rc == 0 ? "ok" : "failed");
        if (rc < 0)
            respond_profile_rc(r, rc);
        else
            tm__respond_json(r->p, 200,
                             json_pack("{s:I, s:s}", "id", (json_int_t)id, "state", "pending"));
        return;
    }
    tm__respond_err(r->p, TM_ENOTFOUND, "no such route");
}

/* PUT /regulator-ids/{doctor|patient|dept}/{id} {"code", "cert_type"?}:
 * identifiers the hospital's identity system owns and a platform asks for. */
void tm__api_regulator_ids(http_req *r)
{
    if (!tm__need(r, tm__is_admin(r)))
        return;
    if (r->p->method != LWSHUMETH_PUT || r->nseg != 3) {
        tm__respond_err(r->p, TM_ENOTFOUND, "no such route");
        return;
    }
    bool bad = false;
    const char *code = tm__body_str(r->body, "code", 64, true, &bad);
    const char *cert_type = tm__body_str(r->body, "cert_type", 8, false, &bad);
    if (bad || !tm__id_ok(r->seg[2])) {
        tm__respond_err(r->p, TM_EINVAL, "code (1-64 chars) required; cert_type optional");
        return;
    }
    int rc = tm_store_regulator_id_put(r->app->store, r->seg[1], r->seg[2], cert_type, code);
    tm__audit(r, "regulator_id.put", r->seg[2], rc == 0 ? "ok" : "failed");
    if (rc < 0)
        tm__respond_err(r->p, rc, rc == TM_EINVAL ? "kind must be doctor, patient or dept" : NULL);
    else
        tm__respond_json(r->p, 200, json_pack("{s:s, s:s}", "kind", r->seg[1], "id", r->seg[2]));
}

/* GET /feed/compliance[?days=N]: per batch profile and business day, what
 * went up and whether it went up in time (feed_tianjin.h). */
static void api_feed_compliance(http_req *r)
{
    char days_arg[16];
    const char *days = tm__arg(r, "days", days_arg, sizeof(days_arg));
    char *endp = NULL;
    long n = days ? strtol(days, &endp, 10) : 14;
    if (r->p->method != LWSHUMETH_GET || r->nseg != 2) {
        tm__respond_err(r->p, TM_ENOTFOUND, "no such route");
        return;
    }
    if ((days && *endp) || n < 1 || n > 366) {
        tm__respond_err(r->p, TM_EINVAL, "days must be 1 to 366");
        return;
    }
    json_t *profiles = tm_feed_profiles_compliance(r->app->profiles, (int)n);
    if (!profiles) {
        tm__respond_err(r->p, TM_EIO, NULL);
        return;
    }
    tm__respond_json(r->p, 200, json_pack("{s:o}", "profiles", profiles));
}

/* Status, dead letters and replay of one outbox consumer (the feed, the
 * messaging system): the same engine, so the same routes. */
static void consumer_routes(http_req *r, tm_feed *f, const char *replay_action)
{
    if (r->p->method == LWSHUMETH_GET && r->nseg == 1) {
        json_t *status = tm_feed_status(f);
        json_t *dead = tm_feed_dead_letters(f, 100);
        if (!status) {
            json_decref(dead);
            tm__respond_err(r->p, TM_EIO, NULL);
            return;
        }
        json_object_set_new(status, "dead_letters", dead ? dead : json_array());
        tm__respond_json(r->p, 200, status);
        return;
    }
    if (r->p->method == LWSHUMETH_GET && r->nseg == 2 && strcmp(r->seg[1], "dead-letters") == 0) {
        tm__respond_json(r->p, 200,
                         json_pack("{s:o}", "dead_letters", tm_feed_dead_letters(f, 1000)));
        return;
    }
    if (r->p->method == LWSHUMETH_POST && r->nseg == 4 && strcmp(r->seg[1], "dead-letters") == 0 &&
        strcmp(r->seg[3], "replay") == 0) {
        if (!tm__need(r, tm__is_admin(r)))
            return;
        char *endp;
        long long seq = strtoll(r->seg[2], &endp, 10);
        if (*endp || seq <= 0) {
            tm__respond_err(r->p, TM_EINVAL, "seq must be a positive integer");
            return;
        }
        int rc = tm_feed_replay(f, seq);
        tm__audit(r, replay_action, r->seg[2], rc == 0 ? "ok" : "failed");
        if (rc < 0)
            tm__respond_err(r->p, rc, rc == TM_ECONFLICT ? "not a dead letter" : NULL);
        else
            tm__respond_json(r->p, 200,
                             json_pack("{s:I, s:s}", "seq", (json_int_t)seq, "state", "pending"));
        return;
    }
    tm__respond_err(r->p, TM_ENOTFOUND, "no such route");
}

void tm__api_feed(http_req *r)
{
    tm_feed *f = r->app->feed;
    if (!tm__need(r, tm__is_staff(r)))
        return;
    if (r->nseg >= 2 && strcmp(r->seg[1], "profiles") == 0) {
        api_feed_profiles(r);
        return;
    }
    if (r->nseg >= 2 && strcmp(r->seg[1], "compliance") == 0) {
        api_feed_compliance(r);
        return;
    }
    if (!f) {
        tm__respond_err(r->p, TM_EUNSUPPORTED, "the regulator feed is not running");
        return;
    }
    consumer_routes(r, f, "feed.replay");
}

/* followup18: the messaging system's delivery of the same outbox rows. */
void tm__api_messaging(http_req *r)
{
    if (!tm__need(r, tm__is_staff(r)))
        return;
    if (!r->app->messaging) {
        tm__respond_err(r->p, TM_EUNSUPPORTED, "messaging_url is not set");
        return;
    }
    consumer_routes(r, r->app->messaging, "messaging.replay");
}

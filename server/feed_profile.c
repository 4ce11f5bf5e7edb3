/*
 * feed_profile.c - the set of running delivery profiles
 * (include/telemed/feed_profile.h): one table of what each profile can do,
 * so the server and its admin API handle the real-time webhook and the
 * batch uploads alike.
 */
#include "telemed/feed_profile.h"
#include "telemed/common.h"
#include "telemed/feed.h"
#include "telemed/feed_tianjin.h"

#include <string.h>

typedef struct profile_ops {
    const char *name;
    /* institution NULL: the deployment's instance; else that member's own,
     * its endpoint put in cfg by endpoint() below. */
    void *(*start)(tm_store *store, const tm_config *cfg, const char *institution,
                   GMainContext *ctx, char **err);
    void (*endpoint)(tm_config *cfg, const char *url, const char *secret, const char *app_key);
    void (*stop)(void *self);
    json_t *(*status)(void *self);
    json_t *(*dead_letters)(void *self, int limit);
    int (*run)(void *self, const char *day);
    int (*replay)(void *self, int64_t id);
    int (*metrics)(void *self, GString *out);
    json_t *(*compliance)(void *self, int limit); /* NULL: a real-time profile has no days */
} profile_ops;

/* The webhook's operations: feed.c's engine, real time, so its "run" is a
 * delivery pass now and it has no business days to report. */
static void *webhook_start(tm_store *store, const tm_config *cfg, const char *institution,
                           GMainContext *ctx, char **err)
{
    if (institution)
        return tm_feed_member_new(store, cfg, institution, cfg->feed_url, cfg->feed_secret, ctx,
                                  err);
    return tm_feed_new(store, cfg, NULL, ctx, err);
}
static void webhook_endpoint(tm_config *cfg, const char *url, const char *secret,
                             const char *app_key)
{
    (void)app_key;
    cfg->feed_url = (char *)url;
    cfg->feed_secret = *secret ? (char *)secret : NULL;
}
static void webhook_stop(void *self)
{
    tm_feed_free(self);
}
static json_t *webhook_status(void *self)
{
    return tm_feed_status(self);
}
static json_t *webhook_dead(void *self, int limit)
{
    return tm_feed_dead_letters(self, limit);
}
static int webhook_run(void *self, const char *day)
{
    (void)day;
    tm_feed_kick(self);
    return 0;
}
static int webhook_replay(void *self, int64_t id)
{
    return tm_feed_replay(self, id);
}
static int webhook_metrics(void *self, GString *out)
{
    return tm_feed_metrics(self, out);
}

/* The tianjin profile's operations on an untyped self. */
static void *tianjin_start(tm_store *store, const tm_config *cfg, const char *institution,
                           GMainContext *ctx, char **err)
{
    return tm_tianjin_member_new(store, cfg, institution, ctx, err);
}
static void tianjin_endpoint(tm_config *cfg, const char *url, const char *secret,
                             const char *app_key)
{
    cfg->tianjin_url = (char *)url;
    cfg->tianjin_app_secret = (char *)secret;
    cfg->tianjin_app_key = (char *)app_key;
}
static void tianjin_stop(void *self)
{
    tm_tianjin_free(self);
}
static json_t *tianjin_status(void *self)
{
    return tm_tianjin_status(self);
}
static json_t *tianjin_dead(void *self, int limit)
{
    return tm_tianjin_dead_letters(self, limit);
}
static int tianjin_run(void *self, const char *day)
{
    return tm_tianjin_run(self, day);
}
static int tianjin_replay(void *self, int64_t id)
{
    return tm_tianjin_replay(self, id);
}
static int tianjin_metrics(void *self, GString *out)
{
    return tm_tianjin_metrics(self, out);
}

static json_t *tianjin_compliance(void *self, int limit)
{
    return tm_tianjin_compliance(self, limit);
}

static const profile_ops profiles[] = {
    {"webhook", webhook_start, webhook_endpoint, webhook_stop, webhook_status, webhook_dead,
     webhook_run, webhook_replay, webhook_metrics, NULL},
    {"tianjin", tianjin_start, tianjin_endpoint, tianjin_stop, tianjin_status, tianjin_dead,
     tianjin_run, tianjin_replay, tianjin_metrics, tianjin_compliance},
};

/* One running instance: a deployment's profile ("tianjin") or a member's
 * own ("tianjin@county-west"). */
typedef struct running {
    const profile_ops *ops;
    void *self;
    char name[96];
    char institution[64]; /* "" for the deployment's */
} running;

struct tm_feed_profiles {
    GArray *run; /* of running */
};

bool tm_feed_profile_enabled(const tm_config *cfg, const char *name)
{
    if (!cfg->feed_profiles)
        return strcmp(name, "webhook") == 0;
    char **names = g_strsplit(cfg->feed_profiles, ",", -1);
    bool found = false;
    for (char **n = names; *n && !found; n++)
        found = strcmp(g_strstrip(*n), name) == 0;
    g_strfreev(names);
    return found;
}

static const profile_ops *ops_named(const char *name)
{
    for (size_t i = 0; i < TM_ARRAY_LEN(profiles); i++)
        if (strcmp(profiles[i].name, name) == 0)
            return &profiles[i];
    return NULL;
}

static int start_one(tm_feed_profiles *set, const profile_ops *ops, tm_store *store,
                     const tm_config *cfg, const char *institution, GMainContext *ctx, char **err)
{
    running r = {ops, NULL, "", ""};
    if (institution) {
        snprintf(r.name, sizeof(r.name), "%s@%s", ops->name, institution);
        snprintf(r.institution, sizeof(r.institution), "%s", institution);
    } else {
        snprintf(r.name, sizeof(r.name), "%s", ops->name);
    }
    char *why = NULL;
    r.self = ops->start(store, cfg, institution, ctx, &why);
    if (!r.self) {
        *err = g_strdup_printf("profile %s: %s", r.name, why ? why : "cannot start");
        g_free(why);
        return TM_EINVAL;
    }
    g_array_append_val(set->run, r);
    return 0;
}

typedef struct member_start {
    tm_feed_profiles *set;
    tm_store *store;
    const tm_config *cfg;
    GMainContext *ctx;
    char **err;
    GPtrArray *ids, *kinds; /* the routes, borrowed strings */
} member_start;

/* One member's own instance: the deployment's settings with the member's
 * endpoint and credentials in their place. */
static int start_member(const char *institution, const char *profile, const char *url,
                        const char *secret, const char *app_key, void *user)
{
    member_start *m = user;
    const profile_ops *ops = ops_named(profile);
    tm_config cfg = *m->cfg; /* shallow: the profile copies what it keeps */
    ops->endpoint(&cfg, url, secret, app_key);
    return start_one(m->set, ops, m->store, &cfg, institution, m->ctx, m->err);
}

static int add_route(const char *institution, const char *profile, const char *url,
                     const char *secret, const char *app_key, void *user)
{
    (void)url, (void)secret, (void)app_key;
    member_start *m = user;
    g_ptr_array_add(m->ids, g_strdup(institution));
    g_ptr_array_add(m->kinds, g_strdup(profile));
    return 0;
}

/* The routes as configured (none: an empty table), written before any
 * instance runs, so that none hands out a row routed elsewhere. */
static int write_routes(tm_store *store, const tm_config *cfg, char **err)
{
    member_start m = {NULL,
                      store,
                      cfg,
                      NULL,
                      err,
                      g_ptr_array_new_with_free_func(g_free),
                      g_ptr_array_new_with_free_func(g_free)};
    int rc = tm_config_foreach_institution_feed(cfg->institution_feeds, add_route, &m, err);
    if (rc == 0 && tm_route_set(store, (const char *const *)m.ids->pdata,
                                (const char *const *)m.kinds->pdata, m.ids->len) < 0) {
        *err = g_strdup_printf("institution_feeds: cannot write the routes: %s",
                               tm_store_errmsg(store));
        rc = TM_EIO;
    }
    g_ptr_array_unref(m.ids);
    g_ptr_array_unref(m.kinds);
    return rc;
}

tm_feed_profiles *tm_feed_profiles_start(tm_store *store, const tm_config *cfg, GMainContext *ctx,
                                         char **err)
{
    tm_feed_profiles *set = g_new0(tm_feed_profiles, 1);
    set->run = g_array_new(FALSE, TRUE, sizeof(running));
    if (write_routes(store, cfg, err) < 0)
        goto fail;
    for (size_t i = 0; i < TM_ARRAY_LEN(profiles); i++) {
        if (tm_feed_profile_enabled(cfg, profiles[i].name) &&
            start_one(set, &profiles[i], store, cfg, NULL, ctx, err) < 0)
            goto fail;
    }
    tm_feed *webhook = tm_feed_profiles_webhook(set);
    if (webhook && cfg->institution_feeds)
        tm_feed_route_first(webhook);
    member_start m = {set, store, cfg, ctx, err, NULL, NULL};
    if (cfg->institution_feeds &&
        tm_config_foreach_institution_feed(cfg->institution_feeds, start_member, &m, err) < 0)
        goto fail;
    return set;
fail:
    tm_feed_profiles_free(set);
    return NULL;
}

void tm_feed_profiles_free(tm_feed_profiles *set)
{
    if (!set)
        return;
    for (guint i = 0; i < set->run->len; i++) {
        running *r = &g_array_index(set->run, running, i);
        r->ops->stop(r->self);
    }
    g_array_free(set->run, TRUE);
    g_free(set);
}

static running *find(tm_feed_profiles *set, const char *name)
{
    for (guint i = 0; set && name && i < set->run->len; i++)
        if (strcmp(g_array_index(set->run, running, i).name, name) == 0)
            return &g_array_index(set->run, running, i);
    return NULL;
}

tm_feed *tm_feed_profiles_webhook(tm_feed_profiles *set)
{
    running *r = find(set, "webhook");
    return r ? r->self : NULL;
}

json_t *tm_feed_profiles_list(tm_feed_profiles *set)
{
    json_t *arr = json_array();
    for (guint i = 0; set && i < set->run->len; i++)
        json_array_append_new(arr, json_string(g_array_index(set->run, running, i).name));
    return arr;
}

json_t *tm_feed_profiles_instances(tm_feed_profiles *set)
{
    json_t *arr = json_array();
    for (guint i = 0; set && i < set->run->len; i++) {
        const running *r = &g_array_index(set->run, running, i);
        json_array_append_new(
            arr,
            json_pack("{s:s, s:s, s:o}", "name", r->name, "profile", r->ops->name, "institution_id",
                      r->institution[0] ? json_string(r->institution) : json_null()));
    }
    return arr;
}

json_t *tm_feed_profiles_status(tm_feed_profiles *set, const char *name, int limit, int *rc)
{
    running *r = find(set, name);
    *rc = r ? 0 : TM_ENOTFOUND;
    if (!r)
        return NULL;
    json_t *st = r->ops->status(r->self);
    json_t *dead = r->ops->dead_letters(r->self, limit);
    if (!st || !dead) {
        json_decref(st);
        json_decref(dead);
        *rc = TM_EIO;
        return NULL;
    }
    json_object_set_new(st, "profile", json_string(r->name));
    json_object_set_new(st, "institution_id",
                        r->institution[0] ? json_string(r->institution) : json_null());
    json_object_set_new(st, "dead_letters", dead);
    return st;
}

int tm_feed_profiles_run(tm_feed_profiles *set, const char *name, const char *day)
{
    running *r = find(set, name);
    return r ? r->ops->run(r->self, day) : TM_ENOTFOUND;
}

int tm_feed_profiles_replay(tm_feed_profiles *set, const char *name, int64_t id)
{
    running *r = find(set, name);
    return r ? r->ops->replay(r->self, id) : TM_ENOTFOUND;
}

int tm_feed_profiles_metrics(tm_feed_profiles *set, GString *out)
{
    int rc = 0;
    for (guint i = 0; set && i < set->run->len; i++) {
        running *r = &g_array_index(set->run, running, i);
        if (r->ops->metrics(r->self, out) < 0)
            rc = TM_EIO;
    }
    return rc;
}

json_t *tm_feed_profiles_compliance(tm_feed_profiles *set, int limit)
{
    json_t *all = json_array();
    for (guint i = 0; set && i < set->run->len; i++) {
        running *r = &g_array_index(set->run, running, i);
        if (!r->ops->compliance)
            continue;
        json_t *c = r->ops->compliance(r->self, limit);
        if (!c) {
            json_decref(all);
            return NULL;
        }
        json_array_append_new(all, c);
    }
    return all;
}

/*
 * feed_profile.c - the set of running batch delivery profiles
 * (include/telemed/feed_profile.h): one table of what each profile can do,
 * so the server and its admin API handle them alike.
 */
#include "telemed/feed_profile.h"
#include "telemed/common.h"
#include "telemed/feed_tianjin.h"

#include <string.h>

typedef struct profile_ops {
    const char *name;
    void *(*start)(tm_store *store, const tm_config *cfg, GMainContext *ctx, char **err);
    void (*stop)(void *self);
    json_t *(*status)(void *self);
    json_t *(*dead_letters)(void *self, int limit);
    int (*run)(void *self, const char *day);
    int (*replay)(void *self, int64_t id);
    int (*metrics)(void *self, GString *out);
    json_t *(*compliance)(void *self, int limit);
} profile_ops;

/* The tianjin profile's operations on an untyped self. */
static void *tianjin_start(tm_store *store, const tm_config *cfg, GMainContext *ctx, char **err)
{
    return tm_tianjin_new(store, cfg, ctx, err);
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
    {"tianjin", tianjin_start, tianjin_stop, tianjin_status, tianjin_dead, tianjin_run,
     tianjin_replay, tianjin_metrics, tianjin_compliance},
};

typedef struct running {
    const profile_ops *ops;
    void *self;
} running;

struct tm_feed_profiles {
    running run[TM_ARRAY_LEN(profiles)];
    size_t n;
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

tm_feed_profiles *tm_feed_profiles_start(tm_store *store, const tm_config *cfg, GMainContext *ctx,
                                         char **err)
{
    tm_feed_profiles *set = g_new0(tm_feed_profiles, 1);
    for (size_t i = 0; i < TM_ARRAY_LEN(profiles); i++) {
        if (!tm_feed_profile_enabled(cfg, profiles[i].name))
            continue;
        char *why = NULL;
        void *self = profiles[i].start(store, cfg, ctx, &why);
        if (!self) {
            *err = g_strdup_printf("profile %s: %s", profiles[i].name, why ? why : "cannot start");
            g_free(why);
            tm_feed_profiles_free(set);
            return NULL;
        }
        set->run[set->n++] = (running){&profiles[i], self};
    }
    return set;
}

void tm_feed_profiles_free(tm_feed_profiles *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->n; i++)
        set->run[i].ops->stop(set->run[i].self);
    g_free(set);
}

static running *find(tm_feed_profiles *set, const char *name)
{
    for (size_t i = 0; set && name && i < set->n; i++)
        if (strcmp(set->run[i].ops->name, name) == 0)
            return &set->run[i];
    return NULL;
}

json_t *tm_feed_profiles_list(tm_feed_profiles *set)
{
    json_t *arr = json_array();
    for (size_t i = 0; set && i < set->n; i++)
        json_array_append_new(arr, json_string(set->run[i].ops->name));
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
    for (size_t i = 0; set && i < set->n; i++)
        if (set->run[i].ops->metrics(set->run[i].self, out) < 0)
            rc = TM_EIO;
    return rc;
}

json_t *tm_feed_profiles_compliance(tm_feed_profiles *set, int limit)
{
    json_t *all = json_array();
    for (size_t i = 0; set && i < set->n; i++) {
        json_t *c = set->run[i].ops->compliance(set->run[i].self, limit);
        if (!c) {
            json_decref(all);
            return NULL;
        }
        json_array_append_new(all, c);
    }
    return all;
}

/*
 * feed_profile.h - the regulator feed's delivery profiles: how visit
 * records leave the hospital for one platform, chosen per deployment by
 * feed_profiles (docs/regulator-feed.md, "Delivery profiles").
 *
 * Every profile is one row of the table in server/feed_profile.c, behind
 * one set of operations (start, status, dead letters, run, replay,
 * metrics, compliance): `webhook`, the real-time profile (feed.h: every
 * outbox event as it happens, signed JSON to feed_url or the NDJSON file
 * with none), and the batch profiles, `tianjin` (feed_tianjin.h) today.
 *
 * Threading: the control loop only, like the profiles themselves.
 */
#ifndef TELEMED_FEED_PROFILE_H
#define TELEMED_FEED_PROFILE_H

#include "telemed/config.h"
#include "telemed/feed.h"
#include "telemed/store.h"

#include <glib.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct tm_feed_profiles tm_feed_profiles;

/* Whether name is listed in cfg->feed_profiles (comma-separated). */
bool tm_feed_profile_enabled(const tm_config *cfg, const char *name);

/* Starts every profile listed in cfg->feed_profiles on ctx (NULL =
 * default context), then each alliance member's own listed in
 * cfg->institution_feeds (after writing them as the store's routes, so the
 * deployment's instances leave those members' visits out); an empty set
 * when none is. Borrows store. NULL with
 * *err (new string, g_free) naming the profile that could not start. */
tm_feed_profiles *tm_feed_profiles_start(tm_store *store, const tm_config *cfg, GMainContext *ctx,
                                         char **err);
/* Stops them all (requests in flight are cancelled; records stay pending). */
void tm_feed_profiles_free(tm_feed_profiles *set);

/* The running webhook's engine (borrowed, owned by set), for the kicks of
 * the parts that write events; NULL when webhook is not listed. */
tm_feed *tm_feed_profiles_webhook(tm_feed_profiles *set);

/* Names of the running instances: the deployment's profiles by their
 * names, then each member's own as "<profile>@<institution>". New reference. */
json_t *tm_feed_profiles_list(tm_feed_profiles *set);
/* The same as objects {name, profile, institution_id (null: the
 * deployment's)}. New reference. */
json_t *tm_feed_profiles_instances(tm_feed_profiles *set);
/* The profile's status with its dead letters (up to limit). NULL when no
 * profile of that name runs (or the store cannot be read: see *rc). */
json_t *tm_feed_profiles_status(tm_feed_profiles *set, const char *name, int limit, int *rc);
/* The nightly run now for day (YYYY-MM-DD, NULL = the previous day):
 * number of new records (webhook: a delivery pass now, 0), TM_ENOTFOUND (no such profile),
 * TM_EINVAL (day). */
int tm_feed_profiles_run(tm_feed_profiles *set, const char *name, const char *day);
/* A dead record back to pending: TM_ENOTFOUND, TM_ECONFLICT, TM_EIO. */
int tm_feed_profiles_replay(tm_feed_profiles *set, const char *name, int64_t id);
/* Every profile's Prometheus lines appended to out. 0 or TM_EIO. */
int tm_feed_profiles_metrics(tm_feed_profiles *set, GString *out);
/* Every batch profile's compliance figures (the webhook has no days) (per business day: records,
 * accepted, pending, dead letters by reason, check-in, deadline met or
 * missed; feed_tianjin.h says the fields), the last limit days each, as an
 * array. New reference; NULL when the store cannot be read. */
json_t *tm_feed_profiles_compliance(tm_feed_profiles *set, int limit);

#endif

/*
 * app.h - the parts of one running telemed-server, as the process wires
 * them: shared by main.c, http.c (with its api*.c resources) and demo.c
 * only.
 */
#ifndef TELEMED_APP_H
#define TELEMED_APP_H

#include "telemed/config.h"
#include "telemed/conn_limit.h"
#include "telemed/feed.h"
#include "telemed/feed_profile.h"
#include "telemed/jwt.h"
#include "telemed/media.h"
#include "telemed/node.h"
#include "telemed/record_seal.h"
#include "telemed/review.h"
#include "telemed/signaling.h"
#include "telemed/store.h"
#include "telemed/web_static.h"

#include <glib.h>
#include <libwebsockets.h>
#include <uv.h>

typedef struct tm_app {
    tm_config cfg;
    char *jwt_secret;    /* effective HS256 secret (configured or kept in data_dir); NULL:
                            HS256 off (an identity provider's keys only) */
    uint8_t rec_key[32]; /* recordings' key, when have_rec_key */
    bool have_rec_key;
    tm_store *store;
    tm_jwt_verifier *jwt;
    tm_signaling *sig;
    tm_feed *feed; /* the webhook profile's engine (owned by profiles); NULL when not listed */
    tm_feed_profiles *profiles; /* every delivery profile (webhook, tianjin, ...) */
    tm_feed *messaging;         /* the messaging system's consumer; NULL without messaging_url */
    tm_media *media;
    tm_node *node;             /* this node behind the load balancer: id, health, drain */
    tm_conn_limit *conn_limit; /* unauthenticated connections per address */
    uint64_t conns_refused;    /* closed at accept by conn_limit */
    int64_t conns_refused_logged_ms;
    tm_seal_key *seal_key;   /* the hospital's key that seals visit records */
    tm_sealer *sealer;       /* seals each visit once its record is complete */
    tm_visit_record *record; /* the recording part of the visit record */
    tm_review *review;       /* review renditions; NULL when review_render_max is 0 */
    int verifies_running;    /* GET .../verify jobs hashing files (api_records.c) */
    struct lws_context *lws;
    bool lws_unbound;   /* its vhost could not listen: not torn down */
    char *csp;          /* the pages' content-security-policy (cluster_urls in connect-src) */
    tm_web_static *web; /* the web client's files (web_static.c) */
    uv_loop_t uv;       /* lws' connections, run by uv_source on loop */
    GSource *uv_source; /* NULL until uv is initialised */
    GMainLoop *loop;
    int port; /* the port actually bound */
    int64_t started_ms;
    /* this node among several: registry and bus (issue 19, server/cluster.c) */
    struct tm_cluster *cluster;
} tm_app;

/* The lws callback of the "http-api" protocol: REST, /healthz, /metrics. */
int tm_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len);
size_t tm_http_pss_size(void);

/* Seeds the demo hospital (idempotent) and prints its links. */
int tm_demo_seed(tm_app *app);
void tm_demo_print(tm_app *app);

#endif

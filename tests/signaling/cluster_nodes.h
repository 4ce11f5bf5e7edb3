/*
 * cluster_nodes.h - two-node tests on one database: a node is a
 * tm_signaling with its own store handle, JWT verifier and tm_cluster;
 * a client is a session without a socket whose frames are kept. Header-only,
 * for tests. The test defines SECRET and `static tm_config cfg; static char
 * *dir;` (the config every node copies, the test's directory) before it
 * includes this.
 */
#ifndef TM_CLUSTER_NODES_H
#define TM_CLUSTER_NODES_H

#include "signaling_testing.h"
#include "telemed/cluster.h"
#include "telemed/common.h"
#include "telemed/config.h"
#include "telemed/jwt.h"
#include "telemed/store.h"

#include <glib.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "tm_test.h"

typedef struct node {
    tm_config *cfg; /* the test's, with this node's id and database */
    tm_store *store;
    tm_jwt_verifier *jwt;
    tm_signaling *sig;
    tm_cluster *cluster;
} node;

static inline node node_start(const char *id, const char *db, const char *bus_url)
{
    node n = {0};
    /* A PostgreSQL URL as it is; anything else a file in the test's dir. */
    char *path =
        g_str_has_prefix(db, "postgresql://") ? g_strdup(db) : g_build_filename(dir, db, NULL);
    n.cfg = g_memdup2(&cfg, sizeof cfg); /* shares the test's strings but these two */
    n.cfg->node_id = g_strdup(id);
    n.cfg->db = path;
    char *err = NULL;
    n.store = tm_store_open(path, cfg.hospital_id, &err);
    CHECK(n.store != NULL);
    n.jwt = tm_jwt_verifier_new(SECRET);
    n.sig = tm_signaling_new(n.cfg, n.store, n.jwt, &err);
    if (!n.sig)
        fprintf(stderr, "signaling: %s\n", err);
    CHECK(n.sig != NULL);
    char url[64];
    g_snprintf(url, sizeof(url), "https://%s.test:8443", id);
    n.cluster = tm_cluster_new(&(tm_cluster_options){.node_id = id,
                                                     .public_url = url,
                                                     .store = n.store,
                                                     .bus_url = bus_url,
                                                     .reconnect_max_ms = 500},
                               &err);
    CHECK(n.cluster != NULL);
    tm_signaling_set_cluster(n.sig, n.cluster);
    tm_signaling_ready(n.sig);
    return n;
}

static inline void node_stop(node *n)
{
    tm_signaling_set_cluster(n->sig, NULL);
    tm_cluster_free(n->cluster);
    tm_signaling_free(n->sig);
    tm_jwt_verifier_free(n->jwt);
    tm_store_free(n->store);
    g_free(n->cfg->node_id);
    g_free(n->cfg->db);
    g_free(n->cfg);
}

typedef struct client {
    tm_signaling_session *s;
    GPtrArray *frames; /* json_t *, every frame received so far */
} client;

static inline void pump(client *c)
{
    char *text;
    while ((text = tm_signaling_session_pop(c->s))) {
        json_t *m = json_loads(text, 0, NULL);
        CHECK(m != NULL);
        g_ptr_array_add(c->frames, m);
        g_free(text);
    }
}

/* A session on n of sub as role, acting for institution ("" none). */
static inline client *connect_in(node *n, const char *sub, tm_role role, const char *institution)
{
    tm_identity id = {0};
    g_strlcpy(id.sub, sub, sizeof(id.sub));
    g_strlcpy(id.institution, institution, sizeof(id.institution));
    id.role = role;
    id.iat = tm_now_ms() / 1000;
    id.exp = id.iat + 3600;
    id.auth_time = id.iat; /* a doctor proves who they are to accept */
    char *token = tm_jwt_mint_hs256(SECRET, &id);
    char *hello = g_strdup_printf("{\"type\":\"hello\",\"id\":\"h\",\"token\":\"%s\"}", token);
    client *c = g_new0(client, 1);
    c->frames = g_ptr_array_new_with_free_func((GDestroyNotify)json_decref);
    c->s = tm_signaling_session_open(n->sig, "127.0.0.1");
    tm_signaling_session_frame(c->s, hello, strlen(hello));
    g_free(hello);
    free(token);
    return c;
}

static inline client *connect_as(node *n, const char *sub, tm_role role)
{
    return connect_in(n, sub, role, "");
}

static inline void client_close(client *c)
{
    tm_signaling_session_closed(c->s);
    g_ptr_array_free(c->frames, TRUE);
    g_free(c);
}

static inline void send_text(client *c, const char *text)
{
    tm_signaling_session_frame(c->s, text, strlen(text));
}

static inline bool buses_ready(void *data)
{
    node *n = data;
    return tm_cluster_bus_ready(n[0].cluster) && tm_cluster_bus_ready(n[1].cluster);
}
#endif

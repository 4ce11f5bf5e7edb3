/*
 * node.h - this process as one node among several behind a load balancer:
 * its name and the URL pages reach it by, whether it takes new visits
 * (/healthz), the node label on /metrics, and the drain that takes it out
 * of rotation while its live visits finish (docs/cluster.md).
 *
 * Control loop only: the drain's timer runs on the default main context.
 */
#ifndef TELEMED_NODE_H
#define TELEMED_NODE_H

#include "telemed/config.h"

#include <glib.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct tm_node tm_node;

/* What a drain needs from the rest of the process, called on the control
 * loop: stop_taking once when the drain starts, live_visits once a second
 * while it runs, drained once at its end (timed_out when drain_timeout_s
 * passed with `left` visits still live). */
typedef struct tm_node_hooks {
    void (*stop_taking)(void *user);
    int (*live_visits)(void *user);
    void (*drained)(void *user, bool timed_out, int left);
    void *user;
} tm_node_hooks;

/* Borrows cfg (node_id resolved, see tm_config_resolve_paths) for its
 * lifetime; port is the one actually bound, for the default public_url.
 * Never NULL. */
tm_node *tm_node_new(const tm_config *cfg, int port, const tm_node_hooks *hooks);
void tm_node_free(tm_node *n);

const char *tm_node_id(const tm_node *n);
/* public_url, or https://<listen address or host name>:<port>. */
const char *tm_node_public_url(const tm_node *n);
bool tm_node_draining(const tm_node *n);

/* Starts draining; why ("signal", "admin:<sub>") goes to the log. Returns 0
 * when this call started it, 1 when it was draining already (nothing
 * changes: the first start and deadline stand). */
int tm_node_drain(tm_node *n, const char *why);
/* The drain as the admin call reports it (new reference): node, draining,
 * since, deadline, live_visits (counted now). */
json_t *tm_node_drain_json(tm_node *n);

/* The /healthz body (new reference) and its status: 200 while the node
 * takes new visits, 503 while draining or when the store is not usable
 * (schema_version <= 0). */
json_t *tm_node_health(const tm_node *n, int schema_version, int64_t uptime_s, int *status);

/* The WebSocket URLs pages use for the nodes of a cluster_urls value
 * ("https://b:8443, https://c:8443" -> ["wss://b:8443/ws", ...]); an empty
 * array for NULL. New reference. Pure. */
json_t *tm_node_cluster_ws_urls(const char *cluster_urls);

/* Gives every sample line of a Prometheus text exposition the label
 * node="<node_id>" (first among its labels); comments and blank lines are
 * left alone. Pure; node_id must be a valid id (no quotes). */
void tm_node_label_metrics(GString *text, const char *node_id);

#endif

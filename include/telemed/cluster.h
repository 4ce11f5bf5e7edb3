/*
 * cluster.h - one node among several on one database: its heartbeat in the
 * node registry, and the bus that tells every node what changed.
 *
 * The bus carries one channel, `telemed`, whose payloads name what changed:
 * `queue:<dept_id>` (a department's waiting room), `visit:<visit_id>` (a
 * visit's state or media node), `node:<node_id>` (a node came, left,
 * drains or died) and `shifts:<node_id>` (that node changed doctors' shifts
 * through its REST API). An event is a hint to reload from the store, never the
 * truth itself, so a node that missed events (the bus was down) loses
 * nothing: after reconnecting it is told to resync everything.
 *
 * On PostgreSQL the bus is LISTEN/NOTIFY on a dedicated connection, driven
 * without blocking by the control loop (its socket is a GSource). With no
 * bus URL (one node on SQLite) published events are delivered in-process
 * from an idle callback, so the code that reacts is the same.
 *
 * Events published in a burst are coalesced: a payload already waiting to
 * be sent or delivered is not queued twice.
 *
 * Heartbeats: with a shared database (store and bus URL), a thread of the
 * cluster's own writes the heartbeat on its own connection, so a node whose
 * control loop is busy stays alive; the loop's lag goes into the row as
 * load, and other nodes report it (cluster.node_slow, /metrics). Takeover
 * is decided on a missing heartbeat only (a dead process, a cut network, a
 * loop hung past hung_after_ms), never on a slow one.
 *
 * Control loop thread only (the GMainContext the cluster was made in).
 */
#ifndef TELEMED_CLUSTER_H
#define TELEMED_CLUSTER_H

#include "telemed/store.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct tm_cluster tm_cluster;

/* The channel every node LISTENs on. */
#define TM_CLUSTER_CHANNEL "telemed"

typedef enum {
    TM_BUS_QUEUE,  /* id: a department */
    TM_BUS_VISIT,  /* id: a visit (also a visit a dead node held, released) */
    TM_BUS_NODE,   /* id: a node */
    TM_BUS_SHIFTS, /* id: the node that changed shifts */
    TM_BUS_RESYNC, /* id: "": events may have been lost; reload everything; last */
} tm_bus_kind;

/* One event, its id borrowed for the call. */
typedef void (*tm_cluster_event_fn)(tm_bus_kind kind, const char *id, void *user);
/* Fills this node's load (visits, waiting, peers, draining) before each
 * heartbeat; the other fields are the cluster's. */
typedef void (*tm_cluster_load_fn)(tm_node_info *load, void *user);

typedef struct tm_cluster_options {
    const char *node_id;    /* required */
    const char *public_url; /* required: how pages reach this node */
    /* The registry's store (borrowed, outlives the cluster); NULL runs the
     * bus alone, with no heartbeat. */
    tm_store *store;
    /* postgresql:// URL of the bus; NULL or "" delivers in-process. */
    const char *bus_url;
    int heartbeat_ms;     /* 0: 2000 */
    int dead_after_ms;    /* 0: 10000; a node is dead after this without one */
    int reconnect_max_ms; /* 0: 5000; the bus's backoff grows up to it */
    /* 0: 5000; a bus connect (and its LISTEN) not done by then is given up
     * and tried again with the backoff */
    int connect_timeout_ms;
    /* 0: 120000; a control loop this late is hung: the node stops beating
     * and the others take it over (docs/cluster.md, "busy or dead") */
    int hung_after_ms;
} tm_cluster_options;

/* A new cluster member: registers at once when it has a store, then beats
 * every heartbeat_ms; the bus connects in the background. NULL with *err
 * (a new string, g_free) on bad options. Free with tm_cluster_free
 * (accepts NULL), which removes the node's row: leaving on purpose. */
tm_cluster *tm_cluster_new(const tm_cluster_options *o, char **err);
void tm_cluster_free(tm_cluster *c);

/* Where events go (one handler; NULL stops delivery) and where the load
 * comes from. */
void tm_cluster_set_event_handler(tm_cluster *c, tm_cluster_event_fn fn, void *user);
void tm_cluster_set_load_source(tm_cluster *c, tm_cluster_load_fn fn, void *user);

/* Publishes an event to every node, this one included. TM_EINVAL when id is
 * empty, too long (63 bytes max) or has a character outside [A-Za-z0-9._-],
 * or kind is TM_BUS_RESYNC. On PostgreSQL an event published while the bus
 * is down is sent once it is back. */
int tm_cluster_publish(tm_cluster *c, tm_bus_kind kind, const char *id);

/* Whether the bus is up: LISTENing on PostgreSQL, always in-process. */
bool tm_cluster_bus_ready(const tm_cluster *c);
/* Whether the node has a registry (a store shared with other nodes). */
bool tm_cluster_shared(const tm_cluster *c);
/* This node's id (borrowed). */
const char *tm_cluster_node_id(const tm_cluster *c);
/* The live nodes now, best placed for a new visit first (tm_store_nodes_live);
 * *out a new array (g_free). TM_EINVAL without a store. */
int tm_cluster_live_nodes(tm_cluster *c, tm_node_info **out, size_t *n);
/* This node has `doctors` doctors on duty in dept now: written to the
 * registry and announced as queue:<dept>, so that every node's waiting
 * patients of dept count them. TM_EINVAL without a store. */
int tm_cluster_set_doctors(tm_cluster *c, const char *dept, int doctors);
/* The doctors on duty in dept on the other live nodes, into *doctors.
 * TM_EINVAL without a store. */
int tm_cluster_doctors_elsewhere(tm_cluster *c, const char *dept, int *doctors);

/* Counters for /metrics and tests. */
typedef struct tm_cluster_stats {
    uint64_t received;  /* events handed to the handler */
    uint64_t rejected;  /* payloads that were not events */
    uint64_t published; /* events sent (or delivered in-process) */
    uint64_t reconnects;
    uint64_t heartbeats; /* written by the control loop, with the load */
    uint64_t heartbeat_failures;
    uint64_t thread_beats; /* written by the heartbeat thread (PostgreSQL) */
    uint64_t thread_beat_failures;
    int64_t loop_lag_ms; /* how late the loop was at the thread's last beat */
} tm_cluster_stats;
void tm_cluster_stats_get(const tm_cluster *c, tm_cluster_stats *out);
/* Appends the heartbeat counters, this node's loop lag and the live
 * nodes' (label peer) to a /metrics text; nothing without a store. */
void tm_cluster_metrics(const tm_cluster *c, GString *out);

/* Parses a bus payload "<kind>:<id>" (pointer and length: it comes off the
 * network). 0 with *kind and id (NUL-terminated, idlen >= 64) or TM_EINVAL. */
int tm_cluster_parse_event(const char *payload, size_t len, tm_bus_kind *kind, char *id,
                           size_t idlen);

#endif

/*
 * cluster.c - this node's place among several (include/telemed/cluster.h):
 * the heartbeat that registers it with its load, the takeover of what dead
 * nodes held, and the bus of change events between nodes.
 *
 * Owns: the bus connection (PostgreSQL) or the in-process delivery queue,
 * the events waiting to be sent, its timers, and on PostgreSQL the
 * heartbeat thread. Control loop thread only, but for that thread.
 *
 * The heartbeat is written by a thread of its own on its own store handle,
 * so that a node whose loop is busy (a burst of work, a slow step) still
 * beats and is not taken over while it lives. The thread learns how late
 * the loop is from one atomic, the loop's last tick (written by the loop,
 * read by the thread: the only state they share), and writes that lag into
 * the heartbeat row, where every node reads it as "slow". A loop stuck
 * past hung_after_ms is taken as hung: the thread stops beating, so the
 * node is dead to the others and what it held is taken over.
 *
 * The PostgreSQL side never blocks: the connection is made with
 * PQconnectStart/PQconnectPoll, then runs in non-blocking mode with its
 * socket watched by a GLib fd source, so a slow or restarting database
 * delays events, never the loop. A lost connection is made again with
 * growing backoff; a connect or LISTEN not answered by the connect deadline
 * is given up the same way (libpq's connect_timeout holds only for blocking
 * connects), and keepalives end a connection whose peer went silent; once
 * LISTEN is back every event of the gap may be lost,
 * so the handler is told to resync. Outgoing events go as one batch of
 * NOTIFY statements at a time; a batch whose result never came is sent
 * again after a reconnect (an event is a hint: twice is harmless).
 */
#include "telemed/cluster.h"

#include "telemed/common.h"
#include "telemed/log.h"

#include <errno.h>
#include <glib-unix.h>
#include <glib.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#define BATCH_MAX 64
#define BACKOFF_MIN_MS 100
#define CONNECT_TIMEOUT_MS 5000
#define HUNG_AFTER_MS 120000
/* The loop ticks this often; a tick later than this by SLOW_LAG_MS or more
 * makes the node "slow" in logs and /metrics. */
#define TICK_MS 200
#define SLOW_LAG_MS 1000

/* The heartbeat thread (see the top). The loop writes loop_tick_ms and the
 * stop pipe; the thread writes its counters; nothing else is shared. */
typedef struct beater {
    GThread *thread;
    char *db_url, *hospital_id, *node_id; /* the thread's copies */
    int period_ms, hung_after_ms;
    int stop_fd[2];               /* a byte on it (or its closing) stops the thread */
    _Atomic int64_t loop_tick_ms; /* monotonic ms of the loop's last tick */
    _Atomic int64_t lag_ms;       /* the lag of the last beat written */
    _Atomic uint64_t beats, failures;
} beater;

typedef enum { BUS_DOWN, BUS_CONNECTING, BUS_LISTENING, BUS_READY } bus_state;

struct tm_cluster {
    char *node_id, *public_url, *bus_url;
    tm_store *store;
    int heartbeat_ms, dead_after_ms, reconnect_max_ms, connect_timeout_ms, hung_after_ms;
    int64_t started_at_ms;
    tm_cluster_event_fn on_event;
    void *event_user;
    tm_cluster_load_fn load;
    void *load_user;
    guint beat_timer;
    char *live_nodes;       /* "a,b,c": the live set at the last heartbeat */
    GHashTable *slow_peers; /* ids of other nodes seen slow, owned */
    tm_node_info *peers;    /* the live nodes at the last heartbeat, owned */
    size_t n_peers;
    beater *beater;   /* NULL without a shared database */
    guint tick_timer; /* the loop's tick for the beater */

    GQueue *pending;     /* payloads to send or deliver, owned */
    GHashTable *queued;  /* the same payloads, borrowed: no duplicates */
    GPtrArray *inflight; /* the batch sent and not yet answered, owned */
    guint deliver_idle;  /* in-process delivery, or the next send */

    PGconn *pg;
    bus_state state;
    guint watch; /* the socket's fd source */
    int watch_fd;
    GIOCondition watch_cond;
    bool query_busy;
    int backoff_ms;
    guint reconnect_timer;
    guint connect_timer; /* the deadline of a connect and its LISTEN */
    bool ever_ready;

    tm_cluster_stats stats;
};

static const char *const kind_prefix[] = {[TM_BUS_QUEUE] = "queue:",
                                          [TM_BUS_VISIT] = "visit:",
                                          [TM_BUS_NODE] = "node:",
                                          [TM_BUS_SHIFTS] = "shifts:"};

static bool in_process(const tm_cluster *c)
{
    return c->bus_url == NULL;
}

static bool id_ok(const char *id, size_t len)
{
    if (len == 0 || len > 63)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!g_ascii_isalnum(id[i]) && id[i] != '-' && id[i] != '_' && id[i] != '.')
            return false;
    return true;
}

int tm_cluster_parse_event(const char *payload, size_t len, tm_bus_kind *kind, char *id,
                           size_t idlen)
{
    for (int k = TM_BUS_QUEUE; k < TM_BUS_RESYNC; k++) {
        size_t plen = strlen(kind_prefix[k]);
        if (len <= plen || memcmp(payload, kind_prefix[k], plen) != 0)
            continue;
        size_t n = len - plen;
        if (!id_ok(payload + plen, n) || n >= idlen)
            return TM_EINVAL;
        memcpy(id, payload + plen, n);
        id[n] = '\0';
        *kind = (tm_bus_kind)k;
        return 0;
    }
    return TM_EINVAL;
}

static void deliver(tm_cluster *c, tm_bus_kind kind, const char *id)
{
    c->stats.received++;
    if (c->on_event)
        c->on_event(kind, id, c->event_user);
}

static void deliver_payload(tm_cluster *c, const char *payload, size_t len)
{
    tm_bus_kind kind;
    char id[64];
    if (tm_cluster_parse_event(payload, len, &kind, id, sizeof(id)) < 0) {
        c->stats.rejected++;
        tm_warn("cluster.bus_rejected", "node=%s len=%zu", c->node_id, len);
        return;
    }
    deliver(c, kind, id);
}

/* ---- the PostgreSQL bus ---------------------------------------------- */

static void bus_connect(tm_cluster *c);
static void bus_send_pending(tm_cluster *c);

static gboolean on_socket(gint fd, GIOCondition cond, gpointer data);

/* Watches fd for cond, replacing the watch only when either changed (the
 * socket can change while connecting). */
static void watch_socket(tm_cluster *c, int fd, GIOCondition cond)
{
    if (c->watch && c->watch_fd == fd && c->watch_cond == cond)
        return;
    if (c->watch)
        g_source_remove(c->watch);
    c->watch = g_unix_fd_add(fd, cond, on_socket, c);
    c->watch_fd = fd;
    c->watch_cond = cond;
}

static void unwatch_socket(tm_cluster *c)
{
    if (c->watch)
        g_source_remove(c->watch);
    c->watch = 0;
}

/* Reading always; writing too while libpq holds unsent bytes. */
static void watch_ready(tm_cluster *c)
{
    GIOCondition cond = G_IO_IN;
    int flushed = PQflush(c->pg);
    if (flushed == 1)
        cond |= G_IO_OUT;
    watch_socket(c, PQsocket(c->pg), cond);
}

/* libpq's message, made one log value: its line breaks and quotes go. */
static const char *pg_error(PGconn *pg, char *buf, size_t len)
{
    const char *m = pg ? PQerrorMessage(pg) : "out of memory";
    g_strlcpy(buf, m && *m ? m : "connection closed", len);
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\t' || *p == '"')
            *p = ' ';
    return g_strstrip(buf);
}

/* Server notices (a shutdown's warning) are log lines, not stderr text. */
static void on_notice(void *arg, const char *message)
{
    tm_cluster *c = arg;
    char buf[256];
    g_strlcpy(buf, message, sizeof(buf));
    g_strdelimit(buf, "\n\t\"", ' ');
    tm_debug("cluster.bus_notice", "node=%s notice=\"%s\"", c->node_id, g_strstrip(buf));
}

static gboolean reconnect_due(gpointer data)
{
    tm_cluster *c = data;
    c->reconnect_timer = 0;
    bus_connect(c);
    return G_SOURCE_REMOVE;
}

/* The batch whose answer never came goes back to the front of the queue. */
static void requeue_inflight(tm_cluster *c)
{
    for (guint i = c->inflight->len; i-- > 0;) {
        char *p = g_ptr_array_steal_index(c->inflight, i);
        if (g_hash_table_contains(c->queued, p)) {
            g_free(p);
            continue;
        }
        g_queue_push_head(c->pending, p);
        g_hash_table_add(c->queued, p);
    }
}

static void stop_timer(guint *timer)
{
    if (*timer)
        g_source_remove(*timer);
    *timer = 0;
}

static void bus_lost(tm_cluster *c)
{
    char why[256];
    pg_error(c->pg, why, sizeof(why));
    tm_warn("cluster.bus_down", "node=%s state=%d error=\"%s\" retry_ms=%d", c->node_id,
            (int)c->state, why, c->backoff_ms);
    unwatch_socket(c);
    stop_timer(&c->connect_timer);
    PQfinish(c->pg);
    c->pg = NULL;
    c->state = BUS_DOWN;
    c->query_busy = false;
    requeue_inflight(c);
    c->reconnect_timer = g_timeout_add(c->backoff_ms, reconnect_due, c);
    c->backoff_ms = MIN(c->backoff_ms * 2, c->reconnect_max_ms);
}

/* A server that accepted and never answered: try again with the backoff. */
static gboolean connect_overdue(gpointer data)
{
    tm_cluster *c = data;
    c->connect_timer = 0;
    tm_warn("cluster.bus_connect_timeout", "node=%s state=%d timeout_ms=%d", c->node_id,
            (int)c->state, c->connect_timeout_ms);
    bus_lost(c);
    return G_SOURCE_REMOVE;
}

/* Keepalives end a connection whose peer went silent (a half-open one
 * would stop every event with no error), as the store's do (store_pg.c),
 * unless the URL says otherwise. */
static PGconn *bus_connect_start(const char *url)
{
    const char *const keys[] = {"keepalives",
                                "keepalives_idle",
                                "keepalives_interval",
                                "keepalives_count",
                                "tcp_user_timeout",
                                "dbname",
                                NULL};
    const char *const values[] = {"1", "5", "2", "3", "10000", url, NULL};
    return PQconnectStartParams(keys, values, 1);
}

static void bus_connect(tm_cluster *c)
{
    c->pg = bus_connect_start(c->bus_url);
    if (!c->pg || PQstatus(c->pg) == CONNECTION_BAD) {
        bus_lost(c);
        return;
    }
    PQsetNoticeProcessor(c->pg, on_notice, c);
    c->state = BUS_CONNECTING;
    c->connect_timer = g_timeout_add(c->connect_timeout_ms, connect_overdue, c);
    /* libpq: before the first PQconnectPoll, wait as if it asked to write. */
    watch_socket(c, PQsocket(c->pg), G_IO_OUT);
}

static void bus_connect_step(tm_cluster *c)
{
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_READING:
        watch_socket(c, PQsocket(c->pg), G_IO_IN);
        return;
    case PGRES_POLLING_WRITING:
        watch_socket(c, PQsocket(c->pg), G_IO_OUT);
        return;
    case PGRES_POLLING_OK:
        break;
    default:
        bus_lost(c);
        return;
    }
    if (PQsetnonblocking(c->pg, 1) != 0 || !PQsendQuery(c->pg, "LISTEN " TM_CLUSTER_CHANNEL)) {
        bus_lost(c);
        return;
    }
    c->state = BUS_LISTENING;
    c->query_busy = true;
    watch_ready(c);
}

/* LISTEN is answered: from here on no event is missed, but those of the gap
 * before it may have been, so the handler reloads everything. */
static void bus_now_ready(tm_cluster *c)
{
    c->state = BUS_READY;
    stop_timer(&c->connect_timer);
    c->backoff_ms = BACKOFF_MIN_MS;
    if (c->ever_ready)
        c->stats.reconnects++;
    tm_info("cluster.bus_ready", "node=%s reconnect=%d", c->node_id, c->ever_ready);
    c->ever_ready = true;
    deliver(c, TM_BUS_RESYNC, "");
}

/* Takes every finished result; false when the connection failed. */
static bool bus_take_results(tm_cluster *c)
{
    while (c->query_busy && !PQisBusy(c->pg)) {
        PGresult *res = PQgetResult(c->pg);
        if (!res) {
            c->query_busy = false;
            g_ptr_array_set_size(c->inflight, 0);
            if (c->state == BUS_LISTENING)
                bus_now_ready(c);
            break;
        }
        ExecStatusType st = PQresultStatus(res);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
            char why[256];
            g_strlcpy(why, PQresultErrorMessage(res), sizeof(why));
            g_strdelimit(why, "\n\t\"", ' ');
            tm_warn("cluster.bus_query_failed", "node=%s error=\"%s\"", c->node_id,
                    g_strstrip(why));
        }
        PQclear(res);
    }
    return PQstatus(c->pg) == CONNECTION_OK;
}

static void bus_take_notifies(tm_cluster *c)
{
    PGnotify *n;
    while (c->pg && (n = PQnotifies(c->pg)) != NULL) {
        if (strcmp(n->relname, TM_CLUSTER_CHANNEL) == 0)
            deliver_payload(c, n->extra, strlen(n->extra));
        PQfreemem(n);
    }
}

static void bus_service(tm_cluster *c, GIOCondition cond)
{
    if ((cond & G_IO_OUT) && PQflush(c->pg) < 0) {
        bus_lost(c);
        return;
    }
    if ((cond & (G_IO_IN | G_IO_HUP | G_IO_ERR)) && !PQconsumeInput(c->pg)) {
        bus_lost(c);
        return;
    }
    if (!bus_take_results(c)) {
        bus_lost(c);
        return;
    }
    bus_take_notifies(c);
    if (c->pg && c->state == BUS_READY) {
        bus_send_pending(c);
        watch_ready(c);
    }
}

static gboolean on_socket(gint fd, GIOCondition cond, gpointer data)
{
    (void)fd;
    tm_cluster *c = data;
    if (c->state == BUS_CONNECTING)
        bus_connect_step(c);
    else
        bus_service(c, cond);
    /* The watch may have been replaced or removed above. */
    return c->watch && c->watch_fd == fd ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

/* Up to BATCH_MAX queued events as one string of NOTIFY statements. */
static void bus_send_pending(tm_cluster *c)
{
    if (c->state != BUS_READY || c->query_busy || g_queue_is_empty(c->pending))
        return;
    GString *sql = g_string_new(NULL);
    while (c->inflight->len < BATCH_MAX && !g_queue_is_empty(c->pending)) {
        char *p = g_queue_pop_head(c->pending);
        g_hash_table_remove(c->queued, p);
        char *lit = PQescapeLiteral(c->pg, p, strlen(p));
        if (lit) {
            g_string_append_printf(sql, "NOTIFY " TM_CLUSTER_CHANNEL ", %s;", lit);
            PQfreemem(lit);
        }
        g_ptr_array_add(c->inflight, p);
    }
    bool sent = PQsendQuery(c->pg, sql->str) == 1;
    g_string_free(sql, TRUE);
    if (!sent) {
        bus_lost(c);
        return;
    }
    c->stats.published += c->inflight->len;
    c->query_busy = true;
}

/* ---- publishing ------------------------------------------------------ */

static gboolean drain_pending(gpointer data)
{
    tm_cluster *c = data;
    c->deliver_idle = 0;
    if (!in_process(c)) {
        if (c->state == BUS_READY) {
            bus_send_pending(c);
            if (c->pg)
                watch_ready(c);
        }
        return G_SOURCE_REMOVE;
    }
    /* Events published by the handler wait for the next round. */
    GQueue round = G_QUEUE_INIT;
    while (!g_queue_is_empty(c->pending)) {
        char *p = g_queue_pop_head(c->pending);
        g_hash_table_remove(c->queued, p);
        g_queue_push_tail(&round, p);
    }
    char *p;
    while ((p = g_queue_pop_head(&round)) != NULL) {
        c->stats.published++;
        deliver_payload(c, p, strlen(p));
        g_free(p);
    }
    return G_SOURCE_REMOVE;
}

int tm_cluster_publish(tm_cluster *c, tm_bus_kind kind, const char *id)
{
    if (kind < TM_BUS_QUEUE || kind >= TM_BUS_RESYNC || !id || !id_ok(id, strlen(id)))
        return TM_EINVAL;
    char *p = g_strconcat(kind_prefix[kind], id, NULL);
    if (g_hash_table_contains(c->queued, p)) {
        g_free(p);
        return 0;
    }
    g_queue_push_tail(c->pending, p);
    g_hash_table_add(c->queued, p);
    if (!c->deliver_idle)
        c->deliver_idle = g_idle_add(drain_pending, c);
    return 0;
}

/* ---- the heartbeat thread ---------------------------------------------- */

static int64_t mono_ms(void)
{
    return g_get_monotonic_time() / 1000;
}

/* How late the loop's tick is now: 0 while it runs on time. */
static int64_t loop_lag_now(beater *b)
{
    int64_t late = mono_ms() - atomic_load(&b->loop_tick_ms) - TICK_MS;
    return late > 0 ? late : 0;
}

/* Waits up to ms for the stop message; true when it came. A signal that
 * lands on this thread only ends the wait early. */
static bool beater_stopped(beater *b, int ms)
{
    struct pollfd p = {.fd = b->stop_fd[0], .events = POLLIN};
    int r = poll(&p, 1, ms);
    return r > 0 || (r < 0 && errno != EINTR);
}

/* Logs the loop's lag when it turns slow, hung or well again; *state is
 * 0 well, 1 slow, 2 hung, *worst the worst lag of the episode. */
static void beater_note_lag(beater *b, int64_t lag, int *state, int64_t *worst)
{
    int now = lag >= b->hung_after_ms ? 2 : lag >= SLOW_LAG_MS ? 1 : 0;
    *worst = now ? MAX(*worst, lag) : *worst;
    if (now == 2 && *state < 2)
        tm_error("cluster.loop_hung", "node=%s loop_lag_ms=%lld hung_after_ms=%d", b->node_id,
                 (long long)lag, b->hung_after_ms);
    else if (now == 1 && *state == 0)
        tm_warn("cluster.loop_slow", "node=%s loop_lag_ms=%lld", b->node_id, (long long)lag);
    else if (now == 0 && *state > 0) {
        tm_info("cluster.loop_well", "node=%s worst_lag_ms=%lld", b->node_id, (long long)*worst);
        *worst = 0;
    }
    *state = now;
}

/* One heartbeat on the thread's own handle, opened (again) as needed. */
static void beater_beat(beater *b, tm_store **store, int64_t lag)
{
    char *err = NULL;
    if (!*store && !(*store = tm_store_open(b->db_url, b->hospital_id, &err))) {
        atomic_fetch_add(&b->failures, 1);
        tm_warn("cluster.beat_failed", "node=%s error=\"%s\"", b->node_id, err);
        g_free(err);
        return;
    }
    int rc = tm_store_node_beat(*store, b->node_id, lag);
    if (rc == 0) {
        atomic_store(&b->lag_ms, lag);
        atomic_fetch_add(&b->beats, 1);
        return;
    }
    atomic_fetch_add(&b->failures, 1);
    /* Not registered is the loop's to mend (its own heartbeat registers). */
    if (rc != TM_ENOTFOUND)
        tm_warn("cluster.beat_failed", "node=%s error=\"%s\"", b->node_id, tm_store_errmsg(*store));
}

static gpointer beater_main(gpointer data)
{
    beater *b = data;
    tm_store *store = NULL;
    int state = 0;
    int64_t worst = 0;
    while (!beater_stopped(b, b->period_ms)) {
        int64_t lag = loop_lag_now(b);
        beater_note_lag(b, lag, &state, &worst);
        if (state < 2)
            beater_beat(b, &store, lag);
    }
    tm_store_free(store);
    return NULL;
}

static gboolean loop_tick(gpointer data)
{
    beater *b = data;
    atomic_store(&b->loop_tick_ms, mono_ms());
    return G_SOURCE_CONTINUE;
}

static beater *beater_start(const char *db_url, const char *hospital_id, const char *node_id,
                            int period_ms, int hung_after_ms)
{
    beater *b = g_new0(beater, 1);
    if (!g_unix_open_pipe(b->stop_fd, FD_CLOEXEC, NULL)) {
        g_free(b);
        return NULL;
    }
    b->db_url = g_strdup(db_url);
    b->hospital_id = g_strdup(hospital_id);
    b->node_id = g_strdup(node_id);
    b->period_ms = period_ms;
    b->hung_after_ms = hung_after_ms;
    atomic_store(&b->loop_tick_ms, mono_ms());
    b->thread = g_thread_new("tm-heartbeat", beater_main, b);
    return b;
}

/* Stops and joins the thread: after this no beat of the node is written. */
static void beater_stop(beater *b)
{
    if (!b)
        return;
    close(b->stop_fd[1]);
    g_thread_join(b->thread);
    close(b->stop_fd[0]);
    g_free(b->db_url);
    g_free(b->hospital_id);
    g_free(b->node_id);
    g_free(b);
}

/* ---- the heartbeat --------------------------------------------------- */

static gint cmp_ids(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A node that appeared or vanished since the last beat is an event here:
 * every node sees the registry, so none needs to announce another's death. */
static void note_live_nodes(tm_cluster *c, const tm_node_info *nodes, size_t n)
{
    GString *now = g_string_new(NULL);
    GPtrArray *ids = g_ptr_array_new();
    for (size_t i = 0; i < n; i++)
        g_ptr_array_add(ids, (gpointer)nodes[i].id);
    g_ptr_array_sort(ids, cmp_ids);
    for (guint i = 0; i < ids->len; i++)
        g_string_append_printf(now, "%s%s", i ? "," : "", (char *)ids->pdata[i]);
    g_ptr_array_free(ids, TRUE);
    if (c->live_nodes && strcmp(c->live_nodes, now->str) != 0) {
        char **before = g_strsplit(c->live_nodes, ",", -1);
        char **after = g_strsplit(now->str, ",", -1);
        for (char **b = before; *b; b++)
            if (**b && !g_strv_contains((const char *const *)after, *b))
                deliver(c, TM_BUS_NODE, *b);
        for (char **a = after; *a; a++)
            if (**a && !g_strv_contains((const char *const *)before, *a))
                deliver(c, TM_BUS_NODE, *a);
        g_strfreev(before);
        g_strfreev(after);
    }
    g_free(c->live_nodes);
    c->live_nodes = g_string_free(now, FALSE);
}

/* Another node whose loop lags is slow, not dead: said once when it turns
 * slow and once when it is well again (or gone). */
static void note_slow_peers(tm_cluster *c, const tm_node_info *nodes, size_t n)
{
    GHashTable *slow = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(nodes[i].id, c->node_id) == 0 || nodes[i].loop_lag_ms < SLOW_LAG_MS)
            continue;
        if (!g_hash_table_contains(c->slow_peers, nodes[i].id))
            tm_warn("cluster.node_slow", "node=%s peer=%s loop_lag_ms=%lld", c->node_id,
                    nodes[i].id, (long long)nodes[i].loop_lag_ms);
        g_hash_table_add(slow, g_strdup(nodes[i].id));
    }
    GHashTableIter it;
    gpointer id;
    g_hash_table_iter_init(&it, c->slow_peers);
    while (g_hash_table_iter_next(&it, &id, NULL))
        if (!g_hash_table_contains(slow, id))
            tm_info("cluster.node_well", "node=%s peer=%s", c->node_id, (char *)id);
    g_hash_table_destroy(c->slow_peers);
    c->slow_peers = slow;
}

/* What dead nodes held: their visits are announced so that a node places
 * them again (this one got them from the store's conditional update). */
static void take_over(tm_cluster *c, int64_t now)
{
    json_t *released = NULL;
    int leases = 0;
    if (tm_store_node_takeover(c->store, now, c->dead_after_ms, &released, &leases) < 0) {
        tm_warn("cluster.takeover_failed", "node=%s error=\"%s\"", c->node_id,
                tm_store_errmsg(c->store));
        return;
    }
    size_t i;
    json_t *v;
    json_array_foreach(released, i, v) tm_cluster_publish(c, TM_BUS_VISIT, json_string_value(v));
    if (json_array_size(released) || leases)
        tm_info("cluster.takeover", "node=%s visits=%zu leases=%d", c->node_id,
                json_array_size(released), leases);
    json_decref(released);
}

static void beat(tm_cluster *c)
{
    int64_t now = tm_now_ms();
    tm_node_info me = {0};
    if (c->load)
        c->load(&me, c->load_user);
    g_strlcpy(me.id, c->node_id, sizeof(me.id));
    g_strlcpy(me.public_url, c->public_url, sizeof(me.public_url));
    me.started_at_ms = c->started_at_ms;
    me.heartbeat_ms = now;
    if (tm_store_node_heartbeat(c->store, &me) < 0) {
        c->stats.heartbeat_failures++;
        tm_warn("cluster.heartbeat_failed", "node=%s error=\"%s\"", c->node_id,
                tm_store_errmsg(c->store));
        return;
    }
    c->stats.heartbeats++;
    tm_node_info *nodes = NULL;
    size_t n = 0;
    if (tm_store_nodes_live(c->store, now, c->dead_after_ms, &nodes, &n) == 0) {
        note_live_nodes(c, nodes, n);
        note_slow_peers(c, nodes, n);
        g_free(c->peers);
        c->peers = nodes;
        c->n_peers = n;
    }
    take_over(c, now);
}

static gboolean beat_due(gpointer data)
{
    beat(data);
    return G_SOURCE_CONTINUE;
}

/* ---- the handle ------------------------------------------------------ */

/* On a shared database the heartbeat goes on off the loop (see the top);
 * without a thread the loop's own beats go on alone. */
static void start_beater(tm_cluster *c)
{
    c->beater = beater_start(c->bus_url, tm_store_hospital_id(c->store), c->node_id,
                             c->heartbeat_ms, c->hung_after_ms);
    if (!c->beater) {
        tm_warn("cluster.beater_failed", "node=%s", c->node_id);
        return;
    }
    c->tick_timer = g_timeout_add(TICK_MS, loop_tick, c->beater);
}

static bool options_ok(const tm_cluster_options *o, char **err)
{
    const char *why = NULL;
    if (!o->node_id || !id_ok(o->node_id, strlen(o->node_id)))
        why = "node_id must be 1-63 of A-Z a-z 0-9 . _ -";
    else if (!o->public_url || !o->public_url[0])
        why = "a node needs its public_url";
    else if (o->bus_url && o->bus_url[0] && !g_str_has_prefix(o->bus_url, "postgresql://") &&
             !g_str_has_prefix(o->bus_url, "postgres://"))
        why = "the bus URL must be a postgresql:// URL";
    else if (o->heartbeat_ms < 0 || o->dead_after_ms < 0 || o->reconnect_max_ms < 0 ||
             o->connect_timeout_ms < 0 || o->hung_after_ms < 0)
        why = "times must not be negative";
    if (why && err)
        *err = g_strdup(why);
    return why == NULL;
}

tm_cluster *tm_cluster_new(const tm_cluster_options *o, char **err)
{
    if (!options_ok(o, err))
        return NULL;
    tm_cluster *c = g_new0(tm_cluster, 1);
    c->node_id = g_strdup(o->node_id);
    c->public_url = g_strdup(o->public_url);
    c->bus_url = o->bus_url && o->bus_url[0] ? g_strdup(o->bus_url) : NULL;
    c->store = o->store;
    c->heartbeat_ms = o->heartbeat_ms ? o->heartbeat_ms : 2000;
    c->dead_after_ms = o->dead_after_ms ? o->dead_after_ms : 10000;
    c->reconnect_max_ms = o->reconnect_max_ms ? o->reconnect_max_ms : 5000;
    c->connect_timeout_ms = o->connect_timeout_ms ? o->connect_timeout_ms : CONNECT_TIMEOUT_MS;
    c->backoff_ms = BACKOFF_MIN_MS;
    c->hung_after_ms = o->hung_after_ms ? o->hung_after_ms : HUNG_AFTER_MS;
    c->started_at_ms = tm_now_ms();
    c->slow_peers = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    c->pending = g_queue_new();
    c->queued = g_hash_table_new(g_str_hash, g_str_equal);
    c->inflight = g_ptr_array_new_with_free_func(g_free);
    /* Counts left by a crash would stand for doctors who are not here. */
    if (c->store && tm_store_node_duty_clear(c->store, c->node_id) < 0)
        tm_warn("cluster.duty_clear_failed", "node=%s error=\"%s\"", c->node_id,
                tm_store_errmsg(c->store));
    if (c->store) {
        beat(c);
        c->beat_timer = g_timeout_add(c->heartbeat_ms, beat_due, c);
    }
    if (c->store && c->bus_url)
        start_beater(c);
    if (c->bus_url)
        bus_connect(c);
    tm_info("cluster.started", "node=%s bus=%s heartbeat_ms=%d dead_after_ms=%d", c->node_id,
            c->bus_url ? "postgresql" : "in-process", c->heartbeat_ms, c->dead_after_ms);
    return c;
}

void tm_cluster_free(tm_cluster *c)
{
    if (!c)
        return;
    if (c->beat_timer)
        g_source_remove(c->beat_timer);
    stop_timer(&c->tick_timer);
    beater_stop(c->beater);
    if (c->reconnect_timer)
        g_source_remove(c->reconnect_timer);
    stop_timer(&c->connect_timer);
    if (c->deliver_idle)
        g_source_remove(c->deliver_idle);
    unwatch_socket(c);
    if (c->pg)
        PQfinish(c->pg);
    if (c->store && tm_store_node_remove(c->store, c->node_id) < 0)
        tm_warn("cluster.leave_failed", "node=%s error=\"%s\"", c->node_id,
                tm_store_errmsg(c->store));
    g_hash_table_destroy(c->queued);
    g_queue_free_full(c->pending, g_free);
    g_ptr_array_free(c->inflight, TRUE);
    g_free(c->live_nodes);
    g_hash_table_destroy(c->slow_peers);
    g_free(c->peers);
    g_free(c->node_id);
    g_free(c->public_url);
    g_free(c->bus_url);
    g_free(c);
}

void tm_cluster_set_event_handler(tm_cluster *c, tm_cluster_event_fn fn, void *user)
{
    c->on_event = fn;
    c->event_user = user;
}

void tm_cluster_set_load_source(tm_cluster *c, tm_cluster_load_fn fn, void *user)
{
    c->load = fn;
    c->load_user = user;
}

bool tm_cluster_bus_ready(const tm_cluster *c)
{
    return in_process(c) || c->state == BUS_READY;
}

bool tm_cluster_shared(const tm_cluster *c)
{
    return c->store != NULL;
}

const char *tm_cluster_node_id(const tm_cluster *c)
{
    return c->node_id;
}

int tm_cluster_live_nodes(tm_cluster *c, tm_node_info **out, size_t *n)
{
    if (!c->store)
        return TM_EINVAL;
    return tm_store_nodes_live(c->store, tm_now_ms(), c->dead_after_ms, out, n);
}

int tm_cluster_set_doctors(tm_cluster *c, const char *dept, int doctors)
{
    if (!c->store)
        return TM_EINVAL;
    int rc = tm_store_node_duty_set(c->store, c->node_id, dept, doctors);
    return rc < 0 ? rc : tm_cluster_publish(c, TM_BUS_QUEUE, dept);
}

int tm_cluster_doctors_elsewhere(tm_cluster *c, const char *dept, int *doctors)
{
    *doctors = 0;
    if (!c->store)
        return TM_EINVAL;
    return tm_store_node_duty_elsewhere(c->store, c->node_id, dept, tm_now_ms(), c->dead_after_ms,
                                        doctors);
}

void tm_cluster_stats_get(const tm_cluster *c, tm_cluster_stats *out)
{
    *out = c->stats;
    if (c->beater) {
        out->thread_beats = atomic_load(&c->beater->beats);
        out->thread_beat_failures = atomic_load(&c->beater->failures);
        out->loop_lag_ms = atomic_load(&c->beater->lag_ms);
    }
}

void tm_cluster_metrics(const tm_cluster *c, GString *out)
{
    if (!c->store)
        return; /* alone: no heartbeat, no peers */
    tm_cluster_stats st;
    tm_cluster_stats_get(c, &st);
    g_string_append_printf(
        out,
        "# HELP telemed_cluster_heartbeats_total Heartbeats written, by the control loop"
        " or by the heartbeat thread (docs/cluster.md).\n"
        "# TYPE telemed_cluster_heartbeats_total counter\n"
        "telemed_cluster_heartbeats_total{by=\"loop\"} %llu\n"
        "telemed_cluster_heartbeats_total{by=\"thread\"} %llu\n"
        "# TYPE telemed_cluster_heartbeat_failures_total counter\n"
        "telemed_cluster_heartbeat_failures_total{by=\"loop\"} %llu\n"
        "telemed_cluster_heartbeat_failures_total{by=\"thread\"} %llu\n"
        "# HELP telemed_loop_lag_ms How late this node's control loop was at its last"
        " heartbeat.\n"
        "# TYPE telemed_loop_lag_ms gauge\ntelemed_loop_lag_ms %lld\n",
        (unsigned long long)st.heartbeats, (unsigned long long)st.thread_beats,
        (unsigned long long)st.heartbeat_failures, (unsigned long long)st.thread_beat_failures,
        (long long)st.loop_lag_ms);
    if (!c->n_peers)
        return;
    g_string_append(out, "# HELP telemed_cluster_peer_loop_lag_ms How late each live node's"
                         " control loop was at its last heartbeat: slow, not dead.\n"
                         "# TYPE telemed_cluster_peer_loop_lag_ms gauge\n");
    for (size_t i = 0; i < c->n_peers; i++)
        g_string_append_printf(out, "telemed_cluster_peer_loop_lag_ms{peer=\"%s\"} %lld\n",
                               c->peers[i].id, (long long)c->peers[i].loop_lag_ms);
}

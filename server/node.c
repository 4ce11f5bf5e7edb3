/*
 * node.c - this process as one node behind a load balancer: its id and
 * public URL, its health as the balancer reads it, the node label on every
 * metric, and the drain.
 *
 * A drain is one-way: once started the node answers /healthz with 503 (the
 * balancer sends new connections elsewhere), signaling takes no new visits
 * (stop_taking), and a once-a-second check ends the drain when no visit is
 * live or drain_timeout_s has passed. Connections are never cut here: the
 * balancer keeps existing WSS where they are, and visits end on their own.
 *
 * Control loop only.
 */
#include "telemed/node.h"
#include "telemed/common.h"
#include "telemed/log.h"

#include <string.h>

struct tm_node {
    const tm_config *cfg;
    char *id; /* node_id, or "node" when the config was not resolved (fuzz targets) */
    char *public_url;
    tm_node_hooks hooks;
    bool draining;
    int64_t drain_since_ms; /* wall clock, for the report */
    int64_t drain_deadline_mono_ms;
    int live_visits; /* at the last check */
    guint check_timer;
};

/* The listen address, or the host name when it listens on every address;
 * an IPv6 literal in brackets, as URLs write it. */
static char *default_public_url(const tm_config *cfg, int port)
{
    const char *host = cfg->listen;
    if (!host || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0)
        host = g_get_host_name();
    if (strchr(host, ':'))
        return g_strdup_printf("https://[%s]:%d", host, port);
    return g_strdup_printf("https://%s:%d", host, port);
}

tm_node *tm_node_new(const tm_config *cfg, int port, const tm_node_hooks *hooks)
{
    tm_node *n = g_new0(tm_node, 1);
    n->cfg = cfg;
    n->id = g_strdup(cfg->node_id ? cfg->node_id : "node");
    n->public_url = cfg->public_url ? g_strdup(cfg->public_url) : default_public_url(cfg, port);
    if (hooks)
        n->hooks = *hooks;
    return n;
}

void tm_node_free(tm_node *n)
{
    if (!n)
        return;
    if (n->check_timer)
        g_source_remove(n->check_timer);
    g_free(n->public_url);
    g_free(n->id);
    g_free(n);
}

const char *tm_node_id(const tm_node *n)
{
    return n->id;
}

const char *tm_node_public_url(const tm_node *n)
{
    return n->public_url;
}

bool tm_node_draining(const tm_node *n)
{
    return n->draining;
}

static int count_live(tm_node *n)
{
    n->live_visits = n->hooks.live_visits ? n->hooks.live_visits(n->hooks.user) : 0;
    return n->live_visits;
}

static gboolean drain_check(gpointer data)
{
    tm_node *n = data;
    int left = count_live(n);
    bool timed_out = left > 0 && tm_mono_ms() >= n->drain_deadline_mono_ms;
    if (left > 0 && !timed_out)
        return G_SOURCE_CONTINUE;
    n->check_timer = 0;
    if (timed_out)
        tm_warn("node.drain_timeout", "node=%s live_visits=%d timeout_s=%d", n->id, left,
                n->cfg->drain_timeout_s);
    else
        tm_info("node.drained", "node=%s drain_s=%lld", n->id,
                (long long)((tm_now_ms() - n->drain_since_ms) / 1000));
    if (n->hooks.drained)
        n->hooks.drained(n->hooks.user, timed_out, left);
    return G_SOURCE_REMOVE;
}

int tm_node_drain(tm_node *n, const char *why)
{
    if (n->draining)
        return 1;
    n->draining = true;
    n->drain_since_ms = tm_now_ms();
    n->drain_deadline_mono_ms = tm_mono_ms() + (int64_t)n->cfg->drain_timeout_s * 1000;
    if (n->hooks.stop_taking)
        n->hooks.stop_taking(n->hooks.user);
    tm_info("node.draining", "node=%s by=%s live_visits=%d timeout_s=%d", n->id, why, count_live(n),
            n->cfg->drain_timeout_s);
    /* The first check runs from the loop, not from here: the admin call
     * that started the drain still has its answer to send. */
    n->check_timer = g_timeout_add_seconds(1, drain_check, n);
    return 0;
}

json_t *tm_node_drain_json(tm_node *n)
{
    count_live(n);
    char since[32] = "", deadline[32] = "";
    if (n->draining) {
        tm_rfc3339(n->drain_since_ms, since, sizeof(since));
        tm_rfc3339(n->drain_since_ms + (int64_t)n->cfg->drain_timeout_s * 1000, deadline,
                   sizeof(deadline));
    }
    return json_pack("{s:s, s:b, s:s?, s:s?, s:i}", "node", n->id, "draining", n->draining, "since",
                     n->draining ? since : NULL, "deadline", n->draining ? deadline : NULL,
                     "live_visits", n->live_visits);
}

json_t *tm_node_health(const tm_node *n, int schema_version, int64_t uptime_s, int *status)
{
    bool store_ok = schema_version > 0;
    bool accepting = store_ok && !n->draining;
    *status = accepting ? 200 : 503;
    const char *word = n->draining ? "draining" : store_ok ? "ok" : "degraded";
    json_t *h =
        json_pack("{s:s, s:s, s:b, s:i, s:I}", "status", word, "node", n->id, "accepting",
                  accepting, "schema_version", schema_version, "uptime_s", (json_int_t)uptime_s);
    if (n->draining)
        json_object_set_new(h, "draining", json_true());
    return h;
}

/* ---- the other nodes, as pages connect to them ------------------------- */

/* "https://host:port/any" -> "wss://host:port/ws". */
static json_t *ws_url_of(const char *url)
{
    bool plain = g_str_has_prefix(url, "http://");
    const char *authority = url + (plain ? 7 : 8);
    size_t len = strcspn(authority, "/?#");
    char *ws = g_strdup_printf("%s://%.*s/ws", plain ? "ws" : "wss", (int)len, authority);
    json_t *s = json_string(ws);
    g_free(ws);
    return s;
}

json_t *tm_node_cluster_ws_urls(const char *cluster_urls)
{
    json_t *nodes = json_array();
    gchar **urls = g_strsplit(cluster_urls ? cluster_urls : "", ",", -1);
    for (gchar **u = urls; *u; u++) {
        g_strstrip(*u);
        if (**u)
            json_array_append_new(nodes, ws_url_of(*u));
    }
    g_strfreev(urls);
    return nodes;
}

/* ---- the node label on /metrics ---------------------------------------- */

/* Where the metric name of a sample line ends: at its '{' or its blank. */
static size_t metric_name_end(const char *line, size_t len)
{
    size_t i = 0;
    while (i < len && line[i] != '{' && line[i] != ' ' && line[i] != '\t')
        i++;
    return i;
}

void tm_node_label_metrics(GString *text, const char *node_id)
{
    GString *out = g_string_sized_new(text->len + text->len / 8);
    const char *p = text->str, *end = text->str + text->len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        size_t name = metric_name_end(p, len);
        if (len == 0 || p[0] == '#' || name == 0 || name == len) {
            g_string_append_len(out, p, (gssize)len);
        } else if (p[name] == '{') {
            g_string_append_len(out, p, (gssize)name + 1);
            g_string_append_printf(out, "node=\"%s\"%s", node_id, p[name + 1] == '}' ? "" : ",");
            g_string_append_len(out, p + name + 1, (gssize)(len - name - 1));
        } else {
            g_string_append_len(out, p, (gssize)name);
            g_string_append_printf(out, "{node=\"%s\"}", node_id);
            g_string_append_len(out, p + name, (gssize)(len - name));
        }
        if (nl)
            g_string_append_c(out, '\n');
        p = nl ? nl + 1 : end;
    }
    g_string_assign(text, out->str);
    g_string_free(out, TRUE);
}

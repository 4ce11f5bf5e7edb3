/*
 * test_node.c - the node behind a load balancer (server/node.c): node_id,
 * public_url and cluster_urls from the config (defaults, bad values
 * refused), /healthz's answer while taking visits, draining and with a
 * broken store, the node label on every /metrics sample, and the drain on
 * a real GLib main loop: it ends when the last live visit does, a second
 * call changes nothing, and drain_timeout_s caps it.
 */
#include "telemed/common.h"
#include "telemed/config.h"
#include "telemed/node.h"
#include "tm_test.h"

#include <glib.h>
#include <string.h>

static int load(tm_config *c, char **err, const char *a, const char *b)
{
    char *argv[] = {"telemed-server", (char *)a, (char *)b, NULL};
    int argc = 1 + (a != NULL) + (b != NULL);
    int first = 0;
    *err = NULL;
    return tm_config_load(c, argc, argv, &first, err);
}

static void test_config_defaults(void)
{
    tm_config c;
    char *err;
    CHECK_EQ_INT(load(&c, &err, "--listen=127.0.0.1", NULL), 0);
    CHECK(c.node_id == NULL && c.public_url == NULL && c.cluster_urls == NULL);
    CHECK_EQ_INT(c.drain_timeout_s, 3600);
    tm_config_resolve_paths(&c);
    CHECK(c.node_id && *c.node_id && strlen(c.node_id) <= 63);
    for (const char *p = c.node_id; *p; p++)
        CHECK(g_ascii_isalnum(*p) || strchr("-_.", *p));
    tm_node *n = tm_node_new(&c, 9443, NULL);
    CHECK_STR(tm_node_public_url(n), "https://127.0.0.1:9443");
    CHECK_STR(tm_node_id(n), c.node_id);
    tm_node_free(n);
    tm_config_clear(&c);

    CHECK_EQ_INT(load(&c, &err, "--listen=::1", "--node-id=n-2.a_b"), 0);
    tm_config_resolve_paths(&c);
    CHECK_STR(c.node_id, "n-2.a_b");
    n = tm_node_new(&c, 8443, NULL);
    CHECK_STR(tm_node_public_url(n), "https://[::1]:8443");
    tm_node_free(n);
    tm_config_clear(&c);

    CHECK_EQ_INT(load(&c, &err, "--public-url=https://lb.example:443", NULL), 0);
    n = tm_node_new(&c, 8443, NULL);
    CHECK_STR(tm_node_public_url(n), "https://lb.example:443");
    tm_node_free(n);
    tm_config_clear(&c);
}

static void expect_refused(const char *flag, const char *names)
{
    tm_config c;
    char *err;
    CHECK_EQ_INT(load(&c, &err, flag, NULL), TM_EINVAL);
    CHECK(err && strstr(err, names));
    g_free(err);
    tm_config_clear(&c);
}

static void test_config_refuses(void)
{
    expect_refused("--node-id=has space", "node_id");
    expect_refused("--node-id=a\"b", "node_id");
    expect_refused("--node-id=0123456789012345678901234567890123456789012345678901234567890123",
                   "node_id");
    expect_refused("--public-url=ftp://x", "public_url");
    expect_refused("--cluster-urls=https://a:1,,https://b:2", "cluster_urls");
    expect_refused("--cluster-urls=https://a:1,wss://b:2", "cluster_urls");
    expect_refused("--drain-timeout-s=0", "drain_timeout_s");
}

static void test_cluster_ws_urls(void)
{
    json_t *u = tm_node_cluster_ws_urls(" https://b.example:8443/ , http://127.0.0.1:9/x?y");
    CHECK_EQ_INT(json_array_size(u), 2);
    CHECK_STR(json_string_value(json_array_get(u, 0)), "wss://b.example:8443/ws");
    CHECK_STR(json_string_value(json_array_get(u, 1)), "ws://127.0.0.1:9/ws");
    json_decref(u);
    u = tm_node_cluster_ws_urls(NULL);
    CHECK_EQ_INT(json_array_size(u), 0);
    json_decref(u);
}

static tm_config cfg_named(const char *id, int drain_timeout_s)
{
    tm_config c;
    memset(&c, 0, sizeof(c));
    c.node_id = (char *)id;
    c.listen = (char *)"127.0.0.1";
    c.drain_timeout_s = drain_timeout_s;
    return c;
}

static void test_metrics_label(void)
{
    GString *t = g_string_new("# HELP telemed_up The server is running.\n"
                              "# TYPE telemed_up gauge\n"
                              "telemed_up 1\n"
                              "\n"
                              "telemed_feed_pending{profile=\"webhook\"} 3\n"
                              "telemed_x_bucket{le=\"+Inf\",dept=\"a b\"} 7\n"
                              "telemed_empty{} 2\n"
                              "telemed_last 5");
    tm_node_label_metrics(t, "node-a");
    CHECK_STR(t->str, "# HELP telemed_up The server is running.\n"
                      "# TYPE telemed_up gauge\n"
                      "telemed_up{node=\"node-a\"} 1\n"
                      "\n"
                      "telemed_feed_pending{node=\"node-a\",profile=\"webhook\"} 3\n"
                      "telemed_x_bucket{node=\"node-a\",le=\"+Inf\",dept=\"a b\"} 7\n"
                      "telemed_empty{node=\"node-a\"} 2\n"
                      "telemed_last{node=\"node-a\"} 5");
    g_string_free(t, TRUE);
}

static void test_health(void)
{
    tm_config c = cfg_named("node-h", 60);
    tm_node *n = tm_node_new(&c, 8443, NULL);
    int status = 0;
    json_t *h = tm_node_health(n, 12, 34, &status);
    CHECK_EQ_INT(status, 200);
    CHECK_STR(json_string_value(json_object_get(h, "status")), "ok");
    CHECK_STR(json_string_value(json_object_get(h, "node")), "node-h");
    CHECK(json_is_true(json_object_get(h, "accepting")));
    CHECK(json_object_get(h, "draining") == NULL);
    json_decref(h);

    h = tm_node_health(n, 0, 34, &status); /* the store is not usable */
    CHECK_EQ_INT(status, 503);
    CHECK(json_is_false(json_object_get(h, "accepting")));
    json_decref(h);

    CHECK_EQ_INT(tm_node_drain(n, "test"), 0);
    h = tm_node_health(n, 12, 35, &status);
    CHECK_EQ_INT(status, 503);
    CHECK_STR(json_string_value(json_object_get(h, "status")), "draining");
    CHECK(json_is_false(json_object_get(h, "accepting")));
    CHECK(json_is_true(json_object_get(h, "draining")));
    json_decref(h);
    tm_node_free(n);
}

/* ---- the drain on a real main loop ---- */

typedef struct {
    int live;
    int stop_taking_calls;
    int drained_calls;
    bool timed_out;
    int left;
    GMainLoop *loop;
} fake_process;

static void on_stop_taking(void *user)
{
    ((fake_process *)user)->stop_taking_calls++;
}

static int on_live(void *user)
{
    return ((fake_process *)user)->live;
}

static void on_drained(void *user, bool timed_out, int left)
{
    fake_process *p = user;
    p->drained_calls++;
    p->timed_out = timed_out;
    p->left = left;
    g_main_loop_quit(p->loop);
}

static gboolean end_visits(gpointer user)
{
    ((fake_process *)user)->live = 0;
    return G_SOURCE_REMOVE;
}

static gboolean cap_reached(gpointer user)
{
    (void)user;
    fprintf(stderr, "the drain never ended\n");
    exit(1);
}

static void test_drain_waits_for_live_visits(void)
{
    fake_process p = {.live = 2, .loop = g_main_loop_new(NULL, FALSE)};
    tm_node_hooks hooks = {on_stop_taking, on_live, on_drained, &p};
    tm_config c = cfg_named("node-d", 3600);
    tm_node *n = tm_node_new(&c, 8443, &hooks);
    CHECK(!tm_node_draining(n));
    CHECK_EQ_INT(tm_node_drain(n, "test"), 0);
    CHECK(tm_node_draining(n));
    CHECK_EQ_INT(tm_node_drain(n, "again"), 1);
    CHECK_EQ_INT(p.stop_taking_calls, 1);
    json_t *j = tm_node_drain_json(n);
    CHECK(json_is_true(json_object_get(j, "draining")));
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "live_visits")), 2);
    CHECK(json_string_value(json_object_get(j, "since")) != NULL);
    json_decref(j);
    g_timeout_add(1500, end_visits, &p); /* the visits end while it waits */
    guint cap = g_timeout_add_seconds(60, cap_reached, NULL);
    g_main_loop_run(p.loop);
    g_source_remove(cap);
    CHECK_EQ_INT(p.drained_calls, 1);
    CHECK(!p.timed_out);
    CHECK_EQ_INT(p.left, 0);
    tm_node_free(n);
    g_main_loop_unref(p.loop);
}

static void test_drain_timeout(void)
{
    fake_process p = {.live = 1, .loop = g_main_loop_new(NULL, FALSE)};
    tm_node_hooks hooks = {on_stop_taking, on_live, on_drained, &p};
    tm_config c = cfg_named("node-t", 1);
    tm_node *n = tm_node_new(&c, 8443, &hooks);
    CHECK_EQ_INT(tm_node_drain(n, "test"), 0);
    guint cap = g_timeout_add_seconds(60, cap_reached, NULL);
    g_main_loop_run(p.loop);
    g_source_remove(cap);
    CHECK_EQ_INT(p.drained_calls, 1);
    CHECK(p.timed_out);
    CHECK_EQ_INT(p.left, 1);
    tm_node_free(n);
    g_main_loop_unref(p.loop);
}

int main(void)
{
    RUN(test_config_defaults);
    RUN(test_config_refuses);
    RUN(test_cluster_ws_urls);
    RUN(test_metrics_label);
    RUN(test_health);
    RUN(test_drain_waits_for_live_visits);
    RUN(test_drain_timeout);
    TEST_DONE();
}

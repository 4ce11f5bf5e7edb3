/*
 * curl_glib.c - libcurl multi on a GMainContext (include/telemed/curl_glib.h).
 *
 * curl tells us which sockets to watch (socket callback) and when to call
 * it back (timer callback); each becomes a GLib source on ctx, and each
 * wake-up hands the event to curl_multi_socket_action, then reports the
 * transfers that finished.
 */
#include "telemed/curl_glib.h"
#include "telemed/common.h"

#include <glib-unix.h>

struct tm_curl_loop {
    CURLM *multi;
    GMainContext *ctx;
    GSource *timer;
    tm_curl_done_fn on_done;
    void *user;
};

static void report_done(tm_curl_loop *l)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(l->multi, &left))) {
        if (m->msg == CURLMSG_DONE)
            l->on_done(m->easy_handle, m->data.result, l->user);
    }
}

static gboolean on_socket(gint fd, GIOCondition cond, gpointer user)
{
    tm_curl_loop *l = user;
    int action = 0, running = 0;
    if (cond & G_IO_IN)
        action |= CURL_CSELECT_IN;
    if (cond & G_IO_OUT)
        action |= CURL_CSELECT_OUT;
    if (cond & (G_IO_ERR | G_IO_HUP))
        action |= CURL_CSELECT_ERR;
    curl_multi_socket_action(l->multi, fd, action, &running);
    report_done(l);
    return G_SOURCE_CONTINUE;
}

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)easy;
    tm_curl_loop *l = userp;
    GSource *src = socketp;
    if (src) {
        g_source_destroy(src);
        g_source_unref(src);
        curl_multi_assign(l->multi, s, NULL);
    }
    if (what == CURL_POLL_REMOVE)
        return 0;
    GIOCondition cond = G_IO_ERR | G_IO_HUP;
    if (what & CURL_POLL_IN)
        cond |= G_IO_IN;
    if (what & CURL_POLL_OUT)
        cond |= G_IO_OUT;
    src = g_unix_fd_source_new(s, cond);
    g_source_set_callback(src, G_SOURCE_FUNC(on_socket), l, NULL);
    g_source_attach(src, l->ctx);
    curl_multi_assign(l->multi, s, src);
    return 0;
}

static gboolean on_timeout(gpointer user)
{
    tm_curl_loop *l = user;
    GSource *self = l->timer;
    l->timer = NULL; /* curl may set a new timer from inside socket_action */
    int running = 0;
    curl_multi_socket_action(l->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    report_done(l);
    if (self)
        g_source_unref(self);
    return G_SOURCE_REMOVE;
}

static void drop_timer(tm_curl_loop *l)
{
    if (l->timer) {
        g_source_destroy(l->timer);
        g_source_unref(l->timer);
        l->timer = NULL;
    }
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    tm_curl_loop *l = userp;
    drop_timer(l);
    if (timeout_ms < 0)
        return 0;
    l->timer = g_timeout_source_new((guint)timeout_ms);
    g_source_set_callback(l->timer, on_timeout, l, NULL);
    g_source_attach(l->timer, l->ctx);
    return 0;
}

tm_curl_loop *tm_curl_loop_new(GMainContext *ctx, tm_curl_done_fn on_done, void *user)
{
    static gsize curl_ready = 0;
    if (g_once_init_enter(&curl_ready)) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        g_once_init_leave(&curl_ready, 1);
    }
    CURLM *multi = curl_multi_init();
    if (!multi)
        return NULL;
    tm_curl_loop *l = g_new0(tm_curl_loop, 1);
    l->multi = multi;
    l->ctx = g_main_context_ref(ctx ? ctx : g_main_context_default());
    l->on_done = on_done;
    l->user = user;
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, l);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(multi, CURLMOPT_TIMERDATA, l);
    return l;
}

void tm_curl_loop_free(tm_curl_loop *l)
{
    if (!l)
        return;
    curl_multi_cleanup(l->multi); /* may call socket_cb to drop sources */
    drop_timer(l);
    g_main_context_unref(l->ctx);
    g_free(l);
}

int tm_curl_loop_add(tm_curl_loop *l, CURL *easy)
{
    return curl_multi_add_handle(l->multi, easy) == CURLM_OK ? 0 : TM_EIO;
}

void tm_curl_loop_remove(tm_curl_loop *l, CURL *easy)
{
    curl_multi_remove_handle(l->multi, easy);
}

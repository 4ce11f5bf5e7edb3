/*
 * conn_limit.c - per-address limit on unauthenticated connections (see
 * conn_limit.h). Owns a table address -> the sockets from it that have not
 * authenticated yet, each with the peer (address and port) seen at accept.
 *
 * Runs on the control loop only. Nobody tells us about closes: a tracked
 * socket is gone when getpeername() on its fd fails or names another peer
 * (the fd was reused), which is checked for one address at each accept from
 * it, and for all addresses when the table has doubled since the last sweep.
 */
#include "telemed/conn_limit.h"

#include <arpa/inet.h>
#include <glib.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>

typedef struct tracked {
    int fd;
    socklen_t len;
    struct sockaddr_storage peer;
} tracked;

struct tm_conn_limit {
    int max_per_addr;
    GHashTable *by_addr; /* owned "ip" -> owned GArray of tracked */
    guint sweep_at;      /* addresses in the table that trigger a full sweep */
};

#define SWEEP_FLOOR 1024

static void free_array(gpointer a)
{
    g_array_free(a, TRUE);
}

tm_conn_limit *tm_conn_limit_new(int max_per_addr)
{
    tm_conn_limit *cl = g_new0(tm_conn_limit, 1);
    cl->max_per_addr = max_per_addr > 0 ? max_per_addr : 1;
    cl->by_addr = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, free_array);
    cl->sweep_at = SWEEP_FLOOR;
    return cl;
}

void tm_conn_limit_free(tm_conn_limit *cl)
{
    if (!cl)
        return;
    g_hash_table_destroy(cl->by_addr);
    g_free(cl);
}

/* The peer of fd and its address as text (the table's key). */
static int peer_of(int fd, tracked *t, char key[INET6_ADDRSTRLEN])
{
    t->fd = fd;
    t->len = sizeof(t->peer);
    memset(&t->peer, 0, sizeof(t->peer));
    if (fd < 0 || getpeername(fd, (struct sockaddr *)&t->peer, &t->len) < 0)
        return TM_EINVAL;
    const void *addr = NULL;
    if (t->peer.ss_family == AF_INET)
        addr = &((struct sockaddr_in *)&t->peer)->sin_addr;
    else if (t->peer.ss_family == AF_INET6)
        addr = &((struct sockaddr_in6 *)&t->peer)->sin6_addr;
    if (!addr || !inet_ntop(t->peer.ss_family, addr, key, INET6_ADDRSTRLEN))
        return TM_EINVAL;
    return 0;
}

static bool still_there(const tracked *t)
{
    tracked now;
    char key[INET6_ADDRSTRLEN];
    return peer_of(t->fd, &now, key) == 0 && now.len == t->len &&
           memcmp(&now.peer, &t->peer, t->len) == 0;
}

/* Drops the gone sockets, and any entry for fd (its old connection closed
 * and the number came back with a new one). */
static void prune(GArray *a, int fd)
{
    for (guint i = a->len; i-- > 0;) {
        tracked *t = &g_array_index(a, tracked, i);
        if (t->fd == fd || !still_there(t))
            g_array_remove_index_fast(a, i);
    }
}

static gboolean prune_entry(gpointer key, gpointer value, gpointer data)
{
    prune(value, -1);
    return ((GArray *)value)->len == 0;
}

static void maybe_sweep(tm_conn_limit *cl)
{
    guint n = g_hash_table_size(cl->by_addr);
    if (n < cl->sweep_at)
        return;
    g_hash_table_foreach_remove(cl->by_addr, prune_entry, NULL);
    n = g_hash_table_size(cl->by_addr);
    cl->sweep_at = MAX(SWEEP_FLOOR, 2 * n);
}

int tm_conn_limit_admit(tm_conn_limit *cl, int fd)
{
    tracked t;
    char key[INET6_ADDRSTRLEN];
    if (peer_of(fd, &t, key) < 0)
        return TM_EINVAL;
    GArray *a = g_hash_table_lookup(cl->by_addr, key);
    if (!a) {
        a = g_array_new(FALSE, FALSE, sizeof(tracked));
        g_hash_table_insert(cl->by_addr, g_strdup(key), a);
    }
    prune(a, fd);
    if ((int)a->len >= cl->max_per_addr)
        return TM_ERATE;
    g_array_append_val(a, t);
    maybe_sweep(cl);
    return 0;
}

void tm_conn_limit_authenticated(tm_conn_limit *cl, int fd)
{
    tracked t;
    char key[INET6_ADDRSTRLEN];
    if (!cl || peer_of(fd, &t, key) < 0)
        return;
    GArray *a = g_hash_table_lookup(cl->by_addr, key);
    if (!a)
        return;
    for (guint i = 0; i < a->len; i++) {
        if (g_array_index(a, tracked, i).fd == fd) {
            g_array_remove_index_fast(a, i);
            break;
        }
    }
    if (a->len == 0)
        g_hash_table_remove(cl->by_addr, key);
}

int tm_conn_limit_count(tm_conn_limit *cl, int fd)
{
    tracked t;
    char key[INET6_ADDRSTRLEN];
    if (peer_of(fd, &t, key) < 0)
        return 0;
    GArray *a = g_hash_table_lookup(cl->by_addr, key);
    if (!a)
        return 0;
    prune(a, -1);
    return (int)a->len;
}

/*
 * delay_relay.c - see delay_relay.h. One thread polls the listening socket
 * and both ends of every connection; a chunk read at t is written at
 * t + delay, in order, so the delay adds to each direction without
 * limiting the throughput. A direction holding more than QUEUE_CAP bytes
 * is not read until it drains: memory stays bounded.
 */
#include "delay_relay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <glib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { MAX_CONNS = 16, CHUNK_MAX = 65536, QUEUE_CAP = 4 << 20, IDLE_POLL_MS = 20 };

typedef struct chunk {
    int64_t due_us;
    size_t len;
    char data[];
} chunk;

/* One direction of a connection: bytes read from `from`, held, written to `to`. */
typedef struct lane {
    int from, to;
    GQueue held; /* chunk * */
    size_t held_bytes;
} lane;

typedef struct conn {
    lane up, down; /* client -> server, server -> client */
    bool answered; /* the server spoke since the client's last send */
} conn;

struct delay_relay {
    int listen_fd, target_port;
    int64_t delay_us;
    conn *conns[MAX_CONNS];
    GThread *thread;
    gint stop;
    gint round_trips;
};

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void no_delay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int connect_target(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    no_delay(fd);
    return fd;
}

static void lane_clear(lane *l)
{
    chunk *c;
    while ((c = g_queue_pop_head(&l->held)))
        g_free(c);
    l->held_bytes = 0;
}

static void conn_close(delay_relay *r, int i)
{
    conn *c = r->conns[i];
    lane_clear(&c->up);
    lane_clear(&c->down);
    close(c->up.from);
    close(c->up.to);
    g_free(c);
    r->conns[i] = NULL;
}

static void accept_one(delay_relay *r)
{
    int client = accept4(r->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (client < 0)
        return;
    int slot = 0;
    while (slot < MAX_CONNS && r->conns[slot])
        slot++;
    int server = slot < MAX_CONNS ? connect_target(r->target_port) : -1;
    if (server < 0) {
        close(client);
        return;
    }
    no_delay(client);
    conn *c = g_new0(conn, 1);
    c->up = (lane){.from = client, .to = server};
    c->down = (lane){.from = server, .to = client};
    g_queue_init(&c->up.held);
    g_queue_init(&c->down.held);
    c->answered = true;
    r->conns[slot] = c;
}

/* false when the sending side closed or failed. */
static bool lane_read(delay_relay *r, lane *l)
{
    char buf[CHUNK_MAX];
    ssize_t n = read(l->from, buf, sizeof(buf));
    if (n <= 0)
        return n < 0 && (errno == EINTR || errno == EAGAIN);
    chunk *c = g_malloc(sizeof(*c) + (size_t)n);
    c->due_us = now_us() + r->delay_us;
    c->len = (size_t)n;
    memcpy(c->data, buf, (size_t)n);
    g_queue_push_tail(&l->held, c);
    l->held_bytes += (size_t)n;
    return true;
}

static bool write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* Writes the chunks that are due; false when the receiving side failed. */
static bool lane_flush(lane *l, int64_t now)
{
    chunk *c;
    while ((c = g_queue_peek_head(&l->held)) && c->due_us <= now) {
        g_queue_pop_head(&l->held);
        l->held_bytes -= c->len;
        bool ok = write_all(l->to, c->data, c->len);
        g_free(c);
        if (!ok)
            return false;
    }
    return true;
}

static int64_t lane_next_due(const lane *l, int64_t next)
{
    const chunk *c = g_queue_peek_head((GQueue *)&l->held);
    return c && c->due_us < next ? c->due_us : next;
}

static void watch(struct pollfd *p, const lane *l)
{
    *p = (struct pollfd){.fd = l && l->held_bytes < QUEUE_CAP ? l->from : -1, .events = POLLIN};
}

/* Microseconds matter: a delay of 0.2 ms must not become poll's 1 ms. */
static struct timespec poll_timeout(delay_relay *r)
{
    int64_t now = now_us(), next = now + IDLE_POLL_MS * 1000;
    for (int i = 0; i < MAX_CONNS; i++)
        if (r->conns[i])
            next = lane_next_due(&r->conns[i]->down, lane_next_due(&r->conns[i]->up, next));
    int64_t wait = next > now ? next - now : 0;
    return (struct timespec){.tv_sec = wait / 1000000, .tv_nsec = (wait % 1000000) * 1000};
}

/* A send of the client after the server spoke is a new round trip. */
static bool serve_conn(delay_relay *r, conn *c, const struct pollfd *p)
{
    bool ok = true;
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
        if (c->answered)
            g_atomic_int_inc(&r->round_trips);
        c->answered = false;
        ok = lane_read(r, &c->up);
    }
    if (ok && p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
        c->answered = true;
        ok = lane_read(r, &c->down);
    }
    int64_t now = now_us();
    return ok && lane_flush(&c->up, now) && lane_flush(&c->down, now);
}

static gpointer relay_thread(gpointer data)
{
    delay_relay *r = data;
    while (!g_atomic_int_get(&r->stop)) {
        struct pollfd p[1 + 2 * MAX_CONNS];
        p[0] = (struct pollfd){.fd = r->listen_fd, .events = POLLIN};
        for (int i = 0; i < MAX_CONNS; i++) {
            conn *c = r->conns[i];
            watch(&p[1 + 2 * i], c ? &c->up : NULL);
            watch(&p[2 + 2 * i], c ? &c->down : NULL);
        }
        struct timespec timeout = poll_timeout(r);
        if (ppoll(p, 1 + 2 * MAX_CONNS, &timeout, NULL) < 0 && errno != EINTR)
            break;
        if (p[0].revents & POLLIN)
            accept_one(r);
        for (int i = 0; i < MAX_CONNS; i++)
            if (r->conns[i] && !serve_conn(r, r->conns[i], &p[1 + 2 * i]))
                conn_close(r, i);
    }
    return NULL;
}

static int listen_loopback(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 16) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

delay_relay *delay_relay_start(int target_port, int64_t delay_us, int *port)
{
    if (delay_us < 0 || delay_us > 1000000 || target_port <= 0 || target_port > 65535) {
        fprintf(stderr, "delay_relay: delay 0..1 s and a port, please\n");
        return NULL;
    }
    int fd = listen_loopback(port);
    if (fd < 0) {
        fprintf(stderr, "delay_relay: cannot listen on 127.0.0.1: %s\n", strerror(errno));
        return NULL;
    }
    delay_relay *r = g_new0(delay_relay, 1);
    r->listen_fd = fd;
    r->target_port = target_port;
    r->delay_us = delay_us;
    r->thread = g_thread_new("delay-relay", relay_thread, r);
    return r;
}

uint64_t delay_relay_round_trips(delay_relay *r)
{
    return (uint64_t)g_atomic_int_get(&r->round_trips);
}

void delay_relay_stop(delay_relay *r)
{
    if (!r)
        return;
    g_atomic_int_set(&r->stop, 1);
    g_thread_join(r->thread);
    for (int i = 0; i < MAX_CONNS; i++)
        if (r->conns[i])
            conn_close(r, i);
    close(r->listen_fd);
    g_free(r);
}

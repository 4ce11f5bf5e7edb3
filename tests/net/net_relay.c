/*
 * net_relay.c - the tests' own bad network between one browser and
 * telemed-server: a UDP (and TCP) relay that drops, delays with jitter,
 * reorders, caps the rate and blacks out on command, and can change the
 * address the server sees (a Wi-Fi to 4G handover).
 *
 * The browser side of the relay may live in a network namespace the test
 * made (--netns): a Chromium started in that namespace sees only its own
 * loopback, where the relay listens on the server's ports, so every byte
 * between that browser and the server crosses the relay and nothing can
 * go around it. The server side is always the relay's own namespace.
 *
 * Commands, one per line on stdin (answered "ok ..." on stdout):
 *   drop PCT | delay MS JITTER_MS | reorder PCT | rate KBPS (0: no cap)
 *   blackout MS | down | up | rebind | stats (counts per direction, STUN
 *   binding requests among them as checks)
 * "down"/"blackout" drop every datagram and stop reading TCP (the bytes
 * wait, as in a router that lost its uplink); "rebind" gives every flow a
 * new source address and port towards the server. The relay exits when
 * stdin closes, after --max-seconds, or after --max-packets datagrams, so
 * it never outlives its test. One thread, poll(); test code, not product.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum {
    MAX_UDP_PORTS = 64,
    MAX_TCP_PORTS = 4,
    MAX_FLOWS = 128,
    MAX_TCP_PAIRS = 64,
    QUEUE_CAP = 4096,
    DGRAM_MAX = 2048,
    MAX_QUEUE_DELAY_US = 1000000, /* a rate-capped queue longer than this drops */
    REORDER_EXTRA_US = 30000,
};

enum { UP, DOWN }; /* browser to server, server to browser */

typedef struct flow {
    bool used;
    int port_idx;
    struct sockaddr_in client;
    int up_fd; /* connected to the server's port, in the relay's namespace */
} flow;

typedef struct packet {
    int64_t due_us;
    uint64_t seq;
    int fd;
    bool has_to;
    struct sockaddr_in to;
    uint16_t len;
    uint8_t data[DGRAM_MAX];
} packet;

typedef struct tcp_pair {
    bool used;
    int fd[2]; /* browser side, server side */
} tcp_pair;

typedef struct relay {
    struct in_addr listen_addr, target_addr, upstream_addr;
    int n_udp, n_tcp;
    uint16_t udp_port[MAX_UDP_PORTS], tcp_port[MAX_TCP_PORTS];
    int udp_fd[MAX_UDP_PORTS], tcp_listen_fd[MAX_TCP_PORTS];
    flow flows[MAX_FLOWS];
    tcp_pair pairs[MAX_TCP_PAIRS];
    /* The delay queue: a min-heap of slot indices ordered by (due, seq). */
    packet *slots;
    int heap[QUEUE_CAP], free_slots[QUEUE_CAP], n_heap, n_free;
    uint64_t seq;
    /* Impairments, the same both ways. */
    double drop_pct, reorder_pct;
    int64_t delay_us, jitter_us, rate_bps, blackout_until_us;
    bool down;
    int64_t next_free_us[2];
    int rebinds;
    /* Counters, per direction. */
    uint64_t in[2], sent[2], dropped[2];
    uint64_t checks[2]; /* STUN binding requests that came in (ICE checks, consent) */
    uint64_t max_packets;
} relay;

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static double uniform01(void)
{
    return (double)rand() / ((double)RAND_MAX + 1.0);
}

static bool blacked_out(const relay *r, int64_t now)
{
    return r->down || now < r->blackout_until_us;
}

/* ---- the delay queue ---- */

static bool heap_less(const relay *r, int a, int b)
{
    const packet *x = &r->slots[a], *y = &r->slots[b];
    return x->due_us < y->due_us || (x->due_us == y->due_us && x->seq < y->seq);
}

static void heap_swap(relay *r, int i, int j)
{
    int t = r->heap[i];
    r->heap[i] = r->heap[j];
    r->heap[j] = t;
}

static void heap_push(relay *r, int slot)
{
    int i = r->n_heap++;
    r->heap[i] = slot;
    while (i > 0 && heap_less(r, r->heap[i], r->heap[(i - 1) / 2])) {
        heap_swap(r, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static int heap_pop(relay *r)
{
    int top = r->heap[0];
    r->heap[0] = r->heap[--r->n_heap];
    int i = 0;
    for (;;) {
        int l = 2 * i + 1, rt = l + 1, m = i;
        if (l < r->n_heap && heap_less(r, r->heap[l], r->heap[m]))
            m = l;
        if (rt < r->n_heap && heap_less(r, r->heap[rt], r->heap[m]))
            m = rt;
        if (m == i)
            break;
        heap_swap(r, i, m);
        i = m;
    }
    return top;
}

static void send_packet(const packet *p)
{
    if (p->fd < 0)
        return; /* its flow was rebound while it waited */
    if (p->has_to)
        (void)sendto(p->fd, p->data, p->len, 0, (const struct sockaddr *)&p->to, sizeof p->to);
    else
        (void)send(p->fd, p->data, p->len, 0);
}

static bool is_binding_request(const uint8_t *d, size_t len)
{
    return len >= 20 && d[0] == 0x00 && d[1] == 0x01 && d[4] == 0x21 && d[5] == 0x12 &&
           d[6] == 0xa4 && d[7] == 0x42;
}

/* Applies the impairments to one datagram: drops it, sends it at once, or
 * queues it for later. to is NULL on a connected socket. */
static void relay_datagram(relay *r, int dir, int fd, const struct sockaddr_in *to,
                           const uint8_t *data, size_t len)
{
    int64_t now = now_us();
    r->in[dir]++;
    if (is_binding_request(data, len))
        r->checks[dir]++;
    if (blacked_out(r, now) || uniform01() * 100.0 < r->drop_pct) {
        r->dropped[dir]++;
        return;
    }
    int64_t delay = r->delay_us;
    if (r->jitter_us)
        delay += (int64_t)((uniform01() * 2.0 - 1.0) * (double)r->jitter_us);
    if (uniform01() * 100.0 < r->reorder_pct)
        delay += REORDER_EXTRA_US;
    int64_t due = now + (delay > 0 ? delay : 0);
    if (r->rate_bps) {
        if (r->next_free_us[dir] > due)
            due = r->next_free_us[dir];
        if (due - now > MAX_QUEUE_DELAY_US) {
            r->dropped[dir]++;
            return;
        }
        r->next_free_us[dir] = due + (int64_t)len * 8 * 1000000 / r->rate_bps;
    }
    if (due <= now && r->n_heap == 0) {
        packet p = {.fd = fd, .has_to = to != NULL, .len = (uint16_t)len};
        if (to)
            p.to = *to;
        memcpy(p.data, data, len);
        send_packet(&p);
        r->sent[dir]++;
        return;
    }
    if (r->n_free == 0) {
        r->dropped[dir]++;
        return;
    }
    int slot = r->free_slots[--r->n_free];
    packet *p = &r->slots[slot];
    p->due_us = due;
    p->seq = r->seq++;
    p->fd = fd;
    p->has_to = to != NULL;
    if (to)
        p->to = *to;
    p->len = (uint16_t)len;
    memcpy(p->data, data, len);
    heap_push(r, slot);
    r->sent[dir]++;
}

static void flush_due(relay *r)
{
    int64_t now = now_us();
    while (r->n_heap && r->slots[r->heap[0]].due_us <= now) {
        int slot = heap_pop(r);
        send_packet(&r->slots[slot]);
        r->free_slots[r->n_free++] = slot;
    }
}

/* Sockets whose fd was closed must not be sent on from the queue. */
static void forget_queued_fd(relay *r, int fd)
{
    for (int i = 0; i < r->n_heap; i++)
        if (r->slots[r->heap[i]].fd == fd)
            r->slots[r->heap[i]].fd = -1;
}

/* ---- sockets ---- */

static int bind_socket(int type, struct in_addr addr, uint16_t port, bool listening)
{
    int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    if (type == SOCK_STREAM)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    /* A keyframe arrives as a burst; the default buffer (about 90 datagrams
     * of 1000 bytes) would drop some of it, which no real router does. */
    int rcvbuf = 4 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr = addr, .sin_port = htons(port)};
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || (listening && listen(fd, 64) != 0)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The address towards the server: each rebind moves to the next loopback
 * address, so the server sees a new IP as well as a new port. */
static struct in_addr upstream_source(const relay *r)
{
    struct in_addr a = r->upstream_addr;
    uint32_t h = ntohl(a.s_addr);
    if ((h >> 24) == 127)
        h = (h & 0xffffff00u) | (((h & 0xffu) - 1 + (uint32_t)r->rebinds) % 250u + 1);
    a.s_addr = htonl(h);
    return a;
}

static int connect_upstream(const relay *r, int type, uint16_t port)
{
    int fd = bind_socket(type, upstream_source(r), 0, false);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_addr = r->target_addr, .sin_port = htons(port)};
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static flow *flow_for(relay *r, int port_idx, const struct sockaddr_in *client)
{
    flow *spare = NULL;
    for (int i = 0; i < MAX_FLOWS; i++) {
        flow *f = &r->flows[i];
        if (!f->used) {
            spare = spare ? spare : f;
            continue;
        }
        if (f->port_idx == port_idx && f->client.sin_port == client->sin_port &&
            f->client.sin_addr.s_addr == client->sin_addr.s_addr)
            return f;
    }
    if (!spare)
        return NULL;
    int fd = connect_upstream(r, SOCK_DGRAM, r->udp_port[port_idx]);
    if (fd < 0)
        return NULL;
    *spare = (flow){.used = true, .port_idx = port_idx, .client = *client, .up_fd = fd};
    return spare;
}

static void rebind(relay *r)
{
    r->rebinds++;
    for (int i = 0; i < MAX_FLOWS; i++) {
        if (r->flows[i].used) {
            forget_queued_fd(r, r->flows[i].up_fd);
            close(r->flows[i].up_fd);
            r->flows[i].used = false;
        }
    }
}

static void tcp_pair_close(tcp_pair *t)
{
    for (int k = 0; k < 2; k++)
        close(t->fd[k]);
    t->used = false;
}

static void tcp_accept(relay *r, int idx)
{
    int c = accept4(r->tcp_listen_fd[idx], NULL, NULL, SOCK_CLOEXEC);
    if (c < 0)
        return;
    for (int i = 0; i < MAX_TCP_PAIRS; i++) {
        if (r->pairs[i].used)
            continue;
        int s = connect_upstream(r, SOCK_STREAM, r->tcp_port[idx]);
        if (s < 0)
            break;
        r->pairs[i] = (tcp_pair){.used = true, .fd = {c, s}};
        return;
    }
    close(c);
}

/* Moves what one side of a TCP pair has to the other; a blocking write is
 * fine on loopback with a reader on the other end. */
static void tcp_pump(tcp_pair *t, int from)
{
    uint8_t buf[16384];
    ssize_t n = recv(t->fd[from], buf, sizeof buf, 0);
    if (n <= 0) {
        tcp_pair_close(t);
        return;
    }
    for (ssize_t off = 0; off < n;) {
        ssize_t w = send(t->fd[!from], buf + off, (size_t)(n - off), MSG_NOSIGNAL);
        if (w <= 0) {
            tcp_pair_close(t);
            return;
        }
        off += w;
    }
}

/* ---- commands ---- */

static void print_stats(const relay *r)
{
    printf("ok stats up_in=%llu up_sent=%llu up_dropped=%llu down_in=%llu down_sent=%llu "
           "down_dropped=%llu queued=%d rebinds=%d up_checks=%llu down_checks=%llu\n",
           (unsigned long long)r->in[UP], (unsigned long long)r->sent[UP],
           (unsigned long long)r->dropped[UP], (unsigned long long)r->in[DOWN],
           (unsigned long long)r->sent[DOWN], (unsigned long long)r->dropped[DOWN], r->n_heap,
           r->rebinds, (unsigned long long)r->checks[UP], (unsigned long long)r->checks[DOWN]);
}

static void command(relay *r, char *line)
{
    double a = 0, b = 0;
    char word[32] = "";
    int n = sscanf(line, "%31s %lf %lf", word, &a, &b);
    if (n < 1)
        return;
    if (strcmp(word, "drop") == 0 && n >= 2 && a >= 0 && a <= 100)
        r->drop_pct = a;
    else if (strcmp(word, "reorder") == 0 && n >= 2 && a >= 0 && a <= 100)
        r->reorder_pct = a;
    else if (strcmp(word, "delay") == 0 && n >= 2 && a >= 0 && b >= 0 && b <= a + 1e-9) {
        r->delay_us = (int64_t)(a * 1000);
        r->jitter_us = n >= 3 ? (int64_t)(b * 1000) : 0;
    } else if (strcmp(word, "rate") == 0 && n >= 2 && a >= 0)
        r->rate_bps = (int64_t)(a * 1000);
    else if (strcmp(word, "blackout") == 0 && n >= 2 && a >= 0)
        r->blackout_until_us = now_us() + (int64_t)(a * 1000);
    else if (strcmp(word, "down") == 0)
        r->down = true;
    else if (strcmp(word, "up") == 0) {
        r->down = false;
        r->blackout_until_us = 0;
    } else if (strcmp(word, "rebind") == 0)
        rebind(r);
    else if (strcmp(word, "stats") == 0) {
        print_stats(r);
        fflush(stdout);
        return;
    } else {
        printf("error unknown or out-of-range command: %s\n", line);
        fflush(stdout);
        return;
    }
    printf("ok %s\n", word);
    fflush(stdout);
}

/* ---- setup ---- */

static int parse_ports(const char *s, uint16_t *out, int cap)
{
    unsigned lo, hi;
    if (sscanf(s, "%u-%u", &lo, &hi) == 2 && lo >= 1 && hi <= 65535 && lo <= hi &&
        hi - lo < (unsigned)cap) {
        for (unsigned p = lo; p <= hi; p++)
            out[p - lo] = (uint16_t)p;
        return (int)(hi - lo + 1);
    }
    int n = 0;
    char *copy = strdup(s), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        long p = strtol(tok, NULL, 10);
        if (p < 1 || p > 65535 || n == cap) {
            n = -1;
            break;
        }
        out[n++] = (uint16_t)p;
    }
    free(copy);
    return n;
}

/* Binds the browser-facing sockets, inside the named namespace if any. */
static int bind_browser_side(relay *r, const char *netns)
{
    int self = -1, target = -1, rc = -1;
    if (netns) {
        char path[256];
        snprintf(path, sizeof path, "/var/run/netns/%s", netns);
        self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        target = open(path, O_RDONLY | O_CLOEXEC);
        if (self < 0 || target < 0 || setns(target, CLONE_NEWNET) != 0) {
            fprintf(stderr, "net_relay: cannot enter netns %s: %s\n", netns, strerror(errno));
            goto fail;
        }
    }
    for (int i = 0; i < r->n_udp; i++) {
        if ((r->udp_fd[i] = bind_socket(SOCK_DGRAM, r->listen_addr, r->udp_port[i], false)) < 0) {
            fprintf(stderr, "net_relay: udp port %u: %s\n", r->udp_port[i], strerror(errno));
            goto fail;
        }
    }
    for (int i = 0; i < r->n_tcp; i++) {
        if ((r->tcp_listen_fd[i] = bind_socket(SOCK_STREAM, r->listen_addr, r->tcp_port[i], true)) <
            0) {
            fprintf(stderr, "net_relay: tcp port %u: %s\n", r->tcp_port[i], strerror(errno));
            goto fail;
        }
    }
    rc = 0;
fail:
    if (self >= 0 && setns(self, CLONE_NEWNET) != 0) {
        fprintf(stderr, "net_relay: cannot return to own netns: %s\n", strerror(errno));
        rc = -1;
    }
    if (self >= 0)
        close(self);
    if (target >= 0)
        close(target);
    return rc;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: net_relay --udp-ports MIN-MAX|P,P.. [--tcp-ports P,P..] [--netns NAME]\n"
            "       [--listen 127.0.0.1] [--target 127.0.0.1] [--upstream 127.0.0.1]\n"
            "       [--max-seconds 900] [--max-packets 20000000] [--seed N]\n");
}

static int parse_args(relay *r, int argc, char **argv, const char **netns, int64_t *max_s)
{
    const char *listen = "127.0.0.1", *target = "127.0.0.1", *upstream = "127.0.0.1";
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!val)
            return -1;
        i++;
        if (strcmp(opt, "--udp-ports") == 0)
            r->n_udp = parse_ports(val, r->udp_port, MAX_UDP_PORTS);
        else if (strcmp(opt, "--tcp-ports") == 0)
            r->n_tcp = parse_ports(val, r->tcp_port, MAX_TCP_PORTS);
        else if (strcmp(opt, "--netns") == 0)
            *netns = val;
        else if (strcmp(opt, "--listen") == 0)
            listen = val;
        else if (strcmp(opt, "--target") == 0)
            target = val;
        else if (strcmp(opt, "--upstream") == 0)
            upstream = val;
        else if (strcmp(opt, "--max-seconds") == 0)
            *max_s = strtoll(val, NULL, 10);
        else if (strcmp(opt, "--max-packets") == 0)
            r->max_packets = strtoull(val, NULL, 10);
        else if (strcmp(opt, "--seed") == 0)
            srand((unsigned)strtoul(val, NULL, 10));
        else
            return -1;
    }
    if (r->n_udp <= 0 || r->n_tcp < 0 || *max_s <= 0 || r->max_packets == 0 ||
        inet_pton(AF_INET, listen, &r->listen_addr) != 1 ||
        inet_pton(AF_INET, target, &r->target_addr) != 1 ||
        inet_pton(AF_INET, upstream, &r->upstream_addr) != 1)
        return -1;
    return 0;
}

/* ---- the loop ---- */

enum { MAX_FDS = 1 + MAX_UDP_PORTS + MAX_FLOWS + MAX_TCP_PORTS + 2 * MAX_TCP_PAIRS };

typedef struct fd_role {
    int kind; /* 0 stdin, 1 udp listener, 2 flow, 3 tcp listener, 4 tcp pair */
    int idx, side;
} fd_role;

static int gather_fds(relay *r, struct pollfd *pfd, fd_role *role, bool paused)
{
    int n = 0;
    pfd[n] = (struct pollfd){.fd = 0, .events = POLLIN};
    role[n++] = (fd_role){0, 0, 0};
    for (int i = 0; i < r->n_udp; i++) {
        pfd[n] = (struct pollfd){.fd = r->udp_fd[i], .events = POLLIN};
        role[n++] = (fd_role){1, i, 0};
    }
    for (int i = 0; i < MAX_FLOWS; i++) {
        if (!r->flows[i].used)
            continue;
        pfd[n] = (struct pollfd){.fd = r->flows[i].up_fd, .events = POLLIN};
        role[n++] = (fd_role){2, i, 0};
    }
    for (int i = 0; i < r->n_tcp; i++) {
        pfd[n] = (struct pollfd){.fd = r->tcp_listen_fd[i], .events = POLLIN};
        role[n++] = (fd_role){3, i, 0};
    }
    for (int i = 0; i < MAX_TCP_PAIRS && !paused; i++) {
        if (!r->pairs[i].used)
            continue;
        for (int k = 0; k < 2; k++) {
            pfd[n] = (struct pollfd){.fd = r->pairs[i].fd[k], .events = POLLIN};
            role[n++] = (fd_role){4, i, k};
        }
    }
    return n;
}

static int poll_timeout_ms(const relay *r, int64_t now)
{
    int64_t wait = 200000;
    if (r->n_heap) {
        int64_t due = r->slots[r->heap[0]].due_us - now;
        wait = due < wait ? due : wait;
    }
    if (now < r->blackout_until_us && r->blackout_until_us - now < wait)
        wait = r->blackout_until_us - now;
    return wait <= 0 ? 0 : (int)((wait + 999) / 1000);
}

/* Returns false when stdin closed. */
static bool read_commands(relay *r)
{
    static char line[512];
    static size_t used;
    ssize_t n = read(0, line + used, sizeof line - 1 - used);
    if (n <= 0)
        return false;
    used += (size_t)n;
    line[used] = 0;
    char *start = line, *nl;
    while ((nl = strchr(start, '\n'))) {
        *nl = 0;
        command(r, start);
        start = nl + 1;
    }
    used = strlen(start);
    memmove(line, start, used + 1);
    if (used == sizeof line - 1)
        used = 0; /* an endless line: forget it */
    return true;
}

static void handle_ready(relay *r, const fd_role *role, bool *running)
{
    uint8_t buf[DGRAM_MAX];
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    ssize_t n;
    switch (role->kind) {
    case 0:
        *running = read_commands(r);
        break;
    case 1:
        n = recvfrom(r->udp_fd[role->idx], buf, sizeof buf, MSG_DONTWAIT, (struct sockaddr *)&from,
                     &fl);
        if (n > 0) {
            flow *f = flow_for(r, role->idx, &from);
            if (f)
                relay_datagram(r, UP, f->up_fd, NULL, buf, (size_t)n);
        }
        break;
    case 2: {
        flow *f = &r->flows[role->idx];
        if (!f->used)
            break;
        n = recv(f->up_fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0)
            relay_datagram(r, DOWN, r->udp_fd[f->port_idx], &f->client, buf, (size_t)n);
        break;
    }
    case 3:
        tcp_accept(r, role->idx);
        break;
    case 4:
        if (r->pairs[role->idx].used)
            tcp_pump(&r->pairs[role->idx], role->side);
        break;
    }
}

int main(int argc, char **argv)
{
    static relay r;
    const char *netns = NULL;
    int64_t max_s = 900;
    r.max_packets = 20000000;
    srand((unsigned)getpid());
    if (parse_args(&r, argc, argv, &netns, &max_s) != 0) {
        usage();
        return 2;
    }
    r.slots = calloc(QUEUE_CAP, sizeof *r.slots);
    if (!r.slots || bind_browser_side(&r, netns) != 0)
        return 1;
    for (int i = 0; i < QUEUE_CAP; i++)
        r.free_slots[r.n_free++] = QUEUE_CAP - 1 - i;
    printf("ready udp=%d tcp=%d\n", r.n_udp, r.n_tcp);
    fflush(stdout);

    static struct pollfd pfd[MAX_FDS];
    static fd_role role[MAX_FDS];
    int64_t end = now_us() + max_s * 1000000;
    bool running = true;
    while (running && now_us() < end && r.in[UP] + r.in[DOWN] < r.max_packets) {
        int64_t now = now_us();
        int n = gather_fds(&r, pfd, role, blacked_out(&r, now));
        if (poll(pfd, (nfds_t)n, poll_timeout_ms(&r, now)) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < n && running; i++) {
            if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
                handle_ready(&r, &role[i], &running);
        }
        flush_due(&r);
    }
    print_stats(&r);
    free(r.slots);
    return 0;
}

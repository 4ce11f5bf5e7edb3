/*
 * fanout_floor.c - what writing one small message to each of N loopback TCP
 * sockets costs on this machine, with no TLS, no WebSocket and no server:
 * the floor under telemed's queue-position fan-out. Run by hand:
 *
 *   build-x/fanout_floor [--conns 5000] [--rounds 20] [--bytes 190]
 *
 * A reader process (forked, like the patients' processes in
 * signaling_load.mjs) reads every socket through epoll. The writer sends one
 * message per socket per round, on 1 and then 2 threads, each message
 * carrying the round's start time; the reader notes when it arrived. Printed
 * per writer count: the round's wall time, start -> message read p50/p99 over
 * all messages, and the writer's CPU per write. Everything is on 127.0.0.1;
 * rounds are counted and spaced 300 ms apart. The exit code says only
 * whether the run worked.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_BYTES 1024
#define MAX_WRITERS 2

typedef struct message {
    int64_t start_ns;
    int32_t variant, round, conn;
} message;

static int n_conns = 5000, n_rounds = 20, n_bytes = 190;
static int *wfd, *rfd;
static int64_t *lat_ns; /* shared with the reader: [variant][round][conn] */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
           ru.ru_stime.tv_usec;
}

static int connect_pairs(void)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 4096) ||
        getsockname(ls, (struct sockaddr *)&a, &alen))
        return -1;
    for (int i = 0; i < n_conns; i++) {
        rfd[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (rfd[i] < 0 || connect(rfd[i], (struct sockaddr *)&a, sizeof(a)))
            return -1;
        wfd[i] = accept(ls, NULL, NULL);
        if (wfd[i] < 0)
            return -1;
        int one = 1; /* as a WebSocket server sets it */
        setsockopt(wfd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    close(ls);
    return 0;
}

static void reader(void)
{
    int ep = epoll_create1(0);
    int *got = calloc((size_t)n_conns, sizeof(int));
    unsigned char(*buf)[MAX_BYTES] = calloc((size_t)n_conns, MAX_BYTES);
    if (ep < 0 || !got || !buf)
        _exit(1);
    for (int i = 0; i < n_conns; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, rfd[i], &ev))
            _exit(1);
    }
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int k = 0; k < n; k++) {
            int i = (int)evs[k].data.u32;
            ssize_t r = read(rfd[i], buf[i] + got[i], (size_t)(n_bytes - got[i]));
            if (r <= 0)
                _exit(0); /* the writer closed: done */
            got[i] += (int)r;
            if (got[i] < n_bytes)
                continue;
            got[i] = 0;
            message m;
            memcpy(&m, buf[i], sizeof(m));
            size_t at = ((size_t)m.variant * (size_t)n_rounds + (size_t)m.round) * (size_t)n_conns +
                        (size_t)m.conn;
            lat_ns[at] = now_ns() - m.start_ns;
        }
    }
}

typedef struct slice {
    int variant, round, first, end;
    int64_t start_ns;
} slice;

static void *write_slice(void *arg)
{
    slice *s = arg;
    unsigned char out[MAX_BYTES] = {0};
    for (int i = s->first; i < s->end; i++) {
        message m = {s->start_ns, s->variant, s->round, i};
        memcpy(out, &m, sizeof(m));
        if (write(wfd[i], out, (size_t)n_bytes) != n_bytes)
            fprintf(stderr, "write %d: %s\n", i, strerror(errno));
    }
    return NULL;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_ms(int64_t *sorted, size_t n, double p)
{
    size_t i = (size_t)(p / 100 * (double)n);
    return n ? (double)sorted[i < n ? i : n - 1] / 1e6 : 0;
}

static void run_variant(int variant, int writers)
{
    int64_t *walls = calloc((size_t)n_rounds, sizeof(int64_t));
    int64_t cpu0 = cpu_us(), cpu_total = 0;
    for (int r = 0; r < n_rounds; r++) {
        slice sl[MAX_WRITERS];
        pthread_t th[MAX_WRITERS];
        int64_t t0 = now_ns();
        cpu0 = cpu_us();
        for (int w = 0; w < writers; w++)
            sl[w] = (slice){variant, r, n_conns * w / writers, n_conns * (w + 1) / writers, t0};
        for (int w = 1; w < writers; w++)
            pthread_create(&th[w], NULL, write_slice, &sl[w]);
        write_slice(&sl[0]);
        for (int w = 1; w < writers; w++)
            pthread_join(th[w], NULL);
        walls[r] = now_ns() - t0;
        cpu_total += cpu_us() - cpu0;
        usleep(300000);
    }
    size_t n = (size_t)n_rounds * (size_t)n_conns;
    int64_t *lat = lat_ns + (size_t)variant * n;
    size_t missing = 0;
    for (size_t i = 0; i < n; i++)
        missing += lat[i] == 0;
    qsort(lat, n, sizeof(int64_t), cmp64);
    qsort(walls, (size_t)n_rounds, sizeof(int64_t), cmp64);
    printf(" %-8d %7.1f / %7.1f ms      %7.1f / %7.1f ms     %5.2f us   %zu\n", writers,
           pct_ms(walls, (size_t)n_rounds, 50), pct_ms(walls, (size_t)n_rounds, 99),
           pct_ms(lat, n, 50), pct_ms(lat, n, 99), (double)cpu_total / (double)n, missing);
    free(walls);
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--conns"))
            n_conns = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rounds"))
            n_rounds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--bytes"))
            n_bytes = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: fanout_floor [--conns N] [--rounds R] [--bytes B]\n");
            return 2;
        }
    }
    if (n_conns < 1 || n_conns > 20000 || n_rounds < 1 || n_rounds > 200 ||
        n_bytes < (int)sizeof(message) || n_bytes > MAX_BYTES) {
        fprintf(stderr, "fanout_floor: conns 1..20000, rounds 1..200, bytes %zu..%d\n",
                sizeof(message), MAX_BYTES);
        return 2;
    }
    struct rlimit rl = {(rlim_t)n_conns * 2 + 64, (rlim_t)n_conns * 2 + 64};
    setrlimit(RLIMIT_NOFILE, &rl);
    wfd = calloc((size_t)n_conns, sizeof(int));
    rfd = calloc((size_t)n_conns, sizeof(int));
    size_t lat_bytes = (size_t)MAX_WRITERS * (size_t)n_rounds * (size_t)n_conns * sizeof(int64_t);
    lat_ns = mmap(NULL, lat_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (!wfd || !rfd || lat_ns == MAP_FAILED || connect_pairs() != 0) {
        fprintf(stderr, "fanout_floor: setup failed: %s\n", strerror(errno));
        return 1;
    }
    pid_t child = fork();
    if (child == 0) {
        for (int i = 0; i < n_conns; i++)
            close(wfd[i]); /* or the writer's close would not end the reader */
        reader();
    }
    for (int i = 0; i < n_conns; i++)
        close(rfd[i]);

    printf("fanout floor: %d loopback TCP sockets, %d-byte writes, %d rounds, reader in its own "
           "process\n",
           n_conns, n_bytes, n_rounds);
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf(" writers  round wall p50 / p99       start->read p50 / p99    CPU/write  unread\n");
    for (int v = 0; v < MAX_WRITERS; v++)
        run_variant(v, v + 1);
    for (int i = 0; i < n_conns; i++)
        close(wfd[i]);
    int status = 0;
    waitpid(child, &status, 0);
    munmap(lat_ns, lat_bytes);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

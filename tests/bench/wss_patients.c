/*
 * wss_patients.c - the waiting patients of signaling_load.mjs, in C. Run by
 * the benchmark, not by hand (but `wss_patients < commands` works).
 *
 * Why: a Node worker spends about 30 us of CPU per received message, so one
 * queue fan-out to 5,000 patients cost the clients ~150 ms of CPU on the
 * same 2 cores as the server, and the benchmark measured its own clients.
 * This program holds the patients' TLS WebSockets on one thread with epoll
 * and non-blocking OpenSSL, and costs a few us per message.
 *
 * Per patient, as the Node Patient does: TCP connect, TLS (no certificate
 * check: a loopback bench client), HTTP/1.1 upgrade to `telemed.v1` on the
 * URL's path, `hello` with an HS256 token minted here (claims as
 * tests/integration/lib/server.mjs mintToken makes them), `checkin` to the
 * department, then wait. Server frames are unmasked, ours are masked; pings
 * are answered with pongs; a close, a reset or a TLS error ends the
 * connection, which is counted and reported, never fatal.
 *
 * Every `queue.position` push is timestamped with CLOCK_MONOTONIC in ms (the
 * orchestrator's now() is process.hrtime in ms, the same clock). When its
 * position changed and the patient was marked, (dept index, p0 - position,
 * time) is recorded; otherwise it counts as estimate-only. Other pushes are
 * counted. collect matches the records against the orchestrator's accept
 * times and returns histograms in the Node Hist format (0.1 ms bins).
 *
 * Commands: one JSON object a line on stdin, each answered by one JSON line
 * on stdout with "re" = its "seq" (the Node worker's IPC commands):
 *   open {subs, url, secret, dept, concurrency} -> {failed, firstError, ms, held}
 *   mark -> {}        collect {events} -> {hAns, hSent, positional, ...}
 *   positions -> {positions}: each waiting patient's last known position
 *   exit -> {}        (openRaw/closeRaw, the baseline, stay on Node workers)
 * The first line written is {"ready":true}. Diagnostics go to stderr.
 *
 * Scheduling: by default the process runs SCHED_BATCH (`--sched other`
 * keeps the normal policy). The patients share the server's two cores here,
 * where real patients are on other machines. Under the normal policy each
 * push wakes a sleeping client, which preempts the server's writer at once,
 * reads that one message and sleeps again: two context switches per push on
 * both sides, and the writers lose their core mid-fan-out. SCHED_BATCH
 * gets the same fair share of CPU but does not preempt on wake-up, so a
 * client reads its messages in batches when a core is free. It does not
 * make the client measure less: every message is still read and stamped
 * when read, so a message it reads later counts as later.
 *
 * The hot path (a readable socket with a push) allocates nothing: one
 * SSL_read into the connection's buffer, a frame parse in place, a scan of
 * the JSON's top-level keys and, when marked, an append to the record
 * arrays, which grow by doubling.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RBUF0 4096              /* read buffer; grows for a larger frame */
#define OBUF 2048               /* pending output: upgrade, hello, checkin, pongs */
#define MAX_FRAME (16u << 20)   /* the server's largest message */
#define OPEN_TIMEOUT_MS 60000.0 /* as the Node worker's request timeout */

enum state { C_CONNECT, C_TLS, C_UPGRADE, C_HELLO, C_CHECKIN, C_WAITING, C_DEAD };
static const char *const state_name[] = {"connect", "tls",     "upgrade", "hello",
                                         "checkin", "waiting", "dead"};

typedef struct conn {
    int fd;
    SSL *ssl;
    enum state st;
    int di;         /* department index (cardio 0, endo 1), -1 unknown */
    int pos, p0;    /* position now, at mark (0: not marked) */
    bool opening;   /* counted in the open pool */
    bool out_armed; /* EPOLLOUT in the epoll mask */
    bool read_wants_write;
    double deadline;   /* while opening */
    unsigned char *rb; /* received, not yet parsed */
    size_t rlen, rcap;
    unsigned char *frag; /* a fragmented message being reassembled */
    size_t flen, fcap;
    size_t olen;
    unsigned char ob[OBUF];
    char sub[64];
} conn;

/* ---- globals: one thread, one loop ---------------------------------- */

static int ep;
static SSL_CTX *ctx;
static conn **conns;
static size_t n_conns, cap_conns;

static struct {
    bool active;
    long long seq;
    char **subs;
    size_t n, next;
    int inflight, concurrency, failed, di;
    char first_error[256];
    char host[64], path[256], secret[256], dept[64];
    int port;
    double t0;
} op;
static int held;

/* Records of position-changing pushes while marked. */
static bool marked;
static int8_t *rec_di;
static int32_t *rec_k;
static double *rec_t;
static size_t rec_n, rec_cap;
static long long estimate_only, other_pushes, bad_msgs, pings, closed_waiting;
static char first_close[320];
static double mark_wall, mark_cpu;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    /* As Number(process.hrtime.bigint()) / 1e6 in the orchestrator. */
    return (double)((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec) / 1e6;
}

static double cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000.0 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000.0;
}

static uint32_t rand32(void)
{
    rng ^= rng << 13; /* masking keys need not be secret on loopback */
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static void reply(json_t *r)
{
    char *s = json_dumps(r, JSON_COMPACT);
    json_decref(r);
    if (!s) {
        fprintf(stderr, "wss_patients: cannot encode a reply\n");
        exit(1);
    }
    fputs(s, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    free(s);
}

/* ---- connection life ------------------------------------------------ */

static void pool_pump(void);

static void set_out(conn *c, bool want)
{
    if (c->out_armed == want || c->st == C_DEAD)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->out_armed = want;
}

/* Ends c. While opening it is a failed open; afterwards a closed patient. */
static void conn_fail(conn *c, const char *fmt, ...)
{
    if (c->st == C_DEAD)
        return;
    char why[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    enum state was = c->st;
    c->st = C_DEAD;
    if (c->ssl)
        SSL_free(c->ssl); /* no close_notify: the peer may be gone */
    c->ssl = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->rb);
    free(c->frag);
    c->rb = c->frag = NULL;
    c->rlen = c->rcap = c->flen = c->fcap = 0;
    if (c->opening) {
        c->opening = false;
        op.inflight--;
        op.failed++;
        if (!op.first_error[0])
            snprintf(op.first_error, sizeof(op.first_error), "%s (during %s)", why,
                     state_name[was]);
        pool_pump();
    } else {
        closed_waiting++;
        if (!first_close[0])
            snprintf(first_close, sizeof(first_close), "%s: %s", c->sub, why);
    }
}

static const char *ssl_err_text(void)
{
    static char buf[160];
    unsigned long e = ERR_get_error();
    if (!e)
        return errno ? strerror(errno) : "connection closed";
    ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return buf;
}

/* Queues one masked client frame. */
static int queue_frame(conn *c, int opcode, const void *payload, size_t len)
{
    size_t hdr = len < 126 ? 2 : len < 65536 ? 4 : 10;
    if (c->olen + hdr + 4 + len > OBUF)
        return -1;
    unsigned char *o = c->ob + c->olen;
    o[0] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        o[1] = (unsigned char)(0x80 | len);
    } else if (len < 65536) {
        o[1] = 0x80 | 126;
        o[2] = (unsigned char)(len >> 8);
        o[3] = (unsigned char)len;
    } else {
        o[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            o[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    }
    uint32_t m = rand32();
    unsigned char *mask = o + hdr;
    memcpy(mask, &m, 4);
    const unsigned char *p = payload;
    for (size_t i = 0; i < len; i++)
        mask[4 + i] = p[i] ^ mask[i & 3];
    c->olen += hdr + 4 + len;
    return 0;
}

/* Writes what is pending. Returns -1 when c died. */
static int flush_out(conn *c)
{
    while (c->olen) {
        ERR_clear_error();
        int n = SSL_write(c->ssl, c->ob, (int)c->olen);
        if (n > 0) {
            memmove(c->ob, c->ob + n, c->olen - (size_t)n);
            c->olen -= (size_t)n;
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_WRITE) {
            set_out(c, true);
            return 0;
        }
        if (e == SSL_ERROR_WANT_READ)
            return 0; /* EPOLLIN is always armed */
        conn_fail(c, "write: %s", ssl_err_text());
        return -1;
    }
    set_out(c, c->read_wants_write);
    return 0;
}

/* ---- tokens --------------------------------------------------------- */

static size_t b64url(char *out, const unsigned char *in, size_t n)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = t[v >> 18];
        out[o++] = t[(v >> 12) & 63];
        out[o++] = t[(v >> 6) & 63];
        out[o++] = t[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = t[v >> 18];
        out[o++] = t[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = t[v >> 18];
        out[o++] = t[(v >> 12) & 63];
        out[o++] = t[(v >> 6) & 63];
    }
    out[o] = 0;
    return o;
}

/* The HS256 JWT mintToken makes: {iat, exp: iat + 3600, sub, role, name}.
 * Subs are the orchestrator's (p123): no JSON escaping needed, checked. */
static int mint_token(char *out, size_t cap, const char *secret, const char *sub)
{
    for (const char *p = sub; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
            return -1;
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char body[256];
    long long iat = (long long)time(NULL);
    int bl = snprintf(body, sizeof(body),
                      "{\"iat\":%lld,\"exp\":%lld,\"sub\":\"%s\",\"role\":\"patient\","
                      "\"name\":\"n-%s\"}",
                      iat, iat + 3600, sub, sub);
    if (bl < 0 || (size_t)bl >= sizeof(body) || cap < 600)
        return -1;
    size_t o = b64url(out, (const unsigned char *)header, sizeof(header) - 1);
    out[o++] = '.';
    o += b64url(out + o, (const unsigned char *)body, (size_t)bl);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int ml = 0;
    if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)out, o, mac, &ml))
        return -1;
    out[o++] = '.';
    b64url(out + o, mac, ml);
    return 0;
}

/* ---- the open pool -------------------------------------------------- */

static void start_one(const char *sub)
{
    if (n_conns == cap_conns) {
        size_t nc = cap_conns ? cap_conns * 2 : 1024;
        conn **g = realloc(conns, nc * sizeof(*g));
        if (!g) {
            fprintf(stderr, "wss_patients: out of memory\n");
            exit(1);
        }
        conns = g;
        cap_conns = nc;
    }
    conn *c = calloc(1, sizeof(*c));
    if (!c) {
        fprintf(stderr, "wss_patients: out of memory\n");
        exit(1);
    }
    conns[n_conns++] = c;
    snprintf(c->sub, sizeof(c->sub), "%s", sub);
    c->di = op.di;
    c->opening = true;
    c->deadline = now_ms() + OPEN_TIMEOUT_MS;
    c->st = C_CONNECT;
    op.inflight++;
    c->rb = malloc(RBUF0);
    c->rcap = RBUF0;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (!c->rb || c->fd < 0) {
        conn_fail(c, "socket: %s", strerror(errno));
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)op.port)};
    if (inet_pton(AF_INET, op.host, &a.sin_addr) != 1) {
        conn_fail(c, "bad host %s", op.host);
        return;
    }
    if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) && errno != EINPROGRESS) {
        conn_fail(c, "connect: %s", strerror(errno));
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev)) {
        conn_fail(c, "epoll: %s", strerror(errno));
        return;
    }
    c->out_armed = true;
}

static void pool_pump(void)
{
    /* A connect that fails at once ends inside start_one and pumps again:
     * the outer call's loop goes on instead of recursing. */
    static bool pumping;
    if (!op.active || pumping)
        return;
    pumping = true;
    while (op.inflight < op.concurrency && op.next < op.n)
        start_one(op.subs[op.next++]);
    pumping = false;
    if (op.inflight == 0 && op.next == op.n) {
        op.active = false;
        json_t *r =
            json_pack("{s:I, s:i, s:s, s:f, s:i}", "re", (json_int_t)op.seq, "failed", op.failed,
                      "firstError", op.first_error, "ms", now_ms() - op.t0, "held", held);
        for (size_t i = 0; i < op.n; i++)
            free(op.subs[i]);
        free(op.subs);
        op.subs = NULL;
        reply(r);
    }
}

static void check_deadlines(void)
{
    double t = now_ms();
    for (size_t i = 0; i < n_conns; i++) {
        conn *c = conns[i];
        if (c->opening && t > c->deadline)
            conn_fail(c, "timeout");
    }
}

/* ---- messages ------------------------------------------------------- */

/* The top-level keys a push needs, found without building a tree. */
typedef struct top {
    const char *type;
    size_t type_len;
    bool has_re; /* "re" present and not null */
    bool has_position;
    long position;
} top;

static const char *skip_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

static const char *skip_string(const char *p, const char *e)
{
    for (p++; p < e; p++) {
        if (*p == '\\')
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return NULL;
}

static const char *skip_value(const char *p, const char *e)
{
    if (p >= e)
        return NULL;
    if (*p == '"')
        return skip_string(p, e);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (p < e) {
            if (*p == '"') {
                p = skip_string(p, e);
                if (!p)
                    return NULL;
                continue;
            }
            if (*p == '{' || *p == '[')
                depth++;
            else if (*p == '}' || *p == ']')
                if (--depth == 0)
                    return p + 1;
            p++;
        }
        return NULL;
    }
    while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n')
        p++;
    return p;
}

static int scan_top(const char *p, size_t n, top *t)
{
    const char *e = p + n;
    memset(t, 0, sizeof(*t));
    p = skip_ws(p, e);
    if (p >= e || *p != '{')
        return -1;
    p = skip_ws(p + 1, e);
    if (p < e && *p == '}')
        return 0;
    for (;;) {
        if (p >= e || *p != '"')
            return -1;
        const char *k = p + 1;
        const char *ke = skip_string(p, e);
        if (!ke)
            return -1;
        size_t kl = (size_t)(ke - 1 - k);
        p = skip_ws(ke, e);
        if (p >= e || *p != ':')
            return -1;
        p = skip_ws(p + 1, e);
        const char *v = p;
        p = skip_value(p, e);
        if (!p)
            return -1;
        if (kl == 4 && memcmp(k, "type", 4) == 0 && *v == '"') {
            t->type = v + 1;
            t->type_len = (size_t)(p - v - 2);
        } else if (kl == 2 && memcmp(k, "re", 2) == 0) {
            t->has_re = *v != 'n';
        } else if (kl == 8 && memcmp(k, "position", 8) == 0 &&
                   (*v == '-' || (*v >= '0' && *v <= '9'))) {
            char num[24];
            size_t l = (size_t)(p - v) < sizeof(num) - 1 ? (size_t)(p - v) : sizeof(num) - 1;
            memcpy(num, v, l);
            num[l] = 0;
            t->position = strtol(num, NULL, 10);
            t->has_position = true;
        }
        p = skip_ws(p, e);
        if (p < e && *p == ',') {
            p = skip_ws(p + 1, e);
            continue;
        }
        return p < e && *p == '}' ? 0 : -1;
    }
}

static bool is_type(const top *t, const char *s)
{
    return t->type && t->type_len == strlen(s) && memcmp(t->type, s, t->type_len) == 0;
}

static void record(int di, int k, double t)
{
    if (rec_n == rec_cap) {
        size_t nc = rec_cap ? rec_cap * 2 : 65536;
        int8_t *a = realloc(rec_di, nc * sizeof(*a));
        if (a)
            rec_di = a;
        int32_t *b = realloc(rec_k, nc * sizeof(*b));
        if (b)
            rec_k = b;
        double *d = realloc(rec_t, nc * sizeof(*d));
        if (d)
            rec_t = d;
        if (!a || !b || !d) {
            fprintf(stderr, "wss_patients: out of memory\n");
            exit(1);
        }
        rec_cap = nc;
    }
    rec_di[rec_n] = (int8_t)di;
    rec_k[rec_n] = k;
    rec_t[rec_n] = t;
    rec_n++;
}

static int send_request(conn *c, const char *text)
{
    if (queue_frame(c, 0x1, text, strlen(text))) {
        conn_fail(c, "output buffer full");
        return -1;
    }
    return flush_out(c);
}

/* An answer while opening: hello's ("1") or checkin's ("2"). */
static void on_answer(conn *c, const char *p, size_t n)
{
    json_error_t je;
    json_t *m = json_loadb(p, n, 0, &je);
    const char *re = json_string_value(json_object_get(m, "re"));
    const char *type = json_string_value(json_object_get(m, "type"));
    const char *want = c->st == C_HELLO ? "1" : c->st == C_CHECKIN ? "2" : NULL;
    if (!m || !re || !type || !want || strcmp(re, want) != 0) {
        json_decref(m);
        return; /* not one we wait for: the Node Client keeps it; so do we, by ignoring it */
    }
    if (strcmp(type, "error") == 0) {
        conn_fail(c, "%s: %s", json_string_value(json_object_get(m, "code")),
                  json_string_value(json_object_get(m, "message")));
        json_decref(m);
        return;
    }
    if (c->st == C_HELLO) {
        json_decref(m);
        char req[160];
        snprintf(req, sizeof(req), "{\"type\":\"checkin\",\"id\":\"2\",\"dept\":\"%s\"}",
                 op.dept); /* opening conns are all of the current open */
        c->st = C_CHECKIN;
        c->deadline = now_ms() + OPEN_TIMEOUT_MS;
        send_request(c, req);
        return;
    }
    json_t *pos = json_object_get(json_object_get(m, "data"), "position");
    c->pos = json_is_integer(pos) ? (int)json_integer_value(pos) : 0;
    json_decref(m);
    c->st = C_WAITING;
    c->opening = false;
    op.inflight--;
    held++;
    pool_pump();
}

static void on_message(conn *c, const unsigned char *p, size_t n, double t)
{
    top m;
    if (scan_top((const char *)p, n, &m)) {
        bad_msgs++;
        return;
    }
    if (is_type(&m, "queue.position")) {
        /* Patient.onMessage in the Node worker, step for step. */
        if (!m.has_position) {
            bad_msgs++;
        } else if (m.position != c->pos) {
            c->pos = (int)m.position;
            if (marked && c->p0)
                record(c->di, c->p0 - c->pos, t);
        } else {
            estimate_only++;
        }
        return;
    }
    if (!m.has_re) {
        other_pushes++; /* visit.state of the patients being served */
        return;
    }
    if (c->st == C_HELLO || c->st == C_CHECKIN)
        on_answer(c, (const char *)p, n);
}

/* One whole frame from the server. */
static void on_frame(conn *c, bool fin, int opcode, const unsigned char *p, size_t n, double t)
{
    switch (opcode) {
    case 0x9: /* ping: the server hangs up on a connection that does not answer */
        pings++;
        if (queue_frame(c, 0xA, p, n))
            conn_fail(c, "output buffer full");
        return;
    case 0xA:
        return;
    case 0x8: {
        int code = n >= 2 ? p[0] << 8 | p[1] : 1005;
        conn_fail(c, "server closed (%d %.*s)", code, n > 2 ? (int)(n - 2) : 0,
                  n > 2 ? (const char *)p + 2 : "");
        return;
    }
    case 0x0:
    case 0x1:
    case 0x2:
        break;
    default:
        conn_fail(c, "unknown opcode %d", opcode);
        return;
    }
    if (opcode != 0 && fin) { /* the usual case: a whole message in one frame */
        on_message(c, p, n, t);
        return;
    }
    if (opcode != 0)
        c->flen = 0; /* the first fragment */
    if (c->flen + n > MAX_FRAME) {
        conn_fail(c, "fragmented message too large");
        return;
    }
    if (c->flen + n > c->fcap) {
        size_t nc = c->fcap ? c->fcap : 4096;
        while (nc < c->flen + n)
            nc *= 2;
        unsigned char *g = realloc(c->frag, nc);
        if (!g) {
            conn_fail(c, "out of memory");
            return;
        }
        c->frag = g;
        c->fcap = nc;
    }
    memcpy(c->frag + c->flen, p, n);
    c->flen += n;
    if (fin) {
        size_t whole = c->flen;
        c->flen = 0;
        on_message(c, c->frag, whole, t);
    }
}

/* Parses the frames in c->rb and keeps a partial one. */
static void parse_frames(conn *c, double t)
{
    size_t off = 0;
    while (c->st != C_DEAD && c->rlen - off >= 2) {
        const unsigned char *h = c->rb + off;
        bool fin = h[0] & 0x80, masked = h[1] & 0x80;
        int opcode = h[0] & 0x0f;
        uint64_t len = h[1] & 0x7f;
        size_t hl = 2;
        if (len == 126) {
            if (c->rlen - off < 4)
                break;
            len = (uint64_t)h[2] << 8 | h[3];
            hl = 4;
        } else if (len == 127) {
            if (c->rlen - off < 10)
                break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | h[2 + i];
            hl = 10;
        }
        if (masked)
            hl += 4;
        if (len > MAX_FRAME) {
            conn_fail(c, "frame of %llu bytes", (unsigned long long)len);
            return;
        }
        if (c->rlen - off < hl + len) {
            if (hl + len > c->rcap) { /* make room for this frame; rare */
                memmove(c->rb, c->rb + off, c->rlen - off);
                c->rlen -= off;
                off = 0;
                unsigned char *g = realloc(c->rb, hl + len);
                if (!g) {
                    conn_fail(c, "out of memory");
                    return;
                }
                c->rb = g;
                c->rcap = hl + len;
            }
            break;
        }
        unsigned char *pl = c->rb + off + hl;
        if (masked)
            for (size_t i = 0; i < len; i++)
                pl[i] ^= h[hl - 4 + (i & 3)];
        on_frame(c, fin, opcode, pl, (size_t)len, t);
        off += hl + len;
    }
    if (c->st == C_DEAD)
        return;
    if (off) {
        memmove(c->rb, c->rb + off, c->rlen - off);
        c->rlen -= off;
    }
}

/* The HTTP upgrade answer: 101, then frames may follow in the same read. */
static void parse_upgrade(conn *c, double t)
{
    unsigned char *end = memmem(c->rb, c->rlen, "\r\n\r\n", 4);
    if (!end) {
        if (c->rlen > 16384)
            conn_fail(c, "upgrade answer too long");
        return;
    }
    if (c->rlen < 12 || memcmp(c->rb, "HTTP/1.1 101", 12) != 0) {
        unsigned char *eol = memmem(c->rb, c->rlen, "\r\n", 2);
        conn_fail(c, "upgrade refused: %.*s", (int)(eol - c->rb), (const char *)c->rb);
        return;
    }
    size_t hl = (size_t)(end + 4 - c->rb);
    memmove(c->rb, c->rb + hl, c->rlen - hl);
    c->rlen -= hl;
    char tok[700], req[900];
    if (mint_token(tok, sizeof(tok), op.secret, c->sub)) {
        conn_fail(c, "cannot mint a token for %s", c->sub);
        return;
    }
    snprintf(req, sizeof(req),
             "{\"type\":\"hello\",\"id\":\"1\",\"token\":\"%s\",\"ua\":\"bench-c/1\"}", tok);
    c->st = C_HELLO;
    if (send_request(c, req))
        return;
    parse_frames(c, t);
}

/* Reads all TLS has for c. */
static void do_read(conn *c)
{
    c->read_wants_write = false;
    for (;;) {
        if (c->rcap - c->rlen < 512) { /* a partial frame fills the buffer */
            unsigned char *g = realloc(c->rb, c->rcap * 2);
            if (!g) {
                conn_fail(c, "out of memory");
                return;
            }
            c->rb = g;
            c->rcap *= 2;
        }
        ERR_clear_error();
        errno = 0;
        int n = SSL_read(c->ssl, c->rb + c->rlen, (int)(c->rcap - c->rlen));
        if (n > 0) {
            double t = now_ms();
            c->rlen += (size_t)n;
            if (c->st == C_UPGRADE)
                parse_upgrade(c, t);
            else
                parse_frames(c, t);
            if (c->st == C_DEAD)
                return;
            /* Level-triggered epoll reports the socket again; only what
             * OpenSSL already holds must be read now. */
            if (!SSL_has_pending(c->ssl))
                break;
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_READ)
            break;
        if (e == SSL_ERROR_WANT_WRITE) {
            c->read_wants_write = true;
            break;
        }
        if (e == SSL_ERROR_ZERO_RETURN)
            conn_fail(c, "TLS close_notify");
        else if (e == SSL_ERROR_SYSCALL && !ERR_peek_error())
            conn_fail(c, "%s", errno ? strerror(errno) : "connection closed");
        else
            conn_fail(c, "read: %s", ssl_err_text());
        return;
    }
    if (c->olen || c->read_wants_write)
        flush_out(c);
    else
        set_out(c, false);
}

static void on_event(conn *c, uint32_t events)
{
    if (c->st == C_DEAD)
        return;
    if (c->st == C_CONNECT) {
        int err = 0;
        socklen_t l = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) {
            conn_fail(c, "connect: %s", strerror(err));
            return;
        }
        if (!(events & (EPOLLOUT | EPOLLIN)))
            return;
        c->ssl = SSL_new(ctx);
        if (!c->ssl || !SSL_set_fd(c->ssl, c->fd)) {
            conn_fail(c, "SSL_new: %s", ssl_err_text());
            return;
        }
        SSL_set_connect_state(c->ssl);
        c->st = C_TLS;
    }
    if (c->st == C_TLS) {
        ERR_clear_error();
        errno = 0;
        int r = SSL_do_handshake(c->ssl);
        if (r != 1) {
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ)
                set_out(c, false);
            else if (e == SSL_ERROR_WANT_WRITE)
                set_out(c, true);
            else
                conn_fail(c, "TLS handshake: %s", ssl_err_text());
            return;
        }
        char req[512];
        int l = snprintf(req, sizeof(req),
                         "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         "Sec-WebSocket-Protocol: telemed.v1\r\n\r\n",
                         op.path, op.host, op.port);
        memcpy(c->ob, req, (size_t)l);
        c->olen = (size_t)l;
        c->st = C_UPGRADE;
        if (flush_out(c))
            return;
    }
    if ((events & EPOLLOUT) && c->olen && flush_out(c))
        return;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR) || c->read_wants_write)
        do_read(c);
}

/* ---- commands ------------------------------------------------------- */

typedef struct hist {
    int64_t *bins; /* 0.1 ms bins, Math.round(ms * 10) */
    size_t n;
    double min, max;
} hist;

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The Node Hist's toJSON: {bins: {bin: count}, n, max, min}. */
static json_t *hist_json(hist *h)
{
    qsort(h->bins, h->n, sizeof(int64_t), cmp64);
    json_t *bins = json_object();
    for (size_t i = 0; i < h->n;) {
        size_t j = i;
        while (j < h->n && h->bins[j] == h->bins[i])
            j++;
        char key[24];
        snprintf(key, sizeof(key), "%lld", (long long)h->bins[i]);
        json_object_set_new(bins, key, json_integer((json_int_t)(j - i)));
        i = j;
    }
    /* Node serialises an empty Hist's -Infinity/Infinity as null. */
    return json_pack("{s:o, s:I, s:o, s:o}", "bins", bins, "n", (json_int_t)h->n, "max",
                     h->n ? json_real(h->max) : json_null(), "min",
                     h->n ? json_real(h->min) : json_null());
}

static void hist_add(hist *h, double ms)
{
    h->bins[h->n++] = (int64_t)floor(ms * 10 + 0.5);
    if (h->n == 1 || ms > h->max)
        h->max = ms;
    if (h->n == 1 || ms < h->min)
        h->min = ms;
}

static void cmd_collect(json_int_t seq, json_t *events)
{
    hist ha = {.bins = malloc((rec_n + 1) * sizeof(int64_t))};
    hist hs = {.bins = malloc((rec_n + 1) * sizeof(int64_t))};
    if (!ha.bins || !hs.bins) {
        fprintf(stderr, "wss_patients: out of memory\n");
        exit(1);
    }
    long long unmatched = 0;
    for (size_t i = 0; i < rec_n; i++) {
        json_t *ev = rec_di[i] >= 0 ? json_array_get(events, (size_t)rec_di[i]) : NULL;
        json_t *ans = json_object_get(ev, "ans"), *sent = json_object_get(ev, "sent");
        int k = rec_k[i];
        if (!ev || k < 1 || (size_t)k > json_array_size(ans)) {
            unmatched++;
            continue;
        }
        hist_add(&ha, rec_t[i] - json_number_value(json_array_get(ans, (size_t)k - 1)));
        hist_add(&hs, rec_t[i] - json_number_value(json_array_get(sent, (size_t)k - 1)));
    }
    double wall = now_ms() - mark_wall, cpu = cpu_ms() - mark_cpu;
    long long waiting = 0;
    for (size_t i = 0; i < n_conns; i++)
        waiting += conns[i]->st == C_WAITING;
    json_t *r = json_pack("{s:I, s:o, s:o, s:I, s:I, s:I, s:I, s:f, s:f}", "re", seq, "hAns",
                          hist_json(&ha), "hSent", hist_json(&hs), "positional", (json_int_t)rec_n,
                          "unmatched", (json_int_t)unmatched, "estimateOnly",
                          (json_int_t)estimate_only, "otherPushes", (json_int_t)other_pushes, "elu",
                          wall > 0 ? cpu / wall : 0.0, "cpuMs", cpu);
    /* Beyond the Node worker's answer: what only this client counts. */
    json_object_set_new(r, "closed", json_integer(closed_waiting));
    json_object_set_new(r, "firstClose", json_string(first_close));
    json_object_set_new(r, "connected", json_integer(waiting));
    json_object_set_new(r, "badMessages", json_integer(bad_msgs));
    json_object_set_new(r, "pings", json_integer(pings));
    free(ha.bins);
    free(hs.bins);
    marked = false;
    rec_n = 0;
    reply(r);
}

static int parse_url(const char *url)
{
    /* wss://HOST:PORT/PATH */
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    const char *colon = strchr(p, ':');
    if (!colon || (size_t)(colon - p) >= sizeof(op.host))
        return -1;
    memcpy(op.host, p, (size_t)(colon - p));
    op.host[colon - p] = 0;
    op.port = atoi(colon + 1);
    const char *slash = strchr(colon, '/');
    snprintf(op.path, sizeof(op.path), "%s", slash ? slash : "/");
    return op.port > 0 ? 0 : -1;
}

static void cmd_open(json_int_t seq, json_t *m)
{
    json_t *subs = json_object_get(m, "subs");
    const char *url = json_string_value(json_object_get(m, "url"));
    const char *secret = json_string_value(json_object_get(m, "secret"));
    const char *dept = json_string_value(json_object_get(m, "dept"));
    int conc = (int)json_integer_value(json_object_get(m, "concurrency"));
    if (op.active || !json_is_array(subs) || !url || !secret || !dept || parse_url(url) ||
        strlen(secret) >= sizeof(op.secret) || strlen(dept) >= sizeof(op.dept) ||
        strpbrk(dept, "\"\\")) {
        reply(
            json_pack("{s:I, s:s}", "re", seq, "error", "open: bad arguments or already opening"));
        return;
    }
    memset(op.first_error, 0, sizeof(op.first_error));
    snprintf(op.secret, sizeof(op.secret), "%s", secret);
    snprintf(op.dept, sizeof(op.dept), "%s", dept);
    op.di = strcmp(dept, "cardio") == 0 ? 0 : strcmp(dept, "endo") == 0 ? 1 : -1;
    op.concurrency = conc > 0 ? conc : 24;
    op.n = json_array_size(subs);
    op.subs = calloc(op.n + 1, sizeof(char *));
    for (size_t i = 0; i < op.n; i++) {
        const char *s = json_string_value(json_array_get(subs, i));
        op.subs[i] = strdup(s ? s : "");
    }
    op.next = 0;
    op.inflight = 0;
    op.failed = 0;
    op.seq = seq;
    op.t0 = now_ms();
    op.active = true;
    pool_pump();
}

/* The positions the server last gave the waiting patients: with several
 * nodes sharing one queue they must together be 1..n (the smoke test). */
static void cmd_positions(json_int_t seq)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n_conns; i++)
        if (conns[i]->st == C_WAITING)
            json_array_append_new(a, json_integer(conns[i]->pos));
    reply(json_pack("{s:I, s:o}", "re", seq, "positions", a));
}

static void command(const char *line, size_t len)
{
    json_error_t je;
    json_t *m = json_loadb(line, len, 0, &je);
    json_int_t seq = json_integer_value(json_object_get(m, "seq"));
    const char *cmd = json_string_value(json_object_get(m, "cmd"));
    if (!m || !cmd) {
        fprintf(stderr, "wss_patients: bad command line: %s\n", je.text);
    } else if (strcmp(cmd, "open") == 0) {
        cmd_open(seq, m);
    } else if (strcmp(cmd, "mark") == 0) {
        for (size_t i = 0; i < n_conns; i++)
            conns[i]->p0 = conns[i]->pos;
        marked = true;
        rec_n = 0;
        estimate_only = other_pushes = 0;
        mark_wall = now_ms();
        mark_cpu = cpu_ms();
        reply(json_pack("{s:I}", "re", seq));
    } else if (strcmp(cmd, "collect") == 0) {
        cmd_collect(seq, json_object_get(m, "events"));
    } else if (strcmp(cmd, "positions") == 0) {
        cmd_positions(seq);
    } else if (strcmp(cmd, "exit") == 0) {
        reply(json_pack("{s:I}", "re", seq));
        exit(0);
    } else {
        char why[96];
        snprintf(why, sizeof(why), "unknown %s", cmd);
        reply(json_pack("{s:I, s:s}", "re", seq, "error", why));
    }
    json_decref(m);
}

/* stdin: lines of JSON; a collect's events can be a few hundred KiB. */
static void read_commands(void)
{
    static char *buf;
    static size_t len, cap;
    if (cap - len < 65536) {
        size_t nc = cap ? cap * 2 : 1 << 20;
        char *g = realloc(buf, nc);
        if (!g) {
            fprintf(stderr, "wss_patients: out of memory\n");
            exit(1);
        }
        buf = g;
        cap = nc;
    }
    ssize_t n = read(0, buf + len, cap - len);
    if (n == 0)
        exit(0); /* the orchestrator is gone */
    if (n < 0)
        return;
    len += (size_t)n;
    char *start = buf, *nl;
    while ((nl = memchr(start, '\n', (size_t)(buf + len - start)))) {
        command(start, (size_t)(nl - start));
        start = nl + 1;
    }
    len -= (size_t)(start - buf);
    memmove(buf, start, len);
}

int main(int argc, char **argv)
{
    bool batch = true;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--sched") == 0 && i + 1 < argc &&
            (strcmp(argv[i + 1], "batch") == 0 || strcmp(argv[i + 1], "other") == 0)) {
            batch = strcmp(argv[++i], "batch") == 0;
        } else {
            fprintf(stderr, "usage: wss_patients [--sched batch|other] < commands\n");
            return 2;
        }
    }
    if (batch) {
        struct sched_param sp = {.sched_priority = 0};
        if (sched_setscheduler(0, SCHED_BATCH, &sp))
            fprintf(stderr, "wss_patients: SCHED_BATCH: %s (running as is)\n", strerror(errno));
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    RAND_bytes((unsigned char *)&rng, sizeof(rng));
    rng |= 1;
    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        fprintf(stderr, "wss_patients: SSL_CTX_new failed\n");
        return 1;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* Whole socket reads instead of a header read and a body read per record. */
    SSL_CTX_set_read_ahead(ctx, 1);
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event sev = {.events = EPOLLIN, .data.ptr = NULL};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, 0, &sev)) {
        fprintf(stderr, "wss_patients: epoll: %s\n", strerror(errno));
        return 1;
    }
    reply(json_pack("{s:b}", "ready", 1));
    struct epoll_event evs[512];
    double next_check = now_ms() + 1000;
    for (;;) {
        int n = epoll_wait(ep, evs, 512, op.active ? 250 : -1);
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "wss_patients: epoll_wait: %s\n", strerror(errno));
            return 1;
        }
        for (int i = 0; i < n; i++) {
            if (!evs[i].data.ptr)
                read_commands();
            else
                on_event(evs[i].data.ptr, evs[i].events);
        }
        if (op.active && now_ms() > next_check) {
            check_deadlines();
            next_check = now_ms() + 1000;
        }
    }
}

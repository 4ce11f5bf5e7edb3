/*
 * ice.c - the peer's ICE transport on libnice: one NiceAgent per peer, full
 * ICE in the controlled role (the browser offers, so it controls), RFC 5245
 * compatibility, trickle, consent freshness (RFC 7675), UDP only, host
 * candidates on the configured addresses (optionally advertised as the NAT 1:1
 * public address). Demultiplexes what arrives (RFC 7983) into DTLS and SRTP.
 *
 * Beside libnice, on the selected pair, media is sent and received on sockets
 * of our own (media_direct_io; below). Remote candidates reach this file only
 * after media.c's policy (ice_policy.h, the per-peer cap); libnice paces the
 * checks (media_ice_pacing_ms).
 *
 * Owns: the agent and its one stream/component. The agent is created with the
 * worker's GMainContext, so every libnice callback runs on the worker thread.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <linux/filter.h>
#include <netinet/in.h>
#include <sys/epoll.h>

#include "media_internal.h"
#include "telemed/log.h"

static tm__counters *ctr(tm__peer *p)
{
    return &p->w->counters;
}

/* ---- sending ----
 *
 * On a selected non-relayed UDP pair the worker sends with sendto() on the
 * pair's own socket (nice_agent_get_selected_socket), as libnice itself
 * would, skipping its lock and GIO's per-packet work; STUN stays libnice's.
 * Off with media_direct_io = false; why: tests/bench/README.md. */

static void rx_sync(tm__peer *p);

static void tx_clear(tm__peer *p)
{
    if (p->tx_sock)
        g_object_unref(p->tx_sock);
    p->tx_sock = NULL;
    p->tx_fd = -1;
    p->tx_addrlen = 0;
}

static void tx_take(tm__peer *p)
{
    tx_clear(p);
    if (!p->agent || p->w->media->stock_io)
        return;
    guint st = nice_agent_get_component_state(p->agent, p->stream_id, 1);
    if (st != NICE_COMPONENT_STATE_READY && st != NICE_COMPONENT_STATE_CONNECTED)
        return;
    NiceCandidate *local = NULL, *remote = NULL;
    if (!nice_agent_get_selected_pair(p->agent, p->stream_id, 1, &local, &remote) || !local ||
        !remote || local->type == NICE_CANDIDATE_TYPE_RELAYED ||
        local->transport != NICE_CANDIDATE_TRANSPORT_UDP ||
        remote->transport != NICE_CANDIDATE_TRANSPORT_UDP)
        return;
    GSocket *sock = nice_agent_get_selected_socket(p->agent, p->stream_id, 1);
    if (!sock)
        return;
    int fd = g_socket_get_fd(sock);
    int family = nice_address_ip_version(&remote->addr) == 6 ? AF_INET6 : AF_INET;
    memset(&p->tx_addr, 0, sizeof p->tx_addr);
    nice_address_copy_to_sockaddr(&remote->addr, (struct sockaddr *)&p->tx_addr);
    if (fd < 0 || g_socket_get_family(sock) != (GSocketFamily)family ||
        g_socket_get_socket_type(sock) != G_SOCKET_TYPE_DATAGRAM) {
        g_object_unref(sock);
        return;
    }
    p->tx_sock = sock;
    p->tx_fd = fd;
    p->tx_addrlen = family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static void tx_refresh(tm__peer *p)
{
    tx_take(p);
    rx_sync(p);
}

static void on_selected_pair(NiceAgent *agent, guint stream_id, guint component_id,
                             NiceCandidate *local, NiceCandidate *remote, gpointer data)
{
    tx_refresh(data);
}

/* Sends the queue with as few sendmmsg as the kernel takes; a datagram it
 * refuses (EAGAIN: socket buffer full) is dropped, as a sendto's would be. */
static void tx_flush(tm__worker *w)
{
    int off = 0, sent = 0;
    while (off < w->tx_n) {
        int n = sendmmsg(w->tx_fd, &w->tx_msg[off], (unsigned)(w->tx_n - off), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            n = 0, off++; /* the first one failed: skip it */
        off += n;
        sent += n;
    }
    w->tx_n = 0;
    atomic_fetch_add_explicit(&w->counters.tx_packets, (uint64_t)sent, memory_order_relaxed);
    atomic_fetch_add_explicit(&w->counters.tx_batched, (uint64_t)sent, memory_order_relaxed);
}

/* Inside a receive batch, what goes to one socket waits for one sendmmsg at
 * the batch's end: a 1:1 visit's batch from one sender all goes to the other. */
static void tx_queue(tm__worker *w, tm__peer *p, const uint8_t *buf, size_t len)
{
    if (w->tx_n && (w->tx_fd != p->tx_fd || w->tx_n == TM__TX_BATCH))
        tx_flush(w);
    int i = w->tx_n++;
    w->tx_fd = p->tx_fd;
    memcpy(w->tx_buf[i], buf, len);
    memcpy(&w->tx_to[i], &p->tx_addr, p->tx_addrlen);
    w->tx_iov[i] = (struct iovec){.iov_base = w->tx_buf[i], .iov_len = len};
    w->tx_msg[i].msg_hdr = (struct msghdr){.msg_name = &w->tx_to[i],
                                           .msg_namelen = p->tx_addrlen,
                                           .msg_iov = &w->tx_iov[i],
                                           .msg_iovlen = 1};
}

void tm__ice_send(tm__peer *p, const uint8_t *buf, size_t len)
{
    ssize_t n;
    if (p->tx_sock && p->w->tx_queueing && len <= TM__PKT_CAP) {
        tx_queue(p->w, p, buf, len);
        return;
    }
    if (p->tx_sock) {
        do
            n = sendto(p->tx_fd, buf, len, 0, (const struct sockaddr *)&p->tx_addr, p->tx_addrlen);
        while (n < 0 && errno == EINTR);
        /* EAGAIN (socket buffer full) drops the datagram, as libnice does. */
    } else {
        n = nice_agent_send(p->agent, p->stream_id, 1, (guint)len, (const gchar *)buf);
    }
    if (n > 0)
        atomic_fetch_add_explicit(&p->w->counters.tx_packets, 1, memory_order_relaxed);
}

/* ---- receiving ----
 *
 * On a selected non-relayed IPv4 pair, the remote's RTP/RTCP comes to a
 * socket of ours beside libnice's (one SO_REUSEPORT group, a BPF program
 * choosing by first byte and source), read with recvmmsg; STUN, DTLS and
 * any other source stay libnice's. Off with media_direct_io = false; why
 * and what it saves: tests/bench/README.md.
 *
 * The socket follows the selected pair (tx_refresh -> rx_sync): a new pair, a
 * component leaving READY/CONNECTED, an ICE restart or the agent going close
 * it, after forwarding what it still holds (except when the peer is closing),
 * and the kernel then hands libnice everything again. The one gap: between our
 * bind and the program's attach the group has no program, and the kernel may
 * hash a datagram of the remote to us; a STUN one caught there is dropped like
 * a lost datagram (its sender retransmits). Setting SO_REUSEPORT on libnice's
 * bound socket lets later sockets of this user bind beside it; only our own
 * do. Any failure leaves the peer on libnice's path. */

/* Media (RTP/RTCP) or DTLS that arrived on the peer's transport, either way.
 * STUN never gets here: libnice keeps it. Returns whether b was media that
 * authenticated. */
static bool deliver(tm__peer *p, uint8_t *b, size_t len, int64_t now_us)
{
    atomic_fetch_add_explicit(&ctr(p)->rx_packets, 1, memory_order_relaxed);
    tm_packet_kind_t kind = p->closing ? TM_PKT_UNKNOWN : tm_packet_kind(b, len);
    switch (kind) {
    case TM_PKT_DTLS:
        tm__peer_dtls_input(p, b, len);
        return false;
    case TM_PKT_RTP:
    case TM_PKT_RTCP:
        if (!p->srtp) {
            /* SRTP keys come only from a completed, fingerprint-checked handshake. */
            atomic_fetch_add_explicit(&ctr(p)->dropped_unknown_source, 1, memory_order_relaxed);
            return false;
        }
        /* Only what authenticates speaks for the peer: anyone can send from
         * its address, and consent must not be kept by such packets. */
        if (kind == TM_PKT_RTCP ? tm__forward_rtcp(p, b, len, now_us)
                                : tm__forward_rtp(p, b, len, now_us)) {
            tm__peer_media_seen(p, now_us / 1000);
            return true;
        }
        return false;
    default:
        atomic_fetch_add_explicit(&ctr(p)->dropped_malformed, 1, memory_order_relaxed);
        return false;
    }
}

/* A source that may not recurse costs four syscalls per dispatch (GLib takes
 * its fd out of the poll set and back, waking the context each time). We
 * never iterate the worker's context from a receive callback, so libnice's
 * source at hand may recurse; marking it mid-dispatch is safe, and sources
 * libnice makes later are marked by their first datagram. See
 * tests/bench/README.md. */
static inline void no_block_on_dispatch(GSource *src)
{
    if (G_LIKELY(src) && G_UNLIKELY(!g_source_get_can_recurse(src)))
        g_source_set_can_recurse(src, TRUE);
}

static void on_recv(NiceAgent *agent, guint stream_id, guint component_id, guint len, gchar *buf,
                    gpointer data)
{
    tm__peer *p = data;
    if (!p->w->media->stock_io)
        no_block_on_dispatch(g_main_current_source());
    deliver(p, (uint8_t *)buf, len, g_get_monotonic_time());
}

/* Forwards what our socket holds now. One clock read per batch: a datagram
 * behind others in it is timed from when the batch was read, so the latency
 * figure includes its wait for those before it. */
static void rx_drain(tm__peer *p)
{
    tm__worker *w = p->w;
    int n;
    w->tx_queueing = !w->media->send_each;
    do {
        for (int i = 0; i < TM__RX_BATCH; i++) {
            w->rx_iov[i] = (struct iovec){.iov_base = w->rx_buf[i], .iov_len = TM__PKT_CAP};
            w->rx_msg[i].msg_hdr = (struct msghdr){.msg_name = &w->rx_from[i],
                                                   .msg_namelen = sizeof w->rx_from[i],
                                                   .msg_iov = &w->rx_iov[i],
                                                   .msg_iovlen = 1};
        }
        n = recvmmsg(p->rx_fd, w->rx_msg, TM__RX_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            break;
        int64_t now_us = g_get_monotonic_time();
        for (int i = 0; i < n; i++) {
            const struct msghdr *h = &w->rx_msg[i].msg_hdr;
            const struct sockaddr_in *from = &w->rx_from[i];
            if (h->msg_flags & MSG_TRUNC) {
                atomic_fetch_add_explicit(&ctr(p)->dropped_malformed, 1, memory_order_relaxed);
                continue;
            }
            /* Only the gap before the program is attached (or a pair change
             * racing it) can bring anything else here. */
            if (h->msg_namelen != sizeof *from || from->sin_family != AF_INET ||
                from->sin_port != p->rx_port || from->sin_addr.s_addr != p->rx_ip) {
                atomic_fetch_add_explicit(&ctr(p)->dropped_unknown_source, 1, memory_order_relaxed);
                continue;
            }
            atomic_fetch_add_explicit(&ctr(p)->rx_direct, 1, memory_order_relaxed);
            if (deliver(p, w->rx_buf[i], w->rx_msg[i].msg_len, now_us))
                p->rx_pair_ms = now_us / 1000;
        }
        if (w->tx_n)
            tx_flush(w);
        if (w->lat_pending)
            tm__forward_note_latency(w, now_us, w->lat_pending);
        w->lat_pending = 0;
    } while (n == TM__RX_BATCH && p->rx_on);
    w->tx_queueing = false;
}

typedef struct rx_source {
    GSource base;
    tm__peer *p;
} rx_source;

static gboolean rx_dispatch(GSource *src, GSourceFunc cb, gpointer data)
{
    rx_drain(((rx_source *)src)->p);
    return G_SOURCE_CONTINUE;
}

/* No prepare or check: GLib dispatches a source whose fd polled readable. */
static GSourceFuncs rx_funcs = {.dispatch = rx_dispatch};

/* The worker's epoll set of its peers' media sockets (media_rx_epoll): GLib
 * polls one fd for all of them, and its prepare/check per wake-up walks one
 * source instead of one per peer. A peer is only ever removed from the set
 * outside this dispatch (pair changes and closes come from libnice's
 * callbacks and the main loop, never from forwarding), so every peer an
 * epoll_wait returns is still alive while the batch is drained. */
typedef struct rx_set_source {
    GSource base;
    tm__worker *w;
} rx_set_source;

static gboolean rx_set_dispatch(GSource *src, GSourceFunc cb, gpointer data)
{
    tm__worker *w = ((rx_set_source *)src)->w;
    struct epoll_event ev[TM__RX_SET_EVENTS];
    int n = epoll_wait(w->rx_epfd, ev, TM__RX_SET_EVENTS, 0);
    for (int i = 0; i < n; i++)
        rx_drain(ev[i].data.ptr);
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs rx_set_funcs = {.dispatch = rx_set_dispatch};

static int rx_set_open(tm__worker *w)
{
    if (w->rx_set)
        return 0;
    int fd = epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0)
        return -1;
    GSource *src = g_source_new(&rx_set_funcs, sizeof(rx_set_source));
    ((rx_set_source *)src)->w = w;
    g_source_set_can_recurse(src, TRUE); /* see no_block_on_dispatch */
    g_source_add_unix_fd(src, fd, G_IO_IN | G_IO_ERR);
    g_source_attach(src, w->ctx);
    w->rx_epfd = fd;
    w->rx_set = src;
    return 0;
}

void tm__ice_worker_clear(tm__worker *w)
{
    if (!w->rx_set)
        return;
    g_source_destroy(w->rx_set);
    g_source_unref(w->rx_set);
    w->rx_set = NULL;
    close(w->rx_epfd);
    w->rx_epfd = -1;
}

/* GLib or the worker's set tells us when fd is readable. */
static int rx_watch(tm__peer *p, int fd)
{
    tm__worker *w = p->w;
    if (w->media->rx_epoll) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = p};
        if (rx_set_open(w) != 0 || epoll_ctl(w->rx_epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
            return -1;
        return 0;
    }
    GSource *src = g_source_new(&rx_funcs, sizeof(rx_source));
    ((rx_source *)src)->p = p;
    g_source_set_can_recurse(src, TRUE); /* see no_block_on_dispatch */
    g_source_add_unix_fd(src, fd, G_IO_IN | G_IO_ERR);
    g_source_attach(src, w->ctx);
    p->rx_src = src;
    return 0;
}

static void rx_unwatch(tm__peer *p)
{
    if (p->rx_src) {
        g_source_destroy(p->rx_src);
        g_source_unref(p->rx_src);
        p->rx_src = NULL;
    } else {
        (void)epoll_ctl(p->w->rx_epfd, EPOLL_CTL_DEL, p->rx_fd, NULL);
    }
}

static void rx_clear(tm__peer *p, bool drain)
{
    if (!p->rx_on)
        return;
    if (drain && !p->closing)
        rx_drain(p);
    rx_unwatch(p);
    p->rx_on = false;
    close(p->rx_fd); /* leaves the group: the kernel hands libnice everything again */
    p->rx_fd = -1;
    p->rx_nice_fd = -1;
}

/* The group's program: socket 1 (ours) for RTP/RTCP from ip:port (host
 * order), socket 0 (libnice's, the group's first) for everything else. The
 * reuseport hook runs it with the UDP payload at offset 0; the IPv4 header is
 * reached through SKF_NET_OFF. */
static int rx_attach_filter(int fd, uint32_t ip, uint16_t port)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 0),
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 128, 0, 7),
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 192, 6, 0),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)SKF_NET_OFF + 12), /* source address */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ip, 0, 4),
        BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, (uint32_t)SKF_NET_OFF), /* X = IP header length */
        BPF_STMT(BPF_LD | BPF_H | BPF_IND, (uint32_t)SKF_NET_OFF),  /* UDP source port */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, port, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, 1),
        BPF_STMT(BPF_RET | BPF_K, 0),
    };
    struct sock_fprog prog = {.len = G_N_ELEMENTS(f), .filter = f};
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog);
}

static int rx_open(tm__peer *p, const struct sockaddr_in *sel)
{
    struct sockaddr_in local;
    socklen_t llen = sizeof local;
    int one = 1;
    if (getsockname(p->tx_fd, (struct sockaddr *)&local, &llen) != 0 || llen != sizeof local ||
        local.sin_family != AF_INET ||
        setsockopt(p->tx_fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
        return -1;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(fd, (const struct sockaddr *)&local, sizeof local) != 0 ||
        rx_attach_filter(fd, ntohl(sel->sin_addr.s_addr), ntohs(sel->sin_port)) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Our socket for the pair tx_refresh just took, or none; kept while the pair
 * is the same, and the same socket when only the remote address changed. */
static void rx_sync(tm__peer *p)
{
    const struct sockaddr_in *sel = (const struct sockaddr_in *)&p->tx_addr;
    bool want = p->tx_sock && p->tx_addr.ss_family == AF_INET && !p->closing;
    if (p->rx_on && want && p->rx_nice_fd == p->tx_fd) {
        if (p->rx_ip == sel->sin_addr.s_addr && p->rx_port == sel->sin_port)
            return;
        rx_drain(p); /* what the old remote sent */
        if (rx_attach_filter(p->rx_fd, ntohl(sel->sin_addr.s_addr), ntohs(sel->sin_port)) == 0) {
            p->rx_ip = sel->sin_addr.s_addr;
            p->rx_port = sel->sin_port;
            return;
        }
    }
    rx_clear(p, true);
    if (!want)
        return;
    int fd = rx_open(p, sel);
    if (fd < 0) {
        /* The peer keeps libnice's receive path; only slower. */
        tm_info("media.rx_direct_failed", "visit=%s peer=%s errno=%d", p->visit->id, p->id, errno);
        return;
    }
    if (rx_watch(p, fd) != 0) {
        tm_info("media.rx_direct_failed", "visit=%s peer=%s errno=%d", p->visit->id, p->id, errno);
        close(fd);
        return;
    }
    p->rx_on = true;
    p->rx_fd = fd;
    p->rx_nice_fd = p->tx_fd;
    p->rx_ip = sel->sin_addr.s_addr;
    p->rx_port = sel->sin_port;
    tm_debug("media.rx_direct", "visit=%s peer=%s", p->visit->id, p->id);
    rx_drain(p); /* what the gap before the program brought */
}

#define READY_IDLE_MS 100

/* libnice's own idle-timeout, put back for the checks of an ICE restart. */
static void idle_timeout_default(NiceAgent *agent)
{
    GParamSpec *ps = g_object_class_find_property(G_OBJECT_GET_CLASS(agent), "idle-timeout");
    if (ps && G_IS_PARAM_SPEC_UINT(ps))
        g_object_set(agent, "idle-timeout", G_PARAM_SPEC_UINT(ps)->default_value, NULL);
}

/* libnice (0.1.21) holds consent lost 10 s after the last answer to its
 * checks, where RFC 7675 gives 30 s, and sends each check once: on a thin or
 * lossy link one or two lost datagrams failed a peer whose media still
 * arrived, and the ICE restart that followed re-keyed every stream with
 * keyframes such a link cannot carry. A peer still sending keeps its pair:
 * selecting it again restores consent and sends a new check. Its media is
 * consent in all but name: the browser stops sending once its own checks to
 * us go unanswered for 30 s, so what it sends says it hears us.
 *
 * Heard means within CONSENT_HEARD_MS of when the worker last ran on time,
 * after reading what our socket holds: a worker starved for seconds on a
 * loaded machine finds the timer and the datagrams due at once, and an
 * RTCP-only peer (camera and microphone off) sends about once a second, some
 * of it lost. A silent peer gets at most one renewal (the next failure comes
 * 10 s later), so it fails within about 25 s. Media counts without limit
 * only from our own socket, which takes the pair's remote alone. Media on
 * libnice's path comes from any source (a peer that moved is heard there,
 * yet the pair's address is gone; a doctor's peer on this host had all its
 * media come there, why not known), so there the third failure in a row
 * with no answer between (30 s) stands. A failure
 * sooner than 10 s after a renewal is no consent verdict: selecting the pair
 * emptied libnice's check list, so the peer's next check starts a triggered
 * check of ours, and that one failing under the same loss fails the
 * component; it is renewed without counting. A failure of an ICE restart
 * keeps the old pair the same way while media still comes (remote_selectable
 * puts its remote back where libnice can select it). */
#define CONSENT_HEARD_MS 5000
#define WORKER_TICK_MS 1000 /* worker.c's tick */
#define CONSENT_UNPROVEN_RENEWALS 2
#define CONSENT_TIMEOUT_MS 10000 /* libnice's */
#define CONSENT_NO_ANSWER_MS 12000

static void consent_declined(tm__peer *p, const char *reason, int64_t now, int64_t ran,
                             int64_t heard, int renewals, int64_t since)
{
    tm_info("media.consent_not_renewed",
            "visit=%s peer=%s reason=%s heard_ago_ms=%lld late_ms=%lld renewals=%d since_ms=%lld",
            p->visit->id, p->id, reason, heard ? (long long)(now - heard) : -1LL,
            (long long)(now - ran), renewals, since == INT64_MAX ? -1LL : (long long)since);
}

/* Whether c is the candidate nice_agent_set_selected_pair takes for its
 * foundation: the first of it in libnice's list (list: a copy of it). Peer
 * reflexive candidates of one address share a foundation. */
static bool first_of_foundation(GSList *list, const NiceCandidate *c)
{
    for (GSList *l = list; l; l = l->next) {
        const NiceCandidate *x = l->data;
        if (strncmp(x->foundation, c->foundation, NICE_CANDIDATE_MAX_FOUNDATION) == 0)
            return x->transport == c->transport && nice_address_equal(&x->addr, &c->addr);
    }
    return false;
}

/* A remote candidate that selects the pair's remote by foundation, its own
 * copied into rf: the remote itself when it is the first of its foundation,
 * else the same address added under a foundation of its own. An ICE restart
 * keeps the pair in use (RFC 8445 9.1.1.1) but takes its remote out of
 * libnice's list, and that pair's consent checks then carry the new
 * credentials, which the browser's old session cannot answer: a worker
 * stalled for seconds before the restart left it a moment to finish before
 * the old pair's consent ran out. libnice takes no peer reflexive candidate
 * from us, so such a remote comes back as a host one. */
static bool remote_selectable(tm__peer *p, const NiceCandidate *remote, char *rf)
{
    GSList *remotes = nice_agent_get_remote_candidates(p->agent, p->stream_id, 1);
    bool ok = first_of_foundation(remotes, remote);
    if (ok) {
        g_strlcpy(rf, remote->foundation, NICE_CANDIDATE_MAX_FOUNDATION);
    } else {
        NiceCandidate *c = nice_candidate_copy(remote);
        if (c->type == NICE_CANDIDATE_TYPE_PEER_REFLEXIVE)
            c->type = NICE_CANDIDATE_TYPE_HOST;
        g_free(c->username);
        g_free(c->password);
        c->username = c->password = NULL; /* the stream's, as the restart set them */
        /* Named by its address: one name per address, whatever was kept before. */
        char ip[NICE_ADDRESS_STRING_LEN];
        nice_address_to_string(&c->addr, ip);
        g_snprintf(c->foundation, NICE_CANDIDATE_MAX_FOUNDATION, "tmkept%08x%u", g_str_hash(ip),
                   nice_address_get_port(&c->addr));
        GSList *one = g_slist_append(NULL, c);
        ok = nice_agent_set_remote_candidates(p->agent, p->stream_id, 1, one) == 1;
        g_slist_free(one);
        if (ok)
            g_strlcpy(rf, c->foundation, NICE_CANDIDATE_MAX_FOUNDATION);
        nice_candidate_free(c);
    }
    g_slist_free_full(remotes, (GDestroyNotify)nice_candidate_free);
    return ok;
}

/* Copies into lf/rf the foundations that select the pair in use again, or
 * says why they cannot. */
static const char *consent_pair(tm__peer *p, char *lf, char *rf)
{
    NiceCandidate *local = NULL, *remote = NULL;
    if (!nice_agent_get_selected_pair(p->agent, p->stream_id, 1, &local, &remote) || !local ||
        !remote)
        return "no_pair";
    GSList *locals = nice_agent_get_local_candidates(p->agent, p->stream_id, 1);
    bool same = first_of_foundation(locals, local);
    g_slist_free_full(locals, (GDestroyNotify)nice_candidate_free);
    if (!same)
        return "pair_unselectable";
    g_strlcpy(lf, local->foundation, NICE_CANDIDATE_MAX_FOUNDATION);
    /* local and remote stay libnice's: adding a candidate frees neither. */
    NiceCandidate *r = nice_candidate_copy(remote);
    bool ok = remote_selectable(p, r, rf);
    nice_candidate_free(r);
    return ok ? NULL : "pair_unselectable";
}

static bool heard_since(int64_t heard, int64_t ran)
{
    return heard && ran - heard <= CONSENT_HEARD_MS;
}

static bool consent_renew(tm__peer *p)
{
    if (p->rx_on)
        rx_drain(p); /* what came while the worker could not run counts */
    int64_t now = tm_mono_ms();
    int64_t ran = p->w->tick_ms ? MIN(now, p->w->tick_ms + WORKER_TICK_MS) : now;
    bool on_pair = p->rx_on && heard_since(p->rx_pair_ms, ran);
    int64_t heard = on_pair ? p->rx_pair_ms : p->last_rx_ms;
    int64_t since = p->consent_renewed_ms ? now - p->consent_renewed_ms : INT64_MAX;
    int renewals = since < CONSENT_TIMEOUT_MS      ? p->consent_renewals
                   : since <= CONSENT_NO_ANSWER_MS ? p->consent_renewals + 1
                                                   : 1;
    char lf[NICE_CANDIDATE_MAX_FOUNDATION], rf[NICE_CANDIDATE_MAX_FOUNDATION];
    const char *declined = !p->srtp                                           ? "no_srtp"
                           : !heard_since(heard, ran)                         ? "not_heard"
                           : !on_pair && renewals > CONSENT_UNPROVEN_RENEWALS ? "renewals"
                                                                              : NULL;
    if (!declined)
        declined = consent_pair(p, lf, rf);
    if (declined) {
        consent_declined(p, declined, now, ran, heard, renewals, since);
        return false;
    }
    p->consent_renewals = renewals;
    p->consent_renewed_ms = now;
    tm_info("media.consent_renewed",
            "visit=%s peer=%s renewals=%d heard_ago_ms=%lld checks_only=%d on_pair=%d restart=%d",
            p->visit->id, p->id, renewals, (long long)(now - heard), since < CONSENT_TIMEOUT_MS,
            on_pair, !p->ice_ready);
    /* Emits CONNECTING, CONNECTED and READY to on_state before it returns. */
    if (nice_agent_set_selected_pair(p->agent, p->stream_id, 1, lf, rf))
        return true;
    consent_declined(p, "select_failed", now, ran, heard, renewals, since);
    return false;
}

static void on_state(NiceAgent *agent, guint stream_id, guint component_id, guint state,
                     gpointer data)
{
    tm__peer *p = data;
    if (state == NICE_COMPONENT_STATE_FAILED && consent_renew(p))
        return;
    /* Once a nominated pair is in use, say the remote gathered everything
     * (browsers rarely say it) and cut libnice's idle-timeout, so its check
     * timer stops instead of waking the worker for the whole visit; a later
     * candidate or an ICE restart starts it again (tests/bench/README.md). */
    if (state == NICE_COMPONENT_STATE_READY) {
        nice_agent_peer_candidate_gathering_done(agent, stream_id);
        g_object_set(agent, "idle-timeout", (guint)READY_IDLE_MS, NULL);
    }
    tx_refresh(p);
    tm__peer_ice_state(p, state);
}

static void set_remote(tm__peer *p, const tm_sdp_offer *offer)
{
    nice_agent_set_remote_credentials(p->agent, p->stream_id, offer->ice_ufrag, offer->ice_pwd);
    g_strlcpy(p->remote_ufrag, offer->ice_ufrag, sizeof p->remote_ufrag);
    bool end = false;
    for (unsigned i = 0; i < offer->n_mlines; i++) {
        const tm_sdp_mline *m = &offer->mlines[i];
        if (!m->accepted)
            continue;
        for (unsigned c = 0; c < m->n_candidates; c++) {
            char line[512];
            if (tm_sdp_format_candidate(&m->candidates[c], line, sizeof line) > 0)
                tm__ice_add_remote(p, line);
        }
        end = end || m->end_of_candidates;
    }
    if (end)
        nice_agent_peer_candidate_gathering_done(p->agent, p->stream_id);
}

static void take_local_credentials(tm__peer *p)
{
    g_free(p->local_ufrag);
    g_free(p->local_pwd);
    p->local_ufrag = p->local_pwd = NULL;
    nice_agent_get_local_credentials(p->agent, p->stream_id, &p->local_ufrag, &p->local_pwd);
}

int tm__ice_start(tm__peer *p, const tm_sdp_offer *offer)
{
    tm_media *m = p->w->media;
    p->agent =
        nice_agent_new_full(p->w->ctx, NICE_COMPATIBILITY_RFC5245,
                            NICE_AGENT_OPTION_ICE_TRICKLE | NICE_AGENT_OPTION_CONSENT_FRESHNESS);
    if (!p->agent)
        return TM_ENOMEM;
    g_object_set(p->agent, "controlling-mode", FALSE, "ice-tcp", FALSE, "ice-udp", TRUE,
                 "keepalive-conncheck", TRUE, "stun-pacing-timer", (guint)m->ice_pacing_ms, NULL);
    if (g_object_class_find_property(G_OBJECT_GET_CLASS(p->agent), "upnp"))
        g_object_set(p->agent, "upnp", FALSE, NULL);
    for (char **a = m->addresses; *a; a++) {
        NiceAddress addr;
        nice_address_init(&addr);
        if (**a && nice_address_set_from_string(&addr, *a))
            nice_agent_add_local_address(p->agent, &addr);
    }
    p->stream_id = nice_agent_add_stream(p->agent, 1);
    if (!p->stream_id)
        return TM_EIO;
    nice_agent_set_stream_name(p->agent, p->stream_id, "audio");
    if (m->port_min || m->port_max)
        nice_agent_set_port_range(p->agent, p->stream_id, 1, (guint)m->port_min,
                                  (guint)(m->port_max ? m->port_max : 65535));
    g_signal_connect(p->agent, "component-state-changed", G_CALLBACK(on_state), p);
    g_signal_connect(p->agent, "new-selected-pair-full", G_CALLBACK(on_selected_pair), p);
    if (!nice_agent_gather_candidates(p->agent, p->stream_id))
        return TM_EIO;
    if (!nice_agent_attach_recv(p->agent, p->stream_id, 1, p->w->ctx, on_recv, p))
        return TM_EIO;
    take_local_credentials(p);
    set_remote(p, offer);
    return 0;
}

int tm__ice_restart(tm__peer *p, const tm_sdp_offer *offer)
{
    rx_clear(p, true); /* libnice sends and receives until the restart has selected a pair again */
    tx_clear(p);
    idle_timeout_default(p->agent);
    if (!nice_agent_restart_stream(p->agent, p->stream_id))
        return TM_EIO;
    take_local_credentials(p);
    set_remote(p, offer);
    return 0;
}

void tm__ice_stop(tm__peer *p)
{
    rx_clear(p, false);
    tx_clear(p);
    if (!p->agent)
        return;
    nice_agent_attach_recv(p->agent, p->stream_id, 1, p->w->ctx, NULL, NULL);
    g_signal_handlers_disconnect_by_data(p->agent, p);
    nice_agent_remove_stream(p->agent, p->stream_id);
    g_object_unref(p->agent);
    p->agent = NULL;
    p->stream_id = 0;
    p->ice_ready = false;
}

void tm__ice_add_remote(tm__peer *p, const char *candidate)
{
    if (!p->agent)
        return;
    if (!candidate || !*candidate) {
        nice_agent_peer_candidate_gathering_done(p->agent, p->stream_id);
        return;
    }
    /* libnice wants the "a=" form; the signaling form has none. */
    char *line = g_str_has_prefix(candidate, "a=") ? g_strdup(candidate)
                                                   : g_strconcat("a=", candidate, NULL);
    g_strchomp(line);
    NiceCandidate *c = nice_agent_parse_remote_candidate_sdp(p->agent, p->stream_id, line);
    g_free(line);
    if (!c)
        return;
    if (c->component_id == 1 && c->transport == NICE_CANDIDATE_TRANSPORT_UDP) {
        GSList *list = g_slist_append(NULL, c);
        nice_agent_set_remote_candidates(p->agent, p->stream_id, 1, list);
        g_slist_free(list);
    }
    nice_candidate_free(c);
}

/* Replace the connection address (5th field) of "candidate:..." with ip. */
static char *with_public_ip(const char *cand, const char *ip)
{
    char **f = g_strsplit(cand, " ", -1);
    char *out;
    if (g_strv_length(f) > 7) {
        g_free(f[4]);
        f[4] = g_strdup(ip);
        out = g_strjoinv(" ", f);
    } else {
        out = g_strdup(cand);
    }
    g_strfreev(f);
    return out;
}

char **tm__ice_local_candidates(tm__peer *p)
{
    GPtrArray *out = g_ptr_array_new();
    GSList *list = p->agent ? nice_agent_get_local_candidates(p->agent, p->stream_id, 1) : NULL;
    for (GSList *l = list; l; l = l->next) {
        NiceCandidate *c = l->data;
        gchar *sdp = nice_agent_generate_local_candidate_sdp(p->agent, c);
        if (sdp) {
            const char *s = g_str_has_prefix(sdp, "a=") ? sdp + 2 : sdp;
            const char *ip = p->w->media->public_ip;
            g_ptr_array_add(out, ip && c->type == NICE_CANDIDATE_TYPE_HOST ? with_public_ip(s, ip)
                                                                           : g_strdup(s));
            g_free(sdp);
        }
    }
    g_slist_free_full(list, (GDestroyNotify)nice_candidate_free);
    g_ptr_array_add(out, NULL);
    return (char **)g_ptr_array_free(out, FALSE);
}

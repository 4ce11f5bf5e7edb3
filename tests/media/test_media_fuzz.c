/*
 * test_media_fuzz.c - bad input at the media port while a 1:1 visit runs.
 *
 * Two webrtcbin peers hold a visit (VP8 + Opus both ways). Then, for a bounded
 * time:
 *   1. random and mutated datagrams (STUN-, DTLS-, RTP- and RTCP-shaped,
 *      truncated, random) from an address that never passed ICE, at every
 *      server port in the answers: libnice drops them;
 *   2. a third member of the visit, a raw libnice agent that completes ICE
 *      but never DTLS, sends the same mix through its valid pair: the media
 *      core must count them (malformed / before-handshake) and carry on.
 * Afterwards both webrtcbin peers must still be decoding new video and audio,
 * and the counters must show the drops. Bounded at ~60 s; exits non-zero on
 * failure.
 */
#include <arpa/inet.h>
#include <gst/gst.h>
#include <netinet/in.h>
#include <nice/agent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "media_test_peer.h"
#include "telemed/media.h"

static test_peer *peers[2];
static tm_media *media;

/* The raw ICE member of the visit. */
static struct {
    NiceAgent *agent;
    guint stream;
    bool ready, answered;
    char state[32];
} fz;

static void fz_on_answer(const char *sdp)
{
    char **lines = g_strsplit(sdp, "\n", -1);
    char *ufrag = NULL, *pwd = NULL;
    GSList *cands = NULL;
    for (char **l = lines; *l; l++) {
        g_strchomp(*l);
        if (g_str_has_prefix(*l, "a=ice-ufrag:") && !ufrag)
            ufrag = g_strdup(*l + 12);
        else if (g_str_has_prefix(*l, "a=ice-pwd:") && !pwd)
            pwd = g_strdup(*l + 10);
        else if (g_str_has_prefix(*l, "a=candidate:")) {
            NiceCandidate *c = nice_agent_parse_remote_candidate_sdp(fz.agent, fz.stream, *l);
            if (c)
                cands = g_slist_append(cands, c);
        }
    }
    if (!ufrag || !pwd || !cands)
        FAIL("fuzz peer: answer lacks ICE parameters");
    nice_agent_set_remote_credentials(fz.agent, fz.stream, ufrag, pwd);
    nice_agent_set_remote_candidates(fz.agent, fz.stream, 1, cands);
    g_slist_free_full(cands, (GDestroyNotify)nice_candidate_free);
    g_free(ufrag);
    g_free(pwd);
    g_strfreev(lines);
    fz.answered = true;
}

static void on_event(const tm_media_event *ev, void *user)
{
    if (strcmp(ev->peer_id, "fuzzer") == 0) {
        if (ev->type == TM_MEDIA_EV_ANSWER)
            fz_on_answer(ev->sdp);
        else if (ev->type == TM_MEDIA_EV_STATE)
            g_strlcpy(fz.state, ev->state, sizeof fz.state);
        return;
    }
    test_peer_on_event(peers, 2, ev);
}

static void fz_state(NiceAgent *agent, guint stream, guint comp, guint state, gpointer u)
{
    if (state == NICE_COMPONENT_STATE_READY || state == NICE_COMPONENT_STATE_CONNECTED)
        fz.ready = true;
}

static void fz_recv(NiceAgent *agent, guint stream, guint comp, guint len, gchar *buf, gpointer u)
{
}

static bool fz_ready(void *u)
{
    return fz.ready;
}

static void fz_start(GMainContext *ctx)
{
    fz.agent = nice_agent_new(ctx, NICE_COMPATIBILITY_RFC5245);
    g_object_set(fz.agent, "controlling-mode", TRUE, "upnp", FALSE, "ice-tcp", FALSE, NULL);
    NiceAddress addr;
    nice_address_init(&addr);
    nice_address_set_from_string(&addr, "127.0.0.1");
    nice_agent_add_local_address(fz.agent, &addr);
    fz.stream = nice_agent_add_stream(fz.agent, 1);
    g_signal_connect(fz.agent, "component-state-changed", G_CALLBACK(fz_state), NULL);
    nice_agent_attach_recv(fz.agent, fz.stream, 1, ctx, fz_recv, NULL);
    nice_agent_gather_candidates(fz.agent, fz.stream);
    gchar *ufrag = NULL, *pwd = NULL;
    nice_agent_get_local_credentials(fz.agent, fz.stream, &ufrag, &pwd);
    GString *sdp = g_string_new(NULL);
    g_string_append_printf(sdp,
                           "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
                           "a=group:BUNDLE 0\r\n"
                           "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n"
                           "a=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\n"
                           "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\n"
                           "a=fingerprint:sha-256 ",
                           ufrag, pwd);
    for (int i = 0; i < 32; i++)
        g_string_append_printf(sdp, "%02X%s", g_random_int_range(0, 256), i < 31 ? ":" : "\r\n");
    g_string_append(sdp, "a=setup:actpass\r\na=rtpmap:111 opus/48000/2\r\n"
                         "a=ssrc:424242 cname:fuzz\r\n");
    GSList *local = nice_agent_get_local_candidates(fz.agent, fz.stream, 1);
    for (GSList *l = local; l; l = l->next) {
        gchar *c = nice_agent_generate_local_candidate_sdp(fz.agent, l->data);
        g_string_append_printf(sdp, "%s\r\n", c);
        g_free(c);
    }
    g_slist_free_full(local, (GDestroyNotify)nice_candidate_free);
    char *err = NULL;
    if (tm_media_offer(media, "v-fuzz", "fuzzer", true, sdp->str, sdp->len, &err) != 0)
        FAIL("fuzz peer offer refused: %s\n%s", err, sdp->str);
    g_string_free(sdp, TRUE);
    g_free(ufrag);
    g_free(pwd);
}

/* One datagram of the mix into buf; returns its length. */
static size_t make_garbage(uint8_t *buf, size_t cap, unsigned i, bool allow_dtls)
{
    size_t len = (size_t)g_random_int_range(1, (int)cap);
    for (size_t k = 0; k < len; k++)
        buf[k] = (uint8_t)g_random_int_range(0, 256);
    switch (i % 8) {
    case 0: /* random */
        break;
    case 1: /* STUN binding request header, random or truncated attributes */
        if (len >= 20) {
            buf[0] = 0, buf[1] = 1;
            buf[4] = 0x21, buf[5] = 0x12, buf[6] = 0xa4, buf[7] = 0x42;
        }
        break;
    case 2: /* truncated DTLS record header */
        buf[0] = 22;
        len = (size_t)g_random_int_range(1, 13);
        if (len > 1)
            buf[1] = 0xfe;
        break;
    case 3: /* DTLS record whose length runs past the datagram */
        if (len < 14)
            len = 14;
        buf[0] = 22, buf[1] = 0xfe, buf[2] = 0xfd, buf[11] = 0xff, buf[12] = 0xff;
        break;
    case 4: /* RTP-shaped */
        buf[0] = 0x80 | (buf[0] & 0x3f);
        buf[1] = (uint8_t)(buf[1] & 0x7f) == 111 ? 111 : 96;
        break;
    case 5: /* RTCP-shaped, including lengths that lie */
        buf[0] = 0x80 | (buf[0] & 0x1f);
        buf[1] = (uint8_t)(200 + (buf[1] % 7));
        break;
    case 6: /* first bytes only */
        len = (size_t)g_random_int_range(1, 4);
        break;
    case 7: /* a well-formed DTLS record with random content (may end the handshake) */
        if (!allow_dtls) {
            buf[0] = 0x80;
            break;
        }
        if (len < 20)
            len = 20;
        buf[0] = 22, buf[1] = 0xfe, buf[2] = 0xfd;
        buf[11] = (uint8_t)((len - 13) >> 8), buf[12] = (uint8_t)(len - 13);
        break;
    }
    return len;
}

typedef struct frames_mark {
    int video[2], audio[2];
} frames_mark;

static bool still_decoding(void *u)
{
    frames_mark *m = u;
    for (int i = 0; i < 2; i++)
        if (g_atomic_int_get(&peers[i]->video_frames) < m->video[i] + 20 ||
            g_atomic_int_get(&peers[i]->audio_buffers) < m->audio[i] + 50)
            return false;
    return true;
}

static bool both_decoding(void *u)
{
    frames_mark zero = {{0, 0}, {0, 0}};
    return still_decoding(&zero);
}

static bool both_answered(void *u)
{
    return peers[0]->answers > 0 && peers[1]->answers > 0;
}

static void mark(frames_mark *m)
{
    for (int i = 0; i < 2; i++) {
        m->video[i] = g_atomic_int_get(&peers[i]->video_frames);
        m->audio[i] = g_atomic_int_get(&peers[i]->audio_buffers);
    }
}

static void pump(GMainContext *ctx, int ms)
{
    gint64 end = g_get_monotonic_time() + ms * 1000;
    while (g_get_monotonic_time() < end)
        g_main_context_iteration(ctx, FALSE);
}

int main(int argc, char **argv)
{
    gst_init(&argc, &argv);
    GMainContext *ctx = g_main_context_default();
    tm_media_options opts = {.workers = 1, .addresses = "127.0.0.1"};
    test_media_options(&opts);
    char *err = NULL;
    media = tm_media_new(&opts, ctx, on_event, NULL, &err);
    if (!media)
        FAIL("tm_media_new: %s", err);
    peers[0] = test_peer_new(media, "v-fuzz", "patient", 320, 240);
    peers[1] = test_peer_new(media, "v-fuzz", "doctor", 352, 288);
    if (!peers[0] || !peers[1])
        FAIL("cannot start webrtcbin peers");
    if (!test_wait(ctx, 15000, both_answered, NULL) || !test_wait(ctx, 20000, both_decoding, NULL))
        FAIL("visit did not start: video %d/%d", peers[0]->video_frames, peers[1]->video_frames);

    /* 1. Unknown source: every server port of the visit. */
    int ports[8], n_ports = test_answer_ports(peers[0]->answer, ports, 4);
    n_ports += test_answer_ports(peers[1]->answer, ports + n_ports, 4);
    if (n_ports < 2)
        FAIL("no server ports in the answers");
    int sock = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    uint8_t buf[1500];
    unsigned sent = 0;
    gint64 end = g_get_monotonic_time() + 3 * G_USEC_PER_SEC;
    while (g_get_monotonic_time() < end) {
        for (int p = 0; p < n_ports; p++) {
            to.sin_port = htons((uint16_t)ports[p]);
            size_t len = make_garbage(buf, sizeof buf, sent, true);
            sendto(sock, buf, len, 0, (struct sockaddr *)&to, sizeof to);
            sent++;
        }
        if (sent % 64 == 0) {
            g_main_context_iteration(ctx, FALSE);
            g_usleep(1000);
        }
    }
    close(sock);
    printf("sent %u datagrams from an unknown source\n", sent);

    /* 2. A member past ICE but not DTLS. */
    fz_start(ctx);
    if (!test_wait(ctx, 10000, fz_ready, NULL))
        FAIL("fuzz peer: ICE did not complete (answered=%d)", fz.answered);
    tm_media_counters before, after;
    tm_media_get_counters(media, &before);
    unsigned fsent = 0;
    end = g_get_monotonic_time() + 3 * G_USEC_PER_SEC;
    while (g_get_monotonic_time() < end) {
        size_t len = make_garbage(buf, sizeof buf, fsent, false);
        if (nice_agent_send(fz.agent, fz.stream, 1, (guint)len, (const gchar *)buf) > 0)
            fsent++;
        if (fsent % 32 == 0) {
            g_main_context_iteration(ctx, FALSE);
            g_usleep(1000);
        }
    }
    /* Last, well-formed DTLS records with random content: the handshake may fail,
     * which must close only this peer. */
    for (unsigned i = 0; i < 200; i++) {
        size_t len = make_garbage(buf, sizeof buf, 7, true);
        nice_agent_send(fz.agent, fz.stream, 1, (guint)len, (const gchar *)buf);
    }
    pump(ctx, 500);
    tm_media_get_counters(media, &after);
    printf("fuzz peer sent %u; malformed %llu -> %llu, before-handshake %llu -> %llu, state %s\n",
           fsent, (unsigned long long)before.dropped_malformed,
           (unsigned long long)after.dropped_malformed,
           (unsigned long long)before.dropped_unknown_source,
           (unsigned long long)after.dropped_unknown_source, fz.state);
    if (after.dropped_malformed <= before.dropped_malformed + 100)
        FAIL("malformed drops not counted");
    if (after.dropped_unknown_source <= before.dropped_unknown_source + 100)
        FAIL("packets before the DTLS handshake not counted");

    /* The visit still forwards both ways. */
    frames_mark m;
    mark(&m);
    if (!test_wait(ctx, 10000, still_decoding, &m))
        FAIL("visit stopped forwarding: video %d->%d, %d->%d", m.video[0], peers[0]->video_frames,
             m.video[1], peers[1]->video_frames);

    tm_media_visit_close(media, "v-fuzz");
    pump(ctx, 300);
    g_object_unref(fz.agent);
    test_peer_free(peers[0]);
    test_peer_free(peers[1]);
    tm_media_free(media);
    printf("ok media fuzz\n");
    return 0;
}

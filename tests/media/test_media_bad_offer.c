/*
 * test_media_bad_offer.c - offers the media core must refuse synchronously
 * with a message (no BUNDLE, no rtcp-mux, no supported codec, garbage, wrong
 * fingerprint algorithm), leaving nothing behind; and a valid offer after them
 * still gets an answer with our fingerprint and a loopback host candidate.
 * tm_media_set_view's refusals; an offer of 16 simulcast video m-lines of four
 * layers each (64 streams from one peer) is answered.
 */
#include <stdio.h>
#include <string.h>

#include "media_testing.h"
#include "telemed/media.h"
#include "tm_test.h"

static const char *GOOD =
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "a=group:BUNDLE 0 1\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendrecv\r\n"
    "a=rtcp-mux\r\na=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n"
    "a=fingerprint:sha-256 "
    "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:"
    "99\r\n"
    "a=setup:actpass\r\na=rtpmap:111 opus/48000/2\r\na=ssrc:1111 cname:x\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendrecv\r\n"
    "a=rtcp-mux\r\na=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n"
    "a=fingerprint:sha-256 "
    "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:"
    "99\r\n"
    "a=setup:actpass\r\na=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack pli\r\na=ssrc:2222 cname:x\r\n";

static char *answer;
static int events;

static void on_event(const tm_media_event *ev, void *user)
{
    events++;
    if (ev->type == TM_MEDIA_EV_ANSWER) {
        free(answer);
        answer = strdup(ev->sdp);
    }
}

static char *replace(const char *s, const char *from, const char *to)
{
    const char *at = strstr(s, from);
    CHECK(at != NULL);
    size_t n = strlen(s) - strlen(from) + strlen(to) + 1;
    char *out = malloc(n);
    memcpy(out, s, (size_t)(at - s));
    strcpy(out + (at - s), to);
    strcat(out, at + strlen(from));
    return out;
}

static char *replace_all(const char *s, const char *from, const char *to)
{
    char *cur = strdup(s);
    while (strstr(cur, from)) {
        char *next = replace(cur, from, to);
        free(cur);
        cur = next;
    }
    return cur;
}

static void refuse(tm_media *m, const char *sdp, const char *why)
{
    char *err = NULL;
    int rc = tm_media_offer(m, "v-1", "p-1", true, sdp, strlen(sdp), &err);
    if (rc == 0)
        fprintf(stderr, "accepted an offer with %s\n", why);
    CHECK(rc == TM_EINVAL || rc == TM_ETOOBIG);
    CHECK(err != NULL && *err);
    g_free(err);
}

int main(void)
{
    GMainContext *ctx = g_main_context_default();
    tm_media_options opts = {.workers = 1, .addresses = "127.0.0.1"};
    char *err = NULL;
    tm_media *m = tm_media_new(&opts, ctx, on_event, NULL, &err);
    CHECK(m != NULL);

    char *s;
    refuse(m, "", "nothing");
    refuse(m, "hello world\r\n", "garbage");
    refuse(m, GOOD + 10, "a cut start");
    s = replace(GOOD, "a=group:BUNDLE 0 1\r\n", "");
    refuse(m, s, "no BUNDLE");
    free(s);
    s = replace_all(GOOD, "a=rtcp-mux\r\n", "");
    refuse(m, s, "no rtcp-mux");
    free(s);
    char *t = replace_all(GOOD, "opus/48000/2", "PCMU/8000");
    s = replace(t, "VP8/90000", "VP9/90000");
    refuse(m, s, "no codec");
    free(t);
    free(s);
    s = replace_all(GOOD, "sha-256", "sha-1");
    refuse(m, s, "a sha-1 fingerprint");
    free(s);
    refuse(m, "v=0\r\n", "only a version");
    CHECK(tm_media_offer(m, "", "p-1", true, GOOD, strlen(GOOD), &err) == TM_EINVAL);
    g_free(err);
    err = NULL;

    /* Nothing was created by the refusals. */
    for (int i = 0; i < 20; i++)
        g_main_context_iteration(ctx, FALSE);
    tm_media_counters c;
    tm_media_get_counters(m, &c);
    CHECK_EQ_INT(c.peers, 0);
    CHECK_EQ_INT(events, 0);

    CHECK_EQ_INT(tm_media_offer(m, "v-1", "p-1", true, GOOD, strlen(GOOD), &err), 0);
    gint64 end = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    while (!answer && g_get_monotonic_time() < end)
        g_main_context_iteration(ctx, TRUE);
    CHECK(answer != NULL);
    CHECK(strstr(answer, tm_media_fingerprint(m)) != NULL);
    CHECK(strstr(answer, "a=setup:passive") != NULL);
    CHECK(strstr(answer, " 127.0.0.1 ") != NULL);
    CHECK(strstr(answer, "a=rtpmap:111 opus/48000/2") != NULL);
    CHECK(strstr(answer, "a=rtpmap:96 VP8/90000") != NULL);
    tm_media_get_counters(m, &c);
    CHECK_EQ_INT(c.peers, 1);
    CHECK_EQ_INT(c.visits, 1);
    /* Bad candidates are refused; a late one for an unknown peer is harmless. */
    CHECK_EQ_INT(tm_media_add_candidate(m, "v-1", "p-1", "candidate:garbage", "0"), TM_EINVAL);
    CHECK_EQ_INT(tm_media_add_candidate(m, "v-1", "p-x",
                                        "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host", "0"),
                 0);
    /* media.view: only for a peer that offered, with a sane size. */
    CHECK_EQ_INT(tm_media_set_view(m, "v-1", "p-1", "p-2", 320, 180), 0);
    CHECK_EQ_INT(tm_media_set_view(m, "v-1", "p-9", "p-2", 320, 180), TM_ENOTFOUND);
    CHECK_EQ_INT(tm_media_set_view(m, "v-9", "p-1", "p-2", 320, 180), TM_ENOTFOUND);
    CHECK_EQ_INT(tm_media_set_view(m, "v-1", "p-1", "", 320, 180), TM_EINVAL);
    CHECK_EQ_INT(tm_media_set_view(m, "v-1", "p-1", "p-2", TM_MEDIA_VIEW_MAX + 1, 1), TM_EINVAL);
    /* The most streams an offer can make: every m-line simulcast with four layers. */
    GString *big = g_string_new("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
                                "a=group:BUNDLE");
    for (int i = 0; i < 16; i++)
        g_string_append_printf(big, " %d", i);
    g_string_append(big, "\r\n");
    for (int i = 0; i < 16; i++)
        g_string_append_printf(
            big,
            "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:%d\r\na=sendrecv\r\na=rtcp-mux\r\n"
            "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\na=fingerprint:sha-256 "
            "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:"
            "55:66:77:88:99\r\na=setup:actpass\r\na=rtpmap:96 VP8/90000\r\n"
            "a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\n"
            "a=rid:a send\r\na=rid:b send\r\na=rid:c send\r\na=rid:d send\r\n"
            "a=simulcast:send a;b;c;d\r\n",
            i);
    free(answer);
    answer = NULL;
    CHECK_EQ_INT(tm_media_offer(m, "v-1", "p-big", true, big->str, big->len, &err), 0);
    g_string_free(big, TRUE);
    end = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    while (!answer && g_get_monotonic_time() < end)
        g_main_context_iteration(ctx, TRUE);
    CHECK(answer != NULL);
    CHECK(strstr(answer, "a=simulcast:recv a;b;c;d") != NULL);
    CHECK_EQ_INT(tm_media_peer_close(m, "v-1", "p-big"), 0);
    CHECK_EQ_INT(tm_media_peer_close(m, "v-1", "p-1"), 0);
    end = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
    do {
        g_main_context_iteration(ctx, FALSE);
        tm_media_get_counters(m, &c);
    } while ((c.peers || c.visits) && g_get_monotonic_time() < end);
    CHECK_EQ_INT(c.peers, 0);
    CHECK_EQ_INT(c.visits, 0);
    tm_media_free(m);

    /* NAT 1:1 address and a port range show up in the answer's candidate. */
    free(answer);
    answer = NULL;
    tm_media_options nat = {.workers = 1,
                            .addresses = "127.0.0.1",
                            .public_ip = "203.0.113.7",
                            .port_min = 42000,
                            .port_max = 42010};
    m = tm_media_new(&nat, ctx, on_event, NULL, &err);
    CHECK(m != NULL);
    CHECK_EQ_INT(tm_media_offer(m, "v-2", "p-2", false, GOOD, strlen(GOOD), &err), 0);
    end = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    while (!answer && g_get_monotonic_time() < end)
        g_main_context_iteration(ctx, TRUE);
    CHECK(answer != NULL);
    const char *cand = strstr(answer, "a=candidate:");
    CHECK(cand != NULL);
    CHECK(strstr(cand, " 203.0.113.7 ") != NULL);
    /* p-2 is receive-only (send=false): its sendrecv m-lines are answered sendonly. */
    CHECK(strstr(answer, "a=sendonly") != NULL);
    CHECK(strstr(answer, "a=sendrecv") == NULL);
    CHECK(strstr(answer, " 127.0.0.1 ") == NULL);
    int port = 0;
    CHECK(sscanf(strstr(cand, " 203.0.113.7 ") + 13, "%d", &port) == 1);
    CHECK(port >= 42000 && port <= 42010);
    tm_media_free(m);
    free(answer);
    TEST_DONE();
}

/*
 * test_sdp.c - offers as Chrome and GStreamer's webrtcbin write them parse
 * and get a sane answer; the H.264 fallback; every rejection; candidates;
 * Chrome's VP8 simulcast (rids) taken and answered, and its edge cases.
 */
#include <glib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sdp.h"
#include "tm_test.h"

static char *read_data(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", TM_SDP_DATA_DIR, name);
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    static char buf[128 * 1024];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *copy = malloc(n + 1);
    CHECK(copy);
    memcpy(copy, buf, n + 1);
    *len = n;
    return copy;
}

static tm_sdp_offer *parse_file(const char *name)
{
    size_t len;
    char *s = read_data(name, &len);
    tm_sdp_offer *o = NULL;
    char *err = NULL;
    int rc = tm_sdp_parse_offer(s, len, &o, &err);
    if (rc != 0)
        fprintf(stderr, "%s: %s\n", name, err ? err : "(no message)");
    CHECK_EQ_INT(rc, 0);
    CHECK(o != NULL);
    CHECK(err == NULL);
    free(s);
    return o;
}

/* The parse error message of a file that must be refused. */
static char *reject_file(const char *name, int want_rc)
{
    size_t len;
    char *s = read_data(name, &len);
    tm_sdp_offer *o = (tm_sdp_offer *)1;
    char *err = NULL;
    CHECK_EQ_INT(tm_sdp_parse_offer(s, len, &o, &err), want_rc);
    CHECK(o == NULL);
    CHECK(err != NULL);
    free(s);
    return err;
}

static bool has_line(const char *sdp, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = sdp; (p = strstr(p, line)) != NULL; p++) {
        bool start = p == sdp || p[-1] == '\n';
        bool end = p[n] == '\r' && p[n + 1] == '\n';
        if (start && end)
            return true;
    }
    return false;
}

/* The text of m-section i of an answer (new string). */
static char *section(const char *sdp, int i)
{
    const char *p = sdp;
    for (int k = 0; k <= i; k++) {
        p = strstr(p + 1, "\r\nm=");
        CHECK(p != NULL);
    }
    p += 2;
    const char *e = strstr(p, "\r\nm=");
    size_t n = e ? (size_t)(e - p) + 2 : strlen(p);
    char *s = malloc(n + 1);
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static const char *const CANDS[] = {
    "candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host",
    "a=candidate:2 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active\r\n",
};

static tm_sdp_answer_params params(tm_sdp_answer_media *media, size_t n)
{
    tm_sdp_answer_params p = {
        .ice_ufrag = "srvU",
        .ice_pwd = "serverpassword0123456789",
        .fingerprint = "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:"
                       "22:33:44:55:66:77:88:99",
        .remb = true,
        .candidates = CANDS,
        .n_candidates = 2,
        .end_of_candidates = true,
        .media = media,
        .n_media = n,
        .session_version = 2,
    };
    return p;
}

static void test_chrome_offer_parses(void)
{
    tm_sdp_offer *o = parse_file("chrome_offer.sdp");
    CHECK_EQ_INT(o->session_id, 4611731400430051336ull);
    CHECK_EQ_INT(o->n_mlines, 3);
    CHECK_EQ_INT(o->n_bundle, 3);
    CHECK_STR(o->bundle[0], "0");
    CHECK_STR(o->ice_ufrag, "Kq3L");
    CHECK_STR(o->ice_pwd, "vR8pUq2mZ0aX7cYb4dE1fGh6");
    CHECK(o->ice_trickle);
    CHECK_STR(o->fingerprint.algorithm, "sha-256");
    CHECK(strncmp(o->fingerprint.value, "3B:8A:4F", 8) == 0);
    CHECK_EQ_INT(o->setup, TM_SETUP_ACTPASS);
    CHECK_EQ_INT(tm_sdp_answer_setup(o), TM_SETUP_PASSIVE);

    const tm_sdp_mline *a = &o->mlines[0];
    CHECK_EQ_INT(a->kind, TM_MEDIA_AUDIO);
    CHECK_STR(a->mid, "0");
    CHECK(a->accepted && a->in_bundle && a->rtcp_mux && a->rtcp_rsize);
    CHECK_EQ_INT(a->direction, TM_DIR_SENDRECV);
    CHECK_EQ_INT(a->n_codecs, 8);
    CHECK_EQ_INT(tm_sdp_mline_codec(a)->pt, 111);
    CHECK_STR(tm_sdp_mline_codec(a)->fmtp, "minptime=10;useinbandfec=1");
    CHECK(tm_sdp_mline_rtx(a) == NULL);
    CHECK_EQ_INT(a->ext_mid, 4);
    CHECK_EQ_INT(a->ext_abs_send_time, 2);
    CHECK_EQ_INT(a->ext_twcc, 3);
    CHECK_EQ_INT(a->remote_ssrc, 1735119482u);
    CHECK_EQ_INT(a->remote_rtx_ssrc, 0);
    CHECK_STR(a->remote_cname, "hL1qz0bXkR6yC9Tg");
    CHECK(strncmp(a->msid, "3a1c9b3e-", 9) == 0);

    const tm_sdp_mline *v = &o->mlines[1];
    CHECK_EQ_INT(v->kind, TM_MEDIA_VIDEO);
    CHECK(v->accepted);
    CHECK_EQ_INT(v->n_codecs, 23);
    const tm_sdp_codec *vc = tm_sdp_mline_codec(v);
    CHECK_STR(vc->name, "VP8");
    CHECK_EQ_INT(vc->pt, 96);
    CHECK_EQ_INT(vc->clock, 90000);
    CHECK_EQ_INT(vc->n_fb, 5);
    CHECK_STR(vc->fb[4], "nack pli");
    CHECK_EQ_INT(tm_sdp_mline_rtx(v)->pt, 97);
    CHECK_EQ_INT(tm_sdp_mline_rtx(v)->apt, 96);
    CHECK_EQ_INT(v->n_extmaps, 11);
    CHECK_EQ_INT(v->remote_ssrc, 2393265718u);
    CHECK_EQ_INT(v->remote_rtx_ssrc, 3271398157u);
    CHECK_EQ_INT(v->n_ssrc_groups, 1);
    CHECK_STR(v->ssrc_groups[0].semantics, "FID");

    const tm_sdp_mline *d = &o->mlines[2];
    CHECK_EQ_INT(d->kind, TM_MEDIA_APPLICATION);
    CHECK(!d->accepted);
    CHECK(d->in_bundle);
    CHECK_STR(d->fmt0, "webrtc-datachannel");
    tm_sdp_offer_free(o);
}

static void test_chrome_156_real_offer(void)
{
    /* As Chromium 156 wrote it (sendrecv audio+video, a data channel). */
    tm_sdp_offer *o = parse_file("chrome_156_offer.sdp");
    CHECK_EQ_INT(o->n_mlines, 3);
    CHECK(o->mlines[0].accepted && o->mlines[1].accepted && !o->mlines[2].accepted);
    CHECK_EQ_INT(tm_sdp_mline_codec(&o->mlines[0])->pt, 111);
    CHECK_STR(tm_sdp_mline_codec(&o->mlines[1])->name, "VP8");
    CHECK_EQ_INT(tm_sdp_mline_rtx(&o->mlines[1])->apt, tm_sdp_mline_codec(&o->mlines[1])->pt);
    CHECK(o->mlines[1].remote_ssrc != 0 && o->mlines[1].remote_rtx_ssrc != 0);
    CHECK(o->mlines[1].remote_cname[0] != '\0');
    CHECK(o->mlines[1].ext_mid > 0 && o->mlines[1].ext_abs_send_time > 0);
    CHECK_EQ_INT(o->setup, TM_SETUP_ACTPASS);
    tm_sdp_answer_params p = params(NULL, 0);
    char *ans = tm_sdp_build_answer(o, &p);
    CHECK(ans != NULL);
    CHECK(has_line(ans, "a=group:BUNDLE 0 1"));
    free(ans);
    tm_sdp_offer_free(o);
}

static void test_chrome_answer(void)
{
    tm_sdp_offer *o = parse_file("chrome_offer.sdp");
    tm_sdp_answer_media media[3] = {
        {.send = true, .ssrc = 11111, .cname = "srv", .msid_stream = "peer-b", .msid_track = "a0"},
        {.send = true,
         .ssrc = 22222,
         .rtx_ssrc = 33333,
         .cname = "srv",
         .msid_stream = "peer-b",
         .msid_track = "v0"},
    };
    tm_sdp_answer_params p = params(media, 2);
    char *ans = tm_sdp_build_answer(o, &p);
    CHECK(ans != NULL);
    CHECK(strncmp(ans, "v=0\r\no=- ", 9) == 0);
    CHECK(has_line(ans, "a=group:BUNDLE 0 1"));
    CHECK(!has_line(ans, "a=ice-lite"));

    char *a = section(ans, 0);
    CHECK(has_line(a, "m=audio 9 UDP/TLS/RTP/SAVPF 111"));
    CHECK(has_line(a, "a=ice-ufrag:srvU"));
    CHECK(has_line(a, "a=ice-pwd:serverpassword0123456789"));
    CHECK(has_line(a, "a=ice-options:trickle"));
    CHECK(strstr(a, "\r\na=fingerprint:sha-256 AA:BB:CC:") != NULL);
    CHECK(has_line(a, "a=setup:passive"));
    CHECK(has_line(a, "a=mid:0"));
    CHECK(has_line(a, "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid"));
    CHECK(has_line(a, "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"));
    CHECK(strstr(a, "transport-wide-cc") == NULL); /* no twcc feedback from us */
    /* Offered on audio: answered, for the active speaker (RFC 6464). */
    CHECK(has_line(a, "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level"));
    CHECK_EQ_INT(o->mlines[0].ext_audio_level, 1);
    CHECK(has_line(a, "a=sendrecv"));
    CHECK(has_line(a, "a=msid:peer-b a0"));
    CHECK(has_line(a, "a=rtcp-mux"));
    CHECK(has_line(a, "a=rtcp-rsize"));
    CHECK(has_line(a, "a=rtpmap:111 opus/48000/2"));
    CHECK(has_line(a, "a=fmtp:111 minptime=10;useinbandfec=1"));
    CHECK(strstr(a, "transport-cc") == NULL);
    CHECK(has_line(a, "a=ssrc:11111 cname:srv"));
    CHECK(has_line(a, "a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host"));
    CHECK(has_line(a, "a=candidate:2 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active"));
    CHECK(has_line(a, "a=end-of-candidates"));
    free(a);

    char *v = section(ans, 1);
    CHECK(has_line(v, "m=video 9 UDP/TLS/RTP/SAVPF 96 97"));
    CHECK(has_line(v, "a=mid:1"));
    CHECK(has_line(v, "a=rtpmap:96 VP8/90000"));
    CHECK(has_line(v, "a=rtcp-fb:96 nack"));
    CHECK(has_line(v, "a=rtcp-fb:96 nack pli"));
    CHECK(has_line(v, "a=rtcp-fb:96 ccm fir"));
    CHECK(has_line(v, "a=rtcp-fb:96 goog-remb"));
    CHECK(strstr(v, "transport-cc") == NULL);
    CHECK(has_line(v, "a=rtpmap:97 rtx/90000"));
    CHECK(has_line(v, "a=fmtp:97 apt=96"));
    CHECK(has_line(v, "a=ssrc-group:FID 22222 33333"));
    CHECK(has_line(v, "a=ssrc:22222 cname:srv"));
    CHECK(has_line(v, "a=ssrc:33333 msid:peer-b v0"));
    CHECK(strstr(v, "H264") == NULL && strstr(v, "VP9") == NULL);
    CHECK(strstr(v, "a=candidate") == NULL); /* only in the BUNDLE tag */
    free(v);

    char *d = section(ans, 2);
    CHECK(has_line(d, "m=application 0 UDP/DTLS/SCTP webrtc-datachannel"));
    CHECK(has_line(d, "a=mid:2"));
    /* webrtcbin wants a fingerprint on every m-line, rejected ones too. */
    CHECK(strstr(d, "\r\na=fingerprint:sha-256 AA:BB:") != NULL);
    CHECK(has_line(d, "a=setup:passive"));
    CHECK(strstr(d, "a=rtpmap") == NULL);
    free(d);

    /* The answer is well-formed SDP by our own parser (it is not an offer
     * we would accept: no BUNDLE for the rejected line is fine). */
    tm_sdp_offer *again = NULL;
    char *err = NULL;
    CHECK_EQ_INT(tm_sdp_parse_offer(ans, strlen(ans), &again, &err), 0);
    CHECK_EQ_INT(again->n_mlines, 3);
    CHECK(again->mlines[0].accepted && again->mlines[1].accepted);
    CHECK_EQ_INT(again->mlines[1].remote_ssrc, 22222);
    CHECK_EQ_INT(again->setup, TM_SETUP_PASSIVE);
    tm_sdp_offer_free(again);
    free(ans);

    /* transport-cc on: extmap and rtcp-fb appear, REMB off: goog-remb goes. */
    p.transport_cc = true;
    p.remb = false;
    p.ice_lite = true;
    ans = tm_sdp_build_answer(o, &p);
    CHECK(ans != NULL);
    CHECK(has_line(ans, "a=ice-lite"));
    CHECK(has_line(ans, "a=extmap:3 " TM_SDP_EXT_TWCC));
    CHECK(has_line(ans, "a=rtcp-fb:96 transport-cc"));
    CHECK(has_line(ans, "a=rtcp-fb:111 transport-cc"));
    CHECK(strstr(ans, "goog-remb") == NULL);
    free(ans);
    tm_sdp_offer_free(o);
}

static void test_receive_only_answer(void)
{
    /* A server that does not send (no media entries): sendrecv -> recvonly,
     * no ssrc or msid lines. */
    tm_sdp_offer *o = parse_file("chrome_offer.sdp");
    tm_sdp_answer_params p = params(NULL, 0);
    p.n_candidates = 0;
    p.end_of_candidates = false;
    char *ans = tm_sdp_build_answer(o, &p);
    CHECK(ans != NULL);
    CHECK(strstr(ans, "a=recvonly\r\n") != NULL);
    CHECK(strstr(ans, "a=sendrecv") == NULL);
    CHECK(strstr(ans, "a=ssrc:") == NULL);
    CHECK(strstr(ans, "a=msid:") == NULL);
    CHECK(strstr(ans, "a=candidate") == NULL);
    CHECK(strstr(ans, "end-of-candidates") == NULL);
    free(ans);
    tm_sdp_offer_free(o);

    CHECK_EQ_INT(tm_sdp_answer_direction(TM_DIR_SENDRECV, true), TM_DIR_SENDRECV);
    CHECK_EQ_INT(tm_sdp_answer_direction(TM_DIR_SENDRECV, false), TM_DIR_RECVONLY);
    CHECK_EQ_INT(tm_sdp_answer_direction(TM_DIR_RECVONLY, true), TM_DIR_SENDONLY);
    CHECK_EQ_INT(tm_sdp_answer_direction(TM_DIR_SENDONLY, true), TM_DIR_RECVONLY);
    CHECK_EQ_INT(tm_sdp_answer_direction(TM_DIR_INACTIVE, true), TM_DIR_INACTIVE);
}

static void test_supervisor_recvonly_offer(void)
{
    /* A supervisor's offer: recvonly transceivers. The server sends. */
    size_t len;
    char *s = read_data("chrome_offer.sdp", &len);
    for (char *p = s; (p = strstr(p, "a=sendrecv")) != NULL;)
        memcpy(p, "a=recvonly", 10);
    tm_sdp_offer *o = NULL;
    char *err = NULL;
    CHECK_EQ_INT(tm_sdp_parse_offer(s, len, &o, &err), 0);
    CHECK_EQ_INT(o->mlines[1].direction, TM_DIR_RECVONLY);
    tm_sdp_answer_media media[2] = {{.send = true, .ssrc = 5}, {.send = true, .ssrc = 6}};
    tm_sdp_answer_params p = params(media, 2);
    char *ans = tm_sdp_build_answer(o, &p);
    CHECK(ans != NULL);
    char *v = section(ans, 1);
    CHECK(has_line(v, "a=sendonly"));
    CHECK(has_line(v, "a=ssrc:6 cname:telemed"));
    free(v);
    free(ans);
    tm_sdp_offer_free(o);
    free(s);
}

static void test_webrtcbin_offer(void)
{
    tm_sdp_offer *o = parse_file("webrtcbin_offer.sdp");
    CHECK_EQ_INT(o->n_mlines, 2);
    CHECK_STR(o->bundle[0], "video0");
    CHECK_STR(o->bundle[1], "audio1");
    const tm_sdp_mline *v = &o->mlines[0], *a = &o->mlines[1];
    CHECK(v->accepted);
    CHECK_EQ_INT(tm_sdp_mline_codec(v)->pt, 96);
    CHECK_EQ_INT(tm_sdp_mline_rtx(v)->pt, 97);
    CHECK_EQ_INT(v->remote_ssrc, 1589290374u);
    CHECK_EQ_INT(v->remote_rtx_ssrc, 3542207829u);
    CHECK_STR(v->remote_cname, "user2856541133@host-6b2d7bea");
    CHECK_EQ_INT(v->ext_mid, 0);
    /* Port 0 + bundle-only: part of the BUNDLE, accepted. */
    CHECK_EQ_INT(a->port, 0);
    CHECK(a->bundle_only);
    CHECK(a->accepted);
    CHECK_STR(tm_sdp_mline_codec(a)->name, "OPUS");
    CHECK_STR(o->ice_ufrag, "ySGdHUfeGvwaAxbzpYq9Rmw0ksz1zAB6");

    tm_sdp_answer_media media[2] = {
        {.send = true, .ssrc = 7, .rtx_ssrc = 8, .msid_stream = "s"},
        {.send = true, .ssrc = 9, .msid_stream = "s"},
    };
    tm_sdp_answer_params p = params(media, 2);
    char *ans = tm_sdp_build_answer(o, &p);
    CHECK(ans != NULL);
    CHECK(has_line(ans, "a=group:BUNDLE video0 audio1"));
    char *vs = section(ans, 0);
    CHECK(has_line(vs, "m=video 9 UDP/TLS/RTP/SAVPF 96 97"));
    CHECK(has_line(vs, "a=rtcp-fb:96 goog-remb"));
    CHECK(has_line(vs, "a=msid:s video-7"));
    CHECK(strstr(vs, "a=extmap") == NULL); /* none offered */
    CHECK(has_line(vs, "a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host"));
    free(vs);
    char *as = section(ans, 1);
    CHECK(has_line(as, "m=audio 9 UDP/TLS/RTP/SAVPF 111"));
    CHECK(has_line(as, "a=rtpmap:111 opus/48000/2"));
    CHECK(strstr(as, "bundle-only") == NULL);
    CHECK(strstr(as, "rtcp-fb") == NULL); /* no video feedback on audio */
    free(as);
    free(ans);
    tm_sdp_offer_free(o);
}

static void test_webrtcbin_1_22_real_offer(void)
{
    /* As GStreamer 1.22's webrtcbin wrote it (max-bundle, caps without
     * encoding-params): "OPUS/48000" with no channel count, a=rtcp-mux-only,
     * the audio m-line bundle-only on port 0. */
    tm_sdp_offer *o = parse_file("webrtcbin_1_22_offer.sdp");
    CHECK_EQ_INT(o->n_mlines, 2);
    CHECK(o->mlines[0].accepted);
    CHECK(o->mlines[1].accepted);
    CHECK_EQ_INT(tm_sdp_mline_codec(&o->mlines[1])->channels, 1);
    CHECK_EQ_INT(tm_sdp_mline_codec(&o->mlines[1])->pt, 111);
    tm_sdp_answer_params p = params(NULL, 0);
    char *ans = tm_sdp_build_answer(o, &p);
    CHECK(ans != NULL);
    CHECK(has_line(ans, "a=rtpmap:111 opus/48000/2"));
    CHECK(has_line(ans, "a=group:BUNDLE video0 audio1"));
    free(ans);
    tm_sdp_offer_free(o);
}

static void test_firefox_offer(void)
{
    /* Firefox style: fingerprint at session level (inherited by every
     * m-line), extmap directions, rtpmap after rtcp-fb, rtx by apt. */
    tm_sdp_offer *o = parse_file("firefox_offer.sdp");
    CHECK_EQ_INT(o->n_mlines, 2);
    CHECK(o->mlines[0].accepted && o->mlines[1].accepted);
    CHECK_STR(o->mlines[1].fingerprint.algorithm, "sha-256");
    CHECK(strncmp(o->mlines[1].fingerprint.value, "1F:52:C8", 8) == 0);
    CHECK_STR(o->ice_ufrag, "3c7e9a1f");
    CHECK_EQ_INT(tm_sdp_mline_codec(&o->mlines[0])->pt, 109);
    const tm_sdp_codec *v = tm_sdp_mline_codec(&o->mlines[1]);
    CHECK_EQ_INT(v->pt, 120);
    CHECK_EQ_INT(v->n_fb, 5);
    CHECK_EQ_INT(tm_sdp_mline_rtx(&o->mlines[1])->pt, 124);
    CHECK_EQ_INT(o->mlines[0].ext_mid, 3);
    CHECK_EQ_INT(o->mlines[0].extmaps[1].direction, TM_DIR_RECVONLY);
    CHECK_EQ_INT(o->mlines[1].ext_abs_send_time, 4);
    CHECK_EQ_INT(o->mlines[1].ext_twcc, 7);
    CHECK_EQ_INT(o->mlines[1].remote_ssrc, 2845196307u);
    CHECK_EQ_INT(o->mlines[1].remote_rtx_ssrc, 1960387254u);
    CHECK(!o->mlines[0].rtcp_rsize);
    tm_sdp_answer_params p = params(NULL, 0);
    char *ans = tm_sdp_build_answer(o, &p);
    CHECK(ans != NULL);
    char *a = section(ans, 0);
    CHECK(strstr(a, "a=rtcp-rsize") == NULL); /* not offered on audio */
    CHECK(has_line(a, "a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid"));
    free(a);
    char *vs = section(ans, 1);
    CHECK(has_line(vs, "m=video 9 UDP/TLS/RTP/SAVPF 120 124"));
    CHECK(has_line(vs, "a=extmap:4 " TM_SDP_EXT_ABS_SEND_TIME));
    free(vs);
    free(ans);
    tm_sdp_offer_free(o);
}

static void test_h264_fallback(void)
{
    tm_sdp_offer *o = parse_file("h264_only_offer.sdp");
    const tm_sdp_mline *v = &o->mlines[1];
    CHECK(v->accepted);
    const tm_sdp_codec *c = tm_sdp_mline_codec(v);
    /* 102 is baseline 42001f and 127 is main: only 106 is 42e01f mode 1. */
    CHECK_EQ_INT(c->pt, 106);
    CHECK_EQ_INT(tm_sdp_mline_rtx(v)->pt, 107);
    tm_sdp_answer_params p = params(NULL, 0);
    char *ans = tm_sdp_build_answer(o, &p);
    CHECK(ans != NULL);
    CHECK(has_line(ans, "m=video 9 UDP/TLS/RTP/SAVPF 106 107"));
    CHECK(has_line(ans, "a=rtpmap:106 H264/90000"));
    CHECK(has_line(
        ans, "a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"));
    CHECK(has_line(ans, "a=fmtp:107 apt=106"));
    free(ans);
    tm_sdp_offer_free(o);

    /* VP8 wins whenever offered, even after H.264 in preference order. */
    o = parse_file("chrome_offer.sdp");
    CHECK_STR(tm_sdp_mline_codec(&o->mlines[1])->name, "VP8");
    tm_sdp_offer_free(o);
}

static void test_rejections(void)
{
    struct {
        const char *file;
        int rc;
        const char *msg;
    } cases[] = {
        {"bad_no_bundle.sdp", TM_EINVAL, "offer has no BUNDLE group"},
        {"bad_no_rtcp_mux.sdp", TM_EINVAL, "rtcp-mux is required"},
        {"bad_no_codec.sdp", TM_EINVAL, "no supported audio or video codec"},
        {"bad_no_fingerprint.sdp", TM_EINVAL, "missing DTLS fingerprint"},
        {"bad_no_ice.sdp", TM_EINVAL, "missing ice-ufrag/ice-pwd"},
        {"bad_garbage.sdp", TM_EINVAL, "not an SDP"},
        {"bad_truncated.sdp", TM_EINVAL, "bad ice-pwd"},
    };
    for (size_t i = 0; i < TM_ARRAY_LEN(cases); i++) {
        char *err = reject_file(cases[i].file, cases[i].rc);
        if (!strstr(err, cases[i].msg))
            fprintf(stderr, "%s: got \"%s\"\n", cases[i].file, err);
        CHECK(strstr(err, cases[i].msg) != NULL);
        g_free(err);
    }
}

static void expect_reject(const char *sdp, size_t len, int rc, const char *msg)
{
    tm_sdp_offer *o = NULL;
    char *err = NULL;
    CHECK_EQ_INT(tm_sdp_parse_offer(sdp, len, &o, &err), rc);
    CHECK(o == NULL);
    CHECK(err != NULL);
    if (!strstr(err, msg))
        fprintf(stderr, "want \"%s\", got \"%s\"\n", msg, err);
    CHECK(strstr(err, msg) != NULL);
    g_free(err);
}

static void test_rejections_inline(void)
{
    expect_reject("", 0, TM_EINVAL, "not an SDP");
    expect_reject("v=0", 3, TM_EINVAL, "no supported");
    /* Oversized input. */
    size_t big = TM_SDP_MAX_INPUT + 1;
    char *s = malloc(big);
    memset(s, 'a', big);
    memcpy(s, "v=0\n", 4);
    expect_reject(s, big, TM_ETOOBIG, "too large");
    /* An over-long line inside the limit. */
    memset(s, 'a', 8000);
    memcpy(s, "v=0\na=x:", 8);
    expect_reject(s, 8000, TM_EINVAL, "line 2: too long");
    free(s);
    /* NUL inside, and lines that are not SDP. */
    expect_reject("v=0\r\nx\0y\r\n", 10, TM_EINVAL, "not an SDP");
    expect_reject("v=0\r\nhello\r\n", 12, TM_EINVAL, "line 2: not an SDP line");
    /* A mid that would inject into the answer. */
    const char *inj = "v=0\r\na=group:BUNDLE 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
                      "a=mid:0\rm=x\r\n";
    expect_reject(inj, strlen(inj), TM_EINVAL, "bad mid");
    /* Too many m-lines. */
    char many[4096] = "v=0\n";
    for (int i = 0; i < 17; i++)
        strcat(many, "m=audio 9 UDP/TLS/RTP/SAVPF 111\n");
    expect_reject(many, strlen(many), TM_EINVAL, "more than 16 m-lines");
    /* Payload type out of range. */
    const char *pt = "v=0\nm=audio 9 UDP/TLS/RTP/SAVPF 128\n";
    expect_reject(pt, strlen(pt), TM_EINVAL, "bad payload type");
    /* A too-long fmtp. */
    char fm[600] = "v=0\nm=audio 9 UDP/TLS/RTP/SAVPF 111\na=fmtp:111 ";
    size_t l = strlen(fm);
    memset(fm + l, 'x', 300);
    fm[l + 300] = '\0';
    expect_reject(fm, strlen(fm), TM_EINVAL, "line 3: fmtp too long");
    /* LF-only line ends are accepted (checked with the webrtcbin offer). */
    size_t len;
    char *w = read_data("webrtcbin_offer.sdp", &len);
    size_t j = 0;
    for (size_t i = 0; i < len; i++)
        if (w[i] != '\r')
            w[j++] = w[i];
    tm_sdp_offer *o = NULL;
    char *err = NULL;
    CHECK_EQ_INT(tm_sdp_parse_offer(w, j, &o, &err), 0);
    CHECK_EQ_INT(o->n_mlines, 2);
    CHECK_STR(o->mlines[0].mid, "video0");
    tm_sdp_offer_free(o);
    free(w);
}

static void test_answer_params_checked(void)
{
    tm_sdp_offer *o = parse_file("webrtcbin_offer.sdp");
    tm_sdp_answer_params p = params(NULL, 0);
    p.ice_pwd = "short";
    CHECK(tm_sdp_build_answer(o, &p) == NULL);
    p = params(NULL, 0);
    p.fingerprint = "AB:CD\r\na=evil";
    CHECK(tm_sdp_build_answer(o, &p) == NULL);
    p = params(NULL, 0);
    const char *bad[] = {"candidate:x 1 udp 1 1.2.3.4 5 typ nope"};
    p.candidates = bad;
    p.n_candidates = 1;
    CHECK(tm_sdp_build_answer(o, &p) == NULL);
    tm_sdp_answer_media m[1] = {{.send = true, .ssrc = 1, .cname = "a b"}};
    p = params(m, 1);
    CHECK(tm_sdp_build_answer(o, &p) == NULL);
    CHECK(tm_sdp_build_answer(o, NULL) == NULL);
    CHECK(tm_sdp_build_answer(NULL, &p) == NULL);
    tm_sdp_offer_free(o);
}

static void test_offer_candidates(void)
{
    /* A non-trickle offer with candidates in the m-line. */
    size_t len;
    char *s = read_data("webrtcbin_offer.sdp", &len);
    const char *extra = "a=candidate:1 1 UDP 2015363327 192.168.1.7 51234 typ host\r\n"
                        "a=candidate:2 1 UDP 1679819007 203.0.113.9 51234 typ srflx raddr "
                        "192.168.1.7 rport 51234\r\n"
                        "a=candidate:3 1 UDP 1 odd.local 1 typ weird\r\n"
                        "a=end-of-candidates\r\n";
    char *t = malloc(len + strlen(extra) + 1);
    /* Insert after the first m-line's mid. */
    const char *at = strstr(s, "a=mid:video0\r\n") + strlen("a=mid:video0\r\n");
    size_t head = (size_t)(at - s);
    memcpy(t, s, head);
    strcpy(t + head, extra);
    strcat(t, at);
    tm_sdp_offer *o = NULL;
    char *err = NULL;
    CHECK_EQ_INT(tm_sdp_parse_offer(t, strlen(t), &o, &err), 0);
    const tm_sdp_mline *v = &o->mlines[0];
    CHECK_EQ_INT(v->n_candidates, 2); /* the unknown type is skipped */
    CHECK(v->end_of_candidates);
    CHECK_STR(v->candidates[1].address, "203.0.113.9");
    CHECK_EQ_INT(v->candidates[1].type, TM_CAND_SRFLX);
    CHECK_STR(v->candidates[1].raddr, "192.168.1.7");
    CHECK_EQ_INT(v->candidates[1].rport, 51234);
    tm_sdp_offer_free(o);
    free(t);
    free(s);
}

static void test_candidate_parse_format(void)
{
    tm_sdp_candidate c;
    CHECK_EQ_INT(tm_sdp_parse_candidate("candidate:842163049 1 udp 1677729535 198.51.100.7 "
                                        "61665 typ srflx raddr 10.0.0.2 rport 61665 generation 0 "
                                        "ufrag Kq3L network-cost 999",
                                        &c),
                 0);
    CHECK_STR(c.foundation, "842163049");
    CHECK_EQ_INT(c.component, 1);
    CHECK_EQ_INT(c.transport, TM_CAND_UDP);
    CHECK_EQ_INT(c.priority, 1677729535u);
    CHECK_STR(c.address, "198.51.100.7");
    CHECK_EQ_INT(c.port, 61665);
    CHECK_EQ_INT(c.type, TM_CAND_SRFLX);
    CHECK_STR(c.raddr, "10.0.0.2");
    CHECK_EQ_INT(c.rport, 61665);
    char buf[256];
    int n = tm_sdp_format_candidate(&c, buf, sizeof(buf));
    CHECK_STR(buf, "candidate:842163049 1 udp 1677729535 198.51.100.7 61665 typ srflx raddr "
                   "10.0.0.2 rport 61665");
    CHECK_EQ_INT(n, (int)strlen(buf));
    CHECK_EQ_INT(tm_sdp_format_candidate(&c, buf, 20), TM_ETOOBIG);

    CHECK_EQ_INT(tm_sdp_parse_candidate("a=candidate:1 1 TCP 1518280447 ::1 9 typ host tcptype "
                                        "active\r\n",
                                        &c),
                 0);
    CHECK_EQ_INT(c.transport, TM_CAND_TCP);
    CHECK_EQ_INT(c.tcptype, TM_TCP_ACTIVE);
    CHECK_STR(c.address, "::1");
    tm_sdp_format_candidate(&c, buf, sizeof(buf));
    CHECK_STR(buf, "candidate:1 1 tcp 1518280447 ::1 9 typ host tcptype active");
    CHECK_EQ_INT(tm_sdp_parse_candidate("candidate:2 1 udp 5 a1b2c3.local 5000 typ host", &c), 0);
    CHECK_EQ_INT(tm_sdp_parse_candidate("candidate:3 1 udp 5 10.0.0.1 5000 typ relay raddr "
                                        "1.2.3.4 rport 7",
                                        &c),
                 0);
    CHECK_EQ_INT(c.type, TM_CAND_RELAY);

    const char *bad[] = {
        "",
        "candidate:",
        "foo:1 1 udp 1 1.2.3.4 5 typ host",
        "candidate:1 1 udp 1 1.2.3.4 5 typ",
        "candidate:1 1 sctp 1 1.2.3.4 5 typ host",
        "candidate:1 0 udp 1 1.2.3.4 5 typ host",
        "candidate:1 1 udp 4294967296 1.2.3.4 5 typ host",
        "candidate:1 1 udp 1 1.2.3.4 65536 typ host",
        "candidate:1 1 udp 1 1.2.3.4 -5 typ host",
        "candidate:1 1 udp 1 1.2.3.4 5 type host",
        "candidate:1 1 udp 1 1.2.3.4 5 typ host rport x",
        "candidate:1 1 udp 1 1.2.3.4 5 typ host raddr",
        "candidate:1 1 udp 1 1.2.3.4 5 typ host tcptype maybe",
        "candidate:1 1 udp 1 1.2.3.4;rm 5 typ host",
        "candidate:123456789012345678901234567890123 1 udp 1 1.2.3.4 5 typ host",
        "candidate:1 1 udp 1 "
        "1111111111222222222233333333334444444444555555555566666666667777777777 5 typ host",
    };
    for (size_t i = 0; i < TM_ARRAY_LEN(bad); i++) {
        if (tm_sdp_parse_candidate(bad[i], &c) != TM_EINVAL)
            fprintf(stderr, "accepted: %s\n", bad[i]);
        CHECK_EQ_INT(tm_sdp_parse_candidate(bad[i], &c), TM_EINVAL);
    }
    CHECK_EQ_INT(tm_sdp_parse_candidate(NULL, &c), TM_EINVAL);
}

static void test_chrome_simulcast_offer(void)
{
    /* As Chromium 156 wrote it: sendrecv audio, sendrecv video with three rids (q, h, f),
     * and a recvonly audio+video pair, with no a=ssrc on the simulcast m-line. */
    tm_sdp_offer *o = parse_file("chrome_simulcast_offer.sdp");
    CHECK_EQ_INT(o->n_mlines, 4);
    const tm_sdp_mline *v = &o->mlines[1];
    CHECK(v->accepted);
    CHECK_EQ_INT(v->n_layers, 3);
    CHECK_STR(v->layers[0], "q");
    CHECK_STR(v->layers[1], "h");
    CHECK_STR(v->layers[2], "f");
    CHECK_EQ_INT(v->ext_rid, 10);
    CHECK_EQ_INT(v->ext_rrid, 11);
    CHECK_EQ_INT(v->remote_ssrc, 0);
    CHECK_EQ_INT(o->mlines[3].n_layers, 0);
    CHECK_EQ_INT(o->mlines[0].n_layers, 0);
    tm_sdp_answer_media media[4] = {{.send = true, .ssrc = 1},
                                    {.send = true, .ssrc = 2},
                                    {.send = true, .ssrc = 3},
                                    {.send = true, .ssrc = 4}};
    tm_sdp_answer_params p = params(media, 4);
    char *ans = tm_sdp_build_answer(o, &p);
    CHECK(ans != NULL);
    char *sec = section(ans, 1);
    CHECK(has_line(sec, "a=sendrecv"));
    CHECK(has_line(sec, "a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"));
    CHECK(has_line(sec, "a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"));
    CHECK(has_line(sec, "a=rid:q recv"));
    CHECK(has_line(sec, "a=rid:h recv"));
    CHECK(has_line(sec, "a=rid:f recv"));
    CHECK(has_line(sec, "a=simulcast:recv q;h;f"));
    free(sec);
    sec = section(ans, 3); /* the recvonly video: we send one stream, no rids */
    CHECK(strstr(sec, "a=rid:") == NULL && strstr(sec, "a=simulcast") == NULL);
    CHECK(strstr(sec, "rtp-stream-id") == NULL);
    free(sec);
    free(ans);
    tm_sdp_offer_free(o);
}

static void test_simulcast_receive_only(void)
{
    /* A supervisor's browser that offers simulcast is answered sendonly: we receive
     * nothing from it, so no rids are answered either (media.c turns the direction). */
    tm_sdp_offer *o = parse_file("chrome_simulcast_offer.sdp");
    o->mlines[1].direction = TM_DIR_RECVONLY;
    tm_sdp_answer_params p = params(NULL, 0);
    char *ans = tm_sdp_build_answer(o, &p);
    CHECK(ans != NULL);
    CHECK(strstr(ans, "a=rid:") == NULL && strstr(ans, "a=simulcast") == NULL);
    free(ans);
    tm_sdp_offer_free(o);
}

/* An offer of one VP8 video m-line with `extra` attribute lines; NULL when refused
 * (*err then set). */
static tm_sdp_offer *video_offer(const char *extra, char **err)
{
    char *sdp =
        g_strdup_printf("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
                        "a=group:BUNDLE 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97\r\n"
                        "a=mid:0\r\na=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n"
                        "a=fingerprint:sha-256 AA:BB\r\na=setup:actpass\r\na=rtcp-mux\r\n"
                        "a=sendrecv\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\n"
                        "a=fmtp:97 apt=96\r\n%s",
                        extra);
    tm_sdp_offer *o = NULL;
    *err = NULL;
    tm_sdp_parse_offer(sdp, strlen(sdp), &o, err);
    g_free(sdp);
    return o;
}

static void test_simulcast_variants(void)
{
    const char *rid_ext = "a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\n";
    char *err = NULL;
    /* Paused ("~") streams count; of alternatives the first is taken; no rrid is fine. */
    char *x =
        g_strconcat(rid_ext, "a=rid:lo send\r\na=rid:alt send\r\na=rid:hi send max-width=1280\r\n",
                    "a=simulcast:send ~lo,alt;hi recv r1\r\n", NULL);
    tm_sdp_offer *o = video_offer(x, &err);
    CHECK(o != NULL);
    CHECK_EQ_INT(o->mlines[0].n_layers, 2);
    CHECK_STR(o->mlines[0].layers[0], "lo");
    CHECK_STR(o->mlines[0].layers[1], "hi");
    CHECK_EQ_INT(o->mlines[0].ext_rrid, 0);
    tm_sdp_answer_params p = params(NULL, 0);
    char *ans = tm_sdp_build_answer(o, &p);
    CHECK(has_line(ans, "a=simulcast:recv lo;hi"));
    CHECK(strstr(ans, "repaired-rtp-stream-id") == NULL);
    free(ans);
    tm_sdp_offer_free(o);
    g_free(x);
    /* Plain streams: no rid extension; one layer only; a rid the offer sends nothing on. */
    const char *plain[] = {
        "a=rid:a send\r\na=rid:b send\r\na=simulcast:send a;b\r\n",
        "a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\na=rid:a send\r\n"
        "a=simulcast:send a\r\n",
        "a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\na=rid:a send\r\n"
        "a=rid:b recv\r\na=simulcast:send a;b\r\n",
    };
    for (size_t i = 0; i < TM_ARRAY_LEN(plain); i++) {
        o = video_offer(plain[i], &err);
        CHECK(o != NULL);
        CHECK(o->mlines[0].accepted);
        CHECK_EQ_INT(o->mlines[0].n_layers, 0);
        ans = tm_sdp_build_answer(o, &p);
        CHECK(strstr(ans, "a=rid:") == NULL && strstr(ans, "a=simulcast") == NULL);
        free(ans);
        tm_sdp_offer_free(o);
    }
    /* Malformed ones are refused with the line. */
    static const struct {
        const char *extra, *msg;
    } bad[] = {
        {"a=rid:q! send\r\n", "line 17: bad rid"},
        {"a=rid:q sideways\r\n", "line 17: bad rid"},
        {"a=rid:abcdefghijklmnopq send\r\n", "line 17: bad rid"},
        {"a=rid:q send\r\na=rid:q send\r\n", "line 18: rid q twice"},
        {"a=rid:a send\r\na=rid:b send\r\na=rid:c send\r\na=rid:d send\r\na=rid:e send\r\n",
         "line 21: more than 4 rids"},
        {"a=simulcast:sendx a;b\r\n", "line 17: bad simulcast"},
        {"a=simulcast:send\r\n", "line 17: bad simulcast"},
        {"a=simulcast:send a;b$\r\n", "line 17: bad rid in simulcast"},
        {"a=simulcast:send a;b;c;d;e\r\n", "line 17: more than 4 simulcast streams"},
        {"a=simulcast:send a send b\r\n", "line 17: simulcast send given twice"},
    };
    for (size_t i = 0; i < TM_ARRAY_LEN(bad); i++) {
        o = video_offer(bad[i].extra, &err);
        CHECK(o == NULL);
        if (!err || !strstr(err, bad[i].msg))
            fprintf(stderr, "want \"%s\", got \"%s\"\n", bad[i].msg, err ? err : "(none)");
        CHECK(err && strstr(err, bad[i].msg));
        g_free(err);
    }
}

static void test_simulcast_seed_offers(void)
{
    /* The fuzz seeds beside Chrome's: a Firefox-style offer (a=ssrc lines too, a paused
     * stream, alternatives, a recv rid) and four layers listed before their rids. */
    tm_sdp_offer *o = parse_file("firefox_simulcast_offer.sdp");
    const tm_sdp_mline *v = &o->mlines[1];
    CHECK_EQ_INT(v->n_layers, 3);
    CHECK_STR(v->layers[0], "h");
    CHECK_STR(v->layers[1], "m");
    CHECK_STR(v->layers[2], "l");
    tm_sdp_answer_params p = params(NULL, 0);
    char *ans = tm_sdp_build_answer(o, &p);
    CHECK(has_line(ans, "a=simulcast:recv h;m;l"));
    CHECK(strstr(ans, "a=rid:x") == NULL);
    free(ans);
    tm_sdp_offer_free(o);
    o = parse_file("simulcast_four_layers_offer.sdp");
    CHECK_EQ_INT(o->mlines[1].n_layers, 4);
    CHECK_STR(o->mlines[1].layers[1], "mid_2");
    ans = tm_sdp_build_answer(o, &p);
    CHECK(has_line(ans, "a=simulcast:recv lo-1;mid_2;hi;top"));
    free(ans);
    tm_sdp_offer_free(o);
}

int main(void)
{
    RUN(test_chrome_offer_parses);
    RUN(test_chrome_156_real_offer);
    RUN(test_chrome_answer);
    RUN(test_receive_only_answer);
    RUN(test_supervisor_recvonly_offer);
    RUN(test_webrtcbin_offer);
    RUN(test_webrtcbin_1_22_real_offer);
    RUN(test_firefox_offer);
    RUN(test_h264_fallback);
    RUN(test_rejections);
    RUN(test_rejections_inline);
    RUN(test_answer_params_checked);
    RUN(test_offer_candidates);
    RUN(test_candidate_parse_format);
    RUN(test_chrome_simulcast_offer);
    RUN(test_simulcast_receive_only);
    RUN(test_simulcast_variants);
    RUN(test_simulcast_seed_offers);
    TEST_DONE();
}

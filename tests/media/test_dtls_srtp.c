/*
 * test_dtls_srtp.c - two media-core DTLS endpoints shake hands over memory (no
 * network), export matching SRTP keys, and protect/unprotect RTP and RTCP both
 * ways, for both SRTP profiles. Also: a wrong fingerprint fails the handshake,
 * garbage is dropped, and SRTP refuses tampered packets; an endpoint whose
 * OpenSSL state was shed still takes the peer's close_notify (AES-128/256-GCM,
 * either role) and refuses a forged one, and a CBC suite keeps its state.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

#include "dtls_srtp_internal.h"
#include "telemed/certs.h"
#include "tm_test.h"

/* Datagrams in flight from one endpoint to the other. */
typedef struct wire {
    uint8_t pkt[32][2048];
    size_t len[32];
    int n;
} wire;

static void to_wire(const uint8_t *buf, size_t len, void *user)
{
    wire *w = user;
    CHECK(w->n < 32);
    CHECK(len <= sizeof w->pkt[0]);
    memcpy(w->pkt[w->n], buf, len);
    w->len[w->n++] = len;
}

static void deliver(wire *w, tm__dtls *to)
{
    wire copy = *w;
    w->n = 0;
    for (int i = 0; i < copy.n; i++) {
        bool dropped = false;
        tm__dtls_input(to, copy.pkt[i], copy.len[i], &dropped);
        CHECK(!dropped);
    }
}

typedef struct side {
    EVP_PKEY *key;
    X509 *cert;
    SSL_CTX *ctx;
    char fp[TM__DTLS_FP_MAX];
} side;

static void side_init(side *s, const char *cn, const char *profiles)
{
    CHECK_EQ_INT(tm_certs_make_self_signed(cn, 30, &s->key, &s->cert), 0);
    s->ctx = tm__dtls_ctx_new(s->key, s->cert);
    CHECK(s->ctx != NULL);
    if (profiles)
        CHECK_EQ_INT(SSL_CTX_set_tlsext_use_srtp(s->ctx, profiles), 0);
    CHECK_EQ_INT(tm__dtls_cert_fingerprint(s->cert, s->fp, sizeof s->fp), 0);
    char other[TM__DTLS_FP_MAX];
    CHECK_EQ_INT(tm_certs_fingerprint_sha256(s->cert, other, sizeof other), 0);
    CHECK_STR(s->fp, other);
}

static void side_free(side *s)
{
    SSL_CTX_free(s->ctx);
    X509_free(s->cert);
    EVP_PKEY_free(s->key);
}

static void handshake_and_protect(const char *client_profiles, tm__srtp_profile want)
{
    side cs, ss;
    side_init(&cs, "client", client_profiles);
    side_init(&ss, "server", NULL);
    wire c2s = {0}, s2c = {0};
    tm__dtls *client = tm__dtls_new(cs.ctx, false, ss.fp, to_wire, &c2s);
    tm__dtls *server = tm__dtls_new(ss.ctx, true, cs.fp, to_wire, &s2c);
    CHECK(client && server);

    /* Garbage before the handshake is refused, not fed to OpenSSL. */
    uint8_t junk[40];
    memset(junk, 0x16, sizeof junk);
    bool dropped = false;
    tm__dtls_input(server, junk, sizeof junk, &dropped);
    CHECK(dropped);

    CHECK_EQ_INT(tm__dtls_start(server), 0);
    CHECK_EQ_INT(tm__dtls_start(client), 0);
    CHECK(c2s.n > 0);
    for (int round = 0; round < 10; round++) {
        deliver(&c2s, server);
        deliver(&s2c, client);
        if (tm__dtls_get_state(client) == TM__DTLS_CONNECTED &&
            tm__dtls_get_state(server) == TM__DTLS_CONNECTED && c2s.n == 0 && s2c.n == 0)
            break;
    }
    CHECK_EQ_INT(tm__dtls_get_state(client), TM__DTLS_CONNECTED);
    CHECK_EQ_INT(tm__dtls_get_state(server), TM__DTLS_CONNECTED);

    tm__srtp_keys ck, sk;
    CHECK_EQ_INT(tm__dtls_srtp_keys(client, &ck), 0);
    CHECK_EQ_INT(tm__dtls_srtp_keys(server, &sk), 0);
    CHECK_EQ_INT(ck.profile, want);
    CHECK_EQ_INT(sk.profile, want);
    CHECK_EQ_INT(ck.len, want == TM__SRTP_AEAD_AES_128_GCM ? 28 : 30);
    CHECK(memcmp(ck.local, sk.remote, ck.len) == 0);
    CHECK(memcmp(ck.remote, sk.local, ck.len) == 0);
    CHECK(memcmp(ck.local, ck.remote, ck.len) != 0);

    tm__srtp *cs_srtp = tm__srtp_new(&ck), *ss_srtp = tm__srtp_new(&sk);
    CHECK(cs_srtp && ss_srtp);

    /* RTP client -> server, twice the same seq allowed outbound (NACK resend). */
    uint8_t pkt[200 + TM__SRTP_MAX_TRAILER];
    uint8_t plain[200];
    memset(plain, 0, sizeof plain);
    plain[0] = 0x80;
    plain[1] = 96;
    plain[3] = 7;
    plain[8] = 0x12, plain[9] = 0x34, plain[10] = 0x56, plain[11] = 0x78;
    for (size_t i = 12; i < sizeof plain; i++)
        plain[i] = (uint8_t)i;
    memcpy(pkt, plain, sizeof plain);
    size_t len = sizeof plain;
    CHECK_EQ_INT(tm__srtp_protect_rtp(cs_srtp, pkt, &len), 0);
    CHECK(len > sizeof plain);
    CHECK(memcmp(pkt + 12, plain + 12, 20) != 0);
    uint8_t saved[sizeof pkt];
    size_t saved_len = len;
    memcpy(saved, pkt, len);
    CHECK_EQ_INT(tm__srtp_unprotect_rtp(ss_srtp, pkt, &len), 0);
    CHECK_EQ_INT(len, sizeof plain);
    CHECK(memcmp(pkt, plain, len) == 0);
    /* A replay and a tampered packet are refused. */
    memcpy(pkt, saved, saved_len);
    len = saved_len;
    CHECK(tm__srtp_unprotect_rtp(ss_srtp, pkt, &len) != 0);
    saved[30] ^= 1;
    saved[3] = 8;
    len = saved_len;
    CHECK(tm__srtp_unprotect_rtp(ss_srtp, saved, &len) != 0);

    /* RTCP server -> client: an RR. */
    uint8_t rtcp[64 + TM__SRTP_MAX_TRAILER] = {0x80, 201, 0, 1, 0xde, 0xad, 0xbe, 0xef};
    size_t rlen = 8;
    CHECK_EQ_INT(tm__srtp_protect_rtcp(ss_srtp, rtcp, &rlen), 0);
    CHECK(rlen > 8);
    CHECK_EQ_INT(tm__srtp_unprotect_rtcp(cs_srtp, rtcp, &rlen), 0);
    CHECK_EQ_INT(rlen, 8);
    CHECK_EQ_INT(rtcp[1], 201);
    CHECK_EQ_INT(rtcp[7], 0xef);

    tm__srtp_free(cs_srtp);
    tm__srtp_free(ss_srtp);
    tm__dtls_free(client);
    tm__dtls_free(server);
    side_free(&cs);
    side_free(&ss);
}

static void test_aes_cm(void)
{
    handshake_and_protect("SRTP_AES128_CM_SHA1_80", TM__SRTP_AES128_CM_SHA1_80);
}

static void test_aead_gcm(void)
{
    handshake_and_protect("SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80",
                          TM__SRTP_AEAD_AES_128_GCM);
}

static void test_wrong_fingerprint_fails(void)
{
    side cs, ss;
    side_init(&cs, "client", NULL);
    side_init(&ss, "server", NULL);
    wire c2s = {0}, s2c = {0};
    /* The server expects a different client certificate. */
    tm__dtls *client = tm__dtls_new(cs.ctx, false, ss.fp, to_wire, &c2s);
    tm__dtls *server = tm__dtls_new(ss.ctx, true, ss.fp, to_wire, &s2c);
    CHECK_EQ_INT(tm__dtls_start(client), 0);
    for (int round = 0; round < 10 && (c2s.n || s2c.n); round++) {
        wire a = c2s, b = s2c;
        c2s.n = s2c.n = 0;
        for (int i = 0; i < a.n; i++)
            tm__dtls_input(server, a.pkt[i], a.len[i], NULL);
        for (int i = 0; i < b.n; i++)
            tm__dtls_input(client, b.pkt[i], b.len[i], NULL);
    }
    CHECK_EQ_INT(tm__dtls_get_state(server), TM__DTLS_FAILED);
    tm__srtp_keys k;
    CHECK(tm__dtls_srtp_keys(server, &k) != 0);
    tm__dtls_free(client);
    tm__dtls_free(server);
    side_free(&cs);
    side_free(&ss);
}

static void test_truncated_records_dropped(void)
{
    side ss;
    side_init(&ss, "server", NULL);
    wire s2c = {0};
    tm__dtls *server = tm__dtls_new(ss.ctx, true, ss.fp, to_wire, &s2c);
    uint8_t rec[20] = {22, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 50};
    bool dropped = false;
    for (size_t n = 0; n <= sizeof rec; n++) {
        tm__dtls_input(server, rec, n, &dropped);
        CHECK(dropped);
    }
    CHECK(tm__dtls_get_state(server) != TM__DTLS_CONNECTED);
    tm__dtls_free(server);
    side_free(&ss);
}

static void handshake(side *cs, side *ss, tm__dtls **client, tm__dtls **server, wire *c2s,
                      wire *s2c)
{
    *client = tm__dtls_new(cs->ctx, false, ss->fp, to_wire, c2s);
    *server = tm__dtls_new(ss->ctx, true, cs->fp, to_wire, s2c);
    CHECK(*client && *server);
    CHECK_EQ_INT(tm__dtls_start(*server), 0);
    CHECK_EQ_INT(tm__dtls_start(*client), 0);
    for (int round = 0; round < 10 && (c2s->n || s2c->n); round++) {
        deliver(c2s, *server);
        deliver(s2c, *client);
    }
    CHECK_EQ_INT(tm__dtls_get_state(*client), TM__DTLS_CONNECTED);
    CHECK_EQ_INT(tm__dtls_get_state(*server), TM__DTLS_CONNECTED);
}

/* `ciphers` (OpenSSL's names) offered by the client; the shedding side is the
 * server or the client. */
static void shed_then_close(const char *ciphers, bool shed_server)
{
    side cs, ss;
    side_init(&cs, "client", NULL);
    side_init(&ss, "server", NULL);
    CHECK_EQ_INT(SSL_CTX_set_cipher_list(cs.ctx, ciphers), 1);
    wire c2s = {0}, s2c = {0};
    tm__dtls *client, *server;
    handshake(&cs, &ss, &client, &server, &c2s, &s2c);
    tm__dtls *shed = shed_server ? server : client, *peer = shed_server ? client : server;
    wire *to_shed = shed_server ? &c2s : &s2c;

    CHECK_EQ_INT(tm__dtls_shed(shed), 0);
    CHECK(tm__dtls_is_shed(shed));
    CHECK_EQ_INT(tm__dtls_shed(shed), TM_EINVAL);
    tm__srtp_keys k;
    CHECK_EQ_INT(tm__dtls_srtp_keys(shed, &k), TM_EINVAL);
    CHECK_EQ_INT(tm__dtls_close(shed), TM_EINVAL);

    /* The peer's close_notify, and a forged copy (one bit of its tag). */
    CHECK_EQ_INT(tm__dtls_close(peer), 0);
    CHECK_EQ_INT(to_shed->n, 1);
    CHECK_EQ_INT(to_shed->len[0], 13 + 26);
    uint8_t forged[64];
    memcpy(forged, to_shed->pkt[0], to_shed->len[0]);
    forged[to_shed->len[0] - 1] ^= 1;
    bool dropped = false;
    CHECK_EQ_INT(tm__dtls_input(shed, forged, to_shed->len[0], &dropped), TM__DTLS_CONNECTED);
    CHECK(dropped);
    /* Nor is a handshake record of the old session answered. */
    uint8_t hs[40] = {22, 0xFE, 0xFD, 0, 1, 0, 0, 0, 0, 0, 9, 0, 27};
    CHECK_EQ_INT(tm__dtls_input(shed, hs, sizeof hs, &dropped), TM__DTLS_CONNECTED);
    CHECK(dropped);
    CHECK_EQ_INT(tm__dtls_input(shed, to_shed->pkt[0], to_shed->len[0], &dropped), TM__DTLS_CLOSED);
    CHECK(!dropped);

    tm__dtls_free(client);
    tm__dtls_free(server);
    side_free(&cs);
    side_free(&ss);
}

static void test_shed_keeps_close_notify(void)
{
    /* Chromium's first choice, and OpenSSL's (a SHA-384 PRF). */
    shed_then_close("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256", true);
    shed_then_close("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256", false);
    shed_then_close("ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384", true);
    shed_then_close("ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384", false);
}

static void test_shed_refused_for_cbc(void)
{
    side cs, ss;
    side_init(&cs, "client", NULL);
    side_init(&ss, "server", NULL);
    CHECK_EQ_INT(SSL_CTX_set_cipher_list(cs.ctx, "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA"), 1);
    wire c2s = {0}, s2c = {0};
    tm__dtls *client, *server;
    handshake(&cs, &ss, &client, &server, &c2s, &s2c);
    CHECK_EQ_INT(tm__dtls_shed(server), TM_EUNSUPPORTED);
    CHECK(!tm__dtls_is_shed(server));
    tm__srtp_keys k;
    CHECK_EQ_INT(tm__dtls_srtp_keys(server, &k), 0);
    CHECK_EQ_INT(tm__dtls_close(client), 0);
    deliver(&c2s, server);
    CHECK_EQ_INT(tm__dtls_get_state(server), TM__DTLS_CLOSED);
    tm__dtls_free(client);
    tm__dtls_free(server);
    side_free(&cs);
    side_free(&ss);
}

int main(void)
{
    RUN(test_aes_cm);
    RUN(test_aead_gcm);
    RUN(test_wrong_fingerprint_fails);
    RUN(test_truncated_records_dropped);
    RUN(test_shed_keeps_close_notify);
    RUN(test_shed_refused_for_cbc);
    TEST_DONE();
}

/*
 * dtls.c - DTLS-SRTP endpoint (RFC 5764) over OpenSSL with a memory BIO in and
 * a datagram-preserving BIO out, so one BIO_write from OpenSSL is one datagram
 * handed to the transport (libnice in the server, memory in the tests).
 *
 * Owns: the SSL object and its BIOs. Runs on the owning peer's media worker;
 * the SSL_CTX is shared read-only by every worker (OpenSSL allows that once it
 * is set up).
 *
 * Once SRTP flows, WebRTC uses the session only for a close_notify and to be
 * replaced by a new handshake, yet OpenSSL holds ~100 KiB per session (the
 * handshake's buffers, the flight kept for a retransmission, the peer's
 * certificate). tm__dtls_shed frees the SSL and keeps only the peer's record
 * key, enough to authenticate and read its alerts (AES-GCM suites).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "dtls_srtp_internal.h"

#define DTLS_MTU 1200
/* Browsers and OpenSSL start at 1 s; a short first retransmit makes lost
 * handshake flights on a fresh ICE pair cost less join time. */
#define DTLS_FIRST_TIMEOUT_US 100000u
#define DTLS_MAX_TIMEOUT_US 4000000u

/* What reading the peer's alerts needs once the SSL is gone (AES-GCM,
 * RFC 5288): its write key and implicit nonce, and the epoch they belong to. */
typedef struct shed_reader {
    const EVP_CIPHER *cipher;
    uint8_t key[32];
    uint8_t salt[4];
    uint16_t epoch;
} shed_reader;

struct tm__dtls {
    SSL *ssl; /* NULL once shed */
    BIO *rbio;
    shed_reader *shed;
    tm__dtls_state state;
    char remote_fp[TM__DTLS_FP_MAX];
    tm__dtls_send_fn send;
    void *user;
};

static BIO_METHOD *out_method;

static int out_write(BIO *b, const char *data, int len)
{
    tm__dtls *d = BIO_get_data(b);
    if (len > 0 && d && d->send)
        d->send((const uint8_t *)data, (size_t)len, d->user);
    return len;
}

static long out_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_DGRAM_QUERY_MTU:
    case BIO_CTRL_DGRAM_GET_FALLBACK_MTU:
        return DTLS_MTU;
    case BIO_CTRL_WPENDING:
    case BIO_CTRL_PENDING:
        return 0;
    default:
        return 0;
    }
}

static int out_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static int accept_any_cert(int preverify_ok, X509_STORE_CTX *store)
{
    /* WebRTC certificates are self-signed; identity is the SDP fingerprint,
     * checked once the handshake is done. */
    return 1;
}

SSL_CTX *tm__dtls_ctx_new(EVP_PKEY *key, X509 *cert)
{
    if (!key || !cert)
        return NULL;
    if (!out_method) {
        BIO_METHOD *meth = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "tm dtls out");
        if (!meth)
            return NULL;
        BIO_meth_set_write(meth, out_write);
        BIO_meth_set_ctrl(meth, out_ctrl);
        BIO_meth_set_create(meth, out_create);
        out_method = meth; /* process lifetime, made once from the control thread */
    }
    SSL_CTX *ctx = SSL_CTX_new(DTLS_method());
    if (!ctx)
        return NULL;
    if (!SSL_CTX_set_min_proto_version(ctx, DTLS1_2_VERSION))
        goto fail;
    if (SSL_CTX_use_certificate(ctx, cert) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1)
        goto fail;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, accept_any_cert);
    /* Returns 0 on success, unlike most of OpenSSL. */
    if (SSL_CTX_set_tlsext_use_srtp(ctx, "SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80") != 0)
        goto fail;
    SSL_CTX_set_read_ahead(ctx, 1);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

static unsigned int timer_cb(SSL *ssl, unsigned int previous_us)
{
    if (previous_us == 0)
        return DTLS_FIRST_TIMEOUT_US;
    unsigned int next = previous_us * 2;
    return next > DTLS_MAX_TIMEOUT_US ? DTLS_MAX_TIMEOUT_US : next;
}

tm__dtls *tm__dtls_new(SSL_CTX *ctx, bool server, const char *remote_fp, tm__dtls_send_fn send,
                       void *user)
{
    if (!ctx || !remote_fp || strlen(remote_fp) >= TM__DTLS_FP_MAX)
        return NULL;
    tm__dtls *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->send = send;
    d->user = user;
    strcpy(d->remote_fp, remote_fp);
    d->ssl = SSL_new(ctx);
    if (!d->ssl)
        goto fail;
    d->rbio = BIO_new(BIO_s_mem());
    BIO *wbio = BIO_new(out_method);
    if (!d->rbio || !wbio) {
        BIO_free(d->rbio);
        BIO_free(wbio);
        d->rbio = NULL;
        goto fail;
    }
    BIO_set_mem_eof_return(d->rbio, -1);
    BIO_set_data(wbio, d);
    SSL_set_bio(d->ssl, d->rbio, wbio); /* the SSL owns both now */
    /* WebRTC never renegotiates; refusing it keeps the handshake's epoch the
     * last, which tm__dtls_shed relies on. */
    SSL_set_options(d->ssl, SSL_OP_NO_QUERY_MTU | SSL_OP_NO_RENEGOTIATION);
    /* After the handshake only alerts pass through the SSL: give its record
     * buffers (about 34 KiB) back instead of holding them per peer. */
    SSL_set_mode(d->ssl, SSL_MODE_RELEASE_BUFFERS);
    SSL_set_mtu(d->ssl, DTLS_MTU);
    DTLS_set_link_mtu(d->ssl, DTLS_MTU);
    DTLS_set_timer_cb(d->ssl, timer_cb);
    if (server)
        SSL_set_accept_state(d->ssl);
    else
        SSL_set_connect_state(d->ssl);
    d->state = TM__DTLS_NEW;
    return d;
fail:
    tm__dtls_free(d);
    return NULL;
}

void tm__dtls_free(tm__dtls *d)
{
    if (!d)
        return;
    if (d->ssl)
        SSL_free(d->ssl);
    if (d->shed) {
        OPENSSL_cleanse(d->shed, sizeof *d->shed);
        free(d->shed);
    }
    free(d);
}

/* SHA-256 of the DER certificate as "AB:CD:...". */
static int cert_fp(X509 *cert, char *out, size_t outlen)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!X509_digest(cert, EVP_sha256(), md, &n) || n * 3 > outlen)
        return TM_EINVAL;
    static const char hex[] = "0123456789ABCDEF";
    for (unsigned int i = 0; i < n; i++) {
        out[i * 3] = hex[md[i] >> 4];
        out[i * 3 + 1] = hex[md[i] & 15];
        out[i * 3 + 2] = i + 1 < n ? ':' : '\0';
    }
    return 0;
}

int tm__dtls_cert_fingerprint(X509 *cert, char *out, size_t outlen)
{
    return cert_fp(cert, out, outlen);
}

static void step_handshake(tm__dtls *d)
{
    int r = SSL_do_handshake(d->ssl);
    if (r == 1) {
        X509 *peer = SSL_get1_peer_certificate(d->ssl);
        char fp[TM__DTLS_FP_MAX];
        bool ok = peer && cert_fp(peer, fp, sizeof fp) == 0 && strcasecmp(fp, d->remote_fp) == 0 &&
                  SSL_get_selected_srtp_profile(d->ssl) != NULL;
        X509_free(peer);
        d->state = ok ? TM__DTLS_CONNECTED : TM__DTLS_FAILED;
        return;
    }
    int e = SSL_get_error(d->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        d->state = TM__DTLS_CONNECTING;
    } else {
        d->state = TM__DTLS_FAILED;
    }
    ERR_clear_error();
}

int tm__dtls_start(tm__dtls *d)
{
    if (!d || d->state != TM__DTLS_NEW)
        return TM_EINVAL;
    if (!SSL_is_server(d->ssl))
        step_handshake(d);
    else
        d->state = TM__DTLS_CONNECTING;
    return d->state == TM__DTLS_FAILED ? TM_EIO : 0;
}

/* A plausible DTLS 1.x record sequence: every record header complete, content
 * type 20..23, major version 0xFE, length inside the datagram. */
static bool records_ok(const uint8_t *p, size_t len)
{
    if (len < 13)
        return false;
    while (len > 0) {
        if (len < 13 || p[0] < 20 || p[0] > 23 || p[1] != 0xFE)
            return false;
        size_t rl = ((size_t)p[11] << 8) | p[12];
        if (rl > len - 13)
            return false;
        p += 13 + rl;
        len -= 13 + rl;
    }
    return true;
}

/* GCM's record layout (RFC 5288): an 8-byte explicit nonce, the sealed
 * fragment, a 16-byte tag; an alert's fragment is 2 bytes. */
#define GCM_EXPLICIT_NONCE 8
#define GCM_TAG 16
#define ALERT_RECORD_LEN (GCM_EXPLICIT_NONCE + 2 + GCM_TAG)
#define ALERT_CLOSE_NOTIFY 0

/* Opens one sealed alert record (header at rec) into alert[2]; false when it
 * does not authenticate under the peer's key. */
static bool shed_open_alert(const shed_reader *r, const uint8_t *rec, uint8_t alert[2])
{
    uint8_t nonce[12], aad[13];
    memcpy(nonce, r->salt, 4);
    memcpy(nonce + 4, rec + 13, GCM_EXPLICIT_NONCE);
    /* seq_num (epoch and sequence), type, version, plaintext length. */
    memcpy(aad, rec + 3, 8);
    memcpy(aad + 8, rec, 3);
    aad[11] = 0;
    aad[12] = 2;
    const uint8_t *sealed = rec + 13 + GCM_EXPLICIT_NONCE;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0;
    bool ok = c && EVP_DecryptInit_ex(c, r->cipher, NULL, NULL, NULL) == 1 &&
              EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, sizeof nonce, NULL) == 1 &&
              EVP_DecryptInit_ex(c, NULL, NULL, r->key, nonce) == 1 &&
              EVP_DecryptUpdate(c, NULL, &n, aad, sizeof aad) == 1 &&
              EVP_DecryptUpdate(c, alert, &n, sealed, 2) == 1 && n == 2 &&
              EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, GCM_TAG, (void *)(sealed + 2)) == 1 &&
              EVP_DecryptFinal_ex(c, alert + 2, &n) == 1;
    EVP_CIPHER_CTX_free(c);
    ERR_clear_error();
    return ok;
}

/* A datagram after the shed: a close_notify of the peer's ends the session;
 * anything else (a stray handshake retransmission, application data, a
 * forgery) is dropped, as there is nothing left to answer it with. */
static bool shed_input(tm__dtls *d, const uint8_t *p, size_t len)
{
    bool any = false;
    while (len > 0) {
        size_t rl = ((size_t)p[11] << 8) | p[12];
        uint16_t epoch = (uint16_t)(p[3] << 8 | p[4]);
        uint8_t alert[2];
        if (p[0] == 21 && epoch == d->shed->epoch && rl == ALERT_RECORD_LEN &&
            shed_open_alert(d->shed, p, alert)) {
            any = true;
            if (alert[1] == ALERT_CLOSE_NOTIFY) {
                d->state = TM__DTLS_CLOSED;
                return true;
            }
        }
        p += 13 + rl;
        len -= 13 + rl;
    }
    return any;
}

tm__dtls_state tm__dtls_input(tm__dtls *d, const uint8_t *buf, size_t len, bool *dropped)
{
    bool drop = false;
    if (!d || !buf || d->state == TM__DTLS_FAILED || d->state == TM__DTLS_CLOSED ||
        !records_ok(buf, len) || len > 0x7fffffff) {
        drop = true;
        goto out;
    }
    if (d->shed) {
        drop = !shed_input(d, buf, len);
        goto out;
    }
    if (d->state == TM__DTLS_NEW)
        d->state = TM__DTLS_CONNECTING;
    (void)BIO_reset(d->rbio); /* stale bytes from a record OpenSSL rejected */
    if (BIO_write(d->rbio, buf, (int)len) != (int)len) {
        drop = true;
        goto out;
    }
    if (d->state == TM__DTLS_CONNECTING) {
        step_handshake(d);
    }
    if (d->state == TM__DTLS_CONNECTED) {
        /* Application data is not used by WebRTC media; reading processes
         * alerts (close_notify) and retransmitted handshake flights. */
        uint8_t sink[2048];
        for (;;) {
            int r = SSL_read(d->ssl, sink, sizeof sink);
            if (r > 0)
                continue;
            int e = SSL_get_error(d->ssl, r);
            if (e == SSL_ERROR_ZERO_RETURN)
                d->state = TM__DTLS_CLOSED;
            else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                drop = true; /* a bad record after the handshake does not end the session */
            break;
        }
        ERR_clear_error();
    }
out:
    if (dropped)
        *dropped = drop;
    return d ? d->state : TM__DTLS_FAILED;
}

tm__dtls_state tm__dtls_get_state(const tm__dtls *d)
{
    return d ? d->state : TM__DTLS_FAILED;
}

int64_t tm__dtls_timeout_ms(tm__dtls *d)
{
    struct timeval tv;
    if (!d || d->state != TM__DTLS_CONNECTING)
        return -1;
    if (DTLSv1_get_timeout(d->ssl, &tv) != 1)
        return -1;
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

tm__dtls_state tm__dtls_handle_timeout(tm__dtls *d)
{
    if (!d)
        return TM__DTLS_FAILED;
    if (d->state == TM__DTLS_CONNECTING && DTLSv1_handle_timeout(d->ssl) < 0) {
        d->state = TM__DTLS_FAILED;
        ERR_clear_error();
    }
    return d->state;
}

int tm__dtls_srtp_keys(tm__dtls *d, tm__srtp_keys *out)
{
    if (!d || !out || !d->ssl || d->state != TM__DTLS_CONNECTED)
        return TM_EINVAL;
    const SRTP_PROTECTION_PROFILE *p = SSL_get_selected_srtp_profile(d->ssl);
    if (!p)
        return TM_EINVAL;
    size_t klen = 16, slen;
    if (p->id == SRTP_AES128_CM_SHA1_80) {
        out->profile = TM__SRTP_AES128_CM_SHA1_80;
        slen = 14;
    } else if (p->id == SRTP_AEAD_AES_128_GCM) {
        out->profile = TM__SRTP_AEAD_AES_128_GCM;
        slen = 12;
    } else {
        return TM_EINVAL;
    }
    uint8_t mat[2 * (16 + 14)];
    size_t total = 2 * (klen + slen);
    static const char label[] = "EXTRACTOR-dtls_srtp";
    if (SSL_export_keying_material(d->ssl, mat, total, label, sizeof label - 1, NULL, 0, 0) != 1) {
        ERR_clear_error();
        return TM_EINVAL;
    }
    /* RFC 5764 4.2: client key, server key, client salt, server salt. */
    const uint8_t *ckey = mat, *skey = mat + klen, *csalt = mat + 2 * klen,
                  *ssalt = mat + 2 * klen + slen;
    bool server = SSL_is_server(d->ssl);
    uint8_t *loc = out->local, *rem = out->remote;
    memcpy(loc, server ? skey : ckey, klen);
    memcpy(loc + klen, server ? ssalt : csalt, slen);
    memcpy(rem, server ? ckey : skey, klen);
    memcpy(rem + klen, server ? csalt : ssalt, slen);
    out->len = klen + slen;
    OPENSSL_cleanse(mat, sizeof mat);
    return 0;
}

/* The peer's record key and implicit nonce from the session (RFC 5246 6.3:
 * key_block = PRF(master_secret, "key expansion", server_random +
 * client_random) = client key, server key, client IV, server IV; AEAD suites
 * have no MAC keys). */
static int shed_reader_make(SSL *ssl, shed_reader *r)
{
    const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
    int nid = c ? SSL_CIPHER_get_cipher_nid(c) : NID_undef;
    r->cipher = nid == NID_aes_128_gcm   ? EVP_aes_128_gcm()
                : nid == NID_aes_256_gcm ? EVP_aes_256_gcm()
                                         : NULL;
    const EVP_MD *md = c ? SSL_CIPHER_get_handshake_digest(c) : NULL;
    if (!r->cipher || !md)
        return TM_EUNSUPPORTED;
    size_t klen = (size_t)EVP_CIPHER_get_key_length(r->cipher);
    uint8_t master[SSL_MAX_MASTER_KEY_LENGTH];
    size_t mlen = SSL_SESSION_get_master_key(SSL_get_session(ssl), master, sizeof master);
    static const char label[] = "key expansion";
    uint8_t seed[sizeof label - 1 + 2 * SSL3_RANDOM_SIZE];
    memcpy(seed, label, sizeof label - 1);
    SSL_get_server_random(ssl, seed + sizeof label - 1, SSL3_RANDOM_SIZE);
    SSL_get_client_random(ssl, seed + sizeof label - 1 + SSL3_RANDOM_SIZE, SSL3_RANDOM_SIZE);
    uint8_t block[2 * 32 + 2 * 4];
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_TLS1_PRF, NULL);
    EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    EVP_KDF_free(kdf);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)EVP_MD_get0_name(md), 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SECRET, master, mlen),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED, seed, sizeof seed),
        OSSL_PARAM_construct_end()};
    bool ok = kctx && mlen > 0 && EVP_KDF_derive(kctx, block, 2 * klen + 8, params) == 1;
    EVP_KDF_CTX_free(kctx);
    if (ok) {
        bool server = SSL_is_server(ssl);
        memcpy(r->key, block + (server ? 0 : klen), klen);
        memcpy(r->salt, block + 2 * klen + (server ? 0 : 4), 4);
        r->epoch = 1; /* renegotiation is off: the handshake's epoch is the last */
    }
    OPENSSL_cleanse(master, sizeof master);
    OPENSSL_cleanse(block, sizeof block);
    ERR_clear_error();
    return ok ? 0 : TM_EIO;
}

int tm__dtls_shed(tm__dtls *d)
{
    if (!d || !d->ssl || d->state != TM__DTLS_CONNECTED)
        return TM_EINVAL;
    shed_reader *r = calloc(1, sizeof *r);
    if (!r)
        return TM_ENOMEM;
    int rc = shed_reader_make(d->ssl, r);
    if (rc != 0) {
        OPENSSL_cleanse(r, sizeof *r);
        free(r);
        return rc;
    }
    SSL_free(d->ssl);
    d->ssl = NULL;
    d->rbio = NULL;
    d->shed = r;
    return 0;
}

bool tm__dtls_is_shed(const tm__dtls *d)
{
    return d && d->shed;
}

int tm__dtls_close(tm__dtls *d)
{
    if (!d || !d->ssl || d->state != TM__DTLS_CONNECTED)
        return TM_EINVAL;
    (void)SSL_shutdown(d->ssl);
    ERR_clear_error();
    d->state = TM__DTLS_CLOSED;
    return 0;
}

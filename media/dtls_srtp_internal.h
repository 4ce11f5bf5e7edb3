/*
 * dtls_srtp_internal.h - the media core's DTLS endpoint and SRTP session, as
 * pure objects with no I/O and no GLib: the peer feeds received datagrams in and
 * gets datagrams to send out through a callback, so tests can pair two endpoints
 * over memory. Each object belongs to one thread (the peer's media worker).
 */
#ifndef TELEMED_MEDIA_DTLS_SRTP_INTERNAL_H
#define TELEMED_MEDIA_DTLS_SRTP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "telemed/common.h"

/* ---- DTLS (media/dtls.c) ---- */

typedef enum {
    TM__DTLS_NEW,
    TM__DTLS_CONNECTING,
    TM__DTLS_CONNECTED,
    TM__DTLS_FAILED,
    TM__DTLS_CLOSED
} tm__dtls_state;

typedef enum { TM__SRTP_AES128_CM_SHA1_80 = 1, TM__SRTP_AEAD_AES_128_GCM = 2 } tm__srtp_profile;

typedef struct tm__srtp_keys {
    tm__srtp_profile profile;
    uint8_t local[32], remote[32]; /* master key || master salt, as libsrtp wants them */
    size_t len;                    /* bytes used in local/remote (30 or 28) */
} tm__srtp_keys;

/* Bytes for "AB:CD:..." of a SHA-256 digest, incl. NUL. */
#define TM__DTLS_FP_MAX 100

typedef struct tm__dtls tm__dtls;
/* Called with each datagram to send; buf is borrowed for the call. */
typedef void (*tm__dtls_send_fn)(const uint8_t *buf, size_t len, void *user);

/* One context per media core: our certificate, SRTP profiles, DTLS 1.2, peer
 * certificate requested and checked by fingerprint after the handshake.
 * key/cert are borrowed (up-referenced). Returns NULL on failure. */
SSL_CTX *tm__dtls_ctx_new(EVP_PKEY *key, X509 *cert);

/* A DTLS endpoint. server=true waits for a ClientHello (our answers say
 * a=setup:passive); false sends one on tm__dtls_start. remote_fp is the peer's
 * a=fingerprint sha-256 value (copied). Returns NULL on failure. */
tm__dtls *tm__dtls_new(SSL_CTX *ctx, bool server, const char *remote_fp, tm__dtls_send_fn send,
                       void *user);
void tm__dtls_free(tm__dtls *d);
/* Client: sends the ClientHello. Server: nothing to do yet. */
int tm__dtls_start(tm__dtls *d);
/* One received datagram. Returns the state after it; garbage before or after the
 * handshake is dropped (returns the unchanged state, *dropped = true). */
tm__dtls_state tm__dtls_input(tm__dtls *d, const uint8_t *buf, size_t len, bool *dropped);
tm__dtls_state tm__dtls_get_state(const tm__dtls *d);
/* Milliseconds until tm__dtls_handle_timeout should run, or -1 for no timer. */
int64_t tm__dtls_timeout_ms(tm__dtls *d);
/* Retransmits a lost flight if due; returns the state (FAILED after too many). */
tm__dtls_state tm__dtls_handle_timeout(tm__dtls *d);
/* After CONNECTED: the negotiated profile and our/their keys (server side view if
 * the endpoint is a server). Returns 0 or TM_EINVAL. */
int tm__dtls_srtp_keys(tm__dtls *d, tm__srtp_keys *out);

/* After CONNECTED, once the peer is known to be done with the handshake (its
 * SRTP arrived) and could no longer be retransmitting to it: frees the SSL and
 * keeps the peer's record key, so a close_notify from the peer is still
 * authenticated and turns the state CLOSED; other records are dropped, and
 * tm__dtls_srtp_keys fails. A ClientHello for a new session is the caller's
 * (a new endpoint). Returns 0, TM_EINVAL (not connected, or already shed),
 * TM_EUNSUPPORTED (not an AES-GCM suite: the SSL stays) or TM_EIO/TM_ENOMEM. */
int tm__dtls_shed(tm__dtls *d);
bool tm__dtls_is_shed(const tm__dtls *d);
/* A connected endpoint's clean close: sends a close_notify and turns CLOSED.
 * Returns 0, or TM_EINVAL when not connected or shed (nothing is sent). */
int tm__dtls_close(tm__dtls *d);

/* SHA-256 fingerprint of cert as "AB:CD:..." into out. Returns 0 or TM_EINVAL. */
int tm__dtls_cert_fingerprint(X509 *cert, char *out, size_t outlen);

/* ---- SRTP (media/srtp.c) ---- */

typedef struct tm__srtp tm__srtp;
/* Room srtp_protect may add; every buffer passed to protect needs len + this. */
#define TM__SRTP_MAX_TRAILER 148
/* Which ciphers sessions made from now on use: ours (the default) or, with
 * library = true, libsrtp's own. Process-wide. Returns 0, or TM_EUNSUPPORTED
 * when some of ours were refused (libsrtp's stay for those). Any thread. */
int tm__srtp_use_library_ciphers(bool library);
/* Inbound and outbound sessions from the exported keys. NULL on failure. */
tm__srtp *tm__srtp_new(const tm__srtp_keys *keys);
void tm__srtp_free(tm__srtp *s);
/* In place; *len is updated. Return 0 or TM_EINVAL (auth/replay failure). */
int tm__srtp_unprotect_rtp(tm__srtp *s, uint8_t *buf, size_t *len);
int tm__srtp_unprotect_rtcp(tm__srtp *s, uint8_t *buf, size_t *len);
/* In place; buf must have TM__SRTP_MAX_TRAILER bytes of room after *len. */
int tm__srtp_protect_rtp(tm__srtp *s, uint8_t *buf, size_t *len);
int tm__srtp_protect_rtcp(tm__srtp *s, uint8_t *buf, size_t *len);

/* ---- SRTP crypto over Nettle and OpenSSL EVP (media/srtp_crypto.c) ---- */

/* Replaces libsrtp's AES-ICM (128/192/256), AES-GCM (128/256) and HMAC-SHA1
 * with versions over Nettle (AES-ICM, HMAC) and OpenSSL 3 EVP (AES-GCM) that
 * keep one context per cipher/auth object
 * (Debian's NSS-backed libsrtp2 builds a PK11 context per packet). Call once,
 * after srtp_init, before sessions are made; sessions made earlier keep what
 * they have. libsrtp self-tests each replacement and keeps its original for an
 * id whose replacement fails. Returns 0, or TM_EUNSUPPORTED with *failed (may
 * be NULL) naming the first type that stayed libsrtp's. */
int tm__srtp_crypto_install(const char **failed);
/* Puts libsrtp's own types back (the stock path); sessions made earlier keep
 * ours. Returns 0 or TM_EUNSUPPORTED. Call under srtp.c's lock. */
int tm__srtp_crypto_restore(void);
/* For tests: our cipher type for a srtp_cipher_type_id_t (NULL if none), our
 * HMAC-SHA1 type, and how many of our cipher/auth objects are alive. */
struct srtp_cipher_type_t;
struct srtp_auth_type_t;
const struct srtp_cipher_type_t *tm__srtp_crypto_cipher_type(int id);
const struct srtp_auth_type_t *tm__srtp_crypto_hmac_type(void);
int tm__srtp_crypto_live_objects(void);

#endif

/*
 * srtp.c - SRTP/SRTCP sessions (RFC 3711) over libsrtp2 for one peer: an
 * inbound session keyed with the remote DTLS-exported key and an outbound one
 * keyed with ours. Profiles AES_CM_128_HMAC_SHA1_80 and AEAD_AES_128_GCM.
 *
 * Owns: two srtp_t. Runs on the owning peer's media worker. srtp_init runs once
 * per process (g_once), from whichever thread gets there first, and right after
 * it our ciphers (Nettle's AES-CM and HMAC-SHA1, OpenSSL's AES-GCM:
 * media/srtp_crypto.c) replace libsrtp's NSS ones, unless the media core asked
 * for libsrtp's own (tm__srtp_use_library_ciphers, the stock path).
 */
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <srtp2/srtp.h>

#include "dtls_srtp_internal.h"
#include "telemed/log.h"

struct tm__srtp {
    srtp_t in, out;
};

static gsize srtp_inited;
static GMutex cipher_lock;  /* choosing the cipher types */
static int ciphers_rc;      /* under cipher_lock: the last choice's result */
static bool library_chosen; /* under cipher_lock: libsrtp's own types are in */

/* Debian's libsrtp2 does its crypto through NSS with a new PK11 context per
 * packet; ours keep one context per session (tests/bench/README.md). A
 * replacement libsrtp refuses leaves its original in place: slower, correct. */
static int install_ours(void)
{
    const char *failed = NULL;
    int rc = tm__srtp_crypto_install(&failed);
    if (rc != 0)
        tm_warn("media.srtp_crypto", "kept=libsrtp type=\"%s\"", failed ? failed : "?");
    return rc;
}

static bool ensure_init(void)
{
    static bool ok;
    if (g_once_init_enter(&srtp_inited)) {
        /* Someone else in the process (GStreamer's srtp plugin) may have
         * initialised libsrtp already; it then refuses to load its ciphers
         * twice with bad_param, and the kernel is ready all the same. */
        srtp_err_status_t e = srtp_init();
        ok = e == srtp_err_status_ok || e == srtp_err_status_bad_param;
        if (ok) {
            g_mutex_lock(&cipher_lock);
            ciphers_rc = install_ours();
            g_mutex_unlock(&cipher_lock);
        }
        g_once_init_leave(&srtp_inited, 1);
    }
    return ok;
}

int tm__srtp_use_library_ciphers(bool library)
{
    if (!ensure_init())
        return TM_EIO;
    g_mutex_lock(&cipher_lock);
    /* Only a change touches libsrtp's tables, which sessions being made
     * elsewhere in the process read. */
    if (library != library_chosen) {
        ciphers_rc = library ? tm__srtp_crypto_restore() : install_ours();
        library_chosen = library;
    }
    int rc = ciphers_rc;
    g_mutex_unlock(&cipher_lock);
    return rc;
}

static void set_policy(srtp_policy_t *p, tm__srtp_profile profile, const uint8_t *key, bool inbound)
{
    memset(p, 0, sizeof *p);
    if (profile == TM__SRTP_AEAD_AES_128_GCM) {
        srtp_crypto_policy_set_aes_gcm_128_16_auth(&p->rtp);
        srtp_crypto_policy_set_aes_gcm_128_16_auth(&p->rtcp);
    } else {
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&p->rtp);
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&p->rtcp);
    }
    p->ssrc.type = inbound ? ssrc_any_inbound : ssrc_any_outbound;
    p->key = (unsigned char *)key;
    /* Video bursts reorder; a 1024 window keeps late packets instead of
     * counting them as replays. */
    p->window_size = 1024;
    /* NACK answers re-send a packet with the same sequence number. */
    p->allow_repeat_tx = 1;
    p->next = NULL;
}

tm__srtp *tm__srtp_new(const tm__srtp_keys *keys)
{
    if (!keys || !ensure_init())
        return NULL;
    if (keys->profile != TM__SRTP_AES128_CM_SHA1_80 && keys->profile != TM__SRTP_AEAD_AES_128_GCM)
        return NULL;
    tm__srtp *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    srtp_policy_t pin, pout;
    set_policy(&pin, keys->profile, keys->remote, true);
    set_policy(&pout, keys->profile, keys->local, false);
    if (srtp_create(&s->in, &pin) != srtp_err_status_ok) {
        s->in = NULL;
        goto fail;
    }
    if (srtp_create(&s->out, &pout) != srtp_err_status_ok) {
        s->out = NULL;
        goto fail;
    }
    return s;
fail:
    tm__srtp_free(s);
    return NULL;
}

void tm__srtp_free(tm__srtp *s)
{
    if (!s)
        return;
    if (s->in)
        srtp_dealloc(s->in);
    if (s->out)
        srtp_dealloc(s->out);
    free(s);
}

int tm__srtp_unprotect_rtp(tm__srtp *s, uint8_t *buf, size_t *len)
{
    int n = (int)*len;
    if (*len < 12 || *len > 65535 || srtp_unprotect(s->in, buf, &n) != srtp_err_status_ok)
        return TM_EINVAL;
    *len = (size_t)n;
    return 0;
}

int tm__srtp_unprotect_rtcp(tm__srtp *s, uint8_t *buf, size_t *len)
{
    int n = (int)*len;
    if (*len < 8 || *len > 65535 || srtp_unprotect_rtcp(s->in, buf, &n) != srtp_err_status_ok)
        return TM_EINVAL;
    *len = (size_t)n;
    return 0;
}

int tm__srtp_protect_rtp(tm__srtp *s, uint8_t *buf, size_t *len)
{
    int n = (int)*len;
    if (*len < 12 || *len > 65535 || srtp_protect(s->out, buf, &n) != srtp_err_status_ok)
        return TM_EINVAL;
    *len = (size_t)n;
    return 0;
}

int tm__srtp_protect_rtcp(tm__srtp *s, uint8_t *buf, size_t *len)
{
    int n = (int)*len;
    if (*len < 8 || *len > 65535 || srtp_protect_rtcp(s->out, buf, &n) != srtp_err_status_ok)
        return TM_EINVAL;
    *len = (size_t)n;
    return 0;
}

/*
 * fuzz_media_datagram.c - libFuzzer target for a datagram as the media
 * socket sees it: the RFC 7983 first-byte demux, then what each kind meets
 * on the receive path. STUN goes to libnice's own parser and validator (as
 * its agent does with every check), DTLS to a fresh server endpoint of ours
 * (media/dtls.c over OpenSSL), RTP and RTCP through SRTP unprotect with a
 * fixed session key (media/srtp.c over libsrtp) and then the parsers the
 * forwarder runs. The parsers also see the raw bytes, as if unprotect had
 * passed, since a fuzzer cannot forge the authentication tag.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stun/stunagent.h>
#include <stun/stunmessage.h>

#include "dtls_srtp_internal.h"
#include "rtcp.h"
#include "rtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_DGRAM 1500

static SSL_CTX *dtls_ctx;
static tm__srtp *srtp;
static StunAgent stun_agent;
static const uint16_t known_attrs[] = {
    STUN_ATTRIBUTE_USERNAME,        STUN_ATTRIBUTE_MESSAGE_INTEGRITY,
    STUN_ATTRIBUTE_FINGERPRINT,     STUN_ATTRIBUTE_PRIORITY,
    STUN_ATTRIBUTE_USE_CANDIDATE,   STUN_ATTRIBUTE_ICE_CONTROLLED,
    STUN_ATTRIBUTE_ICE_CONTROLLING, 0};

static X509 *self_signed(EVP_PKEY *key)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"fuzz", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_sign(x, key, EVP_sha256());
    return x;
}

static void setup(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *cert = key ? self_signed(key) : NULL;
    dtls_ctx = cert ? tm__dtls_ctx_new(key, cert) : NULL;
    X509_free(cert);
    EVP_PKEY_free(key);
    tm__srtp_keys keys = {.profile = TM__SRTP_AES128_CM_SHA1_80, .len = 30};
    for (int i = 0; i < 30; i++) {
        keys.local[i] = (uint8_t)i;
        keys.remote[i] = (uint8_t)(0x80 + i);
    }
    srtp = tm__srtp_new(&keys);
    if (!dtls_ctx || !srtp)
        abort();
    stun_agent_init(&stun_agent, known_attrs, STUN_COMPATIBILITY_RFC5389,
                    STUN_AGENT_USAGE_SHORT_TERM_CREDENTIALS | STUN_AGENT_USAGE_USE_FINGERPRINT);
}

static void discard(const uint8_t *buf, size_t len, void *user)
{
    (void)buf, (void)len, (void)user;
}

static void stun(const uint8_t *data, size_t size)
{
    if (stun_message_validate_buffer_length(data, size, true) <= 0)
        return;
    StunMessage msg;
    StunValidationStatus st;
    static uint8_t pwd[] = "fuzz-ice-password-0123";
    StunDefaultValidaterData v[] = {{(uint8_t *)"fuzz:peer", 9, pwd, sizeof(pwd) - 1},
                                    {NULL, 0, NULL, 0}};
    st = stun_agent_validate(&stun_agent, &msg, data, size, stun_agent_default_validater, v);
    if (st != STUN_VALIDATION_SUCCESS && st != STUN_VALIDATION_UNAUTHORIZED_BAD_REQUEST)
        return;
    uint32_t prio;
    uint64_t tie;
    uint16_t ulen = 0;
    stun_message_find32(&msg, STUN_ATTRIBUTE_PRIORITY, &prio);
    stun_message_find64(&msg, STUN_ATTRIBUTE_ICE_CONTROLLING, &tie);
    stun_message_find(&msg, STUN_ATTRIBUTE_USERNAME, &ulen);
    stun_message_has_attribute(&msg, STUN_ATTRIBUTE_USE_CANDIDATE);
}

static void dtls(const uint8_t *data, size_t size)
{
    tm__dtls *d = tm__dtls_new(dtls_ctx, true, "00:11", discard, NULL);
    if (!d)
        return;
    bool dropped = false;
    tm__dtls_input(d, data, size, &dropped);
    tm__dtls_free(d);
}

static void rtp(uint8_t *buf, size_t len)
{
    tm_rtp_header h;
    if (tm_rtp_parse(buf, len, &h) == 0 && h.payload_offset + h.payload_len > len)
        abort();
}

static void rtcp(const uint8_t *buf, size_t len)
{
    tm_rtcp_iter it;
    tm_rtcp_pkt p;
    tm_rtcp_iter_init(&it, buf, len);
    while (tm_rtcp_next(&it, &p) == 1) {
        tm_rtcp_sr sr;
        tm_rtcp_rr rr;
        uint16_t seqs[64];
        uint32_t ms;
        if (p.offset + p.len > len)
            abort();
        tm_rtcp_parse_sr(&p, &sr);
        tm_rtcp_parse_rr(&p, &rr);
        tm_rtcp_parse_nack(&p, &ms, seqs, 64);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!srtp)
        setup();
    if (size > MAX_DGRAM)
        return 0;
    /* unprotect works in place: an exact-size copy shows overruns */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    size_t len = size;
    switch (tm_packet_kind(data, size)) {
    case TM_PKT_STUN:
        stun(buf, size);
        break;
    case TM_PKT_DTLS:
        dtls(buf, size);
        break;
    case TM_PKT_RTP:
        if (tm__srtp_unprotect_rtp(srtp, buf, &len) == 0) {
            if (len > size)
                abort();
            rtp(buf, len);
        }
        memcpy(buf, data, size);
        rtp(buf, size);
        break;
    case TM_PKT_RTCP:
        if (tm__srtp_unprotect_rtcp(srtp, buf, &len) == 0) {
            if (len > size)
                abort();
            rtcp(buf, len);
        }
        rtcp(data, size);
        break;
    case TM_PKT_UNKNOWN:
        break;
    }
    free(buf);
    return 0;
}

/*
 * certs.h - the server's own X.509 material: a self-signed ECDSA P-256
 * certificate for HTTPS/WSS and for DTLS (whose fingerprint goes into SDP).
 *
 * Stateless helpers; safe from any thread. Nothing here logs.
 */
#ifndef TELEMED_CERTS_H
#define TELEMED_CERTS_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "telemed/common.h"

/* Length of a SHA-256 fingerprint string incl. NUL: 32 "XX" pairs, 31 colons. */
#define TM_CERTS_FINGERPRINT_LEN 96

/* Makes a new ECDSA P-256 key and a self-signed X.509 v3 certificate for it:
 * SHA-256 signature, random positive 128-bit serial, valid from now-1day to
 * now+days, subject/issuer CN=common_name, subjectAltName DNS:localhost,
 * IP:127.0.0.1, IP:::1 (plus DNS:common_name when it is a host name), serverAuth
 * and clientAuth. On 0 the caller owns *key_out (EVP_PKEY_free) and *cert_out
 * (X509_free). Returns 0, TM_EINVAL (bad arguments, days < 1) or TM_ENOMEM. */
int tm_certs_make_self_signed(const char *common_name, int days, EVP_PKEY **key_out,
                              X509 **cert_out);

/* If cert_path and key_path both exist, leaves them (*created = 0). Otherwise
 * writes a new self-signed pair valid for 825 days, each file written atomically
 * (temp file in the same directory, fsync, rename); the key file has mode 0600,
 * the certificate 0644 (*created = 1). created may be NULL. Returns 0, TM_EINVAL
 * or TM_EIO. */
int tm_certs_ensure_files(const char *cert_path, const char *key_path, const char *common_name,
                          int *created);

/* Writes the "AB:CD:..." uppercase SHA-256 fingerprint of the DER certificate (the
 * form of SDP a=fingerprint) into out; outlen >= TM_CERTS_FINGERPRINT_LEN.
 * Returns 0, TM_EINVAL or TM_ETOOBIG. */
int tm_certs_fingerprint_sha256(X509 *cert, char *out, size_t outlen);

#endif

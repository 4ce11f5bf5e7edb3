/*
 * certs.c - the server's self-signed ECDSA P-256 certificate: made on first
 * start when none is configured, used for HTTPS/WSS and for DTLS.
 *
 * Owns nothing past a call: keys and certificates go to the caller, files go to
 * disk. Runs on the control loop at start-up (file writes block). Files are
 * written to a temporary name in the same directory, fsync'd and renamed, so a
 * crash never leaves a half-written key where the server would load it.
 */
#include "telemed/certs.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SERIAL_BYTES 16
#define MAX_DAYS 36500
#define ENSURE_DAYS 825 /* the longest validity browsers have accepted for TLS server certs */

/* A CN that may also stand in subjectAltName as a DNS name. */
static int is_hostname(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253 || strcmp(s, "localhost") == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

static int add_ext(X509 *cert, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
    if (!ext)
        return TM_ENOMEM;
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok == 1 ? 0 : TM_ENOMEM;
}

static int set_random_serial(X509 *cert)
{
    unsigned char raw[SERIAL_BYTES];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return TM_ENOMEM;
    /* RFC 5280: positive and non-zero. */
    raw[0] = (unsigned char)((raw[0] & 0x7f) | 0x40);
    BIGNUM *bn = BN_bin2bn(raw, sizeof raw, NULL);
    int rc = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) ? 0 : TM_ENOMEM;
    BN_free(bn);
    return rc;
}

int tm_certs_make_self_signed(const char *common_name, int days, EVP_PKEY **key_out,
                              X509 **cert_out)
{
    int rc = TM_EINVAL;
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    char san[300];

    if (key_out)
        *key_out = NULL;
    if (cert_out)
        *cert_out = NULL;
    if (!common_name || !common_name[0] || strlen(common_name) > 64 || days < 1 ||
        days > MAX_DAYS || !key_out || !cert_out)
        return TM_EINVAL;

    rc = TM_ENOMEM;
    key = EVP_EC_gen("P-256");
    cert = X509_new();
    if (!key || !cert)
        goto fail;
    if (X509_set_version(cert, X509_VERSION_3) != 1 || set_random_serial(cert) < 0)
        goto fail;
    if (!X509_gmtime_adj(X509_getm_notBefore(cert), -86400L) ||
        !X509_gmtime_adj(X509_getm_notAfter(cert), (long)days * 86400L))
        goto fail;
    X509_NAME *name = X509_get_subject_name(cert);
    if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)common_name,
                                   -1, -1, 0) != 1 ||
        X509_set_issuer_name(cert, name) != 1 || X509_set_pubkey(cert, key) != 1)
        goto fail;

    snprintf(san, sizeof san, "DNS:localhost,IP:127.0.0.1,IP:::1%s%s",
             is_hostname(common_name) ? ",DNS:" : "", is_hostname(common_name) ? common_name : "");
    if (add_ext(cert, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
        add_ext(cert, NID_key_usage, "critical,digitalSignature,keyAgreement") < 0 ||
        add_ext(cert, NID_ext_key_usage, "serverAuth,clientAuth") < 0 ||
        add_ext(cert, NID_subject_key_identifier, "hash") < 0 ||
        add_ext(cert, NID_subject_alt_name, san) < 0)
        goto fail;
    if (X509_sign(cert, key, EVP_sha256()) <= 0)
        goto fail;

    *key_out = key;
    *cert_out = cert;
    return 0;
fail:
    ERR_clear_error();
    EVP_PKEY_free(key);
    X509_free(cert);
    return rc;
}

typedef int (*pem_writer)(BIO *bio, void *obj);

static int write_key(BIO *bio, void *obj)
{
    return PEM_write_bio_PrivateKey(bio, obj, NULL, NULL, 0, NULL, NULL) == 1 ? 0 : TM_EIO;
}

static int write_cert(BIO *bio, void *obj)
{
    return PEM_write_bio_X509(bio, obj) == 1 ? 0 : TM_EIO;
}

/* Writes path atomically with the given mode: temp file, fsync, rename. */
static int write_atomic(const char *path, mode_t mode, pem_writer writer, void *obj)
{
    int rc = TM_EIO, fd = -1;
    BIO *bio = NULL;
    size_t n = strlen(path);
    char *tmp = malloc(n + sizeof ".XXXXXX");
    if (!tmp)
        return TM_ENOMEM;
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".XXXXXX", sizeof ".XXXXXX");
    /* mkstemp creates the file 0600, so the key is never readable by others. */
    fd = mkstemp(tmp);
    if (fd < 0) {
        free(tmp);
        return TM_EIO;
    }
    if (fchmod(fd, mode) != 0)
        goto fail;
    bio = BIO_new_fd(fd, BIO_NOCLOSE);
    if (!bio || writer(bio, obj) < 0 || BIO_flush(bio) != 1)
        goto fail;
    if (fsync(fd) != 0)
        goto fail;
    int cr = close(fd);
    fd = -1;
    if (cr != 0 || rename(tmp, path) != 0)
        goto fail;
    rc = 0;
fail:
    BIO_free(bio);
    if (fd >= 0)
        close(fd);
    if (rc < 0)
        unlink(tmp);
    free(tmp);
    ERR_clear_error();
    return rc;
}

/* So the rename survives a power cut, as far as the filesystem allows. */
static void sync_parent_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return;
    int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    free(copy);
}

int tm_certs_ensure_files(const char *cert_path, const char *key_path, const char *common_name,
                          int *created)
{
    struct stat st;
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;

    if (created)
        *created = 0;
    if (!cert_path || !key_path || !cert_path[0] || !key_path[0] ||
        strcmp(cert_path, key_path) == 0)
        return TM_EINVAL;
    if (stat(cert_path, &st) == 0 && stat(key_path, &st) == 0)
        return 0;

    int rc = tm_certs_make_self_signed(common_name ? common_name : "localhost", ENSURE_DAYS, &key,
                                       &cert);
    if (rc < 0)
        return rc;
    /* Key first: a crash between the two leaves no certificate without its key. */
    rc = write_atomic(key_path, 0600, write_key, key);
    if (rc == 0)
        rc = write_atomic(cert_path, 0644, write_cert, cert);
    if (rc == 0) {
        sync_parent_dir(key_path);
        sync_parent_dir(cert_path);
        if (created)
            *created = 1;
    }
    EVP_PKEY_free(key);
    X509_free(cert);
    return rc;
}

int tm_certs_fingerprint_sha256(X509 *cert, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (!cert || !out)
        return TM_EINVAL;
    if (outlen < TM_CERTS_FINGERPRINT_LEN)
        return TM_ETOOBIG;
    if (X509_digest(cert, EVP_sha256(), md, &mdlen) != 1 || mdlen != 32) {
        ERR_clear_error();
        return TM_EINVAL;
    }
    size_t o = 0;
    for (unsigned int i = 0; i < mdlen; i++) {
        if (i)
            out[o++] = ':';
        out[o++] = hex[md[i] >> 4];
        out[o++] = hex[md[i] & 15];
    }
    out[o] = '\0';
    return 0;
}

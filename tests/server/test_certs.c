/*
 * test_certs.c - the self-signed server certificate: what it contains, the
 * files ensure_files leaves on disk (modes, idempotence), the fingerprint
 * format, and that the pair really serves a TLS handshake.
 */
#include <ctype.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "telemed/certs.h"
#include "tm_test.h"

static char tmpdir[] = "/tmp/test_certs.XXXXXX";

static X509 *load_cert(const char *path)
{
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    X509 *c = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    CHECK(c != NULL);
    return c;
}

static EVP_PKEY *load_key(const char *path)
{
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    CHECK(k != NULL);
    return k;
}

static void check_fingerprint_format(const char *fp)
{
    CHECK_EQ_INT(strlen(fp), 95);
    for (int i = 0; i < 32; i++) {
        const char *p = fp + i * 3;
        CHECK(isxdigit((unsigned char)p[0]) && !islower((unsigned char)p[0]));
        CHECK(isxdigit((unsigned char)p[1]) && !islower((unsigned char)p[1]));
        CHECK(p[2] == (i == 31 ? '\0' : ':'));
    }
}

static void test_self_signed_contents(void)
{
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    CHECK_EQ_INT(tm_certs_make_self_signed("telemed.test", 10, &key, &cert), 0);
    CHECK(EVP_PKEY_is_a(key, "EC"));
    char group[32];
    CHECK(EVP_PKEY_get_group_name(key, group, sizeof group, NULL) == 1);
    CHECK_STR(group, "prime256v1");
    CHECK(X509_check_private_key(cert, key) == 1);

    /* self-signed: its own key verifies it; SHA-256 with ECDSA */
    EVP_PKEY *pub = X509_get0_pubkey(cert);
    CHECK(X509_verify(cert, pub) == 1);
    CHECK_EQ_INT(X509_get_signature_nid(cert), NID_ecdsa_with_SHA256);
    CHECK_EQ_INT(X509_get_version(cert), X509_VERSION_3);

    char cn[128];
    CHECK(X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn) >
          0);
    CHECK_STR(cn, "telemed.test");
    CHECK(X509_NAME_cmp(X509_get_subject_name(cert), X509_get_issuer_name(cert)) == 0);

    /* validity: from about a day ago until about `days` ahead */
    time_t now = time(NULL);
    time_t t = now - 86400 + 300;
    CHECK(X509_cmp_time(X509_get0_notBefore(cert), &t) < 0);
    t = now - 86400 - 300;
    CHECK(X509_cmp_time(X509_get0_notBefore(cert), &t) > 0);
    t = now + 10 * 86400 - 300;
    CHECK(X509_cmp_time(X509_get0_notAfter(cert), &t) > 0);
    t = now + 10 * 86400 + 300;
    CHECK(X509_cmp_time(X509_get0_notAfter(cert), &t) < 0);

    /* positive serial of real size */
    BIGNUM *serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
    CHECK(serial && !BN_is_negative(serial) && BN_num_bits(serial) > 100);
    BN_free(serial);

    /* the names browsers and tests connect to */
    CHECK_EQ_INT(X509_check_host(cert, "localhost", 0, 0, NULL), 1);
    CHECK_EQ_INT(X509_check_host(cert, "telemed.test", 0, 0, NULL), 1);
    CHECK_EQ_INT(X509_check_host(cert, "example.org", 0, 0, NULL), 0);
    CHECK_EQ_INT(X509_check_ip_asc(cert, "127.0.0.1", 0), 1);
    CHECK_EQ_INT(X509_check_ip_asc(cert, "::1", 0), 1);
    CHECK_EQ_INT(X509_check_ip_asc(cert, "10.0.0.1", 0), 0);
    CHECK(X509_check_purpose(cert, X509_PURPOSE_SSL_SERVER, 0) == 1);
    CHECK(X509_check_ca(cert) == 0);

    /* two certs never share a serial or key */
    EVP_PKEY *key2 = NULL;
    X509 *cert2 = NULL;
    CHECK_EQ_INT(tm_certs_make_self_signed("telemed.test", 10, &key2, &cert2), 0);
    CHECK(ASN1_INTEGER_cmp(X509_get0_serialNumber(cert), X509_get0_serialNumber(cert2)) != 0);
    CHECK(EVP_PKEY_eq(key, key2) != 1);
    EVP_PKEY_free(key2);
    X509_free(cert2);
    EVP_PKEY_free(key);
    X509_free(cert);

    CHECK_EQ_INT(tm_certs_make_self_signed("x", 0, &key, &cert), TM_EINVAL);
    CHECK(key == NULL && cert == NULL);
    CHECK_EQ_INT(tm_certs_make_self_signed("", 10, &key, &cert), TM_EINVAL);
    CHECK_EQ_INT(tm_certs_make_self_signed(NULL, 10, &key, &cert), TM_EINVAL);
}

static void test_fingerprint(void)
{
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    char fp[TM_CERTS_FINGERPRINT_LEN], fp2[TM_CERTS_FINGERPRINT_LEN];
    CHECK_EQ_INT(tm_certs_make_self_signed("localhost", 1, &key, &cert), 0);
    CHECK_EQ_INT(tm_certs_fingerprint_sha256(cert, fp, sizeof fp), 0);
    check_fingerprint_format(fp);

    /* independently: SHA-256 over the DER encoding */
    unsigned char *der = NULL;
    int dl = i2d_X509(cert, &der);
    CHECK(dl > 0);
    unsigned char md[32];
    unsigned int ml = 0;
    CHECK(EVP_Digest(der, (size_t)dl, md, &ml, EVP_sha256(), NULL) == 1);
    OPENSSL_free(der);
    for (unsigned i = 0; i < 32; i++)
        snprintf(fp2 + i * 3, 4, i == 31 ? "%02X" : "%02X:", md[i]);
    CHECK_STR(fp, fp2);

    CHECK_EQ_INT(tm_certs_fingerprint_sha256(cert, fp, 95), TM_ETOOBIG);
    CHECK_EQ_INT(tm_certs_fingerprint_sha256(NULL, fp, sizeof fp), TM_EINVAL);
    EVP_PKEY_free(key);
    X509_free(cert);
}

static void test_ensure_files(void)
{
    char cert_path[300], key_path[300], fp1[96], fp2[96];
    struct stat st, st_key, st_cert;
    int created = -1;
    snprintf(cert_path, sizeof cert_path, "%s/server.crt", tmpdir);
    snprintf(key_path, sizeof key_path, "%s/server.key", tmpdir);

    mode_t old = umask(0);
    CHECK_EQ_INT(tm_certs_ensure_files(cert_path, key_path, "localhost", &created), 0);
    umask(old);
    CHECK_EQ_INT(created, 1);
    CHECK(stat(key_path, &st_key) == 0 && S_ISREG(st_key.st_mode));
    CHECK_EQ_INT(st_key.st_mode & 0777, 0600);
    CHECK(stat(cert_path, &st_cert) == 0 && S_ISREG(st_cert.st_mode));
    CHECK_EQ_INT(st_cert.st_mode & 0777, 0644);

    X509 *cert = load_cert(cert_path);
    EVP_PKEY *key = load_key(key_path);
    CHECK(X509_check_private_key(cert, key) == 1);
    CHECK_EQ_INT(tm_certs_fingerprint_sha256(cert, fp1, sizeof fp1), 0);
    check_fingerprint_format(fp1);
    X509_free(cert);
    EVP_PKEY_free(key);

    /* no temp files left behind */
    char cmd[400];
    snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | wc -l) -eq 2", tmpdir);
    CHECK(system(cmd) == 0);

    /* a second call leaves both files exactly as they were */
    CHECK_EQ_INT(tm_certs_ensure_files(cert_path, key_path, "localhost", &created), 0);
    CHECK_EQ_INT(created, 0);
    CHECK(stat(key_path, &st) == 0);
    CHECK(st.st_ino == st_key.st_ino && st.st_mtim.tv_sec == st_key.st_mtim.tv_sec &&
          st.st_mtim.tv_nsec == st_key.st_mtim.tv_nsec);
    CHECK(stat(cert_path, &st) == 0);
    CHECK(st.st_ino == st_cert.st_ino && st.st_size == st_cert.st_size);
    cert = load_cert(cert_path);
    CHECK_EQ_INT(tm_certs_fingerprint_sha256(cert, fp2, sizeof fp2), 0);
    CHECK_STR(fp1, fp2);
    X509_free(cert);

    /* a lost key means a new pair: the old certificate is useless without it */
    CHECK(unlink(key_path) == 0);
    CHECK_EQ_INT(tm_certs_ensure_files(cert_path, key_path, "localhost", NULL), 0);
    cert = load_cert(cert_path);
    key = load_key(key_path);
    CHECK(X509_check_private_key(cert, key) == 1);
    CHECK_EQ_INT(tm_certs_fingerprint_sha256(cert, fp2, sizeof fp2), 0);
    CHECK(strcmp(fp1, fp2) != 0);
    X509_free(cert);
    EVP_PKEY_free(key);

    /* unwritable location, bad arguments */
    CHECK_EQ_INT(tm_certs_ensure_files("/nonexistent/dir/a.crt", "/nonexistent/dir/a.key",
                                       "localhost", &created),
                 TM_EIO);
    CHECK_EQ_INT(created, 0);
    CHECK_EQ_INT(tm_certs_ensure_files(cert_path, cert_path, "localhost", NULL), TM_EINVAL);
    CHECK_EQ_INT(tm_certs_ensure_files(NULL, key_path, "localhost", NULL), TM_EINVAL);
}

/* The written pair serves a real TLS 1.2/1.3 handshake over a socket pair,
 * with the client verifying the certificate for "localhost" against itself. */
static void test_files_serve_tls(void)
{
    char cert_path[300], key_path[300];
    snprintf(cert_path, sizeof cert_path, "%s/server.crt", tmpdir);
    snprintf(key_path, sizeof key_path, "%s/server.key", tmpdir);

    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    CHECK(sctx && cctx);
    CHECK(SSL_CTX_use_certificate_file(sctx, cert_path, SSL_FILETYPE_PEM) == 1);
    CHECK(SSL_CTX_use_PrivateKey_file(sctx, key_path, SSL_FILETYPE_PEM) == 1);
    CHECK(SSL_CTX_load_verify_locations(cctx, cert_path, NULL) == 1);
    SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);

    SSL *s = SSL_new(sctx), *c = SSL_new(cctx);
    CHECK(SSL_set1_host(c, "localhost") == 1);
    BIO *bs = NULL, *bc = NULL;
    CHECK(BIO_new_bio_pair(&bs, 0, &bc, 0) == 1);
    SSL_set_bio(s, bs, bs);
    SSL_set_bio(c, bc, bc);
    SSL_set_accept_state(s);
    SSL_set_connect_state(c);
    int sdone = 0, cdone = 0;
    for (int i = 0; i < 100 && !(sdone && cdone); i++) {
        if (!cdone) {
            int r = SSL_do_handshake(c);
            if (r == 1)
                cdone = 1;
            else
                CHECK(SSL_get_error(c, r) == SSL_ERROR_WANT_READ);
        }
        if (!sdone) {
            int r = SSL_do_handshake(s);
            if (r == 1)
                sdone = 1;
            else
                CHECK(SSL_get_error(s, r) == SSL_ERROR_WANT_READ);
        }
    }
    CHECK(sdone && cdone);
    CHECK_EQ_INT(SSL_get_verify_result(c), X509_V_OK);
    SSL_free(s);
    SSL_free(c);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
}

int main(void)
{
    CHECK(mkdtemp(tmpdir) != NULL);
    RUN(test_self_signed_contents);
    RUN(test_fingerprint);
    RUN(test_ensure_files);
    RUN(test_files_serve_tls);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    CHECK(system(cmd) == 0);
    TEST_DONE();
}

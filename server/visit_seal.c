/*
 * visit_seal.c - the hospital's sealing key and the note hash
 * (include/telemed/visit_seal.h), on OpenSSL 3's EVP interfaces.
 *
 * The key type is checked at load: a deployment that asks for SM2 and finds
 * an ECDSA key (or the reverse) would otherwise sign under an algorithm
 * nobody expects, so it is refused with both names in the message.
 */
#include "telemed/visit_seal.h"
#include "telemed/common.h"

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* GB/T 32918's default signer id, which every SM2 implementation assumes
 * when none is agreed. */
#define SM2_ID "1234567812345678"

struct tm_seal_key {
    EVP_PKEY *pkey;
    tm_seal_alg alg;
    char id[TM_SEAL_HEX_LEN + 1];
};

int tm_seal_alg_parse(const char *name, tm_seal_alg *out)
{
    if (name && strcmp(name, "ecdsa-p256") == 0)
        *out = TM_SEAL_ECDSA_P256;
    else if (name && strcmp(name, "sm2") == 0)
        *out = TM_SEAL_SM2;
    else
        return TM_EINVAL;
    return 0;
}

const char *tm_seal_alg_name(tm_seal_alg alg)
{
    return alg == TM_SEAL_SM2 ? "sm2" : "ecdsa-p256";
}

static void sha256_hex(const void *data, size_t len, char out[TM_SEAL_HEX_LEN + 1])
{
    unsigned char md[32];
    EVP_Digest(data, len, md, NULL, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* The algorithm a loaded key is for, or -1 (RSA, another curve ...). */
static int key_alg(EVP_PKEY *pkey)
{
    if (EVP_PKEY_is_a(pkey, "SM2"))
        return TM_SEAL_SM2;
    char group[64] = "";
    if (EVP_PKEY_is_a(pkey, "EC") &&
        EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       NULL) == 1) {
        if (strcmp(group, "SM2") == 0)
            return TM_SEAL_SM2;
        if (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0)
            return TM_SEAL_ECDSA_P256;
    }
    return -1;
}

static int write_new_key(const char *path, tm_seal_alg alg, char **err)
{
    EVP_PKEY *pkey = alg == TM_SEAL_SM2 ? EVP_PKEY_Q_keygen(NULL, NULL, "SM2")
                                        : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!pkey) {
        *err = g_strdup_printf("cannot make a %s key", tm_seal_alg_name(alg));
        return TM_EIO;
    }
    int rc = 0;
    FILE *f = NULL;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || !(f = fdopen(fd, "w"))) {
        *err = g_strdup_printf("cannot create %s: %s", path, g_strerror(errno));
        rc = TM_EIO;
        goto fail;
    }
    fd = -1; /* the FILE owns it now */
    if (PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) != 1 || fflush(f) != 0 ||
        fsync(fileno(f)) != 0) {
        *err = g_strdup_printf("cannot write %s", path);
        rc = TM_EIO;
    }
fail:
    if (f && fclose(f) != 0 && rc == 0) {
        *err = g_strdup_printf("cannot write %s", path);
        rc = TM_EIO;
    }
    if (fd >= 0)
        close(fd);
    if (rc < 0 && f)
        unlink(path);
    EVP_PKEY_free(pkey);
    return rc;
}

static EVP_PKEY *read_key(const char *path, char **err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        *err = g_strdup_printf("cannot read the seal key %s: %s", path, g_strerror(errno));
        return NULL;
    }
    EVP_PKEY *pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!pkey)
        *err = g_strdup_printf("%s is not a PEM private key", path);
    return pkey;
}

tm_seal_key *tm_seal_key_load(const char *path, tm_seal_alg alg, bool create, bool *created,
                              char **err)
{
    if (created)
        *created = false;
    if (create && access(path, F_OK) != 0 && errno == ENOENT) {
        if (write_new_key(path, alg, err) < 0)
            return NULL;
        if (created)
            *created = true;
    }
    EVP_PKEY *pkey = read_key(path, err);
    if (!pkey)
        return NULL;
    int found = key_alg(pkey);
    if (found != (int)alg) {
        *err = g_strdup_printf("the seal key %s is %s, but seal_algorithm is %s", path,
                               found < 0 ? "neither an ECDSA P-256 nor an SM2 key"
                                         : tm_seal_alg_name((tm_seal_alg)found),
                               tm_seal_alg_name(alg));
        EVP_PKEY_free(pkey);
        return NULL;
    }
    unsigned char *der = NULL;
    int der_len = i2d_PUBKEY(pkey, &der);
    if (der_len <= 0) {
        *err = g_strdup_printf("%s: cannot read its public key", path);
        EVP_PKEY_free(pkey);
        return NULL;
    }
    tm_seal_key *k = g_new0(tm_seal_key, 1);
    k->pkey = pkey;
    k->alg = alg;
    sha256_hex(der, (size_t)der_len, k->id);
    OPENSSL_free(der);
    return k;
}

void tm_seal_key_free(tm_seal_key *k)
{
    if (!k)
        return;
    EVP_PKEY_free(k->pkey);
    g_free(k);
}

tm_seal_alg tm_seal_key_alg(const tm_seal_key *k)
{
    return k->alg;
}

const char *tm_seal_key_id(const tm_seal_key *k)
{
    return k->id;
}

char *tm_seal_key_public_pem(const tm_seal_key *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *out = NULL;
    if (b && PEM_write_bio_PUBKEY(b, k->pkey) == 1) {
        char *data = NULL;
        long n = BIO_get_mem_data(b, &data);
        out = g_strndup(data, (gsize)n);
    }
    BIO_free(b);
    return out;
}

/* A digest context for k. SM2 needs its signer id on a key context before
 * the digest starts; EVP_MD_CTX_set_pkey_ctx does not hand that context
 * over, so it is kept beside the digest and freed after it. */
typedef struct seal_ctx {
    EVP_MD_CTX *md;
    EVP_PKEY_CTX *pctx;
} seal_ctx;

static void seal_ctx_clear(seal_ctx *c)
{
    EVP_MD_CTX_free(c->md);
    EVP_PKEY_CTX_free(c->pctx);
    memset(c, 0, sizeof(*c));
}

static int seal_ctx_init(seal_ctx *c, const tm_seal_key *k, bool sign)
{
    memset(c, 0, sizeof(*c));
    const EVP_MD *hash = k->alg == TM_SEAL_SM2 ? EVP_sm3() : EVP_sha256();
    if (!(c->md = EVP_MD_CTX_new()))
        goto fail;
    if (k->alg == TM_SEAL_SM2) {
        c->pctx = EVP_PKEY_CTX_new(k->pkey, NULL);
        if (!c->pctx || EVP_PKEY_CTX_set1_id(c->pctx, SM2_ID, strlen(SM2_ID)) != 1)
            goto fail;
        EVP_MD_CTX_set_pkey_ctx(c->md, c->pctx);
    }
    int ok = sign ? EVP_DigestSignInit(c->md, NULL, hash, NULL, k->pkey)
                  : EVP_DigestVerifyInit(c->md, NULL, hash, NULL, k->pkey);
    if (ok == 1)
        return 0;
fail:
    seal_ctx_clear(c);
    return TM_EIO;
}

char *tm_seal_sign(const tm_seal_key *k, const void *msg, size_t len)
{
    seal_ctx c;
    if (seal_ctx_init(&c, k, true) < 0)
        return NULL;
    char *out = NULL;
    unsigned char *sig = NULL;
    size_t sig_len = 0;
    if (EVP_DigestSign(c.md, NULL, &sig_len, msg, len) != 1)
        goto done;
    sig = g_malloc(sig_len);
    if (EVP_DigestSign(c.md, sig, &sig_len, msg, len) == 1)
        out = g_base64_encode(sig, sig_len);
done:
    g_free(sig);
    seal_ctx_clear(&c);
    return out;
}

int tm_seal_verify(const tm_seal_key *k, const void *msg, size_t len, const char *sig_b64)
{
    if (!sig_b64 || !*sig_b64)
        return TM_EAUTH;
    gsize sig_len = 0;
    guchar *sig = g_base64_decode(sig_b64, &sig_len);
    seal_ctx c;
    int rc = TM_EAUTH;
    if (sig_len && seal_ctx_init(&c, k, false) == 0) {
        if (EVP_DigestVerify(c.md, sig, sig_len, msg, len) == 1)
            rc = 0;
        seal_ctx_clear(&c);
    }
    g_free(sig);
    return rc;
}

static void add_field(EVP_MD_CTX *c, const char *s)
{
    char prefix[24];
    size_t len = s ? strlen(s) : 0;
    int n = snprintf(prefix, sizeof(prefix), "%zu:", len);
    EVP_DigestUpdate(c, prefix, (size_t)n);
    if (len)
        EVP_DigestUpdate(c, s, len);
}

void tm_seal_note_hash(const char *visit_id, const char *doctor_id, const char *body,
                       const char *diagnosis_code, char out[TM_SEAL_HEX_LEN + 1])
{
    unsigned char md[32];
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    TM_ASSERT(c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1);
    add_field(c, "telemed-note-v1");
    add_field(c, visit_id);
    add_field(c, doctor_id);
    add_field(c, body);
    add_field(c, diagnosis_code);
    EVP_DigestFinal_ex(c, md, NULL);
    EVP_MD_CTX_free(c);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/*
 * jwt.c - compact JWS (RFC 7515/7519) verification and minting for the
 * identity of every signaling and REST caller.
 *
 * Owns: the verifier's copy of the HS256 secret and its EVP_PKEY public keys.
 * Threads: built by the control loop at start, then read-only, so verify runs
 * on any thread. Every byte of a token is untrusted: lengths are checked before
 * each read, the token is capped at TM_JWT_MAX_LEN, and the signature is
 * checked before any claim is looked at, so the claims parser only ever sees
 * bytes that a key holder produced.
 */
#include "telemed/jwt.h"

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <math.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum jwt_alg { ALG_UNKNOWN = 0, ALG_HS256, ALG_RS256, ALG_ES256 };

#define HS256_LEN 32
#define ES256_HALF 32
#define MIN_RSA_BITS 2048
#define MAX_KEY_FILE (64 * 1024)
/* Larger leeways would make exp meaningless; a year is already absurd. */
#define MAX_LEEWAY_S (366 * 86400)

struct jwt_key {
    EVP_PKEY *pkey;
    char *kid; /* NULL: tried for tokens that name no configured kid */
    enum jwt_alg alg;
};

struct tm_jwt_verifier {
    uint8_t *secret; /* NULL: HS256 refused */
    size_t secret_len;
    struct jwt_key *keys;
    size_t nkeys;
    int64_t max_lifetime_s; /* 0: exp is not capped */
};

/* ---- roles ---------------------------------------------------------------- */

static const char *const role_names[] = {
    [TM_ROLE_NONE] = "none",     [TM_ROLE_PATIENT] = "patient",
    [TM_ROLE_DOCTOR] = "doctor", [TM_ROLE_SUPERVISOR] = "supervisor",
    [TM_ROLE_ADMIN] = "admin",   [TM_ROLE_GUEST] = "guest",
};

const char *tm_role_name(tm_role role)
{
    if ((int)role <= TM_ROLE_NONE || (size_t)role >= TM_ARRAY_LEN(role_names))
        return "none";
    return role_names[role];
}

int tm_role_parse(const char *name, tm_role *out)
{
    if (out)
        *out = TM_ROLE_NONE;
    if (!name || !out)
        return TM_EINVAL;
    for (size_t i = TM_ROLE_PATIENT; i <= TM_ROLE_ADMIN; i++) {
        if (strcmp(name, role_names[i]) == 0) {
            *out = (tm_role)i;
            return 0;
        }
    }
    return TM_EINVAL;
}

/* ---- base64url without padding (RFC 4648 section 5) ----------------------- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

int tm__b64url_encode(const uint8_t *in, size_t n, char *out, size_t outlen)
{
    if (n > (size_t)INT_MAX / 2)
        return TM_ETOOBIG;
    size_t need = n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
    if (!out || outlen < need + 1)
        return TM_ETOOBIG;
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t w = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64_alphabet[w >> 18 & 63];
        out[o++] = b64_alphabet[w >> 12 & 63];
        out[o++] = b64_alphabet[w >> 6 & 63];
        out[o++] = b64_alphabet[w & 63];
    }
    if (n - i == 1) {
        uint32_t w = (uint32_t)in[i] << 16;
        out[o++] = b64_alphabet[w >> 18 & 63];
        out[o++] = b64_alphabet[w >> 12 & 63];
    } else if (n - i == 2) {
        uint32_t w = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = b64_alphabet[w >> 18 & 63];
        out[o++] = b64_alphabet[w >> 12 & 63];
        out[o++] = b64_alphabet[w >> 6 & 63];
    }
    out[o] = '\0';
    return (int)o;
}

int tm__b64url_decode(const char *in, size_t n, uint8_t *out, size_t outlen)
{
    if (n > (size_t)INT_MAX)
        return TM_ETOOBIG;
    if (!in || n % 4 == 1)
        return TM_EINVAL;
    size_t need = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
    if (need > outlen)
        return TM_ETOOBIG;
    size_t o = 0, i = 0;
    for (; i + 4 <= n; i += 4) {
        int a = b64_value((unsigned char)in[i]), b = b64_value((unsigned char)in[i + 1]);
        int c = b64_value((unsigned char)in[i + 2]), d = b64_value((unsigned char)in[i + 3]);
        if ((a | b | c | d) < 0)
            return TM_EINVAL;
        uint32_t w = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        out[o++] = (uint8_t)(w >> 16);
        out[o++] = (uint8_t)(w >> 8);
        out[o++] = (uint8_t)w;
    }
    size_t rem = n - i;
    if (rem >= 2) {
        int a = b64_value((unsigned char)in[i]), b = b64_value((unsigned char)in[i + 1]);
        int c = rem == 3 ? b64_value((unsigned char)in[i + 2]) : 0;
        if ((a | b | c) < 0)
            return TM_EINVAL;
        /* Bits past the last whole byte must be zero, or two different strings
         * would decode to the same bytes (a signature malleability). */
        if (rem == 2 && (b & 0x0f))
            return TM_EINVAL;
        if (rem == 3 && (c & 0x03))
            return TM_EINVAL;
        uint32_t w = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6;
        out[o++] = (uint8_t)(w >> 16);
        if (rem == 3)
            out[o++] = (uint8_t)(w >> 8);
    }
    return (int)o;
}

/* ---- keys ------------------------------------------------------------------ */

/* Never prompt on a terminal for a passphrase: an encrypted key just fails. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return 0;
}

/* Which JWS alg a key can serve, or TM_EUNSUPPORTED. */
static int key_alg(EVP_PKEY *pkey, enum jwt_alg *alg)
{
    if (EVP_PKEY_is_a(pkey, "RSA")) {
        if (EVP_PKEY_get_bits(pkey) < MIN_RSA_BITS)
            return TM_EUNSUPPORTED;
        *alg = ALG_RS256;
        return 0;
    }
    if (EVP_PKEY_is_a(pkey, "EC")) {
        char group[64];
        size_t glen = 0;
        if (EVP_PKEY_get_group_name(pkey, group, sizeof group, &glen) != 1)
            return TM_EUNSUPPORTED;
        if (strcmp(group, "prime256v1") != 0 && strcmp(group, "P-256") != 0)
            return TM_EUNSUPPORTED;
        *alg = ALG_ES256;
        return 0;
    }
    return TM_EUNSUPPORTED;
}

static EVP_PKEY *decode_public_pem(const char *pem, size_t len)
{
    EVP_PKEY *pkey = NULL;
    OSSL_DECODER_CTX *dctx = NULL;
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio)
        return NULL;
    /* SPKI "PUBLIC KEY" and PKCS#1 "RSA PUBLIC KEY" both go through the decoder. */
    dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, "PEM", NULL, NULL, EVP_PKEY_PUBLIC_KEY, NULL, NULL);
    if (dctx && OSSL_DECODER_from_bio(dctx, bio) == 1 && pkey)
        goto done;
    EVP_PKEY_free(pkey);
    pkey = NULL;
    BIO_free(bio);
    bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio)
        goto done;
    X509 *cert = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
    if (cert) {
        pkey = X509_get_pubkey(cert);
        X509_free(cert);
    }
done:
    OSSL_DECODER_CTX_free(dctx);
    BIO_free(bio);
    /* Failed attempts leave entries on this thread's error queue; they are ours. */
    ERR_clear_error();
    return pkey;
}

tm_jwt_verifier *tm_jwt_verifier_new(const char *hs256_secret)
{
    tm_jwt_verifier *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    if (hs256_secret && hs256_secret[0]) {
        v->secret_len = strlen(hs256_secret);
        v->secret = malloc(v->secret_len);
        if (!v->secret) {
            free(v);
            return NULL;
        }
        memcpy(v->secret, hs256_secret, v->secret_len);
    }
    return v;
}

int tm_jwt_verifier_add_key_pem(tm_jwt_verifier *v, const char *pem, size_t len, const char *kid)
{
    if (!v || !pem || len == 0 || len > INT_MAX)
        return TM_EINVAL;
    EVP_PKEY *pkey = decode_public_pem(pem, len);
    if (!pkey)
        return TM_EINVAL;
    enum jwt_alg alg = ALG_UNKNOWN;
    int rc = key_alg(pkey, &alg);
    if (rc < 0)
        goto fail;
    rc = TM_ENOMEM;
    char *kid_copy = NULL;
    if (kid && !(kid_copy = strdup(kid)))
        goto fail;
    struct jwt_key *keys = realloc(v->keys, (v->nkeys + 1) * sizeof *keys);
    if (!keys) {
        free(kid_copy);
        goto fail;
    }
    v->keys = keys;
    v->keys[v->nkeys++] = (struct jwt_key){.pkey = pkey, .kid = kid_copy, .alg = alg};
    return 0;
fail:
    EVP_PKEY_free(pkey);
    return rc;
}

/* Reads a whole small file into a new NUL-terminated buffer; caller frees. */
static char *read_small_file(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(MAX_KEY_FILE + 1);
    size_t n = buf ? fread(buf, 1, MAX_KEY_FILE + 1, f) : 0;
    int bad = !buf || ferror(f) || n > MAX_KEY_FILE;
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len_out = n;
    return buf;
}

int tm_jwt_verifier_add_key_file(tm_jwt_verifier *v, const char *path)
{
    if (!v || !path)
        return TM_EINVAL;
    size_t len = 0;
    char *pem = read_small_file(path, &len);
    if (!pem)
        return TM_EIO;
    int rc = tm_jwt_verifier_add_key_pem(v, pem, len, NULL);
    OPENSSL_cleanse(pem, len);
    free(pem);
    return rc;
}

void tm_jwt_verifier_set_max_lifetime(tm_jwt_verifier *v, int64_t max_s)
{
    if (v)
        v->max_lifetime_s = max_s > 0 ? max_s : 0;
}

void tm_jwt_verifier_free(tm_jwt_verifier *v)
{
    if (!v)
        return;
    if (v->secret) {
        OPENSSL_cleanse(v->secret, v->secret_len);
        free(v->secret);
    }
    for (size_t i = 0; i < v->nkeys; i++) {
        EVP_PKEY_free(v->keys[i].pkey);
        free(v->keys[i].kid);
    }
    free(v->keys);
    free(v);
}

/* ---- signatures ------------------------------------------------------------- */

static int hmac_sha256(const uint8_t *key, size_t keylen, const char *data, size_t len,
                       uint8_t mac[HS256_LEN])
{
    unsigned int maclen = 0;
    if (keylen > INT_MAX)
        return TM_EINVAL;
    if (!HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)data, len, mac, &maclen) ||
        maclen != HS256_LEN)
        return TM_ENOMEM;
    return 0;
}

/* 1 when sig verifies under pkey, 0 when not. ES256 takes raw r||s. */
static int pkey_verify(EVP_PKEY *pkey, enum jwt_alg alg, const char *data, size_t len,
                       const uint8_t *sig, size_t siglen)
{
    int ok = 0;
    unsigned char *der = NULL;
    int derlen = 0;
    ECDSA_SIG *es = NULL;
    EVP_MD_CTX *mctx = NULL;

    if (alg == ALG_ES256) {
        if (siglen != 2 * ES256_HALF)
            goto done;
        BIGNUM *r = BN_bin2bn(sig, ES256_HALF, NULL);
        BIGNUM *s = BN_bin2bn(sig + ES256_HALF, ES256_HALF, NULL);
        es = ECDSA_SIG_new();
        if (!r || !s || !es || ECDSA_SIG_set0(es, r, s) != 1) {
            BN_free(r);
            BN_free(s);
            goto done;
        }
        derlen = i2d_ECDSA_SIG(es, &der);
        if (derlen <= 0)
            goto done;
        sig = der;
        siglen = (size_t)derlen;
    }
    mctx = EVP_MD_CTX_new();
    if (!mctx || EVP_DigestVerifyInit(mctx, NULL, EVP_sha256(), NULL, pkey) != 1)
        goto done;
    ok = EVP_DigestVerify(mctx, sig, siglen, (const unsigned char *)data, len) == 1;
done:
    EVP_MD_CTX_free(mctx);
    ECDSA_SIG_free(es);
    OPENSSL_free(der);
    ERR_clear_error();
    return ok;
}

/* Signs data with pkey; writes the JWS signature bytes (raw r||s for ES256). */
static int pkey_sign(EVP_PKEY *pkey, enum jwt_alg alg, const char *data, size_t len, uint8_t *out,
                     size_t outcap, size_t *outlen)
{
    int rc = TM_ENOMEM;
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    unsigned char *der = NULL;
    ECDSA_SIG *es = NULL;
    size_t derlen = 0;

    if (!mctx || EVP_DigestSignInit(mctx, NULL, EVP_sha256(), NULL, pkey) != 1)
        goto fail;
    if (EVP_DigestSign(mctx, NULL, &derlen, (const unsigned char *)data, len) != 1)
        goto fail;
    der = OPENSSL_malloc(derlen);
    if (!der || EVP_DigestSign(mctx, der, &derlen, (const unsigned char *)data, len) != 1)
        goto fail;
    if (alg == ALG_RS256) {
        if (derlen > outcap)
            goto fail;
        memcpy(out, der, derlen);
        *outlen = derlen;
    } else {
        const unsigned char *p = der;
        const BIGNUM *r = NULL, *s = NULL;
        if (outcap < 2 * ES256_HALF || !(es = d2i_ECDSA_SIG(NULL, &p, (long)derlen)))
            goto fail;
        ECDSA_SIG_get0(es, &r, &s);
        if (BN_bn2binpad(r, out, ES256_HALF) != ES256_HALF ||
            BN_bn2binpad(s, out + ES256_HALF, ES256_HALF) != ES256_HALF)
            goto fail;
        *outlen = 2 * ES256_HALF;
    }
    rc = 0;
fail:
    ECDSA_SIG_free(es);
    OPENSSL_free(der);
    EVP_MD_CTX_free(mctx);
    ERR_clear_error();
    return rc;
}

static enum jwt_alg alg_from_name(const char *name)
{
    if (strcmp(name, "HS256") == 0)
        return ALG_HS256;
    if (strcmp(name, "RS256") == 0)
        return ALG_RS256;
    if (strcmp(name, "ES256") == 0)
        return ALG_ES256;
    return ALG_UNKNOWN;
}

/* Checks the signature over data[0..len) for alg. Returns NULL on success or a reason. */
static const char *check_signature(const tm_jwt_verifier *v, enum jwt_alg alg, const char *kid,
                                   const char *data, size_t len, const uint8_t *sig, size_t siglen)
{
    if (alg == ALG_HS256) {
        uint8_t mac[HS256_LEN];
        if (!v->secret)
            return "alg_not_allowed";
        if (hmac_sha256(v->secret, v->secret_len, data, len, mac) < 0)
            return "internal";
        int ok = siglen == HS256_LEN && CRYPTO_memcmp(mac, sig, HS256_LEN) == 0;
        OPENSSL_cleanse(mac, sizeof mac);
        return ok ? NULL : "bad_signature";
    }

    /* A token that names a configured kid is checked against that key only;
     * otherwise against the keys configured without a kid. */
    size_t of_alg = 0, named = 0;
    for (size_t i = 0; i < v->nkeys; i++) {
        if (v->keys[i].alg != alg)
            continue;
        of_alg++;
        if (kid && v->keys[i].kid && strcmp(kid, v->keys[i].kid) == 0)
            named++;
    }
    if (of_alg == 0)
        return "alg_not_allowed";
    size_t tried = 0;
    for (size_t i = 0; i < v->nkeys; i++) {
        const struct jwt_key *k = &v->keys[i];
        if (k->alg != alg)
            continue;
        if (named ? !(k->kid && strcmp(kid, k->kid) == 0) : k->kid != NULL)
            continue;
        tried++;
        if (pkey_verify(k->pkey, alg, data, len, sig, siglen))
            return NULL;
    }
    return tried ? "bad_signature" : "no_key";
}

/* ---- claims ----------------------------------------------------------------- */

/* A NumericDate: JSON integer, or a finite real (RFC 7519 allows fractions). */
static int get_time(json_t *claims, const char *key, int64_t *out, int *present)
{
    json_t *j = json_object_get(claims, key);
    *present = j != NULL;
    *out = 0;
    if (!j)
        return 0;
    if (json_is_integer(j)) {
        *out = (int64_t)json_integer_value(j);
        return 0;
    }
    if (json_is_real(j)) {
        double d = json_real_value(j);
        /* +-2^53: every such double is an exact integer and fits int64. */
        if (!isfinite(d) || d > 9007199254740992.0 || d < -9007199254740992.0)
            return TM_EINVAL;
        *out = (int64_t)d;
        return 0;
    }
    return TM_EINVAL;
}

/* Copies an optional string claim. Absent leaves "" and returns 0. */
static int get_string(json_t *claims, const char *key, char *out, size_t outlen, int *present)
{
    json_t *j = json_object_get(claims, key);
    out[0] = '\0';
    if (present)
        *present = j != NULL;
    if (!j)
        return 0;
    if (!json_is_string(j))
        return TM_EINVAL;
    size_t n = json_string_length(j);
    const char *s = json_string_value(j);
    if (n >= outlen || memchr(s, '\0', n))
        return TM_EINVAL;
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

/* amr (RFC 8176): an array of method names, kept joined by ','. */
static int get_amr(json_t *claims, char *out, size_t outlen)
{
    json_t *j = json_object_get(claims, "amr");
    out[0] = '\0';
    if (!j)
        return 0;
    if (!json_is_array(j))
        return TM_EINVAL;
    size_t used = 0, i;
    json_t *m;
    json_array_foreach(j, i, m)
    {
        const char *name = json_string_value(m);
        size_t n = name ? json_string_length(m) : 0;
        if (!name || n == 0 || memchr(name, '\0', n) || memchr(name, ',', n) ||
            used + (i ? 1 : 0) + n >= outlen)
            return TM_EINVAL;
        if (i)
            out[used++] = ',';
        memcpy(out + used, name, n);
        used += n;
        out[used] = '\0';
    }
    return 0;
}

/* A token that lives longer than the deployment allows is refused even when
 * its signature is good: a leaked long-lived token must not outlast a shift.
 * Measured from iat when the token says when it was made, else from now. */
static bool lifetime_too_long(const tm_identity *id, bool has_iat, int64_t now_s, int64_t max_s)
{
    if (max_s <= 0)
        return false;
    int64_t from = has_iat ? id->iat : now_s;
    return id->exp > from && id->exp - from > max_s;
}

static const char *parse_claims(json_t *claims, int64_t now_s, int leeway_s, int64_t max_lifetime_s,
                                tm_identity *id)
{
    char role[32];
    int has_sub, has_role, has_exp, has_nbf, has_iat, has_auth_time;

    if (!json_is_object(claims))
        return "malformed";
    if (get_string(claims, "sub", id->sub, sizeof id->sub, &has_sub) < 0)
        return "bad_claim";
    int role_rc = get_string(claims, "role", role, sizeof role, &has_role);
    if (get_time(claims, "exp", &id->exp, &has_exp) < 0)
        return "bad_claim";
    if (!has_sub || !id->sub[0] || !has_role || !has_exp)
        return "missing_claim";
    if (role_rc < 0 || tm_role_parse(role, &id->role) < 0)
        return "bad_role";
    if (get_string(claims, "name", id->name, sizeof id->name, NULL) < 0 ||
        get_string(claims, "dept", id->dept, sizeof id->dept, NULL) < 0 ||
        get_string(claims, "hosp", id->hospital, sizeof id->hospital, NULL) < 0 ||
        get_string(claims, "inst", id->institution, sizeof id->institution, NULL) < 0 ||
        get_time(claims, "nbf", &id->nbf, &has_nbf) < 0 ||
        get_time(claims, "iat", &id->iat, &has_iat) < 0 ||
        get_time(claims, "auth_time", &id->auth_time, &has_auth_time) < 0 ||
        get_amr(claims, id->amr, sizeof id->amr) < 0)
        return "bad_claim";

    /* Compare on now_s's side so that a hostile exp near INT64_MAX cannot overflow. */
    int64_t leeway = leeway_s < 0 ? 0 : leeway_s > MAX_LEEWAY_S ? MAX_LEEWAY_S : leeway_s;
    if (id->exp <= now_s - leeway)
        return "expired";
    if (has_nbf && id->nbf > now_s + leeway)
        return "not_yet_valid";
    if (has_iat && id->iat > now_s + leeway)
        return "issued_in_future";
    if (lifetime_too_long(id, has_iat, now_s, max_lifetime_s))
        return "lifetime_too_long";
    return NULL;
}

/* ---- verify ------------------------------------------------------------------ */

int tm_jwt_verify(const tm_jwt_verifier *v, const char *token, size_t len, int64_t now_s,
                  int leeway_s, tm_identity *out, const char **reason)
{
    const char *why = "malformed";
    int rc = TM_EAUTH;
    uint8_t *buf = NULL;
    json_t *header = NULL, *claims = NULL;
    tm_identity id;

    memset(&id, 0, sizeof id);
    if (out)
        memset(out, 0, sizeof *out);
    if (!v || !token || !out || len == 0)
        goto fail;
    if (len > TM_JWT_MAX_LEN) {
        why = "too_large";
        goto fail;
    }
    const char *d1 = memchr(token, '.', len);
    if (!d1)
        goto fail;
    const char *d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token));
    if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)))
        goto fail;
    size_t hlen = (size_t)(d1 - token), plen = (size_t)(d2 - d1 - 1);
    size_t slen = len - (size_t)(d2 + 1 - token);
    if (hlen == 0 || plen == 0)
        goto fail;

    /* One buffer holds all three decoded parts; decoding only shrinks. */
    buf = malloc(len);
    if (!buf) {
        rc = TM_ENOMEM;
        why = "internal";
        goto fail;
    }
    int hn = tm__b64url_decode(token, hlen, buf, len);
    if (hn <= 0)
        goto fail;
    int pn = tm__b64url_decode(d1 + 1, plen, buf + hn, len - (size_t)hn);
    if (pn <= 0)
        goto fail;
    int sn = tm__b64url_decode(d2 + 1, slen, buf + hn + pn, len - (size_t)hn - (size_t)pn);
    if (sn < 0)
        goto fail;

    json_error_t jerr;
    header = json_loadb((const char *)buf, (size_t)hn, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(header))
        goto fail;
    json_t *jalg = json_object_get(header, "alg");
    json_t *jkid = json_object_get(header, "kid");
    if (!json_is_string(jalg) || (jkid && !json_is_string(jkid)))
        goto fail;
    /* We implement no JWS extension, so any "crit" header must be refused (RFC 7515 4.1.11). */
    if (json_object_get(header, "crit"))
        goto fail;
    enum jwt_alg alg = alg_from_name(json_string_value(jalg));
    if (alg == ALG_UNKNOWN) {
        why = "alg_not_allowed";
        goto fail;
    }
    why = check_signature(v, alg, jkid ? json_string_value(jkid) : NULL, token,
                          (size_t)(d2 - token), buf + hn + pn, (size_t)sn);
    if (why) {
        if (strcmp(why, "internal") == 0)
            rc = TM_ENOMEM;
        goto fail;
    }

    claims = json_loadb((const char *)buf + hn, (size_t)pn, JSON_REJECT_DUPLICATES, &jerr);
    if (!claims) {
        why = "malformed";
        goto fail;
    }
    why = parse_claims(claims, now_s, leeway_s, v->max_lifetime_s, &id);
    if (why)
        goto fail;
    *out = id;
    rc = 0;
    why = NULL;
fail:
    json_decref(header);
    json_decref(claims);
    free(buf);
    if (reason)
        *reason = why;
    return rc;
}

/* ---- mint ---------------------------------------------------------------------- */

static json_t *claims_json(const tm_identity *id)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    size_t sub_len = strnlen(id->sub, sizeof id->sub);
    size_t name_len = strnlen(id->name, sizeof id->name);
    size_t dept_len = strnlen(id->dept, sizeof id->dept);
    size_t hosp_len = strnlen(id->hospital, sizeof id->hospital);
    size_t inst_len = strnlen(id->institution, sizeof id->institution);
    int64_t iat = id->iat ? id->iat : (int64_t)time(NULL);
    if (sub_len == 0 || sub_len == sizeof id->sub || name_len == sizeof id->name ||
        dept_len == sizeof id->dept || hosp_len == sizeof id->hospital ||
        inst_len == sizeof id->institution)
        goto fail;
    if (id->role <= TM_ROLE_NONE || id->role > TM_ROLE_ADMIN)
        goto fail;
    /* json_object_set_new fails on a NULL value, which also catches invalid UTF-8. */
    if (json_object_set_new(o, "sub", json_stringn(id->sub, sub_len)) ||
        json_object_set_new(o, "role", json_string(tm_role_name(id->role))) ||
        json_object_set_new(o, "name", json_stringn(id->name, name_len)))
        goto fail;
    if (dept_len && json_object_set_new(o, "dept", json_stringn(id->dept, dept_len)))
        goto fail;
    if (hosp_len && json_object_set_new(o, "hosp", json_stringn(id->hospital, hosp_len)))
        goto fail;
    if (inst_len && json_object_set_new(o, "inst", json_stringn(id->institution, inst_len)))
        goto fail;
    if (json_object_set_new(o, "iat", json_integer((json_int_t)iat)))
        goto fail;
    if (id->nbf && json_object_set_new(o, "nbf", json_integer((json_int_t)id->nbf)))
        goto fail;
    if (id->auth_time &&
        json_object_set_new(o, "auth_time", json_integer((json_int_t)id->auth_time)))
        goto fail;
    if (strnlen(id->amr, sizeof id->amr) == sizeof id->amr)
        goto fail;
    if (id->amr[0]) {
        json_t *amr = json_array();
        for (const char *m = id->amr; amr && *m;) {
            size_t n = strcspn(m, ",");
            json_array_append_new(amr, json_stringn(m, n));
            m += n + (m[n] == ',');
        }
        if (json_object_set_new(o, "amr", amr))
            goto fail;
    }
    if (json_object_set_new(o, "exp", json_integer((json_int_t)id->exp)))
        goto fail;
    return o;
fail:
    json_decref(o);
    return NULL;
}

/* Appends base64url(data) to out at *pos. */
static int append_b64(char *out, size_t cap, size_t *pos, const void *data, size_t n)
{
    int w = tm__b64url_encode(data, n, out + *pos, cap - *pos);
    if (w < 0)
        return w;
    *pos += (size_t)w;
    return 0;
}

/* Builds header.payload.signature; pkey NULL means HS256 with secret. */
static char *mint(const char *alg_name, const char *kid, const tm_identity *id, const char *secret,
                  EVP_PKEY *pkey, enum jwt_alg alg)
{
    char *out = NULL, *hs = NULL, *ps = NULL;
    json_t *header = NULL, *claims = NULL;
    uint8_t sig[1024]; /* RSA up to 8192 bits */
    size_t siglen = 0;

    if (!id)
        return NULL;
    header = json_pack("{s:s, s:s}", "alg", alg_name, "typ", "JWT");
    if (!header || (kid && json_object_set_new(header, "kid", json_string(kid))))
        goto fail;
    claims = claims_json(id);
    if (!claims)
        goto fail;
    hs = json_dumps(header, JSON_COMPACT);
    ps = json_dumps(claims, JSON_COMPACT);
    if (!hs || !ps)
        goto fail;
    size_t hl = strlen(hs), pl = strlen(ps);
    size_t cap = (hl + pl + sizeof sig) / 3 * 4 + 16;
    out = malloc(cap);
    if (!out)
        goto fail;
    size_t pos = 0;
    if (append_b64(out, cap, &pos, hs, hl) < 0)
        goto fail;
    out[pos++] = '.';
    if (append_b64(out, cap, &pos, ps, pl) < 0)
        goto fail;
    if (pkey) {
        if (pkey_sign(pkey, alg, out, pos, sig, sizeof sig, &siglen) < 0)
            goto fail;
    } else {
        if (hmac_sha256((const uint8_t *)secret, strlen(secret), out, pos, sig) < 0)
            goto fail;
        siglen = HS256_LEN;
    }
    out[pos++] = '.';
    if (append_b64(out, cap, &pos, sig, siglen) < 0)
        goto fail;
    goto done;
fail:
    free(out);
    out = NULL;
done:
    OPENSSL_cleanse(sig, sizeof sig);
    free(hs);
    free(ps);
    json_decref(header);
    json_decref(claims);
    return out;
}

char *tm_jwt_mint_hs256(const char *secret, const tm_identity *id)
{
    if (!secret || !secret[0])
        return NULL;
    return mint("HS256", NULL, id, secret, NULL, ALG_HS256);
}

char *tm_jwt_mint_with_key_file(const char *private_key_path, const char *kid,
                                const tm_identity *id)
{
    if (!private_key_path)
        return NULL;
    BIO *bio = BIO_new_file(private_key_path, "r");
    if (!bio) {
        ERR_clear_error();
        return NULL;
    }
    EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    BIO_free(bio);
    char *tok = NULL;
    enum jwt_alg alg = ALG_UNKNOWN;
    if (pkey && key_alg(pkey, &alg) == 0)
        tok = mint(alg == ALG_RS256 ? "RS256" : "ES256", kid, id, NULL, pkey, alg);
    EVP_PKEY_free(pkey);
    ERR_clear_error();
    return tok;
}

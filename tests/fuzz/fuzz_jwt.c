/*
 * fuzz_jwt.c - libFuzzer target for tm_jwt_verify.
 *
 * Raw bytes alone almost never carry a valid signature, and the verifier looks
 * at claims only after the signature checks out, so the first input byte picks
 * what the rest is:
 *   0: a whole token, as a client would send it;
 *   1: the claims JSON, wrapped in a correctly HS256-signed token (claims parser);
 *   2: the header JSON, with fixed claims, correctly HS256-signed (alg dispatch,
 *      kid handling, RS256/ES256 paths against real keys).
 * Checked-in seeds live in tests/fuzz/corpus/jwt/.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "telemed/jwt.h"

#define FUZZ_SECRET "fuzz-secret"
#define FUZZ_NOW 1800000000LL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static tm_jwt_verifier *verifier(void)
{
    static tm_jwt_verifier *v;
    if (v)
        return v;
    v = tm_jwt_verifier_new(FUZZ_SECRET);
    for (size_t i = 0; i < 2; i++) {
        EVP_PKEY *k = i == 0 ? EVP_EC_gen("P-256") : EVP_RSA_gen(2048);
        BIO *b = BIO_new(BIO_s_mem());
        char *pem = NULL;
        if (k && b && PEM_write_bio_PUBKEY(b, k) == 1) {
            long n = BIO_get_mem_data(b, &pem);
            tm_jwt_verifier_add_key_pem(v, pem, (size_t)n, i == 0 ? "ec1" : NULL);
        }
        BIO_free(b);
        EVP_PKEY_free(k);
    }
    return v;
}

/* header_json.claims_json.HMAC, all base64url; returns a new string or NULL. */
static char *signed_token(const uint8_t *header, size_t hl, const uint8_t *claims, size_t cl)
{
    size_t cap = (hl + cl + 32) / 3 * 4 + 16;
    char *t = malloc(cap);
    if (!t)
        return NULL;
    int a = tm__b64url_encode(header, hl, t, cap);
    if (a < 0)
        goto fail;
    size_t pos = (size_t)a;
    t[pos++] = '.';
    int b = tm__b64url_encode(claims, cl, t + pos, cap - pos);
    if (b < 0)
        goto fail;
    pos += (size_t)b;
    unsigned char mac[32];
    unsigned int maclen = 0;
    if (!HMAC(EVP_sha256(), FUZZ_SECRET, (int)strlen(FUZZ_SECRET), (const unsigned char *)t, pos,
              mac, &maclen))
        goto fail;
    t[pos++] = '.';
    if (tm__b64url_encode(mac, maclen, t + pos, cap - pos) < 0)
        goto fail;
    return t;
fail:
    free(t);
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char fixed_claims[] = "{\"sub\":\"p1\",\"role\":\"patient\",\"exp\":1900000000}";
    static const char fixed_header[] = "{\"alg\":\"HS256\"}";
    tm_identity id;
    const char *reason = NULL;
    tm_jwt_verifier *v = verifier();

    if (size == 0 || !v)
        return 0;
    uint8_t mode = data[0] % 3;
    data++, size--;
    if (mode == 0) {
        int rc = tm_jwt_verify(v, (const char *)data, size, FUZZ_NOW, 60, &id, &reason);
        if ((rc == 0) != (reason == NULL))
            abort();
        return 0;
    }
    if (size > TM_JWT_MAX_LEN)
        return 0;
    char *tok = mode == 1
                    ? signed_token((const uint8_t *)fixed_header, strlen(fixed_header), data, size)
                    : signed_token(data, size, (const uint8_t *)fixed_claims, strlen(fixed_claims));
    if (!tok)
        return 0;
    int rc = tm_jwt_verify(v, tok, strlen(tok), FUZZ_NOW, 60, &id, &reason);
    if ((rc == 0) != (reason == NULL))
        abort();
    /* An accepted identity is always a complete, terminated one. */
    if (rc == 0 &&
        (!id.sub[0] || id.role == TM_ROLE_NONE || memchr(id.sub, 0, sizeof id.sub) == NULL ||
         memchr(id.name, 0, sizeof id.name) == NULL))
        abort();
    free(tok);
    return 0;
}

/*
 * srtp_crypto.c - libsrtp's AES-ICM and HMAC-SHA1 over Nettle and its AES-GCM
 * over OpenSSL 3 EVP, with one long-lived context per libsrtp cipher/auth
 * object, swapped in through srtp_replace_cipher_type()/_auth_type().
 *
 * Why: Debian's libsrtp2 is built on NSS and makes a PK11 context per packet
 * (a third of the server's CPU); EVP's per-packet init and keyed-HMAC reuse
 * allocate or run cold. Here nothing allocates per packet: the AES key
 * schedule and the keyed SHA-1 states are made once, a packet only sets its
 * counter block or copies a plain struct. The measurements:
 * tests/bench/README.md. libsrtp keeps the SRTP protocol (key derivation,
 * ROC, replay window, framing) and self-tests each replacement against its
 * original's test vectors; media_srtp_nettle = false keeps its own ciphers
 * (tm__srtp_crypto_restore).
 *
 * Semantics follow libsrtp 2.5's cipher contracts (aes_icm_*.c, aes_gcm_*.c,
 * hmac_*.c): cipher key_len includes the salt (ICM: 30/38/46 = key + 14-byte
 * salt; GCM: 28/44 = key + 12-byte salt, which libsrtp keeps itself); GCM
 * decrypt takes ciphertext||tag, checks the tag and shortens the length.
 *
 * Threads: the fetched GCM algorithms are process-wide and read-only after
 * tm__srtp_crypto_install (under srtp.c's lock); every cipher/auth object
 * belongs to the libsrtp session that allocated it, used by one thread.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <nettle/aes.h>
#include <nettle/ctr.h>
#include <nettle/hmac.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <srtp2/auth.h>
#include <srtp2/cipher.h>
#include <srtp2/srtp.h>

#include "dtls_srtp_internal.h"

#define SALT_ICM 14 /* SRTP_SALT_LEN */
#define SALT_GCM 12 /* SRTP_AEAD_SALT_LEN */
#define GCM_IV_LEN 12

/* Fetched once: passing EVP_aes_128_gcm() and friends instead would make
 * OpenSSL 3 look the algorithm up (locks, hash lookups) at every init. */
static EVP_CIPHER *alg_gcm[2]; /* 128, 256 */
static atomic_int live_objects;

static srtp_cipher_type_t tm_aes_icm_128, tm_aes_icm_192, tm_aes_icm_256;
static srtp_cipher_type_t tm_aes_gcm_128, tm_aes_gcm_256;
static srtp_auth_type_t tm_hmac_sha1;

/* ---------------------------------------------------------------- AES-ICM */

typedef struct icm_state {
    union {
        struct aes128_ctx a128;
        struct aes192_ctx a192;
        struct aes256_ctx a256;
    } aes;                       /* the key schedule, set once per key */
    nettle_cipher_func *encrypt; /* aes128_encrypt etc., matching the union member */
    int key_size;                /* AES key bytes: 16, 24 or 32 */
    uint8_t offset[16];          /* salt || 00 00: the counter block for iv = 0 */
    uint8_t base[16];            /* offset XOR iv of the current packet */
    uint8_t counter[16];         /* the next keystream block's counter */
    uint8_t ks[16];              /* keystream of the block last cut short */
    unsigned ks_used;            /* bytes of ks already used (16: none left) */
} icm_state;

typedef struct icm_cipher {
    srtp_cipher_t c;
    icm_state s;
} icm_cipher;

static srtp_err_status_t icm_alloc(srtp_cipher_t **cp, int key_len, int tag_len)
{
    (void)tag_len;
    const srtp_cipher_type_t *type;
    int key_size, alg;
    switch (key_len) {
    case 16 + SALT_ICM:
        type = &tm_aes_icm_128, key_size = 16, alg = SRTP_AES_ICM_128;
        break;
    case 24 + SALT_ICM:
        type = &tm_aes_icm_192, key_size = 24, alg = SRTP_AES_ICM_192;
        break;
    case 32 + SALT_ICM:
        type = &tm_aes_icm_256, key_size = 32, alg = SRTP_AES_ICM_256;
        break;
    default:
        return srtp_err_status_bad_param;
    }
    icm_cipher *ic = calloc(1, sizeof *ic);
    if (!ic)
        return srtp_err_status_alloc_fail;
    ic->s.key_size = key_size;
    ic->s.ks_used = 16;
    ic->c.type = type;
    ic->c.state = &ic->s;
    ic->c.key_len = key_len;
    ic->c.algorithm = alg;
    atomic_fetch_add(&live_objects, 1);
    *cp = &ic->c;
    return srtp_err_status_ok;
}

static srtp_err_status_t icm_dealloc(srtp_cipher_t *c)
{
    if (!c)
        return srtp_err_status_bad_param;
    icm_cipher *ic = (icm_cipher *)c;
    OPENSSL_cleanse(ic, sizeof *ic);
    free(ic);
    atomic_fetch_sub(&live_objects, 1);
    return srtp_err_status_ok;
}

/* key = AES key || 14-byte salt. */
static srtp_err_status_t icm_init(void *sv, const uint8_t *key)
{
    icm_state *s = sv;
    switch (s->key_size) {
    case 16:
        aes128_set_encrypt_key(&s->aes.a128, key);
        s->encrypt = (nettle_cipher_func *)aes128_encrypt;
        break;
    case 24:
        aes192_set_encrypt_key(&s->aes.a192, key);
        s->encrypt = (nettle_cipher_func *)aes192_encrypt;
        break;
    default:
        aes256_set_encrypt_key(&s->aes.a256, key);
        s->encrypt = (nettle_cipher_func *)aes256_encrypt;
        break;
    }
    memset(s->offset, 0, sizeof s->offset);
    memcpy(s->offset, key + s->key_size, SALT_ICM);
    memcpy(s->base, s->offset, sizeof s->base);
    memcpy(s->counter, s->offset, sizeof s->counter);
    s->ks_used = 16;
    return srtp_err_status_ok;
}

/* iv is 16 bytes (packet index and SSRC, or the KDF label). Only the counter
 * block changes; the key schedule stays. */
static srtp_err_status_t icm_set_iv(void *sv, uint8_t *iv, srtp_cipher_direction_t dir)
{
    (void)dir;
    icm_state *s = sv;
    for (int i = 0; i < 16; i++)
        s->base[i] = s->offset[i] ^ iv[i];
    memcpy(s->counter, s->base, sizeof s->counter);
    s->ks_used = 16;
    return srtp_err_status_ok;
}

/* After the keystream block whose counter ends in ffff: the block counter is
 * the low 16 bits only (RFC 3711 4.1.1; NSS's CK_AES_CTR_PARAMS.ulCounterBits
 * = 16 in the original), while Nettle's CTR carries into the whole block. SRTP's
 * IVs have those bits zero and packets are far below 1 MiB, so the wrap never
 * comes in practice; when it does, the rest of the block stays the packet's. */
static inline void icm_unwrap(icm_state *s)
{
    if (s->counter[14] == 0 && s->counter[15] == 0)
        memcpy(s->counter, s->base, 14);
}

/* XORs the keystream in place; successive calls continue the keystream, also
 * from the middle of a block, as libsrtp's header-extension encryption
 * expects. Encrypt and decrypt alike. */
static srtp_err_status_t icm_crypt(void *sv, uint8_t *buf, unsigned int *len)
{
    icm_state *s = sv;
    size_t left = *len;
    while (left > 0 && s->ks_used < 16) {
        *buf++ ^= s->ks[s->ks_used++];
        left--;
    }
    while (left >= 16) {
        /* Whole blocks, up to the wrap of the 16-bit block counter. */
        size_t to_wrap = 0x10000u - ((size_t)s->counter[14] << 8 | s->counter[15]);
        size_t blocks = left / 16 < to_wrap ? left / 16 : to_wrap;
        ctr_crypt(&s->aes, s->encrypt, 16, s->counter, blocks * 16, buf, buf);
        icm_unwrap(s);
        buf += blocks * 16, left -= blocks * 16;
    }
    if (left > 0) {
        /* A block cut short: keep the rest of its keystream for the next call. */
        memset(s->ks, 0, sizeof s->ks);
        ctr_crypt(&s->aes, s->encrypt, 16, s->counter, 16, s->ks, s->ks);
        icm_unwrap(s);
        for (s->ks_used = 0; s->ks_used < left; s->ks_used++)
            buf[s->ks_used] ^= s->ks[s->ks_used];
    }
    return srtp_err_status_ok;
}

/* ---------------------------------------------------------------- AES-GCM */

typedef struct gcm_state {
    EVP_CIPHER_CTX *ctx;
    int key_size; /* 16 or 32 */
    int tag_len;  /* 16 or 8 */
    int dir;      /* srtp_direction_encrypt/decrypt since set_iv, else -1 */
} gcm_state;

typedef struct gcm_cipher {
    srtp_cipher_t c;
    gcm_state s;
} gcm_cipher;

static srtp_err_status_t gcm_alloc(srtp_cipher_t **cp, int key_len, int tag_len)
{
    const srtp_cipher_type_t *type;
    int key_size, alg, ix;
    switch (key_len) {
    case 16 + SALT_GCM:
        type = &tm_aes_gcm_128, key_size = 16, alg = SRTP_AES_GCM_128, ix = 0;
        break;
    case 32 + SALT_GCM:
        type = &tm_aes_gcm_256, key_size = 32, alg = SRTP_AES_GCM_256, ix = 1;
        break;
    default:
        return srtp_err_status_bad_param;
    }
    if (tag_len != 16 && tag_len != 8)
        return srtp_err_status_bad_param;
    if (!alg_gcm[ix])
        return srtp_err_status_init_fail;
    gcm_cipher *gc = calloc(1, sizeof *gc);
    if (!gc)
        return srtp_err_status_alloc_fail;
    gc->s.ctx = EVP_CIPHER_CTX_new();
    if (!gc->s.ctx) {
        free(gc);
        return srtp_err_status_alloc_fail;
    }
    gc->s.key_size = key_size;
    gc->s.tag_len = tag_len;
    gc->s.dir = -1;
    gc->c.type = type;
    gc->c.state = &gc->s;
    gc->c.key_len = key_len;
    gc->c.algorithm = alg;
    atomic_fetch_add(&live_objects, 1);
    *cp = &gc->c;
    return srtp_err_status_ok;
}

static srtp_err_status_t gcm_dealloc(srtp_cipher_t *c)
{
    if (!c)
        return srtp_err_status_bad_param;
    gcm_cipher *gc = (gcm_cipher *)c;
    EVP_CIPHER_CTX_free(gc->s.ctx);
    OPENSSL_cleanse(gc, sizeof *gc);
    free(gc);
    atomic_fetch_sub(&live_objects, 1);
    return srtp_err_status_ok;
}

/* key = AES key (|| salt, which libsrtp uses for the IV itself). */
static srtp_err_status_t gcm_init(void *sv, const uint8_t *key)
{
    gcm_state *s = sv;
    s->dir = -1;
    const EVP_CIPHER *alg = alg_gcm[s->key_size == 16 ? 0 : 1];
    if (!EVP_CipherInit_ex(s->ctx, alg, NULL, key, NULL, 1))
        return srtp_err_status_init_fail;
    return srtp_err_status_ok;
}

/* iv is 12 bytes. The direction is fixed here for the packet: EVP needs it
 * before the AAD. */
static srtp_err_status_t gcm_set_iv(void *sv, uint8_t *iv, srtp_cipher_direction_t dir)
{
    gcm_state *s = sv;
    if (dir != srtp_direction_encrypt && dir != srtp_direction_decrypt)
        return srtp_err_status_bad_param;
    s->dir = -1;
    if (!EVP_CipherInit_ex(s->ctx, NULL, NULL, NULL, iv, dir == srtp_direction_encrypt))
        return srtp_err_status_init_fail;
    s->dir = (int)dir;
    return srtp_err_status_ok;
}

/* May be called more than once per packet (SRTCP adds the trailer as AAD). */
static srtp_err_status_t gcm_set_aad(void *sv, const uint8_t *aad, uint32_t len)
{
    gcm_state *s = sv;
    if (s->dir < 0 || len > INT32_MAX)
        return srtp_err_status_bad_param;
    int out = 0;
    if (len && !EVP_CipherUpdate(s->ctx, NULL, &out, aad, (int)len))
        return srtp_err_status_algo_fail;
    return srtp_err_status_ok;
}

static srtp_err_status_t gcm_encrypt(void *sv, uint8_t *buf, unsigned int *len)
{
    gcm_state *s = sv;
    if (s->dir != srtp_direction_encrypt || *len > INT32_MAX)
        return srtp_err_status_bad_param;
    int out = 0;
    if (*len && (!EVP_CipherUpdate(s->ctx, buf, &out, buf, (int)*len) || out != (int)*len))
        return srtp_err_status_cipher_fail;
    return srtp_err_status_ok;
}

/* After encrypt: writes the tag (tag_len bytes) and says how long it is. */
static srtp_err_status_t gcm_get_tag(void *sv, uint8_t *tag, uint32_t *len)
{
    gcm_state *s = sv;
    if (s->dir != srtp_direction_encrypt)
        return srtp_err_status_bad_param;
    s->dir = -1;
    int out = 0;
    uint8_t none[16];
    if (!EVP_CipherFinal_ex(s->ctx, none, &out) ||
        !EVP_CIPHER_CTX_ctrl(s->ctx, EVP_CTRL_AEAD_GET_TAG, s->tag_len, tag))
        return srtp_err_status_algo_fail;
    *len = (uint32_t)s->tag_len;
    return srtp_err_status_ok;
}

/* buf holds ciphertext || tag; *len counts both. On success *len loses the tag. */
static srtp_err_status_t gcm_decrypt(void *sv, uint8_t *buf, unsigned int *len)
{
    gcm_state *s = sv;
    if (s->dir != srtp_direction_decrypt || *len < (unsigned int)s->tag_len || *len > INT32_MAX)
        return srtp_err_status_bad_param;
    s->dir = -1;
    int n = (int)*len - s->tag_len, out = 0;
    if (!EVP_CIPHER_CTX_ctrl(s->ctx, EVP_CTRL_AEAD_SET_TAG, s->tag_len, buf + n))
        return srtp_err_status_algo_fail;
    if (n && (!EVP_CipherUpdate(s->ctx, buf, &out, buf, n) || out != n))
        return srtp_err_status_cipher_fail;
    uint8_t none[16];
    if (!EVP_CipherFinal_ex(s->ctx, none, &out))
        return srtp_err_status_auth_fail;
    *len = (unsigned int)n;
    return srtp_err_status_ok;
}

/* -------------------------------------------------------------- HMAC-SHA1 */

/* Nettle's hmac_sha1_digest leaves its context ready for the next message, but
 * libsrtp may start a message and drop it (a packet refused between start and
 * compute), so each start copies the keyed context afresh: a struct copy of a
 * few hundred bytes, no pointer inside. */
typedef struct mac_state {
    struct hmac_sha1_ctx keyed; /* after set_key; never updated */
    struct hmac_sha1_ctx work;  /* this packet's MAC */
} mac_state;

typedef struct mac_auth {
    srtp_auth_t a;
    mac_state s;
} mac_auth;

static srtp_err_status_t mac_alloc(srtp_auth_t **ap, int key_len, int out_len)
{
    if (out_len < 0 || out_len > SHA1_DIGEST_SIZE || key_len < 0)
        return srtp_err_status_bad_param;
    mac_auth *h = calloc(1, sizeof *h);
    if (!h)
        return srtp_err_status_alloc_fail;
    h->a.type = &tm_hmac_sha1;
    h->a.state = &h->s;
    h->a.out_len = out_len;
    h->a.key_len = key_len;
    h->a.prefix_len = 0;
    atomic_fetch_add(&live_objects, 1);
    *ap = &h->a;
    return srtp_err_status_ok;
}

static srtp_err_status_t mac_dealloc(srtp_auth_t *a)
{
    if (!a)
        return srtp_err_status_bad_param;
    mac_auth *h = (mac_auth *)a;
    OPENSSL_cleanse(h, sizeof *h);
    free(h);
    atomic_fetch_sub(&live_objects, 1);
    return srtp_err_status_ok;
}

static srtp_err_status_t mac_start(void *sv)
{
    mac_state *s = sv;
    s->work = s->keyed;
    return srtp_err_status_ok;
}

/* RFC 2104 (Nettle hashes a key longer than a block first). Leaves the object
 * started, as libsrtp's self test computes right after init. */
static srtp_err_status_t mac_init(void *sv, const uint8_t *key, int key_len)
{
    mac_state *s = sv;
    if (key_len < 0)
        return srtp_err_status_bad_param;
    hmac_sha1_set_key(&s->keyed, (size_t)key_len, key);
    return mac_start(s);
}

static srtp_err_status_t mac_update(void *sv, const uint8_t *msg, int len)
{
    mac_state *s = sv;
    if (len < 0)
        return srtp_err_status_bad_param;
    if (len)
        hmac_sha1_update(&s->work, (size_t)len, msg);
    return srtp_err_status_ok;
}

/* Hashes the last bytes of the message and writes tag_len bytes of the MAC
 * (Nettle truncates to the length asked for). */
static srtp_err_status_t mac_compute(void *sv, const uint8_t *msg, int len, int tag_len,
                                     uint8_t *tag)
{
    mac_state *s = sv;
    if (tag_len < 0 || tag_len > SHA1_DIGEST_SIZE)
        return srtp_err_status_bad_param;
    srtp_err_status_t st = mac_update(s, msg, len);
    if (st != srtp_err_status_ok)
        return st;
    hmac_sha1_digest(&s->work, (size_t)tag_len, tag);
    return srtp_err_status_ok;
}

/* ------------------------------------------------------------- the tables */

/* libsrtp's originals (NSS in Debian's build). Their test vectors become ours,
 * so libsrtp's self test of a replacement checks the same known answers. */
extern const srtp_cipher_type_t srtp_aes_icm_128, srtp_aes_icm_192, srtp_aes_icm_256;
extern const srtp_cipher_type_t srtp_aes_gcm_128, srtp_aes_gcm_256;
extern const srtp_auth_type_t srtp_hmac;

#define ICM_TYPE(bits)                                                                             \
    {                                                                                              \
        .alloc = icm_alloc, .dealloc = icm_dealloc, .init = icm_init, .encrypt = icm_crypt,        \
        .decrypt = icm_crypt, .set_iv = icm_set_iv,                                                \
        .description = "AES-" #bits " counter mode using Nettle (telemed)",                        \
        .id = SRTP_AES_ICM_##bits,                                                                 \
    }
#define GCM_TYPE(bits)                                                                             \
    {                                                                                              \
        .alloc = gcm_alloc, .dealloc = gcm_dealloc, .init = gcm_init, .set_aad = gcm_set_aad,      \
        .encrypt = gcm_encrypt, .decrypt = gcm_decrypt, .set_iv = gcm_set_iv,                      \
        .get_tag = gcm_get_tag, .description = "AES-" #bits " GCM using OpenSSL EVP (telemed)",    \
        .id = SRTP_AES_GCM_##bits,                                                                 \
    }

/* Not const: test_data is read from the originals at run time (another
 * library's data is no constant initializer), once, before any use. */
static srtp_cipher_type_t tm_aes_icm_128 = ICM_TYPE(128);
static srtp_cipher_type_t tm_aes_icm_192 = ICM_TYPE(192);
static srtp_cipher_type_t tm_aes_icm_256 = ICM_TYPE(256);
static srtp_cipher_type_t tm_aes_gcm_128 = GCM_TYPE(128);
static srtp_cipher_type_t tm_aes_gcm_256 = GCM_TYPE(256);
static srtp_auth_type_t tm_hmac_sha1 = {
    .alloc = mac_alloc,
    .dealloc = mac_dealloc,
    .init = mac_init,
    .compute = mac_compute,
    .update = mac_update,
    .start = mac_start,
    .description = "HMAC-SHA1 using Nettle (telemed)",
    .id = SRTP_HMAC_SHA1,
};

static pthread_once_t prepared = PTHREAD_ONCE_INIT;
static bool prepare_ok;

/* Fetches the algorithms and borrows the test vectors. Never undone: the types
 * may be in libsrtp's kernel until the process ends. */
static void prepare(void)
{
    static const char *gcm[2] = {"AES-128-GCM", "AES-256-GCM"};
    prepare_ok = true;
    for (int i = 0; i < 2; i++)
        prepare_ok &= (alg_gcm[i] = EVP_CIPHER_fetch(NULL, gcm[i], NULL)) != NULL;
    tm_aes_icm_128.test_data = srtp_aes_icm_128.test_data;
    tm_aes_icm_192.test_data = srtp_aes_icm_192.test_data;
    tm_aes_icm_256.test_data = srtp_aes_icm_256.test_data;
    tm_aes_gcm_128.test_data = srtp_aes_gcm_128.test_data;
    tm_aes_gcm_256.test_data = srtp_aes_gcm_256.test_data;
    tm_hmac_sha1.test_data = srtp_hmac.test_data;
}

static bool ensure_prepared(void)
{
    pthread_once(&prepared, prepare);
    return prepare_ok;
}

int tm__srtp_crypto_install(const char **failed)
{
    static const struct {
        const srtp_cipher_type_t *t;
        srtp_cipher_type_id_t id;
    } ciphers[] = {
        {&tm_aes_icm_128, SRTP_AES_ICM_128}, {&tm_aes_icm_192, SRTP_AES_ICM_192},
        {&tm_aes_icm_256, SRTP_AES_ICM_256}, {&tm_aes_gcm_128, SRTP_AES_GCM_128},
        {&tm_aes_gcm_256, SRTP_AES_GCM_256},
    };
    int rc = 0;
    if (failed)
        *failed = NULL;
    if (!ensure_prepared()) {
        if (failed)
            *failed = "openssl_fetch";
        return TM_EUNSUPPORTED;
    }
    /* Each replacement stands alone: one refused (its self test failed) leaves
     * libsrtp's original for that id, the others still go in. */
    for (size_t i = 0; i < sizeof ciphers / sizeof ciphers[0]; i++) {
        if (srtp_replace_cipher_type(ciphers[i].t, ciphers[i].id) != srtp_err_status_ok) {
            if (failed && !*failed)
                *failed = ciphers[i].t->description;
            rc = TM_EUNSUPPORTED;
        }
    }
    if (srtp_replace_auth_type(&tm_hmac_sha1, SRTP_HMAC_SHA1) != srtp_err_status_ok) {
        if (failed && !*failed)
            *failed = tm_hmac_sha1.description;
        rc = TM_EUNSUPPORTED;
    }
    return rc;
}

int tm__srtp_crypto_restore(void)
{
    static const struct {
        const srtp_cipher_type_t *t;
        srtp_cipher_type_id_t id;
    } ciphers[] = {
        {&srtp_aes_icm_128, SRTP_AES_ICM_128}, {&srtp_aes_icm_192, SRTP_AES_ICM_192},
        {&srtp_aes_icm_256, SRTP_AES_ICM_256}, {&srtp_aes_gcm_128, SRTP_AES_GCM_128},
        {&srtp_aes_gcm_256, SRTP_AES_GCM_256},
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof ciphers / sizeof ciphers[0]; i++)
        if (srtp_replace_cipher_type(ciphers[i].t, ciphers[i].id) != srtp_err_status_ok)
            rc = TM_EUNSUPPORTED;
    if (srtp_replace_auth_type(&srtp_hmac, SRTP_HMAC_SHA1) != srtp_err_status_ok)
        rc = TM_EUNSUPPORTED;
    return rc;
}

const struct srtp_cipher_type_t *tm__srtp_crypto_cipher_type(int id)
{
    if (!ensure_prepared())
        return NULL;
    switch (id) {
    case SRTP_AES_ICM_128:
        return &tm_aes_icm_128;
    case SRTP_AES_ICM_192:
        return &tm_aes_icm_192;
    case SRTP_AES_ICM_256:
        return &tm_aes_icm_256;
    case SRTP_AES_GCM_128:
        return &tm_aes_gcm_128;
    case SRTP_AES_GCM_256:
        return &tm_aes_gcm_256;
    default:
        return NULL;
    }
}

const struct srtp_auth_type_t *tm__srtp_crypto_hmac_type(void)
{
    return ensure_prepared() ? &tm_hmac_sha1 : NULL;
}

int tm__srtp_crypto_live_objects(void)
{
    return atomic_load(&live_objects);
}

/*
 * test_srtp_crypto.c - our ciphers and HMAC for libsrtp (media/srtp_crypto.c)
 * against libsrtp's own originals (NSS in Debian's build), which stay reachable
 * through their exported type tables after the kernel entries are replaced:
 * - libsrtp's self tests (its vectors, and the originals') pass for ours;
 * - AES-ICM 128/192/256, AES-GCM 128/256 (16- and 8-byte tags) and HMAC-SHA1
 *   give byte-identical output to the originals on random keys, IVs, AAD and
 *   lengths, also when the input comes in pieces, and GCM refuses a flipped bit;
 * - whole SRTP/SRTCP sessions for AES_CM_128_HMAC_SHA1_80 and AEAD_AES_128_GCM:
 *   tm__srtp (ours) and a libsrtp session made before the swap (originals)
 *   protect to the same bytes, each unprotects the other's packets, and a
 *   flipped bit anywhere in a packet is an authentication failure;
 * - per packet, OpenSSL allocates nothing, for GCM and for AES-CM with HMAC
 *   (HMAC-SHA1 is Nettle's, on contexts in our own state).
 * Random inputs come from a seeded generator; the seed is printed and can be
 * set with TM_TEST_SEED to replay a failure.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <srtp2/auth.h>
#include <srtp2/cipher.h>
#include <srtp2/srtp.h>

#include "dtls_srtp_internal.h"
#include "tm_test.h"

/* libsrtp's originals: exported data, declared only in its private headers. */
extern const srtp_cipher_type_t srtp_aes_icm_128, srtp_aes_icm_192, srtp_aes_icm_256;
extern const srtp_cipher_type_t srtp_aes_gcm_128, srtp_aes_gcm_256;
extern const srtp_auth_type_t srtp_hmac;

/* ------------------------------------------------------------ helpers */

static uint64_t rng_state;

static uint32_t rnd(void)
{
    /* xorshift64*: reproducible from the printed seed. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ULL) >> 32);
}

static void rnd_bytes(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rnd();
}

/* OpenSSL's allocations, counted through CRYPTO_set_mem_functions. */
static atomic_long ossl_allocs;
static bool ossl_counting;

static void *count_malloc(size_t n, const char *file, int line)
{
    (void)file, (void)line;
    atomic_fetch_add(&ossl_allocs, 1);
    return malloc(n);
}

static void *count_realloc(void *p, size_t n, const char *file, int line)
{
    (void)file, (void)line;
    atomic_fetch_add(&ossl_allocs, 1);
    return realloc(p, n);
}

static void count_free(void *p, const char *file, int line)
{
    (void)file, (void)line;
    free(p);
}

#define ST_OK(expr) CHECK_EQ_INT((expr), srtp_err_status_ok)

/* --------------------------------------------------- libsrtp self tests */

static void test_libsrtp_self_tests_pass(void)
{
    const srtp_cipher_type_t *orig[] = {&srtp_aes_icm_128, &srtp_aes_icm_192, &srtp_aes_icm_256,
                                        &srtp_aes_gcm_128, &srtp_aes_gcm_256};
    for (size_t i = 0; i < sizeof orig / sizeof orig[0]; i++) {
        const srtp_cipher_type_t *ours = tm__srtp_crypto_cipher_type(orig[i]->id);
        CHECK(ours != NULL);
        CHECK(ours != orig[i]);
        CHECK_EQ_INT(ours->id, orig[i]->id);
        ST_OK(srtp_cipher_type_self_test(ours));
        ST_OK(srtp_cipher_type_test(ours, orig[i]->test_data));
    }
    const srtp_auth_type_t *h = tm__srtp_crypto_hmac_type();
    CHECK(h != NULL && h != &srtp_hmac);
    ST_OK(srtp_auth_type_self_test(h));
    ST_OK(srtp_auth_type_test(h, srtp_hmac.test_data));
    /* And a wrong answer is caught: the HMAC vector with a flipped tag bit. */
    const srtp_auth_test_case_t *tc = srtp_hmac.test_data;
    uint8_t bad_tag[64];
    CHECK(tc->tag_length_octets <= (int)sizeof bad_tag);
    memcpy(bad_tag, tc->tag, (size_t)tc->tag_length_octets);
    bad_tag[0] ^= 1;
    srtp_auth_test_case_t bad = *tc;
    bad.tag = bad_tag;
    bad.next_test_case = NULL;
    CHECK(srtp_auth_type_test(h, &bad) != srtp_err_status_ok);
}

/* ------------------------------------------------------------- AES-ICM */

static void icm_compare(const srtp_cipher_type_t *orig, int key_len)
{
    const srtp_cipher_type_t *ours = tm__srtp_crypto_cipher_type(orig->id);
    srtp_cipher_t *a = NULL, *b = NULL;
    ST_OK(srtp_cipher_type_alloc(orig, &a, key_len, 0));
    ST_OK(srtp_cipher_type_alloc(ours, &b, key_len, 0));
    CHECK(b->type == ours);
    CHECK_EQ_INT(b->algorithm, a->algorithm);
    CHECK_EQ_INT(b->key_len, a->key_len);
    uint8_t key[64], iv[16], x[1600], y[1600];
    for (int round = 0; round < 300; round++) {
        if (round % 25 == 0) {
            rnd_bytes(key, (size_t)key_len);
            ST_OK(srtp_cipher_init(a, key));
            ST_OK(srtp_cipher_init(b, key));
        }
        rnd_bytes(iv, sizeof iv);
        unsigned int len = rnd() % 1501, la = len, lb, cut = len ? rnd() % len : 0;
        if (round % 10 == 0) {
            /* The 16-bit block counter wraps inside this packet: it must not
             * carry into the rest of the counter block. */
            iv[14] = 0xff, iv[15] = (uint8_t)(0xf0 + rnd() % 16);
            len = la = 1500, cut = rnd() % len;
        }
        rnd_bytes(x, len);
        memcpy(y, x, len);
        ST_OK(srtp_cipher_set_iv(a, iv, srtp_direction_encrypt));
        ST_OK(srtp_cipher_set_iv(b, iv, srtp_direction_encrypt));
        ST_OK(srtp_cipher_encrypt(a, x, &la));
        /* Ours in two pieces at an odd place: the keystream must carry on. */
        lb = cut;
        ST_OK(srtp_cipher_encrypt(b, y, &lb));
        CHECK_EQ_INT(lb, cut);
        lb = len - cut;
        ST_OK(srtp_cipher_encrypt(b, y + cut, &lb));
        CHECK_EQ_INT(la, len);
        CHECK_EQ_INT(lb, len - cut);
        CHECK(memcmp(x, y, len) == 0);
        /* Decrypt is the same keystream. */
        ST_OK(srtp_cipher_set_iv(b, iv, srtp_direction_decrypt));
        lb = len;
        ST_OK(srtp_cipher_decrypt(b, y, &lb));
        ST_OK(srtp_cipher_set_iv(a, iv, srtp_direction_decrypt));
        la = len;
        ST_OK(srtp_cipher_decrypt(a, x, &la));
        CHECK(memcmp(x, y, len) == 0);
    }
    ST_OK(srtp_cipher_dealloc(a));
    ST_OK(srtp_cipher_dealloc(b));
}

static void test_aes_icm_matches_libsrtp(void)
{
    icm_compare(&srtp_aes_icm_128, 30);
    icm_compare(&srtp_aes_icm_192, 38);
    icm_compare(&srtp_aes_icm_256, 46);
    /* Wrong key lengths are refused. */
    srtp_cipher_t *c = NULL;
    CHECK(srtp_cipher_type_alloc(tm__srtp_crypto_cipher_type(SRTP_AES_ICM_128), &c, 16, 0) !=
          srtp_err_status_ok);
}

/* ------------------------------------------------------------- AES-GCM */

/* One packet through a GCM cipher: AAD in one or two pieces, then data. */
static void gcm_seal(srtp_cipher_t *c, const uint8_t *iv, const uint8_t *aad, unsigned aad_len,
                     unsigned aad_cut, uint8_t *buf, unsigned *len)
{
    uint32_t tag_len = 0;
    unsigned n = *len;
    ST_OK(srtp_cipher_set_iv(c, (uint8_t *)iv, srtp_direction_encrypt));
    ST_OK(srtp_cipher_set_aad(c, aad, aad_cut));
    ST_OK(srtp_cipher_set_aad(c, aad + aad_cut, aad_len - aad_cut));
    ST_OK(srtp_cipher_encrypt(c, buf, &n));
    CHECK_EQ_INT(n, *len);
    ST_OK(srtp_cipher_get_tag(c, buf + n, &tag_len));
    *len = n + tag_len;
}

static srtp_err_status_t gcm_open(srtp_cipher_t *c, const uint8_t *iv, const uint8_t *aad,
                                  unsigned aad_len, uint8_t *buf, unsigned *len)
{
    srtp_err_status_t st = srtp_cipher_set_iv(c, (uint8_t *)iv, srtp_direction_decrypt);
    if (st == srtp_err_status_ok)
        st = srtp_cipher_set_aad(c, aad, aad_len);
    if (st == srtp_err_status_ok)
        st = srtp_cipher_decrypt(c, buf, len);
    return st;
}

static void gcm_compare(const srtp_cipher_type_t *orig, int key_len, int tag_len)
{
    const srtp_cipher_type_t *ours = tm__srtp_crypto_cipher_type(orig->id);
    srtp_cipher_t *a = NULL, *b = NULL;
    ST_OK(srtp_cipher_type_alloc(orig, &a, key_len, tag_len));
    ST_OK(srtp_cipher_type_alloc(ours, &b, key_len, tag_len));
    CHECK(b->type == ours);
    CHECK_EQ_INT(b->algorithm, a->algorithm);
    uint8_t key[64], iv[12], aad[64], x[1600], y[1600], p[1600];
    for (int round = 0; round < 200; round++) {
        if (round % 20 == 0) {
            rnd_bytes(key, (size_t)key_len);
            ST_OK(srtp_cipher_init(a, key));
            ST_OK(srtp_cipher_init(b, key));
        }
        rnd_bytes(iv, sizeof iv);
        unsigned aad_len = 8 + rnd() % 57, cut = rnd() % (aad_len + 1);
        rnd_bytes(aad, aad_len);
        unsigned len = rnd() % 1501, la = len, lb = len;
        rnd_bytes(p, len);
        memcpy(x, p, len);
        memcpy(y, p, len);
        gcm_seal(a, iv, aad, aad_len, aad_len, x, &la);
        gcm_seal(b, iv, aad, aad_len, cut, y, &lb);
        CHECK_EQ_INT(la, len + (unsigned)tag_len);
        CHECK_EQ_INT(lb, la);
        CHECK(memcmp(x, y, la) == 0);
        /* Each opens the other's (the same bytes, but through each decrypt). */
        ST_OK(gcm_open(b, iv, aad, aad_len, x, &la));
        CHECK_EQ_INT(la, len);
        CHECK(memcmp(x, p, len) == 0);
        ST_OK(gcm_open(a, iv, aad, aad_len, y, &lb));
        CHECK_EQ_INT(lb, len);
        CHECK(memcmp(y, p, len) == 0);
        /* A flipped bit in data, tag or AAD is refused by ours. */
        memcpy(x, p, len);
        la = len;
        gcm_seal(b, iv, aad, aad_len, cut, x, &la);
        unsigned bit = rnd() % ((la + aad_len) * 8);
        bool in_aad = bit / 8 >= la;
        if (in_aad)
            aad[bit / 8 - la] ^= (uint8_t)(1u << (bit % 8));
        else
            x[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        CHECK_EQ_INT(gcm_open(b, iv, aad, aad_len, x, &la), srtp_err_status_auth_fail);
        if (in_aad)
            aad[bit / 8 - la] ^= (uint8_t)(1u << (bit % 8));
    }
    ST_OK(srtp_cipher_dealloc(a));
    ST_OK(srtp_cipher_dealloc(b));
}

static void test_aes_gcm_matches_libsrtp(void)
{
    gcm_compare(&srtp_aes_gcm_128, 28, 16);
    gcm_compare(&srtp_aes_gcm_128, 28, 8);
    gcm_compare(&srtp_aes_gcm_256, 44, 16);
    gcm_compare(&srtp_aes_gcm_256, 44, 8);
    srtp_cipher_t *c = NULL;
    CHECK(srtp_cipher_type_alloc(tm__srtp_crypto_cipher_type(SRTP_AES_GCM_128), &c, 28, 12) !=
          srtp_err_status_ok);
}

/* ----------------------------------------------------------- HMAC-SHA1 */

static void test_hmac_matches_libsrtp(void)
{
    const srtp_auth_type_t *ours = tm__srtp_crypto_hmac_type();
    static const int key_lens[] = {20, 20, 20, 1, 64, 65, 100};
    static const int tag_lens[] = {10, 4, 20};
    uint8_t key[128], msg[1600], ta[20], tb[20];
    for (size_t k = 0; k < sizeof key_lens / sizeof key_lens[0]; k++) {
        for (size_t t = 0; t < sizeof tag_lens / sizeof tag_lens[0]; t++) {
            srtp_auth_t *a = NULL, *b = NULL;
            ST_OK(srtp_auth_type_alloc(&srtp_hmac, &a, key_lens[k], tag_lens[t]));
            ST_OK(srtp_auth_type_alloc(ours, &b, key_lens[k], tag_lens[t]));
            CHECK(b->type == ours);
            CHECK_EQ_INT(srtp_auth_get_tag_length(b), tag_lens[t]);
            CHECK_EQ_INT(srtp_auth_get_prefix_length(b), 0);
            rnd_bytes(key, (size_t)key_lens[k]);
            ST_OK(srtp_auth_init(a, key));
            ST_OK(srtp_auth_init(b, key));
            for (int round = 0; round < 40; round++) {
                int len = (int)(rnd() % 1501), cut = len ? (int)(rnd() % (unsigned)len) : 0;
                rnd_bytes(msg, (size_t)len);
                memset(ta, 0, sizeof ta);
                memset(tb, 0, sizeof tb);
                /* As srtp_protect does: start, the packet, then the ROC. */
                ST_OK(srtp_auth_start(a));
                ST_OK(srtp_auth_update(a, msg, len));
                ST_OK(srtp_auth_compute(a, msg, 0, ta));
                ST_OK(srtp_auth_start(b));
                ST_OK(srtp_auth_update(b, msg, cut));
                ST_OK(srtp_auth_compute(b, msg + cut, len - cut, tb));
                CHECK(memcmp(ta, tb, sizeof ta) == 0);
                /* A flipped bit changes the tag. */
                if (len) {
                    msg[rnd() % (unsigned)len] ^= 0x10;
                    ST_OK(srtp_auth_start(b));
                    ST_OK(srtp_auth_compute(b, msg, len, tb));
                    CHECK(memcmp(ta, tb, (size_t)tag_lens[t]) != 0);
                }
            }
            ST_OK(srtp_auth_dealloc(a));
            ST_OK(srtp_auth_dealloc(b));
        }
    }
}

/* --------------------------------------------------- whole SRTP sessions */

static void ref_policy(srtp_policy_t *p, tm__srtp_profile profile, const uint8_t *key, bool inbound)
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
    p->window_size = 1024;
    p->allow_repeat_tx = 1;
}

typedef struct ref_pair {
    srtp_t out, in;
} ref_pair;

/* Made while the kernel still holds libsrtp's originals: these sessions keep
 * them for their lifetime. */
static ref_pair ref_pair_new(tm__srtp_profile profile, const uint8_t *key)
{
    ref_pair r;
    srtp_policy_t po, pi;
    ref_policy(&po, profile, key, false);
    ref_policy(&pi, profile, key, true);
    ST_OK(srtp_create(&r.out, &po));
    ST_OK(srtp_create(&r.in, &pi));
    return r;
}

static size_t make_rtp(uint8_t *buf, uint16_t seq, uint32_t ssrc, size_t payload)
{
    buf[0] = 0x80;
    buf[1] = 96;
    buf[2] = (uint8_t)(seq >> 8), buf[3] = (uint8_t)seq;
    uint32_t ts = (uint32_t)seq * 3000u;
    buf[4] = (uint8_t)(ts >> 24), buf[5] = (uint8_t)(ts >> 16), buf[6] = (uint8_t)(ts >> 8),
    buf[7] = (uint8_t)ts;
    buf[8] = (uint8_t)(ssrc >> 24), buf[9] = (uint8_t)(ssrc >> 16), buf[10] = (uint8_t)(ssrc >> 8),
    buf[11] = (uint8_t)ssrc;
    rnd_bytes(buf + 12, payload);
    return 12 + payload;
}

static size_t make_rtcp(uint8_t *buf, uint32_t ssrc, size_t words)
{
    /* A receiver report with `words` 32-bit words after the header. */
    buf[0] = 0x80;
    buf[1] = 201;
    buf[2] = (uint8_t)(words >> 8), buf[3] = (uint8_t)words;
    buf[4] = (uint8_t)(ssrc >> 24), buf[5] = (uint8_t)(ssrc >> 16), buf[6] = (uint8_t)(ssrc >> 8),
    buf[7] = (uint8_t)ssrc;
    rnd_bytes(buf + 8, words * 4 - 4);
    return 4 + words * 4;
}

enum { PKT_MAX = 1500 + TM__SRTP_MAX_TRAILER };

static void sessions_compare(tm__srtp_profile profile, const uint8_t *key, ref_pair ref)
{
    tm__srtp_keys keys = {.profile = profile};
    keys.len = profile == TM__SRTP_AEAD_AES_128_GCM ? 28 : 30;
    memcpy(keys.local, key, keys.len);
    memcpy(keys.remote, key, keys.len);
    int live_before = tm__srtp_crypto_live_objects();
    tm__srtp *ours = tm__srtp_new(&keys);
    CHECK(ours != NULL);
    /* Our ciphers (and for AES-CM our HMAC) are the ones the session holds. */
    CHECK(tm__srtp_crypto_live_objects() >= live_before + 4);

    static const uint32_t ssrcs[] = {0x11223344, 0xcafef00d};
    uint8_t a[PKT_MAX], b[PKT_MAX], plain[PKT_MAX];
    for (int i = 0; i < 400; i++) {
        uint32_t ssrc = ssrcs[i % 2];
        bool rtcp = i % 5 == 4;
        size_t plen = rtcp ? make_rtcp(plain, ssrc, 1 + rnd() % 40)
                           : make_rtp(plain, (uint16_t)(65400 + i / 2), ssrc, rnd() % 1200);
        /* Sequence numbers wrap past 65535 on the way: the ROC moves. */
        memcpy(a, plain, plen);
        memcpy(b, plain, plen);
        int la = (int)plen;
        size_t lb = plen;
        if (rtcp) {
            ST_OK(srtp_protect_rtcp(ref.out, a, &la));
            CHECK_EQ_INT(tm__srtp_protect_rtcp(ours, b, &lb), 0);
        } else {
            ST_OK(srtp_protect(ref.out, a, &la));
            CHECK_EQ_INT(tm__srtp_protect_rtp(ours, b, &lb), 0);
        }
        CHECK_EQ_INT(lb, (size_t)la);
        CHECK(memcmp(a, b, lb) == 0);

        /* A flipped bit anywhere (header, payload, index, tag) is refused, and
         * does not spend the packet's place in the replay window. */
        uint8_t t[PKT_MAX];
        memcpy(t, b, lb);
        size_t bit = rnd() % (lb * 8), lt = lb;
        t[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        if (rtcp)
            CHECK(tm__srtp_unprotect_rtcp(ours, t, &lt) != 0);
        else
            CHECK(tm__srtp_unprotect_rtp(ours, t, &lt) != 0);

        /* Ours opens the originals' packet, the originals open ours. */
        size_t l = (size_t)la;
        int m = (int)lb;
        if (rtcp) {
            CHECK_EQ_INT(tm__srtp_unprotect_rtcp(ours, a, &l), 0);
            ST_OK(srtp_unprotect_rtcp(ref.in, b, &m));
        } else {
            CHECK_EQ_INT(tm__srtp_unprotect_rtp(ours, a, &l), 0);
            ST_OK(srtp_unprotect(ref.in, b, &m));
        }
        CHECK_EQ_INT(l, plen);
        CHECK_EQ_INT(m, (int)plen);
        CHECK(memcmp(a, plain, plen) == 0);
        CHECK(memcmp(b, plain, plen) == 0);
    }
    tm__srtp_free(ours);
    CHECK_EQ_INT(tm__srtp_crypto_live_objects(), live_before);
    ST_OK(srtp_dealloc(ref.out));
    ST_OK(srtp_dealloc(ref.in));
}

/* OpenSSL allocations per protect+unprotect pair with our ciphers. */
static double allocs_per_packet(tm__srtp_profile profile)
{
    uint8_t key[30], buf[PKT_MAX];
    rnd_bytes(key, sizeof key);
    tm__srtp_keys keys = {.profile = profile};
    keys.len = profile == TM__SRTP_AEAD_AES_128_GCM ? 28 : 30;
    memcpy(keys.local, key, keys.len);
    memcpy(keys.remote, key, keys.len);
    tm__srtp *s = tm__srtp_new(&keys);
    CHECK(s != NULL);
    enum { N = 500 };
    long before = atomic_load(&ossl_allocs);
    for (int i = 0; i < N; i++) {
        size_t len = make_rtp(buf, (uint16_t)i, 0x5eed, 1000);
        CHECK_EQ_INT(tm__srtp_protect_rtp(s, buf, &len), 0);
        CHECK_EQ_INT(tm__srtp_unprotect_rtp(s, buf, &len), 0);
    }
    long n = atomic_load(&ossl_allocs) - before;
    tm__srtp_free(s);
    return (double)n / (2.0 * N);
}

static const uint8_t *session_key(uint8_t *key)
{
    rnd_bytes(key, 30);
    return key;
}

int main(void)
{
    /* Before anything asks OpenSSL for memory, or it refuses. */
    ossl_counting = CRYPTO_set_mem_functions(count_malloc, count_realloc, count_free) == 1;
    const char *seed_env = getenv("TM_TEST_SEED");
    uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : (uint64_t)time(NULL);
    rng_state = seed ? seed : 1;
    printf("seed %" PRIu64 " (TM_TEST_SEED to replay)\n", seed);

    /* The reference sessions come first, while libsrtp has its originals;
     * the first tm__srtp_new then installs ours. */
    ST_OK(srtp_init());
    uint8_t kcm[30], kgcm[30];
    ref_pair ref_cm = ref_pair_new(TM__SRTP_AES128_CM_SHA1_80, session_key(kcm));
    ref_pair ref_gcm = ref_pair_new(TM__SRTP_AEAD_AES_128_GCM, session_key(kgcm));
    const char *failed = NULL;
    CHECK_EQ_INT(tm__srtp_crypto_install(&failed), 0);
    CHECK(failed == NULL);
    /* Installing twice (srtp.c and a test, or two libraries) is harmless. */
    CHECK_EQ_INT(tm__srtp_crypto_install(NULL), 0);

    RUN(test_libsrtp_self_tests_pass);
    RUN(test_aes_icm_matches_libsrtp);
    RUN(test_aes_gcm_matches_libsrtp);
    RUN(test_hmac_matches_libsrtp);
    sessions_compare(TM__SRTP_AES128_CM_SHA1_80, kcm, ref_cm);
    printf("ok sessions_aes_cm_128_hmac_sha1_80_match_libsrtp\n");
    sessions_compare(TM__SRTP_AEAD_AES_128_GCM, kgcm, ref_gcm);
    printf("ok sessions_aead_aes_128_gcm_match_libsrtp\n");

    if (ossl_counting) {
        double gcm = allocs_per_packet(TM__SRTP_AEAD_AES_128_GCM);
        double cm = allocs_per_packet(TM__SRTP_AES128_CM_SHA1_80);
        printf("openssl allocations per packet: gcm=%.2f aes_cm_hmac=%.2f\n", gcm, cm);
        CHECK(gcm == 0.0);
        CHECK(cm == 0.0);
    } else {
        printf("skip openssl allocation count (CRYPTO_set_mem_functions refused)\n");
    }
    TEST_DONE();
}

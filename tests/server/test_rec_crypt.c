/*
 * test_rec_crypt.c - the chunked AES-256-GCM recording format on real
 * files: round trips at chunk edges, a writer killed mid-file (aborted or
 * torn mid-chunk) decrypting up to its last whole chunk, and refusals of a
 * wrong key, a flipped bit, swapped chunks and foreign files.
 */
#include "telemed/common.h"
#include "telemed/rec_crypt.h"
#include "tm_test.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <unistd.h>

static char *dir;
static uint8_t key[32];

static char *tmp(const char *name)
{
    return g_build_filename(dir, name, NULL);
}

static uint8_t *pattern(size_t n)
{
    uint8_t *p = g_malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 131u + (i >> 8));
    return p;
}

static GBytes *slurp(const char *path)
{
    char *data = NULL;
    gsize len = 0;
    CHECK(g_file_get_contents(path, &data, &len, NULL));
    return g_bytes_new_take(data, len);
}

static void write_file(const char *path, const uint8_t *data, size_t len)
{
    CHECK(g_file_set_contents(path, (const char *)data, (gssize)len, NULL));
}

/* Writes n bytes of pattern in pieces of `piece`, closes, decrypts, compares. */
static void round_trip(size_t n, size_t piece)
{
    char *enc = tmp("rt.enc"), *dec = tmp("rt.mkv"), *err = NULL;
    g_unlink(enc);
    uint8_t *p = pattern(n);
    tm_rec_writer *w = tm_rec_writer_open(enc, key, &err);
    CHECK(w != NULL);
    for (size_t off = 0; off < n; off += piece)
        CHECK_EQ_INT(tm_rec_writer_write(w, p + off, MIN(piece, n - off)), 0);
    CHECK_EQ_INT(tm_rec_writer_plain_bytes(w), n);
    char sha[65];
    CHECK_EQ_INT(tm_rec_writer_close(w, sha), 0);
    char *want = g_compute_checksum_for_data(G_CHECKSUM_SHA256, p, n);
    CHECK_STR(sha, want);

    GBytes *ct = slurp(enc);
    /* Ciphertext is not the plaintext: look for a 64-byte run of it. */
    if (n >= 64)
        CHECK(memmem(g_bytes_get_data(ct, NULL), g_bytes_get_size(ct), p, 64) == NULL);
    g_bytes_unref(ct);

    CHECK_EQ_INT(tm_rec_decrypt_file(enc, dec, key, &err), 0);
    GBytes *out = slurp(dec);
    CHECK_EQ_INT(g_bytes_get_size(out), n);
    CHECK(n == 0 || memcmp(g_bytes_get_data(out, NULL), p, n) == 0);
    g_bytes_unref(out);
    g_free(want);
    g_free(p);
    g_free(enc);
    g_free(dec);
}

static void test_round_trips(void)
{
    round_trip(0, 1);
    round_trip(1, 1);
    round_trip(TM_REC_CRYPT_CHUNK_MAX, 1000);
    round_trip(TM_REC_CRYPT_CHUNK_MAX + 1, 4096);
    round_trip(3 * TM_REC_CRYPT_CHUNK_MAX + 77, 70000);
}

/* A writer that never closes (the server was killed): sealed chunks come
 * back, the unsealed tail does not, and the result says "cut short". */
static void test_cut_short(void)
{
    char *enc = tmp("cut.enc"), *dec = tmp("cut.mkv"), *err = NULL;
    g_unlink(enc);
    size_t n = 150000;
    uint8_t *p = pattern(n);
    tm_rec_writer *w = tm_rec_writer_open(enc, key, &err);
    CHECK(w != NULL);
    CHECK_EQ_INT(tm_rec_writer_write(w, p, 100000), 0);         /* one full chunk sealed */
    CHECK_EQ_INT(tm_rec_writer_seal(w), 0);                     /* the rest sealed now */
    CHECK_EQ_INT(tm_rec_writer_write(w, p + 100000, 50000), 0); /* buffered only */
    tm_rec_writer_abort(w);

    CHECK_EQ_INT(tm_rec_decrypt_file(enc, dec, key, &err), 1);
    CHECK(err != NULL);
    g_free(err);
    err = NULL;
    GBytes *out = slurp(dec);
    CHECK_EQ_INT(g_bytes_get_size(out), 100000);
    CHECK(memcmp(g_bytes_get_data(out, NULL), p, 100000) == 0);
    g_bytes_unref(out);

    /* Tear the last whole chunk in the middle: only the first chunk stays. */
    GBytes *ct = slurp(enc);
    size_t first = TM_REC_CRYPT_HEADER_LEN + 4 + TM_REC_CRYPT_CHUNK_MAX + TM_REC_CRYPT_TAG_LEN;
    CHECK(g_bytes_get_size(ct) > first + 100);
    write_file(enc, g_bytes_get_data(ct, NULL), first + 100);
    g_bytes_unref(ct);
    CHECK_EQ_INT(tm_rec_decrypt_file(enc, dec, key, &err), 1);
    g_free(err);
    err = NULL;
    out = slurp(dec);
    CHECK_EQ_INT(g_bytes_get_size(out), TM_REC_CRYPT_CHUNK_MAX);
    CHECK(memcmp(g_bytes_get_data(out, NULL), p, TM_REC_CRYPT_CHUNK_MAX) == 0);
    g_bytes_unref(out);
    g_free(p);
    g_free(enc);
    g_free(dec);
}

static void make_two_chunks(const char *enc)
{
    char *err = NULL;
    g_unlink(enc);
    uint8_t *p = pattern(2 * TM_REC_CRYPT_CHUNK_MAX);
    tm_rec_writer *w = tm_rec_writer_open(enc, key, &err);
    CHECK(w != NULL);
    CHECK_EQ_INT(tm_rec_writer_write(w, p, 2 * TM_REC_CRYPT_CHUNK_MAX), 0);
    CHECK_EQ_INT(tm_rec_writer_close(w, NULL), 0);
    g_free(p);
}

static void test_refusals(void)
{
    char *enc = tmp("bad.enc"), *dec = tmp("bad.mkv"), *err = NULL;
    make_two_chunks(enc);

    uint8_t other[32];
    memcpy(other, key, 32);
    other[5] ^= 1;
    CHECK_EQ_INT(tm_rec_decrypt_file(enc, dec, other, &err), TM_EAUTH);
    CHECK(!g_file_test(dec, G_FILE_TEST_EXISTS)); /* nothing half-written left */
    g_free(err);
    err = NULL;

    GBytes *good = slurp(enc);
    size_t len = g_bytes_get_size(good);
    uint8_t *b = g_memdup2(g_bytes_get_data(good, NULL), len);

    b[TM_REC_CRYPT_HEADER_LEN + 4 + 1000] ^= 0x40; /* one ciphertext bit */
    write_file(enc, b, len);
    CHECK_EQ_INT(tm_rec_decrypt_file(enc, dec, key, &err), TM_EAUTH);
    g_free(err);
    err = NULL;

    /* Swap the two full chunks: the index in nonce and AAD catches it. */
    memcpy(b, g_bytes_get_data(good, NULL), len);
    size_t cl = 4 + TM_REC_CRYPT_CHUNK_MAX + TM_REC_CRYPT_TAG_LEN;
    uint8_t *c0 = b + TM_REC_CRYPT_HEADER_LEN;
    uint8_t *tmpc = g_memdup2(c0, cl);
    memcpy(c0, c0 + cl, cl);
    memcpy(c0 + cl, tmpc, cl);
    g_free(tmpc);
    write_file(enc, b, len);
    CHECK_EQ_INT(tm_rec_decrypt_file(enc, dec, key, &err), TM_EAUTH);
    g_free(err);
    err = NULL;

    /* Dropping the final chunk cannot pass for a complete file. */
    write_file(enc, g_bytes_get_data(good, NULL), TM_REC_CRYPT_HEADER_LEN + 2 * cl);
    CHECK_EQ_INT(tm_rec_decrypt_file(enc, dec, key, &err), 1);
    g_free(err);
    err = NULL;

    /* Appended bytes after the final chunk. */
    memcpy(b, g_bytes_get_data(good, NULL), len);
    uint8_t *longer = g_malloc(len + 3);
    memcpy(longer, b, len);
    memset(longer + len, 0, 3);
    write_file(enc, longer, len + 3);
    CHECK_EQ_INT(tm_rec_decrypt_file(enc, dec, key, &err), TM_EAUTH);
    g_free(err);
    err = NULL;
    g_free(longer);

    /* Not ours at all. */
    static const char ebml[] = "\x1a\x45\xdf\xa3 matroska, not ours....";
    write_file(enc, (const uint8_t *)ebml, sizeof(ebml) - 1);
    CHECK_EQ_INT(tm_rec_decrypt_file(enc, dec, key, &err), TM_EINVAL);
    g_free(err);
    err = NULL;
    CHECK_EQ_INT(tm_rec_decrypt_file("/nonexistent/x", dec, key, &err), TM_EIO);
    g_free(err);
    err = NULL;

    /* The writer refuses to overwrite an existing recording. */
    CHECK(tm_rec_writer_open(enc, key, &err) == NULL);
    CHECK(err != NULL);
    g_free(err);

    g_free(b);
    g_bytes_unref(good);
    g_free(enc);
    g_free(dec);
}

/* Random access (HTTP Range on an encrypted recording): chunks of uneven
 * size, as the recorder seals them, read at arbitrary offsets. */
static void test_reader(void)
{
    char *enc = tmp("ra.enc"), *err = NULL;
    g_unlink(enc);
    size_t n = 3 * TM_REC_CRYPT_CHUNK_MAX + 12345;
    uint8_t *p = pattern(n);
    tm_rec_writer *w = tm_rec_writer_open(enc, key, &err);
    CHECK(w != NULL);
    size_t seals[] = {1, 700, 5000, 70000, 140001, n}; /* sealed after these many bytes */
    size_t off = 0;
    for (size_t i = 0; i < TM_ARRAY_LEN(seals); i++) {
        CHECK_EQ_INT(tm_rec_writer_write(w, p + off, seals[i] - off), 0);
        CHECK_EQ_INT(tm_rec_writer_seal(w), 0);
        off = seals[i];
    }
    CHECK_EQ_INT(tm_rec_writer_close(w, NULL), 0);

    tm_rec_reader *r = tm_rec_reader_open(enc, key, &err);
    CHECK(r != NULL);
    CHECK_EQ_INT(tm_rec_reader_size(r), n);
    CHECK(tm_rec_reader_complete(r));
    uint8_t *buf = g_malloc(n + 10);
    CHECK_EQ_INT(tm_rec_reader_pread(r, buf, n + 10, 0), n); /* whole file */
    CHECK(memcmp(buf, p, n) == 0);
    GRand *rnd = g_rand_new_with_seed(7);
    for (int i = 0; i < 300; i++) {
        uint64_t at = (uint64_t)g_rand_int_range(rnd, 0, (gint32)n);
        size_t len = (size_t)g_rand_int_range(rnd, 1, 150000);
        size_t want = MIN(len, n - at);
        CHECK_EQ_INT(tm_rec_reader_pread(r, buf, len, at), want);
        CHECK(memcmp(buf, p + at, want) == 0);
    }
    CHECK_EQ_INT(tm_rec_reader_pread(r, buf, 10, n), 0);
    CHECK_EQ_INT(tm_rec_reader_pread(r, buf, 10, n + 100), 0);
    tm_rec_reader_free(r);

    /* Wrong key: opens (lengths are in clear) but no byte comes out. */
    uint8_t other[32];
    memcpy(other, key, 32);
    other[0] ^= 0xff;
    r = tm_rec_reader_open(enc, other, &err);
    CHECK(r != NULL);
    CHECK_EQ_INT(tm_rec_reader_pread(r, buf, 100, 0), TM_EAUTH);
    tm_rec_reader_free(r);

    /* One altered chunk: it fails, its neighbours still read. */
    GBytes *ct = slurp(enc);
    size_t clen = g_bytes_get_size(ct);
    uint8_t *b = g_memdup2(g_bytes_get_data(ct, NULL), clen);
    size_t second =
        TM_REC_CRYPT_HEADER_LEN + 4 + 1 + TM_REC_CRYPT_TAG_LEN; /* chunk 1 (699 bytes) */
    b[second + 4 + 10] ^= 1;
    write_file(enc, b, clen);
    r = tm_rec_reader_open(enc, key, &err);
    CHECK(r != NULL);
    CHECK_EQ_INT(tm_rec_reader_pread(r, buf, 1, 0), 1);
    CHECK_EQ_INT(tm_rec_reader_pread(r, buf, 10, 100), TM_EAUTH);
    CHECK_EQ_INT(tm_rec_reader_pread(r, buf, 10, 800), 10);
    CHECK(memcmp(buf, p + 800, 10) == 0);
    tm_rec_reader_free(r);

    /* Cut short 100 bytes before the end: the (empty) final chunk and part
     * of the 3416-byte one before it are gone; everything before reads.
     * The last writes (68952 bytes) went out as a full chunk + 3416. */
    write_file(enc, g_bytes_get_data(ct, NULL), clen - 100);
    r = tm_rec_reader_open(enc, key, &err);
    CHECK(r != NULL);
    CHECK(!tm_rec_reader_complete(r));
    const size_t whole = 140001 + TM_REC_CRYPT_CHUNK_MAX;
    CHECK_EQ_INT(tm_rec_reader_size(r), whole);
    CHECK_EQ_INT(tm_rec_reader_pread(r, buf, n, 0), whole);
    CHECK(memcmp(buf, p, whole) == 0);
    tm_rec_reader_free(r);

    /* Not ours. */
    write_file(enc, (const uint8_t *)"hello world, not a recording", 28);
    CHECK(tm_rec_reader_open(enc, key, &err) == NULL);
    g_free(err);
    tm_rec_reader_free(NULL);

    g_rand_free(rnd);
    g_bytes_unref(ct);
    g_free(b);
    g_free(buf);
    g_free(p);
    g_free(enc);
}

static void test_keys(void)
{
    uint8_t k[32];
    const char *hex = "000102030405060708090a0b0c0d0e0f101112131415161718191A1B1C1D1E1F";
    CHECK_EQ_INT(tm_rec_key_parse_hex(hex, k), 0);
    CHECK_EQ_INT(k[0], 0);
    CHECK_EQ_INT(k[31], 0x1f);
    char *padded = g_strdup_printf("  %s\n", hex);
    CHECK_EQ_INT(tm_rec_key_parse_hex(padded, k), 0);
    g_free(padded);
    CHECK_EQ_INT(tm_rec_key_parse_hex("abcd", k), TM_EINVAL);
    CHECK_EQ_INT(tm_rec_key_parse_hex(NULL, k), TM_EINVAL);
    char *bad = g_strdup(hex);
    bad[10] = 'g';
    CHECK_EQ_INT(tm_rec_key_parse_hex(bad, k), TM_EINVAL);
    g_free(bad);

    char *kf = tmp("key.hex"), *err = NULL;
    char *line = g_strdup_printf("%s\n", hex);
    CHECK(g_file_set_contents(kf, line, -1, NULL));
    uint8_t k2[32];
    CHECK_EQ_INT(tm_rec_key_load_file(kf, k2, &err), 0);
    CHECK_EQ_INT(tm_rec_key_parse_hex(hex, k), 0);
    CHECK(memcmp(k, k2, 32) == 0);
    CHECK(g_file_set_contents(kf, "short", -1, NULL));
    CHECK_EQ_INT(tm_rec_key_load_file(kf, k2, &err), TM_EINVAL);
    g_free(err);
    err = NULL;
    CHECK_EQ_INT(tm_rec_key_load_file("/nonexistent/key", k2, &err), TM_EIO);
    g_free(err);
    g_free(line);
    g_free(kf);
}

int main(void)
{
    dir = g_dir_make_tmp("tm-reccrypt-XXXXXX", NULL);
    CHECK(dir != NULL);
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)(0xa0 + i);
    RUN(test_round_trips);
    RUN(test_cut_short);
    RUN(test_refusals);
    RUN(test_reader);
    RUN(test_keys);
    char *cmd = g_strdup_printf("rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    g_free(cmd);
    g_free(dir);
    TEST_DONE();
}

/*
 * rec_crypt.c - the chunked AES-256-GCM recording format of
 * include/telemed/rec_crypt.h, on OpenSSL EVP.
 *
 * Owns the file descriptor and the plaintext buffer of each writer. Writes
 * go straight to the descriptor (no stdio) so a sealed chunk is in the
 * kernel once seal returns: a kill -9 of the server loses only the chunk
 * being filled. Runs on whichever thread calls it (one per writer).
 */
#include "telemed/rec_crypt.h"
#include "telemed/common.h"

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char magic[8] = {'T', 'M', 'R', 'E', 'C', 'E', 'N', 'C'};
#define VERSION 1
#define FINAL_BIT 0x80000000u

struct tm_rec_writer {
    int fd;
    uint8_t key[32];
    uint8_t header[TM_REC_CRYPT_HEADER_LEN];
    uint32_t index; /* next chunk */
    size_t fill;
    uint64_t plain_bytes;
    EVP_MD_CTX *sha;
    EVP_CIPHER_CTX *gcm;
    uint8_t plain[TM_REC_CRYPT_CHUNK_MAX];
    uint8_t out[4 + TM_REC_CRYPT_CHUNK_MAX + TM_REC_CRYPT_TAG_LEN];
};

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reads exactly len bytes; returns len, a short count at end of file, or -1. */
static ssize_t read_full(int fd, uint8_t *p, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, p + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

static void make_nonce_aad(const uint8_t header[TM_REC_CRYPT_HEADER_LEN], uint32_t index,
                           uint32_t word, uint8_t nonce[12],
                           uint8_t aad[TM_REC_CRYPT_HEADER_LEN + 8])
{
    memcpy(nonce, header + 16, 8);
    put32(nonce + 8, index);
    memcpy(aad, header, TM_REC_CRYPT_HEADER_LEN);
    put32(aad + TM_REC_CRYPT_HEADER_LEN, index);
    put32(aad + TM_REC_CRYPT_HEADER_LEN + 4, word);
}

/* Encrypts plain[0..len) as chunk w->index into out (word|ct|tag). */
static int seal_chunk(tm_rec_writer *w, size_t len, bool final)
{
    uint32_t word = (uint32_t)len | (final ? FINAL_BIT : 0);
    uint8_t nonce[12], aad[TM_REC_CRYPT_HEADER_LEN + 8];
    make_nonce_aad(w->header, w->index, word, nonce, aad);
    put32(w->out, word);
    int n = 0, fin = 0;
    if (EVP_EncryptInit_ex(w->gcm, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(w->gcm, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) != 1 ||
        EVP_EncryptInit_ex(w->gcm, NULL, NULL, w->key, nonce) != 1 ||
        EVP_EncryptUpdate(w->gcm, NULL, &n, aad, (int)sizeof(aad)) != 1)
        return TM_EIO;
    if (len && EVP_EncryptUpdate(w->gcm, w->out + 4, &n, w->plain, (int)len) != 1)
        return TM_EIO;
    if (EVP_EncryptFinal_ex(w->gcm, w->out + 4 + len, &fin) != 1 ||
        EVP_CIPHER_CTX_ctrl(w->gcm, EVP_CTRL_GCM_GET_TAG, TM_REC_CRYPT_TAG_LEN, w->out + 4 + len) !=
            1)
        return TM_EIO;
    if (tm_write_all(w->fd, w->out, 4 + len + TM_REC_CRYPT_TAG_LEN) < 0)
        return TM_EIO; /* errno says why */
    w->index++;
    w->fill = 0;
    return 0;
}

tm_rec_writer *tm_rec_writer_open(const char *path, const uint8_t key[32], char **err)
{
    tm_rec_writer *w = g_new0(tm_rec_writer, 1);
    w->fd = -1;
    memcpy(w->key, key, 32);
    w->sha = EVP_MD_CTX_new();
    w->gcm = EVP_CIPHER_CTX_new();
    if (!w->sha || !w->gcm || EVP_DigestInit_ex(w->sha, EVP_sha256(), NULL) != 1) {
        *err = g_strdup("openssl: cannot set up SHA-256/AES-GCM");
        goto fail;
    }
    memcpy(w->header, magic, 8);
    w->header[8] = VERSION;
    put32(w->header + 12, TM_REC_CRYPT_CHUNK_MAX);
    if (RAND_bytes(w->header + 16, 8) != 1) {
        *err = g_strdup("openssl: no random bytes for the nonce prefix");
        goto fail;
    }
    w->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (w->fd < 0) {
        *err = g_strdup_printf("open %s: %s", path, g_strerror(errno));
        goto fail;
    }
    if (tm_write_all(w->fd, w->header, sizeof(w->header)) < 0) {
        *err = g_strdup_printf("write %s: %s", path, g_strerror(errno));
        goto fail;
    }
    return w;
fail:
    tm_rec_writer_abort(w);
    return NULL;
}

int tm_rec_writer_write(tm_rec_writer *w, const void *data, size_t len)
{
    const uint8_t *p = data;
    if (len && EVP_DigestUpdate(w->sha, p, len) != 1)
        return TM_EIO;
    w->plain_bytes += len;
    while (len) {
        size_t take = TM_REC_CRYPT_CHUNK_MAX - w->fill;
        if (take > len)
            take = len;
        memcpy(w->plain + w->fill, p, take);
        w->fill += take;
        p += take;
        len -= take;
        if (w->fill == TM_REC_CRYPT_CHUNK_MAX) {
            int rc = seal_chunk(w, w->fill, false);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

int tm_rec_writer_seal(tm_rec_writer *w)
{
    return w->fill ? seal_chunk(w, w->fill, false) : 0;
}

uint64_t tm_rec_writer_plain_bytes(const tm_rec_writer *w)
{
    return w->plain_bytes;
}

static void hex(const uint8_t *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

int tm_rec_writer_close(tm_rec_writer *w, char plain_sha256_hex[65])
{
    int rc = seal_chunk(w, w->fill, true);
    if (rc == 0 && fsync(w->fd) != 0)
        rc = TM_EIO;
    if (plain_sha256_hex) {
        uint8_t md[32];
        unsigned int mdlen = 0;
        if (EVP_DigestFinal_ex(w->sha, md, &mdlen) == 1 && mdlen == 32)
            hex(md, 32, plain_sha256_hex);
        else
            plain_sha256_hex[0] = '\0';
    }
    if (close(w->fd) != 0 && rc == 0)
        rc = TM_EIO;
    w->fd = -1;
    tm_rec_writer_abort(w);
    return rc;
}

void tm_rec_writer_abort(tm_rec_writer *w)
{
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    EVP_MD_CTX_free(w->sha);
    EVP_CIPHER_CTX_free(w->gcm);
    OPENSSL_cleanse(w->key, sizeof(w->key));
    OPENSSL_cleanse(w->plain, sizeof(w->plain));
    g_free(w);
}

/* ---- reading -------------------------------------------------------- */

/* Authenticates and decrypts chunk `index` (ct: ciphertext then tag, of
 * the length in word) into pt. 0 or TM_EAUTH. */
static int open_chunk(EVP_CIPHER_CTX *gcm, const uint8_t header[TM_REC_CRYPT_HEADER_LEN],
                      const uint8_t key[32], uint32_t index, uint32_t word, const uint8_t *ct,
                      uint8_t *pt)
{
    uint32_t len = word & ~FINAL_BIT;
    uint8_t nonce[12], aad[TM_REC_CRYPT_HEADER_LEN + 8];
    make_nonce_aad(header, index, word, nonce, aad);
    int outl = 0, finl = 0;
    if (EVP_DecryptInit_ex(gcm, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(gcm, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) != 1 ||
        EVP_DecryptInit_ex(gcm, NULL, NULL, key, nonce) != 1 ||
        EVP_DecryptUpdate(gcm, NULL, &outl, aad, (int)sizeof(aad)) != 1 ||
        (len && EVP_DecryptUpdate(gcm, pt, &outl, ct, (int)len) != 1) ||
        EVP_CIPHER_CTX_ctrl(gcm, EVP_CTRL_GCM_SET_TAG, TM_REC_CRYPT_TAG_LEN, (void *)(ct + len)) !=
            1 ||
        EVP_DecryptFinal_ex(gcm, pt + (len ? outl : 0), &finl) != 1)
        return TM_EAUTH;
    return 0;
}

int tm_rec_decrypt_file(const char *in, const char *out, const uint8_t key[32], char **err)
{
    int rc = TM_EIO, ifd = -1, ofd = -1;
    uint8_t header[TM_REC_CRYPT_HEADER_LEN];
    uint8_t *ct = NULL, *pt = NULL;
    EVP_CIPHER_CTX *gcm = EVP_CIPHER_CTX_new();
    uint32_t chunk_max = 0;
    bool final = false;

    if (!gcm) {
        *err = g_strdup("openssl: no cipher context");
        goto fail;
    }
    ifd = open(in, O_RDONLY | O_CLOEXEC);
    if (ifd < 0) {
        *err = g_strdup_printf("open %s: %s", in, g_strerror(errno));
        goto fail;
    }
    if (read_full(ifd, header, sizeof(header)) != (ssize_t)sizeof(header) ||
        memcmp(header, magic, 8) != 0 || header[8] != VERSION) {
        *err = g_strdup_printf("%s: not a telemed encrypted recording (version %d)", in, VERSION);
        rc = TM_EINVAL;
        goto fail;
    }
    chunk_max = get32(header + 12);
    if (chunk_max == 0 || chunk_max > (16u << 20)) {
        *err = g_strdup_printf("%s: bad chunk size %u", in, chunk_max);
        rc = TM_EINVAL;
        goto fail;
    }
    ct = g_malloc((size_t)chunk_max + TM_REC_CRYPT_TAG_LEN);
    pt = g_malloc((size_t)chunk_max + 16);
    (void)unlink(out);
    ofd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (ofd < 0) {
        *err = g_strdup_printf("open %s: %s", out, g_strerror(errno));
        goto fail;
    }
    for (uint32_t index = 0; !final; index++) {
        uint8_t wb[4];
        ssize_t n = read_full(ifd, wb, 4);
        if (n < 0) {
            *err = g_strdup_printf("read %s: %s", in, g_strerror(errno));
            goto fail;
        }
        if (n < 4)
            break; /* cut short at a chunk boundary (or inside a word) */
        uint32_t word = get32(wb);
        uint32_t len = word & ~FINAL_BIT;
        final = (word & FINAL_BIT) != 0;
        if (len > chunk_max || (len == 0 && !final)) {
            *err = g_strdup_printf("%s: chunk %u has a bad length", in, index);
            rc = TM_EAUTH;
            goto fail;
        }
        n = read_full(ifd, ct, (size_t)len + TM_REC_CRYPT_TAG_LEN);
        if (n < 0) {
            *err = g_strdup_printf("read %s: %s", in, g_strerror(errno));
            goto fail;
        }
        if ((size_t)n < (size_t)len + TM_REC_CRYPT_TAG_LEN) {
            final = false; /* a torn last chunk: the crash case */
            break;
        }
        if (open_chunk(gcm, header, key, index, word, ct, pt) < 0) {
            *err = g_strdup_printf("%s: chunk %u fails authentication (wrong key or altered file)",
                                   in, index);
            rc = TM_EAUTH;
            goto fail;
        }
        if (tm_write_all(ofd, pt, len) < 0) {
            *err = g_strdup_printf("write %s: %s", out, g_strerror(errno));
            goto fail;
        }
    }
    if (final) {
        uint8_t extra;
        if (read_full(ifd, &extra, 1) != 0) {
            *err = g_strdup_printf("%s: data after the final chunk", in);
            rc = TM_EAUTH;
            goto fail;
        }
    }
    if (fsync(ofd) != 0 || close(ofd) != 0) {
        ofd = -1;
        *err = g_strdup_printf("close %s: %s", out, g_strerror(errno));
        goto fail;
    }
    ofd = -1;
    rc = final ? 0 : 1;
    if (!final)
        *err = g_strdup_printf("%s: cut short (no final chunk); decrypted every whole chunk", in);
    goto done;
fail:
    if (ofd >= 0) {
        close(ofd);
        ofd = -1;
    }
    if (rc == TM_EAUTH)
        (void)unlink(out);
done:
    if (ifd >= 0)
        close(ifd);
    if (pt)
        OPENSSL_cleanse(pt, (size_t)chunk_max + 16);
    g_free(ct);
    g_free(pt);
    EVP_CIPHER_CTX_free(gcm);
    return rc;
}

/* ---- random access -------------------------------------------------- */

typedef struct chunk_entry {
    uint64_t cipher_off; /* of the length word */
    uint64_t plain_off;
    uint32_t word;
} chunk_entry;

struct tm_rec_reader {
    int fd;
    uint8_t key[32];
    uint8_t header[TM_REC_CRYPT_HEADER_LEN];
    uint32_t chunk_max;
    GArray *chunks; /* chunk_entry, in file order */
    uint64_t size;
    bool complete;
    EVP_CIPHER_CTX *gcm;
    int64_t cached; /* index of the chunk in pt, -1 none */
    uint8_t *ct, *pt;
};

tm_rec_reader *tm_rec_reader_open(const char *path, const uint8_t key[32], char **err)
{
    tm_rec_reader *r = g_new0(tm_rec_reader, 1);
    r->cached = -1;
    memcpy(r->key, key, 32);
    r->chunks = g_array_new(FALSE, FALSE, sizeof(chunk_entry));
    r->gcm = EVP_CIPHER_CTX_new();
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0 || !r->gcm) {
        *err = g_strdup_printf("open %s: %s", path, g_strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(r->fd, &st) != 0 ||
        pread(r->fd, r->header, sizeof(r->header), 0) != (ssize_t)sizeof(r->header) ||
        memcmp(r->header, magic, 8) != 0 || r->header[8] != VERSION) {
        *err = g_strdup_printf("%s: not a telemed encrypted recording (version %d)", path, VERSION);
        goto fail;
    }
    r->chunk_max = get32(r->header + 12);
    if (r->chunk_max == 0 || r->chunk_max > (16u << 20)) {
        *err = g_strdup_printf("%s: bad chunk size", path);
        goto fail;
    }
    uint64_t file_size = (uint64_t)st.st_size, pos = TM_REC_CRYPT_HEADER_LEN;
    while (!r->complete && pos + 4 <= file_size) {
        uint8_t wb[4];
        if (pread(r->fd, wb, 4, (off_t)pos) != 4) {
            *err = g_strdup_printf("read %s: %s", path, g_strerror(errno));
            goto fail;
        }
        uint32_t word = get32(wb), len = word & ~FINAL_BIT;
        if (len > r->chunk_max || (len == 0 && !(word & FINAL_BIT)) ||
            r->chunks->len == UINT32_MAX) {
            *err = g_strdup_printf("%s: chunk %u has a bad length", path, r->chunks->len);
            goto fail;
        }
        if (pos + 4 + len + TM_REC_CRYPT_TAG_LEN > file_size)
            break; /* torn last chunk: the crash case */
        chunk_entry e = {pos, r->size, word};
        g_array_append_val(r->chunks, e);
        r->size += len;
        r->complete = (word & FINAL_BIT) != 0;
        pos += 4 + (uint64_t)len + TM_REC_CRYPT_TAG_LEN;
    }
    if (r->complete && pos != file_size) {
        *err = g_strdup_printf("%s: data after the final chunk", path);
        goto fail;
    }
    r->ct = g_malloc((size_t)r->chunk_max + TM_REC_CRYPT_TAG_LEN);
    r->pt = g_malloc((size_t)r->chunk_max + 16);
    return r;
fail:
    tm_rec_reader_free(r);
    return NULL;
}

uint64_t tm_rec_reader_size(const tm_rec_reader *r)
{
    return r->size;
}

bool tm_rec_reader_complete(const tm_rec_reader *r)
{
    return r->complete;
}

/* The chunk holding plaintext offset off (off < size). */
static guint find_chunk(const tm_rec_reader *r, uint64_t off)
{
    guint lo = 0, hi = r->chunks->len - 1;
    while (lo < hi) {
        guint mid = lo + (hi - lo + 1) / 2;
        if (g_array_index(r->chunks, chunk_entry, mid).plain_off <= off)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

int64_t tm_rec_reader_pread(tm_rec_reader *r, void *buf, size_t len, uint64_t offset)
{
    uint8_t *out = buf;
    size_t done = 0;
    while (done < len && offset + done < r->size) {
        uint64_t off = offset + done;
        guint i = find_chunk(r, off);
        const chunk_entry *e = &g_array_index(r->chunks, chunk_entry, i);
        uint32_t clen = e->word & ~FINAL_BIT;
        if (r->cached != (int64_t)i) {
            size_t n = (size_t)clen + TM_REC_CRYPT_TAG_LEN;
            if (pread(r->fd, r->ct, n, (off_t)(e->cipher_off + 4)) != (ssize_t)n)
                return TM_EIO;
            r->cached = -1;
            if (open_chunk(r->gcm, r->header, r->key, i, e->word, r->ct, r->pt) < 0)
                return TM_EAUTH;
            r->cached = i;
        }
        size_t in_chunk = (size_t)(off - e->plain_off);
        size_t take = MIN(len - done, (size_t)clen - in_chunk);
        memcpy(out + done, r->pt + in_chunk, take);
        done += take;
    }
    return (int64_t)done;
}

void tm_rec_reader_free(tm_rec_reader *r)
{
    if (!r)
        return;
    if (r->fd >= 0)
        close(r->fd);
    EVP_CIPHER_CTX_free(r->gcm);
    g_array_free(r->chunks, TRUE);
    if (r->pt)
        OPENSSL_cleanse(r->pt, (size_t)r->chunk_max + 16);
    g_free(r->pt);
    g_free(r->ct);
    OPENSSL_cleanse(r->key, sizeof(r->key));
    g_free(r);
}

/* ---- keys ----------------------------------------------------------- */

int tm_rec_key_parse_hex(const char *text, uint8_t key[32])
{
    if (!text)
        return TM_EINVAL;
    while (g_ascii_isspace(*text))
        text++;
    size_t n = 0;
    while (g_ascii_isxdigit(text[n]))
        n++;
    const char *rest = text + n;
    while (g_ascii_isspace(*rest))
        rest++;
    if (n != 64 || *rest)
        return TM_EINVAL;
    for (size_t i = 0; i < 32; i++)
        key[i] = (uint8_t)(g_ascii_xdigit_value(text[2 * i]) << 4 |
                           g_ascii_xdigit_value(text[2 * i + 1]));
    return 0;
}

int tm_rec_key_load_file(const char *path, uint8_t key[32], char **err)
{
    char *text = NULL;
    gsize len = 0;
    GError *gerr = NULL;
    if (!g_file_get_contents(path, &text, &len, &gerr)) {
        *err = g_strdup_printf("key file: %s", gerr->message);
        g_error_free(gerr);
        return TM_EIO;
    }
    int rc = 0;
    if (len == 32) {
        memcpy(key, text, 32); /* raw key bytes: 32 bytes can never be 64 hex digits */
    } else if (tm_rec_key_parse_hex(text, key) != 0) {
        *err = g_strdup_printf("key file %s: want 64 hex characters or 32 raw bytes", path);
        rc = TM_EINVAL;
    }
    OPENSSL_cleanse(text, len);
    g_free(text);
    return rc;
}

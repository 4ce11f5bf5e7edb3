/*
 * feed_wire.c - the pure parts of the outbox's delivery (feed.h, the
 * internals): the retry delay with its jitter, the HMAC signature of a
 * request, and the repair of an NDJSON file's torn last line. Both
 * consumers of the outbox (the regulator feed, the messaging system) use
 * them through feed.c; the unit tests call them directly.
 *
 * Pure functions; any thread.
 */
#include "telemed/common.h"
#include "telemed/feed.h"

#include <openssl/evp.h>
#include <openssl/params.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RETRY_AFTER_MAX_MS (24LL * 3600 * 1000)

int64_t tm__feed_backoff_cap(int base_ms, int max_ms, int attempts)
{
    int64_t cap = base_ms > 0 ? base_ms : 1;
    for (int i = 1; i < attempts && cap < max_ms; i++)
        cap *= 2;
    return cap > max_ms ? max_ms : cap;
}

int64_t tm__feed_backoff_ms(int base_ms, int max_ms, int attempts, int64_t retry_after_ms,
                            uint32_t rnd)
{
    int64_t cap = tm__feed_backoff_cap(base_ms, max_ms, attempts);
    int64_t delay = cap > 0 ? (int64_t)(rnd % (uint64_t)(cap + 1)) : 0;
    if (retry_after_ms > RETRY_AFTER_MAX_MS)
        retry_after_ms = RETRY_AFTER_MAX_MS;
    if (delay < retry_after_ms)
        delay = retry_after_ms;
    return delay;
}

void tm__feed_sign(const char *secret, size_t secret_len, const char *ts, const char *body,
                   size_t body_len, char out[72])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    /* HMAC over ts "." body, streamed so the body is not copied. */
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *c = m ? EVP_MAC_CTX_new(m) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    size_t len = 0;
    if (c && EVP_MAC_init(c, (const unsigned char *)secret, secret_len, params) == 1 &&
        EVP_MAC_update(c, (const unsigned char *)ts, strlen(ts)) == 1 &&
        EVP_MAC_update(c, (const unsigned char *)".", 1) == 1 &&
        EVP_MAC_update(c, (const unsigned char *)body, body_len) == 1 &&
        EVP_MAC_final(c, mac, &len, sizeof(mac)) == 1)
        mac_len = (unsigned int)len;
    EVP_MAC_CTX_free(c);
    EVP_MAC_free(m);
    TM_ASSERT(mac_len == 32);
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "sha256=", 7);
    for (unsigned int i = 0; i < mac_len; i++) {
        out[7 + 2 * i] = hex[mac[i] >> 4];
        out[8 + 2 * i] = hex[mac[i] & 15];
    }
    out[7 + 2 * mac_len] = '\0';
}

int tm__feed_repair_tail(int fd)
{
    struct stat stbuf;
    if (fstat(fd, &stbuf) < 0)
        return TM_EIO;
    off_t end = stbuf.st_size;
    char buf[4096];
    while (end > 0) {
        off_t start = end > (off_t)sizeof(buf) ? end - (off_t)sizeof(buf) : 0;
        ssize_t got = pread(fd, buf, (size_t)(end - start), start);
        if (got != (ssize_t)(end - start))
            return TM_EIO;
        for (ssize_t i = got - 1; i >= 0; i--) {
            if (buf[i] == '\n') {
                off_t keep = start + i + 1;
                if (keep == stbuf.st_size)
                    return 0; /* ends with a complete line */
                if (ftruncate(fd, keep) < 0 || fsync(fd) < 0)
                    return TM_EIO;
                return 0;
            }
        }
        end = start;
    }
    /* No newline at all: the whole file is one torn line. */
    if (stbuf.st_size > 0 && (ftruncate(fd, 0) < 0 || fsync(fd) < 0))
        return TM_EIO;
    return 0;
}

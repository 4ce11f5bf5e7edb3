/*
 * common.c - error table, clocks, RFC 3339 times, UUIDs and file helpers.
 */
#include "telemed/common.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static const struct {
    int err;
    const char *code;
    const char *msg;
} errors[] = {
    {TM_OK, "ok", "success"},
    {TM_EINVAL, "bad_request", "invalid request"},
    {TM_EAUTH, "unauthorized", "missing, invalid or expired credentials"},
    {TM_EPERM, "forbidden", "not allowed for this role or visit"},
    {TM_ENOTFOUND, "not_found", "no such object"},
    {TM_ECONFLICT, "conflict", "not possible in the current state"},
    {TM_ERATE, "rate_limited", "too many requests"},
    {TM_ENOMEM, "internal", "out of memory"},
    {TM_EIO, "internal", "input/output error"},
    {TM_ETOOBIG, "bad_request", "too large"},
    {TM_EUNSUPPORTED, "bad_request", "not supported"},
    {TM_EDRAINING, "node_draining", "this server is draining: reconnect to another one"},
};

const char *tm_strerror(int err)
{
    for (size_t i = 0; i < TM_ARRAY_LEN(errors); i++)
        if (errors[i].err == err)
            return errors[i].msg;
    return "unknown error";
}

const char *tm_error_code(int err)
{
    for (size_t i = 0; i < TM_ARRAY_LEN(errors); i++)
        if (errors[i].err == err)
            return errors[i].code;
    return "internal";
}

int64_t tm_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t tm_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *tm_rfc3339(int64_t epoch_ms, char *out, size_t outlen)
{
    time_t secs = (time_t)(epoch_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(epoch_ms % 1000));
    return out;
}

void tm_uuid4(char out[37])
{
    uint8_t b[16];
    if (RAND_bytes(b, sizeof(b)) != 1)
        tm__assert_fail("RAND_bytes", __FILE__, __LINE__);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

int tm_write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0) {
            errno = ENOSPC;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int tm_sha256_file(const char *path, int64_t *size, char hex[65])
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? TM_ENOTFOUND : TM_EIO;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int rc = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 ? 0 : TM_ENOMEM;
    uint8_t buf[65536];
    size_t n;
    int64_t total = 0;
    while (rc == 0 && (n = fread(buf, 1, sizeof(buf), f)) > 0) {
        if (EVP_DigestUpdate(md, buf, n) != 1)
            rc = TM_EIO;
        total += (int64_t)n;
    }
    if (rc == 0 && ferror(f))
        rc = TM_EIO;
    fclose(f);
    uint8_t d[32];
    unsigned dl = 0;
    if (rc == 0 && (EVP_DigestFinal_ex(md, d, &dl) != 1 || dl != sizeof d))
        rc = TM_EIO;
    EVP_MD_CTX_free(md);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < sizeof d; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    *size = total;
    return 0;
}

void tm__assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "level=fatal ev=assert expr=\"%s\" at=%s:%d\n", expr, file, line);
    abort();
}

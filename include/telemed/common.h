/*
 * common.h - error codes and small value types shared by every module.
 *
 * Functions that can fail return 0 or a negative TM_E* code; tm_strerror()
 * names the code. The codes double as the stable signaling error `code`
 * strings through tm_error_code().
 */
#ifndef TELEMED_COMMON_H
#define TELEMED_COMMON_H

#include <stddef.h>
#include <stdint.h>

enum {
    TM_OK = 0,
    TM_EINVAL = -1,        /* bad_request: malformed or missing input */
    TM_EAUTH = -2,         /* unauthorized: no, bad or expired credentials */
    TM_EPERM = -3,         /* forbidden: wrong role or not a member */
    TM_ENOTFOUND = -4,     /* not_found */
    TM_ECONFLICT = -5,     /* conflict: state does not allow it now */
    TM_ERATE = -6,         /* rate_limited */
    TM_ENOMEM = -7,        /* internal */
    TM_EIO = -8,           /* internal: file, database or socket failure */
    TM_ETOOBIG = -9,       /* bad_request: over a configured size */
    TM_EUNSUPPORTED = -10, /* bad_request: valid but not something we do */
    TM_EDRAINING = -11,    /* node_draining: this node takes no new visits, try another */
};

/* A human message for a TM_E* code. Never NULL. */
const char *tm_strerror(int err);
/* The stable protocol code for a TM_E* value ("bad_request", ...). */
const char *tm_error_code(int err);

/* A borrowed span of bytes. */
typedef struct tm_buf {
    const uint8_t *base;
    size_t len;
} tm_buf;

/* Wall-clock milliseconds since the epoch (for records) and monotonic
 * milliseconds (for timers and durations). */
int64_t tm_now_ms(void);
int64_t tm_mono_ms(void);

/* Format a UTC epoch-ms time as RFC 3339 with offset ("2026-11-25T12:00:00.000Z")
 * into out (at least 32 bytes). Returns out. */
char *tm_rfc3339(int64_t epoch_ms, char *out, size_t outlen);

/* Writes all len bytes to fd, retrying short writes and EINTR. Returns 0,
 * or -1 with errno set (ENOSPC when the file takes no more bytes). */
int tm_write_all(int fd, const void *buf, size_t len);

/* SHA-256 (lowercase hex) and size of a whole file, read in a stream.
 * Returns 0, TM_ENOTFOUND (no such file), TM_EIO or TM_ENOMEM; hex and
 * size are left alone on failure. */
int tm_sha256_file(const char *path, int64_t *size, char hex[65]);

/* Fill out with a random RFC 4122 v4 UUID string (37 bytes incl. NUL). */
void tm_uuid4(char out[37]);

#define TM_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Invariant check that stays on in release builds; never use on network bytes. */
#define TM_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond))                                                                               \
            tm__assert_fail(#cond, __FILE__, __LINE__);                                            \
    } while (0)
void tm__assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

#endif

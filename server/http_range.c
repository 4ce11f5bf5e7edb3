/*
 * http_range.c - Range header parsing for recording downloads; see
 * include/telemed/http_range.h. Reads only [value, value+len): the header
 * comes from the network and need not be NUL-terminated.
 */
#include "telemed/http_range.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Parses a run of digits at *p, saturating at UINT64_MAX (a number that
 * large is past any file and so is simply unsatisfiable). False if none. */
static bool digits(const char **p, const char *end, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    while (s < end && *s >= '0' && *s <= '9') {
        unsigned d = (unsigned)(*s - '0');
        v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
        s++;
    }
    if (s == *p)
        return false;
    *p = s;
    *out = v;
    return true;
}

int tm_http_range_parse(const char *value, size_t len, uint64_t size, uint64_t *first,
                        uint64_t *last)
{
    if (!value || len == 0)
        return 200;
    const char *p = value, *end = value + len;
    while (p < end && is_ows(*p))
        p++;
    while (end > p && is_ows(end[-1]))
        end--;
    static const char unit[] = "bytes=";
    for (size_t i = 0; i < sizeof(unit) - 1; i++, p++) {
        if (p >= end || (*p | 0x20) != unit[i])
            return 200; /* another unit: ignore the header */
    }
    while (p < end && is_ows(*p))
        p++;

    uint64_t a = 0, b = 0;
    bool has_a = digits(&p, end, &a);
    if (p >= end || *p != '-')
        return 200;
    p++;
    bool has_b = digits(&p, end, &b);
    while (p < end && is_ows(*p))
        p++;
    if (p != end)
        return 200; /* several ranges or trailing junk */
    if (!has_a && !has_b)
        return 200;

    if (!has_a) { /* suffix: the last b bytes */
        if (b == 0 || size == 0)
            return 416;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return 206;
    }
    if (has_b && b < a)
        return 200; /* invalid range-spec: ignored, as RFC 9110 says */
    if (a >= size)
        return 416;
    *first = a;
    *last = !has_b || b >= size ? size - 1 : b;
    return 206;
}

char *tm_http_content_range(int status, uint64_t first, uint64_t last, uint64_t size, char *out,
                            size_t outlen)
{
    if (status == 416)
        snprintf(out, outlen, "bytes */%" PRIu64, size);
    else
        snprintf(out, outlen, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, first, last, size);
    return out;
}

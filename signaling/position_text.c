/*
 * position_text.c - the queue.position push by hand (see position_text.h).
 * Every string is escaped as JSON requires, so a visit id from anywhere
 * (the store, a restore) cannot break the frame; tests/signaling/
 * test_position_text.c parses the output with jansson.
 */
#include "position_text.h"
#include "telemed/common.h"

#include <glib.h>
#include <stdio.h>
#include <string.h>

void tm__position_dept_init(tm__position_dept *d, int waiting, int doctors_on_duty,
                            int64_t next_shift_ms)
{
    int n = snprintf(d->mid, sizeof(d->mid), ",\"waiting\":%d,\"estimated_wait_s\":", waiting);
    d->mid_len = n > 0 ? (size_t)n : 0;
    char at[40] = "null";
    if (next_shift_ms > 0) {
        char ts[36];
        snprintf(at, sizeof(at), "\"%s\"", tm_rfc3339(next_shift_ms, ts, sizeof(ts)));
    }
    n = snprintf(d->tail, sizeof(d->tail), ",\"doctors_on_duty\":%d,\"next_shift_at\":%s}",
                 doctors_on_duty, at);
    d->tail_len = n > 0 ? (size_t)n : 0;
}

/* Appends v in decimal at p; returns the end (at most 20 bytes). */
static char *put_int(char *p, int64_t v)
{
    char tmp[24];
    size_t n = 0;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *p++ = '-';
    while (n)
        *p++ = tmp[--n];
    return p;
}

static char *put_str(char *p, const char *s, size_t len)
{
    memcpy(p, s, len);
    return p + len;
}

/* The length of s escaped by put_escaped. */
static size_t escaped_len(const char *s, size_t len)
{
    size_t n = len;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        n += c == '"' || c == '\\' ? 1 : c < 0x20 ? 5 : 0;
    }
    return n;
}

/* s as the inside of a JSON string. */
static char *put_escaped(char *p, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = (char)c;
        } else if (c < 0x20) {
            p = put_str(p, "\\u00", 4);
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        } else {
            *p++ = (char)c;
        }
    }
    return p;
}

size_t tm__position_format(const tm__position_dept *d, const char *visit_id, int position,
                           int64_t est_s, char *out, size_t cap)
{
    static const char head[] = "{\"type\":\"queue.position\",\"visit_id\":\"";
    static const char at[] = "\",\"position\":";
    size_t id_len = strlen(visit_id);
    /* Two integers of at most 20 bytes each (or "null"). */
    size_t need =
        sizeof(head) + escaped_len(visit_id, id_len) + sizeof(at) + d->mid_len + d->tail_len + 40;
    if (need > cap || !g_utf8_validate(visit_id, (gssize)id_len, NULL))
        return 0;
    char *o = put_str(out, head, sizeof(head) - 1);
    o = put_escaped(o, visit_id, id_len);
    o = put_str(o, at, sizeof(at) - 1);
    o = put_int(o, position);
    o = put_str(o, d->mid, d->mid_len);
    o = est_s < 0 ? put_str(o, "null", 4) : put_int(o, est_s);
    o = put_str(o, d->tail, d->tail_len);
    return (size_t)(o - out);
}

/*
 * http_range.h - the Range request header (RFC 9110 section 14) for
 * GET /api/v1/recordings/{id}: one byte range, open-ended ("500-") or a
 * suffix ("-500"). Pure function on caller bytes; any thread.
 *
 * What the answer means:
 *   200: serve the whole file (no Range header, a header we ignore: other
 *        units, bad syntax or several ranges; RFC 9110 lets a server ignore
 *        Range, and a browser's media player only ever asks for one).
 *   206: serve [*first, *last] (inclusive) with Content-Range.
 *   416: Range Not Satisfiable, with "Content-Range: bytes * /size".
 */
#ifndef TELEMED_HTTP_RANGE_H
#define TELEMED_HTTP_RANGE_H

#include <stddef.h>
#include <stdint.h>

/* value/len: the header value without the name (NULL or len 0: no header).
 * size: the file size. Returns 200, 206 or 416; first/last are set for 206
 * and never read past len. */
int tm_http_range_parse(const char *value, size_t len, uint64_t size, uint64_t *first,
                        uint64_t *last);

/* Formats the Content-Range value for a 206 ("bytes 0-99/1000") or, with
 * status 416, "bytes * /1000" (without the space). Returns out. */
char *tm_http_content_range(int status, uint64_t first, uint64_t last, uint64_t size, char *out,
                            size_t outlen);

#endif

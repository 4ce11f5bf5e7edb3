/*
 * fuzz_http_range.c - libFuzzer target for the Range header parser behind
 * GET /api/v1/recordings/{id}. The first byte picks the file size (empty,
 * tiny, ordinary, near 2^64), the rest is the header value, handed over
 * without a NUL in an exact-size heap copy so a sanitizer sees any read past
 * it. An answer must be 200, 206 or 416, and a 206 range must lie in the file.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "telemed/http_range.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint64_t sizes[] = {0, 1, 2, 100, 1000, 65536, 1ull << 32, UINT64_MAX - 1, UINT64_MAX};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint64_t total = sizes[data[0] % (sizeof(sizes) / sizeof(sizes[0]))];
    size_t n = size - 1;
    char *value = malloc(n ? n : 1);
    if (!value)
        return 0;
    memcpy(value, data + 1, n);
    uint64_t first = 0, last = 0;
    int status = tm_http_range_parse(value, n, total, &first, &last);
    if (status != 200 && status != 206 && status != 416)
        abort();
    if (status == 206 && (first > last || last >= total))
        abort();
    char cr[96];
    tm_http_content_range(status, first, last, total, cr, sizeof(cr));
    if (!memchr(cr, '\0', sizeof(cr)))
        abort();
    free(value);
    return 0;
}

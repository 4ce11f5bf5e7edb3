/*
 * log.c - key=value event lines on stderr.
 */
#include "telemed/log.h"
#include "telemed/common.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static atomic_int min_level = TM_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void tm_log_set_level(tm_log_level level)
{
    atomic_store(&min_level, (int)level);
}

int tm_log_parse_level(const char *name, tm_log_level *out)
{
    for (int i = 0; i < (int)TM_ARRAY_LEN(level_names); i++) {
        if (name && strcmp(name, level_names[i]) == 0) {
            *out = (tm_log_level)i;
            return 0;
        }
    }
    return TM_EINVAL;
}

void tm_log(tm_log_level level, const char *ev, const char *fmt, ...)
{
    if ((int)level < atomic_load(&min_level))
        return;
    char line[1024], ts[40];
    int n = snprintf(line, sizeof(line), "ts=%s level=%s ev=%s ",
                     tm_rfc3339(tm_now_ms(), ts, sizeof(ts)), level_names[level], ev);
    if (n < 0 || n >= (int)sizeof(line))
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

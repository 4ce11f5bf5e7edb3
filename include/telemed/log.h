/*
 * log.h - one event per line, key=value, to stderr.
 *
 *   tm_log(TM_LOG_INFO, "visit.started", "visit=%s doctor=%s", vid, did);
 *   -> ts=2026-11-25T12:00:00.000Z level=info ev=visit.started visit=... doctor=...
 *
 * Ids only: never a patient's name or anything a participant typed or said.
 * Safe from any thread (each line is one write()).
 */
#ifndef TELEMED_LOG_H
#define TELEMED_LOG_H

typedef enum { TM_LOG_DEBUG, TM_LOG_INFO, TM_LOG_WARN, TM_LOG_ERROR } tm_log_level;

void tm_log_set_level(tm_log_level level);
/* Parses "debug", "info", "warn", "error". Returns 0 or TM_EINVAL. */
int tm_log_parse_level(const char *name, tm_log_level *out);
void tm_log(tm_log_level level, const char *ev, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define tm_debug(ev, ...) tm_log(TM_LOG_DEBUG, ev, __VA_ARGS__)
#define tm_info(ev, ...) tm_log(TM_LOG_INFO, ev, __VA_ARGS__)
#define tm_warn(ev, ...) tm_log(TM_LOG_WARN, ev, __VA_ARGS__)
#define tm_error(ev, ...) tm_log(TM_LOG_ERROR, ev, __VA_ARGS__)

#endif

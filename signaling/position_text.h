/*
 * position_text.h - the queue.position push, formatted by hand. Private to
 * signaling/.
 *
 * Formatting is the serial part of a fan-out to thousands of waiting
 * patients, and only the visit id, position and estimate differ between
 * them, so the department's part is formatted once and the rest is copied.
 * The bytes are those of docs/protocol.md's queue.position.
 */
#ifndef TELEMED_SIGNALING_POSITION_TEXT_H
#define TELEMED_SIGNALING_POSITION_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* What every push of one department shares. */
typedef struct tm__position_dept {
    char mid[64];
    size_t mid_len;
    char tail[96];
    size_t tail_len;
} tm__position_dept;

/* next_shift_ms: when the department's next shift starts while none covers
 * now (see tm__shifts_dept_next_start), 0 for null. */
void tm__position_dept_init(tm__position_dept *d, int waiting, int doctors_on_duty,
                            int64_t next_shift_ms);

/* Writes {"type":"queue.position","visit_id":..,"position":..,"waiting":..,
 * "estimated_wait_s":..|null,"doctors_on_duty":..,"next_shift_at":".."|null}
 * into out (cap bytes, no NUL). visit_id is escaped as a JSON string; est_s
 * < 0 is null. Returns the length, or 0 when it does not fit or visit_id is
 * not UTF-8. */
size_t tm__position_format(const tm__position_dept *d, const char *visit_id, int position,
                           int64_t est_s, char *out, size_t cap);

#endif

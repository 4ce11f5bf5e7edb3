/*
 * shifts.h - the doctors' shifts in memory, so that the waiting room can ask
 * "is this doctor on duty in this department now" for every doctor at every
 * position push without a query each time. Private to signaling/.
 *
 * Control loop. Loaded from the store at start and reloaded whenever a shift
 * is written (tm_signaling_shifts_changed); shifts already over are left out.
 */
#ifndef TELEMED_SIGNALING_SHIFTS_H
#define TELEMED_SIGNALING_SHIFTS_H

#include "telemed/store.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct tm__shift {
    char dept[64];
    int64_t start_ms, end_ms;
    int capacity;
} tm__shift;

typedef struct tm__shifts tm__shifts;

tm__shifts *tm__shifts_new(void);
void tm__shifts_free(tm__shifts *c);
/* Replaces the contents with every shift of the store that ends after
 * now_ms. 0, or TM_EIO with the old contents kept. */
int tm__shifts_load(tm__shifts *c, tm_store *store, int64_t now_ms);
/* The doctor's shift that contains now_ms in dept (NULL = any), the one that
 * ends last when several do, as tm_store_shift_current picks; NULL if none.
 * Borrowed until the next load. */
const tm__shift *tm__shifts_current(const tm__shifts *c, const char *doctor_id, const char *dept,
                                    int64_t now_ms);

/* When the next shift of dept starts, for patients waiting while no shift
 * of it covers now_ms; 0 when one covers now_ms or none is to come. */
int64_t tm__shifts_dept_next_start(const tm__shifts *c, const char *dept, int64_t now_ms);

/* Calls fn once for each department in which the doctor has a shift that
 * contains now_ms. */
void tm__shifts_current_depts(const tm__shifts *c, const char *doctor_id, int64_t now_ms,
                              void (*fn)(const char *dept, void *data), void *data);

/* Whether the doctor has a shift (now or to come) in dept. */
bool tm__shifts_has_dept(const tm__shifts *c, const char *doctor_id, const char *dept);

#endif

/*
 * pairing.h - which doctor of a department is offered its next patient.
 *
 * A pure choice over a snapshot the caller builds (the signaling layer knows
 * who is connected, on shift and how loaded); owns nothing. Called on the
 * control loop.
 */
#ifndef TELEMED_PAIRING_H
#define TELEMED_PAIRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tm_doctor_slot {
    const char *doctor_id;
    bool connected, available; /* available = on duty and not "away" */
    bool in_shift;             /* inside a shift of the department now */
    int capacity;              /* shift capacity: max concurrent visits (>=1; < 1 counts as 1) */
    int load;                  /* current active visits + pending offers */
    int64_t idle_since_ms;     /* when the doctor last became free; tie-break: longest idle first */
} tm_doctor_slot;

/* Index into docs of the doctor to offer the next patient of the department,
 * or -1 when none is eligible (or docs is NULL). Eligible: connected,
 * available, in_shift and load < capacity. Among the eligible: least load
 * first (absolute count, so work spreads evenly), then longest idle (smallest
 * idle_since_ms), then lowest index, so the choice is deterministic. */
int tm_pairing_pick(const tm_doctor_slot *docs, size_t n);

#endif

/*
 * pairing.c - picks the doctor for a department's next patient.
 *
 * Owns nothing; a linear scan over the caller's snapshot (a department has
 * tens of doctors on duty, not thousands). Thread: the control loop.
 */
#include "telemed/pairing.h"

#include <limits.h>

static bool eligible(const tm_doctor_slot *d)
{
    /* A shift is configured with capacity >= 1; a bad value must not lock a
     * doctor on duty out of every visit. */
    int cap = d->capacity < 1 ? 1 : d->capacity;
    return d->connected && d->available && d->in_shift && d->load < cap;
}

/* true when a should be offered before b (both eligible). */
static bool better(const tm_doctor_slot *a, const tm_doctor_slot *b)
{
    if (a->load != b->load)
        return a->load < b->load;
    return a->idle_since_ms < b->idle_since_ms;
}

int tm_pairing_pick(const tm_doctor_slot *docs, size_t n)
{
    if (!docs)
        return -1;
    int best = -1;
    for (size_t i = 0; i < n && i <= INT_MAX; i++) {
        if (!eligible(&docs[i]))
            continue;
        /* Strictly better only, so the lowest index wins a full tie. */
        if (best < 0 || better(&docs[i], &docs[best]))
            best = (int)i;
    }
    return best;
}

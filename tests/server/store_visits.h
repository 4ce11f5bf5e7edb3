/*
 * store_visits.h - visits made straight in a store for tests of what comes
 * after them (leases, seals, takeovers): cardio follow-ups of doctor d1, who
 * and which the test seeds. Header-only; for tests.
 */
#ifndef TM_STORE_VISITS_H
#define TM_STORE_VISITS_H

#include "telemed/common.h"
#include "telemed/store.h"

#include <glib.h>
#include <string.h>

#include "tm_test.h"

/* A cardio follow-up of patient checked in now, into *v. */
static inline void visit_checked_in(tm_store *s, const char *patient, tm_visit *v)
{
    memset(v, 0, sizeof(*v));
    g_strlcpy(v->patient_id, patient, sizeof(v->patient_id));
    g_strlcpy(v->dept_id, "cardio", sizeof(v->dept_id));
    g_strlcpy(v->kind, "follow_up", sizeof(v->kind));
    v->checkin_ms = tm_now_ms();
    CHECK_EQ_INT(tm_store_visit_checkin(s, v, "ua"), 0);
}

/* The active visit of patient with d1, its media on node. */
static inline void visit_on(tm_store *s, const char *patient, const char *node, tm_visit *v)
{
    visit_checked_in(s, patient, v);
    CHECK_EQ_INT(tm_store_visit_offer(s, v->id, "d1", tm_now_ms()), 0);
    CHECK_EQ_INT(tm_store_visit_accept(s, v->id, "d1", "ua", tm_now_ms()), 0);
    CHECK_EQ_INT(tm_store_visit_place_media(s, v->id, NULL, node), 0);
}
#endif

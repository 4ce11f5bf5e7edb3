/*
 * visit_fsm.h - the states a visit goes through and the events that move it.
 *
 *   waiting --OFFER--> offered --ACCEPT--> active --END--> ended
 *      ^                  |
 *      +--DECLINE/TIMEOUT-+
 *   waiting|offered --CANCEL--> cancelled
 *   active --TRANSFER--> waiting (the same visit, for another doctor)
 *
 * Pure functions over constant tables: no state, callable from any thread
 * (the signaling layer calls them on the control loop). The state names are
 * what the store writes in visits.state, so they must never change.
 */
#ifndef TELEMED_VISIT_FSM_H
#define TELEMED_VISIT_FSM_H

#include <stdbool.h>

#include "telemed/common.h"

typedef enum {
    TM_VS_WAITING,
    TM_VS_OFFERED,
    TM_VS_ACTIVE,
    TM_VS_ENDED,
    TM_VS_CANCELLED,
} tm_visit_state;

typedef enum {
    TM_VEV_OFFER,         /* waiting -> offered: a doctor is offered the patient */
    TM_VEV_ACCEPT,        /* offered -> active: the doctor accepted */
    TM_VEV_DECLINE,       /* offered -> waiting: the doctor declined */
    TM_VEV_OFFER_TIMEOUT, /* offered -> waiting: nobody answered the offer in time */
    TM_VEV_END,           /* active -> ended */
    TM_VEV_CANCEL,        /* waiting|offered -> cancelled: patient left, grace expired,
                             appointment cancelled */
    TM_VEV_TRANSFER,      /* active -> waiting: the doctor handed the patient to another
                             department or doctor; the visit goes on */
} tm_visit_event;

/* "waiting", "offered", "active", "ended", "cancelled" (static strings);
 * NULL for a value outside the enum. */
const char *tm_visit_state_name(tm_visit_state s);
/* Parses a state name (exact, case-sensitive). 0, or TM_EINVAL for NULL or
 * an unknown name (*out untouched). */
int tm_visit_state_parse(const char *name, tm_visit_state *out);
/* "offer", "accept", "decline", "offer_timeout", "end", "cancel", "transfer" (static);
 * NULL for a value outside the enum. */
const char *tm_visit_event_name(tm_visit_event e);

/* Returns 0 and sets *next, or TM_ECONFLICT when the event is not allowed in
 * `from` (*next untouched). TM_EINVAL for values outside the enums or a NULL
 * next. */
int tm_visit_transition(tm_visit_state from, tm_visit_event ev, tm_visit_state *next);

/* The regulator-feed event type a transition by ev emits, or NULL when it
 * emits none: ACCEPT -> "visit.started"; END and CANCEL -> "visit.ended" (a
 * cancelled visit is still reported, with its reason); TRANSFER ->
 * "visit.transferred"; OFFER, DECLINE and
 * OFFER_TIMEOUT -> NULL. Check-in emits "visit.checked_in" at creation, not
 * here. Static strings. */
const char *tm_visit_transition_event(tm_visit_event ev);

/* ended and cancelled: no event leaves them. */
bool tm_visit_state_is_final(tm_visit_state s);

/* End reasons accepted from clients and the server: "completed",
 * "terminate_and_refer" (the online visit must stop and the patient be
 * referred to an in-person visit, REFERENCE.md), "patient_left",
 * "doctor_left", "no_show", "grace_expired", "technical_failure",
 * "cancelled". Exact, case-sensitive; NULL is not valid. */
bool tm_visit_end_reason_valid(const char *reason);

#endif

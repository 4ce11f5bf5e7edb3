/*
 * visit_fsm.c - the visit state machine as one transition table.
 *
 * Owns nothing; constant tables only, so any thread may call it. Keeping
 * every allowed move in one table (rather than checks spread through the
 * signaling handlers) is what lets the unit test prove that nothing else is
 * allowed.
 */
#include "telemed/visit_fsm.h"

#include <string.h>

#define NSTATES ((int)TM_VS_CANCELLED + 1)
#define NEVENTS ((int)TM_VEV_TRANSFER + 1)

static const char *const state_names[NSTATES] = {
    [TM_VS_WAITING] = "waiting", [TM_VS_OFFERED] = "offered",     [TM_VS_ACTIVE] = "active",
    [TM_VS_ENDED] = "ended",     [TM_VS_CANCELLED] = "cancelled",
};

static const char *const event_names[NEVENTS] = {
    [TM_VEV_OFFER] = "offer",       [TM_VEV_ACCEPT] = "accept",
    [TM_VEV_DECLINE] = "decline",   [TM_VEV_OFFER_TIMEOUT] = "offer_timeout",
    [TM_VEV_END] = "end",           [TM_VEV_CANCEL] = "cancel",
    [TM_VEV_TRANSFER] = "transfer",
};

/* next state + 1 for each (from, event), 0 where the event is refused, so
 * that a pair left out of the table is refused rather than mapped to waiting. */
#define TO(s) ((s) + 1)
static const unsigned char transitions[NSTATES][NEVENTS] = {
    [TM_VS_WAITING] =
        {
            [TM_VEV_OFFER] = TO(TM_VS_OFFERED),
            [TM_VEV_CANCEL] = TO(TM_VS_CANCELLED),
        },
    [TM_VS_OFFERED] =
        {
            [TM_VEV_ACCEPT] = TO(TM_VS_ACTIVE),
            [TM_VEV_DECLINE] = TO(TM_VS_WAITING),
            [TM_VEV_OFFER_TIMEOUT] = TO(TM_VS_WAITING),
            [TM_VEV_CANCEL] = TO(TM_VS_CANCELLED),
        },
    [TM_VS_ACTIVE] =
        {
            [TM_VEV_END] = TO(TM_VS_ENDED),
            /* The visit goes on with another doctor: back to a queue (or an
             * offer to the named doctor, by OFFER from there). */
            [TM_VEV_TRANSFER] = TO(TM_VS_WAITING),
        },
    /* ended and cancelled are final: all zero. */
};

static const char *const feed_events[NEVENTS] = {
    [TM_VEV_ACCEPT] = "visit.started",
    [TM_VEV_END] = "visit.ended",
    [TM_VEV_CANCEL] = "visit.ended",
    [TM_VEV_TRANSFER] = "visit.transferred",
};

static const char *const end_reasons[] = {
    "completed", "terminate_and_refer", "patient_left",      "doctor_left",
    "no_show",   "grace_expired",       "technical_failure", "cancelled",
};

static bool state_ok(tm_visit_state s)
{
    return (int)s >= 0 && (int)s < NSTATES;
}

static bool event_ok(tm_visit_event e)
{
    return (int)e >= 0 && (int)e < NEVENTS;
}

const char *tm_visit_state_name(tm_visit_state s)
{
    return state_ok(s) ? state_names[s] : NULL;
}

int tm_visit_state_parse(const char *name, tm_visit_state *out)
{
    if (!name || !out)
        return TM_EINVAL;
    for (int i = 0; i < NSTATES; i++) {
        if (strcmp(name, state_names[i]) == 0) {
            *out = (tm_visit_state)i;
            return 0;
        }
    }
    return TM_EINVAL;
}

const char *tm_visit_event_name(tm_visit_event e)
{
    return event_ok(e) ? event_names[e] : NULL;
}

int tm_visit_transition(tm_visit_state from, tm_visit_event ev, tm_visit_state *next)
{
    if (!state_ok(from) || !event_ok(ev) || !next)
        return TM_EINVAL;
    unsigned char to = transitions[from][ev];
    if (!to)
        return TM_ECONFLICT;
    *next = (tm_visit_state)(to - 1);
    return 0;
}

const char *tm_visit_transition_event(tm_visit_event ev)
{
    return event_ok(ev) ? feed_events[ev] : NULL;
}

bool tm_visit_state_is_final(tm_visit_state s)
{
    return s == TM_VS_ENDED || s == TM_VS_CANCELLED;
}

bool tm_visit_end_reason_valid(const char *reason)
{
    if (!reason)
        return false;
    for (size_t i = 0; i < TM_ARRAY_LEN(end_reasons); i++)
        if (strcmp(reason, end_reasons[i]) == 0)
            return true;
    return false;
}

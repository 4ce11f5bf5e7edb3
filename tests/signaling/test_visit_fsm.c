/*
 * test_visit_fsm.c - the visit state machine: every (state, event) pair,
 * names as stored in the database, feed events and end reasons.
 */
#include "telemed/visit_fsm.h"

#include "tm_test.h"

#define NS 5
#define NE 7
#define NO (-1)

/* The allowed moves, written out independently of visit_fsm.c's table. */
static const int expected[NS][NE] = {
    /* columns: OFFER, ACCEPT, DECLINE, OFFER_TIMEOUT, END, CANCEL, TRANSFER */
    [TM_VS_WAITING] = {TM_VS_OFFERED, NO, NO, NO, NO, TM_VS_CANCELLED, NO},
    [TM_VS_OFFERED] = {NO, TM_VS_ACTIVE, TM_VS_WAITING, TM_VS_WAITING, NO, TM_VS_CANCELLED, NO},
    [TM_VS_ACTIVE] = {NO, NO, NO, NO, TM_VS_ENDED, NO, TM_VS_WAITING},
    [TM_VS_ENDED] = {NO, NO, NO, NO, NO, NO, NO},
    [TM_VS_CANCELLED] = {NO, NO, NO, NO, NO, NO, NO},
};

static void test_every_state_event_pair(void)
{
    int allowed = 0, refused = 0;
    for (int s = 0; s < NS; s++) {
        for (int e = 0; e < NE; e++) {
            tm_visit_state next = (tm_visit_state)99;
            int rc = tm_visit_transition((tm_visit_state)s, (tm_visit_event)e, &next);
            if (expected[s][e] == NO) {
                if (rc != TM_ECONFLICT)
                    fprintf(stderr, "from %s on %s should be refused\n", tm_visit_state_name(s),
                            tm_visit_event_name(e));
                CHECK_EQ_INT(rc, TM_ECONFLICT);
                CHECK_EQ_INT(next, 99); /* untouched on refusal */
                refused++;
            } else {
                if (rc != 0)
                    fprintf(stderr, "from %s on %s should be allowed\n", tm_visit_state_name(s),
                            tm_visit_event_name(e));
                CHECK_EQ_INT(rc, 0);
                CHECK_EQ_INT(next, expected[s][e]);
                allowed++;
            }
        }
    }
    CHECK_EQ_INT(allowed, 8);
    CHECK_EQ_INT(refused, NS * NE - 8);
}

static void test_out_of_range_values_are_invalid(void)
{
    tm_visit_state next = TM_VS_WAITING;
    CHECK_EQ_INT(tm_visit_transition((tm_visit_state)NS, TM_VEV_OFFER, &next), TM_EINVAL);
    CHECK_EQ_INT(tm_visit_transition((tm_visit_state)-1, TM_VEV_OFFER, &next), TM_EINVAL);
    CHECK_EQ_INT(tm_visit_transition(TM_VS_WAITING, (tm_visit_event)NE, &next), TM_EINVAL);
    CHECK_EQ_INT(tm_visit_transition(TM_VS_WAITING, (tm_visit_event)-1, &next), TM_EINVAL);
    CHECK_EQ_INT(tm_visit_transition(TM_VS_WAITING, TM_VEV_OFFER, NULL), TM_EINVAL);
    CHECK(tm_visit_state_name((tm_visit_state)NS) == NULL);
    CHECK(tm_visit_event_name((tm_visit_event)NE) == NULL);
    CHECK(tm_visit_transition_event((tm_visit_event)NE) == NULL);
    CHECK(!tm_visit_state_is_final((tm_visit_state)NS));
}

static void test_state_names_are_the_stored_strings(void)
{
    CHECK_STR(tm_visit_state_name(TM_VS_WAITING), "waiting");
    CHECK_STR(tm_visit_state_name(TM_VS_OFFERED), "offered");
    CHECK_STR(tm_visit_state_name(TM_VS_ACTIVE), "active");
    CHECK_STR(tm_visit_state_name(TM_VS_ENDED), "ended");
    CHECK_STR(tm_visit_state_name(TM_VS_CANCELLED), "cancelled");
}

static void test_state_parse_round_trips(void)
{
    for (int s = 0; s < NS; s++) {
        tm_visit_state out = (tm_visit_state)99;
        CHECK_EQ_INT(tm_visit_state_parse(tm_visit_state_name(s), &out), 0);
        CHECK_EQ_INT(out, s);
    }
}

static void test_state_parse_rejects_unknown(void)
{
    const char *bad[] = {"",     "Waiting",  "WAITING", "waiting ",  " waiting",
                         "wait", "canceled", "done",    "offered\n", "endedx"};
    for (size_t i = 0; i < TM_ARRAY_LEN(bad); i++) {
        tm_visit_state out = TM_VS_ACTIVE;
        CHECK_EQ_INT(tm_visit_state_parse(bad[i], &out), TM_EINVAL);
        CHECK_EQ_INT(out, TM_VS_ACTIVE);
    }
    tm_visit_state out;
    CHECK_EQ_INT(tm_visit_state_parse(NULL, &out), TM_EINVAL);
    CHECK_EQ_INT(tm_visit_state_parse("waiting", NULL), TM_EINVAL);
}

static void test_event_names(void)
{
    CHECK_STR(tm_visit_event_name(TM_VEV_OFFER), "offer");
    CHECK_STR(tm_visit_event_name(TM_VEV_ACCEPT), "accept");
    CHECK_STR(tm_visit_event_name(TM_VEV_DECLINE), "decline");
    CHECK_STR(tm_visit_event_name(TM_VEV_OFFER_TIMEOUT), "offer_timeout");
    CHECK_STR(tm_visit_event_name(TM_VEV_END), "end");
    CHECK_STR(tm_visit_event_name(TM_VEV_CANCEL), "cancel");
    CHECK_STR(tm_visit_event_name(TM_VEV_TRANSFER), "transfer");
}

static void test_feed_events_per_transition(void)
{
    CHECK(tm_visit_transition_event(TM_VEV_OFFER) == NULL);
    CHECK_STR(tm_visit_transition_event(TM_VEV_ACCEPT), "visit.started");
    CHECK(tm_visit_transition_event(TM_VEV_DECLINE) == NULL);
    CHECK(tm_visit_transition_event(TM_VEV_OFFER_TIMEOUT) == NULL);
    CHECK_STR(tm_visit_transition_event(TM_VEV_END), "visit.ended");
    CHECK_STR(tm_visit_transition_event(TM_VEV_CANCEL), "visit.ended");
    CHECK_STR(tm_visit_transition_event(TM_VEV_TRANSFER), "visit.transferred");
}

static void test_final_states(void)
{
    CHECK(!tm_visit_state_is_final(TM_VS_WAITING));
    CHECK(!tm_visit_state_is_final(TM_VS_OFFERED));
    CHECK(!tm_visit_state_is_final(TM_VS_ACTIVE));
    CHECK(tm_visit_state_is_final(TM_VS_ENDED));
    CHECK(tm_visit_state_is_final(TM_VS_CANCELLED));
    /* final <=> nothing leaves it */
    for (int s = 0; s < NS; s++) {
        bool any = false;
        for (int e = 0; e < NE; e++) {
            tm_visit_state next;
            any |= tm_visit_transition(s, e, &next) == 0;
        }
        CHECK_EQ_INT(any, !tm_visit_state_is_final(s));
    }
}

/* A visit offered, timed out, offered, declined, offered, accepted, ended. */
static void test_typical_life(void)
{
    const tm_visit_event evs[] = {TM_VEV_OFFER, TM_VEV_OFFER_TIMEOUT, TM_VEV_OFFER, TM_VEV_DECLINE,
                                  TM_VEV_OFFER, TM_VEV_ACCEPT,        TM_VEV_END};
    const tm_visit_state want[] = {TM_VS_OFFERED, TM_VS_WAITING, TM_VS_OFFERED, TM_VS_WAITING,
                                   TM_VS_OFFERED, TM_VS_ACTIVE,  TM_VS_ENDED};
    tm_visit_state s = TM_VS_WAITING;
    for (size_t i = 0; i < TM_ARRAY_LEN(evs); i++) {
        CHECK_EQ_INT(tm_visit_transition(s, evs[i], &s), 0);
        CHECK_EQ_INT(s, want[i]);
    }
    CHECK(tm_visit_state_is_final(s));
}

static void test_end_reasons(void)
{
    const char *good[] = {"completed", "terminate_and_refer", "patient_left",      "doctor_left",
                          "no_show",   "grace_expired",       "technical_failure", "cancelled"};
    for (size_t i = 0; i < TM_ARRAY_LEN(good); i++)
        CHECK(tm_visit_end_reason_valid(good[i]));
    const char *bad[] = {"",      "Completed", "completed ",    "complete",
                         "refer", "terminate", "timeout",       "canceled",
                         "ended", "no-show",   "patient_left\n"};
    for (size_t i = 0; i < TM_ARRAY_LEN(bad); i++)
        CHECK(!tm_visit_end_reason_valid(bad[i]));
    CHECK(!tm_visit_end_reason_valid(NULL));
}

int main(void)
{
    RUN(test_every_state_event_pair);
    RUN(test_out_of_range_values_are_invalid);
    RUN(test_state_names_are_the_stored_strings);
    RUN(test_state_parse_round_trips);
    RUN(test_state_parse_rejects_unknown);
    RUN(test_event_names);
    RUN(test_feed_events_per_transition);
    RUN(test_final_states);
    RUN(test_typical_life);
    RUN(test_end_reasons);
    TEST_DONE();
}

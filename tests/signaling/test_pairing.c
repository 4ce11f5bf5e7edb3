/*
 * test_pairing.c - which doctor is offered the next patient: eligibility and
 * the tie-breaks (least load, longest idle, lowest index).
 */
#include "telemed/pairing.h"

#include "tm_test.h"

static tm_doctor_slot doc(const char *id, int load, int capacity, int64_t idle_since)
{
    return (tm_doctor_slot){.doctor_id = id,
                            .connected = true,
                            .available = true,
                            .in_shift = true,
                            .capacity = capacity,
                            .load = load,
                            .idle_since_ms = idle_since};
}

static void test_empty_and_null(void)
{
    CHECK_EQ_INT(tm_pairing_pick(NULL, 0), -1);
    CHECK_EQ_INT(tm_pairing_pick(NULL, 3), -1);
    tm_doctor_slot one = doc("d1", 0, 1, 0);
    CHECK_EQ_INT(tm_pairing_pick(&one, 0), -1);
    CHECK_EQ_INT(tm_pairing_pick(&one, 1), 0);
}

/* Each eligibility condition alone excludes a doctor who would otherwise win. */
static void test_each_condition_excludes(void)
{
    for (int cond = 0; cond < 5; cond++) {
        tm_doctor_slot d[2] = {doc("best", 0, 2, 100), doc("other", 1, 2, 500)};
        CHECK_EQ_INT(tm_pairing_pick(d, 2), 0);
        switch (cond) {
        case 0:
            d[0].connected = false;
            break;
        case 1:
            d[0].available = false;
            break;
        case 2:
            d[0].in_shift = false;
            break;
        case 3:
            d[0].load = 2; /* at capacity */
            break;
        case 4:
            d[0].load = 3; /* over capacity (capacity lowered mid-shift) */
            break;
        }
        CHECK_EQ_INT(tm_pairing_pick(d, 2), 1);
        d[1] = d[0];
        CHECK_EQ_INT(tm_pairing_pick(d, 2), -1);
    }
}

static void test_under_capacity_is_eligible(void)
{
    tm_doctor_slot d = doc("d", 2, 3, 0);
    CHECK_EQ_INT(tm_pairing_pick(&d, 1), 0);
    d.load = 3;
    CHECK_EQ_INT(tm_pairing_pick(&d, 1), -1);
}

static void test_bad_capacity_counts_as_one(void)
{
    tm_doctor_slot d = doc("d", 0, 0, 0);
    CHECK_EQ_INT(tm_pairing_pick(&d, 1), 0);
    d.load = 1;
    CHECK_EQ_INT(tm_pairing_pick(&d, 1), -1);
    d = doc("d", 0, -5, 0);
    CHECK_EQ_INT(tm_pairing_pick(&d, 1), 0);
}

static void test_least_loaded_first(void)
{
    /* The least loaded wins even though it was idle for the shortest time
     * and sits at the highest index. */
    tm_doctor_slot d[] = {doc("a", 2, 4, 100), doc("b", 1, 4, 200), doc("c", 0, 4, 900)};
    CHECK_EQ_INT(tm_pairing_pick(d, 3), 2);
    d[2].load = 3;
    CHECK_EQ_INT(tm_pairing_pick(d, 3), 1);
}

static void test_longest_idle_breaks_load_ties(void)
{
    tm_doctor_slot d[] = {doc("a", 1, 2, 5000), doc("b", 1, 2, 1000), doc("c", 1, 2, 3000),
                          doc("d", 2, 3, 0)};
    CHECK_EQ_INT(tm_pairing_pick(d, 4), 1);
    d[1].connected = false;
    CHECK_EQ_INT(tm_pairing_pick(d, 4), 2);
}

static void test_lowest_index_breaks_full_ties(void)
{
    tm_doctor_slot d[] = {doc("a", 1, 1, 10), doc("b", 0, 1, 10), doc("c", 0, 1, 10),
                          doc("d", 0, 1, 10)};
    CHECK_EQ_INT(tm_pairing_pick(d, 4), 1);
    d[1].available = false;
    CHECK_EQ_INT(tm_pairing_pick(d, 4), 2);
}

/* Offer after offer, the load spreads across the doctors like round robin. */
static void test_repeated_picks_spread_load(void)
{
    tm_doctor_slot d[] = {doc("a", 0, 2, 300), doc("b", 0, 2, 100), doc("c", 0, 2, 200)};
    int order[6];
    for (int i = 0; i < 6; i++) {
        order[i] = tm_pairing_pick(d, 3);
        CHECK(order[i] >= 0);
        d[order[i]].load++;
    }
    const int want[6] = {1, 2, 0, 1, 2, 0};
    for (int i = 0; i < 6; i++)
        CHECK_EQ_INT(order[i], want[i]);
    CHECK_EQ_INT(tm_pairing_pick(d, 3), -1); /* everybody at capacity */
}

int main(void)
{
    RUN(test_empty_and_null);
    RUN(test_each_condition_excludes);
    RUN(test_under_capacity_is_eligible);
    RUN(test_bad_capacity_counts_as_one);
    RUN(test_least_loaded_first);
    RUN(test_longest_idle_breaks_load_ties);
    RUN(test_lowest_index_breaks_full_ties);
    RUN(test_repeated_picks_spread_load);
    TEST_DONE();
}

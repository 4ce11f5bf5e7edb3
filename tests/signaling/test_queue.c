/*
 * test_queue.c - department queue order: every class and its ties, the slot
 * boundary moving with now, return to head, removal, skip in head, longest
 * wait, wait estimate, and 5,000 entries checked against a plain sort.
 */
#include "telemed/queue.h"

#include "tm_test.h"

#define MIN 60000LL
#define T0 1764072000000LL /* 2025-11-25T12:00:00Z, an arbitrary base */

static void add_full(tm_queue *q, const char *vid, const char *dept, bool urgent, bool appt,
                     int64_t slot, int64_t checkin)
{
    tm_queue_entry e = {.visit_id = vid,
                        .dept_id = dept,
                        .urgent = urgent,
                        .has_appointment = appt,
                        .slot_ms = slot,
                        .checkin_ms = checkin};
    CHECK_EQ_INT(tm_queue_add(q, &e), 0);
}

static void walkin(tm_queue *q, const char *vid, int64_t checkin)
{
    add_full(q, vid, "cardio", false, false, 0, checkin);
}

static void urgent(tm_queue *q, const char *vid, int64_t checkin)
{
    add_full(q, vid, "cardio", true, false, 0, checkin);
}

static void appt(tm_queue *q, const char *vid, int64_t slot, int64_t checkin)
{
    add_full(q, vid, "cardio", false, true, slot, checkin);
}

/* The department's order at now must be exactly want[], seen through
 * tm_queue_ordered, tm_queue_position of every entry, tm_queue_head and
 * tm_queue_length. */
static void check_order(int line, tm_queue *q, const char *dept, int64_t now,
                        const char *const *want, size_t n)
{
    const char *got[64];
    size_t k = tm_queue_ordered(q, dept, now, got, TM_ARRAY_LEN(got));
    bool same = k == n;
    for (size_t i = 0; same && i < n; i++)
        same = strcmp(got[i], want[i]) == 0;
    if (!same) {
        fprintf(stderr, "line %d: order at now=%+lld min:\n  want:", line,
                (long long)((now - T0) / MIN));
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, " %s", want[i]);
        fprintf(stderr, "\n  got: ");
        for (size_t i = 0; i < k; i++)
            fprintf(stderr, " %s", got[i]);
        fprintf(stderr, "\n");
    }
    CHECK(same);
    for (size_t i = 0; i < n; i++) {
        int pos = tm_queue_position(q, want[i], now);
        if (pos != (int)(i + 1))
            fprintf(stderr, "line %d: position of %s\n", line, want[i]);
        CHECK_EQ_INT(pos, i + 1);
    }
    CHECK_EQ_INT(tm_queue_length(q, dept), n);
    const char *head = tm_queue_head(q, dept, now, NULL, NULL);
    if (n == 0)
        CHECK(head == NULL);
    else
        CHECK_STR(head, want[0]);
}

#define CHECK_ORDER(q, dept, now, ...)                                                             \
    check_order(__LINE__, q, dept, now, (const char *const[]){__VA_ARGS__},                        \
                sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))
#define CHECK_EMPTY(q, dept, now) check_order(__LINE__, q, dept, now, NULL, 0)

static void count_dept(const char *dept_id, void *user)
{
    (*(int *)user)++;
}

static void test_empty_queue(void)
{
    tm_queue *q = tm_queue_new();
    CHECK_EMPTY(q, "cardio", T0);
    CHECK_EQ_INT(tm_queue_length(q, NULL), 0);
    CHECK_EQ_INT(tm_queue_position(q, "v1", T0), 0);
    CHECK(!tm_queue_contains(q, "v1"));
    CHECK_EQ_INT(tm_queue_longest_wait_ms(q, "cardio", T0), 0);
    int n = 0;
    tm_queue_foreach_dept(q, count_dept, &n);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(tm_queue_remove(q, "v1"), TM_ENOTFOUND);
    CHECK_EQ_INT(tm_queue_return_to_head(q, "v1"), TM_ENOTFOUND);
    tm_queue_free(q);
    tm_queue_free(NULL);
}

static void test_add_rejects_bad_and_duplicate(void)
{
    tm_queue *q = tm_queue_new();
    tm_queue_entry e = {.visit_id = "v1", .dept_id = "cardio", .checkin_ms = T0};
    CHECK_EQ_INT(tm_queue_add(q, NULL), TM_EINVAL);
    e.visit_id = NULL;
    CHECK_EQ_INT(tm_queue_add(q, &e), TM_EINVAL);
    e.visit_id = "";
    CHECK_EQ_INT(tm_queue_add(q, &e), TM_EINVAL);
    e.visit_id = "v1";
    e.dept_id = NULL;
    CHECK_EQ_INT(tm_queue_add(q, &e), TM_EINVAL);
    e.dept_id = "";
    CHECK_EQ_INT(tm_queue_add(q, &e), TM_EINVAL);
    CHECK_EQ_INT(tm_queue_length(q, NULL), 0);

    e.dept_id = "cardio";
    CHECK_EQ_INT(tm_queue_add(q, &e), 0);
    CHECK_EQ_INT(tm_queue_add(q, &e), TM_ECONFLICT);
    e.dept_id = "derma"; /* a visit waits in one department only */
    CHECK_EQ_INT(tm_queue_add(q, &e), TM_ECONFLICT);
    CHECK_EQ_INT(tm_queue_length(q, NULL), 1);
    CHECK_EQ_INT(tm_queue_length(q, "derma"), 0);

    CHECK_EQ_INT(tm_queue_remove(q, "v1"), 0);
    CHECK_EQ_INT(tm_queue_add(q, &e), 0); /* re-queued after leaving */
    CHECK_EQ_INT(tm_queue_length(q, "derma"), 1);
    tm_queue_free(q);
}

static void test_ids_are_copied(void)
{
    tm_queue *q = tm_queue_new();
    char vid[16] = "v1", dept[16] = "cardio";
    tm_queue_entry e = {.visit_id = vid, .dept_id = dept, .checkin_ms = T0};
    CHECK_EQ_INT(tm_queue_add(q, &e), 0);
    strcpy(vid, "XX");
    strcpy(dept, "YYYYYY");
    CHECK(tm_queue_contains(q, "v1"));
    CHECK_EQ_INT(tm_queue_length(q, "cardio"), 1);
    CHECK_STR(tm_queue_head(q, "cardio", T0, NULL, NULL), "v1");
    tm_queue_free(q);
}

/* Ties go by visit id, not by which a node heard of first, so that nodes
 * sharing one waiting room give everyone the same place. */
static void test_walkins_by_checkin_then_id(void)
{
    tm_queue *q = tm_queue_new();
    walkin(q, "w3", T0 + 3 * MIN);
    walkin(q, "w1", T0 + 1 * MIN);
    walkin(q, "w2b", T0 + 2 * MIN); /* same check-in: by id */
    walkin(q, "w2c", T0 + 2 * MIN);
    walkin(q, "w2a", T0 + 2 * MIN);
    CHECK_ORDER(q, "cardio", T0 + 10 * MIN, "w1", "w2a", "w2b", "w2c", "w3");
    tm_queue_free(q);
}

static void test_urgent_by_checkin_ahead_of_walkins(void)
{
    tm_queue *q = tm_queue_new();
    walkin(q, "w1", T0);
    urgent(q, "u2b", T0 + 5 * MIN);
    urgent(q, "u1", T0 + 4 * MIN);
    urgent(q, "u2", T0 + 5 * MIN); /* tie: by id */
    CHECK_ORDER(q, "cardio", T0 + 10 * MIN, "u1", "u2", "u2b", "w1");
    tm_queue_free(q);
}

static void test_due_appointments_by_slot_then_checkin(void)
{
    tm_queue *q = tm_queue_new();
    int64_t now = T0 + 60 * MIN;
    walkin(q, "w1", T0);
    appt(q, "a30", T0 + 30 * MIN, T0 + 20 * MIN);
    appt(q, "a10late2", T0 + 10 * MIN, T0 + 9 * MIN);
    appt(q, "a10early", T0 + 10 * MIN, T0 + 5 * MIN); /* same slot: earlier check-in first */
    appt(q, "a10late", T0 + 10 * MIN, T0 + 9 * MIN);  /* same slot and check-in: by id */
    appt(q, "a20", T0 + 20 * MIN, T0 + 1 * MIN);
    CHECK_ORDER(q, "cardio", now, "a10early", "a10late", "a10late2", "a20", "a30", "w1");
    tm_queue_free(q);
}

static void test_urgent_before_due_appointments(void)
{
    tm_queue *q = tm_queue_new();
    int64_t now = T0 + 60 * MIN;
    appt(q, "a", T0, T0);          /* due for an hour, checked in early */
    urgent(q, "u", T0 + 59 * MIN); /* arrived a minute ago */
    walkin(q, "w", T0 - 10 * MIN);
    CHECK_ORDER(q, "cardio", now, "u", "a", "w");
    tm_queue_free(q);
}

static void test_urgent_appointment_counts_as_urgent(void)
{
    tm_queue *q = tm_queue_new();
    add_full(q, "ua", "cardio", true, true, T0 + 120 * MIN, T0 + 3 * MIN); /* slot far ahead */
    urgent(q, "u", T0 + 2 * MIN);
    appt(q, "a", T0, T0);
    walkin(q, "w", T0);
    CHECK_ORDER(q, "cardio", T0 + 5 * MIN, "u", "ua", "a", "w");
    tm_queue_free(q);
}

static void test_future_appointments_behind_walkins(void)
{
    tm_queue *q = tm_queue_new();
    int64_t now = T0;
    appt(q, "f2", T0 + 40 * MIN, T0 - 30 * MIN);
    appt(q, "f1", T0 + 20 * MIN, T0 - 5 * MIN);
    appt(q, "f1b", T0 + 20 * MIN, T0 - 5 * MIN);
    walkin(q, "w2", T0 - 1 * MIN);
    walkin(q, "w1", T0 - 2 * MIN);
    CHECK_ORDER(q, "cardio", now, "w1", "w2", "f1", "f1b", "f2");
    tm_queue_free(q);
}

static void test_future_appointment_served_when_alone(void)
{
    tm_queue *q = tm_queue_new();
    appt(q, "f", T0 + 45 * MIN, T0);
    CHECK_ORDER(q, "cardio", T0, "f");
    tm_queue_free(q);
}

/* The slot boundary: slot == now is due, slot == now + 1 ms is not. */
static void test_slot_boundary_moves_with_now(void)
{
    tm_queue *q = tm_queue_new();
    int64_t slot = T0 + 30 * MIN;
    walkin(q, "w1", T0);
    walkin(q, "w2", T0 + 1 * MIN);
    appt(q, "a", slot, T0 + 2 * MIN);
    appt(q, "b", slot + 10 * MIN, T0 + 3 * MIN);

    CHECK_ORDER(q, "cardio", slot - 1, "w1", "w2", "a", "b");
    CHECK_ORDER(q, "cardio", slot, "a", "w1", "w2", "b");
    CHECK_ORDER(q, "cardio", slot + 10 * MIN - 1, "a", "w1", "w2", "b");
    CHECK_ORDER(q, "cardio", slot + 10 * MIN, "a", "b", "w1", "w2");
    /* and back: the order is a function of now, not of the query history */
    CHECK_ORDER(q, "cardio", slot - 1, "w1", "w2", "a", "b");
    CHECK_EQ_INT(tm_queue_position(q, "w1", slot - 1), 1);
    CHECK_EQ_INT(tm_queue_position(q, "w1", slot), 2);
    CHECK_EQ_INT(tm_queue_position(q, "w1", slot + 10 * MIN), 3);
    tm_queue_free(q);
}

static void test_all_classes_together(void)
{
    tm_queue *q = tm_queue_new();
    int64_t now = T0 + 30 * MIN;
    appt(q, "future", now + 15 * MIN, T0);
    walkin(q, "walk", T0);
    appt(q, "due", now - 5 * MIN, T0 + 1 * MIN);
    urgent(q, "urg", T0 + 20 * MIN);
    walkin(q, "ret", T0 + 25 * MIN);
    CHECK_EQ_INT(tm_queue_return_to_head(q, "ret"), 0);
    CHECK_ORDER(q, "cardio", now, "ret", "urg", "due", "walk", "future");
    tm_queue_free(q);
}

static void test_return_to_head_ahead_of_urgent(void)
{
    tm_queue *q = tm_queue_new();
    int64_t now = T0 + 10 * MIN;
    walkin(q, "w1", T0);
    walkin(q, "w2", T0 + 1 * MIN);
    urgent(q, "u1", T0 + 2 * MIN);
    CHECK_ORDER(q, "cardio", now, "u1", "w1", "w2");
    CHECK_EQ_INT(tm_queue_return_to_head(q, "w2"), 0);
    CHECK_ORDER(q, "cardio", now, "w2", "u1", "w1");
    /* an urgent patient arriving later still queues behind the returned one */
    urgent(q, "u0", T0 - 60 * MIN);
    CHECK_ORDER(q, "cardio", now, "w2", "u0", "u1", "w1");
    tm_queue_free(q);
}

static void test_returns_keep_order_of_first_return(void)
{
    tm_queue *q = tm_queue_new();
    int64_t now = T0 + 10 * MIN;
    walkin(q, "a", T0);
    walkin(q, "b", T0 + 1 * MIN);
    walkin(q, "c", T0 + 2 * MIN);
    urgent(q, "u", T0 + 3 * MIN);
    CHECK_EQ_INT(tm_queue_return_to_head(q, "c"), 0);
    CHECK_EQ_INT(tm_queue_return_to_head(q, "a"), 0);
    CHECK_ORDER(q, "cardio", now, "c", "a", "u", "b");
    /* c is offered again and declines again: it keeps its first place */
    CHECK_EQ_INT(tm_queue_return_to_head(q, "c"), 0);
    CHECK_ORDER(q, "cardio", now, "c", "a", "u", "b");
    /* a returns a second time: still behind c, whose first return came earlier */
    CHECK_EQ_INT(tm_queue_return_to_head(q, "a"), 0);
    CHECK_ORDER(q, "cardio", now, "c", "a", "u", "b");
    CHECK_EQ_INT(tm_queue_return_to_head(q, "u"), 0);
    CHECK_ORDER(q, "cardio", now, "c", "a", "u", "b");
    CHECK_EQ_INT(tm_queue_return_to_head(q, "b"), 0);
    CHECK_ORDER(q, "cardio", now, "c", "a", "u", "b");
    CHECK_EQ_INT(tm_queue_remove(q, "c"), 0);
    CHECK_ORDER(q, "cardio", now, "a", "u", "b");
    CHECK_EQ_INT(tm_queue_return_to_head(q, "nobody"), TM_ENOTFOUND);
    tm_queue_free(q);
}

/* A returned appointment is at the head whatever now is: it no longer moves
 * with its slot. */
static void test_returned_appointment_ignores_slot(void)
{
    tm_queue *q = tm_queue_new();
    walkin(q, "w", T0);
    appt(q, "a", T0 + 30 * MIN, T0);
    CHECK_ORDER(q, "cardio", T0, "w", "a");
    CHECK_EQ_INT(tm_queue_return_to_head(q, "a"), 0);
    CHECK_ORDER(q, "cardio", T0, "a", "w");
    CHECK_ORDER(q, "cardio", T0 + 60 * MIN, "a", "w");
    tm_queue_free(q);
}

static void test_remove_position_length(void)
{
    tm_queue *q = tm_queue_new();
    int64_t now = T0 + 10 * MIN;
    walkin(q, "w1", T0);
    walkin(q, "w2", T0 + 1 * MIN);
    walkin(q, "w3", T0 + 2 * MIN);
    urgent(q, "u1", T0 + 3 * MIN);
    CHECK_EQ_INT(tm_queue_position(q, "w3", now), 4);
    CHECK_EQ_INT(tm_queue_remove(q, "w1"), 0);
    CHECK_EQ_INT(tm_queue_position(q, "w3", now), 3);
    CHECK_EQ_INT(tm_queue_position(q, "w1", now), 0);
    CHECK(!tm_queue_contains(q, "w1"));
    CHECK(tm_queue_contains(q, "w3"));
    CHECK_EQ_INT(tm_queue_remove(q, "w1"), TM_ENOTFOUND);
    CHECK_EQ_INT(tm_queue_remove(q, NULL), TM_ENOTFOUND);
    CHECK_ORDER(q, "cardio", now, "u1", "w2", "w3");
    CHECK_EQ_INT(tm_queue_remove(q, "u1"), 0);
    CHECK_ORDER(q, "cardio", now, "w2", "w3");

    /* removing by the borrowed id the queue itself handed out */
    const char *head = tm_queue_head(q, "cardio", now, NULL, NULL);
    CHECK_STR(head, "w2");
    CHECK_EQ_INT(tm_queue_remove(q, head), 0);
    CHECK_ORDER(q, "cardio", now, "w3");
    CHECK_EQ_INT(tm_queue_remove(q, "w3"), 0);
    CHECK_EMPTY(q, "cardio", now);
    CHECK_EQ_INT(tm_queue_length(q, NULL), 0);
    tm_queue_free(q);
}

static void test_queue_free_with_entries(void)
{
    tm_queue *q = tm_queue_new();
    walkin(q, "w1", T0);
    urgent(q, "u1", T0);
    appt(q, "a1", T0, T0);
    add_full(q, "x1", "derma", false, false, 0, T0);
    CHECK_EQ_INT(tm_queue_return_to_head(q, "w1"), 0);
    tm_queue_free(q); /* leak-free under ASan / valgrind */
}

struct dept_seen {
    int cardio, derma, other;
};

static void see_dept(const char *dept_id, void *user)
{
    struct dept_seen *s = user;
    if (strcmp(dept_id, "cardio") == 0)
        s->cardio++;
    else if (strcmp(dept_id, "derma") == 0)
        s->derma++;
    else
        s->other++;
}

static void test_departments_are_separate(void)
{
    tm_queue *q = tm_queue_new();
    int64_t now = T0 + 10 * MIN;
    walkin(q, "c1", T0);
    add_full(q, "d1", "derma", false, false, 0, T0 + 1 * MIN);
    walkin(q, "c2", T0 + 2 * MIN);
    add_full(q, "d2", "derma", true, false, 0, T0 + 3 * MIN);
    CHECK_ORDER(q, "cardio", now, "c1", "c2");
    CHECK_ORDER(q, "derma", now, "d2", "d1");
    CHECK_EQ_INT(tm_queue_length(q, NULL), 4);
    CHECK_EQ_INT(tm_queue_length(q, "neuro"), 0);
    CHECK(tm_queue_head(q, "neuro", now, NULL, NULL) == NULL);

    /* return_to_head moves a patient within their own department only */
    CHECK_EQ_INT(tm_queue_return_to_head(q, "c2"), 0);
    CHECK_ORDER(q, "cardio", now, "c2", "c1");
    CHECK_ORDER(q, "derma", now, "d2", "d1");

    struct dept_seen s = {0};
    tm_queue_foreach_dept(q, see_dept, &s);
    CHECK_EQ_INT(s.cardio, 1);
    CHECK_EQ_INT(s.derma, 1);
    CHECK_EQ_INT(s.other, 0);

    /* a department that empties is no longer listed, and comes back when refilled */
    CHECK_EQ_INT(tm_queue_remove(q, "d1"), 0);
    CHECK_EQ_INT(tm_queue_remove(q, "d2"), 0);
    s = (struct dept_seen){0};
    tm_queue_foreach_dept(q, see_dept, &s);
    CHECK_EQ_INT(s.cardio, 1);
    CHECK_EQ_INT(s.derma, 0);
    add_full(q, "d3", "derma", false, true, T0, T0);
    s = (struct dept_seen){0};
    tm_queue_foreach_dept(q, see_dept, &s);
    CHECK_EQ_INT(s.derma, 1);
    CHECK_ORDER(q, "derma", now, "d3");
    tm_queue_foreach_dept(q, NULL, NULL); /* no callback: nothing to do */
    tm_queue_free(q);
}

static void test_longest_wait(void)
{
    tm_queue *q = tm_queue_new();
    int64_t now = T0 + 60 * MIN;
    CHECK_EQ_INT(tm_queue_longest_wait_ms(q, "cardio", now), 0);
    walkin(q, "w", T0 + 30 * MIN);
    CHECK_EQ_INT(tm_queue_longest_wait_ms(q, "cardio", now), 30 * MIN);
    urgent(q, "u", T0 + 20 * MIN);
    CHECK_EQ_INT(tm_queue_longest_wait_ms(q, "cardio", now), 40 * MIN);
    /* a not-yet-due appointment has been waiting too */
    appt(q, "f", now + 60 * MIN, T0 + 5 * MIN);
    CHECK_EQ_INT(tm_queue_longest_wait_ms(q, "cardio", now), 55 * MIN);
    add_full(q, "d", "derma", false, false, 0, T0);
    CHECK_EQ_INT(tm_queue_longest_wait_ms(q, "derma", now), 60 * MIN);
    CHECK_EQ_INT(tm_queue_longest_wait_ms(q, "cardio", now), 55 * MIN);
    /* returning to head does not reset the wait */
    CHECK_EQ_INT(tm_queue_return_to_head(q, "f"), 0);
    CHECK_EQ_INT(tm_queue_longest_wait_ms(q, "cardio", now), 55 * MIN);
    CHECK_EQ_INT(tm_queue_remove(q, "f"), 0);
    CHECK_EQ_INT(tm_queue_longest_wait_ms(q, "cardio", now), 40 * MIN);
    CHECK_EQ_INT(tm_queue_remove(q, "u"), 0);
    CHECK_EQ_INT(tm_queue_longest_wait_ms(q, "cardio", now), 30 * MIN);
    /* a clock that reads before the check-in is no wait, not a negative one */
    CHECK_EQ_INT(tm_queue_longest_wait_ms(q, "cardio", T0), 0);
    CHECK_EQ_INT(tm_queue_remove(q, "w"), 0);
    CHECK_EQ_INT(tm_queue_longest_wait_ms(q, "cardio", now), 0);
    CHECK_EQ_INT(tm_queue_longest_wait_ms(q, NULL, now), 0);
    tm_queue_free(q);
}

struct skip_set {
    const char *ids[8];
    size_t n;
    const char *asked[16];
    size_t nasked;
};

static bool skip_listed(const char *visit_id, void *user)
{
    struct skip_set *s = user;
    s->asked[s->nasked++] = visit_id;
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->ids[i], visit_id) == 0)
            return true;
    return false;
}

static void test_head_skip_callback(void)
{
    tm_queue *q = tm_queue_new();
    int64_t now = T0 + 10 * MIN;
    walkin(q, "w1", T0);
    walkin(q, "w2", T0 + 1 * MIN);
    urgent(q, "u1", T0 + 2 * MIN);
    appt(q, "f1", now + 30 * MIN, T0);

    struct skip_set s = {.ids = {"u1"}, .n = 1};
    CHECK_STR(tm_queue_head(q, "cardio", now, skip_listed, &s), "w1");
    /* asked in queue order, and not past the first one kept */
    CHECK_EQ_INT(s.nasked, 2);
    CHECK_STR(s.asked[0], "u1");
    CHECK_STR(s.asked[1], "w1");

    s = (struct skip_set){.ids = {"u1", "w1", "w2"}, .n = 3};
    CHECK_STR(tm_queue_head(q, "cardio", now, skip_listed, &s), "f1");
    s = (struct skip_set){.ids = {"u1", "w1", "w2", "f1"}, .n = 4};
    CHECK(tm_queue_head(q, "cardio", now, skip_listed, &s) == NULL);
    CHECK_EQ_INT(s.nasked, 4);
    s = (struct skip_set){.n = 0};
    CHECK_STR(tm_queue_head(q, "cardio", now, skip_listed, &s), "u1");
    CHECK_EQ_INT(s.nasked, 1);
    /* skipping does not remove anyone */
    CHECK_EQ_INT(tm_queue_length(q, "cardio"), 4);
    CHECK_ORDER(q, "cardio", now, "u1", "w1", "w2", "f1");
    tm_queue_free(q);
}

static void test_ordered_truncates(void)
{
    tm_queue *q = tm_queue_new();
    int64_t now = T0 + 10 * MIN;
    walkin(q, "w1", T0);
    walkin(q, "w2", T0 + 1 * MIN);
    urgent(q, "u1", T0 + 2 * MIN);
    appt(q, "a1", T0, T0 + 3 * MIN);
    const char *out[4] = {"sentinel", "sentinel", "sentinel", "sentinel"};
    CHECK_EQ_INT(tm_queue_ordered(q, "cardio", now, out, 2), 2);
    CHECK_STR(out[0], "u1");
    CHECK_STR(out[1], "a1");
    CHECK_STR(out[2], "sentinel");
    CHECK_EQ_INT(tm_queue_ordered(q, "cardio", now, out, 0), 0);
    CHECK_EQ_INT(tm_queue_ordered(q, "cardio", now, NULL, 4), 0);
    CHECK_EQ_INT(tm_queue_ordered(q, "neuro", now, out, 4), 0);
    CHECK_EQ_INT(tm_queue_ordered(q, NULL, now, out, 4), 0);
    tm_queue_free(q);
}

static void test_estimate_wait(void)
{
    const int64_t avg = 10 * MIN;
    /* first in line, one doctor: the doctor is on average half-way through a visit */
    CHECK_EQ_INT(tm_queue_estimate_wait_ms(1, 1, avg), 5 * MIN);
    CHECK_EQ_INT(tm_queue_estimate_wait_ms(2, 1, avg), 15 * MIN);
    CHECK_EQ_INT(tm_queue_estimate_wait_ms(5, 1, avg), 45 * MIN);
    /* three doctors: the first three all go in the first round */
    CHECK_EQ_INT(tm_queue_estimate_wait_ms(1, 3, avg), 5 * MIN);
    CHECK_EQ_INT(tm_queue_estimate_wait_ms(3, 3, avg), 5 * MIN);
    CHECK_EQ_INT(tm_queue_estimate_wait_ms(4, 3, avg), 15 * MIN);
    CHECK_EQ_INT(tm_queue_estimate_wait_ms(7, 3, avg), 25 * MIN);
    /* never decreases with position, never increases with doctors */
    for (int p = 1; p < 50; p++)
        for (int d = 1; d < 8; d++) {
            CHECK(tm_queue_estimate_wait_ms(p + 1, d, avg) >= tm_queue_estimate_wait_ms(p, d, avg));
            CHECK(tm_queue_estimate_wait_ms(p, d + 1, avg) <= tm_queue_estimate_wait_ms(p, d, avg));
        }
    /* unknown */
    CHECK_EQ_INT(tm_queue_estimate_wait_ms(1, 0, avg), -1);
    CHECK_EQ_INT(tm_queue_estimate_wait_ms(3, -2, avg), -1);
    CHECK_EQ_INT(tm_queue_estimate_wait_ms(0, 1, avg), -1);
    CHECK_EQ_INT(tm_queue_estimate_wait_ms(-1, 1, avg), -1);
    CHECK_EQ_INT(tm_queue_estimate_wait_ms(1, 1, 0), -1);
    CHECK_EQ_INT(tm_queue_estimate_wait_ms(1, 1, -5), -1);
    /* saturates instead of overflowing */
    CHECK_EQ_INT(tm_queue_estimate_wait_ms(2000000000, 1, INT64_MAX / 1000), INT64_MAX);
}

/* ---- 5,000 entries against a plain sort of the documented order ---- */

#define BIG 5000

struct model {
    char id[16];
    char dept[8];
    bool urgent, appt, present;
    int64_t slot, checkin;
    int returned_seq; /* order of first return, -1 if not returned */
};

static struct model models[BIG];
static int64_t model_now;

static int cmp64(int64_t a, int64_t b)
{
    return a < b ? -1 : a > b;
}

static int model_class(const struct model *m)
{
    if (m->returned_seq >= 0)
        return 0;
    if (m->urgent)
        return 1;
    if (m->appt)
        return m->slot <= model_now ? 2 : 4;
    return 3;
}

static int model_cmp(const void *pa, const void *pb)
{
    const struct model *a = *(const struct model *const *)pa;
    const struct model *b = *(const struct model *const *)pb;
    int c = strcmp(a->dept, b->dept);
    if (c)
        return c;
    int ca = model_class(a), cb = model_class(b);
    if (ca != cb)
        return ca - cb;
    if (ca == 0)
        return a->returned_seq - b->returned_seq;
    if (ca == 2 || ca == 4) {
        if ((c = cmp64(a->slot, b->slot)))
            return c;
    }
    if ((c = cmp64(a->checkin, b->checkin)))
        return c;
    return strcmp(a->id, b->id);
}

static uint32_t rng_state = 12345;
static uint32_t rng(void)
{
    /* xorshift32: deterministic across runs and platforms */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static void check_against_model(tm_queue *q, int64_t now)
{
    static const struct model *sorted[BIG];
    static const char *got[BIG];
    model_now = now;
    size_t n = 0;
    for (int i = 0; i < BIG; i++)
        if (models[i].present)
            sorted[n++] = &models[i];
    qsort(sorted, n, sizeof(sorted[0]), model_cmp);
    CHECK_EQ_INT(tm_queue_length(q, NULL), n);

    size_t start = 0;
    while (start < n) {
        const char *dept = sorted[start]->dept;
        size_t end = start;
        while (end < n && strcmp(sorted[end]->dept, dept) == 0)
            end++;
        size_t k = tm_queue_ordered(q, dept, now, got, BIG);
        CHECK_EQ_INT(k, end - start);
        CHECK_EQ_INT(tm_queue_length(q, dept), end - start);
        CHECK_STR(tm_queue_head(q, dept, now, NULL, NULL), sorted[start]->id);
        for (size_t i = 0; i < k; i++) {
            CHECK_STR(got[i], sorted[start + i]->id);
            CHECK_EQ_INT(tm_queue_position(q, sorted[start + i]->id, now), i + 1);
        }
        start = end;
    }
}

static void test_5000_entries_match_a_plain_sort(void)
{
    tm_queue *q = tm_queue_new();
    const char *depts[] = {"cardio", "derma", "neuro"};
    for (int i = 0; i < BIG; i++) {
        struct model *m = &models[i];
        snprintf(m->id, sizeof(m->id), "v%05d", i);
        snprintf(m->dept, sizeof(m->dept), "%s", depts[rng() % 3]);
        uint32_t kind = rng() % 10;
        m->urgent = kind == 0;
        m->appt = kind >= 5 || (kind == 0 && rng() % 2);
        /* coarse times so that many check-ins and slots tie */
        m->checkin = T0 + (int64_t)(rng() % 240) * MIN;
        m->slot = T0 + (int64_t)(rng() % 48) * 5 * MIN;
        m->returned_seq = -1;
        m->present = true;
        add_full(q, m->id, m->dept, m->urgent, m->appt, m->slot, m->checkin);
    }
    check_against_model(q, T0 - MIN);      /* no slot has come */
    check_against_model(q, T0 + 60 * MIN); /* some have */
    check_against_model(q, T0 + 1000 * MIN);

    /* remove a fifth, return some to head (some twice), re-add a few */
    int returns = 0;
    for (int i = 0; i < BIG; i++) {
        uint32_t r = rng() % 20;
        if (r < 4) {
            CHECK_EQ_INT(tm_queue_remove(q, models[i].id), 0);
            models[i].present = false;
        } else if (r == 4) {
            CHECK_EQ_INT(tm_queue_return_to_head(q, models[i].id), 0);
            models[i].returned_seq = returns++;
        }
    }
    for (int i = BIG - 1; i >= 0; i--) {
        if (models[i].returned_seq >= 0 && rng() % 2)
            CHECK_EQ_INT(tm_queue_return_to_head(q, models[i].id), 0); /* keeps its place */
        if (!models[i].present && rng() % 4 == 0) {
            add_full(q, models[i].id, models[i].dept, models[i].urgent, models[i].appt,
                     models[i].slot, models[i].checkin);
            models[i].present = true;
            models[i].returned_seq = -1;
        }
    }
    for (int64_t now = T0 - MIN; now <= T0 + 300 * MIN; now += 37 * MIN)
        check_against_model(q, now);
    tm_queue_free(q);
}

int main(void)
{
    RUN(test_empty_queue);
    RUN(test_add_rejects_bad_and_duplicate);
    RUN(test_ids_are_copied);
    RUN(test_walkins_by_checkin_then_id);
    RUN(test_urgent_by_checkin_ahead_of_walkins);
    RUN(test_due_appointments_by_slot_then_checkin);
    RUN(test_urgent_before_due_appointments);
    RUN(test_urgent_appointment_counts_as_urgent);
    RUN(test_future_appointments_behind_walkins);
    RUN(test_future_appointment_served_when_alone);
    RUN(test_slot_boundary_moves_with_now);
    RUN(test_all_classes_together);
    RUN(test_return_to_head_ahead_of_urgent);
    RUN(test_returns_keep_order_of_first_return);
    RUN(test_returned_appointment_ignores_slot);
    RUN(test_remove_position_length);
    RUN(test_queue_free_with_entries);
    RUN(test_departments_are_separate);
    RUN(test_longest_wait);
    RUN(test_head_skip_callback);
    RUN(test_ordered_truncates);
    RUN(test_estimate_wait);
    RUN(test_5000_entries_match_a_plain_sort);
    TEST_DONE();
}

/*
 * test_lease_clock.c - outbox leases on the database's clock (issue 19,
 * beat19), on a PostgreSQL the test starts (tests/support/pg.sh).
 *
 * Two nodes share the database, each on its own handle and lease holder;
 * a node's clock is the now_ms it passes (the seam every store call has).
 * node-a's clock is an hour behind: its lease must still keep node-b off
 * the row (on the holder's clock the lease was over before it began, and
 * both held the row). node-a's clock an hour ahead: once its lease time
 * has passed on the database, node-b gets the row (on the holder's clock
 * nobody could for an hour).
 */
#include "telemed/common.h"
#include "telemed/store.h"
#include "pg_fixture.h"
#include "store_visits.h"
#include "tm_test.h"

#include <glib.h>
#include <stdio.h>
#include <string.h>

#define LEASE_MS 1000
#define HOUR 3600000LL

static char *url;

static tm_store *node_store(const char *holder)
{
    char *err = NULL;
    tm_store *s = tm_store_open(url, "hosp-1", &err);
    if (!s)
        fprintf(stderr, "store: %s\n", err);
    CHECK(s != NULL);
    CHECK_EQ_INT(tm_store_set_lease(s, holder, LEASE_MS), 0);
    return s;
}

/* A visit checked in: its outbox rows, due at once. */
static void visit_rows(tm_store *s, const char *patient)
{
    tm_visit v;
    visit_checked_in(s, patient, &v);
    CHECK(tm_outbox_retry_now(s, 0) >= 0);
}

static size_t take(tm_store *s, int64_t now_ms, tm_outbox_event **ev)
{
    size_t n = 0;
    CHECK_EQ_INT(tm_outbox_next_batch(s, now_ms, 100, ev, &n), 0);
    return n;
}

static void deliver(tm_store *s, tm_outbox_event *ev, size_t n)
{
    for (size_t i = 0; i < n; i++)
        CHECK_EQ_INT(tm_outbox_mark_delivered(s, &ev[i].seq, 1, 200, tm_now_ms()), 0);
    tm_outbox_events_free(ev, n);
}

static void test_holder_behind_keeps_others_off(tm_store *a, tm_store *b)
{
    visit_rows(a, "p-behind");
    tm_outbox_event *ev_a = NULL, *ev_b = NULL;
    size_t got_a = take(a, tm_now_ms() - HOUR, &ev_a);
    CHECK(got_a > 0);
    size_t got_b = take(b, tm_now_ms(), &ev_b);
    CHECK_EQ_INT((int)got_b, 0);
    tm_outbox_events_free(ev_b, got_b);
    deliver(a, ev_a, got_a);
    int64_t pending = -1;
    CHECK_EQ_INT(tm_store_outbox_count(a, "pending", &pending), 0);
    CHECK_EQ_INT((int)pending, 0);
}

static void test_holder_ahead_lets_go_in_time(tm_store *a, tm_store *b)
{
    visit_rows(a, "p-ahead");
    tm_outbox_event *ev_a = NULL, *ev_b = NULL;
    size_t got_a = take(a, tm_now_ms() + HOUR, &ev_a);
    CHECK(got_a > 0);
    int64_t claimed_at = tm_now_ms();
    /* node-a died holding them: node-b gets them once the lease is over
     * on the database, not an hour later. The cap only stops a wedged run. */
    size_t got_b = 0;
    while ((got_b = take(b, tm_now_ms(), &ev_b)) == 0 && tm_now_ms() - claimed_at < 60000)
        g_usleep(100 * 1000);
    CHECK_EQ_INT((int)got_b, (int)got_a);
    CHECK(tm_now_ms() - claimed_at >= LEASE_MS - 200);
    for (size_t i = 0; i < got_b; i++)
        CHECK(ev_b[i].seq == ev_a[i].seq);
    tm_outbox_events_free(ev_a, got_a);
    deliver(b, ev_b, got_b);
}

int main(void)
{
    pg_fixture_start();
    url = pg_fixture_url("lease_clock");
    tm_store *a = node_store("node-a"), *b = node_store("node-b");
    CHECK_EQ_INT(tm_store_dept_put(a, "cardio", "Cardiology"), 0);
    test_holder_behind_keeps_others_off(a, b);
    test_holder_ahead_lets_go_in_time(a, b);
    tm_store_free(a);
    tm_store_free(b);
    g_free(url);
    printf("test_lease_clock: ok\n");
    return 0;
}

/*
 * store_suite_lease.c - outbox leases (issue 19), through telemed/store.h
 * only: nodes sharing one database (here: handles with their own lease
 * holder) never get one outbox row both, even when they claim at the same
 * instant; a visit's rows stay with one node, in order; a dead node's
 * rows go to another once its lease has expired, and its late outcomes
 * then change nothing; the messaging queue and the nightly batch's
 * records and check-ins are leased the same way.
 */
#include "store_suite.h"

#include "telemed/common.h"
#include "tm_test.h"

#include <glib.h>
#include <stdio.h>
#include <string.h>

#define LEASE_MS 30000
#define ROUNDS 60
#define VISITS_PER_ROUND 4

static tm_store *node_store(const store_backend *b, const char *db, const char *holder)
{
    tm_store *s = b->open(db);
    CHECK_EQ_INT(tm_store_set_lease(s, holder, LEASE_MS), 0);
    return s;
}

/* Every lease on db runs out: the callers below then pass a time past it
 * too, which is what judges leases where the caller's clock does (SQLite). */
static void expire_leases(const store_backend *b, const char *db)
{
    if (b->age_leases)
        b->age_leases(db, LEASE_MS);
}

static void seed(tm_store *s)
{
    CHECK_EQ_INT(tm_store_dept_put(s, "cardio", "Cardiology"), 0);
    CHECK_EQ_INT(tm_store_doctor_put(s, "d1", "Dr One", "cardio", "LIC1", NULL), 0);
}

/* A visit taken from check-in to active: several outbox rows of one visit. */
static void active_visit(tm_store *s, const char *patient, char id[64])
{
    tm_visit v = {0};
    g_strlcpy(v.patient_id, patient, sizeof(v.patient_id));
    g_strlcpy(v.dept_id, "cardio", sizeof(v.dept_id));
    g_strlcpy(v.kind, "follow_up", sizeof(v.kind));
    v.checkin_ms = tm_now_ms();
    CHECK_EQ_INT(tm_store_visit_checkin(s, &v, "ua"), 0);
    CHECK_EQ_INT(tm_store_visit_offer(s, v.id, "d1", tm_now_ms()), 0);
    CHECK_EQ_INT(tm_store_visit_accept(s, v.id, "d1", "ua", tm_now_ms()), 0);
    g_strlcpy(id, v.id, 64);
}

static int64_t count(tm_store *s, const char *state)
{
    int64_t n = -1;
    CHECK_EQ_INT(tm_store_outbox_count(s, state, &n), 0);
    return n;
}

static void deliver_all(tm_store *s, tm_outbox_event *ev, size_t n)
{
    for (size_t i = 0; i < n; i++)
        CHECK_EQ_INT(tm_outbox_mark_delivered(s, &ev[i].seq, 1, 200, tm_now_ms()), 0);
}

typedef struct claimer {
    tm_store *s;
    gint *go;
    tm_outbox_event *ev;
    size_t n;
    int rc;
} claimer;

static gpointer claim_batch(gpointer data)
{
    claimer *c = data;
    while (!g_atomic_int_get(c->go))
        g_thread_yield();
    c->rc = tm_outbox_next_batch(c->s, tm_now_ms(), 100, &c->ev, &c->n);
    return NULL;
}

/* Which claimer got the row seq: 'a', 'b', or 0. Fails if both did. */
static char owner_of(const claimer *a, const claimer *b, int64_t seq)
{
    char who = 0;
    for (size_t i = 0; i < a->n; i++)
        if (a->ev[i].seq == seq)
            who = 'a';
    for (size_t i = 0; i < b->n; i++)
        if (b->ev[i].seq == seq) {
            CHECK(who == 0);
            who = 'b';
        }
    return who;
}

/* Two nodes (two handles, two threads started together) claim the same
 * fresh rows ROUNDS times: no row goes to both, every row goes to one, and
 * all rows of a visit go to the same node in seq order. */
static void t_lease_claim_race(const store_backend *b)
{
    tm_store *s = b->open("lease_race");
    seed(s);
    tm_store *node_a = node_store(b, "lease_race", "node-a");
    tm_store *node_b = node_store(b, "lease_race", "node-b");
    int64_t got_a = 0, got_b = 0, rows = 0;
    for (int r = 0; r < ROUNDS; r++) {
        char visits[VISITS_PER_ROUND][64];
        for (int v = 0; v < VISITS_PER_ROUND; v++) {
            char patient[32];
            g_snprintf(patient, sizeof(patient), "p-%d-%d", r, v);
            active_visit(s, patient, visits[v]);
        }
        int64_t pending = count(s, "pending");
        gint go = 0;
        claimer ca = {node_a, &go, NULL, 0, 1}, cb = {node_b, &go, NULL, 0, 1};
        GThread *ta = g_thread_new("node-a", claim_batch, &ca);
        GThread *tb = g_thread_new("node-b", claim_batch, &cb);
        g_atomic_int_set(&go, 1);
        g_thread_join(ta);
        g_thread_join(tb);
        CHECK_EQ_INT(ca.rc, 0);
        CHECK_EQ_INT(cb.rc, 0);
        CHECK_EQ_INT((int)(ca.n + cb.n), (int)pending);
        for (const claimer *c = &ca; c; c = c == &ca ? &cb : NULL)
            for (size_t i = 0; i < c->n; i++) {
                char who = owner_of(&ca, &cb, c->ev[i].seq);
                /* the same node has every row of this visit, in order */
                for (size_t j = 0; j < c->n; j++)
                    if (strcmp(c->ev[j].visit_id, c->ev[i].visit_id) == 0)
                        CHECK((j < i) == (c->ev[j].seq < c->ev[i].seq));
                const claimer *other = c == &ca ? &cb : &ca;
                for (size_t j = 0; j < other->n; j++)
                    CHECK(strcmp(other->ev[j].visit_id, c->ev[i].visit_id) != 0);
                CHECK(who == (c == &ca ? 'a' : 'b'));
            }
        deliver_all(node_a, ca.ev, ca.n);
        deliver_all(node_b, cb.ev, cb.n);
        got_a += (int64_t)ca.n;
        got_b += (int64_t)cb.n;
        rows += pending;
        tm_outbox_events_free(ca.ev, ca.n);
        tm_outbox_events_free(cb.ev, cb.n);
        CHECK_EQ_INT((int)count(s, "pending"), 0);
    }
    CHECK_EQ_INT((int)(got_a + got_b), (int)rows);
    printf("# lease races: %d rounds, %lld rows, node-a got %lld, node-b %lld\n", ROUNDS,
           (long long)rows, (long long)got_a, (long long)got_b);
    tm_store_free(node_a);
    tm_store_free(node_b);
    tm_store_free(s);
}

/* node-a claims and dies: node-b gets nothing while the lease runs (nor is
 * woken for it before it ends), then every row once it has expired;
 * node-a's late outcomes change none of node-b's rows; node-b's do. */
static void t_lease_expiry(const store_backend *b)
{
    tm_store *node_a = node_store(b, "lease_expiry", "node-a");
    tm_store *node_b = node_store(b, "lease_expiry", "node-b");
    seed(node_a);
    char v1[64], v2[64];
    active_visit(node_a, "p1", v1);
    active_visit(node_a, "p2", v2);
    int64_t rows = count(node_a, "pending");
    int64_t t = tm_now_ms();

    tm_outbox_event *ev_a = NULL, *ev_b = NULL;
    size_t n_a = 0, n_b = 0;
    CHECK_EQ_INT(tm_outbox_next_batch(node_a, t, 100, &ev_a, &n_a), 0);
    CHECK_EQ_INT((int)n_a, (int)rows);
    CHECK_EQ_INT(tm_outbox_next_batch(node_b, t + LEASE_MS - 1, 100, &ev_b, &n_b), 0);
    CHECK_EQ_INT((int)n_b, 0);
    int64_t due = 0;
    CHECK_EQ_INT(tm_outbox_next_due(node_b, &due), 0);
    /* (less a second: the database's clock is read to within a round trip) */
    CHECK(due >= t + LEASE_MS - (b->age_leases ? 1000 : 0));
    /* node-a itself (restarted under the same id) takes its own rows again. */
    tm_outbox_event *again = NULL;
    size_t n_again = 0;
    CHECK_EQ_INT(tm_outbox_next_batch(node_a, t + 1, 100, &again, &n_again), 0);
    CHECK_EQ_INT((int)n_again, (int)rows);
    tm_outbox_events_free(again, n_again);

    /* node-a is gone; its lease expires and node-b takes every row. */
    expire_leases(b, "lease_expiry");
    CHECK_EQ_INT(tm_outbox_next_batch(node_b, t + 1 + LEASE_MS, 100, &ev_b, &n_b), 0);
    CHECK_EQ_INT((int)n_b, (int)rows);
    int64_t next[100];
    int64_t seqs[100];
    for (size_t i = 0; i < n_a; i++) {
        seqs[i] = ev_a[i].seq;
        next[i] = t + 3600000;
    }
    /* node-a's late outcomes touch nothing node-b holds. */
    CHECK_EQ_INT(tm_outbox_retry(node_a, seqs, next, n_a, 503, "late"), 0);
    CHECK_EQ_INT(tm_outbox_dead_letter(node_a, seqs[0], 400, "late", NULL, 0), TM_ENOTFOUND);
    CHECK_EQ_INT(tm_outbox_mark_delivered(node_a, seqs, n_a, 200, t), 0);
    CHECK_EQ_INT((int)count(node_a, "pending"), (int)rows);
    CHECK_EQ_INT((int)count(node_a, "dead"), 0);
    /* The retry did not free node-b's rows for a third node. */
    tm_store *node_c = node_store(b, "lease_expiry", "node-c");
    tm_outbox_event *ev_c = NULL;
    size_t n_c = 0;
    CHECK_EQ_INT(tm_outbox_next_batch(node_c, t + 2 + LEASE_MS, 100, &ev_c, &n_c), 0);
    CHECK_EQ_INT((int)n_c, 0);

    /* node-b's retry releases its lease: node-c may take the rows when due. */
    int64_t first = ev_b[0].seq;
    CHECK_EQ_INT(tm_outbox_retry(node_b, &first, &t, 1, 503, "busy"), 0);
    CHECK_EQ_INT(tm_outbox_next_batch(node_c, t + 2 + LEASE_MS, 100, &ev_c, &n_c), 0);
    CHECK_EQ_INT((int)n_c, 1);
    CHECK(ev_c[0].seq == first);
    CHECK_EQ_INT(ev_c[0].attempts, 1);
    deliver_all(node_c, ev_c, n_c);
    deliver_all(node_b, ev_b + 1, n_b - 1);
    CHECK_EQ_INT((int)count(node_a, "delivered"), (int)rows);
    tm_outbox_events_free(ev_a, n_a);
    tm_outbox_events_free(ev_b, n_b);
    tm_outbox_events_free(ev_c, n_c);
    tm_store_free(node_c);
    tm_store_free(node_a);
    tm_store_free(node_b);
}

/* A later row of a visit does not go to another node while an earlier one
 * is leased: order per visit holds across nodes. */
static void t_lease_keeps_visit_order(const store_backend *b)
{
    tm_store *node_a = node_store(b, "lease_order", "node-a");
    tm_store *node_b = node_store(b, "lease_order", "node-b");
    seed(node_a);
    char v1[64];
    active_visit(node_a, "p1", v1);
    tm_outbox_event *ev = NULL;
    size_t n = 0;
    CHECK_EQ_INT(tm_outbox_next_batch(node_a, tm_now_ms(), 1, &ev, &n), 0);
    CHECK_EQ_INT((int)n, 1);
    tm_outbox_event *later = NULL;
    size_t n_later = 0;
    CHECK_EQ_INT(tm_outbox_next_batch(node_b, tm_now_ms(), 100, &later, &n_later), 0);
    CHECK_EQ_INT((int)n_later, 0);
    deliver_all(node_a, ev, n);
    CHECK_EQ_INT(tm_outbox_next_batch(node_b, tm_now_ms(), 100, &later, &n_later), 0);
    CHECK(n_later >= 1);
    CHECK(later[0].seq > ev[0].seq);
    deliver_all(node_b, later, n_later);
    tm_outbox_events_free(ev, n);
    tm_outbox_events_free(later, n_later);
    tm_store_free(node_a);
    tm_store_free(node_b);
}

/* The messaging queue: what one node claimed the other does not get until
 * the lease expires. */
static void t_lease_messaging(const store_backend *b)
{
    tm_store *node_a = node_store(b, "lease_msgq", "node-a");
    tm_store *node_b = node_store(b, "lease_msgq", "node-b");
    seed(node_a);
    char v1[64];
    active_visit(node_a, "p1", v1);
    tm_followup f = {0};
    g_strlcpy(f.visit_id, v1, sizeof(f.visit_id));
    g_strlcpy(f.booked_by, "d1", sizeof(f.booked_by));
    f.slot_ms = tm_now_ms() + 86400000;
    CHECK_EQ_INT(tm_store_followup_book(node_a, &f, tm_now_ms(), NULL), 0);
    int64_t t = tm_now_ms();
    tm_outbox_event *ev_a = NULL, *ev_b = NULL;
    size_t n_a = 0, n_b = 0;
    CHECK_EQ_INT(tm_msgq_next_batch(node_a, t, 100, &ev_a, &n_a), 0);
    CHECK(n_a >= 1);
    CHECK_EQ_INT(tm_msgq_next_batch(node_b, t, 100, &ev_b, &n_b), 0);
    CHECK_EQ_INT((int)n_b, 0);
    expire_leases(b, "lease_msgq");
    CHECK_EQ_INT(tm_msgq_next_batch(node_b, t + LEASE_MS, 100, &ev_b, &n_b), 0);
    CHECK_EQ_INT((int)n_b, (int)n_a);
    CHECK_EQ_INT(tm_msgq_mark_delivered(node_a, &ev_a[0].seq, 1, 200, t), 0);
    tm_outbox_stats st;
    CHECK_EQ_INT(tm_msgq_stats_get(node_a, &st), 0);
    CHECK_EQ_INT((int)st.delivered, 0);
    for (size_t i = 0; i < n_b; i++)
        CHECK_EQ_INT(tm_msgq_mark_delivered(node_b, &ev_b[i].seq, 1, 200, t), 0);
    CHECK_EQ_INT(tm_msgq_stats_get(node_a, &st), 0);
    CHECK_EQ_INT((int)st.delivered, (int)n_b);
    CHECK_EQ_INT((int)st.pending, 0);
    tm_outbox_events_free(ev_a, n_a);
    tm_outbox_events_free(ev_b, n_b);
    tm_store_free(node_a);
    tm_store_free(node_b);
}

/* The nightly batch: staged once by two nodes, each record and the day's
 * check-in sent by one of them; node-b gets node-a's records once its
 * lease has expired, and node-a's late outcome changes nothing. */
static void t_lease_uploads(const store_backend *b)
{
    tm_store *node_a = node_store(b, "lease_uploads", "node-a");
    tm_store *node_b = node_store(b, "lease_uploads", "node-b");
    seed(node_a);
    char v1[64], v2[64];
    active_visit(node_a, "p1", v1);
    active_visit(node_a, "p2", v2);
    CHECK_EQ_INT(tm_store_visit_end(node_a, v1, "completed", "d1", tm_now_ms()), 0);
    CHECK_EQ_INT(tm_store_visit_end(node_a, v2, "completed", "d1", tm_now_ms()), 0);
    int64_t t = tm_now_ms() + 1000;
    int staged_a = -1, staged_b = -1;
    CHECK_EQ_INT(tm_upload_stage_day(node_a, "tianjin", "2025-11-25", 0, t, true, t, &staged_a), 0);
    CHECK_EQ_INT(tm_upload_stage_day(node_b, "tianjin", "2025-11-25", 0, t, true, t, &staged_b), 0);
    CHECK_EQ_INT(staged_a, 2);
    CHECK_EQ_INT(staged_b, 0);

    tm_upload_record *ra = NULL, *rb = NULL;
    size_t na = 0, nb = 0;
    CHECK_EQ_INT(tm_upload_next_batch(node_a, "tianjin", "visit", t, 1, &ra, &na), 0);
    CHECK_EQ_INT((int)na, 1);
    CHECK_EQ_INT(tm_upload_next_batch(node_b, "tianjin", "visit", t, 10, &rb, &nb), 0);
    CHECK_EQ_INT((int)nb, 1);
    CHECK(rb[0].id != ra[0].id);
    CHECK_EQ_INT(tm_upload_mark_delivered(node_b, &rb[0].id, 1, 200, t), 0);
    tm_upload_records_free(rb, nb);
    CHECK_EQ_INT(tm_upload_next_batch(node_b, "tianjin", "visit", t, 10, &rb, &nb), 0);
    CHECK_EQ_INT((int)nb, 0);
    /* node-a dies: its record is node-b's after the lease. */
    expire_leases(b, "lease_uploads");
    CHECK_EQ_INT(tm_upload_next_batch(node_b, "tianjin", "visit", t + LEASE_MS, 10, &rb, &nb), 0);
    CHECK_EQ_INT((int)nb, 1);
    CHECK(rb[0].id == ra[0].id);
    int64_t next = t + 3600000;
    CHECK_EQ_INT(tm_upload_retry(node_a, &ra[0].id, &next, 1, 503, "late"), 0);
    CHECK_EQ_INT(tm_upload_dead_letter(node_a, ra[0].id, 400, "late", NULL), TM_ENOTFOUND);
    CHECK_EQ_INT(tm_upload_mark_delivered(node_b, &rb[0].id, 1, 200, t), 0);
    tm_upload_counts c;
    CHECK_EQ_INT(tm_upload_counts_get(node_a, "tianjin", &c), 0);
    CHECK_EQ_INT((int)c.delivered, 2);
    CHECK_EQ_INT((int)c.dead, 0);
    tm_upload_records_free(ra, na);
    tm_upload_records_free(rb, nb);

    char day_a[16], day_b[16];
    CHECK_EQ_INT(tm_upload_checkin_next(node_a, "tianjin", t, day_a), 0);
    CHECK_STR(day_a, "2025-11-25");
    CHECK_EQ_INT(tm_upload_checkin_next(node_b, "tianjin", t, day_b), TM_ENOTFOUND);
    expire_leases(b, "lease_uploads");
    CHECK_EQ_INT(tm_upload_checkin_next(node_b, "tianjin", t + LEASE_MS, day_b), 0);
    CHECK_EQ_INT(tm_upload_checkin_done(node_b, "tianjin", day_b, t), 0);
    CHECK_EQ_INT(tm_upload_checkin_next(node_a, "tianjin", t + 2 * LEASE_MS, day_a), TM_ENOTFOUND);
    tm_store_free(node_a);
    tm_store_free(node_b);
}

static void t_lease_refusals(const store_backend *b)
{
    tm_store *s = b->open("lease_refusals");
    CHECK_EQ_INT(tm_store_set_lease(s, "", LEASE_MS), TM_EINVAL);
    CHECK_EQ_INT(tm_store_set_lease(s, NULL, LEASE_MS), TM_EINVAL);
    CHECK_EQ_INT(tm_store_set_lease(s, "node-a", 0), TM_EINVAL);
    char longer[80];
    memset(longer, 'n', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    CHECK_EQ_INT(tm_store_set_lease(s, longer, LEASE_MS), TM_EINVAL);
    tm_store_free(s);
}

void store_suite_leases(const store_backend *b, const char *dir)
{
    (void)dir;
    t_lease_refusals(b);
    t_lease_expiry(b);
    t_lease_keeps_visit_order(b);
    t_lease_messaging(b);
    t_lease_uploads(b);
    t_lease_claim_race(b);
}

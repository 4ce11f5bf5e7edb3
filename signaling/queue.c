/*
 * queue.c - every department's waiting patients, kept in serving order.
 *
 * Owns: one entry per queued visit (with copies of its ids) and one record
 * per non-empty department. Thread: the control loop only; no locking.
 *
 * Why four sorted sequences per department instead of one: the order depends
 * on now_ms (an appointment moves from "not yet due", behind the walk-ins, to
 * "due", ahead of them, when its slot comes), so no single sort key is stable
 * over time. But within each class the order never changes, so each
 * department keeps
 *
 *   returned  - in order of first return (append only)
 *   urgent    - by (check-in, visit id)
 *   appts     - by (slot, check-in, visit id): the due ones are a prefix
 *               and the not-yet-due ones the suffix, split at slot > now_ms
 *   walkins   - by (check-in, visit id)
 *
 * as GSequences (balanced trees that also know each node's index). The
 * serving order at now_ms is then returned, urgent, appts-prefix, walkins,
 * appts-suffix; finding the split is one O(log n) search, a visit's
 * position is O(log n), and listing a department is O(n).
 */
#include "telemed/queue.h"

#include <glib.h>
#include <limits.h>
#include <string.h>

enum q_class { Q_RETURNED, Q_URGENT, Q_APPT, Q_WALKIN, Q_NCLASS };

struct q_dept;

typedef struct q_entry {
    char *visit_id;
    struct q_dept *dept;
    bool urgent;
    bool has_appointment;
    int64_t slot_ms;
    int64_t checkin_ms;
    enum q_class cls;
    GSequenceIter *cls_it;     /* this entry's node in dept->cls[cls] */
    GSequenceIter *checkin_it; /* this entry's node in dept->by_checkin */
} q_entry;

typedef struct q_dept {
    char *id;
    GSequence *cls[Q_NCLASS];
    GSequence *by_checkin; /* every entry, oldest check-in first: longest wait */
    size_t count;
} q_dept;

struct tm_queue {
    GHashTable *visits; /* visit_id (borrowed from the entry) -> q_entry, owned */
    GHashTable *depts;  /* dept id (borrowed from the dept) -> q_dept, owned; never empty */
};

static int cmp_i64(int64_t a, int64_t b)
{
    return a < b ? -1 : a > b;
}

/* A NULL id is appt_split's probe, after every id. */
static int cmp_id(const char *a, const char *b)
{
    if (!a || !b)
        return !a - !b;
    return strcmp(a, b);
}

static gint cmp_checkin(gconstpointer pa, gconstpointer pb, gpointer unused)
{
    const q_entry *a = pa, *b = pb;
    int c = cmp_i64(a->checkin_ms, b->checkin_ms);
    /* The store's order too (checkin_at, id): nodes that share a waiting
     * room put two check-ins of one millisecond in the same order, whichever
     * each heard of first. */
    return c ? c : cmp_id(a->visit_id, b->visit_id);
}

static gint cmp_appt(gconstpointer pa, gconstpointer pb, gpointer unused)
{
    const q_entry *a = pa, *b = pb;
    int c = cmp_i64(a->slot_ms, b->slot_ms);
    return c ? c : cmp_checkin(pa, pb, NULL);
}

static void dept_free(gpointer p)
{
    q_dept *d = p;
    if (!d)
        return;
    for (int i = 0; i < Q_NCLASS; i++)
        g_sequence_free(d->cls[i]);
    g_sequence_free(d->by_checkin);
    g_free(d->id);
    g_free(d);
}

static void entry_free(gpointer p)
{
    q_entry *e = p;
    if (!e)
        return;
    g_free(e->visit_id);
    g_free(e);
}

tm_queue *tm_queue_new(void)
{
    tm_queue *q = g_new0(tm_queue, 1);
    /* Values are destroyed before keys are forgotten, and each key lives in
     * its value, so neither table frees keys. */
    q->visits = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, entry_free);
    q->depts = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, dept_free);
    return q;
}

void tm_queue_free(tm_queue *q)
{
    if (!q)
        return;
    /* Entries first: the departments' sequences only point at them. */
    g_hash_table_destroy(q->visits);
    g_hash_table_destroy(q->depts);
    g_free(q);
}

static q_dept *dept_get(const tm_queue *q, const char *dept_id)
{
    return dept_id ? g_hash_table_lookup(q->depts, dept_id) : NULL;
}

static q_entry *entry_get(const tm_queue *q, const char *visit_id)
{
    return visit_id ? g_hash_table_lookup(q->visits, visit_id) : NULL;
}

int tm_queue_add(tm_queue *q, const tm_queue_entry *e)
{
    if (!q || !e || !e->visit_id || !e->visit_id[0] || !e->dept_id || !e->dept_id[0])
        return TM_EINVAL;
    if (g_hash_table_contains(q->visits, e->visit_id))
        return TM_ECONFLICT;

    q_dept *d = dept_get(q, e->dept_id);
    if (!d) {
        d = g_new0(q_dept, 1);
        d->id = g_strdup(e->dept_id);
        for (int i = 0; i < Q_NCLASS; i++)
            d->cls[i] = g_sequence_new(NULL);
        d->by_checkin = g_sequence_new(NULL);
        g_hash_table_insert(q->depts, d->id, d);
    }

    q_entry *n = g_new0(q_entry, 1);
    n->visit_id = g_strdup(e->visit_id);
    n->dept = d;
    n->urgent = e->urgent;
    n->has_appointment = e->has_appointment;
    n->slot_ms = e->slot_ms;
    n->checkin_ms = e->checkin_ms;
    if (n->urgent) {
        n->cls = Q_URGENT;
        n->cls_it = g_sequence_insert_sorted(d->cls[Q_URGENT], n, cmp_checkin, NULL);
    } else if (n->has_appointment) {
        n->cls = Q_APPT;
        n->cls_it = g_sequence_insert_sorted(d->cls[Q_APPT], n, cmp_appt, NULL);
    } else {
        n->cls = Q_WALKIN;
        n->cls_it = g_sequence_insert_sorted(d->cls[Q_WALKIN], n, cmp_checkin, NULL);
    }
    n->checkin_it = g_sequence_insert_sorted(d->by_checkin, n, cmp_checkin, NULL);
    d->count++;
    g_hash_table_insert(q->visits, n->visit_id, n);
    return 0;
}

int tm_queue_remove(tm_queue *q, const char *visit_id)
{
    q_entry *e = q ? entry_get(q, visit_id) : NULL;
    if (!e)
        return TM_ENOTFOUND;
    q_dept *d = e->dept;
    g_sequence_remove(e->cls_it);
    g_sequence_remove(e->checkin_it);
    /* Steal, then free: visit_id may be the caller's borrowed copy of our key. */
    g_hash_table_steal(q->visits, e->visit_id);
    entry_free(e);
    if (--d->count == 0)
        g_hash_table_remove(q->depts, d->id);
    return 0;
}

int tm_queue_return_to_head(tm_queue *q, const char *visit_id)
{
    q_entry *e = q ? entry_get(q, visit_id) : NULL;
    if (!e)
        return TM_ENOTFOUND;
    if (e->cls == Q_RETURNED)
        return 0; /* keeps the place of its first return */
    g_sequence_remove(e->cls_it);
    e->cls = Q_RETURNED;
    e->cls_it = g_sequence_append(e->dept->cls[Q_RETURNED], e);
    return 0;
}

bool tm_queue_contains(const tm_queue *q, const char *visit_id)
{
    return q && entry_get(q, visit_id) != NULL;
}

/* The first not-yet-due appointment (slot_ms > now_ms), or the end iterator. */
static GSequenceIter *appt_split(const q_dept *d, int64_t now_ms)
{
    /* A probe that sorts after every entry with slot <= now and before every
     * entry with a later slot. */
    q_entry probe = {.slot_ms = now_ms, .checkin_ms = INT64_MAX, .visit_id = NULL};
    return g_sequence_search(d->cls[Q_APPT], &probe, cmp_appt, NULL);
}

static int seq_len(GSequence *s)
{
    return g_sequence_get_length(s);
}

int tm_queue_position(tm_queue *q, const char *visit_id, int64_t now_ms)
{
    q_entry *e = q ? entry_get(q, visit_id) : NULL;
    if (!e)
        return 0;
    q_dept *d = e->dept;
    int idx = g_sequence_iter_get_position(e->cls_it);
    int before = 0;
    switch (e->cls) {
    case Q_RETURNED:
        break;
    case Q_URGENT:
        before = seq_len(d->cls[Q_RETURNED]);
        break;
    case Q_APPT:
        before = seq_len(d->cls[Q_RETURNED]) + seq_len(d->cls[Q_URGENT]);
        /* A not-yet-due appointment's index already counts the due ones
         * ahead of it; only the walk-ins sit between the two groups. */
        if (e->slot_ms > now_ms)
            before += seq_len(d->cls[Q_WALKIN]);
        break;
    case Q_WALKIN:
        before = seq_len(d->cls[Q_RETURNED]) + seq_len(d->cls[Q_URGENT]) +
                 g_sequence_iter_get_position(appt_split(d, now_ms));
        break;
    default:
        TM_ASSERT(!"queue entry without a class");
    }
    return before + idx + 1;
}

/* Calls fn on each entry of d in serving order at now_ms until fn returns false. */
static void dept_walk(const q_dept *d, int64_t now_ms, bool (*fn)(q_entry *e, void *user),
                      void *user)
{
    GSequenceIter *split = appt_split(d, now_ms);
    struct {
        GSequence *seq;
        GSequenceIter *from, *to;
    } runs[] = {
        {d->cls[Q_RETURNED], NULL, NULL}, {d->cls[Q_URGENT], NULL, NULL},
        {d->cls[Q_APPT], NULL, split},    {d->cls[Q_WALKIN], NULL, NULL},
        {d->cls[Q_APPT], split, NULL},
    };
    for (size_t r = 0; r < TM_ARRAY_LEN(runs); r++) {
        GSequenceIter *it = runs[r].from ? runs[r].from : g_sequence_get_begin_iter(runs[r].seq);
        GSequenceIter *end = runs[r].to ? runs[r].to : g_sequence_get_end_iter(runs[r].seq);
        for (; it != end; it = g_sequence_iter_next(it))
            if (!fn(g_sequence_get(it), user))
                return;
    }
}

struct collect {
    const char **out;
    size_t max, n;
};

static bool collect_one(q_entry *e, void *user)
{
    struct collect *c = user;
    if (c->n >= c->max)
        return false;
    c->out[c->n++] = e->visit_id;
    return c->n < c->max;
}

size_t tm_queue_ordered(tm_queue *q, const char *dept_id, int64_t now_ms, const char **out,
                        size_t max)
{
    q_dept *d = q ? dept_get(q, dept_id) : NULL;
    if (!d || !out || max == 0)
        return 0;
    struct collect c = {.out = out, .max = max};
    dept_walk(d, now_ms, collect_one, &c);
    return c.n;
}

size_t tm_queue_length(const tm_queue *q, const char *dept_id)
{
    if (!q)
        return 0;
    if (!dept_id)
        return g_hash_table_size(q->visits);
    q_dept *d = dept_get(q, dept_id);
    return d ? d->count : 0;
}

struct head {
    bool (*skip)(const char *visit_id, void *user);
    void *user;
    const char *found;
};

static bool head_one(q_entry *e, void *user)
{
    struct head *h = user;
    if (h->skip && h->skip(e->visit_id, h->user))
        return true;
    h->found = e->visit_id;
    return false;
}

const char *tm_queue_head(tm_queue *q, const char *dept_id, int64_t now_ms,
                          bool (*skip)(const char *visit_id, void *user), void *user)
{
    q_dept *d = q ? dept_get(q, dept_id) : NULL;
    if (!d)
        return NULL;
    struct head h = {.skip = skip, .user = user};
    dept_walk(d, now_ms, head_one, &h);
    return h.found;
}

int64_t tm_queue_longest_wait_ms(const tm_queue *q, const char *dept_id, int64_t now_ms)
{
    q_dept *d = q ? dept_get(q, dept_id) : NULL;
    if (!d)
        return 0;
    GSequenceIter *it = g_sequence_get_begin_iter(d->by_checkin);
    if (g_sequence_iter_is_end(it))
        return 0;
    const q_entry *oldest = g_sequence_get(it);
    /* A check-in stamped after now (clock step, or a caller's stale now) is no wait. */
    if (oldest->checkin_ms >= now_ms)
        return 0;
    if (oldest->checkin_ms < 0 && now_ms > INT64_MAX + oldest->checkin_ms)
        return INT64_MAX;
    return now_ms - oldest->checkin_ms;
}

void tm_queue_foreach_dept(const tm_queue *q, void (*fn)(const char *dept_id, void *user),
                           void *user)
{
    if (!q || !fn)
        return;
    GHashTableIter it;
    gpointer key, value;
    g_hash_table_iter_init(&it, q->depts);
    while (g_hash_table_iter_next(&it, &key, &value))
        fn(key, user);
}

int64_t tm_queue_estimate_wait_ms(int position, int doctors_on_duty, int64_t avg_visit_ms)
{
    if (doctors_on_duty <= 0 || position < 1 || avg_visit_ms <= 0)
        return -1;
    int64_t rounds = (int64_t)(position - 1) / doctors_on_duty;
    int64_t half = avg_visit_ms / 2;
    if (rounds > (INT64_MAX - half) / avg_visit_ms)
        return INT64_MAX;
    return rounds * avg_visit_ms + half;
}

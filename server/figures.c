/*
 * figures.c - the doctor, department and institution figures (figures.h):
 * the store's facts of a bounded range (tm_store_figure_facts) counted per
 * owner and period, in the one place both the JSON and the CSV answers come
 * from.
 *
 * A fact belongs to the doctor it names, to the department it names or else
 * that doctor's, and to that department's institution (the core one when the
 * department has none); a fact with no owner on the axis asked is left out
 * of that axis. Periods start at midnight in the configured time zone; weeks
 * are ISO weeks (Monday first).
 *
 * Control loop thread: it reads the store.
 */
#include "telemed/figures.h"
#include "telemed/common.h"

#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY_MS (24 * 3600 * 1000LL)
/* RFC 3339 with the zone's offset: the local midnight a period starts at. */
#define RFC3339_LOCAL "%Y-%m-%dT%H:%M:%S%:z"

int tm_figures_by_parse(const char *text, tm_figures_by *out)
{
    static const char *const names[] = {"doctor", "department", "institution"};
    for (size_t i = 0; text && i < TM_ARRAY_LEN(names); i++)
        if (strcmp(text, names[i]) == 0) {
            *out = (tm_figures_by)i;
            return 0;
        }
    return TM_EINVAL;
}

int tm_figures_period_parse(const char *text, tm_figures_period *out)
{
    static const char *const names[] = {"day", "week", "month"};
    for (size_t i = 0; text && i < TM_ARRAY_LEN(names); i++)
        if (strcmp(text, names[i]) == 0) {
            *out = (tm_figures_period)i;
            return 0;
        }
    return TM_EINVAL;
}

bool tm_figures_time_zone_valid(const char *name)
{
    GTimeZone *tz = name && *name ? g_time_zone_new_identifier(name) : NULL;
    if (tz)
        g_time_zone_unref(tz);
    return tz != NULL;
}

static int64_t ms_of(GDateTime *t)
{
    return g_date_time_to_unix(t) * 1000 + g_date_time_get_microsecond(t) / 1000;
}

int tm_figures_time_parse(const char *text, const char *time_zone, int64_t *out)
{
    if (!text || !*text)
        return TM_EINVAL;
    char *endp;
    long long v = strtoll(text, &endp, 10);
    if (*endp == 0 && v > 0) {
        *out = v;
        return 0;
    }
    int y, m, d, used = 0;
    GTimeZone *tz = g_time_zone_new_identifier(time_zone);
    GDateTime *t = NULL;
    if (sscanf(text, "%4d-%2d-%2d%n", &y, &m, &d, &used) == 3 && text[used] == 0)
        t = tz && g_date_valid_dmy((GDateDay)d, (GDateMonth)m, (GDateYear)y)
                ? g_date_time_new(tz, y, m, d, 0, 0, 0)
                : NULL;
    else
        t = g_date_time_new_from_iso8601(text, tz);
    if (tz)
        g_time_zone_unref(tz);
    if (!t)
        return TM_EINVAL;
    *out = ms_of(t);
    g_date_time_unref(t);
    return 0;
}

/* The local start of the period holding at_ms. New reference. */
static GDateTime *period_start(GTimeZone *tz, tm_figures_period period, int64_t at_ms)
{
    GDateTime *utc = g_date_time_new_from_unix_utc(at_ms / 1000);
    GDateTime *local = g_date_time_to_timezone(utc, tz);
    int y, m, d;
    g_date_time_get_ymd(local, &y, &m, &d);
    GDateTime *start = g_date_time_new(tz, y, m, period == TM_FIGURES_MONTH ? 1 : d, 0, 0, 0);
    if (period == TM_FIGURES_WEEK) {
        GDateTime *monday = g_date_time_add_days(start, 1 - g_date_time_get_day_of_week(start));
        g_date_time_unref(start);
        start = monday;
    }
    g_date_time_unref(local);
    g_date_time_unref(utc);
    return start;
}

int64_t tm_figures_day_start(const char *time_zone, int64_t at_ms)
{
    GTimeZone *tz = time_zone ? g_time_zone_new_identifier(time_zone) : NULL;
    if (!tz)
        return at_ms;
    GDateTime *start = period_start(tz, TM_FIGURES_DAY, at_ms);
    int64_t ms = ms_of(start);
    g_date_time_unref(start);
    g_time_zone_unref(tz);
    return ms;
}

/* ---- owners' names -------------------------------------------------- */

typedef struct owner {
    char *name;
    char *parent; /* a doctor's department, a department's institution */
} owner;

static void owner_free(gpointer p)
{
    owner *o = p;
    g_free(o->name);
    g_free(o->parent);
    g_free(o);
}

/* "kind:id" -> owner */
static void add_name(const char *kind, const char *id, const char *name, const char *parent,
                     void *user)
{
    owner *o = g_new0(owner, 1);
    o->name = g_strdup(name);
    o->parent = g_strdup(parent);
    g_hash_table_replace(user, g_strdup_printf("%s:%s", kind, id), o);
}

static const owner *owner_of(GHashTable *names, const char *kind, const char *id)
{
    char key[160];
    snprintf(key, sizeof(key), "%s:%s", kind, id);
    return g_hash_table_lookup(names, key);
}

/* ---- counting ------------------------------------------------------- */

typedef struct group {
    char *id;
    char *dept_id; /* the doctor's department, on the doctor axis */
    char *inst_id;
    int64_t visits, follow_ups, given, requested, referrals, transfers;
    int64_t ratings, score_sum, comments, no_shows;
    GArray *accept_waits, *schedule_waits; /* int64 ms */
} group;

static void group_free(gpointer p)
{
    group *g = p;
    g_free(g->id);
    g_free(g->dept_id);
    g_free(g->inst_id);
    g_array_unref(g->accept_waits);
    g_array_unref(g->schedule_waits);
    g_free(g);
}

/* One period of the answer with its groups by owner id. */
typedef struct period {
    char *label;
    int64_t start_ms;
    char *start_text;
    GHashTable *groups; /* owner id -> group */
} period;

static void period_free(gpointer p)
{
    period *d = p;
    g_free(d->label);
    g_free(d->start_text);
    g_hash_table_destroy(d->groups);
    g_free(d);
}

/* Every zone's offset is a whole number of quarter hours, so no local
 * midnight falls inside a quarter hour of UTC: the period of a fact is
 * worked out once per quarter hour, not once per fact. */
#define SLOT_MS (15 * 60 * 1000LL)

typedef struct counter {
    const tm_figures_query *q;
    GTimeZone *tz;
    GHashTable *names;   /* "kind:id" -> owner */
    GHashTable *periods; /* label -> period */
    GHashTable *slots;   /* quarter hour (int64 *) -> period, borrowed */
    json_t *comments;    /* the answer's comments, newest first */
} counter;

static const char *const period_formats[] = {"%Y-%m-%d", "%G-W%V", "%Y-%m"};

static period *period_for(counter *c, int64_t at_ms)
{
    int64_t slot = at_ms / SLOT_MS;
    period *p = g_hash_table_lookup(c->slots, &slot);
    if (p)
        return p;
    GDateTime *start = period_start(c->tz, c->q->period, at_ms);
    char *label = g_date_time_format(start, period_formats[c->q->period]);
    p = g_hash_table_lookup(c->periods, label);
    if (p) {
        g_free(label);
    } else {
        p = g_new0(period, 1);
        p->label = label;
        p->start_ms = ms_of(start);
        p->start_text = g_date_time_format(start, RFC3339_LOCAL);
        p->groups = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, group_free);
        g_hash_table_insert(c->periods, p->label, p);
    }
    g_date_time_unref(start);
    g_hash_table_insert(c->slots, g_memdup2(&slot, sizeof(slot)), p);
    return p;
}

static group *group_for(counter *c, int64_t at_ms, const char *id, const char *dept,
                        const char *inst)
{
    period *p = period_for(c, at_ms);
    group *g = g_hash_table_lookup(p->groups, id);
    if (!g) {
        g = g_new0(group, 1);
        g->id = g_strdup(id);
        g->dept_id = g_strdup(dept);
        g->inst_id = g_strdup(inst);
        g->accept_waits = g_array_new(FALSE, FALSE, sizeof(int64_t));
        g->schedule_waits = g_array_new(FALSE, FALSE, sizeof(int64_t));
        g_hash_table_insert(p->groups, g->id, g);
    }
    return g;
}

static void count_fact(group *g, const tm_figure_fact *f)
{
    switch (f->kind) {
    case TM_FACT_VISIT:
        g->visits++;
        g->follow_ups += f->follow_up;
        if (f->wait_ms >= 0)
            g_array_append_val(g->accept_waits, f->wait_ms);
        if (f->score > 0) {
            g->ratings++;
            g->score_sum += f->score;
            g->comments += f->comment;
        }
        break;
    case TM_FACT_NO_SHOW:
        g->no_shows++;
        break;
    case TM_FACT_CONSULT_REQUESTED:
        g->requested++;
        break;
    case TM_FACT_CONSULT_SCHEDULED:
        if (f->wait_ms >= 0)
            g_array_append_val(g->schedule_waits, f->wait_ms);
        break;
    case TM_FACT_CONSULT_GIVEN:
        g->given++;
        break;
    case TM_FACT_REFERRAL:
        g->referrals++;
        break;
    case TM_FACT_TRANSFER:
        g->transfers++;
        break;
    }
}

/* The department a fact belongs to (the one it names, else its doctor's)
 * and that department's institution ("" when neither is known). */
static const char *institution_of(const counter *c, const char *doctor_id, const char *dept_id,
                                  const char **dept_out)
{
    const owner *doc = doctor_id[0] ? owner_of(c->names, "doctor", doctor_id) : NULL;
    const char *dept = dept_id[0] ? dept_id : doc ? doc->parent : "";
    const owner *dep = dept[0] ? owner_of(c->names, "department", dept) : NULL;
    *dept_out = dept;
    return !dept[0] ? "" : dep && dep->parent[0] ? dep->parent : c->q->core_id;
}

static bool in_scope(const counter *c, const char *inst)
{
    return !c->q->institution || !c->q->institution[0] || strcmp(c->q->institution, inst) == 0;
}

static void on_fact(const tm_figure_fact *f, void *user)
{
    counter *c = user;
    const char *dept;
    const char *inst = institution_of(c, f->doctor_id, f->dept_id, &dept);
    if (!in_scope(c, inst))
        return;
    const char *id = c->q->by == TM_FIGURES_BY_DOCTOR       ? f->doctor_id
                     : c->q->by == TM_FIGURES_BY_DEPARTMENT ? dept
                                                            : inst;
    if (!id[0])
        return;
    count_fact(group_for(c, f->at_ms, id, dept, inst), f);
}

static json_t *local_time(GTimeZone *tz, int64_t ms);

/* A rating's comment as the answer lists it, with whose visit it was. */
static void on_comment(const char *visit_id, const char *doctor_id, const char *dept_id, int score,
                       const char *comment, int64_t rated_ms, void *user)
{
    counter *c = user;
    const char *dept;
    if (!in_scope(c, institution_of(c, doctor_id, dept_id, &dept)))
        return;
    const owner *doc = owner_of(c->names, "doctor", doctor_id);
    const owner *dep = owner_of(c->names, "department", dept);
    json_array_append_new(c->comments,
                          json_pack("{s:s, s:o, s:s, s:s, s:s, s:s, s:i, s:s}", "visit_id",
                                    visit_id, "rated_at", local_time(c->tz, rated_ms), "doctor_id",
                                    doctor_id, "doctor_name", doc ? doc->name : "", "department_id",
                                    dept, "department_name", dep ? dep->name : "", "score", score,
                                    "comment", comment));
}

/* ---- the answer ----------------------------------------------------- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest rank: the smallest value with at least p of the values at or
 * below it. Sorts waits. */
static json_t *percentile(GArray *waits, double p)
{
    if (waits->len == 0)
        return json_null();
    qsort(waits->data, waits->len, sizeof(int64_t), cmp_i64);
    size_t rank = (size_t)ceil(p * (double)waits->len);
    return json_integer(g_array_index(waits, int64_t, rank ? rank - 1 : 0));
}

static json_t *text_or_null(const char *t)
{
    return t && *t ? json_string(t) : json_null();
}

static json_t *group_json(const counter *c, const period *p, group *g)
{
    const char *kind = c->q->by == TM_FIGURES_BY_DOCTOR       ? "doctor"
                       : c->q->by == TM_FIGURES_BY_DEPARTMENT ? "department"
                                                              : "institution";
    const owner *o = owner_of(c->names, kind, g->id);
    const char *name = o ? o->name
                       : strcmp(g->id, c->q->core_id) == 0 && c->q->by == TM_FIGURES_BY_INSTITUTION
                           ? c->q->core_name
                           : "";
    json_t *row = json_pack("{s:s, s:s, s:s, s:s}", "period", p->label, "period_start",
                            p->start_text, "id", g->id, "name", name);
    if (c->q->by == TM_FIGURES_BY_DOCTOR) {
        const owner *dep = g->dept_id[0] ? owner_of(c->names, "department", g->dept_id) : NULL;
        json_object_set_new(row, "department_id", text_or_null(g->dept_id));
        json_object_set_new(row, "department_name", text_or_null(dep ? dep->name : NULL));
    }
    if (c->q->by != TM_FIGURES_BY_INSTITUTION)
        json_object_set_new(row, "institution_id", text_or_null(g->inst_id));
    json_object_set_new(row, "workload",
                        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "visits", (json_int_t)g->visits,
                                  "follow_up_visits", (json_int_t)g->follow_ups,
                                  "consultations_given", (json_int_t)g->given,
                                  "consultations_requested", (json_int_t)g->requested, "referrals",
                                  (json_int_t)g->referrals, "transfers", (json_int_t)g->transfers));
    json_object_set_new(
        row, "response",
        json_pack("{s:I, s:o, s:o, s:I, s:o, s:o}", "accepted", (json_int_t)g->accept_waits->len,
                  "accept_p50_ms", percentile(g->accept_waits, 0.5), "accept_p90_ms",
                  percentile(g->accept_waits, 0.9), "scheduled", (json_int_t)g->schedule_waits->len,
                  "schedule_p50_ms", percentile(g->schedule_waits, 0.5), "schedule_p90_ms",
                  percentile(g->schedule_waits, 0.9)));
    json_t *mean = g->ratings
                       ? json_real(round((double)g->score_sum * 100.0 / (double)g->ratings) / 100.0)
                       : json_null();
    json_object_set_new(row, "satisfaction",
                        json_pack("{s:I, s:o, s:I}", "ratings", (json_int_t)g->ratings,
                                  "rating_mean", mean, "comments", (json_int_t)g->comments));
    json_object_set_new(row, "no_shows", json_integer(g->no_shows));
    return row;
}

static gint period_order(gconstpointer a, gconstpointer b)
{
    const period *x = *(period *const *)a, *y = *(period *const *)b;
    return (x->start_ms > y->start_ms) - (x->start_ms < y->start_ms);
}

static gint group_order(gconstpointer a, gconstpointer b)
{
    return strcmp((*(group *const *)a)->id, (*(group *const *)b)->id);
}

/* The values of table, sorted. New array of borrowed pointers. */
static GPtrArray *sorted_values(GHashTable *table, GCompareFunc order)
{
    GPtrArray *out = g_ptr_array_sized_new(g_hash_table_size(table));
    GHashTableIter it;
    gpointer value;
    g_hash_table_iter_init(&it, table);
    while (g_hash_table_iter_next(&it, NULL, &value))
        g_ptr_array_add(out, value);
    g_ptr_array_sort(out, order);
    return out;
}

static json_t *local_time(GTimeZone *tz, int64_t ms)
{
    GDateTime *utc = g_date_time_new_from_unix_utc(ms / 1000);
    GDateTime *local = g_date_time_to_timezone(utc, tz);
    char *text = g_date_time_format(local, RFC3339_LOCAL);
    json_t *v = json_string(text);
    g_free(text);
    g_date_time_unref(local);
    g_date_time_unref(utc);
    return v;
}

json_t *tm_figures_compute(tm_store *s, const tm_figures_query *q, int *rc)
{
    static const char *const by_names[] = {"doctor", "department", "institution"};
    static const char *const period_names[] = {"day", "week", "month"};
    counter c = {.q = q};
    json_t *out = NULL;
    *rc = TM_EINVAL;
    if (q->to_ms <= q->from_ms || q->to_ms - q->from_ms > TM_FIGURES_MAX_DAYS * DAY_MS)
        return NULL;
    if (!q->time_zone || !(c.tz = g_time_zone_new_identifier(q->time_zone)))
        return NULL;
    c.names = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, owner_free);
    c.periods = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, period_free);
    c.slots = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
    c.comments = json_array();
    *rc = tm_store_figure_names(s, add_name, c.names);
    if (*rc == 0)
        *rc = tm_store_figure_facts(s, q->from_ms, q->to_ms, on_fact, &c);
    if (*rc == 0)
        *rc = tm_store_figure_comments(s, q->from_ms, q->to_ms, TM_FIGURES_MAX_COMMENTS, on_comment,
                                       &c);
    if (*rc < 0)
        goto done;
    json_t *rows = json_array();
    GPtrArray *periods = sorted_values(c.periods, period_order);
    for (guint i = 0; i < periods->len; i++) {
        const period *p = g_ptr_array_index(periods, i);
        GPtrArray *groups = sorted_values(p->groups, group_order);
        for (guint j = 0; j < groups->len; j++)
            json_array_append_new(rows, group_json(&c, p, g_ptr_array_index(groups, j)));
        g_ptr_array_unref(groups);
    }
    g_ptr_array_unref(periods);
    out = json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:O}", "by", by_names[q->by], "period",
                    period_names[q->period], "time_zone", q->time_zone, "from",
                    local_time(c.tz, q->from_ms), "to", local_time(c.tz, q->to_ms), "rows", rows,
                    "comments", c.comments);
done:
    json_decref(c.comments);
    g_hash_table_destroy(c.slots);
    g_hash_table_destroy(c.periods);
    g_hash_table_destroy(c.names);
    g_time_zone_unref(c.tz);
    return out;
}

/* ---- CSV ------------------------------------------------------------ */

/* RFC 4180 quoting; text a spreadsheet would run as a formula (names are
 * typed by people) gets a leading apostrophe. */
static void csv_field(GString *out, json_t *v)
{
    if (json_is_integer(v)) {
        g_string_append_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return;
    }
    if (json_is_real(v)) {
        g_string_append_printf(out, "%.2f", json_real_value(v));
        return;
    }
    const char *t = json_is_string(v) ? json_string_value(v) : "";
    bool formula = strchr("=+-@", t[0]) && t[0];
    if (!formula && !strpbrk(t, ",\"\r\n")) {
        g_string_append(out, t);
        return;
    }
    g_string_append_c(out, '"');
    if (formula)
        g_string_append_c(out, '\'');
    for (const char *p = t; *p; p++) {
        if (*p == '"')
            g_string_append_c(out, '"');
        g_string_append_c(out, *p);
    }
    g_string_append_c(out, '"');
}

char *tm_figures_csv(const json_t *figures)
{
    static const char *const columns[][2] = {
        {NULL, "period"},
        {NULL, "period_start"},
        {NULL, "id"},
        {NULL, "name"},
        {NULL, "department_id"},
        {NULL, "institution_id"},
        {"workload", "visits"},
        {"workload", "follow_up_visits"},
        {"workload", "consultations_given"},
        {"workload", "consultations_requested"},
        {"workload", "referrals"},
        {"workload", "transfers"},
        {"response", "accepted"},
        {"response", "accept_p50_ms"},
        {"response", "accept_p90_ms"},
        {"response", "scheduled"},
        {"response", "schedule_p50_ms"},
        {"response", "schedule_p90_ms"},
        {"satisfaction", "ratings"},
        {"satisfaction", "rating_mean"},
        {"satisfaction", "comments"},
        {NULL, "no_shows"},
    };
    GString *out = g_string_new(NULL);
    for (size_t i = 0; i < TM_ARRAY_LEN(columns); i++)
        g_string_append_printf(out, "%s%s", i ? "," : "", columns[i][1]);
    g_string_append(out, "\r\n");
    json_t *rows = json_object_get(figures, "rows");
    for (size_t r = 0; r < json_array_size(rows); r++) {
        json_t *row = json_array_get(rows, r);
        for (size_t i = 0; i < TM_ARRAY_LEN(columns); i++) {
            json_t *in = columns[i][0] ? json_object_get(row, columns[i][0]) : row;
            if (i)
                g_string_append_c(out, ',');
            csv_field(out, json_object_get(in, columns[i][1]));
        }
        g_string_append(out, "\r\n");
    }
    return g_string_free(out, FALSE);
}

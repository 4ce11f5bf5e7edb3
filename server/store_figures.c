/*
 * store_figures.c - the SQLite backend's reads for the doctor and department
 * figures (store.h, "doctor and department figures"): visits accepted,
 * no-shows and the hospital network's steps in a time range, as typed facts
 * for server/figures.c to count.
 *
 * The network's steps (consultations, referrals, transfers) are read from the
 * outbox's typed events, not from the tables that hold them: every step writes
 * its event in the same transaction as its rows, the event names are the
 * contract all of issue 18 shares, and so the figures count exactly what the
 * regulator was told, whatever shape those tables take. Who did a step comes
 * from the event's data (event_actor below); the request -> scheduled wait
 * from the two events of the same subject.
 *
 * Each query is a range on an indexed time column (migration "figures"), so
 * a bounded range costs its rows, not the database. Control loop thread only.
 */
#include "store_internal.h"
#include "telemed/common.h"

#include <string.h>

/* Where an event's data names the doctor and the department that did the
 * step, as the consultation, referral and transfer steps write it (a
 * consultation request's own event is its data alone; a step of a visit
 * carries its object beside the visit's facts), first found wins. */
typedef struct event_rule {
    const char *type;
    tm_figure_fact_kind kind;
    const char *doctor[2];
    const char *dept[2];
} event_rule;

static const event_rule event_rules[] = {
    {"consultation.requested",
     TM_FACT_CONSULT_REQUESTED,
     {"requester_id", "consultation.requester_id"},
     {"requester_dept_id", "consultation.requester_dept_id"}},
    {"consultation.scheduled",
     TM_FACT_CONSULT_SCHEDULED,
     {"specialist_id", "consultation.specialist_id"},
     {"dept_id", "consultation.dept_id"}},
    {"consultation.opinion_signed",
     TM_FACT_CONSULT_GIVEN,
     {"consultation.opinion.doctor_id", "consultation.specialist_id"},
     {"consultation.dept_id", NULL}},
    {"referral.created",
     TM_FACT_REFERRAL,
     {"referral.from_doctor_id", NULL},
     {"referral.from_dept_id", NULL}},
    {"visit.transferred",
     TM_FACT_TRANSFER,
     {"transfer.from_doctor_id", NULL},
     {"transfer.from_department_id", NULL}},
};

static const event_rule *rule_of(const char *type)
{
    for (size_t i = 0; i < TM_ARRAY_LEN(event_rules); i++)
        if (strcmp(event_rules[i].type, type) == 0)
            return &event_rules[i];
    return NULL;
}

/* The text at a dotted path of the event's data ("" when absent). */
static const char *data_text(json_t *data, const char *path)
{
    if (!path)
        return "";
    char buf[96];
    g_strlcpy(buf, path, sizeof(buf));
    json_t *v = data;
    for (char *key = buf, *dot; v && key; key = dot) {
        dot = strchr(key, '.');
        if (dot)
            *dot++ = 0;
        v = json_object_get(v, key);
    }
    return json_is_string(v) ? json_string_value(v) : "";
}

static const char *first_text(json_t *data, const char *const *paths, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *t = data_text(data, paths[i]);
        if (*t)
            return t;
    }
    return "";
}

static const char *col(tm__stmt *st, int i)
{
    const char *t = tm__col_text(st, i);
    return t ? t : "";
}

static int64_t col_ms(tm__stmt *st, int i)
{
    return tm__col_is_null(st, i) ? -1 : tm__col_int64(st, i);
}

/* Visits accepted in the range, each counted for the doctor who accepted
 * it first with the check-in -> accept wait, and with its rating when it
 * was never transferred. A transferred visit's row names the doctor who has
 * it last: its first doctor is its first attending participant, and its
 * rating goes with the last receiving doctor's part (transfer_part_facts).
 * Transfers come after the first accept, so only those since the range's
 * start are looked at, once. */
static int visit_facts(tm_store *s, int64_t from_ms, int64_t to_ms,
                       void (*fn)(const tm_figure_fact *f, void *user), void *user)
{
    tm__stmt *st = tm__store_query(
        s,
        "WITH moved AS (SELECT visit_id FROM outbox"
        "                WHERE type = 'visit.transferred' AND occurred_at >= ?1)"
        "SELECT v.doctor_id, v.dept_id, v.kind, v.accepted_at,"
        "       coalesce(v.response_ms, v.accepted_at - v.checkin_at), r.score,"
        "       coalesce(length(r.comment), 0) > 0, v.id IN (SELECT visit_id FROM moved),"
        "       CASE WHEN v.id IN (SELECT visit_id FROM moved) THEN"
        "         (SELECT p.user_id FROM participants p"
        "           WHERE p.visit_id = v.id AND p.visit_role = 'attending'"
        "           ORDER BY p.joined_at, p.id LIMIT 1) END"
        "  FROM visits v LEFT JOIN ratings r ON r.visit_id = v.id"
        " WHERE v.accepted_at >= ?1 AND v.accepted_at < ?2",
        "II", from_ms, to_ms);
    if (!st)
        return TM_EIO;
    int rc;
    while ((rc = tm__store_step(s, st)) == 1) {
        bool moved = tm__col_int(st, 7) != 0;
        tm_figure_fact f = {
            .kind = TM_FACT_VISIT,
            .doctor_id = moved && *col(st, 8) ? col(st, 8) : col(st, 0),
            .dept_id = moved ? "" : col(st, 1), /* moved with the visit: the doctor's */
            .follow_up = strcmp(col(st, 2), "follow_up") == 0,
            .at_ms = tm__col_int64(st, 3),
            .wait_ms = col_ms(st, 4),
            .score = moved ? 0 : tm__col_int(st, 5),
            .comment = !moved && tm__col_int(st, 6) != 0,
        };
        fn(&f, user);
    }
    tm__stmt_reset(st);
    return rc < 0 ? rc : 0;
}

/* The receiving doctors' parts of transferred visits: each visit.started
 * after a visit.transferred, in the range, for the doctor its data names,
 * with the transfer -> accept wait; the last one carries the visit's
 * rating. Driven from the transfers (few), each visit's events by its own
 * index ("+" and "|| ''" keep the planner off the time and type
 * indexes), not from every accept. */
static int transfer_part_facts(tm_store *s, int64_t from_ms, int64_t to_ms,
                               void (*fn)(const tm_figure_fact *f, void *user), void *user)
{
    tm__stmt *st = tm__store_query(
        s,
        "SELECT o.occurred_at, o.payload,"
        "       (SELECT max(q.occurred_at) FROM outbox q"
        "         WHERE q.visit_id = o.visit_id AND q.seq < o.seq"
        "           AND q.type || '' = 'visit.transferred'),"
        "       o.seq = (SELECT max(q.seq) FROM outbox q"
        "                 WHERE q.visit_id = o.visit_id AND q.type || '' = 'visit.started'),"
        "       r.score, coalesce(length(r.comment), 0) > 0"
        "  FROM (SELECT DISTINCT visit_id FROM outbox"
        "         WHERE type = 'visit.transferred' AND occurred_at < ?2) t"
        "  JOIN outbox o ON o.visit_id = t.visit_id AND o.type || '' = 'visit.started'"
        "  LEFT JOIN ratings r ON r.visit_id = o.visit_id"
        " WHERE +o.occurred_at >= ?1 AND +o.occurred_at < ?2",
        "II", from_ms, to_ms);
    if (!st)
        return TM_EIO;
    int rc;
    while ((rc = tm__store_step(s, st)) == 1) {
        int64_t at = tm__col_int64(st, 0), since = col_ms(st, 2);
        if (since < 0)
            continue; /* the first accept: visit_facts */
        const char *payload = (const char *)tm__col_blob(st, 1);
        json_t *data = payload ? json_loadb(payload, (size_t)tm__col_bytes(st, 1), 0, NULL) : NULL;
        bool last = tm__col_int(st, 3) != 0;
        tm_figure_fact f = {
            .kind = TM_FACT_VISIT,
            .at_ms = at,
            .doctor_id = data_text(data, "doctor_id"),
            .dept_id = data_text(data, "department_id"),
            .follow_up = strcmp(data_text(data, "visit_kind"), "follow_up") == 0,
            .wait_ms = since <= at ? at - since : -1,
            .score = last ? tm__col_int(st, 4) : 0,
            .comment = last && tm__col_int(st, 5) != 0,
        };
        fn(&f, user);
        json_decref(data);
    }
    tm__stmt_reset(st);
    return rc < 0 ? rc : 0;
}

/* Appointments whose slot in the range passed without the patient, each
 * for its department and its doctor: the appointment's, else the one who
 * booked the follow-up (the rule tm_store_noshow_counts counts by too). */
static int no_show_facts(tm_store *s, int64_t from_ms, int64_t to_ms,
                         void (*fn)(const tm_figure_fact *f, void *user), void *user)
{
    tm__stmt *st =
        tm__store_query(s,
                        "SELECT " TM__NOSHOW_DOCTOR ", a.dept_id, a.kind, a.slot_at"
                        " FROM appointments a LEFT JOIN followups f ON f.appointment_id = a.id"
                        " WHERE a.status = 'noshow' AND a.slot_at >= ?1 AND a.slot_at < ?2",
                        "II", from_ms, to_ms);
    if (!st)
        return TM_EIO;
    int rc;
    while ((rc = tm__store_step(s, st)) == 1) {
        tm_figure_fact f = {
            .kind = TM_FACT_NO_SHOW,
            .doctor_id = col(st, 0),
            .dept_id = col(st, 1),
            .follow_up = strcmp(col(st, 2), "follow_up") == 0,
            .at_ms = tm__col_int64(st, 3),
            .wait_ms = -1,
        };
        fn(&f, user);
    }
    tm__stmt_reset(st);
    return rc < 0 ? rc : 0;
}

/* The network's steps in the range; an event whose data cannot be read
 * still counts, without a doctor. A consultation's wait is from its request
 * to this scheduling. */
static int event_facts(tm_store *s, int64_t from_ms, int64_t to_ms,
                       void (*fn)(const tm_figure_fact *f, void *user), void *user)
{
    tm__stmt *st = tm__store_query(
        s,
        "SELECT o.type, o.occurred_at, o.payload,"
        "       CASE o.type WHEN 'consultation.scheduled' THEN"
        "         (SELECT min(q.occurred_at) FROM outbox q"
        "           WHERE q.visit_id = o.visit_id AND q.type = 'consultation.requested') END"
        "  FROM outbox o"
        " WHERE o.type IN ('consultation.requested', 'consultation.scheduled',"
        "                  'consultation.opinion_signed', 'referral.created', 'visit.transferred')"
        "   AND o.occurred_at >= ?1 AND o.occurred_at < ?2",
        "II", from_ms, to_ms);
    if (!st)
        return TM_EIO;
    int rc;
    while ((rc = tm__store_step(s, st)) == 1) {
        const event_rule *rule = rule_of(col(st, 0));
        if (!rule)
            continue;
        const char *payload = (const char *)tm__col_blob(st, 2);
        int len = tm__col_bytes(st, 2);
        json_t *data = payload ? json_loadb(payload, (size_t)len, 0, NULL) : NULL;
        int64_t at = tm__col_int64(st, 1), asked = col_ms(st, 3);
        tm_figure_fact f = {
            .kind = rule->kind,
            .at_ms = at,
            .doctor_id = first_text(data, rule->doctor, TM_ARRAY_LEN(rule->doctor)),
            .dept_id = first_text(data, rule->dept, TM_ARRAY_LEN(rule->dept)),
            .wait_ms = asked >= 0 && asked <= at ? at - asked : -1,
        };
        fn(&f, user);
        json_decref(data);
    }
    tm__stmt_reset(st);
    return rc < 0 ? rc : 0;
}

int tm_store_figure_facts(tm_store *s, int64_t from_ms, int64_t to_ms,
                          void (*fn)(const tm_figure_fact *f, void *user), void *user)
{
    if (to_ms <= from_ms)
        return tm__store_refuse(s, TM_EINVAL, "the range ends before it starts");
    int rc = visit_facts(s, from_ms, to_ms, fn, user);
    if (rc == 0)
        rc = transfer_part_facts(s, from_ms, to_ms, fn, user);
    if (rc == 0)
        rc = no_show_facts(s, from_ms, to_ms, fn, user);
    if (rc == 0)
        rc = event_facts(s, from_ms, to_ms, fn, user);
    return rc;
}

int tm_store_figure_comments(tm_store *s, int64_t from_ms, int64_t to_ms, int limit,
                             tm_store_comment_fn fn, void *user)
{
    tm__stmt *st = tm__store_query(
        s,
        "SELECT v.id, v.doctor_id, v.dept_id, r.score, r.comment, r.created_at"
        "  FROM visits v JOIN ratings r ON r.visit_id = v.id"
        " WHERE v.accepted_at >= ?1 AND v.accepted_at < ?2 AND length(r.comment) > 0"
        " ORDER BY v.accepted_at DESC LIMIT ?3",
        "IIi", from_ms, to_ms, limit < 1 || limit > 1000 ? 1000 : limit);
    if (!st)
        return TM_EIO;
    int rc;
    while ((rc = tm__store_step(s, st)) == 1)
        fn(col(st, 0), col(st, 1), col(st, 2), tm__col_int(st, 3), col(st, 4), tm__col_int64(st, 5),
           user);
    tm__stmt_reset(st);
    return rc < 0 ? rc : 0;
}

/* ---- names ---------------------------------------------------------- */

static int each_name(tm_store *s, const char *sql, const char *kind, tm_store_name_fn fn,
                     void *user)
{
    tm__stmt *st = tm__store_query(s, sql, "");
    if (!st)
        return TM_EIO;
    int rc;
    while ((rc = tm__store_step(s, st)) == 1)
        fn(kind, col(st, 0), col(st, 1), col(st, 2), user);
    tm__stmt_reset(st);
    return rc < 0 ? rc : 0;
}

int tm_store_figure_names(tm_store *s, tm_store_name_fn fn, void *user)
{
    int rc = each_name(s, "SELECT id, name, '' FROM institutions", "institution", fn, user);
    if (rc == 0)
        rc = each_name(s, "SELECT id, name, coalesce(institution_id, '') FROM departments",
                       "department", fn, user);
    if (rc == 0)
        rc = each_name(s, "SELECT id, name, dept_id FROM doctors", "doctor", fn, user);
    return rc;
}

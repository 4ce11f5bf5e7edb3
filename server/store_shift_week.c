/*
 * store_shift_week.c - the SQLite backend's week-by-week side of the
 * schedule (issue 18, the scheduling page): a week's shifts copied to the
 * next, and the department of one shift for a caller scoped to an
 * institution.
 *
 * A copy is one transaction: a week whose copy would put a doctor in two
 * overlapping shifts writes nothing and says which. Copying again adds
 * nothing: a shift already there with the same doctor, department, start
 * and end counts as done.
 *
 * Control loop thread only, on the store's connection (store_internal.h).
 */
#include "store_internal.h"
#include "telemed/common.h"

#include <stdio.h>
#include <string.h>

#define WEEK_MS (7LL * 24 * 3600 * 1000)

typedef struct source_shift {
    char doctor[64], dept[64];
    int64_t start, end;
    int capacity;
} source_shift;

/* The week's shifts [from, from + 7 days), of dept_id and institution_id
 * when given, in start order. NULL on failure. */
static GArray *week_shifts(tm_store *s, int64_t from_ms, const char *dept_id,
                           const char *institution_id)
{
    tm__stmt *st = tm__store_query(
        s,
        "SELECT sh.doctor_id, sh.dept_id, sh.start_at, sh.end_at, sh.capacity FROM shifts sh"
        " JOIN departments d ON d.id = sh.dept_id"
        " WHERE sh.start_at >= ?1 AND sh.start_at < ?2 AND (?3 IS NULL OR sh.dept_id = ?3)"
        " AND (?4 IS NULL OR coalesce(d.institution_id, ?5) = ?4) ORDER BY sh.start_at, sh.id",
        "IIsss", from_ms, from_ms + WEEK_MS, dept_id, institution_id, tm_store_hospital_id(s));
    GArray *rows = g_array_new(FALSE, TRUE, sizeof(source_shift));
    int rc;
    while ((rc = tm__store_step(s, st)) == 1) {
        source_shift r = {0};
        tm__store_col_text(st, 0, r.doctor, sizeof(r.doctor));
        tm__store_col_text(st, 1, r.dept, sizeof(r.dept));
        r.start = tm__col_int64(st, 2);
        r.end = tm__col_int64(st, 3);
        r.capacity = tm__col_int(st, 4);
        g_array_append_val(rows, r);
    }
    tm__stmt_reset(st);
    if (rc < 0) {
        g_array_free(rows, TRUE);
        return NULL;
    }
    return rows;
}

/* What the doctor already has overlapping [start, end): 1 the same shift
 * (copied before), 2 another one (its id in other), 0 nothing. */
static int existing_overlap(tm_store *s, const source_shift *c, char other[64])
{
    tm__stmt *st = tm__store_query(
        s,
        "SELECT id, dept_id = ?4 AND start_at = ?2 AND end_at = ?3 FROM shifts"
        " WHERE doctor_id = ?1 AND start_at < ?3 AND end_at > ?2 ORDER BY 2 DESC LIMIT 1",
        "sIIs", c->doctor, c->start, c->end, c->dept);
    int rc = tm__store_step(s, st);
    int found = 0;
    if (rc == 1) {
        tm__store_col_text(st, 0, other, 64);
        found = tm__col_int(st, 1) ? 1 : 2;
    }
    tm__stmt_reset(st);
    return rc < 0 ? rc : found;
}

static int refuse_overlap(tm_store *s, const source_shift *c, const char *other)
{
    char when[40];
    tm_rfc3339(c->start, when, sizeof(when));
    tm__store_set_error(s, "%s's shift from %s would overlap %s", c->doctor, when, other);
    return TM_ECONFLICT;
}

int tm_store_shift_copy_week(tm_store *s, int64_t from_ms, const char *dept_id,
                             const char *institution_id, int *copied, int *skipped)
{
    int n_copied = 0, n_skipped = 0;
    GArray *rows = week_shifts(s, from_ms, dept_id, institution_id);
    if (!rows)
        return TM_EIO;
    int rc = tm__store_begin(s);
    for (guint i = 0; rc == 0 && i < rows->len; i++) {
        source_shift c = g_array_index(rows, source_shift, i);
        c.start += WEEK_MS;
        c.end += WEEK_MS;
        char other[64] = "";
        int found = existing_overlap(s, &c, other);
        if (found < 0) {
            rc = found;
        } else if (found == 1) {
            n_skipped++;
        } else if (found == 2) {
            rc = refuse_overlap(s, &c, other);
        } else {
            char id[64];
            tm__store_make_id("shift", id, sizeof(id));
            rc = tm__store_run(s,
                               "INSERT INTO shifts(id, doctor_id, dept_id, start_at, end_at,"
                               " capacity, created_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                               "sssIIiI", id, c.doctor, c.dept, c.start, c.end, c.capacity,
                               tm_now_ms());
            n_copied += rc == 0;
        }
    }
    g_array_free(rows, TRUE);
    char why[256];
    g_strlcpy(why, tm_store_errmsg(s), sizeof(why));
    rc = tm__store_finish(s, rc);
    if (rc == TM_ECONFLICT) /* the rollback must not hide which shift was in the way */
        tm__store_set_error(s, "%s", why);
    if (rc == 0) {
        if (copied)
            *copied = n_copied;
        if (skipped)
            *skipped = n_skipped;
    }
    return rc;
}

int tm_store_shift_dept(tm_store *s, const char *shift_id, char dept_out[64])
{
    tm__stmt *st = tm__store_query(s, "SELECT dept_id FROM shifts WHERE id = ?1", "s", shift_id);
    int rc = tm__store_step(s, st);
    if (rc == 0)
        rc = tm__store_refuse(s, TM_ENOTFOUND, "no such shift");
    if (rc == 1) {
        tm__store_col_text(st, 0, dept_out, 64);
        rc = 0;
    }
    tm__stmt_reset(st);
    return rc;
}

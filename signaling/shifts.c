/*
 * shifts.c - the doctors' shifts in memory (see shifts.h): one array of
 * shifts per doctor, looked up by doctor id. A doctor has a handful of
 * shifts ahead, so a lookup scans a few entries.
 */
#include "shifts.h"
#include "telemed/common.h"

#include <glib.h>
#include <string.h>

struct tm__shifts {
    GHashTable *by_doctor; /* doctor id -> GArray of tm__shift */
};

tm__shifts *tm__shifts_new(void)
{
    tm__shifts *c = g_new0(tm__shifts, 1);
    c->by_doctor =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_array_unref);
    return c;
}

void tm__shifts_free(tm__shifts *c)
{
    if (!c)
        return;
    g_hash_table_destroy(c->by_doctor);
    g_free(c);
}

/* The store lists times as RFC 3339 with milliseconds. */
static int64_t time_ms(json_t *row, const char *key)
{
    const char *text = json_string_value(json_object_get(row, key));
    GDateTime *dt = text ? g_date_time_new_from_iso8601(text, NULL) : NULL;
    if (!dt)
        return 0;
    int64_t ms = g_date_time_to_unix(dt) * 1000 + g_date_time_get_microsecond(dt) / 1000;
    g_date_time_unref(dt);
    return ms;
}

static void add_row(GHashTable *by_doctor, json_t *row)
{
    const char *doctor = json_string_value(json_object_get(row, "doctor_id"));
    const char *dept = json_string_value(json_object_get(row, "dept_id"));
    tm__shift sh = {.start_ms = time_ms(row, "start_at"),
                    .end_ms = time_ms(row, "end_at"),
                    .capacity = (int)json_integer_value(json_object_get(row, "capacity"))};
    if (!doctor || !dept || !sh.start_ms || !sh.end_ms)
        return;
    g_strlcpy(sh.dept, dept, sizeof(sh.dept));
    GArray *list = g_hash_table_lookup(by_doctor, doctor);
    if (!list) {
        list = g_array_new(FALSE, FALSE, sizeof(tm__shift));
        g_hash_table_insert(by_doctor, g_strdup(doctor), list);
    }
    g_array_append_val(list, sh);
}

int tm__shifts_load(tm__shifts *c, tm_store *store, int64_t now_ms)
{
    json_t *rows = tm_store_shift_list(store, NULL, NULL, now_ms, 0);
    if (!rows)
        return TM_EIO;
    g_hash_table_remove_all(c->by_doctor);
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) add_row(c->by_doctor, row);
    json_decref(rows);
    return 0;
}

const tm__shift *tm__shifts_current(const tm__shifts *c, const char *doctor_id, const char *dept,
                                    int64_t now_ms)
{
    GArray *list = g_hash_table_lookup(c->by_doctor, doctor_id);
    const tm__shift *best = NULL;
    for (guint i = 0; list && i < list->len; i++) {
        const tm__shift *sh = &g_array_index(list, tm__shift, i);
        if (sh->start_ms > now_ms || sh->end_ms <= now_ms || (dept && strcmp(sh->dept, dept) != 0))
            continue;
        if (!best || sh->end_ms > best->end_ms)
            best = sh;
    }
    return best;
}

static bool covers(const tm__shift *sh, int64_t now_ms)
{
    return sh->start_ms <= now_ms && now_ms < sh->end_ms;
}

void tm__shifts_current_depts(const tm__shifts *c, const char *doctor_id, int64_t now_ms,
                              void (*fn)(const char *dept, void *data), void *data)
{
    GArray *list = g_hash_table_lookup(c->by_doctor, doctor_id);
    for (guint i = 0; list && i < list->len; i++) {
        const tm__shift *sh = &g_array_index(list, tm__shift, i);
        if (!covers(sh, now_ms))
            continue;
        bool seen = false; /* two overlapping shifts in one department count once */
        for (guint j = 0; j < i && !seen; j++) {
            const tm__shift *before = &g_array_index(list, tm__shift, j);
            seen = covers(before, now_ms) && strcmp(before->dept, sh->dept) == 0;
        }
        if (!seen)
            fn(sh->dept, data);
    }
}

bool tm__shifts_has_dept(const tm__shifts *c, const char *doctor_id, const char *dept)
{
    GArray *list = g_hash_table_lookup(c->by_doctor, doctor_id);
    for (guint i = 0; list && i < list->len; i++)
        if (strcmp(g_array_index(list, tm__shift, i).dept, dept) == 0)
            return true;
    return false;
}

/* Walks every doctor's shifts: a department's hours are the union of its
 * doctors' shifts, and a hospital has tens of doctors, not thousands. */
int64_t tm__shifts_dept_next_start(const tm__shifts *c, const char *dept, int64_t now_ms)
{
    int64_t next = 0;
    GHashTableIter it;
    gpointer key, val;
    g_hash_table_iter_init(&it, c->by_doctor);
    while (g_hash_table_iter_next(&it, &key, &val)) {
        GArray *list = val;
        for (guint i = 0; i < list->len; i++) {
            const tm__shift *sh = &g_array_index(list, tm__shift, i);
            if (strcmp(sh->dept, dept) != 0 || sh->end_ms <= now_ms)
                continue;
            if (sh->start_ms <= now_ms)
                return 0;
            if (!next || sh->start_ms < next)
                next = sh->start_ms;
        }
    }
    return next;
}

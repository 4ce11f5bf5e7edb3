/*
 * store_followup.c - the SQLite backend's follow-up side of
 * include/telemed/store.h: follow-ups booked from inside a visit, the two
 * appointment sweeps (due soon, no-show), no-show counts, and the patient's
 * whole course as one timeline.
 *
 * Every appointment step is an outbox event written in the step's
 * transaction. Its subject (the outbox visit_id) is the visit the
 * appointment was booked in, so the messaging system gets a follow-up's
 * booked, moved, due and no_show (or cancelled) in that order; an appointment booked
 * outside a visit is its own subject and its event carries no visit facts.
 *
 * Control loop thread only, on the store's connection (store_internal.h).
 */
#include "store_internal.h"
#include "telemed/common.h"

#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The appointment as events and pages show it (times as RFC 3339). */
static json_t *appt_json(tm_store *s, const char *id)
{
    tm__stmt *st = tm__store_query(
        s,
        "SELECT a.id, a.patient_id, a.dept_id AS department_id, a.doctor_id, a.kind, a.status,"
        " a.slot_at, f.window_end_at, f.visit_id AS booked_in_visit, f.booked_by"
        " FROM appointments a LEFT JOIN followups f ON f.appointment_id = a.id WHERE a.id = ?1",
        "s", id);
    int rc = tm__store_step(s, st);
    json_t *o = rc == 1 ? tm__store_row_json(st) : NULL;
    if (rc == 0)
        tm__store_refuse(s, TM_ENOTFOUND, "no such appointment");
    if (st)
        tm__stmt_reset(st);
    return o;
}

/* An event whose subject is not a visit: the appointment's own id. */
static int append_subject_event(tm_store *s, const char *type, const char *subject, int64_t now_ms,
                                json_t *appt)
{
    json_t *data = json_object();
    json_object_set(data, "patient_id", json_object_get(appt, "patient_id"));
    json_object_set(data, "department_id", json_object_get(appt, "department_id"));
    json_object_set(data, "doctor_id", json_object_get(appt, "doctor_id"));
    json_object_set(data, "appointment", appt);
    int rc = tm__store_outbox_append_data(s, type, subject, now_ms, data);
    json_decref(data);
    return rc;
}

/* Appends the appointment's event `type` inside the open transaction. */
static int append_appt_event(tm_store *s, const char *type, const char *appt_id, int64_t now_ms)
{
    json_t *a = appt_json(s, appt_id);
    if (!a)
        return TM_EIO;
    const char *visit = json_string_value(json_object_get(a, "booked_in_visit"));
    int rc = visit ? tm__store_outbox_append_with(s, type, visit, now_ms, "appointment", a)
                   : append_subject_event(s, type, appt_id, now_ms, a);
    json_decref(a);
    return rc;
}

/* ---- booking and moving -------------------------------------------- */

static bool window_valid(int64_t slot_ms, int64_t window_end_ms)
{
    return slot_ms > 0 && (window_end_ms == 0 || window_end_ms > slot_ms);
}

int tm_store_followup_book(tm_store *s, const tm_followup *f, int64_t now_ms, char id_out[64])
{
    if (!f->visit_id[0] || !f->booked_by[0] || !window_valid(f->slot_ms, f->window_end_ms))
        return tm__store_refuse(s, TM_EINVAL,
                                "a follow-up needs its visit, who books it and a slot or window");
    tm_visit v;
    int rc = tm_store_visit_get(s, f->visit_id, &v);
    if (rc < 0)
        return rc;
    tm_appointment a = {0};
    g_strlcpy(a.patient_id, v.patient_id, sizeof(a.patient_id));
    g_strlcpy(a.dept_id, f->dept_id[0] ? f->dept_id : v.dept_id, sizeof(a.dept_id));
    g_strlcpy(a.doctor_id, f->doctor_id, sizeof(a.doctor_id));
    g_strlcpy(a.kind, "follow_up", sizeof(a.kind));
    a.slot_ms = f->slot_ms;
    char id[64];
    rc = tm__store_begin(s);
    if (rc == 0)
        rc = tm_store_appt_create(s, &a, id);
    if (rc == 0)
        rc = tm__store_run(s,
                           "INSERT INTO followups(appointment_id, visit_id, booked_by,"
                           " window_end_at, created_at) VALUES(?1, ?2, ?3, ?4, ?5)",
                           "ssstI", id, f->visit_id, f->booked_by, f->window_end_ms, now_ms);
    if (rc == 0)
        rc = append_appt_event(s, "appointment.booked", id, now_ms);
    rc = tm__store_finish(s, rc);
    if (rc == 0 && id_out)
        g_strlcpy(id_out, id, 64);
    return rc;
}

int tm_store_appt_move(tm_store *s, const char *appt_id, int64_t slot_ms, int64_t window_end_ms,
                       int64_t now_ms)
{
    if (!appt_id || !window_valid(slot_ms, window_end_ms))
        return tm__store_refuse(s, TM_EINVAL, "a move needs the appointment and a slot or window");
    tm_appointment a;
    int rc = tm_store_appt_get(s, appt_id, &a);
    if (rc < 0)
        return rc;
    if (strcmp(a.status, "booked") != 0)
        return tm__store_refuse(s, TM_ECONFLICT, "only a booked appointment can move");
    rc = tm__store_begin(s);
    if (rc == 0)
        rc = tm__store_run(s,
                           "UPDATE appointments SET slot_at = ?2, updated_at = ?3"
                           " WHERE id = ?1 AND status = 'booked'",
                           "sII", appt_id, slot_ms, now_ms);
    if (rc == 0)
        rc = tm__store_run(s, "UPDATE followups SET window_end_at = ?2 WHERE appointment_id = ?1",
                           "st", appt_id, window_end_ms);
    /* A new slot is told due again. */
    if (rc == 0)
        rc = tm__store_run(s, "DELETE FROM appointment_notices WHERE appointment_id = ?1", "s",
                           appt_id);
    if (rc == 0)
        rc = append_appt_event(s, "appointment.moved", appt_id, now_ms);
    return tm__store_finish(s, rc);
}

int tm_store_appt_book(tm_store *s, const tm_appointment *a, int64_t now_ms, char *id_out)
{
    char id[64];
    int rc = tm__store_begin(s);
    if (rc == 0)
        rc = tm_store_appt_create(s, a, id);
    if (rc == 0)
        rc = append_appt_event(s, "appointment.booked", id, now_ms);
    rc = tm__store_finish(s, rc);
    if (rc == 0 && id_out)
        g_strlcpy(id_out, id, 64);
    return rc;
}

int tm_store_appt_change(tm_store *s, const tm_appointment *a, int64_t now_ms)
{
    tm_appointment before;
    int rc = tm_store_appt_get(s, a->id, &before);
    if (rc < 0)
        return rc;
    /* The patient is told of a new time and of a cancelled booking (through
     * the messaging system); other changes are the hospital's. */
    bool moved = before.slot_ms != a->slot_ms && strcmp(a->status, "booked") == 0;
    bool cancelled = strcmp(before.status, "booked") == 0 && strcmp(a->status, "cancelled") == 0;
    rc = tm__store_begin(s);
    if (rc == 0)
        rc = tm_store_appt_update(s, a);
    if (rc == 0 && moved)
        rc = tm__store_run(s, "DELETE FROM appointment_notices WHERE appointment_id = ?1", "s",
                           a->id);
    if (rc == 0 && moved)
        rc = append_appt_event(s, "appointment.moved", a->id, now_ms);
    if (rc == 0 && cancelled)
        rc = append_appt_event(s, "appointment.cancelled", a->id, now_ms);
    return tm__store_finish(s, rc);
}

json_t *tm_store_appt_json(tm_store *s, const char *appt_id)
{
    return appt_json(s, appt_id);
}

json_t *tm_store_followups_of_visit(tm_store *s, const char *visit_id)
{
    tm__stmt *st = tm__store_query(
        s,
        "SELECT a.id, a.patient_id, a.dept_id AS department_id, a.doctor_id, a.kind, a.status,"
        " a.slot_at, f.window_end_at, f.visit_id AS booked_in_visit, f.booked_by"
        " FROM followups f JOIN appointments a ON a.id = f.appointment_id"
        " WHERE f.visit_id = ?1 ORDER BY a.slot_at",
        "s", visit_id);
    return tm__store_rows_json(s, st);
}

/* ---- the sweeps ---------------------------------------------------- */

/* Runs mark and the event `type` for each id of rows (taken), in one
 * transaction; *count gets how many. */
static int mark_each(tm_store *s, GPtrArray *rows, const char *sql, const char *type,
                     int64_t now_ms, int *count)
{
    int rc = 0, n = 0;
    if (rows->len > 0) {
        rc = tm__store_begin(s);
        for (guint i = 0; rc == 0 && i < rows->len; i++) {
            const char *id = g_ptr_array_index(rows, i);
            rc = tm__store_run(s, sql, "sI", id, now_ms);
            if (rc == 0)
                rc = append_appt_event(s, type, id, now_ms);
            n++;
        }
        rc = tm__store_finish(s, rc);
    }
    g_ptr_array_free(rows, TRUE);
    if (count)
        *count = rc == 0 ? n : 0;
    return rc;
}

int tm_store_appt_sweep_due(tm_store *s, int64_t now_ms, int64_t before_ms, int max, int *count)
{
    tm__stmt *st = tm__store_query(
        s,
        "SELECT a.id FROM appointments a WHERE a.status = 'booked'"
        " AND a.slot_at > ?1 AND a.slot_at <= ?2 AND NOT EXISTS (SELECT 1 FROM"
        " appointment_notices n WHERE n.appointment_id = a.id AND n.due_at IS NOT NULL)"
        " ORDER BY a.slot_at LIMIT ?3",
        "IIi", now_ms, now_ms + before_ms, max > 0 ? max : 100);
    GPtrArray *rows = st ? tm__store_collect_rows(s, st, 1) : NULL;
    if (!rows)
        return TM_EIO;
    return mark_each(s, rows,
                     "INSERT INTO appointment_notices(appointment_id, due_at) VALUES(?1, ?2)"
                     " ON CONFLICT(appointment_id) DO UPDATE SET due_at = excluded.due_at",
                     "appointment.due", now_ms, count);
}

int tm_store_appt_sweep_noshow(tm_store *s, int64_t now_ms, int64_t after_ms, int max, int *count)
{
    /* A window's appointment waits for the window's end, a slot's for the slot. */
    tm__stmt *st = tm__store_query(
        s,
        "SELECT a.id FROM appointments a LEFT JOIN followups f ON f.appointment_id = a.id"
        " WHERE a.status = 'booked' AND a.slot_at <= ?1"
        " AND coalesce(f.window_end_at, a.slot_at) <= ?1 ORDER BY a.slot_at LIMIT ?2",
        "Ii", now_ms - after_ms, max > 0 ? max : 100);
    GPtrArray *rows = st ? tm__store_collect_rows(s, st, 1) : NULL;
    if (!rows)
        return TM_EIO;
    return mark_each(s, rows,
                     "UPDATE appointments SET status = 'noshow', updated_at = ?2"
                     " WHERE id = ?1 AND status = 'booked'",
                     "appointment.no_show", now_ms, count);
}

json_t *tm_store_noshow_counts(tm_store *s, const char *by, int64_t from_ms, int64_t to_ms)
{
    tm__stmt *st = NULL;
    if (by && strcmp(by, "doctor") == 0)
        /* A department's follow-up counts for the doctor who booked it. */
        st = tm__store_query(s,
                             "SELECT " TM__NOSHOW_DOCTOR " AS doctor_id, count(*) AS no_shows"
                             " FROM appointments a LEFT JOIN followups f ON f.appointment_id = a.id"
                             " WHERE a.status = 'noshow' AND (?1 IS NULL OR a.slot_at >= ?1)"
                             " AND (?2 IS NULL OR a.slot_at < ?2) AND " TM__NOSHOW_DOCTOR
                             " IS NOT NULL GROUP BY 1 ORDER BY 1",
                             "tt", from_ms, to_ms);
    else if (by && strcmp(by, "dept") == 0)
        st = tm__store_query(s,
                             "SELECT dept_id, count(*) AS no_shows FROM appointments"
                             " WHERE status = 'noshow' AND (?1 IS NULL OR slot_at >= ?1)"
                             " AND (?2 IS NULL OR slot_at < ?2) GROUP BY 1 ORDER BY 1",
                             "tt", from_ms, to_ms);
    else
        tm__store_refuse(s, TM_EINVAL, "no-shows are counted by doctor or dept");
    return st ? tm__store_rows_json(s, st) : NULL;
}

/* ---- the patient's whole course ------------------------------------ */

/* Items sort by their time; the key is dropped before the timeline leaves. */
static gint by_time(gconstpointer a, gconstpointer b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "_ms"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "_ms"));
    return x < y ? -1 : x > y;
}

/* Collects st's rows as items of kind. Column 0 is the item's time (epoch
 * ms) to sort by; it is dropped from the item. */
static int add_items(tm_store *s, tm__stmt *st, const char *kind, GPtrArray *out)
{
    if (!st)
        return TM_EIO;
    int rc;
    while ((rc = tm__store_step(s, st)) == 1) {
        json_t *o = tm__store_row_json(st);
        json_object_del(o, tm__col_name(st, 0));
        json_object_set_new(o, "kind", json_string(kind));
        json_object_set_new(o, "_ms", json_integer(tm__col_int64(st, 0)));
        g_ptr_array_add(out, o);
    }
    tm__stmt_reset(st);
    return rc;
}

/* A visit's signed notes and the diagnosis codes they give. */
static int add_notes(tm_store *s, json_t *visit)
{
    json_t *notes = tm_store_notes_signed(s, json_string_value(json_object_get(visit, "visit_id")));
    if (!notes)
        return TM_EIO;
    json_t *codes = json_array();
    size_t i;
    json_t *n;
    json_array_foreach(notes, i, n)
    {
        json_t *code = json_object_get(n, "diagnosis_code");
        if (json_is_string(code))
            json_array_append(codes, code);
    }
    json_object_set_new(visit, "notes", notes);
    json_object_set_new(visit, "diagnosis_codes", codes);
    return 0;
}

/* The patient's consultations and referrals, as timeline items. */
static int add_network_items(tm_store *s, const char *patient_id, GPtrArray *items)
{
    int rc = add_items(s,
                       tm__store_query(s,
                                       "SELECT created_at AS sort_ms, * FROM consultations"
                                       " WHERE patient_id = ?1",
                                       "s", patient_id),
                       "consultation", items);
    if (rc == 0)
        rc = add_items(s,
                       tm__store_query(s,
                                       "SELECT created_at AS sort_ms, * FROM referrals"
                                       " WHERE patient_id = ?1",
                                       "s", patient_id),
                       "referral", items);
    return rc;
}

json_t *tm_store_patient_timeline(tm_store *s, const char *patient_id, bool patient_view,
                                  int64_t now_ms)
{
    GPtrArray *items = g_ptr_array_new_with_free_func((GDestroyNotify)json_decref);
    int rc = add_items(
        s,
        tm__store_query(
            s,
            "SELECT v.checkin_at AS sort_ms, v.id AS visit_id, v.checkin_at AS at, v.dept_id,"
            " d.name AS dept_name, v.doctor_id, doc.name AS doctor_name,"
            " v.kind AS visit_kind, v.state, v.ended_at, v.end_reason"
            " FROM visits v LEFT JOIN departments d ON d.id = v.dept_id"
            " LEFT JOIN doctors doc ON doc.id = v.doctor_id"
            " WHERE v.patient_id = ?1",
            "s", patient_id),
        "visit", items);
    for (guint i = 0; rc == 0 && i < items->len; i++) {
        json_t *v = g_ptr_array_index(items, i);
        rc = add_notes(s, v);
    }
    /* The patient sees what is still ahead; staff see every appointment. */
    if (rc == 0)
        rc = add_items(
            s,
            tm__store_query(
                s,
                "SELECT a.slot_at AS sort_ms, a.id AS appointment_id, a.slot_at AS at,"
                " a.slot_at, f.window_end_at, a.kind AS appointment_kind, a.status, a.dept_id,"
                " d.name AS dept_name, a.doctor_id, doc.name AS doctor_name,"
                " f.visit_id AS booked_in_visit, f.booked_by"
                " FROM appointments a LEFT JOIN followups f ON f.appointment_id = a.id"
                " LEFT JOIN departments d ON d.id = a.dept_id"
                " LEFT JOIN doctors doc ON doc.id = a.doctor_id"
                " WHERE a.patient_id = ?1 AND (?2 = 0 OR (a.status = 'booked'"
                " AND coalesce(f.window_end_at, a.slot_at) >= ?3))",
                "siI", patient_id, patient_view ? 1 : 0, now_ms),
            "appointment", items);
    if (rc == 0 && !patient_view)
        rc = add_network_items(s, patient_id, items);
    if (rc < 0) {
        g_ptr_array_free(items, TRUE);
        return NULL;
    }
    g_ptr_array_sort(items, by_time);
    json_t *list = json_array();
    for (guint i = 0; i < items->len; i++) {
        json_t *o = g_ptr_array_index(items, i);
        json_object_del(o, "_ms");
        json_array_append(list, o);
    }
    g_ptr_array_free(items, TRUE);
    return json_pack("{s:s, s:o}", "patient_id", patient_id, "items", list);
}

bool tm_store_doctor_knows_patient(tm_store *s, const char *doctor_id, const char *patient_id)
{
    tm__stmt *st = tm__store_query(
        s,
        "SELECT 1 FROM visits WHERE patient_id = ?1 AND doctor_id = ?2"
        " UNION ALL SELECT 1 FROM participants p JOIN visits v ON v.id = p.visit_id"
        " WHERE v.patient_id = ?1 AND p.user_id = ?2 AND p.role = 'doctor'"
        " UNION ALL SELECT 1 FROM appointments WHERE patient_id = ?1 AND doctor_id = ?2"
        " LIMIT 1",
        "ss", patient_id, doctor_id);
    bool found = tm__store_step(s, st) == 1;
    if (st)
        tm__stmt_reset(st);
    return found;
}

/*
 * followup.c - follow-ups and the appointment sweep (issue 18, followup18).
 *
 * visit.followup: the attending doctor books the patient's next follow-up
 * from inside the visit (or after it, as with the note): a slot or a date
 * window, with themselves or with any doctor of a department; or moves one
 * booked in the same visit. The store writes the appointment, its link to
 * the visit and the appointment.booked / appointment.moved event in one
 * transaction; the patient is told at once (their end-of-visit summary).
 * The follow-up checks in later like any appointment (lobby.c).
 *
 * The sweep: every appointment_sweep_s a timer tells appointments due
 * (appointment.due, appointment_due_before_s ahead) and marks the ones
 * whose slot passed noshow_after_s ago without a check-in (appointment.no_show).
 * It runs on a timer, not in requests, so a page load never writes.
 *
 * Control loop.
 */
#include "signaling_internal.h"
#include "telemed/log.h"

#include <string.h>

/* Most appointments one sweep marks per kind; the next sweep takes the rest. */
#define SWEEP_MAX 200

/* Epoch ms from an RFC 3339 string or an integer of epoch ms; 0 if absent,
 * -1 if unreadable. */
static int64_t time_arg(json_t *msg, const char *key)
{
    json_t *v = json_object_get(msg, key);
    if (!v)
        return 0;
    if (json_is_integer(v))
        return json_integer_value(v) > 0 ? json_integer_value(v) : -1;
    if (!json_is_string(v))
        return -1;
    GDateTime *dt = g_date_time_new_from_iso8601(json_string_value(v), NULL);
    if (!dt)
        return -1;
    int64_t ms = g_date_time_to_unix(dt) * 1000 + g_date_time_get_microsecond(dt) / 1000;
    g_date_time_unref(dt);
    return ms;
}

/* The slot or window the request names: slot_at, or window {from, to}. */
static bool read_when(request *r, int64_t *slot_ms, int64_t *window_end_ms)
{
    json_t *window = json_object_get(r->msg, "window");
    *slot_ms = time_arg(r->msg, "slot_at");
    *window_end_ms = 0;
    if (window && json_is_object(window) && *slot_ms == 0) {
        *slot_ms = time_arg(window, "from");
        *window_end_ms = time_arg(window, "to");
    }
    bool ok = *slot_ms > 0 && *window_end_ms >= 0 && (!window || json_is_object(window)) &&
              (*window_end_ms == 0 || *window_end_ms > *slot_ms);
    if (ok && *slot_ms <= tm_now_ms())
        ok = false;
    if (!ok)
        tm__reply_err(r->s, r->id, TM_EINVAL,
                      "a follow-up needs slot_at or window {from, to} in the future, from "
                      "before to");
    return ok;
}

/* The visit the doctor books in: theirs (attending), live or ended. */
static int attending_visit(request *r, const char *visit_id, tm_visit *rec)
{
    if (!visit_id)
        return TM_EINVAL;
    int rc = tm_store_visit_get(r->sig->store, visit_id, rec);
    if (rc < 0)
        return rc;
    if (strcmp(rec->doctor_id, r->u->sub) != 0)
        return TM_EPERM;
    if (strcmp(rec->state, "active") != 0 && strcmp(rec->state, "ended") != 0)
        return TM_ECONFLICT;
    return 0;
}

/* Moves a follow-up booked in the same visit. */
static int move_followup(request *r, const tm_visit *rec, const char *appt_id, int64_t slot_ms,
                         int64_t window_end_ms)
{
    json_t *a = tm_store_appt_json(r->sig->store, appt_id);
    const char *in = a ? json_string_value(json_object_get(a, "booked_in_visit")) : NULL;
    int rc = !a ? TM_ENOTFOUND : !in || strcmp(in, rec->id) != 0 ? TM_EPERM : 0;
    json_decref(a);
    if (rc == 0)
        rc = tm_store_appt_move(r->sig->store, appt_id, slot_ms, window_end_ms, tm_now_ms());
    return rc;
}

static int book_followup(request *r, const tm_visit *rec, int64_t slot_ms, int64_t window_end_ms,
                         char appt_id[64])
{
    tm_followup f = {0};
    g_strlcpy(f.visit_id, rec->id, sizeof(f.visit_id));
    g_strlcpy(f.booked_by, r->u->sub, sizeof(f.booked_by));
    const char *dept = tm__jstr(r->msg, "dept");
    g_strlcpy(f.dept_id, dept ? dept : rec->dept_id, sizeof(f.dept_id));
    /* "self" (the default): the booking doctor sees the patient again;
     * "any": whichever doctor of the department is on duty. */
    const char *doctor = tm__jstr(r->msg, "doctor");
    if (doctor && strcmp(doctor, "self") != 0 && strcmp(doctor, "any") != 0)
        return TM_EINVAL;
    if (!doctor || strcmp(doctor, "self") == 0)
        g_strlcpy(f.doctor_id, r->u->sub, sizeof(f.doctor_id));
    f.slot_ms = slot_ms;
    f.window_end_ms = window_end_ms;
    return tm_store_followup_book(r->sig->store, &f, tm_now_ms(), appt_id);
}

static void handle_followup(request *r)
{
    if (!tm__need_role(r, TM_ROLE_DOCTOR, TM_ROLE_DOCTOR))
        return;
    tm_visit rec;
    int rc = attending_visit(r, tm__jstr(r->msg, "visit_id"), &rec);
    if (rc < 0) {
        tm__reply_err(r->s, r->id, rc,
                      rc == TM_EPERM       ? "only the attending doctor books the follow-up"
                      : rc == TM_EINVAL    ? "visit_id is required"
                      : rc == TM_ECONFLICT ? "the visit has not started"
                                           : NULL);
        return;
    }
    int64_t slot_ms, window_end_ms;
    if (!read_when(r, &slot_ms, &window_end_ms))
        return;
    char appt_id[64] = "";
    const char *move = tm__jstr(r->msg, "appointment_id");
    if (move) {
        g_strlcpy(appt_id, move, sizeof(appt_id));
        rc = move_followup(r, &rec, appt_id, slot_ms, window_end_ms);
    } else {
        rc = book_followup(r, &rec, slot_ms, window_end_ms, appt_id);
    }
    if (rc < 0) {
        tm__reply_err(r->s, r->id, rc,
                      rc == TM_EINVAL      ? "doctor must be self or any"
                      : rc == TM_ECONFLICT ? "unknown department, or the appointment is not booked"
                      : rc == TM_EPERM     ? "that appointment was not booked in this visit"
                                           : NULL);
        return;
    }
    json_t *a = tm_store_appt_json(r->sig->store, appt_id);
    if (!a) {
        tm__reply_err(r->s, r->id, TM_EIO, NULL);
        return;
    }
    tm_info(move ? "appointment.moved" : "appointment.booked", "visit=%s appointment=%s doctor=%s",
            rec.id, appt_id, r->u->sub);
    if (r->sig->feed)
        tm_feed_kick(r->sig->feed);
    tm__reply_ok(r->s, r->id, json_pack("{s:s, s:O}", "visit_id", rec.id, "appointment", a));
    tm__send_to_user(tm__find_user(r->sig, TM_ROLE_PATIENT, rec.patient_id),
                     json_pack("{s:s, s:s, s:o}", "type", "visit.followup", "visit_id", rec.id,
                               "appointment", a));
}

const tm__handler tm__followup_handlers[] = {
    {"visit.followup", handle_followup},
    {NULL, NULL},
};

/* ---- the sweep ------------------------------------------------------- */

static gboolean sweep(gpointer data)
{
    tm_signaling *sig = data;
    int64_t now = tm_now_ms();
    int due = 0, noshow = 0;
    int rc = tm_store_appt_sweep_due(
        sig->store, now, (int64_t)sig->cfg->appointment_due_before_s * 1000, SWEEP_MAX, &due);
    if (rc < 0)
        tm_error("appointment.sweep_failed", "kind=due rc=%d", rc);
    rc = tm_store_appt_sweep_noshow(sig->store, now, (int64_t)sig->cfg->noshow_after_s * 1000,
                                    SWEEP_MAX, &noshow);
    if (rc < 0)
        tm_error("appointment.sweep_failed", "kind=no_show rc=%d", rc);
    if (due + noshow > 0) {
        tm_info("appointment.swept", "due=%d no_show=%d", due, noshow);
        if (sig->feed)
            tm_feed_kick(sig->feed);
    }
    return G_SOURCE_CONTINUE;
}

void tm__followup_start(tm_signaling *sig)
{
    int every_s = sig->cfg->appointment_sweep_s > 0 ? sig->cfg->appointment_sweep_s : 60;
    sig->followup_sweep = g_timeout_add_seconds((guint)every_s, sweep, sig);
}

void tm__followup_stop(tm_signaling *sig)
{
    if (sig->followup_sweep)
        g_source_remove(sig->followup_sweep);
    sig->followup_sweep = 0;
}

/*
 * signaling.c - the telemed.v1 module's life: start (the waiting room and
 * live visits rebuilt from the store), the parts it is handed (media, feed,
 * visit record), stop, and its metrics. The rooms that do the work are
 * listed in signaling_internal.h.
 *
 * Control loop. The store is the record and memory is rebuilt from it at
 * start: waiting patients keep their places, offered visits go back to
 * waiting, and the participants of active visits get the grace period.
 */
#include "signaling_internal.h"
#include "telemed/log.h"

#include <stdlib.h>
#include <string.h>

const char *const tm__doctor_status_names[3] = {"off_duty", "available", "away"};
const double tm__resp_bounds_s[9] = {5, 10, 30, 60, 120, 300, 600, 1200, 1800};
const double tm__push_bounds_s[14] = {0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05,
                                      0.075, 0.1,    0.15,  0.2,  0.3,  0.5,  1};

/* buckets has n_bounds + 1 counts, the last for values above every bound. */
void tm__histogram_observe(const double *bounds, size_t n_bounds, uint64_t *buckets, double *sum,
                           uint64_t *count, double value)
{
    size_t b = 0;
    while (b < n_bounds && value > bounds[b])
        b++;
    buckets[b]++;
    (*count)++;
    *sum += value;
}

live_visit *tm__visit_restore(tm_signaling *sig, const tm_visit *rec)
{
    live_visit *v = tm__live_visit_add(sig, rec);
    if (v->state == TM_VS_OFFERED) {
        /* The server restarted mid-offer; nobody holds that offer now. */
        if (tm_store_visit_unoffer(sig->store, v->id, "withdrawn", tm_now_ms()) == 0)
            tm__advance(v, TM_VEV_DECLINE, true);
        v->doctor_id[0] = 0;
    }
    if (v->state == TM_VS_WAITING) {
        tm__queue_add(sig, v);
        if (v->state == TM_VS_WAITING && rec->offered_ms)
            tm_queue_return_to_head(sig->queue, v->id);
    }
    /* The participants have the grace period to come back, as after a drop. */
    if (!tm__find_user(sig, TM_ROLE_PATIENT, v->patient_sub)) {
        user *p = tm__user_new(sig, TM_ROLE_PATIENT, v->patient_sub);
        g_strlcpy(p->visit_id, v->id, sizeof(p->visit_id));
        p->grace_pending = true;
    }
    if (v->state == TM_VS_ACTIVE && v->doctor_id[0]) {
        user *d = tm__find_user(sig, TM_ROLE_DOCTOR, v->doctor_id);
        if (!d) {
            /* off_duty, as every doctor after a restart (docs/protocol.md): the
             * server does not know whether they were taking patients. */
            d = tm__user_new(sig, TM_ROLE_DOCTOR, v->doctor_id);
            d->grace_pending = true;
        }
        g_ptr_array_add(d->visits, g_strdup(v->id));
    }
    if (v->state == TM_VS_ACTIVE)
        tm__party_restore(sig, v);
    tm__transfer_restore(sig, v); /* issue 18 */
    return v;
}

/* Whether this node, starting on a shared store, may restore rec: it
 * claims the row by the conditional update that every node places a visit
 * with, from the holder it read (itself, or none after a takeover released
 * it) to itself. Another node that placed it first keeps it: without the
 * claim, a released visit would run on both. A store that cannot say
 * leaves the visit restored here, as it was held. */
static bool claim_visit(tm_signaling *sig, const tm_visit *rec)
{
    char holder[64] = "";
    if (tm_store_visit_media_node(sig->store, rec->id, holder) < 0)
        return true;
    int rc = holder[0] && strcmp(holder, sig->cfg->node_id) != 0
                 ? TM_ECONFLICT
                 : tm_store_visit_place_media(sig->store, rec->id, holder[0] ? holder : NULL,
                                              sig->cfg->node_id);
    if (rc == TM_ECONFLICT || rc == TM_ENOTFOUND) {
        tm_store_visit_media_node(sig->store, rec->id, holder);
        tm_info("signaling.visit_elsewhere", "visit=%s state=%s node=%s", rec->id, rec->state,
                holder[0] ? holder : "-");
        return false;
    }
    return true;
}

/* At start, every live visit in the store, but one another node holds on a
 * shared store (docs/cluster.md): waiting, offered or active, it goes on
 * there, or the takeover of a dead holder places it. Restored here, its
 * patient's grace would run out on this node and end a visit whose patient
 * is still connected to the holder. One node on SQLite holds everything,
 * also what it held under an earlier host name. */
static void restore_visit(const tm_visit *rec, void *data)
{
    tm_signaling *sig = data;
    if (tm_config_db_shared(sig->cfg) && sig->cfg->node_id && !claim_visit(sig, rec))
        return;
    tm__visit_restore(sig, rec);
}

tm_signaling *tm_signaling_new(const tm_config *cfg, tm_store *store, tm_jwt_verifier *jwt,
                               char **err)
{
    tm_signaling *sig = g_new0(tm_signaling, 1);
    sig->cfg = cfg;
    sig->store = store;
    sig->jwt = jwt;
    sig->queue = tm_queue_new();
    sig->users = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, tm__user_free);
    sig->staff = g_hash_table_new(g_str_hash, g_str_equal);
    sig->visits = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, tm__live_visit_free);
    sig->invites = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, tm__invite_free);
    sig->avg_ms = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    sig->duty_here = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    sig->duty_elsewhere = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    sig->live_elsewhere =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)json_decref);
    sig->dirty_depts = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    sig->fanout = tm_fanout_new(tm__fanout_threads(cfg));
    if (!sig->fanout) {
        *err = g_strdup("cannot start the fan-out threads");
        tm_signaling_free(sig);
        return NULL;
    }
    sig->consent = tm__consent_load(cfg, err);
    sig->doctor_check = sig->consent ? tm__doctor_checker_new(sig, err) : NULL;
    if (!sig->doctor_check) {
        tm_signaling_free(sig);
        return NULL;
    }
    sig->steps = tm_store_queue_new(store, NULL, err);
    if (!sig->steps) {
        tm_signaling_free(sig);
        return NULL;
    }
    sig->recent_alerts = json_array();
    sig->shifts = tm__shifts_new();
    if (tm__shifts_load(sig->shifts, store, tm_now_ms()) < 0) {
        *err = g_strdup_printf("cannot load shifts: %s", tm_store_errmsg(store));
        tm_signaling_free(sig);
        return NULL;
    }
    /* Nobody holds the push of an invite made before the restart. */
    int ended = 0;
    if (tm_store_invites_end_open(store, "cancelled", tm_now_ms(), &ended) < 0) {
        *err = g_strdup_printf("cannot end open invites: %s", tm_store_errmsg(store));
        tm_signaling_free(sig);
        return NULL;
    }
    static const char *const live_states[] = {"waiting", "offered", "active"};
    for (size_t i = 0; i < TM_ARRAY_LEN(live_states); i++) {
        if (tm_store_visit_foreach_state(store, live_states[i], restore_visit, sig) < 0) {
            *err = g_strdup_printf("cannot restore visits: %s", tm_store_errmsg(store));
            tm_signaling_free(sig);
            return NULL;
        }
    }
    sig->tick = g_timeout_add_seconds(1, tm__tick, sig);
    tm__followup_start(sig); /* followup18 */
    tm_info("signaling.restored", "live_visits=%u waiting=%zu invites_cancelled=%d",
            g_hash_table_size(sig->visits), tm_queue_length(sig->queue, NULL), ended);
    return sig;
}

void tm_signaling_free(tm_signaling *sig)
{
    if (!sig)
        return;
    if (sig->tick)
        g_source_remove(sig->tick);
    tm__followup_stop(sig); /* followup18 */
    if (sig->overview_timer)
        g_source_remove(sig->overview_timer);
    tm__cluster_sync_stop(sig);
    /* Steps with the store and checks still asking the hospital refer to
     * visits and users: first. */
    tm_store_queue_free(sig->steps);
    tm__doctor_checker_free(sig->doctor_check);
    tm__consent_free(sig->consent);
    g_hash_table_destroy(sig->invites);
    g_hash_table_destroy(sig->visits);
    g_hash_table_destroy(sig->staff);
    g_hash_table_destroy(sig->users);
    g_hash_table_destroy(sig->avg_ms);
    g_hash_table_destroy(sig->duty_here);
    g_hash_table_destroy(sig->duty_elsewhere);
    g_hash_table_destroy(sig->live_elsewhere);
    g_hash_table_destroy(sig->dirty_depts);
    tm_fanout_free(sig->fanout);
    free(sig->fan_items);
    json_decref(sig->recent_alerts);
    tm__shifts_free(sig->shifts);
    tm_queue_free(sig->queue);
    if (sig->record)
        tm_visit_record_on_failure(sig->record, NULL, NULL);
    g_free(sig);
}

void tm_signaling_set_media(tm_signaling *sig, struct tm_media *media)
{
    sig->media = media;
}

void tm_signaling_set_feed(tm_signaling *sig, struct tm_feed *feed)
{
    sig->feed = feed;
}

void tm_signaling_set_on_authenticated(tm_signaling *sig, tm_signaling_auth_cb cb, void *data)
{
    sig->on_authenticated = cb;
    sig->on_authenticated_user = data;
}

void tm_signaling_set_visit_record(tm_signaling *sig, tm_visit_record *record)
{
    sig->record = record;
    tm_visit_record_on_failure(record, tm__recording_failed_alert, sig);
}

void tm_signaling_ready(tm_signaling *sig)
{
    GHashTableIter it;
    gpointer key, val;
    g_hash_table_iter_init(&it, sig->users);
    while (g_hash_table_iter_next(&it, &key, &val)) {
        user *u = val;
        if (u->grace_pending && !u->sess && !u->grace_timer) {
            tm__user_start_grace(sig, u);
            /* As after a live drop: no node offers a patient who is not there. */
            if (u->role == TM_ROLE_PATIENT && u->visit_id[0])
                tm__cluster_patient_away(sig, u->visit_id, true);
        }
        u->grace_pending = false;
    }
}

void tm_signaling_shifts_changed(tm_signaling *sig)
{
    if (tm__shifts_load(sig->shifts, sig->store, tm_now_ms()) < 0)
        tm_error("signaling.shifts_load_failed", "err=%s", tm_store_errmsg(sig->store));
    tm__cluster_shifts_changed(sig);
    tm_signaling_kick(sig);
}

void tm_signaling_kick(tm_signaling *sig)
{
    tm__dispatch_all(sig);
    tm__flush_positions(sig);
    tm__mark_overview_dirty(sig);
}

/* buckets has n_bounds + 1 counts, the last for values above every bound. */
static void append_histogram(GString *out, const char *name, const char *help, const double *bounds,
                             size_t n_bounds, const uint64_t *buckets, double sum, uint64_t count)
{
    g_string_append_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (size_t b = 0; b < n_bounds; b++) {
        cum += buckets[b];
        g_string_append_printf(out, "%s_bucket{le=\"%g\"} %" G_GUINT64_FORMAT "\n", name, bounds[b],
                               cum);
    }
    cum += buckets[n_bounds];
    g_string_append_printf(out,
                           "%s_bucket{le=\"+Inf\"} %" G_GUINT64_FORMAT "\n%s_sum %.3f\n"
                           "%s_count %" G_GUINT64_FORMAT "\n",
                           name, cum, name, sum, name, count);
}

void tm_signaling_metrics(tm_signaling *sig, GString *out)
{
    g_string_append_printf(out,
                           "# HELP telemed_ws_connections Open signaling WebSocket connections.\n"
                           "# TYPE telemed_ws_connections gauge\n"
                           "telemed_ws_connections %" G_GUINT64_FORMAT "\n"
                           "# TYPE telemed_ws_connections_total counter\n"
                           "telemed_ws_connections_total %" G_GUINT64_FORMAT "\n"
                           "# TYPE telemed_ws_messages_in_total counter\n"
                           "telemed_ws_messages_in_total %" G_GUINT64_FORMAT "\n"
                           "# TYPE telemed_ws_messages_out_total counter\n"
                           "telemed_ws_messages_out_total %" G_GUINT64_FORMAT "\n"
                           "# TYPE telemed_ws_errors_total counter\n"
                           "telemed_ws_errors_total %" G_GUINT64_FORMAT "\n"
                           "# TYPE telemed_ws_rate_limited_total counter\n"
                           "telemed_ws_rate_limited_total %" G_GUINT64_FORMAT "\n",
                           sig->connections, sig->connections_total, sig->msgs_in, sig->msgs_out,
                           sig->errors_total, sig->rate_limited);
    g_string_append(out, "# HELP telemed_queue_length Patients waiting per department.\n"
                         "# TYPE telemed_queue_length gauge\n");
    json_t *depts = tm_store_dept_list(sig->store);
    size_t i;
    json_t *d;
    json_array_foreach(depts, i, d)
    {
        const char *id = json_string_value(json_object_get(d, "id"));
        g_string_append_printf(out, "telemed_queue_length{dept=\"%s\"} %zu\n", id,
                               tm_queue_length(sig->queue, id));
    }
    json_decref(depts);
    int counts[5] = {0};
    GHashTableIter it;
    gpointer k, val;
    g_hash_table_iter_init(&it, sig->visits);
    while (g_hash_table_iter_next(&it, &k, &val))
        counts[((live_visit *)val)->state]++;
    g_string_append(out,
                    "# HELP telemed_visits Live visits by state.\n# TYPE telemed_visits gauge\n");
    for (int s = TM_VS_WAITING; s <= TM_VS_ACTIVE; s++)
        g_string_append_printf(out, "telemed_visits{state=\"%s\"} %d\n",
                               tm_visit_state_name((tm_visit_state)s), counts[s]);
    append_histogram(out, "telemed_response_seconds", "Check-in to doctor accept.",
                     tm__resp_bounds_s, TM_ARRAY_LEN(tm__resp_bounds_s), sig->resp_buckets,
                     sig->resp_sum_s, sig->resp_count);
    append_histogram(
        out, "telemed_queue_push_seconds",
        "Queue change (frame arrival) to the queue.position push written to its socket.",
        tm__push_bounds_s, TM_ARRAY_LEN(tm__push_bounds_s), sig->push_buckets, sig->push_sum_s,
        sig->push_count);
}

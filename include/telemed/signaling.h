/*
 * signaling.h - the telemed.v1 WebSocket protocol: sessions, the waiting
 * room, pairing patients with doctors, and the visit state machine at run
 * time. docs/protocol.md describes the messages.
 *
 * Threading: everything here runs on the control loop (the GLib main loop
 * that libwebsockets runs on). Media events arrive on the same loop.
 */
#ifndef TELEMED_SIGNALING_H
#define TELEMED_SIGNALING_H

#include "telemed/config.h"
#include "telemed/jwt.h"
#include "telemed/store.h"
#include "telemed/visit_record.h"

#include <glib.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <stdint.h>

typedef struct tm_signaling tm_signaling;
struct tm_media;
struct tm_feed;
struct tm_media_event;

/* Borrows cfg, store and jwt for its lifetime. Rebuilds the waiting room
 * from the store: waiting patients keep their places, offered visits go back
 * to waiting, active visits wait for their participants for the grace period.
 * Returns NULL with *err (new string, g_free) on failure. */
tm_signaling *tm_signaling_new(const tm_config *cfg, tm_store *store, tm_jwt_verifier *jwt,
                               char **err);
void tm_signaling_free(tm_signaling *sig);

/* Optional parts, borrowed; set before the server accepts connections. */
void tm_signaling_set_media(tm_signaling *sig, struct tm_media *media);
void tm_signaling_set_feed(tm_signaling *sig, struct tm_feed *feed);
/* Called on the control loop when a session's hello succeeds (the
 * per-address limit on unauthenticated connections stops counting it). */
typedef void (*tm_signaling_auth_cb)(struct lws *wsi, void *user);
void tm_signaling_set_on_authenticated(tm_signaling *sig, tm_signaling_auth_cb cb, void *user);
/* The visit record's recording part: started when a visit becomes active;
 * its failures are shown to the supervisors. Borrowed; free it after sig. */
void tm_signaling_set_visit_record(tm_signaling *sig, tm_visit_record *record);

/* The libwebsockets callback of protocol "telemed.v1". The vhost user
 * pointer (lws_vhost_user / protocol user) must be the tm_signaling. */
int tm_signaling_lws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                              void *in, size_t len);
/* Per-session size for the lws protocol table. */
size_t tm_signaling_pss_size(void);

/* The live overview supervisors see (new reference). */
json_t *tm_signaling_overview(tm_signaling *sig);
/* The overview of one institution's departments, visits, doctors and alerts
 * (issue 18), for a supervisor scoped to it; NULL or "" is the whole
 * alliance, as tm_signaling_overview. New reference. */
json_t *tm_signaling_overview_in(tm_signaling *sig, const char *institution);
/* Appends Prometheus text for connections, queues, visits, response times. */
void tm_signaling_metrics(tm_signaling *sig, GString *out);
/* The server accepts connections now: the grace period of participants
 * restored from the store starts here, not while the server was starting. */
void tm_signaling_ready(tm_signaling *sig);
/* This node drains (node.h, docs/cluster.md): from now on check-ins are
 * refused with node_draining and nobody is offered; everyone connected who
 * is in no live visit is sent server.draining and closed (4503), and so is
 * such a user right after a later hello. Visits offered or active go on. */
void tm_signaling_drain(tm_signaling *sig);
/* Visits offered or active on this node now: what a drain waits for. */
int tm_signaling_live_visits(tm_signaling *sig);
/* A visit changed outside signaling (REST): re-evaluate it. */
void tm_signaling_kick(tm_signaling *sig);
/* A shift was written (REST): reload the shifts and re-evaluate who is on duty. */
void tm_signaling_shifts_changed(tm_signaling *sig);
/* The estimate of a visit's length per department, for the wait estimate. */
int64_t tm_signaling_avg_visit_ms(tm_signaling *sig, const char *dept_id);

/* Whether someone who held visit_role ("attending", "consulting", "nurse",
 * ...) in a visit may read its record and notes: the permission table of
 * docs/protocol.md, kept in signaling/party.c. Pure; any thread. */
bool tm_signaling_role_reads_notes(const char *visit_role);

/* A consultation request changed (REST, issue 18): pushes
 * consultation.updated with event ("requested", "scheduled", ...) and the
 * row (borrowed) to its requester, its specialist and the receiving
 * department's doctors on duty. */
void tm_signaling_consult_push(tm_signaling *sig, const char *event, json_t *row);
/* Issue 18 (transfer18): doctors hear of referrals made over REST.
 * referral is one as tm_store_referral_get returns it (borrowed).
 * referral.received goes to every doctor on duty for its receiving
 * department now, referral.answered to its referring doctor if connected;
 * each returns how many received it. */
int tm_signaling_referral_received(tm_signaling *sig, json_t *referral);
int tm_signaling_referral_answered(tm_signaling *sig, json_t *referral);

/* Issue 19: this node among several. Signaling publishes its queue changes
 * on cluster's bus, keeps its waiting room in step with the store on every
 * queue event (signaling/cluster_sync.c) and gives the heartbeat its load.
 * cluster is borrowed and must outlive sig, or be unset with NULL first. */
struct tm_cluster;
void tm_signaling_set_cluster(tm_signaling *sig, struct tm_cluster *cluster);

/* Media events from tm_media: a tm_media_event_cb whose user is the tm_signaling. */
void tm_signaling_on_media_event(const struct tm_media_event *ev, void *user);

#endif

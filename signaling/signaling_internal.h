/*
 * signaling_internal.h - what the rooms of the signaling module share: the
 * session, the user, the live visit and the module's state, and the few
 * functions one room calls in another. Private to signaling/; the contract
 * with the rest of the server is include/telemed/signaling.h.
 *
 * Everything here lives on the control loop. The rooms:
 *   session.c      one WebSocket: frames in, rate limit, dispatch, send queue
 *   auth.c         hello, token expiry and renewal, ICE servers
 *   lobby.c        the waiting room: positions, estimates, offers, pairing
 *   consent.c      informed consent: its texts, consent.get, checkin's check
 *   doctor_check.c a doctor's proof of identity before accepting a visit
 *   visit.c        users and grace, visit transitions, chat, notes, ratings
 *   supervision.c  the overview, alerts, supervisors watching a visit
 *   party.c        visits of more than two: who may do what, invites, guest
 *                  links and guests, joining, leaving, removal
 *   transfer.c     the attending doctor hands a live visit to another
 *                  department or doctor (issue 18)
 *   media_glue.c   media offers and candidates, media events, stream figures
 *   media_quality.c  frozen / audio-only told to people and supervisors, gaps
 *   signaling.c    start (restore from the store), stop, metrics
 *   followup.c     follow-ups booked in a visit, the appointment sweep
 *   drain.c        this node draining: who is turned away, the other nodes
 *   cluster_sync.c the waiting room kept in step with other nodes (issue 19)
 *   cluster_failover.c  a live visit whose node died, resumed here (issue 19)
 * and their helpers: shifts.c (shifts in memory), position_text.c (the
 * queue.position text), fanout.c (parallel writes). A visit's recording is
 * server/visit_record.c's (include/telemed/visit_record.h).
 */
#ifndef TELEMED_SIGNALING_INTERNAL_H
#define TELEMED_SIGNALING_INTERNAL_H

#include "telemed/signaling.h"
#include "telemed/common.h"
#include "telemed/feed.h"
#include "telemed/media.h"
#include "telemed/visit_record.h"
#include "telemed/queue.h"
#include "telemed/store_queue.h"
#include "telemed/visit_fsm.h"
#include "fanout.h"
#include "shifts.h"

#include <stdbool.h>
#include <stdint.h>

enum doctor_status { DOC_OFF_DUTY, DOC_AVAILABLE, DOC_AWAY };
extern const char *const tm__doctor_status_names[3];

/* WebSocket close codes beside lws' own (docs/protocol.md lists them all). */
#define TM_WS_CLOSE_TOKEN_EXPIRED 4401 /* the session's token expired: renew in time */
#define TM_WS_CLOSE_DRAINING 4503      /* this node drains: reconnect to another (drain.c) */

/* A session whose unsent pushes exceed this is too slow to keep. */
#define MAX_OUTQ_BYTES (1 << 20)

typedef struct user user;
typedef struct session session;
typedef struct tm__consent_texts tm__consent_texts;
typedef struct tm__doctor_checker tm__doctor_checker;

struct session {
    tm_signaling *sig;
    struct lws *wsi;
    user *u; /* NULL until hello succeeds */
    char ua[160];
    char peer_ip[64];
    GQueue outq; /* of unsigned char * (LWS_PRE + len + NUL), length in outlen */
    GQueue outlen;
    size_t outq_bytes;
    GByteArray *rx; /* fragments of the frame being received */
    bool rx_too_big;
    double tokens; /* rate limit bucket */
    int64_t tokens_ms;
    int strikes; /* rate-limited messages in a row */
    bool closing;
    guint hello_timer;   /* until hello succeeds */
    int64_t exp_s;       /* when the token the session runs on expires (epoch s) */
    char id[48];         /* "ws-<uuid>" from hello on: names the connection in consent records */
    int64_t auth_time_s; /* the token's auth_time (epoch s), 0 if absent */
    char amr[64];        /* the token's amr, joined by ',' */
    int close_code;      /* sent in the close frame once the queue is written */
    char close_reason[64];
    bool close_sent;
};

struct user {
    tm_signaling *sig;
    char key[200]; /* "role:sub" */
    tm_role role;
    char sub[128];
    char name[128]; /* shown to the doctor; never logged */
    char dept[64];
    char kind[16]; /* staff kind of a doctor: doctor, nurse, interpreter ("" = doctor) */
    /* the alliance member (issue 18): a doctor's is their department's; a
     * supervisor's the one they are scoped to, "" = the whole alliance */
    char institution[64];
    session *sess;
    guint grace_timer;
    bool grace_pending; /* restored at start: grace begins when the server listens */
    bool moved_away;    /* cluster_sync.c: sent to another node; offered nothing here */
    int64_t disconnected_ms;
    /* patient, guest */
    char visit_id[64];      /* live visit, "" if none */
    char last_visit_id[64]; /* the visit to rate */
    bool checkin_pending;   /* store_steps.c: its check-in is with the store */
    unsigned steps_pending; /* steps of theirs with the store: the user stays */
    /* doctor */
    enum doctor_status status;
    GPtrArray *visits;    /* active visit ids (char *): attending or invited */
    char offer_visit[64]; /* the one outstanding offer, "" if none */
    int64_t idle_since_ms;
    /* supervisor */
    bool admin; /* an admin's live view is the supervisor's; audited as admin */
    bool overview;
    uint64_t overview_pushes; /* of the current subscription, for its audit row */
    GPtrArray *watching;      /* visit ids (char *) watched now, at most TM_WATCH_MAX */
};

/* The role someone holds in a visit (docs/protocol.md, the permission table). */
typedef enum {
    TM_VR_NONE = -1,
    TM_VR_PATIENT,
    TM_VR_ATTENDING,
    TM_VR_CONSULTING,
    TM_VR_INTERPRETER,
    TM_VR_NURSE,
    TM_VR_GUEST,
    TM_VR_COUNT
} tm__visit_role;

/* What a participant may do, by visit role (party.c's table). */
typedef enum {
    TM_ACT_INVITE,
    TM_ACT_INVITE_CANCEL,
    TM_ACT_GUEST_LINK,
    TM_ACT_REMOVE,
    TM_ACT_LEAVE,
    TM_ACT_END,
    TM_ACT_CHAT,
    TM_ACT_NOTE_READ,
    TM_ACT_NOTE_WRITE,
    TM_ACT_PATIENT_CARD, /* name, age, complaint; everyone sees the patient's name */
    TM_ACT_MEDIA,
    TM_ACT_COUNT
} tm__party_action;

/* A participant beyond the patient and the attending doctor. */
typedef struct party_member {
    char key[200]; /* the user key "role:sub", the media core's peer id */
    char sub[128];
    tm__visit_role role;
    char name[128]; /* display name: registry name or the guest's link name; never logged */
    int64_t joined_ms;
    bool notice_accepted; /* guest or interpreter: their notice is on the record */
} party_member;

typedef struct live_visit {
    tm_signaling *sig;
    char id[64];
    char dept[64];
    char patient_sub[128];
    char doctor_id[64];
    char kind[16];
    tm_visit_state state;
    bool urgent;
    bool has_appt;
    int64_t checkin_ms, slot_ms, offered_ms, accepted_ms;
    guint offer_timer;
    GHashTable *declined; /* doctor id -> (gint64 *) when */
    GPtrArray *watchers;  /* supervisor user keys (char *) */
    int last_position;    /* last pushed, to push only changes */
    int64_t last_estimate_s;
    json_t *quality; /* latest per-peer stats from media, for the overview */
    json_t *summary; /* per stream: running figures for the visit record */
    /* user key -> what their media looks like (media_quality.c) */
    GHashTable *health;
    GPtrArray *party;  /* party_member *: consulting, interpreters, nurses, guests */
    char speaker[200]; /* user key of the active speaker last told, "" none yet */
    /* transfer.c: the doctor who last handed the visit on (not offered it
     * back), why, and how many times it was handed on since start */
    char transferred_from[64];
    char transfer_reason[TM_TRANSFER_REASON_MAX + 1];
    int transfers;
    /* cluster_sync.c: a waiting visit of another node's patient, mirrored
     * here for positions and the overview, and offered through the store */
    bool remote;
    /* cluster_sync.c: its patient is in their grace period on the node
     * holding it (this one, or a mirror's): no node offers it meanwhile */
    bool patient_away;
    guint away_retry; /* cluster_sync.c: writes patient_away again, the last write failed */
    /* cluster_sync.c: this node's visit offered by another node, withdrawn
     * here if that node does not end the offer (it died) */
    guint offer_backstop;
    /* store_steps.c: a doctor's accept is with the store; until it answers
     * the offer is neither withdrawn nor timed out (the accept decides) */
    bool accepting;
} live_visit;

struct tm_signaling {
    const tm_config *cfg;
    tm_store *store;
    tm_store_queue *steps; /* store_steps.c: visit steps off the loop, in order */
    tm_jwt_verifier *jwt;
    tm_media *media;
    tm_feed *feed;
    tm_visit_record *record;
    tm__consent_texts *consent;            /* the consent texts of consent_version */
    tm__doctor_checker *doctor_check;      /* asks the hospital's endpoint, when configured */
    tm_signaling_auth_cb on_authenticated; /* optional: a session said who it is */
    void *on_authenticated_user;
    tm_queue *queue;
    tm__shifts *shifts;      /* every shift not yet over, refreshed when REST changes one */
    GHashTable *users;       /* key -> user * */
    GHashTable *staff;       /* key -> user *, doctors and supervisors (borrowed from users) */
    GHashTable *visits;      /* id -> live_visit * */
    GHashTable *invites;     /* invite id -> open invite (party.c) */
    GHashTable *avg_ms;      /* dept -> (double *) moving average of visit length */
    GHashTable *dirty_depts; /* dept -> 1: positions to push */
    tm_fanout *fanout;
    tm_fanout_item *fan_items; /* the batch being built by flush_positions */
    size_t fan_n, fan_cap;
    int64_t frame_us;      /* monotonic: when the frame being handled arrived, or 0 */
    int64_t change_us;     /* monotonic: when the queue change being pushed began, or 0 */
    json_t *recent_alerts; /* alerts about past events (offer timeouts), newest last */
    guint tick;
    guint overview_timer;
    bool overview_dirty;
    bool draining;              /* drain.c: no check-ins, no offers; new sessions turned away */
    guint followup_sweep;       /* followup18: the appointment sweep's timer */
    struct tm_cluster *cluster; /* issue 19: the bus to other nodes, or NULL */
    GHashTable *duty_here;      /* dept -> doctors on duty here, as the registry has them */
    GHashTable *duty_elsewhere; /* dept -> doctors on duty on the other live nodes */
    GHashTable *live_elsewhere; /* dept -> json array: its live visits other nodes hold */
    bool syncing;               /* cluster_sync.c is applying the store's queue */
    GHashTable *sync_due;       /* cluster_sync.c: depts whose bus events await one reload */
    guint sync_idle;            /* cluster_sync.c: that reload, or 0 */
    /* metrics */
    uint64_t connections, connections_total, msgs_in, msgs_out, errors_total, rate_limited;
    uint64_t resp_buckets[10], resp_count;
    double resp_sum_s;
    uint64_t push_buckets[15], push_count;
    double push_sum_s;
};

/* drain.c (issue 19): the other nodes' WebSocket URLs from cluster_urls
 * (new reference), and, on a draining node, a session whose user is in no
 * live visit told server.draining and closed (returns true if so). */
json_t *tm__drain_nodes(tm_signaling *sig);
bool tm__drain_turn_away(tm_signaling *sig, session *s);

extern const double tm__resp_bounds_s[9];
extern const double tm__push_bounds_s[14];

/* One request being handled: the sender, its message and its id. */
typedef struct request {
    tm_signaling *sig;
    session *s;
    user *u;
    json_t *msg;
    const char *id;
} request;

/* store_steps.c: who waits for a step the store thread runs (store_queue.h).
 * A waiter names its user, session and request by id and keeps the user
 * (steps_pending) until tm__waiter_done; the session may be gone by then. */
typedef struct tm__waiter {
    char user_key[200];
    char session_id[48];
    char *request_id;
    json_t *msg;
} tm__waiter;
void tm__waiter_init(tm__waiter *w, request *r);
/* The request again, its user kept since init: r->s is NULL when the session
 * that asked is gone (nobody to answer). Releases the user's hold. */
user *tm__waiter_done(tm_signaling *sig, tm__waiter *w, request *r);
void tm__waiter_clear(tm__waiter *w);
/* Answers on r->s when the session is still there. */
void tm__step_reply_ok(request *r, json_t *data);
void tm__step_reply_err(request *r, int err, const char *message);

/* A room's message handlers, ended by {NULL, NULL}. */
typedef struct tm__handler {
    const char *type;
    void (*fn)(request *r);
} tm__handler;

extern const tm__handler tm__auth_handlers[];
extern const tm__handler tm__lobby_handlers[];
extern const tm__handler tm__visit_handlers[];
extern const tm__handler tm__supervision_handlers[];
extern const tm__handler tm__media_handlers[];
extern const tm__handler tm__consent_handlers[];
extern const tm__handler tm__party_handlers[];
extern const tm__handler tm__guest_link_handlers[];
extern const tm__handler tm__consult_handlers[]; /* issue 18, consult.c */
extern const tm__handler tm__transfer_handlers[];
/* followup18: followup.c (visit.followup; the appointment sweep's timer) */
extern const tm__handler tm__followup_handlers[];
void tm__followup_start(tm_signaling *sig);
void tm__followup_stop(tm_signaling *sig);

/* session.c: sending, answering, small JSON helpers */
const char *tm__jstr(json_t *msg, const char *key);
json_t *tm__time_json(int64_t ms);
void tm__send_text(session *s, const char *text, size_t len);
void tm__send_msg(session *s, json_t *msg);  /* steals msg */
void tm__send_to_user(user *u, json_t *msg); /* steals msg */
void tm__reply_ok(session *s, const char *re, json_t *data);
void tm__reply_err(session *s, const char *re, int err, const char *message);
/* The same with a stable reason beside the code, for a page to explain. */
void tm__reply_err_reason(session *s, const char *re, int err, const char *message,
                          const char *reason);
bool tm__need_role(request *r, tm_role a, tm_role b);
/* The role the audit log names: "admin" for an admin watching as a supervisor. */
const char *tm__audit_role(const user *u);
/* Closes the session once its queue is written, with a WebSocket close code and reason. */
void tm__session_close(session *s, int code, const char *reason);
/* Hello succeeded: the hello deadline no longer applies. */
void tm__session_authenticated(session *s);

/* auth.c */
void tm__handle_hello(tm_signaling *sig, session *s, json_t *msg, const char *id);
/* Closes (4401) every session whose token has expired by now_ms. */
void tm__auth_expire_sessions(tm_signaling *sig, int64_t now_ms);

/* cluster_sync.c: the patient of this node's visit visit_id dropped
 * (away) or is back, written to the store (and announced), so that no
 * other node offers a patient who is not there; a failed write is tried
 * again until it holds or the visit is no longer waiting. */
void tm__cluster_patient_away(tm_signaling *sig, const char *visit_id, bool away);
/* cluster_sync.c: a queue change of dept, told to every node. */
void tm__cluster_queue_changed(tm_signaling *sig, const char *dept);
/* This node's REST API changed shifts: the other nodes read them again. */
void tm__cluster_shifts_changed(tm_signaling *sig);
/* The local visit v was checked in here: this node holds its patient. */
void tm__cluster_hosts(tm_signaling *sig, live_visit *v);
/* A patient saying hello whose waiting visit another node holds (or held,
 * and died): the visit moves here, keeping its place, and the hello
 * resumes it. */
void tm__cluster_adopt_patient(tm_signaling *sig, const char *patient);
/* This node's doctors on duty per department into the registry where they
 * changed (each tick), for the other nodes' estimates. */
void tm__cluster_publish_duty(tm_signaling *sig);
/* The doctors on duty in dept on the other live nodes, as last read. */
int tm__cluster_doctors_elsewhere(tm_signaling *sig, const char *dept);
/* dept's live visits held by other nodes, as the overview lists them
 * (borrowed; NULL when none). */
json_t *tm__cluster_live_elsewhere(tm_signaling *sig, const char *dept);
/* Where v, about to be accepted here, will run, into node for the
 * accept's transaction ("": where it is held). A visit of this node's
 * patient stays here. A mirror (its patient connected to another node) is
 * placed by load: on this node, or left on the patient's node. */
void tm__cluster_accept_node(tm_signaling *sig, live_visit *v, char node[64]);
/* v was just accepted here, placed on node (tm__cluster_accept_node): true
 * when it runs here, which holds it from now on (a mirror's patient is sent
 * here by their node); false when it runs on its patient's node: the
 * caller hands it over. */
bool tm__cluster_visit_started(tm_signaling *sig, live_visit *v, const char *node);
/* v, accepted here by d, runs on its patient's node: d is sent there and
 * this node keeps nothing of v. */
void tm__cluster_hand_over(tm_signaling *sig, live_visit *v, user *d);
/* At hello: u has nothing live here, but an offered or active visit of
 * theirs is held by another live node: u is sent there (true). */
bool tm__cluster_send_to_holder(tm_signaling *sig, user *u);
/* Tells u (connected here) to go on with visit_id on node holder
 * (session.move, docs/protocol.md); false when holder is not live. */
bool tm__cluster_move_user(tm_signaling *sig, user *u, const char *visit_id, const char *holder,
                           const char *reason);
/* The WebSocket URL of the live node node_id (ws_url gets "" when it is
 * not live or has no public URL): where a participant of a visit it holds
 * is sent. */
void tm__cluster_node_ws_url(tm_signaling *sig, const char *node_id, char *ws_url, size_t len);

/* v's row changed without this node hearing of it (a missed bus event,
 * found by a conditional step that lost): v follows the store's waiting or
 * offered row. v stays. */
void tm__cluster_follow_store(tm_signaling *sig, live_visit *v);

/* The store's word on this node's waiting visit id, as its bus event
 * (visit:<id>) brings it: accepted on another node, it starts here or its
 * patient is sent there. A hello can overtake that event. */
void tm__cluster_sync_visit(tm_signaling *sig, const char *id);
/* cluster_sync.c: drops the reloads the bus asked for and not yet run
 * (the signaling layer or its cluster goes). */
void tm__cluster_sync_stop(tm_signaling *sig);

/* The mirror v, of a visit another node started, leaves this node's queue
 * before the bus says so (a takeover found it active): v is freed. */
void tm__cluster_drop_mirror(tm_signaling *sig, live_visit *v);

/* cluster_failover.c (issue 19, fail19): a user saying hello whose active
 * visit (as patient, attending or invited doctor) a dead node held (or
 * none holds): this node takes it over and the hello resumes it; the other
 * participants have the grace period to come back. False when a visit of
 * theirs is held by another live node: the session is sent there
 * (session.move) when its URL is known, and the hello refused, the
 * connection closed when the URL is not known (reply sent). */
bool tm__cluster_resume_active(tm_signaling *sig, session *s, const char *re, tm_role role,
                               const char *sub);
/* The same rule for a guest's hello (by link or resume secret) into
 * visit_id; guest_id "" before the link's first use. */
bool tm__cluster_resume_guest(tm_signaling *sig, session *s, const char *re, const char *visit_id,
                              const char *guest_id);
/* Whether visit_id is active and held by another live node whose
 * WebSocket URL is known: its id into holder, the URL into url. */
bool tm__cluster_held_elsewhere(tm_signaling *sig, const char *visit_id, char holder[64], char *url,
                                size_t url_len);

/* visit:<id> on the bus: an active visit that a dead node's takeover
 * released is placed here when this node wins it, and its participants
 * have the grace period to come back. */
void tm__cluster_visit_released(tm_signaling *sig, const char *id);

/* signaling.c: a live visit of the store in memory, as at start: its
 * participants get grace_pending (the grace period once the node serves). */
live_visit *tm__visit_restore(tm_signaling *sig, const tm_visit *rec);

/* lobby.c */
int tm__queue_add(tm_signaling *sig, live_visit *v);
void tm__mark_dept_dirty(tm_signaling *sig, const char *dept);
int tm__doctors_on_duty(tm_signaling *sig, const char *dept);
/* The doctors a waiting patient's estimate counts: those on duty in dept
 * here and on every other live node. */
int tm__doctors_for_estimate(tm_signaling *sig, const char *dept);
/* counts (dept string -> GINT_TO_POINTER) += this node's doctors on duty. */
void tm__count_doctors_on_duty(tm_signaling *sig, GHashTable *counts);
void tm__learn_visit_length(tm_signaling *sig, const char *dept, int64_t duration_ms);
void tm__flush_positions(tm_signaling *sig);
void tm__dispatch_dept(tm_signaling *sig, const char *dept);
void tm__dispatch_all(tm_signaling *sig);
void tm__unoffer(tm_signaling *sig, live_visit *v, const char *outcome);
/* Offers the waiting visit v to doctor d now (transfer.c: a named doctor):
 * 0, or a negative code when d was offered nothing (TM_ECONFLICT: the store
 * refused, another node offered v or its patient is away). */
int tm__offer_visit(tm_signaling *sig, live_visit *v, user *d);
/* Whether d is on duty for dept's waiting room (connected, in a shift, at work). */
bool tm__doctor_on_duty(tm_signaling *sig, const user *d, const char *dept);
gboolean tm__tick(gpointer data);
json_t *tm__doctor_state_json(tm_signaling *sig, user *d);
unsigned tm__fanout_threads(const tm_config *cfg);

/* consent.c */
/* The texts of cfg's consent_version; NULL with *err (a file unusable). */
tm__consent_texts *tm__consent_load(const tm_config *cfg, char **err);
void tm__consent_free(tm__consent_texts *c);
/* Checks the consent a checkin carries and copies it into v; otherwise
 * answers the request and returns false. */
bool tm__consent_checkin(request *r, tm_visit *v);
/* Whether u may send media in v as far as notices go: a guest or an
 * interpreter once they accepted theirs (consent.accept), anyone else. */
bool tm__consent_notice_accepted(live_visit *v, const user *u);

/* doctor_check.c */
/* NULL with *err when the endpoint's client cannot start. */
tm__doctor_checker *tm__doctor_checker_new(tm_signaling *sig, char **err);
void tm__doctor_checker_free(tm__doctor_checker *c);
/* Decides whether the doctor who sent r (a visit.accept of v) proved who
 * they are recently enough, from the token or by asking the hospital's
 * endpoint without blocking, then calls done with a request like r (at
 * once, or when the endpoint answers and the doctor's session is still
 * there) and the check (NULL when checks are off); or answers the refusal,
 * with its reason, itself. */
void tm__doctor_check(request *r, live_visit *v,
                      void (*done)(request *r, const tm_doctor_check *check));

/* consult.c (issue 18): a started visit that is a scheduled consultation
 * takes it in_progress and tells its specialist and requester to join. */
void tm__consult_visit_started(tm_signaling *sig, live_visit *v);

/* visit.c */
user *tm__find_user(tm_signaling *sig, tm_role role, const char *sub);
user *tm__user_new(tm_signaling *sig, tm_role role, const char *sub);
void tm__user_free(gpointer p);
/* Drops a user who has nothing left to come back to. */
void tm__maybe_forget_user(tm_signaling *sig, user *u);
void tm__user_start_grace(tm_signaling *sig, user *u);
void tm__user_detach(tm_signaling *sig, user *u);
void tm__notify_peer_presence(tm_signaling *sig, live_visit *v, user *who, bool connected);
live_visit *tm__live_visit_add(tm_signaling *sig, const tm_visit *rec);
void tm__live_visit_free(gpointer p);
bool tm__advance(live_visit *v, tm_visit_event ev, bool apply);
user *tm__visit_patient(tm_signaling *sig, live_visit *v);
user *tm__visit_doctor(tm_signaling *sig, live_visit *v);
json_t *tm__visit_state_msg(tm_signaling *sig, const char *visit_id);
void tm__push_visit_state(tm_signaling *sig, live_visit *v, const char *visit_id, user *patient,
                          user *doctor);
int tm__finish_visit(tm_signaling *sig, live_visit *v, const char *reason, const char *by);
/* v (active now, its attending doctor d, connected or on their way) starts
 * on this node: out of the queue, recording, media labels; then, once the
 * accept is answered, everyone is told. */
void tm__visit_begin(tm_signaling *sig, live_visit *v, user *d);
void tm__visit_announce(tm_signaling *sig, live_visit *v, user *d);
/* The same with the advice of a terminate_and_refer (NULL for other reasons). */
int tm__finish_visit_with(tm_signaling *sig, live_visit *v, const char *reason, const char *by,
                          const char *advice);
live_visit *tm__member_visit(request *r, const char *visit_id, int *err);
/* The live visit the request names, if the sender is one of its participants;
 * otherwise the error is answered and NULL returned. */
live_visit *tm__requested_visit(request *r);

/* party.c */
const char *tm__visit_role_name(tm__visit_role r);
/* The role u holds in v now (TM_VR_NONE: not a participant). */
tm__visit_role tm__party_role(tm_signaling *sig, live_visit *v, const user *u);
bool tm__party_may(tm__visit_role r, tm__party_action a);
/* The party member u is in v, or NULL. */
party_member *tm__party_member(live_visit *v, const user *u);
/* Sends m (stolen) to every participant of v. */
void tm__party_send_members(tm_signaling *sig, live_visit *v, json_t *m);
/* Sends m (stolen) to every participant of v and every watcher. */
void tm__party_send_all(tm_signaling *sig, live_visit *v, json_t *m);
/* visit.participants to everyone in v and its watchers. */
void tm__party_push(tm_signaling *sig, live_visit *v);
/* [{id, role, name, connected, joined_at}] of v now. New reference. */
json_t *tm__party_json(tm_signaling *sig, live_visit *v);
/* Names peer key's tracks in v's recording by visit role and id. */
void tm__party_label(tm_signaling *sig, live_visit *v, const char *key, tm__visit_role role);
/* u (a party member of v) went or came back: the store's row, and
 * visit.participant / visit.participants to the others. */
void tm__party_presence(tm_signaling *sig, live_visit *v, user *u, bool connected);
/* u leaves v for good (reason left, removed, grace_expired). */
int tm__party_leave(tm_signaling *sig, live_visit *v, user *u, const char *reason);
/* v is ending: its invites end (visit_ended) and its party members are let
 * go; the store already closed their rows. */
void tm__party_visit_ended(tm_signaling *sig, live_visit *v);
/* At start: v's party members from the store, with the grace period. */
void tm__party_restore(tm_signaling *sig, live_visit *v);
/* r's sender, whose participant row the store has written, is in v now
 * with role (via names how: an invite id, a consultation id): the member,
 * its media label, audit, the answer with the visit and its participants,
 * and the visit.participants push. */
void tm__party_joined(request *r, live_visit *v, tm__visit_role role, int64_t now_ms,
                      const char *via);
/* The visit and guest id (guest_id "" before first use) of the guest link
 * a guest's code or resume secret names; false when there is none. */
bool tm__guest_link_visit(tm_signaling *sig, const char *code, const char *resume,
                          char visit_id[64], char guest_id[64]);
/* A guest link's code (first use) or a guest's resume secret: the guest
 * user, made a party member on first use (resume_out, resume_len bytes,
 * gets the new resume secret). NULL when refused, with *why (static text)
 * and *err. */
user *tm__guest_redeem(tm_signaling *sig, const char *code, const char *resume, char *resume_out,
                       size_t resume_len, const char **why, int *err);
void tm__invite_free(gpointer p);
/* Invitations of visit_id still open. */
int tm__party_open_invites(tm_signaling *sig, const char *visit_id);
/* Everyone in v now plus open invites: what max_participants caps. */
int tm__party_size(tm_signaling *sig, live_visit *v);
/* u is in visit_id now (a doctor may be in several). */
void tm__party_add_visit_to(user *u, const char *visit_id);
/* A new party member of v for u, in role, named name, joined at joined_ms. */
party_member *tm__party_member_add(live_visit *v, const user *u, tm__visit_role role,
                                   const char *name, int64_t joined_ms);
/* The live, active visit r names, if r's sender may do a in it; otherwise
 * the error is answered and NULL returned. */
live_visit *tm__party_visit_for(request *r, tm__party_action a);

/* transfer.c: at start, what v's transfers left in the store: who handed it
 * on last and why, and its place at the head of the queue while it waits
 * for the next doctor. */
void tm__transfer_restore(tm_signaling *sig, live_visit *v);

/* supervision.c */
void tm__remember_alert(tm_signaling *sig, json_t *alert); /* steals alert */
void tm__watchers_notify_end(tm_signaling *sig, live_visit *v);
void tm__mark_overview_dirty(tm_signaling *sig);
/* Pushes the overview now if it changed (the pending coalesced push with it). */
void tm__overview_push_now(tm_signaling *sig);
/* A supervisor's video wall shows a few visits at once, each watched (and
 * audited, and its participants told) on its own. Each watched visit costs
 * a forwarded copy of every stream: nine fills a 3x3 wall. */
#define TM_WATCH_MAX 9
bool tm__user_watches(const user *u, const char *visit_id);
/* Ends u's watch of visit_id, or every watch of u when visit_id is NULL. */
void tm__stop_watching(tm_signaling *sig, user *u, const char *visit_id, const char *why);
/* Ends the user's overview subscription, if any, on the audit log. */
void tm__overview_end(tm_signaling *sig, user *u, const char *why);
/* The recording of visit_id failed: in front of the supervisors now. */
void tm__recording_failed_alert(const char *visit_id, const char *reason, void *sig);

/* media_glue.c */
void tm__store_stats_summary(tm_signaling *sig, live_visit *v, int64_t now);

/* media_quality.c: the participants' media as the server sees it, told to the
 * others (media.quality), as overview alerts, and its gaps in the record. */
void tm__media_health_on_stats(tm_signaling *sig, live_visit *v, const tm_media_event *ev);
void tm__media_health_tick(tm_signaling *sig, int64_t now);
void tm__media_health_alerts(live_visit *v, json_t *alerts, int64_t now);
/* A sender whose video (its simulcast layers together) lost more than
 * alert_loss_pct in the latest second or froze in the last ten seconds: true
 * with the figures of the first such; false when every sender's video is fine. */
bool tm__media_health_poor_video(const tm_signaling *sig, live_visit *v, int64_t now,
                                 double *loss_pct, bool *froze);
/* Sends `to` what is not right with the others' media now (a page that just
 * (re)started its media has missed the pushes). */
void tm__media_health_replay(live_visit *v, user *to);
void tm__media_health_finish(tm_signaling *sig, live_visit *v, int64_t now);

/* signaling.c: buckets has n_bounds + 1 counts, the last for values above every bound. */
void tm__histogram_observe(const double *bounds, size_t n_bounds, uint64_t *buckets, double *sum,
                           uint64_t *count, double value);

#endif

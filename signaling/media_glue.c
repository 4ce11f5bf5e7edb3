/*
 * media_glue.c - signaling's side of the media core: media.offer and
 * media.candidate from the participants (and a watching supervisor), media.view
 * (the size a receiver shows a participant at, for simulcast), the
 * media core's events back to them, and each stream's figures, kept for the
 * overview and summed up into the visit record when the visit ends.
 *
 * Control loop; the media core's events arrive there as typed values
 * (tm_media_event), and this is where they become telemed.v1 JSON.
 */
#include "signaling_internal.h"
#include "telemed/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Why a media request was refused: the error, its message (NULL: the
 * code's own) and a stable reason the page decides on. not_active and
 * visit_not_here pass (the visit starts, or reaches this node, in a
 * moment) and media_failed may; the others are final. */
typedef struct refusal {
    int err;
    const char *message, *reason;
} refusal;

static live_visit *refuse(refusal *why, int err, const char *message, const char *reason)
{
    *why = (refusal){err, message, reason};
    return NULL;
}

static const char *member_refusal(int err)
{
    return err == TM_ECONFLICT ? "visit_not_here" : err == TM_EPERM ? "not_member" : "not_found";
}

/* The visit a user may exchange media for: their active visit, or the one
 * they watch. */
static live_visit *media_visit(request *r, bool *send, refusal *why)
{
    const char *visit_id = tm__jstr(r->msg, "visit_id");
    if (!visit_id)
        return refuse(why, TM_EINVAL, "visit_id is required", "invalid");
    if (!r->sig->media)
        return refuse(why, TM_EUNSUPPORTED, "media is not enabled on this server",
                      "media_disabled");
    if (r->u->role == TM_ROLE_SUPERVISOR) {
        live_visit *v = g_hash_table_lookup(r->sig->visits, visit_id);
        if (!v || !tm__user_watches(r->u, visit_id))
            return refuse(why, TM_EPERM, "watch the visit first", "not_watching");
        *send = false;
        return v;
    }
    int err = 0;
    live_visit *v = tm__member_visit(r, visit_id, &err);
    if (!v)
        return refuse(why, err, NULL, member_refusal(err));
    if (v->state != TM_VS_ACTIVE)
        return refuse(why, TM_ECONFLICT, "media starts when the visit is active", "not_active");
    if (!tm__consent_notice_accepted(v, r->u))
        return refuse(why, TM_EPERM, "accept your notice first (consent.get, then consent.accept)",
                      "notice_required");
    *send = true;
    return v;
}

static void reply_refusal(request *r, const refusal *why)
{
    tm__reply_err_reason(r->s, r->id, why->err, why->message, why->reason);
}

/* A refused offer leaves the page without media: it is logged, with the
 * reason the page retries on or gives up on. */
static void refuse_offer(request *r, const refusal *why)
{
    const char *visit_id = tm__jstr(r->msg, "visit_id");
    tm_info("media.offer_refused", "visit=%s peer=%s reason=%s",
            visit_id && strlen(visit_id) < 64 ? visit_id : "-", r->u->key, why->reason);
    reply_refusal(r, why);
}

static void replay_speaker(tm_signaling *sig, live_visit *v, user *to);

static void handle_media_offer(request *r)
{
    bool send = false;
    refusal why;
    live_visit *v = media_visit(r, &send, &why);
    if (!v) {
        refuse_offer(r, &why);
        return;
    }
    const char *sdp = tm__jstr(r->msg, "sdp");
    if (!sdp) {
        refuse_offer(r, &(refusal){TM_EINVAL, "sdp is required", "invalid"});
        return;
    }
    char *err = NULL;
    int rc = tm_media_offer(r->sig->media, v->id, r->u->key, send, sdp, strlen(sdp), &err);
    if (rc < 0) {
        bool sdp_bad = rc == TM_EINVAL || rc == TM_ETOOBIG || rc == TM_EUNSUPPORTED;
        refuse_offer(r, &(refusal){rc, err ? err : "offer refused",
                                   sdp_bad ? "sdp_refused" : "media_failed"});
        g_free(err);
        return;
    }
    tm__reply_ok(r->s, r->id, NULL);
    tm__media_health_replay(v, r->u);
    replay_speaker(r->sig, v, r->u);
}

static void handle_media_candidate(request *r)
{
    bool send = false;
    refusal why;
    live_visit *v = media_visit(r, &send, &why);
    if (!v) {
        reply_refusal(r, &why);
        return;
    }
    const char *cand = tm__jstr(r->msg, "candidate");
    const char *mid = tm__jstr(r->msg, "sdpMid");
    if (!cand) {
        tm__reply_err(r->s, r->id, TM_EINVAL, "candidate is required");
        return;
    }
    int rc = tm_media_add_candidate(r->sig->media, v->id, r->u->key, cand, mid);
    if (rc < 0)
        tm__reply_err(r->s, r->id, rc, tm_media_candidate_error(rc));
    else
        tm__reply_ok(r->s, r->id, NULL);
}

/* The media core's peer id of the participant named participant_id in v, into key. */
static bool participant_key(const live_visit *v, const char *participant_id, char *key, size_t cap)
{
    if (strcmp(v->patient_sub, participant_id) == 0) {
        g_snprintf(key, cap, "patient:%s", participant_id);
        return true;
    }
    if (strcmp(v->doctor_id, participant_id) == 0) {
        g_snprintf(key, cap, "doctor:%s", participant_id);
        return true;
    }
    for (guint i = 0; v->party && i < v->party->len; i++) {
        const party_member *pm = g_ptr_array_index(v->party, i);
        if (strcmp(pm->sub, participant_id) == 0) {
            g_strlcpy(key, pm->key, cap);
            return true;
        }
    }
    return false;
}

/* media.view: the size this receiver renders a participant's video at, for the
 * simulcast layer it gets of that participant (0x0 = hidden). */
static void handle_media_view(request *r)
{
    bool send = false;
    refusal why;
    live_visit *v = media_visit(r, &send, &why);
    if (!v) {
        reply_refusal(r, &why);
        return;
    }
    const char *pid = tm__jstr(r->msg, "participant_id");
    json_t *jw = json_object_get(r->msg, "width"), *jh = json_object_get(r->msg, "height");
    if (!pid || !json_is_integer(jw) || !json_is_integer(jh) || json_integer_value(jw) < 0 ||
        json_integer_value(jh) < 0 || json_integer_value(jw) > TM_MEDIA_VIEW_MAX ||
        json_integer_value(jh) > TM_MEDIA_VIEW_MAX) {
        tm__reply_err(r->s, r->id, TM_EINVAL,
                      "participant_id, width and height (0..16384) are required");
        return;
    }
    char key[200];
    if (!participant_key(v, pid, key, sizeof key)) {
        tm__reply_err(r->s, r->id, TM_ENOTFOUND, "no such participant in the visit");
        return;
    }
    if (strcmp(key, r->u->key) == 0) {
        tm__reply_err(r->s, r->id, TM_EINVAL, "the server does not send you your own video");
        return;
    }
    int rc = tm_media_set_view(r->sig->media, v->id, r->u->key, key,
                               (unsigned)json_integer_value(jw), (unsigned)json_integer_value(jh));
    if (rc == TM_ENOTFOUND)
        tm__reply_err(r->s, r->id, TM_ECONFLICT, "send media.offer before media.view");
    else if (rc < 0)
        tm__reply_err(r->s, r->id, rc, NULL);
    else
        tm__reply_ok(r->s, r->id, NULL);
}

/* One stream as the overview and the visit record show it. */
static json_t *stream_json(const tm_media_stream_stats *st)
{
    json_t *o =
        json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:f, s:f, s:I, s:I, s:I, s:I, s:i, s:i}",
                  "direction", st->out ? "out" : "in", "kind", st->video ? "video" : "audio",
                  "ssrc", (json_int_t)st->ssrc, "packets", (json_int_t)st->packets, "bytes",
                  (json_int_t)st->bytes, "bitrate_bps", (json_int_t)st->bitrate_bps, "loss_pct",
                  st->loss_pct, "jitter_ms", st->jitter_ms, "rtt_ms", (json_int_t)st->rtt_ms,
                  "keyframes", (json_int_t)st->keyframes, "nacks", (json_int_t)st->nacks, "plis",
                  (json_int_t)st->plis, "width", (int)st->width, "height", (int)st->height);
    json_object_set_new(o, "freeze_count", json_integer(st->freeze_count));
    json_object_set_new(o, "frozen_ms", json_integer(st->frozen_ms));
    if (st->out) {
        json_object_set_new(o, "retransmits", json_integer((json_int_t)st->retransmits));
    } else {
        json_object_set_new(o, "frames", json_integer((json_int_t)st->frames));
        json_object_set_new(o, "fps", json_real(st->fps));
    }
    json_object_set_new(o, "remb_bps", json_integer((json_int_t)st->remb_bps));
    return o;
}

static double num(json_t *o, const char *key)
{
    return json_number_value(json_object_get(o, key));
}

static void keep_max(json_t *acc, const char *key, double v)
{
    if (v > num(acc, key))
        json_object_set_new(acc, key, json_real(v));
}

/* Folds one second of a stream's figures into the visit's summary: average
 * and peak bitrate, worst loss, jitter and RTT, the last totals. */
static void summarize_stream(live_visit *v, const char *peer, const tm_media_stream_stats *st,
                             json_t *last)
{
    if (!v->summary)
        v->summary = json_object();
    char key[256];
    snprintf(key, sizeof(key), "%s|%s|%s|%lld", peer, st->out ? "out" : "in",
             st->video ? "video" : "audio", (long long)st->ssrc);
    json_t *acc = json_object_get(v->summary, key);
    if (!acc) {
        acc = json_object();
        json_object_set_new(v->summary, key, acc);
    }
    double samples = num(acc, "samples") + 1, bps = (double)st->bitrate_bps;
    double avg = num(acc, "bitrate_avg_bps");
    json_object_set_new(acc, "samples", json_real(samples));
    json_object_set_new(acc, "bitrate_avg_bps", json_real(avg + (bps - avg) / samples));
    keep_max(acc, "bitrate_max_bps", bps);
    keep_max(acc, "loss_max_pct", st->loss_pct);
    keep_max(acc, "jitter_max_ms", st->jitter_ms);
    keep_max(acc, "rtt_max_ms", (double)st->rtt_ms);
    if ((double)st->freeze_count > num(acc, "freezes")) {
        json_object_set_new(acc, "freezes", json_real(st->freeze_count));
        json_object_set_new(acc, "froze_at_ms", json_real((double)tm_now_ms()));
    }
    json_object_set(acc, "last", last);
}

/* The peer's latest second: live for the overview, folded into the summary. */
static void on_stats(tm_signaling *sig, live_visit *v, const tm_media_event *ev)
{
    json_t *streams = json_array();
    for (size_t i = 0; i < ev->n_streams; i++) {
        json_t *st = stream_json(&ev->streams[i]);
        summarize_stream(v, ev->peer_id, &ev->streams[i], st);
        json_array_append_new(streams, st);
    }
    if (!v->quality)
        v->quality = json_object();
    json_object_set_new(v->quality, ev->peer_id, streams);
    tm__mark_overview_dirty(sig);
}

/* Writes the visit's stream summaries into its record. */
void tm__store_stats_summary(tm_signaling *sig, live_visit *v, int64_t now)
{
    const char *key;
    json_t *acc;
    json_object_foreach(v->summary, key, acc)
    {
        gchar **parts = g_strsplit(key, "|", 4);
        if (g_strv_length(parts) == 4) {
            char *text = json_dumps(acc, JSON_COMPACT);
            tm_store_stats_add(sig->store, v->id, parts[0], parts[1], parts[2], text, now);
            free(text);
        }
        g_strfreev(parts);
    }
}

/* The participant a media peer id ("role:sub") names, as the protocol
 * names them: id (the sub) and visit role (null when no longer in it). */
static void peer_participant(tm_signaling *sig, live_visit *v, const char *peer_id, json_t *o)
{
    user *u = g_hash_table_lookup(sig->users, peer_id);
    const char *colon = strchr(peer_id, ':');
    tm__visit_role role = tm__party_role(sig, v, u);
    json_object_set_new(o, "participant_id", json_string(u ? u->sub : colon ? colon + 1 : peer_id));
    json_object_set_new(o, "role",
                        role == TM_VR_NONE ? json_null() : json_string(tm__visit_role_name(role)));
}

/* media.streams: whose audio and video each of the receiver's m-lines
 * carries now, so its page can put names on the tiles. */
static json_t *streams_msg(tm_signaling *sig, live_visit *v, const tm_media_event *ev)
{
    json_t *streams = json_array();
    for (size_t i = 0; i < ev->n_bindings; i++) {
        const tm_media_binding *b = &ev->bindings[i];
        json_t *o = json_pack("{s:s, s:s}", "mid", b->mid ? b->mid : "", "kind",
                              b->video ? "video" : "audio");
        if (b->src_peer_id) {
            peer_participant(sig, v, b->src_peer_id, o);
        } else {
            json_object_set_new(o, "participant_id", json_null());
            json_object_set_new(o, "role", json_null());
        }
        json_array_append_new(streams, o);
    }
    return json_pack("{s:s, s:s, s:o}", "type", "media.streams", "visit_id", v->id, "streams",
                     streams);
}

static json_t *speaker_msg(tm_signaling *sig, live_visit *v, const char *peer_id)
{
    json_t *o = json_object();
    peer_participant(sig, v, peer_id, o);
    json_t *m = json_pack("{s:s, s:s, s:O}", "type", "media.speaker", "visit_id", v->id,
                          "participant_id", json_object_get(o, "participant_id"));
    json_decref(o);
    return m;
}

/* media.speaker to everyone in the visit and its watchers. */
static void on_speaker(tm_signaling *sig, live_visit *v, const char *peer_id)
{
    g_strlcpy(v->speaker, peer_id, sizeof v->speaker);
    tm__party_send_all(sig, v, speaker_msg(sig, v, peer_id));
}

/* The speaker is told only when it changes: a page that joins or reloads
 * while the same one talks on learns it here, if they are still in the visit. */
static void replay_speaker(tm_signaling *sig, live_visit *v, user *to)
{
    user *speaker = v->speaker[0] ? g_hash_table_lookup(sig->users, v->speaker) : NULL;
    if (speaker && tm__party_role(sig, v, speaker) != TM_VR_NONE)
        tm__send_to_user(to, speaker_msg(sig, v, v->speaker));
}

void tm_signaling_on_media_event(const tm_media_event *ev, void *user_data)
{
    tm_signaling *sig = user_data;
    user *u = ev->peer_id ? g_hash_table_lookup(sig->users, ev->peer_id) : NULL;
    live_visit *v = ev->visit_id ? g_hash_table_lookup(sig->visits, ev->visit_id) : NULL;
    json_t *m = NULL;
    switch (ev->type) {
    case TM_MEDIA_EV_ANSWER:
        m = json_pack("{s:s, s:s, s:s, s:b, s:s}", "type", "media.answer", "visit_id", ev->visit_id,
                      "sdp", ev->sdp, "new_transport", ev->new_transport, "offer_ufrag",
                      ev->offer_ufrag ? ev->offer_ufrag : "");
        break;
    case TM_MEDIA_EV_CANDIDATE:
        m = json_pack("{s:s, s:s, s:s, s:s, s:i}", "type", "media.candidate", "visit_id",
                      ev->visit_id, "candidate", ev->candidate ? ev->candidate : "", "sdpMid",
                      ev->mid ? ev->mid : "0", "sdpMLineIndex", ev->mline_index);
        break;
    case TM_MEDIA_EV_STATE:
        m = json_pack("{s:s, s:s, s:s}", "type", "media.state", "visit_id", ev->visit_id, "state",
                      ev->state);
        tm_info("media.state", "visit=%s peer=%s state=%s", ev->visit_id, ev->peer_id, ev->state);
        break;
    case TM_MEDIA_EV_STATS:
        if (v && ev->peer_id) {
            on_stats(sig, v, ev);
            tm__media_health_on_stats(sig, v, ev);
        }
        return;
    case TM_MEDIA_EV_RECORDING_FAILED:
        tm_visit_record_failed(sig->record, ev->visit_id, ev->message);
        return;
    case TM_MEDIA_EV_BINDINGS:
        if (v)
            m = streams_msg(sig, v, ev);
        break;
    case TM_MEDIA_EV_SPEAKER:
        if (v && ev->peer_id)
            on_speaker(sig, v, ev->peer_id);
        return;
    case TM_MEDIA_EV_RENEGOTIATE:
        if (!v)
            return;
        m = json_pack("{s:s, s:s, s:s}", "type", "media.renegotiate", "visit_id", ev->visit_id,
                      "reason", "codec");
        tm_info("media.renegotiate", "visit=%s peer=%s reason=codec", ev->visit_id, ev->peer_id);
        break;
    case TM_MEDIA_EV_ERROR:
        m = json_pack("{s:s, s:s, s:s, s:s}", "type", "media.error", "visit_id", ev->visit_id,
                      "code", tm_error_code(ev->err), "message", ev->message ? ev->message : "");
        break;
    }
    tm__send_to_user(u, m);
}

const tm__handler tm__media_handlers[] = {
    {"media.offer", handle_media_offer},
    {"media.candidate", handle_media_candidate},
    {"media.view", handle_media_view},
    {NULL, NULL},
};

/*
 * media_quality.c - what each participant's media looks like from the
 * server, told to the people in the visit: video ok, frozen (no new frame
 * for alert_freeze_ms) or off (audio-only: no camera, or a camera that sends
 * nothing), audio ok, off (a microphone muted: no sound while the peer's
 * RTCP still comes) or silent. A change is pushed to the other participants
 * and watching supervisors as media.quality, and while it lasts it is an
 * alert in the supervisors' overview. A gap in a participant's media longer
 * than interruption_min_ms, once media is back (or the visit ends), is
 * written to the visit record.
 *
 * Judged from the per-second figures of what the server receives
 * (TM_MEDIA_EV_STATS), so it is the same for every viewer and needs nothing
 * from the sender's page. A participant whose figures stop coming (its
 * transport is being rebuilt) is judged by the one-second tick. A sender's
 * video is judged from all its incoming video streams together: with
 * simulcast each layer is a stream of its own, and the browser pauses its
 * top layer on a thin uplink or a busy CPU while the others play on.
 *
 * Control loop.
 */
#include "signaling_internal.h"
#include "telemed/log.h"

#include <string.h>

/* Figures come every second; none for this long means the transport is gone. */
#define STALE_MS 2500
/* RTCP this fresh with no media is a peer that sends nothing on purpose (a
 * browser reports on what it receives every second or so), not a lost path. */
#define HEARD_MS 1500
/* A freeze stays in the supervisors' poor-quality alert this long. */
#define POOR_FREEZE_RECENT_MS 10000

typedef struct media_health {
    char key[200]; /* the participant's user key, "role:sub" */
    /* What was last told (static strings; reason NULL while all is well). */
    const char *video, *audio, *reason;
    int64_t since_ms;       /* when what was last told began */
    int64_t last_stats_ms;  /* the latest figures */
    int64_t last_flow_ms;   /* the latest figures in which anything had arrived */
    bool stopped;           /* figures since then said nothing arrived, or none came */
    bool stale;             /* ...none came (the worker or this loop was busy, or the
                               transport is being rebuilt) */
    int64_t audio_since_ms; /* audio flowing without a break since, 0 = not flowing */
    int64_t audio_last_ms;  /* the latest figures in which audio flowed */
    uint64_t in_packets;    /* over every incoming stream, at the latest figures */
    uint64_t audio_packets;
    int64_t froze_at_ms;   /* the latest figures in which none of its video had frames */
    double video_loss_pct; /* of the latest second, over all its video layers */
} media_health;

/* A sender's video, its simulcast layers folded into one: frozen only while no
 * layer has frames, the bitrate of them all, and the loss of what they carried
 * (each layer's loss weighed by its bitrate, so a thin layer that lost one of
 * its few packets does not stand for the whole). */
typedef struct sender_video {
    int64_t frozen_ms;
    uint64_t bitrate_bps;
    double loss_pct;
} sender_video;

/* Folds the incoming video streams into *out; false when there are none. */
static bool fold_video(const tm_media_event *ev, sender_video *out)
{
    bool any = false;
    double lost_bits = 0;
    *out = (sender_video){0};
    for (size_t i = 0; i < ev->n_streams; i++) {
        const tm_media_stream_stats *st = &ev->streams[i];
        if (st->out || !st->video)
            continue;
        out->frozen_ms = any && out->frozen_ms < st->frozen_ms ? out->frozen_ms : st->frozen_ms;
        out->bitrate_bps += st->bitrate_bps;
        lost_bits += st->loss_pct * (double)st->bitrate_bps;
        any = true;
    }
    if (out->bitrate_bps)
        out->loss_pct = lost_bits / (double)out->bitrate_bps;
    return any;
}

static media_health *health_of(live_visit *v, const char *key, bool create)
{
    if (!v->health) {
        if (!create)
            return NULL;
        v->health = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, g_free);
    }
    media_health *h = g_hash_table_lookup(v->health, key);
    if (!h && create) {
        h = g_new0(media_health, 1);
        g_strlcpy(h->key, key, sizeof h->key);
        h->video = h->audio = "ok";
        g_hash_table_insert(v->health, h->key, h);
    }
    return h;
}

/* "role:sub" -> role, sub (into buffers). */
static void split_key(const char *key, char *role, size_t rlen, char *sub, size_t slen)
{
    const char *colon = strchr(key, ':');
    size_t n = colon ? (size_t)(colon - key) : 0;
    g_strlcpy(role, key, n + 1 < rlen ? n + 1 : rlen);
    g_strlcpy(sub, colon ? colon + 1 : key, slen);
}

static json_t *health_json(const char *type_key, const char *type, live_visit *v,
                           const media_health *h)
{
    char role[32], sub[160];
    split_key(h->key, role, sizeof role, sub, sizeof sub);
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", type_key, type, "visit_id", v->id,
                  "participant_id", sub, "role", role, "video", h->video, "audio", h->audio);
    json_object_set_new(o, "reason", h->reason ? json_string(h->reason) : json_null());
    json_object_set_new(o, "since", tm__time_json(h->since_ms));
    return o;
}

/* The visit's other people: every participant but the one it is about (the
 * patient, the attending doctor, the invited ones), and supervisors watching. */
static void tell_others(tm_signaling *sig, live_visit *v, const char *key, json_t *msg)
{
    user *people[] = {tm__visit_patient(sig, v), tm__visit_doctor(sig, v)};
    for (size_t i = 0; i < TM_ARRAY_LEN(people); i++)
        if (people[i] && strcmp(people[i]->key, key) != 0)
            tm__send_to_user(people[i], json_incref(msg));
    for (guint i = 0; i < v->party->len; i++) {
        const party_member *pm = g_ptr_array_index(v->party, i);
        if (strcmp(pm->key, key) != 0)
            tm__send_to_user(g_hash_table_lookup(sig->users, pm->key), json_incref(msg));
    }
    for (guint i = 0; i < v->watchers->len; i++)
        tm__send_to_user(g_hash_table_lookup(sig->users, g_ptr_array_index(v->watchers, i)),
                         json_incref(msg));
    json_decref(msg);
}

static void announce(tm_signaling *sig, live_visit *v, media_health *h, const char *video,
                     const char *audio, const char *reason, int64_t now)
{
    if (strcmp(h->video, video) == 0 && strcmp(h->audio, audio) == 0)
        return;
    bool was_ok = strcmp(h->video, "ok") == 0 && strcmp(h->audio, "ok") == 0;
    h->video = video;
    h->audio = audio;
    h->reason = reason;
    if (was_ok || (strcmp(video, "ok") == 0 && strcmp(audio, "ok") == 0))
        h->since_ms = now;
    tm_info("media.quality", "visit=%s peer=%s video=%s audio=%s reason=%s", v->id, h->key, video,
            audio, reason ? reason : "-");
    tell_others(sig, v, h->key, health_json("type", "media.quality", v, h));
    tm__mark_overview_dirty(sig);
}

/* A gap of more than interruption_min_ms before `back` (0: never back) goes
 * into the visit record. Only a gap that some figures saw (nothing arrived
 * in their second, or they stopped coming) counts: figures that come late on
 * a busy worker are no gap in the media. */
static void note_gap(tm_signaling *sig, live_visit *v, const media_health *h, int64_t back,
                     int64_t now)
{
    if (!h->stopped || !h->last_flow_ms ||
        (back ? back : now) - h->last_flow_ms <= sig->cfg->interruption_min_ms)
        return;
    char role[32], sub[160];
    split_key(h->key, role, sizeof role, sub, sizeof sub);
    int rc = tm_store_interruption_add(sig->store, v->id, sub, role, h->last_flow_ms, back);
    tm_info("media.interruption", "visit=%s peer=%s gap_ms=%lld back=%d seen=%s rc=%d", v->id,
            h->key, (long long)((back ? back : now) - h->last_flow_ms), back != 0,
            h->stale ? "no_figures" : "nothing_arrived", rc);
}

static void judge_video(const tm_signaling *sig, const media_health *h, const sender_video *video,
                        bool audio_ok, bool heard, int64_t now, const char **state,
                        const char **reason)
{
    *state = "ok";
    *reason = NULL;
    if (!video) {
        /* No video stream at all: audio-only, once audio has flowed for a
         * moment (at the start the video's first packet may still come). */
        if (h->audio_since_ms && now - h->audio_since_ms >= sig->cfg->alert_freeze_ms) {
            *state = "off";
            *reason = "no_camera";
        } else {
            *state = h->video;
            *reason = h->reason;
        }
    } else if (video->frozen_ms >= sig->cfg->alert_freeze_ms) {
        /* Nothing of the video but sound going on (or the peer's RTCP, its
         * microphone muted too) is a camera that stopped; packets without
         * frames, or nothing at all, is the network. */
        if (video->bitrate_bps == 0 && (audio_ok || heard)) {
            *state = "off";
            *reason = "camera_off";
        } else {
            *state = "frozen";
            *reason = audio_ok ? "poor_network" : "network_lost";
        }
    }
}

void tm__media_health_on_stats(tm_signaling *sig, live_visit *v, const tm_media_event *ev)
{
    user *u = g_hash_table_lookup(sig->users, ev->peer_id);
    if (!u || u->role == TM_ROLE_SUPERVISOR || v->state != TM_VS_ACTIVE)
        return;
    int64_t now = tm_now_ms();
    media_health *h = health_of(v, ev->peer_id, true);
    const tm_media_stream_stats *audio = NULL;
    uint64_t packets = 0;
    for (size_t i = 0; i < ev->n_streams; i++) {
        const tm_media_stream_stats *st = &ev->streams[i];
        if (st->out)
            continue;
        packets += st->packets;
        if (!st->video && !audio)
            audio = st;
    }
    sender_video sv;
    const sender_video *video = fold_video(ev, &sv) ? &sv : NULL;
    h->video_loss_pct = video ? sv.loss_pct : 0;
    if (video && sv.frozen_ms > 0)
        h->froze_at_ms = now;
    bool audio_ok = audio && audio->packets != h->audio_packets;
    bool heard = ev->heard_ago_ms >= 0 && ev->heard_ago_ms < HEARD_MS;
    h->audio_packets = audio ? audio->packets : 0;
    if (!audio_ok)
        h->audio_since_ms = 0;
    else if (!h->audio_since_ms)
        h->audio_since_ms = now;
    if (audio_ok)
        h->audio_last_ms = now;
    /* Muted: no sound for as long as a frozen video takes to be told, the peer
     * heard all along (a lost path stops its RTCP as well). */
    bool mic_off = !audio_ok && heard && now - h->audio_last_ms >= sig->cfg->alert_freeze_ms;
    if (packets != h->in_packets || heard) {
        note_gap(sig, v, h, now, now);
        h->last_flow_ms = now;
        h->stopped = h->stale = false;
    } else {
        h->stopped = true;
    }
    h->in_packets = packets;
    h->last_stats_ms = now;
    const char *vstate, *reason;
    judge_video(sig, h, video, audio_ok, heard, now, &vstate, &reason);
    if (!reason && !audio_ok)
        reason = mic_off ? "mic_off" : "no_audio";
    announce(sig, v, h, vstate, audio_ok ? "ok" : mic_off ? "off" : "silent", reason, now);
}

void tm__media_health_tick(tm_signaling *sig, int64_t now)
{
    GHashTableIter it;
    gpointer k, val;
    g_hash_table_iter_init(&it, sig->visits);
    while (g_hash_table_iter_next(&it, &k, &val)) {
        live_visit *v = val;
        if (!v->health || v->state != TM_VS_ACTIVE)
            continue;
        GHashTableIter hi;
        gpointer hk, hv;
        g_hash_table_iter_init(&hi, v->health);
        while (g_hash_table_iter_next(&hi, &hk, &hv)) {
            media_health *h = hv;
            if (now - h->last_stats_ms <= STALE_MS)
                continue;
            h->audio_since_ms = 0;
            h->stopped = h->stale = true;
            bool off = strcmp(h->video, "off") == 0;
            announce(sig, v, h, off ? "off" : "frozen", "silent", "network_lost", now);
        }
    }
}

void tm__media_health_alerts(live_visit *v, json_t *alerts, int64_t now)
{
    if (!v->health || v->state != TM_VS_ACTIVE)
        return;
    GHashTableIter it;
    gpointer k, val;
    g_hash_table_iter_init(&it, v->health);
    while (g_hash_table_iter_next(&it, &k, &val)) {
        media_health *h = val;
        bool audio_ok = strcmp(h->audio, "ok") == 0;
        bool mic_off = strcmp(h->audio, "off") == 0; /* the participant's choice: no alert */
        const char *kind = strcmp(h->video, "frozen") == 0 ? "video_frozen"
                           : strcmp(h->video, "off") == 0  ? (audio_ok ? "audio_only" : "no_media")
                           : !audio_ok && !mic_off         ? "audio_silent"
                                                           : NULL;
        if (!kind)
            continue;
        json_t *a = health_json("kind", kind, v, h);
        json_object_set_new(a, "duration_s", json_integer((now - h->since_ms) / 1000));
        json_array_append_new(alerts, a);
    }
}

bool tm__media_health_poor_video(const tm_signaling *sig, live_visit *v, int64_t now,
                                 double *loss_pct, bool *froze)
{
    if (!v->health)
        return false;
    GHashTableIter it;
    gpointer k, val;
    g_hash_table_iter_init(&it, v->health);
    while (g_hash_table_iter_next(&it, &k, &val)) {
        const media_health *h = val;
        bool recent = now - h->last_stats_ms <= STALE_MS;
        *froze = h->froze_at_ms && now - h->froze_at_ms < POOR_FREEZE_RECENT_MS;
        *loss_pct = recent ? h->video_loss_pct : 0;
        if (*froze || *loss_pct > sig->cfg->alert_loss_pct)
            return true;
    }
    return false;
}

void tm__media_health_replay(live_visit *v, user *to)
{
    if (!v->health)
        return;
    GHashTableIter it;
    gpointer k, val;
    g_hash_table_iter_init(&it, v->health);
    while (g_hash_table_iter_next(&it, &k, &val)) {
        media_health *h = val;
        if (strcmp(h->key, to->key) != 0 && (strcmp(h->video, "ok") || strcmp(h->audio, "ok")))
            tm__send_to_user(to, health_json("type", "media.quality", v, h));
    }
}

void tm__media_health_finish(tm_signaling *sig, live_visit *v, int64_t now)
{
    if (!v->health)
        return;
    GHashTableIter it;
    gpointer k, val;
    g_hash_table_iter_init(&it, v->health);
    while (g_hash_table_iter_next(&it, &k, &val))
        note_gap(sig, v, val, 0, now);
}

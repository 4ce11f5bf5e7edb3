/*
 * forward_tick.c - once a second per peer: the simulcast layers metered and
 * chosen (forward_bind.c), an RR and a REMB to the peer as a sender (the
 * estimate of its weakest receiver, or what its best layer needs), and its
 * figures as typed values to the control loop. Runs on the visit's worker
 * thread, only while the worker has visits.
 */
#include <math.h>

#include "forward_internal.h"

/* What receiver o needs of a simulcast sender: every layer up to the next one
 * wider than the layer it gets (it steps up into that one), with room to grow;
 * all the sender may when that next layer is not flowing (only sent, it can be
 * stepped up into) or o has no layer yet. */
static uint64_t layers_needed(const tm__in_stream *hd, const tm__out_stream *o)
{
    const tm__in_stream *layers = hd; /* a head's layers follow it in the peer's in[] */
    int n = hd->n_layers;
    if (o->pick.target < 0 || o->pick.target >= n)
        return TM__REMB_CAP_BPS;
    unsigned got = layers[o->pick.target].meter.width, next = 0;
    for (int l = 0; l < n; l++) {
        unsigned w = layers[l].meter.width;
        if (w > got && (!next || w < next))
            next = w;
    }
    if (!next)
        return TM__REMB_CAP_BPS; /* it gets the widest: whatever the sender can */
    uint64_t sum = 0;
    for (int l = 0; l < n; l++) {
        const tm__layer_info *m = &layers[l].meter;
        if (m->width > next)
            continue;
        if (!m->active || !m->bps)
            return TM__REMB_CAP_BPS;
        sum += m->bps;
    }
    return sum * 3 / 2;
}

/* What a simulcast sender is asked to send. A receiver whose downlink the
 * server estimates is held to its layer by the layer choice, not by the
 * sender: it needs only what its layer and the next one carry. A receiver
 * known only by its REMB needs that much; one that said nothing yet, or a
 * recorded visit (the recorder takes the best layer), lets the sender send
 * all it may. The most any receiver needs. */
static uint64_t simulcast_remb(const tm__peer *p, const tm__in_stream *hd, int64_t now_ms)
{
    if (p->visit->rec_path || hd->n_bound == 0)
        return TM__REMB_CAP_BPS;
    uint64_t most = 0;
    for (int b = 0; b < hd->n_bound; b++) {
        const tm__peer *r = hd->bound_peer[b];
        const tm__out_stream *o = &r->out[hd->bound_out[b]];
        uint64_t need;
        if (tm__congestion_downlink_bps(r))
            need = layers_needed(hd, o);
        else if (o->remb_bps && now_ms - o->remb_ms < REMB_FRESH_MS)
            need = o->remb_bps;
        else
            return TM__REMB_CAP_BPS;
        most = need > most ? need : most;
    }
    return most < TM__REMB_CAP_BPS ? most : TM__REMB_CAP_BPS;
}

/* What a receiver can take of one plain stream: the server's estimate of its
 * downlink when there is one, else its REMB; 0 when it said nothing lately. */
static uint64_t receiver_bps(const tm__peer *r, const tm__out_stream *o, int64_t now_ms)
{
    uint64_t est = tm__congestion_downlink_bps(r);
    if (est)
        return est;
    return o->remb_bps && now_ms - o->remb_ms < REMB_FRESH_MS ? o->remb_bps : 0;
}

static void send_reports(tm__peer *p, int64_t now_ms)
{
    tm__worker *w = p->w;
    /* Simulcast layers make more in streams than m-lines; an RR holds so many blocks. */
    tm_rtcp_report_block rb[TM_RTCP_MAX_REPORTS] = {0};
    uint32_t video[TM__MAX_STREAMS * TM__MAX_LAYERS];
    size_t n_rb = 0, n_video = 0;
    uint64_t remb = TM__REMB_CAP_BPS;
    for (int i = 0; i < p->n_in; i++) {
        tm__in_stream *s = &p->in[i];
        if (s->stats && n_rb < TM_ARRAY_LEN(rb) &&
            tm_stream_stats_report_block(s->stats, now_ms * 1000, &rb[n_rb]) == 0) {
            uint8_t worst = tm__congestion_receivers_lost(p, s, now_ms);
            tm__loss_fold_apply(&s->loss_fold, &rb[n_rb++], worst);
        }
        if (s->kind != TM_MEDIA_VIDEO || !s->ssrc || n_video == TM_ARRAY_LEN(video))
            continue;
        video[n_video++] = s->ssrc;
        if (s->n_layers) {
            uint64_t need = s->layer == 0 ? simulcast_remb(p, s, now_ms) : remb;
            remb = need < remb ? need : remb;
            continue;
        }
        /* Without layers to choose from, the sender adapts to its weakest receiver. */
        for (int b = 0; b < s->n_bound; b++) {
            uint64_t bps =
                receiver_bps(s->bound_peer[b], &s->bound_peer[b]->out[s->bound_out[b]], now_ms);
            if (bps && bps < remb)
                remb = bps;
        }
    }
    if (remb < TM__REMB_MIN_BPS)
        remb = TM__REMB_MIN_BPS;
    size_t cap = sizeof w->rtcp - TM__SRTP_MAX_TRAILER, len = 0;
    int n = tm_rtcp_build_rr(w->rtcp, cap, p->rtcp_ssrc, rb, n_rb);
    if (n <= 0)
        return;
    len = (size_t)n;
    if (n_video) {
        n = tm_rtcp_build_remb(w->rtcp + len, cap - len, p->rtcp_ssrc, remb, video, n_video);
        if (n > 0)
            len += (size_t)n;
        for (int i = 0; i < p->n_in; i++)
            if (p->in[i].kind == TM_MEDIA_VIDEO)
                p->in[i].remb_bps = remb;
    }
    tm__forward_send_rtcp(p, w->rtcp, len);
}

/* Rounded as the figures are shown: to hundredths. */
static double hundredths(double v)
{
    return (double)llround(v * 100.0) / 100.0;
}

static void in_stream_stats(tm__in_stream *s, int64_t now_ms, tm_media_stream_stats *out)
{
    tm_stream_stats_snapshot sn;
    tm_stream_stats_snapshot_take(s->stats, now_ms * 1000, &sn);
    *out = (tm_media_stream_stats){.video = s->kind == TM_MEDIA_VIDEO,
                                   .ssrc = s->ssrc,
                                   .packets = sn.packets,
                                   .bytes = sn.bytes,
                                   .bitrate_bps = sn.bitrate_bps,
                                   .loss_pct = hundredths(sn.fraction_lost * 100.0),
                                   .jitter_ms = hundredths(sn.jitter_ms),
                                   .rtt_ms = sn.rtt_ms,
                                   .keyframes = sn.keyframes,
                                   .nacks = sn.nacks_received,
                                   .plis = sn.plis_received + sn.firs,
                                   .width = sn.width,
                                   .height = sn.height,
                                   .freeze_count = sn.freezes,
                                   .frozen_ms = sn.frozen_for_ms,
                                   .frames = sn.frames,
                                   .fps = round(sn.fps * 10.0) / 10.0,
                                   .remb_bps = s->remb_bps,
                                   .audio_level = s->level_ms ? 127 - (s->loud_q8 >> 8) : -1};
}

static void out_stream_stats(tm__out_stream *o, tm_media_stream_stats *out)
{
    double jitter_ms = o->clock ? (double)o->st.jitter * 1000.0 / o->clock : 0;
    *out = (tm_media_stream_stats){.out = true,
                                   .video = o->kind == TM_MEDIA_VIDEO,
                                   .ssrc = o->ssrc,
                                   .packets = o->st.packets,
                                   .bytes = o->st.bytes,
                                   .bitrate_bps = o->st.bitrate_bps,
                                   .loss_pct = hundredths(o->st.fraction_lost * 100.0 / 256.0),
                                   .jitter_ms = hundredths(jitter_ms),
                                   .rtt_ms = o->st.rtt_ms ? o->st.rtt_ms : -1,
                                   .nacks = o->st.nacks,
                                   .plis = o->st.plis,
                                   .retransmits = o->st.retransmits,
                                   .remb_bps = o->remb_bps,
                                   .audio_level = -1};
}

/* Once a second, the peer's figures as typed values to the control loop. */
static void post_stats(tm__peer *p, int64_t now_ms)
{
    tm_media_stream_stats streams[2 * TM__MAX_STREAMS];
    size_t n = 0;
    for (int i = 0; i < p->n_in && n < TM_ARRAY_LEN(streams); i++)
        if (p->in[i].stats)
            in_stream_stats(&p->in[i], now_ms, &streams[n++]);
    for (int i = 0; i < p->n_out && n < TM_ARRAY_LEN(streams); i++) {
        tm__out_stream *o = &p->out[i];
        o->st.bitrate_bps = (o->st.bytes - o->st.last_bytes) * 8;
        o->st.last_bytes = o->st.bytes;
        if (o->rw.sent_any)
            out_stream_stats(o, &streams[n++]);
    }
    tm_media_event ev = {.type = TM_MEDIA_EV_STATS,
                         .visit_id = p->visit->id,
                         .peer_id = p->id,
                         .streams = streams,
                         .n_streams = n,
                         .heard_ago_ms = p->last_rx_ms ? now_ms - p->last_rx_ms : -1};
    tm__media_post(p->w, &ev);
}

void tm__forward_tick(tm__peer *p, int64_t now_ms)
{
    if (p->closing || !p->srtp)
        return;
    /* Consent freshness takes ~30 s to declare a path dead; signaling wants
     * to know sooner that media stopped (grace period, ICE restart). */
    if (p->last_rx_ms && now_ms - p->last_rx_ms > TM__SILENT_MS)
        tm__peer_set_state(p, "disconnected");
    tm__forward_meter_layers(p, now_ms);
    tm__forward_choose_layers(p, now_ms);
    send_reports(p, now_ms);
    post_stats(p, now_ms);
}

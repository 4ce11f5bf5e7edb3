/*
 * forward_rtcp.c - RTCP from a peer, the way back of the per-visit router:
 * report blocks give each out stream its loss, jitter and RTT; a sender's SR
 * is rewritten for each receiver of the stream so lip sync survives;
 * PLI/FIR go to the sender (paced, forward.c); NACKs are answered from the
 * receiver stream's rtx cache; REMB is kept per out stream for the layer
 * choice and the sender's estimate (forward_tick.c). Runs on the visit's
 * worker thread; no allocation.
 */
#include <string.h>

#include "forward_internal.h"

#define NACK_MAX 64

static tm__out_stream *find_out(tm__peer *p, uint32_t ssrc)
{
    for (int i = 0; i < p->n_out; i++)
        if (p->out[i].ssrc == ssrc)
            return &p->out[i];
    return NULL;
}

/* The stream an out stream carries now: its source's, or of a simulcast source the
 * layer it gets (the one it waits for when it has none yet). */
static tm__in_stream *out_source(tm__out_stream *o)
{
    if (!o || !o->src_peer || o->src_in < 0 || o->src_in >= o->src_peer->n_in)
        return NULL;
    tm__in_stream *hd = &o->src_peer->in[o->src_in];
    int layer = o->pick.cur >= 0 ? o->pick.cur : o->pick.target;
    if (hd->n_layers && layer >= 0 && layer < hd->n_layers)
        return &o->src_peer->in[o->src_in + layer];
    return hd;
}

static void on_report_blocks(tm__peer *from, const tm_rtcp_report_block *rb, unsigned n,
                             int64_t now_ms)
{
    for (unsigned i = 0; i < n; i++) {
        tm__out_stream *o = find_out(from, rb[i].ssrc);
        if (!o)
            continue;
        o->st.fraction_lost = rb[i].fraction_lost;
        o->st.cumulative_lost = rb[i].cumulative_lost;
        o->st.jitter = rb[i].jitter;
        o->st.rr_ms = now_ms;
        for (unsigned k = 0; k < TM_ARRAY_LEN(o->sr_mid); k++) {
            if (rb[i].lsr && o->sr_mid[k] == rb[i].lsr) {
                int64_t rtt = now_ms - o->sr_ms[k] - (int64_t)rb[i].dlsr * 1000 / 65536;
                o->st.rtt_ms = rtt < 0 ? 0 : rtt;
                /* The same path carries this peer's own streams to us. */
                for (int j = 0; j < from->n_in; j++)
                    if (from->in[j].stats)
                        tm_stream_stats_set_rtt_us(from->in[j].stats, o->st.rtt_ms * 1000);
                break;
            }
        }
    }
}

/* The sender's SR, once per receiver of the stream, in the receiver's terms. */
static void forward_sr(tm__peer *from, const tm_rtcp_sr *sr, int64_t now_ms)
{
    tm__worker *w = from->w;
    tm__in_stream *s = NULL;
    for (int i = 0; i < from->n_in; i++)
        if (from->in[i].ssrc == sr->ssrc)
            s = &from->in[i];
    if (!s)
        return;
    if (s->stats)
        tm_stream_stats_on_sr(s->stats, sr->ntp, now_ms * 1000);
    tm__in_stream *hd = s->n_layers ? &from->in[s->head] : s;
    for (int i = 0; i < hd->n_bound; i++) {
        tm__peer *r = hd->bound_peer[i];
        tm__out_stream *o = &r->out[hd->bound_out[i]];
        if (!o->rw.based || o->rw.src_ssrc != s->ssrc || !r->srtp)
            continue;
        tm_rtcp_sr out = {.ssrc = o->ssrc,
                          .ntp = sr->ntp,
                          .rtp_ts = sr->rtp_ts + o->rw.ts_off,
                          .packet_count = (uint32_t)o->st.packets,
                          .octet_count = (uint32_t)o->st.bytes};
        int n = tm_rtcp_build_sr(w->rtcp, sizeof w->rtcp - TM__SRTP_MAX_TRAILER, &out);
        if (n <= 0)
            continue;
        o->sr_mid[o->sr_next] = tm_ntp_mid32(sr->ntp);
        o->sr_ms[o->sr_next] = now_ms;
        o->sr_next = (o->sr_next + 1) % TM_ARRAY_LEN(o->sr_mid);
        tm__forward_send_rtcp(r, w->rtcp, (size_t)n);
    }
}

static void answer_nack(tm__peer *from, const tm_rtcp_pkt *pkt, int64_t now_ms)
{
    tm__worker *w = from->w;
    uint32_t media;
    uint16_t seqs[NACK_MAX];
    int n = tm_rtcp_parse_nack(pkt, &media, seqs, NACK_MAX);
    tm__out_stream *o = n > 0 ? find_out(from, media) : NULL;
    if (!o)
        return;
    o->st.nacks += (uint64_t)n;
    tm__in_stream *src = out_source(o);
    if (src && src->stats)
        tm_stream_stats_on_nack_received(src->stats, (unsigned)n);
    if (!o->rtx)
        return;
    for (int i = 0; i < n; i++) {
        const uint8_t *cached;
        size_t len;
        if (tm_rtx_cache_get(o->rtx, seqs[i], now_ms, &cached, &len) != 0 ||
            len + TM__SRTP_MAX_TRAILER > TM__PKT_CAP)
            continue;
        memcpy(w->pkt, cached, len);
        len = tm__congestion_stamp(from, o, w->pkt, len, TM__PKT_CAP - TM__SRTP_MAX_TRAILER,
                                   g_get_monotonic_time());
        if (tm__srtp_protect_rtp(from->srtp, w->pkt, &len) != 0)
            continue;
        tm__peer_send(from, w->pkt, len);
        o->st.retransmits++;
        tm__forward_count(&w->counters.nacks_answered);
        if (src && src->stats)
            tm_stream_stats_on_retransmit(src->stats);
    }
}

static void on_keyframe_request(tm__peer *from, uint32_t media_ssrc, bool fir)
{
    tm__out_stream *o = find_out(from, media_ssrc);
    tm__in_stream *src = out_source(o);
    if (!src)
        return;
    o->st.plis++;
    if (src->stats) {
        if (fir)
            tm_stream_stats_on_fir(src->stats);
        else
            tm_stream_stats_on_pli_received(src->stats);
    }
    /* A receiver that just renegotiated (a party member adding m-lines for a
     * joiner) may have had its depacketizer reset and cannot show anything
     * until a keyframe: as urgent as a join, not a second's wait. */
    bool fresh = from->offer_ms && tm_mono_ms() - from->offer_ms < TM__RENEGOTIATED_MS;
    tm__forward_keyframe_request(o->src_peer, src, fresh);
}

bool tm__forward_rtcp(tm__peer *from, uint8_t *buf, size_t len, int64_t now_us)
{
    tm__worker *w = from->w;
    if (len + TM__SRTP_MAX_TRAILER > TM__PKT_CAP ||
        tm__srtp_unprotect_rtcp(from->srtp, buf, &len) != 0 || tm_rtcp_validate(buf, len) != 0) {
        tm__forward_count(&w->counters.dropped_malformed);
        return false;
    }
    int64_t now_ms = now_us / 1000;
    if (!from->srtp_heard_ms)
        from->srtp_heard_ms = now_ms;
    tm_rtcp_iter it;
    tm_rtcp_pkt pkt;
    tm_rtcp_iter_init(&it, buf, len);
    while (tm_rtcp_next(&it, &pkt) == 1) {
        switch (pkt.kind) {
        case TM_RTCP_K_SR: {
            tm_rtcp_sr sr;
            if (tm_rtcp_parse_sr(&pkt, &sr) == 0) {
                on_report_blocks(from, sr.reports, sr.n_reports, now_ms);
                forward_sr(from, &sr, now_ms);
            }
            break;
        }
        case TM_RTCP_K_RR: {
            tm_rtcp_rr rr;
            if (tm_rtcp_parse_rr(&pkt, &rr) == 0)
                on_report_blocks(from, rr.reports, rr.n_reports, now_ms);
            break;
        }
        case TM_RTCP_K_PLI: {
            tm_rtcp_fb fb;
            if (tm_rtcp_parse_fb(&pkt, &fb) == 0)
                on_keyframe_request(from, fb.media_ssrc, false);
            break;
        }
        case TM_RTCP_K_FIR: {
            tm_rtcp_fir_entry e[4];
            int n = tm_rtcp_parse_fir(&pkt, e, TM_ARRAY_LEN(e));
            for (int i = 0; i < n; i++)
                on_keyframe_request(from, e[i].ssrc, true);
            break;
        }
        case TM_RTCP_K_NACK:
            answer_nack(from, &pkt, now_ms);
            break;
        case TM_RTCP_K_TWCC:
            tm__congestion_on_feedback(from, &pkt, now_us);
            break;
        case TM_RTCP_K_REMB: {
            tm_rtcp_remb remb;
            if (tm_rtcp_parse_remb(&pkt, &remb) == 0) {
                for (unsigned i = 0; i < remb.n_ssrcs; i++) {
                    tm__out_stream *o = find_out(from, remb.ssrcs[i]);
                    if (o) {
                        o->remb_bps = remb.bitrate_bps;
                        o->remb_ms = now_ms;
                    }
                }
            }
            break;
        }
        default:
            break;
        }
    }
    return true;
}

/*
 * forward.c - the per-visit router: RTP from a sender goes to every receiver
 * bound to that stream with SSRC, payload type, sequence number, timestamp
 * and header extension ids rewritten per receiver; RTCP feedback goes the
 * other way (PLI/FIR to the sender, rate limited; NACKs answered from the
 * receiver stream's rtx cache; REMB collected); SRs are rewritten for each
 * receiver so lip sync survives; once a second RR + REMB to senders and a
 * stats event per peer.
 *
 * Binding: each receiving m-line of a peer carries one stream of the same
 * kind of another sending peer. A binding stays while its sender is in the
 * visit; new senders take the free m-lines in join order (so a 1:1 peer's
 * audio/video m-lines get the other side's audio/video, and a supervisor's
 * or a party member's recvonly m-lines get everybody's). The receiver is
 * told (TM_MEDIA_EV_BINDINGS) whenever what its m-lines carry changes.
 *
 * Hot path (tm__forward_rtp): no allocation, no lock, no logging; scratch
 * buffers belong to the worker. Runs on the visit's worker thread.
 */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "media_internal.h"
#include "telemed/log.h"

#define TRAILER_ROOM TM__SRTP_MAX_TRAILER
#define NACK_MAX 64
#define REMB_FRESH_MS 5000
#define SPEAKER_EVAL_MS 250
#define SPEAKER_HOLD_MS 1500        /* loudest this long before taking over */
#define SPEAKER_FRESH_MS 1000       /* no level for this long: not speaking */
#define SPEAKER_MIN_LOUD (127 - 70) /* quieter than -70 dBov is nobody speaking */

static inline void count(atomic_uint_fast64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static void send_rtcp(tm__peer *to, uint8_t *buf, size_t len)
{
    if (!to->srtp || to->closing || len + TRAILER_ROOM > TM__PKT_CAP)
        return;
    if (tm__srtp_protect_rtcp(to->srtp, buf, &len) == 0)
        tm__peer_send(to, buf, len);
}

int tm__forward_pli(tm__peer *sender, tm__in_stream *s, int64_t now_ms)
{
    if (!sender->srtp || sender->closing || !s->ssrc)
        return TM_ENOTFOUND;
    tm__worker *w = sender->w;
    int n = tm_rtcp_build_pli(w->rtcp, sizeof w->rtcp - TRAILER_ROOM, sender->rtcp_ssrc, s->ssrc);
    if (n <= 0)
        return TM_EINVAL;
    s->last_pli_ms = now_ms;
    s->join_pli_due = false;
    send_rtcp(sender, w->rtcp, (size_t)n);
    count(&w->counters.plis_forwarded);
    if (s->stats)
        tm_stream_stats_on_pli_sent(s->stats);
    return 0;
}

static void request_keyframe(tm__peer *sender, tm__in_stream *s, bool joining)
{
    int64_t now = tm_mono_ms();
    /* A joining receiver cannot wait a second; repeated joins still cannot
     * make the sender encode keyframes back to back. */
    int64_t gap = joining || tm__keyframe_recovering(s, now) ? 200 : TM__PLI_INTERVAL_MS;
    if (!sender->srtp || !s->ssrc)
        return;
    if (s->last_pli_ms && now - s->last_pli_ms < gap) {
        /* The keyframe asked for earlier may have gone out before this
         * receiver was bound: ask again once the gap is over (the sender's
         * next packet checks) rather than leave it to the next keyframe. */
        if (joining)
            s->join_pli_due = true;
        return;
    }
    tm__forward_pli(sender, s, now);
}

/* ---- RTP ---- */

/* A simulcast layer's SSRCs are learned from the rid (RFC 8852) its first packets
 * carry: the rid names the layer, the repaired rid an rtx stream's layer. */
static tm__in_stream *learn_layer(tm__peer *p, const uint8_t *buf, const tm_rtp_header *h,
                                  bool *rtx)
{
    for (int i = 0; i < p->n_in; i++) {
        tm__in_stream *hd = &p->in[i];
        if (hd->n_layers == 0 || hd->layer != 0)
            continue;
        bool repair = hd->rtx_pt == h->pt && hd->ext_rrid;
        if (!repair && hd->pt != h->pt)
            continue;
        const uint8_t *rid;
        int n = tm_rtp_ext_find(buf, h, repair ? hd->ext_rrid : hd->ext_rid, &rid);
        for (int l = 0; n > 0 && l < hd->n_layers; l++) {
            tm__in_stream *s = &p->in[i + l];
            if ((size_t)n != strlen(s->rid) || memcmp(s->rid, rid, (size_t)n) != 0)
                continue;
            if (repair)
                s->rtx_ssrc = h->ssrc;
            else
                s->ssrc = h->ssrc;
            *rtx = repair;
            return s;
        }
    }
    return NULL;
}

/* The incoming stream a packet belongs to; *rtx when it is that stream's
 * retransmission (RFC 4588) rather than its media. */
static tm__in_stream *find_in(tm__peer *p, const uint8_t *buf, const tm_rtp_header *h, bool *rtx)
{
    uint32_t ssrc = h->ssrc;
    uint8_t pt = h->pt;
    *rtx = false;
    for (int i = 0; i < p->n_in; i++)
        if (p->in[i].ssrc == ssrc)
            return &p->in[i];
    /* BUNDLE payload types are unique per m-line, so the rtx pt names the stream. */
    for (int i = 0; i < p->n_in; i++) {
        tm__in_stream *s = &p->in[i];
        if (s->rtx_pt == pt && (s->rtx_ssrc == ssrc || (!s->rtx_ssrc && !s->n_layers))) {
            s->rtx_ssrc = ssrc;
            *rtx = true;
            return s;
        }
    }
    tm__in_stream *layer = learn_layer(p, buf, h, rtx);
    if (layer)
        return layer;
    /* No a=ssrc in the offer: the first unknown SSRC with the m-line's codec
     * payload type is that m-line's stream. */
    for (int i = 0; i < p->n_in; i++) {
        if (!p->in[i].ssrc && !p->in[i].n_layers && p->in[i].pt == pt) {
            p->in[i].ssrc = ssrc;
            return &p->in[i];
        }
    }
    return NULL;
}

/* Upstream loss: note gaps in the sender's sequence numbers and NACK them
 * (again after TM__NACK_RETRY_MS, at most TM__NACK_RETRIES times), so loss on
 * the sender's link is repaired before receivers see it. Runs per video packet. */
static void track_loss(tm__peer *from, tm__in_stream *s, uint16_t seq, int64_t now_ms)
{
    if (!s->have_seq) {
        s->have_seq = true;
        s->max_seq = seq;
        return;
    }
    if (tm_seq_newer(seq, s->max_seq)) {
        int32_t gap = tm_seq_diff(seq, s->max_seq) - 1;
        if (gap > TM__MISSING_MAX) {
            s->n_missing = 0; /* a jump (sender restart): nothing to repair */
        } else {
            for (int32_t k = 1; k <= gap; k++) {
                if (s->n_missing == TM__MISSING_MAX) {
                    memmove(&s->missing[0], &s->missing[1],
                            sizeof s->missing[0] * (TM__MISSING_MAX - 1));
                    s->n_missing--;
                }
                s->missing[s->n_missing].seq = (uint16_t)(s->max_seq + k);
                s->missing[s->n_missing].tries = 0;
                s->missing[s->n_missing].first_ms = now_ms;
                s->missing[s->n_missing].last_ms = 0;
                s->n_missing++;
            }
        }
        s->max_seq = seq;
    } else {
        for (int i = 0; i < s->n_missing; i++) {
            if (s->missing[i].seq == seq) {
                s->missing[i] = s->missing[--s->n_missing];
                break;
            }
        }
    }
    if (s->n_missing == 0)
        return;
    uint16_t due[TM__MISSING_MAX];
    int n_due = 0;
    for (int i = 0; i < s->n_missing;) {
        if (s->missing[i].tries >= TM__NACK_RETRIES ||
            now_ms - s->missing[i].first_ms > TM__NACK_GIVE_UP_MS) {
            s->missing[i] = s->missing[--s->n_missing];
            continue;
        }
        if (s->missing[i].tries == 0 || now_ms - s->missing[i].last_ms >= TM__NACK_RETRY_MS) {
            due[n_due++] = s->missing[i].seq;
            s->missing[i].tries++;
            s->missing[i].last_ms = now_ms;
        }
        i++;
    }
    if (n_due == 0)
        return;
    tm__worker *w = from->w;
    int n = tm_rtcp_build_nack(w->rtcp, sizeof w->rtcp - TRAILER_ROOM, from->rtcp_ssrc, s->ssrc,
                               due, (size_t)n_due);
    if (n <= 0)
        return;
    send_rtcp(from, w->rtcp, (size_t)n);
    atomic_fetch_add_explicit(&w->counters.nacks_sent, (uint64_t)n_due, memory_order_relaxed);
    if (s->stats)
        tm_stream_stats_on_nack_sent(s->stats, (unsigned)n_due);
}

static void forward_one(tm__worker *w, const tm__in_stream *s, tm__peer *r, tm__out_stream *o,
                        const uint8_t *buf, size_t len, const tm_rtp_header *h,
                        const tm_vp8_info *vp8, int64_t now_us)
{
    if (!r->srtp || r->closing || o->codec != s->codec)
        return;
    int64_t now_ms = now_us / 1000;
    uint8_t *pkt = w->pkt;
    memcpy(pkt, buf, len);
    tm__rw_result rw = tm__rtp_rewrite_packet(&o->rw, pkt, h, vp8, o->ssrc, o->clock, now_ms);
    if (rw == TM__RW_DROP)
        return;
    if (rw == TM__RW_REBASED && o->rtx)
        tm_rtx_cache_reset(o->rtx);
    tm_rtp_set_pt(pkt, (uint8_t)o->pt);
    if (h->extension) {
        int nl = tm_rtp_ext_remap(pkt, len, o->ext_map);
        if (nl < TM_RTP_HEADER_MIN)
            return;
        len = (size_t)nl;
    }
    len = tm__congestion_stamp(o, pkt, len, TM__PKT_CAP - TRAILER_ROOM, now_us);
    if (o->rtx)
        tm_rtx_cache_store(o->rtx, (uint16_t)(h->seq + o->rw.seq_off), pkt, len, now_ms);
    o->st.packets++;
    o->st.bytes += len;
    if (w->test_drop && o->kind == TM_MEDIA_VIDEO && ++w->test_drop_n % w->test_drop == 0)
        return;
    if (tm__srtp_protect_rtp(r->srtp, pkt, &len) == 0)
        tm__peer_send(r, pkt, len);
}

/* The recorder's copy: a plain stream as it comes; of a simulcast one the best layer,
 * switched at keyframes like a receiver's and numbered as one stream. */
static void record_packet(tm__worker *w, tm_recorder *rec, tm__in_stream *hd,
                          const tm__in_stream *s, const uint8_t *buf, size_t len,
                          const tm_rtp_header *h, bool keyframe_start, int64_t now_us)
{
    if (!hd->n_layers) {
        tm_recorder_push_at(rec, hd->rec_track1 - 1, buf, len, now_us); /* copies; never blocks */
        return;
    }
    if (!tm__layer_accept(&hd->rec_pick, s->layer, keyframe_start))
        return;
    memcpy(w->pkt, buf, len);
    if (tm__rtp_rewrite_packet(&hd->rec_rw, w->pkt, h, NULL, 1, hd->clock, now_us / 1000) !=
        TM__RW_DROP)
        tm_recorder_push_at(rec, hd->rec_track1 - 1, w->pkt, len, now_us);
}

/* Once per video packet: its VP8 descriptor (vi, NULL for other codecs) and whether
 * it starts a keyframe; the keyframe's size goes to the stream's figures. */
static bool inspect_video(tm__in_stream *s, const uint8_t *pl, size_t n, tm_vp8_info *vi,
                          const tm_vp8_info **vip)
{
    unsigned wd = 0, ht = 0;
    bool key = false;
    *vip = NULL;
    if (s->codec == TM_CODEC_VP8) {
        if (tm_vp8_parse(pl, n, vi) == 0) {
            *vip = vi;
            key = vi->keyframe;
            wd = vi->width;
            ht = vi->height;
        }
    } else if (tm_rtp_is_keyframe(s->codec, pl, n)) {
        /* H.264 (browsers send its simulcast rarely): any packet carrying an IDR or
         * an SPS counts, so a layer switch may land inside an IDR; the receiver's
         * PLI then brings the next one. */
        key = true;
        uint16_t w16 = 0, h16 = 0;
        if (s->codec == TM_CODEC_H264)
            tm_h264_sps_size(pl, n, &w16, &h16);
        wd = w16;
        ht = h16;
    }
    if (key) {
        if (s->stats)
            tm_stream_stats_on_keyframe(s->stats, (uint16_t)wd, (uint16_t)ht);
        if (wd && ht) {
            s->meter.width = wd;
            s->meter.height = ht;
        }
    }
    return key;
}

/* ---- audio levels and the active speaker ---- */

/* RFC 6464: one byte, V bit then the level in -dBov (0 loudest, 127 silence). */
static void note_audio_level(tm__in_stream *s, const uint8_t *buf, const tm_rtp_header *h,
                             int64_t now_ms)
{
    const uint8_t *d;
    if (tm_rtp_ext_find(buf, h, s->ext_level, &d) < 1)
        return;
    int32_t loud_q8 = (127 - (d[0] & 0x7f)) << 8;
    if (!s->level_ms)
        s->loud_q8 = loud_q8;
    s->loud_q8 += (loud_q8 - s->loud_q8) / 8;
    s->level_ms = now_ms;
}

static void post_speaker(tm__visit *v)
{
    tm_media_event ev = {.type = TM_MEDIA_EV_SPEAKER, .visit_id = v->id, .peer_id = v->speaker->id};
    tm__media_post(v->w, &ev);
}

/* Every SPEAKER_EVAL_MS: the loudest sender takes over once it has been the
 * loudest at every look for SPEAKER_HOLD_MS (at once when nobody holds the
 * floor), so a cough or a short reply does not switch everyone's view. */
static void choose_speaker(tm__visit *v, int64_t now_ms)
{
    v->speaker_eval_ms = now_ms + SPEAKER_EVAL_MS;
    tm__peer *loudest = NULL;
    int32_t best = SPEAKER_MIN_LOUD << 8;
    for (guint i = 0; i < v->peers->len; i++) {
        tm__peer *q = g_ptr_array_index(v->peers, i);
        for (int k = 0; k < q->n_in && !q->closing; k++) {
            const tm__in_stream *s = &q->in[k];
            if (s->level_ms && now_ms - s->level_ms < SPEAKER_FRESH_MS && s->loud_q8 > best) {
                best = s->loud_q8;
                loudest = q;
            }
        }
    }
    if (!loudest || loudest == v->speaker) {
        v->speaker_cand = NULL;
        return;
    }
    if (v->speaker_cand != loudest) {
        v->speaker_cand = loudest;
        v->cand_since_ms = now_ms;
    }
    if (v->speaker && now_ms - v->cand_since_ms < SPEAKER_HOLD_MS)
        return;
    v->speaker = loudest;
    v->speaker_cand = NULL;
    post_speaker(v);
}

void tm__forward_rtp(tm__peer *from, uint8_t *buf, size_t len, int64_t now_us)
{
    tm__worker *w = from->w; /* now_us is also the start of the latency measurement */
    tm_rtp_header h;
    if (len + TRAILER_ROOM + 64 > TM__PKT_CAP ||
        tm__srtp_unprotect_rtp(from->srtp, buf, &len) != 0 || tm_rtp_parse(buf, len, &h) != 0) {
        count(&w->counters.dropped_malformed);
        return;
    }
    tm__congestion_on_rtp(from, buf, &h, now_us); /* rtx and probes count too */
    bool rtx;
    tm__in_stream *s = find_in(from, buf, &h, &rtx);
    if (!s)
        return; /* a stream we did not accept */
    if (rtx) {
        /* Back to the original packet; a bare padding probe has no OSN. */
        int n = h.payload_len >= 2 ? tm_rtp_unwrap_rtx(buf, len, s->ssrc, (uint8_t)s->pt) : -1;
        if (n < TM_RTP_HEADER_MIN || tm_rtp_parse(buf, (size_t)n, &h) != 0)
            return;
        len = (size_t)n;
        count(&w->counters.rtx_received);
    } else if (h.pt != s->pt) {
        return;
    }
    if (w->test_drop_in && s->kind == TM_MEDIA_VIDEO && !rtx &&
        ++w->test_drop_in_n % w->test_drop_in == 0)
        return;
    int64_t now_ms = now_us / 1000;
    tm__visit *v = from->visit;
    if (s->kind == TM_MEDIA_VIDEO)
        track_loss(from, s, h.seq, now_ms);
    else if (s->ext_level && h.extension) {
        note_audio_level(s, buf, &h, now_ms);
        if (now_ms >= v->speaker_eval_ms)
            choose_speaker(v, now_ms);
    }
    if (s->join_pli_due)
        request_keyframe(from, s, true);
    if (!s->stats)
        s->stats = tm_stream_stats_new(s->ssrc, s->clock, s->kind == TM_MEDIA_VIDEO, 0);
    if (s->stats)
        tm_stream_stats_on_rtp(s->stats, h.seq, h.ts, h.marker, len, now_us);
    tm_vp8_info vi;
    const tm_vp8_info *vip = NULL;
    bool key = s->kind == TM_MEDIA_VIDEO && h.payload_len > 0 &&
               inspect_video(s, buf + h.payload_offset, h.payload_len, &vi, &vip);
    tm__in_stream *hd = s->n_layers ? &from->in[s->head] : s;
    if (s->n_layers) {
        s->meter_bytes += len;
        s->meter_rx_ms = now_ms;
    }
    if (v->rec_path && !v->rec && !v->rec_failed)
        tm__visit_record_maybe_start(v, now_ms); /* until it starts, once per visit */
    else if (v->rec && hd->rec_track1 == 0 && !v->rec_failed)
        tm__visit_record_next_part(v); /* a late joiner: once per grown sender set */
    if (v->rec && hd->rec_track1 > 0)
        record_packet(w, v->rec, hd, s, buf, len, &h, key, now_us);
    for (int i = 0; i < hd->n_bound; i++) {
        tm__peer *r = hd->bound_peer[i];
        tm__out_stream *o = &r->out[hd->bound_out[i]];
        if (hd->n_layers && !tm__layer_accept(&o->pick, s->layer, key))
            continue;
        forward_one(w, s, r, o, buf, len, &h, vip, now_us);
    }
    if (s->kf_tries)
        tm__keyframe_pace(from, s, key, now_ms);
    if (hd->n_bound > 0) {
        uint64_t us = (uint64_t)(g_get_monotonic_time() - now_us);
        uint64_t b = us / TM__LATENCY_STEP_US;
        atomic_fetch_add_explicit(
            &w->counters.latency[b < TM__LATENCY_BUCKETS ? b : TM__LATENCY_BUCKETS - 1], 1,
            memory_order_relaxed);
        if (us > atomic_load_explicit(&w->counters.latency_max_us, memory_order_relaxed))
            atomic_store_explicit(&w->counters.latency_max_us, us, memory_order_relaxed);
    }
}

/* ---- RTCP ---- */

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
        int n = tm_rtcp_build_sr(w->rtcp, sizeof w->rtcp - TRAILER_ROOM, &out);
        if (n <= 0)
            continue;
        o->sr_mid[o->sr_next] = tm_ntp_mid32(sr->ntp);
        o->sr_ms[o->sr_next] = now_ms;
        o->sr_next = (o->sr_next + 1) % TM_ARRAY_LEN(o->sr_mid);
        send_rtcp(r, w->rtcp, (size_t)n);
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
            len + TRAILER_ROOM > TM__PKT_CAP)
            continue;
        memcpy(w->pkt, cached, len);
        len = tm__congestion_stamp(o, w->pkt, len, TM__PKT_CAP - TRAILER_ROOM,
                                   g_get_monotonic_time());
        if (tm__srtp_protect_rtp(from->srtp, w->pkt, &len) != 0)
            continue;
        tm__peer_send(from, w->pkt, len);
        o->st.retransmits++;
        count(&w->counters.nacks_answered);
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
    request_keyframe(o->src_peer, src, fresh);
}

void tm__forward_rtcp(tm__peer *from, uint8_t *buf, size_t len, int64_t now_us)
{
    tm__worker *w = from->w;
    if (len + TRAILER_ROOM > TM__PKT_CAP || tm__srtp_unprotect_rtcp(from->srtp, buf, &len) != 0 ||
        tm_rtcp_validate(buf, len) != 0) {
        count(&w->counters.dropped_malformed);
        return;
    }
    int64_t now_ms = now_us / 1000;
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
}

/* ---- simulcast ---- */

void tm__forward_set_view(tm__peer *p, const char *src_peer_id, unsigned width, unsigned height)
{
    tm__view *vw = NULL;
    for (int i = 0; i < p->n_views && !vw; i++)
        if (strcmp(p->views[i].src_peer_id, src_peer_id) == 0)
            vw = &p->views[i];
    if (!vw) {
        if (p->n_views == TM__MAX_VIEWS) { /* the oldest goes: a visit has at most 8 */
            g_free(p->views[0].src_peer_id);
            memmove(&p->views[0], &p->views[1], sizeof p->views[0] * (TM__MAX_VIEWS - 1));
            p->n_views--;
        }
        vw = &p->views[p->n_views++];
        vw->src_peer_id = g_strdup(src_peer_id);
    }
    vw->width = width;
    vw->height = height;
}

static const tm__view *find_view(const tm__peer *r, const char *src_peer_id)
{
    for (int i = 0; i < r->n_views; i++)
        if (strcmp(r->views[i].src_peer_id, src_peer_id) == 0)
            return &r->views[i];
    return NULL;
}

/* A receiver's REMB is for everything it receives: each of its video streams gets an
 * even share of it. */
static uint64_t remb_share(const tm__peer *r, const tm__out_stream *o, int64_t now_ms)
{
    if (!o->remb_bps || now_ms - o->remb_ms >= REMB_FRESH_MS)
        return 0;
    uint64_t n = 0;
    for (int i = 0; i < r->n_out; i++)
        n += r->out[i].kind == TM_MEDIA_VIDEO && r->out[i].src_peer;
    return o->remb_bps / (n ? n : 1);
}

/* Receiver r's layer of the simulcast source o is bound to, from its REMB (or the
 * loss it reports) and its view of that sender; a new target gets a keyframe asked for. */
static void choose_layer(tm__peer *r, tm__out_stream *o, int64_t now_ms)
{
    tm__peer *q = o->src_peer;
    tm__in_stream *hd = &q->in[o->src_in];
    tm__layer_info layers[TM__MAX_LAYERS];
    int n = hd->n_layers < TM__MAX_LAYERS ? hd->n_layers : TM__MAX_LAYERS;
    for (int l = 0; l < n; l++)
        layers[l] = q->in[o->src_in + l].meter;
    tm__layer_limits lim = {
        .est_bps = remb_share(r, o, now_ms),
        .lossy = o->st.fraction_lost > 25, /* of 256: over 10 % */
    };
    const tm__view *vw = find_view(r, q->id);
    if (vw) {
        lim.view_set = true;
        lim.view_w = vw->width;
        lim.view_h = vw->height;
    }
    if (tm__layer_choose(&o->pick, layers, n, &lim, now_ms) && o->pick.target >= 0) {
        const tm__in_stream *t = &q->in[o->src_in + o->pick.target];
        tm_info("media.layer",
                "visit=%s peer=%s src=%s rid=%s width=%u est_bps=%" PRIu64 " lossy=%d",
                r->visit->id, r->id, q->id, t->rid, t->meter.width, lim.est_bps, (int)lim.lossy);
    } else if (!tm__layer_overdue(&o->pick, now_ms)) {
        return;
    }
    if (r->srtp)
        request_keyframe(q, &q->in[o->src_in + o->pick.target], true);
}

/* Once a second, as a sender: what each of p's layers carried; the recorder moves to
 * the best one. */
static void meter_layers(tm__peer *p, int64_t now_ms)
{
    for (int i = 0; i < p->n_in; i++) {
        tm__in_stream *s = &p->in[i];
        if (!s->n_layers)
            continue;
        s->meter.bps = (s->meter.bps + s->meter_bytes * 8) / 2;
        s->meter_bytes = 0;
        s->meter.active = s->meter_rx_ms && now_ms - s->meter_rx_ms < 1500;
    }
    for (int i = 0; i < p->n_in; i++) {
        tm__in_stream *hd = &p->in[i];
        if (!hd->n_layers || hd->layer != 0 || !hd->rec_track1)
            continue;
        tm__layer_info layers[TM__MAX_LAYERS];
        int n = hd->n_layers < TM__MAX_LAYERS ? hd->n_layers : TM__MAX_LAYERS;
        for (int l = 0; l < n; l++)
            layers[l] = p->in[i + l].meter;
        int best = tm__layer_best(layers, n);
        if (best >= 0 && best != hd->rec_pick.target) {
            hd->rec_pick.target = best;
            hd->rec_pick.asked_ms = now_ms;
            request_keyframe(p, &p->in[i + best], true);
        } else if (tm__layer_overdue(&hd->rec_pick, now_ms)) {
            request_keyframe(p, &p->in[i + hd->rec_pick.target], true);
        }
    }
}

/* Once a second, as a receiver: the layer of each simulcast source it gets. */
static void choose_layers(tm__peer *r, int64_t now_ms)
{
    for (int i = 0; i < r->n_out; i++) {
        tm__out_stream *o = &r->out[i];
        if (o->src_peer && o->src_in >= 0 && o->src_in < o->src_peer->n_in &&
            o->src_peer->in[o->src_in].n_layers)
            choose_layer(r, o, now_ms);
    }
}

/* What a simulcast sender is asked to send: what its best layer needs, which is the
 * most any receiver can take (each gets the layer that fits it), or all it may when a
 * receiver has said nothing yet or the visit is recorded (the recorder takes the best). */
static uint64_t simulcast_remb(const tm__peer *p, const tm__in_stream *hd, int64_t now_ms)
{
    if (p->visit->rec_path || hd->n_bound == 0)
        return TM__REMB_CAP_BPS;
    uint64_t most = 0;
    for (int b = 0; b < hd->n_bound; b++) {
        const tm__out_stream *o = &hd->bound_peer[b]->out[hd->bound_out[b]];
        if (!o->remb_bps || now_ms - o->remb_ms >= REMB_FRESH_MS)
            return TM__REMB_CAP_BPS;
        most = o->remb_bps > most ? o->remb_bps : most;
    }
    return most;
}

/* ---- binding ---- */

void tm__forward_unbind(tm__visit *v, tm__peer *p)
{
    if (v->speaker == p)
        v->speaker = NULL;
    if (v->speaker_cand == p)
        v->speaker_cand = NULL;
    for (guint i = 0; i < v->peers->len; i++) {
        tm__peer *q = g_ptr_array_index(v->peers, i);
        for (int k = 0; k < q->n_in; k++) {
            tm__in_stream *s = &q->in[k];
            int j = 0;
            for (int b = 0; b < s->n_bound; b++) {
                if (s->bound_peer[b] != p) {
                    s->bound_peer[j] = s->bound_peer[b];
                    s->bound_out[j] = s->bound_out[b];
                    j++;
                }
            }
            s->n_bound = j;
        }
        for (int k = 0; k < q->n_out; k++)
            if (q->out[k].src_peer == p)
                q->out[k].src_peer = NULL;
    }
}

/* Whether o's source is still a stream of a sender that is in the visit. */
static bool binding_alive(tm__visit *v, tm__peer *r, const tm__out_stream *o)
{
    tm__peer *q = o->src_peer;
    if (!q || q == r || q->closing || o->src_in < 0 || o->src_in >= q->n_in ||
        q->in[o->src_in].kind != o->kind ||
        (q->in[o->src_in].n_layers && q->in[o->src_in].layer != 0))
        return false;
    for (guint i = 0; i < v->peers->len; i++)
        if (g_ptr_array_index(v->peers, i) == q)
            return true;
    return false;
}

static bool stream_bound_to(const tm__peer *r, const tm__peer *q, int k)
{
    for (int i = 0; i < r->n_out; i++)
        if (r->out[i].src_peer == q && r->out[i].src_in == k)
            return true;
    return false;
}

static void bind_out(tm__peer *r, int oi, tm__peer *q, int k)
{
    tm__out_stream *o = &r->out[oi];
    tm__in_stream *s = &q->in[k];
    bool changed = o->src_peer != q || o->src_in != k;
    o->src_peer = q;
    o->src_in = k;
    memset(o->ext_map, 0, sizeof o->ext_map);
    if (s->ext_abs > 0 && s->ext_abs < 256 && o->ext_abs > 0 && o->ext_abs < 256)
        o->ext_map[s->ext_abs] = (uint8_t)o->ext_abs;
    if (s->ext_level > 0 && s->ext_level < 256 && o->ext_level > 0 && o->ext_level < 256)
        o->ext_map[s->ext_level] = (uint8_t)o->ext_level;
    if (s->n_bound < TM__MAX_BOUND) {
        s->bound_peer[s->n_bound] = r;
        s->bound_out[s->n_bound] = oi;
        s->n_bound++;
    }
    if (changed)
        tm__layer_pick_init(&o->pick);
    if (changed && s->n_layers)
        choose_layer(r, o, tm_mono_ms());
    else if (changed && r->srtp && s->kind == TM_MEDIA_VIDEO)
        request_keyframe(q, s, true);
}

/* Tells the receiver what its m-lines carry, when that changed since it was last told. */
static void post_bindings(tm__peer *r, bool always)
{
    tm_media_binding b[TM__MAX_STREAMS];
    bool changed = always;
    int n = r->n_out < TM__MAX_STREAMS ? r->n_out : TM__MAX_STREAMS;
    for (int i = 0; i < n; i++) {
        tm__out_stream *o = &r->out[i];
        uint64_t seq1 = o->src_peer ? o->src_peer->join_seq + 1 : 0;
        changed = changed || seq1 != o->told_src_seq1;
        o->told_src_seq1 = seq1;
        b[i] = (tm_media_binding){.mid = o->mid,
                                  .video = o->kind == TM_MEDIA_VIDEO,
                                  .src_peer_id = o->src_peer ? o->src_peer->id : NULL};
    }
    if (!changed || n == 0 || r->w->stopping)
        return;
    tm_media_event ev = {.type = TM_MEDIA_EV_BINDINGS,
                         .visit_id = r->visit->id,
                         .peer_id = r->id,
                         .bindings = b,
                         .n_bindings = (size_t)n};
    tm__media_post(r->w, &ev);
}

/* Binds one receiver's out streams of one kind: a binding whose sender is
 * still there stays on its m-line (its receiver sees no interruption when
 * others join or leave); streams not yet bound take the free m-lines in
 * join order. */
static void rebind_kind(tm__visit *v, tm__peer *r, tm_media_kind kind)
{
    for (int oi = 0; oi < r->n_out; oi++) {
        tm__out_stream *o = &r->out[oi];
        if (o->kind != kind)
            continue;
        if (binding_alive(v, r, o))
            bind_out(r, oi, o->src_peer, o->src_in);
        else
            o->src_peer = NULL;
    }
    int next_free = 0;
    for (guint si = 0; si < v->peers->len; si++) {
        tm__peer *q = g_ptr_array_index(v->peers, si);
        if (q == r || q->closing)
            continue;
        for (int k = 0; k < q->n_in; k++) {
            if (q->in[k].kind != kind || (q->in[k].n_layers && q->in[k].layer != 0) ||
                stream_bound_to(r, q, k))
                continue; /* a simulcast m-line binds by its first layer */
            while (next_free < r->n_out &&
                   (r->out[next_free].kind != kind || r->out[next_free].src_peer))
                next_free++;
            if (next_free >= r->n_out)
                return; /* more senders than m-lines: the client adds transceivers */
            bind_out(r, next_free, q, k);
        }
    }
}

void tm__forward_rebind(tm__visit *v)
{
    for (guint i = 0; i < v->peers->len; i++) {
        tm__peer *q = g_ptr_array_index(v->peers, i);
        for (int k = 0; k < q->n_in; k++)
            q->in[k].n_bound = 0;
    }
    for (guint ri = 0; ri < v->peers->len; ri++) {
        tm__peer *r = g_ptr_array_index(v->peers, ri);
        rebind_kind(v, r, TM_MEDIA_AUDIO);
        rebind_kind(v, r, TM_MEDIA_VIDEO);
        post_bindings(r, r->bindings_due);
        r->bindings_due = false;
    }
}

void tm__forward_keyframes_all(tm__visit *v)
{
    for (guint i = 0; i < v->peers->len; i++) {
        tm__peer *q = g_ptr_array_index(v->peers, i);
        for (int k = 0; k < q->n_in; k++)
            if (q->in[k].kind == TM_MEDIA_VIDEO)
                request_keyframe(q, &q->in[k], true);
    }
}

/* ---- once a second ---- */

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
        /* The sender adapts to the weakest receiver that told us its estimate. */
        for (int b = 0; b < s->n_bound; b++) {
            tm__out_stream *o = &s->bound_peer[b]->out[s->bound_out[b]];
            if (o->remb_bps && now_ms - o->remb_ms < REMB_FRESH_MS && o->remb_bps < remb)
                remb = o->remb_bps;
        }
    }
    if (remb < TM__REMB_MIN_BPS)
        remb = TM__REMB_MIN_BPS;
    size_t cap = sizeof w->rtcp - TRAILER_ROOM, len = 0;
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
    send_rtcp(p, w->rtcp, len);
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
                         .n_streams = n};
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
    meter_layers(p, now_ms);
    choose_layers(p, now_ms);
    send_reports(p, now_ms);
    post_stats(p, now_ms);
}

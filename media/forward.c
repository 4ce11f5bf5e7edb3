/*
 * forward.c - the per-visit router's RTP path: a sender's packet goes to every
 * receiver bound to that stream with SSRC, payload type, sequence number,
 * timestamp and header extension ids rewritten per receiver; upstream gaps
 * are NACKed, audio levels pick the active speaker, keyframe requests to a
 * sender are paced here. The router's other rooms: forward_rtcp.c (feedback
 * the other way), forward_bind.c (which receiver gets which stream, simulcast
 * layers), forward_tick.c (once a second: reports, REMB, stats).
 *
 * Hot path (tm__forward_rtp): no allocation, no lock, no logging; scratch
 * buffers belong to the worker. Runs on the visit's worker thread.
 */
#include <string.h>

#include "forward_internal.h"

#define SPEAKER_EVAL_MS 250
#define SPEAKER_HOLD_MS 1500        /* loudest this long before taking over */
#define SPEAKER_FRESH_MS 1000       /* no level for this long: not speaking */
#define SPEAKER_MIN_LOUD (127 - 70) /* quieter than -70 dBov is nobody speaking */

void tm__forward_send_rtcp(tm__peer *to, uint8_t *buf, size_t len)
{
    if (!to->srtp || to->closing || len + TM__SRTP_MAX_TRAILER > TM__PKT_CAP)
        return;
    if (tm__srtp_protect_rtcp(to->srtp, buf, &len) == 0)
        tm__peer_send(to, buf, len);
}

int tm__forward_pli(tm__peer *sender, tm__in_stream *s, int64_t now_ms)
{
    if (!sender->srtp || sender->closing || !s->ssrc)
        return TM_ENOTFOUND;
    tm__worker *w = sender->w;
    int n = tm_rtcp_build_pli(w->rtcp, sizeof w->rtcp - TM__SRTP_MAX_TRAILER, sender->rtcp_ssrc,
                              s->ssrc);
    if (n <= 0)
        return TM_EINVAL;
    s->last_pli_ms = now_ms;
    s->join_pli_due = false;
    tm__forward_send_rtcp(sender, w->rtcp, (size_t)n);
    tm__forward_count(&w->counters.plis_forwarded);
    if (s->stats)
        tm_stream_stats_on_pli_sent(s->stats);
    return 0;
}

void tm__forward_keyframe_request(tm__peer *sender, tm__in_stream *s, bool joining)
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
         * next packet checks) rather than leave it to the next keyframe.
         * One not begun yet serves this receiver too: a join's requests (the
         * joiner's, the recording's next part) cost the sender one encode. */
        if (joining && s->key_ms >= s->last_pli_ms)
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
 * the sender's link is repaired before receivers see it. Runs per video packet;
 * returns false for a packet older than the newest that fills no gap (one the
 * server has had already). */
static bool track_loss(tm__peer *from, tm__in_stream *s, uint16_t seq, int64_t now_ms)
{
    bool fills = true;
    if (!s->have_seq) {
        s->have_seq = true;
        s->max_seq = seq;
        return true;
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
        fills = false;
        for (int i = 0; i < s->n_missing && !fills; i++) {
            if (s->missing[i].seq == seq) {
                s->missing[i] = s->missing[--s->n_missing];
                fills = true;
            }
        }
    }
    if (s->n_missing == 0)
        return fills;
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
        return fills;
    tm__worker *w = from->w;
    int n = tm_rtcp_build_nack(w->rtcp, sizeof w->rtcp - TM__SRTP_MAX_TRAILER, from->rtcp_ssrc,
                               s->ssrc, due, (size_t)n_due);
    if (n <= 0)
        return fills;
    tm__forward_send_rtcp(from, w->rtcp, (size_t)n);
    atomic_fetch_add_explicit(&w->counters.nacks_sent, (uint64_t)n_due, memory_order_relaxed);
    if (s->stats)
        tm_stream_stats_on_nack_sent(s->stats, (unsigned)n_due);
    return fills;
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
    len = tm__congestion_stamp(r, o, pkt, len, TM__PKT_CAP - TM__SRTP_MAX_TRAILER, now_us);
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

bool tm__forward_rtp(tm__peer *from, uint8_t *buf, size_t len, int64_t now_us)
{
    tm__worker *w = from->w; /* now_us is also the start of the latency measurement */
    tm_rtp_header h;
    if (len + TM__SRTP_MAX_TRAILER + 64 > TM__PKT_CAP ||
        tm__srtp_unprotect_rtp(from->srtp, buf, &len) != 0 || tm_rtp_parse(buf, len, &h) != 0) {
        tm__forward_count(&w->counters.dropped_malformed);
        return false;
    }
    if (!from->srtp_heard_ms)
        from->srtp_heard_ms = now_us / 1000;
    tm__congestion_on_rtp(from, buf, &h, now_us); /* rtx and probes count too */
    bool rtx;
    tm__in_stream *s = find_in(from, buf, &h, &rtx);
    if (!s)
        return true; /* a stream we did not accept */
    if (rtx) {
        /* Back to the original packet; a bare padding probe has no OSN. */
        int n = h.payload_len >= 2 ? tm_rtp_unwrap_rtx(buf, len, s->ssrc, (uint8_t)s->pt) : -1;
        if (n < TM_RTP_HEADER_MIN || tm_rtp_parse(buf, (size_t)n, &h) != 0)
            return true;
        len = (size_t)n;
        tm__forward_count(&w->counters.rtx_received);
    } else if (h.pt != s->pt) {
        return true;
    }
    if (w->test_drop_in && s->kind == TM_MEDIA_VIDEO && !rtx &&
        ++w->test_drop_in_n % w->test_drop_in == 0)
        return true;
    int64_t now_ms = now_us / 1000;
    tm__visit *v = from->visit;
    if (s->kind == TM_MEDIA_VIDEO) {
        /* A retransmission of a packet we have is the sender's padding (Chromium
         * pads simulcast up to its layers' minimum with old packets over rtx):
         * forwarded, it took receivers' downlinks, and metered, a low layer read
         * as costlier than the next one up, which kept a receiver from stepping up. */
        if (!track_loss(from, s, h.seq, now_ms) && rtx) {
            tm__forward_count(&w->counters.rtx_redundant);
            return true;
        }
    } else if (s->ext_level && h.extension) {
        note_audio_level(s, buf, &h, now_ms);
        if (now_ms >= v->speaker_eval_ms)
            choose_speaker(v, now_ms);
    }
    if (s->join_pli_due)
        tm__forward_keyframe_request(from, s, true);
    if (!s->stats)
        s->stats = tm_stream_stats_new(s->ssrc, s->clock, s->kind == TM_MEDIA_VIDEO, 0);
    if (s->stats)
        tm_stream_stats_on_rtp(s->stats, h.seq, h.ts, h.marker, len, now_us);
    tm_vp8_info vi;
    const tm_vp8_info *vip = NULL;
    bool key = s->kind == TM_MEDIA_VIDEO && h.payload_len > 0 &&
               inspect_video(s, buf + h.payload_offset, h.payload_len, &vi, &vip);
    if (key)
        s->key_ms = now_ms;
    tm__in_stream *hd = s->n_layers ? &from->in[s->head] : s;
    if (s->n_layers) {
        s->meter_bytes +=
            h.payload_len ? len : 0; /* a padding-only packet says nothing of the layer */
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
    if (hd->n_bound == 0)
        return true;
    if (w->tx_queueing)
        w->lat_pending++; /* timed once its batch's sendmmsg is done (ice.c) */
    else
        tm__forward_note_latency(w, now_us, 1);
    return true;
}

void tm__forward_note_latency(tm__worker *w, int64_t since_us, unsigned n)
{
    uint64_t us = (uint64_t)(g_get_monotonic_time() - since_us);
    uint64_t b = us / TM__LATENCY_STEP_US;
    atomic_fetch_add_explicit(
        &w->counters.latency[b < TM__LATENCY_BUCKETS ? b : TM__LATENCY_BUCKETS - 1], n,
        memory_order_relaxed);
    if (us > atomic_load_explicit(&w->counters.latency_max_us, memory_order_relaxed))
        atomic_store_explicit(&w->counters.latency_max_us, us, memory_order_relaxed);
}

/*
 * congestion.c - transport-cc feedback to each sender from the arrival times
 * of its packets, the receivers' loss in the RR to a sender, and per
 * receiver our own transport-wide numbers on what we forward, whose feedback
 * feeds that receiver's downlink estimate (bwe.c; congestion.h says why). The
 * feedback to a sender rides on the sender's own packets, like keyframe.c's
 * pacing: a sender that sends nothing has nothing to be told.
 *
 * Feedback layout (draft-holmer-rmcat-transport-wide-cc-extensions-01 3.1):
 * base sequence number, status count, 24-bit reference time in 64 ms units,
 * a feedback counter, packet status chunks, then one receive delta per
 * received packet in 250 us ticks (one byte when 0..255, else two, signed).
 * Runs on the peer's media worker thread; no allocation.
 */
#include <limits.h>
#include <string.h>

#include "media_internal.h"

#define REF_UNIT_US 64000
#define TICK_US 250
#define RUN_MIN 14 /* a run this long is cheaper as one run-length chunk */
#define RECEIVER_REPORT_FRESH_MS 5000

enum { ST_LOST = 0, ST_SMALL = 1, ST_LARGE = 2 };

static inline void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void wr32(uint8_t *p, uint32_t v)
{
    wr16(p, (uint16_t)(v >> 16));
    wr16(p + 2, (uint16_t)v);
}

int tm__twcc_offer_ext(const tm_sdp_offer *offer)
{
    for (unsigned i = 0; i < offer->n_mlines; i++) {
        const tm_sdp_mline *m = &offer->mlines[i];
        const tm_sdp_codec *c = m->ext_twcc ? tm_sdp_mline_codec(m) : NULL;
        for (unsigned k = 0; c && k < c->n_fb; k++)
            if (strcmp(c->fb[k], "transport-cc") == 0)
                return m->ext_twcc;
    }
    return 0;
}

void tm__twcc_configure(tm__twcc *t, int ext_id, bool new_transport)
{
    if (!new_transport && t->ext_id == ext_id)
        return;
    memset(t, 0, sizeof *t);
    t->ext_id = ext_id;
}

static int64_t arrival_of(const tm__twcc *t, uint32_t ext)
{
    unsigned i = ext % TM__TWCC_SLOTS;
    return t->slot_us[i] && t->slot_seq[i] == ext ? t->slot_us[i] : 0;
}

void tm__twcc_on_packet(tm__twcc *t, uint16_t seq, int64_t arrival_us)
{
    uint32_t ext = tm_seq_tracker_update(&t->seqs, seq);
    if (t->started && ext < t->next && t->next - ext > TM__TWCC_SLOTS) {
        /* The sender's numbering started over (its transport was rebuilt). */
        tm_seq_tracker_init(&t->seqs);
        ext = tm_seq_tracker_update(&t->seqs, seq);
        t->started = false;
    }
    if (!t->started) {
        t->started = true;
        t->next = t->max = ext;
    }
    if (ext < t->next)
        return; /* later than the feedback that called it lost */
    if (ext - t->next >= TM__TWCC_SLOTS)
        t->next = ext - TM__TWCC_SLOTS + 1; /* older ones no longer fit: not reported */
    if (ext > t->max)
        t->max = ext;
    t->slot_seq[ext % TM__TWCC_SLOTS] = ext;
    t->slot_us[ext % TM__TWCC_SLOTS] = arrival_us;
}

bool tm__twcc_due(const tm__twcc *t, int64_t now_us)
{
    return t->started && t->next <= t->max && now_us - t->last_fb_us >= TM__TWCC_INTERVAL_US;
}

/* Status chunks for n statuses at out; returns the bytes written. */
static size_t write_chunks(uint8_t *out, const uint8_t *st, size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i < n;) {
        size_t run = 1;
        while (i + run < n && st[i + run] == st[i] && run < 0x1fff)
            run++;
        uint16_t chunk;
        if (run >= RUN_MIN) {
            chunk = (uint16_t)((st[i] << 13) | run);
            i += run;
        } else {
            chunk = 0xc000; /* status vector, two bits a symbol, seven symbols */
            for (size_t k = 0; k < 7 && i < n; k++, i++)
                chunk |= (uint16_t)(st[i] << (12 - 2 * k));
        }
        wr16(out + len, chunk);
        len += 2;
    }
    return len;
}

/* The first received packet at or after t->next, within one feedback's
 * reach; older lost ones that cannot share its feedback are let go. */
static bool first_received(tm__twcc *t, uint32_t *first)
{
    for (uint32_t e = t->next; e <= t->max; e++) {
        if (!arrival_of(t, e))
            continue;
        if (e - t->next >= TM__TWCC_MAX_PER_FB)
            t->next = e;
        *first = e;
        return true;
    }
    t->next = t->max + 1;
    return false;
}

int tm__twcc_build(tm__twcc *t, uint8_t *buf, size_t cap, uint32_t sender_ssrc, uint32_t media_ssrc,
                   int64_t now_us)
{
    uint8_t st[TM__TWCC_MAX_PER_FB];
    int16_t delta[TM__TWCC_MAX_PER_FB];
    uint32_t first;
    if (!t->started || t->next > t->max || !first_received(t, &first))
        return 0;
    int64_t ref = arrival_of(t, first) / REF_UNIT_US;
    int64_t at = ref * REF_UNIT_US; /* the time the deltas so far add up to */
    size_t n = 0, n_deltas = 0;
    for (uint32_t e = t->next; e <= t->max && n < TM__TWCC_MAX_PER_FB; e++) {
        int64_t us = arrival_of(t, e);
        if (!us) {
            st[n++] = ST_LOST;
            continue;
        }
        int64_t d = us - at;
        d = d >= 0 ? (d + TICK_US / 2) / TICK_US : -((-d + TICK_US / 2) / TICK_US);
        if (d < INT16_MIN || d > INT16_MAX)
            break; /* too far from the previous one: it opens the next feedback */
        st[n++] = d >= 0 && d <= 255 ? ST_SMALL : ST_LARGE;
        delta[n_deltas++] = (int16_t)d;
        at += d * TICK_US;
    }
    while (n > 0 && st[n - 1] == ST_LOST)
        n--; /* a feedback ends at a packet that arrived */

    uint8_t chunks[2 * TM__TWCC_MAX_PER_FB];
    size_t chunk_len = write_chunks(chunks, st, n);
    size_t len = 20 + chunk_len, k = 0;
    for (size_t i = 0; i < n; i++)
        if (st[i] != ST_LOST)
            len += st[i] == ST_SMALL ? 1 : 2;
    size_t pad = (4 - len % 4) % 4;
    if (len + pad > cap)
        return TM_ETOOBIG;
    buf[0] = (uint8_t)(0x80 | (pad ? 0x20 : 0) | TM_RTCP_FMT_TWCC);
    buf[1] = TM_RTCP_RTPFB;
    wr16(buf + 2, (uint16_t)((len + pad) / 4 - 1));
    wr32(buf + 4, sender_ssrc);
    wr32(buf + 8, media_ssrc);
    wr16(buf + 12, (uint16_t)t->next);
    wr16(buf + 14, (uint16_t)n);
    wr32(buf + 16, (uint32_t)(((uint64_t)ref & 0xffffff) << 8) | t->fb_count++);
    memcpy(buf + 20, chunks, chunk_len);
    size_t off = 20 + chunk_len;
    for (size_t i = 0; i < n; i++) {
        if (st[i] == ST_SMALL) {
            buf[off++] = (uint8_t)delta[k++];
        } else if (st[i] == ST_LARGE) {
            wr16(buf + off, (uint16_t)delta[k++]);
            off += 2;
        }
    }
    if (pad) {
        memset(buf + off, 0, pad);
        buf[off + pad - 1] = (uint8_t)pad;
    }
    t->next += (uint32_t)n;
    t->last_fb_us = now_us;
    return (int)(len + pad);
}

void tm__loss_fold_apply(tm__loss_fold *f, tm_rtcp_report_block *rb, uint8_t receivers_lost)
{
    if (f->have && receivers_lost > rb->fraction_lost) {
        uint32_t expected = rb->highest_seq - f->last_highest;
        if (expected < 0x8000)
            f->extra_lost += expected * (uint32_t)(receivers_lost - rb->fraction_lost) / 256;
        rb->fraction_lost = receivers_lost;
    }
    int64_t lost = (int64_t)rb->cumulative_lost + f->extra_lost;
    rb->cumulative_lost = lost > 0x7fffff ? 0x7fffff : (int32_t)lost;
    f->last_highest = rb->highest_seq;
    f->have = true;
}

/* ---- header extensions written per hop ---- */

/* Opens room bytes at off, moving what follows; false when cap has no room. */
static bool open_gap(uint8_t *pkt, size_t *len, size_t cap, size_t off, size_t room)
{
    if (*len + room > cap)
        return false;
    memmove(pkt + off + room, pkt + off, *len - off);
    memset(pkt + off, 0, room);
    *len += room;
    return true;
}

/* Where the last element of a one-byte block ends (padding after it is free). */
static size_t one_byte_used(const uint8_t *pkt, const tm_rtp_header *h)
{
    size_t i = 0, used = 0;
    while (i < h->ext_len) {
        uint8_t b = pkt[h->ext_offset + i];
        if (b == 0) {
            i++;
            continue;
        }
        if ((b >> 4) == 15)
            break;
        i += 2u + (b & 0x0f);
        used = i;
    }
    return used < h->ext_len ? used : h->ext_len;
}

static void put_element(uint8_t *at, int id, const uint8_t *data, size_t n)
{
    at[0] = (uint8_t)((id << 4) | (n - 1));
    memcpy(at + 1, data, n);
}

int tm__rtp_ext_put(uint8_t *pkt, size_t len, size_t cap, int id, const uint8_t *data, size_t n)
{
    tm_rtp_header h;
    const uint8_t *d;
    if (id < 1 || id > 14 || n < 1 || n > 3 || len > INT_MAX || tm_rtp_parse(pkt, len, &h) != 0)
        return TM_EINVAL;
    if (h.extension && h.ext_profile != TM_RTP_EXT_ONE_BYTE)
        return TM_EINVAL;
    int found = h.extension ? tm_rtp_ext_find(pkt, &h, id, &d) : TM_ENOTFOUND;
    if (found == (int)n) {
        put_element(pkt + (d - pkt) - 1, id, data, n);
        return (int)len;
    }
    if (found != TM_ENOTFOUND)
        return TM_EINVAL;
    if (!h.extension) {
        size_t off = h.header_len;
        if (!open_gap(pkt, &len, cap, off, 8))
            return TM_ETOOBIG;
        pkt[0] |= 0x10;
        pkt[off] = 0xBE, pkt[off + 1] = 0xDE, pkt[off + 2] = 0, pkt[off + 3] = 1;
        put_element(pkt + off + 4, id, data, n);
        return (int)len;
    }
    size_t used = one_byte_used(pkt, &h);
    if (h.ext_len - used < n + 1) {
        if (h.ext_len / 4 + 1 > 0xffff || !open_gap(pkt, &len, cap, h.header_len, 4))
            return TM_ETOOBIG;
        uint16_t words = (uint16_t)(h.ext_len / 4 + 1);
        pkt[h.ext_offset - 2] = (uint8_t)(words >> 8);
        pkt[h.ext_offset - 1] = (uint8_t)words;
    }
    put_element(pkt + h.ext_offset + used, id, data, n);
    return (int)len;
}

size_t tm__abs_send_time_put(uint8_t *pkt, size_t len, size_t cap, int id, int64_t now_us)
{
    uint32_t v = (uint32_t)((((uint64_t)now_us << 18) / 1000000) & 0xffffff);
    uint8_t data[3] = {(uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    int n = tm__rtp_ext_put(pkt, len, cap, id, data, sizeof data);
    return n > 0 ? (size_t)n : len;
}

/* ---- the peer's side ---- */

struct tm__peer_cc {
    tm__twcc twcc; /* feedback to the peer as a sender */
    tm__bwe bwe;   /* its downlink, from its feedback as a receiver (bwe.c) */
};

int tm__congestion_ext(const tm__peer *p)
{
    return p->cc ? p->cc->twcc.ext_id : 0;
}

void tm__congestion_free(tm__peer *p)
{
    g_free(p->cc);
    p->cc = NULL;
}

void tm__congestion_on_rtp(tm__peer *p, const uint8_t *buf, const tm_rtp_header *h, int64_t now_us)
{
    const uint8_t *d;
    int ext = tm__congestion_ext(p);
    if (!ext || !h->extension || tm_rtp_ext_find(buf, h, ext, &d) < 2)
        return;
    tm__twcc_on_packet(&p->cc->twcc, (uint16_t)((d[0] << 8) | d[1]), now_us);
    if (!tm__twcc_due(&p->cc->twcc, now_us) || !p->srtp || p->closing)
        return;
    tm__worker *w = p->w;
    int n;
    while ((n = tm__twcc_build(&p->cc->twcc, w->rtcp, sizeof w->rtcp - TM__SRTP_MAX_TRAILER,
                               p->rtcp_ssrc, h->ssrc, now_us)) > 0) {
        size_t len = (size_t)n;
        if (tm__srtp_protect_rtcp(p->srtp, w->rtcp, &len) == 0)
            tm__peer_send(p, w->rtcp, len);
    }
}

uint8_t tm__congestion_receivers_lost(const tm__peer *p, const tm__in_stream *s, int64_t now_ms)
{
    const tm__in_stream *hd = s->n_layers ? &p->in[s->head] : s;
    uint8_t worst = 0;
    for (int b = 0; b < hd->n_bound; b++) {
        const tm__out_stream *o = &hd->bound_peer[b]->out[hd->bound_out[b]];
        if (s->n_layers && o->pick.cur != s->layer)
            continue; /* that receiver gets another layer */
        if (o->st.rr_ms && now_ms - o->st.rr_ms < RECEIVER_REPORT_FRESH_MS &&
            o->st.fraction_lost > worst)
            worst = o->st.fraction_lost;
    }
    return worst;
}

void tm__congestion_configure(tm__peer *p, int ext_id, bool new_transport)
{
    if (!p->cc && ext_id == 0)
        return;
    if (!p->cc && !(p->cc = g_try_new0(tm__peer_cc, 1)))
        return;
    if (new_transport || p->cc->twcc.ext_id != ext_id)
        tm__bwe_init(&p->cc->bwe);
    tm__twcc_configure(&p->cc->twcc, ext_id, new_transport);
}

size_t tm__congestion_stamp(tm__peer *r, const tm__out_stream *o, uint8_t *pkt, size_t len,
                            size_t cap, int64_t now_us)
{
    int ext = tm__congestion_ext(r);
    if (ext) {
        /* A number taken by a packet that could not carry it would read as lost. */
        uint16_t seq = tm__bwe_next_seq(&r->cc->bwe);
        uint8_t data[2] = {(uint8_t)(seq >> 8), (uint8_t)seq};
        int n = tm__rtp_ext_put(pkt, len, cap, ext, data, sizeof data);
        if (n <= 0)
            return len;
        tm__bwe_sent(&r->cc->bwe, (size_t)n + TM__SRTP_MAX_TRAILER, now_us);
        return (size_t)n;
    }
    /* A receiver without transport-cc estimates with REMB from abs-send-time,
     * which a transport-cc sender no longer writes; a receiver of several senders
     * gets it per hop too: their clocks interleaved, and the senders' uplinks and
     * our own queueing in its figures, held its REMB near the floor on a link
     * that was fine. (One sender's own time stays: its uplink is in the REMB that
     * receiver's estimate becomes for it.) */
    if (o->kind != TM_MEDIA_VIDEO || !o->src_peer ||
        (!tm__congestion_ext(o->src_peer) && !r->video_mixed))
        return len;
    return tm__abs_send_time_put(pkt, len, cap, o->ext_abs, now_us);
}

void tm__congestion_on_feedback(tm__peer *from, const tm_rtcp_pkt *pkt, int64_t now_us)
{
    tm__twcc_fb *fb = &from->w->twcc_fb;
    if (tm__congestion_ext(from) && tm__twcc_fb_parse(pkt->data, pkt->len, fb) == 0)
        tm__bwe_on_feedback(&from->cc->bwe, fb, now_us);
}

uint64_t tm__congestion_downlink_bps(const tm__peer *r)
{
    return tm__congestion_ext(r) ? tm__bwe_estimate(&r->cc->bwe) : 0;
}

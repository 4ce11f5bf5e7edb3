/*
 * simulcast.c - a receiver's stream that changes source without a break
 * (tm__rtp_rewrite) and the choice of a simulcast layer per receiver
 * (tm__layer_choose); simulcast.h says how forward_bind.c uses them.
 *
 * The choice follows the receiver's bandwidth estimate (its REMB, or the
 * loss it reports) and the size it renders the sender at. A receiver's REMB
 * only grows to about 1.5 times what it receives, so an estimate well above
 * the current layer's rate with no loss is taken as room for one layer more;
 * a step up that meets congestion within FAIL_WINDOW_MS is undone and the
 * next attempt waits twice as long. A step either way needs its reason for a
 * few ticks in a row (CONGESTED_TICKS, ROOM_TICKS) unless the reason is
 * plain (loss, an estimate under half the layer). Runs on the visit's worker.
 */
#include "simulcast.h"

#include <string.h>

#define HOLD_BASE_MS 4000
#define HOLD_MAX_MS 32000
/* Ticks in a row a reason must last: an estimate that wobbles around a layer's
 * rate (a loaded receiver's REMB does, by a fifth from one second to the next)
 * switched q<->h every few seconds, each switch a keyframe. */
#define CONGESTED_TICKS 2
#define ROOM_TICKS 3
#define FAIL_WINDOW_MS 8000
#define SETTLE_MS 3000
#define REASK_MS 1000 /* a keyframe asked for and not seen: ask again */

/* ---- rewrite ---- */

static inline bool pic_newer(uint16_t a, uint16_t b)
{
    return a != b && (uint16_t)((a - b) & 0x7fff) < 0x4000;
}

static void rewrite_vp8(tm__rtp_rewrite *rw, uint8_t *payload, const tm_vp8_info *vi)
{
    if (vi->picture_id_off) {
        uint16_t pic = (uint16_t)vi->picture_id;
        if (rw->pic_pending) {
            rw->pic_off = rw->have_pic ? (uint16_t)(rw->last_pic + 1 - pic) : 0;
            rw->pic_pending = false;
        }
        uint8_t *at = payload + vi->picture_id_off;
        uint16_t out;
        if (vi->picture_id_long) {
            out = (uint16_t)((pic + rw->pic_off) & 0x7fff);
            at[0] = (uint8_t)(0x80 | (out >> 8));
            at[1] = (uint8_t)out;
        } else {
            out = (uint16_t)((pic + rw->pic_off) & 0x7f);
            at[0] = (uint8_t)out;
        }
        if (!rw->have_pic || pic_newer(out, rw->last_pic))
            rw->last_pic = out;
        rw->have_pic = true;
    }
    if (vi->tl0picidx_off) {
        uint8_t *at = payload + vi->tl0picidx_off;
        if (rw->tl0_pending) {
            rw->tl0_off = rw->have_tl0 ? (uint8_t)(rw->last_tl0 + 1 - *at) : 0;
            rw->tl0_pending = false;
        }
        uint8_t out = (uint8_t)(*at + rw->tl0_off);
        *at = out;
        if (!rw->have_tl0 || (uint8_t)(out - rw->last_tl0) < 0x80)
            rw->last_tl0 = out;
        rw->have_tl0 = true;
    }
}

tm__rw_result tm__rtp_rewrite_packet(tm__rtp_rewrite *rw, uint8_t *pkt, const tm_rtp_header *h,
                                     const tm_vp8_info *vp8, uint32_t out_ssrc, uint32_t clock,
                                     int64_t now_ms)
{
    tm__rw_result res = TM__RW_SAME;
    if (!rw->based || rw->src_ssrc != h->ssrc) {
        /* Continue our numbering where the receiver's stream left off, so its
         * decoder sees one stream; the timestamp moves on by the time that passed. */
        rw->continued = rw->sent_any;
        if (rw->sent_any) {
            uint32_t elapsed = (uint32_t)((now_ms - rw->last_ms) * (int64_t)clock / 1000);
            rw->seq_off = (uint16_t)(rw->last_seq + 1 - h->seq);
            rw->ts_off = rw->last_ts + (elapsed ? elapsed : 1) - h->ts;
        }
        rw->based = true;
        rw->src_ssrc = h->ssrc;
        rw->base_seq = rw->max_src = h->seq;
        rw->pic_pending = rw->tl0_pending = true;
        res = TM__RW_REBASED;
    } else if (tm_seq_newer(h->seq, rw->max_src)) {
        rw->max_src = h->seq;
    } else if (rw->continued && tm_seq_newer(rw->base_seq, h->seq) &&
               (uint16_t)(rw->max_src - rw->base_seq) < 0x4000) {
        /* From before the switch point: its number is one the receiver already had. */
        return TM__RW_DROP;
    }
    uint16_t seq = (uint16_t)(h->seq + rw->seq_off);
    uint32_t ts = h->ts + rw->ts_off;
    tm_rtp_set_ssrc(pkt, out_ssrc);
    tm_rtp_set_seq(pkt, seq);
    tm_rtp_set_ts(pkt, ts);
    if (vp8)
        rewrite_vp8(rw, pkt + h->payload_offset, vp8);
    if (!rw->sent_any || tm_seq_newer(seq, rw->last_seq)) {
        rw->last_seq = seq;
        rw->last_ts = ts;
        rw->last_ms = now_ms;
        rw->sent_any = true;
    }
    return res;
}

/* ---- layer choice ---- */

void tm__layer_pick_init(tm__layer_pick *lp)
{
    memset(lp, 0, sizeof *lp);
    lp->cur = lp->target = -1;
    lp->hold_ms = HOLD_BASE_MS;
}

/* The active layers from smallest to largest picture into order[]; returns how many.
 * A layer whose size is not known yet (no keyframe seen) is left out unless no
 * size is known at all, when the offer's order stands. */
static int rank_layers(const tm__layer_info *L, int n, int *order)
{
    bool any_size = false;
    for (int i = 0; i < n; i++)
        any_size = any_size || (L[i].active && L[i].width);
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (!L[i].active || (any_size && !L[i].width))
            continue;
        int j = k++;
        for (; j > 0 && L[order[j - 1]].width > L[i].width; j--)
            order[j] = order[j - 1];
        order[j] = i;
    }
    return k;
}

static int rank_of(const int *order, int k, int layer)
{
    for (int r = 0; r < k; r++)
        if (order[r] == layer)
            return r;
    return -1;
}

/* The smallest layer that fills the view (within 10 %), the largest when none does. */
static int view_rank(const tm__layer_info *L, const int *order, int k, const tm__layer_limits *lim)
{
    if (!lim->view_set)
        return k - 1;
    if (lim->view_w == 0 && lim->view_h == 0)
        return 0;
    for (int r = 0; r < k; r++) {
        const tm__layer_info *x = &L[order[r]];
        if (!x->width || ((uint64_t)x->width * 10 >= (uint64_t)lim->view_w * 9 &&
                          (uint64_t)x->height * 10 >= (uint64_t)lim->view_h * 9))
            return r;
    }
    return k - 1;
}

/* The largest layer the estimate carries (the smallest always). */
static int bandwidth_rank(const tm__layer_info *L, const int *order, int k, uint64_t est)
{
    if (!est)
        return k - 1;
    for (int r = k - 1; r > 0; r--)
        if (L[order[r]].bps <= est)
            return r;
    return 0;
}

bool tm__layer_choose(tm__layer_pick *lp, const tm__layer_info *layers, int n,
                      const tm__layer_limits *lim, int64_t now_ms)
{
    int order[TM__MAX_LAYERS];
    int k = rank_layers(layers, n < TM__MAX_LAYERS ? n : TM__MAX_LAYERS, order);
    if (k == 0)
        return false;
    int cur = lp->cur >= 0 ? rank_of(order, k, lp->cur) : -1;
    int by_view = view_rank(layers, order, k, lim);
    int by_bw = bandwidth_rank(layers, order, k, lim->est_bps);
    uint64_t est = lim->est_bps;
    int next;
    if (cur < 0) {
        next = by_view < by_bw ? by_view : by_bw; /* nothing yet, or its layer stopped */
    } else {
        uint64_t rate = layers[lp->cur].bps;
        /* Right after a step up the estimate is still catching up with the new rate:
         * then only loss or an estimate under half the rate is congestion. */
        bool settling = lp->went_up && now_ms - lp->changed_ms < SETTLE_MS;
        bool falling = est * 10 < lp->prev_est * 9 && !settling;
        /* The server's own estimate has the new rate in it already: under the
         * layer's rate is congestion at once, settling or not. */
        /* A fall under the rate stays congestion while the estimate stays under it. */
        bool congested =
            lim->lossy || (est && rate > est &&
                           (lim->measured || falling || est * 2 < rate || lp->congested_ticks > 0));
        bool room = by_bw > cur || !est || (!lim->measured && est * 4 >= rate * 5);
        /* Loss, an estimate under half the layer, or the server's own estimate
         * under a layer just stepped up to (the try failed) is no wobble: down at once. */
        bool severe = lim->lossy || (est && est * 2 < rate) ||
                      (lim->measured && lp->went_up && now_ms - lp->changed_ms < FAIL_WINDOW_MS);
        lp->congested_ticks =
            congested ? (uint8_t)(lp->congested_ticks + (lp->congested_ticks < 255)) : 0;
        lp->room_ticks =
            room && !congested ? (uint8_t)(lp->room_ticks + (lp->room_ticks < 255)) : 0;
        if (by_view < cur)
            next = by_view;
        else if (congested && cur > 0 && (severe || lp->congested_ticks >= CONGESTED_TICKS))
            next = by_bw < cur ? by_bw : cur - 1;
        else if (cur < by_view && lp->room_ticks >= ROOM_TICKS &&
                 now_ms - lp->changed_ms >= lp->hold_ms)
            next = cur + 1;
        else
            next = cur;
    }
    lp->prev_est = est;
    if (lp->went_up && now_ms - lp->changed_ms >= FAIL_WINDOW_MS) {
        lp->went_up = false; /* the step up held: the next one need not wait long */
        lp->hold_ms = HOLD_BASE_MS;
    }
    int want = order[next];
    if (want == lp->target)
        return false;
    if (cur >= 0 && next < cur) {
        if (lp->went_up && now_ms - lp->changed_ms < FAIL_WINDOW_MS)
            lp->hold_ms = lp->hold_ms * 2 < HOLD_MAX_MS ? lp->hold_ms * 2 : HOLD_MAX_MS;
        lp->went_up = false;
    } else if (cur >= 0 && next > cur) {
        lp->went_up = true;
    }
    lp->changed_ms = lp->asked_ms = now_ms;
    lp->congested_ticks = lp->room_ticks = 0;
    lp->target = want;
    return true;
}

bool tm__layer_overdue(tm__layer_pick *lp, int64_t now_ms)
{
    if (lp->target < 0 || lp->target == lp->cur || now_ms - lp->asked_ms < REASK_MS)
        return false;
    lp->asked_ms = now_ms;
    return true;
}

int tm__layer_best(const tm__layer_info *layers, int n)
{
    int order[TM__MAX_LAYERS];
    int k = rank_layers(layers, n < TM__MAX_LAYERS ? n : TM__MAX_LAYERS, order);
    return k ? order[k - 1] : -1;
}

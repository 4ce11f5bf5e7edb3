/*
 * bwe.c - one receiver's downlink estimate from its transport-cc feedback
 * (bwe.h says why the server makes it). The steps follow
 * draft-ietf-rmcat-gcc-02 and the shape of libwebrtc's GoogCC:
 *
 *   packets -> groups sent within 5 ms -> delay variation between groups ->
 *   trendline slope of the smoothed accumulated delay over 20 groups ->
 *   overuse / normal / underuse against a threshold that adapts to the trend
 *   -> AIMD: cut to 85 % of the acknowledged rate on overuse, grow 8 % a
 *   second (or one packet per 300 ms near the last cut) when normal, hold on
 *   underuse; never above 4x what the receiver acknowledged (see
 *   ACKED_HEADROOM).
 *
 * A loss bound runs beside it: over 10 % lost in a period halves the loss
 * fraction off the rate, under 2 % (or more while the delay shows no queue)
 * lets it grow again, over half lost is an outage and changes nothing. The estimate is the
 * lower of the two. Runs on the peer's media worker thread; no allocation.
 */
#include <math.h>
#include <string.h>

#include "bwe.h"
#include "telemed/common.h"

#define GROUP_SPAN_US 5000
#define SMOOTHING 0.9
#define TREND_GAIN 4.0
#define DELTAS_CAP 60
#define THRESHOLD_START_MS 12.5
#define THRESHOLD_MIN_MS 6.0
#define THRESHOLD_MAX_MS 600.0
#define K_UP 0.0087
#define K_DOWN 0.039
#define OVERUSE_TIME_MS 10.0
#define BETA 0.85
#define DECREASE_GAP_US 300000 /* one cut per round trip, give or take */
#define ACK_WINDOW_US 500000
#define LOSS_PERIOD_US 1000000
#define LOSS_MIN_PACKETS 20
#define OUTAGE_LOSS 0.5   /* more lost than this in a period is no link's loss */
#define RESPONSE_MS 300.0 /* a round trip plus the feedback interval */
#define PACKET_BITS 9600.0
/* GCC stops at 1.5x the acknowledged rate and probes for more with padding.
 * We forward whole layers and probe by stepping up to the next one, which
 * carries 2-4x the one below: the estimate may grow that far while the delay
 * stays flat, and the layer choice steps up only once the next layer fits. */
#define ACKED_HEADROOM 4.0

/* ---- transport-cc feedback ---- */

static inline uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

enum { ST_LOST = 0, ST_SMALL = 1, ST_LARGE = 2, ST_BAD = 3 };

/* Statuses of the chunks from off on, into st (count of them); returns the
 * offset after the chunks, or 0 when they are malformed. */
static size_t read_chunks(const uint8_t *pkt, size_t len, size_t off, unsigned total, uint8_t *st,
                          unsigned *n_st)
{
    unsigned n = 0;
    while (n < total) {
        if (off + 2 > len)
            return 0;
        uint16_t c = rd16(pkt + off);
        off += 2;
        if (!(c & 0x8000)) {
            unsigned run = c & 0x1fff, sym = (c >> 13) & 3;
            if (sym == ST_BAD || run == 0)
                return 0;
            for (unsigned k = 0; k < run && n < total; k++, n++)
                if (n < TM__BWE_FB_MAX)
                    st[n] = (uint8_t)sym;
        } else if (!(c & 0x4000)) {
            for (int k = 13; k >= 0 && n < total; k--, n++)
                if (n < TM__BWE_FB_MAX)
                    st[n] = (uint8_t)((c >> k) & 1);
        } else {
            for (int k = 12; k >= 0 && n < total; k -= 2, n++) {
                uint8_t sym = (uint8_t)((c >> k) & 3);
                if (sym == ST_BAD)
                    return 0;
                if (n < TM__BWE_FB_MAX)
                    st[n] = sym;
            }
        }
    }
    *n_st = n < TM__BWE_FB_MAX ? n : TM__BWE_FB_MAX;
    return off;
}

int tm__twcc_fb_parse(const uint8_t *pkt, size_t len, tm__twcc_fb *fb)
{
    uint8_t st[TM__BWE_FB_MAX];
    fb->count = 0;
    if (len < 20 || (pkt[0] & 0x1f) != 15 || pkt[1] != 205)
        return TM_EINVAL;
    unsigned total = rd16(pkt + 14), n;
    if (total == 0)
        return TM_EINVAL;
    size_t off = read_chunks(pkt, len, 20, total, st, &n);
    if (!off)
        return TM_EINVAL;
    int64_t at = 0;
    for (unsigned i = 0; i < n; i++) {
        if (st[i] == ST_LOST) {
            fb->arrival_us[i] = TM__TWCC_LOST;
            continue;
        }
        size_t need = st[i] == ST_SMALL ? 1 : 2;
        if (off + need > len)
            return TM_EINVAL;
        int64_t d = st[i] == ST_SMALL ? pkt[off] : (int16_t)rd16(pkt + off);
        off += need;
        at += d * 250;
        fb->arrival_us[i] = at;
    }
    fb->ref = (uint32_t)((pkt[16] << 16) | (pkt[17] << 8) | pkt[18]);
    fb->base_seq = rd16(pkt + 12);
    fb->count = n;
    return 0;
}

/* ---- the estimator ---- */

void tm__bwe_init(tm__bwe *b)
{
    memset(b, 0, sizeof *b);
    b->threshold_ms = THRESHOLD_START_MS;
    b->time_over_ms = -1;
    b->delay_bps = b->loss_bps = TM__BWE_START_BPS;
}

uint16_t tm__bwe_sent(tm__bwe *b, size_t size, int64_t now_us)
{
    uint32_t seq = b->next_seq++;
    tm__bwe_sent_pkt *s = &b->sent[seq % TM__BWE_HISTORY];
    *s = (tm__bwe_sent_pkt){.seq = seq,
                            .size = (uint16_t)(size > UINT16_MAX ? UINT16_MAX : size),
                            .send_us = now_us > 0 ? now_us : 1};
    return (uint16_t)seq;
}

/* The packet a feedback's 16-bit number names, NULL when it is not one we
 * sent recently or its fate was told already. */
static tm__bwe_sent_pkt *lookup(tm__bwe *b, uint16_t seq16)
{
    uint16_t back = (uint16_t)((uint16_t)b->next_seq - seq16);
    if (back == 0 || back > TM__BWE_HISTORY || back > b->next_seq)
        return NULL;
    tm__bwe_sent_pkt *s = &b->sent[(b->next_seq - back) % TM__BWE_HISTORY];
    return s->send_us && s->seq == b->next_seq - back && !s->reported ? s : NULL;
}

static double trend_slope(const tm__bwe *b)
{
    double mx = 0, my = 0;
    for (unsigned i = 0; i < b->win_n; i++) {
        mx += b->win_x[i];
        my += b->win_y[i];
    }
    mx /= b->win_n;
    my /= b->win_n;
    double num = 0, den = 0;
    for (unsigned i = 0; i < b->win_n; i++) {
        num += (b->win_x[i] - mx) * (b->win_y[i] - my);
        den += (b->win_x[i] - mx) * (b->win_x[i] - mx);
    }
    return den > 0 ? num / den : 0;
}

static void update_threshold(tm__bwe *b, double trend, int64_t now_us)
{
    if (!b->thr_updated_us)
        b->thr_updated_us = now_us;
    double a = fabs(trend);
    if (a > b->threshold_ms + 15.0) {
        b->thr_updated_us = now_us; /* a spike (a route change) does not move it */
        return;
    }
    double k = a < b->threshold_ms ? K_DOWN : K_UP;
    double dt = (double)(now_us - b->thr_updated_us) / 1000.0;
    b->threshold_ms += k * (a - b->threshold_ms) * (dt < 100.0 ? dt : 100.0);
    b->threshold_ms = b->threshold_ms < THRESHOLD_MIN_MS   ? THRESHOLD_MIN_MS
                      : b->threshold_ms > THRESHOLD_MAX_MS ? THRESHOLD_MAX_MS
                                                           : b->threshold_ms;
    b->thr_updated_us = now_us;
}

/* One delay variation between two groups: the trendline and the detector. */
static void on_group_delta(tm__bwe *b, double send_ms, double recv_ms, int64_t arrival,
                           int64_t now_us)
{
    if (b->n_deltas < 1000)
        b->n_deltas++;
    b->acc_delay_ms += recv_ms - send_ms;
    b->smoothed_ms = SMOOTHING * b->smoothed_ms + (1 - SMOOTHING) * b->acc_delay_ms;
    b->win_x[b->win_i] = (double)(arrival - b->first_arrival) / 1000.0;
    b->win_y[b->win_i] = b->smoothed_ms;
    b->win_i = (b->win_i + 1) % TM__BWE_WINDOW;
    if (b->win_n < TM__BWE_WINDOW) {
        b->win_n++;
        return;
    }
    double trend = trend_slope(b);
    double mod = trend * (b->n_deltas < DELTAS_CAP ? b->n_deltas : DELTAS_CAP) * TREND_GAIN;
    if (mod > b->threshold_ms) {
        b->time_over_ms = b->time_over_ms < 0 ? send_ms / 2 : b->time_over_ms + send_ms;
        b->over_count++;
        if (b->time_over_ms > OVERUSE_TIME_MS && b->over_count > 1 && trend >= b->prev_trend) {
            b->time_over_ms = 0;
            b->over_count = 0;
            b->signal = TM__BWE_OVERUSE;
        }
    } else {
        b->time_over_ms = -1;
        b->over_count = 0;
        b->signal = mod < -b->threshold_ms ? TM__BWE_UNDERUSE : TM__BWE_NORMAL;
    }
    b->prev_trend = trend;
    update_threshold(b, mod, now_us);
}

/* One acknowledged packet, in send order, into its group. */
static void on_arrival(tm__bwe *b, int64_t send_us, int64_t arrival_us, int64_t now_us)
{
    if (!b->have_group) {
        b->have_group = true;
        b->first_arrival = arrival_us;
        b->grp_first_send = b->grp_send = send_us;
        b->grp_arrival = arrival_us;
        return;
    }
    if (send_us < b->grp_first_send)
        return; /* sent before the group it was reported after: reordered */
    if (send_us - b->grp_first_send <= GROUP_SPAN_US) {
        b->grp_send = send_us > b->grp_send ? send_us : b->grp_send;
        b->grp_arrival = arrival_us > b->grp_arrival ? arrival_us : b->grp_arrival;
        return;
    }
    if (b->have_prev)
        on_group_delta(b, (double)(b->grp_send - b->prev_send) / 1000.0,
                       (double)(b->grp_arrival - b->prev_arrival) / 1000.0, b->grp_arrival, now_us);
    b->have_prev = true;
    b->prev_send = b->grp_send;
    b->prev_arrival = b->grp_arrival;
    b->grp_first_send = b->grp_send = send_us;
    b->grp_arrival = arrival_us;
}

static void update_acked(tm__bwe *b, int64_t now_us)
{
    if (!b->ack_window_start) {
        b->ack_window_start = now_us;
        return;
    }
    int64_t span = now_us - b->ack_window_start;
    if (span < ACK_WINDOW_US)
        return;
    uint64_t bps = b->ack_bytes * 8 * 1000000 / (uint64_t)span;
    b->acked_bps = b->acked_bps ? (b->acked_bps + bps) / 2 : bps;
    b->ack_bytes = 0;
    b->ack_window_start = now_us;
}

static uint64_t clamp_bps(double v)
{
    return v < TM__BWE_MIN_BPS   ? TM__BWE_MIN_BPS
           : v > TM__BWE_MAX_BPS ? TM__BWE_MAX_BPS
                                 : (uint64_t)v;
}

/* AIMD on the detector's signal. */
static void update_delay_rate(tm__bwe *b, int64_t now_us)
{
    double dt = b->updated_us ? (double)(now_us - b->updated_us) / 1e6 : 0;
    dt = dt > 1.0 ? 1.0 : dt;
    b->updated_us = now_us;
    double rate = (double)b->delay_bps;
    if (b->signal == TM__BWE_OVERUSE) {
        if (b->acked_bps && now_us - b->decreased_us >= DECREASE_GAP_US) {
            double cut = BETA * (double)b->acked_bps;
            rate = cut < rate ? cut : rate;
            b->capacity_bps = b->acked_bps;
            b->decreased_us = now_us;
        }
    } else if (b->signal == TM__BWE_NORMAL) {
        bool near = b->capacity_bps && rate < 1.5 * (double)b->capacity_bps;
        if (b->acked_bps > b->capacity_bps * 3 / 2)
            b->capacity_bps = 0; /* the link grew past what we knew of it */
        rate = near ? rate + PACKET_BITS * 1000.0 / RESPONSE_MS * dt : rate * pow(1.08, dt);
    }
    double prev = (double)b->delay_bps, cap = ACKED_HEADROOM * (double)b->acked_bps + 10000.0;
    if (b->acked_bps && rate > prev && rate > cap)
        rate = cap > prev ? cap : prev; /* no growth far past what the receiver showed it takes */
    b->delay_bps = clamp_bps(rate);
}

static void update_loss_rate(tm__bwe *b, int64_t now_us)
{
    unsigned total = b->lost + b->received;
    if (!b->loss_period_us)
        b->loss_period_us = now_us;
    if (total < LOSS_MIN_PACKETS || now_us - b->loss_period_us < LOSS_PERIOD_US)
        return;
    double loss = (double)b->lost / total;
    double rate = (double)b->loss_bps;
    if (loss > OUTAGE_LOSS) {
        /* A path that was gone (an outage, an ICE restart) says nothing of
         * the link it comes back on: no cut that would take half a minute to
         * grow back from. */
    } else if (loss > 0.10) {
        if (now_us - b->loss_cut_us >= DECREASE_GAP_US) {
            double from = rate < (double)b->delay_bps ? rate : (double)b->delay_bps;
            rate = from * (1.0 - 0.5 * loss);
            b->loss_cut_us = now_us;
        }
    } else if (loss < 0.02 || b->signal != TM__BWE_OVERUSE) {
        /* Loss with no queue building is the link's (radio, a lossy hop),
         * not ours: holding on it kept a receiver at 5 % random loss at the
         * start rate, where REMB, which ignores loss, let the sender grow. */
        rate = rate * 1.08 + 1000.0;
    }
    /* The loss bound only matters below the delay estimate: it never runs far ahead. */
    if (rate > 1.5 * (double)b->delay_bps)
        rate = 1.5 * (double)b->delay_bps;
    b->loss_bps = clamp_bps(rate);
    b->lost = b->received = 0;
    b->loss_period_us = now_us;
}

/* The feedback's reference time in microseconds, continuous across the
 * 24-bit field's wrap; shifted so arrival times stay positive (they are only
 * compared, never shown). */
static int64_t reference_us(tm__bwe *b, uint32_t ref)
{
    if (!b->started) {
        b->ref_ext = ref;
    } else {
        int32_t step = (int32_t)(((ref - b->ref_last) & 0xffffff) << 8) >> 8;
        b->ref_ext += step;
    }
    b->ref_last = ref;
    return (b->ref_ext + ((int64_t)1 << 24)) * 64000;
}

void tm__bwe_on_feedback(tm__bwe *b, const tm__twcc_fb *fb, int64_t now_us)
{
    int64_t ref_us = reference_us(b, fb->ref);
    for (unsigned i = 0; i < fb->count; i++) {
        tm__bwe_sent_pkt *s = lookup(b, (uint16_t)(fb->base_seq + i));
        if (!s)
            continue;
        s->reported = true;
        if (fb->arrival_us[i] == TM__TWCC_LOST) {
            b->lost++;
            continue;
        }
        b->received++;
        b->ack_bytes += s->size;
        on_arrival(b, s->send_us, ref_us + fb->arrival_us[i], now_us);
    }
    b->started = true;
    update_acked(b, now_us);
    update_delay_rate(b, now_us);
    update_loss_rate(b, now_us);
}

uint64_t tm__bwe_estimate(const tm__bwe *b)
{
    if (!b->started)
        return 0;
    return b->delay_bps < b->loss_bps ? b->delay_bps : b->loss_bps;
}

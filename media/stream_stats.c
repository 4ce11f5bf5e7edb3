/*
 * stream_stats.c - receiver statistics of one incoming RTP stream.
 *
 * Loss follows RFC 3550 A.3 (expected from extended sequence numbers, the
 * fraction per interval), jitter A.8 (integer, scaled by 16). Bitrate and
 * frame rate come from ten 100 ms buckets so "the last second" slides
 * without keeping per-packet history. Two loss intervals are kept, one closed
 * by the RR report block and one by the once-a-second snapshot, so neither
 * consumer disturbs the other. Owned by one media worker; not thread-safe.
 */
#include "stream_stats.h"

#include <stdlib.h>
#include <string.h>

#include "rtp.h"

#define BUCKETS 10
#define BUCKET_US 100000

typedef struct loss_interval {
    uint32_t expected_prior;
    uint64_t received_prior;
} loss_interval;

struct tm_stream_stats {
    uint32_t ssrc;
    uint32_t clock;
    bool video;
    int64_t freeze_us;

    tm_seq_tracker seq;
    uint64_t packets, bytes;
    loss_interval rr, snap;

    bool have_transit;
    uint32_t transit;
    uint32_t jitter_q4; /* jitter * 16 */

    bool have_ts;
    uint32_t last_ts;
    uint64_t frames, keyframes;
    unsigned width, height;

    int64_t bucket_epoch[BUCKETS];
    uint64_t bucket_bytes[BUCKETS];
    uint32_t bucket_frames[BUCKETS];

    uint32_t nacks_sent, nacks_received, plis_sent, plis_received, firs, retransmits;
    int64_t rtt_us;

    bool have_sr;
    uint32_t sr_mid32;
    int64_t sr_arrival_us;

    int64_t last_frame_us;
    bool in_freeze;
    uint32_t freezes;
    int64_t frozen_total_us;
};

tm_stream_stats *tm_stream_stats_new(uint32_t ssrc, uint32_t clock_rate, bool video,
                                     int64_t freeze_ms)
{
    if (clock_rate == 0 || freeze_ms < 0)
        return NULL;
    tm_stream_stats *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->ssrc = ssrc;
    s->clock = clock_rate;
    s->video = video;
    s->freeze_us = (freeze_ms ? freeze_ms : 1000) * 1000;
    s->rtt_us = -1;
    tm_seq_tracker_init(&s->seq);
    for (int i = 0; i < BUCKETS; i++)
        s->bucket_epoch[i] = -1;
    return s;
}

void tm_stream_stats_free(tm_stream_stats *s)
{
    free(s);
}

static void bucket_add(tm_stream_stats *s, int64_t now_us, size_t bytes, unsigned frames)
{
    int64_t epoch = now_us / BUCKET_US;
    int i = (int)(epoch % BUCKETS);
    if (i < 0)
        i += BUCKETS;
    if (s->bucket_epoch[i] != epoch) {
        s->bucket_epoch[i] = epoch;
        s->bucket_bytes[i] = 0;
        s->bucket_frames[i] = 0;
    }
    s->bucket_bytes[i] += bytes;
    s->bucket_frames[i] += frames;
}

void tm_stream_stats_on_rtp(tm_stream_stats *s, uint16_t seq, uint32_t ts, bool marker,
                            size_t bytes, int64_t arrival_us)
{
    if (!s)
        return;
    tm_seq_tracker_update(&s->seq, seq);
    s->packets++;
    s->bytes += bytes;

    /* A.8: transit time in clock units; only differences matter, so the
     * arithmetic is modulo 2^32 like the timestamps themselves. */
    uint32_t arrival = (uint32_t)(uint64_t)((arrival_us / 1000000) * (int64_t)s->clock +
                                            (arrival_us % 1000000) * (int64_t)s->clock / 1000000);
    uint32_t transit = arrival - ts;
    if (s->have_transit) {
        int32_t d = (int32_t)(transit - s->transit);
        uint32_t ad = d < 0 ? (uint32_t)(-(int64_t)d) : (uint32_t)d;
        s->jitter_q4 += ad - ((s->jitter_q4 + 8) >> 4);
    }
    s->transit = transit;
    s->have_transit = true;

    unsigned new_frame = 0;
    if (!s->have_ts || tm_ts_newer(ts, s->last_ts)) {
        bool had_frame = s->have_ts;
        new_frame = 1;
        s->frames++;
        s->last_ts = ts;
        s->have_ts = true;
        if (s->video && had_frame && arrival_us - s->last_frame_us > s->freeze_us) {
            if (!s->in_freeze)
                s->freezes++;
            s->frozen_total_us += arrival_us - s->last_frame_us;
        }
        s->in_freeze = false;
        s->last_frame_us = arrival_us;
    }
    bucket_add(s, arrival_us, bytes, new_frame);
}

void tm_stream_stats_on_keyframe(tm_stream_stats *s, unsigned width, unsigned height)
{
    if (!s)
        return;
    s->keyframes++;
    if (width && height) {
        s->width = width;
        s->height = height;
    }
}

void tm_stream_stats_on_nack_sent(tm_stream_stats *s, unsigned n)
{
    if (s)
        s->nacks_sent += n;
}
void tm_stream_stats_on_nack_received(tm_stream_stats *s, unsigned n)
{
    if (s)
        s->nacks_received += n;
}
void tm_stream_stats_on_pli_sent(tm_stream_stats *s)
{
    if (s)
        s->plis_sent++;
}
void tm_stream_stats_on_pli_received(tm_stream_stats *s)
{
    if (s)
        s->plis_received++;
}
void tm_stream_stats_on_fir(tm_stream_stats *s)
{
    if (s)
        s->firs++;
}
void tm_stream_stats_on_retransmit(tm_stream_stats *s)
{
    if (s)
        s->retransmits++;
}
void tm_stream_stats_set_rtt_us(tm_stream_stats *s, int64_t rtt_us)
{
    if (s)
        s->rtt_us = rtt_us < 0 ? -1 : rtt_us;
}

void tm_stream_stats_on_sr(tm_stream_stats *s, uint64_t ntp, int64_t arrival_us)
{
    if (!s)
        return;
    s->have_sr = true;
    s->sr_mid32 = tm_ntp_mid32(ntp);
    s->sr_arrival_us = arrival_us;
}

static uint32_t expected_now(const tm_stream_stats *s)
{
    return tm_seq_tracker_max(&s->seq) - s->seq.base_seq + 1;
}

/* Close an A.3 interval: the fraction lost since the last close, /256. */
static uint32_t close_interval(const tm_stream_stats *s, loss_interval *iv)
{
    uint32_t expected = expected_now(s);
    uint32_t exp_iv = expected - iv->expected_prior;
    uint64_t rec_iv = s->packets - iv->received_prior;
    iv->expected_prior = expected;
    iv->received_prior = s->packets;
    int64_t lost_iv = (int64_t)exp_iv - (int64_t)rec_iv;
    if (exp_iv == 0 || lost_iv <= 0)
        return 0;
    return (uint32_t)(((uint64_t)lost_iv << 8) / exp_iv);
}

int tm_stream_stats_report_block(tm_stream_stats *s, int64_t now_us, tm_rtcp_report_block *out)
{
    if (!s || !out)
        return TM_EINVAL;
    if (!s->seq.started)
        return TM_ENOTFOUND;
    memset(out, 0, sizeof(*out));
    out->ssrc = s->ssrc;
    uint32_t frac = close_interval(s, &s->rr);
    out->fraction_lost = (uint8_t)(frac > 255 ? 255 : frac);
    int64_t lost = (int64_t)expected_now(s) - (int64_t)s->packets;
    if (lost > 0x7fffff)
        lost = 0x7fffff;
    if (lost < -0x800000)
        lost = -0x800000;
    out->cumulative_lost = (int32_t)lost;
    out->highest_seq = tm_seq_tracker_max(&s->seq);
    out->jitter = s->jitter_q4 >> 4;
    if (s->have_sr) {
        out->lsr = s->sr_mid32;
        int64_t d = now_us - s->sr_arrival_us;
        out->dlsr = d > 0 ? (uint32_t)((d << 16) / 1000000) : 0;
    }
    return 0;
}

void tm_stream_stats_snapshot_take(tm_stream_stats *s, int64_t now_us,
                                   tm_stream_stats_snapshot *out)
{
    memset(out, 0, sizeof(*out));
    if (!s)
        return;
    out->ssrc = s->ssrc;
    out->video = s->video;
    out->clock_rate = s->clock;
    out->packets = s->packets;
    out->bytes = s->bytes;
    if (s->seq.started) {
        out->expected = expected_now(s);
        out->lost = (int64_t)out->expected - (int64_t)s->packets;
        out->fraction_lost = close_interval(s, &s->snap) / 256.0;
    }
    out->jitter = s->jitter_q4 >> 4;
    out->jitter_ms = out->jitter * 1000.0 / s->clock;
    int64_t epoch = now_us / BUCKET_US;
    uint64_t bytes = 0, frames = 0;
    for (int i = 0; i < BUCKETS; i++) {
        if (s->bucket_epoch[i] > epoch - BUCKETS && s->bucket_epoch[i] <= epoch) {
            bytes += s->bucket_bytes[i];
            frames += s->bucket_frames[i];
        }
    }
    out->bitrate_bps = bytes * 8;
    out->fps = (double)frames;
    out->frames = s->frames;
    out->keyframes = s->keyframes;
    out->width = s->width;
    out->height = s->height;
    out->nacks_sent = s->nacks_sent;
    out->nacks_received = s->nacks_received;
    out->plis_sent = s->plis_sent;
    out->plis_received = s->plis_received;
    out->firs = s->firs;
    out->retransmits = s->retransmits;
    out->rtt_ms = s->rtt_us < 0 ? -1 : (s->rtt_us + 500) / 1000;
    if (s->video && s->have_ts && now_us - s->last_frame_us > s->freeze_us) {
        if (!s->in_freeze)
            s->freezes++;
        s->in_freeze = true;
    }
    out->frozen = s->in_freeze;
    out->frozen_for_ms = s->in_freeze ? (now_us - s->last_frame_us) / 1000 : 0;
    out->freezes = s->freezes;
    out->frozen_ms_total = s->frozen_total_us / 1000;
}

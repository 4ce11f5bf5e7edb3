/*
 * bwe.h - the server's estimate of one receiver's downlink, from the
 * transport-cc feedback that receiver sends for the packets we send it
 * (draft-holmer-rmcat-transport-wide-cc-extensions-01): a small GCC
 * (draft-ietf-rmcat-gcc-02) with a delay-gradient trendline, an overuse
 * detector with an adaptive threshold, AIMD rate control bounded by what the
 * receiver acknowledged, and a loss-based bound.
 *
 * Why the server estimates it: a sender must not be held to the weakest
 * receiver's link when simulcast can give that receiver a smaller layer. Each
 * leg gets its own transport-wide numbers (stamped by us, tm__bwe_sent), so a
 * receiver's feedback describes only the server-to-receiver leg and never
 * reaches the sender, which gets feedback for its own leg (congestion.c).
 *
 * Caller-owned state (about 20 KiB, inside the peer), no allocation; pure
 * functions of their arguments and the time given, run on the peer's media
 * worker thread.
 */
#ifndef TELEMED_MEDIA_BWE_H
#define TELEMED_MEDIA_BWE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TM__BWE_HISTORY 1024 /* packets sent and not yet acknowledged: ~3 s at 2.5 Mbit/s */
#define TM__BWE_FB_MAX 1024  /* statuses read from one feedback */
#define TM__BWE_WINDOW 20    /* packet groups in the trendline's regression */
#define TM__BWE_START_BPS 300000u
#define TM__BWE_MIN_BPS 50000u
#define TM__BWE_MAX_BPS 2500000u

#define TM__TWCC_LOST INT64_MIN /* not received */

/* One transport-cc feedback, decoded. */
typedef struct tm__twcc_fb {
    uint16_t base_seq;
    uint32_t ref;                       /* reference time, 24 bits in 64 ms units */
    unsigned count;                     /* statuses read (at most TM__BWE_FB_MAX) */
    int64_t arrival_us[TM__BWE_FB_MAX]; /* after the reference time, or TM__TWCC_LOST */
} tm__twcc_fb;

/* Decodes the RTCP packet (pt 205, fmt 15, len bytes from its header) into fb.
 * Returns 0, or TM_EINVAL when it is malformed (fb then says nothing). */
int tm__twcc_fb_parse(const uint8_t *pkt, size_t len, tm__twcc_fb *fb);

typedef enum { TM__BWE_NORMAL, TM__BWE_OVERUSE, TM__BWE_UNDERUSE } tm__bwe_signal;

typedef struct tm__bwe_sent_pkt {
    uint32_t seq; /* extended transport-wide sequence number */
    uint16_t size;
    bool reported;   /* a feedback has told its fate */
    int64_t send_us; /* 0 = slot empty */
} tm__bwe_sent_pkt;

typedef struct tm__bwe {
    uint32_t next_seq;
    tm__bwe_sent_pkt sent[TM__BWE_HISTORY];
    /* Packet groups (sent within 5 ms of each other), in send order. */
    bool have_group, have_prev;
    int64_t grp_first_send, grp_send, grp_arrival;
    int64_t prev_send, prev_arrival;
    /* Trendline of the accumulated one-way delay variation. */
    int64_t first_arrival;
    double acc_delay_ms, smoothed_ms;
    unsigned n_deltas;
    double win_x[TM__BWE_WINDOW], win_y[TM__BWE_WINDOW];
    unsigned win_n, win_i;
    /* Overuse detector. */
    double threshold_ms, prev_trend, time_over_ms;
    int over_count;
    int64_t thr_updated_us;
    tm__bwe_signal signal;
    /* What the receiver acknowledged: bytes over the window, its rate. */
    int64_t ack_window_start;
    uint64_t ack_bytes, acked_bps;
    /* Rate control. */
    uint64_t delay_bps, loss_bps;
    uint64_t capacity_bps; /* the acknowledged rate at the last decrease, 0 = none */
    int64_t updated_us, decreased_us;
    /* Loss over the current period. */
    unsigned lost, received;
    int64_t loss_period_us, loss_cut_us;
    bool started;      /* a feedback has been taken */
    uint32_t ref_last; /* the last feedback's reference time... */
    int64_t ref_ext;   /* ...and it unwrapped */
} tm__bwe;

void tm__bwe_init(tm__bwe *b);
/* The transport-wide sequence number the next packet sent will carry. */
static inline uint16_t tm__bwe_next_seq(const tm__bwe *b)
{
    return (uint16_t)b->next_seq;
}
/* Notes a packet of size bytes, carrying tm__bwe_next_seq, about to be sent at
 * now_us; returns that number. */
uint16_t tm__bwe_sent(tm__bwe *b, size_t size, int64_t now_us);
/* Takes one feedback from the receiver, received at now_us. */
void tm__bwe_on_feedback(tm__bwe *b, const tm__twcc_fb *fb, int64_t now_us);
/* The estimate in bit/s, 0 before the first feedback. */
uint64_t tm__bwe_estimate(const tm__bwe *b);

#endif

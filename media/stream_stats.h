/*
 * stream_stats.h - receiver-side statistics of one incoming RTP stream:
 * counters, loss from extended sequence numbers and interarrival jitter
 * (RFC 3550 A.3 and A.8), frames and keyframes, bitrate over the last second,
 * resolution, freezes, feedback counts and RTT.
 *
 * The worker feeds it per packet (no allocation after new, no logging) and
 * takes a flat snapshot once a second for the supervisors' live view and the
 * visit record. It also produces the report block for the server's RR.
 *
 * Owned by the media worker that owns the stream; not thread-safe. The
 * snapshot is a plain value and can be sent to another thread.
 *
 * Private to media/: the server's other modules go through telemed/media.h;
 * media's unit tests and fuzz targets include it through media.cmake.
 */
#ifndef TELEMED_MEDIA_STREAM_STATS_H
#define TELEMED_MEDIA_STREAM_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "telemed/common.h"
#include "rtcp.h"

typedef struct tm_stream_stats tm_stream_stats;

/* New stats for stream ssrc with RTP clock_rate (48000 audio, 90000 video).
 * freeze_ms: a video stream that gets no new frame for longer than this while
 * packets are still expected counts as frozen (0 -> 1000 ms). NULL on bad
 * args / no memory. */
tm_stream_stats *tm_stream_stats_new(uint32_t ssrc, uint32_t clock_rate, bool video,
                                     int64_t freeze_ms);
void tm_stream_stats_free(tm_stream_stats *s);

/* One received RTP packet (after SRTP unprotect, before forwarding): seq, ts
 * and marker from its header, bytes = whole packet length, arrival_us =
 * monotonic arrival time. A new frame is counted on each new timestamp. */
void tm_stream_stats_on_rtp(tm_stream_stats *s, uint16_t seq, uint32_t ts, bool marker,
                            size_t bytes, int64_t arrival_us);
/* The packet just fed was the start of a keyframe; width/height 0 if unknown. */
void tm_stream_stats_on_keyframe(tm_stream_stats *s, unsigned width, unsigned height);

/* Feedback counters. "sent" = the server sent it to this stream's sender;
 * "received" = a receiver asked for it (forwarded or answered from cache). */
void tm_stream_stats_on_nack_sent(tm_stream_stats *s, unsigned n_seqs);
void tm_stream_stats_on_nack_received(tm_stream_stats *s, unsigned n_seqs);
void tm_stream_stats_on_pli_sent(tm_stream_stats *s);
void tm_stream_stats_on_pli_received(tm_stream_stats *s);
void tm_stream_stats_on_fir(tm_stream_stats *s);
void tm_stream_stats_on_retransmit(tm_stream_stats *s); /* answered a NACK from cache */
/* RTT to this stream's sender, from our SR and its RR (forward_rtcp.c); < 0 = unknown. */
void tm_stream_stats_set_rtt_us(tm_stream_stats *s, int64_t rtt_us);
/* The sender's last SR (for LSR/DLSR of our report block): NTP time and
 * our monotonic arrival time. */
void tm_stream_stats_on_sr(tm_stream_stats *s, uint64_t ntp, int64_t arrival_us);

/*
 * Fill the RR report block for this stream at now_us and start a new RR
 * interval (fraction lost is per interval, RFC 3550 A.3). Returns 0, or
 * TM_ENOTFOUND before the first packet.
 */
int tm_stream_stats_report_block(tm_stream_stats *s, int64_t now_us, tm_rtcp_report_block *out);

/* The once-a-second figures: a flat value. */
typedef struct tm_stream_stats_snapshot {
    uint32_t ssrc;
    bool video;
    uint32_t clock_rate;
    uint64_t packets; /* received, incl. duplicates and retransmissions */
    uint64_t bytes;
    uint64_t expected;    /* extended max - base + 1 */
    int64_t lost;         /* expected - packets (may be < 0 with duplicates) */
    double fraction_lost; /* over the interval since the previous snapshot, 0..1 */
    uint32_t jitter;      /* clock units (RFC 3550 A.8) */
    double jitter_ms;
    uint64_t bitrate_bps; /* over the last second */
    uint64_t frames;      /* distinct timestamps seen (video: frames; audio: packets) */
    double fps;           /* frames in the last second */
    uint64_t keyframes;
    unsigned width, height; /* last keyframe's, 0 if unknown */
    uint32_t nacks_sent, nacks_received, plis_sent, plis_received, firs, retransmits;
    int64_t rtt_ms;          /* -1 unknown */
    bool frozen;             /* video: no new frame for > freeze_ms while active */
    int64_t frozen_for_ms;   /* video: length of the current freeze so far, 0 when not frozen */
    uint32_t freezes;        /* times it became frozen */
    int64_t frozen_ms_total; /* time spent frozen, closed intervals only */
} tm_stream_stats_snapshot;

/* Take the snapshot at now_us (monotonic) and start a new snapshot interval. */
void tm_stream_stats_snapshot_take(tm_stream_stats *s, int64_t now_us,
                                   tm_stream_stats_snapshot *out);

#endif

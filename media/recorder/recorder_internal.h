/*
 * recorder_internal.h - what the rooms of the recorder share (module-private).
 *
 * A packet's way: ring.c (the worker's side and the drain into an arena)
 * -> reorder.c (sequence order, duplicates out, gaps waited for; media
 * time) -> depay.c (Opus, VP8) or h264.c (H.264) -> the track's frame
 * queue -> mux.c (tracks merged in time order into mkv.c's writer, the
 * bytes to the file); recorder.c runs the thread and the life cycle.
 * Everything here but the ring's producer side and the counters is the
 * recorder thread's.
 */
#ifndef TELEMED_MEDIA_RECORDER_INTERNAL_H
#define TELEMED_MEDIA_RECORDER_INTERNAL_H

#include "mkv.h"
#include "telemed/rec_crypt.h"
#include "telemed/recorder.h"

#include <glib.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* The recorder thread wakes this often (sooner when the ring fills). */
#define TM_REC_BATCH_MS 250
#define TM_REC_REORDER_MS 100 /* a gap in a track's sequence numbers is waited for this long */
/* Frames go to the file once this much older than now: by then every
 * track's frames up to that time have been through its depayloader. */
#define TM_REC_MUX_LAG_MS 400
#define TM_REC_RESYNC_MS 1000 /* RTP time this far from arrival time: re-anchor the track */
#define TM_REC_SEQ_JUMP 3000  /* a sequence number jump this large starts the track afresh */
#define TM_REC_TRACK_START_WINDOW_MS 3000
#define TM_REC_SEAL_INTERVAL_MS 1000 /* encrypted: seal a chunk at least this often */

enum { TM_REC_RTP_HDR = 12 };

/* Media time: ns from the recording's first packet; this when unknown. */
#define TM_REC_NO_TIME UINT64_MAX
#define TM_REC_NS_PER_MS 1000000

/* One packet in the ring: this header, then len bytes, padded to 8. */
typedef struct tm_rec_hdr {
    uint32_t len;
    uint16_t track;
    uint16_t skip; /* 1: nothing here up to the end of the ring */
    int64_t arrival_ns;
} tm_rec_hdr;

/* The packets of one drain, copied out of the ring into one allocation:
 * the held packets and the frames made of them point into it, and the last
 * of them frees it. Only the recorder thread touches it (and the owner in
 * tm_recorder_free, after joining that thread): a plain count. */
typedef struct tm_rec_arena {
    int refs;
    size_t size;
    uint8_t data[];
} tm_rec_arena;

static inline tm_rec_arena *tm__rec_arena_ref(tm_rec_arena *a)
{
    a->refs++;
    return a;
}

static inline void tm__rec_arena_unref(tm_rec_arena *a)
{
    if (--a->refs == 0)
        g_free(a);
}

/* A packet held for reordering (or a payload of a frame): len bytes at off
 * of arena, with one reference on it. */
typedef struct tm_rec_held {
    uint64_t eseq;
    int64_t arrival_ns;
    uint64_t pts;
    tm_rec_arena *arena;
    uint32_t off, len;
} tm_rec_held;

/* A frame waiting for the file. Opus and VP8: its bytes are the next
 * nparts entries of the track's fparts; H.264: the next size bytes of its
 * fdata. */
typedef struct tm_rec_frame {
    uint64_t pts;
    uint32_t nparts;
    uint32_t size;
    bool key;
} tm_rec_frame;

typedef struct tm_rec_track {
    tm_recorder_codec codec;
    uint8_t pt;
    uint32_t clock_rate;
    char *name;
    /* Frames not yet in the file, oldest first (from fhead on); Opus and
     * VP8 frame data are entries of fparts (from phead on), each holding an
     * arena reference; H.264 frame data are bytes of fdata (from
     * fdata_head on). */
    GArray *frames; /* of tm_rec_frame */
    guint fhead;
    GArray *fparts; /* of tm_rec_held (Opus, VP8) */
    guint phead;
    GByteArray *fdata; /* H.264: the frames' bytes, then the access unit being built */
    guint fdata_head;
    bool want_key; /* video: frames are dropped until a keyframe */
    bool in_frame; /* video: a frame's first packet came */
    uint32_t frame_rtp_ts;
    uint64_t last_eseq; /* of the last packet depayloaded (0: none) */
    GArray *parts;      /* VP8: of tm_rec_held, the current frame's payloads */
    /* H.264: the access unit being built (its last au_len bytes of fdata) */
    guint au_len;
    guint fu_at; /* where the fragmented NAL's length is, in the unit */
    bool in_fu;  /* a FU-A's start came, its end not yet */
    bool au_key; /* it holds an IDR slice */
    bool au_bad; /* a packet of it did not parse */
    uint64_t au_pts;
    GBytes *sps, *pps; /* the latest parameter sets */
    bool params_changed;
    bool produced; /* a frame came out of the depayloader */
    bool in_file;  /* admitted when the start window closed */
    bool ended;    /* left out of the file: its packets are dropped */
    /* for the file's header (the last values before it is written) */
    uint8_t mkv_num;    /* its track number in the file (1...), 0: not in the file */
    int width, height;  /* video */
    int channels;       /* audio */
    GBytes *codec_data; /* H.264: the avcC made from sps and pps, the track's CodecPrivate */
    /* reordering */
    GArray *held; /* of tm_rec_held, ascending eseq */
    bool seq_init;
    uint32_t ssrc;
    uint64_t max_eseq, next_eseq;
    /* timing */
    bool ts_init;
    uint64_t ext_ts, anchor_ts;
    int64_t anchor_pts;
    uint64_t last_pts; /* of the last frame into the file */
} tm_rec_track;

struct tm_recorder {
    /* written by the producer (media worker) */
    _Atomic uint64_t head;
    _Atomic uint64_t pushed, bytes;
    /* written by the recorder thread; its own cache line, so the two
     * sides of the ring do not bounce one line between cores */
    _Alignas(64) _Atomic uint64_t tail;
    /* rarely written */
    _Alignas(64) _Atomic uint64_t dropped;
    _Atomic int failed;
    _Atomic int closing; /* finish or free asked: refuse pushes */
    _Atomic int woken;   /* an early wake-up is pending */
    size_t ntracks;
    uint8_t *ring; /* TM_RECORDER_RING_BYTES: tm_rec_hdr + packet, ... */
    int efd;

    /* recorder thread */
    GThread *thread;
    _Atomic int finish_asked;
    _Atomic int abort_asked;
    int fd;         /* plain: the file, open for writing */
    tm_mkv_buf out; /* the Matroska bytes of this batch, stored at its end */
    tm_mkv mkv;
    int64_t first_arrival_ns; /* 0: none yet */
    bool window_closed;
    tm_rec_track tracks[TM_RECORDER_MAX_TRACKS];
    char *path;
    bool encrypted;
    tm_rec_writer *writer;
    int64_t last_seal_ms;
    uint64_t min_pts, max_end;

    /* shared between threads, under lock */
    GMutex lock;
    char *failure;

    /* callbacks, on ctx */
    GMainContext *ctx;
    struct tm_rec_failure_token *ftok;
    tm_recorder_done_cb done_cb;
    void *done_user;
    tm_recorder_result result;
};

int64_t tm__rec_mono_ns(void);

/* recorder.c: records the first failure and tells the owner once (any
 * thread); a failed write of the file. */
void tm__rec_set_failed(tm_recorder *r, const char *reason);
void tm__rec_write_failed(tm_recorder *r, int err);
void tm__rec_count_drop(tm_recorder *r);

/* ring.c: wakes the recorder thread; moves every queued packet out of the
 * ring into the reorder queues. */
void tm__rec_wake(tm_recorder *r);
void tm__rec_drain(tm_recorder *r);

/* reorder.c: one packet (header h, its bytes at off of a) into its
 * track's reorder queue; the queue on to the depayloader up to the first
 * gap younger than cutoff_ns (all of it when final). */
void tm__rec_take_packet(tm_recorder *r, const tm_rec_hdr *h, tm_rec_arena *a, gsize off);
void tm__rec_release(tm_rec_track *t, int64_t cutoff_ns, bool final);

/* depay.c: a track's queues for its codec (and their end, the track's
 * name and parameter sets with them); one packet, in sequence order, into
 * frames (takes h's arena reference); a frame being built is forgotten. */
void tm__rec_track_init(tm_rec_track *t);
void tm__rec_track_free(tm_rec_track *t);
void tm__rec_depay(tm_rec_track *t, tm_rec_held *h);
void tm__rec_forget_frame(tm_rec_track *t);

/* h264.c: one H.264 payload (RFC 6184) of the RTP packet d, plen bytes at
 * off, arrived for media time pts; the access unit being built dropped. */
void tm__rec_h264_packet(tm_rec_track *t, const uint8_t *d, size_t off, size_t plen, uint64_t pts);
void tm__rec_h264_forget(tm_rec_track *t);

/* mux.c: frames into the file. */
void tm__rec_close_window(tm_recorder *r, int64_t now_ns, bool final);
void tm__rec_mux_until(tm_recorder *r, uint64_t limit);
bool tm__rec_flush_out(tm_recorder *r);
bool tm__rec_mux_finish(tm_recorder *r, uint64_t duration);
void tm__rec_clear_frames(tm_rec_track *t);

#endif

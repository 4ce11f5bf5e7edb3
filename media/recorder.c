/*
 * recorder.c - the per-visit recording pipeline of include/telemed/recorder.h.
 *
 * Owns: the packet ring (written by the media worker, read by the recorder
 * thread), the GStreamer elements of H.264 tracks, the Matroska writer,
 * the output file (or its rec_crypt writer) and the recorder thread.
 * Threads:
 *   - media worker: tm_recorder_push() only (the producer side of the ring);
 *   - recorder thread (feeder_main): everything else until the result is
 *     posted. GStreamer runs no thread of its own here: its elements are
 *     driven through pads of ours from this thread;
 *   - the creator's GMainContext: user callbacks and the final free.
 *
 * The ring is single-producer/single-consumer over C11 atomics: head is
 * written only by the producer, tail only by the consumer. It holds bytes,
 * each packet behind a small header, so an 80-byte Opus packet takes 96
 * bytes of it and not a 1.5 KiB slot. The consumer
 * wakes every BATCH_MS and empties it; the producer signals an eventfd only
 * when a burst fills a quarter of the ring, so pushing costs no syscall
 * (and no wake-up of another thread) per packet.
 *
 * Why one thread and batches. The obvious pipeline, appsrc -> rtpjitterbuffer
 * -> depayloader per track into matroskamux, runs three threads per track
 * (appsrc's, the jitterbuffer's output task and its timer) and the muxer's
 * collect pads make those threads wait for each other on every frame: a
 * profile of four visits spent more CPU on futex wake-ups in that dance
 * than the server spent forwarding. So each wake-up of the recorder thread
 * moves a whole batch through synchronously, and what those elements did
 * per packet or frame is done here where it is simple (the jitterbuffer's
 * reordering, the Opus and VP8 depayloaders, the muxer):
 *
 *   ring -> one copy per batch (the arena) -> per-track reorder (the
 *   jitterbuffer's job: sequence order, duplicates out, a gap waited for
 *   REORDER_MS) -> depayloaded: Opus and VP8 here (see depay_own), H.264
 *   by one buffer list per batch into rtph264depay ! h264parse -> the
 *   frames, per track, into a queue of ours -> merged in timestamp order
 *   into Matroska clusters written here (see "Matroska, written here"), one
 *   buffer per batch -> the file (one write(2), see flush_out) or rec_crypt.
 *
 * Timing: a packet's timestamp comes from its RTP timestamp, anchored to
 * its arrival on the worker (CLOCK_MONOTONIC) relative to the first packet
 * of the recording, and re-anchored when the two drift RESYNC_MS apart (a
 * sender that reconnects with a new clock). So the file starts at 0, frames
 * keep their sender's spacing, and the recorder thread's own lag does not
 * matter.
 *
 * Start: frames are held until every declared track has produced one or
 * TRACK_START_WINDOW_MS have passed since the first packet; tracks with
 * nothing by then are taken out before the file's header is written, so the
 * file lists only tracks that exist. A track that goes silent later holds
 * nothing up: merging is by time, not by "every track has data".
 */
#include "telemed/recorder.h"
#include "telemed/common.h"
#include "telemed/rec_crypt.h"

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <gst/gst.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BATCH_MS 250   /* the recorder thread wakes this often (sooner when the ring fills) */
#define REORDER_MS 100 /* a gap in a track's sequence numbers is waited for this long */
/* Frames go to the muxer once this much older than now: by then every
 * track's frames up to that time have been through its depayloader. */
#define MUX_LAG_MS 400
#define RESYNC_MS 1000 /* RTP time this far from arrival time: re-anchor the track */
#define SEQ_JUMP 3000  /* a sequence number jump this large starts the track afresh */
#define TRACK_START_WINDOW_MS 3000
#define SEAL_INTERVAL_MS 1000 /* encrypted: seal a chunk at least this often */

enum { RTP_HDR = 12 };

/* One packet in the ring: this header, then len bytes, padded to 8. A
 * packet that would not fit before the end of the ring starts at its
 * beginning; the producer marks the rest of the end as skipped (or leaves
 * it, when not even a header fits there). */
typedef struct rec_hdr {
    uint32_t len;
    uint16_t track;
    uint16_t skip; /* 1: nothing here up to the end of the ring */
    int64_t arrival_ns;
} rec_hdr;

enum { REC_HDR = sizeof(rec_hdr) };

static size_t rec_bytes(size_t len)
{
    return (REC_HDR + len + 7) & ~(size_t)7;
}

/* The packets of one drain, copied out of the ring into one allocation:
 * the held packets and the frames made of them point into it, and the last
 * of them frees it. Freed on whatever thread drops the last buffer (the
 * recorder thread, or the owner's in tm_recorder_free), hence atomic. */
typedef struct arena {
    gint refs;
    gsize size;
    uint8_t data[];
} arena;

static arena *arena_ref(arena *a)
{
    g_atomic_int_inc(&a->refs);
    return a;
}

static void arena_unref(gpointer p)
{
    arena *a = p;
    if (g_atomic_int_dec_and_test(&a->refs))
        g_free(a);
}

/* A read-only buffer over len bytes at off of a (takes a reference on a). */
static GstBuffer *arena_buffer(arena *a, gsize off, gsize len)
{
    return gst_buffer_new_wrapped_full(GST_MEMORY_FLAG_READONLY, a->data, a->size, off, len,
                                       arena_ref(a), arena_unref);
}

/* A packet held for reordering: the whole RTP packet at off of arena (one
 * reference each). */
typedef struct held {
    uint64_t eseq;
    int64_t arrival_ns;
    GstClockTime pts;
    arena *arena;
    uint32_t off, len;
} held;

/* A growing byte buffer; out of memory is remembered, not checked at each
 * append. */
typedef struct obuf {
    uint8_t *p;
    size_t len, cap;
    bool oom;
} obuf;

typedef struct cue {
    uint64_t ms, cluster; /* cluster: its position from the segment's data */
    uint8_t track;
} cue;

/* Where the Matroska writer is (positions count bytes of the stream). */
typedef struct mkv_state {
    bool started;          /* the header is out */
    bool has_video;        /* a video track is in the file: cues on its keyframes */
    uint64_t seg_size_pos; /* the Segment's 8-byte size (unknown until the end) */
    uint64_t seg_data;     /* where the Segment's data starts */
    uint64_t seek_pos;     /* the Void the SeekHead takes at the end (plain) */
    uint64_t info_pos, tracks_pos;
    uint64_t dur_pos;     /* the Duration's 8 bytes (plain) */
    bool in_cluster;      /* a cluster is open in out */
    size_t cluster_size;  /* its size field, at this index of out */
    uint64_t cluster_pos; /* its position in the stream */
    int64_t cluster_ms;
    bool cluster_cued;
    GArray *cues; /* of cue (plain) */
} mkv_state;

/* A frame waiting for the file, or (H.264) an event before one. */
typedef struct qframe {
    GstClockTime pts;
    GstMiniObject *obj; /* H.264: the parser's GstBuffer or GstEvent; own tracks: NULL */
    uint32_t nparts;    /* own tracks: how many entries of fparts make the frame */
    uint32_t size;      /* own tracks: their bytes */
    bool key;
} qframe;

typedef struct track {
    tm_recorder_codec codec;
    uint8_t pt;
    uint32_t clock_rate;
    char *name;
    struct tm_recorder *r;
    GstElement *depay, *parse; /* parse: NULL but for H.264 */
    GstPad *in;                /* ours: feeds the depayloader */
    GstPad *out;               /* ours: takes the depayloader's (parser's) output */
    /* Frames not yet in the file, oldest first (from fhead on); an own
     * track's frame data are its next nparts entries of fparts (from phead
     * on), each holding an arena reference. */
    GArray *frames; /* of qframe */
    guint fhead;
    GArray *fparts; /* of held (own tracks) */
    guint phead;
    /* Opus and VP8 are depayloaded here (see depay_own); H.264 goes
     * through rtph264depay ! h264parse. */
    bool own_depay;
    bool want_key; /* own VP8: frames are dropped until a keyframe */
    bool in_frame; /* own VP8: a frame's first packet came */
    uint32_t frame_rtp_ts;
    uint64_t last_eseq; /* own: of the last packet depayloaded (0: none) */
    GArray *parts;      /* own VP8: of held, the current frame's packets (payload) */
    bool produced;      /* a frame came out of the depayloader */
    bool in_file;       /* admitted when the start window closed */
    bool ended;         /* left out of the file: its packets are dropped */
    /* Matroska: what its caps said (the last caps before the header) */
    uint8_t mkv_num;    /* its track number in the file (1...), 0: not in the file */
    int width, height;  /* video */
    int channels;       /* audio */
    GBytes *codec_data; /* H.264: the avcC h264parse gave, the track's CodecPrivate */
    /* reordering, on the recorder thread */
    GArray *held; /* of held, ascending eseq */
    bool seq_init;
    uint32_t ssrc;
    uint64_t max_eseq, next_eseq;
    /* timing */
    bool ts_init;
    uint64_t ext_ts, anchor_ts;
    int64_t anchor_pts;
    GstClockTime last_pts; /* of the last frame into the muxer */
} track;

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
    uint8_t *ring; /* TM_RECORDER_RING_BYTES: rec_hdr + packet, ... */
    int efd;

    /* recorder thread */
    GThread *thread;
    _Atomic int finish_asked;
    _Atomic int abort_asked;
    GstElement *pipeline; /* H.264 tracks' depayloader and parser; nothing else */
    int fd;               /* plain: the file, open for writing */
    obuf out;             /* the Matroska bytes of this batch, written at its end */
    uint64_t written;     /* bytes of the Matroska stream written so far */
    mkv_state mkv;
    GstBus *bus;
    int64_t first_arrival_ns; /* 0: none yet */
    bool window_closed;
    track tracks[TM_RECORDER_MAX_TRACKS];
    char *path;
    bool encrypted;
    tm_rec_writer *writer;
    int64_t last_seal_ms;
    GstClockTime min_pts, max_end;

    /* shared between threads, under lock */
    GMutex lock;
    char *failure;

    /* callbacks, on ctx */
    GMainContext *ctx;
    struct failure_token *ftok;
    tm_recorder_done_cb done_cb;
    void *done_user;
    tm_recorder_result result;
};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- the hot path ----------------------------------------------------- */

int tm_recorder_push(tm_recorder *r, int track_index, const uint8_t *rtp, size_t len)
{
    return tm_recorder_push_at(r, track_index, rtp, len, mono_ns() / 1000);
}

int tm_recorder_push_at(tm_recorder *r, int track_index, const uint8_t *rtp, size_t len,
                        int64_t arrival_us)
{
    int rc;
    if (track_index < 0 || (size_t)track_index >= r->ntracks || len < 12) {
        rc = TM_EINVAL;
        goto drop;
    }
    if (len > TM_RECORDER_SLOT_BYTES) {
        rc = TM_ETOOBIG;
        goto drop;
    }
    if (atomic_load_explicit(&r->failed, memory_order_relaxed) ||
        atomic_load_explicit(&r->closing, memory_order_relaxed)) {
        rc = TM_EIO;
        goto drop;
    }
    /* head and tail count bytes since the start; the ring holds what lies
     * between them. */
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    size_t need = rec_bytes(len);
    size_t pos = (size_t)(head % TM_RECORDER_RING_BYTES);
    size_t to_end = TM_RECORDER_RING_BYTES - pos;
    size_t skip = need <= to_end ? 0 : to_end;
    if (head - tail + skip + need > TM_RECORDER_RING_BYTES) {
        rc = TM_ERATE;
        goto drop;
    }
    if (skip) {
        if (skip >= REC_HDR)
            ((rec_hdr *)(r->ring + pos))->skip = 1;
        pos = 0;
    }
    rec_hdr *h = (rec_hdr *)(r->ring + pos);
    h->len = (uint32_t)len;
    h->track = (uint16_t)track_index;
    h->skip = 0;
    h->arrival_ns = arrival_us * 1000;
    memcpy(r->ring + pos + REC_HDR, rtp, len);
    head += skip + need;
    atomic_store_explicit(&r->head, head, memory_order_release);
    atomic_fetch_add_explicit(&r->pushed, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->bytes, len, memory_order_relaxed);
    /* The recorder thread drains every BATCH_MS anyway; wake it early only
     * when a burst fills a quarter of the ring, once until it has woken. */
    if (head - tail >= TM_RECORDER_RING_BYTES / 4 &&
        !atomic_load_explicit(&r->woken, memory_order_relaxed) &&
        !atomic_exchange_explicit(&r->woken, 1, memory_order_relaxed)) {
        uint64_t one = 1;
        ssize_t n = write(r->efd, &one, sizeof(one)); /* nonblocking eventfd */
        (void)n;
    }
    return 0;
drop:
    atomic_fetch_add_explicit(&r->dropped, 1, memory_order_relaxed);
    return rc;
}

void tm_recorder_stats_get(const tm_recorder *r, tm_recorder_stats *out)
{
    tm_recorder *m = (tm_recorder *)r;
    out->pushed = atomic_load_explicit(&m->pushed, memory_order_relaxed);
    out->dropped = atomic_load_explicit(&m->dropped, memory_order_relaxed);
    out->bytes = atomic_load_explicit(&m->bytes, memory_order_relaxed);
}

static void wake(tm_recorder *r)
{
    uint64_t one = 1;
    ssize_t n = write(r->efd, &one, sizeof(one));
    (void)n;
}

/* ---- failure reporting ------------------------------------------------ */

/* The failure callback outlives nothing it should not: a message posted
 * to ctx holds a reference to this token, and finish/free (on ctx's
 * thread) cancel it, so the owner never hears of a failure after it has
 * let go of the recorder (and perhaps freed its user data). */
typedef struct failure_token {
    gint refs;
    _Atomic int cancelled;
    tm_recorder_failure_cb cb; /* under the recorder's lock until posted */
    void *user;
} failure_token;

static void token_unref(failure_token *t)
{
    if (t && g_atomic_int_dec_and_test(&t->refs))
        g_free(t);
}

typedef struct failure_msg {
    failure_token *tok;
    tm_recorder_failure_cb cb;
    void *user;
    char *reason;
} failure_msg;

/* Runs fn on ctx later, never inline: g_main_context_invoke() would run it
 * right here when nobody holds ctx, and deliver_result must not run on the
 * recorder thread it joins. */
static void post(GMainContext *ctx, GSourceFunc fn, gpointer data)
{
    GSource *src = g_idle_source_new();
    g_source_set_callback(src, fn, data, NULL);
    g_source_attach(src, ctx);
    g_source_unref(src);
}

static gboolean deliver_failure(gpointer p)
{
    failure_msg *m = p;
    if (!atomic_load(&m->tok->cancelled))
        m->cb(m->reason, m->user);
    token_unref(m->tok);
    g_free(m->reason);
    g_free(m);
    return G_SOURCE_REMOVE;
}

/* Records the first failure and tells the owner once. Any thread. */
static void set_failed(tm_recorder *r, const char *reason)
{
    g_mutex_lock(&r->lock);
    bool first = r->failure == NULL;
    if (first)
        r->failure = g_strdup(reason);
    tm_recorder_failure_cb cb = r->ftok->cb;
    void *user = r->ftok->user;
    g_mutex_unlock(&r->lock);
    atomic_store(&r->failed, 1);
    if (first && cb) {
        failure_msg *m = g_new0(failure_msg, 1);
        g_atomic_int_inc(&r->ftok->refs);
        m->tok = r->ftok;
        m->cb = cb;
        m->user = user;
        m->reason = g_strdup(reason);
        post(r->ctx, deliver_failure, m);
    }
}

void tm_recorder_on_failure(tm_recorder *r, tm_recorder_failure_cb cb, void *user)
{
    g_mutex_lock(&r->lock);
    r->ftok->cb = cb;
    r->ftok->user = user;
    g_mutex_unlock(&r->lock);
}

/* ---- paths -------------------------------------------------------------- */

static bool safe_name(const char *s)
{
    if (!s || !*s || *s == '.' || strlen(s) > 128)
        return false;
    for (; *s; s++)
        if (!g_ascii_isalnum(*s) && *s != '-' && *s != '_' && *s != '.')
            return false;
    return true;
}

int tm_recorder_make_path(const char *recording_dir, const char *visit_id, int64_t epoch_ms,
                          bool encrypted, char **path_out, char **err)
{
    if (!recording_dir || !*recording_dir || !safe_name(visit_id)) {
        *err = g_strdup("recording path: bad directory or visit id");
        return TM_EINVAL;
    }
    time_t t = (time_t)(epoch_ms / 1000);
    struct tm tmv;
    gmtime_r(&t, &tmv);
    char y[16], m[8], d[8];
    snprintf(y, sizeof(y), "%04d", tmv.tm_year + 1900);
    snprintf(m, sizeof(m), "%02d", (tmv.tm_mon + 1) % 100);
    snprintf(d, sizeof(d), "%02d", tmv.tm_mday % 100);
    /* mkdir each level ourselves so every level we create is 0700 whatever
     * the umask; levels that exist are left as the admin made them. */
    char *levels[4] = {NULL, g_build_filename(recording_dir, y, NULL),
                       g_build_filename(recording_dir, y, m, NULL),
                       g_build_filename(recording_dir, y, m, d, NULL)};
    char *dir = g_strdup(levels[3]);
    int rc = 0;
    if (g_mkdir_with_parents(recording_dir, 0700) != 0) {
        *err = g_strdup_printf("mkdir %s: %s", recording_dir, g_strerror(errno));
        rc = TM_EIO;
    }
    for (int i = 1; rc == 0 && i < 4; i++) {
        if (mkdir(levels[i], 0700) == 0) {
            if (chmod(levels[i], 0700) != 0) {
                *err = g_strdup_printf("chmod %s: %s", levels[i], g_strerror(errno));
                rc = TM_EIO;
            }
        } else if (errno != EEXIST) {
            *err = g_strdup_printf("mkdir %s: %s", levels[i], g_strerror(errno));
            rc = TM_EIO;
        }
    }
    if (rc == 0) {
        char *file = g_strdup_printf("%s%s", visit_id, encrypted ? ".mkv.enc" : ".mkv");
        *path_out = g_build_filename(dir, file, NULL);
        g_free(file);
    }
    for (int i = 0; i < 4; i++)
        g_free(levels[i]);
    g_free(dir);
    return rc;
}

/* ---- pipeline ----------------------------------------------------------- */

static const char *codec_encoding(tm_recorder_codec c)
{
    switch (c) {
    case TM_REC_OPUS:
        return "OPUS";
    case TM_REC_VP8:
        return "VP8";
    case TM_REC_H264:
        return "H264";
    }
    return NULL;
}

/* The depayloader's (parser's) output: frames and serialized events wait in
 * the track's queue until they are merged into the muxer. Recorder thread
 * (inside our push into the depayloader). Takes b. */
static GstFlowReturn on_frame(GstPad *pad, GstObject *parent, GstBuffer *b)
{
    (void)parent;
    track *t = gst_pad_get_element_private(pad);
    qframe f = {.pts = GST_BUFFER_PTS(b),
                .obj = GST_MINI_OBJECT_CAST(b),
                .key = !GST_BUFFER_FLAG_IS_SET(b, GST_BUFFER_FLAG_DELTA_UNIT)};
    g_array_append_val(t->frames, f);
    t->produced = true;
    return GST_FLOW_OK;
}

static gboolean on_frame_event(GstPad *pad, GstObject *parent, GstEvent *e)
{
    (void)parent;
    track *t = gst_pad_get_element_private(pad);
    /* EOS is ours to send; non-serialized events have no place in a queue. */
    if (GST_EVENT_TYPE(e) == GST_EVENT_EOS || !GST_EVENT_IS_SERIALIZED(e))
        gst_event_unref(e);
    else
        g_array_append_val(t->frames, ((qframe){.obj = GST_MINI_OBJECT_CAST(e)}));
    return TRUE;
}

/* What the muxer used to take for H.264, answered for it: h264parse then
 * gives length-prefixed access units and the avcC in its caps. */
static gboolean on_frame_query(GstPad *pad, GstObject *parent, GstQuery *q)
{
    (void)pad;
    (void)parent;
    switch (GST_QUERY_TYPE(q)) {
    case GST_QUERY_CAPS: {
        GstCaps *filter;
        GstCaps *caps = gst_caps_from_string("video/x-h264,stream-format=avc,alignment=au");
        gst_query_parse_caps(q, &filter);
        if (filter) {
            GstCaps *both = gst_caps_intersect_full(filter, caps, GST_CAPS_INTERSECT_FIRST);
            gst_caps_unref(caps);
            caps = both;
        }
        gst_query_set_caps_result(q, caps);
        gst_caps_unref(caps);
        return TRUE;
    }
    case GST_QUERY_ACCEPT_CAPS: {
        GstCaps *caps, *ours = gst_caps_from_string("video/x-h264,stream-format=avc,alignment=au");
        gst_query_parse_accept_caps(q, &caps);
        gst_query_set_accept_caps_result(q, gst_caps_can_intersect(caps, ours));
        gst_caps_unref(ours);
        return TRUE;
    }
    default:
        return FALSE;
    }
}

/* The upstream side of our source pads: nothing to ask or tell us. */
static gboolean drop_event(GstPad *pad, GstObject *parent, GstEvent *e)
{
    (void)pad;
    (void)parent;
    gst_event_unref(e);
    return TRUE;
}

static void write_failed(tm_recorder *r, int err)
{
    char *why = g_strdup_printf("write %s: %s", r->path, g_strerror(err));
    set_failed(r, why);
    g_free(why);
}

/* ---- Matroska, written here ----------------------------------------------
 *
 * Why not matroskamux. With the packets depayloaded here, the muxer was
 * what was left of GStreamer on every frame, and most of the recorder
 * thread's CPU: a pad push through collect pads (its lock, a futex wake-up
 * per pop, a GstBuffer copy on make_writable), two or three new GstBuffers
 * per frame for the block header, and then a copy of each into our batch.
 * Writing a SimpleBlock is a dozen bytes of header and one copy of the frame
 * into the batch's buffer, so the recorder writes the file's elements
 * itself, the same ones matroskamux wrote for these codecs:
 *
 *   EBML header, Segment (size unknown until the end) {
 *     Void, replaced by a SeekHead at the end (plain);
 *     Info (1 ms timestamps, Duration filled in at the end (plain));
 *     Tracks (Opus with its OpusHead, VP8, H.264 with h264parse's avcC);
 *     Cluster per batch, each whole and of known size: Timestamp, then
 *       a SimpleBlock per frame;
 *     Cues (plain): the cluster of each video keyframe }
 *
 * Crash safety as before: each batch's clusters go to the file in one
 * write(2), so a kill -9 leaves whole clusters behind an unknown-size
 * Segment, which players read to its end. An encrypted recording cannot
 * seek back, so it has no Duration, SeekHead or Cues (as matroskamux's
 * streamable mode had none). */

enum {
    MKV_EBML = 0x1A45DFA3,
    MKV_SEGMENT = 0x18538067,
    MKV_SEEKHEAD = 0x114D9B74,
    MKV_SEEK = 0x4DBB,
    MKV_SEEKID = 0x53AB,
    MKV_SEEKPOS = 0x53AC,
    MKV_VOID = 0xEC,
    MKV_INFO = 0x1549A966,
    MKV_TRACKS = 0x1654AE6B,
    MKV_CLUSTER = 0x1F43B675,
    MKV_CUES = 0x1C53BB6B,
    SEEK_VOID_BYTES = 128, /* room for a SeekHead of three entries */
    CLUSTER_MAX_MS = 30000 /* a block's time is an int16 of ms from its cluster's */
};

static uint8_t *ob_room(obuf *o, size_t n)
{
    if (o->oom)
        return NULL;
    if (o->len + n > o->cap) {
        size_t cap = MAX(o->cap * 2, MAX((size_t)64 * 1024, o->len + n));
        uint8_t *p = g_try_realloc(o->p, cap);
        if (!p) {
            o->oom = true;
            return NULL;
        }
        o->p = p;
        o->cap = cap;
    }
    uint8_t *at = o->p + o->len;
    o->len += n;
    return at;
}

static void ob_bytes(obuf *o, const void *d, size_t n)
{
    uint8_t *p = ob_room(o, n);
    if (p && n)
        memcpy(p, d, n);
}

static void put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

/* An element ID: its bytes as they are (1 to 4). */
static void ob_id(obuf *o, uint32_t id)
{
    int n = id > 0xFFFFFF ? 4 : id > 0xFFFF ? 3 : id > 0xFF ? 2 : 1;
    uint8_t *p = ob_room(o, (size_t)n);
    if (p)
        put_be(p, id, n);
}

/* A size as an EBML variable-length integer of width bytes (0: the fewest). */
static void ob_size(obuf *o, uint64_t v, int width)
{
    int n = width;
    if (!n)
        for (n = 1; n < 8 && v >= ((uint64_t)1 << (7 * n)) - 1; n++)
            ;
    uint8_t *p = ob_room(o, (size_t)n);
    if (p) {
        put_be(p, v, n);
        p[0] |= (uint8_t)(0x80 >> (n - 1));
    }
}

static void ob_uint(obuf *o, uint32_t id, uint64_t v)
{
    int n = 1;
    while (n < 8 && v >> (8 * n))
        n++;
    ob_id(o, id);
    ob_size(o, (uint64_t)n, 1);
    uint8_t *p = ob_room(o, (size_t)n);
    if (p)
        put_be(p, v, n);
}

static void put_double(uint8_t *p, double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    put_be(p, u, 8);
}

static void ob_float(obuf *o, uint32_t id, double d)
{
    ob_id(o, id);
    ob_size(o, 8, 1);
    uint8_t *p = ob_room(o, 8);
    if (p)
        put_double(p, d);
}

static void ob_bin(obuf *o, uint32_t id, const void *d, size_t n)
{
    ob_id(o, id);
    ob_size(o, n, 0);
    ob_bytes(o, d, n);
}

static void ob_str(obuf *o, uint32_t id, const char *s)
{
    ob_bin(o, id, s, strlen(s));
}

/* A master element whose size is filled in by ob_end: returns where its
 * 4-byte size is. */
static size_t ob_begin(obuf *o, uint32_t id)
{
    ob_id(o, id);
    size_t at = o->len;
    ob_room(o, 4);
    return at;
}

static void ob_end(obuf *o, size_t at)
{
    if (o->oom)
        return;
    put_be(o->p + at, (uint64_t)(o->len - at - 4), 4);
    o->p[at] |= 0x10;
}

/* Where the next byte of out will be in the stream. */
static uint64_t stream_pos(const tm_recorder *r)
{
    return r->written + r->out.len;
}

static const char *codec_id(tm_recorder_codec c)
{
    return c == TM_REC_OPUS ? "A_OPUS" : c == TM_REC_VP8 ? "V_VP8" : "V_MPEG4/ISO/AVC";
}

/* What a track's caps say; kept until the header is written (a change
 * later stays in the stream: a VP8 keyframe carries its size, as an H.264
 * one with the parser's config-interval carries its parameter sets). */
static void take_caps(track *t, GstEvent *e)
{
    GstCaps *caps;
    gst_event_parse_caps(e, &caps);
    const GstStructure *s = gst_caps_get_structure(caps, 0);
    if (!s)
        return;
    gst_structure_get_int(s, "width", &t->width);
    gst_structure_get_int(s, "height", &t->height);
    gst_structure_get_int(s, "channels", &t->channels);
    const GValue *v = gst_structure_get_value(s, "codec_data");
    if (v && G_VALUE_HOLDS(v, GST_TYPE_BUFFER)) {
        GstBuffer *b = gst_value_get_buffer(v);
        GstMapInfo map;
        if (b && gst_buffer_map(b, &map, GST_MAP_READ)) {
            if (t->codec_data)
                g_bytes_unref(t->codec_data);
            t->codec_data = g_bytes_new(map.data, map.size);
            gst_buffer_unmap(b, &map);
        }
    }
}

static void mkv_track_entry(obuf *o, const track *t)
{
    bool audio = t->codec == TM_REC_OPUS;
    size_t e = ob_begin(o, 0xAE); /* TrackEntry */
    ob_uint(o, 0xD7, t->mkv_num);
    ob_uint(o, 0x73C5, ((uint64_t)g_random_int() << 32 | g_random_int()) | 1); /* TrackUID */
    ob_uint(o, 0x83, audio ? 2 : 1);                                           /* TrackType */
    ob_uint(o, 0x9C, 0);                                                       /* FlagLacing */
    if (t->name)
        ob_str(o, 0x536E, t->name);
    ob_str(o, 0x86, codec_id(t->codec));
    if (audio) {
        /* OpusHead (RFC 7845 5.1) as matroskamux made it from our caps:
         * version 1, channels, no pre-skip, 48 kHz, no gain, family 0. */
        int ch = t->channels > 0 && t->channels <= 2 ? t->channels : 2;
        uint8_t head[19];
        memcpy(head, "OpusHead\x01\x02\x00\x00\x80\xbb\x00\x00\x00\x00\x00", sizeof head);
        head[9] = (uint8_t)ch;
        ob_bin(o, 0x63A2, head, sizeof head);
        ob_uint(o, 0x56BB, 80000000); /* SeekPreRoll: 80 ms, as RFC 7845 asks */
        size_t a = ob_begin(o, 0xE1);
        ob_float(o, 0xB5, 48000.0);
        ob_uint(o, 0x9F, (uint64_t)ch);
        ob_end(o, a);
    } else {
        if (t->codec_data)
            ob_bin(o, 0x63A2, g_bytes_get_data(t->codec_data, NULL),
                   g_bytes_get_size(t->codec_data));
        size_t v = ob_begin(o, 0xE0);
        ob_uint(o, 0xB0, (uint64_t)MAX(t->width, 1));
        ob_uint(o, 0xBA, (uint64_t)MAX(t->height, 1));
        ob_end(o, v);
    }
    ob_end(o, e);
}

/* The file's header, before its first frame: every track in the file has
 * had its caps (they come before its first frame). */
static void mkv_header(tm_recorder *r)
{
    mkv_state *m = &r->mkv;
    obuf *o = &r->out;
    m->started = true;
    size_t e = ob_begin(o, MKV_EBML);
    ob_uint(o, 0x4286, 1); /* EBMLVersion */
    ob_uint(o, 0x42F7, 1); /* EBMLReadVersion */
    ob_uint(o, 0x42F2, 4); /* EBMLMaxIDLength */
    ob_uint(o, 0x42F3, 8); /* EBMLMaxSizeLength */
    ob_str(o, 0x4282, "matroska");
    ob_uint(o, 0x4287, 4); /* DocTypeVersion */
    ob_uint(o, 0x4285, 2); /* DocTypeReadVersion */
    ob_end(o, e);
    ob_id(o, MKV_SEGMENT);
    m->seg_size_pos = stream_pos(r);
    ob_size(o, ((uint64_t)1 << 56) - 1, 8); /* unknown */
    m->seg_data = stream_pos(r);
    if (!r->encrypted) {
        m->seek_pos = stream_pos(r);
        ob_id(o, MKV_VOID);
        ob_size(o, SEEK_VOID_BYTES - 9, 8);
        uint8_t *z = ob_room(o, SEEK_VOID_BYTES - 9);
        if (z)
            memset(z, 0, SEEK_VOID_BYTES - 9);
    }
    m->info_pos = stream_pos(r);
    size_t info = ob_begin(o, MKV_INFO);
    ob_uint(o, 0x2AD7B1, 1000000); /* TimestampScale: ms */
    if (!r->encrypted) {
        ob_id(o, 0x4489); /* Duration, in ms, filled in at the end */
        ob_size(o, 8, 1);
        m->dur_pos = stream_pos(r);
        uint8_t *z = ob_room(o, 8);
        if (z)
            put_double(z, 0);
    }
    ob_str(o, 0x4D80, "telemed"); /* MuxingApp */
    ob_str(o, 0x5741, "telemed"); /* WritingApp */
    ob_end(o, info);
    m->tracks_pos = stream_pos(r);
    size_t tracks = ob_begin(o, MKV_TRACKS);
    uint8_t num = 0;
    for (size_t i = 0; i < r->ntracks; i++) {
        track *t = &r->tracks[i];
        if (!t->in_file)
            continue;
        t->mkv_num = ++num;
        m->has_video = m->has_video || t->codec != TM_REC_OPUS;
        mkv_track_entry(o, t);
    }
    ob_end(o, tracks);
}

static void mkv_close_cluster(tm_recorder *r)
{
    if (r->mkv.in_cluster)
        ob_end(&r->out, r->mkv.cluster_size);
    r->mkv.in_cluster = false;
}

/* A SimpleBlock of t at pts (ns from the file's start) for a frame of size
 * bytes: returns where the caller copies the frame, or NULL when out of
 * memory. */
static uint8_t *mkv_block(tm_recorder *r, track *t, GstClockTime pts, bool key, size_t n)
{
    mkv_state *m = &r->mkv;
    obuf *o = &r->out;
    if (!m->started)
        mkv_header(r);
    int64_t ms = (int64_t)(pts / GST_MSECOND);
    if (!m->in_cluster || ms < m->cluster_ms || ms - m->cluster_ms > CLUSTER_MAX_MS) {
        mkv_close_cluster(r);
        m->cluster_pos = stream_pos(r);
        m->cluster_size = ob_begin(o, MKV_CLUSTER);
        ob_uint(o, 0xE7, (uint64_t)ms); /* Timestamp */
        m->in_cluster = true;
        m->cluster_ms = ms;
        m->cluster_cued = false;
    }
    if (!m->cluster_cued && m->cues && ((key && t->codec != TM_REC_OPUS) || !m->has_video)) {
        cue c = {.ms = (uint64_t)ms, .cluster = m->cluster_pos - m->seg_data, .track = t->mkv_num};
        g_array_append_val(m->cues, c);
        m->cluster_cued = true;
    }
    ob_id(o, 0xA3); /* SimpleBlock: track, int16 time from the cluster's, flags, frame */
    ob_size(o, n + 4, 0);
    uint8_t *p = ob_room(o, 4 + n);
    if (!p)
        return NULL;
    p[0] = (uint8_t)(0x80 | t->mkv_num);
    put_be(p + 1, (uint64_t)(uint16_t)(int16_t)(ms - m->cluster_ms), 2);
    p[3] = key ? 0x80 : 0;
    return p + 4;
}

/* The batch's bytes to the file (one write(2)) or to the encrypted writer,
 * its cluster closed first so the file holds whole clusters. Returns false
 * when that failed. */
static bool flush_out(tm_recorder *r)
{
    mkv_close_cluster(r);
    obuf *o = &r->out;
    if (o->oom) {
        set_failed(r, "recorder: out of memory for the output");
        o->oom = false;
        o->len = 0;
        return false;
    }
    if (!o->len)
        return true;
    int rc = r->encrypted ? tm_rec_writer_write(r->writer, o->p, o->len)
                          : tm_write_all(r->fd, o->p, o->len);
    if (rc < 0)
        write_failed(r, errno);
    else
        r->written += o->len;
    o->len = 0;
    return rc == 0;
}

static bool patch(tm_recorder *r, const void *d, size_t n, uint64_t pos)
{
    if (pwrite(r->fd, d, n, (off_t)pos) == (ssize_t)n)
        return true;
    write_failed(r, errno ? errno : EIO);
    return false;
}

/* Ends the stream: the last cluster and, in a plain file, the Cues, then
 * the Segment's size, the Duration and the SeekHead written in place. */
static bool mkv_finish(tm_recorder *r, GstClockTime duration)
{
    mkv_state *m = &r->mkv;
    obuf *o = &r->out;
    if (!m->started)
        mkv_header(r);
    mkv_close_cluster(r);
    uint64_t cues_pos = stream_pos(r);
    if (!r->encrypted && m->cues && m->cues->len) {
        size_t cs = ob_begin(o, MKV_CUES);
        for (guint i = 0; i < m->cues->len; i++) {
            const cue *c = &g_array_index(m->cues, cue, i);
            size_t p = ob_begin(o, 0xBB); /* CuePoint */
            ob_uint(o, 0xB3, c->ms);      /* CueTime */
            size_t tp = ob_begin(o, 0xB7);
            ob_uint(o, 0xF7, c->track);   /* CueTrack */
            ob_uint(o, 0xF1, c->cluster); /* CueClusterPosition */
            ob_end(o, tp);
            ob_end(o, p);
        }
        ob_end(o, cs);
    } else {
        cues_pos = 0;
    }
    if (!flush_out(r) || r->encrypted)
        return !atomic_load(&r->failed);
    uint8_t b[8];
    b[0] = 0x01; /* the Segment's size, 8 bytes wide as written */
    put_be(b + 1, r->written - m->seg_data, 7);
    if (!patch(r, b, 8, m->seg_size_pos))
        return false;
    put_double(b, GST_CLOCK_TIME_IS_VALID(duration) ? (double)duration / GST_MSECOND : 0);
    if (!patch(r, b, 8, m->dur_pos))
        return false;
    obuf sh = {0};
    size_t h = ob_begin(&sh, MKV_SEEKHEAD);
    uint32_t ids[3] = {MKV_INFO, MKV_TRACKS, MKV_CUES};
    uint64_t pos[3] = {m->info_pos, m->tracks_pos, cues_pos};
    for (int i = 0; i < 3; i++) {
        if (!pos[i])
            continue;
        size_t s = ob_begin(&sh, MKV_SEEK);
        uint8_t id[4];
        put_be(id, ids[i], 4);
        ob_bin(&sh, MKV_SEEKID, id, 4);
        ob_id(&sh, MKV_SEEKPOS);
        ob_size(&sh, 8, 1);
        uint8_t *p = ob_room(&sh, 8);
        if (p)
            put_be(p, pos[i] - m->seg_data, 8);
        ob_end(&sh, s);
    }
    ob_end(&sh, h);
    size_t rest = SEEK_VOID_BYTES - sh.len; /* the rest stays a Void */
    ob_id(&sh, MKV_VOID);
    ob_size(&sh, rest - 2, 1);
    uint8_t *z = ob_room(&sh, rest - 2);
    if (z)
        memset(z, 0, rest - 2);
    bool ok = !sh.oom && sh.len == SEEK_VOID_BYTES && patch(r, sh.p, sh.len, m->seek_pos);
    g_free(sh.p);
    return ok;
}

static GstElement *make(const char *factory, char **err)
{
    GstElement *e = gst_element_factory_make(factory, NULL);
    if (!e && !*err)
        *err = g_strdup_printf("GStreamer element %s is not installed", factory);
    return e;
}

static GstPad *our_pad(const char *name, GstPadDirection dir, gpointer owner)
{
    GstPad *p = gst_pad_new(name, dir);
    gst_object_ref_sink(p);
    gst_pad_set_element_private(p, owner);
    return p;
}

/* An Opus or VP8 track: no element and no pad; its frames are made here
 * (see depay_own) and the caps of VP8 wait for its first keyframe, which
 * gives the size. */
static void build_own_track(track *t)
{
    bool audio = t->codec == TM_REC_OPUS;
    t->own_depay = true;
    t->want_key = !audio;
    t->channels = 2; /* as the SDP's opus/48000/2 says */
    t->frames = g_array_sized_new(FALSE, FALSE, sizeof(qframe), 256);
    t->fparts = g_array_sized_new(FALSE, FALSE, sizeof(held), 512);
    t->held = g_array_sized_new(FALSE, FALSE, sizeof(held), 64);
    t->parts = g_array_sized_new(FALSE, FALSE, sizeof(held), 16);
}

/* An H.264 track: our pad -> rtph264depay ! h264parse -> our pad. */
static int build_track(tm_recorder *r, track *t, size_t i, char **err)
{
    if (t->codec != TM_REC_H264) {
        build_own_track(t);
        return 0;
    }
    GstElement *depay = make("rtph264depay", err);
    GstElement *parse = make("h264parse", err);
    if (!depay || !parse) {
        if (depay)
            gst_object_unref(depay);
        if (parse)
            gst_object_unref(parse);
        return TM_EUNSUPPORTED;
    }
    g_object_set(depay, "wait-for-keyframe", TRUE, NULL);
    gst_bin_add(GST_BIN(r->pipeline), depay);
    gst_bin_add(GST_BIN(r->pipeline), parse);
    t->depay = depay;
    t->parse = parse;
    t->frames = g_array_sized_new(FALSE, FALSE, sizeof(qframe), 256);
    t->held = g_array_sized_new(FALSE, FALSE, sizeof(held), 64);

    char name[16];
    g_snprintf(name, sizeof name, "in%zu", i);
    t->in = our_pad(name, GST_PAD_SRC, t);
    gst_pad_set_event_function(t->in, drop_event);
    g_snprintf(name, sizeof name, "out%zu", i);
    t->out = our_pad(name, GST_PAD_SINK, t);
    gst_pad_set_chain_function(t->out, on_frame);
    gst_pad_set_event_function(t->out, on_frame_event);
    gst_pad_set_query_function(t->out, on_frame_query);

    GstPad *dsink = gst_element_get_static_pad(depay, "sink");
    GstPad *psrc = gst_element_get_static_pad(parse, "src");
    bool ok = gst_element_link(depay, parse) && gst_pad_link(t->in, dsink) == GST_PAD_LINK_OK &&
              gst_pad_link(psrc, t->out) == GST_PAD_LINK_OK;
    gst_object_unref(dsink);
    gst_object_unref(psrc);
    if (!ok) {
        *err = g_strdup_printf("cannot link track %zu", i);
        return TM_EIO;
    }
    return 0;
}

static int build_pipeline(tm_recorder *r, char **err)
{
    r->pipeline = gst_pipeline_new("recorder");
    for (size_t i = 0; i < r->ntracks; i++) {
        int rc = build_track(r, &r->tracks[i], i, err);
        if (rc < 0)
            return rc;
    }
    r->bus = gst_element_get_bus(r->pipeline);
    /* Nothing here waits on a clock: no source is live and no sink syncs. */
    if (gst_element_set_state(r->pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
        *err = g_strdup("recording pipeline does not start");
        return TM_EIO;
    }
    for (size_t i = 0; i < r->ntracks; i++) {
        track *t = &r->tracks[i];
        if (t->own_depay)
            continue;
        gst_pad_set_active(t->in, TRUE);
        gst_pad_set_active(t->out, TRUE);
        char *id = g_strdup_printf("telemed-rec-%p-%zu", (void *)r, i);
        GstCaps *caps =
            gst_caps_new_simple("application/x-rtp", "media", G_TYPE_STRING, "video", "clock-rate",
                                G_TYPE_INT, (int)t->clock_rate, "encoding-name", G_TYPE_STRING,
                                codec_encoding(t->codec), "payload", G_TYPE_INT, (int)t->pt, NULL);
        GstSegment seg;
        gst_segment_init(&seg, GST_FORMAT_TIME);
        gst_pad_push_event(t->in, gst_event_new_stream_start(id));
        gst_pad_push_event(t->in, gst_event_new_caps(caps));
        gst_pad_push_event(t->in, gst_event_new_segment(&seg));
        gst_caps_unref(caps);
        g_free(id);
    }
    return 0;
}

/* ---- recorder thread ---------------------------------------------------- */

static void count_drop(tm_recorder *r)
{
    atomic_fetch_add_explicit(&r->dropped, 1, memory_order_relaxed);
}

/* Handles what the pipeline posted (errors: a write that failed). */
static void poll_bus(tm_recorder *r)
{
    GstMessage *m;
    while ((m = gst_bus_pop_filtered(r->bus, GST_MESSAGE_ERROR))) {
        GError *e = NULL;
        char *debug = NULL;
        gst_message_parse_error(m, &e, &debug);
        /* The debug text ends with the system's reason ("No space left on
         * device"); its first line is a source location. */
        const char *detail = debug ? strrchr(debug, '\n') : NULL;
        detail = detail ? detail + 1 : debug;
        char *why =
            g_strdup_printf("%s: %s%s%s", GST_OBJECT_NAME(GST_MESSAGE_SRC(m)),
                            e ? e->message : "error", detail ? " " : "", detail ? detail : "");
        g_free(debug);
        set_failed(r, why); /* keeps the first reason */
        g_free(why);
        g_clear_error(&e);
        gst_message_unref(m);
    }
}

/* A failed push into a depayloader: the bus has the reason if an element
 * posted one; otherwise say what we know. */
static void push_failed(tm_recorder *r, const char *what, GstFlowReturn fr)
{
    poll_bus(r);
    if (!atomic_load(&r->failed)) {
        char *why = g_strdup_printf("%s: %s", what, gst_flow_get_name(fr));
        set_failed(r, why);
        g_free(why);
    }
}

/* ---- Opus and VP8, depayloaded here -------------------------------------
 *
 * rtpopusdepay and rtpvp8depay cost a GstBuffer, a GstMemory and a trip
 * through GstRTPBaseDepayload per packet (map, metas, an adapter for VP8)
 * and were the larger half of the recorder thread's CPU. Both formats are
 * simple enough to take apart here, straight from the batch's arena: an
 * Opus packet's payload is the frame (RFC 7587), and a VP8 frame is the
 * payloads after the descriptor (RFC 7741) from the packet with S=1,
 * PartID=0 to the one with the marker bit. Each frame becomes one buffer
 * (over the arena for one packet, a copy for several), with the same caps,
 * timestamps and flags the depayloaders gave it, so the file gets what it
 * got before. As rtpvp8depay with wait-for-keyframe did, a VP8 frame with a
 * packet missing is dropped and so is every frame after it until a
 * keyframe: a decoder could not use them. */

/* The payload of an RTP packet (CSRCs, header extension and padding
 * skipped); false when it does not parse. */
static bool rtp_payload(const uint8_t *d, size_t len, size_t *off, size_t *plen)
{
    size_t hl = RTP_HDR + 4 * (size_t)(d[0] & 0x0f);
    if ((d[0] & 0x10) && len >= hl + 4)
        hl += 4 + 4 * (size_t)(d[hl + 2] << 8 | d[hl + 3]);
    size_t pad = (d[0] & 0x20) && len > 0 ? d[len - 1] : 0;
    if (hl + pad > len)
        return false;
    *off = hl;
    *plen = len - hl - pad;
    return true;
}

/* The packets in parts (their payloads), which make one frame of t, into
 * its queue; takes their arena references. */
static void queue_own(track *t, const held *parts, guint n, GstClockTime pts, bool key)
{
    qframe f = {.pts = pts, .nparts = n, .key = key};
    for (guint i = 0; i < n; i++)
        f.size += parts[i].len;
    g_array_append_vals(t->fparts, parts, n);
    g_array_append_val(t->frames, f);
    t->produced = true;
}

static void vp8_forget_frame(track *t)
{
    for (guint i = 0; i < t->parts->len; i++)
        arena_unref(g_array_index(t->parts, held, i).arena);
    g_array_set_size(t->parts, 0);
    t->in_frame = false;
}

/* The packets in t->parts make a whole frame: into the track's queue. */
static void vp8_emit(track *t, GstClockTime pts)
{
    gsize size = 0;
    for (guint i = 0; i < t->parts->len; i++)
        size += g_array_index(t->parts, held, i).len;
    const held *first = &g_array_index(t->parts, held, 0);
    const uint8_t *f = first->arena->data + first->off;
    /* The frame tag (RFC 6386 9.1): bit 0 clear on a keyframe, whose first
     * partition starts with the start code and the picture size. */
    bool key = first->len >= 1 && !(f[0] & 0x01);
    if (key && (first->len < 10 || f[3] != 0x9d || f[4] != 0x01 || f[5] != 0x2a))
        key = false;
    if (size == 0 || (!key && t->want_key)) {
        vp8_forget_frame(t);
        return;
    }
    if (key) {
        t->want_key = false;
        /* The file's header gives the first keyframe's size; a later one
         * is in its keyframe, which is what decoders go by. */
        if (!t->width) {
            t->width = (f[6] | f[7] << 8) & 0x3fff;
            t->height = (f[8] | f[9] << 8) & 0x3fff;
        }
    }
    queue_own(t, &g_array_index(t->parts, held, 0), t->parts->len, pts, key);
    g_array_set_size(t->parts, 0); /* their references went with them */
    t->in_frame = false;
}

/* One VP8 packet (the payload at off, plen of the packet h). Takes h's
 * arena reference. */
static void vp8_packet(track *t, held *h, const uint8_t *d, size_t off, size_t plen)
{
    const uint8_t *p = d + off;
    uint32_t ts = (uint32_t)d[4] << 24 | (uint32_t)d[5] << 16 | (uint32_t)d[6] << 8 | d[7];
    bool marker = d[1] & 0x80;
    /* The payload descriptor: X, S, PartID, then the optional I (picture
     * id, 7 or 15 bits), L (TL0PICIDX) and T/K bytes. */
    size_t dl = 1;
    if (plen >= 1 && (p[0] & 0x80)) {
        if (plen < 2)
            goto bad;
        uint8_t x = p[1];
        dl = 2;
        if (x & 0x80)
            dl += plen > dl && (p[dl] & 0x80) ? 2 : 1;
        if (x & 0x40)
            dl++;
        if (x & 0x30)
            dl++;
    }
    if (plen < dl)
        goto bad;
    bool start = (p[0] & 0x10) && (p[0] & 0x0f) == 0;
    if (t->in_frame && (start || ts != t->frame_rtp_ts)) {
        /* A new frame before the last one's marker: the last lost its end. */
        vp8_forget_frame(t);
        t->want_key = true;
    }
    if (start) {
        t->in_frame = true;
        t->frame_rtp_ts = ts;
    }
    if (!t->in_frame)
        goto bad; /* the frame's start was lost */
    h->off += (uint32_t)(off + dl);
    h->len = (uint32_t)(plen - dl);
    g_array_append_val(t->parts, *h);
    if (marker)
        vp8_emit(t, h->pts);
    return;
bad:
    arena_unref(h->arena);
}

/* One packet of an Opus or VP8 track, in sequence order. Takes h's arena
 * reference. */
static void depay_own(track *t, held *h)
{
    const uint8_t *d = h->arena->data + h->off;
    size_t off, plen;
    bool gap = t->last_eseq && h->eseq != t->last_eseq + 1;
    t->last_eseq = h->eseq;
    if (!rtp_payload(d, h->len, &off, &plen)) {
        arena_unref(h->arena);
        return;
    }
    if (t->codec == TM_REC_VP8) {
        if (gap) {
            vp8_forget_frame(t); /* a packet is missing: no frame until a keyframe */
            t->want_key = true;
        }
        vp8_packet(t, h, d, off, plen);
        return;
    }
    if (plen == 0) {
        arena_unref(h->arena);
        return;
    }
    h->off += (uint32_t)off;
    h->len = (uint32_t)plen;
    queue_own(t, h, 1, h->pts, true);
}

/* Sends the track's held packets, in sequence order, to its depayloader:
 * all of them (final), or those up to the first gap whose packet after it
 * arrived before cutoff_ns (a gap is waited for REORDER_MS). */
static void release(tm_recorder *r, track *t, int64_t cutoff_ns, bool final)
{
    guint n = 0;
    GstBufferList *l = NULL;
    for (; n < t->held->len; n++) {
        held *h = &g_array_index(t->held, held, n);
        if (!final && h->eseq != t->next_eseq && h->arrival_ns > cutoff_ns)
            break;
        t->next_eseq = h->eseq + 1;
        if (t->own_depay) {
            depay_own(t, h);
            continue;
        }
        if (!l)
            l = gst_buffer_list_new_sized(t->held->len);
        GstBuffer *b = arena_buffer(h->arena, h->off, h->len);
        arena_unref(h->arena);
        GST_BUFFER_PTS(b) = h->pts;
        gst_buffer_list_add(l, b);
    }
    if (n)
        g_array_remove_range(t->held, 0, n);
    if (!l)
        return;
    GstFlowReturn fr = gst_pad_push_list(t->in, l);
    /* A depayloader refuses what it cannot parse; that is a bad packet, not
     * a broken recording. */
    if (fr == GST_FLOW_FLUSHING || fr == GST_FLOW_NOT_LINKED)
        push_failed(r, "depayloader", fr);
}

/* Forgets the track's sequence and time state (a new sender connection),
 * after sending on what it held. */
static void reset_track(tm_recorder *r, track *t)
{
    release(r, t, 0, true);
    t->seq_init = false;
    t->ts_init = false;
}

/* Moves one packet (header h, its bytes at off of a) from the ring into its
 * track's reorder queue. */
static void take_packet(tm_recorder *r, const rec_hdr *rh, arena *a, gsize off)
{
    track *t = &r->tracks[rh->track];
    if (atomic_load_explicit(&r->failed, memory_order_relaxed) || t->ended) {
        count_drop(r);
        return;
    }
    if (!r->first_arrival_ns)
        r->first_arrival_ns = rh->arrival_ns;
    const uint8_t *d = a->data + off;
    uint16_t seq = (uint16_t)(d[2] << 8 | d[3]);
    uint32_t ts = (uint32_t)d[4] << 24 | (uint32_t)d[5] << 16 | (uint32_t)d[6] << 8 | d[7];
    uint32_t ssrc = (uint32_t)d[8] << 24 | (uint32_t)d[9] << 16 | (uint32_t)d[10] << 8 | d[11];
    int16_t dseq = t->seq_init ? (int16_t)(uint16_t)(seq - (uint16_t)t->max_eseq) : 0;
    if (t->seq_init && (ssrc != t->ssrc || dseq > SEQ_JUMP || dseq < -SEQ_JUMP))
        reset_track(r, t);
    uint64_t eseq;
    if (!t->seq_init) {
        t->seq_init = true;
        t->ssrc = ssrc;
        eseq = t->max_eseq = t->next_eseq = ((uint64_t)1 << 32) + seq;
    } else {
        eseq = t->max_eseq + (uint64_t)(int64_t)dseq;
        if (dseq > 0)
            t->max_eseq = eseq;
    }
    if (eseq < t->next_eseq)
        return; /* too late, or a retransmission of what went on already */

    /* Media time from the RTP timestamp, anchored to arrival: to the
     * quickest arrival so far, so the mapping follows the least delayed
     * packets (and a sender's audio and video, each anchored that way, stay
     * in sync) rather than whichever came first. */
    int64_t arrival_pts = rh->arrival_ns - r->first_arrival_ns;
    t->ext_ts = t->ts_init ? t->ext_ts + (uint64_t)(int64_t)(int32_t)(ts - (uint32_t)t->ext_ts)
                           : ((uint64_t)1 << 32) + ts;
    int64_t pts = 0;
    if (t->ts_init)
        pts = t->anchor_pts +
              (int64_t)((int64_t)(t->ext_ts - t->anchor_ts) * 1000000000.0 / (double)t->clock_rate);
    if (!t->ts_init || pts - arrival_pts > (int64_t)RESYNC_MS * 1000000 ||
        arrival_pts - pts > (int64_t)RESYNC_MS * 1000000) {
        t->ts_init = true;
        t->anchor_ts = t->ext_ts;
        t->anchor_pts = arrival_pts;
        pts = arrival_pts;
    } else if (pts > arrival_pts) {
        t->anchor_pts -= pts - arrival_pts;
        pts = arrival_pts;
    }

    /* Insert in sequence order; mostly this is the end. */
    guint at = t->held->len;
    while (at > 0 && g_array_index(t->held, held, at - 1).eseq > eseq)
        at--;
    if (at > 0 && g_array_index(t->held, held, at - 1).eseq == eseq)
        return; /* a duplicate */
    held h = {.eseq = eseq,
              .arrival_ns = rh->arrival_ns,
              .pts = pts > 0 ? (GstClockTime)pts : 0,
              .arena = arena_ref(a),
              .off = (uint32_t)off,
              .len = rh->len};
    g_array_insert_val(t->held, at, h);
}

/* The record at ring position *i, whose bytes start at base + (*i -
 * from), or NULL after moving *i past the gap the writer left at the end
 * of the ring. */
static const rec_hdr *record_at(const uint8_t *base, uint64_t from, uint64_t *i)
{
    size_t to_end = TM_RECORDER_RING_BYTES - (size_t)(*i % TM_RECORDER_RING_BYTES);
    const rec_hdr *h = (const rec_hdr *)(base + (*i - from));
    if (to_end < REC_HDR || h->skip) {
        *i += to_end;
        return NULL;
    }
    return h;
}

/* Moves every queued packet out of the ring. What lies between tail and
 * head is copied as it is, headers and all, into one allocation (the
 * arena) with one or two memcpy (two when it wraps), and the records are
 * read there: the ring's lines, written on the worker's core, are read
 * once, in order, as the prefetcher likes, where walking the headers to
 * size the arena and then copying packet by packet read them twice. The
 * held packets and the frames made of them share the arena, so a batch
 * costs one malloc, not one per packet. (A buffer pool would not recycle:
 * the frame queues and rtph264depay keep buffers of their input until the
 * frame is written.) The arena is freed with its last packet. */
static void drain(tm_recorder *r)
{
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    while (tail != head) {
        gsize total = (gsize)(head - tail);
        arena *a = g_try_malloc(sizeof(arena) + total);
        size_t pos = (size_t)(tail % TM_RECORDER_RING_BYTES);
        size_t first = MIN(total, TM_RECORDER_RING_BYTES - pos);
        if (a) {
            a->refs = 1;
            a->size = total;
            /* records are 8-aligned in the ring and so in the arena */
            memcpy(a->data, r->ring + pos, first);
            memcpy(a->data + first, r->ring, total - first);
        }
        uint64_t from = tail;
        while (tail != head) {
            const rec_hdr *h = a ? record_at(a->data, from, &tail)
                                 : record_at(r->ring, tail - tail % TM_RECORDER_RING_BYTES, &tail);
            if (!h)
                continue;
            if (a)
                take_packet(r, h, a, (gsize)(tail - from) + REC_HDR);
            else
                count_drop(r);
            tail += rec_bytes(h->len);
        }
        if (a)
            arena_unref(a);
        atomic_store_explicit(&r->tail, tail, memory_order_release);
        head = atomic_load_explicit(&r->head, memory_order_acquire);
    }
}

/* The oldest frame of t out of its queue: the caller has used it. Drops
 * its references. */
static void pop_frame(track *t)
{
    qframe *f = &g_array_index(t->frames, qframe, t->fhead++);
    if (f->obj)
        gst_mini_object_unref(f->obj);
    for (uint32_t i = 0; i < f->nparts; i++)
        arena_unref(g_array_index(t->fparts, held, t->phead++).arena);
    /* Frames wait MUX_LAG_MS, so the queues are never empty for long: move
     * what is left to the front now and then instead. */
    if (t->fhead >= 128 && t->fhead * 2 >= t->frames->len) {
        g_array_remove_range(t->frames, 0, t->fhead);
        t->fhead = 0;
    }
    if (t->fparts && t->phead >= 256 && t->phead * 2 >= t->fparts->len) {
        g_array_remove_range(t->fparts, 0, t->phead);
        t->phead = 0;
    }
}

static void clear_frames(track *t)
{
    while (t->frames && t->fhead < t->frames->len)
        pop_frame(t);
}

/* Takes a track with nothing to show out of the pipeline before the muxer
 * writes its header, so the file lists no empty track. */
static void drop_track(tm_recorder *r, track *t)
{
    t->ended = true;
    for (guint i = 0; i < t->held->len; i++)
        arena_unref(g_array_index(t->held, held, i).arena);
    g_array_set_size(t->held, 0);
    if (t->parts)
        vp8_forget_frame(t);
    clear_frames(t);
    GstElement *els[2] = {t->depay, t->parse};
    for (int i = 0; i < 2; i++) {
        if (!els[i])
            continue;
        gst_element_set_state(els[i], GST_STATE_NULL);
        gst_bin_remove(GST_BIN(r->pipeline), els[i]); /* unlinks, drops the bin's ref */
    }
    t->depay = t->parse = NULL;
}

/* The oldest frame of t into the file. */
static void push_frame(tm_recorder *r, track *t)
{
    const qframe *f = &g_array_index(t->frames, qframe, t->fhead);
    GstBuffer *b = f->obj ? GST_BUFFER_CAST(f->obj) : NULL;
    GstClockTime pts = f->pts;
    if (!GST_CLOCK_TIME_IS_VALID(pts) ||
        (GST_CLOCK_TIME_IS_VALID(t->last_pts) && pts < t->last_pts))
        pts = GST_CLOCK_TIME_IS_VALID(t->last_pts) ? t->last_pts : 0;
    t->last_pts = pts;
    gsize size = b ? gst_buffer_get_size(b) : f->size;
    if (size > 0) {
        GstClockTime end =
            pts + (b && GST_BUFFER_DURATION_IS_VALID(b) ? GST_BUFFER_DURATION(b) : 0);
        if (!GST_CLOCK_TIME_IS_VALID(r->min_pts) || pts < r->min_pts)
            r->min_pts = pts;
        if (!GST_CLOCK_TIME_IS_VALID(r->max_end) || end > r->max_end)
            r->max_end = end;
        uint8_t *p = mkv_block(r, t, pts, f->key, size);
        if (p && b) {
            gst_buffer_extract(b, 0, p, size);
        } else if (p) {
            for (uint32_t i = 0; i < f->nparts; i++) {
                const held *h = &g_array_index(t->fparts, held, t->phead + i);
                memcpy(p, h->arena->data + h->off, h->len);
                p += h->len;
            }
        }
    }
    pop_frame(t);
}

/* Caps say what the header needs; the other events (stream start,
 * segment, tags) nothing the file keeps. */
static void take_event(track *t, GstEvent *e)
{
    if (GST_EVENT_TYPE(e) == GST_EVENT_CAPS)
        take_caps(t, e);
}

/* Merges the tracks' frames into the file in time order, up to limit
 * (GST_CLOCK_TIME_NONE: all of them). */
static void mux_until(tm_recorder *r, GstClockTime limit)
{
    while (!atomic_load_explicit(&r->failed, memory_order_relaxed)) {
        track *best = NULL;
        GstClockTime best_pts = 0;
        for (size_t i = 0; i < r->ntracks; i++) {
            track *t = &r->tracks[i];
            if (!t->in_file)
                continue;
            const qframe *f = NULL;
            while (t->fhead < t->frames->len) {
                f = &g_array_index(t->frames, qframe, t->fhead);
                if (!f->obj || !GST_IS_EVENT(f->obj))
                    break;
                take_event(t, GST_EVENT_CAST(f->obj));
                pop_frame(t);
                f = NULL;
            }
            if (!f)
                continue;
            GstClockTime pts = f->pts;
            if (!GST_CLOCK_TIME_IS_VALID(pts))
                pts = GST_CLOCK_TIME_IS_VALID(t->last_pts) ? t->last_pts : 0;
            if (!best || pts < best_pts) {
                best = t;
                best_pts = pts;
            }
        }
        if (!best || (GST_CLOCK_TIME_IS_VALID(limit) && best_pts > limit))
            return;
        push_frame(r, best);
    }
}

/* Closes the start window: every track has a frame, or the time is up (or
 * the visit ended). Tracks without a frame leave. */
static void maybe_close_window(tm_recorder *r, int64_t now_ns, bool final)
{
    if (r->window_closed || !r->first_arrival_ns)
        return;
    bool all = true;
    for (size_t i = 0; i < r->ntracks; i++)
        all = all && r->tracks[i].produced;
    if (!all && !final && now_ns - r->first_arrival_ns < (int64_t)TRACK_START_WINDOW_MS * 1000000)
        return;
    r->window_closed = true;
    for (size_t i = 0; i < r->ntracks; i++) {
        track *t = &r->tracks[i];
        if (t->produced)
            t->in_file = true;
        else
            drop_track(r, t);
    }
}

/* One batch: the ring into the reorder queues, packets into the
 * depayloaders, frames into the muxer, the muxer's bytes to the file. */
static void process(tm_recorder *r, bool final)
{
    drain(r);
    if (!r->first_arrival_ns || atomic_load(&r->failed))
        return;
    int64_t now = mono_ns();
    for (size_t i = 0; i < r->ntracks; i++)
        if (!r->tracks[i].ended)
            release(r, &r->tracks[i], now - (int64_t)REORDER_MS * 1000000, final);
    maybe_close_window(r, now, final);
    if (r->window_closed) {
        int64_t limit = now - r->first_arrival_ns - (int64_t)MUX_LAG_MS * 1000000;
        mux_until(r, final ? GST_CLOCK_TIME_NONE : limit > 0 ? (GstClockTime)limit : 0);
    }
    flush_out(r); /* reports its own failure */
    if (r->encrypted && r->writer) {
        int64_t ms = tm_mono_ms();
        if (ms - r->last_seal_ms >= SEAL_INTERVAL_MS) {
            r->last_seal_ms = ms;
            if (tm_rec_writer_seal(r->writer) < 0) {
                char *why = g_strdup_printf("write %s: %s", r->path, g_strerror(errno));
                set_failed(r, why);
                g_free(why);
            }
        }
    }
    poll_bus(r);
}

static int hash_file(const char *path, int64_t *size, char out[65])
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return TM_EIO;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    uint8_t buf[65536];
    size_t n;
    int64_t total = 0;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
        EVP_DigestUpdate(md, buf, n);
        total += (int64_t)n;
    }
    int rc = ferror(f) ? TM_EIO : 0;
    fclose(f);
    uint8_t d[32];
    unsigned dl = 0;
    EVP_DigestFinal_ex(md, d, &dl);
    EVP_MD_CTX_free(md);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
    *size = total;
    return rc;
}

static gboolean deliver_result(gpointer p)
{
    tm_recorder *r = p;
    if (r->done_cb)
        r->done_cb(&r->result, r->done_user);
    tm_recorder_free(r); /* joins the (finished) thread */
    return G_SOURCE_REMOVE;
}

static void finalise(tm_recorder *r)
{
    tm_recorder_result *res = &r->result;
    process(r, true);
    bool had_media = r->window_closed;
    if (had_media && !atomic_load(&r->failed)) {
        size_t live = 0;
        for (size_t i = 0; i < r->ntracks; i++)
            live += r->tracks[i].in_file;
        if (live == 0) {
            had_media = false; /* packets came, but none reached the file */
        } else {
            /* The Cues, and the sizes and positions only known now. */
            GstClockTime dur = GST_CLOCK_TIME_IS_VALID(r->max_end) ? r->max_end : 0;
            if (!mkv_finish(r, dur) && !atomic_load(&r->failed))
                set_failed(r, "recording did not finish");
            poll_bus(r);
        }
    }
    gst_element_set_state(r->pipeline, GST_STATE_NULL);
    if (r->fd >= 0 && close(r->fd) < 0 && !atomic_load(&r->failed))
        write_failed(r, errno);
    r->fd = -1;
    if (r->writer) {
        int rc = tm_rec_writer_close(r->writer, res->plain_sha256);
        r->writer = NULL;
        if (rc < 0 && !atomic_load(&r->failed))
            set_failed(r, "cannot close the encrypted recording");
    }
    if (!had_media) {
        /* Nothing was recorded: leave no empty file behind. */
        if (!atomic_load(&r->failed))
            set_failed(r, "no media was received");
        (void)g_unlink(r->path);
    } else if (hash_file(r->path, &res->size_bytes, res->sha256) < 0 && !atomic_load(&r->failed)) {
        set_failed(r, "cannot read the finished recording");
    }
    if (GST_CLOCK_TIME_IS_VALID(r->min_pts) && GST_CLOCK_TIME_IS_VALID(r->max_end))
        res->duration_ms = (int64_t)((r->max_end - r->min_pts) / GST_MSECOND);
    g_mutex_lock(&r->lock);
    res->failure = r->failure;
    g_mutex_unlock(&r->lock);
    res->status = res->failure ? TM_EIO : 0;
    res->path = r->path;
    res->encrypted = r->encrypted;
    tm_recorder_stats_get(r, &res->stats);
}

static gpointer feeder_main(gpointer p)
{
    tm_recorder *r = p;
    for (;;) {
        if (atomic_load(&r->abort_asked))
            return NULL;
        if (atomic_load(&r->finish_asked)) {
            finalise(r); /* takes the pushes made before finish was asked */
            post(r->ctx, deliver_result, r);
            return NULL;
        }
        process(r, false);
        struct pollfd pfd = {.fd = r->efd, .events = POLLIN};
        if (poll(&pfd, 1, BATCH_MS) > 0) { /* woken early: the eventfd is readable */
            uint64_t v;
            ssize_t n = read(r->efd, &v, sizeof(v));
            (void)n;
        }
        atomic_store(&r->woken, 0);
    }
}

/* ---- life cycle ---------------------------------------------------------- */

static gpointer gst_init_once(gpointer p)
{
    GError *e = NULL;
    if (!gst_init_check(NULL, NULL, &e)) {
        char *why = g_strdup(e ? e->message : "gst_init failed");
        g_clear_error(&e);
        return why;
    }
    return NULL;
}

tm_recorder *tm_recorder_new(const char *path, const tm_recorder_track *tracks, size_t n,
                             const uint8_t *key_or_null, char **err)
{
    static GOnce once = G_ONCE_INIT;
    const char *init_err = g_once(&once, gst_init_once, NULL);
    if (init_err) {
        *err = g_strdup_printf("GStreamer: %s", init_err);
        return NULL;
    }
    if (!path || !tracks || n == 0 || n > TM_RECORDER_MAX_TRACKS) {
        *err = g_strdup("recorder: need a path and 1..16 tracks");
        return NULL;
    }
    tm_recorder *r = g_new0(tm_recorder, 1);
    g_mutex_init(&r->lock);
    r->ftok = g_new0(failure_token, 1);
    r->ftok->refs = 1;
    r->efd = -1;
    r->fd = -1;
    r->min_pts = r->max_end = GST_CLOCK_TIME_NONE;
    r->ntracks = n;
    r->path = g_strdup(path);
    r->encrypted = key_or_null != NULL;
    r->ctx = g_main_context_ref_thread_default();
    for (size_t i = 0; i < n; i++) {
        track *t = &r->tracks[i];
        t->codec = tracks[i].codec;
        t->pt = tracks[i].payload_type;
        t->clock_rate =
            tracks[i].clock_rate ? tracks[i].clock_rate : (t->codec == TM_REC_OPUS ? 48000 : 90000);
        t->name = g_strdup(tracks[i].name);
        t->r = r;
        t->last_pts = GST_CLOCK_TIME_NONE;
        if (!codec_encoding(t->codec) || t->pt > 127) {
            *err = g_strdup_printf("recorder: track %zu has a bad codec or payload type", i);
            goto fail;
        }
    }
    /* Create the file here, exclusively and 0600, so a clash or an
     * unwritable directory fails now rather than inside the pipeline. */
    if (r->encrypted) {
        r->writer = tm_rec_writer_open(path, key_or_null, err);
        if (!r->writer)
            goto fail;
        r->last_seal_ms = tm_mono_ms();
    } else {
        r->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (r->fd < 0) {
            *err = g_strdup_printf("open %s: %s", path, g_strerror(errno));
            goto fail;
        }
    }
    if (!r->encrypted)
        r->mkv.cues = g_array_new(FALSE, FALSE, sizeof(cue));
    r->ring = g_try_malloc(TM_RECORDER_RING_BYTES);
    r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!r->ring || r->efd < 0) {
        *err = g_strdup("recorder: out of memory or eventfd");
        goto fail;
    }
    /* Touch every page now, so the worker's first pass through the ring
     * takes no page faults. */
    memset(r->ring, 0, TM_RECORDER_RING_BYTES);
    if (build_pipeline(r, err) < 0) {
        if (!*err)
            *err = g_strdup("recorder: cannot build the pipeline");
        goto fail;
    }
    r->thread = g_thread_try_new("tm-recorder", feeder_main, r, NULL);
    if (!r->thread) {
        *err = g_strdup("recorder: cannot start its thread");
        goto fail;
    }
    return r;
fail:
    tm_recorder_free(r);
    (void)g_unlink(path);
    return NULL;
}

void tm_recorder_finish(tm_recorder *r, tm_recorder_done_cb cb, void *user)
{
    atomic_store(&r->ftok->cancelled, 1); /* the result reports any failure from now */
    atomic_store(&r->closing, 1);
    r->done_cb = cb;
    r->done_user = user;
    atomic_store(&r->finish_asked, 1);
    wake(r);
}

static void free_track(track *t)
{
    g_free(t->name);
    if (t->held) {
        for (guint i = 0; i < t->held->len; i++)
            arena_unref(g_array_index(t->held, held, i).arena);
        g_array_free(t->held, TRUE);
    }
    if (t->parts) {
        vp8_forget_frame(t);
        g_array_free(t->parts, TRUE);
    }
    clear_frames(t);
    if (t->frames)
        g_array_free(t->frames, TRUE);
    if (t->fparts)
        g_array_free(t->fparts, TRUE);
    if (t->codec_data)
        g_bytes_unref(t->codec_data);
    GstPad *pads[2] = {t->in, t->out};
    for (int i = 0; i < 2; i++)
        if (pads[i])
            gst_object_unref(pads[i]);
}

void tm_recorder_free(tm_recorder *r)
{
    if (!r)
        return;
    atomic_store(&r->ftok->cancelled, 1);
    atomic_store(&r->closing, 1);
    if (r->thread) {
        atomic_store(&r->abort_asked, 1);
        wake(r);
        g_thread_join(r->thread);
        r->thread = NULL;
    }
    if (r->pipeline) {
        gst_element_set_state(r->pipeline, GST_STATE_NULL);
        gst_object_unref(r->pipeline);
    }
    g_free(r->out.p);
    if (r->mkv.cues)
        g_array_free(r->mkv.cues, TRUE);
    if (r->fd >= 0)
        close(r->fd);
    if (r->bus)
        gst_object_unref(r->bus);
    tm_rec_writer_abort(r->writer); /* no final chunk: reads as cut short */
    for (size_t i = 0; i < r->ntracks; i++)
        free_track(&r->tracks[i]);
    if (r->efd >= 0)
        close(r->efd);
    g_free(r->ring);
    g_free(r->path);
    g_free(r->failure);
    token_unref(r->ftok);
    if (r->ctx)
        g_main_context_unref(r->ctx);
    g_mutex_clear(&r->lock);
    g_free(r);
}

/*
 * recorder.c - the per-visit recording pipeline of include/telemed/recorder.h.
 *
 * Owns: the packet ring (written by the media worker, read by the recorder
 * thread), the GStreamer pipeline, the output file (or its rec_crypt
 * writer) and the recorder thread. Threads:
 *   - media worker: tm_recorder_push() only (the producer side of the ring);
 *   - recorder thread (feeder_main): everything else until the result is
 *     posted; GStreamer's streaming threads run the pipeline and, when
 *     encrypting, the appsink callback that feeds the writer;
 *   - the creator's GMainContext: user callbacks and the final free.
 *
 * The ring is single-producer/single-consumer over C11 atomics: head is
 * written only by the producer, tail only by the consumer. The consumer
 * wakes every DRAIN_MS and empties it; the producer signals an eventfd only
 * when a burst fills a quarter of the ring while the consumer sleeps, so
 * pushing costs no syscall (and no wake-up of another thread) per packet.
 *
 * Timing: a packet's timestamp is its arrival time on the worker
 * (CLOCK_MONOTONIC, the GStreamer system clock's time base) minus the
 * pipeline's base time, which is set to the first packet's arrival. So the
 * jitterbuffer sees real arrival times even when the recorder thread lags,
 * and the file starts at 0.
 *
 * The muxer (matroskamux, a collect-pads element) writes only when every
 * track has data. Two things would stall it: a track that never starts
 * (a participant without a camera) and a track that stops (camera off, a
 * participant gone). The first is ended with EOS when the start window
 * (TRACK_START_WINDOW_MS from the first packet) closes, so the header lists
 * the tracks that exist. The second gets GAP events for its silent time.
 * Collect pads moves a pad's position on a GAP and stops waiting for a pad
 * that is ahead, the way it handles sparse subtitle tracks; but
 * matroskamux locks audio and video pads into "always wait", so once the
 * header is settled we unlock them (set_sparse).
 */
#include "telemed/recorder.h"
#include "telemed/common.h"
#include "telemed/rec_crypt.h"

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/base/gstcollectpads.h>
#include <gst/gst.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TICK_MS 100
#define DRAIN_MS 20 /* the recorder thread empties the ring at least this often */
#define TRACK_START_WINDOW_MS 3000
#define STALL_MS 1000 /* a track with no packet this long is declared empty (GAP) */
#define JITTER_LATENCY_MS 200
#define APPSRC_MAX_QUEUED 2000 /* packets waiting inside one appsrc before we drop */
#define SEAL_INTERVAL_MS 1000  /* encrypted: seal a chunk at least this often */
#define EOS_TIMEOUT_MS 15000

enum { ADMIT_OPEN, ADMIT_IN, ADMIT_OUT };

typedef struct slot {
    uint32_t len;
    uint16_t track;
    int64_t arrival_ns;
    uint8_t data[TM_RECORDER_SLOT_BYTES];
} slot;

typedef struct track {
    tm_recorder_codec codec;
    uint8_t pt;
    uint32_t clock_rate;
    char *name;
    GstElement *src;
    struct tm_recorder *r;
    GstElement *chain[4]; /* appsrc, jitterbuffer, depayloader, parser (NULL) */
    GstPad *muxpad;
    /* Whether the track is in the file: ADMIT_OPEN until its first buffer
     * reaches the muxer (ADMIT_IN) or the start window closes without one
     * (ADMIT_OUT). Decided once, by compare-and-swap, between the muxer's
     * streaming thread and the recorder thread. */
    _Atomic int admit;
    bool ended;            /* EOS sent, or taken out of the pipeline */
    bool started;          /* a packet went in */
    GstClockTime last_pts; /* of the last packet in */
    GstClockTime gap_end;  /* GAP events sent up to here */
} track;

struct tm_recorder {
    /* written by the producer (media worker) */
    _Atomic uint64_t head;
    _Atomic uint64_t pushed, bytes;
    /* written by the recorder thread; its own cache line, so the two
     * sides of the ring do not bounce one line between cores */
    _Alignas(64) _Atomic uint64_t tail;
    _Atomic int sleeping;
    /* rarely written */
    _Alignas(64) _Atomic uint64_t dropped;
    _Atomic int failed;
    _Atomic int closing; /* finish or free asked: refuse pushes */
    size_t ntracks;
    slot *ring;
    int efd;

    /* recorder thread */
    GThread *thread;
    _Atomic int finish_asked;
    _Atomic int abort_asked;
    GstElement *pipeline;
    GstElement *mux; /* owned by pipeline */
    GstBus *bus;
    GstClock *clock;
    bool playing;
    int64_t first_arrival_ns; /* 0: none yet */
    bool window_closed;
    track tracks[TM_RECORDER_MAX_TRACKS];
    char *path;
    bool encrypted;
    tm_rec_writer *writer; /* used on the muxer's streaming thread */
    int64_t last_seal_ms;

    /* shared between threads, under lock */
    GMutex lock;
    char *failure;
    GstClockTime min_pts, max_end;

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
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    if (head - tail >= TM_RECORDER_SLOTS) {
        rc = TM_ERATE;
        goto drop;
    }
    slot *s = &r->ring[head % TM_RECORDER_SLOTS];
    s->len = (uint32_t)len;
    s->track = (uint16_t)track_index;
    s->arrival_ns = mono_ns();
    memcpy(s->data, rtp, len);
    atomic_store_explicit(&r->head, head + 1, memory_order_release);
    atomic_fetch_add_explicit(&r->pushed, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->bytes, len, memory_order_relaxed);
    /* The recorder thread drains every DRAIN_MS anyway; wake it early only
     * when a burst fills a quarter of the ring. */
    if (head + 1 - tail >= TM_RECORDER_SLOTS / 4 &&
        atomic_load_explicit(&r->sleeping, memory_order_relaxed) &&
        atomic_exchange_explicit(&r->sleeping, 0, memory_order_relaxed)) {
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

/* Media time covered by the file (the earliest and latest buffer entering
 * the muxer) and, per track, when it last fed the muxer. Streaming threads. */
static GstPadProbeReturn mux_in_probe(GstPad *pad, GstPadProbeInfo *info, gpointer p)
{
    track *t = p;
    tm_recorder *r = t->r;
    int admit = ADMIT_OPEN;
    if (!atomic_compare_exchange_strong(&t->admit, &admit, ADMIT_IN) && admit == ADMIT_OUT)
        return GST_PAD_PROBE_DROP; /* being taken out: never reaches the muxer */
    GstBuffer *b = GST_PAD_PROBE_INFO_BUFFER(info);
    if (!b || !GST_BUFFER_PTS_IS_VALID(b) || gst_buffer_get_size(b) == 0)
        return GST_PAD_PROBE_OK;
    GstClockTime pts = GST_BUFFER_PTS(b);
    GstClockTime end = pts + (GST_BUFFER_DURATION_IS_VALID(b) ? GST_BUFFER_DURATION(b) : 0);
    g_mutex_lock(&r->lock);
    if (!GST_CLOCK_TIME_IS_VALID(r->min_pts) || pts < r->min_pts)
        r->min_pts = pts;
    if (!GST_CLOCK_TIME_IS_VALID(r->max_end) || end > r->max_end)
        r->max_end = end;
    g_mutex_unlock(&r->lock);
    return GST_PAD_PROBE_OK;
}

/* Lets collect pads stop waiting for this track while its position (moved
 * by GAP events) is ahead of the others. matroskamux adds audio and video
 * pads with their waiting state locked; the public GstCollectData state,
 * changed under the collect pads stream lock, unlocks it. */
static void set_sparse(track *t)
{
    GstCollectData *cd = gst_pad_get_element_private(t->muxpad);
    if (!cd || !cd->collect)
        return;
    GST_COLLECT_PADS_STREAM_LOCK(cd->collect);
    GST_COLLECT_PADS_STATE_UNSET(cd, GST_COLLECT_PADS_STATE_LOCKED);
    GST_COLLECT_PADS_STREAM_UNLOCK(cd->collect);
}

/* Encrypted output: the muxer's bytes into the chunk writer. Muxer thread. */
static GstFlowReturn on_mux_bytes(GstAppSink *sink, gpointer p)
{
    tm_recorder *r = p;
    GstSample *sample = gst_app_sink_pull_sample(sink);
    if (!sample)
        return GST_FLOW_EOS;
    GstBuffer *b = gst_sample_get_buffer(sample);
    GstMapInfo map;
    int rc = 0;
    if (b && gst_buffer_map(b, &map, GST_MAP_READ)) {
        rc = tm_rec_writer_write(r->writer, map.data, map.size);
        gst_buffer_unmap(b, &map);
    }
    int64_t now = tm_mono_ms();
    if (rc == 0 && now - r->last_seal_ms >= SEAL_INTERVAL_MS) {
        rc = tm_rec_writer_seal(r->writer);
        r->last_seal_ms = now;
    }
    gst_sample_unref(sample);
    if (rc < 0) {
        char *why = g_strdup_printf("write %s: %s", r->path, g_strerror(errno));
        set_failed(r, why);
        g_free(why);
        return GST_FLOW_ERROR;
    }
    return GST_FLOW_OK;
}

static GstElement *make(const char *factory, char **err)
{
    GstElement *e = gst_element_factory_make(factory, NULL);
    if (!e && !*err)
        *err = g_strdup_printf("GStreamer element %s is not installed", factory);
    return e;
}

static int build_pipeline(tm_recorder *r, char **err)
{
    r->pipeline = gst_pipeline_new("recorder");
    GstElement *mux = make("matroskamux", err);
    GstElement *sink = r->encrypted ? make("appsink", err) : make("filesink", err);
    if (!mux || !sink)
        goto fail_loose;
    /* Non-seekable output (the encrypted stream) must be written as a live
     * stream; a file gets its index and duration written at the end. */
    g_object_set(mux, "streamable", r->encrypted, "max-cluster-duration", (guint64)GST_SECOND,
                 "min-cluster-duration", (guint64)(GST_SECOND / 2), NULL);
    if (r->encrypted) {
        g_object_set(sink, "sync", FALSE, "async", FALSE, "emit-signals", FALSE, NULL);
        GstAppSinkCallbacks cbs = {0};
        cbs.new_sample = on_mux_bytes;
        gst_app_sink_set_callbacks(GST_APP_SINK(sink), &cbs, r, NULL);
    } else {
        /* Unbuffered: a killed server leaves on disk what the muxer wrote. */
        g_object_set(sink, "location", r->path, "sync", FALSE, "async", FALSE, "buffer-mode", 2,
                     NULL);
    }
    gst_bin_add_many(GST_BIN(r->pipeline), mux, sink, NULL);
    r->mux = mux;
    if (!gst_element_link(mux, sink)) {
        *err = g_strdup("cannot link matroskamux to its sink");
        return TM_EIO;
    }
    for (size_t i = 0; i < r->ntracks; i++) {
        track *t = &r->tracks[i];
        GstElement *src = make("appsrc", err);
        GstElement *jb = make("rtpjitterbuffer", err);
        GstElement *depay = NULL, *parse = NULL;
        switch (t->codec) {
        case TM_REC_OPUS:
            depay = make("rtpopusdepay", err);
            break;
        case TM_REC_VP8:
            depay = make("rtpvp8depay", err);
            break;
        case TM_REC_H264:
            depay = make("rtph264depay", err);
            parse = make("h264parse", err);
            break;
        }
        if (!src || !jb || !depay || (t->codec == TM_REC_H264 && !parse)) {
            if (src)
                gst_object_unref(src);
            if (jb)
                gst_object_unref(jb);
            if (depay)
                gst_object_unref(depay);
            if (parse)
                gst_object_unref(parse);
            return TM_EUNSUPPORTED;
        }
        bool audio = t->codec == TM_REC_OPUS;
        GstCaps *caps = gst_caps_new_simple(
            "application/x-rtp", "media", G_TYPE_STRING, audio ? "audio" : "video", "clock-rate",
            G_TYPE_INT, (int)t->clock_rate, "encoding-name", G_TYPE_STRING,
            codec_encoding(t->codec), "payload", G_TYPE_INT, (int)t->pt, NULL);
        g_object_set(src, "caps", caps, "format", GST_FORMAT_TIME, "is-live", TRUE, "block", FALSE,
                     "max-bytes", (guint64)0, "emit-signals", FALSE, NULL);
        gst_caps_unref(caps);
        g_object_set(jb, "latency", (guint)JITTER_LATENCY_MS, "do-lost", TRUE, NULL);
        if (!audio)
            g_object_set(depay, "wait-for-keyframe", TRUE, NULL);
        gst_bin_add_many(GST_BIN(r->pipeline), src, jb, depay, NULL);
        if (parse)
            gst_bin_add(GST_BIN(r->pipeline), parse);
        GstElement *last = parse ? parse : depay;
        GstPad *mpad = gst_element_request_pad_simple(mux, audio ? "audio_%u" : "video_%u");
        GstPad *lpad = gst_element_get_static_pad(last, "src");
        bool ok = gst_element_link_many(src, jb, depay, NULL) &&
                  (!parse || gst_element_link(depay, parse)) && mpad &&
                  gst_pad_link(lpad, mpad) == GST_PAD_LINK_OK;
        if (mpad) {
            gst_pad_add_probe(mpad, GST_PAD_PROBE_TYPE_BUFFER, mux_in_probe, t, NULL);
            t->muxpad = mpad; /* our reference, dropped in free */
        }
        gst_object_unref(lpad);
        if (!ok) {
            *err = g_strdup_printf("cannot link track %zu", i);
            return TM_EIO;
        }
        t->src = src;
        t->chain[0] = src;
        t->chain[1] = jb;
        t->chain[2] = depay;
        t->chain[3] = parse;
    }
    r->bus = gst_element_get_bus(r->pipeline);
    /* A private monotonic system clock: mono_ns() stamps packets on the
     * same time base, whatever anyone does to the shared default clock. */
    r->clock = g_object_new(GST_TYPE_SYSTEM_CLOCK, "clock-type", GST_CLOCK_TYPE_MONOTONIC, NULL);
    gst_object_ref_sink(r->clock); /* ours; the pipeline takes its own ref */
    gst_pipeline_use_clock(GST_PIPELINE(r->pipeline), r->clock);
    gst_element_set_start_time(r->pipeline, GST_CLOCK_TIME_NONE);
    return 0;
fail_loose:
    if (mux)
        gst_object_unref(mux);
    if (sink)
        gst_object_unref(sink);
    return TM_EUNSUPPORTED;
}

/* ---- recorder thread ---------------------------------------------------- */

/* Starts the pipeline on the first packet, with that packet's arrival as
 * running time 0 (the system clock is CLOCK_MONOTONIC, as mono_ns()). */
static void start_playing(tm_recorder *r, int64_t first_arrival_ns)
{
    r->first_arrival_ns = first_arrival_ns;
    gst_element_set_base_time(r->pipeline, (GstClockTime)first_arrival_ns);
    if (gst_element_set_state(r->pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
        set_failed(r, "recording pipeline does not start");
    r->playing = true;
    for (size_t i = 0; i < r->ntracks; i++) {
        if (!r->tracks[i].name)
            continue;
        GstTagList *tags = gst_tag_list_new(GST_TAG_TITLE, r->tracks[i].name, NULL);
        gst_tag_list_set_scope(tags, GST_TAG_SCOPE_STREAM);
        gst_element_send_event(r->tracks[i].src, gst_event_new_tag(tags));
    }
}

static void feed_packet(tm_recorder *r, const slot *s)
{
    if (atomic_load(&r->failed))
        goto drop;
    if (!r->playing)
        start_playing(r, s->arrival_ns);
    track *t = &r->tracks[s->track];
    if (t->ended || gst_app_src_get_current_level_buffers(GST_APP_SRC(t->src)) >= APPSRC_MAX_QUEUED)
        goto drop;
    int64_t rt = s->arrival_ns - r->first_arrival_ns;
    GstClockTime pts = rt > 0 ? (GstClockTime)rt : 0;
    GstBuffer *b = gst_buffer_new_memdup(s->data, s->len);
    if (GST_CLOCK_TIME_IS_VALID(t->gap_end) && pts < t->gap_end)
        pts = t->gap_end; /* never back into time already declared empty */
    GST_BUFFER_PTS(b) = pts;
    GST_BUFFER_DTS(b) = pts;
    t->started = true;
    t->last_pts = pts;
    if (gst_app_src_push_buffer(GST_APP_SRC(t->src), b) == GST_FLOW_OK)
        return;
drop:
    atomic_fetch_add_explicit(&r->dropped, 1, memory_order_relaxed);
}

/* Moves every queued packet into the pipeline. Returns how many. */
static size_t drain(tm_recorder *r)
{
    size_t n = 0;
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    for (;;) {
        uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
        if (tail == head)
            break;
        while (tail != head) {
            feed_packet(r, &r->ring[tail % TM_RECORDER_SLOTS]);
            tail++;
            n++;
            atomic_store_explicit(&r->tail, tail, memory_order_release);
        }
    }
    return n;
}

/* Takes a track that has not reached the muxer out of the pipeline before
 * the muxer writes its header, so the file lists no empty track. (An EOS
 * would not do: it carries the caps, and the muxer would declare the
 * track.) Returns false, changing nothing, if its first buffer won the
 * race to the muxer. Once the track is ADMIT_OUT the muxer-side probe drops
 * whatever the branch still pushes, so no streaming thread of the branch
 * can be inside the muxer while it is torn down. */
static bool drop_track(tm_recorder *r, track *t)
{
    int admit = ADMIT_OPEN;
    if (!atomic_compare_exchange_strong(&t->admit, &admit, ADMIT_OUT))
        return admit == ADMIT_OUT;
    t->ended = true;
    for (int i = 0; i < 4; i++) {
        if (!t->chain[i])
            continue;
        gst_element_set_state(t->chain[i], GST_STATE_NULL);
        gst_bin_remove(GST_BIN(r->pipeline), t->chain[i]); /* unlinks, drops the bin's ref */
        t->chain[i] = NULL;
    }
    t->src = NULL;
    gst_element_release_request_pad(r->mux, t->muxpad);
    return true;
}

/* Keeps the muxer moving: when the start window closes, ends the tracks
 * that have not reached the muxer (so its header lists the others) and
 * lets the muxer skip the rest when they have GAPs; after that, declares
 * each silent stretch of a track (STALL_MS without a packet) empty. */
static void tick(tm_recorder *r)
{
    if (!r->playing || atomic_load(&r->failed))
        return;
    int64_t now_rt = mono_ns() - r->first_arrival_ns;
    if (!r->window_closed) {
        bool all = true;
        for (size_t i = 0; i < r->ntracks; i++)
            all = all && atomic_load(&r->tracks[i].admit) == ADMIT_IN;
        if (!all && now_rt < (int64_t)TRACK_START_WINDOW_MS * GST_MSECOND)
            return;
        r->window_closed = true;
        for (size_t i = 0; i < r->ntracks; i++) {
            track *t = &r->tracks[i];
            if (!drop_track(r, t))
                set_sparse(t);
        }
    }
    if (now_rt <= (int64_t)STALL_MS * GST_MSECOND)
        return;
    GstClockTime upto = (GstClockTime)now_rt - STALL_MS * GST_MSECOND;
    for (size_t i = 0; i < r->ntracks; i++) {
        track *t = &r->tracks[i];
        if (!t->started || t->ended || t->last_pts >= upto)
            continue;
        GstClockTime from = t->last_pts + GST_MSECOND;
        if (GST_CLOCK_TIME_IS_VALID(t->gap_end) && t->gap_end > from)
            from = t->gap_end;
        if (upto <= from)
            continue;
        gst_element_send_event(t->src, gst_event_new_gap(from, upto - from));
        t->gap_end = upto;
    }
}

/* Handles what the pipeline posted, waiting up to timeout for EOS or an
 * error. Every message is taken off the bus (a long visit would otherwise
 * pile up state changes and warnings). Returns true at EOS. */
static bool poll_bus(tm_recorder *r, GstClockTime timeout)
{
    int64_t deadline = g_get_monotonic_time() + (int64_t)(timeout / GST_USECOND);
    for (;;) {
        int64_t left_us = deadline - g_get_monotonic_time();
        GstMessage *m =
            gst_bus_timed_pop(r->bus, left_us > 0 ? (GstClockTime)left_us * GST_USECOND : 0);
        if (!m)
            return false;
        bool eos = GST_MESSAGE_TYPE(m) == GST_MESSAGE_EOS;
        if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR) {
            GError *e = NULL;
            char *debug = NULL;
            gst_message_parse_error(m, &e, &debug);
            /* The debug text ends with the system's reason ("No space left
             * on device"); its first line is a source location. */
            const char *detail = debug ? strrchr(debug, '\n') : NULL;
            detail = detail ? detail + 1 : debug;
            char *why =
                g_strdup_printf("%s: %s%s%s", GST_OBJECT_NAME(GST_MESSAGE_SRC(m)),
                                e ? e->message : "error", detail ? " " : "", detail ? detail : "");
            g_free(debug);
            set_failed(r, why); /* keeps the first reason: a write error before "stopped" */
            g_free(why);
            g_clear_error(&e);
        }
        gst_message_unref(m);
        if (eos || atomic_load(&r->failed))
            return eos;
    }
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
    bool had_media = r->playing;
    if (had_media && !atomic_load(&r->failed)) {
        /* Ended inside the start window: the tracks that never reached the
         * muxer leave, as they would have when the window closed. */
        size_t live = 0;
        for (size_t i = 0; i < r->ntracks; i++) {
            track *t = &r->tracks[i];
            if (!r->window_closed && !t->ended)
                drop_track(r, t); /* no-op for a track in the file */
            live += !t->ended;
        }
        for (size_t i = 0; i < r->ntracks; i++) {
            if (!r->tracks[i].ended)
                gst_app_src_end_of_stream(GST_APP_SRC(r->tracks[i].src));
        }
        if (live == 0)
            had_media = false; /* packets came, but none reached the file */
        else if (!poll_bus(r, EOS_TIMEOUT_MS * GST_MSECOND) && !atomic_load(&r->failed))
            set_failed(r, "recording did not finish in time");
    }
    gst_element_set_state(r->pipeline, GST_STATE_NULL);
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
    g_mutex_lock(&r->lock);
    if (GST_CLOCK_TIME_IS_VALID(r->min_pts) && GST_CLOCK_TIME_IS_VALID(r->max_end))
        res->duration_ms = (int64_t)((r->max_end - r->min_pts) / GST_MSECOND);
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
    int64_t next_tick = tm_mono_ms() + TICK_MS;
    for (;;) {
        drain(r);
        if (r->playing)
            poll_bus(r, 0);
        if (atomic_load(&r->abort_asked))
            return NULL;
        if (atomic_load(&r->finish_asked)) {
            drain(r); /* pushes made before finish was asked */
            finalise(r);
            post(r->ctx, deliver_result, r);
            return NULL;
        }
        int64_t now = tm_mono_ms();
        if (now >= next_tick) {
            tick(r);
            next_tick = now + TICK_MS;
        }
        atomic_store(&r->sleeping, 1);
        if (atomic_load(&r->head) == atomic_load(&r->tail) && !atomic_load(&r->finish_asked) &&
            !atomic_load(&r->abort_asked)) {
            struct pollfd pfd = {.fd = r->efd, .events = POLLIN};
            int wait_ms = (int)(next_tick - tm_mono_ms());
            wait_ms = wait_ms < DRAIN_MS ? wait_ms : DRAIN_MS;
            (void)poll(&pfd, 1, wait_ms > 0 ? wait_ms : 0);
        }
        atomic_store(&r->sleeping, 0);
        uint64_t v;
        ssize_t n = read(r->efd, &v, sizeof(v));
        (void)n;
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
        t->last_pts = t->gap_end = GST_CLOCK_TIME_NONE;
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
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
            *err = g_strdup_printf("open %s: %s", path, g_strerror(errno));
            goto fail;
        }
        close(fd);
    }
    r->ring = g_try_malloc(sizeof(slot) * TM_RECORDER_SLOTS);
    r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!r->ring || r->efd < 0) {
        *err = g_strdup("recorder: out of memory or eventfd");
        goto fail;
    }
    /* Touch every page now, so the worker's first pass through the ring
     * takes no page faults. */
    memset(r->ring, 0, sizeof(slot) * TM_RECORDER_SLOTS);
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
    if (r->bus)
        gst_object_unref(r->bus);
    if (r->clock)
        gst_object_unref(r->clock);
    tm_rec_writer_abort(r->writer); /* no final chunk: reads as cut short */
    for (size_t i = 0; i < r->ntracks; i++) {
        g_free(r->tracks[i].name);
        if (r->tracks[i].muxpad)
            gst_object_unref(r->tracks[i].muxpad);
    }
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

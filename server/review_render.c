/*
 * review_render.c - the child process that makes one review rendition:
 * `telemed-server render-review`, started by server/review.c at nice 19 /
 * SCHED_IDLE, one per rendition.
 *
 * It reads its job as one JSON object on stdin (never argv: the key is in
 * it): {out, parts: [{path, encrypted, offset_ms}], key (hex) or null,
 * encrypt (the rendition too), width, height, fps, video_kbps, audio_kbps}.
 * It decodes every recording part with GStreamer and writes one WebM:
 * every video track scaled into a tile of a grid (compositor), every audio
 * track mixed (audiomixer), VP8 + Opus. Parts are placed on one timeline by
 * the wall time of each one's first packet (the DateUTC the recorder writes;
 * the job's offset_ms, the parts' row times, only for a recording without
 * it), so a part begun when the sender set grew lines up with the ones
 * before it and everyone's lips stay in sync across parts. Each tile is
 * labelled (textoverlay) with its track's name less the kind, which the
 * recorder makes of the visit role and the participant's id ("attending
 * d-zhou"), never a name; a tile's label is found by the track number in its
 * decoded stream's id, not by the order in which the streams come out of
 * decodebin, so no tile can carry another's.
 *
 * No plaintext with a name: the evidence is fed to GStreamer from memory
 * (appsrc; an encrypted part through the decrypting reader), and the WebM is
 * written into an unnamed O_TMPFILE, then encrypted into the final file (or,
 * with encryption off, linked under its name). A killed child leaves no
 * plaintext: the kernel drops the unnamed file.
 *
 * Why a child and not a thread of the server: a demuxer or decoder that
 * crashes on a damaged file takes this process down, not the visits in
 * progress; and the low priority covers every GStreamer thread at once.
 *
 * Result: one JSON line on stdout, {"ok":true, size_bytes, duration_ms,
 * sha256, plain_sha256, cpu_ms, wall_ms, labelled (false: no textoverlay
 * plugin), placed_by ("first_packet" or "job_offsets")} or {"ok":false,
 * "error": why}.
 */
#include "review_render.h"
#include "telemed/common.h"
#include "telemed/rec_crypt.h"

#include <errno.h>
#include <fcntl.h>
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define READ_CHUNK (64 * 1024)
#define HEADER_MAX (256 * 1024)
#define MAX_TRACKS 32
#define LABEL_LEN 64
/* A render that makes no output for this long is stuck, not slow. */
#define STALL_S 300

typedef struct part {
    int index;
    const char *path;
    bool encrypted;
    int64_t offset_ms;     /* where the part starts in the rendition */
    bool has_date;         /* the header gave the first packet's wall time */
    int64_t date_ns;       /* DateUTC: ns since 2001-01-01 UTC */
    tm_rec_reader *reader; /* encrypted parts */
    int fd;                /* plain parts */
    uint64_t size, pos;
    int n_video, n_audio;
    int n_labels;
    struct {
        uint64_t number; /* the Matroska TrackNumber */
        char text[LABEL_LEN];
    } labels[MAX_TRACKS];      /* the video tracks' tile labels */
    GstPad *vpads[MAX_TRACKS]; /* the compositor / mixer pads kept for this part */
    GstPad *apads[MAX_TRACKS];
    int video_linked, audio_linked;
    struct job *job;
} part;

typedef struct job {
    part *parts;
    size_t n_parts;
    const char *out;
    uint8_t key[32];
    bool has_key, encrypt; /* encrypt: the rendition too, with key */
    int width, height, fps, video_kbps, audio_kbps;
    int n_tiles, cols, rows;
    bool no_labels; /* under lock: no textoverlay element, the tiles go unlabelled */
    bool by_packet; /* parts placed by their first packets, not the job's offsets */
    GstElement *pipe, *comp, *mix;
    GMainLoop *loop;
    GMutex lock;
    char *error;            /* first failure, under lock */
    GstClockTime end_ts;    /* latest media time mixed, under lock */
    int64_t last_output_us; /* under lock */
} job;

static gboolean quit_idle(gpointer user)
{
    g_main_loop_quit(((job *)user)->loop);
    return G_SOURCE_REMOVE;
}

/* Keeps the first failure and ends the loop from its own thread (an idle:
 * a failure before the loop runs still ends it). Any thread. */
static void job_fail(job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void job_fail(job *j, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_mutex_lock(&j->lock);
    if (!j->error)
        j->error = msg;
    else
        g_free(msg);
    g_mutex_unlock(&j->lock);
    g_idle_add(quit_idle, j);
}

/* ---- reading the evidence ------------------------------------------ */

static int64_t part_read(part *p, void *buf, size_t len, uint64_t off)
{
    if (p->encrypted)
        return tm_rec_reader_pread(p->reader, buf, len, off);
    ssize_t n = pread(p->fd, buf, len, (off_t)off);
    return n < 0 ? TM_EIO : n;
}

static int part_open(part *p, const job *j, char **err)
{
    p->fd = -1;
    if (p->encrypted) {
        if (!j->has_key) {
            *err = g_strdup("encrypted and no key");
            return TM_EINVAL;
        }
        if (!(p->reader = tm_rec_reader_open(p->path, j->key, err)))
            return TM_EIO;
        p->size = tm_rec_reader_size(p->reader);
        return 0;
    }
    struct stat sb;
    p->fd = open(p->path, O_RDONLY | O_CLOEXEC);
    if (p->fd < 0 || fstat(p->fd, &sb) < 0) {
        *err = g_strdup_printf("cannot open: %s", g_strerror(errno));
        return TM_EIO;
    }
    p->size = (uint64_t)sb.st_size;
    return 0;
}

/* An EBML variable-length integer at *pos: its value (the length marker
 * kept for element ids) into *out, or false when it does not fit in len.
 * An all-ones size (unknown, as a live Segment has) comes out as UINT64_MAX. */
static bool ebml_vint(const uint8_t *b, size_t len, size_t *pos, bool is_id, uint64_t *out)
{
    if (*pos >= len || b[*pos] == 0)
        return false;
    int n = __builtin_clz((unsigned)b[*pos]) - 23;
    if (*pos + (size_t)n > len)
        return false;
    uint64_t v = is_id ? b[*pos] : b[*pos] & (0xffu >> n);
    bool ones = v == (0xffu >> n);
    for (int i = 1; i < n; i++) {
        v = v << 8 | b[*pos + (size_t)i];
        ones = ones && b[*pos + (size_t)i] == 0xff;
    }
    *pos += (size_t)n;
    *out = !is_id && ones ? UINT64_MAX : v;
    return true;
}

/* A video track's tile label: its name less the kind the recorder appends
 * (" video", or "-video<k>" after a peer id), ':' shown as a space. */
static void add_label(part *p, uint64_t number, const char *name, size_t len)
{
    char *t = p->labels[p->n_labels].text;
    size_t n = len < LABEL_LEN - 1 ? len : LABEL_LEN - 1;
    memcpy(t, name ? name : "", name ? n : 0);
    t[name ? n : 0] = 0;
    char *kind = g_strrstr(t, " video");
    if (!kind)
        kind = g_strrstr(t, "-video");
    if (kind && kind != t)
        *kind = 0;
    for (char *c = t; *c; c++)
        if (*c == ':' || (unsigned char)*c < 0x20)
            *c = ' ';
    if (!g_utf8_validate(t, -1, NULL))
        t[0] = 0;
    p->labels[p->n_labels++].number = number;
}

/* The label of the track a decoded stream comes from: matroskademux names
 * its streams ".../<TrackNumber>:<TrackUID>". NULL when it cannot be told. */
static const char *label_of(const part *p, GstPad *pad)
{
    gchar *sid = gst_pad_get_stream_id(pad);
    const char *slash = sid ? strrchr(sid, '/') : NULL;
    char *end = NULL;
    guint64 number = slash ? g_ascii_strtoull(slash + 1, &end, 10) : 0;
    const char *label = NULL;
    for (int i = 0; end && *end == ':' && i < p->n_labels; i++)
        if (p->labels[i].number == number)
            label = p->labels[i].text;
    g_free(sid);
    return label;
}

/* The Info element's DateUTC (ns since 2001): the wall time of the part's
 * first packet, which the recorder writes. */
static void read_date(part *p, const uint8_t *b, size_t len)
{
    size_t pos = 0;
    uint64_t id, size;
    while (ebml_vint(b, len, &pos, true, &id) && ebml_vint(b, len, &pos, false, &size) &&
           size <= len - pos) {
        if (id == 0x4461 && size == 8) {
            uint64_t v = 0;
            for (int k = 0; k < 8; k++)
                v = v << 8 | b[pos + (size_t)k];
            p->date_ns = (int64_t)v;
            p->has_date = true;
        }
        pos += size;
    }
}

/* Reads a part's Matroska header, which the recorder writes before the
 * first Cluster: its start (Info) and its video and audio tracks (Tracks),
 * so the grid is laid out before anything is decoded. */
static int read_header(part *p, char **err)
{
    size_t len = p->size < HEADER_MAX ? (size_t)p->size : HEADER_MAX;
    uint8_t *b = g_malloc(len ? len : 1);
    int64_t got = part_read(p, b, len, 0);
    int rc = TM_EINVAL;
    uint64_t id, size;
    size_t pos = 0;
    if (got < 0) {
        *err = g_strdup(got == TM_EAUTH ? "failed authentication (altered file or wrong key)"
                                        : "unreadable");
        rc = (int)got;
        goto done;
    }
    len = (size_t)got;
    if (!ebml_vint(b, len, &pos, true, &id) || id != 0x1A45DFA3 ||
        !ebml_vint(b, len, &pos, false, &size) || size > len - pos)
        goto bad;
    pos += size;
    if (!ebml_vint(b, len, &pos, true, &id) || id != 0x18538067 ||
        !ebml_vint(b, len, &pos, false, &size))
        goto bad;
    while (ebml_vint(b, len, &pos, true, &id) && ebml_vint(b, len, &pos, false, &size)) {
        if (id == 0x1F43B675 || size > len - pos)
            break; /* a Cluster before Tracks, or Tracks cut off */
        if (id == 0x1549A966)
            read_date(p, b + pos, (size_t)size);
        if (id != 0x1654AE6B) {
            pos += size;
            continue;
        }
        size_t end = pos + size;
        while (pos < end && ebml_vint(b, end, &pos, true, &id) &&
               ebml_vint(b, end, &pos, false, &size) && size <= end - pos) {
            size_t entry_end = pos + size;
            int type = 0;
            uint64_t number = 0;
            const uint8_t *name = NULL;
            size_t name_len = 0;
            while (id == 0xAE && pos < entry_end) {
                uint64_t cid, csize;
                if (!ebml_vint(b, entry_end, &pos, true, &cid) ||
                    !ebml_vint(b, entry_end, &pos, false, &csize) || csize > entry_end - pos)
                    goto bad;
                if (cid == 0x83 && csize == 1) {
                    type = b[pos];
                } else if (cid == 0xD7 && csize >= 1 && csize <= 8) {
                    for (uint64_t k = 0; k < csize; k++)
                        number = number << 8 | b[pos + k];
                } else if (cid == 0x536E) {
                    name = b + pos;
                    name_len = csize;
                }
                pos += csize;
            }
            if (type == 1 && p->n_video < MAX_TRACKS) {
                p->n_video++;
                add_label(p, number, (const char *)name, name_len);
            } else if (type == 2 && p->n_audio < MAX_TRACKS) {
                p->n_audio++;
            }
            pos = entry_end;
        }
        rc = p->n_video + p->n_audio > 0 ? 0 : TM_EINVAL;
        if (rc < 0)
            *err = g_strdup("has no tracks");
        goto done;
    }
bad:
    *err = g_strdup("is not a readable Matroska file (no track list in its header)");
done:
    g_free(b);
    return rc;
}

/* ---- the pipeline --------------------------------------------------- */

/* appsrc wants bytes: the next chunk of the part, decrypted. A chunk that
 * fails authentication stops the render; nothing unverified is decoded. */
static void on_need_data(GstAppSrc *src, guint length, gpointer user)
{
    part *p = user;
    if (p->pos >= p->size) {
        gst_app_src_end_of_stream(src);
        return;
    }
    GstBuffer *buf = gst_buffer_new_allocate(NULL, READ_CHUNK, NULL);
    GstMapInfo map;
    gst_buffer_map(buf, &map, GST_MAP_WRITE);
    int64_t n = part_read(p, map.data, READ_CHUNK, p->pos);
    gst_buffer_unmap(buf, &map);
    if (n <= 0) {
        gst_buffer_unref(buf);
        job_fail(p->job, "evidence part %d at byte %llu: %s", p->index, (unsigned long long)p->pos,
                 n == TM_EAUTH ? "failed authentication (altered file or wrong key)"
                 : n == 0      ? "ends early"
                               : "unreadable");
        return;
    }
    gst_buffer_set_size(buf, (gsize)n);
    p->pos += (uint64_t)n;
    gst_app_src_push_buffer(src, buf);
}

static GstElement *make(GstElement *bin, const char *factory)
{
    GstElement *e = gst_element_factory_make(factory, NULL);
    if (e)
        gst_bin_add(GST_BIN(bin), e);
    return e;
}

/* The tile's name at its bottom left on a shaded band, sized to the tile
 * (textoverlay's own scaling assumes a 640-wide picture). */
static GstElement *make_label(job *j, const char *text)
{
    char font[32];
    int size = j->height / j->rows / 14;
    snprintf(font, sizeof font, "Sans Bold %d", size < 8 ? 8 : size);
    GstElement *t = gst_element_factory_make("textoverlay", NULL);
    if (!t) {
        g_mutex_lock(&j->lock);
        j->no_labels = true;
        g_mutex_unlock(&j->lock);
        return NULL;
    }
    g_object_set(t, "text", text, "font-desc", font, "auto-resize", FALSE, "shaded-background",
                 TRUE, "wait-text", FALSE, NULL);
    gst_util_set_object_arg(G_OBJECT(t), "valignment", "bottom");
    gst_util_set_object_arg(G_OBJECT(t), "halignment", "left");
    gst_bin_add(GST_BIN(j->pipe), t);
    return t;
}

/* convert ! scale/resample ! caps [! textoverlay] ! queue -> target, added to
 * the running pipeline and started downstream first. label: a video tile's. */
static bool link_branch(job *j, GstPad *src_pad, GstPad *target, bool video, const char *label)
{
    GstElement *conv = make(j->pipe, video ? "videoconvert" : "audioconvert");
    GstElement *scale = make(j->pipe, video ? "videoscale" : "audioresample");
    GstElement *caps = make(j->pipe, "capsfilter");
    GstElement *text = video && label && label[0] ? make_label(j, label) : NULL;
    GstElement *queue = make(j->pipe, "queue");
    if (!conv || !scale || !caps || !queue)
        return false;
    GstCaps *c = video ? gst_caps_new_simple("video/x-raw", "width", G_TYPE_INT, j->width / j->cols,
                                             "height", G_TYPE_INT, j->height / j->rows,
                                             "pixel-aspect-ratio", GST_TYPE_FRACTION, 1, 1, NULL)
                       : gst_caps_new_simple("audio/x-raw", "rate", G_TYPE_INT, 48000, "channels",
                                             G_TYPE_INT, 2, NULL);
    g_object_set(caps, "caps", c, NULL);
    gst_caps_unref(c);
    GstPad *qsrc = gst_element_get_static_pad(queue, "src");
    bool ok =
        gst_element_link_many(conv, scale, caps, NULL) &&
        (text ? gst_element_link_many(caps, text, queue, NULL) : gst_element_link(caps, queue)) &&
        gst_pad_link(qsrc, target) == GST_PAD_LINK_OK;
    gst_object_unref(qsrc);
    GstElement *chain[] = {queue, text, caps, scale, conv};
    for (size_t i = 0; ok && i < G_N_ELEMENTS(chain); i++)
        ok = !chain[i] || gst_element_sync_state_with_parent(chain[i]);
    GstPad *sink = gst_element_get_static_pad(conv, "sink");
    ok = ok && gst_pad_link(src_pad, sink) == GST_PAD_LINK_OK;
    gst_object_unref(sink);
    return ok;
}

/* decodebin found a decoded stream of part p: into the tile or mixer pad
 * kept for it, moved along the timeline by the part's offset. */
static void on_pad_added(GstElement *dec, GstPad *pad, gpointer user)
{
    part *p = user;
    job *j = p->job;
    GstCaps *caps = gst_pad_get_current_caps(pad);
    if (!caps)
        caps = gst_pad_query_caps(pad, NULL);
    GstStructure *st = caps && !gst_caps_is_empty(caps) && !gst_caps_is_any(caps)
                           ? gst_caps_get_structure(caps, 0)
                           : NULL;
    char name[64];
    g_strlcpy(name, st ? gst_structure_get_name(st) : "unknown", sizeof name);
    bool video = g_str_has_prefix(name, "video/");
    bool audio = g_str_has_prefix(name, "audio/");
    if (caps)
        gst_caps_unref(caps);
    GstPad *target = NULL;
    g_mutex_lock(&j->lock);
    if (video && p->video_linked < p->n_video)
        target = p->vpads[p->video_linked++];
    else if (audio && p->audio_linked < p->n_audio)
        target = p->apads[p->audio_linked++];
    g_mutex_unlock(&j->lock);
    if (!target) {
        job_fail(j, "evidence part %d has a stream its header does not list (%s)", p->index, name);
        return;
    }
    gst_pad_set_offset(pad, p->offset_ms * GST_MSECOND);
    if (!link_branch(j, pad, target, video, video ? label_of(p, pad) : NULL))
        job_fail(j, "cannot link a %s stream of part %d", video ? "video" : "audio", p->index);
}

/* The header listed a track that decodebin did not expose (no frame
 * decoded): its pad goes, or the mixer would wait for it forever. */
static void on_no_more_pads(GstElement *dec, gpointer user)
{
    part *p = user;
    job *j = p->job;
    g_mutex_lock(&j->lock);
    for (int i = p->video_linked; i < p->n_video; i++)
        gst_element_release_request_pad(j->comp, p->vpads[i]);
    for (int i = p->audio_linked; i < p->n_audio; i++)
        gst_element_release_request_pad(j->mix, p->apads[i]);
    p->n_video = p->video_linked;
    p->n_audio = p->audio_linked;
    g_mutex_unlock(&j->lock);
}

/* Output progress: how far the rendition has got (its duration at the
 * end) and when it last moved (the stall watchdog). */
static GstPadProbeReturn on_output(GstPad *pad, GstPadProbeInfo *info, gpointer user)
{
    job *j = user;
    GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
    if (buf && GST_BUFFER_PTS_IS_VALID(buf)) {
        GstClockTime end = GST_BUFFER_PTS(buf) +
                           (GST_BUFFER_DURATION_IS_VALID(buf) ? GST_BUFFER_DURATION(buf) : 0);
        g_mutex_lock(&j->lock);
        if (end > j->end_ts || !GST_CLOCK_TIME_IS_VALID(j->end_ts))
            j->end_ts = end;
        j->last_output_us = g_get_monotonic_time();
        g_mutex_unlock(&j->lock);
    }
    return GST_PAD_PROBE_OK;
}

/* The tiles: a near-square grid (2 -> 2x1, 3-4 -> 2x2, 5-6 -> 3x2, ...). */
static void lay_out(job *j)
{
    int n = j->n_tiles > 0 ? j->n_tiles : 1;
    j->cols = 1;
    while (j->cols * j->cols < n)
        j->cols++;
    j->rows = (n + j->cols - 1) / j->cols;
}

/* compositor or audiomixer ! caps ! encoder ! queue ! webmmux */
static bool add_output(job *j, GstElement *agg, GstElement *mux, bool video)
{
    GstElement *caps = make(j->pipe, "capsfilter");
    GstElement *conv = make(j->pipe, video ? "videoconvert" : "audioconvert");
    GstElement *enc = make(j->pipe, video ? "vp8enc" : "opusenc");
    GstElement *queue = make(j->pipe, "queue");
    if (!caps || !conv || !enc || !queue)
        return false;
    GstCaps *c = video ? gst_caps_new_simple("video/x-raw", "width", G_TYPE_INT, j->width, "height",
                                             G_TYPE_INT, j->height, "framerate", GST_TYPE_FRACTION,
                                             j->fps, 1, NULL)
                       : gst_caps_new_simple("audio/x-raw", "rate", G_TYPE_INT, 48000, "channels",
                                             G_TYPE_INT, 2, NULL);
    g_object_set(caps, "caps", c, NULL);
    gst_caps_unref(c);
    if (video) {
        /* Realtime mode at its fastest preset: a review copy needs to be
         * legible, not efficient, and it runs on the machine's spare time. */
        g_object_set(enc, "target-bitrate", j->video_kbps * 1000, "deadline", (gint64)1, "cpu-used",
                     8, "threads", 1, "keyframe-max-dist", j->fps * 10, NULL);
    } else {
        g_object_set(enc, "bitrate", j->audio_kbps * 1000, NULL);
    }
    GstPad *out = gst_element_get_static_pad(agg, "src");
    gst_pad_add_probe(out, GST_PAD_PROBE_TYPE_BUFFER, on_output, j, NULL);
    gst_object_unref(out);
    return gst_element_link_many(agg, caps, conv, enc, queue, NULL) &&
           gst_element_link_pads(queue, "src", mux, video ? "video_%u" : "audio_%u");
}

static bool build(job *j, int tmp_fd)
{
    j->pipe = gst_pipeline_new("review");
    GstElement *mux = make(j->pipe, "webmmux");
    GstElement *sink = make(j->pipe, "fdsink");
    if (!mux || !sink)
        return false;
    g_object_set(sink, "fd", tmp_fd, "sync", FALSE, NULL);
    if (!gst_element_link(mux, sink))
        return false;
    int n_audio = 0;
    for (size_t i = 0; i < j->n_parts; i++) {
        j->n_tiles += j->parts[i].n_video;
        n_audio += j->parts[i].n_audio;
    }
    lay_out(j);
    if (j->n_tiles) {
        if (!(j->comp = make(j->pipe, "compositor")))
            return false;
        gst_util_set_object_arg(G_OBJECT(j->comp), "background", "black");
        if (!add_output(j, j->comp, mux, true))
            return false;
    }
    if (n_audio) {
        if (!(j->mix = make(j->pipe, "audiomixer")) || !add_output(j, j->mix, mux, false))
            return false;
    }
    int tile = 0;
    for (size_t i = 0; i < j->n_parts; i++) {
        part *p = &j->parts[i];
        for (int v = 0; v < p->n_video; v++, tile++) {
            p->vpads[v] = gst_element_request_pad_simple(j->comp, "sink_%u");
            g_object_set(p->vpads[v], "xpos", (tile % j->cols) * (j->width / j->cols), "ypos",
                         (tile / j->cols) * (j->height / j->rows), NULL);
        }
        for (int a = 0; a < p->n_audio; a++)
            p->apads[a] = gst_element_request_pad_simple(j->mix, "sink_%u");
        GstElement *src = make(j->pipe, "appsrc");
        GstElement *dec = make(j->pipe, "decodebin");
        if (!src || !dec)
            return false;
        g_object_set(src, "format", GST_FORMAT_BYTES, "stream-type", GST_APP_STREAM_TYPE_STREAM,
                     "max-bytes", (guint64)(4 * READ_CHUNK), NULL);
        GstAppSrcCallbacks cb = {.need_data = on_need_data};
        gst_app_src_set_callbacks(GST_APP_SRC(src), &cb, p, NULL);
        g_signal_connect(dec, "pad-added", G_CALLBACK(on_pad_added), p);
        g_signal_connect(dec, "no-more-pads", G_CALLBACK(on_no_more_pads), p);
        if (!gst_element_link(src, dec))
            return false;
    }
    return true;
}

static gboolean on_bus(GstBus *bus, GstMessage *msg, gpointer user)
{
    job *j = user;
    if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_EOS) {
        g_main_loop_quit(j->loop);
    } else if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) {
        GError *e = NULL;
        gst_message_parse_error(msg, &e, NULL);
        job_fail(j, "cannot decode the recording: %s (%s)", e ? e->message : "error",
                 GST_OBJECT_NAME(GST_MESSAGE_SRC(msg)));
        g_clear_error(&e);
    }
    return G_SOURCE_CONTINUE;
}

static gboolean on_watchdog(gpointer user)
{
    job *j = user;
    g_mutex_lock(&j->lock);
    bool stalled = g_get_monotonic_time() - j->last_output_us > (int64_t)STALL_S * G_USEC_PER_SEC;
    g_mutex_unlock(&j->lock);
    if (stalled)
        job_fail(j, "render stalled: no output for %d s", STALL_S);
    return G_SOURCE_CONTINUE;
}

/* ---- the file ------------------------------------------------------- */

/* The WebM in the unnamed tmp_fd to its name: encrypted into out (through
 * out.part, renamed when whole) or linked as out. plain_sha gets the WebM's
 * SHA-256 when encrypted, "" otherwise. */
static int store_output(job *j, int tmp_fd, char plain_sha[65], char **err)
{
    char *part_path = g_strdup_printf("%s.part", j->out);
    int rc = TM_EIO;
    plain_sha[0] = 0;
    unlink(part_path); /* left by a child killed while encrypting: ciphertext only */
    if (fsync(tmp_fd) < 0 || lseek(tmp_fd, 0, SEEK_SET) < 0) {
        *err = g_strdup_printf("rendition temp file: %s", g_strerror(errno));
        goto done;
    }
    if (j->encrypt) {
        tm_rec_writer *w = tm_rec_writer_open(part_path, j->key, err);
        if (!w)
            goto done;
        uint8_t *buf = g_malloc(READ_CHUNK);
        ssize_t n;
        rc = 0;
        while (rc == 0 && (n = read(tmp_fd, buf, READ_CHUNK)) != 0)
            rc = n < 0 ? TM_EIO : tm_rec_writer_write(w, buf, (size_t)n);
        g_free(buf);
        if (rc == 0)
            rc = tm_rec_writer_close(w, plain_sha);
        else
            tm_rec_writer_abort(w);
    } else {
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", tmp_fd);
        rc = linkat(AT_FDCWD, proc, AT_FDCWD, part_path, AT_SYMLINK_FOLLOW) == 0 ? 0 : TM_EIO;
    }
    if (rc == 0 && rename(part_path, j->out) < 0)
        rc = TM_EIO;
    if (rc < 0) {
        if (!*err)
            *err = g_strdup_printf("cannot write the rendition: %s", g_strerror(errno));
        unlink(part_path);
    }
done:
    g_free(part_path);
    return rc;
}

/* ---- the job -------------------------------------------------------- */

static int parse_job(json_t *o, job *j, char **err)
{
    const char *key = json_string_value(json_object_get(o, "key"));
    json_t *parts = json_object_get(o, "parts");
    j->out = json_string_value(json_object_get(o, "out"));
    j->width = (int)json_integer_value(json_object_get(o, "width"));
    j->height = (int)json_integer_value(json_object_get(o, "height"));
    j->fps = (int)json_integer_value(json_object_get(o, "fps"));
    j->video_kbps = (int)json_integer_value(json_object_get(o, "video_kbps"));
    j->audio_kbps = (int)json_integer_value(json_object_get(o, "audio_kbps"));
    if (!j->out || !json_array_size(parts) || j->width < 64 || j->height < 64 || j->fps < 1 ||
        j->video_kbps < 16 || j->audio_kbps < 8) {
        *err = g_strdup("bad job: out, parts, width, height, fps, video_kbps, audio_kbps");
        return TM_EINVAL;
    }
    if (key && tm_rec_key_parse_hex(key, j->key) < 0) {
        *err = g_strdup("bad job: key");
        return TM_EINVAL;
    }
    j->has_key = key != NULL;
    j->encrypt = j->has_key && json_is_true(json_object_get(o, "encrypt"));
    j->n_parts = json_array_size(parts);
    j->parts = g_new0(part, j->n_parts);
    for (size_t i = 0; i < j->n_parts; i++) {
        json_t *p = json_array_get(parts, i);
        j->parts[i] = (part){
            .index = (int)i + 1,
            .path = json_string_value(json_object_get(p, "path")),
            .encrypted = json_is_true(json_object_get(p, "encrypted")),
            .offset_ms = json_integer_value(json_object_get(p, "offset_ms")),
            .fd = -1,
            .job = j,
        };
        if (!j->parts[i].path || j->parts[i].offset_ms < 0) {
            *err = g_strdup("bad job: a part needs path and offset_ms >= 0");
            return TM_EINVAL;
        }
    }
    return 0;
}

static int64_t cpu_ms_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (int64_t)ru.ru_utime.tv_sec * 1000 + ru.ru_utime.tv_usec / 1000 +
           (int64_t)ru.ru_stime.tv_sec * 1000 + ru.ru_stime.tv_usec / 1000;
}

/* Each part starts where its first packet arrived, after the first part's:
 * a member who joined late is heard and seen from the moment they were, not
 * from when the part's row was written (the first part's row is written
 * before any media flows). A recording without DateUTC in every part keeps
 * the job's offsets. */
static void place_parts(job *j)
{
    for (size_t i = 0; i < j->n_parts; i++)
        if (!j->parts[i].has_date)
            return;
    int64_t t0 = j->parts[0].date_ns;
    for (size_t i = 0; i < j->n_parts; i++) {
        int64_t at = (j->parts[i].date_ns - t0) / 1000000;
        j->parts[i].offset_ms = at > 0 ? at : 0;
    }
    j->by_packet = true;
}

static int render(job *j, char plain_sha[65], char **err)
{
    for (size_t i = 0; i < j->n_parts; i++) {
        char *why = NULL;
        if (part_open(&j->parts[i], j, &why) < 0 || read_header(&j->parts[i], &why) < 0) {
            *err = g_strdup_printf("evidence part %zu %s", i + 1, why ? why : "unreadable");
            g_free(why);
            return TM_EINVAL;
        }
    }
    place_parts(j);
    char *dir = g_path_get_dirname(j->out);
    int tmp_fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    g_free(dir);
    if (tmp_fd < 0) {
        *err = g_strdup_printf("cannot make an unnamed temp file beside %s: %s", j->out,
                               g_strerror(errno));
        return TM_EIO;
    }
    j->loop = g_main_loop_new(NULL, FALSE);
    j->last_output_us = g_get_monotonic_time();
    j->end_ts = GST_CLOCK_TIME_NONE;
    int rc = 0;
    if (!build(j, tmp_fd)) {
        *err = g_strdup("cannot build the render pipeline (a GStreamer plugin is missing?)");
        rc = TM_EIO;
        goto done;
    }
    GstBus *bus = gst_element_get_bus(j->pipe);
    guint bus_watch = gst_bus_add_watch(bus, on_bus, j);
    gst_object_unref(bus);
    guint dog = g_timeout_add_seconds(5, on_watchdog, j);
    if (gst_element_set_state(j->pipe, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
        job_fail(j, "the render pipeline does not start");
    else
        g_main_loop_run(j->loop);
    g_source_remove(dog);
    g_source_remove(bus_watch);
    gst_element_set_state(j->pipe, GST_STATE_NULL);
    if (j->error) {
        *err = g_strdup(j->error);
        rc = TM_EIO;
    } else {
        rc = store_output(j, tmp_fd, plain_sha, err);
    }
done:
    close(tmp_fd);
    return rc;
}

static void print_result(json_t *res)
{
    char *line = json_dumps(res, JSON_COMPACT);
    printf("%s\n", line ? line : "{\"ok\":false,\"error\":\"out of memory\"}");
    fflush(stdout);
    free(line);
    json_decref(res);
}

int tm_review_render_main(void)
{
    int64_t t0 = g_get_monotonic_time();
    gst_init(NULL, NULL);
    job j = {0};
    g_mutex_init(&j.lock);
    char *err = NULL, plain_sha[65] = "", sha[65];
    json_error_t jerr;
    json_t *o = json_loadf(stdin, 0, &jerr);
    int rc = o ? parse_job(o, &j, &err) : TM_EINVAL;
    if (!o)
        err = g_strdup_printf("bad job: %s", jerr.text);
    if (rc == 0)
        rc = render(&j, plain_sha, &err);
    OPENSSL_cleanse(j.key, sizeof j.key);
    int64_t size = 0;
    if (rc == 0 && tm_sha256_file(j.out, &size, sha) < 0) {
        err = g_strdup("cannot hash the rendition");
        rc = TM_EIO;
    }
    int64_t duration_ms = GST_CLOCK_TIME_IS_VALID(j.end_ts) ? (int64_t)(j.end_ts / GST_MSECOND) : 0;
    /* How it ran, so the parent's log shows the priority it asked for. */
    int nice_now = getpriority(PRIO_PROCESS, 0);
    bool idle = sched_getscheduler(0) == SCHED_IDLE;
    if (rc == 0)
        print_result(json_pack("{s:b, s:I, s:I, s:s, s:s?, s:I, s:I, s:i, s:b, s:b, s:s}", "ok", 1,
                               "size_bytes", (json_int_t)size, "duration_ms",
                               (json_int_t)duration_ms, "sha256", sha, "plain_sha256",
                               plain_sha[0] ? plain_sha : NULL, "cpu_ms", (json_int_t)cpu_ms_now(),
                               "wall_ms", (json_int_t)((g_get_monotonic_time() - t0) / 1000),
                               "nice", nice_now, "sched_idle", idle, "labelled", !j.no_labels,
                               "placed_by", j.by_packet ? "first_packet" : "job_offsets"));
    else
        print_result(json_pack("{s:b, s:s, s:I}", "ok", 0, "error", err ? err : "failed", "cpu_ms",
                               (json_int_t)cpu_ms_now()));
    /* A one-shot process: the kernel frees the rest, and GStreamer's
     * registry lives until exit anyway; skip the exit handlers. */
    _exit(rc == 0 ? 0 : 1);
}

/*
 * rec_probe.c - plays a recording the way a player would and says what it
 * decoded, for the recording end-to-end tests (tests/recording/visit.test.mjs etc.).
 *
 *   rec_probe FILE [TIMEOUT_S]
 *
 * filesrc ! decodebin, every decoded pad into its own fakesink (sync=false,
 * as fast as it decodes). A probe on each sink counts buffers and keeps the
 * first and last timestamps, so the test sees per track: kind, frames (or
 * audio ms), video size, time span. It links no telemed code: it is an
 * independent judge of the server's file.
 *
 * Output (stdout, one line each):
 *   stream index=N kind=video|audio caps=NAME buffers=N width=W height=H
 *          max_width=W max_height=H first_ms=T last_ms=T audio_ms=N
 * (width/height: the first picture; max_*: the largest, for simulcast tracks)
 *   result eos=0|1 streams=N video=N audio=N duration_ms=N error="..."
 * Exit 0 on EOS, 3 when the pipeline stopped on an error (counts still
 * printed: a partial file decodes up to where it was cut), 2 on usage or
 * timeout.
 *
 * Threads: the main thread runs the bus; streaming threads update the
 * per-stream counters under a mutex.
 */
#include <gst/gst.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STREAMS 16

struct stream {
    int video;
    char caps_name[64];
    guint64 buffers;
    int width, height;
    int max_width, max_height; /* the largest picture decoded (a simulcast track changes size) */
    GstClockTime first, last_end;
    guint64 audio_ns;
};

static struct stream streams[MAX_STREAMS];
static int n_streams;
static GMutex lock;
static GstElement *pl;

static GstPadProbeReturn on_buffer(GstPad *pad, GstPadProbeInfo *info, gpointer ud)
{
    struct stream *s = ud;
    GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
    if (!buf)
        return GST_PAD_PROBE_OK;
    g_mutex_lock(&lock);
    s->buffers++;
    GstClockTime pts = GST_BUFFER_PTS(buf);
    GstClockTime dur = GST_BUFFER_DURATION(buf);
    if (GST_CLOCK_TIME_IS_VALID(pts)) {
        if (!GST_CLOCK_TIME_IS_VALID(s->first) || pts < s->first)
            s->first = pts;
        GstClockTime end = pts + (GST_CLOCK_TIME_IS_VALID(dur) ? dur : 0);
        if (!GST_CLOCK_TIME_IS_VALID(s->last_end) || end > s->last_end)
            s->last_end = end;
    }
    if (!s->video && GST_CLOCK_TIME_IS_VALID(dur))
        s->audio_ns += dur;
    if (s->video) {
        GstCaps *caps = gst_pad_get_current_caps(pad);
        if (caps) {
            GstStructure *st = gst_caps_get_structure(caps, 0);
            int w = 0, h = 0;
            gst_structure_get_int(st, "width", &w);
            gst_structure_get_int(st, "height", &h);
            if (!s->width) {
                s->width = w;
                s->height = h;
            }
            if (w > s->max_width) {
                s->max_width = w;
                s->max_height = h;
            }
            gst_caps_unref(caps);
        }
    }
    g_mutex_unlock(&lock);
    return GST_PAD_PROBE_OK;
}

static void on_pad_added(GstElement *dec, GstPad *pad, gpointer ud)
{
    GstCaps *caps = gst_pad_get_current_caps(pad);
    if (!caps)
        caps = gst_pad_query_caps(pad, NULL);
    const char *name = gst_structure_get_name(gst_caps_get_structure(caps, 0));
    int video = g_str_has_prefix(name, "video/");
    int audio = g_str_has_prefix(name, "audio/");
    g_mutex_lock(&lock);
    struct stream *s = NULL;
    if ((video || audio) && n_streams < MAX_STREAMS) {
        s = &streams[n_streams++];
        s->video = video;
        g_strlcpy(s->caps_name, name, sizeof s->caps_name);
        s->first = GST_CLOCK_TIME_NONE;
        s->last_end = GST_CLOCK_TIME_NONE;
    }
    g_mutex_unlock(&lock);
    gst_caps_unref(caps);
    GstElement *q = gst_element_factory_make("queue", NULL);
    GstElement *sink = gst_element_factory_make("fakesink", NULL);
    g_object_set(sink, "sync", FALSE, "async", FALSE, NULL);
    gst_bin_add_many(GST_BIN(pl), q, sink, NULL);
    gst_element_link(q, sink);
    gst_element_sync_state_with_parent(q);
    gst_element_sync_state_with_parent(sink);
    GstPad *qpad = gst_element_get_static_pad(q, "sink");
    gst_pad_link(pad, qpad);
    gst_object_unref(qpad);
    if (s) {
        GstPad *spad = gst_element_get_static_pad(sink, "sink");
        gst_pad_add_probe(spad, GST_PAD_PROBE_TYPE_BUFFER, on_buffer, s, NULL);
        gst_object_unref(spad);
    }
}

int main(int argc, char **argv)
{
    gst_init(&argc, &argv);
    if (argc < 2) {
        fprintf(stderr, "usage: rec_probe FILE [TIMEOUT_S]\n");
        return 2;
    }
    int timeout_s = argc > 2 ? atoi(argv[2]) : 60;
    pl = gst_pipeline_new("probe");
    GstElement *src = gst_element_factory_make("filesrc", NULL);
    GstElement *dec = gst_element_factory_make("decodebin", NULL);
    if (!src || !dec) {
        fprintf(stderr, "rec_probe: filesrc or decodebin missing\n");
        return 2;
    }
    g_object_set(src, "location", argv[1], NULL);
    gst_bin_add_many(GST_BIN(pl), src, dec, NULL);
    gst_element_link(src, dec);
    g_signal_connect(dec, "pad-added", G_CALLBACK(on_pad_added), NULL);
    gst_element_set_state(pl, GST_STATE_PLAYING);

    GstBus *bus = gst_element_get_bus(pl);
    int eos = 0, timed_out = 0;
    char *error = NULL;
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_s * G_USEC_PER_SEC;
    for (;;) {
        gint64 left = deadline - g_get_monotonic_time();
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        GstMessage *m = gst_bus_timed_pop_filtered(bus, (GstClockTime)left * GST_USECOND,
                                                   GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
        if (!m) {
            timed_out = 1;
            break;
        }
        if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_EOS) {
            eos = 1;
        } else {
            GError *e = NULL;
            gst_message_parse_error(m, &e, NULL);
            error = g_strdup_printf("%s: %s", GST_OBJECT_NAME(GST_MESSAGE_SRC(m)),
                                    e ? e->message : "?");
            for (char *c = error; *c; c++)
                if (*c == '"' || *c == '\n')
                    *c = '\'';
            g_clear_error(&e);
        }
        gst_message_unref(m);
        break;
    }
    gst_element_set_state(pl, GST_STATE_NULL);
    gst_object_unref(bus);

    int nv = 0, na = 0;
    GstClockTime t0 = GST_CLOCK_TIME_NONE, t1 = GST_CLOCK_TIME_NONE;
    g_mutex_lock(&lock);
    for (int i = 0; i < n_streams; i++) {
        struct stream *s = &streams[i];
        nv += s->video && s->buffers > 0;
        na += !s->video && s->buffers > 0;
        if (GST_CLOCK_TIME_IS_VALID(s->first) && (!GST_CLOCK_TIME_IS_VALID(t0) || s->first < t0))
            t0 = s->first;
        if (GST_CLOCK_TIME_IS_VALID(s->last_end) &&
            (!GST_CLOCK_TIME_IS_VALID(t1) || s->last_end > t1))
            t1 = s->last_end;
        printf("stream index=%d kind=%s caps=%s buffers=%" G_GUINT64_FORMAT " width=%d height=%d "
               "max_width=%d max_height=%d first_ms=%" G_GINT64_FORMAT " last_ms=%" G_GINT64_FORMAT
               " audio_ms=%" G_GUINT64_FORMAT "\n",
               i, s->video ? "video" : "audio", s->caps_name, s->buffers, s->width, s->height,
               s->max_width, s->max_height,
               GST_CLOCK_TIME_IS_VALID(s->first) ? (gint64)(s->first / GST_MSECOND) : (gint64)-1,
               GST_CLOCK_TIME_IS_VALID(s->last_end) ? (gint64)(s->last_end / GST_MSECOND)
                                                    : (gint64)-1,
               s->audio_ns / GST_MSECOND);
    }
    g_mutex_unlock(&lock);
    gint64 dur = GST_CLOCK_TIME_IS_VALID(t0) && GST_CLOCK_TIME_IS_VALID(t1)
                     ? (gint64)((t1 - t0) / GST_MSECOND)
                     : -1;
    printf("result eos=%d streams=%d video=%d audio=%d duration_ms=%" G_GINT64_FORMAT
           " timeout=%d error=\"%s\"\n",
           eos, n_streams, nv, na, dur, timed_out, error ? error : "");
    fflush(stdout);
    g_free(error);
    gst_object_unref(pl);
    return timed_out ? 2 : eos ? 0 : 3;
}

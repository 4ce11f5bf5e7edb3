/*
 * review_probe.c - plays a review rendition the way a player would and says
 * what a listener would hear, for tests/recording/review.test.mjs.
 *
 *   review_probe FILE HZ[,HZ...] [TIMEOUT_S]
 *
 * filesrc ! decodebin; the audio is mixed down to mono 48 kHz float and
 * every sample goes through one Goertzel filter per frequency asked for, in
 * 100 ms blocks; the video frames are counted. For each frequency it prints
 * the share of the audio's energy at that frequency (a pure tone alone is
 * about 0.5 with this window, silence 0) and in how many blocks that share
 * is over 0.02, and the time of the first such block (its onset), so a test
 * sees that a voice is there, for how long and from when. It
 * links no telemed code: an independent judge of the server's file.
 *
 * Output (stdout):
 *   video frames=N width=W height=H
 *   tone hz=F share=S blocks=N of=M first_ms=T (-1: never)
 *   result eos=0|1 audio_ms=N error="..."
 * Exit 0 on EOS, 3 on a decoding error, 2 on usage or timeout.
 */
#include <gst/app/gstappsink.h>
#include <gst/gst.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RATE 48000
#define BLOCK (RATE / 10)
#define MAX_F 8

static double freqs[MAX_F], coeff[MAX_F], s1[MAX_F], s2[MAX_F], share_sum[MAX_F];
static long blocks_on[MAX_F], first_on[MAX_F]; /* first_on: block index + 1, 0: never */
static int n_f;
static double block_energy, total_energy, tone_energy[MAX_F];
static long block_n, blocks, samples;
static long video_frames;
static int width, height;
static GMutex lock;
static GMainLoop *loop;
static int eos;
static char error[256];

/* One finished block: each frequency's power against the block's energy. */
static void end_block(void)
{
    for (int i = 0; i < n_f; i++) {
        double power = s1[i] * s1[i] + s2[i] * s2[i] - coeff[i] * s1[i] * s2[i];
        /* |X(f)|^2 of a sine of amplitude A over N samples is (A N / 2)^2 and
         * its energy A^2 N / 2: power / (N * energy) is 0.5 for a pure tone. */
        double share = block_energy > 0 ? power / ((double)block_n * block_energy) : 0;
        tone_energy[i] += power / (double)block_n;
        share_sum[i] += share;
        if (share > 0.02 && !blocks_on[i]++)
            first_on[i] = blocks + 1;
        s1[i] = s2[i] = 0;
    }
    total_energy += block_energy;
    block_energy = 0;
    block_n = 0;
    blocks++;
}

static GstFlowReturn on_audio(GstAppSink *sink, gpointer ud)
{
    GstSample *smp = gst_app_sink_pull_sample(sink);
    if (!smp)
        return GST_FLOW_ERROR;
    GstBuffer *buf = gst_sample_get_buffer(smp);
    GstMapInfo map;
    if (gst_buffer_map(buf, &map, GST_MAP_READ)) {
        const float *x = (const float *)map.data;
        size_t n = map.size / sizeof(float);
        g_mutex_lock(&lock);
        for (size_t k = 0; k < n; k++) {
            for (int i = 0; i < n_f; i++) {
                double s0 = x[k] + coeff[i] * s1[i] - s2[i];
                s2[i] = s1[i];
                s1[i] = s0;
            }
            block_energy += (double)x[k] * x[k];
            samples++;
            if (++block_n == BLOCK)
                end_block();
        }
        g_mutex_unlock(&lock);
        gst_buffer_unmap(buf, &map);
    }
    gst_sample_unref(smp);
    return GST_FLOW_OK;
}

static GstPadProbeReturn on_video(GstPad *pad, GstPadProbeInfo *info, gpointer ud)
{
    g_mutex_lock(&lock);
    video_frames++;
    if (!width) {
        GstCaps *caps = gst_pad_get_current_caps(pad);
        if (caps) {
            GstStructure *st = gst_caps_get_structure(caps, 0);
            gst_structure_get_int(st, "width", &width);
            gst_structure_get_int(st, "height", &height);
            gst_caps_unref(caps);
        }
    }
    g_mutex_unlock(&lock);
    return GST_PAD_PROBE_OK;
}

static void on_pad(GstElement *dec, GstPad *pad, gpointer ud)
{
    GstElement *pl = ud;
    GstCaps *caps = gst_pad_query_caps(pad, NULL);
    const char *name = gst_structure_get_name(gst_caps_get_structure(caps, 0));
    GstElement *first;
    if (g_str_has_prefix(name, "audio/")) {
        GstElement *conv = gst_element_factory_make("audioconvert", NULL);
        GstElement *res = gst_element_factory_make("audioresample", NULL);
        GstElement *sink = gst_element_factory_make("appsink", NULL);
        GstCaps *want = gst_caps_from_string("audio/x-raw,format=F32LE,channels=1,rate=48000");
        g_object_set(sink, "caps", want, "sync", FALSE, "emit-signals", TRUE, NULL);
        gst_caps_unref(want);
        g_signal_connect(sink, "new-sample", G_CALLBACK(on_audio), NULL);
        gst_bin_add_many(GST_BIN(pl), conv, res, sink, NULL);
        gst_element_link_many(conv, res, sink, NULL);
        gst_element_sync_state_with_parent(sink);
        gst_element_sync_state_with_parent(res);
        gst_element_sync_state_with_parent(conv);
        first = conv;
    } else {
        GstElement *sink = gst_element_factory_make("fakesink", NULL);
        g_object_set(sink, "sync", FALSE, NULL);
        gst_bin_add(GST_BIN(pl), sink);
        gst_element_sync_state_with_parent(sink);
        GstPad *sp = gst_element_get_static_pad(sink, "sink");
        if (g_str_has_prefix(name, "video/"))
            gst_pad_add_probe(sp, GST_PAD_PROBE_TYPE_BUFFER, on_video, NULL, NULL);
        gst_object_unref(sp);
        first = sink;
    }
    gst_caps_unref(caps);
    GstPad *sinkpad = gst_element_get_static_pad(first, "sink");
    gst_pad_link(pad, sinkpad);
    gst_object_unref(sinkpad);
}

static gboolean on_bus(GstBus *bus, GstMessage *msg, gpointer ud)
{
    if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_EOS) {
        eos = 1;
        g_main_loop_quit(loop);
    } else if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) {
        GError *e = NULL;
        gst_message_parse_error(msg, &e, NULL);
        snprintf(error, sizeof error, "%s", e ? e->message : "error");
        g_clear_error(&e);
        g_main_loop_quit(loop);
    }
    return G_SOURCE_CONTINUE;
}

static gboolean on_timeout(gpointer ud)
{
    snprintf(error, sizeof error, "timeout");
    g_main_loop_quit(loop);
    return G_SOURCE_REMOVE;
}

int main(int argc, char **argv)
{
    gst_init(&argc, &argv);
    if (argc < 3) {
        fprintf(stderr, "usage: review_probe FILE HZ[,HZ...] [TIMEOUT_S]\n");
        return 2;
    }
    gchar **hz = g_strsplit(argv[2], ",", MAX_F);
    for (n_f = 0; hz[n_f] && n_f < MAX_F; n_f++) {
        freqs[n_f] = atof(hz[n_f]);
        coeff[n_f] = 2 * cos(2 * M_PI * freqs[n_f] / RATE);
    }
    g_strfreev(hz);
    int timeout = argc > 3 ? atoi(argv[3]) : 120;
    loop = g_main_loop_new(NULL, FALSE);
    GstElement *pl = gst_pipeline_new("probe");
    GstElement *src = gst_element_factory_make("filesrc", NULL);
    GstElement *dec = gst_element_factory_make("decodebin", NULL);
    g_object_set(src, "location", argv[1], NULL);
    gst_bin_add_many(GST_BIN(pl), src, dec, NULL);
    gst_element_link(src, dec);
    g_signal_connect(dec, "pad-added", G_CALLBACK(on_pad), pl);
    GstBus *bus = gst_element_get_bus(pl);
    gst_bus_add_watch(bus, on_bus, NULL);
    gst_object_unref(bus);
    g_timeout_add_seconds((guint)timeout, on_timeout, NULL);
    gst_element_set_state(pl, GST_STATE_PLAYING);
    g_main_loop_run(loop);
    gst_element_set_state(pl, GST_STATE_NULL);
    g_mutex_lock(&lock);
    printf("video frames=%ld width=%d height=%d\n", video_frames, width, height);
    for (int i = 0; i < n_f; i++)
        printf("tone hz=%g share=%.4f blocks=%ld of=%ld first_ms=%ld\n", freqs[i],
               blocks ? share_sum[i] / (double)blocks : 0.0, blocks_on[i], blocks,
               first_on[i] ? (first_on[i] - 1) * 1000 * BLOCK / RATE : -1);
    printf("result eos=%d audio_ms=%ld error=\"%s\"\n", eos, samples * 1000 / RATE, error);
    g_mutex_unlock(&lock);
    return strcmp(error, "timeout") == 0 ? 2 : error[0] ? 3 : 0;
}

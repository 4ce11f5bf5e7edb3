/*
 * h264.c - H.264 tracks through GStreamer: our pad -> rtph264depay !
 * h264parse -> our pad, driven synchronously from the recorder thread.
 *
 * The only part of the recorder on GStreamer, which makes GStreamer a
 * library dependency. H.264 needs FU-A/STAP-A reassembly, access-unit
 * boundaries and an avcC built from SPS/PPS, which the two elements do.
 * The pipeline starts no thread and waits on no clock: no source is live,
 * no sink syncs, a batch is one buffer list pushed in. Recorder thread.
 */
#include "recorder_internal.h"

#include "telemed/common.h"

#include <string.h>

static const char H264_AVC_CAPS[] = "video/x-h264,stream-format=avc,alignment=au";

const char *tm__rec_codec_encoding(tm_recorder_codec c)
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

int tm__rec_gst_init(char **err)
{
    static GOnce once = G_ONCE_INIT;
    const char *init_err = g_once(&once, gst_init_once, NULL);
    if (init_err) {
        *err = g_strdup_printf("GStreamer: %s", init_err);
        return TM_EUNSUPPORTED;
    }
    return 0;
}

/* The parser's output: frames and serialized events wait in the track's
 * queue until they are merged into the file. Takes b. */
static GstFlowReturn on_frame(GstPad *pad, GstObject *parent, GstBuffer *b)
{
    tm_rec_track *t = gst_pad_get_element_private(pad);
    tm_rec_frame f = {.pts = GST_BUFFER_PTS(b),
                      .obj = GST_MINI_OBJECT_CAST(b),
                      .key = !GST_BUFFER_FLAG_IS_SET(b, GST_BUFFER_FLAG_DELTA_UNIT)};
    g_array_append_val(t->frames, f);
    t->produced = true;
    return GST_FLOW_OK;
}

static gboolean on_frame_event(GstPad *pad, GstObject *parent, GstEvent *e)
{
    tm_rec_track *t = gst_pad_get_element_private(pad);
    /* EOS is ours to send; non-serialized events have no place in a queue. */
    if (GST_EVENT_TYPE(e) == GST_EVENT_EOS || !GST_EVENT_IS_SERIALIZED(e))
        gst_event_unref(e);
    else
        g_array_append_val(t->frames, ((tm_rec_frame){.obj = GST_MINI_OBJECT_CAST(e)}));
    return TRUE;
}

/* What matroskamux answered: h264parse then gives length-prefixed access
 * units and the avcC in its caps. */
static gboolean on_frame_query(GstPad *pad, GstObject *parent, GstQuery *q)
{
    switch (GST_QUERY_TYPE(q)) {
    case GST_QUERY_CAPS: {
        GstCaps *filter;
        GstCaps *caps = gst_caps_from_string(H264_AVC_CAPS);
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
        GstCaps *caps, *ours = gst_caps_from_string(H264_AVC_CAPS);
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
    gst_event_unref(e);
    return TRUE;
}

/* What the parser's caps say; kept until the file's header is written (a
 * change later stays in the stream: a keyframe with the parser's
 * config-interval carries its parameter sets). */
void tm__rec_h264_take_event(tm_rec_track *t, GstEvent *e)
{
    if (GST_EVENT_TYPE(e) != GST_EVENT_CAPS)
        return; /* stream start, segment, tags: nothing the file keeps */
    GstCaps *caps;
    gst_event_parse_caps(e, &caps);
    const GstStructure *s = gst_caps_get_structure(caps, 0);
    if (!s)
        return;
    gst_structure_get_int(s, "width", &t->width);
    gst_structure_get_int(s, "height", &t->height);
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

static int build_h264_track(tm_recorder *r, tm_rec_track *t, size_t i, char **err)
{
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
    t->frames = g_array_sized_new(FALSE, FALSE, sizeof(tm_rec_frame), 256);
    t->held = g_array_sized_new(FALSE, FALSE, sizeof(tm_rec_held), 64);

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

/* Stream start, caps and segment down a track's fresh pad. */
static void start_h264_track(tm_recorder *r, tm_rec_track *t, size_t i)
{
    gst_pad_set_active(t->in, TRUE);
    gst_pad_set_active(t->out, TRUE);
    char *id = g_strdup_printf("telemed-rec-%p-%zu", (void *)r, i);
    GstCaps *caps = gst_caps_new_simple(
        "application/x-rtp", "media", G_TYPE_STRING, "video", "clock-rate", G_TYPE_INT,
        (int)t->clock_rate, "encoding-name", G_TYPE_STRING, tm__rec_codec_encoding(t->codec),
        "payload", G_TYPE_INT, (int)t->pt, NULL);
    GstSegment seg;
    gst_segment_init(&seg, GST_FORMAT_TIME);
    gst_pad_push_event(t->in, gst_event_new_stream_start(id));
    gst_pad_push_event(t->in, gst_event_new_caps(caps));
    gst_pad_push_event(t->in, gst_event_new_segment(&seg));
    gst_caps_unref(caps);
    g_free(id);
}

int tm__rec_pipeline_build(tm_recorder *r, char **err)
{
    r->pipeline = gst_pipeline_new("recorder");
    for (size_t i = 0; i < r->ntracks; i++) {
        tm_rec_track *t = &r->tracks[i];
        if (t->codec != TM_REC_H264) {
            tm__rec_own_track_init(t);
            continue;
        }
        int rc = build_h264_track(r, t, i, err);
        if (rc < 0)
            return rc;
    }
    r->bus = gst_element_get_bus(r->pipeline);
    if (gst_element_set_state(r->pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
        *err = g_strdup("recording pipeline does not start");
        return TM_EIO;
    }
    for (size_t i = 0; i < r->ntracks; i++)
        if (!r->tracks[i].own_depay)
            start_h264_track(r, &r->tracks[i], i);
    return 0;
}

void tm__rec_poll_bus(tm_recorder *r)
{
    GstMessage *m;
    while ((m = gst_bus_pop_filtered(r->bus, GST_MESSAGE_ERROR))) {
        GError *e = NULL;
        char *debug = NULL;
        gst_message_parse_error(m, &e, &debug);
        /* The debug text ends with the system's reason; its first line is
         * a source location. */
        const char *detail = debug ? strrchr(debug, '\n') : NULL;
        detail = detail ? detail + 1 : debug;
        char *why =
            g_strdup_printf("%s: %s%s%s", GST_OBJECT_NAME(GST_MESSAGE_SRC(m)),
                            e ? e->message : "error", detail ? " " : "", detail ? detail : "");
        g_free(debug);
        tm__rec_set_failed(r, why); /* keeps the first reason */
        g_free(why);
        g_clear_error(&e);
        gst_message_unref(m);
    }
}

/* A read-only buffer over len bytes at off of a (takes a reference on a). */
static GstBuffer *arena_buffer(tm_rec_arena *a, gsize off, gsize len)
{
    return gst_buffer_new_wrapped_full(GST_MEMORY_FLAG_READONLY, a->data, a->size, off, len,
                                       tm__rec_arena_ref(a), tm__rec_arena_unref);
}

void tm__rec_h264_push(tm_recorder *r, tm_rec_track *t, const tm_rec_held *hs, guint n)
{
    GstBufferList *l = gst_buffer_list_new_sized(n);
    for (guint i = 0; i < n; i++) {
        GstBuffer *b = arena_buffer(hs[i].arena, hs[i].off, hs[i].len);
        tm__rec_arena_unref(hs[i].arena);
        GST_BUFFER_PTS(b) = hs[i].pts;
        gst_buffer_list_add(l, b);
    }
    GstFlowReturn fr = gst_pad_push_list(t->in, l);
    /* A depayloader refuses what it cannot parse; that is a bad packet, not
     * a broken recording. */
    if (fr != GST_FLOW_FLUSHING && fr != GST_FLOW_NOT_LINKED)
        return;
    tm__rec_poll_bus(r);
    if (!atomic_load(&r->failed)) {
        char *why = g_strdup_printf("depayloader: %s", gst_flow_get_name(fr));
        tm__rec_set_failed(r, why);
        g_free(why);
    }
}

void tm__rec_h264_drop_track(tm_recorder *r, tm_rec_track *t)
{
    GstElement *els[2] = {t->depay, t->parse};
    for (int i = 0; i < 2; i++) {
        if (!els[i])
            continue;
        gst_element_set_state(els[i], GST_STATE_NULL);
        gst_bin_remove(GST_BIN(r->pipeline), els[i]); /* unlinks, drops the bin's ref */
    }
    t->depay = t->parse = NULL;
}

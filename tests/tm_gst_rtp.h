/*
 * tm_gst_rtp.h - real RTP packets made by a GStreamer pipeline, for tests
 * that feed a recorder: collect a pipeline's appsink named "out" and sort
 * several streams into one send order. Header-only; for tests.
 */
#ifndef TM_GST_RTP_H
#define TM_GST_RTP_H

#include "tm_test.h"

#include <gst/app/gstappsink.h>
#include <gst/gst.h>
#include <stdio.h>

typedef struct pkt {
    GstClockTime pts;
    int track; /* the recorder track the packet is pushed on */
    GBytes *data;
} pkt;

/* Appends every packet of the pipeline desc, tagged with track, to out
 * (an array of pkt; the caller unrefs each data). */
static inline void collect(const char *desc, int track, GArray *out)
{
    GError *e = NULL;
    GstElement *p = gst_parse_launch(desc, &e);
    if (!p)
        fprintf(stderr, "parse: %s\n", e->message);
    CHECK(p != NULL);
    GstElement *sink = gst_bin_get_by_name(GST_BIN(p), "out");
    CHECK(gst_element_set_state(p, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
    GstSample *s;
    while ((s = gst_app_sink_pull_sample(GST_APP_SINK(sink)))) {
        GstBuffer *b = gst_sample_get_buffer(s);
        GstMapInfo map;
        CHECK(gst_buffer_map(b, &map, GST_MAP_READ));
        pkt k = {GST_BUFFER_PTS(b), track, g_bytes_new(map.data, map.size)};
        g_array_append_val(out, k);
        gst_buffer_unmap(b, &map);
        gst_sample_unref(s);
    }
    gst_element_set_state(p, GST_STATE_NULL);
    gst_object_unref(sink);
    gst_object_unref(p);
}

static inline gint by_pts(gconstpointer a, gconstpointer b)
{
    const pkt *x = a, *y = b;
    return x->pts < y->pts ? -1 : x->pts > y->pts;
}
#endif

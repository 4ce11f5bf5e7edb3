/*
 * media_test_peer.c - webrtcbin peers for the media-core tests (see the header).
 */
#define GST_USE_UNSTABLE_API
#include <gst/rtp/rtp.h>
#include <gst/sdp/sdp.h>
#include <gst/webrtc/webrtc.h>
#include <math.h>
#include <nice/agent.h>
#include <stdio.h>
#include <string.h>

#include "media_test_peer.h"

/* ---- marshalling to the main (control) context ---- */

typedef struct main_call {
    test_peer *p;
    char *text;
    int kind; /* 0 offer, 1 candidate */
} main_call;

static gboolean main_call_run(gpointer data)
{
    main_call *c = data;
    test_peer *p = c->p;
    if (c->kind == 0) {
        if (g_getenv("TEST_SDP_DUMP"))
            fprintf(stderr, "offer from %s:\n%s\n", p->peer_id, c->text);
        char *err = NULL;
        int rc = tm_media_offer(p->media, p->visit_id, p->peer_id, p->send, c->text,
                                strlen(c->text), &err);
        if (rc != 0) {
            fprintf(stderr, "peer %s: offer refused: %s\n", p->peer_id, err ? err : "?");
            p->offer_failed = true;
        }
        g_free(err);
    } else {
        tm_media_add_candidate(p->media, p->visit_id, p->peer_id, c->text, NULL);
    }
    g_free(c->text);
    g_free(c);
    return G_SOURCE_REMOVE;
}

static void to_main(test_peer *p, int kind, const char *text)
{
    main_call *c = g_new0(main_call, 1);
    c->p = p;
    c->kind = kind;
    c->text = g_strdup(text);
    g_main_context_invoke(NULL, main_call_run, c);
}

/* ---- webrtcbin callbacks (its threads) ---- */

static void on_offer_created(GstPromise *promise, gpointer user)
{
    test_peer *p = user;
    GstWebRTCSessionDescription *offer = NULL;
    const GstStructure *reply = gst_promise_get_reply(promise);
    if (reply)
        gst_structure_get(reply, "offer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &offer, NULL);
    gst_promise_unref(promise);
    if (!offer) {
        p->offer_failed = true;
        return;
    }
    g_signal_emit_by_name(p->webrtc, "set-local-description", offer, NULL);
    gchar *text = gst_sdp_message_as_text(offer->sdp);
    to_main(p, 0, text);
    g_free(text);
    gst_webrtc_session_description_free(offer);
}

static void make_offer(test_peer *p, bool restart)
{
    GstStructure *opts =
        restart ? gst_structure_new("options", "ice-restart", G_TYPE_BOOLEAN, TRUE, NULL) : NULL;
    GstPromise *promise = gst_promise_new_with_change_func(on_offer_created, p, NULL);
    g_signal_emit_by_name(p->webrtc, "create-offer", opts, promise);
    if (opts)
        gst_structure_free(opts);
}

static void on_negotiation_needed(GstElement *webrtc, gpointer user)
{
    make_offer(user, false);
}

static void on_ice_candidate(GstElement *webrtc, guint mline, gchar *candidate, gpointer user)
{
    /* Tests only target loopback: other host candidates are left out, and the
     * server learns the peer's address as peer-reflexive from its checks. */
    if (strstr(candidate, " 127.0.0.1 ") || strstr(candidate, " ::1 "))
        to_main(user, 1, candidate);
}

const double test_tones[TEST_N_TONES] = {300, 500, 700, 900, 1100, 1300, 1500, 1700};

static void on_video_handoff(GstElement *sink, GstBuffer *buf, GstPad *pad, gpointer user)
{
    test_peer *p = user;
    int idx = GPOINTER_TO_INT(g_object_get_data(G_OBJECT(sink), "tm-index"));
    g_atomic_int_add(&p->video_frames, 1);
    int n = g_atomic_int_add(&p->vframes[idx], 1);
    gint64 now = g_get_monotonic_time();
    if (n == 0)
        p->vfirst_us[idx] = now;
    gint64 last = p->vlast_us[idx];
    if (last && now - last > p->vmaxgap_us[idx])
        p->vmaxgap_us[idx] = now - last;
    p->vlast_us[idx] = now;
    if (n % 15 == 0) {
        GstCaps *caps = gst_pad_get_current_caps(pad);
        if (caps) {
            GstStructure *s = gst_caps_get_structure(caps, 0);
            int w = 0, h = 0;
            gst_structure_get_int(s, "width", &w);
            gst_structure_get_int(s, "height", &h);
            g_atomic_int_set(&p->rx_width, w);
            g_atomic_int_set(&p->rx_height, h);
            g_atomic_int_set(&p->vwidth[idx], w);
            g_atomic_int_set(&p->vheight[idx], h);
            gst_caps_unref(caps);
        }
    }
}

/* Goertzel: the energy of one frequency in a block of mono 48 kHz samples. */
double test_goertzel(const int16_t *x, size_t n, double hz)
{
    double c = 2.0 * cos(2.0 * G_PI * hz / 48000.0), s1 = 0, s2 = 0;
    for (size_t i = 0; i < n; i++) {
        double s0 = x[i] / 32768.0 + c * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    return (s1 * s1 + s2 * s2 - c * s1 * s2) / (double)(n ? n : 1);
}

static void on_audio_handoff(GstElement *sink, GstBuffer *buf, GstPad *pad, gpointer user)
{
    test_peer *p = user;
    int idx = GPOINTER_TO_INT(g_object_get_data(G_OBJECT(sink), "tm-index"));
    if (g_atomic_int_add(&p->audio_buffers, 1) == 0)
        p->first_audio_us = g_get_monotonic_time();
    g_atomic_int_add(&p->abuffers[idx], 1);
    GstMapInfo map;
    if (!gst_buffer_map(buf, &map, GST_MAP_READ))
        return;
    double e[TEST_N_TONES];
    for (int t = 0; t < TEST_N_TONES; t++)
        e[t] = test_goertzel((const int16_t *)map.data, map.size / 2, test_tones[t]);
    gst_buffer_unmap(buf, &map);
    g_mutex_lock(&p->tone_lock);
    for (int t = 0; t < TEST_N_TONES; t++)
        p->tone_energy[idx][t] += e[t];
    g_mutex_unlock(&p->tone_lock);
}

int test_peer_pad_tone(test_peer *p, int pad)
{
    if (pad < 0 || pad >= TEST_MAX_PADS)
        return -1;
    g_mutex_lock(&p->tone_lock);
    int best = -1;
    double sum = 0;
    for (int t = 0; t < TEST_N_TONES; t++) {
        sum += p->tone_energy[pad][t];
        if (best < 0 || p->tone_energy[pad][t] > p->tone_energy[pad][best])
            best = t;
    }
    /* One tone must carry most of the energy, or the pad mixes or lacks sound. */
    if (best >= 0 && (p->tone_energy[pad][best] <= 0 || p->tone_energy[pad][best] < 0.8 * sum))
        best = -1;
    g_mutex_unlock(&p->tone_lock);
    return best;
}

void test_peer_gap_reset(test_peer *p)
{
    for (int i = 0; i < TEST_MAX_PADS; i++) {
        p->vmaxgap_us[i] = 0;
        p->vlast_us[i] = 0;
    }
}

static void on_pad_added(GstElement *webrtc, GstPad *pad, gpointer user)
{
    test_peer *p = user;
    if (GST_PAD_DIRECTION(pad) != GST_PAD_SRC)
        return;
    GstCaps *caps = gst_pad_get_current_caps(pad);
    if (!caps)
        caps = gst_pad_query_caps(pad, NULL);
    const GstStructure *s = gst_caps_get_structure(caps, 0);
    const char *enc = gst_structure_get_string(s, "encoding-name");
    bool h264 = enc && g_ascii_strcasecmp(enc, "H264") == 0;
    bool video = h264 || (enc && g_ascii_strcasecmp(enc, "VP8") == 0);
    bool audio = enc && g_ascii_strcasecmp(enc, "OPUS") == 0;
    gst_caps_unref(caps);
    if (!video && !audio)
        return;
    const char *desc = h264    ? "queue ! rtph264depay ! h264parse ! openh264dec ! videoconvert ! "
                                 "fakesink name=sink sync=false signal-handoffs=true"
                       : video ? "queue ! rtpvp8depay ! vp8dec ! videoconvert ! "
                                 "fakesink name=sink sync=false signal-handoffs=true"
                               : "queue ! rtpopusdepay ! opusdec ! audioconvert ! audioresample ! "
                                 "audio/x-raw,format=S16LE,channels=1,rate=48000 ! "
                                 "fakesink name=sink sync=false signal-handoffs=true";
    GError *err = NULL;
    GstElement *bin = gst_parse_bin_from_description(desc, TRUE, &err);
    if (!bin) {
        fprintf(stderr, "bin: %s\n", err->message);
        g_error_free(err);
        return;
    }
    GstElement *sink = gst_bin_get_by_name(GST_BIN(bin), "sink");
    int idx = g_atomic_int_add(video ? &p->n_video_pads : &p->n_audio_pads, 1);
    g_object_set_data(G_OBJECT(sink), "tm-index",
                      GINT_TO_POINTER(idx < TEST_MAX_PADS ? idx : TEST_MAX_PADS - 1));
    g_signal_connect(sink, "handoff", G_CALLBACK(video ? on_video_handoff : on_audio_handoff), p);
    gst_object_unref(sink);
    gst_bin_add(GST_BIN(p->pipeline), bin);
    gst_element_sync_state_with_parent(bin);
    GstPad *sinkpad = gst_element_get_static_pad(bin, "sink");
    gst_pad_link(pad, sinkpad);
    gst_object_unref(sinkpad);
}

/* ---- construction ---- */

static void enable_nack(test_peer *p);

static test_peer *peer_alloc(tm_media *m, const char *visit_id, const char *peer_id)
{
    test_peer *p = g_new0(test_peer, 1);
    p->media = m;
    p->visit_id = g_strdup(visit_id);
    p->peer_id = g_strdup(peer_id);
    g_mutex_init(&p->tone_lock);
    return p;
}

static GstPadProbeReturn on_encoded(GstPad *pad, GstPadProbeInfo *info, gpointer user)
{
    test_peer *p = user;
    g_atomic_int_add(&p->sent_frames, 1);
    return GST_PAD_PROBE_OK;
}

/* Frames sent, so a test can judge frames decoded against them rather than
 * against a wall-clock window that a loaded machine fills with fewer. */
static void count_sent_frames(test_peer *p)
{
    GstElement *enc = gst_bin_get_by_name(GST_BIN(p->pipeline), "venc");
    GstPad *src = enc ? gst_element_get_static_pad(enc, "src") : NULL;
    if (src) {
        gst_pad_add_probe(src, GST_PAD_PROBE_TYPE_BUFFER, on_encoded, p, NULL);
        gst_object_unref(src);
    }
    if (enc)
        gst_object_unref(enc);
}

static bool peer_start(test_peer *p, const char *launch)
{
    GError *err = NULL;
    p->pipeline = gst_parse_launch(launch, &err);
    if (!p->pipeline) {
        fprintf(stderr, "pipeline: %s\n", err ? err->message : "?");
        g_clear_error(&err);
        return false;
    }
    if (!GST_IS_PIPELINE(p->pipeline)) {
        /* A lone element comes back as itself, not in a pipeline. */
        GstElement *pipe = gst_pipeline_new(NULL);
        gst_bin_add(GST_BIN(pipe), p->pipeline);
        p->pipeline = pipe;
    }
    p->webrtc = gst_bin_get_by_name(GST_BIN(p->pipeline), "wb");
    /* libnice binds each socket to its interface and skips loopback when
     * another interface exists; tests may only use loopback, so give the
     * client's agent exactly 127.0.0.1 (and no UPnP discovery). */
    GObject *ice = NULL;
    g_object_get(p->webrtc, "ice-agent", &ice, NULL);
    if (ice && g_object_class_find_property(G_OBJECT_GET_CLASS(ice), "agent")) {
        NiceAgent *agent = NULL;
        g_object_get(ice, "agent", &agent, NULL);
        if (agent) {
            NiceAddress addr;
            nice_address_init(&addr);
            nice_address_set_from_string(&addr, "127.0.0.1");
            nice_agent_add_local_address(agent, &addr);
            g_object_set(agent, "upnp", FALSE, "ice-tcp", FALSE, NULL);
            g_object_unref(agent);
        }
    }
    if (ice)
        g_object_unref(ice);
    g_signal_connect(p->webrtc, "on-negotiation-needed", G_CALLBACK(on_negotiation_needed), p);
    g_signal_connect(p->webrtc, "on-ice-candidate", G_CALLBACK(on_ice_candidate), p);
    g_signal_connect(p->webrtc, "pad-added", G_CALLBACK(on_pad_added), p);
    return true;
}

test_peer *test_peer_new_codec(tm_media *m, const char *visit_id, const char *peer_id, int width,
                               int height, const char *video_codec)
{
    test_peer *p = peer_alloc(m, visit_id, peer_id);
    p->send = true;
    p->width = width;
    p->height = height;
    bool h264 = g_ascii_strcasecmp(video_codec, "H264") == 0;
    /* Safari's H.264: constrained baseline 42e01f, packetization-mode 1. */
    const char *video =
        h264 ? "openh264enc name=venc bitrate=400000 gop-size=3000 ! "
               "video/x-h264,stream-format=byte-stream,alignment=au ! "
               "rtph264pay pt=102 mtu=1100 config-interval=-1 aggregate-mode=zero-latency ! "
               "application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000,"
               "packetization-mode=(string)1,profile-level-id=(string)42e01f ! wb. "
             : "vp8enc name=venc deadline=1 cpu-used=8 target-bitrate=400000 "
               "keyframe-max-dist=3000 ! "
               "rtpvp8pay pt=96 mtu=1100 picture-id-mode=15-bit ! "
               "application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000 ! wb. ";
    char *launch = g_strdup_printf(
        "webrtcbin name=wb bundle-policy=max-bundle "
        "videotestsrc is-live=true pattern=ball ! "
        "video/x-raw,format=I420,width=%d,height=%d,framerate=15/1 ! "
        "videoconvert ! queue ! %s"
        "audiotestsrc is-live=true wave=sine freq=440 ! audioconvert ! audioresample ! queue ! "
        "opusenc ! rtpopuspay pt=111 ! "
        "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000 ! wb.",
        width, height, video);
    bool ok = peer_start(p, launch);
    g_free(launch);
    if (!ok) {
        test_peer_free(p);
        return NULL;
    }
    count_sent_frames(p);
    enable_nack(p);
    gst_element_set_state(p->pipeline, GST_STATE_PLAYING);
    return p;
}

test_peer *test_peer_new(tm_media *m, const char *visit_id, const char *peer_id, int width,
                         int height)
{
    return test_peer_new_codec(m, visit_id, peer_id, width, height, "VP8");
}

static void add_recvonly(test_peer *p, int n_audio, int n_video)
{
    for (int i = 0; i < n_audio + n_video; i++) {
        bool video = i >= n_audio;
        GstCaps *caps = gst_caps_from_string(
            video ? "application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000"
                  : "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,"
                    "clock-rate=48000,encoding-params=(string)2");
        GstWebRTCRTPTransceiver *t = NULL;
        g_signal_emit_by_name(p->webrtc, "add-transceiver",
                              GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_RECVONLY, caps, &t);
        gst_caps_unref(caps);
        if (t)
            gst_object_unref(t);
    }
    enable_nack(p);
}

test_peer *test_peer_new_party(tm_media *m, const char *visit_id, const char *peer_id, int width,
                               int height, int tone, double volume, int n_recv)
{
    test_peer *p = peer_alloc(m, visit_id, peer_id);
    p->send = true;
    p->width = width;
    p->height = height;
    /* The level element puts each buffer's level on it; the payloader writes
     * it as RFC 6464 (its caps then carry the extmap into the offer, as
     * Chrome offers it). */
    char *launch = g_strdup_printf(
        "webrtcbin name=wb bundle-policy=max-bundle "
        "videotestsrc is-live=true pattern=ball ! "
        "video/x-raw,format=I420,width=%d,height=%d,framerate=15/1 ! "
        "videoconvert ! queue ! vp8enc name=venc deadline=1 cpu-used=8 target-bitrate=300000 "
        "keyframe-max-dist=3000 ! rtpvp8pay pt=96 mtu=1100 picture-id-mode=15-bit ! "
        "application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000 ! wb. "
        "audiotestsrc is-live=true wave=sine freq=%g ! volume name=vol volume=%g ! audioconvert ! "
        "audioresample ! level audio-level-meta=true post-messages=false ! queue ! opusenc ! "
        "rtpopuspay name=apay pt=111 ! application/x-rtp,media=audio,encoding-name=OPUS,"
        "payload=111,clock-rate=48000 ! wb.",
        width, height, test_tones[tone % TEST_N_TONES], volume);
    bool ok = peer_start(p, launch);
    g_free(launch);
    if (!ok) {
        test_peer_free(p);
        return NULL;
    }
    count_sent_frames(p);
    GstElement *pay = gst_bin_get_by_name(GST_BIN(p->pipeline), "apay");
    GstRTPHeaderExtension *ext =
        gst_rtp_header_extension_create_from_uri("urn:ietf:params:rtp-hdrext:ssrc-audio-level");
    if (pay && ext) {
        gst_rtp_header_extension_set_id(ext, 1);
        g_signal_emit_by_name(pay, "add-extension", ext);
    }
    if (ext)
        gst_object_unref(ext);
    if (pay)
        gst_object_unref(pay);
    add_recvonly(p, n_recv, n_recv);
    gst_element_set_state(p->pipeline, GST_STATE_PLAYING);
    return p;
}

void test_peer_add_recv(test_peer *p, int n)
{
    add_recvonly(p, n, n);
    /* webrtcbin 1.22 does not ask for a negotiation on a transceiver added once stable. */
    make_offer(p, false);
}

void test_peer_set_volume(test_peer *p, double volume)
{
    GstElement *vol = gst_bin_get_by_name(GST_BIN(p->pipeline), "vol");
    if (vol) {
        g_object_set(vol, "volume", volume, NULL);
        gst_object_unref(vol);
    }
}

test_peer *test_peer_new_recvonly(tm_media *m, const char *visit_id, const char *peer_id,
                                  int n_audio, int n_video)
{
    test_peer *p = peer_alloc(m, visit_id, peer_id);
    if (!peer_start(p, "webrtcbin name=wb bundle-policy=max-bundle")) {
        test_peer_free(p);
        return NULL;
    }
    add_recvonly(p, n_audio, n_video);
    gst_element_set_state(p->pipeline, GST_STATE_PLAYING);
    return p;
}

void test_peer_free(test_peer *p)
{
    if (!p)
        return;
    if (p->pipeline) {
        gst_element_set_state(p->pipeline, GST_STATE_NULL);
        gst_object_unref(p->webrtc);
        gst_object_unref(p->pipeline);
    }
    g_free(p->answer);
    g_free(p->last_stats);
    g_free(p->last_bindings);
    g_mutex_clear(&p->tone_lock);
    g_free(p->visit_id);
    g_free(p->peer_id);
    g_free(p);
}

/* The typed figures as text the checks can search: "kind":"video",
 * "direction":"in", "width":320,"height":240. */
static char *stats_text(const tm_media_stream_stats *st, size_t n)
{
    GString *s = g_string_new("[");
    for (size_t i = 0; i < n; i++)
        g_string_append_printf(
            s,
            "%s{\"direction\":\"%s\",\"kind\":\"%s\",\"ssrc\":%u,"
            "\"packets\":%" G_GUINT64_FORMAT ",\"width\":%u,\"height\":%u,"
            "\"nacks\":%" G_GUINT64_FORMAT ",\"retransmits\":%" G_GUINT64_FORMAT "}",
            i ? "," : "", st[i].out ? "out" : "in", st[i].video ? "video" : "audio", st[i].ssrc,
            st[i].packets, st[i].width, st[i].height, st[i].nacks, st[i].retransmits);
    g_string_append_c(s, ']');
    return g_string_free(s, FALSE);
}

static void enable_nack(test_peer *p)
{
    GArray *arr = NULL;
    g_signal_emit_by_name(p->webrtc, "get-transceivers", &arr);
    for (guint i = 0; arr && i < arr->len; i++) {
        GObject *t = G_OBJECT(g_array_index(arr, GstWebRTCRTPTransceiver *, i));
        if (g_object_class_find_property(G_OBJECT_GET_CLASS(t), "do-nack"))
            g_object_set(t, "do-nack", TRUE, NULL);
    }
    if (arr)
        g_array_unref(arr);
}

void test_peer_renegotiate(test_peer *p, bool restart)
{
    make_offer(p, restart);
}

void test_peer_on_event(test_peer **peers, int n, const tm_media_event *ev)
{
    test_peer *p = NULL;
    for (int i = 0; i < n; i++)
        if (peers[i] && ev->peer_id && strcmp(peers[i]->peer_id, ev->peer_id) == 0 &&
            strcmp(peers[i]->visit_id, ev->visit_id) == 0)
            p = peers[i];
    if (!p)
        return;
    switch (ev->type) {
    case TM_MEDIA_EV_ANSWER: {
        g_free(p->answer);
        p->answer = g_strdup(ev->sdp);
        p->answers++;
        if (g_getenv("TEST_SDP_DUMP"))
            fprintf(stderr, "answer for %s:\n%s\n", p->peer_id, ev->sdp);
        GstSDPMessage *sdp = NULL;
        gst_sdp_message_new(&sdp);
        if (gst_sdp_message_parse_buffer((const guint8 *)ev->sdp, (guint)strlen(ev->sdp), sdp) !=
            GST_SDP_OK) {
            fprintf(stderr, "peer %s: unparsable answer\n", p->peer_id);
            gst_sdp_message_free(sdp);
            return;
        }
        GstWebRTCSessionDescription *desc =
            gst_webrtc_session_description_new(GST_WEBRTC_SDP_TYPE_ANSWER, sdp);
        g_signal_emit_by_name(p->webrtc, "set-remote-description", desc, NULL);
        gst_webrtc_session_description_free(desc);
        break;
    }
    case TM_MEDIA_EV_CANDIDATE:
        if (g_getenv("TEST_SDP_DUMP"))
            fprintf(stderr, "candidate for %s: [%s] %d\n", p->peer_id, ev->candidate,
                    ev->mline_index);
        if (ev->candidate && *ev->candidate)
            g_signal_emit_by_name(p->webrtc, "add-ice-candidate", (guint)ev->mline_index,
                                  ev->candidate);
        break;
    case TM_MEDIA_EV_STATE:
        g_strlcpy(p->state, ev->state, sizeof p->state);
        fprintf(stderr, "peer %s: state %s\n", p->peer_id, ev->state);
        break;
    case TM_MEDIA_EV_STATS:
        p->stats_events++;
        g_free(p->last_stats);
        p->last_stats = stats_text(ev->streams, ev->n_streams);
        break;
    case TM_MEDIA_EV_ERROR:
        fprintf(stderr, "peer %s: error %d %s\n", p->peer_id, ev->err, ev->message);
        break;
    case TM_MEDIA_EV_BINDINGS: {
        GString *b = g_string_new(NULL);
        for (size_t i = 0; i < ev->n_bindings; i++)
            g_string_append_printf(b, "%s%s=%s", i ? " " : "", ev->bindings[i].mid,
                                   ev->bindings[i].src_peer_id ? ev->bindings[i].src_peer_id : "-");
        g_free(p->last_bindings);
        p->last_bindings = g_string_free(b, FALSE);
        p->bindings_events++;
        break;
    }
    case TM_MEDIA_EV_RECORDING_FAILED: /* visit-wide, no peer: never reaches here */
    case TM_MEDIA_EV_SPEAKER:          /* visit-wide: the tests that care watch it themselves */
    case TM_MEDIA_EV_RENEGOTIATE:      /* these peers offer VP8: never asked */
        break;
    }
}

bool test_wait(GMainContext *ctx, int timeout_ms, bool (*cond)(void *), void *user)
{
    gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    while (!cond(user) && g_get_monotonic_time() < end) {
        g_main_context_iteration(ctx, FALSE);
        g_usleep(2000);
    }
    return cond(user);
}

int test_answer_ports(const char *sdp, int *ports, int max)
{
    int n = 0;
    if (!sdp)
        return 0;
    char **lines = g_strsplit(sdp, "\n", -1);
    for (char **l = lines; *l && n < max; l++) {
        char addr[64], typ[16], proto[8];
        unsigned comp, prio;
        int port;
        char found[40];
        if (sscanf(*l, "a=candidate:%39s %u %7s %u %63s %d typ %15s", found, &comp, proto, &prio,
                   addr, &port, typ) == 7 &&
            g_ascii_strcasecmp(proto, "udp") == 0 && strcmp(addr, "127.0.0.1") == 0)
            ports[n++] = port;
    }
    g_strfreev(lines);
    return n;
}

static bool env_off(const char *name)
{
    const char *v = g_getenv(name);
    return v && (g_ascii_strcasecmp(v, "false") == 0 || g_ascii_strcasecmp(v, "no") == 0 ||
                 g_ascii_strcasecmp(v, "off") == 0 || strcmp(v, "0") == 0);
}

void test_media_options(tm_media_options *o)
{
    o->stock_io = env_off("TELEMED_MEDIA_DIRECT_IO");
    o->stock_srtp = env_off("TELEMED_MEDIA_SRTP_NETTLE");
    o->send_each = env_off("TELEMED_MEDIA_SEND_BATCH");
    o->keep_dtls = env_off("TELEMED_MEDIA_DTLS_SHED");
    const char *ep = g_getenv("TELEMED_MEDIA_RX_EPOLL");
    o->rx_epoll = ep && (g_ascii_strcasecmp(ep, "true") == 0 || strcmp(ep, "1") == 0);
    if (o->stock_io || o->stock_srtp || o->send_each || o->keep_dtls || o->rx_epoll)
        printf("stock paths: io=%s srtp=%s send=%s dtls=%s rx=%s\n",
               o->stock_io ? "libnice" : "direct", o->stock_srtp ? "libsrtp" : "nettle",
               o->send_each ? "each" : "batch", o->keep_dtls ? "kept" : "shed",
               o->rx_epoll ? "epoll" : "sources");
}

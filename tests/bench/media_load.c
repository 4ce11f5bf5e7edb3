/*
 * media_load.c - media load generator for telemed-server, run by hand:
 *
 *   build-x/media_load [--server PATH] [--visits 1,4,8] [--seconds 10]
 *                      [--width 640 --height 480 --bitrate 1000000]
 *                      [--server-arg=--no-recording ...] [--compare-recording]
 *                      [--repeat K] [--idle-seconds S] [--party K,..] [--tick-ms MS]
 *
 * For each N it starts a fresh telemed-server (loopback, temp data dir),
 * creates a department with N doctors on shift through the REST API, and
 * runs N concurrent 1:1 visits: 2N WebRTC peers on GStreamer webrtcbin in
 * this one process, each sending pre-encoded VP8 + Opus that was encoded
 * once into a Matroska file (generated on first use, then read into memory),
 * so nothing is encoded in the loop. Each sender is paced at the clip's RTP
 * times like a live encoder: a video frame (its packets in one burst) every
 * 33.3 ms and an Opus frame every 20 ms, each stream on a random phase of its
 * own, both directions of every visit (--tick-ms 5 brings back the load before
 * issue 20: every stream on one shared 5 ms tick, which hands the server
 * several peers' packets per wake-up). A keyframe request (PLI/FIR arriving
 * as a force-key-unit event) restarts the clip at its keyframe, as a live
 * encoder would answer it.
 *
 * Figures per N, over a --seconds window after every peer decoded video:
 *   server CPU per visit (% of one core: the sum of the server's threads'
 *   se.sum_exec_runtime, /proc/PID/task/TID/sched, which counts in ns; the
 *   process's utime+stime in /proc/PID/stat counts 10 ms ticks, 0.1 % of a
 *   core over 10 s, a tenth of one visit's CPU), server RSS per
 *   visit ((RSS now - idle RSS) / N, /proc/PID/status; split by mapping from
 *   /proc/PID/smaps: main arena, thread arenas, other anonymous, files),
 *   receiver packet loss
 *   (RTP sequence gaps after the jitterbuffer), forwarded packets per second,
 *   server-added forwarding latency p50/p99 (from /metrics when the server
 *   exports telemed_media_forward_latency_us{quantile=...}), and join time
 *   (the doctor's visit.accept to the first complete VP8 frame on both
 *   sides, p50/max over visits).
 * Then a plain UDP relay (recvmsg + sendmsg per packet, one thread) fed the
 * same schedule (as many senders, the same phases drawn afresh, the measured
 * packets per frame and mean sizes), and the server's CPU per forwarded
 * packet as a ratio to the relay's. Also per N: CPU per PeerConnection, the
 * media workers' wake-ups per second each and packets received per wake-up
 * (their voluntary context switches), the relay's packets per wake-up, and
 * the server's syscalls per forwarded packet (perf's raw_syscalls tracepoint
 * per thread over 3 s after the CPU window; skipped without perf). Each row also splits the
 * server's CPU by thread
 * (/proc/PID/task: media workers, recorders, the rest) and counts the
 * packets the recorders dropped (the server's media.recording_done lines).
 *
 * Before the visits, on the same server, the server's CPU with no visit at
 * all is measured over --idle-seconds: its fixed cost (timers, the control
 * loop), which a per-visit figure at N = 1 carries whole.
 *
 * --compare-recording runs every N with recording off (--no-recording) and
 * on, each on a fresh server, and prints what recording adds per visit: CPU
 * (absolute, and as a ratio to the CPU without it: issue 4's target is
 * under 30%), memory, and forwarding loss, which it must not cause.
 * --repeat K runs each N K times (with --compare-recording: K off and K on,
 * alternating off, on, on, off, off, on, ... so a drift in the machine's
 * load falls on both sides) and the summary gives the median of each
 * figure, its spread (min-max), the ratio of the medians and the median of
 * the paired differences (each on run minus the off run next to it, which
 * cancels a drift of the machine's load between pairs). One run of
 * each is too noisy on a shared machine: a single visit's CPU alone varied
 * 1.0-1.7 % of a core between runs. The summary also splits the difference
 * by thread group: the recorder threads' own CPU, and the media workers'
 * CPU on vs off, whose difference is the workers' side of the hand-off
 * (copying each packet into the recorder's ring).
 *
 * --party K (K = 2, 3, 4, 6, comma-separated) runs one visit of K instead:
 * the patient and the attending doctor, then K - 2 consulting doctors
 * invited one at a time (visit.invite, visit.invite_answer). Each member
 * keeps one PeerConnection; when visit.participants grows, the members
 * already there add recvonly pairs and renegotiate, as the pages do. Per
 * join it prints the joiner's time from its accept to a frame from every
 * other member, and the longest gap between frames that the members already
 * there saw meanwhile (the freeze a join causes); then, over --seconds with
 * all K in, the server's CPU per visit and per forwarded stream (a sender's
 * audio and video to one receiver: K(K-1) of them, 2 in a 1:1 visit), RSS,
 * loss and forwarding latency. Beside each join's freeze it prints the same
 * gap on streams that lost no packet, the longest none of the members got
 * any audio (a stall of this process or the server) and the keyframe
 * requests their senders got; --party-slots N has every member negotiate N
 * receiving pairs at once, so a join within them renegotiates no one.
 *
 * MEDIA_LOAD_KEEP_LOG=FILE keeps a copy of the (last) server's log there.
 *
 * The exit code says only whether the run worked, never whether it was fast.
 * Linked with GStreamer, libsoup 3, jansson and GLib only; not with the
 * telemed library (it is the server's peer, not part of it).
 *
 * Threads: the main loop owns signaling, the peers' state and the pacer; webrtcbin callbacks hop to
 * it with g_main_context_invoke; streaming threads only bump counters under each peer's lock; the
 * relay baseline runs three plain threads of its own.
 */
#include <gst/gst.h>
#include <gst/sdp/sdp.h>
#define GST_USE_UNSTABLE_API
#include <gst/webrtc/webrtc.h>
#include <jansson.h>
#include <libsoup/soup.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define AUDIO_CAPS                                                                                 \
    "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000,"               \
    "encoding-params=(string)2"
#define VIDEO_CAPS "application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000"
#define VIDEO_FRAME_US 33333 /* the clip's 30 fps */
#define AUDIO_FRAME_US 20000 /* the clip's 960 samples at 48 kHz */

/* ------------------------------------------------------------- the clip */

struct clip {
    GPtrArray *video, *audio; /* GstBuffer*, in order; video[0] is a keyframe */
    GstCaps *vcaps, *acaps;
    double mean_vbytes, mean_abytes;
};

static struct clip CLIP;
static GMutex clip_lock;

static GstFlowReturn on_clip_sample(GstElement *sink, gpointer ud)
{
    int video = GPOINTER_TO_INT(ud);
    GstSample *s = NULL;
    g_signal_emit_by_name(sink, "pull-sample", &s);
    if (!s)
        return GST_FLOW_EOS;
    g_mutex_lock(&clip_lock);
    GstCaps **caps = video ? &CLIP.vcaps : &CLIP.acaps;
    if (!*caps)
        *caps = gst_caps_copy(gst_sample_get_caps(s));
    g_ptr_array_add(video ? CLIP.video : CLIP.audio, gst_buffer_ref(gst_sample_get_buffer(s)));
    g_mutex_unlock(&clip_lock);
    gst_sample_unref(s);
    return GST_FLOW_OK;
}

static int run_to_eos(GstElement *pipe, int timeout_s)
{
    gst_element_set_state(pipe, GST_STATE_PLAYING);
    GstBus *bus = gst_element_get_bus(pipe);
    GstMessage *m = gst_bus_timed_pop_filtered(bus, (GstClockTime)timeout_s * GST_SECOND,
                                               GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
    int rc = m && GST_MESSAGE_TYPE(m) == GST_MESSAGE_EOS ? 0 : -1;
    if (m && GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR) {
        GError *e = NULL;
        gst_message_parse_error(m, &e, NULL);
        g_printerr("pipeline error: %s\n", e ? e->message : "?");
        g_clear_error(&e);
    }
    if (m)
        gst_message_unref(m);
    gst_object_unref(bus);
    gst_element_set_state(pipe, GST_STATE_NULL);
    return rc;
}

/* Encodes the clip into path once (10 s: VP8 with a single keyframe at the
 * start, Opus 20 ms frames), then reads it into memory. */
static int load_clip(int w, int h, int bitrate)
{
    char *path =
        g_strdup_printf("%s/telemed-media-load-zp-%dx%d-%d.mkv", g_get_tmp_dir(), w, h, bitrate);
    GError *err = NULL;
    if (!g_file_test(path, G_FILE_TEST_EXISTS)) {
        char *tmp = g_strdup_printf("%s.part", path);
        char *desc = g_strdup_printf(
            "videotestsrc num-buffers=300 pattern=zone-plate kx2=20 ky2=20 kt=1 ! "
            "video/x-raw,width=%d,height=%d,"
            "framerate=30/1 ! vp8enc deadline=1 cpu-used=4 end-usage=cbr target-bitrate=%d "
            "keyframe-max-dist=100000 ! queue ! matroskamux name=m ! filesink location=%s "
            "audiotestsrc num-buffers=500 samplesperbuffer=960 wave=sine ! "
            "audio/x-raw,rate=48000,channels=2 ! opusenc bitrate=32000 frame-size=20 ! queue ! m.",
            w, h, bitrate, tmp);
        GstElement *p = gst_parse_launch(desc, &err);
        g_free(desc);
        if (!p || run_to_eos(p, 120) != 0 || rename(tmp, path) != 0) {
            g_printerr("could not encode the clip: %s\n", err ? err->message : "pipeline");
            return -1;
        }
        gst_object_unref(p);
        g_free(tmp);
        g_print("# encoded clip %s\n", path);
    }
    CLIP.video = g_ptr_array_new_with_free_func((GDestroyNotify)gst_buffer_unref);
    CLIP.audio = g_ptr_array_new_with_free_func((GDestroyNotify)gst_buffer_unref);
    char *desc = g_strdup_printf("filesrc location=%s ! matroskademux name=d "
                                 "d.video_0 ! queue ! appsink name=vs emit-signals=true sync=false "
                                 "d.audio_0 ! queue ! appsink name=as emit-signals=true sync=false",
                                 path);
    GstElement *p = gst_parse_launch(desc, &err);
    g_free(desc);
    if (!p) {
        g_printerr("could not read the clip: %s\n", err ? err->message : "?");
        return -1;
    }
    GstElement *vs = gst_bin_get_by_name(GST_BIN(p), "vs");
    GstElement *as = gst_bin_get_by_name(GST_BIN(p), "as");
    g_signal_connect(vs, "new-sample", G_CALLBACK(on_clip_sample), GINT_TO_POINTER(1));
    g_signal_connect(as, "new-sample", G_CALLBACK(on_clip_sample), GINT_TO_POINTER(0));
    int rc = run_to_eos(p, 60);
    gst_object_unref(vs);
    gst_object_unref(as);
    gst_object_unref(p);
    g_free(path);
    if (rc != 0 || CLIP.video->len < 2 || CLIP.audio->len < 2)
        return -1;
    double vb = 0, ab = 0;
    for (guint i = 0; i < CLIP.video->len; i++)
        vb += (double)gst_buffer_get_size(g_ptr_array_index(CLIP.video, i));
    for (guint i = 0; i < CLIP.audio->len; i++)
        ab += (double)gst_buffer_get_size(g_ptr_array_index(CLIP.audio, i));
    CLIP.mean_vbytes = vb / CLIP.video->len;
    CLIP.mean_abytes = ab / CLIP.audio->len;
    g_print("# clip: %u video frames (%.0f kbit/s), %u audio frames\n", CLIP.video->len,
            vb * 8 / 1000 / (CLIP.video->len / 30.0), CLIP.audio->len);
    return 0;
}

/* ------------------------------------------------------------ the server */

struct server {
    GSubprocess *proc;
    char *dir, *secret, *bin, *logpath;
    int port;
    char *base, *url;
    pid_t pid;
};

static struct server SRV;
static char *BIN;
static char **SERVER_ARGS; /* extra flags for the server, e.g. --no-recording */

static char *mint(const char *sub, const char *role, const char *dept)
{
    char *out = NULL;
    GError *err = NULL;
    const char *argv[] = {
        BIN,  "token", "--secret", SRV.secret, "--sub", sub, "--role", role, dept ? "--dept" : NULL,
        dept, NULL};
    int status = 0;
    if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, &out, NULL,
                      &status, &err) ||
        status != 0) {
        g_printerr("token: %s\n", err ? err->message : "failed");
        g_clear_error(&err);
        g_free(out);
        return NULL;
    }
    return g_strstrip(out);
}

static gboolean accept_any_cert(SoupMessage *m, GTlsCertificate *c, GTlsCertificateFlags f,
                                gpointer ud)
{
    return TRUE; /* the test server's self-signed certificate */
}

/* A blocking REST call; returns the status and *body (new string) if asked. */
static int rest(SoupSession *ss, const char *method, const char *path, const char *token,
                json_t *body, char **out)
{
    char *uri = g_strconcat(SRV.base, path, NULL);
    SoupMessage *m = soup_message_new(method, uri);
    g_free(uri);
    g_signal_connect(m, "accept-certificate", G_CALLBACK(accept_any_cert), NULL);
    char *auth = g_strconcat("Bearer ", token, NULL);
    soup_message_headers_append(soup_message_get_request_headers(m), "Authorization", auth);
    g_free(auth);
    if (body) {
        char *text = json_dumps(body, JSON_COMPACT);
        GBytes *b = g_bytes_new_take(text, strlen(text));
        soup_message_set_request_body_from_bytes(m, "application/json", b);
        g_bytes_unref(b);
        json_decref(body);
    }
    GError *err = NULL;
    GBytes *resp = soup_session_send_and_read(ss, m, NULL, &err);
    int status = resp ? (int)soup_message_get_status(m) : -1;
    if (out)
        *out = resp ? g_strndup(g_bytes_get_data(resp, NULL), g_bytes_get_size(resp)) : NULL;
    if (!resp)
        g_printerr("%s %s: %s\n", method, path, err ? err->message : "?");
    g_clear_error(&err);
    if (resp)
        g_bytes_unref(resp);
    g_object_unref(m);
    return status;
}

/* The server must not outlive a load generator that crashed or was killed. */
static void die_with_parent(gpointer ud)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
}

/* recording: 0 adds --no-recording to the server's flags; otherwise as
 * the flags say. */
static int server_start(int recording)
{
    GError *err = NULL;
    SRV.dir = g_dir_make_tmp("telemed-media-load-XXXXXX", &err);
    if (!SRV.dir)
        return -1;
    SRV.secret = g_strdup_printf("%08x%08x%08x", g_random_int(), g_random_int(), g_random_int());
    SRV.logpath = g_build_filename(SRV.dir, "server.log", NULL);
    GSubprocessLauncher *l = g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_NONE);
    g_subprocess_launcher_set_stderr_file_path(l, SRV.logpath);
    g_subprocess_launcher_set_child_setup(l, die_with_parent, NULL, NULL);
    g_subprocess_launcher_set_stdout_file_path(l, "/dev/null");
    GPtrArray *argv = g_ptr_array_new();
    /* The secret in the environment: the server refuses it as a flag. */
    g_subprocess_launcher_setenv(l, "TELEMED_JWT_SECRET", SRV.secret, TRUE);
    const char *fixed[] = {BIN,         "--data-dir",
                           SRV.dir,     "--port",
                           "0",         "--listen",
                           "127.0.0.1", "--media-addresses",
                           "127.0.0.1", "--no-consent-required"};
    for (size_t i = 0; i < G_N_ELEMENTS(fixed); i++)
        g_ptr_array_add(argv, (gpointer)fixed[i]);
    for (char **a = SERVER_ARGS; a && *a; a++)
        g_ptr_array_add(argv, *a);
    if (recording == 0)
        g_ptr_array_add(argv, (gpointer) "--no-recording");
    g_ptr_array_add(argv, NULL);
    SRV.proc = g_subprocess_launcher_spawnv(l, (const char *const *)argv->pdata, &err);
    g_ptr_array_unref(argv);
    g_object_unref(l);
    if (!SRV.proc) {
        g_printerr("spawn %s: %s\n", BIN, err->message);
        return -1;
    }
    SRV.pid = (pid_t)atoi(g_subprocess_get_identifier(SRV.proc));
    /* The server logs `ev=server.listening port=N` once it accepts. */
    for (int i = 0; i < 200 && !SRV.port; i++) {
        g_usleep(100000);
        char *text = NULL;
        if (g_file_get_contents(SRV.logpath, &text, NULL, NULL)) {
            const char *p = strstr(text, "ev=server.listening");
            const char *q = p ? strstr(p, "port=") : NULL;
            if (q)
                SRV.port = atoi(q + 5);
            g_free(text);
        }
        if (!g_subprocess_get_identifier(SRV.proc))
            break; /* exited */
    }
    if (!SRV.port) {
        g_printerr("server did not report its port (see %s)\n", SRV.logpath);
        return -1;
    }
    SRV.base = g_strdup_printf("https://127.0.0.1:%d", SRV.port);
    SRV.url = g_strdup_printf("wss://127.0.0.1:%d/ws", SRV.port);
    return 0;
}

static void server_stop(void)
{
    if (SRV.proc) {
        /* GSubprocess reaps the child from the main context: iterate it. */
        g_subprocess_send_signal(SRV.proc, SIGINT); /* SIGTERM drains */
        gint64 end = g_get_monotonic_time() + 8 * G_USEC_PER_SEC;
        while (g_subprocess_get_identifier(SRV.proc) && g_get_monotonic_time() < end) {
            g_main_context_iteration(NULL, FALSE);
            g_usleep(10000);
        }
        if (g_subprocess_get_identifier(SRV.proc))
            g_subprocess_force_exit(SRV.proc);
        g_subprocess_wait(SRV.proc, NULL, NULL);
        g_clear_object(&SRV.proc);
    }
    const char *keep = g_getenv("MEDIA_LOAD_KEEP_LOG"); /* a copy of the server's log */
    if (keep && SRV.logpath) {
        char *text = NULL;
        gsize len = 0;
        if (g_file_get_contents(SRV.logpath, &text, &len, NULL))
            g_file_set_contents(keep, text, (gssize)len, NULL);
        g_free(text);
    }
    if (SRV.dir) {
        char *cmd = g_strdup_printf("rm -rf '%s'", SRV.dir);
        if (system(cmd) != 0)
            g_printerr("could not remove %s\n", SRV.dir);
        g_free(cmd);
    }
    g_free(SRV.dir);
    g_free(SRV.secret);
    g_free(SRV.logpath);
    g_free(SRV.base);
    g_free(SRV.url);
    memset(&SRV, 0, sizeof SRV);
}

/* utime+stime of the server in seconds, and its RSS in KiB. */
static double server_cpu_s(void)
{
    char path[64], *text = NULL;
    g_snprintf(path, sizeof path, "/proc/%d/stat", (int)SRV.pid);
    if (!g_file_get_contents(path, &text, NULL, NULL))
        return -1;
    const char *p = strrchr(text, ')'); /* the command name may hold spaces */
    unsigned long ut = 0, st = 0;
    /* after ") ": state(3) ... utime is field 14, stime 15 */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        ut = st = 0;
    g_free(text);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long server_rss_kib(void)
{
    char path[64], *text = NULL;
    g_snprintf(path, sizeof path, "/proc/%d/status", (int)SRV.pid);
    if (!g_file_get_contents(path, &text, NULL, NULL))
        return -1;
    const char *p = strstr(text, "VmRSS:");
    long kib = p ? atol(p + 6) : -1;
    g_free(text);
    return kib;
}

/* The server's RSS in KiB by kind of mapping, from /proc/PID/smaps: the main
 * malloc arena ([heap], the control thread's), the other threads' arenas
 * (glibc maps each at a 64 MiB boundary), other anonymous memory (thread
 * stacks, blocks malloc mapped on their own, libraries' data) and files (code,
 * mostly). Where a visit's memory lands, before any profiler. */
enum { RSS_HEAP, RSS_ARENAS, RSS_ANON, RSS_FILE, RSS_N };
static const char *RSS_NAMES[RSS_N] = {"main arena", "thread arenas", "other anonymous", "files"};

static void server_rss_parts(long parts[RSS_N])
{
    char path[64], *text = NULL;
    memset(parts, 0, sizeof(long) * RSS_N);
    g_snprintf(path, sizeof path, "/proc/%d/smaps", (int)SRV.pid);
    if (!g_file_get_contents(path, &text, NULL, NULL))
        return;
    int kind = RSS_ANON;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        unsigned long lo, hi;
        char perms[8];
        int name_at = 0;
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &lo, &hi, perms, &name_at) == 3) {
            const char *name = name_at ? line + name_at : "";
            if (strcmp(name, "[heap]") == 0)
                kind = RSS_HEAP;
            else if (name[0] == '/')
                kind = RSS_FILE;
            else if (!name[0] && lo % (64ul << 20) == 0 && perms[0] == 'r')
                kind = RSS_ARENAS;
            else
                kind = RSS_ANON;
        } else if (strncmp(line, "Rss:", 4) == 0) {
            parts[kind] += atol(line + 4);
        }
    }
    g_free(text);
}

/* CPU seconds and context switches of the server's threads, in three
 * groups by thread name: media workers (tm-media-N), recorders
 * (tm-recorder, and any GStreamer streaming thread: appsrc, jitterbuffer,
 * queue...), everything else. From /proc/PID/task/TID/sched
 * (se.sum_exec_runtime, in ms with ns digits: clock ticks are too coarse
 * for a fraction of a percent); falls back to the ticks of .../stat. */
enum { TG_MEDIA, TG_REC, TG_OTHER, TG_N };
static const char *TG_NAMES[TG_N] = {"media workers", "recorders", "other"};

struct tgroups {
    double cpu_s[TG_N];
    double switches[TG_N];
    double wakeups[TG_N]; /* voluntary switches: the thread slept and was woken */
    int threads[TG_N];
    double total_s; /* all threads: the process's CPU at ns resolution */
};

static int thread_group(const char *name)
{
    if (g_str_has_prefix(name, "tm-media"))
        return TG_MEDIA;
    if (g_str_has_prefix(name, "tm-recorder") || strchr(name, ':') ||
        g_str_has_prefix(name, "rtpjitterbuffer") || g_str_has_prefix(name, "timer"))
        return TG_REC;
    return TG_OTHER;
}

static double sched_field(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    const char *colon = p ? strchr(p, ':') : NULL;
    return colon ? g_ascii_strtod(colon + 1, NULL) : -1;
}

static void server_threads(struct tgroups *out)
{
    memset(out, 0, sizeof *out);
    char path[64];
    g_snprintf(path, sizeof path, "/proc/%d/task", (int)SRV.pid);
    GDir *d = g_dir_open(path, 0, NULL);
    if (!d)
        return;
    const char *tid;
    while ((tid = g_dir_read_name(d))) {
        char *comm = g_strdup_printf("%s/%s/comm", path, tid);
        char *schedp = g_strdup_printf("%s/%s/sched", path, tid);
        char *statp = g_strdup_printf("%s/%s/stat", path, tid);
        char *name = NULL, *text = NULL;
        if (g_file_get_contents(comm, &name, NULL, NULL)) {
            int g = thread_group(g_strstrip(name));
            double ms = -1;
            if (g_file_get_contents(schedp, &text, NULL, NULL)) {
                ms = sched_field(text, "se.sum_exec_runtime");
                double sw = sched_field(text, "nr_switches");
                double vol = sched_field(text, "nr_voluntary_switches");
                out->switches[g] += sw > 0 ? sw : 0;
                out->wakeups[g] += vol > 0 ? vol : 0;
                out->threads[g]++;
                g_free(text);
                text = NULL;
            }
            if (ms >= 0) {
                out->cpu_s[g] += ms / 1000.0;
            } else if (g_file_get_contents(statp, &text, NULL, NULL)) {
                const char *close = strrchr(text, ')');
                unsigned long ut = 0, st = 0;
                if (close &&
                    sscanf(close + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
                           &st) == 2)
                    out->cpu_s[g] += (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
                g_free(text);
            }
        }
        g_free(name);
        g_free(comm);
        g_free(schedp);
        g_free(statp);
    }
    g_dir_close(d);
    for (int g = 0; g < TG_N; g++)
        out->total_s += out->cpu_s[g];
}

/* Recordings finished so far and the packets they dropped, from the
 * server's `ev=media.recording_done ... dropped=N` lines. */
static void recording_drops(int *recordings, guint64 *dropped)
{
    *recordings = 0;
    *dropped = 0;
    char *text = NULL;
    if (!g_file_get_contents(SRV.logpath, &text, NULL, NULL))
        return;
    for (const char *p = text; (p = strstr(p, "ev=media.recording_done")); p++) {
        const char *eol = strchr(p, '\n');
        const char *q = strstr(p, "dropped=");
        if (q && (!eol || q < eol))
            *dropped += g_ascii_strtoull(q + 8, NULL, 10);
        (*recordings)++;
    }
    g_free(text);
}

struct metrics {
    double rx, tx, lat_p50, lat_p99, lat_max;
    double dtls_shed; /* sessions whose DTLS state the server freed (media_dtls_shed) */
    double rtx_bytes; /* retransmission history held, pools included (-1: not exported) */
    double nacks_answered;
};

/* The server's node label (every sample has it, first) taken out, so that
 * samples read as their name and own labels. */
static void drop_node_label(char *text)
{
    char *w = text;
    for (const char *r = text; *r;) {
        if (strncmp(r, "{node=\"", 7) == 0 && strchr(r + 7, '"')) {
            r = strchr(r + 7, '"') + 1;
            if (*r == ',')
                *w++ = '{'; /* name{node="a",q="1"} -> name{q="1"} */
            if (*r == ',' || *r == '}')
                r++; /* name{node="a"} -> name */
            continue;
        }
        *w++ = *r++;
    }
    *w = 0;
}

static double metric(const char *text, const char *name)
{
    const char *p = text;
    size_t n = strlen(name);
    while ((p = strstr(p, name))) {
        if ((p == text || p[-1] == '\n') && (p[n] == ' ' || p[n] == '{')) {
            const char *sp = strchr(p, ' ');
            if (p[n] == '{')
                sp = strchr(strchr(p, '}') ? strchr(p, '}') : p, ' ');
            return sp ? g_ascii_strtod(sp + 1, NULL) : -1;
        }
        p += n;
    }
    return -1;
}

static void read_metrics(SoupSession *ss, const char *admin, struct metrics *m)
{
    char *text = NULL;
    memset(m, 0, sizeof *m);
    m->lat_p50 = m->lat_p99 = m->lat_max = -1;
    if (rest(ss, "GET", "/metrics", admin, NULL, &text) != 200 || !text) {
        g_free(text);
        return;
    }
    drop_node_label(text);
    m->rx = metric(text, "telemed_media_rx_packets_total");
    m->tx = metric(text, "telemed_media_tx_packets_total");
    m->lat_p50 = metric(text, "telemed_media_forward_latency_us{quantile=\"0.5\"}");
    m->lat_p99 = metric(text, "telemed_media_forward_latency_us{quantile=\"0.99\"}");
    m->lat_max = metric(text, "telemed_media_forward_latency_us{quantile=\"1\"}");
    m->dtls_shed = metric(text, "telemed_media_dtls_shed_total");
    m->rtx_bytes = metric(text, "telemed_media_rtx_bytes");
    m->nacks_answered = metric(text, "telemed_media_nacks_answered_total");
    g_free(text);
}

/* ------------------------------------------------------------- the peers */

struct seqtrack {
    gboolean started;
    guint32 first, highest; /* extended */
    guint64 received;
};

#define MAX_MIDS 32
#define MAX_VPADS 16

/* A receiving video pad's frames, for the freeze a join causes, and its
 * packets (after the jitterbuffer), to tell a freeze that followed a lost
 * packet (the depayloader then waits for a keyframe) from one that did not. */
struct vpad {
    struct peer *p;
    int idx;
    guint16 last_seq; /* under the peer's lock */
    gboolean have_seq;
};

struct peer {
    int idx;
    gboolean doctor;
    char *sub, *token, *visit_id;
    SoupWebsocketConnection *ws;
    int next_id;
    gboolean hello_ok, available, active, offer_sent, answer_set, connected, failed;
    GSList *pend_local, *pend_remote;
    char *mids[MAX_MIDS];
    int n_mids;
    /* --party: receiving pairs negotiated (its sendrecv pair counts) and wanted */
    int recv_pairs, want_pairs;
    gboolean attending;
    gint64 join_start_us; /* an invitee: when it accepted */
    struct vpad vpads[MAX_VPADS];
    int n_vpads;        /* under lock */
    int n_vpads_before; /* --party: the pads it had when the latest join began */
    gint64 vpad_first_us[MAX_VPADS], vpad_last_us[MAX_VPADS], vpad_gap_us[MAX_VPADS];
    guint vpad_lost[MAX_VPADS]; /* --party: packets missing since the latest join began */
    /* --party: the longest time no audio packet came from anyone since the latest join
     * began: this process or the server stalled (audio needs no keyframe) */
    gint64 audio_last_us, audio_gap_us;
    int kf_asked_before; /* --party: kf_asked when the latest join began */
    GstElement *pipe, *webrtc, *vsrc, *asrc;
    guint vidx, aidx;
    gint64 next_v_us, next_a_us, last_restart_us;
    int restart;  /* atomic: a keyframe was requested */
    int kf_asked; /* atomic: keyframe requests that reached our sender */
    GMutex lock;  /* the receive counters below */
    gint64 first_frame_us;
    guint64 vframes, vpackets, vbytes, apackets, abytes;
    struct seqtrack vseq, aseq;
};

static GPtrArray *PEERS;
static GHashTable *ACCEPT_US; /* visit_id -> gint64* */
static SoupSession *WS_SESSION;
static GMainLoop *LOOP;
static int W = 640, H = 480, BITRATE = 1000000;
static double IDLE_S = 3.0; /* --idle-seconds */
static int TICK_MS;         /* --tick-ms: the old shared tick instead of own phases */
static int PARTY_SLOTS;     /* --party-slots: receiving pairs every member negotiates at once */

static void pacer_add(struct peer *p);

static void peer_send(struct peer *p, json_t *obj)
{
    char idb[16];
    g_snprintf(idb, sizeof idb, "%d", ++p->next_id);
    json_object_set_new(obj, "id", json_string(idb));
    char *text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (p->ws && soup_websocket_connection_get_state(p->ws) == SOUP_WEBSOCKET_STATE_OPEN)
        soup_websocket_connection_send_text(p->ws, text);
    free(text);
}

static void send_cand(struct peer *p, guint mline, const char *cand)
{
    const char *mid = (int)mline < p->n_mids && p->mids[mline] ? p->mids[mline] : "0";
    peer_send(p, json_pack("{s:s, s:s, s:s, s:s, s:i}", "type", "media.candidate", "visit_id",
                           p->visit_id, "candidate", cand, "sdpMid", mid, "sdpMLineIndex",
                           (int)mline));
}

struct hop {
    struct peer *p;
    guint mline;
    char *text;
};

static gboolean cand_main(gpointer ud)
{
    struct hop *h = ud;
    if (h->p->offer_sent)
        send_cand(h->p, h->mline, h->text);
    else
        h->p->pend_local = g_slist_append(h->p->pend_local, h);
    if (h->p->offer_sent) {
        g_free(h->text);
        g_free(h);
    }
    return G_SOURCE_REMOVE;
}

static void on_ice_candidate(GstElement *wb, guint mline, gchar *cand, gpointer ud)
{
    struct hop *h = g_new0(struct hop, 1);
    h->p = ud;
    h->mline = mline;
    h->text = g_strdup(cand);
    g_main_context_invoke(NULL, cand_main, h);
}

static gboolean offer_main(gpointer ud)
{
    struct hop *h = ud;
    struct peer *p = h->p;
    peer_send(p, json_pack("{s:s, s:s, s:s}", "type", "media.offer", "visit_id", p->visit_id, "sdp",
                           h->text));
    p->offer_sent = TRUE;
    for (GSList *l = p->pend_local; l; l = l->next) {
        struct hop *c = l->data;
        send_cand(p, c->mline, c->text);
        g_free(c->text);
        g_free(c);
    }
    g_slist_free(p->pend_local);
    p->pend_local = NULL;
    g_free(h->text);
    g_free(h);
    return G_SOURCE_REMOVE;
}

static void on_local_set(GstPromise *promise, gpointer ud)
{
    gst_promise_unref(promise);
    g_main_context_invoke(NULL, offer_main, ud);
}

static void on_offer(GstPromise *promise, gpointer ud)
{
    struct peer *p = ud;
    GstWebRTCSessionDescription *offer = NULL;
    const GstStructure *r = gst_promise_get_reply(promise);
    if (r)
        gst_structure_get(r, "offer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &offer, NULL);
    gst_promise_unref(promise);
    if (!offer) {
        p->failed = TRUE;
        return;
    }
    for (guint i = 0; i < gst_sdp_message_medias_len(offer->sdp) && i < MAX_MIDS; i++) {
        const char *mid =
            gst_sdp_media_get_attribute_val(gst_sdp_message_get_media(offer->sdp, i), "mid");
        g_free(p->mids[i]);
        p->mids[i] = g_strdup(mid ? mid : "");
        p->n_mids = (int)i + 1;
    }
    struct hop *h = g_new0(struct hop, 1);
    h->p = p;
    h->text = gst_sdp_message_as_text(offer->sdp);
    GstPromise *sp = gst_promise_new_with_change_func(on_local_set, h, NULL);
    g_signal_emit_by_name(p->webrtc, "set-local-description", offer, sp);
    gst_webrtc_session_description_free(offer);
}

static gboolean connected_main(gpointer ud)
{
    struct peer *p = ud;
    if (!p->connected) {
        p->connected = TRUE;
        p->vidx = p->aidx = 0;
        pacer_add(p);
    }
    return G_SOURCE_REMOVE;
}

static void on_pc_state(GObject *o, GParamSpec *ps, gpointer ud)
{
    GstWebRTCPeerConnectionState st;
    g_object_get(o, "connection-state", &st, NULL);
    if (st == GST_WEBRTC_PEER_CONNECTION_STATE_CONNECTED)
        g_main_context_invoke(NULL, connected_main, ud);
    else if (st == GST_WEBRTC_PEER_CONNECTION_STATE_FAILED)
        ((struct peer *)ud)->failed = TRUE;
}

static void track(struct seqtrack *t, guint16 seq)
{
    if (!t->started) {
        t->started = TRUE;
        t->first = t->highest = seq;
    } else {
        guint16 hi = (guint16)t->highest;
        gint16 d = (gint16)(seq - hi);
        if (d > 0)
            t->highest += (guint32)d;
    }
    t->received++;
}

static guint16 rtp_seq(GstBuffer *b)
{
    guint8 hdr[4] = {0};
    gst_buffer_extract(b, 0, hdr, 4);
    return (guint16)((hdr[2] << 8) | hdr[3]);
}

static GstPadProbeReturn on_vrtp(GstPad *pad, GstPadProbeInfo *info, gpointer ud)
{
    struct peer *p = ud;
    GstBuffer *b = GST_PAD_PROBE_INFO_BUFFER(info);
    g_mutex_lock(&p->lock);
    p->vpackets++;
    p->vbytes += gst_buffer_get_size(b);
    track(&p->vseq, rtp_seq(b));
    g_mutex_unlock(&p->lock);
    return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn on_vpad_rtp(GstPad *pad, GstPadProbeInfo *info, gpointer ud)
{
    struct vpad *vp = ud;
    guint16 seq = rtp_seq(GST_PAD_PROBE_INFO_BUFFER(info));
    g_mutex_lock(&vp->p->lock);
    guint16 ahead = (guint16)(seq - vp->last_seq);
    if (vp->have_seq && ahead > 1 && ahead < 0x8000)
        vp->p->vpad_lost[vp->idx] += ahead - 1u;
    if (!vp->have_seq || (ahead > 0 && ahead < 0x8000))
        vp->last_seq = seq;
    vp->have_seq = TRUE;
    g_mutex_unlock(&vp->p->lock);
    return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn on_artp(GstPad *pad, GstPadProbeInfo *info, gpointer ud)
{
    struct peer *p = ud;
    GstBuffer *b = GST_PAD_PROBE_INFO_BUFFER(info);
    g_mutex_lock(&p->lock);
    p->apackets++;
    p->abytes += gst_buffer_get_size(b);
    gint64 now = g_get_monotonic_time();
    if (p->audio_last_us && now - p->audio_last_us > p->audio_gap_us)
        p->audio_gap_us = now - p->audio_last_us;
    p->audio_last_us = now;
    track(&p->aseq, rtp_seq(b));
    g_mutex_unlock(&p->lock);
    return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn on_vframe(GstPad *pad, GstPadProbeInfo *info, gpointer ud)
{
    struct vpad *vp = ud;
    struct peer *p = vp->p;
    gint64 now = g_get_monotonic_time();
    g_mutex_lock(&p->lock);
    if (!p->first_frame_us)
        p->first_frame_us = now;
    p->vframes++;
    int k = vp->idx;
    if (!p->vpad_first_us[k])
        p->vpad_first_us[k] = now;
    if (p->vpad_last_us[k] && now - p->vpad_last_us[k] > p->vpad_gap_us[k])
        p->vpad_gap_us[k] = now - p->vpad_last_us[k];
    p->vpad_last_us[k] = now;
    g_mutex_unlock(&p->lock);
    return GST_PAD_PROBE_OK;
}

static void probe(GstElement *bin, const char *name, const char *pad, GstPadProbeCallback cb,
                  gpointer ud)
{
    GstElement *e = gst_bin_get_by_name(GST_BIN(bin), name);
    GstPad *pd = gst_element_get_static_pad(e, pad);
    gst_pad_add_probe(pd, GST_PAD_PROBE_TYPE_BUFFER, cb, ud, NULL);
    gst_object_unref(pd);
    gst_object_unref(e);
}

/* Receive side: no decoding, which would cost this process more than the
 * server; a complete VP8 frame out of the depayloader (which waits for a
 * keyframe) stands for "decodable". */
static void on_pad_added(GstElement *wb, GstPad *pad, gpointer ud)
{
    struct peer *p = ud;
    if (GST_PAD_DIRECTION(pad) != GST_PAD_SRC)
        return;
    GstCaps *caps = gst_pad_get_current_caps(pad);
    const char *media =
        caps ? gst_structure_get_string(gst_caps_get_structure(caps, 0), "media") : NULL;
    gboolean video = media && strcmp(media, "video") == 0;
    GstElement *bin = gst_parse_bin_from_description(
        video ? "identity name=in ! rtpvp8depay name=dp wait-for-keyframe=true "
                "request-keyframe=true ! fakesink sync=false async=false"
              : "identity name=in ! fakesink sync=false async=false",
        TRUE, NULL);
    if (caps)
        gst_caps_unref(caps);
    probe(bin, "in", "src", video ? on_vrtp : on_artp, p);
    if (video) {
        g_mutex_lock(&p->lock);
        int k = p->n_vpads < MAX_VPADS ? p->n_vpads++ : MAX_VPADS - 1;
        g_mutex_unlock(&p->lock);
        p->vpads[k] = (struct vpad){p, k, 0, FALSE};
        probe(bin, "in", "src", on_vpad_rtp, &p->vpads[k]);
        probe(bin, "dp", "src", on_vframe, &p->vpads[k]);
    }
    gst_bin_add(GST_BIN(p->pipe), bin);
    gst_element_sync_state_with_parent(bin);
    GstPad *sink = gst_element_get_static_pad(bin, "sink");
    gst_pad_link(pad, sink);
    gst_object_unref(sink);
}

/* A PLI/FIR from the server reaches our appsrc as a force-key-unit event. */
static GstPadProbeReturn on_upstream(GstPad *pad, GstPadProbeInfo *info, gpointer ud)
{
    struct peer *p = ud;
    GstEvent *ev = GST_PAD_PROBE_INFO_EVENT(info);
    const GstStructure *s = ev ? gst_event_get_structure(ev) : NULL;
    if (s && gst_structure_has_name(s, "GstForceKeyUnit")) {
        g_atomic_int_set(&p->restart, 1);
        g_atomic_int_inc(&p->kf_asked);
    }
    return GST_PAD_PROBE_OK;
}

static void add_recv_pairs(struct peer *p, int n)
{
    for (int i = 0; i < 2 * n; i++) {
        GstCaps *c = gst_caps_from_string(i % 2 ? VIDEO_CAPS : AUDIO_CAPS);
        GstWebRTCRTPTransceiver *t = NULL;
        g_signal_emit_by_name(p->webrtc, "add-transceiver",
                              GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_RECVONLY, c, &t);
        if (t) {
            g_object_set(t, "do-nack", i % 2 == 1, NULL);
            gst_object_unref(t);
        }
        gst_caps_unref(c);
    }
}

static int start_media(struct peer *p)
{
    p->pipe = gst_pipeline_new(NULL);
    p->webrtc = gst_element_factory_make("webrtcbin", NULL);
    g_object_set(p->webrtc, "bundle-policy", GST_WEBRTC_BUNDLE_POLICY_MAX_BUNDLE, "latency", 50,
                 NULL);
    gst_bin_add(GST_BIN(p->pipe), p->webrtc);
    GstWebRTCICE *ice = NULL;
    g_object_get(p->webrtc, "ice-agent", &ice, NULL);
    if (ice) {
        gboolean ok;
        g_signal_emit_by_name(ice, "add-local-ip-address", "127.0.0.1", &ok);
        gst_object_unref(ice);
    }
    g_signal_connect(p->webrtc, "on-ice-candidate", G_CALLBACK(on_ice_candidate), p);
    g_signal_connect(p->webrtc, "pad-added", G_CALLBACK(on_pad_added), p);
    g_signal_connect(p->webrtc, "notify::connection-state", G_CALLBACK(on_pc_state), p);
    guint assrc = g_random_int_range(1, G_MAXINT32), vssrc = g_random_int_range(1, G_MAXINT32);
    char *ad = g_strdup_printf("appsrc name=a format=time is-live=true do-timestamp=true ! "
                               "rtpopuspay pt=111 ssrc=%u",
                               assrc);
    char *vd = g_strdup_printf("appsrc name=v format=time is-live=true do-timestamp=true ! "
                               "rtpvp8pay pt=96 picture-id-mode=15-bit ssrc=%u",
                               vssrc);
    const char *descs[2] = {ad, vd};
    for (int i = 0; i < 2; i++) {
        GstElement *bin = gst_parse_bin_from_description(descs[i], TRUE, NULL);
        gst_bin_add(GST_BIN(p->pipe), bin);
        GstElement *src = gst_bin_get_by_name(GST_BIN(bin), i ? "v" : "a");
        g_object_set(src, "caps", i ? CLIP.vcaps : CLIP.acaps, NULL);
        if (i) {
            p->vsrc = src;
            GstPad *sp = gst_element_get_static_pad(src, "src");
            gst_pad_add_probe(sp, GST_PAD_PROBE_TYPE_EVENT_UPSTREAM, on_upstream, p, NULL);
            gst_object_unref(sp);
        } else {
            p->asrc = src;
        }
        GstPad *out = gst_element_get_static_pad(bin, "src");
        GstPad *in = gst_element_request_pad_simple(p->webrtc, "sink_%u");
        gst_pad_link(out, in);
        gst_object_unref(out);
        gst_object_unref(in);
    }
    g_free(ad);
    g_free(vd);
    GArray *ts = NULL;
    g_signal_emit_by_name(p->webrtc, "get-transceivers", &ts);
    for (guint i = 0; ts && i < ts->len; i++) {
        GstWebRTCRTPTransceiver *t = g_array_index(ts, GstWebRTCRTPTransceiver *, i);
        GstCaps *c = gst_caps_from_string(i == 0 ? AUDIO_CAPS : VIDEO_CAPS);
        gst_caps_set_simple(c, "ssrc", G_TYPE_UINT, i == 0 ? assrc : vssrc, NULL);
        g_object_set(t, "direction", GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDRECV, "do-nack",
                     i != 0, "codec-preferences", c, NULL);
        gst_caps_unref(c);
    }
    if (ts)
        g_array_unref(ts);
    if (p->want_pairs < MAX(1, PARTY_SLOTS))
        p->want_pairs = MAX(1, PARTY_SLOTS);
    add_recv_pairs(p, p->want_pairs - 1);
    p->recv_pairs = p->want_pairs;
    if (gst_element_set_state(p->pipe, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
        return -1;
    GstPromise *pr = gst_promise_new_with_change_func(on_offer, p, NULL);
    g_signal_emit_by_name(p->webrtc, "create-offer", NULL, pr);
    return 0;
}

/* --party: the visit grew past the pairs this member receives on; add recvonly
 * pairs and offer again (same ICE), as a page does on visit.participants. */
static void renegotiate(struct peer *p)
{
    if (!p->webrtc || !p->answer_set || p->want_pairs <= p->recv_pairs)
        return;
    add_recv_pairs(p, p->want_pairs - p->recv_pairs);
    p->recv_pairs = p->want_pairs;
    p->answer_set = FALSE;
    GstPromise *pr = gst_promise_new_with_change_func(on_offer, p, NULL);
    g_signal_emit_by_name(p->webrtc, "create-offer", NULL, pr);
}

static void on_answer(struct peer *p, const char *sdp_text)
{
    GstSDPMessage *sdp = NULL;
    if (gst_sdp_message_new_from_text(sdp_text, &sdp) != GST_SDP_OK) {
        p->failed = TRUE;
        return;
    }
    GstWebRTCSessionDescription *a =
        gst_webrtc_session_description_new(GST_WEBRTC_SDP_TYPE_ANSWER, sdp);
    GstPromise *pr = gst_promise_new();
    g_signal_emit_by_name(p->webrtc, "set-remote-description", a, pr);
    gst_promise_wait(pr);
    gst_promise_unref(pr);
    gst_webrtc_session_description_free(a);
    p->answer_set = TRUE;
    for (GSList *l = p->pend_remote; l; l = l->next) {
        json_t *c = l->data;
        const char *cand = json_string_value(json_object_get(c, "candidate"));
        if (cand && *cand)
            g_signal_emit_by_name(p->webrtc, "add-ice-candidate",
                                  (guint)json_integer_value(json_object_get(c, "sdpMLineIndex")),
                                  cand);
        json_decref(c);
    }
    g_slist_free(p->pend_remote);
    p->pend_remote = NULL;
    renegotiate(p); /* the visit grew while this offer was out */
}

static void on_ws_message(SoupWebsocketConnection *ws, gint type, GBytes *msg, gpointer ud)
{
    struct peer *p = ud;
    gsize len;
    const char *data = g_bytes_get_data(msg, &len);
    json_t *m = json_loadb(data, len, 0, NULL);
    const char *t = m ? json_string_value(json_object_get(m, "type")) : NULL;
    if (!t) {
        json_decref(m);
        return;
    }
    if (strcmp(t, "error") == 0) {
        g_printerr("peer %s: server error %s: %s\n", p->sub,
                   json_string_value(json_object_get(m, "code")),
                   json_string_value(json_object_get(m, "message")));
        p->failed = TRUE;
    } else if (strcmp(t, "result") == 0) {
        json_t *d = json_object_get(m, "data");
        if (!p->hello_ok) {
            p->hello_ok = TRUE;
            if (p->doctor)
                peer_send(p,
                          json_pack("{s:s, s:s}", "type", "doctor.status", "status", "available"));
            else
                peer_send(p, json_pack("{s:s, s:s, s:s}", "type", "checkin", "dept", "bench",
                                       "kind", "follow_up"));
        } else if (p->doctor && !p->available) {
            p->available = TRUE;
        } else if (!p->doctor && !p->visit_id && json_object_get(d, "visit_id")) {
            p->visit_id = g_strdup(json_string_value(json_object_get(d, "visit_id")));
        } else if (p->doctor && !p->active && json_is_array(json_object_get(d, "participants"))) {
            /* Our invite_answer's result: we are in, receiving everyone else. */
            p->visit_id = g_strdup(json_string_value(json_object_get(d, "visit_id")));
            p->want_pairs = (int)json_array_size(json_object_get(d, "participants")) - 1;
            p->active = TRUE;
            if (!p->visit_id || start_media(p) != 0)
                p->failed = TRUE;
        }
    } else if (strcmp(t, "visit.invited") == 0 && p->doctor && !p->visit_id) {
        p->join_start_us = g_get_monotonic_time();
        peer_send(p, json_pack("{s:s, s:O, s:b}", "type", "visit.invite_answer", "invite_id",
                               json_object_get(m, "invite_id"), "accept", 1));
    } else if (strcmp(t, "visit.participants") == 0 && p->active) {
        int k = (int)json_array_size(json_object_get(m, "participants"));
        if (k - 1 > p->want_pairs) {
            p->want_pairs = k - 1;
            renegotiate(p);
        }
    } else if (strcmp(t, "visit.offer") == 0 && p->doctor && !p->visit_id) {
        p->attending = TRUE;
        p->visit_id = g_strdup(json_string_value(json_object_get(m, "visit_id")));
        gint64 *now = g_new(gint64, 1);
        *now = g_get_monotonic_time();
        g_hash_table_insert(ACCEPT_US, g_strdup(p->visit_id), now);
        peer_send(p, json_pack("{s:s, s:s}", "type", "visit.accept", "visit_id", p->visit_id));
    } else if (strcmp(t, "visit.state") == 0) {
        const char *st = json_string_value(json_object_get(m, "state"));
        const char *vid = json_string_value(json_object_get(m, "visit_id"));
        if (st && vid && p->visit_id && strcmp(vid, p->visit_id) == 0 &&
            strcmp(st, "active") == 0 && !p->active) {
            p->active = TRUE;
            if (start_media(p) != 0)
                p->failed = TRUE;
        }
    } else if (strcmp(t, "media.answer") == 0 && p->webrtc) {
        on_answer(p, json_string_value(json_object_get(m, "sdp")));
    } else if (strcmp(t, "media.candidate") == 0 && p->webrtc) {
        if (p->answer_set) {
            const char *cand = json_string_value(json_object_get(m, "candidate"));
            if (cand && *cand)
                g_signal_emit_by_name(
                    p->webrtc, "add-ice-candidate",
                    (guint)json_integer_value(json_object_get(m, "sdpMLineIndex")), cand);
        } else {
            p->pend_remote = g_slist_append(p->pend_remote, json_incref(m));
        }
    }
    json_decref(m);
}

static void on_ws(GObject *src, GAsyncResult *res, gpointer ud)
{
    struct peer *p = ud;
    GError *err = NULL;
    p->ws = soup_session_websocket_connect_finish(SOUP_SESSION(src), res, &err);
    if (!p->ws) {
        g_printerr("peer %s: websocket: %s\n", p->sub, err ? err->message : "?");
        g_clear_error(&err);
        p->failed = TRUE;
        return;
    }
    soup_websocket_connection_set_max_incoming_payload_size(p->ws, 1 << 20);
    soup_websocket_connection_set_keepalive_interval(p->ws, 0);
    g_signal_connect(p->ws, "message", G_CALLBACK(on_ws_message), p);
    peer_send(p, json_pack("{s:s, s:s, s:s}", "type", "hello", "token", p->token, "ua",
                           "telemed-media-load/1"));
}

static struct peer *peer_new(int idx, gboolean doctor)
{
    struct peer *p = g_new0(struct peer, 1);
    p->idx = idx;
    p->doctor = doctor;
    p->sub = g_strdup_printf("%s-%d", doctor ? "d-bench" : "p-bench", idx);
    p->token = mint(p->sub, doctor ? "doctor" : "patient", "bench");
    g_mutex_init(&p->lock);
    if (!p->token) {
        p->failed = TRUE;
        return p;
    }
    SoupMessage *m = soup_message_new("GET", SRV.url);
    g_signal_connect(m, "accept-certificate", G_CALLBACK(accept_any_cert), NULL);
    const char *protos[] = {"telemed.v1", NULL};
    soup_session_websocket_connect_async(WS_SESSION, m, NULL, (char **)protos, G_PRIORITY_DEFAULT,
                                         NULL, on_ws, p);
    g_object_unref(m);
    return p;
}

static void peer_free(struct peer *p)
{
    if (p->pipe) {
        gst_element_set_state(p->pipe, GST_STATE_NULL);
        gst_object_unref(p->pipe);
    }
    if (p->vsrc)
        gst_object_unref(p->vsrc);
    if (p->asrc)
        gst_object_unref(p->asrc);
    if (p->ws) {
        if (soup_websocket_connection_get_state(p->ws) == SOUP_WEBSOCKET_STATE_OPEN)
            soup_websocket_connection_close(p->ws, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
        g_object_unref(p->ws);
    }
    for (int i = 0; i < MAX_MIDS; i++)
        g_free(p->mids[i]);
    g_free(p->sub);
    g_free(p->token);
    g_free(p->visit_id);
    g_mutex_clear(&p->lock);
    g_free(p);
}

static void push(GstElement *src, GstBuffer *b)
{
    GstBuffer *c = gst_buffer_copy(b); /* shares the memory; timestamps are ours */
    GST_BUFFER_PTS(c) = GST_BUFFER_DTS(c) = GST_CLOCK_TIME_NONE;
    GstFlowReturn r;
    g_signal_emit_by_name(src, "push-buffer", c, &r);
    gst_buffer_unref(c);
}

/* Sends what is due of every connected peer's clip: each peer's video at its
 * clip's 30 fps and audio every 20 ms (the clip's RTP times), each stream on
 * a phase of its own, as independent live encoders send. */
static void pace_due_now(gint64 now)
{
    for (guint i = 0; i < PEERS->len; i++) {
        struct peer *p = g_ptr_array_index(PEERS, i);
        if (!p->connected || !p->vsrc)
            continue;
        /* The clip's keyframe, as an encoder answers a PLI; one that comes
         * sooner than 300 ms after the last waits for them, not dropped (a
         * join asks twice: the new receiver's request, then the recording's
         * new part). */
        if (g_atomic_int_get(&p->restart) && now - p->last_restart_us > 300000) {
            p->vidx = 0;
            p->last_restart_us = now;
            g_atomic_int_set(&p->restart, 0);
        }
        for (int k = 0; k < 4 && p->next_v_us <= now; k++) {
            push(p->vsrc, g_ptr_array_index(CLIP.video, p->vidx));
            p->vidx = (p->vidx + 1) % CLIP.video->len;
            p->next_v_us += VIDEO_FRAME_US;
        }
        for (int k = 0; k < 4 && p->next_a_us <= now; k++) {
            push(p->asrc, g_ptr_array_index(CLIP.audio, p->aidx));
            p->aidx = (p->aidx + 1) % CLIP.audio->len;
            p->next_a_us += AUDIO_FRAME_US;
        }
        if (p->next_v_us < now - 200000)
            p->next_v_us = now; /* fell behind: skip rather than burst */
        if (p->next_a_us < now - 200000)
            p->next_a_us = now;
    }
}

/* The earliest time a connected peer has something to send, or -1. */
static gint64 pace_next_due(void)
{
    gint64 due = -1;
    for (guint i = 0; i < PEERS->len; i++) {
        struct peer *p = g_ptr_array_index(PEERS, i);
        if (!p->connected || !p->vsrc)
            continue;
        gint64 t = MIN(p->next_v_us, p->next_a_us);
        due = due < 0 || t < due ? t : due;
    }
    return due;
}

/* The pacer is a source whose ready time is the next packet due, not a
 * shared tick: a tick would line every peer's sends up on it and hand the
 * server bursts of many peers' packets per wake-up, which no hospital's
 * patients do (tests/bench/README.md, "a paced load"). */
static gboolean pace_dispatch(GSource *src, GSourceFunc cb, gpointer ud)
{
    (void)cb;
    (void)ud;
    pace_due_now(g_get_monotonic_time());
    gint64 due = pace_next_due();
    if (TICK_MS && due >= 0)
        due = (due / (TICK_MS * 1000) + 1) * (TICK_MS * 1000);
    g_source_set_ready_time(src, due);
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs PACE_FUNCS = {.dispatch = pace_dispatch};
static GSource *PACER;

static void pacer_start(void)
{
    PACER = g_source_new(&PACE_FUNCS, sizeof(GSource));
    g_source_set_ready_time(PACER, -1);
    g_source_attach(PACER, NULL);
}

/* A peer that just connected: its streams' phases are drawn at random. */
static void pacer_add(struct peer *p)
{
    gint64 now = g_get_monotonic_time();
    p->next_v_us = now + (TICK_MS ? 0 : g_random_int_range(0, VIDEO_FRAME_US));
    p->next_a_us = now + (TICK_MS ? 0 : g_random_int_range(0, AUDIO_FRAME_US));
    gint64 ready = g_source_get_ready_time(PACER);
    gint64 due = MIN(p->next_v_us, p->next_a_us);
    if (ready < 0 || due < ready)
        g_source_set_ready_time(PACER, due);
}

typedef gboolean (*pred_fn)(void);

static gboolean wake_main(gpointer ud)
{
    (void)ud;
    return G_SOURCE_CONTINUE;
}

/* Runs the main loop until pred holds (checked at least every 10 ms) or for
 * seconds. The loop sleeps in poll between events: no polling of its own
 * that would take CPU from the server or move the pacer's sends. */
static gboolean run_until(pred_fn pred, double seconds)
{
    gint64 end = g_get_monotonic_time() + (gint64)(seconds * 1e6);
    guint tick = g_timeout_add(10, wake_main, NULL);
    gboolean held = FALSE;
    while (g_get_monotonic_time() < end) {
        if (pred && pred()) {
            held = TRUE;
            break;
        }
        g_main_context_iteration(NULL, TRUE);
    }
    g_source_remove(tick);
    return held || (pred ? pred() : TRUE);
}

static gboolean all_available(void)
{
    for (guint i = 0; i < PEERS->len; i++) {
        struct peer *p = g_ptr_array_index(PEERS, i);
        if (p->doctor && !p->available)
            return FALSE;
    }
    return TRUE;
}

static gboolean all_flowing(void)
{
    for (guint i = 0; i < PEERS->len; i++) {
        struct peer *p = g_ptr_array_index(PEERS, i);
        g_mutex_lock(&p->lock);
        gboolean ok = p->first_frame_us != 0;
        g_mutex_unlock(&p->lock);
        if (!ok)
            return FALSE;
    }
    return TRUE;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

struct totals {
    guint64 vpackets, vbytes, apackets, abytes, expected, received, frames;
};

static void sum(struct totals *t)
{
    memset(t, 0, sizeof *t);
    for (guint i = 0; i < PEERS->len; i++) {
        struct peer *p = g_ptr_array_index(PEERS, i);
        g_mutex_lock(&p->lock);
        t->vpackets += p->vpackets;
        t->vbytes += p->vbytes;
        t->apackets += p->apackets;
        t->abytes += p->abytes;
        t->frames += p->vframes;
        struct seqtrack *s[2] = {&p->vseq, &p->aseq};
        for (int k = 0; k < 2; k++) {
            if (s[k]->started) {
                t->expected += s[k]->highest - s[k]->first + 1;
                t->received += s[k]->received;
            }
        }
        g_mutex_unlock(&p->lock);
    }
}

/* ------------------------------------------------------ the UDP baseline */

/* The floor: a plain relay thread, one blocking recvmsg and one sendmsg per
 * packet, fed the load's own schedule (each sender's audio and video frames
 * on phases of their own, a video frame as a burst of its packets), so it
 * pays the same wake-ups per packet as the server would at best. */
struct relay {
    int in_fd, out_fd, sink_fd;
    struct sockaddr_in sink_addr;
    volatile int stop;
    guint64 packets;
    double cpu_s;
    long wakeups; /* the relay thread's voluntary context switches */
};

static void *relay_thread(void *ud)
{
    struct relay *r = ud;
    uint8_t buf[2048];
    struct timeval tv = {0, 100000};
    setsockopt(r->in_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct rusage ru0, ru1;
    getrusage(RUSAGE_THREAD, &ru0);
    while (!r->stop) {
        struct iovec iov = {buf, sizeof buf};
        struct sockaddr_in from;
        struct msghdr mh = {
            .msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov, .msg_iovlen = 1};
        ssize_t n = recvmsg(r->in_fd, &mh, 0);
        if (n <= 0)
            continue;
        struct iovec oiov = {buf, (size_t)n};
        struct msghdr om = {.msg_name = &r->sink_addr,
                            .msg_namelen = sizeof r->sink_addr,
                            .msg_iov = &oiov,
                            .msg_iovlen = 1};
        if (sendmsg(r->out_fd, &om, 0) == n)
            r->packets++;
    }
    getrusage(RUSAGE_THREAD, &ru1);
    r->wakeups = ru1.ru_nvcsw - ru0.ru_nvcsw;
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    r->cpu_s = (double)ts.tv_sec + ts.tv_nsec / 1e9;
    return NULL;
}

static void *drain_thread(void *ud)
{
    struct relay *r = ud;
    uint8_t buf[2048];
    struct timeval tv = {0, 100000};
    setsockopt(r->sink_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (!r->stop)
        (void)!recv(r->sink_fd, buf, sizeof buf, 0);
    return NULL;
}

static int udp_bound(struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int big = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t l = sizeof *addr;
    if (bind(fd, (struct sockaddr *)addr, sizeof *addr) != 0 ||
        getsockname(fd, (struct sockaddr *)addr, &l) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One sender's stream in the relay's schedule. */
struct relay_stream {
    gint64 next_us, period_us;
    double per_frame, owed; /* packets per frame; the fraction not yet sent */
    int size;
};

/* What the relay is fed: senders peers, each with audio (one packet of
 * asize every 20 ms) and video (vpf packets of vsize every 33.3 ms). */
struct relay_load {
    int senders;
    double vpf;
    int vsize, asize;
};

static void sleep_until_us(gint64 t)
{
    gint64 now = g_get_monotonic_time();
    if (t > now)
        g_usleep((gulong)(t - now));
}

/* Relays the load for seconds; returns the relay's CPU s per packet, and
 * its packets and wake-ups. */
static double relay_baseline(const struct relay_load *ld, double seconds, guint64 *packets,
                             long *wakeups)
{
    struct relay r = {0};
    struct sockaddr_in in_addr, out_addr, src_addr;
    r.in_fd = udp_bound(&in_addr);
    r.out_fd = udp_bound(&out_addr);
    r.sink_fd = udp_bound(&r.sink_addr);
    int src_fd = udp_bound(&src_addr);
    if (r.in_fd < 0 || r.out_fd < 0 || r.sink_fd < 0 || src_fd < 0 || ld->senders < 1)
        return -1;
    int n_st = 2 * ld->senders;
    struct relay_stream *st = g_new0(struct relay_stream, n_st);
    gint64 start = g_get_monotonic_time();
    for (int i = 0; i < n_st; i++) {
        gboolean video = i % 2;
        st[i].period_us = video ? VIDEO_FRAME_US : AUDIO_FRAME_US;
        st[i].next_us = start + g_random_int_range(0, (gint32)st[i].period_us);
        st[i].per_frame = video ? ld->vpf : 1.0;
        st[i].size = MIN(video ? ld->vsize : ld->asize, 2048);
    }
    pthread_t rt, dt;
    pthread_create(&rt, NULL, relay_thread, &r);
    pthread_create(&dt, NULL, drain_thread, &r);
    uint8_t pkt[2048];
    memset(pkt, 0xab, sizeof pkt);
    gint64 end = start + (gint64)(seconds * 1e6);
    for (;;) {
        struct relay_stream *due = &st[0];
        for (int i = 1; i < n_st; i++)
            if (st[i].next_us < due->next_us)
                due = &st[i];
        if (due->next_us >= end)
            break;
        sleep_until_us(due->next_us);
        for (due->owed += due->per_frame; due->owed >= 1.0; due->owed -= 1.0)
            sendto(src_fd, pkt, (size_t)due->size, 0, (struct sockaddr *)&in_addr, sizeof in_addr);
        due->next_us += due->period_us;
    }
    g_usleep(200000);
    r.stop = 1;
    pthread_join(rt, NULL);
    pthread_join(dt, NULL);
    close(r.in_fd);
    close(r.out_fd);
    close(r.sink_fd);
    close(src_fd);
    g_free(st);
    *packets = r.packets;
    *wakeups = r.wakeups;
    return r.packets ? r.cpu_s / (double)r.packets : -1;
}

/* ------------------------------------------------------------ syscalls */

/* Counts the server's syscalls while the main loop runs for seconds, from
 * perf's raw_syscalls:sys_enter tracepoint per thread: all threads in *all,
 * the media workers' in *workers; rx and tx are the server's packets
 * received and forwarded over the same span (/metrics). Counting makes
 * every syscall dearer, so this runs after the CPU window, never in it.
 * Returns -1 (figures -1) when perf is missing or may not trace. */
static int server_syscalls(SoupSession *ss, const char *admin, double seconds, double *all,
                           double *workers, double *rx, double *tx)
{
    *all = *workers = *rx = *tx = -1;
    char *perf = g_find_program_in_path("perf");
    if (!perf)
        return -1;
    char pid[16];
    g_snprintf(pid, sizeof pid, "%d", (int)SRV.pid);
    const char *argv[] = {perf, "stat", "-x", ",", "--per-thread", "-e", "raw_syscalls:sys_enter",
                          "-p", pid,    NULL};
    GError *e = NULL;
    GSubprocess *sp = g_subprocess_newv(
        argv, G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_PIPE, &e);
    g_free(perf);
    if (!sp) {
        g_clear_error(&e);
        return -1;
    }
    run_until(NULL, 0.5); /* perf attaches to every thread */
    struct metrics m0, m1;
    read_metrics(ss, admin, &m0);
    run_until(NULL, seconds);
    read_metrics(ss, admin, &m1);
    g_subprocess_send_signal(sp, SIGINT);
    char *out = NULL;
    gboolean ok = g_subprocess_communicate_utf8(sp, NULL, NULL, NULL, &out, &e);
    g_clear_error(&e);
    g_object_unref(sp);
    double sum_all = 0, sum_workers = 0;
    int lines = 0;
    char **ls = g_strsplit(out ? out : "", "\n", -1);
    for (char **l = ls; ok && *l; l++) {
        char **f = g_strsplit(*l, ",", 5);
        if (g_strv_length(f) >= 4 && strstr(f[3], "sys_enter")) {
            char *dash = strrchr(f[0], '-');
            if (dash)
                *dash = '\0';
            double c = g_ascii_strtod(f[1], NULL); /* "<not counted>": 0 */
            sum_all += c;
            if (thread_group(f[0]) == TG_MEDIA)
                sum_workers += c;
            lines++;
        }
        g_strfreev(f);
    }
    g_strfreev(ls);
    g_free(out);
    if (!lines)
        return -1;
    *all = sum_all;
    *workers = sum_workers;
    *rx = m1.rx - m0.rx;
    *tx = m1.tx - m0.tx;
    return 0;
}

/* ------------------------------------------------------------------ runs */

struct row {
    int n;
    gboolean ok;
    int recording; /* -1: as the server flags say; 0 off, 1 on (--compare-recording) */
    double thread_pct_per_visit[TG_N];
    double switches_per_s_per_visit[TG_N];
    int recordings;
    guint64 rec_dropped;
    double cpu_pct_per_visit, rss_kib_per_visit, loss_pct, pps_fwd, mbit_in;
    double lat_p50, lat_p99, join_p50_ms, join_max_ms, cpu_s_per_pkt;
    double mean_pkt;
    long rss_idle, rss_busy, rss_after; /* KiB: before, during, 3 s after the visits */
    long rss_parts_idle[RSS_N], rss_parts_busy[RSS_N]; /* server_rss_parts */
    double dtls_shed;         /* DTLS sessions shed by the server when RSS was read (cumulative) */
    double rtx_kib_per_visit; /* retransmission history when RSS was read (< 0: not exported) */
    double
        nacks_answered; /* packets resent on receivers' NACKs in the window (< 0: not exported) */
    double idle_pct;    /* whole server, % of a core, before any visit (fixed cost) */
    double idle_thread_pct[TG_N];
    double relay_s_per_pkt; /* the plain UDP relay's CPU per packet (< 0: not measured) */
    guint64 relay_packets;
    long relay_wakeups;
    struct relay_load load;   /* the load's shape, for the relay */
    int workers;              /* media worker threads */
    double wakeups_per_s;     /* per media worker */
    double pkts_per_wakeup;   /* packets received by the workers per wake-up */
    double sys_per_pkt;       /* the server's syscalls per forwarded packet (< 0: no perf) */
    double sys_per_pkt_media; /* the media workers' */
};

static int setup_hospital(SoupSession *ss, const char *admin, int n)
{
    if (rest(ss, "POST", "/api/v1/departments", admin,
             json_pack("{s:s, s:s}", "id", "bench", "name", "Bench"), NULL) != 201)
        return -1;
    GDateTime *now = g_date_time_new_now_utc();
    GDateTime *a = g_date_time_add_hours(now, -1), *b = g_date_time_add_hours(now, 3);
    char *start = g_date_time_format_iso8601(a), *end = g_date_time_format_iso8601(b);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        char id[32], lic[32];
        g_snprintf(id, sizeof id, "d-bench-%d", i);
        g_snprintf(lic, sizeof lic, "LIC-%d", i);
        if (rest(ss, "POST", "/api/v1/doctors", admin,
                 json_pack("{s:s, s:s, s:s, s:s}", "id", id, "name", id, "dept_id", "bench",
                           "licence_no", lic),
                 NULL) != 201 ||
            rest(ss, "POST", "/api/v1/shifts", admin,
                 json_pack("{s:s, s:s, s:s, s:s, s:i}", "doctor_id", id, "dept_id", "bench",
                           "start", start, "end", end, "capacity", 1),
                 NULL) != 201)
            rc = -1;
    }
    g_free(start);
    g_free(end);
    g_date_time_unref(a);
    g_date_time_unref(b);
    g_date_time_unref(now);
    return rc;
}

static int run_n(int n, double seconds, int recording, struct row *row)
{
    memset(row, 0, sizeof *row);
    row->n = n;
    row->recording = recording;
    row->lat_p50 = row->lat_p99 = -1;
    if (server_start(recording) != 0)
        return -1;
    SoupSession *ss = soup_session_new_with_options("timeout", 10, NULL);
    char *admin = mint("admin-bench", "admin", NULL);
    int rc = -1;
    if (!admin || setup_hospital(ss, admin, n) != 0) {
        g_printerr("hospital set-up failed\n");
        goto done;
    }
    g_print("#   server pid %d port %d ready\n", (int)SRV.pid, SRV.port);
    run_until(NULL, 1.0);
    /* The fixed cost: the same server with no visit yet. */
    struct tgroups ti0, ti1;
    server_threads(&ti0);
    gint64 i0 = g_get_monotonic_time();
    run_until(NULL, IDLE_S);
    server_threads(&ti1);
    double iwall = (double)(g_get_monotonic_time() - i0) / 1e6;
    row->idle_pct = (ti1.total_s - ti0.total_s) / iwall * 100.0;
    for (int g = 0; g < TG_N; g++)
        row->idle_thread_pct[g] = (ti1.cpu_s[g] - ti0.cpu_s[g]) / iwall * 100.0;
    long rss_idle = server_rss_kib();
    server_rss_parts(row->rss_parts_idle);
    ACCEPT_US = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    for (int i = 0; i < n; i++)
        g_ptr_array_add(PEERS, peer_new(i, TRUE));
    if (!run_until(all_available, 30)) {
        g_printerr("N=%d: doctors did not become available\n", n);
        goto teardown;
    }
    g_print("#   %d doctors available\n", n);
    for (int i = 0; i < n; i++)
        g_ptr_array_add(PEERS, peer_new(i, FALSE));
    if (!run_until(all_flowing, 60)) {
        int missing = 0;
        for (guint i = 0; i < PEERS->len; i++)
            missing += ((struct peer *)g_ptr_array_index(PEERS, i))->first_frame_us == 0;
        g_printerr("N=%d: %d of %u peers never got video\n", n, missing, PEERS->len);
        goto teardown;
    }
    g_print("#   %u peers receive video\n", PEERS->len);
    /* Join times, per visit: accept -> both sides have a frame. */
    GArray *joins = g_array_new(FALSE, FALSE, sizeof(double));
    for (guint i = 0; i < PEERS->len; i++) {
        struct peer *d = g_ptr_array_index(PEERS, i);
        if (!d->doctor || !d->visit_id)
            continue;
        for (guint k = 0; k < PEERS->len; k++) {
            struct peer *pt = g_ptr_array_index(PEERS, k);
            if (pt->doctor || !pt->visit_id || strcmp(pt->visit_id, d->visit_id) != 0)
                continue;
            gint64 *acc = g_hash_table_lookup(ACCEPT_US, d->visit_id);
            double j = (double)(MAX(d->first_frame_us, pt->first_frame_us) - *acc) / 1000.0;
            g_array_append_val(joins, j);
        }
    }
    qsort(joins->data, joins->len, sizeof(double), cmp_double);
    if (joins->len) {
        row->join_p50_ms = g_array_index(joins, double, joins->len / 2);
        row->join_max_ms = g_array_index(joins, double, joins->len - 1);
    }
    g_array_unref(joins);

    run_until(NULL, 2.0); /* settle */
    struct metrics m0, m1;
    struct totals t0, t1;
    read_metrics(ss, admin, &m0);
    sum(&t0);
    double c0 = server_cpu_s();
    struct tgroups tg0, tg1;
    server_threads(&tg0);
    gint64 w0 = g_get_monotonic_time();
    run_until(NULL, seconds);
    double c1 = server_cpu_s();
    server_threads(&tg1);
    double wall = (double)(g_get_monotonic_time() - w0) / 1e6;
    sum(&t1);
    read_metrics(ss, admin, &m1);
    long rss = server_rss_kib();
    server_rss_parts(row->rss_parts_busy);
    row->dtls_shed = m1.dtls_shed;
    row->rtx_kib_per_visit = m1.rtx_bytes >= 0 ? m1.rtx_bytes / 1024.0 / n : -1;
    row->nacks_answered = m1.nacks_answered >= 0 ? m1.nacks_answered - m0.nacks_answered : -1;

    /* The threads' runtimes count ns; the process's ticks 10 ms. A thread
     * that ended inside the window takes its time with it from the sum,
     * so fall back to the ticks if the two disagree by more than two ticks
     * and a twentieth. */
    double cpu = tg1.total_s - tg0.total_s;
    double cpu_ticks = c1 - c0;
    if (cpu <= 0 || (cpu > cpu_ticks ? cpu - cpu_ticks : cpu_ticks - cpu) > 0.02 + 0.05 * cpu_ticks)
        cpu = cpu_ticks;
    row->cpu_pct_per_visit = cpu / wall * 100.0 / n;
    for (int g = 0; g < TG_N; g++) {
        row->thread_pct_per_visit[g] = (tg1.cpu_s[g] - tg0.cpu_s[g]) / wall * 100.0 / n;
        row->switches_per_s_per_visit[g] = (tg1.switches[g] - tg0.switches[g]) / wall / n;
    }
    row->rss_kib_per_visit = (double)(rss - rss_idle) / n;
    guint64 exp = t1.expected - t0.expected, got = t1.received - t0.received;
    row->loss_pct = exp ? 100.0 * (double)(exp > got ? exp - got : 0) / (double)exp : -1;
    guint64 pk = (t1.vpackets - t0.vpackets) + (t1.apackets - t0.apackets);
    row->pps_fwd = m1.tx > 0 ? (m1.tx - m0.tx) / wall : (double)pk / wall;
    row->mean_pkt = pk ? (double)((t1.vbytes - t0.vbytes) + (t1.abytes - t0.abytes)) / pk : 0;
    row->mbit_in = (double)(t1.vbytes - t0.vbytes) * 8 / wall / 1e6 / (2.0 * n);
    row->lat_p50 = m1.lat_p50;
    row->lat_p99 = m1.lat_p99;
    row->workers = tg1.threads[TG_MEDIA];
    double wk = tg1.wakeups[TG_MEDIA] - tg0.wakeups[TG_MEDIA];
    row->wakeups_per_s = row->workers ? wk / wall / row->workers : -1;
    row->pkts_per_wakeup = wk > 0 && m1.rx > 0 ? (m1.rx - m0.rx) / wk : -1;
    guint64 vpk = t1.vpackets - t0.vpackets, apk = t1.apackets - t0.apackets;
    row->load = (struct relay_load){
        .senders = 2 * n,
        .vpf = (double)vpk / wall / (2.0 * n) * VIDEO_FRAME_US / 1e6,
        .vsize = vpk ? (int)((double)(t1.vbytes - t0.vbytes) / (double)vpk + 0.5) : 1000,
        .asize = apk ? (int)((double)(t1.abytes - t0.abytes) / (double)apk + 0.5) : 100};
    double sys_all, sys_media, sys_rx, sys_tx;
    row->sys_per_pkt = row->sys_per_pkt_media = -1;
    if (server_syscalls(ss, admin, 3.0, &sys_all, &sys_media, &sys_rx, &sys_tx) == 0 &&
        sys_tx > 0) {
        row->sys_per_pkt = sys_all / sys_tx;
        row->sys_per_pkt_media = sys_media / sys_tx;
    }
    row->cpu_s_per_pkt = row->pps_fwd > 0 ? cpu / (row->pps_fwd * wall) : -1;
    row->rss_idle = rss_idle;
    row->rss_busy = rss;
    row->ok = TRUE;
    rc = 0;
teardown:
    /* The doctors end their visits, so the server tears the media down now
     * rather than after its grace period for dropped participants. */
    for (guint i = 0; i < PEERS->len; i++) {
        struct peer *p = g_ptr_array_index(PEERS, i);
        if (p->doctor && p->active)
            peer_send(p, json_pack("{s:s, s:s, s:s}", "type", "visit.end", "visit_id", p->visit_id,
                                   "reason", "completed"));
    }
    run_until(NULL, 1.0);
    for (guint i = 0; i < PEERS->len; i++)
        peer_free(g_ptr_array_index(PEERS, i));
    g_ptr_array_set_size(PEERS, 0);
    g_hash_table_unref(ACCEPT_US);
    run_until(NULL, 3.0); /* what is left now is kept memory, not visits */
    row->rss_after = server_rss_kib();
    recording_drops(&row->recordings, &row->rec_dropped);
done:
    g_free(admin);
    g_object_unref(ss);
    server_stop();
    return rc;
}

/* ------------------------------------------------------------ --party K */

struct party_row {
    int k;
    gboolean ok;
    double cpu_pct, cpu_pct_per_stream, rss_kib, loss_pct, pps_fwd, lat_p99;
    double join_ms[16], freeze_ms[16]; /* [j]: the j-th member's join, j >= 3 */
    double first_pair_ms;              /* patient + attending: accept to video both ways */
};

static struct peer *party_attending(void)
{
    for (guint i = 0; i < PEERS->len; i++) {
        struct peer *p = g_ptr_array_index(PEERS, i);
        if (p->attending)
            return p;
    }
    return NULL;
}

/* Members in the visit now and the frames they get from each other. */
static int party_members(void)
{
    int n = 0;
    for (guint i = 0; i < PEERS->len; i++)
        n += ((struct peer *)g_ptr_array_index(PEERS, i))->active;
    return n;
}

/* Video pads of p with a frame in the last second. */
static int live_vpads(struct peer *p)
{
    gint64 now = g_get_monotonic_time();
    int live = 0;
    g_mutex_lock(&p->lock);
    for (int k = 0; k < p->n_vpads; k++)
        live += p->vpad_last_us[k] && now - p->vpad_last_us[k] < 1000000;
    g_mutex_unlock(&p->lock);
    return live;
}

static int PARTY_WANT; /* party_mesh waits for this many members */

static gboolean party_mesh(void)
{
    int k = party_members();
    if (k != PARTY_WANT)
        return FALSE;
    for (guint i = 0; i < PEERS->len; i++) {
        struct peer *p = g_ptr_array_index(PEERS, i);
        if (p->failed)
            return FALSE;
        if (p->active && live_vpads(p) < k - 1)
            return FALSE;
    }
    return k > 0;
}

static void party_explain(void)
{
    for (guint i = 0; i < PEERS->len; i++) {
        struct peer *p = g_ptr_array_index(PEERS, i);
        g_printerr(
            "  %s: active %d failed %d receiving pairs %d (want %d) video pads %d, live %d\n",
            p->sub, p->active, p->failed, p->recv_pairs, p->want_pairs, p->n_vpads, live_vpads(p));
    }
}

static gboolean pair_started(void)
{
    PARTY_WANT = 2;
    return party_mesh();
}

/* The longest gap between two frames that a member already in the visit saw
 * on a pad it had before the join (the joiner's own pads, and the others'
 * new pads for the joiner, start later). */
/* Keyframe requests the members already in got on their senders since the latest
 * join began (the server's, which the joiner and the recording's next part need,
 * and any the others' own requests caused). */
static int party_keyframes_asked(void)
{
    int n = 0;
    for (guint i = 0; i < PEERS->len; i++) {
        struct peer *p = g_ptr_array_index(PEERS, i);
        if (p->n_vpads_before)
            n += g_atomic_int_get(&p->kf_asked) - p->kf_asked_before;
    }
    return n;
}

static double party_freeze_ms(double *on_lossless_ms, double *audio_gap_ms)
{
    gint64 worst = 0, lossless = 0, audio = 0;
    for (guint i = 0; i < PEERS->len; i++) {
        struct peer *p = g_ptr_array_index(PEERS, i);
        g_mutex_lock(&p->lock);
        for (int k = 0; k < p->n_vpads_before; k++) {
            worst = MAX(worst, p->vpad_gap_us[k]);
            if (!p->vpad_lost[k])
                lossless = MAX(lossless, p->vpad_gap_us[k]);
        }
        if (p->n_vpads_before)
            audio = MAX(audio, p->audio_gap_us);
        g_mutex_unlock(&p->lock);
    }
    *on_lossless_ms = (double)lossless / 1000.0;
    *audio_gap_ms = (double)audio / 1000.0;
    return (double)worst / 1000.0;
}

static void party_gaps_reset(void)
{
    for (guint i = 0; i < PEERS->len; i++) {
        struct peer *p = g_ptr_array_index(PEERS, i);
        g_mutex_lock(&p->lock);
        memset(p->vpad_gap_us, 0, sizeof p->vpad_gap_us);
        memset(p->vpad_lost, 0, sizeof p->vpad_lost);
        p->audio_gap_us = 0;
        p->kf_asked_before = g_atomic_int_get(&p->kf_asked);
        p->n_vpads_before = p->active ? p->n_vpads : 0;
        g_mutex_unlock(&p->lock);
    }
}

/* The invitee's accept to a frame from every other member. */
static double join_ms(struct peer *j, int others)
{
    gint64 t[MAX_VPADS];
    int n = 0;
    g_mutex_lock(&j->lock);
    for (int k = 0; k < j->n_vpads; k++)
        if (j->vpad_first_us[k])
            t[n++] = j->vpad_first_us[k];
    g_mutex_unlock(&j->lock);
    gint64 last = 0;
    for (int k = 0; k < n; k++)
        last = MAX(last, t[k]);
    return n >= others && j->join_start_us ? (double)(last - j->join_start_us) / 1000.0 : -1;
}

static int run_party(int k, double seconds, struct party_row *row)
{
    memset(row, 0, sizeof *row);
    row->k = k;
    row->lat_p99 = -1;
    if (server_start(-1) != 0)
        return -1;
    SoupSession *ss = soup_session_new_with_options("timeout", 10, NULL);
    char *admin = mint("admin-bench", "admin", NULL);
    int rc = -1;
    if (!admin || setup_hospital(ss, admin, k - 1) != 0) {
        g_printerr("hospital set-up failed\n");
        goto done;
    }
    g_print("#   server pid %d port %d ready\n", (int)SRV.pid, SRV.port);
    run_until(NULL, 1.0);
    long rss_idle = server_rss_kib();
    ACCEPT_US = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    for (int i = 0; i < k - 1; i++)
        g_ptr_array_add(PEERS, peer_new(i, TRUE));
    if (!run_until(all_available, 30)) {
        g_printerr("K=%d: doctors did not become available\n", k);
        goto teardown;
    }
    g_ptr_array_add(PEERS, peer_new(0, FALSE));
    if (!run_until(pair_started, 60)) {
        g_printerr("K=%d: the patient and the attending never saw each other\n", k);
        goto teardown;
    }
    struct peer *att = party_attending();
    gint64 *acc = g_hash_table_lookup(ACCEPT_US, att->visit_id);
    row->first_pair_ms = (double)(g_get_monotonic_time() - *acc) / 1000.0;
    run_until(NULL, 2.0);
    /* The others, one at a time, as the attending invites them. */
    for (int j = 3; j <= k; j++) {
        struct peer *inv = NULL;
        for (guint i = 0; i < PEERS->len && !inv; i++) {
            struct peer *p = g_ptr_array_index(PEERS, i);
            if (p->doctor && !p->visit_id)
                inv = p;
        }
        party_gaps_reset();
        PARTY_WANT = j;
        peer_send(att, json_pack("{s:s, s:s, s:s, s:s}", "type", "visit.invite", "visit_id",
                                 att->visit_id, "user_id", inv->sub, "role", "consulting"));
        if (!run_until(party_mesh, 30)) {
            g_printerr("K=%d: member %d (%s) did not join or not everyone sees everyone\n", k, j,
                       inv->sub);
            party_explain();
            goto teardown;
        }
        row->join_ms[j] = join_ms(inv, j - 1);
        run_until(NULL, 1.0); /* a freeze still under way would end in it */
        double lossless, audio_gap;
        row->freeze_ms[j] = party_freeze_ms(&lossless, &audio_gap);
        g_print("#   member %d in: first frames from all %d others %.0f ms after its accept; "
                "longest freeze on the others meanwhile %.0f ms (on streams that lost no "
                "packet: %.0f ms; longest none of them got any audio: %.0f ms); "
                "keyframes asked of them %d\n",
                j, j - 1, row->join_ms[j], row->freeze_ms[j], lossless, audio_gap,
                party_keyframes_asked());
    }
    run_until(NULL, 2.0); /* settle */
    struct metrics m0, m1;
    struct totals t0, t1;
    read_metrics(ss, admin, &m0);
    sum(&t0);
    struct tgroups tg0, tg1;
    server_threads(&tg0);
    double c0 = server_cpu_s();
    gint64 w0 = g_get_monotonic_time();
    run_until(NULL, seconds);
    double c1 = server_cpu_s();
    server_threads(&tg1);
    double wall = (double)(g_get_monotonic_time() - w0) / 1e6;
    sum(&t1);
    read_metrics(ss, admin, &m1);
    double cpu = tg1.total_s - tg0.total_s;
    if (cpu <= 0)
        cpu = c1 - c0;
    row->cpu_pct = cpu / wall * 100.0;
    row->cpu_pct_per_stream = row->cpu_pct / (k * (k - 1));
    row->rss_kib = (double)(server_rss_kib() - rss_idle);
    guint64 exp = t1.expected - t0.expected, got = t1.received - t0.received;
    row->loss_pct = exp ? 100.0 * (double)(exp > got ? exp - got : 0) / (double)exp : -1;
    guint64 pk = (t1.vpackets - t0.vpackets) + (t1.apackets - t0.apackets);
    row->pps_fwd = m1.tx > 0 ? (m1.tx - m0.tx) / wall : (double)pk / wall;
    row->lat_p99 = m1.lat_p99;
    row->ok = TRUE;
    rc = 0;
teardown:
    for (guint i = 0; i < PEERS->len; i++) {
        struct peer *p = g_ptr_array_index(PEERS, i);
        if (p->attending && p->active)
            peer_send(p, json_pack("{s:s, s:s, s:s}", "type", "visit.end", "visit_id", p->visit_id,
                                   "reason", "completed"));
    }
    run_until(NULL, 1.0);
    for (guint i = 0; i < PEERS->len; i++)
        peer_free(g_ptr_array_index(PEERS, i));
    g_ptr_array_set_size(PEERS, 0);
    g_hash_table_unref(ACCEPT_US);
done:
    g_free(admin);
    g_object_unref(ss);
    server_stop();
    return rc;
}

static void print_party(GArray *rows)
{
    g_print("\n%-3s %9s %11s %10s %7s %9s %9s %11s %13s\n", "K", "cpu%", "cpu%/stream", "KiB/visit",
            "loss%", "fwd pkt/s", "lat p99", "K-th join", "K-th freeze");
    for (guint i = 0; i < rows->len; i++) {
        struct party_row *r = &g_array_index(rows, struct party_row, i);
        if (!r->ok) {
            g_print("%-3d failed\n", r->k);
            continue;
        }
        char lat[32], join[32], freeze[32];
        g_snprintf(lat, sizeof lat, r->lat_p99 >= 0 ? "%.0f us" : "n/a", r->lat_p99);
        g_snprintf(join, sizeof join, r->k >= 3 ? "%.0f ms" : "-", r->join_ms[r->k]);
        g_snprintf(freeze, sizeof freeze, r->k >= 3 ? "%.0f ms" : "-", r->freeze_ms[r->k]);
        g_print("%-3d %9.2f %11.3f %10.0f %7.2f %9.0f %9s %11s %13s\n", r->k, r->cpu_pct,
                r->cpu_pct_per_stream, r->rss_kib, r->loss_pct, r->pps_fwd, lat, join, freeze);
    }
    g_print("# one visit of K; cpu%% = the server's, of one core, with all K in; a stream = one "
            "member's audio and video to one other (K(K-1)); K-th join = its accept to a frame "
            "from every other member; K-th freeze = the longest gap between frames the others "
            "saw meanwhile\n");
}

/* ---------------------------------------------------------- the summary */

struct spread {
    int count;
    double median, min, max;
};

typedef double (*row_get)(const struct row *r);

/* Median and range of v's doubles; frees v. */
static struct spread spread_take(GArray *v)
{
    struct spread sp = {.count = (int)v->len};
    if (v->len) {
        qsort(v->data, v->len, sizeof(double), cmp_double);
        double *d = (double *)v->data;
        sp.min = d[0];
        sp.max = d[v->len - 1];
        sp.median = v->len % 2 ? d[v->len / 2] : (d[v->len / 2 - 1] + d[v->len / 2]) / 2;
    }
    g_array_unref(v);
    return sp;
}

/* The median, min and max of the figure `get` over the ok rows of N with
 * recording `rec`; returns how many rows there were. */
static struct spread spread_of(GArray *rows, int n, int rec, row_get get)
{
    GArray *v = g_array_new(FALSE, FALSE, sizeof(double));
    for (guint i = 0; i < rows->len; i++) {
        const struct row *r = &g_array_index(rows, struct row, i);
        if (r->ok && r->n == n && r->recording == rec) {
            double x = get(r);
            g_array_append_val(v, x);
        }
    }
    return spread_take(v);
}

static double get_cpu(const struct row *r)
{
    return r->cpu_pct_per_visit;
}
static double get_media(const struct row *r)
{
    return r->thread_pct_per_visit[TG_MEDIA];
}
static double get_rec(const struct row *r)
{
    return r->thread_pct_per_visit[TG_REC];
}
static double get_other(const struct row *r)
{
    return r->thread_pct_per_visit[TG_OTHER];
}
static double get_idle(const struct row *r)
{
    return r->idle_pct;
}
static double get_above_idle(const struct row *r)
{
    return r->cpu_pct_per_visit - r->idle_pct / r->n;
}
static double get_rss(const struct row *r)
{
    return r->rss_kib_per_visit;
}
static double get_loss(const struct row *r)
{
    return r->loss_pct;
}
static double get_drops(const struct row *r)
{
    return (double)r->rec_dropped;
}

/* Each on run minus the off run of its pair (the two runs of one repeat,
 * back to back), as a spread: the drift of the machine's load between
 * pairs cancels. Figure `get`. */
static struct spread paired_of(GArray *rows, int n, row_get get)
{
    GArray *v = g_array_new(FALSE, FALSE, sizeof(double));
    const struct row *first = NULL;
    for (guint i = 0; i < rows->len; i++) {
        const struct row *r = &g_array_index(rows, struct row, i);
        if (r->n != n || r->recording < 0)
            continue;
        if (!first) {
            first = r;
            continue;
        }
        if (first->ok && r->ok && first->recording != r->recording) {
            const struct row *on = r->recording ? r : first, *off = r->recording ? first : r;
            double d = get(on) - get(off);
            g_array_append_val(v, d);
        }
        first = NULL;
    }
    return spread_take(v);
}

static void print_comparison(GArray *rows, int repeat)
{
    g_print("\n# what recording adds, per visit (issue 4: under 30%% of the CPU without it, "
            "no forwarding loss)%s\n",
            repeat > 1 ? "; medians over the runs, ratio = of the medians" : "");
    g_print("%-4s %9s %9s %9s %7s %12s %7s %12s %9s %9s %9s\n", "N", "cpu off", "cpu on", "added",
            "ratio", "rec threads", "rec/off", "KiB added", "loss off", "loss on", "rec drops");
    GArray *ns = g_array_new(FALSE, FALSE, sizeof(int));
    for (guint i = 0; i < rows->len; i++) {
        int n = g_array_index(rows, struct row, i).n;
        gboolean seen = FALSE;
        for (guint j = 0; j < ns->len; j++)
            seen = seen || g_array_index(ns, int, j) == n;
        if (!seen)
            g_array_append_val(ns, n);
    }
    for (guint i = 0; i < ns->len; i++) {
        int n = g_array_index(ns, int, i);
        struct spread off = spread_of(rows, n, 0, get_cpu), on = spread_of(rows, n, 1, get_cpu);
        if (!off.count || !on.count) {
            g_print("%-4d failed\n", n);
            continue;
        }
        double added = on.median - off.median;
        struct spread loss_off = spread_of(rows, n, 0, get_loss);
        struct spread loss_on = spread_of(rows, n, 1, get_loss);
        struct spread drops = spread_of(rows, n, 1, get_drops);
        double rec = spread_of(rows, n, 1, get_rec).median;
        g_print("%-4d %8.3f%% %8.3f%% %8.3f%% %6.0f%% %11.3f%% %6.0f%% %12.0f %8.2f%% %8.2f%% "
                "%9.0f\n",
                n, off.median, on.median, added, off.median > 0 ? 100.0 * added / off.median : -1,
                rec, off.median > 0 ? 100.0 * rec / off.median : -1,
                spread_of(rows, n, 1, get_rss).median - spread_of(rows, n, 0, get_rss).median,
                loss_off.max, loss_on.max, drops.max);
    }
    g_print("# cpu = server CPU %% of one core per visit (whole process); rec threads = the "
            "recorder threads' share of it, measured directly (less noisy than the "
            "difference of two runs), and rec/off = that as a share of cpu off; KiB added = RSS "
            "per visit, on minus off; loss and rec drops: the worst run\n");

    g_print("\n# spread and where the added CPU goes, %% of a core per visit: median [min-max] "
            "over %d run(s) each\n",
            repeat);
    g_print("%-4s %-22s %-22s %-20s %-20s %8s %7s %-20s %-18s %-18s\n", "N", "cpu off", "cpu on",
            "workers off", "workers on", "wk added", "(ratio)", "rec threads", "idle off (server)",
            "idle on (server)");
    for (guint i = 0; i < ns->len; i++) {
        int n = g_array_index(ns, int, i);
        struct spread s[10] = {
            spread_of(rows, n, 0, get_cpu),   spread_of(rows, n, 1, get_cpu),
            spread_of(rows, n, 0, get_media), spread_of(rows, n, 1, get_media),
            spread_of(rows, n, 1, get_rec),   spread_of(rows, n, 0, get_idle),
            spread_of(rows, n, 1, get_idle),  spread_of(rows, n, 0, get_other),
            spread_of(rows, n, 1, get_other), spread_of(rows, n, 0, get_above_idle)};
        if (!s[0].count || !s[1].count)
            continue;
        char b[7][40]; /* the first seven of s as "median [min-max]" */
        for (int k = 0; k < 7; k++)
            g_snprintf(b[k], sizeof b[k], "%.3f [%.3f-%.3f]", s[k].median, s[k].min, s[k].max);
        double wk = s[3].median - s[2].median;
        g_print("%-4d %-22s %-22s %-20s %-20s %7.3f%% %6.0f%% %-20s %-18s %-18s\n", n, b[0], b[1],
                b[2], b[3], wk, s[0].median > 0 ? 100.0 * wk / s[0].median : -1, b[4], b[5], b[6]);
        struct spread above_on = spread_of(rows, n, 1, get_above_idle);
        g_print("     (other threads off/on %.3f/%.3f; above the idle server, off %.3f%% on "
                "%.3f%%: added %.3f%% = %.0f%%; recorder threads + workers' added = %.3f%% = "
                "%.0f%% of cpu off)\n",
                s[7].median, s[8].median, s[9].median, above_on.median,
                above_on.median - s[9].median,
                s[9].median > 0 ? 100.0 * (above_on.median - s[9].median) / s[9].median : -1,
                s[4].median + wk, s[0].median > 0 ? 100.0 * (s[4].median + wk) / s[0].median : -1);
        struct spread pc = paired_of(rows, n, get_cpu), pw = paired_of(rows, n, get_media);
        if (pc.count)
            g_print("     (paired, each on run minus the off run next to it: cpu %.3f%% "
                    "[%.3f-%.3f] = %.0f%% of cpu off, workers %.3f%% [%.3f-%.3f])\n",
                    pc.median, pc.min, pc.max,
                    s[0].median > 0 ? 100.0 * pc.median / s[0].median : -1, pw.median, pw.min,
                    pw.max);
    }
    g_print("# workers = the media worker threads (forwarding, and with recording on the copy of "
            "each packet into the recorder's ring): wk added = workers on - off, (ratio) = of "
            "cpu off; idle = the whole server with no visit yet, %% of a core (not per visit)\n");
    g_array_unref(ns);
}

int main(int argc, char **argv)
{
    char *visits = g_strdup("1,4,8"), *party = NULL;
    int seconds = 10, repeat = 1;
    gboolean compare = FALSE;
    BIN = g_strdup(g_getenv("TELEMED_BIN"));
    GOptionEntry entries[] = {
        {"server", 0, 0, G_OPTION_ARG_FILENAME, &BIN, "telemed-server binary (or TELEMED_BIN)",
         "PATH"},
        {"visits", 0, 0, G_OPTION_ARG_STRING, &visits, "comma-separated visit counts", "N,.."},
        {"seconds", 0, 0, G_OPTION_ARG_INT, &seconds, "measuring window per N", "S"},
        {"width", 0, 0, G_OPTION_ARG_INT, &W, "video width", "PX"},
        {"height", 0, 0, G_OPTION_ARG_INT, &H, "video height", "PX"},
        {"bitrate", 0, 0, G_OPTION_ARG_INT, &BITRATE, "video bitrate (bit/s)", "BPS"},
        {"server-arg", 0, 0, G_OPTION_ARG_STRING_ARRAY, &SERVER_ARGS,
         "extra server flag, repeatable (e.g. --server-arg=--no-recording)", "FLAG"},
        {"compare-recording", 0, 0, G_OPTION_ARG_NONE, &compare,
         "run each N with recording off and on (a fresh server each time) and print what "
         "recording adds per visit: CPU, its ratio to the CPU without it, memory, loss, and "
         "where the added CPU goes (recorder threads, media workers)",
         NULL},
        {"repeat", 0, 0, G_OPTION_ARG_INT, &repeat,
         "run each N K times (with --compare-recording K off and K on, in the order off on "
         "on off off on ...); the summary gives medians, min-max and the ratio of the medians "
         "(default 1)",
         "K"},
        {"party", 0, 0, G_OPTION_ARG_STRING, &party,
         "instead of N 1:1 visits, one visit of K members per K (2, 3, 4, 6): K - 2 invited "
         "one by one; per join and per forwarded stream figures",
         "K,.."},
        {"party-slots", 0, 0, G_OPTION_ARG_INT, &PARTY_SLOTS,
         "with --party: every member negotiates this many receiving audio+video pairs "
         "(its sendrecv pair counts) in its first offer, so a join renegotiates no one "
         "already in while the visit stays within them",
         "N"},
        {"tick-ms", 0, 0, G_OPTION_ARG_INT, &TICK_MS,
         "send on a shared tick of this many ms, every peer's streams starting together at "
         "connect (the load before issue 20: 5), instead of each stream on its own phase",
         "MS"},
        {"idle-seconds", 0, 0, G_OPTION_ARG_DOUBLE, &IDLE_S,
         "before the visits, measure the server's CPU with no visit for this long (default 3)",
         "S"},
        {NULL}};
    GOptionContext *ctx = g_option_context_new("- media load generator for telemed-server");
    g_option_context_add_main_entries(ctx, entries, NULL);
    GError *err = NULL;
    if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
        g_printerr("%s\n", err->message);
        return 2;
    }
    g_option_context_free(ctx);
    if (repeat < 1 || repeat > 20 || IDLE_S < 0.5 || IDLE_S > 60 || TICK_MS < 0 || TICK_MS > 100) {
        g_printerr("--repeat takes 1..20, --idle-seconds 0.5..60, --tick-ms 0..100\n");
        return 2;
    }
    for (char **a = SERVER_ARGS; compare && a && *a; a++) {
        if (strcmp(*a, "--no-recording") == 0) {
            g_printerr("--compare-recording sets --no-recording itself\n");
            return 2;
        }
    }
    if (!BIN || !g_file_test(BIN, G_FILE_TEST_IS_EXECUTABLE)) {
        char *guess = g_build_filename(g_path_get_dirname(argv[0]), "telemed-server", NULL);
        g_free(BIN);
        BIN = guess;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    gst_init(NULL, NULL);
    if (load_clip(W, H, BITRATE) != 0)
        return 1;
    WS_SESSION = soup_session_new_with_options("timeout", 15, "max-conns", 4096,
                                               "max-conns-per-host", 4096, NULL);
    LOOP = g_main_loop_new(NULL, FALSE);
    PEERS = g_ptr_array_new(); /* one for all runs: the pacer walks it */
    pacer_start();
    if (party) {
        char **ks = g_strsplit(party, ",", -1);
        GArray *prow = g_array_new(FALSE, TRUE, sizeof(struct party_row));
        int failed = 0;
        for (char **s = ks; *s; s++) {
            int k = atoi(*s);
            if (k < 2 || k > 8) {
                g_printerr("--party takes 2..8 members\n");
                return 2;
            }
            for (int r = 0; r < repeat; r++) {
                struct party_row row;
                g_print("# party of K=%d, run %d of %d ...\n", k, r + 1, repeat);
                failed += run_party(k, seconds, &row) != 0;
                g_array_append_val(prow, row);
            }
        }
        print_party(prow);
        g_strfreev(ks);
        g_array_unref(prow);
        return failed ? 1 : 0;
    }

    char **ns = g_strsplit(visits, ",", -1);
    GArray *rows = g_array_new(FALSE, TRUE, sizeof(struct row));
    int failures = 0;
    for (char **s = ns; *s; s++) {
        int n = atoi(*s);
        if (n <= 0)
            continue;
        for (int k = 0; k < repeat; k++) {
            /* off on, on off, off on, ...: each side gets the early and the
             * late slot of a pair equally often. */
            int order[2] = {k % 2 ? 1 : 0, k % 2 ? 0 : 1};
            for (int j = 0; j < (compare ? 2 : 1); j++) {
                int pass = compare ? order[j] : -1;
                struct row r;
                g_print("# N=%d visits%s, run %d of %d ...\n", n,
                        pass < 0 ? ""
                        : pass   ? ", recording on"
                                 : ", recording off",
                        k + 1, repeat);
                if (run_n(n, seconds, pass, &r) != 0)
                    failures++;
                g_array_append_val(rows, r);
            }
        }
    }
    /* The relay baseline once per N (it costs 5 s a row): its CPU per
     * packet hardly depends on the small differences in rate between runs. */
    for (guint i = 0; i < rows->len; i++) {
        struct row *r = &g_array_index(rows, struct row, i);
        r->relay_s_per_pkt = -1;
        if (!r->ok)
            continue;
        for (guint j = 0; j < i; j++) {
            struct row *q = &g_array_index(rows, struct row, j);
            if (q->ok && q->n == r->n && q->relay_s_per_pkt > 0) {
                r->relay_s_per_pkt = q->relay_s_per_pkt;
                r->relay_packets = q->relay_packets;
                r->relay_wakeups = q->relay_wakeups;
                break;
            }
        }
        if (r->relay_s_per_pkt <= 0)
            r->relay_s_per_pkt =
                relay_baseline(&r->load, 5.0, &r->relay_packets, &r->relay_wakeups);
    }
    g_print("\n%-4s %4s %10s %10s %7s %9s %8s %9s %9s %9s %9s %11s\n", "N", "rec", "cpu%/visit",
            "KiB/visit", "loss%", "fwd pkt/s", "Mbit/s", "lat p50", "lat p99", "join p50",
            "join max", "relay ratio");
    for (guint i = 0; i < rows->len; i++) {
        struct row *r = &g_array_index(rows, struct row, i);
        const char *rec = r->recording < 0 ? "-" : r->recording ? "on" : "off";
        if (!r->ok) {
            g_print("%-4d %4s failed\n", r->n, rec);
            continue;
        }
        double relay = r->relay_s_per_pkt;
        char p50[32], p99[32];
        if (r->lat_p50 >= 0) {
            g_snprintf(p50, sizeof p50, "%.0f us", r->lat_p50);
            g_snprintf(p99, sizeof p99, "%.0f us", r->lat_p99);
        } else {
            g_strlcpy(p50, "n/a", sizeof p50);
            g_strlcpy(p99, "n/a", sizeof p99);
        }
        g_print("%-4d %4s %10.2f %10.0f %7.2f %9.0f %8.2f %9s %9s %7.0f ms %7.0f ms %10.1fx\n",
                r->n, rec, r->cpu_pct_per_visit, r->rss_kib_per_visit, r->loss_pct, r->pps_fwd,
                r->mbit_in, p50, p99, r->join_p50_ms, r->join_max_ms,
                relay > 0 ? r->cpu_s_per_pkt / relay : -1);
        g_print("     (server %.2f us CPU per forwarded packet; plain UDP relay %.2f us at %.0f "
                "pkt/s of %.0f B, %" G_GUINT64_FORMAT " relayed; server RSS idle %ld KiB, "
                "busy %ld KiB, 3 s after the visits ended %ld KiB)\n",
                r->cpu_s_per_pkt * 1e6, relay * 1e6, r->pps_fwd, r->mean_pkt, r->relay_packets,
                r->rss_idle, r->rss_busy, r->rss_after);
        g_print("     (per visit by thread, %% of a core / context switches per s: %s %.3f / %.0f, "
                "%s %.3f / %.0f, %s %.3f / %.0f; %d recordings finished, %" G_GUINT64_FORMAT
                " packets dropped by recorders)\n",
                TG_NAMES[TG_MEDIA], r->thread_pct_per_visit[TG_MEDIA],
                r->switches_per_s_per_visit[TG_MEDIA], TG_NAMES[TG_REC],
                r->thread_pct_per_visit[TG_REC], r->switches_per_s_per_visit[TG_REC],
                TG_NAMES[TG_OTHER], r->thread_pct_per_visit[TG_OTHER],
                r->switches_per_s_per_visit[TG_OTHER], r->recordings, r->rec_dropped);
        g_print("     (per PeerConnection %.3f %% of a core; media workers: %d, each woken "
                "%.0f times a second, %.2f packets received per wake-up; syscalls per forwarded "
                "packet %.2f whole server, %.2f media workers; relay: %.2f packets per wake-up, "
                "load: %d senders, %.2f video packets of %d B per frame, audio %d B; DTLS "
                "sessions shed when RSS was read: %.0f)\n",
                r->cpu_pct_per_visit / 2, r->workers, r->wakeups_per_s, r->pkts_per_wakeup,
                r->sys_per_pkt, r->sys_per_pkt_media,
                r->relay_wakeups > 0 ? (double)r->relay_packets / (double)r->relay_wakeups : -1,
                r->load.senders, r->load.vpf, r->load.vsize, r->load.asize, r->dtls_shed);
        g_print("     (RSS added per visit by mapping:");
        for (int k = 0; k < RSS_N; k++)
            g_print("%s %s %.0f KiB", k ? "," : "", RSS_NAMES[k],
                    (double)(r->rss_parts_busy[k] - r->rss_parts_idle[k]) / r->n);
        if (r->rtx_kib_per_visit >= 0)
            g_print("; of it retransmission history %.0f KiB, %.0f packets resent on NACKs in "
                    "the window",
                    r->rtx_kib_per_visit, r->nacks_answered);
        g_print(")\n");
        g_print("     (server with no visit, before them: %.3f %% of a core (%s %.3f, %s %.3f, "
                "%s %.3f); busy minus that, per visit: %.3f %%)\n",
                r->idle_pct, TG_NAMES[TG_MEDIA], r->idle_thread_pct[TG_MEDIA], TG_NAMES[TG_REC],
                r->idle_thread_pct[TG_REC], TG_NAMES[TG_OTHER], r->idle_thread_pct[TG_OTHER],
                r->cpu_pct_per_visit - r->idle_pct / r->n);
    }
    if (compare)
        print_comparison(rows, repeat);
    g_print("# Mbit/s = video each sender got through per direction; lat = server-added "
            "forwarding latency (n/a: /metrics lacks telemed_media_forward_latency_us)\n");
    g_strfreev(ns);
    g_array_unref(rows);
    return failures ? 1 : 0;
}

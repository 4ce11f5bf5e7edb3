/*
 * review.c - the review rendition scheduler (include/telemed/review.h): takes
 * queued renditions from the store, at most review_render_max at once, runs
 * each in a render child (review_render.c) and puts its outcome on record.
 *
 * Runs on the control loop. A child gets its job on stdin (the key with it,
 * never on its command line) and answers one JSON line on stdout; GIO's
 * GSubprocess watches it, so the loop never waits for a render. Each child
 * lowers itself to nice 19 and SCHED_IDLE before exec: it runs on the time
 * that visits in progress leave over.
 *
 * A minute's sweep also queues visits of the last hour that the recording
 * callback could not (a recording that finished before its visit's end was
 * in the store); the start queues every visit still without one.
 *
 * A failed render is tried again, review_attempts times in all, after
 * review_retry_s and then four times as long each time: a recording on a
 * storage that was briefly away renders later, a damaged one stops failing
 * after a few tries. The schedule lives in the rows (tm_rendition_retry), a
 * timer only wakes the loop when the next retry is due.
 */
#include "telemed/review.h"
#include "telemed/common.h"
#include "telemed/log.h"

#include <gio/gio.h>
#include <sched.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <signal.h>

#define SWEEP_S 60
/* The sweep looks at visits ended this recently: it only catches a visit
 * whose last recording finished before its end reached the store. */
#define SWEEP_LOOKBACK_MS (3600 * 1000)
/* Enough for faces and gestures in a tile; a review copy, not evidence. */
#define REVIEW_FPS 15

typedef struct render {
    tm_review *rv;
    char id[TM_RENDITION_ID_LEN];
    char visit_id[64];
    GSubprocess *child;
    GCancellable *cancel;
} render;

struct tm_review {
    const tm_config *cfg;
    tm_store *store;
    char *exe;
    GMainContext *ctx;
    GPtrArray *running; /* render *, owned */
    uint8_t key[32];
    bool has_key, encrypt;
    guint sweep;
    guint kick;
    guint retry;       /* one-shot: the next retry is due */
    gchar **child_env; /* the server's, without TELEMED_* (keys and secrets) */
    tm_review_stats stats;
};

static void start_next(tm_review *rv);
static void retry_failed(tm_review *rv);

/* The rendition's file beside the first part: <visit>.review.webm(.enc). */
static char *output_path(const char *first_part, bool encrypted)
{
    char *dir = g_path_get_dirname(first_part);
    char *base = g_path_get_basename(first_part);
    char *dot = strchr(base, '.');
    if (dot)
        *dot = 0;
    char *name = g_strdup_printf("%s.review.webm%s", base, encrypted ? ".enc" : "");
    char *path = g_build_filename(dir, name, NULL);
    g_free(name);
    g_free(base);
    g_free(dir);
    return path;
}

/* The child's job: the parts, with their row times as offsets for a
 * recording whose parts do not say when their first packet came (the child
 * places parts by that when they do). */
static char *job_text(tm_review *rv, json_t *sources, const char *out, bool *ok)
{
    json_t *parts = json_array();
    int64_t t0 = json_integer_value(json_object_get(json_array_get(sources, 0), "started_at_ms"));
    size_t i;
    json_t *src;
    *ok = true;
    json_array_foreach(sources, i, src)
    {
        bool enc = json_is_true(json_object_get(src, "encrypted"));
        *ok = *ok && (!enc || rv->has_key);
        int64_t at = json_integer_value(json_object_get(src, "started_at_ms"));
        json_array_append_new(parts, json_pack("{s:O, s:b, s:I}", "path",
                                               json_object_get(src, "path"), "encrypted", enc,
                                               "offset_ms", (json_int_t)(at > t0 ? at - t0 : 0)));
    }
    char hex[65];
    for (int k = 0; k < 32; k++)
        snprintf(hex + 2 * k, 3, "%02x", rv->key[k]);
    json_t *job =
        json_pack("{s:s, s:o, s:s?, s:b, s:i, s:i, s:i, s:i, s:i}", "out", out, "parts", parts,
                  "key", rv->has_key ? hex : NULL, "encrypt", rv->has_key && rv->encrypt, "width",
                  rv->cfg->review_width, "height", rv->cfg->review_height, "fps", REVIEW_FPS,
                  "video_kbps", rv->cfg->review_video_kbps, "audio_kbps", 48);
    char *text = json_dumps(job, JSON_COMPACT);
    json_decref(job);
    memset(hex, 0, sizeof hex);
    return text;
}

/* Runs in the child between fork and exec: only async-signal-safe calls. */
static void lower_priority(gpointer user)
{
    struct sched_param sp = {0};
    sched_setscheduler(0, SCHED_IDLE, &sp);
    setpriority(PRIO_PROCESS, 0, 19);
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* no orphan render when the server dies */
}

static void render_free(render *r)
{
    if (r->cancel)
        g_cancellable_cancel(r->cancel);
    g_clear_object(&r->cancel);
    g_clear_object(&r->child);
    g_free(r);
}

static void finish(render *r, json_t *res, const char *fallback)
{
    tm_review *rv = r->rv;
    int64_t now = tm_now_ms();
    int64_t cpu = json_integer_value(json_object_get(res, "cpu_ms"));
    int rc;
    if (json_is_true(json_object_get(res, "ok"))) {
        int64_t size = json_integer_value(json_object_get(res, "size_bytes"));
        int64_t dur = json_integer_value(json_object_get(res, "duration_ms"));
        rc = tm_rendition_finish(rv->store, r->id, size, dur,
                                 json_string_value(json_object_get(res, "sha256")),
                                 json_string_value(json_object_get(res, "plain_sha256")), cpu, now);
        rv->stats.done++;
        tm_info("review.complete",
                "visit=%s rendition=%s bytes=%lld duration_ms=%lld cpu_ms=%lld wall_ms=%lld "
                "nice=%lld sched=%s labelled=%d",
                r->visit_id, r->id, (long long)size, (long long)dur, (long long)cpu,
                (long long)json_integer_value(json_object_get(res, "wall_ms")),
                (long long)json_integer_value(json_object_get(res, "nice")),
                json_is_true(json_object_get(res, "sched_idle")) ? "idle" : "other",
                json_is_true(json_object_get(res, "labelled")));
    } else {
        const char *why = json_string_value(json_object_get(res, "error"));
        rc = tm_rendition_fail(rv->store, r->id, why ? why : fallback, cpu, now);
        rv->stats.failed++;
        tm_warn("review.failed", "visit=%s rendition=%s", r->visit_id, r->id);
    }
    if (rc < 0)
        tm_error("review.store_failed", "rendition=%s err=%s", r->id, tm_strerror(rc));
    g_ptr_array_remove(rv->running, r);
    start_next(rv);
    retry_failed(rv);
}

static void on_child_done(GObject *obj, GAsyncResult *res, gpointer user)
{
    render *r = user;
    GError *e = NULL;
    char *out = NULL;
    gboolean ok = g_subprocess_communicate_utf8_finish(G_SUBPROCESS(obj), res, &out, NULL, &e);
    if (!ok && g_error_matches(e, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
        g_error_free(e);
        return; /* tm_review_free: r is gone */
    }
    if (!ok)
        g_subprocess_force_exit(r->child); /* its pipes broke: it is of no more use */
    json_t *line = out ? json_loads(out, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
    char fallback[96];
    int status = 0;
    if (ok && g_subprocess_get_if_signaled(r->child))
        snprintf(fallback, sizeof fallback, "the render process died (signal %d)",
                 g_subprocess_get_term_sig(r->child));
    else if (ok && (status = g_subprocess_get_exit_status(r->child)) != 0 && !line)
        snprintf(fallback, sizeof fallback, "the render process failed (exit %d)", status);
    else
        snprintf(fallback, sizeof fallback, "the render process said nothing");
    if (line && !json_is_true(json_object_get(line, "ok")) && !json_object_get(line, "error"))
        json_object_set_new(line, "error", json_string(fallback));
    if (!line)
        line = json_pack("{s:b, s:s}", "ok", 0, "error", fallback);
    finish(r, line, fallback);
    json_decref(line);
    g_free(out);
    g_clear_error(&e);
}

/* Starts the render of one queued row: 1 when it runs, 0 when it could
 * not (the row is failed with why, the next may go), a TM_E* code when not
 * even that could be written (the store is failing: stop for now). */
static int start_one(tm_review *rv, const char *id, const char *visit_id)
{
    int64_t now = tm_now_ms();
    json_t *sources = tm_rendition_sources(rv->store, visit_id);
    const char *why = NULL;
    char *path = NULL, *job = NULL;
    int rc = 1;
    if (!sources || !json_array_size(sources)) {
        why = "no finished recording to render";
        goto fail;
    }
    bool have_keys;
    path = output_path(json_string_value(json_object_get(json_array_get(sources, 0), "path")),
                       rv->has_key && rv->encrypt);
    job = job_text(rv, sources, path, &have_keys);
    if (!have_keys) {
        why = "the recording is encrypted and the recording key is not configured";
        goto fail;
    }
    if (tm_rendition_begin(rv->store, id, path, rv->has_key && rv->encrypt,
                           (int)json_array_size(sources), now) < 0) {
        why = "cannot mark the rendition started";
        goto fail;
    }
    GError *e = NULL;
    GSubprocessLauncher *l =
        g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE);
    g_subprocess_launcher_set_child_setup(l, lower_priority, NULL, NULL);
    g_subprocess_launcher_set_environ(l, rv->child_env);
    GSubprocess *child = g_subprocess_launcher_spawn(l, &e, rv->exe, "render-review", NULL);
    g_object_unref(l);
    if (!child) {
        tm_error("review.spawn_failed", "rendition=%s err=%s", id, e ? e->message : "?");
        g_clear_error(&e);
        why = "cannot start the render process";
        goto fail;
    }
    render *r = g_new0(render, 1);
    r->rv = rv;
    g_strlcpy(r->id, id, sizeof r->id);
    g_strlcpy(r->visit_id, visit_id, sizeof r->visit_id);
    r->child = child;
    r->cancel = g_cancellable_new();
    g_ptr_array_add(rv->running, r);
    if ((int)rv->running->len > rv->stats.running_peak)
        rv->stats.running_peak = (int)rv->running->len;
    tm_info("review.started", "visit=%s rendition=%s parts=%zu running=%u", visit_id, id,
            json_array_size(sources), rv->running->len);
    g_subprocess_communicate_utf8_async(child, job, r->cancel, on_child_done, r);
    goto done;
fail:
    rc = tm_rendition_fail(rv->store, id, why, 0, now);
    rv->stats.failed++;
    tm_warn("review.failed", "visit=%s rendition=%s", visit_id, id);
done:
    if (job) {
        memset(job, 0, strlen(job)); /* it holds the key */
        free(job);
    }
    g_free(path);
    json_decref(sources);
    return rc;
}

/* Fills the free render slots from the queue, oldest first. */
static void start_next(tm_review *rv)
{
    char id[TM_RENDITION_ID_LEN], visit[64];
    while ((int)rv->running->len < rv->cfg->review_render_max &&
           tm_rendition_next(rv->store, id, visit) == 0) {
        int rc = start_one(rv, id, visit);
        if (rc < 0) {
            tm_error("review.store_failed", "rendition=%s err=%s", id, tm_strerror(rc));
            break; /* the row is still queued: the next sweep tries again */
        }
    }
}

static gboolean on_retry_due(gpointer user)
{
    tm_review *rv = user;
    rv->retry = 0;
    retry_failed(rv);
    return G_SOURCE_REMOVE;
}

/* Queues the retries that are due and wakes the loop for the next one. */
static void retry_failed(tm_review *rv)
{
    int n = 0;
    int64_t now = tm_now_ms(), next = 0;
    int rc = tm_rendition_retry(rv->store, rv->cfg->review_attempts,
                                (int64_t)rv->cfg->review_retry_s * 1000, now, &n, &next);
    if (rc < 0) {
        tm_error("review.store_failed", "retry err=%s", tm_strerror(rc));
        return; /* the minute's sweep tries again */
    }
    if (n) {
        tm_info("review.retry", "renditions=%d", n);
        start_next(rv);
    }
    GSource *s;
    if (rv->retry && (s = g_main_context_find_source_by_id(rv->ctx, rv->retry)))
        g_source_destroy(s);
    rv->retry = 0;
    if (next) {
        s = g_timeout_source_new((guint)(next - now));
        g_source_set_callback(s, on_retry_due, rv, NULL);
        rv->retry = g_source_attach(s, rv->ctx);
        g_source_unref(s);
    }
}

static gboolean on_kick(gpointer user)
{
    tm_review *rv = user;
    rv->kick = 0;
    start_next(rv);
    retry_failed(rv);
    return G_SOURCE_REMOVE;
}

static gboolean on_sweep(gpointer user)
{
    tm_review *rv = user;
    int n = 0;
    int64_t now = tm_now_ms();
    if (tm_rendition_requeue(rv->store, NULL, now - SWEEP_LOOKBACK_MS, now, &n) == 0 && n)
        tm_info("review.queued", "renditions=%d", n);
    start_next(rv);
    retry_failed(rv);
    return G_SOURCE_CONTINUE;
}

tm_review *tm_review_new(const tm_config *cfg, tm_store *store, const char *exe, GMainContext *ctx)
{
    if (cfg->review_render_max < 1)
        return NULL;
    tm_review *rv = g_new0(tm_review, 1);
    rv->cfg = cfg;
    rv->store = store;
    rv->exe = g_strdup(exe);
    rv->ctx = ctx;
    rv->running = g_ptr_array_new_with_free_func((GDestroyNotify)render_free);
    /* A decoder fed a hostile file runs in the child: it gets its job on
     * stdin and nothing of the server's own secrets. */
    rv->child_env = g_get_environ();
    gchar **names = g_listenv();
    for (size_t i = 0; names[i]; i++)
        if (g_str_has_prefix(names[i], "TELEMED_"))
            rv->child_env = g_environ_unsetenv(rv->child_env, names[i]);
    g_strfreev(names);
    int n = 0;
    if (tm_rendition_requeue(store, NULL, 0, tm_now_ms(), &n) == 0 && n)
        tm_info("review.requeued", "renditions=%d", n);
    GSource *s = g_timeout_source_new_seconds(SWEEP_S);
    g_source_set_callback(s, on_sweep, rv, NULL);
    rv->sweep = g_source_attach(s, ctx);
    g_source_unref(s);
    s = g_idle_source_new();
    g_source_set_callback(s, on_kick, rv, NULL);
    rv->kick = g_source_attach(s, ctx);
    g_source_unref(s);
    return rv;
}

void tm_review_set_key(tm_review *rv, const uint8_t key[32], bool encrypt_output)
{
    if (!rv)
        return;
    memcpy(rv->key, key, 32);
    rv->has_key = true;
    rv->encrypt = encrypt_output;
}

void tm_review_recording_done(tm_review *rv, const char *visit_id)
{
    if (!rv)
        return;
    int n = 0;
    if (tm_rendition_requeue(rv->store, visit_id, 0, tm_now_ms(), &n) == 0 && n) {
        tm_info("review.queued", "visit=%s", visit_id);
        start_next(rv);
    }
}

void tm_review_stats_get(const tm_review *rv, tm_review_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!rv)
        return;
    *out = rv->stats;
    out->running = (int)rv->running->len;
}

void tm_review_free(tm_review *rv)
{
    if (!rv)
        return;
    for (guint i = 0; i < rv->running->len; i++) {
        render *r = rv->running->pdata[i];
        g_subprocess_force_exit(r->child);
    }
    g_ptr_array_free(rv->running, TRUE);
    GSource *s;
    if (rv->sweep && (s = g_main_context_find_source_by_id(rv->ctx, rv->sweep)))
        g_source_destroy(s);
    if (rv->kick && (s = g_main_context_find_source_by_id(rv->ctx, rv->kick)))
        g_source_destroy(s);
    if (rv->retry && (s = g_main_context_find_source_by_id(rv->ctx, rv->retry)))
        g_source_destroy(s);
    memset(rv->key, 0, sizeof rv->key);
    g_strfreev(rv->child_env);
    g_free(rv->exe);
    g_free(rv);
}

/*
 * recorder.c - the life cycle of a visit's recording (include/telemed/recorder.h):
 * the file, the recorder thread and its batches, failure and result
 * reporting, and the recording's path.
 *
 * Threads: the media worker only pushes (ring.c); the recorder thread
 * (recorder_main) does everything else until the result is posted; the
 * creator's GMainContext gets the callbacks and the final free. One thread
 * wakes every TM_REC_BATCH_MS and moves the whole batch through
 * synchronously, because a pipeline of threads per track that wait for
 * each other per frame cost more than forwarding the visit
 * (tests/bench/README.md, "recording").
 */
#include "recorder_internal.h"

#include "telemed/common.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- failure reporting ------------------------------------------------ */

/* The failure callback outlives nothing it should not: a message posted
 * to ctx holds a reference to this token, and finish/free (on ctx's
 * thread) cancel it, so the owner never hears of a failure after it has
 * let go of the recorder (and perhaps freed its user data). */
struct tm_rec_failure_token {
    gint refs;
    _Atomic int cancelled;
    tm_recorder_failure_cb cb; /* under the recorder's lock until posted */
    void *user;
};
typedef struct tm_rec_failure_token failure_token;

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

void tm__rec_set_failed(tm_recorder *r, const char *reason)
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

void tm__rec_write_failed(tm_recorder *r, int err)
{
    char *why = g_strdup_printf("write %s: %s", r->path, g_strerror(err));
    tm__rec_set_failed(r, why);
    g_free(why);
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

/* One batch: the ring into the reorder queues, packets into the
 * depayloaders, frames into the muxer, the muxer's bytes to the file. */
static void process(tm_recorder *r, bool final)
{
    tm__rec_drain(r);
    if (!r->first_arrival_ns || atomic_load(&r->failed))
        return;
    int64_t now = tm__rec_mono_ns();
    for (size_t i = 0; i < r->ntracks; i++)
        if (!r->tracks[i].ended)
            tm__rec_release(&r->tracks[i], now - (int64_t)TM_REC_REORDER_MS * 1000000, final);
    tm__rec_close_window(r, now, final);
    if (r->window_closed) {
        int64_t limit = now - r->first_arrival_ns - (int64_t)TM_REC_MUX_LAG_MS * 1000000;
        tm__rec_mux_until(r, final ? TM_REC_NO_TIME : limit > 0 ? (uint64_t)limit : 0);
    }
    tm__rec_flush_out(r); /* reports its own failure */
    if (r->encrypted && r->writer) {
        int64_t ms = tm_mono_ms();
        if (ms - r->last_seal_ms >= TM_REC_SEAL_INTERVAL_MS) {
            r->last_seal_ms = ms;
            if (tm_rec_writer_seal(r->writer) < 0)
                tm__rec_write_failed(r, errno);
        }
    }
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
            uint64_t dur = r->max_end != TM_REC_NO_TIME ? r->max_end : 0;
            if (!tm__rec_mux_finish(r, dur) && !atomic_load(&r->failed))
                tm__rec_set_failed(r, "recording did not finish");
        }
    }
    if (r->fd >= 0 && close(r->fd) < 0 && !atomic_load(&r->failed))
        tm__rec_write_failed(r, errno);
    r->fd = -1;
    if (r->writer) {
        int rc = tm_rec_writer_close(r->writer, res->plain_sha256);
        r->writer = NULL;
        if (rc < 0 && !atomic_load(&r->failed))
            tm__rec_set_failed(r, "cannot close the encrypted recording");
    }
    if (!had_media) {
        /* Nothing was recorded: leave no empty file behind. */
        if (!atomic_load(&r->failed))
            tm__rec_set_failed(r, "no media was received");
        (void)g_unlink(r->path);
    } else if (tm_sha256_file(r->path, &res->size_bytes, res->sha256) < 0 &&
               !atomic_load(&r->failed)) {
        tm__rec_set_failed(r, "cannot read the finished recording");
    }
    if (r->min_pts != TM_REC_NO_TIME && r->max_end != TM_REC_NO_TIME)
        res->duration_ms = (int64_t)((r->max_end - r->min_pts) / TM_REC_NS_PER_MS);
    g_mutex_lock(&r->lock);
    res->failure = r->failure;
    g_mutex_unlock(&r->lock);
    res->status = res->failure ? TM_EIO : 0;
    res->path = r->path;
    res->encrypted = r->encrypted;
    tm_recorder_stats_get(r, &res->stats);
}

static gpointer recorder_main(gpointer p)
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
        if (poll(&pfd, 1, TM_REC_BATCH_MS) > 0) { /* woken early: the eventfd is readable */
            uint64_t v;
            ssize_t n = read(r->efd, &v, sizeof(v));
            (void)n;
        }
        atomic_store(&r->woken, 0);
    }
}

/* ---- life cycle ---------------------------------------------------------- */

tm_recorder *tm_recorder_new(const char *path, const tm_recorder_track *tracks, size_t n,
                             const uint8_t *key_or_null, char **err)
{
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
    r->min_pts = r->max_end = TM_REC_NO_TIME;
    r->ntracks = n;
    r->path = g_strdup(path);
    r->encrypted = key_or_null != NULL;
    r->ctx = g_main_context_ref_thread_default();
    for (size_t i = 0; i < n; i++) {
        tm_rec_track *t = &r->tracks[i];
        t->codec = tracks[i].codec;
        t->pt = tracks[i].payload_type;
        t->clock_rate =
            tracks[i].clock_rate ? tracks[i].clock_rate : (t->codec == TM_REC_OPUS ? 48000 : 90000);
        t->name = g_strdup(tracks[i].name);
        t->last_pts = TM_REC_NO_TIME;
        if ((unsigned)t->codec > TM_REC_H264 || t->pt > 127) {
            *err = g_strdup_printf("recorder: track %zu has a bad codec or payload type", i);
            goto fail;
        }
    }
    /* Create the file here, exclusively and 0600, so a clash or an
     * unwritable directory fails now rather than on the first write. */
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
    tm__mkv_init(&r->mkv, &r->out, !r->encrypted);
    r->ring = g_try_malloc(TM_RECORDER_RING_BYTES);
    r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!r->ring || r->efd < 0) {
        *err = g_strdup("recorder: out of memory or eventfd");
        goto fail;
    }
    /* Touch every page now, so the worker's first pass through the ring
     * takes no page faults. */
    memset(r->ring, 0, TM_RECORDER_RING_BYTES);
    for (size_t i = 0; i < n; i++)
        tm__rec_track_init(&r->tracks[i]);
    r->thread = g_thread_try_new("tm-recorder", recorder_main, r, NULL);
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
    tm__rec_wake(r);
}

void tm_recorder_free(tm_recorder *r)
{
    if (!r)
        return;
    atomic_store(&r->ftok->cancelled, 1);
    atomic_store(&r->closing, 1);
    if (r->thread) {
        atomic_store(&r->abort_asked, 1);
        tm__rec_wake(r);
        g_thread_join(r->thread);
        r->thread = NULL;
    }
    g_free(r->out.p);
    tm__mkv_clear(&r->mkv);
    if (r->fd >= 0)
        close(r->fd);
    tm_rec_writer_abort(r->writer); /* no final chunk: reads as cut short */
    for (size_t i = 0; i < r->ntracks; i++)
        tm__rec_track_free(&r->tracks[i]);
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

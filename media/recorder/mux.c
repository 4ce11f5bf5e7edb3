/*
 * mux.c - the tracks' frames merged in time order into the Matroska
 * writer (mkv.c), and its bytes to the file.
 *
 * Start: frames are held until every declared track has produced one or
 * TM_REC_TRACK_START_WINDOW_MS have passed since the first packet; tracks
 * with nothing by then are taken out before the header is written, so the
 * file lists only tracks that exist. A track that goes silent later holds
 * nothing up: merging is by time, not by "every track has data". Each
 * batch's clusters go to the file in one write(2) (or to rec_crypt), so a
 * crash leaves whole clusters. Recorder thread.
 */
#include "recorder_internal.h"

#include "telemed/common.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

/* The oldest frame of t out of its queue: the caller has used it. Drops
 * its references. */
static void pop_frame(tm_rec_track *t)
{
    tm_rec_frame *f = &g_array_index(t->frames, tm_rec_frame, t->fhead++);
    if (t->fdata)
        t->fdata_head += f->size;
    for (uint32_t i = 0; i < f->nparts; i++)
        tm__rec_arena_unref(g_array_index(t->fparts, tm_rec_held, t->phead++).arena);
    /* Frames wait TM_REC_MUX_LAG_MS, so the queues are never empty for
     * long: move what is left to the front now and then instead. */
    if (t->fhead >= 128 && t->fhead * 2 >= t->frames->len) {
        g_array_remove_range(t->frames, 0, t->fhead);
        t->fhead = 0;
    }
    if (t->fparts && t->phead >= 256 && t->phead * 2 >= t->fparts->len) {
        g_array_remove_range(t->fparts, 0, t->phead);
        t->phead = 0;
    }
    if (t->fdata && t->fdata_head >= 64 * 1024 && t->fdata_head * 2 >= t->fdata->len) {
        g_byte_array_remove_range(t->fdata, 0, t->fdata_head);
        t->fdata_head = 0;
    }
}

void tm__rec_clear_frames(tm_rec_track *t)
{
    while (t->frames && t->fhead < t->frames->len)
        pop_frame(t);
}

/* Takes a track with nothing to show out before the header is written, so
 * the file lists no empty track. */
static void drop_track(tm_rec_track *t)
{
    t->ended = true;
    for (guint i = 0; i < t->held->len; i++)
        tm__rec_arena_unref(g_array_index(t->held, tm_rec_held, i).arena);
    g_array_set_size(t->held, 0);
    tm__rec_forget_frame(t);
    tm__rec_clear_frames(t);
}

void tm__rec_close_window(tm_recorder *r, int64_t now_ns, bool final)
{
    if (r->window_closed || !r->first_arrival_ns)
        return;
    bool all = true;
    for (size_t i = 0; i < r->ntracks; i++)
        all = all && r->tracks[i].produced;
    if (!all && !final &&
        now_ns - r->first_arrival_ns < (int64_t)TM_REC_TRACK_START_WINDOW_MS * 1000000)
        return;
    r->window_closed = true;
    for (size_t i = 0; i < r->ntracks; i++) {
        tm_rec_track *t = &r->tracks[i];
        if (t->produced)
            t->in_file = true;
        else
            drop_track(t);
    }
}

/* The file's header, before its first frame: by then every video track in
 * the file has had a keyframe, which gave its size (and H.264 its avcC). */
static void write_header(tm_recorder *r)
{
    tm_mkv_track tracks[TM_RECORDER_MAX_TRACKS];
    size_t n = 0;
    for (size_t i = 0; i < r->ntracks; i++) {
        tm_rec_track *t = &r->tracks[i];
        if (!t->in_file)
            continue;
        t->mkv_num = (uint8_t)(n + 1);
        tracks[n++] = (tm_mkv_track){
            .number = t->mkv_num,
            .codec = t->codec,
            .name = t->name,
            .width = t->width,
            .height = t->height,
            .channels = t->channels,
            .codec_private = t->codec_data ? g_bytes_get_data(t->codec_data, NULL) : NULL,
            .codec_private_len = t->codec_data ? g_bytes_get_size(t->codec_data) : 0,
        };
    }
    /* Time 0 is the first packet's arrival (monotonic): said in wall time, so a
     * review rendition lines a later part up with the ones before it. */
    r->mkv.date_unix_us = g_get_real_time() - (tm__rec_mono_ns() - r->first_arrival_ns) / 1000;
    tm__mkv_header(&r->mkv, tracks, n);
}

/* The oldest frame of t into the file. */
static void push_frame(tm_recorder *r, tm_rec_track *t)
{
    const tm_rec_frame *f = &g_array_index(t->frames, tm_rec_frame, t->fhead);
    uint64_t pts = f->pts;
    if (t->last_pts != TM_REC_NO_TIME && pts < t->last_pts)
        pts = t->last_pts;
    t->last_pts = pts;
    size_t size = f->size;
    if (size > 0) {
        if (r->min_pts == TM_REC_NO_TIME || pts < r->min_pts)
            r->min_pts = pts;
        if (r->max_end == TM_REC_NO_TIME || pts > r->max_end)
            r->max_end = pts;
        if (!r->mkv.started)
            write_header(r);
        uint8_t *p = tm__mkv_block(&r->mkv, t->mkv_num, t->codec != TM_REC_OPUS,
                                   (int64_t)(pts / TM_REC_NS_PER_MS), f->key, size);
        if (p && t->fdata) {
            memcpy(p, t->fdata->data + t->fdata_head, size);
        } else if (p) {
            for (uint32_t i = 0; i < f->nparts; i++) {
                const tm_rec_held *h = &g_array_index(t->fparts, tm_rec_held, t->phead + i);
                memcpy(p, h->arena->data + h->off, h->len);
                p += h->len;
            }
        }
    }
    pop_frame(t);
}

void tm__rec_mux_until(tm_recorder *r, uint64_t limit)
{
    while (!atomic_load_explicit(&r->failed, memory_order_relaxed)) {
        tm_rec_track *best = NULL;
        uint64_t best_pts = 0;
        for (size_t i = 0; i < r->ntracks; i++) {
            tm_rec_track *t = &r->tracks[i];
            if (!t->in_file || t->fhead >= t->frames->len)
                continue;
            uint64_t pts = g_array_index(t->frames, tm_rec_frame, t->fhead).pts;
            if (!best || pts < best_pts) {
                best = t;
                best_pts = pts;
            }
        }
        if (!best || (limit != TM_REC_NO_TIME && best_pts > limit))
            return;
        push_frame(r, best);
    }
}

bool tm__rec_flush_out(tm_recorder *r)
{
    tm__mkv_close_cluster(&r->mkv);
    tm_mkv_buf *o = &r->out;
    if (o->oom) {
        tm__rec_set_failed(r, "recorder: out of memory for the output");
        o->oom = false;
        o->len = 0;
        return false;
    }
    if (!o->len)
        return true;
    int rc = r->encrypted ? tm_rec_writer_write(r->writer, o->p, o->len)
                          : tm_write_all(r->fd, o->p, o->len);
    if (rc < 0)
        tm__rec_write_failed(r, errno);
    tm__mkv_consumed(&r->mkv); /* on failure too: the stream stops here */
    return rc == 0;
}

static bool patch(tm_recorder *r, const tm_mkv_patch *p)
{
    if (pwrite(r->fd, p->bytes, p->len, (off_t)p->pos) == (ssize_t)p->len)
        return true;
    tm__rec_write_failed(r, errno ? errno : EIO);
    return false;
}

bool tm__rec_mux_finish(tm_recorder *r, uint64_t duration)
{
    if (!r->mkv.started)
        write_header(r);
    tm_mkv_patch patches[3];
    size_t n = 0;
    double ms = duration != TM_REC_NO_TIME ? (double)duration / TM_REC_NS_PER_MS : 0;
    if (tm__mkv_finish(&r->mkv, ms, patches, &n) < 0)
        r->out.oom = true; /* flush_out reports it */
    if (!tm__rec_flush_out(r))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!patch(r, &patches[i]))
            return false;
    return !atomic_load(&r->failed);
}

/*
 * fanout.c - parallel writes of one frame to each of many connections.
 *
 * A batch is shared out in chunks through one atomic cursor, so a thread
 * that the scheduler delays takes fewer chunks instead of holding up the
 * end. The pool threads sleep on a condition variable between batches; a
 * batch number tells them a new one has started.
 */
#include "fanout.h"

#include <glib.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Below this many frames the pool's wake-up costs more than it saves. */
#define CHUNK 32

struct tm_fanout {
    unsigned n_threads; /* pool threads, not counting the caller */
    pthread_t *threads;
    pthread_mutex_t lock;
    pthread_cond_t start, done;
    uint64_t batch; /* under lock: bumped to start a batch */
    unsigned busy;  /* under lock: pool threads still working on it */
    bool stopping;  /* under lock */
    tm_fanout_item *items;
    size_t n_items;
    atomic_size_t next; /* first item not yet taken */
};

bool tm_fanout_item_set(tm_fanout_item *item, struct lws *wsi, void *user, const char *text,
                        size_t len)
{
    if (len > TM_FANOUT_MAX_TEXT)
        return false;
    item->wsi = wsi;
    item->user = user;
    item->len = (uint16_t)len;
    item->result = TM_FANOUT_CHOKED;
    memcpy(item->buf + LWS_PRE, text, len);
    return true;
}

/* On the service thread alone a frame may be written whenever lws holds no
 * unsent bytes of an earlier one: if the socket takes only part of it, lws
 * keeps the rest and asks for a writable event itself. */
static void write_item(tm_fanout_item *it)
{
    if (lws_partial_buffered(it->wsi)) {
        it->result = TM_FANOUT_CHOKED;
    } else {
        int n = lws_write(it->wsi, it->buf + LWS_PRE, it->len, LWS_WRITE_TEXT);
        it->result = n >= (int)it->len ? TM_FANOUT_SENT : TM_FANOUT_FAILED;
    }
    it->done_us = g_get_monotonic_time();
}

/* A pool thread must not get to that request (it touches the event loop), so
 * it writes a frame only when the socket has room for it: the test
 * lws_send_pipe_choked() makes (nothing buffered in lws, poll() says
 * POLLOUT), but one poll() for the whole chunk instead of one per socket.
 * POLLOUT means free send space of at least a third of the buffer (several
 * KiB, far more than a frame), and nothing else writes to these sockets
 * until the batch is done, so what poll() saw still holds at the write. */
static void write_chunk_pooled(tm_fanout_item *items, size_t n)
{
    struct pollfd pfd[CHUNK];
    size_t idx[CHUNK], np = 0;
    for (size_t i = 0; i < n; i++) {
        items[i].result = TM_FANOUT_CHOKED;
        if (lws_partial_buffered(items[i].wsi))
            continue;
        pfd[np] = (struct pollfd){.fd = lws_get_socket_fd(items[i].wsi), .events = POLLOUT};
        idx[np++] = i;
    }
    if (np && poll(pfd, (nfds_t)np, 0) < 0)
        np = 0; /* all refused: the caller queues them */
    for (size_t k = 0; k < np; k++) {
        if (!(pfd[k].revents & POLLOUT))
            continue;
        tm_fanout_item *it = &items[idx[k]];
        int w = lws_write(it->wsi, it->buf + LWS_PRE, it->len, LWS_WRITE_TEXT);
        it->result = w >= (int)it->len ? TM_FANOUT_SENT : TM_FANOUT_FAILED;
        it->done_us = g_get_monotonic_time();
    }
    int64_t now = g_get_monotonic_time();
    for (size_t i = 0; i < n; i++)
        if (items[i].result == TM_FANOUT_CHOKED)
            items[i].done_us = now;
}

static void take_chunks(tm_fanout *f, bool on_pool)
{
    for (;;) {
        size_t first = atomic_fetch_add(&f->next, CHUNK);
        if (first >= f->n_items)
            return;
        size_t end = first + CHUNK < f->n_items ? first + CHUNK : f->n_items;
        if (on_pool) {
            write_chunk_pooled(&f->items[first], end - first);
        } else {
            for (size_t i = first; i < end; i++)
                write_item(&f->items[i]);
        }
    }
}

static void *pool_main(void *arg)
{
    tm_fanout *f = arg;
    uint64_t seen = 0;
    pthread_mutex_lock(&f->lock);
    for (;;) {
        while (!f->stopping && f->batch == seen)
            pthread_cond_wait(&f->start, &f->lock);
        if (f->stopping)
            break;
        seen = f->batch;
        pthread_mutex_unlock(&f->lock);
        take_chunks(f, true);
        pthread_mutex_lock(&f->lock);
        if (--f->busy == 0)
            pthread_cond_signal(&f->done);
    }
    pthread_mutex_unlock(&f->lock);
    return NULL;
}

tm_fanout *tm_fanout_new(unsigned threads)
{
    tm_fanout *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->start, NULL);
    pthread_cond_init(&f->done, NULL);
    unsigned want = threads > 1 ? threads - 1 : 0;
    if (want) {
        f->threads = calloc(want, sizeof(*f->threads));
        if (!f->threads)
            goto fail;
    }
    for (; f->n_threads < want; f->n_threads++)
        if (pthread_create(&f->threads[f->n_threads], NULL, pool_main, f) != 0)
            goto fail;
    return f;
fail:
    tm_fanout_free(f);
    return NULL;
}

void tm_fanout_free(tm_fanout *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->lock);
    f->stopping = true;
    pthread_cond_broadcast(&f->start);
    pthread_mutex_unlock(&f->lock);
    for (unsigned i = 0; i < f->n_threads; i++)
        pthread_join(f->threads[i], NULL);
    free(f->threads);
    pthread_cond_destroy(&f->done);
    pthread_cond_destroy(&f->start);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

void tm_fanout_write(tm_fanout *f, tm_fanout_item *items, size_t n)
{
    if (n == 0)
        return;
    if (f->n_threads == 0 || n < 2 * CHUNK) {
        for (size_t i = 0; i < n; i++)
            write_item(&items[i]);
        return;
    }
    pthread_mutex_lock(&f->lock);
    f->items = items;
    f->n_items = n;
    atomic_store(&f->next, 0);
    f->busy = f->n_threads;
    f->batch++;
    pthread_cond_broadcast(&f->start);
    pthread_mutex_unlock(&f->lock);

    take_chunks(f, false);

    pthread_mutex_lock(&f->lock);
    while (f->busy > 0)
        pthread_cond_wait(&f->done, &f->lock);
    f->items = NULL;
    f->n_items = 0;
    pthread_mutex_unlock(&f->lock);
}

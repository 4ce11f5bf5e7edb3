/*
 * fanout.h - writes one small WebSocket text frame to each of many
 * connections at once, on several threads.
 *
 * A queue change with thousands of patients waiting sends a frame to every
 * one of them. On loopback or a busy host each write costs several
 * microseconds of kernel time, so 5,000 writes on one thread take longer
 * than the position update may. The control loop hands the batch to
 * tm_fanout_write(), which splits it between the calling thread and a few
 * pool threads and returns when every frame has been written or refused.
 *
 * Why lws_write() from pool threads is sound here: the caller is the
 * libwebsockets service thread, parked inside tm_fanout_write() until the
 * batch is done, so no other lws code runs meanwhile; each connection
 * appears in one item and is touched by one thread; and a pool thread
 * writes a frame only when lws holds nothing buffered for that connection
 * and poll() says its socket has room (lws_send_pipe_choked()'s test, one
 * poll() per chunk of sockets), the path on which lws_write() touches
 * nothing but that connection and its OpenSSL object (libwebsockets 4.1, no
 * extensions, no stats). Everything else (queueing a refused frame, closing
 * a broken connection) is left to the caller, on its own thread, after the
 * batch.
 */
#ifndef TELEMED_FANOUT_H
#define TELEMED_FANOUT_H

#include <libwebsockets.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TM_FANOUT_MAX_TEXT 240

typedef enum {
    TM_FANOUT_SENT,   /* the whole frame went to the socket */
    TM_FANOUT_CHOKED, /* not written: lws holds earlier bytes or the socket is full */
    TM_FANOUT_FAILED  /* the write failed or was partial: close the connection */
} tm_fanout_result;

typedef struct tm_fanout_item {
    struct lws *wsi;
    void *user; /* the caller's, untouched */
    uint16_t len;
    uint8_t result;  /* tm_fanout_result, set by tm_fanout_write */
    int64_t done_us; /* g_get_monotonic_time() when written, set by tm_fanout_write */
    unsigned char buf[LWS_PRE + TM_FANOUT_MAX_TEXT]; /* text at buf + LWS_PRE */
} tm_fanout_item;

typedef struct tm_fanout tm_fanout;

/* threads counts the caller: 1 writes every batch on the calling thread.
 * Returns NULL when a thread cannot be started. */
tm_fanout *tm_fanout_new(unsigned threads);
void tm_fanout_free(tm_fanout *f);

/* Copies text into item (false when it is longer than TM_FANOUT_MAX_TEXT). */
bool tm_fanout_item_set(tm_fanout_item *item, struct lws *wsi, void *user, const char *text,
                        size_t len);

/* Writes every item's frame and sets its result; returns when all are done.
 * Call only from the lws service thread, with each wsi at most once. */
void tm_fanout_write(tm_fanout *f, tm_fanout_item *items, size_t n);

#endif

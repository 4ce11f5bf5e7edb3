/*
 * fanout.h - writes one small WebSocket text frame to each of many
 * connections at once, on several threads. Private to signaling/.
 *
 * A queue change sends a frame to every waiting patient, and each write
 * costs kernel time; the batch is split between the calling lws service
 * thread and a few pool threads. Sound because the service thread waits in
 * tm_fanout_write() meanwhile, each connection is in one item, and a pool
 * thread writes only when lws holds nothing buffered for it and its socket
 * has room. Measurements: tests/bench/README.md.
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

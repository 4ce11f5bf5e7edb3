/*
 * uv_source.h - runs a libuv loop inside a GLib main loop.
 *
 * libwebsockets serves every connection from one libuv loop; the control
 * loop is GLib's. GLib's own event-lib plugin for lws gives each connection
 * its own GSource, and GLib walks all of them (prepare, check, a poll() over
 * every fd) on each iteration, so with thousands of patients waiting every
 * ping or frame costs O(connections). libuv keeps its fds in one epoll set,
 * whose fd GLib can poll like any other: this source watches that one fd and
 * libuv's next timer, and runs the loop without blocking when either is due.
 * An event then costs O(1) in GLib and O(ready fds) in libuv.
 */
#ifndef TELEMED_UV_SOURCE_H
#define TELEMED_UV_SOURCE_H

#include <glib.h>
#include <stdbool.h>
#include <uv.h>

/* Called after each run of the loop, for what a library on it cannot see
 * through its own handles (lws' forced service, in main.c). */
typedef void (*tm_uv_after_run_fn)(void *data);

/* A source that runs uv_run(loop, UV_RUN_NOWAIT) whenever the loop has ready
 * fds or a due timer, then after_run(data) if after_run is not NULL. The
 * caller owns the returned source (attach it, then g_source_destroy +
 * g_source_unref it before closing the loop); the loop stays the caller's and
 * must outlive the source. */
GSource *tm_uv_source_new(uv_loop_t *loop, tm_uv_after_run_fn after_run, void *data);

/* Runs the loop until it has no active handles left (the close callbacks of
 * a library that is shutting down) or timeout_ms passes, whichever is first.
 * Returns true when the loop is empty and may be closed. */
bool tm_uv_drain(uv_loop_t *loop, unsigned timeout_ms);

#endif

/*
 * signaling_testing.h - a telemed.v1 session without a socket, for the
 * signaling fuzz target and tests; not part of the contract in
 * telemed/signaling.h. Its frames go through the same path as a WebSocket's
 * once lws has reassembled them (rate limit, hello, every room's handlers),
 * and what the server would write to the client waits in the session's send
 * queue, read here. Control loop, as every tm_signaling_* call.
 */
#ifndef TELEMED_SIGNALING_TESTING_H
#define TELEMED_SIGNALING_TESTING_H

#include "telemed/signaling.h"

#include <stddef.h>

typedef struct session tm_signaling_session;

/* A new connection from peer_ip (owned by sig's rooms until
 * tm_signaling_session_closed). It must say hello, as over a socket. */
tm_signaling_session *tm_signaling_session_open(tm_signaling *sig, const char *peer_ip);
/* One whole text frame from the client; borrows text for the call. Ignored
 * once the server is closing the session. */
void tm_signaling_session_frame(tm_signaling_session *s, const char *text, size_t len);
/* The oldest frame queued for the client (new string, g_free), or NULL. */
char *tm_signaling_session_pop(tm_signaling_session *s);
/* The WebSocket close code the server has chosen, or 0 while it keeps the
 * session open. */
int tm_signaling_session_close_code(const tm_signaling_session *s);
/* The client went away (lws' CLOSED): its user starts the grace period.
 * Frees s. */
void tm_signaling_session_closed(tm_signaling_session *s);

#endif

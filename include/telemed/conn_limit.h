/*
 * conn_limit.h - how many connections one client address may hold before it
 * has authenticated, decided at accept.
 *
 * A connection counts from accept until it authenticates (a REST request
 * with a good token, a WebSocket hello) or closes. Closes are noticed lazily:
 * a tracked socket whose peer is no longer the one recorded at accept has
 * gone, so nothing has to hear about every close. Authenticated connections
 * are not counted: many doctors behind one hospital NAT are fine, hundreds of
 * silent sockets from one address are not.
 *
 * Threads: the control loop only (lws' accept and the callbacks).
 */
#ifndef TELEMED_CONN_LIMIT_H
#define TELEMED_CONN_LIMIT_H

#include "telemed/common.h"

typedef struct tm_conn_limit tm_conn_limit;

/* A limiter allowing max_per_addr unauthenticated connections per address
 * (>= 1). Caller frees with tm_conn_limit_free. */
tm_conn_limit *tm_conn_limit_new(int max_per_addr);
void tm_conn_limit_free(tm_conn_limit *cl); /* accepts NULL */

/* A connection was just accepted on fd. Returns 0 and counts it, or
 * TM_ERATE when its address already holds max_per_addr unauthenticated
 * connections (the caller closes it), or TM_EINVAL when fd has no peer. */
int tm_conn_limit_admit(tm_conn_limit *cl, int fd);

/* The connection on fd proved who it is: it stops counting. Harmless for
 * an fd that is not tracked. */
void tm_conn_limit_authenticated(tm_conn_limit *cl, int fd);

/* Unauthenticated connections counted now for fd's peer address (after
 * dropping the ones that have gone); for tests and metrics. */
int tm_conn_limit_count(tm_conn_limit *cl, int fd);

#endif

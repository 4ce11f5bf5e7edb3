/*
 * delay_relay.h - a loopback TCP relay for benchmarks: it listens on
 * 127.0.0.1 and passes each connection through to a loopback port, holding
 * every chunk for a fixed delay in each direction, so a benchmark on one
 * machine sees what a network's round trip does to it. It also counts
 * round trips: a client send that follows an answer starts a new one.
 *
 * Runs its own thread; a benchmark only reads the counter.
 */
#ifndef TELEMED_BENCH_DELAY_RELAY_H
#define TELEMED_BENCH_DELAY_RELAY_H

#include <stdint.h>

typedef struct delay_relay delay_relay;

/* A relay to 127.0.0.1:target_port adding delay_us each way (0..1 s), or
 * NULL with a message on stderr. *port is where it listens. */
delay_relay *delay_relay_start(int target_port, int64_t delay_us, int *port);
/* Round trips so far, over all connections. */
uint64_t delay_relay_round_trips(delay_relay *r);
/* Closes every connection and stops the thread. NULL does nothing. */
void delay_relay_stop(delay_relay *r);
#endif

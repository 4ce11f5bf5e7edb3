/*
 * visit_chain.h - the hash chain over a visit's regulator events: each
 * outbox event carries the SHA-256 of its own content chained to the hash
 * of the visit's event before it, so a changed or removed event breaks the
 * chain from that point (docs/regulator-feed.md, "Hash chain").
 *
 * The store computes the link inside the transaction that writes the event
 * (tm__store_outbox_append); verification walks a visit's events again
 * (tm_store_visit_chain). Sealing the chain head with the hospital's key is
 * a later step.
 *
 * Pure functions; any thread.
 */
#ifndef TELEMED_VISIT_CHAIN_H
#define TELEMED_VISIT_CHAIN_H

#include <stddef.h>
#include <stdint.h>

#define TM_CHAIN_HEX_LEN 64

/* One event as the chain sees it. */
typedef struct tm_chain_event {
    const char *event_id;
    const char *type;
    const char *visit_id;
    int64_t occurred_at; /* epoch ms */
    const char *payload;
    size_t payload_len;
} tm_chain_event;

/* The hash before a visit's first event: SHA-256("telemed-chain-v1 start" ||
 * visit_id), lowercase hex, into out (65 bytes). */
void tm_chain_start(const char *visit_id, char out[TM_CHAIN_HEX_LEN + 1]);
/* The event's link: SHA-256 over the previous hash (64 hex digits) and the
 * event's fields, each as "<decimal length>:<bytes>", lowercase hex, into
 * out. TM_EINVAL when prev is not 64 lowercase hex digits. */
int tm_chain_link(const char *prev, const tm_chain_event *ev, char out[TM_CHAIN_HEX_LEN + 1]);

#endif

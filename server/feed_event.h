/*
 * feed_event.h - the `data` object of a regulator feed event (schema v1),
 * built from the facts of a visit (tm_visit_facts, store.h). Every store
 * backend calls it inside the transaction of a visit step, so the payload
 * shows the visit exactly as that step left it. Module-private to server/.
 */
#ifndef TELEMED_FEED_EVENT_H
#define TELEMED_FEED_EVENT_H

#include "telemed/store.h"

/* The event's data as compact JSON text for event type (visit.checked_in,
 * visit.started, visit.ended, visit.note_signed, visit.rated,
 * recording.available, visit.sealed). Returns a new string (free()) or NULL when out of
 * memory. Pure: any thread. */
char *tm__feed_event_payload(const tm_visit_facts *f, const char *type);
/* The same with one more member: key = extra (borrowed; key NULL adds
 * nothing). visit.sealed carries its seal this way. */
char *tm__feed_event_payload_with(const tm_visit_facts *f, const char *type, const char *key,
                                  json_t *extra);

#endif

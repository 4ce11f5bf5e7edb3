/*
 * media_testing.h - hooks of the media core for its own tests, not part of the
 * contract in telemed/media.h: the media tests reach them through the
 * tm_media_private include target (media/packets.cmake). Control thread, as
 * every tm_media_* call.
 */
#ifndef TELEMED_MEDIA_TESTING_H
#define TELEMED_MEDIA_TESTING_H

#include "telemed/media.h"

/* Test hook: drop every nth forwarded video packet instead of sending it (it still enters the
 * receiver stream's retransmission cache), so NACK repair can be tested deterministically.
 * 0 turns it off. Applies from the workers' next iteration. */
void tm_media_set_test_drop(tm_media *m, unsigned every_nth_video);
/* Test hook: drop every nth video packet arriving from senders, as if lost on the way in, so the
 * server's own NACKs to senders can be tested. 0 turns it off. */
void tm_media_set_test_drop_in(tm_media *m, unsigned every_nth_video);

/* The DTLS certificate fingerprint in use (sha-256, "AB:CD:..."); borrowed, lives as long as m. */
const char *tm_media_fingerprint(tm_media *m);

#endif

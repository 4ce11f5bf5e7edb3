/*
 * curl_glib.h - libcurl's multi interface driven from a GMainContext: the
 * sockets and the timer curl asks for become GLib sources, so transfers
 * run on the context's thread without blocking it.
 *
 * Threading: every function, and on_done, on the thread that runs ctx.
 */
#ifndef TELEMED_CURL_GLIB_H
#define TELEMED_CURL_GLIB_H

#include <curl/curl.h>
#include <glib.h>

typedef struct tm_curl_loop tm_curl_loop;

/* Called once per finished transfer with its result. The easy handle is
 * still added: on_done removes it (tm_curl_loop_remove) and cleans it up. */
typedef void (*tm_curl_done_fn)(CURL *easy, CURLcode result, void *user);

/* A multi handle on ctx (NULL = default context). NULL when libcurl cannot
 * start. Initialises libcurl once per process. */
tm_curl_loop *tm_curl_loop_new(GMainContext *ctx, tm_curl_done_fn on_done, void *user);
/* Removes every GLib source; transfers still added are abandoned (remove
 * and clean them up first). NULL is fine. */
void tm_curl_loop_free(tm_curl_loop *l);
/* Starts easy (borrowed until removed). 0 or TM_EIO. */
int tm_curl_loop_add(tm_curl_loop *l, CURL *easy);
void tm_curl_loop_remove(tm_curl_loop *l, CURL *easy);

#endif

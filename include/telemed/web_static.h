/*
 * web_static.h - the web client's files (web-client/) over HTTPS: gzip for
 * browsers that take it, and a strong ETag made from the content with
 * "Cache-Control: no-cache", so a browser keeps the files, revalidates them
 * on every visit for a 304 without a body, and picks up a new release the
 * moment a file's bytes change. Runs on the control loop (lws' callbacks).
 */
#ifndef TELEMED_WEB_STATIC_H
#define TELEMED_WEB_STATIC_H

#include <libwebsockets.h>
#include <stddef.h>

typedef struct tm_web_static tm_web_static;

/* Serves the regular files under root (copied; read at each request, so a
 * missing root means 404s). Free with tm_web_static_free (NULL is fine). */
tm_web_static *tm_web_static_new(const char *root);
void tm_web_static_free(tm_web_static *ws);

/* The lws callback of the protocol the "/" mount names; the protocol's
 * user pointer is the tm_web_static, its per-session size
 * tm_web_static_pss_size(). */
int tm_web_static_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                           size_t len);
size_t tm_web_static_pss_size(void);

#endif

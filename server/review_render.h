/*
 * review_render.h - the render child's entry point (review_render.c), run
 * by `telemed-server render-review`. Server-internal: main.c only.
 */
#ifndef TELEMED_REVIEW_RENDER_H
#define TELEMED_REVIEW_RENDER_H

/* Reads the job (JSON) from stdin, renders, prints the result line on
 * stdout and exits: 0 when the rendition is stored, 1 when not. */
int tm_review_render_main(void) __attribute__((noreturn));

#endif

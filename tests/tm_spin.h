/*
 * tm_spin.h - runs the default GLib main context until a condition holds,
 * with a generous cap that only stops a wedged test (never a measure of
 * how much work fits in a window). Header-only; for tests.
 */
#ifndef TM_SPIN_H
#define TM_SPIN_H

#include <glib.h>
#include <stdbool.h>

static gboolean tm_spin_wake(gpointer data)
{
    (void)data;
    return G_SOURCE_CONTINUE;
}

/* Iterates until done(data) or 90 s; done(data) at the end. */
static inline bool spin_until(bool (*done)(void *), void *data)
{
    int64_t cap = g_get_monotonic_time() + 90 * G_USEC_PER_SEC;
    guint tick = g_timeout_add(20, tm_spin_wake, NULL);
    while (!done(data) && g_get_monotonic_time() < cap)
        g_main_context_iteration(NULL, TRUE);
    g_source_remove(tick);
    return done(data);
}
#endif

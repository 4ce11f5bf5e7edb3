/*
 * harness_config.h - the feed harnesses' shared start: the server's own
 * config loading (defaults, file, environment, flags), log level and data
 * directory, so a harness runs on exactly what telemed-server would.
 */
#ifndef TM_TESTS_FEED_HARNESS_CONFIG_H
#define TM_TESTS_FEED_HARNESS_CONFIG_H

#include "telemed/config.h"
#include "telemed/log.h"

#include <glib.h>
#include <stdio.h>

/* Loads cfg as telemed-server does and sets *first to the first argument
 * after the options; 0, or 2 (usage) after saying why as name. */
static inline int harness_load_config(const char *name, int argc, char **argv, tm_config *cfg,
                                      int *first)
{
    char *err = NULL;
    *first = argc;
    if (tm_config_load(cfg, argc, argv, first, &err) < 0) {
        fprintf(stderr, "%s: %s\n", name, err);
        g_free(err);
        return 2;
    }
    tm_config_resolve_paths(cfg);
    tm_log_level lvl;
    if (tm_log_parse_level(cfg->log_level, &lvl) == 0)
        tm_log_set_level(lvl);
    g_mkdir_with_parents(cfg->data_dir, 0700);
    return 0;
}

#endif

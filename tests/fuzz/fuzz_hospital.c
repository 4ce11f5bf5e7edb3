/*
 * fuzz_hospital.c - the data directory, config, seeded database and tokens
 * of the signaling and HTTP fuzz targets (fuzz_hospital.h).
 */
#include "fuzz_hospital.h"

#include "app.h"
#include "telemed/log.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <stdlib.h>

static const char *target;
static char *dir, *template_db, *work_db;

void fuzz_fail(const char *what, const char *detail)
{
    fprintf(stderr, "%s: %s: %s\n", target ? target : "fuzz", what, detail ? detail : "");
    abort();
}

static void remove_dir(void)
{
    char *rm[] = {"rm", "-rf", dir, NULL};
    g_spawn_sync(NULL, rm, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, NULL, NULL);
}

static void remove_db(const char *path)
{
    static const char *const sides[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < TM_ARRAY_LEN(sides); i++) {
        char *p = g_strconcat(path, sides[i], NULL);
        g_unlink(p);
        g_free(p);
    }
}

void fuzz_hospital_setup(const char *name, tm_config *cfg, bool verbose)
{
    target = name;
    tm_log_set_level(verbose ? TM_LOG_INFO : TM_LOG_ERROR);
    char *tmpl = g_strconcat(name, "-XXXXXX", NULL);
    if (g_file_test("/dev/shm", G_FILE_TEST_IS_DIR))
        dir = g_mkdtemp(g_build_filename("/dev/shm", tmpl, NULL));
    else
        dir = g_dir_make_tmp(tmpl, NULL);
    g_free(tmpl);
    if (!dir)
        fuzz_fail("mkdtemp", NULL);
    atexit(remove_dir);
    char *argv[] = {(char *)name, "--data-dir", dir, "--fanout-threads", "1"};
    char *err = NULL;
    if (tm_config_load(cfg, (int)TM_ARRAY_LEN(argv), argv, NULL, &err) < 0)
        fuzz_fail("config", err);
    tm_config_resolve_paths(cfg);
    template_db = g_build_filename(dir, "template.db", NULL);
    work_db = g_build_filename(dir, "work.db", NULL);
    tm_app app = {.cfg = *cfg};
    app.store = tm_store_open(template_db, cfg->hospital_id, &err);
    if (!app.store || tm_demo_seed(&app) < 0)
        fuzz_fail("seed", err);
    tm_store_free(app.store);
}

tm_store *fuzz_hospital_open(const tm_config *cfg)
{
    gchar *bytes = NULL, *err = NULL;
    gsize len = 0;
    remove_db(work_db);
    if (!g_file_get_contents(template_db, &bytes, &len, NULL) ||
        !g_file_set_contents(work_db, bytes, (gssize)len, NULL))
        fuzz_fail("copy database", work_db);
    g_free(bytes);
    tm_store *s = tm_store_open(work_db, cfg->hospital_id, &err);
    if (!s)
        fuzz_fail("open database", err);
    return s;
}

char *fuzz_hospital_token(const char *sub, tm_role role, const char *dept)
{
    tm_identity id = {0};
    g_strlcpy(id.sub, sub, sizeof(id.sub));
    id.role = role;
    g_strlcpy(id.name, sub, sizeof(id.name));
    g_strlcpy(id.dept, dept ? dept : "", sizeof(id.dept));
    id.iat = tm_now_ms() / 1000;
    id.exp = id.iat + 12 * 3600;
    id.auth_time = id.iat; /* signed in just now: a doctor may accept visits */
    g_strlcpy(id.amr, "pwd", sizeof(id.amr));
    return tm_jwt_mint_hs256(FUZZ_HOSPITAL_SECRET, &id);
}

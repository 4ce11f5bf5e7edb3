/*
 * test_signaling_teardown.c - signaling over a real SQLite store, driven
 * through sessions without a socket (signaling_testing.h): once
 * tm_signaling_free returns, nothing of it is left on the GLib loop to fire
 * into freed memory (found by fuzz_signaling: a doctor.status pushed the
 * overview at once and forgot the overview's pending timer).
 */
#include "signaling_testing.h"
#include "telemed/common.h"
#include "telemed/config.h"
#include "telemed/jwt.h"
#include "telemed/log.h"
#include "telemed/store.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <jansson.h>

#include "tm_test.h"

#define SECRET "test-signaling-teardown-secret-0123456789"

static tm_config cfg;
static char *dir;

static tm_store *open_hospital(void)
{
    char *path = g_build_filename(dir, "telemed.db", NULL);
    char *err = NULL;
    tm_store *st = tm_store_open(path, cfg.hospital_id, &err);
    g_free(path);
    CHECK(st != NULL);
    int64_t now = tm_now_ms();
    char shift[64];
    CHECK(tm_store_dept_put(st, "cardiology", "Cardiology") == 0);
    CHECK(tm_store_doctor_put(st, "d-li", "Dr. Li", "cardiology", "110100000000001", NULL) == 0);
    CHECK(tm_store_shift_add(st, "d-li", "cardiology", now - 3600000, now + 3600000, 1, shift) ==
          0);
    return st;
}

static tm_signaling_session *say_hello(tm_signaling *sig, const char *sub, tm_role role)
{
    tm_identity id = {0};
    g_strlcpy(id.sub, sub, sizeof(id.sub));
    id.role = role;
    id.iat = tm_now_ms() / 1000;
    id.exp = id.iat + 3600;
    char *token = tm_jwt_mint_hs256(SECRET, &id);
    char *hello = g_strdup_printf("{\"type\":\"hello\",\"id\":\"h\",\"token\":\"%s\"}", token);
    tm_signaling_session *s = tm_signaling_session_open(sig, "127.0.0.1");
    tm_signaling_session_frame(s, hello, strlen(hello));
    g_free(hello);
    free(token);
    return s;
}

/* The type of the frame answering request id re, reading past pushes. */
static char *answer_type(tm_signaling_session *s, const char *re)
{
    char *text, *type = NULL;
    while (!type && (text = tm_signaling_session_pop(s))) {
        json_t *m = json_loads(text, 0, NULL);
        if (g_strcmp0(json_string_value(json_object_get(m, "re")), re) == 0)
            type = g_strdup(json_string_value(json_object_get(m, "type")));
        json_decref(m);
        g_free(text);
    }
    return type;
}

static void send_frame(tm_signaling_session *s, const char *text)
{
    tm_signaling_session_frame(s, text, strlen(text));
}

static void test_nothing_left_on_the_loop_after_free(void)
{
    tm_store *st = open_hospital();
    tm_jwt_verifier *jwt = tm_jwt_verifier_new(SECRET);
    char *err = NULL;
    tm_signaling *sig = tm_signaling_new(&cfg, st, jwt, &err);
    CHECK(sig != NULL);
    tm_signaling_ready(sig);
    tm_signaling_session *sup = say_hello(sig, "s-1", TM_ROLE_SUPERVISOR);
    tm_signaling_session *doc = say_hello(sig, "d-li", TM_ROLE_DOCTOR);
    char *t = answer_type(sup, "h");
    CHECK_STR(t, "result");
    g_free(t);
    t = answer_type(doc, "h");
    CHECK_STR(t, "result");
    g_free(t);
    send_frame(sup, "{\"type\":\"overview.subscribe\",\"id\":\"o\"}");
    t = answer_type(sup, "o");
    CHECK_STR(t, "result");
    g_free(t);
    /* A doctor going available marks the overview changed (a coalesced push
     * on a timer) and then pushes it at once. */
    send_frame(doc, "{\"type\":\"doctor.status\",\"id\":\"s\",\"status\":\"available\"}");
    t = answer_type(doc, "s");
    CHECK_STR(t, "result");
    g_free(t);
    tm_signaling_session_closed(doc);
    tm_signaling_session_closed(sup);
    tm_signaling_free(sig);
    /* Compares the pointer only: sig is freed. */
    CHECK(g_main_context_find_source_by_user_data(NULL, sig) == NULL);
    tm_jwt_verifier_free(jwt);
    tm_store_free(st);
}

int main(void)
{
    tm_log_set_level(TM_LOG_WARN);
    dir = g_dir_make_tmp("test-signaling-XXXXXX", NULL);
    CHECK(dir != NULL);
    char *argv[] = {"test_signaling_teardown", "--data-dir", dir, "--fanout-threads", "1"};
    char *err = NULL;
    CHECK(tm_config_load(&cfg, (int)TM_ARRAY_LEN(argv), argv, NULL, &err) == 0);
    RUN(test_nothing_left_on_the_loop_after_free);
    tm_config_clear(&cfg);
    char *rm[] = {"rm", "-rf", dir, NULL};
    g_spawn_sync(NULL, rm, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, NULL, NULL);
    g_free(dir);
    TEST_DONE();
}

/*
 * fuzz_signaling.c - frames as clients send them, into the real telemed.v1
 * dispatch (session, auth, lobby, visit, supervision and media rooms) over
 * a real SQLite store holding the demo hospital.
 *
 * Each input is a short conversation, one frame per line. A line's first
 * byte says who sends it: p and q are patients, d a cardiology and e an
 * endocrinology doctor, s a supervisor, a an admin (the supervisor's view),
 * x a connection that has not said hello. The others said hello with a good
 * token before the first line. "~" and a sender's letter drop that
 * connection and open a new one that says hello again (grace and resume).
 * In a frame, @v stands for the newest visit id the server has sent and @t
 * for the sender's own token, which a fuzzer could not guess.
 *
 * Every frame the server queues must be a JSON object with a type; anything
 * else aborts. There is no media core (it needs sockets and worker threads):
 * media requests get the server's "media is off" answer. Each input starts
 * from a fresh copy of the seeded database, so a crash reproduces alone.
 * FUZZ_SIGNALING_TRACE=1 prints the conversation.
 */
#include "fuzz_hospital.h"
#include "signaling_testing.h"

#include <glib.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_LINES 64
#define MAX_FRAME 16384

typedef struct actor {
    char letter;
    const char *sub;
    tm_role role;
    const char *dept;
    char *token; /* NULL: never says hello */
    tm_signaling_session *s;
} actor;

static actor actors[] = {
    {'p', "p-fuzz-1", TM_ROLE_PATIENT, NULL, NULL, NULL},
    {'q', "p-fuzz-2", TM_ROLE_PATIENT, NULL, NULL, NULL},
    {'d', "d-li", TM_ROLE_DOCTOR, "cardiology", NULL, NULL},
    {'e', "d-zhang", TM_ROLE_DOCTOR, "endocrinology", NULL, NULL},
    {'s', "s-fuzz", TM_ROLE_SUPERVISOR, NULL, NULL, NULL},
    {'a', "a-fuzz", TM_ROLE_ADMIN, NULL, NULL, NULL},
    {'x', NULL, TM_ROLE_NONE, NULL, NULL, NULL},
};

static tm_config cfg;
static char last_visit[64];
static bool trace; /* FUZZ_SIGNALING_TRACE set: every frame in and out on stderr */

static void setup_once(void)
{
    trace = getenv("FUZZ_SIGNALING_TRACE") != NULL;
    fuzz_hospital_setup("fuzz_signaling", &cfg, trace);
    for (size_t i = 0; i < TM_ARRAY_LEN(actors); i++)
        if (actors[i].sub)
            actors[i].token = fuzz_hospital_token(actors[i].sub, actors[i].role, actors[i].dept);
}

/* The newest "visit_id" (or an offer's visit "id") the server has sent. */
static void remember_visit(json_t *msg)
{
    const char *v = json_string_value(json_object_get(msg, "visit_id"));
    json_t *data = json_object_get(msg, "data");
    if (!v && data)
        v = json_string_value(json_object_get(data, "visit_id"));
    if (v && strncmp(v, "v-", 2) == 0)
        g_strlcpy(last_visit, v, sizeof(last_visit));
}

static void drain(actor *a)
{
    char *text;
    while (a->s && (text = tm_signaling_session_pop(a->s))) {
        json_error_t jerr;
        json_t *msg = json_loads(text, 0, &jerr);
        if (!json_is_object(msg) || !json_is_string(json_object_get(msg, "type")))
            fuzz_fail("the server sent a frame that is not a typed JSON object", text);
        remember_visit(msg);
        if (trace)
            fprintf(stderr, "  %c< %s\n", a->letter, text);
        json_decref(msg);
        g_free(text);
    }
}

static void settle(void)
{
    while (g_main_context_iteration(NULL, FALSE))
        ;
    for (size_t i = 0; i < TM_ARRAY_LEN(actors); i++)
        drain(&actors[i]);
}

static void connect_actor(tm_signaling *sig, actor *a)
{
    a->s = tm_signaling_session_open(sig, "127.0.0.1");
    if (!a->token)
        return;
    char *hello = g_strdup_printf("{\"type\":\"hello\",\"id\":\"h\",\"token\":\"%s\"}", a->token);
    tm_signaling_session_frame(a->s, hello, strlen(hello));
    g_free(hello);
}

static void disconnect_actor(actor *a)
{
    if (!a->s)
        return;
    drain(a);
    tm_signaling_session_closed(a->s);
    a->s = NULL;
}

static actor *find_actor(char letter)
{
    for (size_t i = 0; i < TM_ARRAY_LEN(actors); i++)
        if (actors[i].letter == letter)
            return &actors[i];
    return NULL;
}

/* The frame with @v and @t filled in (new string). */
static GString *expand(const actor *a, const char *line, size_t len)
{
    GString *out = g_string_sized_new(len + 64);
    for (size_t i = 0; i < len; i++) {
        if (line[i] == '@' && i + 1 < len && line[i + 1] == 'v') {
            g_string_append(out, last_visit);
            i++;
        } else if (line[i] == '@' && i + 1 < len && line[i + 1] == 't') {
            g_string_append(out, a->token ? a->token : "");
            i++;
        } else {
            g_string_append_c(out, line[i]);
        }
    }
    return out;
}

static void run_line(tm_signaling *sig, const char *line, size_t len)
{
    if (len >= 2 && line[0] == '~') {
        actor *a = find_actor(line[1]);
        if (a) {
            disconnect_actor(a);
            connect_actor(sig, a);
        }
        return;
    }
    actor *a = len ? find_actor(line[0]) : NULL;
    if (!a || !a->s || len - 1 > MAX_FRAME)
        return;
    GString *frame = expand(a, line + 1, len - 1);
    if (trace)
        fprintf(stderr, "%c> %s\n", a->letter, frame->str);
    tm_signaling_session_frame(a->s, frame->str, frame->len);
    g_string_free(frame, TRUE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        setup_once();
        ready = true;
    }
    last_visit[0] = 0;
    char *err = NULL;
    tm_store *store = fuzz_hospital_open(&cfg);
    tm_jwt_verifier *jwt = tm_jwt_verifier_new(FUZZ_HOSPITAL_SECRET);
    tm_jwt_verifier_set_max_lifetime(jwt, cfg.jwt_max_lifetime_s);
    tm_signaling *sig = tm_signaling_new(&cfg, store, jwt, &err);
    if (!sig)
        fuzz_fail("start", err);
    tm_signaling_ready(sig);
    for (size_t i = 0; i < TM_ARRAY_LEN(actors); i++)
        connect_actor(sig, &actors[i]);
    settle();

    const char *p = (const char *)data, *end = p + size;
    for (int n = 0; p < end && n < MAX_LINES; n++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        run_line(sig, p, len);
        settle();
        p += len + 1;
    }

    for (size_t i = 0; i < TM_ARRAY_LEN(actors); i++)
        disconnect_actor(&actors[i]);
    settle();
    tm_signaling_free(sig);
    tm_jwt_verifier_free(jwt);
    tm_store_free(store);
    return 0;
}

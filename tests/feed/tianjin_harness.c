/*
 * tianjin_harness.c - the real store and the real tianjin profile on a
 * GMainLoop, driven from the command line by tests/feed/tianjin.test.mjs.
 *
 *   tianjin_harness [telemed config flags] -- STEP...
 *
 * Config flags are telemed-server's (--data-dir, --tianjin-url, ...).
 * Steps run in order:
 *
 *   visits N     N finished visits of yesterday (platform time), each with
 *                a signed note and a rating, and the regulator ids they need
 *   badvisit     one finished visit of yesterday without a signed note
 *   denied       one finished visit whose patient certificate the stand-in
 *                platform refuses (an id that passes the local checks)
 *   run [DAY]    the nightly run now (stage DAY, default yesterday)
 *   drain        run until yesterday is staged, nothing is in flight or
 *                pending (but ratings held back by a dead visit record)
 *                and every staged day is checked in
 *   serve        run until killed
 *   status       print the status and dead letters
 *
 * Output lines: "visit <id>", "badvisit <id>", "denied <id>", "yesterday
 * <day>", "ready", "status <json>", "dead <json>". Thread: the main loop.
 */
#include "harness_config.h"
#include "telemed/common.h"
#include "telemed/config.h"
#include "telemed/feed_tianjin.h"
#include "telemed/log.h"
#include "telemed/store.h"

#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DAY_MS (24LL * 3600 * 1000)

typedef struct harness {
    tm_store *store;
    tm_tianjin *tj;
    GMainLoop *loop;
    int64_t yesterday_noon; /* epoch ms */
    char yesterday[16];
    int made;
} harness;

static void find_yesterday(harness *h, int offset_min)
{
    int64_t off = (int64_t)offset_min * 60000;
    int64_t day_no = (tm_now_ms() + off) / DAY_MS - 1;
    h->yesterday_noon = day_no * DAY_MS + DAY_MS / 2 - off;
    time_t s = (time_t)(day_no * 86400);
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(h->yesterday, sizeof(h->yesterday), "%Y-%m-%d", &tm);
}

/* A visit of yesterday, ended by the doctor; with_note signs an I10 note. */
static int finished_visit(harness *h, const char *cert, bool with_note, const char *tag)
{
    tm_visit v;
    memset(&v, 0, sizeof(v));
    int k = ++h->made;
    snprintf(v.patient_id, sizeof(v.patient_id), "pat-%d-%d", (int)getpid(), k);
    snprintf(v.dept_id, sizeof(v.dept_id), "cardio");
    snprintf(v.kind, sizeof(v.kind), "follow_up");
    int64_t t = h->yesterday_noon + (int64_t)k * 1000;
    v.checkin_ms = t;
    int rc;
    if ((rc = tm_store_regulator_id_put(h->store, "patient", v.patient_id, "1", cert)) < 0 ||
        (rc = tm_store_visit_checkin(h->store, &v, "harness")) < 0 ||
        (rc = tm_store_visit_offer(h->store, v.id, "doc-1", t + 100)) < 0 ||
        (rc = tm_store_visit_accept(h->store, v.id, "doc-1", "harness", t + 200)) < 0 ||
        (rc = tm_store_visit_end(h->store, v.id, "completed", "doc-1", t + 300)) < 0 ||
        (with_note &&
         (rc = tm_store_note_save(h->store, v.id, "doc-1", "note", "I10", true, t + 400)) < 0) ||
        (rc = tm_store_rating_add(h->store, v.id, v.patient_id, 1 + k % 5, NULL, t + 500)) < 0) {
        fprintf(stderr, "visit %d: %s (%s)\n", k, tm_strerror(rc), tm_store_errmsg(h->store));
        return rc;
    }
    printf("%s %s\n", tag, v.id);
    fflush(stdout);
    return 0;
}

static void print_status(harness *h)
{
    json_t *st = tm_tianjin_status(h->tj);
    json_t *dead = tm_tianjin_dead_letters(h->tj, 100);
    char *a = st ? json_dumps(st, JSON_COMPACT) : NULL;
    char *b = dead ? json_dumps(dead, JSON_COMPACT) : NULL;
    printf("status %s\ndead %s\n", a ? a : "null", b ? b : "null");
    fflush(stdout);
    free(a);
    free(b);
    json_decref(st);
    json_decref(dead);
}

static gboolean on_drain_check(gpointer user)
{
    harness *h = user;
    json_t *st = tm_tianjin_status(h->tj);
    const char *last = json_string_value(json_object_get(st, "last_staged_day"));
    bool done = last && strcmp(last, h->yesterday) >= 0 &&
                json_integer_value(json_object_get(st, "pending")) ==
                    json_integer_value(json_object_get(st, "held")) &&
                json_integer_value(json_object_get(st, "in_flight")) == 0 &&
                json_integer_value(json_object_get(st, "days")) ==
                    json_integer_value(json_object_get(st, "checkins"));
    json_decref(st);
    if (done)
        g_main_loop_quit(h->loop);
    return done ? G_SOURCE_REMOVE : G_SOURCE_CONTINUE;
}

int main(int argc, char **argv)
{
    tm_config cfg;
    char *err = NULL;
    int first;
    if (harness_load_config("tianjin_harness", argc, argv, &cfg, &first))
        return 2;

    harness h = {0};
    find_yesterday(&h, cfg.tianjin_utc_offset_min);
    h.store = tm_store_open(cfg.db, cfg.hospital_id, &err);
    if (!h.store) {
        fprintf(stderr, "tianjin_harness: %s\n", err);
        return 1;
    }
    if (!tm_store_dept_exists(h.store, "cardio")) {
        tm_store_dept_put(h.store, "cardio", "Cardiology");
        tm_store_doctor_put(h.store, "doc-1", "Doctor One", "cardio", "LIC-0001", "attending");
        tm_store_regulator_id_put(h.store, "doctor", "doc-1", "1", "120101198001010011");
        tm_store_regulator_id_put(h.store, "dept", "cardio", NULL, "03.01");
    }
    printf("yesterday %s\n", h.yesterday);
    h.loop = g_main_loop_new(NULL, FALSE);
    h.tj = tm_tianjin_new(h.store, &cfg, NULL, &err);
    if (!h.tj) {
        fprintf(stderr, "tianjin_harness: %s\n", err);
        return 1;
    }
    int rc = 0;
    for (int i = first; i < argc && rc >= 0; i++) {
        const char *step = argv[i];
        if (strcmp(step, "--") == 0) {
            continue;
        } else if (strcmp(step, "visits") == 0 && i + 1 < argc) {
            int n = atoi(argv[++i]);
            for (int k = 0; k < n && rc == 0; k++) {
                char cert[32];
                snprintf(cert, sizeof(cert), "1201011990%08d", h.made + 1);
                rc = finished_visit(&h, cert, true, "visit");
            }
        } else if (strcmp(step, "badvisit") == 0) {
            rc = finished_visit(&h, "120101199001019999", false, "badvisit");
        } else if (strcmp(step, "denied") == 0) {
            rc = finished_visit(&h, "DENY-000000000001", true, "denied");
        } else if (strcmp(step, "run") == 0) {
            const char *day =
                i + 1 < argc && argv[i + 1][0] != '-' && g_ascii_isdigit(argv[i + 1][0]) ? argv[++i]
                                                                                         : NULL;
            rc = tm_tianjin_run(h.tj, day);
            printf("run %d\n", rc);
        } else if (strcmp(step, "drain") == 0) {
            printf("ready\n");
            fflush(stdout);
            g_timeout_add(20, on_drain_check, &h);
            g_main_loop_run(h.loop);
        } else if (strcmp(step, "serve") == 0) {
            printf("ready\n");
            fflush(stdout);
            g_main_loop_run(h.loop);
        } else if (strcmp(step, "status") == 0) {
            print_status(&h);
        } else {
            fprintf(stderr, "tianjin_harness: unknown step %s\n", step);
            rc = TM_EINVAL;
        }
        fflush(stdout);
    }
    tm_tianjin_free(h.tj);
    tm_store_free(h.store);
    g_main_loop_unref(h.loop);
    tm_config_clear(&cfg);
    return rc < 0 ? 1 : 0;
}

/*
 * feed_harness.c - the real store and the real feed on a GMainLoop, driven
 * from the command line, for the feed's Node tests (tests/feed/, the .test.mjs files).
 * It stands in for telemed-server until the server wires the feed, and stays
 * useful to test the feed alone.
 *
 *   feed_harness [telemed config flags] -- STEP...
 *
 * Config flags are telemed-server's (--data-dir, --feed-url, --feed-secret,
 * --feed-ca, --feed-batch, --feed-backoff-base-ms, ...). Steps run in order:
 *
 *   visits N        N full visits now (checked_in, started, ended,
 *                   note_signed, rated: 5 events each)
 *   trickle N MS    one full visit every MS ms while the feed runs, N times
 *   corrupt         an outbox row whose payload is not JSON
 *   replay SEQ      a dead letter back to pending
 *   drain           run until nothing is pending and nothing trickles
 *   serve           run until killed
 *   status          print the status and dead letters
 *
 * Output lines: "visit <id>", "ready", "status <json>", "dead <json>".
 * Thread: one, the main loop.
 */
#include "harness_config.h"
#include "telemed/common.h"
#include "telemed/config.h"
#include "telemed/feed.h"
#include "telemed/log.h"
#include "telemed/store.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct harness {
    tm_store *store;
    tm_feed *feed;
    GMainLoop *loop;
    int trickle_left;
} harness;

/* A row no server writes (a bad repair by hand), through a connection of
 * its own on the database file, as an operator's sqlite3 shell would. */
static int insert_by_hand(const char *db_path, const char *sql)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open(db_path, &db);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(db, 5000);
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    }
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : TM_EIO;
}

static int full_visit(harness *h, int i)
{
    static int seq;
    tm_visit v;
    memset(&v, 0, sizeof(v));
    snprintf(v.patient_id, sizeof(v.patient_id), "pat-%d-%d", (int)getpid(), ++seq);
    snprintf(v.dept_id, sizeof(v.dept_id), "cardio");
    snprintf(v.kind, sizeof(v.kind), "follow_up");
    int64_t t = tm_now_ms();
    v.checkin_ms = t;
    int rc;
    if ((rc = tm_store_visit_checkin(h->store, &v, "harness")) < 0 ||
        (rc = tm_store_visit_offer(h->store, v.id, "doc-1", t + 1)) < 0 ||
        (rc = tm_store_visit_accept(h->store, v.id, "doc-1", "harness", t + 2)) < 0 ||
        (rc = tm_store_visit_end(h->store, v.id, "completed", "doc-1", t + 3)) < 0 ||
        (rc = tm_store_note_save(h->store, v.id, "doc-1", "note", "I10", true, t + 4)) < 0 ||
        (rc = tm_store_rating_add(h->store, v.id, v.patient_id, 1 + i % 5, NULL, t + 5)) < 0) {
        fprintf(stderr, "visit %d: %s (%s)\n", i, tm_strerror(rc), tm_store_errmsg(h->store));
        return rc;
    }
    printf("visit %s\n", v.id);
    fflush(stdout);
    tm_feed_kick(h->feed);
    return 0;
}

static gboolean on_trickle(gpointer user)
{
    harness *h = user;
    if (h->trickle_left <= 0)
        return G_SOURCE_REMOVE;
    full_visit(h, h->trickle_left--);
    return h->trickle_left > 0 ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

static gboolean on_drain_check(gpointer user)
{
    harness *h = user;
    tm_outbox_stats st;
    if (h->trickle_left == 0 && tm_outbox_stats_get(h->store, &st) == 0 && st.pending == 0) {
        g_main_loop_quit(h->loop);
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

static void print_status(harness *h)
{
    json_t *st = tm_feed_status(h->feed);
    json_t *dead = tm_feed_dead_letters(h->feed, 100);
    char *a = st ? json_dumps(st, JSON_COMPACT) : NULL;
    char *b = dead ? json_dumps(dead, JSON_COMPACT) : NULL;
    printf("status %s\ndead %s\n", a ? a : "null", b ? b : "null");
    fflush(stdout);
    free(a);
    free(b);
    json_decref(st);
    json_decref(dead);
}

int main(int argc, char **argv)
{
    tm_config cfg;
    char *err = NULL;
    int first;
    if (harness_load_config("feed_harness", argc, argv, &cfg, &first))
        return 2;

    harness h = {0};
    h.store = tm_store_open(cfg.db, cfg.hospital_id, &err);
    if (!h.store) {
        fprintf(stderr, "feed_harness: %s\n", err);
        return 1;
    }
    if (!tm_store_dept_exists(h.store, "cardio")) {
        tm_store_dept_put(h.store, "cardio", "Cardiology");
        tm_store_doctor_put(h.store, "doc-1", "Doctor One", "cardio", "LIC-0001", "attending");
    }
    h.loop = g_main_loop_new(NULL, FALSE);
    h.feed = tm_feed_new(h.store, &cfg, NULL, NULL, &err);
    if (!h.feed) {
        fprintf(stderr, "feed_harness: %s\n", err);
        return 1;
    }
    int rc = 0;
    for (int i = first; i < argc; i++) {
        const char *step = argv[i];
        if (strcmp(step, "--") == 0)
            continue;
        if (strcmp(step, "visits") == 0 && i + 1 < argc) {
            int n = atoi(argv[++i]);
            for (int k = 0; k < n && rc == 0; k++)
                rc = full_visit(&h, k);
        } else if (strcmp(step, "trickle") == 0 && i + 2 < argc) {
            h.trickle_left = atoi(argv[++i]);
            g_timeout_add((guint)atoi(argv[++i]), on_trickle, &h);
        } else if (strcmp(step, "corrupt") == 0) {
            rc = insert_by_hand(cfg.db, "INSERT INTO outbox(event_id, type, visit_id,"
                                        " occurred_at, payload) VALUES('corrupt-1',"
                                        " 'visit.ended', 'v-corrupt', 0, '{not json')");
            tm_feed_kick(h.feed);
        } else if (strcmp(step, "replay") == 0 && i + 1 < argc) {
            rc = tm_feed_replay(h.feed, atoll(argv[++i]));
            printf("replay %d\n", rc);
            rc = rc == 0 ? 0 : rc;
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
            fprintf(stderr, "feed_harness: unknown step %s\n", step);
            rc = TM_EINVAL;
        }
        if (rc < 0)
            break;
    }
    tm_feed_free(h.feed);
    tm_store_free(h.store);
    g_main_loop_unref(h.loop);
    tm_config_clear(&cfg);
    return rc < 0 ? 1 : 0;
}

/*
 * test_visit_chain.c - the hash chain over a visit's outbox events: the
 * link's bytes as docs/regulator-feed.md states them (recomputed here with
 * GLib's SHA-256, not the code's), every row the store writes linked, and
 * verification that points at a changed event, an event after a removed
 * one, and a row written around the store. A real SQLite file.
 */
#include "tm_test.h"
#include "visit_fixture.h"

#include "telemed/common.h"
#include "telemed/store.h"
#include "telemed/visit_chain.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <jansson.h>
#include <sqlite3.h>

static void add_field(GString *s, const char *bytes)
{
    g_string_append_printf(s, "%zu:%s", strlen(bytes), bytes);
}

static void test_link_bytes(void)
{
    char start[65], link[65];
    tm_chain_start("v-1", start);
    GString *b = g_string_new(NULL);
    add_field(b, "telemed-chain-v1 start");
    add_field(b, "v-1");
    char *want = g_compute_checksum_for_string(G_CHECKSUM_SHA256, b->str, (gssize)b->len);
    CHECK_STR(start, want);
    g_free(want);

    tm_chain_event ev = {"e-1", "visit.ended", "v-1", 1764072000000LL, "{\"a\":1}", 7};
    CHECK_EQ_INT(tm_chain_link(start, &ev, link), 0);
    g_string_truncate(b, 0);
    add_field(b, "telemed-chain-v1");
    add_field(b, start);
    add_field(b, "e-1");
    add_field(b, "visit.ended");
    add_field(b, "v-1");
    add_field(b, "1764072000000");
    add_field(b, "{\"a\":1}");
    want = g_compute_checksum_for_string(G_CHECKSUM_SHA256, b->str, (gssize)b->len);
    CHECK_STR(link, want);
    g_free(want);
    g_string_free(b, TRUE);

    /* Each field counts; the previous hash has one spelling. */
    char other[65];
    ev.occurred_at++;
    CHECK_EQ_INT(tm_chain_link(start, &ev, other), 0);
    CHECK(strcmp(other, link) != 0);
    char upper[65];
    snprintf(upper, sizeof(upper), "%s", start);
    for (char *p = upper; *p; p++)
        *p = g_ascii_toupper(*p);
    CHECK_EQ_INT(tm_chain_link(upper, &ev, other), TM_EINVAL);
    CHECK_EQ_INT(tm_chain_link("abc", &ev, other), TM_EINVAL);
}

static char *dir, *path;

/* A visit of five events: checked in, started, ended, note signed, rated. */
static void full_visit(tm_store *s, tm_visit *v)
{
    int64_t t = 1764072000000LL;
    fixture_ended_visit(s, v, "terminate_and_refer", t);
    CHECK_EQ_INT(tm_store_note_save(s, v->id, "doc-1", "note", "I10", true, t + 61000), 0);
    CHECK_EQ_INT(tm_store_rating_add(s, v->id, "pat-1", 4, NULL, t + 62000), 0);
}

static json_t *problems_of(tm_store *s, const char *visit_id, json_t **report)
{
    *report = tm_store_visit_chain(s, visit_id);
    CHECK(*report != NULL);
    return json_object_get(*report, "problems");
}

static void test_store_chain(void)
{
    dir = g_dir_make_tmp("tm-chain-XXXXXX", NULL);
    path = g_build_filename(dir, "telemed.db", NULL);
    tm_store *s = fixture_open_store(path);
    CHECK_EQ_INT(tm_store_dept_put(s, "cardio", "Cardiology"), 0);
    CHECK_EQ_INT(tm_store_doctor_put(s, "doc-1", "Dr A", "cardio", "LIC-1", NULL), 0);
    tm_visit v, w;
    full_visit(s, &v);
    full_visit(s, &w);

    json_t *r = NULL;
    json_t *p = problems_of(s, v.id, &r);
    CHECK_EQ_INT(json_array_size(p), 0);
    CHECK(json_is_true(json_object_get(r, "ok")));
    CHECK_EQ_INT(json_integer_value(json_object_get(r, "events")), 5);
    CHECK_EQ_INT(json_integer_value(json_object_get(r, "chained")), 5);
    CHECK_EQ_INT(strlen(json_string_value(json_object_get(r, "head"))), 64);
    char head[65];
    snprintf(head, sizeof(head), "%s", json_string_value(json_object_get(r, "head")));
    json_decref(r);
    tm_store_free(s);

    /* A changed payload is found at that event, and only there. */
    char *sql = g_strdup_printf(
        "UPDATE outbox SET payload = replace(payload, 'terminate_and_refer', 'completed')"
        " WHERE visit_id = '%s' AND type = 'visit.ended'",
        v.id);
    fixture_raw_exec(path, sql);
    g_free(sql);
    s = fixture_open_store(path);
    p = problems_of(s, v.id, &r);
    CHECK_EQ_INT(json_array_size(p), 1);
    CHECK_STR(json_string_value(json_object_get(json_array_get(p, 0), "type")), "visit.ended");
    CHECK(json_is_false(json_object_get(r, "ok")));
    CHECK_STR(json_string_value(json_object_get(r, "head")), head); /* stored, not recomputed */
    json_decref(r);
    /* The other visit is untouched. */
    p = problems_of(s, w.id, &r);
    CHECK_EQ_INT(json_array_size(p), 0);
    json_decref(r);
    tm_store_free(s);

    /* A removed event breaks the chain at the next one. */
    sql = g_strdup_printf("DELETE FROM outbox WHERE visit_id = '%s' AND type = 'visit.started'",
                          w.id);
    fixture_raw_exec(path, sql);
    g_free(sql);
    s = fixture_open_store(path);
    p = problems_of(s, w.id, &r);
    CHECK_EQ_INT(json_array_size(p), 1);
    CHECK_STR(json_string_value(json_object_get(json_array_get(p, 0), "type")), "visit.ended");
    json_decref(r);
    tm_store_free(s);

    /* A row written around the store (an operator's shell) has no link,
     * and the store's next event links past it to the last chained one. */
    s = fixture_open_store(path);
    tm_visit x;
    memset(&x, 0, sizeof(x));
    snprintf(x.patient_id, sizeof(x.patient_id), "pat-2");
    snprintf(x.dept_id, sizeof(x.dept_id), "cardio");
    snprintf(x.kind, sizeof(x.kind), "follow_up");
    x.checkin_ms = 1764072000000LL;
    CHECK_EQ_INT(tm_store_visit_checkin(s, &x, "test"), 0);
    tm_store_free(s);
    sql = g_strdup_printf("INSERT INTO outbox(event_id, type, visit_id, occurred_at, payload)"
                          " VALUES('by-hand-1', 'visit.rated', '%s', 1, '{}')",
                          x.id);
    fixture_raw_exec(path, sql);
    g_free(sql);
    s = fixture_open_store(path);
    CHECK_EQ_INT(tm_store_visit_offer(s, x.id, "doc-1", x.checkin_ms + 1000), 0);
    CHECK_EQ_INT(tm_store_visit_accept(s, x.id, "doc-1", "test", x.checkin_ms + 2000), 0);
    p = problems_of(s, x.id, &r);
    CHECK_EQ_INT(json_integer_value(json_object_get(r, "events")), 3);
    CHECK_EQ_INT(json_array_size(p), 1);
    CHECK_STR(json_string_value(json_object_get(json_array_get(p, 0), "event_id")), "by-hand-1");
    CHECK_STR(json_string_value(json_object_get(json_array_get(p, 0), "problem")),
              "no chain hash after the chain began");
    json_decref(r);
    tm_store_free(s);

    static const char *const suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < TM_ARRAY_LEN(suffixes); i++) {
        char *f = g_strconcat(path, suffixes[i], NULL);
        g_unlink(f);
        g_free(f);
    }
    g_rmdir(dir);
    g_free(path);
    g_free(dir);
}

int main(void)
{
    test_link_bytes();
    test_store_chain();
    printf("test_visit_chain: %d checks passed\n", tm_test_checks);
    return 0;
}

/*
 * test_visit_seal.c - the seal over a finished visit record: keys made and
 * refused, signatures that the openssl command line (not our code) accepts
 * for ECDSA P-256 and SM2, the note hash's bytes recomputed with GLib, the
 * sealing rule in a real SQLite file, and the end-to-end check naming a
 * changed note, a changed event whose chain hashes were rewritten to match,
 * a seal from another key, and one changed byte of a plain and of an
 * encrypted recording file.
 */
#include "tm_test.h"
#include "visit_fixture.h"

#include "telemed/common.h"
#include "telemed/rec_crypt.h"
#include "telemed/record_seal.h"
#include "telemed/store.h"
#include "telemed/visit_chain.h"
#include "telemed/visit_seal.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <jansson.h>
#include <sqlite3.h>
#include <sys/stat.h>

static char *dir, *db_path;

static char *in_dir(const char *name)
{
    return g_build_filename(dir, name, NULL);
}

static tm_seal_key *new_key(const char *name, tm_seal_alg alg)
{
    char *path = in_dir(name), *err = NULL;
    bool created = false;
    tm_seal_key *k = tm_seal_key_load(path, alg, true, &created, &err);
    if (!k)
        fprintf(stderr, "key: %s\n", err);
    CHECK(k && created);
    struct stat st;
    CHECK_EQ_INT(stat(path, &st), 0);
    CHECK_EQ_INT(st.st_mode & 0777, 0600);
    g_free(path);
    return k;
}

static void write_file(const char *path, const void *data, size_t len)
{
    CHECK(g_file_set_contents(path, data, (gssize)len, NULL));
}

/* The openssl command line judges our signature. */
static int openssl_verifies(const tm_seal_key *k, const char *msg)
{
    char *pub = in_dir("pub.pem"), *sigf = in_dir("sig.der"), *msgf = in_dir("msg");
    char *pem = tm_seal_key_public_pem(k);
    char *sig_b64 = tm_seal_sign(k, msg, strlen(msg));
    CHECK(pem && sig_b64);
    gsize sig_len = 0;
    guchar *sig = g_base64_decode(sig_b64, &sig_len);
    write_file(pub, pem, strlen(pem));
    write_file(sigf, sig, sig_len);
    write_file(msgf, msg, strlen(msg));
    char *cmd =
        tm_seal_key_alg(k) == TM_SEAL_SM2
            ? g_strdup_printf("openssl pkeyutl -verify -rawin -digest sm3 -pubin -inkey %s"
                              " -pkeyopt distid:1234567812345678 -in %s -sigfile %s",
                              pub, msgf, sigf)
            : g_strdup_printf("openssl dgst -sha256 -verify %s -signature %s %s", pub, sigf, msgf);
    int status = -1;
    gchar *out = NULL, *errs = NULL;
    CHECK(g_spawn_command_line_sync(cmd, &out, &errs, &status, NULL));
    int ok = g_spawn_check_wait_status(status, NULL) ? 1 : 0;
    g_free(out);
    g_free(errs);
    g_free(cmd);
    g_free(sig);
    g_free(sig_b64);
    g_free(pem);
    g_free(pub);
    g_free(sigf);
    g_free(msgf);
    return ok;
}

static void test_keys_and_signatures(void)
{
    static const tm_seal_alg algs[] = {TM_SEAL_ECDSA_P256, TM_SEAL_SM2};
    for (size_t i = 0; i < TM_ARRAY_LEN(algs); i++) {
        char name[32];
        snprintf(name, sizeof(name), "key-%zu.pem", i);
        tm_seal_key *k = new_key(name, algs[i]);
        CHECK_EQ_INT(strlen(tm_seal_key_id(k)), 64);
        const char *msg = "{\"visit_id\":\"v-1\"}";
        char *sig = tm_seal_sign(k, msg, strlen(msg));
        CHECK(sig != NULL);
        CHECK_EQ_INT(tm_seal_verify(k, msg, strlen(msg), sig), 0);
        CHECK_EQ_INT(tm_seal_verify(k, "{\"visit_id\":\"v-2\"}", strlen(msg), sig), TM_EAUTH);
        CHECK_EQ_INT(tm_seal_verify(k, msg, strlen(msg), "AAAA"), TM_EAUTH);
        CHECK_EQ_INT(tm_seal_verify(k, msg, strlen(msg), ""), TM_EAUTH);
        CHECK(openssl_verifies(k, msg));

        /* Loaded again: the same key, not a new one. */
        char *path = in_dir(name), *err = NULL;
        bool created = true;
        tm_seal_key *again = tm_seal_key_load(path, algs[i], true, &created, &err);
        CHECK(again && !created);
        CHECK_STR(tm_seal_key_id(again), tm_seal_key_id(k));
        CHECK_EQ_INT(tm_seal_verify(again, msg, strlen(msg), sig), 0);
        tm_seal_key_free(again);

        /* The other algorithm's key is refused, naming both. */
        tm_seal_alg other = algs[i] == TM_SEAL_SM2 ? TM_SEAL_ECDSA_P256 : TM_SEAL_SM2;
        CHECK(tm_seal_key_load(path, other, true, NULL, &err) == NULL);
        CHECK(strstr(err, tm_seal_alg_name(algs[i])) && strstr(err, tm_seal_alg_name(other)));
        g_free(err);
        g_free(path);
        g_free(sig);
        tm_seal_key_free(k);
    }

    /* A missing key is not made when it may not be, and the message says where. */
    char *missing = in_dir("missing.pem"), *err = NULL;
    CHECK(tm_seal_key_load(missing, TM_SEAL_ECDSA_P256, false, NULL, &err) == NULL);
    CHECK(strstr(err, missing) != NULL);
    CHECK(!g_file_test(missing, G_FILE_TEST_EXISTS));
    g_free(err);
    write_file(missing, "not a key", 9);
    CHECK(tm_seal_key_load(missing, TM_SEAL_ECDSA_P256, true, NULL, &err) == NULL);
    CHECK(strstr(err, "not a PEM private key") != NULL);
    g_free(err);
    g_free(missing);

    tm_seal_alg a;
    CHECK_EQ_INT(tm_seal_alg_parse("sm2", &a), 0);
    CHECK_EQ_INT(a, TM_SEAL_SM2);
    CHECK_EQ_INT(tm_seal_alg_parse("rsa", &a), TM_EINVAL);
}

static void test_note_hash_bytes(void)
{
    char got[65];
    tm_seal_note_hash("v-1", "doc-1", "the text", NULL, got);
    const char *want_in = "15:telemed-note-v13:v-15:doc-18:the text0:";
    char *want = g_compute_checksum_for_string(G_CHECKSUM_SHA256, want_in, -1);
    CHECK_STR(got, want);
    g_free(want);
}

/* ---- the store and the check ------------------------------------------ */

static const int64_t T0 = 1764072000000LL;

static bool due(tm_store *s, const char *id, int64_t now_ms)
{
    char ids[16][64];
    size_t n = 0;
    CHECK_EQ_INT(tm_store_seal_due(s, now_ms, 3600 * 1000, ids, 16, &n), 0);
    for (size_t i = 0; i < n; i++)
        if (strcmp(ids[i], id) == 0)
            return true;
    return false;
}

static json_t *verify(tm_store *s, const char *id, const tm_seal_key *k, const uint8_t *rec_key)
{
    int rc = -1;
    json_t *r = tm_record_verify(s, id, k, rec_key, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK(r != NULL);
    return r;
}

/* The details of the report's differences of part, joined. */
static char *differences(json_t *report, const char *part)
{
    GString *out = g_string_new(NULL);
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(report, "differences"), i, d)
    {
        if (strcmp(json_string_value(json_object_get(d, "part")), part) == 0)
            g_string_append_printf(out, "%s\n", json_string_value(json_object_get(d, "detail")));
    }
    return g_string_free(out, FALSE);
}

static int count_differences(json_t *report)
{
    return (int)json_array_size(json_object_get(report, "differences"));
}

/* A recording of n bytes at path: plain, or through the encrypting writer. */
static void record(tm_store *s, const char *visit_id, const char *path, const uint8_t *key)
{
    char rec_id[TM_RECORDING_ID_LEN], file_sha[65], plain_sha[65];
    static char data[200000];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (char)(i * 7);
    CHECK_EQ_INT(tm_recording_start(s, visit_id, path, "matroska", key != NULL, T0 + 3000, rec_id),
                 0);
    if (key) {
        char *err = NULL;
        tm_rec_writer *w = tm_rec_writer_open(path, key, &err);
        CHECK(w != NULL);
        CHECK_EQ_INT(tm_rec_writer_write(w, data, sizeof(data)), 0);
        CHECK_EQ_INT(tm_rec_writer_close(w, plain_sha), 0);
        CHECK_EQ_INT(tm_recording_set_plain_sha256(s, rec_id, plain_sha), 0);
    } else {
        write_file(path, data, sizeof(data));
    }
    gchar *bytes = NULL;
    gsize len = 0;
    CHECK(g_file_get_contents(path, &bytes, &len, NULL));
    char *sha = g_compute_checksum_for_data(G_CHECKSUM_SHA256, (const guchar *)bytes, len);
    snprintf(file_sha, sizeof(file_sha), "%s", sha);
    CHECK_EQ_INT(tm_recording_finish(s, rec_id, (int64_t)len, 50000, file_sha, 0, T0 + 61000), 0);
    g_free(sha);
    g_free(bytes);
}

static void flip_byte(const char *path, long at)
{
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    CHECK_EQ_INT(fseek(f, at, SEEK_SET), 0);
    int c = fgetc(f);
    CHECK_EQ_INT(fseek(f, at, SEEK_SET), 0);
    fputc(c ^ 1, f);
    fclose(f);
}

static char *sign_cb(const char *statement, size_t len, void *user)
{
    return tm_seal_sign(user, statement, len);
}

static void seal(tm_store *s, const char *id, const tm_seal_key *k, int64_t now)
{
    CHECK_EQ_INT(tm_store_visit_seal(s, id, tm_seal_alg_name(tm_seal_key_alg(k)), tm_seal_key_id(k),
                                     sign_cb, (void *)k, now),
                 0);
}

static void test_sealing_rule(void)
{
    tm_store *s = fixture_open_store(db_path);
    tm_seal_key *k = new_key("rule.pem", TM_SEAL_ECDSA_P256);
    tm_visit v, w, live;
    fixture_ended_visit(s, &v, "completed", T0);
    fixture_ended_visit(s, &w, "completed", T0);
    /* No note: due only an hour (seal_after here) after the end. */
    CHECK(!due(s, v.id, T0 + 120000));
    CHECK(due(s, v.id, T0 + 60000 + 3600 * 1000));
    /* A signed note makes it due at once. */
    CHECK_EQ_INT(tm_store_note_save(s, v.id, "doc-1", "draft", NULL, false, T0 + 61000), 0);
    CHECK(!due(s, v.id, T0 + 62000));
    CHECK_EQ_INT(tm_store_note_save(s, v.id, "doc-1", "final", "I10", true, T0 + 62000), 0);
    CHECK(due(s, v.id, T0 + 62000));
    /* A recording still being written holds it back until seal_after. */
    char rec_id[TM_RECORDING_ID_LEN];
    char *p = in_dir("rule.mkv");
    CHECK_EQ_INT(tm_store_note_save(s, w.id, "doc-1", "n", NULL, true, T0 + 61000), 0);
    CHECK_EQ_INT(tm_recording_start(s, w.id, p, "matroska", false, T0 + 3000, rec_id), 0);
    CHECK(!due(s, w.id, T0 + 62000));
    CHECK(due(s, w.id, T0 + 60000 + 3600 * 1000));
    CHECK_EQ_INT(tm_recording_fail(s, rec_id, "test", 0, T0 + 63000), 0);
    CHECK(due(s, w.id, T0 + 63000));
    /* A row left "recording" is closed by the seal, so nothing rewrites it. */
    tm_visit y;
    fixture_ended_visit(s, &y, "completed", T0);
    char *q = in_dir("stuck.mkv");
    CHECK_EQ_INT(tm_recording_start(s, y.id, q, "matroska", false, T0 + 3000, rec_id), 0);
    seal(s, y.id, k, T0 + 60000 + 3600 * 1000);
    json_t *row = tm_recording_get(s, rec_id);
    CHECK_STR(json_string_value(json_object_get(row, "state")), "failed");
    CHECK_STR(json_string_value(json_object_get(row, "failure")),
              "not finished when the record was sealed");
    json_decref(row);
    CHECK_EQ_INT(tm_recording_recover(s, T0 + 70000000, NULL), 0);
    json_t *yr = verify(s, y.id, k, NULL);
    CHECK(json_is_true(json_object_get(yr, "ok")));
    json_decref(yr);
    g_free(q);
    /* A live visit never is; a cancelled one is at once. */
    memset(&live, 0, sizeof(live));
    snprintf(live.patient_id, sizeof(live.patient_id), "pat-2");
    snprintf(live.dept_id, sizeof(live.dept_id), "cardio");
    snprintf(live.kind, sizeof(live.kind), "follow_up");
    live.checkin_ms = T0;
    CHECK_EQ_INT(tm_store_visit_checkin(s, &live, "test"), 0);
    CHECK(!due(s, live.id, T0 + 365LL * 86400 * 1000));
    CHECK_EQ_INT(tm_store_visit_end(s, live.id, "patient_left", "pat-2", T0 + 5000), 0);
    CHECK(due(s, live.id, T0 + 5000));

    /* Sealed: not due again, sealed once, the note is final. */
    seal(s, v.id, k, T0 + 70000);
    CHECK(!due(s, v.id, T0 + 80000));
    CHECK_EQ_INT(
        tm_store_visit_seal(s, v.id, "ecdsa-p256", tm_seal_key_id(k), sign_cb, k, T0 + 80000),
        TM_ECONFLICT);
    CHECK_EQ_INT(tm_store_note_save(s, v.id, "doc-1", "rewritten", NULL, true, T0 + 81000),
                 TM_ECONFLICT);
    int64_t count = 0;
    CHECK_EQ_INT(tm_store_seal_count(s, &count), 0);
    CHECK_EQ_INT(count, 2);
    CHECK_EQ_INT(tm_store_visit_seal(s, live.id, "ecdsa-p256", "k", sign_cb, k, T0), 0);
    /* A live visit cannot be sealed. */
    tm_visit x;
    memset(&x, 0, sizeof(x));
    snprintf(x.patient_id, sizeof(x.patient_id), "pat-3");
    snprintf(x.dept_id, sizeof(x.dept_id), "cardio");
    snprintf(x.kind, sizeof(x.kind), "follow_up");
    x.checkin_ms = T0;
    CHECK_EQ_INT(tm_store_visit_checkin(s, &x, "test"), 0);
    CHECK_EQ_INT(tm_store_visit_seal(s, x.id, "ecdsa-p256", "k", sign_cb, k, T0), TM_ECONFLICT);

    /* The seal is in the feed, on the chain, with the statement as signed. */
    json_t *sealed = tm_store_visit_seal_get(s, v.id);
    CHECK(sealed != NULL);
    const char *statement = json_string_value(json_object_get(sealed, "statement"));
    CHECK_EQ_INT(tm_seal_verify(k, statement, strlen(statement),
                                json_string_value(json_object_get(sealed, "signature"))),
                 0);
    tm_outbox_event *ev = NULL;
    size_t n = 0;
    CHECK_EQ_INT(tm_outbox_next_batch(s, T0 + 100000, 100, &ev, &n), 0);
    bool found = false;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(ev[i].type, "visit.sealed") != 0 || strcmp(ev[i].visit_id, v.id) != 0)
            continue;
        json_t *data = json_loads(ev[i].payload, 0, NULL);
        json_t *sl = json_object_get(data, "seal");
        CHECK_STR(json_string_value(json_object_get(sl, "statement")), statement);
        CHECK_STR(json_string_value(json_object_get(sl, "key_id")), tm_seal_key_id(k));
        CHECK_STR(json_string_value(json_object_get(sl, "algorithm")), "ecdsa-p256");
        json_decref(data);
        found = true;
    }
    CHECK(found);
    tm_outbox_events_free(ev, n);
    json_decref(sealed);

    json_t *r = verify(s, v.id, k, NULL);
    CHECK(json_is_true(json_object_get(r, "ok")));
    CHECK(json_is_true(json_object_get(r, "sealed")));
    CHECK_STR(json_string_value(json_object_get(json_object_get(r, "seal"), "signature")), "valid");
    json_decref(r);
    g_free(p);
    tm_seal_key_free(k);
    tm_store_free(s);
}

static void test_verify_names_changes(void)
{
    tm_store *s = fixture_open_store(db_path);
    tm_seal_key *k = new_key("verify.pem", TM_SEAL_SM2);
    uint8_t rec_key[32];
    for (int i = 0; i < 32; i++)
        rec_key[i] = (uint8_t)(i * 13 + 1);
    tm_visit v;
    fixture_ended_visit(s, &v, "completed", T0);
    char *plain = in_dir("plain.mkv"), *enc = in_dir("enc.mkv.enc");
    record(s, v.id, plain, NULL);
    record(s, v.id, enc, rec_key);
    CHECK_EQ_INT(
        tm_store_note_save(s, v.id, "doc-1", "history and advice", "I10", true, T0 + 62000), 0);
    seal(s, v.id, k, T0 + 70000);
    CHECK_EQ_INT(tm_store_rating_add(s, v.id, "pat-1", 5, NULL, T0 + 71000), 0);

    json_t *r = verify(s, v.id, k, rec_key);
    if (count_differences(r))
        json_dumpf(r, stderr, JSON_INDENT(2));
    CHECK(json_is_true(json_object_get(r, "ok")));
    CHECK_EQ_INT(json_integer_value(json_object_get(r, "events_after_seal")),
                 2); /* sealed, rated */
    CHECK_EQ_INT(json_array_size(json_object_get(r, "recordings")), 2);
    json_decref(r);
    /* Without the recording key the plaintext is said to be unchecked. */
    r = verify(s, v.id, k, NULL);
    CHECK(json_is_true(json_object_get(r, "ok")));
    CHECK_EQ_INT(json_array_size(json_object_get(r, "unchecked")), 1);
    json_decref(r);
    tm_store_free(s);

    /* The note's text changed in the database. */
    char *sql = g_strdup_printf("UPDATE notes SET body = 'history and other advice'"
                                " WHERE visit_id = '%s'",
                                v.id);
    fixture_raw_exec(db_path, sql);
    g_free(sql);
    s = fixture_open_store(db_path);
    r = verify(s, v.id, k, rec_key);
    CHECK(json_is_false(json_object_get(r, "ok")));
    CHECK_EQ_INT(count_differences(r), 1);
    char *d = differences(r, "note");
    CHECK(strstr(d, "the signed note's text or diagnosis code changed since the seal") != NULL);
    g_free(d);
    json_decref(r);
    tm_store_free(s);
    sql =
        g_strdup_printf("UPDATE notes SET body = 'history and advice' WHERE visit_id = '%s'", v.id);
    fixture_raw_exec(db_path, sql);
    g_free(sql);

    /* An event changed and every chain hash rewritten to match: the chain
     * alone passes, the seal's head does not. */
    sql = g_strdup_printf("UPDATE outbox SET payload = replace(payload, 'completed',"
                          " 'terminate_and_refer') WHERE visit_id = '%s' AND type = 'visit.ended'",
                          v.id);
    fixture_raw_exec(db_path, sql);
    g_free(sql);
    s = fixture_open_store(db_path);
    json_t *chain = tm_store_visit_chain(s, v.id);
    size_t problems = json_array_size(json_object_get(chain, "problems"));
    CHECK(problems >= 1);
    json_decref(chain);
    tm_store_free(s);
    /* Rewrite the stored hashes from the changed content. */
    sqlite3 *db = NULL;
    CHECK_EQ_INT(sqlite3_open(db_path, &db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    CHECK_EQ_INT(sqlite3_prepare_v2(db,
                                    "SELECT seq, event_id, type, visit_id, occurred_at, payload"
                                    " FROM outbox WHERE visit_id = ?1 ORDER BY seq",
                                    -1, &st, NULL),
                 SQLITE_OK);
    sqlite3_bind_text(st, 1, v.id, -1, SQLITE_STATIC);
    char prev[65], link[65];
    tm_chain_start(v.id, prev);
    GString *updates = g_string_new("BEGIN;");
    while (sqlite3_step(st) == SQLITE_ROW) {
        tm_chain_event ev = {
            (const char *)sqlite3_column_text(st, 1), (const char *)sqlite3_column_text(st, 2),
            (const char *)sqlite3_column_text(st, 3), sqlite3_column_int64(st, 4),
            (const char *)sqlite3_column_text(st, 5), (size_t)sqlite3_column_bytes(st, 5)};
        CHECK_EQ_INT(tm_chain_link(prev, &ev, link), 0);
        g_string_append_printf(updates, "UPDATE outbox SET chain_hash = '%s' WHERE seq = %lld;",
                               link, (long long)sqlite3_column_int64(st, 0));
        memcpy(prev, link, sizeof(prev));
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    g_string_append(updates, "COMMIT;");
    fixture_raw_exec(db_path, updates->str);
    g_string_free(updates, TRUE);
    s = fixture_open_store(db_path);
    r = verify(s, v.id, k, rec_key);
    CHECK(json_is_false(json_object_get(r, "ok")));
    CHECK(json_is_true(json_object_get(json_object_get(r, "chain"), "ok")));
    d = differences(r, "chain");
    CHECK(strstr(d, "the chain head recomputed from the events' content") != NULL);
    g_free(d);
    json_decref(r);

    /* Verified with another key: said so, not passed. */
    tm_seal_key *other = new_key("other.pem", TM_SEAL_SM2);
    r = verify(s, v.id, other, rec_key);
    CHECK_STR(json_string_value(json_object_get(json_object_get(r, "seal"), "signature")),
              "other key");
    json_decref(r);
    tm_seal_key_free(other);
    tm_store_free(s);

    /* One byte of each recording file: named with its path. */
    flip_byte(plain, 1000);
    flip_byte(enc, 100000);
    s = fixture_open_store(db_path);
    r = verify(s, v.id, k, rec_key);
    d = differences(r, "recording");
    char *want_plain = g_strdup_printf("the file %s hashes to", plain);
    char *want_enc = g_strdup_printf("the encrypted file %s fails authentication", enc);
    CHECK(strstr(d, want_plain) != NULL);
    CHECK(strstr(d, want_enc) != NULL);
    g_free(want_plain);
    g_free(want_enc);
    g_free(d);
    json_decref(r);

    /* The seal's statement changed: its signature no longer matches. */
    tm_store_free(s);
    sql = g_strdup_printf("UPDATE visit_seals SET statement = replace(statement, '\"completed\"',"
                          " '\"terminate_and_refer\"') WHERE visit_id = '%s'",
                          v.id);
    fixture_raw_exec(db_path, sql);
    g_free(sql);
    s = fixture_open_store(db_path);
    r = verify(s, v.id, k, rec_key);
    d = differences(r, "seal");
    CHECK(strstr(d, "the seal's signature does not match its statement") != NULL);
    g_free(d);
    json_decref(r);

    /* The seal row deleted: the marks it left say it was there. */
    tm_store_free(s);
    sql = g_strdup_printf("DELETE FROM visit_seals WHERE visit_id = '%s'", v.id);
    fixture_raw_exec(db_path, sql);
    g_free(sql);
    s = fixture_open_store(db_path);
    r = verify(s, v.id, k, rec_key);
    CHECK(json_is_false(json_object_get(r, "sealed")));
    d = differences(r, "seal");
    CHECK(strstr(d, "the visit was sealed") && strstr(d, "but its seal is gone"));
    g_free(d);
    json_decref(r);

    int rc = 0;
    CHECK(tm_record_verify(s, "no-such-visit", k, NULL, &rc) == NULL);
    CHECK_EQ_INT(rc, TM_ENOTFOUND);
    tm_store_free(s);
    tm_seal_key_free(k);
    g_free(plain);
    g_free(enc);
}

int main(void)
{
    dir = g_dir_make_tmp("tm-seal-XXXXXX", NULL);
    db_path = in_dir("telemed.db");
    tm_store *s = fixture_open_store(db_path);
    CHECK_EQ_INT(tm_store_dept_put(s, "cardio", "Cardiology"), 0);
    CHECK_EQ_INT(tm_store_doctor_put(s, "doc-1", "Dr A", "cardio", "LIC-1", NULL), 0);
    tm_store_free(s);
    RUN(test_keys_and_signatures);
    RUN(test_note_hash_bytes);
    RUN(test_sealing_rule);
    RUN(test_verify_names_changes);
    char *cmd = g_strdup_printf("rm -rf %s", dir);
    CHECK(g_spawn_command_line_sync(cmd, NULL, NULL, NULL, NULL));
    g_free(cmd);
    g_free(db_path);
    g_free(dir);
    printf("%d checks\n", tm_test_checks);
    return 0;
}

/*
 * record_seal.c - the sealer and the end-to-end check of a visit record
 * (include/telemed/record_seal.h).
 *
 * The check trusts nothing it reads: the statement's signature is checked
 * with the key this server holds (not one stored beside the seal), the
 * statement is built again from the rows and compared field by field, and
 * the files are hashed again. Each difference names the part, the row and
 * both values, so an operator learns what was changed, not only that
 * something was.
 *
 * Control loop thread, but for the hashing of the files
 * (tm_record_check_files), which touches only the check's own copies and
 * the files, so that it can run on a worker while the loop goes on.
 */
#include "telemed/record_seal.h"
#include "telemed/common.h"
#include "telemed/log.h"
#include "telemed/rec_crypt.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define SWEEP_MAX 32

struct tm_sealer {
    tm_store *store;
    const tm_seal_key *key;
    int64_t seal_after_ms;
    GSource *timer;
};

static char *sign_statement(const char *statement, size_t len, void *user)
{
    return tm_seal_sign(user, statement, len);
}

/* Whether visit_id bears a seal now: after a failed seal, one another node
 * made while this one was sealing (both found the visit due; the database
 * let one win). */
static bool sealed_elsewhere(tm_store *store, const char *visit_id)
{
    json_t *seal = tm_store_visit_seal_get(store, visit_id);
    json_decref(seal);
    return seal != NULL;
}

int tm_sealer_run(tm_sealer *sl, int64_t now_ms)
{
    char ids[SWEEP_MAX][64];
    size_t n = 0;
    int rc = tm_store_seal_due(sl->store, now_ms, sl->seal_after_ms, ids, SWEEP_MAX, &n);
    if (rc < 0)
        return rc;
    int sealed = 0;
    const char *alg = tm_seal_alg_name(tm_seal_key_alg(sl->key));
    for (size_t i = 0; i < n; i++) {
        rc = tm_store_visit_seal(sl->store, ids[i], alg, tm_seal_key_id(sl->key), sign_statement,
                                 (void *)sl->key, now_ms);
        if (rc == 0) {
            sealed++;
            tm_info("visit.sealed", "visit=%s alg=%s", ids[i], alg);
        } else if (sealed_elsewhere(sl->store, ids[i])) {
            tm_info("visit.sealed_elsewhere", "visit=%s", ids[i]);
        } else {
            tm_error("visit.seal_failed", "visit=%s err=%s why=\"%s\"", ids[i], tm_strerror(rc),
                     tm_store_errmsg(sl->store));
            return rc; /* the store is failing: the next pass tries again */
        }
    }
    return sealed;
}

static gboolean on_sweep(gpointer data)
{
    tm_sealer_run(data, tm_now_ms());
    return G_SOURCE_CONTINUE;
}

tm_sealer *tm_sealer_new(tm_store *store, const tm_seal_key *key, int seal_after_s,
                         GMainContext *ctx)
{
    tm_sealer *sl = g_new0(tm_sealer, 1);
    sl->store = store;
    sl->key = key;
    sl->seal_after_ms = (int64_t)seal_after_s * 1000;
    sl->timer = g_timeout_source_new_seconds(1);
    g_source_set_callback(sl->timer, on_sweep, sl, NULL);
    g_source_attach(sl->timer, ctx);
    return sl;
}

void tm_sealer_free(tm_sealer *sl)
{
    if (!sl)
        return;
    g_source_destroy(sl->timer);
    g_source_unref(sl->timer);
    g_free(sl);
}

/* ---- the check ------------------------------------------------------ */

typedef struct check {
    tm_store *store;
    json_t *differences;
    json_t *unchecked;
} check;

static void differ(check *c, const char *part, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void differ(check *c, const char *part, const char *id, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *detail = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    json_array_append_new(c->differences,
                          json_pack("{s:s, s:s?, s:s}", "part", part, "id", id, "detail", detail));
    g_free(detail);
}

static char *show(json_t *v)
{
    if (!v)
        return g_strdup("absent");
    char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_SORT_KEYS);
    char *out = g_strdup(t ? t : "?");
    free(t);
    return out;
}

/* Each member of sealed against now, by name. */
static void compare_members(check *c, const char *part, const char *id, const char *what,
                            json_t *sealed, json_t *now)
{
    const char *key;
    json_t *value;
    json_object_foreach(sealed, key, value)
    {
        json_t *cur = json_object_get(now, key);
        if (cur && json_equal(value, cur))
            continue;
        char *a = show(value), *b = show(cur);
        differ(c, part, id, "%s %s: sealed %s, now %s", what, key, a, b);
        g_free(a);
        g_free(b);
    }
}

static void compare_chain(check *c, const char *visit_id, json_t *sealed, json_t *now)
{
    int64_t se = json_integer_value(json_object_get(sealed, "events"));
    int64_t ne = json_integer_value(json_object_get(now, "events"));
    if (se != ne)
        differ(c, "chain", visit_id,
               "the seal covers %lld events up to seq %lld; %lld of them are there now: events "
               "were removed or added",
               (long long)se, (long long)json_integer_value(json_object_get(sealed, "last_seq")),
               (long long)ne);
    json_t *sh = json_object_get(sealed, "head"), *nh = json_object_get(now, "head");
    if (!json_equal(sh, nh)) {
        char *a = show(sh), *b = show(nh);
        differ(c, "chain", visit_id,
               "the chain head recomputed from the events' content is %s, the seal signed %s: an "
               "event up to the seal was changed",
               b, a);
        g_free(a);
        g_free(b);
    }
}

static void compare_note(check *c, const char *visit_id, json_t *sealed, json_t *now)
{
    if (json_is_null(sealed) && json_is_null(now))
        return;
    if (json_is_null(now)) {
        differ(c, "note", visit_id, "the seal covers a signed note; there is none now");
        return;
    }
    if (json_is_null(sealed)) {
        differ(c, "note", visit_id, "a signed note is there now that the seal does not cover");
        return;
    }
    const char *a = json_string_value(json_object_get(sealed, "sha256"));
    const char *b = json_string_value(json_object_get(now, "sha256"));
    if (!a || !b || strcmp(a, b) != 0)
        differ(c, "note", visit_id,
               "the signed note's text or diagnosis code changed since the seal (sealed sha256 "
               "%s, now %s)",
               a ? a : "none", b ? b : "none");
    json_t *rest_sealed = json_deep_copy(sealed), *rest_now = json_deep_copy(now);
    json_object_del(rest_sealed, "sha256");
    json_object_del(rest_now, "sha256");
    compare_members(c, "note", visit_id, "note", rest_sealed, rest_now);
    json_decref(rest_sealed);
    json_decref(rest_now);
}

static json_t *find_by_id(json_t *list, const char *id)
{
    size_t i;
    json_t *r;
    json_array_foreach(list, i, r)
    {
        const char *rid = json_string_value(json_object_get(r, "id"));
        if (rid && id && strcmp(rid, id) == 0)
            return r;
    }
    return NULL;
}

/* A recording deleted by the retention policy is the policy at work, not a
 * change to the record; its row says which policy. */
static bool deleted_by_policy(json_t *now)
{
    const char *state = json_string_value(json_object_get(now, "state"));
    return state && strcmp(state, "deleted") == 0;
}

static void compare_recordings(check *c, json_t *sealed, json_t *now)
{
    size_t i;
    json_t *r;
    json_array_foreach(sealed, i, r)
    {
        const char *id = json_string_value(json_object_get(r, "id"));
        json_t *cur = find_by_id(now, id);
        if (!cur)
            differ(c, "recording", id, "the seal covers this recording; its row is gone");
        else if (!deleted_by_policy(cur))
            compare_members(c, "recording", id, "recording", r, cur);
    }
    json_array_foreach(now, i, r)
    {
        const char *id = json_string_value(json_object_get(r, "id"));
        if (!find_by_id(sealed, id))
            differ(c, "recording", id, "a recording row is there now that the seal does not cover");
    }
}

/* SHA-256 of the decrypted stream, read through the reader. On an
 * authentication failure *bad_at is the plaintext offset of the chunk. */
static int hash_plaintext(const char *path, const uint8_t key[32], char out[65], char **why,
                          uint64_t *bad_at)
{
    tm_rec_reader *rd = tm_rec_reader_open(path, key, why);
    if (!rd)
        return TM_EINVAL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    TM_ASSERT(md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1);
    unsigned char *buf = g_malloc(TM_REC_CRYPT_CHUNK_MAX);
    uint64_t off = 0, size = tm_rec_reader_size(rd);
    int rc = 0;
    while (off < size) {
        int64_t n = tm_rec_reader_pread(rd, buf, TM_REC_CRYPT_CHUNK_MAX, off);
        if (n <= 0) {
            rc = n == 0 ? TM_EIO : (int)n;
            *bad_at = off;
            break;
        }
        EVP_DigestUpdate(md, buf, (size_t)n);
        off += (uint64_t)n;
    }
    g_free(buf);
    unsigned char d[32];
    EVP_DigestFinal_ex(md, d, NULL);
    EVP_MD_CTX_free(md);
    tm_rec_reader_free(rd);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
    return rc;
}

static const char *str(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* One file the check hashes: what the store says it should be (read on the
 * control loop) and what the file is (hashed wherever files() runs). */
typedef struct file_job {
    bool rendition; /* a review copy: reported, never a difference */
    char *id, *path, *state, *want, *plain;
    const char *note; /* nothing to hash: "deleted by policy", "no file to check" */
    bool encrypted;
    /* results */
    int rc;
    char got[65];
    int plain_rc; /* 1: not hashed */
    char plain_got[65];
    char *plain_why;
    uint64_t bad_at;
} file_job;

static void job_free(gpointer data)
{
    file_job *j = data;
    g_free(j->id);
    g_free(j->path);
    g_free(j->state);
    g_free(j->want);
    g_free(j->plain);
    g_free(j->plain_why);
    g_free(j);
}

/* One recording's job against the hashes expected (the sealed ones when
 * the visit is sealed, else its row's). */
static file_job *recording_job(tm_store *s, json_t *expect)
{
    file_job *j = g_new0(file_job, 1);
    json_t *row = tm_recording_get(s, str(expect, "id"));
    j->id = g_strdup(str(expect, "id"));
    j->state = g_strdup(str(row, "state"));
    j->path = g_strdup(str(row, "path"));
    j->want = g_strdup(str(expect, "sha256"));
    if (!row || !j->state || !j->path || !j->want || strcmp(j->state, "deleted") == 0)
        j->note =
            j->state && strcmp(j->state, "deleted") == 0 ? "deleted by policy" : "no file to check";
    j->encrypted = json_is_true(json_object_get(expect, "encrypted"));
    j->plain = g_strdup(str(expect, "plain_sha256"));
    j->plain_rc = 1;
    json_decref(row);
    return j;
}

/* The review copies (review.h) are derived from the recordings and not
 * sealed: their files are hashed against their rows and reported, but a
 * difference there does not make the record fail. */
static void rendition_jobs(tm_store *s, const char *visit_id, GPtrArray *jobs)
{
    json_t *rec = tm_store_visit_record(s, visit_id);
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(rec, "renditions"), i, r)
    {
        const char *state = str(r, "state"), *path = str(r, "path"), *want = str(r, "sha256");
        if (!state || strcmp(state, "complete") != 0 || !path || !want)
            continue;
        file_job *j = g_new0(file_job, 1);
        j->rendition = true;
        j->id = g_strdup(str(r, "id"));
        j->path = g_strdup(path);
        j->want = g_strdup(want);
        j->plain_rc = 1;
        g_ptr_array_add(jobs, j);
    }
    json_decref(rec);
}

/* Hashes one job's file, and a recording's plaintext when a key is given. */
static void hash_job(file_job *j, const uint8_t *rec_key)
{
    if (j->note)
        return;
    int64_t size = 0;
    j->rc = tm_sha256_file(j->path, &size, j->got);
    if (j->rc < 0 || j->rendition || !j->encrypted || !j->plain || !rec_key)
        return;
    j->plain_rc = hash_plaintext(j->path, rec_key, j->plain_got, &j->plain_why, &j->bad_at);
}

/* What a recording's job found, as the report's entry and differences. */
static json_t *recording_result(check *c, const file_job *j, bool have_key)
{
    json_t *out = json_pack("{s:s?, s:s?, s:s?}", "id", j->id, "path", j->path, "state", j->state);
    const char *id = j->id;
    if (j->note) {
        json_object_set_new(out, "file", json_string(j->note));
        return out;
    }
    if (j->rc < 0) {
        differ(c, "recording", id, "the file %s cannot be read: %s", j->path,
               j->rc == TM_ENOTFOUND ? "it is missing" : tm_strerror(j->rc));
        return out;
    }
    json_object_set_new(out, "file_sha256", json_string(j->got));
    if (strcmp(j->got, j->want) != 0)
        differ(c, "recording", id, "the file %s hashes to %s; the record says %s", j->path, j->got,
               j->want);
    if (!j->encrypted || !j->plain)
        return out;
    if (!have_key) {
        json_array_append_new(c->unchecked,
                              json_sprintf("recording %s: its plaintext (no recording key)", id));
    } else if (j->plain_rc == TM_EAUTH) {
        differ(c, "recording", id,
               "the encrypted file %s fails authentication in the chunk at plaintext "
               "offset %llu: its bytes were changed (or the key is not the one it was "
               "written with)",
               j->path, (unsigned long long)j->bad_at);
    } else if (j->plain_rc < 0) {
        differ(c, "recording", id, "the encrypted file %s cannot be read: %s", j->path,
               j->plain_why ? j->plain_why : tm_strerror(j->plain_rc));
    } else {
        json_object_set_new(out, "plain_sha256", json_string(j->plain_got));
        if (strcmp(j->plain_got, j->plain) != 0)
            differ(c, "recording", id,
                   "the decrypted stream of %s hashes to %s; the record says %s", j->path,
                   j->plain_got, j->plain);
    }
    return out;
}

static json_t *rendition_result(const file_job *j)
{
    return json_pack("{s:s?, s:s, s:s?, s:b, s:b}", "id", j->id, "path", j->path, "file_sha256",
                     j->rc == 0 ? j->got : NULL, "matches_record",
                     j->rc == 0 && strcmp(j->got, j->want) == 0, "sealed", 0);
}

/* The seal itself and the statement it signed against the rows now. */
static json_t *check_seal(check *c, const char *visit_id, json_t *seal, const tm_seal_key *key,
                          json_t **statement_out)
{
    const char *text = str(seal, "statement"), *key_id = str(seal, "key_id");
    const char *signature = "valid";
    *statement_out = NULL;
    if (!key_id || strcmp(key_id, tm_seal_key_id(key)) != 0) {
        signature = "other key";
        differ(c, "seal", visit_id,
               "sealed with key %s; this server's key is %s, so the signature cannot be checked",
               key_id ? key_id : "none", tm_seal_key_id(key));
    } else if (!text || tm_seal_verify(key, text, strlen(text), str(seal, "signature")) < 0) {
        signature = "invalid";
        differ(c, "seal", visit_id,
               "the seal's signature does not match its statement: the stored statement or "
               "signature was changed");
    }
    json_t *sealed = text ? json_loads(text, 0, NULL) : NULL;
    if (!json_is_object(sealed))
        differ(c, "seal", visit_id, "the seal's statement is not readable JSON");
    else
        *statement_out = sealed;
    char at[40];
    tm_rfc3339(json_integer_value(json_object_get(seal, "sealed_at")), at, sizeof(at));
    return json_pack("{s:s, s:O, s:O, s:s}", "sealed_at", at, "algorithm",
                     json_object_get(seal, "algorithm"), "key_id", json_object_get(seal, "key_id"),
                     "signature", signature);
}

static void compare_statement(check *c, const char *visit_id, json_t *sealed, json_t *now)
{
    json_t *top = json_pack("{s:O, s:O, s:O}", "format", json_object_get(sealed, "format"),
                            "hospital_id", json_object_get(sealed, "hospital_id"), "visit_id",
                            json_object_get(sealed, "visit_id"));
    compare_members(c, "seal", visit_id, "statement", top, now);
    json_decref(top);
    compare_members(c, "visit", visit_id, "visit", json_object_get(sealed, "visit"),
                    json_object_get(now, "visit"));
    compare_chain(c, visit_id, json_object_get(sealed, "chain"), json_object_get(now, "chain"));
    compare_note(c, visit_id, json_object_get(sealed, "note"), json_object_get(now, "note"));
    compare_recordings(c, json_object_get(sealed, "recordings"),
                       json_object_get(now, "recordings"));
}

static void add_chain_problems(check *c, json_t *chain)
{
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(chain, "problems"), i, p)
        differ(c, "chain", str(p, "event_id"), "event seq %lld (%s): %s",
               (long long)json_integer_value(json_object_get(p, "seq")), str(p, "type"),
               str(p, "problem"));
}

/* A check between its store part and its report: what the store said, and
 * the files still to hash. */
struct tm_record_check {
    char *visit_id;
    check c;
    json_t *chain, *seal_report;
    bool sealed;
    int64_t after;
    GPtrArray *jobs; /* of file_job: the recordings, then the renditions */
    bool have_key;
    uint8_t rec_key[32];
};

void tm_record_check_free(tm_record_check *k)
{
    if (!k)
        return;
    g_free(k->visit_id);
    json_decref(k->c.differences);
    json_decref(k->c.unchecked);
    json_decref(k->chain);
    json_decref(k->seal_report);
    if (k->jobs)
        g_ptr_array_unref(k->jobs);
    OPENSSL_cleanse(k->rec_key, sizeof(k->rec_key));
    g_free(k);
}

tm_record_check *tm_record_check_begin(tm_store *s, const char *visit_id, const tm_seal_key *key,
                                       const uint8_t *rec_key, int *rc)
{
    tm_visit v;
    *rc = tm_store_visit_get(s, visit_id, &v);
    if (*rc < 0)
        return NULL;
    tm_record_check *k = g_new0(tm_record_check, 1);
    k->visit_id = g_strdup(visit_id);
    k->c = (check){s, json_array(), json_array()};
    k->seal_report = json_null();
    k->jobs = g_ptr_array_new_with_free_func(job_free);
    if (rec_key) {
        k->have_key = true;
        memcpy(k->rec_key, rec_key, sizeof(k->rec_key));
    }
    k->chain = tm_store_visit_chain(s, visit_id);
    json_t *seal = tm_store_visit_seal_get(s, visit_id);
    json_t *now = NULL, *sealed = NULL;
    if (!k->chain) {
        *rc = TM_EIO;
        goto done;
    }
    add_chain_problems(&k->c, k->chain);
    k->sealed = seal != NULL;
    if (seal) {
        json_decref(k->seal_report);
        k->seal_report = check_seal(&k->c, visit_id, seal, key, &sealed);
        int64_t last_seq =
            json_integer_value(json_object_get(json_object_get(sealed, "chain"), "last_seq"));
        now = tm_store_seal_statement(s, visit_id, last_seq,
                                      json_integer_value(json_object_get(seal, "sealed_at")));
        if (!now) {
            *rc = TM_EIO;
            goto done;
        }
        if (sealed)
            compare_statement(&k->c, visit_id, sealed, now);
        k->after = json_integer_value(json_object_get(k->chain, "events")) -
                   json_integer_value(json_object_get(json_object_get(now, "chain"), "events"));
    } else if (!(now = tm_store_seal_statement(s, visit_id, 0, 0))) {
        *rc = TM_EIO;
        goto done;
    } else if (tm_store_visit_seal_marked(s, visit_id, NULL)) {
        differ(&k->c, "seal", visit_id,
               "the visit was sealed (its sealed mark or visit.sealed event is there) but its "
               "seal is gone");
    }
    /* Files are held to the sealed hashes when there is a seal: a row's
     * hash rewritten to match a changed file is then caught twice. */
    json_t *expect = json_object_get(sealed ? sealed : now, "recordings");
    size_t i;
    json_t *r;
    json_array_foreach(expect, i, r) g_ptr_array_add(k->jobs, recording_job(s, r));
    rendition_jobs(s, visit_id, k->jobs);
    k->c.store = NULL; /* the rest needs no store: the files may be hashed elsewhere */
done:
    json_decref(seal);
    json_decref(now);
    json_decref(sealed);
    if (*rc < 0) {
        tm_record_check_free(k);
        return NULL;
    }
    return k;
}

void tm_record_check_files(tm_record_check *k)
{
    for (guint i = 0; i < k->jobs->len; i++)
        hash_job(g_ptr_array_index(k->jobs, i), k->have_key ? k->rec_key : NULL);
}

json_t *tm_record_check_finish(tm_record_check *k, int *rc)
{
    json_t *files = json_array(), *renditions = json_array();
    for (guint i = 0; i < k->jobs->len; i++) {
        const file_job *j = g_ptr_array_index(k->jobs, i);
        if (j->rendition)
            json_array_append_new(renditions, rendition_result(j));
        else
            json_array_append_new(files, recording_result(&k->c, j, k->have_key));
    }
    json_object_del(k->chain, "problems");
    json_t *report = json_pack(
        "{s:s, s:b, s:b, s:O, s:O, s:I, s:o, s:o, s:O, s:O}", "visit_id", k->visit_id, "ok",
        json_array_size(k->c.differences) == 0, "sealed", k->sealed, "seal", k->seal_report,
        "chain", k->chain, "events_after_seal", (json_int_t)k->after, "recordings", files,
        "renditions", renditions, "unchecked", k->c.unchecked, "differences", k->c.differences);
    *rc = report ? 0 : TM_ENOMEM;
    tm_record_check_free(k);
    return report;
}

json_t *tm_record_verify(tm_store *s, const char *visit_id, const tm_seal_key *key,
                         const uint8_t *rec_key, int *rc)
{
    tm_record_check *k = tm_record_check_begin(s, visit_id, key, rec_key, rc);
    if (!k)
        return NULL;
    tm_record_check_files(k);
    return tm_record_check_finish(k, rc);
}

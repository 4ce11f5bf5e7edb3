/*
 * store_seal.c - the SQLite side of the visit seal (store.h, "the visit
 * seal"): which visits are due, the statement a seal signs, built from the
 * rows as they are, and the seal written with its visit.sealed event in one
 * transaction. The key and the signing stay outside the store (a callback),
 * so the store never holds the hospital's private key.
 *
 * Control loop thread only, on the store's connection (store_internal.h).
 */
#include "store_internal.h"
#include "telemed/common.h"
#include "telemed/visit_chain.h"
#include "telemed/visit_seal.h"

#include <glib.h>
#include <string.h>

#define SEAL_FORMAT "telemed-seal-v1"

int tm_store_seal_due(tm_store *s, int64_t now_ms, int64_t seal_after_ms, char (*ids)[64],
                      size_t max, size_t *n)
{
    *n = 0;
    /* Only visits over and unsealed are looked at: the first two terms are
     * the partial index's own, named because without statistics SQLite
     * picks visits_by_state and walks every visit ever ended. */
    tm__stmt *st =
        tm__store_query(s,
                        "SELECT v.id FROM visits v INDEXED BY visits_unsealed"
                        " WHERE v.sealed_at IS NULL AND v.state IN ('ended','cancelled')"
                        "   AND (v.ended_at <= ?1"
                        "        OR (NOT EXISTS(SELECT 1 FROM recordings r"
                        "                        WHERE r.visit_id = v.id AND r.state = 'recording')"
                        "            AND (v.state = 'cancelled'"
                        "                 OR EXISTS(SELECT 1 FROM notes n"
                        "                            WHERE n.visit_id = v.id AND n.signed = 1))))"
                        " ORDER BY v.ended_at LIMIT ?2",
                        "II", now_ms - seal_after_ms, (int64_t)max);
    if (!st)
        return TM_EIO;
    int rc;
    while (*n < max && (rc = tm__store_step(s, st)) == 1)
        tm__store_col_text(st, 0, ids[(*n)++], 64);
    tm__stmt_reset(st);
    return rc < 0 ? rc : 0;
}

static json_t *col_time(tm__stmt *st, int i)
{
    return tm__col_is_null(st, i) ? json_null() : json_integer(tm__col_int64(st, i));
}

static json_t *col_text(tm__stmt *st, int i)
{
    const char *t = tm__col_text(st, i);
    return t ? json_string(t) : json_null();
}

static json_t *visit_part(tm_store *s, const char *visit_id)
{
    tm__stmt *st = tm__store_query(s,
                                   "SELECT state, patient_id, doctor_id, checkin_at,"
                                   " accepted_at, ended_at, end_reason, ended_by"
                                   " FROM visits WHERE id = ?1",
                                   "s", visit_id);
    json_t *v = NULL;
    if (st && tm__store_step(s, st) == 1)
        v = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "state", col_text(st, 0),
                      "patient_id", col_text(st, 1), "doctor_id", col_text(st, 2), "checkin_at",
                      col_time(st, 3), "accepted_at", col_time(st, 4), "ended_at", col_time(st, 5),
                      "end_reason", col_text(st, 6), "ended_by", col_text(st, 7));
    if (st)
        tm__stmt_reset(st);
    return v;
}

/* The chain recomputed from each row's content, linked to the computed hash
 * before it (not the stored one): rows changed and their hashes rewritten
 * to match still give another head. */
static json_t *chain_part(tm_store *s, const char *visit_id, int64_t upto_seq)
{
    tm__stmt *st = tm__store_query(
        s,
        "SELECT seq, event_id, type, visit_id, occurred_at, payload, chain_hash IS NOT NULL"
        "  FROM outbox WHERE visit_id = ?1 AND (?2 = 0 OR seq <= ?2) ORDER BY seq",
        "sI", visit_id, upto_seq);
    if (!st)
        return NULL;
    char head[TM_CHAIN_HEX_LEN + 1], link[TM_CHAIN_HEX_LEN + 1];
    tm_chain_start(visit_id, head);
    int64_t events = 0, last_seq = 0;
    bool chained = false;
    int rc;
    while ((rc = tm__store_step(s, st)) == 1) {
        events++;
        last_seq = tm__col_int64(st, 0);
        if (!tm__col_int(st, 6))
            continue;
        tm_chain_event ev = {
            .event_id = tm__col_text(st, 1),
            .type = tm__col_text(st, 2),
            .visit_id = tm__col_text(st, 3),
            .occurred_at = tm__col_int64(st, 4),
            .payload = (const char *)tm__col_blob(st, 5),
            .payload_len = (size_t)tm__col_bytes(st, 5),
        };
        TM_ASSERT(tm_chain_link(head, &ev, link) == 0);
        memcpy(head, link, sizeof(head));
        chained = true;
    }
    tm__stmt_reset(st);
    if (rc < 0)
        return NULL;
    return json_pack("{s:I, s:I, s:s?}", "events", (json_int_t)events, "last_seq",
                     (json_int_t)last_seq, "head", chained ? head : NULL);
}

/* The newest signed note, as its hash; null when none is signed. */
static int note_part(tm_store *s, const char *visit_id, json_t **out)
{
    *out = NULL;
    tm__stmt *st = tm__store_query(s,
                                   "SELECT doctor_id, body, diagnosis_code, updated_at"
                                   "  FROM notes WHERE visit_id = ?1 AND signed = 1"
                                   " ORDER BY updated_at DESC, id DESC LIMIT 1",
                                   "s", visit_id);
    if (!st)
        return TM_EIO;
    int rc = tm__store_step(s, st);
    if (rc == 1) {
        char hash[TM_SEAL_HEX_LEN + 1];
        const char *doctor = tm__col_text(st, 0);
        tm_seal_note_hash(visit_id, doctor, tm__col_text(st, 1), tm__col_text(st, 2), hash);
        *out = json_pack("{s:s?, s:I, s:s}", "doctor_id", doctor, "signed_at",
                         (json_int_t)tm__col_int64(st, 3), "sha256", hash);
    }
    tm__stmt_reset(st);
    if (rc < 0)
        return rc;
    if (!*out)
        *out = json_null();
    return 0;
}

static json_t *recordings_part(tm_store *s, const char *visit_id)
{
    tm__stmt *st = tm__store_query(s,
                                   "SELECT id, state, encrypted, size_bytes, sha256,"
                                   " plain_sha256 FROM recordings WHERE visit_id = ?1"
                                   " ORDER BY started_at, id",
                                   "s", visit_id);
    if (!st)
        return NULL;
    json_t *list = json_array();
    int rc;
    while ((rc = tm__store_step(s, st)) == 1)
        json_array_append_new(list, json_pack("{s:o, s:o, s:b, s:o, s:o, s:o}", "id",
                                              col_text(st, 0), "state", col_text(st, 1),
                                              "encrypted", tm__col_int(st, 2) != 0, "size_bytes",
                                              col_time(st, 3), "sha256", col_text(st, 4),
                                              "plain_sha256", col_text(st, 5)));
    tm__stmt_reset(st);
    if (rc < 0) {
        json_decref(list);
        return NULL;
    }
    return list;
}

json_t *tm_store_seal_statement(tm_store *s, const char *visit_id, int64_t upto_seq,
                                int64_t sealed_at)
{
    json_t *visit = visit_part(s, visit_id);
    if (!visit)
        return NULL;
    json_t *chain = chain_part(s, visit_id, upto_seq);
    json_t *note = NULL;
    int rc = note_part(s, visit_id, &note);
    json_t *recordings = recordings_part(s, visit_id);
    if (!chain || rc < 0 || !recordings) {
        json_decref(visit);
        json_decref(chain);
        json_decref(note);
        json_decref(recordings);
        return NULL;
    }
    return json_pack("{s:s, s:s, s:s, s:I, s:o, s:o, s:o, s:o}", "format", SEAL_FORMAT,
                     "hospital_id", tm_store_hospital_id(s), "visit_id", visit_id, "sealed_at",
                     (json_int_t)sealed_at, "visit", visit, "chain", chain, "note", note,
                     "recordings", recordings);
}

static int seal_in_transaction(tm_store *s, const char *visit_id, const char *algorithm,
                               const char *key_id, tm_store_sign_fn sign, void *user,
                               int64_t now_ms)
{
    tm_visit v;
    int rc = tm_store_visit_get(s, visit_id, &v);
    if (rc < 0)
        return rc;
    if (strcmp(v.state, "ended") != 0 && strcmp(v.state, "cancelled") != 0)
        return tm__store_refuse(s, TM_ECONFLICT, "the visit is not over");
    /* A recording still open this late never got a file or is stuck: it is
     * closed as failed, so nothing (a restart's recovery, a late finish)
     * rewrites the sealed row afterwards. */
    rc = tm__store_run(s,
                       "UPDATE recordings SET state = 'failed', finished_at = ?2,"
                       " failure = 'not finished when the record was sealed'"
                       " WHERE visit_id = ?1 AND state = 'recording'",
                       "sI", visit_id, now_ms);
    if (rc < 0)
        return rc;
    json_t *statement = tm_store_seal_statement(s, visit_id, 0, now_ms);
    if (!statement)
        return TM_EIO;
    char *text = json_dumps(statement, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(statement);
    char *signature = text ? sign(text, strlen(text), user) : NULL;
    json_t *seal = NULL;
    if (!signature) {
        rc = tm__store_refuse(s, TM_EIO, "the seal could not be signed");
        goto done;
    }
    rc = tm__store_run(s,
                       "INSERT INTO visit_seals(visit_id, sealed_at, algorithm, key_id,"
                       " statement, signature) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                       "sIssbs", visit_id, now_ms, algorithm, key_id, text, signature);
    if (rc == TM_ECONFLICT)
        rc = tm__store_refuse(s, TM_ECONFLICT, "the visit is sealed already");
    if (rc == 0)
        rc = tm__store_run_one(s, "UPDATE visits SET sealed_at = ?2 WHERE id = ?1", "sI", visit_id,
                               now_ms);
    if (rc == 0) {
        char at[40];
        seal = json_pack("{s:s, s:s, s:s, s:s, s:s}", "sealed_at",
                         tm_rfc3339(now_ms, at, sizeof(at)), "algorithm", algorithm, "key_id",
                         key_id, "statement", text, "signature", signature);
        rc = tm__store_outbox_append_with(s, "visit.sealed", visit_id, now_ms, "seal", seal);
    }
done:
    json_decref(seal);
    g_free(signature);
    free(text);
    return rc;
}

int tm_store_visit_seal(tm_store *s, const char *visit_id, const char *algorithm,
                        const char *key_id, tm_store_sign_fn sign, void *user, int64_t now_ms)
{
    int rc = tm__store_begin(s);
    if (rc < 0)
        return rc;
    rc = seal_in_transaction(s, visit_id, algorithm, key_id, sign, user, now_ms);
    return tm__store_finish(s, rc);
}

json_t *tm_store_visit_seal_get(tm_store *s, const char *visit_id)
{
    tm__stmt *st = tm__store_query(s,
                                   "SELECT visit_id, sealed_at, algorithm, key_id,"
                                   " statement, signature FROM visit_seals"
                                   " WHERE visit_id = ?1",
                                   "s", visit_id);
    json_t *seal = NULL;
    if (st && tm__store_step(s, st) == 1)
        seal =
            json_pack("{s:o, s:I, s:o, s:o, s:o, s:o}", "visit_id", col_text(st, 0), "sealed_at",
                      (json_int_t)tm__col_int64(st, 1), "algorithm", col_text(st, 2), "key_id",
                      col_text(st, 3), "statement", col_text(st, 4), "signature", col_text(st, 5));
    if (st)
        tm__stmt_reset(st);
    return seal;
}

int tm_store_seal_count(tm_store *s, int64_t *count)
{
    tm__stmt *st = tm__store_query(s, "SELECT count(*) FROM visit_seals", "");
    if (!st)
        return TM_EIO;
    int rc = tm__store_step(s, st);
    if (rc == 1 && count)
        *count = tm__col_int64(st, 0);
    tm__stmt_reset(st);
    return rc == 1 ? 0 : rc < 0 ? rc : TM_EIO;
}

bool tm_store_visit_seal_marked(tm_store *s, const char *visit_id, int64_t *sealed_at)
{
    tm__stmt *st = tm__store_query(
        s,
        "SELECT (SELECT sealed_at FROM visits WHERE id = ?1),"
        "       EXISTS(SELECT 1 FROM outbox WHERE visit_id = ?1 AND type = 'visit.sealed')",
        "s", visit_id);
    bool marked = false;
    if (st && tm__store_step(s, st) == 1) {
        bool has_at = !tm__col_is_null(st, 0);
        marked = has_at || tm__col_int(st, 1);
        if (sealed_at)
            *sealed_at = has_at ? tm__col_int64(st, 0) : 0;
    }
    if (st)
        tm__stmt_reset(st);
    return marked;
}

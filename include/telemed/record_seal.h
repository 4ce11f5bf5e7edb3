/*
 * record_seal.h - the tamper-evident visit record at work: the sealer that
 * seals each visit once its record can no longer change (the rule is in
 * store.h, "the visit seal"), and the end-to-end check behind
 * `telemed-server verify-visit ID` and GET /api/v1/visits/{id}/verify.
 *
 * Control loop thread (the store's). The check reads the visit's recording
 * files whole (about a second per few hundred MB), so a caller that must
 * not block runs it in three steps: the store's part, the files on a worker
 * thread, the report back on the loop (tm_record_check_*).
 */
#ifndef TELEMED_RECORD_SEAL_H
#define TELEMED_RECORD_SEAL_H

#include "telemed/store.h"
#include "telemed/visit_seal.h"

#include <glib.h>
#include <jansson.h>
#include <stdint.h>

typedef struct tm_sealer tm_sealer;

/* Seals the visits due every second on ctx, a few dozen per pass (a
 * backlog after an upgrade is worked off pass by pass). seal_after_s is the
 * rule's wait for a note that is never signed. Borrows store and key for
 * the sealer's life. */
tm_sealer *tm_sealer_new(tm_store *store, const tm_seal_key *key, int seal_after_s,
                         GMainContext *ctx);
void tm_sealer_free(tm_sealer *sl); /* accepts NULL */
/* One pass now: the number of visits sealed, or a negative TM_E* code. A
 * visit another node sealed first (nodes sharing a database race for it)
 * is not this pass's and not a failure: logged at info. */
int tm_sealer_run(tm_sealer *sl, int64_t now_ms);

/* Checks the visit's record end to end: its event chain, its seal's
 * signature with key, the statement the seal signed against the rows now
 * (visit, chain head, note hash, recordings), and each recording file on
 * disk against its hashes (its plaintext through the decrypting reader
 * when rec_key, 32 bytes, is given; NULL leaves encrypted plaintext
 * unchecked and says so). Returns a new report {visit_id, ok, sealed,
 * seal, chain, events_after_seal, recordings, unchecked, differences:
 * [{part, id, detail}]} (docs/api.md), or NULL with *rc: TM_ENOTFOUND (no
 * such visit) or TM_EIO (the store cannot be read). */
json_t *tm_record_verify(tm_store *s, const char *visit_id, const tm_seal_key *key,
                         const uint8_t *rec_key, int *rc);

/* tm_record_verify in three steps. begin (control loop) reads and compares
 * everything in the store and lists the files to hash: NULL with *rc as
 * above. files (any one thread at a time) hashes them; it touches nothing
 * but k and the files. finish (control loop) makes the report, frees k and
 * sets *rc (0 or TM_ENOMEM). free drops a check not finished; NULL is fine. */
typedef struct tm_record_check tm_record_check;
tm_record_check *tm_record_check_begin(tm_store *s, const char *visit_id, const tm_seal_key *key,
                                       const uint8_t *rec_key, int *rc);
void tm_record_check_files(tm_record_check *k);
json_t *tm_record_check_finish(tm_record_check *k, int *rc);
void tm_record_check_free(tm_record_check *k);

#endif

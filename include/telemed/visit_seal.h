/*
 * visit_seal.h - the hospital's seal over a finished visit record: a key
 * (ECDSA P-256 by default, SM2 as an option) that signs the record's
 * statement (the chain head, the note's hash, the recordings' hashes; see
 * docs/regulator-feed.md, "The seal"), and the hash of a signed note.
 *
 * The key is a PEM private key file in the data directory, made on first
 * start (0600) like the JWT secret. Losing it does not lose records, but
 * nothing sealed with it can be checked again: back it up with the
 * database (docs/config.md).
 *
 * Pure crypto on its arguments: any thread; a key is read-only after load.
 */
#ifndef TELEMED_VISIT_SEAL_H
#define TELEMED_VISIT_SEAL_H

#include <stdbool.h>
#include <stddef.h>

#define TM_SEAL_HEX_LEN 64

typedef enum { TM_SEAL_ECDSA_P256, TM_SEAL_SM2 } tm_seal_alg;

/* "ecdsa-p256" or "sm2" into *out. 0 or TM_EINVAL. */
int tm_seal_alg_parse(const char *name, tm_seal_alg *out);
const char *tm_seal_alg_name(tm_seal_alg alg);

typedef struct tm_seal_key tm_seal_key;

/* Reads the private key at path, which must be of alg. When the file does
 * not exist and create is true, a new key of alg is written there first
 * (O_EXCL, 0600) and *created (may be NULL) is set. Returns a new key
 * (tm_seal_key_free) or NULL with *err (g_free) saying why in words: the
 * file missing, unreadable, not a key, or a key of another algorithm. */
tm_seal_key *tm_seal_key_load(const char *path, tm_seal_alg alg, bool create, bool *created,
                              char **err);
void tm_seal_key_free(tm_seal_key *k); /* accepts NULL */
tm_seal_alg tm_seal_key_alg(const tm_seal_key *k);
/* SHA-256 of the public key (DER SubjectPublicKeyInfo), lowercase hex:
 * names the key in every seal. Borrowed for the key's life. */
const char *tm_seal_key_id(const tm_seal_key *k);
/* The public key as PEM, for whoever checks seals elsewhere. New string,
 * g_free. */
char *tm_seal_key_public_pem(const tm_seal_key *k);

/* Signs msg (SHA-256 for ECDSA; SM3 with the default SM2 id
 * "1234567812345678" for SM2). Returns the DER signature in base64 (new
 * string, g_free) or NULL. */
char *tm_seal_sign(const tm_seal_key *k, const void *msg, size_t len);
/* 0 when sig_b64 is k's signature of msg, TM_EAUTH when it is not (or is
 * not a signature at all). */
int tm_seal_verify(const tm_seal_key *k, const void *msg, size_t len, const char *sig_b64);

/* The hash the seal keeps of a signed note: SHA-256 over "telemed-note-v1",
 * visit_id, doctor_id, body and diagnosis_code (NULL as ""), each as
 * "<decimal length>:<bytes>", lowercase hex into out. */
void tm_seal_note_hash(const char *visit_id, const char *doctor_id, const char *body,
                       const char *diagnosis_code, char out[TM_SEAL_HEX_LEN + 1]);

#endif

/*
 * rec_crypt.h - recordings encrypted at rest: a chunked AES-256-GCM file
 * format that can be written incrementally and read back up to the last
 * whole chunk after a crash.
 *
 * Layout (all integers big-endian):
 *
 *   header (24 bytes): "TMRECENC" | version u8 (1) | 3 zero bytes |
 *                      chunk_max u32 | nonce_prefix[8] (random per file)
 *   chunk:             word u32 (bit 31: final chunk; bits 0..30: plaintext
 *                      length, 1..chunk_max, 0 only in an empty final chunk) |
 *                      ciphertext[len] | GCM tag[16]
 *
 * Chunk i is sealed with nonce = nonce_prefix || u32(i) and additional data
 * = header || u32(i) || word, so chunks cannot be reordered, moved between
 * files or have their final flag flipped. A file without its final chunk
 * was cut short (the server was killed): every whole chunk before the cut
 * still decrypts, which is what makes a crashed encrypted recording as
 * playable as a plain one.
 *
 * A writer is used by one thread at a time (the recorder's muxer thread).
 */
#ifndef TELEMED_REC_CRYPT_H
#define TELEMED_REC_CRYPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TM_REC_CRYPT_HEADER_LEN 24
#define TM_REC_CRYPT_TAG_LEN 16
#define TM_REC_CRYPT_CHUNK_MAX (64 * 1024)

typedef struct tm_rec_writer tm_rec_writer;

/* Creates (O_EXCL, mode 0600) path and writes the header. key is copied.
 * Returns a new writer (close or abort it) or NULL with *err (g_free). */
tm_rec_writer *tm_rec_writer_open(const char *path, const uint8_t key[32], char **err);

/* Appends plaintext; seals a chunk each time TM_REC_CRYPT_CHUNK_MAX bytes
 * are buffered. Borrows data until return. 0 or TM_EIO (errno kept). */
int tm_rec_writer_write(tm_rec_writer *w, const void *data, size_t len);

/* Seals whatever is buffered as a chunk now, so that a crash after this
 * call loses none of it. No-op when nothing is buffered. 0 or TM_EIO. */
int tm_rec_writer_seal(tm_rec_writer *w);

/* Plaintext bytes accepted so far and the SHA-256 (lowercase hex, 65
 * bytes with NUL) of that plaintext stream; valid after close. */
uint64_t tm_rec_writer_plain_bytes(const tm_rec_writer *w);

/* Writes the final chunk, fsyncs, closes and frees. plain_sha256_hex (65
 * bytes, may be NULL) receives the SHA-256 of all plaintext written. 0 or
 * TM_EIO; the writer is freed either way. */
int tm_rec_writer_close(tm_rec_writer *w, char plain_sha256_hex[65]);

/* Closes without the final chunk (the file then reads as cut short) and
 * frees. Accepts NULL. */
void tm_rec_writer_abort(tm_rec_writer *w);

/* Decrypts in to out (created 0600, replaced if present). Returns 0 for a
 * complete file, 1 when the file was cut short (every whole chunk was
 * written to out), TM_EINVAL for a file that is not ours, TM_EAUTH when a
 * chunk fails authentication (wrong key or tampering; out is removed), or
 * TM_EIO. *err (g_free) says why on every nonzero return. */
int tm_rec_decrypt_file(const char *in, const char *out, const uint8_t key[32], char **err);

/* Random access to the plaintext of an encrypted recording, for serving
 * GET /api/v1/recordings/{id} with Range requests decrypted on the fly.
 * Opening reads the header and each chunk's length word (not the data), so
 * it costs one small read per chunk (about one per second of recording).
 * A cut-short file opens too, up to its last whole chunk. One thread at a
 * time per reader. */
typedef struct tm_rec_reader tm_rec_reader;

/* Returns a new reader (tm_rec_reader_free) or NULL with *err (g_free). key
 * is copied. A wrong key is only noticed by the first read. */
tm_rec_reader *tm_rec_reader_open(const char *path, const uint8_t key[32], char **err);
/* Plaintext bytes readable (the playable file's size). */
uint64_t tm_rec_reader_size(const tm_rec_reader *r);
/* Whether the file has its final chunk (false: cut short by a crash). */
bool tm_rec_reader_complete(const tm_rec_reader *r);
/* Reads up to len bytes of plaintext at offset into buf. Every chunk is
 * authenticated before any byte of it is returned. Returns the count (0 at
 * or past the end), TM_EAUTH (wrong key or altered file) or TM_EIO. */
int64_t tm_rec_reader_pread(tm_rec_reader *r, void *buf, size_t len, uint64_t offset);
void tm_rec_reader_free(tm_rec_reader *r); /* accepts NULL */

/* Parses a key given as 64 hex characters (surrounding whitespace allowed,
 * as in a key file). 0 or TM_EINVAL. */
int tm_rec_key_parse_hex(const char *text, uint8_t key[32]);

/* Reads a key file holding 64 hex characters (or exactly 32 raw bytes).
 * 0, TM_EINVAL or TM_EIO with *err (g_free). */
int tm_rec_key_load_file(const char *path, uint8_t key[32], char **err);

#endif

/*
 * sm_crypto.h - the Chinese national algorithms a provincial regulator asks
 * for: SM3 (hash, GB/T 32905) and SM4-CBC (block cipher, GB/T 32907), both
 * from OpenSSL 3. Encodings follow the Tianjin platform's SDK: SM3 as
 * uppercase hex, SM4 ciphertext as lowercase hex (docs/regulator-feed.md).
 *
 * Pure functions; any thread.
 */
#ifndef TELEMED_SM_CRYPTO_H
#define TELEMED_SM_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define TM_SM4_KEY_LEN 16

typedef enum tm_sm4_padding {
    TM_SM4_PAD_ISO7816 = 0, /* 0x80 then 0x00s (ISO/IEC 7816-4); a full block gets a new block */
    TM_SM4_PAD_PKCS7 = 1,
} tm_sm4_padding;

/* SM3 of len bytes as 64 uppercase hex digits and a NUL. Returns 0 or TM_EIO. */
int tm_sm3_hex(const void *data, size_t len, char out[65]);

/* Exactly 32 hex digits (either case) into 16 bytes. TM_EINVAL otherwise. */
int tm_sm4_key_parse(const char *hex, uint8_t out[TM_SM4_KEY_LEN]);
/* Parses "iso7816" or "pkcs7". TM_EINVAL otherwise. */
int tm_sm4_padding_parse(const char *name, tm_sm4_padding *out);

/* SM4-CBC of len bytes, padded, as lowercase hex: *hex is a new string
 * (g_free), *hex_len its length. Returns 0, TM_ENOMEM or TM_EIO. */
int tm_sm4_cbc_encrypt_hex(const uint8_t key[TM_SM4_KEY_LEN], const uint8_t iv[TM_SM4_KEY_LEN],
                           tm_sm4_padding pad, const void *plain, size_t len, char **hex,
                           size_t *hex_len);
/* The reverse: hex ciphertext (any case) to plaintext without its padding;
 * *plain is new (g_free), NUL-terminated, *len excludes the NUL. TM_EINVAL
 * for bad hex, a length that is not whole blocks, or bad padding. */
int tm_sm4_cbc_decrypt_hex(const uint8_t key[TM_SM4_KEY_LEN], const uint8_t iv[TM_SM4_KEY_LEN],
                           tm_sm4_padding pad, const char *hex, size_t hex_len, char **plain,
                           size_t *len);

#endif

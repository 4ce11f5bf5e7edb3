/*
 * sm_crypto.c - SM3 and SM4-CBC through OpenSSL 3's EVP (include/telemed/sm_crypto.h).
 *
 * Padding is done here, with EVP's own padding off: the Tianjin SDK pads
 * with ISO/IEC 7816-4, which EVP does not offer, and PKCS#7 stays available
 * as a configuration for platforms that use it.
 */
#include "telemed/sm_crypto.h"
#include "telemed/common.h"

#include <glib.h>
#include <openssl/evp.h>
#include <string.h>

#define BLOCK 16

int tm_sm3_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (EVP_Digest(data, len, md, &md_len, EVP_sm3(), NULL) != 1 || md_len != 32)
        return TM_EIO;
    static const char digits[] = "0123456789ABCDEF";
    for (unsigned i = 0; i < md_len; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 15];
    }
    out[64] = '\0';
    return 0;
}

static int hex_nibble(char c)
{
    return g_ascii_xdigit_value(c);
}

static int hex_decode(const char *hex, size_t hex_len, uint8_t *out)
{
    for (size_t i = 0; i < hex_len / 2; i++) {
        int hi = hex_nibble(hex[2 * i]), lo = hex_nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return TM_EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int tm_sm4_key_parse(const char *hex, uint8_t out[TM_SM4_KEY_LEN])
{
    if (!hex || strlen(hex) != 2 * TM_SM4_KEY_LEN)
        return TM_EINVAL;
    return hex_decode(hex, 2 * TM_SM4_KEY_LEN, out);
}

int tm_sm4_padding_parse(const char *name, tm_sm4_padding *out)
{
    if (name && strcmp(name, "iso7816") == 0)
        *out = TM_SM4_PAD_ISO7816;
    else if (name && strcmp(name, "pkcs7") == 0)
        *out = TM_SM4_PAD_PKCS7;
    else
        return TM_EINVAL;
    return 0;
}

/* Runs SM4-CBC over whole blocks, in place. */
static int sm4_cbc(const uint8_t *key, const uint8_t *iv, int enc, uint8_t *buf, size_t len)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int out_len = 0, fin_len = 0, ok = 0;
    if (c && EVP_CipherInit_ex(c, EVP_sm4_cbc(), NULL, key, iv, enc) == 1 &&
        EVP_CIPHER_CTX_set_padding(c, 0) == 1 &&
        EVP_CipherUpdate(c, buf, &out_len, buf, (int)len) == 1 &&
        EVP_CipherFinal_ex(c, buf + out_len, &fin_len) == 1)
        ok = (size_t)(out_len + fin_len) == len;
    EVP_CIPHER_CTX_free(c);
    return ok ? 0 : TM_EIO;
}

int tm_sm4_cbc_encrypt_hex(const uint8_t key[TM_SM4_KEY_LEN], const uint8_t iv[TM_SM4_KEY_LEN],
                           tm_sm4_padding pad, const void *plain, size_t len, char **hex,
                           size_t *hex_len)
{
    *hex = NULL;
    size_t padded = (len / BLOCK + 1) * BLOCK; /* both schemes always add 1..16 bytes */
    uint8_t *buf = g_try_malloc(padded);
    if (!buf)
        return TM_ENOMEM;
    memcpy(buf, plain, len);
    if (pad == TM_SM4_PAD_PKCS7) {
        memset(buf + len, (int)(padded - len), padded - len);
    } else {
        buf[len] = 0x80;
        memset(buf + len + 1, 0, padded - len - 1);
    }
    int rc = sm4_cbc(key, iv, 1, buf, padded);
    if (rc == 0) {
        static const char digits[] = "0123456789abcdef";
        char *out = g_try_malloc(2 * padded + 1);
        if (!out) {
            rc = TM_ENOMEM;
        } else {
            for (size_t i = 0; i < padded; i++) {
                out[2 * i] = digits[buf[i] >> 4];
                out[2 * i + 1] = digits[buf[i] & 15];
            }
            out[2 * padded] = '\0';
            *hex = out;
            *hex_len = 2 * padded;
        }
    }
    g_free(buf);
    return rc;
}

/* The plaintext length once the padding of the last block is checked. */
static int unpad(const uint8_t *buf, size_t len, tm_sm4_padding pad, size_t *plain_len)
{
    if (pad == TM_SM4_PAD_PKCS7) {
        uint8_t n = buf[len - 1];
        if (n == 0 || n > BLOCK)
            return TM_EINVAL;
        for (size_t i = len - n; i < len; i++)
            if (buf[i] != n)
                return TM_EINVAL;
        *plain_len = len - n;
        return 0;
    }
    size_t i = len;
    while (i > len - BLOCK && buf[i - 1] == 0)
        i--;
    if (buf[i - 1] != 0x80)
        return TM_EINVAL;
    *plain_len = i - 1;
    return 0;
}

int tm_sm4_cbc_decrypt_hex(const uint8_t key[TM_SM4_KEY_LEN], const uint8_t iv[TM_SM4_KEY_LEN],
                           tm_sm4_padding pad, const char *hex, size_t hex_len, char **plain,
                           size_t *len)
{
    *plain = NULL;
    if (hex_len == 0 || hex_len % (2 * BLOCK) != 0)
        return TM_EINVAL;
    size_t n = hex_len / 2;
    uint8_t *buf = g_try_malloc(n + 1);
    if (!buf)
        return TM_ENOMEM;
    size_t plain_len = 0;
    int rc = hex_decode(hex, hex_len, buf);
    if (rc == 0)
        rc = sm4_cbc(key, iv, 0, buf, n);
    if (rc == 0)
        rc = unpad(buf, n, pad, &plain_len);
    if (rc < 0) {
        g_free(buf);
        return rc;
    }
    buf[plain_len] = '\0';
    *plain = (char *)buf;
    *len = plain_len;
    return 0;
}

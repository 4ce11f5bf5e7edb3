/*
 * visit_chain.c - the hash chain over a visit's regulator events
 * (include/telemed/visit_chain.h).
 *
 * Fields are length-prefixed rather than joined by a separator, so no
 * choice of bytes in one field can be read as the start of the next.
 */
#include "telemed/visit_chain.h"
#include "telemed/common.h"

#include <glib.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#define DOMAIN "telemed-chain-v1"

static void to_hex(const unsigned char *md, char out[TM_CHAIN_HEX_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 15];
    }
    out[TM_CHAIN_HEX_LEN] = '\0';
}

static void add_field(EVP_MD_CTX *c, const char *bytes, size_t len)
{
    char prefix[24];
    int n = snprintf(prefix, sizeof(prefix), "%zu:", len);
    EVP_DigestUpdate(c, prefix, (size_t)n);
    if (len)
        EVP_DigestUpdate(c, bytes, len);
}

static void add_text(EVP_MD_CTX *c, const char *s)
{
    add_field(c, s ? s : "", s ? strlen(s) : 0);
}

void tm_chain_start(const char *visit_id, char out[TM_CHAIN_HEX_LEN + 1])
{
    unsigned char md[32];
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    TM_ASSERT(c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1);
    add_text(c, DOMAIN " start");
    add_text(c, visit_id);
    EVP_DigestFinal_ex(c, md, NULL);
    EVP_MD_CTX_free(c);
    to_hex(md, out);
}

int tm_chain_link(const char *prev, const tm_chain_event *ev, char out[TM_CHAIN_HEX_LEN + 1])
{
    if (!prev || strlen(prev) != TM_CHAIN_HEX_LEN)
        return TM_EINVAL;
    for (const char *p = prev; *p; p++)
        if (!g_ascii_isdigit(*p) && (*p < 'a' || *p > 'f'))
            return TM_EINVAL; /* lowercase only: one hash, one spelling */
    char when[24];
    snprintf(when, sizeof(when), "%lld", (long long)ev->occurred_at);
    unsigned char md[32];
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    TM_ASSERT(c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1);
    add_text(c, DOMAIN);
    add_text(c, prev);
    add_text(c, ev->event_id);
    add_text(c, ev->type);
    add_text(c, ev->visit_id);
    add_text(c, when);
    add_field(c, ev->payload, ev->payload ? ev->payload_len : 0);
    EVP_DigestFinal_ex(c, md, NULL);
    EVP_MD_CTX_free(c);
    to_hex(md, out);
    return 0;
}

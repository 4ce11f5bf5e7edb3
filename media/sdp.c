/*
 * sdp.c - SDP's small parts: the bounded text helpers every SDP parser here
 * uses, ICE candidates (parsed from the offer or trickled, and printed), and
 * what the answer takes from an offer (DTLS role, codec, direction).
 * sdp_offer.c parses the browser's offer, sdp_answer.c prints the answer.
 *
 * Everything read here is untrusted text from a participant: every token and
 * field has a bound and numbers are range-checked. Runs on the calling
 * thread (the control loop); reentrant.
 */
#include "sdp.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- Small text helpers ---- */

/* Copy the next space-separated token of *p into out (cap bytes incl. NUL).
 * Returns its length, 0 when none is left, -1 when it does not fit. */
int tm__sdp_next_token(const char **p, char *out, size_t cap)
{
    const char *s = *p;
    while (*s == ' ' || *s == '\t')
        s++;
    const char *b = s;
    while (*s && *s != ' ' && *s != '\t')
        s++;
    size_t n = (size_t)(s - b);
    *p = s;
    if (n >= cap)
        return -1;
    memcpy(out, b, n);
    out[n] = '\0';
    return (int)n;
}

/* Decimal without sign or spaces, <= max. */
bool tm__sdp_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

bool tm__sdp_parse_uint(const char *s, unsigned max, unsigned *out)
{
    uint64_t v;
    if (!tm__sdp_parse_u64(s, max, &v))
        return false;
    *out = (unsigned)v;
    return true;
}

bool tm__sdp_copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        return false;
    memcpy(dst, src, n + 1);
    return true;
}

/* RFC 4566 token characters: safe to echo into the answer. */
bool tm__sdp_is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c))
            continue;
        if (!strchr("!#$%&'*+-.^_`{|}~", c))
            return false;
    }
    return true;
}

/* RFC 8839 ice-char: ALPHA / DIGIT / "+" / "/". */
bool tm__sdp_is_ice_chars(const char *s, size_t min, size_t max)
{
    size_t n = strlen(s);
    if (n < min || n > max)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '+' && *s != '/')
            return false;
    return true;
}

/* ---- Candidates ---- */

int tm_sdp_parse_candidate(const char *line, tm_sdp_candidate *out)
{
    char tok[TM_SDP_ADDR_LEN + 8];
    unsigned u;
    uint64_t u64;
    if (!line || !out)
        return TM_EINVAL;
    memset(out, 0, sizeof(*out));
    if (strlen(line) > 1024)
        return TM_EINVAL;
    const char *p = line;
    if (strncmp(p, "a=", 2) == 0)
        p += 2;
    if (strncmp(p, "candidate:", 10) != 0)
        return TM_EINVAL;
    p += 10;
    /* The line may carry its CR/LF when it comes straight from an SDP. */
    char copy[1025];
    size_t n = strcspn(p, "\r\n");
    memcpy(copy, p, n);
    copy[n] = '\0';
    p = copy;

    if (tm__sdp_next_token(&p, out->foundation, sizeof(out->foundation)) <= 0 ||
        !tm__sdp_is_ice_chars(out->foundation, 1, 32))
        return TM_EINVAL;
    if (tm__sdp_next_token(&p, tok, sizeof(tok)) <= 0 || !tm__sdp_parse_uint(tok, 256, &u) || u < 1)
        return TM_EINVAL;
    out->component = u;
    if (tm__sdp_next_token(&p, tok, sizeof(tok)) <= 0)
        return TM_EINVAL;
    if (strcasecmp(tok, "udp") == 0)
        out->transport = TM_CAND_UDP;
    else if (strcasecmp(tok, "tcp") == 0)
        out->transport = TM_CAND_TCP;
    else
        return TM_EINVAL;
    if (tm__sdp_next_token(&p, tok, sizeof(tok)) <= 0 || !tm__sdp_parse_u64(tok, UINT32_MAX, &u64))
        return TM_EINVAL;
    out->priority = (uint32_t)u64;
    if (tm__sdp_next_token(&p, out->address, sizeof(out->address)) <= 0)
        return TM_EINVAL;
    for (const char *a = out->address; *a; a++)
        if (!isalnum((unsigned char)*a) && !strchr(".:-_%", *a))
            return TM_EINVAL;
    if (tm__sdp_next_token(&p, tok, sizeof(tok)) <= 0 || !tm__sdp_parse_uint(tok, 65535, &u))
        return TM_EINVAL;
    out->port = (uint16_t)u;
    if (tm__sdp_next_token(&p, tok, sizeof(tok)) <= 0 || strcmp(tok, "typ") != 0)
        return TM_EINVAL;
    if (tm__sdp_next_token(&p, tok, sizeof(tok)) <= 0)
        return TM_EINVAL;
    if (strcmp(tok, "host") == 0)
        out->type = TM_CAND_HOST;
    else if (strcmp(tok, "srflx") == 0)
        out->type = TM_CAND_SRFLX;
    else if (strcmp(tok, "prflx") == 0)
        out->type = TM_CAND_PRFLX;
    else if (strcmp(tok, "relay") == 0)
        out->type = TM_CAND_RELAY;
    else
        return TM_EINVAL;

    /* Name/value pairs; unknown extensions (generation, ufrag, network-id,
     * network-cost, ...) are skipped, but values must still be bounded. */
    char name[32], val[TM_SDP_ADDR_LEN + 8];
    int r;
    while ((r = tm__sdp_next_token(&p, name, sizeof(name))) != 0) {
        if (r < 0)
            return TM_EINVAL;
        if (tm__sdp_next_token(&p, val, sizeof(val)) <= 0)
            return TM_EINVAL;
        if (strcmp(name, "raddr") == 0) {
            if (!tm__sdp_copy_str(out->raddr, sizeof(out->raddr), val))
                return TM_EINVAL;
            for (const char *a = out->raddr; *a; a++)
                if (!isalnum((unsigned char)*a) && !strchr(".:-_%", *a))
                    return TM_EINVAL;
        } else if (strcmp(name, "rport") == 0) {
            if (!tm__sdp_parse_uint(val, 65535, &u))
                return TM_EINVAL;
            out->rport = (uint16_t)u;
        } else if (strcmp(name, "tcptype") == 0) {
            if (strcmp(val, "active") == 0)
                out->tcptype = TM_TCP_ACTIVE;
            else if (strcmp(val, "passive") == 0)
                out->tcptype = TM_TCP_PASSIVE;
            else if (strcmp(val, "so") == 0)
                out->tcptype = TM_TCP_SO;
            else
                return TM_EINVAL;
        }
    }
    return 0;
}

static const char *cand_type_str(tm_cand_type t)
{
    switch (t) {
    case TM_CAND_HOST:
        return "host";
    case TM_CAND_SRFLX:
        return "srflx";
    case TM_CAND_PRFLX:
        return "prflx";
    case TM_CAND_RELAY:
        return "relay";
    }
    return NULL;
}

int tm_sdp_format_candidate(const tm_sdp_candidate *c, char *buf, size_t len)
{
    if (!c || !buf || !cand_type_str(c->type) || !c->foundation[0] || !c->address[0])
        return TM_EINVAL;
    int w = snprintf(buf, len, "candidate:%s %u %s %" PRIu32 " %s %u typ %s", c->foundation,
                     c->component, c->transport == TM_CAND_TCP ? "tcp" : "udp", c->priority,
                     c->address, (unsigned)c->port, cand_type_str(c->type));
    if (w < 0 || (size_t)w >= len)
        return TM_ETOOBIG;
    size_t off = (size_t)w;
    if (c->raddr[0]) {
        w = snprintf(buf + off, len - off, " raddr %s rport %u", c->raddr, (unsigned)c->rport);
        if (w < 0 || (size_t)w >= len - off)
            return TM_ETOOBIG;
        off += (size_t)w;
    }
    if (c->tcptype != TM_TCP_NONE) {
        const char *t = c->tcptype == TM_TCP_ACTIVE    ? "active"
                        : c->tcptype == TM_TCP_PASSIVE ? "passive"
                                                       : "so";
        w = snprintf(buf + off, len - off, " tcptype %s", t);
        if (w < 0 || (size_t)w >= len - off)
            return TM_ETOOBIG;
        off += (size_t)w;
    }
    return (int)off;
}

tm_sdp_setup tm_sdp_answer_setup(const tm_sdp_offer *offer)
{
    return offer && offer->setup == TM_SETUP_PASSIVE ? TM_SETUP_ACTIVE : TM_SETUP_PASSIVE;
}

const tm_sdp_codec *tm_sdp_mline_codec(const tm_sdp_mline *m)
{
    return m && m->codec >= 0 && (unsigned)m->codec < m->n_codecs ? &m->codecs[m->codec] : NULL;
}

const tm_sdp_codec *tm_sdp_mline_rtx(const tm_sdp_mline *m)
{
    return m && m->rtx >= 0 && (unsigned)m->rtx < m->n_codecs ? &m->codecs[m->rtx] : NULL;
}

tm_sdp_direction tm_sdp_answer_direction(tm_sdp_direction offered, bool server_sends)
{
    switch (offered) {
    case TM_DIR_SENDRECV:
        return server_sends ? TM_DIR_SENDRECV : TM_DIR_RECVONLY;
    case TM_DIR_RECVONLY:
        return server_sends ? TM_DIR_SENDONLY : TM_DIR_INACTIVE;
    case TM_DIR_SENDONLY:
        return TM_DIR_RECVONLY;
    case TM_DIR_INACTIVE:
        break;
    }
    return TM_DIR_INACTIVE;
}

const char *tm_sdp_direction_str(tm_sdp_direction d)
{
    switch (d) {
    case TM_DIR_SENDRECV:
        return "sendrecv";
    case TM_DIR_SENDONLY:
        return "sendonly";
    case TM_DIR_RECVONLY:
        return "recvonly";
    case TM_DIR_INACTIVE:
        return "inactive";
    }
    return "inactive";
}

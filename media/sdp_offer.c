/*
 * sdp_offer.c - parse the browser's offer and choose codecs; sdp.c has the
 * text helpers and the candidates, sdp_answer.c prints the answer.
 *
 * The offer is untrusted text from a participant. It is read line by line
 * (CRLF or LF) into fixed-size fields; every line, token and field has a
 * bound, numbers are range-checked, and anything echoed back into the
 * answer (mids) must be a plain token so the answer cannot be injected into.
 * Unknown attributes are skipped; known ones that do not fit are errors with
 * the line number. Runs on the calling thread (the control loop); reentrant.
 */
#include "sdp.h"

#include <glib.h>

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- Offer parsing ---- */

typedef struct parser {
    tm_sdp_offer *o;
    tm_sdp_mline *m; /* current m-line, NULL at session level */
    /* Session-level ICE/DTLS, inherited by m-lines without their own. */
    char ufrag[TM_SDP_TOKEN_LEN];
    char pwd[TM_SDP_PWD_LEN];
    tm_sdp_fingerprint fp;
    tm_sdp_setup setup;
    int lineno;
    char *err;
} parser;

static int fail(parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(parser *ps, const char *fmt, ...)
{
    if (!ps->err) {
        char msg[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        ps->err = g_strdup(msg);
    }
    return TM_EINVAL;
}

static tm_sdp_codec *find_codec(tm_sdp_mline *m, int pt)
{
    for (unsigned i = 0; i < m->n_codecs; i++)
        if (m->codecs[i].pt == pt)
            return &m->codecs[i];
    return NULL;
}

static tm_sdp_ssrc *find_or_add_ssrc(tm_sdp_mline *m, uint32_t ssrc)
{
    for (unsigned i = 0; i < m->n_ssrcs; i++)
        if (m->ssrcs[i].ssrc == ssrc)
            return &m->ssrcs[i];
    if (m->n_ssrcs >= TM_SDP_MAX_SSRCS)
        return NULL;
    tm_sdp_ssrc *s = &m->ssrcs[m->n_ssrcs++];
    memset(s, 0, sizeof(*s));
    s->ssrc = ssrc;
    return s;
}

static int parse_mline(parser *ps, const char *v)
{
    tm_sdp_offer *o = ps->o;
    char tok[TM_SDP_TOKEN_LEN];
    unsigned port;
    if (o->n_mlines >= TM_SDP_MAX_MLINES)
        return fail(ps, "line %d: more than %d m-lines", ps->lineno, TM_SDP_MAX_MLINES);
    tm_sdp_mline *m = &o->mlines[o->n_mlines++];
    ps->m = m;
    m->codec = m->rtx = -1;
    m->remote_cname = "";
    if (tm__sdp_next_token(&v, m->media, sizeof(m->media)) <= 0)
        return fail(ps, "line %d: malformed m-line", ps->lineno);
    if (strcmp(m->media, "audio") == 0)
        m->kind = TM_MEDIA_AUDIO;
    else if (strcmp(m->media, "video") == 0)
        m->kind = TM_MEDIA_VIDEO;
    else if (strcmp(m->media, "application") == 0)
        m->kind = TM_MEDIA_APPLICATION;
    else
        m->kind = TM_MEDIA_OTHER;
    if (tm__sdp_next_token(&v, tok, sizeof(tok)) <= 0)
        return fail(ps, "line %d: malformed m-line", ps->lineno);
    char *slash = strchr(tok, '/'); /* "<port>/<count>" */
    if (slash)
        *slash = '\0';
    if (!tm__sdp_parse_uint(tok, 65535, &port))
        return fail(ps, "line %d: bad m-line port", ps->lineno);
    m->port = (uint16_t)port;
    if (tm__sdp_next_token(&v, m->proto, sizeof(m->proto)) <= 0)
        return fail(ps, "line %d: malformed m-line", ps->lineno);
    bool rtp = strstr(m->proto, "RTP/") != NULL;
    int r;
    bool first = true;
    while ((r = tm__sdp_next_token(&v, tok, sizeof(tok))) != 0) {
        if (r < 0)
            return fail(ps, "line %d: m-line format too long", ps->lineno);
        if (first) {
            memcpy(m->fmt0, tok, sizeof(m->fmt0));
            first = false;
        }
        if (!rtp)
            continue;
        unsigned pt;
        if (!tm__sdp_parse_uint(tok, 127, &pt))
            return fail(ps, "line %d: bad payload type", ps->lineno);
        if (find_codec(m, (int)pt))
            continue;
        if (m->n_codecs >= TM_SDP_MAX_CODECS)
            return fail(ps, "line %d: more than %d payload types", ps->lineno, TM_SDP_MAX_CODECS);
        tm_sdp_codec *nc = realloc(m->codecs, (m->n_codecs + 1) * sizeof(*nc));
        if (!nc)
            return TM_ENOMEM;
        m->codecs = nc;
        tm_sdp_codec *c = &m->codecs[m->n_codecs++];
        memset(c, 0, sizeof(*c));
        c->pt = (int)pt;
        c->channels = 1;
        c->apt = -1;
    }
    if (first)
        return fail(ps, "line %d: m-line without formats", ps->lineno);
    return 0;
}

static int parse_fingerprint(parser *ps, const char *v, tm_sdp_fingerprint *fp)
{
    if (tm__sdp_next_token(&v, fp->algorithm, sizeof(fp->algorithm)) <= 0 ||
        tm__sdp_next_token(&v, fp->value, sizeof(fp->value)) <= 0)
        return fail(ps, "line %d: bad fingerprint", ps->lineno);
    for (char *a = fp->algorithm; *a; a++)
        *a = (char)tolower((unsigned char)*a);
    for (const char *c = fp->value; *c; c++)
        if (!isxdigit((unsigned char)*c) && *c != ':')
            return fail(ps, "line %d: bad fingerprint", ps->lineno);
    return 0;
}

static int parse_setup(parser *ps, const char *v, tm_sdp_setup *out)
{
    if (strcmp(v, "actpass") == 0)
        *out = TM_SETUP_ACTPASS;
    else if (strcmp(v, "active") == 0)
        *out = TM_SETUP_ACTIVE;
    else if (strcmp(v, "passive") == 0)
        *out = TM_SETUP_PASSIVE;
    else
        return fail(ps, "line %d: bad setup attribute", ps->lineno);
    return 0;
}

static int parse_ice_options(tm_sdp_offer *o, const char *v)
{
    char tok[TM_SDP_TOKEN_LEN];
    int r;
    while ((r = tm__sdp_next_token(&v, tok, sizeof(tok))) != 0)
        if (r > 0 && strcmp(tok, "trickle") == 0)
            o->ice_trickle = true;
    return 0;
}

/* An attribute whose name is known at both levels. Returns 1 when handled. */
static int common_attr(parser *ps, const char *name, const char *v, int *rc)
{
    tm_sdp_mline *m = ps->m;
    *rc = 0;
    if (strcmp(name, "ice-ufrag") == 0) {
        char *dst = m ? m->ice_ufrag : ps->ufrag;
        if (!tm__sdp_copy_str(dst, TM_SDP_TOKEN_LEN, v) ||
            !tm__sdp_is_ice_chars(dst, 4, TM_SDP_TOKEN_LEN))
            *rc = fail(ps, "line %d: bad ice-ufrag", ps->lineno);
        return 1;
    }
    if (strcmp(name, "ice-pwd") == 0) {
        char *dst = m ? m->ice_pwd : ps->pwd;
        if (!tm__sdp_copy_str(dst, TM_SDP_PWD_LEN, v) || !tm__sdp_is_ice_chars(dst, 22, 256))
            *rc = fail(ps, "line %d: bad ice-pwd", ps->lineno);
        return 1;
    }
    if (strcmp(name, "ice-options") == 0) {
        *rc = parse_ice_options(ps->o, v);
        return 1;
    }
    if (strcmp(name, "fingerprint") == 0) {
        *rc = parse_fingerprint(ps, v, m ? &m->fingerprint : &ps->fp);
        return 1;
    }
    if (strcmp(name, "setup") == 0) {
        *rc = parse_setup(ps, v, m ? &m->setup : &ps->setup);
        return 1;
    }
    return 0;
}

static int session_attr(parser *ps, const char *name, const char *v)
{
    tm_sdp_offer *o = ps->o;
    if (strcmp(name, "group") == 0) {
        char tok[TM_SDP_TOKEN_LEN];
        if (tm__sdp_next_token(&v, tok, sizeof(tok)) <= 0 || strcmp(tok, "BUNDLE") != 0)
            return 0; /* LS and other groups do not matter to us */
        if (o->n_bundle)
            return fail(ps, "line %d: more than one BUNDLE group", ps->lineno);
        int r;
        while ((r = tm__sdp_next_token(&v, tok, sizeof(tok))) != 0) {
            if (r < 0 || !tm__sdp_is_token(tok))
                return fail(ps, "line %d: bad mid in BUNDLE group", ps->lineno);
            if (o->n_bundle >= TM_SDP_MAX_MLINES)
                return fail(ps, "line %d: BUNDLE group too large", ps->lineno);
            memcpy(o->bundle[o->n_bundle++], tok, sizeof(tok));
        }
        return 0;
    }
    if (strcmp(name, "ice-lite") == 0)
        o->ice_lite = true;
    return 0;
}

static tm_sdp_codec *codec_for_attr(parser *ps, const char **v, int *rc)
{
    char tok[16];
    unsigned pt;
    *rc = 0;
    if (tm__sdp_next_token(v, tok, sizeof(tok)) <= 0 || !tm__sdp_parse_uint(tok, 127, &pt)) {
        *rc = fail(ps, "line %d: bad payload type", ps->lineno);
        return NULL;
    }
    return find_codec(ps->m, (int)pt); /* NULL: not on the m= line; ignored */
}

static int add_fb(parser *ps, tm_sdp_codec *c, const char *val)
{
    for (unsigned i = 0; i < c->n_fb; i++)
        if (strcmp(c->fb[i], val) == 0)
            return 0;
    if (c->n_fb >= TM_SDP_MAX_FB)
        return 0; /* more feedback kinds than we know of; the rest do not matter */
    if (!tm__sdp_copy_str(c->fb[c->n_fb], TM_SDP_FB_LEN, val))
        return fail(ps, "line %d: rtcp-fb too long", ps->lineno);
    c->n_fb++;
    return 0;
}

/* RFC 8851 rid-id: 1*(ALPHA / DIGIT / "-" / "_"), at most 16 bytes (one header element). */
static bool is_rid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= TM_SDP_RID_LEN)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_')
            return false;
    return true;
}

/* "a=rid:<id> send|recv [pt=..;max-width=..]": the id and its direction. */
static int parse_rid(parser *ps, const char *v)
{
    tm_sdp_mline *m = ps->m;
    char id[TM_SDP_TOKEN_LEN], dir[16];
    if (tm__sdp_next_token(&v, id, sizeof id) <= 0 || !is_rid(id) ||
        tm__sdp_next_token(&v, dir, sizeof dir) <= 0 ||
        (strcmp(dir, "send") != 0 && strcmp(dir, "recv") != 0))
        return fail(ps, "line %d: bad rid", ps->lineno);
    if (m->n_rids >= TM_SDP_MAX_RIDS)
        return fail(ps, "line %d: more than %d rids", ps->lineno, TM_SDP_MAX_RIDS);
    for (unsigned i = 0; i < m->n_rids; i++)
        if (strcmp(m->rids[i].id, id) == 0)
            return fail(ps, "line %d: rid %s twice", ps->lineno, id);
    memcpy(m->rids[m->n_rids].id, id, strlen(id) + 1);
    m->rids[m->n_rids].send = dir[0] == 's';
    m->n_rids++;
    return 0;
}

/* "a=simulcast:send f;h;q [recv ...]" (RFC 8853): streams split by ';', alternatives by ','
 * (the first one is kept), '~' marks a paused stream. Only the send side matters: the
 * server takes simulcast, it never sends it. */
static int parse_simulcast(parser *ps, const char *v)
{
    tm_sdp_mline *m = ps->m;
    char dir[16], list[TM_SDP_MAX_LINE];
    int r;
    while ((r = tm__sdp_next_token(&v, dir, sizeof dir)) != 0) {
        if (r < 0 || (strcmp(dir, "send") != 0 && strcmp(dir, "recv") != 0) ||
            tm__sdp_next_token(&v, list, sizeof list) <= 0)
            return fail(ps, "line %d: bad simulcast", ps->lineno);
        if (strcmp(dir, "send") != 0)
            continue;
        if (m->n_sim_send)
            return fail(ps, "line %d: simulcast send given twice", ps->lineno);
        for (char *save = NULL, *stream = strtok_r(list, ";", &save); stream;
             stream = strtok_r(NULL, ";", &save)) {
            char *alt = stream;
            alt[strcspn(alt, ",")] = '\0';
            if (*alt == '~')
                alt++;
            if (!is_rid(alt))
                return fail(ps, "line %d: bad rid in simulcast", ps->lineno);
            if (m->n_sim_send >= TM_SDP_MAX_RIDS)
                return fail(ps, "line %d: more than %d simulcast streams", ps->lineno,
                            TM_SDP_MAX_RIDS);
            memcpy(m->sim_send[m->n_sim_send++], alt, strlen(alt) + 1);
        }
    }
    return 0;
}

static int media_attr(parser *ps, const char *name, const char *v)
{
    tm_sdp_mline *m = ps->m;
    int rc = 0;
    if (strcmp(name, "mid") == 0) {
        if (!tm__sdp_copy_str(m->mid, sizeof(m->mid), v) || !tm__sdp_is_token(m->mid))
            return fail(ps, "line %d: bad mid", ps->lineno);
    } else if (strcmp(name, "sendrecv") == 0) {
        m->direction = TM_DIR_SENDRECV;
    } else if (strcmp(name, "sendonly") == 0) {
        m->direction = TM_DIR_SENDONLY;
    } else if (strcmp(name, "recvonly") == 0) {
        m->direction = TM_DIR_RECVONLY;
    } else if (strcmp(name, "inactive") == 0) {
        m->direction = TM_DIR_INACTIVE;
    } else if (strcmp(name, "rtcp-mux") == 0) {
        m->rtcp_mux = true;
    } else if (strcmp(name, "rtcp-rsize") == 0) {
        m->rtcp_rsize = true;
    } else if (strcmp(name, "bundle-only") == 0) {
        m->bundle_only = true;
    } else if (strcmp(name, "msid") == 0) {
        if (!tm__sdp_copy_str(m->msid, sizeof(m->msid), v))
            return fail(ps, "line %d: msid too long", ps->lineno);
    } else if (strcmp(name, "rtpmap") == 0) {
        tm_sdp_codec *c = codec_for_attr(ps, &v, &rc);
        if (!c)
            return rc;
        char enc[128];
        if (tm__sdp_next_token(&v, enc, sizeof(enc)) <= 0)
            return fail(ps, "line %d: bad rtpmap", ps->lineno);
        char *s1 = strchr(enc, '/');
        if (!s1)
            return fail(ps, "line %d: bad rtpmap", ps->lineno);
        *s1++ = '\0';
        char *s2 = strchr(s1, '/');
        if (s2)
            *s2++ = '\0';
        unsigned clock, ch = 1;
        if (!tm__sdp_copy_str(c->name, sizeof(c->name), enc) ||
            !tm__sdp_parse_uint(s1, 10000000, &clock) ||
            (s2 && (!tm__sdp_parse_uint(s2, 255, &ch) || ch == 0)))
            return fail(ps, "line %d: bad rtpmap", ps->lineno);
        c->clock = clock;
        c->channels = ch;
    } else if (strcmp(name, "fmtp") == 0) {
        tm_sdp_codec *c = codec_for_attr(ps, &v, &rc);
        if (!c)
            return rc;
        while (*v == ' ')
            v++;
        if (!tm__sdp_copy_str(c->fmtp, sizeof(c->fmtp), v))
            return fail(ps, "line %d: fmtp too long", ps->lineno);
        const char *apt = strstr(c->fmtp, "apt=");
        unsigned a;
        if (apt) {
            char num[8];
            size_t n = strspn(apt + 4, "0123456789");
            if (n == 0 || n >= sizeof(num))
                return fail(ps, "line %d: bad apt", ps->lineno);
            memcpy(num, apt + 4, n);
            num[n] = '\0';
            if (!tm__sdp_parse_uint(num, 127, &a))
                return fail(ps, "line %d: bad apt", ps->lineno);
            c->apt = (int)a;
        }
    } else if (strcmp(name, "rtcp-fb") == 0) {
        while (*v == ' ')
            v++;
        if (v[0] == '*' && v[1] == ' ') {
            for (unsigned i = 0; i < m->n_codecs; i++)
                if ((rc = add_fb(ps, &m->codecs[i], v + 2)) < 0)
                    return rc;
            return 0;
        }
        tm_sdp_codec *c = codec_for_attr(ps, &v, &rc);
        if (!c)
            return rc;
        while (*v == ' ')
            v++;
        if (!*v)
            return fail(ps, "line %d: bad rtcp-fb", ps->lineno);
        return add_fb(ps, c, v);
    } else if (strcmp(name, "extmap") == 0) {
        char tok[32];
        unsigned id;
        if (tm__sdp_next_token(&v, tok, sizeof(tok)) <= 0)
            return fail(ps, "line %d: bad extmap", ps->lineno);
        tm_sdp_direction dir = TM_DIR_SENDRECV;
        char *slash = strchr(tok, '/');
        if (slash) {
            *slash++ = '\0';
            if (strcmp(slash, "sendonly") == 0)
                dir = TM_DIR_SENDONLY;
            else if (strcmp(slash, "recvonly") == 0)
                dir = TM_DIR_RECVONLY;
            else if (strcmp(slash, "inactive") == 0)
                dir = TM_DIR_INACTIVE;
            else if (strcmp(slash, "sendrecv") != 0)
                return fail(ps, "line %d: bad extmap direction", ps->lineno);
        }
        if (!tm__sdp_parse_uint(tok, 255, &id) || id == 0)
            return fail(ps, "line %d: bad extmap id", ps->lineno);
        if (m->n_extmaps >= TM_SDP_MAX_EXTMAPS)
            return 0; /* bounded; the ones we use come first in practice */
        tm_sdp_extmap *e = &m->extmaps[m->n_extmaps];
        if (tm__sdp_next_token(&v, e->uri, sizeof(e->uri)) <= 0)
            return fail(ps, "line %d: bad extmap uri", ps->lineno);
        e->id = (int)id;
        e->direction = dir;
        m->n_extmaps++;
    } else if (strcmp(name, "ssrc") == 0) {
        char tok[16];
        uint64_t ssrc;
        if (tm__sdp_next_token(&v, tok, sizeof(tok)) <= 0 ||
            !tm__sdp_parse_u64(tok, UINT32_MAX, &ssrc))
            return fail(ps, "line %d: bad ssrc", ps->lineno);
        tm_sdp_ssrc *s = find_or_add_ssrc(m, (uint32_t)ssrc);
        if (!s)
            return 0;
        while (*v == ' ')
            v++;
        if (strncmp(v, "cname:", 6) == 0) {
            if (!tm__sdp_copy_str(s->cname, sizeof(s->cname), v + 6))
                return fail(ps, "line %d: cname too long", ps->lineno);
        } else if (strncmp(v, "msid:", 5) == 0) {
            if (!tm__sdp_copy_str(s->msid, sizeof(s->msid), v + 5))
                return fail(ps, "line %d: msid too long", ps->lineno);
        }
    } else if (strcmp(name, "ssrc-group") == 0) {
        if (m->n_ssrc_groups >= TM_SDP_MAX_SSRC_GROUPS)
            return 0;
        tm_sdp_ssrc_group *g = &m->ssrc_groups[m->n_ssrc_groups];
        memset(g, 0, sizeof(*g));
        if (tm__sdp_next_token(&v, g->semantics, sizeof(g->semantics)) <= 0)
            return fail(ps, "line %d: bad ssrc-group", ps->lineno);
        char tok[16];
        int r;
        while ((r = tm__sdp_next_token(&v, tok, sizeof(tok))) != 0) {
            uint64_t ssrc;
            if (r < 0 || !tm__sdp_parse_u64(tok, UINT32_MAX, &ssrc))
                return fail(ps, "line %d: bad ssrc-group", ps->lineno);
            if (g->n < TM_ARRAY_LEN(g->ssrcs))
                g->ssrcs[g->n++] = (uint32_t)ssrc;
        }
        m->n_ssrc_groups++;
    } else if (strcmp(name, "candidate") == 0) {
        char line[1100];
        tm_sdp_candidate c;
        int w = snprintf(line, sizeof(line), "candidate:%s", v);
        if (w < 0 || (size_t)w >= sizeof(line) || tm_sdp_parse_candidate(line, &c) < 0)
            return 0; /* one odd candidate (mDNS, new type) must not sink the offer */
        if (m->n_candidates >= TM_SDP_MAX_CANDIDATES)
            return 0;
        tm_sdp_candidate *nc = realloc(m->candidates, (m->n_candidates + 1) * sizeof(*nc));
        if (!nc)
            return TM_ENOMEM;
        m->candidates = nc;
        m->candidates[m->n_candidates++] = c;
    } else if (strcmp(name, "end-of-candidates") == 0) {
        m->end_of_candidates = true;
    } else if (strcmp(name, "rid") == 0) {
        return parse_rid(ps, v);
    } else if (strcmp(name, "simulcast") == 0) {
        return parse_simulcast(ps, v);
    }
    return 0;
}

static int parse_line(parser *ps, char *line)
{
    size_t n = strlen(line);
    if (n == 0)
        return 0; /* blank lines (a trailing one) are harmless */
    if (n < 2 || line[1] != '=' || !islower((unsigned char)line[0]))
        return fail(ps, "line %d: not an SDP line", ps->lineno);
    char type = line[0];
    char *v = line + 2;
    if (type == 'm')
        return parse_mline(ps, v);
    if (type == 'o' && !ps->m) {
        char tok[TM_SDP_TOKEN_LEN];
        const char *p = v;
        uint64_t id, ver;
        if (tm__sdp_next_token(&p, tok, sizeof(tok)) <= 0 ||
            tm__sdp_next_token(&p, tok, sizeof(tok)) <= 0 ||
            !tm__sdp_parse_u64(tok, UINT64_MAX, &id) ||
            tm__sdp_next_token(&p, tok, sizeof(tok)) <= 0 ||
            !tm__sdp_parse_u64(tok, UINT64_MAX, &ver))
            return fail(ps, "line %d: bad o= line", ps->lineno);
        ps->o->session_id = id;
        ps->o->session_version = ver;
        return 0;
    }
    if (type != 'a')
        return 0;
    char *colon = strchr(v, ':');
    const char *val = "";
    if (colon) {
        *colon = '\0';
        val = colon + 1;
    }
    int rc;
    if (common_attr(ps, v, val, &rc))
        return rc;
    return ps->m ? media_attr(ps, v, val) : session_attr(ps, v, val);
}

static bool mid_in_bundle(const tm_sdp_offer *o, const char *mid)
{
    if (!mid[0])
        return false;
    for (unsigned i = 0; i < o->n_bundle; i++)
        if (strcmp(o->bundle[i], mid) == 0)
            return true;
    return false;
}

/* profile-level-id=42e0xx / 42c0xx (constrained baseline) and packetization-mode=1. */
static bool h264_fmtp_ok(const char *fmtp, bool *exact)
{
    const char *pl = strcasestr(fmtp, "profile-level-id=");
    const char *pm = strstr(fmtp, "packetization-mode=1");
    *exact = false;
    if (!pl || !pm)
        return false;
    pl += strlen("profile-level-id=");
    if (strlen(pl) < 6)
        return false;
    if (strncasecmp(pl, "42e0", 4) != 0 && strncasecmp(pl, "42c0", 4) != 0)
        return false;
    *exact = strncasecmp(pl, "42e01f", 6) == 0;
    return true;
}

static void choose_codecs(tm_sdp_mline *m, bool prefer_h264)
{
    m->codec = m->rtx = -1;
    if (m->kind == TM_MEDIA_AUDIO) {
        for (unsigned i = 0; i < m->n_codecs; i++) {
            const tm_sdp_codec *c = &m->codecs[i];
            /* RFC 7587 says opus/48000/2, but webrtcbin writes OPUS/48000 when its
             * caps lack encoding-params; the wire format is the same. */
            if (strcasecmp(c->name, "opus") == 0 && c->clock == 48000 &&
                (c->channels == 2 || c->channels == 1)) {
                m->codec = (int)i;
                break;
            }
        }
    } else if (m->kind == TM_MEDIA_VIDEO) {
        int h264 = -1;
        bool h264_exact = false;
        for (unsigned i = 0; i < m->n_codecs; i++) {
            const tm_sdp_codec *c = &m->codecs[i];
            bool exact;
            if (c->clock != 90000)
                continue;
            if (strcasecmp(c->name, "VP8") == 0 && m->codec < 0) {
                m->codec = (int)i;
                if (!prefer_h264)
                    break;
            }
            /* H.264 only as the fallback; prefer the exact 42e01f the
             * recorder and every browser can take. */
            if (strcasecmp(c->name, "H264") == 0 && h264_fmtp_ok(c->fmtp, &exact) &&
                (h264 < 0 || (exact && !h264_exact))) {
                h264 = (int)i;
                h264_exact = exact;
            }
        }
        if (h264 >= 0 && (prefer_h264 || m->codec < 0))
            m->codec = h264;
    }
    if (m->codec < 0)
        return;
    int pt = m->codecs[m->codec].pt;
    for (unsigned i = 0; i < m->n_codecs; i++)
        if (strcasecmp(m->codecs[i].name, "rtx") == 0 && m->codecs[i].apt == pt) {
            m->rtx = (int)i;
            break;
        }
}

bool tm_sdp_mline_prefer_h264(tm_sdp_mline *m)
{
    choose_codecs(m, true);
    return m->codec >= 0 && strcasecmp(m->codecs[m->codec].name, "H264") == 0;
}

static void fill_remote_ssrcs(tm_sdp_mline *m)
{
    m->remote_cname = "";
    for (unsigned i = 0; i < m->n_ssrc_groups; i++) {
        const tm_sdp_ssrc_group *g = &m->ssrc_groups[i];
        if (strcmp(g->semantics, "FID") == 0 && g->n >= 2) {
            m->remote_ssrc = g->ssrcs[0];
            m->remote_rtx_ssrc = g->ssrcs[1];
            break;
        }
    }
    if (!m->remote_ssrc && m->n_ssrcs)
        m->remote_ssrc = m->ssrcs[0].ssrc;
    for (unsigned i = 0; i < m->n_ssrcs; i++)
        if (m->ssrcs[i].ssrc == m->remote_ssrc)
            m->remote_cname = m->ssrcs[i].cname;
}

static int ext_id(const tm_sdp_mline *m, const char *uri)
{
    for (unsigned i = 0; i < m->n_extmaps; i++)
        if (strcmp(m->extmaps[i].uri, uri) == 0)
            return m->extmaps[i].id;
    return 0;
}

static const tm_sdp_rid *find_rid(const tm_sdp_mline *m, const char *id)
{
    for (unsigned i = 0; i < m->n_rids; i++)
        if (strcmp(m->rids[i].id, id) == 0)
            return &m->rids[i];
    return NULL;
}

/* Simulcast is taken on an accepted video m-line the offerer sends on, with the rid
 * extension and at least two "send" rids listed in a=simulcast; anything less is one
 * plain stream (the server never refuses an offer for its simulcast). */
static void choose_layers(tm_sdp_mline *m)
{
    m->n_layers = 0;
    if (!m->accepted || m->kind != TM_MEDIA_VIDEO || !m->ext_rid ||
        (m->direction != TM_DIR_SENDRECV && m->direction != TM_DIR_SENDONLY))
        return;
    unsigned n = 0;
    for (unsigned i = 0; i < m->n_sim_send; i++) {
        const tm_sdp_rid *r = find_rid(m, m->sim_send[i]);
        if (r && r->send)
            memcpy(m->layers[n++], r->id, sizeof m->layers[0]);
    }
    if (n >= 2)
        m->n_layers = n;
}

static int finish(parser *ps)
{
    tm_sdp_offer *o = ps->o;
    if (o->n_mlines == 0)
        return fail(ps, "no supported audio or video codec");
    if (o->n_bundle == 0)
        return fail(ps, "offer has no BUNDLE group");
    bool any_codec = false, any_mux_missing = false;
    for (unsigned i = 0; i < o->n_mlines; i++) {
        tm_sdp_mline *m = &o->mlines[i];
        if (!m->ice_ufrag[0])
            memcpy(m->ice_ufrag, ps->ufrag, sizeof(m->ice_ufrag));
        if (!m->ice_pwd[0])
            memcpy(m->ice_pwd, ps->pwd, sizeof(m->ice_pwd));
        if (!m->fingerprint.value[0])
            m->fingerprint = ps->fp;
        if (m->setup == TM_SETUP_NONE)
            m->setup = ps->setup;
        m->in_bundle = mid_in_bundle(o, m->mid);
        m->ext_mid = ext_id(m, TM_SDP_EXT_MID);
        if (m->kind == TM_MEDIA_AUDIO)
            m->ext_audio_level = ext_id(m, TM_SDP_EXT_AUDIO_LEVEL);
        m->ext_abs_send_time = ext_id(m, TM_SDP_EXT_ABS_SEND_TIME);
        m->ext_twcc = ext_id(m, TM_SDP_EXT_TWCC);
        m->ext_rid = ext_id(m, TM_SDP_EXT_RID);
        m->ext_rrid = ext_id(m, TM_SDP_EXT_RRID);
        fill_remote_ssrcs(m);
        if (m->kind != TM_MEDIA_AUDIO && m->kind != TM_MEDIA_VIDEO)
            continue;
        /* Port 0 means rejected, except for a bundle-only m-line (RFC 8843
         * 6: it shares the BUNDLE transport, as webrtcbin's max-bundle offers). */
        if ((m->port == 0 && !(m->bundle_only && m->in_bundle)) || !strstr(m->proto, "RTP/"))
            continue;
        choose_codecs(m, false);
        if (m->codec < 0)
            continue;
        any_codec = true;
        if (!m->in_bundle)
            continue;
        if (!m->rtcp_mux) {
            any_mux_missing = true;
            continue;
        }
        m->accepted = true;
        choose_layers(m);
    }
    if (any_mux_missing)
        return fail(ps, "rtcp-mux is required");
    const tm_sdp_mline *first = NULL;
    for (unsigned i = 0; i < o->n_mlines && !first; i++)
        if (o->mlines[i].accepted)
            first = &o->mlines[i];
    if (!first)
        return fail(ps, any_codec ? "no audio or video m-line in the BUNDLE group"
                                  : "no supported audio or video codec");
    for (unsigned i = 0; i < o->n_mlines; i++) {
        const tm_sdp_mline *m = &o->mlines[i];
        if (!m->accepted)
            continue;
        if (!m->ice_ufrag[0] || !m->ice_pwd[0])
            return fail(ps, "missing ice-ufrag/ice-pwd");
        if (!m->fingerprint.value[0])
            return fail(ps, "missing DTLS fingerprint");
    }
    memcpy(o->ice_ufrag, first->ice_ufrag, sizeof(o->ice_ufrag));
    memcpy(o->ice_pwd, first->ice_pwd, sizeof(o->ice_pwd));
    o->fingerprint = first->fingerprint;
    o->setup = first->setup;
    return 0;
}

int tm_sdp_parse_offer(const char *sdp, size_t len, tm_sdp_offer **out, char **err)
{
    parser ps;
    int rc;
    memset(&ps, 0, sizeof(ps));
    if (out)
        *out = NULL;
    if (err)
        *err = NULL;
    if (!sdp || !out)
        return TM_EINVAL;
    if (len > TM_SDP_MAX_INPUT) {
        if (err)
            *err = g_strdup("offer too large");
        return TM_ETOOBIG;
    }
    if (len < 3 || memcmp(sdp, "v=0", 3) != 0 || memchr(sdp, '\0', len)) {
        if (err)
            *err = g_strdup("not an SDP");
        return TM_EINVAL;
    }
    ps.o = calloc(1, sizeof(*ps.o));
    if (!ps.o)
        return TM_ENOMEM;

    char line[TM_SDP_MAX_LINE + 1];
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(sdp + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - sdp) : len;
        size_t n = end - pos;
        ps.lineno++;
        if (n > 0 && sdp[pos + n - 1] == '\r')
            n--;
        if (n > TM_SDP_MAX_LINE) {
            rc = fail(&ps, "line %d: too long", ps.lineno);
            goto fail;
        }
        memcpy(line, sdp + pos, n);
        line[n] = '\0';
        if ((rc = parse_line(&ps, line)) < 0)
            goto fail;
        pos = end + 1;
    }
    if ((rc = finish(&ps)) < 0)
        goto fail;
    *out = ps.o;
    return 0;

fail:
    tm_sdp_offer_free(ps.o);
    if (rc == TM_ENOMEM && !ps.err)
        ps.err = g_strdup("out of memory");
    if (err)
        *err = ps.err;
    else
        g_free(ps.err);
    return rc;
}

void tm_sdp_offer_free(tm_sdp_offer *o)
{
    if (!o)
        return;
    for (unsigned i = 0; i < o->n_mlines; i++) {
        free(o->mlines[i].codecs);
        free(o->mlines[i].candidates);
    }
    free(o);
}

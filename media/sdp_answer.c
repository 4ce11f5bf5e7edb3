/*
 * sdp_answer.c - print the server's answer to a parsed offer (sdp_offer.c parses
 * it): one m-line per offered m-line, the chosen codec with its feedback
 * and RTX, our ICE credentials, fingerprint and candidates. Anything echoed
 * from the offer was checked by the parser or is checked again here, so the
 * answer cannot be injected into. Runs on the calling thread; reentrant.
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

typedef struct sbuf {
    char *s;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (w < 0) {
            b->oom = true;
            return;
        }
        if ((size_t)w < b->cap - b->len) {
            b->len += (size_t)w;
            return;
        }
        size_t ncap = b->cap * 2 + (size_t)w;
        char *ns = realloc(b->s, ncap);
        if (!ns) {
            b->oom = true;
            return;
        }
        b->s = ns;
        b->cap = ncap;
    }
}

static bool codec_has_fb(const tm_sdp_codec *c, const char *fb)
{
    for (unsigned i = 0; i < c->n_fb; i++)
        if (strcmp(c->fb[i], fb) == 0)
            return true;
    return false;
}

/* A safe value for an SDP line: printable, no spaces unless allowed. */
static bool safe_value(const char *s, size_t max, bool spaces)
{
    size_t n = 0;
    if (!s || !*s)
        return false;
    for (; *s; s++, n++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x21 || c > 0x7e) {
            if (!(spaces && c == ' '))
                return false;
        }
    }
    return n <= max;
}

static void write_ssrc_lines(sbuf *b, uint32_t ssrc, const char *cname, const char *stream,
                             const char *track)
{
    sb_printf(b, "a=ssrc:%" PRIu32 " cname:%s\r\n", ssrc, cname);
    if (stream)
        sb_printf(b, "a=ssrc:%" PRIu32 " msid:%s %s\r\n", ssrc, stream, track);
}

/* We receive every layer offered: "a=rid:<id> recv" each, then "a=simulcast:recv" in the
 * offer's order (RFC 8853 section 5.3). The rids passed the parser's rid-id check. */
static void write_simulcast(sbuf *b, const tm_sdp_mline *m)
{
    for (unsigned i = 0; i < m->n_layers; i++)
        sb_printf(b, "a=rid:%s recv\r\n", m->layers[i]);
    sb_printf(b, "a=simulcast:recv ");
    for (unsigned i = 0; i < m->n_layers; i++)
        sb_printf(b, "%s%s", i ? ";" : "", m->layers[i]);
    sb_printf(b, "\r\n");
}

static void write_mline(sbuf *b, const tm_sdp_offer *o, const tm_sdp_mline *m,
                        const tm_sdp_answer_params *p, const tm_sdp_answer_media *am,
                        bool bundle_tag)
{
    if (!m->accepted) {
        const char *fmt = m->fmt0[0] ? m->fmt0 : "0";
        sb_printf(b, "m=%s 0 %s %s\r\nc=IN IP4 0.0.0.0\r\n", m->media, m->proto, fmt);
        /* webrtcbin refuses an answer with any m-line lacking a fingerprint,
         * rejected ones included; Chrome does not mind them. */
        sb_printf(b, "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\n", p->ice_ufrag, p->ice_pwd);
        sb_printf(b, "a=fingerprint:sha-256 %s\r\n", p->fingerprint);
        sb_printf(b, "a=setup:%s\r\n",
                  tm_sdp_answer_setup(o) == TM_SETUP_ACTIVE ? "active" : "passive");
        if (m->mid[0])
            sb_printf(b, "a=mid:%s\r\n", m->mid);
        if (m->kind == TM_MEDIA_AUDIO || m->kind == TM_MEDIA_VIDEO)
            sb_printf(b, "a=inactive\r\n");
        return;
    }
    const tm_sdp_codec *c = tm_sdp_mline_codec(m);
    const tm_sdp_codec *rtx = tm_sdp_mline_rtx(m);
    bool video = m->kind == TM_MEDIA_VIDEO;
    bool send = am && am->send;
    tm_sdp_direction dir = tm_sdp_answer_direction(m->direction, send);
    bool sending = dir == TM_DIR_SENDRECV || dir == TM_DIR_SENDONLY;

    sb_printf(b, "m=%s 9 UDP/TLS/RTP/SAVPF %d", m->media, c->pt);
    if (rtx)
        sb_printf(b, " %d", rtx->pt);
    sb_printf(b, "\r\nc=IN IP4 0.0.0.0\r\n");
    sb_printf(b, "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\n", p->ice_ufrag, p->ice_pwd);
    if (o->ice_trickle)
        sb_printf(b, "a=ice-options:trickle\r\n");
    sb_printf(b, "a=fingerprint:sha-256 %s\r\n", p->fingerprint);
    sb_printf(b, "a=setup:%s\r\n",
              tm_sdp_answer_setup(o) == TM_SETUP_ACTIVE ? "active" : "passive");
    sb_printf(b, "a=mid:%s\r\n", m->mid);
    if (m->ext_mid)
        sb_printf(b, "a=extmap:%d %s\r\n", m->ext_mid, TM_SDP_EXT_MID);
    if (m->ext_audio_level)
        sb_printf(b, "a=extmap:%d %s\r\n", m->ext_audio_level, TM_SDP_EXT_AUDIO_LEVEL);
    if (m->ext_abs_send_time)
        sb_printf(b, "a=extmap:%d %s\r\n", m->ext_abs_send_time, TM_SDP_EXT_ABS_SEND_TIME);
    if (m->ext_twcc && p->transport_cc)
        sb_printf(b, "a=extmap:%d %s\r\n", m->ext_twcc, TM_SDP_EXT_TWCC);
    bool simulcast = m->n_layers >= 2 && (dir == TM_DIR_SENDRECV || dir == TM_DIR_RECVONLY);
    if (simulcast) {
        sb_printf(b, "a=extmap:%d %s\r\n", m->ext_rid, TM_SDP_EXT_RID);
        if (m->ext_rrid)
            sb_printf(b, "a=extmap:%d %s\r\n", m->ext_rrid, TM_SDP_EXT_RRID);
    }
    sb_printf(b, "a=%s\r\n", tm_sdp_direction_str(dir));

    const char *cname = am && am->cname ? am->cname : "telemed";
    const char *stream = am ? am->msid_stream : NULL;
    char track_buf[48];
    const char *track = am ? am->msid_track : NULL;
    if (stream && !track && am) {
        snprintf(track_buf, sizeof(track_buf), "%s-%" PRIu32, m->media, am->ssrc);
        track = track_buf;
    }
    if (sending && stream)
        sb_printf(b, "a=msid:%s %s\r\n", stream, track);
    sb_printf(b, "a=rtcp-mux\r\n");
    if (m->rtcp_rsize)
        sb_printf(b, "a=rtcp-rsize\r\n");

    /* The codec, under the offer's payload type, with the feedback we
     * actually act on and the offer also asked for. */
    if (m->kind == TM_MEDIA_AUDIO) {
        sb_printf(b, "a=rtpmap:%d opus/48000/2\r\n", c->pt);
    } else if (strcasecmp(c->name, "VP8") == 0) {
        sb_printf(b, "a=rtpmap:%d VP8/90000\r\n", c->pt);
    } else {
        sb_printf(b, "a=rtpmap:%d H264/90000\r\n", c->pt);
    }
    if (p->transport_cc && m->ext_twcc && codec_has_fb(c, "transport-cc"))
        sb_printf(b, "a=rtcp-fb:%d transport-cc\r\n", c->pt);
    if (video) {
        static const char *const fbs[] = {"nack", "nack pli", "ccm fir"};
        for (size_t i = 0; i < TM_ARRAY_LEN(fbs); i++)
            if (codec_has_fb(c, fbs[i]))
                sb_printf(b, "a=rtcp-fb:%d %s\r\n", c->pt, fbs[i]);
        if (p->remb && codec_has_fb(c, "goog-remb"))
            sb_printf(b, "a=rtcp-fb:%d goog-remb\r\n", c->pt);
    }
    if (m->kind == TM_MEDIA_AUDIO)
        sb_printf(b, "a=fmtp:%d minptime=10;useinbandfec=1\r\n", c->pt);
    else if (strcasecmp(c->name, "H264") == 0)
        sb_printf(b,
                  "a=fmtp:%d level-asymmetry-allowed=1;packetization-mode=1;"
                  "profile-level-id=42e01f\r\n",
                  c->pt);
    if (rtx) {
        sb_printf(b, "a=rtpmap:%d rtx/90000\r\n", rtx->pt);
        sb_printf(b, "a=fmtp:%d apt=%d\r\n", rtx->pt, c->pt);
    }
    if (simulcast)
        write_simulcast(b, m);

    if (sending && am && am->ssrc) {
        bool with_rtx = rtx && am->rtx_ssrc;
        if (with_rtx)
            sb_printf(b, "a=ssrc-group:FID %" PRIu32 " %" PRIu32 "\r\n", am->ssrc, am->rtx_ssrc);
        write_ssrc_lines(b, am->ssrc, cname, stream, track);
        if (with_rtx)
            write_ssrc_lines(b, am->rtx_ssrc, cname, stream, track);
    }

    if (bundle_tag) {
        for (size_t i = 0; i < p->n_candidates; i++) {
            const char *cand = p->candidates[i];
            if (strncmp(cand, "a=", 2) == 0)
                cand += 2;
            size_t n = strcspn(cand, "\r\n");
            sb_printf(b, "a=%.*s\r\n", (int)n, cand);
        }
        if (p->end_of_candidates)
            sb_printf(b, "a=end-of-candidates\r\n");
    }
}

static bool params_ok(const tm_sdp_answer_params *p)
{
    if (!p || !p->ice_ufrag || !p->ice_pwd || !p->fingerprint)
        return false;
    if (!tm__sdp_is_ice_chars(p->ice_ufrag, 4, 256) || !tm__sdp_is_ice_chars(p->ice_pwd, 22, 256))
        return false;
    if (!safe_value(p->fingerprint, TM_SDP_FINGERPRINT_LEN, false))
        return false;
    if (p->n_candidates && !p->candidates)
        return false;
    for (size_t i = 0; i < p->n_candidates; i++) {
        tm_sdp_candidate c;
        if (!p->candidates[i] || tm_sdp_parse_candidate(p->candidates[i], &c) < 0)
            return false;
    }
    if (p->n_media && !p->media)
        return false;
    for (size_t i = 0; i < p->n_media; i++) {
        const tm_sdp_answer_media *am = &p->media[i];
        if (am->cname && !safe_value(am->cname, 255, false))
            return false;
        if (am->msid_stream && !safe_value(am->msid_stream, 64, false))
            return false;
        if (am->msid_track && !safe_value(am->msid_track, 64, false))
            return false;
    }
    return true;
}

char *tm_sdp_build_answer(const tm_sdp_offer *o, const tm_sdp_answer_params *p)
{
    if (!o || !params_ok(p))
        return NULL;
    sbuf b = {0};
    b.cap = 4096;
    b.s = malloc(b.cap);
    if (!b.s)
        return NULL;
    b.s[0] = '\0';

    uint64_t sid = p->session_id ? p->session_id : (o->session_id ^ 0x7e1e3ed0c0ffeeull);
    sid &= 0x7fffffffffffffffull; /* some parsers read it as a signed 64-bit number */
    if (!sid)
        sid = 1;
    sb_printf(&b, "v=0\r\no=- %" PRIu64 " %" PRIu64 " IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", sid,
              p->session_version);
    if (p->ice_lite)
        sb_printf(&b, "a=ice-lite\r\n");
    sb_printf(&b, "a=group:BUNDLE");
    for (unsigned i = 0; i < o->n_mlines; i++)
        if (o->mlines[i].accepted)
            sb_printf(&b, " %s", o->mlines[i].mid);
    sb_printf(&b, "\r\na=msid-semantic: WMS *\r\n");

    bool tag_done = false;
    for (unsigned i = 0; i < o->n_mlines; i++) {
        const tm_sdp_mline *m = &o->mlines[i];
        const tm_sdp_answer_media *am = i < p->n_media ? &p->media[i] : NULL;
        write_mline(&b, o, m, p, am, m->accepted && !tag_done);
        if (m->accepted)
            tag_done = true;
    }
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

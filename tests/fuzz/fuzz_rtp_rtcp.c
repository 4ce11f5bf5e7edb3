/*
 * fuzz_rtp_rtcp.c - libFuzzer target for everything the media port does to
 * untrusted datagrams: demux, RTP parse and in-place edits (extension remap,
 * rtx unwrap, simulcast's rewrite of SSRC/seq/ts and the VP8 picture id),
 * header extension lookup (the rid), keyframe detection, RTCP compound walk
 * and every parser.
 * Edits run on an exact-size heap copy (plus room where the API takes a cap)
 * so a sanitizer sees any write past the end.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rtcp.h"
#include "rtp.h"
#include "simulcast.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_rtp(const uint8_t *data, size_t size)
{
    tm_rtp_header h;
    if (tm_rtp_parse(data, size, &h) < 0)
        return;
    if (h.payload_offset + h.payload_len > size)
        abort();
    const uint8_t *payload = data + h.payload_offset;
    tm_vp8_info vi;
    tm_vp8_parse(payload, h.payload_len, &vi);
    tm_h264_is_keyframe(payload, h.payload_len);
    uint16_t w, hh;
    tm_h264_sps_size(payload, h.payload_len, &w, &hh);
    tm_h264_sps_size(data, size, &w, &hh); /* the raw bytes as a NAL, too */

    uint8_t *exact = malloc(size);
    if (!exact)
        return;
    memcpy(exact, data, size);
    uint8_t map[256];
    for (int i = 0; i < 256; i++)
        map[i] = (uint8_t)(i % 3 == 0 ? 0 : (i * 7) % 256);
    int m = tm_rtp_ext_remap(exact, size, map);
    if (m > (int)size)
        abort();
    if (m > 0 && tm_rtp_parse(exact, (size_t)m, &h) != 0)
        abort(); /* an edit of a valid packet must stay valid */
    memcpy(exact, data, size);
    tm_rtp_unwrap_rtx(exact, size, 1, 96);
    for (int id = 0; id < 256; id++) {
        const uint8_t *el;
        int n = tm_rtp_ext_find(data, &h, id, &el);
        if (n > 0 && (el < data || el + n > data + size))
            abort();
    }
    memcpy(exact, data, size);
    tm_rtp_parse(exact, size, &h);
    bool vp8 = tm_vp8_parse(exact + h.payload_offset, h.payload_len, &vi) == 0;
    tm__rtp_rewrite rw = {.based = true, .sent_any = true, .src_ssrc = h.ssrc ^ 1, .last_pic = 77};
    tm__rtp_rewrite_packet(&rw, exact, &h, vp8 ? &vi : NULL, 42, 90000, 1000);
    if (tm_rtp_parse(exact, size, &h) != 0)
        abort(); /* the rewrite never changes the packet's shape */
    free(exact);
}

static void fuzz_rtcp(const uint8_t *data, size_t size)
{
    tm_rtcp_iter it;
    tm_rtcp_pkt p;
    tm_rtcp_iter_init(&it, data, size);
    while (tm_rtcp_next(&it, &p) == 1) {
        if (p.offset + p.len > size)
            abort();
        tm_rtcp_sr sr;
        tm_rtcp_rr rr;
        tm_rtcp_fb fb;
        uint16_t seqs[64];
        uint32_t ms;
        tm_rtcp_fir_entry fir[8];
        tm_rtcp_remb remb;
        tm_rtcp_parse_sr(&p, &sr);
        tm_rtcp_parse_rr(&p, &rr);
        tm_rtcp_parse_fb(&p, &fb);
        tm_rtcp_parse_nack(&p, &ms, seqs, TM_ARRAY_LEN(seqs));
        tm_rtcp_parse_fir(&p, fir, TM_ARRAY_LEN(fir));
        tm_rtcp_parse_remb(&p, &remb);
    }
    tm_rtcp_validate(data, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tm_packet_kind(data, size);
    /* Both parsers see every input: the demux must not be the only guard. */
    fuzz_rtp(data, size);
    fuzz_rtcp(data, size);
    if (size >= 2) {
        uint16_t seqs[32];
        size_t n = size / 2 < 32 ? size / 2 : 32;
        for (size_t i = 0; i < n; i++)
            seqs[i] = (uint16_t)(data[2 * i] << 8 | data[2 * i + 1]);
        uint8_t out[12 + 4 * 32];
        uint8_t nack_buf[sizeof(out)];
        int len = tm_rtcp_build_nack(out, sizeof(out), 1, 2, seqs, n);
        if (len > 0) {
            memcpy(nack_buf, out, (size_t)len);
            tm_rtcp_iter it;
            tm_rtcp_pkt p;
            tm_rtcp_iter_init(&it, nack_buf, (size_t)len);
            uint16_t back[32 * 17];
            uint32_t ms;
            if (tm_rtcp_next(&it, &p) != 1 ||
                tm_rtcp_parse_nack(&p, &ms, back, TM_ARRAY_LEN(back)) < (int)1)
                abort();
        }
    }
    return 0;
}

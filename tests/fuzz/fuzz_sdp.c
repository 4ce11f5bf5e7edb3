/*
 * fuzz_sdp.c - libFuzzer target for the SDP offer parser, the answer
 * builder on whatever parses, and the candidate parser/formatter.
 */
#include <glib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sdp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tm_sdp_offer *o = NULL;
    char *err = NULL;
    if (tm_sdp_parse_offer((const char *)data, size, &o, &err) == 0) {
        tm_sdp_answer_media media[TM_SDP_MAX_MLINES];
        memset(media, 0, sizeof(media));
        for (unsigned i = 0; i < o->n_mlines; i++) {
            media[i].send = i % 2 == 0;
            media[i].ssrc = 1000 + i;
            media[i].rtx_ssrc = 2000 + i;
            media[i].msid_stream = "s";
        }
        const char *cands[] = {"candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host"};
        tm_sdp_answer_params p = {
            .ice_ufrag = "abcd",
            .ice_pwd = "0123456789abcdefghijklmn",
            .fingerprint = "AB:CD:EF",
            .remb = true,
            .transport_cc = size % 2,
            .candidates = cands,
            .n_candidates = 1,
            .media = media,
            .n_media = o->n_mlines,
        };
        char *ans = tm_sdp_build_answer(o, &p);
        if (!ans)
            abort(); /* an accepted offer must always be answerable */
        /* The answer of an accepted offer is itself well-formed SDP. */
        tm_sdp_offer *again = NULL;
        char *err2 = NULL;
        tm_sdp_parse_offer(ans, strlen(ans), &again, &err2);
        tm_sdp_offer_free(again);
        g_free(err2);
        free(ans);
        tm_sdp_offer_free(o);
    } else {
        g_free(err);
    }

    /* The same bytes as a trickled candidate. */
    char line[1200];
    size_t n = size < sizeof(line) - 1 ? size : sizeof(line) - 1;
    memcpy(line, data, n);
    line[n] = '\0';
    tm_sdp_candidate c;
    if (tm_sdp_parse_candidate(line, &c) == 0) {
        char out[512];
        tm_sdp_candidate c2;
        if (tm_sdp_format_candidate(&c, out, sizeof(out)) < 0 ||
            tm_sdp_parse_candidate(out, &c2) != 0)
            abort(); /* format of a parsed candidate must parse again */
    }
    return 0;
}

/*
 * sdp_answer_tool.c - reads an SDP offer on stdin and prints telemed's answer
 * (or "error: <message>" and exit 1), for tests that hand our answers to a
 * real browser. Options: --no-send (the server sends nothing), --twcc,
 * --ice-lite, --no-remb.
 */
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sdp.h"

int main(int argc, char **argv)
{
    bool send = true, twcc = false, lite = false, remb = true;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--no-send") == 0)
            send = false;
        else if (strcmp(argv[i], "--twcc") == 0)
            twcc = true;
        else if (strcmp(argv[i], "--ice-lite") == 0)
            lite = true;
        else if (strcmp(argv[i], "--no-remb") == 0)
            remb = false;
    }
    static char in[TM_SDP_MAX_INPUT + 2];
    size_t n = fread(in, 1, sizeof(in), stdin);
    tm_sdp_offer *o = NULL;
    char *err = NULL;
    if (tm_sdp_parse_offer(in, n, &o, &err) != 0) {
        printf("error: %s\n", err ? err : "?");
        g_free(err);
        return 1;
    }
    tm_sdp_answer_media media[TM_SDP_MAX_MLINES];
    memset(media, 0, sizeof(media));
    for (unsigned i = 0; i < o->n_mlines; i++) {
        media[i].send = send;
        media[i].ssrc = 10000 + i;
        media[i].rtx_ssrc = 20000 + i;
        media[i].cname = "telemed-test";
        media[i].msid_stream = "peer";
    }
    const char *cands[] = {"candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host"};
    tm_sdp_answer_params p = {
        .ice_ufrag = "srvU",
        .ice_pwd = "serverpassword0123456789",
        .fingerprint = "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:"
                       "11:22:33:44:55:66:77:88:99",
        .ice_lite = lite,
        .transport_cc = twcc,
        .remb = remb,
        .candidates = cands,
        .n_candidates = 1,
        .end_of_candidates = true,
        .media = media,
        .n_media = o->n_mlines,
    };
    char *ans = tm_sdp_build_answer(o, &p);
    tm_sdp_offer_free(o);
    if (!ans) {
        printf("error: no answer\n");
        return 1;
    }
    fputs(ans, stdout);
    free(ans);
    return 0;
}

/*
 * test_media_party.c - a visit of more than two: webrtcbin party members,
 * each sending its own picture size and tone with RFC 6464 audio levels,
 * join one by one (a third, a fourth), each join a renegotiation of the
 * members already there (more recvonly transceivers, same ICE); one leaves
 * and comes back. Every member must decode every other member's video (by
 * its picture size) and hear its tone (by frequency), the members already
 * there must see no freeze over 1 s while another joins or leaves and under
 * 200 ms on the median of those four (the target; each longest gap
 * is printed; media_load --party measures the keyframes a join needs, with
 * receivers that wait for one), every receiver is told what its m-lines
 * carry, and the active speaker follows the loudest member only after it
 * has been loudest for a while.
 */
#include <gst/gst.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "media_test_peer.h"
#include "telemed/media.h"

#define VISIT "v-party"
#define N_MAX 4
#define LOUD 0.6
#define QUIET 0.03
#define GAP_CAP_US (1000 * 1000)
#define MEDIAN_GAP_CAP_US (200 * 1000)

static test_peer *peers[N_MAX];
static const char *const ids[N_MAX] = {"attending:d-li", "patient:p-1", "consulting:d-wu",
                                       "interpreter:i-ma"};
static char speaker[64];
static gint64 speaker_us;
static int speaker_events;

static int width_of(int i)
{
    return 320 + 32 * i;
}

static void on_event(const tm_media_event *ev, void *user)
{
    if (ev->type == TM_MEDIA_EV_SPEAKER) {
        g_strlcpy(speaker, ev->peer_id, sizeof speaker);
        speaker_us = g_get_monotonic_time();
        speaker_events++;
        printf("speaker: %s\n", ev->peer_id);
    }
    test_peer_on_event(peers, N_MAX, ev);
}

static test_peer *join(tm_media *m, int i, int n_recv, double volume)
{
    test_peer *p = test_peer_new_party(m, VISIT, ids[i], width_of(i), 240, i, volume, n_recv);
    if (!p)
        FAIL("cannot start %s", ids[i]);
    return p;
}

/* The video pad of r that shows member j's picture and has shown a frame in the last second. */
static int live_pad_of(test_peer *r, int j)
{
    gint64 now = g_get_monotonic_time();
    for (int k = 0; k < g_atomic_int_get(&r->n_video_pads) && k < TEST_MAX_PADS; k++)
        if (g_atomic_int_get(&r->vwidth[k]) == width_of(j) && now - r->vlast_us[k] < 1000000)
            return k;
    return -1;
}

static bool hears(test_peer *r, int j)
{
    for (int k = 0; k < g_atomic_int_get(&r->n_audio_pads) && k < TEST_MAX_PADS; k++)
        if (test_peer_pad_tone(r, k) == j)
            return true;
    return false;
}

/* Every member present decodes every other one's video and hears its tone. */
static bool mesh(void *u)
{
    (void)u;
    for (int i = 0; i < N_MAX; i++) {
        for (int j = 0; peers[i] && j < N_MAX; j++) {
            if (j == i || !peers[j])
                continue;
            if (live_pad_of(peers[i], j) < 0 || !hears(peers[i], j))
                return false;
        }
    }
    return true;
}

static void explain_mesh(void)
{
    for (int i = 0; i < N_MAX; i++) {
        if (!peers[i])
            continue;
        fprintf(stderr, "%s: state=%s video pads=%d audio pads=%d bindings=[%s]\n", ids[i],
                peers[i]->state, peers[i]->n_video_pads, peers[i]->n_audio_pads,
                peers[i]->last_bindings ? peers[i]->last_bindings : "");
        for (int k = 0; k < peers[i]->n_video_pads && k < TEST_MAX_PADS; k++)
            fprintf(stderr, "  video pad %d: %dx%d frames=%d\n", k, peers[i]->vwidth[k],
                    peers[i]->vheight[k], peers[i]->vframes[k]);
        for (int k = 0; k < peers[i]->n_audio_pads && k < TEST_MAX_PADS; k++)
            fprintf(stderr, "  audio pad %d: buffers=%d tone=%d\n", k, peers[i]->abuffers[k],
                    test_peer_pad_tone(peers[i], k));
    }
}

static void wait_mesh(GMainContext *ctx, const char *what)
{
    if (!test_wait(ctx, 40000, mesh, NULL)) {
        explain_mesh();
        FAIL("%s: not every member decodes every other one", what);
    }
    printf("ok %s: full mesh\n", what);
}

/* Tones are judged afresh after a change: a pad may carry someone else now. */
static void tones_reset(void)
{
    for (int i = 0; i < N_MAX; i++) {
        if (!peers[i])
            continue;
        g_mutex_lock(&peers[i]->tone_lock);
        memset(peers[i]->tone_energy, 0, sizeof peers[i]->tone_energy);
        g_mutex_unlock(&peers[i]->tone_lock);
    }
}

/* The longest freeze member i saw on the pads of the members in `others` since the reset. */
static gint64 worst_gap(int i, const bool *others)
{
    gint64 worst = 0;
    for (int j = 0; j < N_MAX; j++) {
        int k = others[j] ? live_pad_of(peers[i], j) : -1;
        if (k >= 0 && peers[i]->vmaxgap_us[k] > worst)
            worst = peers[i]->vmaxgap_us[k];
    }
    return worst;
}

/* Who is present now, to measure the members already there during a change. */
static void present(bool *out)
{
    for (int j = 0; j < N_MAX; j++)
        out[j] = peers[j] != NULL;
}

static gint64 freezes[8];
static int n_freezes;

static void check_gaps(const char *what, const bool *before)
{
    gint64 worst = 0;
    for (int i = 0; i < N_MAX; i++) {
        if (!before[i] || !peers[i])
            continue;
        gint64 g = worst_gap(i, before);
        worst = g > worst ? g : worst;
    }
    printf("%s: longest freeze on members already there %.0f ms\n", what, worst / 1000.0);
    if (worst > GAP_CAP_US)
        FAIL("%s froze existing receivers for %.0f ms", what, worst / 1000.0);
    if (n_freezes < (int)G_N_ELEMENTS(freezes))
        freezes[n_freezes++] = worst;
}

static int by_value(const void *a, const void *b)
{
    gint64 x = *(const gint64 *)a, y = *(const gint64 *)b;
    return x < y ? -1 : x > y;
}

/* The target, on the median of this run's joins and leaves: one
 * slow join on a machine a whole suite shares is not the server's doing,
 * every other one slow is. Judged on the default media path only: the stock
 * one (libnice sends, libsrtp) is kept working for the day a library moves,
 * not fast, and on a loaded machine it is not. */
static void check_median_freeze(bool judge)
{
    qsort(freezes, (size_t)n_freezes, sizeof freezes[0], by_value);
    gint64 median = n_freezes % 2 ? freezes[n_freezes / 2]
                                  : (freezes[n_freezes / 2 - 1] + freezes[n_freezes / 2]) / 2;
    printf("median freeze on members already there over %d joins and leaves: %.0f ms\n", n_freezes,
           median / 1000.0);
    if (judge && median > MEDIAN_GAP_CAP_US)
        FAIL("joins and leaves froze existing receivers for %.0f ms (median)", median / 1000.0);
}

static void gaps_reset(void)
{
    for (int i = 0; i < N_MAX; i++)
        if (peers[i])
            test_peer_gap_reset(peers[i]);
}

static bool speaker_is(void *u)
{
    return strcmp(speaker, u) == 0;
}

/* Whether receiver i's last binding event names exactly the senders present. */
static bool bindings_match(int i, char *why, size_t why_len)
{
    const char *b = peers[i]->last_bindings;
    if (!b || peers[i]->bindings_events == 0) {
        g_snprintf(why, why_len, "%s was never told its bindings", ids[i]);
        return false;
    }
    for (int j = 0; j < N_MAX; j++) {
        if (j == i)
            continue;
        char needle[80];
        g_snprintf(needle, sizeof needle, "=%s", ids[j]);
        bool named = strstr(b, needle) != NULL;
        if (named != (peers[j] != NULL)) {
            g_snprintf(why, why_len, "%s's bindings [%s] %s %s", ids[i], b,
                       named ? "still name" : "miss", ids[j]);
            return false;
        }
    }
    return true;
}

static bool all_bindings_match(void *u)
{
    char why[512];
    for (int i = 0; i < N_MAX; i++)
        if (peers[i] && !bindings_match(i, why, sizeof why))
            return false;
    return true;
}

/* Every receiver is told what its m-lines carry (events, so wait for them to arrive). */
static void check_bindings(GMainContext *ctx)
{
    if (test_wait(ctx, 5000, all_bindings_match, NULL))
        return;
    char why[512];
    for (int i = 0; i < N_MAX; i++)
        if (peers[i] && !bindings_match(i, why, sizeof why))
            FAIL("%s", why);
}

int main(int argc, char **argv)
{
    gst_init(&argc, &argv);
    setvbuf(stdout, NULL, _IOLBF, 0); /* a failure's exit must not lose what was printed */
    GMainContext *ctx = g_main_context_default();
    tm_media_options opts = {.workers = 2, .addresses = "127.0.0.1"};
    test_media_options(&opts);
    char *err = NULL;
    tm_media *m = tm_media_new(&opts, ctx, on_event, NULL, &err);
    if (!m)
        FAIL("tm_media_new: %s", err);

    /* A 1:1 visit: the attending doctor speaks. */
    peers[0] = join(m, 0, 0, LOUD);
    peers[1] = join(m, 1, 0, QUIET);
    wait_mesh(ctx, "two members");
    if (!test_wait(ctx, 10000, speaker_is, (void *)ids[0]))
        FAIL("the loud member did not become the speaker (speaker '%s')", speaker);

    /* A third joins; the two add a recvonly pair each and renegotiate. */
    bool before[N_MAX];
    present(before);
    gaps_reset();
    gint64 t_join = g_get_monotonic_time();
    peers[2] = join(m, 2, 1, QUIET);
    test_peer_add_recv(peers[0], 1);
    test_peer_add_recv(peers[1], 1);
    tones_reset();
    wait_mesh(ctx, "three members");
    printf("third member: first frames %.0f ms after it started\n",
           (double)(peers[2]->vfirst_us[0] - t_join) / 1000.0);
    check_gaps("third joins", before);

    /* A fourth. */
    present(before);
    gaps_reset();
    peers[3] = join(m, 3, 2, QUIET);
    for (int i = 0; i < 3; i++)
        test_peer_add_recv(peers[i], 1);
    tones_reset();
    wait_mesh(ctx, "four members");
    check_gaps("fourth joins", before);
    check_bindings(ctx);

    /* The floor changes hands only after the new voice has been loudest for a while. */
    gint64 t_switch = g_get_monotonic_time();
    test_peer_set_volume(peers[0], QUIET);
    test_peer_set_volume(peers[2], LOUD);
    if (!test_wait(ctx, 15000, speaker_is, (void *)ids[2]))
        FAIL("the speaker did not follow the loudest member (speaker '%s')", speaker);
    double after_ms = (double)(speaker_us - t_switch) / 1000.0;
    printf("speaker switched %.0f ms after the voices changed\n", after_ms);
    if (after_ms < 1200)
        FAIL("the speaker switched after %.0f ms: no hysteresis", after_ms);

    /* The patient leaves; nobody else stalls, their m-lines for the patient go idle. */
    present(before);
    before[1] = false;
    gaps_reset();
    tm_media_peer_close(m, VISIT, ids[1]);
    test_peer_free(peers[1]);
    peers[1] = NULL;
    tones_reset();
    g_usleep(500 * 1000);
    wait_mesh(ctx, "after a leave");
    check_bindings(ctx);
    check_gaps("a member leaves", before);

    /* And comes back with a new PeerConnection, receiving the three others. */
    present(before);
    gaps_reset();
    peers[1] = join(m, 1, 2, QUIET);
    tones_reset();
    wait_mesh(ctx, "after a rejoin");
    check_bindings(ctx);
    check_gaps("a member rejoins", before);
    check_median_freeze(!opts.stock_io && !opts.stock_srtp && !opts.send_each);

    tm_media_visit_close(m, VISIT);
    for (int i = 0; i < N_MAX; i++)
        test_peer_free(peers[i]);
    tm_media_free(m);
    printf("ok media party\n");
    return 0;
}

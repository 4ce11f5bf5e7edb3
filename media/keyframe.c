/*
 * keyframe.c - video back at once after a peer's media path comes back (the
 * end of an outage, an ICE restart, a new transport): its receiving side
 * needs a keyframe from every sender it gets video from, and the others need
 * one from its own camera, since both decoders lost their references.
 *
 * One PLI to each sender now is not enough: the first may cross a path that
 * is only half back, or reach an encoder that has just sent a keyframe into
 * the outage. So each stream asks again every RETRY_MS, up to RETRIES times,
 * until one of its keyframes is forwarded. That keyframe can still be lost
 * on a path the browser has not taken up yet; the receiver then asks itself,
 * and for WINDOW_MS its requests pass with the short gap instead of waiting
 * out the one-a-second limit behind ours. The pacing rides on the stream's
 * own packets (a sender that sends nothing cannot answer anyway), so there
 * is no timer. Runs on the visit's worker.
 */
#include "media_internal.h"

#define RETRY_MS 300
#define RETRIES 3
#define WINDOW_MS 3000

static void arm(tm__peer *sender, tm__in_stream *s, int64_t now_ms)
{
    if (s->kind != TM_MEDIA_VIDEO || !s->ssrc)
        return;
    bool pending = s->kf_tries > 0;
    s->kf_tries = RETRIES + 1;
    s->kf_until_ms = now_ms + WINDOW_MS;
    /* Two triggers of one recovery (ICE ready, then the first packet) ask once. */
    if (!pending && tm__forward_pli(sender, s, now_ms) == 0) {
        s->kf_tries--;
        s->kf_next_ms = now_ms + RETRY_MS;
    } else if (!pending) {
        s->kf_next_ms = now_ms;
    }
}

void tm__keyframe_recover(tm__peer *p, int64_t now_ms)
{
    for (int i = 0; i < p->n_out; i++) {
        tm__out_stream *o = &p->out[i];
        tm__peer *src = o->src_peer;
        if (o->kind != TM_MEDIA_VIDEO || !src || o->src_in < 0 || o->src_in >= src->n_in)
            continue;
        /* Of a simulcast sender, the layer this receiver gets (or waits for). */
        int layer = o->pick.cur >= 0 ? o->pick.cur : o->pick.target;
        bool sim = src->in[o->src_in].n_layers && layer >= 0 && layer < src->in[o->src_in].n_layers;
        arm(src, &src->in[o->src_in + (sim ? layer : 0)], now_ms);
    }
    /* Receivers bind to a simulcast m-line's first layer and may get any of them. */
    for (int i = 0; i < p->n_in; i++) {
        const tm__in_stream *hd = p->in[i].n_layers ? &p->in[p->in[i].head] : &p->in[i];
        if (hd->n_bound > 0)
            arm(p, &p->in[i], now_ms);
    }
}

void tm__keyframe_pace(tm__peer *sender, tm__in_stream *s, bool keyframe, int64_t now_ms)
{
    if (keyframe) {
        s->kf_tries = 0;
        return;
    }
    if (now_ms < s->kf_next_ms)
        return;
    s->kf_tries--;
    s->kf_next_ms = now_ms + RETRY_MS;
    tm__forward_pli(sender, s, now_ms);
}

/*
 * forward_bind.c - which receiver gets which stream. Each receiving m-line
 * of a peer carries one stream of the same kind of another sending peer. A
 * binding stays while its sender is in the visit; new senders take the free
 * m-lines in join order (so a 1:1 peer's audio/video m-lines get the other
 * side's audio/video, and a supervisor's or a party member's recvonly
 * m-lines get everybody's). The receiver is told (TM_MEDIA_EV_BINDINGS)
 * whenever what its m-lines carry changes. Of a simulcast sender each
 * receiver gets the layer its downlink estimate, loss and view allow (simulcast.c
 * decides, this file feeds it). Runs on the visit's worker thread.
 */
#include <inttypes.h>
#include <string.h>

#include "forward_internal.h"
#include "telemed/log.h"

/* ---- simulcast ---- */

void tm__forward_set_view(tm__peer *p, const char *src_peer_id, unsigned width, unsigned height)
{
    tm__view *vw = NULL;
    for (int i = 0; i < p->n_views && !vw; i++)
        if (strcmp(p->views[i].src_peer_id, src_peer_id) == 0)
            vw = &p->views[i];
    if (!vw) {
        if (p->n_views == TM__MAX_VIEWS) { /* the oldest goes: a visit has at most 8 */
            g_free(p->views[0].src_peer_id);
            memmove(&p->views[0], &p->views[1], sizeof p->views[0] * (TM__MAX_VIEWS - 1));
            p->n_views--;
        }
        vw = &p->views[p->n_views++];
        vw->src_peer_id = g_strdup(src_peer_id);
    }
    vw->width = width;
    vw->height = height;
}

static const tm__view *find_view(const tm__peer *r, const char *src_peer_id)
{
    for (int i = 0; i < r->n_views; i++)
        if (strcmp(r->views[i].src_peer_id, src_peer_id) == 0)
            return &r->views[i];
    return NULL;
}

/* What one of r's video streams takes now: the layer it gets (or waits for) of a
 * simulcast source, the source's own rate of a plain one. */
static uint64_t stream_takes(const tm__out_stream *x)
{
    const tm__peer *q = x->src_peer;
    if (!q || x->src_in < 0 || x->src_in >= q->n_in)
        return 0;
    const tm__in_stream *hd = &q->in[x->src_in];
    if (!hd->n_layers)
        return x->st.bitrate_bps;
    int l = x->pick.target >= 0 ? x->pick.target : x->pick.cur;
    return l >= 0 && l < hd->n_layers ? q->in[x->src_in + l].meter.bps : 0;
}

/* A receiver's downlink (the server's estimate, else its REMB) is for everything it
 * receives: o may have what r's other video streams do not take now, so a main tile
 * grows into what a thumbnail leaves rather than into an even share of it. Choices
 * run one stream after another, so a step up of one is in the next one's figure;
 * every stream keeps at least an even share. */
static uint64_t downlink_share(const tm__peer *r, const tm__out_stream *o, int64_t now_ms)
{
    uint64_t est = tm__congestion_downlink_bps(r);
    if (!est && o->remb_bps && now_ms - o->remb_ms < REMB_FRESH_MS)
        est = o->remb_bps;
    if (!est)
        return 0;
    uint64_t n = 0, others = 0;
    for (int i = 0; i < r->n_out; i++) {
        const tm__out_stream *x = &r->out[i];
        if (x->kind != TM_MEDIA_VIDEO || !x->src_peer)
            continue;
        n++;
        if (x != o)
            others += stream_takes(x);
    }
    uint64_t even = est / (n ? n : 1);
    return others < est && est - others > even ? est - others : even;
}

/* Receiver r's layer of the simulcast source o is bound to, from its downlink (or the
 * loss it reports) and its view of that sender; a new target gets a keyframe asked for. */
static void choose_layer(tm__peer *r, tm__out_stream *o, int64_t now_ms)
{
    tm__peer *q = o->src_peer;
    tm__in_stream *hd = &q->in[o->src_in];
    tm__layer_info layers[TM__MAX_LAYERS];
    int n = hd->n_layers < TM__MAX_LAYERS ? hd->n_layers : TM__MAX_LAYERS;
    for (int l = 0; l < n; l++)
        layers[l] = q->in[o->src_in + l].meter;
    bool measured = tm__congestion_downlink_bps(r) != 0;
    tm__layer_limits lim = {
        .est_bps = downlink_share(r, o, now_ms),
        .measured = measured,
        .lossy = !measured && o->st.fraction_lost > 25, /* of 256: over 10 % */
    };
    const tm__view *vw = find_view(r, q->id);
    if (vw) {
        lim.view_set = true;
        lim.view_w = vw->width;
        lim.view_h = vw->height;
    }
    if (tm__layer_choose(&o->pick, layers, n, &lim, now_ms) && o->pick.target >= 0) {
        const tm__in_stream *t = &q->in[o->src_in + o->pick.target];
        tm_info("media.layer",
                "visit=%s peer=%s src=%s rid=%s width=%u est_bps=%" PRIu64 " lossy=%d",
                r->visit->id, r->id, q->id, t->rid, t->meter.width, lim.est_bps, (int)lim.lossy);
    } else if (!tm__layer_overdue(&o->pick, now_ms)) {
        return;
    }
    if (r->srtp)
        tm__forward_keyframe_request(q, &q->in[o->src_in + o->pick.target], true);
}

/* Once a second, as a sender: what each of p's layers carried; the recorder moves to
 * the best one. */
void tm__forward_meter_layers(tm__peer *p, int64_t now_ms)
{
    for (int i = 0; i < p->n_in; i++) {
        tm__in_stream *s = &p->in[i];
        if (!s->n_layers)
            continue;
        s->meter.bps = (s->meter.bps + s->meter_bytes * 8) / 2;
        s->meter_bytes = 0;
        s->meter.active = s->meter_rx_ms && now_ms - s->meter_rx_ms < 1500;
    }
    for (int i = 0; i < p->n_in; i++) {
        tm__in_stream *hd = &p->in[i];
        if (!hd->n_layers || hd->layer != 0 || !hd->rec_track1)
            continue;
        tm__layer_info layers[TM__MAX_LAYERS];
        int n = hd->n_layers < TM__MAX_LAYERS ? hd->n_layers : TM__MAX_LAYERS;
        for (int l = 0; l < n; l++)
            layers[l] = p->in[i + l].meter;
        int best = tm__layer_best(layers, n);
        if (best >= 0 && best != hd->rec_pick.target) {
            hd->rec_pick.target = best;
            hd->rec_pick.asked_ms = now_ms;
            tm__forward_keyframe_request(p, &p->in[i + best], true);
        } else if (tm__layer_overdue(&hd->rec_pick, now_ms)) {
            tm__forward_keyframe_request(p, &p->in[i + hd->rec_pick.target], true);
        }
    }
}

/* Once a second, as a receiver: the layer of each simulcast source it gets. */
void tm__forward_choose_layers(tm__peer *r, int64_t now_ms)
{
    for (int i = 0; i < r->n_out; i++) {
        tm__out_stream *o = &r->out[i];
        if (o->src_peer && o->src_in >= 0 && o->src_in < o->src_peer->n_in &&
            o->src_peer->in[o->src_in].n_layers)
            choose_layer(r, o, now_ms);
    }
}

/* ---- binding ---- */

void tm__forward_unbind(tm__visit *v, tm__peer *p)
{
    if (v->speaker == p)
        v->speaker = NULL;
    if (v->speaker_cand == p)
        v->speaker_cand = NULL;
    for (guint i = 0; i < v->peers->len; i++) {
        tm__peer *q = g_ptr_array_index(v->peers, i);
        for (int k = 0; k < q->n_in; k++) {
            tm__in_stream *s = &q->in[k];
            int j = 0;
            for (int b = 0; b < s->n_bound; b++) {
                if (s->bound_peer[b] != p) {
                    s->bound_peer[j] = s->bound_peer[b];
                    s->bound_out[j] = s->bound_out[b];
                    j++;
                }
            }
            s->n_bound = j;
        }
        for (int k = 0; k < q->n_out; k++)
            if (q->out[k].src_peer == p)
                q->out[k].src_peer = NULL;
    }
}

/* Whether o's source is still a stream of a sender that is in the visit. */
static bool binding_alive(tm__visit *v, tm__peer *r, const tm__out_stream *o)
{
    tm__peer *q = o->src_peer;
    if (!q || q == r || q->closing || o->src_in < 0 || o->src_in >= q->n_in ||
        q->in[o->src_in].kind != o->kind ||
        (q->in[o->src_in].n_layers && q->in[o->src_in].layer != 0))
        return false;
    for (guint i = 0; i < v->peers->len; i++)
        if (g_ptr_array_index(v->peers, i) == q)
            return true;
    return false;
}

static bool stream_bound_to(const tm__peer *r, const tm__peer *q, int k)
{
    for (int i = 0; i < r->n_out; i++)
        if (r->out[i].src_peer == q && r->out[i].src_in == k)
            return true;
    return false;
}

static void bind_out(tm__peer *r, int oi, tm__peer *q, int k)
{
    tm__out_stream *o = &r->out[oi];
    tm__in_stream *s = &q->in[k];
    bool changed = o->src_peer != q || o->src_in != k;
    o->src_peer = q;
    o->src_in = k;
    memset(o->ext_map, 0, sizeof o->ext_map);
    if (s->ext_abs > 0 && s->ext_abs < 256 && o->ext_abs > 0 && o->ext_abs < 256)
        o->ext_map[s->ext_abs] = (uint8_t)o->ext_abs;
    if (s->ext_level > 0 && s->ext_level < 256 && o->ext_level > 0 && o->ext_level < 256)
        o->ext_map[s->ext_level] = (uint8_t)o->ext_level;
    if (s->n_bound < TM__MAX_BOUND) {
        s->bound_peer[s->n_bound] = r;
        s->bound_out[s->n_bound] = oi;
        s->n_bound++;
    }
    if (changed)
        tm__layer_pick_init(&o->pick);
    if (changed && s->n_layers)
        choose_layer(r, o, tm_mono_ms());
    else if (changed && r->srtp && s->kind == TM_MEDIA_VIDEO)
        tm__forward_keyframe_request(q, s, true);
}

/* Tells the receiver what its m-lines carry, when that changed since it was last told. */
static void post_bindings(tm__peer *r, bool always)
{
    tm_media_binding b[TM__MAX_STREAMS];
    bool changed = always;
    int n = r->n_out < TM__MAX_STREAMS ? r->n_out : TM__MAX_STREAMS;
    for (int i = 0; i < n; i++) {
        tm__out_stream *o = &r->out[i];
        uint64_t seq1 = o->src_peer ? o->src_peer->join_seq + 1 : 0;
        changed = changed || seq1 != o->told_src_seq1;
        o->told_src_seq1 = seq1;
        b[i] = (tm_media_binding){.mid = o->mid,
                                  .video = o->kind == TM_MEDIA_VIDEO,
                                  .src_peer_id = o->src_peer ? o->src_peer->id : NULL};
    }
    if (!changed || n == 0 || r->w->stopping)
        return;
    tm_media_event ev = {.type = TM_MEDIA_EV_BINDINGS,
                         .visit_id = r->visit->id,
                         .peer_id = r->id,
                         .bindings = b,
                         .n_bindings = (size_t)n};
    tm__media_post(r->w, &ev);
}

/* Binds one receiver's out streams of one kind: a binding whose sender is
 * still there stays on its m-line (its receiver sees no interruption when
 * others join or leave); streams not yet bound take the free m-lines in
 * join order. */
static void rebind_kind(tm__visit *v, tm__peer *r, tm_media_kind kind)
{
    for (int oi = 0; oi < r->n_out; oi++) {
        tm__out_stream *o = &r->out[oi];
        if (o->kind != kind)
            continue;
        if (binding_alive(v, r, o))
            bind_out(r, oi, o->src_peer, o->src_in);
        else
            o->src_peer = NULL;
    }
    int next_free = 0;
    for (guint si = 0; si < v->peers->len; si++) {
        tm__peer *q = g_ptr_array_index(v->peers, si);
        if (q == r || q->closing)
            continue;
        for (int k = 0; k < q->n_in; k++) {
            if (q->in[k].kind != kind || (q->in[k].n_layers && q->in[k].layer != 0) ||
                stream_bound_to(r, q, k))
                continue; /* a simulcast m-line binds by its first layer */
            while (next_free < r->n_out &&
                   (r->out[next_free].kind != kind || r->out[next_free].src_peer))
                next_free++;
            if (next_free >= r->n_out)
                return; /* more senders than m-lines: the client adds transceivers */
            bind_out(r, next_free, q, k);
        }
    }
}

static int video_senders(const tm__peer *r)
{
    const tm__peer *first = NULL;
    for (int i = 0; i < r->n_out; i++) {
        const tm__peer *q = r->out[i].kind == TM_MEDIA_VIDEO ? r->out[i].src_peer : NULL;
        if (q && first && q != first)
            return 2;
        first = q ? q : first;
    }
    return first ? 1 : 0;
}

void tm__forward_rebind(tm__visit *v)
{
    for (guint i = 0; i < v->peers->len; i++) {
        tm__peer *q = g_ptr_array_index(v->peers, i);
        for (int k = 0; k < q->n_in; k++)
            q->in[k].n_bound = 0;
    }
    for (guint ri = 0; ri < v->peers->len; ri++) {
        tm__peer *r = g_ptr_array_index(v->peers, ri);
        rebind_kind(v, r, TM_MEDIA_AUDIO);
        rebind_kind(v, r, TM_MEDIA_VIDEO);
        r->video_mixed = video_senders(r) > 1;
        post_bindings(r, r->bindings_due);
        r->bindings_due = false;
    }
}

/* Of a simulcast sender only the layer the recorder takes (every layer until it
 * has chosen): a keyframe costs the sender an encode. */
void tm__forward_keyframes_all(tm__visit *v)
{
    for (guint i = 0; i < v->peers->len; i++) {
        tm__peer *q = g_ptr_array_index(v->peers, i);
        for (int k = 0; k < q->n_in; k++) {
            tm__in_stream *s = &q->in[k];
            if (s->kind != TM_MEDIA_VIDEO)
                continue;
            if (s->n_layers) {
                const tm__layer_pick *rp = &q->in[s->head].rec_pick;
                int layer = rp->cur >= 0 ? rp->cur : rp->target;
                if (layer >= 0 && s->layer != layer)
                    continue;
            }
            tm__forward_keyframe_request(q, s, true);
        }
    }
}

/*
 * reorder.c - the recorder's jitterbuffer: each track's packets in
 * sequence order, duplicates and late packets out, a gap waited for
 * TM_REC_REORDER_MS, and each packet's media time.
 *
 * Media time comes from the RTP timestamp, anchored to the packet's
 * arrival on the worker relative to the recording's first packet, and
 * re-anchored when the two drift TM_REC_RESYNC_MS apart (a sender that
 * reconnects with a new clock). So the file starts at 0, frames keep
 * their sender's spacing, and the recorder thread's own lag does not
 * matter. Recorder thread.
 */
#include "recorder_internal.h"

static uint32_t be32(const uint8_t *d)
{
    return (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];
}

void tm__rec_release(tm_rec_track *t, int64_t cutoff_ns, bool final)
{
    guint n = 0;
    for (; n < t->held->len; n++) {
        tm_rec_held *h = &g_array_index(t->held, tm_rec_held, n);
        if (!final && h->eseq != t->next_eseq && h->arrival_ns > cutoff_ns)
            break;
        t->next_eseq = h->eseq + 1;
        tm__rec_depay(t, h);
    }
    if (n)
        g_array_remove_range(t->held, 0, n);
}

/* Forgets the track's sequence and time state (a new sender connection),
 * after sending on what it held. */
static void reset_track(tm_rec_track *t)
{
    tm__rec_release(t, 0, true);
    t->seq_init = false;
    t->ts_init = false;
}

/* The packet's sequence number extended to 64 bits, or 0 when it comes
 * too late (or again). A new SSRC or a jump over TM_REC_SEQ_JUMP starts
 * the track afresh. */
static uint64_t extend_seq(tm_rec_track *t, uint16_t seq, uint32_t ssrc)
{
    int16_t dseq = t->seq_init ? (int16_t)(uint16_t)(seq - (uint16_t)t->max_eseq) : 0;
    if (t->seq_init && (ssrc != t->ssrc || dseq > TM_REC_SEQ_JUMP || dseq < -TM_REC_SEQ_JUMP))
        reset_track(t);
    uint64_t eseq;
    if (!t->seq_init) {
        t->seq_init = true;
        t->ssrc = ssrc;
        eseq = t->max_eseq = t->next_eseq = ((uint64_t)1 << 32) + seq;
    } else {
        eseq = t->max_eseq + (uint64_t)(int64_t)dseq;
        if (dseq > 0)
            t->max_eseq = eseq;
    }
    return eseq < t->next_eseq ? 0 : eseq;
}

/* Media time (ns from the recording's start) of a packet with RTP
 * timestamp ts that arrived at arrival_ns. Anchored to the quickest
 * arrival so far, so the mapping follows the least delayed packets (and a
 * sender's audio and video, each anchored that way, stay in sync). */
static int64_t media_time(tm_recorder *r, tm_rec_track *t, uint32_t ts, int64_t arrival_ns)
{
    int64_t arrival_pts = arrival_ns - r->first_arrival_ns;
    t->ext_ts = t->ts_init ? t->ext_ts + (uint64_t)(int64_t)(int32_t)(ts - (uint32_t)t->ext_ts)
                           : ((uint64_t)1 << 32) + ts;
    int64_t pts = 0;
    if (t->ts_init)
        pts = t->anchor_pts +
              (int64_t)((int64_t)(t->ext_ts - t->anchor_ts) * 1000000000.0 / (double)t->clock_rate);
    int64_t resync = (int64_t)TM_REC_RESYNC_MS * 1000000;
    if (!t->ts_init || pts - arrival_pts > resync || arrival_pts - pts > resync) {
        t->ts_init = true;
        t->anchor_ts = t->ext_ts;
        t->anchor_pts = arrival_pts;
        pts = arrival_pts;
    } else if (pts > arrival_pts) {
        t->anchor_pts -= pts - arrival_pts;
        pts = arrival_pts;
    }
    return pts;
}

void tm__rec_take_packet(tm_recorder *r, const tm_rec_hdr *rh, tm_rec_arena *a, gsize off)
{
    tm_rec_track *t = &r->tracks[rh->track];
    if (atomic_load_explicit(&r->failed, memory_order_relaxed) || t->ended) {
        tm__rec_count_drop(r);
        return;
    }
    if (!r->first_arrival_ns)
        r->first_arrival_ns = rh->arrival_ns;
    const uint8_t *d = a->data + off;
    uint64_t eseq = extend_seq(t, (uint16_t)(d[2] << 8 | d[3]), be32(d + 8));
    if (!eseq)
        return; /* too late, or a retransmission of what went on already */
    int64_t pts = media_time(r, t, be32(d + 4), rh->arrival_ns);

    /* Insert in sequence order; mostly this is the end. */
    guint at = t->held->len;
    while (at > 0 && g_array_index(t->held, tm_rec_held, at - 1).eseq > eseq)
        at--;
    if (at > 0 && g_array_index(t->held, tm_rec_held, at - 1).eseq == eseq)
        return; /* a duplicate */
    tm_rec_held h = {.eseq = eseq,
                     .arrival_ns = rh->arrival_ns,
                     .pts = pts > 0 ? (uint64_t)pts : 0,
                     .arena = tm__rec_arena_ref(a),
                     .off = (uint32_t)off,
                     .len = rh->len};
    g_array_insert_val(t->held, at, h);
}

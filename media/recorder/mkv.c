/*
 * mkv.c - the Matroska writer of the recorder: the elements matroskamux
 * wrote for Opus, VP8 and H.264, appended to the caller's buffer.
 *
 *   EBML header, Segment (size unknown until the end) {
 *     Void, replaced by a SeekHead at the end (seekable);
 *     Info (1 ms timestamps, Duration filled in at the end (seekable),
 *           DateUTC: the wall time of the first packet);
 *     Tracks;
 *     Clusters, each whole and of known size: Timestamp, SimpleBlocks;
 *     Cues (seekable): the cluster of each video keyframe }
 *
 * Crash safety rests on the caller storing whole clusters at a time: a
 * cut-off file is an unknown-size Segment of whole clusters, which players
 * read to its end. Written here rather than by matroskamux because its
 * collect pads and per-frame buffers were most of the recorder's CPU
 * (tests/bench/README.md). Runs on the recorder thread; no I/O.
 */
#include "mkv.h"

#include "telemed/common.h"

#include <string.h>

typedef struct tm_mkv_cue {
    uint64_t ms, cluster; /* cluster: its position from the Segment's data */
    uint8_t track;
} tm_mkv_cue;

static uint8_t *room(tm_mkv_buf *o, size_t n)
{
    if (o->oom)
        return NULL;
    if (o->len + n > o->cap) {
        size_t cap = MAX(o->cap * 2, MAX((size_t)64 * 1024, o->len + n));
        uint8_t *p = g_try_realloc(o->p, cap);
        if (!p) {
            o->oom = true;
            return NULL;
        }
        o->p = p;
        o->cap = cap;
    }
    uint8_t *at = o->p + o->len;
    o->len += n;
    return at;
}

static void put_bytes(tm_mkv_buf *o, const void *d, size_t n)
{
    uint8_t *p = room(o, n);
    if (p && n)
        memcpy(p, d, n);
}

static void put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

void tm__mkv_put_id(tm_mkv_buf *o, uint32_t id)
{
    int n = id > 0xFFFFFF ? 4 : id > 0xFFFF ? 3 : id > 0xFF ? 2 : 1;
    uint8_t *p = room(o, (size_t)n);
    if (p)
        put_be(p, id, n);
}

void tm__mkv_put_size(tm_mkv_buf *o, uint64_t v, int width)
{
    int n = width;
    if (!n) /* all value bits set is reserved for "unknown" */
        for (n = 1; n < 8 && v >= ((uint64_t)1 << (7 * n)) - 1; n++)
            ;
    uint8_t *p = room(o, (size_t)n);
    if (p) {
        put_be(p, v, n);
        p[0] |= (uint8_t)(0x80 >> (n - 1));
    }
}

static void put_uint(tm_mkv_buf *o, uint32_t id, uint64_t v)
{
    int n = 1;
    while (n < 8 && v >> (8 * n))
        n++;
    tm__mkv_put_id(o, id);
    tm__mkv_put_size(o, (uint64_t)n, 1);
    uint8_t *p = room(o, (size_t)n);
    if (p)
        put_be(p, v, n);
}

static void put_double_at(uint8_t *p, double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    put_be(p, u, 8);
}

static void put_float(tm_mkv_buf *o, uint32_t id, double d)
{
    tm__mkv_put_id(o, id);
    tm__mkv_put_size(o, 8, 1);
    uint8_t *p = room(o, 8);
    if (p)
        put_double_at(p, d);
}

static void put_bin(tm_mkv_buf *o, uint32_t id, const void *d, size_t n)
{
    tm__mkv_put_id(o, id);
    tm__mkv_put_size(o, n, 0);
    put_bytes(o, d, n);
}

static void put_str(tm_mkv_buf *o, uint32_t id, const char *s)
{
    put_bin(o, id, s, strlen(s));
}

static void put_zeros(tm_mkv_buf *o, size_t n)
{
    uint8_t *z = room(o, n);
    if (z)
        memset(z, 0, n);
}

/* A master element whose size end_master fills in: returns where its
 * 4-byte size is. */
static size_t begin_master(tm_mkv_buf *o, uint32_t id)
{
    tm__mkv_put_id(o, id);
    size_t at = o->len;
    room(o, 4);
    return at;
}

static void end_master(tm_mkv_buf *o, size_t at)
{
    if (o->oom)
        return;
    put_be(o->p + at, (uint64_t)(o->len - at - 4), 4);
    o->p[at] |= 0x10;
}

void tm__mkv_init(tm_mkv *m, tm_mkv_buf *out, bool seekable)
{
    memset(m, 0, sizeof *m);
    m->out = out;
    m->seekable = seekable;
    if (seekable)
        m->cues = g_array_new(FALSE, FALSE, sizeof(tm_mkv_cue));
}

void tm__mkv_clear(tm_mkv *m)
{
    if (m->cues)
        g_array_free(m->cues, TRUE);
    m->cues = NULL;
}

uint64_t tm__mkv_pos(const tm_mkv *m)
{
    return m->out_pos + m->out->len;
}

void tm__mkv_consumed(tm_mkv *m)
{
    m->out_pos += m->out->len;
    m->out->len = 0;
}

static const char *codec_id(tm_recorder_codec c)
{
    return c == TM_REC_OPUS ? "A_OPUS" : c == TM_REC_VP8 ? "V_VP8" : "V_MPEG4/ISO/AVC";
}

static void track_entry(tm_mkv_buf *o, const tm_mkv_track *t)
{
    bool audio = t->codec == TM_REC_OPUS;
    size_t e = begin_master(o, TM_MKV_TRACK_ENTRY);
    put_uint(o, TM_MKV_TRACK_NUMBER, t->number);
    put_uint(o, 0x73C5, ((uint64_t)g_random_int() << 32 | g_random_int()) | 1); /* TrackUID */
    put_uint(o, 0x83, audio ? 2 : 1);                                           /* TrackType */
    put_uint(o, 0x9C, 0);                                                       /* FlagLacing */
    if (t->name)
        put_str(o, 0x536E, t->name);
    put_str(o, TM_MKV_CODEC_ID, codec_id(t->codec));
    if (audio) {
        /* OpusHead (RFC 7845 5.1) as matroskamux made it for WebRTC's
         * Opus: version 1, channels, no pre-skip, 48 kHz, no gain, family 0. */
        int ch = t->channels > 0 && t->channels <= 2 ? t->channels : 2;
        uint8_t head[19];
        memcpy(head, "OpusHead\x01\x02\x00\x00\x80\xbb\x00\x00\x00\x00\x00", sizeof head);
        head[9] = (uint8_t)ch;
        put_bin(o, TM_MKV_CODEC_PRIVATE, head, sizeof head);
        put_uint(o, 0x56BB, 80000000); /* SeekPreRoll: 80 ms, as RFC 7845 asks */
        size_t a = begin_master(o, 0xE1);
        put_float(o, 0xB5, 48000.0);
        put_uint(o, 0x9F, (uint64_t)ch);
        end_master(o, a);
    } else {
        if (t->codec_private)
            put_bin(o, TM_MKV_CODEC_PRIVATE, t->codec_private, t->codec_private_len);
        size_t v = begin_master(o, 0xE0);
        put_uint(o, 0xB0, (uint64_t)MAX(t->width, 1));
        put_uint(o, 0xBA, (uint64_t)MAX(t->height, 1));
        end_master(o, v);
    }
    end_master(o, e);
}

void tm__mkv_header(tm_mkv *m, const tm_mkv_track *tracks, size_t n)
{
    tm_mkv_buf *o = m->out;
    m->started = true;
    size_t e = begin_master(o, TM_MKV_EBML);
    put_uint(o, 0x4286, 1); /* EBMLVersion */
    put_uint(o, 0x42F7, 1); /* EBMLReadVersion */
    put_uint(o, 0x42F2, 4); /* EBMLMaxIDLength */
    put_uint(o, 0x42F3, 8); /* EBMLMaxSizeLength */
    put_str(o, 0x4282, "matroska");
    put_uint(o, 0x4287, 4); /* DocTypeVersion */
    put_uint(o, 0x4285, 2); /* DocTypeReadVersion */
    end_master(o, e);
    tm__mkv_put_id(o, TM_MKV_SEGMENT);
    m->seg_size_pos = tm__mkv_pos(m);
    tm__mkv_put_size(o, ((uint64_t)1 << 56) - 1, 8); /* unknown */
    m->seg_data = tm__mkv_pos(m);
    if (m->seekable) {
        m->seek_pos = tm__mkv_pos(m);
        tm__mkv_put_id(o, TM_MKV_VOID);
        tm__mkv_put_size(o, TM_MKV_SEEK_VOID_BYTES - 9, 8);
        put_zeros(o, TM_MKV_SEEK_VOID_BYTES - 9);
    }
    m->info_pos = tm__mkv_pos(m);
    size_t info = begin_master(o, TM_MKV_INFO);
    put_uint(o, TM_MKV_TIMESTAMP_SCALE, 1000000); /* ms */
    if (m->seekable) {
        tm__mkv_put_id(o, TM_MKV_DURATION); /* in ms, filled in at the end */
        tm__mkv_put_size(o, 8, 1);
        m->dur_pos = tm__mkv_pos(m);
        put_zeros(o, 8); /* 0.0 */
    }
    if (m->date_unix_us) {
        /* DateUTC: a signed count of ns since 2001-01-01T00:00:00 UTC. */
        int64_t ns = (m->date_unix_us - (int64_t)TM_MKV_EPOCH_2001_S * 1000000) * 1000;
        tm__mkv_put_id(o, TM_MKV_DATE_UTC);
        tm__mkv_put_size(o, 8, 1);
        uint8_t *p = room(o, 8);
        if (p)
            put_be(p, (uint64_t)ns, 8);
    }
    put_str(o, 0x4D80, "telemed"); /* MuxingApp */
    put_str(o, 0x5741, "telemed"); /* WritingApp */
    end_master(o, info);
    m->tracks_pos = tm__mkv_pos(m);
    size_t tr = begin_master(o, TM_MKV_TRACKS);
    for (size_t i = 0; i < n; i++) {
        m->has_video = m->has_video || tracks[i].codec != TM_REC_OPUS;
        track_entry(o, &tracks[i]);
    }
    end_master(o, tr);
}

void tm__mkv_close_cluster(tm_mkv *m)
{
    if (m->in_cluster)
        end_master(m->out, m->cluster_size);
    m->in_cluster = false;
}

uint8_t *tm__mkv_block(tm_mkv *m, uint8_t number, bool video, int64_t ms, bool key, size_t n)
{
    tm_mkv_buf *o = m->out;
    if (!m->in_cluster || ms < m->cluster_ms || ms - m->cluster_ms > TM_MKV_CLUSTER_MAX_MS) {
        tm__mkv_close_cluster(m);
        m->cluster_pos = tm__mkv_pos(m);
        m->cluster_size = begin_master(o, TM_MKV_CLUSTER);
        put_uint(o, TM_MKV_CLUSTER_TIMESTAMP, (uint64_t)ms);
        m->in_cluster = true;
        m->cluster_ms = ms;
        m->cluster_cued = false;
    }
    if (!m->cluster_cued && m->cues && ((key && video) || !m->has_video)) {
        tm_mkv_cue c = {
            .ms = (uint64_t)ms, .cluster = m->cluster_pos - m->seg_data, .track = number};
        g_array_append_val(m->cues, c);
        m->cluster_cued = true;
    }
    /* track, int16 time from the cluster's, flags, then the frame */
    tm__mkv_put_id(o, TM_MKV_SIMPLEBLOCK);
    tm__mkv_put_size(o, n + 4, 0);
    uint8_t *p = room(o, 4 + n);
    if (!p)
        return NULL;
    p[0] = (uint8_t)(0x80 | number);
    put_be(p + 1, (uint64_t)(uint16_t)(int16_t)(ms - m->cluster_ms), 2);
    p[3] = key ? 0x80 : 0;
    return p + 4;
}

static void put_cues(tm_mkv *m)
{
    tm_mkv_buf *o = m->out;
    size_t cs = begin_master(o, TM_MKV_CUES);
    for (guint i = 0; i < m->cues->len; i++) {
        const tm_mkv_cue *c = &g_array_index(m->cues, tm_mkv_cue, i);
        size_t p = begin_master(o, TM_MKV_CUE_POINT);
        put_uint(o, TM_MKV_CUE_TIME, c->ms);
        size_t tp = begin_master(o, TM_MKV_CUE_TRACK_POSITIONS);
        put_uint(o, TM_MKV_CUE_TRACK, c->track);
        put_uint(o, TM_MKV_CUE_CLUSTER_POSITION, c->cluster);
        end_master(o, tp);
        end_master(o, p);
    }
    end_master(o, cs);
}

/* The SeekHead for the Void at the Segment's start, the rest of the Void
 * kept as a smaller Void: exactly TM_MKV_SEEK_VOID_BYTES. */
static int seekhead_patch(const tm_mkv *m, uint64_t cues_pos, tm_mkv_patch *pt)
{
    tm_mkv_buf sh = {0};
    size_t h = begin_master(&sh, TM_MKV_SEEKHEAD);
    uint32_t ids[3] = {TM_MKV_INFO, TM_MKV_TRACKS, TM_MKV_CUES};
    uint64_t pos[3] = {m->info_pos, m->tracks_pos, cues_pos};
    for (int i = 0; i < 3; i++) {
        if (!pos[i])
            continue;
        size_t s = begin_master(&sh, TM_MKV_SEEK);
        uint8_t id[4];
        put_be(id, ids[i], 4);
        put_bin(&sh, TM_MKV_SEEKID, id, 4);
        tm__mkv_put_id(&sh, TM_MKV_SEEKPOS);
        tm__mkv_put_size(&sh, 8, 1);
        uint8_t *p = room(&sh, 8);
        if (p)
            put_be(p, pos[i] - m->seg_data, 8);
        end_master(&sh, s);
    }
    end_master(&sh, h);
    size_t rest = TM_MKV_SEEK_VOID_BYTES - sh.len;
    tm__mkv_put_id(&sh, TM_MKV_VOID);
    tm__mkv_put_size(&sh, rest - 2, 1);
    put_zeros(&sh, rest - 2);
    int rc = sh.oom || sh.len != TM_MKV_SEEK_VOID_BYTES ? TM_ENOMEM : 0;
    if (rc == 0) {
        pt->pos = m->seek_pos;
        pt->len = sh.len;
        memcpy(pt->bytes, sh.p, sh.len);
    }
    g_free(sh.p);
    return rc;
}

int tm__mkv_finish(tm_mkv *m, double duration_ms, tm_mkv_patch patches[3], size_t *npatch)
{
    *npatch = 0;
    tm__mkv_close_cluster(m);
    if (!m->seekable)
        return m->out->oom ? TM_ENOMEM : 0;
    uint64_t cues_pos = 0;
    if (m->cues->len) {
        cues_pos = tm__mkv_pos(m);
        put_cues(m);
    }
    if (m->out->oom)
        return TM_ENOMEM;
    tm_mkv_patch *seg = &patches[0], *dur = &patches[1];
    seg->pos = m->seg_size_pos;
    seg->len = 8;
    seg->bytes[0] = 0x01; /* the Segment's size, 8 bytes wide as written */
    put_be(seg->bytes + 1, tm__mkv_pos(m) - m->seg_data, 7);
    dur->pos = m->dur_pos;
    dur->len = 8;
    put_double_at(dur->bytes, duration_ms);
    int rc = seekhead_patch(m, cues_pos, &patches[2]);
    if (rc == 0)
        *npatch = 3;
    return rc;
}

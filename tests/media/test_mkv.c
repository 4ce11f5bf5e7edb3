/*
 * test_mkv.c - the recorder's Matroska writer (media/recorder/mkv.c) byte
 * by byte: EBML ids and sizes, then whole streams read back with a small
 * EBML reader of this test's own: cluster timestamps, SimpleBlock times and
 * keyframe flags, the Cues, SeekHead and Duration patched in at the end,
 * and the unknown-size Segment a crash or an encrypted stream leaves.
 * Players reading the writer's files are tested by test_recorder.
 */
#include "mkv.h"
#include "tm_test.h"

#include <glib.h>
#include <math.h>

/* ---- a small EBML reader ------------------------------------------------ */

typedef struct el {
    uint32_t id;
    int depth;
    int parent;     /* index in the list, -1 at the top */
    size_t pos;     /* of the id */
    size_t data;    /* of the data */
    uint64_t size;  /* of the data */
    bool unknown;   /* size "unknown": to the end of the parent (here: the buffer) */
    int size_bytes; /* width of the size field */
} el;

static bool is_master(uint32_t id)
{
    switch (id) {
    case TM_MKV_EBML:
    case TM_MKV_SEGMENT:
    case TM_MKV_SEEKHEAD:
    case TM_MKV_SEEK:
    case TM_MKV_INFO:
    case TM_MKV_TRACKS:
    case TM_MKV_TRACK_ENTRY:
    case 0xE0: /* Video */
    case 0xE1: /* Audio */
    case TM_MKV_CLUSTER:
    case TM_MKV_CUES:
    case TM_MKV_CUE_POINT:
    case TM_MKV_CUE_TRACK_POSITIONS:
        return true;
    }
    return false;
}

/* A variable-length integer at p: its width from the leading 1 bit. The
 * marker bit stays in an id and is taken out of a size. */
static int read_vint(const uint8_t *p, size_t avail, bool keep_marker, uint64_t *v, bool *all_ones)
{
    if (avail == 0 || p[0] == 0)
        return 0;
    int n = 1;
    while (!(p[0] & (0x80 >> (n - 1))))
        n++;
    if ((size_t)n > avail)
        return 0;
    uint64_t x = keep_marker ? p[0] : p[0] & (0xFF >> n);
    bool ones = (p[0] & (0xFF >> n)) == (0xFF >> n);
    for (int i = 1; i < n; i++) {
        x = x << 8 | p[i];
        ones = ones && p[i] == 0xFF;
    }
    *v = x;
    if (all_ones)
        *all_ones = ones;
    return n;
}

/* Reads the elements of buf[from, to) at depth into out, masters' children
 * after them. Fails the test on anything that does not parse. */
static void read_level(const uint8_t *buf, size_t from, size_t to, int depth, int parent,
                       GArray *out)
{
    size_t at = from;
    while (at < to) {
        uint64_t id, size;
        bool ones;
        int idn = read_vint(buf + at, to - at, true, &id, NULL);
        CHECK(idn >= 1 && idn <= 4);
        int sn = read_vint(buf + at + idn, to - at - idn, false, &size, &ones);
        CHECK(sn >= 1 && sn <= 8);
        el e = {.id = (uint32_t)id,
                .depth = depth,
                .parent = parent,
                .pos = at,
                .data = at + idn + sn,
                .size = size,
                .unknown = ones,
                .size_bytes = sn};
        if (e.unknown)
            e.size = to - e.data;
        CHECK(e.data + e.size <= to);
        g_array_append_val(out, e);
        int me = (int)out->len - 1;
        if (is_master(e.id))
            read_level(buf, e.data, e.data + e.size, depth + 1, me, out);
        at = e.data + e.size;
    }
}

static GArray *read_all(const uint8_t *buf, size_t len)
{
    GArray *a = g_array_new(FALSE, FALSE, sizeof(el));
    read_level(buf, 0, len, 0, -1, a);
    return a;
}

/* The nth element with id (0: the first), or NULL. */
static const el *find(GArray *els, uint32_t id, int nth)
{
    for (guint i = 0; i < els->len; i++) {
        const el *e = &g_array_index(els, el, i);
        if (e->id == id && nth-- == 0)
            return e;
    }
    return NULL;
}

/* The first child of parent with id, or NULL. */
static const el *child(GArray *els, const el *parent, uint32_t id)
{
    int pi = (int)(parent - &g_array_index(els, el, 0));
    for (guint i = (guint)pi + 1; i < els->len; i++) {
        const el *e = &g_array_index(els, el, i);
        if (e->parent == pi && e->id == id)
            return e;
    }
    return NULL;
}

static int count(GArray *els, uint32_t id)
{
    int n = 0;
    while (find(els, id, n))
        n++;
    return n;
}

static uint64_t uint_of(const uint8_t *buf, const el *e)
{
    CHECK(e != NULL && e->size >= 1 && e->size <= 8);
    uint64_t v = 0;
    for (uint64_t i = 0; i < e->size; i++)
        v = v << 8 | buf[e->data + i];
    return v;
}

static double float_of(const uint8_t *buf, const el *e)
{
    CHECK(e != NULL && e->size == 8);
    uint64_t u = uint_of(buf, e);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* ---- writing a stream into a "file" --------------------------------------- */

typedef struct file {
    tm_mkv_buf out;
    tm_mkv m;
    GByteArray *bytes; /* what was stored */
} file;

static void file_open(file *f, bool seekable)
{
    memset(f, 0, sizeof *f);
    f->bytes = g_byte_array_new();
    tm__mkv_init(&f->m, &f->out, seekable);
}

/* The batch's bytes to the file, whole clusters only, as the recorder does. */
static void file_flush(file *f)
{
    tm__mkv_close_cluster(&f->m);
    CHECK(!f->out.oom);
    g_byte_array_append(f->bytes, f->out.p, (guint)f->out.len);
    tm__mkv_consumed(&f->m);
    CHECK_EQ_INT(tm__mkv_pos(&f->m), f->bytes->len);
}

static void file_close(file *f, double duration_ms)
{
    tm_mkv_patch p[3];
    size_t n = 99;
    CHECK_EQ_INT(tm__mkv_finish(&f->m, duration_ms, p, &n), 0);
    file_flush(f);
    CHECK_EQ_INT(n, f->m.seekable ? 3 : 0);
    for (size_t i = 0; i < n; i++) {
        CHECK(p[i].pos + p[i].len <= f->bytes->len);
        memcpy(f->bytes->data + p[i].pos, p[i].bytes, p[i].len);
    }
}

static void file_free(file *f)
{
    tm__mkv_clear(&f->m);
    g_free(f->out.p);
    g_byte_array_free(f->bytes, TRUE);
}

/* A frame of n bytes whose every byte says which frame it is. */
static void block(file *f, uint8_t track, bool video, int64_t ms, bool key, size_t n, uint8_t fill)
{
    uint8_t *p = tm__mkv_block(&f->m, track, video, ms, key, n);
    CHECK(p != NULL);
    memset(p, fill, n);
}

static const uint8_t avcc[] = {0x01, 0x42, 0xe0, 0x1f, 0xff, 0xe1, 0x00, 0x04,
                               0x67, 0x42, 0xe0, 0x1f, 0x01, 0x00, 0x04, 0x68};

static void header(file *f)
{
    tm_mkv_track t[3] = {
        {.number = 1, .codec = TM_REC_OPUS, .name = "patient-audio", .channels = 1},
        {.number = 2, .codec = TM_REC_VP8, .name = "patient-video", .width = 320, .height = 240},
        {.number = 3,
         .codec = TM_REC_H264,
         .width = 640,
         .height = 480,
         .codec_private = avcc,
         .codec_private_len = sizeof avcc},
    };
    tm__mkv_header(&f->m, t, 3);
}

/* ---- tests ------------------------------------------------------------------ */

static void check_size_bytes(uint64_t v, int width, const uint8_t *want, size_t n)
{
    tm_mkv_buf o = {0};
    tm__mkv_put_size(&o, v, width);
    CHECK(!o.oom);
    CHECK_EQ_INT(o.len, n);
    CHECK(memcmp(o.p, want, n) == 0);
    g_free(o.p);
}

/* Sizes take the fewest bytes, 1 to 8, with the all-ones value of each
 * width left for "unknown"; a given width is kept. */
static void test_sizes(void)
{
    check_size_bytes(0, 0, (const uint8_t[]){0x80}, 1);
    check_size_bytes(126, 0, (const uint8_t[]){0xFE}, 1);
    check_size_bytes(127, 0, (const uint8_t[]){0x40, 0x7F}, 2);
    check_size_bytes(0x3FFE, 0, (const uint8_t[]){0x7F, 0xFE}, 2);
    check_size_bytes(0x3FFF, 0, (const uint8_t[]){0x20, 0x3F, 0xFF}, 3);
    check_size_bytes(5, 4, (const uint8_t[]){0x10, 0x00, 0x00, 0x05}, 4);
    check_size_bytes(8, 1, (const uint8_t[]){0x88}, 1);
    check_size_bytes(((uint64_t)1 << 56) - 1, 8,
                     (const uint8_t[]){0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, 8);
    for (int n = 1; n <= 8; n++) {
        /* the largest known size of n bytes, and one more */
        uint64_t max = ((uint64_t)1 << (7 * n)) - 2;
        for (uint64_t v = max; v <= max + 1 && (n < 8 || v == max); v++) {
            tm_mkv_buf o = {0};
            tm__mkv_put_size(&o, v, 0);
            int want = v == max ? n : n + 1;
            CHECK_EQ_INT(o.len, want);
            CHECK_EQ_INT(o.p[0] >> (8 - want), 1); /* the width marker */
            uint64_t back;
            bool ones;
            CHECK_EQ_INT(read_vint(o.p, o.len, false, &back, &ones), want);
            CHECK_EQ_INT(back, v);
            CHECK(!ones);
            g_free(o.p);
        }
    }
}

/* Ids are written as their bytes: the width is in the id itself. */
static void test_ids(void)
{
    struct {
        uint32_t id;
        size_t n;
    } ids[] = {{TM_MKV_SIMPLEBLOCK, 1},
               {0x4286, 2},
               {TM_MKV_TIMESTAMP_SCALE, 3},
               {TM_MKV_EBML, 4},
               {TM_MKV_CLUSTER, 4}};
    for (size_t i = 0; i < G_N_ELEMENTS(ids); i++) {
        tm_mkv_buf o = {0};
        tm__mkv_put_id(&o, ids[i].id);
        CHECK_EQ_INT(o.len, ids[i].n);
        uint64_t back;
        CHECK_EQ_INT(read_vint(o.p, o.len, true, &back, NULL), (int)ids[i].n);
        CHECK_EQ_INT(back, ids[i].id);
        g_free(o.p);
    }
}

/* The header: EBML with the matroska doctype, a Segment whose size is
 * patched in at the end, Info with ms timestamps and the Duration, and
 * one TrackEntry per track with its codec and private data. */
static void test_header_and_tracks(void)
{
    file f;
    file_open(&f, true);
    header(&f);
    block(&f, 1, false, 0, true, 10, 1);
    file_close(&f, 1234.5);
    const uint8_t *b = f.bytes->data;
    GArray *els = read_all(b, f.bytes->len);

    const el *ebml = &g_array_index(els, el, 0);
    CHECK_EQ_INT(ebml->id, TM_MKV_EBML);
    const el *doctype = child(els, ebml, 0x4282);
    CHECK(doctype && doctype->size == 8 && memcmp(b + doctype->data, "matroska", 8) == 0);
    CHECK_EQ_INT(uint_of(b, child(els, ebml, 0x42F3)), 8); /* EBMLMaxSizeLength */

    const el *seg = find(els, TM_MKV_SEGMENT, 0);
    CHECK(seg && seg->depth == 0 && !seg->unknown);
    CHECK_EQ_INT(seg->size_bytes, 8);
    CHECK_EQ_INT(seg->data + seg->size, f.bytes->len);

    const el *info = child(els, seg, TM_MKV_INFO);
    CHECK_EQ_INT(uint_of(b, child(els, info, TM_MKV_TIMESTAMP_SCALE)), 1000000);
    CHECK(fabs(float_of(b, child(els, info, TM_MKV_DURATION)) - 1234.5) < 1e-9);

    CHECK_EQ_INT(count(els, TM_MKV_TRACK_ENTRY), 3);
    const char *codecs[3] = {"A_OPUS", "V_VP8", "V_MPEG4/ISO/AVC"};
    for (int i = 0; i < 3; i++) {
        const el *te = find(els, TM_MKV_TRACK_ENTRY, i);
        CHECK_EQ_INT(uint_of(b, child(els, te, TM_MKV_TRACK_NUMBER)), i + 1);
        CHECK_EQ_INT(uint_of(b, child(els, te, 0x83)), i == 0 ? 2 : 1); /* TrackType */
        const el *cid = child(els, te, TM_MKV_CODEC_ID);
        CHECK(cid && cid->size == strlen(codecs[i]) &&
              memcmp(b + cid->data, codecs[i], cid->size) == 0);
        CHECK(uint_of(b, child(els, te, 0x73C5)) != 0); /* TrackUID */
    }
    const el *opus = find(els, TM_MKV_TRACK_ENTRY, 0);
    const el *head = child(els, opus, TM_MKV_CODEC_PRIVATE);
    CHECK(head && head->size == 19 && memcmp(b + head->data, "OpusHead", 8) == 0);
    CHECK_EQ_INT(b[head->data + 9], 1); /* channels */
    const el *audio = child(els, opus, 0xE1);
    CHECK(fabs(float_of(b, child(els, audio, 0xB5)) - 48000.0) < 1e-9);
    CHECK_EQ_INT(uint_of(b, child(els, audio, 0x9F)), 1);
    const el *vp8 = find(els, TM_MKV_TRACK_ENTRY, 1);
    CHECK(child(els, vp8, TM_MKV_CODEC_PRIVATE) == NULL);
    const el *video = child(els, vp8, 0xE0);
    CHECK_EQ_INT(uint_of(b, child(els, video, 0xB0)), 320);
    CHECK_EQ_INT(uint_of(b, child(els, video, 0xBA)), 240);
    const el *avc = child(els, find(els, TM_MKV_TRACK_ENTRY, 2), TM_MKV_CODEC_PRIVATE);
    CHECK(avc && avc->size == sizeof avcc && memcmp(b + avc->data, avcc, sizeof avcc) == 0);
    g_array_free(els, TRUE);
    file_free(&f);
}

typedef struct want_block {
    uint8_t track;
    int64_t ms;
    bool key;
    size_t n;
} want_block;

/* Clusters: a new one for the first block, when time goes back and when a
 * block would be more than TM_MKV_CLUSTER_MAX_MS from its cluster; each
 * block carries its track, its time relative to the cluster's and its
 * keyframe flag, and the frame's bytes unchanged. */
static void test_clusters_and_blocks(void)
{
    const want_block blocks[] = {
        {1, 0, true, 80},        {2, 0, true, 300},     {1, 20, true, 80}, {2, 33, false, 200},
        {2, 66, false, 5000},    {1, 40, true, 80},     /* back in time: a new cluster */
        {2, 100, false, 126},    {2, 30040, true, 127}, /* 30 s after 40: still this cluster */
        {2, 30041, false, 1},                           /* more than 30 s: a new cluster */
        {1, 30060, true, 16383},
    };
    file f;
    file_open(&f, true);
    header(&f);
    for (size_t i = 0; i < G_N_ELEMENTS(blocks); i++) {
        block(&f, blocks[i].track, blocks[i].track != 1, blocks[i].ms, blocks[i].key, blocks[i].n,
              (uint8_t)(i + 1));
        if (i == 3)
            file_flush(&f); /* a batch ends: its cluster is closed and stored */
    }
    file_close(&f, 30080);
    const uint8_t *b = f.bytes->data;
    GArray *els = read_all(b, f.bytes->len);
    /* the flush closed the first cluster: block 4 opens the second */
    const int64_t got_ms[] = {0, 66, 40, 30041};
    const int got_of[] = {0, 0, 0, 0, 1, 2, 2, 2, 3, 3};
    CHECK_EQ_INT(count(els, TM_MKV_CLUSTER), 4);
    for (int c = 0; c < 4; c++) {
        const el *cl = find(els, TM_MKV_CLUSTER, c);
        CHECK(!cl->unknown && cl->depth == 1);
        CHECK_EQ_INT(uint_of(b, child(els, cl, TM_MKV_CLUSTER_TIMESTAMP)), got_ms[c]);
    }
    CHECK_EQ_INT(count(els, TM_MKV_SIMPLEBLOCK), G_N_ELEMENTS(blocks));
    for (size_t i = 0; i < G_N_ELEMENTS(blocks); i++) {
        const el *sb = find(els, TM_MKV_SIMPLEBLOCK, (int)i);
        const el *cl = &g_array_index(els, el, sb->parent);
        CHECK_EQ_INT(cl->id, TM_MKV_CLUSTER);
        CHECK(cl == find(els, TM_MKV_CLUSTER, got_of[i]));
        CHECK_EQ_INT(sb->size, blocks[i].n + 4);
        const uint8_t *p = b + sb->data;
        CHECK_EQ_INT(p[0], 0x80 | blocks[i].track); /* track number, a 1-byte vint */
        int16_t rel = (int16_t)(p[1] << 8 | p[2]);
        CHECK_EQ_INT(rel, blocks[i].ms - got_ms[got_of[i]]);
        CHECK_EQ_INT(p[3], blocks[i].key ? 0x80 : 0x00);
        for (size_t k = 0; k < blocks[i].n; k++)
            if (p[4 + k] != (uint8_t)(i + 1))
                CHECK(!"frame bytes changed");
    }
    g_array_free(els, TRUE);
    file_free(&f);
}

/* The SeekHead sits in the Void reserved at the Segment's start and points
 * at Info, Tracks and Cues; the Cues point at the clusters of video
 * keyframes (audio alone: every cluster). */
static void test_cues_and_seekhead(void)
{
    file f;
    file_open(&f, true);
    header(&f);
    block(&f, 1, false, 0, true, 50, 1);
    block(&f, 2, true, 10, false, 50, 2); /* not a keyframe: no cue yet */
    block(&f, 2, true, 40, true, 50, 3);  /* cue for cluster 0 at 40 ms */
    block(&f, 2, true, 70, true, 50, 4);  /* one cue per cluster */
    file_flush(&f);
    block(&f, 1, false, 100, true, 50, 5);
    block(&f, 3, true, 110, true, 50, 6); /* H.264 keyframe: cue for cluster 1 */
    file_flush(&f);
    block(&f, 2, true, 200, false, 50, 7); /* cluster 2: no keyframe, no cue */
    file_close(&f, 230);
    const uint8_t *b = f.bytes->data;
    GArray *els = read_all(b, f.bytes->len);
    const el *seg = find(els, TM_MKV_SEGMENT, 0);

    const el *sh = &g_array_index(els, el, (guint)(seg - &g_array_index(els, el, 0)) + 1);
    CHECK_EQ_INT(sh->id, TM_MKV_SEEKHEAD);
    CHECK_EQ_INT(sh->pos, seg->data);
    const el *pad = find(els, TM_MKV_VOID, 0);
    CHECK(pad && pad->depth == 1);
    CHECK_EQ_INT(pad->data + pad->size - sh->pos, TM_MKV_SEEK_VOID_BYTES);
    uint32_t targets[3] = {TM_MKV_INFO, TM_MKV_TRACKS, TM_MKV_CUES};
    CHECK_EQ_INT(count(els, TM_MKV_SEEK), 3);
    for (int i = 0; i < 3; i++) {
        const el *s = find(els, TM_MKV_SEEK, i);
        const el *sid = child(els, s, TM_MKV_SEEKID);
        CHECK(sid && sid->size == 4);
        CHECK_EQ_INT(uint_of(b, sid), targets[i]);
        uint64_t at = seg->data + uint_of(b, child(els, s, TM_MKV_SEEKPOS));
        const el *target = find(els, targets[i], 0);
        CHECK_EQ_INT(target->pos, at);
    }

    CHECK_EQ_INT(count(els, TM_MKV_CUE_POINT), 2);
    const int64_t cue_ms[2] = {40, 110};
    const uint64_t cue_track[2] = {2, 3};
    for (int i = 0; i < 2; i++) {
        const el *cp = find(els, TM_MKV_CUE_POINT, i);
        CHECK_EQ_INT(uint_of(b, child(els, cp, TM_MKV_CUE_TIME)), cue_ms[i]);
        const el *tp = child(els, cp, TM_MKV_CUE_TRACK_POSITIONS);
        CHECK_EQ_INT(uint_of(b, child(els, tp, TM_MKV_CUE_TRACK)), cue_track[i]);
        uint64_t at = seg->data + uint_of(b, child(els, tp, TM_MKV_CUE_CLUSTER_POSITION));
        CHECK_EQ_INT(at, find(els, TM_MKV_CLUSTER, i)->pos);
    }
    const el *cues = find(els, TM_MKV_CUES, 0);
    CHECK(cues->pos > find(els, TM_MKV_CLUSTER, 2)->pos); /* at the end */
    g_array_free(els, TRUE);
    file_free(&f);

    /* audio only: a cue on every cluster, at its first block */
    file_open(&f, true);
    tm_mkv_track a = {.number = 1, .codec = TM_REC_OPUS, .channels = 2};
    tm__mkv_header(&f.m, &a, 1);
    block(&f, 1, false, 0, true, 20, 1);
    block(&f, 1, false, 20, true, 20, 2);
    file_flush(&f);
    block(&f, 1, false, 40, true, 20, 3);
    file_close(&f, 60);
    els = read_all(f.bytes->data, f.bytes->len);
    CHECK_EQ_INT(count(els, TM_MKV_CUE_POINT), 2);
    CHECK_EQ_INT(
        uint_of(f.bytes->data, child(els, find(els, TM_MKV_CUE_POINT, 1), TM_MKV_CUE_TIME)), 40);
    g_array_free(els, TRUE);
    file_free(&f);
}

/* A stream that cannot be patched (encrypted), or one cut off by a crash:
 * an unknown-size Segment of whole clusters, no SeekHead, Duration or
 * Cues, readable to its end. */
static void test_unknown_size_stream(void)
{
    file f;
    file_open(&f, false);
    header(&f);
    block(&f, 1, false, 0, true, 40, 1);
    block(&f, 2, true, 0, true, 400, 2);
    file_flush(&f);
    size_t cut = f.bytes->len; /* a crash here leaves this much */
    block(&f, 2, true, 33, false, 400, 3);
    file_close(&f, 66);
    const uint8_t *b = f.bytes->data;
    for (int pass = 0; pass < 2; pass++) {
        size_t len = pass ? cut : f.bytes->len;
        GArray *els = read_all(b, len);
        const el *seg = find(els, TM_MKV_SEGMENT, 0);
        CHECK(seg->unknown && seg->size_bytes == 8);
        CHECK_EQ_INT(seg->data + seg->size, len);
        CHECK(find(els, TM_MKV_SEEKHEAD, 0) == NULL);
        CHECK(find(els, TM_MKV_VOID, 0) == NULL);
        CHECK(find(els, TM_MKV_DURATION, 0) == NULL);
        CHECK(find(els, TM_MKV_CUES, 0) == NULL);
        CHECK_EQ_INT(count(els, TM_MKV_SIMPLEBLOCK), pass ? 2 : 3);
        CHECK_EQ_INT(count(els, TM_MKV_CLUSTER), pass ? 1 : 2);
        g_array_free(els, TRUE);
    }
    file_free(&f);
}

int main(void)
{
    RUN(test_sizes);
    RUN(test_ids);
    RUN(test_header_and_tracks);
    RUN(test_clusters_and_blocks);
    RUN(test_cues_and_seekhead);
    RUN(test_unknown_size_stream);
    TEST_DONE();
}

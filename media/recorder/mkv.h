/*
 * mkv.h - the recorder's Matroska writer (module-private).
 *
 * A pure writer: it appends a file's elements to a buffer the caller owns
 * and never does I/O. The caller stores the buffer's bytes wherever the
 * file goes (a write(2), an encrypting writer, a test's array), says so
 * with tm__mkv_consumed(), and at the end writes the patches
 * tm__mkv_finish() hands back at their stream positions (a plain file).
 * Positions count bytes of the whole stream, from its first byte.
 */
#ifndef TELEMED_MEDIA_RECORDER_MKV_H
#define TELEMED_MEDIA_RECORDER_MKV_H

#include "telemed/recorder.h"

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    TM_MKV_EBML = 0x1A45DFA3,
    TM_MKV_SEGMENT = 0x18538067,
    TM_MKV_SEEKHEAD = 0x114D9B74,
    TM_MKV_SEEK = 0x4DBB,
    TM_MKV_SEEKID = 0x53AB,
    TM_MKV_SEEKPOS = 0x53AC,
    TM_MKV_VOID = 0xEC,
    TM_MKV_INFO = 0x1549A966,
    TM_MKV_TIMESTAMP_SCALE = 0x2AD7B1,
    TM_MKV_DURATION = 0x4489,
    TM_MKV_DATE_UTC = 0x4461,
    TM_MKV_TRACKS = 0x1654AE6B,
    TM_MKV_TRACK_ENTRY = 0xAE,
    TM_MKV_TRACK_NUMBER = 0xD7,
    TM_MKV_CODEC_ID = 0x86,
    TM_MKV_CODEC_PRIVATE = 0x63A2,
    TM_MKV_CLUSTER = 0x1F43B675,
    TM_MKV_CLUSTER_TIMESTAMP = 0xE7,
    TM_MKV_SIMPLEBLOCK = 0xA3,
    TM_MKV_CUES = 0x1C53BB6B,
    TM_MKV_CUE_POINT = 0xBB,
    TM_MKV_CUE_TIME = 0xB3,
    TM_MKV_CUE_TRACK_POSITIONS = 0xB7,
    TM_MKV_CUE_TRACK = 0xF7,
    TM_MKV_CUE_CLUSTER_POSITION = 0xF1,
    TM_MKV_SEEK_VOID_BYTES = 128,    /* room for a SeekHead of three entries */
    TM_MKV_EPOCH_2001_S = 978307200, /* DateUTC's origin, in Unix seconds */
    TM_MKV_CLUSTER_MAX_MS = 30000    /* a block's time is an int16 of ms from its cluster's */
};

/* A growing byte buffer; running out of memory is remembered in oom (and
 * later appends do nothing), not checked at each append. */
typedef struct tm_mkv_buf {
    uint8_t *p;
    size_t len, cap;
    bool oom;
} tm_mkv_buf;

/* What the file's header says of one track. Borrowed for the call. */
typedef struct tm_mkv_track {
    uint8_t number; /* 1, 2, ... in the file */
    tm_recorder_codec codec;
    const char *name;             /* may be NULL */
    int width, height;            /* video */
    int channels;                 /* audio (1 or 2) */
    const uint8_t *codec_private; /* H.264: the avcC; may be NULL */
    size_t codec_private_len;
} tm_mkv_track;

/* A few bytes the caller writes at pos once everything appended so far is
 * stored (the Segment's size, the Duration, the SeekHead). */
typedef struct tm_mkv_patch {
    uint64_t pos;
    size_t len;
    uint8_t bytes[TM_MKV_SEEK_VOID_BYTES];
} tm_mkv_patch;

typedef struct tm_mkv {
    tm_mkv_buf *out;  /* the caller's, borrowed until tm__mkv_clear */
    uint64_t out_pos; /* where out->p[0] is in the stream */
    bool seekable;    /* plain file: SeekHead, Duration and Cues */
    bool started;     /* the header is out */
    bool has_video;   /* cues go on video keyframes (else on every cluster) */
    /* Wall time (µs since the Unix epoch) of the stream's time 0, written as
     * DateUTC so parts of one visit can be laid side by side; 0: none. */
    int64_t date_unix_us;
    uint64_t seg_size_pos, seg_data, seek_pos, info_pos, tracks_pos, dur_pos;
    bool in_cluster;     /* a cluster is open in out */
    size_t cluster_size; /* its 4-byte size, at this index of out */
    uint64_t cluster_pos;
    int64_t cluster_ms;
    bool cluster_cued;
    GArray *cues; /* of struct tm_mkv_cue (seekable only) */
} tm_mkv;

/* seekable: the file can be patched at the end (a plain file); an
 * encrypted stream cannot, and gets no SeekHead, Duration or Cues. */
void tm__mkv_init(tm_mkv *m, tm_mkv_buf *out, bool seekable);
void tm__mkv_clear(tm_mkv *m);

/* The EBML header, the Segment (size unknown) and its Info (with DateUTC when
 * m->date_unix_us is set) and Tracks. */
void tm__mkv_header(tm_mkv *m, const tm_mkv_track *tracks, size_t n);

/* A SimpleBlock of track number at ms from the file's start: returns where
 * the caller copies the frame's n bytes, or NULL when out of memory. Opens
 * a cluster when needed (the first block, time going back, or more than
 * TM_MKV_CLUSTER_MAX_MS from the cluster's start). */
uint8_t *tm__mkv_block(tm_mkv *m, uint8_t number, bool video, int64_t ms, bool key, size_t n);

/* Closes the open cluster, so what out holds ends with whole clusters. */
void tm__mkv_close_cluster(tm_mkv *m);

/* The caller has stored out's bytes: they leave out (call with no cluster
 * open). */
void tm__mkv_consumed(tm_mkv *m);

/* Where the next byte appended to out will be in the stream. */
uint64_t tm__mkv_pos(const tm_mkv *m);

/* Ends the stream: closes the cluster and, seekable, appends the Cues and
 * fills patches[0..*npatch) (at most 3) with the Segment's size, the
 * Duration and the SeekHead, to be written once out is stored. Returns 0,
 * or TM_ENOMEM. */
int tm__mkv_finish(tm_mkv *m, double duration_ms, tm_mkv_patch patches[3], size_t *npatch);

/* EBML primitives, for the writer and its tests: an element ID as its
 * bytes (1 to 4), a size as a variable-length integer of width bytes (0:
 * the fewest; all value bits set in 8 bytes means "unknown"). */
void tm__mkv_put_id(tm_mkv_buf *o, uint32_t id);
void tm__mkv_put_size(tm_mkv_buf *o, uint64_t v, int width);

#endif

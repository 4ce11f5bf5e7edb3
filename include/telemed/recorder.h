/*
 * recorder.h - one visit's recording: decrypted RTP from the media worker
 * into one Matroska file that the recorder writes itself, without decoding
 * or re-encoding. The parts are under media/recorder/.
 *
 * Why one file per visit with every sender's tracks: a visit is reviewed
 * as one conversation. One file keeps the audio and video of both sides on
 * one timeline (in the order they arrived), plays in any
 * Matroska player with no post-processing, and gives the record one path,
 * one size, one duration and one SHA-256. Per-participant files would have
 * to be aligned again by whoever watches them.
 *
 * Pipeline, per track: reorder (sequence order, duplicates out, a gap
 * waited for 100 ms: the jitterbuffer's job) -> depayloaded (Opus, VP8,
 * H.264 packetization-mode 1) -> Matroska
 * written by the recorder itself (the elements matroskamux wrote for these
 * codecs), the tracks merged in time order -> the file, one write(2) per
 * batch (plain), or rec_crypt (encrypted).
 *
 * Threads. tm_recorder_push() runs on the media worker that forwards the
 * visit (one producer thread at a time): it copies the packet into a
 * preallocated byte ring and returns; it never blocks, never allocates and
 * never logs; when the ring is full it counts a drop. The
 * recorder's own thread wakes every 250 ms (sooner when a burst fills a
 * quarter of the ring) and moves the whole batch through synchronously;
 * nothing waits on a clock. It also finalises the file. Callbacks run on the GMainContext that
 * was thread-default when tm_recorder_new() was called (the media
 * worker's), never on the recorder thread.
 *
 * Crash safety. Each batch's frames go to the plain file as whole clusters
 * in one write (behind a Segment of unknown size until the end), so a
 * kill -9 leaves a file that plays up to about the last second (frames are
 * written 0.4-0.6 s after they arrive); an encrypted file is sealed in chunks
 * at least once a second for the same reason. The store marks
 * such a recording incomplete at the next start.
 */
#ifndef TELEMED_RECORDER_H
#define TELEMED_RECORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tm_recorder tm_recorder;

typedef enum {
    TM_REC_OPUS, /* audio, clock 48000 */
    TM_REC_VP8,  /* video, clock 90000 */
    TM_REC_H264, /* video, clock 90000 (packetization-mode 1) */
} tm_recorder_codec;

/* One incoming stream of one sender. `name` (may be NULL) becomes the
 * Matroska track name: give ids or roles ("patient-video"), never names. */
typedef struct tm_recorder_track {
    tm_recorder_codec codec;
    uint8_t payload_type;
    uint32_t clock_rate; /* 0: the codec's standard rate */
    const char *name;
} tm_recorder_track;

/* Largest RTP packet the recorder takes; larger ones are counted as dropped. */
#define TM_RECORDER_SLOT_BYTES 1500
/* Ring capacity in bytes; a packet takes its length plus 16, rounded up to
 * 8 (an Opus packet ~120 bytes, not a 1.5 KiB slot as it did). About 1.5 s
 * of a 1:1 visit at 1 Mbit/s each way, far more than the 250 ms between
 * drains; it is all resident, so it is sized for stalls, not whole seconds
 * of HD. */
#define TM_RECORDER_RING_BYTES (384 * 1024)
/* Most tracks per recorder. */
#define TM_RECORDER_MAX_TRACKS 16

typedef struct tm_recorder_stats {
    uint64_t pushed;  /* packets accepted into the ring */
    uint64_t dropped; /* packets refused: ring full, too big, recorder failed or finishing */
    uint64_t bytes;   /* bytes of accepted packets */
} tm_recorder_stats;

typedef struct tm_recorder_result {
    int status;          /* 0: the file is complete; negative TM_E*: failed */
    const char *failure; /* why it failed, NULL when status is 0 */
    const char *path;
    bool encrypted;
    int64_t size_bytes;    /* of the file as stored */
    int64_t duration_ms;   /* media time in the file */
    char sha256[65];       /* lowercase hex SHA-256 of the file as stored */
    char plain_sha256[65]; /* encrypted: SHA-256 of the Matroska stream before encryption (what the
                            * decrypted file hashes to); "" when not encrypted */
    tm_recorder_stats stats;
    /* Set by the media core for a visit's recording (the recorder leaves 0 / false): which part
     * of the visit this file is (1-based), and whether it is the visit's last one. */
    int part;
    bool last;
} tm_recorder_result;

/* Everything in *res is borrowed for the duration of the call. */
typedef void (*tm_recorder_done_cb)(const tm_recorder_result *res, void *user);
/* A running recording failed (disk full, a write error). reason is borrowed.
 * The recorder keeps accepting (and dropping) packets until finished. */
typedef void (*tm_recorder_failure_cb)(const char *reason, void *user);

/* The recording path for a visit: recording_dir/YYYY/MM/DD/<visit_id>.mkv
 * (".mkv.enc" when encrypted), UTC date of epoch_ms; creates the
 * directories with mode 0700. visit_id must be a safe file name ([A-Za-z0-9
 * ._-], not starting with '.'). Returns 0 with *path_out (g_free), or
 * TM_EINVAL / TM_EIO with *err (g_free). */
int tm_recorder_make_path(const char *recording_dir, const char *visit_id, int64_t epoch_ms,
                          bool encrypted, char **path_out, char **err);

/* Starts a recorder of n tracks (1..TM_RECORDER_MAX_TRACKS) writing to
 * path (created 0600, must not exist); it starts on the first packet, whose
 * arrival is time 0 of the file. Declare every sending stream of the visit:
 * a track with no frame for the file when the start window closes (every
 * track has data, or 3 s after the first packet) is left out of the file
 * and its later packets count as dropped. A track that goes silent later
 * (camera off, a participant gone) does not hold up the others. key_or_null: a 32-byte
 * AES-256 key (copied) to encrypt at rest. Call on the thread whose
 * thread-default GMainContext should receive the callbacks. Returns a new
 * recorder (end it with tm_recorder_finish or tm_recorder_free) or NULL
 * with *err (g_free). */
tm_recorder *tm_recorder_new(const char *path, const tm_recorder_track *tracks, size_t n,
                             const uint8_t *key_or_null, char **err);

/* Sets the failure callback (call right after new, before pushing). It is
 * not called once tm_recorder_finish or tm_recorder_free has been called
 * (the result of finish reports the failure then). */
void tm_recorder_on_failure(tm_recorder *r, tm_recorder_failure_cb cb, void *user);

/* Queues one decrypted RTP packet of track (index into the tracks given to
 * new). Borrows rtp until return. Never blocks or allocates. Returns 0 when
 * queued, TM_ERATE when the ring is full, TM_ETOOBIG for a packet over
 * TM_RECORDER_SLOT_BYTES, TM_EINVAL for a bad track or a packet shorter
 * than an RTP header, TM_EIO after a failure; all but 0 count as dropped. */
int tm_recorder_push(tm_recorder *r, int track, const uint8_t *rtp, size_t len);

/* The same, with the packet's arrival time already read by the caller
 * (CLOCK_MONOTONIC in microseconds, as g_get_monotonic_time()), so the
 * forwarding path reads the clock once per packet. */
int tm_recorder_push_at(tm_recorder *r, int track, const uint8_t *rtp, size_t len,
                        int64_t arrival_us);

/* Counters so far; safe from any thread. */
void tm_recorder_stats_get(const tm_recorder *r, tm_recorder_stats *out);

/* Ends the recording: drains the ring, writes the rest of the frames and
 * finalises the file (the Cues, then the sizes and Duration in place),
 * hashes it, then calls cb (may be NULL) on the
 * context of tm_recorder_new and frees the recorder. Call it on the thread
 * of tm_recorder_new (the owner of that context). With no packet ever
 * pushed the result is a failure ("no media was received") and the empty
 * file is removed. Returns at once; the
 * caller must not use r afterwards (no more pushes). */
void tm_recorder_finish(tm_recorder *r, tm_recorder_done_cb cb, void *user);

/* Stops at once without finalising (the file is left as a crash would
 * leave it) and frees. Blocks until the recorder thread has ended; call
 * it, like finish, after the last push and on the thread of new. Accepts
 * NULL. */
void tm_recorder_free(tm_recorder *r);

#endif

/*
 * visit_record.c - the recording lifecycle of a visit: the file's name, the
 * start, and the result into the visit record.
 *
 * Owns, on the control loop, the map from a live visit to its recording rows
 * (one per part: a visit whose senders grow gets a file per part) until the
 * last part is reported. The store row comes first (so a crash leaves
 * "incomplete", never nothing), then the media core is asked to record; a
 * failure at any step is on record with its reason and told to whoever
 * listens (signaling shows it to the supervisors).
 */
#include "telemed/visit_record.h"
#include "telemed/common.h"
#include "telemed/feed.h"
#include "telemed/log.h"
#include "telemed/media.h"
#include "telemed/recorder.h"
#include "telemed/review.h"
#include "telemed/store.h"

#include <string.h>

struct tm_visit_record {
    const tm_config *cfg;
    tm_store *store;
    tm_media *media;
    tm_feed *feed;
    tm_review *review;
    GHashTable *recordings; /* visit id -> rec_parts, until the last part is reported */
    uint8_t key[32];        /* encryption at rest, when key_set */
    bool key_set;
    tm_visit_record_failed_cb failed_cb;
    void *failed_user;
};

/* A live visit's recording rows on this node: ids[n] is part n + 1's row
 * ("" when it has none), all of one segment. */
typedef struct rec_parts {
    GPtrArray *ids;
    int segment;
} rec_parts;

static void rec_parts_free(gpointer data)
{
    rec_parts *rp = data;
    g_ptr_array_unref(rp->ids);
    g_free(rp);
}

/* The row rec_id is part `part` of the visit's current segment (which the
 * first part's call names). */
static void rec_parts_set(tm_visit_record *vr, const char *visit_id, int segment, int part,
                          const char *rec_id)
{
    rec_parts *rp = g_hash_table_lookup(vr->recordings, visit_id);
    if (!rp) {
        rp = g_new0(rec_parts, 1);
        rp->ids = g_ptr_array_new_with_free_func(g_free);
        rp->segment = segment;
        g_hash_table_replace(vr->recordings, g_strdup(visit_id), rp);
    }
    if (vr->cfg->node_id &&
        tm_recording_set_segment(vr->store, rec_id, vr->cfg->node_id, rp->segment) < 0)
        tm_error("recording.segment_failed", "visit=%s recording=%s err=\"%s\"", visit_id, rec_id,
                 tm_store_errmsg(vr->store));
    while ((int)rp->ids->len < part)
        g_ptr_array_add(rp->ids, g_strdup(""));
    g_free(rp->ids->pdata[part - 1]);
    rp->ids->pdata[part - 1] = g_strdup(rec_id);
}

/* The row of part (1-based), or of the latest part when part is 0; NULL if none. */
static const char *rec_parts_get(tm_visit_record *vr, const char *visit_id, int part)
{
    rec_parts *rp = g_hash_table_lookup(vr->recordings, visit_id);
    if (!rp || rp->ids->len == 0)
        return NULL;
    if (part == 0)
        part = (int)rp->ids->len;
    if (part < 1 || part > (int)rp->ids->len)
        return NULL;
    const char *id = g_ptr_array_index(rp->ids, part - 1);
    return *id ? id : NULL;
}

tm_visit_record *tm_visit_record_new(const tm_config *cfg, tm_store *store)
{
    tm_visit_record *vr = g_new0(tm_visit_record, 1);
    vr->cfg = cfg;
    vr->store = store;
    vr->recordings = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, rec_parts_free);
    return vr;
}

void tm_visit_record_free(tm_visit_record *vr)
{
    if (!vr)
        return;
    g_hash_table_destroy(vr->recordings);
    g_free(vr);
}

void tm_visit_record_set_media(tm_visit_record *vr, struct tm_media *media)
{
    vr->media = media;
}

void tm_visit_record_set_feed(tm_visit_record *vr, struct tm_feed *feed)
{
    vr->feed = feed;
}

void tm_visit_record_set_review(tm_visit_record *vr, struct tm_review *review)
{
    vr->review = review;
}

void tm_visit_record_set_key(tm_visit_record *vr, const uint8_t key[32])
{
    memcpy(vr->key, key, 32);
    vr->key_set = true;
}

void tm_visit_record_on_failure(tm_visit_record *vr, tm_visit_record_failed_cb cb, void *user)
{
    vr->failed_cb = cb;
    vr->failed_user = user;
}

static void report_failure(tm_visit_record *vr, const char *visit_id, const char *reason)
{
    tm_error("recording.failed", "visit=%s", visit_id);
    if (vr->failed_cb)
        vr->failed_cb(visit_id, reason ? reason : "failed", vr->failed_user);
}

/* The recording broke while the visit goes on (a full disk): on record and
 * in front of the supervisors now, not when the visit ends. */
void tm_visit_record_failed(tm_visit_record *vr, const char *visit_id, const char *reason)
{
    const char *rec_id = rec_parts_get(vr, visit_id, 0);
    if (rec_id &&
        tm_recording_fail(vr->store, rec_id, reason ? reason : "failed", 0, tm_now_ms()) == 0)
        report_failure(vr, visit_id, reason);
}

/* The recorder finished the visit's file (or gave up): the record gets its
 * size, duration and hash and the regulator its recording.available. */
static void on_recording_done(const char *visit_id, const struct tm_recorder_result *res,
                              void *user_data)
{
    tm_visit_record *vr = user_data;
    const char *rec_id = rec_parts_get(vr, visit_id, res->part > 0 ? res->part : 1);
    if (!rec_id)
        return;
    int64_t now = tm_now_ms();
    int rc;
    if (res->status == 0) {
        if (res->encrypted && res->plain_sha256[0])
            tm_recording_set_plain_sha256(vr->store, rec_id, res->plain_sha256);
        rc = tm_recording_finish(vr->store, rec_id, res->size_bytes, res->duration_ms, res->sha256,
                                 (int64_t)res->stats.dropped, now);
        tm_info("recording.available",
                "visit=%s recording=%s part=%d bytes=%lld duration_ms=%lld dropped=%llu", visit_id,
                rec_id, res->part, (long long)res->size_bytes, (long long)res->duration_ms,
                (unsigned long long)res->stats.dropped);
    } else {
        rc = tm_recording_fail(vr->store, rec_id, res->failure ? res->failure : "failed",
                               (int64_t)res->stats.dropped, now);
        if (rc == TM_ECONFLICT)
            rc = 0; /* already on record: it failed during the visit */
        else
            report_failure(vr, visit_id, res->failure);
    }
    if (rc < 0)
        tm_error("recording.store_failed", "visit=%s err=%s", visit_id, tm_strerror(rc));
    if (vr->feed)
        tm_feed_kick(vr->feed);
    if (res->last) {
        g_hash_table_remove(vr->recordings, visit_id);
        tm_review_recording_done(vr->review, visit_id);
    }
}

/* A member joined the recorded visit: its next part gets its own row before
 * the part's first packet is written, as the first part did. */
static void on_recording_part(const char *visit_id, int part, const char *path, void *user_data)
{
    tm_visit_record *vr = user_data;
    char rec_id[TM_RECORDING_ID_LEN];
    int rc =
        tm_recording_start(vr->store, visit_id, path, "matroska", vr->key_set, tm_now_ms(), rec_id);
    if (rc == 0)
        rc = tm_recording_set_part(vr->store, rec_id, part);
    if (rc == 0)
        rec_parts_set(vr, visit_id, 1, part, rec_id);
    else
        tm_error("recording.part_failed", "visit=%s part=%d err=%s", visit_id, part,
                 tm_strerror(rc));
}

/* No file (a full or unwritable disk): the record still says the visit was
 * to be recorded, and why it was not. */
static void record_no_file(tm_visit_record *vr, const char *visit_id, const char *why, int64_t now)
{
    char rec_id[TM_RECORDING_ID_LEN];
    char *where = g_build_filename(vr->cfg->recording_dir, visit_id, NULL);
    if (tm_recording_start(vr->store, visit_id, where, "matroska", vr->key_set, now, rec_id) == 0)
        tm_recording_fail(vr->store, rec_id, why, 0, now);
    g_free(where);
}

/* Segment 1 is named after the visit; a later one (the visit resumed on
 * another node) gets "-seg<N>", so that a recording_dir the nodes share
 * never has one segment's file written over another's. */
static int segment_path(tm_visit_record *vr, const char *visit_id, int segment, int64_t now,
                        char **path, char **err)
{
    if (segment <= 1)
        return tm_recorder_make_path(vr->cfg->recording_dir, visit_id, now, vr->key_set, path, err);
    char name[96];
    snprintf(name, sizeof(name), "%s-seg%d", visit_id, segment);
    return tm_recorder_make_path(vr->cfg->recording_dir, name, now, vr->key_set, path, err);
}

static void start_segment(tm_visit_record *vr, const char *visit_id, int segment)
{
    int64_t now = tm_now_ms();
    char *path = NULL, *err = NULL;
    char rec_id[TM_RECORDING_ID_LEN];
    int rc = segment_path(vr, visit_id, segment, now, &path, &err);
    if (rc < 0)
        record_no_file(vr, visit_id, err ? err : tm_strerror(rc), now);
    if (rc == 0)
        rc = tm_recording_start(vr->store, visit_id, path, "matroska", vr->key_set, now, rec_id);
    if (rc == 0) {
        rec_parts_set(vr, visit_id, segment, 1, rec_id);
        rc = tm_media_visit_record(vr->media, visit_id, path, vr->key_set ? vr->key : NULL, 2,
                                   on_recording_done, vr);
        if (rc == 0)
            rc = tm_media_visit_record_parts(vr->media, visit_id, on_recording_part);
        if (rc < 0) {
            tm_recording_fail(vr->store, rec_id, "recorder did not start", 0, now);
            g_hash_table_remove(vr->recordings, visit_id);
        }
    }
    if (rc < 0) {
        tm_error("recording.start_failed", "visit=%s err=%s", visit_id, tm_strerror(rc));
        if (vr->failed_cb)
            vr->failed_cb(visit_id, err ? err : tm_strerror(rc), vr->failed_user);
    }
    g_free(err);
    g_free(path);
}

/* Every consultation is recorded from its first packet (DESIGN.md). */
void tm_visit_record_start(tm_visit_record *vr, const char *visit_id)
{
    if (vr && vr->cfg->recording && vr->media)
        start_segment(vr, visit_id, 1);
}

void tm_visit_record_resume(tm_visit_record *vr, const char *visit_id)
{
    if (!vr || !vr->cfg->recording || !vr->media || g_hash_table_contains(vr->recordings, visit_id))
        return;
    int closed = 0, last = 0;
    int64_t now = tm_now_ms();
    if (vr->cfg->node_id &&
        tm_recording_close_others(vr->store, visit_id, vr->cfg->node_id, now, &closed) < 0)
        tm_warn("recording.close_failed", "visit=%s err=\"%s\"", visit_id,
                tm_store_errmsg(vr->store));
    if (closed && vr->feed)
        tm_feed_kick(vr->feed);
    /* Without the number the file could take an earlier segment's name. */
    if (tm_recording_last_segment(vr->store, visit_id, &last) < 0) {
        tm_error("recording.start_failed", "visit=%s err=\"%s\"", visit_id,
                 tm_store_errmsg(vr->store));
        if (vr->failed_cb)
            vr->failed_cb(visit_id, "recorder did not start", vr->failed_user);
        return;
    }
    tm_info("recording.resumed", "visit=%s segment=%d closed=%d", visit_id, last + 1, closed);
    start_segment(vr, visit_id, last + 1);
}

/*
 * rtp.h - RTP packets on the forwarding hot path: demux, header parse,
 * in-place rewrite, header extensions, keyframe detection, sequence numbers.
 *
 * Every function works on a caller's buffer (pointer + length), checks every
 * length before reading, never allocates and never logs, so a media worker can
 * call it per packet. Bytes come from the network: nothing here trusts them.
 * Reentrant; runs on the calling (media worker) thread.
 *
 * References: RFC 3550 (RTP), RFC 8285 (header extensions), RFC 7983 (demux of
 * STUN/DTLS/RTP on one port), RFC 5761 (RTP/RTCP mux), RFC 7741 (VP8),
 * RFC 6184 (H.264), RFC 4588 (rtx).
 *
 * Private to media/: the server's other modules go through telemed/media.h;
 * media's unit tests and fuzz targets include it through media.cmake.
 */
#ifndef TELEMED_MEDIA_RTP_H
#define TELEMED_MEDIA_RTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "telemed/common.h"

/* ---- Demux (RFC 7983 first byte; RFC 5761 for RTP vs RTCP) ---- */

typedef enum {
    TM_PKT_UNKNOWN,
    TM_PKT_STUN, /* first byte 0..3 */
    TM_PKT_DTLS, /* 20..63 */
    TM_PKT_RTP,  /* 128..191 and second byte not 192..223 */
    TM_PKT_RTCP, /* 128..191 and second byte (marker+pt) 192..223 */
} tm_packet_kind_t;

/* Classify a datagram. Too short to be one (STUN < 20, DTLS < 13, RTP < 12,
 * RTCP < 8 bytes) is UNKNOWN. */
tm_packet_kind_t tm_packet_kind(const uint8_t *buf, size_t len);

/* ---- Header ---- */

#define TM_RTP_HEADER_MIN 12
#define TM_RTP_EXT_ONE_BYTE 0xBEDE /* RFC 8285 profile ids */
#define TM_RTP_EXT_TWO_BYTE 0x1000 /* 0x100X: low 4 bits are appbits */

typedef struct tm_rtp_header {
    uint8_t version; /* always 2 after a successful parse */
    bool padding;
    bool extension;
    uint8_t csrc_count;
    bool marker;
    uint8_t pt;
    uint16_t seq;
    uint32_t ts;
    uint32_t ssrc;
    uint16_t ext_profile;  /* 0xBEDE, 0x100X or other; 0 when !extension */
    size_t ext_offset;     /* offset of the extension DATA (after its 4-byte header) */
    size_t ext_len;        /* extension data length in bytes (multiple of 4) */
    size_t header_len;     /* 12 + 4*CC + (extension ? 4 + ext_len : 0) */
    size_t payload_offset; /* == header_len */
    size_t payload_len;    /* excludes padding */
    uint8_t padding_len;   /* trailing padding bytes (0 when !padding) */
} tm_rtp_header;

/* Parse and bounds-check an RTP header. Returns 0 or TM_EINVAL (short, not
 * version 2, CSRC/extension/padding past the end). */
int tm_rtp_parse(const uint8_t *buf, size_t len, tm_rtp_header *out);

/* In-place field rewrites. The caller has parsed buf (len >= 12). */
static inline void tm_rtp_set_ssrc(uint8_t *buf, uint32_t ssrc)
{
    buf[8] = (uint8_t)(ssrc >> 24);
    buf[9] = (uint8_t)(ssrc >> 16);
    buf[10] = (uint8_t)(ssrc >> 8);
    buf[11] = (uint8_t)ssrc;
}
static inline void tm_rtp_set_pt(uint8_t *buf, uint8_t pt) /* keeps the marker bit */
{
    buf[1] = (uint8_t)((buf[1] & 0x80) | (pt & 0x7f));
}
static inline void tm_rtp_set_seq(uint8_t *buf, uint16_t seq)
{
    buf[2] = (uint8_t)(seq >> 8);
    buf[3] = (uint8_t)seq;
}
static inline void tm_rtp_set_ts(uint8_t *buf, uint32_t ts)
{
    buf[4] = (uint8_t)(ts >> 24);
    buf[5] = (uint8_t)(ts >> 16);
    buf[6] = (uint8_t)(ts >> 8);
    buf[7] = (uint8_t)ts;
}

/* ---- Header extensions (RFC 8285 one-byte 0xBEDE and two-byte 0x100X) ---- */

#define TM_RTP_EXT_MAX_ELEMENTS 32 /* more elements than this in a packet: TM_EINVAL */

/*
 * Translate a sender's extension ids to a receiver's: each element id e
 * becomes map[e], and elements with map[e] == 0 are dropped. This is the per
 * receiver step of forwarding (ids are per peer in the SDP). In place;
 * returns the new packet length (<= len), TM_EINVAL (malformed), or
 * TM_ETOOBIG when a one-byte id maps above 14 and the two-byte block would
 * not fit in len. No-op for packets without RFC 8285 extensions.
 */
int tm_rtp_ext_remap(uint8_t *buf, size_t len, const uint8_t map[256]);

/* The data of extension element `id` of a parsed packet: returns its length (sets *data,
 * pointing into buf), TM_ENOTFOUND when the packet has no such element, or TM_EINVAL. */
int tm_rtp_ext_find(const uint8_t *buf, const tm_rtp_header *h, int id, const uint8_t **data);

/* ---- rtx (RFC 4588) ---- */

/*
 * Turn an rtx packet back into the original in place (strip OSN, set ssrc/pt/
 * seq = OSN). Returns the new length or TM_EINVAL.
 */
int tm_rtp_unwrap_rtx(uint8_t *buf, size_t len, uint32_t media_ssrc, uint8_t media_pt);

/* ---- Codec payloads: keyframes and picture size ---- */

typedef struct tm_vp8_info {
    bool start_of_partition; /* S bit */
    uint8_t partition_index; /* PID */
    bool frame_start;        /* S && PID == 0: first packet of a frame */
    bool keyframe;           /* frame_start and the VP8 header P bit is 0 */
    int picture_id;          /* -1 when absent */
    bool picture_id_long;    /* 15 bits (M bit set), else 7 */
    size_t picture_id_off;   /* its offset in the payload, 0 when absent */
    size_t tl0picidx_off;    /* TL0PICIDX's offset in the payload, 0 when absent */
    uint16_t width, height;  /* from a keyframe header (scale bits dropped), else 0 */
    size_t header_len;       /* payload descriptor length */
} tm_vp8_info;

/* Parse a VP8 RTP payload (RFC 7741 descriptor + VP8 frame header on a frame
 * start). Returns 0 or TM_EINVAL. */
int tm_vp8_parse(const uint8_t *payload, size_t len, tm_vp8_info *out);

/* H.264 (RFC 6184): true when the payload starts or contains an IDR slice
 * (type 5) or an SPS (type 7): single NAL, STAP-A aggregate, or the first
 * fragment (S bit) of an FU-A. Malformed -> false. */
bool tm_h264_is_keyframe(const uint8_t *payload, size_t len);

/* H.264 picture size from an SPS carried in the payload (single NAL or
 * STAP-A), with frame cropping applied (1920x1080, not 1920x1088). Returns 0
 * and sets width/height, TM_ENOTFOUND when the payload has no SPS,
 * TM_EINVAL when the SPS is malformed. (Added after the first API freeze.) */
int tm_h264_sps_size(const uint8_t *payload, size_t len, uint16_t *width, uint16_t *height);

typedef enum { TM_CODEC_UNKNOWN, TM_CODEC_OPUS, TM_CODEC_VP8, TM_CODEC_H264 } tm_codec_id;
/* Codec from an SDP codec name (case-insensitive): "opus", "VP8", "H264". */
tm_codec_id tm_codec_from_name(const char *name);
/* Keyframe test dispatching on codec; audio -> false. */
bool tm_rtp_is_keyframe(tm_codec_id codec, const uint8_t *payload, size_t len);

/* ---- Sequence numbers ---- */

/* true when a is after b, modulo 2^16 (RFC 1982 style, half-range). */
static inline bool tm_seq_newer(uint16_t a, uint16_t b)
{
    return a != b && (uint16_t)(a - b) < 0x8000;
}
/* Signed distance a - b in (-32768, 32767]. */
static inline int32_t tm_seq_diff(uint16_t a, uint16_t b)
{
    return (int16_t)(uint16_t)(a - b);
}
/* Same for 32-bit RTP timestamps. */
static inline bool tm_ts_newer(uint32_t a, uint32_t b)
{
    return a != b && (uint32_t)(a - b) < 0x80000000u;
}

/*
 * Extended (32-bit: cycles << 16 | seq) sequence tracking of one stream,
 * RFC 3550 A.1 without probation. Zero-initialise (or tm_seq_tracker_init),
 * then feed every received seq. Caller-owned value, no allocation.
 */
typedef struct tm_seq_tracker {
    bool started;
    uint16_t max_seq;  /* highest seq seen */
    uint32_t cycles;   /* count of wraps << 16 */
    uint32_t base_seq; /* first extended seq */
} tm_seq_tracker;

static inline void tm_seq_tracker_init(tm_seq_tracker *t)
{
    t->started = false;
    t->max_seq = 0;
    t->cycles = 0;
    t->base_seq = 0;
}
/* Returns the extended sequence number of seq (reordered/older packets get
 * their extended value in the right cycle; a jump forward advances max). */
uint32_t tm_seq_tracker_update(tm_seq_tracker *t, uint16_t seq);
/* Highest extended seq seen (0 before the first packet). */
static inline uint32_t tm_seq_tracker_max(const tm_seq_tracker *t)
{
    return t->cycles | t->max_seq;
}

#endif

/*
 * rtcp.h - RTCP on the forwarding path: walk a compound packet, parse the
 * report and feedback messages an SFU acts on, and build the messages the
 * server sends, all in caller buffers.
 *
 * No allocation, no logging, every length checked: the bytes are untrusted.
 * Reentrant; runs on the calling media worker thread.
 *
 * References: RFC 3550 (SR, RR, SDES, BYE), RFC 4585 (RTPFB/PSFB: generic
 * NACK, PLI), RFC 5104 (FIR), draft-alvestrand-rmcat-remb (REMB),
 * draft-holmer-rmcat-transport-wide-cc-extensions (transport-cc),
 * RFC 5506 (reduced size: a lone feedback packet is valid).
 *
 * Private to media/: the server's other modules go through telemed/media.h;
 * media's unit tests and fuzz targets include it through media.cmake.
 */
#ifndef TELEMED_MEDIA_RTCP_H
#define TELEMED_MEDIA_RTCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "telemed/common.h"

enum {
    TM_RTCP_SR = 200,
    TM_RTCP_RR = 201,
    TM_RTCP_SDES = 202,
    TM_RTCP_BYE = 203,
    TM_RTCP_APP = 204,
    TM_RTCP_RTPFB = 205,
    TM_RTCP_PSFB = 206,
    TM_RTCP_XR = 207,
};
/* Feedback message types (the FMT field of RTPFB/PSFB). */
enum {
    TM_RTCP_FMT_NACK = 1,  /* RTPFB */
    TM_RTCP_FMT_TWCC = 15, /* RTPFB transport-cc */
    TM_RTCP_FMT_PLI = 1,   /* PSFB */
    TM_RTCP_FMT_FIR = 4,   /* PSFB */
    TM_RTCP_FMT_AFB = 15,  /* PSFB application layer FB: REMB when it says "REMB" */
};

/* What one packet of a compound is, for dispatch. */
typedef enum {
    TM_RTCP_K_UNKNOWN,
    TM_RTCP_K_SR,
    TM_RTCP_K_RR,
    TM_RTCP_K_SDES,
    TM_RTCP_K_BYE,
    TM_RTCP_K_APP,
    TM_RTCP_K_NACK,
    TM_RTCP_K_TWCC,
    TM_RTCP_K_PLI,
    TM_RTCP_K_FIR,
    TM_RTCP_K_REMB,
    TM_RTCP_K_OTHER_FB, /* RTPFB/PSFB of another FMT */
    TM_RTCP_K_XR,
} tm_rtcp_kind;

/* One packet inside a compound: borrowed view into the caller's buffer. */
typedef struct tm_rtcp_pkt {
    const uint8_t *data; /* first byte of this packet's header */
    size_t len;          /* whole packet incl. the 4-byte header: 4 * (length + 1) */
    size_t offset;       /* offset of data in the compound buffer */
    uint8_t pt;          /* 200..207 (or another value, see kind) */
    uint8_t count;       /* RC / SC / FMT: the 5 low bits of byte 0 */
    bool padding;
    tm_rtcp_kind kind;
} tm_rtcp_pkt;

/* Iterator over a compound packet; caller-owned value. */
typedef struct tm_rtcp_iter {
    const uint8_t *buf;
    size_t len;
    size_t off;
} tm_rtcp_iter;

void tm_rtcp_iter_init(tm_rtcp_iter *it, const uint8_t *buf, size_t len);
/* Returns 1 and fills *out with the next packet, 0 at the end, TM_EINVAL when
 * the next header is malformed (version != 2, length past the end, < 4
 * bytes). Iteration stops at the first malformed packet. */
int tm_rtcp_next(tm_rtcp_iter *it, tm_rtcp_pkt *out);

/* 0 when buf is a well-formed compound (every packet version 2 and exactly
 * tiling len), else TM_EINVAL. Does not require SR/RR first (RFC 5506). */
int tm_rtcp_validate(const uint8_t *buf, size_t len);

/* ---- Parsed messages (values copied out of the packet) ---- */

#define TM_RTCP_MAX_REPORTS 31

typedef struct tm_rtcp_report_block {
    uint32_t ssrc;           /* the source this block reports on */
    uint8_t fraction_lost;   /* fixed point /256 */
    int32_t cumulative_lost; /* 24-bit signed */
    uint32_t highest_seq;    /* extended highest sequence number received */
    uint32_t jitter;         /* clock units */
    uint32_t lsr;            /* middle 32 bits of the last SR's NTP time, 0 = none */
    uint32_t dlsr;           /* delay since last SR, 1/65536 s */
} tm_rtcp_report_block;

typedef struct tm_rtcp_sr {
    uint32_t ssrc;
    uint64_t ntp; /* 32.32 fixed point NTP time */
    uint32_t rtp_ts;
    uint32_t packet_count;
    uint32_t octet_count;
    unsigned n_reports;
    tm_rtcp_report_block reports[TM_RTCP_MAX_REPORTS];
} tm_rtcp_sr;

typedef struct tm_rtcp_rr {
    uint32_t ssrc;
    unsigned n_reports;
    tm_rtcp_report_block reports[TM_RTCP_MAX_REPORTS];
} tm_rtcp_rr;

/* Both return 0 or TM_EINVAL (wrong type, report count past the length). */
int tm_rtcp_parse_sr(const tm_rtcp_pkt *p, tm_rtcp_sr *out);
int tm_rtcp_parse_rr(const tm_rtcp_pkt *p, tm_rtcp_rr *out);

/* Common part of every RTPFB/PSFB message (RFC 4585 6.1). */
typedef struct tm_rtcp_fb {
    uint8_t pt; /* TM_RTCP_RTPFB or TM_RTCP_PSFB */
    uint8_t fmt;
    uint32_t sender_ssrc;
    uint32_t media_ssrc;
    const uint8_t *fci; /* feedback control information (borrowed) */
    size_t fci_len;
} tm_rtcp_fb;
int tm_rtcp_parse_fb(const tm_rtcp_pkt *p, tm_rtcp_fb *out);

/* Generic NACK: expand the (pid, blp) items into sequence numbers, in packet
 * order, at most max of them. Returns the number written (more may have
 * been present) or TM_EINVAL. */
int tm_rtcp_parse_nack(const tm_rtcp_pkt *p, uint32_t *media_ssrc, uint16_t *seqs, size_t max);

typedef struct tm_rtcp_fir_entry {
    uint32_t ssrc;
    uint8_t seq_nr;
} tm_rtcp_fir_entry;
/* FIR entries (at most max). Returns the count or TM_EINVAL. */
int tm_rtcp_parse_fir(const tm_rtcp_pkt *p, tm_rtcp_fir_entry *entries, size_t max);

#define TM_RTCP_REMB_MAX_SSRCS 16
typedef struct tm_rtcp_remb {
    uint32_t sender_ssrc;
    uint64_t bitrate_bps; /* mantissa << exp */
    unsigned n_ssrcs;     /* at most TM_RTCP_REMB_MAX_SSRCS kept */
    uint32_t ssrcs[TM_RTCP_REMB_MAX_SSRCS];
} tm_rtcp_remb;
/* Returns 0, or TM_EINVAL when not a well-formed REMB. */
int tm_rtcp_parse_remb(const tm_rtcp_pkt *p, tm_rtcp_remb *out);

/* ---- Builders: write into buf (cap bytes), return the length or TM_ETOOBIG /
 * TM_EINVAL. Concatenate results to make a compound packet. ---- */

int tm_rtcp_build_sr(uint8_t *buf, size_t cap, const tm_rtcp_sr *sr);
int tm_rtcp_build_rr(uint8_t *buf, size_t cap, uint32_t ssrc, const tm_rtcp_report_block *rb,
                     size_t n);
int tm_rtcp_build_pli(uint8_t *buf, size_t cap, uint32_t sender_ssrc, uint32_t media_ssrc);
/* Generic NACK from a list of lost sequence numbers, in any order (duplicates
 * ok): packed into (pid, blp) items, each covering pid..pid+16. */
int tm_rtcp_build_nack(uint8_t *buf, size_t cap, uint32_t sender_ssrc, uint32_t media_ssrc,
                       const uint16_t *seqs, size_t n);
/* REMB; bitrate is encoded as 18-bit mantissa and 6-bit exponent (rounded down). */
int tm_rtcp_build_remb(uint8_t *buf, size_t cap, uint32_t sender_ssrc, uint64_t bitrate_bps,
                       const uint32_t *ssrcs, size_t n);

/* ---- NTP time ---- */

/* The middle 32 bits (16.16) of a 32.32 NTP time, the form of LSR and of arrival times. */
static inline uint32_t tm_ntp_mid32(uint64_t ntp)
{
    return (uint32_t)(ntp >> 16);
}

#endif

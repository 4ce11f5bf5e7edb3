/*
 * congestion.h - what congestion control needs from the server's side of
 * each leg. Toward a sender: transport-wide congestion control feedback built
 * from the arrival times of its packets (transport-cc,
 * draft-holmer-rmcat-transport-wide-cc-extensions-01), and the loss its
 * receivers report folded into the RR the server sends it. Toward a
 * receiver: our own transport-wide numbers on what we forward, whose feedback
 * gives the server that receiver's downlink (bwe.h).
 *
 * Why transport-cc per hop: when an offer negotiates it, Chromium runs its
 * send-side estimator (GoogCC: delay trend plus loss, from this feedback) and
 * drops abs-send-time from its packets; REMB then only caps that estimate.
 * The server answers for the hop it sees (the sender's uplink); each
 * receiver's downlink is the server's to fit, by the simulcast layer it
 * forwards (forward_bind.c), so a sender is asked (REMB, forward_tick.c) for
 * what its receivers' layers need, not held to the weakest receiver's link.
 *
 * Caller-owned state inside the peer, no allocation; runs on the peer's
 * media worker thread.
 */
#ifndef TELEMED_MEDIA_CONGESTION_H
#define TELEMED_MEDIA_CONGESTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rtcp.h"
#include "rtp.h"
#include "sdp.h"

#define TM__TWCC_SLOTS 256          /* arrivals kept between two feedbacks */
#define TM__TWCC_INTERVAL_US 100000 /* Chromium's own receivers send every 100 ms */
#define TM__TWCC_MAX_PER_FB 200     /* packets per feedback: stays well under the MTU */

/* One peer's transport-wide sequence numbers and when they arrived. */
typedef struct tm__twcc {
    int ext_id; /* the peer's extension id, 0 = not negotiated */
    bool started;
    tm_seq_tracker seqs;
    uint32_t next; /* first extended sequence number not reported yet */
    uint32_t max;  /* highest seen */
    uint8_t fb_count;
    int64_t last_fb_us;
    uint32_t slot_seq[TM__TWCC_SLOTS]; /* the extended sequence number a slot holds */
    int64_t slot_us[TM__TWCC_SLOTS];   /* its arrival, 0 = none */
} tm__twcc;

/* The transport-cc extension id of an offer: its first m-line that has both
 * the extension and rtcp-fb transport-cc; 0 when none does. */
int tm__twcc_offer_ext(const tm_sdp_offer *offer);
/* Takes the negotiated id; a new transport or another id starts over. */
void tm__twcc_configure(tm__twcc *t, int ext_id, bool new_transport);
/* Notes one packet's arrival (arrival_us: monotonic, > 0). */
void tm__twcc_on_packet(tm__twcc *t, uint16_t seq, int64_t arrival_us);
/* Whether a feedback should go out now. */
bool tm__twcc_due(const tm__twcc *t, int64_t now_us);
/* Builds one transport-cc feedback of what arrived since the last one into
 * buf. Returns its length, 0 when there is nothing to report, or TM_ETOOBIG.
 * Call again while it returns > 0: a long gap takes more than one. */
int tm__twcc_build(tm__twcc *t, uint8_t *buf, size_t cap, uint32_t sender_ssrc, uint32_t media_ssrc,
                   int64_t now_us);

/* Writes a one-byte header extension element (id 1-14, n 1-3 bytes of data)
 * into the RTP packet of len bytes in a buffer of cap bytes: over an element
 * of the same id and length when there, else added (the extension block
 * grows, or one is made, moving the payload). Returns the new length, or
 * TM_EINVAL (malformed, two-byte extensions, an element of that id with
 * another length) or TM_ETOOBIG (no room); the packet is unchanged then. */
int tm__rtp_ext_put(uint8_t *pkt, size_t len, size_t cap, int id, const uint8_t *data, size_t n);

/* Writes abs-send-time (one-byte extension element id, 24-bit 6.18 s) as of
 * now_us into the RTP packet of len bytes in a buffer of cap bytes: over the
 * element when there, else added (the extension block grows, or one is made,
 * moving the payload). Returns the new length; len unchanged when it cannot
 * (two-byte extensions, no room, malformed). Stamped by the server, a
 * receiver's REMB measures the server's leg to it, not the sender's uplink
 * too (which transport-cc covers): the REMB a sender gets carries the
 * receivers' downlinks. */
size_t tm__abs_send_time_put(uint8_t *pkt, size_t len, size_t cap, int id, int64_t now_us);

/* The loss the RR to a sender reports for one of its streams: the worse of
 * what reached the server and what its receivers report. Chromium's encoders
 * read fraction_lost (Opus turns in-band FEC up) and its estimator reads the
 * cumulative count, so both move together. */
typedef struct tm__loss_fold {
    bool have;
    uint32_t last_highest; /* extended highest seq of the last report */
    uint32_t extra_lost;   /* packets added to the cumulative count so far */
} tm__loss_fold;
/* Adjusts rb (our own report block for the stream) in place. */
void tm__loss_fold_apply(tm__loss_fold *f, tm_rtcp_report_block *rb, uint8_t receivers_lost);

#endif

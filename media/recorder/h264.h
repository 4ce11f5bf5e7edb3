/*
 * h264.h - the avcC (ISO/IEC 14496-15) that a Matroska V_MPEG4/ISO/AVC
 * track carries as its CodecPrivate (module-private).
 */
#ifndef TELEMED_MEDIA_RECORDER_H264_H
#define TELEMED_MEDIA_RECORDER_H264_H

#include <glib.h>
#include <stddef.h>
#include <stdint.h>

/* Appends to out the avcC of one SPS and one PPS (NAL units with their
 * header byte, no start code), with 4-byte NAL lengths. Returns 0, or
 * TM_EINVAL. */
int tm__h264_avcc(const uint8_t *sps, size_t sps_len, const uint8_t *pps, size_t pps_len,
                  GByteArray *out);

#endif

/*
 * h264.h - what the recorder reads of H.264 parameter sets (module-private):
 * the picture size from an SPS and the avcC (ISO/IEC 14496-15) that a
 * Matroska V_MPEG4/ISO/AVC track carries as its CodecPrivate.
 */
#ifndef TELEMED_MEDIA_RECORDER_H264_H
#define TELEMED_MEDIA_RECORDER_H264_H

#include <glib.h>
#include <stddef.h>
#include <stdint.h>

/* The cropped picture size an SPS NAL unit (header byte included, no start
 * code) describes. Returns 0, or TM_EINVAL when it does not parse. */
int tm__h264_sps_size(const uint8_t *sps, size_t len, int *width, int *height);

/* Appends to out the avcC of one SPS and one PPS (NAL units as above),
 * with 4-byte NAL lengths. Returns 0, or TM_EINVAL. */
int tm__h264_avcc(const uint8_t *sps, size_t sps_len, const uint8_t *pps, size_t pps_len,
                  GByteArray *out);

#endif

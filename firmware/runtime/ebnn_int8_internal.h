/*
 * Small routines shared by the int8 kernels (not part of the public API).
 */
#ifndef EDGEBNN_FIRMWARE_RUNTIME_EBNN_INT8_INTERNAL_H_
#define EDGEBNN_FIRMWARE_RUNTIME_EBNN_INT8_INTERNAL_H_

#include "ebnn.h"

#define EBNN_INT8_MIN (-128)
#define EBNN_INT8_MAX 127

/* Clamp to [lo, hi] (TFLite: min(max(v, lo), hi)) and narrow to int8. */
static inline int8_t ebnn__int8_clamp(int32_t v, int32_t lo, int32_t hi) {
  v = v < lo ? lo : v;
  v = v > hi ? hi : v;
  return (int8_t)v;
}

/* An activation range is valid when act_min <= act_max inside int8. */
static inline int ebnn__int8_range_valid(int32_t lo, int32_t hi) {
  return lo >= EBNN_INT8_MIN && hi <= EBNN_INT8_MAX && lo <= hi;
}

static inline int ebnn__int8_zp_valid(int32_t zp) {
  return zp >= EBNN_INT8_MIN && zp <= EBNN_INT8_MAX;
}

/* A (multiplier, shift) pair MultiplyByQuantizedMultiplier accepts. */
static inline int ebnn__int8_qm_valid(int32_t multiplier, int32_t shift) {
  return multiplier >= 0 && shift >= -31 && shift <= 30;
}

/* TFLite's MultiplyByQuantizedMultiplier (double rounding): x * 2^left,
 * then gemmlowp's SaturatingRoundingDoublingHighMul (ebnn_int8_srdhm in
 * ebnn_int8_common.c says why one shift of the 64-bit sum is its rounding)
 * and RoundingDivideByPOT. Inline for the kernels' inner loops, where a call
 * costs as much as the arithmetic; ebnn_int8_multiply_by_quantized_multiplier
 * is this function. */
static inline int32_t ebnn__int8_requant(int32_t x, int32_t multiplier, int32_t shift) {
  const int32_t left = shift > 0 ? shift : 0;
  int32_t right = shift > 0 ? 0 : -shift;
  const int32_t a = (int32_t)((uint32_t)x << left);
  int32_t h, mask, threshold;
  if (a == INT32_MIN && multiplier == INT32_MIN) {
    h = INT32_MAX;
  } else {
    h = (int32_t)(((int64_t)a * (int64_t)multiplier + ((int64_t)1 << 30)) >> 31);
  }
  if (right <= 0) return h;
  if (right > 31) right = 31;
  mask = (int32_t)(((uint32_t)1u << right) - 1u);
  threshold = (mask >> 1) + (h < 0 ? 1 : 0);
  return (h >> right) + ((h & mask) > threshold ? 1 : 0);
}

/* Integer division rounded half away from zero (TFLite's pooling and mean
 * rounding): (s + n/2) / n for s > 0, (s - n/2) / n otherwise; n > 0. */
static inline int32_t ebnn__int8_div_round(int32_t s, int32_t n) {
  return s > 0 ? (s + n / 2) / n : (s - n / 2) / n;
}

#endif /* EDGEBNN_FIRMWARE_RUNTIME_EBNN_INT8_INTERNAL_H_ */

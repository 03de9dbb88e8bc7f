/*
 * Fixed-point helpers of TFLite's integer arithmetic (gemmlowp's
 * SaturatingRoundingDoublingHighMul and RoundingDivideByPOT, TFLite's
 * MultiplyByQuantizedMultiplier in its default double-rounding form).
 *
 * Right shifts of negative values are arithmetic here (GCC, Clang and Arm's
 * compilers all define them so; C99 leaves them implementation-defined),
 * as in TFLite.
 */
#include "ebnn.h"
#include "ebnn_int8_internal.h"

int32_t ebnn_int8_srdhm(int32_t a, int32_t b) {
  int64_t ab;
  if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
  ab = (int64_t)a * (int64_t)b;
  /* gemmlowp: (ab + nudge) / 2^31 truncated toward zero, nudge = 2^30 for
   * ab >= 0 and 1 - 2^30 below. For ab >= 0 that is floor((ab + 2^30) / 2^31);
   * for ab < 0 the sum is negative and truncation is
   * floor((ab + 1 - 2^30 + 2^31 - 1) / 2^31), the same expression. So one
   * arithmetic shift does it. |ab| <= 2^62: the sum cannot overflow. */
  return (int32_t)((ab + ((int64_t)1 << 30)) >> 31);
}

int32_t ebnn_int8_rounding_divide_by_pot(int32_t x, int32_t exponent) {
  int32_t mask, remainder, threshold;
  if (exponent <= 0) return x;
  if (exponent > 31) exponent = 31;
  mask = (int32_t)(((int64_t)1 << exponent) - 1);
  remainder = x & mask;
  threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

int32_t ebnn_int8_multiply_by_quantized_multiplier(int32_t x,
                                                   int32_t multiplier,
                                                   int32_t shift) {
  /* x * 2^left (wrapping, as TFLite), srdhm, rounding shift right: the
   * inline form the mcu kernels' loops use (ebnn_int8_internal.h). */
  return ebnn__int8_requant(x, multiplier, shift);
}

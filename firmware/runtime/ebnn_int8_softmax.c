/*
 * SOFTMAX, int8 in and int8 out (scale 1/256, zero point -128), as TFLite's
 * reference_ops::Softmax for quantized types computes it with gemmlowp's
 * fixed-point arithmetic:
 *   d = x - max(row) (only d >= diff_min counts), rescaled to Q5.26 by
 *   SRDHM(d << input_left_shift, input_multiplier);
 *   e = exp(d) in Q0.31 (gemmlowp's exp_on_negative_values: a Taylor
 *   polynomial on [-1/4, 0) and a barrel of exp(-2^k) constants);
 *   sum of e in Q12.19; 1/sum as gemmlowp's Newton-Raphson reciprocal;
 *   y = RoundingDivideByPOT(SRDHM(1/sum, e), bits over unit + 23) - 128.
 * The fixed-point formats are written as "Qm" = m integer bits of a raw
 * int32 (31 - m fractional bits).
 */
#include "ebnn.h"
#include "ebnn_int8_internal.h"

#define Q_ONE_Q0 INT32_MAX /* 1.0 in Q0.31 saturates to the largest value */

/* gemmlowp's SaturatingRoundingMultiplyByPOT for a positive exponent */
static int32_t sat_shift_left(int32_t x, int32_t e) {
  const int32_t threshold = (int32_t)(((int64_t)1 << (31 - e)) - 1);
  if (x > threshold) return INT32_MAX;
  if (x < -threshold) return INT32_MIN;
  return (int32_t)((uint32_t)x << e);
}

/* gemmlowp's RoundingHalfSum for int32: (a + b) / 2 rounded away from 0 */
static int32_t rounding_half_sum(int32_t a, int32_t b) {
  const int64_t sum = (int64_t)a + (int64_t)b;
  const int64_t sign = sum >= 0 ? 1 : -1;
  return (int32_t)((sum + sign) / 2);
}

/* wrapping int32 add/sub, as gemmlowp's plain Add/Sub on int32 */
static int32_t wadd(int32_t a, int32_t b) {
  return (int32_t)((uint32_t)a + (uint32_t)b);
}
static int32_t wsub(int32_t a, int32_t b) {
  return (int32_t)((uint32_t)a - (uint32_t)b);
}

/* exp(a) for a in [-1/4, 0), Q0 in, Q0 out */
static int32_t exp_quarter(int32_t a) {
  const int32_t c_exp_m1_8 = 1895147668; /* exp(-1/8) in Q0 */
  const int32_t c_1_3 = 715827883;       /* 1/3 in Q0 */
  const int32_t x = wadd(a, 1 << 28);    /* a + 1/8 */
  const int32_t x2 = ebnn_int8_srdhm(x, x);
  const int32_t x3 = ebnn_int8_srdhm(x2, x);
  const int32_t x4 = ebnn_int8_srdhm(x2, x2);
  const int32_t x4_4 = ebnn_int8_rounding_divide_by_pot(x4, 2);
  const int32_t poly = ebnn_int8_rounding_divide_by_pot(
      wadd(ebnn_int8_srdhm(wadd(x4_4, x3), c_1_3), x2), 1);
  return wadd(c_exp_m1_8, ebnn_int8_srdhm(c_exp_m1_8, wadd(x, poly)));
}

/* exp(a) for a <= 0, a in Q5 (26 fractional bits), result in Q0 */
static int32_t exp_negative_q5(int32_t a) {
  /* exp(-2^k) in Q0 for k = -2 .. 4 */
  static const int32_t barrel[7] = {1672461947, 1302514674, 790015084,
                                    290630308,  39332535,   720401,
                                    242};
  const int32_t frac_bits = 26;
  const int32_t quarter = 1 << (frac_bits - 2);
  const int32_t a_mod = wsub(a & (quarter - 1), quarter);
  const int32_t remainder = wsub(a_mod, a);
  int32_t result = exp_quarter(sat_shift_left(a_mod, 5)); /* Q5 -> Q0 */
  int32_t k;
  for (k = 0; k < 7; ++k) {
    const int32_t bit = frac_bits + k - 2;
    if (remainder & (int32_t)((uint32_t)1 << bit))
      result = ebnn_int8_srdhm(result, barrel[k]);
  }
  return a == 0 ? Q_ONE_Q0 : result;
}

/* 1 / (1 + a) for a in [0, 1), Q0 in, Q0 out (Newton-Raphson in Q2) */
static int32_t one_over_one_plus_x(int32_t a) {
  const int32_t c_48_17 = 1515870810;   /* 48/17 in Q2 */
  const int32_t c_m32_17 = -1010580540; /* -32/17 in Q2 */
  const int32_t one_q2 = 1 << 29;
  const int32_t half_den = rounding_half_sum(a, Q_ONE_Q0);
  int32_t x = wadd(c_48_17, ebnn_int8_srdhm(half_den, c_m32_17));
  int32_t i;
  for (i = 0; i < 3; ++i) {
    const int32_t hdx = ebnn_int8_srdhm(half_den, x);
    const int32_t one_minus = wsub(one_q2, hdx);
    x = wadd(x, sat_shift_left(ebnn_int8_srdhm(x, one_minus), 2)); /* Q4->Q2 */
  }
  return sat_shift_left(x, 1); /* x / 2 as Q1, then Q1 -> Q0 */
}

static int32_t count_leading_zeros(uint32_t v) {
  int32_t n = 0;
  if (v == 0u) return 32;
  while ((v & 0x80000000u) == 0u) {
    v <<= 1;
    ++n;
  }
  return n;
}

ebnn_status_t ebnn_int8_softmax_ref(const ebnn_int8_softmax_params_t *params,
                                    const int8_t *input, int8_t *output) {
  const ebnn_int8_softmax_params_t *p = params;
  int32_t r, c;
  if (p == NULL || input == NULL || output == NULL)
    return EBNN_ERROR_NULL_POINTER;
  if (p->rows <= 0 || p->cols <= 0 || p->input_multiplier < 0 ||
      p->input_left_shift < 0 || p->input_left_shift > 31 || p->diff_min > 0)
    return EBNN_ERROR_BAD_SHAPE;
  for (r = 0; r < p->rows; ++r) {
    const int8_t *x = input + (size_t)r * (size_t)p->cols;
    int8_t *y = output + (size_t)r * (size_t)p->cols;
    int32_t max = EBNN_INT8_MIN, sum = 0, headroom, bits_over_unit, recip;
    int32_t exponent;
    for (c = 0; c < p->cols; ++c) max = x[c] > max ? x[c] : max;
    for (c = 0; c < p->cols; ++c) {
      const int32_t d = (int32_t)x[c] - max;
      if (d >= p->diff_min) {
        const int32_t scaled = ebnn_int8_srdhm(
            (int32_t)((uint32_t)d << p->input_left_shift), p->input_multiplier);
        /* Q0 -> Q12 */
        sum = wadd(sum, ebnn_int8_rounding_divide_by_pot(exp_negative_q5(scaled), 12));
      }
    }
    /* reciprocal of the Q12 sum: normalize to [1, 2), 1 / (1 + frac) */
    headroom = count_leading_zeros((uint32_t)sum);
    bits_over_unit = 12 - headroom;
    recip = one_over_one_plus_x(
        (int32_t)(((uint32_t)sum << headroom) - ((uint32_t)1 << 31)));
    exponent = bits_over_unit + 31 - 8;
    if (exponent < 0 || exponent > 31) return EBNN_ERROR_BAD_SHAPE;
    for (c = 0; c < p->cols; ++c) {
      const int32_t d = (int32_t)x[c] - max;
      if (d >= p->diff_min) {
        const int32_t scaled = ebnn_int8_srdhm(
            (int32_t)((uint32_t)d << p->input_left_shift), p->input_multiplier);
        const int32_t e = exp_negative_q5(scaled);
        const int32_t v = ebnn_int8_rounding_divide_by_pot(
            ebnn_int8_srdhm(recip, e), exponent);
        y[c] = ebnn__int8_clamp(v + EBNN_INT8_MIN, EBNN_INT8_MIN, EBNN_INT8_MAX);
      } else {
        y[c] = (int8_t)EBNN_INT8_MIN;
      }
    }
  }
  return EBNN_OK;
}

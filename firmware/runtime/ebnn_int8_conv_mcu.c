/*
 * int8 CONV_2D, kernel set "mcu": same params, statuses and output bytes as
 * ebnn_int8_conv2d_ref. On cores with the DSP extension (M4, M7, M33, M55)
 * each output pixel's window is gathered once as int16 offsets x - input_zp
 * (0 for taps outside the input, which the reference skips: w * 0 adds
 * nothing), four taps at a time in the order (0, 2, 1, 3); a word of four
 * filter bytes is widened by SXTB16 (bytes 0, 2) and SXTB16 ROR 8 (bytes 1,
 * 3), and SMLAD adds two products per instruction, two output channels per
 * pass sharing the window loads. The sums are exact int32 sums of the same
 * products (windows are limited to EBNN_MCU_I8_PATCH taps, so |sum| <
 * 2^24: no wrap), so any order gives _ref's accumulator; the requantization
 * is _ref's. Without the DSP extension, or for longer windows, the call goes
 * to ebnn_int8_conv2d_ref.
 */
#include <string.h>

#include "ebnn.h"
#include "ebnn_int8_internal.h"

#define EBNN_MCU_I8_PATCH 512

#if defined(__ARM_FEATURE_SIMD32) && defined(__GNUC__)
#include <arm_acle.h>

/* SXTB16 of x rotated right by 8: bytes 1 and 3 as two int16. */
EBNN_INLINE uint32_t mcu_sxtb16_ror8(uint32_t x) {
  uint32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
  return r;
}

EBNN_INLINE uint32_t mcu_load32(const void *p) {
  uint32_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

/* Checks of ebnn_int8_conv2d_ref, in its order. */
static ebnn_status_t mcu_i8_check(const ebnn_int8_conv2d_params_t *p, int32_t *out_h,
                                  int32_t *out_w, int32_t *pad_top, int32_t *pad_left) {
  int32_t o;
  if (p->in_c <= 0 || p->out_c <= 0) return EBNN_ERROR_BAD_SHAPE;
  if (p->in_h <= 0 || p->in_w <= 0 || p->filter_h <= 0 || p->filter_w <= 0 ||
      p->stride_h <= 0 || p->stride_w <= 0 || p->dilation_h <= 0 || p->dilation_w <= 0)
    return EBNN_ERROR_BAD_SHAPE;
  if (p->padding != EBNN_PADDING_SAME && p->padding != EBNN_PADDING_VALID)
    return EBNN_ERROR_BAD_ENUM;
  *out_h = ebnn_output_size(p->in_h, p->filter_h, p->stride_h, p->dilation_h, p->padding);
  *out_w = ebnn_output_size(p->in_w, p->filter_w, p->stride_w, p->dilation_w, p->padding);
  if (*out_h <= 0 || *out_w <= 0) return EBNN_ERROR_BAD_SHAPE;
  *pad_top = ebnn_padding_before(p->in_h, p->filter_h, p->stride_h, p->dilation_h, p->padding);
  *pad_left = ebnn_padding_before(p->in_w, p->filter_w, p->stride_w, p->dilation_w, p->padding);
  if (p->output_multiplier == NULL || p->output_shift == NULL) return EBNN_ERROR_NULL_POINTER;
  if (!ebnn__int8_zp_valid(p->input_zero_point) || !ebnn__int8_zp_valid(p->output_zero_point) ||
      !ebnn__int8_range_valid(p->act_min, p->act_max))
    return EBNN_ERROR_BAD_SHAPE;
  for (o = 0; o < p->out_c; ++o) {
    if (!ebnn__int8_qm_valid(p->output_multiplier[o], p->output_shift[o]))
      return EBNN_ERROR_BAD_SHAPE;
  }
  return EBNN_OK;
}

/* The window of one output pixel as int16 offsets, taps in filter order,
 * every group of four stored as (0, 2, 1, 3). */
static void mcu_i8_gather(const ebnn_int8_conv2d_params_t *p, const int8_t *input,
                          int32_t y0, int32_t x0, int16_t *q) {
  int32_t fy, fx, c;
  size_t k = 0;
  const int32_t zp = p->input_zero_point;
  for (fy = 0; fy < p->filter_h; ++fy) {
    const int32_t iy = y0 + fy * p->dilation_h;
    for (fx = 0; fx < p->filter_w; ++fx) {
      const int32_t ix = x0 + fx * p->dilation_w;
      const int inside = iy >= 0 && iy < p->in_h && ix >= 0 && ix < p->in_w;
      const int8_t *px =
          inside ? input + ((size_t)iy * (size_t)p->in_w + (size_t)ix) * (size_t)p->in_c : NULL;
      for (c = 0; c < p->in_c; ++c, ++k) {
        /* position of tap k: groups of four reordered 0, 2, 1, 3 */
        static const unsigned char slot[4] = {0, 2, 1, 3};
        const size_t at = (k & ~(size_t)3) + slot[k & 3];
        q[at] = (int16_t)(inside ? (int32_t)px[c] - zp : 0);
      }
    }
  }
}

/* All output channels of one pixel whose window has 9 taps: the window
 * stays in five registers and each channel is 4 SMLADs and one multiply,
 * then requantization inline (the call cost as much as the products). */
static void mcu_i8_k9(const ebnn_int8_conv2d_params_t *p, const int16_t *q, int8_t *out) {
  const uint32_t q02 = mcu_load32(q), q13 = mcu_load32(q + 2);
  const uint32_t q46 = mcu_load32(q + 4), q57 = mcu_load32(q + 6);
  const int32_t q8 = q[8];
  /* locals: the int8 stores to out may alias any field of *p */
  const int8_t *w = p->filter;
  const int32_t *bias = p->bias, *mult = p->output_multiplier, *shift = p->output_shift;
  const int32_t zp = p->output_zero_point, lo = p->act_min, hi = p->act_max, n = p->out_c;
  int32_t o;
  for (o = 0; o < n; ++o, w += 9) {
    const uint32_t a = mcu_load32(w), b = mcu_load32(w + 4);
    int32_t acc = __smlad(__sxtb16(a), q02, (int32_t)w[8] * q8);
    acc = __smlad(mcu_sxtb16_ror8(a), q13, acc);
    acc = __smlad(__sxtb16(b), q46, acc);
    acc = __smlad(mcu_sxtb16_ror8(b), q57, acc);
    if (bias != NULL) acc += bias[o];
    acc = ebnn__int8_requant(acc, mult[o], shift[o]);
    out[o] = ebnn__int8_clamp(acc + zp, lo, hi);
  }
}

ebnn_status_t ebnn_int8_conv2d_mcu(const ebnn_int8_conv2d_params_t *params,
                                   const int8_t *input, int8_t *output) {
  const ebnn_int8_conv2d_params_t *p = params;
  int16_t q[EBNN_MCU_I8_PATCH];
  int32_t out_h, out_w, pad_top, pad_left, oy, ox, o;
  size_t k_size, k4, k;
  ebnn_status_t st;
  if (p == NULL || input == NULL || output == NULL || p->filter == NULL)
    return EBNN_ERROR_NULL_POINTER;
  st = mcu_i8_check(p, &out_h, &out_w, &pad_top, &pad_left);
  if (st != EBNN_OK) return st;
  k_size = (size_t)p->filter_h * (size_t)p->filter_w * (size_t)p->in_c;
  if (k_size > EBNN_MCU_I8_PATCH) return ebnn_int8_conv2d_ref(p, input, output);
  k4 = k_size & ~(size_t)3;
  for (oy = 0; oy < out_h; ++oy) {
    for (ox = 0; ox < out_w; ++ox) {
      int8_t *out = output + ((size_t)oy * (size_t)out_w + (size_t)ox) * (size_t)p->out_c;
      mcu_i8_gather(p, input, oy * p->stride_h - pad_top, ox * p->stride_w - pad_left, q);
      if (k_size == 9) { /* 3x3 over one channel (a grayscale stem) */
        mcu_i8_k9(p, q, out);
        continue;
      }
      for (o = 0; o < p->out_c; o += 2) {
        const int two = o + 1 < p->out_c;
        const int8_t *w0 = p->filter + (size_t)o * k_size;
        const int8_t *w1 = two ? w0 + k_size : w0;
        int32_t acc0 = 0, acc1 = 0, j;
        for (k = 0; k < k4; k += 4) {
          const uint32_t q02 = mcu_load32(q + k), q13 = mcu_load32(q + k + 2);
          const uint32_t a = mcu_load32(w0 + k), b = mcu_load32(w1 + k);
          acc0 = __smlad(__sxtb16(a), q02, acc0);
          acc0 = __smlad(mcu_sxtb16_ror8(a), q13, acc0);
          acc1 = __smlad(__sxtb16(b), q02, acc1);
          acc1 = __smlad(mcu_sxtb16_ror8(b), q13, acc1);
        }
        for (; k < k_size; ++k) { /* the last 1-3 taps sit in their own slots */
          static const unsigned char slot[4] = {0, 2, 1, 3};
          const int32_t v = q[k4 + slot[k - k4]];
          acc0 += (int32_t)w0[k] * v;
          acc1 += (int32_t)w1[k] * v;
        }
        for (j = 0; j < 1 + two; ++j) {
          int32_t acc = j == 0 ? acc0 : acc1;
          if (p->bias != NULL) acc += p->bias[o + j];
          acc = ebnn_int8_multiply_by_quantized_multiplier(acc, p->output_multiplier[o + j],
                                                           p->output_shift[o + j]);
          out[o + j] = ebnn__int8_clamp(acc + p->output_zero_point, p->act_min, p->act_max);
        }
      }
    }
  }
  return EBNN_OK;
}

#else

ebnn_status_t ebnn_int8_conv2d_mcu(const ebnn_int8_conv2d_params_t *params,
                                   const int8_t *input, int8_t *output) {
  return ebnn_int8_conv2d_ref(params, input, output);
}

#endif

/*
 * Binary kernels: LceQuantize, LceDequantize, LceBconv2d, LceBMaxPool2d and
 * the xnor-popcount dense layer. Portable C99 reference implementations.
 *
 * LceBconv2d follows LCE 0.16's kernels (larq_compute_engine/core/bconv2d/
 * output_transform.h, zero_padding_correction.h and the one-time setup in
 * tflite/kernels/bconv2d.cc):
 *   p      = XOR-popcount over every tap, out-of-bounds taps reading bit 0
 *   float  : x = clamp(2 p, K - nominal_max, K - nominal_min)
 *            y = (float)x * m' + b',  m' = (float)(-(double)mul),
 *                                     b' = (float)((double)bias + K * (double)mul)
 *            same-zero: y += (-1.0f * mul) * (float)(sum of the +-1 filter
 *            values on the out-of-bounds taps), on pixels whose window sticks
 *            out of the input
 *   packed : bit = p > threshold[o]   (the threshold is in popcount units)
 * Mathematically y = clamp(K - 2 p) * mul + bias; the float rounding differs
 * from that naive form, which is why the fused m', b' are reproduced.
 */
#include "ebnn.h"
#include "ebnn_internal.h"

ebnn_status_t ebnn_quantize_ref(const ebnn_quantize_params_t *params,
                                const float *input, int32_t *output) {
  int32_t i;
  int32_t words;
  if (params == NULL || input == NULL || output == NULL)
    return EBNN_ERROR_NULL_POINTER;
  if (params->n_pixels < 0 || params->channels <= 0) return EBNN_ERROR_BAD_SHAPE;
  words = EBNN_PACKED_WORDS(params->channels);
  for (i = 0; i < params->n_pixels; ++i) {
    ebnn__pack_pixel(input + (size_t)i * (size_t)params->channels,
                     params->channels, output + (size_t)i * (size_t)words);
  }
  return EBNN_OK;
}

ebnn_status_t ebnn_dequantize_ref(const ebnn_quantize_params_t *params,
                                  const int32_t *input, float *output) {
  int32_t i, c;
  int32_t words;
  if (params == NULL || input == NULL || output == NULL)
    return EBNN_ERROR_NULL_POINTER;
  if (params->n_pixels < 0 || params->channels <= 0) return EBNN_ERROR_BAD_SHAPE;
  words = EBNN_PACKED_WORDS(params->channels);
  for (i = 0; i < params->n_pixels; ++i) {
    const int32_t *px = input + (size_t)i * (size_t)words;
    float *o = output + (size_t)i * (size_t)params->channels;
    for (c = 0; c < params->channels; ++c) {
      const uint32_t word = (uint32_t)px[c / 32];
      o[c] = ((word >> (c % 32)) & 1u) ? -1.0f : 1.0f;
    }
  }
  return EBNN_OK;
}

/* ---------------------------------------------------------------------- */
/* LceBconv2d                                                              */
/* ---------------------------------------------------------------------- */

ebnn_status_t ebnn__bconv2d_check(const ebnn_bconv2d_params_t *p,
                                  ebnn__bgeom_t *g) {
  int32_t nominal_min, nominal_max;
  if (p == NULL || p->filter == NULL) return EBNN_ERROR_NULL_POINTER;
  if (p->in_h <= 0 || p->in_w <= 0 || p->in_c <= 0 || p->out_c <= 0 ||
      p->filter_h <= 0 || p->filter_w <= 0 || p->stride_h <= 0 ||
      p->stride_w <= 0 || p->dilation_h <= 0 || p->dilation_w <= 0)
    return EBNN_ERROR_BAD_SHAPE;
  if (p->padding != EBNN_PADDING_SAME && p->padding != EBNN_PADDING_VALID)
    return EBNN_ERROR_BAD_ENUM;
  if (p->pad_value != 0 && p->pad_value != 1) return EBNN_ERROR_BAD_ENUM;
  if (!ebnn__act_valid(p->activation)) return EBNN_ERROR_BAD_ENUM;
  if (p->thresholds == NULL && (p->multiplier == NULL || p->bias == NULL))
    return EBNN_ERROR_NULL_POINTER;
  g->same_zero = (p->padding == EBNN_PADDING_SAME && p->pad_value == 0);
  /* LCE rejects these combinations in its Prepare step. */
  if (g->same_zero &&
      (p->thresholds != NULL || p->activation != EBNN_ACT_NONE))
    return EBNN_ERROR_UNSUPPORTED;
  g->g.out_h = ebnn_output_size(p->in_h, p->filter_h, p->stride_h,
                                p->dilation_h, p->padding);
  g->g.out_w = ebnn_output_size(p->in_w, p->filter_w, p->stride_w,
                                p->dilation_w, p->padding);
  if (g->g.out_h <= 0 || g->g.out_w <= 0) return EBNN_ERROR_BAD_SHAPE;
  g->g.pad_top = ebnn_padding_before(p->in_h, p->filter_h, p->stride_h,
                                     p->dilation_h, p->padding);
  g->g.pad_left = ebnn_padding_before(p->in_w, p->filter_w, p->stride_w,
                                      p->dilation_w, p->padding);
  g->words_in = EBNN_PACKED_WORDS(p->in_c);
  g->k = p->filter_h * p->filter_w * p->in_c;
  /* CalculateActivationRange on int32, limited to [-K, K], then mapped onto
   * the 2 * popcount axis (2p = K - acc). */
  switch (p->activation) {
    case EBNN_ACT_RELU:
      nominal_min = 0;
      nominal_max = INT32_MAX;
      break;
    case EBNN_ACT_RELU_N1_TO_1:
      nominal_min = -1;
      nominal_max = 1;
      break;
    case EBNN_ACT_RELU6:
      nominal_min = 0;
      nominal_max = 6;
      break;
    default:
      nominal_min = INT32_MIN;
      nominal_max = INT32_MAX;
      break;
  }
  if (nominal_min < -g->k) nominal_min = -g->k;
  if (nominal_max > g->k) nominal_max = g->k;
  g->clamp_min = g->k - nominal_max;
  g->clamp_max = g->k - nominal_min;
  return EBNN_OK;
}

/* XOR-popcount of one output channel at (oy, ox); out-of-bounds taps read
 * bit 0 (+1). The general path, with bounds checks. */
int32_t ebnn__bconv_popcount(const ebnn_bconv2d_params_t *p,
                             const ebnn__bgeom_t *g, const int32_t *input,
                             int32_t oy, int32_t ox, int32_t o) {
  int32_t fy, fx, w;
  int32_t count = 0;
  const int32_t words = g->words_in;
  const int32_t y_origin = oy * p->stride_h - g->g.pad_top;
  const int32_t x_origin = ox * p->stride_w - g->g.pad_left;
  const int32_t *filt =
      p->filter + (size_t)o * (size_t)p->filter_h * (size_t)p->filter_w *
                      (size_t)words;
  for (fy = 0; fy < p->filter_h; ++fy) {
    const int32_t iy = y_origin + fy * p->dilation_h;
    for (fx = 0; fx < p->filter_w; ++fx) {
      const int32_t ix = x_origin + fx * p->dilation_w;
      const int32_t *wt = filt + ((size_t)fy * (size_t)p->filter_w + (size_t)fx) *
                                     (size_t)words;
      if (iy >= 0 && iy < p->in_h && ix >= 0 && ix < p->in_w) {
        const int32_t *px =
            input + ((size_t)iy * (size_t)p->in_w + (size_t)ix) * (size_t)words;
        for (w = 0; w < words; ++w)
          count += EBNN_POPCOUNT32((uint32_t)px[w] ^ (uint32_t)wt[w]);
      } else {
        for (w = 0; w < words; ++w) count += EBNN_POPCOUNT32((uint32_t)wt[w]);
      }
    }
  }
  return count;
}

/* Same-zero padding correction of output pixel (oy, ox), channel o, as LCE's
 * zero_padding_correction.h computes it: from how far the (dilated) window
 * overflows the input on each side, one of four cases picks which filter
 * taps count as "outside" (a tap is outside when it lies in the top/bottom
 * overflow rows or the left/right overflow columns of its case), and the
 * correction is the sum of their +-1 values. For a window that fits in the
 * input this is exactly the sum over the out-of-bounds taps; when the
 * effective filter is larger than the input (it overflows on both sides)
 * LCE's cases do not cover it and it applies no correction, or a partial
 * one. Returns 1 and sets *sum when LCE applies a correction. */
int ebnn__bconv_zero_pad_case(const ebnn_bconv2d_params_t *p, const ebnn__bgeom_t *g,
                              int32_t oy, int32_t ox, ebnn__zpad_case_t *zc) {
  const int32_t eff_w = (p->filter_w - 1) * p->dilation_w + 1;
  const int32_t eff_h = (p->filter_h - 1) * p->dilation_h + 1;
  /* C99 division truncates toward zero, as C++'s does in LCE. */
  const int32_t left_off = ((g->g.out_w - 1) * p->stride_w + eff_w - p->in_w) / 2;
  const int32_t top_off = ((g->g.out_h - 1) * p->stride_h + eff_h - p->in_h) / 2;
  const int32_t top = top_off - oy * p->stride_h;
  const int32_t bot = -top - p->in_h + eff_h;
  const int32_t left = left_off - ox * p->stride_w;
  const int32_t right = -left - p->in_w + eff_w;
  zc->eff_w = eff_w;
  zc->eff_h = eff_h;
  if (left <= 0 && right <= 0 && top <= 0 && bot <= 0) return 0;
  if (right <= 0 && top > 0 && bot < 0) {
    zc->kase = 0; zc->cx = left > 0 ? left : 0; zc->cy = top;
  } else if (left < 0 && right > 0 && bot <= 0) {
    zc->kase = 1; zc->cx = right; zc->cy = top > 0 ? top : 0;
  } else if (left > 0 && right < 0 && top <= 0) {
    zc->kase = 2; zc->cx = left; zc->cy = bot > 0 ? bot : 0;
  } else if (left <= 0 && top < 0 && bot > 0) {
    zc->kase = 3; zc->cx = right > 0 ? right : 0; zc->cy = bot;
  } else {
    return 0; /* LCE: "This cannot happen." -- no correction */
  }
  return 1;
}

int ebnn__bconv_zero_pad_counted(const ebnn_bconv2d_params_t *p, const ebnn__zpad_case_t *zc,
                                 int32_t fy, int32_t fx) {
  const int32_t efy = p->dilation_h * fy, efx = p->dilation_w * fx;
  switch (zc->kase) {
    case 0: return efy < zc->cy || efx < zc->cx;
    case 1: return efy < zc->cy || zc->eff_w - efx <= zc->cx;
    case 2: return zc->eff_h - efy <= zc->cy || efx < zc->cx;
    default: return zc->eff_h - efy <= zc->cy || zc->eff_w - efx <= zc->cx;
  }
}

int32_t ebnn__bconv_tap_sum(const ebnn_bconv2d_params_t *p, const ebnn__bgeom_t *g,
                            int32_t o, int32_t tap) {
  const int32_t words = g->words_in;
  const int32_t *wt = p->filter + ((size_t)o * (size_t)p->filter_h * (size_t)p->filter_w +
                                   (size_t)tap) * (size_t)words;
  int32_t w, ones = 0;
  for (w = 0; w < words; ++w) ones += EBNN_POPCOUNT32((uint32_t)wt[w]);
  return p->in_c - 2 * ones;
}

int ebnn__bconv_zero_pad_correction(const ebnn_bconv2d_params_t *p,
                                    const ebnn__bgeom_t *g, int32_t oy,
                                    int32_t ox, int32_t o, int32_t *sum) {
  ebnn__zpad_case_t zc;
  int32_t fy, fx, total = 0;
  if (!ebnn__bconv_zero_pad_case(p, g, oy, ox, &zc)) return 0;
  for (fy = 0; fy < p->filter_h; ++fy)
    for (fx = 0; fx < p->filter_w; ++fx)
      if (ebnn__bconv_zero_pad_counted(p, &zc, fy, fx))
        total += ebnn__bconv_tap_sum(p, g, o, fy * p->filter_w + fx);
  *sum = total;
  return 1;
}

/* XOR-popcount of n contiguous words. With the SWAR popcount, three words
 * share the last folding steps (4-bit field sums of three words fit in a
 * nibble): about 14 operations per word instead of 17. */
EBNN_INLINE int32_t xor_popcount_run(const int32_t *a, const int32_t *b,
                                     int32_t n) {
  int32_t i = 0, count = 0;
#if defined(EBNN_POPCOUNT32_IS_SWAR)
  for (; i + 3 <= n; i += 3) {
    uint32_t x0 = (uint32_t)a[i] ^ (uint32_t)b[i];
    uint32_t x1 = (uint32_t)a[i + 1] ^ (uint32_t)b[i + 1];
    uint32_t x2 = (uint32_t)a[i + 2] ^ (uint32_t)b[i + 2];
    uint32_t s;
    x0 -= (x0 >> 1) & 0x55555555u;
    x1 -= (x1 >> 1) & 0x55555555u;
    x2 -= (x2 >> 1) & 0x55555555u;
    x0 = (x0 & 0x33333333u) + ((x0 >> 2) & 0x33333333u);
    x1 = (x1 & 0x33333333u) + ((x1 >> 2) & 0x33333333u);
    x2 = (x2 & 0x33333333u) + ((x2 >> 2) & 0x33333333u);
    s = x0 + x1 + x2; /* nibbles <= 12 */
    s = (s & 0x0F0F0F0Fu) + ((s >> 4) & 0x0F0F0F0Fu); /* bytes <= 24 */
    count += (int32_t)((s * 0x01010101u) >> 24);
  }
#endif
  for (; i < n; ++i) count += EBNN_POPCOUNT32((uint32_t)a[i] ^ (uint32_t)b[i]);
  return count;
}

/* Four output channels against one patch: the patch word is loaded once.
 * Used where popcount is one instruction (with SWAR the register pressure
 * of four channels costs more than it saves on a Cortex-M). */
#if !defined(EBNN_POPCOUNT32_IS_SWAR)
#define EBNN_BCONV_RUN4 1
EBNN_INLINE void xor_popcount_run4(const int32_t *a, const int32_t *b0,
                                   size_t stride, int32_t n, int32_t *count) {
  int32_t i, c0 = 0, c1 = 0, c2 = 0, c3 = 0;
  const int32_t *b1 = b0 + stride, *b2 = b1 + stride, *b3 = b2 + stride;
  for (i = 0; i < n; ++i) {
    const uint32_t x = (uint32_t)a[i];
    c0 += EBNN_POPCOUNT32(x ^ (uint32_t)b0[i]);
    c1 += EBNN_POPCOUNT32(x ^ (uint32_t)b1[i]);
    c2 += EBNN_POPCOUNT32(x ^ (uint32_t)b2[i]);
    c3 += EBNN_POPCOUNT32(x ^ (uint32_t)b3[i]);
  }
  count[0] = c0;
  count[1] = c1;
  count[2] = c2;
  count[3] = c3;
}
#else
#define EBNN_BCONV_RUN4 0
#endif

/* The input words under the window of one output pixel, in filter order
 * [fh][fw][words] (the layout of one output channel's filter), with 0 words
 * (= +1, same-one padding) for taps outside the input. Lets every output
 * channel be one contiguous XOR-popcount run. */
#define EBNN_BCONV_PATCH_WORDS 256

static void bconv_gather(const ebnn_bconv2d_params_t *p, const ebnn__bgeom_t *g,
                         const int32_t *input, int32_t y_origin,
                         int32_t x_origin, int32_t *patch) {
  int32_t fy, fx, w;
  const int32_t words = g->words_in;
  for (fy = 0; fy < p->filter_h; ++fy) {
    const int32_t iy = y_origin + fy * p->dilation_h;
    for (fx = 0; fx < p->filter_w; ++fx) {
      const int32_t ix = x_origin + fx * p->dilation_w;
      if (iy >= 0 && iy < p->in_h && ix >= 0 && ix < p->in_w) {
        const int32_t *px =
            input + ((size_t)iy * (size_t)p->in_w + (size_t)ix) * (size_t)words;
        if (words == 1) {
          patch[0] = px[0]; /* (a copy loop here becomes a memcpy call) */
        } else {
          for (w = 0; w < words; ++w) patch[w] = px[w];
        }
      } else {
        for (w = 0; w < words; ++w) patch[w] = 0;
      }
      patch += words;
    }
  }
}

/* Fast path of bconv_popcount for a window entirely inside the input: no
 * bounds checks, and with dilation_w == 1 a filter row is one contiguous run
 * of filter_w * words words in both the input and the filter. */
EBNN_INLINE int32_t bconv_popcount_inside(const ebnn_bconv2d_params_t *p,
                                          const ebnn__bgeom_t *g,
                                          const int32_t *input, int32_t y_origin,
                                          int32_t x_origin, const int32_t *filt) {
  int32_t fy, fx, count = 0;
  const int32_t words = g->words_in;
  const size_t row_words = (size_t)p->filter_w * (size_t)words;
  for (fy = 0; fy < p->filter_h; ++fy) {
    const int32_t *px =
        input + ((size_t)(y_origin + fy * p->dilation_h) * (size_t)p->in_w +
                 (size_t)x_origin) * (size_t)words;
    const int32_t *wt = filt + (size_t)fy * row_words;
    if (p->dilation_w == 1) {
      count += xor_popcount_run(px, wt, (int32_t)row_words);
    } else {
      for (fx = 0; fx < p->filter_w; ++fx) {
        count += xor_popcount_run(px + (size_t)fx * (size_t)p->dilation_w * (size_t)words,
                                  wt + (size_t)fx * (size_t)words, words);
      }
    }
  }
  return count;
}

/* Whether the window of output pixel (oy, ox) lies inside the input. */
EBNN_INLINE int bconv_inside(const ebnn_bconv2d_params_t *p,
                             const ebnn__bgeom_t *g, int32_t y_origin,
                             int32_t x_origin) {
  return y_origin >= 0 && x_origin >= 0 &&
         y_origin + (p->filter_h - 1) * p->dilation_h < p->in_h &&
         x_origin + (p->filter_w - 1) * p->dilation_w < p->in_w && g->words_in > 0;
}

/* XOR-popcounts of output channels o0 .. o0 + nb - 1 against the patch. */
static void bconv_block_counts(const ebnn_bconv2d_params_t *p, const int32_t *patch,
                               size_t filt_words, int32_t o0, int32_t nb,
                               int32_t *counts) {
  int32_t j = 0;
  const int32_t *filt = p->filter + (size_t)o0 * filt_words;
#if EBNN_BCONV_RUN4
  for (; j + 4 <= nb; j += 4)
    xor_popcount_run4(patch, filt + (size_t)j * filt_words, filt_words,
                      (int32_t)filt_words, counts + j);
#endif
  for (; j < nb; ++j)
    counts[j] = xor_popcount_run(patch, filt + (size_t)j * filt_words, (int32_t)filt_words);
}

/* Output channels are processed in blocks of 32: one bitpacked output word,
 * and for float output the fused multiplier/bias of the block are computed
 * once per row (double arithmetic is soft-float on Cortex-M). */
#define EBNN_BCONV_BLOCK 32

/* LCE's int8 output transform: saturate(round(y)), round half away from
 * zero as TfLiteRound on the x86 interpreter (vcvtr on Arm hard-float LCE
 * builds rounds halves to even; the x86 interpreter is the reference here).
 * Clamping in float first keeps the int conversion defined; no libm. */
int8_t ebnn__bconv_saturate_round(float y) {
  int32_t t;
  float frac;
  if (y != y) return 0; /* NaN: undefined in LCE, defined here */
  if (y >= 127.0f) return 127;
  if (y <= -128.0f) return -128;
  t = (int32_t)y;       /* toward zero, |t| <= 127 */
  frac = y - (float)t;  /* exact: the fraction bits of y */
  if (frac >= 0.5f) t += 1;
  if (frac <= -0.5f) t -= 1;
  return (int8_t)t;
}

/* One output row of the float or int8 transform. q == NULL: float output,
 * m' and b' as above. q != NULL: int8 output with LCE's fused
 *   m' = (float)(-(double)mul / scale),
 *   b' = (float)(((double)bias + K * (double)mul) / scale + zero_point). */
static void bconv2d_row_affine(const ebnn_bconv2d_params_t *p,
                               const ebnn__bgeom_t *g, const int32_t *input,
                               int32_t oy, float *out_row, int8_t *q_row,
                               const ebnn_int8_lce_bconv2d_params_t *q) {
  float m[EBNN_BCONV_BLOCK], b[EBNN_BCONV_BLOCK], neg_mul[EBNN_BCONV_BLOCK];
  int32_t patch[EBNN_BCONV_PATCH_WORDS];
  int32_t o0, j, ox;
  const size_t filt_words =
      (size_t)p->filter_h * (size_t)p->filter_w * (size_t)g->words_in;
  const int use_patch = filt_words <= EBNN_BCONV_PATCH_WORDS;
  const int32_t y_origin = oy * p->stride_h - g->g.pad_top;
  for (o0 = 0; o0 < p->out_c; o0 += EBNN_BCONV_BLOCK) {
    const int32_t nb =
        p->out_c - o0 < EBNN_BCONV_BLOCK ? p->out_c - o0 : EBNN_BCONV_BLOCK;
    for (j = 0; j < nb; ++j) {
      const float mul = p->multiplier[o0 + j];
      if (q == NULL) {
        m[j] = (float)(-1.0 * (double)mul);
        b[j] = (float)((double)p->bias[o0 + j] + (double)g->k * (double)mul);
      } else {
        const double scale = (double)q->output_scale;
        m[j] = (float)(-1.0 * (double)mul / scale);
        b[j] = (float)(((double)p->bias[o0 + j] + (double)g->k * (double)mul) / scale +
                       (double)q->output_zero_point);
      }
      neg_mul[j] = -1.0f * mul;
    }
    for (ox = 0; ox < g->g.out_w; ++ox) {
      const int32_t x_origin = ox * p->stride_w - g->g.pad_left;
      const int inside = bconv_inside(p, g, y_origin, x_origin);
      const size_t at = (size_t)ox * (size_t)p->out_c + (size_t)o0;
      int32_t counts[EBNN_BCONV_BLOCK];
      if (use_patch) {
        bconv_gather(p, g, input, y_origin, x_origin, patch);
        bconv_block_counts(p, patch, filt_words, o0, nb, counts);
      }
      for (j = 0; j < nb; ++j) {
        const int32_t *filt = p->filter + (size_t)(o0 + j) * filt_words;
        int32_t oob_sum = 0, count, x;
        float y;
        if (use_patch) {
          count = counts[j];
        } else if (inside) {
          count = bconv_popcount_inside(p, g, input, y_origin, x_origin, filt);
        } else {
          count = ebnn__bconv_popcount(p, g, input, oy, ox, o0 + j);
        }
        x = 2 * count;
        x = x > g->clamp_max ? g->clamp_max : x;
        x = x < g->clamp_min ? g->clamp_min : x;
        y = (float)x * m[j];
        y = y + b[j];
        if (g->same_zero && !inside &&
            ebnn__bconv_zero_pad_correction(p, g, oy, ox, o0 + j, &oob_sum)) {
          const float corr = neg_mul[j] * (float)oob_sum;
          y = y + corr;
        }
        if (q_row == NULL) {
          out_row[at + (size_t)j] = y;
        } else {
          q_row[at + (size_t)j] = ebnn__bconv_saturate_round(y);
        }
      }
    }
  }
}

void ebnn__bconv2d_row_float(const ebnn_bconv2d_params_t *p,
                             const ebnn__bgeom_t *g, const int32_t *input,
                             int32_t oy, float *out_row) {
  bconv2d_row_affine(p, g, input, oy, out_row, NULL, NULL);
}

ebnn_status_t ebnn_int8_lce_bconv2d_ref(
    const ebnn_int8_lce_bconv2d_params_t *params, const int32_t *input,
    int8_t *output) {
  ebnn__bgeom_t g;
  int32_t oy;
  ebnn_status_t st;
  if (params == NULL || params->bconv == NULL || input == NULL || output == NULL)
    return EBNN_ERROR_NULL_POINTER;
  if (params->bconv->thresholds != NULL) return EBNN_ERROR_UNSUPPORTED;
  if (!(params->output_scale > 0.0f) || params->output_zero_point < -128 ||
      params->output_zero_point > 127)
    return EBNN_ERROR_UNSUPPORTED;
  st = ebnn__bconv2d_check(params->bconv, &g);
  if (st != EBNN_OK) return st;
  if (g.same_zero) return EBNN_ERROR_UNSUPPORTED; /* float output only in LCE */
  for (oy = 0; oy < g.g.out_h; ++oy) {
    bconv2d_row_affine(params->bconv, &g, input, oy, NULL,
                       output + (size_t)oy * (size_t)g.g.out_w * (size_t)params->bconv->out_c,
                       params);
  }
  return EBNN_OK;
}

static void bconv2d_row_packed(const ebnn_bconv2d_params_t *p,
                               const ebnn__bgeom_t *g, const int32_t *input,
                               int32_t oy, int32_t *out_row) {
  int32_t patch[EBNN_BCONV_PATCH_WORDS];
  int32_t o0, j, ox;
  const int32_t words_out = EBNN_PACKED_WORDS(p->out_c);
  const size_t filt_words =
      (size_t)p->filter_h * (size_t)p->filter_w * (size_t)g->words_in;
  const int use_patch = filt_words <= EBNN_BCONV_PATCH_WORDS;
  const int32_t y_origin = oy * p->stride_h - g->g.pad_top;
  for (ox = 0; ox < g->g.out_w; ++ox) {
    const int32_t x_origin = ox * p->stride_w - g->g.pad_left;
    const int inside = bconv_inside(p, g, y_origin, x_origin);
    int32_t *px = out_row + (size_t)ox * (size_t)words_out;
    if (use_patch) bconv_gather(p, g, input, y_origin, x_origin, patch);
    for (o0 = 0; o0 < p->out_c; o0 += EBNN_BCONV_BLOCK) {
      const int32_t nb =
          p->out_c - o0 < EBNN_BCONV_BLOCK ? p->out_c - o0 : EBNN_BCONV_BLOCK;
      int32_t counts[EBNN_BCONV_BLOCK];
      uint32_t word = 0u;
      if (use_patch) bconv_block_counts(p, patch, filt_words, o0, nb, counts);
      for (j = 0; j < nb; ++j) {
        const int32_t *filt = p->filter + (size_t)(o0 + j) * filt_words;
        int32_t count;
        if (use_patch) {
          count = counts[j];
        } else if (inside) {
          count = bconv_popcount_inside(p, g, input, y_origin, x_origin, filt);
        } else {
          count = ebnn__bconv_popcount(p, g, input, oy, ox, o0 + j);
        }
        if (count > p->thresholds[o0 + j]) word |= (uint32_t)1u << j;
      }
      px[o0 / EBNN_BCONV_BLOCK] = (int32_t)word;
    }
  }
}

ebnn_status_t ebnn_bconv2d_ref(const ebnn_bconv2d_params_t *params,
                               const int32_t *input, void *output) {
  ebnn__bgeom_t g;
  int32_t oy;
  ebnn_status_t st;
  if (params == NULL || input == NULL || output == NULL)
    return EBNN_ERROR_NULL_POINTER;
  st = ebnn__bconv2d_check(params, &g);
  if (st != EBNN_OK) return st;
  for (oy = 0; oy < g.g.out_h; ++oy) {
    if (params->thresholds == NULL) {
      ebnn__bconv2d_row_float(
          params, &g, input, oy,
          (float *)output + (size_t)oy * (size_t)g.g.out_w * (size_t)params->out_c);
    } else {
      bconv2d_row_packed(params, &g, input, oy,
                         (int32_t *)output + (size_t)oy * (size_t)g.g.out_w *
                                                 (size_t)EBNN_PACKED_WORDS(params->out_c));
    }
  }
  return EBNN_OK;
}

ebnn_status_t ebnn__bconv2d_add_check(const ebnn_bconv2d_add_params_t *p, const int32_t *input,
                                      const float *residual, const float *output, ebnn__bgeom_t *g) {
  ebnn_status_t st;
  if (p == NULL || input == NULL || residual == NULL || output == NULL) return EBNN_ERROR_NULL_POINTER;
  st = ebnn__bconv2d_check(&p->conv, g);
  if (st != EBNN_OK) return st;
  if (p->residual_first != 0 && p->residual_first != 1) return EBNN_ERROR_BAD_ENUM;
  if (!ebnn__act_valid(p->activation)) return EBNN_ERROR_BAD_ENUM;
  if (p->conv.thresholds != NULL) return EBNN_ERROR_UNSUPPORTED; /* float output only */
  return EBNN_OK;
}

void ebnn__residual_add(const ebnn_bconv2d_add_params_t *p, const float *residual, float *y, size_t n) {
  size_t i;
  if (p->residual_first) {
    for (i = 0; i < n; ++i) y[i] = ebnn__add1(residual[i], y[i], p->activation);
  } else {
    for (i = 0; i < n; ++i) y[i] = ebnn__add1(y[i], residual[i], p->activation);
  }
}

ebnn_status_t ebnn_bconv2d_add_ref(const ebnn_bconv2d_add_params_t *params,
                                   const int32_t *input, const float *residual,
                                   float *output) {
  ebnn__bgeom_t g;
  int32_t oy;
  const ebnn_status_t st = ebnn__bconv2d_add_check(params, input, residual, output, &g);
  if (st != EBNN_OK) return st;
  for (oy = 0; oy < g.g.out_h; ++oy) { /* a row of y, then its sums: y stays in cache */
    const size_t at = (size_t)oy * (size_t)g.g.out_w * (size_t)params->conv.out_c;
    ebnn__bconv2d_row_float(&params->conv, &g, input, oy, output + at);
    ebnn__residual_add(params, residual + at, output + at, (size_t)g.g.out_w * (size_t)params->conv.out_c);
  }
  return EBNN_OK;
}

/* ---------------------------------------------------------------------- */
/* LceBMaxPool2d                                                           */
/* ---------------------------------------------------------------------- */

ebnn_status_t ebnn_bmaxpool2d_ref(const ebnn_bmaxpool2d_params_t *params,
                                  const int32_t *input, int32_t *output) {
  int32_t out_h, out_w, pad_top, pad_left, oy, ox, y, x, w, words;
  const ebnn_bmaxpool2d_params_t *p = params;
  if (p == NULL || input == NULL || output == NULL)
    return EBNN_ERROR_NULL_POINTER;
  if (p->in_h <= 0 || p->in_w <= 0 || p->channels <= 0 || p->filter_h <= 0 ||
      p->filter_w <= 0 || p->stride_h <= 0 || p->stride_w <= 0)
    return EBNN_ERROR_BAD_SHAPE;
  if (p->padding != EBNN_PADDING_SAME && p->padding != EBNN_PADDING_VALID)
    return EBNN_ERROR_BAD_ENUM;
  out_h = ebnn_output_size(p->in_h, p->filter_h, p->stride_h, 1, p->padding);
  out_w = ebnn_output_size(p->in_w, p->filter_w, p->stride_w, 1, p->padding);
  if (out_h <= 0 || out_w <= 0) return EBNN_ERROR_BAD_SHAPE;
  pad_top = ebnn_padding_before(p->in_h, p->filter_h, p->stride_h, 1, p->padding);
  pad_left = ebnn_padding_before(p->in_w, p->filter_w, p->stride_w, 1, p->padding);
  words = EBNN_PACKED_WORDS(p->channels);
  for (oy = 0; oy < out_h; ++oy) {
    int32_t y0, y1;
    ebnn__window(oy, p->stride_h, pad_top, p->filter_h, p->in_h, &y0, &y1);
    for (ox = 0; ox < out_w; ++ox) {
      int32_t x0, x1;
      int32_t *o = output + ((size_t)oy * (size_t)out_w + (size_t)ox) * (size_t)words;
      ebnn__window(ox, p->stride_w, pad_left, p->filter_w, p->in_w, &x0, &x1);
      for (w = 0; w < words; ++w) {
        uint32_t acc = 0xFFFFFFFFu;
        for (y = y0; y < y1; ++y) {
          for (x = x0; x < x1; ++x) {
            acc &= (uint32_t)input[((size_t)y * (size_t)p->in_w + (size_t)x) *
                                       (size_t)words + (size_t)w];
          }
        }
        o[w] = (int32_t)acc;
      }
    }
  }
  return EBNN_OK;
}

/* ---------------------------------------------------------------------- */
/* Binary dense                                                            */
/* ---------------------------------------------------------------------- */

ebnn_status_t ebnn_bdense_ref(const ebnn_bdense_params_t *params,
                              const int32_t *input, float *output) {
  int32_t r, o, w, words;
  const ebnn_bdense_params_t *p = params;
  if (p == NULL || input == NULL || output == NULL || p->weights == NULL)
    return EBNN_ERROR_NULL_POINTER;
  if (p->rows <= 0 || p->in_features <= 0 || p->out_features <= 0)
    return EBNN_ERROR_BAD_SHAPE;
  if (!ebnn__act_valid(p->activation)) return EBNN_ERROR_BAD_ENUM;
  words = EBNN_PACKED_WORDS(p->in_features);
  for (r = 0; r < p->rows; ++r) {
    const int32_t *x = input + (size_t)r * (size_t)words;
    for (o = 0; o < p->out_features; ++o) {
      const int32_t *wt = p->weights + (size_t)o * (size_t)words;
      int32_t count = 0;
      float y;
      for (w = 0; w < words; ++w)
        count += EBNN_POPCOUNT32((uint32_t)x[w] ^ (uint32_t)wt[w]);
      y = (float)(p->in_features - 2 * count);
      if (p->multiplier != NULL) y = y * p->multiplier[o];
      if (p->bias != NULL) y = y + p->bias[o];
      output[(size_t)r * (size_t)p->out_features + (size_t)o] =
          ebnn__act(y, p->activation);
    }
  }
  return EBNN_OK;
}

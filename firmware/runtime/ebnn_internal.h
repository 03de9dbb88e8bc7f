/*
 * Per-pixel routines shared by the unfused kernels and the fused row-sliced
 * chain, so that both perform the same float operations in the same order
 * (bit-exact agreement). Not part of the public API.
 */
#ifndef EDGEBNN_FIRMWARE_RUNTIME_EBNN_INTERNAL_H_
#define EDGEBNN_FIRMWARE_RUNTIME_EBNN_INTERNAL_H_

#include <float.h>

#include "ebnn.h"

/* Float clamp of a fused activation (TFLite's ActivationFunctionWithMinMax
 * for RELU, RELU_N1_TO_1, RELU6: min(max(x, lo), hi)). NONE is the
 * identity. */
static inline float ebnn__act(float x, ebnn_activation_t act) {
  if (act == EBNN_ACT_NONE) return x;
  switch (act) {
    case EBNN_ACT_RELU:
      return x < 0.0f ? 0.0f : x;
    case EBNN_ACT_RELU_N1_TO_1:
      x = x < -1.0f ? -1.0f : x;
      return x > 1.0f ? 1.0f : x;
    case EBNN_ACT_RELU6:
      x = x < 0.0f ? 0.0f : x;
      return x > 6.0f ? 6.0f : x;
    default:
      return x;
  }
}

/* CONV_2D filter column of output channel o: element (o, k) is
 * base[k * *step], k < K = k_size (the tap order fy, fx, c), in any of the
 * layouts (ebnn.h). */
static inline const float *ebnn__conv_filter_col(const ebnn_conv2d_params_t *p, int32_t o, size_t k_size,
                                                 size_t *step) {
  const size_t oc = (size_t)p->out_c, uo = (size_t)o;
  if (p->filter_layout == EBNN_FILTER_HWIO) {
    *step = oc;
    return p->filter + uo;
  }
  if (p->filter_layout == EBNN_FILTER_HWIO16) {
    const size_t block = uo / 16u * 16u;
    *step = oc - block < 16u ? oc - block : 16u;
    return p->filter + block * k_size + uo % 16u;
  }
  *step = 1u;
  return p->filter + uo * k_size;
}

static inline int ebnn__act_valid(ebnn_activation_t act) {
  return act == EBNN_ACT_NONE || act == EBNN_ACT_RELU ||
         act == EBNN_ACT_RELU_N1_TO_1 || act == EBNN_ACT_RELU6;
}

/* Pack channels floats of one pixel: bit = (x < 0), LSB first. */
static inline void ebnn__pack_pixel(const float *x, int32_t channels,
                                    int32_t *out) {
  int32_t w;
  const int32_t words = EBNN_PACKED_WORDS(channels);
  for (w = 0; w < words; ++w) {
    uint32_t word = 0u;
    int32_t b;
    const int32_t base = w * 32;
    const int32_t n = (channels - base) < 32 ? (channels - base) : 32;
    for (b = 0; b < n; ++b) {
      if (x[base + b] < 0.0f) word |= (uint32_t)1u << b;
    }
    out[w] = (int32_t)word;
  }
}

/* Window [lo, hi) of a pool/conv along one axis, clamped to [0, in). */
static inline void ebnn__window(int32_t out_idx, int32_t stride, int32_t pad,
                                int32_t filter, int32_t in, int32_t *lo,
                                int32_t *hi) {
  int32_t a = out_idx * stride - pad;
  int32_t b = a + filter;
  *lo = a < 0 ? 0 : a;
  *hi = b > in ? in : b;
}

/* MAX_POOL_2D of one output pixel over rows [y0, y1) and columns [x0, x1)
 * of a [rows][width][channels] block (TFLite: start at the lowest float,
 * max(a, b) = a < b ? b : a, in window order), then the activation. */
static inline void ebnn__maxpool_pixel(const float *rows, int32_t width,
                                       int32_t channels, int32_t y0,
                                       int32_t y1, int32_t x0, int32_t x1,
                                       ebnn_activation_t act, float *out) {
  int32_t c, y, x;
  for (c = 0; c < channels; ++c) out[c] = -FLT_MAX;
  for (y = y0; y < y1; ++y) {
    for (x = x0; x < x1; ++x) {
      const float *px =
          rows + ((size_t)y * (size_t)width + (size_t)x) * (size_t)channels;
      for (c = 0; c < channels; ++c) {
        const float v = px[c];
        out[c] = out[c] < v ? v : out[c];
      }
    }
  }
  if (act != EBNN_ACT_NONE) {
    for (c = 0; c < channels; ++c) out[c] = ebnn__act(out[c], act);
  }
}

/* One element of ADD / MUL then the activation. */
static inline float ebnn__add1(float a, float b, ebnn_activation_t act) {
  return ebnn__act(a + b, act);
}
static inline float ebnn__mul1(float a, float b, ebnn_activation_t act) {
  return ebnn__act(a * b, act);
}

/* Conv geometry resolved once per call. */
typedef struct {
  int32_t out_h, out_w;
  int32_t pad_top, pad_left;
} ebnn__geom_t;

ebnn_status_t ebnn__conv2d_check(const ebnn_conv2d_params_t *p,
                                 ebnn__geom_t *g);
/* CONV_2D of output row oy (out_w * out_c floats). */
void ebnn__conv2d_row(const ebnn_conv2d_params_t *p, const ebnn__geom_t *g,
                      const float *input, int32_t oy, float *out_row);

/* CONV_2D (HWIO filter) as a cache-blocked GEMM (ebnn_conv_opt.c): 1 when
 * it computed the whole output, 0 when the shape is outside its fast path
 * (nothing written). Bit-identical to ebnn__conv2d_row. */
int ebnn__conv2d_blocked_opt(const ebnn_conv2d_params_t *p, const ebnn__geom_t *g,
                             const float *input, float *output);

/* LceBconv2d output transform, resolved once per call. */
typedef struct {
  ebnn__geom_t g;
  int32_t words_in;
  int32_t k;            /* backtransform_add = fh * fw * in_c */
  int32_t clamp_min;    /* bounds of 2 * popcount */
  int32_t clamp_max;
  int32_t same_zero;    /* SAME padding with pad_value 0 (float output) */
} ebnn__bgeom_t;

ebnn_status_t ebnn__bconv2d_check(const ebnn_bconv2d_params_t *p,
                                  ebnn__bgeom_t *g);
/* ebnn_bconv2d_add's checks (statuses as ebnn.h says), then g as
 * ebnn__bconv2d_check fills it. */
ebnn_status_t ebnn__bconv2d_add_check(const ebnn_bconv2d_add_params_t *p, const int32_t *input,
                                      const float *residual, const float *output, ebnn__bgeom_t *g);
/* y[i] = act(y[i] + residual[i]) (or residual first), i < n: the ADD of
 * ebnn_bconv2d_add on y as the bconv computed it. */
void ebnn__residual_add(const ebnn_bconv2d_add_params_t *p, const float *residual, float *y, size_t n);
/* LceBconv2d's int8 output of one transformed value: LCE's rounding (half
 * away from zero) and saturation to [-128, 127]; NaN gives 0. */
int8_t ebnn__bconv_saturate_round(float y);
/* LceBconv2d float output of row oy (out_w * out_c floats). Channel-outer
 * so the fused multiplier/bias (double arithmetic, soft-float on Cortex-M)
 * are computed once per row and channel, not per pixel. */
void ebnn__bconv2d_row_float(const ebnn_bconv2d_params_t *p,
                             const ebnn__bgeom_t *g, const int32_t *input,
                             int32_t oy, float *out_row);

/* Same-zero padding: 1 and *sum (the +-1 filter values LCE counts as
 * outside the input) when LCE corrects output (oy, ox) channel o, which is
 * then y + (-1.0f * multiplier[o]) * (float)*sum; 0 when it does not.
 * Built from three parts the opt kernel shares: the case of pixel (oy, ox)
 * (0: no correction), whether tap (fy, fx) counts in it, and a tap's sum
 * of +-1 filter values for channel o (in_c - 2 * popcount). */
typedef struct {
  int32_t kase, cx, cy, eff_w, eff_h;
} ebnn__zpad_case_t;
int ebnn__bconv_zero_pad_case(const ebnn_bconv2d_params_t *p, const ebnn__bgeom_t *g,
                              int32_t oy, int32_t ox, ebnn__zpad_case_t *zc);
int ebnn__bconv_zero_pad_counted(const ebnn_bconv2d_params_t *p, const ebnn__zpad_case_t *zc,
                                 int32_t fy, int32_t fx);
int32_t ebnn__bconv_tap_sum(const ebnn_bconv2d_params_t *p, const ebnn__bgeom_t *g,
                            int32_t o, int32_t tap);
int ebnn__bconv_zero_pad_correction(const ebnn_bconv2d_params_t *p,
                                    const ebnn__bgeom_t *g, int32_t oy,
                                    int32_t ox, int32_t o, int32_t *sum);

/* XOR-popcount of output channel o at (oy, ox), taps outside read bit 0
 * (ebnn_binary.c). */
int32_t ebnn__bconv_popcount(const ebnn_bconv2d_params_t *p, const ebnn__bgeom_t *g,
                             const int32_t *input, int32_t oy, int32_t ox, int32_t o);

/* The level-coded convolution's checks, then its input packed into the
 * scratch (ebnn_level.c): *planes bitplanes of plane_words words each. */
ebnn_status_t ebnn__lconv2d_prepare(const ebnn_lconv2d_params_t *p, const float *input,
                                    const float *output, void *scratch, size_t scratch_bytes,
                                    ebnn__bgeom_t *g, int32_t *planes, size_t *plane_words);

ebnn_status_t ebnn__pool_geom(const ebnn_pool2d_params_t *p, ebnn__geom_t *g);

/* The fused chain's geometry, resolved once per call (ebnn_fused.c); shared
 * by the reference and the optimized fused kernels. */
typedef struct {
  int32_t prod_h, prod_w, channels;
  ebnn__geom_t conv_g;
  ebnn__bgeom_t bconv_g;
  ebnn_pool2d_params_t pool;
  ebnn__geom_t pool_g;
  int32_t out_h, out_w;
  size_t scratch_floats;
} ebnn__fused_plan_t;

ebnn_status_t ebnn__fused_plan(const ebnn_fused_params_t *p,
                               ebnn__fused_plan_t *pl);

/* Worker threads (ebnn_threads.c): fn(ctx, begin, end) over disjoint
 * ranges covering [0, n_items), one per thread (ebnn_get_threads()), fewer
 * when `cost` (the call's work in simple operations) is too small to share. */
typedef void (*ebnn__range_fn_t)(const void *ctx, int32_t begin, int32_t end);
void ebnn__parallel_for(int32_t n_items, int64_t cost, ebnn__range_fn_t fn, const void *ctx);
int32_t ebnn_get_threads(void);

#endif /* EDGEBNN_FIRMWARE_RUNTIME_EBNN_INTERNAL_H_ */

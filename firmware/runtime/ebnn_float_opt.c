/*
 * Optimized float kernels (kernel set "opt"): ebnn_depthwise_conv2d_opt
 * (ADD and MUL are in ebnn_eltwise_opt.c). Same params, statuses and results bit for bit
 * as the _ref kernels (tests/test_runtime_opt.py): per output element
 * the same IEEE operations in the same order; only the loop order changes so
 * that the channel loop is innermost and free of branches (compilers
 * vectorize it; builds use -ffp-contract=off, so no FMA contraction).
 * Whatever the fast paths do not cover is delegated to the _ref kernel,
 * which also reports every bad-params status.
 */
#include "ebnn.h"
#include "ebnn_internal.h"
#include "ebnn_opt_internal.h"

/* DEPTHWISE_CONV_2D with depth_multiplier 1: each channel starts at +0.0f,
 * adds x * w over the in-bounds taps in (fy, fx) order (out-of-bounds taps
 * skipped, as the reference), then the bias, then the activation. Output
 * pixels are shared among threads. */
typedef struct {
  const ebnn_depthwise_conv2d_params_t *p;
  const float *input;
  float *output;
  int32_t out_w, pad_top, pad_left;
} fopt_dw_t;

#if EBNN_OPT_VEC
/* Channels [c, c + 8 * nv) of output pixel (oy, ox) in nv vector registers
 * (the same operations per channel as the loop below, but no store and
 * reload of the sums, and no alias checks, at every tap: QuickNet's
 * 112x112x16 / 2, 175 -> 105 us; 55x55x64 / 2, 137 -> 83 us, best of 5
 * alternating runs). */
EBNN_INLINE void fopt_dw_vec(const fopt_dw_t *d, int32_t oy, int32_t ox, int32_t c, int32_t nv, float *out) {
  const ebnn_depthwise_conv2d_params_t *p = d->p;
  const size_t ch = (size_t)p->in_c;
  ebnn_v8f a[4];
  int32_t fy, fx, v;
  for (v = 0; v < nv; ++v) a[v] = EBNN_V8F_SPLAT(0.0f);
  for (fy = 0; fy < p->filter_h; ++fy) {
    const int32_t iy = oy * p->stride_h - d->pad_top + fy * p->dilation_h;
    if (iy < 0 || iy >= p->in_h) continue;
    for (fx = 0; fx < p->filter_w; ++fx) {
      const int32_t ix = ox * p->stride_w - d->pad_left + fx * p->dilation_w;
      const float *x, *w;
      if (ix < 0 || ix >= p->in_w) continue;
      x = d->input + ((size_t)iy * (size_t)p->in_w + (size_t)ix) * ch + (size_t)c;
      w = p->filter + ((size_t)fy * (size_t)p->filter_w + (size_t)fx) * ch + (size_t)c;
      for (v = 0; v < nv; ++v) a[v] = a[v] + EBNN_V8F_LOAD(x + 8 * v) * EBNN_V8F_LOAD(w + 8 * v);
    }
  }
  if (p->bias != NULL) {
    for (v = 0; v < nv; ++v) a[v] = a[v] + EBNN_V8F_LOAD(p->bias + c + 8 * v);
  }
  for (v = 0; v < nv; ++v) EBNN_V8F_STORE(out + c + 8 * v, a[v]);
}
#endif

static void fopt_dw_pixels(const void *arg, int32_t q0, int32_t q1) {
  const fopt_dw_t *d = (const fopt_dw_t *)arg;
  const ebnn_depthwise_conv2d_params_t *p = d->p;
  const int32_t ch = p->in_c;
  int32_t q, fy, fx, c;
  for (q = q0; q < q1; ++q) {
    const int32_t oy = q / d->out_w, ox = q % d->out_w;
    float *out = d->output + (size_t)q * (size_t)ch;
#if EBNN_OPT_VEC
    /* whole vectors of channels in registers; with a tail of ch % 8 the
     * loop below (its one pass over the taps) stays faster (28x28x13) */
    if (ch % 8 == 0) {
      for (c = 0; c + 32 <= ch; c += 32) fopt_dw_vec(d, oy, ox, c, 4, out);
      switch ((ch - c) / 8) { /* the rest in one pass over the taps */
        case 3:
          fopt_dw_vec(d, oy, ox, c, 3, out);
          break;
        case 2:
          fopt_dw_vec(d, oy, ox, c, 2, out);
          break;
        case 1:
          fopt_dw_vec(d, oy, ox, c, 1, out);
          break;
        default:
          break;
      }
      if (p->activation != EBNN_ACT_NONE) ebnn__opt_act(out, ch, p->activation);
      continue;
    }
#endif
    for (c = 0; c < ch; ++c) out[c] = 0.0f;
    for (fy = 0; fy < p->filter_h; ++fy) {
      const int32_t iy = oy * p->stride_h - d->pad_top + fy * p->dilation_h;
      if (iy < 0 || iy >= p->in_h) continue;
      for (fx = 0; fx < p->filter_w; ++fx) {
        const int32_t ix = ox * p->stride_w - d->pad_left + fx * p->dilation_w;
        const float *x, *w;
        if (ix < 0 || ix >= p->in_w) continue;
        x = d->input + ((size_t)iy * (size_t)p->in_w + (size_t)ix) * (size_t)ch;
        w = p->filter + ((size_t)fy * (size_t)p->filter_w + (size_t)fx) * (size_t)ch;
        for (c = 0; c < ch; ++c) out[c] += x[c] * w[c];
      }
    }
    if (p->bias != NULL) {
      for (c = 0; c < ch; ++c) out[c] += p->bias[c];
    }
    if (p->activation != EBNN_ACT_NONE) ebnn__opt_act(out, ch, p->activation);
  }
}

ebnn_status_t ebnn_depthwise_conv2d_opt(const ebnn_depthwise_conv2d_params_t *params,
                                        const float *input, float *output) {
  const ebnn_depthwise_conv2d_params_t *p = params;
  fopt_dw_t d;
  int32_t out_h;
  if (p == NULL || input == NULL || output == NULL || p->filter == NULL ||
      p->depth_multiplier != 1 || p->in_h <= 0 || p->in_w <= 0 || p->in_c <= 0 ||
      p->filter_h <= 0 || p->filter_w <= 0 || p->stride_h <= 0 || p->stride_w <= 0 ||
      p->dilation_h <= 0 || p->dilation_w <= 0 ||
      (p->padding != EBNN_PADDING_SAME && p->padding != EBNN_PADDING_VALID) ||
      !ebnn__act_valid(p->activation))
    return ebnn_depthwise_conv2d_ref(p, input, output);
  out_h = ebnn_output_size(p->in_h, p->filter_h, p->stride_h, p->dilation_h, p->padding);
  d.out_w = ebnn_output_size(p->in_w, p->filter_w, p->stride_w, p->dilation_w, p->padding);
  if (out_h <= 0 || d.out_w <= 0) return ebnn_depthwise_conv2d_ref(p, input, output);
  d.pad_top = ebnn_padding_before(p->in_h, p->filter_h, p->stride_h, p->dilation_h, p->padding);
  d.pad_left = ebnn_padding_before(p->in_w, p->filter_w, p->stride_w, p->dilation_w, p->padding);
  d.p = p;
  d.input = input;
  d.output = output;
  ebnn__parallel_for(out_h * d.out_w,
                     (int64_t)out_h * d.out_w * p->in_c * p->filter_h * p->filter_w, fopt_dw_pixels, &d);
  return EBNN_OK;
}

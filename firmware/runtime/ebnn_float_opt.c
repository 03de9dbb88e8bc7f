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

static void fopt_dw_pixels(const void *arg, int32_t q0, int32_t q1) {
  const fopt_dw_t *d = (const fopt_dw_t *)arg;
  const ebnn_depthwise_conv2d_params_t *p = d->p;
  const int32_t ch = p->in_c;
  int32_t q, fy, fx, c;
  for (q = q0; q < q1; ++q) {
    const int32_t oy = q / d->out_w, ox = q % d->out_w;
    float *out = d->output + (size_t)q * (size_t)ch;
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

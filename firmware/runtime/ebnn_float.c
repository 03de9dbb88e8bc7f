/*
 * Float kernels with TFLite builtin semantics (reference loop order of
 * tensorflow/lite/kernels/internal/reference/): CONV_2D, DEPTHWISE_CONV_2D,
 * FULLY_CONNECTED, MAX_POOL_2D, AVERAGE_POOL_2D, MEAN, ADD, MUL, SOFTMAX,
 * CONCATENATION, PAD and the elementwise activations.
 *
 * TFLite's optimized kernels (im2col + GEMM, XNNPACK) sum in another order,
 * so float results agree with TFLite's interpreter to rounding, not bit for
 * bit; the fused chain (ebnn_fused.c) shares these routines and is bit-exact
 * against them.
 */
#include <math.h>
#include <string.h>

#include "ebnn.h"
#include "ebnn_internal.h"

/* ---------------------------------------------------------------------- */
/* CONV_2D                                                                 */
/* ---------------------------------------------------------------------- */

ebnn_status_t ebnn__conv2d_check(const ebnn_conv2d_params_t *p,
                                 ebnn__geom_t *g) {
  if (p == NULL || p->filter == NULL) return EBNN_ERROR_NULL_POINTER;
  if (p->in_h <= 0 || p->in_w <= 0 || p->in_c <= 0 || p->out_c <= 0 ||
      p->filter_h <= 0 || p->filter_w <= 0 || p->stride_h <= 0 ||
      p->stride_w <= 0 || p->dilation_h <= 0 || p->dilation_w <= 0)
    return EBNN_ERROR_BAD_SHAPE;
  if (p->padding != EBNN_PADDING_SAME && p->padding != EBNN_PADDING_VALID)
    return EBNN_ERROR_BAD_ENUM;
  if (!ebnn__act_valid(p->activation)) return EBNN_ERROR_BAD_ENUM;
  if (p->filter_layout != EBNN_FILTER_OHWI && p->filter_layout != EBNN_FILTER_HWIO &&
      p->filter_layout != EBNN_FILTER_HWIO16)
    return EBNN_ERROR_BAD_ENUM;
  g->out_h = ebnn_output_size(p->in_h, p->filter_h, p->stride_h, p->dilation_h,
                              p->padding);
  g->out_w = ebnn_output_size(p->in_w, p->filter_w, p->stride_w, p->dilation_w,
                              p->padding);
  if (g->out_h <= 0 || g->out_w <= 0) return EBNN_ERROR_BAD_SHAPE;
  g->pad_top = ebnn_padding_before(p->in_h, p->filter_h, p->stride_h,
                                   p->dilation_h, p->padding);
  g->pad_left = ebnn_padding_before(p->in_w, p->filter_w, p->stride_w,
                                    p->dilation_w, p->padding);
  return EBNN_OK;
}

/* CONV_2D row. Each output channel sums its taps in TFLite's reference order
 * (fy, fx, c), then adds the bias, then the activation. Fast path: the input
 * window of a pixel is gathered into a patch laid out like one filter
 * ([fh][fw][in_c], 0.0f for taps outside the input, which leaves a sum of
 * finite products unchanged: acc + (+-0) == acc for acc != -0, and acc starts
 * at +0), then 8 output channels run as 8 independent dot products over the
 * contiguous patch and filter rows. Windows over EBNN_CONV_PATCH_FLOATS use
 * the plain loop (same order, same bits). */
#define EBNN_CONV_PATCH_FLOATS 512

static void conv2d_pixel_plain(const ebnn_conv2d_params_t *p, const float *input,
                               int32_t y_origin, int32_t x_origin, float *out) {
  int32_t o, fy, fx, c;
  /* element (o, k = tap t * in_c + c) at filt[k * c_step] (any layout) */
  const size_t k_size = (size_t)p->filter_h * (size_t)p->filter_w * (size_t)p->in_c;
  for (o = 0; o < p->out_c; ++o) {
    float total = 0.0f;
    size_t c_step;
    const float *filt = ebnn__conv_filter_col(p, o, k_size, &c_step);
    for (fy = 0; fy < p->filter_h; ++fy) {
      const int32_t iy = y_origin + fy * p->dilation_h;
      if (iy < 0 || iy >= p->in_h) continue;
      for (fx = 0; fx < p->filter_w; ++fx) {
        const int32_t ix = x_origin + fx * p->dilation_w;
        const float *px, *wt;
        if (ix < 0 || ix >= p->in_w) continue;
        px = input + ((size_t)iy * (size_t)p->in_w + (size_t)ix) * (size_t)p->in_c;
        wt = filt + ((size_t)fy * (size_t)p->filter_w + (size_t)fx) * (size_t)p->in_c * c_step;
        for (c = 0; c < p->in_c; ++c) total += px[c] * wt[(size_t)c * c_step];
      }
    }
    if (p->bias != NULL) total += p->bias[o];
    out[o] = ebnn__act(total, p->activation);
  }
}

/* HWIO and HWIO16: 8 output channels per step over the gathered patch (8
 * adjacent channels of one row of the filter: o is a multiple of 8, so in
 * HWIO16 they lie in one block); the 8 lanes are independent, each summing
 * in tap order. */
static void conv2d_pixel_hwio(const ebnn_conv2d_params_t *p, const float *patch,
                              size_t k_size, float *out) {
  int32_t o;
  size_t k, step;
  for (o = 0; o + 8 <= p->out_c; o += 8) {
    float acc[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    const float *w = ebnn__conv_filter_col(p, o, k_size, &step);
    int32_t j;
    for (k = 0; k < k_size; ++k) {
      const float xv = patch[k];
      const float *wk = w + k * step;
      /* constant trip count: GCC vectorizes this at -O2 (SSE/AVX/NEON) */
      for (j = 0; j < 8; ++j) acc[j] += xv * wk[j];
    }
    for (j = 0; j < 8; ++j) {
      float total = acc[j];
      if (p->bias != NULL) total += p->bias[o + j];
      out[o + j] = ebnn__act(total, p->activation);
    }
  }
  for (; o < p->out_c; ++o) {
    float total = 0.0f;
    const float *w = ebnn__conv_filter_col(p, o, k_size, &step);
    for (k = 0; k < k_size; ++k) total += patch[k] * w[k * step];
    if (p->bias != NULL) total += p->bias[o];
    out[o] = ebnn__act(total, p->activation);
  }
}

void ebnn__conv2d_row(const ebnn_conv2d_params_t *p, const ebnn__geom_t *g,
                      const float *input, int32_t oy, float *out_row) {
  float patch[EBNN_CONV_PATCH_FLOATS];
  int32_t ox, o, fy, fx, c;
  const int32_t y_origin = oy * p->stride_h - g->pad_top;
  const size_t k_size = (size_t)p->filter_h * (size_t)p->filter_w * (size_t)p->in_c;
  for (ox = 0; ox < g->out_w; ++ox) {
    const int32_t x_origin = ox * p->stride_w - g->pad_left;
    float *out = out_row + (size_t)ox * (size_t)p->out_c;
    float *dst = patch;
    size_t k;
    if (k_size > EBNN_CONV_PATCH_FLOATS) {
      conv2d_pixel_plain(p, input, y_origin, x_origin, out);
      continue;
    }
    for (fy = 0; fy < p->filter_h; ++fy) {
      const int32_t iy = y_origin + fy * p->dilation_h;
      for (fx = 0; fx < p->filter_w; ++fx) {
        const int32_t ix = x_origin + fx * p->dilation_w;
        if (iy >= 0 && iy < p->in_h && ix >= 0 && ix < p->in_w) {
          const float *px =
              input + ((size_t)iy * (size_t)p->in_w + (size_t)ix) * (size_t)p->in_c;
          if (p->in_c == 1) {
            dst[0] = px[0]; /* (a copy loop here becomes a memcpy call) */
          } else {
            for (c = 0; c < p->in_c; ++c) dst[c] = px[c];
          }
        } else {
          for (c = 0; c < p->in_c; ++c) dst[c] = 0.0f;
        }
        dst += p->in_c;
      }
    }
    if (p->filter_layout != EBNN_FILTER_OHWI) {
      conv2d_pixel_hwio(p, patch, k_size, out);
      continue;
    }
    for (o = 0; o + 8 <= p->out_c; o += 8) {
      const float *w0 = p->filter + (size_t)o * k_size;
      const float *w1 = w0 + k_size, *w2 = w1 + k_size, *w3 = w2 + k_size;
      const float *w4 = w3 + k_size, *w5 = w4 + k_size, *w6 = w5 + k_size;
      const float *w7 = w6 + k_size;
      float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
      float a4 = 0.0f, a5 = 0.0f, a6 = 0.0f, a7 = 0.0f;
      for (k = 0; k < k_size; ++k) {
        const float xv = patch[k];
        a0 += xv * w0[k];
        a1 += xv * w1[k];
        a2 += xv * w2[k];
        a3 += xv * w3[k];
        a4 += xv * w4[k];
        a5 += xv * w5[k];
        a6 += xv * w6[k];
        a7 += xv * w7[k];
      }
      if (p->bias != NULL) {
        a0 += p->bias[o];
        a1 += p->bias[o + 1];
        a2 += p->bias[o + 2];
        a3 += p->bias[o + 3];
        a4 += p->bias[o + 4];
        a5 += p->bias[o + 5];
        a6 += p->bias[o + 6];
        a7 += p->bias[o + 7];
      }
      out[o] = ebnn__act(a0, p->activation);
      out[o + 1] = ebnn__act(a1, p->activation);
      out[o + 2] = ebnn__act(a2, p->activation);
      out[o + 3] = ebnn__act(a3, p->activation);
      out[o + 4] = ebnn__act(a4, p->activation);
      out[o + 5] = ebnn__act(a5, p->activation);
      out[o + 6] = ebnn__act(a6, p->activation);
      out[o + 7] = ebnn__act(a7, p->activation);
    }
    for (; o < p->out_c; ++o) {
      const float *w0 = p->filter + (size_t)o * k_size;
      float a0 = 0.0f;
      for (k = 0; k < k_size; ++k) a0 += patch[k] * w0[k];
      if (p->bias != NULL) a0 += p->bias[o];
      out[o] = ebnn__act(a0, p->activation);
    }
  }
}

ebnn_status_t ebnn_conv2d_ref(const ebnn_conv2d_params_t *params,
                              const float *input, float *output) {
  ebnn__geom_t g;
  int32_t oy;
  ebnn_status_t st;
  if (params == NULL || input == NULL || output == NULL)
    return EBNN_ERROR_NULL_POINTER;
  st = ebnn__conv2d_check(params, &g);
  if (st != EBNN_OK) return st;
  for (oy = 0; oy < g.out_h; ++oy) {
    ebnn__conv2d_row(params, &g, input, oy,
                     output + (size_t)oy * (size_t)g.out_w * (size_t)params->out_c);
  }
  return EBNN_OK;
}

/* ---------------------------------------------------------------------- */
/* DEPTHWISE_CONV_2D                                                       */
/* ---------------------------------------------------------------------- */

ebnn_status_t ebnn_depthwise_conv2d_ref(
    const ebnn_depthwise_conv2d_params_t *params, const float *input,
    float *output) {
  const ebnn_depthwise_conv2d_params_t *p = params;
  int32_t out_h, out_w, pad_top, pad_left, oy, ox, ic, m, fy, fx, out_c;
  if (p == NULL || input == NULL || output == NULL || p->filter == NULL)
    return EBNN_ERROR_NULL_POINTER;
  if (p->in_h <= 0 || p->in_w <= 0 || p->in_c <= 0 ||
      p->depth_multiplier <= 0 || p->filter_h <= 0 || p->filter_w <= 0 ||
      p->stride_h <= 0 || p->stride_w <= 0 || p->dilation_h <= 0 ||
      p->dilation_w <= 0)
    return EBNN_ERROR_BAD_SHAPE;
  if (p->padding != EBNN_PADDING_SAME && p->padding != EBNN_PADDING_VALID)
    return EBNN_ERROR_BAD_ENUM;
  if (!ebnn__act_valid(p->activation)) return EBNN_ERROR_BAD_ENUM;
  out_h = ebnn_output_size(p->in_h, p->filter_h, p->stride_h, p->dilation_h, p->padding);
  out_w = ebnn_output_size(p->in_w, p->filter_w, p->stride_w, p->dilation_w, p->padding);
  if (out_h <= 0 || out_w <= 0) return EBNN_ERROR_BAD_SHAPE;
  pad_top = ebnn_padding_before(p->in_h, p->filter_h, p->stride_h, p->dilation_h, p->padding);
  pad_left = ebnn_padding_before(p->in_w, p->filter_w, p->stride_w, p->dilation_w, p->padding);
  out_c = p->in_c * p->depth_multiplier;
  for (oy = 0; oy < out_h; ++oy) {
    for (ox = 0; ox < out_w; ++ox) {
      float *out = output + ((size_t)oy * (size_t)out_w + (size_t)ox) * (size_t)out_c;
      for (ic = 0; ic < p->in_c; ++ic) {
        for (m = 0; m < p->depth_multiplier; ++m) {
          const int32_t oc = ic * p->depth_multiplier + m;
          float total = 0.0f;
          for (fy = 0; fy < p->filter_h; ++fy) {
            const int32_t iy = oy * p->stride_h - pad_top + fy * p->dilation_h;
            if (iy < 0 || iy >= p->in_h) continue;
            for (fx = 0; fx < p->filter_w; ++fx) {
              const int32_t ix = ox * p->stride_w - pad_left + fx * p->dilation_w;
              if (ix < 0 || ix >= p->in_w) continue;
              total += input[((size_t)iy * (size_t)p->in_w + (size_t)ix) *
                                 (size_t)p->in_c + (size_t)ic] *
                       p->filter[((size_t)fy * (size_t)p->filter_w + (size_t)fx) *
                                     (size_t)out_c + (size_t)oc];
            }
          }
          if (p->bias != NULL) total += p->bias[oc];
          out[oc] = ebnn__act(total, p->activation);
        }
      }
    }
  }
  return EBNN_OK;
}

/* ---------------------------------------------------------------------- */
/* FULLY_CONNECTED                                                         */
/* ---------------------------------------------------------------------- */

ebnn_status_t ebnn_fully_connected_ref(
    const ebnn_fully_connected_params_t *params, const float *input,
    float *output) {
  const ebnn_fully_connected_params_t *p = params;
  int32_t r, o, i;
  if (p == NULL || input == NULL || output == NULL || p->weights == NULL)
    return EBNN_ERROR_NULL_POINTER;
  if (p->rows <= 0 || p->in_features <= 0 || p->out_features <= 0)
    return EBNN_ERROR_BAD_SHAPE;
  if (!ebnn__act_valid(p->activation) ||
      (p->weights_layout != EBNN_WEIGHTS_OI && p->weights_layout != EBNN_WEIGHTS_IO))
    return EBNN_ERROR_BAD_ENUM;
  for (r = 0; r < p->rows; ++r) {
    const float *x = input + (size_t)r * (size_t)p->in_features;
    for (o = 0; o < p->out_features; ++o) {
      float total = 0.0f;
      if (p->weights_layout == EBNN_WEIGHTS_IO) {
        for (i = 0; i < p->in_features; ++i)
          total += x[i] * p->weights[(size_t)i * (size_t)p->out_features + (size_t)o];
      } else {
        const float *w = p->weights + (size_t)o * (size_t)p->in_features;
        for (i = 0; i < p->in_features; ++i) total += x[i] * w[i];
      }
      if (p->bias != NULL) total += p->bias[o];
      output[(size_t)r * (size_t)p->out_features + (size_t)o] =
          ebnn__act(total, p->activation);
    }
  }
  return EBNN_OK;
}

/* ---------------------------------------------------------------------- */
/* Pooling                                                                 */
/* ---------------------------------------------------------------------- */

ebnn_status_t ebnn__pool_geom(const ebnn_pool2d_params_t *p, ebnn__geom_t *g) {
  if (p == NULL) return EBNN_ERROR_NULL_POINTER;
  if (p->in_h <= 0 || p->in_w <= 0 || p->channels <= 0 || p->filter_h <= 0 ||
      p->filter_w <= 0 || p->stride_h <= 0 || p->stride_w <= 0)
    return EBNN_ERROR_BAD_SHAPE;
  if (p->padding != EBNN_PADDING_SAME && p->padding != EBNN_PADDING_VALID)
    return EBNN_ERROR_BAD_ENUM;
  if (!ebnn__act_valid(p->activation)) return EBNN_ERROR_BAD_ENUM;
  g->out_h = ebnn_output_size(p->in_h, p->filter_h, p->stride_h, 1, p->padding);
  g->out_w = ebnn_output_size(p->in_w, p->filter_w, p->stride_w, 1, p->padding);
  if (g->out_h <= 0 || g->out_w <= 0) return EBNN_ERROR_BAD_SHAPE;
  g->pad_top = ebnn_padding_before(p->in_h, p->filter_h, p->stride_h, 1, p->padding);
  g->pad_left = ebnn_padding_before(p->in_w, p->filter_w, p->stride_w, 1, p->padding);
  return EBNN_OK;
}

ebnn_status_t ebnn_max_pool2d_ref(const ebnn_pool2d_params_t *params,
                                  const float *input, float *output) {
  ebnn__geom_t g;
  int32_t oy, ox;
  ebnn_status_t st;
  if (params == NULL || input == NULL || output == NULL)
    return EBNN_ERROR_NULL_POINTER;
  st = ebnn__pool_geom(params, &g);
  if (st != EBNN_OK) return st;
  for (oy = 0; oy < g.out_h; ++oy) {
    int32_t y0, y1;
    ebnn__window(oy, params->stride_h, g.pad_top, params->filter_h,
                 params->in_h, &y0, &y1);
    for (ox = 0; ox < g.out_w; ++ox) {
      int32_t x0, x1;
      ebnn__window(ox, params->stride_w, g.pad_left, params->filter_w,
                   params->in_w, &x0, &x1);
      ebnn__maxpool_pixel(input, params->in_w, params->channels, y0, y1, x0, x1,
                          params->activation,
                          output + ((size_t)oy * (size_t)g.out_w + (size_t)ox) *
                                       (size_t)params->channels);
    }
  }
  return EBNN_OK;
}

ebnn_status_t ebnn_average_pool2d_ref(const ebnn_pool2d_params_t *params,
                                      const float *input, float *output) {
  ebnn__geom_t g;
  int32_t oy, ox, c, y, x;
  ebnn_status_t st;
  const ebnn_pool2d_params_t *p = params;
  if (p == NULL || input == NULL || output == NULL)
    return EBNN_ERROR_NULL_POINTER;
  st = ebnn__pool_geom(p, &g);
  if (st != EBNN_OK) return st;
  for (oy = 0; oy < g.out_h; ++oy) {
    int32_t y0, y1;
    ebnn__window(oy, p->stride_h, g.pad_top, p->filter_h, p->in_h, &y0, &y1);
    for (ox = 0; ox < g.out_w; ++ox) {
      int32_t x0, x1;
      float *out = output + ((size_t)oy * (size_t)g.out_w + (size_t)ox) *
                                (size_t)p->channels;
      ebnn__window(ox, p->stride_w, g.pad_left, p->filter_w, p->in_w, &x0, &x1);
      for (c = 0; c < p->channels; ++c) {
        float total = 0.0f;
        int32_t count = 0;
        for (y = y0; y < y1; ++y) {
          for (x = x0; x < x1; ++x) {
            total += input[((size_t)y * (size_t)p->in_w + (size_t)x) *
                               (size_t)p->channels + (size_t)c];
            ++count;
          }
        }
        out[c] = ebnn__act(count > 0 ? total / (float)count : 0.0f, p->activation);
      }
    }
  }
  return EBNN_OK;
}

ebnn_status_t ebnn_mean_hw_ref(const ebnn_mean_params_t *params,
                               const float *input, float *output) {
  int32_t c;
  size_t i, n;
  if (params == NULL || input == NULL || output == NULL)
    return EBNN_ERROR_NULL_POINTER;
  if (params->in_h <= 0 || params->in_w <= 0 || params->channels <= 0)
    return EBNN_ERROR_BAD_SHAPE;
  n = (size_t)params->in_h * (size_t)params->in_w;
  for (c = 0; c < params->channels; ++c) {
    float total = 0.0f;
    for (i = 0; i < n; ++i) total += input[i * (size_t)params->channels + (size_t)c];
    output[c] = total / (float)n;
  }
  return EBNN_OK;
}

/* ---------------------------------------------------------------------- */
/* ADD, MUL                                                                */
/* ---------------------------------------------------------------------- */

static ebnn_status_t binary_check(const ebnn_binary_params_t *p, const float *a,
                                  const float *b, const float *out) {
  if (p == NULL || a == NULL || b == NULL || out == NULL)
    return EBNN_ERROR_NULL_POINTER;
  if (p->size < 0 || p->b_size <= 0 || (p->size % p->b_size) != 0)
    return EBNN_ERROR_BAD_SHAPE;
  if (!ebnn__act_valid(p->activation)) return EBNN_ERROR_BAD_ENUM;
  return EBNN_OK;
}

ebnn_status_t ebnn_add_ref(const ebnn_binary_params_t *params, const float *a,
                           const float *b, float *output) {
  int32_t i;
  const ebnn_status_t st = binary_check(params, a, b, output);
  if (st != EBNN_OK) return st;
  for (i = 0; i < params->size; ++i)
    output[i] = ebnn__add1(a[i], b[i % params->b_size], params->activation);
  return EBNN_OK;
}

ebnn_status_t ebnn_mul_ref(const ebnn_binary_params_t *params, const float *a,
                           const float *b, float *output) {
  int32_t i;
  const ebnn_status_t st = binary_check(params, a, b, output);
  if (st != EBNN_OK) return st;
  for (i = 0; i < params->size; ++i)
    output[i] = ebnn__mul1(a[i], b[i % params->b_size], params->activation);
  return EBNN_OK;
}

/* ---------------------------------------------------------------------- */
/* SOFTMAX, CONCATENATION, PAD                                             */
/* ---------------------------------------------------------------------- */

ebnn_status_t ebnn_softmax_ref(const ebnn_softmax_params_t *params,
                               const float *input, float *output) {
  int32_t r, c;
  if (params == NULL || input == NULL || output == NULL)
    return EBNN_ERROR_NULL_POINTER;
  if (params->rows <= 0 || params->cols <= 0) return EBNN_ERROR_BAD_SHAPE;
  for (r = 0; r < params->rows; ++r) {
    const float *x = input + (size_t)r * (size_t)params->cols;
    float *y = output + (size_t)r * (size_t)params->cols;
    float max = x[0], sum = 0.0f;
    for (c = 1; c < params->cols; ++c) max = max < x[c] ? x[c] : max;
    for (c = 0; c < params->cols; ++c) {
      y[c] = expf((x[c] - max) * params->beta);
      sum += y[c];
    }
    for (c = 0; c < params->cols; ++c) y[c] = y[c] / sum;
  }
  return EBNN_OK;
}

ebnn_status_t ebnn_concatenation_ref(const ebnn_concat_params_t *params,
                                     const float *const *inputs,
                                     float *output) {
  int32_t o, i, k;
  float *dst = output;
  if (params == NULL || inputs == NULL || output == NULL)
    return EBNN_ERROR_NULL_POINTER;
  if (params->outer < 0 || params->n_inputs <= 0 ||
      params->n_inputs > EBNN_CONCAT_MAX_INPUTS)
    return EBNN_ERROR_BAD_SHAPE;
  if (!ebnn__act_valid(params->activation)) return EBNN_ERROR_BAD_ENUM;
  for (i = 0; i < params->n_inputs; ++i) {
    if (inputs[i] == NULL) return EBNN_ERROR_NULL_POINTER;
    if (params->inner[i] < 0) return EBNN_ERROR_BAD_SHAPE;
  }
  for (o = 0; o < params->outer; ++o) {
    for (i = 0; i < params->n_inputs; ++i) {
      const float *src = inputs[i] + (size_t)o * (size_t)params->inner[i];
      if (params->activation == EBNN_ACT_NONE) {
        if (params->inner[i] > 0 && dst != src) /* the planner may place a part in place */
          memmove(dst, src, (size_t)params->inner[i] * sizeof(float));
      } else {
        for (k = 0; k < params->inner[i]; ++k)
          dst[k] = ebnn__act(src[k], params->activation);
      }
      dst += params->inner[i];
    }
  }
  return EBNN_OK;
}

ebnn_status_t ebnn_pad_ref(const ebnn_pad_params_t *params, const float *input,
                           float *output) {
  int32_t od[4], d, i0, i1, i2, i3;
  const ebnn_pad_params_t *p = params;
  size_t idx = 0;
  if (p == NULL || input == NULL || output == NULL)
    return EBNN_ERROR_NULL_POINTER;
  for (d = 0; d < 4; ++d) {
    if (p->dims[d] <= 0 || p->before[d] < 0 || p->after[d] < 0)
      return EBNN_ERROR_BAD_SHAPE;
    od[d] = p->dims[d] + p->before[d] + p->after[d];
  }
  /* one innermost row at a time: the fill value, the copied run, the fill */
  for (i0 = 0; i0 < od[0]; ++i0) {
    const int32_t s0 = i0 - p->before[0];
    for (i1 = 0; i1 < od[1]; ++i1) {
      const int32_t s1 = i1 - p->before[1];
      for (i2 = 0; i2 < od[2]; ++i2) {
        const int32_t s2 = i2 - p->before[2];
        float *row = output + idx;
        if (s0 >= 0 && s0 < p->dims[0] && s1 >= 0 && s1 < p->dims[1] &&
            s2 >= 0 && s2 < p->dims[2]) {
          const float *src = input + (((size_t)s0 * (size_t)p->dims[1] + (size_t)s1) *
                                          (size_t)p->dims[2] + (size_t)s2) *
                                         (size_t)p->dims[3];
          for (i3 = 0; i3 < p->before[3]; ++i3) row[i3] = p->value;
          memcpy(row + p->before[3], src, (size_t)p->dims[3] * sizeof(float));
          for (i3 = p->before[3] + p->dims[3]; i3 < od[3]; ++i3) row[i3] = p->value;
        } else {
          for (i3 = 0; i3 < od[3]; ++i3) row[i3] = p->value;
        }
        idx += (size_t)od[3];
      }
    }
  }
  return EBNN_OK;
}

/* ---------------------------------------------------------------------- */
/* Elementwise activations                                                 */
/* ---------------------------------------------------------------------- */

#define EBNN_UNARY_CHECK(p, in, out)                                   \
  do {                                                                 \
    if ((p) == NULL || (in) == NULL || (out) == NULL)                  \
      return EBNN_ERROR_NULL_POINTER;                                  \
    if ((p)->size < 0) return EBNN_ERROR_BAD_SHAPE;                    \
  } while (0)

ebnn_status_t ebnn_relu_ref(const ebnn_unary_params_t *params,
                            const float *input, float *output) {
  int32_t i;
  EBNN_UNARY_CHECK(params, input, output);
  for (i = 0; i < params->size; ++i) output[i] = ebnn__act(input[i], EBNN_ACT_RELU);
  return EBNN_OK;
}

ebnn_status_t ebnn_relu6_ref(const ebnn_unary_params_t *params,
                             const float *input, float *output) {
  int32_t i;
  EBNN_UNARY_CHECK(params, input, output);
  for (i = 0; i < params->size; ++i) output[i] = ebnn__act(input[i], EBNN_ACT_RELU6);
  return EBNN_OK;
}

ebnn_status_t ebnn_relu_n1_to_1_ref(const ebnn_unary_params_t *params,
                                    const float *input, float *output) {
  int32_t i;
  EBNN_UNARY_CHECK(params, input, output);
  for (i = 0; i < params->size; ++i)
    output[i] = ebnn__act(input[i], EBNN_ACT_RELU_N1_TO_1);
  return EBNN_OK;
}

ebnn_status_t ebnn_tanh_ref(const ebnn_unary_params_t *params,
                            const float *input, float *output) {
  int32_t i;
  EBNN_UNARY_CHECK(params, input, output);
  for (i = 0; i < params->size; ++i) output[i] = tanhf(input[i]);
  return EBNN_OK;
}

ebnn_status_t ebnn_logistic_ref(const ebnn_unary_params_t *params,
                                const float *input, float *output) {
  int32_t i;
  EBNN_UNARY_CHECK(params, input, output);
  for (i = 0; i < params->size; ++i) output[i] = 1.0f / (1.0f + expf(-input[i]));
  return EBNN_OK;
}

ebnn_status_t ebnn_leaky_relu_ref(const ebnn_unary_params_t *params,
                                  const float *input, float *output) {
  int32_t i;
  EBNN_UNARY_CHECK(params, input, output);
  for (i = 0; i < params->size; ++i) {
    const float x = input[i];
    output[i] = x > 0.0f ? x : x * params->alpha;
  }
  return EBNN_OK;
}

ebnn_status_t ebnn_hard_swish_ref(const ebnn_unary_params_t *params,
                                  const float *input, float *output) {
  int32_t i;
  EBNN_UNARY_CHECK(params, input, output);
  for (i = 0; i < params->size; ++i) {
    const float x = input[i];
    output[i] = x * ebnn__act(x + 3.0f, EBNN_ACT_RELU6) / 6.0f;
  }
  return EBNN_OK;
}

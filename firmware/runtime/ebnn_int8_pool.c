/*
 * MAX_POOL_2D, AVERAGE_POOL_2D (TFLite's reference_integer_ops pooling.h)
 * and MEAN over H, W (reference_ops::QuantizedMeanOrSum) for int8.
 */
#include "ebnn.h"
#include "ebnn_int8_internal.h"

typedef struct {
  int32_t out_h, out_w, pad_top, pad_left;
} pool_geom_t;

static ebnn_status_t pool_check(const ebnn_int8_pool2d_params_t *p,
                                const int8_t *in, const int8_t *out,
                                pool_geom_t *g) {
  if (p == NULL || in == NULL || out == NULL) return EBNN_ERROR_NULL_POINTER;
  if (p->in_h <= 0 || p->in_w <= 0 || p->channels <= 0 || p->filter_h <= 0 ||
      p->filter_w <= 0 || p->stride_h <= 0 || p->stride_w <= 0)
    return EBNN_ERROR_BAD_SHAPE;
  if (p->padding != EBNN_PADDING_SAME && p->padding != EBNN_PADDING_VALID)
    return EBNN_ERROR_BAD_ENUM;
  if (!ebnn__int8_range_valid(p->act_min, p->act_max))
    return EBNN_ERROR_BAD_SHAPE;
  g->out_h = ebnn_output_size(p->in_h, p->filter_h, p->stride_h, 1, p->padding);
  g->out_w = ebnn_output_size(p->in_w, p->filter_w, p->stride_w, 1, p->padding);
  if (g->out_h <= 0 || g->out_w <= 0) return EBNN_ERROR_BAD_SHAPE;
  g->pad_top = ebnn_padding_before(p->in_h, p->filter_h, p->stride_h, 1, p->padding);
  g->pad_left = ebnn_padding_before(p->in_w, p->filter_w, p->stride_w, 1, p->padding);
  return EBNN_OK;
}

/* [lo, hi) of the window along one axis, clamped to [0, in). */
static void clamp_window(int32_t idx, int32_t stride, int32_t pad,
                         int32_t filter, int32_t in, int32_t *lo,
                         int32_t *hi) {
  const int32_t a = idx * stride - pad;
  const int32_t b = a + filter;
  *lo = a < 0 ? 0 : a;
  *hi = b > in ? in : b;
}

static ebnn_status_t pool(const ebnn_int8_pool2d_params_t *p,
                          const int8_t *input, int8_t *output, int average) {
  pool_geom_t g;
  int32_t oy, ox, c, y, x;
  const ebnn_status_t st = pool_check(p, input, output, &g);
  if (st != EBNN_OK) return st;
  for (oy = 0; oy < g.out_h; ++oy) {
    int32_t y0, y1;
    clamp_window(oy, p->stride_h, g.pad_top, p->filter_h, p->in_h, &y0, &y1);
    for (ox = 0; ox < g.out_w; ++ox) {
      int32_t x0, x1;
      int8_t *out = output + ((size_t)oy * (size_t)g.out_w + (size_t)ox) *
                                 (size_t)p->channels;
      clamp_window(ox, p->stride_w, g.pad_left, p->filter_w, p->in_w, &x0, &x1);
      for (c = 0; c < p->channels; ++c) {
        int32_t acc = average ? 0 : EBNN_INT8_MIN;
        int32_t count = 0;
        for (y = y0; y < y1; ++y) {
          for (x = x0; x < x1; ++x) {
            const int32_t v = input[((size_t)y * (size_t)p->in_w + (size_t)x) *
                                        (size_t)p->channels + (size_t)c];
            if (average) {
              acc += v;
            } else if (v > acc) {
              acc = v;
            }
            ++count;
          }
        }
        if (count == 0) return EBNN_ERROR_BAD_SHAPE; /* TFLite fails too */
        if (average) acc = ebnn__int8_div_round(acc, count);
        out[c] = ebnn__int8_clamp(acc, p->act_min, p->act_max);
      }
    }
  }
  return EBNN_OK;
}

ebnn_status_t ebnn_int8_max_pool2d_ref(const ebnn_int8_pool2d_params_t *params,
                                       const int8_t *input, int8_t *output) {
  return pool(params, input, output, 0);
}

ebnn_status_t ebnn_int8_average_pool2d_ref(
    const ebnn_int8_pool2d_params_t *params, const int8_t *input,
    int8_t *output) {
  return pool(params, input, output, 1);
}

/* floor(log2(n)) for n > 0 */
static int32_t floor_log2(uint32_t n) {
  int32_t k = -1;
  while (n != 0u) {
    n >>= 1;
    ++k;
  }
  return k;
}

ebnn_status_t ebnn_int8_mean_hw_ref(const ebnn_int8_mean_params_t *params,
                                    const int8_t *input, int8_t *output) {
  const ebnn_int8_mean_params_t *p = params;
  int32_t c, k, mult, shift, n;
  size_t i;
  if (p == NULL || input == NULL || output == NULL)
    return EBNN_ERROR_NULL_POINTER;
  if (p->in_h <= 0 || p->in_w <= 0 || p->channels <= 0 ||
      (int64_t)p->in_h * (int64_t)p->in_w > (1 << 23))
    return EBNN_ERROR_BAD_SHAPE;
  if (!ebnn__int8_zp_valid(p->input_zero_point) ||
      !ebnn__int8_zp_valid(p->output_zero_point) ||
      !ebnn__int8_qm_valid(p->multiplier, p->shift))
    return EBNN_ERROR_BAD_SHAPE;
  n = p->in_h * p->in_w;
  /* fold 1/n into the multiplier as TFLite does: multiplier * 2^k / n with
   * k = floor(log2 n), limited so that the shift stays >= -31 */
  k = floor_log2((uint32_t)n);
  if (k > 31 + p->shift) k = 31 + p->shift;
  mult = (int32_t)(((int64_t)p->multiplier << k) / (int64_t)n);
  shift = p->shift - k;
  for (c = 0; c < p->channels; ++c) {
    int32_t acc = 0;
    for (i = 0; i < (size_t)n; ++i)
      acc += (int32_t)input[i * (size_t)p->channels + (size_t)c];
    acc -= p->input_zero_point * n;
    acc = ebnn_int8_multiply_by_quantized_multiplier(acc, mult, shift) +
          p->output_zero_point;
    output[c] = ebnn__int8_clamp(acc, EBNN_INT8_MIN, EBNN_INT8_MAX);
  }
  return EBNN_OK;
}

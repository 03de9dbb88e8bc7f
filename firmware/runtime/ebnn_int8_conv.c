/*
 * CONV_2D and DEPTHWISE_CONV_2D with int8 input/output and per-channel
 * int8 filters (TFLite's reference_integer_ops ConvPerChannel and
 * DepthwiseConvPerChannel): int32 accumulation of w * (x - input_zp) over
 * the in-bounds taps, int32 bias, per-channel requantization with
 * MultiplyByQuantizedMultiplier, output zero point, activation clamp.
 */
#include "ebnn.h"
#include "ebnn_int8_internal.h"

typedef struct {
  int32_t out_h, out_w, pad_top, pad_left;
} int8_geom_t;

static ebnn_status_t window_geom(int32_t in_h, int32_t in_w, int32_t fh,
                                 int32_t fw, int32_t sh, int32_t sw,
                                 int32_t dh, int32_t dw, ebnn_padding_t padding,
                                 int8_geom_t *g) {
  if (in_h <= 0 || in_w <= 0 || fh <= 0 || fw <= 0 || sh <= 0 || sw <= 0 ||
      dh <= 0 || dw <= 0)
    return EBNN_ERROR_BAD_SHAPE;
  if (padding != EBNN_PADDING_SAME && padding != EBNN_PADDING_VALID)
    return EBNN_ERROR_BAD_ENUM;
  g->out_h = ebnn_output_size(in_h, fh, sh, dh, padding);
  g->out_w = ebnn_output_size(in_w, fw, sw, dw, padding);
  if (g->out_h <= 0 || g->out_w <= 0) return EBNN_ERROR_BAD_SHAPE;
  g->pad_top = ebnn_padding_before(in_h, fh, sh, dh, padding);
  g->pad_left = ebnn_padding_before(in_w, fw, sw, dw, padding);
  return EBNN_OK;
}

static ebnn_status_t check_requant(int32_t n, const int32_t *mult,
                                   const int32_t *shift, int32_t in_zp,
                                   int32_t out_zp, int32_t lo, int32_t hi) {
  int32_t o;
  if (mult == NULL || shift == NULL) return EBNN_ERROR_NULL_POINTER;
  if (!ebnn__int8_zp_valid(in_zp) || !ebnn__int8_zp_valid(out_zp) ||
      !ebnn__int8_range_valid(lo, hi))
    return EBNN_ERROR_BAD_SHAPE;
  for (o = 0; o < n; ++o) {
    if (!ebnn__int8_qm_valid(mult[o], shift[o])) return EBNN_ERROR_BAD_SHAPE;
  }
  return EBNN_OK;
}

/* acc -> int8 output of channel o */
static int8_t requant(int32_t acc, const int32_t *bias, const int32_t *mult,
                      const int32_t *shift, int32_t o, int32_t out_zp,
                      int32_t lo, int32_t hi) {
  if (bias != NULL) acc += bias[o];
  acc = ebnn_int8_multiply_by_quantized_multiplier(acc, mult[o], shift[o]);
  return ebnn__int8_clamp(acc + out_zp, lo, hi);
}

ebnn_status_t ebnn_int8_conv2d_ref(const ebnn_int8_conv2d_params_t *params,
                                   const int8_t *input, int8_t *output) {
  const ebnn_int8_conv2d_params_t *p = params;
  int8_geom_t g;
  int32_t oy, ox, o, fy, fx, c;
  ebnn_status_t st;
  size_t k_size;
  if (p == NULL || input == NULL || output == NULL || p->filter == NULL)
    return EBNN_ERROR_NULL_POINTER;
  if (p->in_c <= 0 || p->out_c <= 0) return EBNN_ERROR_BAD_SHAPE;
  st = window_geom(p->in_h, p->in_w, p->filter_h, p->filter_w, p->stride_h,
                   p->stride_w, p->dilation_h, p->dilation_w, p->padding, &g);
  if (st != EBNN_OK) return st;
  st = check_requant(p->out_c, p->output_multiplier, p->output_shift,
                     p->input_zero_point, p->output_zero_point, p->act_min,
                     p->act_max);
  if (st != EBNN_OK) return st;
  k_size = (size_t)p->filter_h * (size_t)p->filter_w * (size_t)p->in_c;
  for (oy = 0; oy < g.out_h; ++oy) {
    const int32_t y0 = oy * p->stride_h - g.pad_top;
    for (ox = 0; ox < g.out_w; ++ox) {
      const int32_t x0 = ox * p->stride_w - g.pad_left;
      int8_t *out = output + ((size_t)oy * (size_t)g.out_w + (size_t)ox) *
                                 (size_t)p->out_c;
      for (o = 0; o < p->out_c; ++o) {
        const int8_t *filt = p->filter + (size_t)o * k_size;
        int32_t acc = 0;
        for (fy = 0; fy < p->filter_h; ++fy) {
          const int32_t iy = y0 + fy * p->dilation_h;
          if (iy < 0 || iy >= p->in_h) continue;
          for (fx = 0; fx < p->filter_w; ++fx) {
            const int32_t ix = x0 + fx * p->dilation_w;
            const int8_t *px, *wt;
            if (ix < 0 || ix >= p->in_w) continue;
            px = input + ((size_t)iy * (size_t)p->in_w + (size_t)ix) *
                             (size_t)p->in_c;
            wt = filt + ((size_t)fy * (size_t)p->filter_w + (size_t)fx) *
                            (size_t)p->in_c;
            for (c = 0; c < p->in_c; ++c)
              acc += (int32_t)wt[c] * ((int32_t)px[c] - p->input_zero_point);
          }
        }
        out[o] = requant(acc, p->bias, p->output_multiplier, p->output_shift,
                         o, p->output_zero_point, p->act_min, p->act_max);
      }
    }
  }
  return EBNN_OK;
}

ebnn_status_t ebnn_int8_depthwise_conv2d_ref(
    const ebnn_int8_depthwise_conv2d_params_t *params, const int8_t *input,
    int8_t *output) {
  const ebnn_int8_depthwise_conv2d_params_t *p = params;
  int8_geom_t g;
  int32_t oy, ox, ic, m, fy, fx, out_c;
  ebnn_status_t st;
  if (p == NULL || input == NULL || output == NULL || p->filter == NULL)
    return EBNN_ERROR_NULL_POINTER;
  if (p->in_c <= 0 || p->depth_multiplier <= 0) return EBNN_ERROR_BAD_SHAPE;
  st = window_geom(p->in_h, p->in_w, p->filter_h, p->filter_w, p->stride_h,
                   p->stride_w, p->dilation_h, p->dilation_w, p->padding, &g);
  if (st != EBNN_OK) return st;
  out_c = p->in_c * p->depth_multiplier;
  st = check_requant(out_c, p->output_multiplier, p->output_shift,
                     p->input_zero_point, p->output_zero_point, p->act_min,
                     p->act_max);
  if (st != EBNN_OK) return st;
  for (oy = 0; oy < g.out_h; ++oy) {
    const int32_t y0 = oy * p->stride_h - g.pad_top;
    for (ox = 0; ox < g.out_w; ++ox) {
      const int32_t x0 = ox * p->stride_w - g.pad_left;
      int8_t *out = output + ((size_t)oy * (size_t)g.out_w + (size_t)ox) *
                                 (size_t)out_c;
      for (ic = 0; ic < p->in_c; ++ic) {
        for (m = 0; m < p->depth_multiplier; ++m) {
          const int32_t oc = ic * p->depth_multiplier + m;
          int32_t acc = 0;
          for (fy = 0; fy < p->filter_h; ++fy) {
            const int32_t iy = y0 + fy * p->dilation_h;
            if (iy < 0 || iy >= p->in_h) continue;
            for (fx = 0; fx < p->filter_w; ++fx) {
              const int32_t ix = x0 + fx * p->dilation_w;
              int32_t xv, wv;
              if (ix < 0 || ix >= p->in_w) continue;
              xv = input[((size_t)iy * (size_t)p->in_w + (size_t)ix) *
                             (size_t)p->in_c + (size_t)ic];
              wv = p->filter[((size_t)fy * (size_t)p->filter_w + (size_t)fx) *
                                 (size_t)out_c + (size_t)oc];
              acc += wv * (xv - p->input_zero_point);
            }
          }
          out[oc] = requant(acc, p->bias, p->output_multiplier,
                            p->output_shift, oc, p->output_zero_point,
                            p->act_min, p->act_max);
        }
      }
    }
  }
  return EBNN_OK;
}

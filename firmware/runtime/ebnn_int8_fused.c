/*
 * The int8 row-sliced chain: [int8 CONV_2D | LceBconv2d with int8 output]
 * -> int8 MAX_POOL_2D -> [1x1 int8 DEPTHWISE_CONV_2D] -> LceQuantize of int8.
 *
 * Each pooled output row is made from only the producer rows its window
 * reads, so the producer's whole output (26 x 26 x 32 int8 = 21,632 B for
 * the MNIST BNN's first conv) is never live: the arena holds pool_h producer
 * rows and two pooled rows instead. Every step is the unfused _ref kernel
 * called on a slice (a VALID producer's output rows r0..r0+n-1 read input
 * rows r0*stride .. (r0+n-1)*stride + (fh-1)*dilation only), so the result
 * is the unfused result byte for byte. The conv is the kernel set's
 * (conv_fn, e.g. ebnn_int8_conv2d_mcu), the other steps _ref.
 */
#include "ebnn.h"

static int32_t fused_in_rows(int32_t n, int32_t stride, int32_t filter, int32_t dilation) {
  return (n - 1) * stride + (filter - 1) * dilation + 1;
}

size_t ebnn_int8_fused_scratch_bytes(const ebnn_int8_fused_params_t *p) {
  int32_t ow, c, pw;
  if (p == NULL) return 0;
  if (p->producer == EBNN_PRODUCER_CONV2D) {
    if (p->conv == NULL) return 0;
    ow = ebnn_output_size(p->conv->in_w, p->conv->filter_w, p->conv->stride_w,
                          p->conv->dilation_w, EBNN_PADDING_VALID);
    c = p->conv->out_c;
  } else {
    if (p->bconv == NULL || p->bconv->bconv == NULL) return 0;
    ow = ebnn_output_size(p->bconv->bconv->in_w, p->bconv->bconv->filter_w,
                          p->bconv->bconv->stride_w, p->bconv->bconv->dilation_w,
                          EBNN_PADDING_VALID);
    c = p->bconv->bconv->out_c;
  }
  pw = ebnn_output_size(ow, p->pool.filter_w, p->pool.stride_w, 1, EBNN_PADDING_VALID);
  if (ow <= 0 || pw <= 0) return 0;
  return (size_t)p->pool.filter_h * (size_t)ow * (size_t)c + 2u * (size_t)pw * (size_t)c;
}

ebnn_status_t ebnn_int8_fused_ref(const ebnn_int8_fused_params_t *p,
                                  const void *input, int32_t *output,
                                  void *scratch, size_t scratch_bytes) {
  int32_t oh, ow, c, ph, pw, py, words_out;
  int8_t *rows, *pooled, *affined;
  ebnn_int8_pool2d_params_t pool;
  ebnn_int8_lce_quantize_params_t quant;
  ebnn_status_t st;
  if (p == NULL || input == NULL || output == NULL || scratch == NULL)
    return EBNN_ERROR_NULL_POINTER;
  if (p->producer == EBNN_PRODUCER_CONV2D) {
    if (p->conv == NULL) return EBNN_ERROR_NULL_POINTER;
    if (p->conv->padding != EBNN_PADDING_VALID) return EBNN_ERROR_UNSUPPORTED;
    oh = ebnn_output_size(p->conv->in_h, p->conv->filter_h, p->conv->stride_h,
                          p->conv->dilation_h, EBNN_PADDING_VALID);
    ow = ebnn_output_size(p->conv->in_w, p->conv->filter_w, p->conv->stride_w,
                          p->conv->dilation_w, EBNN_PADDING_VALID);
    c = p->conv->out_c;
  } else if (p->producer == EBNN_PRODUCER_BCONV2D) {
    if (p->bconv == NULL || p->bconv->bconv == NULL) return EBNN_ERROR_NULL_POINTER;
    if (p->bconv->bconv->padding != EBNN_PADDING_VALID) return EBNN_ERROR_UNSUPPORTED;
    oh = ebnn_output_size(p->bconv->bconv->in_h, p->bconv->bconv->filter_h,
                          p->bconv->bconv->stride_h, p->bconv->bconv->dilation_h,
                          EBNN_PADDING_VALID);
    ow = ebnn_output_size(p->bconv->bconv->in_w, p->bconv->bconv->filter_w,
                          p->bconv->bconv->stride_w, p->bconv->bconv->dilation_w,
                          EBNN_PADDING_VALID);
    c = p->bconv->bconv->out_c;
  } else {
    return EBNN_ERROR_BAD_ENUM;
  }
  if (oh <= 0 || ow <= 0 || c <= 0) return EBNN_ERROR_BAD_SHAPE;
  if (p->pool.padding != EBNN_PADDING_VALID || p->pool.in_h != oh ||
      p->pool.in_w != ow || p->pool.channels != c || p->pool.filter_h <= 0 ||
      p->pool.stride_h <= 0)
    return EBNN_ERROR_UNSUPPORTED;
  if (p->affine != NULL &&
      (p->affine->filter_h != 1 || p->affine->filter_w != 1 || p->affine->stride_h != 1 ||
       p->affine->stride_w != 1 || p->affine->depth_multiplier != 1 || p->affine->in_c != c))
    return EBNN_ERROR_UNSUPPORTED;
  ph = ebnn_output_size(oh, p->pool.filter_h, p->pool.stride_h, 1, EBNN_PADDING_VALID);
  pw = ebnn_output_size(ow, p->pool.filter_w, p->pool.stride_w, 1, EBNN_PADDING_VALID);
  if (ph <= 0 || pw <= 0) return EBNN_ERROR_BAD_SHAPE;
  if (scratch_bytes < ebnn_int8_fused_scratch_bytes(p)) return EBNN_ERROR_BAD_SHAPE;
  rows = (int8_t *)scratch;
  pooled = rows + (size_t)p->pool.filter_h * (size_t)ow * (size_t)c;
  affined = pooled + (size_t)pw * (size_t)c;
  pool = p->pool;
  pool.in_h = p->pool.filter_h;
  quant.n_pixels = pw;
  quant.channels = c;
  quant.zero_point = p->quantize_zero_point;
  words_out = EBNN_PACKED_WORDS(c);
  for (py = 0; py < ph; ++py) {
    const int32_t r0 = py * p->pool.stride_h;
    const int32_t n = p->pool.filter_h;
    if (p->producer == EBNN_PRODUCER_CONV2D) {
      ebnn_int8_conv2d_params_t conv = *p->conv;
      conv.in_h = fused_in_rows(n, conv.stride_h, conv.filter_h, conv.dilation_h);
      st = (p->conv_fn != NULL ? p->conv_fn : ebnn_int8_conv2d_ref)(
          &conv,
          (const int8_t *)input + (size_t)r0 * (size_t)conv.stride_h *
                                      (size_t)conv.in_w * (size_t)conv.in_c,
          rows);
    } else {
      ebnn_bconv2d_params_t inner = *p->bconv->bconv;
      ebnn_int8_lce_bconv2d_params_t outer = *p->bconv;
      inner.in_h = fused_in_rows(n, inner.stride_h, inner.filter_h, inner.dilation_h);
      outer.bconv = &inner;
      st = ebnn_int8_lce_bconv2d_ref(
          &outer,
          (const int32_t *)input + (size_t)r0 * (size_t)inner.stride_h *
                                       (size_t)inner.in_w *
                                       (size_t)EBNN_PACKED_WORDS(inner.in_c),
          rows);
    }
    if (st != EBNN_OK) return st;
    st = ebnn_int8_max_pool2d_ref(&pool, rows, pooled);
    if (st != EBNN_OK) return st;
    if (p->affine != NULL) {
      ebnn_int8_depthwise_conv2d_params_t aff = *p->affine;
      aff.in_h = 1;
      aff.in_w = pw;
      st = ebnn_int8_depthwise_conv2d_ref(&aff, pooled, affined);
      if (st != EBNN_OK) return st;
    }
    st = ebnn_int8_lce_quantize_ref(&quant, p->affine != NULL ? affined : pooled,
                                    output + (size_t)py * (size_t)pw * (size_t)words_out);
    if (st != EBNN_OK) return st;
  }
  return EBNN_OK;
}

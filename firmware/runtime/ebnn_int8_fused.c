/*
 * The int8 row-sliced chain: [int8 CONV_2D | LceBconv2d with int8 output]
 * -> int8 MAX_POOL_2D -> [1x1 int8 DEPTHWISE_CONV_2D] -> LceQuantize of int8.
 *
 * Each pooled output row is made from only the producer rows its window
 * reads, so the producer's whole output (28 x 28 x 32 int8 = 25,088 B for
 * the MNIST BNNs' first conv) is never live: the arena holds pool_h producer
 * rows and two pooled rows instead. Every step is the unfused _ref kernel
 * called on a slice (a VALID producer's output rows r0..r0+n-1 read input
 * rows r0*stride .. (r0+n-1)*stride + (fh-1)*dilation only), so the result
 * is the unfused result byte for byte. The producer is the kernel set's
 * (conv_fn / bconv_fn, e.g. ebnn_int8_conv2d_mcu), the pool _ref; the 1x1
 * affine and the LceQuantize run as one pass over the pooled row with the
 * _ref kernels' arithmetic (affine_sign_row), so no int8 row is written
 * between them.
 *
 * A SAME producer is run as a VALID one over a padded copy of the input rows
 * it reads (built in the scratch, one slice per pooled row): the padding is
 * the input zero point for CONV_2D, where TFLite's kernels skip padded taps
 * and (zero_point - zero_point) * w adds the same nothing, and packed +1
 * (all-zero words) for LceBconv2d with pad_value 1, where LCE pads with +1.
 * Same-zero bconv padding (pad_value 0) is not sliced.
 */
#include "ebnn.h"
#include "ebnn_int8_internal.h"

static int32_t fused_in_rows(int32_t n, int32_t stride, int32_t filter, int32_t dilation) {
  return (n - 1) * stride + (filter - 1) * dilation + 1;
}

/* The producer's geometry: its output, its padding and the padded copy of
 * the input rows one pooled row reads (slice_* = 0 when VALID needs none). */
typedef struct {
  int32_t oh, ow, c;
  int32_t in_h, in_w, pad_top, pad_left;
  int32_t slice_h, slice_w; /* rows and pixels per row of the padded copy */
  size_t pixel_bytes;       /* one input pixel: in_c int8 or packed words */
  size_t slice_bytes;
} fused_geom_t;

static ebnn_status_t fused_geom(const ebnn_int8_fused_params_t *p, fused_geom_t *g) {
  int32_t fh, fw, sh, sw, dh, dw;
  ebnn_padding_t padding;
  if (p->producer == EBNN_PRODUCER_CONV2D) {
    const ebnn_int8_conv2d_params_t *cv = p->conv;
    if (cv == NULL) return EBNN_ERROR_NULL_POINTER;
    g->in_h = cv->in_h, g->in_w = cv->in_w, g->c = cv->out_c;
    fh = cv->filter_h, fw = cv->filter_w, sh = cv->stride_h, sw = cv->stride_w;
    dh = cv->dilation_h, dw = cv->dilation_w, padding = cv->padding;
    g->pixel_bytes = (size_t)cv->in_c;
  } else if (p->producer == EBNN_PRODUCER_BCONV2D) {
    const ebnn_bconv2d_params_t *bc;
    if (p->bconv == NULL || p->bconv->bconv == NULL) return EBNN_ERROR_NULL_POINTER;
    bc = p->bconv->bconv;
    if (bc->padding == EBNN_PADDING_SAME && bc->pad_value != 1) return EBNN_ERROR_UNSUPPORTED;
    g->in_h = bc->in_h, g->in_w = bc->in_w, g->c = bc->out_c;
    fh = bc->filter_h, fw = bc->filter_w, sh = bc->stride_h, sw = bc->stride_w;
    dh = bc->dilation_h, dw = bc->dilation_w, padding = bc->padding;
    g->pixel_bytes = (size_t)EBNN_PACKED_WORDS(bc->in_c) * sizeof(int32_t);
  } else {
    return EBNN_ERROR_BAD_ENUM;
  }
  if (padding != EBNN_PADDING_SAME && padding != EBNN_PADDING_VALID) return EBNN_ERROR_BAD_ENUM;
  if (fh <= 0 || fw <= 0 || sh <= 0 || sw <= 0 || dh <= 0 || dw <= 0) return EBNN_ERROR_BAD_SHAPE;
  g->oh = ebnn_output_size(g->in_h, fh, sh, dh, padding);
  g->ow = ebnn_output_size(g->in_w, fw, sw, dw, padding);
  if (g->oh <= 0 || g->ow <= 0 || g->c <= 0) return EBNN_ERROR_BAD_SHAPE;
  g->pad_top = ebnn_padding_before(g->in_h, fh, sh, dh, padding);
  g->pad_left = ebnn_padding_before(g->in_w, fw, sw, dw, padding);
  g->slice_h = g->slice_w = 0;
  g->slice_bytes = 0;
  if (padding == EBNN_PADDING_SAME && p->pool.filter_h > 0) {
    g->slice_h = fused_in_rows(p->pool.filter_h, sh, fh, dh);
    g->slice_w = fused_in_rows(g->ow, sw, fw, dw);
    g->slice_bytes = (size_t)g->slice_h * (size_t)g->slice_w * g->pixel_bytes;
  }
  return EBNN_OK;
}

static size_t align4(size_t n) { return (n + 3u) & ~(size_t)3u; }

size_t ebnn_int8_fused_scratch_bytes(const ebnn_int8_fused_params_t *p) {
  fused_geom_t g;
  int32_t pw;
  if (p == NULL || fused_geom(p, &g) != EBNN_OK) return 0;
  pw = ebnn_output_size(g.ow, p->pool.filter_w, p->pool.stride_w, 1, EBNN_PADDING_VALID);
  if (pw <= 0) return 0;
  return align4(g.slice_bytes) + (size_t)p->pool.filter_h * (size_t)g.ow * (size_t)g.c +
         2u * (size_t)pw * (size_t)g.c;
}

/* Copy input rows y0 .. y0 + slice_h - 1 (y0 may be negative: padding rows)
 * into the padded slice, filling out-of-image pixels with `pad` bytes. */
static void fill_slice(const fused_geom_t *g, const unsigned char *input, int32_t y0,
                       unsigned char pad, unsigned char *slice) {
  int32_t i, x;
  size_t b;
  for (i = 0; i < g->slice_h; ++i) {
    const int32_t y = y0 + i;
    for (x = 0; x < g->slice_w; ++x) {
      const int32_t xx = x - g->pad_left;
      unsigned char *dst = slice + ((size_t)i * (size_t)g->slice_w + (size_t)x) * g->pixel_bytes;
      if (y >= 0 && y < g->in_h && xx >= 0 && xx < g->in_w) {
        const unsigned char *src =
            input + ((size_t)y * (size_t)g->in_w + (size_t)xx) * g->pixel_bytes;
        for (b = 0; b < g->pixel_bytes; ++b) dst[b] = src[b];
      } else {
        for (b = 0; b < g->pixel_bytes; ++b) dst[b] = pad;
      }
    }
  }
}

/* The checks ebnn_int8_depthwise_conv2d_ref makes of the 1x1 affine, with
 * its statuses (the shapes are checked by the caller). */
static ebnn_status_t affine_check(const ebnn_int8_depthwise_conv2d_params_t *a) {
  int32_t o;
  if (a->filter == NULL) return EBNN_ERROR_NULL_POINTER;
  if (a->output_multiplier == NULL || a->output_shift == NULL) return EBNN_ERROR_NULL_POINTER;
  if (!ebnn__int8_zp_valid(a->input_zero_point) || !ebnn__int8_zp_valid(a->output_zero_point) ||
      !ebnn__int8_range_valid(a->act_min, a->act_max))
    return EBNN_ERROR_BAD_SHAPE;
  for (o = 0; o < a->in_c; ++o) {
    if (!ebnn__int8_qm_valid(a->output_multiplier[o], a->output_shift[o])) return EBNN_ERROR_BAD_SHAPE;
  }
  return EBNN_OK;
}

/* The 1x1 affine and LceQuantize of one pooled row in one pass: each value
 * is requantized exactly as ebnn_int8_depthwise_conv2d_ref does (one tap:
 * w * (x - input_zp), bias, MultiplyByQuantizedMultiplier, zero point,
 * clamp) and its bit set when the result is below the quantize zero point,
 * as ebnn_int8_lce_quantize_ref does; the int8 row in between is not
 * written. */
static void affine_sign_row(const ebnn_int8_depthwise_conv2d_params_t *a, const int8_t *x,
                            int32_t n_pixels, int32_t c, int32_t qzp, int32_t *out) {
  const int8_t *w = a->filter;
  const int32_t *bias = a->bias, *mult = a->output_multiplier, *shift = a->output_shift;
  const int32_t izp = a->input_zero_point, ozp = a->output_zero_point;
  const int32_t lo = a->act_min, hi = a->act_max, words = EBNN_PACKED_WORDS(c);
  int32_t i, ch;
  for (i = 0; i < n_pixels; ++i, x += c, out += words) {
    uint32_t word = 0u;
    for (ch = 0; ch < c; ++ch) {
      int32_t acc = (int32_t)w[ch] * ((int32_t)x[ch] - izp);
      if (bias != NULL) acc += bias[ch];
      acc = ebnn__int8_requant(acc, mult[ch], shift[ch]);
      if ((int32_t)ebnn__int8_clamp(acc + ozp, lo, hi) < qzp) word |= 1u << (ch % 32);
      if (ch % 32 == 31 || ch == c - 1) {
        out[ch / 32] = (int32_t)word;
        word = 0u;
      }
    }
  }
}

ebnn_status_t ebnn_int8_fused_ref(const ebnn_int8_fused_params_t *p,
                                  const void *input, int32_t *output,
                                  void *scratch, size_t scratch_bytes) {
  fused_geom_t g;
  int32_t oh, ow, c, ph, pw, py, words_out;
  unsigned char *slice;
  int8_t *rows, *pooled;
  ebnn_int8_pool2d_params_t pool;
  ebnn_int8_lce_quantize_params_t quant;
  ebnn_status_t st;
  if (p == NULL || input == NULL || output == NULL || scratch == NULL)
    return EBNN_ERROR_NULL_POINTER;
  st = fused_geom(p, &g);
  if (st != EBNN_OK) return st;
  oh = g.oh, ow = g.ow, c = g.c;
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
  if (p->affine != NULL) {
    st = affine_check(p->affine);
    if (st != EBNN_OK) return st;
  }
  if (p->quantize_zero_point < -128 || p->quantize_zero_point > 127) return EBNN_ERROR_UNSUPPORTED;
  slice = (unsigned char *)scratch; /* 4-byte aligned: it may hold packed words */
  rows = (int8_t *)(slice + align4(g.slice_bytes));
  pooled = rows + (size_t)p->pool.filter_h * (size_t)ow * (size_t)c;
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
      const int8_t *x = (const int8_t *)input +
                        (size_t)r0 * (size_t)conv.stride_h * (size_t)conv.in_w * (size_t)conv.in_c;
      conv.in_h = fused_in_rows(n, conv.stride_h, conv.filter_h, conv.dilation_h);
      if (g.slice_bytes != 0) {
        fill_slice(&g, (const unsigned char *)input, r0 * conv.stride_h - g.pad_top,
                   (unsigned char)(int8_t)conv.input_zero_point, slice);
        conv.in_w = g.slice_w;
        conv.padding = EBNN_PADDING_VALID;
        x = (const int8_t *)slice;
      }
      st = (p->conv_fn != NULL ? p->conv_fn : ebnn_int8_conv2d_ref)(&conv, x, rows);
    } else {
      ebnn_bconv2d_params_t inner = *p->bconv->bconv;
      ebnn_int8_lce_bconv2d_params_t outer = *p->bconv;
      const int32_t *x = (const int32_t *)input + (size_t)r0 * (size_t)inner.stride_h *
                                                      (size_t)inner.in_w *
                                                      (size_t)EBNN_PACKED_WORDS(inner.in_c);
      inner.in_h = fused_in_rows(n, inner.stride_h, inner.filter_h, inner.dilation_h);
      if (g.slice_bytes != 0) {
        fill_slice(&g, (const unsigned char *)input, r0 * inner.stride_h - g.pad_top, 0u, slice);
        inner.in_w = g.slice_w;
        inner.padding = EBNN_PADDING_VALID;
        x = (const int32_t *)(const void *)slice;
      }
      outer.bconv = &inner;
      st = (p->bconv_fn != NULL ? p->bconv_fn : ebnn_int8_lce_bconv2d_ref)(&outer, x, rows);
    }
    if (st != EBNN_OK) return st;
    st = ebnn_int8_max_pool2d_ref(&pool, rows, pooled);
    if (st != EBNN_OK) return st;
    if (p->affine != NULL) {
      affine_sign_row(p->affine, pooled, pw, c, p->quantize_zero_point,
                      output + (size_t)py * (size_t)pw * (size_t)words_out);
      continue;
    }
    st = ebnn_int8_lce_quantize_ref(&quant, pooled,
                                    output + (size_t)py * (size_t)pw * (size_t)words_out);
    if (st != EBNN_OK) return st;
  }
  return EBNN_OK;
}

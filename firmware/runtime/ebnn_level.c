/*
 * The level-coded convolution's reference (ebnn_lconv2d_ref) and what it
 * shares with the opt kernel (ebnn_bconv_opt.c): the checks and the
 * bitplane packing of the input codes. Semantics in ebnn.h.
 *
 * Why it exists: a DoReFa-Net layer is a float CONV_2D in the flatbuffer,
 * but its input has 2^k values and its weights are +-s, so the exact sum is
 * k binary convolutions of the code's bits: k XOR-popcounts per 32 taps in
 * place of 32 float multiply-adds, and 32x fewer weight bytes.
 */
#include "ebnn.h"
#include "ebnn_internal.h"

#define EBNN_LEVEL_MAX 255

static int32_t lconv_planes(int32_t levels) {
  int32_t planes = 0;
  while (levels > 0) {
    ++planes;
    levels >>= 1;
  }
  return planes;
}

size_t ebnn_lconv2d_scratch_bytes(const ebnn_lconv2d_params_t *params) {
  const ebnn_bconv2d_params_t *c;
  if (params == NULL || params->levels < 1 || params->levels > EBNN_LEVEL_MAX) return 0u;
  c = &params->conv;
  if (c->in_h <= 0 || c->in_w <= 0 || c->in_c <= 0) return 0u;
  return (size_t)lconv_planes(params->levels) * (size_t)c->in_h * (size_t)c->in_w *
         (size_t)EBNN_PACKED_WORDS(c->in_c) * sizeof(int32_t);
}

static int32_t lconv_code(float x, int32_t levels) {
  if (!(x >= 0.5f)) return 0; /* also NaN */
  if (x >= (float)levels) return levels;
  return (int32_t)(x + 0.5f);
}

ebnn_status_t ebnn__lconv2d_prepare(const ebnn_lconv2d_params_t *p, const float *input,
                                    const float *output, void *scratch, size_t scratch_bytes,
                                    ebnn__bgeom_t *g, int32_t *planes, size_t *plane_words) {
  const ebnn_bconv2d_params_t *c;
  int32_t words, n_pix, q, w, j, b;
  ebnn_status_t st;
  uint32_t *dst;
  if (p == NULL || input == NULL || output == NULL || scratch == NULL)
    return EBNN_ERROR_NULL_POINTER;
  c = &p->conv;
  if (p->levels < 1 || p->levels > EBNN_LEVEL_MAX) return EBNN_ERROR_BAD_SHAPE;
  if (!ebnn__act_valid(p->activation)) return EBNN_ERROR_BAD_ENUM;
  st = ebnn__bconv2d_check(c, g);
  if (st != EBNN_OK) return st;
  if (c->thresholds != NULL || c->pad_value != 1 || c->activation != EBNN_ACT_NONE)
    return EBNN_ERROR_UNSUPPORTED;
  if (scratch_bytes < ebnn_lconv2d_scratch_bytes(p)) return EBNN_ERROR_BAD_SHAPE;
  if (((uintptr_t)scratch & 3u) != 0u) return EBNN_ERROR_BAD_SHAPE;
  *planes = lconv_planes(p->levels);
  words = EBNN_PACKED_WORDS(c->in_c);
  n_pix = c->in_h * c->in_w;
  *plane_words = (size_t)n_pix * (size_t)words;
  dst = (uint32_t *)scratch;
  for (q = 0; q < n_pix; ++q) {
    const float *x = input + (size_t)q * (size_t)c->in_c;
    for (w = 0; w < words; ++w) {
      uint32_t bits[8] = {0u, 0u, 0u, 0u, 0u, 0u, 0u, 0u};
      const int32_t nb = c->in_c - 32 * w < 32 ? c->in_c - 32 * w : 32;
      for (b = 0; b < nb; ++b) {
        const uint32_t code = (uint32_t)lconv_code(x[32 * w + b], p->levels);
        for (j = 0; j < *planes; ++j) bits[j] |= ((code >> j) & 1u) << b;
      }
      for (j = 0; j < *planes; ++j)
        dst[(size_t)j * *plane_words + (size_t)q * (size_t)words + (size_t)w] = bits[j];
    }
  }
  return EBNN_OK;
}

ebnn_status_t ebnn_lconv2d_ref(const ebnn_lconv2d_params_t *params,
                               const float *input, float *output,
                               void *scratch, size_t scratch_bytes) {
  const ebnn_bconv2d_params_t *c;
  ebnn__bgeom_t g;
  int32_t planes, oy, ox, o, j;
  size_t plane_words, k_words, k;
  ebnn_status_t st = ebnn__lconv2d_prepare(params, input, output, scratch, scratch_bytes, &g,
                                           &planes, &plane_words);
  if (st != EBNN_OK) return st;
  c = &params->conv;
  k_words = (size_t)c->filter_h * (size_t)c->filter_w * (size_t)g.words_in;
  for (o = 0; o < c->out_c; ++o) { /* channel outermost: its filter popcount once */
    const int32_t *filt = c->filter + (size_t)o * k_words;
    int32_t pop = 0;
    for (k = 0; k < k_words; ++k) pop += EBNN_POPCOUNT32((uint32_t)filt[k]);
    for (oy = 0; oy < g.g.out_h; ++oy) {
      for (ox = 0; ox < g.g.out_w; ++ox) {
        int32_t s = 0;
        float y;
        for (j = 0; j < planes; ++j) {
          const int32_t *plane = (const int32_t *)scratch + (size_t)j * plane_words;
          s += (ebnn__bconv_popcount(c, &g, plane, oy, ox, o) - pop) * (1 << j);
        }
        y = c->multiplier[o] * (float)s;
        y = y + c->bias[o];
        output[((size_t)oy * (size_t)g.g.out_w + (size_t)ox) * (size_t)c->out_c + (size_t)o] =
            ebnn__act(y, params->activation);
      }
    }
  }
  return EBNN_OK;
}

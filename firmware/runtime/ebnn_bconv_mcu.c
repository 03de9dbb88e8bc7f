/*
 * LceBconv2d, kernel set "mcu" (M-profile cores without a popcount
 * instruction). Same params, statuses and bits as ebnn_bconv2d_ref:
 *
 * - each output pixel's window is gathered once into a patch laid out like
 *   one output channel's filter ([fh][fw][words], 0 words = +1 for taps
 *   outside the input: same-one padding), so every output channel is one
 *   contiguous XOR-popcount run, counted by ebnn__mcu_xor_popcount (SWAR
 *   with the folding shared by three words, USADA8 on DSP cores);
 * - float output: LCE's m' = (float)(-1.0 * mul), b' = (float)(bias + K *
 *   mul) in double (soft-float on Cortex-M) are computed once per call for
 *   up to EBNN_MCU_BLOCK channels, not once per row as in _ref; the per
 *   output float operations are _ref's: y = (float)clamp(2p) * m' + b';
 * - bitpacked output: the popcount is compared with the integer threshold.
 *
 * Same-zero padding (the per-pixel correction) and filters longer than
 * EBNN_MCU_PATCH_WORDS words go to ebnn_bconv2d_ref.
 */
#include "ebnn.h"
#include "ebnn_internal.h"
#include "ebnn_mcu_internal.h"

/* Plain C (no Thumb-2: M0, RISC-V, hosts; and the last words of a run):
 * the folding shared by three words, a multiply for the bytes (each <= 24),
 * as the _ref kernels do. */
EBNN_INLINE int32_t mcu_xor_popcount_c(const int32_t *a, const int32_t *b, int32_t n) {
  uint32_t total = 0u;
  int32_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t s = ebnn__mcu_nibbles((uint32_t)a[i] ^ (uint32_t)b[i]);
    s += ebnn__mcu_nibbles((uint32_t)a[i + 1] ^ (uint32_t)b[i + 1]);
    s += ebnn__mcu_nibbles((uint32_t)a[i + 2] ^ (uint32_t)b[i + 2]);
    total += (ebnn__mcu_bytes(s) * 0x01010101u) >> 24;
  }
  if (i < n) {
    uint32_t s = ebnn__mcu_nibbles((uint32_t)a[i] ^ (uint32_t)b[i]);
    if (i + 1 < n) s += ebnn__mcu_nibbles((uint32_t)a[i + 1] ^ (uint32_t)b[i + 1]);
    total += (ebnn__mcu_bytes(s) * 0x01010101u) >> 24;
  }
  return (int32_t)total;
}

/* (one copy, called by every path that is not a 9k-word filter) */
int32_t ebnn__mcu_xor_popcount(const int32_t *a, const int32_t *b, int32_t n) {
  uint32_t total = 0u;
  int32_t i = 0;
#if EBNN_MCU_THUMB2_ASM
  {
    const uint32_t m1 = 0x55555555u, m2 = 0x33333333u;
    int32_t g;
    for (g = n / 9; g > 0;) { /* at most 256 blocks per accumulator */
      const int32_t run = g < 256 ? g : 256;
      uint32_t acc = 0u;
      int32_t k;
      for (k = 0; k < run; ++k) acc = ebnn__mcu_block9(&a, &b, acc, m1, m2);
      total += ebnn__mcu_acc_total(acc);
      g -= run;
    }
    if (n % 9 >= 3) {
      uint32_t acc = 0u;
      for (g = (n % 9) / 3; g > 0; --g) acc = ebnn__mcu_group3(&a, &b, acc, m1, m2);
      total += ebnn__mcu_acc_total(acc);
    }
    i = n - n % 3;
    a -= i;
    b -= i;
  }
#endif
  return (int32_t)total + mcu_xor_popcount_c(a + i, b + i, n - i);
}

int ebnn__bconv2d_mcu_supported(const ebnn_bconv2d_params_t *p,
                                const ebnn__bgeom_t *g) {
  return !g->same_zero &&
         (size_t)p->filter_h * (size_t)p->filter_w * (size_t)g->words_in <=
             EBNN_MCU_PATCH_WORDS;
}

void ebnn__bconv2d_fold_mcu(const ebnn_bconv2d_params_t *p,
                            const ebnn__bgeom_t *g, int32_t o0, int32_t nb,
                            float *m, float *b) {
  int32_t j;
  for (j = 0; j < nb; ++j) {
    const float mul = p->multiplier[o0 + j];
    m[j] = (float)(-1.0 * (double)mul);
    b[j] = (float)((double)p->bias[o0 + j] + (double)g->k * (double)mul);
  }
}

/* The input words under the window with origin (y_origin, x_origin), in
 * filter order, 0 for taps outside the input. */
static void mcu_gather(const ebnn_bconv2d_params_t *p, const ebnn__bgeom_t *g,
                       const int32_t *input, int32_t y_origin, int32_t x_origin,
                       int32_t *patch) {
  int32_t fy, fx, w;
  const int32_t words = g->words_in;
  for (fy = 0; fy < p->filter_h; ++fy) {
    const int32_t iy = y_origin + fy * p->dilation_h;
    const int row_in = iy >= 0 && iy < p->in_h;
    for (fx = 0; fx < p->filter_w; ++fx) {
      const int32_t ix = x_origin + fx * p->dilation_w;
      if (row_in && ix >= 0 && ix < p->in_w) {
        const int32_t *px =
            input + ((size_t)iy * (size_t)p->in_w + (size_t)ix) * (size_t)words;
        for (w = 0; w < words; ++w) patch[w] = px[w];
      } else {
        for (w = 0; w < words; ++w) patch[w] = 0;
      }
      patch += words;
    }
  }
}

/* Popcounts of output channels o0 .. o0 + nb - 1 against the patch. */
static void mcu_counts(const ebnn_bconv2d_params_t *p, const int32_t *patch,
                       int32_t filt_words, int32_t o0, int32_t nb,
                       int32_t *counts) {
  int32_t j;
  const int32_t *filt = p->filter + (size_t)o0 * (size_t)filt_words;
#if EBNN_MCU_THUMB2_ASM
  if (filt_words % 9 == 0) { /* 3x3 filters over 32k channels */
    const uint32_t m1 = 0x55555555u, m2 = 0x33333333u;
    const int32_t blocks = filt_words / 9;
    for (j = 0; j < nb; ++j) {
      const int32_t *a = patch;
      uint32_t t = 0u;
      int32_t k;
      for (k = blocks; k > 0; --k) t = ebnn__mcu_block9(&a, &filt, t, m1, m2);
      counts[j] = (int32_t)ebnn__mcu_acc_total(t);
    }
    return;
  }
  if (filt_words % 3 == 0) { /* 3k words (3x1 filters, 96 channels...): channels back to back */
    const uint32_t m1 = 0x55555555u, m2 = 0x33333333u;
    const int32_t groups = filt_words / 3;
    for (j = 0; j < nb; ++j) {
      const int32_t *a = patch;
      uint32_t t = 0u;
      int32_t k;
      for (k = groups; k > 0; --k) t = ebnn__mcu_group3(&a, &filt, t, m1, m2);
      counts[j] = (int32_t)ebnn__mcu_acc_total(t);
    }
    return;
  }
#endif
#if EBNN_MCU_THUMB2_ASM
  for (j = 0; j < nb; ++j, filt += filt_words)
    counts[j] = ebnn__mcu_xor_popcount(patch, filt, filt_words);
#else
  for (j = 0; j < nb; ++j, filt += filt_words)
    counts[j] = mcu_xor_popcount_c(patch, filt, filt_words);
#endif
}

#if EBNN_MCU_THUMB2_ASM
/* Float outputs of nb channels whose filters are 9k words, counts and
 * output transform in one pass (the same float operations as _ref). */
static void mcu_outputs9k(const int32_t *patch, const int32_t *filt, int32_t blocks,
                          int32_t nb, int32_t lo, int32_t hi, const float *m,
                          const float *b, float *o) {
  const uint32_t m1 = 0x55555555u, m2 = 0x33333333u;
  int32_t j, k;
  for (j = 0; j < nb; ++j) {
    const int32_t *a = patch;
    uint32_t t = 0u;
    int32_t x;
    float y;
    for (k = blocks; k > 0; --k) t = ebnn__mcu_block9(&a, &filt, t, m1, m2);
    x = 2 * (int32_t)ebnn__mcu_acc_total(t);
    x = x > hi ? hi : x;
    x = x < lo ? lo : x;
    y = (float)x * m[j];
    o[j] = y + b[j];
  }
}

/* The same for 9-word filters (3x3 over up to 32 channels) whose clamp
 * range holds every possible 2 * popcount (<= 2 * 288). */
static void mcu_outputs9(const int32_t *patch, const int32_t *filt, int32_t nb,
                         const float *m, const float *b, float *o) {
  const uint32_t m1 = 0x55555555u, m2 = 0x33333333u;
  int32_t j;
  for (j = 0; j < nb; ++j) {
    const int32_t *a = patch;
    const uint32_t t = ebnn__mcu_acc_total(ebnn__mcu_block9(&a, &filt, 0u, m1, m2));
    const float y = (float)(2 * (int32_t)t) * m[j];
    o[j] = y + b[j];
  }
}
#endif

void ebnn__bconv2d_row_float_mcu(const ebnn_bconv2d_params_t *p,
                                 const ebnn__bgeom_t *g, const int32_t *input,
                                 int32_t oy, int32_t x0, int32_t x1, int32_t o0,
                                 int32_t nb, const float *m, const float *b,
                                 float *out, size_t out_stride) {
  int32_t patch[EBNN_MCU_PATCH_WORDS];
  int32_t counts[32];
  int32_t ox, j, j0;
  const int32_t filt_words = p->filter_h * p->filter_w * g->words_in;
  const int32_t y_origin = oy * p->stride_h - g->g.pad_top;
  const int32_t lo = g->clamp_min, hi = g->clamp_max;
  for (ox = x0; ox < x1; ++ox) {
    float *o = out + (size_t)(ox - x0) * out_stride;
    mcu_gather(p, g, input, y_origin, ox * p->stride_w - g->g.pad_left, patch);
#if EBNN_MCU_THUMB2_ASM
    if (filt_words % 9 == 0) {
      const int32_t *filt = p->filter + (size_t)o0 * (size_t)filt_words;
      if (filt_words == 9 && lo <= 0 && hi >= 2 * 32 * 9)
        mcu_outputs9(patch, filt, nb, m, b, o); /* no clamp can bite */
      else
        mcu_outputs9k(patch, filt, filt_words / 9, nb, lo, hi, m, b, o);
      continue;
    }
#endif
    for (j0 = 0; j0 < nb; j0 += 32) {
      const int32_t n = nb - j0 < 32 ? nb - j0 : 32;
      mcu_counts(p, patch, filt_words, o0 + j0, n, counts);
      for (j = 0; j < n; ++j) {
        int32_t x = 2 * counts[j];
        float y;
        x = x > hi ? hi : x;
        x = x < lo ? lo : x;
        y = (float)x * m[j0 + j];
        o[j0 + j] = y + b[j0 + j];
      }
    }
  }
}

#if EBNN_MCU_THUMB2_ASM
static void mcu_row_packed(const ebnn_bconv2d_params_t *p,
                           const ebnn__bgeom_t *g, const int32_t *input,
                           int32_t oy, int32_t *out_row) {
  int32_t patch[EBNN_MCU_PATCH_WORDS];
  int32_t counts[32];
  int32_t ox, o0, j;
  const int32_t words_out = EBNN_PACKED_WORDS(p->out_c);
  const int32_t filt_words = p->filter_h * p->filter_w * g->words_in;
  const int32_t y_origin = oy * p->stride_h - g->g.pad_top;
  for (ox = 0; ox < g->g.out_w; ++ox) {
    int32_t *px = out_row + (size_t)ox * (size_t)words_out;
    mcu_gather(p, g, input, y_origin, ox * p->stride_w - g->g.pad_left, patch);
    for (o0 = 0; o0 < p->out_c; o0 += 32) {
      const int32_t nb = p->out_c - o0 < 32 ? p->out_c - o0 : 32;
      const int32_t *thr = p->thresholds + o0;
      uint32_t word = 0u;
      mcu_counts(p, patch, filt_words, o0, nb, counts);
      for (j = 0; j < nb; ++j)
        word |= (uint32_t)(counts[j] > thr[j]) << j;
      px[o0 / 32] = (int32_t)word;
    }
  }
}

#endif

ebnn_status_t ebnn_bconv2d_mcu(const ebnn_bconv2d_params_t *params,
                               const int32_t *input, void *output) {
  ebnn__bgeom_t g;
  int32_t oy, o0;
  ebnn_status_t st;
  const ebnn_bconv2d_params_t *p = params;
  if (p == NULL || input == NULL || output == NULL) return EBNN_ERROR_NULL_POINTER;
  st = ebnn__bconv2d_check(p, &g);
  if (st != EBNN_OK) return st;
  if (!ebnn__bconv2d_mcu_supported(p, &g)) return ebnn_bconv2d_ref(p, input, output);
  if (p->thresholds != NULL) {
#if !EBNN_MCU_THUMB2_ASM
    /* plain C counts the same way as _ref here (measured 0.8% slower on
     * Cortex-M0 through this path), so bitpacked output stays with _ref */
    return ebnn_bconv2d_ref(p, input, output);
#else
    const size_t row_words = (size_t)g.g.out_w * (size_t)EBNN_PACKED_WORDS(p->out_c);
    for (oy = 0; oy < g.g.out_h; ++oy)
      mcu_row_packed(p, &g, input, oy, (int32_t *)output + (size_t)oy * row_words);
    return EBNN_OK;
#endif
  }
  for (o0 = 0; o0 < p->out_c; o0 += EBNN_MCU_BLOCK) {
    float m[EBNN_MCU_BLOCK], b[EBNN_MCU_BLOCK];
    const int32_t nb = p->out_c - o0 < EBNN_MCU_BLOCK ? p->out_c - o0 : EBNN_MCU_BLOCK;
    ebnn__bconv2d_fold_mcu(p, &g, o0, nb, m, b);
    for (oy = 0; oy < g.g.out_h; ++oy) {
      float *row = (float *)output + (size_t)oy * (size_t)g.g.out_w * (size_t)p->out_c;
      ebnn__bconv2d_row_float_mcu(p, &g, input, oy, 0, g.g.out_w, o0, nb, m, b,
                                  row + o0, (size_t)p->out_c);
    }
  }
  return EBNN_OK;
}

/* LceBconv2d with int8 output on the mcu path: the same counts and float
 * transform as ebnn_int8_lce_bconv2d_ref (m', b' with the output scale and
 * zero point folded in, double arithmetic, once per block of channels), one
 * pixel at a time through ebnn__bconv2d_row_float_mcu, then LCE's rounding. */
ebnn_status_t ebnn_int8_lce_bconv2d_mcu(const ebnn_int8_lce_bconv2d_params_t *params,
                                        const int32_t *input, int8_t *output) {
  ebnn__bgeom_t g;
  const ebnn_bconv2d_params_t *p;
  int32_t oy, ox, o0, j;
  if (params == NULL || params->bconv == NULL || input == NULL || output == NULL)
    return EBNN_ERROR_NULL_POINTER;
  p = params->bconv;
  if (p->thresholds != NULL || !(params->output_scale > 0.0f) ||
      params->output_zero_point < -128 || params->output_zero_point > 127 ||
      ebnn__bconv2d_check(p, &g) != EBNN_OK || !ebnn__bconv2d_mcu_supported(p, &g))
    return ebnn_int8_lce_bconv2d_ref(params, input, output); /* its checks, its errors */
  for (o0 = 0; o0 < p->out_c; o0 += EBNN_MCU_BLOCK) {
    float m[EBNN_MCU_BLOCK], b[EBNN_MCU_BLOCK], y[EBNN_MCU_BLOCK];
    const int32_t nb = p->out_c - o0 < EBNN_MCU_BLOCK ? p->out_c - o0 : EBNN_MCU_BLOCK;
    const double scale = (double)params->output_scale;
    for (j = 0; j < nb; ++j) {
      const float mul = p->multiplier[o0 + j];
      m[j] = (float)(-1.0 * (double)mul / scale);
      b[j] = (float)(((double)p->bias[o0 + j] + (double)g.k * (double)mul) / scale +
                     (double)params->output_zero_point);
    }
    for (oy = 0; oy < g.g.out_h; ++oy) {
      for (ox = 0; ox < g.g.out_w; ++ox) {
        int8_t *o = output + ((size_t)oy * (size_t)g.g.out_w + (size_t)ox) * (size_t)p->out_c +
                    (size_t)o0;
        ebnn__bconv2d_row_float_mcu(p, &g, input, oy, ox, ox + 1, o0, nb, m, b, y, (size_t)nb);
        for (j = 0; j < nb; ++j) o[j] = ebnn__bconv_saturate_round(y[j]);
      }
    }
  }
  return EBNN_OK;
}

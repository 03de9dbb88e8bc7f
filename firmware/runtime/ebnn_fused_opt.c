/*
 * The fused chain, kernel set "opt": ebnn_fused_conv_pool_affine_quantize_opt
 * (a conv or bconv producer, then pool, MUL/ADD stages and packing, row by
 * row). Same params, status codes and results bit for bit as the _ref kernel
 * (tests/test_runtime_kernels.py compares them on the fused grid).
 *
 * What differs is the loop order, chosen so that compilers vectorize across
 * output channels:
 *   - the float producer's rows are ebnn__opt_conv_row (ebnn_conv_opt.c),
 *     over the [tap][out_c] filter (HWIO, transposed at export time; else
 *     transposed per call into a stack buffer of EBNN_OPT_FILTER_ELEMS);
 *   - LceBconv2d: cnt[j] += popcount(x[k] ^ w[k][j]) for 16-64 channels
 *     over filter_t (integer, any order is exact; AVX-512 VPOPCNTDQ
 *     intrinsics when the build enables them, plain 16-lane loops elsewhere);
 *   - pool, MUL/ADD stages and packing run on 16 channels in registers
 *     (channels % 16 == 0), else as branch-free channel loops.
 * -DEBNN_OPT_PLAIN_C disables GNU vectors and intrinsics (plain C loops).
 * Whatever the fast paths do not cover (windows over 512 floats or 256
 * words, more than EBNN_OPT_MAX_OC channels, a filter over the stack
 * buffer, LceBconv2d same-zero padding) is delegated to the _ref kernel or
 * row routine, so every params set gives the reference result.
 *
 * Stack: a 16 KiB transposed-filter buffer plus about 5 KiB: meant for
 * hosts (x86-64 / AArch64 builds), not for 32 KiB microcontrollers.
 */
#include <float.h>

#include "ebnn.h"
#include "ebnn_internal.h"
#include "ebnn_opt_internal.h"

/* Pack n floats: bit = (x < 0), LSB first (as ebnn__pack_pixel). */
static void opt_pack(const float *x, int32_t channels, int32_t *out) {
  int32_t w, b;
  const int32_t words = EBNN_PACKED_WORDS(channels);
  for (w = 0; w < words; ++w) {
    const int32_t base = w * 32;
    const int32_t n = (channels - base) < 32 ? (channels - base) : 32;
    uint32_t word = 0u;
    if (n == 32) {
#if EBNN_OPT_AVX512_POPCNT
      /* vcmpps LT_OQ: false for NaN and for -0.0f, as (x < 0.0f) */
      const __m512 zero = _mm512_setzero_ps();
      word = (uint32_t)_mm512_cmp_ps_mask(_mm512_loadu_ps(x + base), zero, _CMP_LT_OQ) |
             ((uint32_t)_mm512_cmp_ps_mask(_mm512_loadu_ps(x + base + 16), zero, _CMP_LT_OQ)
              << 16);
#else
      for (b = 0; b < 32; ++b) word |= (uint32_t)(x[base + b] < 0.0f) << b;
#endif
    } else {
      for (b = 0; b < n; ++b) word |= (uint32_t)(x[base + b] < 0.0f) << b;
    }
    out[w] = (int32_t)word;
  }
}

/* MUL/ADD stages on one pixel in place (ebnn__mul1 / ebnn__add1 split into
 * the operation then the activation: the same float results), then pack. */
static void opt_finish_pixel(const ebnn_fused_params_t *p, float *px,
                             int32_t channels, int32_t *out) {
  int32_t s, c;
  for (s = 0; s < p->n_stages; ++s) {
    const ebnn_fused_stage_t *st = &p->stages[s];
    const float *v = st->values;
    if (st->kind == EBNN_STAGE_MUL) {
      if (st->size == 1) {
        const float v0 = v[0];
        for (c = 0; c < channels; ++c) px[c] = px[c] * v0;
      } else {
        for (c = 0; c < channels; ++c) px[c] = px[c] * v[c];
      }
    } else {
      if (st->size == 1) {
        const float v0 = v[0];
        for (c = 0; c < channels; ++c) px[c] = px[c] + v0;
      } else {
        for (c = 0; c < channels; ++c) px[c] = px[c] + v[c];
      }
    }
    if (st->activation != EBNN_ACT_NONE) ebnn__opt_act(px, channels, st->activation);
  }
  opt_pack(px, channels, out);
}

/* MAX_POOL_2D of one output pixel (as ebnn__maxpool_pixel: start at
 * -FLT_MAX, out = out < v ? v : out in window order, then the activation). */
static void opt_maxpool_pixel(const float *rows, int32_t width, int32_t channels,
                              int32_t y0, int32_t y1, int32_t x0, int32_t x1,
                              ebnn_activation_t act, float *out) {
  int32_t c, y, x;
  for (c = 0; c < channels; ++c) out[c] = -FLT_MAX;
  for (y = y0; y < y1; ++y) {
    for (x = x0; x < x1; ++x) {
      const float *px =
          rows + ((size_t)y * (size_t)width + (size_t)x) * (size_t)channels;
      for (c = 0; c < channels; ++c) out[c] = out[c] < px[c] ? px[c] : out[c];
    }
  }
  if (act != EBNN_ACT_NONE) ebnn__opt_act(out, channels, act);
}

#if EBNN_OPT_VEC
typedef int32_t ebnn_v16i __attribute__((vector_size(64)));

/* Lane select m ? b : a for a comparison mask m (-1 / 0 lanes). Vectors go
 * through macros and pointers, never by value (no psABI differences). */
#define EBNN_V16_SEL(m, a, b) \
  ((ebnn_v16f)(((m) & (ebnn_v16i)(b)) | (~(m) & (ebnn_v16i)(a))))

/* ebnn__act lane by lane: x < lo ? lo : x, then x > hi ? hi : x. */
static void opt_v16_act(ebnn_v16f *x, ebnn_activation_t act) {
  const ebnn_v16f zero = EBNN_V16F_SPLAT(0.0f);
  const ebnn_v16f m1 = EBNN_V16F_SPLAT(-1.0f);
  const ebnn_v16f p1 = EBNN_V16F_SPLAT(1.0f);
  const ebnn_v16f six = EBNN_V16F_SPLAT(6.0f);
  ebnn_v16f v = *x;
  switch (act) {
    case EBNN_ACT_RELU:
      v = EBNN_V16_SEL(v < zero, v, zero);
      break;
    case EBNN_ACT_RELU_N1_TO_1:
      v = EBNN_V16_SEL(v < m1, v, m1);
      v = EBNN_V16_SEL(v > p1, v, p1);
      break;
    case EBNN_ACT_RELU6:
      v = EBNN_V16_SEL(v < zero, v, zero);
      v = EBNN_V16_SEL(v > six, v, six);
      break;
    default:
      break;
  }
  *x = v;
}

/* bit i = (x[i] < 0.0f) (false for NaN and -0.0f) */
static uint32_t opt_v16_signbits(const ebnn_v16f *x) {
#if EBNN_OPT_AVX512_POPCNT
  return (uint32_t)_mm512_cmp_ps_mask((__m512)*x, _mm512_setzero_ps(), _CMP_LT_OQ);
#else
  const ebnn_v16f zero = EBNN_V16F_SPLAT(0.0f);
  const ebnn_v16i bit = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192,
                         16384, 32768};
  const ebnn_v16i m = (*x < zero) & bit;
  uint32_t word = 0u;
  int i;
  for (i = 0; i < 16; ++i) word |= (uint32_t)m[i];
  return word;
#endif
}

/* One output pixel of the fused chain for channels % 16 == 0, 16 channels
 * at a time in registers: max pool over rows [y0, y1) x columns [x0, x1)
 * of the producer rows (pooled != 0; else the producer pixel at x0 of row
 * 0 as is), pool activation, the MUL/ADD stages with their activations,
 * pack. Per channel the reference's operations in the reference's order. */
static void opt_pool_finish_v16(const ebnn_fused_params_t *p, const float *rows,
                                int32_t width, int32_t channels, int pooled,
                                int32_t y0, int32_t y1, int32_t x0, int32_t x1,
                                ebnn_activation_t pool_act, int32_t *out) {
  int32_t c0, y, x, s;
  uint32_t word = 0u;
  for (c0 = 0; c0 < channels; c0 += 16) {
    ebnn_v16f v;
    if (pooled) {
      v = (ebnn_v16f)EBNN_V16F_SPLAT(-FLT_MAX);
      for (y = y0; y < y1; ++y)
        for (x = x0; x < x1; ++x) {
          const ebnn_v16f t = EBNN_V16F_LOAD(rows + ((size_t)y * (size_t)width + (size_t)x) *
                                                        (size_t)channels + (size_t)c0);
          v = EBNN_V16_SEL(v < t, v, t); /* v < t ? t : v */
        }
      if (pool_act != EBNN_ACT_NONE) opt_v16_act(&v, pool_act);
    } else {
      v = EBNN_V16F_LOAD(rows + (size_t)x0 * (size_t)channels + (size_t)c0);
    }
    for (s = 0; s < p->n_stages; ++s) {
      const ebnn_fused_stage_t *st = &p->stages[s];
      ebnn_v16f b;
      if (st->size == 1) {
        const float b0 = st->values[0];
        const ebnn_v16f bs = EBNN_V16F_SPLAT(b0);
        b = bs;
      } else {
        b = EBNN_V16F_LOAD(st->values + c0);
      }
      if (st->kind == EBNN_STAGE_MUL) {
        v = v * b;
      } else {
        v = v + b;
      }
      if (st->activation != EBNN_ACT_NONE) opt_v16_act(&v, st->activation);
    }
    word |= opt_v16_signbits(&v) << (c0 & 31);
    if ((c0 & 31) == 16 || c0 + 16 == channels) {
      out[c0 / 32] = (int32_t)word;
      word = 0u;
    }
  }
}
#endif

/* ---------------------------------------------------------------------- */
/* LceBconv2d over a [K words][out_c] filter                               */
/* ---------------------------------------------------------------------- */

typedef struct {
  const ebnn_bconv2d_params_t *p;
  const ebnn__bgeom_t *g;
  const uint32_t *wt; /* [filt_words][out_c] */
  size_t filt_words;
  float m[EBNN_OPT_MAX_OC], b[EBNN_OPT_MAX_OC]; /* float output transform */
} opt_bconv_t;

/* Whether the fast bconv path applies (no same-zero correction, window up
 * to EBNN_OPT_PATCH_WORDS words, filter fits buf); transposes the filter and,
 * for float output, computes m' and b' exactly as the reference does. */
static int opt_bconv_prepare(const ebnn_bconv2d_params_t *p,
                             const ebnn__bgeom_t *g, uint32_t *buf,
                             opt_bconv_t *ctx) {
  const size_t fw = (size_t)p->filter_h * (size_t)p->filter_w * (size_t)g->words_in;
  const size_t oc = (size_t)p->out_c;
  size_t o, k;
  if (g->same_zero || fw > EBNN_OPT_PATCH_WORDS || p->out_c > EBNN_OPT_MAX_OC)
    return 0;
  if (p->filter_t != NULL) {
    ctx->wt = (const uint32_t *)(const void *)p->filter_t;
  } else {
    if (fw * oc > EBNN_OPT_FILTER_ELEMS) return 0;
    for (o = 0; o < oc; ++o)
      for (k = 0; k < fw; ++k) buf[k * oc + o] = (uint32_t)p->filter[o * fw + k];
    ctx->wt = buf;
  }
  ctx->p = p;
  ctx->g = g;
  ctx->filt_words = fw;
  if (p->thresholds == NULL) {
    for (o = 0; o < oc; ++o) {
      const float mul = p->multiplier[o];
      ctx->m[o] = (float)(-1.0 * (double)mul);
      ctx->b[o] = (float)((double)p->bias[o] + (double)g->k * (double)mul);
    }
  }
  return 1;
}

/* XOR-popcounts of every output channel at pixel (oy, ox): the window is
 * gathered as the reference does (0 words = +1 for taps outside). */
static void opt_bconv_counts(const opt_bconv_t *ctx, const int32_t *input,
                             int32_t y_origin, int32_t x_origin, int32_t *cnt) {
  uint32_t patch[EBNN_OPT_PATCH_WORDS];
  const uint32_t *src[EBNN_OPT_PATCH_WORDS]; /* filter row fy: row_len words */
  const ebnn_bconv2d_params_t *p = ctx->p;
  const int32_t words = ctx->g->words_in;
  const int32_t oc = p->out_c;
  const size_t row_len = (size_t)p->filter_w * (size_t)words;
  int32_t fy, fx, w, o, j;
  size_t t;
  if (p->dilation_w == 1 && x_origin >= 0 && x_origin + p->filter_w <= p->in_w &&
      y_origin >= 0 && y_origin + (p->filter_h - 1) * p->dilation_h < p->in_h) {
    /* window inside the input: its rows are contiguous runs of the input */
    for (fy = 0; fy < p->filter_h; ++fy)
      src[fy] = (const uint32_t *)(const void *)(input +
                ((size_t)(y_origin + fy * p->dilation_h) * (size_t)p->in_w +
                 (size_t)x_origin) * (size_t)words);
  } else {
    /* gathered as the reference does (0 words = +1 for taps outside) */
    uint32_t *dst = patch;
    for (fy = 0; fy < p->filter_h; ++fy) {
      const int32_t iy = y_origin + fy * p->dilation_h;
      src[fy] = dst;
      for (fx = 0; fx < p->filter_w; ++fx) {
        const int32_t ix = x_origin + fx * p->dilation_w;
        if (iy >= 0 && iy < p->in_h && ix >= 0 && ix < p->in_w) {
          const int32_t *px =
              input + ((size_t)iy * (size_t)p->in_w + (size_t)ix) * (size_t)words;
          if (words == 1) {
            dst[0] = (uint32_t)px[0];
          } else {
            for (w = 0; w < words; ++w) dst[w] = (uint32_t)px[w];
          }
        } else {
          for (w = 0; w < words; ++w) dst[w] = 0u;
        }
        dst += words;
      }
    }
  }
  o = 0;
#if EBNN_OPT_AVX512_POPCNT
  for (; o + 64 <= oc; o += 64) {
    __m512i c0 = _mm512_setzero_si512(), c1 = c0, c2 = c0, c3 = c0;
    const uint32_t *wk = ctx->wt + (size_t)o;
    for (fy = 0; fy < p->filter_h; ++fy) {
      const uint32_t *s = src[fy];
      for (t = 0; t < row_len; ++t, wk += oc) {
        const __m512i x = _mm512_set1_epi32((int)s[t]);
        c0 = _mm512_add_epi32(c0, _mm512_popcnt_epi32(_mm512_xor_si512(x, _mm512_loadu_si512((const void *)wk))));
        c1 = _mm512_add_epi32(c1, _mm512_popcnt_epi32(_mm512_xor_si512(x, _mm512_loadu_si512((const void *)(wk + 16)))));
        c2 = _mm512_add_epi32(c2, _mm512_popcnt_epi32(_mm512_xor_si512(x, _mm512_loadu_si512((const void *)(wk + 32)))));
        c3 = _mm512_add_epi32(c3, _mm512_popcnt_epi32(_mm512_xor_si512(x, _mm512_loadu_si512((const void *)(wk + 48)))));
      }
    }
    _mm512_storeu_si512((void *)(cnt + o), c0);
    _mm512_storeu_si512((void *)(cnt + o + 16), c1);
    _mm512_storeu_si512((void *)(cnt + o + 32), c2);
    _mm512_storeu_si512((void *)(cnt + o + 48), c3);
  }
  for (; o + 16 <= oc; o += 16) {
    __m512i c0 = _mm512_setzero_si512();
    const uint32_t *wk = ctx->wt + (size_t)o;
    for (fy = 0; fy < p->filter_h; ++fy) {
      const uint32_t *s = src[fy];
      for (t = 0; t < row_len; ++t, wk += oc) {
        const __m512i x = _mm512_set1_epi32((int)s[t]);
        c0 = _mm512_add_epi32(c0, _mm512_popcnt_epi32(_mm512_xor_si512(x, _mm512_loadu_si512((const void *)wk))));
      }
    }
    _mm512_storeu_si512((void *)(cnt + o), c0);
  }
#endif
  for (; o + EBNN_OPT_LANES <= oc; o += EBNN_OPT_LANES) {
    int32_t acc[EBNN_OPT_LANES];
    const uint32_t *wk = ctx->wt + (size_t)o;
    for (j = 0; j < EBNN_OPT_LANES; ++j) acc[j] = 0;
    for (fy = 0; fy < p->filter_h; ++fy) {
      const uint32_t *s = src[fy];
      for (t = 0; t < row_len; ++t, wk += oc) {
        const uint32_t x = s[t];
        for (j = 0; j < EBNN_OPT_LANES; ++j) acc[j] += EBNN_POPCOUNT32(x ^ wk[j]);
      }
    }
    for (j = 0; j < EBNN_OPT_LANES; ++j) cnt[o + j] = acc[j];
  }
  for (; o < oc; ++o) {
    int32_t total = 0;
    const uint32_t *wk = ctx->wt + (size_t)o;
    for (fy = 0; fy < p->filter_h; ++fy) {
      const uint32_t *s = src[fy];
      for (t = 0; t < row_len; ++t, wk += oc) total += EBNN_POPCOUNT32(s[t] ^ wk[0]);
    }
    cnt[o] = total;
  }
}

/* Float output row (no same-zero: the reference's transform line by line). */
static void opt_bconv_row_float(const opt_bconv_t *ctx, const int32_t *input,
                                int32_t oy, float *out_row) {
  int32_t cnt[EBNN_OPT_MAX_OC];
  const ebnn_bconv2d_params_t *p = ctx->p;
  const ebnn__bgeom_t *g = ctx->g;
  const int32_t oc = p->out_c;
  const int32_t cmin = g->clamp_min, cmax = g->clamp_max;
  const int32_t y_origin = oy * p->stride_h - g->g.pad_top;
  int32_t ox, o;
  for (ox = 0; ox < g->g.out_w; ++ox) {
    float *out = out_row + (size_t)ox * (size_t)oc;
    opt_bconv_counts(ctx, input, y_origin, ox * p->stride_w - g->g.pad_left, cnt);
    for (o = 0; o < oc; ++o) {
      int32_t x = 2 * cnt[o];
      float y;
      x = x > cmax ? cmax : x;
      x = x < cmin ? cmin : x;
      y = (float)x * ctx->m[o];
      y = y + ctx->b[o];
      out[o] = y;
    }
  }
}

/* ebnn_bconv2d_opt: ebnn_bconv_opt.c (a register-tiled packed binary GEMM). */

/* ---------------------------------------------------------------------- */
/* Fused chain                                                             */
/* ---------------------------------------------------------------------- */

ebnn_status_t ebnn_fused_conv_pool_affine_quantize_opt(
    const ebnn_fused_params_t *params, const void *input, int32_t *output,
    void *scratch, size_t scratch_bytes) {
  union {
    float f[EBNN_OPT_FILTER_ELEMS];
    uint32_t u[EBNN_OPT_FILTER_ELEMS];
  } buf;
  opt_bconv_t bctx;
  const float *conv_wt = NULL;
  ebnn__fused_plan_t pl;
  ebnn_status_t st;
  float *rows = (float *)scratch;
  int32_t oy, ox, r;
  const ebnn_fused_params_t *p = params;
  bctx.p = NULL; /* set by opt_bconv_prepare (GCC cannot see it at -O3) */
  bctx.wt = NULL;
  if (p == NULL || input == NULL || output == NULL || scratch == NULL)
    return EBNN_ERROR_NULL_POINTER;
  st = ebnn__fused_plan(p, &pl);
  if (st != EBNN_OK) return st;
  if (scratch_bytes < pl.scratch_floats * sizeof(float))
    return EBNN_ERROR_SCRATCH_TOO_SMALL;
  if (p->producer == EBNN_PRODUCER_CONV2D) {
    if (!ebnn__opt_conv_prepare(p->conv, buf.f, &conv_wt))
      return ebnn_fused_conv_pool_affine_quantize_ref(p, input, output, scratch,
                                                      scratch_bytes);
  } else {
    if (!opt_bconv_prepare(p->bconv, &pl.bconv_g, buf.u, &bctx))
      return ebnn_fused_conv_pool_affine_quantize_ref(p, input, output, scratch,
                                                      scratch_bytes);
  }
  {
    const int32_t words = EBNN_PACKED_WORDS(pl.channels);
    const size_t row_floats = (size_t)pl.prod_w * (size_t)pl.channels;
    const int32_t n_out_rows = p->has_pool ? pl.out_h : pl.out_h;
    float *px = rows;
    if (p->has_pool) {
      const size_t n_rows_max = (pl.scratch_floats - (size_t)pl.channels) / row_floats;
      px = rows + n_rows_max * row_floats;
    }
    for (oy = 0; oy < n_out_rows; ++oy) {
      int32_t y0 = oy, y1 = oy + 1;
      if (p->has_pool)
        ebnn__window(oy, pl.pool.stride_h, pl.pool_g.pad_top, pl.pool.filter_h,
                     pl.pool.in_h, &y0, &y1);
      for (r = y0; r < y1; ++r) {
        float *dst = rows + (size_t)(r - y0) * row_floats;
        if (p->producer == EBNN_PRODUCER_CONV2D) {
          ebnn__opt_conv_row(p->conv, &pl.conv_g, conv_wt, (const float *)input, r, dst);
        } else {
          opt_bconv_row_float(&bctx, (const int32_t *)input, r, dst);
        }
      }
      for (ox = 0; ox < pl.out_w; ++ox) {
        int32_t *out = output + ((size_t)oy * (size_t)pl.out_w + (size_t)ox) * (size_t)words;
        int32_t x0 = ox, x1 = ox + 1;
        if (p->has_pool)
          ebnn__window(ox, pl.pool.stride_w, pl.pool_g.pad_left, pl.pool.filter_w,
                       pl.pool.in_w, &x0, &x1);
#if EBNN_OPT_VEC
        if ((pl.channels % 16) == 0) {
          opt_pool_finish_v16(p, rows, pl.prod_w, pl.channels, p->has_pool, 0, y1 - y0, x0,
                              x1, p->has_pool ? pl.pool.activation : EBNN_ACT_NONE, out);
          continue;
        }
#endif
        if (p->has_pool) {
          opt_maxpool_pixel(rows, pl.prod_w, pl.channels, 0, y1 - y0, x0, x1,
                            pl.pool.activation, px);
          opt_finish_pixel(p, px, pl.channels, out);
        } else {
          opt_finish_pixel(p, rows + (size_t)ox * (size_t)pl.channels, pl.channels, out);
        }
      }
    }
  }
  return EBNN_OK;
}


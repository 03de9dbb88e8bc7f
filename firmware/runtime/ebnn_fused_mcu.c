/*
 * Fused producer -> MAX_POOL_2D -> MUL/ADD stages -> LceQuantize, kernel set
 * "mcu". Same params, statuses and output bits as
 * ebnn_fused_conv_pool_affine_quantize_ref; each output bit comes from the
 * same float operations in the same order:
 *
 * - LceBconv2d producer: output channels in blocks of EBNN_MCU_BLOCK (LCE's
 *   m', b' computed once per call), only the producer columns that some
 *   pool window reads, rows through ebnn__bconv2d_row_float_mcu into the
 *   scratch, then pool, stages and packing per channel.
 * - CONV_2D producer with one input channel and a 3x3 filter (an image
 *   stem): channel-outer, the nine weights, the bias and the stage values
 *   stay in registers, and every conv output under a pool window is summed
 *   straight from the input in _ref's tap order (fy, fx), from +0.0f, then
 *   the bias. In the common chain (no activations, a 2x2 pool of stride 2,
 *   MUL then ADD, a bias) a pooled pixel reads its 4x4 input block once and
 *   the +0.0f start is dropped when the bias is not -0.0f: the two sums can
 *   differ only when every product is -0.0f (-0.0f against +0.0f), and
 *   adding such a bias gives the same bits either way.
 *
 * Everything else (no pool, same-zero LceBconv2d, other conv shapes, longer
 * filters) is delegated to the _ref kernel.
 */
#include <float.h>
#include <string.h>

#include "ebnn.h"
#include "ebnn_internal.h"
#include "ebnn_mcu_internal.h"

#if defined(__GNUC__)
#define EBNN_MCU_NOINLINE __attribute__((noinline))
#else
#define EBNN_MCU_NOINLINE
#endif

/* Pool, pool activation, stages and the sign of one channel's value. */
typedef struct {
  int32_t n_stages;
  ebnn_stage_kind_t kind[EBNN_FUSED_MAX_STAGES];
  ebnn_activation_t act[EBNN_FUSED_MAX_STAGES];
  float value[EBNN_FUSED_MAX_STAGES];
  ebnn_activation_t pool_act;
} mcu_finish_t;

static void mcu_finish_init(const ebnn_fused_params_t *p, int32_t c,
                            mcu_finish_t *f) {
  int32_t s;
  f->n_stages = p->n_stages;
  f->pool_act = p->pool.activation;
  for (s = 0; s < p->n_stages; ++s) {
    const ebnn_fused_stage_t *st = &p->stages[s];
    f->kind[s] = st->kind;
    f->act[s] = st->activation;
    f->value[s] = st->values[st->size == 1 ? 0 : c];
  }
}

/* 1 if the pooled value v ends negative (the LceQuantize bit). */
static EBNN_MCU_NOINLINE uint32_t mcu_finish(const mcu_finish_t *f, float v) {
  int32_t s;
  if (f->pool_act != EBNN_ACT_NONE) v = ebnn__act(v, f->pool_act);
  for (s = 0; s < f->n_stages; ++s) {
    if (f->kind[s] == EBNN_STAGE_MUL)
      v = ebnn__mul1(v, f->value[s], f->act[s]);
    else
      v = ebnn__add1(v, f->value[s], f->act[s]);
  }
  return v < 0.0f ? 1u : 0u;
}

EBNN_INLINE float mcu_max(float acc, float v) { return acc < v ? v : acc; }

/* ------------------------------------------------------------ bconv producer */

/* Pool, stages and bits of one pooled row for channels o0 .. o0 + nb - 1,
 * from n_rows producer rows in buf ([row][x - xlo][nb]). */
static void mcu_bconv_pool_row(const ebnn_fused_params_t *p, const ebnn__fused_plan_t *pl,
                               const float *buf, size_t row_floats, int32_t n_rows,
                               int32_t xlo, int32_t o0, int32_t nb, int32_t *row) {
  const int32_t words = EBNN_PACKED_WORDS(pl->channels);
  const int mul_add = pl->pool.activation == EBNN_ACT_NONE && p->n_stages == 2 &&
                      p->stages[0].kind == EBNN_STAGE_MUL && p->stages[1].kind == EBNN_STAGE_ADD &&
                      p->stages[0].activation == EBNN_ACT_NONE &&
                      p->stages[1].activation == EBNN_ACT_NONE;
  /* 2x2 windows of stride 2 from column 0, whole in every row */
  const int pool2 = n_rows == 2 && pl->pool.filter_w == 2 && pl->pool.stride_w == 2 &&
                    pl->pool_g.pad_left == 0 && 2 * pl->out_w <= pl->pool.in_w;
  const size_t step = (size_t)nb;
  int32_t ox, j, y, x;
  for (ox = 0; ox < pl->out_w; ++ox)
    for (j = o0 / 32; j < (o0 + nb + 31) / 32; ++j) row[(size_t)ox * (size_t)words + (size_t)j] = 0;
  for (j = 0; j < nb; ++j) {
    mcu_finish_t f;
    const uint32_t bit = (uint32_t)1u << ((o0 + j) % 32);
    int32_t *dst = row + (o0 + j) / 32;
    mcu_finish_init(p, o0 + j, &f);
    if (mul_add && pool2) {
      const float sm = f.value[0], sa = f.value[1];
      const float *r0 = buf + (size_t)j, *r1 = r0 + row_floats;
      for (ox = 0; ox < pl->out_w; ++ox, dst += words, r0 += 2 * step, r1 += 2 * step) {
        float v = mcu_max(-FLT_MAX, r0[0]);
        v = mcu_max(v, r0[step]);
        v = mcu_max(v, r1[0]);
        v = mcu_max(v, r1[step]);
        v = v * sm;
        v = v + sa;
        if (v < 0.0f) *dst = (int32_t)((uint32_t)*dst | bit);
      }
      continue;
    }
    for (ox = 0; ox < pl->out_w; ++ox, dst += words) {
      int32_t x0, x1;
      float v = -FLT_MAX;
      ebnn__window(ox, pl->pool.stride_w, pl->pool_g.pad_left, pl->pool.filter_w,
                   pl->pool.in_w, &x0, &x1);
      for (y = 0; y < n_rows; ++y) {
        const float *src = buf + (size_t)y * row_floats + (size_t)j;
        for (x = x0; x < x1; ++x) v = mcu_max(v, src[(size_t)(x - xlo) * step]);
      }
      if (mcu_finish(&f, v)) *dst = (int32_t)((uint32_t)*dst | bit);
    }
  }
}

static EBNN_MCU_NOINLINE void mcu_fused_bconv(const ebnn_fused_params_t *p,
                                              const ebnn__fused_plan_t *pl,
                                              const int32_t *input, int32_t *output,
                                              float *buf) {
  const ebnn_bconv2d_params_t *bp = p->bconv;
  const ebnn__bgeom_t *g = &pl->bconv_g;
  const int32_t words = EBNN_PACKED_WORDS(pl->channels);
  int32_t xlo, xhi, unused, o0, oy, r;
  /* producer columns read by some pool window */
  ebnn__window(0, pl->pool.stride_w, pl->pool_g.pad_left, pl->pool.filter_w,
               pl->pool.in_w, &xlo, &unused);
  ebnn__window(pl->out_w - 1, pl->pool.stride_w, pl->pool_g.pad_left,
               pl->pool.filter_w, pl->pool.in_w, &unused, &xhi);
  for (o0 = 0; o0 < pl->channels; o0 += EBNN_MCU_BLOCK) {
    float m[EBNN_MCU_BLOCK], b[EBNN_MCU_BLOCK];
    const int32_t nb =
        pl->channels - o0 < EBNN_MCU_BLOCK ? pl->channels - o0 : EBNN_MCU_BLOCK;
    const size_t row_floats = (size_t)(xhi - xlo) * (size_t)nb;
    ebnn__bconv2d_fold_mcu(bp, g, o0, nb, m, b);
    for (oy = 0; oy < pl->out_h; ++oy) {
      int32_t y0, y1;
      ebnn__window(oy, pl->pool.stride_h, pl->pool_g.pad_top, pl->pool.filter_h,
                   pl->pool.in_h, &y0, &y1);
      for (r = y0; r < y1; ++r)
        ebnn__bconv2d_row_float_mcu(bp, g, input, r, xlo, xhi, o0, nb, m, b,
                                    buf + (size_t)(r - y0) * row_floats, (size_t)nb);
      mcu_bconv_pool_row(p, pl, buf, row_floats, y1 - y0, xlo, o0, nb,
                         output + (size_t)oy * (size_t)pl->out_w * (size_t)words);
    }
  }
}

/* ------------------------------------------------------------- conv producer */

/* A 3x3 conv with one input channel: the case handled here. */
static int mcu_conv_stem(const ebnn_conv2d_params_t *c) {
  return c->in_c == 1 && c->filter_h == 3 && c->filter_w == 3 &&
         c->dilation_h == 1 && c->dilation_w == 1;
}

typedef struct {
  float w0, w1, w2, w3, w4, w5, w6, w7, w8;
  float bias;
} mcu_stem_w_t;

/* Nine products in tap order; with_zero: from +0.0f as _ref, else from the
 * first product (only when a non-(-0.0f) bias follows). Then the bias and
 * the conv's activation. */
EBNN_INLINE float mcu_stem_sum(const mcu_stem_w_t *w, int with_zero, int has_bias,
                               ebnn_activation_t act, float x0, float x1, float x2,
                               float x3, float x4, float x5, float x6, float x7,
                               float x8) {
  float t = x0 * w->w0;
  if (with_zero) t = 0.0f + t;
  t += x1 * w->w1;
  t += x2 * w->w2;
  t += x3 * w->w3;
  t += x4 * w->w4;
  t += x5 * w->w5;
  t += x6 * w->w6;
  t += x7 * w->w7;
  t += x8 * w->w8;
  if (has_bias) t += w->bias;
  return ebnn__act(t, act);
}

/* Conv output (cy, cx) with taps outside the input read as 0.0f, as the
 * _ref patch does. */
static EBNN_MCU_NOINLINE float mcu_stem_at(const ebnn_conv2d_params_t *c,
                                            const ebnn__geom_t *g, const float *in,
                                            const mcu_stem_w_t *w, int with_zero,
                                            int has_bias, int32_t cy, int32_t cx) {
  float v[9];
  int32_t fy, fx;
  const int32_t iy0 = cy * c->stride_h - g->pad_top;
  const int32_t ix0 = cx * c->stride_w - g->pad_left;
  if (iy0 >= 0 && ix0 >= 0 && iy0 + 3 <= c->in_h && ix0 + 3 <= c->in_w) {
    const float *r0 = in + (size_t)iy0 * (size_t)c->in_w + (size_t)ix0;
    const float *r1 = r0 + c->in_w, *r2 = r1 + c->in_w;
    return mcu_stem_sum(w, with_zero, has_bias, c->activation, r0[0], r0[1], r0[2],
                        r1[0], r1[1], r1[2], r2[0], r2[1], r2[2]);
  }
  for (fy = 0; fy < 3; ++fy) {
    const int32_t iy = iy0 + fy;
    for (fx = 0; fx < 3; ++fx) {
      const int32_t ix = ix0 + fx;
      v[fy * 3 + fx] = (iy >= 0 && iy < c->in_h && ix >= 0 && ix < c->in_w)
                           ? in[(size_t)iy * (size_t)c->in_w + (size_t)ix]
                           : 0.0f;
    }
  }
  return mcu_stem_sum(w, with_zero, has_bias, c->activation, v[0], v[1], v[2], v[3],
                      v[4], v[5], v[6], v[7], v[8]);
}

static EBNN_MCU_NOINLINE void mcu_stem_channel(const ebnn_fused_params_t *p,
                                               const ebnn__fused_plan_t *pl, const float *in,
                                               int32_t o, const mcu_stem_w_t *w,
                                               int with_zero, int has_bias,
                                               int32_t *output) {
  const ebnn_conv2d_params_t *c = p->conv;
  const ebnn__geom_t *g = &pl->conv_g;
  const int32_t words = EBNN_PACKED_WORDS(pl->channels);
  const uint32_t bit = (uint32_t)1u << (o % 32);
  int32_t *dst = output + o / 32;
  mcu_finish_t f;
  int32_t oy, ox, y, x;
  mcu_finish_init(p, o, &f);
  for (oy = 0; oy < pl->out_h; ++oy) {
    int32_t y0, y1;
    ebnn__window(oy, pl->pool.stride_h, pl->pool_g.pad_top, pl->pool.filter_h,
                 pl->pool.in_h, &y0, &y1);
    for (ox = 0; ox < pl->out_w; ++ox, dst += words) {
      int32_t x0, x1;
      float v;
      ebnn__window(ox, pl->pool.stride_w, pl->pool_g.pad_left, pl->pool.filter_w,
                   pl->pool.in_w, &x0, &x1);
      v = -FLT_MAX;
      for (y = y0; y < y1; ++y)
        for (x = x0; x < x1; ++x)
          v = mcu_max(v, mcu_stem_at(c, g, in, w, with_zero, has_bias, y, x));
      if (mcu_finish(&f, v)) *dst = (int32_t)((uint32_t)*dst | bit);
    }
  }
}

/* The stem chain as image models have it (conv without activation, 2x2
 * pool of stride 2 with no activation, then MUL and ADD without
 * activations, a bias that is not -0.0f): one channel with every operand in
 * registers; each pooled value is the same chain of float operations as
 * mcu_stem_channel performs. Pooled pixels whose window is not a 4x4 input
 * block inside the input take mcu_stem_channel's general path. */
static int mcu_stem_fast(const ebnn_fused_params_t *p, const ebnn__fused_plan_t *pl) {
  const ebnn_conv2d_params_t *c = p->conv;
  return c->activation == EBNN_ACT_NONE && c->bias != NULL && c->stride_h == 1 &&
         c->stride_w == 1 && pl->pool.filter_h == 2 && pl->pool.filter_w == 2 &&
         pl->pool.stride_h == 2 && pl->pool.stride_w == 2 &&
         pl->pool.activation == EBNN_ACT_NONE && p->n_stages == 2 &&
         p->stages[0].kind == EBNN_STAGE_MUL && p->stages[1].kind == EBNN_STAGE_ADD &&
         p->stages[0].activation == EBNN_ACT_NONE && p->stages[1].activation == EBNN_ACT_NONE;
}

/* Pooled pixels [lo, hi) along one axis whose 2x2 window is whole and
 * reads input rows (or columns) inside [0, in): a contiguous range. */
static void mcu_fast_range(int32_t n_out, int32_t pool_pad, int32_t prod, int32_t conv_pad,
                           int32_t in, int32_t *lo, int32_t *hi) {
  int32_t i, a, b;
  *lo = 0;
  *hi = 0;
  for (i = 0; i < n_out; ++i) {
    ebnn__window(i, 2, pool_pad, 2, prod, &a, &b);
    if (b - a == 2 && a - conv_pad >= 0 && a - conv_pad + 4 <= in) {
      if (*hi == 0) *lo = i;
      *hi = i + 1;
    }
  }
}

/* (not inlined: its loop gets the registers to itself) */
static EBNN_MCU_NOINLINE void mcu_stem_fast_channel(const ebnn_fused_params_t *p,
                                  const ebnn__fused_plan_t *pl, const float *in,
                                  int32_t o, const mcu_stem_w_t *w, const int32_t *range,
                                  int32_t *output) {
  const ebnn_conv2d_params_t *c = p->conv;
  const ebnn__geom_t *g = &pl->conv_g;
  const int32_t words = EBNN_PACKED_WORDS(pl->channels);
  const uint32_t bit = (uint32_t)1u << (o % 32);
  const float w0 = w->w0, w1 = w->w1, w2 = w->w2, w3 = w->w3, w4 = w->w4;
  const float w5 = w->w5, w6 = w->w6, w7 = w->w7, w8 = w->w8, bias = w->bias;
  const float sm = p->stages[0].values[p->stages[0].size == 1 ? 0 : o];
  const float sa = p->stages[1].values[p->stages[1].size == 1 ? 0 : o];
  const size_t iw = (size_t)c->in_w;
  int32_t oy, ox;
  for (oy = 0; oy < pl->out_h; ++oy) {
    int32_t *row = output + (size_t)oy * (size_t)pl->out_w * (size_t)words + o / 32;
    int32_t y0, y1, x0, x1;
    ebnn__window(oy, 2, pl->pool_g.pad_top, 2, pl->pool.in_h, &y0, &y1);
    if (oy >= range[0] && oy < range[1]) {
      /* whole rows: the 4x4 input block of each pooled pixel */
      int32_t *dst = row + (size_t)range[2] * (size_t)words;
      ebnn__window(range[2], 2, pl->pool_g.pad_left, 2, pl->pool.in_w, &x0, &x1);
      {
        const float *r0 = in + (size_t)(y0 - g->pad_top) * iw + (size_t)(x0 - g->pad_left);
        const float *r1 = r0 + iw, *r2 = r1 + iw, *r3 = r2 + iw;
        for (ox = range[2]; ox < range[3]; ++ox, dst += words, r0 += 2, r1 += 2, r2 += 2, r3 += 2) {
          const float a0 = r0[0], a1 = r0[1], a2 = r0[2], a3 = r0[3];
          const float b0 = r1[0], b1 = r1[1], b2 = r1[2], b3 = r1[3];
          const float c0 = r2[0], c1 = r2[1], c2 = r2[2], c3 = r2[3];
          const float d0 = r3[0], d1 = r3[1], d2 = r3[2], d3 = r3[3];
          float t, v = -FLT_MAX;
          /* from the first product: the bias is not -0.0f (see the file comment) */
          t = (((((((((a0 * w0 + a1 * w1) + a2 * w2) + b0 * w3) + b1 * w4) + b2 * w5) +
                   c0 * w6) + c1 * w7) + c2 * w8) + bias);
          v = mcu_max(v, t);
          t = (((((((((a1 * w0 + a2 * w1) + a3 * w2) + b1 * w3) + b2 * w4) + b3 * w5) +
                   c1 * w6) + c2 * w7) + c3 * w8) + bias);
          v = mcu_max(v, t);
          t = (((((((((b0 * w0 + b1 * w1) + b2 * w2) + c0 * w3) + c1 * w4) + c2 * w5) +
                   d0 * w6) + d1 * w7) + d2 * w8) + bias);
          v = mcu_max(v, t);
          t = (((((((((b1 * w0 + b2 * w1) + b3 * w2) + c1 * w3) + c2 * w4) + c3 * w5) +
                   d1 * w6) + d2 * w7) + d3 * w8) + bias);
          v = mcu_max(v, t);
          v = v * sm;
          v = v + sa;
          if (v < 0.0f) *dst = (int32_t)((uint32_t)*dst | bit);
        }
      }
    }
    /* the rest: windows cut by the edges */
    for (ox = 0; ox < pl->out_w; ++ox) {
      int32_t y, x;
      float v = -FLT_MAX;
      if (oy >= range[0] && oy < range[1] && ox >= range[2] && ox < range[3]) {
        ox = range[3] - 1;
        continue;
      }
      ebnn__window(ox, 2, pl->pool_g.pad_left, 2, pl->pool.in_w, &x0, &x1);
      for (y = y0; y < y1; ++y)
        for (x = x0; x < x1; ++x) v = mcu_max(v, mcu_stem_at(c, g, in, w, 0, 1, y, x));
      v = v * sm;
      v = v + sa;
      if (v < 0.0f) row[(size_t)ox * (size_t)words] = (int32_t)((uint32_t)row[(size_t)ox * (size_t)words] | bit);
    }
  }
}

static void mcu_fused_stem(const ebnn_fused_params_t *p, const ebnn__fused_plan_t *pl,
                           const float *in, int32_t *output) {
  const ebnn_conv2d_params_t *c = p->conv;
  const int hwio = c->filter_layout == EBNN_FILTER_HWIO;
  const size_t n_words =
      (size_t)pl->out_h * (size_t)pl->out_w * (size_t)EBNN_PACKED_WORDS(pl->channels);
  const int fast = mcu_stem_fast(p, pl);
  int32_t o, range[4] = {0, 0, 0, 0}; /* fast pooled rows [0, 1), columns [2, 3) */
  memset(output, 0, n_words * sizeof(int32_t));
  if (fast) {
    mcu_fast_range(pl->out_h, pl->pool_g.pad_top, pl->pool.in_h, pl->conv_g.pad_top,
                   c->in_h, &range[0], &range[1]);
    mcu_fast_range(pl->out_w, pl->pool_g.pad_left, pl->pool.in_w, pl->conv_g.pad_left,
                   c->in_w, &range[2], &range[3]);
  }
  for (o = 0; o < pl->channels; ++o) {
    mcu_stem_w_t w;
    float t[9];
    int32_t k;
    for (k = 0; k < 9; ++k)
      t[k] = hwio ? c->filter[(size_t)k * (size_t)c->out_c + (size_t)o]
                  : c->filter[(size_t)o * 9u + (size_t)k];
    w.w0 = t[0]; w.w1 = t[1]; w.w2 = t[2]; w.w3 = t[3]; w.w4 = t[4];
    w.w5 = t[5]; w.w6 = t[6]; w.w7 = t[7]; w.w8 = t[8];
    if (c->bias == NULL) {
      w.bias = 0.0f;
      mcu_stem_channel(p, pl, in, o, &w, 1, 0, output);
    } else {
      uint32_t bits;
      w.bias = c->bias[o];
      memcpy(&bits, &w.bias, sizeof bits);
      if (bits == 0x80000000u) /* -0.0f */
        mcu_stem_channel(p, pl, in, o, &w, 1, 1, output);
      else if (fast)
        mcu_stem_fast_channel(p, pl, in, o, &w, range, output);
      else
        mcu_stem_channel(p, pl, in, o, &w, 0, 1, output);
    }
  }
}

ebnn_status_t ebnn_fused_conv_pool_affine_quantize_mcu(
    const ebnn_fused_params_t *params, const void *input, int32_t *output,
    void *scratch, size_t scratch_bytes) {
  ebnn__fused_plan_t pl;
  ebnn_status_t st;
  const ebnn_fused_params_t *p = params;
  if (p == NULL || input == NULL || output == NULL || scratch == NULL)
    return EBNN_ERROR_NULL_POINTER;
  st = ebnn__fused_plan(p, &pl);
  if (st != EBNN_OK) return st;
  if (scratch_bytes < pl.scratch_floats * sizeof(float))
    return EBNN_ERROR_SCRATCH_TOO_SMALL;
  if (p->has_pool && p->producer == EBNN_PRODUCER_BCONV2D &&
      ebnn__bconv2d_mcu_supported(p->bconv, &pl.bconv_g)) {
    mcu_fused_bconv(p, &pl, (const int32_t *)input, output, (float *)scratch);
    return EBNN_OK;
  }
  if (p->has_pool && p->producer == EBNN_PRODUCER_CONV2D && mcu_conv_stem(p->conv)) {
    mcu_fused_stem(p, &pl, (const float *)input, output);
    return EBNN_OK;
  }
  return ebnn_fused_conv_pool_affine_quantize_ref(p, input, output, scratch,
                                                  scratch_bytes);
}

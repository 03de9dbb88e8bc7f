/*
 * Optimized portable-C variants of the hot kernels (kernel set "opt"):
 * ebnn_bconv2d_opt and ebnn_fused_conv_pool_affine_quantize_opt. Same params
 * structs, signatures, status codes and results bit for bit as the _ref
 * kernels (tests/test_runtime_kernels.py compares them on the LCE fixtures
 * and the fused grid).
 *
 * What differs is the loop order, chosen so that compilers vectorize across
 * output channels:
 *   - the filter is read as [tap][out_c] (float CONV_2D with filter_layout
 *     HWIO) or [tap word][out_c] (LceBconv2d's filter_t), both transposed at
 *     export time by the generator for the "opt" kernel set; without them
 *     it is transposed per call into a stack buffer (at most
 *     EBNN_OPT_FILTER_ELEMS elements);
 *   - the float conv accumulates 32 channels of 2 pixels (4 where there are
 *     32 vector registers) in GNU C vector registers: acc[j] += x[k] * w[k][j]
 *     (each lane still sums its taps in the reference order (fy, fx, c),
 *     starting at +0.0f, then adds the bias, so with -ffp-contract=off the
 *     float results are those of the reference); interior windows are read
 *     straight from the input, border windows through the reference's
 *     zero-filled patch;
 *   - LceBconv2d: cnt[j] += popcount(x[k] ^ w[k][j]) for 16-64 channels
 *     (integer, any order is exact; AVX-512 VPOPCNTDQ intrinsics when the
 *     build enables them, plain 16-lane loops elsewhere);
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

#define EBNN_OPT_MAX_OC 256
#define EBNN_OPT_FILTER_ELEMS 4096
#define EBNN_OPT_PATCH_FLOATS 512 /* = the reference's EBNN_CONV_PATCH_FLOATS */
#define EBNN_OPT_PATCH_WORDS 256  /* = the reference's EBNN_BCONV_PATCH_WORDS */
#define EBNN_OPT_LANES 16

/* GCC/Clang generic vector types (lowered to SSE/AVX/NEON or to scalars):
 * the float conv keeps 32 output channels in four 8-lane accumulators.
 * Lane-wise IEEE multiply then add, exactly the scalar operations (builds
 * use -ffp-contract=off). -DEBNN_OPT_PLAIN_C selects plain loops instead
 * (tested bit-identical as well). */
#if defined(__GNUC__) && !defined(EBNN_OPT_PLAIN_C)
#define EBNN_OPT_VEC 1
/* 32 vector registers (AVX-512, AArch64): four-pixel conv blocks */
#if defined(__AVX512F__) || defined(__aarch64__)
#define EBNN_OPT_WIDE 1
#else
#define EBNN_OPT_WIDE 0
#endif
typedef float ebnn_v8f __attribute__((vector_size(32)));
typedef float ebnn_v8f_u __attribute__((vector_size(32), aligned(4), may_alias));
#define EBNN_V8F_LOAD(ptr) (*(const ebnn_v8f_u *)(const void *)(ptr))
#define EBNN_V8F_STORE(ptr, v) (*(ebnn_v8f_u *)(void *)(ptr) = (v))
typedef float ebnn_v16f __attribute__((vector_size(64)));
typedef float ebnn_v16f_u __attribute__((vector_size(64), aligned(4), may_alias));
#define EBNN_V16F_LOAD(ptr) (*(const ebnn_v16f_u *)(const void *)(ptr))
#define EBNN_V16F_STORE(ptr, v) (*(ebnn_v16f_u *)(void *)(ptr) = (v))
#define EBNN_V16F_SPLAT(x) {x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x}
#else
#define EBNN_OPT_VEC 0
#define EBNN_OPT_WIDE 0
#endif

/* AVX-512 VPOPCNTDQ (x86 built with -march=native on a CPU that has it, or
 * -mavx512vpopcntdq): the XOR-popcount of 64 output channels at once.
 * Integer arithmetic, so any order gives the same counts. */
#if defined(__AVX512F__) && defined(__AVX512VPOPCNTDQ__) && !defined(EBNN_OPT_PLAIN_C)
#define EBNN_OPT_AVX512_POPCNT 1
#include <immintrin.h>
#else
#define EBNN_OPT_AVX512_POPCNT 0
#endif

/* ---------------------------------------------------------------------- */
/* Elementwise helpers (one branch per call, not per element)              */
/* ---------------------------------------------------------------------- */

static void opt_act(float *x, int32_t n, ebnn_activation_t act) {
  int32_t i;
  switch (act) {
    case EBNN_ACT_RELU:
      for (i = 0; i < n; ++i) x[i] = x[i] < 0.0f ? 0.0f : x[i];
      break;
    case EBNN_ACT_RELU_N1_TO_1:
      for (i = 0; i < n; ++i) {
        float v = x[i] < -1.0f ? -1.0f : x[i];
        x[i] = v > 1.0f ? 1.0f : v;
      }
      break;
    case EBNN_ACT_RELU6:
      for (i = 0; i < n; ++i) {
        float v = x[i] < 0.0f ? 0.0f : x[i];
        x[i] = v > 6.0f ? 6.0f : v;
      }
      break;
    default:
      break;
  }
}

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
    if (st->activation != EBNN_ACT_NONE) opt_act(px, channels, st->activation);
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
  if (act != EBNN_ACT_NONE) opt_act(out, channels, act);
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
/* CONV_2D row over a [K][out_c] filter                                    */
/* ---------------------------------------------------------------------- */

/* Whether the fast conv row applies; sets *wt to the [K][out_c] filter
 * (p->filter for HWIO, else buf, transposed here). */
static int opt_conv_prepare(const ebnn_conv2d_params_t *p, float *buf,
                            const float **wt) {
  const size_t k_size =
      (size_t)p->filter_h * (size_t)p->filter_w * (size_t)p->in_c;
  const size_t oc = (size_t)p->out_c;
  size_t o, k;
  if (k_size > EBNN_OPT_PATCH_FLOATS || p->out_c > EBNN_OPT_MAX_OC) return 0;
  if (p->filter_layout == EBNN_FILTER_HWIO) {
    *wt = p->filter;
    return 1;
  }
  if (k_size * oc > EBNN_OPT_FILTER_ELEMS) return 0;
  for (o = 0; o < oc; ++o)
    for (k = 0; k < k_size; ++k) buf[k * oc + o] = p->filter[o * k_size + k];
  *wt = buf;
  return 1;
}

#if EBNN_OPT_VEC
/* Four output pixels (windows at base + i * pix_step, all inside the input,
 * dilation_w 1), out_c a multiple of 32: eight independent 16-lane
 * accumulators per 32 channels (enough to hide the add latency; needs the
 * 32 vector registers of AVX-512 / AArch64 to stay in registers). */
static void opt_conv_quad32(const float *base, size_t pix_step, size_t row_step,
                            int32_t filter_h, size_t row_len, const float *wt,
                            const float *bias, int32_t oc, float *out) {
  int32_t o, fy;
  size_t t;
  for (o = 0; o < oc; o += 32) {
    const ebnn_v16f zero = EBNN_V16F_SPLAT(0.0f);
    ebnn_v16f a00 = zero, a01 = zero, a10 = zero, a11 = zero;
    ebnn_v16f a20 = zero, a21 = zero, a30 = zero, a31 = zero;
    const float *wk = wt + (size_t)o;
    for (fy = 0; fy < filter_h; ++fy) {
      const float *s0 = base + (size_t)fy * row_step;
      const float *s1 = s0 + pix_step, *s2 = s1 + pix_step, *s3 = s2 + pix_step;
      for (t = 0; t < row_len; ++t, wk += oc) {
        const float x0 = s0[t], x1 = s1[t], x2 = s2[t], x3 = s3[t];
        const ebnn_v16f x0v = EBNN_V16F_SPLAT(x0);
        const ebnn_v16f x1v = EBNN_V16F_SPLAT(x1);
        const ebnn_v16f x2v = EBNN_V16F_SPLAT(x2);
        const ebnn_v16f x3v = EBNN_V16F_SPLAT(x3);
        const ebnn_v16f w0 = EBNN_V16F_LOAD(wk), w1 = EBNN_V16F_LOAD(wk + 16);
        a00 = a00 + x0v * w0;
        a01 = a01 + x0v * w1;
        a10 = a10 + x1v * w0;
        a11 = a11 + x1v * w1;
        a20 = a20 + x2v * w0;
        a21 = a21 + x2v * w1;
        a30 = a30 + x3v * w0;
        a31 = a31 + x3v * w1;
      }
    }
    if (bias != NULL) { /* total += bias[o], as the reference, per lane */
      const ebnn_v16f b0 = EBNN_V16F_LOAD(bias + o), b1 = EBNN_V16F_LOAD(bias + o + 16);
      a00 = a00 + b0;
      a01 = a01 + b1;
      a10 = a10 + b0;
      a11 = a11 + b1;
      a20 = a20 + b0;
      a21 = a21 + b1;
      a30 = a30 + b0;
      a31 = a31 + b1;
    }
    EBNN_V16F_STORE(out + o, a00);
    EBNN_V16F_STORE(out + o + 16, a01);
    EBNN_V16F_STORE(out + oc + o, a10);
    EBNN_V16F_STORE(out + oc + o + 16, a11);
    EBNN_V16F_STORE(out + 2 * oc + o, a20);
    EBNN_V16F_STORE(out + 2 * oc + o + 16, a21);
    EBNN_V16F_STORE(out + 3 * oc + o, a30);
    EBNN_V16F_STORE(out + 3 * oc + o + 16, a31);
  }
}

/* Four output pixels as opt_conv_quad32, out_c a multiple of 16, on 8-lane
 * vectors: eight accumulators (for 16 vector registers: AVX2, SSE). Per
 * lane the reference's taps in order from +0.0f, then the bias. */
static void opt_conv_quad16(const float *base, size_t pix_step, size_t row_step,
                            int32_t filter_h, size_t row_len, const float *wt,
                            const float *bias, int32_t oc, float *out) {
  int32_t o, fy;
  size_t t;
  for (o = 0; o < oc; o += 16) {
    const ebnn_v8f zero = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    ebnn_v8f a00 = zero, a01 = zero, a10 = zero, a11 = zero;
    ebnn_v8f a20 = zero, a21 = zero, a30 = zero, a31 = zero;
    const float *wk = wt + (size_t)o;
    for (fy = 0; fy < filter_h; ++fy) {
      const float *s0 = base + (size_t)fy * row_step;
      const float *s1 = s0 + pix_step, *s2 = s1 + pix_step, *s3 = s2 + pix_step;
      for (t = 0; t < row_len; ++t, wk += oc) {
        const float x0 = s0[t], x1 = s1[t], x2 = s2[t], x3 = s3[t];
        const ebnn_v8f x0v = {x0, x0, x0, x0, x0, x0, x0, x0};
        const ebnn_v8f x1v = {x1, x1, x1, x1, x1, x1, x1, x1};
        const ebnn_v8f x2v = {x2, x2, x2, x2, x2, x2, x2, x2};
        const ebnn_v8f x3v = {x3, x3, x3, x3, x3, x3, x3, x3};
        const ebnn_v8f w0 = EBNN_V8F_LOAD(wk), w1 = EBNN_V8F_LOAD(wk + 8);
        a00 = a00 + x0v * w0;
        a01 = a01 + x0v * w1;
        a10 = a10 + x1v * w0;
        a11 = a11 + x1v * w1;
        a20 = a20 + x2v * w0;
        a21 = a21 + x2v * w1;
        a30 = a30 + x3v * w0;
        a31 = a31 + x3v * w1;
      }
    }
    if (bias != NULL) {
      const ebnn_v8f b0 = EBNN_V8F_LOAD(bias + o), b1 = EBNN_V8F_LOAD(bias + o + 8);
      a00 = a00 + b0;
      a01 = a01 + b1;
      a10 = a10 + b0;
      a11 = a11 + b1;
      a20 = a20 + b0;
      a21 = a21 + b1;
      a30 = a30 + b0;
      a31 = a31 + b1;
    }
    EBNN_V8F_STORE(out + o, a00);
    EBNN_V8F_STORE(out + o + 8, a01);
    EBNN_V8F_STORE(out + oc + o, a10);
    EBNN_V8F_STORE(out + oc + o + 8, a11);
    EBNN_V8F_STORE(out + 2 * oc + o, a20);
    EBNN_V8F_STORE(out + 2 * oc + o + 8, a21);
    EBNN_V8F_STORE(out + 3 * oc + o, a30);
    EBNN_V8F_STORE(out + 3 * oc + o + 8, a31);
  }
}

/* Two output pixels (input windows at base and base + pix_step, both inside
 * the input, dilation_w 1), out_c a multiple of 32: per 32 channels four
 * 16-lane accumulators share each filter load. Taps in the order
 * k = (fy * fw + fx) * in_c + c, as the reference. */
static void opt_conv_pair32(const float *base, size_t pix_step, size_t row_step,
                            int32_t filter_h, size_t row_len, const float *wt,
                            const float *bias, int32_t oc, float *out0,
                            float *out1) {
  int32_t o, fy;
  size_t t;
  for (o = 0; o < oc; o += 32) {
    const ebnn_v16f zero = EBNN_V16F_SPLAT(0.0f);
    ebnn_v16f a00 = zero, a01 = zero, a10 = zero, a11 = zero;
    const float *wk = wt + (size_t)o;
    for (fy = 0; fy < filter_h; ++fy) {
      const float *s0 = base + (size_t)fy * row_step;
      const float *s1 = s0 + pix_step;
      for (t = 0; t < row_len; ++t, wk += oc) {
        const float x0 = s0[t], x1 = s1[t];
        const ebnn_v16f x0v = EBNN_V16F_SPLAT(x0);
        const ebnn_v16f x1v = EBNN_V16F_SPLAT(x1);
        const ebnn_v16f w0 = EBNN_V16F_LOAD(wk), w1 = EBNN_V16F_LOAD(wk + 16);
        a00 = a00 + x0v * w0;
        a01 = a01 + x0v * w1;
        a10 = a10 + x1v * w0;
        a11 = a11 + x1v * w1;
      }
    }
    if (bias != NULL) { /* total += bias[o], as the reference, per lane */
      const ebnn_v16f b0 = EBNN_V16F_LOAD(bias + o), b1 = EBNN_V16F_LOAD(bias + o + 16);
      a00 = a00 + b0;
      a01 = a01 + b1;
      a10 = a10 + b0;
      a11 = a11 + b1;
    }
    EBNN_V16F_STORE(out0 + o, a00);
    EBNN_V16F_STORE(out0 + o + 16, a01);
    EBNN_V16F_STORE(out1 + o, a10);
    EBNN_V16F_STORE(out1 + o + 16, a11);
  }
}
#endif

/* The reference's fast path, reordered: the window is gathered into a patch
 * ([fh][fw][in_c], 0.0f for taps outside the input, as the reference does),
 * then each block of 16 channels sums patch[k] * w[k][o] over k in order. */
static void opt_conv_row(const ebnn_conv2d_params_t *p, const ebnn__geom_t *g,
                         const float *wt, const float *input, int32_t oy,
                         float *out_row) {
  float patch[EBNN_OPT_PATCH_FLOATS];
  int32_t ox, fy, fx, c, o, j;
  const int32_t oc = p->out_c;
  const int32_t y_origin = oy * p->stride_h - g->pad_top;
  const size_t k_size =
      (size_t)p->filter_h * (size_t)p->filter_w * (size_t)p->in_c;
  const int inside_rows =
      y_origin >= 0 && y_origin + (p->filter_h - 1) * p->dilation_h < p->in_h;
  (void)inside_rows;
  for (ox = 0; ox < g->out_w; ++ox) {
    const int32_t x_origin = ox * p->stride_w - g->pad_left;
    float *out = out_row + (size_t)ox * (size_t)oc;
    float *dst = patch;
    size_t k;
#if EBNN_OPT_VEC
    if (inside_rows && p->dilation_w == 1 && (oc % (EBNN_OPT_WIDE ? 32 : 16)) == 0 &&
        ox + 3 < g->out_w && x_origin >= 0 &&
        x_origin + 3 * p->stride_w + p->filter_w <= p->in_w) {
      const float *base =
          input + ((size_t)y_origin * (size_t)p->in_w + (size_t)x_origin) * (size_t)p->in_c;
      int32_t i;
      (EBNN_OPT_WIDE ? opt_conv_quad32 : opt_conv_quad16)(base, (size_t)p->stride_w * (size_t)p->in_c,
                      (size_t)p->dilation_h * (size_t)p->in_w * (size_t)p->in_c,
                      p->filter_h, (size_t)p->filter_w * (size_t)p->in_c, wt, p->bias,
                      oc, out);
      if (p->activation != EBNN_ACT_NONE) {
        for (i = 0; i < 4; ++i) opt_act(out + (size_t)i * (size_t)oc, oc, p->activation);
      }
      ox += 3;
      continue;
    }
    if (inside_rows && p->dilation_w == 1 && (oc % 32) == 0 && ox + 1 < g->out_w &&
        x_origin >= 0 && x_origin + p->stride_w + p->filter_w <= p->in_w) {
      const float *base =
          input + ((size_t)y_origin * (size_t)p->in_w + (size_t)x_origin) * (size_t)p->in_c;
      opt_conv_pair32(base, (size_t)p->stride_w * (size_t)p->in_c,
                      (size_t)p->dilation_h * (size_t)p->in_w * (size_t)p->in_c,
                      p->filter_h, (size_t)p->filter_w * (size_t)p->in_c, wt, p->bias,
                      oc, out, out + oc);
      if (p->activation != EBNN_ACT_NONE) {
        opt_act(out, oc, p->activation);
        opt_act(out + oc, oc, p->activation);
      }
      ++ox;
      continue;
    }
    /* Window inside the input, dilation_w 1, out_c a multiple of 8: read
     * the taps straight from the input rows (the same values in the same
     * order k = (fy * fw + fx) * in_c + c as the patch). */
    if (inside_rows && p->dilation_w == 1 && x_origin >= 0 &&
        x_origin + p->filter_w <= p->in_w && (oc % 8) == 0) {
      const size_t row_len = (size_t)p->filter_w * (size_t)p->in_c;
      const size_t row_step = (size_t)p->dilation_h * (size_t)p->in_w * (size_t)p->in_c;
      const float *base =
          input + ((size_t)y_origin * (size_t)p->in_w + (size_t)x_origin) * (size_t)p->in_c;
      size_t t;
      for (o = 0; o + 32 <= oc; o += 32) {
        const ebnn_v8f zero = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
        ebnn_v8f a0 = zero, a1 = zero, a2 = zero, a3 = zero;
        const float *wk = wt + (size_t)o;
        for (fy = 0; fy < p->filter_h; ++fy) {
          const float *src = base + (size_t)fy * row_step;
          for (t = 0; t < row_len; ++t, wk += oc) {
            const float x = src[t];
            const ebnn_v8f xv = {x, x, x, x, x, x, x, x};
            a0 = a0 + xv * EBNN_V8F_LOAD(wk);
            a1 = a1 + xv * EBNN_V8F_LOAD(wk + 8);
            a2 = a2 + xv * EBNN_V8F_LOAD(wk + 16);
            a3 = a3 + xv * EBNN_V8F_LOAD(wk + 24);
          }
        }
        EBNN_V8F_STORE(out + o, a0);
        EBNN_V8F_STORE(out + o + 8, a1);
        EBNN_V8F_STORE(out + o + 16, a2);
        EBNN_V8F_STORE(out + o + 24, a3);
      }
      for (; o < oc; o += 8) {
        ebnn_v8f a0 = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
        const float *wk = wt + (size_t)o;
        for (fy = 0; fy < p->filter_h; ++fy) {
          const float *src = base + (size_t)fy * row_step;
          for (t = 0; t < row_len; ++t, wk += oc) {
            const float x = src[t];
            const ebnn_v8f xv = {x, x, x, x, x, x, x, x};
            a0 = a0 + xv * EBNN_V8F_LOAD(wk);
          }
        }
        EBNN_V8F_STORE(out + o, a0);
      }
      if (p->bias != NULL) {
        for (o = 0; o < oc; ++o) out[o] = out[o] + p->bias[o];
      }
      if (p->activation != EBNN_ACT_NONE) opt_act(out, oc, p->activation);
      continue;
    }
#endif
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
    o = 0;
#if EBNN_OPT_VEC
    for (; o + 32 <= oc; o += 32) {
      const ebnn_v8f zero = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
      ebnn_v8f a0 = zero, a1 = zero, a2 = zero, a3 = zero;
      const float *w = wt + (size_t)o;
      for (k = 0; k < k_size; ++k) {
        const float x = patch[k];
        const ebnn_v8f xv = {x, x, x, x, x, x, x, x};
        const float *wk = w + k * (size_t)oc;
        a0 = a0 + xv * EBNN_V8F_LOAD(wk);
        a1 = a1 + xv * EBNN_V8F_LOAD(wk + 8);
        a2 = a2 + xv * EBNN_V8F_LOAD(wk + 16);
        a3 = a3 + xv * EBNN_V8F_LOAD(wk + 24);
      }
      EBNN_V8F_STORE(out + o, a0);
      EBNN_V8F_STORE(out + o + 8, a1);
      EBNN_V8F_STORE(out + o + 16, a2);
      EBNN_V8F_STORE(out + o + 24, a3);
    }
    for (; o + 8 <= oc; o += 8) {
      ebnn_v8f a0 = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
      const float *w = wt + (size_t)o;
      for (k = 0; k < k_size; ++k) {
        const float x = patch[k];
        const ebnn_v8f xv = {x, x, x, x, x, x, x, x};
        a0 = a0 + xv * EBNN_V8F_LOAD(w + k * (size_t)oc);
      }
      EBNN_V8F_STORE(out + o, a0);
    }
#endif
    for (; o + EBNN_OPT_LANES <= oc; o += EBNN_OPT_LANES) {
      float acc[EBNN_OPT_LANES];
      const float *w = wt + (size_t)o;
      for (j = 0; j < EBNN_OPT_LANES; ++j) acc[j] = 0.0f;
      for (k = 0; k < k_size; ++k) {
        const float xv = patch[k];
        const float *wk = w + k * (size_t)oc;
        for (j = 0; j < EBNN_OPT_LANES; ++j) acc[j] += xv * wk[j];
      }
      for (j = 0; j < EBNN_OPT_LANES; ++j) out[o + j] = acc[j];
    }
    for (; o < oc; ++o) {
      float total = 0.0f;
      for (k = 0; k < k_size; ++k) total += patch[k] * wt[k * (size_t)oc + (size_t)o];
      out[o] = total;
    }
    if (p->bias != NULL) {
      for (o = 0; o < oc; ++o) out[o] = out[o] + p->bias[o];
    }
    if (p->activation != EBNN_ACT_NONE) opt_act(out, oc, p->activation);
  }
}

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
    if (!opt_conv_prepare(p->conv, buf.f, &conv_wt))
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
          opt_conv_row(p->conv, &pl.conv_g, conv_wt, (const float *)input, r, dst);
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

/* ---------------------------------------------------------------------- */
/* CONV_2D                                                                 */
/* ---------------------------------------------------------------------- */

/* CONV_2D over an HWIO filter (the generator's layout for "opt"): the rows
 * of the fused chain's producer (opt_conv_row: per channel the reference's
 * taps in order, then the bias, then the activation). Other layouts and
 * windows over EBNN_OPT_PATCH_FLOATS floats go to the reference. */
ebnn_status_t ebnn_conv2d_opt(const ebnn_conv2d_params_t *params,
                              const float *input, float *output) {
  ebnn__geom_t g;
  ebnn_status_t st;
  int32_t oy;
  if (params == NULL || input == NULL || output == NULL)
    return EBNN_ERROR_NULL_POINTER;
  st = ebnn__conv2d_check(params, &g);
  if (st != EBNN_OK) return st;
  if (params->filter_layout != EBNN_FILTER_HWIO) return ebnn_conv2d_ref(params, input, output);
  if (ebnn__conv2d_blocked_opt(params, &g, input, output)) return EBNN_OK;
  if ((size_t)params->filter_h * (size_t)params->filter_w * (size_t)params->in_c > EBNN_OPT_PATCH_FLOATS)
    return ebnn_conv2d_ref(params, input, output);
  for (oy = 0; oy < g.out_h; ++oy)
    opt_conv_row(params, &g, params->filter, input, oy,
                 output + (size_t)oy * (size_t)g.out_w * (size_t)params->out_c);
  return EBNN_OK;
}

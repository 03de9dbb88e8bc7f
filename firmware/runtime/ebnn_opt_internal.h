/*
 * Internal to the "opt" kernel set: the limits, GNU C vector types and
 * helpers that the CONV_2D rows (ebnn_conv_opt.c) and the fused chain
 * (ebnn_fused_opt.c) share. Not part of the public API (ebnn.h).
 */
#ifndef EBNN_OPT_INTERNAL_H
#define EBNN_OPT_INTERNAL_H

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
typedef int32_t ebnn_v8i __attribute__((vector_size(32))); /* lane masks of ebnn_v8f compares */
typedef float ebnn_v8f_u __attribute__((vector_size(32), aligned(4), may_alias));
#define EBNN_V8F_LOAD(ptr) (*(const ebnn_v8f_u *)(const void *)(ptr))
#define EBNN_V8F_STORE(ptr, v) (*(ebnn_v8f_u *)(void *)(ptr) = (v))
#define EBNN_V8F_SPLAT(x) ((ebnn_v8f){(x), (x), (x), (x), (x), (x), (x), (x)})
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

/* x = act(x) over n floats (ebnn__act's comparisons). */
static inline void ebnn__opt_act(float *x, int32_t n, ebnn_activation_t act) {
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

/* Whether the fast conv row applies; sets *wt to the [K][out_c] filter
 * (p->filter for HWIO, else buf, transposed here; buf holds
 * EBNN_OPT_FILTER_ELEMS floats). */
int ebnn__opt_conv_prepare(const ebnn_conv2d_params_t *p, float *buf, const float **wt);

/* CONV_2D output row oy (out_w * out_c floats) over the [K][out_c] filter
 * wt: per channel the reference's taps in order, then the bias, then the
 * activation. Windows up to EBNN_OPT_PATCH_FLOATS floats. */
void ebnn__opt_conv_row(const ebnn_conv2d_params_t *p, const ebnn__geom_t *g, const float *wt,
                        const float *input, int32_t oy, float *out_row);

#endif /* EBNN_OPT_INTERNAL_H */

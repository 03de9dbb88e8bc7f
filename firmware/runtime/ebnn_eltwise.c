/*
 * Broadcasting elementwise float kernels with TFLite builtin semantics:
 * SUB, MINIMUM, MAXIMUM and PRELU with any broadcast, ABS and ROUND.
 *
 * One element is one float operation, so the results are TFLite's bit for
 * bit (TFLite's optimized broadcasting kernels change only the loop order).
 * The per-element operators follow tensorflow/lite/kernels:
 * maximum_minimum.cc (el1 > el2 ? el1 : el2, el1 < el2 ? el1 : el2),
 * prelu (in >= 0 ? in : in * alpha), sub.cc (a - b, then the activation).
 */
#include <math.h>

#include "ebnn.h"
#include "ebnn_internal.h"

typedef enum {
  EBNN__OP_SUB,
  EBNN__OP_MIN,
  EBNN__OP_MAX,
  EBNN__OP_PRELU
} ebnn__eltwise_op_t;

static float eltwise1(ebnn__eltwise_op_t op, float a, float b) {
  switch (op) {
    case EBNN__OP_SUB:
      return a - b;
    case EBNN__OP_MIN:
      return a < b ? a : b;
    case EBNN__OP_MAX:
      return a > b ? a : b;
    case EBNN__OP_PRELU:
    default:
      return a >= 0.0f ? a : a * b;
  }
}

/* Output dims and the element strides of a and b (0 along broadcast dims). */
static ebnn_status_t broadcast_plan(const ebnn_broadcast_params_t *p,
                                    int32_t *out_dims, size_t *a_str,
                                    size_t *b_str) {
  int32_t d;
  size_t sa = 1u, sb = 1u;
  if (p->rank < 1 || p->rank > EBNN_MAX_DIMS) return EBNN_ERROR_BAD_SHAPE;
  for (d = p->rank - 1; d >= 0; --d) {
    const int32_t da = p->a_dims[d], db = p->b_dims[d];
    if (da <= 0 || db <= 0) return EBNN_ERROR_BAD_SHAPE;
    if (da != db && da != 1 && db != 1) return EBNN_ERROR_BAD_SHAPE;
    out_dims[d] = da > db ? da : db;
    a_str[d] = (da == 1) ? 0u : sa;
    b_str[d] = (db == 1) ? 0u : sb;
    sa *= (size_t)da;
    sb *= (size_t)db;
  }
  return EBNN_OK;
}

static ebnn_status_t eltwise(ebnn__eltwise_op_t op,
                             const ebnn_broadcast_params_t *p, const float *a,
                             const float *b, float *output) {
  int32_t out_dims[EBNN_MAX_DIMS], idx[EBNN_MAX_DIMS];
  size_t a_str[EBNN_MAX_DIMS], b_str[EBNN_MAX_DIMS];
  size_t ia = 0u, ib = 0u, io = 0u;
  int32_t d, i, last;
  ebnn_status_t st;
  if (p == NULL || a == NULL || b == NULL || output == NULL)
    return EBNN_ERROR_NULL_POINTER;
  if (!ebnn__act_valid(p->activation)) return EBNN_ERROR_BAD_ENUM;
  st = broadcast_plan(p, out_dims, a_str, b_str);
  if (st != EBNN_OK) return st;
  last = p->rank - 1;
  for (d = 0; d < p->rank; ++d) idx[d] = 0;
  for (;;) {
    /* the innermost dim as one run */
    size_t ja = ia, jb = ib;
    for (i = 0; i < out_dims[last]; ++i) {
      output[io++] = ebnn__act(eltwise1(op, a[ja], b[jb]), p->activation);
      ja += a_str[last];
      jb += b_str[last];
    }
    /* odometer over the outer dims */
    d = last - 1;
    while (d >= 0) {
      ++idx[d];
      ia += a_str[d];
      ib += b_str[d];
      if (idx[d] < out_dims[d]) break;
      ia -= a_str[d] * (size_t)out_dims[d];
      ib -= b_str[d] * (size_t)out_dims[d];
      idx[d] = 0;
      --d;
    }
    if (d < 0) break;
  }
  return EBNN_OK;
}

ebnn_status_t ebnn_sub_ref(const ebnn_broadcast_params_t *params,
                           const float *a, const float *b, float *output) {
  return eltwise(EBNN__OP_SUB, params, a, b, output);
}

/* MINIMUM, MAXIMUM and PRELU have no fused activation in TFLite. */
ebnn_status_t ebnn_minimum_ref(const ebnn_broadcast_params_t *params,
                               const float *a, const float *b, float *output) {
  if (params != NULL && params->activation != EBNN_ACT_NONE)
    return EBNN_ERROR_BAD_ENUM;
  return eltwise(EBNN__OP_MIN, params, a, b, output);
}

ebnn_status_t ebnn_maximum_ref(const ebnn_broadcast_params_t *params,
                               const float *a, const float *b, float *output) {
  if (params != NULL && params->activation != EBNN_ACT_NONE)
    return EBNN_ERROR_BAD_ENUM;
  return eltwise(EBNN__OP_MAX, params, a, b, output);
}

ebnn_status_t ebnn_prelu_ref(const ebnn_broadcast_params_t *params,
                             const float *a, const float *b, float *output) {
  if (params != NULL && params->activation != EBNN_ACT_NONE)
    return EBNN_ERROR_BAD_ENUM;
  return eltwise(EBNN__OP_PRELU, params, a, b, output);
}

ebnn_status_t ebnn_abs_ref(const ebnn_unary_params_t *params,
                           const float *input, float *output) {
  int32_t i;
  if (params == NULL || input == NULL || output == NULL)
    return EBNN_ERROR_NULL_POINTER;
  if (params->size < 0) return EBNN_ERROR_BAD_SHAPE;
  for (i = 0; i < params->size; ++i) output[i] = fabsf(input[i]);
  return EBNN_OK;
}

/* TFLite's RoundToNearest: floor, then up when the rest is over one half or
 * exactly one half with an odd floor. fmodf instead of TFLite's int cast:
 * the same for every |x| < 2^31, and no overflow beyond (floats from 2^23
 * on are integers, so the rest is 0 there). */
ebnn_status_t ebnn_round_ref(const ebnn_unary_params_t *params,
                             const float *input, float *output) {
  int32_t i;
  if (params == NULL || input == NULL || output == NULL)
    return EBNN_ERROR_NULL_POINTER;
  if (params->size < 0) return EBNN_ERROR_BAD_SHAPE;
  for (i = 0; i < params->size; ++i) {
    const float fl = floorf(input[i]);
    const float rest = input[i] - fl;
    output[i] = (rest < 0.5f || (rest == 0.5f && fmodf(fl, 2.0f) == 0.0f)) ? fl : fl + 1.0f;
  }
  return EBNN_OK;
}

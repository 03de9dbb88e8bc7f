/*
 * SUB, MINIMUM, MAXIMUM and PRELU (kernel set "opt"): ebnn_sub_opt,
 * ebnn_minimum_opt, ebnn_maximum_opt, ebnn_prelu_opt. Same params,
 * statuses and results bit for bit as the _ref kernels (one float
 * operation per element, tests/test_runtime_opt.py). The fast path is the
 * broadcast these models use: a not broadcast, b repeated along the leading
 * dims (b's dims are 1, then equal to the output's: a per-channel alpha, a
 * scalar, a full tensor), so out[i] = op(a[i], b[i % b_size]); ranges of
 * EBNN_EOPT_BLOCK elements are shared among threads (ebnn_threads.c) and
 * the per-op loops are branch-free so they vectorize. Every other broadcast,
 * and every bad-params status, is the reference's.
 */
#include "ebnn.h"
#include "ebnn_internal.h"

#define EBNN_EOPT_BLOCK 2048

typedef enum { EOPT_SUB, EOPT_MIN, EOPT_MAX, EOPT_PRELU } eopt_op_t;

typedef struct {
  eopt_op_t op;
  ebnn_activation_t act;
  const float *a, *b;
  float *output;
  int32_t size, b_size;
} eopt_job_t;

#if defined(__GNUC__) && !defined(EBNN_OPT_PLAIN_C)
typedef float eopt_v8f __attribute__((vector_size(32)));
typedef int32_t eopt_v8i __attribute__((vector_size(32)));
typedef float eopt_v8f_u __attribute__((vector_size(32), aligned(4), may_alias));
#define EOPT_LOAD(ptr) (*(const eopt_v8f_u *)(const void *)(ptr))
#define EOPT_STORE(ptr, v) (*(eopt_v8f_u *)(void *)(ptr) = (v))
#endif

/* o = x >= 0 ? x : x * y. GCC will not if-convert the scalar select (it
 * keeps the product on the x < 0 path), so eight lanes at a time are
 * written as GNU vectors: the product of every lane, then a bitwise blend
 * on the ordered compare's mask (NaN and -0.0f select as in the scalar
 * code: NaN >= 0 is false, -0.0f >= 0 is true). */
static void eopt_prelu(const float *x, const float *y, float *o, int32_t n) {
  int32_t k = 0;
#if defined(__GNUC__) && !defined(EBNN_OPT_PLAIN_C)
  for (; k + 8 <= n; k += 8) {
    const eopt_v8f xs = EOPT_LOAD(x + k);
    const eopt_v8f prod = xs * EOPT_LOAD(y + k);
    const eopt_v8i keep = xs >= (eopt_v8f){0, 0, 0, 0, 0, 0, 0, 0};
    const eopt_v8i bits = (keep & (eopt_v8i)xs) | (~keep & (eopt_v8i)prod);
    EOPT_STORE(o + k, (eopt_v8f)bits);
  }
#endif
  for (; k < n; ++k) o[k] = x[k] >= 0.0f ? x[k] : x[k] * y[k];
}

/* out[0..n) = op(x[k], y[k]), then SUB's activation. */
static void eopt_run(eopt_op_t op, ebnn_activation_t act, const float *x, const float *y, float *o, int32_t n) {
  int32_t k;
  switch (op) {
    case EOPT_SUB:
      for (k = 0; k < n; ++k) o[k] = x[k] - y[k];
      /* one loop per activation, so each is branch-free and vectorizes */
      if (act == EBNN_ACT_RELU) {
        for (k = 0; k < n; ++k) o[k] = o[k] < 0.0f ? 0.0f : o[k];
      } else if (act == EBNN_ACT_RELU6) {
        for (k = 0; k < n; ++k) {
          const float v = o[k] < 0.0f ? 0.0f : o[k];
          o[k] = v > 6.0f ? 6.0f : v;
        }
      } else if (act == EBNN_ACT_RELU_N1_TO_1) {
        for (k = 0; k < n; ++k) {
          const float v = o[k] < -1.0f ? -1.0f : o[k];
          o[k] = v > 1.0f ? 1.0f : v;
        }
      }
      break;
    case EOPT_MIN:
      for (k = 0; k < n; ++k) o[k] = x[k] < y[k] ? x[k] : y[k];
      break;
    case EOPT_MAX:
      for (k = 0; k < n; ++k) o[k] = x[k] > y[k] ? x[k] : y[k];
      break;
    case EOPT_PRELU:
    default:
      eopt_prelu(x, y, o, n);
      break;
  }
}

static void eopt_blocks(const void *arg, int32_t i0, int32_t i1) {
  const eopt_job_t *d = (const eopt_job_t *)arg;
  const int32_t e0 = i0 * EBNN_EOPT_BLOCK;
  const int32_t e1 = (int64_t)i1 * EBNN_EOPT_BLOCK < d->size ? i1 * EBNN_EOPT_BLOCK : d->size;
  int32_t i, j, n;
  if (d->b_size == 1) { /* a scalar b: one vector loop per block, not a call per element */
    float bb[EBNN_EOPT_BLOCK];
    for (i = 0; i < EBNN_EOPT_BLOCK; ++i) bb[i] = d->b[0];
    for (i = e0; i < e1; i += n) {
      n = e1 - i < EBNN_EOPT_BLOCK ? e1 - i : EBNN_EOPT_BLOCK;
      eopt_run(d->op, d->act, d->a + i, bb, d->output + i, n);
    }
    return;
  }
  for (i = e0, j = e0 % d->b_size; i < e1; i += n, j = 0) {
    n = d->b_size - j < e1 - i ? d->b_size - j : e1 - i;
    eopt_run(d->op, d->act, d->a + i, d->b + j, d->output + i, n);
  }
}

/* 1 (and the sizes) when a is not broadcast and b's dims are 1s, then from
 * its first dim over 1 on equal to a's (a trailing block repeated); 0 for
 * any other broadcast. */
static int eopt_plan(const ebnn_broadcast_params_t *p, int32_t *size, int32_t *b_size) {
  int32_t d, first = 0;
  int64_t n = 1, nb = 1;
  if (p->rank < 1 || p->rank > EBNN_MAX_DIMS) return 0;
  while (first < p->rank && p->b_dims[first] == 1) ++first;
  for (d = 0; d < p->rank; ++d) {
    if (p->a_dims[d] <= 0 || p->b_dims[d] <= 0) return 0;
    if (d >= first && p->b_dims[d] != p->a_dims[d]) return 0;
    n *= p->a_dims[d];
    nb *= p->b_dims[d];
  }
  if (n > 0x7fffffff) return 0;
  *size = (int32_t)n;
  *b_size = (int32_t)nb;
  return 1;
}

static ebnn_status_t eopt(eopt_op_t op, const ebnn_broadcast_params_t *p, const float *a, const float *b,
                          float *output) {
  eopt_job_t d;
  d.op = op;
  d.act = p->activation;
  d.a = a;
  d.b = b;
  d.output = output;
  if (!eopt_plan(p, &d.size, &d.b_size)) return EBNN_ERROR_BAD_SHAPE;
  ebnn__parallel_for((int32_t)(((int64_t)d.size + EBNN_EOPT_BLOCK - 1) / EBNN_EOPT_BLOCK), (int64_t)d.size,
                     eopt_blocks, &d);
  return EBNN_OK;
}

static int eopt_ok(const ebnn_broadcast_params_t *p, const float *a, const float *b, const float *out,
                   int with_act) {
  int32_t size, b_size;
  return p != NULL && a != NULL && b != NULL && out != NULL && ebnn__act_valid(p->activation) &&
         (with_act || p->activation == EBNN_ACT_NONE) && eopt_plan(p, &size, &b_size);
}

ebnn_status_t ebnn_sub_opt(const ebnn_broadcast_params_t *params, const float *a, const float *b,
                           float *output) {
  if (!eopt_ok(params, a, b, output, 1)) return ebnn_sub_ref(params, a, b, output);
  return eopt(EOPT_SUB, params, a, b, output);
}

ebnn_status_t ebnn_minimum_opt(const ebnn_broadcast_params_t *params, const float *a, const float *b,
                               float *output) {
  if (!eopt_ok(params, a, b, output, 0)) return ebnn_minimum_ref(params, a, b, output);
  return eopt(EOPT_MIN, params, a, b, output);
}

ebnn_status_t ebnn_maximum_opt(const ebnn_broadcast_params_t *params, const float *a, const float *b,
                               float *output) {
  if (!eopt_ok(params, a, b, output, 0)) return ebnn_maximum_ref(params, a, b, output);
  return eopt(EOPT_MAX, params, a, b, output);
}

ebnn_status_t ebnn_prelu_opt(const ebnn_broadcast_params_t *params, const float *a, const float *b,
                             float *output) {
  if (!eopt_ok(params, a, b, output, 0)) return ebnn_prelu_ref(params, a, b, output);
  return eopt(EOPT_PRELU, params, a, b, output);
}

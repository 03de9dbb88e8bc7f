/*
 * Two-operand elementwise kernels of the "opt" set: ebnn_add_opt,
 * ebnn_mul_opt (ebnn_binary_params_t: b repeated every b_size elements),
 * ebnn_sub_opt, ebnn_minimum_opt, ebnn_maximum_opt, ebnn_prelu_opt
 * (ebnn_broadcast_params_t, fast path when a is not broadcast and b
 * repeats along the leading dims: a per-channel alpha, a scalar, a full
 * tensor). Same params, statuses and results bit for bit as the _ref
 * kernels (one float operation per element, then the activation's;
 * tests/test_runtime_opt.py). out[i] = op(a[i], b[i % b_size]) in ranges
 * of EBNN_EOPT_BLOCK elements shared among threads (ebnn_threads.c); the
 * per-op loops are branch-free so they vectorize (PRELU as GNU vectors).
 * Every other broadcast, and every bad-params status, is the reference's.
 */
#include "ebnn.h"
#include "ebnn_internal.h"
#include "ebnn_opt_internal.h"

#define EBNN_EOPT_BLOCK 2048
#define EBNN_EOPT_RUN 256 /* a short b is repeated into this many floats at most */

typedef enum { EOPT_ADD, EOPT_MUL, EOPT_SUB, EOPT_MIN, EOPT_MAX, EOPT_PRELU } eopt_op_t;

typedef struct {
  eopt_op_t op;
  ebnn_activation_t act;
  const float *a, *b;
  float *output;
  int32_t size, b_size;
} eopt_job_t;


/* o = x >= 0 ? x : x * y. GCC will not if-convert the scalar select (it
 * keeps the product on the x < 0 path), so eight lanes at a time are
 * written as GNU vectors: the product of every lane, then a bitwise blend
 * on the ordered compare's mask (NaN and -0.0f select as in the scalar
 * code: NaN >= 0 is false, -0.0f >= 0 is true). */
static void eopt_prelu(const float *x, const float *y, float *o, int32_t n) {
  int32_t k = 0;
#if EBNN_OPT_VEC
  for (; k + 8 <= n; k += 8) {
    const ebnn_v8f xs = EBNN_V8F_LOAD(x + k);
    const ebnn_v8f prod = xs * EBNN_V8F_LOAD(y + k);
    const ebnn_v8i keep = xs >= (ebnn_v8f){0, 0, 0, 0, 0, 0, 0, 0};
    const ebnn_v8i bits = (keep & (ebnn_v8i)xs) | (~keep & (ebnn_v8i)prod);
    EBNN_V8F_STORE(o + k, (ebnn_v8f)bits);
  }
#endif
  for (; k < n; ++k) o[k] = x[k] >= 0.0f ? x[k] : x[k] * y[k];
}

/* out[0..n) = op(x[k], y[k]). */
static void eopt_run(eopt_op_t op, const float *x, const float *y, float *o, int32_t n) {
  int32_t k;
  switch (op) {
    case EOPT_ADD:
      for (k = 0; k < n; ++k) o[k] = x[k] + y[k];
      break;
    case EOPT_MUL:
      for (k = 0; k < n; ++k) o[k] = x[k] * y[k];
      break;
    case EOPT_SUB:
      for (k = 0; k < n; ++k) o[k] = x[k] - y[k];
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
  if (d->b_size == 1 || d->b_size * 4 <= EBNN_EOPT_RUN) {
    /* a scalar or a short b (a per-channel vector): repeated into bb, whole
     * runs of b at a time, so each call is one long vector loop, not a call
     * per element or per pixel (MNIST bcnn's BN MUL over 32 channels: 0.83
     * -> 0.50 us). The elements see the same operations. */
    float bb[EBNN_EOPT_BLOCK];
    const int32_t run = d->b_size == 1 ? EBNN_EOPT_BLOCK : EBNN_EOPT_RUN / d->b_size * d->b_size;
    const int32_t fill = e1 - e0 < run ? e1 - e0 : run;
    if (d->b_size == 1) {
      for (i = 0; i < fill; ++i) bb[i] = d->b[0];
    } else {
      for (i = 0, j = e0 % d->b_size; i < fill; ++i) {
        bb[i] = d->b[j];
        if (++j == d->b_size) j = 0;
      }
    }
    for (i = e0; i < e1; i += n) {
      n = e1 - i < run ? e1 - i : run;
      eopt_run(d->op, d->a + i, bb, d->output + i, n);
    }
  } else {
    for (i = e0, j = e0 % d->b_size; i < e1; i += n, j = 0) {
      n = d->b_size - j < e1 - i ? d->b_size - j : e1 - i;
      eopt_run(d->op, d->a + i, d->b + j, d->output + i, n);
    }
  }
  if (d->act != EBNN_ACT_NONE) ebnn__opt_act(d->output + e0, e1 - e0, d->act);
}

static ebnn_status_t eopt_go(eopt_job_t *d) {
  ebnn__parallel_for((int32_t)(((int64_t)d->size + EBNN_EOPT_BLOCK - 1) / EBNN_EOPT_BLOCK), (int64_t)d->size,
                     eopt_blocks, d);
  return EBNN_OK;
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

static void eopt_fill(eopt_job_t *d, eopt_op_t op, ebnn_activation_t act, const float *a, const float *b,
                      float *out) {
  d->op = op;
  d->act = act;
  d->a = a;
  d->b = b;
  d->output = out;
}

/* The job of a broadcast kernel, or 0 when the fast path does not apply
 * (bad params included: the reference then reports them). */
static int eopt_broadcast_job(eopt_op_t op, const ebnn_broadcast_params_t *p, const float *a, const float *b,
                              float *out, int with_act, eopt_job_t *d) {
  if (p == NULL || a == NULL || b == NULL || out == NULL || !ebnn__act_valid(p->activation) ||
      (!with_act && p->activation != EBNN_ACT_NONE) || !eopt_plan(p, &d->size, &d->b_size))
    return 0;
  eopt_fill(d, op, p->activation, a, b, out);
  return 1;
}

/* The job of ADD / MUL, or 0 (bad params: the reference reports them). */
static int eopt_binary_job(eopt_op_t op, const ebnn_binary_params_t *p, const float *a, const float *b,
                           float *out, eopt_job_t *d) {
  if (p == NULL || a == NULL || b == NULL || out == NULL || p->size < 0 || p->b_size <= 0 ||
      (p->size % p->b_size) != 0 || !ebnn__act_valid(p->activation))
    return 0;
  eopt_fill(d, op, p->activation, a, b, out);
  d->size = p->size;
  d->b_size = p->b_size;
  return 1;
}

ebnn_status_t ebnn_add_opt(const ebnn_binary_params_t *params, const float *a, const float *b,
                           float *output) {
  eopt_job_t d;
  if (!eopt_binary_job(EOPT_ADD, params, a, b, output, &d)) return ebnn_add_ref(params, a, b, output);
  return eopt_go(&d);
}

ebnn_status_t ebnn_mul_opt(const ebnn_binary_params_t *params, const float *a, const float *b,
                           float *output) {
  eopt_job_t d;
  if (!eopt_binary_job(EOPT_MUL, params, a, b, output, &d)) return ebnn_mul_ref(params, a, b, output);
  return eopt_go(&d);
}

ebnn_status_t ebnn_sub_opt(const ebnn_broadcast_params_t *params, const float *a, const float *b,
                           float *output) {
  eopt_job_t d;
  if (!eopt_broadcast_job(EOPT_SUB, params, a, b, output, 1, &d)) return ebnn_sub_ref(params, a, b, output);
  return eopt_go(&d);
}

ebnn_status_t ebnn_minimum_opt(const ebnn_broadcast_params_t *params, const float *a, const float *b,
                               float *output) {
  eopt_job_t d;
  if (!eopt_broadcast_job(EOPT_MIN, params, a, b, output, 0, &d)) return ebnn_minimum_ref(params, a, b, output);
  return eopt_go(&d);
}

ebnn_status_t ebnn_maximum_opt(const ebnn_broadcast_params_t *params, const float *a, const float *b,
                               float *output) {
  eopt_job_t d;
  if (!eopt_broadcast_job(EOPT_MAX, params, a, b, output, 0, &d)) return ebnn_maximum_ref(params, a, b, output);
  return eopt_go(&d);
}

ebnn_status_t ebnn_prelu_opt(const ebnn_broadcast_params_t *params, const float *a, const float *b,
                             float *output) {
  eopt_job_t d;
  if (!eopt_broadcast_job(EOPT_PRELU, params, a, b, output, 0, &d)) return ebnn_prelu_ref(params, a, b, output);
  return eopt_go(&d);
}

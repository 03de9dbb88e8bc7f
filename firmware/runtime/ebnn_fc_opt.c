/*
 * FULLY_CONNECTED (kernel set "opt"): ebnn_fully_connected_opt. Same
 * params, statuses and results bit for bit as ebnn_fully_connected_ref: each
 * output sums x[i] * w[o][i] in order i = 0, 1, ... from +0.0f, then adds
 * the bias, then the activation (builds use -ffp-contract=off).
 *
 * The reference's one running sum per output is a chain of dependent adds
 * (about 4 cycles each), so a 512 -> 1000 layer waits on 512 x 1000 add
 * latencies. Here 8 outputs advance together: 8 independent chains, and
 * the 8 weight rows stream side by side; blocks of 8 outputs are shared
 * among threads. Weights transposed at export time ([in][out],
 * EBNN_WEIGHTS_IO, the generator's layout for "opt") stream in order and
 * vectorize over outputs (fco_io_cols). Everything the fast paths do not
 * cover (bad params) goes to the reference, which reports the status.
 */
#include "ebnn.h"
#include "ebnn_internal.h"

#define EBNN_FCO_ROWS 8
#define EBNN_FCO_COLS 64 /* outputs per item of the [in][out] layout */

typedef struct {
  const ebnn_fully_connected_params_t *p;
  const float *input;
  float *output;
  int32_t blocks; /* blocks of EBNN_FCO_ROWS outputs per row */
} fco_job_t;

/* Items [b0, b1): item i is outputs [8 k, 8 k + 8) of row r, i = r * blocks + k. */
static void fco_blocks(const void *arg, int32_t b0, int32_t b1) {
  const fco_job_t *d = (const fco_job_t *)arg;
  const ebnn_fully_connected_params_t *p = d->p;
  const size_t n = (size_t)p->in_features;
  int32_t item, i, j;
  for (item = b0; item < b1; ++item) {
    const int32_t r = item / d->blocks, o0 = (item % d->blocks) * EBNN_FCO_ROWS;
    const int32_t o1 = o0 + EBNN_FCO_ROWS < p->out_features ? o0 + EBNN_FCO_ROWS : p->out_features;
    const float *x = d->input + (size_t)r * n;
    float *y = d->output + (size_t)r * (size_t)p->out_features;
    int32_t o = o0;
    if (o1 - o0 == EBNN_FCO_ROWS) {
      const float *w = p->weights + (size_t)o * n;
      float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f, a4 = 0.0f, a5 = 0.0f, a6 = 0.0f, a7 = 0.0f;
      for (i = 0; i < p->in_features; ++i) {
        const float xi = x[i];
        a0 += xi * w[(size_t)i];
        a1 += xi * w[n + (size_t)i];
        a2 += xi * w[2 * n + (size_t)i];
        a3 += xi * w[3 * n + (size_t)i];
        a4 += xi * w[4 * n + (size_t)i];
        a5 += xi * w[5 * n + (size_t)i];
        a6 += xi * w[6 * n + (size_t)i];
        a7 += xi * w[7 * n + (size_t)i];
      }
      y[o] = a0;
      y[o + 1] = a1;
      y[o + 2] = a2;
      y[o + 3] = a3;
      y[o + 4] = a4;
      y[o + 5] = a5;
      y[o + 6] = a6;
      y[o + 7] = a7;
      o = o1;
    }
    for (; o < o1; ++o) {
      const float *w = p->weights + (size_t)o * n;
      float total = 0.0f;
      for (i = 0; i < p->in_features; ++i) total += x[i] * w[i];
      y[o] = total;
    }
    for (j = o0; j < o1; ++j) {
      float total = y[j];
      if (p->bias != NULL) total += p->bias[j];
      y[j] = ebnn__act(total, p->activation);
    }
  }
}

/* The [in][out] layout (EBNN_WEIGHTS_IO). Items [b0, b1) are blocks of
 * EBNN_FCO_COLS outputs: for each row, the block's sums live in y (from
 * +0.0f) and each pass adds x[i] * w[i][o] for four inputs i in order, as
 * the reference; so the weights stream in order, four rows side by side,
 * and the sums vectorize over outputs with no dependent chain within a
 * vector. Then the bias and the activation. Keeping 64 sums in registers
 * instead was faster with the weights in cache (512 -> 1000: 60 against
 * about 100 us) but slower from memory (203 against 148 us), which is
 * where a model's last layer finds them. */
static void fco_io_cols(const void *arg, int32_t b0, int32_t b1) {
  const fco_job_t *d = (const fco_job_t *)arg;
  const ebnn_fully_connected_params_t *p = d->p;
  const size_t n = (size_t)p->in_features, out = (size_t)p->out_features;
  const size_t o0 = (size_t)b0 * EBNN_FCO_COLS, o1 = (size_t)b1 * EBNN_FCO_COLS < out ? (size_t)b1 * EBNN_FCO_COLS : out;
  int32_t r;
  size_t i, o;
  for (r = 0; r < p->rows; ++r) {
    const float *x = d->input + (size_t)r * n;
    float *y = d->output + (size_t)r * out;
    for (o = o0; o < o1; ++o) y[o] = 0.0f;
    for (i = 0; i + 4 <= n; i += 4) { /* four inputs per pass over the block's sums */
      const float x0 = x[i], x1 = x[i + 1], x2 = x[i + 2], x3 = x[i + 3];
      const float *w0 = p->weights + i * out, *w1 = w0 + out, *w2 = w1 + out, *w3 = w2 + out;
      for (o = o0; o < o1; ++o) {
        float t = y[o];
        t += x0 * w0[o];
        t += x1 * w1[o];
        t += x2 * w2[o];
        t += x3 * w3[o];
        y[o] = t;
      }
    }
    for (; i < n; ++i) {
      const float xi = x[i];
      const float *w = p->weights + i * out;
      for (o = o0; o < o1; ++o) y[o] += xi * w[o];
    }
    if (p->bias != NULL) {
      for (o = o0; o < o1; ++o) y[o] += p->bias[o];
    }
    if (p->activation != EBNN_ACT_NONE) {
      for (o = o0; o < o1; ++o) y[o] = ebnn__act(y[o], p->activation);
    }
  }
}

ebnn_status_t ebnn_fully_connected_opt(const ebnn_fully_connected_params_t *params,
                                       const float *input, float *output) {
  const ebnn_fully_connected_params_t *p = params;
  fco_job_t d;
  if (p == NULL || input == NULL || output == NULL || p->weights == NULL || p->rows <= 0 ||
      p->in_features <= 0 || p->out_features <= 0 || !ebnn__act_valid(p->activation) ||
      (p->weights_layout != EBNN_WEIGHTS_OI && p->weights_layout != EBNN_WEIGHTS_IO) || input == output)
    return ebnn_fully_connected_ref(p, input, output);
  d.p = p;
  d.input = input;
  d.output = output;
  if (p->weights_layout == EBNN_WEIGHTS_IO) {
    ebnn__parallel_for((p->out_features + EBNN_FCO_COLS - 1) / EBNN_FCO_COLS,
                       (int64_t)p->rows * p->out_features * p->in_features, fco_io_cols, &d);
    return EBNN_OK;
  }
  d.blocks = (p->out_features + EBNN_FCO_ROWS - 1) / EBNN_FCO_ROWS;
  ebnn__parallel_for(p->rows * d.blocks, (int64_t)p->rows * p->out_features * p->in_features, fco_blocks, &d);
  return EBNN_OK;
}

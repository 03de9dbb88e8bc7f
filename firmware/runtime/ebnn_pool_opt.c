/*
 * MAX_POOL_2D and AVERAGE_POOL_2D (kernel set "opt"): ebnn_max_pool2d_opt,
 * ebnn_average_pool2d_opt. Same params, statuses and results bit for bit
 * as the _ref kernels (tests/test_runtime_opt.py): each output channel
 * sees the same operations in the same window order. The average pool
 * keeps the channel loop innermost (the reference walks the window once per
 * channel), so the sums vectorize; output pixels are shared among threads
 * (ebnn_threads.c). Bad params go to the reference, which reports them.
 */
#include "ebnn.h"
#include "ebnn_internal.h"
#include "ebnn_opt_internal.h"

typedef struct {
  const ebnn_pool2d_params_t *p;
  const ebnn__geom_t *g;
  const float *input;
  float *output;
} popt_job_t;

#if EBNN_OPT_VEC

/* The reference's max pixel with 8 channels per vector: per lane
 * m = m < v ? v : m over the taps in (y, x) order from -FLT_MAX (a NaN tap
 * keeps m, the first of equal maxima stays), as a select on the compare's
 * mask. The reference keeps the running maxima in out, which may alias the
 * input for all the compiler knows, so it does not vectorize (MNIST bcnn's
 * first pool: 3.2 -> 2.7 us). m is passed by pointer: a vector argument
 * would change the ABI of builds without -mavx. */
EBNN_INLINE void popt_vmax(ebnn_v8f *m, const float *px) {
  const ebnn_v8f v = EBNN_V8F_LOAD(px);
  const ebnn_v8i take = (ebnn_v8i)(*m < v);
  *m = (ebnn_v8f)(((ebnn_v8i)*m & ~take) | ((ebnn_v8i)v & take));
}

static void popt_max_pixel(const float *in, int32_t width, int32_t channels, int32_t y0, int32_t y1,
                           int32_t x0, int32_t x1, ebnn_activation_t act, float *out) {
  const ebnn_v8f lowest = {-FLT_MAX, -FLT_MAX, -FLT_MAX, -FLT_MAX, -FLT_MAX, -FLT_MAX, -FLT_MAX, -FLT_MAX};
  int32_t c = 0, y, x;
  /* 32 channels at a time: four independent compare-select chains (one
   * chain waits on its compare's latency at every tap) */
  for (; c + 32 <= channels; c += 32) {
    ebnn_v8f m0 = lowest, m1 = lowest, m2 = lowest, m3 = lowest;
    for (y = y0; y < y1; ++y)
      for (x = x0; x < x1; ++x) {
        const float *px = in + ((size_t)y * (size_t)width + (size_t)x) * (size_t)channels + c;
        popt_vmax(&m0, px);
        popt_vmax(&m1, px + 8);
        popt_vmax(&m2, px + 16);
        popt_vmax(&m3, px + 24);
      }
    EBNN_V8F_STORE(out + c, m0);
    EBNN_V8F_STORE(out + c + 8, m1);
    EBNN_V8F_STORE(out + c + 16, m2);
    EBNN_V8F_STORE(out + c + 24, m3);
  }
  for (; c + 8 <= channels; c += 8) {
    ebnn_v8f m = lowest;
    for (y = y0; y < y1; ++y)
      for (x = x0; x < x1; ++x) popt_vmax(&m, in + ((size_t)y * (size_t)width + (size_t)x) * (size_t)channels + c);
    EBNN_V8F_STORE(out + c, m);
  }
  for (; c < channels; ++c) {
    float m = -FLT_MAX;
    for (y = y0; y < y1; ++y)
      for (x = x0; x < x1; ++x) {
        const float v = in[((size_t)y * (size_t)width + (size_t)x) * (size_t)channels + c];
        m = m < v ? v : m;
      }
    out[c] = m;
  }
  if (act != EBNN_ACT_NONE) {
    for (c = 0; c < channels; ++c) out[c] = ebnn__act(out[c], act);
  }
}
#else
#define popt_max_pixel ebnn__maxpool_pixel
#endif

static void popt_max_pixels(const void *arg, int32_t q0, int32_t q1) {
  const popt_job_t *d = (const popt_job_t *)arg;
  const ebnn_pool2d_params_t *p = d->p;
  int32_t q;
  for (q = q0; q < q1; ++q) {
    const int32_t oy = q / d->g->out_w, ox = q % d->g->out_w;
    int32_t y0, y1, x0, x1;
    ebnn__window(oy, p->stride_h, d->g->pad_top, p->filter_h, p->in_h, &y0, &y1);
    ebnn__window(ox, p->stride_w, d->g->pad_left, p->filter_w, p->in_w, &x0, &x1);
    popt_max_pixel(d->input, p->in_w, p->channels, y0, y1, x0, x1, p->activation,
                   d->output + (size_t)q * (size_t)p->channels);
  }
}

/* Each channel: +0.0f, then the in-bounds taps added in (y, x) order, then
 * divided by their count (0 taps: 0.0f), then the activation. */
static void popt_avg_pixels(const void *arg, int32_t q0, int32_t q1) {
  const popt_job_t *d = (const popt_job_t *)arg;
  const ebnn_pool2d_params_t *p = d->p;
  const int32_t ch = p->channels;
  int32_t q, y, x, c;
  for (q = q0; q < q1; ++q) {
    const int32_t oy = q / d->g->out_w, ox = q % d->g->out_w;
    float *out = d->output + (size_t)q * (size_t)ch;
    int32_t y0, y1, x0, x1, count;
    ebnn__window(oy, p->stride_h, d->g->pad_top, p->filter_h, p->in_h, &y0, &y1);
    ebnn__window(ox, p->stride_w, d->g->pad_left, p->filter_w, p->in_w, &x0, &x1);
    count = (y1 > y0 && x1 > x0) ? (y1 - y0) * (x1 - x0) : 0;
    for (c = 0; c < ch; ++c) out[c] = 0.0f;
    for (y = y0; y < y1; ++y)
      for (x = x0; x < x1; ++x) {
        const float *px = d->input + ((size_t)y * (size_t)p->in_w + (size_t)x) * (size_t)ch;
        for (c = 0; c < ch; ++c) out[c] += px[c];
      }
    if (count > 0) {
      const float n = (float)count;
      for (c = 0; c < ch; ++c) out[c] = ebnn__act(out[c] / n, p->activation);
    } else {
      for (c = 0; c < ch; ++c) out[c] = ebnn__act(0.0f, p->activation);
    }
  }
}

static ebnn_status_t popt_run(const ebnn_pool2d_params_t *p, const float *input, float *output,
                              ebnn__range_fn_t fn) {
  ebnn__geom_t g;
  popt_job_t d;
  const ebnn_status_t st = ebnn__pool_geom(p, &g);
  if (st != EBNN_OK) return st;
  d.p = p;
  d.g = &g;
  d.input = input;
  d.output = output;
  ebnn__parallel_for(g.out_h * g.out_w, (int64_t)g.out_h * g.out_w * p->channels * p->filter_h * p->filter_w,
                     fn, &d);
  return EBNN_OK;
}

static int popt_ok(const ebnn_pool2d_params_t *p, const float *input, const float *output) {
  ebnn__geom_t g;
  return p != NULL && input != NULL && output != NULL && input != output &&
         ebnn__pool_geom(p, &g) == EBNN_OK;
}

ebnn_status_t ebnn_max_pool2d_opt(const ebnn_pool2d_params_t *params, const float *input,
                                  float *output) {
  if (!popt_ok(params, input, output)) return ebnn_max_pool2d_ref(params, input, output);
  return popt_run(params, input, output, popt_max_pixels);
}

ebnn_status_t ebnn_average_pool2d_opt(const ebnn_pool2d_params_t *params, const float *input,
                                      float *output) {
  if (!popt_ok(params, input, output)) return ebnn_average_pool2d_ref(params, input, output);
  return popt_run(params, input, output, popt_avg_pixels);
}

/*
 * LceQuantize (kernel set "opt"): ebnn_quantize_opt. Same params, statuses
 * and results bit for bit as ebnn_quantize_ref: bit = (x < 0.0f), LSB
 * first, padding bits 0. With AVX2 each 8 channels are one ordered
 * less-than compare (VCMPPS LT_OQ: false for NaN and for -0.0f, as
 * x < 0.0f; the sign bit alone, VMOVMSKPS on x, would set both) and one
 * VMOVMSKPS of the compare; words that are not full 32 channels, and
 * other builds, use the reference's per-pixel routine.
 */
#include "ebnn.h"
#include "ebnn_internal.h"

#if defined(__AVX2__) && !defined(EBNN_OPT_PLAIN_C)
#include <immintrin.h>
#endif

#if defined(__AVX2__) && !defined(EBNN_OPT_PLAIN_C)
typedef struct {
  const ebnn_quantize_params_t *p;
  const float *input;
  int32_t *output;
} qopt_job_t;

static void qopt_pixels(const void *arg, int32_t i0, int32_t i1) {
  const qopt_job_t *d = (const qopt_job_t *)arg;
  const __m256 zero = _mm256_setzero_ps();
  const int32_t words = d->p->channels / 32;
  int32_t i, w;
  for (i = i0; i < i1; ++i) {
    const float *x = d->input + (size_t)i * (size_t)d->p->channels;
    int32_t *out = d->output + (size_t)i * (size_t)words;
    for (w = 0; w < words; ++w, x += 32) {
      const uint32_t b0 = (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x), zero, _CMP_LT_OQ));
      const uint32_t b1 = (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + 8), zero, _CMP_LT_OQ));
      const uint32_t b2 = (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + 16), zero, _CMP_LT_OQ));
      const uint32_t b3 = (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + 24), zero, _CMP_LT_OQ));
      out[w] = (int32_t)(b0 | (b1 << 8) | (b2 << 16) | (b3 << 24));
    }
  }
}
#endif

ebnn_status_t ebnn_quantize_opt(const ebnn_quantize_params_t *params, const float *input,
                                int32_t *output) {
#if defined(__AVX2__) && !defined(EBNN_OPT_PLAIN_C)
  qopt_job_t d;
  if (params == NULL || input == NULL || output == NULL || params->n_pixels < 0 ||
      params->channels <= 0 || params->channels % 32 != 0)
    return ebnn_quantize_ref(params, input, output);
  d.p = params;
  d.input = input;
  d.output = output;
  /* a compare + mask per 8 elements: about a quarter of a simple op each */
  ebnn__parallel_for(params->n_pixels, (int64_t)params->n_pixels * params->channels / 4, qopt_pixels, &d);
  return EBNN_OK;
#else
  return ebnn_quantize_ref(params, input, output);
#endif
}

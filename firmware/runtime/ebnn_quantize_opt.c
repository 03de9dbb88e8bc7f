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

ebnn_status_t ebnn_quantize_opt(const ebnn_quantize_params_t *params, const float *input,
                                int32_t *output) {
#if defined(__AVX2__) && !defined(EBNN_OPT_PLAIN_C)
  int32_t i, w;
  const __m256 zero = _mm256_setzero_ps();
  if (params == NULL || input == NULL || output == NULL || params->n_pixels < 0 ||
      params->channels <= 0 || params->channels % 32 != 0)
    return ebnn_quantize_ref(params, input, output);
  for (i = 0; i < params->n_pixels; ++i) {
    const int32_t words = params->channels / 32;
    const float *x = input + (size_t)i * (size_t)params->channels;
    int32_t *out = output + (size_t)i * (size_t)words;
    for (w = 0; w < words; ++w, x += 32) {
      const uint32_t b0 = (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x), zero, _CMP_LT_OQ));
      const uint32_t b1 = (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + 8), zero, _CMP_LT_OQ));
      const uint32_t b2 = (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + 16), zero, _CMP_LT_OQ));
      const uint32_t b3 = (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + 24), zero, _CMP_LT_OQ));
      out[w] = (int32_t)(b0 | (b1 << 8) | (b2 << 16) | (b3 << 24));
    }
  }
  return EBNN_OK;
#else
  return ebnn_quantize_ref(params, input, output);
#endif
}

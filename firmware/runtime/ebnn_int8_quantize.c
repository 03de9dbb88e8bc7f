/*
 * QUANTIZE float -> int8 (TFLite's AffineQuantize), QUANTIZE int8 -> int8
 * (Requantize) and DEQUANTIZE (Dequantize). Kept apart from the integer
 * kernels so that an int8-only model links no float code (only the float
 * conversions at a model's float inputs/outputs use float).
 */
#include <math.h>

#include "ebnn.h"
#include "ebnn_int8_internal.h"

ebnn_status_t ebnn_int8_quantize_ref(const ebnn_int8_affine_params_t *params,
                                     const float *input, int8_t *output) {
  int32_t i;
  if (params == NULL || input == NULL || output == NULL)
    return EBNN_ERROR_NULL_POINTER;
  if (params->size < 0 || !(params->scale > 0.0f) ||
      !ebnn__int8_zp_valid(params->zero_point))
    return EBNN_ERROR_BAD_SHAPE;
  for (i = 0; i < params->size; ++i) {
    /* float division, then round half away from zero (std::round); the
     * value is clamped in float before the conversion so that no
     * out-of-range float is converted to int32 */
    float q = roundf(input[i] / params->scale);
    int32_t v;
    if (q != q) q = 0.0f; /* NaN */
    if (q < -512.0f) q = -512.0f;
    if (q > 512.0f) q = 512.0f;
    v = (int32_t)q + params->zero_point;
    output[i] = ebnn__int8_clamp(v, EBNN_INT8_MIN, EBNN_INT8_MAX);
  }
  return EBNN_OK;
}

ebnn_status_t ebnn_int8_dequantize_ref(const ebnn_int8_affine_params_t *params,
                                       const int8_t *input, float *output) {
  int32_t i;
  if (params == NULL || input == NULL || output == NULL)
    return EBNN_ERROR_NULL_POINTER;
  if (params->size < 0 || !ebnn__int8_zp_valid(params->zero_point))
    return EBNN_ERROR_BAD_SHAPE;
  for (i = 0; i < params->size; ++i) {
    /* TFLite computes (float)((double)scale * (x - zp)); the exact product
     * of a float and an integer below 2^9 fits a double, so that is one
     * rounding of the exact product, as this float multiply is. */
    output[i] = params->scale * (float)((int32_t)input[i] - params->zero_point);
  }
  return EBNN_OK;
}

ebnn_status_t ebnn_int8_requantize_ref(
    const ebnn_int8_requantize_params_t *params, const int8_t *input,
    int8_t *output) {
  const ebnn_int8_requantize_params_t *p = params;
  int32_t i;
  if (p == NULL || input == NULL || output == NULL)
    return EBNN_ERROR_NULL_POINTER;
  if (p->size < 0 || !ebnn__int8_zp_valid(p->input_zero_point) ||
      !ebnn__int8_zp_valid(p->output_zero_point) ||
      !ebnn__int8_qm_valid(p->multiplier, p->shift))
    return EBNN_ERROR_BAD_SHAPE;
  for (i = 0; i < p->size; ++i) {
    const int32_t y = ebnn_int8_multiply_by_quantized_multiplier(
                          (int32_t)input[i] - p->input_zero_point,
                          p->multiplier, p->shift) +
                      p->output_zero_point;
    output[i] = ebnn__int8_clamp(y, EBNN_INT8_MIN, EBNN_INT8_MAX);
  }
  return EBNN_OK;
}

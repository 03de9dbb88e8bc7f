/*
 * FULLY_CONNECTED, int8 (TFLite's reference_integer_ops FullyConnected and
 * FullyConnectedPerChannel): int32 dot product of the offset input and
 * weights, int32 bias, one or per-output quantized multiplier.
 */
#include "ebnn.h"
#include "ebnn_int8_internal.h"

ebnn_status_t ebnn_int8_fully_connected_ref(
    const ebnn_int8_fully_connected_params_t *params, const int8_t *input,
    int8_t *output) {
  const ebnn_int8_fully_connected_params_t *p = params;
  int32_t r, o, i, n_mult;
  if (p == NULL || input == NULL || output == NULL || p->weights == NULL ||
      p->output_multiplier == NULL || p->output_shift == NULL)
    return EBNN_ERROR_NULL_POINTER;
  if (p->rows <= 0 || p->in_features <= 0 || p->out_features <= 0)
    return EBNN_ERROR_BAD_SHAPE;
  if (p->per_channel != 0 && p->per_channel != 1) return EBNN_ERROR_BAD_ENUM;
  if (!ebnn__int8_zp_valid(p->input_zero_point) ||
      !ebnn__int8_zp_valid(p->weights_zero_point) ||
      !ebnn__int8_zp_valid(p->output_zero_point) ||
      !ebnn__int8_range_valid(p->act_min, p->act_max))
    return EBNN_ERROR_BAD_SHAPE;
  n_mult = p->per_channel ? p->out_features : 1;
  for (o = 0; o < n_mult; ++o) {
    if (!ebnn__int8_qm_valid(p->output_multiplier[o], p->output_shift[o]))
      return EBNN_ERROR_BAD_SHAPE;
  }
  for (r = 0; r < p->rows; ++r) {
    const int8_t *x = input + (size_t)r * (size_t)p->in_features;
    for (o = 0; o < p->out_features; ++o) {
      const int8_t *w = p->weights + (size_t)o * (size_t)p->in_features;
      const int32_t k = p->per_channel ? o : 0;
      int32_t acc = 0;
      for (i = 0; i < p->in_features; ++i)
        acc += ((int32_t)x[i] - p->input_zero_point) *
               ((int32_t)w[i] - p->weights_zero_point);
      if (p->bias != NULL) acc += p->bias[o];
      acc = ebnn_int8_multiply_by_quantized_multiplier(
          acc, p->output_multiplier[k], p->output_shift[k]);
      output[(size_t)r * (size_t)p->out_features + (size_t)o] =
          ebnn__int8_clamp(acc + p->output_zero_point, p->act_min, p->act_max);
    }
  }
  return EBNN_OK;
}

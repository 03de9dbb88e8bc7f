/*
 * LCE's int8 paths: LceQuantize of an int8 tensor.
 *
 * An int8 value q stands for scale * (q - zero_point), negative exactly when
 * q < zero_point, so the sign bit needs no scale: bit = (q < zero_point),
 * real zero packing as +1 (bit 0) as in the float LceQuantize.
 */
#include "ebnn.h"

ebnn_status_t ebnn_int8_lce_quantize_ref(
    const ebnn_int8_lce_quantize_params_t *params, const int8_t *input,
    int32_t *output) {
  int32_t i, c, words;
  if (params == NULL || input == NULL || output == NULL)
    return EBNN_ERROR_NULL_POINTER;
  if (params->n_pixels < 0 || params->channels <= 0) return EBNN_ERROR_BAD_SHAPE;
  if (params->zero_point < -128 || params->zero_point > 127)
    return EBNN_ERROR_UNSUPPORTED;
  words = EBNN_PACKED_WORDS(params->channels);
  for (i = 0; i < params->n_pixels; ++i) {
    const int8_t *px = input + (size_t)i * (size_t)params->channels;
    int32_t *o = output + (size_t)i * (size_t)words;
    for (c = 0; c < words; ++c) o[c] = 0;
    for (c = 0; c < params->channels; ++c) {
      if ((int32_t)px[c] < params->zero_point)
        o[c / 32] = (int32_t)((uint32_t)o[c / 32] | (1u << (c % 32)));
    }
  }
  return EBNN_OK;
}

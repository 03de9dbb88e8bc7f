/*
 * Data-movement ops on int8 tensors: CONCATENATION (inputs and output share
 * one scale and zero point, so values are copied) and PAD (padded elements
 * take the output zero point, i.e. real 0).
 */
#include "ebnn.h"
#include "ebnn_int8_internal.h"

ebnn_status_t ebnn_int8_concatenation_ref(const ebnn_concat_params_t *params,
                                          const int8_t *const *inputs,
                                          int8_t *output) {
  int32_t o, i, k;
  int8_t *dst = output;
  if (params == NULL || inputs == NULL || output == NULL)
    return EBNN_ERROR_NULL_POINTER;
  if (params->outer < 0 || params->n_inputs <= 0 ||
      params->n_inputs > EBNN_CONCAT_MAX_INPUTS)
    return EBNN_ERROR_BAD_SHAPE;
  if (params->activation != EBNN_ACT_NONE) return EBNN_ERROR_UNSUPPORTED;
  for (i = 0; i < params->n_inputs; ++i) {
    if (inputs[i] == NULL) return EBNN_ERROR_NULL_POINTER;
    if (params->inner[i] < 0) return EBNN_ERROR_BAD_SHAPE;
  }
  for (o = 0; o < params->outer; ++o) {
    for (i = 0; i < params->n_inputs; ++i) {
      const int8_t *src = inputs[i] + (size_t)o * (size_t)params->inner[i];
      for (k = 0; k < params->inner[i]; ++k) dst[k] = src[k];
      dst += params->inner[i];
    }
  }
  return EBNN_OK;
}

ebnn_status_t ebnn_int8_pad_ref(const ebnn_int8_pad_params_t *params,
                                const int8_t *input, int8_t *output) {
  int32_t od[4], d, i0, i1, i2, i3;
  const ebnn_int8_pad_params_t *p = params;
  size_t idx = 0;
  if (p == NULL || input == NULL || output == NULL)
    return EBNN_ERROR_NULL_POINTER;
  if (!ebnn__int8_zp_valid(p->value)) return EBNN_ERROR_BAD_SHAPE;
  for (d = 0; d < 4; ++d) {
    if (p->dims[d] <= 0 || p->before[d] < 0 || p->after[d] < 0)
      return EBNN_ERROR_BAD_SHAPE;
    od[d] = p->dims[d] + p->before[d] + p->after[d];
  }
  for (i0 = 0; i0 < od[0]; ++i0) {
    const int32_t s0 = i0 - p->before[0];
    for (i1 = 0; i1 < od[1]; ++i1) {
      const int32_t s1 = i1 - p->before[1];
      for (i2 = 0; i2 < od[2]; ++i2) {
        const int32_t s2 = i2 - p->before[2];
        for (i3 = 0; i3 < od[3]; ++i3) {
          const int32_t s3 = i3 - p->before[3];
          int8_t v = (int8_t)p->value;
          if (s0 >= 0 && s0 < p->dims[0] && s1 >= 0 && s1 < p->dims[1] &&
              s2 >= 0 && s2 < p->dims[2] && s3 >= 0 && s3 < p->dims[3]) {
            v = input[(((size_t)s0 * (size_t)p->dims[1] + (size_t)s1) *
                           (size_t)p->dims[2] + (size_t)s2) *
                          (size_t)p->dims[3] + (size_t)s3];
          }
          output[idx++] = v;
        }
      }
    }
  }
  return EBNN_OK;
}

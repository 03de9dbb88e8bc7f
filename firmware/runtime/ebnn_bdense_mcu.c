/*
 * Binary dense (xnor-popcount FULLY_CONNECTED), kernel set "mcu": the same
 * float operations as ebnn_bdense_ref, the popcount of each output row
 * counted by ebnn__mcu_xor_popcount (SWAR, folding shared by three words,
 * USADA8 on DSP cores).
 */
#include "ebnn.h"
#include "ebnn_internal.h"
#include "ebnn_mcu_internal.h"

ebnn_status_t ebnn_bdense_mcu(const ebnn_bdense_params_t *params,
                              const int32_t *input, float *output) {
  int32_t r, o, words;
  const ebnn_bdense_params_t *p = params;
  if (p == NULL || input == NULL || output == NULL || p->weights == NULL)
    return EBNN_ERROR_NULL_POINTER;
  if (p->rows <= 0 || p->in_features <= 0 || p->out_features <= 0)
    return EBNN_ERROR_BAD_SHAPE;
  if (!ebnn__act_valid(p->activation)) return EBNN_ERROR_BAD_ENUM;
  words = EBNN_PACKED_WORDS(p->in_features);
  for (r = 0; r < p->rows; ++r) {
    const int32_t *x = input + (size_t)r * (size_t)words;
    float *out = output + (size_t)r * (size_t)p->out_features;
    const int32_t *wt = p->weights;
    for (o = 0; o < p->out_features; ++o, wt += words) {
      const int32_t count = ebnn__mcu_xor_popcount(x, wt, words);
      float y = (float)(p->in_features - 2 * count);
      if (p->multiplier != NULL) y = y * p->multiplier[o];
      if (p->bias != NULL) y = y + p->bias[o];
      out[o] = ebnn__act(y, p->activation);
    }
  }
  return EBNN_OK;
}

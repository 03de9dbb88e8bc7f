/*
 * Elementwise int8 ADD and MUL (TFLite's reference_integer_ops add.h and
 * mul.h arithmetic). Integer only: no float code.
 */
#include "ebnn.h"
#include "ebnn_int8_internal.h"

static ebnn_status_t bcast_check(int32_t size, int32_t b_size, const void *a,
                                 const void *b, const void *out) {
  if (a == NULL || b == NULL || out == NULL) return EBNN_ERROR_NULL_POINTER;
  if (size < 0 || b_size <= 0 || (size % b_size) != 0)
    return EBNN_ERROR_BAD_SHAPE;
  return EBNN_OK;
}

ebnn_status_t ebnn_int8_add_ref(const ebnn_int8_add_params_t *params,
                                const int8_t *a, const int8_t *b,
                                int8_t *output) {
  const ebnn_int8_add_params_t *p = params;
  int32_t i, j = 0; /* j = i % b_size without a division per element */
  ebnn_status_t st;
  if (p == NULL) return EBNN_ERROR_NULL_POINTER;
  st = bcast_check(p->size, p->b_size, a, b, output);
  if (st != EBNN_OK) return st;
  if (p->left_shift < 0 || p->left_shift > 30 ||
      !ebnn__int8_zp_valid(p->a_zero_point) ||
      !ebnn__int8_zp_valid(p->b_zero_point) ||
      !ebnn__int8_zp_valid(p->output_zero_point) ||
      !ebnn__int8_qm_valid(p->a_multiplier, p->a_shift) ||
      !ebnn__int8_qm_valid(p->b_multiplier, p->b_shift) ||
      !ebnn__int8_qm_valid(p->output_multiplier, p->output_shift) ||
      !ebnn__int8_range_valid(p->act_min, p->act_max))
    return EBNN_ERROR_BAD_SHAPE;
  for (i = 0; i < p->size; ++i) {
    const int32_t av = ((int32_t)a[i] - p->a_zero_point) * (1 << p->left_shift);
    const int32_t bv =
        ((int32_t)b[j] - p->b_zero_point) * (1 << p->left_shift);
    const int32_t as = ebnn_int8_multiply_by_quantized_multiplier(
        av, p->a_multiplier, p->a_shift);
    const int32_t bs = ebnn_int8_multiply_by_quantized_multiplier(
        bv, p->b_multiplier, p->b_shift);
    const int32_t y = ebnn_int8_multiply_by_quantized_multiplier(
                          as + bs, p->output_multiplier, p->output_shift) +
                      p->output_zero_point;
    output[i] = ebnn__int8_clamp(y, p->act_min, p->act_max);
    if (++j == p->b_size) j = 0;
  }
  return EBNN_OK;
}

ebnn_status_t ebnn_int8_mul_ref(const ebnn_int8_mul_params_t *params,
                                const int8_t *a, const int8_t *b,
                                int8_t *output) {
  const ebnn_int8_mul_params_t *p = params;
  int32_t i, j = 0; /* j = i % b_size without a division per element */
  ebnn_status_t st;
  if (p == NULL) return EBNN_ERROR_NULL_POINTER;
  st = bcast_check(p->size, p->b_size, a, b, output);
  if (st != EBNN_OK) return st;
  if (!ebnn__int8_zp_valid(p->a_zero_point) ||
      !ebnn__int8_zp_valid(p->b_zero_point) ||
      !ebnn__int8_zp_valid(p->output_zero_point) ||
      !ebnn__int8_qm_valid(p->output_multiplier, p->output_shift) ||
      !ebnn__int8_range_valid(p->act_min, p->act_max))
    return EBNN_ERROR_BAD_SHAPE;
  for (i = 0; i < p->size; ++i) {
    const int32_t prod = ((int32_t)a[i] - p->a_zero_point) *
                         ((int32_t)b[j] - p->b_zero_point);
    const int32_t y = ebnn_int8_multiply_by_quantized_multiplier(
                          prod, p->output_multiplier, p->output_shift) +
                      p->output_zero_point;
    output[i] = ebnn__int8_clamp(y, p->act_min, p->act_max);
    if (++j == p->b_size) j = 0;
  }
  return EBNN_OK;
}

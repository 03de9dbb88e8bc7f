/*
 * Data movement: SPLIT / SPLIT_V, STRIDED_SLICE / SLICE, TRANSPOSE.
 *
 * Elements are 32-bit words copied as they are (float or int32), so the
 * results equal TFLite's exactly. Index arithmetic is in size_t; every shape
 * is checked before the first element is read.
 */
#include <string.h>

#include "ebnn.h"

typedef uint32_t ebnn__word_t;

/* ---------------------------------------------------------------------- */
/* SPLIT, SPLIT_V                                                          */
/* ---------------------------------------------------------------------- */

ebnn_status_t ebnn_split_ref(const ebnn_split_params_t *params,
                             const void *input, void *const *outputs) {
  const ebnn__word_t *src = (const ebnn__word_t *)input;
  int32_t i, o, total = 0;
  size_t pos = 0u;
  if (params == NULL || input == NULL || outputs == NULL)
    return EBNN_ERROR_NULL_POINTER;
  if (params->outer <= 0 || params->axis <= 0 || params->inner <= 0 ||
      params->n_outputs <= 0 || params->n_outputs > EBNN_SPLIT_MAX_OUTPUTS)
    return EBNN_ERROR_BAD_SHAPE;
  for (i = 0; i < params->n_outputs; ++i) {
    if (outputs[i] == NULL) return EBNN_ERROR_NULL_POINTER;
    if (params->sizes[i] < 0) return EBNN_ERROR_BAD_SHAPE;
    total += params->sizes[i];
  }
  if (total != params->axis) return EBNN_ERROR_BAD_SHAPE;
  for (o = 0; o < params->outer; ++o) {
    for (i = 0; i < params->n_outputs; ++i) {
      const size_t run = (size_t)params->sizes[i] * (size_t)params->inner;
      ebnn__word_t *dst = (ebnn__word_t *)outputs[i] + (size_t)o * run;
      if (run > 0u) memcpy(dst, src + pos, run * sizeof(ebnn__word_t));
      pos += run;
    }
  }
  return EBNN_OK;
}

/* ---------------------------------------------------------------------- */
/* STRIDED_SLICE, SLICE                                                    */
/* ---------------------------------------------------------------------- */

ebnn_status_t ebnn_strided_slice_ref(const ebnn_slice_params_t *params,
                                     const void *input, void *output) {
  const ebnn_slice_params_t *p = params;
  const ebnn__word_t *src = (const ebnn__word_t *)input;
  ebnn__word_t *dst = (ebnn__word_t *)output;
  size_t in_str[EBNN_MAX_DIMS];
  int32_t idx[EBNN_MAX_DIMS];
  size_t stride = 1u, n_out = 1u, k;
  int32_t d;
  if (p == NULL || input == NULL || output == NULL)
    return EBNN_ERROR_NULL_POINTER;
  if (p->rank < 1 || p->rank > EBNN_MAX_DIMS) return EBNN_ERROR_BAD_SHAPE;
  for (d = p->rank - 1; d >= 0; --d) {
    int32_t last;
    if (p->in_dims[d] <= 0 || p->out_dims[d] < 0 || p->strides[d] == 0)
      return EBNN_ERROR_BAD_SHAPE;
    if (p->out_dims[d] > 0) {
      /* first and last index read along d must lie inside the input */
      last = p->begin[d] + (p->out_dims[d] - 1) * p->strides[d];
      if (p->begin[d] < 0 || p->begin[d] >= p->in_dims[d] || last < 0 ||
          last >= p->in_dims[d])
        return EBNN_ERROR_BAD_SHAPE;
    }
    in_str[d] = stride;
    stride *= (size_t)p->in_dims[d];
    n_out *= (size_t)p->out_dims[d];
    idx[d] = 0;
  }
  for (k = 0; k < n_out; ++k) {
    size_t off = 0u;
    for (d = 0; d < p->rank; ++d)
      off += (size_t)(p->begin[d] + idx[d] * p->strides[d]) * in_str[d];
    dst[k] = src[off];
    for (d = p->rank - 1; d >= 0; --d) {
      if (++idx[d] < p->out_dims[d]) break;
      idx[d] = 0;
    }
  }
  return EBNN_OK;
}

/* ---------------------------------------------------------------------- */
/* TRANSPOSE                                                               */
/* ---------------------------------------------------------------------- */

ebnn_status_t ebnn_transpose_ref(const ebnn_transpose_params_t *params,
                                 const void *input, void *output) {
  const ebnn_transpose_params_t *p = params;
  const ebnn__word_t *src = (const ebnn__word_t *)input;
  ebnn__word_t *dst = (ebnn__word_t *)output;
  size_t in_str[EBNN_MAX_DIMS], step[EBNN_MAX_DIMS];
  int32_t out_dims[EBNN_MAX_DIMS], idx[EBNN_MAX_DIMS], seen[EBNN_MAX_DIMS];
  size_t stride = 1u, n = 1u, k, off = 0u;
  int32_t d;
  if (p == NULL || input == NULL || output == NULL)
    return EBNN_ERROR_NULL_POINTER;
  if (p->rank < 1 || p->rank > EBNN_MAX_DIMS) return EBNN_ERROR_BAD_SHAPE;
  for (d = 0; d < p->rank; ++d) seen[d] = 0;
  for (d = p->rank - 1; d >= 0; --d) {
    if (p->in_dims[d] <= 0) return EBNN_ERROR_BAD_SHAPE;
    in_str[d] = stride;
    stride *= (size_t)p->in_dims[d];
  }
  for (d = 0; d < p->rank; ++d) {
    const int32_t src_d = p->perm[d];
    if (src_d < 0 || src_d >= p->rank || seen[src_d]) return EBNN_ERROR_BAD_SHAPE;
    seen[src_d] = 1;
    out_dims[d] = p->in_dims[src_d];
    step[d] = in_str[src_d];
    n *= (size_t)out_dims[d];
    idx[d] = 0;
  }
  for (k = 0; k < n; ++k) {
    dst[k] = src[off];
    for (d = p->rank - 1; d >= 0; --d) {
      off += step[d];
      if (++idx[d] < out_dims[d]) break;
      off -= step[d] * (size_t)out_dims[d];
      idx[d] = 0;
    }
  }
  return EBNN_OK;
}

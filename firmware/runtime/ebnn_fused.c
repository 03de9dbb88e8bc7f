/*
 * Fused row-sliced chain: producer (CONV_2D or float-output LceBconv2d) ->
 * optional MAX_POOL_2D -> MUL/ADD stages -> LceQuantize.
 *
 * For each output row of the pool, the producer rows under the pool window
 * are computed into the scratch buffer with the same row routines the
 * unfused kernels use (ebnn__conv2d_row, ebnn__bconv2d_row_float), then each
 * pixel is pooled with ebnn__maxpool_pixel, passed through the stages with
 * ebnn__mul1 / ebnn__add1 and packed with ebnn__pack_pixel: the same float
 * operations in the same order as the unfused sequence, hence bit-exact.
 * Overlapping pool windows (stride < filter) recompute the shared producer
 * rows instead of keeping them.
 */
#include "ebnn.h"
#include "ebnn_internal.h"

ebnn_status_t ebnn__fused_plan(const ebnn_fused_params_t *p, ebnn__fused_plan_t *pl) {
  int32_t i;
  ebnn_status_t st;
  if (p == NULL) return EBNN_ERROR_NULL_POINTER;
  if (p->producer == EBNN_PRODUCER_CONV2D) {
    if (p->conv == NULL) return EBNN_ERROR_NULL_POINTER;
    st = ebnn__conv2d_check(p->conv, &pl->conv_g);
    if (st != EBNN_OK) return st;
    if (p->conv->filter_layout == EBNN_FILTER_HWIO16) return EBNN_ERROR_UNSUPPORTED; /* OHWI / HWIO rows only */
    pl->prod_h = pl->conv_g.out_h;
    pl->prod_w = pl->conv_g.out_w;
    pl->channels = p->conv->out_c;
  } else if (p->producer == EBNN_PRODUCER_BCONV2D) {
    if (p->bconv == NULL) return EBNN_ERROR_NULL_POINTER;
    if (p->bconv->thresholds != NULL) return EBNN_ERROR_UNSUPPORTED;
    st = ebnn__bconv2d_check(p->bconv, &pl->bconv_g);
    if (st != EBNN_OK) return st;
    pl->prod_h = pl->bconv_g.g.out_h;
    pl->prod_w = pl->bconv_g.g.out_w;
    pl->channels = p->bconv->out_c;
  } else {
    return EBNN_ERROR_BAD_ENUM;
  }
  if (p->n_stages < 0 || p->n_stages > EBNN_FUSED_MAX_STAGES)
    return EBNN_ERROR_BAD_SHAPE;
  for (i = 0; i < p->n_stages; ++i) {
    const ebnn_fused_stage_t *s = &p->stages[i];
    if (s->values == NULL) return EBNN_ERROR_NULL_POINTER;
    if (s->kind != EBNN_STAGE_MUL && s->kind != EBNN_STAGE_ADD)
      return EBNN_ERROR_BAD_ENUM;
    if (s->size != 1 && s->size != pl->channels) return EBNN_ERROR_BAD_SHAPE;
    if (!ebnn__act_valid(s->activation)) return EBNN_ERROR_BAD_ENUM;
  }
  if (p->has_pool) {
    pl->pool = p->pool;
    if (pl->pool.in_h == 0) pl->pool.in_h = pl->prod_h;
    if (pl->pool.in_w == 0) pl->pool.in_w = pl->prod_w;
    if (pl->pool.channels == 0) pl->pool.channels = pl->channels;
    if (pl->pool.in_h != pl->prod_h || pl->pool.in_w != pl->prod_w ||
        pl->pool.channels != pl->channels)
      return EBNN_ERROR_BAD_SHAPE;
    st = ebnn__pool_geom(&pl->pool, &pl->pool_g);
    if (st != EBNN_OK) return st;
    pl->out_h = pl->pool_g.out_h;
    pl->out_w = pl->pool_g.out_w;
    pl->scratch_floats =
        (size_t)(pl->pool.filter_h < pl->prod_h ? pl->pool.filter_h : pl->prod_h) *
            (size_t)pl->prod_w * (size_t)pl->channels +
        (size_t)pl->channels;
  } else {
    pl->out_h = pl->prod_h;
    pl->out_w = pl->prod_w;
    pl->scratch_floats = (size_t)pl->prod_w * (size_t)pl->channels;
  }
  return EBNN_OK;
}

size_t ebnn_fused_scratch_bytes(const ebnn_fused_params_t *params) {
  ebnn__fused_plan_t pl;
  if (ebnn__fused_plan(params, &pl) != EBNN_OK) return 0;
  return pl.scratch_floats * sizeof(float);
}

ebnn_status_t ebnn_fused_output_shape(const ebnn_fused_params_t *params,
                                      int32_t *out_h, int32_t *out_w,
                                      int32_t *channels) {
  ebnn__fused_plan_t pl;
  ebnn_status_t st;
  if (out_h == NULL || out_w == NULL || channels == NULL)
    return EBNN_ERROR_NULL_POINTER;
  st = ebnn__fused_plan(params, &pl);
  if (st != EBNN_OK) return st;
  *out_h = pl.out_h;
  *out_w = pl.out_w;
  *channels = pl.channels;
  return EBNN_OK;
}

static void produce_row(const ebnn_fused_params_t *p, const ebnn__fused_plan_t *pl,
                        const void *input, int32_t row, float *dst) {
  if (p->producer == EBNN_PRODUCER_CONV2D) {
    ebnn__conv2d_row(p->conv, &pl->conv_g, (const float *)input, row, dst);
  } else {
    ebnn__bconv2d_row_float(p->bconv, &pl->bconv_g, (const int32_t *)input,
                            row, dst);
  }
}

/* MUL/ADD stages on one pixel (in place), then pack it. */
static void finish_pixel(const ebnn_fused_params_t *p, float *px,
                         int32_t channels, int32_t *out) {
  int32_t s, c;
  for (s = 0; s < p->n_stages; ++s) {
    const ebnn_fused_stage_t *st = &p->stages[s];
    if (st->kind == EBNN_STAGE_MUL) {
      for (c = 0; c < channels; ++c)
        px[c] = ebnn__mul1(px[c], st->values[st->size == 1 ? 0 : c], st->activation);
    } else {
      for (c = 0; c < channels; ++c)
        px[c] = ebnn__add1(px[c], st->values[st->size == 1 ? 0 : c], st->activation);
    }
  }
  ebnn__pack_pixel(px, channels, out);
}

ebnn_status_t ebnn_fused_conv_pool_affine_quantize_ref(
    const ebnn_fused_params_t *params, const void *input, int32_t *output,
    void *scratch, size_t scratch_bytes) {
  ebnn__fused_plan_t pl;
  ebnn_status_t st;
  float *buf = (float *)scratch;
  int32_t oy, ox, r;
  const ebnn_fused_params_t *p = params;
  if (p == NULL || input == NULL || output == NULL || scratch == NULL)
    return EBNN_ERROR_NULL_POINTER;
  st = ebnn__fused_plan(p, &pl);
  if (st != EBNN_OK) return st;
  if (scratch_bytes < pl.scratch_floats * sizeof(float))
    return EBNN_ERROR_SCRATCH_TOO_SMALL;
  {
    const int32_t words = EBNN_PACKED_WORDS(pl.channels);
    const size_t row_floats = (size_t)pl.prod_w * (size_t)pl.channels;
    if (!p->has_pool) {
      for (oy = 0; oy < pl.out_h; ++oy) {
        produce_row(p, &pl, input, oy, buf);
        for (ox = 0; ox < pl.out_w; ++ox) {
          finish_pixel(p, buf + (size_t)ox * (size_t)pl.channels, pl.channels,
                       output + ((size_t)oy * (size_t)pl.out_w + (size_t)ox) *
                                    (size_t)words);
        }
      }
    } else {
      const size_t n_rows_max = (pl.scratch_floats - (size_t)pl.channels) / row_floats;
      float *px = buf + n_rows_max * row_floats;
      for (oy = 0; oy < pl.out_h; ++oy) {
        int32_t y0, y1;
        ebnn__window(oy, pl.pool.stride_h, pl.pool_g.pad_top, pl.pool.filter_h,
                     pl.pool.in_h, &y0, &y1);
        for (r = y0; r < y1; ++r)
          produce_row(p, &pl, input, r, buf + (size_t)(r - y0) * row_floats);
        for (ox = 0; ox < pl.out_w; ++ox) {
          int32_t x0, x1;
          ebnn__window(ox, pl.pool.stride_w, pl.pool_g.pad_left,
                       pl.pool.filter_w, pl.pool.in_w, &x0, &x1);
          ebnn__maxpool_pixel(buf, pl.prod_w, pl.channels, 0, y1 - y0, x0, x1,
                              pl.pool.activation, px);
          finish_pixel(p, px, pl.channels,
                       output + ((size_t)oy * (size_t)pl.out_w + (size_t)ox) *
                                    (size_t)words);
        }
      }
    }
  }
  return EBNN_OK;
}

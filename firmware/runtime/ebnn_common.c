/* Shape helpers shared by all kernels (TFLite's padding arithmetic). */
#include "ebnn.h"

int32_t ebnn_output_size(int32_t in, int32_t filter, int32_t stride,
                         int32_t dilation, ebnn_padding_t padding) {
  int32_t eff;
  if (in <= 0 || filter <= 0 || stride <= 0 || dilation <= 0) return 0;
  eff = (filter - 1) * dilation + 1;
  if (padding == EBNN_PADDING_SAME) return (in + stride - 1) / stride;
  if (padding == EBNN_PADDING_VALID) {
    if (in < eff) return 0;
    return (in - eff + stride) / stride;
  }
  return 0;
}

int32_t ebnn_padding_before(int32_t in, int32_t filter, int32_t stride,
                            int32_t dilation, ebnn_padding_t padding) {
  int32_t out, eff, total;
  if (padding != EBNN_PADDING_SAME) return 0;
  out = ebnn_output_size(in, filter, stride, dilation, padding);
  if (out <= 0) return 0;
  eff = (filter - 1) * dilation + 1;
  total = (out - 1) * stride + eff - in;
  return total > 0 ? total / 2 : 0;
}

/* ebnn_bconv2d_opt against ebnn_bconv2d_ref on 8 shapes (tests/test_runtime_opt_arm64.py
 * builds it for aarch64 and runs it under qemu-aarch64: the NEON path). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ebnn.h"
static uint32_t s = 12345u;
static uint32_t rnd(void) { s = s * 1664525u + 1013904223u; return s; }
int main(void) {
  static int32_t in[9 * 10 * 16], filt[80 * 9 * 16], filt_t[80 * 9 * 16], thr[80];
  static float m[80], b[80], o1[9 * 10 * 80], o2[9 * 10 * 80];
  int cfg, bad = 0;
  for (cfg = 0; cfg < 4; ++cfg) {
    const int inc = cfg == 0 ? 512 : (cfg == 1 ? 70 : (cfg == 2 ? 33 : 64));
    const int oc = cfg == 0 ? 80 : (cfg == 1 ? 48 : (cfg == 2 ? 17 : 64));
    const int words = (inc + 31) / 32, k = 9 * words;
    int i, o, t, packed;
    for (i = 0; i < 9 * 10 * words; ++i) in[i] = (int32_t)rnd();
    for (i = 0; i < oc * k; ++i) filt[i] = (int32_t)rnd();
    if (inc % 32) {
      const int32_t mask = (int32_t)((1u << (inc % 32)) - 1u);
      for (i = words - 1; i < 9 * 10 * words; i += words) in[i] &= mask;
      for (i = words - 1; i < oc * k; i += words) filt[i] &= mask;
    }
    for (o = 0; o < oc; ++o) for (t = 0; t < k; ++t) filt_t[t * oc + o] = filt[o * k + t];
    for (o = 0; o < oc; ++o) { m[o] = (float)(rnd() % 1000) / 300.0f - 1.5f; b[o] = (float)(rnd() % 1000) / 100.0f; thr[o] = (int32_t)(rnd() % (unsigned)(9 * inc)); }
    for (packed = 0; packed < 2; ++packed) {
      ebnn_bconv2d_params_t p;
      memset(&p, 0, sizeof p);
      p.in_h = 9; p.in_w = 10; p.in_c = inc; p.out_c = oc; p.filter_h = 3; p.filter_w = 3;
      p.stride_h = 1 + cfg % 2; p.stride_w = 1 + cfg % 2; p.dilation_h = 1; p.dilation_w = 1;
      p.padding = EBNN_PADDING_SAME; p.pad_value = 1; p.activation = EBNN_ACT_NONE;
      p.filter = filt; p.multiplier = packed ? NULL : m; p.bias = packed ? NULL : b;
      p.thresholds = packed ? thr : NULL; p.filter_t = filt_t;
      memset(o1, 0, sizeof o1); memset(o2, 0xff, sizeof o2);
      if (ebnn_bconv2d_ref(&p, in, o1) || ebnn_bconv2d_opt(&p, in, o2)) { printf("status\n"); return 2; }
      const int npx = p.stride_h == 1 ? 90 : 25;
      if (memcmp(o1, o2, (size_t)npx * (size_t)(packed ? (oc + 31) / 32 : oc) * 4u) != 0) { ++bad; printf("MISMATCH cfg %d packed %d\n", cfg, packed); }
    }
  }
  printf("neon bconv opt vs ref: %d mismatches\n", bad);
  return bad != 0;
}

/* ebnn_bconv2d_opt against ebnn_bconv2d_ref on 8 shapes, and ebnn_lconv2d_opt against
 * ebnn_lconv2d_ref on the same filters (codes 0..3 and 0..7) plus a one-pixel dense layer
 * (tests/test_runtime_opt_arm64.py builds it for aarch64 and runs it under qemu-aarch64: the
 * NEON path), then one-channel float convs and max pools (GNU vectors on NEON). */
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
  for (cfg = 0; cfg < 5; ++cfg) { /* level-coded: cfg 4 is a 1024 -> 80 dense layer on one pixel */
    static float codes[9 * 10 * 512], o3[9 * 10 * 80], o4[9 * 10 * 80];
    static int32_t scratch[3 * 9 * 10 * 16];
    const int dense = cfg == 4;
    const int inc = dense ? 1024 : (cfg == 0 ? 512 : (cfg == 1 ? 70 : (cfg == 2 ? 33 : 64)));
    const int oc = dense ? 80 : (cfg == 0 ? 80 : (cfg == 1 ? 48 : (cfg == 2 ? 17 : 64)));
    const int words = (inc + 31) / 32, fh = dense ? 1 : 3, k = fh * fh * words;
    const int h = dense ? 1 : 9, w = dense ? 1 : 10, levels = cfg % 2 ? 7 : 3;
    int i, o, t;
    ebnn_lconv2d_params_t lp;
    for (i = 0; i < h * w * inc; ++i) codes[i] = (float)(rnd() % (unsigned)(levels + 1));
    for (i = 0; i < oc * k; ++i) filt[i] = (int32_t)rnd();
    if (inc % 32) {
      const int32_t mask = (int32_t)((1u << (inc % 32)) - 1u);
      for (i = words - 1; i < oc * k; i += words) filt[i] &= mask;
    }
    for (o = 0; o < oc; ++o) for (t = 0; t < k; ++t) filt_t[t * oc + o] = filt[o * k + t];
    for (o = 0; o < oc; ++o) { m[o] = (float)(rnd() % 1000) / 30000.0f + 0.01f; b[o] = (float)(rnd() % 1000) / 100.0f; }
    memset(&lp, 0, sizeof lp);
    lp.conv.in_h = h; lp.conv.in_w = w; lp.conv.in_c = inc; lp.conv.out_c = oc;
    lp.conv.filter_h = fh; lp.conv.filter_w = fh; lp.conv.stride_h = 1 + cfg % 2; lp.conv.stride_w = 1 + cfg % 2;
    lp.conv.dilation_h = 1; lp.conv.dilation_w = 1; lp.conv.padding = dense ? EBNN_PADDING_VALID : EBNN_PADDING_SAME;
    lp.conv.pad_value = 1; lp.conv.activation = EBNN_ACT_NONE; lp.conv.filter = filt; lp.conv.multiplier = m;
    lp.conv.bias = b; lp.conv.filter_t = filt_t; lp.levels = levels; lp.activation = EBNN_ACT_RELU;
    if (ebnn_lconv2d_scratch_bytes(&lp) > sizeof scratch) { printf("scratch\n"); return 2; }
    memset(o3, 0, sizeof o3); memset(o4, 0xff, sizeof o4);
    if (ebnn_lconv2d_ref(&lp, codes, o3, scratch, sizeof scratch) ||
        ebnn_lconv2d_opt(&lp, codes, o4, scratch, sizeof scratch)) { printf("lconv status\n"); return 2; }
    {
      const int npx = dense ? 1 : (lp.conv.stride_h == 1 ? 90 : 25);
      if (memcmp(o3, o4, (size_t)npx * (size_t)oc * 4u) != 0) { ++bad; printf("MISMATCH lconv cfg %d\n", cfg); }
    }
  }
  for (cfg = 0; cfg < 3; ++cfg) { /* one-channel float stems (cvo_mono) and a max pool on GNU vectors */
    static float x[28 * 28], fw[7 * 7 * 40], fb[40], y1[28 * 28 * 40], y2[28 * 28 * 40], y3[14 * 14 * 40];
    const int hw = cfg == 0 ? 28 : 11, oc = cfg == 2 ? 40 : 32, f = cfg == 1 ? 5 : 3;
    const size_t n_out = (size_t)hw * (size_t)hw * (size_t)oc; /* SAME: the largest output */
    ebnn_conv2d_params_t cp;
    ebnn_pool2d_params_t pp;
    int i;
    for (i = 0; i < hw * hw; ++i) x[i] = (float)(rnd() % 2001) / 1000.0f - 1.0f;
    for (i = 0; i < f * f * oc; ++i) fw[i] = (float)(rnd() % 2001) / 997.0f - 1.0f;
    for (i = 0; i < oc; ++i) fb[i] = (float)(rnd() % 2001) / 991.0f - 1.0f;
    memset(&cp, 0, sizeof cp);
    cp.in_h = hw; cp.in_w = hw; cp.in_c = 1; cp.out_c = oc; cp.filter_h = f; cp.filter_w = f;
    cp.stride_h = cfg == 2 ? 2 : 1; cp.stride_w = 1; cp.dilation_h = 1; cp.dilation_w = 1;
    cp.padding = cfg == 0 ? EBNN_PADDING_VALID : EBNN_PADDING_SAME;
    cp.activation = cfg == 1 ? EBNN_ACT_RELU6 : EBNN_ACT_NONE; cp.filter = fw; cp.bias = fb;
    cp.filter_layout = EBNN_FILTER_HWIO;
    memset(y1, 0, sizeof y1); memset(y2, 0, sizeof y2);
    if (ebnn_conv2d_ref(&cp, x, y1) || ebnn_conv2d_opt(&cp, x, y2)) { printf("conv status\n"); return 2; }
    if (memcmp(y1, y2, n_out * 4u) != 0) { ++bad; printf("MISMATCH conv cfg %d\n", cfg); }
    memset(&pp, 0, sizeof pp); /* the conv's output, pooled 2x2 / 2 (SAME: a clamped last window) */
    pp.in_h = hw; pp.in_w = hw; pp.channels = oc; pp.filter_h = 2; pp.filter_w = 2; pp.stride_h = 2; pp.stride_w = 2;
    pp.padding = cfg == 0 ? EBNN_PADDING_VALID : EBNN_PADDING_SAME; pp.activation = EBNN_ACT_NONE;
    if (cfg == 0) pp.in_h = pp.in_w = 26;
    y1[0] = 0.0f / 0.0f; y1[1] = -0.0f; y1[oc + 1] = 0.0f; /* a NaN tap, a tie of zeros */
    if (ebnn_max_pool2d_ref(&pp, y1, y2) || ebnn_max_pool2d_opt(&pp, y1, y3)) { printf("pool status\n"); return 2; }
    if (memcmp(y2, y3, (size_t)((pp.in_h + 1) / 2) * (size_t)((pp.in_w + 1) / 2) * (size_t)oc * 4u) != 0) {
      ++bad;
      printf("MISMATCH pool cfg %d\n", cfg);
    }
  }
  printf("neon bconv opt vs ref: %d mismatches\n", bad);
  return bad != 0;
}

/* Runs the MNIST-BCNN-shaped kernels on fixed pseudo-random data and prints
 * an FNV-1a hash of every output, so a host build and a Cortex-M build (under
 * QEMU) can be compared bit for bit. On Cortex-M it also prints the
 * instructions each call took (SysTick under `qemu -icount shift=0` ticks
 * once per 40 instructions on mps2 boards: an emulator instruction count,
 * not a latency). */
#include <stdint.h>
#include <stdio.h>

#include "ebnn.h"

#if defined(__ARM_ARCH) && !defined(__aarch64__) && !defined(__linux__)
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
static uint32_t t0;
static void start(void) {
  SYST_RVR = 0xFFFFFFu;
  SYST_CVR = 0u;
  SYST_CSR = 5u;
  t0 = SYST_CVR;
}
static unsigned long stop(void) { return 40ul * ((t0 - SYST_CVR) & 0xFFFFFFu); }
#else
static void start(void) {}
static unsigned long stop(void) { return 0ul; }
#endif

static uint32_t fnv(const void *data, size_t n) {
  const unsigned char *p = (const unsigned char *)data;
  uint32_t h = 2166136261u;
  size_t i;
  for (i = 0; i < n; ++i) h = (h ^ p[i]) * 16777619u;
  return h;
}

static uint32_t rng = 1u;
static uint32_t next(void) {
  rng = rng * 1664525u + 1013904223u;
  return rng;
}
static float frand(void) { return (float)(int32_t)(next() >> 8) / 4194304.0f - 2.0f; }

static int32_t bin_in[13 * 13], bfilt[64 * 9], bfilt2[64 * 9 * 2], thr[64];
static int32_t packed1[13 * 13], packed2[5 * 5 * 2], bout[11 * 11 * 2], b2out[3 * 3 * 64 / 32];
static float mul[64], bias[64], fout[13 * 13 * 64], fin[28 * 28], ffilt[32 * 9], fbias[32];
static float conv_out[26 * 26 * 32], dense_out[10];
static float scratch[2048];

#define REPORT(name, buf, st, n)                                                     \
  printf("%s status=%d hash=%08lx instructions=%lu\n", (name), (int)(st),         \
         (unsigned long)fnv((buf), sizeof(buf)), (n))

int main(void) {
  int i;
  ebnn_status_t st;
  unsigned long n;
  for (i = 0; i < 13 * 13; ++i) bin_in[i] = (int32_t)next();
  for (i = 0; i < 64 * 9; ++i) bfilt[i] = (int32_t)next();
  for (i = 0; i < 64 * 18; ++i) bfilt2[i] = (int32_t)next();
  for (i = 0; i < 64; ++i) {
    mul[i] = frand();
    bias[i] = 10.0f * frand();
    thr[i] = 140 + (int32_t)(next() % 20u) - 10;
  }
  for (i = 0; i < 28 * 28; ++i) fin[i] = 100.0f * frand();
  for (i = 0; i < 32 * 9; ++i) ffilt[i] = frand();
  for (i = 0; i < 32; ++i) fbias[i] = frand();
  {
    ebnn_conv2d_params_t c = {28, 28, 1, 32, 3, 3, 1, 1, 1, 1, EBNN_PADDING_VALID,
                              EBNN_ACT_NONE, ffilt, fbias, EBNN_FILTER_OHWI};
    ebnn_bconv2d_params_t b = {13, 13, 32, 64, 3, 3, 1, 1, 1, 1, EBNN_PADDING_VALID, 1,
                               EBNN_ACT_NONE, bfilt, mul, bias, NULL, NULL};
    ebnn_bconv2d_params_t bz = b;
    ebnn_bconv2d_params_t b2 = {5, 5, 64, 64, 3, 3, 1, 1, 1, 1, EBNN_PADDING_VALID, 1,
                                EBNN_ACT_NONE, bfilt2, NULL, NULL, thr, NULL};
    ebnn_bdense_params_t d = {1, 64 * 9, 10, EBNN_ACT_NONE, bfilt2, mul, bias};
    ebnn_fused_params_t f;
    f.producer = EBNN_PRODUCER_CONV2D;
    f.conv = &c;
    f.bconv = NULL;
    f.has_pool = 1;
    f.pool.in_h = f.pool.in_w = f.pool.channels = 0;
    f.pool.filter_h = f.pool.filter_w = 2;
    f.pool.stride_h = f.pool.stride_w = 2;
    f.pool.padding = EBNN_PADDING_VALID;
    f.pool.activation = EBNN_ACT_NONE;
    f.n_stages = 2;
    f.stages[0].kind = EBNN_STAGE_MUL;
    f.stages[0].size = 32;
    f.stages[0].values = mul;
    f.stages[0].activation = EBNN_ACT_NONE;
    f.stages[1].kind = EBNN_STAGE_ADD;
    f.stages[1].size = 32;
    f.stages[1].values = bias;
    f.stages[1].activation = EBNN_ACT_NONE;

    start(); st = ebnn_conv2d_ref(&c, fin, conv_out); n = stop();
    REPORT("conv2d_28x28x1_to_26x26x32", conv_out, st, n);
    printf("fused_scratch_bytes=%lu\n", (unsigned long)ebnn_fused_scratch_bytes(&f));
    start(); st = ebnn_fused_conv_pool_affine_quantize_ref(&f, fin, packed1, scratch, sizeof scratch); n = stop();
    REPORT("fused_conv_pool_mul_add_quantize", packed1, st, n);
    start(); st = ebnn_bconv2d_ref(&b, bin_in, fout); n = stop();
    REPORT("bconv_13x13x32_to_11x11x64_float", fout, st, n);
    bz.padding = EBNN_PADDING_SAME;
    bz.pad_value = 0;
    f.producer = EBNN_PRODUCER_BCONV2D;
    f.conv = NULL;
    f.bconv = &b;
    f.stages[0].size = 64;
    f.stages[1].size = 64;
    start(); st = ebnn_fused_conv_pool_affine_quantize_ref(&f, bin_in, packed2, scratch, sizeof scratch); n = stop();
    REPORT("fused_bconv_pool_mul_add_quantize", packed2, st, n);
    start(); st = ebnn_bconv2d_ref(&bz, bin_in, fout); n = stop();
    REPORT("bconv_same_zero_13x13x32_to_13x13x64_float", fout, st, n);
    start(); st = ebnn_bconv2d_ref(&b2, packed2, b2out); n = stop();
    REPORT("bconv_5x5x64_to_3x3x64_packed", b2out, st, n);
    start(); st = ebnn_bdense_ref(&d, bfilt2 + 7, dense_out); n = stop();
    REPORT("bdense_576_to_10", dense_out, st, n);
    (void)bout;
  }
  return 0;
}

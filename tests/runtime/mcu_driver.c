/* Runs every case of the grid in mcu_grid.h (written by tests/test_runtime_mcu.py)
 * through the _ref and the _mcu kernel on the same pseudo-random data and
 * compares statuses and output bytes. Prints one line per case; the exit
 * status is the number of failing cases (at most 255). On bare-metal Arm it
 * also prints the instructions each call took (SysTick under `qemu -icount
 * shift=0`: EBNN_TICK_INSTRUCTIONS instructions per tick; an emulator
 * instruction count, not a latency). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ebnn.h"

enum { K_BCONV = 0, K_FUSED_BCONV = 1, K_FUSED_CONV = 2, K_BDENSE = 3, K_INT8_CONV = 4,
       K_INT8_BCONV = 5 };

typedef struct {
  const char *id;
  int kind;
  int in_h, in_w, in_c, out_c, fh, fw, sh, sw, dh, dw, padding, pad_value, act;
  int packed;    /* bconv: thresholds (bitpacked output) */
  int has_pool, pfh, pfw, psh, psw, ppad, pact;
  int n_stages;
  int stage_kind[EBNN_FUSED_MAX_STAGES], stage_scalar[EBNN_FUSED_MAX_STAGES],
      stage_act[EBNN_FUSED_MAX_STAGES];
  int bias_mode; /* conv: 0 random, 1 NULL, 2 with -0.0f/+0.0f; dense: 0 both, 1 no multiplier, 2 no bias */
  int zeros;     /* float inputs: 1 = many +-0.0f */
  int layout;    /* conv filter layout: EBNN_FILTER_OHWI or EBNN_FILTER_HWIO */
  unsigned seed;
} tcase_t;

#include "mcu_grid.h"

#if defined(__ARM_ARCH) && !defined(__aarch64__) && !defined(__linux__)
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#ifndef EBNN_TICK_INSTRUCTIONS
#define EBNN_TICK_INSTRUCTIONS 40
#endif
static uint32_t t0;
static void start(void) {
  SYST_RVR = 0xFFFFFFu;
  SYST_CVR = 0u;
  SYST_CSR = 5u;
  t0 = SYST_CVR;
}
static unsigned long stop(void) {
  return (unsigned long)(EBNN_TICK_INSTRUCTIONS * ((t0 - SYST_CVR) & 0xFFFFFFu));
}
#else
static void start(void) {}
static unsigned long stop(void) { return 0ul; }
#endif

static uint32_t rng;
static uint32_t next(void) {
  rng = rng * 1664525u + 1013904223u;
  return rng ^ (rng >> 15);
}
static float frand(void) { return (float)(int32_t)(next() >> 8) / 2097152.0f - 4.0f; }

#define MAX_IN 4096
#define MAX_FILT 12000
#define MAX_OUT 16000
#define GUARD 64

static int32_t bin_in[MAX_IN], bfilt[MAX_FILT], thr[512];
static float fin[MAX_IN], ffilt[MAX_FILT], mul[512], bias[512], sv[EBNN_FUSED_MAX_STAGES][512];
static unsigned char out_ref[MAX_OUT * 4 + GUARD], out_mcu[MAX_OUT * 4 + GUARD];
static float scratch[MAX_OUT];

/* Random words with the padding bits of the last word of each group 0. */
static void fill_packed(int32_t *w, long groups, int channels) {
  const int words = EBNN_PACKED_WORDS(channels);
  const uint32_t mask = channels % 32 ? (1u << (channels % 32)) - 1u : 0xFFFFFFFFu;
  long i;
  int k;
  for (i = 0; i < groups; ++i)
    for (k = 0; k < words; ++k)
      w[i * words + k] = (int32_t)(k == words - 1 ? next() & mask : next());
}

static void fill_floats(float *x, long n, int zeros) {
  long i;
  for (i = 0; i < n; ++i) {
    const uint32_t r = next() % 16u;
    x[i] = frand();
    if (zeros && r < 4u) x[i] = r < 2u ? 0.0f : -0.0f;
  }
}

static int run_case(const tcase_t *c, int index) {
  ebnn_bconv2d_params_t bp;
  ebnn_conv2d_params_t cp;
  ebnn_fused_params_t fp;
  ebnn_bdense_params_t dp;
  ebnn_int8_conv2d_params_t ip;
  ebnn_int8_lce_bconv2d_params_t qp;
  static int32_t i8_bias[512], i8_mult[512], i8_shift[512];
  ebnn_status_t st_ref = EBNN_OK, st_mcu = EBNN_OK;
  unsigned long n_ref = 0ul, n_mcu = 0ul;
  size_t nbytes = 0, sbytes = 0, i;
  int words = EBNN_PACKED_WORDS(c->in_c), s, diff = 0, guard = 0, ok;
  long k = (long)c->fh * c->fw;
  rng = c->seed * 2654435761u + 1u;
  memset(&bp, 0, sizeof bp);
  memset(&cp, 0, sizeof cp);
  memset(&fp, 0, sizeof fp);
  memset(&dp, 0, sizeof dp);
  memset(&ip, 0, sizeof ip);
  memset(&qp, 0, sizeof qp);
  for (i = 0; i < 512; ++i) {
    mul[i] = frand() * 0.5f;
    bias[i] = 8.0f * frand();
    thr[i] = (int32_t)(next() % (uint32_t)(k * c->in_c + 3)) - 1;
    for (s = 0; s < EBNN_FUSED_MAX_STAGES; ++s) sv[s][i] = frand();
  }
  if (c->bias_mode == 2)
    for (i = 0; i < 512; i += 2) bias[i] = (i % 4) ? 0.0f : -0.0f;
  thr[0] = INT32_MAX;
  thr[1] = -INT32_MAX;
  if (c->kind == K_BCONV || c->kind == K_FUSED_BCONV || c->kind == K_INT8_BCONV) {
    fill_packed(bin_in, (long)c->in_h * c->in_w, c->in_c);
    fill_packed(bfilt, (long)c->out_c * k, c->in_c);
    bp.in_h = c->in_h; bp.in_w = c->in_w; bp.in_c = c->in_c; bp.out_c = c->out_c;
    bp.filter_h = c->fh; bp.filter_w = c->fw; bp.stride_h = c->sh; bp.stride_w = c->sw;
    bp.dilation_h = c->dh; bp.dilation_w = c->dw; bp.padding = c->padding;
    bp.pad_value = c->pad_value; bp.activation = c->act; bp.filter = bfilt;
    if (c->packed) {
      bp.thresholds = thr;
    } else {
      bp.multiplier = mul;
      bp.bias = bias;
    }
  }
  if (c->kind == K_INT8_BCONV) { /* int8 output: LCE's output scale and zero point */
    qp.bconv = &bp;
    qp.output_scale = 0.05f + (float)(next() % 1000u) / 250.0f;
    qp.output_zero_point = (int32_t)(next() % 256u) - 128;
  }
  if (c->kind == K_FUSED_CONV) {
    fill_floats(fin, (long)c->in_h * c->in_w * c->in_c, c->zeros);
    fill_floats(ffilt, (long)c->out_c * k * c->in_c, c->zeros);
    if (c->layout == EBNN_FILTER_HWIO) { /* the same filter, transposed */
      static float t[MAX_FILT];
      long o, j, kk = k * c->in_c;
      for (o = 0; o < c->out_c; ++o)
        for (j = 0; j < kk; ++j) t[j * c->out_c + o] = ffilt[o * kk + j];
      memcpy(ffilt, t, sizeof(float) * (size_t)(kk * c->out_c));
    }
    cp.in_h = c->in_h; cp.in_w = c->in_w; cp.in_c = c->in_c; cp.out_c = c->out_c;
    cp.filter_h = c->fh; cp.filter_w = c->fw; cp.stride_h = c->sh; cp.stride_w = c->sw;
    cp.dilation_h = c->dh; cp.dilation_w = c->dw; cp.padding = c->padding;
    cp.activation = c->act; cp.filter = ffilt; cp.bias = c->bias_mode == 1 ? NULL : bias;
    cp.filter_layout = c->layout;
  }
  if (c->kind == K_FUSED_BCONV || c->kind == K_FUSED_CONV) {
    fp.producer = c->kind == K_FUSED_BCONV ? EBNN_PRODUCER_BCONV2D : EBNN_PRODUCER_CONV2D;
    fp.bconv = &bp;
    fp.conv = &cp;
    fp.has_pool = c->has_pool;
    fp.pool.filter_h = c->pfh; fp.pool.filter_w = c->pfw;
    fp.pool.stride_h = c->psh; fp.pool.stride_w = c->psw;
    fp.pool.padding = c->ppad; fp.pool.activation = c->pact;
    fp.n_stages = c->n_stages;
    for (s = 0; s < c->n_stages; ++s) {
      fp.stages[s].kind = c->stage_kind[s];
      fp.stages[s].size = c->stage_scalar[s] ? 1 : c->out_c;
      fp.stages[s].values = sv[s];
      fp.stages[s].activation = c->stage_act[s];
    }
  }
  if (c->kind == K_BDENSE) {
    fill_packed(bin_in, c->in_h, c->in_c);
    fill_packed(bfilt, c->out_c, c->in_c);
    dp.rows = c->in_h; dp.in_features = c->in_c; dp.out_features = c->out_c;
    dp.activation = c->act; dp.weights = bfilt;
    dp.multiplier = c->bias_mode == 1 ? NULL : mul;
    dp.bias = c->bias_mode == 2 ? NULL : bias;
  }
  if (c->kind == K_INT8_CONV) {
    const long n_in = (long)c->in_h * c->in_w * c->in_c, n_w = (long)c->out_c * k * c->in_c;
    int8_t *x = (int8_t *)(void *)bin_in, *w = (int8_t *)(void *)bfilt;
    long j;
    for (j = 0; j < n_in; ++j) x[j] = (int8_t)(next() >> 24);
    for (j = 0; j < n_w; ++j) w[j] = (int8_t)(next() >> 24);
    for (i = 0; i < 512; ++i) {
      i8_bias[i] = (int32_t)(next() % 20001u) - 10000;
      i8_mult[i] = (int32_t)(0x40000000u + (next() >> 2)); /* [2^30, 2^31) */
      i8_shift[i] = -(int32_t)(4u + next() % 8u);
    }
    ip.in_h = c->in_h; ip.in_w = c->in_w; ip.in_c = c->in_c; ip.out_c = c->out_c;
    ip.filter_h = c->fh; ip.filter_w = c->fw; ip.stride_h = c->sh; ip.stride_w = c->sw;
    ip.dilation_h = c->dh; ip.dilation_w = c->dw; ip.padding = c->padding;
    ip.input_zero_point = (int32_t)(next() % 256u) - 128;
    ip.output_zero_point = (int32_t)(next() % 256u) - 128;
    ip.act_min = c->act ? -100 : -128;
    ip.act_max = c->act ? 90 : 127;
    ip.filter = w;
    ip.bias = c->bias_mode == 1 ? NULL : i8_bias;
    ip.output_multiplier = i8_mult;
    ip.output_shift = i8_shift;
  }
  /* output bytes */
  if (c->kind == K_BCONV) {
    const int oh = ebnn_output_size(c->in_h, c->fh, c->sh, c->dh, c->padding);
    const int ow = ebnn_output_size(c->in_w, c->fw, c->sw, c->dw, c->padding);
    nbytes = (size_t)oh * (size_t)ow * (size_t)(c->packed ? EBNN_PACKED_WORDS(c->out_c) : c->out_c) * 4u;
  } else if (c->kind == K_BDENSE) {
    nbytes = (size_t)c->in_h * (size_t)c->out_c * 4u;
  } else if (c->kind == K_INT8_CONV || c->kind == K_INT8_BCONV) {
    const int oh = ebnn_output_size(c->in_h, c->fh, c->sh, c->dh, c->padding);
    const int ow = ebnn_output_size(c->in_w, c->fw, c->sw, c->dw, c->padding);
    nbytes = (size_t)oh * (size_t)ow * (size_t)c->out_c;
  } else {
    int32_t oh = 0, ow = 0, ch = 0;
    if (ebnn_fused_output_shape(&fp, &oh, &ow, &ch) == EBNN_OK)
      nbytes = (size_t)oh * (size_t)ow * (size_t)EBNN_PACKED_WORDS(ch) * 4u;
    sbytes = ebnn_fused_scratch_bytes(&fp);
  }
  if (nbytes > (size_t)MAX_OUT * 4u || sbytes > sizeof scratch) {
    printf("case %d %s too large\n", index, c->id);
    return 1;
  }
  (void)words;
  memset(out_ref, 0x11, sizeof out_ref);
  memset(out_mcu, 0xEE, sizeof out_mcu);
  for (s = 0; s < 2; ++s) {
    ebnn_status_t st;
    void *out = s == 0 ? (void *)out_ref : (void *)out_mcu;
    memset(scratch, 0x5A, sizeof scratch);
    start();
    if (c->kind == K_BCONV)
      st = s == 0 ? ebnn_bconv2d_ref(&bp, bin_in, out) : ebnn_bconv2d_mcu(&bp, bin_in, out);
    else if (c->kind == K_INT8_CONV)
      st = s == 0 ? ebnn_int8_conv2d_ref(&ip, (const int8_t *)(const void *)bin_in, (int8_t *)out)
                  : ebnn_int8_conv2d_mcu(&ip, (const int8_t *)(const void *)bin_in, (int8_t *)out);
    else if (c->kind == K_INT8_BCONV)
      st = s == 0 ? ebnn_int8_lce_bconv2d_ref(&qp, bin_in, (int8_t *)out)
                  : ebnn_int8_lce_bconv2d_mcu(&qp, bin_in, (int8_t *)out);
    else if (c->kind == K_BDENSE)
      st = s == 0 ? ebnn_bdense_ref(&dp, bin_in, (float *)out) : ebnn_bdense_mcu(&dp, bin_in, (float *)out);
    else if (s == 0)
      st = ebnn_fused_conv_pool_affine_quantize_ref(
          &fp, c->kind == K_FUSED_CONV ? (const void *)fin : (const void *)bin_in,
          (int32_t *)out, scratch, sbytes);
    else
      st = ebnn_fused_conv_pool_affine_quantize_mcu(
          &fp, c->kind == K_FUSED_CONV ? (const void *)fin : (const void *)bin_in,
          (int32_t *)out, scratch, sbytes);
    if (s == 0) {
      n_ref = stop();
      st_ref = st;
    } else {
      n_mcu = stop();
      st_mcu = st;
    }
  }
  if (st_ref == EBNN_OK) {
    for (i = 0; i < nbytes; ++i) diff += out_ref[i] != out_mcu[i];
    for (i = nbytes; i < nbytes + GUARD; ++i) guard += out_mcu[i] != 0xEE;
  }
  ok = st_ref == st_mcu && diff == 0 && guard == 0;
  printf("case %d %s status_ref=%d status_mcu=%d bytes=%lu diff=%d guard=%d "
         "ref_instructions=%lu mcu_instructions=%lu %s\n",
         index, c->id, (int)st_ref, (int)st_mcu, (unsigned long)nbytes, diff, guard,
         n_ref, n_mcu, ok ? "OK" : "FAIL");
  return !ok;
}

int main(void) {
  int i, bad = 0;
  const int n = (int)(sizeof CASES / sizeof CASES[0]);
  for (i = 0; i < n; ++i) bad += run_case(&CASES[i], i);
  printf("mcu vs ref: %d cases, %d failing\n", n, bad);
  return bad > 255 ? 255 : bad;
}

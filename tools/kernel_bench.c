/*
 * Microbenchmarks of single _opt kernels on the shapes the runtime README
 * quotes (MNIST bcnn's stem, pool and BN MUL; QuickNet's depthwise convs and
 * 512 -> 1000 head), each first checked bit for bit against its _ref
 * kernel. Build it against any runtime directory, e.g. this checkout's and
 * an older commit's (git worktree), and run the builds in turn:
 *
 *   R=firmware/runtime
 *   gcc -O3 -march=native -ffp-contract=off -DEBNN_USE_BUILTIN_POPCOUNT -I$R \
 *       tools/kernel_bench.c $R/ebnn_*.c -lm -o kbench && ./kbench
 *
 * Prints one line per case: the best time of ROUNDS rounds (each the mean
 * of a few calls, CLOCK_MONOTONIC, one thread), in microseconds. "cold"
 * FULLY_CONNECTED cases read 64 MiB of other memory before each call, so
 * the weights come from DRAM, as a model's last layer finds them. Where a
 * kernel has the weights_layout field (this commit on), the head runs both
 * layouts; older runtimes print only "oi". Arguments name the groups to
 * run (stem conv pool mul dw fc bconv bdense; none: all).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ebnn.h"

#define ROUNDS 200

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static unsigned rnd_state = 1u;
static float rnd(void) { /* uniform in [-1, 1) */
  rnd_state = rnd_state * 1664525u + 1013904223u;
  return (float)(rnd_state >> 8) / 8388608.0f - 1.0f;
}

static float *floats(size_t n) {
  float *p = malloc(n * sizeof(float) + 64);
  size_t i;
  if (p == NULL) exit(2);
  for (i = 0; i < n; ++i) p[i] = rnd();
  return p;
}

static void check(const char *name, const float *want, const float *got, size_t n) {
  if (memcmp(want, got, n * sizeof(float)) != 0) {
    printf("%s: MISMATCH against _ref\n", name);
    exit(1);
  }
}

/* best over ROUNDS of the mean of `calls` calls of the statement */
#define TIME(name, calls, stmt)                                       \
  do {                                                                \
    double best = 1e30;                                               \
    int r_, c_;                                                       \
    for (r_ = 0; r_ < ROUNDS; ++r_) {                                 \
      const double t0 = now_ns();                                     \
      for (c_ = 0; c_ < (calls); ++c_) stmt;                          \
      if ((now_ns() - t0) / (calls) < best) best = (now_ns() - t0) / (calls); \
    }                                                                 \
    printf("%-40s %9.2f us\n", name, best / 1e3);                     \
  } while (0)

static volatile long sink;

static void evict(void) { /* read 64 MiB of other memory */
  static char *junk;
  const size_t n = (size_t)64 << 20;
  size_t i;
  long s = 0;
  if (junk == NULL) {
    junk = malloc(n);
    if (junk == NULL) exit(2);
    memset(junk, 1, n);
  }
  for (i = 0; i < n; i += 64) s += junk[i];
  sink = s;
}

/* best over `rounds` single calls, each after evict(): operands from DRAM */
#define TIME_COLD(name, rounds, stmt)                                 \
  do {                                                                \
    double best = 1e30;                                               \
    int r_;                                                           \
    for (r_ = 0; r_ < (rounds); ++r_) {                               \
      double t0;                                                      \
      evict();                                                        \
      t0 = now_ns();                                                  \
      stmt;                                                           \
      if (now_ns() - t0 < best) best = now_ns() - t0;                 \
    }                                                                 \
    printf("%-40s %9.2f us\n", name, best / 1e3);                     \
  } while (0)

static void conv_stem(void) { /* MNIST bcnn: 28x28x1 -> 26x26x32, 3x3 VALID, HWIO */
  float *x = floats(28 * 28), *w = floats(9 * 32), *b = floats(32);
  float *y1 = floats(26 * 26 * 32), *y2 = floats(26 * 26 * 32);
  ebnn_conv2d_params_t p;
  memset(&p, 0, sizeof p);
  p.in_h = p.in_w = 28; p.in_c = 1; p.out_c = 32; p.filter_h = p.filter_w = 3;
  p.stride_h = p.stride_w = p.dilation_h = p.dilation_w = 1;
  p.padding = EBNN_PADDING_VALID; p.activation = EBNN_ACT_NONE;
  p.filter = w; p.bias = b; p.filter_layout = EBNN_FILTER_HWIO;
  ebnn_conv2d_ref(&p, x, y1);
  ebnn_conv2d_opt(&p, x, y2);
  check("conv2d 28x28x1 -> 32", y1, y2, 26 * 26 * 32);
  TIME("conv2d 28x28x1 -> 32, 3x3", 50, ebnn_conv2d_opt(&p, x, y2));
}

/* QuickNet's float convs: the 3x3x3 / 2 stem and the 1x1 transitions, the
 * filter HWIO or (blocked, runtimes that have it) HWIO16 as exported for
 * opt; cold: 64 MiB read before each call, so the filter comes from DRAM as
 * in a whole invoke */
static void conv_float(int hw, int in_c, int out_c, int k, int stride, int cold, int blocked) {
  const int oh = (hw + stride - 1) / stride;
  const size_t n_out = (size_t)oh * (size_t)oh * (size_t)out_c;
  float *x = floats((size_t)hw * (size_t)hw * (size_t)in_c), *w = floats((size_t)k * (size_t)k * (size_t)in_c * (size_t)out_c);
  float *b = floats((size_t)out_c), *y1 = floats(n_out), *y2 = floats(n_out);
  char name[64];
  ebnn_conv2d_params_t p;
  memset(&p, 0, sizeof p);
  p.in_h = p.in_w = hw; p.in_c = in_c; p.out_c = out_c; p.filter_h = p.filter_w = k;
  p.stride_h = p.stride_w = stride; p.dilation_h = p.dilation_w = 1;
  p.padding = EBNN_PADDING_SAME; p.activation = EBNN_ACT_NONE;
  p.filter = w; p.bias = b; p.filter_layout = EBNN_FILTER_HWIO;
  ebnn_conv2d_ref(&p, x, y1);
#ifdef EBNN_FILTER_HWIO16
  if (blocked) { /* the same filter in blocks of 16 output channels, as the generator writes it */
    const size_t kk = (size_t)k * (size_t)k * (size_t)in_c;
    float *wb = floats(kk * (size_t)out_c);
    size_t o, t;
    for (o = 0; o < (size_t)out_c; ++o) {
      const size_t width = (size_t)out_c - o / 16 * 16 < 16 ? (size_t)out_c - o / 16 * 16 : 16;
      for (t = 0; t < kk; ++t) wb[o / 16 * 16 * kk + t * width + o % 16] = w[t * (size_t)out_c + o];
    }
    p.filter = wb;
    p.filter_layout = EBNN_FILTER_HWIO16;
  }
#else
  if (blocked) return;
#endif
  ebnn_conv2d_opt(&p, x, y2);
  check("conv2d", y1, y2, n_out);
  snprintf(name, sizeof name, "conv2d %dx%dx%d -> %d, %dx%d/%d %s %s", hw, hw, in_c, out_c, k, k, stride,
           blocked ? "hwio16" : "hwio", cold ? "cold" : "warm");
  if (cold) {
    TIME_COLD(name, 30, ebnn_conv2d_opt(&p, x, y2));
  } else {
    TIME(name, 3, ebnn_conv2d_opt(&p, x, y2));
  }
}

static void max_pool(void) { /* MNIST bcnn: 26x26x32 -> 13x13x32, 2x2 / 2 */
  float *x = floats(26 * 26 * 32), *y1 = floats(13 * 13 * 32), *y2 = floats(13 * 13 * 32);
  ebnn_pool2d_params_t p;
  memset(&p, 0, sizeof p);
  p.in_h = p.in_w = 26; p.channels = 32; p.filter_h = p.filter_w = 2; p.stride_h = p.stride_w = 2;
  p.padding = EBNN_PADDING_VALID; p.activation = EBNN_ACT_NONE;
  ebnn_max_pool2d_ref(&p, x, y1);
  ebnn_max_pool2d_opt(&p, x, y2);
  check("max_pool2d", y1, y2, 13 * 13 * 32);
  TIME("max_pool2d 26x26x32, 2x2 / 2", 50, ebnn_max_pool2d_opt(&p, x, y2));
}

static void bn_mul(void) { /* MNIST bcnn: 13x13x32 times a per-channel vector */
  const int n = 13 * 13 * 32;
  float *a = floats((size_t)n), *b = floats(32), *y1 = floats((size_t)n), *y2 = floats((size_t)n);
  ebnn_binary_params_t p;
  p.size = n; p.b_size = 32; p.activation = EBNN_ACT_NONE;
  ebnn_mul_ref(&p, a, b, y1);
  ebnn_mul_opt(&p, a, b, y2);
  check("mul", y1, y2, (size_t)n);
  TIME("mul 13x13x32 by [32]", 50, ebnn_mul_opt(&p, a, b, y2));
}

static void depthwise(int hw, int ch, int stride) { /* QuickNet: 3x3 SAME, RELU */
  const int oh = (hw + stride - 1) / stride;
  const size_t n_out = (size_t)oh * (size_t)oh * (size_t)ch;
  float *x = floats((size_t)hw * (size_t)hw * (size_t)ch), *w = floats(9 * (size_t)ch), *b = floats((size_t)ch);
  float *y1 = floats(n_out), *y2 = floats(n_out);
  char name[64];
  ebnn_depthwise_conv2d_params_t p;
  memset(&p, 0, sizeof p);
  p.in_h = p.in_w = hw; p.in_c = ch; p.depth_multiplier = 1; p.filter_h = p.filter_w = 3;
  p.stride_h = p.stride_w = stride; p.dilation_h = p.dilation_w = 1;
  p.padding = EBNN_PADDING_SAME; p.activation = EBNN_ACT_RELU; p.filter = w; p.bias = b;
  ebnn_depthwise_conv2d_ref(&p, x, y1);
  ebnn_depthwise_conv2d_opt(&p, x, y2);
  check("depthwise", y1, y2, n_out);
  snprintf(name, sizeof name, "depthwise %dx%dx%d, 3x3 / %d", hw, hw, ch, stride);
  TIME(name, 5, ebnn_depthwise_conv2d_opt(&p, x, y2));
}

static void fully_connected(int n_in, int n_out, int io, int cold) {
  float *x = floats((size_t)n_in), *w = floats((size_t)n_in * (size_t)n_out), *b = floats((size_t)n_out);
  float *y1 = floats((size_t)n_out), *y2 = floats((size_t)n_out);
  char name[64];
  ebnn_fully_connected_params_t p;
  memset(&p, 0, sizeof p);
  p.rows = 1; p.in_features = n_in; p.out_features = n_out; p.activation = EBNN_ACT_NONE;
  p.weights = w; p.bias = b;
  ebnn_fully_connected_ref(&p, x, y1);
#ifdef EBNN_WEIGHTS_IO
  if (io) { /* the same weights as [in][out] */
    float *wt = floats((size_t)n_in * (size_t)n_out);
    int i, o;
    for (o = 0; o < n_out; ++o)
      for (i = 0; i < n_in; ++i) wt[(size_t)i * (size_t)n_out + (size_t)o] = w[(size_t)o * (size_t)n_in + (size_t)i];
    p.weights = wt;
    p.weights_layout = EBNN_WEIGHTS_IO;
  }
#else
  if (io) return;
#endif
  ebnn_fully_connected_opt(&p, x, y2);
  check("fully_connected", y1, y2, (size_t)n_out);
  snprintf(name, sizeof name, "fully_connected %d -> %d %s %s", n_in, n_out, io ? "io" : "oi", cold ? "cold" : "warm");
  if (cold) {
    TIME_COLD(name, 50, ebnn_fully_connected_opt(&p, x, y2));
  } else {
    TIME(name, 5, ebnn_fully_connected_opt(&p, x, y2));
  }
}

static int32_t *words(size_t n) {
  int32_t *p = malloc(n * sizeof(int32_t) + 64);
  size_t i;
  if (p == NULL) exit(2);
  for (i = 0; i < n; ++i) {
    rnd_state = rnd_state * 1664525u + 1013904223u;
    p[i] = (int32_t)rnd_state;
  }
  return p;
}

/* A bconv's parameters as the generator writes them: hw x hw x in_c ->
 * out_c, fk x fk, stride 1, pad value 1, float output, random packed
 * input and filter, filter_t its transpose; the input in *x */
static void bconv_params(ebnn_bconv2d_params_t *p, int hw, int in_c, int out_c, int fk, int padding,
                         int32_t **x) {
  const int wpp = (in_c + 31) / 32, k = fk * fk * wpp;
  int32_t *w = words((size_t)out_c * (size_t)k), *wt = words((size_t)out_c * (size_t)k);
  int o, t;
  *x = words((size_t)hw * (size_t)hw * (size_t)wpp);
  for (o = 0; o < out_c; ++o)
    for (t = 0; t < k; ++t) wt[(size_t)t * (size_t)out_c + (size_t)o] = w[(size_t)o * (size_t)k + (size_t)t];
  memset(p, 0, sizeof *p);
  p->in_h = p->in_w = hw; p->in_c = in_c; p->out_c = out_c; p->filter_h = p->filter_w = fk;
  p->stride_h = p->stride_w = p->dilation_h = p->dilation_w = 1;
  p->padding = padding; p->pad_value = 1; p->activation = EBNN_ACT_NONE;
  p->filter = w; p->multiplier = floats((size_t)out_c); p->bias = floats((size_t)out_c); p->filter_t = wt;
}

/* QuickNet's binary convs: hw x hw x ch -> ch, 3x3 SAME (pad value 1), float
 * output (the block's residual ADD follows), filter_t given as exported */
static void bconv(int hw, int ch) {
  const size_t n_out = (size_t)hw * (size_t)hw * (size_t)ch;
  float *y1 = floats(n_out), *y2 = floats(n_out);
  int32_t *x;
  char name[64];
  ebnn_bconv2d_params_t p;
  bconv_params(&p, hw, ch, ch, 3, EBNN_PADDING_SAME, &x);
  ebnn_bconv2d_ref(&p, x, y1);
  ebnn_bconv2d_opt(&p, x, y2);
  check("bconv2d", y1, y2, n_out);
  snprintf(name, sizeof name, "bconv2d %dx%dx%d -> %d, 3x3", hw, hw, ch, ch);
  TIME(name, 3, ebnn_bconv2d_opt(&p, x, y2));
#ifdef EBNN_BCONV_ADD
  { /* the block's residual ADD: as two calls, and merged (ebnn_bconv2d_add) */
    float *r = floats(n_out), *z1 = floats(n_out), *z2 = floats(n_out);
    ebnn_binary_params_t ap;
    ebnn_bconv2d_add_params_t bp;
    ap.size = (int32_t)n_out; ap.b_size = (int32_t)n_out; ap.activation = EBNN_ACT_NONE;
    bp.conv = p; bp.residual_first = 1; bp.activation = EBNN_ACT_NONE;
    ebnn_add_ref(&ap, r, y1, z1);
    ebnn_bconv2d_add_opt(&bp, x, r, z2);
    check("bconv2d_add", z1, z2, n_out);
    snprintf(name, sizeof name, "  then add %dx%dx%d", hw, hw, ch);
    TIME(name, 3, (ebnn_bconv2d_opt(&p, x, y2), ebnn_add_opt(&ap, r, y2, z1)));
    snprintf(name, sizeof name, "  bconv2d_add %dx%dx%d", hw, hw, ch);
    TIME(name, 3, ebnn_bconv2d_add_opt(&bp, x, r, z2));
  }
#endif
}

/* A binary dense layer as the generator runs it: one pixel, n_in -> n_out
 * as a 1x1 bconv, float output, filter_t given (BinaryAlexNet's and
 * DoReFa-Net's 4096 -> 4096: 2 MiB of filter bits, read once per call);
 * warm, and cold after evict() */
static void bdense(int n_in, int n_out, int cold) {
  float *y1 = floats((size_t)n_out), *y2 = floats((size_t)n_out);
  int32_t *x;
  char name[64];
  ebnn_bconv2d_params_t p;
  bconv_params(&p, 1, n_in, n_out, 1, EBNN_PADDING_VALID, &x);
  ebnn_bconv2d_ref(&p, x, y1);
  ebnn_bconv2d_opt(&p, x, y2);
  check("bdense", y1, y2, (size_t)n_out);
  snprintf(name, sizeof name, "bconv2d 1x1x%d -> %d %s", n_in, n_out, cold ? "cold" : "warm");
  if (cold) {
    TIME_COLD(name, 50, ebnn_bconv2d_opt(&p, x, y2));
  } else {
    TIME(name, 5, ebnn_bconv2d_opt(&p, x, y2));
  }
}

/* argv: run only the cases whose group name is given (stem conv pool mul dw fc
 * bconv bdense); none: all */
static int want(int argc, char **argv, const char *group) {
  int i;
  if (argc < 2) return 1;
  for (i = 1; i < argc; ++i)
    if (strcmp(argv[i], group) == 0) return 1;
  return 0;
}

int main(int argc, char **argv) {
  int io;
  if (want(argc, argv, "bconv")) {
    bconv(56, 64);
    bconv(28, 128);
    bconv(14, 256);
    bconv(7, 512);
  }
  if (want(argc, argv, "bdense")) {
    bdense(4096, 4096, 0);
    bdense(4096, 4096, 1);
    bdense(1024, 4096, 1);
  }
  if (want(argc, argv, "stem")) conv_stem();
  if (want(argc, argv, "conv")) {
    for (io = 0; io < 4; ++io) { /* warm / cold x HWIO / HWIO16 */
      conv_float(224, 3, 32, 3, 2, io & 1, io >> 1);
      conv_float(56, 32, 64, 1, 1, io & 1, io >> 1);
      conv_float(28, 64, 128, 1, 1, io & 1, io >> 1);
      conv_float(14, 128, 256, 1, 1, io & 1, io >> 1);
      conv_float(7, 256, 512, 1, 1, io & 1, io >> 1);
    }
  }
  if (want(argc, argv, "pool")) max_pool();
  if (want(argc, argv, "mul")) bn_mul();
  if (want(argc, argv, "dw")) {
    depthwise(112, 16, 2);
    depthwise(55, 64, 2);
    depthwise(28, 13, 1);
  }
  if (want(argc, argv, "fc"))
    for (io = 0; io < 2; ++io) {
      fully_connected(512, 1000, io, 0);
      fully_connected(512, 1000, io, 1);
      fully_connected(4096, 1000, io, 1);
    }
  return 0;
}

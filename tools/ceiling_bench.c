/*
 * Throughput ceilings of this CPU for tools/zoo_bench.py's roofline: the
 * XOR+popcount inner loops a binary conv can use and the float multiply-add
 * loop of a float conv, each run from L1 (a few KiB of operands, reused),
 * timed in thread CPU time (CLOCK_THREAD_CPUTIME_ID: on a shared machine
 * the time other jobs hold the core is not counted), best of many short
 * trials. Prints one JSON object:
 *   {"clock_ghz": .., "binary": {"<loop>": G MAC/s, ...}, "float": {...}}
 * A binary MAC is one bit of one XOR+popcount (1 word = 32 MACs); a float
 * MAC is one multiply and one add (kept separate: builds use
 * -ffp-contract=off). Loops (those the build's flags allow):
 *   avx2_split_2x32: the engine's AVX2 tile (ebnn_bconv_opt.c): operands
 *     split into nibbles ahead, 2 XOR + 2 VPSHUFB + 2 byte adds per word and
 *     8 channels, 2 pixels x 32 channels;
 *   avx2_shuffle_4x16: the plain nibble-table loop (XOR, 2 AND, shift,
 *     2 VPSHUFB, 2 adds), 4 pixels x 16 channels;
 *   scalar_popcnt64_3x4: 64-bit XOR + POPCNT + add, 3 pixels x 4 channels;
 *   avx512_vpopcntdq_4x32: VPOPCNTD on 16 channels per register;
 *   float_v8_4x16: 8-lane multiply then add, 4 pixels x 16 channels (the
 *     engine's float conv tile); float_peak is 16 MACs per cycle (two 8-lane
 *     multiplies and two adds per cycle, Zen 3 / Skylake) at clock_ghz.
 * clock_ghz: one dependent add per cycle, timed the same way.
 *
 *   gcc -O3 -march=native -std=c99 tools/ceiling_bench.c -o ceiling && ./ceiling
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#define CB_K 72    /* words per window (3x3x256 channels) */
#define CB_OC 128  /* output channels */
#define CB_TRIALS 200
#define CB_REPS 200

static uint32_t cb_w[CB_K * CB_OC * 2];
static uint32_t cb_x[4][CB_K * 2];
static uint64_t cb_w64[CB_K / 2 * CB_OC];
static uint64_t cb_x64[3][CB_K / 2];
static float cb_fw[CB_K * CB_OC], cb_fx[4][CB_K];
static int32_t cb_cnt[4 * CB_OC];
static float cb_fout[4 * CB_OC];
static volatile uint64_t cb_sink;

static double cb_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#if defined(__AVX2__)
static const int8_t cb_lut[32] = {0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                  0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4};

/* 2 pixels ([k][lo, hi]) x 32 channels ([k][lo 32][hi 32]) */
static void cb_split_2x32(const uint32_t *x0, const uint32_t *x1, const uint32_t *w, int32_t *cnt) {
  const __m256i lut = _mm256_loadu_si256((const __m256i *)(const void *)cb_lut);
  const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
  __m256i b[2][4];
  int32_t i, j;
  size_t t = 0, stop;
  for (i = 0; i < 2; ++i)
    for (j = 0; j < 4; ++j) _mm256_storeu_si256((__m256i *)(void *)(cnt + i * CB_OC + 8 * j), _mm256_setzero_si256());
  while (t < CB_K) {
    stop = CB_K - t < 31 ? CB_K : t + 31;
    for (i = 0; i < 2; ++i)
      for (j = 0; j < 4; ++j) b[i][j] = _mm256_setzero_si256();
    for (; t < stop; ++t) {
      const uint32_t *wt = w + t * 64;
      const __m256i a0 = _mm256_set1_epi32((int)x0[2 * t]), c0 = _mm256_set1_epi32((int)x0[2 * t + 1]);
      const __m256i a1 = _mm256_set1_epi32((int)x1[2 * t]), c1 = _mm256_set1_epi32((int)x1[2 * t + 1]);
      for (j = 0; j < 4; ++j) {
        const __m256i l = _mm256_loadu_si256((const __m256i *)(const void *)(wt + 8 * j));
        const __m256i h = _mm256_loadu_si256((const __m256i *)(const void *)(wt + 32 + 8 * j));
        b[0][j] = _mm256_add_epi8(b[0][j], _mm256_add_epi8(_mm256_shuffle_epi8(lut, _mm256_xor_si256(a0, l)),
                                                           _mm256_shuffle_epi8(lut, _mm256_xor_si256(c0, h))));
        b[1][j] = _mm256_add_epi8(b[1][j], _mm256_add_epi8(_mm256_shuffle_epi8(lut, _mm256_xor_si256(a1, l)),
                                                           _mm256_shuffle_epi8(lut, _mm256_xor_si256(c1, h))));
        __asm__("" : "+x"(b[0][j]), "+x"(b[1][j]));
      }
    }
    for (i = 0; i < 2; ++i)
      for (j = 0; j < 4; ++j) {
        __m256i *d = (__m256i *)(void *)(cnt + i * CB_OC + 8 * j);
        _mm256_storeu_si256(d, _mm256_add_epi32(_mm256_loadu_si256(d),
                                                _mm256_madd_epi16(_mm256_maddubs_epi16(b[i][j], ones8), ones16)));
      }
  }
}

/* 4 pixels ([k]) x 16 channels ([k][oc] words, stride CB_OC) */
static void cb_shuffle_4x16(const uint32_t *const *x, const uint32_t *w, int32_t *cnt) {
  const __m256i lut = _mm256_loadu_si256((const __m256i *)(const void *)cb_lut);
  const __m256i m = _mm256_set1_epi8(0x0f), ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
  __m256i b[4][2];
  int32_t i;
  size_t t = 0, stop;
  for (i = 0; i < 4; ++i) {
    _mm256_storeu_si256((__m256i *)(void *)(cnt + i * CB_OC), _mm256_setzero_si256());
    _mm256_storeu_si256((__m256i *)(void *)(cnt + i * CB_OC + 8), _mm256_setzero_si256());
  }
  while (t < CB_K) {
    stop = CB_K - t < 31 ? CB_K : t + 31;
    for (i = 0; i < 4; ++i) b[i][0] = b[i][1] = _mm256_setzero_si256();
    for (; t < stop; ++t) {
      const __m256i w0 = _mm256_loadu_si256((const __m256i *)(const void *)(w + t * CB_OC));
      const __m256i w1 = _mm256_loadu_si256((const __m256i *)(const void *)(w + t * CB_OC + 8));
      for (i = 0; i < 4; ++i) {
        const __m256i xv = _mm256_set1_epi32((int)x[i][t]);
        const __m256i v0 = _mm256_xor_si256(xv, w0), v1 = _mm256_xor_si256(xv, w1);
        b[i][0] = _mm256_add_epi8(b[i][0], _mm256_shuffle_epi8(lut, _mm256_and_si256(v0, m)));
        b[i][0] = _mm256_add_epi8(b[i][0], _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v0, 4), m)));
        b[i][1] = _mm256_add_epi8(b[i][1], _mm256_shuffle_epi8(lut, _mm256_and_si256(v1, m)));
        b[i][1] = _mm256_add_epi8(b[i][1], _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v1, 4), m)));
        __asm__("" : "+x"(b[i][0]), "+x"(b[i][1]));
      }
    }
    for (i = 0; i < 4; ++i) {
      __m256i *d0 = (__m256i *)(void *)(cnt + i * CB_OC), *d1 = (__m256i *)(void *)(cnt + i * CB_OC + 8);
      _mm256_storeu_si256(d0, _mm256_add_epi32(_mm256_loadu_si256(d0),
                                               _mm256_madd_epi16(_mm256_maddubs_epi16(b[i][0], ones8), ones16)));
      _mm256_storeu_si256(d1, _mm256_add_epi32(_mm256_loadu_si256(d1),
                                               _mm256_madd_epi16(_mm256_maddubs_epi16(b[i][1], ones8), ones16)));
    }
  }
}
#endif

#if defined(__AVX512VPOPCNTDQ__) && defined(__AVX512F__)
/* 4 pixels x 32 channels, VPOPCNTD */
static void cb_vpopcnt_4x32(const uint32_t *const *x, const uint32_t *w, int32_t *cnt) {
  __m512i a[4][2];
  int32_t i;
  size_t t;
  for (i = 0; i < 4; ++i) a[i][0] = a[i][1] = _mm512_setzero_si512();
  for (t = 0; t < CB_K; ++t) {
    const __m512i w0 = _mm512_loadu_si512((const void *)(w + t * CB_OC));
    const __m512i w1 = _mm512_loadu_si512((const void *)(w + t * CB_OC + 16));
    for (i = 0; i < 4; ++i) {
      const __m512i xv = _mm512_set1_epi32((int)x[i][t]);
      a[i][0] = _mm512_add_epi32(a[i][0], _mm512_popcnt_epi32(_mm512_xor_si512(xv, w0)));
      a[i][1] = _mm512_add_epi32(a[i][1], _mm512_popcnt_epi32(_mm512_xor_si512(xv, w1)));
    }
  }
  for (i = 0; i < 4; ++i) {
    _mm512_storeu_si512((void *)(cnt + i * CB_OC), a[i][0]);
    _mm512_storeu_si512((void *)(cnt + i * CB_OC + 16), a[i][1]);
  }
}
#endif

/* 3 pixels x 4 channels of 64-bit words ([k / 2][oc]) */
static void cb_popcnt64_3x4(const uint64_t *w, int32_t *cnt) {
  uint64_t a[3][4] = {{0}};
  size_t t;
  int32_t i, j;
  for (t = 0; t < CB_K / 2; ++t) {
    const uint64_t *wt = w + t * CB_OC;
    for (i = 0; i < 3; ++i) {
      const uint64_t xv = cb_x64[i][t];
      for (j = 0; j < 4; ++j) a[i][j] += (uint64_t)__builtin_popcountll(xv ^ wt[j]);
    }
  }
  for (i = 0; i < 3; ++i)
    for (j = 0; j < 4; ++j) cnt[i * CB_OC + j] = (int32_t)a[i][j];
}

#if defined(__GNUC__)
typedef float cb_v8f __attribute__((vector_size(32)));
typedef float cb_v8f_u __attribute__((vector_size(32), aligned(4), may_alias));
/* 4 pixels x 16 channels: acc = acc + x * w, 8 accumulators */
static void cb_float_4x16(const float *w, float *out) {
  cb_v8f a[4][2];
  int32_t i;
  size_t t;
  for (i = 0; i < 4; ++i) a[i][0] = a[i][1] = (cb_v8f){0, 0, 0, 0, 0, 0, 0, 0};
  for (t = 0; t < CB_K; ++t) {
    const cb_v8f w0 = *(const cb_v8f_u *)(const void *)(w + t * CB_OC);
    const cb_v8f w1 = *(const cb_v8f_u *)(const void *)(w + t * CB_OC + 8);
    for (i = 0; i < 4; ++i) {
      const float xs = cb_fx[i][t];
      const cb_v8f xv = {xs, xs, xs, xs, xs, xs, xs, xs};
      a[i][0] = a[i][0] + xv * w0;
      a[i][1] = a[i][1] + xv * w1;
    }
  }
  for (i = 0; i < 4; ++i) {
    *(cb_v8f_u *)(void *)(out + i * CB_OC) = a[i][0];
    *(cb_v8f_u *)(void *)(out + i * CB_OC + 8) = a[i][1];
  }
}
#endif

static double cb_clock_ghz(void) {
  double best = 0.0;
  int32_t trial;
  for (trial = 0; trial < 200; ++trial) { /* many short trials: some run undisturbed */
    const long n = 2000000L;
    uint64_t a = 1;
    long i;
    double t0 = cb_now(), dt;
    for (i = 0; i < n; ++i) __asm__ volatile("add $1, %0" : "+r"(a));
    dt = cb_now() - t0;
    cb_sink += a;
    if (dt > 0.0 && (double)n / dt / 1e9 > best) best = (double)n / dt / 1e9;
  }
  return best;
}

/* best G MAC/s of CB_TRIALS trials of CB_REPS sweeps over the output channels */
#define CB_MEASURE(result, macs_per_call, ch, call)                              \
  do {                                                                            \
    double best_ = 1e30;                                                          \
    int32_t tr_, o;                                                               \
    for (tr_ = 0; tr_ < CB_TRIALS; ++tr_) {                                       \
      int32_t r_;                                                                 \
      double t0_ = cb_now(), dt_;                                                 \
      for (r_ = 0; r_ < CB_REPS; ++r_)                                            \
        for (o = 0; o + (ch) <= CB_OC; o += (ch)) { call; }                       \
      dt_ = cb_now() - t0_;                                                       \
      if (dt_ > 0.0 && dt_ < best_) best_ = dt_;                                  \
    }                                                                             \
    (result) = (double)CB_REPS * (CB_OC / (ch)) * (macs_per_call) / best_ / 1e9; \
  } while (0)

int main(void) {
  size_t i;
  int32_t k;
  double ghz, g;
  const char *sep = "";
  for (i = 0; i < sizeof cb_w / sizeof cb_w[0]; ++i) cb_w[i] = ((uint32_t)i * 2654435761u) & 0x0f0f0f0fu;
  for (i = 0; i < 4 * CB_K * 2; ++i) cb_x[i / (CB_K * 2)][i % (CB_K * 2)] = ((uint32_t)i * 2246822519u) & 0x0f0f0f0fu;
  for (i = 0; i < sizeof cb_w64 / sizeof cb_w64[0]; ++i) cb_w64[i] = (uint64_t)i * 0x9e3779b97f4a7c15ull;
  for (i = 0; i < 3 * CB_K / 2; ++i) cb_x64[i / (CB_K / 2)][i % (CB_K / 2)] = (uint64_t)i * 0xc2b2ae3d27d4eb4full;
  for (i = 0; i < sizeof cb_fw / sizeof cb_fw[0]; ++i) cb_fw[i] = (float)(i % 7) * 0.25f - 0.5f;
  for (i = 0; i < 4 * CB_K; ++i) cb_fx[i / CB_K][i % CB_K] = (float)(i % 5) * 0.125f;
  ghz = cb_clock_ghz();
  printf("{\"binary\": {");
#if defined(__AVX2__)
  CB_MEASURE(g, 2.0 * 32 * CB_K * 32, 32, cb_split_2x32(cb_x[0], cb_x[1], cb_w + (size_t)o * CB_K * 2, cb_cnt));
  printf("%s\"avx2_split_2x32\": %.1f", sep, g);
  sep = ", ";
  {
    const uint32_t *xs[4] = {cb_x[0], cb_x[1], cb_x[2], cb_x[3]};
    CB_MEASURE(g, 4.0 * 16 * CB_K * 32, 16, cb_shuffle_4x16(xs, cb_w + o, cb_cnt));
    printf("%s\"avx2_shuffle_4x16\": %.1f", sep, g);
  }
#endif
#if defined(__AVX512VPOPCNTDQ__) && defined(__AVX512F__)
  {
    const uint32_t *xs[4] = {cb_x[0], cb_x[1], cb_x[2], cb_x[3]};
    CB_MEASURE(g, 4.0 * 32 * CB_K * 32, 32, cb_vpopcnt_4x32(xs, cb_w + o, cb_cnt));
    printf("%s\"avx512_vpopcntdq_4x32\": %.1f", sep, g);
    sep = ", ";
  }
#endif
  CB_MEASURE(g, 3.0 * 4 * (CB_K / 2) * 64, 4, cb_popcnt64_3x4(cb_w64 + o, cb_cnt));
  printf("%s\"scalar_popcnt64_3x4\": %.1f}, \"float\": {", sep, g);
#if defined(__GNUC__)
  CB_MEASURE(g, 4.0 * 16 * CB_K, 16, cb_float_4x16(cb_fw + o, cb_fout));
  printf("\"float_v8_4x16\": %.1f, ", g);
#endif
  g = cb_clock_ghz(); /* again after the loops: the first trials may run before the clock ramps up */
  if (g > ghz) ghz = g;
  printf("\"float_peak\": %.1f}, \"clock_ghz\": %.3f}\n", 16.0 * ghz, ghz);
  for (k = 0; k < 4 * CB_OC; ++k) cb_sink += (uint64_t)cb_cnt[k] + (uint64_t)(cb_fout[k] != 0.0f);
  return 0;
}

/*
 * ebnn_bconv2d_opt: LceBconv2d as a packed binary GEMM (kernel set "opt").
 * Same params, statuses and results bit for bit as ebnn_bconv2d_ref (the
 * counts are integers, so any summation order is exact; the output
 * transform is the reference's, line by line).
 *
 * Register tiling: EBNN_BOPT_P output pixels x one block of output
 * channels share every load: for each filter word k, the P input words are
 * broadcast and XORed with the block's weights, the popcounts accumulate
 * per (pixel, channel) lane. Cache blocking: the output pixels of a
 * thread's rows are cut into chunks (across row ends, balanced in size)
 * whose counts fit a stack buffer; the channel block is the outer loop of
 * a chunk, so its weights ([K words][block] of the [K][out_c] filter_t)
 * stay in L1 while the chunk's pixels stream past.
 *
 * Vector code, chosen by the build's -march / -mcpu flags:
 *   AVX-512 VPOPCNTDQ + BW: VPOPCNTD on 16 channels per zmm, 32 per block;
 *   AVX2, windows up to EBNN_BOPT_SPLIT_K words: operands split into
 *     nibbles once per chunk (bopt_tile_split), so a word costs 2 XOR +
 *     2 VPSHUFB + 2 byte adds per 8 channels; 2 pixels x 32 channels
 *     (16 for the last block) per tile; byte counters widened to 32 bits
 *     (VPMADDUBSW + VPMADDWD) every 31 words, before a byte can overflow
 *     (31 * 8 = 248). Larger windows: the plain nibble-table loop (XOR,
 *     mask, shift, 2 VPSHUFB), 4 pixels x 16 channels;
 *   NEON: VCNT into byte counters, widened (VPADDL) every 31 words,
 *     16 channels per block;
 *   else (or -DEBNN_OPT_PLAIN_C): plain C loops over 16 channels.
 * Channels past the last full block run as plain scalar loops.
 *
 * SAME padding with pad_value 0 (Bi-Real Net) is counted as same-one, then
 * border pixels get the reference's correction (the same float operations:
 * ebnn__bconv_zero_pad_correction).
 *
 * ebnn_bconv2d_add_opt is the same GEMM; each pixel's float outputs get
 * their residual added right after the transform, while still in L1.
 *
 * Delegated to ebnn_bconv2d_ref (ebnn_bconv2d_add_ref): windows over EBNN_BOPT_PATCH_WORDS words,
 * more than EBNN_BOPT_MAX_OC channels, no filter_t with a filter over the
 * stack buffer. Stack: about 270 KiB (hosts only, like ebnn_fused_opt.c; glibc
 * threads get the stack rlimit, usually 8 MiB).
 */
#include <string.h>

#include "ebnn.h"
#include "ebnn_internal.h"
#include "ebnn_opt_internal.h"

#define EBNN_BOPT_MAX_OC 4096
#define EBNN_BOPT_PATCH_WORDS 1024
#define EBNN_BOPT_MAX_FH 32
#define EBNN_BOPT_CNT 16384 /* int32 counts per chunk */
#define EBNN_BOPT_FILTER_ELEMS 4096
#define EBNN_BOPT_ZSUM 8192 /* same-zero: taps x out_c filter sums precomputed */
#define EBNN_BOPT_SPLIT_K 256      /* AVX2: windows up to this many words run nibble-split */
#define EBNN_BOPT_SPLIT_WORDS 16384 /* AVX2: split window words per chunk (2 per word) */

#if !defined(EBNN_OPT_PLAIN_C) && defined(__AVX512VPOPCNTDQ__) && defined(__AVX512BW__)
#include <immintrin.h>
#define EBNN_BOPT_BLOCK 32
#define EBNN_BOPT_ISA_AVX512 1
/* pixels per tile: 6 x 32 channels (12 accumulators) against 4 x 32, Zen 4
 * (tools/kernel_bench.c bconv): 56x56x64 189 -> 157 us, 28x28x128 146 ->
 * 116, 14x14x256 111 -> 107, 7x7x512 163 -> 104; 8 was no faster than 6 */
#define EBNN_BOPT_P 6
#elif !defined(EBNN_OPT_PLAIN_C) && defined(__AVX2__)
#include <immintrin.h>
#define EBNN_BOPT_BLOCK 16
#define EBNN_BOPT_ISA_AVX2 1
#elif !defined(EBNN_OPT_PLAIN_C) && defined(__ARM_NEON)
#include <arm_neon.h>
#define EBNN_BOPT_BLOCK 16
#define EBNN_BOPT_ISA_NEON 1
#else
#define EBNN_BOPT_BLOCK 16
#endif
#ifndef EBNN_BOPT_P
#define EBNN_BOPT_P 4 /* pixels per tile */
#endif

typedef struct {
  const ebnn_bconv2d_params_t *p;
  ebnn__bgeom_t g;
  const uint32_t *wt; /* [k_words][out_c] */
  size_t row_len;     /* filter_w * words_in: contiguous words per filter row */
  float m[EBNN_BOPT_MAX_OC], b[EBNN_BOPT_MAX_OC]; /* float output transform */
  int32_t zsum_ok;                /* same-zero: zsum holds every tap's sums */
  int32_t zsum[EBNN_BOPT_ZSUM];   /* [tap][out_c]: ebnn__bconv_tap_sum */
  /* Counted pixels are virtual: v = q * planes + j is plane j (planes *
   * plane_words apart in the input) of output pixel q. 1 and 0 for a bconv;
   * the level-coded convolution's bitplanes share each weight load. */
  int32_t planes;
  size_t plane_words;
  /* ebnn_bconv2d_add: each pixel's float outputs are added to its residual
   * right after the transform (NULL: a plain bconv) */
  const ebnn_bconv2d_add_params_t *add;
  const float *residual;
} bopt_ctx_t;

/* Counts of EBNN_BOPT_P pixels (rows[i * fh + fy]: row fy of pixel i's
 * window, row_len words) against the block of channels at wt (stride oc
 * words per filter word), written to cnt[i * cnt_stride + j]. */
static void bopt_tile(const uint32_t *const *rows, int32_t fh, size_t row_len,
                      const uint32_t *wt, size_t oc, int32_t *cnt, size_t cnt_stride) {
#if defined(EBNN_BOPT_ISA_AVX512)
  __m512i acc[EBNN_BOPT_P][2];
  int32_t i, fy;
  size_t t;
  for (i = 0; i < EBNN_BOPT_P; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_si512();
  for (fy = 0; fy < fh; ++fy) {
    const uint32_t *s[EBNN_BOPT_P];
    for (i = 0; i < EBNN_BOPT_P; ++i) s[i] = rows[i * fh + fy];
    for (t = 0; t < row_len; ++t, wt += oc) {
      const __m512i w0 = _mm512_loadu_si512((const void *)wt);
      const __m512i w1 = _mm512_loadu_si512((const void *)(wt + 16));
      for (i = 0; i < EBNN_BOPT_P; ++i) {
        const __m512i x = _mm512_set1_epi32((int)s[i][t]);
        acc[i][0] = _mm512_add_epi32(acc[i][0], _mm512_popcnt_epi32(_mm512_xor_si512(x, w0)));
        acc[i][1] = _mm512_add_epi32(acc[i][1], _mm512_popcnt_epi32(_mm512_xor_si512(x, w1)));
      }
    }
  }
  for (i = 0; i < EBNN_BOPT_P; ++i) {
    _mm512_storeu_si512((void *)(cnt + (size_t)i * cnt_stride), acc[i][0]);
    _mm512_storeu_si512((void *)(cnt + (size_t)i * cnt_stride + 16), acc[i][1]);
  }
#elif defined(EBNN_BOPT_ISA_AVX2)
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                       0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  const __m256i ones8 = _mm256_set1_epi8(1);
  const __m256i ones16 = _mm256_set1_epi16(1);
  __m256i bytes[EBNN_BOPT_P][2];
  __m256i tot[EBNN_BOPT_P][2];
  int32_t i, fy, n = 0;
  size_t t;
  for (i = 0; i < EBNN_BOPT_P; ++i) {
    bytes[i][0] = bytes[i][1] = _mm256_setzero_si256();
    tot[i][0] = tot[i][1] = _mm256_setzero_si256();
  }
  for (fy = 0; fy < fh; ++fy) {
    const uint32_t *s[EBNN_BOPT_P];
    for (i = 0; i < EBNN_BOPT_P; ++i) s[i] = rows[i * fh + fy];
    for (t = 0; t < row_len; ++t, wt += oc) {
      const __m256i w0 = _mm256_loadu_si256((const __m256i *)(const void *)wt);
      const __m256i w1 = _mm256_loadu_si256((const __m256i *)(const void *)(wt + 8));
      for (i = 0; i < EBNN_BOPT_P; ++i) {
        const __m256i x = _mm256_set1_epi32((int)s[i][t]);
        const __m256i v0 = _mm256_xor_si256(x, w0);
        const __m256i v1 = _mm256_xor_si256(x, w1);
        bytes[i][0] = _mm256_add_epi8(bytes[i][0], _mm256_shuffle_epi8(lut, _mm256_and_si256(v0, low4)));
        bytes[i][0] = _mm256_add_epi8(
            bytes[i][0], _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v0, 4), low4)));
        bytes[i][1] = _mm256_add_epi8(bytes[i][1], _mm256_shuffle_epi8(lut, _mm256_and_si256(v1, low4)));
        bytes[i][1] = _mm256_add_epi8(
            bytes[i][1], _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v1, 4), low4)));
      }
      if (++n == 31) { /* before a byte counter can pass 255 */
        for (i = 0; i < EBNN_BOPT_P; ++i) {
          tot[i][0] = _mm256_add_epi32(
              tot[i][0], _mm256_madd_epi16(_mm256_maddubs_epi16(bytes[i][0], ones8), ones16));
          tot[i][1] = _mm256_add_epi32(
              tot[i][1], _mm256_madd_epi16(_mm256_maddubs_epi16(bytes[i][1], ones8), ones16));
          bytes[i][0] = bytes[i][1] = _mm256_setzero_si256();
        }
        n = 0;
      }
    }
  }
  for (i = 0; i < EBNN_BOPT_P; ++i) {
    tot[i][0] = _mm256_add_epi32(tot[i][0], _mm256_madd_epi16(_mm256_maddubs_epi16(bytes[i][0], ones8), ones16));
    tot[i][1] = _mm256_add_epi32(tot[i][1], _mm256_madd_epi16(_mm256_maddubs_epi16(bytes[i][1], ones8), ones16));
    _mm256_storeu_si256((__m256i *)(void *)(cnt + (size_t)i * cnt_stride), tot[i][0]);
    _mm256_storeu_si256((__m256i *)(void *)(cnt + (size_t)i * cnt_stride + 8), tot[i][1]);
  }
#elif defined(EBNN_BOPT_ISA_NEON)
  uint8x16_t bytes[EBNN_BOPT_P][4];
  uint32x4_t tot[EBNN_BOPT_P][4];
  int32_t i, q, fy, n = 0;
  size_t t;
  for (i = 0; i < EBNN_BOPT_P; ++i)
    for (q = 0; q < 4; ++q) {
      bytes[i][q] = vdupq_n_u8(0);
      tot[i][q] = vdupq_n_u32(0);
    }
  for (fy = 0; fy < fh; ++fy) {
    const uint32_t *s[EBNN_BOPT_P];
    for (i = 0; i < EBNN_BOPT_P; ++i) s[i] = rows[i * fh + fy];
    for (t = 0; t < row_len; ++t, wt += oc) {
      uint32x4_t w[4];
      for (q = 0; q < 4; ++q) w[q] = vld1q_u32(wt + 4 * q);
      for (i = 0; i < EBNN_BOPT_P; ++i) {
        const uint32x4_t x = vdupq_n_u32(s[i][t]);
        for (q = 0; q < 4; ++q)
          bytes[i][q] = vaddq_u8(bytes[i][q], vcntq_u8(vreinterpretq_u8_u32(veorq_u32(x, w[q]))));
      }
      if (++n == 31) { /* before a byte counter can pass 255 */
        for (i = 0; i < EBNN_BOPT_P; ++i)
          for (q = 0; q < 4; ++q) {
            tot[i][q] = vpadalq_u16(tot[i][q], vpaddlq_u8(bytes[i][q]));
            bytes[i][q] = vdupq_n_u8(0);
          }
        n = 0;
      }
    }
  }
  for (i = 0; i < EBNN_BOPT_P; ++i)
    for (q = 0; q < 4; ++q) {
      tot[i][q] = vpadalq_u16(tot[i][q], vpaddlq_u8(bytes[i][q]));
      vst1q_s32(cnt + (size_t)i * cnt_stride + 4 * q, vreinterpretq_s32_u32(tot[i][q]));
    }
#else
  int32_t acc[EBNN_BOPT_P][EBNN_BOPT_BLOCK];
  int32_t i, j, fy;
  size_t t;
  for (i = 0; i < EBNN_BOPT_P; ++i)
    for (j = 0; j < EBNN_BOPT_BLOCK; ++j) acc[i][j] = 0;
  for (fy = 0; fy < fh; ++fy) {
    for (t = 0; t < row_len; ++t, wt += oc) {
      for (i = 0; i < EBNN_BOPT_P; ++i) {
        const uint32_t x = rows[i * fh + fy][t];
        for (j = 0; j < EBNN_BOPT_BLOCK; ++j) acc[i][j] += EBNN_POPCOUNT32(x ^ wt[j]);
      }
    }
  }
  for (i = 0; i < EBNN_BOPT_P; ++i)
    for (j = 0; j < EBNN_BOPT_BLOCK; ++j) cnt[(size_t)i * cnt_stride + (size_t)j] = acc[i][j];
#endif
}

#if defined(EBNN_BOPT_ISA_AVX2)
/* The AVX2 tile on nibble-split operands, 2 pixels x (8 * nv) channels.
 * x[i] holds pixel i's window as [k][2] words, (x & 0x0f0f0f0f) then
 * ((x >> 4) & 0x0f0f0f0f); ws the block's filter as [k][2][8 * nv], low
 * nibbles then high. Since (x ^ w) & m = (x & m) ^ (w & m), each (pixel,
 * 8 channels) costs two XORs, two table lookups (VPSHUFB) and two byte
 * adds per word, instead of also masking and shifting x ^ w (8
 * operations); the split is done once per chunk for the pixels and once
 * per chunk and block for the filter. 2 x 32 channels was the fastest
 * tile shape measured on Zen 3 (8 accumulators, the filter as memory
 * operands). Byte counters gain at most 8 per word and are widened every
 * 31 words. */
EBNN_INLINE void bopt_tile_split(const uint32_t *const *x, size_t k_words, const uint32_t *ws,
                                 int32_t nv, int32_t *cnt, size_t cnt_stride) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                       0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i ones8 = _mm256_set1_epi8(1);
  const __m256i ones16 = _mm256_set1_epi16(1);
  const uint32_t *x0 = x[0], *x1 = x[1];
  const size_t wstride = 16 * (size_t)nv;
  __m256i bytes[2][4]; /* the 32-bit totals live in cnt: 8 more registers would spill */
  int32_t i, j;
  size_t t = 0, stop;
  for (i = 0; i < 2; ++i)
    for (j = 0; j < nv; ++j) _mm256_storeu_si256((__m256i *)(void *)(cnt + (size_t)i * cnt_stride + 8 * j),
                                                 _mm256_setzero_si256());
  while (t < k_words) {
    stop = k_words - t < 31 ? k_words : t + 31; /* before a byte counter can pass 255 */
    for (i = 0; i < 2; ++i)
      for (j = 0; j < nv; ++j) bytes[i][j] = _mm256_setzero_si256();
    for (; t < stop; ++t) {
      const uint32_t *wt = ws + t * wstride;
      const __m256i a0 = _mm256_set1_epi32((int)x0[2 * t]), b0 = _mm256_set1_epi32((int)x0[2 * t + 1]);
      const __m256i a1 = _mm256_set1_epi32((int)x1[2 * t]), b1 = _mm256_set1_epi32((int)x1[2 * t + 1]);
      for (j = 0; j < nv; ++j) {
        const __m256i l = _mm256_loadu_si256((const __m256i *)(const void *)(wt + 8 * j));
        const __m256i h = _mm256_loadu_si256((const __m256i *)(const void *)(wt + 8 * (nv + j)));
        bytes[0][j] = _mm256_add_epi8(bytes[0][j], _mm256_add_epi8(_mm256_shuffle_epi8(lut, _mm256_xor_si256(a0, l)),
                                                                   _mm256_shuffle_epi8(lut, _mm256_xor_si256(b0, h))));
        bytes[1][j] = _mm256_add_epi8(bytes[1][j], _mm256_add_epi8(_mm256_shuffle_epi8(lut, _mm256_xor_si256(a1, l)),
                                                                   _mm256_shuffle_epi8(lut, _mm256_xor_si256(b1, h))));
        /* an empty asm that keeps the counters in registers: GCC 12 otherwise
         * hoists every XOR of the step and spills counters to the stack */
        __asm__("" : "+x"(bytes[0][j]), "+x"(bytes[1][j]));
      }
    }
    for (i = 0; i < 2; ++i)
      for (j = 0; j < nv; ++j) {
        __m256i *dst = (__m256i *)(void *)(cnt + (size_t)i * cnt_stride + 8 * j);
        const __m256i wide = _mm256_madd_epi16(_mm256_maddubs_epi16(bytes[i][j], ones8), ones16);
        _mm256_storeu_si256(dst, _mm256_add_epi32(_mm256_loadu_si256(dst), wide));
      }
  }
}

static void bopt_tile_split32(const uint32_t *const *x, size_t k_words, const uint32_t *ws, int32_t *cnt,
                              size_t cnt_stride) {
  bopt_tile_split(x, k_words, ws, 4, cnt, cnt_stride);
}

static void bopt_tile_split16(const uint32_t *const *x, size_t k_words, const uint32_t *ws, int32_t *cnt,
                              size_t cnt_stride) {
  bopt_tile_split(x, k_words, ws, 2, cnt, cnt_stride);
}

/* dst[2 * i], dst[2 * i + 1]: the low and high nibbles of n words of src. */
static void bopt_split(const uint32_t *src, size_t n, uint32_t *dst) {
  size_t i;
  for (i = 0; i < n; ++i) {
    dst[2 * i] = src[i] & 0x0f0f0f0fu;
    dst[2 * i + 1] = (src[i] >> 4) & 0x0f0f0f0fu;
  }
}
#endif

/* Row pointers of pixel (oy, ox)'s window: straight into the input when the
 * window is inside it, else gathered into patch (0 words = +1 outside, as
 * the reference, which only runs this without same-zero padding). */
static void bopt_window(const bopt_ctx_t *c, const int32_t *input, int32_t oy, int32_t ox,
                        uint32_t *patch, const uint32_t **rows) {
  const ebnn_bconv2d_params_t *p = c->p;
  const int32_t words = c->g.words_in;
  const int32_t y0 = oy * p->stride_h - c->g.g.pad_top;
  const int32_t x0 = ox * p->stride_w - c->g.g.pad_left;
  int32_t fy, fx, w;
  if (p->dilation_w == 1 && x0 >= 0 && x0 + p->filter_w <= p->in_w && y0 >= 0 &&
      y0 + (p->filter_h - 1) * p->dilation_h < p->in_h) {
    for (fy = 0; fy < p->filter_h; ++fy)
      rows[fy] = (const uint32_t *)(const void *)(input +
                 ((size_t)(y0 + fy * p->dilation_h) * (size_t)p->in_w + (size_t)x0) * (size_t)words);
    return;
  }
  for (fy = 0; fy < p->filter_h; ++fy) {
    const int32_t iy = y0 + fy * p->dilation_h;
    uint32_t *dst = patch + (size_t)fy * c->row_len;
    rows[fy] = dst;
    for (fx = 0; fx < p->filter_w; ++fx, dst += words) {
      const int32_t ix = x0 + fx * p->dilation_w;
      if (iy >= 0 && iy < p->in_h && ix >= 0 && ix < p->in_w) {
        const int32_t *px = input + ((size_t)iy * (size_t)p->in_w + (size_t)ix) * (size_t)words;
        for (w = 0; w < words; ++w) dst[w] = (uint32_t)px[w];
      } else {
        for (w = 0; w < words; ++w) dst[w] = 0u;
      }
    }
  }
}

/* The window rows of virtual pixel v (plane v % planes of output pixel
 * v / planes). */
static void bopt_vwindow(const bopt_ctx_t *c, const int32_t *input, int32_t v, uint32_t *patch,
                         const uint32_t **rows) {
  const int32_t q = v / c->planes, ow = c->g.g.out_w;
  bopt_window(c, input + (size_t)(v % c->planes) * c->plane_words, q / ow, q % ow, patch, rows);
}

#if defined(EBNN_BOPT_ISA_AVX512)
/* Counts of n < EBNN_BOPT_P virtual pixels (rows as bopt_tile's), the
 * filter read once in its stored order ([k][oc]). For so few pixels (a
 * dense layer's one, its bitplanes) the tile's walk down one block of
 * channels reads each filter row oc * 4 bytes after the last, a cache
 * miss per row that the prefetchers do not hide; here every row streams
 * in order, and EBNN_BOPT_GEMV_K of them at a time are summed in a
 * register before the count in cnt is updated. */
#define EBNN_BOPT_GEMV_K 8
static void bopt_gemv_counts(const bopt_ctx_t *c, const uint32_t *const *rows, int32_t n, int32_t *cnt,
                             size_t o0, size_t o1) {
  const ebnn_bconv2d_params_t *p = c->p;
  const int32_t fh = p->filter_h;
  const size_t oc = (size_t)p->out_c, full = o0 + ((o1 - o0) & ~(size_t)15), k_words = (size_t)fh * c->row_len;
  uint32_t xs[EBNN_BOPT_P][EBNN_BOPT_GEMV_K];
  size_t k0, kn, k, o;
  int32_t i, fy;
  for (i = 0; i < n; ++i)
    for (o = o0; o < o1; ++o) cnt[(size_t)i * oc + o] = 0;
  for (k0 = 0; k0 < k_words; k0 += kn) {
    const uint32_t *w = c->wt + k0 * oc;
    kn = k_words - k0 < EBNN_BOPT_GEMV_K ? k_words - k0 : EBNN_BOPT_GEMV_K;
    for (k = 0; k < kn; ++k) { /* window word k0 + k: row fy, word t of that row */
      fy = (int32_t)((k0 + k) / c->row_len);
      for (i = 0; i < n; ++i) xs[i][k] = rows[i * fh + fy][(k0 + k) % c->row_len];
    }
    for (o = o0; o < full; o += 16)
      for (i = 0; i < n; ++i) {
        int32_t *ct = cnt + (size_t)i * oc + o;
        __m512i acc = _mm512_loadu_si512((const void *)ct);
        for (k = 0; k < kn; ++k) {
          const __m512i v = _mm512_loadu_si512((const void *)(w + k * oc + o));
          acc = _mm512_add_epi32(acc, _mm512_popcnt_epi32(_mm512_xor_si512(_mm512_set1_epi32((int)xs[i][k]), v)));
        }
        _mm512_storeu_si512((void *)ct, acc);
      }
    for (; o < o1; ++o) /* channels past the last 16 */
      for (i = 0; i < n; ++i)
        for (k = 0; k < kn; ++k) cnt[(size_t)i * oc + o] += EBNN_POPCOUNT32(xs[i][k] ^ w[k * oc + o]);
  }
}

/* One thread's share of bopt_gemv: channel blocks [begin, end) of
 * EBNN_BOPT_GEMV_OC channels. */
#define EBNN_BOPT_GEMV_OC 64
typedef struct {
  const bopt_ctx_t *c;
  const uint32_t *const *rows;
  int32_t n;
  int32_t *cnt;
} bopt_gemv_job_t;

static void bopt_gemv_job(const void *arg, int32_t begin, int32_t end) {
  const bopt_gemv_job_t *j = (const bopt_gemv_job_t *)arg;
  const size_t oc = (size_t)j->c->p->out_c, o1 = (size_t)end * EBNN_BOPT_GEMV_OC;
  bopt_gemv_counts(j->c, j->rows, j->n, j->cnt, (size_t)begin * EBNN_BOPT_GEMV_OC, o1 < oc ? o1 : oc);
}

/* Counts of virtual pixels [0, n), n < EBNN_BOPT_P (the whole layer; the
 * callers check n * oc <= EBNN_BOPT_CNT, else they chunk the tile path),
 * into cnt[v * oc + o]: the filter in one ordered pass, its channels
 * shared among the threads (a layer of one pixel has nothing else to
 * share). */
static void bopt_gemv(const bopt_ctx_t *c, const int32_t *input, int32_t n, int32_t *cnt) {
  uint32_t patch[EBNN_BOPT_P][EBNN_BOPT_PATCH_WORDS];
  const uint32_t *rows[EBNN_BOPT_P * EBNN_BOPT_MAX_FH];
  const int32_t fh = c->p->filter_h, oc = c->p->out_c;
  bopt_gemv_job_t job;
  int32_t i;
  for (i = 0; i < n; ++i) bopt_vwindow(c, input, i, patch[i], rows + i * fh);
  job.c = c;
  job.rows = rows;
  job.n = n;
  job.cnt = cnt;
  ebnn__parallel_for((oc + EBNN_BOPT_GEMV_OC - 1) / EBNN_BOPT_GEMV_OC,
                     (int64_t)n * (int64_t)oc * (int64_t)fh * (int64_t)c->row_len, bopt_gemv_job, &job);
}
#endif

/* Counts of virtual pixels [q0, q0 + n) (output pixels, flattened
 * oy * out_w + ox, for a bconv): cnt[(q - q0) * oc + o]. */
static void bopt_chunk_counts(const bopt_ctx_t *c, const int32_t *input, int32_t q0, int32_t n,
                              int32_t *cnt) {
  uint32_t patch[EBNN_BOPT_P][EBNN_BOPT_PATCH_WORDS];
  const uint32_t *rows[EBNN_BOPT_P * EBNN_BOPT_MAX_FH];
  int32_t dummy[EBNN_BOPT_P * EBNN_BOPT_BLOCK];
  const ebnn_bconv2d_params_t *p = c->p;
  const int32_t fh = p->filter_h;
  const size_t oc = (size_t)p->out_c;
  int32_t tile, i, o, fy;
  size_t t;
#if defined(EBNN_BOPT_ISA_AVX2)
  const size_t k_words = (size_t)fh * c->row_len;
  if (k_words <= EBNN_BOPT_SPLIT_K) {
    /* every pixel's window split once ([n][k][2]), then each block of 32
     * (or 16) channels (its filter slice split into ws) against the chunk
     * in tiles of 2 pixels */
    uint32_t xs[EBNN_BOPT_SPLIT_WORDS];
    uint32_t ws[EBNN_BOPT_SPLIT_K * 64];
    const uint32_t *xt[2];
    size_t j, k;
    for (i = 0; i < n; ++i) {
      bopt_vwindow(c, input, q0 + i, patch[0], rows);
      for (fy = 0; fy < fh; ++fy)
        bopt_split(rows[fy], c->row_len, xs + 2 * ((size_t)i * k_words + (size_t)fy * c->row_len));
    }
    for (o = 0; o + 16 <= p->out_c;) {
      const size_t nb = o + 32 <= p->out_c ? 32 : 16;
      for (k = 0; k < k_words; ++k)
        for (j = 0; j < nb; ++j) {
          const uint32_t w = c->wt[k * oc + (size_t)o + j];
          ws[k * 2 * nb + j] = w & 0x0f0f0f0fu;
          ws[k * 2 * nb + nb + j] = (w >> 4) & 0x0f0f0f0fu;
        }
      for (tile = 0; tile < n; tile += 2) {
        const int32_t np = n - tile < 2 ? n - tile : 2;
        xt[0] = xs + 2 * (size_t)tile * k_words;
        xt[1] = np == 2 ? xt[0] + 2 * k_words : xt[0]; /* pad the tile with the last pixel */
        if (np == 2) {
          (nb == 32 ? bopt_tile_split32 : bopt_tile_split16)(xt, k_words, ws, cnt + (size_t)tile * oc + (size_t)o, oc);
        } else {
          (nb == 32 ? bopt_tile_split32 : bopt_tile_split16)(xt, k_words, ws, dummy, 32);
          for (j = 0; j < nb; ++j) cnt[(size_t)tile * oc + (size_t)o + j] = dummy[j];
        }
      }
      o += (int32_t)nb;
    }
    for (; o < p->out_c; ++o) /* channels past the last block of 16 */
      for (i = 0; i < n; ++i) {
        int32_t total = 0;
        const uint32_t *wk = c->wt + o;
        const uint32_t *xa = xs + 2 * (size_t)i * k_words;
        for (k = 0; k < k_words; ++k, wk += oc) total += EBNN_POPCOUNT32((xa[2 * k] | (xa[2 * k + 1] << 4)) ^ wk[0]);
        cnt[(size_t)i * oc + (size_t)o] = total;
      }
    return;
  }
#endif
  for (tile = 0; tile < n; tile += EBNN_BOPT_P) {
    const int32_t np = n - tile < EBNN_BOPT_P ? n - tile : EBNN_BOPT_P;
    for (i = 0; i < np; ++i) {
      bopt_vwindow(c, input, q0 + tile + i, patch[i], rows + i * fh);
    }
    for (; i < EBNN_BOPT_P; ++i) /* pad the tile with the last pixel */
      for (fy = 0; fy < fh; ++fy) rows[i * fh + fy] = rows[(np - 1) * fh + fy];
    for (o = 0; o + EBNN_BOPT_BLOCK <= p->out_c; o += EBNN_BOPT_BLOCK) {
      int32_t *dst = cnt + (size_t)tile * oc + (size_t)o;
      if (np == EBNN_BOPT_P) {
        bopt_tile(rows, fh, c->row_len, c->wt + o, oc, dst, oc);
      } else {
        int32_t j;
        bopt_tile(rows, fh, c->row_len, c->wt + o, oc, dummy, EBNN_BOPT_BLOCK);
        for (i = 0; i < np; ++i)
          for (j = 0; j < EBNN_BOPT_BLOCK; ++j)
            dst[(size_t)i * oc + (size_t)j] = dummy[i * EBNN_BOPT_BLOCK + j];
      }
    }
    for (; o < p->out_c; ++o) { /* channels past the last full block */
      for (i = 0; i < np; ++i) {
        int32_t total = 0;
        const uint32_t *wk = c->wt + o;
        for (fy = 0; fy < fh; ++fy) {
          const uint32_t *s = rows[i * fh + fy];
          for (t = 0; t < c->row_len; ++t, wk += oc) total += EBNN_POPCOUNT32(s[t] ^ wk[0]);
        }
        cnt[(size_t)(tile + i) * oc + (size_t)o] = total;
      }
    }
  }
}

/* The reference's output transform of pixel q (oy, ox) from its counts. */
static void bopt_transform(const bopt_ctx_t *c, const int32_t *ct, int32_t q, void *output,
                           int32_t *zacc) {
  const ebnn_bconv2d_params_t *p = c->p;
  const int32_t oc = p->out_c;
  int32_t o, w, j;
  if (p->thresholds == NULL) {
    float *out = (float *)output + (size_t)q * (size_t)oc;
    for (o = 0; o < oc; ++o) {
      int32_t x = 2 * ct[o];
      float y;
      x = x > c->g.clamp_max ? c->g.clamp_max : x;
      x = x < c->g.clamp_min ? c->g.clamp_min : x;
      y = (float)x * c->m[o];
      y = y + c->b[o];
      out[o] = y;
    }
    if (c->g.same_zero) { /* border windows: the reference's correction */
      const int32_t oy = q / c->g.g.out_w, ox = q % c->g.g.out_w;
      const int32_t y0 = oy * p->stride_h - c->g.g.pad_top, x0 = ox * p->stride_w - c->g.g.pad_left;
      ebnn__zpad_case_t zc;
      int32_t sum, fy, fx;
      if (!(y0 >= 0 && x0 >= 0 && y0 + (p->filter_h - 1) * p->dilation_h < p->in_h &&
            x0 + (p->filter_w - 1) * p->dilation_w < p->in_w)) {
        if (c->zsum_ok) { /* the counted taps once per pixel, their sums precomputed */
          if (ebnn__bconv_zero_pad_case(p, &c->g, oy, ox, &zc)) {
            for (o = 0; o < oc; ++o) zacc[o] = 0;
            for (fy = 0; fy < p->filter_h; ++fy)
              for (fx = 0; fx < p->filter_w; ++fx)
                if (ebnn__bconv_zero_pad_counted(p, &zc, fy, fx)) {
                  const int32_t *ts = c->zsum + (size_t)(fy * p->filter_w + fx) * (size_t)oc;
                  for (o = 0; o < oc; ++o) zacc[o] += ts[o];
                }
            for (o = 0; o < oc; ++o) {
              const float corr = (-1.0f * p->multiplier[o]) * (float)zacc[o];
              out[o] = out[o] + corr;
            }
          }
        } else {
          for (o = 0; o < oc; ++o)
            if (ebnn__bconv_zero_pad_correction(p, &c->g, oy, ox, o, &sum)) {
              const float corr = (-1.0f * p->multiplier[o]) * (float)sum;
              out[o] = out[o] + corr;
            }
        }
      }
    }
    if (c->residual != NULL) { /* the ADD, in its operand order, then its activation: two vector loops */
      const float *r = c->residual + (size_t)q * (size_t)oc;
      if (c->add->residual_first) {
        for (o = 0; o < oc; ++o) out[o] = r[o] + out[o];
      } else {
        for (o = 0; o < oc; ++o) out[o] = out[o] + r[o];
      }
      ebnn__opt_act(out, oc, c->add->activation);
    }
  } else {
    const int32_t words_out = EBNN_PACKED_WORDS(oc);
    int32_t *px = (int32_t *)output + (size_t)q * (size_t)words_out;
    for (w = 0; w < words_out; ++w) {
      const int32_t base = w * 32;
      const int32_t nb = oc - base < 32 ? oc - base : 32;
      uint32_t word = 0u;
      for (j = 0; j < nb; ++j) word |= (uint32_t)(ct[base + j] > p->thresholds[base + j]) << j;
      px[w] = (int32_t)word;
    }
  }
}

/* Output pixels [q0, q1) (flattened oy * out_w + ox), in chunks that run
 * across row ends. */
static void bopt_pixels(const bopt_ctx_t *c, const int32_t *input, int32_t q0, int32_t q1,
                        void *output) {
  int32_t cnt[EBNN_BOPT_CNT];
  int32_t zacc[EBNN_BOPT_MAX_OC]; /* same-zero sums of one pixel */
  const int32_t oc = c->p->out_c;
  int32_t chunk = EBNN_BOPT_CNT / oc, q, i;
#if defined(EBNN_BOPT_ISA_AVX2)
  {
    const int32_t k_words = c->p->filter_h * (int32_t)c->row_len;
    if (k_words <= EBNN_BOPT_SPLIT_K && chunk > EBNN_BOPT_SPLIT_WORDS / (2 * k_words))
      chunk = EBNN_BOPT_SPLIT_WORDS / (2 * k_words);
  }
#endif
  { /* balanced chunks: 49 pixels in chunks of at most 16 run as 13+12+12+12, not 16+16+16+1 */
    const int32_t total = q1 - q0;
    const int32_t n_chunks = total > 0 ? (total + chunk - 1) / chunk : 1;
    const int32_t even = (total + n_chunks - 1) / n_chunks;
    chunk = even + (even & 1) <= chunk ? even + (even & 1) : even; /* whole 2-pixel tiles */
  }
  for (q = q0; q < q1; q += chunk) {
    const int32_t n = q1 - q < chunk ? q1 - q : chunk;
    bopt_chunk_counts(c, input, q, n, cnt);
    for (i = 0; i < n; ++i) bopt_transform(c, cnt + (size_t)i * (size_t)oc, q + i, output, zacc);
  }
}

typedef struct {
  const bopt_ctx_t *c;
  const int32_t *input;
  void *output;
} bopt_job_t;

/* Items are 2-pixel tiles, so no thread's range splits a tile (7x7 maps
 * then share 25 tiles as 13 + 12, not 7 rows as 4 + 3). */
static void bopt_job(const void *arg, int32_t begin, int32_t end) {
  const bopt_job_t *j = (const bopt_job_t *)arg;
  const int32_t n_pix = j->c->g.g.out_h * j->c->g.g.out_w;
  bopt_pixels(j->c, j->input, 2 * begin, 2 * end < n_pix ? 2 * end : n_pix, j->output);
}

/* The bconv (add == NULL) or ebnn_bconv2d_add, its geometry checked into g;
 * cases off the fast paths go to the matching _ref kernel. */
static ebnn_status_t bopt_run(const ebnn_bconv2d_params_t *p, const ebnn__bgeom_t *g, const int32_t *input,
                              void *output, const ebnn_bconv2d_add_params_t *add, const float *residual) {
  uint32_t buf[EBNN_BOPT_FILTER_ELEMS];
  bopt_ctx_t c;
  size_t k_words, o, k;
  c.g = *g;
  c.add = add;
  c.residual = residual;
  k_words = (size_t)p->filter_h * (size_t)p->filter_w * (size_t)c.g.words_in;
  if (k_words > EBNN_BOPT_PATCH_WORDS || p->filter_h > EBNN_BOPT_MAX_FH || p->out_c > EBNN_BOPT_MAX_OC ||
      (p->filter_t == NULL && k_words * (size_t)p->out_c > EBNN_BOPT_FILTER_ELEMS))
    return add != NULL ? ebnn_bconv2d_add_ref(add, input, residual, (float *)output)
                       : ebnn_bconv2d_ref(p, input, output);
  if (p->filter_t != NULL) {
    c.wt = (const uint32_t *)(const void *)p->filter_t;
  } else {
    for (o = 0; o < (size_t)p->out_c; ++o)
      for (k = 0; k < k_words; ++k) buf[k * (size_t)p->out_c + o] = (uint32_t)p->filter[o * k_words + k];
    c.wt = buf;
  }
  c.p = p;
  c.planes = 1;
  c.plane_words = 0u;
  c.row_len = (size_t)p->filter_w * (size_t)c.g.words_in;
  c.zsum_ok = c.g.same_zero && (size_t)p->filter_h * (size_t)p->filter_w * (size_t)p->out_c <= EBNN_BOPT_ZSUM;
  if (c.zsum_ok) {
    const int32_t taps = p->filter_h * p->filter_w;
    int32_t tap, oo;
    for (tap = 0; tap < taps; ++tap)
      for (oo = 0; oo < p->out_c; ++oo) c.zsum[(size_t)tap * (size_t)p->out_c + (size_t)oo] = ebnn__bconv_tap_sum(p, &c.g, oo, tap);
  }
  if (p->thresholds == NULL) {
    for (o = 0; o < (size_t)p->out_c; ++o) { /* as the reference rounds them */
      const float mul = p->multiplier[o];
      c.m[o] = (float)(-1.0 * (double)mul);
      c.b[o] = (float)((double)p->bias[o] + (double)c.g.k * (double)mul);
    }
  }
#if defined(EBNN_BOPT_ISA_AVX512)
  if (c.g.g.out_h * c.g.g.out_w < EBNN_BOPT_P && /* a dense layer: counts split by channels */
      (size_t)c.g.g.out_h * (size_t)c.g.g.out_w * (size_t)p->out_c <= EBNN_BOPT_CNT) {
    int32_t cnt[EBNN_BOPT_CNT], zacc[EBNN_BOPT_MAX_OC], q;
    const int32_t n_pix = c.g.g.out_h * c.g.g.out_w;
    bopt_gemv(&c, input, n_pix, cnt);
    for (q = 0; q < n_pix; ++q) bopt_transform(&c, cnt + (size_t)q * (size_t)p->out_c, q, output, zacc);
    return EBNN_OK;
  }
#endif
  {
    bopt_job_t job;
    job.c = &c;
    job.input = input;
    job.output = output;
    const int32_t n_pix = c.g.g.out_h * c.g.g.out_w;
    ebnn__parallel_for((n_pix + 1) / 2, (int64_t)n_pix * (int64_t)p->out_c * (int64_t)k_words, bopt_job, &job);
  }
  return EBNN_OK;
}

ebnn_status_t ebnn_bconv2d_opt(const ebnn_bconv2d_params_t *params,
                               const int32_t *input, void *output) {
  ebnn__bgeom_t g;
  ebnn_status_t st;
  if (params == NULL || input == NULL || output == NULL) return EBNN_ERROR_NULL_POINTER;
  st = ebnn__bconv2d_check(params, &g);
  if (st != EBNN_OK) return st;
  return bopt_run(params, &g, input, output, NULL, NULL);
}

ebnn_status_t ebnn_bconv2d_add_opt(const ebnn_bconv2d_add_params_t *params,
                                   const int32_t *input, const float *residual,
                                   float *output) {
  ebnn__bgeom_t g;
  const ebnn_status_t st = ebnn__bconv2d_add_check(params, input, residual, output, &g);
  if (st != EBNN_OK) return st;
  return bopt_run(&params->conv, &g, input, output, params, residual);
}

/* ---------------------------------------------------------------------- */
/* The level-coded convolution (ebnn.h): its bitplanes are the counted     */
/* virtual pixels of one binary GEMM, so the planes of a pixel share every */
/* weight load (a FULLY_CONNECTED's one pixel fills a 2-pixel tile with 2  */
/* planes); the transform combines them per output pixel.                  */
/* ---------------------------------------------------------------------- */

typedef struct {
  const bopt_ctx_t *c;
  const ebnn_lconv2d_params_t *lp;
  const int32_t *packed;
  const int32_t *pop;
  float *output;
} lopt_job_t;

/* Output pixel q from its planes' counts ct[j * oc + o]: the exact integer
 * sum, then the reference's float operations. */
static void lopt_transform(const lopt_job_t *jb, const int32_t *ct, int32_t q) {
  const ebnn_bconv2d_params_t *p = jb->c->p;
  const int32_t oc = p->out_c, planes = jb->c->planes;
  float *out = jb->output + (size_t)q * (size_t)oc;
  int32_t j, o;
  for (o = 0; o < oc; ++o) {
    int32_t s = 0;
    float y;
    for (j = 0; j < planes; ++j) s += (ct[(size_t)j * (size_t)oc + (size_t)o] - jb->pop[o]) * (1 << j);
    y = p->multiplier[o] * (float)s;
    y = y + p->bias[o];
    out[o] = ebnn__act(y, jb->lp->activation);
  }
}

static void lopt_pixels(const lopt_job_t *jb, int32_t q0, int32_t q1) {
  int32_t cnt[EBNN_BOPT_CNT];
  const bopt_ctx_t *c = jb->c;
  const ebnn_bconv2d_params_t *p = c->p;
  const int32_t oc = p->out_c, planes = c->planes;
  int32_t chunk = EBNN_BOPT_CNT / (oc * planes), q, i;
#if defined(EBNN_BOPT_ISA_AVX2)
  {
    const int32_t k_words = p->filter_h * (int32_t)c->row_len;
    if (k_words <= EBNN_BOPT_SPLIT_K && chunk * planes > EBNN_BOPT_SPLIT_WORDS / (2 * k_words))
      chunk = EBNN_BOPT_SPLIT_WORDS / (2 * k_words) / planes;
  }
#endif
  if (chunk < 1) chunk = 1; /* the caller checked oc * planes <= EBNN_BOPT_CNT and the split size */
  {
    const int32_t total = q1 - q0;
    const int32_t n_chunks = total > 0 ? (total + chunk - 1) / chunk : 1;
    chunk = (total + n_chunks - 1) / n_chunks;
  }
  for (q = q0; q < q1; q += chunk) {
    const int32_t n = q1 - q < chunk ? q1 - q : chunk;
    bopt_chunk_counts(c, jb->packed, q * planes, n * planes, cnt);
    for (i = 0; i < n; ++i) lopt_transform(jb, cnt + (size_t)i * (size_t)planes * (size_t)oc, q + i);
  }
}

static void lopt_job(const void *arg, int32_t begin, int32_t end) {
  lopt_pixels((const lopt_job_t *)arg, begin, end);
}

ebnn_status_t ebnn_lconv2d_opt(const ebnn_lconv2d_params_t *params,
                               const float *input, float *output,
                               void *scratch, size_t scratch_bytes) {
  bopt_ctx_t c;
  int32_t pop[EBNN_BOPT_CNT];
  int32_t planes;
  size_t plane_words, k_words, o, k;
  lopt_job_t job;
  const ebnn_bconv2d_params_t *p;
  ebnn_status_t st;
  st = ebnn__lconv2d_prepare(params, input, output, scratch, scratch_bytes, &c.g, &planes, &plane_words);
  if (st != EBNN_OK) return st;
  p = &params->conv;
  k_words = (size_t)p->filter_h * (size_t)p->filter_w * (size_t)c.g.words_in;
  if (k_words > EBNN_BOPT_PATCH_WORDS || p->filter_h > EBNN_BOPT_MAX_FH || p->filter_t == NULL ||
      (size_t)p->out_c * (size_t)planes > EBNN_BOPT_CNT
#if defined(EBNN_BOPT_ISA_AVX2)
      || (k_words <= EBNN_BOPT_SPLIT_K && (size_t)planes * 2u * k_words > EBNN_BOPT_SPLIT_WORDS)
#endif
  )
    return ebnn_lconv2d_ref(params, input, output, scratch, scratch_bytes);
  c.p = p;
  c.wt = (const uint32_t *)(const void *)p->filter_t;
  c.row_len = (size_t)p->filter_w * (size_t)c.g.words_in;
  c.zsum_ok = 0;
  c.add = NULL;
  c.residual = NULL;
  c.planes = planes;
  c.plane_words = plane_words;
  job.pop = params->filter_pop;
  if (job.pop == NULL) {
    for (o = 0; o < (size_t)p->out_c; ++o) {
      int32_t n = 0;
      for (k = 0; k < k_words; ++k) n += EBNN_POPCOUNT32((uint32_t)p->filter[o * k_words + k]);
      pop[o] = n;
    }
    job.pop = pop;
  }
  job.c = &c;
  job.lp = params;
  job.packed = (const int32_t *)scratch;
  job.output = output;
  {
    const int32_t n_pix = c.g.g.out_h * c.g.g.out_w;
#if defined(EBNN_BOPT_ISA_AVX512)
    if (n_pix * planes < EBNN_BOPT_P && /* a dense layer's planes: counts split by channels */
        (size_t)(n_pix * planes) * (size_t)p->out_c <= EBNN_BOPT_CNT) {
      int32_t cnt[EBNN_BOPT_CNT], q;
      bopt_gemv(&c, job.packed, n_pix * planes, cnt);
      for (q = 0; q < n_pix; ++q) lopt_transform(&job, cnt + (size_t)q * (size_t)planes * (size_t)p->out_c, q);
      return EBNN_OK;
    }
#endif
    ebnn__parallel_for(n_pix, (int64_t)n_pix * (int64_t)p->out_c * (int64_t)k_words * planes, lopt_job, &job);
  }
  return EBNN_OK;
}

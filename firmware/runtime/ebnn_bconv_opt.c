/*
 * ebnn_bconv2d_opt: LceBconv2d as a packed binary GEMM (kernel set "opt").
 * Same params, statuses and results bit for bit as ebnn_bconv2d_ref (the
 * counts are integers, so any summation order is exact; the output
 * transform is the reference's, line by line).
 *
 * Register tiling: EBNN_BOPT_P output pixels x one block of output
 * channels share every load: for each filter word k, the P input words are
 * broadcast and XORed with the block's weights, the popcounts accumulate
 * per (pixel, channel) lane. Cache blocking: a row is cut into chunks of
 * pixels whose counts fit a stack buffer; the channel block is the outer
 * loop of a chunk, so its weights ([K words][block] of the [K][out_c]
 * filter_t) stay in L1 while the chunk's pixels stream past.
 *
 * Vector code, chosen by the build's -march / -mcpu flags:
 *   AVX-512 VPOPCNTDQ + BW: VPOPCNTD on 16 channels per zmm, 32 per block;
 *   AVX2: popcount by the nibble table (VPSHUFB) into byte counters,
 *     widened to 32 bits (VPMADDUBSW + VPMADDWD) every 31 words, before a
 *     byte can overflow (31 * 8 = 248), 16 channels per block;
 *   NEON: VCNT into byte counters, widened (VPADDL) every 31 words,
 *     16 channels per block;
 *   else (or -DEBNN_OPT_PLAIN_C): plain C loops over 16 channels.
 * Channels past the last full block run as plain scalar loops.
 *
 * Delegated to ebnn_bconv2d_ref: SAME padding with pad_value 0 (the
 * reference's border correction), windows over EBNN_BOPT_PATCH_WORDS words,
 * more than EBNN_BOPT_MAX_OC channels, no filter_t with a filter over the
 * stack buffer. Stack: about 48 KiB (hosts only, like ebnn_opt.c).
 */
#include <string.h>

#include "ebnn.h"
#include "ebnn_internal.h"

#define EBNN_BOPT_P 4
#define EBNN_BOPT_MAX_OC 2048
#define EBNN_BOPT_PATCH_WORDS 1024
#define EBNN_BOPT_MAX_FH 32
#define EBNN_BOPT_CNT 8192 /* int32 counts per chunk */
#define EBNN_BOPT_FILTER_ELEMS 4096

#if !defined(EBNN_OPT_PLAIN_C) && defined(__AVX512VPOPCNTDQ__) && defined(__AVX512BW__)
#include <immintrin.h>
#define EBNN_BOPT_BLOCK 32
#define EBNN_BOPT_ISA_AVX512 1
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

typedef struct {
  const ebnn_bconv2d_params_t *p;
  ebnn__bgeom_t g;
  const uint32_t *wt; /* [k_words][out_c] */
  size_t row_len;     /* filter_w * words_in: contiguous words per filter row */
  float m[EBNN_BOPT_MAX_OC], b[EBNN_BOPT_MAX_OC]; /* float output transform */
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

/* Counts of pixels [ox0, ox0 + n) of row oy: cnt[(ox - ox0) * oc + o]. */
static void bopt_chunk_counts(const bopt_ctx_t *c, const int32_t *input, int32_t oy,
                              int32_t ox0, int32_t n, int32_t *cnt) {
  static const uint32_t zero_row[1] = {0u};
  uint32_t patch[EBNN_BOPT_P][EBNN_BOPT_PATCH_WORDS];
  const uint32_t *rows[EBNN_BOPT_P * EBNN_BOPT_MAX_FH];
  int32_t dummy[EBNN_BOPT_P * EBNN_BOPT_BLOCK];
  const ebnn_bconv2d_params_t *p = c->p;
  const int32_t fh = p->filter_h;
  const size_t oc = (size_t)p->out_c;
  const size_t k_words = (size_t)fh * c->row_len;
  int32_t tile, i, o, fy;
  size_t t;
  (void)zero_row;
  for (tile = 0; tile < n; tile += EBNN_BOPT_P) {
    const int32_t np = n - tile < EBNN_BOPT_P ? n - tile : EBNN_BOPT_P;
    for (i = 0; i < np; ++i) bopt_window(c, input, oy, ox0 + tile + i, patch[i], rows + i * fh);
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
    (void)k_words;
  }
}

/* Output rows [oy0, oy1): the reference's transforms on the counts. */
static void bopt_rows(const bopt_ctx_t *c, const int32_t *input, int32_t oy0, int32_t oy1,
                      void *output) {
  int32_t cnt[EBNN_BOPT_CNT];
  const ebnn_bconv2d_params_t *p = c->p;
  const int32_t oc = p->out_c, ow = c->g.g.out_w;
  const int32_t chunk = EBNN_BOPT_CNT / oc < ow ? EBNN_BOPT_CNT / oc : ow;
  const int32_t words_out = EBNN_PACKED_WORDS(oc);
  int32_t oy, ox0, i, o, w, j;
  for (oy = oy0; oy < oy1; ++oy) {
    for (ox0 = 0; ox0 < ow; ox0 += chunk) {
      const int32_t n = ow - ox0 < chunk ? ow - ox0 : chunk;
      bopt_chunk_counts(c, input, oy, ox0, n, cnt);
      for (i = 0; i < n; ++i) {
        const int32_t *ct = cnt + (size_t)i * (size_t)oc;
        const size_t pix = (size_t)oy * (size_t)ow + (size_t)(ox0 + i);
        if (p->thresholds == NULL) {
          float *out = (float *)output + pix * (size_t)oc;
          for (o = 0; o < oc; ++o) {
            int32_t x = 2 * ct[o];
            float y;
            x = x > c->g.clamp_max ? c->g.clamp_max : x;
            x = x < c->g.clamp_min ? c->g.clamp_min : x;
            y = (float)x * c->m[o];
            y = y + c->b[o];
            out[o] = y;
          }
        } else {
          int32_t *px = (int32_t *)output + pix * (size_t)words_out;
          for (w = 0; w < words_out; ++w) {
            const int32_t base = w * 32;
            const int32_t nb = oc - base < 32 ? oc - base : 32;
            uint32_t word = 0u;
            for (j = 0; j < nb; ++j)
              word |= (uint32_t)(ct[base + j] > p->thresholds[base + j]) << j;
            px[w] = (int32_t)word;
          }
        }
      }
    }
  }
}

typedef struct {
  const bopt_ctx_t *c;
  const int32_t *input;
  void *output;
} bopt_job_t;

static void bopt_job(const void *arg, int32_t begin, int32_t end) {
  const bopt_job_t *j = (const bopt_job_t *)arg;
  bopt_rows(j->c, j->input, begin, end, j->output);
}

ebnn_status_t ebnn_bconv2d_opt(const ebnn_bconv2d_params_t *params,
                               const int32_t *input, void *output) {
  static uint32_t buf_unused[1];
  uint32_t buf[EBNN_BOPT_FILTER_ELEMS];
  bopt_ctx_t c;
  ebnn_status_t st;
  size_t k_words, o, k;
  const ebnn_bconv2d_params_t *p = params;
  (void)buf_unused;
  if (p == NULL || input == NULL || output == NULL) return EBNN_ERROR_NULL_POINTER;
  st = ebnn__bconv2d_check(p, &c.g);
  if (st != EBNN_OK) return st;
  k_words = (size_t)p->filter_h * (size_t)p->filter_w * (size_t)c.g.words_in;
  if (c.g.same_zero || (size_t)p->filter_h * (size_t)p->filter_w * (size_t)c.g.words_in >
                           EBNN_BOPT_PATCH_WORDS ||
      p->filter_h > EBNN_BOPT_MAX_FH || p->out_c > EBNN_BOPT_MAX_OC)
    return ebnn_bconv2d_ref(p, input, output);
  if (p->filter_t != NULL) {
    c.wt = (const uint32_t *)(const void *)p->filter_t;
  } else {
    if (k_words * (size_t)p->out_c > EBNN_BOPT_FILTER_ELEMS) return ebnn_bconv2d_ref(p, input, output);
    for (o = 0; o < (size_t)p->out_c; ++o)
      for (k = 0; k < k_words; ++k) buf[k * (size_t)p->out_c + o] = (uint32_t)p->filter[o * k_words + k];
    c.wt = buf;
  }
  c.p = p;
  c.row_len = (size_t)p->filter_w * (size_t)c.g.words_in;
  if (p->thresholds == NULL) {
    for (o = 0; o < (size_t)p->out_c; ++o) { /* as the reference rounds them */
      const float mul = p->multiplier[o];
      c.m[o] = (float)(-1.0 * (double)mul);
      c.b[o] = (float)((double)p->bias[o] + (double)c.g.k * (double)mul);
    }
  }
  {
    bopt_job_t job;
    job.c = &c;
    job.input = input;
    job.output = output;
    ebnn__parallel_for(c.g.g.out_h, bopt_job, &job); /* output rows per thread */
  }
  return EBNN_OK;
}

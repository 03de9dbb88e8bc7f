/*
 * CONV_2D, kernel set "opt": ebnn_conv2d_opt. Same results bit for bit as
 * ebnn_conv2d_ref: per output element the reference's operations in its
 * order (the window's taps k = (fy * fw + fx) * in_c + c from +0.0f,
 * out-of-bounds taps read as 0.0f as in its zero-filled patch, then the
 * bias, then the activation; builds use -ffp-contract=off). Three
 * orders of the same operations, tried in turn:
 *
 * 1. One input channel, stride_w 1 (cvo_mono: grayscale stems): each
 *    output row's input rows copied into a zero-padded buffer, then 6
 *    pixels x 16 channels per tile.
 * 2. A cache-blocked GEMM (ebnn__conv2d_blocked_opt). A thread's output
 *    rows are cut into chunks of up to EBNN_CVO_CHUNK pixels (across row
 *    ends); for each block of 16 output channels the chunk's pixels stream
 *    past the block's [K][16] slice of the filter, which stays in L1 (K <=
 *    512 floats: at most 32 KiB). The row-at-a-time order (3.) re-reads
 *    the whole filter for every 4 pixels: from L3 once it passes L2 (1x1
 *    convs of 256 -> 512 channels, 512 KiB). The tile is 6 pixels x 16
 *    channels, 12 accumulators of 8 lanes (16 vector registers: AVX2;
 *    wider ISAs run the same code). Windows inside the input (dilation_w 1)
 *    are read in place, one pointer per filter row; others are gathered
 *    zero-filled into a per-pixel patch. It does not apply without GNU C
 *    vectors or with -DEBNN_OPT_PLAIN_C, with out_c not a multiple of 8, K
 *    over 512 with a window that crosses the input's border, or filter_h
 *    over 32.
 * 3. Output rows (ebnn__opt_conv_row, also the fused chain's producer in
 *    ebnn_fused_opt.c): 4 (32 vector registers) or 2 pixels x 32 channels
 *    per step, windows up to EBNN_OPT_PATCH_FLOATS floats; larger ones go
 *    to the reference.
 * The GEMM (2.) also reads EBNN_FILTER_HWIO16, where a block's [K][16]
 * slice is one contiguous run: from L3 or DRAM (QuickNet's 7x7x256 -> 512
 * 1x1 conv, a 512 KiB filter) HWIO's one line per tap, 4 * out_c bytes
 * apart, was about 1.7x slower. OHWI filters go to the reference.
 */
#include "ebnn.h"
#include "ebnn_internal.h"
#include "ebnn_opt_internal.h"

#define EBNN_CVO_TILE 6
#define EBNN_CVO_CHUNK 66
#define EBNN_CVO_MAX_K 512 /* = EBNN_CONV_PATCH_FLOATS of the reference */
#define EBNN_CVO_MAX_FH 32
#define EBNN_CVO_KBLOCK 256 /* taps per block of a 1-row filter: a 16 KiB [256][16] slice */
#define EBNN_CVO_PATCH (EBNN_CVO_CHUNK * 128) /* floats: the chunk shrinks for larger K */

#if EBNN_OPT_VEC
typedef struct {
  const ebnn_conv2d_params_t *p;
  const ebnn__geom_t *g;
  const float *input;
  float *output;
  size_t row_len; /* filter_w * in_c */
  int32_t chunk;  /* pixels per chunk */
  int inside;     /* every window lies inside the input: read in place, no patch */
  int hwio16;     /* the filter is EBNN_FILTER_HWIO16, else HWIO */
} cvo_ctx_t;

/* Filter-row pointers of output pixel q's window: into the input when the
 * window is inside it in x (dilation_w 1) and in y, else into patch
 * (zero-filled where outside, as the reference's patch). */
static void cvo_window(const cvo_ctx_t *c, int32_t q, float *patch, const float **rows) {
  const ebnn_conv2d_params_t *p = c->p;
  const int32_t oy = q / c->g->out_w, ox = q % c->g->out_w;
  const int32_t y0 = oy * p->stride_h - c->g->pad_top;
  const int32_t x0 = ox * p->stride_w - c->g->pad_left;
  int32_t fy, fx, ch;
  if (p->dilation_w == 1 && x0 >= 0 && x0 + p->filter_w <= p->in_w && y0 >= 0 &&
      y0 + (p->filter_h - 1) * p->dilation_h < p->in_h) {
    for (fy = 0; fy < p->filter_h; ++fy)
      rows[fy] = c->input + ((size_t)(y0 + fy * p->dilation_h) * (size_t)p->in_w + (size_t)x0) *
                                (size_t)p->in_c;
    return;
  }
  for (fy = 0; fy < p->filter_h; ++fy) {
    const int32_t iy = y0 + fy * p->dilation_h;
    float *dst = patch + (size_t)fy * c->row_len;
    rows[fy] = dst;
    for (fx = 0; fx < p->filter_w; ++fx, dst += p->in_c) {
      const int32_t ix = x0 + fx * p->dilation_w;
      if (iy >= 0 && iy < p->in_h && ix >= 0 && ix < p->in_w) {
        const float *px = c->input + ((size_t)iy * (size_t)p->in_w + (size_t)ix) * (size_t)p->in_c;
        for (ch = 0; ch < p->in_c; ++ch) dst[ch] = px[ch];
      } else {
        for (ch = 0; ch < p->in_c; ++ch) dst[ch] = 0.0f;
      }
    }
  }
}

/* EBNN_CVO_TILE pixels (rows[i * fh + fy]) x (8 * nv) channels of the
 * [K][oc] filter at wt: per lane the taps in order from +0.0f (first) or
 * from the partial sums in out[i] (a later block of K), then the bias if
 * given (the last block); stored to out[i]. 6 pixels x 16 channels (12
 * accumulators) was the fastest shape measured on Zen 3 (4 x 16: about 20%
 * slower). */
EBNN_INLINE void cvo_tile(const float *const *rows, int32_t fh, size_t row_len, const float *wt, size_t oc,
                          const float *bias, float *const *out, int32_t nv, int first) {
  ebnn_v8f acc[EBNN_CVO_TILE][2];
  const float *s[EBNN_CVO_TILE];
  int32_t fy, i, j;
  size_t t;
  for (i = 0; i < EBNN_CVO_TILE; ++i)
    for (j = 0; j < nv; ++j) {
      if (first) {
        acc[i][j] = EBNN_V8F_SPLAT(0.0f);
      } else {
        acc[i][j] = EBNN_V8F_LOAD(out[i] + 8 * j);
      }
    }
  for (fy = 0; fy < fh; ++fy) {
    for (i = 0; i < EBNN_CVO_TILE; ++i) s[i] = rows[i * fh + fy];
    for (t = 0; t < row_len; ++t, wt += oc) {
      ebnn_v8f w[2];
      for (j = 0; j < nv; ++j) w[j] = EBNN_V8F_LOAD(wt + 8 * j);
      for (i = 0; i < EBNN_CVO_TILE; ++i) {
        const ebnn_v8f x = EBNN_V8F_SPLAT(s[i][t]);
        for (j = 0; j < nv; ++j) acc[i][j] = acc[i][j] + x * w[j];
      }
    }
  }
  if (bias != NULL) { /* total += bias[o], as the reference */
    for (j = 0; j < nv; ++j) {
      const ebnn_v8f b = EBNN_V8F_LOAD(bias + 8 * j);
      for (i = 0; i < EBNN_CVO_TILE; ++i) acc[i][j] = acc[i][j] + b;
    }
  }
  for (i = 0; i < EBNN_CVO_TILE; ++i)
    for (j = 0; j < nv; ++j) EBNN_V8F_STORE(out[i] + 8 * j, acc[i][j]);
}

static void cvo_tile16(const float *const *rows, int32_t fh, size_t row_len, const float *wt, size_t oc,
                       const float *bias, float *const *out, int first) {
  cvo_tile(rows, fh, row_len, wt, oc, bias, out, 2, first);
}

/* the last 8 channels when out_c % 16 == 8 */
static void cvo_tile8(const float *const *rows, int32_t fh, size_t row_len, const float *wt, size_t oc,
                      const float *bias, float *const *out, int first) {
  cvo_tile(rows, fh, row_len, wt, oc, bias, out, 1, first);
}

/* Output pixels [q0, q0 + n) (flattened oy * out_w + ox). */
static void cvo_chunk(const cvo_ctx_t *c, int32_t q0, int32_t n) {
  float patch[EBNN_CVO_PATCH];
  const float *rows[EBNN_CVO_CHUNK * EBNN_CVO_MAX_FH];
  float spare[16]; /* stores of the tile's padding pixels */
  const ebnn_conv2d_params_t *p = c->p;
  const int32_t fh = p->filter_h;
  const size_t oc = (size_t)p->out_c, k = (size_t)fh * c->row_len;
  float *out = c->output + (size_t)q0 * oc;
  int32_t i, t, fy;
  size_t o;
  for (i = 0; i < n; ++i) cvo_window(c, q0 + i, c->inside ? patch : patch + (size_t)i * k, rows + (size_t)i * (size_t)fh);
  for (; i % EBNN_CVO_TILE; ++i) /* pad the last tile with the last pixel */
    for (fy = 0; fy < fh; ++fy) rows[(size_t)i * (size_t)fh + (size_t)fy] = rows[(size_t)(n - 1) * (size_t)fh + (size_t)fy];
  for (o = 0; o < oc; o += 16) {
    const int wide = o + 16 <= oc;
    size_t k0;
    /* block o's [K][16] slice: stride out_c in HWIO, its own contiguous
     * [K][width] run in HWIO16 */
    const size_t wstep = c->hwio16 ? (oc - o < 16 ? oc - o : 16) : oc;
    const float *wblock = c->hwio16 ? p->filter + o * k : p->filter + o;
    /* one filter row (fh 1) runs in blocks of EBNN_CVO_KBLOCK taps, so the
     * block's [KBLOCK][16] filter slice stays in L1 for the whole chunk;
     * each lane still adds its taps in order (partial sums wait in out) */
    const size_t kb = fh == 1 ? EBNN_CVO_KBLOCK : c->row_len;
    for (k0 = 0; k0 < c->row_len; k0 += kb) {
      const size_t len = c->row_len - k0 < kb ? c->row_len - k0 : kb;
      const int last = k0 + len == c->row_len;
      for (t = 0; t < n; t += EBNN_CVO_TILE) {
        float *dst[EBNN_CVO_TILE];
        const float *shifted[EBNN_CVO_TILE];
        const float *const *r = rows + (size_t)t * (size_t)fh;
        for (i = 0; i < EBNN_CVO_TILE; ++i) dst[i] = t + i < n ? out + (size_t)(t + i) * oc + o : spare;
        if (fh == 1) {
          for (i = 0; i < EBNN_CVO_TILE; ++i) shifted[i] = r[i] + k0;
          r = shifted;
        }
        (wide ? cvo_tile16 : cvo_tile8)(r, fh, len, wblock + k0 * wstep, wstep,
                                        last && p->bias != NULL ? p->bias + o : NULL, dst, k0 == 0);
      }
    }
  }
  if (p->activation != EBNN_ACT_NONE) ebnn__opt_act(out, (int32_t)((size_t)n * oc), p->activation);
}

/* Items are tiles of EBNN_CVO_TILE output pixels (flattened over rows). */
static void cvo_job(const void *arg, int32_t begin, int32_t end) {
  const cvo_ctx_t *c = (const cvo_ctx_t *)arg;
  const int32_t n_pix = c->g->out_h * c->g->out_w;
  const int32_t q1 = end * EBNN_CVO_TILE < n_pix ? end * EBNN_CVO_TILE : n_pix;
  int32_t q;
  for (q = begin * EBNN_CVO_TILE; q < q1; q += c->chunk) cvo_chunk(c, q, q1 - q < c->chunk ? q1 - q : c->chunk);
}

/* ---------------------------------------------------------------------- */
/* One input channel, stride_w 1 (grayscale stems: MNIST's 3x3 x 1 -> 32)  */
/* ---------------------------------------------------------------------- */

/* Such a conv has only fh * fw taps per window, too few for the tiles
 * above to earn back their setup (MNIST's stem ran at 12.7 G MAC/s). Here
 * an output row's input rows are first copied into a zero-padded buffer,
 * fh rows of width floats, so every window lies inside it and
 * window x starts at float x of each buffer row: the border needs no case
 * of its own and a padded tap adds 0.0f * w, as the reference's patch
 * does. Then 6 pixels x 16 channels at a time as cvo_tile, with the
 * pixels' taps read at fixed offsets from one pointer. */
#define CVO_MONO_PX 6 /* pixels per tile (4: about 10% slower on the MNIST stem, Zen 3) */
#define CVO_MONO_W 1024     /* floats per buffer row at most: out_w rounded up to CVO_MONO_PX, + fw - 1 */
#define CVO_MONO_FLOATS 4096 /* fh * CVO_MONO_W at most (16 KiB of stack) */

typedef struct {
  const ebnn_conv2d_params_t *p;
  const ebnn__geom_t *g;
  const float *input;
  float *output;
  int32_t width; /* floats per buffer row */
} cvo_mono_t;

/* CVO_MONO_PX pixels at buf[x..] x 8 * nv channels of the [fh * fw][oc] filter:
 * per lane the taps in order from +0.0f, then the bias; pixel i is stored
 * to dst[i]. */
EBNN_INLINE void cvo_mono_tile(const float *buf, int32_t width, int32_t fh, int32_t fw, const float *wt,
                               size_t oc, const float *bias, float *const *dst, int32_t nv) {
  ebnn_v8f a[CVO_MONO_PX][2];
  int32_t fy, fx, i, v;
  for (i = 0; i < CVO_MONO_PX; ++i)
    for (v = 0; v < nv; ++v) a[i][v] = EBNN_V8F_SPLAT(0.0f);
  for (fy = 0; fy < fh; ++fy) {
    const float *r = buf + (size_t)fy * (size_t)width;
    for (fx = 0; fx < fw; ++fx, wt += oc) {
      ebnn_v8f w[2];
      for (v = 0; v < nv; ++v) w[v] = EBNN_V8F_LOAD(wt + 8 * v);
      for (i = 0; i < CVO_MONO_PX; ++i) {
        const ebnn_v8f xv = EBNN_V8F_SPLAT(r[i + fx]);
        for (v = 0; v < nv; ++v) a[i][v] = a[i][v] + xv * w[v];
      }
    }
  }
  if (bias != NULL) {
    for (v = 0; v < nv; ++v) {
      const ebnn_v8f b = EBNN_V8F_LOAD(bias + 8 * v);
      for (i = 0; i < CVO_MONO_PX; ++i) a[i][v] = a[i][v] + b;
    }
  }
  for (i = 0; i < CVO_MONO_PX; ++i)
    for (v = 0; v < nv; ++v) EBNN_V8F_STORE(dst[i] + 8 * v, a[i][v]);
}

/* One output row from its padded input rows in buf. */
EBNN_INLINE void cvo_mono_row(const cvo_mono_t *m, const float *buf, float *out, int32_t fh, int32_t fw) {
  const ebnn_conv2d_params_t *p = m->p;
  const size_t oc = (size_t)p->out_c;
  const int32_t out_w = m->g->out_w;
  float spare[16]; /* stores of the last quad's pixels past the row */
  int32_t x, i;
  size_t o;
  for (x = 0; x < out_w; x += CVO_MONO_PX) {
    float *dst[CVO_MONO_PX];
    for (o = 0; o < oc; o += 16) {
      const int32_t nv = o + 16 <= oc ? 2 : 1;
      for (i = 0; i < CVO_MONO_PX; ++i) dst[i] = x + i < out_w ? out + (size_t)(x + i) * oc + o : spare;
      if (nv == 2) {
        cvo_mono_tile(buf + x, m->width, fh, fw, p->filter + o, oc, p->bias != NULL ? p->bias + o : NULL, dst, 2);
      } else {
        cvo_mono_tile(buf + x, m->width, fh, fw, p->filter + o, oc, p->bias != NULL ? p->bias + o : NULL, dst, 1);
      }
    }
  }
}

/* Items are output rows. */
static void cvo_mono_job(const void *arg, int32_t begin, int32_t end) {
  const cvo_mono_t *m = (const cvo_mono_t *)arg;
  const ebnn_conv2d_params_t *p = m->p;
  float buf[CVO_MONO_FLOATS];
  const size_t oc = (size_t)p->out_c;
  int32_t oy, fy, x;
  for (oy = begin; oy < end; ++oy) {
    float *out = m->output + (size_t)oy * (size_t)m->g->out_w * oc;
    for (fy = 0; fy < p->filter_h; ++fy) {
      const int32_t iy = oy * p->stride_h - m->g->pad_top + fy * p->dilation_h;
      float *dst = buf + (size_t)fy * (size_t)m->width;
      if (iy < 0 || iy >= p->in_h) {
        for (x = 0; x < m->width; ++x) dst[x] = 0.0f;
      } else {
        const float *src = m->input + (size_t)iy * (size_t)p->in_w;
        for (x = 0; x < m->width; ++x) {
          const int32_t ix = x - m->g->pad_left;
          dst[x] = ix >= 0 && ix < p->in_w ? src[ix] : 0.0f;
        }
      }
    }
    cvo_mono_row(m, buf, out, p->filter_h, p->filter_w);
    if (p->activation != EBNN_ACT_NONE) ebnn__opt_act(out, (int32_t)((size_t)m->g->out_w * oc), p->activation);
  }
}

/* Runs the conv if it has one input channel, stride_w 1, dilation_w 1 and
 * fits the buffer; returns 0 (nothing written) otherwise. */
static int cvo_mono(const ebnn_conv2d_params_t *p, const ebnn__geom_t *g, const float *input, float *output) {
  cvo_mono_t m;
  const int32_t width = (g->out_w + CVO_MONO_PX - 1) / CVO_MONO_PX * CVO_MONO_PX + p->filter_w - 1;
  if (p->in_c != 1 || p->stride_w != 1 || p->dilation_w != 1 || (p->out_c % 8) != 0 || width > CVO_MONO_W ||
      (int64_t)p->filter_h * width > CVO_MONO_FLOATS)
    return 0;
  m.p = p;
  m.g = g;
  m.input = input;
  m.output = output;
  m.width = width;
  ebnn__parallel_for(g->out_h, (int64_t)g->out_h * g->out_w * p->out_c * p->filter_h * p->filter_w, cvo_mono_job,
                     &m);
  return 1;
}

int ebnn__conv2d_blocked_opt(const ebnn_conv2d_params_t *p, const ebnn__geom_t *g,
                             const float *input, float *output) {
  cvo_ctx_t c;
  const size_t k = (size_t)p->filter_h * (size_t)p->filter_w * (size_t)p->in_c;
  /* windows inside the input in both axes, read in place (dilation_w 1) */
  c.inside = p->dilation_w == 1 && g->pad_top == 0 && g->pad_left == 0 &&
             (int64_t)(g->out_w - 1) * p->stride_w + p->filter_w <= p->in_w &&
             (int64_t)(g->out_h - 1) * p->stride_h + (int64_t)(p->filter_h - 1) * p->dilation_h < p->in_h;
  /* K over 512 only with every window inside: the reference then sums the
   * same taps (its plain loop skips out-of-bounds taps, its patch adds 0.0f
   * for them; with none, both are the same sum) */
  if ((p->filter_layout != EBNN_FILTER_HWIO && p->filter_layout != EBNN_FILTER_HWIO16) || (p->out_c % 8) != 0 || (k > EBNN_CVO_MAX_K && !c.inside) ||
      p->filter_h > EBNN_CVO_MAX_FH)
    return 0;
  if (p->filter_layout == EBNN_FILTER_HWIO && cvo_mono(p, g, input, output)) return 1;
  c.hwio16 = p->filter_layout == EBNN_FILTER_HWIO16;
  c.p = p;
  c.g = g;
  c.input = input;
  c.output = output;
  c.row_len = (size_t)p->filter_w * (size_t)p->in_c;
  /* with patches, a chunk's patches fit EBNN_CVO_PATCH; in place, the chunk
   * is as long as the pointer table allows, so the [K][16] filter block is
   * read once per 66 pixels */
  c.chunk = c.inside ? EBNN_CVO_CHUNK : (int32_t)(EBNN_CVO_PATCH / k);
  if (c.chunk > EBNN_CVO_CHUNK) c.chunk = EBNN_CVO_CHUNK;
  c.chunk -= c.chunk % EBNN_CVO_TILE; /* >= 12: k <= 512 */
  {
    const int32_t n_pix = g->out_h * g->out_w;
    ebnn__parallel_for((n_pix + EBNN_CVO_TILE - 1) / EBNN_CVO_TILE, (int64_t)n_pix * (int64_t)p->out_c * (int64_t)k,
                       cvo_job, &c);
  }
  return 1;
}
#else
int ebnn__conv2d_blocked_opt(const ebnn_conv2d_params_t *p, const ebnn__geom_t *g,
                             const float *input, float *output) {
  (void)p;
  (void)g;
  (void)input;
  (void)output;
  return 0;
}
#endif

/* ---------------------------------------------------------------------- */
/* CONV_2D row over a [K][out_c] filter                                    */
/* ---------------------------------------------------------------------- */

int ebnn__opt_conv_prepare(const ebnn_conv2d_params_t *p, float *buf, const float **wt) {
  const size_t k_size =
      (size_t)p->filter_h * (size_t)p->filter_w * (size_t)p->in_c;
  const size_t oc = (size_t)p->out_c;
  size_t o, k;
  if (k_size > EBNN_OPT_PATCH_FLOATS || p->out_c > EBNN_OPT_MAX_OC || p->filter_layout == EBNN_FILTER_HWIO16)
    return 0;
  if (p->filter_layout == EBNN_FILTER_HWIO) {
    *wt = p->filter;
    return 1;
  }
  if (k_size * oc > EBNN_OPT_FILTER_ELEMS) return 0;
  for (o = 0; o < oc; ++o)
    for (k = 0; k < k_size; ++k) buf[k * oc + o] = p->filter[o * k_size + k];
  *wt = buf;
  return 1;
}

#if EBNN_OPT_VEC
/* Four output pixels (windows at base + i * pix_step, all inside the input,
 * dilation_w 1), out_c a multiple of 32: eight independent 16-lane
 * accumulators per 32 channels (enough to hide the add latency; needs the
 * 32 vector registers of AVX-512 / AArch64 to stay in registers). */
static void opt_conv_quad32(const float *base, size_t pix_step, size_t row_step,
                            int32_t filter_h, size_t row_len, const float *wt,
                            const float *bias, int32_t oc, float *out) {
  int32_t o, fy;
  size_t t;
  for (o = 0; o < oc; o += 32) {
    const ebnn_v16f zero = EBNN_V16F_SPLAT(0.0f);
    ebnn_v16f a00 = zero, a01 = zero, a10 = zero, a11 = zero;
    ebnn_v16f a20 = zero, a21 = zero, a30 = zero, a31 = zero;
    const float *wk = wt + (size_t)o;
    for (fy = 0; fy < filter_h; ++fy) {
      const float *s0 = base + (size_t)fy * row_step;
      const float *s1 = s0 + pix_step, *s2 = s1 + pix_step, *s3 = s2 + pix_step;
      for (t = 0; t < row_len; ++t, wk += oc) {
        const float x0 = s0[t], x1 = s1[t], x2 = s2[t], x3 = s3[t];
        const ebnn_v16f x0v = EBNN_V16F_SPLAT(x0);
        const ebnn_v16f x1v = EBNN_V16F_SPLAT(x1);
        const ebnn_v16f x2v = EBNN_V16F_SPLAT(x2);
        const ebnn_v16f x3v = EBNN_V16F_SPLAT(x3);
        const ebnn_v16f w0 = EBNN_V16F_LOAD(wk), w1 = EBNN_V16F_LOAD(wk + 16);
        a00 = a00 + x0v * w0;
        a01 = a01 + x0v * w1;
        a10 = a10 + x1v * w0;
        a11 = a11 + x1v * w1;
        a20 = a20 + x2v * w0;
        a21 = a21 + x2v * w1;
        a30 = a30 + x3v * w0;
        a31 = a31 + x3v * w1;
      }
    }
    if (bias != NULL) { /* total += bias[o], as the reference, per lane */
      const ebnn_v16f b0 = EBNN_V16F_LOAD(bias + o), b1 = EBNN_V16F_LOAD(bias + o + 16);
      a00 = a00 + b0;
      a01 = a01 + b1;
      a10 = a10 + b0;
      a11 = a11 + b1;
      a20 = a20 + b0;
      a21 = a21 + b1;
      a30 = a30 + b0;
      a31 = a31 + b1;
    }
    EBNN_V16F_STORE(out + o, a00);
    EBNN_V16F_STORE(out + o + 16, a01);
    EBNN_V16F_STORE(out + oc + o, a10);
    EBNN_V16F_STORE(out + oc + o + 16, a11);
    EBNN_V16F_STORE(out + 2 * oc + o, a20);
    EBNN_V16F_STORE(out + 2 * oc + o + 16, a21);
    EBNN_V16F_STORE(out + 3 * oc + o, a30);
    EBNN_V16F_STORE(out + 3 * oc + o + 16, a31);
  }
}

/* Four output pixels as opt_conv_quad32, out_c a multiple of 16, on 8-lane
 * vectors: eight accumulators (for 16 vector registers: AVX2, SSE). Per
 * lane the reference's taps in order from +0.0f, then the bias. */
static void opt_conv_quad16(const float *base, size_t pix_step, size_t row_step,
                            int32_t filter_h, size_t row_len, const float *wt,
                            const float *bias, int32_t oc, float *out) {
  int32_t o, fy;
  size_t t;
  for (o = 0; o < oc; o += 16) {
    const ebnn_v8f zero = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    ebnn_v8f a00 = zero, a01 = zero, a10 = zero, a11 = zero;
    ebnn_v8f a20 = zero, a21 = zero, a30 = zero, a31 = zero;
    const float *wk = wt + (size_t)o;
    for (fy = 0; fy < filter_h; ++fy) {
      const float *s0 = base + (size_t)fy * row_step;
      const float *s1 = s0 + pix_step, *s2 = s1 + pix_step, *s3 = s2 + pix_step;
      for (t = 0; t < row_len; ++t, wk += oc) {
        const float x0 = s0[t], x1 = s1[t], x2 = s2[t], x3 = s3[t];
        const ebnn_v8f x0v = {x0, x0, x0, x0, x0, x0, x0, x0};
        const ebnn_v8f x1v = {x1, x1, x1, x1, x1, x1, x1, x1};
        const ebnn_v8f x2v = {x2, x2, x2, x2, x2, x2, x2, x2};
        const ebnn_v8f x3v = {x3, x3, x3, x3, x3, x3, x3, x3};
        const ebnn_v8f w0 = EBNN_V8F_LOAD(wk), w1 = EBNN_V8F_LOAD(wk + 8);
        a00 = a00 + x0v * w0;
        a01 = a01 + x0v * w1;
        a10 = a10 + x1v * w0;
        a11 = a11 + x1v * w1;
        a20 = a20 + x2v * w0;
        a21 = a21 + x2v * w1;
        a30 = a30 + x3v * w0;
        a31 = a31 + x3v * w1;
      }
    }
    if (bias != NULL) {
      const ebnn_v8f b0 = EBNN_V8F_LOAD(bias + o), b1 = EBNN_V8F_LOAD(bias + o + 8);
      a00 = a00 + b0;
      a01 = a01 + b1;
      a10 = a10 + b0;
      a11 = a11 + b1;
      a20 = a20 + b0;
      a21 = a21 + b1;
      a30 = a30 + b0;
      a31 = a31 + b1;
    }
    EBNN_V8F_STORE(out + o, a00);
    EBNN_V8F_STORE(out + o + 8, a01);
    EBNN_V8F_STORE(out + oc + o, a10);
    EBNN_V8F_STORE(out + oc + o + 8, a11);
    EBNN_V8F_STORE(out + 2 * oc + o, a20);
    EBNN_V8F_STORE(out + 2 * oc + o + 8, a21);
    EBNN_V8F_STORE(out + 3 * oc + o, a30);
    EBNN_V8F_STORE(out + 3 * oc + o + 8, a31);
  }
}

/* Two output pixels (input windows at base and base + pix_step, both inside
 * the input, dilation_w 1), out_c a multiple of 32: per 32 channels four
 * 16-lane accumulators share each filter load. Taps in the order
 * k = (fy * fw + fx) * in_c + c, as the reference. */
static void opt_conv_pair32(const float *base, size_t pix_step, size_t row_step,
                            int32_t filter_h, size_t row_len, const float *wt,
                            const float *bias, int32_t oc, float *out0,
                            float *out1) {
  int32_t o, fy;
  size_t t;
  for (o = 0; o < oc; o += 32) {
    const ebnn_v16f zero = EBNN_V16F_SPLAT(0.0f);
    ebnn_v16f a00 = zero, a01 = zero, a10 = zero, a11 = zero;
    const float *wk = wt + (size_t)o;
    for (fy = 0; fy < filter_h; ++fy) {
      const float *s0 = base + (size_t)fy * row_step;
      const float *s1 = s0 + pix_step;
      for (t = 0; t < row_len; ++t, wk += oc) {
        const float x0 = s0[t], x1 = s1[t];
        const ebnn_v16f x0v = EBNN_V16F_SPLAT(x0);
        const ebnn_v16f x1v = EBNN_V16F_SPLAT(x1);
        const ebnn_v16f w0 = EBNN_V16F_LOAD(wk), w1 = EBNN_V16F_LOAD(wk + 16);
        a00 = a00 + x0v * w0;
        a01 = a01 + x0v * w1;
        a10 = a10 + x1v * w0;
        a11 = a11 + x1v * w1;
      }
    }
    if (bias != NULL) { /* total += bias[o], as the reference, per lane */
      const ebnn_v16f b0 = EBNN_V16F_LOAD(bias + o), b1 = EBNN_V16F_LOAD(bias + o + 16);
      a00 = a00 + b0;
      a01 = a01 + b1;
      a10 = a10 + b0;
      a11 = a11 + b1;
    }
    EBNN_V16F_STORE(out0 + o, a00);
    EBNN_V16F_STORE(out0 + o + 16, a01);
    EBNN_V16F_STORE(out1 + o, a10);
    EBNN_V16F_STORE(out1 + o + 16, a11);
  }
}
#endif

/* The reference's fast path, reordered: the window is gathered into a patch
 * ([fh][fw][in_c], 0.0f for taps outside the input, as the reference does),
 * then each block of 16 channels sums patch[k] * w[k][o] over k in order. */
void ebnn__opt_conv_row(const ebnn_conv2d_params_t *p, const ebnn__geom_t *g, const float *wt,
                        const float *input, int32_t oy, float *out_row) {
  float patch[EBNN_OPT_PATCH_FLOATS];
  int32_t ox, fy, fx, c, o, j;
  const int32_t oc = p->out_c;
  const int32_t y_origin = oy * p->stride_h - g->pad_top;
  const size_t k_size =
      (size_t)p->filter_h * (size_t)p->filter_w * (size_t)p->in_c;
  const int inside_rows =
      y_origin >= 0 && y_origin + (p->filter_h - 1) * p->dilation_h < p->in_h;
  (void)inside_rows;
  for (ox = 0; ox < g->out_w; ++ox) {
    const int32_t x_origin = ox * p->stride_w - g->pad_left;
    float *out = out_row + (size_t)ox * (size_t)oc;
    float *dst = patch;
    size_t k;
#if EBNN_OPT_VEC
    if (inside_rows && p->dilation_w == 1 && (oc % (EBNN_OPT_WIDE ? 32 : 16)) == 0 &&
        ox + 3 < g->out_w && x_origin >= 0 &&
        x_origin + 3 * p->stride_w + p->filter_w <= p->in_w) {
      const float *base =
          input + ((size_t)y_origin * (size_t)p->in_w + (size_t)x_origin) * (size_t)p->in_c;
      int32_t i;
      (EBNN_OPT_WIDE ? opt_conv_quad32 : opt_conv_quad16)(base, (size_t)p->stride_w * (size_t)p->in_c,
                      (size_t)p->dilation_h * (size_t)p->in_w * (size_t)p->in_c,
                      p->filter_h, (size_t)p->filter_w * (size_t)p->in_c, wt, p->bias,
                      oc, out);
      if (p->activation != EBNN_ACT_NONE) {
        for (i = 0; i < 4; ++i) ebnn__opt_act(out + (size_t)i * (size_t)oc, oc, p->activation);
      }
      ox += 3;
      continue;
    }
    if (inside_rows && p->dilation_w == 1 && (oc % 32) == 0 && ox + 1 < g->out_w &&
        x_origin >= 0 && x_origin + p->stride_w + p->filter_w <= p->in_w) {
      const float *base =
          input + ((size_t)y_origin * (size_t)p->in_w + (size_t)x_origin) * (size_t)p->in_c;
      opt_conv_pair32(base, (size_t)p->stride_w * (size_t)p->in_c,
                      (size_t)p->dilation_h * (size_t)p->in_w * (size_t)p->in_c,
                      p->filter_h, (size_t)p->filter_w * (size_t)p->in_c, wt, p->bias,
                      oc, out, out + oc);
      if (p->activation != EBNN_ACT_NONE) {
        ebnn__opt_act(out, oc, p->activation);
        ebnn__opt_act(out + oc, oc, p->activation);
      }
      ++ox;
      continue;
    }
    /* Window inside the input, dilation_w 1, out_c a multiple of 8: read
     * the taps straight from the input rows (the same values in the same
     * order k = (fy * fw + fx) * in_c + c as the patch). */
    if (inside_rows && p->dilation_w == 1 && x_origin >= 0 &&
        x_origin + p->filter_w <= p->in_w && (oc % 8) == 0) {
      const size_t row_len = (size_t)p->filter_w * (size_t)p->in_c;
      const size_t row_step = (size_t)p->dilation_h * (size_t)p->in_w * (size_t)p->in_c;
      const float *base =
          input + ((size_t)y_origin * (size_t)p->in_w + (size_t)x_origin) * (size_t)p->in_c;
      size_t t;
      for (o = 0; o + 32 <= oc; o += 32) {
        const ebnn_v8f zero = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
        ebnn_v8f a0 = zero, a1 = zero, a2 = zero, a3 = zero;
        const float *wk = wt + (size_t)o;
        for (fy = 0; fy < p->filter_h; ++fy) {
          const float *src = base + (size_t)fy * row_step;
          for (t = 0; t < row_len; ++t, wk += oc) {
            const float x = src[t];
            const ebnn_v8f xv = {x, x, x, x, x, x, x, x};
            a0 = a0 + xv * EBNN_V8F_LOAD(wk);
            a1 = a1 + xv * EBNN_V8F_LOAD(wk + 8);
            a2 = a2 + xv * EBNN_V8F_LOAD(wk + 16);
            a3 = a3 + xv * EBNN_V8F_LOAD(wk + 24);
          }
        }
        EBNN_V8F_STORE(out + o, a0);
        EBNN_V8F_STORE(out + o + 8, a1);
        EBNN_V8F_STORE(out + o + 16, a2);
        EBNN_V8F_STORE(out + o + 24, a3);
      }
      for (; o < oc; o += 8) {
        ebnn_v8f a0 = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
        const float *wk = wt + (size_t)o;
        for (fy = 0; fy < p->filter_h; ++fy) {
          const float *src = base + (size_t)fy * row_step;
          for (t = 0; t < row_len; ++t, wk += oc) {
            const float x = src[t];
            const ebnn_v8f xv = {x, x, x, x, x, x, x, x};
            a0 = a0 + xv * EBNN_V8F_LOAD(wk);
          }
        }
        EBNN_V8F_STORE(out + o, a0);
      }
      if (p->bias != NULL) {
        for (o = 0; o < oc; ++o) out[o] = out[o] + p->bias[o];
      }
      if (p->activation != EBNN_ACT_NONE) ebnn__opt_act(out, oc, p->activation);
      continue;
    }
#endif
    for (fy = 0; fy < p->filter_h; ++fy) {
      const int32_t iy = y_origin + fy * p->dilation_h;
      for (fx = 0; fx < p->filter_w; ++fx) {
        const int32_t ix = x_origin + fx * p->dilation_w;
        if (iy >= 0 && iy < p->in_h && ix >= 0 && ix < p->in_w) {
          const float *px =
              input + ((size_t)iy * (size_t)p->in_w + (size_t)ix) * (size_t)p->in_c;
          if (p->in_c == 1) {
            dst[0] = px[0]; /* (a copy loop here becomes a memcpy call) */
          } else {
            for (c = 0; c < p->in_c; ++c) dst[c] = px[c];
          }
        } else {
          for (c = 0; c < p->in_c; ++c) dst[c] = 0.0f;
        }
        dst += p->in_c;
      }
    }
    o = 0;
#if EBNN_OPT_VEC
    for (; o + 32 <= oc; o += 32) {
      const ebnn_v8f zero = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
      ebnn_v8f a0 = zero, a1 = zero, a2 = zero, a3 = zero;
      const float *w = wt + (size_t)o;
      for (k = 0; k < k_size; ++k) {
        const float x = patch[k];
        const ebnn_v8f xv = {x, x, x, x, x, x, x, x};
        const float *wk = w + k * (size_t)oc;
        a0 = a0 + xv * EBNN_V8F_LOAD(wk);
        a1 = a1 + xv * EBNN_V8F_LOAD(wk + 8);
        a2 = a2 + xv * EBNN_V8F_LOAD(wk + 16);
        a3 = a3 + xv * EBNN_V8F_LOAD(wk + 24);
      }
      EBNN_V8F_STORE(out + o, a0);
      EBNN_V8F_STORE(out + o + 8, a1);
      EBNN_V8F_STORE(out + o + 16, a2);
      EBNN_V8F_STORE(out + o + 24, a3);
    }
    for (; o + 8 <= oc; o += 8) {
      ebnn_v8f a0 = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
      const float *w = wt + (size_t)o;
      for (k = 0; k < k_size; ++k) {
        const float x = patch[k];
        const ebnn_v8f xv = {x, x, x, x, x, x, x, x};
        a0 = a0 + xv * EBNN_V8F_LOAD(w + k * (size_t)oc);
      }
      EBNN_V8F_STORE(out + o, a0);
    }
#endif
    for (; o + EBNN_OPT_LANES <= oc; o += EBNN_OPT_LANES) {
      float acc[EBNN_OPT_LANES];
      const float *w = wt + (size_t)o;
      for (j = 0; j < EBNN_OPT_LANES; ++j) acc[j] = 0.0f;
      for (k = 0; k < k_size; ++k) {
        const float xv = patch[k];
        const float *wk = w + k * (size_t)oc;
        for (j = 0; j < EBNN_OPT_LANES; ++j) acc[j] += xv * wk[j];
      }
      for (j = 0; j < EBNN_OPT_LANES; ++j) out[o + j] = acc[j];
    }
    for (; o < oc; ++o) {
      float total = 0.0f;
      for (k = 0; k < k_size; ++k) total += patch[k] * wt[k * (size_t)oc + (size_t)o];
      out[o] = total;
    }
    if (p->bias != NULL) {
      for (o = 0; o < oc; ++o) out[o] = out[o] + p->bias[o];
    }
    if (p->activation != EBNN_ACT_NONE) ebnn__opt_act(out, oc, p->activation);
  }
}

/* ---------------------------------------------------------------------- */
/* CONV_2D                                                                 */
/* ---------------------------------------------------------------------- */

/* CONV_2D over an HWIO filter (the generator's layout for "opt"): the
 * orders 1-3 of the file's comment. Other layouts go to the reference. */
ebnn_status_t ebnn_conv2d_opt(const ebnn_conv2d_params_t *params,
                              const float *input, float *output) {
  ebnn__geom_t g;
  ebnn_status_t st;
  int32_t oy;
  if (params == NULL || input == NULL || output == NULL)
    return EBNN_ERROR_NULL_POINTER;
  st = ebnn__conv2d_check(params, &g);
  if (st != EBNN_OK) return st;
  if (params->filter_layout == EBNN_FILTER_OHWI) return ebnn_conv2d_ref(params, input, output);
  if (ebnn__conv2d_blocked_opt(params, &g, input, output)) return EBNN_OK;
  if (params->filter_layout != EBNN_FILTER_HWIO) return ebnn_conv2d_ref(params, input, output);
  if ((size_t)params->filter_h * (size_t)params->filter_w * (size_t)params->in_c > EBNN_OPT_PATCH_FLOATS)
    return ebnn_conv2d_ref(params, input, output);
  for (oy = 0; oy < g.out_h; ++oy)
    ebnn__opt_conv_row(params, &g, params->filter, input, oy,
                 output + (size_t)oy * (size_t)g.out_w * (size_t)params->out_c);
  return EBNN_OK;
}

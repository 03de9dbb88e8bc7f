/*
 * XOR-popcount runs for the "mcu" kernel set (M-profile cores, RISC-V
 * microcontrollers: no popcount instruction). Not part of the public API.
 *
 * A run of n words is counted with the SWAR steps split so that the
 * expensive folding is shared:
 *   per word   x = a ^ b; x -= (x >> 1) & 0x55..; x = (x & 0x33..) +
 *              ((x >> 2) & 0x33..)          -> 8 nibbles, each 0..4
 *   3 words    nibble sums added            -> each nibble 0..12
 *              bytes = (s & 0x0F..) + ((s >> 4) & 0x0F..) -> each byte 0..24
 *   horizontal with the DSP extension (M4, M7, M33, M55): USADA8 adds the
 *              four bytes to the accumulator in one instruction; without it
 *              (M0, M3, RISC-V) byte lanes collect up to 10 groups (<= 240
 *              per byte) and are folded through 16-bit lanes once.
 * Every step is exact integer arithmetic: the result is the popcount, the
 * same number as EBNN_POPCOUNT32 summed word by word.
 */
#ifndef EDGEBNN_FIRMWARE_RUNTIME_EBNN_MCU_INTERNAL_H_
#define EDGEBNN_FIRMWARE_RUNTIME_EBNN_MCU_INTERNAL_H_

#include "ebnn.h"
#include "ebnn_internal.h"

#if defined(__ARM_FEATURE_SIMD32) && defined(__GNUC__)
#define EBNN_MCU_USADA8 1
#else
#define EBNN_MCU_USADA8 0
#endif

/* Nibble sums of one word (each 4-bit field 0..4). */
EBNN_INLINE uint32_t ebnn__mcu_nibbles(uint32_t x) {
  x -= (x >> 1) & 0x55555555u;
  return (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
}

/* Byte sums of a word of nibble sums (each nibble <= 15; bytes <= 30). */
EBNN_INLINE uint32_t ebnn__mcu_bytes(uint32_t s) {
  return (s & 0x0F0F0F0Fu) + ((s >> 4) & 0x0F0F0F0Fu);
}

/* acc + the sum of the four bytes of b. */
EBNN_INLINE uint32_t ebnn__mcu_hadd(uint32_t acc, uint32_t b) {
#if EBNN_MCU_USADA8
  uint32_t r;
  __asm__("usada8 %0, %1, %2, %3" : "=r"(r) : "r"(b), "r"(0u), "r"(acc));
  return r;
#else
  b = (b & 0x00FF00FFu) + ((b >> 8) & 0x00FF00FFu);
  return acc + ((b + (b >> 16)) & 0xFFFFu);
#endif
}

/* popcount(a[i] ^ b[i]) summed over i < n. */
EBNN_INLINE int32_t ebnn__mcu_xor_popcount(const int32_t *a, const int32_t *b,
                                           int32_t n) {
  uint32_t total = 0u;
  int32_t i = 0;
#if EBNN_MCU_USADA8
  for (; i + 3 <= n; i += 3) {
    uint32_t s = ebnn__mcu_nibbles((uint32_t)a[i] ^ (uint32_t)b[i]);
    s += ebnn__mcu_nibbles((uint32_t)a[i + 1] ^ (uint32_t)b[i + 1]);
    s += ebnn__mcu_nibbles((uint32_t)a[i + 2] ^ (uint32_t)b[i + 2]);
    total = ebnn__mcu_hadd(total, ebnn__mcu_bytes(s));
  }
#else
  while (i + 3 <= n) {
    uint32_t lanes = 0u;
    int32_t g;
    for (g = 0; g < 10 && i + 3 <= n; ++g, i += 3) {
      uint32_t s = ebnn__mcu_nibbles((uint32_t)a[i] ^ (uint32_t)b[i]);
      s += ebnn__mcu_nibbles((uint32_t)a[i + 1] ^ (uint32_t)b[i + 1]);
      s += ebnn__mcu_nibbles((uint32_t)a[i + 2] ^ (uint32_t)b[i + 2]);
      lanes += ebnn__mcu_bytes(s);
    }
    total = ebnn__mcu_hadd(total, lanes);
  }
#endif
  if (i < n) {
    uint32_t s = ebnn__mcu_nibbles((uint32_t)a[i] ^ (uint32_t)b[i]);
    if (i + 1 < n) s += ebnn__mcu_nibbles((uint32_t)a[i + 1] ^ (uint32_t)b[i + 1]);
    total = ebnn__mcu_hadd(total, ebnn__mcu_bytes(s));
  }
  return (int32_t)total;
}

/* popcount(w[i]) summed over i < n (the all-+1 input of padded taps). */
EBNN_INLINE int32_t ebnn__mcu_popcount(const int32_t *w, int32_t n) {
  int32_t i, count = 0;
  for (i = 0; i < n; ++i) count += EBNN_POPCOUNT32((uint32_t)w[i]);
  return count;
}

/* Output channels per block whose fused multiplier/bias (LCE's m', b',
 * double arithmetic: soft-float on every Cortex-M) are computed once per
 * call and kept on the stack (512 bytes), not once per row. */
#define EBNN_MCU_BLOCK 64
/* Longest filter (fh * fw * words) the mcu LceBconv2d gathers per pixel;
 * longer ones are delegated to the _ref kernel. */
#define EBNN_MCU_PATCH_WORDS 256

/* m'[j], b'[j] of output channels o0 .. o0 + nb - 1, exactly as
 * ebnn__bconv2d_row_float computes them. */
void ebnn__bconv2d_fold_mcu(const ebnn_bconv2d_params_t *p,
                            const ebnn__bgeom_t *g, int32_t o0, int32_t nb,
                            float *m, float *b);
/* Float output of row oy, columns [x0, x1), channels o0 .. o0 + nb - 1
 * (nb <= EBNN_MCU_BLOCK, m/b from ebnn__bconv2d_fold_mcu) into
 * out[(x - x0) * out_stride + j]. Not for same-zero padding or filters over
 * EBNN_MCU_PATCH_WORDS (see ebnn__bconv2d_mcu_supported). */
void ebnn__bconv2d_row_float_mcu(const ebnn_bconv2d_params_t *p,
                                 const ebnn__bgeom_t *g, const int32_t *input,
                                 int32_t oy, int32_t x0, int32_t x1, int32_t o0,
                                 int32_t nb, const float *m, const float *b,
                                 float *out, size_t out_stride);
/* Whether the mcu LceBconv2d path handles p (else the _ref kernel does). */
int ebnn__bconv2d_mcu_supported(const ebnn_bconv2d_params_t *p,
                                const ebnn__bgeom_t *g);

#endif /* EDGEBNN_FIRMWARE_RUNTIME_EBNN_MCU_INTERNAL_H_ */

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
 *   horizontal (plain C: M0, RISC-V, hosts) a multiply by 0x01010101, as
 *              the _ref kernels do.
 * On Thumb-2 cores (M3, M4, M7, M33, M55) inline assembly does better:
 * carry-save adders first (3 words -> ones + 2 twos; 9 words -> ones, twos,
 * fours, eights, Harley-Seal style), so fewer words go through the nibble
 * steps, with the masks in registers for the shifted-operand forms, and
 * USADA8 for the horizontal sum where the DSP extension has it.
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

#if defined(__thumb2__) && defined(__GNUC__)
/* The accumulator of the asm blocks: with the DSP extension (M4, M7, M33,
 * M55) USADA8 adds the four bytes of the block's sum to it; without (M3) the
 * bytes go into two 16-bit lanes (<= 240 per block, so 256 blocks fit) that
 * ebnn__mcu_acc_total folds once. */
#if EBNN_MCU_USADA8
#define EBNN_MCU_ACC_ASM(sum, tmp) \
  "mov %[" tmp "], #0\n\t" "usada8 %[acc], %[" sum "], %[" tmp "], %[acc]"
EBNN_INLINE uint32_t ebnn__mcu_acc_total(uint32_t acc) { return acc; }
#else
#define EBNN_MCU_ACC_ASM(sum, tmp)                                  \
  "bic %[" tmp "], %[" sum "], #0xFF00FF00\n\t"                  \
  "and %[" sum "], %[" sum "], #0xFF00FF00\n\t"                  \
  "add %[acc], %[acc], %[" tmp "]\n\t"                           \
  "add %[acc], %[acc], %[" sum "], lsr #8"
EBNN_INLINE uint32_t ebnn__mcu_acc_total(uint32_t acc) {
  return (acc & 0xFFFFu) + (acc >> 16);
}
#endif
/* Three words of a run on a Thumb-2 core (ARMv7-M, ARMv8-M Mainline), with the
 * masks in registers (GCC otherwise emits a separate shift for every
 * masked shift): a full adder turns the three XOR words into ones + 2 *
 * twos, whose nibble sums give ones + 2 * twos <= 12 per nibble, then bytes
 * and the accumulator. 27 instructions for 3 words with USADA8 (GCC's code
 * for the plain C: 44). */
#define EBNN_MCU_THUMB2_ASM 1
EBNN_INLINE uint32_t ebnn__mcu_group3(const int32_t **pa, const int32_t **pb,
                                      uint32_t acc, uint32_t m1, uint32_t m2) {
  uint32_t x0, x1, x2, y0, y1, y2;
  const int32_t *a = *pa, *b = *pb;
  __asm__(
      "ldrd %[x0], %[x1], [%[a]], #8\n\t"
      "ldr %[x2], [%[a]], #4\n\t"
      "ldrd %[y0], %[y1], [%[b]], #8\n\t"
      "ldr %[y2], [%[b]], #4\n\t"
      "eor %[x0], %[x0], %[y0]\n\t"
      "eor %[x1], %[x1], %[y1]\n\t"
      "eor %[x2], %[x2], %[y2]\n\t"
      "eor %[y0], %[x0], %[x1]\n\t"
      "and %[y1], %[x0], %[x1]\n\t"
      "and %[x0], %[y0], %[x2]\n\t"
      "eor %[y0], %[y0], %[x2]\n\t"
      "orr %[y1], %[y1], %[x0]\n\t"
      "and %[x0], %[m1], %[y0], lsr #1\n\t"
      "sub %[y0], %[y0], %[x0]\n\t"
      "and %[x1], %[m1], %[y1], lsr #1\n\t"
      "sub %[y1], %[y1], %[x1]\n\t"
      "and %[x0], %[m2], %[y0], lsr #2\n\t"
      "and %[y0], %[y0], %[m2]\n\t"
      "add %[y0], %[y0], %[x0]\n\t"
      "and %[x1], %[m2], %[y1], lsr #2\n\t"
      "and %[y1], %[y1], %[m2]\n\t"
      "add %[y1], %[y1], %[x1]\n\t"
      "add %[y0], %[y0], %[y1], lsl #1\n\t"
      "and %[x0], %[y0], #0x0F0F0F0F\n\t"
      "and %[y0], %[y0], #0xF0F0F0F0\n\t"
      "add %[x0], %[x0], %[y0], lsr #4\n\t"
      EBNN_MCU_ACC_ASM("x0", "y0")
      : [x0] "=&r"(x0), [x1] "=&r"(x1), [x2] "=&r"(x2), [y0] "=&r"(y0),
        [y1] "=&r"(y1), [y2] "=&r"(y2), [a] "+r"(a), [b] "+r"(b), [acc] "+r"(acc)
      : [m1] "r"(m1), [m2] "r"(m2)
      : "memory");
  *pa = a;
  *pb = b;
  return acc;
}

/* Nine words, Harley-Seal style: four full adders fold the nine XOR words
 * into ones + 2 * (four twos words), a full adder and two half adders fold
 * those into twos, fours and eights, so only four words go through the
 * nibble sums: (ones + 2 twos) + 4 (fours + 2 eights), <= 120 per byte,
 * then the accumulator. 79 instructions for 9 words with USADA8 (three
 * groups of 3: 81 + loop). */
EBNN_INLINE uint32_t ebnn__mcu_block9(const int32_t **pa, const int32_t **pb,
                                      uint32_t acc, uint32_t m1, uint32_t m2) {
  uint32_t t0, t1, t2, t3, t4, t5, t6;
  const int32_t *a = *pa, *b = *pb;
  __asm__(
      "ldrd %[t0], %[t1], [%[a]], #8\n\t"
      "ldrd %[t2], %[t3], [%[b]], #8\n\t"
      "eor %[t0], %[t0], %[t2]\n\t"
      "eor %[t1], %[t1], %[t3]\n\t"
      "ldr %[t2], [%[a]], #4\n\t"
      "ldr %[t3], [%[b]], #4\n\t"
      "eor %[t2], %[t2], %[t3]\n\t"
      /* words 0-2: ones t3, twos t0 */
      "eor %[t3], %[t0], %[t1]\n\t"
      "and %[t0], %[t0], %[t1]\n\t"
      "and %[t1], %[t3], %[t2]\n\t"
      "eor %[t3], %[t3], %[t2]\n\t"
      "orr %[t0], %[t0], %[t1]\n\t"
      /* words 3-4: ones t4, twos t3 */
      "ldrd %[t1], %[t2], [%[a]], #8\n\t"
      "ldrd %[t4], %[t5], [%[b]], #8\n\t"
      "eor %[t1], %[t1], %[t4]\n\t"
      "eor %[t2], %[t2], %[t5]\n\t"
      "eor %[t4], %[t3], %[t1]\n\t"
      "and %[t3], %[t3], %[t1]\n\t"
      "and %[t1], %[t4], %[t2]\n\t"
      "eor %[t4], %[t4], %[t2]\n\t"
      "orr %[t3], %[t3], %[t1]\n\t"
      /* words 5-6: ones t5, twos t4 */
      "ldrd %[t1], %[t2], [%[a]], #8\n\t"
      "ldrd %[t5], %[t6], [%[b]], #8\n\t"
      "eor %[t1], %[t1], %[t5]\n\t"
      "eor %[t2], %[t2], %[t6]\n\t"
      "eor %[t5], %[t4], %[t1]\n\t"
      "and %[t4], %[t4], %[t1]\n\t"
      "and %[t1], %[t5], %[t2]\n\t"
      "eor %[t5], %[t5], %[t2]\n\t"
      "orr %[t4], %[t4], %[t1]\n\t"
      /* three twos: twos t6, fours t0 */
      "eor %[t6], %[t0], %[t3]\n\t"
      "and %[t0], %[t0], %[t3]\n\t"
      "and %[t3], %[t6], %[t4]\n\t"
      "eor %[t6], %[t6], %[t4]\n\t"
      "orr %[t0], %[t0], %[t3]\n\t"
      /* words 7-8: ones t3, twos t5 */
      "ldrd %[t1], %[t2], [%[a]], #8\n\t"
      "ldrd %[t3], %[t4], [%[b]], #8\n\t"
      "eor %[t1], %[t1], %[t3]\n\t"
      "eor %[t2], %[t2], %[t4]\n\t"
      "eor %[t3], %[t5], %[t1]\n\t"
      "and %[t5], %[t5], %[t1]\n\t"
      "and %[t1], %[t3], %[t2]\n\t"
      "eor %[t3], %[t3], %[t2]\n\t"
      "orr %[t5], %[t5], %[t1]\n\t"
      /* twos t4, fours t6; fours t5, eights t0 */
      "eor %[t4], %[t6], %[t5]\n\t"
      "and %[t6], %[t6], %[t5]\n\t"
      "eor %[t5], %[t0], %[t6]\n\t"
      "and %[t0], %[t0], %[t6]\n\t"
      /* nibble sums of ones t3, twos t4, fours t5, eights t0 */
      "and %[t1], %[m1], %[t3], lsr #1\n\t"
      "sub %[t3], %[t3], %[t1]\n\t"
      "and %[t1], %[m2], %[t3], lsr #2\n\t"
      "and %[t3], %[t3], %[m2]\n\t"
      "add %[t3], %[t3], %[t1]\n\t"
      "and %[t1], %[m1], %[t4], lsr #1\n\t"
      "sub %[t4], %[t4], %[t1]\n\t"
      "and %[t1], %[m2], %[t4], lsr #2\n\t"
      "and %[t4], %[t4], %[m2]\n\t"
      "add %[t4], %[t4], %[t1]\n\t"
      "and %[t1], %[m1], %[t5], lsr #1\n\t"
      "sub %[t5], %[t5], %[t1]\n\t"
      "and %[t1], %[m2], %[t5], lsr #2\n\t"
      "and %[t5], %[t5], %[m2]\n\t"
      "add %[t5], %[t5], %[t1]\n\t"
      "and %[t1], %[m1], %[t0], lsr #1\n\t"
      "sub %[t0], %[t0], %[t1]\n\t"
      "and %[t1], %[m2], %[t0], lsr #2\n\t"
      "and %[t0], %[t0], %[m2]\n\t"
      "add %[t0], %[t0], %[t1]\n\t"
      "add %[t3], %[t3], %[t4], lsl #1\n\t"
      "add %[t5], %[t5], %[t0], lsl #1\n\t"
      "and %[t1], %[t3], #0x0F0F0F0F\n\t"
      "and %[t3], %[t3], #0xF0F0F0F0\n\t"
      "add %[t3], %[t1], %[t3], lsr #4\n\t"
      "and %[t1], %[t5], #0x0F0F0F0F\n\t"
      "and %[t5], %[t5], #0xF0F0F0F0\n\t"
      "add %[t5], %[t1], %[t5], lsr #4\n\t"
      "add %[t3], %[t3], %[t5], lsl #2\n\t"
      EBNN_MCU_ACC_ASM("t3", "t1")
      : [t0] "=&r"(t0), [t1] "=&r"(t1), [t2] "=&r"(t2), [t3] "=&r"(t3),
        [t4] "=&r"(t4), [t5] "=&r"(t5), [t6] "=&r"(t6), [a] "+r"(a), [b] "+r"(b),
        [acc] "+r"(acc)
      : [m1] "r"(m1), [m2] "r"(m2)
      : "memory");
  *pa = a;
  *pb = b;
  return acc;
}
#else
#define EBNN_MCU_THUMB2_ASM 0
#endif

/* popcount(a[i] ^ b[i]) summed over i < n (ebnn_bconv_mcu.c). */
int32_t ebnn__mcu_xor_popcount(const int32_t *a, const int32_t *b, int32_t n);

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

/* edgebnn firmware, 32-bit RISC-V platform: instruction counter, stack
 * painting.
 *
 * Reset goes to picolibc's crt0 (_start: sets sp and gp, copies .data,
 * zeroes .bss, sets up TLS, installs a trap handler that reports exceptions
 * through semihosting, calls main and then exit(), which ends QEMU through
 * semihosting with main's return value).
 *
 * The tick counter is the machine-mode instruction counter minstret (with
 * minstreth above it): every retired instruction counts one, on the emulator
 * as on a chip that implements it, so no conversion is needed. Under QEMU
 * with -icount QEMU derives it from its own instruction count. It counts
 * instructions, not cycles: not a latency.
 */
#include <stdint.h>

#include "ebnn_platform.h"

/* From the linker script. */
extern uint32_t __stack[];       /* top of the stack (initial sp) */
extern uint32_t __stack_limit[]; /* bottom of the reserved stack region */

#define EBNN_STACK_PATTERN 0xDEADBEEFu

/* The CSR instructions belong to Zicsr, which GCC 12's -march=rv32imc does
 * not name: enable it for these lines only. */
#define EBNN_READ_CSR(name, out) \
  __asm__ volatile(".option push\n.option arch, +zicsr\ncsrr %0, " name "\n.option pop" : "=r"(out))

int ebnn_platform_init(void) { return 0; }

uint64_t ebnn_platform_ticks(void) {
  uint32_t hi, lo, hi2;
  /* The high word may carry between the two reads: read it on both sides. */
  do {
    EBNN_READ_CSR("minstreth", hi);
    EBNN_READ_CSR("minstret", lo);
    EBNN_READ_CSR("minstreth", hi2);
  } while (hi != hi2);
  return ((uint64_t)hi << 32) | lo;
}

const char *ebnn_platform_timer_kind(void) { return "minstret"; }

void ebnn_platform_stack_paint(void) {
  uint32_t *p = __stack_limit;
  /* Paint up to 64 bytes below the current frame. */
  uint32_t *sp = (uint32_t *)__builtin_frame_address(0) - 16;
  while (p < sp) {
    *p++ = EBNN_STACK_PATTERN;
  }
}

uint32_t ebnn_platform_stack_peak(void) {
  const uint32_t *p = __stack_limit;
  while (p < __stack && *p == EBNN_STACK_PATTERN) {
    p++;
  }
  return (uint32_t)((uintptr_t)__stack - (uintptr_t)p);
}

uint32_t ebnn_platform_stack_size(void) {
  return (uint32_t)((uintptr_t)__stack - (uintptr_t)__stack_limit);
}

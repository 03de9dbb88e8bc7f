/* edgebnn firmware, Cortex-M platform: vector table, SysTick tick counter,
 * stack painting.
 *
 * Reset goes to picolibc's crt0 (_start: copies .data, zeroes .bss, sets up
 * TLS, calls main and then exit(), which ends QEMU through semihosting with
 * main's return value). This file replaces picolibc's default vector table so
 * that SysTick has a handler: the 24-bit SysTick counter wraps every 2^24
 * ticks (0.67 s at 25 MHz), and each wrap adds 2^24 to a 32-bit wrap count.
 *
 * Under QEMU with -icount shift=0 one instruction is one nanosecond of
 * virtual time, so ticks x (1e9 / SysTick clock) counts instructions; that is
 * an emulator instruction count, not a latency.
 */
#include <stdint.h>

#include "ebnn_platform.h"

/* From the linker script. */
extern uint32_t __stack[];       /* top of the stack (initial SP) */
extern uint32_t __stack_limit[]; /* bottom of the reserved stack region */

void _start(void);

#define EBNN_SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define EBNN_SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define EBNN_SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#ifndef EBNN_SYST_RELOAD
#define EBNN_SYST_RELOAD 0x00FFFFFFu
#endif
#define EBNN_STACK_PATTERN 0xDEADBEEFu

static volatile uint32_t ebnn_systick_wraps;

static void ebnn_systick_isr(void) { ebnn_systick_wraps++; }

static void ebnn_fault_isr(void) {
  /* A fault in the firmware: stop here; QEMU's timeout reports it. */
  for (;;) {
  }
}

static void ebnn_default_isr(void) {}

/* The vector table; crt0 points VTOR at __interrupt_vector. */
typedef void (*ebnn_vector_t)(void);
__attribute__((section(".data.init.enter"), used))
const ebnn_vector_t __interrupt_vector[16] = {
    (ebnn_vector_t)(uintptr_t)__stack, /* 0: initial stack pointer */
    _start,                            /* 1: reset */
    ebnn_fault_isr,                    /* 2: NMI */
    ebnn_fault_isr,                    /* 3: hard fault */
    ebnn_fault_isr,                    /* 4: memory management fault */
    ebnn_fault_isr,                    /* 5: bus fault */
    ebnn_fault_isr,                    /* 6: usage fault */
    0, 0, 0, 0,                        /* 7-10: reserved */
    ebnn_default_isr,                  /* 11: SVCall */
    ebnn_default_isr,                  /* 12: debug monitor */
    0,                                 /* 13: reserved */
    ebnn_default_isr,                  /* 14: PendSV */
    ebnn_systick_isr,                  /* 15: SysTick */
};

int ebnn_platform_init(void) {
  ebnn_systick_wraps = 0;
  EBNN_SYST_CSR = 0;
  EBNN_SYST_RVR = EBNN_SYST_RELOAD;
  EBNN_SYST_CVR = 0;
  /* CLKSOURCE = processor clock, TICKINT, ENABLE. */
  EBNN_SYST_CSR = (1u << 2) | (1u << 1) | 1u;
  return 0;
}

uint64_t ebnn_platform_ticks(void) {
  uint32_t wraps, value;
  /* Read the wrap count on both sides of the counter: if a wrap happened in
   * between, read again. */
  do {
    wraps = ebnn_systick_wraps;
    value = EBNN_SYST_CVR;
  } while (wraps != ebnn_systick_wraps);
  return (uint64_t)wraps * (EBNN_SYST_RELOAD + 1u) + (EBNN_SYST_RELOAD - value);
}

const char *ebnn_platform_timer_kind(void) { return "systick"; }

void ebnn_platform_stack_paint(void) {
  uint32_t *p = __stack_limit;
  /* Paint up to 64 bytes below the current stack pointer. */
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

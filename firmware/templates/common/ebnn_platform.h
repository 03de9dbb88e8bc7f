/* edgebnn firmware: the platform hooks the firmware's main() calls.
 *
 * Each template directory (firmware/templates/<template>/) provides
 * ebnn_platform.c implementing these for its kind of target: SysTick and a
 * painted stack on Cortex-M, nothing (or a native clock) on Linux.
 */
#ifndef EDGEBNN_FIRMWARE_EBNN_PLATFORM_H_
#define EDGEBNN_FIRMWARE_EBNN_PLATFORM_H_

#include <stdint.h>

/* Called once at the start of main(). Returns a status (0 = ok). */
int ebnn_platform_init(void);

/* A free-running 64-bit tick counter; ebnn_platform_timer_kind() says what a
 * tick is ("systick" ticks, "ns" of a native clock, or "none": always 0). */
uint64_t ebnn_platform_ticks(void);
const char *ebnn_platform_timer_kind(void);

/* Fill the unused part of the stack with a known pattern (call from main,
 * before the work to measure). */
void ebnn_platform_stack_paint(void);

/* Bytes of stack ever used since reset (high-water mark of the painted
 * stack), and the stack's reserved size; both 0 when not measurable. */
uint32_t ebnn_platform_stack_peak(void);
uint32_t ebnn_platform_stack_size(void);

#endif /* EDGEBNN_FIRMWARE_EBNN_PLATFORM_H_ */

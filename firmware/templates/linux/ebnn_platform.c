/* edgebnn firmware, Linux platform (a Raspberry Pi under qemu-aarch64, or
 * this workstation): no tick counter is reported (emulated time says nothing
 * about a board) and the stack is not measured.
 */
#include <stdint.h>

#include "ebnn_platform.h"

int ebnn_platform_init(void) { return 0; }

uint64_t ebnn_platform_ticks(void) { return 0; }

const char *ebnn_platform_timer_kind(void) { return "none"; }

void ebnn_platform_stack_paint(void) {}

uint32_t ebnn_platform_stack_peak(void) { return 0; }

uint32_t ebnn_platform_stack_size(void) { return 0; }

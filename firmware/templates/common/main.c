/* edgebnn firmware main: runs the model on every embedded sample, prints the
 * prediction next to the expected one, and returns the number of mismatches
 * (the process exit status: through semihosting on a microcontroller).
 *
 * Output lines (parsed by `edgebnn firmware run`):
 *   EBNN begin samples=<n> input=<size> output=<size> timer=<kind>
 *   EBNN sample=<i> pred=<p> expected=<e> ticks=<t>
 *   EBNN end mismatches=<m> stack_peak=<bytes> stack_size=<bytes> stack_peak_all=<bytes>
 * and, in a build with -DEBNN_PROFILE (`edgebnn firmware run --profile`),
 * before the end line, one line per kernel call of the model:
 *   EBNN profile call=<k> ticks=<total over all samples>
 *
 * stack_peak is the deepest stack use seen during the model's inferences
 * (the stack is repainted before each one), counted from the top of the
 * stack, so it includes the startup code's and main's frames; stack_peak_all
 * also covers printf and the rest of main.
 */
#include <stdint.h>
#include <stdio.h>

#include "ebnn_platform.h"
#include "fw_model.h"
#include "samples.h"

#ifdef FW_MODEL_IO_INT8
/* Int8 I/O: each 0..255 sample value is quantized as the host predictor does,
 * q = clamp(round_half_even(p / scale + zero_point)), in the harness only. */
typedef int8_t fw_io_t;

static fw_io_t fw_quantize(uint8_t p) {
  float r = (float)p / (float)FW_MODEL_INPUT_SCALE + (float)FW_MODEL_INPUT_ZERO_POINT;
  long f = (long)r;
  float d;
  if ((float)f > r) --f; /* floor for negative r */
  d = r - (float)f;
  if (d > 0.5f || (d == 0.5f && (f & 1L))) ++f;
  if (f < -128) f = -128;
  if (f > 127) f = 127;
  return (fw_io_t)f;
}
#else
typedef float fw_io_t;

static fw_io_t fw_quantize(uint8_t p) { return (float)p; }
#endif

#ifdef EBNN_PROFILE
#ifndef FW_MODEL_KERNEL_CALLS
#error "EBNN_PROFILE needs the generated model's KERNEL_CALLS macro (edgebnn export/firmware output)"
#endif
/* Ticks spent in each kernel call, summed over the samples. The clock is read
 * again after the bookkeeping, so the hook's own work is mostly not counted
 * (the run reports what is left as the difference to the unhooked total). */
static uint64_t fw_profile_ticks[FW_MODEL_KERNEL_CALLS];
static uint64_t fw_profile_last;

void ebnn_profile_op(int index) {
  uint64_t now = ebnn_platform_ticks();
  if (index >= 0 && index < FW_MODEL_KERNEL_CALLS) {
    fw_profile_ticks[index] += now - fw_profile_last;
  }
  fw_profile_last = ebnn_platform_ticks();
}

/* printf's %llu is missing from some small C libraries: decimal by hand. */
static const char *fw_u64(uint64_t v, char buf[21]) {
  char *p = buf + 20;
  *p = '\0';
  do {
    *--p = (char)('0' + (int)(v % 10u));
    v /= 10u;
  } while (v != 0u);
  return p;
}

static void fw_profile_report(void) {
  char buf[21];
  int k;
  for (k = 0; k < FW_MODEL_KERNEL_CALLS; ++k) {
    printf("EBNN profile call=%d ticks=%s\n", k, fw_u64(fw_profile_ticks[k], buf));
  }
}
#endif

static fw_io_t fw_input[FW_MODEL_INPUT_SIZE];
static fw_io_t fw_output[FW_MODEL_OUTPUT_SIZE];

static int fw_argmax(const fw_io_t *v, int n) {
  int best = 0;
  int i;
  for (i = 1; i < n; ++i) {
    if (v[i] > v[best]) {
      best = i;
    }
  }
  return best;
}

int main(void) {
  int mismatches = 0;
  int i, j;
  uint32_t peak = 0, peak_all = 0;
  if (ebnn_platform_init() != 0) {
    printf("EBNN error platform_init\n");
    return 255;
  }
  ebnn_platform_stack_paint();
  printf("EBNN begin samples=%d input=%d output=%d timer=%s\n", FW_NUM_SAMPLES,
         (int)FW_MODEL_INPUT_SIZE, (int)FW_MODEL_OUTPUT_SIZE, ebnn_platform_timer_kind());
  for (i = 0; i < FW_NUM_SAMPLES; ++i) {
    uint64_t t0, t1;
    int status, pred;
    for (j = 0; j < FW_MODEL_INPUT_SIZE; ++j) {
      fw_input[j] = fw_quantize(fw_samples[i][j]);
    }
    if (ebnn_platform_stack_peak() > peak_all) {
      peak_all = ebnn_platform_stack_peak();
    }
    ebnn_platform_stack_paint();
    t0 = ebnn_platform_ticks();
    status = FW_MODEL_INVOKE(fw_input, fw_output);
    t1 = ebnn_platform_ticks();
    if (ebnn_platform_stack_peak() > peak) {
      peak = ebnn_platform_stack_peak();
    }
    if (status != 0) {
      printf("EBNN error sample=%d status=%d\n", i, status);
      return 255;
    }
    pred = fw_argmax(fw_output, FW_MODEL_OUTPUT_SIZE);
    if (pred != fw_expected[i]) {
      ++mismatches;
    }
    printf("EBNN sample=%d pred=%d expected=%d ticks=%lu\n", i, pred, (int)fw_expected[i],
           (unsigned long)(t1 - t0));
  }
  if (ebnn_platform_stack_peak() > peak_all) {
    peak_all = ebnn_platform_stack_peak();
  }
  if (peak > peak_all) {
    peak_all = peak;
  }
#ifdef EBNN_PROFILE
  fw_profile_report();
#endif
  printf("EBNN end mismatches=%d stack_peak=%lu stack_size=%lu stack_peak_all=%lu\n", mismatches,
         (unsigned long)peak, (unsigned long)ebnn_platform_stack_size(), (unsigned long)peak_all);
  return mismatches > 254 ? 254 : mismatches;
}

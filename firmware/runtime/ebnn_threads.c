/*
 * Worker threads for the host runtime's _opt kernels (hosts only: built
 * with -DEBNN_THREADS=1 -pthread when the target file says threads = true).
 *
 * ebnn_set_threads(n) sets how many threads a kernel may use (default 1,
 * or $EBNN_NUM_THREADS at the first call of a kernel); ebnn__parallel_for
 * cuts [0, n_items) into one contiguous range per thread and runs
 * fn(ctx, begin, end) on each, the calling thread taking the first range,
 * then joins. Ranges are disjoint output rows, and every output element is
 * computed by the same code whichever thread runs it, so results are
 * identical for any thread count (tests/test_threads.py). Without
 * EBNN_THREADS everything runs on the calling thread.
 */
#if defined(EBNN_THREADS) && EBNN_THREADS
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdlib.h>
#endif

#include "ebnn.h"
#include "ebnn_internal.h"

#define EBNN_MAX_THREADS 64

static int32_t ebnn_threads_n = 0; /* 0: not set yet */

ebnn_status_t ebnn_set_threads(int32_t n) {
  if (n < 1 || n > EBNN_MAX_THREADS) return EBNN_ERROR_BAD_SHAPE;
  ebnn_threads_n = n;
  return EBNN_OK;
}

int32_t ebnn_get_threads(void) {
#if defined(EBNN_THREADS) && EBNN_THREADS
  if (ebnn_threads_n == 0) {
    const char *env = getenv("EBNN_NUM_THREADS");
    const int n = env != NULL ? atoi(env) : 1;
    ebnn_threads_n = n >= 1 && n <= EBNN_MAX_THREADS ? n : 1;
  }
  return ebnn_threads_n;
#else
  return 1;
#endif
}

#if defined(EBNN_THREADS) && EBNN_THREADS
typedef struct {
  ebnn__range_fn_t fn;
  const void *ctx;
  int32_t begin, end;
} ebnn__job_t;

static void *ebnn__run_job(void *arg) {
  const ebnn__job_t *j = (const ebnn__job_t *)arg;
  j->fn(j->ctx, j->begin, j->end);
  return NULL;
}
#endif

void ebnn__parallel_for(int32_t n_items, ebnn__range_fn_t fn, const void *ctx) {
#if defined(EBNN_THREADS) && EBNN_THREADS
  ebnn__job_t jobs[EBNN_MAX_THREADS];
  pthread_t tids[EBNN_MAX_THREADS];
  int started[EBNN_MAX_THREADS];
  int32_t t, nt = ebnn_get_threads();
  if (nt > n_items) nt = n_items;
  if (nt > 1) {
    for (t = 0; t < nt; ++t) {
      jobs[t].fn = fn;
      jobs[t].ctx = ctx;
      jobs[t].begin = (int32_t)((int64_t)n_items * t / nt);
      jobs[t].end = (int32_t)((int64_t)n_items * (t + 1) / nt);
    }
    for (t = 1; t < nt; ++t)
      started[t] = pthread_create(&tids[t], NULL, ebnn__run_job, &jobs[t]) == 0;
    ebnn__run_job(&jobs[0]);
    for (t = 1; t < nt; ++t) {
      if (started[t]) {
        pthread_join(tids[t], NULL);
      } else { /* no thread: run its range here */
        ebnn__run_job(&jobs[t]);
      }
    }
    return;
  }
#endif
  if (n_items > 0) fn(ctx, 0, n_items);
}

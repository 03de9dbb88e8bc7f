/*
 * Worker threads for the host runtime's _opt kernels (hosts only: built
 * with -DEBNN_THREADS=1 -pthread when the target file says threads = true).
 *
 * ebnn_set_threads(n) sets how many threads a kernel may use (default 1,
 * or $EBNN_NUM_THREADS at the first call of a kernel). ebnn__parallel_for
 * cuts [0, n_items) into one contiguous range per thread and runs
 * fn(ctx, begin, end) on each, the calling thread taking the first range,
 * and returns when every range is done. Ranges are disjoint outputs, and
 * every output element is computed by the same code whichever thread runs
 * it, so results are identical for any thread count (tests/test_threads.py).
 * Without EBNN_THREADS everything runs on the calling thread.
 *
 * The workers are started once, at the first call that wants them, and
 * kept: one model invoke is 60-100 kernel calls of 5 us to 1 ms, so a
 * pthread_create and join per call (20-50 us) would cost more than the
 * second core gives. A job is published by bumping a generation counter;
 * a worker spins on it for a while after its last job (the next kernel
 * call usually comes within microseconds), then sleeps on a condition
 * variable until the next bump. The caller spins until every worker has
 * reported its range done. One job runs at a time: a call made while
 * another thread's job is running (two threads invoking models at once)
 * runs on its own thread, with the same results.
 *
 * `cost` is the caller's estimate of the call's work in simple operations;
 * each thread beyond the first needs EBNN_PAR_MIN_COST of it (about 4 us of
 * work), so a small kernel call is not slowed by the hand-off (about a
 * microsecond).
 */
#if defined(EBNN_THREADS) && EBNN_THREADS
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <sched.h>
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
/* Spins of a waiting worker before it sleeps, and of the caller before it
 * yields its core (a worker was preempted on a busy machine). */
#define EBNN_POOL_SPINS 40000
#define EBNN_PAR_MIN_COST 16384

static void ebnn__relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
  __asm__ __volatile__("yield" ::: "memory");
#endif
}

static struct {
  pthread_mutex_t busy; /* held by the caller of the running job */
  pthread_mutex_t mu;   /* with cv: sleeping workers; guards bumps of gen */
  pthread_cond_t cv;
  int32_t n_workers;    /* workers started; worker t runs range t (1..) */
  uint32_t gen;         /* job number (atomic) */
  int32_t pending;      /* workers that have not finished the job (atomic) */
  uint32_t start_gen[EBNN_MAX_THREADS];
  ebnn__range_fn_t fn;  /* the job, written before gen is bumped */
  const void *ctx;
  int32_t n_items, nt;
} ebnn__pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
               0, 0u, 0, {0u}, NULL, NULL, 0, 0};

static void ebnn__range(int32_t n, int32_t t, int32_t nt, int32_t *begin, int32_t *end) {
  *begin = (int32_t)((int64_t)n * t / nt);
  *end = (int32_t)((int64_t)n * (t + 1) / nt);
}

static void *ebnn__worker(void *arg) {
  const int32_t me = (int32_t)(intptr_t)arg;
  uint32_t seen = ebnn__pool.start_gen[me];
  for (;;) {
    uint32_t g = __atomic_load_n(&ebnn__pool.gen, __ATOMIC_ACQUIRE);
    int32_t i;
    for (i = 0; g == seen && i < EBNN_POOL_SPINS; ++i) {
      ebnn__relax();
      g = __atomic_load_n(&ebnn__pool.gen, __ATOMIC_ACQUIRE);
    }
    if (g == seen) {
      pthread_mutex_lock(&ebnn__pool.mu);
      while ((g = __atomic_load_n(&ebnn__pool.gen, __ATOMIC_ACQUIRE)) == seen)
        pthread_cond_wait(&ebnn__pool.cv, &ebnn__pool.mu);
      pthread_mutex_unlock(&ebnn__pool.mu);
    }
    seen = g;
    if (me < ebnn__pool.nt) {
      int32_t begin, end;
      ebnn__range(ebnn__pool.n_items, me, ebnn__pool.nt, &begin, &end);
      if (end > begin) ebnn__pool.fn(ebnn__pool.ctx, begin, end);
    }
    /* every worker reports, assigned or not: the caller may write the next
     * job only when no worker still reads this one */
    __atomic_sub_fetch(&ebnn__pool.pending, 1, __ATOMIC_RELEASE);
  }
  return NULL;
}

/* Workers 1..want-1 running (the caller holds busy); returns how many run. */
static int32_t ebnn__start_workers(int32_t want) {
  while (ebnn__pool.n_workers < want) {
    pthread_t tid;
    const int32_t t = ebnn__pool.n_workers + 1;
    ebnn__pool.start_gen[t] = ebnn__pool.gen;
    if (pthread_create(&tid, NULL, ebnn__worker, (void *)(intptr_t)t) != 0) break;
    pthread_detach(tid);
    ebnn__pool.n_workers = t;
  }
  return ebnn__pool.n_workers;
}
#endif

void ebnn__parallel_for(int32_t n_items, int64_t cost, ebnn__range_fn_t fn, const void *ctx) {
#if defined(EBNN_THREADS) && EBNN_THREADS
  int32_t nt = ebnn_get_threads(), begin, end, spins = 0;
  if (nt > n_items) nt = n_items;
  if ((int64_t)(nt - 1) * EBNN_PAR_MIN_COST > cost) nt = (int32_t)(cost / EBNN_PAR_MIN_COST) + 1;
  if (nt > 1 && pthread_mutex_trylock(&ebnn__pool.busy) == 0) {
    const int32_t workers = ebnn__start_workers(nt - 1);
    if (nt > workers + 1) nt = workers + 1;
    if (nt > 1) {
      ebnn__pool.fn = fn;
      ebnn__pool.ctx = ctx;
      ebnn__pool.n_items = n_items;
      ebnn__pool.nt = nt;
      __atomic_store_n(&ebnn__pool.pending, workers, __ATOMIC_RELAXED);
      pthread_mutex_lock(&ebnn__pool.mu);
      __atomic_store_n(&ebnn__pool.gen, ebnn__pool.gen + 1u, __ATOMIC_RELEASE);
      pthread_cond_broadcast(&ebnn__pool.cv);
      pthread_mutex_unlock(&ebnn__pool.mu);
      ebnn__range(n_items, 0, nt, &begin, &end);
      if (end > begin) fn(ctx, begin, end);
      while (__atomic_load_n(&ebnn__pool.pending, __ATOMIC_ACQUIRE) != 0) {
        if (++spins < EBNN_POOL_SPINS) {
          ebnn__relax();
        } else {
          sched_yield();
        }
      }
      pthread_mutex_unlock(&ebnn__pool.busy);
      return;
    }
    pthread_mutex_unlock(&ebnn__pool.busy);
  }
#else
  (void)cost;
#endif
  if (n_items > 0) fn(ctx, 0, n_items);
}

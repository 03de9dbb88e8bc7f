#!/usr/bin/env python3
"""Where a model's time goes in the generated C: CPU time per op and per kernel.

    PYTHONPATH=. python tools/op_profile.py MODEL.tflite [--runs 40] [--kernels opt] [--json]

Generates the model's C (edgebnn.codegen.generator.generate, the native
target's flags from edgebnn.toolchain), wraps every kernel call of the
invoke function in a timer (the calling thread's CPU time,
CLOCK_THREAD_CPUTIME_ID, so time other jobs hold the core is left out;
one thread; with --threads N > 1 the wall clock, CLOCK_MONOTONIC, since the
workers' time is not the caller's), runs one warm-up invoke and --runs timed ones on a seeded
input, and prints each op's minimum and mean over the runs, then the sums
per kernel. The minimum is the figure least disturbed by a shared machine;
the sum of minima is a lower bound of one invoke, not a median.

The timers are the runtime's profile hook: the generated invoke calls
``ebnn_profile_op(k)`` after its k-th kernel call in a build with
``-DEBNN_PROFILE`` (firmware/runtime/ebnn.h; ``edgebnn firmware run
--profile`` uses the same hook on microcontrollers), and this tool's main
defines it with the thread's CPU clock. The generated code is not edited.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

MAIN = """#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "%(name)s.h"
#define N_CALLS %(prefix)s_KERNEL_CALLS
static double prof_ns[N_CALLS], prof_last;
static double prof_now(void) {
  struct timespec ts;
  clock_gettime(%(clock)s, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}
void ebnn_profile_op(int index) {
  const double now = prof_now();
  if (index >= 0 && index < N_CALLS) prof_ns[index] += now - prof_last;
  prof_last = prof_now();
}
static float in[%(prefix)s_INPUT_SIZE], out[%(prefix)s_OUTPUT_SIZE];
int main(int argc, char **argv) {
  static double best[N_CALLS], total[N_CALLS];
  int runs = argc > 1 ? atoi(argv[1]) : 40, r, i;
  if (fread(in, sizeof(float), %(prefix)s_INPUT_SIZE, stdin) != (size_t)%(prefix)s_INPUT_SIZE) return 2;
  if (%(name)s_invoke(in, out) != 0) return 3;
  for (r = 0; r < runs; ++r) {
    for (i = 0; i < N_CALLS; ++i) prof_ns[i] = 0.0;
    if (%(name)s_invoke(in, out) != 0) return 3;
    for (i = 0; i < N_CALLS; ++i) {
      if (r == 0 || prof_ns[i] < best[i]) best[i] = prof_ns[i];
      total[i] += prof_ns[i];
    }
  }
  printf("[");
  for (i = 0; i < N_CALLS; ++i)
    printf("%%s{\\"call\\": %%d, \\"ms\\": %%.4f, \\"mean_ms\\": %%.4f}", i ? ", " : "", i,
           best[i] / 1e6, total[i] / runs / 1e6);
  printf("]\\n");
  return 0;
}
"""


def profile(model, *, runs=40, kernels=None, seed=0, threads=1, fuse=True):
    """Per kernel call, minimum and mean CPU ms: a list of {"call", "op", "ops", "kernel", "ms", "mean_ms"}
    (``op``: the call's first TFLite op index)."""
    from edgebnn.codegen.generator import generate
    from edgebnn.graph import load_graph
    from edgebnn.toolchain import compile_commands, toolchain_for

    tc = toolchain_for("native", kernels=kernels)
    gen = generate(model, name="model", target=tc.target, kernels=tc.kernels.name, fuse=fuse,
                   command="tools/op_profile.py")
    shape = load_graph(model).tensor(load_graph(model).inputs[0]).shape
    x = np.random.default_rng(seed).normal(size=int(np.prod(shape))).astype("<f4")
    with tempfile.TemporaryDirectory(prefix="op-profile-") as wd:
        src = Path(wd)
        for rel, text in gen.files.items():
            (src / rel).write_text(text)
        clock = "CLOCK_THREAD_CPUTIME_ID" if threads == 1 else "CLOCK_MONOTONIC"
        (src / "prof_main.c").write_text(MAIN % {"name": "model", "prefix": "MODEL", "clock": clock})
        sources = [str(src / f) for f in sorted(gen.files) if f.endswith(".c")] + [str(src / "prof_main.c")]
        exe = str(src / "prof")
        for cmd in compile_commands(None, sources, "program", output=exe, includes=[str(src)], objdir=str(src),
                                    toolchain=tc, defines=("EBNN_PROFILE",)):
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"op_profile: build failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
        proc = subprocess.run(["env", f"EBNN_NUM_THREADS={threads}", exe, str(runs)], input=x.tobytes(),
                              capture_output=True, check=True)
    calls = [c for c in gen.ops if c["kernel"]]
    rows = json.loads(proc.stdout)
    return [dict(r, op=calls[r["call"]]["ops"][0], ops=calls[r["call"]]["ops"], kernel=calls[r["call"]]["kernel"])
            for r in rows]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--kernels", default=None, help="kernel set (default: the native target's)")
    ap.add_argument("--threads", type=int, default=1,
                    help="threads of the _opt kernels; above 1 the timers read the wall clock (CLOCK_MONOTONIC)")
    ap.add_argument("--no-fuse", action="store_true", help="generate without the fused conv-pool-affine chains")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows = profile(args.model, runs=args.runs, kernels=args.kernels, threads=args.threads, fuse=not args.no_fuse)
    if args.json:
        print(json.dumps(rows))
        return 0
    per, mean = {}, {}
    print("  op kernel                                   min ms  mean ms")
    for r in rows:
        print(f"{r['op']:4d} {r['kernel']:40s} {r['ms']:7.3f} {r['mean_ms']:8.3f}")
        per[r["kernel"]] = per.get(r["kernel"], 0.0) + r["ms"]
        mean[r["kernel"]] = mean.get(r["kernel"], 0.0) + r["mean_ms"]
    print("per kernel:                                   min ms  mean ms")
    for k, v in sorted(per.items(), key=lambda kv: -kv[1]):
        print(f"     {k:40s} {v:7.3f} {mean[k]:8.3f}")
    print(f"sum of per-op minima: {sum(per.values()):.3f} ms, of means: {sum(mean.values()):.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

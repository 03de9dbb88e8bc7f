#!/usr/bin/env python3
"""Where a model's time goes in the generated C: CPU time per op and per kernel.

    PYTHONPATH=. python tools/op_profile.py MODEL.tflite [--runs 40] [--kernels opt] [--json]

Generates the model's C (edgebnn.codegen.generator.generate, the native
target's flags from edgebnn.toolchain), wraps every kernel call of the
invoke function in a timer (the calling thread's CPU time,
CLOCK_THREAD_CPUTIME_ID, so time other jobs hold the core is left out;
one thread), runs one warm-up invoke and --runs timed ones on a seeded
input, and prints each op's minimum and mean over the runs, then the sums
per kernel. The minimum is the figure least disturbed by a shared machine;
the sum of minima is a lower bound of one invoke, not a median.

The timers are added to a copy of the generated model.c: each line
``status = ebnn_<kernel>(&<name>_op<N>, ...);`` becomes the same call
between two clock reads (kernel names and op numbers are the generated
code's own identifiers). Nothing of this reaches an exported model.
"""

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CALL = re.compile(r"status = (ebnn_[a-z0-9_]+)\(&(\w+)_op(\d+)([^;]*)\);")

PROLOGUE = """#define _POSIX_C_SOURCE 200809L
#include <time.h>
double ebnn_prof_ns[4096];
const char *ebnn_prof_kernel[4096];
int ebnn_prof_n;
static double ebnn_prof_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}
"""

MAIN = """#include <stdio.h>
#include <stdlib.h>
#include "%(name)s.h"
extern double ebnn_prof_ns[4096];
extern const char *ebnn_prof_kernel[4096];
extern int ebnn_prof_n;
static float in[%(prefix)s_INPUT_SIZE], out[%(prefix)s_OUTPUT_SIZE];
int main(int argc, char **argv) {
  static double best[4096], total[4096];
  int runs = argc > 1 ? atoi(argv[1]) : 40, r, i;
  if (fread(in, sizeof(float), %(prefix)s_INPUT_SIZE, stdin) != (size_t)%(prefix)s_INPUT_SIZE) return 2;
  if (%(name)s_invoke(in, out) != 0) return 3;
  for (r = 0; r < runs; ++r) {
    for (i = 0; i < ebnn_prof_n; ++i) ebnn_prof_ns[i] = 0.0;
    if (%(name)s_invoke(in, out) != 0) return 3;
    for (i = 0; i < ebnn_prof_n; ++i) {
      if (r == 0 || ebnn_prof_ns[i] < best[i]) best[i] = ebnn_prof_ns[i];
      total[i] += ebnn_prof_ns[i];
    }
  }
  printf("[");
  for (i = 0; i < ebnn_prof_n; ++i)
    printf("%%s{\\"op\\": %%d, \\"kernel\\": \\"%%s\\", \\"ms\\": %%.4f, \\"mean_ms\\": %%.4f}", i ? ", " : "", i,
           ebnn_prof_kernel[i] ? ebnn_prof_kernel[i] : "", best[i] / 1e6, total[i] / runs / 1e6);
  printf("]\\n");
  return 0;
}
"""


def instrument(model_c: str) -> str:
    """model.c with a CPU-time timer around every kernel call of the invoke."""
    def wrap(m):
        kernel, prefix, op, rest = m.group(1), m.group(2), int(m.group(3)), m.group(4)
        return (f"{{ const double t0_ = ebnn_prof_now(); status = {kernel}(&{prefix}_op{op}{rest}); "
                f"ebnn_prof_ns[{op}] += ebnn_prof_now() - t0_; ebnn_prof_kernel[{op}] = \"{kernel}\"; "
                f"if ({op} >= ebnn_prof_n) ebnn_prof_n = {op} + 1; }}")
    out, n = CALL.subn(wrap, model_c)
    if n == 0:
        raise SystemExit("op_profile: no kernel call found in the generated model.c")
    return PROLOGUE + out


def profile(model, *, runs=40, kernels=None, seed=0):
    """Per-op minimum CPU ms: a list of {"op", "kernel", "ms"}."""
    from edgebnn.codegen.generator import generate
    from edgebnn.graph import load_graph
    from edgebnn.toolchain import compile_commands, toolchain_for

    tc = toolchain_for("native", kernels=kernels)
    gen = generate(model, name="model", target=tc.target, kernels=tc.kernels.name, command="tools/op_profile.py")
    shape = load_graph(model).tensor(load_graph(model).inputs[0]).shape
    x = np.random.default_rng(seed).normal(size=int(np.prod(shape))).astype("<f4")
    with tempfile.TemporaryDirectory(prefix="op-profile-") as wd:
        src = Path(wd)
        for rel, text in gen.files.items():
            (src / rel).write_text(instrument(text) if rel == "model.c" else text)
        (src / "prof_main.c").write_text(MAIN % {"name": "model", "prefix": "MODEL"})
        sources = [str(src / f) for f in sorted(gen.files) if f.endswith(".c")] + [str(src / "prof_main.c")]
        exe = str(src / "prof")
        for cmd in compile_commands(None, sources, "program", output=exe, includes=[str(src)], objdir=str(src),
                                    toolchain=tc):
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"op_profile: build failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
        proc = subprocess.run(["env", "EBNN_NUM_THREADS=1", exe, str(runs)], input=x.tobytes(),
                              capture_output=True, check=True)
    return [r for r in json.loads(proc.stdout) if r["kernel"]]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--kernels", default=None, help="kernel set (default: the native target's)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows = profile(args.model, runs=args.runs, kernels=args.kernels)
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

#!/usr/bin/env python3
"""larq-zoo models: edgebnn's C engine against LCE's interpreter, with a roofline.

    PYTHONPATH=. python tools/zoo_bench.py [--models QuickNet,BiRealNet] [--size 224]
                                           [--runs 10] [--rounds 3] [--cache DIR] [--json]

For each model: build it (seeded random weights, calibrated batch norms) and
convert it with LCE (cached in --cache, as tools/zoo_check.py), export it
with edgebnn's C generator ("opt" kernels, -O3 -march=native), check it
against LCE's interpreter on 2 seeded inputs, then time both on one thread
and the C engine on two, in the same run: --rounds rounds in which the
engines take turns, --runs invokes each per round, medians over all rounds
(a change of machine load during the run then hits both engines alike). Prints one table: binary and
float MACs, top-1 agreement, max |c - lce|, c and lce medians (wall
clock), their ratio, the same ratio in CPU time (the C program's calling
thread, LCE's whole process, per invoke: on a shared machine CPU time
leaves out the time other jobs held the core), achieved G binary MAC/s and G float MAC/s, the
roofline fraction (ceiling time / c median, ceiling time = binary MACs /
binary ceiling + float MACs / float ceiling) on wall and on CPU time, arena
bytes and peak RSS of the C program. Where the top-1 classes differ, the
"top-1 agree" column says why (edgebnn.bench.flips), as it does where the
outputs are further apart than zoo_check's 1e-4: the first LceQuantize
whose float input has another sign in the two engines, and how close to
zero the flipped values were ("rounding flip": within 1e-5 of the tensor's
scale, the tensor otherwise equal to 1e-4; "DIFFERENCE" otherwise).

Ceilings (G MAC/s) are measured on this machine unless --binary-ceiling /
--float-ceiling are given: tools/ceiling_bench.c is built with the native
target's flags (edgebnn.toolchain) and run 3 times; each loop keeps its
best figure. Binary ceiling: the fastest XOR+popcount loop it has for the
build's ISA, from L1 in thread CPU time (on this AMD EPYC Zen 3 with AVX2
and no AVX-512: the nibble-split VPSHUFB loop of ebnn_bconv_opt.c, about
390-460 G/s at about 2.9-3.0 GHz; the plain VPSHUFB loop about 320-370,
scalar POPCNT about 185-205). The 195 G/s of /work/shared/TARGETS.md was
measured on another (AVX-512) machine. Float ceiling: 16 MACs per cycle
(two 8-lane multiplies and two adds per cycle; no FMA, builds keep
-ffp-contract=off) at the clock measured by the same program (one
dependent add per cycle, best of 200 short trials), or the float loop's
own figure if that is higher.
Every larq-zoo model runs by default (XNORNet's and DoReFaNet's generated
C, 24 and 115 MB of weights, compiles in about 4 and 50 s since weights
are emitted as byte strings).
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

SKIP = ()  # models left out of the default list


def count_macs(graph):
    """(binary MACs, float MACs) of one inference, from the ops' tensor shapes.

    As the C engine computes them: a float CONV_2D / FULLY_CONNECTED that the
    generator runs level-coded (DoReFa-Net's k-bit activations and sign
    weights, :class:`edgebnn.codegen.ops.LevelConv`) counts as binary MACs,
    once per bitplane, since that is the work it does.
    """
    from edgebnn.codegen.fold import fold_weight_computations
    from edgebnn.codegen.generator import build_nodes
    from edgebnn.codegen.ops import LevelConv

    graph = fold_weight_computations(graph)  # as generate() sees it (XNORNet's weight scales)
    planes = {n.op.index: n.planes for n in build_nodes(graph, fuse=False)[1] if isinstance(n, LevelConv)}
    binary = flt = 0
    for op in graph.ops:
        b, f = count_macs_of(graph, op)
        binary += b + planes.get(op.index, 0) * f
        flt += 0 if op.index in planes else f
    return binary, flt


def count_macs_of(graph, op):
    """(binary MACs, float MACs) of one op."""
    out = graph.tensor(op.outputs[0])
    w = graph.tensor(op.inputs[1]) if len(op.inputs) > 1 and op.inputs[1] >= 0 else None
    if op.type == "LceBconv2d":
        in_c = int(op.options.get("channels_in") or graph.tensor(op.inputs[0]).shape[-1] * 32)
        return out.shape[1] * out.shape[2] * int(w.shape[0]) * int(w.shape[1]) * int(w.shape[2]) * in_c, 0
    if op.type == "CONV_2D":
        return 0, out.size * int(w.shape[1]) * int(w.shape[2]) * int(w.shape[3])
    if op.type == "DEPTHWISE_CONV_2D":
        return 0, out.size * int(w.shape[1]) * int(w.shape[2])
    if op.type == "FULLY_CONNECTED":
        return 0, (out.size // int(w.shape[0])) * w.size
    return 0, 0


def cpu_mhz():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1])
    except OSError:
        pass
    return 2000.0


def bench_model(name, *, size, seed, cache, runs, rounds=3):
    from edgebnn.hostprog import build_bench_program, predict_c
    from edgebnn.graph import load_graph
    from edgebnn.predict import predict_tflite
    from edgebnn.zoo_models import zoo_inputs
    from zoo_check import TOL, _convert

    path, _ = _convert(name, size, seed, cache)
    g = load_graph(path)
    row = {"model": name, "size": size}
    row["binary_macs"], row["float_macs"] = count_macs(g)
    x = zoo_inputs((size, size, 3), n=2, seed=seed)
    lce = predict_tflite(path, x)
    c = predict_c(path, x)
    row["top1_agree"] = bool(np.array_equal(lce.argmax(-1), c.argmax(-1)))
    row["max_abs_diff"] = float(np.max(np.abs(lce - c)))
    if not row["top1_agree"] or row["max_abs_diff"] > TOL:  # a rounding sign flip, or a real difference?
        from edgebnn.bench.flips import describe, explain_lce_vs_c
        row["flip"] = explain_lce_vs_c(path, x)
        row["why"] = describe(row["flip"])
    from larq_compute_engine.tflite.python.interpreter import Interpreter
    interp = Interpreter(Path(path).read_bytes(), num_threads=1)
    one = x[:1]
    interp.predict(one)
    samples = {"c1": [], "c1_cpu": [], "c2": [], "lce": [], "lce_cpu": []}
    with tempfile.TemporaryDirectory(prefix="zoo-bench-") as wd:
        exe = build_bench_program(path, wd)
        for _ in range(rounds):  # engines take turns, so a change of machine load hits both alike
            for threads in (1, 2):  # $EBNN_NUM_THREADS: threads of the _opt kernels
                proc = subprocess.run(["env", f"EBNN_NUM_THREADS={threads}", str(exe), "2", str(runs)],
                                      input=np.ascontiguousarray(x[0], "<f4").tobytes(), capture_output=True,
                                      check=True)
                obj = json.loads(proc.stdout)
                samples[f"c{threads}"] += [t / 1e6 for t in obj["times_ns"]]
                if threads == 1:  # the calling thread's CPU time: all of it on one thread
                    samples["c1_cpu"] += [t / 1e6 for t in obj["cpu_times_ns"]]
            for _ in range(runs):
                c0, t0 = time.process_time(), time.perf_counter()
                interp.predict(one)  # num_threads=1; process CPU time in case work runs off this thread
                t1, c1 = time.perf_counter(), time.process_time()
                samples["lce"].append((t1 - t0) * 1e3)
                samples["lce_cpu"].append((c1 - c0) * 1e3)
    med = {k: statistics.median(v) for k, v in samples.items()}
    row["c1_ms"], row["c2_ms"], row["c_cpu_ms"] = med["c1"], med["c2"], med["c1_cpu"]
    row["c_ms"] = row["c1_ms"]
    row["arena_bytes"] = obj.get("arena_bytes")
    row["peak_rss_bytes"] = obj.get("peak_rss_bytes")
    row["lce_ms"], row["lce_cpu_ms"] = med["lce"], med["lce_cpu"]
    row["samples"] = len(samples["c1"])
    row["ratio"] = row["c_ms"] / row["lce_ms"]
    row["cpu_ratio"] = row["c_cpu_ms"] / row["lce_cpu_ms"]
    return row


def _table(rows):
    lines = ["| model | binary MACs | float MACs | top-1 agree | max diff | c ms 1 thr | c ms 2 thr | lce ms | c/lce | "
             "c/lce CPU | G bin MAC/s | G MAC/s | roofline frac | roofline frac CPU | arena B | peak RSS B |",
             "|" + "---|" * 16]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | error: {r['error']} |" + " |" * 14)
            continue
        lines.append(
            f"| {r['model']} | {r['binary_macs'] / 1e9:.2f} G | {r['float_macs'] / 1e6:.0f} M | "
            f"{'yes' if r['top1_agree'] else 'NO'}{': ' + r['why'] if 'why' in r else ''} | {r['max_abs_diff']:.1e} | {r['c_ms']:.1f} | {r['c2_ms']:.1f} | "
            f"{r['lce_ms']:.1f} | {r['ratio']:.3f} | {r['cpu_ratio']:.3f} | {r['g_binary']:.0f} | "
            f"{r['g_float']:.1f} | {r['roofline']:.2f} | {r['roofline_cpu']:.2f} | {r['arena_bytes']} | "
            f"{r['peak_rss_bytes']} |")
    return "\n".join(lines)


def measure_ceilings(runs=3):
    """Best G MAC/s of each loop of tools/ceiling_bench.c over ``runs`` runs (see the module docstring)."""
    from edgebnn.toolchain import compile_commands

    src = Path(__file__).resolve().parent / "ceiling_bench.c"
    best = {"binary": {}, "float": {}, "clock_ghz": 0.0}
    with tempfile.TemporaryDirectory(prefix="ceiling-") as wd:
        exe = str(Path(wd) / "ceiling_bench")
        for cmd in compile_commands("native", [str(src)], "program", output=exe, objdir=wd):
            subprocess.run(cmd, check=True, capture_output=True)
        for _ in range(runs):
            obj = json.loads(subprocess.run([exe], check=True, capture_output=True, text=True).stdout)
            best["clock_ghz"] = max(best["clock_ghz"], obj["clock_ghz"])
            for kind in ("binary", "float"):
                for loop, g in obj[kind].items():
                    best[kind][loop] = max(best[kind].get(loop, 0.0), g)
    return best


def main(argv=None) -> int:
    import edgebnn  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow)
    from edgebnn.zoo_models import zoo_model, zoo_model_names

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(n for n in zoo_model_names() if n not in SKIP))
    ap.add_argument("--size", type=int, help="override every model's input size")
    ap.add_argument("--runs", type=int, default=3, help="timed invokes per engine and round")
    ap.add_argument("--rounds", type=int, default=10,
                    help="rounds in which C (1 and 2 threads) and LCE take turns; medians over all rounds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default="/tmp/edgebnn-zoo")
    ap.add_argument("--binary-ceiling", type=float, default=None,
                    help="G binary MAC/s (default: measured by tools/ceiling_bench.c)")
    ap.add_argument("--float-ceiling", type=float, default=None,
                    help="G float MAC/s (default: 16 per cycle at the measured clock)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    bceil, fceil, how = args.binary_ceiling, args.float_ceiling, []
    if bceil is None or fceil is None:
        ceil = measure_ceilings()
        print(f"measured ceilings (tools/ceiling_bench.c, best of 3): {json.dumps(ceil)}", file=sys.stderr)
        if bceil is None:
            loop = max(ceil["binary"], key=ceil["binary"].get)
            bceil = ceil["binary"][loop]
            how.append(f"binary: {loop}, measured")
        if fceil is None:
            # 16/cycle at the measured clock, never below what the float loop itself reached
            # (a disturbed clock measurement reads low)
            fceil = max(ceil["float"]["float_peak"], ceil["float"].get("float_v8_4x16", 0.0)) or 16 * cpu_mhz() / 1e3
            how.append(f"float: 16/cycle at {ceil['clock_ghz']:.2f} GHz, measured")
    rows = []
    for name in args.models.split(","):
        size = args.size or zoo_model(name).input_size
        try:
            r = bench_model(name, size=size, seed=args.seed, cache=args.cache, runs=args.runs, rounds=args.rounds)
            r["g_binary"] = r["binary_macs"] / (r["c_ms"] * 1e6)
            r["g_float"] = r["float_macs"] / (r["c_ms"] * 1e6)
            ideal_ms = (r["binary_macs"] / bceil + r["float_macs"] / fceil) / 1e6
            r["ceiling_ms"] = ideal_ms
            r["roofline"] = ideal_ms / r["c_ms"]
            r["roofline_cpu"] = ideal_ms / r["c_cpu_ms"]
        except Exception as exc:  # report and go on with the next model
            r = {"model": name, "size": size, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        rows.append(r)
        print(json.dumps(r), file=sys.stderr, flush=True)
    print(json.dumps(rows) if args.json else _table(rows))
    print(f"ceilings: {bceil:.0f} G binary MAC/s, {fceil:.1f} G float MAC/s ({'; '.join(how) or 'given'})",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Every larq-zoo architecture through LCE and edgebnn's C engine: a coverage table.

    PYTHONPATH=. python tools/zoo_check.py [--models QuickNet,XNORNet] [--cache DIR]
                                           [--ops-only] [--seed 0] [--json]

For each model (edgebnn.zoo_models.ZOO_MODELS, 224x224x3 and 1000 classes,
DoReFaNet at the largest size LCE converts): build it with seeded random
weights and calibrated batch norms, convert it with edgebnn.convert (LCE),
list its op types, export it with edgebnn's C generator, compile it for the
host and run it and LCE's interpreter on 2 seeded inputs. Prints one row per
model: ops, export ok, top-1 agree, max |c - lce| of the softmax output and
of the logits' proxy (log of the output), seconds. Models run one at a time.
The .tflite files are cached in --cache (default /tmp/edgebnn-zoo) so a
second run skips the conversion.

Tolerance: float ops in a different summation order than TFLite's optimized
kernels (im2col + GEMM) round differently; through 20-100 layers the
relative error grows to ~1e-4 of the activations' scale, and the softmax
output of a random 1000-class model is ~1e-3, so max |diff| <= 1e-4 on the
probabilities is the bar (top-1 must be identical). A value within
rounding of zero can still binarize to another sign in each engine; the
bit then flips a popcount and the difference grows through the next
layers. Where top-1 differs, the row says where the first such flip is and
how close to zero it was (edgebnn.bench.flips), which tells a rounding
flip from a real difference.
"""

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np

TOL = 1e-4


def _convert(name, size, seed, cache):
    from edgebnn.convert import convert
    from edgebnn.zoo_models import build_zoo_model

    path = Path(cache) / f"{name}_{size}_s{seed}.tflite"
    if path.is_file():
        return path, 0.0
    t0 = time.time()
    model = build_zoo_model(name, input_shape=(size, size, 3), seed=seed)
    data = convert(model, target="x86_64")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path, time.time() - t0


def check_model(name, *, size, seed, cache, ops_only=False):
    from edgebnn.graph import load_graph

    row = {"model": name, "size": size}
    t0 = time.time()
    try:
        path, row["convert_s"] = _convert(name, size, seed, cache)
    except Exception as exc:  # report and go on with the next model
        row.update(convert_ok=False, error=f"{type(exc).__name__}: {str(exc)[:300]}")
        return row
    row["convert_ok"] = True
    g = load_graph(path)
    row["ops"] = g.op_types()
    if ops_only:
        return row
    from edgebnn.hostprog import predict_c
    from edgebnn.predict import predict_tflite
    from edgebnn.zoo_models import zoo_inputs

    x = zoo_inputs((size, size, 3), n=2, seed=seed)
    try:
        t1 = time.time()
        c = predict_c(path, x)
        row["c_build_run_s"] = round(time.time() - t1, 1)
        row["export_ok"] = True
    except Exception as exc:
        row.update(export_ok=False, error=f"{type(exc).__name__}: {str(exc)[:300]}")
        row["seconds"] = round(time.time() - t0, 1)
        return row
    lce = predict_tflite(path, x)
    row["top1_agree"] = bool(np.array_equal(lce.argmax(-1), c.argmax(-1)))
    row["max_abs_diff"] = float(np.max(np.abs(lce - c)))
    row["max_rel_diff"] = float(np.max(np.abs(lce - c) / np.maximum(np.abs(lce), 1e-30)))
    row["top1"] = [int(i) for i in lce.argmax(-1)]
    row["max_prob"] = float(lce.max())
    if not row["top1_agree"] or row["max_abs_diff"] > TOL:  # a rounding sign flip, or a real difference?
        from edgebnn.bench.flips import describe, explain_lce_vs_c
        row["flip"] = explain_lce_vs_c(path, x)
        row["why"] = describe(row["flip"])
    row["ok"] = row["top1_agree"] and row["max_abs_diff"] <= TOL
    row["seconds"] = round(time.time() - t0, 1)
    return row


def _table(rows):
    head = "| model | size | ops | export ok | top-1 agree | max abs diff | max rel diff | time s |"
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ops = ", ".join(f"{k} x{v}" for k, v in r.get("ops", {}).items()) or "-"
        exp = "yes" if r.get("export_ok") else ("-" if "export_ok" not in r else "no: " + r.get("error", ""))
        if not r.get("convert_ok", True):
            exp = "convert failed: " + r.get("error", "")
        agree = {True: "yes", False: "NO"}.get(r.get("top1_agree"), "-")
        if "why" in r:  # top-1 differs or the outputs are further apart than TOL
            agree += ": " + r["why"]
        diff = f"{r['max_abs_diff']:.2e}" if "max_abs_diff" in r else "-"
        rel = f"{r['max_rel_diff']:.2e}" if "max_rel_diff" in r else "-"
        lines.append(f"| {r['model']} | {r['size']} | {ops} | {exp} | {agree} | {diff} | {rel} | "
                     f"{r.get('seconds', '-')} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    import edgebnn  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow)
    from edgebnn.zoo_models import zoo_model, zoo_model_names

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(zoo_model_names()))
    ap.add_argument("--cache", default="/tmp/edgebnn-zoo")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, help="override every model's input size")
    ap.add_argument("--ops-only", action="store_true", help="convert and list op types only")
    ap.add_argument("--json", action="store_true", help="one JSON object per model instead of the table")
    args = ap.parse_args(argv)
    rows = []
    for name in args.models.split(","):
        info = zoo_model(name)
        try:
            row = check_model(name, size=args.size or info.input_size, seed=args.seed, cache=args.cache,
                              ops_only=args.ops_only)
        except Exception as exc:
            traceback.print_exc()
            row = {"model": name, "size": args.size or info.input_size, "error": f"{type(exc).__name__}: {exc}"}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
        if args.json:
            print(json.dumps(row), flush=True)
    if not args.json:
        print(_table(rows))
    return 0 if all(r.get("ok", args.ops_only and r.get("convert_ok")) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

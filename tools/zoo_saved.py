#!/usr/bin/env python3
"""Every larq-zoo architecture saved as .h5 and .keras, converted by `edgebnn convert` as a user would.

    PYTHONPATH=. python tools/zoo_saved.py [--models QuickNet,MeliusNet22] [--formats h5,keras]
                                           [--size 224] [--seed 0] [--keep DIR] [--json]
                                           [--edgebnn-root DIR]

For each model (edgebnn.zoo_models.ZOO_MODELS, at its checked input size
unless --size): build it with seeded random weights and calibrated batch
norms, convert the in-memory model with edgebnn.convert (the reference
flatbuffer), save it with ``model.save`` as ``NAME.h5`` and ``NAME.keras``
in a temporary directory, and run ``python -m edgebnn.cli convert FILE -o
FILE.tflite --lce-target x86_64`` in a subprocess whose working directory
is that temporary directory (outside the checkout; PYTHONPATH points at
this checkout), without --trust-model-code or --custom-objects. Per model
and format it reports: convert ok or the CLI's error message, whether the
flatbuffer is byte-identical to the reference, and when it is not, whether
LCE's interpreter gives identical outputs on 2 seeded inputs (else the
largest difference). Models run one at a time (224x224 models are big).
Exit status 0 when every file converts to an identical or identically
predicting flatbuffer.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FORMATS = ("h5", "keras")


def cli_convert(model_file: Path, out: Path, *, root: Path = ROOT, timeout: int = 1800) -> dict:
    """Run ``edgebnn convert`` (of the checkout ``root``) on ``model_file`` in a subprocess;
    ``{"ok", "error", "seconds"}``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(root) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, "-m", "edgebnn.cli", "convert", str(model_file), "-o", str(out),
           "--lce-target", "x86_64"]
    t0 = time.time()
    res = subprocess.run(cmd, cwd=model_file.parent, env=env, capture_output=True, text=True, timeout=timeout)
    row = {"ok": res.returncode == 0 and out.is_file(), "seconds": round(time.time() - t0, 1)}
    if not row["ok"]:
        lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("Error:")]
        row["error"] = (errors[-1] if errors else (lines[-1] if lines else f"exit status {res.returncode}"))[:600]
    return row


def compare(reference: bytes, converted: bytes, inputs) -> dict:
    """Byte equality, else LCE interpreter outputs on ``inputs``: identical or the max |diff|."""
    if converted == reference:
        return {"identical_flatbuffer": True, "identical_outputs": True}
    from edgebnn.predict import predict_tflite

    a, b = predict_tflite(reference, inputs), predict_tflite(converted, inputs)
    return {"identical_flatbuffer": False, "identical_outputs": bool(np.array_equal(a, b)),
            "max_abs_diff": float(np.max(np.abs(a - b))) if a.shape == b.shape else None}


def check_model(name, *, size, seed, formats, workdir: Path, root: Path = ROOT) -> dict:
    from edgebnn.convert import convert
    from edgebnn.zoo_models import build_zoo_model, zoo_inputs

    row = {"model": name, "size": size}
    t0 = time.time()
    model = build_zoo_model(name, input_shape=(size, size, 3), seed=seed)
    reference = convert(model, target="x86_64")
    row["reference_bytes"] = len(reference)
    paths = {}
    for fmt in formats:
        paths[fmt] = workdir / f"{name}.{fmt}"
        model.save(paths[fmt])
    del model
    inputs = zoo_inputs((size, size, 3), n=2, seed=seed)
    for fmt in formats:
        out = paths[fmt].with_name(paths[fmt].name + ".tflite")
        res = cli_convert(paths[fmt], out, root=root)
        if res["ok"]:
            res.update(compare(reference, out.read_bytes(), inputs))
        row[fmt] = res
    row["seconds"] = round(time.time() - t0, 1)
    return row


def _cell(r) -> str:
    if r is None:
        return "-"
    if not r["ok"]:
        return "no: " + r["error"].replace("|", "/")
    if r["identical_flatbuffer"]:
        return "yes | identical flatbuffer"
    if r["identical_outputs"]:
        return "yes | same outputs (flatbuffer differs)"
    return f"yes | NO: max abs diff {r.get('max_abs_diff')}"


def table(rows, formats) -> str:
    head = "| model | size | " + " | ".join(f".{f} converts | .{f} vs in-memory" for f in formats) + " |"
    lines = [head, "|---|---|" + "---|---|" * len(formats)]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['size']} | " + " | ".join(["build/convert failed: "
                                                                         + r["error"][:200]] + ["-"] *
                                                                        (2 * len(formats) - 1)) + " |")
            continue
        lines.append(f"| {r['model']} | {r['size']} | " + " | ".join(_cell(r.get(f)) for f in formats) + " |")
    return "\n".join(lines)


def _row_ok(r, formats) -> bool:
    return "error" not in r and all(r[f]["ok"] and r[f]["identical_outputs"] for f in formats)


def main(argv=None) -> int:
    import edgebnn  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow)
    from edgebnn.zoo_models import zoo_model, zoo_model_names

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(zoo_model_names()))
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--size", type=int, help="override every model's input size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", help="save the model files here (kept) instead of a temporary directory")
    ap.add_argument("--edgebnn-root", default=str(ROOT),
                    help="checkout whose `edgebnn convert` is run (default this one; e.g. main, for a before/after)")
    ap.add_argument("--json", action="store_true", help="one JSON object per model instead of the table")
    args = ap.parse_args(argv)
    formats = tuple(args.formats.split(","))
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        ap.error(f"--formats: unknown {', '.join(bad)}; expected some of {', '.join(FORMATS)}")
    rows = []
    for name in args.models.split(","):
        size = args.size or zoo_model(name).input_size
        with tempfile.TemporaryDirectory(prefix="edgebnn-zoo-saved-") as tmp:
            workdir = Path(args.keep) if args.keep else Path(tmp)
            workdir.mkdir(parents=True, exist_ok=True)
            try:
                row = check_model(name, size=size, seed=args.seed, formats=formats, workdir=workdir,
                                  root=Path(args.edgebnn_root))
            except Exception as exc:  # report and go on with the next model
                row = {"model": name, "size": size, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
        if args.json:
            print(json.dumps(row), flush=True)
    if not args.json:
        print(table(rows, formats))
    return 0 if all(_row_ok(r, formats) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

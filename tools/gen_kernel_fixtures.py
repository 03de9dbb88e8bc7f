"""Generate the committed kernel fixtures in tests/fixtures/kernels/.

For each input-channel count (3, 31, 32, 33, 70) one many-branch Larq model
(tests/runtime/lce_models.py) is converted with larq_compute_engine and run
once through LCE's interpreter; every LceBconv2d / LceBMaxPool2d / binary
FULLY_CONNECTED that reads the quantized input is stored with its flatbuffer
parameters and LCE's output (lce_bconv_c<C>.npz). One many-branch float model
(tests/runtime/float_models.py) is converted with TFLite and its ops' outputs
from tf.lite.Interpreter are stored (tflite_float.npz).

A third fixture (lce_bconv_edge.npz) holds same-zero convolutions whose
effective filter is larger than the input.

Usage: python tools/gen_kernel_fixtures.py [--only lce|edge|float] [--channels 3,33]
Takes several minutes (each conversion of a ~50-branch model is 15-150 s).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "runtime"))

import fixture_io  # noqa: E402
import float_models  # noqa: E402
import lce_models  # noqa: E402

OUT = REPO / "tests" / "fixtures" / "kernels"
CHANNELS = (3, 31, 32, 33, 70)
SIZE = 10


def gen_lce(channels):
    for variant, c in enumerate(CHANNELS):
        if c not in channels:
            continue
        t0 = time.time()
        specs = lce_models.branch_grid(variant)
        model = lce_models.build_model(c, specs, size=SIZE, seed=c)
        tflite = lce_models.convert(model)
        x = np.random.default_rng(c).normal(size=(SIZE, SIZE, c)).astype(np.float32)
        cases = lce_models.extract_cases(tflite, x)
        expected = [lce_models.spec_id(s, c) for s in specs]
        found = {lce_models.case_id(cs) for cs in cases}
        missing = [e for e in expected if e not in found]
        if missing:
            raise SystemExit(f"c{c}: the converter did not produce binary ops for {missing}")
        fixture_io.save_cases(OUT / f"lce_bconv_c{c}.npz", cases, x=x,
                              expected_ids=np.array(expected))
        print(f"c{c}: {len(cases)} cases, {time.time() - t0:.0f} s", file=sys.stderr)


EDGE_SPECS = [
    dict(k=5, s=1, d=2, padding="same", pad_value=0, out="float", act="NONE"),
    dict(k=5, s=2, d=1, padding="same", pad_value=0, out="float", act="NONE"),
    dict(k=5, s=1, d=2, padding="same", pad_value=1, out="packed", act="NONE"),
]


def gen_edge():
    """Inputs smaller than the effective filter (3x3 and 6x6 maps, 5x5 kernels,
    dilation 2): LCE's same-zero correction only models windows that overflow
    on one side, edgebnn reproduces what it does there."""
    t0 = time.time()
    all_cases, xs = [], {}
    for size in (3, 6):
        model = lce_models.build_model(32, EDGE_SPECS, size=size, seed=5, bmaxpool=False, dense=False)
        tflite = lce_models.convert(model)
        x = np.random.default_rng(size).normal(size=(size, size, 32)).astype(np.float32)
        for case in lce_models.extract_cases(tflite, x):
            case["input_size"] = size
            all_cases.append(case)
        xs[f"x{size}"] = x
    fixture_io.save_cases(OUT / "lce_bconv_edge.npz", all_cases, **xs)
    print(f"edge: {len(all_cases)} cases, {time.time() - t0:.0f} s", file=sys.stderr)


def gen_float():
    t0 = time.time()
    model = float_models.build_float_model(seed=0)
    tflite = float_models.convert_float(model)
    x = np.random.default_rng(0).normal(size=float_models.INPUT_SHAPE).astype(np.float32)
    cases = float_models.extract_float_cases(tflite, x)
    fixture_io.save_cases(OUT / "tflite_float.npz", cases, x=x)
    print(f"float: {len(cases)} cases, {time.time() - t0:.0f} s", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("lce", "float", "edge"))
    ap.add_argument("--channels", default=",".join(map(str, CHANNELS)))
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "lce"):
        gen_lce({int(c) for c in args.channels.split(",")})
    if args.only in (None, "edge"):
        gen_edge()
    if args.only in (None, "float"):
        gen_float()


if __name__ == "__main__":
    main()

"""Generate the committed int8 kernel fixtures in tests/fixtures/kernels/int8/.

Many-branch Keras models (tests/runtime/int8_models.py) are quantized to
full int8 by TFLite's converter (seeded representative data) and run with
TFLite's reference kernels (BUILTIN_REF); every int8 op is stored with its
operands, their quantization and TFLite's output:

- conv_c<C>.npz: CONV_2D and DEPTHWISE_CONV_2D grid for C = 1, 3, 8, 17 input channels;
- misc.npz: FULLY_CONNECTED, ADD, MUL, pools, MEAN, SOFTMAX, CONCATENATION,
  PAD and the requantize ops the converter inserts;
- float_io.npz: QUANTIZE float -> int8 and DEQUANTIZE;
- fc_per_channel.npz: FULLY_CONNECTED with per-channel weights (the
  converted model's weights rewritten per output row, see
  int8_models.to_per_channel_fc; TFLite's converter emits per-tensor only);
- softmax_beta.npz: SOFTMAX with beta 0.3, 2.5 and 1.0 written into the
  converted model's options.

Usage: python tools/gen_int8_fixtures.py [--only conv|misc|float_io|fc_per_channel|softmax_beta]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "runtime"))

import fixture_io  # noqa: E402
import int8_models  # noqa: E402

OUT = REPO / "tests" / "fixtures" / "kernels" / "int8"
CHANNELS = (1, 3, 8, 17)
N_REP, N_SAMPLES = 64, 2


def _data(shape, seed, scale=1.0):
    rng = np.random.default_rng(seed)
    rep = (rng.normal(size=(N_REP, *shape)) * scale).astype(np.float32)
    # test samples a little wider than the calibration data: saturation paths
    xs = (rng.normal(size=(N_SAMPLES, *shape)) * scale * 1.2).astype(np.float32)
    return rep, xs


def _save(name, model, rep, xs, float_io=False, rewrite=None):
    t0 = time.time()
    tflite = int8_models.convert_int8(model, rep, float_io=float_io)
    if rewrite is not None:
        tflite = rewrite(tflite)
    cases = int8_models.extract_int8_cases(tflite, xs, name)
    fixture_io.save_cases(OUT / f"{name}.npz", cases, x=xs)
    kinds = {}
    for c in cases:
        kinds[c["type"]] = kinds.get(c["type"], 0) + 1
    print(f"{name}: {len(cases)} cases {kinds}, {time.time() - t0:.0f} s", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("conv", "misc", "float_io", "fc_per_channel", "softmax_beta"))
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "conv"):
        for c in CHANNELS:
            rep, xs = _data((9, 9, c), seed=c)
            _save(f"conv_c{c}", int8_models.build_conv_model(c, seed=c), rep, xs)
    if args.only in (None, "misc"):
        rep, xs = _data((8, 8, 6), seed=100, scale=2.0)
        _save("misc", int8_models.build_misc_model(seed=1), rep, xs)
    if args.only in (None, "float_io"):
        rep, xs = _data((6, 6, 3), seed=200)
        _save("float_io", int8_models.build_float_io_model(seed=2), rep, xs, float_io=True)
    if args.only in (None, "fc_per_channel"):
        rep, xs = _data((40,), seed=300)
        _save("fc_per_channel", int8_models.build_dense_model(seed=3), rep, xs,
              rewrite=int8_models.to_per_channel_fc)
    if args.only in (None, "softmax_beta"):
        rep, xs = _data((24,), seed=400)
        _save("softmax_beta", int8_models.build_softmax_model(seed=4), rep, xs,
              rewrite=int8_models.set_softmax_betas)


if __name__ == "__main__":
    main()

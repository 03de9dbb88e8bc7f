#!/usr/bin/env python3
"""Compare edgebnn's generated C engine with LCE's interpreter on a full test set.

    python tools/c_vs_lce.py MODEL [--dataset D] [--data-dir DIR] [--kernels ref|opt|mcu]

MODEL is a .tflite, a run directory or a shipped model name. Prints one JSON
object: n, top-1 agreement, both accuracies, the largest absolute output
difference. Exits 1 when agreement < 0.999 or the accuracies differ by more
than 0.05 percentage points (issue 4's model-level bar).
"""

import argparse
import json
import sys

import numpy as np

from edgebnn.hostprog import predict_c
from edgebnn.datasets import load_dataset
from edgebnn.predict import predict_tflite
from edgebnn.modelref import ModelRef


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--dataset", help="default: the shipped model's dataset")
    ap.add_argument("--data-dir")
    ap.add_argument("--kernels", default=None, help="runtime kernel set (default: the host's)")
    args = ap.parse_args(argv)
    ref = ModelRef.resolve(args.model)
    dataset = args.dataset or ref.dataset
    if not dataset or not ref.tflite_path:
        ap.error("give --dataset, and a model that has a .tflite")
    data = load_dataset(dataset, data_dir=args.data_dir)
    x = data.x_test.astype(np.float32)
    lce = predict_tflite(ref.tflite_path, x)
    c = predict_c(ref.tflite_path, x, kernels=args.kernels)
    agree = float(np.mean(lce.argmax(1) == c.argmax(1)))
    acc_lce = float(np.mean(lce.argmax(1) == data.y_test))
    acc_c = float(np.mean(c.argmax(1) == data.y_test))
    out = {
        "model": args.model,
        "dataset": dataset,
        "n": int(len(x)),
        "agreement": agree,
        "lce_accuracy": acc_lce,
        "c_accuracy": acc_c,
        "accuracy_diff_pp": round(100 * (acc_c - acc_lce), 4),
        "max_abs_diff": float(np.max(np.abs(lce - c))),
        "kernels": args.kernels or "host default",
    }
    print(json.dumps(out, indent=2))
    return 0 if agree >= 0.999 and abs(acc_c - acc_lce) <= 0.0005 else 1


if __name__ == "__main__":
    sys.exit(main())

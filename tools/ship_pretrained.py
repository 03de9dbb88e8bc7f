#!/usr/bin/env python3
"""Ship finished training runs as edgebnn's pretrained models.

For each RUN_DIR (written by ``edgebnn train``): name it
``DATASET-MODEL-PRECISION`` (``fashion_mnist`` becomes ``fashion-mnist``),
copy its ``model.h5``, convert it (binary dense layers rewritten as binary
convolutions), verify the .tflite against the Keras model on the dataset's
full test set, and write ``<name>.h5``, ``<name>.tflite`` and the updated
``index.json`` into the destination (default: ``edgebnn/pretrained/``).
Every file is written atomically; a run that fails verification is not
shipped.

Each model.h5 is checked before it is loaded (edgebnn.modelcheck): one with a
Lambda layer, a serialized function or a class outside Keras and Larq is refused
unless --trust-model-code is given.

With ``--int8 NAME...`` it instead adds the full-integer form of models
already shipped: ``edgebnn convert NAME --int8`` (int8 I/O and int8 float
layers, calibrated on 500 seeded training images), verified against the Keras
model on the full test set with the int8 thresholds below, written as
``<name>-int8.tflite`` and recorded under the entry's ``int8`` key; it is then
shipped as the model ``<name>-int8``.

Usage:
    python tools/ship_pretrained.py RUN_DIR... [--dest DIR] [--data-dir DIR] [--trust-model-code]
    python tools/ship_pretrained.py --int8 NAME... [--dest DIR] [--data-dir DIR]
"""

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from edgebnn import rundir  # noqa: E402
from edgebnn.errors import EdgeBnnError, ModelError, VerificationError  # noqa: E402
from edgebnn.io import atomic_write_files, atomic_write_text  # noqa: E402

DEFAULT_DEST = REPO / "edgebnn" / "pretrained"


def pretrained_name(config: dict) -> str:
    """``DATASET-MODEL-PRECISION`` of a run configuration.

    Raises:
        ModelError: the configuration lacks one of the three keys.
    """
    missing = [k for k in ("dataset", "model", "precision") if not config.get(k)]
    if missing:
        raise ModelError(f"the run configuration lacks {', '.join(missing)}; found keys {sorted(config)}")
    return f"{str(config['dataset']).replace('_', '-')}-{config['model']}-{config['precision']}"


def _test_accuracy(run_dir: Path) -> float:
    path = run_dir / rundir.METRICS
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{run_dir} is not a finished run: cannot read {path}: {exc}") from exc
    if "test_accuracy" not in metrics:
        raise ModelError(f"{path} has no 'test_accuracy'; found keys {sorted(metrics)}")
    return float(metrics["test_accuracy"])


def ship_run(run_dir, dest, *, data_dir=None, target="arm64", trust_model_code=False, log=print) -> dict:
    """Convert, verify and copy one run into ``dest``; return its index entry.

    Raises:
        UnsafeModelError: model.h5 would run code and ``trust_model_code`` is false.
        ModelError: not a finished run directory.
        VerificationError: the .tflite does not match the Keras model.
    """
    from edgebnn.config import read_run_config
    from edgebnn.convert import conversion_report, convert_model, load_keras_model
    from edgebnn.datasets import load_dataset
    from edgebnn.verify import verify

    run_dir, dest = Path(run_dir), Path(dest)
    if not rundir.is_run_dir(run_dir):
        raise ModelError(f"{run_dir} is not a run directory (no {rundir.CONFIG})")
    keras_file = run_dir / rundir.MODEL
    if not keras_file.is_file():
        raise ModelError(f"{run_dir} is not a finished run: {keras_file} is missing")
    config = read_run_config(run_dir)
    name = pretrained_name(config)
    accuracy = _test_accuracy(run_dir)

    log(f"{name}: converting {keras_file}")
    model = load_keras_model(keras_file, trust_model_code=trust_model_code)
    conv = convert_model(model, target=target)
    report = conversion_report(conv.tflite)
    log(f"{name}: {report['file_size']:,} bytes; verifying on the full {config['dataset']} test set")
    ds = load_dataset(config["dataset"], data_dir=data_dir)
    result = verify(model, conv.tflite, ds.x_test, ds.y_test)
    if not result.passed:
        raise VerificationError(f"{name} ({run_dir}) is not shipped: " + "; ".join(result.failures))

    keras_name, tflite_name = f"{name}.h5", f"{name}.tflite"
    atomic_write_files({dest / keras_name: keras_file.read_bytes(), dest / tflite_name: conv.tflite})
    entry = {
        "name": name,
        "dataset": ds.name,
        "model": config["model"],
        "precision": config["precision"],
        "test_accuracy": accuracy,
        "keras": keras_name,
        "tflite": tflite_name,
        "tflite_size": report["file_size"],
        "tflite_sha256": report["sha256"],
        "target": target,
        "ops_by_type": report["ops_by_type"],
        "weight_bytes": report["weight_bytes"],
        "rewritten_dense": list(conv.rewritten),
        "verify": result.to_dict(),
        "config": config,
    }
    log(
        f"{name}: keras {100 * result.keras_accuracy:.2f}%, tflite {100 * result.tflite_accuracy:.2f}%, "
        f"agreement {result.agreement:.4f} on {result.n}"
    )
    return entry


#: An int8 model's top-1 may differ from its float Keras model's where int8
#: rounding moves a value across a sign or an argmax; these are the accepted
#: figures on the full test set (the float form must agree to 0.999).
INT8_MIN_AGREEMENT = 0.99
INT8_MAX_ACC_DIFF_PP = 0.5


def ship_int8(name, dest, *, data_dir=None, target="arm64", log=print) -> dict:
    """Add the full-integer form of the shipped model ``name`` in ``dest``;
    return its updated index entry.

    Raises:
        ModelError: ``name`` is not in ``dest/index.json``.
        VerificationError: the int8 model misses the int8 thresholds.
    """
    from edgebnn.convert import conversion_report, convert_model, load_keras_model, representative_inputs
    from edgebnn.datasets import load_dataset
    from edgebnn.verify import verify

    dest = Path(dest)
    index = json.loads((dest / "index.json").read_text())
    entry = next((e for e in index if e.get("name") == name), None)
    if entry is None:
        known = ", ".join(e.get("name", "?") for e in index)
        raise ModelError(f"no shipped model named '{name}' in {dest / 'index.json'}; shipped: {known}")
    model = load_keras_model(dest / entry["keras"])
    ds = load_dataset(entry["dataset"], data_dir=data_dir)
    n_cal = 500
    log(f"{name}: int8 conversion, calibrated on {n_cal} seeded training images")
    conv = convert_model(model, target=target, int8=True, representative=representative_inputs(ds.x_train, n_cal))
    report = conversion_report(conv.tflite)
    result = verify(model, conv.tflite, ds.x_test, ds.y_test, min_agreement=INT8_MIN_AGREEMENT,
                    max_accuracy_diff_pp=INT8_MAX_ACC_DIFF_PP)
    if not result.passed:
        raise VerificationError(f"{name} int8 is not shipped: " + "; ".join(result.failures))
    tflite_name = f"{name}-int8.tflite"
    atomic_write_files({dest / tflite_name: conv.tflite})
    entry = dict(entry, int8={
        "tflite": tflite_name,
        "tflite_size": report["file_size"],
        "tflite_sha256": report["sha256"],
        "ops_by_type": report["ops_by_type"],
        "weight_bytes": report["weight_bytes"],
        "calibration": f"{n_cal} training images (edgebnn.convert.representative_inputs, seed 0)",
        "test_accuracy": result.tflite_accuracy,
        "verify": result.to_dict(),
    })
    log(f"{name}-int8: keras {100 * result.keras_accuracy:.2f}%, int8 tflite "
        f"{100 * result.tflite_accuracy:.2f}%, agreement {result.agreement:.4f} on {result.n}")
    return entry


def update_index(dest, entries) -> Path:
    """Merge ``entries`` into ``dest/index.json`` (same name replaces), sorted, atomically."""
    path = Path(dest) / "index.json"
    current = json.loads(path.read_text()) if path.is_file() else []
    if not isinstance(current, list):
        raise ModelError(f"{path} should hold a JSON list of models; found {type(current).__name__}")
    names = {e["name"] for e in entries}
    merged = [e for e in current if e.get("name") not in names] + list(entries)
    merged.sort(key=lambda e: e["name"])
    atomic_write_text(path, json.dumps(merged, indent=2, sort_keys=True) + "\n")
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="*", metavar="RUN_DIR")
    parser.add_argument("--int8", nargs="+", metavar="NAME", default=[],
                        help="add the full-integer form of these shipped models")
    parser.add_argument("--dest", default=str(DEFAULT_DEST), help="where to write the models and index.json")
    parser.add_argument("--data-dir", help="directory searched first for the datasets")
    parser.add_argument("--target", default="arm64")
    parser.add_argument("--trust-model-code", action="store_true",
                        help="load model.h5 files even if they hold Lambda layers or custom classes "
                             "(they run code stored in the file)")
    args = parser.parse_args(argv)

    def log(msg):
        print(msg, file=sys.stderr)

    if not args.run_dirs and not args.int8:
        parser.error("give RUN_DIRs to ship, or --int8 NAME...")
    entries = []
    try:
        for name in args.int8:
            entries.append(ship_int8(name, args.dest, data_dir=args.data_dir, target=args.target, log=log))
        for run in args.run_dirs:
            entries.append(ship_run(run, args.dest, data_dir=args.data_dir, target=args.target,
                                    trust_model_code=args.trust_model_code, log=log))
    except EdgeBnnError as exc:
        log(f"error: {exc}")
        if entries:
            update_index(args.dest, entries)
            log(f"shipped before the error: {', '.join(e['name'] for e in entries)}")
        return 1
    path = update_index(args.dest, entries)
    log(f"updated {path}: {', '.join(e['name'] for e in entries)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``edgebnn convert``: a trained model to a .tflite plus its conversion report."""

from pathlib import Path

import click

from edgebnn.cli._common import (
    echo_json,
    handle_errors,
    load_user_model,
    model_code_options,
    render_table,
    status,
)

_TARGETS = ("arm32", "arm64", "x86_64", "xcore")  # edgebnn.convert.TARGETS, kept import-free


def _default_outputs(ref, output):
    from edgebnn import rundir

    if output:
        out = Path(output)
        return out, out.with_suffix(".json")
    if ref.kind == "run_dir":
        return Path(ref.run_dir) / rundir.TFLITE, Path(ref.run_dir) / rundir.TFLITE_REPORT
    if ref.kind == "pretrained":
        return Path(f"{ref.source}.tflite"), Path(f"{ref.source}.json")
    src = Path(ref.keras_path)
    base = src.parent / src.name if src.is_dir() else src.with_suffix("")
    return base.with_name(base.name + ".tflite"), base.with_name(base.name + ".json")


@click.command()
@click.argument("model_arg", metavar="RUN_DIR|MODEL_FILE|PRETRAINED_NAME")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Output .tflite (the report goes beside it as .json).")
@click.option("--lce-target", "target", type=click.Choice(_TARGETS), default="arm64", show_default=True,
              help="LCE's flatbuffer flavour (its 'arm' flatbuffer serves arm32, arm64 and x86_64). "
                   "Not a build target: those are `export`/`bench`/`firmware --target`.")
@click.option("--int8", is_flag=True, help="Full int8 conversion of a float model (needs its dataset for calibration).")
@click.option("--no-rewrite-dense", "no_rewrite", is_flag=True,
              help="Keep binary QuantDense layers as LCE leaves them (float FULLY_CONNECTED).")
@click.option("--dataset", help="Dataset for int8 calibration when the model's own is unknown.")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Directory searched first for the dataset.")
@model_code_options
@click.option("--json", "json_", is_flag=True, help="Print the conversion report as JSON.")
@handle_errors
def convert(model_arg, output, target, int8, no_rewrite, dataset, data_dir, trust, custom_module, json_):
    """Convert a trained model to TFLite (LCE for Larq models).

    Writes model.tflite and model.json (ops by type, binary vs float ops,
    tensors, bytes of weights by kind) into RUN_DIR, or beside a model file.
    Binary dense layers are rewritten into binary convolutions first.
    """
    from edgebnn import __version__
    from edgebnn.convert import (
        conversion_report,
        convert_model,
        dataset_of,
        is_larq_model,
        representative_inputs,
    )
    from edgebnn.errors import ConversionError, ModelError
    from edgebnn.io import atomic_write_files
    from edgebnn.pretrained import resolve_model

    ref = resolve_model(model_arg)
    if ref.kind == "tflite":
        raise ModelError(f"'{model_arg}' is already a .tflite; expected a run directory, a Keras model "
                         "(.h5, .keras, SavedModel folder) or a pretrained model name")
    if ref.keras_path is None:
        raise ModelError(f"'{model_arg}' has no Keras model to convert (looked for model.h5)")
    status(f"loading {ref.keras_path}")
    model = load_user_model(ref.keras_path, trust=trust, custom_module=custom_module)

    representative = None
    ds_name = dataset_of(ref, dataset)
    if int8:
        if is_larq_model(model):
            raise ConversionError(f"--int8 applies to float models only; '{model_arg}' has larq quantized layers")
        if not ds_name:
            raise ConversionError(
                f"--int8 needs a representative dataset to calibrate '{model_arg}', and its dataset is "
                "unknown (no run config.yml); pass --dataset NAME"
            )
        from edgebnn.datasets import load_dataset

        status(f"loading {ds_name} for int8 calibration")
        ds = load_dataset(ds_name, data_dir=data_dir)
        representative = representative_inputs(ds.x_train)

    status(f"converting for {target}" + (" (int8)" if int8 else ""))
    conv = convert_model(model, target=target, int8=int8, representative=representative,
                         rewrite_dense=not no_rewrite)
    report = conversion_report(conv.tflite)
    report.update(
        source=str(model_arg),
        keras_path=str(ref.keras_path),
        dataset=ds_name,
        keras_params=int(model.count_params()),
        conversion=conv.to_dict(),
        edgebnn_version=__version__,
    )
    tflite_path, json_path = _default_outputs(ref, output)
    report["tflite_path"] = str(tflite_path)
    import json

    # both files or neither: a new .tflite never sits beside the old report
    try:
        atomic_write_files({
            tflite_path: conv.tflite,
            json_path: (json.dumps(report, indent=2, sort_keys=True) + "\n").encode("utf-8"),
        })
    except OSError as exc:
        raise ConversionError(
            f"cannot write {tflite_path} and {json_path}: {exc.strerror or exc}; "
            "neither file was replaced"
        ) from exc
    status(f"wrote {tflite_path} and {json_path}")
    if json_:
        out = dict(report)
        out["json_path"] = str(json_path)
        echo_json(out)
        return
    w = report["weight_bytes"]
    rows = [
        ("file", f"{tflite_path} ({report['file_size']:,} bytes)"),
        ("converter", f"{conv.converter} ({target})" + (", int8" if conv.int8 else "")),
        ("ops", ", ".join(f"{k} x{v}" for k, v in report["ops_by_type"].items())),
        ("ops by precision", ", ".join(f"{k} {v}" for k, v in report["ops_by_precision"].items() if v)),
        ("tensors", report["n_tensors"]),
        ("binary filters", f"{w['binary_filters']:,} B"),
        ("float weights", f"{w['float_weights']:,} B"),
        ("int8 weights", f"{w['int8_weights']:,} B"),
        ("other constants", f"{w['other_constants']:,} B"),
        ("dense -> bconv", ", ".join(conv.rewritten) or "-"),
    ]
    click.echo(render_table(("", "value"), rows))

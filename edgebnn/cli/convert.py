"""``edgebnn convert``: a trained model to a .tflite plus its conversion report."""

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


@click.command()
@click.argument("model_arg", metavar="RUN_DIR|MODEL_FILE|PRETRAINED_NAME")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Output .tflite (the report goes beside it as .json).")
@click.option("--lce-target", "target", type=click.Choice(_TARGETS), default="arm64", show_default=True,
              help="LCE's flatbuffer flavour (its 'arm' flatbuffer serves arm32, arm64 and x86_64). "
                   "Not a build target: those are `export`/`bench`/`firmware --target`.")
@click.option("--int8", is_flag=True,
              help="Full int8: int8 input, output and float layers, calibrated on the dataset "
                   "(BNNs keep their binary layers bitpacked).")
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
        conversion_record,
        convert_model,
        default_outputs,
        representative_inputs,
    )
    from edgebnn.errors import ConversionError
    from edgebnn.io import atomic_write_files
    from edgebnn.modelref import ModelRef

    ref = ModelRef.resolve(model_arg)
    keras_path = ref.require_keras("convert")
    status(f"loading {keras_path}")
    model = load_user_model(keras_path, trust=trust, custom_module=custom_module)

    representative = None
    ds_name = dataset or ref.dataset
    if int8:
        ds_name = ref.require_dataset("--int8 calibration on representative inputs", dataset)
        from edgebnn.datasets import load_dataset

        status(f"loading {ds_name} for int8 calibration")
        ds = load_dataset(ds_name, data_dir=data_dir)
        representative = representative_inputs(ds.x_train)

    status(f"converting for {target}" + (" (int8)" if int8 else ""))
    conv = convert_model(model, target=target, int8=int8, representative=representative,
                         rewrite_dense=not no_rewrite)
    report = conversion_record(conv, ref, keras_path=keras_path, dataset=ds_name,
                               keras_params=model.count_params(), version=__version__)
    tflite_path, json_path = default_outputs(ref, output)
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

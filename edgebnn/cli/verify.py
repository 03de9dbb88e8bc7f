"""``edgebnn verify``: the converted .tflite against the trained Keras model."""

import click

from edgebnn.cli._common import (
    echo_json,
    handle_errors,
    load_user_model,
    model_code_options,
    render_table,
    status,
)


@click.command()
@click.argument("model_arg", metavar="RUN_DIR|PRETRAINED_NAME|MODEL_FILE")
@click.option("--tflite", "tflite_path", type=click.Path(dir_okay=False), help="The .tflite to check (default: RUN_DIR/model.tflite, or the shipped one).")
@click.option("--dataset", help="Dataset to test on (default: the run's or the shipped model's).")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Directory searched first for the dataset.")
@click.option("--limit", type=click.IntRange(min=1), help="Use only the first N test images (default: all).")
@click.option("--min-agreement", type=click.FloatRange(0, 1), default=0.999, show_default=True)
@click.option("--max-acc-diff", type=click.FloatRange(min=0), default=0.1, show_default=True,
              help="Largest accepted accuracy difference, in percentage points.")
@click.option("--atol", type=click.FloatRange(min=0), default=None,
              help="Largest difference of an output value that counts as equal (covers Keras vs LCE "
                   "float rounding). Default: 1e-3; no output-value check for a model with int8 outputs, "
                   "whose quantized outputs differ by more.")
@model_code_options
@click.option("--json", "json_", is_flag=True, help="Print the figures as one JSON object.")
@handle_errors
def verify(model_arg, tflite_path, dataset, data_dir, limit, min_agreement, max_acc_diff, atol, trust, custom_module, json_):
    """Evaluate the Keras model and its .tflite on the test set and compare.

    Exits non-zero when top-1 agreement is below --min-agreement, when
    fewer than that fraction of inputs have all outputs within --atol, or
    when the accuracies differ by more than --max-acc-diff percentage points.
    """
    from pathlib import Path

    from edgebnn.datasets import load_dataset
    from edgebnn.errors import ModelError
    from edgebnn.modelref import ModelRef
    from edgebnn.verify import verify as run_verify

    ref = ModelRef.resolve(model_arg)
    keras_path = ref.require_keras("verify against", hint="pass the .tflite with --tflite")
    ds_name = ref.require_dataset("verify", dataset)
    if tflite_path is None:
        tflite = ref.require_tflite("verify")
    elif not Path(tflite_path).is_file():
        raise ModelError(f"--tflite {tflite_path}: no such file")
    else:
        tflite = tflite_path
    from edgebnn.graph import load_graph

    load_graph(tflite)  # fail fast on a file that is not a flatbuffer
    status(f"loading {ds_name}")
    ds = load_dataset(ds_name, data_dir=data_dir)
    x, y = ds.x_test, ds.y_test
    if limit:
        x, y = x[:limit], y[:limit]
    status(f"loading {keras_path}")
    model = load_user_model(keras_path, trust=trust, custom_module=custom_module)
    status(f"evaluating on {len(y)} test images of {ds.name}")
    result = run_verify(model, str(tflite), x, y, min_agreement=min_agreement,
                        max_accuracy_diff_pp=max_acc_diff, atol="auto" if atol is None else atol)
    if json_:
        out = result.to_dict()
        out.update(dataset=ds.name, keras_path=str(keras_path), tflite_path=str(tflite))
        echo_json(out)
    else:
        rows = [
            ("test images", f"{result.n} ({ds.name})"),
            ("Keras accuracy", f"{100 * result.keras_accuracy:.2f}%"),
            (".tflite accuracy", f"{100 * result.tflite_accuracy:.2f}%"),
            ("difference", f"{result.accuracy_diff_pp:+.2f} pp"),
            ("top-1 agreement", f"{result.agreement:.4f} ({result.disagreements} differ)"),
            ("max |output diff|", f"{result.max_abs_diff:.3g} ("
                                  + (f"{result.output_mismatches} above {result.atol:g})" if result.atol is not None
                                     else "not checked: quantized outputs)")),
            ("result", "PASS" if result.passed else "FAIL"),
        ]
        click.echo(render_table(("", "value"), rows))
    result.check(keras_path=keras_path, tflite_path=tflite)

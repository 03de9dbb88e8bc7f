"""``edgebnn pretrained``: the models shipped with edgebnn."""

import click

from edgebnn.cli._common import echo_json, handle_errors, render_table

_FIELDS = ("name", "dataset", "model", "precision", "io", "test_accuracy", "keras_path", "tflite_path")


@click.command()
@click.option("--json", "json_", is_flag=True, help="Print a JSON list of the shipped models.")
@handle_errors
def pretrained(json_):
    """List the shipped pretrained models.

    Every command that takes a RUN_DIR or model file also takes one of these
    names (DATASET-MODEL-PRECISION; a -int8 suffix names a full-integer form).
    """
    from pathlib import Path

    from edgebnn.pretrained import list_pretrained

    models = list_pretrained()
    if json_:
        echo_json([{k: getattr(p, k) for k in _FIELDS} for p in models])
        return
    if not models:
        click.echo("no pretrained models are shipped in this build")
        return
    rows = []
    for p in models:
        size = Path(p.tflite_path).stat().st_size if Path(p.tflite_path).is_file() else None
        rows.append((p.name, p.dataset, p.model, p.precision, p.io, f"{100 * p.test_accuracy:.2f}%",
                     f"{size / 1024:.1f}" if size else "missing"))
    click.echo(render_table(("name", "dataset", "model", "precision", "I/O", "test acc", "tflite KiB"), rows))

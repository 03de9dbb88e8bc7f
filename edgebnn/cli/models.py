"""``edgebnn models``."""

import click

from edgebnn.cli._common import echo_json, handle_errors, render_table

_SHAPES = {"vgg-small": (32, 32, 3)}


def _parse_shape(value):
    try:
        dims = tuple(int(v) for v in value.lower().replace("x", ",").split(","))
    except ValueError as exc:
        raise click.BadParameter(f"expected H,W,C (e.g. 28,28,1), found '{value}'",
                                 param_hint="--input-shape") from exc
    if len(dims) != 3 or min(dims) < 1:
        raise click.BadParameter(f"expected three positive sizes H,W,C, found '{value}'",
                                 param_hint="--input-shape")
    return dims


@click.command("models")
@click.argument("names", nargs=-1)
@click.option("--precision", "precisions", multiple=True,
              type=click.Choice(["binary", "binary-weights", "ternary", "float"]),
              help="Precision(s) to show (default: binary and float).")
@click.option("--input-shape", help="H,W,C (default: 28,28,1; 32,32,3 for vgg-small).")
@click.option("--classes", "num_classes", type=click.IntRange(min=2), default=10, show_default=True)
@click.option("--json", "json_", is_flag=True, help="Print a JSON list.")
@handle_errors
def models(names, precisions, input_shape, num_classes, json_):
    """List the model zoo: parameters, binary-MAC ratio and size (larq's figures)."""
    from edgebnn.zoo import list_models, model_info

    names = names or tuple(list_models())
    precisions = precisions or ("binary", "float")
    shape = _parse_shape(input_shape) if input_shape else None
    infos = [
        model_info(name, precision=p, input_shape=shape or _SHAPES.get(name, (28, 28, 1)),
                   num_classes=num_classes)
        for name in names for p in precisions
    ]
    if json_:
        echo_json([i.to_dict() for i in infos])
        return
    rows = [
        (i.name, i.precision, "x".join(map(str, i.input_shape)), f"{i.parameters:,}",
         f"{i.macs / 1e6:.2f}M", f"{100 * i.binary_mac_ratio:.1f}%", f"{i.size_bytes / 1024:.1f}",
         i.description)
        for i in infos
    ]
    click.echo(render_table(
        ("model", "precision", "input", "params", "MACs", "binary MACs", "size KiB", "description"),
        rows))

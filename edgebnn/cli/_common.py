"""Helpers shared by the CLI commands: error mapping, status output, JSON."""

import functools
import json
import sys

import click

from edgebnn.errors import EdgeBnnError


def handle_errors(func):
    """Turn :class:`EdgeBnnError` into :class:`click.ClickException`.

    An ``OSError`` that no library function turned into an
    :class:`EdgeBnnError` (a full disk, a permission denied while writing an
    output) becomes one line too: the path and the system's reason.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except EdgeBnnError as exc:
            raise click.ClickException(str(exc)) from exc
        except OSError as exc:
            raise click.ClickException(os_error_message(exc)) from exc

    return wrapper


def os_error_message(exc: OSError) -> str:
    """One line for an ``OSError``: ``PATH: reason`` (both paths for a rename)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    paths = [str(p) for p in (exc.filename, exc.filename2) if p]
    return f"{' -> '.join(paths)}: {reason}" if paths else reason


def status(message: str) -> None:
    """Print a status line to stderr, keeping stdout parseable."""
    click.echo(message, err=True)


def echo_json(obj) -> None:
    """Print one JSON object to stdout."""
    click.echo(json.dumps(obj, indent=2, sort_keys=True, default=_default))


def _default(value):
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        np = None
    if np is not None:
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return str(value)


def render_table(headers, rows) -> str:
    """Format rows as a plain aligned text table."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def is_tty() -> bool:
    return sys.stderr.isatty()


def model_code_options(func):
    """``--custom-objects MODULE`` and ``--trust-model-code``: how a Keras model file may be loaded."""
    func = click.option("--trust-model-code", "trust", is_flag=True,
                        help="Load the model even if it holds Lambda layers, custom classes or is a SavedModel "
                             "(they run code stored in the file; only for files you trust).")(func)
    return click.option("--custom-objects", "custom_module", default=None, metavar="MODULE",
                        help="Import MODULE (your code) for the model's own classes and functions: its "
                             "CUSTOM_OBJECTS dict, else its public classes and functions.")(func)


def load_user_model(path, *, trust: bool, custom_module):
    """Load a Keras model file as :func:`model_code_options` asked (imports TensorFlow)."""
    from edgebnn.convert import custom_objects_from, load_keras_model

    objs = custom_objects_from(custom_module) if custom_module else None
    return load_keras_model(path, trust_model_code=trust, custom_objects=objs)

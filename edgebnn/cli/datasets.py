"""``edgebnn datasets``: which datasets are on this machine, and where.

Also home of :func:`tqdm_progress`, the download progress bar other commands
pass to :func:`edgebnn.datasets.load_dataset`. Importing this module never
imports TensorFlow.
"""

import contextlib
from pathlib import Path

import click

from edgebnn.cli._common import echo_json, handle_errors, render_table, status
from edgebnn.errors import EdgeBnnError


@contextlib.contextmanager
def tqdm_progress():
    """Yield a ``progress(file_name, done, total)`` callback drawing tqdm bars on stderr.

    Example:
        >>> with tqdm_progress() as progress:  # doctest: +SKIP
        ...     ds = load_dataset("cifar10", progress=progress)
    """
    from tqdm import tqdm

    bars = {}

    def progress(name, done, total):
        bar = bars.get(name)
        if bar is None:
            bar = bars[name] = tqdm(
                total=total, desc=name, unit="B", unit_scale=True, unit_divisor=1024, leave=True
            )
        bar.update(done - bar.n)
        if total is not None and done >= total:
            bar.close()

    try:
        yield progress
    finally:
        for bar in bars.values():
            bar.close()


def _size(n: int) -> str:
    if not n:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _describe(name, data_dir):
    from edgebnn.datasets import check_headers, find_dataset, read_counts

    loc = find_dataset(name, data_dir=data_dir)
    row = loc.to_dict()
    row["n_train"], row["n_test"], row["error"], row["problems"] = None, None, None, []
    if loc.found:
        try:
            row["n_train"], row["n_test"] = read_counts(loc)
        except EdgeBnnError as exc:  # a corrupt header is shown, not fatal for the listing
            row["error"] = str(exc)
        row["problems"] = check_headers(loc)
        if row["error"] is None and row["problems"]:
            row["error"] = row["problems"][0]
    row["corrupt"] = bool(row["error"] or row["problems"])
    return row


@click.command("datasets")
@click.option(
    "--data-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="A directory searched before $EDGEBNN_DATA, the Keras cache and /usr/share/datasets.",
)
@click.option(
    "--download",
    "download",
    multiple=True,
    metavar="NAME",
    help="Download NAME into the Keras cache if it is not found (repeatable).",
)
@click.option("--json", "json_", is_flag=True, help="Print JSON instead of a table.")
@handle_errors
def datasets(data_dir, download, json_):
    """List datasets: found or not, where, format, train/test counts, size on disk.

    Counts come from file headers (nothing is decoded); CIFAR-10's pickles
    have no cheap header, so its counts show as '-'. Headers and file lengths
    are checked on the way: a damaged set shows as 'corrupt', with the reason.
    """
    from edgebnn.datasets import canonical_name, download_dataset, list_datasets

    for name in download:
        canonical = canonical_name(name)
        status(f"fetching {canonical} ...")
        with tqdm_progress() as progress:
            loc = download_dataset(canonical, data_dir=data_dir, progress=progress)
        status(f"{canonical}: {loc.path} ({loc.format})")

    rows = [_describe(name, data_dir) for name in list_datasets()]
    if json_:
        echo_json({"datasets": rows})
        return
    table = []
    for r in rows:
        table.append(
            [
                r["name"],
                ("corrupt" if r["corrupt"] else "yes") if r["found"] else "no",
                r["format"] or "-",
                "-" if r["n_train"] is None else r["n_train"],
                "-" if r["n_test"] is None else r["n_test"],
                _size(r["size_bytes"]),
                r["path"] or f"(searched {len(r['searched'])} places)",
            ]
        )
    click.echo(render_table(["dataset", "found", "format", "train", "test", "size", "where"], table))
    for r in rows:
        for problem in dict.fromkeys(([r["error"]] if r["error"] else []) + r["problems"]):
            status(f"warning: {r['name']}: {problem}")
        for note in r["notes"]:
            status(f"note: {r['name']}: {note}")

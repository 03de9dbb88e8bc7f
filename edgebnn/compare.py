"""Compare finished training runs: how far is a BNN from its float twin?

Reads ``config.yml`` and ``metrics.json`` of each RUN_DIR (no TensorFlow).

Example:
    >>> from edgebnn.compare import compare_runs
    >>> rows = compare_runs(["runs/mnist-bcnn-binary", "runs/mnist-bcnn-float"])  # doctest: +SKIP
    >>> rows[0].test_accuracy  # doctest: +SKIP
    0.99...
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from edgebnn import rundir
from edgebnn.errors import RunDirError

COLUMNS = ("run", "model", "precision", "loss", "optimizer", "test acc %", "macro F1 %",
           "size KiB", "epochs", "wall time")


@dataclass(frozen=True)
class RunSummary:
    """The figures of one finished run."""

    run_dir: str
    name: str
    dataset: str
    model: str
    precision: str
    loss: str
    optimizer: str
    test_accuracy: float
    macro_f1: float
    model_size_bytes: float
    parameters: int
    epochs: int
    wall_time_s: float
    best_val_accuracy: Optional[float] = None

    @property
    def label(self) -> str:
        return f"{self.name}"

    def to_dict(self):
        return asdict(self)

    def row(self):
        return (
            self.name, self.model, self.precision, self.loss, self.optimizer,
            f"{100 * self.test_accuracy:.2f}", f"{100 * self.macro_f1:.2f}",
            f"{self.model_size_bytes / 1024:.1f}", self.epochs, _fmt_time(self.wall_time_s),
        )


def _fmt_time(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def load_run(path) -> RunSummary:
    """Read one finished run.

    Raises:
        RunDirError: the directory is missing, not a run, or not finished
            (no ``metrics.json``), or a file is unreadable.
    """
    import yaml

    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"{path}: no such run directory")
    cfg_path, met_path = path / rundir.CONFIG, path / rundir.METRICS
    if not cfg_path.is_file():
        raise RunDirError(f"{path}: not a run directory (no {rundir.CONFIG})")
    if not met_path.is_file():
        raise RunDirError(
            f"{path}: the run has not finished (no {rundir.METRICS}); finish it with "
            f"`edgebnn train --resume --out {path}`"
        )
    try:
        cfg = yaml.safe_load(cfg_path.read_text()) or {}
        met = json.loads(met_path.read_text())
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise RunDirError(f"{path}: cannot read {cfg_path.name}/{met_path.name}: {exc}") from exc
    try:
        best_val = None
        hist = path / rundir.HISTORY
        if hist.is_file():
            from edgebnn.train import read_history

            vals = [r.get("val_accuracy") for r in read_history(hist)]
            vals = [v for v in vals if v is not None]
            best_val = max(vals) if vals else None
        return RunSummary(
            run_dir=str(path),
            name=path.name,
            dataset=str(cfg.get("dataset", met.get("dataset", "?"))),
            model=str(cfg.get("model", met.get("model", "?"))),
            precision=str(cfg.get("precision", met.get("precision", "?"))),
            loss=str(cfg.get("loss", "?")),
            optimizer=str(cfg.get("optimizer", "?")),
            test_accuracy=float(met["test_accuracy"]),
            macro_f1=float(met["macro_f1"]),
            model_size_bytes=float(met["model_size_bytes"]),
            parameters=int(met["parameters"]),
            epochs=int(met["epochs"]),
            wall_time_s=float(met["wall_time_s"]),
            best_val_accuracy=best_val,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RunDirError(f"{met_path}: missing or malformed field {exc}") from exc


def compare_runs(paths) -> list:
    """Load every run of ``paths`` (order kept).

    Raises:
        RunDirError: no paths, or one of them is not a finished run.
    """
    paths = list(paths)
    if not paths:
        raise RunDirError("no RUN_DIR given to compare")
    return [load_run(p) for p in paths]


def comparison_table(runs) -> tuple:
    """``(headers, rows)`` for :func:`edgebnn.cli._common.render_table`."""
    return COLUMNS, [r.row() for r in runs]


def comparison_figure(runs):
    """A bar chart of test accuracy and macro F1 per run."""
    from edgebnn.plots import compare_figure

    return compare_figure([{"label": r.label, "test_accuracy": r.test_accuracy,
                            "macro_f1": r.macro_f1} for r in runs])

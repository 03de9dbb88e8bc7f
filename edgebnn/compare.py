"""Compare finished training runs: how far is a BNN from its float twin?

Reads ``config.yml`` and ``metrics.json`` of each RUN_DIR (no TensorFlow). A
directory that is not a run itself (a sweep's OUT) stands for the runs below
it. Runs whose configurations differ only in ``seed`` form a cell, shown as
the mean +- sample standard deviation (n - 1 in the denominator) of its runs.

Example:
    >>> from edgebnn.compare import compare_runs
    >>> rows = compare_runs(["runs/mnist-bcnn-binary", "runs/mnist-bcnn-float"])  # doctest: +SKIP
    >>> rows[0].test_accuracy  # doctest: +SKIP
    0.99...
"""

import json
import math
from dataclasses import asdict, dataclass, field
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
    seed: Optional[int] = None
    config: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def label(self) -> str:
        return f"{self.name}"

    def to_dict(self):
        d = asdict(self)
        d.pop("config")
        return d

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
            seed=int(cfg["seed"]) if "seed" in cfg else None,
            config=dict(cfg),
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
    return [load_run(p) for p in expand_run_dirs(paths)]


def expand_run_dirs(paths) -> list:
    """Each path that is a run directory, or the run directories below it (sorted).

    Raises:
        RunDirError: a path is missing, or a directory holds no run at all.
    """
    out = []
    for p in map(Path, paths):
        if rundir.is_run_dir(p) or not p.is_dir():
            out.append(p)  # load_run names what is wrong with a missing one
            continue
        below = sorted(c.parent for c in p.rglob(rundir.CONFIG) if rundir.is_run_dir(c.parent))
        if not below:
            raise RunDirError(f"{p}: not a run directory (no {rundir.CONFIG}) and no runs below it")
        out.extend(below)
    return out


@dataclass(frozen=True)
class CellSummary:
    """The runs of one cell (configurations equal but for the seed), mean and std."""

    label: str
    cell: dict
    runs: tuple
    seeds: tuple
    test_accuracy_mean: float
    test_accuracy_std: Optional[float]
    macro_f1_mean: float
    macro_f1_std: Optional[float]
    epochs_mean: float
    wall_time_s_mean: float
    wall_time_s_std: Optional[float]

    @property
    def n(self) -> int:
        return len(self.runs)

    def to_dict(self):
        return {**asdict(self), "n": self.n}

    def row(self):
        return (
            self.label, self.n,
            _pm(self.test_accuracy_mean, self.test_accuracy_std, 100),
            _pm(self.macro_f1_mean, self.macro_f1_std, 100),
            f"{self.epochs_mean:g}",
            _fmt_time(self.wall_time_s_mean)
            + (f" +- {_fmt_time(self.wall_time_s_std)}" if self.wall_time_s_std is not None else ""),
        )


CELL_COLUMNS = ("cell", "n", "test acc % (mean +- std)", "macro F1 %", "epochs", "wall time")


def mean_std(values):
    """``(mean, sample std)``; the std is None for fewer than two values.

    >>> mean_std([1.0, 3.0])
    (2.0, 1.4142135623730951)
    """
    values = [float(v) for v in values]
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _pm(mean, std, scale):
    return f"{scale * mean:.2f} +- {scale * std:.2f}" if std is not None else f"{scale * mean:.2f}"


def _cell_key(run: RunSummary):
    return tuple(sorted((k, repr(v)) for k, v in run.config.items() if k != "seed"))


def group_runs(runs) -> list:
    """Group runs that differ only in ``seed``; cells in order of first appearance.

    A cell's label names the configuration keys that differ between cells
    (``precision=binary loss=hinge``), or the first run's name when there is
    one cell.
    """
    groups = {}
    for run in runs:
        groups.setdefault(_cell_key(run), []).append(run)
    keys = list(groups)
    varying = []
    if len(keys) > 1:
        all_keys = {k for key in keys for k, _ in key}
        for k in sorted(all_keys):
            seen = {dict(key).get(k) for key in keys}
            if len(seen) > 1:
                varying.append(k)
        order = [k for k in ("dataset", "model", "precision", "loss", "optimizer") if k in varying]
        varying = order + [k for k in varying if k not in order]
    cells = []
    for key in keys:
        members = groups[key]
        cfg = members[0].config
        cell = {k: cfg.get(k) for k in varying}
        label = " ".join(f"{k}={v}" for k, v in cell.items()) or members[0].name
        acc = mean_std([r.test_accuracy for r in members])
        f1 = mean_std([r.macro_f1 for r in members])
        wall = mean_std([r.wall_time_s for r in members])
        cells.append(CellSummary(
            label=label, cell=cell, runs=tuple(r.run_dir for r in members),
            seeds=tuple(r.seed for r in members),
            test_accuracy_mean=acc[0], test_accuracy_std=acc[1],
            macro_f1_mean=f1[0], macro_f1_std=f1[1],
            epochs_mean=mean_std([r.epochs for r in members])[0],
            wall_time_s_mean=wall[0], wall_time_s_std=wall[1],
        ))
    return cells


def has_repeats(cells) -> bool:
    """True when some cell holds more than one run (seeds were repeated)."""
    return any(c.n > 1 for c in cells)


def cell_table(cells) -> tuple:
    """``(headers, rows)`` of the cells, for ``render_table``."""
    return CELL_COLUMNS, [c.row() for c in cells]


def cells_figure(cells):
    """Accuracy bars with std error bars per cell, and every run's curves overlaid."""
    from edgebnn.plots import sweep_figure
    from edgebnn.train import read_history

    series = []
    for cell in cells:
        histories = []
        for run_dir in cell.runs:
            path = Path(run_dir) / rundir.HISTORY
            histories.append(read_history(path) if path.is_file() else [])
        series.append({"label": cell.label, "acc_mean": cell.test_accuracy_mean,
                       "acc_std": cell.test_accuracy_std, "f1_mean": cell.macro_f1_mean,
                       "f1_std": cell.macro_f1_std, "histories": histories})
    return sweep_figure(series)


def comparison_table(runs) -> tuple:
    """``(headers, rows)`` for :func:`edgebnn.cli._common.render_table`."""
    return COLUMNS, [r.row() for r in runs]


def comparison_figure(runs):
    """A bar chart of test accuracy and macro F1 per run."""
    from edgebnn.plots import compare_figure

    return compare_figure([{"label": r.label, "test_accuracy": r.test_accuracy,
                            "macro_f1": r.macro_f1} for r in runs])

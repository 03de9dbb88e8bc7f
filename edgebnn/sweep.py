"""Experiment grids: one training run per cell of a grid and per repeat.

A sweep crosses lists of values of some configuration keys (``precision``,
``loss``, ``optimizer``, ``model``, ``lr``, ...) and repeats each cell
``repeat`` times with the seeds ``seed, seed + 1, ...``. Every run gets its
own run directory ``OUT/<key>-<value>_.../seed-<seed>``, written by
:func:`edgebnn.train.train` as a single run is (with its figures).

Resumable run by run: a run whose directory holds ``metrics.json`` (written
last by ``train``) is finished and skipped; a run directory without it was
interrupted and continues from its last checkpoint (``train(resume=True)``);
a missing one starts fresh.

Example:
    >>> from edgebnn.config import TrainConfig
    >>> from edgebnn.sweep import plan_sweep
    >>> plan = plan_sweep(TrainConfig(dataset="mnist", epochs=1),
    ...                   {"precision": ["binary", "float"], "loss": ["crossentropy", "hinge"]},
    ...                   repeat=2, out="runs/grid")
    >>> len(plan), plan[0].run_dir.as_posix()
    (8, 'runs/grid/precision-binary_loss-crossentropy/seed-0')
    >>> plan[1].config.seed
    1
"""

import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

from edgebnn import rundir
from edgebnn.config import TrainConfig, load_config
from edgebnn.errors import ConfigError, RunDirError
from edgebnn.io import atomic_write_text

GRID_KEYS = ("model", "precision", "loss", "optimizer", "lr", "batch_size", "lr_schedule",
             "augment", "normalize")
MANIFEST = "sweep.json"


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep: a cell of the grid and a repeat."""

    cell: tuple  # ((key, value), ...) in the grid's key order
    repeat: int
    config: TrainConfig
    run_dir: Path

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.cell) + f" seed={self.config.seed}"

    def state(self) -> str:
        """``done`` (metrics.json present), ``partial`` (a run dir without it) or ``new``."""
        if (self.run_dir / rundir.METRICS).is_file():
            return "done"
        if self.run_dir.exists() and any(self.run_dir.iterdir()):
            return "partial"
        return "new"

    def to_dict(self):
        return {"cell": dict(self.cell), "repeat": self.repeat, "seed": self.config.seed,
                "run_dir": str(self.run_dir)}


@dataclass(frozen=True)
class SweepEvent:
    """What :func:`run_sweep` is doing: ``start`` of a run (``action`` is
    ``train``, ``resume`` or ``skip``) and ``done`` with its metrics."""

    kind: str
    index: int  # 1-based
    total: int
    run: SweepRun
    action: str
    metrics: Optional[dict] = None


def _dir_part(value) -> str:
    text = str(value)
    return re.sub(r"[^A-Za-z0-9.+=-]+", "-", text).strip("-") or "x"


def plan_sweep(base: TrainConfig, grid: Dict[str, Sequence], *, repeat: int, out) -> List[SweepRun]:
    """Every run of the grid, cells in the order of ``grid``'s keys and values.

    Args:
        base: the configuration every run starts from (its ``seed`` is the base seed).
        grid: key -> list of values; keys from :data:`GRID_KEYS`.
        repeat: runs per cell; repeat ``r`` trains with ``base.seed + r``.
        out: the sweep directory.

    Raises:
        ConfigError: an unknown key, an empty or duplicated value list, a
            repeat below 1, or a cell whose configuration is invalid (named).
    """
    if repeat < 1:
        raise ConfigError(f"--repeat must be >= 1; found {repeat}")
    for key, values in grid.items():
        if key not in GRID_KEYS:
            raise ConfigError(f"cannot sweep '{key}'; sweepable keys: {', '.join(GRID_KEYS)}")
        if not values:
            raise ConfigError(f"the sweep over '{key}' has no values")
        if len(set(map(str, values))) != len(values):
            raise ConfigError(f"the sweep over '{key}' repeats a value: {', '.join(map(str, values))}")
    out = Path(out)
    keys = list(grid)
    runs = []
    for values in itertools.product(*(grid[k] for k in keys)):
        cell = tuple(zip(keys, values))
        name = "_".join(f"{k}-{_dir_part(v)}" for k, v in cell) or "base"
        try:
            cell_cfg = base.replace(**dict(cell))
        except ConfigError as exc:
            raise ConfigError(f"sweep cell {' '.join(f'{k}={v}' for k, v in cell)}: {exc}") from exc
        for r in range(repeat):
            cfg = cell_cfg.replace(seed=base.seed + r)
            runs.append(SweepRun(cell=cell, repeat=r, config=cfg,
                                 run_dir=out / name / f"seed-{cfg.seed}"))
    return runs


def check_plan(plan: Sequence[SweepRun]) -> None:
    """Check, before training, that every existing run directory belongs to the plan.

    Raises:
        RunDirError: a run directory is not a run directory, or its
            ``config.yml`` differs from the planned configuration (named).
    """
    for run in plan:
        if run.state() == "new":
            continue
        cfg_path = run.run_dir / rundir.CONFIG
        if not cfg_path.is_file():
            raise RunDirError(
                f"{run.run_dir} exists but is not a run directory (no {rundir.CONFIG}); "
                "move it away or choose another --out"
            )
        stored = load_config(cfg_path).to_dict()
        diff = {k: (stored[k], v) for k, v in run.config.to_dict().items() if stored.get(k) != v}
        if diff:
            details = "; ".join(f"{k}: run has {a!r}, sweep asks {b!r}" for k, (a, b) in sorted(diff.items()))
            raise RunDirError(
                f"{run.run_dir} was trained with another configuration ({details}); "
                "run the sweep with the same flags, or choose another --out"
            )


def write_manifest(out, base: TrainConfig, grid: dict, repeat: int, plan) -> Path:
    """Write ``OUT/sweep.json``: the base configuration, the grid and the runs."""
    path = Path(out) / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({
        "base": base.to_dict(), "grid": {k: list(v) for k, v in grid.items()},
        "repeat": repeat, "runs": [r.to_dict() for r in plan],
    }, indent=1) + "\n")
    return path


def run_sweep(plan: Sequence[SweepRun], *, data_dir=None, dataset=None, callbacks=(),
              deterministic=False) -> Iterator[SweepEvent]:
    """Train every run of ``plan`` that is not finished; yield progress events.

    The dataset is loaded once (or ``dataset`` is used) and handed to every
    run; Keras's global state is cleared between runs.

    Args:
        plan: from :func:`plan_sweep` (checked with :func:`check_plan` first).
        data_dir: a directory searched first for the dataset.
        dataset: an already loaded :class:`edgebnn.datasets.Dataset`.
        callbacks: tf-keras callbacks for every run (e.g. a progress bar).
        deterministic: TensorFlow's deterministic ops (for tests).

    Yields:
        :class:`SweepEvent` ``start`` and ``done`` for each run, in order.
    """
    from edgebnn._tf import import_tf
    from edgebnn.train import train

    plan = list(plan)
    check_plan(plan)
    total = len(plan)
    _, tf_keras, _ = import_tf()
    for index, run in enumerate(plan, 1):
        state = run.state()
        action = {"done": "skip", "partial": "resume", "new": "train"}[state]
        yield SweepEvent("start", index, total, run, action)
        if action == "skip":
            metrics = json.loads((run.run_dir / rundir.METRICS).read_text())
        else:
            if dataset is None:
                from edgebnn.datasets import load_dataset

                dataset = load_dataset(run.config.dataset, data_dir=data_dir)
            tf_keras.backend.clear_session()
            result = train(run.config, run.run_dir, resume=action == "resume", dataset=dataset,
                           callbacks=callbacks, deterministic=deterministic)
            metrics = result.metrics
        yield SweepEvent("done", index, total, run, action, metrics)

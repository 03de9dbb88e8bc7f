"""Shipped pretrained models, and resolution of a user's model argument.

Every command that takes a RUN_DIR or a model file also takes a shipped
model's name, ``DATASET-MODEL-PRECISION`` (e.g. ``mnist-bcnn-binary``).
The files live beside this module and are listed in ``index.json``.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from edgebnn import resources, rundir
from edgebnn.errors import ModelError

HERE = resources.pretrained_dir()
INDEX = HERE / "index.json"


@dataclass(frozen=True)
class Pretrained:
    """One shipped model."""

    name: str
    dataset: str
    model: str
    precision: str
    test_accuracy: float
    keras_path: str
    tflite_path: str
    config: Optional[dict] = None

    def to_dict(self):
        return asdict(self)


def list_pretrained() -> list:
    """Return the shipped models, sorted by name."""
    if not INDEX.is_file():
        return []
    entries = json.loads(INDEX.read_text())
    out = []
    for e in entries:
        out.append(
            Pretrained(
                name=e["name"],
                dataset=e["dataset"],
                model=e["model"],
                precision=e["precision"],
                test_accuracy=float(e["test_accuracy"]),
                keras_path=str(HERE / e["keras"]),
                tflite_path=str(HERE / e["tflite"]),
                config=e.get("config"),
            )
        )
    return sorted(out, key=lambda p: p.name)


def get_pretrained(name: str) -> Pretrained:
    """Look a shipped model up by name.

    Raises:
        ModelError: no shipped model has that name (the message lists them).
    """
    for p in list_pretrained():
        if p.name == name:
            return p
    known = ", ".join(p.name for p in list_pretrained()) or "(none shipped)"
    raise ModelError(f"no pretrained model named '{name}'; shipped models: {known}")


@dataclass(frozen=True)
class ModelRef:
    """What a MODEL / RUN_DIR argument resolved to.

    ``kind`` is ``"run_dir"``, ``"pretrained"``, ``"keras"`` (a .h5/.keras
    file or SavedModel folder) or ``"tflite"``. Paths that do not exist are
    None.
    """

    kind: str
    source: str
    keras_path: Optional[str] = None
    tflite_path: Optional[str] = None
    run_dir: Optional[str] = None
    pretrained: Optional[Pretrained] = None


def resolve_model(arg) -> ModelRef:
    """Resolve a RUN_DIR, model file, SavedModel folder or shipped model name.

    Raises:
        ModelError: ``arg`` is none of these; the message says what was looked for.
    """
    path = Path(arg)
    if path.is_dir():
        if rundir.is_run_dir(path):
            keras = path / rundir.MODEL
            tfl = path / rundir.TFLITE
            return ModelRef(
                kind="run_dir",
                source=str(arg),
                keras_path=str(keras) if keras.is_file() else None,
                tflite_path=str(tfl) if tfl.is_file() else None,
                run_dir=str(path),
            )
        if (path / "saved_model.pb").is_file():
            return ModelRef(kind="keras", source=str(arg), keras_path=str(path))
        raise ModelError(
            f"'{arg}' is a directory but neither a run directory (no {rundir.CONFIG}) "
            "nor a SavedModel folder (no saved_model.pb)"
        )
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".tflite":
            return ModelRef(kind="tflite", source=str(arg), tflite_path=str(path))
        if suffix in (".h5", ".keras", ".hdf5"):
            return ModelRef(kind="keras", source=str(arg), keras_path=str(path))
        raise ModelError(
            f"'{arg}' has suffix '{path.suffix}'; expected .tflite, .h5, .keras, "
            "a SavedModel folder, a run directory or a pretrained model name"
        )
    names = [p.name for p in list_pretrained()]
    if str(arg) in names:
        p = get_pretrained(str(arg))
        return ModelRef(
            kind="pretrained",
            source=str(arg),
            keras_path=p.keras_path if Path(p.keras_path).is_file() else None,
            tflite_path=p.tflite_path if Path(p.tflite_path).is_file() else None,
            pretrained=p,
        )
    raise ModelError(
        f"'{arg}' is not a file, a run directory or a pretrained model name; "
        f"pretrained models: {', '.join(names) or '(none shipped)'}"
    )

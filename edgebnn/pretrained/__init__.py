"""Shipped pretrained models.

Every command that takes a RUN_DIR or a model file also takes a shipped
model's name, ``DATASET-MODEL-PRECISION`` (e.g. ``mnist-bcnn-binary``); the
argument is resolved by :mod:`edgebnn.modelref`.
The files live beside this module and are listed in ``index.json``.
"""

import json
from dataclasses import asdict, dataclass
from typing import Optional

from edgebnn import resources
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
    #: ``float`` or ``int8``: the .tflite's input and output type (the
    #: ``-int8`` forms are full-integer; their Keras model is the float one's).
    io: str = "float"

    def to_dict(self):
        return asdict(self)


def list_pretrained() -> list:
    """Return the shipped models, sorted by name."""
    if not INDEX.is_file():
        return []
    entries = json.loads(INDEX.read_text())
    out = []
    for e in entries:
        forms = [(e["name"], e["tflite"], e["test_accuracy"], "float")]
        if e.get("int8"):  # the full-integer form: the same Keras model, an int8 .tflite
            q = e["int8"]
            forms.append((f"{e['name']}-int8", q["tflite"], q["test_accuracy"], "int8"))
        for name, tflite, accuracy, io in forms:
            out.append(Pretrained(name=name, dataset=e["dataset"], model=e["model"],
                                  precision=e["precision"], test_accuracy=float(accuracy),
                                  keras_path=str(HERE / e["keras"]), tflite_path=str(HERE / tflite),
                                  config=e.get("config"), io=io))
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

"""What a MODEL argument names: a run directory, a model file or a shipped model.

Every command that takes a model (``convert``, ``verify``, ``export``,
``bench``, ``firmware build``) resolves it here, once, so that they accept
the same forms and fail with the same messages:

- a run directory written by ``edgebnn train`` (``config.yml``, ``model.h5``,
  and ``model.tflite`` once converted);
- a Keras file (``.h5``, ``.hdf5``, ``.keras``) or a SavedModel folder;
- a ``.tflite`` flatbuffer (or a file of another suffix that carries the
  TFLite file identifier ``TFL3``);
- the name of a shipped model (``edgebnn pretrained``), e.g. ``mnist-bcnn-binary``.

A :class:`ModelRef` knows the Keras file, the flatbuffer, the run's
configuration and the dataset, and raises :class:`~edgebnn.errors.ModelError`
naming the argument, what was looked for and what was found when a command
needs a part that is missing.

Nothing here imports TensorFlow.

Example:
    >>> ref = ModelRef.resolve("mnist-bcnn-binary")
    >>> ref.kind, ref.dataset
    ('pretrained', 'mnist')
    >>> ref.require_tflite("export").endswith("mnist-bcnn-binary.tflite")
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from edgebnn import rundir
from edgebnn.errors import ModelError

KERAS_SUFFIXES = (".h5", ".hdf5", ".keras")
TFLITE_SUFFIX = ".tflite"
#: The flatbuffer file identifier of a TFLite model, at bytes 4..8.
TFLITE_IDENTIFIER = b"TFL3"
SAVED_MODEL = "saved_model.pb"
KINDS = ("run_dir", "pretrained", "keras", "tflite")
_FORMS = "a run directory, a .h5/.keras file, a SavedModel folder, a .tflite or a pretrained model name"


@dataclass(frozen=True)
class ModelRef:
    """A resolved MODEL argument.

    Attributes:
        arg: the argument as the user gave it (used in messages).
        kind: one of :data:`KINDS`.
        keras_path: the Keras model (file or SavedModel folder), or None when
            there is none.
        tflite_path: the converted flatbuffer, or None when there is none yet.
        run_dir: the run directory (``kind == "run_dir"``), else None.
        pretrained: the shipped model's index entry (``kind == "pretrained"``).
        expected_tflite: where the flatbuffer is looked for when
            ``tflite_path`` is None (for messages), else None.
        expected_keras: where the Keras model is looked for when
            ``keras_path`` is None, else None.
    """

    arg: str
    kind: str
    keras_path: Optional[str] = None
    tflite_path: Optional[str] = None
    run_dir: Optional[str] = None
    pretrained: Optional[object] = None
    expected_tflite: Optional[str] = None
    expected_keras: Optional[str] = None

    # ------------------------------------------------------------ resolving

    @classmethod
    def resolve(cls, arg) -> "ModelRef":
        """Resolve a run directory, model file, SavedModel folder or shipped model name.

        A path that exists wins over a shipped model of the same name.

        Raises:
            ModelError: ``arg`` is none of these; the message says what was
                looked for and what was found.
        """
        text = str(arg)
        path = Path(text)
        if path.is_dir():
            return cls._from_directory(text, path)
        if path.is_file():
            return cls._from_file(text, path)
        return cls._from_name(text)

    @classmethod
    def _from_directory(cls, arg: str, path: Path) -> "ModelRef":
        if rundir.is_run_dir(path):
            keras, tfl = path / rundir.MODEL, path / rundir.TFLITE
            return cls(
                arg=arg, kind="run_dir", run_dir=str(path),
                keras_path=str(keras) if keras.is_file() else None,
                tflite_path=str(tfl) if tfl.is_file() else None,
                expected_keras=None if keras.is_file() else str(keras),
                expected_tflite=None if tfl.is_file() else str(tfl),
            )
        if (path / SAVED_MODEL).is_file():
            return cls(arg=arg, kind="keras", keras_path=str(path), expected_tflite=None)
        raise ModelError(
            f"'{arg}' is a directory but neither a run directory (no {rundir.CONFIG}) nor a "
            f"SavedModel folder (no {SAVED_MODEL}); found {_listing(path)}"
        )

    @classmethod
    def _from_file(cls, arg: str, path: Path) -> "ModelRef":
        suffix = path.suffix.lower()
        if suffix == TFLITE_SUFFIX or (suffix not in KERAS_SUFFIXES and _has_tflite_identifier(path)):
            return cls(arg=arg, kind="tflite", tflite_path=str(path))
        if suffix in KERAS_SUFFIXES:
            return cls(arg=arg, kind="keras", keras_path=str(path))
        raise ModelError(
            f"'{arg}' has suffix '{path.suffix}' and no TFLite file identifier; expected "
            f"{_FORMS}"
        )

    @classmethod
    def _from_name(cls, arg: str) -> "ModelRef":
        from edgebnn import pretrained

        shipped = pretrained.list_pretrained()
        for p in shipped:
            if p.name == arg:
                keras_ok, tfl_ok = Path(p.keras_path).is_file(), Path(p.tflite_path).is_file()
                return cls(
                    arg=arg, kind="pretrained", pretrained=p,
                    keras_path=p.keras_path if keras_ok else None,
                    tflite_path=p.tflite_path if tfl_ok else None,
                    expected_keras=None if keras_ok else p.keras_path,
                    expected_tflite=None if tfl_ok else p.tflite_path,
                )
        names = ", ".join(p.name for p in shipped) or "(none shipped)"
        raise ModelError(
            f"'{arg}' is not a file, a run directory or a pretrained model name "
            f"(no file or directory {Path(arg).resolve()} exists); pretrained models: {names}"
        )

    # ------------------------------------------------------------ its parts

    @property
    def description(self) -> str:
        """How messages name this model: ``run directory 'runs/a'``, ``shipped model 'x'``, ``'m.h5'``."""
        if self.kind == "run_dir":
            return f"run directory '{self.arg}'"
        if self.kind == "pretrained":
            return f"shipped model '{self.arg}'"
        return f"'{self.arg}'"

    @property
    def config(self) -> Optional[dict]:
        """The run's ``config.yml`` (a run directory), a shipped model's
        configuration from its index entry, else None.

        Raises:
            ConfigError: the run's ``config.yml`` is unreadable or malformed.
        """
        if self.kind == "run_dir":
            from edgebnn.config import read_run_config

            return read_run_config(self.run_dir)
        if self.kind == "pretrained":
            return getattr(self.pretrained, "config", None)
        return None

    @property
    def dataset(self) -> Optional[str]:
        """The dataset the model was trained on when it is recorded (a run's
        ``config.yml``, a shipped model's index entry), else None."""
        if self.kind == "pretrained":
            return self.pretrained.dataset
        if self.kind == "run_dir":
            value = self.config.get("dataset")
            return str(value) if value else None
        return None

    def guess_dataset(self) -> Optional[str]:
        """:attr:`dataset`, else for a file: the dataset of the run directory
        it sits in, or the dataset its name starts with (as shipped models
        are named, ``mnist-bcnn-binary``). None when nothing fits.

        Raises:
            ConfigError: a run's ``config.yml`` is unreadable or malformed.
        """
        known = self.dataset
        if known or self.kind not in ("keras", "tflite"):
            return known
        path = Path(self.tflite_path or self.keras_path)
        if rundir.is_run_dir(path.parent):
            from edgebnn.config import read_run_config

            value = read_run_config(path.parent).get("dataset")
            return str(value) if value else None
        return dataset_from_name(path.stem)

    # ------------------------------------------------------------ requiring parts

    def require_dataset(self, purpose: str, override=None) -> str:
        """``override`` (a ``--dataset`` flag), else :attr:`dataset`, for ``purpose``.

        Raises:
            ModelError: neither is known; the message asks for ``--dataset``.
        """
        name = override or self.dataset
        if name:
            return str(name)
        if self.kind == "run_dir":
            why = f"{Path(self.run_dir) / rundir.CONFIG} has no 'dataset'"
        else:
            why = "only a run directory's config.yml or a shipped model records it"
        raise ModelError(
            f"{purpose} needs the dataset of {self.description}, which is unknown ({why}); "
            "pass --dataset NAME"
        )

    def require_keras(self, purpose: str, *, hint: str = "") -> str:
        """The Keras model's path, for ``purpose`` (``"convert"``, ``"verify"``).

        Raises:
            ModelError: the argument is a .tflite, or names a run / shipped
                model without its Keras file (the message says where it was
                looked for).
        """
        if self.keras_path:
            return self.keras_path
        if self.kind == "tflite":
            msg = (f"'{self.arg}' is a .tflite (an already converted model); {purpose} needs the Keras "
                   f"model it came from: a run directory, a .h5/.keras file, a SavedModel folder or a "
                   f"pretrained model name")
        else:
            msg = (f"{self.description} has no Keras model to {purpose} "
                   f"(looked for {self.expected_keras})")
        raise ModelError(msg + (f"; {hint}" if hint else ""))

    def require_tflite(self, purpose: str) -> str:
        """The converted flatbuffer's path, for ``purpose`` (``"export"``, ``"bench"``).

        Raises:
            ModelError: the argument is a Keras model, or a run / shipped model
                not converted yet; the message says how to convert it.
        """
        if self.tflite_path:
            return self.tflite_path
        if self.kind == "keras":
            raise ModelError(
                f"'{self.arg}' is a Keras model, and {purpose} needs a converted .tflite: run "
                f"`edgebnn convert {self.arg}` and pass the .tflite it writes"
            )
        if self.kind == "run_dir":
            raise ModelError(
                f"{self.description} has no converted model (looked for {self.expected_tflite}); "
                f"convert it first: edgebnn convert {self.arg}"
            )
        raise ModelError(
            f"{self.description} has no .tflite in this installation (looked for {self.expected_tflite}); "
            "reinstall edgebnn"
        )


def dataset_from_name(stem: str) -> Optional[str]:
    """The dataset a model file's name starts with, or None.

    A shipped model's name gives its dataset; otherwise the longest dataset
    name (or its dashed form) followed by ``-`` or ``_`` wins.

    Example:
        >>> dataset_from_name("fashion-mnist-lenet5-float")
        'fashion_mnist'
        >>> dataset_from_name("my_model") is None
        True
    """
    from edgebnn import datasets, pretrained

    for p in pretrained.list_pretrained():
        if p.name == stem:
            return p.dataset
    names = []
    for name in datasets.list_datasets():
        names += [name, name.replace("_", "-")]
    low = stem.lower()
    for name in sorted(names, key=len, reverse=True):
        if low.startswith(name + "-") or low.startswith(name + "_"):
            return datasets.canonical_name(name)
    return None


def _has_tflite_identifier(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return False
    return len(head) == 8 and head[4:8] == TFLITE_IDENTIFIER


def _listing(path: Path, limit: int = 5) -> str:
    try:
        names = sorted(p.name for p in path.iterdir())
    except OSError as exc:
        return f"an unreadable directory ({exc.strerror or exc})"
    if not names:
        return "an empty directory"
    more = f", ... ({len(names)} entries)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more

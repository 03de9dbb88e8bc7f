"""CIFAR-10's python version: six pickled batches, in a folder or in the published tarball.

Batches are unpickled by :class:`_BatchUnpickler`, which builds only dicts,
lists, strings, numbers and numpy arrays, so a crafted pickle runs no code.
"""

import io
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np

from edgebnn.datasets.download import _download_file
from edgebnn.datasets.spec import _DatasetSpec
from edgebnn.errors import DatasetError
from edgebnn.io import atomic_directory

_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_MEMBERS = _CIFAR_TRAIN + ("test_batch", "batches.meta")

# The globals a CIFAR-10 batch pickle may name: numpy's array reconstruction
# (numpy 1.x and 2.x module names) and the bytes codec of protocol-2 pickles.
_PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    ("builtins", "bytearray"),
}


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that builds only dicts, lists, strings, numbers and numpy arrays."""

    def find_class(self, module, name):
        if (module, name) not in _PICKLE_ALLOWED:
            raise pickle.UnpicklingError(
                f"refers to {module}.{name}; a CIFAR-10 batch holds only dicts, lists and numpy arrays"
            )
        return super().find_class(module, name)


def _unpickle(raw: bytes, where: str) -> dict:
    try:
        obj = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:  # noqa: BLE001 - pickle raises many types; re-raised with cause
        raise DatasetError(
            f"{where} is not a readable CIFAR-10 pickle ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(obj, dict):
        raise DatasetError(f"{where}: expected a pickled dict, found {type(obj).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _cifar_batch(raw: bytes, where: str):
    d = _unpickle(raw, where)
    if "data" not in d or "labels" not in d:
        raise DatasetError(
            f"{where}: expected keys 'data' and 'labels', found {', '.join(map(str, d)) or 'none'}"
        )
    data, labels = d["data"], d["labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        found = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DatasetError(f"{where}: expected 'data' uint8 of shape (N, 3072), found {found}")
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != len(data):
        raise DatasetError(
            f"{where}: {len(data)} images but {labels.size} labels (shape {labels.shape})"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DatasetError(f"{where}: expected labels 0..9, found {labels.min()}..{labels.max()}")
    # Each row is 1024 red, 1024 green, 1024 blue values, each plane row-major.
    images = data.reshape(len(data), 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.int64)


def _cifar_raw_from_tar(path: Path) -> dict:
    raw = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in _CIFAR_MEMBERS and base not in raw:
                    raw[base] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DatasetError(
            f"{path} is not a readable CIFAR-10 tarball ({type(exc).__name__}: {exc})"
        ) from exc
    missing = [m for m in _CIFAR_MEMBERS[:-1] if m not in raw]
    if missing:
        raise DatasetError(
            f"{path}: expected members cifar-10-batches-py/{{{', '.join(_CIFAR_MEMBERS[:-1])}}}, "
            f"missing {', '.join(missing)}"
        )
    return raw


class _CifarPython(_DatasetSpec):
    """A dataset stored as CIFAR-10's python batches; ``remotes[0]`` is the tarball."""

    def read(self, match):
        if match.format == "cifar-python-tar":
            tar = match.files["tar"]
            raw = _cifar_raw_from_tar(tar)
            where = {m: f"{tar}:{m}" for m in raw}
        else:
            raw, where = {}, {}
            for m in _CIFAR_MEMBERS[:-1]:
                raw[m] = match.files[m].read_bytes()
                where[m] = str(match.files[m])
        train = [_cifar_batch(raw[m], where[m]) for m in _CIFAR_TRAIN]
        x_test, y_test = _cifar_batch(raw["test_batch"], where["test_batch"])
        x_train = np.concatenate([x for x, _ in train])
        y_train = np.concatenate([y for _, y in train])
        return x_train, y_train, x_test, y_test

    def fetch(self, cache: Path, progress):
        tar = cache / self.remotes[0].filename
        if not tar.is_file():
            _download_file(self.remotes[0], tar, progress)
        raw = _cifar_raw_from_tar(tar)
        for member, data in raw.items():  # refuse to extract something unreadable
            if member != "batches.meta":
                _cifar_batch(data, f"{tar}:{member}")
        with atomic_directory(cache / "cifar-10-batches-py", replace=True) as tmp:
            for member, data in raw.items():
                (tmp / member).write_bytes(data)

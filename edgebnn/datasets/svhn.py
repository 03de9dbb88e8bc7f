"""SVHN's cropped digits: a MATLAB v5 ``.mat`` file per split (``X`` 32x32x3xN, ``y`` in 1..10).

Reading needs scipy (the ``train`` extra); without it the counts are unknown
and loading raises :class:`~edgebnn.errors.MissingDependencyError`.
"""

from pathlib import Path

import numpy as np

from edgebnn.datasets.spec import _DatasetSpec
from edgebnn.errors import DatasetError, MissingDependencyError

def _scipy_io():
    try:
        import scipy.io
    except ImportError as exc:
        raise MissingDependencyError(
            "reading SVHN's .mat files needs scipy, which is not installed: "
            "pip install scipy (or pip install 'edgebnn[train]')"
        ) from exc
    return scipy.io


def _read_svhn_mat(path: Path):
    sio = _scipy_io()
    try:
        mat = sio.loadmat(str(path), variable_names=("X", "y"))
    except NotImplementedError as exc:  # MATLAB v7.3 files are HDF5
        raise DatasetError(
            f"{path} is a MATLAB v7.3 (HDF5) file; expected the MATLAB v5 .mat files SVHN publishes"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - scipy raises many types; re-raised with cause
        raise DatasetError(
            f"{path} is not a readable MATLAB v5 .mat file ({type(exc).__name__}: {exc})"
        ) from exc
    if "X" not in mat or "y" not in mat:
        found = ", ".join(k for k in mat if not k.startswith("__")) or "none"
        raise DatasetError(f"{path}: expected variables X and y, found {found}")
    x, y = mat["X"], mat["y"]
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise DatasetError(f"{path}: expected X uint8 of shape (32, 32, 3, N), found {x.dtype} {x.shape}")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != x.shape[3]:
        raise DatasetError(
            f"{path}: X holds {x.shape[3]} images but y has shape {y.shape}; expected ({x.shape[3]}, 1)"
        )
    y = y.astype(np.int64)
    if y.size and (y.min() < 1 or y.max() > 10):
        raise DatasetError(
            f"{path}: expected labels 1..10 (10 for the digit 0), found {y.min()}..{y.max()}"
        )
    images = np.ascontiguousarray(x.transpose(3, 0, 1, 2))
    return images, np.where(y == 10, 0, y)


class _SvhnMat(_DatasetSpec):
    """A dataset stored as SVHN's ``train`` and ``test`` ``.mat`` pair."""

    def read(self, match):
        x_train, y_train = _read_svhn_mat(match.files["train"])
        x_test, y_test = _read_svhn_mat(match.files["test"])
        return x_train, y_train, x_test, y_test

    def counts(self, match):
        try:
            sio = _scipy_io()
        except MissingDependencyError:
            return (None, None)
        out = []
        for role in ("train", "test"):
            path = match.files[role]
            try:
                shapes = {name: shape for name, shape, _ in sio.whosmat(str(path))}
            except Exception as exc:  # noqa: BLE001 - scipy raises many types; re-raised with cause
                raise DatasetError(f"{path}: cannot read the .mat headers ({exc})") from exc
            shape = shapes.get("X")
            out.append(int(shape[3]) if shape is not None and len(shape) == 4 else None)
        return tuple(out)

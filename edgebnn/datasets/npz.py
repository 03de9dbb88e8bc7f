"""Keras's ``mnist.npz``: the four MNIST arrays in one NumPy archive (no pickles allowed)."""

import zipfile
import zlib

import numpy as np

from edgebnn.datasets.spec import _check_split
from edgebnn.errors import DatasetError


def _read_mnist_npz(path, image_hw):
    """Read ``x_train, y_train, x_test, y_test`` as uint8 NHWC images and int64 labels."""
    keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in keys if k not in npz.files]
            if missing:
                raise DatasetError(
                    f"{path}: expected arrays {', '.join(keys)}, found {', '.join(npz.files) or 'none'}"
                )
            arrays = {k: npz[k] for k in keys}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path} is not a readable .npz archive ({exc})") from exc
    out = []
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim == 4 and x.shape[-1] == 1:
            x = x[..., 0]
        if x.dtype != np.uint8 or x.ndim != 3 or y.ndim != 1:
            raise DatasetError(
                f"{path}: expected x_{split} uint8 (N,{image_hw[0]},{image_hw[1]}) and y_{split} (N,), "
                f"found x_{split} {x.dtype} {x.shape} and y_{split} {y.dtype} {y.shape}"
            )
        _check_split(x, y, f"{path}[x_{split}]", f"{path}[y_{split}]", image_hw, split)
        out += [np.ascontiguousarray(x)[..., np.newaxis], y.astype(np.int64)]
    return tuple(out)



def _npz_counts(path) -> tuple:
    """``(n_train, n_test)`` from the label arrays alone."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return (len(npz["y_train"]), len(npz["y_test"]))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{path}: cannot read the label arrays ({exc})") from exc

"""Loading: find a dataset (downloading it when allowed) and read it into a :class:`Dataset`."""

import os
from dataclasses import dataclass, field

import numpy as np

from edgebnn.datasets.download import _reachable, _remote_urls
from edgebnn.datasets.registry import _spec
from edgebnn.datasets.search import (
    DatasetLocation,
    _locate,
    _not_found_message,
    keras_cache_dir,
)
from edgebnn.errors import DatasetError

ENV_OFFLINE = "EDGEBNN_OFFLINE"


@dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset in memory: ``uint8`` NHWC images and ``int64`` labels.

    Example:
        >>> ds = load_dataset("mnist")  # doctest: +SKIP
        >>> ds.x_train.shape, ds.input_shape, ds.num_classes  # doctest: +SKIP
        ((60000, 28, 28, 1), (28, 28, 1), 10)
    """

    name: str
    x_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    x_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    class_names: tuple
    source: str

    @property
    def input_shape(self) -> tuple:
        """``(H, W, C)`` of one image."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __repr__(self):
        return (
            f"Dataset(name={self.name!r}, train={len(self.y_train)}, test={len(self.y_test)}, "
            f"input_shape={self.input_shape}, source={self.source!r})"
        )


def load_dataset(name: str, *, data_dir=None, download=None, progress=None) -> Dataset:
    """Find (or download) and read a dataset.

    Images come back as ``uint8`` NHWC arrays exactly as stored (no scaling),
    labels as ``int64`` in ``0..9`` (SVHN's label 10 for the digit 0 becomes 0).
    Every file is checked: magic numbers, shapes, lengths and that images and
    labels pair up; nothing is silently shortened.

    Example:
        >>> ds = load_dataset("mnist", data_dir="../shared/data", download=False)  # doctest: +SKIP
        >>> ds.x_train.shape, ds.y_train.dtype  # doctest: +SKIP
        ((60000, 28, 28, 1), dtype('int64'))

    Args:
        name: ``mnist``, ``fashion_mnist`` (or ``fashion-mnist``), ``cifar10``, ``svhn``.
        data_dir: a directory searched before the standard places.
        download: True to download when not found, False never to, None to
            download only when the host can be reached (and ``$EDGEBNN_OFFLINE``
            is not set).
        progress: ``progress(file_name, bytes_done, bytes_total_or_None)``,
            called while downloading; the library itself prints nothing.

    Returns:
        A :class:`Dataset`.

    Raises:
        DatasetError: unknown name; not found (the message lists every place
            searched and the file names expected there); a download failed;
            a file is truncated or corrupt (the message names it).
        MissingDependencyError: SVHN's ``.mat`` files need scipy.
    """
    spec = _spec(name)
    loc, match = _locate(spec, data_dir)
    if match is None:
        loc, match = _download_if_allowed(spec, loc, data_dir, download, progress)
    x_train, y_train, x_test, y_test = spec.read(match)
    single = len(match.files) == 1
    return Dataset(
        name=spec.name,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        class_names=tuple(spec.class_names),
        source=str(next(iter(match.files.values()))) if single else str(match.directory),
    )


def download_dataset(name: str, *, data_dir=None, progress=None) -> DatasetLocation:
    """Download a dataset into the Keras cache unless it is already found.

    Returns:
        The dataset's :class:`DatasetLocation` after the download.

    Raises:
        DatasetError: the download failed (every URL tried is named).
    """
    spec = _spec(name)
    loc, match = _locate(spec, data_dir)
    if match is None:
        loc, match = _download_if_allowed(spec, loc, data_dir, True, progress)
    return loc


def _download_if_allowed(spec, loc, data_dir, download, progress):
    if download is False:
        raise DatasetError(_not_found_message(spec, loc, "Download: disabled (download=False)."))
    if download is None:
        if os.environ.get(ENV_OFFLINE, "").strip() not in ("", "0"):
            raise DatasetError(
                _not_found_message(spec, loc, f"Download: skipped, ${ENV_OFFLINE} is set.")
            )
        url = _remote_urls(spec.remotes[0])[0][0]
        ok, why = _reachable(url)
        if not ok:
            raise DatasetError(_not_found_message(spec, loc, f"Download: skipped, offline: {why}."))
    cache = keras_cache_dir()
    try:
        spec.fetch(cache, progress)
    except DatasetError as exc:
        raise DatasetError(_not_found_message(spec, loc, f"Download failed: {exc}")) from exc
    loc, match = _locate(spec, data_dir)
    if match is None:  # pragma: no cover - fetch() checks what it wrote
        raise DatasetError(
            _not_found_message(spec, loc, f"Download into {cache} did not produce the files.")
        )
    return loc, match

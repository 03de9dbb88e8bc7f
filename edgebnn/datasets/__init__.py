"""Datasets: find, download and load MNIST, Fashion-MNIST, CIFAR-10 and SVHN.

Every dataset is returned the same way: ``uint8`` images in NHWC layout and
``int64`` labels ``0..9``, read from the files the dataset's authors (or
Keras) publish, with no TensorFlow involved.

Where a dataset is looked for, in this order (the first complete set wins):

1. the ``data_dir`` argument (``--data-dir`` on the command line);
2. ``$EDGEBNN_DATA`` (one directory, or several joined by ``os.pathsep``);
3. the Keras cache, ``$KERAS_HOME/datasets`` or ``~/.keras/datasets``;
4. Debian's dataset packages, ``/usr/share/datasets``;
5. a download from the dataset's public URL into the Keras cache, when
   ``download`` is true, or when it is None and the host can be reached.

Under each of those roots a dataset may sit in its own folder
(``<root>/mnist/``, ``<root>/fashion-mnist/``, ``<root>/cifar-10-batches-py/``,
``<root>/svhn/``, torchvision's ``<root>/MNIST/raw/``...) or directly in the
root when its file names say which dataset it is (``mnist.npz``, the CIFAR-10
tarball, ``train_32x32.mat``). MNIST and Fashion-MNIST share their IDX file
names, so bare IDX files are taken only from a folder named after the dataset
or from an explicit ``data_dir`` that is not named after the other one.

Set ``$EDGEBNN_DATA_MIRROR`` to a base URL to download the upstream file
names from a mirror instead (the files must be byte-identical: their
checksums are still checked), and ``$EDGEBNN_OFFLINE=1`` to never download
unless asked to explicitly.

The package has one module per job: :mod:`~edgebnn.datasets.registry` (the
dataset descriptions), :mod:`~edgebnn.datasets.search` (finding files on
disk), :mod:`~edgebnn.datasets.download`, :mod:`~edgebnn.datasets.load`, and
one module per file format (:mod:`~edgebnn.datasets.idx`,
:mod:`~edgebnn.datasets.npz`, :mod:`~edgebnn.datasets.cifar`,
:mod:`~edgebnn.datasets.svhn`) beside their common base,
:mod:`~edgebnn.datasets.spec`. Everything public is imported from here.
"""

from edgebnn.datasets.download import ENV_MIRROR, ProgressCallback
from edgebnn.datasets.idx import MAX_IDX_BYTES, read_idx
from edgebnn.datasets.load import ENV_OFFLINE, Dataset, download_dataset, load_dataset
from edgebnn.datasets.registry import DATASETS, canonical_name, list_datasets, register_dataset
from edgebnn.datasets.search import (
    DEBIAN_ROOT,
    ENV_DATA,
    DatasetLocation,
    check_headers,
    find_dataset,
    keras_cache_dir,
    read_counts,
)

__all__ = [
    "DATASETS",
    "DEBIAN_ROOT",
    "Dataset",
    "DatasetLocation",
    "canonical_name",
    "download_dataset",
    "check_headers",
    "find_dataset",
    "keras_cache_dir",
    "list_datasets",
    "load_dataset",
    "read_counts",
    "read_idx",
    "register_dataset",
]

"""Writers of small dataset files in the published formats, for the tests.

IDX (MNIST, Fashion-MNIST), CIFAR-10's pickled python batches (in a tarball
or a folder) and SVHN's MATLAB v5 ``.mat`` pair, written byte by byte from
the published descriptions so the loaders are tested against the real layout.
"""

import gzip
import io
import pickle
import struct
import tarfile

import numpy as np

from edgebnn import datasets as D


def idx_bytes(arr, magic=None):
    arr = np.asarray(arr, dtype=np.uint8)
    magic = (0x800 | arr.ndim) if magic is None else magic
    return struct.pack(f">I{arr.ndim}I", magic, *arr.shape) + arr.tobytes()


def write_idx_set(folder, *, n_train=6, n_test=4, hw=(28, 28), seed=0, gz=True):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, *hw), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, *hw), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, arr in arrays.items():
        data = idx_bytes(arr)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return arrays


def cifar_rows(images):
    """(N,32,32,3) -> (N,3072) following the published layout, element by element:
    entry c*1024 + r*32 + col holds channel c of pixel (r, col)."""
    n = len(images)
    rows = np.zeros((n, 3072), dtype=np.uint8)
    for c in range(3):
        for r in range(32):
            for col in range(32):
                rows[:, c * 1024 + r * 32 + col] = images[:, r, col, c]
    return rows


def cifar_batch(images, labels):
    return pickle.dumps(
        {
            b"batch_label": b"testing batch",
            b"labels": [int(v) for v in labels],
            b"data": cifar_rows(images),
            b"filenames": [b"img_%d.png" % i for i in range(len(labels))],
        },
        protocol=2,
    )


def make_cifar(n=3, n_test=2, seed=1):
    """Five train batches of n images and a test batch; returns (files dict, x_train, y_train, x_test, y_test)."""
    rng = np.random.default_rng(seed)
    files, xs, ys = {}, [], []
    for i in range(1, 6):
        x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        y = np.full(n, i, dtype=np.int64)  # batch i holds class i: the order is visible
        files[f"data_batch_{i}"] = cifar_batch(x, y)
        xs.append(x)
        ys.append(y)
    x_test = rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8)
    y_test = np.arange(n_test, dtype=np.int64) % 10
    files["test_batch"] = cifar_batch(x_test, y_test)
    files["batches.meta"] = pickle.dumps(
        {b"label_names": [s.encode() for s in D.DATASETS["cifar10"].class_names], b"num_vis": 3072},
        protocol=2,
    )
    return files, np.concatenate(xs), np.concatenate(ys), x_test, y_test


def write_cifar_tar(path, files):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def write_cifar_dir(folder, files):
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)


def write_svhn(folder, *, n_train=5, n_test=3, seed=2):
    import scipy.io

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = (np.arange(n) % 10 + 1).astype(np.uint8).reshape(n, 1)  # 1..10, 10 = digit 0
        scipy.io.savemat(folder / f"{split}_32x32.mat", {"X": x, "y": y})
        out[split] = (x, y)
    return out


def write_cifar_split_tar(path, x_train, y_train, x_test, y_test):
    """A CIFAR-10 python tarball holding these arrays: the training images cut
    into the five ``data_batch_*`` in order, ``test_batch`` and ``batches.meta``."""
    files = {}
    for i, (x, y) in enumerate(zip(np.array_split(x_train, 5), np.array_split(y_train, 5)), 1):
        files[f"data_batch_{i}"] = cifar_batch(x, y)
    files["test_batch"] = cifar_batch(x_test, y_test)
    files["batches.meta"] = pickle.dumps(
        {b"label_names": [s.encode() for s in D.DATASETS["cifar10"].class_names], b"num_vis": 3072},
        protocol=2,
    )
    write_cifar_tar(path, files)


def write_svhn_split(path, x, digits):
    """One SVHN ``.mat`` split: ``X`` as (32, 32, 3, N), ``y`` as (N, 1) with 10 for the digit 0."""
    import scipy.io

    labels = np.where(np.asarray(digits) == 0, 10, digits).astype(np.uint8).reshape(-1, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"X": np.ascontiguousarray(np.transpose(x, (1, 2, 3, 0))), "y": labels})


def learnable_images(n, *, seed, num_classes=10, hw=(32, 32), channels=3):
    """uint8 images a small net learns in one epoch: class k is a colour of its
    own plus noise (invariant under crops and flips). Returns ``(x, y)``."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(20, 236, (num_classes, channels))
    y = rng.integers(0, num_classes, n).astype(np.int64)
    noise = rng.normal(0, 12, (n, *hw, channels))
    x = np.clip(colours[y][:, None, None, :] + noise, 0, 255).astype(np.uint8)
    return x, y

"""Tests for edgebnn.datasets and ``edgebnn datasets``.

Real MNIST and Fashion-MNIST come from ../shared/data; CIFAR-10 and SVHN
are written here, small, in their published formats (pickled batches in a
tarball or folder; MATLAB v5 .mat), and downloads are served by a local
http.server bound to 127.0.0.1.
"""

import functools
import gzip
import hashlib
import http.server
import io
import json
import pickle
import shutil
import struct
import subprocess
import sys
import threading
import zlib

import numpy as np
import pytest
from click.testing import CliRunner

from dataset_files import (
    cifar_batch,
    cifar_rows,
    idx_bytes,
    make_cifar,
    write_cifar_dir,
    write_cifar_tar,
    write_idx_set,
    write_svhn,
)
from edgebnn import datasets as D
from edgebnn.cli import main
from edgebnn.datasets import download as D_download
from edgebnn.datasets import search as D_search
from edgebnn.errors import DatasetError, MissingDependencyError

# Published label histograms of MNIST (LeCun et al.) and Fashion-MNIST (balanced).
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def pixel_mean_std(x):
    """Exact mean and std of uint8 pixels from their histogram (no float copy of the array)."""
    hist = np.bincount(x.ravel(), minlength=256).astype(np.float64)
    values = np.arange(256.0)
    mean = (hist * values).sum() / hist.sum()
    return mean, np.sqrt((hist * (values - mean) ** 2).sum() / hist.sum())


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No dataset anywhere: HOME, $EDGEBNN_DATA and the Debian root all point at empty dirs."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("EDGEBNN_DATA", "KERAS_HOME", "EDGEBNN_DATA_MIRROR", "EDGEBNN_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(D_search, "DEBIAN_ROOT", tmp_path / "debian")
    return tmp_path


@pytest.fixture(scope="module")
def mnist(shared_data):
    return D.load_dataset("mnist", data_dir=shared_data, download=False)


@pytest.fixture(scope="module")
def fashion(shared_data):
    return D.load_dataset("fashion-mnist", data_dir=shared_data, download=False)


# ---------------------------------------------------------------------------
# Real MNIST and Fashion-MNIST
# ---------------------------------------------------------------------------


def test_mnist_real_shapes_and_published_facts(mnist, shared_data):
    assert mnist.name == "mnist"
    assert mnist.x_train.shape == (60000, 28, 28, 1) and mnist.x_test.shape == (10000, 28, 28, 1)
    assert mnist.x_train.dtype == np.uint8 and mnist.y_train.dtype == np.int64
    assert mnist.input_shape == (28, 28, 1) and mnist.num_classes == 10
    assert np.bincount(mnist.y_train).tolist() == MNIST_TRAIN_COUNTS  # digit 1: 6742
    assert np.bincount(mnist.y_test).tolist() == MNIST_TEST_COUNTS
    assert mnist.y_train[:5].tolist() == [5, 0, 4, 1, 9]
    assert mnist.y_test[:5].tolist() == [7, 2, 1, 0, 4]
    # The normalisation constants everybody uses, 0.1307 and 0.3081.
    mean, std = pixel_mean_std(mnist.x_train)
    assert (round(mean / 255, 4), round(std / 255, 4)) == (0.1307, 0.3081)
    assert (int(mnist.x_train.min()), int(mnist.x_train.max())) == (0, 255)
    assert mnist.source == str(shared_data / "mnist")


def test_fashion_mnist_real_shapes_and_published_facts(fashion):
    assert fashion.name == "fashion_mnist"
    assert fashion.x_train.shape == (60000, 28, 28, 1) and fashion.x_test.shape == (10000, 28, 28, 1)
    assert fashion.x_test.dtype == np.uint8 and fashion.y_test.dtype == np.int64
    assert np.bincount(fashion.y_train).tolist() == [6000] * 10
    assert np.bincount(fashion.y_test).tolist() == [1000] * 10
    assert fashion.class_names[9] == "Ankle boot" and fashion.y_train[0] == 9
    mean, std = pixel_mean_std(fashion.x_train)  # Zalando's 0.2860 and 0.3530
    assert (round(mean / 255, 4), round(std / 255, 4)) == (0.2860, 0.3530)
    # Not MNIST by mistake (the two share file names): Zalando's first labels.
    assert fashion.y_train[:5].tolist() == [9, 0, 0, 3, 0]


def test_search_roots_subfolders_env_and_aliases(isolated, shared_data, monkeypatch):
    loc = D.find_dataset("fashion-mnist", data_dir=shared_data)
    assert loc.found and loc.format == "idx.gz" and loc.origin == "data_dir"
    assert loc.path == str(shared_data / "fashion-mnist") and len(loc.files) == 4
    assert loc.size_bytes == sum((shared_data / "fashion-mnist" / f).stat().st_size
                                 for f in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                           "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"))
    assert D.read_counts(loc) == (60000, 10000)

    monkeypatch.setenv("EDGEBNN_DATA", str(shared_data))
    loc = D.find_dataset("mnist")
    assert loc.found and loc.origin == "$EDGEBNN_DATA" and loc.path == str(shared_data / "mnist")
    assert loc.searched[-1] == loc.path

    # The folder itself given as data_dir: it is MNIST, and its files are not
    # taken for Fashion-MNIST although the names are the same.
    monkeypatch.delenv("EDGEBNN_DATA")
    assert D.find_dataset("mnist", data_dir=shared_data / "mnist").path == str(shared_data / "mnist")
    assert not D.find_dataset("fashion_mnist", data_dir=shared_data / "mnist").found

    assert D.canonical_name("Fashion-MNIST") == "fashion_mnist"
    assert D.canonical_name("CIFAR-10") == "cifar10"
    assert D.list_datasets() == ["mnist", "fashion_mnist", "cifar10", "svhn"]
    with pytest.raises(DatasetError, match="known datasets: mnist, fashion_mnist, cifar10, svhn"):
        D.find_dataset("imagenet")


def test_keras_npz_in_keras_cache(isolated):
    rng = np.random.default_rng(3)
    cache = isolated / "home" / ".keras" / "datasets"
    cache.mkdir(parents=True)
    arrays = {
        "x_train": rng.integers(0, 256, (7, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, 7).astype(np.uint8),
        "x_test": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, 3).astype(np.uint8),
    }
    np.savez_compressed(cache / "mnist.npz", **arrays)
    loc = D.find_dataset("mnist")
    assert loc.found and loc.format == "keras-npz" and loc.origin == "Keras cache"
    assert D.read_counts(loc) == (7, 3)
    ds = D.load_dataset("mnist", download=False)
    assert ds.source == str(cache / "mnist.npz")
    np.testing.assert_array_equal(ds.x_train[..., 0], arrays["x_train"])
    np.testing.assert_array_equal(ds.y_test, arrays["y_test"].astype(np.int64))
    assert ds.y_test.dtype == np.int64 and ds.x_train.shape == (7, 28, 28, 1)

    (cache / "mnist.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DatasetError, match=r"mnist\.npz is not a readable \.npz archive"):
        D.load_dataset("mnist", download=False)


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
def test_idx_tiny_set_roundtrip(isolated, gz):
    arrays = write_idx_set(isolated / "d" / "mnist", gz=gz)
    ds = D.load_dataset("mnist", data_dir=isolated / "d", download=False)
    np.testing.assert_array_equal(ds.x_train[..., 0], arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte"])
    assert D.find_dataset("mnist", data_dir=isolated / "d").format == ("idx.gz" if gz else "idx")


# ---------------------------------------------------------------------------
# IDX error paths
# ---------------------------------------------------------------------------


def _corrupt(folder, case):
    """Damage one file of a tiny gzip IDX set; return (file name, expected message part)."""
    if case == "truncated_gzip":
        p = folder / "train-images-idx3-ubyte.gz"
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
        return p.name, "truncated or corrupt gzip"
    if case == "truncated_payload":
        p = folder / "t10k-images-idx3-ubyte.gz"
        data = gzip.decompress(p.read_bytes())
        p.write_bytes(gzip.compress(data[:-10]))
        return p.name, "header says 4x28x28 = 3136 bytes of data, found 3126"
    if case == "trailing_bytes":
        p = folder / "t10k-labels-idx1-ubyte.gz"
        p.write_bytes(gzip.compress(gzip.decompress(p.read_bytes()) + b"xx"))
        return p.name, "2 trailing bytes"
    if case == "bad_magic":
        p = folder / "train-labels-idx1-ubyte.gz"
        p.write_bytes(gzip.compress(idx_bytes(np.zeros(6), magic=0x00000803)))
        return p.name, "bad magic number 0x00000803; expected 0x00000801"
    if case == "count_mismatch":
        p = folder / "train-labels-idx1-ubyte.gz"
        p.write_bytes(gzip.compress(idx_bytes(np.zeros(5))))
        return p.name, "holds 6 images but"
    if case == "label_out_of_range":
        p = folder / "t10k-labels-idx1-ubyte.gz"
        p.write_bytes(gzip.compress(idx_bytes([1, 2, 12, 3])))
        return p.name, "expected labels 0..9, found 1..12"
    if case == "wrong_image_size":
        p = folder / "train-images-idx3-ubyte.gz"
        p.write_bytes(gzip.compress(idx_bytes(np.zeros((6, 32, 32)))))
        return p.name, "expected 28x28 images, found 32x32"
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    ["truncated_gzip", "truncated_payload", "trailing_bytes", "bad_magic",
     "count_mismatch", "label_out_of_range", "wrong_image_size"],
)  # fmt: skip
def test_idx_corruption_is_an_error_naming_the_file(isolated, case):
    folder = isolated / "d" / "mnist"
    write_idx_set(folder)
    name, expected = _corrupt(folder, case)
    with pytest.raises(DatasetError) as err:
        D.load_dataset("mnist", data_dir=isolated / "d", download=False)
    assert name in str(err.value) and expected in str(err.value)


def test_real_file_truncated_is_never_a_short_dataset(tmp_path, shared_data):
    data = gzip.decompress((shared_data / "mnist" / "t10k-images-idx3-ubyte.gz").read_bytes())
    short = tmp_path / "t10k-images-idx3-ubyte"
    short.write_bytes(data[: len(data) - 28 * 28 * 3])  # three images short
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte is truncated: .*10000x28x28 = 7840000 bytes of data, found 7837648"):
        D.read_idx(short, ndim=3)
    cut_gz = tmp_path / "t10k-labels-idx1-ubyte.gz"
    cut_gz.write_bytes((shared_data / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes()[:2000])
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte.gz is a truncated or corrupt gzip"):
        D.read_idx(cut_gz, ndim=1)


# ---------------------------------------------------------------------------
# CIFAR-10
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["tar_in_data_dir", "dir_in_keras_cache", "tar_keras_name"])
def test_cifar10_real_format_and_pixel_layout(isolated, layout):
    files, x_train, y_train, x_test, y_test = make_cifar()
    # One pixel placed by the published layout: image 4 (batch 2, second image),
    # row 5, column 17, blue channel.
    files_list = dict(files)
    raw = pickle.loads(files_list["data_batch_2"], encoding="bytes")
    raw[b"data"][1, 2 * 1024 + 5 * 32 + 17] = 7
    raw[b"data"][1, 0 * 1024 + 5 * 32 + 17] = 250
    files_list["data_batch_2"] = pickle.dumps(raw, protocol=2)
    x_train[4, 5, 17, 2], x_train[4, 5, 17, 0] = 7, 250

    cache = isolated / "home" / ".keras" / "datasets"
    data_dir = None
    if layout == "tar_in_data_dir":
        data_dir = isolated / "d"
        write_cifar_tar(data_dir / "cifar-10-python.tar.gz", files_list)
        fmt = "cifar-python-tar"
    elif layout == "dir_in_keras_cache":
        write_cifar_dir(cache / "cifar-10-batches-py", files_list)
        fmt = "cifar-python-dir"
    else:
        write_cifar_tar(cache / "cifar-10-batches-py.tar.gz", files_list)
        fmt = "cifar-python-tar"

    assert D.find_dataset("cifar10", data_dir=data_dir).format == fmt
    ds = D.load_dataset("cifar10", data_dir=data_dir, download=False)
    assert ds.x_train.shape == (15, 32, 32, 3) and ds.x_test.shape == (2, 32, 32, 3)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64
    assert ds.x_train[4, 5, 17, 2] == 7 and ds.x_train[4, 5, 17, 0] == 250
    np.testing.assert_array_equal(ds.x_train, x_train)
    np.testing.assert_array_equal(ds.y_train, [1] * 3 + [2] * 3 + [3] * 3 + [4] * 3 + [5] * 3)
    np.testing.assert_array_equal(ds.x_test, x_test)
    np.testing.assert_array_equal(ds.y_test, y_test)
    assert ds.input_shape == (32, 32, 3) and ds.class_names[0] == "airplane"


class _Evil:
    def __reduce__(self):
        return (eval, ("1+1",))


@pytest.mark.parametrize(
    "case", ["truncated_tar", "wrong_width", "label_count", "not_a_dict", "foreign_global", "missing_member"]
)
def test_cifar10_corruption_is_an_error_naming_the_file(isolated, case):
    files, *_ = make_cifar()
    tar = isolated / "d" / "cifar-10-python.tar.gz"
    expected = None
    if case == "wrong_width":
        files["test_batch"] = pickle.dumps({b"data": np.zeros((2, 3071), np.uint8), b"labels": [0, 1]})
        expected = "test_batch: expected 'data' uint8 of shape (N, 3072), found uint8 (2, 3071)"
    elif case == "label_count":
        files["data_batch_3"] = pickle.dumps({b"data": np.zeros((3, 3072), np.uint8), b"labels": [0, 1]})
        expected = "data_batch_3: 3 images but 2 labels"
    elif case == "not_a_dict":
        files["data_batch_1"] = pickle.dumps([1, 2, 3])
        expected = "data_batch_1: expected a pickled dict, found list"
    elif case == "foreign_global":
        files["data_batch_5"] = pickle.dumps({b"data": _Evil(), b"labels": []})
        expected = "refers to builtins.eval"
    elif case == "missing_member":
        del files["test_batch"]
        expected = "missing test_batch"
    write_cifar_tar(tar, files)
    if case == "truncated_tar":
        tar.write_bytes(tar.read_bytes()[: tar.stat().st_size // 2])
        expected = "is not a readable CIFAR-10 tarball"
    with pytest.raises(DatasetError) as err:
        D.load_dataset("cifar10", data_dir=isolated / "d", download=False)
    assert str(tar) in str(err.value) and expected in str(err.value)


# ---------------------------------------------------------------------------
# SVHN
# ---------------------------------------------------------------------------


def test_svhn_mat_pixel_layout_and_label_ten_is_zero(isolated):
    written = write_svhn(isolated / "d" / "svhn")
    x, y = written["train"]
    ds = D.load_dataset("svhn", data_dir=isolated / "d", download=False)
    assert ds.x_train.shape == (5, 32, 32, 3) and ds.x_test.shape == (3, 32, 32, 3)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64
    # MATLAB's X[row, col, channel, i] is image i's pixel (row, col), channel.
    for i, r, c, ch in [(0, 0, 0, 0), (3, 5, 17, 2), (4, 31, 30, 1)]:
        assert ds.x_train[i, r, c, ch] == x[r, c, ch, i]
    assert y[:, 0].tolist() == [1, 2, 3, 4, 5]
    assert ds.y_train.tolist() == [1, 2, 3, 4, 5]
    # A test split holding every label, 10 included, and one marked pixel;
    # first with a 0 label, which the published format never uses.
    import scipy.io

    xt = np.zeros((32, 32, 3, 11), np.uint8)
    xt[2, 3, 1, 10] = 99
    scipy.io.savemat(isolated / "d" / "svhn" / "test_32x32.mat", {"X": xt, "y": np.arange(1, 12).reshape(11, 1) % 11})
    with pytest.raises(DatasetError, match=r"test_32x32\.mat: expected labels 1\.\.10 \(10 for the digit 0\), found 0\.\.10"):
        D.load_dataset("svhn", data_dir=isolated / "d", download=False)
    scipy.io.savemat(isolated / "d" / "svhn" / "test_32x32.mat", {"X": xt, "y": np.arange(1, 12).reshape(11, 1).clip(1, 10).astype(np.uint8)})
    ds = D.load_dataset("svhn", data_dir=isolated / "d", download=False)
    assert ds.y_test.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 0]
    assert ds.x_test[10, 2, 3, 1] == 99 and int(ds.x_test.sum()) == 99
    loc = D.find_dataset("svhn", data_dir=isolated / "d")
    assert loc.format == "svhn-mat" and D.read_counts(loc) == (5, 11)


def test_svhn_errors_and_missing_scipy(isolated, monkeypatch):
    import scipy.io

    folder = isolated / "d" / "svhn"
    write_svhn(folder)
    scipy.io.savemat(folder / "train_32x32.mat", {"X": np.zeros((32, 32, 3, 4), np.uint8), "y": np.ones((3, 1), np.uint8)})
    with pytest.raises(DatasetError, match=r"train_32x32\.mat: X holds 4 images but y has shape \(3,\)"):
        D.load_dataset("svhn", data_dir=isolated / "d", download=False)
    (folder / "train_32x32.mat").write_bytes(b"MATLAB 5.0 MAT-file" + b"\0" * 10)
    with pytest.raises(DatasetError, match=r"train_32x32\.mat is not a readable MATLAB v5 \.mat file"):
        D.load_dataset("svhn", data_dir=isolated / "d", download=False)
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    with pytest.raises(MissingDependencyError, match="needs scipy"):
        D.load_dataset("svhn", data_dir=isolated / "d", download=False)


# ---------------------------------------------------------------------------
# Not found anywhere
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10", "svhn"])
def test_missing_everywhere_lists_every_place(isolated, monkeypatch, name):
    env_dir = isolated / "env"
    monkeypatch.setenv("EDGEBNN_DATA", str(env_dir))
    with pytest.raises(DatasetError) as err:
        D.load_dataset(name, data_dir=isolated / "given", download=False)
    msg = str(err.value)
    spec = D.DATASETS[name]
    loc = D.find_dataset(name, data_dir=isolated / "given")
    assert not loc.found and len(loc.searched) >= 4 * len(spec.folders)
    for place in loc.searched:
        assert place in msg
    for root in (isolated / "given", env_dir, isolated / "home" / ".keras" / "datasets", isolated / "debian"):
        assert f"{root}/{spec.folders[0]}" in msg
    for label in ("data_dir:", "$EDGEBNN_DATA:", "Keras cache:", "Debian datasets:"):
        assert label in msg
    for layout in spec.layouts:
        first = next(iter(layout.roles.values()))[0]
        assert first in msg
    assert "download=False" in msg


def test_incomplete_set_and_offline_are_explained(isolated, monkeypatch):
    folder = isolated / "d" / "fashion-mnist"
    write_idx_set(folder)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setenv("EDGEBNN_OFFLINE", "1")
    with pytest.raises(DatasetError) as err:
        D.load_dataset("fashion_mnist", data_dir=isolated / "d")
    msg = str(err.value)
    assert f"{folder} has an incomplete idx set: missing t10k-labels-idx1-ubyte.gz" in msg
    assert "skipped, $EDGEBNN_OFFLINE is set" in msg


# ---------------------------------------------------------------------------
# Downloads from a local server
# ---------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests = None

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def mirror(isolated, monkeypatch):
    """A loopback HTTP server over a temp folder; $EDGEBNN_DATA_MIRROR points at it."""
    served = isolated / "served"
    served.mkdir()
    requests = []
    handler = functools.partial(
        type("H", (_QuietHandler,), {"requests": requests}), directory=str(served)
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv("EDGEBNN_DATA_MIRROR", f"http://127.0.0.1:{server.server_address[1]}/")
    monkeypatch.setattr(D_download, "_DOWNLOAD_TIMEOUT", 5.0)
    monkeypatch.setattr(D_download, "_ONLINE_TIMEOUT", 1.0)
    try:
        yield served, requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _pin(monkeypatch, name, served):
    """Make the registered checksums those of the files the test serves."""
    spec = D.DATASETS[name]
    remotes = []
    for r in spec.remotes:
        upstream = r.urls[0][0].rsplit("/", 1)[-1]
        digest = hashlib.md5((served / upstream).read_bytes()).hexdigest()
        remotes.append(D_download._Remote(r.filename, ((r.urls[0][0], digest),)))
    monkeypatch.setattr(spec, "remotes", tuple(remotes))


def test_download_mnist_npz_atomically_with_progress(isolated, mirror, monkeypatch):
    served, requests = mirror
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, (9, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, 9).astype(np.uint8)
    np.savez(served / "mnist.npz", x_train=x, y_train=y, x_test=x[:2], y_test=y[:2])
    size = (served / "mnist.npz").stat().st_size
    _pin(monkeypatch, "mnist", served)
    calls = []
    ds = D.load_dataset("mnist", download=None, progress=lambda *a: calls.append(a))
    cache = isolated / "home" / ".keras" / "datasets"
    assert ds.source == str(cache / "mnist.npz")
    np.testing.assert_array_equal(ds.x_train[..., 0], x)
    assert calls[0] == ("mnist.npz", 0, size) and calls[-1] == ("mnist.npz", size, size)
    assert [c[1] for c in calls] == sorted(c[1] for c in calls)
    assert sorted(p.name for p in cache.iterdir()) == ["mnist.npz"]  # no temp file left
    assert requests == ["/mnist.npz"]
    D.load_dataset("mnist", download=True)  # found now: no second request
    assert requests == ["/mnist.npz"]


def test_download_fashion_mnist_into_keras_folder(isolated, mirror, monkeypatch):
    served, requests = mirror
    arrays = write_idx_set(served, n_train=8, n_test=2, seed=5)
    _pin(monkeypatch, "fashion_mnist", served)
    ds = D.load_dataset("fashion-mnist", download=True)
    folder = isolated / "home" / ".keras" / "datasets" / "fashion-mnist"
    assert ds.source == str(folder) and len(requests) == 4
    np.testing.assert_array_equal(ds.y_train, arrays["train-labels-idx1-ubyte"])


def test_download_cifar10_tarball_is_extracted_like_keras(isolated, mirror, monkeypatch):
    served, _ = mirror
    files, x_train, _, _, y_test = make_cifar(n=2, n_test=3)
    write_cifar_tar(served / "cifar-10-python.tar.gz", files)
    _pin(monkeypatch, "cifar10", served)
    ds = D.load_dataset("cifar10", download=True)
    cache = isolated / "home" / ".keras" / "datasets"
    assert ds.source == str(cache / "cifar-10-batches-py")
    assert (cache / "cifar-10-batches-py.tar.gz").is_file()
    assert sorted(p.name for p in (cache / "cifar-10-batches-py").iterdir()) == sorted(files)
    np.testing.assert_array_equal(ds.x_train, x_train)
    np.testing.assert_array_equal(ds.y_test, y_test)


def test_download_failures_leave_nothing_behind(isolated, mirror):
    served, _ = mirror
    (served / "mnist.npz").write_bytes(b"not the published file")
    with pytest.raises(DatasetError) as err:  # the real checksum is kept
        D.load_dataset("mnist", download=True)
    assert "checksum mismatch: expected sha256 731c5ac6" in str(err.value)
    assert "mnist.npz" in str(err.value)
    cache = isolated / "home" / ".keras" / "datasets"
    assert list(cache.iterdir()) == []
    with pytest.raises(DatasetError, match=r"train_32x32\.mat: HTTP Error 404"):
        D.load_dataset("svhn", download=True)
    assert not (cache / "svhn" / "train_32x32.mat").exists()


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------


def test_cli_json_and_table(isolated, shared_data):
    runner = CliRunner()
    result = runner.invoke(main, ["datasets", "--data-dir", str(shared_data), "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)["datasets"]}
    assert list(rows) == ["mnist", "fashion_mnist", "cifar10", "svhn"]
    m = rows["mnist"]
    assert m["found"] and m["format"] == "idx.gz" and (m["n_train"], m["n_test"]) == (60000, 10000)
    assert m["size_bytes"] == sum((shared_data / "mnist").joinpath(f).stat().st_size for f in
                                  [p.name for p in (shared_data / "mnist").iterdir()])
    assert rows["fashion_mnist"]["path"] == str(shared_data / "fashion-mnist")
    assert not rows["cifar10"]["found"] and rows["cifar10"]["n_train"] is None
    assert str(isolated / "debian") in rows["svhn"]["searched"]

    result = runner.invoke(main, ["datasets", "--data-dir", str(shared_data)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["dataset", "found", "format", "train", "test", "size", "where"]
    assert lines[2].split()[:5] == ["mnist", "yes", "idx.gz", "60000", "10000"]
    assert lines[4].split()[:2] == ["cifar10", "no"]

    result = runner.invoke(main, ["datasets", "--data-dir", str(isolated / "nope")])
    assert result.exit_code == 2 and "does not exist" in result.output
    result = runner.invoke(main, ["datasets", "--download", "imagenet"])
    assert result.exit_code == 1 and "unknown dataset 'imagenet'" in result.output


def test_cli_download_and_corrupt_header_warning(isolated, mirror, monkeypatch):
    served, _ = mirror
    write_svhn(served)
    _pin(monkeypatch, "svhn", served)
    result = CliRunner().invoke(main, ["datasets", "--download", "svhn", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)["datasets"]}
    assert rows["svhn"]["found"] and (rows["svhn"]["n_train"], rows["svhn"]["n_test"]) == (5, 3)
    assert rows["svhn"]["origin"] == "Keras cache"

    folder = isolated / "d" / "mnist"
    write_idx_set(folder)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01" + b"\0" * 4))
    result = CliRunner().invoke(main, ["datasets", "--data-dir", str(isolated / "d"), "--json"])
    assert result.exit_code == 0
    row = json.loads(result.stdout)["datasets"][0]
    assert row["found"] and row["n_train"] is None and "bad magic number 0x00000801" in row["error"]


def test_cli_never_imports_tensorflow(shared_data):
    code = (
        "import sys, json\n"
        "from click.testing import CliRunner\n"
        "from edgebnn.cli import main\n"
        f"r = CliRunner().invoke(main, ['datasets', '--data-dir', {str(shared_data)!r}, '--json'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(json.dumps([json.loads(r.stdout)['datasets'][0]['found'], 'tensorflow' in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [True, False]


# ---------------------------------------------------------------------------
# Hostile IDX files: decompression bombs, huge headers; corrupt sets in the listing
# ---------------------------------------------------------------------------


def _gzip_bomb(path, header: bytes, zeros: int):
    """A small .gz that inflates to ``header`` + ``zeros`` zero bytes, written in chunks."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip container
    with open(path, "wb") as fh:
        fh.write(comp.compress(header))
        chunk = bytes(1 << 20)
        for _ in range(zeros >> 20):
            fh.write(comp.compress(chunk))
        fh.write(comp.flush())


def test_a_decompression_bomb_is_refused_with_little_memory(tmp_path):
    import tracemalloc

    bomb = tmp_path / "t10k-labels-idx1-ubyte.gz"
    _gzip_bomb(bomb, struct.pack(">II", 0x801, 10), 256 << 20)  # 10 labels, then 256 MiB
    assert bomb.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError) as err:
            D.read_idx(bomb, ndim=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    msg = str(err.value)
    assert str(bomb) in msg and "header says 10 = 10 bytes of data" in msg and "trailing bytes" in msg
    assert peak < 16 << 20, f"reading a 256 MiB bomb peaked at {peak / 2**20:.0f} MiB"


def test_a_header_declaring_a_huge_payload_is_refused_before_allocating(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(struct.pack(">IIII", 0x803, 4_000_000, 28, 28) + bytes(100)))
    with pytest.raises(DatasetError, match=r"4000000x28x28 = 3136000000 bytes of data, more than the limit"):
        D.read_idx(path, ndim=3)
    with pytest.raises(DatasetError, match=r"is truncated: its header says 4x28x28 = 3136 bytes of data, found 100"):
        path.write_bytes(gzip.compress(struct.pack(">IIII", 0x803, 4, 28, 28) + bytes(100)))
        D.read_idx(path, ndim=3)


@pytest.mark.parametrize("damage", ["truncated_gzip", "truncated_raw", "unpaired"])
def test_the_listing_marks_a_corrupt_set_with_the_reason(isolated, damage):
    folder = isolated / "d" / "mnist"
    write_idx_set(folder, gz=damage != "truncated_raw")
    if damage == "truncated_gzip":  # header intact, payload cut: only the gzip trailer tells
        p = folder / "train-images-idx3-ubyte.gz"
        p.write_bytes(p.read_bytes()[:-200])
        needle = "train-images-idx3-ubyte.gz is a truncated or corrupt gzip file"
    elif damage == "truncated_raw":
        p = folder / "t10k-images-idx3-ubyte"
        p.write_bytes(p.read_bytes()[:-5])
        needle = "t10k-images-idx3-ubyte is truncated"
    else:
        (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(3))))
        needle = "holds 4 images but"
    assert D.read_counts(D.find_dataset("mnist", data_dir=isolated / "d")) == (6, 4)  # headers alone look fine
    result = CliRunner().invoke(main, ["datasets", "--data-dir", str(isolated / "d")])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if line.startswith("mnist"))
    assert row.split()[1] == "corrupt"
    assert f"warning: mnist: " in result.stderr and needle in result.stderr
    result = CliRunner().invoke(main, ["datasets", "--data-dir", str(isolated / "d"), "--json"])
    js = json.loads(result.stdout)["datasets"][0]
    assert js["corrupt"] and any(needle in p for p in js["problems"])

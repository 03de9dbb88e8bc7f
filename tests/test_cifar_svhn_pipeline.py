"""CIFAR-10 and SVHN end to end through the CLI, on small files in the real formats.

No CIFAR-10 or SVHN can be downloaded here, so a CIFAR-10 python tarball and
an SVHN ``.mat`` pair are written (tests/dataset_files.py) with images a
small net learns in one epoch (one colour per class plus noise). Each
dataset goes ``train`` (its shipped bcnn preset, one epoch, tf.data
augmentation, per-channel normalization) -> ``convert`` -> ``verify`` ->
``export`` -> ``firmware build -t cortex-m7`` -> ``firmware run`` (QEMU).
"""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from dataset_files import learnable_images, write_cifar_split_tar, write_svhn_split
from edgebnn import rundir
from edgebnn.cli import main

N_TRAIN, N_TEST = 600, 100


def _write_cifar(root):
    x, y = learnable_images(N_TRAIN + N_TEST, seed=10)
    write_cifar_split_tar(root / "cifar-10-python.tar.gz", x[:N_TRAIN], y[:N_TRAIN],
                          x[N_TRAIN:], y[N_TRAIN:])
    return x[:N_TRAIN]


def _write_svhn(root):
    x, y = learnable_images(N_TRAIN + N_TEST, seed=11)
    write_svhn_split(root / "svhn" / "train_32x32.mat", x[:N_TRAIN], y[:N_TRAIN])
    write_svhn_split(root / "svhn" / "test_32x32.mat", x[N_TRAIN:], y[N_TRAIN:])
    return x[:N_TRAIN]


def _invoke(cli, args):
    res = cli.invoke(main, args)
    assert res.exit_code == 0, f"edgebnn {' '.join(args)}\n{res.output}"
    return res


@pytest.mark.slow
@pytest.mark.tf
@pytest.mark.qemu
@pytest.mark.parametrize("dataset,augment,write", [
    ("cifar10", "crop-flip", _write_cifar),
    ("svhn", "crop", _write_svhn),
], ids=["cifar10_crop_flip", "svhn_crop"])
def test_train_convert_verify_export_firmware(tmp_path, monkeypatch, dataset, augment, write):
    monkeypatch.delenv("EDGEBNN_DATA", raising=False)
    monkeypatch.setenv("EDGEBNN_OFFLINE", "1")
    data = tmp_path / "data"
    x_train = write(data)
    run = tmp_path / "run"
    cli = CliRunner()

    # the shipped preset with the test's small overrides (full-size VGGs are too slow here)
    res = _invoke(cli, ["train", dataset, "--config", f"{dataset}-bcnn-binary", "--epochs", "1",
                        "--val-size", "100", "--batch-size", "32", "--data-dir", str(data),
                        "--out", str(run), "--json"])
    metrics = json.loads(res.stdout)
    assert metrics["dataset"] == dataset and metrics["epochs"] == 1
    # one colour per class: chance is 10%, one epoch learns most of it
    assert metrics["test_accuracy"] > 0.5, metrics
    cfg = (run / rundir.CONFIG).read_text()
    assert f"augment: {augment}\n" in cfg and "normalize: per-channel\n" in cfg
    for name in rundir.PLOTS:
        assert (run / name).stat().st_size > 0

    # the model's first layer holds the training split's per-channel statistics
    from edgebnn.convert import load_keras_model

    model = load_keras_model(run / rundir.MODEL)
    norm = model.get_layer("normalize")
    used = x_train[: N_TRAIN - 100].reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(1.0 / np.asarray(norm.scale), used.std(axis=0), rtol=1e-6)
    np.testing.assert_allclose(-np.asarray(norm.offset) / np.asarray(norm.scale),
                               used.mean(axis=0), rtol=1e-6)

    _invoke(cli, ["convert", str(run), "--lce-target", "arm64"])
    ops = json.loads((run / rundir.TFLITE_REPORT).read_text())["ops_by_type"]
    assert ops.get("LceBconv2d", 0) >= 2 and "MUL" in ops and "ADD" in ops

    res = _invoke(cli, ["verify", str(run), "--data-dir", str(data), "--json"])
    v = json.loads(res.stdout)
    assert v["n"] == N_TEST and v["agreement"] >= 0.99

    res = _invoke(cli, ["export", str(run / rundir.TFLITE), "-o", str(tmp_path / "c"),
                        "--target", "cortex-m7", "--json"])
    assert (tmp_path / "c").is_dir() and any((tmp_path / "c").glob("*.c"))

    fw = tmp_path / "fw"
    _invoke(cli, ["firmware", "build", str(run), "-t", "cortex-m7", "-o", str(fw),
                  "--samples", "8", "--dataset", dataset, "--data-dir", str(data), "--json"])
    res = _invoke(cli, ["firmware", "run", str(fw), "--json"])
    out = json.loads(res.stdout)
    assert out["samples"] == 8 and out["mismatches"] == 0 and out["ok"]

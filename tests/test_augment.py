"""Augmentation in the tf.data pipeline and per-channel normalization in the model."""

import numpy as np
import pytest

from edgebnn.augment import channel_stats
from edgebnn.config import TrainConfig
from edgebnn.errors import ConfigError, ModelError


def test_channel_stats_match_numpy_and_guard_constant_channels():
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, (7, 5, 6, 3), dtype=np.uint8)
    x[..., 1] = 42
    mean, std = channel_stats(x)
    flat = x.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(mean, flat.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose([std[0], std[2]], flat.std(axis=0)[[0, 2]], rtol=1e-12)
    assert std[1] == 1.0  # constant channel: centred, not divided by 0
    with pytest.raises(ConfigError, match=r"uint8 \(N, H, W, C\).*found float32 of shape \(2, 4, 4\)"):
        channel_stats(np.zeros((2, 4, 4), np.float32))


def test_config_rejects_unknown_augment_and_normalize():
    with pytest.raises(ConfigError, match="'augment' must be one of none, crop, crop-flip; found 'flip'"):
        TrainConfig(augment="flip")
    with pytest.raises(ConfigError, match="'normalize' must be one of range, per-channel"):
        TrainConfig(normalize="imagenet")
    with pytest.raises(ConfigError, match="'augment_pad' must be >= 0"):
        TrainConfig(augment_pad=-1)


def _marked(n=6, hw=8):
    """Images whose pixel values encode (image, row, col): every crop/flip is traceable."""
    x = np.zeros((n, hw, hw, 2), np.uint8)
    for i in range(n):
        for r in range(hw):
            for c in range(hw):
                x[i, r, c, 0] = 1 + r * hw + c  # 1..64, 0 = padding
                x[i, r, c, 1] = i
    return x


def _batches(ds):
    xs, ys = zip(*[(a.numpy(), b.numpy()) for a, b in ds])
    return np.concatenate(xs), np.concatenate(ys)


def _placement(original, out, pad):
    """``(dy, dx, flipped)`` such that ``out`` is ``original`` padded, cropped at (dy, dx), maybe flipped."""
    h, w = original.shape[:2]
    padded = np.pad(original.astype(np.float32), ((pad, pad), (pad, pad), (0, 0)))
    for flipped in (False, True):
        cand = out[:, ::-1] if flipped else out
        for dy in range(2 * pad + 1):
            for dx in range(2 * pad + 1):
                if np.array_equal(padded[dy:dy + h, dx:dx + w], cand):
                    return dy, dx, flipped
    return None


@pytest.mark.tf
@pytest.mark.parametrize("kind", ["crop", "crop-flip"])
def test_epoch_dataset_crops_flips_and_is_a_function_of_seed_and_epoch(kind):
    from edgebnn.augment import epoch_dataset

    x = _marked(n=40)
    y = np.eye(10, dtype=np.float32)[np.arange(40) % 10]
    a_x, a_y = _batches(epoch_dataset(x, y, kind=kind, pad=2, seed=3, epoch=1, batch_size=16))
    b_x, _ = _batches(epoch_dataset(x, y, kind=kind, pad=2, seed=3, epoch=1, batch_size=16))
    c_x, _ = _batches(epoch_dataset(x, y, kind=kind, pad=2, seed=3, epoch=2, batch_size=16))
    assert a_x.dtype == np.float32 and a_x.shape == x.shape
    np.testing.assert_array_equal(a_x, b_x)
    np.testing.assert_array_equal(a_y, y)  # order kept: the shuffle happens before
    assert not np.array_equal(a_x, c_x)
    places = [_placement(x[i], a_x[i], 2) for i in range(40)]
    assert all(p is not None for p in places)
    # crops land at several offsets; flips only with crop-flip, and then about half the time
    assert len({p[:2] for p in places}) > 5
    flips = sum(p[2] for p in places)
    if kind == "crop":
        assert flips == 0
    else:
        assert 8 <= flips <= 32


@pytest.mark.tf
def test_per_channel_normalization_is_the_first_layer():
    from edgebnn.zoo import build_model

    mean, std = [120.0, 10.0, 200.0], [60.0, 5.0, 20.0]
    model = build_model("bcnn", precision="binary", input_shape=(32, 32, 3), num_classes=10,
                        normalization=(mean, std))
    norm = model.get_layer("normalize")
    x = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype(np.float32)
    out = norm(x).numpy()
    np.testing.assert_allclose(out, (x - np.array(mean)) / np.array(std), rtol=1e-5, atol=1e-5)
    with pytest.raises(ModelError, match=r"needs 3 means and 3 positive standard deviations.*found 1 and"):
        build_model("bcnn", precision="binary", input_shape=(32, 32, 3), num_classes=10,
                    normalization=([1.0], [1.0]))


class _Killed(Exception):
    pass


@pytest.mark.tf
@pytest.mark.slow
def test_augmented_run_resumed_after_a_kill_ends_where_the_uninterrupted_one_does(tmp_path):
    """The tf.data crop-flip path with per-channel normalization resumes exactly
    (deterministic ops; the 1e-6 tolerance only allows other CPUs' summation order)."""
    import tf_keras

    from dataset_files import learnable_images
    from edgebnn import rundir
    from edgebnn.datasets import Dataset
    from edgebnn.train import train

    x, y = learnable_images(360, seed=5)
    ds = Dataset(name="cifar10", x_train=x[:300], y_train=y[:300], x_test=x[300:],
                 y_test=y[300:], class_names=tuple(str(i) for i in range(10)), source="test")

    class KillAtEpoch2(tf_keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise _Killed()

    cfg = TrainConfig(dataset="cifar10", model="bcnn", epochs=2, batch_size=50, val_size=60,
                      seed=2, augment="crop-flip", normalize="per-channel")
    full = train(cfg, tmp_path / "full", dataset=ds, deterministic=True)
    with pytest.raises(_Killed):
        train(cfg, tmp_path / "cut", dataset=ds, deterministic=True, callbacks=[KillAtEpoch2()])
    resumed = train(cfg, tmp_path / "cut", resume=True, dataset=ds, deterministic=True)
    assert resumed.resumed_from == 1
    for a, b in zip(full.history, resumed.history):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-6), key
    m_full = tf_keras.models.load_model(full.run_dir / rundir.MODEL)
    m_res = tf_keras.models.load_model(resumed.run_dir / rundir.MODEL)
    for wa, wb in zip(m_full.get_weights(), m_res.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-6, atol=1e-6)
    assert full.metrics["confusion_matrix"] == resumed.metrics["confusion_matrix"]

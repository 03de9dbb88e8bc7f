"""Knowledge distillation (``--teacher``): the loss, the pipeline and bad teachers."""

import numpy as np
import pytest
import yaml

from edgebnn import rundir
from edgebnn.config import TrainConfig
from edgebnn.errors import ConfigError, EdgeBnnError
from edgebnn.train import load_teacher, make_distill_loss, train

TEACHER = "mnist-bcnn-float"  # shipped pretrained float twin


@pytest.fixture(scope="module")
def tiny_mnist(shared_data):
    """400 real MNIST training images (300 train + 100 validation), 300 test."""
    from edgebnn.datasets import Dataset, load_dataset

    ds = load_dataset("mnist", data_dir=shared_data, download=False)
    return Dataset(name="mnist", x_train=ds.x_train[:400], y_train=ds.y_train[:400],
                   x_test=ds.x_test[:300], y_test=ds.y_test[:300],
                   class_names=ds.class_names, source=ds.source)


def _cfg(**kw):
    return TrainConfig(dataset="mnist", model="bcnn", epochs=1, batch_size=50, val_size=100,
                       seed=3, **kw)


def test_distill_loss_formula():
    from edgebnn._tf import import_tf

    tf_keras = import_tf()[1]
    hard = tf_keras.losses.CategoricalCrossentropy(from_logits=True)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 4)).astype(np.float32)
    teacher_logits = rng.normal(size=(6, 4)).astype(np.float32)
    one_hot = np.eye(4, dtype=np.float32)[rng.integers(0, 4, size=6)]
    y = np.concatenate([one_hot, teacher_logits], axis=1)
    t, w = 3.0, 0.7

    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    p, q = softmax(teacher_logits / t), softmax(logits / t)
    kl = np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=1))
    h = float(hard(one_hot, logits))
    got = float(make_distill_loss(hard, 4, t, w)(y, logits))
    assert got == pytest.approx(w * t * t * kl + (1 - w) * h, rel=1e-5)
    assert float(make_distill_loss(hard, 4, t, 0.0)(y, logits)) == pytest.approx(h, rel=1e-6)


def test_weight_zero_equals_plain_training_and_weight_changes_loss(tiny_mnist, tmp_path):
    plain = train(_cfg(), tmp_path / "plain", dataset=tiny_mnist, deterministic=True)
    zero = train(_cfg(teacher=TEACHER, distill_weight=0.0), tmp_path / "zero",
                 dataset=tiny_mnist, deterministic=True)
    half = train(_cfg(teacher=TEACHER, distill_weight=0.9, distill_temperature=4.0),
                 tmp_path / "half", dataset=tiny_mnist, deterministic=True)
    assert zero.history[0]["loss"] == pytest.approx(plain.history[0]["loss"], rel=1e-4)
    assert abs(half.history[0]["loss"] - plain.history[0]["loss"]) > 1e-3
    stored = yaml.safe_load((tmp_path / "half" / rundir.CONFIG).read_text())
    assert stored["teacher"] == TEACHER and stored["distill_weight"] == 0.9
    # the stored configuration resumes (nothing left to do after its one epoch)
    again = train(None, tmp_path / "half", resume=True, dataset=tiny_mnist, deterministic=True)
    assert again.resumed_from == 1 and again.config.teacher == TEACHER


def test_teacher_with_wrong_class_count(tmp_path):
    from edgebnn.zoo import build_model

    path = tmp_path / "three.h5"
    build_model("bcnn", precision="float", input_shape=(28, 28, 1), num_classes=3).save(
        str(path), save_format="h5")
    with pytest.raises(ConfigError, match=r"predicts 3 classes; the run's dataset has 10"):
        load_teacher(str(path), input_shape=(28, 28, 1), num_classes=10)


def test_teacher_with_wrong_input_shape(tmp_path):
    from edgebnn.zoo import build_model

    path = tmp_path / "rgb.h5"
    build_model("bcnn", precision="float", input_shape=(32, 32, 3), num_classes=10).save(
        str(path), save_format="h5")
    with pytest.raises(ConfigError, match=r"shape \(32, 32, 3\); the run's images are \(28, 28, 1\)"):
        load_teacher(str(path), input_shape=(28, 28, 1), num_classes=10)


def test_teacher_that_is_not_a_model(tmp_path):
    path = tmp_path / "notes.h5"
    path.write_text("not a model")
    with pytest.raises(ConfigError, match=r"--teacher .*notes.h5.*expected a Keras model"):
        load_teacher(str(path), input_shape=(28, 28, 1), num_classes=10)
    with pytest.raises(EdgeBnnError, match=r"--teacher 'no-such-model'"):
        load_teacher("no-such-model", input_shape=(28, 28, 1), num_classes=10)


@pytest.mark.parametrize("key, value, message", [
    ("distill_weight", 1.5, r"'distill_weight' must be in \[0, 1\]"),
    ("distill_temperature", 0.0, r"'distill_temperature' must be > 0"),
])
def test_bad_distill_settings(key, value, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**{key: value})

"""Training: data order, run directories, resume after a kill, the CLI."""

import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from edgebnn import rundir
from edgebnn.cli import main
from edgebnn.config import TrainConfig, dump_config
from edgebnn.errors import ConfigError, RunDirError
from edgebnn.train import (
    WorkerRole,
    early_stop_update,
    epoch_data,
    epoch_steps,
    read_history,
    shard_indices,
    shift_images,
    train,
    worker_role,
)

METRIC_KEYS = {"test_accuracy", "macro_f1", "per_class", "confusion_matrix", "parameters",
               "model_size_bytes", "epochs", "wall_time_s"}
CONFIG_KEYS = {"dataset", "model", "precision", "epochs", "batch_size", "optimizer", "loss",
               "lr", "seed", "limit"}


# -- pure functions (no TensorFlow) --------------------------------------------


def test_epoch_data_is_a_function_of_seed_and_epoch():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (50, 6, 6, 1), dtype=np.uint8)
    y = np.arange(50)
    a = epoch_data(x, y, seed=3, epoch=1, augment_shift=1)
    b = epoch_data(x, y, seed=3, epoch=1, augment_shift=1)
    c = epoch_data(x, y, seed=3, epoch=2, augment_shift=1)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    assert sorted(a[1]) == list(range(50)) and a[0].dtype == np.float32


def test_shift_images_moves_content_and_fills_zero():
    x = np.zeros((3, 5, 5, 1), dtype=np.uint8)
    x[:, 2, 2, 0] = 9
    # offset s+dy means a window starting dy rows further: content moves up by dy
    out = shift_images(x, np.array([[1, 1], [0, 2], [2, 0]]), 1)
    assert out[0, 2, 2, 0] == 9  # no shift
    assert out[1, 3, 1, 0] == 9  # down one row, left one column
    assert out[2, 1, 3, 0] == 9  # up one row, right one column
    assert out.sum() == 27


def test_early_stop_update():
    best, improved, stop = early_stop_update(None, {"epoch": 1, "val_accuracy": 0.9}, 2)
    assert improved and not stop
    best, improved, stop = early_stop_update(best, {"epoch": 2, "val_accuracy": 0.9}, 2)
    assert not improved and not stop and best["epoch"] == 1
    best, improved, stop = early_stop_update(best, {"epoch": 3, "val_accuracy": 0.85}, 2)
    assert stop and best["epoch"] == 1


# -- run directory protection (fails before TensorFlow is imported) -------------


def test_existing_run_dir_is_never_overwritten(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "keep.txt").write_text("x")
    with pytest.raises(RunDirError, match="--resume.*--force"):
        train(TrainConfig(epochs=1), run)
    res = CliRunner().invoke(main, ["train", "mnist", "--epochs", "1", "--out", str(run)])
    assert res.exit_code != 0 and "already exists" in res.output
    assert (run / "keep.txt").read_text() == "x"


@pytest.mark.tf
def test_a_missing_dataset_leaves_no_run_dir(tmp_path, monkeypatch):
    """The data loads before RUN_DIR is written: a run that cannot find its dataset creates nothing,
    so the same command succeeds once the files are in place (no --force needed), and with --force it
    does not remove the run that is there."""
    from edgebnn.errors import DatasetError

    monkeypatch.delenv("EDGEBNN_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no Keras cache
    monkeypatch.setenv("EDGEBNN_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)  # no ../shared/data beside the working directory
    empty = tmp_path / "empty"
    empty.mkdir()
    run = tmp_path / "run"
    with pytest.raises(DatasetError, match="was not found"):
        train(TrainConfig(epochs=1, dataset="fashion_mnist"), run, data_dir=empty)
    assert not run.exists()
    run.mkdir()
    (run / "keep.txt").write_text("x")
    with pytest.raises(DatasetError, match="was not found"):
        train(TrainConfig(epochs=1, dataset="fashion_mnist"), run, data_dir=empty, force=True)
    assert (run / "keep.txt").read_text() == "x"


def test_resume_with_a_different_configuration_names_the_key(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / rundir.CONFIG).write_text(dump_config(TrainConfig(epochs=3, lr=0.01)))
    with pytest.raises(RunDirError, match="lr: run has 0.01"):
        train(TrainConfig(epochs=3, lr=0.02), run, resume=True)


# -- real training ----------------------------------------------------------------


class Killed(Exception):
    """Stands in for SIGKILL: raised as epoch 2 begins, after epoch 1's checkpoint."""


@pytest.fixture(scope="module")
def small_mnist(shared_data):
    """1,200 real MNIST training images (1,000 train + 200 validation), 1,000 test."""
    from edgebnn.datasets import Dataset, load_dataset

    ds = load_dataset("mnist", data_dir=shared_data, download=False)
    return Dataset(name="mnist", x_train=ds.x_train[:1200], y_train=ds.y_train[:1200],
                   x_test=ds.x_test[:1000], y_test=ds.y_test[:1000],
                   class_names=ds.class_names, source=ds.source)


@pytest.fixture(scope="module")
def runs(small_mnist, tmp_path_factory):
    """An uninterrupted 2-epoch run, and the same run killed after epoch 1 then resumed."""
    from edgebnn._tf import import_tf

    tf_keras = import_tf()[1]

    class KillAtEpoch2(tf_keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise Killed()

    root = tmp_path_factory.mktemp("runs")
    cfg = TrainConfig(dataset="mnist", model="bcnn", precision="binary", epochs=2,
                      batch_size=100, val_size=200, seed=3, augment_shift=1, lr=0.002)
    full = train(cfg, root / "full", dataset=small_mnist, deterministic=True)
    with pytest.raises(Killed):
        train(cfg, root / "cut", dataset=small_mnist, deterministic=True,
              callbacks=[KillAtEpoch2()])
    state = json.loads((root / "cut" / rundir.CHECKPOINTS / "state.json").read_text())
    assert state["epoch"] == 1 and not (root / "cut" / rundir.METRICS).exists()
    resumed = train(cfg, root / "cut", resume=True, dataset=small_mnist, deterministic=True)
    return full, resumed


@pytest.mark.tf
@pytest.mark.slow
def test_resumed_run_ends_where_the_uninterrupted_one_does(runs):
    """Compared: every history value, every final weight, the test predictions.

    With deterministic ops the two runs are bitwise equal on this machine;
    the tolerance (1e-6) only leaves room for float summation order on
    other CPUs, far below what one different batch would change.
    """
    import tf_keras

    full, resumed = runs
    assert resumed.resumed_from == 1 and full.resumed_from == 0
    assert len(full.history) == len(resumed.history) == 2
    for a, b in zip(full.history, resumed.history):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "val_macro_f1", "lr"):
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-6), key
    m_full = tf_keras.models.load_model(full.run_dir / rundir.MODEL)
    m_res = tf_keras.models.load_model(resumed.run_dir / rundir.MODEL)
    for wa, wb in zip(m_full.get_weights(), m_res.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-6, atol=1e-6)
    assert full.metrics["confusion_matrix"] == resumed.metrics["confusion_matrix"]
    assert full.metrics["test_accuracy"] == resumed.metrics["test_accuracy"]


@pytest.mark.tf
@pytest.mark.slow
def test_run_dir_holds_every_file(runs, small_mnist):
    import tf_keras

    full, _ = runs
    run = full.run_dir
    for name in (rundir.CONFIG, rundir.MODEL, rundir.HISTORY, rundir.METRICS, rundir.SUMMARY,
                 *rundir.PLOTS):
        assert (run / name).is_file(), name
    for name in rundir.PLOTS:
        assert (run / name).read_bytes()[:4] == b"\x89PNG"
    assert CONFIG_KEYS <= set(yaml.safe_load((run / rundir.CONFIG).read_text()))
    metrics = json.loads((run / rundir.METRICS).read_text())
    assert METRIC_KEYS <= set(metrics)
    assert metrics["epochs"] == 2 and metrics["test_images"] == 1000
    assert metrics["train_images"] == 1000 and metrics["val_images"] == 200
    assert set(metrics["per_class"]["3"]) >= {"precision", "recall"}
    assert metrics["model_size_bytes"] == pytest.approx(14_624.0)
    # 20 steps on 1,000 images: above chance (10%, binomial sd 1% on 1,000
    # test images), not more; the bars runs show real learning
    assert metrics["test_accuracy"] > 0.15
    hist = read_history(run / rundir.HISTORY)
    assert [r["epoch"] for r in hist] == [1, 2] and all(0 <= r["val_macro_f1"] <= 1 for r in hist)
    assert "val_macro_f1" in (run / rundir.HISTORY).read_text().splitlines()[0]
    # the saved model reloads with larq imported and reproduces the metrics
    model = tf_keras.models.load_model(run / rundir.MODEL)
    pred = model.predict(small_mnist.x_test.astype(np.float32), verbose=0).argmax(1)
    assert float((pred == small_mnist.y_test).mean()) == metrics["test_accuracy"]


@pytest.mark.tf
@pytest.mark.slow
def test_cli_train_smoke(tmp_path, shared_data, monkeypatch):
    """`edgebnn train` end to end on 500 images with the Bop optimizer and hinge loss."""
    monkeypatch.delenv("EDGEBNN_DATA", raising=False)
    out = tmp_path / "cli-run"
    res = CliRunner().invoke(main, [
        "train", "--config", "smoke", "--limit", "500", "--optimizer", "bop",
        "--loss", "squared_hinge", "--data-dir", str(shared_data), "--out", str(out), "--json",
    ])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["epochs"] == 1 and data["run_dir"] == str(out)
    # the training speed: images stepped through per second of fit, in the history too
    history = read_history(out / rundir.HISTORY)
    assert history[0]["images_per_s"] > 0
    assert data["train_images_per_s"] == history[0]["images_per_s"]
    cfg = yaml.safe_load((out / rundir.CONFIG).read_text())
    assert (cfg["optimizer"], cfg["loss"], cfg["limit"]) == ("bop", "squared_hinge", 500)
    assert "epoch 1/1" in res.stderr
    # a second run into the same directory needs --force
    again = CliRunner().invoke(main, ["train", "--config", "smoke", "--out", str(out)])
    assert again.exit_code != 0 and "--force" in again.output


# -- distribution ------------------------------------------------------------------


def _tf_config(cluster, kind, index):
    return json.dumps({"cluster": cluster, "task": {"type": kind, "index": index}})


def test_worker_role_from_tf_config():
    workers = {"worker": ["a:1", "b:1", "c:1"]}
    assert worker_role("multi_worker", _tf_config(workers, "worker", 0)) == WorkerRole(
        workers=3, rank=0, chief=True, task="worker:0")
    assert not worker_role("multi_worker", _tf_config(workers, "worker", 2)).chief
    # with a chief job, worker 0 is not the chief and ranks after it
    with_chief = {"chief": ["c:1"], "worker": ["a:1", "b:1"]}
    assert worker_role("multi_worker", _tf_config(with_chief, "chief", 0)).chief
    role = worker_role("multi_worker", _tf_config(with_chief, "worker", 0))
    assert (role.chief, role.rank, role.workers) == (False, 1, 3)
    # other strategies train in one process, TF_CONFIG or not
    assert worker_role("mirrored", _tf_config(workers, "worker", 2)) == WorkerRole()


@pytest.mark.parametrize("spec, match", [
    ("{not json", "not valid JSON"),
    ('{"cluster": {"worker": ["a:1"]}}', '"cluster" and "task"'),
    (_tf_config({"worker": ["a:1"]}, "worker", 1), "not in its cluster"),
    (_tf_config({"worker": ["a:1"], "ps": ["p:1"]}, "ps", 0), "not in its cluster"),
    ("", "not set"),
], ids=["bad_json", "no_task", "index_out_of_range", "parameter_server", "unset"])
def test_worker_role_rejects_bad_tf_config(spec, match):
    with pytest.raises(ConfigError, match=match):
        worker_role("multi_worker", spec)


def test_worker_shards_make_the_global_batches():
    """Two workers' step k together is step k of one process with the global batch."""
    n, per_worker, workers = 530, 64, 2
    global_batch = per_worker * workers
    shards = [shard_indices(n, global_batch=global_batch, workers=workers, rank=r)
              for r in range(workers)]
    steps = epoch_steps(n, global_batch, workers)
    assert steps == 4 and all(len(s) == steps * per_worker for s in shards)
    for k in range(steps):
        together = np.concatenate([s[k * per_worker:(k + 1) * per_worker] for s in shards])
        np.testing.assert_array_equal(together, np.arange(k * global_batch, (k + 1) * global_batch))
    # one worker keeps the partial last batch; several drop it, never a step apart
    assert epoch_steps(n, global_batch, 1) == 5
    with pytest.raises(ConfigError, match="equal parts"):
        shard_indices(n, global_batch=129, workers=2, rank=0)


@pytest.mark.tf
def test_strategies(monkeypatch):
    from edgebnn.train import make_strategy

    assert type(make_strategy("mirrored")).__name__ == "MirroredStrategy"
    assert make_strategy("mirrored").num_replicas_in_sync == 1  # one CPU device here
    assert make_strategy("default").num_replicas_in_sync == 1
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="TF_CONFIG"):
        make_strategy("multi_worker")


@pytest.mark.tf
def test_multi_worker_after_tensorflow_started_says_so(monkeypatch):
    """The collective runtime is configured at startup; later it is a clear error, not a hang."""
    import tensorflow as tf

    from edgebnn.train import make_strategy

    float(tf.constant(1.0) + 1.0)  # TensorFlow has run an operation in this process
    monkeypatch.setenv("TF_CONFIG", _tf_config({"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
                                               "worker", 0))
    with pytest.raises(ConfigError, match="before TensorFlow runs its first operation"):
        make_strategy("multi_worker")


@pytest.mark.tf
@pytest.mark.slow
def test_mirrored_trains_like_default(runs, small_mnist, tmp_path):
    """MirroredStrategy on this machine's one device: the same run as the default strategy.

    The same batches, one replica: the histories and test predictions are
    equal (the 1e-6 of the resume test, for float summation order).
    """
    full, _ = runs
    mirrored = train(full.config.replace(strategy="mirrored"), tmp_path / "mirrored",
                     dataset=small_mnist, deterministic=True)
    assert mirrored.metrics["distribution"]["replicas"] == 1
    assert mirrored.steps == full.steps == 20
    for a, b in zip(full.history, mirrored.history, strict=True):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "val_macro_f1"):
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-6), key
    assert mirrored.metrics["confusion_matrix"] == full.metrics["confusion_matrix"]
    assert (tmp_path / "mirrored" / rundir.MODEL).is_file()

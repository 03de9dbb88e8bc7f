"""Train a zoo model on a dataset and write a run directory.

The run directory layout is :mod:`edgebnn.rundir`. Training is resumable:
after every finished epoch the weights, the optimizer state (including its
step counter, which drives the learning-rate schedule), the history and the
early-stopping state are checkpointed into ``RUN_DIR/checkpoints``. The data
order and the augmentation of epoch ``e`` are a pure function of
``(seed, e)``, so a run resumed after a kill sees the same batches an
uninterrupted run would.

Data split: the last ``val_size`` images of the training set are held out for
the per-epoch validation metrics (``val_loss``, ``val_accuracy``,
``val_macro_f1``); ``limit`` takes the first N of the remaining images. Test
metrics are computed once, at the end, on the full test set.

Models are trained on their logits (the input of the final softmax):
cross-entropy ``from_logits``, or the (squared) hinge loss on the logits with
labels in {-1, +1}. The saved model ends in the softmax, whose argmax is the
same.

Example:
    >>> from edgebnn.config import TrainConfig
    >>> from edgebnn.train import train
    >>> cfg = TrainConfig(dataset="mnist", model="bcnn", epochs=1, limit=2000)
    >>> result = train(cfg, "runs/smoke")  # doctest: +SKIP
    >>> result.metrics["test_accuracy"]  # doctest: +SKIP
    0.9...
"""

import csv
import io
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgebnn import rundir
from edgebnn.config import TrainConfig, dump_config, load_config
from edgebnn.errors import ConfigError, RunDirError
from edgebnn.io import atomic_output_path, atomic_write_text
from edgebnn.metrics import classification_report, macro_f1

STATE = "state.json"
BEST_WEIGHTS = "best.weights.h5"
HISTORY_KEYS = (
    "epoch", "loss", "accuracy", "val_loss", "val_accuracy", "val_macro_f1", "lr", "time_s",
)


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` did.

    Attributes:
        run_dir: the run directory.
        config: the resolved configuration.
        metrics: the content of ``metrics.json``.
        history: one dict per finished epoch (the rows of ``history.csv``).
        resumed_from: epochs already done when this call started (0 = fresh).
        stopped_early: early stopping ended the run before ``config.epochs``.
    """

    run_dir: Path
    config: TrainConfig
    metrics: dict
    history: list = field(repr=False)
    resumed_from: int = 0
    stopped_early: bool = False

    def to_dict(self):
        return {
            "run_dir": str(self.run_dir),
            "config": self.config.to_dict(),
            "metrics": self.metrics,
            "history": self.history,
            "resumed_from": self.resumed_from,
            "stopped_early": self.stopped_early,
        }


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    """Training, validation and test arrays (uint8 images, int64 labels)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple
    input_shape: tuple
    num_classes: int
    source: str


def split_dataset(ds, config: TrainConfig) -> Split:
    """Hold out the last ``val_size`` training images; keep the first ``limit`` of the rest."""
    n = len(ds.y_train)
    if config.val_size >= n:
        raise ConfigError(
            f"'val_size' {config.val_size} leaves no training images: "
            f"dataset '{ds.name}' has {n}"
        )
    cut = n - config.val_size
    x_train, y_train = ds.x_train[:cut], ds.y_train[:cut]
    if config.limit:
        x_train, y_train = x_train[: config.limit], y_train[: config.limit]
    return Split(
        x_train=x_train,
        y_train=y_train,
        x_val=ds.x_train[cut:],
        y_val=ds.y_train[cut:],
        x_test=ds.x_test,
        y_test=ds.y_test,
        class_names=tuple(ds.class_names),
        input_shape=tuple(ds.input_shape),
        num_classes=int(ds.num_classes),
        source=str(ds.source),
    )


def shift_images(x: np.ndarray, offsets: np.ndarray, max_shift: int) -> np.ndarray:
    """Translate each image by ``offsets[i] - max_shift`` pixels (rows, cols), zero fill.

    Args:
        x: ``(N, H, W, C)`` images.
        offsets: ``(N, 2)`` integers in ``0..2*max_shift``.
        max_shift: the largest shift in pixels.
    """
    if max_shift == 0:
        return x
    n, h, w, _ = x.shape
    s = max_shift
    padded = np.pad(x, ((0, 0), (s, s), (s, s), (0, 0)))
    out = np.empty_like(x)
    codes = offsets[:, 0] * (2 * s + 1) + offsets[:, 1]
    for code in np.unique(codes):
        idx = np.nonzero(codes == code)[0]
        oy, ox = divmod(int(code), 2 * s + 1)
        # offset oy means the window starts oy rows into the padded image:
        # the content moves by (s - oy) rows.
        out[idx] = padded[idx, oy : oy + h, ox : ox + w]
    return out


def epoch_data(x: np.ndarray, y: np.ndarray, *, seed: int, epoch: int, augment_shift: int = 0,
               as_float: bool = True):
    """The shuffled (and augmented) training data of one epoch.

    A pure function of ``(seed, epoch)``: the generator is
    ``numpy.random.default_rng([seed, epoch])``.

    Returns:
        ``(x_epoch float32, y_epoch int64)`` (``x_epoch`` keeps its dtype
        when ``as_float`` is false).
    """
    rng = np.random.default_rng([int(seed), int(epoch)])
    order = rng.permutation(len(y))
    xe = x[order]
    if augment_shift:
        offsets = rng.integers(0, 2 * augment_shift + 1, size=(len(y), 2))
        xe = shift_images(xe, offsets, augment_shift)
    return (xe.astype(np.float32) if as_float else xe), y[order]


def epoch_inputs(data: Split, config: TrainConfig, epoch: int) -> dict:
    """The keyword arguments of one epoch's ``fit``: arrays, or a tf.data pipeline.

    With ``config.augment`` off the shuffled (and shifted) arrays go to
    ``fit`` as they are; with ``crop`` / ``crop-flip`` the uint8 images go
    through :func:`edgebnn.augment.epoch_dataset`.
    """
    xe, ye = epoch_data(data.x_train, data.y_train, seed=config.seed, epoch=epoch,
                        augment_shift=config.augment_shift, as_float=config.augment == "none")
    labels = _one_hot(ye, data.num_classes)
    if config.augment == "none":
        return {"x": xe, "y": labels, "batch_size": config.batch_size}
    from edgebnn.augment import epoch_dataset

    return {"x": epoch_dataset(xe, labels, kind=config.augment, pad=config.augment_pad,
                               seed=config.seed, epoch=epoch, batch_size=config.batch_size)}


# ---------------------------------------------------------------------------
# model, optimizer, loss
# ---------------------------------------------------------------------------


def make_strategy(name: str):
    """Return the ``tf.distribute`` strategy named ``name``.

    Raises:
        ConfigError: ``multi_worker`` without a ``TF_CONFIG`` environment variable.
    """
    from edgebnn._tf import import_tf

    tf = import_tf()[0]
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise ConfigError(
                "strategy 'multi_worker' reads the cluster from the TF_CONFIG environment "
                "variable, which is not set"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ConfigError(f"unknown strategy '{name}'; expected default, mirrored or multi_worker")


def _is_chief() -> bool:
    spec = os.environ.get("TF_CONFIG")
    if not spec:
        return True
    task = json.loads(spec).get("task", {})
    return task.get("type") in ("chief", None) or (
        task.get("type") == "worker" and int(task.get("index", 0)) == 0
        and "chief" not in json.loads(spec).get("cluster", {})
    )


def lr_schedule(config: TrainConfig, steps_per_epoch: int):
    """The learning rate as a tf-keras schedule (or a float for ``constant``)."""
    from edgebnn._tf import import_tf

    _, tf_keras, _ = import_tf()
    if config.lr_schedule == "cosine":
        return tf_keras.optimizers.schedules.CosineDecay(
            config.lr, decay_steps=max(1, config.epochs * steps_per_epoch)
        )
    if config.lr_schedule == "exponential":
        return tf_keras.optimizers.schedules.ExponentialDecay(
            config.lr, decay_steps=steps_per_epoch, decay_rate=config.lr_decay, staircase=True
        )
    return float(config.lr)


def _lr_at(schedule, step: int) -> float:
    if isinstance(schedule, float):
        return schedule
    return float(schedule(step))


def make_optimizer(config: TrainConfig, schedule):
    """Adam, SGD (momentum 0.9), or Bop for the binary weights with Adam for the rest."""
    from edgebnn._tf import import_tf

    _, tf_keras, larq = import_tf()
    if config.optimizer == "adam":
        return tf_keras.optimizers.Adam(schedule)
    if config.optimizer == "sgd":
        return tf_keras.optimizers.SGD(schedule, momentum=0.9)
    # larq's CaseOptimizer and Bop are legacy-API optimizers.
    return larq.optimizers.CaseOptimizer(
        (
            larq.optimizers.Bop.is_binary_variable,
            larq.optimizers.Bop(threshold=config.bop_threshold, gamma=config.bop_gamma),
        ),
        default_optimizer=tf_keras.optimizers.legacy.Adam(schedule),
    )


def make_loss(name: str):
    """The loss on logits, for one-hot labels."""
    from edgebnn._tf import import_tf

    _, tf_keras, _ = import_tf()
    if name == "crossentropy":
        return tf_keras.losses.CategoricalCrossentropy(from_logits=True)
    if name == "hinge":
        return tf_keras.losses.Hinge()
    return tf_keras.losses.SquaredHinge()


def logits_model(model):
    """A model sharing ``model``'s layers whose output is the input of its softmax."""
    from edgebnn._tf import import_tf

    _, tf_keras, _ = import_tf()
    try:
        head = model.get_layer("softmax")
    except ValueError:
        return model
    return tf_keras.Model(model.inputs, head.input, name=f"{model.name}_logits")


def _one_hot(y, num_classes):
    return np.eye(num_classes, dtype=np.float32)[np.asarray(y, dtype=np.int64)]


# ---------------------------------------------------------------------------
# run directory
# ---------------------------------------------------------------------------


def check_run_dir(run_dir, *, resume: bool = False, force: bool = False) -> bool:
    """Check, without touching anything, that ``run_dir`` may be used.

    Returns:
        True when ``run_dir`` exists and is not empty.

    Raises:
        RunDirError: ``run_dir`` is a file; or it exists, is not empty, and
            neither ``resume`` nor ``force`` is set; or both are set.
    """
    run_dir = Path(run_dir)
    if resume and force:
        raise RunDirError("--resume and --force exclude each other: resume keeps RUN_DIR, force replaces it")
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"RUN_DIR {run_dir} exists and is not a directory")
    exists = run_dir.is_dir() and any(run_dir.iterdir())
    if exists and not (resume or force):
        raise RunDirError(
            f"RUN_DIR {run_dir} already exists and is not empty; pass --resume to continue "
            "it or --force to replace it"
        )
    return exists


def _prepare_run_dir(config: TrainConfig, run_dir: Path, resume: bool, force: bool) -> TrainConfig:
    """Create or check ``run_dir``; return the configuration to train with."""
    exists = check_run_dir(run_dir, resume=resume, force=force)
    if exists and resume:
        cfg_path = run_dir / rundir.CONFIG
        if not cfg_path.is_file():
            raise RunDirError(
                f"cannot resume {run_dir}: it has no {rundir.CONFIG} (not a run directory)"
            )
        stored = load_config(cfg_path)
        if config is not None:
            diff = {
                k: (v, config.to_dict()[k])
                for k, v in stored.to_dict().items()
                if config.to_dict()[k] != v
            }
            if diff:
                details = "; ".join(f"{k}: run has {a!r}, asked {b!r}" for k, (a, b) in sorted(diff.items()))
                raise RunDirError(
                    f"cannot resume {run_dir} with a different configuration ({details}); "
                    "resume with the same flags, or use --force to start over"
                )
        return stored
    if config is None:
        raise RunDirError(f"cannot resume {run_dir}: it does not exist and no configuration was given")
    if exists and force:
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / rundir.CONFIG, dump_config(config))
    return config


def _read_state(ckpt_dir: Path):
    path = ckpt_dir / STATE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RunDirError(f"cannot resume: checkpoint state {path} is unreadable: {exc}") from exc


def _history_csv(history: list) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(HISTORY_KEYS), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in HISTORY_KEYS})
    return buf.getvalue()


def read_history(path) -> list:
    """Read ``history.csv`` back into a list of dicts (numbers as float, epoch as int)."""
    rows = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            rows.append({k: (int(v) if k == "epoch" else (float(v) if v != "" else None))
                         for k, v in row.items()})
    return rows


def _summary_text(model) -> str:
    from edgebnn._tf import import_tf

    _, _, larq = import_tf()
    lines = []
    larq.models.summary(model, print_fn=lines.append)
    return "\n".join(lines) + "\n"


def _normalization(config: TrainConfig, data: Split):
    """``None`` or the per-channel ``(mean, std)`` of the run's training images."""
    if config.normalize == "range":
        return None
    from edgebnn.augment import channel_stats

    return channel_stats(data.x_train)


def _first_kernel(model):
    for layer in model.layers:
        if "conv" in type(layer).__name__.lower() and layer.get_weights():
            return layer.get_weights()[0], layer.name
    return None, None


def _latent_weights(model):
    """The latent kernel of the largest quantized layer (or the largest kernel)."""
    best = None
    for layer in model.layers:
        ws = layer.get_weights()
        if not ws or ws[0].ndim < 2:
            continue
        quantized = getattr(layer, "kernel_quantizer", None) is not None
        key = (quantized, ws[0].size)
        if best is None or key > best[0]:
            best = (key, ws[0], layer.name, quantized)
    if best is None:
        return None, None
    _, w, name, quantized = best
    return w, f"{name}: {'latent ' if quantized else ''}weights ({w.size:,})"


# ---------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------


def train(config, run_dir, *, resume=False, force=False, callbacks=(), data_dir=None,
          dataset=None, deterministic=False) -> TrainResult:
    """Train ``config.model`` on ``config.dataset`` and write ``run_dir``.

    Args:
        config: a :class:`~edgebnn.config.TrainConfig`; may be ``None`` with
            ``resume=True`` (the run's ``config.yml`` is used).
        run_dir: the run directory (created; never overwritten unless ``force``).
        resume: continue from the last finished epoch in ``run_dir``; the
            configuration must equal the stored one.
        force: delete an existing ``run_dir`` and start over.
        callbacks: tf-keras callbacks passed to every ``fit`` call (one call
            per epoch), e.g. the CLI's progress bar.
        data_dir: a directory searched first for the dataset files.
        dataset: an already loaded :class:`edgebnn.datasets.Dataset` (its
            name must match ``config.dataset``); skips loading.
        deterministic: enable TensorFlow's deterministic ops (for tests).

    Returns:
        A :class:`TrainResult`.

    Raises:
        RunDirError: ``run_dir`` exists without ``resume``/``force``, or it
            cannot be resumed.
        ConfigError, ModelError, DatasetError: bad configuration or data.
    """
    from edgebnn._tf import import_tf
    from edgebnn.datasets import canonical_name, load_dataset
    from edgebnn.zoo import build_model, model_profile

    t_start = time.perf_counter()
    run_dir = Path(run_dir)
    config = _prepare_run_dir(config, run_dir, resume, force)
    chief = _is_chief()
    tf, tf_keras, larq = import_tf()
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    tf_keras.utils.set_random_seed(config.seed)

    if dataset is None:
        dataset = load_dataset(config.dataset, data_dir=data_dir)
    elif canonical_name(dataset.name) != canonical_name(config.dataset):
        raise ConfigError(f"dataset '{dataset.name}' was given for a run on '{config.dataset}'")
    data = split_dataset(dataset, config)
    n_train = len(data.y_train)
    steps_per_epoch = math.ceil(n_train / config.batch_size)

    strategy = make_strategy(config.strategy)
    with strategy.scope():
        model = build_model(config.model, precision=config.precision,
                            input_shape=data.input_shape, num_classes=data.num_classes,
                            normalization=_normalization(config, data))
        net = logits_model(model)
        schedule = lr_schedule(config, steps_per_epoch)
        optimizer = make_optimizer(config, schedule)
        loss_fn = make_loss(config.loss)
        net.compile(optimizer=optimizer, loss=loss_fn,
                    metrics=[tf_keras.metrics.CategoricalAccuracy(name="accuracy")])
        if not isinstance(optimizer, tf_keras.optimizers.legacy.Optimizer):
            # create the slots now so a checkpoint restores them at once
            optimizer.build(net.trainable_variables)

    ckpt_dir = run_dir / rundir.CHECKPOINTS
    if not chief:
        ckpt_dir = run_dir / f".worker-checkpoints-{os.getpid()}"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = tf.train.Checkpoint(model=net, optimizer=optimizer)
    checkpoint.save_counter  # noqa: B018 -- create it so write() stores it and restore matches

    history, start_epoch, best, stopped = [], 0, None, False
    elapsed_before = 0.0
    state = _read_state(ckpt_dir) if resume else None
    if state is not None:
        status = checkpoint.restore(str(ckpt_dir / state["checkpoint"]))
        status.assert_existing_objects_matched()
        history = state["history"]
        start_epoch = int(state["epoch"])
        best = state.get("best")
        stopped = bool(state.get("stopped_early", False))
        elapsed_before = float(state.get("wall_time_s", 0.0))
    resumed_from = start_epoch

    y_val_1h = _one_hot(data.y_val, data.num_classes)
    x_val = data.x_val.astype(np.float32)
    epoch = start_epoch
    t_session = time.perf_counter()
    for epoch in range(start_epoch, config.epochs):
        if stopped:
            break
        t0 = time.perf_counter()
        inputs = epoch_inputs(data, config, epoch)
        lr = _lr_at(schedule, epoch * steps_per_epoch)
        hist = net.fit(**inputs, epochs=epoch + 1, initial_epoch=epoch, shuffle=False, verbose=0,
                       callbacks=list(callbacks))
        del inputs
        row = {"epoch": epoch + 1,
               "loss": float(hist.history["loss"][-1]),
               "accuracy": float(hist.history["accuracy"][-1])}
        if len(data.y_val):
            logits = net.predict(x_val, batch_size=512, verbose=0)
            row["val_loss"] = float(loss_fn(y_val_1h, logits))
            pred = logits.argmax(axis=1)
            row["val_accuracy"] = float((pred == data.y_val).mean())
            row["val_macro_f1"] = macro_f1(data.y_val, pred, data.num_classes)
        row["lr"] = lr
        row["time_s"] = round(time.perf_counter() - t0, 3)
        history.append(row)

        if config.early_stop and len(data.y_val):
            best, improved, stopped = early_stop_update(best, row, config.early_stop)
            if improved:
                net.save_weights(str(ckpt_dir / BEST_WEIGHTS))

        saved = checkpoint.write(str(ckpt_dir / f"epoch-{epoch + 1:04d}"))
        _write_state(ckpt_dir, {
            "epoch": epoch + 1,
            "checkpoint": Path(saved).name,
            "history": history,
            "best": best,
            "stopped_early": stopped,
            "wall_time_s": elapsed_before + time.perf_counter() - t_session,
        })
        _prune_checkpoints(ckpt_dir, keep=Path(saved).name)

    if config.early_stop and best is not None and (ckpt_dir / BEST_WEIGHTS).is_file():
        net.load_weights(str(ckpt_dir / BEST_WEIGHTS))

    # -- final evaluation on the full test set --------------------------------
    probs = model.predict(data.x_test.astype(np.float32), batch_size=512, verbose=0)
    report = classification_report(data.y_test, probs.argmax(axis=1), data.num_classes,
                                   data.class_names)
    profile = model_profile(model)
    wall = elapsed_before + time.perf_counter() - t_session
    metrics = {
        "dataset": config.dataset,
        "model": config.model,
        "precision": config.precision,
        "test_accuracy": report["accuracy"],
        "macro_f1": report["macro_f1"],
        "per_class": report["per_class"],
        "confusion_matrix": report["confusion_matrix"],
        "class_names": list(data.class_names),
        "parameters": profile["parameters"],
        "binary_parameters": profile["binary_parameters"],
        "macs": profile["macs"],
        "binary_macs": profile["binary_macs"],
        "model_size_bytes": profile["size_bytes"],
        "epochs": len(history),
        "best_epoch": best["epoch"] if best else None,
        "stopped_early": stopped,
        "train_images": n_train,
        "val_images": int(len(data.y_val)),
        "test_images": int(len(data.y_test)),
        "wall_time_s": round(wall, 2),
        "session_time_s": round(time.perf_counter() - t_start, 2),
        "resumed_from_epoch": resumed_from,
        "data_source": data.source,
        "versions": {"tensorflow": tf.__version__, "tf_keras": tf_keras.__version__,
                     "larq": getattr(larq, "__version__", "?")},
    }
    if chief:
        _write_outputs(run_dir, model, history, metrics, data)
    else:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    return TrainResult(run_dir=run_dir, config=config, metrics=metrics, history=history,
                       resumed_from=resumed_from, stopped_early=stopped)


def early_stop_update(best, row: dict, patience: int):
    """One early-stopping step on validation accuracy.

    Args:
        best: ``{"epoch", "val_accuracy"}`` of the best epoch so far, or None.
        row: this epoch's history row (``epoch`` is 1-based).
        patience: stop after this many epochs without a strictly better
            validation accuracy.

    Returns:
        ``(best, improved, stop)``.
    """
    if best is None or row["val_accuracy"] > best["val_accuracy"]:
        return {"epoch": row["epoch"], "val_accuracy": row["val_accuracy"]}, True, False
    return best, False, row["epoch"] - best["epoch"] >= patience


def _write_state(ckpt_dir: Path, state: dict) -> None:
    atomic_write_text(ckpt_dir / STATE, json.dumps(state, indent=1))


def _prune_checkpoints(ckpt_dir: Path, keep: str) -> None:
    """Delete checkpoint files of earlier epochs (the state names the kept one)."""
    for path in ckpt_dir.glob("epoch-*"):
        if not path.name.startswith(keep + ".") and path.name != keep:
            path.unlink(missing_ok=True)


def _write_outputs(run_dir: Path, model, history, metrics, data) -> None:
    from edgebnn import plots

    with atomic_output_path(run_dir / rundir.MODEL) as tmp:
        model.save(str(tmp), include_optimizer=False, save_format="h5")
    atomic_write_text(run_dir / rundir.HISTORY, _history_csv(history))
    atomic_write_text(run_dir / rundir.SUMMARY, _summary_text(model))

    title = f"{metrics['dataset']} {metrics['model']} {metrics['precision']}"
    plots.save_figure(plots.curves_figure(history, title), run_dir / "curves.png")
    plots.save_figure(plots.confusion_figure(metrics["confusion_matrix"], data.class_names),
                      run_dir / "confusion.png")
    kernel, name = _first_kernel(model)
    if kernel is not None:
        plots.save_figure(plots.kernels_figure(kernel, f"First-layer kernels ({name})"),
                          run_dir / "kernels.png")
    weights, label = _latent_weights(model)
    if weights is not None:
        plots.save_figure(plots.weights_figure(weights, label), run_dir / "weights.png")
    # Written last: a RUN_DIR with metrics.json is a finished run (compare, sweep).
    atomic_write_text(run_dir / rundir.METRICS, json.dumps(metrics, indent=2) + "\n")

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

Distribution (``strategy``): ``batch_size`` is the batch of one replica; a
step trains on the global batch ``batch_size * replicas`` (replicas: local
devices times workers), so more workers mean fewer, larger steps per epoch.
With ``multi_worker`` (``tf.distribute.MultiWorkerMirroredStrategy``, the
cluster read from ``TF_CONFIG``) the global batch of step ``k`` is the
``k``-th slice of the epoch's order, cut into one equal part per worker
(:func:`shard_indices`): together the workers train on the batches one
process with the global batch would, and every worker runs ``n // global``
steps (the remainder of each epoch is dropped, so no worker waits for
another that has run out of data). Only the chief (task ``chief``, or worker
0 when there is none) writes ``RUN_DIR``; every worker takes part in the
collective reads (BatchNorm statistics, checkpoints) and writes its own
checkpoints to a temporary directory that is removed. Resuming reads the
chief's ``RUN_DIR/checkpoints`` on every worker, so ``RUN_DIR`` must be on a
filesystem all workers share.

Example:
    >>> from edgebnn.config import TrainConfig
    >>> from edgebnn.train import train
    >>> cfg = TrainConfig(dataset="mnist", model="bcnn", epochs=1, limit=2000)
    >>> result = train(cfg, "runs/smoke")  # doctest: +SKIP
    >>> result.metrics["test_accuracy"]  # doctest: +SKIP
    0.9...
"""

import csv
import hashlib
import io
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgebnn import rundir
from edgebnn.config import TrainConfig, dump_config, load_config
from edgebnn.errors import ConfigError, RunDirError, WorkerError
from edgebnn.io import atomic_output_path, atomic_write_text
from edgebnn.metrics import classification_report, macro_f1

STATE = "state.json"
BEST_WEIGHTS = "best.weights.h5"
HISTORY_KEYS = (
    "epoch", "loss", "accuracy", "val_loss", "val_accuracy", "val_macro_f1", "lr", "time_s",
    "images_per_s",
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
        chief: this process wrote ``run_dir``. A worker that is not the chief
            writes nothing; its ``metrics`` hold only ``epochs`` and
            ``distribution``.
        steps: training steps this process ran in this call.
    """

    run_dir: Path
    config: TrainConfig
    metrics: dict
    history: list = field(repr=False)
    resumed_from: int = 0
    stopped_early: bool = False
    chief: bool = True
    steps: int = 0

    def to_dict(self):
        return {
            "run_dir": str(self.run_dir),
            "config": self.config.to_dict(),
            "metrics": self.metrics,
            "history": self.history,
            "resumed_from": self.resumed_from,
            "stopped_early": self.stopped_early,
            "chief": self.chief,
            "steps": self.steps,
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


def _augment_of(config: TrainConfig, epoch: int, x):
    """The tf.data map of this epoch's augmentation (:func:`edgebnn.augment.augment_map`), or None."""
    if config.augment == "none":
        return None
    from edgebnn.augment import augment_map

    return augment_map(config.augment, pad=config.augment_pad, seed=config.seed, epoch=epoch,
                       n=len(x), shape=x.shape[1:])


# ---------------------------------------------------------------------------
# model, optimizer, loss
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerRole:
    """This process's place in the training cluster.

    Attributes:
        workers: processes that train together (1 unless ``multi_worker``).
        rank: this process's position among them (0 = the chief), the order
            in which ``MultiWorkerMirroredStrategy`` numbers its input
            pipelines.
        chief: this process writes ``RUN_DIR``.
        task: ``TF_CONFIG``'s task as ``type:index`` (None on one worker).
    """

    workers: int = 1
    rank: int = 0
    chief: bool = True
    task: str | None = None


def worker_role(strategy: str, tf_config=None) -> WorkerRole:
    """Read this process's :class:`WorkerRole` from ``TF_CONFIG`` (parsed once).

    Only ``multi_worker`` reads ``TF_CONFIG``; every other strategy trains in
    one process, which is its own chief. The chief is the ``chief`` task, or
    worker 0 when the cluster has no ``chief`` job (TensorFlow's rule).

    Example:
        >>> spec = '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}'
        >>> worker_role("multi_worker", spec)
        WorkerRole(workers=2, rank=1, chief=False, task='worker:1')

    Args:
        strategy: the configured strategy name.
        tf_config: the ``TF_CONFIG`` JSON text (default: the environment's).

    Raises:
        ConfigError: ``multi_worker`` without ``TF_CONFIG``, or a ``TF_CONFIG``
            that is not JSON, has no cluster, or names a task not in it.
    """
    if strategy != "multi_worker":
        return WorkerRole()
    spec = os.environ.get("TF_CONFIG") if tf_config is None else tf_config
    if not spec:
        raise ConfigError(
            "strategy 'multi_worker' reads the cluster from the TF_CONFIG environment "
            "variable, which is not set"
        )
    try:
        parsed = json.loads(spec)
    except ValueError as exc:
        raise ConfigError(f"TF_CONFIG is not valid JSON: {exc}") from exc
    cluster = parsed.get("cluster") if isinstance(parsed, dict) else None
    task = parsed.get("task") if isinstance(parsed, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ConfigError(
            'TF_CONFIG must be an object with "cluster" and "task" objects, found '
            f"{spec[:200]!r}"
        )
    jobs = {job: cluster.get(job) or [] for job in ("chief", "worker")}
    if not all(isinstance(v, list) for v in jobs.values()):
        raise ConfigError(f"TF_CONFIG cluster jobs must be lists of host:port, found {cluster!r}")
    kind, index = task.get("type"), task.get("index", 0)
    if kind not in jobs or not isinstance(index, int) or not 0 <= index < len(jobs[kind]):
        raise ConfigError(
            f"TF_CONFIG task {task!r} is not in its cluster: expected type 'chief' or "
            f"'worker' with an index below the job's size (chief: {len(jobs['chief'])}, "
            f"worker: {len(jobs['worker'])})"
        )
    has_chief = bool(jobs["chief"])
    rank = index if kind == "chief" else index + int(has_chief)
    return WorkerRole(workers=len(jobs["chief"]) + len(jobs["worker"]), rank=rank,
                      chief=rank == 0, task=f"{kind}:{index}")


def make_strategy(name: str, *, role: WorkerRole | None = None):
    """Return the ``tf.distribute`` strategy named ``name``.

    ``default`` trains on one device; ``mirrored`` keeps one replica per local
    GPU (or, without GPUs, per logical CPU device); ``multi_worker`` starts
    this process's collective server and waits for the other workers in
    ``TF_CONFIG``; it has to be created before TensorFlow runs its first
    operation in the process.

    Args:
        name: ``default``, ``mirrored`` or ``multi_worker``.
        role: this process's role, when the caller has already read it with
            :func:`worker_role`; otherwise ``multi_worker`` reads ``TF_CONFIG``
            here to check it before TensorFlow does.

    Raises:
        ConfigError: ``multi_worker`` without a usable ``TF_CONFIG``, or after
            TensorFlow has already started in this process.
    """
    from edgebnn._tf import import_tf

    tf = import_tf()[0]
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        # one replica per GPU; without GPUs, one per logical CPU device (one
        # unless tf.config.set_logical_device_configuration made more)
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "multi_worker":
        if role is None:
            worker_role(name)  # check TF_CONFIG before TensorFlow reads it
        try:
            return tf.distribute.MultiWorkerMirroredStrategy()
        except RuntimeError as exc:
            raise ConfigError(
                "strategy 'multi_worker' must be created before TensorFlow runs its first "
                f"operation in this process, but TensorFlow had already started ({exc}); "
                "train in a fresh process"
            ) from exc
    raise ConfigError(f"unknown strategy '{name}'; expected default, mirrored or multi_worker")


def shard_indices(n: int, *, global_batch: int, workers: int, rank: int) -> np.ndarray:
    """The positions of an epoch's order that worker ``rank`` trains on.

    Step ``k`` trains on positions ``k*G .. k*G + G - 1`` (``G`` the global
    batch); worker ``r`` of ``W`` takes the ``r``-th of ``W`` equal slices of
    them. The last ``n % G`` positions are dropped, so every worker runs
    ``n // G`` steps.

    Example:
        >>> shard_indices(10, global_batch=4, workers=2, rank=1).tolist()
        [2, 3, 6, 7]

    Raises:
        ConfigError: ``G`` is not a multiple of ``workers``.
    """
    if global_batch % workers:
        raise ConfigError(f"global batch {global_batch} does not split into {workers} equal parts")
    part = global_batch // workers
    starts = np.arange(n // global_batch)[:, None] * global_batch + rank * part
    return (starts + np.arange(part)).reshape(-1)


def epoch_steps(n: int, global_batch: int, workers: int) -> int:
    """Steps per epoch: the last partial batch is kept on one worker, dropped on several."""
    return math.ceil(n / global_batch) if workers == 1 else n // global_batch


def _epoch_input(strategy, role: WorkerRole, x, y, global_batch: int, *, augment=None,
                 teacher=None):
    """The training input of one epoch: a dataset on one worker, this worker's shard on several.

    ``augment``: None (``x`` is float), or the map of :func:`edgebnn.augment.augment_map`
    applied to each uint8 image with its position in the epoch's order.
    """
    from edgebnn._tf import import_tf

    tf = import_tf()[0]

    def pipeline(idx, batch, drop_remainder):
        ds = tf.data.Dataset.from_tensor_slices((idx.astype(np.int64), x[idx], y[idx]))
        if augment is None:
            ds = ds.map(lambda i, image, label: (image, label))
        else:
            ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.batch(batch, drop_remainder=drop_remainder)
        if teacher is not None:
            ds = ds.map(lambda image, label: (image, distill_targets(teacher, image, label)))
        return ds.prefetch(2)

    if role.workers == 1:
        # fit splits each global batch among the local replicas
        return pipeline(np.arange(len(y)), global_batch, False)

    def dataset_fn(ctx):
        idx = shard_indices(len(y), global_batch=global_batch, workers=ctx.num_input_pipelines,
                            rank=ctx.input_pipeline_id)
        return pipeline(np.asarray(idx), ctx.get_per_replica_batch_size(global_batch), True)

    return strategy.distribute_datasets_from_function(dataset_fn)


def _check_workers_agree(strategy, role: WorkerRole, values: dict) -> None:
    """Raise unless every worker holds the same integer ``values`` (one all-reduce).

    Catches workers started with different flags, or resuming from different
    checkpoints, before they wait on each other forever. Sums each value and
    its square over the replicas: ``n * sum(x*x) == sum(x)**2`` exactly when
    all ``n`` are equal.
    """
    if role.workers == 1:
        return
    from edgebnn._tf import import_tf

    tf = import_tf()[0]
    vec = np.array(list(values.values()), dtype=np.float64)
    local = np.concatenate([vec, vec * vec])
    per_replica = strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(local))
    total = strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None).numpy()
    n, k = strategy.num_replicas_in_sync, len(vec)
    differ = [name for i, name in enumerate(values) if n * total[k + i] != total[i] ** 2]
    if differ:
        mine = ", ".join(f"{name}={int(values[name])}" for name in differ)
        raise ConfigError(
            f"worker {role.task}: the {role.workers} workers disagree on {', '.join(differ)} "
            f"(this worker: {mine}); start every worker with the same flags, and with "
            "--resume on a RUN_DIR that all workers share"
        )


# ---------------------------------------------------------------------------
# knowledge distillation
# ---------------------------------------------------------------------------


def load_teacher(spec: str, *, input_shape, num_classes: int):
    """Load the distillation teacher named by ``spec`` and check it fits the run.

    Args:
        spec: a run directory (its ``model.h5``), a Keras ``.h5``/``.keras``
            file, or a shipped pretrained model's name. Loaded through
            :func:`edgebnn.convert.load_keras_model`, which refuses stored
            code (Lambda layers, serialized functions, unknown classes).
        input_shape: the run's image shape ``(H, W, C)``.
        num_classes: the run's class count.

    Returns:
        The teacher ``tf_keras.Model`` (its output: class probabilities).

    Raises:
        ConfigError: ``spec`` names nothing loadable, or the teacher's input
            shape or class count differs from the run's (both are named).
    """
    from edgebnn.convert import load_keras_model
    from edgebnn.errors import EdgeBnnError

    from edgebnn.modelref import ModelRef

    try:
        path = Path(ModelRef.resolve(spec).require_keras("use as a --teacher"))
    except EdgeBnnError as exc:
        raise ConfigError(f"--teacher '{spec}': {exc}") from exc
    try:
        teacher = load_keras_model(path)
    except EdgeBnnError as exc:
        raise ConfigError(f"--teacher '{spec}': expected a Keras model; {exc}") from exc
    want = tuple(int(d) for d in input_shape)
    got = tuple(teacher.input_shape[1:]) if not isinstance(teacher.input_shape, list) else None
    if got != want:
        raise ConfigError(
            f"--teacher '{spec}' takes inputs of shape {got}; the run's images are {want}"
        )
    classes = teacher.output_shape[-1] if not isinstance(teacher.output_shape, list) else None
    if classes != num_classes:
        raise ConfigError(
            f"--teacher '{spec}' predicts {classes} classes; the run's dataset has {num_classes}"
        )
    teacher.trainable = False
    return teacher


def distill_targets(teacher, images, one_hot):
    """The training target of a distilled batch: ``[one-hot labels | teacher log-probabilities]``.

    Runs inside the tf.data pipeline (graph mode, no per-step Python).
    """
    from edgebnn._tf import import_tf

    tf = import_tf()[0]
    probs = teacher(images, training=False)
    log_probs = tf.math.log(tf.clip_by_value(tf.cast(probs, tf.float32), 1e-12, 1.0))
    return tf.concat([one_hot, log_probs], axis=1)


def make_distill_loss(hard_loss, num_classes: int, temperature: float, weight: float):
    """The distillation loss on targets of :func:`distill_targets` and student logits ``s``.

    ``loss = W * T**2 * KL(softmax(t / T) || softmax(s / T)) + (1 - W) * hard_loss(y, s)``,
    ``t`` the teacher's log-probabilities (logits up to a constant, which
    the softmax ignores), ``y`` the one-hot labels, ``T`` the temperature and
    ``W`` the weight. ``W = 0`` is the plain hard-label loss.
    """
    from edgebnn._tf import import_tf

    tf, tf_keras, _ = import_tf()
    t, w, c = float(temperature), float(weight), int(num_classes)

    def distill_loss(y_true, logits):
        hard = hard_loss(y_true[:, :c], logits)
        if w == 0.0:
            return hard
        p_teacher = tf.nn.softmax(y_true[:, c:] / t)
        log_p_student = tf.nn.log_softmax(logits / t)
        log_p_teacher = tf.nn.log_softmax(y_true[:, c:] / t)
        kl = tf.reduce_mean(tf.reduce_sum(p_teacher * (log_p_teacher - log_p_student), axis=1))
        return w * t * t * kl + (1.0 - w) * hard

    return distill_loss


def _label_accuracy(num_classes: int, tf_keras):
    """Accuracy on the one-hot part of (possibly distillation-extended) targets."""

    class LabelAccuracy(tf_keras.metrics.CategoricalAccuracy):
        def update_state(self, y_true, y_pred, sample_weight=None):
            return super().update_state(y_true[:, :num_classes], y_pred, sample_weight)

    return LabelAccuracy(name="accuracy")


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


def _prepare_run_dir(config: TrainConfig, run_dir: Path, resume: bool, force: bool,
                     *, write: bool = True) -> TrainConfig:
    """Create or check ``run_dir``; return the configuration to train with.

    With ``write=False`` (a worker that is not the chief) nothing is created
    or deleted: a resumed run's stored configuration is read and compared,
    anything else is left to the chief.
    """
    if not write and not (resume and (run_dir / rundir.CONFIG).is_file()):
        if config is None:
            raise RunDirError(f"cannot resume {run_dir}: it has no {rundir.CONFIG} and no "
                              "configuration was given")
        return config
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

    The phases, each a function below: set up (the run directory, this
    process's role, TensorFlow and the data), compile, restore, one epoch
    at a time (each checkpointed), final metrics, write outputs.

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
    t_start = time.perf_counter()
    run_dir = Path(run_dir)
    config, role = _resolve_config(config, run_dir, resume, force)
    strategy = _start_tensorflow(config, role, deterministic)
    data = _load_split(config, dataset, data_dir)
    if role.chief:  # only now, so that a missing dataset leaves no RUN_DIR behind (nor removes one)
        config = _prepare_run_dir(config, run_dir, resume, force)
    run = _plan_run(config, role, strategy, run_dir, data)
    model = _compile(run)
    progress = _restore(run, model, resume)
    _train_epochs(run, model, progress, callbacks)
    done = {"epochs done": len(progress.history)}
    if not role.chief:
        # wait for the chief to write RUN_DIR, so that no worker leaves early
        _check_workers_agree(strategy, role, done)
        metrics = {"epochs": len(progress.history), "distribution": _distribution(run)}
        return _result(run, model, progress, metrics)
    _keep_best_weights(run, model, progress)
    metrics = _final_metrics(run, model, progress, t_start)
    _write_outputs(run_dir, model.local_model, progress.history, metrics, run.data)
    _check_workers_agree(strategy, role, done)
    return _result(run, model, progress, metrics)


@dataclass(frozen=True)
class _Run:
    """What every phase of one :func:`train` call shares, fixed before the first step."""

    config: TrainConfig
    role: WorkerRole
    strategy: object = field(repr=False)
    run_dir: Path
    data: Split = field(repr=False)
    global_batch: int
    steps_per_epoch: int

    @property
    def ckpt_dir(self) -> Path:
        return self.run_dir / rundir.CHECKPOINTS


@dataclass(frozen=True)
class _Model:
    """The compiled model and what training and evaluation use beside it."""

    net: object  # the distributed model's logits, compiled
    optimizer: object
    schedule: object
    loss_fn: object  # the hard-label loss on logits (also the validation loss)
    teacher: object  # the distillation teacher, or None
    local_model: object  # a plain copy outside the strategy (ends in the softmax)
    local_net: object  # its logits
    steps: object  # the callback counting this process's training steps


@dataclass
class _Progress:
    """Training's state across epochs: what a checkpoint saves and a resume restores."""

    checkpoint: object = field(repr=False)  # tf.train.Checkpoint of net and optimizer
    write_dir: Path  # where this process writes its checkpoints
    history: list = field(default_factory=list)
    resumed_from: int = 0  # epochs done before this call
    best: dict | None = None
    stopped: bool = False
    elapsed_before: float = 0.0  # training wall time of the earlier sessions
    t_session: float = 0.0  # perf_counter() when this session's epochs began

    def wall_time(self) -> float:
        """Training wall time so far, over every session."""
        return self.elapsed_before + time.perf_counter() - self.t_session


def _resolve_config(config, run_dir: Path, resume: bool, force: bool):
    """Return ``(config, role)``: the configuration to train with and this process's role.

    ``TF_CONFIG`` is read here, once (:func:`worker_role`). Nothing is
    written: the chief checks ``run_dir`` (:func:`check_run_dir`) and a
    resumed run's stored configuration is read and compared; :func:`train`
    creates ``run_dir`` once the data has loaded.
    """
    if config is None:  # --resume with RUN_DIR/config.yml as it is (reading only)
        config = _prepare_run_dir(None, run_dir, resume, force, write=False)
    role = worker_role(config.strategy)
    if role.chief:
        check_run_dir(run_dir, resume=resume, force=force)
    return _prepare_run_dir(config, run_dir, resume, force, write=False), role


def _start_tensorflow(config: TrainConfig, role: WorkerRole, deterministic: bool):
    """Create the strategy, then seed TensorFlow; return the strategy."""
    from edgebnn._tf import import_tf

    tf, tf_keras, _ = import_tf()
    # first: multi_worker configures the collective runtime, which has to
    # happen before TensorFlow runs any operation in this process
    strategy = make_strategy(config.strategy, role=role)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    tf_keras.utils.set_random_seed(config.seed)
    return strategy


def _load_split(config: TrainConfig, dataset, data_dir) -> Split:
    """Load ``config.dataset`` (or check the given one) and split it (:func:`split_dataset`)."""
    from edgebnn.datasets import canonical_name, load_dataset

    if dataset is None:
        dataset = load_dataset(config.dataset, data_dir=data_dir)
    elif canonical_name(dataset.name) != canonical_name(config.dataset):
        raise ConfigError(f"dataset '{dataset.name}' was given for a run on '{config.dataset}'")
    return split_dataset(dataset, config)


def _plan_run(config, role, strategy, run_dir: Path, data: Split) -> _Run:
    """Fix the global batch and the steps per epoch.

    Raises:
        ConfigError: the training images make no step of the global batch.
    """
    n_train = len(data.y_train)
    global_batch = config.batch_size * strategy.num_replicas_in_sync
    steps_per_epoch = epoch_steps(n_train, global_batch, role.workers)
    if steps_per_epoch == 0:
        raise ConfigError(
            f"{n_train} training images make no step of the global batch {global_batch} "
            f"({config.batch_size} per replica x {strategy.num_replicas_in_sync} replicas); "
            "lower --batch-size or raise --limit"
        )
    return _Run(config=config, role=role, strategy=strategy, run_dir=run_dir, data=data,
                global_batch=global_batch, steps_per_epoch=steps_per_epoch)


def _compile(run: _Run) -> _Model:
    """Build and compile the model inside the strategy, and its plain copy for evaluation."""
    from edgebnn._tf import import_tf
    from edgebnn.zoo import build_model

    _, tf_keras, _ = import_tf()
    config, data = run.config, run.data
    with run.strategy.scope():
        model = build_model(config.model, precision=config.precision,
                            input_shape=data.input_shape, num_classes=data.num_classes,
                            normalization=_normalization(config, data))
        net = logits_model(model)
        schedule = lr_schedule(config, run.steps_per_epoch)
        optimizer = make_optimizer(config, schedule)
        loss_fn = make_loss(config.loss)
        teacher = None
        if config.teacher:
            teacher = load_teacher(config.teacher, input_shape=data.input_shape,
                                   num_classes=data.num_classes)
            train_loss = make_distill_loss(loss_fn, data.num_classes,
                                           config.distill_temperature, config.distill_weight)
            accuracy = _label_accuracy(data.num_classes, tf_keras)
        else:
            train_loss = loss_fn
            accuracy = tf_keras.metrics.CategoricalAccuracy(name="accuracy")
        net.compile(optimizer=optimizer, loss=train_loss, metrics=[accuracy])
        # The step's loss and accuracy are already aggregated over all replicas
        # (the metrics' results are all-reduced); tf-keras's default ("auto" =
        # "sum" outside TPUs) would add them up once more per worker.
        net.distribute_reduction_method = "first"
        if not isinstance(optimizer, tf_keras.optimizers.legacy.Optimizer):
            # create the slots now so a checkpoint restores them at once
            optimizer.build(net.trainable_variables)
    # Evaluation and outputs run on a plain copy (same layer names), outside
    # the strategy: reading the distributed model's BatchNorm statistics is
    # an all-reduce every worker has to join, so it happens once per epoch,
    # on every worker, in net.get_weights().
    local_model = tf_keras.models.clone_model(model)
    return _Model(net=net, optimizer=optimizer, schedule=schedule, loss_fn=loss_fn,
                  teacher=teacher, local_model=local_model,
                  local_net=logits_model(local_model), steps=_step_counter(tf_keras))


def _restore(run: _Run, model: _Model, resume: bool) -> _Progress:
    """Set up checkpointing; on ``resume``, restore the last finished epoch.

    Ends with every worker checking that all start from the same
    configuration, data and epoch.

    Raises:
        RunDirError: the state is unreadable, or the run was trained with
            another global batch.
    """
    from edgebnn._tf import import_tf

    tf = import_tf()[0]
    config, role, ckpt_dir = run.config, run.role, run.ckpt_dir
    if role.chief:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        write_dir = ckpt_dir
    else:
        # saving is collective too: the others write where nobody reads
        write_dir = Path(tempfile.mkdtemp(prefix=f"edgebnn-worker{role.rank}-"))
    checkpoint = tf.train.Checkpoint(model=model.net, optimizer=model.optimizer)
    checkpoint.save_counter  # noqa: B018 -- create it so write() stores it and restore matches
    progress = _Progress(checkpoint=checkpoint, write_dir=write_dir)

    state = _read_state(ckpt_dir) if resume else None
    if state is not None:
        trained_with = state.get("global_batch_size", run.global_batch)
        if trained_with != run.global_batch:
            raise RunDirError(
                f"cannot resume {run.run_dir}: it was trained with a global batch of "
                f"{trained_with}, this cluster makes {run.global_batch} ({config.batch_size} "
                f"per replica x {run.strategy.num_replicas_in_sync} replicas); resume with as "
                "many workers"
            )
        status = checkpoint.restore(str(ckpt_dir / state["checkpoint"]))
        status.assert_existing_objects_matched()
        progress.history = state["history"]
        progress.resumed_from = int(state["epoch"])
        progress.best = state.get("best")
        progress.stopped = bool(state.get("stopped_early", False))
        progress.elapsed_before = float(state.get("wall_time_s", 0.0))
    digest = int(hashlib.sha256(dump_config(config).encode()).hexdigest()[:5], 16)
    _check_workers_agree(run.strategy, role, {"configuration": digest,
                                              "training images": len(run.data.y_train),
                                              "epochs done": progress.resumed_from})
    return progress


def _train_epochs(run: _Run, model: _Model, progress: _Progress, callbacks) -> None:
    """Train the epochs left, checkpointing each; a lost worker is a :class:`WorkerError`.

    Stops before ``config.epochs`` when early stopping says so. A worker that
    is not the chief removes its checkpoint directory at the end.
    """
    from edgebnn._tf import import_tf

    tf = import_tf()[0]
    data = run.data
    val = (data.x_val.astype(np.float32), _one_hot(data.y_val, data.num_classes))
    progress.t_session = time.perf_counter()
    try:
        for epoch in range(progress.resumed_from, run.config.epochs):
            if progress.stopped:
                break
            row = _train_epoch(run, model, epoch, callbacks, val)
            _end_epoch(run, model, progress, row)
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
            tf.errors.AbortedError) as exc:
        if run.role.workers == 1:
            raise
        done = len(progress.history)
        raise WorkerError(
            f"worker {run.role.task}: another worker stopped during epoch {done + 1} "
            f"({type(exc).__name__}: {_cause_line(str(exc))}); restart every worker with "
            f"--resume to continue after epoch {done}"
        ) from exc
    finally:
        if not run.role.chief:
            shutil.rmtree(progress.write_dir, ignore_errors=True)


def _train_epoch(run: _Run, model: _Model, epoch: int, callbacks, val) -> dict:
    """Train epoch ``epoch`` (0-based); return its history row.

    ``val`` is ``(float images, one-hot labels)`` of the validation split.
    Every worker computes the validation metrics: the early-stopping
    decision has to be the same everywhere.
    """
    config, data, role = run.config, run.data, run.role
    t0 = time.perf_counter()
    xe, ye = epoch_data(data.x_train, data.y_train, seed=config.seed, epoch=epoch,
                        augment_shift=config.augment_shift, as_float=config.augment == "none")
    lr = _lr_at(model.schedule, epoch * run.steps_per_epoch)
    inputs = _epoch_input(run.strategy, role, xe, _one_hot(ye, data.num_classes),
                          run.global_batch, augment=_augment_of(config, epoch, xe),
                          teacher=model.teacher)
    t_fit = time.perf_counter()
    hist = model.net.fit(inputs, epochs=epoch + 1, initial_epoch=epoch,
                         steps_per_epoch=run.steps_per_epoch, verbose=0,
                         callbacks=[model.steps, *callbacks])
    fit_s = time.perf_counter() - t_fit
    del xe, inputs
    model.local_net.set_weights(model.net.get_weights())
    row = {"epoch": epoch + 1,
           "loss": float(hist.history["loss"][-1]),
           "accuracy": float(hist.history["accuracy"][-1])}
    if len(data.y_val):
        x_val, y_val_1h = val
        logits = model.local_net.predict(x_val, batch_size=512, verbose=0)
        row["val_loss"] = float(model.loss_fn(y_val_1h, logits))
        pred = logits.argmax(axis=1)
        row["val_accuracy"] = float((pred == data.y_val).mean())
        row["val_macro_f1"] = macro_f1(data.y_val, pred, data.num_classes)
    row["lr"] = lr
    row["time_s"] = round(time.perf_counter() - t0, 3)
    # training images this process stepped through per second of fit
    # (the first epoch includes graph compilation)
    row["images_per_s"] = round(run.steps_per_epoch * run.global_batch / role.workers / fit_s, 1)
    return row


def _end_epoch(run: _Run, model: _Model, progress: _Progress, row: dict) -> None:
    """Record a finished epoch: history, early stopping, checkpoint and (chief) state."""
    config, role, ckpt_dir = run.config, run.role, run.ckpt_dir
    progress.history.append(row)
    if config.early_stop and len(run.data.y_val):
        progress.best, improved, progress.stopped = early_stop_update(
            progress.best, row, config.early_stop)
        if improved and role.chief:
            model.local_net.save_weights(str(ckpt_dir / BEST_WEIGHTS))
    saved = progress.checkpoint.write(str(progress.write_dir / f"epoch-{row['epoch']:04d}"))
    if role.chief:
        _write_state(ckpt_dir, {
            "epoch": row["epoch"],
            "checkpoint": Path(saved).name,
            "history": progress.history,
            "best": progress.best,
            "stopped_early": progress.stopped,
            "wall_time_s": progress.wall_time(),
            "global_batch_size": run.global_batch,
        })
    _prune_checkpoints(progress.write_dir, keep=Path(saved).name if role.chief else "")


def _distribution(run: _Run) -> dict:
    """The ``distribution`` entry of ``metrics.json``."""
    return {
        "strategy": run.config.strategy,
        "workers": run.role.workers,
        "replicas": int(run.strategy.num_replicas_in_sync),
        "global_batch_size": run.global_batch,
        "steps_per_epoch": run.steps_per_epoch,
    }


def _keep_best_weights(run: _Run, model: _Model, progress: _Progress) -> None:
    """With early stopping, put the best epoch's weights back into the local copy."""
    best_path = run.ckpt_dir / BEST_WEIGHTS
    if run.config.early_stop and progress.best is not None and best_path.is_file():
        model.local_net.load_weights(str(best_path))


def _final_metrics(run: _Run, model: _Model, progress: _Progress, t_start: float) -> dict:
    """The content of ``metrics.json``: test metrics on the full test set, profile, timings."""
    from edgebnn._tf import import_tf
    from edgebnn.zoo import model_profile

    tf, tf_keras, larq = import_tf()
    config, data, history, best = run.config, run.data, progress.history, progress.best
    logits = model.local_net.predict(data.x_test.astype(np.float32), batch_size=512, verbose=0)
    report = classification_report(data.y_test, logits.argmax(axis=1), data.num_classes,
                                   data.class_names)
    profile = model_profile(model.local_model)
    return {
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
        "stopped_early": progress.stopped,
        "train_images": len(data.y_train),
        "val_images": int(len(data.y_val)),
        "test_images": int(len(data.y_test)),
        "wall_time_s": round(progress.wall_time(), 2),
        "train_images_per_s": _images_per_s(history),
        "session_time_s": round(time.perf_counter() - t_start, 2),
        "resumed_from_epoch": progress.resumed_from,
        "data_source": data.source,
        "distribution": _distribution(run),
        "versions": {"tensorflow": tf.__version__, "tf_keras": tf_keras.__version__,
                     "larq": getattr(larq, "__version__", "?")},
    }


def _result(run: _Run, model: _Model, progress: _Progress, metrics: dict) -> TrainResult:
    return TrainResult(run_dir=run.run_dir, config=run.config, metrics=metrics,
                       history=progress.history, resumed_from=progress.resumed_from,
                       stopped_early=progress.stopped, chief=run.role.chief,
                       steps=model.steps.count)


def _images_per_s(history: list):
    """The median training speed over the epochs after the first (which compiles), or None."""
    speeds = [r["images_per_s"] for r in history[1:] if r.get("images_per_s")]
    if not speeds and history and history[0].get("images_per_s"):
        speeds = [history[0]["images_per_s"]]
    return float(np.median(speeds)) if speeds else None


def _cause_line(message: str) -> str:
    """The line of a TensorFlow error that says which task failed and how."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    for ln in lines:
        if any(w in ln.lower() for w in ("heartbeat", "aborted by", "failed", "unavailable")):
            return ln[:300]
    return lines[0][:300] if lines else "no message"


def _step_counter(tf_keras):
    """A callback counting the training steps this process runs."""

    class StepCounter(tf_keras.callbacks.Callback):
        count = 0

        def on_train_batch_end(self, batch, logs=None):
            self.count += 1

    return StepCounter()


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

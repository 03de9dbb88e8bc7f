"""Training configurations: defaults, presets (YAML) and validation.

A configuration is a flat mapping saved as ``RUN_DIR/config.yml``. Presets
ship in ``edgebnn/presets/NAME.yml``; ``load_preset`` accepts a preset name
(``mnist-bcnn-binary``) or a path to a YAML file. Command-line flags override
the preset's values.

Example:
    >>> from edgebnn.config import TrainConfig, load_preset
    >>> cfg = TrainConfig(dataset="mnist", model="bcnn", epochs=1)
    >>> cfg.replace(lr=0.01).lr
    0.01
"""

import dataclasses
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Optional

from edgebnn import resources
from edgebnn.errors import ConfigError

PRESETS_DIR = resources.presets_dir()

OPTIMIZERS = ("adam", "sgd", "bop")
LOSSES = ("crossentropy", "hinge", "squared_hinge")
STRATEGIES = ("default", "mirrored", "multi_worker")
SCHEDULES = ("cosine", "constant", "exponential")
AUGMENTS = ("none", "crop", "crop-flip")
NORMALIZATIONS = ("range", "per-channel")


@dataclass(frozen=True)
class TrainConfig:
    """The resolved configuration of one training run.

    Args:
        dataset: dataset name (``mnist``, ``fashion_mnist``, ...).
        model: zoo model name.
        precision: ``binary``, ``binary-weights``, ``ternary`` or ``float``.
        epochs: number of epochs.
        batch_size: images per step.
        optimizer: ``adam``, ``sgd`` or ``bop`` (larq's Bop for the binary
            weights, Adam for the rest).
        loss: ``crossentropy``, ``hinge`` or ``squared_hinge``.
        lr: initial learning rate (of Adam/SGD; Bop's gamma is ``bop_gamma``).
        lr_schedule: ``cosine`` (decay to 0 over the run), ``exponential``
            (``lr * lr_decay ** epoch``) or ``constant``.
        lr_decay: the per-epoch factor of the exponential schedule.
        seed: seeds weight initialization and the data order of every epoch.
        limit: train on the first ``limit`` training images (0 = all).
        val_size: images held out from the end of the training set for the
            per-epoch validation metrics.
        augment_shift: random translation of each training image by up to
            this many pixels, drawn per epoch from ``seed`` (0 = none).
        augment: ``none``, ``crop`` (pad by ``augment_pad`` pixels, then a
            random crop back to the image size) or ``crop-flip`` (the crop
            and a random horizontal flip: CIFAR-10's augmentation; not for
            digits). Done in the tf.data pipeline, drawn per epoch from
            ``seed`` with stateless ops, so a resumed run sees the same images.
        augment_pad: the zero padding of ``crop`` / ``crop-flip``.
        normalize: the model's first layer: ``range`` maps 0..255 to [-1, 1];
            ``per-channel`` subtracts each channel's mean and divides by its
            standard deviation, both computed from the training images of the
            run (after the validation hold-out and ``limit``).
        early_stop: stop after this many epochs without a better validation
            accuracy and keep the best weights (0 = off).
        strategy: ``default``, ``mirrored`` or ``multi_worker``
            (tf.distribute; ``multi_worker`` reads ``TF_CONFIG``).
        bop_threshold, bop_gamma: Bop's hyperparameters.
        teacher: knowledge distillation from a trained model: a run
            directory (its ``model.h5``), a Keras ``.h5`` file or a shipped
            pretrained model's name ("" = no distillation). It is loaded
            through :func:`edgebnn.convert.load_keras_model` (checked, no code).
        distill_temperature: the softening temperature ``T`` (> 0).
        distill_weight: ``W`` in [0, 1], the share of the distillation term:
            ``loss = W * T**2 * KL(softmax(t / T) || softmax(s / T)) +
            (1 - W) * hard_loss(labels, s)`` with ``s`` the student's logits
            and ``t`` the teacher's log-probabilities.
    """

    dataset: str = "mnist"
    model: str = "bcnn"
    precision: str = "binary"
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "adam"
    loss: str = "crossentropy"
    lr: float = 1e-3
    lr_schedule: str = "cosine"
    lr_decay: float = 0.9
    seed: int = 0
    limit: int = 0
    val_size: int = 5000
    augment_shift: int = 0
    augment: str = "none"
    augment_pad: int = 4
    normalize: str = "range"
    early_stop: int = 0
    strategy: str = "default"
    bop_threshold: float = 1e-8
    bop_gamma: float = 1e-4
    teacher: str = ""
    distill_temperature: float = 4.0
    distill_weight: float = 0.5

    def __post_init__(self):
        validate(self)

    def replace(self, **changes) -> "TrainConfig":
        """Return a copy with ``changes`` applied (``None`` values are ignored)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ConfigError(f"unknown configuration keys: {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **_coerce(changes))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "configuration") -> "TrainConfig":
        """Build from a mapping; unknown keys are an error naming ``source``."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping of keys to values, found {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(
                f"{source}: unknown keys {', '.join(sorted(unknown))}; "
                f"known keys: {', '.join(sorted(known))}"
            )
        try:
            return cls(**_coerce(data))
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from exc


_TYPES = {f.name: f.type for f in fields(TrainConfig)}


def _coerce(data: dict) -> dict:
    out = {}
    for key, value in data.items():
        kind = _TYPES.get(key)
        try:
            if kind in (int, "int"):
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError(value)
                out[key] = int(value)
            elif kind in (float, "float"):
                out[key] = float(value)
            elif kind in (str, "str"):
                out[key] = str(value)
            else:
                out[key] = value
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"key '{key}': expected {kind}, found {value!r}") from exc
    return out


def validate(cfg: TrainConfig) -> None:
    """Check value ranges and choices.

    Raises:
        ConfigError: naming the key, the expected values and the value found.
    """
    from edgebnn.zoo import PRECISIONS

    def choice(key, options):
        value = getattr(cfg, key)
        if value not in options:
            raise ConfigError(f"'{key}' must be one of {', '.join(options)}; found '{value}'")

    choice("precision", PRECISIONS)
    choice("optimizer", OPTIMIZERS)
    choice("loss", LOSSES)
    choice("strategy", STRATEGIES)
    choice("lr_schedule", SCHEDULES)
    choice("augment", AUGMENTS)
    choice("normalize", NORMALIZATIONS)
    for key in ("epochs", "batch_size"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"'{key}' must be >= 1; found {getattr(cfg, key)}")
    for key in ("limit", "val_size", "augment_shift", "augment_pad", "early_stop", "seed"):
        if getattr(cfg, key) < 0:
            raise ConfigError(f"'{key}' must be >= 0; found {getattr(cfg, key)}")
    if not cfg.lr > 0:
        raise ConfigError(f"'lr' must be > 0; found {cfg.lr}")
    if not cfg.distill_temperature > 0:
        raise ConfigError(f"'distill_temperature' must be > 0; found {cfg.distill_temperature}")
    if not 0.0 <= cfg.distill_weight <= 1.0:
        raise ConfigError(f"'distill_weight' must be in [0, 1]; found {cfg.distill_weight}")
    if cfg.optimizer == "bop" and cfg.precision == "float":
        raise ConfigError("optimizer 'bop' trains binary weights; precision 'float' has none")


def list_presets() -> list:
    """Return the names of the shipped presets, sorted."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yml"))


def preset_path(name_or_path) -> Path:
    """Resolve a preset name or a YAML path.

    Raises:
        ConfigError: neither a file nor a shipped preset (lists the presets).
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = PRESETS_DIR / f"{name_or_path}.yml"
    if shipped.is_file():
        return shipped
    raise ConfigError(
        f"preset '{name_or_path}' is neither a YAML file nor a shipped preset; "
        f"shipped presets: {', '.join(list_presets())}"
    )


def read_yaml(path) -> dict:
    """Read a YAML mapping (empty file -> ``{}``) with :func:`yaml.safe_load`.

    This is the one reader of configuration files: presets, ``RUN_DIR/config.yml``
    (:func:`read_run_config`) and saved configurations all come through here.

    Raises:
        ConfigError: the file cannot be read, is not YAML (the message gives
            the parser's line and column), or does not hold a mapping.
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ConfigError(f"cannot read configuration {path}: {reason}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"configuration {path} is not valid YAML{where}: {problem}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"configuration {path}: expected a YAML mapping (dataset: ..., model: ...), "
            f"found a {type(data).__name__}"
        )
    return data


def read_run_config(run_dir) -> dict:
    """``RUN_DIR/config.yml`` as a dict (see :func:`read_yaml`), without validating it.

    Commands that only need a field or two of a run (its dataset) read it
    this way; :func:`load_config` gives a checked :class:`TrainConfig`.

    Raises:
        ConfigError: the file is missing, unreadable, not YAML or not a mapping.
    """
    from edgebnn import rundir

    path = Path(run_dir) / rundir.CONFIG
    if not path.is_file():
        raise ConfigError(f"{run_dir} has no {rundir.CONFIG} (looked for {path})")
    return read_yaml(path)


def load_preset(name_or_path, **overrides) -> TrainConfig:
    """Load a preset and apply ``overrides`` (``None`` values are ignored)."""
    path = preset_path(name_or_path)
    data = read_yaml(path)
    data.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(data, source=str(path))


def load_config(path) -> TrainConfig:
    """Load ``RUN_DIR/config.yml`` (or any saved configuration)."""
    return TrainConfig.from_dict(read_yaml(path), source=str(path))


def dump_config(cfg: TrainConfig) -> str:
    """YAML text of a configuration, keys in declaration order."""
    import yaml

    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


def resolve(preset: Optional[str] = None, **overrides) -> TrainConfig:
    """Defaults, then ``preset``, then ``overrides``."""
    if preset:
        return load_preset(preset, **overrides)
    return TrainConfig.from_dict({k: v for k, v in overrides.items() if v is not None})

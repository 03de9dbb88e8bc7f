"""The published BNNs of larq-zoo 2.4.0, built without downloads.

larq-zoo's pretrained weights cannot be fetched here (and are not needed to
check that an engine computes what LCE computes), so every model is built
with ``weights=None`` and then made *non-degenerate*: each
``BatchNormalization`` gets a random gamma and beta, and moving statistics
measured on a few random images, so every binarized activation is about as
often -1 as +1 and every float activation is of order 1. Everything is
seeded: the same ``(name, input_shape, seed)`` gives the same weights.

larq-zoo imports zookeeper, which imports ``tensorflow_datasets`` at import
time; no dataset is used to build a model, so when that package does not
import, :func:`import_larq_zoo` puts a small stand-in module in its place
(only when a larq-zoo model is asked for; nothing is done at import of this
module).

Example:
    >>> from edgebnn.zoo_models import build_zoo_model
    >>> model = build_zoo_model("QuickNetSmall", seed=0)  # doctest: +SKIP
    >>> model.output_shape  # doctest: +SKIP
    (None, 1000)
"""

import importlib
import sys
import types
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from edgebnn.errors import MissingDependencyError, ModelError

LARQ_ZOO_VERSION = "2.4.0"
_INSTALL = f"pip install --no-deps larq-zoo=={LARQ_ZOO_VERSION} zookeeper typeguard"


@dataclass(frozen=True)
class ZooModel:
    """One larq-zoo architecture: where it lives and the input it is checked at."""

    name: str
    module: str  # "sota" or "literature"
    input_size: int = 224  # the largest square input LCE 0.16 converts, when not 224
    note: str = ""


ZOO_MODELS = (
    ZooModel("QuickNetSmall", "sota"),
    ZooModel("QuickNet", "sota"),
    ZooModel("QuickNetLarge", "sota"),
    ZooModel("BiRealNet", "literature"),
    ZooModel("BinaryResNetE18", "literature"),
    ZooModel("BinaryDenseNet28", "literature"),
    ZooModel("BinaryDenseNet37", "literature"),
    ZooModel("BinaryDenseNet37Dilated", "literature"),
    ZooModel("BinaryDenseNet45", "literature"),
    ZooModel("BinaryAlexNet", "literature"),
    ZooModel("XNORNet", "literature"),
    ZooModel("MeliusNet22", "literature"),
    ZooModel("RealToBinaryNet", "literature"),
    ZooModel("DoReFaNet", "literature", input_size=96,
             note="LCE 0.16 fails to convert it at 224x224"),
)
_BY_NAME = {m.name: m for m in ZOO_MODELS}


def zoo_model_names() -> list:
    """The larq-zoo architectures edgebnn checks, in the order of the tables."""
    return [m.name for m in ZOO_MODELS]


def zoo_model(name: str) -> ZooModel:
    """The :class:`ZooModel` called ``name``.

    Raises:
        ModelError: an unknown name (the message lists the known ones).
    """
    if name not in _BY_NAME:
        raise ModelError(f"unknown larq-zoo model '{name}'; known: {', '.join(zoo_model_names())}")
    return _BY_NAME[name]


# --------------------------------------------------------------------------
# Importing larq-zoo


class _Placeholder:
    """Stands for any tensorflow_datasets class named in a default or annotation."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


def _tfds_stand_in() -> types.ModuleType:
    """A module with the few ``tensorflow_datasets`` names zookeeper and larq-zoo read at import.

    Every function of it raises: loading a dataset through it is a bug.
    """
    mod = types.ModuleType("tensorflow_datasets")
    mod.__doc__ = "edgebnn stand-in: larq-zoo models are built without datasets."
    mod.__edgebnn_stand_in__ = True

    def _no_datasets(*args, **kwargs):
        raise MissingDependencyError(
            "tensorflow_datasets is replaced by edgebnn's stand-in (larq-zoo models are built "
            "without datasets); install tensorflow-datasets to load a dataset"
        )

    mod.core = types.SimpleNamespace(splits=types.SimpleNamespace(_SplitMerged=_Placeholder))
    mod.decode = types.SimpleNamespace(Decoder=_Placeholder, SkipDecoding=_Placeholder)
    mod.Split = types.SimpleNamespace(TRAIN="train", VALIDATION="validation", TEST="test")
    mod.load = mod.builder = _no_datasets
    return mod


def _tfds_importable() -> bool:
    if "tensorflow_datasets" in sys.modules:
        return True
    try:
        importlib.import_module("tensorflow_datasets")
        return True
    except Exception:  # ImportError, or the protobuf TypeError of old releases under TF 2.16
        sys.modules.pop("tensorflow_datasets", None)
        return False


def import_larq_zoo():
    """Import and return ``larq_zoo`` (TensorFlow first, a tensorflow_datasets stand-in if needed).

    Raises:
        MissingDependencyError: larq-zoo (or zookeeper) is not installed.
    """
    from edgebnn._tf import import_tf

    import_tf()
    if "larq_zoo" in sys.modules:
        return sys.modules["larq_zoo"]
    if not _tfds_importable():
        sys.modules["tensorflow_datasets"] = _tfds_stand_in()
    try:
        return importlib.import_module("larq_zoo")
    except ImportError as exc:
        raise MissingDependencyError(
            f"larq-zoo models need the Python package larq-zoo {LARQ_ZOO_VERSION}, which does not "
            f"import ({exc}); install it with: {_INSTALL}"
        ) from exc


# --------------------------------------------------------------------------
# Building


def _batch_norms(model):
    from edgebnn._tf import import_tf

    _, tf_keras, _ = import_tf()
    out = []

    def walk(layer):
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            out.append(layer)
        for sub in getattr(layer, "layers", ()):
            walk(sub)

    for layer in model.layers:
        walk(layer)
    return out


def randomize_batch_norms(model, images, *, seed: int = 0) -> int:
    """Give every BatchNormalization random gamma/beta and moving statistics from ``images``.

    gamma ~ U(0.5, 1.5), beta ~ N(0, 0.2^2) per channel; then one forward
    pass in training mode with momentum 0 sets each layer's moving mean and
    variance to the batch statistics of its input (each layer sees inputs
    already normalized by the layers before it, as at inference).

    Returns:
        the number of BatchNormalization layers changed.
    """
    rng = np.random.default_rng(seed)
    bns = _batch_norms(model)
    for bn in bns:
        shape = bn.moving_mean.shape
        if bn.gamma is not None:
            bn.gamma.assign(rng.uniform(0.5, 1.5, size=shape).astype(np.float32))
        if bn.beta is not None:
            bn.beta.assign(rng.normal(0.0, 0.2, size=shape).astype(np.float32))
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.momentum = 0.0
    try:
        model(np.asarray(images, np.float32), training=True)
    finally:
        for bn, m in zip(bns, saved):
            bn.momentum = m
    return len(bns)


def calibration_images(input_shape, n: int = 4, seed: int = 0) -> np.ndarray:
    """``n`` seeded images of ``input_shape``: smooth random fields in [-1, 1] (larq-zoo's input range)."""
    rng = np.random.default_rng(seed)
    h, w, c = input_shape
    coarse = rng.uniform(-1.0, 1.0, size=(n, max(h // 8, 1), max(w // 8, 1), c))
    img = np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2)[:, :h, :w, :]
    if img.shape[1] < h or img.shape[2] < w:
        img = np.pad(img, ((0, 0), (0, h - img.shape[1]), (0, w - img.shape[2]), (0, 0)), mode="edge")
    img = img + rng.normal(0.0, 0.25, size=img.shape)
    return np.clip(img, -1.0, 1.0).astype(np.float32)


def build_zoo_model(name: str, *, input_shape: Optional[Tuple[int, int, int]] = None, num_classes: int = 1000,
                    seed: int = 0, n_calibration: int = 4):
    """Build larq-zoo's ``name`` with seeded random weights and calibrated batch norms.

    Args:
        name: one of :func:`zoo_model_names`.
        input_shape: ``(H, W, 3)``; default the model's checked size
            (224x224x3, DoReFaNet 96x96x3).
        num_classes: classifier width (1000 as on ImageNet).
        seed: seeds the kernels (Keras initializers), gamma/beta and the
            calibration images.
        n_calibration: images used to measure the moving statistics.

    Returns:
        an uncompiled ``tf_keras.Model`` (softmax output).

    Raises:
        ModelError: unknown name, or larq-zoo cannot build it at that shape.
        MissingDependencyError: larq-zoo is not installed.
    """
    info = zoo_model(name)
    lqz = import_larq_zoo()
    from edgebnn._tf import import_tf

    _, tf_keras, _ = import_tf()
    if input_shape is None:
        input_shape = (info.input_size, info.input_size, 3)
    input_shape = tuple(int(d) for d in input_shape)
    tf_keras.utils.set_random_seed(int(seed))
    factory = getattr(getattr(lqz, info.module), name)
    try:
        model = factory(weights=None, input_shape=input_shape, num_classes=int(num_classes))
    except (ValueError, TypeError) as exc:
        raise ModelError(f"larq-zoo cannot build {name} for input shape {input_shape}: {exc}") from exc
    randomize_batch_norms(model, calibration_images(input_shape, n_calibration, seed), seed=seed)
    return model


def zoo_inputs(input_shape, n: int = 2, seed: int = 1) -> np.ndarray:
    """Seeded test inputs (not the calibration images): ``(n, H, W, C)`` float32 in [-1, 1]."""
    return calibration_images(tuple(input_shape), n, seed=1000 + int(seed))


# --------------------------------------------------------------------------
# Loading saved larq-zoo models


#: Names larq-zoo 2.4.0 models store in their saved config that neither Keras
#: nor larq resolve (found by saving all 14 models as .h5 and .keras and loading
#: them back in a process without larq_zoo): name -> (module, attribute).
LARQ_ZOO_CUSTOM_OBJECTS = {
    "blurpool_initializer": ("larq_zoo.sota.quicknet", "blurpool_initializer"),  # QuickNet*: depthwise init
    "xnor_weight_scale": ("larq_zoo.literature.xnornet", "xnor_weight_scale"),  # XNORNet: kernel quantizer
    "magnitude_aware_sign_unclipped": ("larq_zoo.literature.dorefanet", "magnitude_aware_sign_unclipped"),
    "clip_by_value_activation": ("larq_zoo.literature.dorefanet", "clip_by_value_activation"),  # DoReFaNet
    "BinaryDenseNet": ("larq_zoo.literature.densenet", "BinaryDenseNet"),  # BinaryDenseNet*: the Model class
}


def larq_zoo_custom_objects() -> dict:
    """The name -> object map ``tf_keras.models.load_model`` needs for larq-zoo's saved models.

    larq's own layers, quantizers and constraints register themselves with
    Keras when larq is imported; larq-zoo's functions and classes in
    :data:`LARQ_ZOO_CUSTOM_OBJECTS` register only when larq_zoo is imported,
    so a loader passes this map instead (larq-zoo is imported here, with the
    tensorflow_datasets stand-in when needed).

    With this map ``tf_keras.models.load_model`` reads the ``.keras``
    files, but not the ``.h5`` files of QuickNet*, XNORNet and DoReFaNet:
    tf_keras 2.16 writes a function-valued initializer, quantizer or
    activation there as ``{"class_name": "function", "config": NAME}`` and
    its h5 reader looks up a class called ``"function"``; nor the models with
    ``Lambda`` layers (MeliusNet22, RealToBinaryNet), which hold Python
    bytecode. :func:`edgebnn.convert.load_keras_model` loads all of them:
    it hands such a layer the function itself, and replaces larq-zoo's own
    Lambda layers by built-in layers (:mod:`edgebnn.zoo_lambdas`).

    Example:
        >>> objs = larq_zoo_custom_objects()  # doctest: +SKIP
        >>> model = tf_keras.models.load_model("quicknet.h5", custom_objects=objs)  # doctest: +SKIP

    Raises:
        MissingDependencyError: larq-zoo is not installed.
    """
    import_larq_zoo()
    return {name: getattr(importlib.import_module(mod), attr)
            for name, (mod, attr) in LARQ_ZOO_CUSTOM_OBJECTS.items()}

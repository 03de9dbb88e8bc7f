"""The model zoo: Larq BNNs and their full-precision twins.

Every model is built for one of four precisions:

- ``binary``: +-1 weights and +-1 activations (``ste_sign`` on both), the
  form Larq Compute Engine turns into ``LceBconv2d``;
- ``binary-weights``: BinaryConnect, +-1 weights and float activations;
- ``ternary``: ``ste_tern`` weights (-1, 0, +1) and float activations;
- ``float``: the same topology with full-precision layers.

Every model takes raw pixel values (0..255, float32) and normalizes them with
its own first layer (a builtin ``Rescaling``: to [-1, 1], or per channel
``(x - mean) / std`` when ``build_model`` is given ``normalization``), so the same bytes
flow from a camera to the ``.tflite`` and to the firmware. The layouts follow
what LCE deploys best: the first convolution stays full precision; binary
convolutions with ``"same"`` padding pad with +1 (``pad_values=1``); binary
layers have no bias and are followed by batch normalization; channel counts
are multiples of 32 where the design allows. Where the binary model applies
``ste_sign`` to a layer's input, the models with float activations apply a
ReLU instead, so they are not linear.

Example:
    >>> from edgebnn.zoo import build_model
    >>> model = build_model("bcnn", precision="binary",
    ...                     input_shape=(28, 28, 1), num_classes=10)  # doctest: +SKIP
    >>> model.count_params()  # doctest: +SKIP
    93...
"""

from dataclasses import asdict, dataclass
from typing import Callable, Dict, Tuple

from edgebnn.errors import ModelError

PRECISIONS = ("binary", "binary-weights", "ternary", "float")

_MODELS: Dict[str, Tuple[Callable, str]] = {}


def register_model(name: str):
    """Register a builder ``fn(q, input_shape, num_classes) -> tf_keras.Model``.

    ``q`` is a :class:`_Layers` factory that makes each layer at the requested
    precision. The first line of the builder's docstring is the model's
    description in ``edgebnn models``.
    """

    def deco(fn):
        if name in _MODELS:
            raise ValueError(f"model '{name}' is registered twice")
        doc = (fn.__doc__ or "").strip().splitlines()
        _MODELS[name] = (fn, doc[0] if doc else "")
        return fn

    return deco


def list_models() -> list:
    """Return the registered model names, sorted."""
    return sorted(_MODELS)


def model_description(name: str) -> str:
    """Return the one-line description of a registered model."""
    return _lookup(name)[1]


def _lookup(name):
    if name not in _MODELS:
        raise ModelError(f"unknown model '{name}'; known models: {', '.join(list_models())}")
    return _MODELS[name]


def check_precision(precision: str) -> str:
    """Return ``precision`` if known.

    Raises:
        ModelError: an unknown precision (the message lists the known ones).
    """
    if precision not in PRECISIONS:
        raise ModelError(
            f"unknown precision '{precision}'; expected one of: {', '.join(PRECISIONS)}"
        )
    return precision


class _Layers:
    """Makes the layers of one model at one precision."""

    def __init__(self, precision, tf_keras, larq, normalization=None):
        self.precision = check_precision(precision)
        self.k = tf_keras
        self.lq = larq
        self.normalization = normalization

    # -- quantizer settings -------------------------------------------------
    def _qkwargs(self):
        if self.precision == "binary":
            return dict(
                input_quantizer="ste_sign",
                kernel_quantizer="ste_sign",
                kernel_constraint="weight_clip",
            )
        if self.precision == "binary-weights":
            return dict(
                input_quantizer=None,
                kernel_quantizer="ste_sign",
                kernel_constraint="weight_clip",
            )
        if self.precision == "ternary":
            return dict(
                input_quantizer=None,
                kernel_quantizer="ste_tern",
                kernel_constraint="weight_clip",
            )
        return None

    # -- layers ---------------------------------------------------------------
    def normalize(self, input_shape):
        """Input + Rescaling of raw 0..255 pixels: to [-1, 1], or ``(x - mean) / std`` per channel."""
        inputs = self.k.Input(shape=tuple(input_shape), dtype="float32", name="pixels")
        if self.normalization is None:
            scale, offset = 1.0 / 127.5, -1.0
        else:
            mean, std = self.normalization
            # x * (1/std) + (-mean/std): one MUL and one ADD over the last axis in TFLite
            scale = [1.0 / float(s) for s in std]
            offset = [-float(m) / float(s) for m, s in zip(mean, std)]
        x = self.k.layers.Rescaling(scale, offset=offset, name="normalize")(inputs)
        return inputs, x

    def first_conv(self, x, filters, kernel_size, padding="valid"):
        """The full-precision first convolution (every precision)."""
        return self.k.layers.Conv2D(
            filters, kernel_size, padding=padding, use_bias=False, name="conv_first"
        )(x)

    def _act(self, x):
        # Float activations: a ReLU where the binary model has ste_sign.
        if self.precision == "binary":
            return x
        return self.k.layers.Activation("relu")(x)

    def conv(self, x, filters, kernel_size, padding="same", strides=1):
        """A quantized convolution (its input binarized in ``binary``)."""
        x = self._act(x)
        q = self._qkwargs()
        if q is None:
            return self.k.layers.Conv2D(
                filters, kernel_size, strides=strides, padding=padding, use_bias=False
            )(x)
        extra = {"pad_values": 1.0} if padding == "same" else {}
        return self.lq.layers.QuantConv2D(
            filters, kernel_size, strides=strides, padding=padding, use_bias=False,
            **extra, **q,
        )(x)

    def dense(self, x, units):
        """A quantized dense layer (its input binarized in ``binary``)."""
        x = self._act(x)
        q = self._qkwargs()
        if q is None:
            return self.k.layers.Dense(units, use_bias=False)(x)
        return self.lq.layers.QuantDense(units, use_bias=False, **q)(x)

    def bn(self, x, scale=True):
        return self.k.layers.BatchNormalization(momentum=0.9, scale=scale)(x)

    def maxpool(self, x, size=2):
        return self.k.layers.MaxPooling2D((size, size))(x)

    def flatten(self, x):
        return self.k.layers.Flatten()(x)

    def head(self, x, num_classes):
        """Quantized dense classifier + batch norm + softmax."""
        x = self.dense(x, num_classes)
        x = self.bn(x, scale=False)
        return self.k.layers.Activation("softmax", name="softmax")(x)


def build_model(name: str, *, precision: str, input_shape, num_classes: int,
                normalization=None):
    """Build a zoo model.

    Args:
        name: a registered model name (see :func:`list_models`).
        precision: ``binary``, ``binary-weights``, ``ternary`` or ``float``.
        input_shape: ``(height, width, channels)`` of the raw images.
        num_classes: number of output classes.
        normalization: ``None`` (pixels to [-1, 1]) or ``(mean, std)``, one
            value per input channel in pixel units, for a first layer that
            computes ``(x - mean) / std`` (see :func:`edgebnn.augment.channel_stats`).

    Returns:
        An uncompiled ``tf_keras.Model`` whose output is softmax probabilities.

    Raises:
        ModelError: unknown name or precision, or an input too small for it.
    """
    from edgebnn._tf import import_tf

    builder = _lookup(name)[0]
    _, tf_keras, larq = import_tf()
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) != 3:
        raise ModelError(f"input_shape must be (height, width, channels), got {input_shape}")
    if normalization is not None:
        mean, std = normalization
        if not (len(mean) == len(std) == input_shape[-1]) or min(std) <= 0:
            raise ModelError(
                f"normalization needs {input_shape[-1]} means and {input_shape[-1]} positive "
                f"standard deviations (one per channel); found {len(mean)} and {list(std)}"
            )
    q = _Layers(precision, tf_keras, larq, normalization)
    try:
        model = builder(q, input_shape, int(num_classes))
    except ValueError as exc:
        raise ModelError(
            f"model '{name}' cannot be built for input shape {input_shape}: {exc}"
        ) from exc
    return model


@register_model("bcnn")
def _bcnn(q, input_shape, num_classes):
    """Larq MNIST tutorial BCNN: 3 conv + 2 dense, ~93k parameters."""
    k = q.k
    inputs, x = q.normalize(input_shape)
    x = q.first_conv(x, 32, 3)
    x = q.maxpool(x)
    x = q.bn(x, scale=False)
    x = q.conv(x, 64, 3, padding="valid")
    x = q.maxpool(x)
    x = q.bn(x, scale=False)
    x = q.conv(x, 64, 3, padding="valid")
    x = q.bn(x, scale=False)
    x = q.flatten(x)
    x = q.dense(x, 64)
    x = q.bn(x, scale=False)
    out = q.head(x, num_classes)
    return k.Model(inputs, out, name=f"bcnn_{q.precision.replace('-', '_')}")


@register_model("lenet5")
def _lenet5(q, input_shape, num_classes):
    """Binary LeNet-5: 5x5 convs 32/64, dense 128/96 (LeNet's 6/16/120/84 rounded up)."""
    k = q.k
    inputs, x = q.normalize(input_shape)
    x = q.first_conv(x, 32, 5, padding="same")
    x = q.maxpool(x)
    x = q.bn(x)
    x = q.conv(x, 64, 5, padding="valid")
    x = q.maxpool(x)
    x = q.bn(x)
    x = q.flatten(x)
    x = q.dense(x, 128)
    x = q.bn(x)
    x = q.dense(x, 96)
    x = q.bn(x)
    out = q.head(x, num_classes)
    return k.Model(inputs, out, name=f"lenet5_{q.precision.replace('-', '_')}")


@register_model("vgg-small")
def _vgg_small(q, input_shape, num_classes):
    """BinaryNet-style VGG for 32x32x3: 2x128, 2x256, 2x512 conv, 2x1024 dense."""
    k = q.k
    inputs, x = q.normalize(input_shape)
    x = q.first_conv(x, 128, 3, padding="same")
    x = q.bn(x)
    x = q.conv(x, 128, 3)
    x = q.maxpool(x)
    x = q.bn(x)
    x = q.conv(x, 256, 3)
    x = q.bn(x)
    x = q.conv(x, 256, 3)
    x = q.maxpool(x)
    x = q.bn(x)
    x = q.conv(x, 512, 3)
    x = q.bn(x)
    x = q.conv(x, 512, 3)
    x = q.maxpool(x)
    x = q.bn(x)
    x = q.flatten(x)
    x = q.dense(x, 1024)
    x = q.bn(x)
    x = q.dense(x, 1024)
    x = q.bn(x)
    out = q.head(x, num_classes)
    return k.Model(inputs, out, name=f"vgg_small_{q.precision.replace('-', '_')}")


@register_model("bcnn-wide")
def _bcnn_wide(q, input_shape, num_classes):
    """edgebnn's design for >=99.3% MNIST: float 3x3x32 stem, binary convs 64-128-128, dense 256."""
    k = q.k
    inputs, x = q.normalize(input_shape)
    x = q.first_conv(x, 32, 3, padding="same")  # 28x28x32
    x = q.maxpool(x)  # 14x14
    x = q.bn(x)
    x = q.conv(x, 64, 3)
    x = q.maxpool(x)  # 7x7
    x = q.bn(x)
    x = q.conv(x, 128, 3)
    x = q.bn(x)
    x = q.conv(x, 128, 3)
    x = q.maxpool(x)  # 3x3
    x = q.bn(x)
    x = q.flatten(x)
    x = q.dense(x, 256)
    x = q.bn(x)
    out = q.head(x, num_classes)
    return k.Model(inputs, out, name=f"bcnn_wide_{q.precision.replace('-', '_')}")


@register_model("bcnn-mcu")
def _bcnn_mcu(q, input_shape, num_classes):
    """edgebnn's Cortex-M design: float 3x3x32 stem, binary convs 64-96-96 (last valid), dense 256."""
    k = q.k
    inputs, x = q.normalize(input_shape)
    x = q.first_conv(x, 32, 3, padding="same")  # 28x28x32
    x = q.maxpool(x)  # 14x14
    x = q.bn(x)
    x = q.conv(x, 64, 3)
    x = q.maxpool(x)  # 7x7
    x = q.bn(x)
    x = q.conv(x, 96, 3)
    x = q.bn(x)
    x = q.conv(x, 96, 3, padding="valid")  # 5x5
    x = q.bn(x)
    x = q.flatten(x)
    x = q.dense(x, 256)
    x = q.bn(x)
    out = q.head(x, num_classes)
    return k.Model(inputs, out, name=f"bcnn_mcu_{q.precision.replace('-', '_')}")


@dataclass(frozen=True)
class ModelInfo:
    """Figures of one built model (``edgebnn models``)."""

    name: str
    precision: str
    description: str
    input_shape: tuple
    parameters: int
    binary_parameters: int
    macs: int
    binary_macs: int
    size_bytes: float

    @property
    def binary_mac_ratio(self) -> float:
        return self.binary_macs / self.macs if self.macs else 0.0

    def to_dict(self):
        d = asdict(self)
        d["binary_mac_ratio"] = self.binary_mac_ratio
        d["size_kib"] = self.size_bytes / 1024
        return d


def model_profile(model) -> dict:
    """Parameters, MACs and memory of a built model, from larq's summary data.

    Uses ``larq.models.ModelProfile``: ``parameters`` counts every weight;
    ``binary_parameters`` those stored at 1 bit; ``macs`` the multiply-
    accumulates of one inference, ``binary_macs`` those with 1-bit operands on
    both sides; ``size_bytes`` is larq's memory figure (1-bit weights at 1/8
    byte, everything else at 32 bits).
    """
    from edgebnn._tf import import_tf

    _, _, larq = import_tf()
    profile = larq.models.ModelProfile(model)
    params = 0
    binary_params = 0
    size_bits = 0
    macs = 0
    binary_macs = 0
    for lp in profile.layer_profiles:
        for wp in lp.weight_profiles:
            params += wp.count
            if wp.bitwidth == 1:
                binary_params += wp.count
        size_bits += lp.memory  # bits: count * bitwidth per weight
        macs += lp.op_count("mac") or 0
        binary_macs += lp.op_count("mac", 1) or 0
    return {
        "parameters": int(params),
        "binary_parameters": int(binary_params),
        "macs": int(macs),
        "binary_macs": int(binary_macs),
        "size_bytes": size_bits / 8,
    }


def model_info(name: str, *, precision: str, input_shape, num_classes: int) -> ModelInfo:
    """Build a model and return its :class:`ModelInfo`."""
    model = build_model(name, precision=precision, input_shape=input_shape, num_classes=num_classes)
    p = model_profile(model)
    return ModelInfo(
        name=name,
        precision=precision,
        description=model_description(name),
        input_shape=tuple(input_shape),
        parameters=p["parameters"],
        binary_parameters=p["binary_parameters"],
        macs=p["macs"],
        binary_macs=p["binary_macs"],
        size_bytes=p["size_bytes"],
    )

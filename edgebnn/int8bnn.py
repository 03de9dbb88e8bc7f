"""Full-integer BNNs: calibrated int8 ranges for LCE's converter.

LCE 0.16 quantizes a Larq model to int8 only where the graph carries
fake-quantization ranges; without them its only option is one
``experimental_default_int8_range`` for every tensor, which costs most of
the accuracy (13.4% on the shipped MNIST BNN with [-3, 3]). This module
rebuilds a trained Larq model with a ``FakeQuant`` after every tensor that
becomes an int8 activation, its range measured on representative inputs
(post-training calibration, no retraining), so that LCE writes:

- int8 model input and output;
- int8 CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED / pooling for the float
  layers, with per-channel weights;
- ``LceQuantize`` reading int8, and ``LceBconv2d`` writing int8 where a binary
  conv feeds float layers (bitpacked output between binary layers stays).

Two rewrites keep the graph integer:

- A ``BatchNormalization`` (or ``Rescaling``) that cannot fold into a
  preceding conv (it follows a pooling layer or the input) becomes the
  equal per-channel affine map as a 1x1 ``DepthwiseConv2D`` with bias; LCE
  would otherwise leave it as float MUL/ADD between a DEQUANTIZE and a
  QUANTIZE, because the product in the middle has no range.
- No range is put between a conv and the BatchNormalization it folds into,
  nor between a binary layer and the next binary layer (the converter
  fuses those into a bitpacked output), nor after range-preserving layers
  (reshape, flatten, pooling feeding batch norm) and softmax (whose int8
  output range TFLite fixes at 1/256).

Example:
    >>> prepared = prepare_int8(model, x_train[:500])  # doctest: +SKIP
    >>> prepared.model  # a Keras model with FakeQuant layers  # doctest: +SKIP
"""

from dataclasses import dataclass

import numpy as np

from edgebnn.errors import ConversionError

#: The calibrated range of a tensor that only binarizing layers read is
#: narrowed to this fraction: only its sign matters there, values beyond the
#: narrowed range saturate with their sign kept, and values near zero get
#: 4x finer steps, so fewer of them round onto the zero point (+1) from
#: below. Measured on the shipped mnist-bcnn-mcu-binary, 10,000 test
#: images: 99.23% with the full range, 99.35% with 0.25 (and with 0.05).
SIGN_ONLY_RANGE_FRACTION = 0.25
#: Layers whose output needs no range of its own.
_NO_RANGE_LAYERS = ("Reshape", "Flatten", "Softmax", "InputLayer")
#: Layers a following BatchNormalization folds into.
_CONV_LAYERS = ("Conv2D", "DepthwiseConv2D", "Dense", "QuantConv2D", "QuantDepthwiseConv2D", "QuantDense")


@dataclass
class Int8Preparation:
    """A model ready for LCE's int8 conversion, and what was done to it."""

    model: object
    ranges: dict  # FakeQuant layer name -> (min, max)
    affine: tuple  # names of layers rebuilt as 1x1 depthwise convs


def _binarizes(layer) -> bool:
    """True for a Larq layer that binarizes its input (an input quantizer)."""
    return getattr(layer, "input_quantizer", None) is not None


def _is_softmax(layer) -> bool:
    if type(layer).__name__ == "Softmax":
        return True
    return type(layer).__name__ == "Activation" and layer.get_config().get("activation") == "softmax"


def _fake_quant_layer(tf, tf_keras):
    class FakeQuant(tf_keras.layers.Layer):
        """``tf.quantization.fake_quant_with_min_max_args`` with a fixed, calibrated range."""

        def __init__(self, lo, hi, **kwargs):
            super().__init__(**kwargs)
            self.lo, self.hi = float(lo), float(hi)

        def call(self, x):
            return tf.quantization.fake_quant_with_min_max_args(
                x, min=self.lo, max=self.hi, num_bits=8, narrow_range=False)

        def get_config(self):
            return {**super().get_config(), "lo": self.lo, "hi": self.hi}

    return FakeQuant


def _graph(model):
    consumers, producers = {}, {}
    for depth in model._nodes_by_depth:
        for node in model._nodes_by_depth[depth]:
            for t_id in node.flat_input_ids:
                consumers.setdefault(t_id, []).append(node.layer)
            for t_id in node.flat_output_ids:
                producers[t_id] = node
    return consumers, producers


def _producer_layer(node, producers):
    """The layer that produced ``node``'s (single) input, or None."""
    ids = node.flat_input_ids
    if len(ids) != 1 or ids[0] not in producers:
        return None
    src = producers[ids[0]]
    return None if src.is_input else src.layer


def _wants_range(node, t_id, consumers, producers) -> bool:
    layer = node.layer
    if type(layer).__name__ in _NO_RANGE_LAYERS or _is_softmax(layer):
        return False
    users = consumers.get(t_id, [])
    if users and all(type(u).__name__ == "BatchNormalization" for u in users):
        return False  # folds into this layer, or is rebuilt and gets its own range
    if users and all(_binarizes(u) for u in users):
        if _binarizes(layer):
            return False  # binary -> binary: bitpacked output
        src = _producer_layer(node, producers)
        if type(layer).__name__ == "BatchNormalization" and src is not None and _binarizes(src):
            return False  # binary conv + batch norm -> binary: bitpacked output
    return True


def _affine_of(layer, channels):
    """``(scale, offset)`` per channel of a BatchNormalization or Rescaling."""
    if type(layer).__name__ == "Rescaling":
        scale = np.broadcast_to(np.asarray(layer.scale, np.float64), (channels,))
        offset = np.broadcast_to(np.asarray(layer.offset, np.float64), (channels,))
        return scale, offset
    gamma = layer.gamma.numpy().astype(np.float64) if layer.scale else np.ones(channels)
    beta = layer.beta.numpy().astype(np.float64) if layer.center else np.zeros(channels)
    scale = gamma / np.sqrt(layer.moving_variance.numpy().astype(np.float64) + layer.epsilon)
    return scale, beta - layer.moving_mean.numpy().astype(np.float64) * scale


def _rebuildable_affine(node, producers, args) -> bool:
    layer = node.layer
    kind = type(layer).__name__
    if kind not in ("BatchNormalization", "Rescaling") or len(args) != 1:
        return False
    shape = args[0].shape
    if len(shape) != 4 or shape[-1] is None:
        return False
    if kind == "BatchNormalization":
        axis = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
        if [a % 4 for a in axis] != [3]:
            return False
        src = _producer_layer(node, producers)
        if src is not None and type(src).__name__ in _CONV_LAYERS:
            return False  # the converter folds it into the conv
    return True


def _rebuild(model, ranges, tf, tf_keras):
    """Rebuild ``model``; with ``ranges`` insert FakeQuant layers and affine
    rewrites. Returns ``(inputs, outputs, [(name, tensor)] per layer call,
    affine names, fake-quant names)``."""
    from edgebnn.convert import _node_args

    FakeQuant = _fake_quant_layer(tf, tf_keras)
    consumers, producers = _graph(model)
    tensor_map, calls, affine, fq_names = {}, [], [], {}
    new_inputs = []
    for t in model.inputs:
        new = tf_keras.Input(shape=t.shape[1:], dtype=t.dtype, name=t.name.split(":")[0])
        new_inputs.append(new)
        key = f"input:{t.name.split(':')[0]}"
        calls.append((key, new))
        y = new
        if ranges is not None:
            name = f"fq_{key.split(':')[1]}"
            y = FakeQuant(*ranges[key], name=name)(new)
            fq_names[name] = ranges[key]
        tensor_map[str(id(t))] = y
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if node.is_input:
                continue
            layer = node.layer
            args, kwargs = _node_args(node, tensor_map)
            if len(node.flat_output_ids) != 1:
                raise ConversionError(
                    f"int8 conversion: layer '{layer.name}' has {len(node.flat_output_ids)} outputs; "
                    "only single-output layers are supported")
            (t_id,) = node.flat_output_ids
            wants = _wants_range(node, t_id, consumers, producers)
            if ranges is not None and wants and _rebuildable_affine(node, producers, args):
                channels = int(args[0].shape[-1])
                scale, offset = _affine_of(layer, channels)
                dw = tf_keras.layers.DepthwiseConv2D(1, use_bias=True, name=f"{layer.name}_affine")
                y = dw(args[0])
                dw.set_weights([scale.reshape(1, 1, channels, 1).astype(np.float32), offset.astype(np.float32)])
                affine.append(layer.name)
            else:
                y = layer(*args, **kwargs)
            key = f"layer:{layer.name}:{len(calls)}"
            calls.append((key, y))
            if ranges is not None and wants:
                name = f"fq_{layer.name}_{len(fq_names)}"
                y = FakeQuant(*ranges[key], name=name)(y)
                fq_names[name] = ranges[key]
            tensor_map[t_id] = y
    outputs = [tensor_map[str(id(t))] for t in model.outputs]
    return new_inputs, outputs, calls, affine, fq_names


def _sign_only_keys(model) -> set:
    """Names of the layers whose output only binarizing layers read."""
    consumers, _ = _graph(model)
    out = set()
    for nodes in model._nodes_by_depth.values():
        for node in nodes:
            if node.is_input or len(node.flat_output_ids) != 1:
                continue
            users = consumers.get(node.flat_output_ids[0], [])
            if users and all(_binarizes(u) for u in users):
                out.add(node.layer.name)
    return out


def prepare_int8(model, representative, *, batch_size: int = 100) -> Int8Preparation:
    """Calibrate ``model`` on ``representative`` inputs and insert int8 ranges.

    Args:
        model: a trained tf-keras functional or Sequential Larq model (binary
            dense layers already rewritten, see
            :func:`edgebnn.convert.rewrite_binary_dense`).
        representative: an array of typical inputs (N, ...), N >= 1, e.g.
            500 training images.

    Returns:
        An :class:`Int8Preparation` whose ``model`` LCE converts with
        ``inference_input_type=tf.int8, inference_output_type=tf.int8``.

    Raises:
        ConversionError: a subclassed model, a layer with several outputs, or
            an empty/non-finite calibration.
    """
    from edgebnn._tf import import_tf

    tf, tf_keras, _ = import_tf()
    if not getattr(model, "_is_graph_network", False):
        raise ConversionError(
            f"int8 conversion of model '{model.name}' needs a functional or Sequential model; "
            "a subclassed model's graph cannot be rebuilt")
    x = np.asarray(representative, dtype=np.float32)
    if x.ndim < 2 or len(x) == 0:
        raise ConversionError(f"the representative dataset must be a batch (N, ...) with N > 0; got shape {x.shape}")
    inputs, _, calls, _, _ = _rebuild(model, None, tf, tf_keras)
    probe = tf_keras.Model(inputs, [t for _, t in calls])
    values = probe.predict(x, batch_size=batch_size, verbose=0)
    sign_only = _sign_only_keys(model)
    ranges = {}
    for (key, _), v in zip(calls, values):
        lo, hi = float(np.min(v)), float(np.max(v))
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ConversionError(f"int8 calibration: {key} has non-finite values on the representative data")
        lo, hi = min(lo, 0.0), max(hi, 0.0)  # the range must hold zero exactly
        if key.split(":")[1] in sign_only:
            lo, hi = lo * SIGN_ONLY_RANGE_FRACTION, hi * SIGN_ONLY_RANGE_FRACTION
        if hi - lo < 1e-6:
            hi = lo + 1e-6
        ranges[key] = (lo, hi)
    inputs, outputs, _, affine, fq = _rebuild(model, ranges, tf, tf_keras)
    out = tf.nest.pack_sequence_as(model._nested_outputs, outputs)
    inp = tf.nest.pack_sequence_as(model._nested_inputs, inputs)
    return Int8Preparation(model=tf_keras.Model(inp, out, name=model.name), ranges=fq, affine=tuple(affine))

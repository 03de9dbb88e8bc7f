"""Convert trained Keras/Larq models to TFLite flatbuffers.

Binary models (any larq layer with a quantizer) go through Larq Compute
Engine; float models through the stock ``tf.lite.TFLiteConverter`` (float32,
or full int8 with a representative dataset).

Before an LCE conversion every binary ``QuantDense`` is rewritten into an
exactly equivalent 1x1 ``QuantConv2D`` (see :func:`rewrite_binary_dense`):
LCE leaves a ``QuantDense`` as ``LceQuantize -> LceDequantize -> float
FULLY_CONNECTED`` with +-1.0 float32 weights (32 bits per binary weight), while
a 1x1 binary convolution becomes an ``LceBconv2d`` with bit-packed filters
(1 bit per weight).

Example:
    >>> tflite = convert(model, target="arm64")  # doctest: +SKIP
    >>> conversion_report(tflite)["ops_by_type"]  # doctest: +SKIP
    {'CONV_2D': 1, 'LceBconv2d': 4, ...}
"""

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgebnn.errors import ConversionError, ModelError, TargetError

# edgebnn target -> LCE's flatbuffer flavour. LCE's "arm" flatbuffer serves
# every Arm and x86 build of its interpreter; "xcore" is XMOS's.
TARGETS = {
    "arm64": "arm",
    "arm32": "arm",
    "x86_64": "arm",
    "xcore": "xcore",
}

# larq quantizers whose forward pass is sign(x) in {-1, +1} (0 -> +1), which
# LCE turns into bit-packed tensors.
_SIGN_INPUT_QUANTIZERS = ("SteSign", "ApproxSign", "SwishSign")
_SIGN_KERNEL_QUANTIZERS = ("SteSign", "ApproxSign", "SwishSign", "MagnitudeAwareSign")

BINARY_OPS = ("LceBconv2d", "LceBMaxPool2d")
BITPACK_OPS = ("LceQuantize", "LceDequantize")


def check_target(target: str) -> str:
    """Return LCE's flatbuffer flavour for an edgebnn target.

    Raises:
        TargetError: ``target`` is not one of :data:`TARGETS` (the message
            lists them).
    """
    if target not in TARGETS:
        raise TargetError(
            f"unknown conversion target '{target}'; valid targets: {', '.join(sorted(TARGETS))}"
        )
    return TARGETS[target]


# --------------------------------------------------------------------------
# Model inspection


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):  # nested Sequential / functional model
            yield from _all_layers(layer)


def _is_sign(quantizer, names) -> bool:
    if quantizer is None:
        return False
    name = type(quantizer).__name__
    if name in names:
        return True
    # NoOp(precision=1) marks an input or kernel that is already +-1.
    return name in ("NoOp", "NoOpQuantizer") and getattr(quantizer, "precision", None) == 1


def is_larq_model(model) -> bool:
    """True when any layer of ``model`` is a larq layer with a quantizer.

    Such models need LCE; models whose larq layers all have no quantizer
    (a float twin built from larq layers) are plain float models.
    """
    for layer in _all_layers(model):
        if not type(layer).__module__.startswith("larq"):
            continue
        for attr in ("input_quantizer", "kernel_quantizer", "depthwise_quantizer", "pointwise_quantizer"):
            if getattr(layer, attr, None) is not None:
                return True
    return False


def is_binary_dense(layer) -> bool:
    """True for a larq ``QuantDense`` with sign input and sign kernel quantizers."""
    return (
        type(layer).__name__ == "QuantDense"
        and _is_sign(getattr(layer, "input_quantizer", None), _SIGN_INPUT_QUANTIZERS)
        and _is_sign(getattr(layer, "kernel_quantizer", None), _SIGN_KERNEL_QUANTIZERS)
    )


# --------------------------------------------------------------------------
# The binary-dense rewrite


@dataclass(frozen=True)
class RewriteResult:
    """What :func:`rewrite_binary_dense` did.

    Attributes:
        model: the rewritten model (the input model itself when nothing was
            rewritten). Layers that were not rewritten are shared with the
            input model, weights included.
        rewritten: names of the ``QuantDense`` layers turned into 1x1
            ``QuantConv2D``.
        fused_batchnorm: names of the ``BatchNormalization`` layers moved onto
            the 4-D output of such a convolution (so LCE folds them into the
            bconv's multiplier and bias).
        skipped: ``(layer name, reason)`` for binary dense layers left alone.
    """

    model: object
    rewritten: tuple = ()
    fused_batchnorm: tuple = ()
    skipped: tuple = ()


def _node_args(node, tensor_map):
    """Positional and keyword arguments of ``node`` with new tensors substituted."""
    import tensorflow as tf

    if node._single_positional_tensor_passed:
        kt_id, _ = node._keras_inputs_ids_and_indices[0]
        return (tensor_map[kt_id],), {}
    flat = list(node._flat_arguments)
    for kt_id, kt_index in node._keras_inputs_ids_and_indices:
        flat[kt_index] = tensor_map[kt_id]
    return tf.nest.pack_sequence_as((node.call_args, node.call_kwargs), flat)


def _bn_axis_is_last(layer, rank: int) -> bool:
    axis = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    return [a % rank for a in axis] == [rank - 1]


def _bn_4d(bn, tf_keras):
    """A BatchNormalization on NHWC equal to ``bn`` on (N, C), same weights.

    ``fused=False`` keeps Keras on the same elementwise arithmetic as the
    2-D layer (the fused kernel rounds differently); TFLite conversion folds
    both forms into a multiply and an add.
    """
    cfg = bn.get_config()
    cfg["axis"] = -1
    cfg["fused"] = False
    cfg["name"] = bn.name
    new = type(bn).from_config(cfg)
    return new


def rewrite_binary_dense(model) -> RewriteResult:
    """Rewrite every binary ``QuantDense`` into an equivalent 1x1 ``QuantConv2D``.

    For a dense input ``x`` of shape ``(N, F)`` and kernel ``W`` of shape
    ``(F, U)``::

        QuantDense(x) = act(q_in(x) @ q_k(W) + b)
                      = reshape(QuantConv2D_1x1(reshape(x, (N, 1, 1, F))), (N, U))

    with the conv kernel ``reshape(W, (1, 1, F, U))``, the same quantizers,
    bias and activation. When the dense reads ``Flatten(m)`` of a known
    ``(N, H, W, C)`` map, the conv reads ``m`` itself with an ``(H, W)`` VALID
    kernel ``reshape(W, (H, W, C, U))`` (Flatten is row-major over H, W, C,
    like the kernel), so the feature map stays bit-packed between the two
    binary layers. The products are of +-1 values, so the sums are small
    integers and exact in float32 whatever the order: with sign quantizers
    the two forms give identical results (a ``MagnitudeAwareSign`` kernel's
    per-unit scale may round differently in its last bit).
    A ``BatchNormalization`` that is the only consumer
    of the dense layer moves onto the 4-D conv output (LCE then folds it into
    the bconv); consecutive rewritten layers stay 4-D between them.

    Works on Sequential and functional models (any graph network); trained
    weights are kept. Dense layers on inputs of rank other than 2, layers
    called more than once, layers inside nested models, and subclassed models
    are left alone (listed in ``skipped``).

    Example:
        >>> result = rewrite_binary_dense(model)  # doctest: +SKIP
        >>> result.rewritten  # doctest: +SKIP
        ('quant_dense', 'quant_dense_1')

    Args:
        model: a built tf-keras model.

    Returns:
        A :class:`RewriteResult`.

    Raises:
        ConversionError: the model's graph could not be rebuilt.
    """
    from edgebnn._tf import import_tf

    tf, tf_keras, lq = import_tf()

    candidates = [layer for layer in _all_layers(model) if is_binary_dense(layer)]
    if not candidates:
        return RewriteResult(model=model)
    if not getattr(model, "_is_graph_network", False):
        return RewriteResult(
            model=model,
            skipped=tuple((layer.name, "subclassed model: its graph cannot be rebuilt") for layer in candidates),
        )
    skipped = [(layer.name, "inside a nested model") for layer in candidates if layer not in model.layers]

    # Which layer consumes each tensor, to find BatchNormalization layers
    # that can move onto the conv's 4-D output.
    consumers, producers, uses = {}, {}, {}
    for depth in model._nodes_by_depth:
        for node in model._nodes_by_depth[depth]:
            for t_id in node.flat_input_ids:
                consumers.setdefault(t_id, []).append(node)
            for t_id in node.flat_output_ids:
                producers[t_id] = node
            if not node.is_input:
                uses[id(node.layer)] = uses.get(id(node.layer), 0) + 1
    output_ids = {str(id(t)) for t in model.outputs}

    tensor_map = {}  # id of an original Keras tensor -> new tensor
    twin4d = {}  # id of an original tensor -> its (N, 1, 1, C) form
    new_inputs = []
    for t in model.inputs:
        new = tf_keras.Input(
            shape=t.shape[1:], batch_size=None, dtype=t.dtype, name=t.name.split(":")[0]
        )
        tensor_map[str(id(t))] = new
        new_inputs.append(new)

    rewritten, fused = [], []
    try:
        for depth in sorted(model._nodes_by_depth, reverse=True):
            for node in model._nodes_by_depth[depth]:
                if node.is_input:
                    continue
                if all(t_id in tensor_map for t_id in node.flat_output_ids):
                    continue  # computed already (a BatchNormalization moved into a rewrite)
                layer = node.layer
                args, kwargs = _node_args(node, tensor_map)
                in_ids = node.flat_input_ids
                in_shape = node.input_shapes
                shared = uses.get(id(layer), 0) > 1
                if (
                    is_binary_dense(layer)
                    and not shared
                    and len(in_ids) == 1
                    and not kwargs
                    and isinstance(in_shape, tuple)
                    and len(in_shape) == 2
                    and in_shape[-1] is not None
                ):
                    out = _rewrite_one(
                        tf_keras,
                        lq,
                        layer,
                        node,
                        args[0],
                        in_ids[0],
                        _flatten_source(producers.get(in_ids[0]), tensor_map),
                        twin4d,
                        consumers,
                        uses,
                        output_ids,
                        fused,
                    )
                    for t_id, (flat, four) in out.items():
                        tensor_map[t_id] = flat
                        twin4d[t_id] = four
                    rewritten.append(layer.name)
                    continue
                if is_binary_dense(layer):
                    reason = (
                        f"shared layer (called {uses[id(layer)]} times)"
                        if shared
                        else f"input shape {in_shape} is not (batch, features)"
                    )
                    if (layer.name, reason) not in skipped:
                        skipped.append((layer.name, reason))
                outputs = layer(*args, **kwargs)
                for t_id, y in zip(node.flat_output_ids, tf.nest.flatten(outputs)):
                    tensor_map[t_id] = y
        new_outputs = [tensor_map[str(id(t))] for t in model.outputs]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ConversionError(
            f"could not rebuild model '{model.name}' to rewrite its binary dense layers: {exc}; "
            "convert with rewrite_dense=False (--no-rewrite-dense) to skip the rewrite"
        ) from exc
    outputs = tf.nest.pack_sequence_as(model._nested_outputs, new_outputs)
    inputs = tf.nest.pack_sequence_as(model._nested_inputs, new_inputs)
    new_model = tf_keras.Model(inputs, outputs, name=model.name)
    return RewriteResult(
        model=new_model,
        rewritten=tuple(rewritten),
        fused_batchnorm=tuple(fused),
        skipped=tuple(skipped),
    )


def _flatten_source(node, tensor_map):
    """``(new 4-D input tensor, its shape)`` when ``node`` is a channels-last
    Flatten of a fully known (N, H, W, C) map, else None."""
    if node is None or node.is_input or type(node.layer).__name__ != "Flatten":
        return None
    if getattr(node.layer, "data_format", "channels_last") != "channels_last":
        return None
    shape = node.input_shapes
    if not isinstance(shape, tuple) or len(shape) != 4 or any(d is None for d in shape[1:]):
        return None
    (src_id,) = node.flat_input_ids
    if src_id not in tensor_map:
        return None
    return tensor_map[src_id], shape


def _rewrite_one(tf_keras, lq, layer, node, x, in_id, flat_source, twin4d, consumers, uses, output_ids, fused):
    """Build Reshape -> QuantConv2D 1x1 [-> BatchNormalization] -> Reshape.

    Returns ``{original tensor id: (2-D tensor, 4-D tensor)}`` for the dense
    output and, when a BatchNormalization was moved, for the BN output too.
    """
    features = int(node.input_shapes[-1])
    units = int(layer.units)
    cfg = layer.get_config()
    kernel_hw = (1, 1)
    x4 = twin4d.get(in_id)
    if x4 is None and flat_source is not None:
        # Flatten -> dense == a VALID conv whose kernel covers the whole
        # (H, W, C) map: Flatten is row-major over H, W, C, as is the
        # kernel's (H, W, C_in) layout. The conv then reads the (bit-packed)
        # feature map directly, with no reshape of float data.
        x4, shape = flat_source
        kernel_hw = (int(shape[1]), int(shape[2]))
    if x4 is None:
        x4 = tf_keras.layers.Reshape((1, 1, features), name=f"{layer.name}_to_nhwc")(x)
    conv = lq.layers.QuantConv2D(
        units,
        kernel_hw,
        padding="valid",
        use_bias=cfg["use_bias"],
        activation=cfg["activation"],
        input_quantizer=cfg["input_quantizer"],
        kernel_quantizer=cfg["kernel_quantizer"],
        kernel_constraint=cfg.get("kernel_constraint"),
        dtype=cfg.get("dtype"),
        name=layer.name,
    )
    y4 = conv(x4)
    weights = layer.get_weights()
    weights[0] = np.asarray(weights[0]).reshape(*kernel_hw, features // (kernel_hw[0] * kernel_hw[1]), units)
    conv.set_weights(weights)
    (dense_out_id,) = node.flat_output_ids
    result = {}

    users = consumers.get(dense_out_id, [])
    bn_node = users[0] if len(users) == 1 else None
    if (
        bn_node is not None
        and dense_out_id not in output_ids
        and type(bn_node.layer).__name__ == "BatchNormalization"
        and uses.get(id(bn_node.layer), 0) == 1
        and not bn_node.call_kwargs
        and _bn_axis_is_last(bn_node.layer, 2)
    ):
        bn = bn_node.layer
        bn4 = _bn_4d(bn, tf_keras)
        z4 = bn4(y4)
        bn4.set_weights(bn.get_weights())
        fused.append(bn.name)
        z = tf_keras.layers.Reshape((units,), name=f"{bn.name}_flat")(z4)
        (bn_out_id,) = bn_node.flat_output_ids
        result[bn_out_id] = (z, z4)
        y = tf_keras.layers.Reshape((units,), name=f"{layer.name}_flat")(y4)
    else:
        y = tf_keras.layers.Reshape((units,), name=f"{layer.name}_flat")(y4)
    result[dense_out_id] = (y, y4)
    return result


# --------------------------------------------------------------------------
# Conversion


@dataclass(frozen=True)
class Conversion:
    """A converted model and how it was made."""

    tflite: bytes = field(repr=False)
    target: str
    converter: str  # "lce" or "tflite"
    int8: bool
    rewritten: tuple = ()
    fused_batchnorm: tuple = ()
    skipped: tuple = ()

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("tflite")
        d["rewritten"] = list(self.rewritten)
        d["fused_batchnorm"] = list(self.fused_batchnorm)
        d["skipped"] = [list(s) for s in self.skipped]
        return d


def _representative_fn(representative):
    if callable(representative):
        return representative
    data = np.asarray(representative, dtype=np.float32)
    if data.ndim < 2 or len(data) == 0:
        raise ConversionError(
            f"the representative dataset must be a batch of inputs (N, ...) with N > 0; "
            f"got an array of shape {data.shape}"
        )

    def gen():
        for i in range(len(data)):
            yield [data[i : i + 1]]

    return gen


def _representative_array(representative):
    """The representative inputs as one array (a callable's batches concatenated)."""
    if callable(representative):
        batches = [np.asarray(b[0], dtype=np.float32) for b in representative()]
        if not batches:
            raise ConversionError("the representative dataset yielded no batches")
        return np.concatenate(batches)
    return np.asarray(representative, dtype=np.float32)


def convert_model(model, *, target="arm64", int8=False, representative=None, rewrite_dense=True) -> Conversion:
    """Convert ``model`` and say how (see :func:`convert`)."""
    flavour = check_target(target)
    from edgebnn._tf import import_tf

    tf, _, _ = import_tf()
    if is_larq_model(model):
        from edgebnn._tf import import_lce

        lce = import_lce()
        rw = rewrite_binary_dense(model) if rewrite_dense else RewriteResult(model=model)
        kwargs = {}
        to_convert = rw.model
        if int8:
            if representative is None:
                raise ConversionError(
                    f"full int8 conversion of model '{model.name}' needs a representative dataset "
                    "(a batch of typical inputs) to calibrate activation ranges"
                )
            from edgebnn.int8bnn import prepare_int8

            to_convert = prepare_int8(rw.model, _representative_array(representative)).model
            kwargs = {"inference_input_type": tf.int8, "inference_output_type": tf.int8}
        try:
            data = lce.convert_keras_model(to_convert, target=flavour, **kwargs)
        except Exception as exc:  # LCE/MLIR raise bare errors
            raise ConversionError(f"LCE could not convert model '{model.name}': {exc}") from exc
        return Conversion(
            tflite=bytes(data),
            target=target,
            converter="lce",
            int8=bool(int8),
            rewritten=rw.rewritten,
            fused_batchnorm=rw.fused_batchnorm,
            skipped=rw.skipped,
        )

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        if representative is None:
            raise ConversionError(
                f"full int8 conversion of model '{model.name}' needs a representative dataset "
                "(a batch of typical inputs) to calibrate activation ranges"
            )
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative_fn(representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    try:
        data = converter.convert()
    except Exception as exc:  # the TFLite converter raises bare errors
        raise ConversionError(f"TFLite could not convert model '{model.name}': {exc}") from exc
    return Conversion(tflite=bytes(data), target=target, converter="tflite", int8=bool(int8))


def convert(model, *, target="arm64", int8=False, representative=None, rewrite_dense=True) -> bytes:
    """Convert a tf-keras/Larq model to a TFLite flatbuffer.

    Models with larq quantized layers go through Larq Compute Engine (target
    ``arm64``, ``arm32`` and ``x86_64`` all use LCE's ``"arm"`` flatbuffer,
    ``xcore`` XMOS's), after :func:`rewrite_binary_dense` unless
    ``rewrite_dense`` is false. Float models go through the stock TFLite
    converter: float32, or with ``int8=True`` full int8 (int8 input and
    output, activation ranges calibrated on ``representative``).

    Example:
        >>> data = convert(model, target="arm64")  # doctest: +SKIP
        >>> Path("model.tflite").write_bytes(data)  # doctest: +SKIP

    Args:
        model: a built tf-keras model.
        target: one of :data:`TARGETS`.
        int8: full-integer conversion: int8 input, output and float layers.
            A Larq model is calibrated on ``representative`` and given int8
            ranges (:mod:`edgebnn.int8bnn`); its binary layers stay bitpacked.
        representative: inputs ``(N, ...)`` as stored (raw pixels), or a
            callable yielding ``[batch]`` lists, for int8 calibration.
        rewrite_dense: rewrite binary ``QuantDense`` layers as 1x1 binary
            convolutions first.

    Returns:
        The flatbuffer's bytes.

    Raises:
        TargetError: unknown target.
        ConversionError: the converter failed, or ``int8`` without a
            representative dataset.
    """
    return convert_model(
        model, target=target, int8=int8, representative=representative, rewrite_dense=rewrite_dense
    ).tflite


# --------------------------------------------------------------------------
# Loading user models


def _larq_zoo_objects() -> dict:
    """larq-zoo's custom objects when larq-zoo is installed, else nothing.

    Its functions and Model classes register with Keras only when larq_zoo
    is imported, so its saved models need them passed by name
    (:func:`edgebnn.zoo_models.larq_zoo_custom_objects`).
    """
    import importlib.util

    if importlib.util.find_spec("larq_zoo") is None:
        return {}
    from edgebnn.zoo_models import larq_zoo_custom_objects

    return larq_zoo_custom_objects()


def custom_objects_from(module_name: str) -> dict:
    """The custom objects a user's module declares (``--custom-objects MODULE``).

    The module is imported (that is the user's own code, named on the
    command line) and its ``CUSTOM_OBJECTS`` dict returned; without one,
    its public classes and functions by name.

    Raises:
        ModelError: the module does not import or declares nothing usable.
    """
    import importlib

    try:
        mod = importlib.import_module(module_name)
    except Exception as exc:  # the user's module can raise anything on import
        raise ModelError(f"--custom-objects: cannot import module '{module_name}': {type(exc).__name__}: {exc}") from exc
    objs = getattr(mod, "CUSTOM_OBJECTS", None)
    if objs is None:
        objs = {k: v for k, v in vars(mod).items()
                if not k.startswith("_") and callable(v) and getattr(v, "__module__", None) == mod.__name__}
    if not isinstance(objs, dict) or not objs:
        raise ModelError(f"--custom-objects: module '{module_name}' has no CUSTOM_OBJECTS dict and no "
                         "public classes or functions of its own")
    return dict(objs)


def load_keras_model(path, *, trust_model_code=False, custom_objects=None):
    """Load a .h5/.keras file or SavedModel folder built from tf-keras/larq layers.

    Unless ``trust_model_code``, the stored configuration is checked first
    (:mod:`edgebnn.modelcheck`): a ``Lambda`` layer, a serialized function, a
    class outside tf-keras, Larq, edgebnn's zoo and ``custom_objects``, or a
    SavedModel folder is refused before anything is deserialized. A ``.h5``
    file is checked and loaded through the same open handle, so what is
    checked is what is loaded; ``.keras`` files load in Keras's safe mode.
    larq is imported first, so its layers and quantizers resolve.
    larq-zoo's own Lambda layers (MeliusNet22, RealToBinaryNet) are
    recognised by comparing their stored bytecode, read as data, with the
    installed larq-zoo's, and replaced by built-in layers before the check
    (:mod:`edgebnn.zoo_lambdas`); function-valued initializers, quantizers
    and activations in a ``.h5`` are resolved by name as the ``.keras``
    loader does.

    Example:
        >>> model = load_keras_model("run/model.h5")  # doctest: +SKIP

    Args:
        path: a ``.h5`` file, a ``.keras`` zip or a SavedModel folder.
        trust_model_code: skip the check and load as tf-keras would (the
            CLI's ``--trust-model-code``); stored Python code then runs.
        custom_objects: ``{name: class or function}`` the model may use on
            top of the built-ins (larq-zoo's are added when it is installed).

    Raises:
        UnsafeModelError: the model would run code (and it is not trusted).
        ModelError: the path is missing, is not a Keras model, or does not load.
    """
    from edgebnn._tf import import_tf

    _, tf_keras, _ = import_tf()
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model file not found: {path}")
    if path.is_dir() and not (path / "saved_model.pb").is_file():
        raise ModelError(f"{path} is a directory but not a SavedModel folder (no saved_model.pb)")
    if path.is_file() and path.suffix.lower() == ".tflite":
        raise ModelError(f"{path} is already a TFLite flatbuffer; expected a Keras model (.h5, .keras, SavedModel)")
    objs = {**_larq_zoo_objects(), **(custom_objects or {})}
    try:
        if trust_model_code:
            model = tf_keras.models.load_model(str(path), custom_objects=objs, compile=False, safe_mode=False)
        else:
            model = _load_checked(tf_keras, path, objs)
    except ModelError:
        raise
    except Exception as exc:  # h5py/keras raise OSError, ValueError, KeyError...
        raise ModelError(
            f"cannot load {path} as a Keras model (expected a tf-keras .h5/.keras file or "
            f"SavedModel folder built from tf-keras/larq layers): {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(model, tf_keras.Model):
        raise ModelError(f"{path} loaded as {type(model).__name__}, not a Keras model")
    return model


def _load_checked(tf_keras, path: Path, objs: dict):
    """Read the stored config, replace larq-zoo's known Lambda layers, check it, load from it.

    A config that needed no replacement loads as before (``load_model`` on
    the checked h5 handle, or in safe mode for a ``.keras``); a replaced one
    is built from the checked config and the weights are read from the file.
    """
    import h5py

    from edgebnn import modelcheck
    from edgebnn.zoo_lambdas import replace_zoo_lambdas

    fmt = modelcheck.model_format(path)
    if fmt == "savedmodel":
        modelcheck.check_model_file(path, custom_objects=objs)  # raises
    if fmt == "keras":
        rw = replace_zoo_lambdas(modelcheck.read_keras_zip_config(path), fmt)
        modelcheck.check_config(rw.config, path, custom_objects=objs, notes=_lambda_notes(rw))
        if not rw.replaced:
            return tf_keras.models.load_model(str(path), custom_objects=objs, compile=False, safe_mode=True)
        model = tf_keras.saving.deserialize_keras_object(rw.config, custom_objects=objs, safe_mode=True)
        model.load_weights(str(path))
        return model
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise ModelError(f"cannot read {path} as an HDF5 file: {exc}") from exc
    with fh:
        rw = replace_zoo_lambdas(modelcheck.read_h5_config(fh, path), fmt)
        modelcheck.check_config(rw.config, path, custom_objects=objs, notes=_lambda_notes(rw))
        config, functions = _h5_functions_resolved(tf_keras, rw.config, objs)
        if not rw.replaced and not functions:
            return tf_keras.models.load_model(fh, custom_objects=objs, compile=False)
        model = tf_keras.models.model_from_config(config, custom_objects=objs)
        if "model_weights" not in fh:
            raise ModelError(f"cannot load {path}: it has a model config but no 'model_weights' group")
        _h5_load_weights(fh["model_weights"], model)
        return model


def _lambda_notes(rw) -> list:
    return [f"Lambda layer '{name}' looks like larq-zoo's but was not replaced by a built-in layer: {why}"
            for name, why in rw.unmatched]


def _h5_functions_resolved(tf_keras, config: dict, objs: dict):
    """``(config, names)``: the h5 config decoded as tf-keras's h5 loader does, with each
    ``{"class_name": "function", ...}`` object replaced by the function it names.

    tf-keras 2.16 writes a function-valued initializer, quantizer or
    activation into a ``.h5`` in its new serialization format
    (``{"module": "builtins", "class_name": "function", "config": "blurpool_initializer"}``)
    and its h5 reader, which uses the old format, then looks for a class
    called ``function``. Giving a layer the function itself is what the
    ``.keras`` loader does: the name is looked up among ``objs`` and Keras's
    built-in functions (the scan already allowed it), and nothing else runs.
    """
    import json

    from tf_keras.src.saving.legacy.saved_model import json_utils  # what tf-keras's h5 loader decodes with

    names = []

    def resolve(value):
        if isinstance(value, dict):
            if value.get("class_name") == "function" and isinstance(value.get("config"), str):
                try:
                    fn = tf_keras.saving.deserialize_keras_object(value, custom_objects=objs, safe_mode=True)
                except (TypeError, ValueError) as exc:
                    raise ModelError(
                        f"the model config names function '{value['config']}' (module "
                        f"'{value.get('module')}'), which is neither a Keras built-in nor one of the custom "
                        f"objects ({', '.join(sorted(objs)) or 'none'}); pass --custom-objects MODULE: {exc}"
                    ) from exc
                names.append(value["config"])
                return fn
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        return value

    decoded = json_utils.decode(json.dumps(config))
    return resolve(decoded), names


def _h5_load_weights(group, model) -> None:
    """Weights of a whole-model .h5 (its ``model_weights`` group) into ``model``, as tf-keras's h5 loader does."""
    from tf_keras.src.saving.legacy import hdf5_format

    hdf5_format.load_weights_from_hdf5_group(group, model)


# --------------------------------------------------------------------------
# Conversion report


def _op_precision(graph, op) -> str:
    if op.type in BINARY_OPS:
        return "binary"
    if op.type in BITPACK_OPS:
        return "bitpack"
    for i in op.inputs:
        if i >= 0:
            dtype = graph.tensor(i).dtype
            if dtype in ("float32", "float16"):
                return "float"
            if dtype in ("int8", "uint8", "int16"):
                return "int8"
            break
    return "other"


def conversion_report(tflite_bytes) -> dict:
    """Summarize a .tflite: ops, tensors, and bytes of weights by kind.

    Weight kinds: ``binary_filters`` (bit-packed filters of ``LceBconv2d``),
    ``float_weights`` (every float constant: float filters, biases, the
    bconv's multipliers and biases, folded BatchNormalization), ``int8_weights``
    (int8/uint8 constants) and ``other_constants`` (int32 biases of int8 ops,
    shapes, thresholds...).

    Example:
        >>> conversion_report(Path("model.tflite").read_bytes())["weight_bytes"]  # doctest: +SKIP
        {'binary_filters': 12416, 'float_weights': 3880, ...}

    Args:
        tflite_bytes: the flatbuffer, or a path to it.

    Returns:
        A JSON-serializable dict.

    Raises:
        TFLiteFormatError: not a readable TFLite flatbuffer.
    """
    from edgebnn.graph import load_graph

    name = None
    if isinstance(tflite_bytes, (str, Path)):
        name = str(tflite_bytes)
        tflite_bytes = Path(tflite_bytes).read_bytes()
    graph = load_graph(bytes(tflite_bytes), name=name)
    packed = set()
    for op in graph.ops:
        if op.type == "LceBconv2d" and len(op.inputs) > 1 and op.inputs[1] >= 0:
            packed.add(op.inputs[1])
    kinds = {"binary_filters": 0, "float_weights": 0, "int8_weights": 0, "other_constants": 0}
    for t in graph.tensors:
        if not t.is_constant:
            continue
        if t.index in packed:
            kinds["binary_filters"] += t.nbytes
        elif t.dtype in ("float32", "float16"):
            kinds["float_weights"] += t.nbytes
        elif t.dtype in ("int8", "uint8"):
            kinds["int8_weights"] += t.nbytes
        else:
            kinds["other_constants"] += t.nbytes
    kinds["total"] = sum(kinds.values())
    precision_counts = {"binary": 0, "bitpack": 0, "float": 0, "int8": 0, "other": 0}
    ops = []
    for op in graph.ops:
        prec = _op_precision(graph, op)
        precision_counts[prec] += 1
        out = graph.tensor(op.outputs[0]) if op.outputs else None
        ops.append(
            {
                "index": op.index,
                "type": op.type,
                "precision": prec,
                "output_shape": list(out.shape) if out is not None else [],
                "output_dtype": out.dtype if out is not None else None,
            }
        )
    inp = graph.tensor(graph.inputs[0])
    outp = graph.tensor(graph.outputs[0])
    return {
        "file_size": graph.size,
        "sha256": graph.sha256,
        "lce": graph.is_lce(),
        "ops_by_type": graph.op_types(),
        "n_ops": len(graph.ops),
        "binary_ops": precision_counts["binary"],
        "float_ops": precision_counts["float"],
        "ops_by_precision": precision_counts,
        "n_tensors": len(graph.tensors),
        "weight_bytes": kinds,
        "input": {"shape": list(inp.shape), "dtype": inp.dtype},
        "output": {"shape": list(outp.shape), "dtype": outp.dtype},
        "ops": ops,
    }


# --------------------------------------------------------------------------
# What `edgebnn convert` writes


def default_outputs(ref, output=None) -> tuple:
    """``(tflite path, report path)`` that ``edgebnn convert`` writes for a resolved model.

    ``output`` (a ``-o`` flag) wins, with the report beside it as ``.json``;
    a run directory gets ``model.tflite`` and ``model.json``; a shipped model
    ``NAME.tflite`` and ``NAME.json`` in the current directory; a model file
    or SavedModel folder a ``.tflite`` and ``.json`` beside it.

    Example:
        >>> from edgebnn.modelref import ModelRef
        >>> default_outputs(ModelRef(arg="m.h5", kind="keras", keras_path="out/m.h5"))
        (PosixPath('out/m.tflite'), PosixPath('out/m.json'))
    """
    from edgebnn import rundir

    if output:
        out = Path(output)
        return out, out.with_suffix(".json")
    if ref.kind == "run_dir":
        return Path(ref.run_dir) / rundir.TFLITE, Path(ref.run_dir) / rundir.TFLITE_REPORT
    if ref.kind == "pretrained":
        return Path(f"{ref.arg}.tflite"), Path(f"{ref.arg}.json")
    src = Path(ref.keras_path)
    base = src if src.is_dir() else src.with_suffix("")
    return base.with_name(base.name + ".tflite"), base.with_name(base.name + ".json")


def conversion_record(conv, ref, *, keras_path, dataset, keras_params, version) -> dict:
    """The report ``edgebnn convert`` writes beside the .tflite: :func:`conversion_report`
    of the flatbuffer, plus where it came from and how it was converted."""
    report = conversion_report(conv.tflite)
    report.update(
        source=str(ref.arg),
        keras_path=str(keras_path),
        dataset=dataset,
        keras_params=int(keras_params),
        conversion=conv.to_dict(),
        edgebnn_version=version,
    )
    return report


def representative_inputs(x, n: int = 500, seed: int = 0):
    """A seeded random subset of ``n`` inputs for int8 calibration."""
    x = np.asarray(x)
    if len(x) <= n:
        return x
    idx = np.sort(np.random.default_rng(seed).choice(len(x), size=n, replace=False))
    return x[idx]

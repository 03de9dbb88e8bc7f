"""Export-time constant folding of weight computations LCE leaves in the graph.

LCE's converter folds a larq kernel quantizer into constant weights, except
when the weight tensor is over TFLite's constant-folding size limit: then the
quantizer's ops stay in the flatbuffer and run on every inference. larq-zoo's
XNOR-Net shows it: its 6x6x256x4096 layer (37.7 M weights) ships as
``RELU_N1_TO_1 -> ABS -> MEAN`` (the per-channel scale) and
``LceQuantize -> LceDequantize`` (the sign), a ``MUL``, a ``TRANSPOSE`` and
a float ``CONV_2D`` whose filter is that result, 4 x 151 MB of activations.

:func:`fold_constants` evaluates every op whose inputs are all constant and
whose type is in :data:`FOLDABLE` with numpy, once, at export;
:func:`binarize_float_convs` then turns a float ``CONV_2D`` on an
``LceDequantize`` output whose filter rows are each +-s_o into the
``LceBconv2d`` that LCE would have written (bitpacked filter,
post_activation_multiplier s_o), so the layer costs 1 bit per weight.

Numerics: every folded op is exact elementwise float32 arithmetic or data
movement, except MEAN, summed here in float64 and rounded once (TFLite sums
in float32 in its own order: the scale differs by float rounding, relative
~1e-7). The binary convolution computes the integer dot product exactly
where TFLite's float CONV_2D rounds after each of its K additions of
+-s_o, so outputs differ by float rounding only.

Example:
    >>> from edgebnn.graph import load_graph
    >>> g = fold_constants(load_graph("xnornet.tflite"))  # doctest: +SKIP
    >>> "ABS" in g.op_types()  # doctest: +SKIP
    False
"""

import dataclasses

import numpy as np

from edgebnn.graph import Tensor

_PADDING_INT = {"SAME": 0, "VALID": 1}
_ACT_INT = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}


def _sign(x):
    return np.where(x < 0, np.float32(-1.0), np.float32(1.0)).astype(np.float32)


def _mean(op, x, axes):
    ax = tuple(sorted({int(a) % x.ndim for a in np.asarray(axes).ravel()}))
    y = x.astype(np.float64).mean(axis=ax, keepdims=bool(op.options.get("keep_dims", False)))
    return y.astype(np.float32)


#: op type -> f(op, *constant inputs) -> the output array (float32 semantics of TFLite / LCE).
FOLDABLE = {
    "RELU_N1_TO_1": lambda op, x: np.clip(x, np.float32(-1.0), np.float32(1.0)).astype(np.float32),
    "RELU": lambda op, x: np.maximum(x, np.float32(0.0)).astype(np.float32),
    "ABS": lambda op, x: np.abs(x).astype(np.float32),
    "MEAN": _mean,
    # LceQuantize -> LceDequantize folds to the sign (+1 for x >= 0, -1 for x < 0)
    "LceQuantize": lambda op, x: _sign(x),
    "LceDequantize": lambda op, x: _sign(x),
    "MUL": lambda op, a, b: (a * b).astype(np.float32),
    "TRANSPOSE": lambda op, x, perm: np.ascontiguousarray(np.transpose(x, [int(p) for p in perm])),
}


def fold_constants(graph):
    """The graph with every foldable all-constant op replaced by its constant output.

    Only ops of :data:`FOLDABLE` whose activation inputs are all constants
    and whose outputs are not graph outputs are folded. The folded "sign"
    tensors of an ``LceQuantize -> LceDequantize`` pair are kept as float
    signs, so the pair folds as a whole (a bitpacked constant is never read
    by another op here).
    """
    values = {}  # tensor index -> folded float array
    folded = set()
    outputs = set(graph.outputs)

    def const(i):
        if i in values:
            return values[i]
        t = graph.tensor(i)
        return None if t.data is None else np.asarray(t.data)

    for op in graph.ops:
        fn = FOLDABLE.get(op.type)
        if fn is None or len(op.outputs) != 1 or op.outputs[0] in outputs:
            continue
        ins = [const(i) for i in op.inputs if i >= 0]
        if not ins or any(v is None for v in ins):
            continue
        if op.type == "LceDequantize" and op.inputs[0] not in values:
            continue  # a bitpacked constant from the file: leave it to the handlers
        values[op.outputs[0]] = fn(op, *ins)
        folded.add(op.index)
    if not folded:
        return graph
    tensors = list(graph.tensors)
    unwritten = set()
    for i, v in values.items():
        t = tensors[i]
        if tuple(v.shape) != tuple(t.shape):
            unwritten.add(i)  # the float signs standing for a bitpacked LceQuantize output
            continue
        tensors[i] = dataclasses.replace(t, data=v, dtype="float32")
    kept = [op for op in graph.ops if op.index not in folded]
    read = {i for op in kept for i in op.inputs}
    # an op whose folded value cannot stand in its tensor stays when a kept op reads it
    ops = tuple(op for op in graph.ops
                if op.index not in folded or (op.outputs[0] in unwritten and op.outputs[0] in read))
    return dataclasses.replace(graph, tensors=tuple(tensors), ops=ops)


def _row_scales(w):
    """s_o > 0 with every weight of row o equal to +-s_o, else None."""
    rows = w.reshape(w.shape[0], -1)
    s = np.abs(rows[:, :1])
    if not np.all(s > 0) or not np.all(np.isfinite(s)) or not np.all(np.abs(rows) == s):
        return None
    return s[:, 0].astype(np.float32)


def binarize_float_convs(graph):
    """Float ``CONV_2D(LceDequantize(q), +-s_o filter)`` -> ``LceBconv2d(q)`` with multiplier s_o.

    Only VALID padding, or SAME with no fused activation (LCE's same-zero
    case: a float CONV_2D pads with 0.0, LceBconv2d with pad_values=0
    reproduces it). The filter must be a constant.
    """
    from edgebnn.codegen.ops import pack_bits

    producer = {t: op for op in graph.ops for t in op.outputs}
    tensors = list(graph.tensors)
    new_ops = []
    changed = False
    for op in graph.ops:
        src = producer.get(op.inputs[0]) if op.type == "CONV_2D" and op.inputs else None
        w = graph.tensor(op.inputs[1]) if src is not None and len(op.inputs) > 1 else None
        act = op.options.get("fused_activation_function", "NONE") if w is not None else None
        padding = op.options.get("padding") if w is not None else None
        if (src is None or src.type != "LceDequantize" or w is None or w.data is None or w.dtype != "float32"
                or len(w.shape) != 4 or padding not in _PADDING_INT or act not in _ACT_INT
                or (padding == "SAME" and act != "NONE")):
            new_ops.append(op)
            continue
        data = np.asarray(w.data, np.float32)
        scales = _row_scales(data)
        if scales is None:
            new_ops.append(op)
            continue
        out_c = int(w.shape[0])
        bias_idx = op.inputs[2] if len(op.inputs) > 2 else -1
        bias = (np.asarray(graph.tensor(bias_idx).data, np.float32).reshape(out_c) if bias_idx >= 0
                else np.zeros(out_c, np.float32))

        def add(name, array, dtype):
            tensors.append(Tensor(index=len(tensors), name=name, shape=tuple(array.shape), dtype=dtype,
                                  data=array))
            return len(tensors) - 1

        f_idx = add(f"{w.name}/bitpacked", pack_bits(data), "int32")
        m_idx = add(f"{w.name}/scale", scales, "float32")
        b_idx = add(f"{w.name}/bias", bias, "float32")
        options = {
            "channels_in": int(w.shape[3]),
            "stride_height": int(op.options.get("stride_h", 1)),
            "stride_width": int(op.options.get("stride_w", 1)),
            "dilation_height_factor": int(op.options.get("dilation_hfactor", 1)),
            "dilation_width_factor": int(op.options.get("dilation_wfactor", 1)),
            "padding": _PADDING_INT[padding],
            "pad_values": 0,
            "fused_activation_function": _ACT_INT[act],
        }
        new_ops.append(dataclasses.replace(op, type="LceBconv2d", custom=True, options=options,
                                           inputs=(src.inputs[0], f_idx, m_idx, b_idx, -1)))
        changed = True
    if not changed:
        return graph
    return dataclasses.replace(graph, tensors=tuple(tensors), ops=tuple(new_ops))


def fold_weight_computations(graph):
    """:func:`fold_constants`, then :func:`binarize_float_convs`."""
    return binarize_float_convs(fold_constants(graph))

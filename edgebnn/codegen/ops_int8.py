"""Handlers of int8 (full-integer) ops: TFLite builtins on int8 tensors.

A builtin such as ``CONV_2D`` has a float handler in :mod:`edgebnn.codegen.ops`
and an int8 one here; :func:`lookup` picks the int8 one when the op's first
input or its output is an int8 tensor. Quantization parameters are computed
as TFLite's Prepare computes them (:mod:`edgebnn.codegen.quant`), so the calls
into ``firmware/runtime/ebnn_int8_*.c`` are bit-exact with TFLite's
reference kernels.

Example:
    >>> sorted(INT8_OPS)[:3]
    ['ADD', 'AVERAGE_POOL_2D', 'CONCATENATION']
"""

from dataclasses import dataclass, fields

import numpy as np

from edgebnn.codegen import quant as Q
from edgebnn.codegen.ops import (
    MAX_CONCAT_INPUTS, Activation, BConv2DParams, Dims, LceBconv2d, OpKernel, Padding, Params, PassNode,
    _broadcast, _prod, output_size,
)
from edgebnn.codegen.writer import c_initializer

_INT8 = {}


def register_int8(name):
    """Class decorator: ``cls`` handles ops of type ``name`` on int8 tensors."""

    def deco(cls):
        if name in _INT8:
            raise ValueError(f"int8 op {name} registered twice")
        _INT8[name] = cls
        cls.op_type = name
        return cls

    return deco


INT8_OPS = _INT8


def lookup(op, graph):
    """The int8 handler of ``op``, or None when the op is not an int8 op."""
    cls = _INT8.get(op.type)
    if cls is None:
        return None
    if op.type in ("QUANTIZE", "DEQUANTIZE"):
        return cls
    ends = [i for i in op.inputs[:1] if i >= 0] + list(op.outputs[:1])
    return cls if any(graph.tensor(i).dtype == "int8" for i in ends) else None


class Int8Op(OpKernel):
    """Base of int8 handlers: int8 outputs, per-tensor quantization helpers."""

    out_dtypes = ("int8",)
    operands = (("in", 0, "int8_t"), ("out", 0, "int8_t"))

    def qparams(self, tensor, role):
        """``(scale, zero_point)`` of a per-tensor quantized int8 tensor."""
        q = tensor.quantization
        if q is None or not q.scale:
            raise self.fail(f"{role} tensor {tensor.index} '{tensor.name}' has no quantization parameters")
        if len(q.scale) != 1:
            raise self.fail(f"{role} tensor {tensor.index} '{tensor.name}' has {len(q.scale)} scales, "
                            "expected one (per-tensor quantization)")
        zp = int(q.zero_point[0]) if q.zero_point else 0
        if not -128 <= zp <= 127:
            raise self.fail(f"{role} tensor '{tensor.name}' has zero point {zp}, expected -128..127")
        return float(q.scale[0]), zp

    def act_range(self, out):
        scale, zp = self.qparams(out, "output")
        try:
            return Q.activation_range(self.activation().name, scale, zp)
        except Q.QuantizationError as exc:
            raise self.fail(str(exc)) from exc

    def int8_input(self, pos=0):
        x = self.tensor(pos)
        self.require_dtype(x, ("int8",), f"input {pos}")
        return x

    def same_quantization(self, a, b):
        if self.qparams(a, "input") != self.qparams(b, "output"):
            raise self.fail(f"input '{a.name}' {self.qparams(a, 'input')} and output '{b.name}' "
                            f"{self.qparams(b, 'output')} must share scale and zero point")


@dataclass(frozen=True)
class FieldsParams(Params):
    """The C struct's fields in order, ``((name, value), ...)``, values as any params field's."""

    items: tuple

    def c_fields(self, em, **rendered):
        return [(k, rendered.get(k, v)) for k, v in self.items]


# --------------------------------------------------------------------------
# QUANTIZE / DEQUANTIZE


@register_int8("QUANTIZE")
class Quantize(Int8Op):
    """float -> int8 (AffineQuantize) or int8 -> int8 (requantize)."""

    def parse(self):
        x, y = self.tensor(0), self.out_tensor()
        self.require_dtype(x, ("float32", "int8"), "input")
        so, zo = self.qparams(y, "output")
        n = _prod(y.shape)
        if x.dtype == "float32":
            self.c_params_type, self.c_function = "ebnn_int8_affine_params_t", "ebnn_int8_quantize"
            self.operands = (("in", 0, "float"), ("out", 0, "int8_t"))
            return FieldsParams((("size", n), ("scale", float(np.float32(so))), ("zero_point", zo)))
        si, zi = self.qparams(x, "input")
        m, s = Q.ratio_multiplier(si, so)
        self.c_params_type, self.c_function = "ebnn_int8_requantize_params_t", "ebnn_int8_requantize"
        return FieldsParams((("size", n), ("input_zero_point", zi), ("output_zero_point", zo),
                             ("multiplier", m), ("shift", s)))

    def infer(self):
        return [tuple(self.tensor(0).shape)]


@register_int8("DEQUANTIZE")
class Dequantize(Int8Op):
    c_params_type = "ebnn_int8_affine_params_t"
    c_function = "ebnn_int8_dequantize"
    out_dtypes = ("float32",)
    operands = (("in", 0, "int8_t"), ("out", 0, "float"))

    def parse(self):
        x = self.int8_input()
        s, z = self.qparams(x, "input")
        return FieldsParams((("size", _prod(x.shape)), ("scale", float(np.float32(s))), ("zero_point", z)))

    def infer(self):
        return [tuple(self.tensor(0).shape)]


# --------------------------------------------------------------------------
# Convolutions and fully connected


def _filter_scales(self, w, n, axis):
    q = w.quantization
    if q is None or not q.scale:
        raise self.fail(f"filter '{w.name}' has no quantization parameters")
    if any(int(z) != 0 for z in q.zero_point or ()):
        raise self.fail(f"filter '{w.name}' has nonzero zero points (TFLite requires symmetric int8 filters)")
    scales = list(q.scale)
    if len(scales) == 1:
        return scales * n
    if len(scales) != n or q.quantized_dimension != axis:
        raise self.fail(f"filter '{w.name}' has {len(scales)} scales on axis {q.quantized_dimension}, "
                        f"expected 1 or {n} on axis {axis}")
    return scales


@register_int8("CONV_2D")
class Conv2DInt8(Int8Op):
    c_params_type = "ebnn_int8_conv2d_params_t"
    c_function = "ebnn_int8_conv2d"
    min_inputs = 2
    max_inputs = 3
    depthwise = False

    def parse(self):
        x, w, b = self.int8_input(), self.tensor(1), self.tensor(2)
        y = self.out_tensor()
        self.require_dtype(w, ("int8",), "filter")
        self.require_const(w, "filter")
        if b is not None:
            self.require_dtype(b, ("int32",), "bias")
            self.require_const(b, "bias")
        h, wd, c = self.hwc(x)
        if len(w.shape) != 4:
            raise self.fail(f"filter shape {w.shape}, expected rank 4")
        if self.depthwise:
            if w.shape[0] != 1 or w.shape[3] % c:
                raise self.fail(f"filter shape {w.shape}, expected [1, kh, kw, {c} * depth_multiplier]")
            out_c, axis = int(w.shape[3]), 3
        else:
            if w.shape[3] != c:
                raise self.fail(f"filter shape {w.shape}, expected [out_c, kh, kw, {c}]")
            out_c, axis = int(w.shape[0]), 0
        self.require_size(b, out_c, "bias")
        si, zi = self.qparams(x, "input")
        so, zo = self.qparams(y, "output")
        mults, shifts = Q.conv_multipliers(si, _filter_scales(self, w, out_c, axis), so)
        lo, hi = self.act_range(y)
        fh, fw = int(w.shape[1]), int(w.shape[2])
        sh, sw = self.int_option("stride_h", 1), self.int_option("stride_w", 1)
        dh, dw = self.int_option("dilation_hfactor", 1), self.int_option("dilation_wfactor", 1)
        padding = self.padding()
        self.check_window(h, wd, fh, fw, sh, sw, dh, dw, padding)
        self.out_c = out_c
        self.out_hw = (output_size(h, fh, sh, dh, padding), output_size(wd, fw, sw, dw, padding))
        self.mults, self.shifts = mults, shifts
        shape = (("in_h", h), ("in_w", wd), ("in_c", c))
        shape += (("depth_multiplier", out_c // c),) if self.depthwise else (("out_c", out_c),)
        return FieldsParams(shape + (
            ("filter_h", fh), ("filter_w", fw), ("stride_h", sh), ("stride_w", sw),
            ("dilation_h", dh), ("dilation_w", dw), ("padding", padding),
            ("input_zero_point", zi), ("output_zero_point", zo), ("act_min", lo), ("act_max", hi)))

    def infer(self):
        return [(1, *self.out_hw, self.out_c)]

    def c_struct(self, em):
        i = self.op.index
        return self.params.c_fields(em) + [
            ("filter", em.const(self.op.inputs[1], "int8_t")),
            ("bias", em.const(self.op.inputs[2] if len(self.op.inputs) > 2 else -1, "int32_t")),
            ("output_multiplier", em.const_array(f"op{i}_multiplier", self.mults, "int32_t",
                                                 "per-channel quantized multipliers (TFLite's Prepare)")),
            ("output_shift", em.const_array(f"op{i}_shift", self.shifts, "int32_t", "per-channel shifts")),
        ]


@register_int8("DEPTHWISE_CONV_2D")
class DepthwiseConv2DInt8(Conv2DInt8):
    c_params_type = "ebnn_int8_depthwise_conv2d_params_t"
    c_function = "ebnn_int8_depthwise_conv2d"
    depthwise = True


@register_int8("FULLY_CONNECTED")
class FullyConnectedInt8(Int8Op):
    c_params_type = "ebnn_int8_fully_connected_params_t"
    c_function = "ebnn_int8_fully_connected"
    min_inputs = 2
    max_inputs = 3

    def parse(self):
        x, w, b = self.int8_input(), self.tensor(1), self.tensor(2)
        y = self.out_tensor()
        self.require_dtype(w, ("int8",), "weights")
        self.require_const(w, "weights")
        if self.int_option("weights_format", 0) != 0:
            raise self.fail(f"weights_format {self.option('weights_format')} (only DEFAULT = 0)")
        if len(w.shape) != 2:
            raise self.fail(f"weights shape {w.shape}, expected [out, in]")
        out_f, in_f = (int(s) for s in w.shape)
        if b is not None:
            self.require_dtype(b, ("int32",), "bias")
            self.require_const(b, "bias")
            self.require_size(b, out_f, "bias")
        n = _prod(x.shape)
        if n % in_f:
            raise self.fail(f"input of {n} values is not a multiple of in_features={in_f}")
        if _prod(y.shape) != n // in_f * out_f:
            raise self.fail(f"output shape {y.shape} does not hold {n // in_f} x {out_f} values")
        si, zi = self.qparams(x, "input")
        so, zo = self.qparams(y, "output")
        q = w.quantization
        if q is None or not q.scale:
            raise self.fail(f"weights '{w.name}' have no quantization parameters")
        wzp = int(q.zero_point[0]) if q.zero_point else 0
        if len(q.scale) == 1:
            m, s = Q.fc_multiplier(si, q.scale[0], so)
            self.mults, self.shifts, per_channel = [m], [s], 0
        else:
            self.mults, self.shifts = Q.conv_multipliers(si, _filter_scales(self, w, out_f, 0), so)
            per_channel = 1
        lo, hi = self.act_range(y)
        return FieldsParams((("rows", n // in_f), ("in_features", in_f), ("out_features", out_f),
                             ("input_zero_point", zi), ("weights_zero_point", wzp), ("output_zero_point", zo),
                             ("act_min", lo), ("act_max", hi), ("per_channel", per_channel)))

    def c_struct(self, em):
        i = self.op.index
        return self.params.c_fields(em) + [
            ("weights", em.const(self.op.inputs[1], "int8_t")),
            ("bias", em.const(self.op.inputs[2] if len(self.op.inputs) > 2 else -1, "int32_t")),
            ("output_multiplier", em.const_array(f"op{i}_multiplier", self.mults, "int32_t", "quantized multipliers")),
            ("output_shift", em.const_array(f"op{i}_shift", self.shifts, "int32_t", "shifts")),
        ]


# --------------------------------------------------------------------------
# Element-wise


@register_int8("ADD")
class AddInt8(Int8Op):
    c_params_type = "ebnn_int8_add_params_t"
    c_function = "ebnn_int8_add"
    min_inputs = 2
    max_inputs = 2

    def broadcast_operands(self):
        """The full-size operand a, the broadcast one b (call operands in that order), y, their sizes."""
        a, b, y = self.tensor(0), self.tensor(1), self.out_tensor()
        for t, role in ((a, "input 0"), (b, "input 1")):
            self.require_dtype(t, ("int8",), role)
        if _broadcast(a.shape, b.shape) is None or _broadcast(a.shape, b.shape) != tuple(y.shape):
            raise self.fail(f"operands {a.shape} and {b.shape} do not broadcast to the output {y.shape}")
        size = _prod(y.shape)
        first = 0 if _prod(a.shape) == size else 1
        a, b = self.tensor(first), self.tensor(1 - first)
        if _prod(a.shape) != size:
            raise self.fail(f"both operands {a.shape} and {b.shape} are broadcast; one must have the output's shape")
        trimmed = tuple(b.shape)
        while trimmed and trimmed[0] == 1:
            trimmed = trimmed[1:]
        last = int(y.shape[-1]) if y.shape else 1
        if not (_prod(b.shape) in (1, size) or (len(trimmed) == 1 and trimmed[0] == last)):
            raise self.fail(f"broadcast of {b.shape} over {y.shape}; supported: same shape, a scalar, "
                            "or a vector over the last axis")
        self.operands = (("in", first, "int8_t"), ("in", 1 - first, "int8_t"), ("out", 0, "int8_t"))
        return a, b, y, size, _prod(b.shape)

    def parse(self):
        a, b, y, size, b_size = self.broadcast_operands()
        (sa, za), (sb, zb), (so, zo) = self.qparams(a, "input"), self.qparams(b, "input"), self.qparams(y, "output")
        p = Q.add_params(sa, sb, so)
        lo, hi = self.act_range(y)
        return FieldsParams((
            ("size", size), ("b_size", b_size), ("left_shift", p["left_shift"]),
            ("a_zero_point", za), ("a_multiplier", p["a_multiplier"]), ("a_shift", p["a_shift"]),
            ("b_zero_point", zb), ("b_multiplier", p["b_multiplier"]), ("b_shift", p["b_shift"]),
            ("output_zero_point", zo), ("output_multiplier", p["output_multiplier"]),
            ("output_shift", p["output_shift"]), ("act_min", lo), ("act_max", hi)))


@register_int8("MUL")
class MulInt8(AddInt8):
    c_params_type = "ebnn_int8_mul_params_t"
    c_function = "ebnn_int8_mul"

    def parse(self):
        a, b, y, size, b_size = self.broadcast_operands()
        (sa, za), (sb, zb), (so, zo) = self.qparams(a, "input"), self.qparams(b, "input"), self.qparams(y, "output")
        m, s = Q.mul_multiplier(sa, sb, so)
        lo, hi = self.act_range(y)
        return FieldsParams((("size", size), ("b_size", b_size), ("a_zero_point", za), ("b_zero_point", zb),
                             ("output_zero_point", zo), ("output_multiplier", m), ("output_shift", s),
                             ("act_min", lo), ("act_max", hi)))


# --------------------------------------------------------------------------
# Pooling, mean, softmax, concatenation, pad


@register_int8("MAX_POOL_2D")
class MaxPool2DInt8(Int8Op):
    c_params_type = "ebnn_int8_pool2d_params_t"
    c_function = "ebnn_int8_max_pool2d"

    def parse(self):
        x, y = self.int8_input(), self.out_tensor()
        self.same_quantization(x, y)
        h, w, c = self.hwc(x)
        fh, fw = self.int_option("filter_height", required=True), self.int_option("filter_width", required=True)
        sh, sw = self.int_option("stride_h", required=True), self.int_option("stride_w", required=True)
        padding = self.padding()
        self.check_window(h, w, fh, fw, sh, sw, padding=padding)
        self.shape = (1, output_size(h, fh, sh, 1, padding), output_size(w, fw, sw, 1, padding), c)
        lo, hi = self.act_range(y)
        return FieldsParams((("in_h", h), ("in_w", w), ("channels", c), ("filter_h", fh), ("filter_w", fw),
                             ("stride_h", sh), ("stride_w", sw), ("padding", padding),
                             ("act_min", lo), ("act_max", hi)))

    def infer(self):
        return [self.shape]


@register_int8("AVERAGE_POOL_2D")
class AveragePool2DInt8(MaxPool2DInt8):
    c_function = "ebnn_int8_average_pool2d"


@register_int8("MEAN")
class MeanInt8(Int8Op):
    c_params_type = "ebnn_int8_mean_params_t"
    c_function = "ebnn_int8_mean_hw"
    min_inputs = 2
    max_inputs = 2

    def parse(self):
        x, axes, y = self.int8_input(), self.tensor(1), self.out_tensor()
        self.require_const(axes, "axes")
        self.require_dtype(axes, ("int32", "int64"), "axes")
        h, w, c = self.hwc(x)
        ax = sorted(int(a) % 4 for a in np.asarray(axes.data).ravel())
        if ax != [1, 2]:
            raise self.fail(f"MEAN over axes {ax}; only the spatial mean over axes [1, 2] is supported")
        if _prod(y.shape) != c:
            raise self.fail(f"output shape {y.shape}, expected {c} values")
        (si, zi), (so, zo) = self.qparams(x, "input"), self.qparams(y, "output")
        m, s = Q.ratio_multiplier(si, so)
        return FieldsParams((("in_h", h), ("in_w", w), ("channels", c), ("input_zero_point", zi),
                             ("output_zero_point", zo), ("multiplier", m), ("shift", s)))


@register_int8("SOFTMAX")
class SoftmaxInt8(Int8Op):
    c_params_type = "ebnn_int8_softmax_params_t"
    c_function = "ebnn_int8_softmax"

    def parse(self):
        x, y = self.int8_input(), self.out_tensor()
        if not x.shape:
            raise self.fail("input is a scalar; softmax needs at least one axis")
        so, zo = self.qparams(y, "output")
        if (np.float32(so), zo) != (np.float32(1 / 256), -128):
            raise self.fail(f"output quantization (scale {so}, zero point {zo}); TFLite's int8 softmax "
                            "output is scale 1/256, zero point -128")
        si, _ = self.qparams(x, "input")
        p = Q.softmax_params(self.float_option("beta", 1.0), si)
        cols = int(x.shape[-1])
        return FieldsParams((("rows", _prod(x.shape) // cols), ("cols", cols),
                             ("input_multiplier", p["input_multiplier"]),
                             ("input_left_shift", p["input_left_shift"]), ("diff_min", p["diff_min"])))

    def infer(self):
        return [tuple(self.tensor(0).shape)]


@register_int8("CONCATENATION")
class ConcatenationInt8(Int8Op):
    c_params_type = "ebnn_concat_params_t"
    c_function = "ebnn_int8_concatenation"
    operands = (("ins", None, "int8_t"), ("out", 0, "int8_t"))

    def parse(self):
        y = self.out_tensor()
        rank = len(y.shape)
        axis = self.int_option("axis", required=True)
        axis = axis + rank if axis < 0 else axis
        if not 0 <= axis < rank:
            raise self.fail(f"axis {self.option('axis')} out of range for rank {rank}")
        ins = [self.tensor(i) for i in range(len(self.op.inputs))]
        if len(ins) > MAX_CONCAT_INPUTS:
            raise self.fail(f"{len(ins)} inputs, the runtime takes at most {MAX_CONCAT_INPUTS}")
        if self.activation() != Activation.NONE:
            raise self.fail("a fused activation on an int8 CONCATENATION (not supported)")
        for t in ins:
            self.require_dtype(t, ("int8",), "input")
            self.same_quantization(t, y)
            if len(t.shape) != rank or any(int(a) != int(b) for k, (a, b) in enumerate(zip(t.shape, y.shape))
                                           if k != axis):
                raise self.fail(f"input tensor {t.index} '{t.name}' has shape {list(t.shape)}, expected "
                                f"{list(y.shape)} on every axis but {axis}")
        return FieldsParams((("outer", _prod(y.shape[:axis])), ("n_inputs", len(ins)),
                             ("inner", Dims(_prod(t.shape[axis:]) for t in ins)), ("activation", Activation.NONE)))


@register_int8("PAD")
class PadInt8(Int8Op):
    c_params_type = "ebnn_int8_pad_params_t"
    c_function = "ebnn_int8_pad"
    min_inputs = 2
    max_inputs = 2

    def parse(self):
        x, pads, y = self.int8_input(), self.tensor(1), self.out_tensor()
        self.same_quantization(x, y)
        self.require_const(pads, "paddings")
        self.require_dtype(pads, ("int32", "int64"), "paddings")
        rank = len(x.shape)
        if rank > 4 or tuple(pads.shape) != (rank, 2):
            raise self.fail(f"input of rank {rank} with paddings of shape {list(pads.shape)}; expected rank <= 4 "
                            f"and paddings [{rank}, 2]")
        pv = np.asarray(pads.data).reshape(rank, 2).astype(np.int64)
        if (pv < 0).any():
            raise self.fail("negative paddings")
        lead = 4 - rank
        dims = Dims((1,) * lead + tuple(int(d) for d in x.shape))
        before = Dims((0,) * lead + tuple(int(v) for v in pv[:, 0]))
        after = Dims((0,) * lead + tuple(int(v) for v in pv[:, 1]))
        self.shape = tuple(d + b + a for d, b, a in zip(dims, before, after))[lead:]
        return FieldsParams((("dims", dims), ("before", before), ("after", after),
                             ("value", self.qparams(y, "output")[1])))

    def infer(self):
        return [self.shape]


# --------------------------------------------------------------------------
# LCE ops on int8 tensors


@register_int8("LceQuantize")
class LceQuantizeInt8(Int8Op):
    """Bitpack an int8 tensor: bit 1 where ``q < zero_point`` (the real value is negative)."""

    c_params_type = "ebnn_int8_lce_quantize_params_t"
    c_function = "ebnn_int8_lce_quantize"
    out_dtypes = ("int32",)
    operands = (("in", 0, "int8_t"), ("out", 0, "int32_t"))

    def parse(self):
        x = self.int8_input()
        if not x.shape:
            raise self.fail("input is a scalar")
        c = int(x.shape[-1])
        self.ctx.packed_channels[self.op.outputs[0]] = c
        _, zp = self.qparams(x, "input")
        return FieldsParams((("n_pixels", _prod(x.shape[:-1])), ("channels", c), ("zero_point", zp)))

    def infer(self):
        x = self.tensor(0)
        return [tuple(x.shape[:-1]) + ((int(x.shape[-1]) + 31) // 32,)]


@dataclass(frozen=True)
class Int8BConv2DParams(BConv2DParams):
    output_scale: float = 1.0
    output_zero_point: int = 0

    def c_fields(self, em, **rendered):
        """The inner ebnn_bconv2d_params_t's fields: the scale and zero point are the outer struct's."""
        outer = ("output_scale", "output_zero_point")
        return [(k, v) for k, v in super().c_fields(em, **rendered) if k not in outer]


@register_int8("LceBconv2d")
class LceBconv2dInt8(Int8Op, LceBconv2d):
    """LceBconv2d writing int8: the float output transform with LCE's fused
    output scale and zero point, rounded and saturated (ebnn_binary.c)."""

    c_params_type = "ebnn_int8_lce_bconv2d_params_t"
    c_function = "ebnn_int8_lce_bconv2d"
    affine_out_dtypes = ("int8",)
    operands = (("in", 0, "int32_t"), ("out", 0, "int8_t"))

    def parse(self):
        p = super().parse()
        scale, zp = self.qparams(self.out_tensor(), "output")
        if not (np.isfinite(scale) and scale > 0):
            raise self.fail(f"output scale {scale}, expected a positive finite number")
        return Int8BConv2DParams(**{f.name: getattr(p, f.name) for f in fields(p)},
                                 output_scale=scale, output_zero_point=zp)

    def int8_struct(self, em, suffix=None):
        """The ``ebnn_int8_lce_bconv2d_params_t`` (and its inner struct); its name."""
        p = self.params
        inner = em.params(self, "ebnn_bconv2d_params_t", self.c_struct(em), suffix="bconv")
        return em.params(self, self.c_params_type, suffix=suffix, fields_=[
            ("bconv", f"&{inner}"), ("output_scale", float(p.output_scale)),
            ("output_zero_point", p.output_zero_point)])

    def emit(self, em):
        em.call(self, self.c_function, [f"&{self.int8_struct(em)}"] + self.tensor_args(em))


class Int8FusedChain(PassNode):
    """[int8 CONV_2D | int8-output LceBconv2d] -> int8 MAX_POOL_2D -> [1x1 int8
    DEPTHWISE_CONV_2D] -> LceQuantize of int8, one pooled row at a time
    (``ebnn_int8_fused.c``): the producer's full output is never in the arena."""

    c_params_type = "ebnn_int8_fused_params_t"
    c_function = "ebnn_int8_fused"

    def __init__(self, producer, pool, affine, quantize):
        chain = [producer, pool] + ([affine] if affine else []) + [quantize]
        super().__init__(producer.op, producer.ctx, (k.op.index for k in chain), (producer.op.inputs[0],),
                         quantize.outputs)
        self.producer, self.pool, self.affine, self.quantize = producer, pool, affine, quantize
        self.op_type = " -> ".join(k.op_type for k in chain)
        pf = dict(pool.params.items)
        c, ow = pf["channels"], pf["in_w"]
        pw = output_size(ow, pf["filter_w"], pf["stride_w"], 1, Padding.VALID)
        # As ebnn_int8_fused_scratch_bytes() computes it: a SAME producer also
        # needs the padded copy of the input rows one pooled row reads.
        slice_bytes = 0
        if isinstance(producer, LceBconv2dInt8):
            q = producer.params
            same, fh, sh, dh, fw, sw, dw = (q.padding is Padding.SAME, q.filter_h, q.stride_h, q.dilation_h,
                                            q.filter_w, q.stride_w, q.dilation_w)
            pixel = 4 * ((q.in_c + 31) // 32)
        else:
            f = dict(producer.params.items)
            same = f["padding"] is Padding.SAME
            fh, sh, dh, fw, sw, dw = (f[k] for k in ("filter_h", "stride_h", "dilation_h",
                                                    "filter_w", "stride_w", "dilation_w"))
            pixel = f["in_c"]
        if same:
            rows = (pf["filter_h"] - 1) * sh + (fh - 1) * dh + 1
            cols = (ow - 1) * sw + (fw - 1) * dw + 1
            slice_bytes = -(-rows * cols * pixel // 4) * 4
        self.scratch_bytes = slice_bytes + pf["filter_h"] * ow * c + 2 * pw * c

    @staticmethod
    def producer_ok(node) -> bool:
        if isinstance(node, LceBconv2dInt8):
            # SAME only with LCE's +1 padding (same-zero bconv writes float only)
            return node.params.padding is Padding.VALID or node.params.pad_value == 1
        return type(node) is Conv2DInt8

    @staticmethod
    def pool_ok(node) -> bool:
        return type(node) is MaxPool2DInt8 and dict(node.params.items)["padding"] is Padding.VALID

    @staticmethod
    def affine_ok(node) -> bool:
        if type(node) is not DepthwiseConv2DInt8:
            return False
        f = dict(node.params.items)
        return (f["filter_h"], f["filter_w"], f["stride_h"], f["stride_w"], f["depth_multiplier"]) == (1, 1, 1, 1, 1)

    def emit(self, em):
        prod = self.producer
        if isinstance(prod, LceBconv2dInt8):
            bconv_fn = em.kernel_set.pick(prod.c_function, em.defs)
            em.called.add(bconv_fn)  # linked: the chain calls it through the pointer
            ref = (("producer", "EBNN_PRODUCER_BCONV2D"), ("conv", "NULL"),
                   ("bconv", f"&{prod.int8_struct(em, suffix='producer')}"), ("bconv_fn", bconv_fn))
        else:
            inner = em.params(prod, prod.c_params_type, prod.c_struct(em), suffix="producer")
            conv_fn = em.kernel_set.pick(prod.c_function, em.defs)
            em.called.add(conv_fn)  # linked: the chain calls it through the pointer
            ref = (("producer", "EBNN_PRODUCER_CONV2D"), ("conv", f"&{inner}"), ("conv_fn", conv_fn),
                   ("bconv", "NULL"))
        affine = "NULL"
        if self.affine is not None:
            affine = "&" + em.params(self.affine, self.affine.c_params_type, self.affine.c_struct(em),
                                     suffix="affine")
        pool = c_initializer(self.pool.params.c_fields(em))
        qzp = dict(self.quantize.params.items)["zero_point"]
        name = em.params(self, self.c_params_type, list(ref) + [
            ("pool", pool), ("affine", affine), ("quantize_zero_point", qzp)])
        x = em.ptr(self.inputs[0], "int32_t" if isinstance(prod, LceBconv2dInt8) else "int8_t", const=True)
        em.call(self, self.c_function, [f"&{name}", x, em.ptr(self.outputs[0], "int32_t"),
                                        em.scratch_ptr(self), f"{self.scratch_bytes}u"])

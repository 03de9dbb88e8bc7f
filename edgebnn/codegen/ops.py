"""One small class per TFLite/LCE op: parse options, infer shapes, emit a call.

Every class is registered with :func:`register_op` under the op's name in
the flatbuffer (builtin name such as ``"CONV_2D"`` or LCE custom code such
as ``"LceBconv2d"``). A class turns the op's options into a frozen params
dataclass (:meth:`OpKernel.parse`), checks the output shape it infers
against the flatbuffer's (:meth:`OpKernel.infer`), and writes one call into
the runtime (:meth:`OpKernel.emit`). Semantics follow LCE 0.16 and TFLite
(../shared/LCE-FORMAT.md, firmware/runtime/ebnn.h).

A handler states what differs and the base class does the rest: params
fields are typed (:class:`Padding` and :class:`Activation` render as the
runtime's macros, :class:`Dims` as an initializer list, a :func:`const`
field as the constant array it names), and the call is built from the
operands the class declares (:attr:`OpKernel.operands`). Nodes the graph
passes make of several ops (:class:`BinaryDense`, :class:`FusedChain`) are
:class:`PassNode` objects, not handlers.

Example:
    >>> sorted(SUPPORTED_OPS)[:3]
    ['ADD', 'AVERAGE_POOL_2D', 'CONCATENATION']
"""

import enum
from dataclasses import dataclass, field, fields

import numpy as np

from edgebnn.codegen.writer import c_initializer
from edgebnn.errors import UnsupportedOpError

_REGISTRY = {}


class Activation(enum.IntEnum):
    """TFLite's ActivationFunctionType (ebnn.h uses the same numbers); C gets the runtime's macro."""

    NONE = 0
    RELU = 1
    RELU_N1_TO_1 = 2
    RELU6 = 3

    def c(self) -> str:
        return f"EBNN_ACT_{self.name}"


class Padding(enum.Enum):
    """TFLite's Padding (LCE stores the number, builtins the name); C gets the runtime's macro."""

    SAME = 0
    VALID = 1

    def c(self) -> str:
        return f"EBNN_PADDING_{self.name}"

    def __str__(self) -> str:
        return self.name  # messages say "SAME padding"


class Dims(tuple):
    """A fixed-size int32 array field, rendered as ``{a, b, ...}``."""

    def c(self) -> str:
        return "{" + ", ".join(str(int(v)) for v in self) + "}"


def register_op(name: str):
    """Class decorator: make ``cls`` the handler of ops of type ``name``."""

    def deco(cls):
        if name in _REGISTRY:
            raise ValueError(f"op {name} registered twice ({_REGISTRY[name].__name__}, {cls.__name__})")
        _REGISTRY[name] = cls
        cls.op_type = name
        return cls

    return deco


def supported_ops() -> list:
    """The op types the code generator handles, sorted."""
    return sorted(_REGISTRY)


class _Supported:
    def __iter__(self):
        return iter(supported_ops())

    def __contains__(self, item):
        return item in _REGISTRY


SUPPORTED_OPS = _Supported()


def lookup(op, source=None) -> type:
    """Return the handler class of ``op`` or raise :class:`UnsupportedOpError`.

    Only this error, for an op type without a handler, lists the supported ops.
    """
    cls = _REGISTRY.get(op.type)
    if cls is None:
        prefix = f"{source}: " if source else ""
        raise UnsupportedOpError(
            f"{prefix}op {op.index} ({op.type}) is not supported by the C code generator; "
            f"supported ops: {', '.join(supported_ops())}"
        )
    return cls


# --------------------------------------------------------------------------
# Shape helpers (TFLite's formulas, as ebnn_output_size/ebnn_padding_before)


#: Largest stride, dilation, filter size or dilated window span accepted: far
#: beyond any real model, small enough that the C kernels' int arithmetic on
#: (out - 1) * stride + span never overflows.
MAX_WINDOW = 1 << 16


def output_size(in_: int, filt: int, stride: int, dilation: int, padding: Padding) -> int:
    eff = (filt - 1) * dilation + 1
    if padding is Padding.SAME:
        return (in_ + stride - 1) // stride
    return max((in_ - eff + stride) // stride, 0)


def packed_words(channels: int) -> int:
    return (channels + 31) // 32


def _prod(shape) -> int:
    return int(np.prod(shape, dtype=np.int64)) if len(shape) else 1


# --------------------------------------------------------------------------
# Base classes


def const(ctype: str):
    """A params field holding a constant tensor's index (-1: none).

    C gets the array :meth:`Emitter.const` writes for it as ``ctype`` (or
    ``NULL``); the field keeps the index, which the passes and the opt
    weight layouts read.
    """
    return field(metadata={"const": ctype})


@dataclass(frozen=True)
class Params:
    """Base of every params dataclass: fields become a C designated initializer."""

    def c_fields(self, em, **rendered):
        """``(name, value)`` pairs in field order, :func:`const` fields as their arrays.

        ``rendered`` gives the C of fields a kernel set lays out otherwise
        (the opt kernels' transposed filters): their own constant is then
        never written.
        """
        out = []
        for f in fields(self):
            if f.name in rendered:
                v = rendered[f.name]
            elif "const" in f.metadata:
                v = em.const(getattr(self, f.name), f.metadata["const"])
            else:
                v = getattr(self, f.name)
            out.append((f.name, v))
        return out


class Node:
    """One entry of the call list: what the passes, the planner and the emitter read.

    An :class:`OpKernel` is the node of one op, a :class:`PassNode` one that a
    graph pass made of several.

    Attributes:
        op: the :class:`edgebnn.graph.Op` whose index names the params.
        ctx: the generator's view of the graph (tensors).
        ops: every op index this node computes (for the comments).
        op_type: what the comments and ``GeneratedModel.ops`` call it.
        inputs: activation tensors read (graph indices, no constants).
        outputs: activation tensors written.
        params: the frozen params dataclass (None when the node's ops' own params make its struct).
        scratch_bytes: working memory the call needs (arena-planned).
        alias: the output shares the input's memory (RESHAPE): no call.
    """

    op_type = "?"
    c_params_type = ""
    c_function = ""
    params = None
    scratch_bytes = 0
    alias = False

    def emit(self, em) -> None:
        """Write this node's params (data) and call (code) through ``em``."""
        raise NotImplementedError


class PassNode(Node):
    """A node a graph pass makes of the handlers it replaces, which already parsed and checked its ops."""

    def __init__(self, op, ctx, ops, inputs, outputs):
        self.op, self.ctx, self.ops = op, ctx, tuple(ops)
        self.inputs, self.outputs = tuple(inputs), tuple(outputs)


class OpKernel(Node):
    """Handler of one op: parse its options, check its shapes, emit its call."""

    #: The call's tensor arguments after ``&params``, in the C signature's
    #: order: ``("in" | "out", position, ctype)`` is input or output
    #: ``position`` of the op as a ``ctype`` pointer (inputs const);
    #: ``("ins" | "outs", None, ctype)`` all of them as one local pointer array.
    operands = (("in", 0, "float"), ("out", 0, "float"))
    min_inputs = 1  # inputs 0..min_inputs-1 are required (never -1)
    max_inputs = None
    min_outputs = 1
    max_outputs = 1
    out_dtypes = ("float32",)  # None: the handler checks

    def __init__(self, op, ctx):
        self.op = op
        self.ctx = ctx
        self.ops = (op.index,)
        self.check_structure()
        self.params = self.parse()
        self.inputs = self.activation_inputs()
        self.outputs = tuple(op.outputs)
        self.check_outputs()

    # -- helpers
    def fail(self, what: str) -> UnsupportedOpError:
        """An error naming the file, the op (index, type, first output) and ``what``."""
        outs = self.op.outputs
        graph = getattr(self.ctx, "graph", None)
        source = getattr(graph, "source", None)
        out = ""
        if outs and graph is not None and 0 <= outs[0] < len(graph.tensors):
            out = f", output tensor {outs[0]} '{graph.tensors[outs[0]].name}'"
        prefix = f"{source}: " if source else ""
        return UnsupportedOpError(f"{prefix}op {self.op.index} ({self.op.type}{out}): {what}")

    def check_structure(self):
        """Operand counts, omitted required inputs, empty tensors and output dtypes, before parsing."""
        n_in, n_out = len(self.op.inputs), len(self.op.outputs)
        if n_in < self.min_inputs or (self.max_inputs is not None and n_in > self.max_inputs):
            most = "" if self.max_inputs is None else f" and at most {self.max_inputs}"
            raise self.fail(f"{n_in} inputs, expected at least {self.min_inputs}{most}")
        if not self.min_outputs <= n_out <= self.max_outputs:
            raise self.fail(f"{n_out} outputs, expected {self.min_outputs}"
                            + (f" to {self.max_outputs}" if self.max_outputs != self.min_outputs else ""))
        for pos in range(self.min_inputs):
            if self.op.inputs[pos] < 0:
                raise self.fail(f"input {pos} is omitted (-1) but required")
        for kind, idxs in (("input", self.op.inputs), ("output", self.op.outputs)):
            for pos, idx in enumerate(idxs):
                if idx < 0:
                    continue
                t = self.ctx.tensor(idx)
                if t.size == 0:
                    raise self.fail(f"{kind} {pos} tensor {idx} '{t.name}' has shape {list(t.shape)}: no elements")
                if kind == "input" and t.is_variable and not t.is_constant:
                    raise self.fail(f"input {pos} tensor {idx} '{t.name}' is a variable tensor (not supported)")
        if self.out_dtypes is not None:
            for idx in self.op.outputs:
                t = self.ctx.tensor(idx)
                if t.dtype not in self.out_dtypes:
                    raise self.fail(f"output tensor {idx} '{t.name}' has dtype {t.dtype}, expected "
                                    f"{' or '.join(self.out_dtypes)}")

    def int_option(self, name, default=None, *, required=False, low=None, high=None):
        """An integer option, checked against ``[low, high]`` when given."""
        value = self.option(name, default, required=required)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise self.fail(f"option '{name}' is {value!r}, expected an integer")
        value = int(value)
        if (low is not None and value < low) or (high is not None and value > high):
            raise self.fail(f"option '{name}' is {value}, expected {low if low is not None else '...'}.."
                            f"{high if high is not None else '...'}")
        return value

    def float_option(self, name, default=None, *, required=False):
        value = self.option(name, default, required=required)
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise self.fail(f"option '{name}' is {value!r}, expected a number")
        if not np.isfinite(np.float32(value)):
            raise self.fail(f"option '{name}' is {value!r}, expected a finite float32")
        return float(value)

    def check_window(self, in_h, in_w, filter_h, filter_w, stride_h, stride_w, dilation_h=1, dilation_w=1,
                     padding=Padding.VALID):
        """Strides, dilations and filter sizes of a windowed op: positive, bounded, output at least 1x1."""
        for label, v in (("stride_h", stride_h), ("stride_w", stride_w), ("dilation_h", dilation_h),
                         ("dilation_w", dilation_w), ("filter_h", filter_h), ("filter_w", filter_w)):
            if not 1 <= v <= MAX_WINDOW:
                raise self.fail(f"{label} is {v}, expected 1..{MAX_WINDOW}")
        for axis, n, f, s, d in (("height", in_h, filter_h, stride_h, dilation_h),
                                 ("width", in_w, filter_w, stride_w, dilation_w)):
            eff = (f - 1) * d + 1
            if eff > MAX_WINDOW:
                raise self.fail(f"the dilated filter {axis} ({f} taps, dilation {d}) spans {eff} pixels, "
                                f"expected at most {MAX_WINDOW}")
            if output_size(n, f, s, d, padding) < 1:
                raise self.fail(f"a {axis} window of {eff} pixels does not fit an input {axis} of {n} "
                                f"with {padding} padding (output {axis} would be "
                                f"{(n - eff + s) // s})")

    def require_size(self, tensor, n, role):
        if tensor is not None and tensor.size != n:
            raise self.fail(f"{role} tensor {tensor.index} '{tensor.name}' has {tensor.size} values "
                            f"(shape {list(tensor.shape)}), expected {n}")

    def tensor(self, pos):
        idx = self.op.inputs[pos] if pos < len(self.op.inputs) else -1
        return None if idx < 0 else self.ctx.tensor(idx)

    def out_tensor(self, pos=0):
        return self.ctx.tensor(self.op.outputs[pos])

    def option(self, name, default=None, *, required=False):
        if name not in self.op.options:
            if required:
                raise self.fail(f"option '{name}' is missing (options: {sorted(self.op.options)})")
            return default
        return self.op.options[name]

    def activation(self, name="fused_activation_function") -> Activation:
        value = self.option(name, 0)
        if isinstance(value, bool) or not isinstance(value, (str, int, np.integer)):
            raise self.fail(f"fused activation {value!r} is not an enum name or number")
        names = ", ".join(Activation.__members__)
        if isinstance(value, str):
            if value not in Activation.__members__:
                raise self.fail(f"fused activation {value} is not supported (supported: {names})")
            return Activation[value]
        if int(value) not in set(Activation):
            raise self.fail(f"fused activation enum {value} is not supported (supported: 0-3 = {names})")
        return Activation(int(value))

    def padding(self, name="padding") -> Padding:
        value = self.option(name, required=True)
        if isinstance(value, str) and value in Padding.__members__:
            return Padding[value]
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and int(value) in (0, 1):
            return Padding(int(value))
        raise self.fail(f"padding {value!r} is not SAME or VALID")

    def require_dtype(self, tensor, dtypes, role):
        if tensor is None:
            raise self.fail(f"{role} is missing")
        if tensor.dtype not in dtypes:
            raise self.fail(f"{role} '{tensor.name}' has dtype {tensor.dtype}, expected {' or '.join(dtypes)}")

    def require_const(self, tensor, role):
        if tensor is None or not tensor.is_constant:
            raise self.fail(f"{role} must be a constant tensor")

    def float_operands(self, weights="filter", dtype_note=""):
        """Inputs 0-2 checked as float input, constant float weights, optional constant bias."""
        x, w, b = self.tensor(0), self.tensor(1), self.tensor(2)
        self.require_dtype(x, ("float32",), "input")
        self.require_dtype(w, ("float32",), weights + dtype_note)
        self.require_const(w, weights)
        if b is not None:
            self.require_dtype(b, ("float32",), "bias")
            self.require_const(b, "bias")
        return x, w, b

    def hwc(self, tensor, role="input"):
        shape = tensor.shape
        if len(shape) != 4 or shape[0] != 1:
            raise self.fail(f"{role} '{tensor.name}' has shape {shape}, expected [1, H, W, C] (batch 1)")
        return tuple(int(s) for s in shape[1:])

    def float_activations(self, *positions):
        """Inputs ``positions`` and output 0 are float32 (bitpacked tensors are not handled)."""
        for pos in positions:
            t = self.tensor(pos)
            if t is None:
                raise self.fail(f"input {pos} is missing")
            if t.dtype != "float32":
                raise self.fail(f"input {pos} '{t.name}' has dtype {t.dtype}; only float32 is supported")
        y = self.out_tensor()
        if y.dtype != "float32":
            raise self.fail(f"output '{y.name}' has dtype {y.dtype}; only float32 is supported")

    def activation_inputs(self):
        return tuple(i for i in self.op.inputs if i >= 0 and not self.ctx.tensor(i).is_constant)

    # -- the three steps
    def parse(self) -> Params:
        raise NotImplementedError

    def infer(self):
        """Output shapes as tuples (batch included), or None to skip the check."""
        return None

    def check_outputs(self):
        shapes = self.infer()
        if shapes is None:
            return
        for idx, shape in zip(self.op.outputs, shapes):
            t = self.ctx.tensor(idx)
            if tuple(t.shape) != tuple(shape):
                raise self.fail(f"output '{t.name}' has shape {t.shape} in the flatbuffer, but the op computes {tuple(shape)}")

    def c_struct(self, em):
        """The params struct's ``(name, value)`` fields."""
        return self.params.c_fields(em)

    def emit(self, em) -> None:
        name = em.params(self, self.c_params_type, self.c_struct(em))
        em.call(self, self.c_function, [f"&{name}"] + self.tensor_args(em))

    def tensor_args(self, em):
        """The pointers :attr:`operands` declares."""
        args = []
        for kind, pos, ctype in self.operands:
            if kind == "in":
                args.append(em.ptr(self.op.inputs[pos], ctype, const=True))
            elif kind == "out":
                args.append(em.ptr(self.op.outputs[pos], ctype))
            elif kind == "ins":
                ptrs = [em.ptr(t, ctype, const=True) for t in self.op.inputs]
                args.append(em.local_pointer_array(self, "inputs", ctype, ptrs, const=True))
            else:  # "outs"
                ptrs = [em.ptr(t, ctype) for t in self.op.outputs]
                args.append(em.local_pointer_array(self, "outputs", ctype, ptrs))
        return args


# --------------------------------------------------------------------------
# LCE custom ops


@dataclass(frozen=True)
class QuantizeParams(Params):
    n_pixels: int
    channels: int


@register_op("LceQuantize")
class LceQuantize(OpKernel):
    c_params_type = "ebnn_quantize_params_t"
    c_function = "ebnn_quantize"
    out_dtypes = ("int32",)
    operands = (("in", 0, "float"), ("out", 0, "int32_t"))

    def parse(self):
        x = self.tensor(0)
        self.require_dtype(x, ("float32",), "input")
        if not x.shape:
            raise self.fail("input is a scalar")
        c = int(x.shape[-1])
        self.ctx.packed_channels[self.op.outputs[0]] = c
        return QuantizeParams(n_pixels=_prod(x.shape[:-1]), channels=c)

    def infer(self):
        x = self.tensor(0)
        return [tuple(x.shape[:-1]) + (packed_words(self.params.channels),)]


@register_op("LceDequantize")
class LceDequantize(OpKernel):
    c_params_type = "ebnn_quantize_params_t"
    c_function = "ebnn_dequantize"
    operands = (("in", 0, "int32_t"), ("out", 0, "float"))

    def parse(self):
        x = self.tensor(0)
        y = self.out_tensor()
        self.require_dtype(x, ("int32",), "bitpacked input")
        if y.dtype != "float32":
            raise self.fail(f"output dtype {y.dtype} is not supported (expected float32)")
        if not x.shape or not y.shape or tuple(x.shape[:-1]) != tuple(y.shape[:-1]):
            raise self.fail(f"input shape {list(x.shape)} and output shape {list(y.shape)} must agree on every "
                            "axis but the last (and not be scalars)")
        c = int(y.shape[-1])
        known = self.ctx.packed_channels.get(self.op.inputs[0])
        if known is not None and known != c:
            raise self.fail(f"input holds {known} bitpacked channels but the output has {c}")
        return QuantizeParams(n_pixels=_prod(y.shape[:-1]), channels=c)

    def infer(self):
        x = self.tensor(0)
        if int(x.shape[-1]) != packed_words(self.params.channels):
            raise self.fail(f"input has {x.shape[-1]} words per pixel, {self.params.channels} channels need "
                            f"{packed_words(self.params.channels)}")
        return None


@dataclass(frozen=True)
class BConv2DParams(Params):
    in_h: int
    in_w: int
    in_c: int
    out_c: int
    filter_h: int
    filter_w: int
    stride_h: int
    stride_w: int
    dilation_h: int
    dilation_w: int
    padding: Padding
    pad_value: int
    activation: Activation
    filter: int = const("int32_t")
    multiplier: int = const("float")
    bias: int = const("float")
    thresholds: int = const("int32_t")

    @property
    def bitpacked_output(self) -> bool:
        return self.thresholds >= 0


@register_op("LceBconv2d")
class LceBconv2d(OpKernel):
    c_params_type = "ebnn_bconv2d_params_t"
    c_function = "ebnn_bconv2d"
    operands = (("in", 0, "int32_t"), ("out", 0, "void"))
    min_inputs = 2
    max_inputs = 5
    out_dtypes = ("float32", "int32")
    #: Output dtypes written through the multiplier/bias transform (the int8
    #: handler in ops_int8 adds int8).
    affine_out_dtypes = ("float32",)

    def parse(self):
        x, w = self.tensor(0), self.tensor(1)
        self.require_dtype(x, ("int32",), "bitpacked input")
        self.require_dtype(w, ("int32",), "filter (bitpacked int32 OHWI)")
        self.require_const(w, "filter")
        in_h, in_w, in_words = self.hwc(x)
        c_in = self.int_option("channels_in", required=True)
        if packed_words(c_in) != in_words:
            raise self.fail(f"channels_in={c_in} needs {packed_words(c_in)} words per pixel, the input has {in_words}")
        if len(w.shape) != 4 or w.shape[3] != in_words:
            raise self.fail(f"filter shape {w.shape}, expected [out_c, kh, kw, {in_words}]")
        out_c, fh, fw = (int(s) for s in w.shape[:3])
        y = self.out_tensor()
        thr = self.tensor(4)
        mult, bias = self.tensor(2), self.tensor(3)
        if y.dtype == "int32":
            self.require_const(thr, "output_threshold (bitpacked output)")
            self.require_dtype(thr, ("int32",), "output_threshold")
            self.require_size(thr, out_c, "output_threshold")
            self.ctx.packed_channels[self.op.outputs[0]] = out_c
        elif y.dtype in self.affine_out_dtypes:
            if thr is not None:
                raise self.fail(f"{y.dtype} output with an output_threshold tensor")
            for t, role in ((mult, "post_activation_multiplier"), (bias, "post_activation_bias")):
                self.require_const(t, role)
                self.require_dtype(t, ("float32",), role)
                if _prod(t.shape) != out_c:
                    raise self.fail(f"{role} has {_prod(t.shape)} values, expected {out_c}")
        else:
            raise self.fail(f"output dtype {y.dtype} is not supported "
                            f"({' or '.join(self.affine_out_dtypes)} or bitpacked int32)")
        pad_value = self.int_option("pad_values", 0)
        if pad_value not in (0, 1):
            raise self.fail(f"pad_values={pad_value} (expected 0 or 1)")
        padding = self.padding()
        act = self.activation()
        if padding is Padding.SAME and pad_value == 0 and (y.dtype != "float32" or act != Activation.NONE):
            raise self.fail("SAME padding with pad_values=0 is only valid with float output and no fused activation")
        stride_h, stride_w = self.int_option("stride_height", 1), self.int_option("stride_width", 1)
        dil_h = self.int_option("dilation_height_factor", 1)
        dil_w = self.int_option("dilation_width_factor", 1)
        self.check_window(in_h, in_w, fh, fw, stride_h, stride_w, dil_h, dil_w, padding)
        return BConv2DParams(
            in_h=in_h, in_w=in_w, in_c=c_in, out_c=out_c, filter_h=fh, filter_w=fw,
            stride_h=stride_h, stride_w=stride_w, dilation_h=dil_h, dilation_w=dil_w,
            padding=padding, pad_value=pad_value, activation=act,
            filter=self.op.inputs[1],
            multiplier=mult.index if (mult is not None and y.dtype != "int32") else -1,
            bias=bias.index if (bias is not None and y.dtype != "int32") else -1,
            thresholds=thr.index if (thr is not None and y.dtype == "int32") else -1,
        )

    def out_hw(self):
        p = self.params
        return (output_size(p.in_h, p.filter_h, p.stride_h, p.dilation_h, p.padding),
                output_size(p.in_w, p.filter_w, p.stride_w, p.dilation_w, p.padding))

    def infer(self):
        oh, ow = self.out_hw()
        c = packed_words(self.params.out_c) if self.params.bitpacked_output else self.params.out_c
        return [(1, oh, ow, c)]

    def c_struct(self, em):
        return self.params.c_fields(em) + self._filter_t(em)

    def _filter_t(self, em):
        """The "opt" kernel set reads the filter transposed to [fh][fw][words][out_c]."""
        if em.kernels != "opt":
            return []
        p = self.params
        w = np.asarray(em.ctx.tensor(p.filter).data).reshape(p.out_c, -1)
        ident = em.const_array(f"t{p.filter}_t", np.ascontiguousarray(w.T), "int32_t",
                               f"tensor {p.filter} transposed to [fh][fw][words][out_c] (opt kernels)")
        return [("filter_t", ident)]


@dataclass(frozen=True)
class BMaxPoolParams(Params):
    in_h: int
    in_w: int
    channels: int
    filter_h: int
    filter_w: int
    stride_h: int
    stride_w: int
    padding: Padding


@register_op("LceBMaxPool2d")
class LceBMaxPool2d(OpKernel):
    c_params_type = "ebnn_bmaxpool2d_params_t"
    c_function = "ebnn_bmaxpool2d"
    out_dtypes = ("int32",)
    operands = (("in", 0, "int32_t"), ("out", 0, "int32_t"))

    def parse(self):
        x = self.tensor(0)
        self.require_dtype(x, ("int32",), "bitpacked input")
        h, w, words = self.hwc(x)
        c = self.ctx.packed_channels.get(self.op.inputs[0], words * 32)
        if packed_words(c) != words:
            raise self.fail(f"input has {words} words per pixel, its {c} bitpacked channels need {packed_words(c)}")
        self.ctx.packed_channels[self.op.outputs[0]] = c
        p = BMaxPoolParams(
            in_h=h, in_w=w, channels=c,
            filter_h=self.int_option("filter_height", required=True),
            filter_w=self.int_option("filter_width", required=True),
            stride_h=self.int_option("stride_height", required=True),
            stride_w=self.int_option("stride_width", required=True),
            padding=self.padding(),
        )
        self.check_window(h, w, p.filter_h, p.filter_w, p.stride_h, p.stride_w, padding=p.padding)
        return p

    def infer(self):
        p = self.params
        return [(1, output_size(p.in_h, p.filter_h, p.stride_h, 1, p.padding),
                 output_size(p.in_w, p.filter_w, p.stride_w, 1, p.padding), packed_words(p.channels))]


# --------------------------------------------------------------------------
# Float builtins


@dataclass(frozen=True)
class Conv2DParams(Params):
    in_h: int
    in_w: int
    in_c: int
    out_c: int
    filter_h: int
    filter_w: int
    stride_h: int
    stride_w: int
    dilation_h: int
    dilation_w: int
    padding: Padding
    activation: Activation
    filter: int = const("float")
    bias: int = const("float")


@register_op("CONV_2D")
class Conv2D(OpKernel):
    c_params_type = "ebnn_conv2d_params_t"
    c_function = "ebnn_conv2d"
    min_inputs = 2
    max_inputs = 3

    def window_fields(self, w, b, x, out_c) -> dict:
        """Filter size, strides, dilations, padding, activation and operands (checked)."""
        self.require_size(b, out_c, "bias")
        f = dict(
            filter_h=int(w.shape[1]), filter_w=int(w.shape[2]),
            stride_h=self.int_option("stride_h", 1), stride_w=self.int_option("stride_w", 1),
            dilation_h=self.int_option("dilation_hfactor", 1), dilation_w=self.int_option("dilation_wfactor", 1),
            padding=self.padding(), activation=self.activation(),
            filter=w.index, bias=b.index if b is not None else -1,
        )
        self.check_window(int(x.shape[1]), int(x.shape[2]), f["filter_h"], f["filter_w"], f["stride_h"],
                          f["stride_w"], f["dilation_h"], f["dilation_w"], f["padding"])
        return f

    def parse(self):
        x, w, b = self.float_operands()
        h, wd, c = self.hwc(x)
        if len(w.shape) != 4 or w.shape[3] != c:
            raise self.fail(f"filter shape {w.shape}, expected [out_c, kh, kw, {c}] (grouped convolution is not supported)")
        return Conv2DParams(in_h=h, in_w=wd, in_c=c, out_c=int(w.shape[0]),
                            **self.window_fields(w, b, x, int(w.shape[0])))

    def out_hw(self):
        p = self.params
        return (output_size(p.in_h, p.filter_h, p.stride_h, p.dilation_h, p.padding),
                output_size(p.in_w, p.filter_w, p.stride_w, p.dilation_w, p.padding))

    def infer(self):
        return [(1, *self.out_hw(), self.params.out_c)]

    def c_struct(self, em, blocked=False):
        """The "opt" kernel set reads the filter HWIO ([fh][fw][in_c][out_c]), or with ``blocked``
        HWIO16 (HWIO in contiguous blocks of 16 output channels: what the unfused conv reads
        fastest, not the fused chain): the same sums either way (bit-identical)."""
        if em.kernels != "opt" or not isinstance(self.params, Conv2DParams):
            return self.params.c_fields(em)
        t = self.params.filter
        w = np.asarray(em.ctx.tensor(t).data, dtype=np.float32)
        hwio = np.ascontiguousarray(w.transpose(1, 2, 3, 0))
        if blocked:
            arr = em.const_array(f"t{t}_hwio16", hwio16(hwio), "float",
                                 f"tensor {t} as HWIO in blocks of 16 output channels (opt kernels)")
            return self.params.c_fields(em, filter=arr) + [("filter_layout", "EBNN_FILTER_HWIO16")]
        arr = em.const_array(f"t{t}_hwio", hwio, "float", f"tensor {t} transposed OHWI -> HWIO (opt kernels)")
        return self.params.c_fields(em, filter=arr) + [("filter_layout", "EBNN_FILTER_HWIO")]

    def emit(self, em):
        # HWIO16 where the opt conv's blocked GEMM reads it; one-channel stems (a conv
        # of their own, cvo_mono) and out_c not a multiple of 8 keep HWIO
        p = self.params
        blocked = isinstance(p, Conv2DParams) and p.in_c > 1 and p.out_c % 8 == 0
        name = em.params(self, self.c_params_type, self.c_struct(em, blocked=blocked))
        em.call(self, self.c_function, [f"&{name}"] + self.tensor_args(em))


def hwio16(hwio: np.ndarray) -> np.ndarray:
    """An HWIO filter ``[fh, fw, in_c, out_c]`` in the EBNN_FILTER_HWIO16 order (ebnn.h), flat:
    blocks of 16 output channels one after the other, each its ``[K, width]`` slice."""
    k = int(np.prod(hwio.shape[:3]))
    flat = hwio.reshape(k, hwio.shape[3])
    return np.concatenate([flat[:, o:o + 16].ravel() for o in range(0, flat.shape[1], 16)])


@dataclass(frozen=True)
class DepthwiseParams(Params):
    in_h: int
    in_w: int
    in_c: int
    depth_multiplier: int
    filter_h: int
    filter_w: int
    stride_h: int
    stride_w: int
    dilation_h: int
    dilation_w: int
    padding: Padding
    activation: Activation
    filter: int = const("float")
    bias: int = const("float")


@register_op("DEPTHWISE_CONV_2D")
class DepthwiseConv2D(Conv2D):
    c_params_type = "ebnn_depthwise_conv2d_params_t"
    c_function = "ebnn_depthwise_conv2d"

    def parse(self):
        x, w, b = self.float_operands()
        h, wd, c = self.hwc(x)
        if len(w.shape) != 4 or w.shape[0] != 1 or w.shape[3] % c:
            raise self.fail(f"filter shape {w.shape}, expected [1, kh, kw, {c} * depth_multiplier]")
        dm = int(w.shape[3]) // c
        return DepthwiseParams(in_h=h, in_w=wd, in_c=c, depth_multiplier=dm,
                               **self.window_fields(w, b, x, c * dm))

    def infer(self):
        return [(1, *self.out_hw(), self.params.in_c * self.params.depth_multiplier)]


@dataclass(frozen=True)
class FullyConnectedParams(Params):
    rows: int
    in_features: int
    out_features: int
    activation: Activation
    weights: int = const("float")
    bias: int = const("float")


@register_op("FULLY_CONNECTED")
class FullyConnected(OpKernel):
    c_params_type = "ebnn_fully_connected_params_t"
    c_function = "ebnn_fully_connected"
    min_inputs = 2
    max_inputs = 3

    def parse(self):
        x, w, b = self.float_operands("weights", " (quantized weights are not supported)")
        if self.int_option("weights_format", 0) != 0:
            raise self.fail(f"weights_format {self.option('weights_format')} (only DEFAULT = 0)")
        if len(w.shape) != 2:
            raise self.fail(f"weights shape {w.shape}, expected [out, in]")
        out_f, in_f = (int(s) for s in w.shape)
        self.require_size(b, out_f, "bias")
        n = _prod(x.shape)
        if n % in_f:
            raise self.fail(f"input of {n} values is not a multiple of in_features={in_f}")
        return FullyConnectedParams(rows=n // in_f, in_features=in_f, out_features=out_f,
                                    activation=self.activation(), weights=w.index,
                                    bias=b.index if b is not None else -1)

    def infer(self):
        y = self.out_tensor()
        if _prod(y.shape) != self.params.rows * self.params.out_features:
            raise self.fail(f"output shape {y.shape} does not hold {self.params.rows} x {self.params.out_features} values")
        return None

    def c_struct(self, em):
        if em.kernels != "opt":
            return self.params.c_fields(em)
        # the "opt" kernel set streams the weights as [in][out] (the same sums, bit-identical)
        t = self.params.weights
        w = np.asarray(em.ctx.tensor(t).data, dtype=np.float32).reshape(self.params.out_features, -1)
        io = em.const_array(f"t{t}_io", np.ascontiguousarray(w.T), "float",
                            f"tensor {t} transposed [out][in] -> [in][out] (opt kernels)")
        return self.params.c_fields(em, weights=io) + [("weights_layout", "EBNN_WEIGHTS_IO")]


@dataclass(frozen=True)
class Pool2DParams(Params):
    in_h: int
    in_w: int
    channels: int
    filter_h: int
    filter_w: int
    stride_h: int
    stride_w: int
    padding: Padding
    activation: Activation


@register_op("MAX_POOL_2D")
class MaxPool2D(OpKernel):
    c_params_type = "ebnn_pool2d_params_t"
    c_function = "ebnn_max_pool2d"

    def parse(self):
        x = self.tensor(0)
        self.require_dtype(x, ("float32",), "input")
        h, w, c = self.hwc(x)
        p = Pool2DParams(
            in_h=h, in_w=w, channels=c,
            filter_h=self.int_option("filter_height", required=True),
            filter_w=self.int_option("filter_width", required=True),
            stride_h=self.int_option("stride_h", required=True),
            stride_w=self.int_option("stride_w", required=True),
            padding=self.padding(), activation=self.activation(),
        )
        self.check_window(h, w, p.filter_h, p.filter_w, p.stride_h, p.stride_w, padding=p.padding)
        return p

    def infer(self):
        p = self.params
        return [(1, output_size(p.in_h, p.filter_h, p.stride_h, 1, p.padding),
                 output_size(p.in_w, p.filter_w, p.stride_w, 1, p.padding), p.channels)]


@register_op("AVERAGE_POOL_2D")
class AveragePool2D(MaxPool2D):
    c_function = "ebnn_average_pool2d"


@dataclass(frozen=True)
class MeanParams(Params):
    in_h: int
    in_w: int
    channels: int


@register_op("MEAN")
class Mean(OpKernel):
    c_params_type = "ebnn_mean_params_t"
    c_function = "ebnn_mean_hw"
    min_inputs = 2
    max_inputs = 2

    def parse(self):
        x, axes = self.tensor(0), self.tensor(1)
        self.require_dtype(x, ("float32",), "input")
        self.require_const(axes, "axes")
        h, w, c = self.hwc(x)
        self.require_dtype(axes, ("int32", "int64"), "axes")
        ax = sorted(int(a) % 4 for a in np.asarray(axes.data).ravel())
        if ax != [1, 2]:
            raise self.fail(f"MEAN over axes {ax}; only the spatial mean over axes [1, 2] is supported")
        return MeanParams(in_h=h, in_w=w, channels=c)

    def infer(self):
        c = self.params.channels
        return [(1, 1, 1, c) if self.option("keep_dims", False) else (1, c)]


@dataclass(frozen=True)
class BinaryParams(Params):
    size: int
    b_size: int
    activation: Activation


def _broadcast(shape_a, shape_b):
    n = max(len(shape_a), len(shape_b))
    a = (1,) * (n - len(shape_a)) + tuple(shape_a)
    b = (1,) * (n - len(shape_b)) + tuple(shape_b)
    out = []
    for x, y in zip(a, b):
        if x != y and 1 not in (x, y):
            return None
        out.append(max(x, y))
    return tuple(out)


@register_op("ADD")
class Add(OpKernel):
    c_params_type = "ebnn_binary_params_t"
    c_function = "ebnn_add"
    min_inputs = 2
    max_inputs = 2

    def parse(self):
        a, b = self.tensor(0), self.tensor(1)
        for t, role in ((a, "first operand"), (b, "second operand")):
            self.require_dtype(t, ("float32",), role)
        y = self.out_tensor()
        full = _broadcast(a.shape, b.shape)
        if full is None or tuple(full) != tuple(y.shape):
            raise self.fail(f"operand shapes {a.shape} and {b.shape} do not broadcast to the output {y.shape}")
        size = _prod(y.shape)
        first = 0 if _prod(a.shape) == size else 1  # commutative: the broadcast operand goes second
        a, b = self.tensor(first), self.tensor(1 - first)
        if _prod(a.shape) != size:
            raise self.fail(f"both operands {a.shape} and {b.shape} are broadcast; one must have the output's shape")
        self.operands = (("in", first, "float"), ("in", 1 - first, "float"), ("out", 0, "float"))
        b_size = _prod(b.shape)
        bshape = tuple(d for d in b.shape)
        trimmed = bshape
        while trimmed and trimmed[0] == 1:
            trimmed = trimmed[1:]
        last = int(y.shape[-1]) if y.shape else 1
        if not (b_size in (1, size) or (len(trimmed) == 1 and trimmed[0] == last)):
            raise self.fail(f"broadcast of {b.shape} over {y.shape}; supported: same shape, a scalar, or a vector over the last axis")
        return BinaryParams(size=size, b_size=b_size, activation=self.activation())


@register_op("MUL")
class Mul(Add):
    c_function = "ebnn_mul"


@register_op("RESHAPE")
class Reshape(OpKernel):
    """RESHAPE (and SQUEEZE) move no data: the output aliases the input's memory."""

    alias = True
    max_inputs = 2
    out_dtypes = None

    def parse(self):
        x, y = self.tensor(0), self.out_tensor()
        if x.is_constant:
            raise self.fail(f"reshape of the constant tensor {x.index} '{x.name}' (not supported)")
        if _prod(x.shape) != _prod(y.shape) or x.dtype != y.dtype:
            raise self.fail(f"reshape of {list(x.shape)} {x.dtype} ({_prod(x.shape)} values) to "
                            f"{list(y.shape)} {y.dtype} ({_prod(y.shape)} values): element count and dtype "
                            "must be kept")
        if x.dtype == "int32" and self.op.inputs[0] in self.ctx.packed_channels:
            if not x.shape or not y.shape or int(x.shape[-1]) != int(y.shape[-1]):
                raise self.fail("reshape of a bitpacked tensor that changes its last axis")
            self.ctx.packed_channels[self.op.outputs[0]] = self.ctx.packed_channels[self.op.inputs[0]]
        return Params()

    def activation_inputs(self):
        return (self.op.inputs[0],)

    def emit(self, em):
        em.alias_comment(self)


@register_op("SQUEEZE")
class Squeeze(Reshape):
    pass


@dataclass(frozen=True)
class SoftmaxParams(Params):
    rows: int
    cols: int
    beta: float


@register_op("SOFTMAX")
class Softmax(OpKernel):
    c_params_type = "ebnn_softmax_params_t"
    c_function = "ebnn_softmax"

    def parse(self):
        x = self.tensor(0)
        self.require_dtype(x, ("float32",), "input")
        if not x.shape:
            raise self.fail("input is a scalar; softmax needs at least one axis")
        cols = int(x.shape[-1])
        return SoftmaxParams(rows=_prod(x.shape) // cols, cols=cols, beta=self.float_option("beta", 1.0))

    def infer(self):
        return [tuple(self.tensor(0).shape)]


MAX_CONCAT_INPUTS = 16  # EBNN_CONCAT_MAX_INPUTS


@dataclass(frozen=True)
class ConcatParams(Params):
    outer: int
    n_inputs: int
    inner: Dims
    activation: Activation


@register_op("CONCATENATION")
class Concatenation(OpKernel):
    c_params_type = "ebnn_concat_params_t"
    c_function = "ebnn_concatenation"
    operands = (("ins", None, "float"), ("out", 0, "float"))

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
        for t in ins:
            self.require_dtype(t, ("float32",), "input (bitpacked concatenation is not supported)")
            if len(t.shape) != rank:
                raise self.fail(f"input '{t.name}' of rank {len(t.shape)}, output rank {rank}")
            if any(int(a) != int(b) for k, (a, b) in enumerate(zip(t.shape, y.shape)) if k != axis):
                raise self.fail(f"input tensor {t.index} '{t.name}' has shape {list(t.shape)}, expected "
                                f"{list(y.shape)} on every axis but {axis}")
        return ConcatParams(outer=_prod(y.shape[:axis]), n_inputs=len(ins),
                            inner=Dims(_prod(t.shape[axis:]) for t in ins), activation=self.activation())

    def infer(self):
        y = self.out_tensor()
        if sum(self.params.inner) * self.params.outer != _prod(y.shape):
            raise self.fail(f"inputs hold {sum(self.params.inner) * self.params.outer} values, output {y.shape}")
        return None


@dataclass(frozen=True)
class PadParams(Params):
    dims: Dims
    before: Dims
    after: Dims
    value: float


@register_op("PAD")
class Pad(OpKernel):
    c_params_type = "ebnn_pad_params_t"
    c_function = "ebnn_pad"
    min_inputs = 2
    max_inputs = 2

    def parse(self):
        x, pads = self.tensor(0), self.tensor(1)
        self.require_dtype(x, ("float32",), "input")
        self.require_const(pads, "paddings")
        rank = len(x.shape)
        if rank > 4:
            raise self.fail(f"input of rank {rank}, at most 4 is supported")
        self.require_dtype(pads, ("int32", "int64"), "paddings")
        if tuple(pads.shape) != (rank, 2):
            raise self.fail(f"paddings tensor {pads.index} '{pads.name}' has shape {list(pads.shape)}, "
                            f"expected [{rank}, 2]")
        pv = np.asarray(pads.data).reshape(rank, 2).astype(np.int64)
        if (pv < 0).any():
            raise self.fail("negative paddings")
        lead = 4 - rank
        dims = Dims((1,) * lead + tuple(int(d) for d in x.shape))
        before = Dims((0,) * lead + tuple(int(v) for v in pv[:, 0]))
        after = Dims((0,) * lead + tuple(int(v) for v in pv[:, 1]))
        return PadParams(dims=dims, before=before, after=after, value=self.pad_value())

    def pad_value(self):
        return 0.0

    def infer(self):
        p = self.params
        rank = len(self.tensor(0).shape)
        full = tuple(d + b + a for d, b, a in zip(p.dims, p.before, p.after))
        return [full[4 - rank:]]


@register_op("PADV2")
class PadV2(Pad):
    min_inputs = 3
    max_inputs = 3

    def pad_value(self):
        v = self.tensor(2)
        self.require_const(v, "constant_values")
        self.require_dtype(v, ("float32",), "constant_values")
        self.require_size(v, 1, "constant_values")
        return float(np.asarray(v.data).ravel()[0])

    def activation_inputs(self):
        return (self.op.inputs[0],)


@dataclass(frozen=True)
class UnaryParams(Params):
    size: int
    alpha: float


class _Unary(OpKernel):
    c_params_type = "ebnn_unary_params_t"

    def parse(self):
        x = self.tensor(0)
        self.require_dtype(x, ("float32",), "input")
        return UnaryParams(size=_prod(x.shape), alpha=self.float_option("alpha", 0.0))

    def infer(self):
        return [tuple(self.tensor(0).shape)]


for _name, _fn in (("RELU", "ebnn_relu"), ("RELU6", "ebnn_relu6"), ("RELU_N1_TO_1", "ebnn_relu_n1_to_1"),
                   ("TANH", "ebnn_tanh"), ("LOGISTIC", "ebnn_logistic"), ("LEAKY_RELU", "ebnn_leaky_relu"),
                   ("HARD_SWISH", "ebnn_hard_swish")):
    register_op(_name)(type(f"Unary_{_name}", (_Unary,), {"c_function": _fn}))


# --------------------------------------------------------------------------
# Nodes made by the graph passes


@dataclass(frozen=True)
class BDenseParams(Params):
    rows: int
    in_features: int
    out_features: int
    activation: Activation
    bias: int


class BinaryDense(PassNode):
    """xnor-popcount dense on bitpacked input and weights (replaces LceDequantize -> FULLY_CONNECTED)."""

    op_type = "LceDequantize -> FULLY_CONNECTED (as binary dense)"
    c_params_type = "ebnn_bdense_params_t"
    c_function = "ebnn_bdense"

    def __init__(self, fc: FullyConnected, dequantize: LceDequantize, scales=None):
        super().__init__(fc.op, fc.ctx, (dequantize.op.index, fc.op.index), (dequantize.op.inputs[0],), fc.outputs)
        p = fc.params
        self.params = BDenseParams(rows=p.rows, in_features=p.in_features, out_features=p.out_features,
                                   activation=p.activation, bias=p.bias)
        w = self.ctx.tensor(p.weights).data.reshape(p.out_features, p.in_features)
        self.packed_weights = pack_bits(w)
        # None when every weight is exactly +-1: no multiply at all.
        self.scales = None if scales is None or np.all(scales == 1.0) else np.asarray(scales, np.float32)

    def emit(self, em):
        p = self.params
        w = em.const_array(f"op{self.op.index}_packed_weights", self.packed_weights, "int32_t",
                           note=f"+-1 weights of '{self.ctx.tensor(self.op.inputs[1]).name}', bitpacked")
        name = em.params(self, self.c_params_type, [
            ("rows", p.rows), ("in_features", p.in_features), ("out_features", p.out_features),
            ("activation", p.activation), ("weights", w),
            ("multiplier", "NULL" if self.scales is None else em.const_array(
                f"op{self.op.index}_row_scales", self.scales, "float",
                note="per-row magnitude of the +-s weights (a folded batch-norm scale)")),
            ("bias", em.const(p.bias, "float")),
        ])
        em.call(self, self.c_function, [f"&{name}", em.ptr(self.inputs[0], "int32_t", const=True),
                                        em.ptr(self.outputs[0], "float")])


class LevelConv(PassNode):
    """A float CONV_2D / FULLY_CONNECTED on integer codes 0..L with +-s weights, as bitplane popcounts.

    Made by :func:`edgebnn.codegen.passes.level_convolutions`, which proved
    the input's codes (``inputs[0]``, a ROUND output) and the weights' signs;
    a FULLY_CONNECTED runs as a 1x1 convolution over its rows. The C call
    packs the codes into ``planes`` bitplanes in its scratch
    (ebnn_lconv2d, semantics in ebnn.h).
    """

    c_params_type = "ebnn_lconv2d_params_t"
    c_function = "ebnn_lconv2d"
    MAX_LEVELS = 255  # EBNN_LEVEL_MAX

    def __init__(self, node, codes, levels, scales, in_scale=np.float32(1.0)):
        super().__init__(node.op, node.ctx, node.ops, (codes,), node.outputs)
        p = node.params
        w = np.asarray(self.ctx.tensor(self.op.inputs[1]).data, dtype=np.float32)
        if isinstance(p, FullyConnectedParams):
            self.geom = dict(in_h=p.rows, in_w=1, in_c=p.in_features, out_c=p.out_features, filter_h=1, filter_w=1,
                             stride_h=1, stride_w=1, dilation_h=1, dilation_w=1, padding=Padding.VALID)
            w = w.reshape(p.out_features, 1, 1, p.in_features)
        else:
            self.geom = dict(in_h=p.in_h, in_w=p.in_w, in_c=p.in_c, out_c=p.out_c, filter_h=p.filter_h,
                             filter_w=p.filter_w, stride_h=p.stride_h, stride_w=p.stride_w,
                             dilation_h=p.dilation_h, dilation_w=p.dilation_w, padding=p.padding)
        self.activation, self.bias, self.levels = p.activation, p.bias, int(levels)
        self.planes = self.levels.bit_length()
        self.sign_bits = pack_bits(w)  # [out_c][fh][fw][words], bit 1 = negative weight
        self.multiplier = (np.asarray(scales, np.float32) * np.float32(in_scale)).astype(np.float32)
        self.in_scale = float(in_scale)
        self.op_type = (f"{node.op_type} on {self.levels + 1}-level codes "
                        f"(as {self.planes} bitplane popcounts, +-s weights)")
        g = self.geom
        self.scratch_bytes = 4 * self.planes * g["in_h"] * g["in_w"] * packed_words(g["in_c"])

    def emit(self, em):
        g, i = self.geom, self.op.index
        bits = self.sign_bits.reshape(g["out_c"], -1)
        conv = dict(g, pad_value=1, activation=Activation.NONE,
                    filter=em.const_array(f"op{i}_sign_bits", bits, "int32_t",
                                          note="signs of the +-s weights, bitpacked [out_c][fh][fw][words]"),
                    multiplier=em.const_array(f"op{i}_level_scales", self.multiplier, "float",
                                              note="per-channel magnitude of the +-s weights times the input's scale"),
                    bias=em.const(self.bias, "float") if self.bias >= 0 else em.const_array(
                        f"op{i}_zero_bias", np.zeros(g["out_c"], np.float32), "float", note="no bias"),
                    thresholds="NULL")
        if em.kernels == "opt":
            conv["filter_t"] = em.const_array(f"op{i}_sign_bits_t", np.ascontiguousarray(bits.T), "int32_t",
                                              note="the sign bits transposed to [fh][fw][words][out_c] (opt kernels)")
        pop = np.unpackbits(bits.view(np.uint8), axis=1).sum(axis=1).astype(np.int32)
        name = em.params(self, self.c_params_type, [
            ("conv", c_initializer(list(conv.items()))), ("levels", self.levels), ("activation", self.activation),
            ("filter_pop", em.const_array(f"op{i}_sign_pop", pop, "int32_t", note="popcount of each channel's sign bits")),
        ])
        em.call(self, self.c_function, [f"&{name}", em.ptr(self.inputs[0], "float", const=True),
                                        em.ptr(self.outputs[0], "float"), em.scratch_ptr(self),
                                        f"{self.scratch_bytes}u"])


class BconvAdd(PassNode):
    """``LceBconv2d`` (float output) -> ``ADD`` with a same-shape tensor, as one call.

    Made by :func:`edgebnn.codegen.passes.residual_adds` for residual blocks
    (``x + bconv(quantize(x))``): the bconv's output is never stored and
    the ADD's pass over memory is gone. ``ebnn_bconv2d_add`` computes both
    ops' results bit for bit (the ADD's operand order and activation kept).
    """

    c_params_type = "ebnn_bconv2d_add_params_t"
    c_function = "ebnn_bconv2d_add"

    def __init__(self, bconv, add, residual):
        super().__init__(bconv.op, bconv.ctx, bconv.ops + add.ops, (bconv.inputs[0], residual), add.outputs)
        self.bconv, self.add = bconv, add
        self.residual_first = int(add.op.inputs[0] == residual)
        self.op_type = f"{bconv.op_type} -> {add.op_type} (residual)"

    def emit(self, em):
        name = em.params(self, self.c_params_type, [
            ("conv", c_initializer(self.bconv.c_struct(em))), ("residual_first", self.residual_first),
            ("activation", self.add.params.activation)])
        em.call(self, self.c_function, [f"&{name}", em.ptr(self.inputs[0], "int32_t", const=True),
                                        em.ptr(self.inputs[1], "float", const=True),
                                        em.ptr(self.outputs[0], "float")])


def pack_bits(values: np.ndarray) -> np.ndarray:
    """Bitpack along the last axis as LCE does: bit 1 for x < 0, LSB first, int32 words."""
    v = np.asarray(values)
    n = v.shape[-1]
    words = packed_words(n)
    bits = np.zeros(v.shape[:-1] + (words * 32,), dtype=np.uint64)
    bits[..., :n] = (v < 0)
    bits = bits.reshape(v.shape[:-1] + (words, 32))
    weights = (np.uint64(1) << np.arange(32, dtype=np.uint64))
    packed = (bits * weights).sum(axis=-1).astype(np.uint64).astype(np.uint32)
    return packed.view(np.int32)


class FusedChain(PassNode):
    """[CONV_2D | LceBconv2d float] -> [MAX_POOL_2D] -> MUL/ADD* -> LceQuantize, row-sliced."""

    c_params_type = "ebnn_fused_params_t"
    c_function = "ebnn_fused_conv_pool_affine_quantize"
    MAX_STAGES = 4  # EBNN_FUSED_MAX_STAGES

    def __init__(self, producer, pool, stages, quantize):
        chain = [producer] + ([pool] if pool else []) + [st for st, _ in stages] + [quantize]
        super().__init__(producer.op, producer.ctx, (k.op.index for k in chain), (producer.op.inputs[0],),
                         quantize.outputs)
        self.producer, self.pool, self.stages, self.quantize = producer, pool, stages, quantize
        self.op_type = " -> ".join(k.op_type for k in chain)
        oh, ow = producer.out_hw()
        c = producer.params.out_c
        # As ebnn_fused_scratch_bytes() computes it (ebnn_fused.c): with a pool,
        # min(pool.filter_h, producer rows) producer rows plus one pixel;
        # without, one producer row (floats).
        if pool:
            self.scratch_bytes = 4 * (min(pool.params.filter_h, oh) * ow * c + c)
        else:
            self.scratch_bytes = 4 * ow * c

    def emit(self, em):
        prod = self.producer
        inner = em.params(prod, prod.c_params_type, prod.c_struct(em), suffix="producer")
        is_conv = isinstance(prod, Conv2D)
        stages = []
        for st, const_idx in self.stages:
            stages.append(c_initializer([
                ("kind", "EBNN_STAGE_MUL" if st.op_type == "MUL" else "EBNN_STAGE_ADD"),
                ("size", _prod(self.ctx.tensor(const_idx).shape)), ("values", em.const(const_idx, "float")),
                ("activation", st.params.activation)]))
        f = [
            ("producer", "EBNN_PRODUCER_CONV2D" if is_conv else "EBNN_PRODUCER_BCONV2D"),
            ("conv", f"&{inner}" if is_conv else "NULL"),
            ("bconv", "NULL" if is_conv else f"&{inner}"),
            ("has_pool", 1 if self.pool else 0),
        ]
        if self.pool:
            f.append(("pool", c_initializer(self.pool.c_struct(em))))
        f.append(("n_stages", len(stages)))
        if stages:
            f.append(("stages", "{" + ", ".join(stages) + "}"))
        name = em.params(self, self.c_params_type, f)
        scratch = em.scratch_ptr(self)
        x = em.ptr(self.inputs[0], "float" if is_conv else "int32_t", const=True)
        em.call(self, self.c_function, [f"&{name}", x, em.ptr(self.outputs[0], "int32_t"), scratch,
                                        f"{self.scratch_bytes}u"])

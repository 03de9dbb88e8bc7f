"""More op handlers: broadcasting elementwise ops and data movement.

The ops larq-zoo's models add to the MNIST set: ABS (XNOR-Net), SPLIT and
SPLIT_V (MeliusNet's grouped convolutions), PRELU (Real-to-Binary Net,
ReActNet's RPReLU), MINIMUM / MAXIMUM (DoReFa-Net's clipped activations),
SUB, ROUND (DoReFa-Net's k-bit quantizers), STRIDED_SLICE / SLICE and
TRANSPOSE. Each is registered with
:func:`edgebnn.codegen.ops.register_op` like the ops of
:mod:`edgebnn.codegen.ops`; the kernels are in ``firmware/runtime/``
``ebnn_eltwise.c`` and ``ebnn_shape.c`` (params structs in the "More
builtins" section of ``ebnn.h``).

As in :mod:`edgebnn.codegen.ops`, params fields are typed (:class:`Dims`,
:class:`Activation`) and render themselves, and the base class emits the
call from the operands a handler declares.

Example:
    >>> from edgebnn.codegen.ops import supported_ops
    >>> {"ABS", "PRELU", "SPLIT", "TRANSPOSE"} <= set(supported_ops())
    True
"""

from dataclasses import dataclass

import numpy as np

from edgebnn.codegen.ops import Activation, Dims, OpKernel, Params, UnaryParams, _prod, register_op

MAX_DIMS = 6  # EBNN_MAX_DIMS
MAX_SPLIT_OUTPUTS = 16  # EBNN_SPLIT_MAX_OUTPUTS


def _const_ints(op, tensor, role):
    op.require_const(tensor, role)
    if tensor.dtype not in ("int32", "int64"):
        raise op.fail(f"{role} '{tensor.name}' has dtype {tensor.dtype}, expected int32")
    return [int(v) for v in np.asarray(tensor.data).ravel()]


# --------------------------------------------------------------------------
# Broadcasting elementwise ops


def broadcast_shapes(shape_a, shape_b):
    """NumPy broadcasting of two shapes: the output shape, or None."""
    n = max(len(shape_a), len(shape_b))
    a = (1,) * (n - len(shape_a)) + tuple(int(d) for d in shape_a)
    b = (1,) * (n - len(shape_b)) + tuple(int(d) for d in shape_b)
    out = []
    for x, y in zip(a, b):
        if x != y and 1 not in (x, y):
            return None
        out.append(max(x, y))
    return tuple(out)


@dataclass(frozen=True)
class BroadcastParams(Params):
    rank: int
    a_dims: Dims
    b_dims: Dims
    activation: Activation


class Broadcasting(OpKernel):
    """``out = a (op) b`` with NumPy broadcasting (ebnn_broadcast_params_t)."""
    min_inputs = 2  # two operands, broadcast against each other
    max_inputs = 2

    c_params_type = "ebnn_broadcast_params_t"
    operands = (("in", 0, "float"), ("in", 1, "float"), ("out", 0, "float"))
    has_activation = True

    def parse(self):
        self.float_activations(0, 1)
        a, b, y = self.tensor(0), self.tensor(1), self.out_tensor()
        full = broadcast_shapes(a.shape, b.shape)
        if full is None or full != tuple(int(d) for d in y.shape):
            raise self.fail(f"operand shapes {a.shape} and {b.shape} do not broadcast to the output {y.shape}")
        rank = max(len(full), 1)
        if rank > MAX_DIMS:
            raise self.fail(f"rank {rank}; the runtime broadcasts at most {MAX_DIMS} dims")
        pad = lambda s: Dims((1,) * (MAX_DIMS - rank) + (1,) * (rank - len(s)) + tuple(int(d) for d in s))  # noqa: E731
        act = self.activation() if self.has_activation else Activation.NONE
        # leading dims of 1 up to MAX_DIMS: same memory, one rank for every op
        return BroadcastParams(rank=MAX_DIMS, a_dims=pad(a.shape), b_dims=pad(b.shape), activation=act)


for _name, _fn, _act in (("SUB", "ebnn_sub", True), ("MINIMUM", "ebnn_minimum", False),
                         ("MAXIMUM", "ebnn_maximum", False), ("PRELU", "ebnn_prelu", False)):
    register_op(_name)(type(f"Broadcast_{_name}", (Broadcasting,), {"c_function": _fn, "has_activation": _act}))


class _Elementwise(OpKernel):
    c_params_type = "ebnn_unary_params_t"

    def parse(self):
        self.float_activations(0)
        return UnaryParams(size=_prod(self.tensor(0).shape), alpha=0.0)

    def infer(self):
        return [tuple(self.tensor(0).shape)]


register_op("ABS")(type("Abs", (_Elementwise,), {"c_function": "ebnn_abs"}))
register_op("ROUND")(type("Round", (_Elementwise,), {"c_function": "ebnn_round"}))


# --------------------------------------------------------------------------
# Data movement


@dataclass(frozen=True)
class SplitParams(Params):
    outer: int
    axis: int
    inner: int
    n_outputs: int
    sizes: Dims


class _SplitBase(OpKernel):
    # one output per piece: the count is checked against num_splits when parsing
    max_outputs = 1 << 16
    out_dtypes = ("float32", "int32")
    c_params_type = "ebnn_split_params_t"
    c_function = "ebnn_split"
    data_pos = 0

    def split(self, axis, sizes):
        x = self.tensor(self.data_pos)
        self.float_activations(self.data_pos)
        for t in self.op.outputs:
            if self.ctx.tensor(t).dtype != "float32":
                raise self.fail(f"output '{self.ctx.tensor(t).name}' is {self.ctx.tensor(t).dtype}; only float32")
        rank = len(x.shape)
        ax = axis + rank if axis < 0 else axis
        if not 0 <= ax < rank:
            raise self.fail(f"split axis {axis} out of range for input rank {rank}")
        n = len(sizes)
        if n != len(self.op.outputs):
            raise self.fail(f"{n} split sizes but {len(self.op.outputs)} outputs")
        if not 1 <= n <= MAX_SPLIT_OUTPUTS:
            raise self.fail(f"{n} outputs; the runtime splits into at most {MAX_SPLIT_OUTPUTS}")
        if any(s <= 0 for s in sizes) or sum(sizes) != int(x.shape[ax]):
            raise self.fail(f"split sizes {list(sizes)} do not cover axis {ax} of {int(x.shape[ax])}")
        self._shapes = [tuple(int(d) for d in x.shape[:ax]) + (s,) + tuple(int(d) for d in x.shape[ax + 1:])
                        for s in sizes]
        return SplitParams(outer=_prod(x.shape[:ax]), axis=int(x.shape[ax]), inner=_prod(x.shape[ax + 1:]),
                           n_outputs=n, sizes=Dims(tuple(sizes) + (0,) * (MAX_SPLIT_OUTPUTS - n)))

    def infer(self):
        return self._shapes

    def activation_inputs(self):
        return (self.op.inputs[self.data_pos],)

    @property
    def operands(self):
        return (("in", self.data_pos, "void"), ("outs", None, "void"))


@register_op("SPLIT")
class Split(_SplitBase):
    """SPLIT: inputs (axis, input); ``num_splits`` equal parts."""
    min_inputs = 2  # axis, input
    max_inputs = 2

    data_pos = 1

    def parse(self):
        axis = _const_ints(self, self.tensor(0), "axis")
        if len(axis) != 1:
            raise self.fail(f"axis holds {len(axis)} values, expected one")
        x = self.tensor(1)
        if x is None:
            raise self.fail("input is missing")
        n = int(self.option("num_splits", len(self.op.outputs)))
        ax = axis[0] + len(x.shape) if axis[0] < 0 else axis[0]
        if n <= 0 or not 0 <= ax < len(x.shape) or int(x.shape[ax]) % n:
            raise self.fail(f"cannot split axis {axis[0]} of shape {x.shape} into {n} equal parts")
        return self.split(axis[0], [int(x.shape[ax]) // n] * n)


@register_op("SPLIT_V")
class SplitV(_SplitBase):
    """SPLIT_V: inputs (input, size_splits, axis); one size may be -1 (the rest)."""
    min_inputs = 3  # input, size_splits, axis
    max_inputs = 3

    data_pos = 0

    def parse(self):
        x = self.tensor(0)
        if x is None:
            raise self.fail("input is missing")
        sizes = _const_ints(self, self.tensor(1), "size_splits")
        axis = _const_ints(self, self.tensor(2), "axis")
        if len(axis) != 1:
            raise self.fail(f"axis holds {len(axis)} values, expected one")
        ax = axis[0] + len(x.shape) if axis[0] < 0 else axis[0]
        if not 0 <= ax < len(x.shape):
            raise self.fail(f"split axis {axis[0]} out of range for input rank {len(x.shape)}")
        if sizes.count(-1) > 1:
            raise self.fail(f"size_splits {sizes} has more than one -1")
        if -1 in sizes:
            sizes[sizes.index(-1)] = int(x.shape[ax]) - sum(s for s in sizes if s != -1)
        return self.split(axis[0], sizes)


@dataclass(frozen=True)
class SliceParams(Params):
    rank: int
    in_dims: Dims
    begin: Dims
    strides: Dims
    out_dims: Dims


def _pad_dims(values, rank, fill):
    return Dims(tuple(int(v) for v in values) + (fill,) * (MAX_DIMS - rank))


def resolve_strided_slice(shape, begin, end, strides, *, begin_mask=0, end_mask=0, shrink_axis_mask=0):
    """TFLite's STRIDED_SLICE index rules: per dim ``(start, stride, count)``.

    Negative indices count from the end; indices are clamped to the dim
    (``[0, dim]`` for a positive stride, ``[-1, dim - 1]`` for a negative
    one); a masked begin/end takes the whole dim; a shrunk axis takes the
    one element at ``begin``.

    Example:
        >>> resolve_strided_slice((10,), [-1], [0], [-2])
        [(9, -2, 5)]
    """
    out = []
    for d, dim in enumerate(shape):
        dim = int(dim)
        s = int(strides[d])
        if shrink_axis_mask >> d & 1:
            b = int(begin[d])
            b = b + dim if b < 0 else b
            out.append((b, 1, 1))
            continue
        lo, hi = (0, dim) if s > 0 else (-1, dim - 1)
        if begin_mask >> d & 1:
            b = 0 if s > 0 else dim - 1
        else:
            b = int(begin[d])
            b = min(max(b + dim if b < 0 else b, lo), hi)
        if end_mask >> d & 1:
            e = dim if s > 0 else -1
        else:
            e = int(end[d])
            e = min(max(e + dim if e < 0 else e, lo), hi)
        count = max(0, -(-(e - b) // s)) if s > 0 else max(0, -(-(b - e) // -s))
        out.append((b, s, count))
    return out


class _SliceBase(OpKernel):
    out_dtypes = ("float32", "int32")
    c_params_type = "ebnn_slice_params_t"
    c_function = "ebnn_strided_slice"
    operands = (("in", 0, "void"), ("out", 0, "void"))

    def slice_params(self, x, per_dim):
        rank = len(x.shape)
        if not 1 <= rank <= MAX_DIMS:
            raise self.fail(f"input of rank {rank}; the runtime slices 1 to {MAX_DIMS} dims")
        counts = [c for _, _, c in per_dim]
        if any(c <= 0 for c in counts):
            raise self.fail(f"the slice of {x.shape} is empty (counts {counts})")
        self._count = _prod(counts)
        return SliceParams(rank=rank, in_dims=_pad_dims(x.shape, rank, 1),
                           begin=_pad_dims([b for b, _, _ in per_dim], rank, 0),
                           strides=_pad_dims([s for _, s, _ in per_dim], rank, 1),
                           out_dims=_pad_dims(counts, rank, 1))

    def infer(self):
        y = self.out_tensor()
        if _prod(y.shape) != self._count:
            raise self.fail(f"output '{y.name}' has shape {y.shape}, the slice holds {self._count} values")
        return None

    def activation_inputs(self):
        return (self.op.inputs[0],)


@register_op("STRIDED_SLICE")
class StridedSlice(_SliceBase):
    min_inputs = 4  # input, begin, end, strides
    max_inputs = 4
    def parse(self):
        self.float_activations(0)
        x = self.tensor(0)
        rank = len(x.shape)
        begin = _const_ints(self, self.tensor(1), "begin")
        end = _const_ints(self, self.tensor(2), "end")
        strides = _const_ints(self, self.tensor(3), "strides") if self.tensor(3) is not None else [1] * rank
        for opt in ("ellipsis_mask", "new_axis_mask"):
            if int(self.option(opt, 0)):
                raise self.fail(f"{opt}={self.option(opt)} is not supported (only 0)")
        if self.option("offset", False):
            raise self.fail("offset=True is not supported")
        if not len(begin) == len(end) == len(strides) == rank:
            raise self.fail(f"begin/end/strides of lengths {len(begin)}/{len(end)}/{len(strides)} for rank {rank}")
        if 0 in strides:
            raise self.fail(f"strides {strides} contain 0")
        per_dim = resolve_strided_slice(x.shape, begin, end, strides,
                                        begin_mask=int(self.option("begin_mask", 0)),
                                        end_mask=int(self.option("end_mask", 0)),
                                        shrink_axis_mask=int(self.option("shrink_axis_mask", 0)))
        return self.slice_params(x, per_dim)


@register_op("SLICE")
class Slice(_SliceBase):
    min_inputs = 3  # input, begin, size
    max_inputs = 3
    def parse(self):
        self.float_activations(0)
        x = self.tensor(0)
        begin = _const_ints(self, self.tensor(1), "begin")
        size = _const_ints(self, self.tensor(2), "size")
        if not len(begin) == len(size) == len(x.shape):
            raise self.fail(f"begin/size of lengths {len(begin)}/{len(size)} for rank {len(x.shape)}")
        per_dim = []
        for b, n, dim in zip(begin, size, x.shape):
            n = int(dim) - b if n == -1 else n
            if b < 0 or n < 0 or b + n > int(dim):
                raise self.fail(f"slice begin {begin} size {size} out of range for {x.shape}")
            per_dim.append((b, 1, n))
        return self.slice_params(x, per_dim)


@dataclass(frozen=True)
class TransposeParams(Params):
    rank: int
    in_dims: Dims
    perm: Dims


@register_op("TRANSPOSE")
class Transpose(OpKernel):
    min_inputs = 2  # input, perm
    max_inputs = 2
    out_dtypes = ("float32", "int32")
    c_params_type = "ebnn_transpose_params_t"
    c_function = "ebnn_transpose"
    operands = (("in", 0, "void"), ("out", 0, "void"))

    def parse(self):
        self.float_activations(0)
        x = self.tensor(0)
        rank = len(x.shape)
        perm = _const_ints(self, self.tensor(1), "perm")
        if not 1 <= rank <= MAX_DIMS:
            raise self.fail(f"input of rank {rank}; the runtime transposes 1 to {MAX_DIMS} dims")
        perm = [p + rank if p < 0 else p for p in perm]
        if sorted(perm) != list(range(rank)):
            raise self.fail(f"perm {perm} is not a permutation of 0..{rank - 1}")
        # unused trailing dims: size 1, mapped to themselves
        return TransposeParams(rank=rank, in_dims=_pad_dims(x.shape, rank, 1),
                               perm=Dims(tuple(perm) + tuple(range(rank, MAX_DIMS))))

    def infer(self):
        x = self.tensor(0)
        return [tuple(int(x.shape[p]) for p in self.params.perm[: self.params.rank])]

    def activation_inputs(self):
        return (self.op.inputs[0],)

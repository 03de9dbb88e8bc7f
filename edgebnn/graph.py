"""Read a TFLite flatbuffer (LCE or stock) into plain Python objects, validated.

Uses the ``tflite`` schema package and ``flatbuffers.flexbuffers``; never
TensorFlow. Builtin options become dicts keyed by the schema's field names
in snake_case (``stride_w``, ``fused_activation_function`` as an enum name
such as ``"RELU"``, ``padding`` as ``"SAME"``/``"VALID"``); custom options
(LCE's FlexBuffer maps) become dicts as stored.

The file may come from a stranger, so the reader checks the structure
before anything relies on it: every vector lies inside the file, every
tensor, buffer and opcode index is in range (``-1`` only for an omitted
optional op input), shapes have no negative dimension and element counts
are computed with Python integers and bounded (:data:`MAX_ELEMENTS`, a byte
cap) before numpy allocates anything, a constant's buffer holds exactly its
shape, every tensor has at most one producer (never a constant or a graph
input), and every op reads only constants, graph inputs, variables or
tensors written by an earlier op. Structure errors raise
:class:`TFLiteFormatError`; legal structures edgebnn does not handle
(several subgraphs, constant graph outputs, an input that is also an
output, unsupported tensor types) raise :class:`UnsupportedOpError`. Every
message names the file, and the op, tensor and value concerned.

Example:
    >>> g = load_graph("model.tflite")  # doctest: +SKIP
    >>> [op.type for op in g.ops][:3]  # doctest: +SKIP
    ['CONV_2D', 'MAX_POOL_2D', 'LceQuantize']
"""

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from edgebnn.errors import EdgeBnnError, TFLiteFormatError, UnsupportedOpError

# TensorType enum of the TFLite schema -> numpy dtype.
_DTYPES = {
    0: np.float32,
    1: np.float16,
    2: np.int32,
    3: np.uint8,
    4: np.int64,
    6: np.bool_,
    7: np.int16,
    9: np.int8,
    10: np.float64,
    12: np.uint64,
    15: np.uint32,
    16: np.uint16,
}
# Legal TensorTypes without a numpy equivalent here.
_UNSUPPORTED_TYPES = {5: "STRING", 8: "COMPLEX64", 11: "COMPLEX128", 13: "RESOURCE", 14: "VARIANT", 17: "INT4"}

#: Largest element count of one tensor: C's int32 size fields must hold it.
MAX_ELEMENTS = 2**31 - 1
#: Default cap on the bytes of one tensor (``load_graph(max_tensor_bytes=...)``).
MAX_TENSOR_BYTES = 1 << 30
#: Deepest tensor rank accepted.
MAX_RANK = 8

LCE_CUSTOM_OPS = ("LceQuantize", "LceDequantize", "LceBconv2d", "LceBMaxPool2d")


@dataclass(frozen=True)
class Quantization:
    scale: tuple
    zero_point: tuple
    quantized_dimension: int = 0


@dataclass(frozen=True)
class Tensor:
    index: int
    name: str
    shape: tuple
    dtype: str  # numpy dtype name, e.g. "float32", "int32", "int8"
    data: Optional[np.ndarray] = field(default=None, compare=False, repr=False)
    quantization: Optional[Quantization] = None
    is_variable: bool = False

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def nbytes(self) -> int:
        return 0 if self.data is None else int(self.data.nbytes)

    @property
    def size(self) -> int:
        """Number of elements (1 for a scalar), as a Python int."""
        n = 1
        for d in self.shape:
            n *= int(d)
        return n


@dataclass(frozen=True)
class Op:
    index: int
    type: str  # builtin name ("CONV_2D") or custom code ("LceBconv2d")
    custom: bool
    inputs: tuple  # tensor indices; -1 marks an omitted optional input
    outputs: tuple
    options: dict = field(compare=False)
    version: int = 1


@dataclass(frozen=True)
class Graph:
    tensors: tuple
    ops: tuple
    inputs: tuple
    outputs: tuple
    sha256: str
    size: int
    description: str = ""
    path: Optional[str] = None
    source: str = "<bytes>"  # the file name used in messages

    def tensor(self, index: int) -> Tensor:
        if not isinstance(index, (int, np.integer)) or not 0 <= index < len(self.tensors):
            raise TFLiteFormatError(
                f"{self.source}: tensor index {index} out of range (the subgraph has {len(self.tensors)} tensors)"
            )
        return self.tensors[index]

    def op_types(self) -> dict:
        """Count ops by type, sorted by name."""
        counts = {}
        for op in self.ops:
            counts[op.type] = counts.get(op.type, 0) + 1
        return dict(sorted(counts.items()))

    def custom_ops(self) -> list:
        return sorted({op.type for op in self.ops if op.custom})

    def is_lce(self) -> bool:
        return any(t in LCE_CUSTOM_OPS for t in self.custom_ops())


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _enum_names(enum_cls) -> dict:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


def _builtin_options(tflite, op) -> dict:
    kind = op.BuiltinOptionsType()
    if kind == 0:
        return {}
    kind_name = _enum_names(tflite.BuiltinOptions).get(kind)
    cls = getattr(tflite, kind_name, None) if kind_name else None
    table = op.BuiltinOptions()
    if cls is None or table is None:
        return {}
    obj = cls()
    obj.Init(table.Bytes, table.Pos)
    enums = {
        "Padding": _enum_names(tflite.Padding),
        "FusedActivationFunction": _enum_names(tflite.ActivationFunctionType),
    }
    out = {}
    for attr in dir(cls):
        if attr.startswith("_") or attr in ("Init",) or attr.startswith("GetRootAs"):
            continue
        if attr.endswith(("AsNumpy", "IsNone", "Length", "BufferHasIdentifier")):
            continue
        method = getattr(obj, attr)
        if not callable(method):
            continue
        try:
            if hasattr(obj, attr + "AsNumpy"):
                value = getattr(obj, attr + "AsNumpy")()
                value = [] if isinstance(value, int) else [int(v) for v in value]
            else:
                value = method()
        except TypeError:
            continue  # accessor that needs an index argument
        if attr in enums and isinstance(value, int):
            value = enums[attr].get(value, value)
        out[_snake(attr)] = value
    return out


def _custom_options(op, where) -> dict:
    if op.CustomOptionsIsNone() or op.CustomOptionsLength() == 0:
        return {}
    from flatbuffers import flexbuffers

    raw = bytes(op.CustomOptionsAsNumpy().tobytes())
    try:
        value = flexbuffers.Loads(raw)
    except Exception as exc:  # flexbuffers raises bare errors on bad data
        raise TFLiteFormatError(f"{where}: unreadable custom options ({len(raw)} bytes): {exc}") from exc
    return dict(value) if isinstance(value, dict) else {"value": value}


class _Checker:
    """Bounds checks on the raw flatbuffer, with messages naming the file."""

    def __init__(self, buf, where):
        self.buf = buf
        self.where = where

    def fail(self, what):
        return TFLiteFormatError(f"{self.where}: {what}")

    def vector(self, table, slot, elem_size, what):
        """Check that vector field ``slot`` (vtable offset) of ``table`` lies inside the file; return its length."""
        tab = table._tab
        o = tab.Offset(slot)
        if o == 0:
            return 0
        start = tab.Vector(o)
        n = tab.VectorLen(o)
        if start < 0 or start + n * elem_size > len(self.buf):
            raise self.fail(f"{what}: vector of {n} x {elem_size} bytes at offset {start} runs past the end "
                            f"of the file ({len(self.buf)} bytes)")
        return n


def load_graph(source, *, name=None, max_tensor_bytes=MAX_TENSOR_BYTES) -> Graph:
    """Parse and validate a .tflite file (path) or its bytes into a :class:`Graph`.

    Args:
        source: a path, or the flatbuffer's bytes.
        name: the file name to use in messages when ``source`` is bytes
            (``"<bytes>"`` without one).
        max_tensor_bytes: the largest tensor accepted, in bytes.

    Raises:
        TFLiteFormatError: the file is missing, empty, not a TFLite flatbuffer
            (identifier ``TFL3``), or structurally broken (the message names
            the op, tensor or index concerned).
        UnsupportedOpError: a legal structure edgebnn does not handle
            (several subgraphs, a constant or input as graph output, a tensor
            type without a numpy equivalent, a tensor above the size caps).
    """
    import tflite

    path = None
    if isinstance(source, (bytes, bytearray, memoryview)):
        buf = bytes(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise TFLiteFormatError(f"model file not found: {path}")
        try:
            buf = path.read_bytes()
        except OSError as exc:
            raise TFLiteFormatError(f"cannot read {path}: {exc.strerror or exc}") from exc
    where = str(name) if name is not None else (str(path) if path else "<bytes>")
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise TFLiteFormatError(
            f"{where} is not a TFLite flatbuffer: expected the file identifier 'TFL3' "
            f"at bytes 4-8, found {buf[4:8]!r} ({len(buf)} bytes)"
        )
    try:
        return _parse(tflite, buf, where, path, max_tensor_bytes)
    except EdgeBnnError:
        raise
    except RecursionError as exc:
        raise TFLiteFormatError(f"{where} is a corrupt TFLite flatbuffer: nesting too deep") from exc
    except Exception as exc:  # the flatbuffers reader raises IndexError, struct.error...
        raise TFLiteFormatError(
            f"{where} is a corrupt TFLite flatbuffer: {type(exc).__name__}: {exc or 'read outside the file'}"
        ) from exc


def _parse(tflite, buf, where, path, max_tensor_bytes) -> Graph:
    chk = _Checker(buf, where)
    model = tflite.Model.GetRootAs(buf, 0)
    n_sub = chk.vector(model, 8, 4, "subgraphs")
    if n_sub < 1:
        raise TFLiteFormatError(f"{where} has no subgraph")
    if n_sub > 1:
        raise UnsupportedOpError(
            f"{where} has {n_sub} subgraphs; edgebnn handles models with exactly one "
            "(control flow and extra signatures are not supported)"
        )
    sub = model.Subgraphs(0)
    n_buffers = chk.vector(model, 12, 4, "buffers")
    buffers = []
    for i in range(n_buffers):
        b = model.Buffers(i)
        if b.Offset() > 1:
            off, size = int(b.Offset()), int(b.Size())
            if off + size > len(buf):
                raise chk.fail(f"buffer {i}: {size} bytes at offset {off} run past the end of the file "
                               f"({len(buf)} bytes)")
            buffers.append(np.frombuffer(buf, np.uint8, count=size, offset=off))
        elif chk.vector(b, 4, 1, f"buffer {i}") > 0:
            buffers.append(b.DataAsNumpy())
        else:
            buffers.append(None)

    n_tensors = chk.vector(sub, 4, 4, "tensors")
    tensors = []
    for i in range(n_tensors):
        tensors.append(_tensor(chk, sub.Tensors(i), i, buffers, max_tensor_bytes))

    def tname(idx):
        return f"tensor {idx} ('{tensors[idx].name}')"

    n_codes = chk.vector(model, 6, 4, "operator_codes")
    codes = []
    for i in range(n_codes):
        oc = model.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        custom = oc.CustomCode()
        if custom:
            codes.append((custom.decode("utf-8", "replace"), True, oc.Version()))
        elif code in tflite.BUILTIN_OPCODE2NAME:
            codes.append((tflite.opcode2name(code), False, oc.Version()))
        else:
            codes.append((f"UNKNOWN_BUILTIN_{code}", False, oc.Version()))

    n_ops = chk.vector(sub, 10, 4, "operators")
    ops = []
    producer = {}
    inputs = _index_list(chk, sub, 6, "subgraph inputs", n_tensors)
    outputs = _index_list(chk, sub, 8, "subgraph outputs", n_tensors)
    available = set(inputs)
    available.update(t.index for t in tensors if t.is_constant or t.is_variable)
    for i in range(n_ops):
        o = sub.Operators(i)
        idx = int(o.OpcodeIndex())
        if idx >= len(codes):
            raise chk.fail(f"op {i}: opcode index {idx} out of range (the model has {len(codes)} operator codes)")
        op_name, custom, version = codes[idx]
        what = f"op {i} ({op_name})"
        op_in = _index_list(chk, o, 6, f"{what} inputs", n_tensors, optional=True)
        op_out = _index_list(chk, o, 8, f"{what} outputs", n_tensors)
        for t in op_in:
            if t >= 0 and t not in available:
                later = producer.get(t)
                raise chk.fail(
                    f"{what} reads {tname(t)}, which is not a constant, a graph input or the output of an "
                    f"earlier op" + ("" if later is None else f" (op {later} writes it)")
                    + (" (op writes it itself)" if t in op_out else "")
                )
        for t in op_out:
            if t in producer:
                raise chk.fail(f"{what} writes {tname(t)}, already written by op {producer[t]}")
            if tensors[t].is_constant:
                raise chk.fail(f"{what} writes {tname(t)}, a constant tensor (it has a data buffer)")
            if t in inputs:
                raise chk.fail(f"{what} writes {tname(t)}, a graph input")
            producer[t] = i
        available.update(op_out)
        opts = _custom_options(o, f"{where}: {what}") if custom else _builtin_options(tflite, o)
        ops.append(Op(index=i, type=op_name, custom=custom, inputs=op_in, outputs=op_out, options=opts,
                      version=version))

    if not inputs or not outputs:
        raise UnsupportedOpError(f"{where}: the subgraph has {len(inputs)} inputs and {len(outputs)} outputs; "
                                 "at least one of each is needed")
    for role, lst in (("input", inputs), ("output", outputs)):
        if len(set(lst)) != len(lst):
            raise chk.fail(f"graph {role}s {list(lst)} list a tensor twice")
    for t in inputs:
        if tensors[t].is_constant:
            raise UnsupportedOpError(f"{where}: graph input {tname(t)} is a constant tensor")
    for t in outputs:
        if t in inputs:
            raise UnsupportedOpError(f"{where}: graph output {tname(t)} is also a graph input; nothing computes it")
        if tensors[t].is_constant:
            raise UnsupportedOpError(f"{where}: graph output {tname(t)} is a constant tensor; edgebnn generates "
                                     "no code for constant outputs")
        if t not in producer:
            raise chk.fail(f"graph output {tname(t)} is written by no op")
    desc = model.Description()
    return Graph(
        tensors=tuple(tensors),
        ops=tuple(ops),
        inputs=inputs,
        outputs=outputs,
        sha256=hashlib.sha256(buf).hexdigest(),
        size=len(buf),
        description=desc.decode("utf-8", "replace") if desc else "",
        path=str(path) if path else None,
        source=where,
    )


def _index_list(chk, table, slot, what, n_tensors, optional=False):
    """A vector of tensor indices, each checked against ``n_tensors`` (``-1`` allowed if ``optional``)."""
    n = chk.vector(table, slot, 4, what)
    if n == 0:
        return ()
    tab = table._tab
    start = tab.Vector(tab.Offset(slot))
    values = tuple(int(v) for v in np.frombuffer(chk.buf, dtype="<i4", count=n, offset=start))
    for pos, v in enumerate(values):
        if v == -1 and optional:
            continue
        if not 0 <= v < n_tensors:
            allowed = "-1 (omitted optional input) or " if optional else ""
            raise chk.fail(f"{what}: entry {pos} is tensor index {v}, expected {allowed}0..{n_tensors - 1}")
    return values


def _tensor(chk, t, i, buffers, max_tensor_bytes):
    where = chk.where
    raw_name = t.Name() or b""
    name = raw_name.decode("utf-8", "replace")
    label = f"tensor {i} ('{name}')"
    rank = chk.vector(t, 4, 4, f"{label} shape")
    if rank > MAX_RANK:
        raise UnsupportedOpError(f"{where}: {label} has rank {rank}, at most {MAX_RANK} is supported")
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if rank else ()
    if any(d < 0 for d in shape):
        raise TFLiteFormatError(f"{where}: {label} has shape {list(shape)} with a negative dimension")
    ttype = int(t.Type())
    dtype = _DTYPES.get(ttype)
    if dtype is None:
        if ttype in _UNSUPPORTED_TYPES:
            raise UnsupportedOpError(f"{where}: {label} has TensorType {_UNSUPPORTED_TYPES[ttype]} ({ttype}), "
                                     f"which edgebnn does not handle")
        raise TFLiteFormatError(f"{where}: {label} has unknown TensorType {ttype} "
                                f"(expected one of {sorted(set(_DTYPES) | set(_UNSUPPORTED_TYPES))})")
    count = 1
    for d in shape:
        count *= d
    itemsize = np.dtype(dtype).itemsize
    if count > MAX_ELEMENTS or count * itemsize > max_tensor_bytes:
        raise UnsupportedOpError(
            f"{where}: {label} has shape {list(shape)}: {count} elements ({count * itemsize} bytes), above the "
            f"limit of {MAX_ELEMENTS} elements and {max_tensor_bytes} bytes per tensor"
        )
    b = int(t.Buffer())
    if b >= len(buffers):
        raise TFLiteFormatError(f"{where}: {label} refers to buffer {b}, but the model has {len(buffers)} buffers")
    raw = buffers[b]
    data = None
    if raw is not None:
        if raw.size != count * itemsize:
            raise TFLiteFormatError(
                f"{where}: {label} has shape {list(shape)} ({count} x {np.dtype(dtype).name}, "
                f"{count * itemsize} bytes) but its buffer {b} holds {raw.size} bytes"
            )
        data = np.frombuffer(raw.tobytes(), dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype).reshape(shape)
    quant = None
    q = t.Quantization()
    if q is not None:
        n_scale = chk.vector(q, 8, 4, f"{label} quantization scale")
        n_zero = chk.vector(q, 10, 8, f"{label} quantization zero_point")
        if n_scale > 0:
            qdim = int(q.QuantizedDimension())
            if n_zero not in (0, n_scale):
                raise TFLiteFormatError(f"{where}: {label} quantization has {n_scale} scales and {n_zero} "
                                        "zero points, expected as many of each")
            if n_scale > 1 and not (0 <= qdim < len(shape) and shape[qdim] == n_scale):
                raise TFLiteFormatError(f"{where}: {label} has {n_scale} per-channel scales along dimension "
                                        f"{qdim}, but its shape is {list(shape)}")
            quant = Quantization(
                scale=tuple(float(s) for s in q.ScaleAsNumpy()),
                zero_point=tuple(int(z) for z in q.ZeroPointAsNumpy()) if n_zero else (0,) * n_scale,
                quantized_dimension=qdim,
            )
    return Tensor(index=i, name=name, shape=shape, dtype=np.dtype(dtype).name, data=data, quantization=quant,
                  is_variable=bool(t.IsVariable()))

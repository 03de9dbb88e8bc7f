"""Read a TFLite flatbuffer (LCE or stock) into plain Python objects.

Uses the ``tflite`` schema package and ``flatbuffers.flexbuffers``; never
TensorFlow. Builtin options become dicts keyed by the schema's field names
in snake_case (``stride_w``, ``fused_activation_function`` as an enum name
such as ``"RELU"``, ``padding`` as ``"SAME"``/``"VALID"``); custom options
(LCE's FlexBuffer maps) become dicts as stored.

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

from edgebnn.errors import TFLiteFormatError

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
}

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

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def nbytes(self) -> int:
        return 0 if self.data is None else int(self.data.nbytes)


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

    def tensor(self, index: int) -> Tensor:
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


def _custom_options(op) -> dict:
    if op.CustomOptionsIsNone() or op.CustomOptionsLength() == 0:
        return {}
    from flatbuffers import flexbuffers

    raw = bytes(op.CustomOptionsAsNumpy().tobytes())
    try:
        value = flexbuffers.Loads(raw)
    except Exception as exc:  # flexbuffers raises bare errors on bad data
        raise TFLiteFormatError(f"unreadable custom options of op {op}: {exc}") from exc
    return dict(value) if isinstance(value, dict) else {"value": value}


def load_graph(source) -> Graph:
    """Parse a .tflite file (path) or its bytes into a :class:`Graph`.

    Only the first subgraph is read (the one every converter writes for a
    feed-forward model).

    Raises:
        TFLiteFormatError: the file is missing, empty, not a TFLite flatbuffer
            (identifier ``TFL3``), or structurally broken.
    """
    import tflite

    path = None
    if isinstance(source, (bytes, bytearray, memoryview)):
        buf = bytes(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise TFLiteFormatError(f"model file not found: {path}")
        buf = path.read_bytes()
    where = str(path) if path else "<bytes>"
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise TFLiteFormatError(
            f"{where} is not a TFLite flatbuffer: expected the file identifier 'TFL3' "
            f"at bytes 4-8, found {buf[4:8]!r} ({len(buf)} bytes)"
        )
    try:
        model = tflite.Model.GetRootAs(buf, 0)
        if model.SubgraphsLength() < 1:
            raise TFLiteFormatError(f"{where} has no subgraph")
        sub = model.Subgraphs(0)
        buffers = []
        for i in range(model.BuffersLength()):
            b = model.Buffers(i)
            if b.Offset() > 1:
                buffers.append(np.frombuffer(buf, np.uint8, count=b.Size(), offset=b.Offset()))
            elif b.DataLength() > 0:
                buffers.append(b.DataAsNumpy())
            else:
                buffers.append(None)
        tensors = []
        for i in range(sub.TensorsLength()):
            t = sub.Tensors(i)
            shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
            dtype = _DTYPES.get(t.Type())
            if dtype is None:
                raise TFLiteFormatError(f"{where}: tensor {i} has unsupported TensorType {t.Type()}")
            raw = buffers[t.Buffer()] if t.Buffer() < len(buffers) else None
            data = None
            if raw is not None:
                data = np.frombuffer(raw.tobytes(), dtype=dtype)
                count = int(np.prod(shape)) if shape else 1
                if data.size != count:
                    raise TFLiteFormatError(
                        f"{where}: tensor {i} ({t.Name().decode()}) has shape {shape} "
                        f"but its buffer holds {data.size} values"
                    )
                data = data.reshape(shape)
            quant = None
            q = t.Quantization()
            if q is not None and q.ScaleLength() > 0:
                quant = Quantization(
                    scale=tuple(float(s) for s in q.ScaleAsNumpy()),
                    zero_point=tuple(int(z) for z in q.ZeroPointAsNumpy()),
                    quantized_dimension=int(q.QuantizedDimension()),
                )
            tensors.append(
                Tensor(
                    index=i,
                    name=(t.Name() or b"").decode("utf-8", "replace"),
                    shape=shape,
                    dtype=np.dtype(dtype).name,
                    data=data,
                    quantization=quant,
                )
            )
        codes = []
        for i in range(model.OperatorCodesLength()):
            oc = model.OperatorCodes(i)
            code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
            if oc.CustomCode():
                codes.append((oc.CustomCode().decode(), True, oc.Version()))
            else:
                codes.append((tflite.opcode2name(code), False, oc.Version()))
        ops = []
        for i in range(sub.OperatorsLength()):
            o = sub.Operators(i)
            name, custom, version = codes[o.OpcodeIndex()]
            opts = _custom_options(o) if custom else _builtin_options(tflite, o)
            ops.append(
                Op(
                    index=i,
                    type=name,
                    custom=custom,
                    inputs=tuple(int(x) for x in o.InputsAsNumpy()) if o.InputsLength() else (),
                    outputs=tuple(int(x) for x in o.OutputsAsNumpy()) if o.OutputsLength() else (),
                    options=opts,
                    version=version,
                )
            )
        desc = model.Description()
        return Graph(
            tensors=tuple(tensors),
            ops=tuple(ops),
            inputs=tuple(int(x) for x in sub.InputsAsNumpy()),
            outputs=tuple(int(x) for x in sub.OutputsAsNumpy()),
            sha256=hashlib.sha256(buf).hexdigest(),
            size=len(buf),
            description=desc.decode("utf-8", "replace") if desc else "",
            path=str(path) if path else None,
        )
    except TFLiteFormatError:
        raise
    except Exception as exc:  # the flatbuffers reader raises IndexError, struct.error...
        raise TFLiteFormatError(f"{where} is a corrupt TFLite flatbuffer: {exc}") from exc

"""Write small TFLite flatbuffers from a plain description, for reader and codegen tests.

Built with the ``flatbuffers`` Builder and the ``tflite`` schema package's
table functions, so a test can describe exactly the (possibly hostile)
structure it needs: any shape, any index, any option value.

Example:
    >>> data = build_model(
    ...     tensors=[T((1, 4)), T((1, 4))],
    ...     ops=[Operator("RELU", [0], [1])], inputs=[0], outputs=[1])
    >>> data[4:8]
    b'TFL3'
"""

import importlib
from dataclasses import dataclass, field

import flatbuffers
import numpy as np
import tflite

FLOAT32, INT32 = 0, 2


@dataclass
class T:
    shape: tuple
    type: int = FLOAT32
    data: object = None  # ndarray or bytes: a constant
    name: str = ""


@dataclass
class Operator:
    code: object  # builtin name ("RELU") or custom code
    inputs: list
    outputs: list
    options: object = None  # ("Pool2DOptions", {"Padding": 1, "StrideW": 2, ...}) for builtins;
    # for a custom op, a dict written as its flexbuffer custom options (LCE's)
    custom: bool = False


@dataclass
class Sub:
    tensors: list
    ops: list
    inputs: list
    outputs: list
    extra: dict = field(default_factory=dict)


def _vec(b, start, values, add):
    start(b, len(values))
    for v in reversed(values):
        add(v)
    return b.EndVector()


def _options(b, kind, fields_):
    mod = importlib.import_module(f"tflite.{kind}")
    getattr(mod, f"{kind}Start")(b)
    for name, value in fields_.items():
        getattr(mod, f"{kind}Add{name}")(b, value)
    return getattr(mod, f"{kind}End")(b), getattr(tflite.BuiltinOptions, kind)


def _subgraph(b, sub, buffers, codes):
    tens = []
    for t in sub.tensors:
        name = b.CreateString(t.name or f"t{len(tens)}")
        shape = _vec(b, tflite.TensorStartShapeVector, list(t.shape), b.PrependInt32)
        buf = 0
        if t.data is not None:
            raw = t.data.tobytes() if isinstance(t.data, np.ndarray) else bytes(t.data)
            buffers.append(raw)
            buf = len(buffers) - 1
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        tflite.TensorAddType(b, t.type)
        tflite.TensorAddBuffer(b, buf)
        tflite.TensorAddName(b, name)
        tens.append(tflite.TensorEnd(b))
    ops = []
    for op in sub.ops:
        key = (op.code, op.custom)
        if key not in codes:
            codes[key] = len(codes)
        opt = custom_opts = None
        if op.options is not None and op.custom:
            from flatbuffers import flexbuffers
            custom_opts = b.CreateByteVector(bytes(flexbuffers.Dumps(op.options)))
        elif op.options is not None:
            opt = _options(b, *op.options)
        ins = _vec(b, tflite.OperatorStartInputsVector, list(op.inputs), b.PrependInt32)
        outs = _vec(b, tflite.OperatorStartOutputsVector, list(op.outputs), b.PrependInt32)
        tflite.OperatorStart(b)
        tflite.OperatorAddOpcodeIndex(b, codes[key])
        tflite.OperatorAddInputs(b, ins)
        tflite.OperatorAddOutputs(b, outs)
        if opt is not None:
            tflite.OperatorAddBuiltinOptionsType(b, opt[1])
            tflite.OperatorAddBuiltinOptions(b, opt[0])
        if custom_opts is not None:
            tflite.OperatorAddCustomOptions(b, custom_opts)
        ops.append(tflite.OperatorEnd(b))
    t_vec = _vec(b, tflite.SubGraphStartTensorsVector, tens, b.PrependUOffsetTRelative)
    o_vec = _vec(b, tflite.SubGraphStartOperatorsVector, ops, b.PrependUOffsetTRelative)
    i_vec = _vec(b, tflite.SubGraphStartInputsVector, list(sub.inputs), b.PrependInt32)
    out_vec = _vec(b, tflite.SubGraphStartOutputsVector, list(sub.outputs), b.PrependInt32)
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, t_vec)
    tflite.SubGraphAddOperators(b, o_vec)
    tflite.SubGraphAddInputs(b, i_vec)
    tflite.SubGraphAddOutputs(b, out_vec)
    return tflite.SubGraphEnd(b)


def build_model(tensors=None, ops=None, inputs=None, outputs=None, *, subgraphs=None) -> bytes:
    """A TFLite flatbuffer with one subgraph (or the :class:`Sub` list ``subgraphs``)."""
    if subgraphs is None:
        subgraphs = [Sub(tensors, ops, inputs, outputs)]
    b = flatbuffers.Builder(1024)
    buffers = [b""]  # buffer 0: the empty sentinel
    codes = {}
    subs = [_subgraph(b, s, buffers, codes) for s in subgraphs]
    code_offs = []
    for (code, custom), _ in sorted(codes.items(), key=lambda kv: kv[1]):
        cc = b.CreateString(code) if custom else None
        tflite.OperatorCodeStart(b)
        if custom:
            tflite.OperatorCodeAddCustomCode(b, cc)
            tflite.OperatorCodeAddBuiltinCode(b, tflite.BuiltinOperator.CUSTOM)
            tflite.OperatorCodeAddDeprecatedBuiltinCode(b, tflite.BuiltinOperator.CUSTOM)
        else:
            num = code if isinstance(code, int) else getattr(tflite.BuiltinOperator, code)
            tflite.OperatorCodeAddBuiltinCode(b, num)
            tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(num, 127))
        tflite.OperatorCodeAddVersion(b, 1)
        code_offs.append(tflite.OperatorCodeEnd(b))
    buf_offs = []
    for raw in buffers:
        data = b.CreateByteVector(raw) if raw else None
        tflite.BufferStart(b)
        if data is not None:
            tflite.BufferAddData(b, data)
        buf_offs.append(tflite.BufferEnd(b))
    s_vec = _vec(b, tflite.ModelStartSubgraphsVector, subs, b.PrependUOffsetTRelative)
    c_vec = _vec(b, tflite.ModelStartOperatorCodesVector, code_offs, b.PrependUOffsetTRelative)
    b_vec = _vec(b, tflite.ModelStartBuffersVector, buf_offs, b.PrependUOffsetTRelative)
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddSubgraphs(b, s_vec)
    tflite.ModelAddOperatorCodes(b, c_vec)
    tflite.ModelAddBuffers(b, b_vec)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def relu_model(shape=(1, 4, 4, 2)) -> bytes:
    """input -> RELU -> output, float32."""
    return build_model([T(shape, name="x"), T(shape, name="y")], [Operator("RELU", [0], [1])], [0], [1])


def pool_model(in_shape=(1, 6, 6, 2), out_shape=(1, 3, 3, 2), **opts) -> bytes:
    """input -> MAX_POOL_2D (options given as Pool2DOptions fields) -> output."""
    fields_ = {"Padding": 1, "StrideW": 2, "StrideH": 2, "FilterWidth": 2, "FilterHeight": 2}
    fields_.update(opts)
    return build_model([T(in_shape, name="x"), T(out_shape, name="y")],
                       [Operator("MAX_POOL_2D", [0], [1], ("Pool2DOptions", fields_))], [0], [1])

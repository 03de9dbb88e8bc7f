"""A one-op TFLite model built in memory (no TensorFlow needed).

Used to measure the fixed cost of an engine's call path (e.g. the Python
binding around LCE's interpreter) with a model that does almost no work, and
by the tests as a real, tiny stock flatbuffer.

Example:
    >>> from edgebnn.graph import load_graph
    >>> g = load_graph(relu_model((1, 28, 28, 1)))
    >>> [op.type for op in g.ops]
    ['RELU']
"""

import flatbuffers


def _int_vector(builder, start_fn, values):
    start_fn(builder, len(values))
    for v in reversed(values):
        builder.PrependInt32(int(v))
    return builder.EndVector()


def relu_model(shape=(1, 1), *, description: str = "edgebnn one-op RELU model") -> bytes:
    """Return the bytes of a float32 model computing ``y = relu(x)``.

    Args:
        shape: the input (and output) shape, batch first.
        description: stored in the model's description field.

    Returns:
        A TFLite flatbuffer (file identifier ``TFL3``) with one RELU op,
        one input tensor and one output tensor.
    """
    import tflite

    b = flatbuffers.Builder(256)
    desc = b.CreateString(description)
    names = [b.CreateString("input"), b.CreateString("output")]

    tflite.BufferStart(b)
    empty = tflite.BufferEnd(b)  # buffer 0: the empty sentinel every model has
    tflite.ModelStartBuffersVector(b, 1)
    b.PrependUOffsetTRelative(empty)
    buffers = b.EndVector()

    tensors = []
    for name in names:
        dims = _int_vector(b, tflite.TensorStartShapeVector, shape)
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, dims)
        tflite.TensorAddType(b, tflite.TensorType.FLOAT32)
        tflite.TensorAddBuffer(b, 0)
        tflite.TensorAddName(b, name)
        tensors.append(tflite.TensorEnd(b))
    tflite.SubGraphStartTensorsVector(b, len(tensors))
    for t in reversed(tensors):
        b.PrependUOffsetTRelative(t)
    tensor_vec = b.EndVector()

    op_in = _int_vector(b, tflite.OperatorStartInputsVector, [0])
    op_out = _int_vector(b, tflite.OperatorStartOutputsVector, [1])
    tflite.OperatorStart(b)
    tflite.OperatorAddOpcodeIndex(b, 0)
    tflite.OperatorAddInputs(b, op_in)
    tflite.OperatorAddOutputs(b, op_out)
    op = tflite.OperatorEnd(b)
    tflite.SubGraphStartOperatorsVector(b, 1)
    b.PrependUOffsetTRelative(op)
    ops = b.EndVector()

    sg_in = _int_vector(b, tflite.SubGraphStartInputsVector, [0])
    sg_out = _int_vector(b, tflite.SubGraphStartOutputsVector, [1])
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tensor_vec)
    tflite.SubGraphAddInputs(b, sg_in)
    tflite.SubGraphAddOutputs(b, sg_out)
    tflite.SubGraphAddOperators(b, ops)
    subgraph = tflite.SubGraphEnd(b)
    tflite.ModelStartSubgraphsVector(b, 1)
    b.PrependUOffsetTRelative(subgraph)
    subgraphs = b.EndVector()

    tflite.OperatorCodeStart(b)
    tflite.OperatorCodeAddDeprecatedBuiltinCode(b, tflite.BuiltinOperator.RELU)
    tflite.OperatorCodeAddBuiltinCode(b, tflite.BuiltinOperator.RELU)
    tflite.OperatorCodeAddVersion(b, 1)
    code = tflite.OperatorCodeEnd(b)
    tflite.ModelStartOperatorCodesVector(b, 1)
    b.PrependUOffsetTRelative(code)
    codes = b.EndVector()

    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, codes)
    tflite.ModelAddSubgraphs(b, subgraphs)
    tflite.ModelAddDescription(b, desc)
    tflite.ModelAddBuffers(b, buffers)
    model = tflite.ModelEnd(b)
    b.Finish(model, file_identifier=b"TFL3")
    return bytes(b.Output())

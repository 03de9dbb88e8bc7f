"""Run a .tflite model on a batch of inputs with a Python interpreter.

LCE models (custom ops ``Lce*``) run in larq-compute-engine's interpreter;
stock float32/int8 models run in whichever stock TFLite runtime is
installed (ai-edge-litert, tflite-runtime, or tensorflow.lite). This is the
oracle that ``verify``, the C engine's tests and the firmware's expected
predictions are checked against.

Example:
    >>> probs = predict_tflite("model.tflite", x_test[:100])  # doctest: +SKIP
    >>> probs.shape  # doctest: +SKIP
    (100, 10)
"""

import importlib
from pathlib import Path

import numpy as np

from edgebnn.errors import EngineError, MissingDependencyError
from edgebnn.graph import load_graph

STOCK_RUNTIMES = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter", "tensorflow.lite")


def _read(model) -> bytes:
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model)
    return Path(model).read_bytes()


def stock_interpreter_class():
    """Return the first importable stock TFLite ``Interpreter`` class.

    Raises:
        MissingDependencyError: none of ai-edge-litert, tflite-runtime or
            tensorflow is installed.
    """
    for name in STOCK_RUNTIMES:
        try:
            if name == "tensorflow.lite":
                from edgebnn._tf import import_tf

                tf = import_tf()[0]
                return tf.lite.Interpreter
            return importlib.import_module(name).Interpreter
        except (ImportError, MissingDependencyError):
            continue
    raise MissingDependencyError(
        "no stock TFLite runtime is installed; install one of: ai-edge-litert, "
        "tflite-runtime, tensorflow"
    )


def _quantize_input(x, detail):
    scale, zero = detail.get("quantization", (0.0, 0))
    if detail["dtype"] in (np.int8, np.uint8) and scale:
        info = np.iinfo(detail["dtype"])
        return np.clip(np.round(x / scale + zero), info.min, info.max).astype(detail["dtype"])
    return x.astype(detail["dtype"])


def _dequantize_output(y, detail):
    scale, zero = detail.get("quantization", (0.0, 0))
    if detail["dtype"] in (np.int8, np.uint8) and scale:
        return (y.astype(np.float32) - zero) * scale
    return y.astype(np.float32)


def _graph_detail(graph, index):
    """An interpreter-style ``{"dtype", "quantization"}`` of a flatbuffer tensor
    (LCE's interpreter takes and returns arrays without such details)."""
    t = graph.tensor(index)
    q = t.quantization
    scale = float(q.scale[0]) if q is not None and q.scale is not None and len(q.scale) == 1 else 0.0
    zero = int(q.zero_point[0]) if scale and q.zero_point is not None and len(q.zero_point) else 0
    return {"dtype": np.dtype(t.dtype).type, "quantization": (scale, zero)}


def predict_tflite(model, x, *, num_threads: int = 1, batch_size: int = 256) -> np.ndarray:
    """Return the model's float outputs for the float inputs ``x``.

    Args:
        model: path to a .tflite file, or its bytes.
        x: inputs, shape ``(N, *input_shape)``; raw values (e.g. pixels 0-255).
        num_threads: interpreter threads.
        batch_size: images per interpreter call (LCE) or per loop (stock).

    Returns:
        ``float32`` array ``(N, *output_shape)``; int8 outputs are dequantized.

    Raises:
        EngineError: the input shape does not match the model's.
        MissingDependencyError: no interpreter that can run this model.
    """
    data = _read(model)
    graph = load_graph(data, name=None if isinstance(model, (bytes, bytearray, memoryview)) else str(model))
    in_shape = graph.tensor(graph.inputs[0]).shape
    x = np.asarray(x, dtype=np.float32)
    if tuple(x.shape[1:]) != tuple(in_shape[1:]):
        raise EngineError(
            f"input shape {tuple(x.shape[1:])} does not match the model's input "
            f"{tuple(in_shape[1:])}"
        )
    if graph.is_lce():
        from edgebnn._tf import import_lce

        import_lce()
        from larq_compute_engine.tflite.python.interpreter import Interpreter

        interp = Interpreter(data, num_threads=num_threads)
        in_detail = _graph_detail(graph, graph.inputs[0])
        out_detail = _graph_detail(graph, graph.outputs[0])
        outs = [_dequantize_output(interp.predict(_quantize_input(x[i : i + batch_size], in_detail)), out_detail)
                for i in range(0, len(x), batch_size)]
        return np.concatenate(outs).astype(np.float32)

    cls = stock_interpreter_class()
    interp = cls(model_content=data, num_threads=num_threads)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    results = []
    for i in range(len(x)):
        interp.set_tensor(inp["index"], _quantize_input(x[i : i + 1], inp))
        interp.invoke()
        results.append(_dequantize_output(interp.get_tensor(out["index"]), out))
    return np.concatenate(results)

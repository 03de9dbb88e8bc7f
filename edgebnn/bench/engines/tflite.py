"""The ``tflite`` engine: stock TFLite through its Python interpreter.

The first installed of ai-edge-litert, tflite-runtime and tensorflow.lite
(the first two have aarch64 wheels, so this engine works on a Raspberry Pi
without TensorFlow). The interpreter is created with its default op resolver,
which applies the XNNPACK delegate to float32 and int8 graphs in TF 2.16 and
LiteRT; whether it applied is read back from the graph (a ``DELEGATE`` node)
and reported. Only ``invoke()`` is timed; setting the input is not.
"""

import importlib.util
from importlib import metadata
from pathlib import Path

import numpy as np

from edgebnn.bench.engines import (
    Engine,
    Measurement,
    Session,
    check_sizes,
    refuse_custom_ops,
    register_engine,
    timed_loop,
)
from edgebnn.errors import MissingDependencyError

# module to import -> distribution that provides it
RUNTIMES = (
    ("ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "tflite-runtime"),
    ("tensorflow.lite", "tensorflow"),
)


def _find(module: str) -> bool:
    top = module.split(".")[0]
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def installed_runtime():
    """``(module, distribution)`` of the first installed stock runtime, or None."""
    for module, dist in RUNTIMES:
        if _find(module):
            return module, dist
    return None


def _dist_version(dist):
    for name in (dist, dist + "-cpu") if dist == "tensorflow" else (dist,):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


class TFLiteSession(Session):
    def __init__(self, interp, runtime, dist):
        self.interp = interp
        self.runtime = runtime
        self.dist = dist
        self._in = interp.get_input_details()[0]
        self._out = interp.get_output_details()[0]
        self.xnnpack = self._delegate_state()
        self.timed = (
            f"Interpreter.invoke() of {runtime} for one image (setting the input tensor is not timed)"
        )

    def _delegate_state(self) -> str:
        try:
            names = [d.get("op_name") for d in self.interp._get_ops_details()]
        except Exception:  # a private API; absent from some runtimes
            return "unknown"
        return "applied" if "DELEGATE" in names else "not applied"

    def info(self) -> dict:
        return {
            "runtime": self.runtime,
            "runtime_version": _dist_version(self.dist),
            "xnnpack": self.xnnpack,
            "input_dtype": np.dtype(self._in["dtype"]).name,
        }

    def measure(self, x, warmup, runs) -> Measurement:
        from edgebnn.predict import _dequantize_output, _quantize_input

        xin = _quantize_input(x, self._in)
        index = self._in["index"]
        interp = self.interp
        times = timed_loop(lambda: interp.set_tensor(index, xin), interp.invoke, warmup, runs)
        out = _dequantize_output(interp.get_tensor(self._out["index"]), self._out)
        return Measurement(times_ns=times, output=out)


@register_engine("tflite")
class TFLiteEngine(Engine):
    summary = "stock TFLite (ai-edge-litert, tflite-runtime or tensorflow.lite), XNNPACK; times invoke()"
    python_packages = True

    @property
    def needs_tensorflow(self):
        found = installed_runtime()
        return found is not None and found[1] == "tensorflow"

    def is_available(self):
        found = installed_runtime()
        if found is None:
            return False, (
                "no stock TFLite runtime is installed; pip install ai-edge-litert "
                "(or tflite-runtime, or tensorflow)"
            )
        module, dist = found
        return True, f"{module} ({dist} {_dist_version(dist) or '?'})"

    def can_run(self, graph):
        return refuse_custom_ops(graph, "tflite")

    def version(self):
        found = installed_runtime()
        return {found[1]: _dist_version(found[1])} if found else {}

    def open(self, model_path, graph, *, threads, workdir):
        check_sizes(graph, model_path)  # before the engine allocates anything
        from edgebnn.predict import stock_interpreter_class

        found = installed_runtime()
        if found is None:
            raise MissingDependencyError(self.is_available()[1])
        cls = stock_interpreter_class()
        interp = cls(model_content=Path(model_path).read_bytes(), num_threads=threads)
        interp.allocate_tensors()
        module = cls.__module__
        dist = next((d for m, d in RUNTIMES if module.startswith(m.split(".")[0])), found[1])
        return TFLiteSession(interp, module.split(".")[0] if dist != "tensorflow" else "tensorflow.lite", dist)

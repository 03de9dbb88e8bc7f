"""The ``lce`` engine: larq-compute-engine's Python interpreter.

LCE 0.16's Python binding (``LiteInterpreter``) exposes only ``predict``: no
separate set-input, invoke and get-output (its attributes are the input and
output types, shapes, scales and zero points, and ``predict``). So this
engine times one ``predict([x])`` call on a batch of one image, which covers
copying the input in, ``Invoke()``, and copying the output out through
pybind11. The fixed part of that cost is measured once per session with a
one-op RELU model of the same input shape and reported as
``call_overhead_us`` (not subtracted). LCE runs its reference x86 kernels on
x86_64; its wheels exist for Linux x86_64, macOS and Windows only.
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
from edgebnn.graph import LCE_CUSTOM_OPS

OVERHEAD_RUNS = 300


def _version():
    try:
        return metadata.version("larq-compute-engine")
    except metadata.PackageNotFoundError:
        return None


class LCESession(Session):
    timed = (
        "one LiteInterpreter.predict([x]) call for one image (LCE 0.16's Python API has no separate "
        "invoke(): input copy + Invoke() + output copy; see call_overhead_us for the fixed part)"
    )

    def __init__(self, interp, raw, threads, overhead_us):
        self.interp = interp
        self.raw = raw
        self.threads = threads
        self.call_overhead_us = overhead_us

    def info(self):
        return {
            "runtime": "larq_compute_engine.tflite.python.interpreter",
            "runtime_version": _version(),
            "use_xnnpack": False,
            "call_overhead_us": self.call_overhead_us,
        }

    def measure(self, x, warmup, runs):
        dtype = np.dtype(self.interp.input_types[0])
        scale = self.interp.input_scales[0]
        if dtype.kind in "iu" and scale:  # quantized input: map the float image onto it
            info = np.iinfo(dtype)
            q = np.round(x / scale + (self.interp.input_zero_points[0] or 0))
            xin = [np.ascontiguousarray(np.clip(q, info.min, info.max).astype(dtype))]
        else:
            xin = [np.ascontiguousarray(x, dtype=dtype)]
        raw = self.raw
        result = {}

        def call():
            result["y"] = raw.predict(xin)

        times = timed_loop(lambda: None, call, warmup, runs)
        return Measurement(times_ns=times, output=np.asarray(result["y"][0], dtype=np.float32))


@register_engine("lce")
class LCEEngine(Engine):
    summary = "larq-compute-engine's Python interpreter (x86_64/macOS wheels); times predict() on one image"
    needs_tensorflow = True
    python_packages = True

    def is_available(self):
        missing = [m for m in ("larq_compute_engine", "tensorflow") if importlib.util.find_spec(m) is None]
        if missing:
            return False, (
                f"Python package(s) {', '.join(missing)} not installed; pip install "
                '"edgebnn[train]" (larq-compute-engine has wheels for Linux x86_64, macOS and '
                "Windows only; on a Raspberry Pi use --engine c or lce-binary)"
            )
        return True, f"larq-compute-engine {_version() or '?'}"

    def can_run(self, graph):
        return refuse_custom_ops(graph, "lce", supported=LCE_CUSTOM_OPS)

    def version(self):
        return {"larq-compute-engine": _version()}

    def open(self, model_path, graph, *, threads, workdir):
        check_sizes(graph, model_path)  # before the engine allocates anything
        from edgebnn._tf import import_lce

        import_lce()
        from larq_compute_engine.tflite.python.interpreter import Interpreter

        interp = Interpreter(Path(model_path).read_bytes(), num_threads=threads)
        raw = interp.interpreter
        shape = tuple(interp.input_shapes[0])
        return LCESession(interp, raw, threads, self._overhead(Interpreter, shape, threads))

    @staticmethod
    def _overhead(Interpreter, shape, threads):
        """Median time of predict() on a one-RELU model with the same input shape, in us."""
        from edgebnn.bench.tiny import relu_model

        try:
            tiny = Interpreter(relu_model(tuple(int(d) for d in shape)), num_threads=threads).interpreter
        except Exception:  # an input shape the tiny model cannot take: report unknown
            return None
        x = [np.zeros(shape, dtype=np.float32)]
        times = timed_loop(lambda: None, lambda: tiny.predict(x), 30, OVERHEAD_RUNS)
        return float(np.median(times)) / 1000.0

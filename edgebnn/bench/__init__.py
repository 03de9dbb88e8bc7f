"""Measure converted models: latency, size and memory, on several engines.

``run_benchmark`` times single-image inference of a .tflite (or a RUN_DIR or
a shipped model name) on one of the registered engines (``lce``,
``tflite``, ``lce-binary``, ``c``), optionally against a second model in the
same run, and returns a :class:`BenchResult`. Nothing here imports
TensorFlow unless the chosen engine needs it (``lce``, or ``tflite`` when
tensorflow.lite is the only stock runtime installed).

Example:
    >>> from edgebnn.bench import run_benchmark
    >>> r = run_benchmark("mnist-bcnn-binary", engine="lce", runs=100,
    ...                   against="mnist-bcnn-float", against_engine="tflite")  # doctest: +SKIP
    >>> r.to_dict()["ratio"]  # doctest: +SKIP
    2.87
"""

from edgebnn.bench.engines import Engine, Session, engine_names, get_engine, register_engine
from edgebnn.bench.result import BenchResult, ModelBench
from edgebnn.bench.runner import (
    DEFAULT_RUNS,
    DEFAULT_WARMUP,
    choose_engine,
    list_engine_status,
    make_input,
    resolve_tflite,
    run_benchmark,
)
from edgebnn.bench.stats import LatencyStats, latency_stats

__all__ = [
    "BenchResult",
    "DEFAULT_RUNS",
    "DEFAULT_WARMUP",
    "Engine",
    "LatencyStats",
    "ModelBench",
    "Session",
    "choose_engine",
    "engine_names",
    "get_engine",
    "latency_stats",
    "list_engine_status",
    "make_input",
    "register_engine",
    "resolve_tflite",
    "run_benchmark",
]

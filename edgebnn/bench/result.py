"""The values :func:`edgebnn.bench.run_benchmark` returns."""

from dataclasses import dataclass, field
from typing import Optional

from edgebnn.bench.stats import LatencyStats


@dataclass(frozen=True)
class ModelBench:
    """The measurement of one model on one engine.

    Attributes:
        role: ``"model"`` (MODEL) or ``"against"`` (``--against OTHER``).
        model: the MODEL argument as given (path, run directory or name).
        path: the .tflite file measured.
        sha256: the file's SHA-256.
        model_bytes: the file's size.
        is_lce: True when the model holds LCE custom ops.
        custom_ops: the custom ops in the model.
        input_shape: the input tensor's shape.
        engine: the engine name.
        engine_choice: ``"--engine"``/``"--against-engine"`` when given, else
            why it was chosen automatically.
        engine_info: engine-specific facts (runtime and version, XNNPACK,
            call overhead, binary path...).
        timed: exactly what one timed run covers.
        emulated: True when the runs executed under an emulator.
        threads: the thread count asked for.
        warmup: untimed runs before the first timed one.
        latency_us: per-inference statistics in microseconds.
        peak_rss_bytes: peak resident memory of the measuring process.
        rss_scope: which process ``peak_rss_bytes`` belongs to.
        arena_bytes: tensor arena reported by the engine (C engine), or None.
        weights_bytes: constant data reported by the engine, or None.
        output_argmax: index of the largest output of the last run (a
            sanity check that the model computed something), or None.
    """

    role: str
    model: str
    path: str
    sha256: str
    model_bytes: int
    is_lce: bool
    custom_ops: tuple
    input_shape: tuple
    engine: str
    engine_choice: str
    engine_info: dict
    timed: str
    emulated: bool
    threads: int
    warmup: int
    latency_us: LatencyStats
    peak_rss_bytes: Optional[int]
    rss_scope: str
    arena_bytes: Optional[int] = None
    weights_bytes: Optional[int] = None
    output_argmax: Optional[int] = None

    @property
    def images_per_s(self) -> Optional[float]:
        return self.latency_us.images_per_s

    def to_dict(self) -> dict:
        return {
            "role": self.role,
            "model": self.model,
            "path": self.path,
            "sha256": self.sha256,
            "model_bytes": self.model_bytes,
            "is_lce": self.is_lce,
            "custom_ops": list(self.custom_ops),
            "input_shape": list(self.input_shape),
            "engine": self.engine,
            "engine_choice": self.engine_choice,
            "engine_info": dict(self.engine_info),
            "timed": self.timed,
            "emulated": self.emulated,
            "threads": self.threads,
            "warmup": self.warmup,
            "runs": self.latency_us.runs,
            "latency_us": self.latency_us.to_dict(),
            "images_per_s": self.images_per_s,
            "peak_rss_bytes": self.peak_rss_bytes,
            "rss_scope": self.rss_scope,
            "arena_bytes": self.arena_bytes,
            "weights_bytes": self.weights_bytes,
            "output_argmax": self.output_argmax,
        }


@dataclass(frozen=True)
class BenchResult:
    """One ``edgebnn bench`` run: MODEL and, with ``against``, a second model.

    The top level of :meth:`to_dict` repeats MODEL's figures (``engine``,
    ``threads``, ``runs``, ``latency_us``, ``model_bytes``...) so a script can
    read them without walking ``models``; ``ratio`` is MODEL's median latency
    over OTHER's (``ratio_basis`` says "mean" when an engine reports no
    median).

    Example:
        >>> r = run_benchmark("mnist-bcnn-binary", engine="lce", runs=50)  # doctest: +SKIP
        >>> r.primary.latency_us.median  # doctest: +SKIP
        281.4
    """

    models: tuple
    host: dict
    threads: int
    warmup: int
    runs: int
    input: dict
    alternation: Optional[dict] = None
    ratio: Optional[float] = None
    ratio_basis: Optional[str] = None
    edgebnn_version: str = ""
    notes: tuple = field(default=())

    @property
    def primary(self) -> ModelBench:
        return self.models[0]

    @property
    def against(self) -> Optional[ModelBench]:
        return self.models[1] if len(self.models) > 1 else None

    def to_dict(self) -> dict:
        p = self.primary
        out = {
            "engine": p.engine,
            "threads": self.threads,
            "warmup": self.warmup,
            "runs": p.latency_us.runs,
            "latency_us": p.latency_us.to_dict(),
            "images_per_s": p.images_per_s,
            "model": p.model,
            "model_bytes": p.model_bytes,
            "peak_rss_bytes": p.peak_rss_bytes,
            "arena_bytes": p.arena_bytes,
            "timed": p.timed,
            "emulated": p.emulated,
            "host": dict(self.host),
            "input": dict(self.input),
            "models": [m.to_dict() for m in self.models],
            "edgebnn_version": self.edgebnn_version,
            "notes": list(self.notes),
        }
        if self.against is not None:
            out["against"] = self.against.to_dict()
            out["ratio"] = self.ratio
            out["ratio_basis"] = self.ratio_basis
            out["alternation"] = dict(self.alternation or {})
        return out

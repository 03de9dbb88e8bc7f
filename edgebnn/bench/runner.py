"""Run a benchmark: resolve the model, pick the engine, time, summarize."""

import resource
import tempfile
from pathlib import Path

import numpy as np

from edgebnn import __version__
from edgebnn.bench.engines import (  # noqa: F401 - the limits are part of this module's API
    LCE_CAPABLE,
    MAX_ACTIVATION_BYTES,
    MAX_INPUT_ELEMENTS,
    check_sizes,
    get_engine,
)
from edgebnn.bench.host import host_info
from edgebnn.bench.result import BenchResult, ModelBench
from edgebnn.bench.stats import combine_aggregates, latency_stats, ratio_of
from edgebnn.errors import EngineError, MissingDependencyError
from edgebnn.graph import load_graph

DEFAULT_WARMUP = 20
DEFAULT_RUNS = 200
#: The largest --runs and --warmup: what the C benchmark program accepts
#: (firmware/templates/host/bench_main.c, parse_count), for every engine alike.
MAX_RUNS = 100_000_000
MAX_WARMUP = 100_000_000
#: With --against, runs are split into this many chunks per model, alternating A and B.
ALTERNATION_CHUNKS = 10


def resolve_tflite(model) -> str:
    """The .tflite file for a MODEL argument (file, RUN_DIR or shipped model name).

    Raises:
        ModelError: nothing by that name, a Keras model that was never
            converted, or a run directory without ``model.tflite``
            (:meth:`edgebnn.modelref.ModelRef.require_tflite`).
    """
    from edgebnn.modelref import ModelRef

    return ModelRef.resolve(model).require_tflite("bench")


def _availability_error(engine, reason, hint="") -> Exception:
    cls = MissingDependencyError if engine.python_packages else EngineError
    return cls(f"engine '{engine.name}' is not available here: {reason}" + (f"; {hint}" if hint else ""))


def choose_engine(graph, *, lce_binary=None, target=None) -> tuple:
    """Pick an engine for ``graph`` when none was given: ``(name, reason)``.

    An LCE model goes to ``lce`` when larq-compute-engine is installed, else
    to ``c``, else to ``lce-binary`` when the program is found; a stock model
    goes to ``tflite`` (then ``lce``, ``c``). With a ``target``, only ``c``
    can run it.

    Raises:
        EngineError: no installed engine can run the model; the message says
            what each candidate lacks.
    """
    opts = {"lce_binary": lce_binary, "target": target}
    if target is not None:
        order = ("c",)
    elif graph.is_lce():
        order = ("lce", "c", "lce-binary")
    else:
        order = ("tflite", "lce", "c")
    missing = []
    for name in order:
        eng = get_engine(name, **opts)
        ok, why = eng.is_available()
        if not ok:
            hint = eng.install_hint()
            missing.append(f"{name}: {why}" + (f" ({hint})" if hint else ""))
            continue
        can, why_not = eng.can_run(graph)
        if not can:
            missing.append(f"{name}: {why_not}")
            continue
        kind = "LCE model" if graph.is_lce() else "stock model"
        if target is not None:
            kind = f"target {target.name}"
        return name, f"{kind}; {name} is the first available of {', '.join(order)} ({why})"
    what = f"LCE model (custom ops {', '.join(graph.custom_ops())})" if graph.is_lce() else "model"
    raise EngineError(f"no installed engine can run this {what}:\n  " + "\n  ".join(missing))


def list_engine_status(*, lce_binary=None, target=None) -> list:
    """``[{"engine", "available", "detail", "summary"}]`` for every registered engine."""
    from edgebnn.bench.engines import engine_names

    rows = []
    for name in engine_names():
        eng = get_engine(name, lce_binary=lce_binary, target=target)
        ok, why = eng.is_available()
        rows.append({"engine": name, "available": ok, "detail": why, "summary": eng.summary})
    return rows


def check_counts(runs: int, warmup: int) -> None:
    """Check ``runs`` (1..:data:`MAX_RUNS`) and ``warmup`` (0..:data:`MAX_WARMUP`).

    Raises:
        EngineError: naming the value and the range.
    """
    if not 1 <= runs <= MAX_RUNS:
        raise EngineError(f"runs must be in 1..{MAX_RUNS:,} (what the C benchmark program accepts), got {runs}")
    if not 0 <= warmup <= MAX_WARMUP:
        raise EngineError(f"warmup must be in 0..{MAX_WARMUP:,} (what the C benchmark program accepts), "
                          f"got {warmup}")


def make_input(graph, seed: int) -> np.ndarray:
    """The seeded image every timed run uses, shape of the model's input, batch 1.

    Float inputs get integers 0..255 (raw pixels, what the zoo models take);
    int8/uint8 inputs get values that quantize onto the whole integer range.
    """
    t = graph.tensor(graph.inputs[0])
    shape = tuple(int(d) if int(d) > 0 else 1 for d in t.shape) or (1,)
    shape = (1,) + shape[1:]
    rng = np.random.default_rng(seed)
    if t.dtype in ("int8", "uint8") and t.quantization is not None:
        info = np.iinfo(t.dtype)
        q = rng.integers(info.min, int(info.max) + 1, size=shape)
        scale, zero = t.quantization.scale[0], t.quantization.zero_point[0]
        return ((q - zero) * scale).astype(np.float32)
    return rng.integers(0, 256, size=shape).astype(np.float32)


def _chunks(runs: int, n: int) -> list:
    n = max(1, min(n, runs))
    base, extra = divmod(runs, n)
    return [base + (1 if i < extra else 0) for i in range(n)]


class _Side:
    """One model being measured: its graph, engine, session and measurements."""

    def __init__(self, role, model, engine_name, choice, *, lce_binary, target, threads,
                 path=None, graph=None):
        self.role, self.model = role, model
        self.path = path or resolve_tflite(model)
        self.graph = graph or load_graph(self.path)
        check_sizes(self.graph, self.path)
        self.engine_name, self.choice = engine_name, choice
        self.engine = get_engine(engine_name, lce_binary=lce_binary, target=target)
        self.threads = threads
        self.session = None
        self.measurements = []

    def check(self):
        ok, why = self.engine.is_available()
        if not ok:
            raise _availability_error(self.engine, why, self.engine.install_hint())
        can, why_not = self.engine.can_run(self.graph)
        if not can:
            raise EngineError(f"{self.path}: {why_not}")

    def result(self, warmup) -> ModelBench:
        s = self.session
        ms = self.measurements
        if all(m.times_ns is not None for m in ms):
            lat = latency_stats([t for m in ms for t in m.times_ns])
        else:
            lat = combine_aggregates([m.aggregate if m.aggregate is not None else latency_stats(m.times_ns)
                                      for m in ms])
        if s.in_process:
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            scope = "this Python process (peak so far; includes the runtime and any imported TensorFlow)"
        else:
            vals = [m.peak_rss_bytes for m in ms if m.peak_rss_bytes]
            rss = max(vals) if vals else None
            scope = ("the emulator process running the benchmark program" if s.emulated
                     else "the benchmark program's process") + " (its VmHWM, sampled while it runs)"
        out = ms[-1].output
        argmax = int(np.argmax(out)) if out is not None and np.size(out) else None
        info = dict(s.info())
        extra = {k: v for m in ms for k, v in m.extra.items()}
        info.update(extra)
        return ModelBench(
            role=self.role,
            model=str(self.model),
            path=str(self.path),
            sha256=self.graph.sha256,
            model_bytes=self.graph.size,
            is_lce=self.graph.is_lce(),
            custom_ops=tuple(self.graph.custom_ops()),
            input_shape=tuple(self.graph.tensor(self.graph.inputs[0]).shape),
            engine=self.engine_name,
            engine_choice=self.choice,
            engine_info=info,
            timed=s.timed,
            emulated=bool(s.emulated),
            threads=self.threads,
            warmup=warmup,
            latency_us=lat,
            peak_rss_bytes=rss,
            rss_scope=scope,
            arena_bytes=s.arena_bytes,
            weights_bytes=s.weights_bytes,
            output_argmax=argmax,
        )


def run_benchmark(
    model,
    *,
    engine=None,
    threads: int = 1,
    warmup: int = DEFAULT_WARMUP,
    runs: int = DEFAULT_RUNS,
    against=None,
    against_engine=None,
    target=None,
    lce_binary=None,
    seed: int = 0,
    progress=None,
) -> BenchResult:
    """Time single-image inference of a converted model on one engine.

    Every timed run feeds the same seeded image (batch 1) and times one
    inference as the engine's session defines it (``ModelBench.timed`` says
    exactly what); ``warmup`` untimed runs come first. With ``against``, the
    second model is measured in the same process, alternating MODEL and
    OTHER in :data:`ALTERNATION_CHUNKS` chunks so machine drift hits both,
    and ``ratio`` is MODEL's median over OTHER's.

    Example:
        >>> r = run_benchmark("bnn.tflite", engine="lce", runs=100,
        ...                   against="float.tflite", against_engine="tflite")  # doctest: +SKIP
        >>> round(r.ratio, 2)  # doctest: +SKIP
        2.9

    Args:
        model: a .tflite file, a RUN_DIR or a shipped model name.
        engine: an engine name (see :func:`list_engine_status`); None chooses
            one (:func:`choose_engine`).
        threads: interpreter threads.
        warmup: untimed runs before timing (per model).
        runs: timed runs (per model).
        against: a second model to measure in the same run.
        against_engine: its engine; None uses MODEL's engine.
        target: a target name or :class:`edgebnn.targets.Target` (``c``
            engine only; an emulator target gives emulated timings).
        lce_binary: path of ``lce_benchmark_model``.
        seed: seed of the input image.
        progress: optional callable receiving one-line status messages.

    Returns:
        :class:`BenchResult`.

    Raises:
        ModelError: the model cannot be found or resolved to a .tflite.
        TFLiteFormatError: the file is not a TFLite flatbuffer.
        ModelError: also when the model declares sizes beyond
            :data:`MAX_INPUT_ELEMENTS` or :data:`MAX_ACTIVATION_BYTES`.
        EngineError: the engine is unknown, cannot run the model, or failed;
            ``runs``/``warmup`` out of range.
        MissingDependencyError: the engine's Python package is not installed.
        TargetError: an unknown target.
    """
    say = progress or (lambda msg: None)
    if threads < 1:
        raise EngineError(f"threads must be >= 1, got {threads}")
    check_counts(runs, warmup)
    if target is not None:
        from edgebnn.targets import load_target

        target = load_target(target)
        for name in (engine, against_engine):
            if name is not None and not get_engine(name).supports_target:
                raise EngineError(
                    f"--target {target.name} applies to the c engine only; '{name}' runs on this machine"
                )
    opts = dict(lce_binary=lce_binary, target=target, threads=threads)

    path_a = resolve_tflite(model)
    graph_a = load_graph(path_a)
    check_sizes(graph_a, path_a)
    if engine is None:
        engine, why = choose_engine(graph_a, lce_binary=lce_binary, target=target)
        choice = f"automatic: {why}"
        say(f"engine: {engine} ({why})")
    else:
        choice = "--engine"
    sides = [_Side("model", model, engine, choice, path=path_a, graph=graph_a, **opts)]
    if against is not None:
        b_engine = against_engine or engine
        b_choice = "--against-engine" if against_engine else f"same as MODEL ({engine})"
        sides.append(_Side("against", against, b_engine, b_choice, **opts))
    for side in sides:
        side.check()

    inputs = [make_input(s.graph, seed) for s in sides]
    notes = []
    if len(sides) == 2 and inputs[0].shape == inputs[1].shape:
        inputs[1] = inputs[0]
    elif len(sides) == 2:
        notes.append("MODEL and OTHER have different input shapes; each got its own seeded image")

    with tempfile.TemporaryDirectory(prefix="edgebnn-bench-") as workdir:
        try:
            for i, side in enumerate(sides):
                say(f"loading {side.path} into {side.engine_name}")
                wd = Path(workdir) / f"m{i}"
                wd.mkdir()
                side.session = side.engine.open(side.path, side.graph, threads=threads, workdir=str(wd))
            plan = _chunks(runs, ALTERNATION_CHUNKS if len(sides) == 2 else 1)
            say(f"timing {runs} run(s) after {warmup} warm-up(s)"
                + (f", alternating models in {len(plan)} chunks" if len(sides) == 2 else ""))
            for k, n in enumerate(plan):
                for side, x in zip(sides, inputs):
                    w = warmup if k == 0 else side.session.chunk_warmup
                    side.measurements.append(side.session.measure(x, w, n))
            results = tuple(side.result(warmup) for side in sides)
        finally:
            for side in sides:
                if side.session is not None:
                    side.session.close()

    ratio = basis = None
    alternation = None
    if len(results) == 2:
        ratio, basis = ratio_of(results[0].latency_us, results[1].latency_us)
        alternation = {"chunks": len(plan), "runs_per_chunk": plan, "order": "MODEL, OTHER, MODEL, ..."}
        if results[0].emulated != results[1].emulated:
            notes.append("one model ran under an emulator and the other natively: the ratio is not meaningful")
    if any(r.emulated for r in results):
        notes.append("emulated timings: correctness check only, they say nothing about the real board")
    return BenchResult(
        models=results,
        host=host_info(),
        threads=threads,
        warmup=warmup,
        runs=runs,
        input={"seed": seed, "batch": 1,
               "values": "integers 0..255 as float32 (raw pixels) for float inputs; "
                         "the full integer range for int8/uint8 inputs"},
        alternation=alternation,
        ratio=ratio,
        ratio_basis=basis,
        edgebnn_version=__version__,
        notes=tuple(notes),
    )

"""Inference engines that ``edgebnn bench`` can time, in a local registry.

An engine is a class registered with :func:`register_engine`. It says whether
it is installed here (:meth:`Engine.is_available`), whether it can run a
given model (:meth:`Engine.can_run`), and opens a :class:`Session` that loads
the model once and then times runs of it (:meth:`Session.measure`). Engine
modules import their runtimes (TensorFlow, LCE, a compiler) only inside
``open``, so listing engines or checking them never imports TensorFlow.

Example:
    >>> from edgebnn.bench.engines import engine_names, get_engine
    >>> engine_names()
    ['c', 'lce', 'lce-binary', 'tflite']
    >>> ok, reason = get_engine("tflite").is_available()  # doctest: +SKIP
"""

import gc
import importlib
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from edgebnn.errors import EngineError, ModelError

ENGINES = {}

#: The engines that run LCE's custom ops, for error messages.
LCE_CAPABLE = ("lce", "lce-binary", "c")


def register_engine(name: str):
    """Class decorator adding an :class:`Engine` subclass to the registry."""

    def deco(cls):
        if name in ENGINES:
            raise ValueError(f"engine '{name}' is registered twice")
        cls.name = name
        ENGINES[name] = cls
        return cls

    return deco


def engine_names() -> list:
    _load_builtin()
    return sorted(ENGINES)


def get_engine(name: str, **options) -> "Engine":
    """Instantiate the engine called ``name`` with its options.

    Options understood: ``lce_binary`` (path of lce_benchmark_model) and
    ``target`` (an :class:`edgebnn.targets.Target`, for the ``c`` engine).

    Raises:
        EngineError: no such engine; the message lists the known ones.
    """
    _load_builtin()
    if name not in ENGINES:
        raise EngineError(f"unknown engine '{name}'; known engines: {', '.join(sorted(ENGINES))}")
    return ENGINES[name](**options)


def _load_builtin():
    for mod in ("lce", "tflite", "lce_binary", "c"):
        importlib.import_module(f"edgebnn.bench.engines.{mod}")


@dataclass
class Measurement:
    """What one :meth:`Session.measure` call observed.

    ``times_ns`` holds one duration per timed run when the engine times runs
    one by one; engines that only report aggregates fill ``aggregate`` (a
    :class:`edgebnn.bench.stats.LatencyStats`) instead. ``peak_rss_bytes`` is
    the peak resident memory of a measuring child process, when there is one.
    """

    times_ns: Optional[list] = None
    aggregate: Optional[object] = None
    output: Optional[np.ndarray] = None
    peak_rss_bytes: Optional[int] = None
    extra: dict = field(default_factory=dict)


class Session:
    """A model loaded into an engine, ready to be timed.

    Attributes:
        timed: one sentence saying exactly what the reported time covers.
        emulated: True when the runs execute under an emulator (timings then
            say nothing about real hardware).
        in_process: True when the runs execute in this Python process (peak
            RSS is then this process's).
        arena_bytes: the tensor arena the engine reports, or None.
        weights_bytes: the constant data the engine reports, or None.
    """

    timed = ""
    emulated = False
    in_process = True
    arena_bytes = None
    weights_bytes = None
    #: Warm-up runs to repeat at the start of every later chunk (fresh processes need some).
    chunk_warmup = 0

    def info(self) -> dict:
        """Engine-specific facts (runtime, version, delegate...) for the report."""
        return {}

    def measure(self, x: np.ndarray, warmup: int, runs: int) -> Measurement:
        raise NotImplementedError

    def close(self) -> None:
        pass


class Engine:
    """Base class of the registered engines.

    Attributes:
        name: the registry key (set by :func:`register_engine`).
        summary: one line for ``edgebnn bench --list-engines``.
        needs_tensorflow: True when running it imports TensorFlow.
        supports_target: True when it can run a model built for a ``--target``.
        python_packages: True when what it lacks, if anything, are Python
            packages (its unavailability is then a MissingDependencyError).
    """

    name = ""
    summary = ""
    needs_tensorflow = False
    supports_target = False
    python_packages = False

    def __init__(self, *, lce_binary=None, target=None):
        self.lce_binary = lce_binary
        self.target = target

    def is_available(self) -> tuple:
        """``(True, description)`` or ``(False, what is missing and how to get it)``."""
        raise NotImplementedError

    def can_run(self, graph) -> tuple:
        """``(True, "")`` or ``(False, why this engine cannot run the model)``."""
        raise NotImplementedError

    def version(self) -> dict:
        return {}

    def install_hint(self) -> str:
        """What to do when :meth:`is_available` says no (appended to the error)."""
        return ""

    def open(self, model_path: str, graph, *, threads: int, workdir: str) -> Session:
        raise NotImplementedError


#: The largest model input bench builds (elements of one image, batch 1):
#: 64 Mi values, 256 MiB of float32; image models take well under 1 Mi.
MAX_INPUT_ELEMENTS = 1 << 26
#: The largest activation memory a benchmarked model may declare: the bytes
#: of all its non-constant tensors at batch 1, an upper bound of any arena.
MAX_ACTIVATION_BYTES = 1 << 30


def _elements(shape) -> int:
    n = 1
    for d in tuple(shape)[1:] if len(shape) > 1 else tuple(shape):  # batch 1
        n *= max(int(d), 1)  # Python ints: no overflow whatever the file declares
    return n


def _itemsize(dtype) -> int:
    try:
        return max(np.dtype(dtype).itemsize, 1)
    except TypeError:
        return 4


def check_sizes(graph, path) -> None:
    """Refuse a model whose declared sizes are beyond sane limits, before anything is allocated.

    The input (one image) must hold at most :data:`MAX_INPUT_ELEMENTS`
    values, and all non-constant tensors together at most
    :data:`MAX_ACTIVATION_BYTES` bytes (no engine's arena can be larger).

    Raises:
        ModelError: the message names the file, the tensor, its shape and the limit.
    """
    if not graph.inputs:
        raise ModelError(f"{path}: the model declares no input tensor")
    t = graph.tensor(graph.inputs[0])
    n = _elements(t.shape)
    if n > MAX_INPUT_ELEMENTS:
        raise ModelError(
            f"{path}: input tensor '{t.name}' declares shape {list(t.shape)} = {n:,} elements per "
            f"image; bench accepts at most {MAX_INPUT_ELEMENTS:,} (nothing was allocated)"
        )
    total, biggest = 0, None
    for tensor in graph.tensors:
        if tensor.is_constant:
            continue
        b = _elements(tensor.shape) * _itemsize(tensor.dtype)
        total += b
        if biggest is None or b > biggest[0]:
            biggest = (b, tensor)
    if total > MAX_ACTIVATION_BYTES:
        b, tensor = biggest
        raise ModelError(
            f"{path}: the model's activations declare {total:,} bytes at batch 1 (the largest, "
            f"tensor '{tensor.name}' of shape {list(tensor.shape)}, {b:,} bytes); bench accepts "
            f"at most {MAX_ACTIVATION_BYTES:,} (nothing was allocated)"
        )


def refuse_custom_ops(graph, engine: str, supported=()) -> tuple:
    """``can_run`` helper: refuse custom ops outside ``supported``."""
    bad = [op for op in graph.custom_ops() if op not in supported]
    if not bad:
        return True, ""
    lce_ops = [op for op in bad if op.startswith("Lce")]
    hint = (
        f"; engines that run LCE's ops: {', '.join(LCE_CAPABLE)} (e.g. --engine lce)"
        if lce_ops
        else "; no edgebnn engine implements these ops"
    )
    return False, f"the {engine} engine cannot run custom op(s) {', '.join(bad)}{hint}"


def timed_loop(prepare, call, warmup: int, runs: int) -> list:
    """Run ``call`` ``warmup`` times, then ``runs`` timed times; return ns per run.

    ``prepare`` (setting the input) runs before each call, outside the timed
    region. Python's garbage collector is off during the timed runs so a
    collection does not land inside one.
    """
    for _ in range(warmup):
        prepare()
        call()
    times = []
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        clock = time.perf_counter_ns
        for _ in range(runs):
            prepare()
            t0 = clock()
            call()
            times.append(clock() - t0)
    finally:
        if was_enabled:
            gc.enable()
    return times


#: Seconds between reads of a child's VmHWM: quick at first (programs
#: allocate at start), then rarely so the reads do not disturb the timing.
RSS_POLL_FIRST_S = 0.005
RSS_POLL_S = 0.05
RSS_POLL_FIRST_COUNT = 20


def _vm_hwm(status_file, name):
    """VmHWM in bytes from /proc/PID/status once the process runs ``name``, else None.

    Before ``exec`` the child is still a copy of this Python process (or
    shares its memory, after vfork), so samples taken then are skipped.
    """
    try:
        with open(status_file) as fh:
            fields = dict(line.split(":", 1) for line in fh if ":" in line)
        if fields.get("Name", "").strip() != name[:15]:
            return None
        return int(fields["VmHWM"].split()[0]) * 1024  # kB
    except (OSError, ValueError, IndexError, KeyError):
        return None


@dataclass
class ProcessResult:
    returncode: int
    stdout: bytes
    stderr: bytes
    peak_rss_bytes: Optional[int]


def run_measured(cmd, *, input_bytes: bytes = b"", timeout: float = 600.0, env=None) -> ProcessResult:
    """Run ``cmd``, feed ``input_bytes`` on stdin, and return its output and peak RSS.

    The peak resident set size is the child's ``VmHWM`` (high-water RSS of
    the program after ``exec``) read from ``/proc/PID/status`` while it runs
    (every 5 ms at first, then every 50 ms); None when the program ended
    before the first read after ``exec`` or /proc is absent. (``wait4``'s ``ru_maxrss`` is
    not used: Linux carries the spawning Python process's high-water mark
    into the child at ``exec``, which would report this process's memory.)

    Raises:
        EngineError: the executable cannot be started, or it outlives ``timeout``.
    """
    try:
        proc = subprocess.Popen(
            [str(c) for c in cmd],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
    except OSError as exc:
        raise EngineError(f"cannot start {cmd[0]}: {exc}") from exc
    chunks = {"out": [], "err": []}

    def reader(stream, key):
        chunks[key].append(stream.read())

    threads = [
        threading.Thread(target=reader, args=(proc.stdout, "out"), daemon=True),
        threading.Thread(target=reader, args=(proc.stderr, "err"), daemon=True),
    ]
    for t in threads:
        t.start()
    try:
        if input_bytes:
            proc.stdin.write(input_bytes)
        proc.stdin.close()
    except BrokenPipeError:
        pass  # the program exited without reading; its status says why
    peak = []
    done = threading.Event()

    def poll_rss():
        status_file = f"/proc/{proc.pid}/status"
        name = os.path.basename(str(cmd[0]))
        n = 0
        while not done.is_set():
            hwm = _vm_hwm(status_file, name)
            if hwm is not None:
                peak.append(hwm)
            n += 1
            done.wait(RSS_POLL_FIRST_S if n < RSS_POLL_FIRST_COUNT else RSS_POLL_S)

    poller = threading.Thread(target=poll_rss, daemon=True)
    poller.start()
    killed = []

    def kill():
        killed.append(True)
        proc.kill()

    timer = threading.Timer(timeout, kill)
    timer.start()
    try:
        _, status, _usage = os.wait4(proc.pid, 0)  # blocks without polling
    finally:
        timer.cancel()
        done.set()
    poller.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    rss = max(peak) if peak else None
    if killed:
        raise EngineError(f"{cmd[0]} did not finish within {timeout:.0f} s and was killed")
    for t in threads:
        t.join()
    return ProcessResult(
        returncode=proc.returncode,
        stdout=b"".join(chunks["out"]),
        stderr=b"".join(chunks["err"]),
        peak_rss_bytes=rss,
    )

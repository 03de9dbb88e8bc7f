"""Parse the text printed by LCE's ``lce_benchmark_model``.

``lce_benchmark_model`` is TFLite's ``benchmark_model`` tool linked with
LCE's custom ops, so it prints what ``benchmark_model`` prints (to stderr in
recent versions, to stdout in old ones), optionally behind a log prefix
(``INFO: `` on Linux, ``I tflite  : `` in Android's logcat)::

    INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds ...
    INFO: count=9 first=56903 curr=56276 min=56251 max=56903 avg=56415.2 std=245
    INFO: Running benchmark for at least 50 iterations and at least 1 seconds ...
    INFO: count=50 first=56282 curr=56234 min=56227 max=56707 avg=56283.9 std=79
    INFO: Inference timings in us: Init: 7003, First inference: 56903, Warmup (avg): 56415.2, Inference (avg): 56283.9
    INFO: Memory footprint delta from the start of the tool (MB): init=5 overall=11.2695

The ``count=`` lines are the warm-up and the timed runs (all times in
microseconds); newer versions append ``p5=``, ``median=`` and ``p95=``, and a
series whose values are all equal prints only ``count=N curr=X``. Values may
be printed in scientific notation (``avg=2.95034e+06``). The tool does not
print p90, nor a median before those newer versions.

Example:
    >>> out = parse_benchmark_output(text)  # doctest: +SKIP
    >>> out.count, out.mean_us  # doctest: +SKIP
    (50, 56283.9)
"""

import re
from dataclasses import asdict, dataclass, field
from typing import Optional

from edgebnn.errors import EngineError

_PREFIX = r"^\s*(?:(?:INFO|WARN|WARNING|ERROR|VERBOSE):\s*|[VDIWEF]\s+\S+\s*:\s*)?"
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_STAT_START = re.compile(r"(?:^|\s)count=\d")
_PAIR = re.compile(r"(\w+)=(" + _NUMBER + ")")
_SUMMARY = re.compile(
    r"Inference timings in us:\s*Init:\s*(?P<init>" + _NUMBER + r"),\s*"
    r"First inference:\s*(?P<first>" + _NUMBER + r"),\s*"
    r"Warmup \(avg\):\s*(?P<warmup>" + _NUMBER + r"|nan|-?inf),\s*"
    r"Inference \(avg\):\s*(?P<inference>" + _NUMBER + r"|nan|-?inf)"
)
_MEM_DELTA = re.compile(
    r"(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\):\s*"
    r"init=(?P<init>" + _NUMBER + r")\s+overall=(?P<overall>" + _NUMBER + ")"
)
_MEM_PEAK = re.compile(r"Overall peak memory footprint \(MB\) via periodic monitoring:\s*(" + _NUMBER + ")")
_MODEL_SIZE = re.compile(r"The input model file size \(MB\):\s*(" + _NUMBER + ")")
_THREADS = re.compile(r"(?:Num threads|#threads used for CPU inference):\s*\[(\d+)\]")
_DELEGATE = re.compile(_PREFIX + r"((?:Created|Explicitly applied|Replacing)\b.*delegate.*)$", re.I)


class BenchmarkOutputError(EngineError):
    """``lce_benchmark_model`` printed something that is not a finished benchmark."""


@dataclass(frozen=True)
class RunStats:
    """One ``count=...`` line: a series of run times in microseconds."""

    count: int
    min_us: float
    max_us: float
    mean_us: float
    std_us: float
    first_us: Optional[float] = None
    curr_us: Optional[float] = None
    median_us: Optional[float] = None
    p5_us: Optional[float] = None
    p95_us: Optional[float] = None


@dataclass(frozen=True)
class BenchmarkOutput:
    """What one ``lce_benchmark_model``/``benchmark_model`` run reported.

    ``runs`` are the timed runs, ``warmup`` the warm-up runs (None when the
    tool printed only one series). ``init_us``, ``first_inference_us``,
    ``warmup_avg_us`` and ``inference_avg_us`` come from the summary line;
    memory figures are in MB as printed, None when absent.
    """

    runs: RunStats
    warmup: Optional[RunStats]
    init_us: float
    first_inference_us: float
    warmup_avg_us: float
    inference_avg_us: float
    init_mem_mb: Optional[float] = None
    overall_mem_mb: Optional[float] = None
    peak_mem_mb: Optional[float] = None
    model_size_mb: Optional[float] = None
    num_threads: Optional[int] = None
    delegates: tuple = field(default=())

    def to_dict(self) -> dict:
        return asdict(self)


def _stat_text(line: str) -> Optional[str]:
    """The ``count=...`` part of a run-statistics line, or None.

    Whatever precedes ``count=`` is a log prefix (``INFO: ``, a logcat
    header); op-profiling summaries (``Timings (microseconds): count=...``,
    ``Memory (bytes): count=...``) are not run statistics.
    """
    m = _STAT_START.search(line)
    if not m:
        return None
    before = line[: m.start()]
    if "(" in before:
        return None
    return line[m.start():].strip()


def parse_stat_line(line: str) -> RunStats:
    """Parse one ``count=... first=... min=... avg=... std=...`` line.

    Raises:
        BenchmarkOutputError: the line has no ``count=`` or no times.
    """
    text = _stat_text(line)
    if text is None:
        raise BenchmarkOutputError(f"not a benchmark statistics line (expected 'count=...'): {line!r}")
    values = {k: float(v) for k, v in _PAIR.findall(text)}
    count = int(values["count"])
    if count == 0:
        raise BenchmarkOutputError(f"the benchmark recorded no runs: {line.strip()!r}")
    if "min" in values and "max" in values and "avg" in values:
        lo, hi, mean, std = values["min"], values["max"], values["avg"], values.get("std", 0.0)
    elif "curr" in values:  # "count=N curr=X" or "count=N curr=X(all same)": every run took X
        lo = hi = mean = values["curr"]
        std = 0.0
    else:
        raise BenchmarkOutputError(f"benchmark statistics line without min/max/avg or curr: {line.strip()!r}")
    return RunStats(
        count=count,
        min_us=lo,
        max_us=hi,
        mean_us=mean,
        std_us=std,
        first_us=values.get("first"),
        curr_us=values.get("curr"),
        median_us=values.get("median"),
        p5_us=values.get("p5"),
        p95_us=values.get("p95"),
    )


def _tail(text: str, n: int = 8) -> str:
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return "\n".join(lines[-n:]) if lines else "(no output)"


def parse_benchmark_output(text: str) -> BenchmarkOutput:
    """Parse the full output (stdout and stderr together) of one run.

    The timed runs are the last ``count=`` line printed before the
    ``Inference timings in us`` summary; the one before it is the warm-up.
    Lines such as ``Timings (microseconds): count=...`` from op profiling are
    not run statistics and are ignored.

    Raises:
        BenchmarkOutputError: no summary line (the run did not finish, or the
            output is not from benchmark_model), or no statistics line before it.
    """
    lines = text.splitlines()
    summary_at, summary = None, None
    for i, line in enumerate(lines):
        m = _SUMMARY.search(line)
        if m:
            summary_at, summary = i, m
            break
    if summary is None:
        raise BenchmarkOutputError(
            "lce_benchmark_model output has no 'Inference timings in us: ...' line, so the "
            "benchmark did not finish or this is not benchmark_model output; its last lines:\n"
            + _tail(text)
        )
    stats = [parse_stat_line(l) for l in lines[:summary_at] if _stat_text(l) is not None]
    if not stats:
        raise BenchmarkOutputError(
            "lce_benchmark_model printed its summary but no 'count=...' statistics line "
            "before it; cannot tell min/max of the runs. Output tail:\n" + _tail(text)
        )
    out = {}
    joined = "\n".join(lines)
    m = _MEM_DELTA.search(joined)
    if m:
        out["init_mem_mb"] = float(m.group("init"))
        out["overall_mem_mb"] = float(m.group("overall"))
    m = _MEM_PEAK.search(joined)
    if m:
        out["peak_mem_mb"] = float(m.group(1))
    m = _MODEL_SIZE.search(joined)
    if m:
        out["model_size_mb"] = float(m.group(1))
    m = _THREADS.search(joined)
    if m:
        out["num_threads"] = int(m.group(1))
    delegates = tuple(dm.group(1).strip() for l in lines if (dm := _DELEGATE.match(l)))
    return BenchmarkOutput(
        runs=stats[-1],
        warmup=stats[-2] if len(stats) >= 2 else None,
        init_us=float(summary.group("init")),
        first_inference_us=float(summary.group("first")),
        warmup_avg_us=float(summary.group("warmup")),
        inference_avg_us=float(summary.group("inference")),
        delegates=delegates,
        **out,
    )

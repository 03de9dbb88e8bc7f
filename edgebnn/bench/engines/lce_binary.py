"""The ``lce-binary`` engine: LCE's own ``lce_benchmark_model`` program.

The route LCE documents for a Raspberry Pi (its Python package has no aarch64
wheel). edgebnn finds the program (``--lce-binary``, then
``$EDGEBNN_LCE_BENCHMARK``, then ``lce_benchmark_model`` on PATH), runs::

    lce_benchmark_model --graph=MODEL --num_threads=T --num_runs=R
        --warmup_runs=W --min_secs=0 --warmup_min_secs=0

(the last two stop the tool from adding runs to fill its default minimum
durations), and parses the timings it prints
(:mod:`edgebnn.bench.lce_output`). The tool times each ``Invoke()`` itself,
on its own random input, and reports min, max, mean and standard deviation
(recent versions add a median); p90 is not available from it.
"""

import os
import shutil
from pathlib import Path

from edgebnn.bench.engines import (
    Engine,
    Measurement,
    Session,
    check_sizes,
    refuse_custom_ops,
    register_engine,
    run_measured,
)
from edgebnn.bench.lce_output import BenchmarkOutputError, parse_benchmark_output
from edgebnn.bench.stats import LatencyStats
from edgebnn.errors import EngineError
from edgebnn.graph import LCE_CUSTOM_OPS

ENV = "EDGEBNN_LCE_BENCHMARK"
PROGRAM = "lce_benchmark_model"
HOW_TO_GET = (
    "download lce_benchmark_model for your board from LCE's GitHub releases "
    "(github.com/larq/compute-engine/releases) or build it (bazel build --config=aarch64 "
    "//larq_compute_engine/tflite/benchmark:lce_benchmark_model), then pass --lce-binary PATH, "
    f"set ${ENV}, or put it on PATH"
)


def find_lce_binary(explicit=None) -> tuple:
    """``(path or None, where it came from or what is wrong)``."""
    for origin, value in (("--lce-binary", explicit), (f"${ENV}", os.environ.get(ENV))):
        if not value:
            continue
        p = Path(value).expanduser()
        if not p.is_file():
            return None, f"{origin} names {p}, which does not exist"
        if not os.access(p, os.X_OK):
            return None, f"{origin} names {p}, which is not executable (chmod +x {p})"
        return str(p), origin
    found = shutil.which(PROGRAM)
    if found:
        return found, "PATH"
    return None, f"{PROGRAM} not found (no --lce-binary, no ${ENV}, not on PATH)"


class LCEBinarySession(Session):
    in_process = False
    chunk_warmup = 1

    def __init__(self, binary, origin, model_path, threads):
        self.binary = binary
        self.origin = origin
        self.model_path = model_path
        self.threads = threads
        self.last = None
        self.timed = (
            f"Invoke() timed by {PROGRAM} itself, one image per run, on the tool's own random input "
            "(edgebnn's seeded image is not used); it reports min/max/mean/std only"
        )

    def info(self):
        out = {"binary": self.binary, "found_via": self.origin}
        if self.last is not None:
            out.update(
                init_us=self.last.init_us,
                first_inference_us=self.last.first_inference_us,
                tool_memory_mb={"init": self.last.init_mem_mb, "overall": self.last.overall_mem_mb,
                                "peak": self.last.peak_mem_mb},
                delegates=list(self.last.delegates),
            )
        return out

    def command(self, warmup, runs) -> list:
        return [
            self.binary,
            f"--graph={self.model_path}",
            f"--num_threads={self.threads}",
            f"--num_runs={runs}",
            f"--warmup_runs={warmup}",
            "--min_secs=0",
            "--warmup_min_secs=0",
        ]

    def measure(self, x, warmup, runs):
        cmd = self.command(warmup, runs)
        res = run_measured(cmd)
        text = (res.stdout + b"\n" + res.stderr).decode("utf-8", "replace")
        if res.returncode != 0:
            tail = "\n".join(text.strip().splitlines()[-8:]) or "(no output)"
            raise EngineError(
                f"{self.binary} exited with status {res.returncode} on {self.model_path}; "
                f"command: {' '.join(cmd)}\nits last lines:\n{tail}\n"
                "Check that the binary is built for this machine and that the model was converted "
                "by a compatible LCE version."
            )
        try:
            parsed = parse_benchmark_output(text)
        except BenchmarkOutputError as exc:
            raise EngineError(f"{self.binary}: {exc}") from exc
        self.last = parsed
        r = parsed.runs
        agg = LatencyStats(runs=r.count, min=r.min_us, median=r.median_us, p90=None, max=r.max_us,
                           mean=r.mean_us, std=r.std_us)
        return Measurement(aggregate=agg, peak_rss_bytes=res.peak_rss_bytes,
                           extra={"requested_runs": runs})


@register_engine("lce-binary")
class LCEBinaryEngine(Engine):
    summary = "LCE's lce_benchmark_model program (the Raspberry Pi route); parses its timings"

    def is_available(self):
        path, why = find_lce_binary(self.lce_binary)
        if path is None:
            return False, why
        return True, f"{path} (via {why})"

    def install_hint(self):
        return HOW_TO_GET

    def can_run(self, graph):
        return refuse_custom_ops(graph, "lce-binary", supported=LCE_CUSTOM_OPS)

    def open(self, model_path, graph, *, threads, workdir):
        check_sizes(graph, model_path)  # before the engine allocates anything
        path, why = find_lce_binary(self.lce_binary)
        if path is None:
            raise EngineError(f"{why}; {HOW_TO_GET}")
        return LCEBinarySession(path, why, str(Path(model_path).resolve()), threads)

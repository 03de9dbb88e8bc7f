"""The ``c`` engine: edgebnn's generated C, compiled into a benchmark program.

:func:`edgebnn.hostprog.build_bench_program` generates C from the
model and compiles it with a small driver. The program's protocol: ``prog
WARMUP RUNS`` reads exactly ``INPUT_SIZE`` little-endian float32 values from
stdin, runs the model WARMUP times untimed and RUNS times timed, and prints
one JSON object ``{"times_ns": [...], "output": [...], "arena_bytes": N,
"weights_bytes": N}``. Each time covers one call of the generated
``NAME_invoke`` on one image. Needs neither TensorFlow nor LCE: the engine
for a Raspberry Pi.

With a ``--target`` whose file names an emulator (``arm64``:
``qemu-aarch64``), the program is cross-compiled and run under it; such
timings are labelled emulated and say nothing about the real board.
"""

import importlib.util
import json
import math
import os
import shutil

import numpy as np

from edgebnn.bench.engines import (
    Engine,
    Measurement,
    Session,
    check_sizes,
    refuse_custom_ops,
    register_engine,
    run_measured,
)
from edgebnn.errors import EngineError
from edgebnn.graph import LCE_CUSTOM_OPS

HOSTPROG = "edgebnn.hostprog"


def _hostprog_present() -> bool:
    try:
        return importlib.util.find_spec(HOSTPROG) is not None
    except (ImportError, ValueError):
        return False


def _host_cc():
    for cc in (os.environ.get("CC"), "cc", "gcc"):
        if cc and shutil.which(cc):
            return cc
    return None


class CSession(Session):
    in_process = False
    chunk_warmup = 5

    def __init__(self, program, target, input_size, threads=1):
        self.program = str(program)
        self.threads = int(threads)
        self.target = target
        self.input_size = input_size
        self.emulated = bool(target is not None and target.emulated)
        where = f" under {target.emulator[0]} (emulated, not a latency of real hardware)" if self.emulated else ""
        self.timed = f"one call of the generated NAME_invoke() on one image, timed inside the C program{where}"

    def info(self):
        # the _opt kernels split output rows over $EBNN_NUM_THREADS pthreads
        # (host builds and targets with threads = true; else 1)
        threads_on = self.target is None or bool(getattr(self.target, "threads", False))
        out = {"program": self.program, "threads_used": self.threads if threads_on else 1}
        if self.target is not None:
            out["target"] = self.target.name
            out["emulator"] = list(self.target.emulator) if self.emulated else None
        return out

    def command(self, warmup, runs):
        env = ["env", f"EBNN_NUM_THREADS={self.threads}"]
        if self.emulated:
            return env + self.target.emulator_command(exe=self.program) + [str(warmup), str(runs)]
        return env + [self.program, str(warmup), str(runs)]

    def measure(self, x, warmup, runs):
        data = np.ascontiguousarray(x, dtype="<f4").ravel()
        if data.size != self.input_size:
            raise EngineError(f"the C program expects {self.input_size} input floats, got {data.size}")
        cmd = self.command(warmup, runs)
        res = run_measured(cmd, input_bytes=data.tobytes())
        text = res.stdout.decode("utf-8", "replace")
        if res.returncode != 0:
            err = res.stderr.decode("utf-8", "replace").strip()
            raise EngineError(
                f"the C benchmark program exited with status {res.returncode}: {' '.join(cmd)}\n"
                f"{err[-2000:] or text[-2000:] or '(no output)'}"
            )
        try:
            obj = json.loads(text)
            times = [int(t) for t in obj["times_ns"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise EngineError(
                f"the C benchmark program printed no valid JSON with 'times_ns' ({exc}); "
                f"stdout began: {text[:300]!r}"
            ) from exc
        if len(times) != runs:
            raise EngineError(f"the C benchmark program reported {len(times)} times for {runs} runs")
        self.arena_bytes = obj.get("arena_bytes")
        self.weights_bytes = obj.get("weights_bytes")
        out = np.asarray(obj.get("output", []), dtype=np.float32)
        # The program's own VmHWM, read at its end, is exact; the sampled one
        # misses programs that finish between two samples.
        rss = obj.get("peak_rss_bytes") or res.peak_rss_bytes
        return Measurement(times_ns=times, output=out, peak_rss_bytes=rss)


@register_engine("c")
class CEngine(Engine):
    summary = "edgebnn's generated C compiled into a benchmark program (no TF/LCE; --target arm64 runs under QEMU)"
    supports_target = True

    def is_available(self):
        if not _hostprog_present():
            return False, (
                f"not yet available: {HOSTPROG} (the C export) is not in this build of edgebnn"
            )
        t = self.target
        if t is not None:
            if t.is_mcu:
                return False, (
                    f"target '{t.name}' is a microcontroller; bench runs Linux programs "
                    f"(use: edgebnn firmware build/run -t {t.name})"
                )
            if not shutil.which(t.cc):
                pkg = t.package_for(t.cc)
                return False, f"compiler '{t.cc}' for target '{t.name}' not found" + (
                    f"; apt-get install {pkg}" if pkg else "")
            if t.emulated and not shutil.which(t.emulator[0]):
                pkg = t.package_for(t.emulator[0])
                return False, f"emulator '{t.emulator[0]}' for target '{t.name}' not found" + (
                    f"; apt-get install {pkg}" if pkg else "")
            return True, f"{t.cc}" + (f" + {t.emulator[0]}" if t.emulated else "")
        cc = _host_cc()
        if cc is None:
            return False, "no C compiler found (cc/gcc, or $CC); on Debian/Pi OS: sudo apt-get install gcc"
        return True, f"host compiler {cc}"

    def can_run(self, graph):
        return refuse_custom_ops(graph, "c", supported=LCE_CUSTOM_OPS)

    def open(self, model_path, graph, *, threads, workdir):
        check_sizes(graph, model_path)  # before the engine allocates anything
        from edgebnn.hostprog import build_bench_program

        program = build_bench_program(model_path, workdir, target=self.target)
        size = math.prod(max(int(d), 1) for d in graph.tensor(graph.inputs[0]).shape)
        return CSession(program, self.target, size, threads=threads)

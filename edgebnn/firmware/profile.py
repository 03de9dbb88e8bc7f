"""Per-op profile of a firmware project: which layer costs what on the device.

``edgebnn firmware run --profile DIR`` copies the built project to a temporary
directory, rebuilds the copy with ``-DEBNN_PROFILE`` (the generated
``NAME_invoke`` then calls ``ebnn_profile_op(k)`` after its k-th kernel call,
and the firmware's main.c reads the same tick counter as the per-inference
figure there), runs it under the target's emulator and divides each call's
ticks by the number of samples. The project itself is not touched: its image,
sizes and instruction counts stay those of the unprofiled build.

On the QEMU microcontroller targets the figures are emulator instruction
counts (SysTick ticks x ``instructions_per_tick``, or minstret), never
latencies; the SysTick figures have its resolution (40 instructions per tick
on mps2). The hook's own bookkeeping is kept out of the calls' figures as far
as the clock allows; what remains is reported as the difference between the
profiled build's whole-invoke figure and the sum of its calls.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgebnn.errors import TargetError
from edgebnn.firmware.project import IMAGE, build_project, project_target, read_metadata
from edgebnn.firmware.run import DEFAULT_TIMEOUT, FirmwareRun, run_firmware

#: The ``-D`` value of a profiling build (see firmware/runtime/ebnn.h).
PROFILE_DEFINE = "EBNN_PROFILE"
_NOT_COPIED = ("build", IMAGE, "fw.bin", "fw.hex")


@dataclass(frozen=True)
class CallProfile:
    """One kernel call of the model: its TFLite ops and its cost per inference."""

    index: int
    ops: tuple
    type: str
    kernel: str
    output: str
    per_inference: float
    share: float

    def to_dict(self) -> dict:
        return {"index": self.index, "ops": list(self.ops), "type": self.type,
                "kernel": self.kernel, "output": self.output,
                "per_inference": self.per_inference, "share": self.share}


@dataclass(frozen=True)
class FirmwareProfile:
    """What ``firmware run --profile`` measured.

    ``unit`` is ``"instructions"`` where the target counts them (the label
    says how), else the timer's own ticks. ``invoke_per_inference`` is the
    profiled build's mean whole-invoke figure; ``unattributed`` what of it no
    call accounts for (the hooks, the invoke's own prologue).
    """

    target: str
    samples: int
    unit: str
    label: str
    calls: tuple
    invoke_per_inference: float
    mismatches: int
    run: FirmwareRun

    @property
    def in_calls(self) -> float:
        return sum(c.per_inference for c in self.calls)

    @property
    def unattributed(self) -> float:
        return self.invoke_per_inference - self.in_calls

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "samples": self.samples,
            "unit": self.unit,
            "label": self.label,
            "calls": [c.to_dict() for c in self.calls],
            "in_calls_per_inference": self.in_calls,
            "invoke_per_inference": self.invoke_per_inference,
            "unattributed_per_inference": self.unattributed,
            "mismatches": self.mismatches,
        }


def profile_firmware(directory, *, timeout: float = DEFAULT_TIMEOUT) -> FirmwareProfile:
    """Build a profiling copy of the project in ``directory``, run it, and
    attribute its ticks to the model's kernel calls.

    Raises:
        TargetError: not a built project, one without the kernel-call list
            (written by ``edgebnn firmware build`` from its own generated
            code), or the profiled firmware reported no profile.
        ToolchainError: the compiler or emulator is missing or failed.
    """
    d = Path(directory)
    meta = read_metadata(d)
    calls = meta.get("kernel_calls") or []
    if not calls:
        raise TargetError(
            f"{d} lists no kernel calls in its firmware.json, so it cannot be profiled: rebuild it "
            "with this version of `edgebnn firmware build` (projects from other generated sources "
            "have no profile hooks)"
        )
    with tempfile.TemporaryDirectory(prefix="edgebnn-profile-") as tmp:
        copy = Path(tmp) / "project"
        shutil.copytree(d, copy, ignore=shutil.ignore_patterns(*_NOT_COPIED))
        build_project(copy, defines=(PROFILE_DEFINE,))
        run = run_firmware(copy, timeout=timeout)
    if len(run.profile_ticks) != len(calls):
        raise TargetError(
            f"the profiling build reported {len(run.profile_ticks)} kernel calls but the project "
            f"lists {len(calls)}; its generated code does not match its firmware.json"
        )
    if run.timer == "none":
        raise TargetError(
            f"target '{run.target}' firmware has no timer (its begin line says timer=none), so "
            "there is nothing to attribute per op; --profile counts instructions on the "
            "microcontroller targets (see `edgebnn targets`); for a host or Linux CPU, "
            "tools/op_profile.py times each op of the host build"
        )
    n = len(run.predictions)
    scale = 1.0
    unit = f"{run.timer} ticks"
    label = f"the firmware's {run.timer} timer, raw ticks"
    if run.instructions:
        scale = float(project_target(d).ticks_to_instructions)
        unit = "instructions"
        label = run.instructions_label
    per = [t * scale / n for t in run.profile_ticks]
    total = sum(per) or 1.0
    out = tuple(
        CallProfile(index=i, ops=tuple(c["ops"]), type=c["type"], kernel=c["kernel"],
                    output=c["output"], per_inference=v, share=v / total)
        for i, (c, v) in enumerate(zip(calls, per))
    )
    invoke = (sum(run.instructions) if run.instructions else sum(run.ticks)) / n
    return FirmwareProfile(target=run.target, samples=n, unit=unit, label=label, calls=out,
                           invoke_per_inference=invoke, mismatches=run.mismatches, run=run)

"""Run a built firmware image under the target's emulator and read its report.

The firmware prints one ``EBNN sample=...`` line per embedded sample and an
``EBNN end`` line (see firmware/templates/common/main.c); its exit status is
the number of mismatches. On Cortex-M targets each sample's line carries the
SysTick ticks its inference took; under QEMU with ``-icount shift=0`` one
instruction is one nanosecond of virtual time, so instructions = ticks x
``instructions_per_tick`` from the target file. That is an emulator
instruction count, not a latency: QEMU is not cycle accurate.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from edgebnn.errors import TargetError, ToolchainError
from edgebnn.firmware.console import run_serial
from edgebnn.firmware.project import IMAGE, project_target, read_metadata

_BEGIN = re.compile(r"^EBNN begin samples=(\d+) input=(\d+) output=(\d+) timer=(\w+)")
_SAMPLE = re.compile(r"^EBNN sample=(\d+) pred=(-?\d+) expected=(-?\d+) ticks=(\d+)")
_END = re.compile(r"^EBNN end mismatches=(\d+) stack_peak=(\d+) stack_size=(\d+)(?: stack_peak_all=(\d+))?")
_ERROR = re.compile(r"^EBNN error (.*)$")
_PROFILE = re.compile(r"^EBNN profile call=(\d+) ticks=(\d+)")

DEFAULT_TIMEOUT = 300.0
#: Timers that count emulated instructions (``timer=`` in the firmware's
#: begin line), by the name a report gives them: SysTick on Cortex-M
#: (ticks x ``instructions_per_tick``), minstret on RISC-V (the retired
#: instruction counter itself, 1 per tick).
TIMER_NAMES = {"systick": "SysTick", "minstret": "minstret"}


@dataclass(frozen=True)
class FirmwareRun:
    """What a firmware run printed.

    ``instructions`` is per sample (None without a counting timer);
    ``instructions_label`` says what it is. ``stack_peak`` is the deepest
    stack use during the inferences (measured on a painted stack, counted
    from the top, so it includes the startup code's and main's frames);
    ``stack_peak_all`` also covers printf and the rest of the firmware.
    """

    target: str
    command: list
    predictions: list
    expected: list
    mismatches: int
    exit_code: int
    ticks: list
    timer: str
    instructions: list | None
    instructions_label: str
    stack_peak: int | None
    stack_size: int | None
    stack_peak_all: int | None
    expected_source: str
    wall_seconds: float
    output: str
    #: Ticks per kernel call summed over the samples (a profiling build's
    #: ``EBNN profile`` lines), else empty.
    profile_ticks: tuple = ()

    @property
    def agreement(self) -> float:
        n = len(self.predictions)
        return (n - self.mismatches) / n if n else 0.0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.mismatches == 0 and len(self.predictions) > 0

    def instruction_stats(self) -> dict | None:
        if not self.instructions:
            return None
        v = sorted(self.instructions)
        return {"min": v[0], "median": v[len(v) // 2], "max": v[-1],
                "mean": sum(v) / len(v)}

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "command": self.command,
            "samples": len(self.predictions),
            "predictions": self.predictions,
            "expected": self.expected,
            "expected_source": self.expected_source,
            "mismatches": self.mismatches,
            "agreement": self.agreement,
            "exit_code": self.exit_code,
            "ok": self.ok,
            "timer": self.timer,
            "ticks": self.ticks,
            "instructions_per_inference": self.instructions,
            "instructions_stats": self.instruction_stats(),
            "instructions_label": self.instructions_label,
            "stack_peak_bytes": self.stack_peak,
            "stack_size_bytes": self.stack_size,
            "stack_peak_all_bytes": self.stack_peak_all,
            "wall_seconds": self.wall_seconds,
        }


def parse_output(text: str) -> dict:
    """Parse the firmware's ``EBNN`` lines.

    Raises:
        TargetError: the output has no ``EBNN end`` line (the firmware
            crashed or printed an error); the message quotes the output.
    """
    begin = None
    samples = []
    end = None
    profile = {}
    for line in text.splitlines():
        line = line.strip()
        if m := _BEGIN.match(line):
            begin = {"samples": int(m.group(1)), "input": int(m.group(2)),
                     "output": int(m.group(3)), "timer": m.group(4)}
        elif m := _SAMPLE.match(line):
            samples.append(tuple(int(g) for g in m.groups()))
        elif m := _END.match(line):
            end = {"mismatches": int(m.group(1)), "stack_peak": int(m.group(2)),
                   "stack_size": int(m.group(3)), "stack_peak_all": int(m.group(4) or m.group(2))}
        elif m := _PROFILE.match(line):
            profile[int(m.group(1))] = int(m.group(2))
        elif m := _ERROR.match(line):
            raise TargetError(f"the firmware reported an error: {m.group(1)}")
    if begin is None or end is None:
        tail = "\n".join(text.strip().splitlines()[-10:])
        raise TargetError(
            "the firmware did not finish its report (no 'EBNN begin'/'EBNN end' line); "
            f"it crashed or hung. Last output:\n{tail or '(none)'}"
        )
    if len(samples) != begin["samples"]:
        raise TargetError(f"the firmware announced {begin['samples']} samples but reported {len(samples)}")
    if profile and sorted(profile) != list(range(len(profile))):
        raise TargetError(f"the firmware's profile lines skip calls: found {sorted(profile)}")
    return {"begin": begin, "samples": samples, "end": end,
            "profile": [profile[k] for k in range(len(profile))]}


def run_firmware(directory, *, timeout: float = DEFAULT_TIMEOUT) -> FirmwareRun:
    """Run a built project under its target's emulator (or natively).

    Raises:
        TargetError: not a built project, or the firmware crashed.
        ToolchainError: the emulator is missing (naming it and its Debian
            package) or timed out.
    """
    d = Path(directory)
    meta = read_metadata(d)
    target = project_target(d)
    elf = d / IMAGE
    if not elf.is_file():
        raise TargetError(f"{elf} does not exist; build the project first (make -C {d})")
    if target.emulator:
        cmd = target.emulator_command(elf=elf.resolve(), exe=elf.resolve(), dir=d.resolve(),
                                      bin=(d / "fw.bin").resolve(), hex=(d / "fw.hex").resolve())
        target.require(cmd[0])
    else:
        cmd = [str(elf.resolve())]
    t0 = time.perf_counter()
    if target.console == "uart" and target.is_mcu:
        if not target.emulator:
            raise TargetError(
                f"target '{target.name}' ({target.source}) has no emulator.serial_command, so its "
                "UART firmware runs only on the board: flash it (edgebnn firmware flash) and read "
                "the serial port"
            )
        output, exit_code = run_serial(cmd, d, timeout=timeout)
    else:
        try:
            proc = subprocess.run(cmd, cwd=d, capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise ToolchainError(
                f"the firmware did not finish within {timeout:g} s under {shlex.join(cmd)} "
                "(hung or faulted; a fault handler spins forever)"
            ) from exc
        # QEMU's semihosting console writes to stderr, a native program to stdout.
        output = proc.stdout + proc.stderr
        exit_code = proc.returncode
    wall = time.perf_counter() - t0
    parsed = parse_output(output)
    samples = parsed["samples"]
    timer = parsed["begin"]["timer"]
    ticks = [s[3] for s in samples]
    ipt = target.ticks_to_instructions
    if timer in TIMER_NAMES and ipt:
        instructions = [int(round(t * ipt)) for t in ticks]
        label = (f"emulator instruction count (QEMU -icount shift=0, {TIMER_NAMES[timer]} ticks "
                 f"x {ipt:g}); not a latency")
    else:
        instructions = None
        label = "not counted on this target (emulated timings say nothing about a board)"
    end = parsed["end"]
    return FirmwareRun(
        target=target.name,
        command=[str(c) for c in cmd],
        predictions=[s[1] for s in samples],
        expected=[s[2] for s in samples],
        mismatches=end["mismatches"],
        exit_code=exit_code,
        ticks=ticks,
        timer=timer,
        instructions=instructions,
        instructions_label=label,
        stack_peak=end["stack_peak"] if end["stack_size"] else None,
        stack_size=end["stack_size"] if end["stack_size"] else None,
        stack_peak_all=end["stack_peak_all"] if end["stack_size"] else None,
        expected_source=meta.get("expected_source", "unknown"),
        wall_seconds=wall,
        output=output,
        profile_ticks=tuple(parsed["profile"]),
    )

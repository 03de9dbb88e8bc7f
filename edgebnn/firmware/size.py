"""Where the bytes of a firmware image go: parse the linker's map file.

Every input section the linker placed is attributed to a category from the
object file it came from and its name (``-ffunction-sections
-fdata-sections`` give each function and array its own section):

flash
    ``runtime`` (the kernels), ``weights`` (read-only data of the generated
    model: weights, biases, shapes), ``model_code`` (the generated call list),
    ``libc`` (C library, libgcc and crt0), ``samples`` (the embedded test
    images and expected predictions: test harness, not part of a deployed
    image), ``other`` (the firmware main, vector table, padding).
RAM
    ``arena`` (zero-initialised data of the generated model: its static
    arena and scratch), ``stack`` (the stack reserved by the linker script),
    ``io`` (the firmware's input and output buffers), ``libc``, ``other``.

Initialised data (``.data``) counts twice, as in every MCU: its initial
values in flash, the variables in RAM.

Example:
    >>> report = parse_map(Path("fw.map").read_text(), budget_flash=524288,
    ...                    budget_ram=131072)  # doctest: +SKIP
    >>> report.flash_total, report.fits  # doctest: +SKIP
    (31744, True)
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from edgebnn.errors import TargetError

#: Output sections of the firmware linker script (firmware/templates/cortex-m/link.ld.in).
FLASH_SECTIONS = (".init", ".text", ".rodata", ".data", ".tdata")
RAM_SECTIONS = (".stack", ".data", ".tdata", ".tbss", ".bss")

FLASH_CATEGORIES = ("runtime", "weights", "model_code", "libc", "samples", "other")
RAM_CATEGORIES = ("arena", "stack", "io", "runtime", "libc", "other")

_OUT_RE = re.compile(r"^(\.[\w.]+)\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)(?:\s+load address 0x([0-9a-fA-F]+))?")
_OUT_NAME_ONLY = re.compile(r"^(\.[\w.]+)\s*$")
_IN_RE = re.compile(r"^ (\S+)\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)\s+(\S.*)$")
_IN_NAME_ONLY = re.compile(r"^ (\S+)\s*$")
_IN_CONT = re.compile(r"^\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)\s+(\S.*)$")
_FILL_RE = re.compile(r"^ \*fill\*\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)")

SAMPLE_SYMBOLS = ("fw_samples", "fw_expected", "fw_labels")
IO_SYMBOLS = ("fw_input", "fw_output")


@dataclass(frozen=True)
class SizeReport:
    """Flash and RAM use of an image by category, against a budget.

    ``flash``/``ram`` map a category to bytes; ``flash_total``/``ram_total``
    are the sums (equal to the output sections' sizes). ``flash_deployable``
    is ``flash_total`` minus the embedded test samples. ``stack_peak`` is the
    measured high-water mark of the stack (filled in by a run, else None).
    """

    flash: dict
    ram: dict
    flash_total: int
    ram_total: int
    flash_budget: int | None = None
    ram_budget: int | None = None
    stack_peak: int | None = None
    sections: dict = field(default_factory=dict)

    @property
    def flash_deployable(self) -> int:
        return self.flash_total - self.flash.get("samples", 0)

    @property
    def fits(self) -> bool:
        return ((self.flash_budget is None or self.flash_total <= self.flash_budget)
                and (self.ram_budget is None or self.ram_total <= self.ram_budget))

    def overflow_message(self, target_name: str) -> str:
        parts = []
        if self.flash_budget is not None and self.flash_total > self.flash_budget:
            parts.append(
                f"flash {self.flash_total} B > budget {self.flash_budget} B "
                f"(over by {self.flash_total - self.flash_budget} B; "
                + ", ".join(f"{k} {v} B" for k, v in self.flash.items() if v) + ")"
            )
        if self.ram_budget is not None and self.ram_total > self.ram_budget:
            parts.append(
                f"RAM {self.ram_total} B > budget {self.ram_budget} B "
                f"(over by {self.ram_total - self.ram_budget} B; "
                + ", ".join(f"{k} {v} B" for k, v in self.ram.items() if v) + ")"
            )
        return f"the firmware does not fit target '{target_name}': " + "; ".join(parts)

    def rows(self) -> list:
        """Table rows: (memory, category, bytes, percent of budget)."""
        out = []
        for mem, cats, total, budget in (("flash", self.flash, self.flash_total, self.flash_budget),
                                         ("ram", self.ram, self.ram_total, self.ram_budget)):
            for cat, n in cats.items():
                out.append((mem, cat, n, _pct(n, budget)))
            out.append((mem, "TOTAL", total, _pct(total, budget)))
            out.append((mem, "budget", budget if budget is not None else "-", ""))
        out.append(("flash", "deployable (without samples)", self.flash_deployable,
                    _pct(self.flash_deployable, self.flash_budget)))
        if self.stack_peak is not None:
            out.append(("ram", "stack peak (measured)", self.stack_peak, _pct(self.stack_peak, self.ram_budget)))
            out.append(("ram", "arena + stack peak", self.ram.get("arena", 0) + self.stack_peak,
                        _pct(self.ram.get("arena", 0) + self.stack_peak, self.ram_budget)))
        return out

    def to_dict(self) -> dict:
        d = asdict(self)
        d["flash_deployable"] = self.flash_deployable
        d["fits"] = self.fits
        if self.stack_peak is not None:
            d["arena_plus_stack_peak"] = self.ram.get("arena", 0) + self.stack_peak
        return d


def _pct(n, budget):
    if not budget or not isinstance(n, int):
        return ""
    return f"{100.0 * n / budget:.1f}%"


def classify(obj: str, section: str, *, runtime_prefixes=("build/runtime/",),
             model_prefixes=("build/model/",)) -> tuple:
    """Return ``(flash_category, ram_category)`` for an input section.

    ``obj`` is the object file (or ``archive(member)``) the map names,
    ``section`` the input section name.
    """
    o = obj.replace("\\", "/")
    sym = section.rsplit(".", 1)[-1] if section.count(".") >= 2 else ""
    if any(p in o for p in runtime_prefixes):
        return "runtime", "runtime"
    if any(p in o for p in model_prefixes):
        if section.startswith(".text"):
            return "model_code", "arena"
        return "weights", "arena"
    if ".a(" in o or o.endswith(".a") or "crt0" in o or "libgcc" in o or o.endswith("crtbegin.o") \
            or o.endswith("crtend.o"):
        return "libc", "libc"
    if sym in SAMPLE_SYMBOLS:
        return "samples", "other"
    if sym in IO_SYMBOLS:
        return "other", "io"
    return "other", "other"


def parse_map(text: str, *, flash_budget=None, ram_budget=None,
              runtime_prefixes=("build/runtime/",), model_prefixes=("build/model/",)) -> SizeReport:
    """Parse a GNU ld map file (``-Wl,-Map=``) of an edgebnn firmware image.

    Raises:
        TargetError: the text holds none of the firmware's output sections.
    """
    flash = dict.fromkeys(FLASH_CATEGORIES, 0)
    ram = dict.fromkeys(RAM_CATEGORIES, 0)
    sections = {}
    start = text.find("Linker script and memory map")
    lines = text[start:].splitlines() if start >= 0 else text.splitlines()
    current = None
    extents = {}  # flash section -> (load address, size)
    pending_out = None
    pending_in = None

    def add(section_name, in_name, obj, size):
        if current is None or size == 0:
            return
        fc, rc = classify(obj, in_name, runtime_prefixes=runtime_prefixes, model_prefixes=model_prefixes)
        if current == ".stack":
            ram["stack"] += size
            return
        if current in FLASH_SECTIONS:
            flash[fc] += size
        if current in RAM_SECTIONS:
            ram[rc] += size

    for line in lines:
        if pending_out is not None:
            m = re.match(r"^\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)(?:\s+load address 0x([0-9a-fA-F]+))?", line)
            if m:
                current = pending_out if pending_out in FLASH_SECTIONS + RAM_SECTIONS else None
                if current:
                    sections[current] = int(m.group(2), 16)
                    extents[current] = (int(m.group(3) or m.group(1), 16), sections[current])
            pending_out = None
            continue
        if pending_in is not None:
            m = _IN_CONT.match(line)
            pending_name, pending_in = pending_in, None
            if m:
                add(current, pending_name, m.group(3).strip(), int(m.group(2), 16))
                continue
        if not line:
            continue
        if not line.startswith(" "):
            m = _OUT_RE.match(line)
            if m:
                name = m.group(1)
                current = name if name in FLASH_SECTIONS + RAM_SECTIONS else None
                if current:
                    sections[current] = int(m.group(3), 16)
                    extents[current] = (int(m.group(4) or m.group(2), 16), sections[current])
                continue
            m = _OUT_NAME_ONLY.match(line)
            if m:
                pending_out = m.group(1)
                current = None
                continue
            current = None
            continue
        if current is None:
            continue
        m = _FILL_RE.match(line)
        if m:
            size = int(m.group(2), 16)
            if current == ".stack":
                ram["stack"] += size
            else:
                if current in FLASH_SECTIONS:
                    flash["other"] += size
                if current in RAM_SECTIONS:
                    ram["other"] += size
            continue
        m = _IN_RE.match(line)
        if m:
            add(current, m.group(1), m.group(4).strip(), int(m.group(3), 16))
            continue
        m = _IN_NAME_ONLY.match(line)
        if m and m.group(1).startswith((".", "COMMON")):
            pending_in = m.group(1)
    if not sections:
        raise TargetError(
            "the linker map holds none of the firmware's output sections "
            f"({', '.join(sorted(set(FLASH_SECTIONS + RAM_SECTIONS)))}); is it an edgebnn firmware map?"
        )
    flash_total = sum(v for k, v in sections.items() if k in FLASH_SECTIONS)
    # The image spans from its first to its last flash byte: alignment gaps
    # between output sections count (they are in the .bin too).
    spans = [(a, a + n) for k, (a, n) in extents.items() if k in FLASH_SECTIONS and n]
    if spans:
        flash_total = max(flash_total, max(e for _, e in spans) - min(a for a, _ in spans))
    ram_total = sum(v for k, v in sections.items() if k in RAM_SECTIONS)
    # Whatever the input-section walk missed (alignment inside sections)
    # goes to "other", so the categories add up to the sections' sizes.
    flash["other"] += flash_total - sum(flash.values())
    ram["other"] += ram_total - sum(ram.values())
    return SizeReport(flash=flash, ram=ram, flash_total=flash_total, ram_total=ram_total,
                      flash_budget=flash_budget, ram_budget=ram_budget, sections=sections)


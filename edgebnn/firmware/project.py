"""Write a firmware project directory and build it with the target's toolchain.

A project directory (``edgebnn firmware build -o DIR``)::

    Makefile         builds the same image by hand (``make``, ``make run``)
    firmware.json    what was built: target, model, samples, expected source
    target.toml      a copy of the target file (``run``/``flash`` read it)
    link.ld          linker script (targets whose template has one)
    src/             main.c, samples.h, fw_model.h, ebnn_platform.[ch]
    model/           the generated model code and the runtime kernels
    build/           objects and the linker map
    fw.elf           the image (fw.bin and fw.hex too for microcontrollers)

Everything the compiler and linker run is computed once by
:func:`build_commands`: the build runs those lists, and the Makefile is
written from the same lists, so ``make`` and ``edgebnn firmware build`` build
the same image.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgebnn import resources
from edgebnn.firmware import console as fw_console
from edgebnn.errors import TargetError, ToolchainError, UnsafeInputError
from edgebnn.escape import c_comment, c_include, ld_comment, make_comment, make_word
from edgebnn.firmware.size import SizeReport, parse_map
from edgebnn.io import atomic_write_bytes, atomic_write_text
from edgebnn.targets import Target, load_target
from edgebnn.toolchain import compile_commands, object_name, toolchain_for

TEMPLATES = resources.templates_dir()
METADATA = "firmware.json"
TARGET_COPY = "target.toml"
IMAGE = "fw.elf"
MAP = "build/fw.map"
#: Memory lengths used to re-link an image that overflows its budget, only to
#: measure it and report the numbers.
MEASURE_LENGTH = 0x10000000

_MAIN_RE = re.compile(r"\bint\s+main\s*\(")
_PLACEHOLDER_RE = re.compile(r"@([A-Z_]+)@")


@dataclass(frozen=True)
class SampleSet:
    """The inputs embedded in a firmware and the predictions expected of it.

    ``inputs`` is uint8 ``(n, input_size)`` (fed to the model as float32
    0..255); ``expected`` the expected class per sample; ``labels`` the
    dataset's labels (or None); ``source`` says where ``expected`` came from
    (``"lce"``: LCE's interpreter; ``"host-c"``: the host build of the same
    generated code; ``"given"``); ``origin`` where the inputs came from.
    """

    inputs: np.ndarray
    expected: np.ndarray
    source: str
    origin: str
    labels: np.ndarray | None = None

    def __post_init__(self):
        if self.inputs.ndim != 2 or self.inputs.dtype != np.uint8:
            raise TargetError(f"samples must be uint8 (n, input_size), found {self.inputs.dtype} {self.inputs.shape}")
        if len(self.expected) != len(self.inputs):
            raise TargetError(f"{len(self.inputs)} samples but {len(self.expected)} expected predictions")


@dataclass(frozen=True)
class ModelSources:
    """The generated C of one model: ``files`` maps a relative path to text.

    ``runtime_files`` names the files (keys of ``files``) that are runtime
    kernels rather than generated model code (for the size report).
    """

    name: str
    files: dict
    input_size: int
    output_size: int
    runtime_files: tuple = ()
    arena_bytes: int | None = None
    weights_bytes: int | None = None
    sha256: str = ""
    #: The model's kernel calls in call order (``{"ops", "type", "kernel",
    #: "output"}`` each): what ``ebnn_profile_op(k)`` marks in a profiling build.
    kernel_calls: tuple = ()


@dataclass(frozen=True)
class BuildResult:
    """A built firmware project."""

    directory: str
    target: str
    elf: str
    artifacts: dict
    size: SizeReport | None
    metadata: dict
    commands: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "directory": self.directory,
            "target": self.target,
            "elf": self.elf,
            "artifacts": self.artifacts,
            "size": self.size.to_dict() if self.size else None,
            "metadata": self.metadata,
        }


# ---------------------------------------------------------------- templates


def template_dir(target: Target) -> Path:
    d = TEMPLATES / target.template
    if not target.template or not d.is_dir():
        raise TargetError(
            f"target '{target.name}' ({target.source}) names template '{target.template}', "
            f"but {d} does not exist; templates: "
            f"{', '.join(sorted(p.name for p in TEMPLATES.iterdir() if p.is_dir() and p.name != 'common'))}"
        )
    return d


def fill(text: str, values: dict, *, what: str) -> str:
    """Replace ``@NAME@`` placeholders; every placeholder must have a value."""

    def sub(m):
        key = m.group(1)
        if key not in values:
            raise TargetError(f"template {what}: no value for placeholder @{key}@")
        return str(values[key])

    return _PLACEHOLDER_RE.sub(sub, text)


def _c_array_u8(rows) -> str:
    lines = []
    for row in rows:
        body = ",".join(str(int(v)) for v in row)
        lines.append("  {" + body + "},")
    return "\n".join(lines)


def samples_header(samples: SampleSet, input_size: int) -> str:
    """``samples.h``: the embedded inputs (uint8) and expected predictions."""
    n = len(samples.inputs)
    if samples.inputs.shape[1] != input_size:
        raise TargetError(
            f"the samples hold {samples.inputs.shape[1]} values each but the model's input has "
            f"{input_size}"
        )
    labels = samples.labels if samples.labels is not None else np.full(n, -1)
    out = [
        "/* edgebnn firmware samples: the test inputs and the predictions expected of them. */",
        f"/* inputs: {c_comment(samples.origin)}; expected predictions: {c_comment(samples.source)} */",
        "#ifndef EDGEBNN_FIRMWARE_SAMPLES_H_",
        "#define EDGEBNN_FIRMWARE_SAMPLES_H_",
        "",
        "#include <stdint.h>",
        "",
        f"#define FW_NUM_SAMPLES {n}",
        f"#define FW_SAMPLE_SIZE {input_size}",
        "",
        f"static const uint8_t fw_samples[{n}][{input_size}] = {{",
        _c_array_u8(samples.inputs),
        "};",
        "",
        f"static const int16_t fw_expected[{n}] = {{{', '.join(str(int(v)) for v in samples.expected)}}};",
        f"static const int16_t fw_labels[{n}] = {{{', '.join(str(int(v)) for v in labels)}}};",
        "",
        "#endif /* EDGEBNN_FIRMWARE_SAMPLES_H_ */",
        "",
    ]
    return "\n".join(out)


def model_shim(model: ModelSources) -> str:
    """``fw_model.h``: maps the generated API onto the names main.c uses."""
    from edgebnn.codegen.generator import check_name

    check_name(model.name, flag="model name")
    header = _find_api_header(model)
    upper = model.name.upper()
    return "\n".join([
        "/* edgebnn firmware: the generated model's API under the names main.c uses. */",
        "#ifndef EDGEBNN_FIRMWARE_FW_MODEL_H_",
        "#define EDGEBNN_FIRMWARE_FW_MODEL_H_",
        "",
        f"#include {c_include(Path(header).name, what='generated header')}",
        "",
        f"#define FW_MODEL_INPUT_SIZE ({upper}_INPUT_SIZE)",
        f"#define FW_MODEL_OUTPUT_SIZE ({upper}_OUTPUT_SIZE)",
        f"#define FW_MODEL_INVOKE {model.name}_invoke",
        f"#ifdef {upper}_KERNEL_CALLS",
        f"#define FW_MODEL_KERNEL_CALLS ({upper}_KERNEL_CALLS)",
        "#endif",
        f"#ifdef {upper}_IO_INT8",
        "#define FW_MODEL_IO_INT8 1",
        f"#define FW_MODEL_INPUT_SCALE ({upper}_INPUT_SCALE)",
        f"#define FW_MODEL_INPUT_ZERO_POINT ({upper}_INPUT_ZERO_POINT)",
        "#endif",
        "",
        "#endif /* EDGEBNN_FIRMWARE_FW_MODEL_H_ */",
        "",
    ])


def _find_api_header(model: ModelSources) -> str:
    want = f"{model.name}_invoke"
    for rel, text in sorted(model.files.items()):
        if rel.endswith(".h") and want in text:
            return rel
    raise TargetError(
        f"the generated sources declare no '{want}' in any header "
        f"(files: {', '.join(sorted(model.files))})"
    )


# ----------------------------------------------------------------- commands


def _obj_path(src: str) -> str:
    return object_name(src, "build")


def _project_sources(model: ModelSources) -> tuple:
    """(sources, include_dirs) relative to the project directory."""
    srcs = ["src/main.c", "src/ebnn_platform.c"]
    incs = {"src"}
    for rel, text in sorted(model.files.items()):
        path = _model_dest(model, rel)
        if rel.endswith(".c") and not _MAIN_RE.search(text):
            srcs.append(path)
        if rel.endswith(".h"):
            incs.add(str(Path(path).parent))
    return srcs, sorted(incs)


_REL_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*(/[A-Za-z0-9_][A-Za-z0-9_.+-]*)*")


def _check_relative(rel: str) -> None:
    """A generated file's name must stay inside the project and need no quoting."""
    if not isinstance(rel, str) or not _REL_RE.fullmatch(rel):
        raise UnsafeInputError(
            f"generated file name {rel!r} cannot go into a firmware project: expected a relative "
            "path of letters, digits, '_', '.', '+' and '-' (no '..', no absolute path)"
        )


def _model_dest(model: ModelSources, rel: str) -> str:
    """Where a generated file goes: runtime files under runtime/, the rest under model/."""
    base = "runtime" if rel in model.runtime_files else "model"
    parts = Path(rel).parts
    if parts and parts[0] == base:
        return rel
    return f"{base}/{rel}"


def build_commands(target: Target, sources: list, includes: list, *, linker_script: bool,
                   defines=()) -> dict:
    """Every command of a build: ``{"compile": [[...], ...], "link": [...], "objcopy": [[...]]}``.

    The compile and link commands come from :func:`edgebnn.toolchain.compile_commands`;
    ``defines`` are extra ``-D`` values (``EBNN_PROFILE`` for a profiling build).
    """
    link_flags = (["-T", "link.ld"] if linker_script else []) + [f"-Wl,-Map={MAP}"]
    cmds = compile_commands(target, sources, "program", output=IMAGE, includes=includes, objdir="build",
                            link_flags=link_flags, defines=defines)
    objcopy = []
    if target.is_mcu and target.objcopy:
        objcopy = [[target.objcopy, "-O", "binary", IMAGE, "fw.bin"],
                   [target.objcopy, "-O", "ihex", IMAGE, "fw.hex"]]
    return {"compile": cmds[:-1], "link": cmds[-1], "objcopy": objcopy}


def linker_values(target: Target, *, flash_length=None, ram_length=None) -> dict:
    return {
        "TARGET": ld_comment(target.name),
        "DESCRIPTION": ld_comment(target.description),
        "TARGET_FILE": TARGET_COPY,
        "STACK_BYTES": target.stack_bytes,
        "FLASH_ORIGIN": f"0x{target.flash_origin:08X}",
        "FLASH_LENGTH": flash_length if flash_length is not None else target.flash_bytes,
        "RAM_ORIGIN": f"0x{target.ram_origin:08X}",
        "RAM_LENGTH": ram_length if ram_length is not None else target.ram_bytes,
    }


def _make_words(words, what: str) -> str:
    return " ".join(make_word(w, what=what) for w in words)


def makefile(target: Target, commands: dict, sources: list) -> str:
    """A Makefile running exactly ``commands`` (for building by hand)."""
    compile0 = commands["compile"][0] if commands["compile"] else [target.cc]
    # compile command = CC CFLAGS -c src -o obj
    cflags = compile0[1:compile0.index("-c")] if "-c" in compile0 else []
    link = commands["link"]
    objs = [_obj_path(s) for s in sources]
    ldflags = list(toolchain_for(target).ldflags)
    pre = link[1:link.index(f"-Wl,-Map={MAP}")]
    emulator = target.emulator_command(elf=IMAGE, exe="./" + IMAGE, bin="fw.bin", hex="fw.hex", dir=".")
    src = f"target file {target.source or target.name!r}"
    lines = [
        f"# edgebnn firmware for target '{make_comment(target.name)}': {make_comment(target.description)}",
        "# Built by `edgebnn firmware build`; run `make` to rebuild by hand,",
        "# `make run` to run it" + (" under the emulator." if emulator else "."),
        *(["# This build prints through the board's UART and idles after its result line",
           "# (EBNN exit status=N): stop the emulator then (Ctrl-C)."]
          if target.console == "uart" and target.is_mcu else []),
        "",
        f"CC = {make_word(target.cc, what=f'{src}: toolchain.cc')}",
        "CFLAGS = " + _make_words(cflags, f"{src}: a compiler flag (toolchain.cflags)"),
        "LINKFLAGS = " + _make_words(pre, f"{src}: toolchain.cflags"),
        "LDFLAGS = " + _make_words(ldflags, f"{src}: toolchain.ldflags"),
        "OBJS = " + " \\\n\t".join(make_word(o, what="an object file") for o in objs),
        "",
        f"all: {IMAGE}" + (" fw.bin fw.hex" if commands["objcopy"] else ""),
        "",
        f"{IMAGE}: $(OBJS)" + (" link.ld" if "link.ld" in link else ""),
        f"\t$(CC) $(LINKFLAGS) -Wl,-Map={MAP} $(OBJS) $(LDFLAGS) -o $@",
        "",
        "build/%.o: %.c",
        "\t@mkdir -p $(dir $@)",
        "\t$(CC) $(CFLAGS) -c $< -o $@",
        "",
    ]
    if commands["objcopy"]:
        lines += [
            f"OBJCOPY = {make_word(target.objcopy, what=f'{src}: toolchain.objcopy')}",
            "",
            f"fw.bin: {IMAGE}",
            "\t$(OBJCOPY) -O binary $< $@",
            "",
            f"fw.hex: {IMAGE}",
            "\t$(OBJCOPY) -O ihex $< $@",
            "",
        ]
    run = _make_words(emulator, f"{src}: emulator.command") if emulator else "./" + IMAGE
    lines += [
        f"RUN = {run}",
        "",
        f"run: {IMAGE}",
        "\t$(RUN)",
        "",
        "clean:",
        f"\trm -rf build {IMAGE} fw.bin fw.hex",
        "",
        ".PHONY: all run clean",
        "",
    ]
    return "\n".join(lines)


# -------------------------------------------------------------------- write


def write_project(out_dir, *, target, model: ModelSources, samples: SampleSet,
                  metadata: dict | None = None, console: str | None = None) -> dict:
    """Write every source of a firmware project into ``out_dir``.

    ``console`` is where the firmware prints (``"semihosting"`` or
    ``"uart"``; None: the target's default, :mod:`edgebnn.firmware.console`).

    Returns:
        The project metadata (also written to ``firmware.json``).

    Raises:
        TargetError: the target's template is missing, or the model's
            generated API header cannot be found.
    """
    source_target = load_target(target)
    if console and not source_target.is_mcu:
        raise TargetError(f"a console ({console}) can be chosen for microcontroller targets only; "
                          f"target '{source_target.name}' is of kind '{source_target.kind}' and "
                          "prints to its standard output")
    target = fw_console.for_console(source_target, console) if source_target.is_mcu else source_target
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tdir = template_dir(target)
    common = TEMPLATES / "common"
    extra = fw_console.console_sources(target)
    for src in sorted(common.glob("*")):
        if src.is_file() and (src.name not in fw_console.CONSOLE_ONLY_FILES
                              or f"src/{src.name}" in extra):
            atomic_write_bytes(out / "src" / src.name, src.read_bytes())
    for rel, text in fw_console.console_files(target).items():
        atomic_write_text(out / rel, text)
    for src in sorted(tdir.glob("*")):
        if src.is_file() and not src.name.endswith(".in"):
            atomic_write_bytes(out / "src" / src.name, src.read_bytes())
    linker_script = (tdir / "link.ld.in").is_file()
    if linker_script:
        if not target.is_mcu:
            raise TargetError(f"template '{target.template}' has a linker script but target "
                              f"'{target.name}' is of kind '{target.kind}', without a memory map")
        text = fill((tdir / "link.ld.in").read_text(), linker_values(target), what="link.ld.in")
        atomic_write_text(out / "link.ld", text)
    for rel, text in sorted(model.files.items()):
        _check_relative(rel)
        if Path(rel).name == "Makefile":
            continue  # the project's own Makefile builds everything
        atomic_write_text(out / _model_dest(model, rel), text)
    atomic_write_text(out / "src" / "fw_model.h", model_shim(model))
    atomic_write_text(out / "src" / "samples.h", samples_header(samples, model.input_size))
    atomic_write_bytes(out / TARGET_COPY, Path(source_target.source).read_bytes())
    sources, includes = _project_sources(model)
    sources = sources[:2] + extra + sources[2:]
    commands = build_commands(target, sources, includes, linker_script=linker_script)
    atomic_write_text(out / "Makefile", makefile(target, commands, sources))
    meta = {
        "target": target.name,
        "target_kind": target.kind,
        "console": target.console if target.is_mcu else None,
        "model_name": model.name,
        "model_sha256": model.sha256,
        "input_size": model.input_size,
        "output_size": model.output_size,
        "arena_bytes": model.arena_bytes,
        "weights_bytes": model.weights_bytes,
        "samples": len(samples.inputs),
        "samples_origin": samples.origin,
        "expected_source": samples.source,
        "expected": [int(v) for v in samples.expected],
        "labels": None if samples.labels is None else [int(v) for v in samples.labels],
        "sources": sources,
        "includes": includes,
        "linker_script": linker_script,
        "image": IMAGE,
        "kernel_calls": [dict(c) for c in model.kernel_calls],
    }
    meta.update(metadata or {})
    atomic_write_text(out / METADATA, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return meta


def read_metadata(directory) -> dict:
    """The ``firmware.json`` of a built project.

    Raises:
        TargetError: the directory is not a firmware project.
    """
    path = Path(directory) / METADATA
    if not path.is_file():
        raise TargetError(
            f"{directory} is not a firmware project (no {METADATA}); build one with "
            "`edgebnn firmware build MODEL -t TARGET -o DIR`"
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise TargetError(f"{path} is not valid JSON: {exc}") from exc


def project_target(directory) -> Target:
    """The target a project was built for (its copy of the target file), as
    built for the console recorded in its ``firmware.json``."""
    target = load_target(Path(directory) / TARGET_COPY)
    has_meta = (Path(directory) / METADATA).is_file()
    console = read_metadata(directory).get("console") if has_meta else None
    return fw_console.for_console(target, console) if console else target


# -------------------------------------------------------------------- build


def _run(cmd, cwd, what, timeout=600):
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as exc:
        raise ToolchainError(f"{what}: executable '{cmd[0]}' not found") from exc
    except subprocess.TimeoutExpired as exc:
        raise ToolchainError(f"{what} timed out after {timeout} s: {shlex.join(cmd)}") from exc
    return proc


def _fail(what, cmd, proc):
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-25:]
    return ToolchainError(f"{what} failed (exit {proc.returncode}): {shlex.join(cmd)}\n" + "\n".join(tail))


_OVERFLOW_RE = re.compile(r"region `?'?(\w+)'? overflowed|will not fit in region|overflowed by \d+ bytes")


def build_project(directory, *, defines=()) -> BuildResult:
    """Compile and link a project written by :func:`write_project`.

    ``defines`` are extra ``-D`` values for every compile (the profiling
    build of :mod:`edgebnn.firmware.profile` passes ``EBNN_PROFILE``).

    The image is linked at the target's memory budget; when it does not fit,
    it is re-linked with oversized memories only to measure it, and the error
    gives the numbers by category.

    Raises:
        ToolchainError: a tool is missing (naming it and its Debian package)
            or the compiler failed.
        TargetError: the image does not fit the target's budget.
    """
    d = Path(directory)
    meta = read_metadata(d)
    target = project_target(d)
    tools = [target.cc] + ([target.objcopy] if target.is_mcu else [])
    for exe in tools:
        target.require(exe)
    sources, includes = meta["sources"], meta["includes"]
    linker_script = meta["linker_script"]
    commands = build_commands(target, sources, includes, linker_script=linker_script, defines=defines)
    ran = []
    for cmd in commands["compile"]:
        (d / Path(cmd[-1]).parent).mkdir(parents=True, exist_ok=True)
        proc = _run(cmd, d, "compiling")
        ran.append(cmd)
        if proc.returncode != 0:
            raise _fail("compiling", cmd, proc)
    link = commands["link"]
    proc = _run(link, d, "linking")
    ran.append(link)
    if proc.returncode != 0:
        if linker_script and _OVERFLOW_RE.search(proc.stderr):
            raise TargetError(_measure_overflow(d, target, link))
        raise _fail("linking", link, proc)
    for cmd in commands["objcopy"]:
        proc = _run(cmd, d, "objcopy")
        ran.append(cmd)
        if proc.returncode != 0:
            raise _fail("objcopy", cmd, proc)
    size = None
    if linker_script:
        size = parse_map((d / MAP).read_text(), flash_budget=target.flash_bytes,
                         ram_budget=target.ram_bytes)
        if not size.fits:  # pragma: no cover - the linker catches this first
            raise TargetError(size.overflow_message(target.name))
    artifacts = {"elf": str(d / IMAGE)}
    for name in ("fw.bin", "fw.hex"):
        if (d / name).is_file() and commands["objcopy"]:
            artifacts[name.split(".")[1]] = str(d / name)
    result = BuildResult(directory=str(d), target=target.name, elf=str(d / IMAGE),
                         artifacts=artifacts, size=size, metadata=meta, commands=ran)
    if size is not None:
        meta = dict(meta, size=size.to_dict())
        atomic_write_text(d / METADATA, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return result


def _measure_overflow(d: Path, target: Target, link: list) -> str:
    """Re-link with huge memories into build/, read the map, describe the overflow."""
    tdir = template_dir(target)
    text = fill((tdir / "link.ld.in").read_text(),
                linker_values(target, flash_length=MEASURE_LENGTH, ram_length=MEASURE_LENGTH),
                what="link.ld.in")
    atomic_write_text(d / "build" / "measure.ld", text)
    cmd = [("build/measure.ld" if w == "link.ld" else
            "-Wl,-Map=build/measure.map" if w.startswith("-Wl,-Map=") else
            "build/measure.elf" if w == IMAGE else w) for w in link]
    proc = _run(cmd, d, "linking (to measure)")
    if proc.returncode != 0:
        raise _fail("linking (to measure the overflow)", cmd, proc)
    size = parse_map((d / "build" / "measure.map").read_text(), flash_budget=target.flash_bytes,
                     ram_budget=target.ram_bytes)
    return size.overflow_message(target.name)


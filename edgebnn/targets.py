"""Build targets as data: one TOML file per board in ``targets/``.

A target names its toolchain, compiler and linker flags, the runtime kernel
set, its memory budget, the emulator command that runs an image and the
flashing tool. Nothing in edgebnn branches on a target's name: generators and
commands read these fields, so adding a board is adding a file.

A target file (all sizes in bytes; ``{elf}``, ``{exe}``, ``{bin}``, ``{hex}``
in command templates are replaced by the paths of the built image)::

    name = "cortex-m4"
    description = "Cortex-M4F on QEMU mps2-an386; STM32F4-class budget"
    kind = "mcu"                      # "host" | "linux" | "mcu"
    arch = "armv7e-m"
    cpu = "cortex-m4"
    template = "cortex-m"             # firmware/templates/<template>/
    kernels = "mcu"                   # runtime kernel set (edgebnn.toolchain.KERNEL_SETS)

    [toolchain]
    cc = "arm-none-eabi-gcc"
    cflags = ["-mcpu=cortex-m4", "-mthumb", "-O2"]
    ldflags = ["--specs=picolibc.specs"]
    objcopy = "arm-none-eabi-objcopy"
    size = "arm-none-eabi-size"

    [memory]
    flash_bytes = 524288
    ram_bytes = 131072
    flash_origin = 0x00000000
    ram_origin = 0x20000000
    stack_bytes = 8192

    [emulator]
    command = ["qemu-system-arm", "-M", "mps2-an386", "-kernel", "{elf}"]
    machine = "mps2-an386"
    timer_hz = 25000000               # SysTick clock under QEMU
    instructions_per_tick = 40        # optional; default 1e9 / timer_hz
                                      # (-icount shift=0: 1 instruction = 1 ns)

    [flash]
    tool = "openocd"
    command = ["openocd", "-c", "program {elf} verify reset exit"]

    [packages]                        # executable -> Debian package
    arm-none-eabi-gcc = "gcc-arm-none-eabi"

Example:
    >>> from edgebnn.targets import load_target
    >>> t = load_target("cortex-m4")
    >>> t.kind, t.flash_bytes
    ('mcu', 524288)
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgebnn.errors import TargetError, ToolchainError

try:  # Python >= 3.11
    import tomllib as _toml
except ImportError:  # pragma: no cover - Python 3.10
    try:
        import tomli as _toml
    except ImportError:
        _toml = None

KINDS = ("host", "linux", "mcu")
#: A target's name: it is a file stem, a ``-t`` value and part of comments.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
#: Target files are written into Makefiles, linker scripts and C comments
#: (see :mod:`edgebnn.escape`); no field may hold a control character.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
PLACEHOLDERS = ("elf", "exe", "bin", "hex", "dir")

#: The name of this machine's target (:func:`edgebnn.toolchain.native_target`).
NATIVE = "native"

#: Environment variable naming extra directories (``os.pathsep``-separated)
#: searched for target files before the built-in ones.
TARGETS_PATH_ENV = "EDGEBNN_TARGETS_PATH"


def builtin_targets_dir() -> Path:
    """The directory holding the shipped target files (``targets/``)."""
    from edgebnn import resources

    return resources.targets_dir()


@dataclass(frozen=True)
class Target:
    """A build target, loaded from a ``targets/*.toml`` file.

    Attributes:
        name: the target's name (``edgebnn firmware build -t NAME``).
        description: one line for ``edgebnn targets``.
        kind: ``"host"`` (this machine), ``"linux"`` (an Arm Linux board,
            cross-compiled, run under user-mode QEMU) or ``"mcu"`` (bare
            metal, run under system QEMU with semihosting).
        arch: the architecture (``x86_64``, ``aarch64``, ``armv7e-m``...).
        cpu: the core (``cortex-m4``, ``cortex-a72``...), informative.
        template: the firmware template directory under
            ``firmware/templates/``.
        kernels: the runtime kernel set the generated code calls: a name in
            :data:`edgebnn.toolchain.KERNEL_SETS` (an unknown name is an error).
        cc, cflags, ldflags, objcopy, size_tool: the toolchain.
        flash_bytes, ram_bytes: the memory budget (``None`` for host/linux).
        flash_origin, ram_origin: where flash and RAM start in the image's
            memory map (the emulated board's for QEMU targets).
        stack_bytes: the stack reserved by the linker script (mcu).
        emulator: the command template that runs the image, empty when the
            image runs natively (host).
        qemu_machine: the QEMU board (mcu) or CPU model (linux).
        timer_hz: the clock of the timer used to count (SysTick on mcu).
        instructions_per_tick: emulated instructions per timer tick under
            ``-icount shift=0`` (1 instruction = 1 ns of virtual time); when
            the file leaves it out, ``1e9 / timer_hz``.
        flash_tool: the executable that programs a board.
        flash_command: the command template that programs a board.
        packages: ``(executable, debian_package)`` pairs, to tell users what
            to install.
        debian_packages: every Debian package the target needs.
        console: where the firmware prints by default, ``"semihosting"``
            or ``"uart"`` (:mod:`edgebnn.firmware.console`).
        console_ldflags: ``(console, flags)`` pairs: link flags added for
            each console.
        uart: the board's serial port
            (:class:`edgebnn.firmware.console.UartConfig`), or None.
        serial_emulator: the emulator command for a UART build (the
            board's serial port on stdout, no semihosting).
        source: the file the target was loaded from.
    """

    name: str
    description: str
    kind: str
    arch: str
    cc: str
    cpu: str = ""
    template: str = ""
    kernels: str = "ref"
    threads: bool = False  # host targets: the _opt kernels may use pthreads (-DEBNN_THREADS=1 -pthread)
    fuse: bool = True  # default of generate(): fuse conv -> pool -> affine -> binarize chains (saves RAM)
    cflags: tuple = ()
    ldflags: tuple = ()
    objcopy: str = ""
    size_tool: str = ""
    flash_bytes: int | None = None
    ram_bytes: int | None = None
    flash_origin: int | None = None
    ram_origin: int | None = None
    stack_bytes: int | None = None
    emulator: tuple = ()
    qemu_machine: str = ""
    timer_hz: int | None = None
    instructions_per_tick: float | None = None
    flash_tool: str = ""
    flash_command: tuple = ()
    packages: tuple = ()
    debian_packages: tuple = ()
    console: str = "semihosting"
    console_ldflags: tuple = ()
    uart: object = None
    serial_emulator: tuple = ()
    source: str = field(default="", compare=False)

    @property
    def is_mcu(self) -> bool:
        return self.kind == "mcu"

    @property
    def ticks_to_instructions(self) -> float | None:
        """Emulated instructions per timer tick (None without a timer)."""
        if self.instructions_per_tick:
            return float(self.instructions_per_tick)
        if self.timer_hz:
            return 1e9 / self.timer_hz
        return None

    @property
    def emulated(self) -> bool:
        """True when images run under an emulator rather than natively."""
        return bool(self.emulator)

    def package_for(self, executable: str) -> str | None:
        """The Debian package providing ``executable``, when the file says."""
        for exe, pkg in self.packages:
            if exe == executable:
                return pkg
        return None

    def tools(self) -> dict:
        """Role -> executable for every tool this target uses."""
        roles = {
            "cc": self.cc,
            "objcopy": self.objcopy,
            "size": self.size_tool,
            "emulator": self.emulator[0] if self.emulator else "",
            "flash": self.flash_tool,
        }
        return {role: exe for role, exe in roles.items() if exe}

    def require(self, executable: str) -> str:
        """Return the full path of ``executable`` or raise :class:`ToolchainError`.

        Raises:
            ToolchainError: naming the executable and the Debian package.
        """
        return require_executable(executable, package=self.package_for(executable),
                                  target=self.name)

    def emulator_command(self, **paths) -> list:
        """The emulator command with ``{elf}``/``{exe}``... filled in."""
        return fill_template(self.emulator, paths, what=f"target '{self.name}' emulator")

    def flash_command_line(self, **paths) -> list:
        """The flashing command with ``{elf}``/``{bin}``/``{hex}`` filled in."""
        return fill_template(self.flash_command, paths, what=f"target '{self.name}' flash command")

    def to_dict(self) -> dict:
        d = asdict(self)
        for key, value in d.items():
            if isinstance(value, tuple):
                d[key] = [list(v) if isinstance(v, tuple) else v for v in value]
        d["packages"] = dict(self.packages)
        return d


def fill_template(template, paths: dict, *, what: str = "command") -> list:
    """Replace ``{elf}``-style placeholders in each word of ``template``.

    Raises:
        TargetError: a placeholder in the template was not given.
    """
    values = {k: str(v) for k, v in paths.items()}
    out = []
    for word in template:
        try:
            out.append(word.format(**values))
        except (KeyError, IndexError) as exc:
            raise TargetError(
                f"{what}: placeholder {exc} in {word!r} has no value; "
                f"known placeholders here: {sorted(values) or 'none'}"
            ) from exc
    return out


def require_executable(executable: str, *, package: str | None = None,
                       target: str | None = None) -> str:
    """The path of ``executable`` on PATH, or :class:`ToolchainError`."""
    found = shutil.which(executable)
    if found:
        return found
    where = f" (needed by target '{target}')" if target else ""
    hint = f"; install the Debian package '{package}' (apt-get install {package})" if package else ""
    raise ToolchainError(f"executable '{executable}' not found on PATH{where}{hint}")


def _search_dirs() -> list:
    dirs = [Path(p) for p in os.environ.get(TARGETS_PATH_ENV, "").split(os.pathsep) if p]
    dirs.append(builtin_targets_dir())
    return dirs


def _target_files() -> dict:
    """name (file stem) -> path; earlier search directories win."""
    files = {}
    for d in _search_dirs():
        if d.is_dir():
            for p in sorted(d.glob("*.toml")):
                files.setdefault(p.stem, p)
    return files


def list_targets() -> list:
    """Every known target, sorted by name.

    Raises:
        TargetError: a target file is malformed.
    """
    return [load_target(path) for _, path in sorted(_target_files().items())]


def target_names() -> list:
    return sorted(_target_files())


def load_target(name_or_path) -> Target:
    """Load a target by name (``targets/NAME.toml``) or from a TOML file path.

    ``native`` is this machine (:func:`edgebnn.toolchain.native_target`).

    Raises:
        TargetError: unknown name (the message lists the known targets), or a
            malformed file (the message names the file and the field).
    """
    if isinstance(name_or_path, Target):
        return name_or_path
    text = str(name_or_path)
    path = Path(text)
    by_name = False
    if text.endswith(".toml") or path.is_file():
        if not path.is_file():
            raise TargetError(f"target file {path} does not exist")
    else:
        files = _target_files()
        if text == NATIVE and text not in files:
            from edgebnn.toolchain import native_target

            return native_target()
        if text not in files:
            raise TargetError(
                f"unknown target '{text}'; known targets: {', '.join(sorted(files)) or 'none'} "
                f"(files in {', '.join(str(d) for d in _search_dirs())})"
            )
        path = files[text]
        by_name = True
    if _toml is None:  # pragma: no cover
        raise TargetError("reading target files needs Python >= 3.11 (tomllib) or the 'tomli' package")
    try:
        data = _toml.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise TargetError(f"cannot read target file {path}: {exc}") from exc
    except _toml.TOMLDecodeError as exc:
        raise TargetError(f"target file {path} is not valid TOML: {exc}") from exc
    return _parse(data, path, check_stem=by_name)


class _Reader:
    """Typed access to a TOML table, with errors naming the file and field."""

    def __init__(self, data: dict, path: Path, prefix: str = ""):
        self.data, self.path, self.prefix = data, path, prefix
        self.used = set()

    def _err(self, key, expected, found):
        return TargetError(
            f"target file {self.path}: field '{self.prefix}{key}' must be {expected}, "
            f"found {found!r}"
        )

    def get(self, key, kind, *, required=False, default=None):
        self.used.add(key)
        if key not in self.data:
            if required:
                raise TargetError(f"target file {self.path}: required field '{self.prefix}{key}' is missing")
            return default
        value = self.data[key]
        if kind == "str":
            if not isinstance(value, str) or (required and not value):
                raise self._err(key, "a non-empty string" if required else "a string", value)
            self._check_text(key, value)
        elif kind == "int":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise self._err(key, "a non-negative integer", value)
        elif kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise self._err(key, "a positive number", value)
        elif kind == "bool":
            if not isinstance(value, bool):
                raise self._err(key, "true or false", value)
        elif kind == "strlist":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise self._err(key, "a list of strings", value)
            for v in value:
                self._check_text(key, v)
            value = tuple(value)
        elif kind == "table":
            if not isinstance(value, dict):
                raise self._err(key, "a table", value)
        return value

    def _check_text(self, key, value):
        bad = _CONTROL_RE.search(value)
        if bad:
            raise self._err(key, f"text without control characters (found {bad.group()!r}, which a "
                            "generated Makefile or comment cannot hold)", value)

    def table(self, key) -> "_Reader":
        value = self.get(key, "table", default={})
        return _Reader(value, self.path, f"{self.prefix}{key}.")

    def check_unknown(self):
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise TargetError(
                f"target file {self.path}: unknown field(s) "
                f"{', '.join(self.prefix + k for k in unknown)}; "
                f"known here: {', '.join(self.prefix + k for k in sorted(self.used))}"
            )


def _check_placeholders(template, path, field_name):
    import string

    for word in template:
        for _, name, _, _ in string.Formatter().parse(word):
            if name is not None and name not in PLACEHOLDERS:
                raise TargetError(
                    f"target file {path}: field '{field_name}' uses placeholder '{{{name}}}' "
                    f"in {word!r}; known placeholders: {', '.join(PLACEHOLDERS)}"
                )


def _kernel_set_name(top: "_Reader", path: Path) -> str:
    from edgebnn.toolchain import kernel_set

    name = top.get("kernels", "str", default="ref")
    return kernel_set(name, where=f"target file {path}: field 'kernels'").name


def _parse(data: dict, path: Path, *, check_stem: bool = True) -> Target:
    top = _Reader(data, path)
    name = top.get("name", "str", required=True)
    if not NAME_RE.fullmatch(name):
        raise top._err("name", "letters, digits, '.', '_', '+' and '-', starting with a letter or digit",
                       name)
    if check_stem and name != path.stem:
        raise TargetError(
            f"target file {path}: field 'name' is {name!r} but the file is named "
            f"{path.name}; they must match ({name}.toml)"
        )
    kind = top.get("kind", "str", required=True)
    if kind not in KINDS:
        raise top._err("kind", f"one of {', '.join(KINDS)}", kind)
    tc = top.table("toolchain")
    mem = top.table("memory")
    emu = top.table("emulator")
    fl = top.table("flash")
    con = top.table("console")
    pk = top.get("packages", "table", default={})
    for exe, pkg in pk.items():
        if not isinstance(pkg, str) or not pkg or _CONTROL_RE.search(exe + pkg):
            raise TargetError(f"target file {path}: field 'packages.{exe}' must be a Debian package name, found {pkg!r}")
    t = dict(
        name=name,
        kind=kind,
        description=top.get("description", "str", required=True),
        arch=top.get("arch", "str", required=True),
        cpu=top.get("cpu", "str", default=""),
        template=top.get("template", "str", default=""),
        kernels=_kernel_set_name(top, path),
        threads=top.get("threads", "bool", default=False),
        fuse=top.get("fuse", "bool", default=True),
        debian_packages=top.get("debian_packages", "strlist", default=()),
        cc=tc.get("cc", "str", required=True),
        cflags=tc.get("cflags", "strlist", default=()),
        ldflags=tc.get("ldflags", "strlist", default=()),
        objcopy=tc.get("objcopy", "str", default=""),
        size_tool=tc.get("size", "str", default=""),
        flash_bytes=mem.get("flash_bytes", "int"),
        ram_bytes=mem.get("ram_bytes", "int"),
        flash_origin=mem.get("flash_origin", "int"),
        ram_origin=mem.get("ram_origin", "int"),
        stack_bytes=mem.get("stack_bytes", "int"),
        emulator=emu.get("command", "strlist", default=()),
        qemu_machine=emu.get("machine", "str", default=""),
        timer_hz=emu.get("timer_hz", "int"),
        instructions_per_tick=emu.get("instructions_per_tick", "number"),
        flash_tool=fl.get("tool", "str", default=""),
        flash_command=fl.get("command", "strlist", default=()),
        packages=tuple(sorted(pk.items())),
        source=str(path),
    )
    from edgebnn.firmware.console import parse_console

    t.update(parse_console(con, emu, path, t["ldflags"]))
    top.get("packages", "table")
    for r in (top, tc, mem, emu, fl, con):
        r.check_unknown()
    if kind == "mcu" and t["threads"]:
        raise TargetError(f"target file {path}: 'threads = true' is for Linux/host targets, not an mcu target")
    if kind == "mcu":
        for key in ("flash_bytes", "ram_bytes", "flash_origin", "ram_origin", "stack_bytes"):
            if t[key] is None:
                raise TargetError(f"target file {path}: an mcu target needs 'memory.{key}'")
        for key, label in (("objcopy", "toolchain.objcopy"), ("size_tool", "toolchain.size"),
                           ("template", "template")):
            if not t[key]:
                raise TargetError(f"target file {path}: an mcu target needs '{label}'")
        if t["stack_bytes"] >= t["ram_bytes"]:
            raise TargetError(
                f"target file {path}: memory.stack_bytes ({t['stack_bytes']}) must be smaller "
                f"than memory.ram_bytes ({t['ram_bytes']})"
            )
    if t["flash_command"] and not t["flash_tool"]:
        t["flash_tool"] = t["flash_command"][0]
    if t["flash_tool"] and t["flash_command"] and t["flash_command"][0] != t["flash_tool"]:
        raise TargetError(
            f"target file {path}: flash.command starts with {t['flash_command'][0]!r} "
            f"but flash.tool is {t['flash_tool']!r}"
        )
    _check_placeholders(t["emulator"], path, "emulator.command")
    _check_placeholders(t["flash_command"], path, "flash.command")
    _check_placeholders(t["serial_emulator"], path, "emulator.serial_command")
    return Target(**t)


def toolchain_status(target) -> dict:
    """Which of the target's executables are on PATH here.

    Returns:
        ``{"tools": {role: {"executable", "path", "found", "package"}},
        "build": bool, "run": bool, "flash": bool}`` where ``build`` is true
        when the compiler (and objcopy/size for mcu) are found, ``run`` when
        the image can be run here (natively or under the emulator) and
        ``flash`` when the flashing tool is found.
    """
    target = load_target(target)
    tools = {}
    for role, exe in target.tools().items():
        path = shutil.which(exe)
        tools[role] = {"executable": exe, "path": path, "found": path is not None,
                       "package": target.package_for(exe)}

    def ok(*roles):
        return all(tools[r]["found"] for r in roles if r in tools)

    build = ok("cc", "objcopy", "size")
    return {
        "tools": tools,
        "build": build,
        "run": build and ok("emulator"),
        "flash": bool(target.flash_tool) and ok("flash"),
    }

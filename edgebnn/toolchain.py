"""The one place that knows compilers, flags and kernel sets.

Every build of generated C goes through this module: the exported Makefile
(:mod:`edgebnn.codegen.generator`), the host bench and predict programs
(:mod:`edgebnn.hostprog`) and firmware projects
(:mod:`edgebnn.firmware.project`). A build is described by a
:class:`Toolchain` (compiler, archiver, flags and kernel set of one target)
and run as the argument lists of :func:`compile_commands`.

Three kinds of target reach here:

- a target file (``targets/NAME.toml``, :func:`edgebnn.targets.load_target`);
- ``native``: this machine, the host target file whose ``arch`` is this
  machine's, else one made from ``$CC`` (:func:`native_target`);
- ``None``: the portable default of ``edgebnn export`` without ``--target``
  (``cc -O2``, the ``ref`` kernels), for code that will be built elsewhere.

Example:
    >>> from edgebnn import toolchain
    >>> tc = toolchain.toolchain_for("cortex-m4")
    >>> tc.cc, tc.cflags[0], tc.cflags[-3]
    ('arm-none-eabi-gcc', '-std=c99', '-ffp-contract=off')
    >>> cmds = toolchain.compile_commands("cortex-m4", ["a.c"], "objects")
    >>> cmds[0][-3:]
    ['a.c', '-o', 'a.o']
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from edgebnn.errors import TargetError

# ------------------------------------------------------------- kernel sets


@dataclass(frozen=True)
class KernelSet:
    """A family of runtime kernel variants.

    ``variants`` are the C suffixes tried in order for each kernel: the
    generator calls ``ebnn_<op>_<variant>`` for the first variant the runtime
    defines. Every set ends with ``ref``, which every kernel has; every
    variant is bit-identical to ``ref`` (tested per kernel).
    """

    name: str
    variants: tuple
    description: str

    def pick(self, base: str, defined) -> str:
        """The function to call for kernel ``base`` given the runtime's ``defined`` names."""
        for v in self.variants:
            fn = f"{base}_{v}"
            if fn in defined:
                return fn
        return f"{base}_ref"


#: The kernel sets a target file's ``kernels`` field may name. Vector code
#: (AVX2/AVX-512, NEON, the Arm DSP extension) lives inside a set's kernels
#: behind the compiler's feature macros, so a target's ``-march``/``-mcpu``
#: flags choose it.
KERNEL_SETS = {
    "ref": KernelSet("ref", ("ref",),
                     "portable C99 reference kernels: any C compiler, smallest stack"),
    "opt": KernelSet("opt", ("opt", "ref"),
                     "host and Linux CPUs: cache-friendly loop orders and vector code; more stack"),
    "mcu": KernelSet("mcu", ("mcu", "ref"),
                     "M-profile cores: popcount without a popcount instruction, DSP extension for int8"),
}
#: Older names still accepted in target files and ``kernels=`` arguments.
KERNEL_SET_ALIASES = {"portable": "ref"}


def kernel_set(name, *, where: str = "kernel set") -> KernelSet:
    """The :class:`KernelSet` called ``name`` (or an alias of it).

    Raises:
        TargetError: an unknown name; the message lists the known sets.
    """
    if isinstance(name, KernelSet):
        return name
    key = KERNEL_SET_ALIASES.get(name, name)
    if key not in KERNEL_SETS:
        known = ", ".join(f"{k} ({v.description})" for k, v in KERNEL_SETS.items())
        raise TargetError(f"{where}: unknown kernel set {name!r}; known kernel sets: {known}")
    return KERNEL_SETS[key]


# ------------------------------------------------------------------- flags

#: Flags of every compilation, whatever the target:
#: -std=c99: the runtime and the generated code are ISO C99;
#: -ffp-contract=off: no fused multiply-add. Cortex-M4F/M7, AArch64 and x86
#: with FMA would otherwise round a * b + c once instead of twice, and the C
#: engine would stop matching LCE, TFLite and its own builds on other
#: targets bit for bit. It comes after the target's flags, so a target file
#: cannot turn contraction back on.
STD_CFLAGS = ("-std=c99",)
FP_CFLAGS = ("-ffp-contract=off",)
#: Warnings for every compilation (never -Werror: a user's newer compiler
#: must not break the build).
WARNING_CFLAGS = ("-Wall", "-Wextra")
#: The portable default (no target): any C compiler called ``cc``.
PORTABLE_CC = "cc"
PORTABLE_CFLAGS = ("-O2",)
#: Flags that only make sense for the compiler's own machine; dropped when the
#: compiler refuses them.
NATIVE_FLAGS = ("-march=native", "-mcpu=native", "-mtune=native")
#: Targets with ``threads = true`` (host and Linux): the runtime may split
#: kernels over POSIX threads (``ebnn_set_threads``, ``$EBNN_NUM_THREADS``).
THREAD_CFLAGS = ("-DEBNN_THREADS=1", "-pthread")
#: The environment variable naming the native compiler.
CC_ENV = "CC"

KINDS = ("objects", "program", "library")


@dataclass(frozen=True)
class Toolchain:
    """What every build for one target runs.

    Attributes:
        target: the :class:`edgebnn.targets.Target`, or None for the portable
            default.
        cc, ar: the compiler and archiver executables.
        cflags: flags of each compilation, in order.
        link_cflags: the target's (and the caller's extra) flags given again
            when linking (``-mcpu``, ``--specs``, ``-fsanitize``...).
        ldflags: flags after the objects when linking (libraries).
        kernels: the :class:`KernelSet` the generated code calls.
    """

    target: object
    cc: str
    ar: str
    cflags: tuple
    link_cflags: tuple
    ldflags: tuple
    kernels: KernelSet

    @property
    def name(self) -> str:
        return self.target.name if self.target is not None else "portable"


def _archiver(cc: str) -> str:
    """``ar`` of the compiler's binutils: ``arm-none-eabi-gcc`` -> ``arm-none-eabi-ar``."""
    base = os.path.basename(cc)
    if base.endswith("gcc"):
        return cc[: len(cc) - len("gcc")] + "ar"
    if base.endswith("clang"):
        return cc[: len(cc) - len("clang")] + "llvm-ar"
    return "ar"


_ACCEPTS = {}


def compiler_accepts(cc: str, flag: str) -> bool:
    """Whether ``cc`` compiles an empty program with ``flag`` (cached per process)."""
    key = (cc, flag)
    if key not in _ACCEPTS:
        if shutil.which(cc) is None:
            _ACCEPTS[key] = True  # no compiler: the build reports that, not the probe
        else:
            with tempfile.TemporaryDirectory() as d:
                src = Path(d) / "probe.c"
                src.write_text("int main(void) { return 0; }\n")
                proc = subprocess.run([cc, flag, "-c", str(src), "-o", str(Path(d) / "probe.o")],
                                      capture_output=True)
                _ACCEPTS[key] = proc.returncode == 0
    return _ACCEPTS[key]


def native_target():
    """The target of this machine.

    The host target file (``kind = "host"``) whose ``arch`` is this machine's
    (``platform.machine()``) when there is one, else a target made here:
    ``$CC`` (default ``gcc``), ``-O3 -march=native``, the ``opt`` kernels.
    ``$CC`` replaces the file's compiler when set.
    """
    from edgebnn.targets import Target, list_targets

    machine = platform.machine().lower()
    aliases = {"amd64": "x86_64", "arm64": "aarch64"}
    machine = aliases.get(machine, machine)
    cc_env = os.environ.get(CC_ENV, "").strip()
    for t in list_targets():
        if t.kind == "host" and aliases.get(t.arch.lower(), t.arch.lower()) == machine:
            return replace(t, cc=cc_env) if cc_env else t
    return Target(name="native", description=f"this machine ({machine}), host compiler",
                  kind="host", arch=machine, cpu="native", cc=cc_env or "gcc", kernels="opt",
                  cflags=("-O3", "-march=native"), ldflags=("-lm",), objcopy="objcopy",
                  size_tool="size", source="(built in: no host target file for this machine)")


def resolve_target(target):
    """A :class:`Target` from a name, a path, ``"native"``, a Target or None (kept None)."""
    if target is None:
        return None
    from edgebnn.targets import Target, load_target

    if isinstance(target, Target):
        return target
    return load_target(target)


def toolchain_for(target=None, *, cc: str | None = None, kernels=None, extra_cflags=()) -> Toolchain:
    """The :class:`Toolchain` of ``target`` (see :func:`resolve_target`).

    Args:
        target: a target name, file, ``"native"``, a Target, or None for the
            portable default.
        cc: use this compiler instead of the target's.
        kernels: use this kernel set instead of the target's.
        extra_cflags: more compile flags, after the target's.

    Raises:
        TargetError: an unknown target or kernel set.
    """
    target = resolve_target(target)
    if target is None:
        compiler = cc or PORTABLE_CC
        tflags, link, ldflags = PORTABLE_CFLAGS, tuple(extra_cflags), ("-lm",)
        kset = kernel_set(kernels or "ref", where="kernels")
    else:
        compiler = cc or target.cc
        tflags = tuple(target.cflags)
        if target.kind == "host":
            tflags = tuple(f for f in tflags if f not in NATIVE_FLAGS or compiler_accepts(compiler, f))
        if getattr(target, "threads", False):  # the _opt kernels' thread pool (ebnn_threads.c)
            tflags += THREAD_CFLAGS
        link, ldflags = tflags + tuple(extra_cflags), tuple(target.ldflags)
        kset = kernel_set(kernels or target.kernels, where=f"target '{target.name}' kernels")
    cflags = STD_CFLAGS + tflags + tuple(extra_cflags) + FP_CFLAGS + WARNING_CFLAGS
    return Toolchain(target=target, cc=compiler, ar=_archiver(compiler), cflags=cflags,
                     link_cflags=tuple(link), ldflags=ldflags, kernels=kset)


def object_name(source: str, objdir: str = "") -> str:
    """Where ``source`` compiles to: ``objdir/<source without .c>.o``.

    A relative source keeps its folders under ``objdir`` (``src/main.c`` ->
    ``build/src/main.o``); an absolute one keeps only its file name.
    """
    source = str(source)
    if os.path.isabs(source):
        source = os.path.basename(source)
    stem = source[:-2] if source.endswith(".c") else source
    return f"{objdir.rstrip('/')}/{stem}.o" if objdir else f"{stem}.o"


def compile_commands(target, sources, kind: str, *, output: str | None = None, includes=(),
                     defines=(), objdir: str = "", objects=(), link_flags=(), toolchain=None,
                     **options) -> list:
    """The argument lists that build ``sources`` for ``target``.

    Args:
        target: as :func:`toolchain_for` (ignored when ``toolchain`` is given).
        sources: C files (paths as the commands should name them).
        kind: ``"objects"`` (one ``-c`` command per source),
            ``"program"`` (those, then a link into ``output``) or
            ``"library"`` (those, then ``ar rcs output``).
        output: the program or library to write (``program``/``library``).
        includes: ``-I`` directories. defines: ``-D`` values (``NAME`` or
            ``NAME=VALUE``).
        objdir: where objects go (:func:`object_name`).
        objects: already-built objects to link as well.
        link_flags: more link flags before the objects (``-T link.ld``,
            ``-Wl,-Map=...``).
        toolchain: a :class:`Toolchain` to use as is.
        options: passed to :func:`toolchain_for` (``cc``, ``kernels``,
            ``extra_cflags``).

    Returns:
        a list of argument lists, to run in order.

    Raises:
        TargetError: an unknown kind, or no ``output`` for a program/library.
    """
    if kind not in KINDS:
        raise TargetError(f"unknown build kind {kind!r}; expected one of {', '.join(KINDS)}")
    tc = toolchain or toolchain_for(target, **options)
    flags = [*tc.cflags, *(f"-I{d}" for d in includes), *(f"-D{d}" for d in defines)]
    cmds = [[tc.cc, *flags, "-c", src, "-o", object_name(src, objdir)] for src in sources]
    if kind == "objects":
        return cmds
    if not output:
        raise TargetError(f"a {kind} build needs an output file")
    objs = [object_name(s, objdir) for s in sources] + [str(o) for o in objects]
    if kind == "program":
        cmds.append([tc.cc, *tc.link_cflags, *link_flags, *objs, *tc.ldflags, "-o", output])
    else:
        cmds.append([tc.ar, "rcs", output, *objs])
    return cmds

"""Compile generated model code into host programs: a benchmark and a batch predictor.

``build_bench_program`` links the generated sources with
``firmware/templates/host/bench_main.c``: ``prog WARMUP RUNS`` reads one
input (little-endian float32) from stdin and prints one JSON object with
per-invoke times (``clock_gettime(CLOCK_MONOTONIC)``), the output, and the
arena and weights bytes. ``predict_c`` links ``predict_main.c`` (many inputs
on stdin, outputs on stdout) and returns the outputs for a batch.

Example:
    >>> exe = build_bench_program("model.tflite", "build/")  # doctest: +SKIP
    >>> y = predict_c("model.tflite", x_test[:100])  # doctest: +SKIP
"""

import atexit
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from edgebnn.codegen.generator import HOST_TEMPLATES, RUNTIME_DIR, generate
from edgebnn.errors import EngineError, ToolchainError

#: Flags for host builds: ISO C99, optimized for this machine, the
#: hardware popcount; -ffp-contract=off keeps a * b + c from becoming an FMA,
#: so results stay bit-identical to a plain -O0 build (tested) and to the
#: reference kernels. -march=native is dropped if the compiler refuses it.
HOST_CFLAGS = ("-std=c99", "-O3", "-march=native", "-ffp-contract=off", "-DEBNN_USE_BUILTIN_POPCOUNT")
_NATIVE_OK = {}
#: Kernel set of host builds (no target): the ``_opt`` variants of the
#: runtime (bit-identical to ``_ref``; a bigger stack, fine on a host).
HOST_KERNELS = "opt"


def host_cflags(compiler) -> list:
    """:data:`HOST_CFLAGS`, without ``-march=native`` when ``compiler`` rejects it."""
    if compiler not in _NATIVE_OK:
        with tempfile.TemporaryDirectory() as d:
            src = Path(d) / "probe.c"
            src.write_text("int main(void) { return 0; }\n")
            proc = subprocess.run([compiler, "-march=native", "-c", str(src), "-o", str(Path(d) / "probe.o")],
                                  capture_output=True)
            _NATIVE_OK[compiler] = proc.returncode == 0
    return [f for f in HOST_CFLAGS if _NATIVE_OK[compiler] or f != "-march=native"]


def _compiler(target, cc):
    if cc:
        exe = cc
    elif target is not None and getattr(target, "cc", None):
        exe = target.cc
    else:
        exe = os.environ.get("CC", "gcc")
    path = shutil.which(exe)
    if path is None:
        hint = ""
        if target is not None and hasattr(target, "package_for") and target.package_for(exe):
            hint = f"; install the Debian package '{target.package_for(exe)}'"
        raise ToolchainError(f"C compiler '{exe}' not found on PATH{hint}")
    return exe


def _build(model_path, workdir, main_name, *, target=None, cc=None, extra_cflags=(), name="model", fuse=True,
           kernels=None):
    workdir = Path(workdir)
    src = workdir / "src"
    src.mkdir(parents=True, exist_ok=True)
    # Host programs (no target) use the "opt" kernel set: the same results bit
    # for bit as the portable _ref kernels (tested), vectorized loop orders.
    gen = generate(model_path, name=name, target=target, fuse=fuse,
                   kernels=kernels if kernels is not None else (HOST_KERNELS if target is None else None),
                   command=f"edgebnn.codegen.hostbench ({main_name})")
    for rel, text in gen.files.items():
        (src / rel).write_text(text)
    main_src = HOST_TEMPLATES / main_name
    if not main_src.is_file():
        raise ToolchainError(f"host program template missing: {main_src}")
    shutil.copyfile(main_src, src / main_name)
    compiler = _compiler(target, cc)
    if target is not None:
        flags = ["-std=c99"] + list(getattr(target, "cflags", ()) or ()) + ["-ffp-contract=off"]
        ldflags = list(getattr(target, "ldflags", ()) or ())
    else:
        flags = host_cflags(compiler)
        ldflags = []
    flags += list(extra_cflags)
    defines = [f'-DEDGEBNN_MODEL_HEADER="{name}.h"', f"-DEDGEBNN_MODEL_INVOKE={name}_invoke",
               f"-DEDGEBNN_MODEL_PREFIX={name.upper()}"]
    runtime = [f for f in sorted(gen.files) if f.endswith(".c") and (RUNTIME_DIR / f).is_file()]
    objects = _runtime_objects(compiler, flags, {f: gen.files[f] for f in gen.files
                                                 if f in runtime or f.endswith(".h")}, runtime)
    sources = [str(src / f) for f in sorted(gen.files) if f.endswith(".c") and f not in runtime]
    sources.append(str(src / main_name))
    exe = workdir / Path(main_name).stem.replace("_main", "")
    cmd = [compiler, *flags, *defines, f"-I{src}", *sources, *map(str, objects), "-o", str(exe), *ldflags, "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ToolchainError(
            f"compiling the generated code failed ({' '.join(cmd)}):\n{proc.stderr[-4000:]}"
        )
    return exe, gen


def _runtime_objects(compiler, flags, files, runtime):
    """Compile the runtime's .c files once per (compiler, flags, sources); return the objects.

    Cached under the system temporary directory, keyed by a hash of all of
    these, so repeated builds (tests, predict_c on many models) only compile
    the model's own file.
    """
    h = hashlib.sha256()
    for part in [compiler, *flags]:
        h.update(part.encode() + b"\0")
    for name in sorted(files):
        h.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    cache = Path(tempfile.gettempdir()) / "edgebnn-runtime-objects" / h.hexdigest()[:24]
    objects = [cache / (Path(f).stem + ".o") for f in runtime]
    if all(o.is_file() for o in objects):
        return objects
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=cache.parent))
    try:
        for name, text in files.items():
            (tmp / name).write_text(text)
        cmd = [compiler, *flags, "-c", *runtime]
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ToolchainError(f"compiling the runtime failed ({' '.join(cmd)}):\n{proc.stderr[-4000:]}")
        try:
            os.replace(tmp, cache)
        except OSError:  # another process finished first
            if not all(o.is_file() for o in objects):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return objects


def build_bench_program(model_path, workdir, *, target=None, cc=None, extra_cflags=(), kernels=None) -> Path:
    """Compile the generated code and the host benchmark main into an executable.

    Args:
        model_path: the .tflite file.
        workdir: directory for the sources (``workdir/src``) and the program.
        target: an :class:`edgebnn.targets.Target` (its cc, cflags, ldflags and
            kernel set) or None for the host compiler (``$CC`` or gcc).
        cc: override the compiler.
        extra_cflags: more flags (e.g. ``-march=native``).
        kernels: the kernel set; None: :data:`HOST_KERNELS` without a target,
            else the target's.

    Returns:
        the path of the executable: ``prog WARMUP RUNS < input.f32`` prints
        ``{"times_ns": [...], "output": [...], "arena_bytes": N, "weights_bytes": N}``.

    Raises:
        ToolchainError: no compiler, or the build failed (the message holds
            the command and the compiler's errors).
        UnsupportedOpError: the model has an op the generator cannot handle.
    """
    exe, _ = _build(model_path, workdir, "bench_main.c", target=target, cc=cc, extra_cflags=extra_cflags,
                    kernels=kernels)
    return exe


_PREDICT_CACHE = {}
_TEMP_DIRS = []


def _cleanup_temp_dirs():
    for d in _TEMP_DIRS:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup_temp_dirs)


def build_predict_program(model_path, workdir, *, cc=None, extra_cflags=(), fuse=True, kernels=None):
    """Compile the batch prediction program (``prog < inputs.f32 > outputs.f32``)."""
    return _build(model_path, workdir, "predict_main.c", cc=cc, extra_cflags=extra_cflags, fuse=fuse,
                  kernels=kernels)


def predict_c(model_path, x, *, workdir=None, fuse=True, cc=None, extra_cflags=(), kernels=None) -> np.ndarray:
    """Outputs of the generated C (host build) for a batch of inputs.

    Args:
        model_path: the .tflite file.
        x: inputs ``(N, *input_shape)`` (raw values, e.g. pixels 0-255).
        workdir: where to build; a temporary directory when None (the built
            program is then cached per model, flags, fuse setting and
            kernel set for the life of the process).
        kernels: the kernel set (None: :data:`HOST_KERNELS`; ``"portable"``:
            the ``_ref`` kernels only).

    Returns:
        ``float32`` array ``(N, *output_shape)``.

    Raises:
        EngineError: wrong input shape, or the program failed.
        ToolchainError: the build failed.
    """
    data = Path(model_path).read_bytes()
    key = (hashlib.sha256(data).hexdigest(), bool(fuse), cc, tuple(extra_cflags), kernels)
    if workdir is None and key in _PREDICT_CACHE and _PREDICT_CACHE[key][0].exists():
        exe, gen = _PREDICT_CACHE[key]
    else:
        if workdir is None:
            wd = Path(tempfile.mkdtemp(prefix="edgebnn-predict-"))
            _TEMP_DIRS.append(wd)
        else:
            wd = Path(workdir)
        exe, gen = build_predict_program(model_path, wd, cc=cc, extra_cflags=extra_cflags, fuse=fuse,
                                         kernels=kernels)
        if workdir is None:
            _PREDICT_CACHE[key] = (exe, gen)
    x = np.ascontiguousarray(np.asarray(x, dtype="<f4"))
    if tuple(x.shape[1:]) != tuple(gen.input_shape[1:]) and x.reshape(len(x), -1).shape[1] != gen.input_size:
        raise EngineError(f"input shape {x.shape[1:]} does not match the model's input {gen.input_shape[1:]}")
    proc = subprocess.run([str(exe)], input=x.tobytes(), capture_output=True)
    if proc.returncode != 0:
        raise EngineError(f"the generated C failed (exit {proc.returncode}): {proc.stderr.decode(errors='replace')[-2000:]}")
    y = np.frombuffer(proc.stdout, dtype="<f4")
    if y.size != len(x) * gen.output_size:
        raise EngineError(f"the generated C wrote {y.size} values for {len(x)} inputs, expected {len(x) * gen.output_size}")
    return y.reshape((len(x),) + tuple(gen.output_shape[1:])).astype(np.float32)

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
import json
import os
import shutil
import stat
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np

from edgebnn.codegen.generator import HOST_TEMPLATES, RUNTIME_DIR, generate
from edgebnn.errors import EngineError, ToolchainError
from edgebnn.toolchain import compile_commands, toolchain_for

def _build(model_path, workdir, main_name, *, target=None, cc=None, extra_cflags=(), name="model", fuse=None,
           kernels=None):
    """Generate the model's C into ``workdir/src`` and link it with ``main_name``.

    The compiler, flags and kernel set come from :mod:`edgebnn.toolchain`:
    ``target`` None is this machine (:func:`edgebnn.toolchain.native_target`).
    """
    workdir = Path(workdir)
    src = workdir / "src"
    src.mkdir(parents=True, exist_ok=True)
    tc = toolchain_for(target if target is not None else "native", cc=cc, kernels=kernels,
                       extra_cflags=extra_cflags)
    if shutil.which(tc.cc) is None:
        pkg = tc.target.package_for(tc.cc) if tc.target is not None else None
        hint = f"; install the Debian package '{pkg}'" if pkg else ""
        raise ToolchainError(f"C compiler '{tc.cc}' not found on PATH{hint}")
    gen = generate(model_path, name=name, target=tc.target, fuse=fuse, kernels=tc.kernels.name,
                   command=f"edgebnn.hostprog ({main_name})")
    for rel, text in gen.files.items():
        (src / rel).write_text(text)
    main_src = HOST_TEMPLATES / main_name
    if not main_src.is_file():
        raise ToolchainError(f"host program template missing: {main_src}")
    shutil.copyfile(main_src, src / main_name)
    defines = [f'EDGEBNN_MODEL_HEADER="{name}.h"', f"EDGEBNN_MODEL_INVOKE={name}_invoke",
               f"EDGEBNN_MODEL_PREFIX={name.upper()}"]
    runtime = [f for f in sorted(gen.files) if f.endswith(".c") and (RUNTIME_DIR / f).is_file()]
    objects = _runtime_objects(tc, {f: gen.files[f] for f in gen.files if f in runtime or f.endswith(".h")},
                               runtime, workdir)
    sources = [str(src / f) for f in sorted(gen.files) if f.endswith(".c") and f not in runtime]
    sources.append(str(src / main_name))
    exe = workdir / Path(main_name).stem.replace("_main", "")
    cmds = compile_commands(None, sources, "program", output=str(exe), includes=[str(src)], defines=defines,
                            objdir=str(workdir / "obj"), objects=objects, toolchain=tc)
    (workdir / "obj").mkdir(exist_ok=True)
    for cmd in cmds:
        if cmd[-2] == "-o":
            Path(cmd[-1]).parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ToolchainError(
                f"compiling the generated code failed ({' '.join(cmd)}):\n{proc.stderr[-4000:]}"
            )
    return exe, gen


#: Overrides where compiled runtime objects are cached (default:
#: ``$XDG_CACHE_HOME/edgebnn`` or ``~/.cache/edgebnn``).
CACHE_ENV = "EDGEBNN_CACHE_DIR"
_MANIFEST = "manifest.json"
_COMPILER_IDS = {}


def cache_root() -> Path:
    """The per-user cache directory: ``$EDGEBNN_CACHE_DIR``, else ``$XDG_CACHE_HOME/edgebnn``,
    else ``~/.cache/edgebnn``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edgebnn"


def _private_dir(path: Path):
    """Create ``path`` (mode 0700) if needed; return None if it is safe, else why not.

    Safe: a real directory (no symbolic link), owned by this user, writable
    by nobody else. Anyone who can write a cache directory decides what code
    the next build links, so anything else is not used.
    """
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(path)
    except OSError as exc:
        return f"cannot create it ({exc.strerror or exc})"
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        return "it is not a directory (a symbolic link or a file)"
    if st.st_uid != os.getuid():
        return f"it is owned by uid {st.st_uid}, not by this user (uid {os.getuid()})"
    if st.st_mode & 0o022:
        return f"other users can write to it (mode {stat.S_IMODE(st.st_mode):04o}; expected 0700)"
    return None


def _compiler_identity(compiler) -> str:
    """The compiler's resolved path, size, mtime and ``--version``: a changed compiler is a new key."""
    if compiler not in _COMPILER_IDS:
        exe = shutil.which(compiler) or compiler
        real = os.path.realpath(exe)
        try:
            st = os.stat(real)
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "?"
        proc = subprocess.run([compiler, "--version"], capture_output=True, text=True)
        _COMPILER_IDS[compiler] = f"{real}\0{stamp}\0{proc.stdout}"
    return _COMPILER_IDS[compiler]


def _cache_key(compiler, flags, files) -> str:
    h = hashlib.sha256()
    for part in [_compiler_identity(compiler), *flags]:
        h.update(part.encode() + b"\0")
    for name in sorted(files):
        h.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    return h.hexdigest()


def _verified_objects(entry: Path, key: str, names) -> dict:
    """``{name: bytes}`` of a cache entry whose manifest and hashes check out, else None."""
    try:
        if not os.path.isdir(entry) or _private_dir(entry) is not None:
            return None
        manifest = json.loads((entry / _MANIFEST).read_text(encoding="utf-8"))
        if manifest.get("key") != key or sorted(manifest.get("objects", {})) != sorted(names):
            return None
        out = {}
        for name in names:
            fd = os.open(entry / name, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as fh:
                data = fh.read()
            if hashlib.sha256(data).hexdigest() != manifest["objects"][name]:
                return None
            out[name] = data
        return out
    except (OSError, ValueError, TypeError, AttributeError, KeyError):
        return None


def _compile_runtime(tc, files, runtime, builddir: Path) -> dict:
    for name, text in files.items():
        (builddir / name).write_text(text)
    for cmd in compile_commands(None, runtime, "objects", toolchain=tc):
        proc = subprocess.run(cmd, cwd=builddir, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ToolchainError(f"compiling the runtime failed ({' '.join(cmd)}):\n{proc.stderr[-4000:]}")
    return {Path(f).stem + ".o": (builddir / (Path(f).stem + ".o")).read_bytes() for f in runtime}


def _store(root: Path, key: str, objects: dict) -> None:
    """Write a cache entry (objects + manifest of their SHA-256) and rename it into place."""
    entry = root / key
    tmp = Path(tempfile.mkdtemp(prefix=".store-", dir=root))
    try:
        for name, data in objects.items():
            (tmp / name).write_bytes(data)
        manifest = {"key": key, "objects": {n: hashlib.sha256(d).hexdigest() for n, d in objects.items()}}
        (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        if os.path.lexists(entry):  # a bad entry: move it aside, then remove it
            trash = Path(tempfile.mkdtemp(prefix=".bad-", dir=root))
            os.rename(entry, trash / "entry")
            shutil.rmtree(trash, ignore_errors=True)
        os.rename(tmp, entry)
    except OSError:
        pass  # another process stored it first, or the disk is full: the build goes on uncached
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _runtime_objects(tc, files, runtime, workdir):
    """Compile the runtime's .c files once per (compiler, flags, sources); return object paths.

    The cache is per user (:func:`cache_root`, ``runtime-objects/``), mode
    0700 and owner-checked; entries are keyed by the SHA-256 of the
    compiler's identity, the flags and every source, and each object is
    checked against the entry's manifest of SHA-256 before use (a mismatch
    recompiles). The verified bytes are copied into ``workdir/objects``, so
    the link uses exactly what was checked. An unsafe cache directory is not
    used (a warning says why) and the runtime is compiled in ``workdir``.
    """
    names = [Path(f).stem + ".o" for f in runtime]
    key = _cache_key(tc.cc, tc.cflags, files)
    root = cache_root() / "runtime-objects"
    why = _private_dir(root.parent) or _private_dir(root)
    if why is not None:
        warnings.warn(f"not using the object cache {root}: {why}; compiling the runtime afresh "
                      f"(set ${CACHE_ENV} to a private directory to cache)", stacklevel=3)
    objects = None if why is not None else _verified_objects(root / key, key, names)
    if objects is None:
        build = Path(workdir) / "runtime-build"
        build.mkdir(parents=True, exist_ok=True)
        objects = _compile_runtime(tc, files, runtime, build)
        if why is None:
            _store(root, key, objects)
    out_dir = Path(workdir) / "objects"
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        (out_dir / name).write_bytes(objects[name])
        paths.append(out_dir / name)
    return paths


def build_bench_program(model_path, workdir, *, target=None, cc=None, extra_cflags=(), kernels=None) -> Path:
    """Compile the generated code and the host benchmark main into an executable.

    Args:
        model_path: the .tflite file.
        workdir: directory for the sources (``workdir/src``) and the program.
        target: a target (name, file or :class:`edgebnn.targets.Target`: its
            toolchain and kernel set, :mod:`edgebnn.toolchain`) or None for
            this machine (``native``).
        cc: override the compiler.
        extra_cflags: more flags (e.g. ``-march=native``).
        kernels: the kernel set; None: the target's.

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


def build_predict_program(model_path, workdir, *, cc=None, extra_cflags=(), fuse=None, kernels=None):
    """Compile the batch prediction program (``prog < inputs.f32 > outputs.f32``)."""
    return _build(model_path, workdir, "predict_main.c", cc=cc, extra_cflags=extra_cflags, fuse=fuse,
                  kernels=kernels)


def predict_c(model_path, x, *, workdir=None, fuse=None, cc=None, extra_cflags=(), kernels=None,
              raw=False) -> np.ndarray:
    """Outputs of the generated C (host build) for a batch of inputs.

    Args:
        model_path: the .tflite file.
        x: inputs ``(N, *input_shape)`` (raw values, e.g. pixels 0-255).
        workdir: where to build; a temporary directory when None (the built
            program is then cached per model, flags, fuse setting and
            kernel set for the life of the process).
        kernels: the kernel set (None: the native target's, ``"opt"``;
            ``"ref"``: the ``_ref`` kernels only).
        raw: for a model with int8 I/O, take ``x`` as int8 values and return
            the int8 outputs as they are (no quantizing, no dequantizing).

    Returns:
        ``float32`` array ``(N, *output_shape)``; a model with int8 I/O gets
        its inputs quantized as :func:`edgebnn.predict.predict_tflite` does
        (``round(x / scale + zero_point)``, clipped) and its outputs
        dequantized, unless ``raw``.

    Raises:
        EngineError: wrong input shape, or the program failed.
        ToolchainError: the build failed.
    """
    data = Path(model_path).read_bytes()
    key = (hashlib.sha256(data).hexdigest(), fuse, cc, tuple(extra_cflags), kernels)
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
    int8_io = getattr(gen, "io_dtype", "float32") == "int8"
    if int8_io:
        x = _int8_records(x, gen.input_quantization, raw)
    else:
        x = np.ascontiguousarray(np.asarray(x, dtype="<f4"))
    if tuple(x.shape[1:]) != tuple(gen.input_shape[1:]) and x.reshape(len(x), -1).shape[1] != gen.input_size:
        raise EngineError(f"input shape {x.shape[1:]} does not match the model's input {gen.input_shape[1:]}")
    proc = subprocess.run([str(exe)], input=x.tobytes(), capture_output=True)
    if proc.returncode != 0:
        raise EngineError(f"the generated C failed (exit {proc.returncode}): {proc.stderr.decode(errors='replace')[-2000:]}")
    y = np.frombuffer(proc.stdout, dtype=np.int8 if int8_io else "<f4")
    if y.size != len(x) * gen.output_size:
        raise EngineError(f"the generated C wrote {y.size} values for {len(x)} inputs, expected {len(x) * gen.output_size}")
    y = y.reshape((len(x),) + tuple(gen.output_shape[1:]))
    if int8_io and raw:
        return y.copy()
    if int8_io:
        scale, zero = gen.output_quantization
        return (y.astype(np.float32) - zero) * np.float32(scale)
    return y.astype(np.float32)


def _int8_records(x, quantization, raw):
    """Inputs of an int8-I/O model as int8 records: as given when ``raw``, else quantized."""
    if raw:
        x = np.asarray(x)
        if x.dtype != np.int8:
            raise EngineError(f"raw inputs of an int8 model must be int8, found {x.dtype}")
        return np.ascontiguousarray(x)
    scale, zero = quantization
    q = np.clip(np.round(np.asarray(x, np.float32) / np.float32(scale) + zero), -128, 127)
    return np.ascontiguousarray(q.astype(np.int8))

"""Facts about the machine a benchmark ran on.

Read from ``/proc/cpuinfo``, ``/etc/os-release``, :mod:`platform` and package
metadata, never by importing the packages (so asking for TensorFlow's
version does not import TensorFlow).

Example:
    >>> info = host_info()
    >>> sorted(info)[:3]
    ['arch', 'cores', 'cores_usable']
"""

import os
import platform
from importlib import metadata
from pathlib import Path

#: Instruction-set flags worth reporting for BNN kernels (popcount, SIMD width).
SIMD_FLAGS = (
    # x86
    "sse4_1", "sse4_2", "popcnt", "avx", "avx2", "fma", "bmi2",
    "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_vpopcntdq", "avx512_bitalg",
    "avx_vnni", "amx_int8",
    # Arm: "neon" on 32-bit kernels, "asimd" (NEON) and its extensions on aarch64
    "neon", "asimd", "asimddp", "asimdhp", "i8mm", "sve", "sve2",
)

#: Distributions whose versions are reported when installed.
PACKAGES = (
    "edgebnn", "numpy", "tensorflow", "tensorflow-cpu", "tf-keras", "larq",
    "larq-compute-engine", "ai-edge-litert", "tflite-runtime", "tflite", "flatbuffers",
)


def _cpuinfo(path="/proc/cpuinfo") -> dict:
    """First value of each key in /proc/cpuinfo (keys lower-cased)."""
    out = {}
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        if ":" not in line:
            continue
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key and key not in out:
            out[key] = value.strip()
    return out


def simd_flags(cpuinfo: dict) -> list:
    """The :data:`SIMD_FLAGS` present in a parsed cpuinfo (x86 ``flags``, Arm ``features``)."""
    present = set((cpuinfo.get("flags", "") + " " + cpuinfo.get("features", "")).split())
    found = [f for f in SIMD_FLAGS if f in present]
    if "asimd" in present and "neon" not in found:
        found.insert(0, "neon")  # aarch64 calls NEON "asimd"
    return found


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.platform()


def package_versions(names=PACKAGES) -> dict:
    """Installed distribution versions, from metadata only (no imports)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def host_info() -> dict:
    """CPU model, architecture, cores, SIMD flags, OS, load and package versions."""
    info = _cpuinfo()
    model = info.get("model name") or info.get("model") or info.get("hardware") or platform.processor()
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "cpu": model or "unknown",
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "simd": simd_flags(info),
        "os": _os_name(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average": load,
        "packages": package_versions(),
    }

"""The NEON paths of ebnn_bconv2d_opt and ebnn_lconv2d_opt (VCNT byte counters), bit for bit against
their _ref kernels: tests/runtime/bconv_opt_driver.c cross-compiled with the
arm64 target's compiler and flags (threads on) and run under qemu-aarch64
-cpu cortex-a72 (a Pi 4's CPU)."""
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ROOT / "firmware" / "runtime"


@pytest.mark.skipif(not (shutil.which("aarch64-linux-gnu-gcc") and shutil.which("qemu-aarch64")),
                    reason="needs gcc-aarch64-linux-gnu and qemu-user")
def test_neon_bconv_opt_is_bit_identical_to_ref(tmp_path):
    exe = tmp_path / "drv"
    cmd = ["aarch64-linux-gnu-gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O3", "-mcpu=cortex-a72",
           "-ffp-contract=off", "-DEBNN_THREADS=1", "-pthread", f"-I{RUNTIME}",
           str(ROOT / "tests" / "runtime" / "bconv_opt_driver.c"), *map(str, sorted(RUNTIME.glob("*.c"))),
           "-static", "-o", str(exe), "-lm"]
    subprocess.run(cmd, check=True, capture_output=True)
    proc = subprocess.run(["qemu-aarch64", "-cpu", "cortex-a72", str(exe)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 mismatches" in proc.stdout

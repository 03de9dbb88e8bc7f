"""tools/main-job.sh, the README's first command, end to end and quiet.

Run with the one-epoch ``smoke`` preset (2,000 images) and 50 timed bench
runs, so it takes a minute or two; every step of the real job runs: train,
convert, verify on the full test set, bench against LCE, export, cortex-m4
firmware under QEMU. Its whole output must hold no TensorFlow log line or
Python warning (issue: quiet by default).
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.tf, pytest.mark.slow, pytest.mark.qemu]

#: What TensorFlow, absl, Keras and Python warnings print: C++ log lines
#: (``I0000 00:00:...``, ``W...``, ``E...``), cuFFT/cuDNN/cuBLAS factory
#: errors, oneDNN notes, AutoGraph and the warnings module.
NOISE = re.compile(
    r"^[IWEF]\d{4} \d\d:\d\d:\d\d|cuFFT|cuDNN|cuBLAS|cuda|oneDNN|AutoGraph|WARNING:|"
    r"\w+Warning:|HDF5|absl::|tensorflow/core", re.M)


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                    reason="the main job builds and runs cortex-m4 firmware: needs arm-none-eabi-gcc and QEMU")
def test_main_job_runs_every_step_without_noise(tmp_path, shared_data):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "EDGEBNN_VERBOSE")}
    env.update(EDGEBNN_DATA=str(shared_data), EDGEBNN_MAIN_JOB_CONFIG="smoke", EDGEBNN_MAIN_JOB_RUNS="50")
    proc = subprocess.run(["bash", str(REPO / "tools" / "main-job.sh"), str(tmp_path / "job")], env=env,
                          capture_output=True, text=True, timeout=1200)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    for step in ("train", "convert", "verify", "bench", "export C", "firmware for cortex-m4"):
        assert f"== {step}" in proc.stderr, step
    assert re.search(r"result\s+PASS", proc.stdout), proc.stdout[-3000:]
    agree = re.search(r"agreement with lce: (\d+)/(\d+)", proc.stdout)
    assert agree and agree.group(1) == agree.group(2), proc.stdout[-3000:]
    assert (tmp_path / "job" / "c-export" / "Makefile").is_file()
    assert (tmp_path / "job" / "fw-cortex-m4" / "fw.elf").is_file()
    noise = sorted({m.group(0) for m in NOISE.finditer(out)})
    assert not noise, f"noise {noise} in the main job's output:\n{out[-4000:]}"

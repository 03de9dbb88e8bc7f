"""The wheel is the product: built, installed without TensorFlow, used outside the checkout.

Builds the wheel from this checkout, installs it into a fresh virtual
environment (its dependencies come from the package index; TensorFlow is not
among them), and from a folder outside the checkout runs what a user on a
Raspberry Pi or a microcontroller workstation runs: ``targets``, ``export``,
``bench --engine c`` and ``firmware build``/``run`` for cortex-m4 on a
shipped model.
"""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow, pytest.mark.qemu]


def _run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kw)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(REPO)])
    (whl,) = out.glob("edgebnn-*.whl")
    return whl


def test_wheel_carries_the_c_side(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    runtime = {p.name for p in (REPO / "firmware" / "runtime").iterdir() if p.suffix in (".c", ".h")}
    templates = {p.relative_to(REPO / "firmware" / "templates").as_posix()
                 for p in (REPO / "firmware" / "templates").rglob("*") if p.is_file()}
    targets = {p.name for p in (REPO / "targets").glob("*.toml")}
    assert {n for n in runtime if f"edgebnn/data/runtime/{n}" not in names} == set()
    assert {n for n in templates if f"edgebnn/data/templates/{n}" not in names} == set()
    assert {n for n in targets if f"edgebnn/data/targets/{n}" not in names} == set()
    assert "edgebnn/pretrained/mnist-bcnn-binary.tflite" in names


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory):
    root = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", str(root)])
    py = root / "bin" / "python"
    # Without PYTHONPATH: pip would take a checkout on it for the installed package and skip the wheel.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    _run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)], env=env)
    return root


def test_installed_wheel_exports_benches_and_builds_firmware(venv, tmp_path, shared_data):
    py = venv / "bin" / "python"
    edgebnn = venv / "bin" / "edgebnn"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{venv / 'bin'}:{env.get('PATH', '')}", EDGEBNN_DATA=str(shared_data),
               EDGEBNN_CACHE_DIR=str(tmp_path / "cache"))
    work = tmp_path / "user"
    work.mkdir()
    kw = dict(cwd=work, env=env)

    # The install has no TensorFlow, and edgebnn comes from the venv, not the checkout.
    probe = subprocess.run([str(py), "-c", "import tensorflow"], capture_output=True, **kw)
    assert probe.returncode != 0
    where = _run([str(py), "-c", "import edgebnn; print(edgebnn.__file__)"], **kw).stdout.strip()
    assert Path(where).resolve().is_relative_to(venv.resolve()), where

    targets = json.loads(_run([str(edgebnn), "targets", "--json"], **kw).stdout)
    names = {t["name"] for t in targets}
    assert {"x86_64", "arm64", "cortex-m4"} <= names

    _run([str(edgebnn), "export", "mnist-bcnn-binary", "-o", "out", "--name", "mnist"], **kw)
    assert (work / "out" / "mnist.c").is_file() and (work / "out" / "ebnn.h").is_file()
    _run(["make", "-s", "-C", "out"], **kw)

    bench = json.loads(_run([str(edgebnn), "bench", "mnist-bcnn-binary", "--engine", "c",
                             "--warmup", "5", "--runs", "20", "--json"], **kw).stdout)
    assert bench["engine"] == "c" and bench["latency_us"]["median"] > 0

    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None:
        pytest.fail("the Arm cross compiler and QEMU are needed (tools/setup.sh installs them)")
    _run([str(edgebnn), "firmware", "build", "mnist-bcnn-binary", "-t", "cortex-m4", "-o", "fw",
          "--samples", "5", "--dataset", "mnist"], **kw)
    run = json.loads(_run([str(edgebnn), "firmware", "run", "fw", "--json"], **kw).stdout)
    assert run["ok"] and run["samples"] == 5 and run["mismatches"] == 0, run

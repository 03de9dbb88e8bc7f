"""export --format cmake|arduino: built with CMake alone (host and Cortex-M4), linked, run."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgebnn.cli import main as cli
from edgebnn.errors import UnsafeInputError
from edgebnn.escape import cmake_comment, cmake_string

MODEL = Path(__file__).parent / "fixtures" / "codegen" / "tiny_bcnn.tflite"

HOST_MAIN = r"""
#include <stdio.h>
#include "model.h"
static float in[MODEL_INPUT_SIZE], out[MODEL_OUTPUT_SIZE];
int main(void) {
    if (fread(in, sizeof in, 1, stdin) != 1) return 2;
    int st = model_invoke(in, out);
    if (st != 0) return 3;
    fwrite(out, sizeof out, 1, stdout);
    return 0;
}
"""


@pytest.mark.parametrize("text, expected", [
    ("plain", '"plain"'),
    ('say "hi"', r'"say \"hi\""'),
    ("${HOME}/$ENV{PATH}", r'"\${HOME}/\$ENV{PATH}"'),
    ("a;b", r'"a\;b"'),
    ("C:\\x", r'"C:\\x"'),
], ids=["plain", "quotes", "variable_refs", "list_separator", "backslash"])
def test_cmake_string(text, expected):
    assert cmake_string(text, what="flag") == expected


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\x00b"], ids=["lf", "cr", "nul"])
def test_cmake_string_refuses_line_breaks(bad):
    with pytest.raises(UnsafeInputError, match="toolchain.cflags is .*generated CMake file"):
        cmake_string(bad, what="toolchain.cflags")


def test_cmake_comment_cannot_end_its_line():
    out = cmake_comment("x\nadd_custom_target(pwn ALL COMMAND id)\\")
    assert "\n" not in out and out.endswith("\\x5c") and "\\x0a" in out


def _export(tmp_path, fmt, *extra):
    out = tmp_path / fmt
    res = CliRunner().invoke(cli, ["export", str(MODEL), "-o", str(out), "--format", fmt, *extra])
    assert res.exit_code == 0, res.output
    return out


def _cmake_build(src, build, *args):
    subprocess.run(["cmake", "-S", str(src), "-B", str(build), "-G", "Unix Makefiles", *args],
                   check=True, capture_output=True)
    proc = subprocess.run(["cmake", "--build", str(build)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return build / "libmodel.a"


needs_cmake = pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not installed (tools/setup.sh)")


@needs_cmake
@pytest.mark.slow
def test_cmake_library_links_into_a_host_program_and_agrees_with_predict_c(tmp_path):
    from edgebnn.hostprog import predict_c
    from edgebnn.graph import load_graph

    out = _export(tmp_path, "cmake")
    text = (out / "CMakeLists.txt").read_text()
    assert "add_library(model STATIC" in text and "INTERFACE ${CMAKE_CURRENT_SOURCE_DIR}" in text
    assert not (out / "toolchain.cmake").exists()  # host build: the user's compiler
    # a user's project consuming it with add_subdirectory
    user = tmp_path / "user"
    user.mkdir()
    (user / "main.c").write_text(HOST_MAIN)
    (user / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.13)\nproject(user C)\n"
        f'add_subdirectory("{out}" model)\nadd_executable(app main.c)\ntarget_link_libraries(app model)\n')
    subprocess.run(["cmake", "-S", str(user), "-B", str(tmp_path / "ub")], check=True, capture_output=True)
    proc = subprocess.run(["cmake", "--build", str(tmp_path / "ub")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    shape = [int(d) for d in load_graph(MODEL).tensor(load_graph(MODEL).inputs[0]).shape]
    x = np.random.default_rng(0).integers(0, 256, size=[1, *shape[1:]]).astype(np.float32)
    run = subprocess.run([str(tmp_path / "ub" / "app")], input=x.tobytes(), capture_output=True, timeout=60)
    assert run.returncode == 0, run.stderr
    got = np.frombuffer(run.stdout, dtype=np.float32)
    want = np.asarray(predict_c(str(MODEL), x), dtype=np.float32).reshape(-1)
    assert got.shape == want.shape and np.array_equal(got, want)  # same C, same flags: bit-exact


@needs_cmake
@pytest.mark.qemu
@pytest.mark.slow
def test_cmake_cortex_m4_with_its_toolchain_file(tmp_path):
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed (tools/setup.sh)")
    out = _export(tmp_path, "cmake", "-t", "cortex-m4")
    tc = (out / "toolchain.cmake").read_text()
    assert 'CMAKE_C_COMPILER "arm-none-eabi-gcc"' in tc and "-mcpu=cortex-m4" in tc
    lib = _cmake_build(out, tmp_path / "b", f"-DCMAKE_TOOLCHAIN_FILE={out / 'toolchain.cmake'}")
    objs = subprocess.run(["arm-none-eabi-objdump", "-f", str(lib)], capture_output=True, text=True, check=True)
    assert "elf32-littlearm" in objs.stdout and "model.c" in objs.stdout


@pytest.mark.qemu
def test_arduino_layout_compiles_with_cortex_m4_flags(tmp_path):
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed (tools/setup.sh)")
    from edgebnn.toolchain import toolchain_for

    out = _export(tmp_path, "arduino")
    props = (out / "library.properties").read_text()
    assert "name=model\n" in props and "includes=model.h\n" in props
    sketch = (out / "examples" / "model" / "model.ino").read_text()
    assert "model_invoke(input, output)" in sketch
    tc = toolchain_for("cortex-m4")
    for src in sorted((out / "src").glob("*.c")):
        proc = subprocess.run([tc.cc, *tc.cflags, "-Werror", "-c", str(src), "-o", str(tmp_path / (src.stem + ".o"))],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "model.o").is_file()

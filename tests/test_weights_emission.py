"""Large constants as little-endian byte images: same bytes, same results, fast to compile."""

import shutil
import subprocess

import numpy as np
import pytest

from edgebnn import resources
from edgebnn.codegen import generator
from edgebnn.hostprog import predict_c
from edgebnn.codegen.writer import CWriter

MODELS = ("mnist-bcnn-binary", "mnist-bcnn-float", "mnist-bcnn-wide-binary")


def _model(name):
    from pathlib import Path

    import edgebnn

    return Path(edgebnn.__file__).parent / "pretrained" / f"{name}.tflite"


def _decimal_only(monkeypatch):
    monkeypatch.setattr(generator, "BYTE_ARRAY_MIN", 2**62)


@pytest.mark.parametrize("name", MODELS)
def test_outputs_bit_exact_against_decimal_constants(name, tmp_path, monkeypatch):
    path = _model(name)
    gen = generator.generate(path, name="m")
    assert "static const union" in gen.files["m.c"]
    x = np.random.default_rng(0).integers(0, 256, size=(16, *gen.input_shape[1:])).astype(np.float32)
    compact = predict_c(path, x, workdir=tmp_path / "compact")
    _decimal_only(monkeypatch)
    decimal_gen = generator.generate(path, name="m")
    assert "static const union" not in decimal_gen.files["m.c"]
    assert decimal_gen.weights_bytes == gen.weights_bytes
    decimal = predict_c(path, x, workdir=tmp_path / "decimal")
    assert np.array_equal(compact.view(np.uint32), decimal.view(np.uint32))


def test_byte_image_reads_back_every_float_bit_pattern(tmp_path):
    """NaN payloads, infinities, -0.0, denormals and bytes that look like quotes, '?' or digits."""
    rng = np.random.default_rng(1)
    special = np.array([0x7FC00001, 0xFF800000, 0x7F800000, 0x80000000, 0x00000001, 0x3F3F3D22,
                        0x5C303737, 0x00000000], dtype=np.uint32)
    bits = np.concatenate([special, rng.integers(0, 2**32, size=500, dtype=np.uint32)])
    w = CWriter()
    w.line("#include <stdio.h>")
    w.line("#include <stdint.h>")
    w.line("#include <string.h>")
    expr = w.byte_array("float", "vals", bits.view(np.float32))
    ints = w.byte_array("int32_t", "ints", bits.view(np.int32))
    with w.block("int main(void)"):
        w.line("unsigned i; uint32_t u;")
        with w.block(f"for (i = 0; i < {bits.size}u; ++i)"):
            w.line(f"memcpy(&u, &{expr}[i], 4); printf(\"%08lx \", (unsigned long)u);")
            w.line(f"memcpy(&u, &{ints}[i], 4); printf(\"%08lx\\n\", (unsigned long)u);")
        w.line("return 0;")
    src = tmp_path / "t.c"
    src.write_text(w.text())
    exe = tmp_path / "t"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wno-overlength-strings", "-O2", str(src), "-o", str(exe)],
                   check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split("\n")
    got = np.array([[int(v, 16) for v in line.split()] for line in out if line], dtype=np.uint32)
    assert np.array_equal(got[:, 0], bits) and np.array_equal(got[:, 1], bits)


@pytest.mark.parametrize("cc", ["arm-none-eabi-gcc", "aarch64-linux-gnu-gcc"])
def test_generated_c_compiles_for_cross_targets(cc, tmp_path):
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} not installed")
    gen = generator.generate(_model("mnist-bcnn-binary"), name="m")
    for f, text in gen.files.items():
        (tmp_path / f).write_text(text)
    flags = ["-mcpu=cortex-m4", "-mthumb"] if cc.startswith("arm") else []
    subprocess.run([cc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wno-overlength-strings", "-O2", *flags, "-c", "m.c", "-o", "m.o"],
                   check=True, cwd=tmp_path)


def test_big_endian_target_is_refused(tmp_path):
    gen = generator.generate(_model("mnist-bcnn-float"), name="m")
    for f, text in gen.files.items():
        (tmp_path / f).write_text(text)
    res = subprocess.run(["gcc", "-std=c99", "-D__BYTE_ORDER__=4321", "-c", "m.c", "-o", "m.o"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode != 0 and "big-endian" in res.stderr

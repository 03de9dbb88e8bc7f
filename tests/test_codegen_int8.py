"""Generated C for full-integer models: bit-exact with TFLite's reference kernels, no float code."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgebnn.codegen.generator import generate
from edgebnn.hostprog import _int8_records, predict_c

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from int8_vs_tflite import reference_outputs  # noqa: E402


@pytest.fixture(scope="module")
def mnist(shared_data):
    from edgebnn.datasets import load_dataset

    return load_dataset("mnist", data_dir=shared_data, download=False)


@pytest.fixture(scope="module")
def twin_int8(tmp_path_factory, shared_data):
    """`edgebnn convert mnist-bcnn-float --int8`: the int8 float twin."""
    from edgebnn.cli import main

    out = tmp_path_factory.mktemp("twin") / "twin_int8.tflite"
    r = CliRunner().invoke(main, ["convert", "mnist-bcnn-float", "--int8", "--data-dir", str(shared_data),
                                  "-o", str(out)])
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="module")
def op_zoo_int8(tmp_path_factory):
    """A small untrained float model using every int8 op kind, converted full-integer."""
    from edgebnn._tf import import_tf

    tf, K, _ = import_tf()
    tf.random.set_seed(3)
    inp = K.Input((12, 12, 3))
    x = K.layers.ZeroPadding2D(((1, 0), (0, 1)))(inp)
    a = K.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    b = K.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=1)(a)
    x = K.layers.Add()([a, b])
    x = K.layers.Multiply()([x, a])
    x = K.layers.Concatenate()([x, K.layers.AveragePooling2D(1)(a)])
    x = K.layers.MaxPooling2D(2)(x)
    g = K.layers.GlobalAveragePooling2D()(x)
    f = K.layers.Dense(10)(K.layers.Flatten()(x))
    out = K.layers.Softmax()(K.layers.Concatenate()([f, K.layers.Dense(6, activation="relu6")(g)]))
    model = K.Model(inp, out)
    rng = np.random.default_rng(0)
    rep = rng.uniform(-1, 1, (64, 12, 12, 3)).astype(np.float32)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([r[None]] for r in rep)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    path = tmp_path_factory.mktemp("zoo") / "zoo_int8.tflite"
    path.write_bytes(conv.convert())
    return path


def _exact(model_path, x):
    gen = generate(model_path, name="model")
    q = _int8_records(x, gen.input_quantization, raw=False)
    c_out = predict_c(model_path, q, raw=True)
    ref = reference_outputs(model_path, q).reshape(c_out.shape)
    return c_out, ref


def test_int8_twin_bit_exact_with_builtin_ref(twin_int8, mnist):
    x = mnist.x_test[:300]
    c_out, ref = _exact(twin_int8, x)
    assert c_out.dtype == np.int8 and c_out.shape == (300, 10)
    mismatched = np.flatnonzero(np.any(c_out != ref, axis=1))
    assert mismatched.size == 0, f"{mismatched.size} of 300 images differ, first {mismatched[:5]}"
    assert np.mean(c_out.argmax(1) == mnist.y_test[:300]) > 0.97  # a real classifier, not all-equal outputs


def test_int8_op_zoo_bit_exact(op_zoo_int8):
    from edgebnn.graph import load_graph

    types = set(load_graph(op_zoo_int8.read_bytes()).op_types())
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MUL", "CONCATENATION", "MAX_POOL_2D", "MEAN",
            "FULLY_CONNECTED", "SOFTMAX", "PAD"} <= types, types
    x = np.random.default_rng(1).uniform(-1.2, 1.2, (40, 12, 12, 3)).astype(np.float32)
    c_out, ref = _exact(op_zoo_int8, x)
    assert np.array_equal(c_out, ref), int(np.sum(c_out != ref))
    assert len(np.unique(c_out.reshape(40, -1), axis=0)) > 1  # inputs reach the outputs


def test_int8_api_and_dequantized_predictions(twin_int8, mnist):
    gen = generate(twin_int8, name="digits")
    h = gen.files["digits.h"]
    assert "int digits_invoke(const int8_t *input, int8_t *output);" in h
    for macro in ("DIGITS_INPUT_SCALE", "DIGITS_INPUT_ZERO_POINT", "DIGITS_OUTPUT_SCALE",
                  "DIGITS_OUTPUT_ZERO_POINT", "DIGITS_IO_INT8"):
        assert f"#define {macro} " in h
    assert gen.output_quantization == (0.00390625, -128)  # TFLite's int8 softmax output
    y = predict_c(twin_int8, mnist.x_test[:20])
    raw = predict_c(twin_int8, _int8_records(mnist.x_test[:20], gen.input_quantization, raw=False), raw=True)
    assert y.dtype == np.float32
    assert np.array_equal(y, (raw.astype(np.float32) + 128) * np.float32(0.00390625))


def test_int8_model_links_no_float_code(twin_int8, tmp_path):
    gen = generate(twin_int8, name="digits")
    assert not {"ebnn_float.c", "ebnn_int8_quantize.c", "ebnn_fused.c"} & set(gen.files), sorted(gen.files)
    for name, text in gen.files.items():
        (tmp_path / name).write_text(text)
    srcs = sorted(n for n in gen.files if n.endswith(".c"))
    # -mgeneral-regs-only: GCC refuses any float or SSE operation in these files
    for src in srcs:
        subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-mgeneral-regs-only", "-c", src,
                        "-o", src[:-2] + ".o"], cwd=tmp_path, check=True, capture_output=True)
    if shutil.which("arm-none-eabi-gcc"):
        # Cortex-M0 has no FPU: float code would call libgcc's __aeabi_f*/__aeabi_d* helpers
        for src in srcs:
            subprocess.run(["arm-none-eabi-gcc", "-std=c99", "-mcpu=cortex-m0", "-mthumb", "-O2", "-c", src,
                            "-o", src[:-2] + ".m0.o"], cwd=tmp_path, check=True, capture_output=True)
        nm = subprocess.run(["arm-none-eabi-nm", *sorted(p.name for p in tmp_path.glob("*.m0.o"))], cwd=tmp_path,
                            check=True, capture_output=True, text=True).stdout
        undefined = {line.split()[-1] for line in nm.splitlines() if " U " in line}
        assert not {u for u in undefined if u.startswith(("__aeabi_f", "__aeabi_d", "__aeabi_i2f", "__aeabi_i2d"))}, \
            sorted(undefined)
        assert "ebnn_int8_conv2d_ref" in undefined  # the check saw the calls


def test_float_model_keeps_float_api(repo_root):
    gen = generate(repo_root / "edgebnn" / "pretrained" / "mnist-bcnn-binary.tflite", name="digits")
    assert "int digits_invoke(const float *input, float *output);" in gen.files["digits.h"]
    assert "IO_INT8" not in gen.files["digits.h"] and gen.io_dtype == "float32"


@pytest.fixture(scope="module")
def bnn_int8(tmp_path_factory, repo_root):
    """The shipped mnist-bcnn-binary through LCE with int8 I/O and int8 non-binary layers.

    Converted here with LCE's ``experimental_default_int8_range`` (here
    [-3, 3]) instead of edgebnn's calibration (tests/test_int8_bnn.py): every
    tensor gets the same wide range, so saturating values are exercised.
    Accuracy is poor; the arithmetic is what is compared.
    """
    from edgebnn._tf import import_lce, import_tf
    from edgebnn.convert import rewrite_binary_dense

    tf, _, _ = import_tf()
    lce = import_lce()
    model = tf.keras.models.load_model(str(repo_root / "edgebnn" / "pretrained" / "mnist-bcnn-binary.h5"),
                                       compile=False)
    data = lce.convert_keras_model(rewrite_binary_dense(model).model, inference_input_type=tf.int8,
                                   inference_output_type=tf.int8, experimental_default_int8_range=(-3.0, 3.0))
    path = tmp_path_factory.mktemp("bnn") / "bnn_int8.tflite"
    path.write_bytes(data)
    return path


def test_int8_bnn_bit_exact_with_lce(bnn_int8, mnist):
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    from edgebnn.graph import load_graph

    g = load_graph(bnn_int8.read_bytes())
    lce_quantize_inputs = [g.tensor(op.inputs[0]).dtype for op in g.ops if op.type == "LceQuantize"]
    assert lce_quantize_inputs and set(lce_quantize_inputs) == {"int8"}  # the int8 path is exercised
    gen = generate(bnn_int8, name="model")
    assert gen.io_dtype == "int8" and "ebnn_int8_lce.c" in gen.files
    # 0..255 pixels saturate in the [-3, 3] default range: use inputs that span the int8 range
    x = np.random.default_rng(2).uniform(-3.2, 3.2, (200, 28, 28, 1)).astype(np.float32)
    x[:100] = mnist.x_test[:100] / 255.0 * 6.0 - 3.0
    q = _int8_records(x, gen.input_quantization, raw=False)
    c_out = predict_c(bnn_int8, q, raw=True)
    ref = Interpreter(bnn_int8.read_bytes(), num_threads=1).predict(q).reshape(c_out.shape)
    assert ref.dtype == np.int8
    assert np.array_equal(c_out, ref), f"{int(np.any(c_out != ref, axis=1).sum())} of 200 inputs differ"
    assert len(np.unique(c_out, axis=0)) > 10


@pytest.mark.skipif(not shutil.which("qemu-system-arm") or not shutil.which("arm-none-eabi-gcc"),
                    reason="needs arm-none-eabi-gcc and qemu-system-arm")
def test_int8_twin_firmware_on_cortex_m4_agrees(twin_int8, shared_data, tmp_path):
    from edgebnn.cli import main

    out = tmp_path / "fw"
    r = CliRunner().invoke(main, ["firmware", "build", str(twin_int8), "-t", "cortex-m4", "-o", str(out),
                                  "--samples", "6", "--dataset", "mnist", "--data-dir", str(shared_data),
                                  "--expected", "lce"])
    assert r.exit_code == 0, r.output
    assert "#define FW_MODEL_IO_INT8 1" in (out / "src" / "fw_model.h").read_text()
    r = CliRunner().invoke(main, ["firmware", "run", str(out)])
    assert r.exit_code == 0, r.output
    assert "agreement with lce: 6/6" in r.output, r.output

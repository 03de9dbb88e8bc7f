"""Full-integer BNNs: `convert --int8` of a Larq model, and LceBconv2d with int8 output in C.

LCE's interpreter runs the builtin int8 ops with TFLite's optimized kernels,
which round differently from the reference kernels in a small share of
values (the C engine follows the reference kernels, as TFLite Micro and
CMSIS-NN do; tests/test_codegen_int8.py checks that on whole models). So the
bit-exact comparison with LCE is made on graphs of LCE ops only
(LceQuantize of int8 -> LceBconv2d with int8 output), and the whole BNN is
compared by accuracy and top-1 agreement.
"""

import shutil

import numpy as np
import pytest

from edgebnn.codegen.generator import generate
from edgebnn.hostprog import _int8_records, predict_c

# (in_h, in_w, in_c, out_c, kernel, stride, padding): channel counts off the
# 32-bit word, strides, SAME (pad_values=1) and VALID.
GRID = [
    (8, 8, 3, 8, 3, 1, "valid"),
    (9, 7, 40, 33, 3, 2, "same"),
    (6, 6, 64, 16, 1, 1, "valid"),
    (5, 5, 32, 70, 3, 1, "same"),
    (10, 10, 16, 8, 5, 2, "valid"),
]


def _lce_interpreter(data):
    from edgebnn._tf import import_lce

    import_lce()
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    return Interpreter(data, num_threads=1)


def _bconv_bn_model(tf_mods, case, seed):
    _, K, lq = tf_mods
    h, w, c, o, k, s, pad = case
    rng = np.random.default_rng(seed)
    inp = K.Input((h, w, c))
    x = lq.layers.QuantConv2D(o, k, strides=s, padding=pad, pad_values=1.0, use_bias=False,
                              input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                              kernel_constraint="weight_clip")(inp)
    bn = K.layers.BatchNormalization()
    x = bn(x)
    model = K.Model(inp, x)
    conv = model.layers[1]
    conv.set_weights([rng.choice([-1.0, 1.0], conv.get_weights()[0].shape).astype(np.float32)])
    kk = k * k * c
    bn.set_weights([rng.uniform(-2, 2, o).astype(np.float32),          # gamma, some negative
                    rng.uniform(-3, 3, o).astype(np.float32),          # beta
                    rng.uniform(-kk / 4, kk / 4, o).astype(np.float32),  # moving mean
                    rng.uniform(kk / 8, kk, o).astype(np.float32)])    # moving variance
    return model


@pytest.mark.parametrize("case", GRID, ids=lambda c: "x".join(str(v) for v in c))
def test_int8_bconv_output_bit_exact_with_lce(tf_mods, tmp_path, case):
    from edgebnn.convert import convert_model
    from edgebnn.graph import load_graph

    model = _bconv_bn_model(tf_mods, case, seed=sum(case[:5]))
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (64,) + case[:2] + (case[2],)).astype(np.float32)
    conv = convert_model(model, int8=True, representative=x[:32])
    path = tmp_path / "m.tflite"
    path.write_bytes(conv.tflite)
    g = load_graph(conv.tflite)
    assert [op.type for op in g.ops] == ["LceQuantize", "LceBconv2d"]
    assert g.tensor(g.ops[1].outputs[0]).dtype == "int8"
    gen = generate(path, name="model")
    assert gen.io_dtype == "int8"
    q = _int8_records(x, gen.input_quantization, raw=False)
    c_out = predict_c(path, q, raw=True)
    ref = _lce_interpreter(conv.tflite).predict(q).reshape(c_out.shape)
    assert ref.dtype == np.int8
    assert np.array_equal(c_out, ref), f"{int((c_out != ref).sum())} of {c_out.size} values differ"
    assert len(np.unique(c_out)) > 20  # the outputs span the int8 range, not a saturated constant


@pytest.fixture(scope="module")
def bnn_int8(tmp_path_factory, repo_root, mnist):
    """The shipped mnist-bcnn-binary through `convert --int8`'s library path."""
    from edgebnn._tf import import_tf
    from edgebnn.convert import convert_model, representative_inputs

    tf, _, _ = import_tf()
    model = tf.keras.models.load_model(str(repo_root / "edgebnn" / "pretrained" / "mnist-bcnn-binary.h5"),
                                       compile=False)
    conv = convert_model(model, int8=True, representative=representative_inputs(mnist.x_train, 300))
    path = tmp_path_factory.mktemp("bnn") / "bnn_int8.tflite"
    path.write_bytes(conv.tflite)
    return model, path


def test_int8_bnn_is_full_integer(bnn_int8):
    from edgebnn.graph import load_graph

    _, path = bnn_int8
    g = load_graph(path.read_bytes())
    const = {i for i, t in enumerate(g.tensors) if t.data is not None}
    activations = {g.tensor(i).dtype for op in g.ops for i in list(op.inputs) + list(op.outputs)
                   if i >= 0 and i not in const}
    assert activations <= {"int8", "int32"}, activations  # int32: bitpacked
    assert g.tensor(g.inputs[0]).dtype == "int8" and g.tensor(g.outputs[0]).dtype == "int8"
    types = [op.type for op in g.ops]
    assert "QUANTIZE" not in types and "DEQUANTIZE" not in types
    int8_bconv = [op for op in g.ops if op.type == "LceBconv2d" and g.tensor(op.outputs[0]).dtype == "int8"]
    assert int8_bconv  # the int8-output path is exercised


def test_int8_bnn_accuracy_and_c_engine(bnn_int8, mnist):
    from edgebnn.predict import predict_tflite

    model, path = bnn_int8
    n = 1000
    x, y = mnist.x_test[:n].astype(np.float32), mnist.y_test[:n]
    keras_acc = float((model.predict(x, batch_size=250, verbose=0).argmax(1) == y).mean())
    lce_acc = float((predict_tflite(path, x).argmax(1) == y).mean())
    assert abs(keras_acc - lce_acc) <= 0.01, (keras_acc, lce_acc)  # calibrated, not the 13% default range
    gen = generate(path, name="model")
    q = _int8_records(x, gen.input_quantization, raw=False)
    c_out = predict_c(path, q, raw=True)
    ref = _lce_interpreter(path.read_bytes()).predict(q).reshape(c_out.shape)
    agree = float((c_out.argmax(1) == ref.argmax(1)).mean())
    c_acc = float((c_out.argmax(1) == y).mean())
    print(f"\nint8 BNN: keras {keras_acc:.4f} lce {lce_acc:.4f} c {c_acc:.4f}, c/lce top-1 agreement {agree:.4f}")
    assert agree >= 0.98 and abs(c_acc - lce_acc) <= 0.01


def test_int8_row_sliced_chains_equal_unfused(bnn_int8, mnist):
    """Both int8 chains of the BNN (CONV_2D and int8-output LceBconv2d producers ->
    MAX_POOL_2D -> 1x1 DEPTHWISE -> LceQuantize) are fused, shrink the arena, and
    give the unfused kernels' bytes."""
    _, path = bnn_int8
    fused, plain = generate(path, name="model"), generate(path, name="model", fuse=False)
    chains = [o["type"] for o in fused.ops if "-> LceQuantize" in o["type"]]
    assert any(c.startswith("CONV_2D") for c in chains) and any(c.startswith("LceBconv2d") for c in chains), chains
    assert fused.arena_bytes * 4 < plain.arena_bytes, (fused.arena_bytes, plain.arena_bytes)
    q = _int8_records(mnist.x_test[:200].astype(np.float32), fused.input_quantization, raw=False)
    a = predict_c(path, q, raw=True)
    b = predict_c(path, q, raw=True, fuse=False)
    assert np.array_equal(a, b)


@pytest.mark.skipif(not shutil.which("qemu-system-arm") or not shutil.which("arm-none-eabi-gcc"),
                    reason="needs arm-none-eabi-gcc and qemu-system-arm")
def test_int8_bnn_runs_on_cortex_m0(bnn_int8, shared_data, tmp_path):
    """The full-integer BNN fits the 16 KiB Cortex-M0 target and agrees with LCE."""
    from click.testing import CliRunner

    from edgebnn.cli import main

    _, path = bnn_int8
    out = tmp_path / "fw"
    r = CliRunner().invoke(main, ["firmware", "build", str(path), "-t", "cortex-m0", "-o", str(out),
                                  "--samples", "6", "--dataset", "mnist", "--data-dir", str(shared_data),
                                  "--expected", "lce"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["firmware", "run", str(out)])
    assert r.exit_code == 0, r.output
    assert "agreement with lce: 6/6" in r.output, r.output


# (input h, w, stem filters, bconv filters): odd sizes, so SAME pads unevenly
# and the last pool window drops a row; 40 bconv channels off the word size.
SAME_CHAINS = [(12, 12, 8, 40), (11, 9, 5, 33)]


@pytest.mark.parametrize("case", SAME_CHAINS, ids=lambda c: "x".join(map(str, c)))
def test_int8_same_padded_chains_equal_unfused(tf_mods, case):
    """SAME producers (the stem CONV_2D and a pad_value 1 LceBconv2d, as in
    bcnn-mcu) are fused too, by a padded copy of the rows each pooled row
    reads; the bytes are the unfused kernels'."""
    import tempfile
    from pathlib import Path

    from edgebnn.convert import convert_model

    _, K, lq = tf_mods
    h, w, f1, f2 = case
    K.utils.set_random_seed(3)
    inp = K.Input((h, w, 1))
    x = K.layers.Rescaling(1 / 127.5, -1.0)(inp)
    x = K.layers.Conv2D(f1, 3, padding="same", use_bias=False)(x)
    x = K.layers.MaxPooling2D(2)(x)
    x = K.layers.BatchNormalization()(x)
    x = lq.layers.QuantConv2D(f2, 3, padding="same", pad_values=1.0, use_bias=False,
                              input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                              kernel_constraint="weight_clip")(x)
    x = K.layers.MaxPooling2D(2)(x)
    x = K.layers.BatchNormalization()(x)
    x = K.layers.Flatten()(x)
    x = lq.layers.QuantDense(10, use_bias=False, input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                             kernel_constraint="weight_clip")(x)
    model = K.Model(inp, K.layers.Activation("softmax")(K.layers.BatchNormalization(scale=False)(x)))
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if isinstance(layer, K.layers.BatchNormalization):
            n = layer.get_weights()[0].shape[0]
            ws = [rng.uniform(0.5, 2, n), rng.uniform(-1, 1, n), rng.uniform(-1, 1, n), rng.uniform(0.5, 2, n)]
            layer.set_weights([v.astype(np.float32) for v in ws[-len(layer.get_weights()):]])
    images = rng.integers(0, 256, (64, h, w, 1)).astype(np.float32)
    conv = convert_model(model, target="arm64", int8=True, representative=images[:32])
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.tflite"
        path.write_bytes(conv.tflite)
        fused, plain = generate(str(path), name="model"), generate(str(path), name="model", fuse=False)
        chains = [o["type"] for o in fused.ops if "-> LceQuantize" in o["type"]]
        assert any(c.startswith("CONV_2D") for c in chains) and any(c.startswith("LceBconv2d") for c in chains), chains
        assert fused.arena_bytes < plain.arena_bytes, (fused.arena_bytes, plain.arena_bytes)
        q = _int8_records(images[32:], fused.input_quantization, raw=False)
        for kernels in ("ref", "mcu"):
            a = predict_c(str(path), q, raw=True, kernels=kernels)
            b = predict_c(str(path), q, raw=True, fuse=False, kernels=kernels)
            assert np.array_equal(a, b), kernels

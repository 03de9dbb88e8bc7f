"""Conversion: the exact binary-dense rewrite, the size bar, reports, int8, CLI errors."""

import hashlib
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from edgebnn.cli import main as cli

pytestmark = pytest.mark.tf

# The rewrite multiplies +-1 inputs by +-1 weights, so every sum is a small
# integer, exact in float32 whatever the order of the additions; the moved
# BatchNormalization uses the same elementwise formula (fused=False). The
# outputs are identical in practice (measured: 0.0); the tolerance only allows
# a backend to round one multiply-add differently by an ulp.
KERAS_ATOL = 1e-6
# LCE folds BatchNormalization into the bconv's float multiplier and bias and
# computes it in another order than Keras: a few float32 ulps of a probability.
TFLITE_ATOL = 1e-5


@pytest.fixture(scope="module")
def tf_mods():
    from edgebnn._tf import import_tf

    return import_tf()


@pytest.fixture(scope="module")
def mnist(shared_data):
    from edgebnn.datasets import load_dataset

    return load_dataset("mnist", data_dir=shared_data, download=False)


def _randomize_bn(model, rng):
    """Give every BatchNormalization non-trivial statistics (negative gammas too)."""
    import tf_keras

    for layer in model.layers:
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            new = []
            for w, var in zip(layer.get_weights(), layer.weights):
                if "moving_variance" in var.name:
                    new.append(rng.uniform(0.5, 4.0, w.shape).astype("float32"))
                elif "gamma" in var.name:
                    new.append((rng.choice([-1.0, 1.0], w.shape) * rng.uniform(0.5, 2.0, w.shape)).astype("float32"))
                else:
                    new.append(rng.normal(0, 2.0, w.shape).astype("float32"))
            layer.set_weights(new)
    return model


BIN = dict(input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_constraint="weight_clip")


def tutorial_bcnn(K, lq):
    """The 93k-parameter MNIST BCNN of larq's "Introduction to BNNs with Larq"."""
    return K.models.Sequential(
        [
            lq.layers.QuantConv2D(32, (3, 3), kernel_quantizer="ste_sign", kernel_constraint="weight_clip",
                                  use_bias=False, input_shape=(28, 28, 1)),
            K.layers.MaxPooling2D((2, 2)),
            K.layers.BatchNormalization(scale=False),
            lq.layers.QuantConv2D(64, (3, 3), use_bias=False, **BIN),
            K.layers.MaxPooling2D((2, 2)),
            K.layers.BatchNormalization(scale=False),
            lq.layers.QuantConv2D(64, (3, 3), use_bias=False, **BIN),
            K.layers.BatchNormalization(scale=False),
            K.layers.Flatten(),
            lq.layers.QuantDense(64, use_bias=False, **BIN),
            K.layers.BatchNormalization(scale=False),
            lq.layers.QuantDense(10, use_bias=False, **BIN),
            K.layers.BatchNormalization(scale=False),
            K.layers.Activation("softmax"),
        ]
    )


def seq_dense_last_no_bn(K, lq):
    """Sequential; dense layers with bias and no BN, the last one the output."""
    return K.models.Sequential(
        [
            lq.layers.QuantConv2D(32, (3, 3), strides=2, kernel_quantizer="ste_sign", use_bias=False,
                                  input_shape=(28, 28, 1)),
            K.layers.BatchNormalization(),
            K.layers.Flatten(),
            lq.layers.QuantDense(40, use_bias=True, **BIN),
            lq.layers.QuantDense(10, use_bias=True, **BIN),
        ]
    )


def functional_bn(K, lq):
    """Functional; Flatten -> dense -> BN -> dense (last, BN, softmax layer)."""
    inp = K.Input((28, 28, 1))
    x = lq.layers.QuantConv2D(32, (3, 3), strides=2, kernel_quantizer="ste_sign", use_bias=False)(inp)
    x = K.layers.BatchNormalization()(x)
    x = K.layers.Flatten()(x)
    x = lq.layers.QuantDense(64, use_bias=False, **BIN)(x)
    x = K.layers.BatchNormalization(momentum=0.9)(x)
    x = lq.layers.QuantDense(10, use_bias=False, **BIN)(x)
    x = K.layers.BatchNormalization()(x)
    out = K.layers.Softmax()(x)
    return K.Model(inp, out, name="functional_bn")


def functional_branches(K, lq):
    """Functional on a vector input; a dense output feeds two layers (BN not moved),
    a Dropout sits before a dense, and the output is a dense with an activation."""
    inp = K.Input((100,))
    d = lq.layers.QuantDense(48, use_bias=True, **BIN)(inp)
    a = K.layers.BatchNormalization()(d)
    b = K.layers.Dense(10)(d)
    a = K.layers.Dropout(0.3)(a)
    c = lq.layers.QuantDense(10, use_bias=False, activation="tanh", **BIN)(a)
    out = K.layers.Add()([b, c])
    return K.Model(inp, out, name="functional_branches")


def binary_weights_dense(K, lq):
    """BinaryConnect dense (float input): not a bconv, so it is left alone."""
    inp = K.Input((100,))
    x = lq.layers.QuantDense(16, kernel_quantizer="ste_sign", kernel_constraint="weight_clip")(inp)
    x = lq.layers.QuantDense(10, **BIN)(x)
    return K.Model(inp, x, name="binary_weights_dense")


def shared_dense_two_inputs(K, lq):
    """Two inputs through one shared binary dense (left alone) and a binary
    dense per branch (rewritten)."""
    a, b = K.Input((64,), name="a"), K.Input((64,), name="b")
    shared = lq.layers.QuantDense(32, **BIN)
    xa = lq.layers.QuantDense(10, **BIN)(shared(a))
    xb = lq.layers.QuantDense(10, **BIN)(shared(b))
    return K.Model([a, b], [K.layers.Add()([xa, xb]), xb], name="shared_dense")


# name: (builder, dense layers rewritten, BN layers moved, QuantDense layers left)
CASES = {
    "seq_tutorial_bn": (tutorial_bcnn, ("quant_dense", "quant_dense_1"), 2, []),
    "seq_dense_last_no_bn": (seq_dense_last_no_bn, ("quant_dense", "quant_dense_1"), 0, []),
    "functional_bn_softmax": (functional_bn, ("quant_dense", "quant_dense_1"), 2, []),
    "functional_branches_dropout": (functional_branches, ("quant_dense", "quant_dense_1"), 0, []),
    "functional_binary_weights_only": (binary_weights_dense, ("quant_dense_1",), 0, ["quant_dense"]),
    "functional_shared_two_inputs": (shared_dense_two_inputs, ("quant_dense_1", "quant_dense_2"), 0,
                                     ["quant_dense"]),
}


def _build(tf_mods, builder, seed):
    tf, K, lq = tf_mods
    K.backend.clear_session()  # stable default layer names
    tf.random.set_seed(seed)
    return _randomize_bn(builder(K, lq), np.random.default_rng(seed))


def _inputs(model, mnist, rng, n=128):
    if len(model.inputs) > 1:
        return [rng.normal(0, 1, (n,) + tuple(t.shape[1:])).astype("float32") for t in model.inputs]
    shape = tuple(model.input_shape[1:])
    if shape == (28, 28, 1):
        return mnist.x_test[:n].astype("float32")
    return rng.normal(0, 1, (n,) + shape).astype("float32")


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_rewrite_is_exact(tf_mods, mnist, case):
    from edgebnn.convert import rewrite_binary_dense

    builder, expected, n_bn, left = CASES[case]
    model = _build(tf_mods, builder, seed=1)
    result = rewrite_binary_dense(model)
    assert result.rewritten == expected
    assert len(result.fused_batchnorm) == n_bn
    remaining = [layer.name for layer in result.model.layers if type(layer).__name__ == "QuantDense"]
    assert remaining == left  # float-input or shared dense layers stay as they are
    assert sum(type(layer).__name__ == "QuantConv2D" for layer in result.model.layers) >= len(expected)
    if case == "functional_shared_two_inputs":
        assert result.skipped == (("quant_dense", "shared layer (called 2 times)"),)

    x = _inputs(model, mnist, np.random.default_rng(2))
    refs, outs = model(x, training=False), result.model(x, training=False)
    refs = refs if isinstance(refs, list) else [refs]
    outs = outs if isinstance(outs, list) else [outs]
    assert len(outs) == len(refs)
    for ref, out in zip(refs, outs):
        ref, out = ref.numpy(), out.numpy()
        assert out.shape == ref.shape
        np.testing.assert_allclose(out, ref, rtol=0, atol=KERAS_ATOL)
        # The outputs must depend on the inputs (a constant model would pass trivially).
        assert np.ptp(ref, axis=0).max() > 1e-3


def test_rewrite_flatten_becomes_full_map_conv(tf_mods):
    from edgebnn.convert import rewrite_binary_dense

    model = _build(tf_mods, tutorial_bcnn, seed=3)
    new = rewrite_binary_dense(model).model
    kernels = {layer.name: layer.kernel.shape.as_list() for layer in new.layers if hasattr(layer, "kernel")}
    # Flatten(3x3x64) -> QuantDense(64): one 3x3 VALID conv over the whole map.
    assert kernels["quant_dense"] == [3, 3, 64, 64]
    assert kernels["quant_dense_1"] == [1, 1, 64, 10]
    np.testing.assert_array_equal(
        new.get_layer("quant_dense").kernel.numpy().reshape(576, 64),
        model.get_layer("quant_dense").kernel.numpy(),
    )


# ---------------------------------------------------------------- real conversions


@pytest.fixture(scope="module")
def tutorial(tf_mods):
    from edgebnn.convert import convert_model

    model = _build(tf_mods, tutorial_bcnn, seed=4)
    plain = convert_model(model, target="arm64", rewrite_dense=False)
    rewritten = convert_model(model, target="arm64")
    return model, plain, rewritten


@pytest.mark.slow
def test_tutorial_bcnn_size_bar(tutorial):
    from edgebnn.graph import load_graph

    model, plain, rewritten = tutorial
    assert model.count_params() == 93_790
    print(f"\ntutorial BCNN: plain LCE {len(plain.tflite):,} B, edgebnn {len(rewritten.tflite):,} B")
    assert len(plain.tflite) > 150 * 1024  # LCE alone: ~160 KiB, float32 FULLY_CONNECTED
    assert len(rewritten.tflite) < 20 * 1024  # the bar
    plain_ops = load_graph(plain.tflite).op_types()
    ops = load_graph(rewritten.tflite).op_types()
    assert plain_ops.get("FULLY_CONNECTED") == 2 and plain_ops.get("LceBconv2d") == 2
    assert "FULLY_CONNECTED" not in ops and "LceDequantize" not in ops
    assert ops["LceBconv2d"] == 4
    assert rewritten.rewritten == ("quant_dense", "quant_dense_1") and plain.rewritten == ()


@pytest.mark.slow
def test_converted_rewrite_matches_keras(tutorial, mnist):
    from edgebnn.predict import predict_tflite

    model, plain, rewritten = tutorial
    x = mnist.x_test[:300].astype("float32")
    ref = model(x, training=False).numpy()
    for conv in (rewritten, plain):
        out = predict_tflite(conv.tflite, x)
        assert (out.argmax(1) == ref.argmax(1)).mean() == 1.0
        np.testing.assert_allclose(out, ref, rtol=0, atol=TFLITE_ATOL)
    assert len(set(ref.argmax(1))) > 1  # not a constant model


@pytest.mark.slow
def test_conversion_report(tutorial):
    from edgebnn.convert import conversion_report, rewrite_binary_dense

    model, _, rewritten = tutorial
    rep = conversion_report(rewritten.tflite)
    # Expected packed bytes: O x KH x KW x ceil(I / 32) int32 words per bconv.
    expected = 0
    for layer in rewrite_binary_dense(model).model.layers:
        if type(layer).__name__ == "QuantConv2D" and layer.input_quantizer is not None:
            kh, kw, cin, cout = layer.kernel.shape.as_list()
            expected += cout * kh * kw * math.ceil(cin / 32) * 4
    assert expected == 11_600
    w = rep["weight_bytes"]
    assert w["binary_filters"] == expected
    assert w["float_weights"] >= 32 * 3 * 3 * 4  # the float first conv's filter at least
    assert w["int8_weights"] == 0
    assert w["total"] == w["binary_filters"] + w["float_weights"] + w["other_constants"]
    assert rep["file_size"] == len(rewritten.tflite)
    assert rep["sha256"] == hashlib.sha256(rewritten.tflite).hexdigest()
    assert rep["binary_ops"] == 4 and rep["ops_by_type"]["LceBconv2d"] == 4
    assert rep["float_ops"] == rep["ops_by_precision"]["float"] > 0
    assert sum(rep["ops_by_precision"].values()) == rep["n_ops"] == sum(rep["ops_by_type"].values())
    assert rep["n_tensors"] > rep["n_ops"]
    assert rep["input"] == {"shape": [1, 28, 28, 1], "dtype": "float32"}
    assert rep["output"]["shape"] == [1, 10]


def _float_cnn(K):
    K.backend.clear_session()
    return K.Sequential(
        [
            K.layers.Rescaling(1 / 255.0, input_shape=(28, 28, 1)),
            K.layers.Conv2D(8, 3, strides=2, activation="relu"),
            K.layers.Flatten(),
            K.layers.Dense(10, activation="softmax"),
        ]
    )


def _template_classifier(K, ds):
    """A float CNN whose dense layer matches class-mean templates: a real
    classifier (about 80% on MNIST) without training, with clear margins."""
    K.backend.clear_session()
    model = K.Sequential(
        [
            K.layers.Rescaling(1 / 255.0, input_shape=(28, 28, 1)),
            K.layers.Conv2D(1, 1, activation="relu"),
            K.layers.Flatten(),
            K.layers.Dense(10, activation="softmax"),
        ]
    )
    x = ds.x_train[:6000].reshape(6000, -1).astype("float64") / 255.0
    means = np.stack([x[ds.y_train[:6000] == c].mean(0) for c in range(10)], axis=1)  # (784, 10)
    scale = 0.2
    model.layers[1].set_weights([np.ones((1, 1, 1, 1), "float32"), np.zeros(1, "float32")])
    model.layers[3].set_weights([(scale * means).astype("float32"),
                                 (-0.5 * scale * (means**2).sum(0)).astype("float32")])
    return model


@pytest.mark.slow
def test_int8_conversion_of_float_model(tf_mods, mnist):
    from edgebnn.convert import conversion_report, convert_model
    from edgebnn.verify import compare_predictions

    from edgebnn.predict import predict_tflite

    _, K, _ = tf_mods
    model = _template_classifier(K, mnist)
    conv = convert_model(model, int8=True, representative=mnist.x_train[:100])
    assert conv.converter == "tflite" and conv.int8
    rep = conversion_report(conv.tflite)
    assert rep["input"]["dtype"] == "int8" and rep["output"]["dtype"] == "int8"
    assert rep["weight_bytes"]["int8_weights"] >= 1 + 784 * 10  # conv + dense filters, 1 byte each
    assert rep["weight_bytes"]["float_weights"] == 0
    assert rep["ops_by_precision"]["float"] == 0 and rep["ops_by_precision"]["int8"] >= 3
    x, y = mnist.x_test[:500], mnist.y_test[:500]
    ref = model(x.astype("float32"), training=False).numpy()
    out = predict_tflite(conv.tflite, x)
    # atol=None: int8 outputs are not within a float tolerance (edgebnn.verify.ATOL's note);
    # the top-1 agreement and accuracy carry the check, as `verify` does for int8 models.
    r = compare_predictions(ref, out, y, min_agreement=0.97, max_accuracy_diff_pp=2.0, atol=None)
    assert r.keras_accuracy > 0.7  # a real classifier, so agreement means something
    # int8 rounding moves a few near-ties; a softmax's int8 output steps by 1/256.
    assert r.passed, r.failures
    # Near a tie a small logit error moves a lot of probability, so the
    # largest difference is large (measured 0.38); typical ones are a few
    # int8 steps of 1/256.
    per_image = np.abs(out - ref).max(axis=1)
    print(f"\nint8 vs float: max {per_image.max():.3f}, median per image {np.median(per_image):.4f}")
    assert np.median(per_image) < 5 / 256


def test_conversion_errors(tf_mods):
    from edgebnn.convert import convert
    from edgebnn.errors import ConversionError, TargetError

    _, K, lq = tf_mods
    with pytest.raises(TargetError, match="arm32, arm64, x86_64, xcore"):
        convert(_float_cnn(K), target="riscv")
    with pytest.raises(ConversionError, match="representative dataset"):
        convert(_float_cnn(K), int8=True)
    with pytest.raises(ConversionError, match="representative dataset"):
        convert(_build(tf_mods, seq_dense_last_no_bn, seed=0), int8=True)


# ---------------------------------------------------------------- CLI


def _tiny_h5(tf_mods, path):
    model = _build(tf_mods, seq_dense_last_no_bn, seed=6)
    model.save(path, save_format="h5")
    return model


@pytest.mark.slow
def test_cli_convert_writes_tflite_and_report(tf_mods, tmp_path):
    src = tmp_path / "mine.h5"
    _tiny_h5(tf_mods, src)
    res = CliRunner().invoke(cli, ["convert", str(src), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    tfl, rep = tmp_path / "mine.tflite", tmp_path / "mine.json"
    assert out["tflite_path"] == str(tfl) and out["json_path"] == str(rep)
    data = tfl.read_bytes()
    saved = json.loads(rep.read_text())
    for key in ("ops_by_type", "binary_ops", "float_ops", "n_tensors", "weight_bytes", "file_size",
                "sha256", "conversion", "source", "keras_params"):
        assert key in saved and saved[key] == out[key], key
    assert saved["file_size"] == len(data)
    assert saved["sha256"] == hashlib.sha256(data).hexdigest()
    assert saved["conversion"]["converter"] == "lce"
    assert saved["conversion"]["rewritten"] == ["quant_dense", "quant_dense_1"]
    assert saved["ops_by_type"]["LceBconv2d"] == 2 and "FULLY_CONNECTED" not in saved["ops_by_type"]
    # Flatten(13x13x32) -> dense 40: a 13x13 bconv, 1 word per tap; dense 10
    # on 40 channels: 2 words per output channel.
    assert saved["weight_bytes"]["binary_filters"] == 40 * 13 * 13 * 1 * 4 + 10 * 1 * 1 * 2 * 4


@pytest.mark.slow
def test_cli_convert_never_half_replaces_its_outputs(tf_mods, tmp_path, monkeypatch):
    """A failure while writing the report leaves the old .tflite and .json both intact."""
    import errno

    from edgebnn import io

    src = tmp_path / "mine.h5"
    _tiny_h5(tf_mods, src)
    tfl, rep = tmp_path / "mine.tflite", tmp_path / "mine.json"
    tfl.write_bytes(b"old model")
    rep.write_text('{"old": "report"}\n')
    real_fsync, calls = io.os.fsync, []

    def full_disk_on_second_file(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(io.os, "fsync", full_disk_on_second_file)
    res = CliRunner().invoke(cli, ["convert", str(src)])
    monkeypatch.undo()
    assert len(calls) == 2, "the failure was not injected at the second file"
    assert tfl.read_bytes() == b"old model" and rep.read_text() == '{"old": "report"}\n'
    assert res.exit_code == 1 and "No space left on device" in res.output and "neither file" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.h5", "mine.json", "mine.tflite"]


def test_cli_convert_errors(tf_mods, tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["convert", str(tmp_path / "nope.h5")])
    assert res.exit_code == 1 and "not a file, a run directory or a pretrained model name" in res.output

    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"this is not HDF5")
    res = runner.invoke(cli, ["convert", str(garbage)])
    assert res.exit_code == 1 and "cannot load" in res.output and "garbage.h5" in res.output

    weights_only = tmp_path / "weights.h5"
    _, K, _ = tf_mods
    _float_cnn(K).save_weights(str(weights_only))
    res = runner.invoke(cli, ["convert", str(weights_only)])
    assert res.exit_code == 1 and "cannot load" in res.output

    tfl = tmp_path / "m.tflite"
    tfl.write_bytes(b"x" * 64)
    res = runner.invoke(cli, ["convert", str(tfl)])
    assert res.exit_code == 1 and "is a .tflite (an already converted model)" in res.output

    other = tmp_path / "notes.txt"
    other.write_text("hello")
    res = runner.invoke(cli, ["convert", str(other)])
    assert res.exit_code == 1 and "suffix '.txt'" in res.output

    flt = tmp_path / "float.h5"
    _float_cnn(K).save(flt, save_format="h5")
    res = runner.invoke(cli, ["convert", str(flt), "--int8"])
    assert res.exit_code == 1 and "--dataset" in res.output and "representative" in res.output
    assert not (tmp_path / "float.tflite").exists()

    res = runner.invoke(cli, ["convert", str(flt), "--lce-target", "riscv"])
    assert res.exit_code == 2 and "arm64" in res.output

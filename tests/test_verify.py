"""Verification: the comparison rules, a real pass and a real failure, the CLI."""

import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from edgebnn.cli import main as cli
from edgebnn.errors import VerificationError
from edgebnn.verify import compare_predictions

# ------------------------------------------------------------ comparison rules


def _onehot(labels, k=10):
    out = np.full((len(labels), k), 0.01)
    out[np.arange(len(labels)), labels] = 0.91
    return out


def test_compare_identical_passes():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 1000)
    pred = np.where(rng.random(1000) < 0.9, y, (y + 1) % 10)
    r = compare_predictions(_onehot(pred), _onehot(pred), y)
    assert r.passed and r.agreement == 1.0 and r.disagreements == 0
    assert r.keras_accuracy == r.tflite_accuracy == (pred == y).mean()
    assert r.accuracy_diff_pp == 0.0 and r.max_abs_diff == 0.0 and r.n == 1000
    d = r.to_dict()
    for key in ("keras_accuracy", "tflite_accuracy", "accuracy_diff_pp", "agreement", "max_abs_diff", "n", "passed"):
        assert key in d
    assert r.check() is r


def test_compare_boundary_one_in_a_thousand_passes():
    y = np.zeros(1000, dtype=np.int64)
    a = _onehot(y)
    b = a.copy()
    b[0] = _onehot([3])[0]  # one disagreement: agreement 0.999, accuracy -0.1 pp
    r = compare_predictions(a, b, y)
    assert r.agreement == 0.999 and r.accuracy_diff_pp == pytest.approx(-0.1)
    assert r.passed, r.failures
    assert r.max_abs_diff == pytest.approx(0.9)


def test_compare_agreement_failure():
    y = np.zeros(1000, dtype=np.int64)
    a = _onehot(y)
    b = a.copy()
    b[:2] = _onehot([3, 4])  # 2 of 1000 differ: agreement 0.998 < 0.999
    r = compare_predictions(a, b, y)
    assert not r.passed and r.disagreements == 2
    assert any("agreement 0.9980 is below 0.999" in f for f in r.failures)
    with pytest.raises(VerificationError, match="agreement"):
        r.check()


def test_compare_accuracy_failure_alone():
    # With the default thresholds the accuracy condition can only fail with
    # the agreement one; a looser agreement threshold isolates it.
    y = np.zeros(1000, dtype=np.int64)
    a = _onehot(y)
    b = a.copy()
    b[:5] = _onehot([1] * 5)  # tflite wrong on 5 more: -0.5 pp, agreement 0.995
    r = compare_predictions(a, b, y, min_agreement=0.99, max_accuracy_diff_pp=0.1)
    assert len(r.failures) == 1 and "accuracy differs by -0.50 pp" in r.failures[0]
    # Disagreements that do not change the accuracy: the accuracy condition holds
    # (agreement and the output values fail).
    y2 = np.full(1000, 9)
    r2 = compare_predictions(a, b, y2)
    assert r2.failures[0].startswith("agreement") and not any("accuracy" in f for f in r2.failures)


def test_compare_output_values_within_atol():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 10, 1000)
    a = _onehot(y)
    # float rounding between Keras and LCE: passes
    r = compare_predictions(a, a + rng.uniform(-1e-5, 1e-5, a.shape), y)
    assert r.passed and r.output_mismatches == 0 and r.output_agreement == 1.0
    # one input moved by 0.03 (a sign flipped by rounding): within the 1 - min_agreement budget
    b = a.copy()
    b[0, y[0]] -= 0.03
    r = compare_predictions(a, b, y)
    assert r.passed and r.output_mismatches == 1 and r.max_abs_diff == pytest.approx(0.03)
    # another model: same top-1 everywhere, outputs off by 0.2: fails on the values alone
    b = a.copy()
    b[np.arange(1000), y] -= 0.2
    r = compare_predictions(a, b, y)
    assert r.agreement == 1.0 and r.accuracy_diff_pp == 0.0 and not r.passed
    assert len(r.failures) == 1 and r.failures[0].startswith("outputs differ by up to 0.2, more than atol 0.001")
    assert "on 1000 of 1000 inputs" in r.failures[0]
    assert compare_predictions(a, b, y, atol=0.25).passed
    unchecked = compare_predictions(a, b, y, atol=None)  # int8 outputs: no value check
    assert unchecked.passed and unchecked.atol is None and unchecked.max_abs_diff > 0.19
    with pytest.raises(VerificationError, match=r"verification failed \(b.tflite against a.h5\): outputs differ"):
        r.check(keras_path="a.h5", tflite_path="b.tflite")


def test_compare_shape_mismatch():
    with pytest.raises(VerificationError, match="do not line up"):
        compare_predictions(np.zeros((5, 10)), np.zeros((4, 10)), np.zeros(5))
    with pytest.raises(VerificationError, match="N = 0"):
        compare_predictions(np.zeros((0, 10)), np.zeros((0, 10)), np.zeros(0))


# ------------------------------------------------------------ real models

BIN = dict(input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_constraint="weight_clip")


def _tiny_bnn(seed):
    """A small binary MNIST model with seeded random weights and BN statistics.

    Its first layer sees raw integer pixels through +-1 weights, so every
    float sum is exact and LCE reproduces Keras to rounding of the BN.
    """
    from edgebnn._tf import import_tf

    tf, K, lq = import_tf()
    K.backend.clear_session()
    tf.random.set_seed(seed)
    model = K.Sequential(
        [
            lq.layers.QuantConv2D(32, 3, strides=2, kernel_quantizer="ste_sign", use_bias=False,
                                  input_shape=(28, 28, 1)),
            K.layers.BatchNormalization(),
            lq.layers.QuantConv2D(32, 3, strides=2, use_bias=False, **BIN),
            K.layers.BatchNormalization(),
            K.layers.Flatten(),
            lq.layers.QuantDense(10, use_bias=False, **BIN),
            K.layers.BatchNormalization(),
            K.layers.Softmax(),
        ]
    )
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, K.layers.BatchNormalization):
            g, b, m, v = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 2, g.shape), rng.normal(0, 1, b.shape),
                               rng.normal(0, 3, m.shape), rng.uniform(1, 9, v.shape)])
    return model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Model A with its own .tflite in a run dir, and B's .tflite (another model)."""
    from edgebnn.convert import convert

    run = tmp_path_factory.mktemp("verify") / "run"
    run.mkdir()
    a = _tiny_bnn(seed=10)
    tfl_a = convert(a)
    a.save(run / "model.h5", save_format="h5")
    (run / "model.tflite").write_bytes(tfl_a)
    (run / "config.yml").write_text(yaml.safe_dump({"dataset": "mnist", "model": "tiny", "precision": "binary"}))
    b = _tiny_bnn(seed=11)
    tfl_b = convert(b)
    other = run.parent / "other.tflite"
    other.write_bytes(tfl_b)
    return a, tfl_a, tfl_b, run, other


@pytest.fixture(scope="module")
def mnist(shared_data):
    from edgebnn.datasets import load_dataset

    return load_dataset("mnist", data_dir=shared_data, download=False)


@pytest.mark.tf
@pytest.mark.slow
def test_verify_pass_and_fail_on_real_models(models, mnist):
    from edgebnn.verify import verify

    a, tfl_a, tfl_b, _, _ = models
    x, y = mnist.x_test[:1000], mnist.y_test[:1000]
    good = verify(a, tfl_a, x, y)
    assert good.passed and good.n == 1000
    assert good.agreement == 1.0 and good.accuracy_diff_pp == 0.0
    # LCE folds the BN into the bconv's multiplier and bias; the logits reach
    # a few hundred here (float32 ulp ~3e-5), so the softmax moves by ~1e-5.
    assert good.max_abs_diff < 1e-4

    bad = verify(a, tfl_b, x, y)
    assert not bad.passed
    assert bad.agreement < 0.9
    assert any(f.startswith("agreement") for f in bad.failures)
    with pytest.raises(VerificationError):
        bad.check()


@pytest.mark.tf
@pytest.mark.slow
def test_cli_verify(models, shared_data):
    _, _, _, run, other = models
    runner = CliRunner()
    res = runner.invoke(cli, ["verify", str(run), "--data-dir", str(shared_data), "--limit", "500", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    for key in ("keras_accuracy", "tflite_accuracy", "accuracy_diff_pp", "agreement", "max_abs_diff", "n"):
        assert key in out
    assert out["n"] == 500 and out["agreement"] == 1.0 and out["passed"] is True
    assert out["dataset"] == "mnist"

    res = runner.invoke(cli, ["verify", str(run), "--tflite", str(other), "--data-dir", str(shared_data),
                              "--limit", "500"])
    assert res.exit_code == 1
    assert "FAIL" in res.stdout
    assert f"verification failed ({other} against {run / 'model.h5'}): agreement" in res.stderr


@pytest.mark.tf
def test_cli_verify_errors(models, tmp_path, shared_data):
    _, _, _, run, _ = models
    runner = CliRunner()
    corrupt = tmp_path / "bad.tflite"
    corrupt.write_bytes(b"\x00" * 100)
    res = runner.invoke(cli, ["verify", str(run), "--tflite", str(corrupt), "--data-dir", str(shared_data),
                              "--limit", "10"])
    assert res.exit_code == 1 and "not a TFLite flatbuffer" in res.output

    res = runner.invoke(cli, ["verify", str(tmp_path / "missing")])
    assert res.exit_code == 1 and "not a file, a run directory or a pretrained model name" in res.output

    res = runner.invoke(cli, ["verify", str(run / "model.h5"), "--limit", "10"])
    assert res.exit_code == 1 and "--dataset" in res.output

    res = runner.invoke(cli, ["verify", str(run / "model.tflite")])
    assert res.exit_code == 1 and "is a .tflite" in res.output

    bare = tmp_path / "run2"
    bare.mkdir()
    (bare / "config.yml").write_text("dataset: mnist\n")
    (bare / "model.h5").write_bytes((run / "model.h5").read_bytes())
    res = runner.invoke(cli, ["verify", str(bare)])
    assert res.exit_code == 1 and "edgebnn convert" in res.output


# ------------------------------------------------------------ shipped models


@pytest.mark.tf
@pytest.mark.slow
def test_cli_verify_another_shipped_model_fails_on_output_values(shared_data, repo_root):
    """Two MNIST models agree on the top-1 class of the first 100 test images; their outputs do not."""
    shipped = repo_root / "edgebnn" / "pretrained"
    keras, own, other = (shipped / "mnist-bcnn-binary.h5", shipped / "mnist-bcnn-binary.tflite",
                         shipped / "mnist-bcnn-wide-binary.tflite")
    runner = CliRunner()
    common = ["--dataset", "mnist", "--data-dir", str(shared_data), "--json"]
    res = runner.invoke(cli, ["verify", str(keras), "--tflite", str(own), "--limit", "1000", *common])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["passed"] and out["output_mismatches"] == 0 and out["atol"] == 1e-3

    res = runner.invoke(cli, ["verify", str(keras), "--tflite", str(other), "--limit", "100", *common])
    assert res.exit_code == 1
    out = json.loads(res.stdout)
    assert out["agreement"] == 1.0 and out["max_abs_diff"] > 0.1  # top-1 alone would pass
    assert f"verification failed ({other} against {keras}): outputs differ by up to" in res.stderr


@pytest.mark.tf
@pytest.mark.slow
def test_interpreter_errors_name_the_file(tmp_path, repo_root, mnist):
    """LCE's interpreter raises a bare RuntimeError on an op it cannot resolve."""
    from edgebnn.convert import load_keras_model
    from edgebnn.errors import EngineError
    from edgebnn.firmware import expected_predictions
    from edgebnn.verify import verify

    shipped = repo_root / "edgebnn" / "pretrained"
    data = (shipped / "mnist-bcnn-binary.tflite").read_bytes()
    assert data.count(b"LceBconv2d") == 1
    bad = tmp_path / "unknown-op.tflite"
    bad.write_bytes(data.replace(b"LceBconv2d", b"LceBconv2x"))
    x = mnist.x_test[:4]
    with pytest.raises(EngineError, match=r"LCE's interpreter cannot run .*unknown-op.tflite"):
        expected_predictions(bad, None, x.reshape(4, -1), (28, 28, 1), expected="lce")
    model = load_keras_model(shipped / "mnist-bcnn-binary.h5")
    with pytest.raises(EngineError, match=r"the interpreter cannot run .*unknown-op.tflite"):
        verify(model, str(bad), x, mnist.y_test[:4])

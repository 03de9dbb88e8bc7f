"""edgebnn.bench.flips: probing an intermediate tensor, and telling a rounding sign flip from a difference."""

import numpy as np
import pytest

from edgebnn.bench.flips import ZERO_TOL, describe, first_sign_flip, with_output
from edgebnn.errors import ModelError
from edgebnn.graph import load_graph
from edgebnn.pretrained import get_pretrained

WIDE = "mnist-bcnn-wide-binary"


def _data(name):
    with open(get_pretrained(name).tflite_path, "rb") as f:
        return f.read()


def test_with_output_changes_only_the_output_index():
    data = _data(WIDE)
    g = load_graph(data)
    quant = next(op for op in g.ops if op.type == "LceQuantize")
    probe = with_output(data, quant.inputs[0])
    assert load_graph(probe).outputs == (quant.inputs[0],)
    assert len(probe) == len(data)
    assert sum(a != b for a, b in zip(probe, data)) <= 4
    assert with_output(data, g.outputs[0]) == data
    with pytest.raises(ModelError, match="tensor 100000 is not in the model"):
        with_output(data, 100000)


@pytest.mark.tf
@pytest.mark.slow
def test_a_probed_tensor_is_the_same_in_lce_and_the_c_engine(tmp_path):
    """Both engines run the patched model and return the binarized tensor (an ADD's output that an
    LceQuantize reads), equal to rounding: what first_sign_flip compares."""
    from edgebnn.hostprog import predict_c
    from edgebnn.predict import predict_tflite

    data = _data(WIDE)
    g = load_graph(data)
    quant = [op for op in g.ops if op.type == "LceQuantize"][1]
    path = tmp_path / "probe.tflite"
    path.write_bytes(with_output(data, quant.inputs[0]))
    x = np.random.default_rng(0).integers(0, 256, size=(2, 28, 28, 1)).astype(np.float32)
    lce, c = predict_tflite(path, x), predict_c(path, x)
    assert lce.shape == (2,) + tuple(g.tensor(quant.inputs[0]).shape[1:])
    assert np.abs(lce).max() > 0.1
    np.testing.assert_allclose(c, lce, rtol=0, atol=1e-4 * np.abs(lce).max())


def _fake_engines(data, target, kind):
    """Two engines that agree on every binarized input before quantize number ``target``; there engine b
    flips one sign (``kind`` "rounding": of a value 1e-7 of the scale from zero; "difference": by a
    large offset) and every later tensor has a flip too, as the cascade of a real flip does."""
    g = load_graph(data)
    order = [op.inputs[0] for op in g.ops if op.type == "LceQuantize"]
    calls = []

    def base(model):
        t = load_graph(model).outputs[0]
        calls.append(t)
        v = np.random.default_rng(t).standard_normal((2, 5, 5, 8)).astype(np.float32)
        return t, v

    def run_a(model, x):
        t, v = base(model)
        if t in order and order.index(t) == target and kind == "rounding":
            v[0, 0, 0, 0] = 1e-7
        return v

    def run_b(model, x):
        t, v = base(model)
        if t not in order or order.index(t) < target:
            return v
        if order.index(t) == target and kind == "rounding":
            v[0, 0, 0, 0] = -1e-7
        else:
            v[0, 0, 0, 0] = -np.sign(v[0, 0, 0, 0]) * 3.0
        return v

    return run_a, run_b, order, calls


@pytest.mark.parametrize("target", [0, 1, 2])
@pytest.mark.parametrize("kind", ["rounding", "difference"])
def test_first_sign_flip_finds_the_first_flipped_binarization(target, kind):
    data = _data(WIDE)
    run_a, run_b, order, calls = _fake_engines(data, target, kind)
    assert len(order) == 3
    r = first_sign_flip(data, None, run_a, run_b)
    assert r["kind"] == kind
    assert r["tensor"] == order[target]
    assert r["op"] == next(op.index for op in load_graph(data).ops if op.inputs[:1] == (order[target],))
    assert r["flips"] == 1
    if kind == "rounding":
        assert r["flip_max_abs"] == pytest.approx(1e-7) and r["flip_max_abs"] <= ZERO_TOL * r["scale"]
    else:
        assert r["flip_max_abs"] >= 3.0
    assert len(set(calls)) <= 2  # bisection over 3 quantizes: at most 2 distinct probes
    line = describe(r)  # goes into markdown tables: no "|"
    assert line.startswith("rounding flip at op" if kind == "rounding" else "DIFFERENCE at op") and "|" not in line


def test_no_flip_is_reported_as_none():
    data = _data(WIDE)
    run_a, _, _, _ = _fake_engines(data, 0, "rounding")
    r = first_sign_flip(data, None, lambda m, x: run_a(m, x) * 0 + 1.0, lambda m, x: run_a(m, x) * 0 + 2.0)
    assert r == {"kind": "none", "quantizes": 3}

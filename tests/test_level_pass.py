"""The level-coded convolution pass (edgebnn/codegen/passes.py:
level_convolutions) on small flatbuffers written by tests/tflite_builder.py:
DoReFa-Net's activation chain ROUND(MUL(RELU(MINIMUM(x, 1)), 3)) before a
float CONV_2D or (scaled and reshaped) FULLY_CONNECTED with +-s weights is
rewritten, and the C engine's outputs stay within float rounding of TFLite's;
every chain that does not prove integer codes 0..255 without NaN, or weights
that are not +-s per output channel, is left alone."""
import sys
from pathlib import Path

import numpy as np
import pytest

from edgebnn.codegen import ops as O
from edgebnn.codegen.generator import build_nodes
from edgebnn.graph import load_graph

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tflite_builder import INT32, Operator, T, build_model  # noqa: E402

CONV_OPTS = {"Padding": 0, "StrideW": 1, "StrideH": 1, "DilationWFactor": 1, "DilationHFactor": 1}


def _signed(rng, shape):
    """+-s_o weights: random signs times a positive magnitude per output channel."""
    s = rng.random(shape[0]).astype(np.float32) * 0.2 + 0.05
    signs = np.where(rng.random(shape) < 0.5, -1.0, 1.0).astype(np.float32)
    return signs * s.reshape((-1,) + (1,) * (len(shape) - 1))


def chain_model(*, clip=1.0, mul=3.0, const_first=False, relu=True, weights=None, fc=False, seed=0):
    """x -> MINIMUM(x, clip) -> [RELU] -> MUL(mul) -> ROUND -> CONV_2D (3x3 SAME, 16 -> 24) or,
    with ``fc``, -> MUL(1/3) -> RESHAPE -> FULLY_CONNECTED (6*6*16 -> 10)."""
    rng = np.random.default_rng(seed)
    shape = (1, 6, 6, 16)
    t = [T(shape, name="x"), T((), data=np.float32(clip).reshape(()), name="clip"), T(shape, name="clipped"),
         T(shape, name="relu"), T((), data=np.float32(mul).reshape(()), name="three"), T(shape, name="scaled"),
         T(shape, name="codes")]
    ops = [Operator("MINIMUM", [1, 0] if const_first else [0, 1], [2])]
    if relu:
        ops.append(Operator("RELU", [2], [3]))
    ops += [Operator("MUL", [3 if relu else 2, 4], [5], ("MulOptions", {"FusedActivationFunction": 0})),
            Operator("ROUND", [5], [6])]
    if fc:
        w = _signed(rng, (10, 6 * 6 * 16)) if weights is None else weights
        t += [T((), data=np.float32(1 / 3).reshape(()), name="third"), T(shape, name="values"),
              T((2,), INT32, data=np.array([1, 6 * 6 * 16], np.int32), name="flat_shape"),
              T((1, 6 * 6 * 16), name="flat"), T(w.shape, data=w, name="fc_w"),
              T((10,), data=rng.normal(size=10).astype(np.float32), name="fc_b"), T((1, 10), name="y")]
        ops += [Operator("MUL", [6, 7], [8], ("MulOptions", {"FusedActivationFunction": 0})),
                Operator("RESHAPE", [8, 9], [10]),
                Operator("FULLY_CONNECTED", [10, 11, 12], [13], ("FullyConnectedOptions", {"FusedActivationFunction": 0}))]
        return build_model(t, ops, [0], [13])
    w = _signed(rng, (24, 3, 3, 16)) if weights is None else weights
    t += [T(w.shape, data=w, name="w"), T((24,), data=rng.normal(size=24).astype(np.float32), name="b"),
          T((1, 6, 6, 24), name="y")]
    ops.append(Operator("CONV_2D", [6, 7, 8], [9], ("Conv2DOptions", dict(CONV_OPTS, FusedActivationFunction=1))))
    return build_model(t, ops, [0], [9])


def level_nodes(data):
    _, nodes = build_nodes(load_graph(data), fuse=False)
    return [n for n in nodes if isinstance(n, O.LevelConv)], nodes


def _tflite(data, x):
    import edgebnn  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
    import tensorflow as tf

    it = tf.lite.Interpreter(model_content=data)
    it.allocate_tensors()
    outs = []
    for xi in x:
        it.set_tensor(it.get_input_details()[0]["index"], xi[None])
        it.invoke()
        outs.append(it.get_tensor(it.get_output_details()[0]["index"])[0])
    return np.stack(outs)


@pytest.mark.parametrize("fc", [False, True], ids=["conv", "fc"])
def test_dorefa_chain_becomes_a_level_conv_and_matches_tflite(fc, tmp_path):
    from edgebnn.hostprog import predict_c

    data = chain_model(fc=fc)
    levels, nodes = level_nodes(data)
    assert len(levels) == 1 and levels[0].levels == 3 and levels[0].planes == 2
    if fc:  # the MUL by 1/3 is folded into the scales, the MUL and RESHAPE are gone
        assert levels[0].in_scale == pytest.approx(1 / 3)
        assert [n.op.type for n in nodes].count("MUL") == 1
    path = tmp_path / "chain.tflite"
    path.write_bytes(data)
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(4, 6, 6, 16)) * 0.8).astype(np.float32)
    x[0, 0, 0, :3] = [np.nan, np.inf, -np.inf]  # MINIMUM(x, 1) maps NaN to 1: still codes
    want = _tflite(data, x)
    got = predict_c(path, x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert np.isfinite(got).all()


@pytest.mark.parametrize("change", ["not_pm_s", "no_relu", "const_first", "too_many_levels", "zero_weight"])
def test_chains_that_do_not_prove_codes_are_left_alone(change):
    rng = np.random.default_rng(2)
    w = _signed(rng, (24, 3, 3, 16))
    kw = {}
    if change == "not_pm_s":
        w[3, 1, 1, 5] *= 1.5  # one weight of channel 3 off its +-s
        kw["weights"] = w
    elif change == "zero_weight":
        w[0, 0, 0, 0] = 0.0
        kw["weights"] = w
    elif change == "no_relu":
        kw["relu"] = False  # codes could be negative
    elif change == "const_first":
        kw["const_first"] = True  # MINIMUM(1, NaN) is NaN: ROUND could output NaN
    else:
        kw["mul"] = 300.0  # 301 levels: more than the 8 bitplanes the runtime takes
    levels, nodes = level_nodes(chain_model(**kw))
    assert levels == []
    assert any(n.op.type == "CONV_2D" and type(n) is O.Conv2D for n in nodes)

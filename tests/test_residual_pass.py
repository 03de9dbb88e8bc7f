"""The residual-add pass (edgebnn/codegen/passes.py: residual_adds) on small
flatbuffers written by tests/tflite_builder.py: LceQuantize -> LceBconv2d
(float output) -> ADD with another activation tensor becomes one
ebnn_bconv2d_add call, whichever operand of the ADD the bconv is and even
when the residual is computed after the bconv in the op list; the merged
program gives the same bits as the unmerged one (the "mcu" kernel set has
no merged kernel) and matches LCE's interpreter; a bconv whose output is
read twice, is a graph output, or is added to a constant is left alone."""
import sys
from pathlib import Path

import numpy as np
import pytest

from edgebnn.codegen import ops as O
from edgebnn.codegen.generator import build_nodes, generate
from edgebnn.graph import load_graph

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tflite_builder import INT32, Operator, T, build_model  # noqa: E402

SHAPE, C = (1, 6, 7, 40), 40


def residual_model(*, residual_first=False, late_residual=False, add_act=0, const_residual=False,
                   y_output=False, seed=0):
    """x -> LceQuantize -> LceBconv2d (3x3 SAME, 40 -> 40, float) -> y; r = RELU(x) (after the bconv
    with ``late_residual``, or a constant with ``const_residual``); out = ADD(y, r) (or ADD(r, y))."""
    rng = np.random.default_rng(seed)
    words = (C + 31) // 32
    filt = rng.integers(-2**31, 2**31, size=(C, 3, 3, words), dtype=np.int64).astype(np.int32)
    filt[..., -1] &= np.int32((1 << (C % 32)) - 1)
    t = [T(SHAPE, name="x"), T(SHAPE[:3] + (words,), INT32, name="q"), T(filt.shape, INT32, data=filt, name="filter"),
         T((C,), data=rng.normal(size=C).astype(np.float32), name="multiplier"),
         T((C,), data=rng.normal(size=C).astype(np.float32), name="bias"), T(SHAPE, name="y"),
         T(SHAPE, name="r", data=rng.normal(size=SHAPE).astype(np.float32) if const_residual else None),
         T(SHAPE, name="out")]
    bconv_opts = {"channels_in": C, "dilation_height_factor": 1, "dilation_width_factor": 1,
                  "fused_activation_function": "NONE", "pad_values": 1, "padding": "SAME",
                  "stride_height": 1, "stride_width": 1}
    quantize = Operator("LceQuantize", [0], [1], custom=True)
    bconv = Operator("LceBconv2d", [1, 2, 3, 4, -1], [5], bconv_opts, custom=True)  # no output_threshold
    relu = Operator("RELU", [0], [6])
    add = Operator("ADD", [6, 5] if residual_first else [5, 6], [7], ("AddOptions", {"FusedActivationFunction": add_act}))
    if const_residual:
        ops = [quantize, bconv, add]
    else:
        ops = [quantize, bconv, relu, add] if late_residual else [quantize, relu, bconv, add]
    return build_model(t, ops, [0], [7, 5] if y_output else [7])


def _nodes(data):
    return build_nodes(load_graph(data), fuse=False, residual_adds=True)[1]


@pytest.mark.parametrize("residual_first", [False, True])
@pytest.mark.parametrize("late_residual", [False, True])
def test_bconv_add_is_merged_where_the_add_was(residual_first, late_residual):
    nodes = _nodes(residual_model(residual_first=residual_first, late_residual=late_residual))
    merged = [n for n in nodes if isinstance(n, O.BconvAdd)]
    assert len(merged) == 1 and not any(type(n) in (O.LceBconv2d, O.Add) for n in nodes)
    m = merged[0]
    assert m.residual_first == int(residual_first)
    assert m.inputs == (1, 6) and m.outputs == (7,)
    relu = next(i for i, n in enumerate(nodes) if n.op.type == "RELU")
    assert nodes.index(m) > relu  # after the residual's producer, in either op order


@pytest.mark.parametrize("case", [dict(const_residual=True), dict(y_output=True)])
def test_bconv_add_is_not_merged_when_it_cannot_be(case):
    if case.get("y_output"):  # the graph reads y itself: the generator supports one output, so check the pass alone
        from edgebnn.codegen import passes
        nodes = build_nodes(load_graph(residual_model(**case)), fuse=False)[1]
        assert not any(isinstance(n, O.BconvAdd) for n in passes.residual_adds(nodes, {7, 5}))
        return
    nodes = _nodes(residual_model(**case))
    assert not any(isinstance(n, O.BconvAdd) for n in nodes)


def test_the_pass_is_off_without_the_flag():
    nodes = build_nodes(load_graph(residual_model()), fuse=False)[1]
    assert any(type(n) is O.LceBconv2d for n in nodes) and not any(isinstance(n, O.BconvAdd) for n in nodes)


@pytest.mark.parametrize("residual_first,late_residual,add_act", [(False, False, 0), (True, True, 1), (True, False, 3)])
def test_merged_program_matches_the_unmerged_one_and_lce(tmp_path, residual_first, late_residual, add_act):
    from edgebnn.hostprog import predict_c

    data = residual_model(residual_first=residual_first, late_residual=late_residual, add_act=add_act, seed=add_act)
    path = tmp_path / "residual.tflite"
    path.write_bytes(data)
    assert "ebnn_bconv2d_add_opt(" in generate(path, kernels="opt").files["model.c"]
    assert "ebnn_bconv2d_add" not in generate(path, kernels="mcu").files["model.c"]
    x = np.random.default_rng(5).normal(size=(3,) + SHAPE[1:]).astype(np.float32)
    opt, mcu = predict_c(path, x), predict_c(path, x, kernels="mcu")
    assert np.array_equal(opt.view(np.uint32), mcu.view(np.uint32))
    pytest.importorskip("larq_compute_engine")
    from edgebnn.predict import predict_tflite

    lce = predict_tflite(path, x)
    # LCE's float output transform rounds as the C engine's (bit for bit on its grids); the ADD is one
    # float addition, so only the order of the bconv's fused multiply-add can differ
    np.testing.assert_allclose(opt, lce, rtol=0, atol=1e-5)

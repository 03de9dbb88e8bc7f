"""Export-time folding of the weight computations LCE leaves in a graph (edgebnn/codegen/fold.py).

The graph is XNOR-Net's unfolded last binary layer in miniature, built from
edgebnn.graph's dataclasses: a constant HWIO kernel through RELU_N1_TO_1 ->
ABS -> MEAN (scale) and LceQuantize -> LceDequantize (sign), MUL, TRANSPOSE
to OHWI, then a float CONV_2D on an LceDequantize output.
"""

import numpy as np

from edgebnn.codegen.fold import fold_weight_computations
from edgebnn.codegen.generator import build_nodes
from edgebnn.codegen.ops import LceBconv2d, pack_bits
from edgebnn.graph import Graph, Op, Tensor


def _xnor_graph(rng, kh=3, kw=3, cin=40, cout=8):
    w = rng.normal(0, 0.8, size=(kh, kw, cin, cout)).astype(np.float32)
    bias = rng.normal(size=cout).astype(np.float32)
    words = (cin + 31) // 32
    t = [
        Tensor(0, "q", (1, 5, 5, words), "int32"),
        Tensor(1, "x", (1, 5, 5, cin), "float32"),
        Tensor(2, "kernel", w.shape, "float32", data=w),
        Tensor(3, "clipped", w.shape, "float32"),
        Tensor(4, "abs", w.shape, "float32"),
        Tensor(5, "axes", (3,), "int32", data=np.array([0, 1, 2], np.int32)),
        Tensor(6, "scale", (1, 1, 1, cout), "float32"),
        Tensor(7, "packed_kernel", (kh, kw, cin, 1), "int32"),
        Tensor(8, "sign", w.shape, "float32"),
        Tensor(9, "scaled", w.shape, "float32"),
        Tensor(10, "perm", (4,), "int32", data=np.array([3, 0, 1, 2], np.int32)),
        Tensor(11, "filter", (cout, kh, kw, cin), "float32"),
        Tensor(12, "bias", (cout,), "float32", data=bias),
        Tensor(13, "y", (1, 3, 3, cout), "float32"),
    ]
    conv_opts = {"padding": "VALID", "stride_h": 1, "stride_w": 1, "dilation_hfactor": 1, "dilation_wfactor": 1,
                 "fused_activation_function": "NONE"}
    ops = [
        Op(0, "LceDequantize", True, (0,), (1,), {}),
        Op(1, "RELU_N1_TO_1", False, (2,), (3,), {}),
        Op(2, "ABS", False, (3,), (4,), {}),
        Op(3, "MEAN", False, (4, 5), (6,), {"keep_dims": True}),
        Op(4, "LceQuantize", True, (3,), (7,), {}),
        Op(5, "LceDequantize", True, (7,), (8,), {}),
        Op(6, "MUL", False, (6, 8), (9,), {"fused_activation_function": "NONE"}),
        Op(7, "TRANSPOSE", False, (9, 10), (11,), {}),
        Op(8, "CONV_2D", False, (1, 11, 12), (13,), conv_opts),
    ]
    return Graph(tensors=tuple(t), ops=tuple(ops), inputs=(0,), outputs=(13,), sha256="0" * 64, size=0), w, bias


def test_xnor_weight_chain_becomes_one_binary_convolution():
    graph, w, bias = _xnor_graph(np.random.default_rng(0))
    folded = fold_weight_computations(graph)
    assert [op.type for op in folded.ops] == ["LceDequantize", "LceBconv2d"]
    conv = folded.ops[1]
    assert conv.inputs[0] == 0 and conv.outputs == (13,)
    clipped = np.clip(w, -1, 1)
    sign_ohwi = np.where(clipped < 0, -1.0, 1.0).transpose(3, 0, 1, 2)
    assert np.array_equal(folded.tensor(conv.inputs[1]).data, pack_bits(sign_ohwi))
    np.testing.assert_allclose(folded.tensor(conv.inputs[2]).data, np.abs(clipped).mean(axis=(0, 1, 2)),
                               rtol=1e-6)  # summed in float64 here, in float32 by numpy: rounding only
    assert np.array_equal(folded.tensor(conv.inputs[3]).data, bias)
    assert conv.options["channels_in"] == 40 and conv.options["padding"] == 1
    # the handlers accept it: the dead LceDequantize goes, one binary conv with float output stays
    _, nodes = build_nodes(folded)
    assert [type(n) for n in nodes] == [LceBconv2d]
    assert not nodes[0].params.bitpacked_output


def test_a_filter_that_is_not_plus_minus_scale_stays_float():
    rng = np.random.default_rng(1)
    graph, _, _ = _xnor_graph(rng)
    ops = list(graph.ops)
    ops[6] = Op(6, "ADD", False, (6, 8), (9,), {"fused_activation_function": "NONE"})  # scale + sign: not +-s
    folded = fold_weight_computations(Graph(graph.tensors, tuple(ops), graph.inputs, graph.outputs, "0" * 64, 0))
    # ADD is not foldable: it and what depends on it stay, the float CONV_2D too
    assert [op.type for op in folded.ops] == ["LceDequantize", "ADD", "TRANSPOSE", "CONV_2D"]
    add = folded.ops[1]
    assert all(folded.tensor(i).is_constant for i in add.inputs)  # scale and sign were still folded


def test_graph_without_constant_chains_is_returned_unchanged():
    rng = np.random.default_rng(2)
    graph, _, _ = _xnor_graph(rng)
    plain = Graph(graph.tensors, graph.ops[:1], (0,), (1,), "0" * 64, 0)
    assert fold_weight_computations(plain) is plain

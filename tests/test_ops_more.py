"""The ops larq-zoo adds (edgebnn/codegen/ops_more.py, firmware/runtime/ebnn_eltwise.c and ebnn_shape.c).

Oracle: TFLite's own kernels. tools/gen_op_fixtures.py converted one tiny
float model per case with tf.lite.TFLiteConverter and stored its output from
tf.lite.Interpreter (tests/fixtures/ops/); here each .tflite goes through
edgebnn's generator, is compiled for the host (both kernel sets) and run on
the stored input. Every op here is one float operation per element or pure
data movement, so the results must be identical bit for bit (NaN-free
inputs with +-0.0 and ties included).
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "runtime"))

from fixture_io import load_cases  # noqa: E402

from edgebnn.codegen import generate  # noqa: E402
from edgebnn.hostprog import predict_c  # noqa: E402
from edgebnn.errors import UnsupportedOpError  # noqa: E402
from edgebnn.graph import load_graph  # noqa: E402

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "ops"
CASES, _ = load_cases(FIXTURES / "cases.npz")
NEW_OPS = ("ABS", "ROUND", "SUB", "MINIMUM", "MAXIMUM", "PRELU", "SPLIT", "SPLIT_V", "STRIDED_SLICE", "SLICE", "TRANSPOSE")


def test_fixtures_cover_every_new_op():
    assert {c["op"] for c in CASES} == set(NEW_OPS)
    for case in CASES:
        assert case["op"] in load_graph(FIXTURES / f"{case['id']}.tflite").op_types(), case["id"]


@pytest.mark.parametrize("kernels", ["ref", "opt"])
@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_op_matches_tflite_bit_for_bit(case, kernels):
    y = predict_c(FIXTURES / f"{case['id']}.tflite", case["x"],
                  kernels=kernels)
    want = case["y"]
    assert y.reshape(want.shape).view(np.uint32).tolist() == want.view(np.uint32).tolist()


def test_generated_calls_name_the_new_kernels():
    gen = generate(FIXTURES / "split_v_channels.tflite", name="m")
    kernels = [c["kernel"] for c in gen.ops]
    assert kernels == ["ebnn_split_ref", "ebnn_concatenation_ref"]
    assert "ebnn_shape.c" in gen.files and "op0_outputs[3]" in gen.files["m.c"]
    gen = generate(FIXTURES / "prelu_channel_alpha.tflite", name="m")
    assert [c["kernel"] for c in gen.ops] == ["ebnn_prelu_ref"]
    assert "ebnn_eltwise.c" in gen.files


def _mutate_int_const(data, tensor_index, values):
    """The flatbuffer with the int32 constant ``tensor_index`` overwritten in place."""
    g = load_graph(data)
    old = np.asarray(g.tensor(tensor_index).data, np.int32).tobytes()
    new = np.asarray(values, np.int32).tobytes()
    assert len(old) == len(new) and data.count(old) == 1
    return data.replace(old, new)


def test_bad_perm_is_rejected_with_the_op_named():
    data = (FIXTURES / "transpose_hw_swap.tflite").read_bytes()
    op = load_graph(data).ops[0]
    bad = _mutate_int_const(data, op.inputs[1], [0, 2, 2, 3])
    with pytest.raises(UnsupportedOpError, match=r"op 0 \(TRANSPOSE.*perm \[0, 2, 2, 3\] is not a permutation"):
        generate(bad, name="m")


def test_bad_split_sizes_are_rejected():
    data = (FIXTURES / "split_v_channels.tflite").read_bytes()
    op = load_graph(data).ops[0]
    bad = _mutate_int_const(data, op.inputs[1], [2, 5, 4])
    with pytest.raises(UnsupportedOpError, match=r"SPLIT_V.*split sizes \[2, 5, 4\] do not cover axis 3 of 10"):
        generate(bad, name="m")

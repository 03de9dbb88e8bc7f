"""Hostile flatbuffers: regression tests for each finding, and a seeded fuzz slice.

Each regression test builds the smallest model showing one finding of
issue 8 (tests/tflite_builder.py) and asserts the reader or the generator
refuses it with an ``EdgeBnnError`` that names what is wrong. The fuzz slice
runs tools/fuzz_models.py's cases: every one must end in success or an
``EdgeBnnError`` (``--fuzz N`` runs N more cases, all compiled).
"""

import sys
from pathlib import Path

import numpy as np
import pytest

from edgebnn.codegen import generate
from edgebnn.errors import EdgeBnnError, TFLiteFormatError, UnsupportedOpError
from edgebnn.graph import load_graph

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))

from tflite_builder import INT32, Operator, Sub, T, build_model, pool_model, relu_model  # noqa: E402

import fuzz_models  # noqa: E402


def refused(data, cls=EdgeBnnError, match=None, name="hostile.tflite"):
    """The error ``generate`` raises on ``data`` (it must raise ``cls``)."""
    with pytest.raises(cls, match=match) as info:
        load_graph(data, name=name)
        generate(data)
    assert str(info.value).strip()
    return str(info.value)


def test_builder_models_export():
    # the baselines the hostile variants start from are accepted
    assert generate(relu_model()).output_size == 32
    assert generate(pool_model()).output_size == 18


# -- finding 10 ------------------------------------------------------------


def test_constant_graph_output_is_refused():
    w = np.arange(4, dtype=np.float32)
    data = build_model([T((1, 4), name="x"), T((1, 4), name="y"), T((4,), data=w, name="const_out")],
                       [Operator("RELU", [0], [1])], [0], [2])
    msg = refused(data, UnsupportedOpError, "const_out")
    assert "constant" in msg


def test_tensor_of_2_to_32_elements_is_refused_before_allocation():
    # 65536 x 65536 floats: the int32 size fields would wrap to 0
    msg = refused(relu_model((1, 65536, 65536)), UnsupportedOpError, "4294967296 elements")
    assert "tensor 0 ('x')" in msg


def test_byte_cap_is_configurable():
    data = relu_model((1, 1024, 1024))  # 4 MiB tensors
    load_graph(data)
    with pytest.raises(UnsupportedOpError, match="1000000 bytes per tensor"):
        load_graph(data, max_tensor_bytes=1_000_000)


@pytest.mark.parametrize("shape", [(1, -3, 4), (1, 0, 4)], ids=["negative", "zero"])
def test_negative_and_zero_dimensions_are_refused(shape):
    msg = refused(relu_model(shape), match=r"\[1, (-3|0), 4\]")
    assert "negative" in msg or "no elements" in msg


def test_second_subgraph_is_refused():
    one = Sub([T((1, 4), name="x"), T((1, 4), name="y")], [Operator("RELU", [0], [1])], [0], [1])
    two = Sub([T((1, 4), name="a"), T((1, 4), name="b")], [Operator("RELU", [0], [1])], [0], [1])
    refused(build_model(subgraphs=[one, two]), UnsupportedOpError, "2 subgraphs")


def test_graph_input_that_is_also_output_is_refused():
    data = build_model([T((1, 4), name="x"), T((1, 4), name="y")], [Operator("RELU", [0], [1])], [0], [0])
    refused(data, UnsupportedOpError, "also a graph input")


# -- tracebacks: IndexError, KeyError, ZeroDivisionError, ValueError --------


def test_out_of_range_tensor_index_names_op_and_index():
    data = build_model([T((1, 4), name="x"), T((1, 4), name="y")], [Operator("RELU", [7], [1])], [0], [1])
    msg = refused(data, TFLiteFormatError, "tensor index 7")
    assert "op 0 (RELU)" in msg and "hostile.tflite" in msg


def test_read_of_a_never_written_tensor_is_refused():
    # tensor 1 is read by op 0 but no op writes it: the planner had no location (KeyError)
    data = build_model([T((1, 4), name="x"), T((1, 4), name="ghost"), T((1, 4), name="y")],
                       [Operator("ADD", [0, 1], [2])], [0], [2])
    refused(data, TFLiteFormatError, "ghost")


def test_op_reading_its_own_output_is_refused():
    data = build_model([T((1, 4), name="x"), T((1, 4), name="y")], [Operator("ADD", [0, 1], [1])], [0], [1])
    refused(data, TFLiteFormatError, "writes it itself")


@pytest.mark.parametrize("opts,expect", [
    ({"StrideW": 0}, "stride_w is 0"),
    ({"StrideH": -2}, "stride_h is -2"),
    ({"FilterWidth": 0}, "filter_w is 0"),
    ({"Padding": 7}, "padding 7"),
    ({"FusedActivationFunction": 9}, "activation"),
], ids=["stride0", "stride_neg", "filter0", "padding_enum", "activation_enum"])
def test_pool_options_out_of_range(opts, expect):
    msg = refused(pool_model(**opts), UnsupportedOpError, expect)
    assert "op 0 (MAX_POOL_2D" in msg and "supported ops:" not in msg


def test_window_larger_than_input_with_valid_padding():
    # 5x5 window on a 3x3 input, VALID: the output would be 0x0
    refused(pool_model((1, 3, 3, 2), (1, 1, 1, 2), FilterWidth=5, FilterHeight=5, StrideW=1, StrideH=1),
            UnsupportedOpError, "does not fit")


def _conv(w_shape, x_shape=(1, 5, 5, 2), y_shape=(1, 3, 3, 4), bias=4, **opts):
    rng = np.random.default_rng(0)
    fields_ = {"Padding": 1, "StrideW": 1, "StrideH": 1, "DilationWFactor": 1, "DilationHFactor": 1}
    fields_.update(opts)
    tensors = [T(x_shape, name="x"), T(w_shape, data=rng.normal(size=w_shape).astype(np.float32), name="w"),
               T((bias,), data=np.zeros(bias, np.float32), name="b"), T(y_shape, name="y")]
    return build_model(tensors, [Operator("CONV_2D", [0, 1, 2], [3], ("Conv2DOptions", fields_))], [0], [3])


def test_conv_baseline_exports():
    assert generate(_conv((4, 3, 3, 2))).output_size == 36


@pytest.mark.parametrize("kw,expect", [
    (dict(w_shape=(4, 3, 3, 2), DilationWFactor=0), "dilation_w is 0"),
    (dict(w_shape=(4, 3, 3, 3)), "filter shape"),
    (dict(w_shape=(4, 3, 3, 2), bias=3), "bias tensor 2 'b' has 3 values"),
    (dict(w_shape=(4, 3, 3, 2), StrideH=0), "stride_h is 0"),
], ids=["dilation0", "filter_channels", "bias_size", "stride0"])
def test_conv_options_and_operands(kw, expect):
    msg = refused(_conv(**kw), UnsupportedOpError, expect)
    assert "supported ops:" not in msg


def test_reshape_with_mismatched_element_count():
    data = build_model([T((1, 4), name="x"), T((1, 5), name="y")], [Operator("RESHAPE", [0], [1])], [0], [1])
    refused(data, UnsupportedOpError, "element count")


def test_pad_with_malformed_paddings():
    # paddings of shape [3] for a rank-2 input: numpy's reshape raised ValueError
    data = build_model([T((1, 4), name="x"), T((3,), INT32, np.zeros(3, np.int32), name="p"), T((1, 4), name="y")],
                       [Operator("PAD", [0, 1], [2])], [0], [2])
    refused(data, UnsupportedOpError, r"expected \[2, 2\]")


def test_op_without_outputs():
    data = build_model([T((1, 4), name="x"), T((1, 4), name="y")],
                       [Operator("RELU", [0], [1]), Operator("RELU", [1], [])], [0], [1])
    refused(data, UnsupportedOpError, "0 outputs")


def test_two_producers_and_writes_to_constants_or_inputs():
    base = [T((1, 4), name="x"), T((1, 4), name="y")]
    twice = build_model(base, [Operator("RELU", [0], [1]), Operator("RELU", [0], [1])], [0], [1])
    refused(twice, TFLiteFormatError, "already written by op 0")
    const = build_model(base + [T((1, 4), data=np.zeros(4, np.float32), name="c")],
                        [Operator("RELU", [0], [2]), Operator("RELU", [0], [1])], [0], [1])
    refused(const, TFLiteFormatError, "a constant tensor")
    to_input = build_model(base, [Operator("RELU", [0], [1]), Operator("RELU", [1], [0])], [0], [1])
    refused(to_input, TFLiteFormatError, "a graph input")


def test_unknown_tensor_type_and_buffer_index():
    data = build_model([T((1, 4), 99, name="x"), T((1, 4), name="y")], [Operator("RELU", [0], [1])], [0], [1])
    refused(data, TFLiteFormatError, "unknown TensorType 99")
    data = build_model([T((1, 4), name="x"), T((1, 4), data=b"\0" * 12, name="y")],
                       [Operator("RELU", [0], [1])], [0], [1])
    refused(data, TFLiteFormatError, "holds 12 bytes")


def test_unknown_builtin_code_lists_supported_ops():
    data = build_model([T((1, 4), name="x"), T((1, 4), name="y")], [Operator(250, [0], [1])], [0], [1])
    msg = refused(data, UnsupportedOpError, "UNKNOWN_BUILTIN_250")
    assert "supported ops:" in msg


# -- messages name the file ----------------------------------------------------


def test_messages_name_the_file(tmp_path):
    path = tmp_path / "evil-model.tflite"
    path.write_bytes(pool_model(StrideW=0))
    with pytest.raises(UnsupportedOpError, match="evil-model.tflite"):
        generate(path)
    with pytest.raises(UnsupportedOpError, match="given-name.tflite"):
        load_graph(relu_model((1, 65536, 65536)), name="given-name.tflite")


# -- the fuzzer ------------------------------------------------------------------


def test_fuzz_cases_are_reproducible():
    a = fuzz_models.make_case(5, 17)
    b = fuzz_models.make_case(5, 17)
    assert a[0] == b[0] and a[1] == b[1] and a[2] == b[2]
    assert fuzz_models.make_case(5, 18)[1] != a[1]


def test_fuzz_slice_reader_and_export():
    """250 seeded cases through the reader and export (no compile)."""
    bad = []
    statuses = set()
    for i in range(250):
        base, data, notes, rng = fuzz_models.make_case(11, i)
        out = fuzz_models.run_case(data, f"case-{i}.tflite", compile_=False)
        statuses.add(out.status)
        if out.status == "failure":
            bad.append(f"case {i} ({base}; {notes}): {out.message}")
    assert not bad, "\n".join(bad[:5])
    assert statuses == {"ok", "error"}  # the slice exercises both outcomes


@pytest.mark.parametrize("index", [0, 1], ids=["ref", "opt"])
def test_fuzz_slice_compiled_with_sanitizers(index, tmp_path):
    """A few exported cases compiled with -Werror and ASan/UBSan, and run."""
    for i in range(index * 1000, index * 1000 + 200):  # the first case of the range that exports
        base, data, notes, rng = fuzz_models.make_case(23, i)
        try:
            generate(data)
        except EdgeBnnError:
            continue
        out = fuzz_models.run_case(data, f"case-{i}.tflite", compile_=True, kernels=("ref", "opt")[index % 2],
                                   rng=rng, workdir=tmp_path)
        assert out.status == "ok", f"case {i} ({base}; {notes}): {out.message}"
        return
    pytest.fail("no exported case in 200")


def test_fuzz_long(request):
    """``pytest --fuzz N``: N more cases, every exported one compiled with sanitizers."""
    n = request.config.getoption("--fuzz")
    if not n:
        pytest.skip("run with --fuzz N")
    assert fuzz_models.main(["--cases", str(n), "--seed", "101", "--quiet"]) == 0


def test_single_op_model_compiles_with_werror(tmp_path):
    # one op from input to output: nothing lives in the arena, which -Wunused-variable rejected
    out = fuzz_models.run_case(relu_model(), "relu.tflite", compile_=True, kernels="ref", workdir=tmp_path)
    assert out.status == "ok" and out.compiled, out.message


def test_non_finite_float_option_is_refused():
    data = build_model([T((1, 3), name="x"), T((1, 3), name="y")],
                       [Operator("SOFTMAX", [0], [1], ("SoftmaxOptions", {"Beta": float("nan")}))], [0], [1])
    refused(data, UnsupportedOpError, "option 'beta' is nan")


def test_nan_weights_compile(tmp_path):
    # a flipped exponent makes a weight NaN: the C literal NAN needs <math.h>
    w = np.array([[1.0, np.nan, -np.inf, 2.0]], np.float32)
    data = build_model([T((1, 4), name="x"), T((1, 4), data=w, name="c"), T((1, 4), name="y")],
                       [Operator("ADD", [0, 1], [2], ("AddOptions", {}))], [0], [2])
    out = fuzz_models.run_case(data, "nan.tflite", compile_=True, kernels="ref", workdir=tmp_path)
    assert out.status == "ok" and out.compiled, out.message

"""The TFLite reader on a real LCE flatbuffer and on broken files."""

from pathlib import Path

import numpy as np
import pytest

from edgebnn.errors import TFLiteFormatError
from edgebnn.graph import load_graph


@pytest.fixture(scope="module")
def lce_model_bytes():
    from edgebnn._tf import import_lce, import_tf

    _, keras, lq = import_tf()
    lce = import_lce()
    kw = dict(input_quantizer="ste_sign", kernel_quantizer="ste_sign",
              kernel_constraint="weight_clip", use_bias=False)
    model = keras.Sequential([
        keras.layers.Conv2D(40, 3, input_shape=(12, 12, 3)),
        keras.layers.BatchNormalization(),
        lq.layers.QuantConv2D(33, 3, strides=2, padding="same", pad_values=1.0, **kw),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(5, activation="softmax"),
    ])
    return lce.convert_keras_model(model)


@pytest.mark.tf
def test_reads_lce_ops_options_and_packed_filters(lce_model_bytes):
    g = load_graph(lce_model_bytes)
    assert g.is_lce()
    assert "LceBconv2d" in g.op_types() and "LceQuantize" in g.op_types()
    (bconv,) = [op for op in g.ops if op.type == "LceBconv2d"]
    assert bconv.custom
    assert bconv.options["channels_in"] == 40
    assert bconv.options["stride_height"] == 2 and bconv.options["pad_values"] == 1
    filt = g.tensor(bconv.inputs[1])
    # 40 input channels pack into ceil(40/32) = 2 int32 words per tap.
    assert filt.shape == (33, 3, 3, 2) and filt.dtype == "int32"
    assert g.tensor(g.inputs[0]).shape == (1, 12, 12, 3)
    assert g.tensor(g.outputs[0]).shape == (1, 5)
    assert len(g.sha256) == 64 and g.size == len(lce_model_bytes)


@pytest.mark.tf
def test_builtin_options_use_enum_names(lce_model_bytes):
    g = load_graph(lce_model_bytes)
    conv = next(op for op in g.ops if op.type == "CONV_2D")
    assert conv.options["padding"] == "VALID"
    assert conv.options["fused_activation_function"] in ("NONE", "RELU", "RELU6", "RELU_N1_TO_1", "TANH")
    weights = g.tensor(conv.inputs[1])
    assert weights.shape == (40, 3, 3, 3) and weights.data.dtype == np.float32


@pytest.mark.tf
def test_truncated_flatbuffer_is_reported(tmp_path, lce_model_bytes):
    bad = tmp_path / "cut.tflite"
    bad.write_bytes(lce_model_bytes[: len(lce_model_bytes) // 3])
    with pytest.raises(TFLiteFormatError, match="cut.tflite"):
        load_graph(bad)


def test_not_a_flatbuffer(tmp_path):
    bad = tmp_path / "notes.tflite"
    bad.write_text("this is not a model at all")
    with pytest.raises(TFLiteFormatError, match="TFL3"):
        load_graph(bad)


def test_missing_file(tmp_path):
    with pytest.raises(TFLiteFormatError, match="not found"):
        load_graph(tmp_path / "absent.tflite")


SHIPPED = sorted((Path(__file__).resolve().parent.parent / "edgebnn" / "pretrained").glob("*.tflite"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_models_pass_validation(path):
    g = load_graph(path)
    assert g.source == str(path) and len(g.inputs) == 1 and len(g.outputs) == 1
    # every op reads constants, the input, or what an earlier op wrote
    written = set(g.inputs)
    for op in g.ops:
        assert all(t < 0 or g.tensor(t).is_constant or t in written for t in op.inputs), op
        written.update(op.outputs)


def test_negative_tensor_index_is_not_python_wraparound():
    g = load_graph(SHIPPED[0])
    with pytest.raises(TFLiteFormatError, match="tensor index -1 out of range"):
        g.tensor(-1)
    with pytest.raises(TFLiteFormatError, match=f"tensor index {len(g.tensors)} out of range"):
        g.tensor(len(g.tensors))


def test_name_is_used_for_bytes(tmp_path):
    data = SHIPPED[0].read_bytes()
    assert load_graph(data, name="zoo/download.tflite").source == "zoo/download.tflite"
    with pytest.raises(TFLiteFormatError, match="zoo/download.tflite"):
        load_graph(data[: len(data) // 2], name="zoo/download.tflite")

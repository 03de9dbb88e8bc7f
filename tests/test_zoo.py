"""The model zoo: topology rules LCE relies on, precisions, figures, reload."""

import numpy as np
import pytest

from edgebnn.errors import ModelError
from edgebnn.zoo import PRECISIONS, build_model, list_models, model_profile

pytestmark = pytest.mark.tf

MNIST = (28, 28, 1)
_CACHE = {}


def _model(name, precision, shape=MNIST):
    key = (name, precision, shape)
    if key not in _CACHE:
        _CACHE[key] = build_model(name, precision=precision, input_shape=shape, num_classes=10)
    return _CACHE[key]


def _quant_layers(model):
    import larq

    return [l for l in model.layers
            if isinstance(l, (larq.layers.QuantConv2D, larq.layers.QuantDense))]


def test_registry_has_the_required_models():
    assert {"bcnn", "lenet5", "vgg-small", "bcnn-wide"} <= set(list_models())


def test_unknown_model_lists_known_names():
    with pytest.raises(ModelError, match="bcnn.*lenet5"):
        build_model("resnet9000", precision="binary", input_shape=MNIST, num_classes=10)


def test_unknown_precision_lists_known_ones():
    with pytest.raises(ModelError, match="binary-weights"):
        build_model("bcnn", precision="quaternary", input_shape=MNIST, num_classes=10)


def test_bcnn_is_the_tutorial_size():
    p = model_profile(_model("bcnn", "binary"))
    # 3 convs (288 + 18,432 + 36,864), dense 36,864 + 640, batch norms
    assert 93_000 <= p["parameters"] <= 94_000
    assert p["binary_parameters"] == 18_432 + 36_864 + 36_864 + 640
    assert p["size_bytes"] == pytest.approx(14_624.0)


@pytest.mark.parametrize("name, shape", [("bcnn", MNIST), ("lenet5", MNIST),
                                         ("bcnn-wide", MNIST), ("vgg-small", (32, 32, 3))],
                         ids=["bcnn", "lenet5", "bcnn_wide", "vgg_small"])
def test_binary_models_follow_the_lce_rules(name, shape):
    import tf_keras

    model = _model(name, "binary", shape)
    layers = model.layers
    # raw pixels in, builtin normalization first
    assert model.input_shape == (None, *shape)
    assert isinstance(layers[1], tf_keras.layers.Rescaling)
    # first convolution is a plain (full-precision) Conv2D
    convs = [l for l in layers if "conv" in type(l).__name__.lower()]
    assert type(convs[0]) is tf_keras.layers.Conv2D
    quant = _quant_layers(model)
    assert len(quant) == len(convs) - 1 + sum("Dense" in type(l).__name__ for l in layers)
    for layer in quant:
        assert layer.input_quantizer is not None and layer.kernel_quantizer is not None
        assert not layer.use_bias, layer.name
        if getattr(layer, "padding", None) == "same":
            assert layer.pad_values == 1.0, layer.name
        if layer is not quant[-1]:
            assert layer.units % 32 == 0 if hasattr(layer, "units") else layer.filters % 32 == 0
        # batch norm right after every binary layer (maybe after a max-pool)
        idx = layers.index(layer)
        nxt = [type(l).__name__ for l in layers[idx + 1: idx + 3]]
        assert "BatchNormalization" in nxt, (layer.name, nxt)
    assert model.output_shape == (None, 10)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_precisions_of_bcnn(precision):
    import larq

    model = _model("bcnn", precision)
    quant = _quant_layers(model)
    p = model_profile(model)
    if precision == "float":
        assert quant == []
        assert p["binary_parameters"] == 0
        return
    kernel_q = {type(l.kernel_quantizer).__name__ for l in quant}
    input_q = {type(l.input_quantizer).__name__ if l.input_quantizer else None for l in quant}
    expected_kernel = {"binary": "SteSign", "binary-weights": "SteSign", "ternary": "SteTern"}
    assert kernel_q == {expected_kernel[precision]}
    assert input_q == ({"SteSign"} if precision == "binary" else {None})
    if precision == "binary":
        assert p["binary_macs"] / p["macs"] > 0.9
    else:
        assert p["binary_macs"] == 0
    assert isinstance(quant[0], larq.layers.QuantConv2D)


def test_float_twin_has_relu_where_the_bnn_has_sign():
    names = [type(l).__name__ for l in _model("bcnn", "float").layers]
    assert names.count("Activation") == 1 + 4  # softmax + one per quantized layer


def test_same_topology_across_precisions():
    counts = {p: _model("bcnn", p).count_params() for p in PRECISIONS}
    assert len(set(counts.values())) == 1, counts


def test_bop_finds_the_binary_kernels():
    import larq

    model = _model("bcnn", "binary")
    binary = [v for v in model.trainable_variables if larq.optimizers.Bop.is_binary_variable(v)]
    assert len(binary) == len(_quant_layers(model))


def test_h5_reload_gives_identical_outputs(tmp_path):
    import tf_keras

    model = _model("bcnn", "binary")
    x = np.random.default_rng(0).integers(0, 256, (8, 28, 28, 1)).astype(np.float32)
    path = tmp_path / "m.h5"
    model.save(path, include_optimizer=False, save_format="h5")
    again = tf_keras.models.load_model(path)
    np.testing.assert_array_equal(model.predict(x, verbose=0), again.predict(x, verbose=0))


def test_input_too_small_is_a_model_error():
    with pytest.raises(ModelError, match="bcnn"):
        build_model("bcnn", precision="binary", input_shape=(6, 6, 1), num_classes=10)


def test_cli_models_json():
    import json

    from click.testing import CliRunner

    from edgebnn.cli import main

    res = CliRunner().invoke(main, ["models", "bcnn", "--precision", "binary", "--json"])
    assert res.exit_code == 0, res.output
    (info,) = json.loads(res.stdout)
    assert info["name"] == "bcnn" and info["parameters"] == 93_556
    assert 0.9 < info["binary_mac_ratio"] < 1.0 and info["size_kib"] == pytest.approx(14.28, abs=0.01)
    bad = CliRunner().invoke(main, ["models", "nope"])
    assert bad.exit_code != 0 and "known models" in bad.output

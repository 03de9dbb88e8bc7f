"""larq-zoo's Lambda layers recognised without running them (edgebnn/zoo_lambdas.py), and its
.h5 function-valued initializers loaded (edgebnn/convert.py).

The small models here are built from larq-zoo's own lambda code objects
(the ones MeliusNet22 and RealToBinaryNet use), so they hold exactly the
bytecode a saved zoo model holds. The whole zoo at its real sizes, through
the CLI, is tools/zoo_saved.py.
"""

import importlib.util
import marshal
import types

import numpy as np
import pytest

import edgebnn  # noqa: F401 -- sets TF_USE_LEGACY_KERAS before tf_keras is imported
from edgebnn.zoo_lambdas import MarshalFormatError, read_marshal, same_code

needs_zoo = pytest.mark.skipif(importlib.util.find_spec("larq_zoo") is None,
                               reason="larq-zoo is not installed (pip install --no-deps larq-zoo==2.4.0 "
                                      "zookeeper typeguard)")


# ------------------------------------------------------------ the marshal reader (no TensorFlow)


@pytest.mark.parametrize("value, expected", [
    (None, ("none", None)), (True, ("bool", True)), (1, ("int", 1)), (-7, ("int", -7)),
    (2 ** 70, ("int", 2 ** 70)), (-(2 ** 40), ("int", -(2 ** 40))), (0.25, ("float", 0.25)),
    (b"\x00ab", ("bytes", b"\x00ab")), ("x", ("str", "x")), ("é" * 300, ("str", "é" * 300)),
    ((1, ("a", None)), ("tuple", (("int", 1), ("tuple", (("str", "a"), ("none", None)))))),
], ids=["none", "true", "one", "neg", "long", "neglong", "float", "bytes", "short_str", "long_unicode", "tuple"])
def test_read_marshal_values(value, expected):
    assert read_marshal(marshal.dumps(value)) == expected


def test_read_marshal_keeps_true_and_one_apart():
    assert read_marshal(marshal.dumps((True,))) != read_marshal(marshal.dumps((1,)))


@pytest.mark.parametrize("data, message", [
    (marshal.dumps("hello")[:-1], "truncated"),
    (marshal.dumps(1) + b"N", "bytes left after the object"),
    (marshal.dumps([1, 2]), "type code '\\['"),
    (marshal.dumps({1: 2}), "type code '{'"),
    (b"r\x05\x00\x00\x00", "reference 5"),
    (b"s\xff\xff\xff\x7f", "exceeds"),
    (b")\x01" * 40 + b"N", "nested deeper"),
], ids=["truncated", "trailing", "list", "dict", "bad_ref", "huge_length", "deep"])
def test_read_marshal_refuses_what_it_does_not_read(data, message):
    with pytest.raises(MarshalFormatError, match=message):
        read_marshal(data)


def _code(src):
    return compile(src, "/somewhere/larq_zoo/core/utils.py", "eval").co_consts[0]


def test_same_code_ignores_the_install_path_only():
    import base64

    code = _code("lambda x_: tf_op(x_, *args, **kwargs)")
    moved = code.replace(co_filename="/elsewhere/site-packages/larq_zoo/core/utils.py")
    assert same_code(base64.b64encode(marshal.dumps(moved)).decode(), code) == (True, "")
    other = _code("lambda x_: tf_op(x_, *args, **kwargs) + 1")
    ok, why = same_code(base64.b64encode(marshal.dumps(other)).decode(), code)
    assert not ok and "bytecode differs" in why


# ------------------------------------------------------------ models with larq-zoo's lambdas


def _zoo_lambda(qualname, closure=()):
    """larq-zoo's own lambda ``qualname`` as a function, with ``closure`` values."""
    import importlib as il

    from edgebnn.zoo_lambdas import _ZOO_LAMBDAS

    z = _ZOO_LAMBDAS[qualname]
    return types.FunctionType(z.code(), vars(il.import_module(z.module)), "<lambda>", None,
                              tuple(types.CellType(v) for v in closure) or None)


def _lambda_model(tf, k):
    """conv -> MeliusNet's merge -> TFOpLayer split -> 2 convs -> TFOpLayer concat -> identity."""
    from larq_zoo.core import utils as zoo_utils

    x = k.Input((6, 6, 72))
    w = k.layers.Conv2D(64, 3, padding="same", name="w")(x)
    merge = _zoo_lambda("MeliusNetFactory.improvement_block.<locals>.<lambda>", (72,))
    y = k.layers.Lambda(merge, name="merge")([x, w])
    parts = zoo_utils.TFOpLayer(tf.split, 2, axis=-1, name="split")(y)
    parts = [k.layers.Conv2D(8, 1, name=f"c{i}")(p) for i, p in enumerate(parts)]
    z = zoo_utils.TFOpLayer(tf.concat, axis=-1, name="concat")(parts)
    ident = _zoo_lambda("StrongBaselineNetFactory.block.<locals>.<lambda>")
    out = k.layers.Lambda(ident, name="block_out")(z)
    return k.Model(x, out)


@pytest.fixture(scope="module")
def zoo_files(tmp_path_factory):
    from edgebnn._tf import import_tf
    from edgebnn.zoo_models import import_larq_zoo

    tf, k, _ = import_tf()
    import_larq_zoo()
    k.utils.set_random_seed(0)
    model = _lambda_model(tf, k)
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 72)).astype(np.float32)
    d = tmp_path_factory.mktemp("zoo_lambdas")
    files = {}
    for fmt in ("h5", "keras"):
        files[fmt] = d / f"m.{fmt}"
        model.save(files[fmt])
    return files, x, model(x).numpy()


@pytest.mark.tf
@needs_zoo
@pytest.mark.parametrize("fmt", ["h5", "keras"])
def test_zoo_lambdas_load_as_builtins_and_compute_the_same(zoo_files, fmt):
    from edgebnn.convert import load_keras_model

    files, x, want = zoo_files
    model = load_keras_model(files[fmt])
    kinds = {layer.name: type(layer).__name__ for layer in model.layers}
    assert kinds["merge_pad"] == "TFOpLambda" and kinds["merge"] == "TFOpLambda"
    assert kinds["split"] == "TFOpLambda" and kinds["concat"] == "Concatenate"
    assert kinds["block_out"] == "Activation" and "Lambda" not in kinds.values()
    # the same TensorFlow ops on the same weights in the same process
    np.testing.assert_array_equal(model(x).numpy(), want)


def _edit_layer(path, fmt, name, edit):
    """Rewrite layer ``name``'s config in a saved model file with ``edit(layer_dict)``."""
    import json
    import zipfile

    import h5py

    if fmt == "h5":
        with h5py.File(path, "r+") as fh:
            cfg = json.loads(fh.attrs["model_config"])
            edit(next(lay for lay in cfg["config"]["layers"] if lay["config"]["name"] == name))
            fh.attrs["model_config"] = json.dumps(cfg)
        return
    with zipfile.ZipFile(path) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    cfg = json.loads(members["config.json"])
    edit(next(lay for lay in cfg["config"]["layers"] if lay["config"]["name"] == name))
    members["config.json"] = json.dumps(cfg).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for n, data in members.items():
            zf.writestr(n, data)


@pytest.mark.tf
@needs_zoo
@pytest.mark.parametrize("fmt", ["h5", "keras"])
def test_lambda_with_other_code_in_a_zoo_module_is_refused(zoo_files, tmp_path, fmt):
    """A Lambda claiming larq-zoo's module but holding other bytecode (here: it writes a file)."""
    import base64
    import shutil

    from edgebnn.convert import load_keras_model
    from edgebnn.errors import UnsafeModelError

    files, _, _ = zoo_files
    path = tmp_path / files[fmt].name
    shutil.copy(files[fmt], path)
    marker = tmp_path / "ran"
    evil = compile(f"lambda x: (open({str(marker)!r}, 'w'), x)[1]", "utils.py", "eval").co_consts[0]

    def edit(layer):
        layer["config"]["function"] = [base64.b64encode(marshal.dumps(evil)).decode(), None, None]

    _edit_layer(path, fmt, "block_out", edit)
    with pytest.raises(UnsafeModelError) as err:
        load_keras_model(path)
    msg = str(err.value)
    assert "Lambda layer 'block_out'" in msg and "--trust-model-code" in msg and str(path) in msg, msg
    assert "looks like larq-zoo's but was not replaced" in msg and "bytecode differs" in msg, msg
    assert not marker.exists()


@pytest.mark.tf
@needs_zoo
@pytest.mark.parametrize("fmt", ["h5", "keras"])
def test_zoo_code_with_another_wrapped_function_is_refused(zoo_files, tmp_path, fmt):
    """larq-zoo's TFOpLayer lambda, but wrapping a function other than split/concat."""
    import shutil

    from edgebnn.convert import load_keras_model
    from edgebnn.errors import UnsafeModelError

    files, _, _ = zoo_files
    path = tmp_path / files[fmt].name
    shutil.copy(files[fmt], path)

    def edit(layer):
        op = layer["config"]["function"][2][2]
        if isinstance(op, dict):
            op["config"] = "py_function"
        else:
            layer["config"]["function"][2][2] = "py_function"

    _edit_layer(path, fmt, "split", edit)
    with pytest.raises(UnsafeModelError) as err:
        load_keras_model(path)
    msg = str(err.value)
    assert "Lambda layer 'split'" in msg and "--trust-model-code" in msg, msg
    assert "wraps TensorFlow function 'py_function'; only split and concat are replaced" in msg, msg


@pytest.mark.tf
@needs_zoo
def test_cli_refuses_a_users_lambda_and_names_the_flag(tmp_path):
    from click.testing import CliRunner

    from edgebnn._tf import import_tf
    from edgebnn.cli import main as cli

    _, k, _ = import_tf()
    x = k.Input((4,))
    k.Model(x, k.layers.Lambda(lambda t: t * 2.0, name="double")(x)).save(tmp_path / "m.keras")
    res = CliRunner().invoke(cli, ["convert", str(tmp_path / "m.keras"), "-o", str(tmp_path / "m.tflite")])
    assert res.exit_code == 1
    assert "Lambda layer 'double'" in res.output and "--trust-model-code" in res.output, res.output
    assert not (tmp_path / "m.tflite").exists()


# ------------------------------------------------------------ larq-zoo's function-valued objects


@pytest.fixture(scope="module")
def zoo_functions_model(tmp_path_factory):
    """QuickNet's blurpool depthwise layer (a function initializer), XNORNet's kernel
    quantizer and DoReFaNet's activation (functions), in a small model, saved both ways."""
    from larq_zoo.literature.dorefanet import clip_by_value_activation
    from larq_zoo.literature.xnornet import xnor_weight_scale
    from larq_zoo.sota.quicknet import blurpool_initializer

    from edgebnn._tf import import_tf
    from edgebnn.convert import convert
    from edgebnn.zoo_models import import_larq_zoo, randomize_batch_norms

    import_larq_zoo()
    _, k, lq = import_tf()
    k.utils.set_random_seed(0)
    x = k.Input((16, 16, 3))
    y = k.layers.Conv2D(16, 3, padding="same", use_bias=False, name="stem")(x)
    y = k.layers.BatchNormalization(name="bn0")(y)
    y = k.layers.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False, trainable=False,
                                 depthwise_initializer=blurpool_initializer, name="blurpool")(y)
    y = lq.layers.QuantConv2D(32, 3, padding="same", use_bias=False, input_quantizer="ste_sign",
                              kernel_quantizer=xnor_weight_scale, kernel_constraint="weight_clip", name="xnor")(y)
    y = k.layers.BatchNormalization(name="bn1")(y)
    y = k.layers.Activation(clip_by_value_activation, name="clip")(y)
    y = k.layers.GlobalAveragePooling2D()(y)
    model = k.Model(x, k.layers.Dense(10, name="fc")(y))
    randomize_batch_norms(model, np.random.default_rng(0).uniform(-1, 1, (4, 16, 16, 3)), seed=0)
    d = tmp_path_factory.mktemp("zoo_functions")
    for fmt in ("h5", "keras"):
        model.save(d / f"m.{fmt}")
    return d, convert(model, target="x86_64")


@pytest.mark.tf
@needs_zoo
@pytest.mark.parametrize("fmt", ["h5", "keras"])
def test_zoo_function_objects_convert_to_the_in_memory_flatbuffer(zoo_functions_model, tmp_path, fmt):
    """tf-keras 2.16 wrote these functions into the .h5 in a form its own h5 reader refused."""
    import json
    import zipfile

    import h5py
    from click.testing import CliRunner

    from edgebnn.cli import main as cli

    d, reference = zoo_functions_model
    path = d / f"m.{fmt}"
    if fmt == "h5":
        with h5py.File(path, "r") as fh:
            text = fh.attrs["model_config"]
    else:
        text = zipfile.ZipFile(path).read("config.json").decode()
    stored = json.dumps(json.loads(text))
    for name in ("blurpool_initializer", "xnor_weight_scale", "clip_by_value_activation"):  # the case under test
        assert f'"class_name": "function", "config": "{name}"' in stored, name
    out = tmp_path / "m.tflite"
    res = CliRunner().invoke(cli, ["convert", str(path), "-o", str(out), "--lce-target", "x86_64"])
    assert res.exit_code == 0, res.output
    got = out.read_bytes()
    if got != reference:
        # The bytes carry names the converter numbers per process (which
        # other tests ran first in this worker), and its constant folding may
        # round BN folds differently (seen: 3e-7 apart under xdist): then the
        # graph must be the same and LCE's outputs the same within float
        # rounding, with the same top-1.
        from larq_compute_engine.tflite.python.interpreter import Interpreter

        from edgebnn.graph import load_graph

        assert [op.type for op in load_graph(got).ops] == [op.type for op in load_graph(reference).ops]
        x = np.random.default_rng(0).uniform(-1, 1, (4, 16, 16, 3)).astype(np.float32)
        a = Interpreter(got, num_threads=1).predict(x)
        b = Interpreter(reference, num_threads=1).predict(x)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
        assert np.array_equal(a.argmax(-1), b.argmax(-1))


@pytest.mark.tf
@needs_zoo
def test_unknown_function_in_h5_names_it(zoo_functions_model, tmp_path):
    import shutil

    from edgebnn.convert import load_keras_model
    from edgebnn.errors import ModelError

    d, _ = zoo_functions_model
    path = tmp_path / "m.h5"
    shutil.copy(d / "m.h5", path)

    def edit(layer):
        layer["config"]["depthwise_initializer"]["config"] = "no_such_initializer"

    _edit_layer(path, "h5", "blurpool", edit)
    with pytest.raises(ModelError, match="function 'no_such_initializer' \\(module 'builtins'\\), which is "
                                         "neither a Keras built-in nor one of the custom objects"):
        load_keras_model(path)

"""Hostile Keras files: refused before they run code, loaded only when trusted.

Each hostile model runs ``open(marker, "w")`` when Keras rebuilds it: a
``Lambda`` layer's stored bytecode, a globally registered custom class, or a
SavedModel resource whose TensorFlow initializer writes a file. A refused
load must leave no marker; a trusted one creates it (so the tests can fail).
"""

import sys

import pytest
from click.testing import CliRunner

import edgebnn  # noqa: F401 -- sets TF_USE_LEGACY_KERAS before tf_keras is imported
from edgebnn.cli import main as cli
from edgebnn.errors import ModelError, UnsafeModelError
from edgebnn.modelcheck import Allowed, scan_config

# ------------------------------------------------------------ the config walker (no TensorFlow)

ALLOWED = Allowed(names=frozenset({"Functional", "Sequential", "Dense", "Bidirectional", "LSTM",
                                   "InputLayer", "GlorotUniform", "relu", "QuantConv2D", "SteSign"}))


def _layer(cls, name, **config):
    return {"class_name": cls, "config": {"name": name, **config}}


def _model(*layers, name="outer", cls="Functional"):
    return {"class_name": cls, "config": {"name": name, "layers": list(layers)}}


def _where(config):
    return [str(f) for f in scan_config(config, ALLOWED)]


def test_walker_accepts_builtins_and_data_markers():
    cfg = _model(
        _layer("InputLayer", "x", batch_input_shape={"class_name": "__tuple__", "items": [None, 4]}),
        _layer("Dense", "d", activation="relu",
               kernel_initializer={"module": "keras.initializers", "class_name": "GlorotUniform",
                                   "config": {"seed": None}, "registered_name": None}),
        {"module": "larq.layers", "class_name": "QuantConv2D", "registered_name": "QuantConv2D",
         "config": {"name": "q", "input_quantizer": {"class_name": "SteSign", "config": {}}}},
    )
    assert _where(cfg) == []


def test_walker_finds_lambda_inside_nested_model_and_wrapper():
    inner = _model(_layer("Bidirectional", "bi", layer=_layer("Lambda", "evil", function="AAAA")),
                   name="inner", cls="Sequential")
    found = _where(_model(_layer("Dense", "d"), inner))
    assert found == ["Lambda layer 'evil' in wrapper 'bi' (Bidirectional) in model 'inner' (Sequential) "
                     "in model 'outer' (Functional): a Lambda layer runs the Python function stored in the file"]


@pytest.mark.parametrize(
    "obj, expected",
    [
        ({"class_name": "__lambda__", "config": {"value": "x"}}, "a serialized lambda"),
        ({"class_name": "function", "module": "os", "config": "system", "registered_name": "system"},
         "function 'system' (module 'os')"),
        (_layer("EvilLayer", "e"), "layer 'e' (EvilLayer) in model 'outer' (Functional): its class is not a Keras"),
        ({"module": "evil.pkg", "class_name": "Dense", "config": {"name": "d"}}, "module 'evil.pkg'"),
        ({"module": "keras.layers", "class_name": "Dense", "registered_name": "evil>Dense",
          "config": {"name": "d"}}, "registered name 'evil>Dense'"),
        (_layer("TFSMLayer", "sm", filepath="/elsewhere"), "TFSMLayer layer 'sm'"),
        ({"name": "x", "function_type": "lambda"}, "field 'function_type'"),
        # base64 of a marshalled code object, as Keras's func_dump writes it
        ({"name": "x", "payload": "4wEAAAAAAAAAAAAAAAIAAAADAAAA8wwAAACXAHwAZAF6BQAAUwAp"}, "Python bytecode"),
    ],
    ids=["lambda_marker", "os_function", "unknown_class", "foreign_module", "foreign_registered_name",
         "tfsmlayer", "function_type", "bytecode_string"],
)
def test_walker_refuses(obj, expected):
    found = _where(_model(_layer("Dense", "d", extra=obj)))
    assert len(found) == 1 and expected in found[0], found


# ------------------------------------------------------------ real hostile files (TensorFlow)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """Hostile model files and the marker each one creates when it is rebuilt."""
    from edgebnn._tf import import_tf

    tf, K, _ = import_tf()
    root = tmp_path_factory.mktemp("hostile")
    files = {}

    def evil_lambda(marker, name="evil"):
        return K.layers.Lambda(lambda t, p=str(marker): (open(p, "w").close(), t)[1], name=name)

    def save(model, name, **kwargs):
        marker = root / f"{name}.ran"
        path = root / name
        model.save(str(path), **kwargs)
        marker.unlink(missing_ok=True)  # building the model ran the function once
        files[name] = (path, marker)

    # .h5 with a Lambda layer in a Functional model
    inp = K.Input((4,))
    save(K.Model(inp, evil_lambda(root / "flat.h5.ran")(K.layers.Dense(3)(inp))), "flat.h5", save_format="h5")
    # .h5, .keras and SavedModel with the Lambda in a nested Sequential
    for name, kwargs in (("nested.h5", {"save_format": "h5"}), ("nested.keras", {}),
                         ("nested_savedmodel", {"save_format": "tf"})):
        inner = K.Sequential([K.Input((4,)), evil_lambda(root / f"{name}.ran", name="evil_inner")], name="inner")
        inp = K.Input((4,))
        save(K.Model(inp, inner(inp)), name, **kwargs)

    # a custom class that some imported library registered globally
    custom_marker = root / "custom.h5.ran"

    @K.utils.register_keras_serializable(package="thirdparty")
    class Sneaky(K.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            open(custom_marker, "w").close()

    inp = K.Input((4,))
    save(K.Model(inp, Sneaky(name="sneaky")(inp)), "custom.h5", save_format="h5")

    # a SavedModel of Keras built-ins only, whose stored resource writes a file when TF loads it
    resource_marker = root / "resource_savedmodel.ran"

    class FileWriter(tf.saved_model.experimental.TrackableResource):
        def _create_resource(self):
            return tf.raw_ops.VarHandleOp(dtype=tf.float32, shape=[], shared_name="")

        def _initialize(self):
            tf.io.write_file(str(resource_marker), "written while loading")

    inp = K.Input((4,))
    clean = K.Model(inp, K.layers.Dense(2, name="dense_only")(inp))
    clean.writer = FileWriter()
    save(clean, "resource_savedmodel", save_format="tf")
    return files, Sneaky


REFUSED = {
    "flat.h5": "Lambda layer 'evil'",
    "nested.h5": "Lambda layer 'evil_inner' in model 'inner'",
    "nested.keras": "Lambda layer 'evil_inner' in model 'inner'",
    "nested_savedmodel": "Lambda layer 'evil_inner'",
    "custom.h5": "layer 'sneaky' (thirdparty>Sneaky)",
    "resource_savedmodel": "TensorFlow SavedModel folder",
}


@pytest.mark.tf
@pytest.mark.slow
def test_hostile_files_refused_then_trusted(hostile):
    from edgebnn.convert import load_keras_model

    files, _ = hostile
    for name, expected in REFUSED.items():
        path, marker = files[name]
        with pytest.raises(UnsafeModelError) as err:
            load_keras_model(path)
        msg = str(err.value)
        assert expected in msg and str(path) in msg and "--trust-model-code" in msg, msg
        assert not marker.exists(), f"{name} ran code although it was refused"
    for name in REFUSED:
        path, marker = files[name]
        load_keras_model(path, trust_model_code=True)
        assert marker.exists(), f"{name}: the trusted load did not rebuild the hostile part"


@pytest.mark.tf
@pytest.mark.slow
def test_cli_convert_and_verify_refuse_and_trust(hostile, tmp_path, shared_data, repo_root):
    files, _ = hostile
    runner = CliRunner()
    path, marker = files["nested.h5"]
    marker.unlink(missing_ok=True)
    res = runner.invoke(cli, ["convert", str(path), "-o", str(tmp_path / "m.tflite")])
    assert res.exit_code == 1
    assert "Lambda layer 'evil_inner'" in res.output and str(path) in res.output
    assert "--trust-model-code" in res.output
    assert not marker.exists() and not (tmp_path / "m.tflite").exists()

    shipped = repo_root / "edgebnn" / "pretrained" / "mnist-bcnn-binary.tflite"
    res = runner.invoke(cli, ["verify", str(path), "--dataset", "mnist", "--data-dir", str(shared_data),
                              "--tflite", str(shipped), "--limit", "10"])
    assert res.exit_code == 1 and "Lambda layer 'evil_inner'" in res.output and "--trust-model-code" in res.output
    assert not marker.exists()

    res = runner.invoke(cli, ["convert", str(path), "-o", str(tmp_path / "m.tflite"), "--trust-model-code"])
    assert marker.exists(), res.output


@pytest.mark.tf
@pytest.mark.slow
def test_benign_models_load_without_flag(hostile, tmp_path, repo_root):
    from edgebnn.convert import load_keras_model
    from edgebnn.zoo import build_model

    model = load_keras_model(repo_root / "edgebnn" / "pretrained" / "mnist-bcnn-binary.h5")
    assert model.name == "bcnn_binary"
    zoo = build_model("bcnn", precision="binary", input_shape=(28, 28, 1), num_classes=10)
    zoo.save(tmp_path / "bcnn.keras")
    assert load_keras_model(tmp_path / "bcnn.keras").count_params() == zoo.count_params()

    # a class the caller registers explicitly is allowed
    files, sneaky = hostile
    path, marker = files["custom.h5"]
    marker.unlink(missing_ok=True)
    load_keras_model(path, custom_objects={"thirdparty>Sneaky": sneaky})
    assert marker.exists()


@pytest.mark.tf
def test_unusable_h5_files(tmp_path):
    import h5py

    from edgebnn.convert import load_keras_model

    weights = tmp_path / "weights.h5"
    with h5py.File(weights, "w") as fh:
        fh.attrs["layer_names"] = [b"dense"]
    with pytest.raises(ModelError, match="holds only weights"):
        load_keras_model(weights)
    empty = tmp_path / "empty.h5"
    with h5py.File(empty, "w"):
        pass
    with pytest.raises(ModelError, match="without a Keras model configuration"):
        load_keras_model(empty)
    broken = tmp_path / "broken.h5"
    with h5py.File(broken, "w") as fh:
        fh.attrs["model_config"] = "{not json"
    with pytest.raises(ModelError, match="not valid JSON"):
        load_keras_model(broken)


@pytest.mark.tf
@pytest.mark.slow
def test_custom_objects_module(tmp_path, monkeypatch):
    """--custom-objects MODULE: a user's own layer loads only when its module is named."""
    from edgebnn._tf import import_tf
    from edgebnn.convert import custom_objects_from, load_keras_model

    (tmp_path / "my_layers.py").write_text(
        "import edgebnn\n"
        "import tf_keras\n"
        "class Scale(tf_keras.layers.Layer):\n"
        "    def call(self, x):\n"
        "        return 2.0 * x\n"
        "CUSTOM_OBJECTS = {'Scale': Scale}\n"
    )
    (tmp_path / "empty_mod.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    objs = custom_objects_from("my_layers")
    _, keras, _ = import_tf()
    model = keras.Sequential([keras.layers.Input((3,)), objs["Scale"](name="scale")])
    model.save(tmp_path / "m.h5")
    monkeypatch.delitem(sys.modules, "my_layers")

    with pytest.raises(UnsafeModelError, match="Scale"):
        load_keras_model(tmp_path / "m.h5")
    loaded = load_keras_model(tmp_path / "m.h5", custom_objects=custom_objects_from("my_layers"))
    assert loaded.layers[-1].name == "scale"

    with pytest.raises(ModelError, match="cannot import module 'no_such_mod'"):
        custom_objects_from("no_such_mod")
    with pytest.raises(ModelError, match="no CUSTOM_OBJECTS"):
        custom_objects_from("empty_mod")

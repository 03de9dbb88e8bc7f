"""Shipping runs as pretrained models (tools/ship_pretrained.py) and `edgebnn pretrained`.

The tool is tested on a run directory written here, into a temporary --dest:
the real edgebnn/pretrained/index.json is never touched by these tests.
"""

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import edgebnn.pretrained as pretrained_mod
from edgebnn.cli import main as cli

REPO = Path(__file__).resolve().parent.parent
FIELDS = {"name", "dataset", "model", "precision", "io", "test_accuracy", "keras_path", "tflite_path"}
BIN = dict(input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_constraint="weight_clip")


def _tool():
    spec = importlib.util.spec_from_file_location("ship_pretrained", REPO / "tools" / "ship_pretrained.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _write_run(run: Path, shared_data) -> float:
    """A finished run written by hand: config.yml, model.h5, metrics.json.

    The model is a small BNN with seeded random weights (training here would
    not fit the test budget); its metrics.json holds its real test accuracy.
    """
    from edgebnn._tf import import_tf
    from edgebnn.datasets import load_dataset

    tf, K, lq = import_tf()
    K.backend.clear_session()
    tf.random.set_seed(20)
    model = K.Sequential(
        [
            lq.layers.QuantConv2D(32, 3, strides=2, kernel_quantizer="ste_sign", use_bias=False,
                                  input_shape=(28, 28, 1)),
            K.layers.BatchNormalization(),
            lq.layers.QuantConv2D(32, 3, strides=2, use_bias=False, **BIN),
            K.layers.BatchNormalization(),
            K.layers.Flatten(),
            lq.layers.QuantDense(32, use_bias=False, **BIN),
            K.layers.BatchNormalization(),
            lq.layers.QuantDense(10, use_bias=False, **BIN),
            K.layers.Softmax(),
        ]
    )
    rng = np.random.default_rng(20)
    for layer in model.layers:
        if isinstance(layer, K.layers.BatchNormalization):
            g, b, m, v = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 2, g.shape), rng.normal(0, 1, b.shape),
                               rng.normal(0, 3, m.shape), rng.uniform(1, 9, v.shape)])
    run.mkdir(parents=True)
    model.save(run / "model.h5", save_format="h5")
    ds = load_dataset("mnist", data_dir=shared_data, download=False)
    acc = float((model.predict(ds.x_test.astype("float32"), batch_size=500, verbose=0).argmax(1) == ds.y_test).mean())
    (run / "config.yml").write_text(yaml.safe_dump(
        {"dataset": "mnist", "model": "tiny", "precision": "binary", "epochs": 1, "seed": 20}))
    (run / "metrics.json").write_text(json.dumps({"test_accuracy": acc, "epochs": 1}))
    return acc


@pytest.fixture(scope="module")
def shipped(tmp_path_factory, shared_data):
    """Run the tool once on a hand-written run dir; return (run, dest, accuracy)."""
    base = tmp_path_factory.mktemp("ship")
    run, dest = base / "run", base / "dest"
    acc = _write_run(run, shared_data)
    dest.mkdir()
    (dest / "index.json").write_text(json.dumps([{"name": "aaa-older-float", "dataset": "mnist", "model": "x",
                                                  "precision": "float", "test_accuracy": 0.5,
                                                  "keras": "a.h5", "tflite": "a.tflite"}]))
    code = _tool().main([str(run), "--dest", str(dest), "--data-dir", str(shared_data)])
    assert code == 0
    return run, dest, acc


@pytest.mark.tf
@pytest.mark.slow
def test_ship_tool_writes_models_and_index(shipped):
    from edgebnn.graph import load_graph

    run, dest, acc = shipped
    name = "mnist-tiny-binary"
    assert (dest / f"{name}.h5").read_bytes() == (run / "model.h5").read_bytes()
    tfl = (dest / f"{name}.tflite").read_bytes()
    graph = load_graph(tfl)
    assert graph.is_lce() and "FULLY_CONNECTED" not in graph.op_types()  # dense layers rewritten
    index = json.loads((dest / "index.json").read_text())
    assert [e["name"] for e in index] == ["aaa-older-float", name]  # kept, merged, sorted
    entry = index[1]
    assert (entry["dataset"], entry["model"], entry["precision"]) == ("mnist", "tiny", "binary")
    assert entry["test_accuracy"] == acc
    assert entry["keras"] == f"{name}.h5" and entry["tflite"] == f"{name}.tflite"
    assert entry["tflite_sha256"] == hashlib.sha256(tfl).hexdigest() and entry["tflite_size"] == len(tfl)
    assert entry["rewritten_dense"] == ["quant_dense", "quant_dense_1"]
    v = entry["verify"]
    assert v["n"] == 10_000 and v["passed"] and v["agreement"] >= 0.999
    assert v["keras_accuracy"] == pytest.approx(acc)  # same model, same full test set
    assert entry["config"]["seed"] == 20


@pytest.mark.tf
@pytest.mark.slow
def test_pretrained_cli_and_name_resolution(shipped, monkeypatch, shared_data):
    _, dest, acc = shipped
    monkeypatch.setattr(pretrained_mod, "HERE", dest)
    monkeypatch.setattr(pretrained_mod, "INDEX", dest / "index.json")
    runner = CliRunner()
    res = runner.invoke(cli, ["pretrained", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [r["name"] for r in rows] == ["aaa-older-float", "mnist-tiny-binary"]
    assert all(set(r) == FIELDS for r in rows)
    mine = rows[1]
    assert mine["test_accuracy"] == acc and Path(mine["tflite_path"]).is_file()
    assert Path(mine["keras_path"]) == dest / "mnist-tiny-binary.h5"

    res = runner.invoke(cli, ["pretrained"])
    assert res.exit_code == 0 and "mnist-tiny-binary" in res.stdout and f"{100 * acc:.2f}%" in res.stdout
    assert "missing" in res.stdout  # the older entry's files do not exist

    # A shipped name works wherever a RUN_DIR does.
    res = runner.invoke(cli, ["verify", "mnist-tiny-binary", "--data-dir", str(shared_data), "--limit", "300",
                              "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["n"] == 300 and out["agreement"] == 1.0 and out["dataset"] == "mnist"


def test_pretrained_cli_real_index():
    res = CliRunner().invoke(cli, ["pretrained", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert isinstance(rows, list)
    for r in rows:  # every shipped model's files are in the package
        assert set(r) == FIELDS
        assert Path(r["keras_path"]).is_file() and Path(r["tflite_path"]).is_file(), r["name"]
        assert 0.0 < r["test_accuracy"] <= 1.0
        assert r["io"] == ("int8" if r["name"].endswith("-int8") else "float")


def test_shipped_int8_forms_are_full_integer_and_recorded():
    """Every -int8 form is the recorded file, int8 in and out, no float op,
    and passed its verification on the full test set."""
    from edgebnn.graph import load_graph

    index = json.loads((REPO / "edgebnn" / "pretrained" / "index.json").read_text())
    forms = [e for e in index if e.get("int8")]
    assert forms, "no full-integer form is shipped"
    for e in forms:
        q = e["int8"]
        data = (REPO / "edgebnn" / "pretrained" / q["tflite"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == q["tflite_sha256"] and len(data) == q["tflite_size"]
        g = load_graph(data)
        assert g.tensor(g.inputs[0]).dtype == "int8" and g.tensor(g.outputs[0]).dtype == "int8"
        assert not {"DEQUANTIZE", "QUANTIZE"} & set(g.op_types()), g.op_types()
        v = q["verify"]
        assert v["passed"] and v["n"] == 10_000 and v["tflite_accuracy"] == q["test_accuracy"]
        assert v["min_agreement"] == _tool().INT8_MIN_AGREEMENT


def test_ship_tool_errors(tmp_path, capsys):
    tool = _tool()
    assert tool.main([str(tmp_path / "nope"), "--dest", str(tmp_path / "d")]) == 1
    assert "not a run directory" in capsys.readouterr().err

    run = tmp_path / "unfinished"
    run.mkdir()
    (run / "config.yml").write_text("dataset: mnist\nmodel: bcnn\nprecision: binary\n")
    (run / "model.h5").write_bytes(b"")
    assert tool.main([str(run), "--dest", str(tmp_path / "d")]) == 1
    assert "not a finished run" in capsys.readouterr().err and not (tmp_path / "d").exists()

    assert tool.pretrained_name({"dataset": "fashion_mnist", "model": "bcnn", "precision": "float"}) == \
        "fashion-mnist-bcnn-float"
    with pytest.raises(Exception, match="precision"):
        tool.pretrained_name({"dataset": "mnist", "model": "bcnn"})


def test_update_index_replaces_same_name(tmp_path):
    tool = _tool()
    tool.update_index(tmp_path, [{"name": "b", "v": 1}, {"name": "a", "v": 1}])
    tool.update_index(tmp_path, [{"name": "b", "v": 2}])
    assert json.loads((tmp_path / "index.json").read_text()) == [{"name": "a", "v": 1}, {"name": "b", "v": 2}]


@pytest.mark.tf
@pytest.mark.slow
def test_ship_tool_adds_an_int8_form(shipped, tmp_path, monkeypatch, shared_data):
    """`--int8 NAME` converts the shipped Keras model full-integer, verifies it
    and records it; the name NAME-int8 then resolves to the int8 file. (The
    random-weight model here is not accurate: the thresholds are relaxed, the
    figures recorded are the measured ones.)"""
    import shutil

    from edgebnn.graph import load_graph
    from edgebnn.modelref import ModelRef

    _, src, _ = shipped
    dest = tmp_path / "dest"
    shutil.copytree(src, dest)
    tool = _tool()
    monkeypatch.setattr(tool, "INT8_MIN_AGREEMENT", 0.0)
    monkeypatch.setattr(tool, "INT8_MAX_ACC_DIFF_PP", 100.0)
    assert tool.main(["--int8", "mnist-tiny-binary", "--dest", str(dest), "--data-dir", str(shared_data)]) == 0
    entry = {e["name"]: e for e in json.loads((dest / "index.json").read_text())}["mnist-tiny-binary"]
    q = entry["int8"]
    data = (dest / q["tflite"]).read_bytes()
    assert q["tflite"] == "mnist-tiny-binary-int8.tflite" and q["tflite_sha256"] == hashlib.sha256(data).hexdigest()
    g = load_graph(data)
    assert g.tensor(g.inputs[0]).dtype == "int8" and "LceBconv2d" in g.op_types()
    assert q["verify"]["n"] == 10_000 and q["test_accuracy"] == q["verify"]["tflite_accuracy"]
    monkeypatch.setattr(pretrained_mod, "HERE", dest)
    monkeypatch.setattr(pretrained_mod, "INDEX", dest / "index.json")
    ref = ModelRef.resolve("mnist-tiny-binary-int8")
    assert ref.kind == "pretrained" and ref.pretrained.io == "int8"
    assert Path(ref.require_tflite("a test")) == dest / q["tflite"]
    assert tool.main(["--int8", "no-such-model", "--dest", str(dest)]) == 1

"""ModelRef: one resolution of a MODEL argument, one set of messages, one config reader."""

from pathlib import Path

import pytest
from click.testing import CliRunner

import edgebnn.pretrained as pretrained
from edgebnn.bench.tiny import relu_model
from edgebnn.cli import main as cli
from edgebnn.config import read_run_config, read_yaml
from edgebnn.errors import ConfigError, ModelError
from edgebnn.modelref import ModelRef, dataset_from_name


def _run_dir(root: Path, *, config="dataset: mnist\nmodel: bcnn\n", keras=True, tflite=True) -> Path:
    run = root / "run"
    run.mkdir()
    (run / "config.yml").write_text(config)
    if keras:
        (run / "model.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    if tflite:
        (run / "model.tflite").write_bytes(relu_model((1, 4)))
    return run


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """One shipped model whose .tflite exists and whose Keras file does not."""
    tfl = tmp_path / "ship.tflite"
    tfl.write_bytes(relu_model((1, 4)))
    entry = pretrained.Pretrained(name="mnist-bcnn-binary", dataset="mnist", model="bcnn",
                                  precision="binary", test_accuracy=0.98,
                                  keras_path=str(tmp_path / "gone.h5"), tflite_path=str(tfl),
                                  config={"dataset": "mnist", "model": "bcnn"})
    monkeypatch.setattr(pretrained, "list_pretrained", lambda: [entry])
    return entry


# ------------------------------------------------------------------ kinds

def test_run_directory(tmp_path):
    run = _run_dir(tmp_path)
    ref = ModelRef.resolve(run)
    assert (ref.kind, ref.run_dir) == ("run_dir", str(run))
    assert ref.keras_path == str(run / "model.h5") and ref.tflite_path == str(run / "model.tflite")
    assert ref.config == {"dataset": "mnist", "model": "bcnn"} and ref.dataset == "mnist"
    assert ref.require_keras("convert") == str(run / "model.h5")
    assert ref.require_tflite("export") == str(run / "model.tflite")


def test_model_files_and_saved_model_folder(tmp_path):
    h5 = tmp_path / "m.keras"
    h5.write_bytes(b"PK")
    ref = ModelRef.resolve(str(h5))
    assert (ref.kind, ref.keras_path, ref.tflite_path, ref.dataset, ref.config) == ("keras", str(h5), None, None, None)

    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"")
    assert ModelRef.resolve(saved).kind == "keras"

    tfl = tmp_path / "m.tflite"
    tfl.write_bytes(relu_model((1, 4)))
    ref = ModelRef.resolve(tfl)
    assert (ref.kind, ref.tflite_path, ref.keras_path) == ("tflite", str(tfl), None)


def test_a_flatbuffer_under_another_suffix_is_recognised_by_its_identifier(tmp_path):
    blob = tmp_path / "model.bin"
    blob.write_bytes(relu_model((1, 4)))
    assert ModelRef.resolve(blob).kind == "tflite"
    notes = tmp_path / "notes.bin"
    notes.write_bytes(b"hello, this is not a model")
    with pytest.raises(ModelError, match=r"'.*notes.bin' has suffix '.bin' and no TFLite file identifier"):
        ModelRef.resolve(notes)


def test_shipped_name(shipped):
    ref = ModelRef.resolve("mnist-bcnn-binary")
    assert (ref.kind, ref.dataset, ref.tflite_path) == ("pretrained", "mnist", shipped.tflite_path)
    assert ref.config == {"dataset": "mnist", "model": "bcnn"}
    with pytest.raises(ModelError, match=r"shipped model 'mnist-bcnn-binary' has no Keras model to convert "
                                         r"\(looked for .*gone.h5\)"):
        ref.require_keras("convert")


def test_an_existing_path_wins_over_a_shipped_name(shipped, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mnist-bcnn-binary").mkdir()
    with pytest.raises(ModelError, match="is a directory but neither a run directory"):
        ModelRef.resolve("mnist-bcnn-binary")


# ------------------------------------------------------------------ messages

def test_unknown_argument_names_it_and_lists_the_shipped_models(shipped, tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ModelError) as err:
        ModelRef.resolve(missing)
    msg = str(err.value)
    assert f"'{missing}' is not a file, a run directory or a pretrained model name" in msg
    assert f"no file or directory {missing} exists" in msg and "pretrained models: mnist-bcnn-binary" in msg


def test_a_directory_that_is_no_model_says_what_it_holds(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / "b.png").write_bytes(b"")
    with pytest.raises(ModelError, match=r"no config.yml.*no saved_model.pb\); found a.txt, b.png"):
        ModelRef.resolve(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="found an empty directory"):
        ModelRef.resolve(empty)


def test_missing_parts_say_where_they_were_looked_for(tmp_path):
    run = _run_dir(tmp_path, keras=False, tflite=False)
    ref = ModelRef.resolve(run)
    with pytest.raises(ModelError, match=rf"run directory '{run}' has no converted model \(looked for "
                                         rf"{run}/model.tflite\); convert it first: edgebnn convert {run}"):
        ref.require_tflite("export")
    with pytest.raises(ModelError, match=rf"run directory '{run}' has no Keras model to verify against "
                                         rf"\(looked for {run}/model.h5\)"):
        ref.require_keras("verify against")

    keras = ModelRef.resolve(_h5(tmp_path))
    with pytest.raises(ModelError, match=r"is a Keras model, and bench needs a converted .tflite: run "
                                         r"`edgebnn convert .*m.h5`"):
        keras.require_tflite("bench")

    tfl = tmp_path / "m.tflite"
    tfl.write_bytes(relu_model((1, 4)))
    with pytest.raises(ModelError, match=r"is a .tflite \(an already converted model\); convert needs the Keras "
                                         r"model it came from.*; pass the .tflite with --tflite"):
        ModelRef.resolve(tfl).require_keras("convert", hint="pass the .tflite with --tflite")


def _h5(root: Path) -> Path:
    path = root / "m.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n")
    return path


def test_dataset_required(tmp_path):
    keras = ModelRef.resolve(_h5(tmp_path))
    assert keras.require_dataset("verify", "fashion_mnist") == "fashion_mnist"
    with pytest.raises(ModelError, match=r"verify needs the dataset of '.*m.h5', which is unknown.*pass --dataset"):
        keras.require_dataset("verify")
    run = _run_dir(tmp_path, config="model: bcnn\n")
    with pytest.raises(ModelError, match=rf"{run}/config.yml has no 'dataset'"):
        ModelRef.resolve(run).require_dataset("verify")


def test_guessed_dataset_of_files(tmp_path):
    """A .tflite in a run directory takes the run's dataset; elsewhere its name's."""
    run = _run_dir(tmp_path, config="dataset: fashion_mnist\n")
    assert ModelRef.resolve(run / "model.tflite").dataset is None  # recorded nowhere for a bare file
    assert ModelRef.resolve(run / "model.tflite").guess_dataset() == "fashion_mnist"
    named = tmp_path / "mnist-tiny-binary.tflite"
    named.write_bytes(relu_model((1, 4)))
    assert ModelRef.resolve(named).guess_dataset() == "mnist"
    assert dataset_from_name("mnist-bcnn-binary") == "mnist"
    assert dataset_from_name("fashion-mnist-lenet5-float") == "fashion_mnist"
    assert dataset_from_name("my_model") is None


# ------------------------------------------------------------------ config.yml

@pytest.mark.parametrize("text, match", [
    ("dataset: [mnist\n", r"config.yml is not valid YAML at line 2, column 1"),
    ("- mnist\n- bcnn\n", r"config.yml: expected a YAML mapping \(dataset: ..., model: ...\), found a list"),
    ("!!python/object:os.system {}\n", r"config.yml is not valid YAML"),  # safe_load refuses tags
], ids=["unclosed_list", "a_list", "python_tag"])
def test_malformed_config_is_an_error_naming_the_file(tmp_path, text, match):
    run = _run_dir(tmp_path, config=text)
    with pytest.raises(ConfigError, match=match):
        read_run_config(run)
    with pytest.raises(ConfigError, match=match):
        ModelRef.resolve(run).dataset  # noqa: B018 - the property reads the file


def test_config_reader_empty_and_missing(tmp_path):
    empty = tmp_path / "c.yml"
    empty.write_text("")
    assert read_yaml(empty) == {}
    with pytest.raises(ConfigError, match=rf"{tmp_path} has no config.yml \(looked for {tmp_path}/config.yml\)"):
        read_run_config(tmp_path)


def test_firmware_build_no_longer_swallows_a_malformed_run_config(tmp_path):
    """It used to read config.yml itself, ignore a parse error and embed random inputs."""
    from edgebnn.firmware import build_firmware

    run = _run_dir(tmp_path, config="dataset: [mnist\n", keras=False)
    with pytest.raises(ConfigError, match="config.yml is not valid YAML at line 2"):
        build_firmware(run, "x86_64", tmp_path / "fw")
    assert not (tmp_path / "fw").exists()


# ------------------------------------------------------------------ every command alike

COMMANDS = {
    "convert": ["convert", "{model}"],
    "verify": ["verify", "{model}"],
    "export": ["export", "{model}", "-o", "{out}"],
    "bench": ["bench", "{model}", "--engine", "c", "--runs", "1"],
    "firmware": ["firmware", "build", "{model}", "-t", "x86_64", "-o", "{out}"],
}


def _invoke(cmd, model, out):
    return CliRunner().invoke(cli, [a.format(model=model, out=out) for a in COMMANDS[cmd]])


@pytest.mark.parametrize("cmd", sorted(COMMANDS))
def test_every_command_reports_an_unknown_model_alike(cmd, tmp_path):
    res = _invoke(cmd, tmp_path / "nope", tmp_path / "out")
    assert res.exit_code == 1, res.output
    assert f"'{tmp_path / 'nope'}' is not a file, a run directory or a pretrained model name" in res.output


@pytest.mark.parametrize("cmd", ["bench", "export", "firmware"])
def test_commands_needing_a_flatbuffer_ask_for_conversion_alike(cmd, tmp_path):
    run = _run_dir(tmp_path, tflite=False)
    res = _invoke(cmd, run, tmp_path / "out")
    assert res.exit_code == 1, res.output
    assert f"run directory '{run}' has no converted model (looked for {run / 'model.tflite'})" in res.output
    assert f"edgebnn convert {run}" in res.output

"""Training configurations and the shipped presets."""

import pytest
import yaml

from edgebnn.config import (
    TrainConfig,
    dump_config,
    list_presets,
    load_config,
    load_preset,
    preset_path,
    resolve,
)
from edgebnn.errors import ConfigError

REQUIRED = {"dataset", "model", "precision", "epochs", "batch_size", "optimizer", "loss",
            "lr", "seed", "limit"}


def test_defaults_hold_every_required_key():
    assert REQUIRED <= set(TrainConfig().to_dict())


def test_dump_and_load_round_trip(tmp_path):
    cfg = TrainConfig(dataset="fashion_mnist", model="lenet5", precision="ternary", epochs=3,
                      loss="squared_hinge", optimizer="sgd", lr=0.05, seed=7, limit=123)
    path = tmp_path / "config.yml"
    path.write_text(dump_config(cfg))
    assert load_config(path) == cfg
    assert REQUIRED <= set(yaml.safe_load(path.read_text()))


@pytest.mark.parametrize("name", list_presets())
def test_shipped_presets_are_valid(name):
    cfg = load_preset(name)
    assert cfg.epochs >= 1
    from edgebnn.zoo import list_models

    assert cfg.model in list_models()


def test_bars_presets_are_shipped():
    names = set(list_presets())
    assert {"mnist-bcnn-binary", "mnist-bcnn-float", "mnist-bcnn-wide-binary",
            "fashion_mnist-bcnn-wide-binary"} <= names


def test_flags_override_preset_and_none_is_ignored():
    cfg = resolve("mnist-bcnn-binary", epochs=2, lr=None, limit=500)
    base = load_preset("mnist-bcnn-binary")
    assert (cfg.epochs, cfg.limit, cfg.lr) == (2, 500, base.lr)


def test_preset_by_path(tmp_path):
    path = tmp_path / "mine.yml"
    path.write_text("dataset: mnist\nmodel: lenet5\nepochs: 4\n")
    assert preset_path(str(path)) == path
    cfg = load_preset(str(path), precision="float")
    assert (cfg.model, cfg.epochs, cfg.precision) == ("lenet5", 4, "float")


def test_unknown_preset_lists_shipped_ones():
    with pytest.raises(ConfigError, match="mnist-bcnn-binary"):
        preset_path("no-such-preset")


def test_unknown_key_names_file_and_key(tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text("dataset: mnist\nepochz: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yml.*epochz"):
        load_preset(str(path))


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"precision": "quaternary"}, "precision"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"loss": "mse"}, "loss"),
        ({"strategy": "tpu"}, "strategy"),
        ({"epochs": 0}, "epochs"),
        ({"lr": -1.0}, "lr"),
        ({"limit": -5}, "limit"),
        ({"epochs": "many"}, "epochs"),
        ({"optimizer": "bop", "precision": "float"}, "bop"),
    ],
    ids=["precision", "optimizer", "loss", "strategy", "epochs_zero", "lr_negative",
         "limit_negative", "epochs_not_int", "bop_on_float"],
)
def test_invalid_values_are_rejected(changes, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig().replace(**changes)


def test_yaml_numbers_are_coerced():
    cfg = TrainConfig.from_dict({"lr": "1e-3", "epochs": 3.0, "seed": "4"})
    assert cfg.lr == pytest.approx(1e-3) and cfg.epochs == 3 and cfg.seed == 4

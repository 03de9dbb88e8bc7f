"""``edgebnn compare`` on run directories written in the real layout."""

import json

import pytest
import yaml
from click.testing import CliRunner

from edgebnn.cli import main
from edgebnn.compare import compare_runs, comparison_table
from edgebnn.config import TrainConfig, dump_config
from edgebnn.errors import RunDirError


def _write_run(root, name, *, precision, acc, f1, size, epochs=3, wall=61.0, finished=True):
    run = root / name
    run.mkdir()
    cfg = TrainConfig(dataset="mnist", model="bcnn", precision=precision, epochs=epochs,
                      loss="squared_hinge" if precision == "binary" else "crossentropy")
    (run / "config.yml").write_text(dump_config(cfg))
    (run / "history.csv").write_text(
        "epoch,loss,accuracy,val_loss,val_accuracy,val_macro_f1,lr,time_s\n"
        + "".join(f"{e},0.5,0.9,0.4,{0.9 + e / 100},0.9,0.001,20\n" for e in range(1, epochs + 1))
    )
    if finished:
        (run / "metrics.json").write_text(json.dumps({
            "test_accuracy": acc, "macro_f1": f1, "model_size_bytes": size,
            "parameters": 93556, "epochs": epochs, "wall_time_s": wall,
        }))
    return run


@pytest.fixture
def two_runs(tmp_path):
    a = _write_run(tmp_path, "bnn", precision="binary", acc=0.9891, f1=0.9889, size=14624.0)
    b = _write_run(tmp_path, "fp", precision="float", acc=0.9921, f1=0.9920, size=374224.0,
                   wall=3725.0)
    return a, b


def test_table_rows(two_runs):
    runs = compare_runs(two_runs)
    headers, rows = comparison_table(runs)
    assert headers[:5] == ("run", "model", "precision", "loss", "optimizer")
    assert rows[0][:7] == ("bnn", "bcnn", "binary", "squared_hinge", "adam", "98.91", "98.89")
    assert rows[1][7] == "365.5" and rows[1][9] == "1h02m05s"
    assert runs[0].best_val_accuracy == pytest.approx(0.93)


def test_cli_json_and_plot(two_runs, tmp_path):
    plot = tmp_path / "cmp.png"
    res = CliRunner().invoke(main, ["compare", *map(str, two_runs), "--json", "--plot", str(plot)])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert [d["precision"] for d in data] == ["binary", "float"]
    assert data[1]["test_accuracy"] == 0.9921
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_table(two_runs):
    res = CliRunner().invoke(main, ["compare", *map(str, two_runs)])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert "test acc %" in lines[0] and "99.21" in lines[3]


def test_unfinished_run_is_named(tmp_path):
    run = _write_run(tmp_path, "half", precision="binary", acc=0, f1=0, size=0, finished=False)
    with pytest.raises(RunDirError, match=r"half.*not finished.*--resume"):
        compare_runs([run])
    res = CliRunner().invoke(main, ["compare", str(run)])
    assert res.exit_code != 0 and "not finished" in res.output


def test_not_a_run_dir(tmp_path):
    with pytest.raises(RunDirError, match="not a run directory"):
        compare_runs([tmp_path])


def test_config_is_the_real_layout(two_runs):
    cfg = yaml.safe_load((two_runs[0] / "config.yml").read_text())
    assert cfg["precision"] == "binary"

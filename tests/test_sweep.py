"""``edgebnn sweep`` and ``compare`` over its cells.

The slow test trains a 2 x 2 grid (precision binary,float x loss
crossentropy,hinge) twice each on a slice of real MNIST, in-process so
TensorFlow is imported once, then resumes it and compares it. The issue's
2 x 2 x 2 grid (with optimizer sgd,adam) is the README's benchmark command:
the same code path with twice the runs.
"""

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgebnn import rundir
from edgebnn.cli import main
from edgebnn.config import TrainConfig, dump_config
from edgebnn.errors import ConfigError, RunDirError
from edgebnn.sweep import check_plan, plan_sweep

GRID = {"precision": ["binary", "float"], "loss": ["crossentropy", "hinge"],
        "optimizer": ["sgd", "adam"]}
# what the slow test trains: 4 cells x 2 seeds = 8 runs (about 13 s each here)
TRAIN_GRID = {"precision": ["binary", "float"], "loss": ["crossentropy", "hinge"]}


# -- planning (no TensorFlow) ---------------------------------------------------


def test_plan_cells_seeds_and_directories(tmp_path):
    base = TrainConfig(dataset="mnist", epochs=1, seed=5)
    plan = plan_sweep(base, GRID, repeat=3, out=tmp_path)
    assert len(plan) == 24
    assert len({r.run_dir for r in plan}) == 24
    first = plan[:3]
    assert [r.config.seed for r in first] == [5, 6, 7]
    assert {r.cell for r in first} == {(("precision", "binary"), ("loss", "crossentropy"),
                                        ("optimizer", "sgd"))}
    assert first[0].run_dir == tmp_path / "precision-binary_loss-crossentropy_optimizer-sgd" / "seed-5"
    assert plan[-1].config.precision == "float" and plan[-1].config.optimizer == "adam"
    assert all(r.state() == "new" for r in plan)


@pytest.mark.parametrize("grid,repeat,match", [
    ({"epochs": [1, 2]}, 1, "cannot sweep 'epochs'; sweepable keys: model, precision"),
    ({"loss": []}, 1, "'loss' has no values"),
    ({"loss": ["hinge", "hinge"]}, 1, "repeats a value: hinge, hinge"),
    ({"precision": ["float"], "optimizer": ["bop"]}, 1,
     "cell precision=float optimizer=bop: optimizer 'bop' trains binary weights"),
    ({}, 0, "--repeat must be >= 1"),
], ids=["unknown_key", "empty", "duplicate", "invalid_cell", "repeat_zero"])
def test_plan_errors_name_the_key(tmp_path, grid, repeat, match):
    with pytest.raises(ConfigError, match=match):
        plan_sweep(TrainConfig(), grid, repeat=repeat, out=tmp_path)


def test_existing_directories_must_belong_to_the_plan(tmp_path):
    plan = plan_sweep(TrainConfig(epochs=1), {"loss": ["hinge"]}, repeat=1, out=tmp_path)
    d = plan[0].run_dir
    d.mkdir(parents=True)
    (d / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="exists but is not a run directory"):
        check_plan(plan)
    (d / rundir.CONFIG).write_text(dump_config(plan[0].config.replace(lr=0.5)))
    with pytest.raises(RunDirError, match=r"lr: run has 0\.5, sweep asks 0\.001"):
        check_plan(plan)
    (d / rundir.CONFIG).write_text(dump_config(plan[0].config))
    check_plan(plan)
    assert plan[0].state() == "partial"


def test_cli_dry_run_and_bad_lists(tmp_path):
    cli = CliRunner()
    res = cli.invoke(main, ["sweep", "mnist", "--config", "smoke", "--precision", "binary,float",
                            "--lr", "0.01,0.001", "--repeat", "2", "--out", str(tmp_path / "g"),
                            "--dry-run"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert len(lines) == 8 and lines[0].startswith("[1/8] new ")
    assert "precision=binary lr=0.01 seed=0" in lines[0] and "lr=0.001 seed=1" in lines[3]
    assert not (tmp_path / "g").exists()
    res = cli.invoke(main, ["sweep", "mnist", "--loss", "hinge,l2", "--out", str(tmp_path / "g")])
    assert res.exit_code != 0 and "'l2' is not one of crossentropy, hinge, squared_hinge" in res.output
    res = cli.invoke(main, ["sweep", "mnist", "--lr", "fast", "--out", str(tmp_path / "g")])
    assert res.exit_code != 0 and "'fast' is not a valid float" in res.output


# -- the real grid ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.tf
def test_grid_2x2_repeat_2_resume_and_compare(tmp_path, shared_data):
    from edgebnn.datasets import load_dataset
    from edgebnn.sweep import run_sweep

    ds = load_dataset("mnist", data_dir=shared_data, download=False)
    # the first 500 test images keep the final evaluations short
    ds = dataclasses.replace(ds, x_test=ds.x_test[:500], y_test=ds.y_test[:500])
    base = TrainConfig(dataset="mnist", model="bcnn", epochs=1, limit=300, val_size=200,
                       batch_size=50, lr=0.01, seed=0)
    out = tmp_path / "grid"
    plan = plan_sweep(base, TRAIN_GRID, repeat=2, out=out)
    runs, cells = len(plan), len(plan) // 2

    events = list(run_sweep(plan, dataset=ds))
    done = [e for e in events if e.kind == "done"]
    assert runs == 8 and [e.action for e in done] == ["train"] * runs
    assert [e.index for e in done] == list(range(1, runs + 1))
    for run in plan:
        d = run.run_dir
        for name in (rundir.METRICS, rundir.MODEL, rundir.HISTORY, *rundir.PLOTS):
            assert (d / name).stat().st_size > 0, d / name
        assert f"seed: {run.config.seed}\n" in (d / rundir.CONFIG).read_text()
        m = json.loads((d / rundir.METRICS).read_text())
        assert m["precision"] == run.config.precision and m["test_images"] == 500

    # an interrupted run: its outputs after the last checkpoint are gone
    victim = plan[5]
    for name in (rundir.METRICS, *rundir.PLOTS):
        (victim.run_dir / name).unlink()
    stamps = {r.run_dir: (r.run_dir / rundir.METRICS).stat().st_mtime_ns
              for r in plan if r is not victim}
    assert victim.state() == "partial"
    events = list(run_sweep(plan, dataset=ds))
    actions = {e.run.run_dir: e.action for e in events if e.kind == "done"}
    assert actions[victim.run_dir] == "resume"
    assert [a for d, a in actions.items() if d != victim.run_dir] == ["skip"] * (runs - 1)
    assert all((d / rundir.METRICS).stat().st_mtime_ns == t for d, t in stamps.items())
    resumed = json.loads((victim.run_dir / rundir.METRICS).read_text())
    assert resumed["resumed_from_epoch"] == 1 and resumed["epochs"] == 1
    for name in rundir.PLOTS:
        assert (victim.run_dir / name).is_file()

    # the same sweep through the CLI finds every run finished and trains nothing
    preset = tmp_path / "base.yml"
    preset.write_text(dump_config(base))
    grid_flags = [f"--{k}={','.join(v)}" for k, v in TRAIN_GRID.items()]
    res = CliRunner().invoke(main, ["sweep", "--config", str(preset), *grid_flags, "--repeat", "2",
                                    "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    listed = json.loads(res.stdout)
    assert [r["action"] for r in listed] == ["skip"] * runs
    assert [r["run_dir"] for r in listed] == [str(r.run_dir) for r in plan]
    assert json.loads((out / "sweep.json").read_text())["grid"] == TRAIN_GRID

    # compare: 4 cells of 2 seeds, mean +- std of the runs' own metrics.json
    cli = CliRunner()
    plot = tmp_path / "grid.png"
    res = cli.invoke(main, ["compare", str(out), "--plot", str(plot)])
    assert res.exit_code == 0, res.output
    rows = [line for line in res.stdout.splitlines()[2:] if line.strip()]
    assert len(rows) == cells
    assert all(" 2 " in r and r.count("+-") >= 2 for r in rows)
    labels = {" ".join(r.split()[:2]) for r in rows}
    assert labels == {f"precision={p} loss={l}" for p in TRAIN_GRID["precision"] for l in TRAIN_GRID["loss"]}
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    res = cli.invoke(main, ["compare", str(out), "--json"])
    listed_cells = json.loads(res.stdout)
    assert len(listed_cells) == cells and all(c["n"] == 2 for c in listed_cells)
    for cell in listed_cells:
        accs = [json.loads((Path(r) / rundir.METRICS).read_text())["test_accuracy"]
                for r in cell["runs"]]
        assert cell["test_accuracy_mean"] == pytest.approx(sum(accs) / 2)
        assert cell["test_accuracy_std"] == pytest.approx(abs(accs[0] - accs[1]) / 2 ** 0.5)
        assert cell["seeds"] == [0, 1]
    # different seeds train different networks
    assert any(c["test_accuracy_std"] > 0 for c in listed_cells)


# -- compare's cells (no TensorFlow) ------------------------------------------------


def _fake_run(root, name, cfg, acc, f1, wall):
    d = root / name
    d.mkdir(parents=True)
    (d / rundir.CONFIG).write_text(dump_config(cfg))
    (d / rundir.HISTORY).write_text(
        "epoch,loss,accuracy,val_loss,val_accuracy,val_macro_f1,lr,time_s\n"
        f"1,0.9,0.5,0.8,{acc - 0.01},0.5,0.001,3\n2,0.5,0.8,0.4,{acc},0.8,0.001,3\n")
    (d / rundir.METRICS).write_text(json.dumps({
        "test_accuracy": acc, "macro_f1": f1, "model_size_bytes": 1000.0, "parameters": 10,
        "epochs": 2, "wall_time_s": wall}))


def test_compare_groups_seeds_into_cells(tmp_path):
    from edgebnn.compare import compare_runs, group_runs

    root = tmp_path / "grid"
    base = TrainConfig(dataset="mnist", epochs=2)
    _fake_run(root, "b/seed-0", base.replace(seed=0), 0.90, 0.89, 60.0)
    _fake_run(root, "b/seed-1", base.replace(seed=1), 0.92, 0.91, 80.0)
    _fake_run(root, "f/seed-0", base.replace(precision="float", seed=0), 0.95, 0.94, 30.0)
    cells = group_runs(compare_runs([root]))
    assert [c.label for c in cells] == ["precision=binary", "precision=float"]
    b, f = cells
    assert b.n == 2 and b.seeds == (0, 1)
    assert b.test_accuracy_mean == pytest.approx(0.91)
    assert b.test_accuracy_std == pytest.approx(0.02 / 2 ** 0.5)
    assert b.wall_time_s_mean == 70.0 and f.test_accuracy_std is None

    cli = CliRunner()
    plot = tmp_path / "cells.png"
    res = cli.invoke(main, ["compare", str(root), "--plot", str(plot)])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert "mean +- std" in lines[0]
    assert lines[2].split()[:5] == ["precision=binary", "2", "91.00", "+-", "1.41"]
    assert lines[3].split()[:3] == ["precision=float", "1", "95.00"] and "+-" not in lines[3]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = cli.invoke(main, ["compare", str(root), "--runs"])
    assert res.exit_code == 0 and len(res.stdout.splitlines()) == 5  # header, rule, 3 runs
    res = cli.invoke(main, ["compare", str(tmp_path / "nothing")])
    assert res.exit_code != 0 and "no such run directory" in res.output
    (tmp_path / "empty").mkdir()
    res = cli.invoke(main, ["compare", str(tmp_path / "empty")])
    assert res.exit_code != 0 and "no runs below it" in res.output

"""``edgebnn export``: files written, reports, formats, errors, no TensorFlow."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgebnn.cli import main
from edgebnn.io import OUTPUT_MARKER

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "codegen"
MODEL = FIXTURES / "tiny_bcnn.tflite"


def run(*args):
    return CliRunner().invoke(main, ["export", *map(str, args)])


def test_export_c_writes_engine_and_reports_memory(tmp_path):
    out = tmp_path / "mnist"
    res = run(MODEL, "-o", out, "--name", "mnist", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["format"] == "c" and report["name"] == "mnist"
    assert report["weights_bytes"] > 0 and report["arena_bytes"] > 0
    assert sorted(p.name for p in out.iterdir() if p.name != OUTPUT_MARKER) == report["files"]
    assert json.loads((out / OUTPUT_MARKER).read_text())["kind"] == "export"
    assert {"mnist.h", "mnist.c", "ebnn.h", "Makefile"} <= set(report["files"])
    assert report["input_shape"] == [1, 28, 28, 1] and report["output_size"] == 10
    c = (out / "mnist.c").read_text()
    assert "edgebnn export" in c[:400] and report["sha256"] in c[:400]
    proc = subprocess.run(["make", "-s", "-C", str(out), "CFLAGS=-std=c99 -O1 -Wall -Wextra -Werror"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (out / "libmnist.a").is_file()


def test_export_text_report_and_no_fuse(tmp_path):
    res = run(MODEL, "-o", tmp_path / "a")
    assert res.exit_code == 0, res.output
    assert "weights (constants)" in res.stdout and "arena (peak activations)" in res.stdout
    fused = json.loads(run(MODEL, "-o", tmp_path / "b", "--json").stdout)
    plain = json.loads(run(MODEL, "-o", tmp_path / "c", "--json", "--no-fuse").stdout)
    assert plain["arena_bytes"] > fused["arena_bytes"]
    assert "fused" not in (tmp_path / "c" / "model.c").read_text().split("int model_invoke")[1]


def test_export_is_deterministic_and_replaces_atomically(tmp_path):
    out = tmp_path / "m"
    assert run(MODEL, "-o", out).exit_code == 0
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    (out / "stale.txt").write_text("left over")
    assert run(MODEL, "-o", out).exit_code == 0
    second = {p.name: p.read_bytes() for p in out.iterdir()}
    assert first == second  # same bytes, and the stale file is gone
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_export_c_array(tmp_path):
    res = run(MODEL, "-o", tmp_path / "arr", "--format", "c-array", "--name", "net", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["files"] == ["net.cc", "net.h"] and report["bytes"] == MODEL.stat().st_size
    text = (tmp_path / "arr" / "net.cc").read_text()
    assert "alignas(16) const unsigned char net_tflite[" in text


def test_export_target_sets_makefile_toolchain(tmp_path):
    res = run(MODEL, "-o", tmp_path / "m4", "--target", "cortex-m4", "--json")
    assert res.exit_code == 0, res.output
    mk = (tmp_path / "m4" / "Makefile").read_text()
    assert "CC = arm-none-eabi-gcc" in mk and "-mcpu=cortex-m4" in mk
    assert json.loads(res.stdout)["target"] == "cortex-m4"


def test_export_unsupported_op_is_a_clear_error(tmp_path):
    res = run(FIXTURES / "unsupported_exp.tflite", "-o", tmp_path / "x")
    assert res.exit_code == 1
    assert "op 1 (EXP)" in res.output and "supported ops:" in res.output
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("args,needle", [
    (["missing.tflite"], "not a file"),
    ([str(MODEL), "--name", "bad-name"], "not a C identifier"),
    ([str(MODEL), "--target", "no-such-board"], "unknown target"),
], ids=["missing_model", "bad_name", "unknown_target"])
def test_export_argument_errors(tmp_path, args, needle):
    res = run(*args, "-o", tmp_path / "x")
    assert res.exit_code != 0
    assert needle in res.output


def test_export_never_imports_tensorflow(tmp_path):
    code = ("import sys\nfrom edgebnn.cli import main\n"
            "try:\n    main(['export', sys.argv[1], '-o', sys.argv[2], '--json'])\n"
            "except SystemExit as e:\n    assert e.code in (0, None), e.code\n"
            "bad = [m for m in ('tensorflow', 'tf_keras', 'larq', 'larq_compute_engine') if m in sys.modules]\n"
            "assert not bad, bad\n")
    proc = subprocess.run([sys.executable, "-c", code, str(MODEL), str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o" / "model.c").is_file()


def test_export_accepts_a_run_directory(tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yml").write_text("model: bcnn\n")
    res = run(run_dir, "-o", tmp_path / "x")
    assert res.exit_code == 1 and "edgebnn convert" in res.output  # no model.tflite yet
    shutil.copyfile(MODEL, run_dir / "model.tflite")
    res = run(run_dir, "-o", tmp_path / "x", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["model"] == str(run_dir / "model.tflite")


def test_export_never_deletes_a_folder_it_did_not_write(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "todo.txt").write_text("mine")
    res = run(MODEL, "-o", folder)
    assert res.exit_code != 0
    assert "not an earlier edgebnn output" in res.output and "--force" in res.output
    assert "Traceback" not in res.output
    assert sorted(p.name for p in folder.iterdir()) == ["todo.txt"]
    assert run(MODEL, "-o", folder, "--force").exit_code == 0
    assert not (folder / "todo.txt").exists() and (folder / "model.c").is_file()
    (tmp_path / "empty").mkdir()
    assert run(MODEL, "-o", tmp_path / "empty").exit_code == 0


def test_export_into_the_current_directory_is_refused_clearly(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.txt").write_text("mine")
    res = run(MODEL, "-o", ".")
    assert res.exit_code == 1
    assert "is the current directory" in res.output and "-o out" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_export_on_a_full_disk_is_one_line_and_keeps_the_earlier_export(tmp_path, monkeypatch):
    import errno
    import os

    out = tmp_path / "m"
    assert run(MODEL, "-o", out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real_write = Path.write_text

    def full(self, *args, **kwargs):
        if self.name == "model.c":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    res = run(MODEL, "-o", out)
    assert res.exit_code == 1
    assert res.output.splitlines()[-1] == f"Error: cannot write {out / 'model.c'}: No space left on device"
    assert len(res.output.splitlines()) == 2  # the status line, then one line of error
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]

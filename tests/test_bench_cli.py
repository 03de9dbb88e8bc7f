"""`edgebnn bench` on the command line: output, errors, and no TensorFlow
unless the chosen engine needs it. These use stock one-op models built in
memory (edgebnn.bench.tiny) and engines that do not import TensorFlow."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgebnn.bench.tiny import relu_model
from edgebnn.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "bench"
sys.path.insert(0, str(Path(__file__).parent))
from test_bench import write_fake_lce_binary  # noqa: E402  (the labelled test double)


@pytest.fixture
def relu_file(tmp_path):
    p = tmp_path / "relu.tflite"
    p.write_bytes(relu_model((1, 28, 28, 1)))
    return p


def _invoke(args):
    return CliRunner().invoke(main, ["bench", *map(str, args)])


NO_TF_SCRIPT = r"""
import json, sys
from click.testing import CliRunner
from edgebnn.cli import main
runs = []
for args in json.loads(sys.argv[1]):
    r = CliRunner().invoke(main, ["bench", *args])
    runs.append({"args": args, "exit": r.exit_code, "stdout": r.stdout, "stderr": r.stderr})
heavy = [m for m in ("tensorflow", "tf_keras", "larq", "larq_compute_engine") if m in sys.modules]
print(json.dumps({"runs": runs, "heavy": heavy}))
"""


def test_bench_imports_no_tensorflow_for_tflite_free_engines(relu_file, tmp_path):
    """A fresh interpreter runs `edgebnn bench` with lce-binary and c and checks sys.modules."""
    exe = write_fake_lce_binary(tmp_path, output_file=FIXTURES / "info_prefix_percentiles.txt")
    commands = [
        ["--list-engines"],
        [str(relu_file), "--engine", "lce-binary", "--lce-binary", str(exe), "--runs", "5", "--json"],
        [str(relu_file), "--engine", "c", "--runs", "5", "--warmup", "1", "--json"],
        [str(tmp_path / "missing.tflite")],
    ]
    out = subprocess.run([sys.executable, "-c", NO_TF_SCRIPT, json.dumps(commands)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["heavy"] == []
    listing, binary, c, missing = report["runs"]
    assert listing["exit"] == 0 and "lce-binary" in listing["stdout"]
    assert binary["exit"] == 0, binary["stderr"]
    assert json.loads(binary["stdout"])["latency_us"]["median"] == 1239807  # replayed by the double
    assert c["exit"] == 0, c["stderr"]
    d = json.loads(c["stdout"])
    assert d["engine"] == "c" and d["runs"] == 5 and d["latency_us"]["min"] > 0
    assert missing["exit"] == 1 and "not a file" in missing["stderr"]


def test_list_engines_json():
    r = _invoke(["--list-engines", "--json"])
    assert r.exit_code == 0, r.output
    rows = {row["engine"]: row for row in json.loads(r.stdout)["engines"]}
    assert set(rows) == {"c", "lce", "lce-binary", "tflite"}
    assert all(isinstance(row["available"], bool) and row["detail"] for row in rows.values())


def test_json_schema_and_table_with_against(relu_file, tmp_path):
    other = tmp_path / "other.tflite"
    other.write_bytes(relu_model((1, 28, 28, 1), description="the other model"))
    exe = write_fake_lce_binary(tmp_path, output_file=FIXTURES / "info_prefix_xnnpack.txt")
    args = [relu_file, "--engine", "lce-binary", "--lce-binary", exe, "--runs", "4",
            "--against", other, "--against-engine", "c", "--threads", "1"]
    r = _invoke([*args, "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    for key in ("engine", "threads", "runs", "latency_us", "model_bytes", "host", "ratio",
                "ratio_basis", "models", "against", "alternation"):
        assert key in d, key
    assert set(d["latency_us"]) >= {"min", "median", "p90", "max"}
    assert d["engine"] == "lce-binary" and d["against"]["engine"] == "c"
    assert d["model_bytes"] == relu_file.stat().st_size
    assert set(d["host"]) >= {"cpu", "arch", "cores", "simd", "os", "packages"}
    # lce-binary reports no median, so the ratio falls back to means and says so.
    assert d["ratio_basis"] == "mean"
    assert d["ratio"] == pytest.approx(d["latency_us"]["mean"] / d["against"]["latency_us"]["mean"])
    table = _invoke(args)
    assert table.exit_code == 0, table.output
    assert "ratio MODEL/OTHER (mean latency)" in table.stdout and "median us" in table.stdout


def test_plot_written_atomically(relu_file, tmp_path):
    png = tmp_path / "out" / "bench.png"
    r = _invoke([relu_file, "--engine", "c", "--runs", "3", "--warmup", "0", "--plot", png])
    assert r.exit_code == 0, r.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in png.parent.iterdir()] == ["bench.png"]  # no temporary left behind


@pytest.mark.parametrize(
    "args,message",
    [
        (["/nonexistent/x.tflite"], "not a file, a run directory or a pretrained model name"),
        (["{bad}"], "not a TFLite flatbuffer"),
        (["{relu}", "--engine", "lce-binary", "--lce-binary", "/nonexistent/lce_benchmark_model"],
         "does not exist"),
        (["{relu}", "--against-engine", "c"], "needs --against"),
        (["{relu}", "--engine", "onnx"], "'onnx' is not one of"),
        ([], "missing argument MODEL"),
    ],
    ids=["missing_file", "not_flatbuffer", "missing_binary", "against_engine_alone",
         "unknown_engine", "no_model"],
)
def test_cli_errors(args, message, relu_file, tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_text("not a flatbuffer at all")
    args = [a.format(bad=bad, relu=relu_file) for a in args]
    r = _invoke(args)
    assert r.exit_code != 0
    assert message in r.output
    assert "Traceback" not in r.output


# ---- Sizes and counts are checked before anything is allocated or run -----------


def test_a_model_declaring_a_billion_input_values_is_refused_before_allocating(tmp_path):
    import tracemalloc

    from edgebnn.bench.runner import MAX_INPUT_ELEMENTS, run_benchmark
    from edgebnn.errors import EdgeBnnError, ModelError

    # 1.0e9 floats (3.7 GiB): the flatbuffer reader refuses the tensor itself
    # (1 GiB per tensor); 1e8 floats (381 MiB) pass the reader, and bench's own
    # input limit (2^26 values) refuses them. Neither allocates the input.
    huge = tmp_path / "huge.tflite"
    huge.write_bytes(relu_model((1, 31623, 31623, 1)))
    big = tmp_path / "big.tflite"
    big.write_bytes(relu_model((1, 10000, 10000, 1)))
    tracemalloc.start()
    try:
        with pytest.raises(EdgeBnnError, match=r"1000014129 elements") as huge_err:
            run_benchmark(huge, engine="c", runs=1, warmup=0)
        with pytest.raises(ModelError) as err:
            run_benchmark(big, engine="c", runs=1, warmup=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(huge) in str(huge_err.value)
    msg = str(err.value)
    assert str(big) in msg and "[1, 10000, 10000, 1] = 100,000,000 elements" in msg
    assert f"at most {MAX_INPUT_ELEMENTS:,}" in msg
    assert peak < 64 << 20
    for path, text in ((huge, "1000014129 elements"), (big, "100,000,000 elements")):
        r = _invoke([path, "--engine", "c", "--runs", "1"])
        assert r.exit_code == 1 and text in r.output and "Traceback" not in r.output


def test_declared_activations_beyond_the_limit_are_refused(tmp_path):
    from edgebnn.bench.engines import MAX_ACTIVATION_BYTES, check_sizes
    from edgebnn.errors import ModelError
    from edgebnn.graph import Graph, Tensor

    graph = Graph(tensors=(Tensor(0, "image", (1, 28, 28, 1), "float32"),
                           Tensor(1, "wide", (1, 1 << 14, 1 << 14, 1), "float32")),
                  ops=(), inputs=(0,), outputs=(1,), sha256="0" * 64, size=0)
    with pytest.raises(ModelError, match=r"m\.tflite: the model's activations declare 1,073,744,960 bytes"
                                         r".*tensor 'wide' of shape \[1, 16384, 16384, 1\]"):
        check_sizes(graph, "m.tflite")
    small = Graph(tensors=graph.tensors[:1], ops=(), inputs=(0,), outputs=(0,), sha256="0" * 64, size=0)
    check_sizes(small, "m.tflite")  # a real model's sizes pass
    assert MAX_ACTIVATION_BYTES == 1 << 30


@pytest.mark.parametrize("flag,value,expected", [
    ("--runs", "100000001", "1<=x<=100000000"),
    ("--runs", "0", "1<=x<=100000000"),
    ("--warmup", "100000001", "0<=x<=100000000"),
])
def test_runs_and_warmup_ranges_match_the_c_program(relu_file, flag, value, expected):
    r = _invoke([relu_file, "--engine", "c", flag, value])
    assert r.exit_code == 2 and flag in r.output and expected in r.output


def test_library_checks_the_same_ranges(relu_file):
    from edgebnn.bench.runner import MAX_RUNS, run_benchmark
    from edgebnn.errors import EngineError

    with pytest.raises(EngineError, match=r"runs must be in 1\.\.100,000,000 .*got 100000001"):
        run_benchmark(relu_file, engine="c", runs=MAX_RUNS + 1)
    with pytest.raises(EngineError, match=r"warmup must be in 0\.\.100,000,000"):
        run_benchmark(relu_file, engine="c", runs=1, warmup=-1)


def test_plot_format_is_checked_before_the_benchmark_runs(relu_file, tmp_path):
    r = _invoke([relu_file, "--engine", "c", "--runs", "3", "--plot", tmp_path / "x.xyz"])
    assert r.exit_code == 2, r.output
    assert "'.xyz'" in r.output and ".png" in r.output and ".svg" in r.output
    assert "timing" not in r.output  # refused up front: nothing was measured
    r = _invoke([relu_file, "--engine", "c", "--runs", "3", "--plot", tmp_path / "noext"])
    assert r.exit_code == 2 and "no extension" in r.output
    assert list(tmp_path.iterdir()) == [relu_file]

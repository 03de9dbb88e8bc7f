"""Fast tests of edgebnn.bench: statistics, the lce_benchmark_model parser,
engine selection and error paths. No TensorFlow is imported here."""

import math
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from edgebnn.bench import engines as engines_mod
from edgebnn.bench.engines import LCE_CAPABLE, engine_names, get_engine
from edgebnn.bench.engines.lce_binary import ENV, find_lce_binary
from edgebnn.bench.host import host_info, simd_flags
from edgebnn.bench.lce_output import BenchmarkOutputError, parse_benchmark_output, parse_stat_line
from edgebnn.bench.runner import _chunks, choose_engine, make_input, resolve_tflite, run_benchmark
from edgebnn.bench.stats import LatencyStats, combine_aggregates, latency_stats, ratio_of
from edgebnn.bench.tiny import relu_model
from edgebnn.errors import EngineError, MissingDependencyError, ModelError, TFLiteFormatError
from edgebnn.graph import Graph, Op, Tensor, load_graph

FIXTURES = Path(__file__).parent / "fixtures" / "bench"


@pytest.fixture
def no_new_tensorflow():
    """Fail if the test imports TensorFlow (when the session had not already).

    The authoritative check runs in a fresh interpreter (test_bench_cli.py);
    this one catches regressions early when this file runs on its own.
    """
    before = "tensorflow" in sys.modules
    yield
    if not before:
        assert "tensorflow" not in sys.modules, "this code path imported TensorFlow"


# ---------------------------------------------------------------- statistics

def test_latency_stats_known_sequence():
    # 1..10 microseconds given in nanoseconds, shuffled: order must not matter.
    rng = np.random.default_rng(0)
    times = rng.permutation([1000 * k for k in range(1, 11)])
    s = latency_stats(times)
    assert (s.runs, s.min, s.max) == (10, 1.0, 10.0)
    assert s.median == pytest.approx(5.5)  # mean of the 5th and 6th values
    assert s.p90 == pytest.approx(9.1)  # rank 1 + 0.9 * 9 = 9.1 -> 9 + 0.1 * (10 - 9)
    assert s.mean == pytest.approx(5.5)
    assert s.std == pytest.approx(math.sqrt(8.25))  # population variance of 1..10
    assert s.images_per_s == pytest.approx(1e6 / 5.5)


def test_latency_stats_odd_count_and_errors():
    s = latency_stats([3000, 1000, 2000])
    assert s.median == 2.0 and s.p90 == pytest.approx(2.8)
    with pytest.raises(ValueError):
        latency_stats([])
    with pytest.raises(ValueError):
        latency_stats([1000, -5])


def test_combine_aggregates_matches_pooled_series():
    rng = np.random.default_rng(1)
    a = rng.uniform(100e3, 200e3, 37)
    b = rng.uniform(150e3, 400e3, 13)
    parts = [latency_stats(a), latency_stats(b)]
    whole = latency_stats(np.concatenate([a, b]))
    c = combine_aggregates(parts)
    assert c.runs == 50
    assert c.min == pytest.approx(whole.min) and c.max == pytest.approx(whole.max)
    assert c.mean == pytest.approx(whole.mean) and c.std == pytest.approx(whole.std)
    assert c.median is None and c.p90 is None  # not recoverable from aggregates
    assert combine_aggregates(parts[:1]) is parts[0]


def test_ratio_uses_medians_then_means():
    a = LatencyStats(runs=5, min=1, median=300.0, p90=320, max=400, mean=310.0, std=5)
    b = LatencyStats(runs=5, min=1, median=100.0, p90=120, max=200, mean=110.0, std=5)
    assert ratio_of(a, b) == (3.0, "median")
    b2 = LatencyStats(runs=5, min=1, median=None, p90=None, max=200, mean=124.0, std=5)
    assert ratio_of(a, b2) == (pytest.approx(310.0 / 124.0), "mean")


def test_chunks_split_runs_evenly():
    assert _chunks(25, 10) == [3, 3, 3, 3, 3, 2, 2, 2, 2, 2]
    assert _chunks(3, 10) == [1, 1, 1]
    assert sum(_chunks(200, 10)) == 200


# ------------------------------------------------------------ output parser

def test_parser_tf28_without_prefix_ignores_op_profiling():
    out = parse_benchmark_output((FIXTURES / "tf28_no_prefix_op_profiling.txt").read_text())
    r = out.runs
    assert (r.count, r.min_us, r.max_us) == (50, 2727568, 3189954)
    assert r.mean_us == pytest.approx(2.95034e6) and r.std_us == 109798
    assert r.median_us is None  # this version prints no median
    # the warm-up printed "count=1 curr=3512391": every field is that one value
    assert out.warmup.count == 1 and out.warmup.min_us == out.warmup.max_us == 3512391
    assert out.init_us == 17187 and out.first_inference_us == 3512391
    assert out.inference_avg_us == pytest.approx(2.95034e6)
    assert (out.init_mem_mb, out.overall_mem_mb) == (pytest.approx(4.21094), pytest.approx(46.0859))
    assert out.num_threads == 4 and out.model_size_mb == pytest.approx(16.9008)


def test_parser_info_prefix_and_delegate_line():
    out = parse_benchmark_output((FIXTURES / "info_prefix_xnnpack.txt").read_text())
    assert (out.runs.count, out.runs.min_us, out.runs.max_us) == (50, 56227, 56707)
    assert out.runs.mean_us == pytest.approx(56283.9)
    assert out.warmup.count == 9
    assert out.delegates == ("Created TensorFlow Lite XNNPACK delegate for CPU.",)
    assert out.init_mem_mb is None  # not printed by this run


def test_parser_reads_median_when_printed():
    out = parse_benchmark_output((FIXTURES / "info_prefix_percentiles.txt").read_text())
    assert out.runs.median_us == 1239807 and out.runs.p95_us == 1247415
    assert out.runs.mean_us == pytest.approx(1.24027e6)
    assert out.warmup.count == 1 and out.warmup.median_us == 1357602


@pytest.mark.parametrize(
    "line,expected",
    [
        ("count=3 curr=120(all same)", (3, 120.0, 120.0, 120.0)),
        ("I tflite  : count=25 first=187533 curr=140990 min=140071 max=195121 avg=145528 std=13583",
         (25, 140071.0, 195121.0, 145528.0)),
        ("INFO: count=4 first=1e+03 curr=2e3 min=1.5e+03 max=2.5e+03 avg=2e+03 std=1e2",
         (4, 1500.0, 2500.0, 2000.0)),
    ],
    ids=["all_same", "logcat_prefix", "scientific"],
)
def test_stat_line_variants(line, expected):
    s = parse_stat_line(line)
    assert (s.count, s.min_us, s.max_us, s.mean_us) == expected


@pytest.mark.parametrize(
    "text,message",
    [
        ("", "no 'Inference timings in us"),
        ("INFO: STARTING!\nERROR: Failed to load model x.tflite\n", "did not finish"),
        ("INFO: Inference timings in us: Init: 1, First inference: 2, Warmup (avg): 2, Inference (avg): 3\n",
         "no 'count=...'"),
        ("INFO: count=0\nINFO: Inference timings in us: Init: 1, First inference: 2, Warmup (avg): nan, "
         "Inference (avg): nan\n", "recorded no runs"),
    ],
    ids=["empty", "load_failure", "no_stat_line", "zero_runs"],
)
def test_parser_rejects_unfinished_output(text, message):
    with pytest.raises(BenchmarkOutputError, match=message.replace("(", r"\(")):
        parse_benchmark_output(text)
    assert issubclass(BenchmarkOutputError, EngineError)


# ------------------------------------------------------------- host facts

def test_simd_flags_from_cpuinfo_text(tmp_path, no_new_tensorflow):
    from edgebnn.bench.host import _cpuinfo

    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu sse4_2 popcnt avx2 avx512f avx512_vpopcntdq\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd evtstrm crc32 cpuid asimddp\nModel\t: Raspberry Pi 5\n")
    assert simd_flags(_cpuinfo(x86)) == ["sse4_2", "popcnt", "avx2", "avx512f", "avx512_vpopcntdq"]
    assert simd_flags(_cpuinfo(arm)) == ["neon", "asimd", "asimddp"]
    info = host_info()
    assert info["arch"] and info["cores"] >= 1 and isinstance(info["simd"], list)


# ---------------------------------------------------------- engine choice

def _graph(custom_ops=()):
    """A Graph holding the given custom ops (only its op list matters for choosing)."""
    t = Tensor(index=0, name="x", shape=(1, 4), dtype="float32")
    ops = tuple(Op(index=i, type=name, custom=True, inputs=(0,), outputs=(0,), options={})
                for i, name in enumerate(custom_ops))
    return Graph(tensors=(t,), ops=ops, inputs=(0,), outputs=(0,), sha256="0" * 64, size=0)


def _set_available(monkeypatch, **flags):
    """Force is_available() of named engines (keys use _ for -)."""
    for key, ok in flags.items():
        cls = engines_mod.ENGINES[key.replace("_", "-")]
        monkeypatch.setattr(cls, "is_available", lambda self, ok=ok: (ok, "forced by test"))


def test_registry_lists_every_engine_and_rejects_unknown():
    assert engine_names() == ["c", "lce", "lce-binary", "tflite"]
    with pytest.raises(EngineError, match="known engines: c, lce, lce-binary, tflite"):
        get_engine("onnx")


@pytest.mark.parametrize(
    "lce,c,binary,expected",
    [(True, True, True, "lce"), (False, True, True, "c"), (False, False, True, "lce-binary")],
    ids=["lce_first", "c_without_lce", "binary_last"],
)
def test_choose_engine_for_lce_model(monkeypatch, lce, c, binary, expected):
    _set_available(monkeypatch, lce=lce, c=c, lce_binary=binary, tflite=True)
    name, why = choose_engine(_graph(["LceBconv2d", "LceQuantize"]))
    assert name == expected and "LCE model" in why


def test_choose_engine_for_stock_model(monkeypatch):
    _set_available(monkeypatch, lce=True, c=True, lce_binary=True, tflite=True)
    assert choose_engine(_graph())[0] == "tflite"
    _set_available(monkeypatch, tflite=False)
    assert choose_engine(_graph())[0] == "lce"


def test_choose_engine_none_available_says_why(monkeypatch):
    _set_available(monkeypatch, lce=False, c=False, lce_binary=False, tflite=True)
    with pytest.raises(EngineError) as err:
        choose_engine(_graph(["LceBconv2d"]))
    msg = str(err.value)
    assert "LceBconv2d" in msg and "lce:" in msg and "c:" in msg and "lce-binary:" in msg
    assert "releases" in msg  # how to get lce_benchmark_model


def test_tflite_refuses_lce_ops_naming_them_and_the_capable_engines():
    ok, why = get_engine("tflite").can_run(_graph(["LceBconv2d", "LceQuantize", "LceDequantize"]))
    assert not ok
    assert "LceBconv2d, LceDequantize, LceQuantize" in why
    for name in LCE_CAPABLE:
        assert name in why
    ok, why = get_engine("lce").can_run(_graph(["MyOwnOp"]))
    assert not ok and "MyOwnOp" in why and "no edgebnn engine" in why


# --------------------------------------------------------------- inputs

def test_make_input_is_seeded_raw_pixels():
    g = load_graph(relu_model((1, 28, 28, 1)))
    a, b, c = make_input(g, 0), make_input(g, 0), make_input(g, 1)
    assert a.shape == (1, 28, 28, 1) and a.dtype == np.float32
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.min() >= 0 and a.max() <= 255 and np.array_equal(a, np.round(a))


# --------------------------------------------------------------- errors

def test_missing_model_file():
    with pytest.raises(ModelError, match="not a file, a run directory or a pretrained model name"):
        resolve_tflite("/nonexistent/model.tflite")


def test_not_a_flatbuffer(tmp_path):
    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"PK\x03\x04 this is a zip, not a model")
    with pytest.raises(TFLiteFormatError, match="not a TFLite flatbuffer"):
        run_benchmark(bad, engine="tflite", runs=1)


def test_keras_file_asks_for_conversion(tmp_path):
    h5 = tmp_path / "model.h5"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n")
    with pytest.raises(ModelError, match="edgebnn convert"):
        resolve_tflite(h5)


def test_engine_whose_package_is_missing(monkeypatch, tmp_path, no_new_tensorflow):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "larq_compute_engine" else real(name, *a))
    model = tmp_path / "relu.tflite"
    model.write_bytes(relu_model((1, 8)))
    with pytest.raises(MissingDependencyError, match=r"larq_compute_engine not installed.*pip install"):
        run_benchmark(model, engine="lce", runs=1)


def test_target_only_with_the_c_engine(tmp_path):
    model = tmp_path / "relu.tflite"
    model.write_bytes(relu_model((1, 8)))
    with pytest.raises(EngineError, match="applies to the c engine only"):
        run_benchmark(model, engine="tflite", target="arm64", runs=1)


# ----------------------------------------- lce-binary with a test double

FAKE_NOTE = "TEST DOUBLE standing in for lce_benchmark_model: replays a recorded real-format output; not a measurement"


def write_fake_lce_binary(directory: Path, *, output_file=None, exit_code=0, text=None) -> Path:
    """Write an executable that stands in for lce_benchmark_model (a test double).

    It records its arguments in ``args.txt`` beside itself, prints ``text``
    (or the contents of ``output_file``) on stderr as recent benchmark_model
    versions do, and exits with ``exit_code``.
    """
    exe = directory / "lce_benchmark_model"
    payload = text if text is not None else Path(output_file).read_text()
    (directory / "payload.txt").write_text(payload)
    exe.write_text(
        "#!/bin/sh\n"
        f"# {FAKE_NOTE}\n"
        'here=$(dirname "$0")\n'
        'printf "%s\\n" "$@" > "$here/args.txt"\n'
        'cat "$here/payload.txt" >&2\n'
        f"exit {exit_code}\n"
    )
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return exe


@pytest.fixture
def lce_model_bytes():
    """A stock one-op model; lce-binary does not look inside, the double ignores it."""
    return relu_model((1, 28, 28, 1))


def test_lce_binary_runs_and_parses_test_double(tmp_path, lce_model_bytes):
    model = tmp_path / "m.tflite"
    model.write_bytes(lce_model_bytes)
    exe = write_fake_lce_binary(tmp_path, output_file=FIXTURES / "info_prefix_xnnpack.txt")
    r = run_benchmark(model, engine="lce-binary", lce_binary=exe, threads=2, warmup=3, runs=50)
    args = (tmp_path / "args.txt").read_text().splitlines()
    assert f"--graph={model.resolve()}" in args
    assert {"--num_threads=2", "--num_runs=50", "--warmup_runs=3"} <= set(args)
    lat = r.primary.latency_us
    assert (lat.runs, lat.min, lat.max, lat.median, lat.p90) == (50, 56227, 56707, None, None)
    assert r.primary.engine_info["found_via"] == "--lce-binary"
    assert "tool's own random input" in r.primary.timed
    assert r.to_dict()["latency_us"]["mean"] == pytest.approx(56283.9)


def test_lce_binary_found_through_environment(tmp_path, monkeypatch):
    exe = write_fake_lce_binary(tmp_path, text="")
    monkeypatch.setenv(ENV, str(exe))
    assert find_lce_binary(None) == (str(exe), f"${ENV}")
    monkeypatch.setenv(ENV, str(tmp_path / "missing"))
    path, why = find_lce_binary(None)
    assert path is None and "does not exist" in why


def test_lce_binary_missing(tmp_path, monkeypatch, lce_model_bytes):
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    model = tmp_path / "m.tflite"
    model.write_bytes(lce_model_bytes)
    with pytest.raises(EngineError, match=r"lce_benchmark_model not found.*--lce-binary"):
        run_benchmark(model, engine="lce-binary", runs=1)


def test_lce_binary_not_executable(tmp_path, lce_model_bytes):
    model = tmp_path / "m.tflite"
    model.write_bytes(lce_model_bytes)
    exe = tmp_path / "lce_benchmark_model"
    exe.write_text("not a program")
    with pytest.raises(EngineError, match="not executable"):
        run_benchmark(model, engine="lce-binary", lce_binary=exe, runs=1)


def test_lce_binary_nonzero_exit(tmp_path, lce_model_bytes):
    model = tmp_path / "m.tflite"
    model.write_bytes(lce_model_bytes)
    exe = write_fake_lce_binary(
        tmp_path, exit_code=1,
        text="INFO: STARTING!\nERROR: Didn't find custom op for name 'LceBconv2d' with version 1\n")
    with pytest.raises(EngineError) as err:
        run_benchmark(model, engine="lce-binary", lce_binary=exe, runs=5)
    msg = str(err.value)
    assert "exited with status 1" in msg and "LceBconv2d" in msg and "--num_runs=5" in msg


def test_lce_binary_unparseable_output(tmp_path, lce_model_bytes):
    model = tmp_path / "m.tflite"
    model.write_bytes(lce_model_bytes)
    exe = write_fake_lce_binary(tmp_path, text="Segmentation fault? no: just some other program\n")
    with pytest.raises(EngineError, match="no 'Inference timings in us"):
        run_benchmark(model, engine="lce-binary", lce_binary=exe, runs=5)


def test_lce_binary_against_alternates_and_pools(tmp_path, lce_model_bytes, no_new_tensorflow):
    a = tmp_path / "a.tflite"
    b = tmp_path / "b.tflite"
    a.write_bytes(lce_model_bytes)
    b.write_bytes(lce_model_bytes)
    exe = write_fake_lce_binary(tmp_path, output_file=FIXTURES / "info_prefix_percentiles.txt")
    r = run_benchmark(a, engine="lce-binary", lce_binary=exe, runs=20, warmup=2, against=b)
    # 10 chunks per model, each a separate run of the double reporting 50 runs.
    assert r.alternation["chunks"] == 10
    assert r.primary.latency_us.runs == 500 and r.primary.latency_us.median is None
    assert r.ratio == pytest.approx(1.0) and r.ratio_basis == "mean"


# ------------------------------------------------- MODEL argument forms

def test_model_argument_run_dir_and_shipped_name(tmp_path, monkeypatch):
    import edgebnn.pretrained as pretrained

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yml").write_text("model: bcnn\n")
    with pytest.raises(ModelError, match=f"edgebnn convert {run}"):
        resolve_tflite(run)  # trained but not converted yet
    (run / "model.tflite").write_bytes(relu_model((1, 4)))
    assert resolve_tflite(run) == str(run / "model.tflite")

    shipped = tmp_path / "ship.tflite"
    shipped.write_bytes(relu_model((1, 4)))
    entry = pretrained.Pretrained(name="mnist-bcnn-binary", dataset="mnist", model="bcnn",
                                  precision="binary", test_accuracy=0.98,
                                  keras_path=str(tmp_path / "none.h5"), tflite_path=str(shipped))
    monkeypatch.setattr(pretrained, "list_pretrained", lambda: [entry])
    assert resolve_tflite("mnist-bcnn-binary") == str(shipped)
    with pytest.raises(ModelError, match="pretrained models: mnist-bcnn-binary"):
        resolve_tflite("mnist-bcnn-float")

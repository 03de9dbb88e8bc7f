"""The C code generator: writer, planner, passes, compilation, sanitizers, determinism.

Models are the small fixtures of tests/fixtures/codegen/ (make_fixtures.py
rebuilds them with LCE; the .npz files hold LCE's interpreter's outputs for
16 seeded inputs, so these tests need neither TensorFlow nor LCE).
"""

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgebnn.codegen import generate, generate_sources, supported_ops
from edgebnn.codegen import ops as O
from edgebnn.codegen.generator import build_nodes, c_array_sources
from edgebnn.hostprog import build_bench_program, predict_c
from edgebnn.toolchain import toolchain_for
from edgebnn.codegen.planner import Buffer, check_plan, plan_arena
from edgebnn.codegen.writer import c_float
from edgebnn.errors import UnsafeInputError, UnsupportedOpError
from edgebnn.graph import load_graph

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "codegen"
MODELS = ("tiny_bcnn", "ops_mix")
STRICT = ("-std=c99", "-Wall", "-Wextra", "-Werror")


def fixture(name) -> Path:
    path = FIXTURES / f"{name}.tflite"
    assert path.is_file(), f"fixture {path} missing (rebuild with tests/fixtures/codegen/make_fixtures.py)"
    return path


def reference(name):
    data = np.load(FIXTURES / f"{name}.npz")
    return data["x"], data["y"]


def write_sources(files, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        (directory / rel).write_text(text)
    return directory


# ---------------------------------------------------------------- writer/planner


def test_c_float_round_trips_float32_bit_exactly():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.standard_normal(2000) * 10.0 ** rng.integers(-30, 30, 2000),
                             [0.0, -0.0, 1.0, -1.0, 1e-40, 3.4e38, 0.1]]).astype(np.float32)
    for v in values:
        text = c_float(v)
        assert text.endswith("f")
        assert np.float32(text[:-1]).tobytes() == np.float32(v).tobytes() or v == 0.0, (v, text)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_planner_never_overlaps_live_buffers(seed):
    rng = np.random.default_rng(seed)
    bufs = []
    for i in range(40):
        first = int(rng.integers(0, 30))
        bufs.append(Buffer(i, int(rng.integers(1, 5000)), first, first + int(rng.integers(0, 6))))
    plan = plan_arena(bufs)
    check_plan(bufs, plan)
    # sharing happens: the arena is smaller than the sum of the buffers
    assert plan.size < sum(b.size for b in bufs)
    # and never smaller than the peak of live bytes at any op
    peak = max(sum(b.size for b in bufs if b.first <= t <= b.last) for t in range(40))
    assert plan.size >= peak


def test_pack_bits_matches_lce_layout():
    v = np.ones((2, 40), np.float32)
    v[0, 0] = -1.0   # word 0 bit 0
    v[0, 33] = -2.0  # word 1 bit 1
    v[1, 31] = -0.5  # word 0 bit 31
    v[1, 5] = 0.0    # zero packs as +1
    packed = O.pack_bits(v)
    assert packed.dtype == np.int32 and packed.shape == (2, 2)
    assert packed.view(np.uint32).tolist() == [[1, 2], [0x80000000, 0]]


# ---------------------------------------------------------------- generation


@pytest.mark.parametrize("name", MODELS)
def test_generation_is_deterministic(name):
    a = generate(fixture(name), name="m", command="edgebnn export X")
    b = generate(fixture(name).read_bytes(), name="m", command="edgebnn export X")
    assert a.files == b.files
    assert a.files["m.c"].startswith("/*")
    head = a.files["m.c"][:600]
    assert "edgebnn 0.1.0" in head and a.sha256 in head and "edgebnn export X" in head
    assert a.sha256 in a.files["m.h"][:600] and a.sha256 in a.files["Makefile"][:600]


def test_every_call_is_commented_with_op_index_type_and_tensor():
    gen = generate(fixture("ops_mix"), name="m")
    graph = load_graph(fixture("ops_mix"))
    text = gen.files["m.c"]
    for call in gen.ops:
        first = call["ops"][0]
        assert f"/* op {', '.join(str(i) for i in call['ops'])}: " in text
        assert graph.ops[first].type in call["type"]
        assert call["output"] in text


def test_generated_api_and_runtime_files():
    gen = generate(fixture("tiny_bcnn"), name="mnist")
    assert {"mnist.h", "mnist.c", "ebnn.h", "Makefile"} <= set(gen.files)
    h = gen.files["mnist.h"]
    for macro in ("MNIST_INPUT_SIZE 784", "MNIST_OUTPUT_SIZE 10", f"MNIST_ARENA_BYTES {gen.arena_bytes}",
                  "MNIST_INPUT_SHAPE {1, 28, 28, 1}", "MNIST_OUTPUT_SHAPE {1, 10}"):
        assert f"#define {macro}" in h
    assert "int mnist_invoke(const float *input, float *output);" in h
    c = gen.files["mnist.c"]
    assert "malloc" not in c and not re.search(r"\bFILE\b", c) and "printf" not in c
    assert (gen.input_shape, gen.output_shape, gen.input_size, gen.output_size) == ((1, 28, 28, 1), (1, 10), 784, 10)
    assert gen.files["ebnn.h"] == (Path(__file__).resolve().parent.parent / "firmware/runtime/ebnn.h").read_text()
    assert generate_sources(fixture("tiny_bcnn"), name="mnist") == gen.files


def test_name_must_be_a_c_identifier():
    with pytest.raises(UnsafeInputError, match="not a C identifier"):
        generate(fixture("tiny_bcnn"), name="9lives")


def test_unsupported_op_names_op_index_and_supported_set():
    with pytest.raises(UnsupportedOpError) as err:
        generate(fixture("unsupported_exp"))
    msg = str(err.value)
    assert "op 1 (EXP)" in msg
    for op in ("LceBconv2d", "CONV_2D", "FULLY_CONNECTED", "SOFTMAX"):
        assert op in msg


def test_unsupported_option_is_an_error_at_export_time():
    graph = load_graph(fixture("ops_mix"))
    mean = next(op for op in graph.ops if op.type == "MEAN")
    axes = graph.tensors[mean.inputs[1]]
    bad_axes = dataclasses.replace(axes, data=np.array([3], np.int32))
    tensors = list(graph.tensors)
    tensors[axes.index] = bad_axes
    bad = dataclasses.replace(graph, tensors=tuple(tensors))
    with pytest.raises(UnsupportedOpError, match=rf"op {mean.index} \(MEAN.*axes \[3\]"):
        build_nodes(bad)
    bconv = next(op for op in graph.ops if op.type == "LceBconv2d")
    ops = list(graph.ops)
    ops[bconv.index] = dataclasses.replace(bconv, options={**bconv.options, "fused_activation_function": 5})
    with pytest.raises(UnsupportedOpError, match=rf"op {bconv.index} \(LceBconv2d.*activation enum 5"):
        build_nodes(dataclasses.replace(graph, ops=tuple(ops)))


def test_supported_set_covers_the_issue():
    need = {"LceQuantize", "LceDequantize", "LceBconv2d", "LceBMaxPool2d", "CONV_2D", "DEPTHWISE_CONV_2D",
            "FULLY_CONNECTED", "MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN", "ADD", "MUL", "RESHAPE", "SOFTMAX",
            "CONCATENATION", "PAD", "RELU", "RELU6", "TANH", "LOGISTIC"}
    assert need <= set(supported_ops())


def test_binary_dense_pass_shrinks_weights():
    graph = load_graph(fixture("tiny_bcnn"))
    fc_bytes = sum(graph.tensors[op.inputs[1]].nbytes for op in graph.ops if op.type == "FULLY_CONNECTED")
    const_bytes = sum(t.nbytes for t in graph.tensors if t.is_constant and t.dtype in ("float32", "int32"))
    gen = generate(fixture("tiny_bcnn"))
    kernels = [c["kernel"] for c in gen.ops]
    assert kernels.count("ebnn_bdense_ref") == 2 and "ebnn_fully_connected_ref" not in kernels
    # the +-1 dense weights take 1 bit instead of 32 (plus one scale per row)
    assert gen.weights_bytes <= const_bytes - fc_bytes + fc_bytes // 32 + 4 * (32 + 10) + 64
    assert gen.weights_bytes < const_bytes / 4


def test_fusion_reduces_arena():
    fused = generate(fixture("tiny_bcnn"), fuse=True)
    plain = generate(fixture("tiny_bcnn"), fuse=False)
    assert any("fused" in (c["kernel"] or "") for c in fused.ops)
    assert not any("fused" in (c["kernel"] or "") for c in plain.ops)
    assert fused.scratch_bytes > 0 and plain.scratch_bytes == 0
    assert fused.arena_bytes < plain.arena_bytes


def test_c_array_format(tmp_path):
    files = c_array_sources(fixture("tiny_bcnn"), name="net")
    assert set(files) == {"net.h", "net.cc"}
    assert "alignas(16) const unsigned char net_tflite[" in files["net.cc"]
    data = fixture("tiny_bcnn").read_bytes()
    assert f"const unsigned int net_tflite_len = {len(data)};" in files["net.cc"]
    d = write_sources(files, tmp_path)
    main = d / "main.c"
    main.write_text('#include <stdio.h>\n#include "net.h"\nint main(void) {\n'
                    '  unsigned int i, sum = 0;\n  for (i = 0; i < net_tflite_len; ++i) sum = sum * 31u + net_tflite[i];\n'
                    '  printf("%u %u %d\\n", net_tflite_len, sum, (int)((unsigned long)net_tflite % 16));\n  return 0;\n}\n')
    exe = d / "a"
    subprocess.run(["gcc", "-std=c11", "-Wall", "-Werror", "-x", "c", str(d / "net.cc"), "-x", "c", str(main),
                    "-o", str(exe)], check=True, capture_output=True)
    n, checksum, misalign = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()
    want = 0
    for b in data:
        want = (want * 31 + b) % 2**32
    assert (int(n), int(checksum), int(misalign)) == (len(data), want, 0)


# ---------------------------------------------------------------- compile and run


def _compile_all(cc_args, tmp_path):
    """Compile the runtime once and every fixture's model code (fused and not) with ``cc_args``."""
    variants = [(name, fuse) for name in MODELS for fuse in (True, False)]
    sources = []
    for name, fuse in variants:
        files = generate(fixture(name), name=f"{name}_{int(fuse)}", fuse=fuse).files
        d = write_sources(files, tmp_path)
        sources.append(d / f"{name}_{int(fuse)}.c")
    sources += sorted(p for p in tmp_path.glob("ebnn*.c"))
    proc = subprocess.run([*cc_args, "-c", *map(str, sources)], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert len(list(tmp_path.glob("*.o"))) == len(sources)


def test_compiles_strict_c99_on_host(tmp_path):
    _compile_all(["gcc", *STRICT, "-O1"], tmp_path)


def test_makefile_builds_static_library(tmp_path):
    d = write_sources(generate(fixture("ops_mix"), name="mix").files, tmp_path)
    proc = subprocess.run(["make", "-s", "-C", str(d), "CFLAGS=-std=c99 -O1 -Wall -Wextra -Werror"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (d / "libmix.a").is_file()


@pytest.mark.qemu
def test_compiles_for_cortex_m4(tmp_path):
    cc = shutil.which("arm-none-eabi-gcc")
    assert cc, "arm-none-eabi-gcc is needed (Debian package gcc-arm-none-eabi)"
    _compile_all([cc, "-mcpu=cortex-m4", "-mthumb", *STRICT, "-O1"], tmp_path)


@pytest.mark.parametrize("name", MODELS)
def test_matches_lce_reference_outputs(name):
    x, y_lce = reference(name)
    y = predict_c(fixture(name), x)
    assert y.shape == y_lce.shape
    # Float tolerance: the first float convolution, depthwise conv and the
    # dense scale sum in another order than TFLite's optimized kernels
    # (a few float32 ulps); everything bitpacked in between is exact, which
    # the top-1 agreement and the tight bound check.
    np.testing.assert_allclose(y, y_lce, rtol=1e-4, atol=1e-4)
    assert (y.reshape(len(x), -1).argmax(1) == y_lce.reshape(len(x), -1).argmax(1)).all()


def test_optimized_host_build_is_bit_identical_to_O0(tmp_path):
    # -O3 -march=native and the hardware popcount must not change a single bit
    x, _ = reference("ops_mix")
    fast = predict_c(fixture("ops_mix"), x, fuse=False)
    plain = predict_c(fixture("ops_mix"), x, fuse=False, workdir=tmp_path,
                      extra_cflags=("-O0", "-UEBNN_USE_BUILTIN_POPCOUNT"))
    assert fast.tobytes() == plain.tobytes()


@pytest.mark.parametrize("name", MODELS)
def test_fused_and_unfused_are_bit_identical(name):
    x, _ = reference(name)
    a = predict_c(fixture(name), x, fuse=True)
    b = predict_c(fixture(name), x, fuse=False)
    assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("name,fuse", [(m, f) for m in MODELS for f in (True, False)],
                         ids=[f"{m}-{'fused' if f else 'unfused'}" for m in MODELS for f in (True, False)])
def test_opt_kernel_set_is_bit_identical_to_portable(name, fuse):
    """Host builds call the _opt kernels (transposed filters, vectorized loops);
    the portable _ref build gives the same bits."""
    x, _ = reference(name)
    gen = generate(fixture(name), kernels="opt", fuse=fuse)
    assert any(c["kernel"] and c["kernel"].endswith("_opt") for c in gen.ops)
    opt = predict_c(fixture(name), x, fuse=fuse)
    portable = predict_c(fixture(name), x, fuse=fuse, kernels="ref")
    assert opt.tobytes() == portable.tobytes()


def test_opt_kernel_set_on_shipped_mnist_bcnn_with_real_digits(shared_data):
    """The benchmarked model on 2,000 real MNIST test digits: _opt == _ref bit for bit."""
    from edgebnn.datasets import load_dataset
    from edgebnn.pretrained import get_pretrained

    x = load_dataset("mnist", data_dir=shared_data, download=False).x_test[:2000].astype(np.float32)
    path = get_pretrained("mnist-bcnn-binary").tflite_path
    opt = predict_c(path, x)
    portable = predict_c(path, x, kernels="ref")
    assert opt.shape == (2000, 10)
    assert opt.tobytes() == portable.tobytes()


@pytest.mark.parametrize("name,fuse", [("tiny_bcnn", True), ("ops_mix", False)],
                         ids=["tiny_bcnn-fused", "ops_mix-unfused"])
def test_clean_under_address_and_undefined_sanitizers(tmp_path, name, fuse):
    # One build per model keeps the time down: the fused kernel runs in the
    # first, every unfused kernel of ops_mix in the second. A sanitizer
    # report aborts the program (-fno-sanitize-recover), failing predict_c.
    x, y_lce = reference(name)
    flags = ("-O0", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
             "-fno-omit-frame-pointer", "-Wall", "-Wextra", "-Werror")
    y = predict_c(fixture(name), x, workdir=tmp_path, fuse=fuse, extra_cflags=flags)
    np.testing.assert_allclose(y, y_lce, rtol=1e-4, atol=1e-4)


def test_invoke_twice_gives_same_output_and_bench_protocol(tmp_path):
    import json

    x, y_lce = reference("tiny_bcnn")
    exe = build_bench_program(fixture("tiny_bcnn"), tmp_path)
    proc = subprocess.run([str(exe), "2", "5"], input=x[3].astype("<f4").tobytes(), capture_output=True, check=True)
    result = json.loads(proc.stdout)
    assert set(result) == {"times_ns", "cpu_times_ns", "output", "arena_bytes", "weights_bytes", "peak_rss_bytes"}
    assert result["peak_rss_bytes"] is None or result["peak_rss_bytes"] > 0  # VmHWM (Linux)
    assert len(result["times_ns"]) == 5 and all(t > 0 for t in result["times_ns"])
    assert len(result["cpu_times_ns"]) == 5 and all(t > 0 for t in result["cpu_times_ns"])
    np.testing.assert_allclose(result["output"], y_lce[3].ravel(), rtol=1e-4, atol=1e-6)
    native = toolchain_for("native")
    gen = generate(fixture("tiny_bcnn"), target=native.target, kernels=native.kernels)  # the bench program's
    assert (result["arena_bytes"], result["weights_bytes"]) == (gen.arena_bytes, gen.weights_bytes)
    # a short input is refused
    proc = subprocess.run([str(exe), "0", "1"], input=b"\0" * 12, capture_output=True)
    assert proc.returncode == 2 and b"expected 784" in proc.stderr
    # the same input repeated in a batch gives identical outputs (no state left in the arena)
    xs = np.stack([x[0], x[1], x[0]])
    y = predict_c(fixture("tiny_bcnn"), xs)
    assert y[0].tobytes() == y[2].tobytes()


@pytest.mark.qemu
def test_arm64_bench_program_under_qemu_matches_lce(tmp_path):
    import json

    from edgebnn.targets import load_target

    target = load_target("arm64")
    for tool in (target.cc, "qemu-aarch64"):
        assert shutil.which(tool), f"{tool} is needed (see targets/arm64.toml)"
    x, y_lce = reference("ops_mix")
    exe = build_bench_program(fixture("ops_mix"), tmp_path, target=target)
    for i in (0, 5):
        proc = subprocess.run(["qemu-aarch64", "-cpu", "cortex-a72", str(exe), "0", "1"],
                              input=x[i].astype("<f4").tobytes(), capture_output=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        out = np.array(json.loads(proc.stdout)["output"], np.float32)
        # same tolerance and reason as test_matches_lce_reference_outputs
        np.testing.assert_allclose(out, y_lce[i].ravel(), rtol=1e-4, atol=1e-4)
        assert out.argmax() == y_lce[i].ravel().argmax()


@pytest.mark.qemu
@pytest.mark.parametrize("name", MODELS)
def test_opt_kernels_on_arm64_under_qemu_match_portable(tmp_path, name):
    """The opt kernel set compiled for AArch64 (GNU vectors on NEON, four-pixel
    conv blocks, no AVX-512): the same output bits as the portable build."""
    import json

    from edgebnn.targets import load_target

    target = load_target("arm64")
    for tool in (target.cc, "qemu-aarch64"):
        assert shutil.which(tool), f"{tool} is needed (see targets/arm64.toml)"
    x, _ = reference(name)
    outs = {}
    for kernels in ("opt", "ref"):
        exe = build_bench_program(fixture(name), tmp_path / kernels, target=target, kernels=kernels)
        proc = subprocess.run(["qemu-aarch64", "-cpu", "cortex-a72", str(exe), "0", "1"],
                              input=x[:1].astype("<f4").tobytes(), capture_output=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        outs[kernels] = np.array(json.loads(proc.stdout)["output"], np.float32)
    assert outs["opt"].size > 0
    assert outs["opt"].tobytes() == outs["ref"].tobytes()

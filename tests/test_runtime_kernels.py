"""Kernel-level tests of the C runtime (firmware/runtime/) against LCE and TFLite.

The runtime is compiled once per session into a shared library and driven
through ctypes (tests/runtime/ebnn_ctypes.py). Oracles:
- LCE's interpreter for LceBconv2d / LceBMaxPool2d / binary dense: committed
  fixtures (tools/gen_kernel_fixtures.py: five many-branch Larq models, one
  per input-channel count 3/31/32/33/70) compared bit for bit, plus a live
  conversion of a small model at test time (marked tf, slow);
- TFLite's interpreter for the float builtins (fixture), with tolerances
  whose reasons are in tests/runtime/checks.py; numpy for what TFLite's
  converter does not emit as one op (dilated CONV_2D, softmax beta);
- the unfused kernels for the fused row-sliced chain, bit for bit.
"""

import ctypes
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "runtime"))

import checks  # noqa: E402
import ebnn_ctypes as E  # noqa: E402
from fixture_io import load_cases  # noqa: E402

LCE_FIXTURES = checks.load_lce_fixtures()
LCE_CASES = [(c, case) for c, cases, _ in LCE_FIXTURES for case in cases]
LCE_X = {c: extra["x"] for c, _, extra in LCE_FIXTURES}
FLOAT_CASES, FLOAT_EXTRA = load_cases(checks.FIXTURES / "tflite_float.npz")
EDGE_CASES, EDGE_EXTRA = load_cases(checks.FIXTURES / "lce_bconv_edge.npz")


def _lce_id(item):
    import lce_models

    c, case = item
    return lce_models.case_id(case) + f"_op{case['op_index']}"


@pytest.fixture(scope="session")
def rt(tmp_path_factory):
    return E.Runtime(E.build_runtime(tmp_path_factory.mktemp("ebnn_rt")))


# ------------------------------------------------------------------ build
def test_struct_layout_matches_header(tmp_path):
    """The ctypes mirrors have the size of the C structs (guards the bindings)."""
    lines = [f'printf("%s %zu\\n", "{name}", sizeof({name}));' for name in E.STRUCTS]
    src = tmp_path / "sizes.c"
    src.write_text('#include <stdio.h>\n#include "ebnn.h"\nint main(void) {\n'
                   + "\n".join(lines) + "\nreturn 0;\n}\n")
    exe = tmp_path / "sizes"
    subprocess.run(["gcc", *E.CFLAGS, "-I", str(E.RUNTIME), str(src), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    sizes = dict(line.split() for line in out.splitlines())
    for name, cls in E.STRUCTS.items():
        assert int(sizes[name]) == ctypes.sizeof(cls), name


@pytest.mark.qemu
@pytest.mark.parametrize("flags", [
    ["-mcpu=cortex-m4", "-mthumb"],
    ["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"],
    ["-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard"],
    ["-mcpu=cortex-m0", "-mthumb"],
], ids=["m4_soft", "m4_hard", "m7_hard", "m0"])
def test_runtime_cross_compiles_for_cortex_m(tmp_path, flags):
    srcs = [str(s) for s in E.runtime_sources()]
    cmd = ["arm-none-eabi-gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2",
           *flags, "-c", "-I", str(E.RUNTIME), *srcs]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, f"{' '.join(cmd)}\n{res.stderr}"
    assert len(list(tmp_path.glob("*.o"))) == len(srcs) >= 4


def _parse_xplatform(text):
    rows = {}
    for line in text.replace("\r", "").splitlines():
        parts = dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
        if line.startswith("fused_scratch_bytes="):
            rows["scratch"] = int(line.split("=")[1])
        elif "hash" in parts:
            rows[line.split()[0]] = (int(parts["status"]), parts["hash"], int(parts["instructions"]))
    return rows


@pytest.mark.qemu
@pytest.mark.slow
def test_cortex_m4_build_gives_host_bits(tmp_path):
    """tests/runtime/xplatform.c (MNIST-BCNN-shaped conv, fused chains, bconv float/packed,
    same-zero, dense) hashes every output: the Cortex-M4 hard-float build under QEMU
    must print the host's hashes. Also reports emulator instruction counts."""
    src = [str(E.REPO / "tests" / "runtime" / "xplatform.c"), *map(str, E.runtime_sources())]
    host = tmp_path / "xp_host"
    subprocess.run(["gcc", *E.CFLAGS, *E.SANITIZE, "-I", str(E.RUNTIME), *src, "-o", str(host), "-lm"],
                   check=True)
    host_rows = _parse_xplatform(subprocess.run([str(host)], capture_output=True, text=True,
                                                check=True).stdout)
    elf = tmp_path / "xp.elf"
    subprocess.run(["arm-none-eabi-gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2",
                    "-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard",
                    "--specs=picolibc.specs", "--oslib=semihost", "--crt0=semihost",
                    "-Wl,--defsym=__flash=0", "-Wl,--defsym=__flash_size=0x400000",
                    "-Wl,--defsym=__ram=0x20000000", "-Wl,--defsym=__ram_size=0x400000",
                    "-I", str(E.RUNTIME), *src, "-o", str(elf), "-lm"], check=True)
    res = subprocess.run(["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-semihosting-config",
                          "enable=on,target=native", "-icount", "shift=0", "-kernel", str(elf)],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    m4_rows = _parse_xplatform(res.stdout + res.stderr)  # picolibc's semihosted stdout lands on stderr
    assert len(host_rows) == 8 and host_rows.keys() == m4_rows.keys()
    assert host_rows["scratch"] == m4_rows["scratch"] == 6784
    for name, (st, h, _) in ((k, v) for k, v in host_rows.items() if k != "scratch"):
        assert st == 0 and m4_rows[name][0] == 0, name
        assert m4_rows[name][1] == h, name
        assert m4_rows[name][2] > 0, name
    print({k: v[2] for k, v in m4_rows.items() if k != "scratch"})


def test_runtime_compiles_strict_on_host(tmp_path):
    srcs = [str(s) for s in E.runtime_sources()]
    cmd = ["gcc", *E.CFLAGS, "-pedantic", "-Wshadow", "-Wconversion", "-Wno-sign-conversion",
           "-c", "-I", str(E.RUNTIME), *srcs]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, f"{' '.join(cmd)}\n{res.stderr}"
    assert len(list(tmp_path.glob("*.o"))) == len(srcs)


@pytest.mark.slow
def test_all_checks_clean_under_asan_ubsan(tmp_path):
    """Every fixture check again, on a runtime built with ASan+UBSan."""
    lib = E.build_runtime(tmp_path, sanitize=True)
    libasan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True,
                             check=True).stdout.strip()
    env = {"LD_PRELOAD": libasan, "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1", "PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, str(E.REPO / "tests" / "runtime" / "sanitize_driver.py"), str(lib)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert " 0 problems" in res.stdout
    assert "runtime error" not in res.stderr and "AddressSanitizer" not in res.stderr


# ----------------------------------------------------------- quantization
@pytest.mark.parametrize("channels", [1, 3, 31, 32, 33, 64, 70])
def test_quantize_matches_numpy_packing(rt, channels):
    rng = np.random.default_rng(channels)
    x = rng.normal(size=(5, 4, channels)).astype(np.float32)
    x.flat[::7] = 0.0
    x.flat[3::11] = -0.0
    packed = rt.quantize(x)
    assert np.array_equal(packed, checks.np_pack(x))
    # padding bits of the last word are 0, even when every channel is negative
    neg = rt.quantize(-np.ones((2, channels), np.float32))
    if channels % 32:
        assert (neg[:, -1].view(np.uint32) >> (channels % 32) == 0).all()
    back = rt.dequantize(packed, channels)
    assert np.array_equal(back, np.where(x < 0, -1.0, 1.0).astype(np.float32))


def test_popcount_swar_and_builtin_agree(tmp_path):
    src = tmp_path / "pc.c"
    src.write_text(textwrap.dedent("""\
        #include <stdio.h>
        #include "ebnn.h"
        int main(void) {
          uint32_t x = 0x9E3779B9u; long i; long bad = 0;
          for (i = 0; i < 2000000; ++i) {
            x ^= x << 13; x ^= x >> 17; x ^= x << 5;
            if (ebnn_popcount32_swar(x) != __builtin_popcount(x)) ++bad;
            if (ebnn_popcount32_swar(x & (x >> 3)) != __builtin_popcount(x & (x >> 3))) ++bad;
          }
          if (ebnn_popcount32_swar(0u) != 0 || ebnn_popcount32_swar(0xFFFFFFFFu) != 32) ++bad;
          printf("%ld\\n", bad);
          return bad != 0;
        }
        """))
    exe = tmp_path / "pc"
    subprocess.run(["gcc", *E.CFLAGS, "-I", str(E.RUNTIME), str(src), "-o", str(exe)], check=True)
    res = subprocess.run([str(exe)], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == "0"


def test_builtin_popcount_build_matches_lce_too(tmp_path):
    """The native-popcount build (POPCNT on x86, which also takes the 4-channel
    XOR-popcount path) agrees with LCE on every binary fixture case, as the
    SWAR build does (the session's default build)."""
    alt = E.Runtime(E.build_runtime(tmp_path, extra_flags=["-mpopcnt"]))
    problems = {}
    for c, case in LCE_CASES:
        problems[_lce_id((c, case))] = checks.check_lce_case(alt, case, LCE_X[c])
    for case in EDGE_CASES:
        problems[f"edge_op{case['op_index']}"] = checks.check_lce_case(
            alt, case, EDGE_EXTRA[f"x{case['input_size']}"])
    assert len(problems) > 200
    assert {k: v for k, v in problems.items() if v} == {}


# ------------------------------------------------------------- LCE oracle
def test_lce_fixtures_cover_the_grid():
    """Every planned branch became a binary op, and the grid spans every option."""
    seen = set()
    for c, cases, extra in LCE_FIXTURES:
        import lce_models

        ids = {lce_models.case_id(k) for k in cases}
        missing = [e for e in extra["expected_ids"].tolist() if e not in ids]
        assert not missing, (c, missing)
        for k in cases:
            if k["kind"] == "bconv":
                seen.add(("k", k["filter"].shape[1]))
                seen.add(("s", k["stride"][0]))
                seen.add(("d", k["dilation"][0]))
                seen.add(("pad", k["padding"], k["pad_value"] if k["padding"] == "SAME" else None))
                seen.add(("out", k["packed"]))
                seen.add(("act", k["activation"]))
                seen.add(("c", c))
            seen.add(("kind", k["kind"]))
    want = ({("k", k) for k in (1, 3, 5)} | {("s", 1), ("s", 2), ("d", 1), ("d", 2)}
            | {("pad", "SAME", 0), ("pad", "SAME", 1), ("pad", "VALID", None)}
            | {("out", True), ("out", False)} | {("c", c) for c in checks.LCE_CHANNELS}
            | {("act", a) for a in ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")}
            | {("kind", "bconv"), ("kind", "bmaxpool"), ("kind", "bdense")})
    assert want <= seen, want - seen


@pytest.mark.parametrize("item", LCE_CASES, ids=[_lce_id(i) for i in LCE_CASES])
def test_binary_kernel_matches_lce(rt, item):
    c, case = item
    assert checks.check_lce_case(rt, case, LCE_X[c]) == []


@pytest.mark.parametrize("case", EDGE_CASES,
                         ids=[f"in{c['input_size']}_" + __import__("lce_models").case_id(c) for c in EDGE_CASES])
def test_bconv_matches_lce_when_filter_exceeds_input(rt, case):
    """Effective filter (9x9, or 5x5 on 3x3) larger than the input: LCE's same-zero
    correction covers only windows overflowing on one side; the kernel reproduces it."""
    x = EDGE_EXTRA[f"x{case['input_size']}"]
    assert checks.check_lce_case(rt, case, x) == []


def test_naive_float_transform_is_not_lce():
    """Why the kernel reproduces LCE's fused multiplier/bias: the textbook form
    (float)(K - 2p) * mul + bias rounds differently on some outputs, so a
    kernel written that way would not be bit-exact (and this data would catch it)."""
    differ = total = 0
    for c, case in LCE_CASES:
        if case["kind"] != "bconv" or case["packed"] or case["padding"] == "SAME" or case["activation"] != "NONE":
            continue
        mult, bias = case["multiplier"], case["bias"]
        k = case["filter"].shape[1] * case["filter"].shape[2] * case["channels_in"]
        # recover the integer accumulator from LCE's output with the fused form
        m2 = (-mult.astype(np.float64)).astype(np.float32)
        b2 = (bias.astype(np.float64) + k * mult.astype(np.float64)).astype(np.float32)
        lce = case["lce"]
        two_p = np.round((lce - b2) / m2)
        naive = (k - two_p).astype(np.float32) * mult + bias
        differ += int((naive.astype(np.float32) != lce).sum())
        total += lce.size
    assert total > 1000
    assert differ > 0, "the fixtures do not distinguish the naive transform from LCE's"


@pytest.mark.parametrize("n_in", [1, 31, 32, 33, 100])
def test_bdense_multiplier_bias_activation_match_numpy(rt, n_in):
    """acc = n_in - 2 popcount is the exact +-1 dot product; then * multiplier, + bias,
    clamp: one rounding per step, so numpy float32 gives the same bits."""
    rng = np.random.default_rng(n_in)
    x = rng.normal(size=(3, n_in)).astype(np.float32)
    w = np.where(rng.random((7, n_in)) < 0.5, -1.0, 1.0).astype(np.float32)
    mult = rng.uniform(-2, 2, 7).astype(np.float32)
    bias = rng.normal(size=7).astype(np.float32)
    sx = np.where(x < 0, -1.0, 1.0).astype(np.float32)
    acc = (sx @ w.T).astype(np.float32)
    for act, lo, hi in (("NONE", -np.inf, np.inf), ("RELU", 0, np.inf), ("RELU6", 0, 6),
                        ("RELU_N1_TO_1", -1, 1)):
        mine = rt.bdense(rt.quantize(x), n_in, rt.quantize(w), mult, bias, act)
        ref = np.clip(acc * mult + bias, lo, hi).astype(np.float32)
        assert checks.bitexact(mine, ref), act
    assert checks.bitexact(rt.bdense(rt.quantize(x), n_in, rt.quantize(w)), acc)


def test_bconv_rejects_what_lce_rejects(rt):
    xp = rt.quantize(np.ones((4, 4, 3), np.float32))
    filt = rt.quantize(np.ones((2, 3, 3, 3), np.float32))
    thr = np.zeros(2, np.int32)
    with pytest.raises(E.KernelError, match="status 4"):
        rt.bconv2d(xp, 3, filt, padding="SAME", pad_value=0, thresholds=thr)
    with pytest.raises(E.KernelError, match="status 4"):
        rt.bconv2d(xp, 3, filt, padding="SAME", pad_value=0, activation="RELU",
                   multiplier=np.ones(2), bias=np.zeros(2))
    with pytest.raises(E.KernelError, match="status 1"):
        rt.bconv2d(xp, 3, filt, padding="VALID")  # float output without multiplier/bias
    with pytest.raises(E.KernelError, match="status 3"):
        rt.bconv2d(xp, 3, filt, padding="VALID", pad_value=2, thresholds=thr)


@pytest.mark.parametrize("pad_value", [1, 0])
@pytest.mark.parametrize("first", [0, 1])
@pytest.mark.parametrize("act", ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"])
def test_bconv_add_ref_is_the_bconv_then_the_add(rt, pad_value, first, act):
    """ebnn_bconv2d_add_ref = ebnn_bconv2d_ref, then the ADD in the given operand order and its activation."""
    rng = np.random.default_rng(zlib.crc32(f"{pad_value}{first}{act}".encode()))
    xp = rt.quantize(rng.normal(size=(6, 7, 70)).astype(np.float32))
    filt = rt.quantize(rng.normal(size=(24, 3, 3, 70)).astype(np.float32))
    kw = dict(padding="SAME", pad_value=pad_value, multiplier=rng.normal(size=24).astype(np.float32),
              bias=rng.normal(size=24).astype(np.float32))
    y = rt.bconv2d(xp, 70, filt, **kw)
    r = (4 * rng.normal(size=y.shape)).astype(np.float32)
    total = (r + y) if first else (y + r)  # float32 + float32 in NumPy: one IEEE rounding, as in C
    lo, hi = {"NONE": (-np.inf, np.inf), "RELU": (0, np.inf), "RELU6": (0, 6), "RELU_N1_TO_1": (-1, 1)}[act]
    want = np.clip(total, np.float32(lo), np.float32(hi)).astype(np.float32)
    got = rt.bconv2d_add(xp, 70, filt, r, residual_first=first, add_activation=act, **kw)
    assert np.count_nonzero(want != y) > want.size // 2 and checks.bitexact(got, want)


def test_bconv_add_rejects_bad_params(rt):
    xp = rt.quantize(np.ones((4, 4, 3), np.float32))
    filt = rt.quantize(np.ones((2, 3, 3, 3), np.float32))
    r = np.zeros((2, 2, 2), np.float32)
    kw = dict(padding="VALID", multiplier=np.ones(2), bias=np.zeros(2))
    with pytest.raises(E.KernelError, match="status 4"):  # bitpacked output: no float y to add to
        rt.bconv2d_add(xp, 3, filt, r, padding="VALID", thresholds=np.zeros(2, np.int32))
    with pytest.raises(E.KernelError, match="status 3"):
        rt.bconv2d_add(xp, 3, filt, r, residual_first=2, **kw)
    with pytest.raises(E.KernelError, match="status 3"):
        rt.bconv2d_add(xp, 3, filt, r, add_activation="NONE", activation="NONE", pad_value=3,
                       padding="VALID", multiplier=np.ones(2), bias=np.zeros(2))
    assert checks.bitexact(rt.bconv2d_add(xp, 3, filt, r, **kw), rt.bconv2d(xp, 3, filt, **kw))


@pytest.mark.tf
@pytest.mark.slow
def test_live_lce_cross_check(rt):
    """A small model converted now (not from the fixtures): LCE's interpreter vs the kernels."""
    import lce_models

    c = 33
    specs = [dict(k=3, s=2, d=1, padding="same", pad_value=1, out="packed", act="NONE"),
             dict(k=5, s=1, d=2, padding="same", pad_value=0, out="float", act="NONE"),
             dict(k=3, s=1, d=1, padding="valid", pad_value=0, out="packed", act="NONE"),
             dict(k=1, s=1, d=1, padding="valid", pad_value=0, out="float", act="RELU6"),
             dict(k=3, s=1, d=1, padding="same", pad_value=1, out="float", act="NONE")]
    model = lce_models.build_model(c, specs, size=9, seed=99, bmaxpool=[(3, 2, "same")], dense=True)
    tflite = lce_models.convert(model)
    x = np.random.default_rng(99).normal(size=(9, 9, c)).astype(np.float32)
    cases = lce_models.extract_cases(tflite, x)
    ids = {lce_models.case_id(k) for k in cases}
    assert {lce_models.spec_id(s, c) for s in specs} <= ids
    problems = {lce_models.case_id(k): checks.check_lce_case(rt, k, x) for k in cases}
    assert {k: v for k, v in problems.items() if v} == {}
    assert len(cases) == len(specs) + 2  # + LceBMaxPool2d and the binary dense


# ------------------------------------------------------------ float ops
@pytest.mark.parametrize("case", FLOAT_CASES, ids=[checks.float_case_id(c) for c in FLOAT_CASES])
def test_float_kernel_matches_tflite(rt, case):
    mine, ref, atol, reason = checks.run_float_case(rt, case, FLOAT_EXTRA["x"])
    assert mine.shape == ref.shape
    diff = np.abs(mine.astype(np.float64) - ref)
    assert (diff <= atol).all(), f"{reason}: max |diff| {diff.max()}"


def test_float_fixture_covers_every_float_op():
    types = {c["type"] for c in FLOAT_CASES}
    assert types >= {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D",
                     "AVERAGE_POOL_2D", "MEAN", "ADD", "MUL", "SOFTMAX", "CONCATENATION", "PAD",
                     "RELU", "RELU6", "RELU_N1_TO_1", "TANH", "LOGISTIC", "LEAKY_RELU", "HARD_SWISH"}


def _np_conv(x, w, b, stride, dil, padding):
    h, wd, _ = x.shape
    o, kh, kw, _ = w.shape
    oh, ow = E.out_size(h, kh, stride, dil, padding), E.out_size(wd, kw, stride, dil, padding)
    pt = max((oh - 1) * stride + (kh - 1) * dil + 1 - h, 0) // 2 if padding == "SAME" else 0
    pl = max((ow - 1) * stride + (kw - 1) * dil + 1 - wd, 0) // 2 if padding == "SAME" else 0
    out = np.zeros((oh, ow, o))
    xd = x.astype(np.float64)
    for oy in range(oh):
        for ox in range(ow):
            for fy in range(kh):
                for fx in range(kw):
                    iy, ix = oy * stride - pt + fy * dil, ox * stride - pl + fx * dil
                    if 0 <= iy < h and 0 <= ix < wd:
                        out[oy, ox] += w[:, fy, fx, :].astype(np.float64) @ xd[iy, ix]
    return out + b


@pytest.mark.parametrize("k,stride,dil,padding", [(3, 1, 2, "SAME"), (5, 1, 2, "VALID"), (3, 2, 1, "SAME"),
                                                  (2, 1, 3, "SAME")])
def test_conv2d_dilation_matches_numpy(rt, k, stride, dil, padding):
    """Dilated CONV_2D (TFLite's converter emits SPACE_TO_BATCH_ND instead), float64 numpy oracle;
    tolerance: float32 accumulation of <= k*k*4 terms of magnitude < 10."""
    rng = np.random.default_rng(k * 10 + dil)
    x = rng.normal(size=(11, 10, 4)).astype(np.float32)
    w = rng.normal(size=(3, k, k, 4)).astype(np.float32)
    b = rng.normal(size=3).astype(np.float32)
    mine = rt.conv2d(x, w, b, stride=(stride, stride), dilation=(dil, dil), padding=padding)
    np.testing.assert_allclose(mine, _np_conv(x, w, b, stride, dil, padding), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layout", [True, "hwio16"])
@pytest.mark.parametrize("k,stride,dil,padding,cin,cout,act", [
    (3, 1, 1, "VALID", 1, 32, "NONE"), (3, 2, 1, "SAME", 3, 13, "RELU"), (5, 1, 2, "SAME", 4, 8, "RELU6"),
    (1, 1, 1, "VALID", 70, 9, "RELU_N1_TO_1"), (3, 1, 1, "SAME", 60, 8, "NONE"), (3, 1, 1, "SAME", 5, 40, "RELU"),
    (3, 1, 1, "SAME", 60, 44, "NONE")])
def test_conv2d_hwio_layout_is_bit_identical_to_ohwi(rt, k, stride, dil, padding, cin, cout, act, layout):
    """EBNN_FILTER_HWIO and HWIO16 only change the memory layout, not the order of the float operations
    (cin 60 with k 3 exceeds the gathered-patch limit and takes the plain loop; 40 and 44 channels are
    HWIO16 blocks of 16, 16 and a last one of 8 or 12)."""
    rng = np.random.default_rng(cin * 100 + cout)
    x = rng.normal(size=(9, 10, cin)).astype(np.float32)
    w = rng.normal(size=(cout, k, k, cin)).astype(np.float32)
    b = rng.normal(size=cout).astype(np.float32)
    kw = dict(stride=(stride, stride), dilation=(dil, dil), padding=padding, activation=act)
    ohwi = rt.conv2d(x, w, b, **kw)
    p, keep = rt.conv2d_params(x.shape, w, b, hwio=layout, **kw)
    out = np.full_like(ohwi, np.nan)
    rt._call("ebnn_conv2d_ref", ctypes.byref(p), x.ctypes.data_as(E.PF), out.ctypes.data_as(E.PF))
    assert checks.bitexact(out, ohwi)
    del keep


def test_depthwise_dilation_matches_numpy(rt):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(9, 9, 3)).astype(np.float32)
    w = rng.normal(size=(1, 3, 3, 6)).astype(np.float32)
    mine = rt.depthwise_conv2d(x, w, None, depth_multiplier=2, dilation=(2, 2), padding="SAME")
    ref = np.zeros((9, 9, 6))
    for ic in range(3):
        for m in range(2):
            oc = ic * 2 + m
            ref[:, :, oc] = _np_conv(x[:, :, ic:ic + 1], w[0, :, :, oc][None, :, :, None], 0.0, 1, 2, "SAME")[:, :, 0]
    np.testing.assert_allclose(mine, ref, rtol=1e-5, atol=1e-5)


def test_softmax_beta_and_elementwise_broadcast_match_numpy(rt):
    rng = np.random.default_rng(5)
    x = rng.normal(0, 4, size=(3, 17)).astype(np.float32)
    for beta in (1.0, 0.25, 3.0):
        z = beta * (x.astype(np.float64) - x.max(-1, keepdims=True))
        ref = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
        # float32 exp + sum of 17 terms: a few eps relative
        np.testing.assert_allclose(rt.softmax(x, beta), ref, rtol=2e-6, atol=1e-9)
    a = rng.normal(size=(4, 5, 6)).astype(np.float32)
    b = rng.normal(size=(4, 5, 6)).astype(np.float32)
    assert np.array_equal(rt.add(a, b), a + b)
    assert np.array_equal(rt.mul(a, b, "RELU"), np.maximum(a * b, 0))
    assert np.array_equal(rt.mul(a, b[0, 0], "RELU6"), np.clip(a * b[0, 0], 0, 6))
    assert np.array_equal(rt.add(a, b[:1, :1, :1].reshape(1), "RELU_N1_TO_1"),
                          np.clip(a + b[0, 0, 0], -1, 1))


def test_concat_pad_mean_match_numpy(rt):
    rng = np.random.default_rng(6)
    a = rng.normal(size=(3, 4, 5)).astype(np.float32)
    b = rng.normal(size=(3, 4, 2)).astype(np.float32)
    assert np.array_equal(rt.concatenation([a, b], -1), np.concatenate([a, b], -1))
    assert np.array_equal(rt.concatenation([a, a, a], 1), np.concatenate([a, a, a], 1))
    assert np.array_equal(rt.concatenation([a, a], 0), np.concatenate([a, a], 0))
    pads = [(1, 0), (0, 2), (3, 1)]
    assert np.array_equal(rt.pad(a, pads), np.pad(a, pads))
    np.testing.assert_allclose(rt.mean_hw(a), a.mean((0, 1)), rtol=1e-6)


@pytest.mark.parametrize("shape,pads,value", [
    ((1, 7, 6, 5), [(0, 0), (1, 1), (0, 1), (0, 0)], 0.0),   # MeliusNet's spatial pad
    ((2, 3, 4, 5), [(1, 2), (0, 1), (2, 0), (3, 1)], -2.5),  # every dim, the row's both ends
    ((1, 1, 1, 9), [(0, 0), (0, 0), (0, 0), (0, 7)], 1.0),   # the channels only
    ((1, 5, 1, 1), [(0, 1), (2, 2), (1, 1), (1, 1)], 0.0),   # one-float rows
])
def test_pad_rows_match_numpy_bit_for_bit(rt, shape, pads, value):
    rng = np.random.default_rng(len(shape) + sum(map(sum, pads)))
    x = rng.normal(size=shape).astype(np.float32)
    x.flat[: min(3, x.size)] = [np.nan, -0.0, np.inf][: min(3, x.size)]
    got = rt.pad(x, pads, value)
    want = np.pad(x, pads, constant_values=np.float32(value))
    assert got.shape == want.shape and got.tobytes() == want.tobytes()


def test_float_kernels_reject_bad_params(rt):
    x = np.ones((4, 4, 2), np.float32)
    with pytest.raises(E.KernelError, match="status 2"):
        rt.max_pool2d(x, (5, 5), (1, 1), "VALID")  # window larger than the input
    with pytest.raises(E.KernelError, match="status 2"):
        rt.add(x, np.ones(3, np.float32))  # 32 elements do not broadcast over 3
    params, keep = rt.conv2d_params(x.shape, np.ones((1, 3, 3, 2), np.float32), padding="SAME")
    out = np.zeros((4, 4, 1), np.float32)
    fn = rt.lib.ebnn_conv2d_ref
    fn.restype = ctypes.c_int32
    args = (ctypes.byref(params), x.ctypes.data_as(E.PF), out.ctypes.data_as(E.PF))
    assert fn(*args) == 0
    params.activation = 9
    assert fn(*args) == 3  # unknown fused activation
    params.activation, params.padding = 0, 7
    assert fn(*args) == 3  # unknown padding
    assert fn(None, args[1], args[2]) == 1
    del keep


# ---------------------------------------------------------------- fused
FUSED = checks.fused_configs(np.random.default_rng(2024), n=24)


@pytest.mark.parametrize("cfg", FUSED, ids=[checks.fused_id(c) for c in FUSED])
def test_fused_chain_matches_unfused_bit_for_bit(rt, cfg):
    problems, nbytes, whole = checks.check_fused(rt, cfg, np.random.default_rng(zlib.crc32(checks.fused_id(cfg).encode())))
    assert problems == []
    assert nbytes <= whole + 4 * cfg["out_c"]  # never more than the map plus one pixel


def test_fused_mnist_first_block_scratch_is_small(rt):
    """The MNIST BCNN's CONV_2D output (26x26x32 floats = 86.5 KiB) never exists:
    two conv rows plus one pixel are enough (6,784 bytes)."""
    problems, nbytes, whole = checks.check_fused(rt, FUSED[0], np.random.default_rng(0))
    assert problems == []
    assert whole == 26 * 26 * 32 * 4
    assert nbytes == (2 * 26 * 32 + 32) * 4


# ------------------------------------------------------ optimized kernels
# The "opt" kernel set (firmware/runtime/*_opt.c) that host builds call:
# the same results bit for bit as the _ref kernels. Built with the host
# flags of edgebnn.hostprog (-O3 -march=native: AVX-512 VPOPCNTDQ
# intrinsics on a CPU that has them), and with -DEBNN_OPT_PLAIN_C (plain
# loops only, what a compiler without GNU vector extensions gets).
OPT_BUILDS = {"native": ["-O3", "-march=native", "-ffp-contract=off", "-DEBNN_USE_BUILTIN_POPCOUNT"],
              "plain": ["-O3", "-ffp-contract=off", "-DEBNN_OPT_PLAIN_C"]}


_OPT_LIBS = {}


@pytest.fixture(scope="session", params=["native", "native-filter_t", "plain-filter_t"])
def rt_opt(request, tmp_path_factory):
    """The opt kernels; "-filter_t": LceBconv2d gets its export-time transposed filter."""
    build = request.param.split("-")[0]
    if build not in _OPT_LIBS:
        _OPT_LIBS[build] = E.build_runtime(tmp_path_factory.mktemp(f"ebnn_opt_{build}"),
                                           extra_flags=OPT_BUILDS[build])
    return E.Runtime(_OPT_LIBS[build], variant="opt", filter_t=request.param.endswith("filter_t"))


def test_opt_variant_is_called(rt_opt):
    """The opt runtime really resolves the _opt symbols (not a silent fallback)."""
    assert rt_opt.fn("ebnn_bconv2d") == "ebnn_bconv2d_opt"
    assert rt_opt.fn("ebnn_fused_conv_pool_affine_quantize") == "ebnn_fused_conv_pool_affine_quantize_opt"


@pytest.mark.parametrize("item", LCE_CASES, ids=[_lce_id(i) for i in LCE_CASES])
def test_opt_binary_kernel_matches_lce(rt_opt, item):
    c, case = item
    assert checks.check_lce_case(rt_opt, case, LCE_X[c]) == []


@pytest.mark.parametrize("case", EDGE_CASES,
                         ids=[f"in{c['input_size']}_" + __import__("lce_models").case_id(c) for c in EDGE_CASES])
def test_opt_bconv_matches_lce_when_filter_exceeds_input(rt_opt, case):
    assert checks.check_lce_case(rt_opt, case, EDGE_EXTRA[f"x{case['input_size']}"]) == []


OPT_FUSED = FUSED + [
    # shapes that take every fast path (32-channel conv pairs, 64-channel
    # popcount blocks) and their tails (out_c % 32, % 16, % 8 != 0)
    dict(producer="conv", in_shape=(12, 11, 3), out_c=64, k=3, s=1, d=1, padding="SAME", act="RELU",
         pool=((2, 2), (2, 2), "VALID", "NONE"), stages=("MUL", "ADD"), scalar=False),
    dict(producer="conv", in_shape=(13, 14, 2), out_c=48, k=3, s=2, d=1, padding="VALID", act="RELU6",
         pool=((3, 3), (2, 2), "SAME", "RELU"), stages=("ADD",), scalar=True),
    dict(producer="conv", in_shape=(10, 10, 1), out_c=96, k=5, s=1, d=2, padding="SAME", act="NONE",
         pool=None, stages=("MUL",), scalar=False, hwio=True),
    dict(producer="bconv", in_shape=(9, 10, 64), out_c=128, k=3, s=1, d=1, padding="VALID", pad_value=1,
         act="RELU", pool=((2, 2), (2, 2), "VALID", "NONE"), stages=("MUL", "ADD"), scalar=False),
    dict(producer="bconv", in_shape=(8, 9, 70), out_c=80, k=3, s=2, d=1, padding="SAME", pad_value=1,
         act="RELU_N1_TO_1", pool=None, stages=("ADD", "MUL"), scalar=False),
    dict(producer="bconv", in_shape=(9, 9, 40), out_c=16, k=3, s=1, d=1, padding="SAME", pad_value=0,
         act="NONE", pool=((2, 2), (1, 1), "SAME", "NONE"), stages=("MUL",), scalar=False),
]


@pytest.mark.parametrize("cfg", OPT_FUSED, ids=[checks.fused_id(c) for c in OPT_FUSED])
def test_opt_fused_chain_is_bit_identical_to_ref(rt, rt_opt, cfg):
    """Same inputs into the _ref and _opt fused kernels: the same words; and the
    opt fused kernel agrees with the unfused kernels (opt bconv, ref conv)."""
    seed = zlib.crc32(checks.fused_id(cfg).encode())
    got_ref = checks.run_fused(rt, cfg, np.random.default_rng(seed))
    got_opt = checks.run_fused(rt_opt, cfg, np.random.default_rng(seed))
    assert got_ref.size > 0 and np.array_equal(got_ref, got_opt)
    problems, _, _ = checks.check_fused(rt_opt, cfg, np.random.default_rng(seed))
    assert problems == []


@pytest.mark.parametrize("producer", ["conv", "bconv"])
def test_opt_fused_special_floats_match_ref(rt, rt_opt, producer):
    """-0.0, NaN, +-inf and huge values through conv/bconv, pool and stages:
    the opt kernels pack, pool and clamp them as the reference does."""
    rng = np.random.default_rng(7)
    cfg = dict(producer=producer, in_shape=(9, 10, 3 if producer == "conv" else 33), out_c=64, k=3, s=1,
               d=1, padding="SAME", pad_value=1, act="NONE", pool=((2, 2), (2, 2), "VALID", "NONE"),
               stages=("MUL", "ADD"), scalar=False)
    specials = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 3e38, -3e38, 1e-45], np.float32)
    got_ref = checks.run_fused(rt, cfg, np.random.default_rng(3), specials=specials)
    got_opt = checks.run_fused(rt_opt, cfg, np.random.default_rng(3), specials=specials)
    assert np.array_equal(got_ref, got_opt)
    assert rng is not None

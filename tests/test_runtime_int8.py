"""Int8 kernels of the C runtime against TFLite's reference kernels, bit for bit.

Oracle: committed fixtures (tools/gen_int8_fixtures.py) holding, for every
int8 op of several many-branch models quantized by TFLite's converter, the
operands, their quantization and the output of TFLite's reference kernels
(BUILTIN_REF). Each test computes the kernel parameters from the flatbuffer
quantization with edgebnn.codegen.quant (TFLite's Prepare arithmetic), runs
the C kernel through ctypes (tests/runtime/int8_ctypes.py) and requires the
exact int8 output (DEQUANTIZE: the exact float32 bits). No TensorFlow is
needed at test time.
"""

import ctypes
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "runtime"))

import ebnn_ctypes as E  # noqa: E402
import int8_ctypes as Q  # noqa: E402
from fixture_io import load_cases  # noqa: E402

from edgebnn.codegen import quant  # noqa: E402

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "kernels" / "int8"
FIXTURE_FILES = ("conv_c1", "conv_c3", "conv_c8", "conv_c17", "misc", "float_io", "fc_per_channel",
                 "softmax_beta")


def _load():
    cases = []
    for name in FIXTURE_FILES:
        cs, _ = load_cases(FIXTURES / f"{name}.npz")
        cases.extend(cs)
    return cases


CASES = _load()


def _case_id(c):
    o = c["options"]
    parts = [c["model"], f"op{c['op_index']}", c["type"].lower()]
    if "stride_h" in o:
        k = (c["in1_shape"][1:3] if c["type"] in ("CONV_2D", "DEPTHWISE_CONV_2D")
             else (o["filter_height"], o["filter_width"]))
        parts.append(f"k{k[0]}_s{o['stride_h']}")
        if "dilation_h_factor" in o or "dilation_hfactor" in o:
            parts.append(f"d{o.get('dilation_h_factor', o.get('dilation_hfactor'))}")
        parts.append(o["padding"].lower())
    if c["type"] == "DEPTHWISE_CONV_2D":
        parts.append(f"dm{c['out_shape'][-1] // c['in0_shape'][-1]}")
    if c["type"] in ("CONV_2D", "FULLY_CONNECTED"):
        parts.append(f"oc{c['out_shape'][-1]}")
    if c["type"] == "FULLY_CONNECTED":
        parts.append("per_channel" if np.asarray(c["in1_scale"]).size > 1 else "per_tensor")
    if c["type"] == "QUANTIZE":
        parts.append("from_float" if c["in0_dtype"] == "float32" else "requantize")
    if c["type"] in ("ADD", "MUL"):
        parts.append("const" if c.get("in1_const") or c.get("in0_const") else "two_inputs")
    if c["type"] == "SOFTMAX" and o.get("beta", 1.0) != 1.0:
        parts.append(f"beta{o['beta']:g}")
    act = o.get("fused_activation_function")
    if act not in (None, "NONE"):
        parts.append(act.lower())
    return "_".join(parts)


@pytest.fixture(scope="module")
def q(tmp_path_factory):
    return Q.Int8Runtime(E.build_runtime(tmp_path_factory.mktemp("ebnn_int8")))


def _zp(c, key):
    return int(np.asarray(c[f"{key}_zero_point"]).reshape(-1)[0])


def _scale(c, key):
    return np.float32(np.asarray(c[f"{key}_scale"]).reshape(-1)[0])


def _act_range(c):
    return quant.activation_range(c["options"].get("fused_activation_function", "NONE"),
                                  _scale(c, "out"), _zp(c, "out"))


def _strip_batch(shape, v):
    """Drop the leading batch axis of 1 of a tensor of rank >= 2."""
    return v[0] if len(shape) >= 2 and shape[0] == 1 else v


def _samples(c, j):
    """Operand j for each sample (constants repeat), without the batch axis."""
    v = c[f"in{j}"]
    if c.get(f"in{j}_const"):
        return [v] * c["out"].shape[0]
    return [_strip_batch(c[f"in{j}_shape"], s) for s in v]


def _expected(c):
    return [_strip_batch(c["out_shape"], o) for o in c["out"]]


def _window(c):
    o = c["options"]
    d = (o.get("dilation_h_factor", o.get("dilation_hfactor", 1)),
         o.get("dilation_w_factor", o.get("dilation_wfactor", 1)))
    return dict(stride=(o["stride_h"], o["stride_w"]), dilation=d, padding=o["padding"])


def run_conv(q, c, x):
    filt = c["in1"]
    oc = filt.shape[0]
    fs = np.broadcast_to(np.asarray(c["in1_scale"], np.float32).reshape(-1), (oc,))
    mult, shift = quant.conv_multipliers(_scale(c, "in0"), fs, _scale(c, "out"))
    return q.conv2d(x, filt, c.get("in2"), mult, shift, in_zp=_zp(c, "in0"),
                    out_zp=_zp(c, "out"), act_range=_act_range(c), **_window(c))


def run_depthwise(q, c, x):
    filt = c["in1"]
    oc = filt.shape[-1]
    fs = np.broadcast_to(np.asarray(c["in1_scale"], np.float32).reshape(-1), (oc,))
    mult, shift = quant.conv_multipliers(_scale(c, "in0"), fs, _scale(c, "out"))
    return q.depthwise_conv2d(x, filt, c.get("in2"), mult, shift,
                              depth_multiplier=oc // x.shape[-1], in_zp=_zp(c, "in0"),
                              out_zp=_zp(c, "out"), act_range=_act_range(c), **_window(c))


def run_fc(q, c, x):
    ws = np.asarray(c["in1_scale"], np.float32).reshape(-1)
    if ws.size > 1:
        mult, shift = quant.conv_multipliers(_scale(c, "in0"), ws, _scale(c, "out"))
    else:
        m, s = quant.fc_multiplier(_scale(c, "in0"), ws[0], _scale(c, "out"))
        mult, shift = [m], [s]
    out = q.fully_connected(x, c["in1"], c.get("in2"), mult, shift, in_zp=_zp(c, "in0"),
                            w_zp=_zp(c, "in1"), out_zp=_zp(c, "out"), act_range=_act_range(c))
    return out.reshape(np.shape(_expected(c)[0]))


def _binary_operands(c, a, b):
    """(a, b, a_key, b_key) with b the broadcast (smaller) operand."""
    if np.size(b) > np.size(a):
        return b, a, "in1", "in0"
    return a, b, "in0", "in1"


def run_add(q, c, a, b):
    a, b, ka, kb = _binary_operands(c, a, b)
    qp = quant.add_params(_scale(c, ka), _scale(c, kb), _scale(c, "out"))
    return q.add(a, b, a_zp=_zp(c, ka), b_zp=_zp(c, kb), out_zp=_zp(c, "out"), qp=qp,
                 act_range=_act_range(c))


def run_mul(q, c, a, b):
    a, b, ka, kb = _binary_operands(c, a, b)
    m, s = quant.mul_multiplier(_scale(c, ka), _scale(c, kb), _scale(c, "out"))
    return q.mul(a, b, a_zp=_zp(c, ka), b_zp=_zp(c, kb), out_zp=_zp(c, "out"), mult=m, shift=s,
                 act_range=_act_range(c))


def run_quantize(q, c, x):
    if c["in0_dtype"] == "float32":
        return q.quantize(x, _scale(c, "out"), _zp(c, "out"))
    m, s = quant.ratio_multiplier(_scale(c, "in0"), _scale(c, "out"))
    return q.requantize(x, _zp(c, "in0"), _zp(c, "out"), m, s)


def run_dequantize(q, c, x):
    return q.dequantize(x, _scale(c, "in0"), _zp(c, "in0"))


def run_pool(q, c, x):
    o = c["options"]
    fn = q.max_pool2d if c["type"] == "MAX_POOL_2D" else q.average_pool2d
    return fn(x, (o["filter_height"], o["filter_width"]), (o["stride_h"], o["stride_w"]),
              o["padding"], _act_range(c))


def run_mean(q, c, x):
    axes = sorted(int(a) % len(c["in0_shape"]) for a in np.asarray(c["in1"]).reshape(-1))
    assert axes == [1, 2], axes
    m, s = quant.ratio_multiplier(_scale(c, "in0"), _scale(c, "out"))
    out = q.mean_hw(x, _zp(c, "in0"), _zp(c, "out"), m, s)
    return out.reshape(np.shape(_expected(c)[0]))


def run_softmax(q, c, x):
    assert _zp(c, "out") == -128 and _scale(c, "out") == np.float32(1 / 256)
    sp = quant.softmax_params(c["options"].get("beta", 1.0), _scale(c, "in0"))
    return q.softmax(x, sp)


def run_concat(q, c, *xs):
    for j in range(len(xs)):
        assert _scale(c, f"in{j}") == _scale(c, "out") and _zp(c, f"in{j}") == _zp(c, "out")
    axis = c["options"]["axis"] % len(c["out_shape"])
    return q.concatenation(xs, axis - 1 if c["out_shape"][0] == 1 else axis)


def run_pad(q, c, x):
    pads = np.asarray(c["in1"]).reshape(-1, 2)
    if pads.shape[0] == x.ndim + 1:  # drop the batch axis (padded by 0)
        assert tuple(pads[0]) == (0, 0)
        pads = pads[1:]
    return q.pad(x, pads, _zp(c, "out"))


RUNNERS = {"CONV_2D": (run_conv, 1), "DEPTHWISE_CONV_2D": (run_depthwise, 1),
           "FULLY_CONNECTED": (run_fc, 1), "ADD": (run_add, 2), "MUL": (run_mul, 2),
           "QUANTIZE": (run_quantize, 1), "DEQUANTIZE": (run_dequantize, 1),
           "MAX_POOL_2D": (run_pool, 1), "AVERAGE_POOL_2D": (run_pool, 1), "MEAN": (run_mean, 1),
           "SOFTMAX": (run_softmax, 1), "CONCATENATION": (run_concat, None), "PAD": (run_pad, 1)}


def _check(q, c):
    fn, n_in = RUNNERS[c["type"]]
    n_in = c["n_inputs"] if n_in is None else n_in
    operands = [_samples(c, j) for j in range(n_in)]
    expected = _expected(c)
    for i, want in enumerate(expected):
        got = fn(q, c, *[ops[i] for ops in operands])
        want = np.asarray(want)
        assert got.shape == want.shape, (got.shape, want.shape)
        if want.dtype == np.float32:
            assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), f"sample {i}"
        else:
            diff = np.flatnonzero(got.astype(np.int32) != want.astype(np.int32))
            assert diff.size == 0, (f"sample {i}: {diff.size}/{want.size} differ, first at "
                                    f"{diff[:5]}: got {got.reshape(-1)[diff[:5]]} "
                                    f"want {want.reshape(-1)[diff[:5]]}")


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_int8_kernel_matches_tflite_reference(q, case):
    _check(q, case)


def test_fixtures_cover_every_int8_op():
    """The grid really holds what the ids promise (guards a regenerated fixture)."""
    kinds = {}
    for c in CASES:
        kinds.setdefault(c["type"], []).append(c)
    for op in RUNNERS:
        assert op in kinds, op
    ids = {_case_id(c) for c in CASES}
    assert len(ids) == len(CASES)
    conv = [c for c in kinds["CONV_2D"] if c["model"].startswith("conv_c")]
    assert {tuple(c["in1_shape"][1:3]) for c in conv} >= {(1, 1), (3, 3), (5, 5)}
    assert {c["options"]["padding"] for c in conv} == {"SAME", "VALID"}
    assert {c["in0_shape"][-1] for c in conv} == {1, 3, 8, 17}
    assert {c["options"]["fused_activation_function"] for c in conv} >= {"NONE", "RELU", "RELU6"}
    assert all(np.asarray(c["in1_scale"]).size == c["out_shape"][-1] for c in conv)  # per channel
    assert {_window(c)["dilation"] for c in conv} == {(1, 1), (2, 2)}
    assert {_window(c)["stride"] for c in conv} == {(1, 1), (2, 2)}
    dw = kinds["DEPTHWISE_CONV_2D"]
    assert {_window(c)["dilation"] for c in dw} == {(1, 1), (2, 2)}
    assert {c["out_shape"][-1] // c["in0_shape"][-1] for c in dw} == {1, 2}
    assert {c["in0_dtype"] for c in kinds["QUANTIZE"]} == {"float32", "int8"}
    fc_scales = {np.asarray(c["in1_scale"]).size > 1 for c in kinds["FULLY_CONNECTED"]}
    assert fc_scales == {False, True}  # per tensor and per channel
    assert {c["options"]["beta"] for c in kinds["SOFTMAX"]} >= {np.float32(0.3), 2.5, 1.0}


# ------------------------------------------------------------- helpers
def _srdhm_py(a, b):
    if a == b == -(1 << 31):
        return (1 << 31) - 1
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    v = ab + nudge
    return int(v / (1 << 31)) if abs(v) < (1 << 52) else (abs(v) >> 31) * (1 if v >= 0 else -1)


def _rdbp_py(x, e):
    mask = (1 << e) - 1
    rem = x & mask
    thr = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if rem > thr else 0)


def test_fixed_point_helpers_edge_values(q):
    imin, imax = -(1 << 31), (1 << 31) - 1
    assert q.srdhm(imin, imin) == imax
    assert q.srdhm(imax, imax) == imax - 1
    assert q.srdhm(1 << 30, 1 << 30) == 1 << 29
    assert q.srdhm(-3, 1 << 30) == -1  # gemmlowp's nudge: -1.5 -> -1
    assert q.srdhm(3, 1 << 30) == 2
    assert q.rounding_divide_by_pot(5, 1) == 3 and q.rounding_divide_by_pot(-5, 1) == -3
    assert q.rounding_divide_by_pot(-6, 2) == -2 and q.rounding_divide_by_pot(6, 2) == 2
    assert q.rounding_divide_by_pot(-7, 0) == -7
    assert q.mbqm(100, 1 << 30, 0) == 50
    assert q.mbqm(-101, 1 << 30, 0) == -50  # -50.5, the same nudge
    assert q.mbqm(-101, 1 << 30, -1) == -25  # -25.25
    assert q.mbqm(7, 1 << 30, 2) == 14


def test_fixed_point_helpers_random(q):
    rng = np.random.default_rng(7)
    for _ in range(3000):
        a, b = (int(v) for v in rng.integers(-(1 << 31), 1 << 31, size=2))
        assert q.srdhm(a, b) == _srdhm_py(a, b), (a, b)
        e = int(rng.integers(0, 32))
        assert q.rounding_divide_by_pot(a, e) == _rdbp_py(a, e), (a, e)
        m = int(rng.integers(1 << 30, 1 << 31))
        s = int(rng.integers(-31, 8))
        x = int(rng.integers(-(1 << 20), 1 << 20)) >> max(s, 0)
        left, right = max(s, 0), max(-s, 0)
        assert q.mbqm(x, m, s) == _rdbp_py(_srdhm_py(x << left, m), right), (x, m, s)


def test_quant_doctests():
    import doctest

    res = doctest.testmod(quant)
    assert res.attempted >= 15 and res.failed == 0


def test_quantize_multiplier_is_tflite_rounding():
    rng = np.random.default_rng(3)
    for r in np.exp(rng.uniform(-20, 5, size=2000)):
        m, s = quant.quantize_multiplier(r)
        assert (1 << 30) <= m < (1 << 31)
        assert abs(m * 2.0 ** (s - 31) - r) <= 2.0 ** (s - 32) * (1 + 1e-12)
    # a mantissa that rounds up to 2^31 moves to the next exponent
    assert quant.quantize_multiplier(1.0 - 2.0 ** -40) == (1 << 30, 1)
    with pytest.raises(quant.QuantizationError, match="finite value"):
        quant.quantize_multiplier(-1.0)
    with pytest.raises(quant.QuantizationError, match="RELU7"):
        quant.activation_range("RELU7", 0.1, 0)


# ------------------------------------------------------------- statuses
def test_int8_kernels_refuse_bad_params(q):
    x = np.zeros((4, 4, 2), np.int8)
    filt = np.ones((3, 3, 3, 2), np.int8)
    ok = dict(stride=(1, 1), dilation=(1, 1), padding="VALID", in_zp=0, out_zp=0)
    q.conv2d(x, filt, None, [1 << 30] * 3, [0] * 3, act_range=(-128, 127), **ok)
    with pytest.raises(E.KernelError, match="status 2"):
        q.conv2d(x, filt, None, [1 << 30] * 3, [0] * 3, act_range=(5, 4), **ok)
    with pytest.raises(E.KernelError, match="status 2"):
        q.conv2d(x, filt, None, [1 << 30] * 3, [0] * 3, act_range=(-128, 127),
                 **{**ok, "in_zp": 200})
    with pytest.raises(E.KernelError, match="status 4"):
        q.concatenation([x, x], -1, activation="RELU")
    assert q.status("ebnn_int8_softmax_ref", None, None, None) == 1
    assert q.status("ebnn_int8_mean_hw_ref", None, None, None) == 1
    p = Q.Int8SoftmaxParams(1, 0, 1 << 30, 23, -248)
    buf = np.zeros(4, np.int8)
    assert q.status("ebnn_int8_softmax_ref", ctypes.byref(p), Q._p8(buf), Q._p8(buf)) == 2


# ------------------------------------------------------------- layout
def test_int8_struct_layout_matches_header(tmp_path):
    """Sizes and every field offset of the ctypes mirrors equal the C structs."""
    lines = []
    for name, cls in Q.STRUCTS.items():
        lines.append(f'printf("%s sizeof %zu\\n", "{name}", sizeof({name}));')
        for field, _ in cls._fields_:
            lines.append(f'printf("%s {field} %zu\\n", "{name}", offsetof({name}, {field}));')
    src = tmp_path / "sizes.c"
    src.write_text('#include <stddef.h>\n#include <stdio.h>\n#include "ebnn.h"\nint main(void) {\n'
                   + "\n".join(lines) + "\nreturn 0;\n}\n")
    exe = tmp_path / "sizes"
    subprocess.run(["gcc", *E.CFLAGS, "-I", str(E.RUNTIME), str(src), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    got = {(n, f): int(v) for n, f, v in (line.split() for line in out.splitlines())}
    for name, cls in Q.STRUCTS.items():
        assert got[(name, "sizeof")] == ctypes.sizeof(cls), name
        for field, _ in cls._fields_:
            assert got[(name, field)] == getattr(cls, field).offset, (name, field)


@pytest.mark.slow
def test_int8_checks_clean_under_asan_ubsan(tmp_path):
    """Every int8 fixture check again, on a runtime built with ASan+UBSan
    (catches out-of-bounds reads and signed overflow in the kernels)."""
    lib = E.build_runtime(tmp_path, sanitize=True)
    libasan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True,
                             check=True).stdout.strip()
    env = {"LD_PRELOAD": libasan, "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1", "PATH": "/usr/bin:/bin",
           "PYTHONPATH": str(E.REPO)}
    res = subprocess.run([sys.executable, str(E.REPO / "tests" / "runtime" / "sanitize_int8_driver.py"),
                          str(lib)], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert f"{len(CASES)} checks, 0 problems" in res.stdout
    assert "runtime error" not in res.stderr and "AddressSanitizer" not in res.stderr


@pytest.mark.qemu
def test_int8_integer_kernels_need_no_float_on_cortex_m0(tmp_path):
    """An int8-only model links no float code: apart from ebnn_int8_quantize.c
    (the float <-> int8 conversions at a model's float I/O), no int8 runtime
    file references a float helper of libgcc or libm on an FPU-less core."""
    srcs = sorted(p for p in E.RUNTIME.glob("ebnn_int8_*.c") if p.name != "ebnn_int8_quantize.c")
    assert len(srcs) >= 6
    for src in srcs:
        obj = tmp_path / (src.stem + ".o")
        subprocess.run(["arm-none-eabi-gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic",
                        "-O2", "-mcpu=cortex-m0", "-mthumb", "-c", "-I", str(E.RUNTIME), str(src),
                        "-o", str(obj)], check=True)
        undefined = subprocess.run(["arm-none-eabi-nm", "-u", str(obj)], capture_output=True,
                                   text=True, check=True).stdout.split()
        floats = [s for s in undefined if s.startswith(("__aeabi_f", "__aeabi_d", "__aeabi_i2f",
                                                        "__aeabi_ui2f", "__aeabi_l2f"))
                  or s.rstrip("f") in ("round", "exp", "floor", "tanh")]
        assert floats == [], (src.name, floats)

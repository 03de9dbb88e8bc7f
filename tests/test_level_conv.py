"""The level-coded convolution (ebnn_level.c, ebnn_bconv_opt.c): a float
convolution whose input holds the integer codes 0..levels and whose filter is
+-s per output channel, computed as bitplane XOR-popcounts.

- the reference against numpy: the exact integer sum over taps of sign * code,
  then one float multiply and one float add (and the activation), bit for bit;
- the opt kernel against the reference, bit for bit, on a grid: plane counts
  1-4, channel tails, SAME/VALID, strides, dilations, activations, a 1-pixel
  "fully connected" case with thousands of outputs, inputs that are not codes
  (NaN, negative, fractions, huge), with and without the precomputed
  filter popcounts, on 1 and 2 threads;
- bad params return the documented statuses.
"""
import ctypes
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "runtime"))
import checks  # noqa: E402
import ebnn_ctypes as E  # noqa: E402

FLAGS = {"native": ["-O3", "-march=native", "-ffp-contract=off", "-DEBNN_USE_BUILTIN_POPCOUNT", "-DEBNN_THREADS=1",
                    "-pthread"],
         "plain": ["-O3", "-ffp-contract=off", "-DEBNN_OPT_PLAIN_C"]}
_LIBS = {}


@pytest.fixture(scope="module", params=["native", "plain"])
def pair(request, tmp_path_factory):
    if request.param not in _LIBS:
        _LIBS[request.param] = E.build_runtime(tmp_path_factory.mktemp(f"lconv_{request.param}"),
                                               extra_flags=FLAGS[request.param])
    path = _LIBS[request.param]
    return E.Runtime(path), E.Runtime(path, variant="opt", filter_t=True)


def _codes(rng, shape, levels):
    return rng.integers(0, levels + 1, size=shape).astype(np.float32)


def _layer(rng, out_c, k, in_c):
    signs = np.where(rng.random((out_c, k[0], k[1], in_c)) < 0.5, -1, 1).astype(np.int8)
    scale = (rng.random(out_c) * 0.1 + 0.01).astype(np.float32)
    bias = rng.normal(size=out_c).astype(np.float32)
    return signs, scale, bias


def _numpy_level_conv(x, signs, scale, bias, stride, dilation, padding, act):
    """sum(sign * code) exactly (int64), then fl(scale * S) + bias in float32, then the activation."""
    h, w, _ = x.shape
    oc, fh, fw, _ = signs.shape
    oh, ow = (E.out_size(n, f, s, d, padding) for n, f, s, d in ((h, fh, stride[0], dilation[0]),
                                                                    (w, fw, stride[1], dilation[1])))
    eff_h, eff_w = (fh - 1) * dilation[0] + 1, (fw - 1) * dilation[1] + 1
    pt = max((oh - 1) * stride[0] + eff_h - h, 0) // 2 if padding == "SAME" else 0
    pl = max((ow - 1) * stride[1] + eff_w - w, 0) // 2 if padding == "SAME" else 0
    xp = np.zeros((h + eff_h + oh * stride[0], w + eff_w + ow * stride[1], x.shape[2]), np.int64)
    xp[pt:pt + h, pl:pl + w] = x.astype(np.int64)
    s = np.zeros((oh, ow, oc), np.int64)
    for fy in range(fh):
        for fx in range(fw):
            y0, x0 = fy * dilation[0], fx * dilation[1]
            win = xp[y0:y0 + oh * stride[0]:stride[0], x0:x0 + ow * stride[1]:stride[1]]
            s += win @ signs[:, fy, fx, :].astype(np.int64).T
    y = np.float32(scale) * s.astype(np.float32) + np.float32(bias)
    lo, hi = {"NONE": (-np.inf, np.inf), "RELU": (0, np.inf), "RELU6": (0, 6), "RELU_N1_TO_1": (-1, 1)}[act]
    return np.minimum(np.maximum(y, np.float32(lo)), np.float32(hi)).astype(np.float32)


# in_hw, in_c, out_c, k, stride, dilation, padding, levels, act
GRID = [
    ((9, 10), 96, 64, (5, 5), (1, 1), (1, 1), "SAME", 3, "NONE"),     # DoReFa-Net's second layer, small
    ((11, 11), 256, 40, (3, 3), (1, 1), (1, 1), "SAME", 3, "RELU"),
    ((8, 9), 70, 33, (3, 3), (2, 2), (1, 1), "SAME", 1, "NONE"),     # one plane, channel tails
    ((7, 12), 45, 20, (3, 2), (1, 2), (2, 1), "VALID", 7, "RELU6"),  # three planes, dilation
    ((6, 6), 31, 17, (1, 1), (1, 1), (1, 1), "VALID", 15, "RELU_N1_TO_1"),
    ((5, 7), 40, 24, (3, 3), (1, 1), (2, 2), "SAME", 2, "NONE"),     # levels not 2^k - 1
    ((1, 1), 1024, 4096, (1, 1), (1, 1), (1, 1), "VALID", 3, "NONE"),  # a FULLY_CONNECTED row
    ((3, 1), 300, 70, (1, 1), (1, 1), (1, 1), "VALID", 3, "RELU"),   # FULLY_CONNECTED, 3 rows
    ((4, 4), 64, 2200, (3, 3), (1, 1), (1, 1), "SAME", 3, "NONE"),   # more channels than a bconv's opt
    ((1, 2), 64, 5000, (1, 1), (1, 1), (1, 1), "VALID", 3, "NONE"),  # 4 planes' counts over a chunk: no GEMV
]
IDS = [f"{hw[0]}x{hw[1]}x{c}-{o}-k{k[0]}{k[1]}-s{s[0]}-d{d[0]}-{pad}-L{lv}-{act}"
       for hw, c, o, k, s, d, pad, lv, act in GRID]


@pytest.mark.parametrize("case", GRID, ids=IDS)
def test_lconv_ref_is_the_exact_integer_sum(pair, case):
    ref, _ = pair
    hw, in_c, out_c, k, stride, dil, pad, levels, act = case
    rng = np.random.default_rng(zlib.crc32(repr(case).encode()))
    x = _codes(rng, hw + (in_c,), levels)
    signs, scale, bias = _layer(rng, out_c, k, in_c)
    got = ref.lconv2d(x, levels, signs, scale, bias, stride=stride, dilation=dil, padding=pad, activation=act)
    want = _numpy_level_conv(x, signs, scale, bias, stride, dil, pad, act)
    assert got.tobytes() == want.tobytes()
    # and within float rounding of the float convolution it replaces
    conv = ref.conv2d(x, signs.astype(np.float32) * scale[:, None, None, None], bias, stride=stride,
                      dilation=dil, padding=pad, activation=act)
    np.testing.assert_allclose(got, conv, rtol=1e-5, atol=1e-4 * float(np.abs(conv).max() + 1))


def test_lconv_values_that_are_not_codes_map_as_documented(pair):
    """code(x): 0 below 0.5 and for NaN, levels from levels up, else the nearest integer (halves up)."""
    ref, _ = pair
    rng = np.random.default_rng(5)
    odd = np.array([np.nan, -np.inf, -1.0, -0.0, 0.49, 0.5, 1.5, 1.7, 2.49, 2.5, 3.0, 3.2, 1e9, np.inf], np.float32)
    x = rng.choice(odd, size=(6, 6, 40)).astype(np.float32)
    with np.errstate(invalid="ignore"):
        codes = np.where(~(x >= 0.5), 0, np.where(x >= 3, 3, np.floor(x + np.float32(0.5)))).astype(np.float32)
    signs, scale, bias = _layer(rng, 24, (3, 3), 40)
    got = ref.lconv2d(x, 3, signs, scale, bias, padding="SAME")
    assert got.tobytes() == ref.lconv2d(codes, 3, signs, scale, bias, padding="SAME").tobytes()
    assert got.tobytes() == _numpy_level_conv(codes, signs, scale, bias, (1, 1), (1, 1), "SAME", "NONE").tobytes()


@pytest.mark.parametrize("filter_pop", [True, False], ids=["pop", "nopop"])
@pytest.mark.parametrize("case", GRID, ids=IDS)
def test_lconv_opt_is_bit_identical_to_ref(pair, case, filter_pop):
    ref, opt = pair
    hw, in_c, out_c, k, stride, dil, pad, levels, act = case
    rng = np.random.default_rng(zlib.crc32(repr(case).encode()) + 1)
    x = _codes(rng, hw + (in_c,), levels)
    # values that are not codes: both kernels map them the same way
    x.flat[: min(6, x.size)] = [np.nan, -1.0, 0.49, 1.7, 1e9, -0.0][: min(6, x.size)]
    signs, scale, bias = _layer(rng, out_c, k, in_c)
    assert opt.fn("ebnn_lconv2d") == "ebnn_lconv2d_opt"
    kw = dict(stride=stride, dilation=dil, padding=pad, activation=act)
    want = ref.lconv2d(x, levels, signs, scale, bias, **kw)
    got = opt.lconv2d(x, levels, signs, scale, bias, filter_pop=filter_pop, **kw)
    assert checks.bitexact(got, want)


@pytest.mark.parametrize("shape", [((13, 13), 96, 64, (3, 3), "SAME"), ((1, 1), 1024, 1000, (1, 1), "VALID")],
                         ids=["conv", "dense"])
def test_lconv_opt_threads_match_one_thread(pair, shape):
    """A conv shares its pixels; a dense layer (one pixel, 2 planes) its blocks of 64 channels (AVX-512)."""
    ref, opt = pair
    if not hasattr(opt.lib, "ebnn_set_threads"):
        pytest.skip("built without EBNN_THREADS")
    hw, in_c, out_c, k, pad = shape
    rng = np.random.default_rng(3)
    x = _codes(rng, hw + (in_c,), 3)
    signs, scale, bias = _layer(rng, out_c, k, in_c)
    outs = []
    for n in (3, 2, 1):  # threaded first: a one-thread call would leave the right counts on the stack
        opt.lib.ebnn_set_threads(ctypes.c_int32(n))
        outs.append(opt.lconv2d(x, 3, signs, scale, bias, padding=pad))
    opt.lib.ebnn_set_threads(ctypes.c_int32(1))
    assert all(o.tobytes() == outs[0].tobytes() for o in outs)
    assert outs[0].tobytes() == ref.lconv2d(x, 3, signs, scale, bias, padding=pad).tobytes()


def test_lconv_rejects_bad_params(pair):
    ref, opt = pair
    rng = np.random.default_rng(4)
    x = _codes(rng, (5, 5, 8), 3)
    signs, scale, bias = _layer(rng, 4, (3, 3), 8)
    for rt in (ref, opt):
        for levels in (0, 256):
            with pytest.raises(E.KernelError, match="status"):
                rt.lconv2d(x, levels, signs, scale, bias)
    # too small a scratch, a bconv-only pad value, bitpacked output: refused, not computed
    p, keep = ref.bconv2d_params((5, 5), 8, np.zeros((4, 3, 3, 1), np.int32), multiplier=scale, bias=bias)
    out = np.zeros((3, 3, 4), np.float32)
    scratch = np.zeros(64, np.int32)
    for fix, n_bytes in ((lambda q: None, 8), (lambda q: setattr(q.conv, "pad_value", 0), 256),
                         (lambda q: setattr(q.conv, "activation", E.ACT["RELU"]), 256)):
        lp = E.LConv2DParams(p, 3, 0, None)
        fix(lp)
        for name in ("ebnn_lconv2d_ref", "ebnn_lconv2d_opt"):
            fn = getattr(ref.lib, name)
            fn.restype = ctypes.c_int32
            st = fn(ctypes.byref(lp), x.ctypes.data_as(E.PF), out.ctypes.data_as(E.PF),
                    scratch.ctypes.data_as(E.PI), ctypes.c_size_t(n_bytes))
            assert st != 0, (name, n_bytes)
    del keep

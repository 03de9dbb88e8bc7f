"""The "opt" kernels (ebnn_bconv_opt.c, ebnn_conv_opt.c, ebnn_float_opt.c, ...) against
the _ref kernels, bit for bit, on a grid of shapes: odd channel counts (tails
of the 16/32-channel blocks and of the 4- and 6-pixel tiles), padding, strides,
dilations, every activation. Both libraries are built from the same sources:
the opt one with the host flags (-O3 -march=native: AVX2 or AVX-512 here),
and with -DEBNN_OPT_PLAIN_C (the scalar fallback). Bitpacked results and
floats compare exactly: the opt kernels do the same IEEE operations in the
same order per output (-ffp-contract=off)."""
import ctypes
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "runtime"))
import checks  # noqa: E402
import ebnn_ctypes as E  # noqa: E402

FLAGS = {"native": ["-O3", "-march=native", "-ffp-contract=off", "-DEBNN_USE_BUILTIN_POPCOUNT"],
         "plain": ["-O3", "-ffp-contract=off", "-DEBNN_OPT_PLAIN_C"]}
_LIBS = {}


def _lib(build, tmp_path_factory):
    if build not in _LIBS:
        _LIBS[build] = E.build_runtime(tmp_path_factory.mktemp(f"opt_{build}"), extra_flags=FLAGS[build])
    return _LIBS[build]


@pytest.fixture(scope="module", params=["native", "plain"])
def pair(request, tmp_path_factory):
    """(ref runtime, opt runtime with the transposed filter) from one library build."""
    path = _lib(request.param, tmp_path_factory)
    return E.Runtime(path), E.Runtime(path, variant="opt", filter_t=True)


# in_hw, in_c, out_c, k, stride, dilation, padding, pad_value, act, packed output
BCONV = [
    ((9, 10), 64, 64, 3, 1, 1, "SAME", 1, "NONE", False),
    ((9, 10), 64, 64, 3, 1, 1, "SAME", 1, "NONE", True),
    ((7, 7), 512, 512, 3, 1, 1, "SAME", 1, "NONE", False),
    ((8, 9), 70, 80, 3, 2, 1, "SAME", 1, "RELU", False),
    ((8, 9), 70, 80, 3, 2, 1, "SAME", 1, "RELU", True),
    ((11, 5), 33, 17, 3, 1, 2, "VALID", 1, "RELU_N1_TO_1", False),
    ((6, 13), 3, 7, 5, 1, 1, "SAME", 1, "RELU6", True),
    ((12, 12), 256, 48, 1, 2, 1, "VALID", 1, "NONE", False),
    ((10, 11), 96, 40, 3, 1, 1, "SAME", 0, "NONE", False),  # same-zero: the reference's correction
    ((7, 7), 512, 512, 3, 1, 1, "SAME", 0, "NONE", False),
    ((9, 8), 64, 64, 3, 2, 1, "SAME", 0, "NONE", False),
    ((6, 9), 70, 24, 5, 1, 2, "SAME", 0, "NONE", False),
    ((3, 4), 40, 16, 5, 1, 1, "SAME", 0, "NONE", False),  # window larger than the input
    ((5, 6), 64, 1040, 3, 1, 1, "SAME", 0, "NONE", False),  # taps x channels over the precomputed sums
    # AVX2 nibble-split path: chunks across row ends, channel tails past 16, split windows up to
    # 256 words (9 * 28) and above them the unsplit tile (9 * 29 words)
    ((56, 5), 64, 64, 3, 1, 1, "SAME", 1, "RELU", False),
    ((5, 6), 896, 24, 3, 1, 1, "SAME", 1, "NONE", True),
    ((5, 6), 928, 24, 3, 1, 1, "SAME", 1, "NONE", False),
    ((13, 7), 160, 200, 3, 1, 1, "VALID", 1, "RELU6", False),
    ((4, 4), 32, 2048, 1, 1, 1, "VALID", 1, "NONE", True),
    ((5, 23), 2048, 32, 3, 1, 1, "SAME", 1, "NONE", True),  # 1152 window words: delegated
    ((14, 14), 128, 256, 2, 2, 1, "VALID", 1, "NONE", True),
    # fewer pixels than a tile (AVX-512: the filter in one ordered pass): dense layers' one pixel with
    # 4096 channels, 3 and 2 pixels with channel tails, padded windows, windows of 27 and 2 words
    ((1, 1), 1024, 4096, 1, 1, 1, "VALID", 1, "NONE", False),
    ((1, 1), 1024, 4096, 1, 1, 1, "VALID", 1, "NONE", True),
    ((1, 3), 96, 100, 3, 1, 1, "SAME", 0, "NONE", False),
    ((2, 1), 70, 40, 3, 1, 1, "SAME", 1, "NONE", True),
    ((1, 2), 33, 17, 1, 1, 1, "VALID", 1, "RELU6", False),
    # around the AVX-512 tile of 6 pixels (4 elsewhere): 5 (the GEMV's most), 7 (one tile and a partial one)
    ((1, 5), 64, 48, 1, 1, 1, "VALID", 1, "NONE", True),
    ((1, 5), 64, 4096, 1, 1, 1, "VALID", 1, "NONE", False),  # 5 x 4096 counts: more than one chunk holds
    ((1, 7), 96, 40, 3, 1, 1, "SAME", 1, "NONE", False),
]


def _bid(c):
    (h, w), ci, co, k, s, d, pad, pv, act, packed = c
    return f"{h}x{w}_c{ci}_o{co}_k{k}_s{s}_d{d}_{pad.lower()}{pv}_{act.lower()}_{'packed' if packed else 'float'}"


def _bconv_args(c, rng):
    """(packed input, in_c, filter, keyword arguments of Runtime.bconv2d) of BCONV case c."""
    (h, w), ci, co, k, s, d, pad, pv, act, packed = c
    x = rng.integers(-2**31, 2**31, size=(h, w, E.words(ci)), dtype=np.int64).astype(np.int32)
    filt = rng.integers(-2**31, 2**31, size=(co, k, k, E.words(ci)), dtype=np.int64).astype(np.int32)
    if ci % 32:  # padding bits are 0 in packed tensors
        mask = np.int64((1 << (ci % 32)) - 1).astype(np.int32)
        x[..., -1] &= mask
        filt[..., -1] &= mask
    kw = dict(stride=(s, s), dilation=(d, d), padding=pad, pad_value=pv)
    if packed:
        kw["thresholds"] = rng.integers(0, k * k * ci, size=co).astype(np.int32)
    else:
        kw.update(activation=act, multiplier=rng.normal(size=co).astype(np.float32),
                  bias=rng.normal(size=co).astype(np.float32))
    return x, ci, filt, kw


def _bconv_run(rt, c, rng):
    x, ci, filt, kw = _bconv_args(c, rng)
    return rt.bconv2d(x, ci, filt, **kw)


@pytest.mark.parametrize("case", BCONV, ids=[_bid(c) for c in BCONV])
def test_bconv_opt_is_bit_identical_to_ref(pair, case):
    ref, opt = pair
    assert opt.fn("ebnn_bconv2d") == "ebnn_bconv2d_opt"
    seed = zlib.crc32(_bid(case).encode())
    want = _bconv_run(ref, case, np.random.default_rng(seed))
    got = _bconv_run(opt, case, np.random.default_rng(seed))
    assert want.size > 0 and checks.bitexact(got, want)


BCONV_ADD = [c for c in BCONV if not c[9]]  # float output: the ones a residual ADD can follow


@pytest.mark.parametrize("case", BCONV_ADD, ids=[_bid(c) for c in BCONV_ADD])
def test_bconv_add_opt_is_bit_identical_to_ref(pair, case):
    """ebnn_bconv2d_add: the residual added in the opt transform, both operand orders, the ADD's activations."""
    ref, opt = pair
    assert opt.fn("ebnn_bconv2d_add") == "ebnn_bconv2d_add_opt"
    seed = zlib.crc32(_bid(case).encode())
    x, ci, filt, kw = _bconv_args(case, np.random.default_rng(seed))
    y = ref.bconv2d(x, ci, filt, **kw)
    residual = np.random.default_rng(seed + 1).normal(size=y.shape).astype(np.float32)
    first = seed % 2
    act = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")[seed % 4]
    want = ref.bconv2d_add(x, ci, filt, residual, residual_first=first, add_activation=act, **kw)
    got = opt.bconv2d_add(x, ci, filt, residual, residual_first=first, add_activation=act, **kw)
    assert want.size > 0 and checks.bitexact(got, want)
    assert not checks.bitexact(got, y)  # the residual was added


# in_hwc, out_c, k, stride, dilation, padding, act
CONV = [((9, 10, 3), 32, 3, 2, 1, "SAME", "RELU"), ((12, 11, 64), 128, 1, 1, 1, "VALID", "NONE"),
        ((8, 8, 5), 13, 3, 1, 2, "SAME", "RELU6"), ((15, 15, 3), 64, 7, 2, 1, "SAME", "NONE"),
        ((7, 9, 256), 512, 1, 2, 1, "VALID", "RELU_N1_TO_1"), ((6, 6, 70), 9, 3, 1, 1, "SAME", "NONE"),
        # the blocked GEMM path (ebnn_conv_opt.c): chunks across row ends, 8-channel tails, tiles
        # padded past the last pixel, patches on borders and with dilation
        ((7, 7, 256), 512, 1, 1, 1, "VALID", "NONE"), ((14, 13, 128), 256, 1, 1, 1, "VALID", "RELU"),
        ((23, 21, 3), 16, 3, 2, 1, "SAME", "RELU"), ((9, 11, 16), 24, 3, 1, 1, "SAME", "RELU6"),
        ((10, 9, 8), 40, 3, 1, 2, "SAME", "NONE"), ((5, 5, 56), 8, 3, 2, 1, "VALID", "RELU_N1_TO_1"),
        ((11, 3, 5), 16, 5, 1, 1, "SAME", "NONE"), ((6, 7, 64), 32, 2, 2, 1, "SAME", "RELU"),
        # K over 512 (BinaryDenseNet's 1x1 transitions): blocked only when every window is inside
        ((14, 14, 544), 192, 1, 1, 1, "VALID", "NONE"), ((7, 7, 576), 256, 1, 1, 1, "SAME", "RELU"),
        ((9, 8, 70), 24, 3, 1, 1, "VALID", "NONE"), ((10, 9, 70), 16, 3, 2, 2, "VALID", "RELU6"),
        ((6, 6, 70), 16, 3, 1, 1, "SAME", "NONE"),
        # one input channel, stride_w 1 (cvo_mono: padded row buffers, 6-pixel tiles past the row
        # end, 8-channel tails): the MNIST stem, 5x5 same, a filter wider than the input
        ((28, 28, 1), 32, 3, 1, 1, "VALID", "NONE"), ((9, 31, 1), 8, 5, 1, 1, "SAME", "RELU6"),
        ((11, 13, 1), 24, 3, 1, 1, "SAME", "RELU_N1_TO_1"), ((6, 5, 1), 16, 7, 1, 1, "SAME", "RELU"),
        ((15, 15, 1), 16, 3, 2, 1, "SAME", "RELU")]


@pytest.mark.parametrize("case", CONV, ids=[f"{'x'.join(map(str, c[0]))}_o{c[1]}_k{c[2]}_s{c[3]}_d{c[4]}_"
                                            f"{c[5].lower()}_{c[6].lower()}" for c in CONV])
@pytest.mark.parametrize("layout", ["hwio", "hwio16"])
def test_conv2d_opt_is_bit_identical_to_ref(pair, case, layout):
    """opt on an HWIO or HWIO16 filter (both read by the blocked GEMM) against ref on HWIO."""
    ref, opt = pair
    shape, co, k, s, d, pad, act = case
    rng = np.random.default_rng(zlib.crc32(repr(case).encode()))
    x = rng.normal(size=shape).astype(np.float32)
    w = rng.normal(size=(co, k, k, shape[2])).astype(np.float32)
    b = rng.normal(size=co).astype(np.float32)
    kw = dict(stride=(s, s), dilation=(d, d), padding=pad, activation=act)
    assert opt.fn("ebnn_conv2d") == "ebnn_conv2d_opt"
    got = opt.conv2d(x, w, b, hwio="hwio16" if layout == "hwio16" else True, **kw)
    assert checks.bitexact(got, ref.conv2d(x, w, b, hwio=True, **kw))


def _call_float(rt, name, p, *arrays, out):
    rt._call(name, ctypes.byref(p), *[a.ctypes.data_as(E.PF) for a in arrays], out.ctypes.data_as(E.PF))
    return out


DW = [((9, 10, 32), 3, 1, 1, "SAME", "RELU"), ((8, 9, 13), 3, 2, 1, "SAME", "NONE"),
      ((10, 10, 64), 5, 1, 2, "VALID", "RELU6"), ((7, 7, 3), 3, 2, 1, "VALID", "RELU_N1_TO_1"),
      # whole vectors in registers: 2, 3 and 4 + 3 of them per pass over the taps
      ((11, 12, 16), 3, 2, 1, "SAME", "RELU"), ((6, 7, 24), 3, 1, 1, "SAME", "NONE"),
      ((5, 6, 56), 3, 1, 1, "SAME", "RELU6")]


@pytest.mark.parametrize("case", DW, ids=[f"{'x'.join(map(str, c[0]))}_k{c[1]}_s{c[2]}_d{c[3]}_{c[4].lower()}_"
                                          f"{c[5].lower()}" for c in DW])
def test_depthwise_opt_is_bit_identical_to_ref(pair, case):
    ref, opt = pair
    shape, k, s, d, pad, act = case
    rng = np.random.default_rng(zlib.crc32(repr(case).encode()))
    x = rng.normal(size=shape).astype(np.float32)
    w = rng.normal(size=(1, k, k, shape[2])).astype(np.float32)
    b = rng.normal(size=shape[2]).astype(np.float32)
    oh = E.out_size(shape[0], k, s, d, pad)
    ow = E.out_size(shape[1], k, s, d, pad)
    p = E.DepthwiseConv2DParams(shape[0], shape[1], shape[2], 1, k, k, s, s, d, d, E.PADDING[pad], E.ACT[act],
                                w.ctypes.data_as(E.PF), b.ctypes.data_as(E.PF))
    want = _call_float(ref, "ebnn_depthwise_conv2d_ref", p, x, out=np.full((oh, ow, shape[2]), np.nan, np.float32))
    got = _call_float(opt, "ebnn_depthwise_conv2d_opt", p, x, out=np.full((oh, ow, shape[2]), np.nan, np.float32))
    assert checks.bitexact(got, want)


@pytest.mark.parametrize("op", ["add", "mul"])
@pytest.mark.parametrize("b_size", [1, 13, 7 * 13])
@pytest.mark.parametrize("act", ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"])
def test_add_mul_opt_are_bit_identical_to_ref(pair, op, b_size, act):
    ref, opt = pair
    rng = np.random.default_rng(b_size)
    a = (rng.normal(size=7 * 13) * 3).astype(np.float32)
    a[:4] = [0.0, -0.0, np.inf, np.nan]
    b = (rng.normal(size=b_size) * 3).astype(np.float32)
    p = E.BinaryParams(a.size, b.size, E.ACT[act])
    want = _call_float(ref, f"ebnn_{op}_ref", p, a, b, out=np.full(a.shape, 5.0, np.float32))
    got = _call_float(opt, f"ebnn_{op}_opt", p, a, b, out=np.full(a.shape, 5.0, np.float32))
    assert checks.bitexact(got, want)


# rows, in_features, out_features, bias, act: tails of the 8- and 64-output blocks, one output
FC = [(1, 512, 1000, True, "NONE"), (3, 37, 13, True, "RELU"), (2, 5, 8, False, "RELU6"),
      (1, 1, 1, True, "RELU_N1_TO_1"), (4, 300, 7, False, "NONE"), (2, 130, 203, True, "RELU6")]


@pytest.mark.parametrize("io", [False, True], ids=["oi", "io"])
@pytest.mark.parametrize("case", FC, ids=[f"r{c[0]}_i{c[1]}_o{c[2]}_{'bias' if c[3] else 'nobias'}_{c[4].lower()}"
                                          for c in FC])
def test_fully_connected_opt_is_bit_identical_to_ref(pair, case, io):
    """Both weight layouts, against the reference on the flatbuffer's [out][in] layout (the
    [in][out] path: blocks of 64 outputs and their tails, inputs 4 at a time and the rest)."""
    ref, opt = pair
    rows, n_in, n_out, bias, act = case
    rng = np.random.default_rng(zlib.crc32(repr(case).encode()))
    x = rng.normal(size=(rows, n_in)).astype(np.float32)
    x.flat[:3] = [np.inf, -0.0, np.nan][:x.size]
    w = rng.normal(size=(n_out, n_in)).astype(np.float32)
    b = rng.normal(size=n_out).astype(np.float32) if bias else None
    want = ref.fully_connected(x, w, b, act)
    for rt in (ref, opt):
        assert checks.bitexact(rt.fully_connected(x, w, b, act, io=io), want)
    bad = E.FullyConnectedParams(rows, n_in, n_out, E.ACT[act], w.ctypes.data_as(E.PF), None, 2)
    for rt, name in ((ref, "ebnn_fully_connected_ref"), (opt, "ebnn_fully_connected_opt")):
        with pytest.raises(E.KernelError, match="status 3"):  # EBNN_ERROR_BAD_ENUM
            _call_float(rt, name, bad, x, out=np.full((rows, n_out), 5.0, np.float32))


@pytest.mark.parametrize("channels", [32, 64, 96, 70, 5])
def test_quantize_opt_is_bit_identical_to_ref(pair, channels):
    ref, opt = pair
    rng = np.random.default_rng(channels)
    x = rng.normal(size=(7, channels)).astype(np.float32)
    x.flat[:6] = [0.0, -0.0, np.nan, -np.nan, np.inf, -np.inf]  # -0.0 and -NaN pack as +1 (bit 0)
    p = E.QuantizeParams(7, channels)
    words = E.words(channels)
    outs = []
    for rt, name in ((ref, "ebnn_quantize_ref"), (opt, "ebnn_quantize_opt")):
        out = np.full((7, words), 0x5A5A5A5A, np.int32)
        rt._call(name, ctypes.byref(p), x.ctypes.data_as(E.PF), out.ctypes.data_as(E.PI))
        outs.append(out)
    assert checks.bitexact(outs[1], outs[0])
    bits = np.zeros((7, words * 32), np.uint64)
    bits[:, :channels] = x < 0  # numpy's x < 0: False for -0.0 and NaN
    want = (bits.reshape(7, words, 32) << np.arange(32, dtype=np.uint64)).sum(-1).astype(np.uint32)
    assert np.array_equal(outs[1].view(np.uint32), want)


# in_hwc, filter, stride, padding, act: windows clamped at every border, a window as large as the input
POOL = [((9, 10, 13), (2, 2), (2, 2), "VALID", "NONE"), ((9, 10, 13), (3, 3), (2, 2), "SAME", "RELU"),
        ((7, 7, 64), (7, 7), (1, 1), "VALID", "NONE"), ((8, 5, 3), (3, 2), (1, 2), "SAME", "RELU6"),
        ((5, 6, 40), (5, 5), (3, 1), "SAME", "RELU_N1_TO_1")]


@pytest.mark.parametrize("kind", ["max", "average"])
@pytest.mark.parametrize("case", POOL, ids=[f"{'x'.join(map(str, c[0]))}_f{c[1][0]}x{c[1][1]}_s{c[2][0]}{c[2][1]}_"
                                            f"{c[3].lower()}_{c[4].lower()}" for c in POOL])
def test_pool_opt_is_bit_identical_to_ref(pair, kind, case):
    ref, opt = pair
    shape, filt, stride, pad, act = case
    rng = np.random.default_rng(zlib.crc32(repr(case).encode()))
    x = (rng.normal(size=shape) * 3).astype(np.float32)
    x.flat[:4] = [np.inf, -0.0, np.nan, -np.inf]
    method = f"{kind}_pool2d"
    assert opt.fn(f"ebnn_{method}") == f"ebnn_{method}_opt"
    got, want = getattr(opt, method)(x, filt, stride, pad, act), getattr(ref, method)(x, filt, stride, pad, act)
    assert checks.bitexact(got, want)


@pytest.mark.parametrize("shape", [(6, 6, 43), (5, 7, 8)])
def test_max_pool_opt_keeps_the_first_maximum(pair, shape):
    """Ties of -0.0 and +0.0 and NaN taps everywhere: the vector compare-select keeps, per lane,
    the first of equal maxima and skips NaN exactly as the reference's running compare."""
    ref, opt = pair
    rng = np.random.default_rng(7)
    x = rng.choice(np.array([-0.0, 0.0, np.nan, 1.0, -1.0, -np.inf], np.float32), size=shape)
    for filt, stride, pad in [((2, 2), (2, 2), "VALID"), ((3, 3), (1, 1), "SAME")]:
        got, want = opt.max_pool2d(x, filt, stride, pad, "NONE"), ref.max_pool2d(x, filt, stride, pad, "NONE")
        assert checks.bitexact(got, want)
        zero = want == 0
        assert (zero & np.signbit(want)).any() and (zero & ~np.signbit(want)).any()  # both zeros reach it


# a shape, b shape: b repeated along leading dims (the fast path), a full b, a scalar, and
# broadcasts the fast path leaves to the reference (b with a 1 inside its block, a broadcast)
ELTWISE = [((1, 40, 40, 24), (24,)), ((1, 9, 7, 13), (1, 9, 7, 13)), ((1, 50, 50, 8), (1,)),
           ((1, 6, 5, 32), (1, 1, 5, 32)), ((1, 6, 5, 3), (1, 6, 5, 1)), ((1, 1, 5, 3), (1, 4, 5, 3))]


@pytest.mark.parametrize("op", ["sub", "sub_relu", "sub_relu_n1_to_1", "sub_none", "minimum", "maximum", "prelu"])
@pytest.mark.parametrize("shapes", ELTWISE, ids=["x".join(map(str, a)) + "_b" + "x".join(map(str, b))
                                                 for a, b in ELTWISE])
def test_eltwise_opt_is_bit_identical_to_ref(pair, op, shapes):
    ref, opt = pair
    a_shape, b_shape = shapes
    rng = np.random.default_rng(zlib.crc32(repr(shapes).encode()))
    a = (rng.normal(size=a_shape) * 3).astype(np.float32)
    a.flat[:5] = [0.0, -0.0, np.inf, -np.inf, np.nan]
    b = (rng.normal(size=b_shape) * 3).astype(np.float32)
    b.flat[-1] = np.nan  # PRELU: a NaN alpha reaches the x < 0 lanes only
    op, _, act_name = op.partition("_") if op.startswith("sub") else (op, "", "")
    act = (act_name.upper() or "RELU6") if op == "sub" else "NONE"
    assert opt.fn(f"ebnn_{op}") == f"ebnn_{op}_opt"
    want = ref.broadcast(op, a, b, act)
    got = opt.broadcast(op, a, b, act)
    assert checks.bitexact(got, want)

"""Kernel checks shared by tests/test_runtime_kernels.py and sanitize_driver.py.

Each ``check_*`` runs the C runtime on one case and returns a list of
problems (empty when it agrees). Bitpacked and LCE float results compare
bit for bit; TFLite float results with the tolerances written beside them.
"""

from pathlib import Path

import numpy as np

from ebnn_ctypes import words

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "kernels"
LCE_CHANNELS = (3, 31, 32, 33, 70)
F32_EPS = float(np.finfo(np.float32).eps)


def np_pack(x):
    """numpy reference of LCE's bitpacking along the last axis."""
    x = np.asarray(x, np.float32)
    c = x.shape[-1]
    bits = np.zeros(x.shape[:-1] + (words(c) * 32,), np.uint64)
    bits[..., :c] = x < 0
    bits = bits.reshape(x.shape[:-1] + (words(c), 32))
    packed = (bits << np.arange(32, dtype=np.uint64)).sum(-1).astype(np.uint32)
    return packed.view(np.int32)


def bitexact(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


# --------------------------------------------------------------------- LCE
def check_lce_case(rt, case, x):
    """Run one LCE fixture case (bconv / bmaxpool+bconv / bdense) on input x."""
    xp = rt.quantize(x)
    if case["kind"] == "bdense":
        w = case["weights"]
        if not np.isin(w, (-1.0, 1.0)).all():
            return ["FULLY_CONNECTED weights are not all +-1"]
        mine = rt.bdense(rt.quantize(x.reshape(-1)), x.size, rt.quantize(w), bias=case.get("bias"),
                         activation=case.get("act", "NONE"))
        return [] if bitexact(mine.reshape(-1), case["lce"]) else [
            f"bdense differs: max |diff| {np.abs(mine.reshape(-1) - case['lce']).max()}"]
    inp = xp
    if case["kind"] == "bmaxpool":
        inp = rt.bmaxpool2d(xp, x.shape[-1], case["pool_filter"], case["pool_stride"],
                            case["pool_padding"])
    kw = dict(stride=case["stride"], dilation=case["dilation"], padding=case["padding"],
              pad_value=case["pad_value"], activation=case["activation"])
    if case["packed"]:
        mine = rt.bconv2d(inp, case["channels_in"], case["filter"], thresholds=case["thresholds"], **kw)
        ref = rt_free_pack(case["lce"])
        if not np.array_equal(mine, ref):
            return [f"bitpacked output differs in {int((mine != ref).sum())} of {ref.size} words"]
        return []
    mine = rt.bconv2d(inp, case["channels_in"], case["filter"], multiplier=case["multiplier"],
                      bias=case["bias"], **kw)
    if not bitexact(mine, case["lce"]):
        return [f"float output differs in {int((mine != case['lce']).sum())} of {mine.size} values, "
                f"max |diff| {np.abs(mine - case['lce']).max()}"]
    return []


def rt_free_pack(pm1):
    """Pack LCE's dequantized (+-1.0) output back into words, in numpy."""
    return np_pack(pm1)


def load_lce_fixtures():
    from fixture_io import load_cases

    out = []
    for c in LCE_CHANNELS:
        cases, extra = load_cases(FIXTURES / f"lce_bconv_c{c}.npz")
        out.append((c, cases, extra))
    return out


# ------------------------------------------------------------------- float
PAD_MAP = {"SAME": "SAME", "VALID": "VALID"}
UNARY = {"RELU": "relu", "RELU6": "relu6", "RELU_N1_TO_1": "relu_n1_to_1", "TANH": "tanh",
         "LOGISTIC": "logistic", "LEAKY_RELU": "leaky_relu", "HARD_SWISH": "hard_swish"}


def run_float_case(rt, case, x):
    """Return (mine, tflite, atol array or 0.0, reason) for one TFLite fixture op."""
    t, o, k = case["type"], case["options"], case["consts"]
    ref = case["out"]
    act = o.get("fused_activation_function", "NONE")
    if t in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MEAN"):
        # Summation order differs (TFLite/XNNPACK tile, vectorize and may fuse
        # multiply-adds): |error| <= n * eps * sum|terms| (+ rounding of the
        # result). The bound is computed by running the same kernel on |x|,
        # |w|, |b| with no activation.
        ax = np.abs(x)
        if t == "CONV_2D":
            kw = dict(stride=(o["stride_h"], o["stride_w"]),
                      dilation=(o["dilation_hfactor"], o["dilation_wfactor"]), padding=o["padding"])
            mine = rt.conv2d(x, k["in1"], k.get("in2"), activation=act, **kw)
            mag = rt.conv2d(ax, np.abs(k["in1"]), None if k.get("in2") is None else np.abs(k["in2"]), **kw)
            n = k["in1"][0].size + 1
        elif t == "DEPTHWISE_CONV_2D":
            kw = dict(depth_multiplier=o["depth_multiplier"], stride=(o["stride_h"], o["stride_w"]),
                      dilation=(o["dilation_hfactor"], o["dilation_wfactor"]), padding=o["padding"])
            mine = rt.depthwise_conv2d(x, k["in1"], k.get("in2"), activation=act, **kw)
            mag = rt.depthwise_conv2d(ax, np.abs(k["in1"]), np.abs(k["in2"]), **kw)
            n = k["in1"].shape[1] * k["in1"].shape[2] + 1
        elif t == "FULLY_CONNECTED":
            mine = rt.fully_connected(x.reshape(-1), k["in1"], k.get("in2"), activation=act)[0]
            mag = rt.fully_connected(ax.reshape(-1), np.abs(k["in1"]), np.abs(k["in2"]))[0]
            n = k["in1"].shape[1] + 1
        elif t == "AVERAGE_POOL_2D":
            kw = dict(filt=(o["filter_height"], o["filter_width"]), stride=(o["stride_h"], o["stride_w"]),
                      padding=o["padding"])
            mine = rt.average_pool2d(x, activation=act, **kw)
            mag = rt.average_pool2d(ax, **kw)
            n = o["filter_height"] * o["filter_width"] + 1
        else:  # MEAN over H, W
            assert sorted(np.asarray(k["in1"]).tolist()) == [1, 2], k["in1"]
            mine = rt.mean_hw(x)
            mag = rt.mean_hw(ax)
            n = x.shape[0] * x.shape[1] + 1
        atol = 2.0 * n * F32_EPS * mag + 1e-7
        return mine.reshape(ref.shape), ref, atol.reshape(ref.shape), "summation order"
    if t == "MAX_POOL_2D":
        mine = rt.max_pool2d(x, (o["filter_height"], o["filter_width"]), (o["stride_h"], o["stride_w"]),
                             o["padding"], act)
        return mine, ref, 0.0, "exact: max and clamps do not round"
    if t in ("ADD", "MUL"):
        b = np.asarray(k["in1"], np.float32).reshape(-1)
        mine = (rt.add if t == "ADD" else rt.mul)(x, b, act)
        return mine, ref, 0.0, "exact: one rounding per element"
    if t == "SOFTMAX":
        xs = x.reshape(case["reshaped"]) if case["reshaped"] else x
        mine = rt.softmax(xs, o["beta"])
        # expf differs between libm and TFLite's vectorized exp by a few ulp;
        # the quotient keeps a relative error of a few eps.
        return mine.reshape(ref.shape), ref, 8 * F32_EPS * np.abs(ref) + 1e-8, "exp implementation"
    if t == "CONCATENATION":
        n_in = 1 + sum(1 for key in k if key.endswith("_is_input"))
        axis = o["axis"]
        axis = axis - 1 if axis > 0 else axis  # drop the batch axis
        mine = rt.concatenation([x] * n_in, axis)
        return mine, ref, 0.0, "exact: copies"
    if t == "PAD":
        pads = np.asarray(k["in1"])[1:]
        mine = rt.pad(x, [tuple(p) for p in pads])
        return mine, ref, 0.0, "exact: copies"
    if t in UNARY:
        mine = rt.unary(UNARY[t], x, o.get("alpha", 0.0))
        if t in ("TANH", "LOGISTIC"):
            # TFLite evaluates tanh/logistic with its own (Eigen/XNNPACK)
            # approximations, libm's tanhf/expf differ by a few ulp.
            return mine, ref, 4e-7 + 4 * F32_EPS * np.abs(ref), "tanh/exp implementation"
        if t == "HARD_SWISH":
            # x * relu6(x + 3) / 6 vs x * relu6(x + 3) * (1/6): 1-2 ulp.
            return mine, ref, 1e-7 + 3 * F32_EPS * np.abs(ref), "division vs reciprocal"
        return mine, ref, 0.0, "exact"
    raise NotImplementedError(t)


def float_case_id(case):
    o = case["options"]
    parts = [case["type"].lower()]
    if "filter_height" in o:
        parts.append(f"f{o['filter_height']}")
    if "stride_h" in o:
        parts.append(f"s{o['stride_h']}")
    if "padding" in o:
        parts.append(o["padding"].lower())
    if o.get("fused_activation_function", "NONE") != "NONE":
        parts.append(o["fused_activation_function"].lower())
    if "axis" in o:
        parts.append(f"axis{o['axis']}")
    if "keep_dims" in o:
        parts.append("keep" if o["keep_dims"] else "nokeep")
    if case["type"] in ("ADD", "MUL"):
        parts.append("scalar" if np.asarray(case["consts"]["in1"]).size == 1 else "perchannel")
    parts.append(f"op{case['op_index']}")
    return "_".join(parts)


# ------------------------------------------------------------------- fused
def fused_configs(rng, n=24):
    """Random producer -> pool -> stages configs, plus the MNIST BCNN's two chains."""
    cfgs = [
        # MNIST BCNN first block: CONV_2D 3x3 28x28x1 -> 26x26x32, 2x2 pool, BN (MUL+ADD)
        dict(producer="conv", in_shape=(28, 28, 1), out_c=32, k=3, s=1, d=1, padding="VALID",
             act="NONE", pool=((2, 2), (2, 2), "VALID", "NONE"), stages=("MUL", "ADD"), scalar=False),
        # later block: LceBconv2d 13x13x32 -> 11x11x64 float, 2x2 pool, BN
        dict(producer="bconv", in_shape=(13, 13, 32), out_c=64, k=3, s=1, d=1, padding="VALID",
             pad_value=1, act="NONE", pool=((2, 2), (2, 2), "VALID", "NONE"), stages=("MUL", "ADD"),
             scalar=False),
        # no pool, MUL only
        dict(producer="conv", in_shape=(7, 6, 3), out_c=5, k=3, s=1, d=1, padding="SAME",
             act="RELU", pool=None, stages=("MUL",), scalar=False),
    ]
    for _ in range(n):
        prod = str(rng.choice(["conv", "bconv"]))
        hwio = bool(rng.random() < 0.5)
        k = int(rng.choice([1, 3, 5]))
        s = int(rng.choice([1, 2]))
        d = 1 if s == 2 else int(rng.choice([1, 2]))
        padding = str(rng.choice(["SAME", "VALID"]))
        eff = (k - 1) * d + 1
        h = int(rng.integers(eff + 5, eff + 9))  # >= 3 producer rows even for VALID stride 2
        w = int(rng.integers(eff + 5, eff + 9))
        cin = int(rng.choice([1, 3, 31, 33, 70]))
        pad_value = int(rng.integers(0, 2))
        act = "NONE" if (prod == "bconv" and padding == "SAME" and pad_value == 0) else str(
            rng.choice(["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]))
        pool = None
        if rng.random() < 0.8:
            pk = int(rng.choice([2, 3]))
            ps = int(rng.choice([1, 2, pk]))
            pool = ((pk, pk), (ps, ps), str(rng.choice(["SAME", "VALID"])),
                    str(rng.choice(["NONE", "RELU"])))
        stages = tuple(rng.choice(["MUL", "ADD"], size=int(rng.integers(0, 4))))
        cfgs.append(dict(producer=prod, in_shape=(h, w, cin), out_c=int(rng.choice([1, 8, 32, 33, 40])),
                         k=k, s=s, d=d, padding=padding, pad_value=pad_value, act=act, pool=pool,
                         stages=stages, scalar=bool(rng.random() < 0.3), hwio=hwio))
    return cfgs


def fused_id(cfg):
    pool = "nopool" if cfg["pool"] is None else f"pool{cfg['pool'][0][0]}s{cfg['pool'][1][0]}{cfg['pool'][2].lower()}"
    prod = cfg["producer"] + ("_hwio" if cfg.get("hwio") and cfg["producer"] == "conv" else "")
    return (f"{prod}_{'x'.join(map(str, cfg['in_shape']))}_k{cfg['k']}s{cfg['s']}d{cfg['d']}_"
            f"{cfg['padding'].lower()}_{pool}_{''.join(s[0] for s in cfg['stages']) or 'nostage'}")


def check_fused(rt, cfg, rng):
    """Fused kernel vs the unfused kernels one after another: bit for bit."""
    h, w, cin = cfg["in_shape"]
    cout, k = cfg["out_c"], cfg["k"]
    kw = dict(stride=(cfg["s"], cfg["s"]), dilation=(cfg["d"], cfg["d"]), padding=cfg["padding"],
              activation=cfg["act"])
    if cfg["producer"] == "conv":
        x = rng.normal(size=(h, w, cin)).astype(np.float32)
        filt = rng.normal(0, 0.5, size=(cout, k, k, cin)).astype(np.float32)
        bias = rng.normal(size=cout).astype(np.float32)
        produced = rt.conv2d(x, filt, bias, **kw)
        params, keep = rt.conv2d_params(x.shape, filt, bias, hwio=cfg.get("hwio", False), **kw)
        fused_kw = dict(conv=params)
        inp = x
    else:
        xp = rt.quantize(rng.normal(size=(h, w, cin)).astype(np.float32))
        filt = rt.quantize(rng.normal(size=(cout, k, k, cin)).astype(np.float32))
        mult = rng.uniform(-2, 2, size=cout).astype(np.float32)
        bias = rng.normal(0, 3, size=cout).astype(np.float32)
        bkw = dict(kw, pad_value=cfg["pad_value"], multiplier=mult, bias=bias)
        produced = rt.bconv2d(xp, cin, filt, **bkw)
        params, keep = rt.bconv2d_params((h, w), cin, filt, **bkw)
        fused_kw = dict(bconv=params)
        inp = xp
    y = produced
    if cfg["pool"] is not None:
        pf, ps, pp, pa = cfg["pool"]
        y = rt.max_pool2d(y, pf, ps, pp, pa)
    stages = []
    for kind in cfg["stages"]:
        vals = rng.normal(0, 1.5, size=1 if cfg["scalar"] else cout).astype(np.float32)
        sact = str(rng.choice(["NONE", "NONE", "RELU", "RELU6"]))
        y = (rt.mul if kind == "MUL" else rt.add)(y, vals, sact)
        stages.append((kind, vals, sact))
    expect = rt.quantize(y)
    got, nbytes = rt.fused(inp, pool=cfg["pool"], stages=stages, **fused_kw)
    del keep
    problems = []
    if not np.array_equal(got, expect):
        problems.append(f"fused output differs in {int((got != expect).sum())} of {got.size} words")
    whole = produced.nbytes
    pool_rows = 1 if cfg["pool"] is None else min(cfg["pool"][0][0], produced.shape[0])
    expected_bytes = 4 * (pool_rows * produced.shape[1] * cout + (cout if cfg["pool"] else 0))
    if nbytes != expected_bytes:
        problems.append(f"scratch {nbytes} bytes, expected {expected_bytes}")
    return problems, nbytes, whole


def run_fused(rt, cfg, rng, specials=None):
    """The fused kernel of ``rt`` (its variant) on random data drawn from rng.

    With ``specials`` (float32 values), a quarter of the conv input, filter
    and stage values are replaced by them (NaN, infinities, -0.0, ...).
    """
    h, w, cin = cfg["in_shape"]
    cout, k = cfg["out_c"], cfg["k"]
    kw = dict(stride=(cfg["s"], cfg["s"]), dilation=(cfg["d"], cfg["d"]), padding=cfg["padding"],
              activation=cfg["act"])

    def sprinkle(a):
        if specials is not None:
            idx = rng.random(a.shape) < 0.25
            a[idx] = rng.choice(specials, size=int(idx.sum()))
        return a

    if cfg["producer"] == "conv":
        x = sprinkle(rng.normal(size=(h, w, cin)).astype(np.float32))
        filt = sprinkle(rng.normal(0, 0.5, size=(cout, k, k, cin)).astype(np.float32))
        bias = rng.normal(size=cout).astype(np.float32)
        params, keep = rt.conv2d_params(x.shape, filt, bias, hwio=cfg.get("hwio", False), **kw)
        fused_kw, inp = dict(conv=params), x
    else:
        xp = rt.quantize(rng.normal(size=(h, w, cin)).astype(np.float32))
        filt = rt.quantize(rng.normal(size=(cout, k, k, cin)).astype(np.float32))
        mult = sprinkle(rng.uniform(-2, 2, size=cout).astype(np.float32))
        bias = rng.normal(0, 3, size=cout).astype(np.float32)
        params, keep = rt.bconv2d_params((h, w), cin, filt, pad_value=cfg["pad_value"], multiplier=mult,
                                         bias=bias, **kw)
        fused_kw, inp = dict(bconv=params), xp
    stages = []
    for kind in cfg["stages"]:
        vals = sprinkle(rng.normal(0, 1.5, size=1 if cfg["scalar"] else cout).astype(np.float32))
        stages.append((kind, vals, str(rng.choice(["NONE", "NONE", "RELU", "RELU6"]))))
    got, _ = rt.fused(inp, pool=cfg["pool"], stages=stages, **fused_kw)
    del keep
    return got

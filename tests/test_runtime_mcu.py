"""Kernel set "mcu" against the _ref kernels, bit for bit.

tests/runtime/mcu_driver.c runs each case of a seeded random grid (LceBconv2d
float, int8 and bitpacked output, the fused bconv and conv chains, binary dense;
channel counts that are not multiples of 32, SAME/VALID, pad values 0/1,
strides, dilations, activations, pools, stages, -0.0f biases) through
``*_ref`` and ``*_mcu`` on the same data and compares statuses and every
output byte, plus a guard zone after the output. The grid is written into
``mcu_grid.h`` here; the driver is built for the host (ASan + UBSan) and for
Cortex-M cores under QEMU (M4 and M7 take the USADA8 path, M3 and M0 the
portable SWAR path; the armv6-m build runs on the M3 board, whose RAM holds
the grid's buffers, which the micro:bit's 16 KiB do not).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "runtime"))
import ebnn_ctypes as E  # noqa: E402

DRIVER = E.REPO / "tests" / "runtime" / "mcu_driver.c"
PAD = {"same": 0, "valid": 1}
ACTS = {"none": 0, "relu": 1, "n1to1": 2, "relu6": 3}
KINDS = {"bconv": 0, "fbconv": 1, "fconv": 2, "bdense": 3, "i8conv": 4, "i8bconv": 5}
FIELDS = ("kind", "in_h", "in_w", "in_c", "out_c", "fh", "fw", "sh", "sw", "dh", "dw", "padding",
          "pad_value", "act", "packed", "has_pool", "pfh", "pfw", "psh", "psw", "ppad", "pact",
          "n_stages", "stage_kind", "stage_scalar", "stage_act", "bias_mode", "zeros", "layout", "seed")
# Buffer sizes of mcu_driver.c (words / floats).
MAX_IN, MAX_FILT, MAX_OUT = 4096, 12000, 16000


def _case(id_, kind, **kw):
    c = dict(kind=KINDS[kind], in_h=1, in_w=1, in_c=1, out_c=1, fh=1, fw=1, sh=1, sw=1, dh=1, dw=1,
             padding=1, pad_value=1, act=0, packed=0, has_pool=0, pfh=1, pfw=1, psh=1, psw=1, ppad=1,
             pact=0, n_stages=0, stage_kind=[0] * 4, stage_scalar=[0] * 4, stage_act=[0] * 4,
             bias_mode=0, zeros=0, layout=0, seed=0)
    c.update(kw)
    c["id"] = id_
    return c


def _out(n, k, s, d, pad):
    eff = (k - 1) * d + 1
    return -(-n // s) if pad == 0 else (n - eff) // s + 1


def _fits(c):
    words = -(-c["in_c"] // 32)
    if c["kind"] == KINDS["bdense"]:
        return c["in_h"] * words <= MAX_IN and c["out_c"] * words <= MAX_FILT
    oh = _out(c["in_h"], c["fh"], c["sh"], c["dh"], c["padding"])
    ow = _out(c["in_w"], c["fw"], c["sw"], c["dw"], c["padding"])
    if oh <= 0 or ow <= 0:
        return False
    if c["has_pool"] and (_out(oh, c["pfh"], c["psh"], 1, c["ppad"]) <= 0
                          or _out(ow, c["pfw"], c["psw"], 1, c["ppad"]) <= 0):
        return False
    if c["kind"] == KINDS["i8bconv"]:  # int8 output bytes
        return (c["in_h"] * c["in_w"] * words <= MAX_IN and c["out_c"] * c["fh"] * c["fw"] * words <= MAX_FILT
                and oh * ow * c["out_c"] <= 4 * MAX_OUT)
    if c["kind"] == KINDS["i8conv"]:  # bytes, in the driver's word buffers
        return (c["in_h"] * c["in_w"] * c["in_c"] <= 4 * MAX_IN
                and c["out_c"] * c["fh"] * c["fw"] * c["in_c"] <= 4 * MAX_FILT
                and oh * ow * c["out_c"] <= 4 * MAX_OUT)
    per_in = c["in_c"] if c["kind"] == KINDS["fconv"] else words
    return (c["in_h"] * c["in_w"] * per_in <= MAX_IN
            and c["out_c"] * c["fh"] * c["fw"] * per_in <= MAX_FILT
            and oh * ow * c["out_c"] <= MAX_OUT)


def _pool(rng, c):
    pfh, psh, ppad = [(2, 2, 1), (3, 2, 0), (2, 1, 1), (3, 3, 1), (1, 1, 1)][rng.integers(5)]
    n = int(rng.integers(0, 5))
    c.update(has_pool=1, pfh=pfh, pfw=pfh, psh=psh, psw=psh, ppad=ppad,
             pact=int(rng.choice([0, 0, 1, 3])), n_stages=n,
             stage_kind=[int(v) for v in rng.integers(0, 2, 4)],
             stage_scalar=[int(v) for v in (rng.random(4) < 0.25)],
             stage_act=[int(v) for v in rng.choice([0, 0, 0, 1, 2, 3], 4)])
    return f"_p{pfh}s{psh}{'v' if ppad else 's'}_st{n}"


def grid(seed=20261202):
    rng = np.random.default_rng(seed)
    cases = [
        # the shapes of the shipped mnist-bcnn-binary
        _case("mnist_stem_fused", "fconv", in_h=28, in_w=28, in_c=1, out_c=32, fh=3, fw=3,
              has_pool=1, pfh=2, pfw=2, psh=2, psw=2, n_stages=2, stage_kind=[0, 1, 0, 0]),
        _case("mnist_bconv1_fused", "fbconv", in_h=13, in_w=13, in_c=32, out_c=64, fh=3, fw=3,
              pad_value=0, has_pool=1, pfh=2, pfw=2, psh=2, psw=2, n_stages=2, stage_kind=[0, 1, 0, 0]),
        _case("mnist_bconv1_float", "bconv", in_h=13, in_w=13, in_c=32, out_c=64, fh=3, fw=3),
        _case("mnist_bconv2_packed", "bconv", in_h=5, in_w=5, in_c=64, out_c=64, fh=3, fw=3, packed=1),
        _case("mnist_dense_576_10", "bdense", in_h=1, in_c=576, out_c=10),
        # fixed corner cases
        _case("bconv_samezero_packed_unsupported", "bconv", in_h=4, in_w=4, in_c=32, out_c=8, fh=3,
              fw=3, padding=0, pad_value=0, packed=1),
        _case("bconv_samezero_float", "bconv", in_h=5, in_w=6, in_c=40, out_c=20, fh=3, fw=3,
              padding=0, pad_value=0),
        _case("bconv_long_filter_ref_path", "bconv", in_h=4, in_w=4, in_c=1024, out_c=4, fh=3, fw=3,
              padding=0),
        _case("fbconv_samezero", "fbconv", in_h=6, in_w=6, in_c=33, out_c=9, fh=3, fw=3, padding=0,
              pad_value=0, has_pool=1, pfh=2, pfw=2, psh=2, psw=2, n_stages=1),
        _case("fbconv_nopool", "fbconv", in_h=5, in_w=5, in_c=32, out_c=40, fh=3, fw=3, n_stages=2,
              stage_kind=[0, 1, 0, 0]),
        _case("fbconv_c70_o70_same_one", "fbconv", in_h=9, in_w=7, in_c=70, out_c=70, fh=3, fw=3,
              padding=0, has_pool=1, pfh=3, pfw=3, psh=2, psw=2, ppad=0, n_stages=3,
              stage_kind=[0, 1, 1, 0], stage_act=[0, 1, 0, 0]),
        _case("fconv_stem_bias_minus_zero", "fconv", in_h=10, in_w=9, out_c=12, fh=3, fw=3,
              has_pool=1, pfh=2, pfw=2, psh=2, psw=2, n_stages=2, stage_kind=[0, 1, 0, 0],
              bias_mode=2, zeros=1),
        _case("fconv_stem_no_bias_zeros", "fconv", in_h=8, in_w=8, out_c=33, fh=3, fw=3, padding=0,
              has_pool=1, pfh=2, pfw=2, psh=2, psw=2, n_stages=1, bias_mode=1, zeros=1),
        _case("fconv_stem_hwio_relu6", "fconv", in_h=11, in_w=12, out_c=17, fh=3, fw=3, padding=0,
              act=3, layout=1, has_pool=1, pfh=3, pfw=3, psh=2, psw=2, ppad=0, n_stages=2,
              stage_kind=[1, 0, 0, 0]),
        _case("fconv_rgb_5x5_ref_path", "fconv", in_h=9, in_w=9, in_c=3, out_c=8, fh=5, fw=5,
              padding=0, has_pool=1, pfh=2, pfw=2, psh=2, psw=2, n_stages=1),
        _case("fbconv_11x11_same_pool_mul_add", "fbconv", in_h=11, in_w=11, in_c=32, out_c=64, fh=3,
              fw=3, padding=0, has_pool=1, pfh=2, pfw=2, psh=2, psw=2, ppad=0, n_stages=2,
              stage_kind=[0, 1, 0, 0]),
        _case("fbconv_10x9_valid_pool_mul_add", "fbconv", in_h=10, in_w=9, in_c=64, out_c=70, fh=3,
              fw=3, has_pool=1, pfh=2, pfw=2, psh=2, psw=2, n_stages=2, stage_kind=[0, 1, 0, 0]),
        _case("fconv_stem_same_pool_same_mul_add", "fconv", in_h=13, in_w=11, out_c=20, fh=3, fw=3,
              padding=0, has_pool=1, pfh=2, pfw=2, psh=2, psw=2, ppad=0, n_stages=2,
              stage_kind=[0, 1, 0, 0], zeros=1),
        _case("fconv_stem_valid_odd_mul_add_hwio", "fconv", in_h=15, in_w=12, out_c=9, fh=3, fw=3,
              layout=1, has_pool=1, pfh=2, pfw=2, psh=2, psw=2, n_stages=2, stage_kind=[0, 1, 0, 0]),
        # the int8 twin's convs (bcnn float twin, converted --int8)
        _case("mnist_i8_conv1", "i8conv", in_h=28, in_w=28, in_c=1, out_c=32, fh=3, fw=3),
        _case("mnist_i8_conv2", "i8conv", in_h=13, in_w=13, in_c=32, out_c=64, fh=3, fw=3),
        _case("i8conv_long_window_ref_path", "i8conv", in_h=5, in_w=5, in_c=70, out_c=5, fh=3,
              fw=3, padding=0),
        _case("fconv_stem_nopool", "fconv", in_h=7, in_w=7, out_c=8, fh=3, fw=3, n_stages=1),
        # the full-integer mnist-bcnn-mcu-binary's int8-output bconvs (SAME, pad_value 1)
        _case("mnist_i8_bconv1", "i8bconv", in_h=14, in_w=14, in_c=32, out_c=64, fh=3, fw=3,
              padding=0),
        _case("i8bconv_dense_10", "i8bconv", in_h=1, in_w=1, in_c=256, out_c=10),
        _case("i8bconv_samezero_unsupported", "i8bconv", in_h=4, in_w=4, in_c=32, out_c=8, fh=3,
              fw=3, padding=0, pad_value=0),
        _case("i8bconv_long_filter_ref_path", "i8bconv", in_h=4, in_w=4, in_c=1024, out_c=4, fh=3,
              fw=3),
    ]
    while len(cases) < 140:
        kind = ["bconv", "bconv", "fbconv", "fconv", "bdense", "i8conv", "i8bconv"][int(rng.integers(7))]
        c = _case("", kind, seed=int(rng.integers(1 << 30)))
        if kind == "bdense":
            c.update(in_h=int(rng.integers(1, 4)), in_c=int(rng.choice([1, 31, 32, 33, 64, 95, 96, 576, 1000])),
                     out_c=int(rng.choice([1, 10, 33])), act=int(rng.integers(4)),
                     bias_mode=int(rng.integers(3)))
            cid = f"bdense_r{c['in_h']}_f{c['in_c']}_o{c['out_c']}_a{c['act']}_b{c['bias_mode']}"
        elif kind == "i8conv":
            fh, fw = [(1, 1), (3, 3), (2, 3), (5, 5)][int(rng.integers(4))]
            s, d = int(rng.choice([1, 1, 2])), int(rng.choice([1, 1, 2]))
            c.update(in_h=int(rng.integers(3, 12)), in_w=int(rng.integers(3, 12)),
                     in_c=int(rng.choice([1, 3, 4, 5, 8, 17, 32])), out_c=int(rng.choice([1, 2, 3, 8, 17])),
                     fh=fh, fw=fw, sh=s, sw=s, dh=d, dw=d, padding=int(rng.integers(2)),
                     act=int(rng.integers(2)), bias_mode=int(rng.integers(2)))
            cid = (f"i8conv_{c['in_h']}x{c['in_w']}x{c['in_c']}_o{c['out_c']}_k{fh}{fw}_s{s}_d{d}_"
                   f"{'same' if c['padding'] == 0 else 'valid'}_a{c['act']}_b{c['bias_mode']}")
        elif kind == "i8bconv":
            fh, fw = [(1, 1), (3, 3), (2, 3), (3, 1), (5, 5)][int(rng.integers(5))]
            s, d = int(rng.choice([1, 1, 2])), int(rng.choice([1, 1, 2]))
            c.update(in_h=int(rng.integers(3, 14)), in_w=int(rng.integers(3, 14)),
                     in_c=int(rng.choice([1, 5, 31, 32, 33, 64, 70, 96, 160])),
                     out_c=int(rng.choice([1, 3, 17, 32, 33, 64, 70])), fh=fh, fw=fw, sh=s, sw=s,
                     dh=d, dw=d, padding=int(rng.integers(2)))
            cid = (f"i8bconv_{c['in_h']}x{c['in_w']}x{c['in_c']}_o{c['out_c']}_k{fh}{fw}_s{s}_d{d}_"
                   f"{'same' if c['padding'] == 0 else 'valid'}")
        else:
            stem = kind == "fconv"
            fh, fw = (3, 3) if stem else [(1, 1), (3, 3), (2, 3), (3, 1), (5, 5)][int(rng.integers(5))]
            s = int(rng.choice([1, 1, 2]))
            d = 1 if stem else int(rng.choice([1, 1, 2]))
            c.update(in_h=int(rng.integers(3, 14)), in_w=int(rng.integers(3, 14)),
                     in_c=1 if stem else int(rng.choice([1, 5, 31, 32, 33, 64, 70, 96, 160])),
                     out_c=int(rng.choice([1, 3, 17, 32, 33, 64, 70])), fh=fh, fw=fw, sh=s, sw=s,
                     dh=d, dw=d, padding=int(rng.integers(2)))
            c["pad_value"] = 1 if stem or rng.random() < 0.7 else 0
            c["packed"] = int(kind == "bconv" and rng.random() < 0.5)
            if c["packed"] and c["padding"] == 0:
                c["pad_value"] = 1  # LCE rejects same-zero with bitpacked output (a fixed case above)
            if not c["packed"] and not (c["pad_value"] == 0 and c["padding"] == 0):
                c["act"] = int(rng.integers(4))
            if stem:
                c.update(layout=int(rng.integers(2)), bias_mode=int(rng.integers(3)),
                         zeros=int(rng.random() < 0.4))
            cid = (f"{kind}_{c['in_h']}x{c['in_w']}x{c['in_c']}_o{c['out_c']}_k{fh}{fw}_s{s}_d{d}_"
                   f"{'same' if c['padding'] == 0 else 'valid'}{'' if stem else '_pv' + str(c['pad_value'])}"
                   f"_{list(ACTS)[c['act']]}" + ("_packed" if c["packed"] else ""))
            if stem:
                cid += f"_{'hwio' if c['layout'] else 'ohwi'}_b{c['bias_mode']}_z{c['zeros']}"
            if kind != "bconv":
                cid += _pool(rng, c)
        if not _fits(c):
            continue
        c["id"] = f"{cid}_{len(cases)}"
        cases.append(c)
    return cases


def grid_header(cases) -> str:
    def val(v):
        return "{" + ", ".join(map(str, v)) + "}" if isinstance(v, list) else str(v)

    rows = [f'    {{"{c["id"]}", ' + ", ".join(val(c[f]) for f in FIELDS) + "}," for c in cases]
    return "/* written by tests/test_runtime_mcu.py */\nstatic const tcase_t CASES[] = {\n" + \
        "\n".join(rows) + "\n};\n"


def _parse(text):
    rows = {}
    for m in re.finditer(r"^case (\d+) (\S+) status_ref=(-?\d+) status_mcu=(-?\d+) bytes=(\d+) "
                         r"diff=(\d+) guard=(\d+) ref_instructions=(\d+) mcu_instructions=(\d+) (OK|FAIL)$",
                         text, re.MULTILINE):
        rows[m.group(2)] = dict(status_ref=int(m.group(3)), status_mcu=int(m.group(4)),
                                bytes=int(m.group(5)), diff=int(m.group(6)), guard=int(m.group(7)),
                                ref=int(m.group(8)), mcu=int(m.group(9)), ok=m.group(10) == "OK")
    return rows


def _check(rows, cases):
    assert [c["id"] for c in cases] == list(rows), "the driver did not report every case"
    bad = {k: v for k, v in rows.items() if not v["ok"]}
    assert not bad, bad
    ran = [v for v in rows.values() if v["status_ref"] == 0]
    assert len(ran) == len(cases) - 2 and all(v["bytes"] > 0 for v in ran)
    assert rows["bconv_samezero_packed_unsupported"]["status_ref"] == 4  # EBNN_ERROR_UNSUPPORTED
    assert rows["i8bconv_samezero_unsupported"]["status_ref"] == 4  # LCE: float output only


@pytest.fixture(scope="module")
def grid_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("mcu_grid")
    cases = grid()
    (d / "mcu_grid.h").write_text(grid_header(cases))
    return d, cases


def test_grid_is_seeded_and_covers_the_options():
    a, b = grid(), grid()
    assert a == b
    ids = [c["id"] for c in a]
    assert len(set(ids)) == len(ids)
    conv = [c for c in a if c["kind"] in (0, 1)]
    assert {c["in_c"] % 32 != 0 for c in conv} == {True, False}
    assert {c["padding"] for c in conv} == {0, 1} and {c["pad_value"] for c in conv} == {0, 1}
    assert {c["sh"] for c in conv} == {1, 2} and {c["dh"] for c in conv} == {1, 2}
    assert {c["packed"] for c in conv} == {0, 1} and {c["act"] for c in conv} == {0, 1, 2, 3}
    i8b = [c for c in a if c["kind"] == 5]
    assert len(i8b) > 10 and {c["padding"] for c in i8b} == {0, 1} and {c["in_c"] % 32 != 0 for c in i8b} == {True, False}
    i8 = [c for c in a if c["kind"] == 4]
    assert len(i8) > 10 and {c["in_c"] % 4 != 0 for c in i8} == {True, False}
    stems = [c for c in a if c["kind"] == 2]
    assert {c["layout"] for c in stems} == {0, 1} and {c["bias_mode"] for c in stems} == {0, 1, 2}


def test_mcu_kernels_match_ref_on_host(grid_dir):
    d, cases = grid_dir
    exe = d / "mcu_host"
    subprocess.run(["gcc", *E.CFLAGS, *E.SANITIZE, "-I", str(E.RUNTIME), "-I", str(d), str(DRIVER),
                    *map(str, E.runtime_sources()), "-o", str(exe), "-lm"], check=True)
    res = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    _check(_parse(res.stdout), cases)


# (compiler flags, QEMU machine, instructions per SysTick tick)
QEMU_BUILDS = {
    "cortex-m4": (["-mcpu=cortex-m4", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"], "mps2-an386", "40"),
    "cortex-m7": (["-mcpu=cortex-m7", "-mfloat-abi=hard", "-mfpu=fpv5-sp-d16"], "mps2-an500", "40"),
    "cortex-m3": (["-mcpu=cortex-m3", "-mfloat-abi=soft"], "mps2-an385", "40"),
    "cortex-m0": (["-mcpu=cortex-m0", "-mfloat-abi=soft"], "mps2-an385", "40"),
}


def run_under_qemu(name, d):
    flags, machine, per_tick = QEMU_BUILDS[name]
    elf = d / f"mcu_{name}.elf"
    subprocess.run(["arm-none-eabi-gcc", *E.CFLAGS, "-mthumb", *flags, "-ffp-contract=off",
                    f"-DEBNN_TICK_INSTRUCTIONS={per_tick}",
                    "--specs=picolibc.specs", "--oslib=semihost", "--crt0=semihost",
                    "-Wl,--defsym=__flash=0", "-Wl,--defsym=__flash_size=0x400000",
                    "-Wl,--defsym=__ram=0x20000000", "-Wl,--defsym=__ram_size=0x400000",
                    "-I", str(E.RUNTIME), "-I", str(d), str(DRIVER), *map(str, E.runtime_sources()),
                    "-o", str(elf), "-lm"], check=True)
    res = subprocess.run(["qemu-system-arm", "-M", machine, "-nographic", "-semihosting-config",
                          "enable=on,target=native", "-icount", "shift=0", "-kernel", str(elf)],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900)
    return res, _parse(res.stdout + res.stderr)  # picolibc's semihosted stdout lands on stderr


@pytest.mark.qemu
@pytest.mark.slow
@pytest.mark.parametrize("core", list(QEMU_BUILDS))
def test_mcu_kernels_match_ref_under_qemu(grid_dir, core):
    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None:
        pytest.skip("needs arm-none-eabi-gcc and qemu-system-arm")
    d, cases = grid_dir
    res, rows = run_under_qemu(core, d)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    _check(rows, cases)
    mnist = {k: (v["ref"], v["mcu"]) for k, v in rows.items() if k.startswith("mnist_")}
    print(core, mnist)
    # the shapes the kernels were written for: fewer instructions than _ref
    faster = ["mnist_bconv1_fused", "mnist_bconv1_float", "mnist_bconv2_packed", "mnist_stem_fused",
              "mnist_i8_bconv1"]
    if core == "cortex-m0":  # no Thumb-2: bitpacked LceBconv2d is delegated to _ref there
        faster.remove("mnist_bconv2_packed")
    if core in ("cortex-m4", "cortex-m7"):  # SMLAD (DSP extension)
        faster += ["mnist_i8_conv1", "mnist_i8_conv2"]
    for k in faster:
        assert 0 < rows[k]["mcu"] < rows[k]["ref"], (core, k, rows[k])

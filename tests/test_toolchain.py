"""edgebnn.toolchain: the one place that knows compilers, flags and kernel sets."""

import platform
import subprocess
from pathlib import Path

import pytest

from edgebnn import toolchain
from edgebnn import hostprog
from edgebnn.codegen.generator import RUNTIME_DIR, generate, runtime_functions
from edgebnn.errors import TargetError, UnsupportedOpError
from edgebnn.firmware import project
from edgebnn.targets import list_targets, load_target

MODEL = Path(__file__).parent / "fixtures" / "codegen" / "tiny_bcnn.tflite"


def test_every_target_file_gives_a_toolchain_with_the_common_flags_last():
    for t in list_targets():
        tc = toolchain.toolchain_for(t)
        assert tc.cflags[0] == "-std=c99", t.name
        # -ffp-contract=off comes after the target's own flags, so they cannot undo it
        fp = tc.cflags.index("-ffp-contract=off")
        assert all(tc.cflags.index(f) < fp for f in t.cflags if f in tc.cflags), t.name
        assert tc.kernels.name in toolchain.KERNEL_SETS
        assert tc.kernels.variants[-1] == "ref"


def _target_file(tmp_path, **replace):
    text = Path(load_target("cortex-m4").source).read_text()
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "cortex-m4.toml"
    path.write_text(text)
    return path


def test_a_target_cannot_turn_contraction_back_on(tmp_path):
    path = _target_file(tmp_path, **{'"-O2",': '"-O2", "-ffp-contract=fast",'})
    tc = toolchain.toolchain_for(load_target(path))
    assert tc.cflags.index("-ffp-contract=fast") < tc.cflags.index("-ffp-contract=off")


def test_an_unknown_kernel_set_in_a_target_file_is_an_error(tmp_path):
    path = _target_file(tmp_path, **{'kernels = "mcu"': 'kernels = "fastest"'})
    with pytest.raises(TargetError) as exc:
        load_target(path)
    msg = str(exc.value)
    assert str(path) in msg and "'fastest'" in msg and "ref" in msg and "opt" in msg


def test_the_old_kernel_set_name_is_an_alias():
    assert toolchain.kernel_set("portable") is toolchain.KERNEL_SETS["ref"]
    with pytest.raises(TargetError, match="unknown kernel set 'avx9'"):
        toolchain.kernel_set("avx9")
    with pytest.raises(TargetError, match="unknown kernel set"):
        generate(MODEL, kernels="avx9")


def test_a_kernel_set_calls_its_first_variant_the_runtime_defines():
    defs = runtime_functions()
    opt = toolchain.KERNEL_SETS["opt"]
    assert "ebnn_bconv2d_opt" in defs
    assert opt.pick("ebnn_bconv2d", defs) == "ebnn_bconv2d_opt"
    assert opt.pick("ebnn_no_such_kernel", defs) == "ebnn_no_such_kernel_ref"
    assert toolchain.KERNEL_SETS["ref"].pick("ebnn_bconv2d", defs) == "ebnn_bconv2d_ref"
    calls = {c["kernel"] for c in generate(MODEL, kernels="ref").ops if c["kernel"]}
    assert calls and all(k.endswith("_ref") for k in calls)


def test_a_runtime_defining_a_function_twice_is_refused(tmp_path):
    # a stale file from an older version beside the current ones (an unclean build/ dir
    # once put the removed ebnn_opt.c into a wheel next to ebnn_conv_opt.c)
    for src in RUNTIME_DIR.iterdir():
        (tmp_path / src.name).write_bytes(src.read_bytes())
    assert "ebnn_conv2d_opt" in runtime_functions(tmp_path)
    (tmp_path / "ebnn_opt.c").write_text('#include "ebnn.h"\nebnn_status_t ebnn_conv2d_opt(const '
                                         'ebnn_conv2d_params_t *p, const float *x, float *y) {\n'
                                         '  return ebnn_conv2d_ref(p, x, y);\n}\n')
    with pytest.raises(UnsupportedOpError, match="ebnn_conv2d_opt in both ebnn_conv_opt.c and ebnn_opt.c"):
        runtime_functions(tmp_path)


def test_the_mcu_kernel_set_calls_the_mcu_kernels_where_they_exist():
    defs = runtime_functions()
    mcu = toolchain.KERNEL_SETS["mcu"]
    for base in ("ebnn_bconv2d", "ebnn_bdense", "ebnn_fused_conv_pool_affine_quantize",
                 "ebnn_int8_conv2d"):
        assert mcu.pick(base, defs) == f"{base}_mcu"
    assert mcu.pick("ebnn_softmax", defs) == "ebnn_softmax_ref"
    calls = {c["kernel"] for c in generate(MODEL, kernels="mcu").ops if c["kernel"]}
    assert "ebnn_fused_conv_pool_affine_quantize_mcu" in calls
    # every M-profile target file asks for it
    for name in ("cortex-m0", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55",
                 "stm32f405", "nucleo-f411re", "rv32imc"):
        assert toolchain.toolchain_for(name).kernels is mcu, name


def test_compile_commands_kinds():
    objs = toolchain.compile_commands("cortex-m4", ["src/a.c", "b.c"], "objects", objdir="build",
                                      includes=["inc"], defines=["X=1"])
    assert [c[-1] for c in objs] == ["build/src/a.o", "build/b.o"]
    assert objs[0][0] == "arm-none-eabi-gcc" and "-Iinc" in objs[0] and "-DX=1" in objs[0]
    prog = toolchain.compile_commands("cortex-m4", ["a.c"], "program", output="fw.elf", link_flags=["-T", "l.ld"])
    link = prog[-1]
    assert link[-2:] == ["-o", "fw.elf"] and "a.o" in link and "-mcpu=cortex-m4" in link
    assert link.index("-T") < link.index("a.o") < link.index("-lm")
    lib = toolchain.compile_commands("cortex-m4", ["a.c"], "library", output="libm.a")
    assert lib[-1] == ["arm-none-eabi-ar", "rcs", "libm.a", "a.o"]
    with pytest.raises(TargetError, match="unknown build kind"):
        toolchain.compile_commands(None, ["a.c"], "shared")
    with pytest.raises(TargetError, match="needs an output"):
        toolchain.compile_commands(None, ["a.c"], "program")


def test_the_portable_default_is_cc_with_the_ref_kernels():
    tc = toolchain.toolchain_for(None)
    assert tc.cc == "cc" and tc.kernels.name == "ref" and "-O2" in tc.cflags


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the shipped host target file is x86_64")
def test_native_is_the_host_target_file_and_cc_overrides_its_compiler(monkeypatch):
    monkeypatch.delenv("CC", raising=False)
    native = load_target("native")
    assert native.name == "x86_64" and native.kind == "host"
    monkeypatch.setenv("CC", "clang")
    assert load_target("native").cc == "clang"


def test_native_without_a_host_file_is_made_here(monkeypatch):
    monkeypatch.setattr(platform, "machine", lambda: "riscv64")
    monkeypatch.setenv("CC", "gcc")
    t = toolchain.native_target()
    assert (t.name, t.kind, t.arch, t.cc, t.kernels) == ("native", "host", "riscv64", "gcc", "opt")


def test_makefile_firmware_and_host_programs_use_the_same_flags(tmp_path, monkeypatch):
    target = load_target("cortex-m4")
    tc = toolchain.toolchain_for(target)
    # the exported Makefile
    mk = generate(MODEL, target=target).files["Makefile"]
    cflags_line = next(line for line in mk.splitlines() if line.startswith("CFLAGS = "))
    assert cflags_line.split(" = ", 1)[1].split() == list(tc.cflags)
    # a firmware project's commands
    cmds = project.build_commands(target, ["src/main.c"], ["src"], linker_script=True)
    assert cmds["compile"][0][1:1 + len(tc.cflags)] == list(tc.cflags)
    assert cmds["link"][0] == tc.cc
    # the host bench program: every compiler call carries the native toolchain's flags
    native = toolchain.toolchain_for("native")
    ran = []
    real = subprocess.run

    def spy(cmd, *a, **kw):
        ran.append(list(cmd))
        return real(cmd, *a, **kw)

    monkeypatch.setattr(hostprog.subprocess, "run", spy)
    monkeypatch.setenv(hostprog.CACHE_ENV, str(tmp_path / "cache"))
    hostprog.build_bench_program(MODEL, tmp_path / "w")
    compiles = [c for c in ran if c[0] == native.cc and "-c" in c]
    assert compiles, ran
    for c in compiles:
        assert c[1:1 + len(native.cflags)] == list(native.cflags)

"""The armv7 target: 32-bit Raspberry Pi OS, cross-compiled and run under qemu-arm.

LCE ships no build for 32-bit Arm Linux, so the oracle is LCE's interpreter on
this machine: the armv7 program must predict what it predicts on every sample.
"""

import json
import struct

import pytest
from click.testing import CliRunner

from edgebnn.cli import main as cli
from edgebnn.targets import load_target, toolchain_status
from edgebnn.toolchain import toolchain_for

EM_ARM = 40  # ELF e_machine of 32-bit Arm
EF_ARM_ABI_FLOAT_HARD = 0x400  # e_flags bit of the hard-float (armhf) ABI
SAMPLES = 12


def test_armv7_target_is_armhf_neon_with_exact_float():
    tc = toolchain_for("armv7")
    assert tc.cc == "arm-linux-gnueabihf-gcc" and tc.kernels.name == "opt"
    for flag in ("-mcpu=cortex-a7", "-mfpu=neon-vfpv4", "-mfloat-abi=hard", "-ffp-contract=off"):
        assert flag in tc.cflags, flag
    # VFPv4 has fused multiply-add: contraction must stay off, after the target's flags
    assert tc.cflags.index("-ffp-contract=off") > tc.cflags.index("-mfpu=neon-vfpv4")
    target = load_target("armv7")
    assert tuple(target.emulator[:3]) == ("qemu-arm", "-cpu", "cortex-a7")
    assert {"gcc-arm-linux-gnueabihf", "qemu-user"} <= set(target.debian_packages)


def _missing_tools():
    status = toolchain_status("armv7")
    return [f"{t['executable']} (Debian package {t['package']})"
            for role, t in status["tools"].items() if role != "flash" and not t["found"]]


@pytest.mark.qemu
@pytest.mark.tf
@pytest.mark.slow
def test_armv7_firmware_agrees_with_lce(tmp_path, shared_data):
    missing = _missing_tools()
    if missing:
        pytest.skip("armv7 toolchain missing: " + ", ".join(missing) + " (tools/setup.sh installs them)")
    pytest.importorskip("larq_compute_engine", reason="the expected predictions come from LCE's interpreter")
    from edgebnn.pretrained import list_pretrained

    if "mnist-bcnn-binary" not in {p.name for p in list_pretrained()}:
        pytest.skip("the shipped model mnist-bcnn-binary is not in this installation")
    out = tmp_path / "fw"
    runner = CliRunner()
    res = runner.invoke(cli, ["firmware", "build", "mnist-bcnn-binary", "-t", "armv7", "-o", str(out),
                              "--samples", str(SAMPLES), "--data-dir", str(shared_data / "mnist"),
                              "--expected", "lce", "--json"])
    assert res.exit_code == 0, res.output

    elf = (out / "fw.elf").read_bytes()
    assert elf[:4] == b"\x7fELF" and elf[4] == 1  # ELFCLASS32
    e_machine, = struct.unpack_from("<H", elf, 18)
    e_flags, = struct.unpack_from("<I", elf, 36)
    assert e_machine == EM_ARM and e_flags & EF_ARM_ABI_FLOAT_HARD, (e_machine, hex(e_flags))

    res = runner.invoke(cli, ["firmware", "run", str(out), "--json"])
    assert res.exit_code == 0, res.output
    run = json.loads(res.stdout)
    assert run["expected_source"] == "lce" and run["samples"] == SAMPLES
    assert run["mismatches"] == 0 and run["predictions"] == run["expected"]
    assert run["command"][0] == "qemu-arm"  # emulated, not run natively

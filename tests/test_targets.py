"""Targets as data: loading, validation, errors, toolchain detection, `edgebnn targets`."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgebnn.errors import TargetError, ToolchainError
from edgebnn.targets import (
    TARGETS_PATH_ENV,
    builtin_targets_dir,
    fill_template,
    list_targets,
    load_target,
    target_names,
    toolchain_status,
)

CORTEX_M4 = builtin_targets_dir() / "cortex-m4.toml"


def test_shipped_targets_load_and_match_their_files():
    names = target_names()
    assert {"x86_64", "arm64", "cortex-m4", "cortex-m7"} <= set(names)
    for t in list_targets():
        assert Path(t.source).stem == t.name
        assert t.kind in ("host", "linux", "mcu")
        assert t.cc and t.template
        if t.kind == "mcu":
            assert t.flash_bytes > 0 and t.ram_bytes > 0 and 0 < t.stack_bytes < t.ram_bytes
            assert t.emulator and "{elf}" in " ".join(t.emulator)
            # under -icount shift=0 one instruction is one nanosecond
            assert t.ticks_to_instructions == pytest.approx(1e9 / t.timer_hz)
        else:
            assert t.flash_bytes is None and t.ram_bytes is None


@pytest.mark.parametrize(
    "name,flash,ram,machine",
    [
        ("cortex-m4", 512 * 1024, 128 * 1024, "mps2-an386"),
        ("cortex-m7", 1024 * 1024, 320 * 1024, "mps2-an500"),
        ("cortex-m3", 256 * 1024, 64 * 1024, "mps2-an385"),
        ("stm32f405", 1024 * 1024, 128 * 1024, "netduinoplus2"),
        ("cortex-m0", 256 * 1024, 16 * 1024, "microbit"),
        ("cortex-m33", 512 * 1024, 128 * 1024, "mps2-an505"),
        ("cortex-m55", 512 * 1024, 128 * 1024, "mps3-an547"),
        ("rv32imc", 4 * 1024 * 1024, 256 * 1024, "virt"),
        ("nucleo-f411re", 512 * 1024, 128 * 1024, "netduinoplus2"),
    ],
    ids=["m4_stm32f4_class", "m7_stm32f7_class", "m3_small_part", "stm32f405_board",
         "m0_nrf51", "m33_an505", "m55_an547", "rv32imc_esp32c3_class", "nucleo_f411re_board"],
)
def test_mcu_budgets(name, flash, ram, machine):
    t = load_target(name)
    assert (t.flash_bytes, t.ram_bytes, t.qemu_machine) == (flash, ram, machine)
    assert t.emulator_command(elf="fw.elf")[-1] == "fw.elf"
    assert machine in t.emulator_command(elf="fw.elf")


def test_arm64_is_a72_under_qemu_user():
    t = load_target("arm64")
    assert "-mcpu=cortex-a72" in t.cflags
    cmd = t.emulator_command(exe="/x/fw.elf")
    assert cmd[:3] == ["qemu-aarch64", "-cpu", "cortex-a72"] and cmd[-1] == "/x/fw.elf"
    assert t.package_for("qemu-aarch64") == "qemu-user"


def test_real_board_memory_map_and_flash_tool():
    t = load_target("stm32f405")
    assert t.flash_origin == 0x08000000 and t.timer_hz == 168_000_000
    assert t.flash_command_line(bin="fw.bin") == ["st-flash", "--reset", "write", "fw.bin", "0x08000000"]
    assert t.package_for("st-flash") == "stlink-tools"


def test_unknown_target_lists_known():
    with pytest.raises(TargetError) as err:
        load_target("cortex-m99")
    msg = str(err.value)
    assert "cortex-m99" in msg and "cortex-m4" in msg and "arm64" in msg


def test_load_by_path_and_missing_path(tmp_path):
    assert load_target(str(CORTEX_M4)).name == "cortex-m4"
    with pytest.raises(TargetError, match="does not exist"):
        load_target(tmp_path / "nope.toml")


def _edit(text, old, new):
    assert old in text, old
    return text.replace(old, new)


BAD_EDITS = {
    "invalid_toml": (('kind = "mcu"', 'kind = "mcu'), "not valid TOML"),
    "missing_cc": (('cc = "arm-none-eabi-gcc"\n', ""), "toolchain.cc"),
    "flash_not_int": (("flash_bytes = 524288", 'flash_bytes = "512K"'), "memory.flash_bytes"),
    "bad_kind": (('kind = "mcu"', 'kind = "fpga"'), "kind"),
    "unknown_field": (('kernels = "mcu"', 'kernels = "mcu"\nkernel = "x"'), "kernel"),
    "cflags_not_list": (('cflags = ["-mcpu=cortex-m4",', 'cflags = "-O2"\nold = ["-mcpu=cortex-m4",'),
                        "toolchain.cflags"),
    "unknown_placeholder": (('"-kernel", "{elf}"', '"-kernel", "{image}"'), "{image}"),
    "stack_too_big": (("stack_bytes = 8192", "stack_bytes = 200000"), "stack_bytes"),
    "mcu_without_ram": (("ram_bytes = 131072\n", ""), "memory.ram_bytes"),
}


@pytest.mark.parametrize("case", sorted(BAD_EDITS), ids=sorted(BAD_EDITS))
def test_malformed_target_file_names_file_and_field(tmp_path, case):
    (old, new), field = BAD_EDITS[case]
    path = tmp_path / "cortex-m4.toml"
    path.write_text(_edit(CORTEX_M4.read_text(), old, new))
    with pytest.raises(TargetError) as err:
        load_target(path)
    assert str(path) in str(err.value)
    assert field in str(err.value)


def test_name_must_match_file_when_loaded_by_name(tmp_path, monkeypatch):
    (tmp_path / "myboard.toml").write_text(CORTEX_M4.read_text())
    monkeypatch.setenv(TARGETS_PATH_ENV, str(tmp_path))
    with pytest.raises(TargetError, match="must match"):
        load_target("myboard")


def test_adding_a_board_is_adding_a_file(tmp_path, monkeypatch):
    text = _edit(CORTEX_M4.read_text(), 'name = "cortex-m4"', 'name = "my-f401"')
    text = _edit(text, "flash_bytes = 524288", "flash_bytes = 262144")
    (tmp_path / "my-f401.toml").write_text(text)
    monkeypatch.setenv(TARGETS_PATH_ENV, str(tmp_path))
    assert "my-f401" in target_names()
    t = load_target("my-f401")
    assert t.flash_bytes == 262144 and t.cpu == "cortex-m4"


def test_fill_template_missing_placeholder():
    assert fill_template(["x", "{elf}"], {"elf": "a.elf"}) == ["x", "a.elf"]
    with pytest.raises(TargetError, match="elf"):
        fill_template(["{elf}"], {"bin": "a.bin"})


def _fake_exe(directory: Path, name: str) -> Path:
    p = directory / name
    p.write_text("#!/bin/sh\necho \"$0 $@\"\n")
    p.chmod(p.stat().st_mode | stat.S_IEXEC)
    return p


def test_toolchain_status_follows_path(tmp_path, monkeypatch):
    t = load_target("cortex-m4")
    monkeypatch.setenv("PATH", str(tmp_path))
    st = toolchain_status(t)
    assert not st["build"] and not st["run"] and not st["flash"]
    assert st["tools"]["cc"] == {"executable": "arm-none-eabi-gcc", "path": None, "found": False,
                                 "package": "gcc-arm-none-eabi"}
    for exe in ("arm-none-eabi-gcc", "arm-none-eabi-objcopy", "arm-none-eabi-size", "openocd"):
        _fake_exe(tmp_path, exe)
    st = toolchain_status(t)
    assert st["build"] and st["flash"] and not st["run"]
    assert st["tools"]["emulator"]["package"] == "qemu-system-arm"


def test_missing_executable_names_debian_package(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolchainError) as err:
        load_target("arm64").require("aarch64-linux-gnu-gcc")
    assert "aarch64-linux-gnu-gcc" in str(err.value) and "gcc-aarch64-linux-gnu" in str(err.value)


def test_cli_targets_json_and_table():
    from edgebnn.cli import main

    res = CliRunner().invoke(main, ["targets", "--json"])
    assert res.exit_code == 0, res.output
    data = {d["name"]: d for d in json.loads(res.output)}
    assert data["cortex-m4"]["flash_bytes"] == 524288
    assert data["arm64"]["toolchain"]["tools"]["emulator"]["executable"] == "qemu-aarch64"
    res = CliRunner().invoke(main, ["targets"])
    assert res.exit_code == 0 and "cortex-m7" in res.output and "320 KiB" in res.output


def test_targets_and_firmware_commands_do_not_import_tensorflow():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from edgebnn.cli import main\n"
        "r = CliRunner().invoke(main, ['targets'])\n"
        "assert r.exit_code == 0, r.output\n"
        "r = CliRunner().invoke(main, ['firmware', '--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "import edgebnn.firmware\n"
        "bad = [m for m in ('tensorflow', 'larq', 'tf_keras', 'larq_compute_engine') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr

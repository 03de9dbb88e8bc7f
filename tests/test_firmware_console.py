"""Firmware consoles: semihosting or the board's UART (edgebnn.firmware.console).

A UART build must print the same report as the semihosting build, contain
no semihosting instruction, and run under an emulator started without
semihosting; `firmware run` reads the serial port and stops the emulator at
the firmware's exit line.
"""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from edgebnn.errors import TargetError, ToolchainError, UnsafeInputError
from edgebnn.escape import c_uint32
from edgebnn.firmware import ModelSources, SampleSet, build_project, run_firmware, write_project
from edgebnn.firmware.console import UART_DRIVERS, for_console, uart_header
from edgebnn.targets import builtin_targets_dir, load_target, toolchain_status

UART_TARGETS = ("cortex-m4", "stm32f405", "nucleo-f411re", "cortex-m0", "rv32imc")
N_IN, N_OUT = 16, 4


def need_target(name):
    status = toolchain_status(name)
    if not status["run"]:
        missing = [f"{t['executable']} (Debian package {t['package'] or '?'})"
                   for role, t in sorted(status["tools"].items()) if role != "flash" and not t["found"]]
        pytest.skip(f"target {name} cannot build and run here: missing {', '.join(missing)}")
    return load_target(name)


def standin(seed=0, wrong=()):
    """An integer-weight dense layer (C and numpy agree exactly) and samples."""
    rng = np.random.default_rng(seed)
    w = rng.integers(-8, 9, size=(N_OUT, N_IN))
    body = ",".join(f"{v}.0f" for v in w.ravel())
    header = (f"#define MODEL_INPUT_SIZE {N_IN}\n#define MODEL_OUTPUT_SIZE {N_OUT}\n"
              "int model_invoke(const float *input, float *output);\n")
    source = ('#include "model.h"\n'
              f"static const float model_w[{N_OUT * N_IN}] = {{{body}}};\n"
              "int model_invoke(const float *input, float *output) {\n"
              f"  for (int o = 0; o < {N_OUT}; ++o) {{\n    float s = 0.0f;\n"
              f"    for (int i = 0; i < {N_IN}; ++i) s += model_w[o * {N_IN} + i] * input[i];\n"
              "    output[o] = s;\n  }\n  return 0;\n}\n")
    model = ModelSources(name="model", files={"model.h": header, "model.c": source},
                         input_size=N_IN, output_size=N_OUT)
    x = rng.integers(0, 256, size=(7, N_IN), dtype=np.uint8)
    expected = (x.astype(np.int64) @ w.T).argmax(axis=1)
    for i in wrong:
        expected[i] = (expected[i] + 1) % N_OUT
    return model, SampleSet(inputs=x, expected=expected, source="given", origin="test")


def board(tmp_path, base, edits, name="board"):
    """A copy of a shipped target file with text replacements."""
    text = (builtin_targets_dir() / f"{base}.toml").read_text().replace(
        f'name = "{base}"', f'name = "{name}"')
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def semihosting_calls(elf, target) -> int:
    """How many semihosting trap instructions the image holds."""
    objdump = target.objcopy.replace("objcopy", "objdump")
    out = subprocess.run([objdump, "-d", str(elf)], capture_output=True, text=True, check=True).stdout
    # Arm M-profile: BKPT 0xAB; RISC-V: the ebreak between slli/srai x0
    pattern = r"\bebreak\b" if target.template == "riscv" else r"\bbkpt\s+0x00ab\b"
    return len(re.findall(pattern, out))


# ------------------------------------------------------------- under QEMU


@pytest.mark.qemu
@pytest.mark.parametrize("name", UART_TARGETS)
def test_uart_build_reports_what_the_semihosting_build_does(tmp_path, name):
    target = need_target(name)
    model, samples = standin()
    runs = {}
    for console in ("semihosting", "uart"):
        d = tmp_path / console
        meta = write_project(d, target=name, model=model, samples=samples, console=console)
        assert meta["console"] == console
        build = build_project(d)
        assert (semihosting_calls(build.elf, target) > 0) == (console == "semihosting")
        runs[console] = run_firmware(d, timeout=60)
    semi, uart = runs["semihosting"], runs["uart"]
    assert uart.predictions == semi.predictions == [int(v) for v in samples.expected]
    assert uart.ok and uart.exit_code == 0 and uart.mismatches == 0
    assert not any("semihosting" in w for w in uart.command)
    assert any("semihosting" in w for w in semi.command)
    assert "EBNN exit status=0" in uart.output
    # the same code between the two timer reads, to one tick of the timer
    # (where the tick edges fall differs with the code before)
    for a, b in zip(uart.instructions, semi.instructions):
        assert abs(a - b) <= target.ticks_to_instructions + 1, (uart.instructions, semi.instructions)


@pytest.mark.qemu
def test_uart_exit_status_is_main_s_return_value(tmp_path):
    need_target("cortex-m4")
    model, samples = standin(wrong=(2, 3, 5))
    d = tmp_path / "fw"
    write_project(d, target="cortex-m4", model=model, samples=samples, console="uart")
    build_project(d)
    run = run_firmware(d, timeout=60)
    assert run.mismatches == 3 and run.exit_code == 3 and not run.ok


@pytest.mark.qemu
def test_uart_firmware_that_never_reaches_the_exit_line_times_out(tmp_path):
    """A UART build whose serial port goes elsewhere: run waits, then says so."""
    need_target("cortex-m4")
    path = board(tmp_path, "cortex-m4", [('"-serial", "stdio"', '"-serial", "null"')])
    model, samples = standin()
    d = tmp_path / "fw"
    write_project(d, target=path, model=model, samples=samples, console="uart")
    build_project(d)
    with pytest.raises(ToolchainError, match=r"did not print its exit line within 3 s"):
        run_firmware(d, timeout=3)


@pytest.mark.qemu
@pytest.mark.tf
@pytest.mark.slow
def test_cli_uart_build_of_the_shipped_bnn(tmp_path, shared_data):
    """`firmware build --console uart` of mnist-bcnn-binary on cortex-m4: the
    predictions read from the serial port are LCE's and the semihosting build's."""
    need_target("cortex-m4")
    from edgebnn.cli import main

    reports = {}
    for console in ("semihosting", "uart"):
        out = tmp_path / console
        res = CliRunner().invoke(main, [
            "firmware", "build", "mnist-bcnn-binary", "-t", "cortex-m4", "--console", console,
            "-o", str(out), "--samples", "10", "--data-dir", str(shared_data / "mnist"),
            "--expected", "lce", "--json"])
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["metadata"]["console"] == console
        res = CliRunner().invoke(main, ["firmware", "run", str(out), "--json"])
        assert res.exit_code == 0, res.output
        reports[console] = json.loads(res.stdout)
    semi, uart = reports["semihosting"], reports["uart"]
    assert uart["predictions"] == semi["predictions"] == semi["expected"] == uart["expected"]
    assert uart["expected_source"] == "lce" and uart["mismatches"] == 0
    # without semihosting's stdio buffers the UART image needs less RAM
    assert uart["size"]["ram_total"] < semi["size"]["ram_total"]


# ------------------------------------------------------------ without QEMU


def test_uart_header_from_the_target_file():
    t = for_console(load_target("stm32f405"), "uart")
    text = uart_header(t)
    assert "#define EBNN_UART_DRIVER 2" in text
    assert "#define EBNN_UART_BASE 0x40011000u" in text
    # 16 MHz / 115200 baud = 138.9 -> BRR 139
    assert "#define EBNN_UART_BAUD_REGISTER 0x0000008Bu" in text
    assert "{0x40020024u, 0x000000F0u, 0x00000070u}," in text
    assert "#define EBNN_UART_INIT_COUNT 4" in text


@pytest.mark.parametrize("driver,baud,clock,register", [
    ("cmsdk-apb", 115200, 25_000_000, 217),
    ("stm32-usart", 9600, 16_000_000, 1667),
    ("ns16550", 115200, 1_843_200, 1),
    ("nrf51-uart", 115200, None, 0x01D7E000),
], ids=["cmsdk_25MHz", "stm32_9600", "16550_1_8432MHz", "nrf51_table"])
def test_baud_registers(driver, baud, clock, register):
    assert UART_DRIVERS[driver].baud_register(baud, clock) == register


def test_semihosting_builds_leave_out_the_uart_source(tmp_path):
    model, samples = standin()
    write_project(tmp_path / "s", target="cortex-m4", model=model, samples=samples)
    write_project(tmp_path / "u", target="cortex-m4", model=model, samples=samples, console="uart")
    assert not (tmp_path / "s" / "src" / "ebnn_console_uart.c").exists()
    assert (tmp_path / "u" / "src" / "ebnn_console_uart.c").is_file()
    assert "build/src/ebnn_console_uart.o" in (tmp_path / "u" / "Makefile").read_text()
    semi = (tmp_path / "s" / "Makefile").read_text()
    uart = (tmp_path / "u" / "Makefile").read_text()
    assert "--oslib=semihost" in semi and "semihost" not in uart.split("LDFLAGS =")[1].split("\n")[0]
    assert "-serial stdio" in uart and "semihosting-config" not in uart.split("RUN =")[1]


def test_board_files_default_to_their_uart():
    """The Nucleo's file is for the board: it prints on the ST-LINK's VCP
    (USART2) unless told otherwise; the QEMU-first files use semihosting."""
    nucleo = load_target("nucleo-f411re")
    assert nucleo.console == "uart" and nucleo.uart.base == 0x40004400
    assert "-serial" in nucleo.serial_emulator and "null" in nucleo.serial_emulator  # USART2 = serial1
    assert {load_target(n).console for n in ("cortex-m4", "cortex-m0", "rv32imc")} == {"semihosting"}


def test_default_console_comes_from_the_target_file(tmp_path):
    path = board(tmp_path, "cortex-m4", [('default = "semihosting"', 'default = "uart"')])
    model, samples = standin()
    meta = write_project(tmp_path / "fw", target=path, model=model, samples=samples)
    assert meta["console"] == "uart"
    meta = write_project(tmp_path / "fw2", target=path, model=model, samples=samples,
                         console="semihosting")
    assert meta["console"] == "semihosting"


@pytest.mark.parametrize("edits,words", [
    ([('default = "semihosting"', 'default = "serial"')], ["console.default", "semihosting, uart", "serial"]),
    ([('driver = "cmsdk-apb"', 'driver = "pl011"')], ["console.uart.driver", "cmsdk-apb", "pl011"]),
    ([("baud = 115200", "baud = 9600\nparity = 1")], ["unknown field", "console.uart.parity"]),
    ([("clock_hz = 25000000\n", "")], ["needs 'console.uart.clock_hz'"]),
    ([("baud = 115200", "baud = 4000000")], ["console.uart.baud = 4000000", "BAUDDIV", "16..65535"]),
    ([("baud = 115200", "baud = 115200\ninit = [[1, 2]]")], ["console.uart.init[0]", "[1, 2]"]),
    ([("base = 0x40004000", "base = 0x140004000")], ["console.uart.base", "32-bit"]),
    ([('ldflags = ["-DPICOLIBC', 'ldflags = ["--oslib=semihost", "-DPICOLIBC')],
     ["toolchain.ldflags holds --oslib=semihost", "console.semihosting_ldflags"]),
    ([('serial_command = ["qemu-system-arm"', 'serial_command = ["qemu-system-arm", "{kernel}"')],
     ["emulator.serial_command", "{kernel}"]),
], ids=["unknown_console", "unknown_driver", "unknown_field", "clock_missing", "baud_impossible",
        "bad_init_row", "base_too_big", "semihosting_in_toolchain", "serial_placeholder"])
def test_bad_console_tables_are_refused(tmp_path, edits, words):
    path = board(tmp_path, "cortex-m4", edits)
    with pytest.raises(TargetError) as err:
        load_target(path)
    for w in words + [str(path)]:
        assert w in str(err.value)


def test_uart_default_without_a_uart_table(tmp_path):
    path = board(tmp_path, "cortex-m3", [('[memory]', '[console]\ndefault = "uart"\n\n[memory]')])
    with pytest.raises(TargetError, match=r"console.default is \"uart\" but there is no \[console.uart\]"):
        load_target(path)


def test_uart_for_a_target_without_one_is_refused(tmp_path):
    model, samples = standin()
    with pytest.raises(TargetError, match=r"target 'cortex-m3' .* has no UART console"):
        write_project(tmp_path / "fw", target="cortex-m3", model=model, samples=samples, console="uart")
    with pytest.raises(TargetError, match=r"microcontroller targets only; target 'x86_64'"):
        write_project(tmp_path / "fw", target="x86_64", model=model, samples=samples, console="uart")


def test_cli_console_choice_is_validated(tmp_path):
    from edgebnn.cli import main

    res = CliRunner().invoke(main, ["firmware", "build", "mnist-bcnn-binary", "-t", "cortex-m3",
                                    "--console", "uart", "-o", str(tmp_path / "fw")])
    assert res.exit_code != 0 and "has no UART console" in res.output
    assert not (tmp_path / "fw").exists()
    res = CliRunner().invoke(main, ["firmware", "build", "mnist-bcnn-binary", "-t", "cortex-m4",
                                    "--console", "usb", "-o", str(tmp_path / "fw")])
    assert res.exit_code == 2 and "'usb' is not one of 'semihosting', 'uart'" in res.output


def test_uart_without_serial_emulator_says_flash_it(tmp_path):
    path = board(tmp_path, "cortex-m4", [])
    text = path.read_text()
    text = re.sub(r"serial_command = \[[^\]]*\]\n", "", text)
    path.write_text(text)
    model, samples = standin()
    d = tmp_path / "fw"
    write_project(d, target=path, model=model, samples=samples, console="uart")
    (d / "fw.elf").write_bytes(b"\x7fELF")
    with pytest.raises(TargetError, match="runs only on the board: flash it"):
        run_firmware(d)


def test_c_uint32_refuses_anything_but_a_32_bit_integer():
    assert c_uint32(0, what="x") == "0x00000000u"
    for bad in (-1, 2**32, True, 1.0, "0x1; int pwned", None):
        with pytest.raises(UnsafeInputError, match="console.uart.base"):
            c_uint32(bad, what="console.uart.base")

"""Where a firmware prints: semihosting (QEMU, a debugger) or the board's UART.

A target file picks the default and describes the board's serial port::

    [console]
    default = "semihosting"            # or "uart"
    semihosting_ldflags = ["--oslib=semihost", "--crt0=semihost"]
    uart_ldflags = ["--crt0=hosted"]   # picolibc: exit(main()), no OS calls

    [console.uart]
    driver = "cmsdk-apb"               # see UART_DRIVERS
    base = 0x40004000                  # the UART's registers
    clock_hz = 25000000                # its input clock (for the baud divisor)
    baud = 115200
    # register writes before the UART is set up, in order, each
    # *address = (*address & ~mask) | value: clocks, pins, pin muxes
    init = [[0x40023830, 0x1, 0x1]]

    [emulator]
    serial_command = ["qemu-system-arm", "-M", "mps2-an386", "-display", "none",
                      "-monitor", "none", "-serial", "stdio", "-icount", "shift=0",
                      "-kernel", "{elf}"]

A UART build (``edgebnn firmware build --console uart``) makes no
semihosting call at all, so it runs on a board without a debugger: printf
goes to the UART through picolibc's ``stdout`` hook, and when main returns,
``_exit`` prints ``EBNN exit status=<main's return value>`` and waits for
interrupts forever. ``edgebnn firmware run`` starts the emulator with the
target's ``serial_command`` (no semihosting), reads the serial port from the
emulator's stdout and stops the emulator once that line has been printed.

Example:
    >>> from edgebnn.targets import load_target
    >>> t = for_console(load_target("cortex-m4"), "uart")
    >>> t.console, t.uart.driver, hex(t.uart.base)
    ('uart', 'cmsdk-apb', '0x40004000')
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import subprocess
import threading
import time
from dataclasses import dataclass

from edgebnn.errors import TargetError, ToolchainError

CONSOLES = ("semihosting", "uart")
#: The C source every UART build compiles (firmware/templates/common/).
UART_SOURCE = "ebnn_console_uart.c"
#: The generated header with the board's UART settings.
UART_HEADER = "ebnn_console_config.h"
#: Files of firmware/templates/common/ that only a UART build needs.
CONSOLE_ONLY_FILES = (UART_SOURCE,)
#: The line a UART build's ``_exit`` prints (then the firmware idles).
EXIT_RE = re.compile(r"^EBNN exit status=(\d+)\s*$", re.M)

# nRF51 reference manual, UART BAUDRATE register: the values for the
# standard rates (they are not clock / baud).
_NRF51_BAUD = {
    1200: 0x0004F000, 2400: 0x0009D000, 4800: 0x0013B000, 9600: 0x00275000,
    14400: 0x003B0000, 19200: 0x004EA000, 28800: 0x0075F000, 38400: 0x009D5000,
    57600: 0x00EBF000, 76800: 0x013A9000, 115200: 0x01D7E000, 230400: 0x03AFB000,
    250000: 0x04000000, 460800: 0x075F7000, 921600: 0x0EBED000, 1000000: 0x10000000,
}


def _divisor(value: float, minimum: int, what: str) -> int:
    div = int(round(value))
    if div < minimum or div > 0xFFFF:
        raise ValueError(f"{what} would be {value:.2f}; it must lie in {minimum}..65535")
    return div


@dataclass(frozen=True)
class UartDriver:
    """A polled, transmit-only UART driver in ebnn_console_uart.c.

    ``c_id`` is its ``EBNN_UART_DRIVER`` number; ``baud_register`` turns
    (baud, clock_hz) into the value of its baud rate register.
    """

    name: str
    c_id: int
    needs_clock: bool
    description: str

    def baud_register(self, baud: int, clock_hz: int | None) -> int:
        if self.name == "cmsdk-apb":  # BAUDDIV = clock / baud, at least 16
            return _divisor(clock_hz / baud, 16, "BAUDDIV (clock_hz / baud)")
        if self.name == "stm32-usart":  # BRR = clock / baud with 16x oversampling
            return _divisor(clock_hz / baud, 16, "BRR (clock_hz / baud)")
        if self.name == "ns16550":  # divisor latch = clock / (16 baud)
            return _divisor(clock_hz / (16 * baud), 1, "the divisor latch (clock_hz / (16 baud))")
        if baud not in _NRF51_BAUD:
            raise ValueError(f"the nRF51 UART supports the baud rates "
                             f"{', '.join(str(b) for b in sorted(_NRF51_BAUD))}")
        return _NRF51_BAUD[baud]


UART_DRIVERS = {d.name: d for d in (
    UartDriver("cmsdk-apb", 1, True, "Arm CMSDK APB UART (MPS2/MPS3 boards)"),
    UartDriver("stm32-usart", 2, True, "STM32F1/F2/F4 USART (SR/DR/BRR/CR1 layout)"),
    UartDriver("nrf51-uart", 3, False, "Nordic nRF51 UART (micro:bit v1)"),
    UartDriver("ns16550", 4, True, "16550-compatible UART (QEMU riscv virt, many SoCs)"),
)}


@dataclass(frozen=True)
class UartConfig:
    """A board's serial port, from a target file's ``[console.uart]`` table."""

    driver: str
    base: int
    baud: int
    clock_hz: int | None
    init: tuple
    baud_register: int


def parse_console(con, emu, path, toolchain_ldflags) -> dict:
    """The console fields of a :class:`~edgebnn.targets.Target`.

    Args:
        con: the ``[console]`` table's reader (:class:`edgebnn.targets._Reader`).
        emu: the ``[emulator]`` table's reader (for ``serial_command``).
        path: the target file, for messages.
        toolchain_ldflags: ``toolchain.ldflags``, checked to link no
            semihosting when the target has a UART.

    Raises:
        TargetError: an unknown console or driver, a missing field, a baud
            rate the driver cannot make, or semihosting flags left in
            ``toolchain.ldflags`` of a target with a UART.
    """
    default = con.get("default", "str", default="semihosting")
    if default not in CONSOLES:
        raise con._err("default", f"one of {', '.join(CONSOLES)}", default)
    flags = tuple((name, con.get(f"{name}_ldflags", "strlist", default=())) for name in CONSOLES)
    serial = emu.get("serial_command", "strlist", default=())
    uart = None
    if "uart" in con.data:
        ur = con.table("uart")
        uart = _parse_uart(ur, path)
        ur.check_unknown()
        leaked = [f for f in toolchain_ldflags if "semihost" in f]
        if leaked:
            raise TargetError(
                f"target file {path}: toolchain.ldflags holds {', '.join(leaked)}, which a UART "
                "build must not link (it would need a debugger); move them to "
                "console.semihosting_ldflags"
            )
    elif default == "uart":
        raise TargetError(f"target file {path}: console.default is \"uart\" but there is no "
                          "[console.uart] table describing the board's UART")
    return {"console": default, "console_ldflags": flags, "uart": uart, "serial_emulator": serial}


def _parse_uart(ur, path) -> UartConfig:
    name = ur.get("driver", "str", required=True)
    if name not in UART_DRIVERS:
        raise ur._err("driver", f"one of {', '.join(sorted(UART_DRIVERS))}", name)
    driver = UART_DRIVERS[name]
    base = ur.get("base", "int", required=True)
    baud = ur.get("baud", "int", default=115200)
    clock = ur.get("clock_hz", "int")
    for key, value in (("base", base), ("clock_hz", clock)):
        if value is not None and value > 0xFFFFFFFF:
            raise ur._err(key, "a 32-bit value", value)
    if baud < 1:
        raise ur._err("baud", "a positive integer", baud)
    if driver.needs_clock and not clock:
        raise TargetError(f"target file {path}: the {name} driver needs 'console.uart.clock_hz' "
                          "(the UART's input clock) to set the baud rate")
    try:
        reg = driver.baud_register(baud, clock)
    except ValueError as exc:
        raise TargetError(f"target file {path}: console.uart.baud = {baud} with clock_hz = {clock}: "
                          f"{exc}") from exc
    init = ur.get("init", "list", default=[])
    if not isinstance(init, list):
        raise ur._err("init", "a list of [address, mask, value] triples", init)
    rows = []
    for i, row in enumerate(init):
        if (not isinstance(row, list) or len(row) != 3
                or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 0xFFFFFFFF
                           for v in row)):
            raise TargetError(f"target file {path}: console.uart.init[{i}] must be "
                              f"[address, mask, value] with 32-bit unsigned integers, found {row!r}")
        rows.append(tuple(row))
    return UartConfig(driver=name, base=base, baud=baud, clock_hz=clock, init=tuple(rows),
                      baud_register=reg)


def for_console(target, console: str | None = None):
    """``target`` as built for ``console`` (None: the target's default).

    The console's link flags are appended to ``ldflags``; for a UART build
    ``emulator`` becomes the target's ``serial_command``.

    Raises:
        TargetError: an unknown console, or ``"uart"`` for a target without
            a ``[console.uart]`` table.
    """
    console = console or target.console
    if console not in CONSOLES:
        raise TargetError(f"console must be one of {', '.join(CONSOLES)}, found {console!r}")
    if console == "uart" and target.uart is None:
        raise TargetError(
            f"target '{target.name}' ({target.source}) has no UART console: its file has no "
            "[console.uart] table (driver, base, clock_hz, baud); it prints through semihosting only"
        )
    extra = dict(target.console_ldflags).get(console, ())
    changes = {"console": console, "ldflags": tuple(target.ldflags) + tuple(extra)}
    if console == "uart":
        changes["emulator"] = tuple(target.serial_emulator)
    return dataclasses.replace(target, **changes)


def console_files(target) -> dict:
    """``{src/NAME: text}`` the console adds to a project (none for semihosting)."""
    if target.console != "uart":
        return {}
    return {f"src/{UART_HEADER}": uart_header(target)}


def console_sources(target) -> list:
    """C sources (relative to the project) the console adds to the build."""
    return [f"src/{UART_SOURCE}"] if target.console == "uart" else []


def uart_header(target) -> str:
    """``ebnn_console_config.h``: the board's UART for ebnn_console_uart.c."""
    from edgebnn.escape import c_comment, c_uint32

    u = target.uart
    driver = UART_DRIVERS[u.driver]
    where = f"target file {target.source or target.name}: console.uart"
    init = [f"  {{{c_uint32(a, what=f'{where}.init')}, {c_uint32(m, what=f'{where}.init')}, "
            f"{c_uint32(v, what=f'{where}.init')}}}," for a, m, v in u.init]
    lines = [
        f"/* edgebnn firmware console: the UART of target {c_comment(target.name)} */",
        f"/* driver {c_comment(u.driver)} ({c_comment(driver.description)}), {u.baud} baud */",
        "#ifndef EDGEBNN_FIRMWARE_EBNN_CONSOLE_CONFIG_H_",
        "#define EDGEBNN_FIRMWARE_EBNN_CONSOLE_CONFIG_H_",
        "",
        "#include <stdint.h>",
        "",
        f"#define EBNN_UART_DRIVER {driver.c_id}",
        f"#define EBNN_UART_BASE {c_uint32(u.base, what=f'{where}.base')}",
        f"#define EBNN_UART_BAUD_REGISTER {c_uint32(u.baud_register, what=f'{where}.baud')}",
        f"#define EBNN_UART_INIT_COUNT {len(u.init)}",
        "",
        "/* {address, mask, value}: *address = (*address & ~mask) | value, in order. */",
        f"static const uint32_t ebnn_uart_init[{max(len(u.init), 1)}][3] = {{",
        *(init or ["  {0u, 0u, 0u},"]),
        "};",
        "",
        "#endif /* EDGEBNN_FIRMWARE_EBNN_CONSOLE_CONFIG_H_ */",
        "",
    ]
    return "\n".join(lines)


def exit_status(output: str) -> int | None:
    """The status a UART build's ``_exit`` printed, or None."""
    m = EXIT_RE.search(output)
    return int(m.group(1)) if m else None


def run_serial(cmd: list, cwd, *, timeout: float) -> tuple:
    """Run an emulator whose stdout is the board's serial port.

    Reads until the firmware prints its ``EBNN exit`` line, then stops the
    emulator (a UART build never ends on its own).

    Returns:
        ``(output, exit_status)``.

    Raises:
        ToolchainError: the emulator could not start, or ended or timed
            out before the exit line.
    """
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    except OSError as exc:
        raise ToolchainError(f"cannot start {shlex.join(cmd)}: {exc}") from exc
    chunks, errors = [], []
    done = threading.Event()

    def read_stdout():
        for line in iter(proc.stdout.readline, b""):
            chunks.append(line)
            if EXIT_RE.search(line.decode("utf-8", "replace")):
                break
        done.set()

    def read_stderr():
        errors.append(proc.stderr.read())

    readers = [threading.Thread(target=read_stdout, daemon=True),
               threading.Thread(target=read_stderr, daemon=True)]
    for r in readers:
        r.start()
    t0 = time.monotonic()
    finished = done.wait(timeout)
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for r in readers:
        r.join(5)
    output = b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")
    status = exit_status(output)
    if status is None:
        err = b"".join(errors).decode("utf-8", "replace").strip()
        tail = "\n".join((output.strip().splitlines() + err.splitlines())[-10:])
        why = (f"did not print its exit line within {timeout:g} s" if not finished
               else f"ended (exit {proc.returncode}) before printing its exit line")
        raise ToolchainError(
            f"the UART firmware {why} under {shlex.join(cmd)} after {time.monotonic() - t0:.1f} s "
            f"(hung, faulted, or the serial port is not on the emulator's stdout). "
            f"Last output:\n{tail or '(none)'}"
        )
    return output, status

"""The small-part targets (Cortex-M0, M33, M55, RV32IMC): instruction counting
calibrated on each board, and the shipped BNN built, run under QEMU and
compared with LCE on every embedded sample.

Each test is skipped, naming the missing executables and their Debian
packages, when the target's toolchain or emulator is not installed here.
"""

import importlib.util

import numpy as np
import pytest

from edgebnn.firmware import (
    ModelSources,
    SampleSet,
    build_firmware,
    build_project,
    run_firmware,
    write_project,
)
from edgebnn.targets import list_targets, load_target, toolchain_status

NEW_TARGETS = ("cortex-m0", "cortex-m33", "cortex-m55", "rv32imc")
MCU_TARGETS = tuple(t.name for t in list_targets() if t.kind == "mcu")
LOOP_ITERATIONS = 100_000


def need_target(name):
    """Skip unless the target's compiler and emulator are installed."""
    status = toolchain_status(name)
    if status["run"]:
        return load_target(name)
    missing = [f"{tool['executable']} (Debian package {tool['package'] or '?'})"
               for role, tool in sorted(status["tools"].items())
               if role != "flash" and not tool["found"]]
    pytest.skip(f"target {name} cannot build and run here: missing {', '.join(missing)}")


def loop_model(arch: str, iterations: int) -> ModelSources:
    """A stand-in model whose invoke runs a two-instruction countdown loop."""
    loop = {
        # decrement-and-set-flags, branch: Thumb-1 (M0) and Thumb-2 alike
        "arm": '".syntax unified\\n1: subs %0, %0, #1\\n bne 1b" : "+l"(n) : : "cc"',
        "riscv": '"1: addi %0, %0, -1\\n bnez %0, 1b" : "+r"(n)',
    }[arch]
    header = ("#define MODEL_INPUT_SIZE 4\n#define MODEL_OUTPUT_SIZE 2\n"
              "int model_invoke(const float *input, float *output);\n")
    source = ('#include "model.h"\n'
              "int model_invoke(const float *input, float *output) {\n"
              f"  unsigned n = {iterations}u;\n  __asm__ volatile({loop});\n"
              "  output[0] = input[0];\n  output[1] = input[1];\n  return 0;\n}\n")
    return ModelSources(name="model", files={"model.h": header, "model.c": source},
                        input_size=4, output_size=2)


def two_samples():
    x = np.array([[1, 2, 3, 4], [5, 1, 0, 0]], np.uint8)
    return SampleSet(inputs=x, expected=np.array([1, 0]), source="given", origin="test")


def arch_of(target) -> str:
    return "riscv" if target.template == "riscv" else "arm"


@pytest.mark.qemu
@pytest.mark.parametrize("name", MCU_TARGETS)
def test_instruction_count_is_calibrated(tmp_path, name):
    """A loop of 100,000 x 2 instructions counts 200,000 (+ the call and the
    timer reads, + one tick of granularity): the board's timer clock and
    instructions_per_tick in the target file are right."""
    target = need_target(name)
    d = tmp_path / name
    write_project(d, target=name, model=loop_model(arch_of(target), LOOP_ITERATIONS),
                  samples=two_samples())
    build_project(d)
    run = run_firmware(d, timeout=60)
    assert run.ok and run.predictions == [1, 0]
    want = 2 * LOOP_ITERATIONS
    for n in run.instructions:
        assert want <= n <= want + 60 + target.ticks_to_instructions, (name, run.instructions)
    assert "not a latency" in run.instructions_label


def _lce_or_host():
    return "lce" if importlib.util.find_spec("larq_compute_engine") else "host"


def _build_and_run(bcnn, target, out, data_dir, **kw):
    build = build_firmware(bcnn, target, out, samples=10, data_dir=data_dir,
                           expected=_lce_or_host(), **kw)
    run = run_firmware(build.directory, timeout=120)
    return build, run


@pytest.mark.qemu
@pytest.mark.parametrize("name", NEW_TARGETS)
def test_shipped_bnn_agrees_with_lce(tmp_path, shared_data, name):
    """mnist-bcnn-binary (float I/O) on each new target: every embedded MNIST
    test image gets LCE's prediction; the image fits the target's budget."""
    target = need_target(name)
    build, run = _build_and_run("mnist-bcnn-binary", name, tmp_path / "fw", shared_data / "mnist")
    assert build.metadata["expected_source"] == ("lce" if _lce_or_host() == "lce" else "host-c")
    assert run.ok and run.mismatches == 0, list(zip(run.predictions, run.expected))
    assert len(run.predictions) == 10
    size = build.size
    assert size.fits and size.flash_total <= target.flash_bytes and size.ram_total <= target.ram_bytes
    assert 0 < run.stack_peak < target.stack_bytes
    # The mcu kernels: ~1.6 M instructions with an FPU (3.3 M with ref), ~20x more in
    # software float.
    low, high = (2e7, 6e7) if name in ("cortex-m0", "rv32imc") else (1e6, 2.5e6)
    assert all(low < n < high for n in run.instructions), run.instructions


@pytest.mark.qemu
def test_float_bnn_fits_the_m0_with_little_to_spare(tmp_path, shared_data):
    """The float-I/O BNN's RAM on the 16 KiB Cortex-M0: arena, float I/O
    buffers, libc and the reserved stack; the measured stack peak must leave
    room in the reserved 4 KiB."""
    need_target("cortex-m0")
    build = build_firmware("mnist-bcnn-binary", "cortex-m0", tmp_path / "fw", samples=2,
                           data_dir=shared_data / "mnist", expected="host")
    ram = build.size.ram
    assert ram["stack"] == 4096 and build.size.ram_budget == 16 * 1024
    assert ram["arena"] + ram["io"] + ram["stack"] < build.size.ram_total <= 16 * 1024
    run = run_firmware(build.directory, timeout=60)
    assert run.ok and run.stack_peak < 0.8 * ram["stack"]

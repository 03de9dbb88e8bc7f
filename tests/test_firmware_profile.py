"""``edgebnn firmware run --profile``: instructions per kernel call on the MCU.

The profiling build is a copy of the project compiled with -DEBNN_PROFILE; the
generated invoke then marks each kernel call (``ebnn_profile_op``) on the
firmware's own tick counter. These tests check that the marks match the
generated calls, that the calls' figures add up to the unprofiled
per-inference count, and that the project itself is left as built.
"""

import json
import re

import pytest
from click.testing import CliRunner

from edgebnn.cli import main as cli
from edgebnn.errors import TargetError
from edgebnn.firmware import parse_output, read_metadata, run_firmware
from edgebnn.firmware.profile import profile_firmware


def _fixture_tflite(repo_root):
    return repo_root / "tests" / "fixtures" / "codegen" / "tiny_bcnn.tflite"


def test_every_kernel_call_is_marked_once_in_call_order(repo_root):
    from edgebnn.codegen.generator import generate

    gen = generate(str(_fixture_tflite(repo_root)), name="m", target="cortex-m4")
    c = gen.files["m.c"]
    marks = [int(v) for v in re.findall(r"EBNN_PROFILE_OP\((-?\d+)\);", c)]
    calls = [k for k in gen.ops if k["kernel"]]
    assert marks == [-1] + list(range(len(calls)))
    assert f"#define M_KERNEL_CALLS {len(calls)} " in gen.files["m.h"]
    # each mark directly follows its call's status check
    for k, call in enumerate(calls):
        assert re.search(rf"status = {call['kernel']}\(.*\);\n\s*if \(status != EBNN_OK\) "
                         rf"return \(int\)status;\n\s*EBNN_PROFILE_OP\({k}\);", c), call


def test_profile_lines_are_parsed_and_gaps_refused():
    head = "EBNN begin samples=1 input=4 output=2 timer=systick\nEBNN sample=0 pred=1 expected=1 ticks=9\n"
    end = "EBNN end mismatches=0 stack_peak=8 stack_size=64\n"
    got = parse_output(head + "EBNN profile call=1 ticks=5\nEBNN profile call=0 ticks=3\n" + end)
    assert got["profile"] == [3, 5]
    assert parse_output(head + end)["profile"] == []
    with pytest.raises(TargetError, match="skip calls"):
        parse_output(head + "EBNN profile call=0 ticks=3\nEBNN profile call=2 ticks=5\n" + end)


@pytest.fixture(scope="module")
def m4_project(tmp_path_factory, repo_root, shared_data):
    from edgebnn.firmware import build_firmware

    d = tmp_path_factory.mktemp("profile") / "fw"
    build_firmware(_fixture_tflite(repo_root), "cortex-m4", d, samples=4,
                   data_dir=shared_data / "mnist", dataset="mnist", expected="host")
    return d


@pytest.mark.qemu
def test_profile_adds_up_to_the_unprofiled_count(m4_project):
    before = {p.name: p.read_bytes() for p in m4_project.rglob("*") if p.is_file()}
    plain = run_firmware(m4_project, timeout=120)
    prof = profile_firmware(m4_project, timeout=120)
    calls = read_metadata(m4_project)["kernel_calls"]
    assert [c.kernel for c in prof.calls] == [c["kernel"] for c in calls]
    assert prof.mismatches == 0 and prof.samples == len(plain.predictions) == 4
    assert prof.unit == "instructions" and "not a latency" in prof.label
    # the bconv and the fused stem do real work; SysTick resolution is 40
    # instructions, so every call's figure is a multiple of 40 / samples
    heavy = [c for c in prof.calls if "bconv" in c.kernel or "fused" in c.kernel]
    assert heavy and all(c.per_inference > 1_000 for c in heavy)
    assert abs(sum(c.share for c in prof.calls) - 1.0) < 1e-9
    # the hooks cost little: the calls account for the profiled invoke within
    # 1%, and it for the unprofiled one within 2%
    mean_plain = sum(plain.instructions) / len(plain.instructions)
    assert 0 <= prof.unattributed < 0.01 * prof.invoke_per_inference
    assert abs(prof.invoke_per_inference - mean_plain) < 0.02 * mean_plain
    # the project is untouched: no file changed, the image is the unprofiled one
    after = {p.name: p.read_bytes() for p in m4_project.rglob("*") if p.is_file()}
    assert after == before
    assert b"ebnn_profile_op" not in (m4_project / "fw.elf").read_bytes()


@pytest.mark.qemu
def test_cli_prints_the_per_op_table_and_json(m4_project):
    res = CliRunner().invoke(cli, ["firmware", "run", str(m4_project), "--profile"])
    assert res.exit_code == 0, res.output
    assert "per-op profile (4 samples, instructions per inference)" in res.output
    assert "LceBconv2d" in res.output and "share" in res.output
    res = CliRunner().invoke(cli, ["firmware", "run", str(m4_project), "--profile", "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output[res.output.index("{"):])
    assert len(d["profile"]["calls"]) == len(read_metadata(m4_project)["kernel_calls"])
    assert d["profile"]["in_calls_per_inference"] > 0


def test_project_without_the_call_list_is_refused(m4_project, tmp_path):
    import shutil

    d = tmp_path / "old"
    shutil.copytree(m4_project, d)
    meta = json.loads((d / "firmware.json").read_text())
    del meta["kernel_calls"]
    (d / "firmware.json").write_text(json.dumps(meta))
    with pytest.raises(TargetError, match="lists no kernel calls"):
        profile_firmware(d)


@pytest.mark.qemu
def test_target_without_a_timer_is_refused(repo_root, tmp_path, shared_data):
    from edgebnn.firmware import build_firmware

    d = tmp_path / "fw"
    build_firmware(_fixture_tflite(repo_root), "x86_64", d, samples=2,
                   data_dir=shared_data / "mnist", dataset="mnist", expected="host")
    with pytest.raises(TargetError, match="no timer"):
        profile_firmware(d)

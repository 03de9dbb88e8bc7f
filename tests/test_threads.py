"""Threads in the _opt kernels (firmware/runtime/ebnn_threads.c): the same
words and floats for 1, 2 and 3 threads, and the thread count is honoured
($EBNN_NUM_THREADS, ebnn_set_threads)."""
import ctypes
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "runtime"))
import checks  # noqa: E402
import ebnn_ctypes as E  # noqa: E402


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    return E.build_runtime(tmp_path_factory.mktemp("threads"), extra_flags=[
        "-O3", "-march=native", "-ffp-contract=off", "-DEBNN_THREADS=1", "-pthread"])


@pytest.mark.parametrize("packed", [False, True], ids=["float", "packed"])
def test_bconv_results_identical_for_any_thread_count(lib, packed):
    rt = E.Runtime(lib, variant="opt", filter_t=True)
    rng = np.random.default_rng(11)
    x = rng.integers(-2**31, 2**31, size=(13, 12, 3), dtype=np.int64).astype(np.int32)
    filt = rng.integers(-2**31, 2**31, size=(40, 3, 3, 3), dtype=np.int64).astype(np.int32)
    kw = dict(padding="SAME", pad_value=1)
    if packed:
        kw["thresholds"] = rng.integers(0, 864, size=40).astype(np.int32)
    else:
        kw.update(multiplier=rng.normal(size=40).astype(np.float32), bias=rng.normal(size=40).astype(np.float32))
    outs = []
    for n in (1, 2, 3):
        assert rt.lib.ebnn_set_threads(ctypes.c_int32(n)) == 0
        outs.append(rt.bconv2d(x, 96, filt, **kw))
    assert outs[0].size > 0 and all(checks.bitexact(o, outs[0]) for o in outs[1:])
    assert checks.bitexact(outs[0], E.Runtime(lib).bconv2d(x, 96, filt, **kw))
    assert rt.lib.ebnn_set_threads(ctypes.c_int32(0)) != 0


def test_host_target_enables_threads_and_mcu_refuses_them(tmp_path):
    from edgebnn.errors import TargetError
    from edgebnn.targets import load_target

    assert load_target("x86_64").threads and load_target("arm64").threads
    assert not load_target("cortex-m4").threads
    text = Path(load_target("cortex-m4").source).read_text()
    bad = tmp_path / "m4threads.toml"
    bad.write_text(text.replace('name = "cortex-m4"', 'name = "m4threads"').replace("\n[", "\nthreads = true\n\n[", 1))
    with pytest.raises(TargetError, match="threads"):
        load_target(str(bad))

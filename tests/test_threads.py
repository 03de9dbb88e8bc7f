"""Threads in the _opt kernels (firmware/runtime/ebnn_threads.c): the same
words and floats for 1, 2 and 3 threads in every kernel that shares its
work, the pool really starts its workers (and keeps them), and the thread
count is honoured ($EBNN_NUM_THREADS, ebnn_set_threads)."""
import ctypes
import os
import shutil
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


# (in h, w, in channels, out channels, filter size, padding): a conv split by pixels, and dense layers of
# 1 and 3 pixels (fewer than a tile: split by blocks of 64 channels on AVX-512, 1000 = 15 x 64 + 40;
# both big enough for ebnn__parallel_for to use 2 and 3 threads)
BCONV_SHAPES = [((13, 12), 96, 40, 3, "SAME"), ((1, 1), 1024, 1000, 1, "VALID"), ((1, 3), 1024, 600, 1, "VALID")]


@pytest.mark.parametrize("shape", BCONV_SHAPES, ids=["conv", "dense1", "dense3"])
@pytest.mark.parametrize("packed", [False, True], ids=["float", "packed"])
def test_bconv_results_identical_for_any_thread_count(lib, packed, shape):
    (h, w), in_c, out_c, k, pad = shape
    rt = E.Runtime(lib, variant="opt", filter_t=True)
    rng = np.random.default_rng(11)
    x = rng.integers(-2**31, 2**31, size=(h, w, E.words(in_c)), dtype=np.int64).astype(np.int32)
    filt = rng.integers(-2**31, 2**31, size=(out_c, k, k, E.words(in_c)), dtype=np.int64).astype(np.int32)
    kw = dict(padding=pad, pad_value=1)
    if packed:
        kw["thresholds"] = rng.integers(0, k * k * in_c, size=out_c).astype(np.int32)
    else:
        kw.update(multiplier=rng.normal(size=out_c).astype(np.float32),
                  bias=rng.normal(size=out_c).astype(np.float32))
    outs = []
    for n in (3, 2, 1):  # threaded first: a one-thread call would leave the right counts on the stack
        assert rt.lib.ebnn_set_threads(ctypes.c_int32(n)) == 0
        outs.append(rt.bconv2d(x, in_c, filt, **kw))
    assert outs[0].size > 0 and all(checks.bitexact(o, outs[0]) for o in outs[1:])
    assert checks.bitexact(outs[0], E.Runtime(lib).bconv2d(x, in_c, filt, **kw))
    assert rt.lib.ebnn_set_threads(ctypes.c_int32(0)) != 0


def _shared_kernel_cases(rng):
    """(name, runtime method, args, kwargs), each large enough that the pool
    gives it 3 threads (EBNN_PAR_MIN_COST = 16384 operations per extra thread)."""
    f = lambda *shape: rng.normal(size=shape).astype(np.float32)  # noqa: E731
    x56 = f(56, 56, 32)
    x56[0, 0, :3] = [np.inf, -0.0, np.nan]
    return [
        ("conv2d_1x1", "conv2d", (f(14, 14, 64), f(64, 1, 1, 64), f(64)), dict(hwio=True, activation="RELU")),
        ("conv2d_1x1_k544", "conv2d", (f(14, 14, 544), f(192, 1, 1, 544), f(192)), dict(hwio=True)),
        ("conv2d_3x3_s2", "conv2d", (f(29, 27, 8), f(24, 3, 3, 8), f(24)),
         dict(hwio=True, stride=(2, 2), padding="SAME")),
        ("depthwise", "depthwise_conv2d", (f(14, 15, 64), f(1, 3, 3, 64), f(64)),
         dict(stride=(1, 1), padding="SAME", activation="RELU6")),
        ("add_broadcast", "add", (x56, f(32)), dict(activation="RELU")),
        ("mul_scalar", "mul", (x56, f(1)), {}),
        # b of 40: the threads' ranges (9 or 6 and 12 blocks of 2048 elements) start inside a b
        # period (with 24 they did not: 6 * 2048 is a multiple of 24)
        ("add_broadcast_40", "add", (f(30, 32, 40), f(40)), dict(activation="RELU6")),
        ("mul_elementwise", "mul", (x56, f(56, 56, 32)), {}),
        ("quantize", "quantize", (f(2048, 64),), {}),
        ("fully_connected", "fully_connected", (f(1, 512), f(1000, 512), f(1000)), {}),
        ("fully_connected_rows", "fully_connected", (f(5, 300), f(37, 300), f(37)), dict(activation="RELU")),
        ("fully_connected_io", "fully_connected", (f(2, 509), f(1000, 509), f(1000)), dict(io=True)),
        ("max_pool", "max_pool2d", (x56, (3, 3), (2, 2), "SAME"), {}),
        ("average_pool", "average_pool2d", (x56, (3, 3), (2, 2), "SAME"), dict(activation="RELU_N1_TO_1")),
        ("average_pool_7x7", "average_pool2d", (f(7, 7, 1024), (7, 7), (1, 1), "VALID"), {}),
    ]


@pytest.mark.parametrize("case", range(15), ids=[c[0] for c in _shared_kernel_cases(np.random.default_rng(0))])
def test_shared_kernels_identical_for_any_thread_count_and_to_ref(lib, case):
    name, method, args, kw = _shared_kernel_cases(np.random.default_rng(case))[case]
    rt = E.Runtime(lib, variant="opt")
    assert rt.fn("ebnn_" + {"conv2d": "conv2d", "quantize": "quantize"}.get(method, method)).endswith("_opt")
    outs = []
    for n in (1, 2, 3):
        assert rt.lib.ebnn_set_threads(ctypes.c_int32(n)) == 0
        outs.append(getattr(rt, method)(*args, **kw))
    want = getattr(E.Runtime(lib), method)(*args, **kw)
    assert outs[0].size > 0 and all(checks.bitexact(o, want) for o in outs)


def _task_count():
    return len(os.listdir("/proc/self/task"))


def test_pool_starts_its_workers_once_and_keeps_them(lib, tmp_path):
    # a private copy of the library: its pool has not started yet in this process
    copy = tmp_path / "libebnn_pool.so"
    shutil.copy(lib, copy)
    rt = E.Runtime(copy, variant="opt")
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(64, 64, 32)).astype(np.float32), rng.normal(size=32).astype(np.float32)
    before = _task_count()
    assert rt.lib.ebnn_set_threads(ctypes.c_int32(3)) == 0
    small = rt.add(a[:2], b)  # 4 Ki elements: below the cost of a hand-off, stays on this thread
    assert _task_count() == before
    first = rt.add(a, b)
    started = _task_count() - before
    assert started == 2  # workers 1 and 2; the caller takes range 0
    for _ in range(20):
        assert checks.bitexact(rt.add(a, b), first)
    assert _task_count() - before == 2  # kept, not started per call
    assert checks.bitexact(first, E.Runtime(lib).add(a, b)) and checks.bitexact(small, first[:2])


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


def test_prelu_identical_for_any_thread_count(lib):
    ref, rt = E.Runtime(lib), E.Runtime(lib, variant="opt")
    rng = np.random.default_rng(5)
    a = rng.normal(size=(1, 56, 56, 24)).astype(np.float32)
    alpha = rng.normal(size=24).astype(np.float32)
    want = ref.broadcast("prelu", a, alpha)
    assert rt.fn("ebnn_prelu") == "ebnn_prelu_opt"
    for n in (1, 2, 3):
        assert rt.lib.ebnn_set_threads(ctypes.c_int32(n)) == 0
        got = rt.broadcast("prelu", a, alpha)
        assert checks.bitexact(got, want)

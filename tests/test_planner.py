"""The arena planner: plans are valid, never below the lower bound, and meet it on chains."""

from pathlib import Path

import numpy as np
import pytest

import edgebnn
from edgebnn.codegen import generator
from edgebnn.codegen.planner import ALIGN, Buffer, align_up, check_plan, lower_bound, plan_arena


@pytest.mark.parametrize("seed", range(20))
def test_random_lifetimes_plan_is_valid_and_not_below_bound(seed):
    rng = np.random.default_rng(seed)
    bufs = []
    for i in range(int(rng.integers(1, 40))):
        first = int(rng.integers(0, 30))
        bufs.append(Buffer(i, int(rng.integers(1, 5000)), first, first + int(rng.integers(0, 6))))
    plan = plan_arena(bufs)
    check_plan(bufs, plan)
    assert plan.bound == lower_bound(bufs)
    assert 0 < plan.bound <= plan.size
    # the bound is reached by the op where it is computed: brute force over positions
    brute = max(sum(align_up(b.size) for b in bufs if b.first <= p <= b.last) for p in range(40))
    assert plan.bound == brute


@pytest.mark.parametrize("sizes", [[400, 100, 400], [64, 4096, 64, 4096, 16], [1000, 3, 999, 17, 5000, 5000]],
                         ids=["small_big_small", "alternating", "mixed"])
def test_chain_plan_equals_bound(sizes):
    """Op i reads buffer i-1 and writes buffer i: two buffers live at a time."""
    bufs = [Buffer(i, s, i, i + 1) for i, s in enumerate(sizes)]
    plan = plan_arena(bufs)
    check_plan(bufs, plan)
    assert plan.size == plan.bound == max(align_up(a) + align_up(b) for a, b in zip(sizes, sizes[1:]))


def test_no_buffers():
    plan = plan_arena([])
    assert plan.size == plan.bound == 0


@pytest.mark.parametrize("name", ["mnist-bcnn-binary", "mnist-bcnn-float"])
def test_generated_model_reports_bound(name):
    gen = generator.generate(Path(edgebnn.__file__).parent / "pretrained" / f"{name}.tflite", name="m")
    assert 0 < gen.arena_bound_bytes <= gen.arena_bytes
    assert f"#define M_ARENA_BOUND_BYTES {gen.arena_bound_bytes} " in gen.files["m.h"]
    assert gen.to_dict()["arena_bound_bytes"] == gen.arena_bound_bytes
    assert gen.arena_bytes % ALIGN == 0

"""Run every kernel check against a runtime built with -fsanitize=address,undefined.

Started by tests/test_runtime_kernels.py in a subprocess with libasan
preloaded (ASan must be the first DSO loaded); needs only numpy, not
TensorFlow. Exits 0 when every check passed and no sanitizer fired (UBSan is
built with -fno-sanitize-recover, so any report aborts with a non-zero code).

Usage: python sanitize_driver.py LIB.so
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import checks  # noqa: E402
from ebnn_ctypes import Runtime  # noqa: E402
from fixture_io import load_cases  # noqa: E402


def main(lib):
    rt = Runtime(lib)
    problems, n = [], 0
    for c, cases, extra in checks.load_lce_fixtures():
        for case in cases:
            n += 1
            problems += [f"lce c{c} op{case['op_index']}: {p}" for p in checks.check_lce_case(rt, case, extra["x"])]
    cases, extra = load_cases(checks.FIXTURES / "lce_bconv_edge.npz")
    for case in cases:
        n += 1
        problems += [f"lce edge op{case['op_index']}: {p}"
                     for p in checks.check_lce_case(rt, case, extra[f"x{case['input_size']}"])]
    cases, extra = load_cases(checks.FIXTURES / "tflite_float.npz")
    for case in cases:
        n += 1
        mine, ref, atol, _ = checks.run_float_case(rt, case, extra["x"])
        if not (np.abs(mine - ref) <= atol).all():
            problems.append(f"float {checks.float_case_id(case)} out of tolerance")
    rng = np.random.default_rng(7)
    for cfg in checks.fused_configs(np.random.default_rng(3), n=12):
        n += 1
        problems += [f"fused {checks.fused_id(cfg)}: {p}" for p in checks.check_fused(rt, cfg, rng)[0]]
    for p in problems:
        print(p)
    print(f"{n} checks, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

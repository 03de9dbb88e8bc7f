"""Run every int8 fixture check against a runtime built with ASan + UBSan.

Started by tests/test_runtime_int8.py in a subprocess with libasan preloaded
(ASan must be the first DSO loaded). Exits 0 when every check passed and no
sanitizer fired (UBSan is built with -fno-sanitize-recover).

Usage: python sanitize_int8_driver.py LIB.so
"""

import importlib.util
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "runtime"))

import int8_ctypes  # noqa: E402


def main(lib):
    spec = importlib.util.spec_from_file_location("int8_tests", TESTS / "test_runtime_int8.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    q = int8_ctypes.Int8Runtime(lib)
    problems = []
    for case in mod.CASES:
        try:
            mod._check(q, case)
        except AssertionError as exc:
            problems.append(f"{mod._case_id(case)}: {exc}")
    for p in problems:
        print(p)
    print(f"{len(mod.CASES)} checks, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

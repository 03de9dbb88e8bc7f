"""Shared fixtures: paths to the real datasets and the repository."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout (MNIST and Fashion-MNIST IDX files)."""
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.fail(f"the real datasets are expected at {SHARED_DATA} (../shared/data)")
    return SHARED_DATA


def pytest_addoption(parser):
    parser.addoption("--fuzz", type=int, default=0, metavar="N",
                     help="tests/test_fuzz.py: run N more fuzz cases, every exported one compiled with sanitizers")

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


@pytest.fixture(scope="module")
def tf_mods():
    """``(tensorflow, tf_keras, larq)``, imported with edgebnn's environment."""
    from edgebnn._tf import import_tf

    return import_tf()


@pytest.fixture(scope="module")
def mnist(shared_data):
    """The real MNIST from ``../shared/data``."""
    from edgebnn.datasets import load_dataset

    return load_dataset("mnist", data_dir=shared_data, download=False)


def pytest_addoption(parser):
    parser.addoption("--fuzz", type=int, default=0, metavar="N",
                     help="tests/test_fuzz.py: run N more fuzz cases, every exported one compiled with sanitizers")

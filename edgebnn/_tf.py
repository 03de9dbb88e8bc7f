"""The single place where TensorFlow, tf-keras and larq get imported."""

import importlib
import os

from edgebnn.errors import MissingDependencyError

_TRAIN_EXTRA = 'pip install "edgebnn[train]"'


def import_tf():
    """Import and return ``(tensorflow, tf_keras, larq)``.

    Sets ``TF_USE_LEGACY_KERAS=1`` first (larq 0.14 needs tf-keras under
    TensorFlow 2.16).

    Raises:
        MissingDependencyError: one of the packages is not installed.
    """
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    mods = []
    for name in ("tensorflow", "tf_keras", "larq"):
        try:
            mods.append(importlib.import_module(name))
        except ImportError as exc:
            raise MissingDependencyError(
                f"this command needs the Python package '{name}', which is not "
                f"installed; install the training extra: {_TRAIN_EXTRA}"
            ) from exc
    return tuple(mods)


def import_lce():
    """Import and return ``larq_compute_engine``.

    Raises:
        MissingDependencyError: larq-compute-engine is not installed (it has
            wheels for Linux x86_64, macOS and Windows only).
    """
    import_tf()
    try:
        return importlib.import_module("larq_compute_engine")
    except ImportError as exc:
        raise MissingDependencyError(
            "this command needs larq-compute-engine, which is not installed "
            f"(it ships wheels for Linux x86_64, macOS and Windows only); {_TRAIN_EXTRA}"
        ) from exc

"""The single place where TensorFlow, tf-keras and larq get imported."""

import importlib
import os
import warnings

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
    if not verbose():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    mods = []
    for name in ("tensorflow", "tf_keras", "larq"):
        try:
            mods.append(importlib.import_module(name))
        except ImportError as exc:
            raise MissingDependencyError(
                f"this command needs the Python package '{name}', which is not "
                f"installed; install the training extra: {_TRAIN_EXTRA}"
            ) from exc
    if not verbose():
        quiet_tf(mods[0])
    return tuple(mods)


# Python warnings that TensorFlow, tf-keras and larq print on every normal run
# and that say nothing about the user's model (matched on the message start).
_KNOWN_WARNINGS = (
    "You are saving your model as an HDF5 file",  # edgebnn writes .h5 on purpose
    "Compiled the loaded model, but the compiled metrics",
    "`layer.apply` is deprecated",
)


def verbose() -> bool:
    """True when the user asked for TensorFlow's own log output (``--verbose``)."""
    return os.environ.get("EDGEBNN_VERBOSE", "") not in ("", "0")


def quiet_tf(tf) -> None:
    """Silence TensorFlow's Python-side logging and the known harmless warnings.

    Errors still reach the user: only TensorFlow's logger below ERROR,
    AutoGraph's conversion notes and the warnings in :data:`_KNOWN_WARNINGS`
    are dropped. ``edgebnn --verbose`` skips this.
    """
    tf.get_logger().setLevel("ERROR")
    tf.autograph.set_verbosity(0)
    for text in _KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=rf"{text}")


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

"""The layout of a training run directory, shared by every command.

A RUN_DIR written by ``edgebnn train`` holds::

    config.yml       the resolved training configuration
    model.h5         the trained model (tf-keras HDF5; reload with larq imported)
    history.csv      per epoch: loss, accuracy, val_loss, val_accuracy, val_macro_f1, lr
    metrics.json     test accuracy, macro F1, per-class precision/recall,
                     confusion matrix, parameters, size, epochs, wall time
    summary.txt      larq's model summary
    curves.png  confusion.png  kernels.png  weights.png
    checkpoints/     last finished epoch, for --resume
    model.tflite     written by ``edgebnn convert RUN_DIR``
    model.json       conversion report (ops by type, weight bytes by kind)
"""

from pathlib import Path

CONFIG = "config.yml"
MODEL = "model.h5"
HISTORY = "history.csv"
METRICS = "metrics.json"
SUMMARY = "summary.txt"
CHECKPOINTS = "checkpoints"
TFLITE = "model.tflite"
TFLITE_REPORT = "model.json"
PLOTS = ("curves.png", "confusion.png", "kernels.png", "weights.png")


def is_run_dir(path) -> bool:
    """True when ``path`` is a directory holding a run's config."""
    path = Path(path)
    return path.is_dir() and (path / CONFIG).is_file()

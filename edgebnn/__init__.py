"""edgebnn: binarized neural networks from a dataset to an edge device.

Importing this package is cheap: it never imports TensorFlow. Modules that
need TensorFlow, tf-keras, larq or larq-compute-engine import them through
:func:`edgebnn._tf.import_tf` inside the functions that use them.
"""

import os as _os

# larq 0.14 only imports under TensorFlow 2.16 when tf.keras is the legacy
# Keras 2 (tf-keras). TensorFlow reads this variable when it is first
# imported, so it has to be set before any import of tensorflow.
_os.environ["TF_USE_LEGACY_KERAS"] = "1"
# Quiet by default: TensorFlow's C++ start-up lines (the cuFFT/cuDNN/cuBLAS
# factory errors of a CPU-only machine) are noise to a user; `edgebnn
# --verbose` (or EDGEBNN_VERBOSE=1) shows them. See edgebnn._tf.quiet_tf.
if _os.environ.get("EDGEBNN_VERBOSE", "") in ("", "0"):
    _os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"

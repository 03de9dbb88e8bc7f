"""Generate a self-contained C99 inference engine from a .tflite (LCE or stock).

The generated code is data (weights as constant arrays, a static arena
planned from tensor lifetimes) plus a flat list of calls into the
hand-written runtime kernels of ``firmware/runtime/``. Never imports
TensorFlow.

Example:
    >>> from edgebnn.codegen import generate  # doctest: +SKIP
    >>> gen = generate("model.tflite", name="mnist")  # doctest: +SKIP
    >>> gen.weights_bytes, gen.arena_bytes  # doctest: +SKIP
    (17656, 7888)
"""

from edgebnn.codegen.generator import (
    GeneratedModel,
    c_array_sources,
    generate,
    generate_sources,
    runtime_sources,
)
from edgebnn.codegen.ops import register_op, supported_ops
from edgebnn.codegen import ops_more  # noqa: F401  (registers ABS, SPLIT, PRELU, ... with ops)

__all__ = [
    "GeneratedModel",
    "c_array_sources",
    "generate",
    "generate_sources",
    "register_op",
    "runtime_sources",
    "supported_ops",
]

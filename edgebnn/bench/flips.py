"""Why two engines disagree on a BNN: the first binarization whose input signs differ.

A BNN binarizes float tensors many times. Two correct engines that sum a
float convolution in different orders (LCE's TFLite kernels use FMA and
their own blocking; the C engine sums in its reference order without FMA)
differ in the last bits, and a value within rounding of zero can get a
different sign in each. That one bit changes a popcount, the difference
grows through the next binary layers, and on a model with random weights
(a flat softmax) it can change the top-1 class. This module tells such a
rounding flip from a real error:

* :func:`with_output` rewrites a flatbuffer so that its one output is an
  intermediate tensor (the vector of output indices is patched in a copy,
  nothing else changes), so any engine can be asked for that tensor.
* :func:`first_sign_flip` finds, by bisection over the model's
  ``LceQuantize`` ops (it assumes that once one binarization differs the
  later ones do, as a flipped popcount's difference normally spreads),
  the first whose float input has a different sign pattern in the two
  engines, and reports how far from zero the flipped values are and how far
  the two tensors are apart. A flip of values within ``1e-5`` of the
  tensor's scale, on a tensor that otherwise agrees to rounding, is a
  rounding flip; anything else is reported as a difference.

Example:
    >>> report = first_sign_flip(data, x, run_lce, run_c)  # doctest: +SKIP
    >>> report["kind"], report["op"], report["flips"]  # doctest: +SKIP
    ('rounding', 18, 1)
"""

import struct

import numpy as np

from edgebnn.errors import ModelError
from edgebnn.graph import load_graph

#: A flipped value counts as rounding when |x| <= ZERO_TOL * max|x| of its tensor in both engines.
ZERO_TOL = 1e-5
#: The binarized tensor must otherwise agree to this, relative to its largest value.
TENSOR_TOL = 1e-4


def _output_slot(data: bytes) -> tuple:
    """``(byte offset of the one subgraph output index, its Graph)`` of a checked flatbuffer.

    Raises:
        ModelError: the file does not load, or has more than one subgraph or output.
    """
    import tflite

    graph = load_graph(data)  # checks the file before the raw offsets below are used
    model = tflite.Model.GetRootAsModel(data, 0)
    if model.SubgraphsLength() != 1:
        raise ModelError(f"with_output needs a model of one subgraph; found {model.SubgraphsLength()}")
    sub = model.Subgraphs(0)
    if sub.OutputsLength() != 1:
        raise ModelError(f"with_output needs a model of one output; found {sub.OutputsLength()}")
    return sub._tab.Vector(sub._tab.Offset(8)), graph  # SubGraph field 2: outputs ([int])


def _patched(data: bytes, slot: tuple, tensor: int) -> bytes:
    offset, graph = slot
    n_tensors = len(graph.tensors)
    if not 0 <= int(tensor) < n_tensors:
        raise ModelError(f"tensor {tensor} is not in the model (it has {n_tensors} tensors)")
    buf = bytearray(data)
    struct.pack_into("<i", buf, offset, int(tensor))
    return bytes(buf)


def with_output(data: bytes, tensor: int) -> bytes:
    """A copy of the flatbuffer ``data`` whose (single) subgraph output is ``tensor``.

    Raises:
        ModelError: the model has more than one subgraph or output, or
            ``tensor`` is not one of its tensors.
    """
    data = bytes(data)
    return _patched(data, _output_slot(data), tensor)


def _compare(a: np.ndarray, b: np.ndarray) -> dict:
    """Sign flips (x < 0, LceQuantize's test) between two float tensors, and how close to zero they are."""
    scale = float(max(np.abs(a).max(), np.abs(b).max(), np.finfo(np.float32).tiny))
    flipped = (a < 0) != (b < 0)
    near = float(max(np.abs(a[flipped]).max(), np.abs(b[flipped]).max())) if flipped.any() else 0.0
    return {"flips": int(flipped.sum()), "flip_max_abs": near, "scale": scale,
            "tensor_max_diff": float(np.abs(a - b).max())}


def first_sign_flip(data: bytes, x, run_a, run_b) -> dict:
    """The first ``LceQuantize`` whose float input has another sign pattern in engine a than in b.

    Args:
        data: the flatbuffer (one subgraph, one output).
        x: the inputs both engines get.
        run_a, run_b: ``callable(model_bytes, x) -> np.ndarray``, e.g. LCE's
            interpreter and the C engine.

    Returns:
        ``{"kind": "none"}`` when every binarized input has the same signs;
        else ``kind`` (``"rounding"``: the flipped values are within
        ``ZERO_TOL`` of the tensor's scale and the tensor agrees within
        ``TENSOR_TOL``; ``"difference"``: not so), ``op`` (the quantize op's
        index), ``tensor``, ``flips``, ``flip_max_abs``, ``scale`` and
        ``tensor_max_diff``. Each probe runs both engines once.
    """
    data = bytes(data)
    slot = _output_slot(data)  # the file is parsed once, not once per probe
    graph = slot[1]
    quantizes = [op for op in graph.ops if op.type == "LceQuantize"]
    cache = {}

    def probe(i):
        if i not in cache:
            probe_model = _patched(data, slot, quantizes[i].inputs[0])
            cache[i] = _compare(np.asarray(run_a(probe_model, x)), np.asarray(run_b(probe_model, x)))
        return cache[i]

    lo, hi = 0, len(quantizes)  # the first flipped one is in [lo, hi); hi: none
    while lo < hi:
        mid = (lo + hi) // 2
        if probe(mid)["flips"]:
            hi = mid
        else:
            lo = mid + 1
    if lo == len(quantizes):
        return {"kind": "none", "quantizes": len(quantizes)}
    r = dict(probe(lo))
    rounding = (r["flip_max_abs"] <= ZERO_TOL * r["scale"]
                and r["tensor_max_diff"] <= TENSOR_TOL * r["scale"])
    r.update(kind="rounding" if rounding else "difference", op=quantizes[lo].index,
             tensor=quantizes[lo].inputs[0], quantizes=len(quantizes))
    return r


def explain_lce_vs_c(path, x, *, kernels=None) -> dict:
    """:func:`first_sign_flip` between LCE's interpreter (engine a) and the C engine (engine b) on ``x``.

    Each probe builds the C engine for the probed model, so this costs a few
    builds (about log2 of the number of ``LceQuantize`` ops).
    """
    import tempfile
    from pathlib import Path

    from edgebnn.hostprog import predict_c
    from edgebnn.predict import predict_tflite

    def run_lce(model, xs):
        return predict_tflite(model, xs)

    def run_c(model, xs):
        with tempfile.TemporaryDirectory(prefix="edgebnn-flip-") as wd:
            probe = Path(wd) / "probe.tflite"
            probe.write_bytes(model)
            return predict_c(probe, xs, workdir=Path(wd) / "build", kernels=kernels)

    return first_sign_flip(Path(path).read_bytes(), x, run_lce, run_c)


def describe(report: dict) -> str:
    """One line for a table (no "|"): ``rounding flip at op 18 (1 sign, abs(x) <= 9.5e-07 of 6.4)``."""
    if report["kind"] == "none":
        return "no binarization flipped"
    what = "rounding flip" if report["kind"] == "rounding" else "DIFFERENCE"
    return (f"{what} at op {report['op']} ({report['flips']} sign{'s' if report['flips'] != 1 else ''}, "
            f"abs(x) <= {report['flip_max_abs']:.1e} of {report['scale']:.2g})")

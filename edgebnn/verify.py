"""Check that a converted .tflite behaves like the Keras model it came from.

Both models run on the same inputs (a dataset's full test set); the check
compares their accuracies, their top-1 predictions and their output values.

Example:
    >>> result = verify(model, Path("model.tflite").read_bytes(), ds.x_test, ds.y_test)  # doctest: +SKIP
    >>> result.agreement, result.passed  # doctest: +SKIP
    (1.0, True)
"""

from dataclasses import asdict, dataclass
from pathlib import Path

from typing import Optional

import numpy as np

from edgebnn.errors import VerificationError

MIN_AGREEMENT = 0.999
MAX_ACCURACY_DIFF_PP = 0.1
# Largest difference of an output value (a softmax probability) that still
# counts as the same output. Keras and LCE round differently (LCE folds the
# BatchNormalization into the bconv's multiplier and bias and sums in another
# order): on the shipped models' 10,000 test images the outputs differ by at
# most 6e-7, except on the rare input whose pre-sign value lies within
# rounding of zero, where a flipped bit moves the output by up to 0.03 (3 of
# 10,000 images for mnist-bcnn-binary). 1e-3 keeps a wide margin over the
# rounding; the flips are allowed for as many inputs as top-1 disagreements
# are (1 - min_agreement). Another model's outputs differ by 0.01 to 0.6 on
# nearly every input, even where the top-1 classes agree.
ATOL = 1e-3
# An int8 model's outputs are not within any small atol of the float model's:
# it computes with quantized activations, and a quantized softmax steps by
# 1/256, so near-ties move probabilities by tenths (0.38 measured on MNIST).
# For a model with quantized outputs the default is therefore no output-value
# check; top-1 agreement and accuracy are checked as always.
# Accuracies come from integer counts; this only absorbs the float rounding
# of 100 * count / n at the boundary (e.g. exactly 0.1 pp).
_EPS = 1e-9


@dataclass(frozen=True)
class VerifyResult:
    """Converted-vs-trained figures.

    Attributes:
        n: number of test inputs.
        keras_accuracy: top-1 accuracy of the Keras model (0..1).
        tflite_accuracy: top-1 accuracy of the .tflite (0..1).
        accuracy_diff_pp: ``100 * (tflite_accuracy - keras_accuracy)``,
            in percentage points.
        agreement: fraction of inputs whose top-1 class is the same.
        disagreements: number of inputs whose top-1 class differs.
        max_abs_diff: largest absolute difference of any output value
            (probabilities for a softmax model).
        output_mismatches: number of inputs with an output value that
            differs by more than ``atol``.
        output_agreement: fraction of inputs whose outputs all agree
            within ``atol``.
        min_agreement, max_accuracy_diff_pp, atol: the thresholds checked.
        failures: one sentence per failed condition; empty when passed.
    """

    n: int
    keras_accuracy: float
    tflite_accuracy: float
    accuracy_diff_pp: float
    agreement: float
    disagreements: int
    max_abs_diff: float
    output_mismatches: int = 0
    output_agreement: float = 1.0
    min_agreement: float = MIN_AGREEMENT
    max_accuracy_diff_pp: float = MAX_ACCURACY_DIFF_PP
    atol: Optional[float] = ATOL
    failures: tuple = ()

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        d = asdict(self)
        d["failures"] = list(self.failures)
        d["passed"] = self.passed
        return d

    def check(self, *, keras_path=None, tflite_path=None) -> "VerifyResult":
        """Return self, or raise :class:`VerificationError` naming each failed condition.

        ``keras_path`` and ``tflite_path``, when given, are named in the message.
        """
        if self.failures:
            files = ""
            if keras_path is not None or tflite_path is not None:
                files = f" ({tflite_path or 'the .tflite'} against {keras_path or 'the Keras model'})"
            raise VerificationError("verification failed" + files + ": " + "; ".join(self.failures))
        return self


def compare_predictions(
    keras_out,
    tflite_out,
    y,
    *,
    min_agreement: float = MIN_AGREEMENT,
    max_accuracy_diff_pp: float = MAX_ACCURACY_DIFF_PP,
    atol: Optional[float] = ATOL,
) -> VerifyResult:
    """Compare two models' outputs on the same labelled inputs.

    ``agreement = mean(argmax(keras_out) == argmax(tflite_out))`` and
    ``output_agreement = mean(max|keras_out - tflite_out| <= atol)`` (per
    input); the check fails when either is below ``min_agreement``, or when
    ``|accuracy_diff_pp| > max_accuracy_diff_pp``. (With the defaults the
    accuracy condition can only fail together with the agreement one:
    accuracies can differ by at most the fraction of inputs on which the
    models disagree.) The output check catches a .tflite of another model
    whose top-1 classes happen to agree on the inputs given.

    Example:
        >>> r = compare_predictions(np.eye(3), np.eye(3), np.arange(3))
        >>> r.agreement, r.passed
        (1.0, True)

    Args:
        keras_out: ``(N, classes)`` outputs of the trained model.
        tflite_out: ``(N, classes)`` outputs of the converted model.
        y: ``(N,)`` integer labels.
        min_agreement: lowest accepted top-1 agreement.
        max_accuracy_diff_pp: largest accepted accuracy difference, in
            percentage points.
        atol: largest difference of an output value that counts as equal
            (see :data:`ATOL` for the reason of its default); None skips
            the output-value check.

    Returns:
        A :class:`VerifyResult`.

    Raises:
        VerificationError: the arrays' shapes do not match, or N is 0.
    """
    a = np.asarray(keras_out, dtype=np.float64)
    b = np.asarray(tflite_out, dtype=np.float64)
    y = np.asarray(y).reshape(-1)
    if len(y) == 0 or len(a) == 0:
        raise VerificationError("no test inputs to verify on (N = 0)")
    a = a.reshape(len(a), -1)
    b = b.reshape(len(b), -1) if len(b) else b
    if a.shape != b.shape or len(a) != len(y):
        raise VerificationError(
            f"outputs do not line up: Keras model gave {a.shape}, the .tflite {b.shape}, "
            f"labels {y.shape}; expected the same (N, classes) with N labels"
        )
    n = len(y)
    pa, pb = a.argmax(axis=1), b.argmax(axis=1)
    k_correct = int((pa == y).sum())
    t_correct = int((pb == y).sum())
    same = int((pa == pb).sum())
    agreement = same / n
    diff_pp = 100.0 * (t_correct - k_correct) / n
    per_input = np.abs(a - b).max(axis=1)
    mismatches = int((per_input > atol).sum()) if atol is not None else 0
    output_agreement = (n - mismatches) / n
    failures = []
    if agreement < min_agreement - _EPS:
        failures.append(
            f"agreement {agreement:.4f} is below {min_agreement}: the .tflite's top-1 class "
            f"differs from the Keras model's on {n - same} of {n} inputs"
        )
    if abs(diff_pp) > max_accuracy_diff_pp + _EPS:
        failures.append(
            f"accuracy differs by {diff_pp:+.2f} pp (Keras {100 * k_correct / n:.2f}%, "
            f".tflite {100 * t_correct / n:.2f}%), more than {max_accuracy_diff_pp} pp"
        )
    if atol is not None and output_agreement < min_agreement - _EPS:
        failures.append(
            f"outputs differ by up to {per_input.max():.3g}, more than atol {atol:g}, on "
            f"{mismatches} of {n} inputs (output agreement {output_agreement:.4f}, below "
            f"{min_agreement}); is the .tflite converted from this model?"
        )
    return VerifyResult(
        n=n,
        keras_accuracy=k_correct / n,
        tflite_accuracy=t_correct / n,
        accuracy_diff_pp=diff_pp,
        agreement=agreement,
        disagreements=n - same,
        max_abs_diff=float(per_input.max()),
        output_mismatches=mismatches,
        output_agreement=output_agreement,
        min_agreement=float(min_agreement),
        max_accuracy_diff_pp=float(max_accuracy_diff_pp),
        atol=None if atol is None else float(atol),
        failures=tuple(failures),
    )


def _quantized_output(tflite_bytes) -> bool:
    """True when the flatbuffer's (first) output is an integer tensor (int8/uint8)."""
    from edgebnn.graph import load_graph

    name = str(tflite_bytes) if isinstance(tflite_bytes, (str, Path)) else None
    graph = load_graph(tflite_bytes, name=name)
    return graph.tensor(graph.outputs[0]).dtype in ("int8", "uint8")


def verify(
    keras_model,
    tflite_bytes,
    x,
    y,
    *,
    min_agreement: float = MIN_AGREEMENT,
    max_accuracy_diff_pp: float = MAX_ACCURACY_DIFF_PP,
    atol="auto",
    batch_size: int = 256,
) -> VerifyResult:
    """Run the Keras model and the .tflite on ``x`` and compare (see :func:`compare_predictions`).

    The .tflite runs through :func:`edgebnn.predict.predict_tflite` (LCE's
    interpreter for LCE models, a stock runtime otherwise); inputs are given
    to both models as stored (raw pixels as float32), since the models carry
    their own normalization.

    Example:
        >>> verify(model, tflite, ds.x_test, ds.y_test).to_dict()["agreement"]  # doctest: +SKIP
        1.0

    Args:
        keras_model: the trained tf-keras model.
        tflite_bytes: the converted flatbuffer (bytes or a path).
        x: inputs ``(N, H, W, C)``.
        y: integer labels ``(N,)``.

    Returns:
        A :class:`VerifyResult`; it does not raise when the check fails
        (call ``.check()`` for that).

    Raises:
        EngineError: the .tflite's input shape does not match ``x``, or
            the interpreter cannot run it.
        TFLiteFormatError: ``tflite_bytes`` is not a TFLite flatbuffer.
    """
    from edgebnn.errors import EngineError
    from edgebnn.predict import predict_tflite

    x = np.asarray(x, dtype=np.float32)
    try:
        tflite_out = predict_tflite(tflite_bytes, x, batch_size=batch_size)
    except (RuntimeError, ValueError) as exc:  # LCE's and TFLite's interpreters raise bare errors
        name = tflite_bytes if isinstance(tflite_bytes, (str, Path)) else "the .tflite"
        raise EngineError(f"the interpreter cannot run {name}: {str(exc).strip()}") from exc
    keras_out = keras_model.predict(x, batch_size=batch_size, verbose=0)
    if atol == "auto":
        atol = None if _quantized_output(tflite_bytes) else ATOL
    return compare_predictions(
        keras_out,
        tflite_out,
        y,
        min_agreement=min_agreement,
        max_accuracy_diff_pp=max_accuracy_diff_pp,
        atol=atol,
    )

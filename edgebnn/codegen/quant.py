"""Quantization parameters exactly as TFLite's kernels compute them in Prepare.

The C int8 kernels (firmware/runtime/ebnn_int8_*.c) take real-valued scale
ratios as a quantized multiplier: an int32 ``multiplier`` in [2^30, 2^31)
(or 0) and a ``shift``, with ``real ~= multiplier * 2**(shift - 31)``. These
functions reproduce TFLite's arithmetic bit for bit, including where it
rounds in float32 before widening to double (``MUL``, per-tensor
``FULLY_CONNECTED``), so generated code and tests agree with TFLite's
reference kernels.

>>> quantize_multiplier(0.5)
(1073741824, 0)
>>> quantize_multiplier(1.0)
(1073741824, 1)
>>> quantize_multiplier(0.0)
(0, 0)
"""

import math

import numpy as np

from edgebnn.errors import UnsupportedOpError

INT8_MIN, INT8_MAX = -128, 127
ADD_LEFT_SHIFT = 20  # TFLite's left shift for int8 ADD
SOFTMAX_DIFF_INTEGER_BITS = 5  # Q5.26 input differences in TFLite's softmax

# A quantization parameter TFLite would reject (zero or negative scale, ...).
QuantizationError = UnsupportedOpError


def _f32(x):
    return np.float32(x)


def _round_half_away(x):
    """std::round: halves away from zero (Python's round() rounds to even)."""
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def quantize_multiplier(real):
    """TFLite's QuantizeMultiplier: ``real = m * 2**(shift - 31)``.

    ``frexp`` splits ``real`` into ``q`` in [0.5, 1) and an exponent; ``m`` is
    ``round(q * 2**31)`` with halves away from zero; a mantissa that rounds up
    to 2**31 is halved and the exponent incremented; an exponent below -31
    gives ``(0, 0)`` (every result would shift out).

    >>> quantize_multiplier(0.75)
    (1610612736, 0)
    >>> m, s = quantize_multiplier(0.003)
    >>> m, s, abs(m * 2.0 ** (s - 31) - 0.003) < 1e-12
    (1649267442, -8, True)
    >>> quantize_multiplier(1e-12)
    (0, 0)

    Args:
        real: a non-negative finite multiplier (a Python float or numpy scalar,
            taken as a double).
    Returns:
        ``(multiplier, shift)`` as Python ints.
    Raises:
        QuantizationError: ``real`` is negative or not finite.
    """
    real = float(real)
    if not math.isfinite(real) or real < 0:
        raise QuantizationError(f"quantized multiplier: expected a finite value >= 0, found {real!r}")
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = _round_half_away(q * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        raise QuantizationError(f"quantized multiplier: {real!r} is too large (shift {shift} > 30)")
    return int(q_fixed), int(shift)


def _check_scale(name, scale):
    s = float(scale)
    if not (math.isfinite(s) and s > 0):
        raise QuantizationError(f"{name}: expected a positive finite scale, found {scale!r}")
    return s


def activation_range(activation, scale, zero_point, qmin=INT8_MIN, qmax=INT8_MAX):
    """TFLite's CalculateActivationRangeQuantized for a fused activation.

    The bounds are quantized as ``zero_point + round(f / scale)`` in float32.

    >>> activation_range("NONE", 0.1, 3)
    (-128, 127)
    >>> activation_range("RELU6", 0.05, -128)
    (-128, -8)
    >>> activation_range("RELU_N1_TO_1", 0.01, 0)
    (-100, 100)

    Args:
        activation: "NONE", "RELU", "RELU6" or "RELU_N1_TO_1".
        scale, zero_point: the output tensor's quantization.
    Returns:
        ``(act_min, act_max)``.
    Raises:
        QuantizationError: unknown activation or bad scale.
    """
    _check_scale("activation range", scale)

    def q(f):
        return int(zero_point) + int(_round_half_away(float(_f32(f) / _f32(scale))))

    if activation == "NONE":
        return qmin, qmax
    if activation == "RELU":
        return max(qmin, q(0.0)), qmax
    if activation == "RELU6":
        return max(qmin, q(0.0)), min(qmax, q(6.0))
    if activation == "RELU_N1_TO_1":
        return max(qmin, q(-1.0)), min(qmax, q(1.0))
    raise QuantizationError(
        f"activation range: unknown fused activation {activation!r} "
        "(known: NONE, RELU, RELU6, RELU_N1_TO_1)")


def conv_multipliers(input_scale, filter_scales, output_scale):
    """Per-channel multipliers of CONV_2D / DEPTHWISE_CONV_2D (and per-channel
    FULLY_CONNECTED): ``double(in) * double(filter[o]) / double(out)``, as
    TFLite's PopulateConvolutionQuantizationParams.

    >>> conv_multipliers(0.5, [0.25, 0.125], 1.0)
    ([1073741824, 1073741824], [-2, -3])

    Returns:
        ``(multipliers, shifts)`` lists, one entry per filter scale.
    """
    si = _check_scale("input", input_scale)
    so = _check_scale("output", output_scale)
    mults, shifts = [], []
    for i, fs in enumerate(np.asarray(filter_scales, np.float32).reshape(-1)):
        _check_scale(f"filter channel {i}", fs)
        m, s = quantize_multiplier(float(np.float64(si) * np.float64(fs) / np.float64(so)))
        mults.append(m)
        shifts.append(s)
    return mults, shifts


def fc_multiplier(input_scale, filter_scale, output_scale):
    """Per-tensor FULLY_CONNECTED multiplier (TFLite's
    GetQuantizedConvolutionMultipler): the product ``in * filter`` is
    rounded to float32 first, then divided in double by ``out``.

    >>> fc_multiplier(0.5, 0.25, 1.0)
    (1073741824, -2)
    """
    _check_scale("input", input_scale)
    _check_scale("filter", filter_scale)
    so = _check_scale("output", output_scale)
    product = np.float64(_f32(input_scale) * _f32(filter_scale))
    return quantize_multiplier(float(product / np.float64(so)))


def add_params(a_scale, b_scale, output_scale, left_shift=ADD_LEFT_SHIFT):
    """int8 ADD rescaling (TFLite's add.cc Prepare).

    Both inputs are brought to ``2 * max(a_scale, b_scale)`` after a left
    shift of ``left_shift`` bits; the sum is rescaled to the output.

    >>> p = add_params(0.1, 0.05, 0.2)
    >>> p["left_shift"], p["a_shift"], p["b_shift"], p["output_shift"]
    (20, 0, -1, -19)

    Returns:
        dict with left_shift, a_multiplier, a_shift, b_multiplier, b_shift,
        output_multiplier, output_shift.
    """
    sa = _check_scale("input 1", a_scale)
    sb = _check_scale("input 2", b_scale)
    _check_scale("output", output_scale)
    twice_max = float(_f32(2) * max(_f32(sa), _f32(sb)))
    out_scaled = float(_f32(1 << left_shift) * _f32(output_scale))
    am, ash = quantize_multiplier(float(_f32(sa)) / twice_max)
    bm, bsh = quantize_multiplier(float(_f32(sb)) / twice_max)
    om, osh = quantize_multiplier(twice_max / out_scaled)
    return dict(left_shift=left_shift, a_multiplier=am, a_shift=ash, b_multiplier=bm,
                b_shift=bsh, output_multiplier=om, output_shift=osh)


def mul_multiplier(a_scale, b_scale, output_scale):
    """int8 MUL: ``a * b / out`` evaluated in float32, then widened (mul.cc).

    >>> mul_multiplier(0.5, 0.5, 0.125)
    (1073741824, 2)
    """
    for name, s in (("input 1", a_scale), ("input 2", b_scale), ("output", output_scale)):
        _check_scale(name, s)
    real = (_f32(a_scale) * _f32(b_scale)) / _f32(output_scale)
    return quantize_multiplier(float(real))


def ratio_multiplier(input_scale, output_scale):
    """``double(in) / double(out)``: QUANTIZE int8 -> int8 (requantize) and MEAN.

    >>> ratio_multiplier(0.1, 0.1)
    (1073741824, 1)
    """
    si = _check_scale("input", input_scale)
    so = _check_scale("output", output_scale)
    return quantize_multiplier(float(np.float64(_f32(si)) / np.float64(_f32(so))))


def softmax_params(beta, input_scale):
    """int8 SOFTMAX parameters (TFLite's PreprocessSoftmaxScaling and
    CalculateInputRadius with 5 integer bits for the input differences).

    >>> softmax_params(1.0, 1 / 16)
    {'input_multiplier': 1073741824, 'input_left_shift': 23, 'diff_min': -248}

    Returns:
        dict with input_multiplier, input_left_shift, diff_min.
    """
    si = _check_scale("softmax input", input_scale)
    bits = SOFTMAX_DIFF_INTEGER_BITS
    real = min(float(beta) * float(_f32(si)) * float(1 << (31 - bits)), float((1 << 31) - 1))
    if real <= 1.0:
        raise QuantizationError(
            f"softmax: beta * input_scale * 2^{31 - bits} must exceed 1, found {real!r}")
    mult, left_shift = quantize_multiplier(real)
    radius = math.floor(1.0 * ((1 << bits) - 1) * (1 << (31 - bits)) / (1 << left_shift))
    return dict(input_multiplier=mult, input_left_shift=left_shift, diff_min=-int(radius))

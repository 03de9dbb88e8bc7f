"""ctypes bindings of the int8 kernels of the edgebnn C runtime, for tests.

The structures mirror the int8 section of firmware/runtime/ebnn.h field for
field; ``tests/test_runtime_int8.py::test_int8_struct_layout_matches_header``
checks their sizes and field offsets against the compiled header.
``Int8Runtime`` wraps each kernel as a numpy function that checks the
returned status; the caller passes TFLite-style parameters (zero points,
quantized multipliers from edgebnn.codegen.quant).
"""

import ctypes as C

import numpy as np

from ebnn_ctypes import ACT, PADDING, CONCAT_MAX, ConcatParams, KernelError, out_size  # noqa: F401

I32 = C.c_int32
PI8 = C.POINTER(C.c_int8)
PI32 = C.POINTER(C.c_int32)
PF = C.POINTER(C.c_float)


def _ints(*names):
    return [(n, I32) for n in names]


class Int8Conv2DParams(C.Structure):
    _fields_ = _ints("in_h", "in_w", "in_c", "out_c", "filter_h", "filter_w", "stride_h",
                     "stride_w", "dilation_h", "dilation_w", "padding", "input_zero_point",
                     "output_zero_point", "act_min", "act_max") + [
        ("filter", PI8), ("bias", PI32), ("output_multiplier", PI32), ("output_shift", PI32)]


class Int8DepthwiseConv2DParams(C.Structure):
    _fields_ = _ints("in_h", "in_w", "in_c", "depth_multiplier", "filter_h", "filter_w",
                     "stride_h", "stride_w", "dilation_h", "dilation_w", "padding",
                     "input_zero_point", "output_zero_point", "act_min", "act_max") + [
        ("filter", PI8), ("bias", PI32), ("output_multiplier", PI32), ("output_shift", PI32)]


class Int8FullyConnectedParams(C.Structure):
    _fields_ = _ints("rows", "in_features", "out_features", "input_zero_point",
                     "weights_zero_point", "output_zero_point", "act_min", "act_max",
                     "per_channel") + [
        ("weights", PI8), ("bias", PI32), ("output_multiplier", PI32), ("output_shift", PI32)]


class Int8AddParams(C.Structure):
    _fields_ = _ints("size", "b_size", "left_shift", "a_zero_point", "a_multiplier", "a_shift",
                     "b_zero_point", "b_multiplier", "b_shift", "output_zero_point",
                     "output_multiplier", "output_shift", "act_min", "act_max")


class Int8MulParams(C.Structure):
    _fields_ = _ints("size", "b_size", "a_zero_point", "b_zero_point", "output_zero_point",
                     "output_multiplier", "output_shift", "act_min", "act_max")


class Int8AffineParams(C.Structure):
    _fields_ = [("size", I32), ("scale", C.c_float), ("zero_point", I32)]


class Int8RequantizeParams(C.Structure):
    _fields_ = _ints("size", "input_zero_point", "output_zero_point", "multiplier", "shift")


class Int8Pool2DParams(C.Structure):
    _fields_ = _ints("in_h", "in_w", "channels", "filter_h", "filter_w", "stride_h", "stride_w",
                     "padding", "act_min", "act_max")


class Int8MeanParams(C.Structure):
    _fields_ = _ints("in_h", "in_w", "channels", "input_zero_point", "output_zero_point",
                     "multiplier", "shift")


class Int8SoftmaxParams(C.Structure):
    _fields_ = _ints("rows", "cols", "input_multiplier", "input_left_shift", "diff_min")


class Int8PadParams(C.Structure):
    _fields_ = [("dims", I32 * 4), ("before", I32 * 4), ("after", I32 * 4), ("value", I32)]


STRUCTS = {
    "ebnn_int8_conv2d_params_t": Int8Conv2DParams,
    "ebnn_int8_depthwise_conv2d_params_t": Int8DepthwiseConv2DParams,
    "ebnn_int8_fully_connected_params_t": Int8FullyConnectedParams,
    "ebnn_int8_add_params_t": Int8AddParams,
    "ebnn_int8_mul_params_t": Int8MulParams,
    "ebnn_int8_affine_params_t": Int8AffineParams,
    "ebnn_int8_requantize_params_t": Int8RequantizeParams,
    "ebnn_int8_pool2d_params_t": Int8Pool2DParams,
    "ebnn_int8_mean_params_t": Int8MeanParams,
    "ebnn_int8_softmax_params_t": Int8SoftmaxParams,
    "ebnn_int8_pad_params_t": Int8PadParams,
}


def _i8(a):
    return np.ascontiguousarray(a, dtype=np.int8)


def _i32(a):
    return None if a is None else np.ascontiguousarray(a, dtype=np.int32).reshape(-1)


def _p8(a):
    return a.ctypes.data_as(PI8)


def _p32(a):
    return None if a is None else a.ctypes.data_as(PI32)


class Int8Runtime:
    """numpy front end of the int8 kernels; every call checks the status."""

    def __init__(self, path):
        self.lib = C.CDLL(str(path))
        for name in ("ebnn_int8_srdhm", "ebnn_int8_rounding_divide_by_pot",
                     "ebnn_int8_multiply_by_quantized_multiplier"):
            fn = getattr(self.lib, name)
            fn.restype = I32
            fn.argtypes = [I32] * (2 if name != "ebnn_int8_multiply_by_quantized_multiplier" else 3)

    def status(self, name, *args):
        fn = getattr(self.lib, name)
        fn.restype = I32
        return fn(*args)

    def _call(self, name, *args):
        st = self.status(name, *args)
        if st != 0:
            raise KernelError(f"{name} returned status {st}")

    # ------------------------------------------------------------ helpers
    def srdhm(self, a, b):
        return self.lib.ebnn_int8_srdhm(int(a), int(b))

    def rounding_divide_by_pot(self, x, e):
        return self.lib.ebnn_int8_rounding_divide_by_pot(int(x), int(e))

    def mbqm(self, x, m, s):
        return self.lib.ebnn_int8_multiply_by_quantized_multiplier(int(x), int(m), int(s))

    # ------------------------------------------------------------ kernels
    def conv2d(self, x, filt, bias, mult, shift, *, stride, dilation, padding, in_zp, out_zp,
               act_range):
        x, filt = _i8(x), _i8(filt)
        bias, mult, shift = _i32(bias), _i32(mult), _i32(shift)
        h, w, c = x.shape
        oc, fh, fw, _ = filt.shape
        p = Int8Conv2DParams(h, w, c, oc, fh, fw, stride[0], stride[1], dilation[0], dilation[1],
                             PADDING[padding], in_zp, out_zp, act_range[0], act_range[1],
                             _p8(filt), _p32(bias), _p32(mult), _p32(shift))
        out = np.full((out_size(h, fh, stride[0], dilation[0], padding),
                       out_size(w, fw, stride[1], dilation[1], padding), oc), 99, np.int8)
        self._call("ebnn_int8_conv2d_ref", C.byref(p), _p8(x), _p8(out))
        return out

    def depthwise_conv2d(self, x, filt, bias, mult, shift, *, depth_multiplier, stride, dilation,
                         padding, in_zp, out_zp, act_range):
        x, filt = _i8(x), _i8(filt)
        bias, mult, shift = _i32(bias), _i32(mult), _i32(shift)
        h, w, c = x.shape
        _, fh, fw, oc = filt.shape
        p = Int8DepthwiseConv2DParams(h, w, c, depth_multiplier, fh, fw, stride[0], stride[1],
                                      dilation[0], dilation[1], PADDING[padding], in_zp, out_zp,
                                      act_range[0], act_range[1], _p8(filt), _p32(bias),
                                      _p32(mult), _p32(shift))
        out = np.full((out_size(h, fh, stride[0], dilation[0], padding),
                       out_size(w, fw, stride[1], dilation[1], padding), oc), 99, np.int8)
        self._call("ebnn_int8_depthwise_conv2d_ref", C.byref(p), _p8(x), _p8(out))
        return out

    def fully_connected(self, x, weights, bias, mult, shift, *, in_zp, w_zp, out_zp, act_range):
        weights = _i8(weights)
        x = _i8(x).reshape(-1, weights.shape[1])
        bias, mult, shift = _i32(bias), _i32(mult), _i32(shift)
        per_channel = int(mult.size > 1)
        p = Int8FullyConnectedParams(x.shape[0], weights.shape[1], weights.shape[0], in_zp, w_zp,
                                     out_zp, act_range[0], act_range[1], per_channel,
                                     _p8(weights), _p32(bias), _p32(mult), _p32(shift))
        out = np.full((x.shape[0], weights.shape[0]), 99, np.int8)
        self._call("ebnn_int8_fully_connected_ref", C.byref(p), _p8(x), _p8(out))
        return out

    def add(self, a, b, *, a_zp, b_zp, out_zp, qp, act_range):
        a, b = _i8(a), _i8(b)
        p = Int8AddParams(a.size, b.size, qp["left_shift"], a_zp, qp["a_multiplier"], qp["a_shift"],
                          b_zp, qp["b_multiplier"], qp["b_shift"], out_zp, qp["output_multiplier"],
                          qp["output_shift"], act_range[0], act_range[1])
        out = np.full(a.shape, 99, np.int8)
        self._call("ebnn_int8_add_ref", C.byref(p), _p8(a), _p8(b), _p8(out))
        return out

    def mul(self, a, b, *, a_zp, b_zp, out_zp, mult, shift, act_range):
        a, b = _i8(a), _i8(b)
        p = Int8MulParams(a.size, b.size, a_zp, b_zp, out_zp, mult, shift, act_range[0], act_range[1])
        out = np.full(a.shape, 99, np.int8)
        self._call("ebnn_int8_mul_ref", C.byref(p), _p8(a), _p8(b), _p8(out))
        return out

    def quantize(self, x, scale, zp):
        x = np.ascontiguousarray(x, np.float32)
        out = np.full(x.shape, 99, np.int8)
        p = Int8AffineParams(x.size, scale, zp)
        self._call("ebnn_int8_quantize_ref", C.byref(p), x.ctypes.data_as(PF), _p8(out))
        return out

    def dequantize(self, x, scale, zp):
        x = _i8(x)
        out = np.full(x.shape, np.nan, np.float32)
        p = Int8AffineParams(x.size, scale, zp)
        self._call("ebnn_int8_dequantize_ref", C.byref(p), _p8(x), out.ctypes.data_as(PF))
        return out

    def requantize(self, x, in_zp, out_zp, mult, shift):
        x = _i8(x)
        out = np.full(x.shape, 99, np.int8)
        p = Int8RequantizeParams(x.size, in_zp, out_zp, mult, shift)
        self._call("ebnn_int8_requantize_ref", C.byref(p), _p8(x), _p8(out))
        return out

    def _pool(self, name, x, filt, stride, padding, act_range):
        x = _i8(x)
        h, w, c = x.shape
        p = Int8Pool2DParams(h, w, c, filt[0], filt[1], stride[0], stride[1], PADDING[padding],
                             act_range[0], act_range[1])
        out = np.full((out_size(h, filt[0], stride[0], 1, padding),
                       out_size(w, filt[1], stride[1], 1, padding), c), 99, np.int8)
        self._call(name, C.byref(p), _p8(x), _p8(out))
        return out

    def max_pool2d(self, x, filt, stride, padding, act_range):
        return self._pool("ebnn_int8_max_pool2d_ref", x, filt, stride, padding, act_range)

    def average_pool2d(self, x, filt, stride, padding, act_range):
        return self._pool("ebnn_int8_average_pool2d_ref", x, filt, stride, padding, act_range)

    def mean_hw(self, x, in_zp, out_zp, mult, shift):
        x = _i8(x)
        out = np.full((x.shape[2],), 99, np.int8)
        p = Int8MeanParams(*x.shape, in_zp, out_zp, mult, shift)
        self._call("ebnn_int8_mean_hw_ref", C.byref(p), _p8(x), _p8(out))
        return out

    def softmax(self, x, sp):
        x = _i8(x)
        x2 = x.reshape(-1, x.shape[-1])
        out = np.full(x2.shape, 99, np.int8)
        p = Int8SoftmaxParams(x2.shape[0], x2.shape[1], sp["input_multiplier"],
                              sp["input_left_shift"], sp["diff_min"])
        self._call("ebnn_int8_softmax_ref", C.byref(p), _p8(x2), _p8(out))
        return out.reshape(x.shape)

    def concatenation(self, arrays, axis, activation="NONE"):
        arrays = [_i8(a) for a in arrays]
        shape0 = arrays[0].shape
        axis = axis % len(shape0)
        outer = int(np.prod(shape0[:axis], dtype=np.int64))
        inner = (I32 * CONCAT_MAX)(*[int(np.prod(a.shape[axis:], dtype=np.int64)) for a in arrays])
        p = ConcatParams(outer, len(arrays), inner, ACT[activation])
        ptrs = (PI8 * len(arrays))(*[_p8(a) for a in arrays])
        out_shape = list(shape0)
        out_shape[axis] = sum(a.shape[axis] for a in arrays)
        out = np.full(out_shape, 99, np.int8)
        self._call("ebnn_int8_concatenation_ref", C.byref(p), ptrs, _p8(out))
        return out

    def pad(self, x, paddings, value):
        x = _i8(x)
        lead = 4 - x.ndim
        dims = (1,) * lead + x.shape
        pads = [(0, 0)] * lead + [tuple(int(v) for v in p) for p in paddings]
        p = Int8PadParams((I32 * 4)(*dims), (I32 * 4)(*[a for a, _ in pads]),
                          (I32 * 4)(*[b for _, b in pads]), value)
        out = np.full(tuple(d + a + b for d, (a, b) in zip(dims, pads))[lead:], 99, np.int8)
        self._call("ebnn_int8_pad_ref", C.byref(p), _p8(x), _p8(out))
        return out

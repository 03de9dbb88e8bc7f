"""ctypes bindings of the edgebnn C runtime (firmware/runtime/), for tests.

``build_runtime(out_dir, sanitize=False)`` compiles every runtime source into
one shared library with ``gcc -std=c99 -Wall -Wextra -Werror -O2``;
``Runtime(path)`` wraps its kernels as numpy functions. The ctypes structures
below mirror firmware/runtime/ebnn.h field for field (all int32 and
pointers); ``test_struct_layout_matches_header`` checks their sizes against
``sizeof`` compiled from the header.
"""

import ctypes as C
import subprocess
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
RUNTIME = REPO / "firmware" / "runtime"
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g"]

PADDING = {"SAME": 0, "VALID": 1}
ACT = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}

I32 = C.c_int32
PF = C.POINTER(C.c_float)
PI = C.POINTER(C.c_int32)


def runtime_sources():
    return sorted(RUNTIME.glob("*.c"))


def build_runtime(out_dir, sanitize=False, extra_flags=()):
    """Compile the runtime into ``out_dir/libebnn[_san].so`` and return its path."""
    out = Path(out_dir) / ("libebnn_san.so" if sanitize else "libebnn.so")
    cmd = ["gcc", *CFLAGS, "-shared", "-fPIC", *(SANITIZE if sanitize else []), *extra_flags,
           "-I", str(RUNTIME), *map(str, runtime_sources()), "-o", str(out), "-lm"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"runtime build failed: {' '.join(cmd)}\n{res.stderr}")
    return out


class QuantizeParams(C.Structure):
    _fields_ = [("n_pixels", I32), ("channels", I32)]


class BConv2DParams(C.Structure):
    _fields_ = [(n, I32) for n in ("in_h", "in_w", "in_c", "out_c", "filter_h", "filter_w",
                                   "stride_h", "stride_w", "dilation_h", "dilation_w", "padding",
                                   "pad_value", "activation")] + [
        ("filter", PI), ("multiplier", PF), ("bias", PF), ("thresholds", PI), ("filter_t", PI)]


class BConv2DAddParams(C.Structure):
    _fields_ = [("conv", BConv2DParams), ("residual_first", I32), ("activation", I32)]


class LConv2DParams(C.Structure):
    _fields_ = [("conv", BConv2DParams), ("levels", I32), ("activation", I32), ("filter_pop", PI)]


MAX_DIMS = 6  # EBNN_MAX_DIMS


class BroadcastParams(C.Structure):
    _fields_ = [("rank", I32), ("a_dims", I32 * MAX_DIMS), ("b_dims", I32 * MAX_DIMS), ("activation", I32)]


class BMaxPool2DParams(C.Structure):
    _fields_ = [(n, I32) for n in ("in_h", "in_w", "channels", "filter_h", "filter_w",
                                   "stride_h", "stride_w", "padding")]


class BDenseParams(C.Structure):
    _fields_ = [(n, I32) for n in ("rows", "in_features", "out_features", "activation")] + [
        ("weights", PI), ("multiplier", PF), ("bias", PF)]


class Conv2DParams(C.Structure):
    _fields_ = [(n, I32) for n in ("in_h", "in_w", "in_c", "out_c", "filter_h", "filter_w",
                                   "stride_h", "stride_w", "dilation_h", "dilation_w", "padding",
                                   "activation")] + [("filter", PF), ("bias", PF), ("filter_layout", I32)]


class DepthwiseConv2DParams(C.Structure):
    _fields_ = [(n, I32) for n in ("in_h", "in_w", "in_c", "depth_multiplier", "filter_h",
                                   "filter_w", "stride_h", "stride_w", "dilation_h", "dilation_w",
                                   "padding", "activation")] + [("filter", PF), ("bias", PF)]


class FullyConnectedParams(C.Structure):
    _fields_ = [(n, I32) for n in ("rows", "in_features", "out_features", "activation")] + [
        ("weights", PF), ("bias", PF), ("weights_layout", I32)]


class Pool2DParams(C.Structure):
    _fields_ = [(n, I32) for n in ("in_h", "in_w", "channels", "filter_h", "filter_w",
                                   "stride_h", "stride_w", "padding", "activation")]


class MeanParams(C.Structure):
    _fields_ = [("in_h", I32), ("in_w", I32), ("channels", I32)]


class BinaryParams(C.Structure):
    _fields_ = [("size", I32), ("b_size", I32), ("activation", I32)]


class SoftmaxParams(C.Structure):
    _fields_ = [("rows", I32), ("cols", I32), ("beta", C.c_float)]


CONCAT_MAX = 16


class ConcatParams(C.Structure):
    _fields_ = [("outer", I32), ("n_inputs", I32), ("inner", I32 * CONCAT_MAX), ("activation", I32)]


class PadParams(C.Structure):
    _fields_ = [("dims", I32 * 4), ("before", I32 * 4), ("after", I32 * 4), ("value", C.c_float)]


class UnaryParams(C.Structure):
    _fields_ = [("size", I32), ("alpha", C.c_float)]


FUSED_MAX_STAGES = 4


class FusedStage(C.Structure):
    _fields_ = [("kind", I32), ("size", I32), ("values", PF), ("activation", I32)]


class FusedParams(C.Structure):
    _fields_ = [("producer", I32), ("conv", C.POINTER(Conv2DParams)),
                ("bconv", C.POINTER(BConv2DParams)), ("has_pool", I32), ("pool", Pool2DParams),
                ("n_stages", I32), ("stages", FusedStage * FUSED_MAX_STAGES)]


STRUCTS = {
    "ebnn_quantize_params_t": QuantizeParams,
    "ebnn_bconv2d_params_t": BConv2DParams,
    "ebnn_lconv2d_params_t": LConv2DParams,
    "ebnn_broadcast_params_t": BroadcastParams,
    "ebnn_bmaxpool2d_params_t": BMaxPool2DParams,
    "ebnn_bdense_params_t": BDenseParams,
    "ebnn_conv2d_params_t": Conv2DParams,
    "ebnn_depthwise_conv2d_params_t": DepthwiseConv2DParams,
    "ebnn_fully_connected_params_t": FullyConnectedParams,
    "ebnn_pool2d_params_t": Pool2DParams,
    "ebnn_mean_params_t": MeanParams,
    "ebnn_binary_params_t": BinaryParams,
    "ebnn_softmax_params_t": SoftmaxParams,
    "ebnn_concat_params_t": ConcatParams,
    "ebnn_pad_params_t": PadParams,
    "ebnn_unary_params_t": UnaryParams,
    "ebnn_fused_stage_t": FusedStage,
    "ebnn_fused_params_t": FusedParams,
}


def _f32(a):
    return np.ascontiguousarray(a, dtype=np.float32)


def _i32(a):
    return np.ascontiguousarray(a, dtype=np.int32)


def _pf(a):
    return None if a is None else a.ctypes.data_as(PF)


def _pi(a):
    return None if a is None else a.ctypes.data_as(PI)


def out_size(n, f, s, d, padding):
    eff = (f - 1) * d + 1
    return -(-n // s) if padding == "SAME" else -(-(n - eff + 1) // s)


def words(c):
    return (c + 31) // 32


class KernelError(RuntimeError):
    pass


class Runtime:
    """numpy front end of the compiled runtime; every call checks the status."""

    def __init__(self, path, variant="ref", filter_t=False):
        self.lib = C.CDLL(str(path))
        self._keep = []
        self.variant = variant
        self.filter_t = filter_t  # hand LceBconv2d its export-time transposed filter

    def fn(self, base):
        """``base_<variant>`` if the library exports it, else ``base_ref``."""
        name = f"{base}_{self.variant}"
        return name if self.variant != "ref" and hasattr(self.lib, name) else f"{base}_ref"

    def _call(self, name, *args):
        fn = getattr(self.lib, name)
        fn.restype = I32
        st = fn(*args)
        if st != 0:
            raise KernelError(f"{name} returned status {st}")

    # ------------------------------------------------------------ binary
    def quantize(self, x):
        x = _f32(x)
        c = x.shape[-1]
        n = x.size // c
        out = np.zeros(x.shape[:-1] + (words(c),), np.int32)
        p = QuantizeParams(n, c)
        self._call(self.fn("ebnn_quantize"), C.byref(p), _pf(x), _pi(out))
        return out

    def dequantize(self, packed, channels):
        packed = _i32(packed)
        n = packed.size // words(channels)
        out = np.zeros(packed.shape[:-1] + (channels,), np.float32)
        p = QuantizeParams(n, channels)
        self._call("ebnn_dequantize_ref", C.byref(p), _pi(packed), _pf(out))
        return out

    def bconv2d_params(self, in_shape, in_c, filt, *, stride=(1, 1), dilation=(1, 1),
                       padding="VALID", pad_value=1, activation="NONE", multiplier=None,
                       bias=None, thresholds=None):
        filt = _i32(filt)
        mult = None if multiplier is None else _f32(multiplier)
        b = None if bias is None else _f32(bias)
        thr = None if thresholds is None else _i32(thresholds)
        filt_t = np.ascontiguousarray(filt.reshape(filt.shape[0], -1).T) if self.filter_t else None
        keep = (filt, mult, b, thr, filt_t)
        p = BConv2DParams(in_shape[0], in_shape[1], in_c, filt.shape[0], filt.shape[1],
                          filt.shape[2], stride[0], stride[1], dilation[0], dilation[1],
                          PADDING[padding], pad_value, ACT[activation], _pi(filt), _pf(mult),
                          _pf(b), _pi(thr), _pi(filt_t))
        return p, keep

    def bconv2d(self, packed_input, in_c, filt, **kw):
        packed_input = _i32(packed_input)
        h, w = packed_input.shape[-3], packed_input.shape[-2]
        p, keep = self.bconv2d_params((h, w), in_c, filt, **kw)
        oh = out_size(h, p.filter_h, p.stride_h, p.dilation_h, kw.get("padding", "VALID"))
        ow = out_size(w, p.filter_w, p.stride_w, p.dilation_w, kw.get("padding", "VALID"))
        if kw.get("thresholds") is not None:
            out = np.full((oh, ow, words(p.out_c)), -12345, np.int32)
            self._call(self.fn("ebnn_bconv2d"), C.byref(p), _pi(packed_input), _pi(out))
        else:
            out = np.full((oh, ow, p.out_c), np.nan, np.float32)
            self._call(self.fn("ebnn_bconv2d"), C.byref(p), _pi(packed_input), _pf(out))
        del keep
        return out

    def bconv2d_add(self, packed_input, in_c, filt, residual, *, residual_first=0, add_activation="NONE",
                    **kw):
        """ebnn_bconv2d_add: the float-output bconv of ``kw`` (as :meth:`bconv2d`), then its ADD with ``residual``."""
        packed_input = _i32(packed_input)
        residual = _f32(residual)
        h, w = packed_input.shape[-3], packed_input.shape[-2]
        p, keep = self.bconv2d_params((h, w), in_c, filt, **kw)
        oh = out_size(h, p.filter_h, p.stride_h, p.dilation_h, kw.get("padding", "VALID"))
        ow = out_size(w, p.filter_w, p.stride_w, p.dilation_w, kw.get("padding", "VALID"))
        assert residual.shape == (oh, ow, p.out_c)
        ap = BConv2DAddParams(p, residual_first, ACT[add_activation])
        out = np.full((oh, ow, p.out_c), np.nan, np.float32)
        self._call(self.fn("ebnn_bconv2d_add"), C.byref(ap), _pi(packed_input), _pf(residual), _pf(out))
        del keep
        return out

    def lconv2d(self, x, levels, signs, scale, bias, *, stride=(1, 1), dilation=(1, 1),
                padding="VALID", activation="NONE", filter_pop=True):
        """The level-coded convolution of float codes x [h, w, c] with +-1 ``signs`` (OHWI) times ``scale``."""
        x = _f32(x)
        signs = np.asarray(signs)
        bits = np.zeros(signs.shape[:3] + (words(signs.shape[3]) * 32,), np.uint64)
        bits[..., :signs.shape[3]] = signs < 0
        packed = (bits.reshape(signs.shape[:3] + (-1, 32)) << np.arange(32, dtype=np.uint64)).sum(-1)
        filt = _i32(packed.astype(np.uint32).view(np.int32))
        p, keep = self.bconv2d_params(x.shape[:2], x.shape[2], filt, stride=stride, dilation=dilation,
                                      padding=padding, pad_value=1, multiplier=scale,
                                      bias=np.zeros(len(signs), np.float32) if bias is None else bias)
        pop = None
        if filter_pop:
            pop = _i32([int(np.unpackbits(filt[o].view(np.uint8)).sum()) for o in range(filt.shape[0])])
        lp = LConv2DParams(p, levels, ACT[activation], _pi(pop))
        oh = out_size(x.shape[0], p.filter_h, stride[0], dilation[0], padding)
        ow = out_size(x.shape[1], p.filter_w, stride[1], dilation[1], padding)
        out = np.full((oh, ow, p.out_c), np.nan, np.float32)
        self.lib.ebnn_lconv2d_scratch_bytes.restype = C.c_size_t
        n = self.lib.ebnn_lconv2d_scratch_bytes(C.byref(lp))
        scratch = np.zeros(max(n // 4, 1), np.int32)
        self._call(self.fn("ebnn_lconv2d"), C.byref(lp), _pf(x), _pf(out), _pi(scratch), C.c_size_t(n))
        del keep, pop
        return out

    def broadcast(self, op, a, b, activation="NONE", out_fill=5.0):
        """SUB / MINIMUM / MAXIMUM / PRELU (``op``) of a and b with NumPy broadcasting."""
        a, b = _f32(a), _f32(b)
        rank = max(a.ndim, b.ndim)
        a_dims = (1,) * (rank - a.ndim) + a.shape
        b_dims = (1,) * (rank - b.ndim) + b.shape
        out = np.full(tuple(max(x, y) for x, y in zip(a_dims, b_dims)), out_fill, np.float32)
        p = BroadcastParams(rank, (I32 * MAX_DIMS)(*a_dims), (I32 * MAX_DIMS)(*b_dims), ACT[activation])
        self._call(self.fn(f"ebnn_{op}"), C.byref(p), _pf(a), _pf(b), _pf(out))
        return out

    def bmaxpool2d(self, packed, channels, filt, stride, padding):
        packed = _i32(packed)
        h, w = packed.shape[-3], packed.shape[-2]
        oh, ow = out_size(h, filt[0], stride[0], 1, padding), out_size(w, filt[1], stride[1], 1, padding)
        out = np.full((oh, ow, words(channels)), -12345, np.int32)
        p = BMaxPool2DParams(h, w, channels, filt[0], filt[1], stride[0], stride[1], PADDING[padding])
        self._call("ebnn_bmaxpool2d_ref", C.byref(p), _pi(packed), _pi(out))
        return out

    def bdense(self, packed, in_features, weights, multiplier=None, bias=None, activation="NONE"):
        packed = _i32(packed).reshape(-1, words(in_features))
        weights = _i32(weights)
        mult = None if multiplier is None else _f32(multiplier)
        b = None if bias is None else _f32(bias)
        out = np.full((packed.shape[0], weights.shape[0]), np.nan, np.float32)
        p = BDenseParams(packed.shape[0], in_features, weights.shape[0], ACT[activation],
                         _pi(weights), _pf(mult), _pf(b))
        self._call("ebnn_bdense_ref", C.byref(p), _pi(packed), _pf(out))
        return out

    # ------------------------------------------------------------- float
    def conv2d_params(self, in_shape, filt, bias=None, *, stride=(1, 1), dilation=(1, 1),
                      padding="VALID", activation="NONE", hwio=False):
        """filt is OHWI; hwio=True hands the kernel its [fh][fw][in_c][out_c] transpose, hwio="hwio16"
        the HWIO16 layout (ebnn.h: element (o, k) at (o // 16) * 16 * K + k * width + o % 16)."""
        filt = _f32(filt)
        b = None if bias is None else _f32(bias)
        layout = 2 if hwio == "hwio16" else 1 if hwio else 0
        if layout == 2:
            oc = filt.shape[0]
            flat = filt.reshape(oc, -1)
            k = flat.shape[1]
            data = np.empty(oc * k, np.float32)
            for o in range(oc):
                width = min(16, oc - o // 16 * 16)
                data[o // 16 * 16 * k + np.arange(k) * width + o % 16] = flat[o]
        else:
            data = np.ascontiguousarray(filt.transpose(1, 2, 3, 0)) if hwio else filt
        p = Conv2DParams(in_shape[0], in_shape[1], in_shape[2], filt.shape[0], filt.shape[1],
                         filt.shape[2], stride[0], stride[1], dilation[0], dilation[1],
                         PADDING[padding], ACT[activation], _pf(data), _pf(b), layout)
        return p, (filt, b, data)

    def conv2d(self, x, filt, bias=None, **kw):
        x = _f32(x)
        p, keep = self.conv2d_params(x.shape, filt, bias, **kw)
        pad = kw.get("padding", "VALID")
        oh = out_size(p.in_h, p.filter_h, p.stride_h, p.dilation_h, pad)
        ow = out_size(p.in_w, p.filter_w, p.stride_w, p.dilation_w, pad)
        out = np.full((oh, ow, p.out_c), np.nan, np.float32)
        self._call(self.fn("ebnn_conv2d"), C.byref(p), _pf(x), _pf(out))
        del keep
        return out

    def depthwise_conv2d(self, x, filt, bias=None, *, depth_multiplier=1, stride=(1, 1),
                         dilation=(1, 1), padding="VALID", activation="NONE"):
        x, filt = _f32(x), _f32(filt)
        b = None if bias is None else _f32(bias)
        p = DepthwiseConv2DParams(x.shape[0], x.shape[1], x.shape[2], depth_multiplier,
                                  filt.shape[1], filt.shape[2], stride[0], stride[1],
                                  dilation[0], dilation[1], PADDING[padding], ACT[activation],
                                  _pf(filt), _pf(b))
        oh = out_size(p.in_h, p.filter_h, stride[0], dilation[0], padding)
        ow = out_size(p.in_w, p.filter_w, stride[1], dilation[1], padding)
        out = np.full((oh, ow, x.shape[2] * depth_multiplier), np.nan, np.float32)
        self._call(self.fn("ebnn_depthwise_conv2d"), C.byref(p), _pf(x), _pf(out))
        return out

    def fully_connected(self, x, weights, bias=None, activation="NONE", io=False):
        """``weights`` [out, in]; ``io``: pass them transposed, as EBNN_WEIGHTS_IO."""
        weights = _f32(weights)
        x = _f32(x).reshape(-1, weights.shape[1])
        b = None if bias is None else _f32(bias)
        out = np.full((x.shape[0], weights.shape[0]), np.nan, np.float32)
        w = np.ascontiguousarray(weights.T) if io else weights
        p = FullyConnectedParams(x.shape[0], weights.shape[1], weights.shape[0], ACT[activation],
                                 _pf(w), _pf(b), 1 if io else 0)
        self._call(self.fn("ebnn_fully_connected"), C.byref(p), _pf(x), _pf(out))
        return out

    def pool_params(self, in_shape, filt, stride, padding, activation="NONE"):
        return Pool2DParams(in_shape[0], in_shape[1], in_shape[2], filt[0], filt[1], stride[0],
                            stride[1], PADDING[padding], ACT[activation])

    def _pool(self, name, x, filt, stride, padding, activation):
        x = _f32(x)
        p = self.pool_params(x.shape, filt, stride, padding, activation)
        oh = out_size(x.shape[0], filt[0], stride[0], 1, padding)
        ow = out_size(x.shape[1], filt[1], stride[1], 1, padding)
        out = np.full((oh, ow, x.shape[2]), np.nan, np.float32)
        self._call(name, C.byref(p), _pf(x), _pf(out))
        return out

    def max_pool2d(self, x, filt, stride, padding, activation="NONE"):
        return self._pool(self.fn("ebnn_max_pool2d"), x, filt, stride, padding, activation)

    def average_pool2d(self, x, filt, stride, padding, activation="NONE"):
        return self._pool(self.fn("ebnn_average_pool2d"), x, filt, stride, padding, activation)

    def mean_hw(self, x):
        x = _f32(x)
        out = np.full((x.shape[2],), np.nan, np.float32)
        p = MeanParams(*x.shape)
        self._call("ebnn_mean_hw_ref", C.byref(p), _pf(x), _pf(out))
        return out

    def _binary(self, name, a, b, activation):
        a, b = _f32(a), _f32(b)
        out = np.full(a.shape, np.nan, np.float32)
        p = BinaryParams(a.size, b.size, ACT[activation])
        self._call(name, C.byref(p), _pf(a), _pf(b), _pf(out))
        return out

    def add(self, a, b, activation="NONE"):
        return self._binary(self.fn("ebnn_add"), a, b, activation)

    def mul(self, a, b, activation="NONE"):
        return self._binary(self.fn("ebnn_mul"), a, b, activation)

    def softmax(self, x, beta=1.0):
        x = _f32(x)
        x2 = x.reshape(-1, x.shape[-1])
        out = np.full(x2.shape, np.nan, np.float32)
        p = SoftmaxParams(x2.shape[0], x2.shape[1], beta)
        self._call("ebnn_softmax_ref", C.byref(p), _pf(x2), _pf(out))
        return out.reshape(x.shape)

    def concatenation(self, arrays, axis):
        arrays = [_f32(a) for a in arrays]
        shape0 = arrays[0].shape
        axis = axis % len(shape0)
        outer = int(np.prod(shape0[:axis], dtype=np.int64))
        inner = (I32 * CONCAT_MAX)(*[int(np.prod(a.shape[axis:], dtype=np.int64)) for a in arrays])
        p = ConcatParams(outer, len(arrays), inner, 0)
        ptrs = (PF * len(arrays))(*[_pf(a) for a in arrays])
        out_shape = list(shape0)
        out_shape[axis] = sum(a.shape[axis] for a in arrays)
        out = np.full(out_shape, np.nan, np.float32)
        self._call("ebnn_concatenation_ref", C.byref(p), ptrs, _pf(out))
        return out

    def pad(self, x, paddings, value=0.0):
        x = _f32(x)
        lead = 4 - x.ndim
        dims = (1,) * lead + x.shape
        pads = [(0, 0)] * lead + [tuple(p) for p in paddings]
        p = PadParams((I32 * 4)(*dims), (I32 * 4)(*[a for a, _ in pads]),
                      (I32 * 4)(*[b for _, b in pads]), value)
        out_shape = tuple(d + a + b for d, (a, b) in zip(dims, pads))[lead:]
        out = np.full(out_shape, np.nan, np.float32)
        self._call("ebnn_pad_ref", C.byref(p), _pf(x), _pf(out))
        return out

    def unary(self, name, x, alpha=0.0):
        x = _f32(x)
        out = np.full(x.shape, np.nan, np.float32)
        p = UnaryParams(x.size, alpha)
        self._call(f"ebnn_{name}_ref", C.byref(p), _pf(x), _pf(out))
        return out

    # ------------------------------------------------------------- fused
    def fused(self, inp, *, conv=None, bconv=None, pool=None, stages=()):
        """conv: Conv2DParams, bconv: BConv2DParams; pool: (filt, stride, padding, act) or None;
        stages: [("MUL"|"ADD", values float32 array, act)]. Returns (packed output, scratch bytes)."""
        fp = FusedParams()
        if conv is not None:
            fp.producer, fp.conv = 0, C.pointer(conv)
            inp = _f32(inp)
            inptr = inp.ctypes.data_as(C.c_void_p)
        else:
            fp.producer, fp.bconv = 1, C.pointer(bconv)
            inp = _i32(inp)
            inptr = inp.ctypes.data_as(C.c_void_p)
        if pool is not None:
            filt, stride, padding, act = pool
            fp.has_pool = 1
            fp.pool = Pool2DParams(0, 0, 0, filt[0], filt[1], stride[0], stride[1],
                                   PADDING[padding], ACT[act])
        keep = []
        fp.n_stages = len(stages)
        for i, (kind, values, act) in enumerate(stages):
            v = _f32(values).reshape(-1)
            keep.append(v)
            fp.stages[i] = FusedStage(0 if kind == "MUL" else 1, v.size, _pf(v), ACT[act])
        self.lib.ebnn_fused_scratch_bytes.restype = C.c_size_t
        nbytes = self.lib.ebnn_fused_scratch_bytes(C.byref(fp))
        if nbytes == 0:
            raise KernelError("ebnn_fused_scratch_bytes returned 0 (invalid params)")
        oh, ow, ch = I32(), I32(), I32()
        self._call("ebnn_fused_output_shape", C.byref(fp), C.byref(oh), C.byref(ow), C.byref(ch))
        out = np.full((oh.value, ow.value, words(ch.value)), -12345, np.int32)
        scratch = np.zeros(nbytes // 4, np.float32)
        fused_fn = self.fn("ebnn_fused_conv_pool_affine_quantize")
        self._call(fused_fn, C.byref(fp), inptr, _pi(out),
                   scratch.ctypes.data_as(C.c_void_p), C.c_size_t(nbytes))
        # too small a scratch must be refused
        getattr(self.lib, fused_fn).restype = I32
        st = getattr(self.lib, fused_fn)(
            C.byref(fp), inptr, _pi(out.copy()), scratch.ctypes.data_as(C.c_void_p),
            C.c_size_t(nbytes - 4))
        if st != 5:
            raise KernelError(f"fused kernel accepted a scratch 4 bytes too small (status {st})")
        del keep
        return out, nbytes

"""Many-branch Keras models quantized to full int8, and the extraction of
every int8 op's operands and TFLite-reference output from them.

Each model is converted with TFLite's full-integer quantization (a seeded
representative dataset, int8 input and output unless ``float_io``) and run
with the reference kernels (``OpResolverType.BUILTIN_REF``) and
``experimental_preserve_all_tensors=True``, so every intermediate tensor is
readable: ``extract_int8_cases`` stores, for each op, its options, the values
and quantization of every operand and the output TFLite computed. The tests
run the C kernel on exactly those operands (tests/test_runtime_int8.py).
"""

import numpy as np

OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MUL", "QUANTIZE",
       "DEQUANTIZE", "MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN", "SOFTMAX", "CONCATENATION", "PAD")


def _tf():
    from edgebnn._tf import import_tf

    tf, keras, _ = import_tf()
    return tf, keras


def _act(a):
    return {"NONE": None, "RELU": "relu", "RELU6": "relu6"}[a]


ACTS = ("NONE", "RELU", "RELU6")


def conv_specs():
    """(kind, k, stride, dilation, padding, depth_multiplier, act) grid."""
    specs, i = [], 0
    for k in (1, 3, 5):
        for s in (1, 2):
            for pad in ("same", "valid"):
                specs.append(("conv", k, s, 1, pad, 1, ACTS[i % 3]))
                specs.append(("dw", k, s, 1, pad, 1 + (i % 2), ACTS[(i + 1) % 3]))
                i += 1
    for k in (3, 5):
        for pad in ("same", "valid"):
            specs.append(("conv", k, 1, 2, pad, 1, ACTS[i % 3]))
            specs.append(("dw", k, 1, 2, pad, 2, ACTS[(i + 2) % 3]))
            i += 1
    return specs


def build_conv_model(in_c, size=9, seed=0):
    tf, keras = _tf()
    L = keras.layers
    rng = np.random.default_rng(seed)
    init = lambda s=0.5: keras.initializers.RandomNormal(0, s, seed=int(rng.integers(1 << 30)))  # noqa: E731
    inp = keras.Input((size, size, in_c))
    outs = []
    out_cs = (1, 3, 8, 17)
    acts = {"NONE": lambda t: t, "RELU": tf.nn.relu, "RELU6": tf.nn.relu6}
    for j, (kind, k, s, d, pad, dm, act) in enumerate(conv_specs()):
        if d > 1:
            # Keras lowers dilation to SPACE_TO_BATCH_ND + conv + BATCH_TO_SPACE_ND;
            # the raw ops keep it as the conv's dilation factor in the flatbuffer
            oc = out_cs[j % 4] if kind == "conv" else in_c * dm
            w = rng.normal(0, 0.5, size=(k, k, in_c, oc if kind == "conv" else dm)).astype(np.float32)
            b = rng.normal(0, 0.3, size=oc).astype(np.float32)
            raw = tf.raw_ops.Conv2D if kind == "conv" else tf.raw_ops.DepthwiseConv2dNative
            outs.append(L.Lambda(
                lambda t, w=w, b=b, raw=raw, pad=pad, d=d, f=acts[act]: f(tf.nn.bias_add(
                    raw(input=t, filter=tf.constant(w), strides=[1, 1, 1, 1],
                        padding=pad.upper(), dilations=[1, d, d, 1]), tf.constant(b))))(inp))
        elif kind == "conv":
            outs.append(L.Conv2D(out_cs[j % 4], k, strides=s, dilation_rate=d, padding=pad,
                                 activation=_act(act), kernel_initializer=init(),
                                 bias_initializer=init(0.3))(inp))
        else:
            outs.append(L.DepthwiseConv2D(k, strides=s, dilation_rate=d, padding=pad,
                                          depth_multiplier=dm, activation=_act(act),
                                          depthwise_initializer=init(),
                                          bias_initializer=init(0.3))(inp))
    return keras.Model(inp, outs)


def build_misc_model(seed=0, size=8, in_c=6):
    """FC, ADD, MUL, pools, MEAN, SOFTMAX, CONCATENATION, PAD, requantize."""
    tf, keras = _tf()
    L = keras.layers
    rng = np.random.default_rng(seed)
    init = lambda s=0.5: keras.initializers.RandomNormal(0, s, seed=int(rng.integers(1 << 30)))  # noqa: E731
    inp = keras.Input((size, size, in_c))
    outs = []
    flat = L.Flatten()(inp)
    for units, act in ((10, "NONE"), (7, "RELU"), (17, "RELU6"), (1, "NONE")):
        outs.append(L.Dense(units, activation=_act(act), kernel_initializer=init(0.2),
                            bias_initializer=init(0.5))(flat))
    outs.append(L.Dense(5, use_bias=False, kernel_initializer=init(0.1))(flat))
    a = L.Conv2D(in_c, 1, kernel_initializer=init(), bias_initializer=init())(inp)
    b = L.Conv2D(in_c, 3, padding="same", kernel_initializer=init(1.5))(inp)
    outs.append(L.Add()([inp, a]))
    outs.append(L.Add()([a, b]))
    outs.append(L.ReLU()(L.Add()([inp, b])))
    outs.append(L.Multiply()([inp, a]))
    outs.append(L.Multiply()([a, b]))
    vec = rng.normal(size=in_c).astype(np.float32)
    outs.append(L.Lambda(lambda t: t + tf.constant(vec))(inp))
    outs.append(L.Lambda(lambda t: t * tf.constant(vec[::-1].copy() * 3))(inp))
    outs.append(L.Lambda(lambda t: t * tf.constant(np.float32(0.37)))(inp))
    for pool, s, pad in ((2, 2, "valid"), (3, 2, "same"), (3, 1, "same"), (2, 3, "same"),
                         (3, 3, "valid")):
        outs.append(L.MaxPool2D(pool, s, padding=pad)(inp))
        outs.append(L.AveragePooling2D(pool, s, padding=pad)(b))
    outs.append(L.ReLU(6.0)(L.MaxPool2D(2, 2)(b)))
    outs.append(L.GlobalAveragePooling2D()(inp))
    outs.append(L.GlobalAveragePooling2D(keepdims=True)(b))
    outs.append(L.GlobalAveragePooling2D()(a))
    outs.append(L.Softmax()(L.Reshape((size * size, in_c))(inp)))
    outs.append(L.Softmax()(L.Reshape((size * size, in_c))(b)))
    logits = L.Dense(10, kernel_initializer=init(0.3))(flat)
    outs.append(L.Softmax()(logits))
    wide = L.Dense(33, kernel_initializer=init(1.0))(flat)
    outs.append(L.Lambda(lambda t: tf.nn.softmax(t, axis=-1))(wide))
    outs.append(L.Concatenate()([a, b]))
    outs.append(L.Concatenate(axis=1)([inp, a, inp]))
    outs.append(L.ZeroPadding2D(((1, 2), (2, 0)))(b))
    outs.append(L.ZeroPadding2D(1)(inp))
    return keras.Model(inp, outs)


def build_float_io_model(seed=0, size=6, in_c=3):
    """float in/out: QUANTIZE float -> int8 at the input, DEQUANTIZE at the outputs."""
    tf, keras = _tf()
    L = keras.layers
    rng = np.random.default_rng(seed)
    init = lambda: keras.initializers.RandomNormal(0, 0.5, seed=int(rng.integers(1 << 30)))  # noqa: E731
    inp = keras.Input((size, size, in_c))
    outs = [L.Conv2D(4, 3, kernel_initializer=init(), bias_initializer=init())(inp),
            L.Dense(3, kernel_initializer=init())(L.Flatten()(inp))]
    return keras.Model(inp, outs)


def convert_int8(model, rep, float_io=False):
    tf, _ = _tf()
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([r[None]] for r in rep)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if not float_io:
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return conv.convert()


def run_reference(tflite, xs):
    """Every tensor's value for each input in ``xs`` (TFLite's reference kernels)."""
    tf, _ = _tf()
    per_sample = []
    for x in xs:
        it = tf.lite.Interpreter(
            model_content=tflite,
            experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF,
            experimental_preserve_all_tensors=True)
        it.allocate_tensors()
        d = it.get_input_details()[0]
        if d["dtype"] == np.int8:
            s, z = d["quantization"]
            x = np.clip(np.round(x / s) + z, -128, 127).astype(np.int8)
        it.set_tensor(d["index"], x[None].astype(d["dtype"]))
        it.invoke()
        vals = {}
        for t in it.get_tensor_details():
            try:
                vals[t["index"]] = np.array(it.get_tensor(t["index"]))
            except ValueError:
                pass
        per_sample.append(vals)
    return per_sample


def _quant(t):
    q = t.quantization
    if q is None:
        return None
    return dict(scale=np.asarray(q.scale, np.float32), zero_point=np.asarray(q.zero_point, np.int64),
                quantized_dimension=int(q.quantized_dimension))


def extract_int8_cases(tflite, xs, model_name):
    """One dict per op of OPS: options, operand values (stacked over samples)
    and quantization, TFLite's output."""
    from edgebnn.graph import load_graph

    g = load_graph(tflite)
    vals = run_reference(tflite, xs)
    cases = []
    for op in g.ops:
        if op.type not in OPS:
            continue
        if op.type not in ("QUANTIZE", "DEQUANTIZE") and g.tensor(op.outputs[0]).dtype != "int8":
            continue  # an op the converter left in float
        case = dict(model=model_name, type=op.type, op_index=op.index,
                    options={k: (v if isinstance(v, (int, float, str, bool)) else str(v))
                             for k, v in dict(op.options).items()},
                    n_inputs=len(op.inputs))
        for j, ti in enumerate(op.inputs):
            if ti < 0:
                case[f"in{j}_absent"] = True
                continue
            t = g.tensor(ti)
            if t.is_constant:
                case[f"in{j}"] = np.asarray(t.data)
                case[f"in{j}_const"] = True
            else:
                case[f"in{j}"] = np.stack([v[ti] for v in vals])
            case[f"in{j}_shape"] = list(t.shape)
            case[f"in{j}_dtype"] = t.dtype
            q = _quant(t)
            if q is not None:
                for k, v in q.items():
                    case[f"in{j}_{k}"] = v
        to = g.tensor(op.outputs[0])
        case["out"] = np.stack([v[op.outputs[0]] for v in vals])
        case["out_shape"] = list(to.shape)
        case["out_dtype"] = to.dtype
        q = _quant(to)
        if q is not None:
            for k, v in q.items():
                case[f"out_{k}"] = v
        cases.append(case)
    return cases


def build_dense_model(seed=0, features=40):
    tf, keras = _tf()
    L = keras.layers
    rng = np.random.default_rng(seed)
    init = lambda s: keras.initializers.RandomNormal(0, s, seed=int(rng.integers(1 << 30)))  # noqa: E731
    inp = keras.Input((features,))
    outs = [L.Dense(u, activation=_act(a), kernel_initializer=init(0.3), bias_initializer=init(0.5))(inp)
            for u, a in ((9, "NONE"), (16, "RELU"), (3, "RELU6"))]
    return keras.Model(inp, outs)


def to_per_channel_fc(tflite):
    """Rewrite every int8 FULLY_CONNECTED of a converted model to per-channel
    weights (the 2.16 converter only emits per-tensor dense layers, the
    kernels accept both): each output row gets scale max|w_o| / 127 over
    its dequantized weights (rows scaled by 1 + o/8 first, so the scales
    differ), the int32 bias is requantized to input_scale * scale_o."""
    from tensorflow.lite.tools import flatbuffer_utils as fu

    model = fu.convert_bytearray_to_object(bytearray(tflite))
    sub = model.subgraphs[0]
    codes = [fu.opcode_to_name(model, op.opcodeIndex) for op in sub.operators]
    for op, code in zip(sub.operators, codes):
        if code != "FULLY_CONNECTED":
            continue
        x_t, w_t, b_t = (sub.tensors[i] for i in op.inputs[:3])
        in_scale = np.float32(x_t.quantization.scale[0])
        wq = np.frombuffer(bytes(model.buffers[w_t.buffer].data), np.int8).reshape(w_t.shape)
        w = wq.astype(np.float32) * np.float32(w_t.quantization.scale[0])
        w = w * (1 + np.arange(w.shape[0], dtype=np.float32)[:, None] / 8)
        bq = np.frombuffer(bytes(model.buffers[b_t.buffer].data), np.int32)
        b = bq.astype(np.float64) * float(b_t.quantization.scale[0])
        scales = (np.abs(w).max(axis=1) / 127).astype(np.float32)
        wq2 = np.clip(np.round(w / scales[:, None]), -127, 127).astype(np.int8)
        bscale = (in_scale * scales).astype(np.float32)
        bq2 = np.round(b / bscale).astype(np.int32)
        model.buffers[w_t.buffer].data = np.frombuffer(wq2.tobytes(), np.uint8)
        model.buffers[b_t.buffer].data = np.frombuffer(bq2.tobytes(), np.uint8)
        w_t.quantization.scale = [float(v) for v in scales]
        w_t.quantization.zeroPoint = [0] * len(scales)
        w_t.quantization.quantizedDimension = 0
        b_t.quantization.scale = [float(v) for v in bscale]
        b_t.quantization.zeroPoint = [0] * len(scales)
        b_t.quantization.quantizedDimension = 0
    return bytes(fu.convert_object_to_bytearray(model))


SOFTMAX_BETAS = (0.3, 2.5, 1.0)


def build_softmax_model(seed=0, features=24):
    tf, keras = _tf()
    L = keras.layers
    rng = np.random.default_rng(seed)
    inp = keras.Input((features,))
    outs = []
    for units, s in ((12, 0.4), (40, 1.0), (7, 2.0)):
        init = keras.initializers.RandomNormal(0, s, seed=int(rng.integers(1 << 30)))
        outs.append(L.Softmax()(L.Dense(units, kernel_initializer=init)(inp)))
    return keras.Model(inp, outs)


def set_softmax_betas(tflite, betas=SOFTMAX_BETAS):
    """Give the model's SOFTMAX ops the betas ``betas`` in order (Keras and the
    converter always write 1.0; TFLite's kernel folds beta into its input
    multiplier, so other values exercise that arithmetic)."""
    from tensorflow.lite.tools import flatbuffer_utils as fu

    model = fu.convert_bytearray_to_object(bytearray(tflite))
    sub = model.subgraphs[0]
    ops = [op for op in sub.operators if fu.opcode_to_name(model, op.opcodeIndex) == "SOFTMAX"]
    for op, beta in zip(ops, betas):
        op.builtinOptions.beta = float(beta)
    return bytes(fu.convert_object_to_bytearray(model))

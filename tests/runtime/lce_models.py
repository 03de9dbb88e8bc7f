"""Many-branch Larq models whose LCE conversion exercises the binary kernels.

One Keras model per input-channel count holds dozens of branches on a single
float input: QuantConv2D branches over the kernel/stride/dilation/padding/
pad_values/activation grid, with float output (QuantConv2D -> BatchNorm, or
-> an activation) or bitpacked output (-> BatchNorm -> SteSign, which LCE
turns into a LceBconv2d writing bitpacked output followed by LceDequantize),
plus MaxPool -> 1x1 QuantConv2D branches (LceBMaxPool2d) and QuantDense
branches (LceQuantize -> LceDequantize -> FULLY_CONNECTED with +-1 weights).

``extract_cases(tflite_bytes, x)`` runs LCE's interpreter once and returns,
for every LceBconv2d / LceBMaxPool2d / binary FULLY_CONNECTED that reads the
quantized model input, its parameters (read from the flatbuffer with
edgebnn.graph.load_graph) and LCE's output for it. Nothing here knows about
the C runtime: the tests feed these cases to it.
"""

import itertools

import numpy as np

ACT_NAMES = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}
PAD_NAMES = {0: "SAME", 1: "VALID"}

# (kernel, stride, dilation): Keras refuses stride > 1 together with dilation > 1.
GEOMETRIES = [(1, 1, 1), (1, 2, 1), (3, 1, 1), (3, 2, 1), (3, 1, 2), (5, 1, 1), (5, 2, 1), (5, 1, 2)]
# (padding, pad_values)
PADDINGS = [("same", 0), ("same", 1), ("valid", 0)]


def branch_grid(variant=0, full=True):
    """The bconv branches of one model: dicts with k, s, d, padding, pad_value, out, act.

    Dilated branches are rationed: TF lowers a dilated convolution to
    SPACE_TO_BATCH_ND -> conv -> BATCH_TO_SPACE_ND, the graph optimizer merges
    identical SPACE_TO_BATCH_ND ops of sibling branches, and LCE's converter
    then leaves those branches as float CONV_2D (measured with 0.16). So a
    model holds at most one dilated branch per SPACE_TO_BATCH_ND input
    (valid; same-one k3; same-one k5; same-zero k3; same-zero k5), and
    ``variant`` rotates which one, so the five models together cover all.
    """
    specs = []
    undilated = [g for g in GEOMETRIES if g[2] == 1]
    if not full:
        undilated = [(1, 1, 1), (3, 2, 1), (3, 1, 1)]
    for (k, s, d), (padding, pad_value), out in itertools.product(undilated, PADDINGS, ("float", "packed")):
        if out == "packed" and padding == "same" and pad_value == 0:
            continue  # LCE only writes bitpacked output with valid or one-padding
        specs.append(dict(k=k, s=s, d=d, padding=padding, pad_value=pad_value, out=out, act="NONE"))
    v = variant
    dilated = [
        (3 if v % 2 == 0 else 5, "valid", 0, ("float", "packed")[(v // 2) % 2]),
        (3, "same", 1, ("packed", "float")[v % 2]),
        (5, "same", 1, ("float", "packed")[v % 2]),
        (3, "same", 0, "float"),
        (5, "same", 0, "float"),
    ]
    if not full:
        dilated = dilated[v % len(dilated):][:1]
    for k, padding, pad_value, out in dilated:
        specs.append(dict(k=k, s=1, d=2, padding=padding, pad_value=pad_value, out=out, act="NONE"))
    # Fused activations (float output; LCE forbids them with same-zero padding).
    acts = ("RELU", "RELU6", "RELU_N1_TO_1")
    act_geoms = [(3, 1, 1, "valid", 0), (3, 2, 1, "same", 1), (5, 1, 1, "same", 1)]
    if not full:
        act_geoms = act_geoms[1:2]
    for act, (k, s, d, padding, pad_value) in itertools.product(acts, act_geoms):
        specs.append(dict(k=k, s=s, d=d, padding=padding, pad_value=pad_value, out="float", act=act))
    return specs


def build_model(channels_in, specs, *, size=10, seed=0, bmaxpool=True, dense=True):
    """A tf_keras model with one output per branch; BatchNorm statistics are random.

    bmaxpool: True for three MaxPool -> 1x1 QuantConv2D branches, or a list of
    (pool, stride, padding) tuples, or False.
    """
    from edgebnn._tf import import_tf

    tf, keras, lq = import_tf()
    rng = np.random.default_rng(seed)
    tf.random.set_seed(seed)
    inp = keras.Input((size, size, channels_in))
    kw = dict(input_quantizer="ste_sign", kernel_quantizer="ste_sign",
              kernel_constraint="weight_clip", use_bias=False)
    outs = []
    for i, sp in enumerate(specs):
        out_c = 40 if sp["out"] == "packed" else int(rng.choice([5, 8, 33]))
        x = lq.layers.QuantConv2D(out_c, sp["k"], strides=sp["s"], dilation_rate=sp["d"],
                                  padding=sp["padding"], pad_values=float(sp["pad_value"]),
                                  kernel_initializer=keras.initializers.RandomUniform(-1, 1, seed=seed * 1000 + i),
                                  **kw)(inp)
        if sp["act"] == "NONE":
            x = keras.layers.BatchNormalization()(x)
        elif sp["act"] == "RELU":
            x = keras.layers.ReLU()(x)
        elif sp["act"] == "RELU6":
            x = keras.layers.ReLU(6.0)(x)
        else:
            x = keras.layers.Lambda(lambda t: tf.clip_by_value(t, -1.0, 1.0))(x)
        if sp["out"] == "packed":
            x = lq.quantizers.SteSign()(x)
        outs.append(x)
    pools = ((2, 2, "valid"), (3, 2, "same"), (3, 1, "same")) if bmaxpool is True else (bmaxpool or ())
    if pools:
        for pool, stride, padding in pools:
            x = keras.layers.MaxPool2D(pool, stride, padding=padding)(inp)
            x = lq.layers.QuantConv2D(7, 1, **kw)(x)
            outs.append(x)
    if dense:
        x = keras.layers.Flatten()(inp)
        x = lq.layers.QuantDense(13, input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                                 kernel_constraint="weight_clip", use_bias=True,
                                 bias_initializer=keras.initializers.RandomNormal(0, 3, seed=seed))(x)
        outs.append(x)
    model = keras.Model(inp, outs)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.get_weights()[0].size
            layer.set_weights([
                rng.uniform(-2, 2, n).astype(np.float32),   # gamma, some negative
                rng.normal(0, 3, n).astype(np.float32),      # beta
                rng.normal(0, 4, n).astype(np.float32),      # moving mean
                rng.uniform(0.3, 30, n).astype(np.float32),  # moving variance
            ])
    return model


def convert(model):
    from edgebnn._tf import import_lce

    lce = import_lce()
    return lce.convert_keras_model(model)


def run_lce(tflite, x):
    from edgebnn._tf import import_lce

    import_lce()
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    outs = Interpreter(tflite).predict(x[None].astype(np.float32))
    return outs if isinstance(outs, list) else [outs]


def extract_cases(tflite, x):
    """Per kernel call in the LCE graph that reads the quantized input: params + LCE output."""
    from edgebnn.graph import load_graph

    g = load_graph(tflite)
    outs = run_lce(tflite, x)
    result = {t: np.asarray(o)[0] for t, o in zip(g.outputs, outs)}
    producer = {t: op for op in g.ops for t in op.outputs}
    consumers = {}
    for op in g.ops:
        for t in op.inputs:
            consumers.setdefault(t, []).append(op)

    def from_quantized_input(t):
        op = producer.get(t)
        if op is None or op.type != "LceQuantize":
            return False
        src = op.inputs[0]
        if src in producer and producer[src].type == "RESHAPE":  # Flatten before QuantDense
            src = producer[src].inputs[0]
        return src == g.inputs[0]

    cases = []
    for op in g.ops:
        if op.type == "LceBconv2d" and from_quantized_input(op.inputs[0]):
            cases.append(_bconv_case(g, op, result, consumers))
        elif op.type == "LceBMaxPool2d" and from_quantized_input(op.inputs[0]):
            (nxt,) = consumers[op.outputs[0]]
            assert nxt.type == "LceBconv2d", nxt.type
            o = op.options
            case = _bconv_case(g, nxt, result, consumers)
            case.update(kind="bmaxpool", pool_filter=(o["filter_height"], o["filter_width"]),
                        pool_stride=(o["stride_height"], o["stride_width"]),
                        pool_padding=PAD_NAMES[o["padding"]], op_index=op.index)
            cases.append(case)
        elif op.type == "FULLY_CONNECTED":
            deq = producer.get(op.inputs[0])
            if deq is None or deq.type != "LceDequantize" or not from_quantized_input(deq.inputs[0]):
                continue
            w = g.tensor(op.inputs[1]).data
            bias = g.tensor(op.inputs[2]).data if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
            cases.append(dict(kind="bdense", op_index=op.index, weights=np.asarray(w, np.float32),
                              bias=None if bias is None else np.asarray(bias, np.float32),
                              act=op.options.get("fused_activation_function", "NONE"),
                              lce=result[op.outputs[0]].reshape(-1)))
    return cases


def _bconv_case(g, op, result, consumers):
    o = op.options
    thr_idx = op.inputs[4] if len(op.inputs) > 4 else -1
    packed = thr_idx >= 0
    case = dict(
        kind="bconv", op_index=op.index, channels_in=int(o["channels_in"]),
        stride=(o["stride_height"], o["stride_width"]),
        dilation=(o["dilation_height_factor"], o["dilation_width_factor"]),
        padding=PAD_NAMES[o["padding"]], pad_value=int(o["pad_values"]),
        activation=ACT_NAMES[o["fused_activation_function"]],
        filter=np.asarray(g.tensor(op.inputs[1]).data, np.int32), packed=packed,
    )
    if packed:
        assert g.tensor(op.outputs[0]).dtype == "int32"
        case["thresholds"] = np.asarray(g.tensor(thr_idx).data, np.int32)
        (deq,) = consumers[op.outputs[0]]
        assert deq.type == "LceDequantize", deq.type
        case["lce"] = result[deq.outputs[0]]  # +-1.0 floats of the bitpacked output
    else:
        assert g.tensor(op.outputs[0]).dtype == "float32"
        case["multiplier"] = np.asarray(g.tensor(op.inputs[2]).data, np.float32)
        case["bias"] = np.asarray(g.tensor(op.inputs[3]).data, np.float32)
        case["lce"] = result[op.outputs[0]]
    return case


def spec_id(spec, channels_in):
    """The case_id() that the branch built from ``spec`` must produce."""
    pad = "valid" if spec["padding"] == "valid" else ("same_one" if spec["pad_value"] else "same_zero")
    cid = f"k{spec['k']}_s{spec['s']}_d{spec['d']}_{pad}_c{channels_in}_{spec['out']}"
    if spec["act"] != "NONE":
        cid += "_" + spec["act"].lower()
    return cid


def case_id(case):
    if case["kind"] == "bdense":
        return f"bdense_op{case['op_index']}"
    f = case["filter"]
    pad = "valid" if case["padding"] == "VALID" else ("same_one" if case["pad_value"] else "same_zero")
    cid = (f"k{f.shape[1]}_s{case['stride'][0]}_d{case['dilation'][0]}_{pad}_"
           f"c{case['channels_in']}_{'packed' if case['packed'] else 'float'}")
    if case["activation"] != "NONE":
        cid += "_" + case["activation"].lower()
    if case["kind"] == "bmaxpool":
        cid = (f"bmaxpool{case['pool_filter'][0]}_s{case['pool_stride'][0]}_"
               f"{case['pool_padding'].lower()}_c{case['channels_in']}")
    return cid

"""A many-branch float Keras model covering the TFLite builtins the runtime implements.

Each branch is one TFLite op applied to the model input (or to a RESHAPE of
it), so ``extract_float_cases`` can read the op's options and constant
operands from the flatbuffer (edgebnn.graph.load_graph), pair them with the
output of TFLite's own interpreter, and the tests run the matching C kernel
on the same input.
"""

import numpy as np

INPUT_SHAPE = (9, 9, 6)


def build_float_model(seed=0):
    from edgebnn._tf import import_tf

    tf, keras, _ = import_tf()
    rng = np.random.default_rng(seed)
    init = lambda: keras.initializers.RandomNormal(0, 0.5, seed=int(rng.integers(1 << 30)))  # noqa: E731
    binit = lambda: keras.initializers.RandomNormal(0, 1.0, seed=int(rng.integers(1 << 30)))  # noqa: E731
    L = keras.layers
    inp = keras.Input(INPUT_SHAPE)
    outs = []
    for k, s, d, pad, act in [(3, 1, 1, "same", "relu"), (3, 2, 1, "valid", None),
                              (5, 2, 1, "same", "relu6"), (3, 1, 2, "same", None),
                              (1, 1, 1, "valid", None), (4, 2, 1, "same", None)]:
        outs.append(L.Conv2D(5, k, strides=s, dilation_rate=d, padding=pad, activation=act,
                             kernel_initializer=init(), bias_initializer=binit())(inp))
    outs.append(L.Conv2D(4, 3, padding="valid", use_bias=False, kernel_initializer=init())(inp))
    for k, s, pad, dm, act in [(3, 1, "same", 1, None), (3, 2, "valid", 2, "relu6"),
                               (5, 2, "same", 1, "relu")]:
        outs.append(L.DepthwiseConv2D(k, strides=s, padding=pad, depth_multiplier=dm,
                                      activation=act, depthwise_initializer=init(),
                                      bias_initializer=binit())(inp))
    flat = L.Flatten()(inp)
    outs.append(L.Dense(11, kernel_initializer=init(), bias_initializer=binit())(flat))
    outs.append(L.Dense(7, activation="relu", kernel_initializer=init(), bias_initializer=binit())(flat))
    for pool, s, pad in [(2, 2, "valid"), (3, 2, "same"), (3, 1, "same"), (2, 3, "same")]:
        outs.append(L.MaxPool2D(pool, s, padding=pad)(inp))
        outs.append(L.AveragePooling2D(pool, s, padding=pad)(inp))
    outs.append(L.GlobalAveragePooling2D()(inp))
    outs.append(L.GlobalAveragePooling2D(keepdims=True)(inp))
    vec = rng.normal(size=INPUT_SHAPE[-1]).astype(np.float32)
    outs.append(L.Lambda(lambda t: t + tf.constant(vec))(inp))
    outs.append(L.Lambda(lambda t: t * tf.constant(vec[::-1].copy()))(inp))
    outs.append(L.Lambda(lambda t: t * tf.constant(np.float32(1.7)))(inp))
    outs.append(L.Lambda(lambda t: t + tf.constant(np.float32(-0.3)))(inp))
    outs.append(L.Softmax()(L.Reshape((81, 6))(inp)))
    outs.append(L.Lambda(lambda t: tf.nn.softmax(t * 2.5))(flat))
    outs.append(L.Lambda(lambda t: tf.concat([t, t], axis=-1))(inp))
    outs.append(L.Lambda(lambda t: tf.concat([t, t, t], axis=1))(inp))
    outs.append(L.ZeroPadding2D(((1, 2), (2, 0)))(inp))
    outs.append(L.ReLU()(inp))
    outs.append(L.ReLU(6.0)(inp))
    outs.append(L.Lambda(lambda t: tf.clip_by_value(t, -1.0, 1.0))(inp))
    outs.append(L.Activation("tanh")(inp))
    outs.append(L.Activation("sigmoid")(inp))
    outs.append(L.LeakyReLU(0.2)(inp))
    outs.append(L.Lambda(lambda t: t * tf.nn.relu6(t + 3.0) / 6.0)(inp))
    return keras.Model(inp, outs)


def convert_float(model):
    from edgebnn._tf import import_tf

    tf, _, _ = import_tf()
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    return conv.convert()


def run_tflite(tflite, x):
    from edgebnn._tf import import_tf

    tf, _, _ = import_tf()
    it = tf.lite.Interpreter(model_content=tflite)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x[None].astype(np.float32))
    it.invoke()
    return {d["index"]: it.get_tensor(d["index"]) for d in it.get_output_details()}


def extract_float_cases(tflite, x):
    """One dict per op fed by the model input (or a RESHAPE of it) whose output is a model output."""
    from edgebnn.graph import load_graph

    g = load_graph(tflite)
    res = run_tflite(tflite, x)
    producer = {t: op for op in g.ops for t in op.outputs}
    cases = []
    for op in g.ops:
        if op.outputs[0] not in g.outputs or not op.inputs:
            continue
        src = op.inputs[0]
        reshaped = None
        if src in producer and producer[src].type == "RESHAPE":
            reshaped = g.tensor(src).shape
            src = producer[src].inputs[0]
        if src != g.inputs[0]:
            continue
        consts = {}
        for j, t in enumerate(op.inputs[1:], start=1):
            if t >= 0 and g.tensor(t).is_constant:
                consts[f"in{j}"] = np.asarray(g.tensor(t).data)
            elif t >= 0:
                consts[f"in{j}_is_input"] = np.asarray(t == g.inputs[0])
        cases.append(dict(type=op.type, op_index=op.index, options=dict(op.options),
                          reshaped=reshaped, consts=consts,
                          out=np.asarray(res[op.outputs[0]])[0],
                          out_shape=g.tensor(op.outputs[0]).shape))
    return cases

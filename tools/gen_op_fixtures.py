#!/usr/bin/env python3
"""Generate the single-op TFLite fixtures in tests/fixtures/ops/ (the ops larq-zoo adds).

Each case is one tiny float model (a tf.function converted by
tf.lite.TFLiteConverter) whose one input goes through the op under test
(ABS, ROUND, SUB, MINIMUM, MAXIMUM, PRELU, SPLIT, SPLIT_V, STRIDED_SLICE, SLICE,
TRANSPOSE; second operands are constants of a broadcasting shape). For every
case the .tflite is written as tests/fixtures/ops/<id>.tflite, and one
seeded input plus TFLite's output go into tests/fixtures/ops/cases.npz, so
tests/test_ops_more.py compares the C engine with TFLite's kernels without
TensorFlow. The script checks that the converted model holds the op under
test, so a converter that folded it away fails here, not silently.

Usage: PYTHONPATH=. python tools/gen_op_fixtures.py   (about a minute)
"""

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "fixtures" / "ops"


def _with(fn, const, first=False):
    """``x -> fn(x, const)`` (or ``fn(const, x)``), the constant captured, not a traced argument."""
    return (lambda x: fn(const, x)) if first else (lambda x: fn(x, const))


def cases(tf):
    """(id, op type, input shape, fn) for every case."""
    rng = np.random.default_rng(7)
    c = lambda *shape: tf.constant(rng.normal(size=shape).astype(np.float32))  # noqa: E731
    out = [
        ("abs_4d", "ABS", (1, 5, 6, 7), lambda x: tf.abs(x)),
        ("abs_3d", "ABS", (1, 3, 40), lambda x: tf.abs(x)),
        # ties: x * 2 holds many exact halves after the scale (0.5, 1.5, -2.5, ...)
        ("round_ties_to_even", "ROUND", (1, 4, 4, 8), lambda x: tf.round(tf.round(x * 4.0) * 0.5)),
        ("round_dorefa_2bit", "ROUND", (1, 5, 5, 6), lambda x: tf.round(tf.clip_by_value(x, 0.0, 1.0) * 3.0) / 3.0),
    ]
    for op, fn in (("SUB", tf.subtract), ("MINIMUM", tf.minimum), ("MAXIMUM", tf.maximum)):
        name = op.lower()
        out += [
            (f"{name}_same_shape", op, (1, 4, 5, 6), _with(fn, c(1, 4, 5, 6))),
            (f"{name}_channel_vec", op, (1, 4, 5, 6), _with(fn, c(6))),
            (f"{name}_scalar", op, (1, 4, 5, 6), _with(fn, c())),
            (f"{name}_spatial_map", op, (1, 4, 5, 6), _with(fn, c(1, 4, 5, 1))),
            (f"{name}_both_broadcast", op, (1, 4, 1, 6), _with(fn, c(1, 1, 5, 1))),
            (f"{name}_const_first", op, (1, 3, 3, 8), _with(fn, c(8), first=True)),
        ]
    out += [
        ("sub_relu", "SUB", (1, 4, 5, 6), _with(lambda a, b: tf.nn.relu(a - b), c(6))),
        ("minimum_clip_1", "MINIMUM", (1, 6, 6, 4), lambda x: tf.minimum(x, 1.0)),
        ("maximum_floor", "MAXIMUM", (1, 6, 6, 4), lambda x: tf.maximum(x, -0.5)),
        ("prelu_channel_alpha", "PRELU", (1, 5, 5, 8), None),
        ("prelu_shared_hw_alpha", "PRELU", (1, 5, 5, 8), None),
        ("rprelu_block", "PRELU", (1, 4, 4, 16), None),
        ("split_3_channels", "SPLIT", (1, 4, 5, 12),
         lambda x: tf.concat(list(reversed(tf.split(x, 3, axis=-1))), axis=-1)),
        ("split_2_rows", "SPLIT", (1, 6, 5, 3),
         lambda x: tf.concat(list(reversed(tf.split(x, 2, axis=1))), axis=-1)),
        ("split_4_channels_unused_part", "SPLIT", (1, 3, 3, 8),
         lambda x: tf.concat(tf.split(x, 4, axis=3)[1:3], axis=-1)),
        ("split_v_channels", "SPLIT_V", (1, 4, 4, 10),
         lambda x: tf.concat(list(reversed(tf.split(x, [2, 5, 3], axis=-1))), axis=-1)),
        ("split_v_width", "SPLIT_V", (1, 3, 7, 4),
         lambda x: tf.concat(list(reversed(tf.split(x, [1, 6], axis=2))), axis=2)),
        ("strided_slice_crop", "STRIDED_SLICE", (1, 8, 8, 6), lambda x: x[:, 1:7, 2:6, :]),
        ("strided_slice_step2", "STRIDED_SLICE", (1, 9, 8, 6), lambda x: x[:, ::2, 1::3, :]),
        ("strided_slice_negative_step", "STRIDED_SLICE", (1, 5, 6, 4), lambda x: x[:, ::-1, -2::-2, :]),
        ("strided_slice_channels", "STRIDED_SLICE", (1, 4, 4, 20), lambda x: x[..., 3:17]),
        ("strided_slice_shrink", "STRIDED_SLICE", (1, 4, 5, 6), lambda x: x[:, 2, :, :]),
        ("strided_slice_negative_index", "STRIDED_SLICE", (1, 6, 6, 6), lambda x: x[:, -4:-1, :, -3:]),
        ("slice_begin_size", "SLICE", (1, 7, 7, 5), lambda x: tf.slice(x, [0, 1, 2, 1], [1, 4, 3, 3])),
        ("slice_to_end", "SLICE", (1, 7, 7, 5), lambda x: tf.slice(x, [0, 3, 0, 2], [-1, -1, 4, -1])),
        ("transpose_nhwc_nchw", "TRANSPOSE", (1, 4, 5, 6), lambda x: tf.transpose(x, [0, 3, 1, 2])),
        ("transpose_hw_swap", "TRANSPOSE", (1, 4, 5, 6), lambda x: tf.transpose(x, [0, 2, 1, 3])),
        ("transpose_3d", "TRANSPOSE", (1, 7, 9), lambda x: tf.transpose(x, [0, 2, 1])),
        ("transpose_5d", "TRANSPOSE", (1, 2, 3, 4, 5), lambda x: tf.transpose(x, [0, 4, 2, 1, 3])),
    ]
    return out


def keras_prelu_model(tf_keras, case_id, shape, seed):
    """PRELU through Keras's PReLU layer (what larq-zoo and ReActNet use)."""
    rng = np.random.default_rng(seed)
    L = tf_keras.layers
    inp = tf_keras.Input(shape[1:], batch_size=1)
    if case_id == "prelu_channel_alpha":
        layer = L.PReLU(alpha_initializer=tf_keras.initializers.Constant(rng.uniform(-0.5, 0.8, shape[-1])),
                        shared_axes=[1, 2])
        y = layer(inp)
    elif case_id == "prelu_shared_hw_alpha":
        layer = L.PReLU(alpha_initializer=tf_keras.initializers.Constant(
            rng.uniform(0.05, 0.5, shape[1:]).astype(np.float32)))
        y = layer(inp)
    else:  # ReActNet's RPReLU: learnable bias -> PReLU -> learnable bias, then a sign's input
        b1 = rng.normal(0, 0.3, shape[-1]).astype(np.float32)
        b2 = rng.normal(0, 0.3, shape[-1]).astype(np.float32)
        alpha = rng.uniform(0.1, 0.4, shape[-1]).astype(np.float32)
        y = L.Lambda(lambda t: t + b1)(inp)
        y = L.PReLU(alpha_initializer=tf_keras.initializers.Constant(alpha), shared_axes=[1, 2])(y)
        y = L.Lambda(lambda t: t + b2)(y)
    return tf_keras.Model(inp, y)


def main():
    import edgebnn  # noqa: F401
    from edgebnn._tf import import_tf
    from edgebnn.graph import load_graph

    sys.path.insert(0, str(REPO / "tests" / "runtime"))
    import fixture_io

    tf, tf_keras, _ = import_tf()
    OUT.mkdir(parents=True, exist_ok=True)
    records = []
    for i, (case_id, op_type, shape, fn) in enumerate(cases(tf)):
        if fn is None:
            model = keras_prelu_model(tf_keras, case_id, shape, seed=i)
            conv = tf.lite.TFLiteConverter.from_keras_model(model)
        else:
            f = tf.function(fn, input_signature=[tf.TensorSpec(shape, tf.float32)])
            conv = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
        data = conv.convert()
        types = load_graph(data).op_types()
        if op_type not in types:
            raise SystemExit(f"{case_id}: the converter produced {types}, no {op_type}")
        rng = np.random.default_rng(100 + i)
        x = rng.normal(size=shape).astype(np.float32)
        x.flat[::9] = 0.0  # zeros and exact ties exercise >= / < / > choices
        x.flat[4::13] = -0.0
        # TFLite's builtin kernels (what LCE's interpreter runs), not the XNNPACK
        # delegate: XNNPACK's PRELU picks x * alpha on the sign bit, so -0.0 with
        # a negative alpha gives +0.0 where the builtin kernel keeps -0.0.
        it = tf.lite.Interpreter(
            model_content=data,
            experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        y = it.get_tensor(it.get_output_details()[0]["index"])
        tmp = OUT / f".{case_id}.tflite.part"
        tmp.write_bytes(data)
        tmp.replace(OUT / f"{case_id}.tflite")
        records.append(dict(id=case_id, op=op_type, ops=sorted(types), x=x, y=np.asarray(y)))
        print(f"{case_id}: {types}", file=sys.stderr)
    fixture_io.save_cases(OUT / "cases.npz", records)


if __name__ == "__main__":
    main()

"""Run an int8 .tflite through the generated C and TFLite's reference kernels; count equal outputs.

    PYTHONPATH=$PWD python3 tools/int8_vs_tflite.py MODEL.tflite [--count N] [--data-dir DIR]

Both engines get the same int8 inputs (the MNIST test images quantized with
the model's input scale and zero point) and their raw int8 outputs are
compared exactly, image by image. Prints one JSON line.
"""

import argparse
import json
import sys

import numpy as np


def reference_outputs(model_path, q_inputs):
    """Raw int8 outputs of TFLite's BUILTIN_REF kernels for int8 inputs."""
    import tensorflow as tf

    interp = tf.lite.Interpreter(model_path=str(model_path),
                                 experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    outs = []
    for x in q_inputs:
        interp.set_tensor(inp["index"], x[None])
        interp.invoke()
        outs.append(interp.get_tensor(out["index"])[0].copy())
    return np.stack(outs)


def compare(model_path, images, labels=None):
    """``{"images", "equal", "max_abs_diff", ...}`` of the generated C against BUILTIN_REF."""
    from edgebnn.codegen.generator import generate
    from edgebnn.hostprog import _int8_records, predict_c

    gen = generate(model_path, name="model")
    if gen.io_dtype != "int8":
        raise SystemExit(f"{model_path}: input is {gen.io_dtype}, expected an int8 I/O model")
    x = images.reshape((len(images),) + tuple(gen.input_shape[1:]))
    q = _int8_records(x, gen.input_quantization, raw=False)
    c_out = predict_c(model_path, q, raw=True)
    ref = reference_outputs(model_path, q).reshape(c_out.shape)
    same = np.all(c_out.reshape(len(q), -1) == ref.reshape(len(q), -1), axis=1)
    r = {"model": str(model_path), "images": int(len(q)), "equal": int(same.sum()),
         "max_abs_diff": int(np.abs(c_out.astype(np.int32) - ref.astype(np.int32)).max())}
    if labels is not None:
        r["accuracy_c"] = float(np.mean(c_out.reshape(len(q), -1).argmax(1) == labels))
    return r


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--data-dir", default=None)
    a = ap.parse_args(argv)
    from edgebnn.datasets import load_dataset

    ds = load_dataset("mnist", data_dir=a.data_dir)
    print(json.dumps(compare(a.model, ds.x_test[: a.count], ds.y_test[: a.count])))
    return 0


if __name__ == "__main__":
    sys.exit(main())

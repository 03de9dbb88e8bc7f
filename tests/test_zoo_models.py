"""larq-zoo models through LCE and the C engine (edgebnn/zoo_models.py).

The whole-zoo check at 224x224 is tools/zoo_check.py (minutes per model);
here one small case: MeliusNet22 (grouped convolutions as SPLIT, PAD,
CONCATENATION, 34 binary convolutions) at 64x64, converted with LCE,
exported, compiled, and compared with LCE's interpreter on 2 seeded inputs.
"""

import importlib.util

import numpy as np
import pytest

pytestmark = [
    pytest.mark.tf,
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("larq_zoo") is None,
                       reason="larq-zoo is not installed (pip install --no-deps larq-zoo==2.4.0 zookeeper typeguard)"),
]


def test_unknown_zoo_model_lists_the_known_ones():
    from edgebnn.errors import ModelError
    from edgebnn.zoo_models import zoo_model

    with pytest.raises(ModelError, match="unknown larq-zoo model 'QuickNetHuge'; known: QuickNetSmall, QuickNet,"):
        zoo_model("QuickNetHuge")


def test_build_is_seeded_and_batch_norms_are_calibrated():
    from edgebnn.zoo_models import _batch_norms, build_zoo_model

    a = build_zoo_model("QuickNetSmall", input_shape=(32, 32, 3), num_classes=10, seed=3)
    b = build_zoo_model("QuickNetSmall", input_shape=(32, 32, 3), num_classes=10, seed=3)
    c = build_zoo_model("QuickNetSmall", input_shape=(32, 32, 3), num_classes=10, seed=4)
    wa, wb, wc = a.get_weights(), b.get_weights(), c.get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(wa, wb))
    assert not all(np.array_equal(x, y) for x, y in zip(wa, wc))
    bns = _batch_norms(a)
    assert len(bns) > 10
    # calibrated: moving statistics are not the initial 0 / 1
    assert all(not np.allclose(bn.moving_variance.numpy(), 1.0) for bn in bns)


def test_meliusnet22_c_engine_matches_lce(tmp_path):
    from edgebnn.hostprog import predict_c
    from edgebnn.convert import convert
    from edgebnn.graph import load_graph
    from edgebnn.predict import predict_tflite
    from edgebnn.zoo_models import build_zoo_model, zoo_inputs

    model = build_zoo_model("MeliusNet22", input_shape=(64, 64, 3), num_classes=100, seed=0)
    path = tmp_path / "melius.tflite"
    path.write_bytes(convert(model, target="x86_64"))
    assert "SPLIT" in load_graph(path).op_types()
    x = zoo_inputs((64, 64, 3), n=2, seed=0)
    lce = predict_tflite(path, x)
    c = predict_c(path, x)
    assert np.array_equal(lce.argmax(-1), c.argmax(-1))
    # float convolutions sum in another order than TFLite's GEMM kernels:
    # rounding differences of ~1e-6 relative on softmax outputs of ~1e-2
    np.testing.assert_allclose(c, lce, rtol=0, atol=1e-5)


def test_quicknet_residual_adds_merge_into_the_bconvs_bit_for_bit(tmp_path):
    """Each block's bconv -> ADD runs as one ebnn_bconv2d_add call (passes.residual_adds) where the
    kernel set has it ("opt"); the "mcu" set, which has no merged kernel, keeps the two calls.
    Both programs give the same bits."""
    from edgebnn.codegen import ops as O
    from edgebnn.codegen.generator import build_nodes, generate
    from edgebnn.convert import convert
    from edgebnn.graph import load_graph
    from edgebnn.hostprog import predict_c
    from edgebnn.zoo_models import build_zoo_model, zoo_inputs

    model = build_zoo_model("QuickNetSmall", input_shape=(32, 32, 3), num_classes=10, seed=0, n_calibration=2)
    path = tmp_path / "quicknet_small.tflite"
    path.write_bytes(convert(model, target="x86_64"))
    _, plain = build_nodes(load_graph(path), fuse=False)
    _, merged = build_nodes(load_graph(path), fuse=False, residual_adds=True)
    adds = sum(type(n) is O.Add and n.op.type == "ADD" for n in plain)
    assert adds == 16 and sum(isinstance(n, O.BconvAdd) for n in merged) == adds
    assert not any(type(n) is O.Add and n.op.type == "ADD" for n in merged)
    assert "ebnn_bconv2d_add_opt(" in generate(path, kernels="opt").files["model.c"]
    assert "ebnn_bconv2d_add" not in generate(path, kernels="mcu").files["model.c"]
    x = zoo_inputs((32, 32, 3), n=2, seed=0)
    opt, mcu = predict_c(path, x), predict_c(path, x, kernels="mcu")
    assert np.array_equal(opt.view(np.uint32), mcu.view(np.uint32))


def test_dorefanet_runs_level_coded_in_the_c_engine_and_matches_lce(tmp_path):
    """Its 2-bit activations and sign weights: every conv but the stem and every dense layer but the
    last (float input) run as bitplane popcounts (passes.level_convolutions)."""
    from edgebnn.codegen import ops as O
    from edgebnn.codegen.generator import build_nodes
    from edgebnn.convert import convert
    from edgebnn.graph import load_graph
    from edgebnn.hostprog import predict_c
    from edgebnn.predict import predict_tflite
    from edgebnn.zoo_models import build_zoo_model, zoo_inputs

    model = build_zoo_model("DoReFaNet", input_shape=(64, 64, 3), num_classes=100, seed=0)
    path = tmp_path / "dorefa.tflite"
    path.write_bytes(convert(model, target="x86_64"))
    _, nodes = build_nodes(load_graph(path), fuse=False)
    levels = [n for n in nodes if isinstance(n, O.LevelConv)]
    assert [n.levels for n in levels] == [3] * 6
    assert sum(type(n) in (O.Conv2D, O.FullyConnected) for n in nodes) == 2
    x = zoo_inputs((64, 64, 3), n=2, seed=0)
    lce = predict_tflite(path, x)
    c = predict_c(path, x)
    assert np.array_equal(lce.argmax(-1), c.argmax(-1))
    np.testing.assert_allclose(c, lce, rtol=0, atol=1e-5)


@pytest.mark.parametrize("ext,name,shape", [
    ("keras", "QuickNetSmall", (32, 32, 3)), ("h5", "BinaryDenseNet28", (32, 32, 3)),
    ("keras", "DoReFaNet", (64, 64, 3))])
def test_saved_zoo_model_loads_with_the_custom_objects(tmp_path, name, shape, ext):
    """A subprocess without larq_zoo imported: the file fails to load without the map, loads with it.

    Not the .h5 of QuickNet* / XNORNet / DoReFaNet: tf_keras 2.16 writes
    larq-zoo's function-valued initializers and quantizers there as
    {"class_name": "function", "config": NAME} and its own loader does not
    read them back, with or without the map; edgebnn's loader does
    (tests/test_zoo_lambdas.py, tools/zoo_saved.py).
    """
    import subprocess
    import sys
    import textwrap

    from edgebnn.zoo_models import build_zoo_model

    path = tmp_path / f"{name}.{ext}"
    model = build_zoo_model(name, input_shape=shape, num_classes=10, seed=0, n_calibration=2)
    model.save(path)
    x = np.random.default_rng(0).uniform(-1, 1, size=(1, *shape)).astype(np.float32)
    want = model(x, training=False).numpy()
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(f"""
        import sys, numpy as np
        import edgebnn
        from edgebnn._tf import import_tf
        _, k, _ = import_tf()
        try:
            k.models.load_model({str(path)!r}, compile=False)
            print("PLAIN-LOADED")
        except Exception as exc:
            print("PLAIN-FAILED", type(exc).__name__)
        assert "larq_zoo" not in sys.modules
        from edgebnn.zoo_models import larq_zoo_custom_objects
        m = k.models.load_model({str(path)!r}, custom_objects=larq_zoo_custom_objects(), compile=False)
        np.save({str(tmp_path / "y.npy")!r}, m(np.load({str(tmp_path / "x.npy")!r}), training=False).numpy())
        """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "PLAIN-FAILED" in res.stdout
    # Same weights, another process: TensorFlow's CPU kernels (oneDNN) may
    # split a float reduction differently between processes, which moves
    # softmax outputs by ~1e-7 (4e-7 seen on DoReFaNet); a wrong weight or a
    # missing layer moves them by far more than 1e-5.
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, rtol=0, atol=1e-5)

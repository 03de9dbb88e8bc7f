"""The product's promise end to end, through the CLI: train -> convert -> verify -> C.

One epoch of the zoo's bcnn BNN on the first 3,000 real MNIST training
images, LCE conversion with the binary-dense rewrite, verification on 1,000
real test images, then the generated C engine on the same images.
"""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgebnn import rundir
from edgebnn.cli import main


@pytest.mark.tf
@pytest.mark.slow
def test_train_convert_verify_and_c_engine(tmp_path, shared_data, monkeypatch):
    monkeypatch.delenv("EDGEBNN_DATA", raising=False)
    run = tmp_path / "run"
    cli = CliRunner()

    res = cli.invoke(main, ["train", "mnist", "--config", "mnist-bcnn-binary", "--epochs", "1",
                            "--limit", "3000", "--data-dir", str(shared_data), "--out", str(run),
                            "--json"])
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.stdout)
    # one epoch on 3,000 images already learns digits (chance is 10%)
    assert metrics["test_accuracy"] > 0.5

    res = cli.invoke(main, ["convert", str(run)])
    assert res.exit_code == 0, res.output
    tflite = run / rundir.TFLITE
    report = json.loads((run / rundir.TFLITE_REPORT).read_text())
    ops = report["ops_by_type"]
    # the dense layers became binary convolutions: no float FULLY_CONNECTED left
    assert "FULLY_CONNECTED" not in ops and ops.get("LceBconv2d", 0) >= 3
    assert tflite.stat().st_size < 20 * 1024

    res = cli.invoke(main, ["verify", str(run), "--limit", "1000", "--data-dir", str(shared_data),
                            "--json"])
    assert res.exit_code == 0, res.output
    v = json.loads(res.stdout)
    assert v["n"] == 1000
    assert v["agreement"] == 1.0
    assert abs(v["keras_accuracy"] - v["tflite_accuracy"]) <= 0.001

    from edgebnn.hostprog import predict_c
    from edgebnn.datasets import load_dataset
    from edgebnn.predict import predict_tflite

    x = load_dataset("mnist", data_dir=shared_data).x_test[:1000].astype(np.float32)
    lce = predict_tflite(tflite, x)
    c = predict_c(tflite, x, workdir=tmp_path / "c")
    assert float(np.mean(lce.argmax(1) == c.argmax(1))) >= 0.999

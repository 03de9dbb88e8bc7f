"""Quiet by default: no TensorFlow log lines or known warnings unless --verbose."""

import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.tf, pytest.mark.slow]

# Imports TF through edgebnn, builds and fits a tiny model (AutoGraph runs),
# saves it as .h5 (the legacy-format UserWarning) and loads it back (the
# "compiled metrics" warning of TensorFlow's logger).
SNIPPET = r"""
import sys, numpy as np
from edgebnn._tf import import_tf
tf, keras, lq = import_tf()
m = keras.Sequential([keras.layers.Input((4,)), lq.layers.QuantDense(2, kernel_quantizer="ste_sign")])
m.compile("adam", "mse")
m.fit(np.zeros((8, 4)), np.zeros((8, 2)), verbose=0)
m.save(sys.argv[1])
keras.models.load_model(sys.argv[1], custom_objects={})
print("ok")
"""

NOISE = ("cuda_fft", "cuFFT", "WARNING:tensorflow", "UserWarning", "AutoGraph", "HDF5")


# The verbose check needs only the legacy-format warning: no training.
SAVE_ONLY = r"""
import sys
from edgebnn._tf import import_tf
tf, keras, lq = import_tf()
keras.Sequential([keras.layers.Input((4,)), keras.layers.Dense(2)]).save(sys.argv[1])
print("ok")
"""


def _run(tmp_path, verbose, snippet=SNIPPET):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "EDGEBNN_VERBOSE")}
    if verbose:
        env["EDGEBNN_VERBOSE"] = "1"
    return subprocess.run([sys.executable, "-c", snippet, str(tmp_path / "m.h5")], env=env,
                          capture_output=True, text=True, timeout=300)


def test_tensorflow_is_quiet_by_default(tmp_path):
    proc = _run(tmp_path, verbose=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
    found = [n for n in NOISE if n in proc.stderr]
    assert not found, f"noise {found} in:\n{proc.stderr}"


def test_verbose_shows_what_quiet_hides(tmp_path):
    # With EDGEBNN_VERBOSE=1 (what `edgebnn --verbose` sets) the HDF5
    # warning the quiet run hides is printed: the quiet test above can fail.
    proc = _run(tmp_path, verbose=True, snippet=SAVE_ONLY)
    assert proc.returncode == 0, proc.stderr
    assert "HDF5" in proc.stderr


def test_verbose_flag_sets_the_environment(monkeypatch):
    from click.testing import CliRunner

    from edgebnn.cli import main

    monkeypatch.delenv("EDGEBNN_VERBOSE", raising=False)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    res = CliRunner().invoke(main, ["--verbose", "pretrained", "--json"])
    assert res.exit_code == 0, res.output
    assert os.environ["EDGEBNN_VERBOSE"] == "1"
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"

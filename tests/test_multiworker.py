"""Multi-worker training for real: two `edgebnn train` processes on 127.0.0.1.

Each worker is its own process with its own ``TF_CONFIG`` (free ports), one
intra-op thread, and a hard timeout: on timeout both are killed (SIGKILL --
TensorFlow's preemption handler swallows SIGTERM) and the test fails with
their logs.

The reference is one process with ``--strategy mirrored`` over two logical
CPU devices and the same configuration: the same global batch (2 x 64), the
same two halves of it per replica, BatchNorm statistics per replica (64
images) in both. The only possible difference is the order of the float
additions in the all-reduce. With two operands that order cannot matter
(a + b == b + a exactly), and on this machine the runs are bitwise equal.
The tolerances leave room for other collective implementations: losses
rel 1e-4 (float32 rounding amplified by a few steps), accuracies 2e-3 (a
binarized activation whose input is within rounding of 0 can flip and
change a few predictions: 2e-3 is 20 of the 10,000 test images, 0.5 of the
256 validation images). A single-device run with batch 128 is *not* the
reference: its BatchNorm normalizes over 128 images, not two groups of 64.

The run: ``tiny`` below, 512 MNIST images, 4 steps per epoch of the global
batch 128; the learning rate is constant so that epoch 1 of a 2-epoch run is
the 1-epoch run.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from edgebnn import rundir

pytestmark = [pytest.mark.tf, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
TINY = {"dataset": "mnist", "model": "bcnn", "precision": "binary", "batch_size": 64,
        "limit": 512, "val_size": 256, "lr": 0.002, "lr_schedule": "constant", "seed": 0}
STEPS_PER_EPOCH = 512 // 128
TIMEOUT_S = 420  # per launch; an idle 2-core machine needs about a minute
LOSS_REL = 1e-4
ACC_ABS = 2e-3
ROW_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "val_macro_f1")


def _env(**extra):
    env = dict(os.environ)
    env.pop("TF_CONFIG", None)
    env.pop("EDGEBNN_DATA", None)
    env.update(PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
               TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="2",
               TF_CPP_MIN_LOG_LEVEL="2", **extra)
    return env


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class Worker:
    """One `edgebnn train` process; stdout and stderr go to files."""

    def __init__(self, argv, env, log_dir: Path, name: str):
        self.name = name
        self.out = log_dir / f"{name}.out"
        self.err = log_dir / f"{name}.err"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err, cwd=str(log_dir))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def logs(self) -> str:
        tail = self.err.read_text(errors="replace")[-3000:]
        return f"--- {self.name} (rc {self.proc.returncode}) stdout:\n{self.out.read_text()}\n" \
               f"--- {self.name} stderr (tail):\n{tail}"

    def json(self) -> dict:
        return json.loads(self.out.read_text())


def _wait(workers, timeout=TIMEOUT_S, until=None):
    """Wait until every worker exits (or ``until()`` is true); on timeout kill all and fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if until is not None and until():
            return
        if until is None and all(w.proc.poll() is not None for w in workers):
            return
        time.sleep(1)
    for w in workers:
        w.kill()
    pytest.fail(f"timed out after {timeout} s; killed every worker\n"
                + "\n".join(w.logs() for w in workers))


def _launch_cluster(config: Path, out: Path, log_dir: Path, tag: str, *extra):
    """Two workers (worker 0 is the chief) training ``config`` into ``out``."""
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    workers = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        argv = [sys.executable, "-m", "edgebnn.cli", "train", "--config", str(config),
                "--strategy", "multi_worker", "--out", str(out), "--json", *extra]
        scratch = log_dir / f"{tag}-tmp{index}"  # where a worker's checkpoints go
        scratch.mkdir()
        env = _env(TF_CONFIG=tf_config, TMPDIR=str(scratch))
        workers.append(Worker(argv, env, log_dir, f"{tag}-w{index}"))
    return workers


def _config(tmp, epochs):
    path = tmp / f"tiny-{epochs}.yml"
    path.write_text(yaml.safe_dump({**TINY, "epochs": epochs}))
    return path


REFERENCE = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from edgebnn.config import resolve
from edgebnn.train import train
result = train(resolve(sys.argv[1], strategy="mirrored"), sys.argv[2], data_dir=sys.argv[3])
print(json.dumps({"steps": result.steps, "history": result.history, **result.metrics}))
"""


@pytest.fixture(scope="module")
def work(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("multiworker")
    return {"root": root, "data": shared_data, "one": _config(root, 1), "two": _config(root, 2)}


@pytest.fixture(scope="module")
def reference(work):
    """One process, MirroredStrategy over two logical CPUs, 2 epochs."""
    worker = Worker([sys.executable, "-c", REFERENCE, str(work["two"]), str(work["root"] / "ref"),
                     str(work["data"])], _env(TF_USE_LEGACY_KERAS="1"), work["root"], "reference")
    _wait([worker])
    assert worker.proc.returncode == 0, worker.logs()
    ref = worker.json()
    assert ref["distribution"]["replicas"] == 2 and ref["distribution"]["global_batch_size"] == 128
    assert ref["steps"] == 2 * STEPS_PER_EPOCH
    return ref


def _assert_rows_match(rows, ref_rows):
    assert len(rows) == len(ref_rows)
    for row, ref in zip(rows, ref_rows):
        for key in ROW_KEYS:
            if key.endswith("loss"):
                assert row[key] == pytest.approx(ref[key], rel=LOSS_REL), (row["epoch"], key)
            else:
                assert abs(row[key] - ref[key]) <= ACC_ABS, (row["epoch"], key)


def _bar_accuracies(stderr: str):
    """The accuracies the chief's progress bar showed (``acc=0.1234``)."""
    import re

    return [float(v) for v in re.findall(r"acc=([0-9.]+)", stderr)]


def test_two_workers_train_one_epoch_like_one_process(work, reference, shared_data):
    out = work["root"] / "run1"
    workers = _launch_cluster(work["one"], out, work["root"], "one",
                              "--data-dir", str(shared_data))
    _wait(workers)
    logs = "\n".join(w.logs() for w in workers)
    assert [w.proc.returncode for w in workers] == [0, 0], logs
    chief, other = (w.json() for w in workers)
    # both stepped in lockstep: the same number of steps, the one the global batch makes
    print(f"steps: chief {chief['steps']}, worker 1 {other['steps']}")
    assert chief["steps"] == other["steps"] == STEPS_PER_EPOCH, logs
    assert chief["chief"] and not other["chief"]
    assert chief["workers"] == other["workers"] == 2 and chief["global_batch_size"] == 128
    # only the chief wrote: one run directory, no worker scratch left in it
    assert sorted(p.name for p in work["root"].glob("run1*")) == ["run1"]
    assert {p.name for p in out.iterdir()} >= {rundir.CONFIG, rundir.MODEL, rundir.METRICS,
                                                rundir.HISTORY, *rundir.PLOTS}
    assert [p.name for p in (out / rundir.CHECKPOINTS).iterdir()
            if not p.name.startswith(("epoch-0001", "state.json"))] == []
    # worker 1 wrote its (collective) checkpoints to a temporary directory, then removed it
    assert list((work["root"] / "one-tmp1").iterdir()) == []
    # progress bar on the chief only, showing an accuracy (the bug summed it over workers)
    assert "epoch 1/1" in workers[0].err.read_text()
    assert "epoch 1/1" not in workers[1].err.read_text()
    bar = _bar_accuracies(workers[0].err.read_text())
    assert bar and all(0.0 <= a <= 1.0 for a in bar), bar
    # plausible, and what the single process with the same global batch got
    metrics = json.loads((out / rundir.METRICS).read_text())
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and metrics["test_images"] == 10_000
    history = json.loads((out / rundir.CHECKPOINTS / "state.json").read_text())["history"]
    assert all(0.0 <= r["accuracy"] <= 1.0 and 0.0 <= r["val_accuracy"] <= 1.0 for r in history)
    _assert_rows_match(history, reference["history"][:1])


def test_resume_after_a_worker_is_killed(work, reference, shared_data):
    """Kill worker 1 after epoch 1 of 2: the chief fails, both resume and finish."""
    out = work["root"] / "run2"
    state = out / rundir.CHECKPOINTS / "state.json"
    workers = _launch_cluster(work["two"], out, work["root"], "cut",
                              "--data-dir", str(shared_data))

    def epoch_one_saved():
        try:
            return json.loads(state.read_text())["epoch"] == 1
        except (OSError, ValueError):
            return False

    _wait(workers, until=epoch_one_saved)
    workers[1].kill()
    t_kill = time.monotonic()
    _wait(workers[:1])
    print(f"the chief stopped {time.monotonic() - t_kill:.0f} s after worker 1 was killed")
    assert workers[0].proc.returncode != 0, workers[0].logs()
    assert "restart every worker with --resume" in workers[0].err.read_text(), workers[0].logs()
    assert not (out / rundir.METRICS).exists()

    resumed = _launch_cluster(work["two"], out, work["root"], "resumed", "--resume",
                              "--data-dir", str(shared_data))
    _wait(resumed)
    logs = "\n".join(w.logs() for w in resumed)
    assert [w.proc.returncode for w in resumed] == [0, 0], logs
    chief, other = (w.json() for w in resumed)
    print(f"resumed steps: chief {chief['steps']}, worker 1 {other['steps']}")
    assert chief["steps"] == other["steps"] == STEPS_PER_EPOCH  # epoch 2 only
    metrics = json.loads((out / rundir.METRICS).read_text())
    assert metrics["resumed_from_epoch"] == 1 and metrics["epochs"] == 2
    history = json.loads(state.read_text())["history"]
    _assert_rows_match(history, reference["history"])
    assert abs(metrics["test_accuracy"] - reference["test_accuracy"]) <= ACC_ABS

"""``edgebnn train DATASET``."""

import time
from pathlib import Path

import click

from edgebnn.cli._common import echo_json, handle_errors, is_tty, status


def _progress_callback(total_epochs: int):
    """A tf-keras callback drawing one tqdm bar per epoch, with the epoch's ETA."""
    from edgebnn._tf import import_tf

    _, tf_keras, _ = import_tf()
    from tqdm import tqdm

    class EpochBar(tf_keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.bar = None
            self.t0 = None
            self.epoch_times = []

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()
            remaining = total_epochs - epoch
            desc = f"epoch {epoch + 1}/{total_epochs}"
            if self.epoch_times:
                mean = sum(self.epoch_times) / len(self.epoch_times)
                desc += f" (run ETA {_fmt(mean * remaining)})"
            self.bar = tqdm(total=self.params.get("steps"), desc=desc, unit="step",
                            leave=True, dynamic_ncols=True, mininterval=0.5 if is_tty() else 30.0)

        def on_train_batch_end(self, batch, logs=None):
            self.bar.update(1)
            if logs and batch % 20 == 0:
                self.bar.set_postfix(loss=f"{logs.get('loss', 0):.4f}",
                                     acc=f"{logs.get('accuracy', 0):.4f}", refresh=False)

        def on_epoch_end(self, epoch, logs=None):
            self.epoch_times.append(time.perf_counter() - self.t0)
            if self.bar is not None:
                self.bar.close()

    return EpochBar()


def _fmt(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


@click.command("train")
@click.argument("dataset", required=False)
@click.option("--model", help="Zoo model (see `edgebnn models`).")
@click.option("--precision", type=click.Choice(["binary", "binary-weights", "ternary", "float"]))
@click.option("--epochs", type=click.IntRange(min=1))
@click.option("--batch-size", type=click.IntRange(min=1))
@click.option("--optimizer", type=click.Choice(["adam", "sgd", "bop"]),
              help="bop: larq's Bop for binary weights, Adam for the rest.")
@click.option("--loss", type=click.Choice(["crossentropy", "hinge", "squared_hinge"]))
@click.option("--lr", type=float, help="Initial learning rate.")
@click.option("--lr-schedule", type=click.Choice(["cosine", "exponential", "constant"]))
@click.option("--seed", type=click.IntRange(min=0))
@click.option("--limit", type=click.IntRange(min=0), help="Train on the first N images (0 = all).")
@click.option("--augment-shift", type=click.IntRange(min=0),
              help="Random translation of training images by up to N pixels.")
@click.option("--augment", type=click.Choice(["none", "crop", "crop-flip"]),
              help="tf.data augmentation: random crop after --augment-pad zero padding (and a horizontal flip).")
@click.option("--augment-pad", type=click.IntRange(min=0), help="Padding in pixels before the random crop (default 4).")
@click.option("--normalize", type=click.Choice(["range", "per-channel"]),
              help="First layer: 0..255 to [-1, 1], or per-channel mean/std of the training images.")
@click.option("--val-size", type=click.IntRange(min=0),
              help="Training images held out (from the end) for validation (default 5000).")
@click.option("--early-stop", type=click.IntRange(min=0),
              help="Stop after N epochs without better validation accuracy; keep the best weights.")
@click.option("--strategy", type=click.Choice(["default", "mirrored", "multi_worker"]),
              help="tf.distribute strategy; multi_worker reads the cluster from TF_CONFIG "
                   "(start one process per worker). --batch-size is per replica.")
@click.option("--teacher", help="Distill from this trained model: RUN_DIR, Keras .h5 file or "
                                "shipped model name (loaded without running stored code).")
@click.option("--distill-temperature", type=click.FloatRange(min=0, min_open=True),
              help="Softening temperature T of the distillation (default 4).")
@click.option("--distill-weight", type=click.FloatRange(0, 1),
              help="W: loss = W*T^2*KL(teacher||student at T) + (1-W)*hard loss (default 0.5).")
@click.option("--config", "preset", help="Preset name (edgebnn/presets) or YAML file; flags override it.")
@click.option("--out", "out", type=click.Path(file_okay=False), help="RUN_DIR (default runs/DATASET-MODEL-PRECISION).")
@click.option("--resume", is_flag=True, help="Continue RUN_DIR from its last finished epoch.")
@click.option("--force", is_flag=True, help="Replace an existing RUN_DIR.")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Directory searched first for the dataset.")
@click.option("--json", "json_", is_flag=True, help="Print the final metrics as JSON.")
@handle_errors
def train(dataset, model, precision, epochs, batch_size, optimizer, loss, lr, lr_schedule, seed,
          limit, augment_shift, augment, augment_pad, normalize, val_size, early_stop, strategy,
          teacher, distill_temperature, distill_weight, preset, out, resume, force, data_dir, json_):
    """Train a BNN (or its float twin) on DATASET and write RUN_DIR.

    RUN_DIR gets config.yml, model.h5, history.csv, metrics.json, summary.txt,
    curves.png, confusion.png, kernels.png, weights.png and checkpoints/.
    """
    from edgebnn.config import resolve
    from edgebnn.train import check_run_dir, worker_role
    from edgebnn.train import train as run_training

    overrides = dict(dataset=dataset, model=model, precision=precision, epochs=epochs,
                     batch_size=batch_size, optimizer=optimizer, loss=loss, lr=lr,
                     lr_schedule=lr_schedule, seed=seed, limit=limit,
                     augment_shift=augment_shift, augment=augment, augment_pad=augment_pad,
                     normalize=normalize, val_size=val_size, early_stop=early_stop,
                     strategy=strategy, teacher=teacher,
                     distill_temperature=distill_temperature, distill_weight=distill_weight)
    given = {k: v for k, v in overrides.items() if v is not None}
    if resume and out and not preset and not given:
        config = None  # take RUN_DIR/config.yml as it is
    else:
        if not preset and dataset is None:
            raise click.UsageError("DATASET is required (or --config PRESET)")
        config = resolve(preset, **overrides)
    if out is None:
        if config is None:
            raise click.UsageError("--resume needs --out RUN_DIR")
        out = str(Path("runs") / f"{config.dataset}-{config.model}-{config.precision}")
    role = worker_role((config or _stored(out)).strategy)  # reads TF_CONFIG for multi_worker
    if role.chief:
        check_run_dir(out, resume=resume, force=force)  # before TensorFlow is imported
    if config is not None:
        status(f"training {config.model} ({config.precision}) on {config.dataset} for "
               f"{config.epochs} epochs -> {out}")
    if role.workers > 1:
        status(f"worker {role.task} (rank {role.rank} of {role.workers})"
               + ("" if role.chief else f": the chief writes {out}"))
    # progress only where the run is written: every worker steps in lockstep
    bars = [_progress_callback((config or _stored(out)).epochs)] if role.chief else []
    result = run_training(config, out, resume=resume, force=force, data_dir=data_dir,
                          callbacks=bars)
    m = result.metrics
    dist = m["distribution"]
    if not result.chief:
        if json_:
            echo_json({"run_dir": str(result.run_dir), "chief": False, "task": role.task,
                       "epochs": m["epochs"], "steps": result.steps, **dist})
        else:
            click.echo(f"worker {role.task}: {m['epochs']} epochs, {result.steps} steps in "
                       f"this session; the chief wrote {result.run_dir}")
        return
    if json_:
        echo_json({"run_dir": str(result.run_dir), "chief": True, "task": role.task,
                   "steps": result.steps, **dist, **{k: m[k] for k in (
                       "dataset", "model", "precision", "test_accuracy", "macro_f1",
                       "parameters", "model_size_bytes", "epochs", "wall_time_s",
                       "train_images_per_s")}})
    else:
        click.echo(
            f"{result.run_dir}: test accuracy {100 * m['test_accuracy']:.2f}%, macro F1 "
            f"{100 * m['macro_f1']:.2f}%, {m['epochs']} epochs, {m['wall_time_s']:.0f} s"
            + (f", {m['train_images_per_s']:.0f} images/s" if m.get("train_images_per_s") else "")
            + (" (stopped early)" if result.stopped_early else "")
        )


def _stored(out):
    from edgebnn.config import load_config
    from edgebnn.rundir import CONFIG

    return load_config(Path(out) / CONFIG)

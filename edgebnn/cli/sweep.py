"""``edgebnn sweep DATASET``: a grid of training runs, resumable run by run."""

import click

from edgebnn.cli._common import echo_json, handle_errors, status

_CHOICES = {
    "precision": ("binary", "binary-weights", "ternary", "float"),
    "loss": ("crossentropy", "hinge", "squared_hinge"),
    "optimizer": ("adam", "sgd", "bop"),
    "lr_schedule": ("cosine", "exponential", "constant"),
    "augment": ("none", "crop", "crop-flip"),
    "normalize": ("range", "per-channel"),
}
_TYPES = {"lr": float, "batch_size": int}


def _list(ctx, param, value):
    """``a,b,c`` -> ``["a", "b", "c"]``, each checked against the key's choices or type."""
    if value is None:
        return None
    key = param.name
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise click.BadParameter(f"expected a comma-separated list, found {value!r}")
    out = []
    for item in items:
        if key in _CHOICES and item not in _CHOICES[key]:
            raise click.BadParameter(f"'{item}' is not one of {', '.join(_CHOICES[key])}")
        if key in _TYPES:
            try:
                item = _TYPES[key](item)
            except ValueError:
                raise click.BadParameter(
                    f"'{item}' is not a valid {_TYPES[key].__name__}") from None
        out.append(item)
    return out


def _grid_option(name, help_):
    return click.option(f"--{name.replace('_', '-')}", name, callback=_list, metavar="A,B,...",
                        help=help_)


@click.command("sweep")
@click.argument("dataset", required=False)
@click.option("--config", "preset", help="Preset name or YAML file every run starts from.")
@_grid_option("model", "Zoo models to sweep.")
@_grid_option("precision", "Precisions: binary, binary-weights, ternary, float.")
@_grid_option("loss", "Losses: crossentropy, hinge, squared_hinge.")
@_grid_option("optimizer", "Optimizers: adam, sgd, bop.")
@_grid_option("lr", "Initial learning rates.")
@_grid_option("batch_size", "Batch sizes.")
@_grid_option("lr_schedule", "Schedules: cosine, exponential, constant.")
@_grid_option("augment", "Augmentations: none, crop, crop-flip.")
@_grid_option("normalize", "First-layer normalizations: range, per-channel.")
@click.option("--repeat", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs per cell, with seeds SEED, SEED+1, ...")
@click.option("--seed", type=click.IntRange(min=0), help="Base seed (default: the preset's).")
@click.option("--epochs", type=click.IntRange(min=1))
@click.option("--limit", type=click.IntRange(min=0), help="Train on the first N images (0 = all).")
@click.option("--val-size", type=click.IntRange(min=0), help="Training images held out for validation.")
@click.option("--early-stop", type=click.IntRange(min=0), help="Early-stopping patience (0 = off).")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="The sweep directory: one run directory per cell and seed.")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Directory searched first for the dataset.")
@click.option("--dry-run", is_flag=True, help="List the runs and what would happen to each; train nothing.")
@click.option("--json", "json_", is_flag=True, help="Print the runs and their metrics as JSON.")
@handle_errors
def sweep(dataset, preset, model, precision, loss, optimizer, lr, batch_size, lr_schedule,
          augment, normalize, repeat, seed, epochs, limit, val_size, early_stop, out, data_dir,
          dry_run, json_):
    """Train every cell of a grid REPEAT times, one RUN_DIR each under OUT.

    \b
    edgebnn sweep mnist --config smoke --precision binary,float \\
        --loss crossentropy,hinge --optimizer sgd,adam --repeat 3 --out runs/grid

    Finished runs are skipped and interrupted ones resumed, so running the
    same command again completes a sweep. `edgebnn compare OUT` shows the
    mean +- std of each cell.
    """
    from edgebnn.config import resolve
    from edgebnn.sweep import check_plan, plan_sweep, run_sweep, write_manifest

    if not preset and dataset is None:
        raise click.UsageError("DATASET is required (or --config PRESET)")
    grid_values = dict(model=model, precision=precision, loss=loss, optimizer=optimizer, lr=lr,
                       batch_size=batch_size, lr_schedule=lr_schedule, augment=augment,
                       normalize=normalize)
    grid = {k: v for k, v in grid_values.items() if v is not None}
    base = resolve(preset, dataset=dataset, seed=seed, epochs=epochs, limit=limit,
                   val_size=val_size, early_stop=early_stop)
    plan = plan_sweep(base, grid, repeat=repeat, out=out)
    check_plan(plan)  # before TensorFlow is imported
    if dry_run:
        for i, run in enumerate(plan, 1):
            click.echo(f"[{i}/{len(plan)}] {run.state():7s} {run.label} -> {run.run_dir}")
        return
    write_manifest(out, base, grid, repeat, plan)
    status(f"sweep of {len(plan)} runs ({len(plan) // repeat} cells x {repeat}) on "
           f"{base.dataset} -> {out}")
    from edgebnn.cli.train import _progress_callback

    results = []
    events = run_sweep(plan, data_dir=data_dir, callbacks=[_progress_callback(base.epochs)])
    for event in events:
        prefix = f"[{event.index}/{event.total}] {event.run.label}"
        if event.kind == "start":
            if event.action != "skip":
                status(f"{prefix}: {'resuming' if event.action == 'resume' else 'training'} "
                       f"-> {event.run.run_dir}")
            continue
        m = event.metrics
        status(f"{prefix}: {'finished before, skipped' if event.action == 'skip' else 'done'}: "
               f"test accuracy {100 * m['test_accuracy']:.2f}%, macro F1 "
               f"{100 * m['macro_f1']:.2f}%")
        results.append({**event.run.to_dict(), "action": event.action,
                        "test_accuracy": m["test_accuracy"], "macro_f1": m["macro_f1"],
                        "epochs": m["epochs"], "wall_time_s": m["wall_time_s"]})
    if json_:
        echo_json(results)
    else:
        trained = sum(r["action"] != "skip" for r in results)
        click.echo(f"{out}: {len(results)} runs ({trained} trained now, "
                   f"{len(results) - trained} finished before); see `edgebnn compare {out}`")

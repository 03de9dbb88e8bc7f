"""``edgebnn compare RUN_DIR...``."""

import click

from edgebnn.cli._common import echo_json, handle_errors, render_table, status


@click.command("compare")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path())
@click.option("--plot", type=click.Path(dir_okay=False), help="Write a bar chart to FILE.png.")
@click.option("--runs", "per_run", is_flag=True,
              help="One row per run even when runs differ only in seed.")
@click.option("--json", "json_", is_flag=True,
              help="Print JSON: the runs, or the cells when runs differ only in seed.")
@handle_errors
def compare(run_dirs, plot, per_run, json_):
    """Compare finished runs: accuracy, macro F1, size, epochs and wall time.

    A directory that is not a run (a sweep's OUT) stands for the runs below it.
    Runs whose configurations differ only in seed are one cell, shown as
    mean +- std (sample standard deviation over the seeds); --plot then draws
    the cells' accuracy bars with error bars and every run's curves overlaid.
    """
    from edgebnn.compare import (cell_table, cells_figure, compare_runs, comparison_figure,
                                 comparison_table, group_runs, has_repeats)

    runs = compare_runs(run_dirs)
    cells = group_runs(runs)
    grouped = has_repeats(cells) and not per_run
    if plot:
        from edgebnn.plots import save_figure

        save_figure(cells_figure(cells) if grouped else comparison_figure(runs), plot)
        status(f"wrote {plot}")
    if json_:
        echo_json([c.to_dict() for c in cells] if grouped else [r.to_dict() for r in runs])
    elif grouped:
        status(f"{len(runs)} runs in {len(cells)} cells (mean +- std over seeds)")
        click.echo(render_table(*cell_table(cells)))
    else:
        click.echo(render_table(*comparison_table(runs)))

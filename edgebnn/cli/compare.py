"""``edgebnn compare RUN_DIR...``."""

import click

from edgebnn.cli._common import echo_json, handle_errors, render_table, status


@click.command("compare")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path())
@click.option("--plot", type=click.Path(dir_okay=False), help="Write a bar chart to FILE.png.")
@click.option("--json", "json_", is_flag=True, help="Print a JSON list of the runs.")
@handle_errors
def compare(run_dirs, plot, json_):
    """Compare finished runs: accuracy, macro F1, size, epochs and wall time."""
    from edgebnn.compare import compare_runs, comparison_figure, comparison_table

    runs = compare_runs(run_dirs)
    if plot:
        from edgebnn.plots import save_figure

        save_figure(comparison_figure(runs), plot)
        status(f"wrote {plot}")
    if json_:
        echo_json([r.to_dict() for r in runs])
    else:
        click.echo(render_table(*comparison_table(runs)))

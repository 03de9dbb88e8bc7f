"""The ``edgebnn`` command line.

Commands live one per module in this package and are imported only when
they run (or when help is asked for), so ``edgebnn --help``, ``edgebnn
bench`` and ``edgebnn export`` never import TensorFlow.
"""

import importlib
import os

import click

from edgebnn import __version__

# name -> (module, attribute, one-line help shown by ``edgebnn --help``)
COMMANDS = {
    "datasets": ("edgebnn.cli.datasets", "datasets", "List datasets and where they were found."),
    "models": ("edgebnn.cli.models", "models", "List the model zoo."),
    "train": ("edgebnn.cli.train", "train", "Train a BNN (or its float twin) on a dataset."),
    "sweep": ("edgebnn.cli.sweep", "sweep", "Train a grid of runs (cells x repeats), resumable."),
    "compare": ("edgebnn.cli.compare", "compare", "Compare finished runs; mean +- std over seeds."),
    "convert": ("edgebnn.cli.convert", "convert", "Convert a trained model to TFLite with LCE."),
    "verify": ("edgebnn.cli.verify", "verify", "Check a .tflite against its trained Keras model."),
    "pretrained": ("edgebnn.cli.pretrained", "pretrained", "List the shipped pretrained models."),
    "bench": ("edgebnn.cli.bench", "bench", "Measure latency and size of a .tflite model."),
    "export": ("edgebnn.cli.export", "export", "Generate C sources from a .tflite model."),
    "targets": ("edgebnn.cli.targets", "targets", "List build targets and their toolchains."),
    "firmware": ("edgebnn.cli.firmware", "firmware", "Build, run and flash firmware for a target."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            # Command modules import only click and edgebnn at the top (heavy
            # packages load inside the command), so this is a broken install:
            # say which module failed and why, instead of hiding the cause.
            cause = f"{type(exc).__name__}: {exc}"

            @click.command(name=name, help=f"{COMMANDS[name][2]} (failed to load: {cause})")
            def _broken():
                raise click.ClickException(f"'edgebnn {name}' failed to load ({module}): {cause}")

            return _broken

    def format_commands(self, ctx, formatter):
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgebnn")
@click.option("-v", "--verbose", is_flag=True,
              help="Show TensorFlow's own log lines and warnings (hidden by default).")
def main(verbose):
    """edgebnn: train, convert, verify, benchmark and deploy binarized neural networks."""
    if verbose:
        # Read by edgebnn._tf before TensorFlow is imported (commands import it lazily).
        os.environ["EDGEBNN_VERBOSE"] = "1"
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"


if __name__ == "__main__":  # pragma: no cover
    main()

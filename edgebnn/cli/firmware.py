"""``edgebnn firmware build|run|flash``: the model on a device, or its emulator.

Never imports TensorFlow, except inside ``build`` when the expected
predictions come from LCE's interpreter (installed with the train extra).
"""

from pathlib import Path

import click

from edgebnn.cli._common import echo_json, handle_errors, render_table, status


@click.group("firmware")
def firmware():
    """Build firmware for a target, run it under emulation, or flash it."""


def _size_table(size):
    rows = [(mem, cat, n, pct) for mem, cat, n, pct in size.rows()]
    return render_table(("memory", "part", "bytes", "of budget"), rows)


@firmware.command("build")
@click.argument("model")
@click.option("-t", "--target", "target", required=True, metavar="TARGET",
              help="A target name (see `edgebnn targets`) or a target .toml file.")
@click.option("-o", "--output", "output", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="The project directory to write: new, empty, or an earlier edgebnn output "
                   "(replaced atomically); anything else needs --force.")
@click.option("--samples", default=30, show_default=True, type=click.IntRange(min=1),
              help="How many test inputs to embed.")
@click.option("--dataset", default=None,
              help="Dataset of the embedded inputs (default: guessed from the model; "
                   "seeded random 0..255 inputs when unknown).")
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="A directory searched for the dataset first.")
@click.option("--expected", type=click.Choice(["auto", "lce", "host"]), default="auto",
              show_default=True,
              help="Where expected predictions come from: LCE's interpreter (auto: when "
                   "installed) or the host build of the same generated code.")
@click.option("--console", type=click.Choice(["semihosting", "uart"]), default=None,
              help="Where the firmware prints: semihosting (QEMU or a debugger) or the board's "
                   "UART (no debugger needed). Default: the target file's console.default.")
@click.option("--force", is_flag=True,
              help="Replace OUTPUT even if it is a directory edgebnn did not write (its files are lost).")
@click.option("--json", "json_", is_flag=True, help="Print JSON instead of tables.")
@handle_errors
def build(model, target, output, samples, dataset, data_dir, expected, console, force, json_):
    """Generate and build a firmware project for MODEL (.tflite, run directory or
    shipped model name) in OUTPUT, and report its size against the budget."""
    import shlex
    import sys

    from edgebnn.firmware import build_firmware

    status(f"building {model} for {target} in {output} ...")
    result = build_firmware(model, target, output, samples=samples, dataset=dataset,
                            data_dir=data_dir, expected=expected, force=force, console=console,
                            command=shlex.join(["edgebnn", *sys.argv[1:]]))
    if json_:
        echo_json(result.to_dict())
        return
    meta = result.metadata
    click.echo(f"firmware for {result.target}: {result.elf}")
    for kind, path in sorted(result.artifacts.items()):
        if kind != "elf":
            click.echo(f"  {kind}: {path}")
    if meta.get("console"):
        click.echo(f"console: {meta['console']}"
                   + (" (the board's UART; no semihosting)" if meta["console"] == "uart" else ""))
    click.echo(f"samples: {meta['samples']} from {meta['samples_origin']}")
    click.echo(f"expected predictions from: "
               + {"lce": "LCE's interpreter", "host-c": "the host build of the same generated C"}
               .get(meta["expected_source"], meta["expected_source"]))
    if result.size is not None:
        click.echo(_size_table(result.size))
    click.echo(f"run it: edgebnn firmware run {result.directory}   (or: make -C {result.directory} run)")


@firmware.command("run")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--timeout", default=300.0, show_default=True, type=float,
              help="Seconds before the emulator is stopped.")
@click.option("--profile", is_flag=True,
              help="Also rebuild a copy of the project with per-op hooks (-DEBNN_PROFILE), run it "
                   "and print the instructions each kernel call takes per inference.")
@click.option("--json", "json_", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
@handle_errors
def run(ctx, directory, timeout, profile, json_):
    """Run a built firmware under its target's emulator (QEMU) and compare its
    predictions with the expected ones. Exit status 1 on any mismatch."""
    from edgebnn.firmware import read_metadata, run_firmware

    result = run_firmware(directory, timeout=timeout)
    meta = read_metadata(directory)
    d = result.to_dict()
    if meta.get("size"):
        d["size"] = dict(meta["size"])
        if result.stack_peak is not None:
            d["size"]["stack_peak"] = result.stack_peak
            d["size"]["arena_plus_stack_peak"] = meta["size"]["ram"].get("arena", 0) + result.stack_peak
    prof = None
    if profile:
        from edgebnn.firmware.profile import profile_firmware

        status("profiling: rebuilding a copy with -DEBNN_PROFILE ...")
        prof = profile_firmware(directory, timeout=timeout)
        d["profile"] = prof.to_dict()
    if json_:
        echo_json(d)
    else:
        status(" ".join(result.command))
        rows = []
        for i, (p, e) in enumerate(zip(result.predictions, result.expected)):
            ins = result.instructions[i] if result.instructions else "-"
            rows.append((i, p, e, "ok" if p == e else "MISMATCH", ins))
        click.echo(render_table(("sample", "prediction", "expected", "", "instructions"), rows))
        click.echo(f"agreement with {result.expected_source}: "
                   f"{len(result.predictions) - result.mismatches}/{len(result.predictions)}")
        stats = result.instruction_stats()
        if stats:
            click.echo(f"instructions per inference: median {stats['median']:,} "
                       f"(min {stats['min']:,}, max {stats['max']:,})")
        click.echo(f"  [{result.instructions_label}]")
        if result.stack_peak is not None:
            line = (f"stack: peak {result.stack_peak} B during inference "
                    f"({result.stack_peak_all} B with printf) of {result.stack_size} B reserved "
                    "(measured on a painted stack)")
            if meta.get("size"):
                arena = meta["size"]["ram"].get("arena", 0)
                line += f"; arena {arena} B + stack peak = {arena + result.stack_peak} B"
            click.echo(line)
        if prof is not None:
            click.echo(_profile_table(prof))
    if not result.ok or (prof is not None and prof.mismatches):
        ctx.exit(1)


def _profile_table(prof):
    """The per-call table of ``run --profile``, heaviest calls easy to spot."""
    rows = [(c.index, ",".join(str(o) for o in c.ops), c.type, c.kernel,
             f"{c.per_inference:,.0f}", f"{100 * c.share:.1f}%") for c in prof.calls]
    lines = [f"per-op profile ({prof.samples} samples, {prof.unit} per inference):",
             render_table(("call", "ops", "type", "kernel", prof.unit, "share"), rows),
             f"in kernel calls: {prof.in_calls:,.0f}; whole invoke in the profiling build: "
             f"{prof.invoke_per_inference:,.0f} (unattributed: hooks and the invoke's own code, "
             f"{prof.unattributed:,.0f})",
             f"  [{prof.label}]"]
    if prof.mismatches:
        lines.append(f"the profiling build mispredicted {prof.mismatches} samples")
    return "\n".join(lines)


@firmware.command("flash")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Print the command instead of running it.")
@handle_errors
def flash(directory, dry_run):
    """Program a board with a built firmware using the target's flashing tool."""
    import shlex

    from edgebnn.firmware import flash_command, flash_firmware

    cmd = flash_command(directory)
    if dry_run:
        click.echo(shlex.join(cmd))
        return
    status(shlex.join(cmd))
    result = flash_firmware(directory)
    click.echo(result.output.rstrip())

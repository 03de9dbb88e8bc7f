"""``edgebnn targets``: the build targets, their budgets and toolchains here.

Never imports TensorFlow.
"""

import click

from edgebnn.cli._common import echo_json, handle_errors, render_table


def _kib(n):
    return "-" if n is None else f"{n // 1024} KiB"


@click.command("targets")
@click.option("--json", "json_", is_flag=True, help="Print JSON instead of a table.")
@handle_errors
def targets(json_):
    """List build targets (targets/*.toml), their memory budgets, and which of
    their toolchains, emulators and flashing tools are installed here."""
    from edgebnn.targets import NATIVE, list_targets, toolchain_status
    from edgebnn.toolchain import KERNEL_SETS, native_target

    native = native_target()
    items = []
    for t in list_targets():
        st = toolchain_status(t)
        items.append((t, st))
    if json_:
        echo_json([dict(t.to_dict(), toolchain=st, native=t.source == native.source) for t, st in items])
        return
    rows = []
    for t, st in items:
        missing = sorted({v["executable"] for v in st["tools"].values() if not v["found"]})
        rows.append((
            t.name, t.kind, t.cpu or t.arch, t.kernels, _kib(t.flash_bytes), _kib(t.ram_bytes),
            t.qemu_machine or "-",
            "yes" if st["build"] else "no", "yes" if st["run"] else "no",
            "yes" if st["flash"] else "no",
            ", ".join(missing) or "-",
        ))
    click.echo(render_table(
        ("target", "kind", "cpu", "kernels", "flash", "ram", "emulated on", "build", "run", "flash tool",
         "missing here"), rows))
    for t, _ in items:
        click.echo(f"  {t.name}: {t.description}")
    click.echo(f"  {NATIVE}: this machine, the same as {native.name} ({native.source})")
    click.echo("kernel sets (the 'kernels' field):")
    for k, v in KERNEL_SETS.items():
        click.echo(f"  {k}: {v.description}")

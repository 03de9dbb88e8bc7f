"""The CLI's entry point: help lists every command and never imports TensorFlow."""

import json
import subprocess
import sys

from click.testing import CliRunner

from edgebnn.cli import COMMANDS, main


def _leaves(group, prefix=()):
    """Every runnable command under ``group`` as (path, command)."""
    import click

    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            yield prefix + (name,), cmd
            yield from _leaves(cmd, prefix + (name,))
        else:
            yield prefix + (name,), cmd


def test_every_command_has_working_help():
    # Each command's own --help is rendered from its click definition: a
    # command whose module fails to import, or whose options are broken,
    # fails here (the top-level listing alone is drawn from COMMANDS).
    leaves = list(_leaves(main))
    assert {path[0] for path, _ in leaves} == set(COMMANDS)
    for path, cmd in leaves:
        result = CliRunner().invoke(main, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert result.output.startswith(f"Usage: main {' '.join(path)}"), (path, result.output[:200])
        assert "failed to load" not in result.output, (path, result.output)


def test_a_command_that_fails_to_import_says_why(monkeypatch):
    import edgebnn.cli as cli

    monkeypatch.setitem(cli.COMMANDS, "ghost", ("edgebnn.cli.no_such_module", "ghost", "A test command."))
    result = CliRunner().invoke(main, ["ghost"])
    assert result.exit_code != 0
    assert "edgebnn.cli.no_such_module" in result.output and "ModuleNotFoundError" in result.output


def test_help_does_not_import_tensorflow():
    code = (
        "import sys, json\n"
        "from edgebnn.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('tensorflow', 'tf_keras', 'larq', 'larq_compute_engine') if m in sys.modules]\n"
        "print(json.dumps(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_every_command_module_imports_without_tensorflow():
    code = (
        "import sys, json, importlib\n"
        "from edgebnn.cli import COMMANDS\n"
        "bad = {}\n"
        "for name, (mod, attr, _) in COMMANDS.items():\n"
        "    getattr(importlib.import_module(mod), attr)\n"
        "    if 'tensorflow' in sys.modules:\n"
        "        bad[name] = mod\n"
        "        break\n"
        "print(json.dumps(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {}


def test_version_flag():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert "edgebnn" in result.output

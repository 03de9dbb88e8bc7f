"""The CLI's entry point: help lists every command and never imports TensorFlow."""

import json
import subprocess
import sys

from click.testing import CliRunner

from edgebnn.cli import COMMANDS, main


def test_help_lists_every_command():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    for name in COMMANDS:
        assert name in result.output


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

"""The CLI's error mapping: every failure is one line, never a traceback."""

import errno
import os

import click
from click.testing import CliRunner

from edgebnn.cli._common import handle_errors


def test_an_os_error_from_an_output_is_one_line_naming_the_path():
    @click.command()
    @handle_errors
    def cmd():
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "build/model.tflite")

    res = CliRunner().invoke(cmd, [])
    assert res.exit_code == 1
    assert res.output == "Error: build/model.tflite: No space left on device\n"


def test_a_failed_rename_names_both_paths():
    @click.command()
    @handle_errors
    def cmd():
        raise OSError(errno.EACCES, os.strerror(errno.EACCES), "a.tmp", None, "a")

    res = CliRunner().invoke(cmd, [])
    assert res.output == "Error: a.tmp -> a: Permission denied\n"

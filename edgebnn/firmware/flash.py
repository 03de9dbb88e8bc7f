"""Hand a built image to the target's flashing tool (openocd, pyocd, st-flash...).

The command comes from the target file's ``[flash]`` table, with ``{elf}``,
``{bin}``, ``{hex}``, ``{exe}`` and ``{dir}`` replaced by the project's paths.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edgebnn.errors import TargetError, ToolchainError
from edgebnn.firmware.project import IMAGE, project_target, read_metadata


@dataclass(frozen=True)
class FlashResult:
    target: str
    command: list
    exit_code: int
    output: str

    def to_dict(self) -> dict:
        return {"target": self.target, "command": self.command, "exit_code": self.exit_code,
                "output": self.output}


def flash_command(directory) -> list:
    """The exact flashing command for a built project.

    Raises:
        TargetError: not a project, not built, or the target has no flashing
            tool.
    """
    d = Path(directory)
    read_metadata(d)
    target = project_target(d)
    if not target.flash_command:
        raise TargetError(
            f"target '{target.name}' ({target.source}) names no flashing command "
            "([flash] command = [...] in its target file)"
        )
    paths = {"elf": d / IMAGE, "exe": d / IMAGE, "bin": d / "fw.bin", "hex": d / "fw.hex", "dir": d}
    cmd = target.flash_command_line(**{k: str(Path(v).resolve()) for k, v in paths.items()})
    for key, path in paths.items():
        if key != "dir" and any(str(Path(path).resolve()) in w for w in cmd) and not Path(path).is_file():
            raise TargetError(f"{path} does not exist; build the project first (make -C {d})")
    return cmd


def flash_firmware(directory, *, timeout: float = 300.0) -> FlashResult:
    """Run the target's flashing command.

    Raises:
        ToolchainError: the tool is not installed (the message names the
            tool, its Debian package and the exact command that would run),
            or it failed (no probe or board attached...).
    """
    d = Path(directory)
    target = project_target(d)
    cmd = flash_command(d)
    tool = cmd[0]
    if shutil.which(tool) is None:
        pkg = target.package_for(tool)
        hint = f" (Debian package '{pkg}': apt-get install {pkg})" if pkg else ""
        raise ToolchainError(
            f"flashing tool '{tool}' for target '{target.name}' is not installed{hint}; "
            f"the command that would run is:\n  {shlex.join(cmd)}"
        )
    try:
        proc = subprocess.run(cmd, cwd=d, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise ToolchainError(f"'{tool}' did not finish within {timeout:g} s: {shlex.join(cmd)}") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise ToolchainError(
            f"'{tool}' failed (exit {proc.returncode}; is the board connected through its probe?): "
            f"{shlex.join(cmd)}\n{tail}"
        )
    return FlashResult(target=target.name, command=cmd, exit_code=proc.returncode,
                       output=proc.stdout + proc.stderr)

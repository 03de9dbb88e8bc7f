"""Atomic writes leave either the old content or the new, never a mix."""

from pathlib import Path

import pytest

from edgebnn.io import atomic_directory, atomic_output_path, atomic_write_bytes


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.bin"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_failed_writer_keeps_old_file(tmp_path):
    target = tmp_path / "plot.png"
    target.write_bytes(b"previous")
    with pytest.raises(RuntimeError):
        with atomic_output_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("writer crashed")
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plot.png"]


def test_atomic_directory_refuses_existing_and_replaces_on_request(tmp_path):
    out = tmp_path / "run"
    with atomic_directory(out) as tmp:
        (tmp / "a.txt").write_text("1")
    with pytest.raises(FileExistsError):
        with atomic_directory(out):
            pass
    with pytest.raises(ValueError):
        with atomic_directory(out, replace=True) as tmp:
            (tmp / "b.txt").write_text("2")
            raise ValueError("interrupted")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]
    with atomic_directory(out, replace=True) as tmp:
        (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_written_files_get_the_umask_mode_not_0600(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        out = atomic_write_bytes(tmp_path / "model.tflite", b"x")
        with atomic_directory(tmp_path / "dir") as tmp:
            (tmp / "f").write_text("1")
    finally:
        os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "dir").stat().st_mode & 0o777 == 0o755


# ---- Full disk: one-line OutputError, old content intact, no temp files --------

import errno
import fcntl
import os
import subprocess
import sys
import textwrap

import edgebnn.io as eio
from edgebnn.errors import EdgeBnnError, OutputError


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_file_write_is_an_output_error_and_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "model.tflite"
    target.write_bytes(b"old model")
    monkeypatch.setattr(eio.os, "fsync", _enospc)
    with pytest.raises(OutputError) as info:
        eio.atomic_write_bytes(target, b"new model")
    assert isinstance(info.value, EdgeBnnError)
    assert str(info.value) == f"cannot write {target}: No space left on device"
    assert target.read_bytes() == b"old model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.tflite"]


def test_full_disk_inside_a_directory_build_keeps_the_old_directory(tmp_path, monkeypatch):
    out = tmp_path / "export"
    with eio.atomic_directory(out) as tmp:
        (tmp / "model.c").write_text("old")
    monkeypatch.setattr(eio.os, "fsync", _enospc)
    with pytest.raises(OutputError) as info:
        with eio.atomic_directory(out, replace=True) as tmp:
            eio.atomic_write_text(tmp / "model.c", "new")
    assert str(info.value) == f"cannot write {out / 'model.c'}: No space left on device"
    assert (out / "model.c").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_full_disk_while_a_writer_fills_a_temp_path(tmp_path):
    target = tmp_path / "curves.png"
    target.write_bytes(b"old")
    with pytest.raises(OutputError, match=r"curves\.png: No space left on device"):
        with eio.atomic_output_path(target):
            _enospc()
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png"]


# ---- The swap: exchange where the OS has it, repair after a crash ---------------


def test_rename_exchange_swaps_two_directories(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "from_a").write_text("a")
    (b / "from_b").write_text("b")
    if not eio.rename_exchange(a, b):
        pytest.skip("this kernel or file system has no renameat2(RENAME_EXCHANGE)")
    assert [p.name for p in a.iterdir()] == ["from_b"]
    assert [p.name for p in b.iterdir()] == ["from_a"]


def test_replacing_uses_the_exchange_and_never_renames_the_old_output_away(tmp_path, monkeypatch):
    out = tmp_path / "out"
    with eio.atomic_directory(out) as tmp:
        (tmp / "old.txt").write_text("old")
    calls = []
    real_exchange, real_rename = eio.rename_exchange, os.rename

    def spy_exchange(a, b):
        calls.append(("exchange", Path(b).name))
        return real_exchange(a, b)

    def guarded_rename(src, dst):
        assert Path(src) != out, "the old output was renamed away: a window where it is missing"
        return real_rename(src, dst)

    monkeypatch.setattr(eio, "rename_exchange", spy_exchange)
    monkeypatch.setattr(eio.os, "rename", guarded_rename)
    if not real_exchange(tmp_path / "out", tmp_path / "out"):
        pytest.skip("no renameat2(RENAME_EXCHANGE) here")
    with eio.atomic_directory(out, replace=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert calls == [("exchange", "out")]
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


_CRASH = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    import edgebnn.io as eio
    out = Path(sys.argv[1])
    eio.rename_exchange = lambda a, b: False   # an OS without the exchange
    real = os.rename
    def crashing_rename(src, dst):
        if Path(dst) == out:                   # the second rename of the swap
            os._exit(9)                        # killed: no finally, no cleanup
        return real(src, dst)
    eio.os.rename = crashing_rename
    with eio.atomic_directory(out, replace=True) as tmp:
        (tmp / "new.txt").write_text("new")
""")


def test_a_crash_between_the_two_renames_is_repaired_by_the_next_call(tmp_path):
    out = tmp_path / "out"
    with eio.atomic_directory(out) as tmp:
        (tmp / "old.txt").write_text("old")
    proc = subprocess.run([sys.executable, "-c", _CRASH, str(out)], env={**os.environ})
    assert proc.returncode == 9
    # The crash state: the old output only under .out.old, the new half of the swap beside it.
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "out" not in names and ".out.old" in names
    assert any(n.startswith(".out.new-") for n in names)
    repaired = eio.repair_interrupted(out)
    assert any("restored" in line for line in repaired)
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_the_fallback_swap_restores_the_old_output_when_the_second_rename_fails(tmp_path, monkeypatch):
    out = tmp_path / "out"
    with eio.atomic_directory(out) as tmp:
        (tmp / "old.txt").write_text("old")
    monkeypatch.setattr(eio, "rename_exchange", lambda a, b: False)
    real = os.rename

    def failing(src, dst):
        if Path(dst) == out and ".new-" in Path(src).name:
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(src))
        return real(src, dst)

    monkeypatch.setattr(eio.os, "rename", failing)
    with pytest.raises(OutputError, match="Input/output error"):
        with eio.atomic_directory(out, replace=True) as tmp:
            (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    monkeypatch.setattr(eio.os, "rename", real)
    with eio.atomic_directory(out, replace=True) as tmp:  # the two-rename path itself works
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_leftovers_of_an_older_crash_are_repaired_and_a_live_build_is_left_alone(tmp_path):
    out = tmp_path / "out"
    (tmp_path / ".out.old").mkdir()                # the old code's crash: out renamed away
    (tmp_path / ".out.old" / "notes.txt").write_text("keep me")
    stale = tmp_path / ".out.new-dead"
    stale.mkdir()
    live = tmp_path / ".out.new-live"
    live.mkdir()
    fd = os.open(live, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)             # another process is building here
        with eio.atomic_directory(out, replace=True) as tmp:
            (tmp / "new.txt").write_text("new")
        assert live.is_dir()
    finally:
        os.close(fd)
    assert not stale.exists()
    assert not (tmp_path / ".out.old").exists()
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]


# ---- The output policy shared by export and firmware build ----------------------


def test_output_policy_accepts_new_empty_and_earlier_outputs(tmp_path):
    assert eio.check_output_directory(tmp_path / "new") == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    eio.check_output_directory(tmp_path / "empty")
    with eio.output_directory(tmp_path / "earlier", kind="export") as tmp:
        (tmp / "model.c").write_text("x")
    assert eio.earlier_output(tmp_path / "earlier")["kind"] == "export"
    eio.check_output_directory(tmp_path / "earlier")
    (tmp_path / "fw").mkdir()
    (tmp_path / "fw" / "firmware.json").write_text("{}")
    eio.check_output_directory(tmp_path / "fw", legacy_markers=("firmware.json",))


def test_output_policy_refuses_a_users_folder_unless_forced(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "todo.txt").write_text("mine")
    with pytest.raises(OutputError, match=r"not an earlier edgebnn output.*--force"):
        with eio.output_directory(folder, kind="export") as tmp:
            (tmp / "model.c").write_text("x")
    assert (folder / "todo.txt").read_text() == "mine"
    (tmp_path / "file").write_text("f")
    with pytest.raises(OutputError, match="is not a directory"):
        eio.check_output_directory(tmp_path / "file")
    with eio.output_directory(folder, kind="export", force=True) as tmp:
        (tmp / "model.c").write_text("x")
    assert sorted(p.name for p in folder.iterdir()) == [eio.OUTPUT_MARKER, "model.c"]


def test_output_policy_refuses_the_current_directory(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for path in (".", "..", str(tmp_path)):
        with pytest.raises(OutputError, match="current"):
            eio.check_output_directory(path, force=True)

"""Atomic writes leave either the old content or the new, never a mix."""

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

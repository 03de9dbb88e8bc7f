"""Atomic file and directory writes: nothing is ever left half-written."""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _normal_mode(path, *, directory: bool = False) -> None:
    """Give a mkstemp/mkdtemp file the mode a plain open() would have (not 0600)."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        _normal_mode(tmp)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_output_path(path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    For writers that insist on a file name (Keras ``save``, matplotlib
    ``savefig``). The suffix is kept so format detection still works.

    Example:
        >>> with atomic_output_path("run/curves.png") as tmp:  # doctest: +SKIP
        ...     fig.savefig(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    _normal_mode(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_directory(path, *, replace: bool = False):
    """Build a directory under a temporary name and rename it into place.

    Args:
        path: the final directory.
        replace: allow replacing an existing directory (it is removed only
            after the new one is complete).

    Raises:
        FileExistsError: ``path`` exists and ``replace`` is false.
    """
    path = Path(path)
    if path.exists() and not replace:
        raise FileExistsError(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    _normal_mode(tmp, directory=True)
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_files(files) -> list:
    """Write several files so that none is replaced unless all are written.

    Every file is first written and synced to a temporary name beside its
    target; only when all of them are complete are they renamed into place,
    one after the other. A failure while writing (a full disk, a bad path)
    leaves every old file as it was and removes the temporaries. (The
    renames themselves are separate steps: only a crash of the process or
    the machine in between them, where nothing is written, can leave some
    files new and some old.)

    Example:
        >>> atomic_write_files({"m.tflite": data, "m.json": report})  # doctest: +SKIP

    Args:
        files: ``{path: bytes}``.

    Returns:
        The target paths, in the order given.

    Raises:
        OSError: a file could not be written; no target was replaced.
    """
    staged = []
    try:
        for path, data in files.items():
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            staged.append((tmp, path))
            _normal_mode(tmp)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        for tmp, path in staged:
            os.replace(tmp, path)
    finally:
        for tmp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    return [path for _, path in staged]

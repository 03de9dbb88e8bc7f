"""Atomic file and directory writes: nothing is ever left half-written."""

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

from edgebnn.errors import OutputError

#: The file every edgebnn output directory holds (export, firmware build):
#: ``{"kind": ..., "edgebnn": VERSION}``. Its presence says the directory is
#: edgebnn's to replace (:func:`check_output_directory`).
OUTPUT_MARKER = ".edgebnn-output.json"


def output_error(path, exc: OSError) -> OutputError:
    """A one-line :class:`OutputError` for an ``OSError`` met while writing ``path``."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return OutputError(f"cannot write {path}: {reason}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _normal_mode(path, *, directory: bool = False) -> None:
    """Give a mkstemp/mkdtemp file the mode a plain open() would have (not 0600)."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    Raises:
        OutputError: the file cannot be written (full disk, no permission...);
            the old file, if any, is left as it was and no temporary file remains.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise output_error(path, exc) from exc
    try:
        _normal_mode(tmp)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise output_error(path, exc) from exc
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
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise output_error(path, exc) from exc
    tmp = Path(tmp)
    _normal_mode(tmp)
    try:
        try:
            yield tmp
            os.replace(tmp, path)
        except OSError as exc:  # the writer's own errors too: it was writing this output
            raise output_error(path, exc) from exc
    finally:
        if tmp.exists():
            tmp.unlink()


# ---- Replacing a directory ------------------------------------------------
#
# A new output directory is built under a temporary name beside the final
# one, ``.NAME.new-XXXXXX``, and then put in place:
#
# - with Linux's renameat2(RENAME_EXCHANGE), the two names swap in one step:
#   NAME is the old directory, then the new one, and never missing;
# - elsewhere (other kernels, file systems without the call) in two renames:
#   NAME -> ``.NAME.old``, then ``.NAME.new-XXXXXX`` -> NAME. Between the two,
#   the old output is reachable as ``.NAME.old``.
#
# Every later call first repairs what an interrupted run left:
# ``.NAME.old`` without NAME is renamed back (the old output returns);
# ``.NAME.old`` beside NAME, and ``.NAME.new-*`` directories that no running
# process holds (each run keeps an flock on its own), are removed. The swap
# and the repair run under an flock on the parent directory, so concurrent
# runs do not undo each other.

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
#: renameat2's system call number where libc has no wrapper (glibc < 2.28).
_SYS_RENAMEAT2 = {"x86_64": 316, "aarch64": 276, "arm64": 276}
#: errno values meaning "this kernel or file system cannot exchange".
_NO_EXCHANGE = {errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP}
_NEW_INFIX = ".new-"


def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - no C library to load
        return None


def rename_exchange(a, b) -> bool:
    """Swap the paths ``a`` and ``b`` in one atomic step (Linux ``renameat2``).

    Returns:
        True when they were swapped; False when this OS or file system has no
        such operation (nothing was changed: use another protocol).

    Raises:
        OSError: the swap was possible but failed (e.g. ``b`` does not exist).
    """
    if not sys.platform.startswith("linux"):
        return False
    libc = _libc()
    if libc is None:  # pragma: no cover
        return False
    args = (ctypes.c_int(_AT_FDCWD), os.fsencode(str(a)), ctypes.c_int(_AT_FDCWD), os.fsencode(str(b)),
            ctypes.c_uint(_RENAME_EXCHANGE))
    fn = getattr(libc, "renameat2", None)
    if fn is not None:
        fn.restype = ctypes.c_int
        rc = fn(*args)
    else:  # pragma: no cover - glibc before 2.28
        nr = _SYS_RENAMEAT2.get(platform.machine())
        if nr is None:
            return False
        libc.syscall.restype = ctypes.c_long
        rc = libc.syscall(ctypes.c_long(nr), *args)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in _NO_EXCHANGE:
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def _remove(path) -> None:
    """Remove a file, symbolic link or directory tree; nothing if it is absent."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def _fsync_dir(directory) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _locked(directory, *, blocking: bool = True):
    """Hold an exclusive flock on ``directory``.

    Yields True when locked, False when non-blocking and another process
    holds it, None when the file system cannot lock (the caller goes on).
    """
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:  # e.g. a directory this user may write but not list
        yield None
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            state = True
        except BlockingIOError:
            state = False
        except OSError:  # e.g. ENOLCK on some network file systems
            state = None
        yield state
    finally:
        os.close(fd)


def _old_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.old")


def repair_interrupted(path) -> list:
    """Repair what a run interrupted while replacing ``path`` left behind.

    ``.NAME.old`` without ``NAME`` is the previous output caught between the
    two renames: it is renamed back. ``.NAME.old`` beside ``NAME`` is stale
    and removed, as are ``.NAME.new-*`` directories no running process holds.
    Called by :func:`atomic_directory`; the caller holds the parent's lock.

    Returns:
        one line per repair made (empty when there was nothing to do).
    """
    path = Path(os.path.abspath(path))
    done = []
    if not path.parent.is_dir():
        return done
    old = _old_name(path)
    if os.path.lexists(old):
        if not os.path.lexists(path):
            os.rename(old, path)
            done.append(f"restored {path} from {old.name} (an earlier run was interrupted)")
        else:
            _remove(old)
            done.append(f"removed {old} (left by an interrupted run)")
    prefix = f".{path.name}{_NEW_INFIX}"
    for entry in os.scandir(path.parent):
        if not entry.name.startswith(prefix) or entry.is_symlink() or not entry.is_dir():
            continue
        with _locked(entry.path, blocking=False) as free:
            if free is True:  # no live run holds it: a crashed run's half-built or replaced output
                shutil.rmtree(entry.path, ignore_errors=True)
                done.append(f"removed {entry.path} (left by an interrupted run)")
    return done


def _swap_into_place(tmp: Path, path: Path) -> None:
    """Put the finished directory ``tmp`` at ``path``; what was at ``path`` ends at ``tmp``."""
    if not os.path.lexists(path):
        os.rename(tmp, path)
    elif rename_exchange(tmp, path):
        if tmp.is_symlink() or not tmp.is_dir():  # --force over a file or a link
            tmp.unlink()
    else:
        old = _old_name(path)
        _remove(old)
        os.rename(path, old)
        # Until the next rename the old output is reachable as .NAME.old;
        # repair_interrupted() brings it back if this process dies here.
        try:
            os.rename(tmp, path)
        except BaseException:
            os.rename(old, path)
            raise
        _remove(old)
    _fsync_dir(path.parent)


def _inside(filename, directory: Path) -> bool:
    if not filename:
        return False
    try:
        Path(os.path.abspath(str(filename))).relative_to(directory)
    except ValueError:
        return False
    return True


def earlier_output(path, *, legacy_markers=()):
    """The marker of an earlier edgebnn output in directory ``path``, or None.

    Returns:
        the parsed :data:`OUTPUT_MARKER` (``{}`` if unreadable), the name of
        a present ``legacy_markers`` file, or None when ``path`` is not an
        edgebnn output.
    """
    path = Path(path)
    marker = path / OUTPUT_MARKER
    if marker.is_file():
        try:
            data = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}
    for name in legacy_markers:
        if (path / name).is_file():
            return {"kind": name}
    return None


def check_output_directory(path, *, force: bool = False, legacy_markers=(), flag: str = "--force") -> Path:
    """The one policy for replacing an output directory (export, firmware build).

    ``path`` may be written when it does not exist, is an empty directory, or
    is an earlier edgebnn output (it holds :data:`OUTPUT_MARKER`, or one of
    ``legacy_markers``); anything else only with ``force``. The current
    directory, or one containing it, is never replaced.

    Example:
        >>> check_output_directory("build/new-export")  # doctest: +SKIP

    Returns:
        ``path`` as an absolute path.

    Raises:
        OutputError: ``path`` may not be replaced; the message says why and
            names ``flag``.
    """
    shown = path
    path = Path(os.path.abspath(path))
    try:
        cwd = Path.cwd()
    except OSError:  # the current directory was removed
        cwd = None
    if path.parent == path or (cwd is not None and (path == cwd or path in cwd.parents)):
        what = "the current directory" if path == cwd else "a directory containing the current one"
        raise OutputError(
            f"output directory '{shown}' is {what}; edgebnn replaces its output directory as a "
            f"whole: name a new directory instead (e.g. -o {Path(str(shown)) / 'out'})"
        )
    if force or not os.path.lexists(path):
        return path
    if path.is_symlink():
        raise OutputError(f"output '{shown}' is a symbolic link; remove it, choose another "
                          f"directory, or pass {flag} to replace the link")
    if not path.is_dir():
        raise OutputError(f"output '{shown}' exists and is not a directory; choose another "
                          f"directory, or pass {flag} to replace it")
    if earlier_output(path, legacy_markers=legacy_markers) is not None:
        return path
    try:
        empty = not any(path.iterdir())
    except OSError as exc:
        raise output_error(shown, exc) from exc
    if not empty:
        raise OutputError(
            f"output directory '{shown}' exists, is not empty and is not an earlier edgebnn "
            f"output (no {OUTPUT_MARKER}); choose a new directory, or pass {flag} to replace "
            f"it and everything in it"
        )
    return path


@contextlib.contextmanager
def output_directory(path, *, kind: str, force: bool = False, legacy_markers=(), flag: str = "--force"):
    """Check ``path`` against :func:`check_output_directory`, then build it atomically.

    Yields the temporary directory to fill; on success it gets
    :data:`OUTPUT_MARKER` (``{"kind": kind, ...}``) and replaces ``path``
    (:func:`atomic_directory`).

    Example:
        >>> with output_directory("build/mnist", kind="export") as tmp:  # doctest: +SKIP
        ...     (tmp / "model.h").write_text(header)

    Raises:
        OutputError: ``path`` may not be replaced, or writing failed.
    """
    from edgebnn import __version__

    path = check_output_directory(path, force=force, legacy_markers=legacy_markers, flag=flag)
    with atomic_directory(path, replace=True) as tmp:
        yield tmp
        marker = {"kind": kind, "edgebnn": __version__}
        atomic_write_text(tmp / OUTPUT_MARKER, json.dumps(marker, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def atomic_directory(path, *, replace: bool = False):
    """Build a directory under a temporary name and put it in place in one step.

    The old directory stays reachable at every instant (see the notes above:
    rename-exchange, or two renames that a later call repairs), and
    leftovers of an interrupted run are repaired first.

    Args:
        path: the final directory.
        replace: allow replacing an existing directory (it is removed only
            after the new one is in place).

    Raises:
        FileExistsError: ``path`` exists and ``replace`` is false.
        OutputError: writing failed (full disk, no permission...); the old
            directory is intact and the temporary one removed.
    """
    path = Path(os.path.abspath(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path.parent):
            repair_interrupted(path)
            if os.path.lexists(path) and not replace:
                raise FileExistsError(errno.EEXIST, "exists", str(path))
            tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}{_NEW_INFIX}", dir=path.parent))
            hold = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY)
            with contextlib.suppress(OSError):  # a file system without flock: no repair of it
                fcntl.flock(hold, fcntl.LOCK_EX)
    except FileExistsError:
        raise
    except OSError as exc:
        raise output_error(path, exc) from exc
    _normal_mode(tmp, directory=True)
    try:
        try:
            try:
                yield tmp
            except OutputError as exc:  # an atomic_write_* into tmp: name the final path
                raise OutputError(str(exc).replace(str(tmp), str(path))) from exc
            except OSError as exc:
                if _inside(exc.filename, tmp):
                    rel = Path(os.path.abspath(str(exc.filename))).relative_to(tmp)
                    raise output_error(path / rel, exc) from exc
                raise
            try:
                with _locked(path.parent):
                    _swap_into_place(tmp, path)
            except OSError as exc:
                raise output_error(path, exc) from exc
        finally:
            os.close(hold)
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

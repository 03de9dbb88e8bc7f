"""Downloading: fetch a dataset's published files over HTTP, checksummed, written atomically.

Each file is a :class:`_Remote`: its name in the cache and the ``(url,
checksum)`` pairs to try in order. ``$EDGEBNN_DATA_MIRROR`` replaces every
URL by the upstream file name under the mirror's base URL (the checksums
still apply). A file is streamed to a temporary name beside its destination
and renamed into place only once its length and checksum match.
"""

import hashlib
import os
import socket
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from edgebnn import __version__
from edgebnn.errors import DatasetError

ENV_MIRROR = "EDGEBNN_DATA_MIRROR"

ProgressCallback = Callable[[str, int, Optional[int]], None]
"""``progress(file_name, bytes_done, bytes_total_or_None)``, called as a download proceeds."""

_DOWNLOAD_TIMEOUT = 60.0
_ONLINE_TIMEOUT = 3.0


def _reachable(url, timeout=None):
    """``(True, "")`` when ``url``'s host accepts a connection, else ``(False, why)``.

    ``timeout`` defaults to ``_ONLINE_TIMEOUT``, read when called.
    """
    timeout = _ONLINE_TIMEOUT if timeout is None else timeout
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True, ""
    except OSError as exc:
        return False, f"cannot reach {parts.hostname}:{port} ({exc})"


@dataclass(frozen=True)
class _Remote:
    """One file to download: its name in the cache and (url, checksum) pairs to try in order.

    A checksum is an md5 (32 hex digits) or sha256 (64 hex digits) of the
    file as published, or None where none is published.
    """

    filename: str
    urls: tuple


def _remote_urls(remote):
    mirror = os.environ.get(ENV_MIRROR, "").strip()
    if mirror:
        url, checksum = remote.urls[0]
        upstream = urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1]
        return ((f"{mirror.rstrip('/')}/{upstream}", checksum),)
    return remote.urls


def _download_file(remote, dest: Path, progress):
    errors = []
    for url, checksum in _remote_urls(remote):
        try:
            _fetch_url(url, dest, checksum, progress)
            return
        except (urllib.error.URLError, OSError, DatasetError) as exc:
            errors.append(f"{url}: {exc}")
    raise DatasetError(f"could not download {dest.name} into {dest.parent}: " + "; ".join(errors))


def _fetch_url(url, dest: Path, checksum, progress):
    request = urllib.request.Request(url, headers={"User-Agent": f"edgebnn/{__version__}"})
    with urllib.request.urlopen(request, timeout=_DOWNLOAD_TIMEOUT) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        try:
            algo = "sha256" if checksum is not None and len(checksum) == 64 else "md5"
            digest = hashlib.new(algo, usedforsecurity=False)
            done = 0
            with os.fdopen(fd, "wb") as fh:
                if progress is not None:
                    progress(dest.name, 0, total)
                while True:
                    chunk = response.read(1 << 16)
                    if not chunk:
                        break
                    fh.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(dest.name, done, total)
                fh.flush()
                os.fsync(fh.fileno())
            if total is not None and done != total:
                raise DatasetError(f"download cut short: expected {total} bytes, received {done}")
            if checksum is not None and digest.hexdigest() != checksum.lower():
                raise DatasetError(
                    f"checksum mismatch: expected {algo} {checksum}, got {digest.hexdigest()}"
                )
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

"""Datasets: find, download and load MNIST, Fashion-MNIST, CIFAR-10 and SVHN.

Every dataset is returned the same way: ``uint8`` images in NHWC layout and
``int64`` labels ``0..9``, read from the files the dataset's authors (or
Keras) publish, with no TensorFlow involved.

Where a dataset is looked for, in this order (the first complete set wins):

1. the ``data_dir`` argument (``--data-dir`` on the command line);
2. ``$EDGEBNN_DATA`` (one directory, or several joined by ``os.pathsep``);
3. the Keras cache, ``$KERAS_HOME/datasets`` or ``~/.keras/datasets``;
4. Debian's dataset packages, ``/usr/share/datasets``;
5. a download from the dataset's public URL into the Keras cache, when
   ``download`` is true, or when it is None and the host can be reached.

Under each of those roots a dataset may sit in its own folder
(``<root>/mnist/``, ``<root>/fashion-mnist/``, ``<root>/cifar-10-batches-py/``,
``<root>/svhn/``, torchvision's ``<root>/MNIST/raw/``...) or directly in the
root when its file names say which dataset it is (``mnist.npz``, the CIFAR-10
tarball, ``train_32x32.mat``). MNIST and Fashion-MNIST share their IDX file
names, so bare IDX files are taken only from a folder named after the dataset
or from an explicit ``data_dir`` that is not named after the other one.

Set ``$EDGEBNN_DATA_MIRROR`` to a base URL to download the upstream file
names from a mirror instead (the files must be byte-identical: their
checksums are still checked), and ``$EDGEBNN_OFFLINE=1`` to never download
unless asked to explicitly.
"""

import contextlib
import gzip
import hashlib
import io
import os
import pickle
import socket
import struct
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from edgebnn import __version__
from edgebnn.errors import DatasetError, MissingDependencyError
from edgebnn.io import atomic_directory

__all__ = [
    "DATASETS",
    "DEBIAN_ROOT",
    "Dataset",
    "DatasetLocation",
    "canonical_name",
    "download_dataset",
    "check_headers",
    "find_dataset",
    "keras_cache_dir",
    "list_datasets",
    "load_dataset",
    "read_counts",
    "read_idx",
    "register_dataset",
]

DEBIAN_ROOT = Path("/usr/share/datasets")
"""Where Debian's ``dataset-*`` packages install their files."""

ENV_DATA = "EDGEBNN_DATA"
ENV_MIRROR = "EDGEBNN_DATA_MIRROR"
ENV_OFFLINE = "EDGEBNN_OFFLINE"

ProgressCallback = Callable[[str, int, Optional[int]], None]
"""``progress(file_name, bytes_done, bytes_total_or_None)``, called as a download proceeds."""

_DOWNLOAD_TIMEOUT = 60.0
_ONLINE_TIMEOUT = 3.0


# --------------------------------------------------------------------------
# Public data types
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset in memory: ``uint8`` NHWC images and ``int64`` labels.

    Example:
        >>> ds = load_dataset("mnist")  # doctest: +SKIP
        >>> ds.x_train.shape, ds.input_shape, ds.num_classes  # doctest: +SKIP
        ((60000, 28, 28, 1), (28, 28, 1), 10)
    """

    name: str
    x_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    x_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    class_names: tuple
    source: str

    @property
    def input_shape(self) -> tuple:
        """``(H, W, C)`` of one image."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __repr__(self):
        return (
            f"Dataset(name={self.name!r}, train={len(self.y_train)}, test={len(self.y_test)}, "
            f"input_shape={self.input_shape}, source={self.source!r})"
        )


@dataclass(frozen=True)
class DatasetLocation:
    """Where a dataset's files are, or every place they were looked for.

    ``path`` is the directory holding the files, ``files`` the files that
    make up the dataset, ``format`` one of ``idx.gz``, ``idx``, ``keras-npz``,
    ``cifar-python-dir``, ``cifar-python-tar``, ``svhn-mat``. ``searched`` lists
    the directories looked in, in order, up to the one where it was found;
    ``notes`` says why a place that held some of the files was passed over.
    """

    name: str
    found: bool
    path: Optional[str] = None
    files: tuple = ()
    size_bytes: int = 0
    format: Optional[str] = None
    searched: list = field(default_factory=list)
    origin: Optional[str] = None
    notes: tuple = ()
    searched_origins: tuple = field(default=(), repr=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        del d["searched_origins"]
        d["files"] = list(self.files)
        d["notes"] = list(self.notes)
        return d


# --------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------

DATASETS = {}
"""Canonical name -> dataset description (an instance of the registered class)."""

_ALIASES = {}


def register_dataset(name: str, *, aliases=()):
    """Class decorator adding a dataset description to :data:`DATASETS`.

    Example:
        >>> @register_dataset("mnist", aliases=("MNIST",))  # doctest: +SKIP
        ... class _Mnist(_IdxDataset): ...
    """

    def decorator(cls):
        if name in DATASETS:
            raise ValueError(f"dataset '{name}' is registered twice")
        spec = cls()
        spec.name = name
        DATASETS[name] = spec
        for alias in aliases:
            _ALIASES[alias.lower()] = name
        return cls

    return decorator


def list_datasets() -> list:
    """Return the canonical names of the known datasets, in registry order."""
    return list(DATASETS)


def canonical_name(name: str) -> str:
    """Map a dataset name or alias (``fashion-mnist``, ``CIFAR-10``) to its canonical name.

    Raises:
        DatasetError: the name is unknown; the message lists the known names.
    """
    key = str(name).strip().lower()
    for candidate in (key, key.replace("-", "_")):
        if candidate in DATASETS:
            return candidate
        if candidate in _ALIASES:
            return _ALIASES[candidate]
    aliases = ", ".join(f"{a} -> {c}" for a, c in sorted(_ALIASES.items()))
    raise DatasetError(
        f"unknown dataset '{name}'; known datasets: {', '.join(DATASETS)} (aliases: {aliases})"
    )


def _spec(name):
    return DATASETS[canonical_name(name)]


# --------------------------------------------------------------------------
# Search
# --------------------------------------------------------------------------


def keras_cache_dir() -> Path:
    """Keras's dataset cache: ``$KERAS_HOME/datasets`` or ``~/.keras/datasets``."""
    base = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(base) / "datasets"


def _roots(data_dir):
    """The search roots in order: (path, origin, explicit)."""
    roots = []
    if data_dir is not None:
        roots.append((Path(data_dir).expanduser(), "data_dir", True))
    for part in (os.environ.get(ENV_DATA) or "").split(os.pathsep):
        if part.strip():
            roots.append((Path(part.strip()).expanduser(), f"${ENV_DATA}", True))
    roots.append((keras_cache_dir(), "Keras cache", False))
    roots.append((Path(DEBIAN_ROOT), "Debian datasets", False))
    return roots


def _ends_with(path: Path, folder: str) -> bool:
    parts = Path(folder).parts
    return tuple(path.parts[-len(parts):]) == parts


def _candidates(spec, root: Path, explicit: bool):
    """Directories to probe under ``root``, each with the layouts allowed there."""
    out = [(root / folder, None) for folder in spec.folders]
    # The root itself: every layout if it is named after this dataset, or is
    # an explicit directory not named after another dataset; otherwise only
    # the layouts whose file names say which dataset they are.
    own = any(_ends_with(root, f) for f in spec.folders)
    other = any(
        _ends_with(root, f) for s in DATASETS.values() if s is not spec for f in s.folders
    )
    if own or (explicit and not other):
        out.append((root, None))
    else:
        unique = tuple(layout.format for layout in spec.layouts if layout.unique)
        if unique:
            out.append((root, unique))
    return out


def _locate(spec, data_dir):
    """Return (DatasetLocation, _Match or None)."""
    searched, origins, notes, seen = [], [], [], set()
    for root, origin, explicit in _roots(data_dir):
        for directory, formats in _candidates(spec, root, explicit):
            key = (str(directory), formats)
            if key in seen:
                continue
            seen.add(key)
            searched.append(str(directory))
            origins.append(origin)
            if not directory.is_dir():
                continue
            match, why = spec.probe(directory, formats)
            notes.extend(why)
            if match is not None:
                files = tuple(str(p) for p in match.files.values())
                size = sum(os.path.getsize(p) for p in files)
                loc = DatasetLocation(
                    name=spec.name,
                    found=True,
                    path=str(directory),
                    files=files,
                    size_bytes=size,
                    format=match.format,
                    searched=searched,
                    origin=origin,
                    notes=tuple(notes),
                    searched_origins=tuple(origins),
                )
                return loc, match
    loc = DatasetLocation(
        name=spec.name,
        found=False,
        searched=searched,
        notes=tuple(notes),
        searched_origins=tuple(origins),
    )
    return loc, None


def find_dataset(name: str, *, data_dir=None) -> DatasetLocation:
    """Look for a dataset's files without reading or downloading them.

    Only the presence of a complete set of file names is checked: a corrupt
    file is reported by :func:`load_dataset`.

    Example:
        >>> loc = find_dataset("fashion-mnist", data_dir="../shared/data")  # doctest: +SKIP
        >>> loc.found, loc.format, loc.path  # doctest: +SKIP
        (True, 'idx.gz', '../shared/data/fashion-mnist')

    Raises:
        DatasetError: the name is unknown.
    """
    return _locate(_spec(name), data_dir)[0]


def read_counts(location: DatasetLocation) -> tuple:
    """Return ``(n_train, n_test)`` from file headers, or None where that is not cheap.

    IDX headers, the label arrays of a Keras ``.npz`` and the variable headers
    of SVHN's ``.mat`` files are read; CIFAR-10 pickles would have to be
    decoded in full (and its tarball decompressed), so they give ``(None, None)``.

    Raises:
        DatasetError: a header is unreadable (the message names the file).
    """
    if not location.found:
        return (None, None)
    spec = _spec(location.name)
    for layout in spec.layouts:
        match, _ = spec.probe(Path(location.path), (layout.format,))
        if match is not None and match.format == location.format:
            return spec.counts(match)
    return (None, None)  # the files went away since the location was found


def check_headers(location: DatasetLocation) -> list:
    """Cheap checks of a found dataset's files, without decoding them: the problems found.

    For IDX sets: every file's magic number and dimensions, the image size,
    images and labels pairing up, and each file's length against its header
    (for ``.gz`` files, the uncompressed length the gzip trailer records).
    Other formats are checked as far as :func:`read_counts` reads them.

    Example:
        >>> check_headers(find_dataset("mnist"))  # doctest: +SKIP
        []

    Returns:
        one message per problem (each names the file); empty when nothing is wrong.
    """
    if not location.found:
        return []
    spec = _spec(location.name)
    for layout in spec.layouts:
        match, _ = spec.probe(Path(location.path), (layout.format,))
        if match is not None and match.format == location.format:
            return spec.check(match)
    return [f"{location.path}: the files went away while they were being listed"]


def _not_found_message(spec, loc, download_note):
    lines = [f"dataset '{spec.name}' was not found. Looked in:"]
    origins = loc.searched_origins or ("",) * len(loc.searched)
    last = None
    for directory, origin in zip(loc.searched, origins):
        if origin != last:
            lines.append(f"  {origin}:")
            last = origin
        lines.append(f"    {directory}")
    lines.append(f"Expected there: {spec.expected()}.")
    lines += [f"Passed over: {n}" for n in loc.notes]
    if download_note:
        lines.append(download_note)
    lines.append(
        f"Put the files in one of those places, set ${ENV_DATA}, pass data_dir (--data-dir), "
        "or allow the download."
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Loading and downloading
# --------------------------------------------------------------------------


def load_dataset(name: str, *, data_dir=None, download=None, progress=None) -> Dataset:
    """Find (or download) and read a dataset.

    Images come back as ``uint8`` NHWC arrays exactly as stored (no scaling),
    labels as ``int64`` in ``0..9`` (SVHN's label 10 for the digit 0 becomes 0).
    Every file is checked: magic numbers, shapes, lengths and that images and
    labels pair up; nothing is silently shortened.

    Example:
        >>> ds = load_dataset("mnist", data_dir="../shared/data", download=False)  # doctest: +SKIP
        >>> ds.x_train.shape, ds.y_train.dtype  # doctest: +SKIP
        ((60000, 28, 28, 1), dtype('int64'))

    Args:
        name: ``mnist``, ``fashion_mnist`` (or ``fashion-mnist``), ``cifar10``, ``svhn``.
        data_dir: a directory searched before the standard places.
        download: True to download when not found, False never to, None to
            download only when the host can be reached (and ``$EDGEBNN_OFFLINE``
            is not set).
        progress: ``progress(file_name, bytes_done, bytes_total_or_None)``,
            called while downloading; the library itself prints nothing.

    Returns:
        A :class:`Dataset`.

    Raises:
        DatasetError: unknown name; not found (the message lists every place
            searched and the file names expected there); a download failed;
            a file is truncated or corrupt (the message names it).
        MissingDependencyError: SVHN's ``.mat`` files need scipy.
    """
    spec = _spec(name)
    loc, match = _locate(spec, data_dir)
    if match is None:
        loc, match = _download_if_allowed(spec, loc, data_dir, download, progress)
    x_train, y_train, x_test, y_test = spec.read(match)
    single = len(match.files) == 1
    return Dataset(
        name=spec.name,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        class_names=tuple(spec.class_names),
        source=str(next(iter(match.files.values()))) if single else str(match.directory),
    )


def download_dataset(name: str, *, data_dir=None, progress=None) -> DatasetLocation:
    """Download a dataset into the Keras cache unless it is already found.

    Returns:
        The dataset's :class:`DatasetLocation` after the download.

    Raises:
        DatasetError: the download failed (every URL tried is named).
    """
    spec = _spec(name)
    loc, match = _locate(spec, data_dir)
    if match is None:
        loc, match = _download_if_allowed(spec, loc, data_dir, True, progress)
    return loc


def _download_if_allowed(spec, loc, data_dir, download, progress):
    if download is False:
        raise DatasetError(_not_found_message(spec, loc, "Download: disabled (download=False)."))
    if download is None:
        if os.environ.get(ENV_OFFLINE, "").strip() not in ("", "0"):
            raise DatasetError(
                _not_found_message(spec, loc, f"Download: skipped, ${ENV_OFFLINE} is set.")
            )
        url = _remote_urls(spec.remotes[0])[0][0]
        ok, why = _reachable(url)
        if not ok:
            raise DatasetError(_not_found_message(spec, loc, f"Download: skipped, offline: {why}."))
    cache = keras_cache_dir()
    try:
        spec.fetch(cache, progress)
    except DatasetError as exc:
        raise DatasetError(_not_found_message(spec, loc, f"Download failed: {exc}")) from exc
    loc, match = _locate(spec, data_dir)
    if match is None:  # pragma: no cover - fetch() checks what it wrote
        raise DatasetError(
            _not_found_message(spec, loc, f"Download into {cache} did not produce the files.")
        )
    return loc, match


def _reachable(url, timeout=_ONLINE_TIMEOUT):
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


# --------------------------------------------------------------------------
# Dataset descriptions
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """A set of files that together hold a dataset.

    ``roles`` maps a role to the accepted file names, preferred first.
    ``unique`` says the file names identify the dataset on their own.
    """

    format: str
    roles: dict
    unique: bool
    optional: tuple = ()
    describe: str = ""


@dataclass(frozen=True)
class _Match:
    format: str
    directory: Path
    files: dict  # role -> Path


class _DatasetSpec:
    """What a dataset looks like on disk and how to read it."""

    name = ""
    class_names = ()
    image_shape = ()
    folders = ()
    layouts = ()
    remotes = ()
    download_folder = ""

    def probe(self, directory: Path, formats=None):
        """Return (match or None, notes about incomplete file sets)."""
        notes = []
        for layout in self.layouts:
            if formats is not None and layout.format not in formats:
                continue
            files, missing = {}, []
            for role, names in layout.roles.items():
                path = next((directory / n for n in names if (directory / n).is_file()), None)
                if path is None:
                    if role not in layout.optional:
                        missing.append(names[0])
                else:
                    files[role] = path
            required = [r for r in layout.roles if r not in layout.optional]
            if not missing:
                return _Match(self.match_format(layout, files), directory, files), notes
            if any(r in files for r in required):
                notes.append(
                    f"{directory} has an incomplete {layout.format} set: missing {', '.join(missing)}"
                )
        return None, notes

    def match_format(self, layout, files):
        return layout.format

    def expected(self) -> str:
        parts = []
        for layout in self.layouts:
            names = layout.describe or ", ".join(
                n[0] for role, n in layout.roles.items() if role not in layout.optional
            )
            parts.append(f"{names} ({layout.format})")
        return " or ".join(parts)

    def fetch(self, cache: Path, progress):
        """Download whatever is missing into ``cache`` (the Keras cache)."""
        folder = cache / self.download_folder if self.download_folder else cache
        for remote in self.remotes:
            dest = folder / remote.filename
            if not dest.is_file():
                _download_file(remote, dest, progress)

    def read(self, match):  # pragma: no cover - abstract
        raise NotImplementedError

    def counts(self, match):
        return (None, None)

    def check(self, match) -> list:
        """Cheap checks (see :func:`check_headers`); by default the headers :meth:`counts` reads."""
        try:
            self.counts(match)
        except DatasetError as exc:
            return [str(exc)]
        return []


# ---- IDX (MNIST, Fashion-MNIST) -------------------------------------------


#: The largest IDX payload :func:`read_idx` accepts, in bytes. MNIST's
#: training images are 47 MB; a header declaring more than this is refused
#: before anything is allocated or decompressed.
MAX_IDX_BYTES = 1 << 30
#: Trailing bytes past the declared payload are counted up to this many;
#: beyond it the message says "at least" (a decompression bomb is not inflated).
_TRAILING_COUNT_LIMIT = 64 << 20
_CHUNK = 1 << 20


@contextlib.contextmanager
def _open_idx(path: Path):
    """Open an IDX file for streaming, decompressing it on the fly when it is gzip."""
    try:
        with open(path, "rb") as fh:
            gz = fh.read(2) == b"\x1f\x8b"
        fh = gzip.open(path, "rb") if gz else open(path, "rb")
    except OSError as exc:
        raise DatasetError(f"{path}: cannot open the IDX file ({exc.strerror or exc})") from exc
    with fh:
        try:
            yield fh
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise DatasetError(
                f"{path} is a truncated or corrupt gzip file ({exc}); "
                "expected a complete gzip stream: delete it and fetch it again"
            ) from exc
        except OSError as exc:
            raise DatasetError(f"{path}: cannot read the IDX file ({exc.strerror or exc})") from exc


def _read_exactly(fh, n: int) -> bytes:
    parts, left = [], n
    while left:
        part = fh.read(min(left, _CHUNK))
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def _read_into(fh, out: np.ndarray) -> int:
    """Fill ``out`` (uint8) from ``fh`` in chunks; return how many bytes were read."""
    view, done = memoryview(out).cast("B"), 0
    while done < len(view):
        n = fh.readinto(view[done:done + _CHUNK])
        if not n:
            break
        done += n
    return done


def _count_rest(fh) -> tuple:
    """``(bytes left, True if there may be more than counted)``, reading at most the limit."""
    count = 0
    while count < _TRAILING_COUNT_LIMIT:
        part = fh.read(_CHUNK)
        if not part:
            return count, False
        count += len(part)
    return count, bool(fh.read(1))


def _idx_dims(header: bytes, path, ndim: int) -> tuple:
    want = 0x800 | ndim
    kind = "image" if ndim == 3 else "label" if ndim == 1 else f"{ndim}-d"
    if len(header) < 4:
        raise DatasetError(
            f"{path} is {len(header)} bytes long; expected an IDX {kind} file starting "
            f"with the magic number 0x{want:08x}"
        )
    (magic,) = struct.unpack(">I", header[:4])
    if magic != want:
        raise DatasetError(
            f"{path}: bad magic number 0x{magic:08x}; expected 0x{want:08x} "
            f"(IDX, unsigned bytes, {ndim} dimension{'s' if ndim > 1 else ''}) for an {kind} file"
        )
    need = 4 + 4 * ndim
    if len(header) < need:
        raise DatasetError(
            f"{path} is truncated in its header: expected {need} bytes of magic and "
            f"dimensions, found {len(header)}"
        )
    return struct.unpack(f">{ndim}I", header[4:need])


def read_idx(path, *, ndim: int, max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    """Read an IDX file of unsigned bytes (gzip-compressed or not).

    The file is a big-endian magic number ``0x000008NN`` (``NN`` = ``ndim``),
    ``ndim`` big-endian uint32 dimensions, then exactly ``prod(dims)`` bytes.
    The header is read first; the payload is then decompressed in chunks
    straight into an array of the declared size (at most ``max_bytes``), so
    a small file that inflates to gigabytes costs no more memory than its
    declared payload.

    Example:
        >>> read_idx("mnist/t10k-labels-idx1-ubyte.gz", ndim=1).shape  # doctest: +SKIP
        (10000,)

    Raises:
        DatasetError: truncated gzip, bad magic, short header, a declared
            payload above ``max_bytes``, or a payload whose length is not the
            product of the dimensions (the message names the file and gives
            both lengths).
    """
    path = Path(path)
    need = 4 + 4 * ndim
    with _open_idx(path) as fh:
        dims = _idx_dims(_read_exactly(fh, need), path, ndim)
        expected = int(np.prod(dims, dtype=np.int64))
        shape = "x".join(str(d) for d in dims)
        if expected > max_bytes:
            raise DatasetError(
                f"{path}: its header says {shape} = {expected} bytes of data, more than the "
                f"limit of {max_bytes} bytes for an IDX file; expected a dataset of at most that size"
            )
        data = np.empty(expected, dtype=np.uint8)
        found = _read_into(fh, data)
        if found < expected:
            raise DatasetError(
                f"{path} is truncated: its header says {shape} = {expected} bytes of data, "
                f"found {found}"
            )
        extra, more = _count_rest(fh)
    if extra:
        trailing = f"at least {extra}" if more else str(extra)
        raise DatasetError(
            f"{path} is corrupt: its header says {shape} = {expected} bytes of data, "
            f"found {'more than ' if more else ''}{expected + extra} ({trailing} trailing bytes)"
        )
    return data.reshape(dims)


def _peek_idx(path: Path, ndim: int) -> tuple:
    need = 4 + 4 * ndim
    try:
        with open(path, "rb") as fh:
            gz = fh.read(2) == b"\x1f\x8b"
        opener = gzip.open if gz else open
        with opener(path, "rb") as fh:
            header = fh.read(need)
    except (EOFError, OSError, zlib.error) as exc:
        raise DatasetError(f"{path}: cannot read the IDX header ({exc})") from exc
    return _idx_dims(header, path, ndim)


def _idx_length_problem(path: Path, dims, ndim: int):
    """A message if the file's length does not match its header, else None (cheap: stat, trailer)."""
    want = 4 + 4 * ndim + int(np.prod(dims, dtype=np.int64))
    size = path.stat().st_size
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
        if not gz:
            if size != want:
                return (f"{path} is {'truncated' if size < want else 'corrupt'}: its header says "
                        f"{want} bytes in all, the file has {size}")
            return None
        if size < 18:
            return f"{path} is a truncated gzip file ({size} bytes)"
        fh.seek(size - 4)
        (isize,) = struct.unpack("<I", fh.read(4))
    if isize != want % (1 << 32):
        return (f"{path} is a truncated or corrupt gzip file: its IDX header says {want} bytes "
                f"uncompressed, its gzip trailer says {isize}")
    return None


def _check_split(x, y, x_file, y_file, image_hw, split):
    if tuple(x.shape[1:3]) != tuple(image_hw):
        raise DatasetError(
            f"{x_file}: expected {image_hw[0]}x{image_hw[1]} images, "
            f"found {x.shape[1]}x{x.shape[2]}"
        )
    if len(x) != len(y):
        raise DatasetError(
            f"{split} images and labels do not pair up: {x_file} holds {len(x)} images "
            f"but {y_file} holds {len(y)} labels"
        )
    if len(y) and (int(y.min()) < 0 or int(y.max()) > 9):
        raise DatasetError(
            f"{y_file}: expected labels 0..9, found {int(y.min())}..{int(y.max())}"
        )


def _idx_roles():
    def names(stem, idx):
        return (f"{stem}-{idx}-ubyte.gz", f"{stem}-{idx}-ubyte", f"{stem}.{idx}-ubyte")

    return {
        "train_images": names("train-images", "idx3"),
        "train_labels": names("train-labels", "idx1"),
        "test_images": names("t10k-images", "idx3"),
        "test_labels": names("t10k-labels", "idx1"),
    }


_IDX_DESCRIBE = (
    "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
    "t10k-labels-idx1-ubyte.gz (each also accepted without .gz)"
)


class _IdxDataset(_DatasetSpec):
    image_shape = (28, 28, 1)

    def match_format(self, layout, files):
        if layout.format != "idx":
            return layout.format
        gz = [p.name.endswith(".gz") for p in files.values()]
        return "idx.gz" if all(gz) else "idx" if not any(gz) else "idx (partly gzip)"

    def read(self, match):
        if match.format == "keras-npz":
            return _read_mnist_npz(match.files["npz"], self.image_shape[:2])
        f = match.files
        out = []
        for split in ("train", "test"):
            x = read_idx(f[f"{split}_images"], ndim=3)
            y = read_idx(f[f"{split}_labels"], ndim=1)
            _check_split(x, y, f[f"{split}_images"], f[f"{split}_labels"], self.image_shape[:2], split)
            out += [x[..., np.newaxis], y.astype(np.int64)]
        return tuple(out)

    def counts(self, match):
        if match.format == "keras-npz":
            path = match.files["npz"]
            try:
                with np.load(path, allow_pickle=False) as npz:
                    return (len(npz["y_train"]), len(npz["y_test"]))
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
                raise DatasetError(f"{path}: cannot read the label arrays ({exc})") from exc
        n_train = _peek_idx(match.files["train_images"], 3)[0]
        n_test = _peek_idx(match.files["test_images"], 3)[0]
        return (int(n_train), int(n_test))

    def check(self, match):
        if match.format == "keras-npz":
            return super().check(match)
        problems = []
        for split in ("train", "test"):
            dims = {}
            for role, ndim in (("images", 3), ("labels", 1)):
                path = match.files[f"{split}_{role}"]
                try:
                    dims[role] = _peek_idx(path, ndim)
                    why = _idx_length_problem(path, dims[role], ndim)
                except DatasetError as exc:
                    problems.append(str(exc))
                    continue
                except OSError as exc:
                    problems.append(f"{path}: cannot read it ({exc.strerror or exc})")
                    continue
                if why:
                    problems.append(why)
            images, labels = dims.get("images"), dims.get("labels")
            if images is not None and tuple(images[1:]) != tuple(self.image_shape[:2]):
                problems.append(f"{match.files[f'{split}_images']}: expected {self.image_shape[0]}x"
                                f"{self.image_shape[1]} images, found {images[1]}x{images[2]}")
            if images is not None and labels is not None and images[0] != labels[0]:
                problems.append(f"{split} images and labels do not pair up: "
                                f"{match.files[f'{split}_images']} holds {images[0]} images but "
                                f"{match.files[f'{split}_labels']} holds {labels[0]} labels")
        return problems


def _read_mnist_npz(path, image_hw):
    keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in keys if k not in npz.files]
            if missing:
                raise DatasetError(
                    f"{path}: expected arrays {', '.join(keys)}, found {', '.join(npz.files) or 'none'}"
                )
            arrays = {k: npz[k] for k in keys}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path} is not a readable .npz archive ({exc})") from exc
    out = []
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim == 4 and x.shape[-1] == 1:
            x = x[..., 0]
        if x.dtype != np.uint8 or x.ndim != 3 or y.ndim != 1:
            raise DatasetError(
                f"{path}: expected x_{split} uint8 (N,{image_hw[0]},{image_hw[1]}) and y_{split} (N,), "
                f"found x_{split} {x.dtype} {x.shape} and y_{split} {y.dtype} {y.shape}"
            )
        _check_split(x, y, f"{path}[x_{split}]", f"{path}[y_{split}]", image_hw, split)
        out += [np.ascontiguousarray(x)[..., np.newaxis], y.astype(np.int64)]
    return tuple(out)


@register_dataset("mnist")
class _Mnist(_IdxDataset):
    class_names = tuple(str(d) for d in range(10))
    folders = ("mnist", "MNIST/raw")
    layouts = (
        _Layout("idx", _idx_roles(), unique=False, describe=_IDX_DESCRIBE),
        _Layout("keras-npz", {"npz": ("mnist.npz",)}, unique=True),
    )
    remotes = (
        _Remote(
            "mnist.npz",
            (
                (
                    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz",
                    "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
                ),
            ),
        ),
    )


_FASHION_ZALANDO = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_FASHION_KERAS = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_FASHION_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}


@register_dataset("fashion_mnist", aliases=("fashion-mnist", "fashionmnist"))
class _FashionMnist(_IdxDataset):
    class_names = (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    )  # fmt: skip
    folders = ("fashion-mnist", "fashion_mnist", "FashionMNIST/raw")
    layouts = (_Layout("idx", _idx_roles(), unique=False, describe=_IDX_DESCRIBE),)
    download_folder = "fashion-mnist"  # where Keras caches it
    remotes = tuple(
        _Remote(name, ((_FASHION_ZALANDO + name, md5), (_FASHION_KERAS + name, None)))
        for name, md5 in _FASHION_MD5.items()
    )


# ---- CIFAR-10 ---------------------------------------------------------------

_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_MEMBERS = _CIFAR_TRAIN + ("test_batch", "batches.meta")

# The globals a CIFAR-10 batch pickle may name: numpy's array reconstruction
# (numpy 1.x and 2.x module names) and the bytes codec of protocol-2 pickles.
_PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    ("builtins", "bytearray"),
}


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that builds only dicts, lists, strings, numbers and numpy arrays."""

    def find_class(self, module, name):
        if (module, name) not in _PICKLE_ALLOWED:
            raise pickle.UnpicklingError(
                f"refers to {module}.{name}; a CIFAR-10 batch holds only dicts, lists and numpy arrays"
            )
        return super().find_class(module, name)


def _unpickle(raw: bytes, where: str) -> dict:
    try:
        obj = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:  # noqa: BLE001 - pickle raises many types; re-raised with cause
        raise DatasetError(
            f"{where} is not a readable CIFAR-10 pickle ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(obj, dict):
        raise DatasetError(f"{where}: expected a pickled dict, found {type(obj).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _cifar_batch(raw: bytes, where: str):
    d = _unpickle(raw, where)
    if "data" not in d or "labels" not in d:
        raise DatasetError(
            f"{where}: expected keys 'data' and 'labels', found {', '.join(map(str, d)) or 'none'}"
        )
    data, labels = d["data"], d["labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        found = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DatasetError(f"{where}: expected 'data' uint8 of shape (N, 3072), found {found}")
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != len(data):
        raise DatasetError(
            f"{where}: {len(data)} images but {labels.size} labels (shape {labels.shape})"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DatasetError(f"{where}: expected labels 0..9, found {labels.min()}..{labels.max()}")
    # Each row is 1024 red, 1024 green, 1024 blue values, each plane row-major.
    images = data.reshape(len(data), 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.int64)


def _cifar_raw_from_tar(path: Path) -> dict:
    raw = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in _CIFAR_MEMBERS and base not in raw:
                    raw[base] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DatasetError(
            f"{path} is not a readable CIFAR-10 tarball ({type(exc).__name__}: {exc})"
        ) from exc
    missing = [m for m in _CIFAR_MEMBERS[:-1] if m not in raw]
    if missing:
        raise DatasetError(
            f"{path}: expected members cifar-10-batches-py/{{{', '.join(_CIFAR_MEMBERS[:-1])}}}, "
            f"missing {', '.join(missing)}"
        )
    return raw


@register_dataset("cifar10", aliases=("cifar-10", "cifar_10"))
class _Cifar10(_DatasetSpec):
    class_names = (
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck",
    )  # fmt: skip
    image_shape = (32, 32, 3)
    folders = (
        "cifar-10-batches-py",
        "cifar10/cifar-10-batches-py",
        "cifar-10/cifar-10-batches-py",
        "cifar-10-batches-py-target/cifar-10-batches-py",  # Keras 3
        "cifar10",
        "cifar-10",
    )
    layouts = (
        _Layout(
            "cifar-python-dir",
            {m: (m,) for m in _CIFAR_MEMBERS},
            unique=True,
            optional=("batches.meta",),
        ),
        _Layout(
            "cifar-python-tar",
            {"tar": ("cifar-10-python.tar.gz", "cifar-10-batches-py.tar.gz")},
            unique=True,
            describe="cifar-10-python.tar.gz or cifar-10-batches-py.tar.gz",
        ),
    )
    # Keras's layout: the tarball as cifar-10-batches-py.tar.gz, extracted beside it.
    remotes = (
        _Remote(
            "cifar-10-batches-py.tar.gz",
            (("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),),
        ),
    )

    def read(self, match):
        if match.format == "cifar-python-tar":
            tar = match.files["tar"]
            raw = _cifar_raw_from_tar(tar)
            where = {m: f"{tar}:{m}" for m in raw}
        else:
            raw, where = {}, {}
            for m in _CIFAR_MEMBERS[:-1]:
                raw[m] = match.files[m].read_bytes()
                where[m] = str(match.files[m])
        train = [_cifar_batch(raw[m], where[m]) for m in _CIFAR_TRAIN]
        x_test, y_test = _cifar_batch(raw["test_batch"], where["test_batch"])
        x_train = np.concatenate([x for x, _ in train])
        y_train = np.concatenate([y for _, y in train])
        return x_train, y_train, x_test, y_test

    def fetch(self, cache: Path, progress):
        tar = cache / self.remotes[0].filename
        if not tar.is_file():
            _download_file(self.remotes[0], tar, progress)
        raw = _cifar_raw_from_tar(tar)
        for member, data in raw.items():  # refuse to extract something unreadable
            if member != "batches.meta":
                _cifar_batch(data, f"{tar}:{member}")
        with atomic_directory(cache / "cifar-10-batches-py", replace=True) as tmp:
            for member, data in raw.items():
                (tmp / member).write_bytes(data)


# ---- SVHN ---------------------------------------------------------------------


def _scipy_io():
    try:
        import scipy.io
    except ImportError as exc:
        raise MissingDependencyError(
            "reading SVHN's .mat files needs scipy, which is not installed: "
            "pip install scipy (or pip install 'edgebnn[train]')"
        ) from exc
    return scipy.io


def _read_svhn_mat(path: Path):
    sio = _scipy_io()
    try:
        mat = sio.loadmat(str(path), variable_names=("X", "y"))
    except NotImplementedError as exc:  # MATLAB v7.3 files are HDF5
        raise DatasetError(
            f"{path} is a MATLAB v7.3 (HDF5) file; expected the MATLAB v5 .mat files SVHN publishes"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - scipy raises many types; re-raised with cause
        raise DatasetError(
            f"{path} is not a readable MATLAB v5 .mat file ({type(exc).__name__}: {exc})"
        ) from exc
    if "X" not in mat or "y" not in mat:
        found = ", ".join(k for k in mat if not k.startswith("__")) or "none"
        raise DatasetError(f"{path}: expected variables X and y, found {found}")
    x, y = mat["X"], mat["y"]
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise DatasetError(f"{path}: expected X uint8 of shape (32, 32, 3, N), found {x.dtype} {x.shape}")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != x.shape[3]:
        raise DatasetError(
            f"{path}: X holds {x.shape[3]} images but y has shape {y.shape}; expected ({x.shape[3]}, 1)"
        )
    y = y.astype(np.int64)
    if y.size and (y.min() < 1 or y.max() > 10):
        raise DatasetError(
            f"{path}: expected labels 1..10 (10 for the digit 0), found {y.min()}..{y.max()}"
        )
    images = np.ascontiguousarray(x.transpose(3, 0, 1, 2))
    return images, np.where(y == 10, 0, y)


@register_dataset("svhn")
class _Svhn(_DatasetSpec):
    class_names = tuple(str(d) for d in range(10))
    image_shape = (32, 32, 3)
    folders = ("svhn", "SVHN", "housenumbers")
    layouts = (
        _Layout("svhn-mat", {"train": ("train_32x32.mat",), "test": ("test_32x32.mat",)}, unique=True),
    )
    download_folder = "svhn"
    remotes = (
        _Remote(
            "train_32x32.mat",
            (("http://ufldl.stanford.edu/housenumbers/train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373"),),
        ),
        _Remote(
            "test_32x32.mat",
            (("http://ufldl.stanford.edu/housenumbers/test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3"),),
        ),
    )

    def read(self, match):
        x_train, y_train = _read_svhn_mat(match.files["train"])
        x_test, y_test = _read_svhn_mat(match.files["test"])
        return x_train, y_train, x_test, y_test

    def counts(self, match):
        try:
            sio = _scipy_io()
        except MissingDependencyError:
            return (None, None)
        out = []
        for role in ("train", "test"):
            path = match.files[role]
            try:
                shapes = {name: shape for name, shape, _ in sio.whosmat(str(path))}
            except Exception as exc:  # noqa: BLE001 - scipy raises many types; re-raised with cause
                raise DatasetError(f"{path}: cannot read the .mat headers ({exc})") from exc
            shape = shapes.get("X")
            out.append(int(shape[3]) if shape is not None and len(shape) == 4 else None)
        return tuple(out)

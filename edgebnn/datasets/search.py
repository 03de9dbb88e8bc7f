"""Search: where a dataset's files are on this machine, without reading them.

The roots, in order: ``data_dir`` (``--data-dir``), each directory of
``$EDGEBNN_DATA``, the Keras cache, Debian's ``/usr/share/datasets``. Under
each root a dataset's own folders are probed first, then the root itself
(see the package docstring of :mod:`edgebnn.datasets` for which file sets
are taken from a bare root).
"""

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from edgebnn.datasets.registry import DATASETS, _spec

DEBIAN_ROOT = Path("/usr/share/datasets")
"""Where Debian's ``dataset-*`` packages install their files."""

ENV_DATA = "EDGEBNN_DATA"


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
    file is reported by :func:`edgebnn.datasets.load_dataset`.

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

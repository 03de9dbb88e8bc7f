"""What a dataset looks like on disk: layouts of files, a match, and the description base class.

A dataset description (a :class:`_DatasetSpec` subclass, registered in
:mod:`edgebnn.datasets.registry`) lists its layouts: each a set of roles
(``train_images``, ``tar``...) with the file names accepted for each.
:meth:`_DatasetSpec.probe` finds a complete layout in a directory; the
format modules (:mod:`~edgebnn.datasets.idx`, :mod:`~edgebnn.datasets.cifar`,
:mod:`~edgebnn.datasets.svhn`) read the files of a match.
"""

from dataclasses import dataclass
from pathlib import Path

from edgebnn.datasets.download import _download_file
from edgebnn.errors import DatasetError


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
        """Cheap checks (see :func:`edgebnn.datasets.check_headers`); by default the headers :meth:`counts` reads."""
        try:
            self.counts(match)
        except DatasetError as exc:
            return [str(exc)]
        return []


def _check_split(x, y, x_file, y_file, image_hw, split):
    """Raise unless ``x`` holds ``image_hw`` images that pair up with labels ``y`` in 0..9."""
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

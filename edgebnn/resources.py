"""The files that ship with edgebnn, found in one place.

The C runtime, the firmware templates, the target files, the training
presets and the pretrained models are package data: in a checkout,
``edgebnn/data/runtime``, ``edgebnn/data/templates`` and
``edgebnn/data/targets`` are links to the top-level ``firmware/runtime``,
``firmware/templates`` and ``targets`` folders (the source of truth), and a
built wheel carries copies of them. Every module asks this one for a folder,
through :mod:`importlib.resources`, instead of walking up from its own file.

Example:
    >>> (runtime_dir() / "ebnn.h").is_file()
    True
    >>> sorted(p.stem for p in targets_dir().glob("*.toml"))[:2]
    ['arm64', 'cortex-m3']
"""

import functools
from importlib import resources
from pathlib import Path

from edgebnn.errors import EdgeBnnError

# folder under the package -> a file that must be there
_KNOWN = {
    "data/runtime": "ebnn.h",
    "data/templates": "common/main.c",
    "data/targets": "x86_64.toml",
    "presets": "smoke.yml",
    "pretrained": "index.json",
}


@functools.lru_cache(maxsize=None)
def package_dir(name: str) -> Path:
    """The folder ``name`` (a key of :data:`_KNOWN`) of the installed package.

    Raises:
        EdgeBnnError: the folder or its marker file is missing (a broken
            install: the wheel was built without its package data).
    """
    if name not in _KNOWN:
        raise KeyError(f"unknown package folder {name!r}; known: {', '.join(sorted(_KNOWN))}")
    root = resources.files("edgebnn") / name
    marker = root / _KNOWN[name]
    if not marker.is_file():
        raise EdgeBnnError(
            f"edgebnn's package data is missing: expected {marker}; reinstall edgebnn "
            f"(a wheel must be built from a checkout where edgebnn/data/ links to firmware/ and targets/)"
        )
    # Installed packages and checkouts are plain folders; a zip import would
    # need resources.as_file, which the C toolchain cannot use anyway.
    return Path(str(root))


def runtime_dir() -> Path:
    """``firmware/runtime``: the C runtime's sources and headers."""
    return package_dir("data/runtime")


def templates_dir() -> Path:
    """``firmware/templates``: firmware and host program templates, one folder each."""
    return package_dir("data/templates")


def targets_dir() -> Path:
    """``targets``: the shipped target files (``*.toml``)."""
    return package_dir("data/targets")


def presets_dir() -> Path:
    """``edgebnn/presets``: the training presets (``*.yml``)."""
    return package_dir("presets")


def pretrained_dir() -> Path:
    """``edgebnn/pretrained``: the shipped models and their index."""
    return package_dir("pretrained")

"""IDX files (MNIST, Fashion-MNIST): a header of magic number and dimensions, then raw bytes.

:func:`read_idx` reads one file, gzip-compressed or not, streaming the
payload into an array of the size its header declares. :class:`_IdxDataset`
describes the MNIST family: four IDX files, or Keras's ``mnist.npz``
(:mod:`edgebnn.datasets.npz`).
"""

import contextlib
import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from edgebnn.datasets.npz import _npz_counts, _read_mnist_npz
from edgebnn.datasets.spec import _check_split, _DatasetSpec
from edgebnn.errors import DatasetError

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
    """The MNIST family: 28x28 grey images in four IDX files, or in Keras's ``mnist.npz``."""

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
            return _npz_counts(match.files["npz"])
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

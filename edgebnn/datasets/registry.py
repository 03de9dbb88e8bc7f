"""The dataset registry: every known dataset's description, by canonical name and alias.

A description says where a dataset's files may sit (``folders``), which
file sets make it up (``layouts``), where to download it from (``remotes``)
and its class names; its base class (from the format modules) reads the
files. Registration order is the order :func:`list_datasets` reports.
"""

from edgebnn.datasets.cifar import _CIFAR_MEMBERS, _CifarPython
from edgebnn.datasets.download import _Remote
from edgebnn.datasets.idx import _IDX_DESCRIBE, _idx_roles, _IdxDataset
from edgebnn.datasets.spec import _Layout
from edgebnn.datasets.svhn import _SvhnMat
from edgebnn.errors import DatasetError

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


# ---- the datasets --------------------------------------------------------------


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


@register_dataset("cifar10", aliases=("cifar-10", "cifar_10"))
class _Cifar10(_CifarPython):
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



@register_dataset("svhn")
class _Svhn(_SvhnMat):
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

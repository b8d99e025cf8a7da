"""Fashion-MNIST from its four standard idx ``.gz`` files (offline).

Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017): 28×28 grey-scale images of
10 clothing classes, 60,000 training and 10,000 test images (the official
split). Debian ships the four files in the package ``dataset-fashion-mnist``
(``apt-get install dataset-fashion-mnist``), under
:data:`DEBIAN_FASHION_MNIST_ROOT`; :func:`load_fashion_mnist` reads them
from there by default, or from any ``root`` holding the same four files.

The idx format (LeCun's MNIST format): a big-endian header — two zero bytes,
a type code (``0x08``: unsigned bytes), the number of dimensions, then one
32-bit size per dimension — followed by the raw array.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .._checks import check_int

__all__ = [
    "DEBIAN_FASHION_MNIST_ROOT",
    "FASHION_MNIST_CLASSES",
    "FashionMNIST",
    "ImageSplit",
    "load_fashion_mnist",
    "read_idx",
]

#: Where ``apt-get install dataset-fashion-mnist`` puts the files.
DEBIAN_FASHION_MNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")

#: The class names, in label order.
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one idx file of unsigned bytes (gzip-compressed if its name ends in ``.gz``).

    Raises ``ValueError`` naming the file if the header is not that of an
    unsigned-byte idx array or the payload has the wrong length.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: expected an idx file of unsigned bytes (magic 0x0000 08 nd), got header {raw[:4].hex()}")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    if len(raw) - offset != int(np.prod(shape)):
        raise ValueError(f"{path}: expected {int(np.prod(shape))} data bytes for shape {shape}, got {len(raw) - offset}")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)


@dataclass
class ImageSplit:
    """Images ``[N, 1, 28, 28]`` scaled to ``[0, 1]`` and integer labels ``[N]``."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, n: int, *, seed: int = 0) -> "ImageSplit":
        """The first ``n`` images of a seeded permutation (``n`` at most ``len(self)``)."""
        n = check_int(n, "n")
        if n > len(self):
            raise ValueError(f"n: expected at most {len(self)} (the split's size), got {n}")
        idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n]
        return ImageSplit(self.images[idx], self.labels[idx])


@dataclass
class FashionMNIST:
    """The official training set cut into ``train`` and ``val`` (seeded), and the official ``test`` set."""

    train: ImageSplit
    val: ImageSplit
    test: ImageSplit
    classes: tuple[str, ...] = FASHION_MNIST_CLASSES


def _missing_message(root: Path, missing: list[str]) -> str:
    return (
        f"root: Fashion-MNIST files not found in {root} (missing {', '.join(missing)}); install them "
        f"with `apt-get install dataset-fashion-mnist` (files in {DEBIAN_FASHION_MNIST_ROOT}) or pass "
        f"root= a folder holding {', '.join(_FILES['train'] + _FILES['test'])}"
    )


def load_fashion_mnist(
    root: str | os.PathLike | None = None,
    *,
    val_size: int = 5000,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> FashionMNIST:
    """Load Fashion-MNIST with its official 60,000 / 10,000 split and a seeded validation split.

    Parameters
    ----------
    root : path, optional
        Folder holding the four idx ``.gz`` files; default
        :data:`DEBIAN_FASHION_MNIST_ROOT` (the Debian package's).
    val_size : int
        Images moved from the official training set to ``val`` (a seeded
        random choice, the same for every call with the same ``seed``);
        ``0`` keeps all 60,000 for training.
    seed : int
        Seed of the validation split.
    dtype : torch.dtype
        Floating dtype of the images (pixel values divided by 255).

    Returns
    -------
    FashionMNIST
        ``train`` (``60000 - val_size`` images), ``val``, ``test`` (10,000),
        each an :class:`ImageSplit` of ``[N, 1, 28, 28]`` images and ``[N]``
        int64 labels.

    Examples
    --------
    >>> data = load_fashion_mnist(val_size=5000)  # doctest: +SKIP
    >>> len(data.train), len(data.val), len(data.test)  # doctest: +SKIP
    (55000, 5000, 10000)
    """
    root = DEBIAN_FASHION_MNIST_ROOT if root is None else Path(root)
    val_size = check_int(val_size, "val_size", minimum=0)
    if val_size >= 60000:
        raise ValueError(f"val_size: expected an int in [0, 60000) (the training set has 60000 images), got {val_size}")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype: expected a floating torch.dtype, got {dtype!r}")
    missing = [name for pair in _FILES.values() for name in pair if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(_missing_message(root, missing))

    def split(kind: str, n: int) -> ImageSplit:
        images, labels = (read_idx(root / name) for name in _FILES[kind])
        if images.shape != (n, 28, 28) or labels.shape != (n,):
            raise ValueError(f"root: expected {n} images of 28x28 in the {kind} files, got {images.shape} and {labels.shape}")
        x = torch.from_numpy(images.copy()).to(dtype).div_(255.0).unsqueeze(1)  # [N, 1, 28, 28]
        return ImageSplit(x, torch.from_numpy(labels.astype(np.int64)))

    full, test = split("train", 60000), split("test", 10000)
    perm = torch.randperm(60000, generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = perm[:val_size].sort().values, perm[val_size:].sort().values
    train = ImageSplit(full.images[train_idx], full.labels[train_idx])
    val = ImageSplit(full.images[val_idx], full.labels[val_idx])
    return FashionMNIST(train, val, test)

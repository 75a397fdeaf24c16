"""Images for the CNN experiments: Fashion-MNIST (IDX files) and CIFAR-10 (python pickle batches).

Samples are ``[C, H, W]`` float32 in [0, 1] with an int label; per-channel standardisation
(docs/tasks.md) is the transform :class:`Standardize`, whose statistics come from the training split
(:func:`channel_stats`). Nothing is cached: parsing the raw files takes well under a second and
there is no other preprocessing.

Fashion-MNIST is looked for, in order, in ``root``, ``root/FashionMNIST/raw`` (torchvision's
layout), and, without a ``root``, ``$FASHION_MNIST_DIR`` and Debian's
``/usr/share/datasets/fashion-mnist`` (package ``dataset-fashion-mnist``); files may be gzipped.
CIFAR-10 reads ``root/cifar-10-batches-py/{data_batch_1..5, test_batch}``.

Examples:
    >>> ds = FashionMNIST(split="test")                     # doctest: +SKIP
    >>> x, y = ds[0]; tuple(x.shape)                         # doctest: +SKIP
    (1, 28, 28)
    >>> mean, std = channel_stats(FashionMNIST(split="train").data)   # doctest: +SKIP
    >>> ds = FashionMNIST(split="test", transform=Standardize(mean, std))   # doctest: +SKIP
"""

from __future__ import annotations

import gzip
import logging
import os
import pickle
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ._base import ArrayDataset, check_split
from ._download import download_and_extract, download_file
from .cache import cache_root

__all__ = [
    "read_idx",
    "channel_stats",
    "Standardize",
    "FashionMNIST",
    "CIFAR10",
    "FASHION_MNIST_CLASSES",
    "CIFAR10_CLASSES",
]

logger = logging.getLogger(__name__)

FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Union[str, os.PathLike]) -> np.ndarray:
    """Parse an IDX file (optionally gzipped): magic ``0 0 <type> <ndim>``, big-endian uint32 sizes, data.

    Returns:
        The array in native byte order.

    Raises:
        ValueError: for a missing file, a bad magic number or a truncated payload (the path is named).

    Examples:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "a.idx")
        >>> _ = open(p, "wb").write(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
        >>> read_idx(p).tolist()
        [7, 8, 9]
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"IDX file not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:  # EOFError: a truncated .gz
        raise ValueError(f"cannot read IDX file {path} ({exc or type(exc).__name__})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:4]!r})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"IDX file {path} is truncated in its header")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"IDX file {path} has {len(raw) - header} data bytes, expected {expected} for shape {dims}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def channel_stats(data: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of images ``[N, C, H, W]``."""
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 4:
        raise ValueError(f"data must have shape [N, C, H, W], got {data.shape}")
    return data.mean(axis=(0, 2, 3)), data.std(axis=(0, 2, 3))


class Standardize:
    """Transform ``x [C, H, W] -> (x - mean[c]) / std[c]`` (per-channel standardisation).

    Examples:
        >>> t = Standardize([0.5], [0.25])
        >>> t(torch.ones(1, 2, 2)).tolist()
        [[[2.0, 2.0], [2.0, 2.0]]]
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = torch.as_tensor(np.asarray(mean, dtype=np.float32)).view(-1, 1, 1)
        self.std = torch.as_tensor(np.asarray(std, dtype=np.float32)).view(-1, 1, 1)
        if (self.std <= 0).any():
            raise ValueError(f"std must be positive, got {self.std.flatten().tolist()}")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[0] != self.mean.shape[0]:
            raise ValueError(f"expected x of shape [{self.mean.shape[0]}, H, W], got {tuple(x.shape)}")
        return (x - self.mean) / self.std

    def __repr__(self) -> str:
        return f"Standardize(mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()})"


def _check_labels(labels: np.ndarray, n_classes: int, path: Path) -> None:
    """Refuse labels outside ``0 .. n_classes - 1`` (they would count as wrong answers without a word)."""
    labels = np.asarray(labels)
    bad = (labels < 0) | (labels >= n_classes)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{path}: label {labels[i].item()!r} of sample {i} is outside the {n_classes} classes "
                         f"(0..{n_classes - 1}); {int(bad.sum())} such label(s)")


def _find(folder: Path, stem: str) -> Optional[Path]:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


class FashionMNIST(ArrayDataset):
    """Fashion-MNIST as ``[1, 28, 28]`` float32 in [0, 1] with labels 0-9.

    Args:
        root: folder with the IDX files (or a torchvision root with ``FashionMNIST/raw``); default:
            ``$FASHION_MNIST_DIR``, ``/usr/share/datasets/fashion-mnist``, ``<cache>/FashionMNIST/raw``.
        split: ``"train"`` (60 000) or ``"test"`` (10 000).
        transform: e.g. :class:`Standardize`.
        download: fetch the four ``.gz`` files into ``<root or cache>/FashionMNIST/raw`` if missing.
        cache_dir: only used for the default download location.

    Shape:
        each sample ``x``: ``[1, 28, 28]``.
    """

    SPLITS = ("train", "test")
    _STEMS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}

    def __init__(self, root: Optional[Union[str, os.PathLike]] = None, split: str = "train",
                 transform: Optional[Callable] = None, download: bool = False, *,
                 cache_dir: Optional[Union[str, os.PathLike]] = None) -> None:
        super().__init__(transform)
        self.split = check_split(split, self.SPLITS)
        self.classes = FASHION_MNIST_CLASSES
        img_stem, lbl_stem = self._STEMS[self.split]
        if root is not None:
            candidates = [Path(root), Path(root) / "FashionMNIST" / "raw"]
        else:
            candidates = [Path(p) for p in (os.environ.get("FASHION_MNIST_DIR"),) if p]
            candidates += [Path("/usr/share/datasets/fashion-mnist"), cache_root(cache_dir) / "FashionMNIST" / "raw"]
        folder = next((c for c in candidates if _find(c, img_stem) and _find(c, lbl_stem)), None)
        if folder is None and download:
            folder = candidates[-1] if root is None else Path(root) / "FashionMNIST" / "raw"
            for stem in (img_stem, lbl_stem):  # checked against the published MD5 (_download.KNOWN_CHECKSUMS)
                download_file(FASHION_MNIST_URL + stem + ".gz", folder / (stem + ".gz"))
        if folder is None:
            raise ValueError(f"Fashion-MNIST files {img_stem}[.gz] / {lbl_stem}[.gz] not found in "
                             f"{[str(c) for c in candidates]} (pass download=True?)")
        self.root = folder
        images, labels = read_idx(_find(folder, img_stem)), read_idx(_find(folder, lbl_stem))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"inconsistent Fashion-MNIST files in {folder}: images {images.shape}, labels {labels.shape}")
        _check_labels(labels, len(self.classes), _find(folder, lbl_stem))
        self.data = (images.astype(np.float32) / 255.0)[:, None]
        self.targets = labels.astype(np.int64)


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that admits only what a CIFAR-10 python batch holds: NumPy arrays and dtypes,
    lists, dicts and bytes. Any other global (``os.system``, ``builtins.eval`` ...) is refused
    before it is looked up, so a crafted batch cannot run code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("_codecs", "encode"),  # how protocol 2 spells bytes
        *((mod, name) for mod in ("builtins", "__builtin__") for name in ("list", "dict", "bytes", "bytearray")),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not part of the CIFAR-10 batch format")
        return super().find_class(module, name)


def _load_batch(path: Path) -> dict:
    with open(path, "rb") as fh:
        batch = _BatchUnpickler(fh, encoding="bytes").load()
    if not isinstance(batch, dict):
        raise ValueError(f"holds a {type(batch).__name__}, not a dict")
    return batch


class CIFAR10(ArrayDataset):
    """CIFAR-10 from its python pickle batches as ``[3, 32, 32]`` float32 in [0, 1].

    The official batches are pickles; they are read with a restricted unpickler that admits only
    NumPy arrays, lists, dicts and bytes (what the format holds), so a crafted file cannot run code.
    Labels outside 0-9 are refused.

    Args:
        root: folder containing ``cifar-10-batches-py``; default ``<cache_dir>``.
        split: ``"train"`` (data_batch_1..5, 50 000) or ``"test"`` (test_batch, 10 000).
        transform: e.g. :class:`Standardize`.
        download: fetch and extract the official archive if the folder is missing.

    Shape:
        each sample ``x``: ``[3, 32, 32]``.
    """

    SPLITS = ("train", "test")

    def __init__(self, root: Optional[Union[str, os.PathLike]] = None, split: str = "train",
                 transform: Optional[Callable] = None, download: bool = False, *,
                 cache_dir: Optional[Union[str, os.PathLike]] = None) -> None:
        super().__init__(transform)
        self.split = check_split(split, self.SPLITS)
        self.classes = CIFAR10_CLASSES
        base = Path(root) if root is not None else cache_root(cache_dir)
        folder = base / "cifar-10-batches-py"
        if download and not folder.is_dir():
            download_and_extract(CIFAR10_URL, base)
        names: List[str] = [f"data_batch_{i}" for i in range(1, 6)] if self.split == "train" else ["test_batch"]
        xs, ys = [], []
        for name in names:
            path = folder / name
            if not path.is_file():
                raise ValueError(f"CIFAR-10 batch not found: {path} (pass download=True?)")
            try:
                batch = _load_batch(path)
                data = np.asarray(batch[b"data"], dtype=np.uint8)
                labels = np.asarray(batch[b"labels"], dtype=np.int64)
            except Exception as exc:
                raise ValueError(f"cannot read CIFAR-10 batch {path} ({type(exc).__name__}: {exc})") from None
            if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
                raise ValueError(f"CIFAR-10 batch {path} has data {data.shape} and {len(labels)} labels; "
                                 "expected [N, 3072] and N labels")
            _check_labels(labels, len(self.classes), path)
            xs.append(data.reshape(-1, 3, 32, 32))
            ys.append(labels)
        self.root = folder
        self.data = np.concatenate(xs).astype(np.float32) / 255.0
        self.targets = np.concatenate(ys)

"""Shared pieces of the datasets: split checking and an in-memory array dataset."""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["check_split", "ArrayDataset", "stratified_split_indices"]


def check_split(split: str, allowed: Sequence[str]) -> str:
    """Return ``split`` (``"validation"`` is accepted for ``"val"``) or raise a ``ValueError``."""
    if split == "validation" and "val" in allowed:
        split = "val"
    if split not in allowed:
        raise ValueError(f"unknown split {split!r}; expected one of {list(allowed)}")
    return split


def stratified_split_indices(
    labels: np.ndarray, fractions: Sequence[float], seed: int
) -> Tuple[np.ndarray, ...]:
    """Seeded random split of ``range(len(labels))`` into ``len(fractions)`` parts, class by class.

    Each class is shuffled and cut at ``round(cumsum(fractions) * count)``, so every part keeps
    the class proportions (up to rounding) and the parts are disjoint and cover every index.

    Args:
        labels: integer labels ``[N]``.
        fractions: non-negative numbers summing to 1, e.g. ``(0.8, 0.1, 0.1)``.
        seed: seed of the permutation.

    Returns:
        One sorted index array per fraction.
    """
    fractions = np.asarray(fractions, dtype=np.float64)
    if fractions.ndim != 1 or (fractions < 0).any() or not np.isclose(fractions.sum(), 1.0):
        raise ValueError(f"fractions must be non-negative and sum to 1, got {fractions.tolist()}")
    rng = np.random.default_rng(seed)
    parts = [[] for _ in fractions]
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        cuts = np.round(np.cumsum(fractions) * len(idx)).astype(int)
        start = 0
        for k, stop in enumerate(cuts):
            parts[k].append(idx[start:stop])
            start = stop
    return tuple(np.sort(np.concatenate(p)) if p else np.zeros(0, dtype=np.int64) for p in parts)


class ArrayDataset(Dataset):
    """A dataset over in-memory arrays ``x [N, ...]`` and integer labels ``y [N]``.

    ``__getitem__`` returns ``(transform(torch.float32 tensor), int label)``. Subclasses fill
    ``self.data``, ``self.targets`` and ``self.classes``.
    """

    data: np.ndarray
    targets: np.ndarray
    classes: Tuple[str, ...]

    def __init__(self, transform: Optional[Callable] = None) -> None:
        self.transform = transform

    def __len__(self) -> int:
        return int(len(self.targets))

    def __getitem__(self, index: int):
        x = torch.from_numpy(np.asarray(self.data[index], dtype=np.float32).copy())
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.targets[index])

    def class_counts(self) -> dict:
        """``{class name: number of samples}`` of this split."""
        counts = np.bincount(np.asarray(self.targets, dtype=np.int64), minlength=len(self.classes))
        return {name: int(n) for name, n in zip(self.classes, counts)}

    def __repr__(self) -> str:
        shape = tuple(np.asarray(self.data).shape[1:])
        split = getattr(self, "split", "?")
        return f"{type(self).__name__}(split={split!r}, n={len(self)}, sample_shape={shape}, classes={list(self.classes)})"

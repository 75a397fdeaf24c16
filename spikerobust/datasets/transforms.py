"""Transforms for time-first samples ``x [T, F]``: per-feature standardisation.

MFCCs differ in scale by orders of magnitude (coefficient 0 of the docs/tasks.md front end is about
-100, the others of order 1), so an LSNN fed raw MFCC currents sees little but coefficient 0.
Standardising each feature with training-set statistics is optional and not part of docs/tasks.md.

Examples:
    >>> import numpy as np, torch
    >>> data = np.stack([np.full((3, 2), [10.0, 1.0]), np.full((3, 2), [30.0, 3.0])])  # [N, T, F]
    >>> mean, std = feature_stats(data)
    >>> mean.tolist(), std.tolist()
    ([20.0, 2.0], [10.0, 1.0])
    >>> FeatureStandardize(mean, std)(torch.tensor([[30.0, 1.0]])).tolist()
    [[1.0, -1.0]]
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
import torch

__all__ = ["feature_stats", "FeatureStandardize"]


def feature_stats(data: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each feature of time-first samples ``[N, T, F]``."""
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 3:
        raise ValueError(f"data must have shape [N, T, F], got {data.shape}")
    return data.mean(axis=(0, 1)), data.std(axis=(0, 1))


class FeatureStandardize:
    """Transform ``x [T, F] -> (x - mean[f]) / std[f]``.

    Shape:
        ``[T, F]`` -> ``[T, F]``.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = torch.as_tensor(np.asarray(mean, dtype=np.float32))
        self.std = torch.as_tensor(np.asarray(std, dtype=np.float32))
        if self.mean.dim() != 1 or self.mean.shape != self.std.shape:
            raise ValueError(f"mean and std must be [F] vectors of one length, got {tuple(self.mean.shape)}, "
                             f"{tuple(self.std.shape)}")
        if (self.std <= 0).any():
            raise ValueError("std must be positive for every feature")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.mean.shape[0]:
            raise ValueError(f"expected x of shape [T, {self.mean.shape[0]}], got {tuple(x.shape)}")
        return (x - self.mean) / self.std

    def __repr__(self) -> str:
        return f"FeatureStandardize(F={self.mean.shape[0]})"

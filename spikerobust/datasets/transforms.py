"""Standardisation: of time-first samples ``x [T, F]`` per feature (:class:`FeatureStandardize`), and
of whole in-memory splits along one axis, features or channels (:class:`BatchStandardize`).

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

    A whole split, statistics from the training tensor (here time-first ``[T, N, F]``, feature axis -1):

    >>> train = torch.tensor([[[1.0, 10.0], [3.0, 30.0]]])          # T = 1, N = 2, F = 2
    >>> standardize = BatchStandardize.fit(train, axis=-1)
    >>> standardize.mean.tolist(), [round(v, 4) for v in standardize.std.tolist()]
    ([2.0, 20.0], [1.4142, 14.1421])
    >>> standardize(train).flatten().tolist() == standardize(train.double()).flatten().tolist()
    True
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import torch

__all__ = ["feature_stats", "FeatureStandardize", "BatchStandardize"]


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


class BatchStandardize:
    """Transform a whole tensor ``x -> (x - mean[c]) / std[c]`` along one axis (features or channels).

    Computed in float64 and returned as float32, so the result does not depend on the input's
    float type. :meth:`fit` takes the statistics from the training tensor (the sample standard
    deviation, ``n - 1`` in the denominator, over every other axis).

    Args:
        mean, std: ``[C]`` float64 statistics.
        axis: the axis of ``x`` they belong to (negative counts from the end).

    Shape:
        any ``[..., C, ...]`` (``C`` at ``axis``) -> the same shape, float32.
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, *, axis: int = -1) -> None:
        self.mean = torch.as_tensor(mean, dtype=torch.float64)
        self.std = torch.as_tensor(std, dtype=torch.float64)
        self.axis = int(axis)
        if self.mean.dim() != 1 or self.mean.shape != self.std.shape:
            raise ValueError(f"mean and std must be [C] vectors of one length, got {tuple(self.mean.shape)}, "
                             f"{tuple(self.std.shape)}")

    @classmethod
    def fit(cls, x: torch.Tensor, *, axis: int = -1, min_std: Optional[float] = None) -> "BatchStandardize":
        """Statistics of ``x`` over every axis but ``axis``; ``min_std``: a floor for the std (a
        constant feature then passes as ``x - mean`` scaled by ``1 / min_std`` instead of dividing by 0)."""
        axis = axis % x.dim()
        dims = tuple(d for d in range(x.dim()) if d != axis)
        xd = x.double()
        std = xd.std(dims)
        return cls(xd.mean(dims), std if min_std is None else std.clamp_min(float(min_std)), axis=axis - x.dim())

    def _shaped(self, t: torch.Tensor, ndim: int) -> torch.Tensor:
        shape = [1] * ndim
        shape[self.axis] = -1
        return t.view(shape)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not -x.dim() <= self.axis < x.dim() or x.shape[self.axis] != self.mean.shape[0]:
            raise ValueError(f"expected x with an axis {self.axis} of size {self.mean.shape[0]}, got {tuple(x.shape)}")
        return ((x.double() - self._shaped(self.mean, x.dim())) / self._shaped(self.std, x.dim())).float()

    def __repr__(self) -> str:
        return f"BatchStandardize(C={self.mean.shape[0]}, axis={self.axis})"

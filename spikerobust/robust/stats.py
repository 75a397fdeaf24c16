"""Statistics over draws: summary numbers and the Mann-Whitney U test used to compare methods.

Examples:
    >>> import torch
    >>> s = summarise(torch.tensor([0.9, 0.8, 1.0]))
    >>> round(s["mean"], 3), round(s["std"], 3), round(s["min"], 3), s["n"]
    (0.9, 0.1, 0.8, 3)
    >>> mann_whitney([0.9, 0.91, 0.92], [0.5, 0.52, 0.55]).statistic
    9.0
"""

from __future__ import annotations

from typing import NamedTuple, Sequence, Union

import numpy as np
import torch

__all__ = ["summarise", "mann_whitney", "MannWhitneyResult"]

ArrayLike = Union[Sequence[float], np.ndarray, torch.Tensor]


def _as_numpy(values: ArrayLike, name: str) -> np.ndarray:
    arr = values.detach().cpu().double().numpy() if isinstance(values, torch.Tensor) else np.asarray(values, float)
    arr = arr.reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{name} is empty; expected a 1-d sequence of accuracies")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def summarise(values: ArrayLike) -> dict:
    """Mean, sample standard deviation (ddof = 1; 0 for a single value), min, max and count.

    Args:
        values: 1-d accuracies (one per draw).

    Returns:
        ``{"mean", "std", "min", "max", "n"}`` as Python numbers.
    """
    arr = _as_numpy(values, "values")
    return {
        "mean": float(arr.mean()),
        "std": float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
        "min": float(arr.min()),
        "max": float(arr.max()),
        "n": int(arr.size),
    }


class MannWhitneyResult(NamedTuple):
    """U statistic of the first sample and the p-value."""

    statistic: float
    pvalue: float


def mann_whitney(acc_a: ArrayLike, acc_b: ArrayLike, alternative: str = "two-sided") -> MannWhitneyResult:
    """Mann-Whitney U test between two sets of accuracies (e.g. two methods' mismatch draws).

    A thin wrapper of :func:`scipy.stats.mannwhitneyu` that accepts tensors.

    Args:
        acc_a, acc_b: 1-d accuracies of method A and B.
        alternative: ``"two-sided"``, ``"greater"`` (A tends to be larger) or ``"less"``.

    Returns:
        :class:`MannWhitneyResult` ``(statistic, pvalue)``.
    """
    from scipy.stats import mannwhitneyu

    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative must be 'two-sided', 'greater' or 'less', got {alternative!r}")
    res = mannwhitneyu(_as_numpy(acc_a, "acc_a"), _as_numpy(acc_b, "acc_b"), alternative=alternative)
    return MannWhitneyResult(float(res.statistic), float(res.pvalue))

"""Certificates: logit bounds for any supported model, and verified accuracy (docs/verification.md).

A sample ``(x, y)`` is *verified* at ``ζ`` iff, for the logit intervals ``[l_c, u_c]`` over the
box ``|p' - p| <= ζ|p|`` of every weight and bias, the label has the largest lower bound and its
interval is disjoint from every other class's: ``l_y > u_c`` for all ``c != y`` (which implies
``l_y > l_c``). Then every network in the box classifies ``x`` as ``y``.

Examples:
    >>> import torch
    >>> lower = torch.tensor([[2.0, 0.0, 1.0], [2.0, 0.0, 1.0]])
    >>> upper = torch.tensor([[3.0, 1.0, 1.5], [3.0, 1.0, 2.5]])
    >>> is_verified(lower, upper, torch.tensor([0, 0]))
    tensor([ True, False])
"""

from __future__ import annotations

from typing import Iterable, Optional, Tuple, Union

import torch
from torch import nn
from tqdm import tqdm

from .feedforward import sequential_logit_bounds
from .lsnn import lsnn_logit_bounds

__all__ = ["logit_bounds", "is_verified", "verified_accuracy"]


def _is_lsnn_classifier(model) -> bool:
    from ..nn.lsnn import LSNN

    return isinstance(getattr(model, "lsnn", None), LSNN) and isinstance(getattr(model, "readout", None), nn.Linear)


def logit_bounds(model: nn.Module, x: torch.Tensor, zeta: float, **kwargs) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(lower, upper)`` logit bounds over the ``±ζ|p|`` box, dispatching on the model type.

    Args:
        model: an :class:`~spikerobust.nn.LSNNClassifier` (→ :func:`lsnn_logit_bounds`; input
            time first ``[T, B, d_in]``) or an ``nn.Sequential`` of supported layers
            (→ :func:`sequential_logit_bounds`; input e.g. ``[B, 1, 28, 28]``).
        x: the input batch.
        zeta: relative half-width of every weight and bias interval.
        **kwargs: ``dtype`` (both), ``neuron_constants`` (LSNN only).

    Returns:
        ``(lower, upper)``, each ``[B, C]``.

    Raises:
        ValueError: for an unsupported model type.
    """
    if _is_lsnn_classifier(model):
        return lsnn_logit_bounds(model, x, zeta, **kwargs)
    if isinstance(model, nn.Sequential):
        return sequential_logit_bounds(model, x, zeta, **kwargs)
    raise ValueError(
        f"logit_bounds: unsupported model {type(model).__name__}; expected an LSNNClassifier or an "
        f"nn.Sequential of Conv2d/Linear/ReLU/MaxPool2d/Flatten/Dropout layers. Other spiking networks "
        f"(snnTorch, Norse, a time loop in forward) are not verified: their threshold/reset dynamics have no "
        f"interval rule here; mismatch_evaluate and attacked_accuracy work on them"
    )


def is_verified(lower: torch.Tensor, upper: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Boolean ``[B]``: ``lower[y] > upper[c]`` for every class ``c != y``.

    Shape:
        ``lower``, ``upper``: ``[B, C]``; ``y``: ``[B]`` → ``[B]``.

    Raises:
        ValueError: for mismatched shapes or labels out of range.
    """
    if lower.shape != upper.shape or lower.dim() != 2:
        raise ValueError(f"lower and upper must both be [B, C], got {tuple(lower.shape)} and {tuple(upper.shape)}")
    y = torch.as_tensor(y, device=lower.device).long().reshape(-1)
    if y.shape[0] != lower.shape[0]:
        raise ValueError(f"y must have shape [B] = [{lower.shape[0]}], got {tuple(y.shape)}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= lower.shape[1]):
        raise ValueError(f"labels y must lie in [0, {lower.shape[1] - 1}]")
    own = lower.gather(1, y[:, None]).squeeze(1)
    others = upper.scatter(1, y[:, None], float("-inf"))
    return own > others.amax(dim=1)


def _batches(data, batch_size: int, time_first: bool) -> Iterable:
    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        x, y = data
        y = torch.as_tensor(y)
        dim = 1 if time_first else 0
        n = x.shape[dim]
        if y.shape[0] != n:
            raise ValueError(
                f"data: x has {n} samples along dim {dim} (time first [T, B, d] for an LSNN) but y has {y.shape[0]}"
            )
        for start in range(0, n, batch_size):
            yield x.narrow(dim, start, min(batch_size, n - start)), y[start : start + batch_size]
    else:
        yield from data


def verified_accuracy(
    model: nn.Module,
    data: Union[Iterable, Tuple[torch.Tensor, torch.Tensor]],
    zeta: float,
    *,
    batch_size: int = 256,
    dtype: Optional[torch.dtype] = torch.float64,
    progress: bool = False,
    **kwargs,
) -> float:
    """Fraction of samples verified at ``ζ`` (see the module docstring).

    Args:
        model: an LSNN classifier or a supported ``nn.Sequential``.
        data: an iterable of ``(x, y)`` batches (e.g. a ``DataLoader``; LSNN batches time first),
            or one ``(x, y)`` pair of tensors (split into ``batch_size`` chunks; LSNN ``x`` is
            ``[T, B, d_in]``).
        zeta: relative half-width of every weight and bias interval.
        batch_size: chunk size when ``data`` is a pair of tensors.
        dtype: computation dtype (default float64, so rounding cannot break the certificate).
        progress: show a tqdm bar over batches.
        **kwargs: passed to :func:`logit_bounds` (e.g. ``neuron_constants=True``).

    Returns:
        verified accuracy in ``[0, 1]``.

    Raises:
        ValueError: if ``data`` holds no samples.
    """
    time_first = _is_lsnn_classifier(model)
    n_ok, n_all = 0, 0
    for x, y in tqdm(_batches(data, int(batch_size), time_first), disable=not progress, desc=f"verify zeta={zeta:g}"):
        lower, upper = logit_bounds(model, x, zeta, dtype=dtype, **kwargs)
        n_ok += int(is_verified(lower, upper, torch.as_tensor(y)).sum())
        n_all += int(torch.as_tensor(y).numel())
    if n_all == 0:
        raise ValueError("verified_accuracy: data holds no samples")
    return n_ok / n_all

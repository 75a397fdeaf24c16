"""Certificates: logit bounds for any supported model, and verified accuracy (docs/verification.md).

A sample ``(x, y)`` is *verified* at ``ε`` (``epsilon``) iff, for the logit intervals ``[l_c, u_c]``
over the box ``|p' - p| <= ε|p|`` of every weight and bias, the label has the largest lower bound and its
interval is disjoint from every other class's: ``l_y > u_c`` for all ``c != y`` (which implies
``l_y > l_c``). Then every network in the box classifies ``x`` as ``y``.

Which verifier runs is read from the model protocol (:mod:`spikerobust.protocol`): a model that
declares a spiking layer goes to the LSNN simulation, a feed-forward network (no spiking layer)
to :func:`~spikerobust.verify.feedforward.sequential_interval`; batches are split along the batch
axis of the model's declared input layout.

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

from .._checks import check_batch
from ..protocol import batch_dim, input_layout, spiking_layers
from .feedforward import SUPPORTED_LAYERS, sequential_logit_bounds, supported_layers
from .interval import resolve_epsilon
from .lsnn import lsnn_logit_bounds, lsnn_parts

__all__ = ["logit_bounds", "is_verified", "verified_accuracy"]


def logit_bounds(model: nn.Module, x: torch.Tensor, epsilon: Optional[float] = None, *,
                 zeta: Optional[float] = None, **kwargs) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(lower, upper)`` logit bounds over the ``±ε|p|`` box, dispatching on the model protocol.

    Args:
        model: a model declaring one LSNN spiking layer with a linear readout, such as an
            :class:`~spikerobust.nn.LSNNClassifier` (→ :func:`lsnn_logit_bounds`; input time
            first ``[T, B, d_in]``), or a network without spiking layers made of supported layers:
            an ``nn.Sequential`` (the F-MNIST CNN) or ResNet32 (→ :func:`sequential_logit_bounds`;
            input batch first, e.g. ``[B, 1, 28, 28]``).
        x: the input batch, in the model's layout.
        epsilon: relative half-width of every weight and bias interval.
        zeta: deprecated name of ``epsilon``.
        **kwargs: ``dtype`` (both), ``neuron_constants`` (LSNN only).

    Returns:
        ``(lower, upper)``, each ``[B, C]``.

    Raises:
        ValueError: for an unsupported model.
    """
    epsilon = resolve_epsilon(epsilon, zeta, owner="logit_bounds")
    reason = ""
    if spiking_layers(model):
        try:
            lsnn_parts(model)
        except ValueError as err:
            reason = f" ({err})"
        else:
            return lsnn_logit_bounds(model, x, epsilon, **kwargs)
    elif isinstance(model, SUPPORTED_LAYERS):
        return sequential_logit_bounds(model, x, epsilon, **kwargs)
    raise ValueError(
        f"logit_bounds: unsupported model {type(model).__name__}{reason}; expected an LSNNClassifier, an "
        f"nn.Sequential of {'/'.join(supported_layers())} layers or a ResNetCIFAR. Other spiking networks "
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


def _batches(data, batch_size: int, layout: str) -> Iterable:
    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        x, y = data
        y = torch.as_tensor(y)
        dim = batch_dim(layout)
        n = check_batch(x, layout, name="data: x")
        if y.shape[0] != n:
            raise ValueError(
                f"data: x has {n} samples along dim {dim} (the model's input is {layout}) but y has {y.shape[0]}"
            )
        for start in range(0, n, batch_size):
            yield x.narrow(dim, start, min(batch_size, n - start)), y[start : start + batch_size]
    else:
        yield from data


def verified_accuracy(
    model: nn.Module,
    data: Union[Iterable, Tuple[torch.Tensor, torch.Tensor]],
    epsilon: Optional[float] = None,
    *,
    batch_size: int = 256,
    dtype: Optional[torch.dtype] = torch.float64,
    progress: bool = False,
    zeta: Optional[float] = None,
    **kwargs,
) -> float:
    """Fraction of samples verified at ``ε`` (see the module docstring).

    Args:
        model: a model :func:`logit_bounds` supports (LSNN classifier, F-MNIST CNN, ResNet32).
        data: an iterable of ``(x, y)`` batches (e.g. a ``DataLoader``) in the model's declared
            input layout (:func:`spikerobust.protocol.input_layout`: LSNN batches time first),
            or one ``(x, y)`` pair of tensors (split into ``batch_size`` chunks along the
            layout's batch axis; LSNN ``x`` is ``[T, B, d_in]``).
        epsilon: relative half-width of every weight and bias interval.
        batch_size: chunk size when ``data`` is a pair of tensors.
        dtype: computation dtype (default float64, so rounding cannot break the certificate).
        progress: show a tqdm bar over batches.
        zeta: deprecated name of ``epsilon``.
        **kwargs: passed to :func:`logit_bounds` (e.g. ``neuron_constants=True``).

    Returns:
        verified accuracy in ``[0, 1]``.

    Raises:
        ValueError: if ``data`` holds no samples.
    """
    epsilon = resolve_epsilon(epsilon, zeta, owner="verified_accuracy")
    n_ok, n_all = 0, 0
    batches = _batches(data, int(batch_size), input_layout(model))
    for x, y in tqdm(batches, disable=not progress, desc=f"verify epsilon={epsilon:g}"):
        lower, upper = logit_bounds(model, x, epsilon, dtype=dtype, **kwargs)
        n_ok += int(is_verified(lower, upper, torch.as_tensor(y)).sum())
        n_all += int(torch.as_tensor(y).numel())
    if n_all == 0:
        raise ValueError("verified_accuracy: data holds no samples")
    return n_ok / n_all

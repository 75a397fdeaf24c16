"""Time-averaged readout (docs/lsnn.md): ``logits = mean_t(z_t) @ W_out + b_out``, no output time constant.

Shape:
    ``spikes`` ``[T, B, N]``, ``weight`` ``[C, N]`` (``nn.Linear`` layout), ``bias`` ``[C]`` →
    logits ``[B, C]``.
"""

from __future__ import annotations

from typing import Optional

import torch

__all__ = ["time_average_readout", "time_mean", "rate_regulariser"]


def time_average_readout(
    spikes: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Mean spike rate over time, then a linear map.

    Examples:
        >>> import torch
        >>> z = torch.tensor([[[1.0, 0.0]], [[0.0, 0.0]]])  # T=2, B=1, N=2
        >>> time_average_readout(z, torch.tensor([[2.0, 5.0]]), torch.tensor([1.0]))
        tensor([[2.]])
    """
    return torch.nn.functional.linear(time_mean(spikes), weight, bias)


def time_mean(spikes: torch.Tensor) -> torch.Tensor:
    """``spikes.mean(dim=0)`` (the same bits), computed as a sum divided by ``T``.

    The difference is in the backward pass: the gradient of a sum reaches ``spikes`` as one
    ``[B, N]`` gradient broadcast over time (a view), where the mean's backward writes a full
    ``[T, B, N]`` tensor; the event-driven LSNN backend then reads the one ``[B, N]`` gradient at
    every step. Use the result for every consumer (readout and rate regulariser) so that a
    single broadcast gradient reaches the spikes.

    Examples:
        >>> import torch
        >>> z = torch.tensor([[[1.0, 0.0]], [[1.0, 1.0]]])  # T=2, B=1, N=2
        >>> time_mean(z)
        tensor([[1.0000, 0.5000]])
    """
    return spikes.sum(dim=0) / spikes.shape[0]


def rate_regulariser(spikes: torch.Tensor, target: float = 0.01, strength: float = 1e-3, *,
                     rates: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Firing-rate regulariser ``λ Σ_{batch, neuron} (mean_t z − target)²`` (docs/lsnn.md, λ = 0.001).

    ``rates``: ``time_mean(spikes)`` when already computed (its gradient then joins the readout's
    as one broadcast gradient; ``spikes`` is not read).
    """
    rates = time_mean(spikes) if rates is None else rates
    return strength * ((rates - target) ** 2).sum()

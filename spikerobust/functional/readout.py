"""Time-averaged readout (docs/lsnn.md): ``logits = mean_t(z_t) @ W_out + b_out``, no output time constant.

Shape:
    ``spikes`` ``[T, B, N]``, ``weight`` ``[C, N]`` (``nn.Linear`` layout), ``bias`` ``[C]`` →
    logits ``[B, C]``.
"""

from __future__ import annotations

from typing import Optional

import torch

__all__ = ["time_average_readout", "rate_regulariser"]


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
    return torch.nn.functional.linear(spikes.mean(dim=0), weight, bias)


def rate_regulariser(spikes: torch.Tensor, target: float = 0.01, strength: float = 1e-3) -> torch.Tensor:
    """Firing-rate regulariser ``λ Σ_{batch, neuron} (mean_t z − target)²`` (docs/lsnn.md, λ = 0.001)."""
    return strength * ((spikes.mean(dim=0) - target) ** 2).sum()

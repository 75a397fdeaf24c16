"""A tiny temporal task generated in code, for demos, examples and tests (no files needed)."""

from __future__ import annotations

import torch

__all__ = ["burst_task"]


def burst_task(n: int, t_steps: int = 50, *, seed: int = 0, noise: float = 0.1, burst: float = 1.0,
               length: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Which of two channels carries a burst? ``length`` steps of ``+burst`` on channel ``y`` at a
    random time, on top of Gaussian noise of std ``noise`` on both channels.

    Shape:
        ``x`` ``[t_steps, n, 2]`` (time first), ``y`` ``[n]`` (int64 in {0, 1}).

    Examples:
        >>> x, y = burst_task(4, t_steps=30)
        >>> tuple(x.shape), tuple(y.shape)
        ((30, 4, 2), (4,))
    """
    if n < 1 or t_steps < length + 15:
        raise ValueError(f"burst_task: need n >= 1 and t_steps >= {length + 15}, got n={n}, t_steps={t_steps}")
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = noise * torch.randn(t_steps, n, 2, generator=g)
    start = torch.randint(5, t_steps - length - 5, (n,), generator=g)
    t = torch.arange(t_steps).unsqueeze(1)
    on = (t >= start) & (t < start + length)  # [T, n]
    x[..., 0] += burst * (on & (y == 0))
    x[..., 1] += burst * (on & (y == 1))
    return x, y
